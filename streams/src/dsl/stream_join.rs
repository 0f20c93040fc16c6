//! Stream-stream joins: records of two streams with the same key whose timestamps lie
//! within [`JoinWindows`] of each other are joined (inner, left, outer).
//!
//! ```text
//!  this ──▶ JOINTHIS:  store the record (this-store); look up other-store for the key
//!                      within ±window; emit joiner(this, other) for each match
//!  other ─▶ JOINOTHER: the same, mirrored        ──▶ both into one MERGE node
//!  left / outer: a record that found no match waits in the outer store; once stream
//!  time passes its timestamp + window + grace it is emitted alone (joiner(this, None)),
//!  unless a match came meanwhile (Kafka Streams' behaviour since 3.1)
//! ```
//!
//! Both streams must be co-partitioned (the runtime checks the partition counts). A record
//! older than stream time minus window and grace is dropped as late. The stores keep each
//! side's records by (key, timestamp, offset); records too old to match again are swept
//! out once per window of stream time.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::grouped::{decode, encode, serialize_key};
use super::keyed_time::{forget_before, keyed_time};
use super::stream::{children, KStream};
use super::windowed::{millis, ordered, unordered, CHANGELOG_EXTRA_RETENTION_MS};
use crate::processor::{Children, Downstream, Node, PassThrough, RecordContext};
use crate::serde::Serde;
use crate::state::{SharedStore, StoreKind};
use crate::topology::{BuildFn, Built, NodeKind, Stores};

/// How far apart in time two records may be to join: `difference` either way, with
/// records accepted up to `grace` late.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinWindows {
    difference_ms: i64,
    grace_ms: i64,
}

impl JoinWindows {
    /// Records at most `difference` apart join; records up to `grace` late are accepted.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        JoinWindows {
            difference_ms: i64::try_from(difference.as_millis()).unwrap_or(i64::MAX),
            grace_ms: millis(grace).max(0),
        }
    }
}

/// The serdes a stream-stream join keeps its records with: keys, this stream's values,
/// the other stream's values.
pub struct StreamJoined<K, V, VO> {
    key: Arc<dyn Serde<K>>,
    this: Arc<dyn Serde<V>>,
    other: Arc<dyn Serde<VO>>,
}

impl<K, V, VO> StreamJoined<K, V, VO> {
    /// Keys through `key`, this stream's values through `this`, the other's through `other`.
    pub fn with(key: impl Serde<K>, this: impl Serde<V>, other: impl Serde<VO>) -> Self {
        StreamJoined {
            key: Arc::new(key),
            this: Arc::new(this),
            other: Arc::new(other),
        }
    }
}

/// Which records are emitted without a match.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Inner,
    Left,
    Outer,
}

impl<K, V> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Each pair of records, one from each stream, with the same key and timestamps within
    /// `windows`, joined.
    pub fn join_stream<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(V, VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        serdes: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner = Arc::new(move |v: Option<V>, o: Option<VO>| match (v, o) {
            (Some(v), Some(o)) => Some(joiner(v, o)),
            _ => None,
        });
        self.windowed_join(other, joiner, windows, serdes, Kind::Inner)
    }

    /// As [`KStream::join_stream`], and each record of this stream that found no match by
    /// the time its window closed, joined with `None`.
    pub fn left_join_stream<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(V, Option<VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        serdes: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner = Arc::new(move |v: Option<V>, o: Option<VO>| v.map(|v| joiner(v, o)));
        self.windowed_join(other, joiner, windows, serdes, Kind::Left)
    }

    /// As [`KStream::left_join_stream`], for the records of both streams.
    pub fn outer_join_stream<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<V>, Option<VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        serdes: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner = Arc::new(move |v: Option<V>, o: Option<VO>| Some(joiner(v, o)));
        self.windowed_join(other, joiner, windows, serdes, Kind::Outer)
    }

    fn windowed_join<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: Joiner<V, VO, VR>,
        windows: JoinWindows,
        serdes: StreamJoined<K, V, VO>,
        kind: Kind,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let graph = self.graph.clone();
        let mut g = graph.borrow_mut();
        let retention_ms = windows
            .difference_ms
            .saturating_mul(2)
            .saturating_add(windows.grace_ms)
            .saturating_add(CHANGELOG_EXTRA_RETENTION_MS);
        let store_kind = StoreKind::Window { retention_ms };
        let this_store = g.name("KSTREAM-JOINTHIS-STORE");
        let this_store = g.add_store(this_store, store_kind, true);
        let other_store = g.name("KSTREAM-JOINOTHER-STORE");
        let other_store = g.add_store(other_store, store_kind, true);
        let outer_store = (kind != Kind::Inner).then(|| {
            let name = g.name("KSTREAM-OUTERSHARED-JOIN-STORE");
            g.add_store(name, store_kind, true)
        });
        let merge_build: BuildFn = Arc::new(|built: &[&Built], _: &mut Stores| {
            let node: Node<K, VR> = Rc::new(RefCell::new(PassThrough(children::<K, VR>(built))));
            Some(Box::new(node) as Built)
        });
        let merge = g.add("KSTREAM-MERGE", NodeKind::Processor, merge_build);
        let sides = Sides {
            key: serdes.key,
            left: serdes.this,
            right: serdes.other,
            windows,
            left_alone: kind != Kind::Inner,
            right_alone: kind == Kind::Outer,
        };
        let (left, right) = (sides.clone(), sides.clone());
        let (this_name, other_name, outer_name) =
            (this_store.clone(), other_store.clone(), outer_store.clone());
        let this_joiner = joiner.clone();
        let this_build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(LeftSide(JoinCore {
                sides: left.clone(),
                is_left: true,
                own: stores.get(&this_name)?,
                others: stores.get(&other_name)?,
                outer: match &outer_name {
                    Some(name) => Some(stores.get(name)?),
                    None => None,
                },
                joiner: this_joiner.clone(),
                swept_at: i64::MIN,
                children: children::<K, VR>(built),
            })));
            Some(Box::new(node) as Built)
        });
        let (this_name, other_name, outer_name) =
            (this_store.clone(), other_store.clone(), outer_store.clone());
        let other_build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let node: Node<K, VO> = Rc::new(RefCell::new(RightSide(JoinCore {
                sides: right.clone(),
                is_left: false,
                own: stores.get(&other_name)?,
                others: stores.get(&this_name)?,
                outer: match &outer_name {
                    Some(name) => Some(stores.get(name)?),
                    None => None,
                },
                joiner: joiner.clone(),
                swept_at: i64::MIN,
                children: children::<K, VR>(built),
            })));
            Some(Box::new(node) as Built)
        });
        let all_stores: Vec<String> = [Some(this_store), Some(other_store), outer_store]
            .into_iter()
            .flatten()
            .collect();
        let this_id = g.add("KSTREAM-JOINTHIS", NodeKind::Processor, this_build);
        let other_id = g.add("KSTREAM-JOINOTHER", NodeKind::Processor, other_build);
        for id in [this_id, other_id] {
            g.nodes[id].stores = all_stores.clone();
            g.nodes[id].children.push(merge);
        }
        g.nodes[self.node].children.push(this_id);
        g.nodes[other.node].children.push(other_id);
        drop(g);
        KStream::of(graph, merge)
    }
}

/// The join as both sides see it: (left value, right value) to a result, `None` for no
/// result (an inner join's unmatched record).
type Joiner<V, VO, VR> = Arc<dyn Fn(Option<V>, Option<VO>) -> Option<VR> + Send + Sync>;

/// What both sides of a join share.
struct Sides<K, V, VO> {
    key: Arc<dyn Serde<K>>,
    left: Arc<dyn Serde<V>>,
    right: Arc<dyn Serde<VO>>,
    windows: JoinWindows,
    /// Whether unmatched left (right) records are emitted alone.
    left_alone: bool,
    right_alone: bool,
}

impl<K, V, VO> Clone for Sides<K, V, VO> {
    fn clone(&self) -> Self {
        Sides {
            key: self.key.clone(),
            left: self.left.clone(),
            right: self.right.clone(),
            windows: self.windows,
            left_alone: self.left_alone,
            right_alone: self.right_alone,
        }
    }
}

/// The join's state and logic, shared by the two side nodes of a task through their own
/// copies (the stores are shared).
struct JoinCore<K, V, VO, VR> {
    sides: Sides<K, V, VO>,
    is_left: bool,
    own: SharedStore,
    others: SharedStore,
    outer: Option<SharedStore>,
    joiner: Joiner<V, VO, VR>,
    /// Stream time at the last sweep of records too old to join.
    swept_at: i64,
    children: Children<K, VR>,
}

/// Pairs this side's record with the other side's stored value bytes: (left, right).
type PairFn<'a, V, VO> = &'a dyn Fn(&mut RecordContext, &[u8]) -> Option<(Option<V>, Option<VO>)>;

impl<K: Clone + 'static, V: 'static, VO: 'static, VR: Clone + 'static> JoinCore<K, V, VO, VR> {
    fn process(&mut self, ctx: &mut RecordContext, key: K, own: Bytes, pair: PairFn<'_, V, VO>) {
        let Some(key_bytes) = serialize_key(&*self.sides.key, ctx, &key) else {
            return;
        };
        let (ts, offset) = (ctx.timestamp, ctx.offset);
        let stream_time = self
            .own
            .borrow()
            .observed_time()
            .max(self.others.borrow().observed_time())
            .max(ts);
        let JoinWindows {
            difference_ms: d,
            grace_ms: grace,
        } = self.sides.windows;
        if ts < stream_time.saturating_sub(d).saturating_sub(grace) {
            tracing::debug!(topic = %ctx.topic, offset, "record too late for its join window");
            return;
        }
        let slot = side_key(&key_bytes, ts, offset);
        self.own.borrow_mut().put(ctx, slot, Some(own.clone()));
        let from = side_key(&key_bytes, ts.saturating_sub(d), i64::MIN);
        let to = side_key(&key_bytes, ts.saturating_add(d), i64::MAX);
        let mut to = BytesMut::from(&to[..]);
        to.put_u8(0);
        let found = self.others.borrow_mut().range(ctx, &from, Some(&to));
        let prefix = 4 + key_bytes.len();
        let mut matched = false;
        for (slot, bytes) in found {
            let (Some(other_ts), Some(other_offset)) = (
                slot.get(prefix..).and_then(unordered),
                slot.get(prefix + 8..).and_then(unordered),
            ) else {
                continue;
            };
            let Some((left, right)) = pair(ctx, &bytes) else {
                continue;
            };
            matched = true;
            if let Some(outer) = &self.outer {
                // The other record found its match: it will not be emitted alone.
                let waiting = outer_key(other_ts, !self.is_left, other_offset, &key_bytes);
                if outer.borrow_mut().get(ctx, &waiting).is_some() {
                    outer.borrow_mut().put(ctx, waiting, None);
                }
            }
            if let Some(joined) = (self.joiner)(left, right) {
                let timestamp = ctx.timestamp;
                ctx.timestamp = ts.max(other_ts);
                self.children.forward(ctx, key.clone(), joined);
                ctx.timestamp = timestamp;
            }
        }
        let alone = if self.is_left {
            self.sides.left_alone
        } else {
            self.sides.right_alone
        };
        if !matched && alone {
            if let Some(outer) = &self.outer {
                let waiting = outer_key(ts, self.is_left, offset, &key_bytes);
                outer.borrow_mut().put(ctx, waiting, Some(own));
            }
        }
        self.emit_unmatched(ctx, stream_time);
        self.sweep(ctx, stream_time);
    }

    /// Emits, alone, the records whose window closed without a match.
    fn emit_unmatched(&mut self, ctx: &mut RecordContext, stream_time: i64) {
        let Some(outer) = self.outer.clone() else {
            return;
        };
        let JoinWindows {
            difference_ms: d,
            grace_ms: grace,
        } = self.sides.windows;
        let closed_before = ordered(stream_time.saturating_sub(d).saturating_sub(grace));
        let closed = outer.borrow_mut().range(ctx, &[], Some(&closed_before));
        for (slot, bytes) in closed {
            outer.borrow_mut().put(ctx, slot.clone(), None);
            let (Some(ts), Some(side)) = (unordered(&slot), slot.get(8)) else {
                continue;
            };
            let Ok(key) = self.sides.key.deserialize(&ctx.topic, slot.get(17..)) else {
                ctx.errors
                    .push("reading a join's waiting record".to_owned());
                continue;
            };
            let pair = if *side == 0 {
                decode(&*self.sides.left, ctx, &bytes).map(|v| (Some(v), None))
            } else {
                decode(&*self.sides.right, ctx, &bytes).map(|o| (None, Some(o)))
            };
            let Some((left, right)) = pair else {
                continue;
            };
            if let Some(joined) = (self.joiner)(left, right) {
                let timestamp = ctx.timestamp;
                ctx.timestamp = ts;
                self.children.forward(ctx, key, joined);
                ctx.timestamp = timestamp;
            }
        }
    }

    /// Drops records too old to join again from both side stores, once per window of
    /// stream time.
    fn sweep(&mut self, ctx: &mut RecordContext, stream_time: i64) {
        let JoinWindows {
            difference_ms: d,
            grace_ms: grace,
        } = self.sides.windows;
        if stream_time.saturating_sub(self.swept_at) <= d.max(1) {
            return;
        }
        self.swept_at = stream_time;
        let horizon = stream_time
            .saturating_sub(d.saturating_mul(2))
            .saturating_sub(grace);
        for store in [&self.own, &self.others] {
            forget_before(store, ctx, horizon);
        }
    }
}

/// The node of the join's left stream.
struct LeftSide<K, V, VO, VR>(JoinCore<K, V, VO, VR>);

/// The node of the join's right stream.
struct RightSide<K, V, VO, VR>(JoinCore<K, V, VO, VR>);

impl<K: Clone + 'static, V: Clone + 'static, VO: 'static, VR: Clone + 'static> Downstream<K, V>
    for LeftSide<K, V, VO, VR>
{
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let Some(own) = encode(&*self.0.sides.left, ctx, &value) else {
            return;
        };
        let right = self.0.sides.right.clone();
        let pair = move |ctx: &mut RecordContext, bytes: &[u8]| {
            decode(&*right, ctx, bytes).map(|o| (Some(value.clone()), Some(o)))
        };
        self.0.process(ctx, key, own, &pair);
    }
}

impl<K: Clone + 'static, V: 'static, VO: Clone + 'static, VR: Clone + 'static> Downstream<K, VO>
    for RightSide<K, V, VO, VR>
{
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: VO) {
        let Some(own) = encode(&*self.0.sides.right, ctx, &value) else {
            return;
        };
        let left = self.0.sides.left.clone();
        let pair = move |ctx: &mut RecordContext, bytes: &[u8]| {
            decode(&*left, ctx, bytes).map(|v| (Some(v), Some(value.clone())))
        };
        self.0.process(ctx, key, own, &pair);
    }
}

/// A side store's key: key part, timestamp, offset.
fn side_key(key: &[u8], timestamp: i64, offset: i64) -> Bytes {
    keyed_time(key, timestamp, offset)
}

/// The outer store's key: timestamp, side (0 left, 1 right), offset, key bytes.
fn outer_key(timestamp: i64, left: bool, offset: i64, key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(17 + key.len());
    out.put_slice(&ordered(timestamp));
    out.put_u8(u8::from(!left));
    out.put_i64(offset);
    out.put_slice(key);
    out.freeze()
}
