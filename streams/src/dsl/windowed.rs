//! Time windows: aggregations per key and window ([`TimeWindows`]: tumbling or hopping,
//! with a grace period), and [`WindowedKTable::suppress_until_window_closes`], which emits
//! each window's final result only.
//!
//! ```text
//!  record at t ──▶ windows [start, start + size) containing t ──▶ aggregate per (key, start)
//!       stream time = the largest timestamp seen; a window whose end + grace <= stream time
//!       is closed: records for it are dropped (late), and suppression emits its result
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::grouped::{decode, encode, serialize_key, KGroupedStream, KTable, Materialized};
use super::stream::children;
use crate::processor::{Children, Downstream, Node, RecordContext};
use crate::serde::{I64Serde, Serde, SerdeError};
use crate::state::{SharedStore, StoreKind};
use crate::topology::{BuildFn, Built, Stores};

/// A key and the window it was aggregated in: `[start, end)` in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window's start (inclusive).
    pub start: i64,
    /// The window's end (exclusive).
    pub end: i64,
}

/// Fixed-size time windows: tumbling (advancing by their size) or hopping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindows {
    size_ms: i64,
    advance_ms: i64,
    grace_ms: i64,
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

impl TimeWindows {
    /// Tumbling windows of `size` that accept records up to `grace` after they end.
    pub fn of_size_with_grace(size: Duration, grace: Duration) -> Self {
        let size_ms = millis(size);
        TimeWindows {
            size_ms,
            advance_ms: size_ms,
            grace_ms: i64::try_from(grace.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Hopping windows: a new one every `advance` (at most the size).
    pub fn advance_by(self, advance: Duration) -> Self {
        TimeWindows {
            advance_ms: millis(advance).min(self.size_ms),
            ..self
        }
    }

    /// Starts of the windows holding `timestamp`, oldest first.
    fn starts(&self, timestamp: i64) -> impl Iterator<Item = i64> + '_ {
        let last = timestamp - timestamp.rem_euclid(self.advance_ms);
        let first = last - (self.size_ms - 1) / self.advance_ms * self.advance_ms;
        (0..)
            .map(move |i| first + i * self.advance_ms)
            .take_while(move |&start| start <= last)
            .filter(move |&start| start + self.size_ms > timestamp && start >= 0)
    }
}

/// A grouped stream cut into time windows.
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
}

/// A table of per-window results (its key is [`Windowed`]), which can suppress
/// intermediate results.
pub struct WindowedKTable<K, V> {
    pub(crate) table: KTable<Windowed<K>, V>,
    pub(crate) grace_end_ms: i64,
    /// The aggregation's store, and the serdes of its keys and values.
    pub(crate) store: String,
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The grouped records aggregated per window as well as per key.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            grouped: self.clone(),
            windows,
        }
    }
}

/// One windowed aggregation step, as for [`KGroupedStream::aggregate`].
type StepFn<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

impl<K, V> TimeWindowedKStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The number of records per key and window.
    pub fn count(&self) -> WindowedKTable<K, i64> {
        self.aggregate(|| 0, |_, _, count| count + 1, Materialized::with(I64Serde))
    }

    /// The values per key and window folded into an aggregate starting at
    /// `initializer()`, kept as `materialized` says.
    pub fn aggregate<VA>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<VA>,
    ) -> WindowedKTable<K, VA>
    where
        VA: Clone + 'static,
    {
        let step: StepFn<K, V, VA> = Arc::new(move |key: &K, value: V, current: Option<VA>| {
            aggregator(key, value, current.unwrap_or_else(&initializer))
        });
        let windows = self.windows;
        let retention_ms = windows
            .size_ms
            .saturating_add(windows.grace_ms)
            .saturating_add(CHANGELOG_EXTRA_RETENTION_MS);
        let kind = StoreKind::Window { retention_ms };
        let name = self
            .grouped
            .store_name(materialized.name, kind, materialized.persistent);
        let (key, value) = (self.grouped.key_serde(), materialized.value);
        let (store_name, key_serde, value_serde) = (name.clone(), key.clone(), value.clone());
        let build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(WindowAggregate {
                windows,
                key: key_serde.clone(),
                value: value_serde.clone(),
                step: step.clone(),
                store: stores.get(&store_name)?,
                stream_time: i64::MIN,
                expired_through: i64::MIN,
                children: children::<Windowed<K>, VA>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let table = self.grouped.add_aggregation(build, name.clone());
        WindowedKTable {
            table,
            grace_end_ms: self.windows.grace_ms,
            store: name,
            key,
            value,
        }
    }
}

/// How long a window changelog keeps windows past their close (Kafka Streams'
/// `windowstore.changelog.additional.retention.ms`: one day).
pub(crate) const CHANGELOG_EXTRA_RETENTION_MS: i64 = 86_400_000;

impl<K, V> WindowedKTable<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The table itself (every update).
    pub fn table(&self) -> &KTable<Windowed<K>, V> {
        &self.table
    }

    /// The name of the store holding the windows (keys: the window start as 8 bytes
    /// ordered as numbers, then the key's bytes).
    pub fn store_name(&self) -> &str {
        &self.store
    }
}

impl<K, V> WindowedKTable<K, V>
where
    K: Clone + PartialEq + 'static,
    V: Clone + 'static,
{
    /// Only each window's final result, emitted once stream time passes the window's end
    /// plus its grace period (Kafka Streams' `suppress(untilWindowCloses(...))`). The
    /// results waiting are kept in a store of their own, changelogged like the others.
    pub fn suppress_until_window_closes(&self) -> KTable<Windowed<K>, V> {
        let grace = self.grace_end_ms;
        let name = {
            let mut graph = self.table.graph.borrow_mut();
            let name = graph.name("KTABLE-SUPPRESS-STATE-STORE");
            graph.add_store(name, StoreKind::KeyValue, false)
        };
        let (store_name, key, value) = (name.clone(), self.key.clone(), self.value.clone());
        let build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let node: Node<Windowed<K>, V> = Rc::new(RefCell::new(Suppress {
                grace_ms: grace,
                key: key.clone(),
                value: value.clone(),
                buffer: stores.get(&store_name)?,
                stream_time: i64::MIN,
                children: children::<Windowed<K>, V>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let table = self.table.add_child("KTABLE-SUPPRESS", build);
        table.graph.borrow_mut().nodes[table.node].stores.push(name);
        table
    }
}

/// A timestamp as 8 bytes that sort as the numbers do (the sign bit flipped).
pub(crate) fn ordered(timestamp: i64) -> [u8; 8] {
    (timestamp as u64 ^ (1 << 63)).to_be_bytes()
}

/// The timestamp [`ordered`] wrote at the start of `bytes`.
pub(crate) fn unordered(bytes: &[u8]) -> Option<i64> {
    let array: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(array) ^ (1 << 63)) as i64)
}

/// A window store's key: the window start first, so closed windows are a prefix range.
fn window_key(start: i64, key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + key.len());
    out.put_slice(&ordered(start));
    out.put_slice(key);
    out.freeze()
}

/// A windowed aggregation as built for a task.
struct WindowAggregate<K, V, VA> {
    windows: TimeWindows,
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<VA>>,
    step: StepFn<K, V, VA>,
    /// The aggregate per (window start, key bytes).
    store: SharedStore,
    stream_time: i64,
    /// The newest window start already dropped from the store as closed.
    expired_through: i64,
    children: Children<Windowed<K>, VA>,
}

impl<K: Clone + 'static, V: Clone + 'static, VA: Clone + 'static> Downstream<K, V>
    for WindowAggregate<K, V, VA>
{
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let Some(bytes) = serialize_key(&*self.key, ctx, &key) else {
            return;
        };
        let timestamp = ctx.timestamp;
        // After a restart, stream time resumes from what the store was restored with.
        let restored = self.store.borrow().observed_time();
        self.stream_time = self.stream_time.max(restored).max(timestamp);
        let windows = self.windows;
        let starts: Vec<i64> = windows.starts(timestamp).collect();
        for start in starts {
            let end = start + windows.size_ms;
            // Closed: the record is too late for this window.
            if end.saturating_add(windows.grace_ms) <= self.stream_time {
                tracing::debug!(topic = %ctx.topic, offset = ctx.offset, start, "record too late for its window");
                continue;
            }
            let slot = window_key(start, &bytes);
            let stored = self.store.borrow_mut().get(ctx, &slot);
            let current = match stored {
                Some(stored) => match decode(&*self.value, ctx, &stored) {
                    Some(current) => Some(current),
                    None => continue,
                },
                None => None,
            };
            let next = (self.step)(&key, value.clone(), current);
            let Some(encoded) = encode(&*self.value, ctx, &next) else {
                continue;
            };
            self.store.borrow_mut().put(ctx, slot, Some(encoded));
            let windowed = Windowed {
                key: key.clone(),
                start,
                end,
            };
            self.children.forward(ctx, windowed, next);
        }
        // Windows closed for good leave the store (not the changelog: its retention
        // drops them there).
        let first_open = self
            .stream_time
            .saturating_sub(windows.grace_ms)
            .saturating_sub(windows.size_ms)
            .saturating_add(1);
        // Window starts are multiples of the advance: the closed set only grows when the
        // newest closed start does, so the store is scanned once per window, not per record.
        let newest_closed = (first_open - 1).div_euclid(windows.advance_ms) * windows.advance_ms;
        if newest_closed > self.expired_through {
            self.expired_through = newest_closed;
            let mut store = self.store.borrow_mut();
            for (closed, _) in store.range(ctx, &[], Some(&ordered(first_open))) {
                store.forget(ctx, &closed);
            }
        }
    }
}

/// Suppression as built for a task: the latest result per window until it closes.
struct Suppress<K, V> {
    grace_ms: i64,
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<V>>,
    /// Results waiting, by (window end, window start, key bytes): emitted as windows
    /// close, in that order (as Kafka's time-ordered buffer).
    buffer: SharedStore,
    stream_time: i64,
    children: Children<Windowed<K>, V>,
}

/// A suppression buffer's key: window end, window start, key bytes.
fn suppress_slot<K>(key: &Windowed<K>, key_bytes: &[u8]) -> Bytes {
    let mut slot = BytesMut::with_capacity(16 + key_bytes.len());
    slot.put_slice(&ordered(key.end));
    slot.put_slice(&ordered(key.start));
    slot.put_slice(key_bytes);
    slot.freeze()
}

impl<K: Clone + PartialEq + 'static, V: Clone + 'static> Downstream<Windowed<K>, V>
    for Suppress<K, V>
{
    /// A window that no longer exists (a session merged into another) is not emitted.
    fn retract(&mut self, ctx: &mut RecordContext, key: Windowed<K>) {
        let Some(key_bytes) = serialize_key(&*self.key, ctx, &key.key) else {
            return;
        };
        let slot = suppress_slot(&key, &key_bytes);
        let waiting = self.buffer.borrow_mut().get(ctx, &slot).is_some();
        if waiting {
            self.buffer.borrow_mut().put(ctx, slot, None);
        }
    }

    fn process(&mut self, ctx: &mut RecordContext, key: Windowed<K>, value: V) {
        let restored = self.buffer.borrow().observed_time();
        self.stream_time = self.stream_time.max(restored).max(ctx.timestamp);
        let Some(key_bytes) = serialize_key(&*self.key, ctx, &key.key) else {
            return;
        };
        let Some(encoded) = encode(&*self.value, ctx, &value) else {
            return;
        };
        // A newer result for the same window replaces the waiting one.
        let slot = suppress_slot(&key, &key_bytes);
        self.buffer.borrow_mut().put(ctx, slot, Some(encoded));
        let closed_before = self
            .stream_time
            .saturating_sub(self.grace_ms)
            .saturating_add(1);
        let closed = self
            .buffer
            .borrow_mut()
            .range(ctx, &[], Some(&ordered(closed_before)));
        for (slot, bytes) in closed {
            self.buffer.borrow_mut().put(ctx, slot.clone(), None);
            let (Some(end), Some(start)) = (unordered(&slot), slot.get(8..).and_then(unordered))
            else {
                continue;
            };
            let key = match self.key.deserialize(&ctx.topic, slot.get(16..)) {
                Ok(key) => key,
                Err(e) => {
                    ctx.errors.push(format!("reading a suppressed window: {e}"));
                    continue;
                }
            };
            let Some(value) = decode(&*self.value, ctx, &bytes) else {
                continue;
            };
            self.children
                .forward(ctx, Windowed { key, start, end }, value);
        }
    }
}

/// Writes a [`Windowed`] key as Kafka's `TimeWindowedSerde` does: the key's bytes, then
/// the window start as a big-endian long (the end follows from the window size).
pub struct WindowedSerde<S> {
    inner: S,
    size_ms: i64,
}

impl<S> WindowedSerde<S> {
    /// Windowed keys of windows of `size`, their keys through `inner`.
    pub fn new(inner: S, size: Duration) -> Self {
        WindowedSerde {
            inner,
            size_ms: millis(size),
        }
    }
}

impl<K: 'static, S: Serde<K>> Serde<Windowed<K>> for WindowedSerde<S> {
    fn serialize(&self, topic: &str, value: &Windowed<K>) -> Result<Option<Bytes>, SerdeError> {
        let key = self.inner.serialize(topic, &value.key)?.unwrap_or_default();
        let mut out = BytesMut::with_capacity(key.len() + 8);
        out.put_slice(&key);
        out.put_i64(value.start);
        Ok(Some(out.freeze()))
    }

    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let bytes = bytes.unwrap_or_default();
        let Some(split) = bytes.len().checked_sub(8) else {
            return Err(SerdeError {
                topic: topic.to_owned(),
                reason: format!("{} bytes are too few for a windowed key", bytes.len()),
            });
        };
        let (key, start) = bytes.split_at(split);
        let mut array = [0u8; 8];
        array.copy_from_slice(start);
        let start = i64::from_be_bytes(array);
        Ok(Windowed {
            key: self.inner.deserialize(topic, Some(key))?,
            start,
            end: start.saturating_add(self.size_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_and_hopping_windows_hold_a_timestamp() {
        let tumbling = TimeWindows::of_size_with_grace(Duration::from_secs(60), Duration::ZERO);
        assert_eq!(tumbling.starts(125_000).collect::<Vec<_>>(), [120_000]);
        assert_eq!(tumbling.starts(0).collect::<Vec<_>>(), [0]);
        let hopping = tumbling.advance_by(Duration::from_secs(20));
        assert_eq!(
            hopping.starts(125_000).collect::<Vec<_>>(),
            [80_000, 100_000, 120_000]
        );
        assert_eq!(hopping.starts(5_000).collect::<Vec<_>>(), [0]);
    }
}
