//! Strom Connect's runtime: a worker runs connectors' tasks against a Kafka cluster.
//!
//! ```text
//!  SourceTask::poll ──▶ key/value Converter ──▶ idempotent producer ──▶ topic
//!       every offset.flush.interval.ms (and at stop): wait for every record sent to be
//!       acknowledged ──▶ write the last source offset of each source partition to the
//!       compacted offsets topic (Kafka Connect's format) ──▶ SourceTask::commit
//!  restart ──▶ offsets topic read to its end ──▶ each task resumes from its stored offset
//! ```
//!
//! ```text
//!  group connect-<name> consumer ──▶ Converter ──SinkRecord──▶ SinkTask::put
//!       every offset.flush.interval.ms (and at stop): SinkTask::flush ──▶ commit offsets
//! ```
//!
//! Records are written at least once: after a crash, records sent after the last offset
//! flush are read from the source again, and records put after a sink's last commit are
//! put again.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod distributed;
mod file;
mod herder;
mod offsets;
mod plugins;
mod properties;
pub mod rest;
mod sink;
mod source;
mod worker;

pub use distributed::DistributedWorker;
pub use file::{FileStreamSink, FileStreamSource};
pub use herder::Herder;
pub use offsets::OffsetStore;
pub use plugins::{Plugin, Plugins};
pub use properties::parse_properties;
pub use worker::{ConnectorStatus, State, TaskStatus, Worker, WorkerConfig};

/// What can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A connector's or the worker's configuration is not usable.
    #[error("config: {0}")]
    Config(String),
    /// No connector of that name runs here.
    #[error("no connector {0}")]
    UnknownConnector(String),
    /// A connector of that name runs already.
    #[error("connector {0} exists")]
    ConnectorExists(String),
    /// A connector failed.
    #[error(transparent)]
    Connect(#[from] strom_connect_api::ConnectError),
    /// The cluster did not answer in time (a distributed worker's change was not read
    /// back from the config topic).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The Kafka client failed.
    #[error(transparent)]
    Client(#[from] strom_client::ClientError),
}
