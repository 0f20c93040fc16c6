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
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::grouped::{KGroupedStream, KTable};
use super::stream::children;
use crate::processor::{Children, Downstream, Node, RecordContext};
use crate::serde::{Serde, SerdeError};
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

fn millis(d: Duration) -> i64 {
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
    table: KTable<Windowed<K>, V>,
    grace_end_ms: i64,
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
        self.aggregate(|| 0, |_, _, count| count + 1)
    }

    /// The values per key and window folded into an aggregate starting at
    /// `initializer()`.
    pub fn aggregate<VA>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> WindowedKTable<K, VA>
    where
        VA: Clone + 'static,
    {
        let step: StepFn<K, V, VA> = Arc::new(move |key: &K, value: V, current: Option<VA>| {
            aggregator(key, value, current.unwrap_or_else(&initializer))
        });
        let (windows, key_serde) = (self.windows, self.grouped.key_serde());
        let build: BuildFn = Arc::new(move |built: &[&Built], _: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(WindowAggregate {
                windows,
                key: key_serde.clone(),
                step: step.clone(),
                store: HashMap::new(),
                stream_time: i64::MIN,
                children: children::<Windowed<K>, VA>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let table = self.grouped.add_aggregation(build);
        WindowedKTable {
            table,
            grace_end_ms: self.windows.grace_ms,
        }
    }
}

impl<K, V> WindowedKTable<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The table itself (every update).
    pub fn table(&self) -> &KTable<Windowed<K>, V> {
        &self.table
    }
}

impl<K, V> WindowedKTable<K, V>
where
    K: Clone + PartialEq + 'static,
    V: Clone + 'static,
{
    /// Only each window's final result, emitted once stream time passes the window's end
    /// plus its grace period (Kafka Streams' `suppress(untilWindowCloses(...))`).
    pub fn suppress_until_window_closes(&self) -> KTable<Windowed<K>, V> {
        let grace = self.grace_end_ms;
        let build: BuildFn = Arc::new(move |built: &[&Built], _: &mut Stores| {
            let node: Node<Windowed<K>, V> = Rc::new(RefCell::new(Suppress {
                grace_ms: grace,
                buffer: BTreeMap::new(),
                arrivals: 0,
                stream_time: i64::MIN,
                children: children::<Windowed<K>, V>(built),
            }));
            Some(Box::new(node) as Built)
        });
        self.table.add_child("KTABLE-SUPPRESS", build)
    }
}

/// A windowed aggregation as built for a task.
struct WindowAggregate<K, V, VA> {
    windows: TimeWindows,
    key: Arc<dyn Serde<K>>,
    step: StepFn<K, V, VA>,
    /// The aggregate per (key bytes, window start).
    store: HashMap<(Bytes, i64), VA>,
    stream_time: i64,
    children: Children<Windowed<K>, VA>,
}

impl<K: Clone + 'static, V: Clone + 'static, VA: Clone + 'static> Downstream<K, V>
    for WindowAggregate<K, V, VA>
{
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let topic = ctx.topic.clone();
        let bytes = match self.key.serialize(&topic, &key) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return,
            Err(e) => {
                ctx.errors.push(format!("{topic}@{}: {e}", ctx.offset));
                return;
            }
        };
        let timestamp = ctx.timestamp;
        self.stream_time = self.stream_time.max(timestamp);
        let windows = self.windows;
        let starts: Vec<i64> = windows.starts(timestamp).collect();
        for start in starts {
            let end = start + windows.size_ms;
            // Closed: the record is too late for this window.
            if end.saturating_add(windows.grace_ms) <= self.stream_time {
                tracing::debug!(topic = %topic, offset = ctx.offset, start, "record too late for its window");
                continue;
            }
            let slot = (bytes.clone(), start);
            let current = self.store.remove(&slot);
            let next = (self.step)(&key, value.clone(), current);
            self.store.insert(slot, next.clone());
            let windowed = Windowed {
                key: key.clone(),
                start,
                end,
            };
            self.children.forward(ctx, windowed, next);
        }
        // Windows closed for good are dropped from the store.
        let horizon = self.stream_time;
        let (size, grace) = (windows.size_ms, windows.grace_ms);
        self.store
            .retain(|(_, start), _| (start + size).saturating_add(grace) > horizon);
    }
}

/// Suppression as built for a task: the latest result per window until it closes.
struct Suppress<K, V> {
    grace_ms: i64,
    /// Results waiting, by (window end, window start, arrival): emitted as windows close,
    /// within a window in the order of their last updates.
    buffer: BTreeMap<(i64, i64, u64), (Windowed<K>, V)>,
    /// Arrival numbers, so results of one window for different keys never collide.
    arrivals: u64,
    stream_time: i64,
    children: Children<Windowed<K>, V>,
}

impl<K: Clone + PartialEq + 'static, V: Clone + 'static> Downstream<Windowed<K>, V>
    for Suppress<K, V>
{
    fn process(&mut self, ctx: &mut RecordContext, key: Windowed<K>, value: V) {
        self.stream_time = self.stream_time.max(ctx.timestamp);
        // A newer result for the same window replaces the waiting one.
        self.buffer
            .retain(|_, (k, _)| !(k.key == key.key && k.start == key.start));
        let arrival = self.arrivals;
        self.arrivals += 1;
        self.buffer
            .insert((key.end, key.start, arrival), (key, value));
        while let Some(entry) = self.buffer.first_entry() {
            let (end, _, _) = *entry.key();
            if end.saturating_add(self.grace_ms) > self.stream_time {
                break;
            }
            let (windowed, value) = entry.remove();
            self.children.forward(ctx, windowed, value);
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
