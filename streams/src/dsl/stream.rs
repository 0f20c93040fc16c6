//! [`KStream`]: a stream of records and its stateless operations.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::{Consumed, Graph, Produced};
use crate::processor::{
    Children, Downstream, FnNode, Node, OutputRecord, ProcessFn, RecordContext,
};
use crate::serde::Serde;
use crate::topology::{Built, NodeKind, SourceInput, SourceNode, Stores};

/// A branch's predicate, for [`KStream::branch`].
pub type Predicate<K, V> = Box<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// A stream of key-value records (Kafka Streams' `KStream`). Each operation adds a
/// processor and returns the stream it outputs; a stream may feed several operations.
pub struct KStream<K, V> {
    pub(crate) graph: Rc<RefCell<Graph>>,
    pub(crate) node: usize,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            graph: self.graph.clone(),
            node: self.node,
            _types: PhantomData,
        }
    }
}

/// The children of a node as built, typed.
pub(crate) fn children<K: 'static, V: 'static>(built: &[&Built]) -> Children<K, V> {
    Children(
        built
            .iter()
            .filter_map(|b| b.downcast_ref::<Node<K, V>>().cloned())
            .collect(),
    )
}

/// Processors that may change keys (Kafka Streams' key-changing operations).
const KEY_CHANGING: [&str; 3] = ["KSTREAM-MAP", "KSTREAM-FLATMAP", "KSTREAM-KEY-SELECT"];

impl<K, V> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    pub(crate) fn source(graph: Rc<RefCell<Graph>>, topic: &str, consumed: Consumed<K, V>) -> Self {
        let build: crate::topology::BuildFn = Arc::new(move |built: &[&Built], _: &mut Stores| {
            let source: SourceNode = Rc::new(RefCell::new(Source {
                key: consumed.key.clone(),
                value: consumed.value.clone(),
                children: children::<K, V>(built),
            }));
            Some(Box::new(source) as Built)
        });
        let kind = NodeKind::Source {
            topics: vec![topic.to_owned()],
        };
        let node = graph.borrow_mut().add("KSTREAM-SOURCE", kind, build);
        KStream {
            graph,
            node,
            _types: PhantomData,
        }
    }

    /// A stream of node `node`.
    pub(crate) fn of(graph: Rc<RefCell<Graph>>, node: usize) -> Self {
        KStream {
            graph,
            node,
            _types: PhantomData,
        }
    }

    /// Adds a processor running `f` on each record, as a child of this stream's node.
    pub(crate) fn process_with<K2, V2>(
        &self,
        prefix: &str,
        f: ProcessFn<K, V, K2, V2>,
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
    {
        let build: crate::topology::BuildFn = Arc::new(move |built: &[&Built], _: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(FnNode {
                f: f.clone(),
                children: children::<K2, V2>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let mut graph = self.graph.borrow_mut();
        let id = graph.add(prefix, NodeKind::Processor, build);
        graph.nodes[id].changes_key = KEY_CHANGING.contains(&prefix);
        graph.nodes[self.node].children.push(id);
        KStream {
            graph: self.graph.clone(),
            node: id,
            _types: PhantomData,
        }
    }

    /// The stream as grouping or joining needs it: through a repartition topic
    /// (`<application.id>-<name>-repartition`, partitioned by the new keys) when an
    /// operation above may have changed the keys, otherwise itself.
    pub(crate) fn repartitioned_for(
        &self,
        key: Arc<dyn Serde<K>>,
        value: Arc<dyn Serde<V>>,
    ) -> KStream<K, V> {
        let mut graph = self.graph.borrow_mut();
        if !graph.key_changed_above(self.node) {
            return self.clone();
        }
        let topic = format!(
            "{}-repartition",
            graph.name("KSTREAM-AGGREGATE-STATE-STORE")
        );
        graph.internal_topics.insert(topic.clone());
        drop(graph);
        self.to(
            &topic,
            Produced {
                key: key.clone(),
                value: value.clone(),
            },
        );
        KStream::source(self.graph.clone(), &topic, Consumed { key, value })
    }

    /// The records for which `predicate` holds.
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.process_with(
            "KSTREAM-FILTER",
            Arc::new(move |ctx, k, v, out| {
                if predicate(&k, &v) {
                    out.forward(ctx, k, v);
                }
            }),
        )
    }

    /// The records for which `predicate` does not hold.
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Each record mapped to a new key and value (a key change: grouping or joining the
    /// result repartitions it).
    pub fn map<K2, V2>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
    {
        self.process_with(
            "KSTREAM-MAP",
            Arc::new(move |ctx, k, v, out| {
                let (k2, v2) = f(k, v);
                out.forward(ctx, k2, v2);
            }),
        )
    }

    /// Each value mapped; keys unchanged.
    pub fn map_values<V2>(&self, f: impl Fn(V) -> V2 + Send + Sync + 'static) -> KStream<K, V2>
    where
        V2: Clone + 'static,
    {
        self.process_with(
            "KSTREAM-MAPVALUES",
            Arc::new(move |ctx, k, v, out| {
                let v2 = f(v);
                out.forward(ctx, k, v2);
            }),
        )
    }

    /// Each record to zero or more records.
    pub fn flat_map<K2, V2, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.process_with(
            "KSTREAM-FLATMAP",
            Arc::new(move |ctx, k, v, out| {
                for (k2, v2) in f(k, v) {
                    out.forward(ctx, k2, v2);
                }
            }),
        )
    }

    /// Each value to zero or more values, each with the record's key.
    pub fn flat_map_values<V2, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        V2: Clone + 'static,
        I: IntoIterator<Item = V2>,
    {
        self.process_with(
            "KSTREAM-FLATMAPVALUES",
            Arc::new(move |ctx, k: K, v, out| {
                for v2 in f(v) {
                    out.forward(ctx, k.clone(), v2);
                }
            }),
        )
    }

    /// Each record with a new key computed from it (a key change).
    pub fn select_key<K2>(&self, f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static) -> KStream<K2, V>
    where
        K2: Clone + 'static,
    {
        self.process_with(
            "KSTREAM-KEY-SELECT",
            Arc::new(move |ctx, k, v, out| {
                let k2 = f(&k, &v);
                out.forward(ctx, k2, v);
            }),
        )
    }

    /// Calls `action` on each record, passing it on unchanged.
    pub fn peek(&self, action: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        self.process_with(
            "KSTREAM-PEEK",
            Arc::new(move |ctx, k, v, out| {
                action(&k, &v);
                out.forward(ctx, k, v);
            }),
        )
    }

    /// Calls `action` on each record; the end of this branch.
    pub fn foreach(&self, action: impl Fn(K, V) + Send + Sync + 'static) {
        let _: KStream<K, V> = self.process_with(
            "KSTREAM-FOREACH",
            Arc::new(move |_ctx, k, v, _out: &Children<K, V>| action(k, v)),
        );
    }

    /// Splits the stream: each record goes to the first branch whose predicate holds (and
    /// nowhere when none does), as Kafka Streams' `branch`.
    pub fn branch(&self, predicates: Vec<Predicate<K, V>>) -> Vec<KStream<K, V>> {
        let count = predicates.len();
        let tags: Arc<Vec<Predicate<K, V>>> = Arc::new(predicates);
        // One branching node tags each record with its branch; a filter per branch keeps its
        // own.
        let tagged: KStream<K, (usize, V)> = self.process_with(
            "KSTREAM-BRANCH",
            Arc::new(move |ctx, k, v, out| {
                if let Some(i) = tags.iter().position(|p| p(&k, &v)) {
                    out.forward(ctx, k, (i, v));
                }
            }),
        );
        (0..count)
            .map(|i| {
                tagged.process_with(
                    "KSTREAM-BRANCHCHILD",
                    Arc::new(move |ctx, k, (branch, v): (usize, V), out| {
                        if branch == i {
                            out.forward(ctx, k, v);
                        }
                    }),
                )
            })
            .collect()
    }

    /// This stream and `other` as one (records of each in their own order).
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let merged: KStream<K, V> = self.process_with(
            "KSTREAM-MERGE",
            Arc::new(|ctx, k, v, out: &Children<K, V>| out.forward(ctx, k, v)),
        );
        self.graph.borrow_mut().nodes[other.node]
            .children
            .push(merged.node);
        merged
    }

    /// Writes the records to `topic` with `produced`'s serdes.
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        let name = topic.to_owned();
        let build: crate::topology::BuildFn = Arc::new(move |_: &[&Built], _: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(Sink {
                topic: name.clone(),
                key: produced.key.clone(),
                value: produced.value.clone(),
            }));
            Some(Box::new(node) as Built)
        });
        let kind = NodeKind::Sink {
            topic: topic.to_owned(),
        };
        let mut graph = self.graph.borrow_mut();
        let id = graph.add("KSTREAM-SINK", kind, build);
        graph.nodes[self.node].children.push(id);
    }
}

/// A source built for a task: deserializes and forwards.
struct Source<K, V> {
    key: Arc<dyn crate::serde::Serde<K>>,
    value: Arc<dyn crate::serde::Serde<V>>,
    children: Children<K, V>,
}

impl<K: Clone + 'static, V: Clone + 'static> SourceInput for Source<K, V> {
    fn process(&mut self, ctx: &mut RecordContext, key: Option<&[u8]>, value: Option<&[u8]>) {
        let topic = ctx.topic.clone();
        let decoded = self
            .key
            .deserialize(&topic, key)
            .and_then(|k| Ok((k, self.value.deserialize(&topic, value)?)));
        match decoded {
            Ok((k, v)) => self.children.forward(ctx, k, v),
            Err(e) => {
                tracing::warn!(topic = %topic, offset = ctx.offset, error = %e, "skipping a record that does not deserialize");
                ctx.errors.push(format!("{topic}@{}: {e}", ctx.offset));
            }
        }
    }
}

/// A sink built for a task: serializes into the task's outputs.
struct Sink<K, V> {
    topic: String,
    key: Arc<dyn crate::serde::Serde<K>>,
    value: Arc<dyn crate::serde::Serde<V>>,
}

impl<K: 'static, V: 'static> Downstream<K, V> for Sink<K, V> {
    fn retract(&mut self, ctx: &mut RecordContext, key: K) {
        match self.key.serialize(&self.topic, &key) {
            Ok(key) => ctx.outputs.push(OutputRecord {
                topic: self.topic.clone(),
                key,
                value: None,
                timestamp: ctx.timestamp,
                headers: ctx.headers.clone(),
            }),
            Err(e) => ctx.errors.push(format!("{}: {e}", self.topic)),
        }
    }

    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let encoded = self
            .key
            .serialize(&self.topic, &key)
            .and_then(|k| Ok((k, self.value.serialize(&self.topic, &value)?)));
        match encoded {
            Ok((key, value)) => ctx.outputs.push(OutputRecord {
                topic: self.topic.clone(),
                key,
                value,
                timestamp: ctx.timestamp,
                headers: ctx.headers.clone(),
            }),
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "a record that does not serialize");
                ctx.errors.push(format!("{}: {e}", self.topic));
            }
        }
    }
}
