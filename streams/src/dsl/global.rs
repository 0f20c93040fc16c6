//! Global tables: a topic read in full by every instance (all its partitions, not only
//! the task's), so a stream joins it by any key it computes, with no co-partitioning
//! ([`GlobalKTable`], [`KStream::join_global`]).
//!
//! ```text
//!  global topic (every partition) ──▶ the instance's global store (bytes as written)
//!  stream record ──key_mapper──▶ lookup key ──▶ global store ──▶ joiner(value, row)
//! ```
//!
//! The runtime reads a global topic to its end before processing starts, then keeps
//! reading it between polls; the test driver applies records piped to it at once.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::grouped::Lookup;
use super::stream::{children, KStream};
use super::StreamsBuilder;
use crate::dsl::Consumed;
use crate::processor::{Children, Downstream, Node, RecordContext};
use crate::state::SharedStore;
use crate::topology::{BuildFn, Built, NodeKind, Stores};

/// A table of a whole topic, held by every instance.
pub struct GlobalKTable<K, V> {
    lookup: Lookup<K, V>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        GlobalKTable {
            lookup: self.lookup.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of the table's store.
    pub fn store_name(&self) -> &str {
        &self.lookup.store
    }
}

impl StreamsBuilder {
    /// The table of every partition of `topic`, read with `consumed`'s serdes.
    pub fn global_table<K, V>(&self, topic: &str, consumed: Consumed<K, V>) -> GlobalKTable<K, V> {
        let mut graph = self.graph.borrow_mut();
        let store = graph.name(&format!("{topic}-GLOBAL-STORE"));
        graph.globals.insert(topic.to_owned(), store.clone());
        GlobalKTable {
            lookup: Lookup {
                store,
                key: consumed.key,
                value: consumed.value,
            },
            _types: PhantomData,
        }
    }
}

/// Joins a record with the global row its mapped key finds (`None`: drop the record).
type GlobalJoiner<V, VG, VR> = Arc<dyn Fn(V, Option<VG>) -> Option<VR> + Send + Sync>;
/// The lookup key of a record.
type KeyMapper<K, V, KG> = Arc<dyn Fn(&K, &V) -> KG + Send + Sync>;

impl<K, V> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Each record joined with the row of `table` at the key `key_mapper` computes;
    /// records without one are dropped.
    pub fn join_global<KG, VG, VR>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_mapper: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(V, VG) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        KG: 'static,
        VG: 'static,
        VR: Clone + 'static,
    {
        let joiner = Arc::new(move |v, found: Option<VG>| found.map(|g| joiner(v, g)));
        self.global_join(table, Arc::new(key_mapper), joiner)
    }

    /// Each record joined with the row of `table` at its mapped key, `None` without one.
    pub fn left_join_global<KG, VG, VR>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_mapper: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(V, Option<VG>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        KG: 'static,
        VG: 'static,
        VR: Clone + 'static,
    {
        let joiner = Arc::new(move |v, found: Option<VG>| Some(joiner(v, found)));
        self.global_join(table, Arc::new(key_mapper), joiner)
    }

    fn global_join<KG, VG, VR>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_mapper: KeyMapper<K, V, KG>,
        joiner: GlobalJoiner<V, VG, VR>,
    ) -> KStream<K, VR>
    where
        KG: 'static,
        VG: 'static,
        VR: Clone + 'static,
    {
        let lookup = table.lookup.clone();
        let build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(GlobalJoin {
                store: stores.get(&lookup.store)?,
                lookup: lookup.clone(),
                key_mapper: key_mapper.clone(),
                joiner: joiner.clone(),
                children: children::<K, VR>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let mut graph = self.graph.borrow_mut();
        let id = graph.add("KSTREAM-GLOBAL-JOIN", NodeKind::Processor, build);
        graph.nodes[id].stores.push(table.lookup.store.clone());
        graph.nodes[self.node].children.push(id);
        drop(graph);
        KStream::of(self.graph.clone(), id)
    }
}

/// A stream-global table join as built for a task.
struct GlobalJoin<K, V, KG, VG, VR> {
    store: SharedStore,
    lookup: Lookup<KG, VG>,
    key_mapper: KeyMapper<K, V, KG>,
    joiner: GlobalJoiner<V, VG, VR>,
    children: Children<K, VR>,
}

impl<K: Clone, V, KG: 'static, VG: 'static, VR: Clone> Downstream<K, V>
    for GlobalJoin<K, V, KG, VG, VR>
{
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let lookup_key = (self.key_mapper)(&key, &value);
        let found = self.lookup.get(&self.store, ctx, &lookup_key);
        if let Some(joined) = (self.joiner)(value, found) {
            self.children.forward(ctx, key, joined);
        }
    }
}
