//! Foreign-key table joins: each row of the left table joined with the row of the right
//! table that a key extracted from its value names, the tables partitioned differently
//! (Kafka's KIP-213).
//!
//! ```text
//!  left row (k, v) ──fk = f(v)──▶ subscription topic, keyed by fk: (subscribe, k, hash(v))
//!                   (a changed fk also unsubscribes the old one)
//!  right task of fk: subscriptions store (fk, k) ──▶ response topic, keyed by k:
//!                   (hash, right row of fk)        ◀── also on every change of right row fk
//!  left task of k:  response whose hash matches the current v ──▶ joiner(v, right row)
//! ```
//!
//! A response computed for an older left value (its hash differs from the current one's)
//! is dropped: the response to the newer subscription follows. A deleted left row is
//! retracted at once; an inner join retracts a row whose right row is missing.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use strom_client::producer::partitioner::murmur2;

use super::grouped::{decode, encode, serialize_key, KTable, Lookup};
use super::stream::children;
use crate::processor::{Children, Downstream, Node, OutputRecord, PassThrough, RecordContext};
use crate::state::{SharedStore, StoreKind};
use crate::topology::{BuildFn, Built, NodeKind, SourceInput, SourceNode, Stores};

/// A joined row from the left value and the right row (`None`: no joined row).
type Joiner<V, VO, VR> = Arc<dyn Fn(V, Option<VO>) -> Option<VR> + Send + Sync>;
/// The foreign key in a left value.
type Extractor<V, KO> = Arc<dyn Fn(&V) -> KO + Send + Sync>;

const UNSUBSCRIBE: u8 = 0;
const SUBSCRIBE: u8 = 1;

impl<K, V> KTable<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Each row joined with the row of `other` whose key `foreign_key` extracts from its
    /// value; rows whose foreign row is missing are left out.
    pub fn join_on_foreign_key<KO, VO, VR>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(V, VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        KO: Clone + 'static,
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner = Arc::new(move |v, o: Option<VO>| o.map(|o| joiner(v, o)));
        self.foreign_key_join(other, Arc::new(foreign_key), joiner)
    }

    /// Each row joined with the row of `other` its foreign key names, `None` when missing.
    pub fn left_join_on_foreign_key<KO, VO, VR>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(V, Option<VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        KO: Clone + 'static,
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner = Arc::new(move |v, o: Option<VO>| Some(joiner(v, o)));
        self.foreign_key_join(other, Arc::new(foreign_key), joiner)
    }

    fn foreign_key_join<KO, VO, VR>(
        &self,
        other: &KTable<KO, VO>,
        extractor: Extractor<V, KO>,
        joiner: Joiner<V, VO, VR>,
    ) -> KTable<K, VR>
    where
        KO: Clone + 'static,
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let (Some(left), Some(right)) = (self.lookup.clone(), other.lookup.clone()) else {
            // Both sides need their stores; a DSL table always has one where it matters.
            let empty: BuildFn = Arc::new(|_: &[&Built], _: &mut Stores| None);
            return self.add_child("KTABLE-FK-JOIN", empty);
        };
        let graph = self.graph.clone();
        let mut g = graph.borrow_mut();
        let base = g.name("KTABLE-FK-JOIN");
        let subscriptions_topic = format!("{base}-subscription-registration-topic");
        let responses_topic = format!("{base}-subscription-response-topic");
        g.internal_topics.insert(subscriptions_topic.clone());
        g.internal_topics.insert(responses_topic.clone());
        let fk_store = g.add_store(format!("{base}-FK-STORE"), StoreKind::KeyValue, true);
        let sub_store = g.add_store(
            format!("{base}-SUBSCRIPTION-STORE"),
            StoreKind::KeyValue,
            true,
        );

        let merge_build: BuildFn = Arc::new(|built: &[&Built], _: &mut Stores| {
            let node: Node<K, VR> = Rc::new(RefCell::new(PassThrough(children::<K, VR>(built))));
            Some(Box::new(node) as Built)
        });
        let merge = g.add("KTABLE-FK-JOIN-OUTPUT", NodeKind::Processor, merge_build);

        // The left table's rows subscribe to their foreign keys.
        let (l, r, store, topic) = (
            left.clone(),
            right.clone(),
            fk_store.clone(),
            subscriptions_topic.clone(),
        );
        let subscribe_build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(Subscriber {
                left_store: stores.get(&l.store)?,
                left: l.clone(),
                right_key: r.key.clone(),
                extractor: extractor.clone(),
                foreign_keys: stores.get(&store)?,
                topic: topic.clone(),
                children: children::<K, VR>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let subscriber = g.add(
            "KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION",
            NodeKind::Processor,
            subscribe_build,
        );
        g.nodes[subscriber].stores = vec![fk_store, left.store.clone()];
        g.nodes[subscriber].children.push(merge);
        g.nodes[self.node].children.push(subscriber);

        // The right side keeps the subscriptions and answers them.
        let (r, store, topic) = (right.clone(), sub_store.clone(), responses_topic.clone());
        let registrations_build: BuildFn = Arc::new(move |_: &[&Built], stores: &mut Stores| {
            let source: SourceNode = Rc::new(RefCell::new(Registrations {
                right: stores.get(&r.store)?,
                subscriptions: stores.get(&store)?,
                topic: topic.clone(),
            }));
            Some(Box::new(source) as Built)
        });
        let kind = NodeKind::Source {
            topics: vec![subscriptions_topic],
        };
        let registrations = g.add(
            "KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR",
            kind,
            registrations_build,
        );
        g.nodes[registrations].stores = vec![sub_store.clone(), right.store.clone()];

        let (r, store, topic) = (right.clone(), sub_store.clone(), responses_topic.clone());
        let updates_build: BuildFn = Arc::new(move |_: &[&Built], stores: &mut Stores| {
            let node: Node<KO, VO> = Rc::new(RefCell::new(RightUpdates {
                right: r.clone(),
                subscriptions: stores.get(&store)?,
                topic: topic.clone(),
            }));
            Some(Box::new(node) as Built)
        });
        let updates = g.add(
            "KTABLE-FK-JOIN-SUBSCRIPTION-UPDATES",
            NodeKind::Processor,
            updates_build,
        );
        g.nodes[updates].stores.push(sub_store);
        g.nodes[other.node].children.push(updates);

        // Responses reach the left row's task and become joined rows.
        let l = left.clone();
        let r = right;
        let responses_build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let source: SourceNode = Rc::new(RefCell::new(Responses {
                left: l.clone(),
                left_store: stores.get(&l.store)?,
                right_value: r.value.clone(),
                joiner: joiner.clone(),
                children: children::<K, VR>(built),
            }));
            Some(Box::new(source) as Built)
        });
        let kind = NodeKind::Source {
            topics: vec![responses_topic],
        };
        let responses = g.add(
            "KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE",
            kind,
            responses_build,
        );
        g.nodes[responses].stores.push(left.store.clone());
        g.nodes[responses].children.push(merge);
        drop(g);
        KTable::of(graph, merge, None)
    }
}

/// The hash of a left value's bytes that responses carry, to tell stale ones.
fn value_hash(bytes: &[u8]) -> u32 {
    murmur2(bytes) as u32
}

/// A record for an internal topic, written like a sink's.
fn emit(ctx: &mut RecordContext, topic: &str, key: Bytes, value: Bytes) {
    ctx.outputs.push(OutputRecord {
        topic: topic.to_owned(),
        key: Some(key),
        value: Some(value),
        timestamp: ctx.timestamp,
        headers: Vec::new(),
    });
}

/// A subscription: operation, value hash, left key bytes.
fn subscription(op: u8, hash: u32, left_key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + left_key.len());
    out.put_u8(op);
    out.put_u32(hash);
    out.put_slice(left_key);
    out.freeze()
}

/// A response: value hash, then the right row's bytes if it exists.
fn response(hash: u32, right: Option<&[u8]>) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + right.map_or(0, <[u8]>::len));
    out.put_u32(hash);
    match right {
        Some(row) => {
            out.put_u8(1);
            out.put_slice(row);
        }
        None => out.put_u8(0),
    }
    out.freeze()
}

/// The subscriptions store's key: the foreign key's length and bytes, the left key.
fn subscription_key(foreign_key: &[u8], left_key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + foreign_key.len() + left_key.len());
    out.put_u32(u32::try_from(foreign_key.len()).unwrap_or(u32::MAX));
    out.put_slice(foreign_key);
    out.put_slice(left_key);
    out.freeze()
}

/// The smallest byte string above every string starting with `prefix` (`None`: none).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xff {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// The left table's rows as the join takes them: subscribing to their foreign keys.
struct Subscriber<K, V, KO, VR> {
    left: Lookup<K, V>,
    /// The left table's store: its bytes of a row are what responses are checked against.
    left_store: SharedStore,
    right_key: Arc<dyn crate::serde::Serde<KO>>,
    extractor: Extractor<V, KO>,
    /// Each left key's current foreign key.
    foreign_keys: SharedStore,
    topic: String,
    children: Children<K, VR>,
}

impl<K: Clone + 'static, V: 'static, KO: 'static, VR: Clone> Subscriber<K, V, KO, VR> {
    /// Unsubscribes `key_bytes` from its current foreign key, if it has one.
    fn unsubscribe(&mut self, ctx: &mut RecordContext, key_bytes: &Bytes) -> Option<Bytes> {
        let old = self.foreign_keys.borrow_mut().get(ctx, key_bytes)?;
        emit(
            ctx,
            &self.topic,
            old.clone(),
            subscription(UNSUBSCRIBE, 0, key_bytes),
        );
        Some(old)
    }
}

impl<K: Clone + 'static, V: 'static, KO: 'static, VR: Clone> Downstream<K, V>
    for Subscriber<K, V, KO, VR>
{
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let Some(key_bytes) = serialize_key(&*self.left.key, ctx, &key) else {
            return;
        };
        let stored = self.left_store.borrow_mut().get(ctx, &key_bytes);
        let Some(value_bytes) = stored.or_else(|| encode(&*self.left.value, ctx, &value)) else {
            return;
        };
        let foreign = (self.extractor)(&value);
        let Some(fk) = serialize_key(&*self.right_key, ctx, &foreign) else {
            return;
        };
        let old = self.foreign_keys.borrow_mut().get(ctx, &key_bytes);
        if old.as_ref().is_some_and(|old| *old != fk) {
            self.unsubscribe(ctx, &key_bytes);
        }
        self.foreign_keys
            .borrow_mut()
            .put(ctx, key_bytes.clone(), Some(fk.clone()));
        let hash = value_hash(&value_bytes);
        emit(
            ctx,
            &self.topic,
            fk,
            subscription(SUBSCRIBE, hash, &key_bytes),
        );
    }

    fn retract(&mut self, ctx: &mut RecordContext, key: K) {
        let Some(key_bytes) = serialize_key(&*self.left.key, ctx, &key) else {
            return;
        };
        if self.unsubscribe(ctx, &key_bytes).is_some() {
            self.foreign_keys.borrow_mut().put(ctx, key_bytes, None);
        }
        self.children.retract(ctx, key);
    }
}

/// The right side's subscriptions, as they arrive from the subscription topic.
struct Registrations {
    right: SharedStore,
    subscriptions: SharedStore,
    topic: String,
}

impl SourceInput for Registrations {
    fn process(&mut self, ctx: &mut RecordContext, key: Option<&[u8]>, value: Option<&[u8]>) {
        let (Some(fk), Some(value)) = (key, value) else {
            return;
        };
        let (Some(&op), Some(hash), Some(left_key)) = (
            value.first(),
            value
                .get(1..5)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes),
            value.get(5..),
        ) else {
            ctx.errors.push(format!(
                "{}@{}: a malformed subscription",
                ctx.topic, ctx.offset
            ));
            return;
        };
        let slot = subscription_key(fk, left_key);
        if op == UNSUBSCRIBE {
            self.subscriptions.borrow_mut().put(ctx, slot, None);
            return;
        }
        self.subscriptions.borrow_mut().put(
            ctx,
            slot,
            Some(Bytes::copy_from_slice(&hash.to_be_bytes())),
        );
        let row = self.right.borrow_mut().get(ctx, fk);
        let left_key = Bytes::copy_from_slice(left_key);
        emit(ctx, &self.topic, left_key, response(hash, row.as_deref()));
    }
}

/// Changes of the right table, answered to every left row subscribed to them.
struct RightUpdates<KO, VO> {
    right: Lookup<KO, VO>,
    subscriptions: SharedStore,
    topic: String,
}

impl<KO: 'static, VO: 'static> RightUpdates<KO, VO> {
    fn answer(&mut self, ctx: &mut RecordContext, key: &KO, row: Option<Bytes>) {
        let Some(fk) = serialize_key(&*self.right.key, ctx, key) else {
            return;
        };
        let prefix = subscription_key(&fk, &[]);
        let end = successor(&prefix);
        let subscribed = self
            .subscriptions
            .borrow_mut()
            .range(ctx, &prefix, end.as_deref());
        for (slot, hash) in subscribed {
            let Some(hash) = hash
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
            else {
                continue;
            };
            let left_key = slot.slice(prefix.len()..);
            emit(ctx, &self.topic, left_key, response(hash, row.as_deref()));
        }
    }
}

impl<KO: 'static, VO: 'static> Downstream<KO, VO> for RightUpdates<KO, VO> {
    fn process(&mut self, ctx: &mut RecordContext, key: KO, value: VO) {
        let Some(row) = encode(&*self.right.value, ctx, &value) else {
            return;
        };
        self.answer(ctx, &key, Some(row));
    }

    fn retract(&mut self, ctx: &mut RecordContext, key: KO) {
        self.answer(ctx, &key, None);
    }
}

/// Responses reaching the left row's task.
struct Responses<K, V, VO, VR> {
    left: Lookup<K, V>,
    left_store: SharedStore,
    right_value: Arc<dyn crate::serde::Serde<VO>>,
    joiner: Joiner<V, VO, VR>,
    children: Children<K, VR>,
}

impl<K: Clone + 'static, V: 'static, VO: 'static, VR: Clone> SourceInput
    for Responses<K, V, VO, VR>
{
    fn process(&mut self, ctx: &mut RecordContext, key: Option<&[u8]>, value: Option<&[u8]>) {
        let (Some(key_bytes), Some(value)) = (key, value) else {
            return;
        };
        let (Some(hash), Some(&present)) = (
            value
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes),
            value.get(4),
        ) else {
            ctx.errors.push(format!(
                "{}@{}: a malformed response",
                ctx.topic, ctx.offset
            ));
            return;
        };
        // The left row as it is now; a response for an older value is stale.
        let Some(current) = self.left_store.borrow_mut().get(ctx, key_bytes) else {
            return;
        };
        if value_hash(&current) != hash {
            return;
        }
        let Ok(key) = self.left.key.deserialize(&ctx.topic, Some(key_bytes)) else {
            ctx.errors
                .push(format!("{}@{}: an unreadable key", ctx.topic, ctx.offset));
            return;
        };
        let Some(left) = decode(&*self.left.value, ctx, &current) else {
            return;
        };
        let right = match (present, value.get(5..)) {
            (1, Some(row)) => match decode(&*self.right_value, ctx, row) {
                Some(row) => Some(row),
                None => return,
            },
            _ => None,
        };
        match (self.joiner)(left, right) {
            Some(joined) => self.children.forward(ctx, key, joined),
            None => self.children.retract(ctx, key),
        }
    }
}
