//! The processor API: [`KStream::process`] runs a [`Processor`] of the user's, one per
//! task, that sees each record and may forward any number of records, and whose
//! punctuations fire on stream time or on wall-clock time.
//!
//! ```text
//!  record ──▶ Processor::process(ctx, key, value) ──ctx.forward──▶ children
//!  stream time passes a schedule  ──▶ Processor::punctuate(ctx, StreamTime, t)
//!  wall clock passes a schedule   ──▶ Processor::punctuate(ctx, WallClockTime, now)
//!     (the runtime checks the clock every poll; the test driver when told to advance)
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::stream::{children, KStream};
use crate::processor::{Children, Downstream, Node, RecordContext};
use crate::topology::{BuildFn, Built, Stores};

/// What drives a punctuation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// The task's stream time (the largest record timestamp it has seen).
    StreamTime,
    /// The wall clock.
    WallClockTime,
}

/// A record processor of the user's, one instance per task.
pub trait Processor<K, V, K2, V2>: 'static {
    /// Called once when the task is built: schedule punctuations here.
    fn init(&mut self, schedules: &mut Schedules) {
        let _ = schedules;
    }

    /// One record.
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K2, V2>, key: K, value: V);

    /// A scheduled punctuation of `kind` at `timestamp` (stream time, or the wall clock in
    /// milliseconds since the epoch).
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        kind: PunctuationType,
        timestamp: i64,
    ) {
        let _ = (ctx, kind, timestamp);
    }
}

/// The punctuations a processor asks for.
#[derive(Debug, Default)]
pub struct Schedules {
    entries: Vec<Schedule>,
}

#[derive(Debug)]
struct Schedule {
    kind: PunctuationType,
    interval_ms: i64,
    /// When it fires next (`None`: at the first time seen).
    next: Option<i64>,
}

impl Schedules {
    /// Punctuate every `interval` of `kind` time.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) {
        self.entries.push(Schedule {
            kind,
            interval_ms: i64::try_from(interval.as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
            next: None,
        });
    }

    /// Whether one of `kind`'s schedules is due at `time`; advances those that are.
    fn due(&mut self, kind: PunctuationType, time: i64) -> bool {
        let mut due = false;
        for s in self.entries.iter_mut().filter(|s| s.kind == kind) {
            match s.next {
                // Stream time fires on the first record (as Kafka Streams); the wall clock
                // an interval after the schedule starts.
                None => {
                    due |= kind == PunctuationType::StreamTime;
                    s.next = Some(time.saturating_add(s.interval_ms));
                }
                Some(next) if time >= next => {
                    due = true;
                    // The next one a whole interval after this time, as Kafka Streams.
                    s.next = Some(time.saturating_add(s.interval_ms));
                }
                Some(_) => {}
            }
        }
        due
    }
}

/// What a processor can do with the record in hand: read its metadata and forward
/// records downstream.
pub struct ProcessorContext<'a, K, V> {
    ctx: &'a mut RecordContext,
    children: &'a Children<K, V>,
}

impl<K: Clone, V: Clone> ProcessorContext<'_, K, V> {
    /// Sends a record downstream, with the current record's timestamp (the punctuation
    /// time in a punctuation).
    pub fn forward(&mut self, key: K, value: V) {
        self.children.forward(self.ctx, key, value);
    }

    /// Sends a record downstream with `timestamp`.
    pub fn forward_at(&mut self, key: K, value: V, timestamp: i64) {
        let current = self.ctx.timestamp;
        self.ctx.timestamp = timestamp;
        self.children.forward(self.ctx, key, value);
        self.ctx.timestamp = current;
    }

    /// The current record's timestamp.
    pub fn timestamp(&self) -> i64 {
        self.ctx.timestamp
    }

    /// The current record's topic (empty in a punctuation).
    pub fn topic(&self) -> &str {
        &self.ctx.topic
    }

    /// The current record's offset (-1 in a punctuation).
    pub fn offset(&self) -> i64 {
        self.ctx.offset
    }

    /// The current record's partition (0 in a punctuation and in the test driver).
    pub fn partition(&self) -> i32 {
        self.ctx.partition
    }

    /// The current record's headers.
    pub fn headers(&self) -> &[(String, Option<bytes::Bytes>)] {
        &self.ctx.headers
    }
}

/// A node that can be punctuated, as the task holds it.
pub(crate) trait Punctuate {
    fn punctuate(&mut self, ctx: &mut RecordContext, kind: PunctuationType, time: i64);
}

impl<K, V> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Runs a processor made by `supplier` (one per task) on each record.
    pub fn process<K2, V2, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        P: Processor<K, V, K2, V2>,
    {
        let supplier = Arc::new(supplier);
        let build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let mut processor = supplier();
            let mut schedules = Schedules::default();
            processor.init(&mut schedules);
            let node = Rc::new(RefCell::new(ProcessNode {
                processor,
                schedules,
                children: children::<K2, V2>(built),
                _types: std::marker::PhantomData,
            }));
            let punctuator: crate::topology::Punctuator = node.clone();
            stores.punctuators.push(punctuator);
            let node: Node<K, V> = node;
            Some(Box::new(node) as Built)
        });
        let mut graph = self.graph.borrow_mut();
        let id = graph.add(
            "KSTREAM-PROCESSOR",
            crate::topology::NodeKind::Processor,
            build,
        );
        // What a processor forwards may have any key.
        graph.nodes[id].changes_key = true;
        graph.nodes[self.node].children.push(id);
        drop(graph);
        KStream::of(self.graph.clone(), id)
    }
}

/// A user's processor as built for a task.
struct ProcessNode<K, V, K2, V2, P> {
    processor: P,
    schedules: Schedules,
    children: Children<K2, V2>,
    _types: std::marker::PhantomData<fn(K, V)>,
}

impl<K, V, K2: Clone, V2: Clone, P: Processor<K, V, K2, V2>> Downstream<K, V>
    for ProcessNode<K, V, K2, V2, P>
{
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let mut pctx = ProcessorContext {
            ctx,
            children: &self.children,
        };
        self.processor.process(&mut pctx, key, value);
    }
}

impl<K, V, K2: Clone, V2: Clone, P: Processor<K, V, K2, V2>> Punctuate
    for ProcessNode<K, V, K2, V2, P>
{
    fn punctuate(&mut self, ctx: &mut RecordContext, kind: PunctuationType, time: i64) {
        if !self.schedules.due(kind, time) {
            return;
        }
        let mut pctx = ProcessorContext {
            ctx,
            children: &self.children,
        };
        self.processor.punctuate(&mut pctx, kind, time);
    }
}
