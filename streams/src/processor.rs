//! The processor graph of one task, as built from a [`Topology`](crate::Topology): typed
//! nodes that push records to their children.
//!
//! ```text
//!  source (bytes ─serde─▶ K, V) ──▶ filter ──▶ map ──▶ sink (K2, V2 ─serde─▶ bytes) ──▶ outputs
//!                                      └─────▶ peek          (collected in the context)
//! ```
//!
//! A node is a [`Downstream`] of its input types; between nodes records stay typed (no
//! bytes, no downcasts per record). The graph is built per task (each with its own
//! state, later) and runs on one thread: nodes are shared with `Rc<RefCell<_>>`, which a
//! DAG never borrows twice at once.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;

/// A record written by a sink, for the runtime to produce (or the test driver to keep).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    /// The sink's topic.
    pub topic: String,
    /// The key as written (`None`: null).
    pub key: Option<Bytes>,
    /// The value as written (`None`: null).
    pub value: Option<Bytes>,
    /// The record's timestamp (its input record's, unless a processor changed it).
    pub timestamp: i64,
    /// The record's headers.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Where the record being processed came from and what it carries besides key and
/// value; also what the task's sinks wrote and what failed.
#[derive(Debug, Default)]
pub(crate) struct RecordContext {
    /// The input topic of the record being processed.
    pub(crate) topic: String,
    /// Its partition.
    pub(crate) partition: i32,
    /// Its offset.
    pub(crate) offset: i64,
    /// Its timestamp (what sinks stamp on what they write).
    pub(crate) timestamp: i64,
    /// Its headers.
    pub(crate) headers: Vec<(String, Option<Bytes>)>,
    /// Records the sinks wrote, in order.
    pub(crate) outputs: Vec<OutputRecord>,
    /// Records that could not be processed (a serde error), with the reason.
    pub(crate) errors: Vec<String>,
    /// Changes made to state stores, in order, for their changelogs.
    pub(crate) changes: Vec<crate::state::Change>,
}

/// A node taking records of key `K` and value `V`.
pub(crate) trait Downstream<K, V> {
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V);

    /// A table's row `key` is gone (a tombstone, or a session merged into another):
    /// table operations pass it on, a sink writes a null value, stream operations ignore
    /// it.
    fn retract(&mut self, ctx: &mut RecordContext, key: K) {
        let _ = (ctx, key);
    }
}

/// A node as its parents hold it.
pub(crate) type Node<K, V> = Rc<RefCell<dyn Downstream<K, V>>>;

/// Forwards each record to every child, in order (clones for all but the last).
pub(crate) struct Children<K, V>(pub(crate) Vec<Node<K, V>>);

impl<K: Clone, V: Clone> Children<K, V> {
    pub(crate) fn forward(&self, ctx: &mut RecordContext, key: K, value: V) {
        let Some((last, rest)) = self.0.split_last() else {
            return;
        };
        for child in rest {
            child.borrow_mut().process(ctx, key.clone(), value.clone());
        }
        last.borrow_mut().process(ctx, key, value);
    }

    /// Passes a retraction to every child.
    pub(crate) fn retract(&self, ctx: &mut RecordContext, key: K) {
        let Some((last, rest)) = self.0.split_last() else {
            return;
        };
        for child in rest {
            child.borrow_mut().retract(ctx, key.clone());
        }
        last.borrow_mut().retract(ctx, key);
    }
}

/// A node that passes records and retractions on unchanged (a table's `to_stream`).
pub(crate) struct PassThrough<K, V>(pub(crate) Children<K, V>);

impl<K: Clone, V: Clone> Downstream<K, V> for PassThrough<K, V> {
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        self.0.forward(ctx, key, value);
    }

    fn retract(&mut self, ctx: &mut RecordContext, key: K) {
        self.0.retract(ctx, key);
    }
}

/// What a processor does with one record, given its children to forward to.
pub(crate) type ProcessFn<K, V, K2, V2> =
    std::sync::Arc<dyn Fn(&mut RecordContext, K, V, &Children<K2, V2>) + Send + Sync>;

/// A node made of a function of the record and its children.
pub(crate) struct FnNode<K, V, K2, V2> {
    pub(crate) f: ProcessFn<K, V, K2, V2>,
    pub(crate) children: Children<K2, V2>,
}

impl<K, V, K2, V2> Downstream<K, V> for FnNode<K, V, K2, V2> {
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        (self.f)(ctx, key, value, &self.children);
    }
}
