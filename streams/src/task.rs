//! A task: the topology built for one input partition, processing its records one at a
//! time (the test driver has one; the runtime one per assigned partition), with its state
//! stores.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::dsl::PunctuationType;
use crate::processor::{OutputRecord, RecordContext};
use crate::state::{Change, SharedStore, StoreEnv, StoreError};
use crate::topology::{Punctuator, SourceNode, Topology};

/// One input record, as a task takes it.
pub(crate) struct Input<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) headers: Vec<(String, Option<Bytes>)>,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
}

/// What processing one record made: records for the sinks' topics, changes to the
/// stores, and failures.
#[derive(Default)]
pub(crate) struct Processed {
    pub(crate) outputs: Vec<OutputRecord>,
    pub(crate) changes: Vec<Change>,
    pub(crate) errors: Vec<String>,
}

/// The processors and state of one task.
pub(crate) struct Task {
    sources: HashMap<String, Vec<SourceNode>>,
    stores: BTreeMap<String, SharedStore>,
    punctuators: Vec<Punctuator>,
    /// The largest record timestamp processed.
    stream_time: i64,
}

impl Task {
    /// The topology built for a task, its stores opened where `env` says.
    ///
    /// # Errors
    /// A persistent store that cannot be opened.
    pub(crate) fn new(topology: &Topology, env: &StoreEnv) -> Result<Self, StoreError> {
        let instance = topology.instantiate(env)?;
        Ok(Task {
            sources: instance.sources,
            stores: instance.stores,
            punctuators: instance.punctuators,
            stream_time: i64::MIN,
        })
    }

    /// A task with no processors (what a driver runs when its topology failed to build).
    pub(crate) fn empty() -> Self {
        Task {
            sources: HashMap::new(),
            stores: BTreeMap::new(),
            punctuators: Vec::new(),
            stream_time: i64::MIN,
        }
    }

    /// Runs one record through the topology.
    pub(crate) fn process(&mut self, input: Input<'_>) -> Processed {
        let mut ctx = RecordContext {
            topic: input.topic.to_owned(),
            partition: input.partition,
            offset: input.offset,
            timestamp: input.timestamp,
            headers: input.headers,
            ..RecordContext::default()
        };
        if let Some(sources) = self.sources.get(input.topic) {
            for source in sources {
                source
                    .borrow_mut()
                    .process(&mut ctx, input.key, input.value);
            }
        }
        if input.timestamp > self.stream_time {
            self.stream_time = input.timestamp;
            self.run_punctuators(&mut ctx, PunctuationType::StreamTime, input.timestamp);
        }
        Processed {
            outputs: ctx.outputs,
            changes: ctx.changes,
            errors: ctx.errors,
        }
    }

    /// Fires the wall-clock punctuations due at `now` (ms since the epoch).
    pub(crate) fn punctuate_wall_clock(&mut self, now: i64) -> Processed {
        let mut ctx = RecordContext {
            offset: -1,
            timestamp: now,
            ..RecordContext::default()
        };
        self.run_punctuators(&mut ctx, PunctuationType::WallClockTime, now);
        Processed {
            outputs: ctx.outputs,
            changes: ctx.changes,
            errors: ctx.errors,
        }
    }

    fn run_punctuators(&mut self, ctx: &mut RecordContext, kind: PunctuationType, time: i64) {
        if self.punctuators.is_empty() {
            return;
        }
        // Punctuations stamp what they forward with their own time.
        let (topic, offset, timestamp) =
            (std::mem::take(&mut ctx.topic), ctx.offset, ctx.timestamp);
        ctx.offset = -1;
        ctx.timestamp = time;
        for node in &self.punctuators {
            node.borrow_mut().punctuate(ctx, kind, time);
        }
        (ctx.topic, ctx.offset, ctx.timestamp) = (topic, offset, timestamp);
    }

    /// The task's stores by name.
    pub(crate) fn stores(&self) -> &BTreeMap<String, SharedStore> {
        &self.stores
    }
}
