//! Distributed mode: workers that share a `group.id` run a cluster's connectors between
//! them, and any of them answers the REST API.
//!
//! ```text
//!  REST on any worker ──▶ config topic (one partition, compacted; Kafka Connect's keys:
//!       connector-<name>, task-<name>-<n>, commit-<name>, target-state-<name>,
//!       restart-connector-<name>) ──▶ every worker follows it into its view
//!  members of group.id subscribe to the slots topic (roundrobin): each owns some slots;
//!       connector <name> lives in slot murmur2(name) % slots, its task n in the
//!       (n + 1)th slot after it, so one connector's tasks spread over the workers
//!  slot owner ──▶ starts the connector, which writes its task configs (task-*, commit-*)
//!             ──▶ starts a task: reads the offsets topic to its end, then runs it
//!  a worker leaves (its slots are revoked: tasks flush their offsets and stop before
//!       the group moves on) or dies (session.timeout.ms) ──▶ its slots move to the others
//!  every worker ──▶ status topic (status-connector-<name>, status-task-<name>-<n>: state,
//!       trace, worker_id) ──▶ every worker follows it to answer status requests
//! ```
//!
//! Records are written at least once, as in standalone mode: a task that takes over from
//! a dead worker starts at the last offsets that worker flushed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use strom_client::admin::{Admin, NewTopic, OffsetSpec};
use strom_client::consumer::{ListenerFuture, RebalanceListener};
use strom_client::producer::partitioner::murmur2;
use strom_client::producer::{Producer, Record};
use strom_client::{ClientError, Consumer};
use strom_connect_api::ConfigMap;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::herder::Herder;
use crate::plugins::Plugins;
use crate::worker::{
    max_tasks, Connector, ConnectorStatus, Engine, State, TaskHandle, TaskStatus, WorkerConfig,
};
use crate::RuntimeError;

/// How long a REST change waits to see itself in the config topic.
const READ_BACK: Duration = Duration::from_secs(30);
/// The pause after a follower's or the membership's failed poll.
const RETRY: Duration = Duration::from_millis(500);

/// One of a cluster's workers.
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use strom_connect_runtime::{DistributedWorker, Herder, Plugins, State, WorkerConfig};
///
/// let dir = tempfile::tempdir()?;
/// let broker = strom_broker::Broker::start(strom_broker::BrokerConfig::new(dir.path())).await?;
/// let client = strom_client::ClientConfig::new().bootstrap(&broker.bootstrap());
/// let config = WorkerConfig::new(client).set("group.id", "connect-cluster");
/// let worker = DistributedWorker::start(config, Plugins::builtin(), "worker-1").await?;
///
/// let file = dir.path().join("out.txt");
/// let sink = [
///     ("connector.class", "FileStreamSink"),
///     ("topics", "orders"),
///     ("file", file.to_str().unwrap_or_default()),
/// ];
/// worker
///     .add_connector("orders-to-file", sink.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
///     .await?;
/// // Every worker of the group sees it at once; one of them runs it.
/// assert_eq!(worker.connectors().await, ["orders-to-file"]);
/// while worker.status("orders-to-file").await?.state != State::Running {
///     tokio::time::sleep(std::time::Duration::from_millis(20)).await;
/// }
/// worker.shutdown().await;
/// # Ok(())
/// # }
/// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
/// ```
pub struct DistributedWorker {
    shared: Arc<Shared>,
    slots: Arc<Consumer>,
    membership: Mutex<Option<JoinHandle<()>>>,
    background: Mutex<Vec<JoinHandle<()>>>,
}

/// What runs in a slot: a connector, or one of its tasks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Connector(String),
    Task(String, usize),
}

impl Unit {
    fn name(&self) -> &str {
        match self {
            Unit::Connector(name) | Unit::Task(name, _) => name,
        }
    }

    /// Its key in the status topic.
    fn status_key(&self) -> String {
        match self {
            Unit::Connector(name) => format!("status-connector-{name}"),
            Unit::Task(name, id) => format!("status-task-{name}-{id}"),
        }
    }
}

/// What a unit runs with: it is restarted when this changes.
#[derive(Clone, Debug, PartialEq)]
struct Spec {
    config: ConfigMap,
    task: Option<ConfigMap>,
    restarts: u64,
    paused: bool,
}

/// A unit's work on this worker.
enum Work {
    /// A started connector.
    Connector(Connector),
    /// A running task and its state.
    Task {
        stop: watch::Sender<bool>,
        handle: JoinHandle<()>,
        status: Arc<Mutex<ConnectorStatus>>,
    },
    /// Nothing runs: paused, or it failed to start.
    Idle(State),
}

struct Running {
    spec: Spec,
    slot: i32,
    work: Work,
}

impl Running {
    fn state(&self) -> State {
        match &self.work {
            Work::Connector(_) => State::Running,
            Work::Task { status, .. } => status
                .lock()
                .ok()
                .and_then(|s| s.tasks.first().map(|t| t.state.clone()))
                .unwrap_or(State::Unassigned),
            Work::Idle(state) => state.clone(),
        }
    }
}

/// A connector as the config topic describes it.
#[derive(Clone, Debug, Default)]
struct Entry {
    /// Its configuration (none: only task records were read so far).
    config: Option<ConfigMap>,
    paused: bool,
    /// The committed task configurations.
    tasks: Vec<ConfigMap>,
    /// Task configurations written but not committed yet.
    staged: BTreeMap<usize, ConfigMap>,
    restarts: u64,
}

/// A status record.
#[derive(Clone, Debug)]
struct StatusRecord {
    state: State,
    worker_id: String,
}

/// The cluster's connectors and statuses, as read from the topics.
#[derive(Default)]
struct View {
    connectors: BTreeMap<String, Entry>,
    statuses: BTreeMap<String, StatusRecord>,
}

impl View {
    fn entry(&self, name: &str) -> Result<(&Entry, &ConfigMap), RuntimeError> {
        self.connectors
            .get(name)
            .and_then(|e| e.config.as_ref().map(|c| (e, c)))
            .ok_or_else(|| RuntimeError::UnknownConnector(name.to_owned()))
    }

    /// Applies a config topic record.
    fn apply_config(&mut self, key: &str, value: Option<&Value>) {
        let properties = |value: Option<&Value>| -> Option<ConfigMap> {
            let object = value?.get("properties")?.as_object()?;
            Some(
                object
                    .iter()
                    .map(|(k, v)| {
                        let v = v.as_str().map_or_else(|| v.to_string(), String::from);
                        (k.clone(), v)
                    })
                    .collect(),
            )
        };
        if let Some(name) = key.strip_prefix("connector-") {
            match properties(value) {
                Some(config) => {
                    self.connectors.entry(name.to_owned()).or_default().config = Some(config);
                }
                None => {
                    self.connectors.remove(name);
                }
            }
        } else if let Some(rest) = key.strip_prefix("task-") {
            let Some((name, id)) = rest.rsplit_once('-') else {
                return;
            };
            let (Ok(id), Some(config)) = (id.parse::<usize>(), properties(value)) else {
                return;
            };
            let entry = self.connectors.entry(name.to_owned()).or_default();
            entry.staged.insert(id, config);
        } else if let Some(name) = key.strip_prefix("commit-") {
            let Some(count) = value.and_then(|v| v.get("tasks")).and_then(Value::as_u64) else {
                return;
            };
            let entry = self.connectors.entry(name.to_owned()).or_default();
            let tasks: Option<Vec<ConfigMap>> = (0..usize::try_from(count).unwrap_or(0))
                .map(|id| entry.staged.get(&id).cloned())
                .collect();
            match tasks {
                Some(tasks) => entry.tasks = tasks,
                None => warn!(
                    connector = name,
                    "config topic: a commit of tasks never written"
                ),
            }
        } else if let Some(name) = key.strip_prefix("target-state-") {
            let paused = value
                .and_then(|v| v.get("state"))
                .and_then(Value::as_str)
                .is_some_and(|s| s == "PAUSED");
            if let Some(entry) = self.connectors.get_mut(name) {
                entry.paused = paused;
            }
        } else if let Some(name) = key.strip_prefix("restart-connector-") {
            if let Some(entry) = self.connectors.get_mut(name) {
                entry.restarts += 1;
            }
        }
    }

    /// Applies a status topic record.
    fn apply_status(&mut self, key: &str, value: Option<&Value>) {
        let Some(value) = value else {
            self.statuses.remove(key);
            return;
        };
        let worker_id = value
            .get("worker_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let trace = value
            .get("trace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let state = match value.get("state").and_then(Value::as_str) {
            Some("RUNNING") => State::Running,
            Some("PAUSED") => State::Paused,
            Some("FAILED") => State::Failed(trace.to_owned()),
            _ => State::Unassigned,
        };
        self.statuses
            .insert(key.to_owned(), StatusRecord { state, worker_id });
    }

    fn status_of(&self, unit: &Unit) -> (State, String) {
        self.statuses
            .get(&unit.status_key())
            .map_or((State::Unassigned, String::new()), |s| {
                (s.state.clone(), s.worker_id.clone())
            })
    }
}

struct Shared {
    id: String,
    engine: Engine,
    producer: Producer,
    config_topic: String,
    status_topic: String,
    slot_count: i32,
    view: Mutex<View>,
    /// The next offset of the config topic not yet in the view.
    applied: watch::Sender<i64>,
    owned: Mutex<BTreeSet<i32>>,
    units: tokio::sync::Mutex<BTreeMap<Unit, Running>>,
    /// The config or the owned slots changed.
    wake: Notify,
    /// A task's state changed.
    changed: Arc<Notify>,
    /// The last status this worker wrote for each key.
    published: Mutex<BTreeMap<String, Option<State>>>,
    closing: std::sync::atomic::AtomicBool,
}

/// The slot of connector `name` among `slots` (its task n is in the (n + 1)th after it).
fn slot_of(name: &str, slots: i32) -> i32 {
    (murmur2(name.as_bytes()) & 0x7fff_ffff) % slots.max(1)
}

/// The slot of task `id` of the connector in slot `base`.
fn task_slot(base: i32, id: usize, slots: i32) -> i32 {
    let slots = slots.max(1);
    let step = i32::try_from(id % usize::try_from(slots).unwrap_or(1)).unwrap_or(0);
    (base + 1 + step) % slots
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Creates `topic` compacted with `partitions` unless it exists; its partition count.
async fn ensure_topic(
    admin: &Admin,
    topic: &str,
    partitions: i32,
    replication: Option<i16>,
) -> Result<usize, RuntimeError> {
    if !admin.list_topics(true).await?.iter().any(|t| t == topic) {
        let mut new = NewTopic::new(topic)
            .partitions(partitions)
            .config("cleanup.policy", "compact");
        if let Some(replication) = replication {
            new = new.replication_factor(replication);
        }
        if let Err(e) = admin.create_topic(new).await {
            // Another worker starting at the same time may have created it.
            if !admin.list_topics(true).await?.iter().any(|t| t == topic) {
                return Err(e.into());
            }
        }
    }
    Ok(admin.list_offsets(topic, OffsetSpec::Latest).await?.len())
}

impl DistributedWorker {
    /// Joins the cluster of workers with `config`'s `group.id`, as worker `worker_id`
    /// (the address its REST API is reached at, as Kafka Connect names workers): creates
    /// the config, status, offsets and slots topics if missing, reads the configs, and
    /// starts running its share of the connectors.
    ///
    /// Worker keys beyond standalone mode's: `group.id` (required),
    /// `config.storage.topic` (`connect-configs`), `status.storage.topic`
    /// (`connect-status`), `status.storage.partitions` (5), `slots.storage.topic`
    /// (`connect-slots`), `slots.storage.partitions` (32: the most workers that get work),
    /// `*.storage.replication.factor` (the broker's default).
    ///
    /// # Errors
    /// A missing `group.id`, bad worker keys, client errors.
    pub async fn start(
        config: WorkerConfig,
        plugins: Plugins,
        worker_id: &str,
    ) -> Result<DistributedWorker, RuntimeError> {
        let group = config
            .settings
            .get("group.id")
            .filter(|g| !g.is_empty())
            .cloned()
            .ok_or_else(|| RuntimeError::Config("group.id is missing".to_owned()))?;
        let number = |key: &str, default: u64| -> Result<i32, RuntimeError> {
            i32::try_from(config.number(key, default)?)
                .map_err(|_| RuntimeError::Config(format!("{key} is too large")))
        };
        let replication = |key: &str| -> Result<Option<i16>, RuntimeError> {
            let Some(value) = config.settings.get(key) else {
                return Ok(None);
            };
            match value.parse::<i16>() {
                Ok(-1) => Ok(None),
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(RuntimeError::Config(format!(
                    "{key} is a positive number or -1, not {value}"
                ))),
            }
        };
        let config_topic = config.get("config.storage.topic", "connect-configs");
        let status_topic = config.get("status.storage.topic", "connect-status");
        let slots_topic = config.get("slots.storage.topic", "connect-slots");
        let status_partitions = number("status.storage.partitions", 5)?;
        let slot_partitions = number("slots.storage.partitions", 32)?;
        let admin = Admin::connect(config.client.clone()).await?;
        let config_partitions = ensure_topic(
            &admin,
            &config_topic,
            1,
            replication("config.storage.replication.factor")?,
        )
        .await?;
        let status_partitions = ensure_topic(
            &admin,
            &status_topic,
            status_partitions,
            replication("status.storage.replication.factor")?,
        )
        .await?;
        let slot_count = ensure_topic(
            &admin,
            &slots_topic,
            slot_partitions,
            replication("slots.storage.replication.factor")?,
        )
        .await?;
        let slot_count = i32::try_from(slot_count)
            .map_err(|_| RuntimeError::Config("too many slots".to_owned()))?;
        let config_end = admin
            .list_offsets(&config_topic, OffsetSpec::Latest)
            .await?
            .values()
            .map(|o| o.offset)
            .sum::<i64>();
        let client = config.client.clone();
        let engine = Engine::open(config, plugins).await?;
        let producer = Producer::new(client.clone().enable_idempotence(true)).await?;
        let (applied, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            id: worker_id.to_owned(),
            engine,
            producer,
            config_topic: config_topic.clone(),
            status_topic: status_topic.clone(),
            slot_count,
            view: Mutex::new(View::default()),
            applied,
            owned: Mutex::new(BTreeSet::new()),
            units: tokio::sync::Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            changed: Arc::new(Notify::new()),
            published: Mutex::new(BTreeMap::new()),
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        let mut background = Vec::new();
        // The configs, read to their end before taking any slot.
        let configs = follower(&client, &config_topic, config_partitions).await?;
        background.push(tokio::spawn(follow(
            shared.clone(),
            configs,
            |view, key, value| view.apply_config(key, value),
            true,
        )));
        let mut read = shared.applied.subscribe();
        tokio::time::timeout(READ_BACK, read.wait_for(|at| *at >= config_end))
            .await
            .map_err(|_| RuntimeError::Unavailable(format!("reading {config_topic} timed out")))?
            .map_err(|_| RuntimeError::Unavailable(format!("reading {config_topic} stopped")))?;
        let statuses = follower(&client, &status_topic, status_partitions).await?;
        background.push(tokio::spawn(follow(
            shared.clone(),
            statuses,
            |view, key, value| view.apply_status(key, value),
            false,
        )));
        background.push(tokio::spawn(reconcile_loop(shared.clone())));
        background.push(tokio::spawn(publish_loop(shared.clone())));
        // Membership: the group shares the slots.
        let mut member = client.group_id(group.clone()).enable_auto_commit(false);
        member.set("partition.assignment.strategy", "roundrobin")?;
        let slots = Arc::new(Consumer::new(member).await?);
        slots.subscribe_with_listener(
            &[slots_topic.as_str()],
            Arc::new(SlotListener(shared.clone())),
        )?;
        let membership = tokio::spawn(poll_slots(slots.clone()));
        info!(
            worker = worker_id,
            group,
            slots = slot_count,
            "distributed worker started"
        );
        Ok(DistributedWorker {
            shared,
            slots,
            membership: Mutex::new(Some(membership)),
            background: Mutex::new(background),
        })
    }

    /// This worker's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Leaves the cluster: its connectors and tasks stop (offsets flushed, statuses
    /// `UNASSIGNED`) and the group gives its slots to the other workers at once.
    pub async fn shutdown(&self) {
        let membership = lock(&self.membership).take();
        if let Some(membership) = membership {
            membership.abort();
            let _ = membership.await;
        }
        self.shared
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        {
            let mut units = self.shared.units.lock().await;
            let all = std::mem::take(&mut *units);
            for (unit, running) in all {
                self.shared.stop_unit(&unit, running, false).await;
            }
        }
        lock(&self.shared.owned).clear();
        if let Err(e) = self.slots.shutdown().await {
            warn!(error = %e, "leaving the group failed");
        }
        let background = std::mem::take(&mut *lock(&self.background));
        for task in background {
            task.abort();
            let _ = task.await;
        }
        info!(worker = %self.shared.id, "distributed worker stopped");
    }
}

/// A consumer of `topic`'s `partitions` partitions from the beginning.
async fn follower(
    client: &strom_client::ClientConfig,
    topic: &str,
    partitions: usize,
) -> Result<Consumer, RuntimeError> {
    let partitions: Vec<(String, i32)> = (0..i32::try_from(partitions).unwrap_or(i32::MAX))
        .map(|p| (topic.to_owned(), p))
        .collect();
    let consumer = Consumer::new(client.clone()).await?;
    consumer.assign(&partitions)?;
    consumer.seek_to_beginning(&partitions)?;
    Ok(consumer)
}

/// Follows a topic into the view; for the config topic, records how far it was read
/// and wakes the reconciler.
async fn follow(
    shared: Arc<Shared>,
    consumer: Consumer,
    apply: fn(&mut View, &str, Option<&Value>),
    configs: bool,
) {
    loop {
        // Idle: say how far the (one-partition) config topic is read.
        if configs {
            if let Ok(at) = consumer.position(&shared.config_topic, 0).await {
                shared.applied.send_if_modified(|applied| {
                    let moved = *applied < at;
                    *applied = (*applied).max(at);
                    moved
                });
            }
        }
        let records = match consumer.poll(Duration::from_millis(500)).await {
            Ok(records) => records,
            Err(ClientError::Closed) => return,
            Err(e) => {
                warn!(error = %e, "following a topic failed; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if records.is_empty() {
            continue;
        }
        {
            let mut view = lock(&shared.view);
            for record in &records {
                let Some(key) = record
                    .key
                    .as_deref()
                    .and_then(|k| std::str::from_utf8(k).ok())
                else {
                    continue;
                };
                let value: Option<Value> = match record.value.as_deref() {
                    None => None,
                    Some(bytes) => match serde_json::from_slice(bytes) {
                        Ok(value) => Some(value),
                        Err(e) => {
                            warn!(key, error = %e, "a record that is not JSON; skipped");
                            continue;
                        }
                    },
                };
                apply(&mut view, key, value.as_ref());
            }
        }
        if configs {
            if let Some(last) = records.last() {
                shared.applied.send_if_modified(|applied| {
                    let moved = *applied <= last.offset;
                    *applied = (*applied).max(last.offset + 1);
                    moved
                });
            }
            shared.wake.notify_one();
        }
    }
}

/// Polls the slots consumer: this drives the group membership and its rebalances.
async fn poll_slots(slots: Arc<Consumer>) {
    loop {
        match slots.poll(Duration::from_millis(500)).await {
            Ok(_) => {}
            Err(ClientError::Closed) => return,
            Err(e) => {
                warn!(error = %e, "group membership: poll failed; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

async fn reconcile_loop(shared: Arc<Shared>) {
    shared.wake.notify_one();
    loop {
        shared.wake.notified().await;
        shared.reconcile().await;
    }
}

async fn publish_loop(shared: Arc<Shared>) {
    loop {
        shared.changed.notified().await;
        let units = shared.units.lock().await;
        for (unit, running) in units.iter() {
            shared.publish(unit, Some(running.state())).await;
        }
    }
}

/// Gives and takes the slots the group assigns.
struct SlotListener(Arc<Shared>);

impl RebalanceListener for SlotListener {
    fn on_partitions_revoked<'a>(
        &'a self,
        _: &'a Consumer,
        partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        Box::pin(self.0.release(partitions))
    }

    fn on_partitions_assigned<'a>(
        &'a self,
        _: &'a Consumer,
        partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        Box::pin(async move {
            lock(&self.0.owned).extend(partitions.iter().map(|(_, p)| *p));
            info!(worker = %self.0.id, slots = partitions.len(), "slots assigned");
            self.0.wake.notify_one();
        })
    }
}

impl Shared {
    /// Stops the units in `slots` before the group hands them to another worker.
    async fn release(&self, slots: &[(String, i32)]) {
        let slots: BTreeSet<i32> = slots.iter().map(|(_, p)| *p).collect();
        lock(&self.owned).retain(|s| !slots.contains(s));
        let mut units = self.units.lock().await;
        let moving: Vec<Unit> = units
            .iter()
            .filter(|(_, r)| slots.contains(&r.slot))
            .map(|(u, _)| u.clone())
            .collect();
        for unit in moving {
            if let Some(running) = units.remove(&unit) {
                self.stop_unit(&unit, running, false).await;
            }
        }
    }

    /// The units this worker should run now, with their slots and specs.
    fn desired(&self) -> BTreeMap<Unit, (i32, Spec)> {
        let owned = lock(&self.owned).clone();
        let view = lock(&self.view);
        let mut desired = BTreeMap::new();
        for (name, entry) in &view.connectors {
            let Some(config) = &entry.config else {
                continue;
            };
            let spec = |task: Option<&ConfigMap>| Spec {
                config: config.clone(),
                task: task.cloned(),
                restarts: entry.restarts,
                paused: entry.paused,
            };
            let base = slot_of(name, self.slot_count);
            if owned.contains(&base) {
                desired.insert(Unit::Connector(name.clone()), (base, spec(None)));
            }
            for (id, task) in entry.tasks.iter().enumerate() {
                let slot = task_slot(base, id, self.slot_count);
                if owned.contains(&slot) {
                    desired.insert(Unit::Task(name.clone(), id), (slot, spec(Some(task))));
                }
            }
        }
        desired
    }

    /// Stops what should not run (or runs with an old spec) and starts what should.
    async fn reconcile(&self) {
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let desired = self.desired();
        let mut units = self.units.lock().await;
        let stale: Vec<Unit> = units
            .iter()
            .filter(|(unit, running)| desired.get(*unit).is_none_or(|(_, s)| *s != running.spec))
            .map(|(unit, _)| unit.clone())
            .collect();
        for unit in stale {
            if let Some(running) = units.remove(&unit) {
                let deleted = !self.exists(unit.name());
                self.stop_unit(&unit, running, deleted).await;
            }
        }
        let mut caught_up = false;
        for (unit, (slot, spec)) in desired {
            if units.contains_key(&unit) {
                continue;
            }
            if matches!(unit, Unit::Task(..)) && !spec.paused && !caught_up {
                // Offsets the worker that ran these tasks before stored.
                if let Err(e) = self.engine.offsets.catch_up().await {
                    warn!(error = %e, "reading the offsets topic failed");
                }
                caught_up = true;
            }
            let work = self.start_unit(&unit, &spec).await;
            let running = Running { spec, slot, work };
            self.publish(&unit, Some(running.state())).await;
            units.insert(unit, running);
        }
    }

    async fn start_unit(&self, unit: &Unit, spec: &Spec) -> Work {
        if spec.paused {
            return Work::Idle(State::Paused);
        }
        let started = match unit {
            Unit::Connector(name) => self.start_connector(name, spec).await.map(Work::Connector),
            Unit::Task(name, id) => self.start_task(name, *id, spec).await,
        };
        match started {
            Ok(work) => {
                info!(worker = %self.id, unit = ?unit, "started");
                work
            }
            Err(e) => {
                warn!(worker = %self.id, unit = ?unit, error = %e, "failed to start");
                Work::Idle(State::Failed(e.to_string()))
            }
        }
    }

    /// Starts a connector and writes its task configurations when they changed.
    async fn start_connector(&self, name: &str, spec: &Spec) -> Result<Connector, RuntimeError> {
        let (mut connector, _) = self.engine.instantiate(name, &spec.config)?;
        let max = max_tasks(&spec.config)?;
        self.engine.task_settings(&spec.config)?;
        connector.start(spec.config.clone()).await?;
        let tasks = match connector.task_configs(max) {
            Ok(tasks) => tasks,
            Err(e) => {
                connector.stop().await;
                return Err(e.into());
            }
        };
        let current = lock(&self.view)
            .connectors
            .get(name)
            .map(|e| e.tasks.clone())
            .unwrap_or_default();
        if tasks != current {
            if let Err(e) = self.write_tasks(name, &tasks).await {
                connector.stop().await;
                return Err(e);
            }
        }
        Ok(connector)
    }

    async fn start_task(&self, name: &str, id: usize, spec: &Spec) -> Result<Work, RuntimeError> {
        let (connector, class) = self.engine.instantiate(name, &spec.config)?;
        let settings = self.engine.task_settings(&spec.config)?;
        let status = Arc::new(Mutex::new(ConnectorStatus {
            name: name.to_owned(),
            class,
            state: State::Running,
            worker_id: self.id.clone(),
            tasks: vec![TaskStatus {
                id,
                state: State::Unassigned,
                worker_id: self.id.clone(),
            }],
        }));
        let handle = TaskHandle {
            connector: name.to_owned(),
            id,
            status: status.clone(),
            changed: Some(self.changed.clone()),
        };
        let (stop, stopped) = watch::channel(false);
        let task_config = spec.task.clone().unwrap_or_default();
        let handle = self
            .engine
            .spawn_task(&connector, handle, task_config, &settings, stopped)
            .await?;
        Ok(Work::Task {
            stop,
            handle,
            status,
        })
    }

    /// Stops a unit; its status becomes `UNASSIGNED`, or goes with its connector.
    async fn stop_unit(&self, unit: &Unit, running: Running, deleted: bool) {
        match running.work {
            Work::Connector(mut connector) => connector.stop().await,
            Work::Task { stop, handle, .. } => {
                let _ = stop.send(true);
                let _ = handle.await;
            }
            Work::Idle(_) => {}
        }
        info!(worker = %self.id, unit = ?unit, "stopped");
        let state = (!deleted).then_some(State::Unassigned);
        self.publish(unit, state).await;
    }

    /// Writes a unit's status unless this worker wrote the same last.
    async fn publish(&self, unit: &Unit, state: Option<State>) {
        let key = unit.status_key();
        if lock(&self.published).get(&key) == Some(&state) {
            return;
        }
        let mut record = Record::new(&self.status_topic).key(key.clone());
        if let Some(state) = &state {
            let trace = match state {
                State::Failed(trace) => json!(trace),
                _ => Value::Null,
            };
            let value = json!({"state": state.name(), "trace": trace, "worker_id": self.id});
            record = record.value(value.to_string());
        }
        let written = match self.producer.send(record).await {
            Ok(delivery) => delivery.await.map(|_| ()),
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => {
                lock(&self.published).insert(key, state);
            }
            Err(e) => warn!(key, error = %e, "writing a status failed"),
        }
    }

    /// Writes a config topic record; its offset once acknowledged.
    async fn write_config(&self, key: String, value: Option<Value>) -> Result<i64, RuntimeError> {
        let mut record = Record::new(&self.config_topic).key(key);
        if let Some(value) = value {
            record = record.value(value.to_string());
        }
        Ok(self.producer.send(record).await?.await?.offset)
    }

    /// Writes connector `name`'s task configurations, then their commit.
    async fn write_tasks(&self, name: &str, tasks: &[ConfigMap]) -> Result<(), RuntimeError> {
        for (id, config) in tasks.iter().enumerate() {
            self.write_config(
                format!("task-{name}-{id}"),
                Some(json!({"properties": config})),
            )
            .await?;
        }
        self.write_config(
            format!("commit-{name}"),
            Some(json!({"tasks": tasks.len()})),
        )
        .await?;
        info!(
            connector = name,
            tasks = tasks.len(),
            "task configs written"
        );
        Ok(())
    }

    /// Writes a config record and waits until this worker's view has it.
    async fn change(&self, key: String, value: Option<Value>) -> Result<(), RuntimeError> {
        let offset = self.write_config(key, value).await?;
        let mut read = self.applied.subscribe();
        tokio::time::timeout(READ_BACK, read.wait_for(|at| *at > offset))
            .await
            .map_err(|_| {
                RuntimeError::Unavailable(format!(
                    "{} was not read back within {READ_BACK:?}",
                    self.config_topic
                ))
            })?
            .map_err(|_| RuntimeError::Unavailable("the worker is stopping".to_owned()))?;
        Ok(())
    }

    fn exists(&self, name: &str) -> bool {
        lock(&self.view).entry(name).is_ok()
    }
}

#[async_trait]
impl Herder for DistributedWorker {
    fn plugins(&self) -> &Plugins {
        &self.shared.engine.plugins
    }

    async fn connectors(&self) -> Vec<String> {
        lock(&self.shared.view)
            .connectors
            .iter()
            .filter(|(_, e)| e.config.is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    async fn status(&self, name: &str) -> Result<ConnectorStatus, RuntimeError> {
        let view = lock(&self.shared.view);
        let (entry, config) = view.entry(name)?;
        let class = config.get("connector.class").cloned().unwrap_or_default();
        let class = self
            .shared
            .engine
            .plugins
            .get(&class)
            .map_or(class.clone(), |(_, full)| full.to_owned());
        let (state, worker_id) = view.status_of(&Unit::Connector(name.to_owned()));
        let tasks = (0..entry.tasks.len())
            .map(|id| {
                let (state, worker_id) = view.status_of(&Unit::Task(name.to_owned(), id));
                TaskStatus {
                    id,
                    state,
                    worker_id,
                }
            })
            .collect();
        Ok(ConnectorStatus {
            name: name.to_owned(),
            class,
            state,
            worker_id,
            tasks,
        })
    }

    async fn config(&self, name: &str) -> Result<ConfigMap, RuntimeError> {
        let view = lock(&self.shared.view);
        Ok(view.entry(name)?.1.clone())
    }

    async fn task_configs(&self, name: &str) -> Result<Vec<ConfigMap>, RuntimeError> {
        let view = lock(&self.shared.view);
        Ok(view.entry(name)?.0.tasks.clone())
    }

    async fn add_connector(&self, name: &str, config: ConfigMap) -> Result<(), RuntimeError> {
        if self.shared.exists(name) {
            return Err(RuntimeError::ConnectorExists(name.to_owned()));
        }
        self.put_config(name, config).await.map(|_| ())
    }

    async fn put_config(&self, name: &str, config: ConfigMap) -> Result<bool, RuntimeError> {
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(RuntimeError::Config(format!(
                "connector name {name:?} is empty or has control characters"
            )));
        }
        self.shared.engine.validate(name, &config)?;
        let created = !self.shared.exists(name);
        self.shared
            .change(
                format!("connector-{name}"),
                Some(json!({"properties": config})),
            )
            .await?;
        Ok(created)
    }

    async fn remove_connector(&self, name: &str) -> Result<(), RuntimeError> {
        self.change_existing(name, format!("target-state-{name}"), None)
            .await?;
        self.shared.change(format!("connector-{name}"), None).await
    }

    async fn pause(&self, name: &str) -> Result<(), RuntimeError> {
        let paused = json!({"state": "PAUSED"});
        self.change_existing(name, format!("target-state-{name}"), Some(paused))
            .await
    }

    async fn resume(&self, name: &str) -> Result<(), RuntimeError> {
        let started = json!({"state": "STARTED"});
        self.change_existing(name, format!("target-state-{name}"), Some(started))
            .await
    }

    async fn restart(&self, name: &str) -> Result<(), RuntimeError> {
        let all = json!({"include-tasks": true, "only-failed": false});
        self.change_existing(name, format!("restart-connector-{name}"), Some(all))
            .await
    }
}

impl DistributedWorker {
    /// Writes a config record about connector `name`, which must exist.
    async fn change_existing(
        &self,
        name: &str,
        key: String,
        value: Option<Value>,
    ) -> Result<(), RuntimeError> {
        if !self.shared.exists(name) {
            return Err(RuntimeError::UnknownConnector(name.to_owned()));
        }
        self.shared.change(key, value).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn the_view_follows_kafka_connects_config_records() {
        let mut view = View::default();
        // Tasks staged before their commit are not in force yet.
        view.apply_config(
            "task-orders-db-0",
            Some(&value(r#"{"properties":{"t":"0"}}"#)),
        );
        view.apply_config(
            "connector-orders-db",
            Some(&value(
                r#"{"properties":{"connector.class":"X","tasks.max":2}}"#,
            )),
        );
        let (entry, config) = view.entry("orders-db").unwrap();
        assert!(entry.tasks.is_empty());
        assert_eq!(config["tasks.max"], "2");
        view.apply_config(
            "task-orders-db-1",
            Some(&value(r#"{"properties":{"t":"1"}}"#)),
        );
        view.apply_config("commit-orders-db", Some(&value(r#"{"tasks":2}"#)));
        let (entry, _) = view.entry("orders-db").unwrap();
        assert_eq!(entry.tasks.len(), 2);
        assert_eq!(entry.tasks[1]["t"], "1");
        // A commit of tasks that were never written changes nothing.
        view.apply_config("commit-orders-db", Some(&value(r#"{"tasks":3}"#)));
        assert_eq!(view.entry("orders-db").unwrap().0.tasks.len(), 2);
        view.apply_config(
            "target-state-orders-db",
            Some(&value(r#"{"state":"PAUSED"}"#)),
        );
        assert!(view.entry("orders-db").unwrap().0.paused);
        view.apply_config("restart-connector-orders-db", Some(&value("{}")));
        assert_eq!(view.entry("orders-db").unwrap().0.restarts, 1);
        view.apply_config("connector-orders-db", None);
        assert!(matches!(
            view.entry("orders-db"),
            Err(RuntimeError::UnknownConnector(_))
        ));
        // Unknown keys and malformed names are ignored.
        view.apply_config("session-key", Some(&value("{}")));
        view.apply_config("task-nodash", Some(&value(r#"{"properties":{}}"#)));
        assert!(view.entry("nodash").is_err());
    }

    #[test]
    fn statuses_and_slots() {
        let mut view = View::default();
        view.apply_status(
            "status-task-a-0",
            Some(&value(
                r#"{"state":"FAILED","trace":"boom","worker_id":"w1:8083"}"#,
            )),
        );
        let (state, worker) = view.status_of(&Unit::Task("a".into(), 0));
        assert_eq!(state, State::Failed("boom".into()));
        assert_eq!(worker, "w1:8083");
        view.apply_status("status-task-a-0", None);
        assert_eq!(
            view.status_of(&Unit::Task("a".into(), 0)).0,
            State::Unassigned
        );
        for name in ["a", "orders", "ünïcode", ""] {
            let slot = slot_of(name, 32);
            assert!((0..32).contains(&slot));
        }
        assert_eq!(slot_of("anything", 0), 0);
        // One connector's tasks take the slots after its own, round the ring.
        let slots: Vec<i32> = (0..4).map(|id| task_slot(30, id, 32)).collect();
        assert_eq!(slots, [31, 0, 1, 2]);
    }
}
