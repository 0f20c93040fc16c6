//! A worker: runs connectors and their tasks, standalone; and what both modes share to
//! start them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_client::config::OffsetReset;
use strom_client::consumer::Consumer;
use strom_client::producer::Producer;
use strom_client::ClientConfig;
use strom_connect_api::{
    converter_from_config, ConfigKey, ConfigMap, ConnectError, SinkConnector, SourceConnector,
    Transforms,
};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::info;

use crate::offsets::OffsetStore;
use crate::plugins::{Plugin, Plugins};
use crate::sink::{DeadLetter, SinkRunner};
use crate::source::SourceRunner;
use crate::RuntimeError;

/// A worker's settings: its cluster, and Kafka Connect's worker keys
/// (`offset.storage.topic`, `offset.storage.partitions`, `offset.flush.interval.ms`,
/// `key.converter`, `value.converter` and their `.schemas.enable`).
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The cluster.
    pub client: ClientConfig,
    /// Worker keys.
    pub settings: ConfigMap,
}

impl WorkerConfig {
    /// Defaults for the cluster `client` reaches.
    pub fn new(client: ClientConfig) -> WorkerConfig {
        WorkerConfig {
            client,
            settings: ConfigMap::new(),
        }
    }

    /// A worker from its properties: Connect's worker keys (`group.id`, `offset.*`,
    /// `config.storage.*`, `status.storage.*`, `slots.storage.*`, `*.converter*`,
    /// `errors.*`, `listeners`, `rest.*`) are the worker's, the others (`bootstrap.servers`, `client.id`, ...,
    /// also with a `producer.` or `consumer.` prefix) configure its clients.
    ///
    /// # Errors
    /// [`RuntimeError::Client`] naming a key neither knows.
    pub fn from_properties(properties: &ConfigMap) -> Result<WorkerConfig, RuntimeError> {
        const WORKER: [&str; 12] = [
            "group.id",
            "config.storage.",
            "status.storage.",
            "slots.storage.",
            "offset.",
            "key.converter",
            "value.converter",
            "header.converter",
            "errors.",
            "plugin.path",
            "listeners",
            "rest.",
        ];
        let mut client = ClientConfig::new();
        let mut settings = ConfigMap::new();
        for (key, value) in properties {
            if WORKER.iter().any(|w| key.starts_with(w)) {
                settings.insert(key.clone(), value.clone());
                continue;
            }
            let client_key = key
                .strip_prefix("producer.")
                .or_else(|| key.strip_prefix("consumer."))
                .unwrap_or(key);
            client.set(client_key, value)?;
        }
        Ok(WorkerConfig { client, settings })
    }

    /// Sets a worker key.
    pub fn set(mut self, key: &str, value: &str) -> WorkerConfig {
        self.settings.insert(key.to_owned(), value.to_owned());
        self
    }

    /// A worker key's value, or `default`.
    pub fn get(&self, key: &str, default: &str) -> String {
        self.settings
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    pub(crate) fn number(&self, key: &str, default: u64) -> Result<u64, RuntimeError> {
        self.settings.get(key).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| RuntimeError::Config(format!("{key} is a number, not {v}")))
        })
    }
}

/// A connector's or task's state, as Kafka Connect's status API names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Running.
    Running,
    /// Stopped with an error (its trace).
    Failed(String),
    /// Stopped on request, to be resumed.
    Paused,
    /// Not running.
    Unassigned,
}

impl State {
    /// `RUNNING`, `FAILED` or `UNASSIGNED`.
    pub fn name(&self) -> &'static str {
        match self {
            State::Running => "RUNNING",
            State::Failed(_) => "FAILED",
            State::Paused => "PAUSED",
            State::Unassigned => "UNASSIGNED",
        }
    }
}

/// A task's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskStatus {
    /// Its number within the connector.
    pub id: usize,
    /// Its state.
    pub state: State,
    /// The worker that runs it (`standalone`, or a distributed worker's id).
    pub worker_id: String,
}

/// A connector's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorStatus {
    /// Its name.
    pub name: String,
    /// Its class.
    pub class: String,
    /// Its state.
    pub state: State,
    /// The worker that runs it.
    pub worker_id: String,
    /// Its tasks.
    pub tasks: Vec<TaskStatus>,
}

/// The worker id statuses of a standalone worker give.
const STANDALONE: &str = "standalone";

/// A connector of either kind.
pub(crate) enum Connector {
    Source(Box<dyn SourceConnector>),
    Sink(Box<dyn SinkConnector>),
}

impl Connector {
    fn config_keys(&self) -> Vec<ConfigKey> {
        match self {
            Connector::Source(c) => c.config_keys(),
            Connector::Sink(c) => c.config_keys(),
        }
    }

    pub(crate) async fn start(&mut self, config: ConfigMap) -> Result<(), ConnectError> {
        match self {
            Connector::Source(c) => c.start(config).await,
            Connector::Sink(c) => c.start(config).await,
        }
    }

    pub(crate) fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        match self {
            Connector::Source(c) => c.task_configs(max_tasks),
            Connector::Sink(c) => c.task_configs(max_tasks),
        }
    }

    pub(crate) async fn stop(&mut self) {
        match self {
            Connector::Source(c) => c.stop().await,
            Connector::Sink(c) => c.stop().await,
        }
    }
}

/// A task's place in its connector's status.
pub(crate) struct TaskHandle {
    pub(crate) connector: String,
    pub(crate) id: usize,
    pub(crate) status: Arc<Mutex<ConnectorStatus>>,
    /// Told of every change of state (to publish it), if anyone listens.
    pub(crate) changed: Option<Arc<Notify>>,
}

impl TaskHandle {
    /// Sets the task's state.
    pub(crate) fn set(&self, state: State) {
        if let Ok(mut status) = self.status.lock() {
            if let Some(task) = status.tasks.iter_mut().find(|t| t.id == self.id) {
                task.state = state;
            }
        }
        if let Some(changed) = &self.changed {
            changed.notify_one();
        }
    }

    /// Records how the task ended: stopped, or failed with an error.
    pub(crate) fn ended(&self, result: Result<(), RuntimeError>) {
        match result {
            Ok(()) => {
                info!(connector = %self.connector, task = self.id, "task stopped");
                self.set(State::Unassigned);
            }
            Err(e) => {
                tracing::warn!(connector = %self.connector, task = self.id, error = %e, "task failed");
                self.set(State::Failed(e.to_string()));
            }
        }
    }
}

/// What a connector's configuration gives its tasks: converter settings (the
/// connector's keys over the worker's), error tolerance, transforms.
pub(crate) struct TaskSettings {
    settings: ConfigMap,
    tolerate: bool,
    transforms: Arc<Transforms>,
}

/// What both modes share to run connectors: the worker's settings, the connector
/// classes, the offsets.
#[derive(Clone)]
pub(crate) struct Engine {
    pub(crate) config: WorkerConfig,
    pub(crate) plugins: Plugins,
    pub(crate) offsets: OffsetStore,
}

impl Engine {
    /// Checks the worker keys and reads the stored offsets.
    pub(crate) async fn open(
        config: WorkerConfig,
        plugins: Plugins,
    ) -> Result<Engine, RuntimeError> {
        let topic = config.get("offset.storage.topic", "connect-offsets");
        let partitions = i32::try_from(config.number("offset.storage.partitions", 25)?)
            .map_err(|_| RuntimeError::Config("offset.storage.partitions is too large".into()))?;
        converter_from_config(&config.settings, "key.converter")?;
        converter_from_config(&config.settings, "value.converter")?;
        config.number("offset.flush.interval.ms", 60_000)?;
        let offsets = OffsetStore::open(&config.client, &topic, partitions).await?;
        Ok(Engine {
            config,
            plugins,
            offsets,
        })
    }

    /// A connector of `config`'s class, not started, and the class's full name, once
    /// the keys it requires are there.
    pub(crate) fn instantiate(
        &self,
        name: &str,
        config: &ConfigMap,
    ) -> Result<(Connector, String), RuntimeError> {
        let class = config
            .get("connector.class")
            .ok_or_else(|| RuntimeError::Config("connector.class is missing".to_owned()))?;
        let (plugin, class) = self.plugins.get(class).ok_or_else(|| {
            RuntimeError::Config(format!("connector.class {class}: no such connector here"))
        })?;
        let connector = match plugin {
            Plugin::Source(make) => Connector::Source(make()),
            Plugin::Sink(make) => Connector::Sink(make()),
        };
        let keys = connector.config_keys();
        let missing = ConfigKey::missing(&keys, config);
        if !missing.is_empty() {
            return Err(RuntimeError::Config(format!(
                "connector {name} ({class}) needs {}",
                missing.join(", ")
            )));
        }
        Ok((connector, class.to_owned()))
    }

    /// Checks everything in a connector's `config` the runtime reads, before it starts:
    /// its class and required keys, `tasks.max`, converters, transforms and errors keys.
    pub(crate) fn validate(&self, name: &str, config: &ConfigMap) -> Result<(), RuntimeError> {
        self.instantiate(name, config)?;
        max_tasks(config)?;
        self.task_settings(config)?;
        Ok(())
    }

    /// The settings a connector's tasks run with.
    pub(crate) fn task_settings(&self, config: &ConfigMap) -> Result<TaskSettings, RuntimeError> {
        let mut settings = self.config.settings.clone();
        settings.extend(config.clone());
        let tolerate = match settings.get("errors.tolerance").map(String::as_str) {
            None | Some("none") => false,
            Some("all") => true,
            Some(other) => {
                return Err(RuntimeError::Config(format!(
                    "errors.tolerance is none or all, not {other}"
                )))
            }
        };
        converter_from_config(&settings, "key.converter")?;
        converter_from_config(&settings, "value.converter")?;
        if settings
            .get("errors.deadletterqueue.topic.name")
            .is_some_and(|t| !t.is_empty())
            && !tolerate
        {
            return Err(RuntimeError::Config(
                "errors.deadletterqueue.topic.name needs errors.tolerance=all".to_owned(),
            ));
        }
        let transforms = Arc::new(Transforms::from_config_with(
            config,
            self.plugins.transforms(),
        )?);
        Ok(TaskSettings {
            settings,
            tolerate,
            transforms,
        })
    }

    /// Starts task `handle.id` of `connector` with `task_config`, until `stopped`.
    pub(crate) async fn spawn_task(
        &self,
        connector: &Connector,
        handle: TaskHandle,
        task_config: ConfigMap,
        settings: &TaskSettings,
        stopped: watch::Receiver<bool>,
    ) -> Result<JoinHandle<()>, RuntimeError> {
        let flush_every =
            Duration::from_millis(self.config.number("offset.flush.interval.ms", 60_000)?);
        let key = converter_from_config(&settings.settings, "key.converter")?;
        let value = converter_from_config(&settings.settings, "value.converter")?;
        Ok(match connector {
            Connector::Source(source) => {
                let runner = SourceRunner {
                    handle,
                    task: source.task(),
                    producer: Producer::new(self.config.client.clone().enable_idempotence(true))
                        .await?,
                    key,
                    value,
                    offsets: self.offsets.clone(),
                    flush_every,
                    tolerate: settings.tolerate,
                    transforms: settings.transforms.clone(),
                };
                tokio::spawn(runner.run(task_config, stopped))
            }
            Connector::Sink(sink) => {
                let runner = SinkRunner {
                    consumer: self.sink_consumer(&handle.connector, &task_config).await?,
                    handle,
                    task: sink.task(),
                    dead_letter: self
                        .dead_letter(&settings.settings, settings.tolerate)
                        .await?,
                    key,
                    value,
                    flush_every,
                    tolerate: settings.tolerate,
                    transforms: settings.transforms.clone(),
                };
                tokio::spawn(runner.run(task_config, stopped))
            }
        })
    }

    /// A member of sink connector `name`'s group (`connect-<name>`), subscribed to its
    /// `topics` or `topics.regex`.
    async fn sink_consumer(
        &self,
        name: &str,
        config: &ConfigMap,
    ) -> Result<Consumer, RuntimeError> {
        let consumer = Consumer::new(
            self.config
                .client
                .clone()
                .group_id(format!("connect-{name}"))
                .enable_auto_commit(false)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .await?;
        match (config.get("topics"), config.get("topics.regex")) {
            (Some(topics), None) => {
                let topics: Vec<&str> = topics
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .collect();
                consumer.subscribe(&topics)?;
            }
            (None, Some(pattern)) => consumer.subscribe_pattern(pattern, None)?,
            _ => {
                return Err(RuntimeError::Config(format!(
                    "sink connector {name} needs one of topics and topics.regex"
                )))
            }
        }
        Ok(consumer)
    }

    /// A sink's dead-letter topic from its `errors.deadletterqueue.*` keys (which need
    /// `errors.tolerance=all`).
    async fn dead_letter(
        &self,
        settings: &ConfigMap,
        tolerate: bool,
    ) -> Result<Option<DeadLetter>, RuntimeError> {
        let Some(topic) = settings
            .get("errors.deadletterqueue.topic.name")
            .filter(|t| !t.is_empty())
        else {
            return Ok(None);
        };
        if !tolerate {
            return Err(RuntimeError::Config(
                "errors.deadletterqueue.topic.name needs errors.tolerance=all".to_owned(),
            ));
        }
        let context_headers = settings
            .get("errors.deadletterqueue.context.headers.enable")
            .is_some_and(|v| v == "true");
        Ok(Some(DeadLetter {
            producer: Producer::new(self.config.client.clone().enable_idempotence(true)).await?,
            topic: topic.clone(),
            context_headers,
        }))
    }
}

/// A connector's `tasks.max` (1 when missing).
pub(crate) fn max_tasks(config: &ConfigMap) -> Result<usize, RuntimeError> {
    config.get("tasks.max").map_or(Ok(1), |v| {
        v.parse::<usize>()
            .map(|n| n.max(1))
            .map_err(|_| RuntimeError::Config(format!("tasks.max is a number, not {v}")))
    })
}

/// A connector's tasks while they run.
struct Tasks {
    connector: Connector,
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

/// A connector the worker has: its config, and its tasks unless paused.
struct Running {
    config: ConfigMap,
    task_configs: Vec<ConfigMap>,
    status: Arc<Mutex<ConnectorStatus>>,
    tasks: Option<Tasks>,
}

/// Runs connectors in this process.
pub struct Worker {
    engine: Engine,
    connectors: tokio::sync::Mutex<BTreeMap<String, Running>>,
}

impl Worker {
    /// A worker on `config`'s cluster that runs `plugins`; reads the stored offsets.
    ///
    /// # Errors
    /// Bad worker keys, client errors.
    pub async fn start(config: WorkerConfig, plugins: Plugins) -> Result<Worker, RuntimeError> {
        Ok(Worker {
            engine: Engine::open(config, plugins).await?,
            connectors: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// Starts connector `name` with `config` (`connector.class`, `tasks.max`, its own
    /// keys, and converter overrides).
    ///
    /// # Errors
    /// [`RuntimeError::Config`] naming a missing key or unknown class;
    /// [`RuntimeError::ConnectorExists`]; the connector's own refusal.
    pub async fn add_connector(&self, name: &str, config: ConfigMap) -> Result<(), RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        if connectors.contains_key(name) {
            return Err(RuntimeError::ConnectorExists(name.to_owned()));
        }
        let running = self.start_connector(name, config).await?;
        connectors.insert(name.to_owned(), running);
        Ok(())
    }

    /// Starts connector `name`'s tasks.
    async fn start_connector(
        &self,
        name: &str,
        config: ConfigMap,
    ) -> Result<Running, RuntimeError> {
        let (mut connector, class) = self.engine.instantiate(name, &config)?;
        let max_tasks = max_tasks(&config)?;
        let settings = self.engine.task_settings(&config)?;
        connector.start(config.clone()).await?;
        let task_configs = connector.task_configs(max_tasks)?;
        let configs = task_configs.clone();
        let status = Arc::new(Mutex::new(ConnectorStatus {
            name: name.to_owned(),
            class: class.clone(),
            state: State::Running,
            worker_id: STANDALONE.to_owned(),
            tasks: (0..task_configs.len())
                .map(|id| TaskStatus {
                    id,
                    state: State::Unassigned,
                    worker_id: STANDALONE.to_owned(),
                })
                .collect(),
        }));
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for (id, task_config) in task_configs.into_iter().enumerate() {
            let handle = TaskHandle {
                connector: name.to_owned(),
                id,
                status: status.clone(),
                changed: None,
            };
            let spawned = self
                .engine
                .spawn_task(&connector, handle, task_config, &settings, stopped.clone())
                .await;
            match spawned {
                Ok(task) => tasks.push(task),
                Err(e) => {
                    stop_tasks(Tasks {
                        connector,
                        stop,
                        handles: tasks,
                    })
                    .await;
                    return Err(e);
                }
            }
        }
        info!(
            connector = name,
            class,
            tasks = tasks.len(),
            "connector started"
        );
        Ok(Running {
            config,
            task_configs: configs,
            status,
            tasks: Some(Tasks {
                connector,
                stop,
                handles: tasks,
            }),
        })
    }

    /// The names of the connectors it runs.
    pub async fn connectors(&self) -> Vec<String> {
        self.connectors.lock().await.keys().cloned().collect()
    }

    /// Connector `name`'s status.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`].
    pub async fn status(&self, name: &str) -> Result<ConnectorStatus, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let running = connectors
            .get(name)
            .ok_or_else(|| RuntimeError::UnknownConnector(name.to_owned()))?;
        let status = running
            .status
            .lock()
            .map(|s| s.clone())
            .map_err(|_| RuntimeError::UnknownConnector(name.to_owned()))?;
        Ok(status)
    }

    /// Stops connector `name` and forgets it: its tasks flush their offsets and stop.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`].
    pub async fn remove_connector(&self, name: &str) -> Result<(), RuntimeError> {
        let running = self
            .connectors
            .lock()
            .await
            .remove(name)
            .ok_or_else(|| RuntimeError::UnknownConnector(name.to_owned()))?;
        if let Some(tasks) = running.tasks {
            stop_tasks(tasks).await;
        }
        info!(connector = name, "connector stopped");
        Ok(())
    }

    /// Connector `name`'s configuration.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`].
    pub async fn config(&self, name: &str) -> Result<ConfigMap, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let running = connectors
            .get(name)
            .ok_or_else(|| RuntimeError::UnknownConnector(name.to_owned()))?;
        Ok(running.config.clone())
    }

    /// The configurations of connector `name`'s tasks.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`].
    pub async fn task_configs(&self, name: &str) -> Result<Vec<ConfigMap>, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let running = connectors
            .get(name)
            .ok_or_else(|| RuntimeError::UnknownConnector(name.to_owned()))?;
        Ok(running.task_configs.clone())
    }

    /// Creates connector `name` with `config`, or restarts it with `config` if it exists;
    /// whether it was created.
    ///
    /// # Errors
    /// As [`Worker::add_connector`]; the old configuration keeps running if the new one
    /// is refused before its tasks start.
    pub async fn put_config(&self, name: &str, config: ConfigMap) -> Result<bool, RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        let Some(old) = connectors.remove(name) else {
            let running = self.start_connector(name, config).await?;
            connectors.insert(name.to_owned(), running);
            return Ok(true);
        };
        let paused = old.tasks.is_none();
        let old_config = old.config.clone();
        if let Some(tasks) = old.tasks {
            stop_tasks(tasks).await;
        }
        match self.start_connector(name, config).await {
            Ok(mut running) => {
                if paused {
                    pause(&mut running).await;
                }
                connectors.insert(name.to_owned(), running);
                Ok(false)
            }
            Err(e) => {
                if let Ok(running) = self.start_connector(name, old_config).await {
                    connectors.insert(name.to_owned(), running);
                }
                Err(e)
            }
        }
    }

    /// Stops connector `name`'s tasks (offsets flushed) until [`Worker::resume`].
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`].
    pub async fn pause(&self, name: &str) -> Result<(), RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        let running = connectors
            .get_mut(name)
            .ok_or_else(|| RuntimeError::UnknownConnector(name.to_owned()))?;
        pause(running).await;
        Ok(())
    }

    /// Starts a paused connector's tasks again.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`]; the connector's refusal to start.
    pub async fn resume(&self, name: &str) -> Result<(), RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        let running = connectors
            .get(name)
            .ok_or_else(|| RuntimeError::UnknownConnector(name.to_owned()))?;
        if running.tasks.is_some() {
            return Ok(());
        }
        let config = running.config.clone();
        let running = self.start_connector(name, config).await?;
        connectors.insert(name.to_owned(), running);
        Ok(())
    }

    /// Stops connector `name`'s tasks and starts them again (a failed task too).
    ///
    /// # Errors
    /// [`RuntimeError::UnknownConnector`]; the connector's refusal to start.
    pub async fn restart(&self, name: &str) -> Result<(), RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        let running = connectors
            .remove(name)
            .ok_or_else(|| RuntimeError::UnknownConnector(name.to_owned()))?;
        let config = running.config.clone();
        if let Some(tasks) = running.tasks {
            stop_tasks(tasks).await;
        }
        let running = self.start_connector(name, config).await?;
        connectors.insert(name.to_owned(), running);
        Ok(())
    }

    /// The connector classes it can run.
    pub fn plugins(&self) -> &Plugins {
        &self.engine.plugins
    }

    /// Stops every connector (their tasks flush their offsets).
    pub async fn shutdown(&self) {
        let connectors = std::mem::take(&mut *self.connectors.lock().await);
        for (_, running) in connectors {
            if let Some(tasks) = running.tasks {
                stop_tasks(tasks).await;
            }
        }
    }
}

/// Stops a connector's tasks and marks it paused.
async fn pause(running: &mut Running) {
    if let Some(tasks) = running.tasks.take() {
        stop_tasks(tasks).await;
    }
    if let Ok(mut status) = running.status.lock() {
        status.state = State::Paused;
        for task in &mut status.tasks {
            task.state = State::Paused;
        }
    }
}

async fn stop_tasks(mut tasks: Tasks) {
    let _ = tasks.stop.send(true);
    for handle in tasks.handles {
        let _ = handle.await;
    }
    tasks.connector.stop().await;
}
