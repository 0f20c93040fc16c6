//! Moving records between partitions and between streams and tables: an explicit
//! [`KStream::repartition`] through an internal topic, [`KStream::through`] a topic of the
//! user's, and [`KStream::to_table`].

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::grouped::{encode, serialize_key, KTable, Lookup, Materialized};
use super::stream::{children, KStream};
use super::{Consumed, Produced};
use crate::processor::{Children, Downstream, Node, RecordContext};
use crate::serde::Serde;
use crate::state::{SharedStore, StoreKind};
use crate::topology::{BuildFn, Built, NodeKind, Stores};

/// How [`KStream::repartition`] writes its topic: serdes and, optionally, a name (the
/// topic is `<application.id>-<name>-repartition`).
pub struct Repartitioned<K, V> {
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<V>>,
    name: Option<String>,
}

impl<K, V> Repartitioned<K, V> {
    /// Keys through `key`, values through `value`.
    pub fn with(key: impl Serde<K>, value: impl Serde<V>) -> Self {
        Repartitioned {
            key: Arc::new(key),
            value: Arc::new(value),
            name: None,
        }
    }

    /// The topic named after `name`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The records through an internal repartition topic, partitioned by their current
    /// keys (what grouping does by itself after a key change).
    pub fn repartition(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V> {
        let topic = {
            let mut graph = self.graph.borrow_mut();
            let base = match repartitioned.name {
                Some(name) => name,
                None => graph.name("KSTREAM-REPARTITION"),
            };
            let topic = format!("{base}-repartition");
            graph.internal_topics.insert(topic.clone());
            topic
        };
        let (key, value) = (repartitioned.key, repartitioned.value);
        self.to(
            &topic,
            Produced {
                key: key.clone(),
                value: value.clone(),
            },
        );
        KStream::source(self.graph.clone(), &topic, Consumed { key, value })
    }

    /// The records written to `topic` (which must exist) and read back from it.
    pub fn through(&self, topic: &str, produced: Produced<K, V>) -> KStream<K, V> {
        let (key, value) = (produced.key.clone(), produced.value.clone());
        self.to(topic, produced);
        KStream::source(self.graph.clone(), topic, Consumed { key, value })
    }

    /// The stream as a table: each record is the latest value of its key, kept in a
    /// store (`key` writes the store's keys).
    pub fn to_table(&self, key: impl Serde<K>, materialized: Materialized<V>) -> KTable<K, V> {
        let mut graph = self.graph.borrow_mut();
        let store = match materialized.name {
            Some(name) => name,
            None => graph.name("KSTREAM-TOTABLE-STATE-STORE"),
        };
        let store = graph.add_store(store, StoreKind::KeyValue, materialized.persistent);
        let lookup = Lookup {
            store: store.clone(),
            key: Arc::new(key),
            value: materialized.value,
        };
        let table = lookup.clone();
        let build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(ToTable {
                store: stores.get(&table.store)?,
                table: table.clone(),
                children: children::<K, V>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let id = graph.add("KSTREAM-TOTABLE", NodeKind::Processor, build);
        graph.nodes[id].stores.push(store);
        graph.nodes[self.node].children.push(id);
        drop(graph);
        KTable::of(self.graph.clone(), id, Some(lookup))
    }
}

/// `to_table` as built for a task.
struct ToTable<K, V> {
    table: Lookup<K, V>,
    store: SharedStore,
    children: Children<K, V>,
}

impl<K: Clone + 'static, V: Clone + 'static> Downstream<K, V> for ToTable<K, V> {
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let Some(key_bytes) = serialize_key(&*self.table.key, ctx, &key) else {
            return;
        };
        let Some(encoded) = encode(&*self.table.value, ctx, &value) else {
            return;
        };
        self.store.borrow_mut().put(ctx, key_bytes, Some(encoded));
        self.children.forward(ctx, key, value);
    }
}
