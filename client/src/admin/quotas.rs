//! Client quotas: DescribeClientQuotas (key 48) and AlterClientQuotas (key 49), versions
//! 0-1, as Kafka's `kafka-configs --entity-type users|clients` manages them.
//!
//! ```text
//!  alter_client_quotas    ──▶ controller: AlterClientQuotas, one entry (sent again when it moved)
//!  describe_client_quotas ──▶ any broker: DescribeClientQuotas, one filter
//! ```
//!
//! A quota belongs to a [`QuotaEntity`]: a user, a client id, or both, each named or the
//! default (every user, or client id, without a quota of its own). Its keys are
//! `producer_byte_rate`, `consumer_byte_rate` (bytes per second) and `request_percentage`;
//! values are positive. Quotas live in the cluster metadata, which the controller writes.
//! With an authoriser, describing needs DESCRIBE_CONFIGS on the cluster and altering
//! ALTER_CONFIGS.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let broker = strom_broker::Broker::start(strom_broker::BrokerConfig::new(dir.path())).await?;
//! use strom_client::admin::{Admin, QuotaEntity, QuotaFilter};
//! use strom_client::ClientConfig;
//!
//! let admin = Admin::connect(ClientConfig::new().bootstrap(&broker.bootstrap())).await?;
//! let alice = QuotaEntity::user("alice");
//! admin.alter_client_quotas(&alice, &[("producer_byte_rate", 1_048_576.0)], &[]).await?;
//! let alice_app = QuotaEntity::user("alice").and_client_id(Some("app"));
//! admin.alter_client_quotas(&alice_app, &[("request_percentage", 50.0)], &[]).await?;
//!
//! // Alice alone and with any client id; then exactly the entity `user=alice`.
//! assert_eq!(admin.describe_client_quotas(&QuotaFilter::user("alice")).await?.len(), 2);
//! let quotas = admin.describe_client_quotas(&QuotaFilter::entity(&alice)).await?;
//! assert_eq!(quotas[0].1["producer_byte_rate"], 1_048_576.0);
//!
//! admin.alter_client_quotas(&alice, &[], &["producer_byte_rate"]).await?;
//! let left = admin.describe_client_quotas(&QuotaFilter::all()).await?;
//! assert_eq!(left.len(), 1);
//! assert_eq!(left[0].0.to_string(), "user=alice,client-id=app");
//! # broker.shutdown().await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_client_quotas_response;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;
use tracing::debug;

use super::{check, str_bytes, Admin};
use crate::ClientError;

/// Kafka's entity type of a quota's user part.
const USER: &str = "user";
/// Kafka's entity type of a quota's client id part.
const CLIENT_ID: &str = "client-id";

/// DescribeClientQuotas match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

/// Whom a quota is for: a user, a client id, or both. In each part `Some(name)` names one
/// and `None` is the default (every user, or client id, without a quota of its own); a
/// part that is `None` altogether is not in the entity.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaEntity {
    /// The user part, if any.
    pub user: Option<Option<String>>,
    /// The client id part, if any.
    pub client_id: Option<Option<String>>,
}

impl QuotaEntity {
    /// The user `name`.
    pub fn user(name: &str) -> QuotaEntity {
        QuotaEntity::default().and_user(Some(name))
    }

    /// Every user without a quota of its own.
    pub fn default_user() -> QuotaEntity {
        QuotaEntity::default().and_user(None)
    }

    /// The client id `id`.
    pub fn client_id(id: &str) -> QuotaEntity {
        QuotaEntity::default().and_client_id(Some(id))
    }

    /// Every client id without a quota of its own.
    pub fn default_client_id() -> QuotaEntity {
        QuotaEntity::default().and_client_id(None)
    }

    /// This entity with user `name` (`None`: the default user).
    pub fn and_user(mut self, name: Option<&str>) -> QuotaEntity {
        self.user = Some(name.map(str::to_owned));
        self
    }

    /// This entity with client id `id` (`None`: the default client id).
    pub fn and_client_id(mut self, id: Option<&str>) -> QuotaEntity {
        self.client_id = Some(id.map(str::to_owned));
        self
    }

    /// The parts as Kafka's (entity type, name) pairs, user first.
    fn parts(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut parts = Vec::new();
        if let Some(user) = &self.user {
            parts.push((USER, user.as_deref()));
        }
        if let Some(id) = &self.client_id {
            parts.push((CLIENT_ID, id.as_deref()));
        }
        parts
    }

    /// The entity of a described entry; `None` when it has a part of another kind (Kafka's
    /// `ip`) or a part twice.
    fn from_wire(parts: &[describe_client_quotas_response::EntityData]) -> Option<QuotaEntity> {
        let mut entity = QuotaEntity::default();
        for part in parts {
            let name = part.entity_name.as_ref().map(ToString::to_string);
            let slot = match part.entity_type.as_str() {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                _ => return None,
            };
            if slot.replace(name).is_some() {
                return None;
            }
        }
        Some(entity)
    }
}

/// `user=alice,client-id=<default>`; `<none>` for an entity without parts.
impl fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .parts()
            .into_iter()
            .map(|(kind, name)| format!("{kind}={}", name.unwrap_or("<default>")))
            .collect();
        if parts.is_empty() {
            return f.write_str("<none>");
        }
        f.write_str(&parts.join(","))
    }
}

/// How a [`QuotaFilter`] matches one part of an entity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum QuotaMatch {
    /// The part names exactly this.
    Name(String),
    /// The part is the default.
    Default,
    /// The part is there, named or the default.
    Any,
}

impl QuotaMatch {
    fn component(&self, kind: &'static str) -> ComponentData {
        let (match_type, name) = match self {
            QuotaMatch::Name(name) => (MATCH_EXACT, Some(str_bytes(name))),
            QuotaMatch::Default => (MATCH_DEFAULT, None),
            QuotaMatch::Any => (MATCH_ANY, None),
        };
        ComponentData::default()
            .with_entity_type(StrBytes::from_static_str(kind))
            .with_match_type(match_type)
            .with_match(name)
    }
}

/// Which entities [`Admin::describe_client_quotas`] answers with (Kafka's
/// `ClientQuotaFilter`): an entity matches when each part given here matches its part of
/// the same kind, and, if `strict`, it has no other parts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct QuotaFilter {
    /// What the user part must be; `None` asks nothing of it.
    pub user: Option<QuotaMatch>,
    /// What the client id part must be; `None` asks nothing of it.
    pub client_id: Option<QuotaMatch>,
    /// Only entities without parts other than those given.
    pub strict: bool,
}

impl QuotaFilter {
    /// Every entity with quotas.
    pub fn all() -> QuotaFilter {
        QuotaFilter::default()
    }

    /// The entities of user `name`: the user alone and with any client id.
    pub fn user(name: &str) -> QuotaFilter {
        QuotaFilter {
            user: Some(QuotaMatch::Name(name.to_owned())),
            ..QuotaFilter::default()
        }
    }

    /// The entities of client id `id`: the client id alone and with any user.
    pub fn client_id(id: &str) -> QuotaFilter {
        QuotaFilter {
            client_id: Some(QuotaMatch::Name(id.to_owned())),
            ..QuotaFilter::default()
        }
    }

    /// Exactly `entity` (as `kafka-configs --describe` names one).
    pub fn entity(entity: &QuotaEntity) -> QuotaFilter {
        let exact = |part: &Option<String>| match part {
            Some(name) => QuotaMatch::Name(name.clone()),
            None => QuotaMatch::Default,
        };
        QuotaFilter {
            user: entity.user.as_ref().map(exact),
            client_id: entity.client_id.as_ref().map(exact),
            strict: true,
        }
    }

    fn request(&self) -> DescribeClientQuotasRequest {
        let components = [(USER, &self.user), (CLIENT_ID, &self.client_id)]
            .into_iter()
            .filter_map(|(kind, part)| part.as_ref().map(|m| m.component(kind)))
            .collect();
        DescribeClientQuotasRequest::default()
            .with_components(components)
            .with_strict(self.strict)
    }
}

impl Admin {
    /// Sets the quotas `set` (key, value) and removes the keys `remove` of `entity`, at
    /// once: nothing changes if any is refused. Removing a key the entity does not have is
    /// no error; an entity left without keys is gone.
    ///
    /// # Errors
    /// The broker's refusal as [`ClientError::Broker`] naming the entity: an unknown key, a
    /// value that is not positive, an entity without parts (`INVALID_REQUEST`, with the
    /// broker's message naming the key), `CLUSTER_AUTHORIZATION_FAILED`.
    pub async fn alter_client_quotas(
        &self,
        entity: &QuotaEntity,
        set: &[(&str, f64)],
        remove: &[&str],
    ) -> Result<(), ClientError> {
        if set.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let request =
            AlterClientQuotasRequest::default().with_entries(vec![entry(entity, set, remove)]);
        let what = format!("alter quotas of {entity}");
        self.with_retries(what.as_str(), &[], || async {
            let conn = self.cluster.controller().await?;
            let response = conn.send(&request).await?;
            if response.entries.len() != 1 {
                return Err(ClientError::Broker {
                    code: ErrorCode::UNKNOWN_SERVER_ERROR,
                    context: format!(
                        "{what}: 1 entry sent, {} in the broker's answer",
                        response.entries.len()
                    ),
                });
            }
            for answer in &response.entries {
                check(answer.error_code, answer.error_message.as_ref(), || {
                    format!("quotas of {entity}")
                })?;
            }
            debug!(%entity, set = set.len(), removed = remove.len(), "client quotas altered");
            Ok(())
        })
        .await
    }

    /// The entities `filter` matches, each with its quotas (key to value), in
    /// [`QuotaEntity`] order. Entities of kinds other than user and client id (Kafka's
    /// `ip`) are left out.
    ///
    /// # Errors
    /// The broker's refusal (`CLUSTER_AUTHORIZATION_FAILED`, ...) as
    /// [`ClientError::Broker`].
    pub async fn describe_client_quotas(
        &self,
        filter: &QuotaFilter,
    ) -> Result<Vec<(QuotaEntity, BTreeMap<String, f64>)>, ClientError> {
        let request = filter.request();
        self.with_retries("describe client quotas", &[], || async {
            let conn = self.cluster.any_broker().await?;
            let response = conn.send(&request).await?;
            check(response.error_code, response.error_message.as_ref(), || {
                "describe client quotas".to_owned()
            })?;
            let mut described: Vec<_> = response
                .entries
                .iter()
                .flatten()
                .filter_map(|entry| {
                    let entity = QuotaEntity::from_wire(&entry.entity)?;
                    let values: BTreeMap<String, f64> = entry
                        .values
                        .iter()
                        .map(|v| (v.key.to_string(), v.value))
                        .collect();
                    Some((entity, values))
                })
                .collect();
            described.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(described)
        })
        .await
    }
}

/// The AlterClientQuotas entry for `entity`: the keys of `set` set, those of `remove`
/// removed.
fn entry(entity: &QuotaEntity, set: &[(&str, f64)], remove: &[&str]) -> EntryData {
    let ops = set
        .iter()
        .map(|(key, value)| {
            OpData::default()
                .with_key(str_bytes(key))
                .with_value(*value)
        })
        .chain(
            remove
                .iter()
                .map(|key| OpData::default().with_key(str_bytes(key)).with_remove(true)),
        )
        .collect();
    let parts = entity
        .parts()
        .into_iter()
        .map(|(kind, name)| {
            EntityData::default()
                .with_entity_type(StrBytes::from_static_str(kind))
                .with_entity_name(name.map(str_bytes))
        })
        .collect();
    EntryData::default().with_entity(parts).with_ops(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_print_their_parts_user_first() {
        let both = QuotaEntity::client_id("app").and_user(Some("alice"));
        assert_eq!(both.to_string(), "user=alice,client-id=app");
        assert_eq!(
            QuotaEntity::default_user().and_client_id(None).to_string(),
            "user=<default>,client-id=<default>"
        );
        assert_eq!(QuotaEntity::default().to_string(), "<none>");
    }

    #[test]
    fn an_exact_filter_is_strict_and_names_each_part() {
        let request =
            QuotaFilter::entity(&QuotaEntity::default_user().and_client_id(Some("app"))).request();
        assert!(request.strict);
        let components: Vec<_> = request
            .components
            .iter()
            .map(|c| (c.entity_type.as_str(), c.match_type, c._match.as_deref()))
            .collect();
        assert_eq!(
            components,
            [
                (USER, MATCH_DEFAULT, None),
                (CLIENT_ID, MATCH_EXACT, Some("app"))
            ]
        );
        let all = QuotaFilter::all().request();
        assert!(all.components.is_empty() && !all.strict);
    }

    #[test]
    fn entries_carry_sets_then_removals() {
        let entry = entry(
            &QuotaEntity::default_client_id(),
            &[("producer_byte_rate", 1024.0)],
            &["request_percentage"],
        );
        assert_eq!(entry.entity.len(), 1);
        assert_eq!(entry.entity[0].entity_type.as_str(), CLIENT_ID);
        assert_eq!(entry.entity[0].entity_name, None);
        let ops: Vec<_> = entry
            .ops
            .iter()
            .map(|op| (op.key.as_str(), op.value, op.remove))
            .collect();
        assert_eq!(
            ops,
            [
                ("producer_byte_rate", 1024.0, false),
                ("request_percentage", 0.0, true)
            ]
        );
    }

    #[test]
    fn described_entities_of_other_kinds_are_left_out() {
        let part = |kind: &'static str, name: Option<&str>| {
            describe_client_quotas_response::EntityData::default()
                .with_entity_type(StrBytes::from_static_str(kind))
                .with_entity_name(name.map(str_bytes))
        };
        assert_eq!(
            QuotaEntity::from_wire(&[part(CLIENT_ID, Some("app")), part(USER, None)]),
            Some(QuotaEntity::default_user().and_client_id(Some("app")))
        );
        assert_eq!(
            QuotaEntity::from_wire(&[part("ip", Some("10.0.0.1"))]),
            None
        );
        assert_eq!(
            QuotaEntity::from_wire(&[part(USER, Some("a")), part(USER, Some("b"))]),
            None
        );
    }
}
