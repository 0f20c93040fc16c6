//! Session windows: per key, records closer than an inactivity gap form one session;
//! a record between two sessions merges them ([`SessionWindows`]).
//!
//! ```text
//!  gap 5, key a:   t=0  t=2                t=20       sessions [0, 2] and [20, 20]
//!  then t=7:       within 5 of 2    ──▶ [0, 7]
//!  then t=15:      within 5 of 20 and of nothing else ──▶ [15, 20]
//!  then t=11:      within 5 of 7 and of 15 ──▶ [0, 7] and [15, 20] merge into [0, 20]
//! ```
//!
//! A session's aggregate is kept under (key, end, start) in a store; when sessions merge,
//! their aggregates are combined with the merger, the old sessions leave the store and are
//! retracted downstream (a sink writes a tombstone for each, suppression drops them), and
//! the merged session is forwarded. Stream time and grace work as for time windows: a
//! record whose session would end before stream time minus grace is dropped as late.
//! Session ends are inclusive, as in Kafka Streams.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::grouped::{decode, encode, serialize_key, KGroupedStream, Materialized};
use super::keyed_time::{forget_before, key_prefix, keyed_time};
use super::stream::children;
use super::windowed::{
    millis, ordered, unordered, Windowed, WindowedKTable, CHANGELOG_EXTRA_RETENTION_MS,
};
use crate::processor::{Children, Downstream, Node, RecordContext};
use crate::serde::{I64Serde, Serde, SerdeError};
use crate::state::{SharedStore, StoreKind};
use crate::topology::{BuildFn, Built, Stores};

/// Sessions of activity: records of a key closer than `gap` belong to one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionWindows {
    gap_ms: i64,
    grace_ms: i64,
}

impl SessionWindows {
    /// Sessions separated by `gap` of inactivity, accepting records up to `grace` after a
    /// session ends.
    pub fn with_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        SessionWindows {
            gap_ms: millis(gap),
            grace_ms: i64::try_from(grace.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// A grouped stream cut into sessions.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
}

/// Combines the aggregates of two sessions being merged.
type MergeFn<K, VA> = Arc<dyn Fn(&K, VA, VA) -> VA + Send + Sync>;
/// Adds a record to a session's aggregate.
type AddFn<K, V, VA> = Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync>;

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The grouped records aggregated per key and session.
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream {
            grouped: self.clone(),
            windows,
        }
    }
}

impl<K, V> SessionWindowedKStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The number of records per key and session.
    pub fn count(&self) -> WindowedKTable<K, i64> {
        self.aggregate(
            || 0,
            |_, _, n| n + 1,
            |_, a, b| a + b,
            Materialized::with(I64Serde),
        )
    }

    /// The values per key and session folded into an aggregate starting at
    /// `initializer()`; `merger` combines two sessions' aggregates when a record joins them.
    pub fn aggregate<VA>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<VA>,
    ) -> WindowedKTable<K, VA>
    where
        VA: Clone + 'static,
    {
        let windows = self.windows;
        let retention_ms = windows
            .gap_ms
            .saturating_add(windows.grace_ms)
            .saturating_add(CHANGELOG_EXTRA_RETENTION_MS);
        let kind = StoreKind::Window { retention_ms };
        let name = self
            .grouped
            .store_name(materialized.name, kind, materialized.persistent);
        let (key, value) = (self.grouped.key_serde(), materialized.value);
        let init: Arc<dyn Fn() -> VA + Send + Sync> = Arc::new(initializer);
        let add: AddFn<K, V, VA> = Arc::new(aggregator);
        let merge: MergeFn<K, VA> = Arc::new(merger);
        let (store_name, key_serde, value_serde) = (name.clone(), key.clone(), value.clone());
        let build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(SessionAggregate {
                windows,
                key: key_serde.clone(),
                value: value_serde.clone(),
                init: init.clone(),
                add: add.clone(),
                merge: merge.clone(),
                store: stores.get(&store_name)?,
                stream_time: i64::MIN,
                expired_at: i64::MIN,
                children: children::<Windowed<K>, VA>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let table = self.grouped.add_aggregation(build, name.clone());
        WindowedKTable {
            table,
            // A session can still grow until a gap after its end (Kafka Streams' suppression
            // waits for the gap and the grace).
            grace_end_ms: windows.gap_ms.saturating_add(windows.grace_ms),
            store: name,
            key,
            value,
        }
    }
}

/// A session store's key: the key part, the end, the start.
fn session_key(key: &[u8], start: i64, end: i64) -> Bytes {
    keyed_time(key, end, start)
}

/// The (start, end) a session store's key holds after `prefix_len` bytes.
fn session_bounds(slot: &[u8], prefix_len: usize) -> Option<(i64, i64)> {
    let end = unordered(slot.get(prefix_len..)?)?;
    let start = unordered(slot.get(prefix_len + 8..)?)?;
    Some((start, end))
}

/// A session aggregation as built for a task.
struct SessionAggregate<K, V, VA> {
    windows: SessionWindows,
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<VA>>,
    init: Arc<dyn Fn() -> VA + Send + Sync>,
    add: AddFn<K, V, VA>,
    merge: MergeFn<K, VA>,
    /// The aggregate per (key, end, start).
    store: SharedStore,
    stream_time: i64,
    /// Stream time at the last sweep for sessions too old to merge.
    expired_at: i64,
    children: Children<Windowed<K>, VA>,
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> SessionAggregate<K, V, VA> {
    /// Drops sessions that can no longer grow (ended more than gap + grace before stream
    /// time), sweeping the store once per gap of stream time.
    fn expire(&mut self, ctx: &mut RecordContext) {
        let horizon = self.windows.gap_ms.saturating_add(self.windows.grace_ms);
        if self.stream_time.saturating_sub(self.expired_at) < self.windows.gap_ms {
            return;
        }
        self.expired_at = self.stream_time;
        forget_before(&self.store, ctx, self.stream_time.saturating_sub(horizon));
    }
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> Downstream<K, V>
    for SessionAggregate<K, V, VA>
{
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let Some(bytes) = serialize_key(&*self.key, ctx, &key) else {
            return;
        };
        let timestamp = ctx.timestamp;
        let restored = self.store.borrow().observed_time();
        self.stream_time = self.stream_time.max(restored).max(timestamp);
        let gap = self.windows.gap_ms;
        // Sessions of this key that the record touches: ending at or after t - gap and
        // starting at or before t + gap.
        let prefix = key_prefix(&bytes);
        let prefix_len = prefix.len();
        let mut from = prefix.clone();
        from.put_slice(&ordered(timestamp.saturating_sub(gap)));
        let mut to = prefix;
        to.put_slice(&[0xff; 17]);
        let touching: Vec<(i64, i64, Bytes, Bytes)> = self
            .store
            .borrow_mut()
            .range(ctx, &from, Some(&to))
            .into_iter()
            .filter_map(|(slot, v)| {
                let (start, end) = session_bounds(&slot, prefix_len)?;
                (start <= timestamp.saturating_add(gap)).then_some((start, end, slot, v))
            })
            .collect();
        let start = touching.iter().map(|t| t.0).fold(timestamp, i64::min);
        let end = touching.iter().map(|t| t.1).fold(timestamp, i64::max);
        if end < self.stream_time.saturating_sub(self.windows.grace_ms) {
            tracing::debug!(topic = %ctx.topic, offset = ctx.offset, "record too late for its session");
            return;
        }
        let mut aggregate = (self.init)();
        for (old_start, old_end, slot, stored) in touching {
            let Some(old) = decode(&*self.value, ctx, &stored) else {
                return;
            };
            aggregate = (self.merge)(&key, aggregate, old);
            if (old_start, old_end) != (start, end) {
                self.store.borrow_mut().put(ctx, slot, None);
                let gone = Windowed {
                    key: key.clone(),
                    start: old_start,
                    end: old_end,
                };
                self.children.retract(ctx, gone);
            }
        }
        let aggregate = (self.add)(&key, value, aggregate);
        let Some(encoded) = encode(&*self.value, ctx, &aggregate) else {
            return;
        };
        let slot = session_key(&bytes, start, end);
        self.store.borrow_mut().put(ctx, slot, Some(encoded));
        let windowed = Windowed { key, start, end };
        self.children.forward(ctx, windowed, aggregate);
        self.expire(ctx);
    }
}

/// Writes a session's [`Windowed`] key as Kafka's `SessionWindowedSerde` does: the key's
/// bytes, then the session's end and start as big-endian longs.
pub struct SessionWindowedSerde<S> {
    inner: S,
}

impl<S> SessionWindowedSerde<S> {
    /// Session keys, their keys through `inner`.
    pub fn new(inner: S) -> Self {
        SessionWindowedSerde { inner }
    }
}

impl<K: 'static, S: Serde<K>> Serde<Windowed<K>> for SessionWindowedSerde<S> {
    fn serialize(&self, topic: &str, value: &Windowed<K>) -> Result<Option<Bytes>, SerdeError> {
        let key = self.inner.serialize(topic, &value.key)?.unwrap_or_default();
        let mut out = BytesMut::with_capacity(key.len() + 16);
        out.put_slice(&key);
        out.put_i64(value.end);
        out.put_i64(value.start);
        Ok(Some(out.freeze()))
    }

    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let bytes = bytes.unwrap_or_default();
        let Some(split) = bytes.len().checked_sub(16) else {
            return Err(SerdeError {
                topic: topic.to_owned(),
                reason: format!("{} bytes are too few for a session key", bytes.len()),
            });
        };
        let (key, times) = bytes.split_at(split);
        let long = |b: &[u8]| {
            let mut array = [0u8; 8];
            array.copy_from_slice(b);
            i64::from_be_bytes(array)
        };
        Ok(Windowed {
            key: self.inner.deserialize(topic, Some(key))?,
            start: long(&times[8..]),
            end: long(&times[..8]),
        })
    }
}
