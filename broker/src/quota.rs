//! Client quotas: byte rates for produce and fetch, and a share of request handling time,
//! per user and client id (Kafka's `ClientQuotaManager`).
//!
//! Quotas live in the metadata log (AlterClientQuotas), keyed by an entity: a user, a
//! client id, or both, each by name or as the default. A request is charged to the most
//! specific entity with a quota for its kind, in Kafka's order:
//!
//! ```text
//! user+client, user+<default client>, user, <default user>+client,
//! <default user>+<default client>, <default user>, client, <default client>
//! ```
//!
//! Every entity has one sensor per kind: the amount recorded in `quota.window.num` samples
//! of `quota.window.size.seconds`. Over its quota, a request gets
//! `throttle = (rate - quota) / quota * window` milliseconds, reported in the response
//! (KIP-219) while the connection stops reading for that long, so the client's next
//! request waits whether or not it honours the throttle time itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::controller::image::MetadataImage;
use crate::handler::Client;

/// `producer_byte_rate`: bytes per second of Produce requests.
pub(crate) const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// `consumer_byte_rate`: bytes per second of Fetch responses.
pub(crate) const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// `request_percentage`: percent of one thread's time spent on requests.
pub(crate) const REQUEST_PERCENTAGE: &str = "request_percentage";
/// Every quota key served.
pub(crate) const KEYS: [&str; 3] = [PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE];

/// Entity types.
pub(crate) const USER: &str = "user";
pub(crate) const CLIENT_ID: &str = "client-id";

/// A quota entity: `(type, name)` pairs sorted by type, a `None` name for the default.
pub(crate) type QuotaEntity = Vec<(String, Option<String>)>;

/// A quota's value, compared by its bits so the metadata image stays `Eq`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct QuotaValue(pub(crate) f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// What a request is charged for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Produce,
    Fetch,
    Request,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Produce => PRODUCER_BYTE_RATE,
            Kind::Fetch => CONSUMER_BYTE_RATE,
            Kind::Request => REQUEST_PERCENTAGE,
        }
    }
}

/// An amount recorded in samples of a fixed length.
#[derive(Debug)]
struct Sensor {
    /// `(start_ms, amount)`, oldest first.
    samples: Vec<(u64, f64)>,
}

impl Sensor {
    /// Records `amount` at `now_ms` and returns the rate per second over the samples kept.
    fn record(&mut self, amount: f64, now_ms: u64, window: Window) -> f64 {
        let size = window.size_ms.max(1);
        match self.samples.last_mut() {
            Some((start, total)) if now_ms < *start + size => *total += amount,
            _ => self.samples.push((now_ms - now_ms % size, amount)),
        }
        let kept = size * window.samples as u64;
        self.samples.retain(|(start, _)| *start + kept > now_ms);
        let total: f64 = self.samples.iter().map(|(_, a)| a).sum();
        let first = self.samples.first().map_or(now_ms, |(start, _)| *start);
        // As Kafka: at least all but one full sample, so a burst at the start is spread.
        let elapsed = (now_ms - first + 1).max(size * (window.samples as u64 - 1).max(1));
        total * 1000.0 / elapsed as f64
    }

    /// The span a rate is measured over, for the throttle time.
    fn span_ms(&self, now_ms: u64, window: Window) -> u64 {
        let size = window.size_ms.max(1);
        let first = self.samples.first().map_or(now_ms, |(start, _)| *start);
        (now_ms - first + 1).max(size * (window.samples as u64 - 1).max(1))
    }
}

/// `quota.window.num` samples of `quota.window.size.seconds`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub(crate) samples: usize,
    pub(crate) size_ms: u64,
}

/// The broker's sensors.
#[derive(Debug)]
pub(crate) struct Quotas {
    window: Window,
    sensors: Mutex<HashMap<(QuotaEntity, Kind), Sensor>>,
}

/// The longest throttle given, whatever the rate (Kafka caps it at the quota window).
const MAX_THROTTLE_MS: f64 = 30_000.0;

impl Quotas {
    pub(crate) fn new(window: Window) -> Quotas {
        Quotas {
            window: Window {
                samples: window.samples.max(2),
                size_ms: window.size_ms.max(1),
            },
            sensors: Mutex::new(HashMap::new()),
        }
    }

    /// Charges `amount` to the entity `client` falls under for `kind` (when it has a
    /// quota) and returns how long to throttle it, in milliseconds.
    pub(crate) fn record(
        &self,
        image: &MetadataImage,
        client: &Client,
        kind: Kind,
        amount: f64,
        now_ms: u64,
    ) -> i32 {
        if image.quotas.is_empty() {
            return 0;
        }
        let Some((entity, quota)) = applicable(&image.quotas, client, kind) else {
            return 0;
        };
        let mut sensors = self
            .sensors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sensor = sensors.entry((entity, kind)).or_insert(Sensor {
            samples: Vec::new(),
        });
        let rate = sensor.record(amount, now_ms, self.window);
        if quota <= 0.0 || rate <= quota {
            return 0;
        }
        let span = sensor.span_ms(now_ms, self.window) as f64;
        let throttle = ((rate - quota) / quota * span).min(MAX_THROTTLE_MS);
        throttle.round() as i32
    }
}

/// The entity `client`'s `kind` is charged to and its quota, if any applies.
fn applicable(
    quotas: &BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
    client: &Client,
    kind: Kind,
) -> Option<(QuotaEntity, f64)> {
    let user = client
        .principal
        .split_once(':')
        .map_or(client.principal.as_str(), |(_, name)| name);
    let id = client.client_id.as_str();
    let both = |u: Option<&str>, c: Option<&str>| {
        vec![
            (CLIENT_ID.to_owned(), c.map(str::to_owned)),
            (USER.to_owned(), u.map(str::to_owned)),
        ]
    };
    let one = |kind: &str, name: Option<&str>| vec![(kind.to_owned(), name.map(str::to_owned))];
    let order = [
        both(Some(user), Some(id)),
        both(Some(user), None),
        one(USER, Some(user)),
        both(None, Some(id)),
        both(None, None),
        one(USER, None),
        one(CLIENT_ID, Some(id)),
        one(CLIENT_ID, None),
    ];
    order.into_iter().find_map(|entity| {
        let value = quotas.get(&entity)?.get(kind.key())?.0;
        Some((entity, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(user: &str, id: &str) -> Client {
        Client {
            client_id: id.into(),
            host: "/127.0.0.1".into(),
            ip: "127.0.0.1".into(),
            principal: format!("User:{user}"),
            listener: "PLAINTEXT".into(),
        }
    }

    fn quota(image: &mut MetadataImage, entity: QuotaEntity, key: &str, value: f64) {
        image
            .quotas
            .entry(entity)
            .or_default()
            .insert(key.into(), QuotaValue(value));
    }

    #[test]
    fn the_most_specific_entity_wins() {
        let mut image = MetadataImage::default();
        quota(
            &mut image,
            vec![(CLIENT_ID.into(), None)],
            PRODUCER_BYTE_RATE,
            1.0,
        );
        quota(
            &mut image,
            vec![(USER.into(), Some("alice".into()))],
            PRODUCER_BYTE_RATE,
            2.0,
        );
        let q = &image.quotas;
        let alice = applicable(q, &client("alice", "app"), Kind::Produce).unwrap();
        assert_eq!(alice.1, 2.0);
        let bob = applicable(q, &client("bob", "app"), Kind::Produce).unwrap();
        assert_eq!(bob, (vec![(CLIENT_ID.to_owned(), None)], 1.0));
        assert!(applicable(q, &client("bob", "app"), Kind::Fetch).is_none());
    }

    #[test]
    fn throttle_brings_the_rate_back_to_the_quota() {
        let mut image = MetadataImage::default();
        quota(
            &mut image,
            vec![(USER.into(), None)],
            PRODUCER_BYTE_RATE,
            1000.0,
        );
        let window = Window {
            samples: 3,
            size_ms: 1000,
        };
        let quotas = Quotas::new(window);
        let c = client("alice", "app");
        // Within the quota: 500 bytes a second for 3 seconds.
        for second in 0..3u64 {
            assert_eq!(
                quotas.record(&image, &c, Kind::Produce, 500.0, second * 1000),
                0
            );
        }
        // A burst of 4000 more bytes: the three samples kept hold 5000 bytes over 2 s,
        // against 1000/s; waiting the throttle time brings the rate back to the quota.
        let throttle = quotas.record(&image, &c, Kind::Produce, 4000.0, 3000);
        assert!(throttle > 0);
        let rate_after = 5000.0 * 1000.0 / (2001.0 + f64::from(throttle));
        assert!((rate_after - 1000.0).abs() < 10.0, "{rate_after}");
    }
}
