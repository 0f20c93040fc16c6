//! A task: the topology built for one input partition, processing its records one at a
//! time (the test driver has one; the runtime one per assigned partition).

use std::collections::HashMap;

use bytes::Bytes;

use crate::processor::{OutputRecord, RecordContext};
use crate::topology::{SourceNode, Topology};

/// One input record, as a task takes it.
pub(crate) struct Input<'a> {
    pub(crate) topic: &'a str,
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) headers: Vec<(String, Option<Bytes>)>,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
}

/// What processing one record made: records for the sinks' topics, and failures.
#[derive(Default)]
pub(crate) struct Processed {
    pub(crate) outputs: Vec<OutputRecord>,
    pub(crate) errors: Vec<String>,
}

/// The processors (and state) of one task.
pub(crate) struct Task {
    sources: HashMap<String, Vec<SourceNode>>,
}

impl Task {
    pub(crate) fn new(topology: &Topology) -> Self {
        Task {
            sources: topology.instantiate(),
        }
    }

    /// Runs one record through the topology.
    pub(crate) fn process(&mut self, input: Input<'_>) -> Processed {
        let mut ctx = RecordContext {
            topic: input.topic.to_owned(),
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
        Processed {
            outputs: ctx.outputs,
            errors: ctx.errors,
        }
    }
}
