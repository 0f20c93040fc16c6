//! What the REST API asks of a worker, in either mode.

use async_trait::async_trait;
use strom_connect_api::ConfigMap;

use crate::plugins::Plugins;
use crate::worker::{ConnectorStatus, Worker};
use crate::RuntimeError;

/// Manages a worker's (or a cluster of workers') connectors: Kafka Connect's `Herder`.
#[async_trait]
pub trait Herder: Send + Sync {
    /// The connector classes it can run.
    fn plugins(&self) -> &Plugins;

    /// The names of the connectors.
    async fn connectors(&self) -> Vec<String>;

    /// Connector `name`'s status.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`].
    async fn status(&self, name: &str) -> Result<ConnectorStatus, RuntimeError>;

    /// Connector `name`'s configuration.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`].
    async fn config(&self, name: &str) -> Result<ConfigMap, RuntimeError>;

    /// The configurations of connector `name`'s tasks.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`].
    async fn task_configs(&self, name: &str) -> Result<Vec<ConfigMap>, RuntimeError>;

    /// Creates connector `name`.
    ///
    /// # Errors
    /// [`RuntimeError::ConnectorExists`], a configuration that cannot run.
    async fn add_connector(&self, name: &str, config: ConfigMap) -> Result<(), RuntimeError>;

    /// Creates or reconfigures connector `name`; whether it was created.
    ///
    /// # Errors
    /// A configuration that cannot run.
    async fn put_config(&self, name: &str, config: ConfigMap) -> Result<bool, RuntimeError>;

    /// Stops and forgets connector `name`.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`].
    async fn remove_connector(&self, name: &str) -> Result<(), RuntimeError>;

    /// Stops connector `name`'s tasks until resumed.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`].
    async fn pause(&self, name: &str) -> Result<(), RuntimeError>;

    /// Starts a paused connector's tasks again.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`].
    async fn resume(&self, name: &str) -> Result<(), RuntimeError>;

    /// Restarts connector `name` and its tasks (a failed task too).
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`].
    async fn restart(&self, name: &str) -> Result<(), RuntimeError>;
}

#[async_trait]
impl Herder for Worker {
    fn plugins(&self) -> &Plugins {
        Worker::plugins(self)
    }

    async fn connectors(&self) -> Vec<String> {
        Worker::connectors(self).await
    }

    async fn status(&self, name: &str) -> Result<ConnectorStatus, RuntimeError> {
        Worker::status(self, name).await
    }

    async fn config(&self, name: &str) -> Result<ConfigMap, RuntimeError> {
        Worker::config(self, name).await
    }

    async fn task_configs(&self, name: &str) -> Result<Vec<ConfigMap>, RuntimeError> {
        Worker::task_configs(self, name).await
    }

    async fn add_connector(&self, name: &str, config: ConfigMap) -> Result<(), RuntimeError> {
        Worker::add_connector(self, name, config).await
    }

    async fn put_config(&self, name: &str, config: ConfigMap) -> Result<bool, RuntimeError> {
        Worker::put_config(self, name, config).await
    }

    async fn remove_connector(&self, name: &str) -> Result<(), RuntimeError> {
        Worker::remove_connector(self, name).await
    }

    async fn pause(&self, name: &str) -> Result<(), RuntimeError> {
        Worker::pause(self, name).await
    }

    async fn resume(&self, name: &str) -> Result<(), RuntimeError> {
        Worker::resume(self, name).await
    }

    async fn restart(&self, name: &str) -> Result<(), RuntimeError> {
        Worker::restart(self, name).await
    }
}
