//! Sliding windows: per key, a window for each distinct set of records within a time
//! difference of each other ([`SlidingWindows`], Kafka's KIP-450).
//!
//! ```text
//!  difference 10, records of a key at 0 and 5:
//!    left window of 0: [-10, 0] = {0}; left window of 5: [-5, 5] = {0, 5};
//!    right window of 0: [1, 11] = {5}   (right windows only when they hold a record)
//! ```
//!
//! Windows are inclusive at both ends. The node keeps the key's records of the last two
//! differences plus grace in a store, by (key, timestamp, offset); a record updates the
//! windows that contain it (its own left window, the left windows of later records and
//! the right windows of earlier ones) and creates its right window if later records fall
//! in it, each recomputed from the stored records and forwarded. Windows already closed
//! (end + grace before stream time) are not updated; a record no open window would hold
//! is dropped as late.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::grouped::{decode, encode, serialize_key, KGroupedStream, Materialized};
use super::keyed_time::{forget_before, keyed_time};
use super::stream::children;
use super::windowed::{millis, unordered, Windowed, WindowedKTable, CHANGELOG_EXTRA_RETENTION_MS};
use crate::processor::{Children, Downstream, Node, RecordContext};
use crate::serde::{I64Serde, Serde};
use crate::state::{SharedStore, StoreKind};
use crate::topology::{BuildFn, Built, Stores};

/// Windows of records at most `difference` apart, accepting records up to `grace` late.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlidingWindows {
    difference_ms: i64,
    grace_ms: i64,
}

impl SlidingWindows {
    /// Windows spanning `difference`; records accepted up to `grace` after a window ends.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        SlidingWindows {
            difference_ms: millis(difference),
            grace_ms: i64::try_from(grace.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// A grouped stream cut into sliding windows.
pub struct SlidingWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SlidingWindows,
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The grouped records aggregated per key and sliding window.
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingWindowedKStream<K, V> {
        SlidingWindowedKStream {
            grouped: self.clone(),
            windows,
        }
    }
}

/// Folds a record into an aggregate.
type AddFn<K, V, VA> = Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync>;

impl<K, V> SlidingWindowedKStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The number of records per key and window.
    pub fn count(&self) -> WindowedKTable<K, i64> {
        self.aggregate(|| 0, |_, _, n| n + 1, Materialized::with(I64Serde))
    }

    /// The values per key and window folded into an aggregate starting at
    /// `initializer()` (`materialized` names the store and serializes the aggregates it
    /// emits; the store keeps the records themselves, through the grouping's value serde).
    pub fn aggregate<VA>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<VA>,
    ) -> WindowedKTable<K, VA>
    where
        VA: Clone + 'static,
    {
        let windows = self.windows;
        let retention_ms = windows
            .difference_ms
            .saturating_mul(2)
            .saturating_add(windows.grace_ms)
            .saturating_add(CHANGELOG_EXTRA_RETENTION_MS);
        let kind = StoreKind::Window { retention_ms };
        let name = self
            .grouped
            .store_name(materialized.name, kind, materialized.persistent);
        let key = self.grouped.key_serde();
        let records = self.grouped.value_serde();
        let init: Arc<dyn Fn() -> VA + Send + Sync> = Arc::new(initializer);
        let add: AddFn<K, V, VA> = Arc::new(aggregator);
        let (store_name, key_serde) = (name.clone(), key.clone());
        let build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(SlidingAggregate {
                windows,
                key: key_serde.clone(),
                records: records.clone(),
                init: init.clone(),
                add: add.clone(),
                store: stores.get(&store_name)?,
                swept_at: i64::MIN,
                children: children::<Windowed<K>, VA>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let table = self.grouped.add_aggregation(build, name.clone());
        WindowedKTable {
            table,
            grace_end_ms: windows.grace_ms,
            store: name,
            key,
            value: materialized.value,
        }
    }
}

/// The store key of a record: key part, timestamp, offset.
fn record_key(key: &[u8], timestamp: i64, offset: i64) -> Bytes {
    keyed_time(key, timestamp, offset)
}

/// A sliding aggregation as built for a task.
struct SlidingAggregate<K, V, VA> {
    windows: SlidingWindows,
    key: Arc<dyn Serde<K>>,
    records: Arc<dyn Serde<V>>,
    init: Arc<dyn Fn() -> VA + Send + Sync>,
    add: AddFn<K, V, VA>,
    /// The key's records by (key, timestamp, offset).
    store: SharedStore,
    swept_at: i64,
    children: Children<Windowed<K>, VA>,
}

impl<K: Clone + 'static, V: Clone + 'static, VA: Clone + 'static> SlidingAggregate<K, V, VA> {
    /// The key's stored record timestamps in `[from, to]`, with their values, in order.
    fn records(
        &self,
        ctx: &mut RecordContext,
        key: &[u8],
        from: i64,
        to: i64,
    ) -> Vec<(i64, Bytes)> {
        let start = record_key(key, from, i64::MIN);
        let mut end = BytesMut::from(&record_key(key, to, i64::MAX)[..]);
        end.put_u8(0);
        let prefix = 4 + key.len();
        self.store
            .borrow_mut()
            .range(ctx, &start, Some(&end))
            .into_iter()
            .filter_map(|(slot, value)| Some((slot.get(prefix..).and_then(unordered)?, value)))
            .collect()
    }

    /// Drops records no open window can hold, once per difference of stream time.
    fn sweep(&mut self, ctx: &mut RecordContext, stream_time: i64) {
        let d = self.windows.difference_ms;
        if stream_time.saturating_sub(self.swept_at) <= d {
            return;
        }
        self.swept_at = stream_time;
        let horizon = stream_time
            .saturating_sub(d.saturating_mul(2))
            .saturating_sub(self.windows.grace_ms)
            .saturating_sub(1);
        forget_before(&self.store, ctx, horizon);
    }
}

impl<K: Clone + 'static, V: Clone + 'static, VA: Clone + 'static> Downstream<K, V>
    for SlidingAggregate<K, V, VA>
{
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let Some(key_bytes) = serialize_key(&*self.key, ctx, &key) else {
            return;
        };
        let ts = ctx.timestamp;
        let (d, grace) = (self.windows.difference_ms, self.windows.grace_ms);
        let stream_time = self.store.borrow().observed_time().max(ts);
        let close = |end: i64| end.saturating_add(grace) < stream_time;
        // The last window that could hold the record is the right window of one just
        // before it, ending at ts + d.
        if close(ts.saturating_add(d)) {
            tracing::debug!(topic = %ctx.topic, offset = ctx.offset, "record too late for its windows");
            return;
        }
        let Some(encoded) = encode(&*self.records, ctx, &value) else {
            return;
        };
        let slot = record_key(&key_bytes, ts, ctx.offset);
        self.store.borrow_mut().put(ctx, slot, Some(encoded));
        // Windows by start (end = start + d): the record's left window, its right window
        // if a later record falls in it, the left windows of later records and the right
        // windows of earlier ones that hold it.
        let near = self.records(
            ctx,
            &key_bytes,
            ts.saturating_sub(d + 1),
            ts.saturating_add(d + 1),
        );
        let mut starts = BTreeSet::from([ts.saturating_sub(d)]);
        if near.iter().any(|(t, _)| *t > ts) {
            starts.insert(ts + 1);
        }
        for (t, _) in &near {
            if *t > ts && *t <= ts + d {
                starts.insert(t - d);
            }
            if *t < ts && *t + 1 + d >= ts {
                starts.insert(t + 1);
            }
        }
        for start in starts {
            let end = start + d;
            if close(end) {
                continue;
            }
            let mut aggregate = (self.init)();
            let mut held = 0;
            for (_, bytes) in self.records(ctx, &key_bytes, start, end) {
                let Some(v) = decode(&*self.records, ctx, &bytes) else {
                    continue;
                };
                aggregate = (self.add)(&key, v, aggregate);
                held += 1;
            }
            if held > 0 {
                let windowed = Windowed {
                    key: key.clone(),
                    start,
                    end,
                };
                self.children.forward(ctx, windowed, aggregate);
            }
        }
        self.sweep(ctx, stream_time);
    }
}
