//! Cogrouping: several grouped streams, each with its own value type and aggregator,
//! folded into one aggregate per key in one store ([`CogroupedKStream`]).
//!
//! ```text
//!  grouped a ──aggregator a──┐
//!  grouped b ──aggregator b──┼──▶ one store, one aggregate per key ──▶ KTable
//!  grouped c ──aggregator c──┘
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::grouped::{Aggregate, KGroupedStream, KTable, Lookup, Materialized, StepFn};
use super::stream::children;
use super::Graph;
use crate::processor::{Node, PassThrough};
use crate::serde::Serde;
use crate::state::StoreKind;
use crate::topology::{BuildFn, Built, NodeKind, Stores};

/// Adds one cogrouped stream's aggregation node below its grouped stream, given the
/// store's lookup and the initializer; the node's id.
type Part<K, VA> = Box<dyn Fn(&mut Graph, &Lookup<K, VA>, &Init<VA>) -> usize>;
type Init<VA> = Arc<dyn Fn() -> VA + Send + Sync>;

/// Grouped streams being aggregated together.
pub struct CogroupedKStream<K, VA> {
    graph: Rc<RefCell<Graph>>,
    key: Arc<dyn Serde<K>>,
    parts: Vec<Part<K, VA>>,
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Starts a cogroup: this stream's records folded into the aggregate with
    /// `aggregator`.
    pub fn cogroup<VA>(
        &self,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> CogroupedKStream<K, VA>
    where
        VA: Clone + 'static,
    {
        CogroupedKStream {
            graph: self.stream.graph.clone(),
            key: self.key_serde(),
            parts: vec![part(self, aggregator)],
        }
    }
}

/// The aggregation node of `grouped` in a cogroup.
fn part<K, V, VA>(
    grouped: &KGroupedStream<K, V>,
    aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
) -> Part<K, VA>
where
    K: Clone + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    let parent = grouped.stream.node;
    let aggregator = Arc::new(aggregator);
    Box::new(
        move |graph: &mut Graph, lookup: &Lookup<K, VA>, init: &Init<VA>| {
            let (aggregator, init) = (aggregator.clone(), init.clone());
            let step: StepFn<K, V, VA> = Arc::new(move |key: &K, value: V, current: Option<VA>| {
                aggregator(key, value, current.unwrap_or_else(|| init()))
            });
            let table = lookup.clone();
            let build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
                let node: Node<K, V> = Rc::new(RefCell::new(Aggregate {
                    table: table.clone(),
                    step: step.clone(),
                    store: stores.get(&table.store)?,
                    children: children::<K, VA>(built),
                }));
                Some(Box::new(node) as Built)
            });
            let id = graph.add("COGROUPKSTREAM-AGGREGATE", NodeKind::Processor, build);
            graph.nodes[id].stores.push(lookup.store.clone());
            graph.nodes[parent].children.push(id);
            id
        },
    )
}

impl<K, VA> CogroupedKStream<K, VA>
where
    K: Clone + 'static,
    VA: Clone + 'static,
{
    /// Adds `grouped`, its records folded into the aggregate with `aggregator`.
    pub fn cogroup<V>(
        mut self,
        grouped: &KGroupedStream<K, V>,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> CogroupedKStream<K, VA>
    where
        V: Clone + 'static,
    {
        self.parts.push(part(grouped, aggregator));
        self
    }

    /// The aggregate per key, starting at `initializer()`, kept as `materialized` says.
    pub fn aggregate(
        self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        materialized: Materialized<VA>,
    ) -> KTable<K, VA> {
        let mut graph = self.graph.borrow_mut();
        let store = match materialized.name {
            Some(name) => name,
            None => graph.name("COGROUPKSTREAM-AGGREGATE-STATE-STORE"),
        };
        let store = graph.add_store(store, StoreKind::KeyValue, materialized.persistent);
        let lookup = Lookup {
            store,
            key: self.key,
            value: materialized.value,
        };
        let init: Init<VA> = Arc::new(initializer);
        let merge_build: BuildFn = Arc::new(|built: &[&Built], _: &mut Stores| {
            let node: Node<K, VA> = Rc::new(RefCell::new(PassThrough(children::<K, VA>(built))));
            Some(Box::new(node) as Built)
        });
        let merge = graph.add("COGROUPKSTREAM-MERGE", NodeKind::Processor, merge_build);
        for part in &self.parts {
            let id = part(&mut graph, &lookup, &init);
            graph.nodes[id].children.push(merge);
        }
        drop(graph);
        KTable::of(self.graph.clone(), merge, Some(lookup))
    }
}
