//! Grouping and aggregation: [`KGroupedStream`] (records grouped by key) and the
//! [`KTable`] an aggregation makes (the latest value per key, its changes flowing on).
//!
//! An aggregation keeps its state in a key-value store of the task, keyed by the key's
//! bytes (the grouping serde's), so any key type works; each update is forwarded, as
//! Kafka Streams does without caching.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use super::stream::{children, KStream};
use super::Graph;
use crate::processor::{Children, Downstream, Node, PassThrough, RecordContext};
use crate::serde::{I64Serde, Serde};
use crate::state::{SharedStore, StoreKind};
use crate::topology::{BuildFn, Built, NodeKind, Stores};

/// How a grouping writes keys and values (for its store and, later, its repartition
/// topic and changelog).
pub struct Grouped<K, V> {
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
}

impl<K, V> Grouped<K, V> {
    /// Keys written with `key`, values with `value`.
    pub fn with(key: impl Serde<K>, value: impl Serde<V>) -> Self {
        Grouped {
            key: Arc::new(key),
            value: Arc::new(value),
        }
    }
}

impl<K, V> Clone for Grouped<K, V> {
    fn clone(&self) -> Self {
        Grouped {
            key: self.key.clone(),
            value: self.value.clone(),
        }
    }
}

/// A stream grouped by key, ready to aggregate (Kafka Streams' `KGroupedStream`).
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    grouped: Grouped<K, V>,
}

/// How an aggregation keeps its results: the value serde (for its store and changelog),
/// the store's name, and whether it lives on disk (the default) or in memory.
pub struct Materialized<V> {
    pub(crate) value: Arc<dyn Serde<V>>,
    pub(crate) name: Option<String>,
    pub(crate) persistent: bool,
}

impl<V> Materialized<V> {
    /// Values written with `value`, in a persistent store named by the topology.
    pub fn with(value: impl Serde<V>) -> Self {
        Materialized {
            value: Arc::new(value),
            name: None,
            persistent: true,
        }
    }

    /// The store named `name` (its changelog is `<application.id>-<name>-changelog`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The store kept in memory (rebuilt from its changelog when a task starts).
    pub fn in_memory(mut self) -> Self {
        self.persistent = false;
        self
    }
}

/// A table: the latest value per key, whose updates flow to what is built on it.
pub struct KTable<K, V> {
    pub(crate) graph: Rc<RefCell<Graph>>,
    pub(crate) node: usize,
    /// Where the table's latest values are kept, for joins: its store and serdes.
    pub(crate) lookup: Option<Lookup<K, V>>,
    _types: PhantomData<fn() -> (K, V)>,
}

/// A table's store (latest value bytes per key bytes) and the serdes of its entries.
pub(crate) struct Lookup<K, V> {
    pub(crate) store: String,
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
}

impl<K, V> Clone for Lookup<K, V> {
    fn clone(&self) -> Self {
        Lookup {
            store: self.store.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
        }
    }
}

impl<K: 'static, V: 'static> Lookup<K, V> {
    /// The value of `key` in the task's store, `None` when absent or unreadable (reported
    /// on `ctx`).
    pub(crate) fn get(&self, store: &SharedStore, ctx: &mut RecordContext, key: &K) -> Option<V> {
        let bytes = serialize_key(&*self.key, ctx, key)?;
        let found = store.borrow_mut().get(ctx, &bytes)?;
        decode(&*self.value, ctx, &found)
    }
}

/// `key`'s bytes, `None` for a null key or a failure (reported on `ctx`).
pub(crate) fn serialize_key<K: 'static>(
    serde: &dyn Serde<K>,
    ctx: &mut RecordContext,
    key: &K,
) -> Option<Bytes> {
    match serde.serialize(&ctx.topic, key) {
        Ok(Some(bytes)) => Some(bytes),
        Ok(None) => {
            tracing::debug!(topic = %ctx.topic, offset = ctx.offset, "skipping a record without key");
            None
        }
        Err(e) => {
            ctx.errors
                .push(format!("{}@{}: {e}", ctx.topic, ctx.offset));
            None
        }
    }
}

/// A stored value read back, `None` on failure (reported on `ctx`).
pub(crate) fn decode<V: 'static>(
    serde: &dyn Serde<V>,
    ctx: &mut RecordContext,
    bytes: &[u8],
) -> Option<V> {
    match serde.deserialize(&ctx.topic, Some(bytes)) {
        Ok(value) => Some(value),
        Err(e) => {
            ctx.errors.push(format!(
                "reading state for {}@{}: {e}",
                ctx.topic, ctx.offset
            ));
            None
        }
    }
}

/// A value's bytes for a store, `None` on failure (reported on `ctx`).
pub(crate) fn encode<V: 'static>(
    serde: &dyn Serde<V>,
    ctx: &mut RecordContext,
    value: &V,
) -> Option<Bytes> {
    match serde.serialize(&ctx.topic, value) {
        Ok(bytes) => Some(bytes.unwrap_or_default()),
        Err(e) => {
            ctx.errors.push(format!(
                "writing state for {}@{}: {e}",
                ctx.topic, ctx.offset
            ));
            None
        }
    }
}

impl<K, V> KTable<K, V> {
    /// The table of node `node`, its values in `lookup`'s store.
    pub(crate) fn of(graph: Rc<RefCell<Graph>>, node: usize, lookup: Option<Lookup<K, V>>) -> Self {
        KTable {
            graph,
            node,
            lookup,
            _types: PhantomData,
        }
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The records grouped by their key.
    pub fn group_by_key(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.repartitioned_for(grouped.key.clone(), grouped.value.clone()),
            grouped,
        }
    }

    /// The records grouped by a key computed from each (a key change).
    pub fn group_by<K2>(
        &self,
        key: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V>
    where
        K2: Clone + 'static,
    {
        self.select_key(key).group_by_key(grouped)
    }
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The number of records per key.
    pub fn count(&self) -> KTable<K, i64> {
        self.aggregate(|| 0, |_, _, count| count + 1, Materialized::with(I64Serde))
    }

    /// Each key's values combined with `reducer` (the first one as it is).
    pub fn reduce(&self, reducer: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V> {
        let reducer = Arc::new(reducer);
        let materialized = Materialized {
            value: self.grouped.value.clone(),
            name: None,
            persistent: true,
        };
        self.aggregate_with(
            Arc::new(move |_: &K, value: V, current: Option<V>| match current {
                Some(current) => reducer(current, value),
                None => value,
            }),
            materialized,
        )
    }

    /// Each key's values folded into an aggregate starting at `initializer()`, kept as
    /// `materialized` says.
    pub fn aggregate<VA>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<VA>,
    ) -> KTable<K, VA>
    where
        VA: Clone + 'static,
    {
        self.aggregate_with(
            Arc::new(move |key: &K, value: V, current: Option<VA>| {
                aggregator(key, value, current.unwrap_or_else(&initializer))
            }),
            materialized,
        )
    }

    /// The aggregation node: `step` gives a key's new aggregate from a value and the
    /// current one (`None` for a new key).
    fn aggregate_with<VA>(
        &self,
        step: StepFn<K, V, VA>,
        materialized: Materialized<VA>,
    ) -> KTable<K, VA>
    where
        VA: Clone + 'static,
    {
        let store_name = self.store_name(
            materialized.name,
            StoreKind::KeyValue,
            materialized.persistent,
        );
        let lookup = Lookup {
            store: store_name.clone(),
            key: self.grouped.key.clone(),
            value: materialized.value,
        };
        let (name, table) = (store_name.clone(), lookup.clone());
        let build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(Aggregate {
                table: table.clone(),
                step: step.clone(),
                store: stores.get(&name)?,
                children: children::<K, VA>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let mut table = self.add_aggregation(build, store_name);
        table.lookup = Some(lookup);
        table
    }

    /// Registers the store of an aggregation: `name`, or one the graph gives.
    pub(crate) fn store_name(
        &self,
        name: Option<String>,
        kind: StoreKind,
        persistent: bool,
    ) -> String {
        let mut graph = self.stream.graph.borrow_mut();
        let name = name.unwrap_or_else(|| graph.name("KSTREAM-AGGREGATE-STATE-STORE"));
        graph.add_store(name, kind, persistent)
    }

    /// Adds an aggregation node using store `store` below the grouped stream.
    pub(crate) fn add_aggregation<K2, VA>(&self, build: BuildFn, store: String) -> KTable<K2, VA> {
        let graph = self.stream.graph.clone();
        let mut g = graph.borrow_mut();
        let id = g.add("KSTREAM-AGGREGATE", NodeKind::Processor, build);
        g.nodes[id].stores.push(store);
        g.nodes[self.stream.node].children.push(id);
        drop(g);
        KTable::of(graph, id, None)
    }

    /// The grouping's key serde.
    pub(crate) fn key_serde(&self) -> Arc<dyn Serde<K>> {
        self.grouped.key.clone()
    }

    /// The grouping's value serde.
    pub(crate) fn value_serde(&self) -> Arc<dyn Serde<V>> {
        self.grouped.value.clone()
    }
}

impl<K, V> Clone for KGroupedStream<K, V> {
    fn clone(&self) -> Self {
        KGroupedStream {
            stream: self.stream.clone(),
            grouped: self.grouped.clone(),
        }
    }
}

impl<K, V> KTable<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The name of the store holding the table (`None` for a table derived without one,
    /// such as a suppression's).
    pub fn store_name(&self) -> Option<&str> {
        self.lookup.as_ref().map(|l| l.store.as_str())
    }

    /// The table's updates as a stream.
    /// Rows that leave the table (tombstones) become records with a null value at a sink.
    pub fn to_stream(&self) -> KStream<K, V> {
        let build: BuildFn = Arc::new(|built: &[&Built], _: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(PassThrough(children::<K, V>(built))));
            Some(Box::new(node) as Built)
        });
        let table: KTable<K, V> = self.add_child("KTABLE-TOSTREAM", build);
        KStream::of(self.graph.clone(), table.node)
    }

    /// Adds a table operation built by `build` below this table.
    pub(crate) fn add_child<V2>(&self, prefix: &str, build: BuildFn) -> KTable<K, V2> {
        let mut g = self.graph.borrow_mut();
        let id = g.add(prefix, NodeKind::Processor, build);
        g.nodes[self.node].children.push(id);
        KTable::of(self.graph.clone(), id, None)
    }
}

/// One aggregation step: a key, a value and the current aggregate to the new one.
pub(crate) type StepFn<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

/// An aggregation as built for a task, with its store.
pub(crate) struct Aggregate<K, V, VA> {
    /// The store's serdes (its name is the store's).
    pub(crate) table: Lookup<K, VA>,
    pub(crate) step: StepFn<K, V, VA>,
    /// The aggregate per key, shared with joins on the table.
    pub(crate) store: SharedStore,
    pub(crate) children: Children<K, VA>,
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> Downstream<K, V> for Aggregate<K, V, VA> {
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        // As Kafka Streams: records without a key are not aggregated.
        let Some(bytes) = serialize_key(&*self.table.key, ctx, &key) else {
            return;
        };
        let stored = self.store.borrow_mut().get(ctx, &bytes);
        let current = match stored {
            Some(stored) => match decode(&*self.table.value, ctx, &stored) {
                Some(current) => Some(current),
                None => return,
            },
            None => None,
        };
        let next = (self.step)(&key, value, current);
        let Some(encoded) = encode(&*self.table.value, ctx, &next) else {
            return;
        };
        self.store.borrow_mut().put(ctx, bytes, Some(encoded));
        self.children.forward(ctx, key, next);
    }
}
