//! Tables read from topics ([`StreamsBuilder::table`]) and stream-table joins: each stream
//! record looks up its key's latest value in the table's store (of the same task: the
//! stream and the table must be co-partitioned).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::grouped::{KTable, Lookup};
use super::stream::{children, KStream};
use super::{Consumed, StreamsBuilder};
use crate::processor::{Children, Downstream, Node, RecordContext};
use crate::serde::Serde;
use crate::state::{SharedStore, StoreKind};
use crate::topology::{BuildFn, Built, NodeKind, SourceInput, SourceNode, Stores};

impl StreamsBuilder {
    /// The table of `topic`: the latest value per key (a null value deletes the key), its
    /// updates flowing on.
    pub fn table<K, V>(&self, topic: &str, consumed: Consumed<K, V>) -> KTable<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let mut graph = self.graph.borrow_mut();
        let store = graph.name(&format!("{topic}-STATE-STORE"));
        let store = graph.add_store(store, StoreKind::KeyValue, true);
        let name = store.clone();
        let (key, value) = (consumed.key.clone(), consumed.value.clone());
        let build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let source: SourceNode = Rc::new(RefCell::new(TableSource {
                key: key.clone(),
                value: value.clone(),
                store: stores.get(&name)?,
                children: children::<K, V>(built),
            }));
            Some(Box::new(source) as Built)
        });
        let kind = NodeKind::Source {
            topics: vec![topic.to_owned()],
        };
        let id = graph.add("KTABLE-SOURCE", kind, build);
        graph.nodes[id].stores.push(store.clone());
        drop(graph);
        let lookup = Lookup {
            store,
            key: consumed.key,
            value: consumed.value,
        };
        KTable::of(self.graph.clone(), id, Some(lookup))
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Each record joined with its key's current value in `table` (records whose key the
    /// table does not have are dropped).
    pub fn join<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VT: Clone + 'static,
        VR: Clone + 'static,
    {
        self.join_with(table, "KSTREAM-JOIN", move |v, found| {
            found.map(|t| joiner(v, t))
        })
    }

    /// Each record joined with its key's current value in `table`, `None` when the table
    /// does not have it (every record passes).
    pub fn left_join<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, Option<VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VT: Clone + 'static,
        VR: Clone + 'static,
    {
        self.join_with(table, "KSTREAM-LEFTJOIN", move |v, found| {
            Some(joiner(v, found))
        })
    }

    fn join_with<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        prefix: &str,
        joiner: impl Fn(V, Option<VT>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VT: Clone + 'static,
        VR: Clone + 'static,
    {
        let lookup = table.lookup.clone();
        let joiner: JoinFn<V, VT, VR> = Arc::new(joiner);
        let build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let store = match &lookup {
                Some(lookup) => Some((lookup.clone(), stores.get(&lookup.store)?)),
                None => None,
            };
            let node: Node<K, V> = Rc::new(RefCell::new(JoinNode {
                table: store,
                joiner: joiner.clone(),
                children: children::<K, VR>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let mut graph = self.graph.borrow_mut();
        let id = graph.add(prefix, NodeKind::Processor, build);
        if let Some(lookup) = &table.lookup {
            graph.nodes[id].stores.push(lookup.store.clone());
        }
        graph.nodes[self.node].children.push(id);
        drop(graph);
        KStream::of(self.graph.clone(), id)
    }
}

/// What a join makes of a record and its key's table value (`None` drops the record).
type JoinFn<V, VT, VR> = Arc<dyn Fn(V, Option<VT>) -> Option<VR> + Send + Sync>;

/// A table's serdes and its store in a task.
type TableHandle<K, VT> = (Lookup<K, VT>, SharedStore);

/// A join as built for a task, reading the table's store of the same task.
struct JoinNode<K, V, VT, VR> {
    /// The table's key serde and store (`None`: a table that keeps none).
    table: Option<TableHandle<K, VT>>,
    joiner: JoinFn<V, VT, VR>,
    children: Children<K, VR>,
}

impl<K: Clone + 'static, V, VT: Clone + 'static, VR: Clone> Downstream<K, V>
    for JoinNode<K, V, VT, VR>
{
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let Some((lookup, store)) = &self.table else {
            ctx.errors
                .push("a join with a table that keeps no store".to_owned());
            return;
        };
        let found = lookup.get(store, ctx, &key);
        if let Some(joined) = (self.joiner)(value, found) {
            self.children.forward(ctx, key, joined);
        }
    }
}

/// A table's source as built for a task: keeps the latest value per key, forwards
/// updates.
struct TableSource<K, V> {
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<V>>,
    store: SharedStore,
    children: Children<K, V>,
}

impl<K: Clone + 'static, V: Clone + 'static> SourceInput for TableSource<K, V> {
    fn process(&mut self, ctx: &mut RecordContext, key: Option<&[u8]>, value: Option<&[u8]>) {
        let topic = ctx.topic.clone();
        let Some(key_bytes) = key else {
            tracing::debug!(topic = %topic, offset = ctx.offset, "table record without key");
            return;
        };
        let key_bytes = bytes::Bytes::copy_from_slice(key_bytes);
        let Some(value) = value else {
            // A tombstone: the key leaves the table.
            self.store.borrow_mut().put(ctx, key_bytes.clone(), None);
            match self.key.deserialize(&topic, Some(&key_bytes)) {
                Ok(k) => self.children.retract(ctx, k),
                Err(e) => ctx.errors.push(format!("{topic}@{}: {e}", ctx.offset)),
            }
            return;
        };
        let decoded = self
            .key
            .deserialize(&topic, Some(&key_bytes))
            .and_then(|k| Ok((k, self.value.deserialize(&topic, Some(value))?)));
        match decoded {
            Ok((k, v)) => {
                let stored = bytes::Bytes::copy_from_slice(value);
                self.store.borrow_mut().put(ctx, key_bytes, Some(stored));
                self.children.forward(ctx, k, v);
            }
            Err(e) => ctx.errors.push(format!("{topic}@{}: {e}", ctx.offset)),
        }
    }
}
