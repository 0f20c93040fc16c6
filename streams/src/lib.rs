//! Kafka-Streams-style stream processing on Strom's client.
//!
//! ```text
//!  StreamsBuilder ──stream(topic)──▶ KStream ──filter / map / flat_map / branch / merge ...──▶ to(topic)
//!        │
//!        └── build() ──▶ Topology ──▶ TopologyTestDriver (synchronous, no broker)
//!                                  └─▶ the streams runtime (tasks per input partition)
//! ```
//!
//! Records are typed between processors and become bytes only at the edges, through
//! [`serde`]'s serdes. A topology is a description: each task builds its own processors
//! from it. See [`dsl`] for an example.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod dsl;
mod processor;
mod runtime;
pub mod serde;
mod state;
mod task;
mod test_driver;
mod topology;

pub use dsl::{
    Consumed, Grouped, JoinWindows, KGroupedStream, KStream, KTable, Materialized, Processor,
    ProcessorContext, Produced, PunctuationType, Repartitioned, Schedules, SessionWindowedSerde,
    SessionWindows, SlidingWindows, StreamJoined, StreamsBuilder, TimeWindows, Windowed,
    WindowedSerde,
};
pub use processor::OutputRecord;
pub use runtime::{KafkaStreams, KeyQueryMetadata, LocalTasks, ProcessingGuarantee, StreamsConfig};
pub use serde::SerdeError;
pub use state::StoreError;
pub use test_driver::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
pub use topology::{Topology, TopologyDescription};

/// What can go wrong in a topology.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// A key or value did not (de)serialize.
    #[error(transparent)]
    Serde(#[from] SerdeError),
    /// The client failed (connection, group, produce).
    #[error(transparent)]
    Client(#[from] strom_client::ClientError),
    /// A state store failed (opening or writing its file).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A query named a store the instance does not have.
    #[error("no state store named {store} in this instance")]
    UnknownStore {
        /// The store asked for.
        store: String,
    },
    /// The instance is not running (it stopped, or failed: `close` says why).
    #[error("the streams instance is not running")]
    NotRunning,
    /// A source topic of the topology does not exist.
    #[error("source topic {topic} does not exist")]
    MissingSourceTopic {
        /// The topic.
        topic: String,
    },
    /// Topics read by the same stateful part of a topology (a join, an aggregation over
    /// merged streams) have different partition counts, so equal keys would reach
    /// different tasks.
    #[error("topics joined or aggregated together must have the same number of partitions: {}", topics.join(", "))]
    NotCopartitioned {
        /// The topics with their partition counts.
        topics: Vec<String>,
    },
    /// The instance's thread or runtime could not start.
    #[error("starting the streams thread: {0}")]
    Io(#[from] std::io::Error),
    /// The instance's thread panicked.
    #[error("the streams thread panicked")]
    Panicked,
}
