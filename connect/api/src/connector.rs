//! Connector and task interfaces.

use async_trait::async_trait;

use crate::record::{SinkRecord, SourceRecord};
use crate::{ConfigMap, ConnectError, OffsetMap};

/// Whether a connector reads into Kafka or writes out of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectorKind {
    /// Reads from a system into topics.
    Source,
    /// Writes topics into a system.
    Sink,
}

/// A configuration key a connector understands, for validation and documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigKey {
    /// The key.
    pub name: &'static str,
    /// Whether a value is required (no default).
    pub required: bool,
    /// The default, if any.
    pub default: Option<&'static str>,
    /// What it does.
    pub doc: &'static str,
}

impl ConfigKey {
    /// The keys of `keys` that `config` lacks and that have no default.
    pub fn missing<'a>(keys: &'a [ConfigKey], config: &ConfigMap) -> Vec<&'a str> {
        keys.iter()
            .filter(|k| k.required && !config.contains_key(k.name))
            .map(|k| k.name)
            .collect()
    }
}

/// Reads the offsets the runtime stored for source partitions.
pub trait OffsetReader: Send + Sync {
    /// The last offset stored for `partition` of this connector.
    fn offset(&self, partition: &OffsetMap) -> Option<OffsetMap>;
}

/// What a source task gets from the runtime.
#[derive(Clone)]
pub struct SourceTaskContext {
    /// The stored offsets of this connector's source partitions.
    pub offsets: std::sync::Arc<dyn OffsetReader>,
}

/// A source connector: checks its configuration and splits the work into tasks.
#[async_trait]
pub trait SourceConnector: Send + Sync {
    /// Its version.
    fn version(&self) -> &str;

    /// The keys it understands.
    fn config_keys(&self) -> Vec<ConfigKey>;

    /// Starts with `config` (after the runtime checked the required keys).
    ///
    /// # Errors
    /// A configuration it cannot run with.
    async fn start(&mut self, config: ConfigMap) -> Result<(), ConnectError>;

    /// The configurations of at most `max_tasks` tasks.
    ///
    /// # Errors
    /// When the work cannot be split.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError>;

    /// A new task of this connector.
    fn task(&self) -> Box<dyn SourceTask>;

    /// Stops.
    async fn stop(&mut self);
}

/// A source task: polls records from the source.
#[async_trait]
pub trait SourceTask: Send {
    /// Starts with its configuration; `context` has the offsets stored so far.
    ///
    /// # Errors
    /// When the source cannot be reached or read from the stored offset.
    async fn start(
        &mut self,
        config: ConfigMap,
        context: SourceTaskContext,
    ) -> Result<(), ConnectError>;

    /// The next records (empty when none came within a short wait).
    ///
    /// # Errors
    /// [`ConnectError::Retriable`] to be polled again; anything else fails the task.
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError>;

    /// Called once the offsets of records up to these were stored (the source may
    /// acknowledge them).
    async fn commit(&mut self) {}

    /// Stops.
    async fn stop(&mut self);
}

/// A sink connector.
#[async_trait]
pub trait SinkConnector: Send + Sync {
    /// Its version.
    fn version(&self) -> &str;

    /// The keys it understands.
    fn config_keys(&self) -> Vec<ConfigKey>;

    /// Starts with `config`.
    ///
    /// # Errors
    /// A configuration it cannot run with.
    async fn start(&mut self, config: ConfigMap) -> Result<(), ConnectError>;

    /// The configurations of at most `max_tasks` tasks.
    ///
    /// # Errors
    /// When the work cannot be split.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError>;

    /// A new task of this connector.
    fn task(&self) -> Box<dyn SinkTask>;

    /// Stops.
    async fn stop(&mut self);
}

/// A sink task: writes records to the system.
#[async_trait]
pub trait SinkTask: Send {
    /// Starts with its configuration.
    ///
    /// # Errors
    /// When the system cannot be reached.
    async fn start(&mut self, config: ConfigMap) -> Result<(), ConnectError>;

    /// Takes records (it may buffer them until [`SinkTask::flush`]).
    ///
    /// # Errors
    /// [`ConnectError::Retriable`] to be given them again; anything else fails the task.
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError>;

    /// Makes everything put so far durable; the runtime commits the consumer's offsets
    /// after it returns.
    ///
    /// # Errors
    /// When the records could not be made durable (they are given again).
    async fn flush(&mut self) -> Result<(), ConnectError>;

    /// Stops.
    async fn stop(&mut self);
}
