//! Grouping and aggregation: [`KGroupedStream`] (records grouped by key) and the
//! [`KTable`] an aggregation makes (the latest value per key, its changes flowing on).
//!
//! An aggregation keeps its state in a key-value store of the task, keyed by the key's
//! bytes (the grouping serde's), so any key type works; each update is forwarded, as
//! Kafka Streams does without caching.

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use super::stream::{children, KStream};
use super::Graph;
use crate::processor::{Children, Downstream, Node, RecordContext};
use crate::serde::Serde;
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
    stream: KStream<K, V>,
    grouped: Grouped<K, V>,
}

/// A table: the latest value per key, whose updates flow to what is built on it.
pub struct KTable<K, V> {
    pub(crate) graph: Rc<RefCell<Graph>>,
    pub(crate) node: usize,
    /// Where the table's latest values are kept, for joins: its store and key serde.
    pub(crate) lookup: Option<Lookup<K>>,
    _types: PhantomData<fn() -> (K, V)>,
}

/// A table's store (latest value per key bytes) and the serde of its keys.
pub(crate) struct Lookup<K> {
    pub(crate) store: String,
    pub(crate) key: Arc<dyn Serde<K>>,
}

impl<K> Clone for Lookup<K> {
    fn clone(&self) -> Self {
        Lookup {
            store: self.store.clone(),
            key: self.key.clone(),
        }
    }
}

/// A table's latest values by key bytes, shared by the nodes of a task that use it.
pub(crate) type TableStore<V> = HashMap<Bytes, V>;

impl<K, V> KTable<K, V> {
    /// The table of node `node`, its values in `lookup`'s store.
    pub(crate) fn of(graph: Rc<RefCell<Graph>>, node: usize, lookup: Option<Lookup<K>>) -> Self {
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
            stream: self.clone(),
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
        KGroupedStream {
            stream: self.select_key(key),
            grouped,
        }
    }
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The number of records per key.
    pub fn count(&self) -> KTable<K, i64> {
        self.aggregate(|| 0, |_, _, count| count + 1)
    }

    /// Each key's values combined with `reducer` (the first one as it is).
    pub fn reduce(&self, reducer: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V> {
        let reducer = Arc::new(reducer);
        self.aggregate_with(Arc::new(
            move |_: &K, value: V, current: Option<V>| match current {
                Some(current) => reducer(current, value),
                None => value,
            },
        ))
    }

    /// Each key's values folded into an aggregate starting at `initializer()`.
    pub fn aggregate<VA>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<K, VA>
    where
        VA: Clone + 'static,
    {
        self.aggregate_with(Arc::new(move |key: &K, value: V, current: Option<VA>| {
            aggregator(key, value, current.unwrap_or_else(&initializer))
        }))
    }

    /// The aggregation node: `step` gives a key's new aggregate from a value and the
    /// current one (`None` for a new key).
    fn aggregate_with<VA>(&self, step: StepFn<K, V, VA>) -> KTable<K, VA>
    where
        VA: Clone + 'static,
    {
        let key_serde = self.grouped.key.clone();
        let store_name = self
            .stream
            .graph
            .borrow_mut()
            .name("KSTREAM-AGGREGATE-STATE-STORE");
        let name = store_name.clone();
        let build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let store = stores.get_or_create(&name, TableStore::<VA>::new)?;
            let node: Node<K, V> = Rc::new(RefCell::new(Aggregate {
                key: key_serde.clone(),
                step: step.clone(),
                store,
                children: children::<K, VA>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let lookup = Lookup {
            store: store_name.clone(),
            key: self.grouped.key.clone(),
        };
        let mut table = self.add_aggregation_with_store(build, store_name);
        table.lookup = Some(lookup);
        table
    }

    /// Adds an aggregation node built by `build`, with a state store, below the grouped
    /// stream; the table of its results.
    pub(crate) fn add_aggregation<K2, VA>(&self, build: BuildFn) -> KTable<K2, VA> {
        let store = self
            .stream
            .graph
            .borrow_mut()
            .name("KSTREAM-AGGREGATE-STATE-STORE");
        self.add_aggregation_with_store(build, store)
    }

    /// Adds an aggregation node using store `store` below the grouped stream.
    fn add_aggregation_with_store<K2, VA>(&self, build: BuildFn, store: String) -> KTable<K2, VA> {
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
    /// The table's updates as a stream.
    pub fn to_stream(&self) -> KStream<K, V> {
        KStream::<K, V>::of(self.graph.clone(), self.node).process_with(
            "KTABLE-TOSTREAM",
            Arc::new(|ctx, k, v, out: &Children<K, V>| out.forward(ctx, k, v)),
        )
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
type StepFn<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

/// An aggregation as built for a task, with its store.
struct Aggregate<K, V, VA> {
    key: Arc<dyn Serde<K>>,
    step: StepFn<K, V, VA>,
    /// The aggregate per key (by the key's bytes), shared with joins on the table.
    store: Rc<RefCell<TableStore<VA>>>,
    children: Children<K, VA>,
}

impl<K: Clone + 'static, V: 'static, VA: Clone + 'static> Downstream<K, V> for Aggregate<K, V, VA> {
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let topic = ctx.topic.clone();
        let bytes = match self.key.serialize(&topic, &key) {
            Ok(Some(bytes)) => bytes,
            // As Kafka Streams: records without a key are not aggregated.
            Ok(None) => {
                tracing::debug!(topic = %topic, offset = ctx.offset, "skipping a record without key");
                return;
            }
            Err(e) => {
                ctx.errors.push(format!("{topic}@{}: {e}", ctx.offset));
                return;
            }
        };
        let current = self.store.borrow_mut().remove(&bytes);
        let next = (self.step)(&key, value, current);
        self.store.borrow_mut().insert(bytes, next.clone());
        self.children.forward(ctx, key, next);
    }
}
