//! [`KafkaStreams`]: a topology run against a Kafka cluster.
//!
//! ```text
//!  group consumer (group.id = application.id) ──poll──▶ task of the record's partition
//!       ▲                                                  │ outputs, store changes
//!       │                                                  ▼
//!       └── commit: offsets (with the transaction) ◀── producer ──▶ sinks' topics,
//!                                                                   changelogs
//! ```
//!
//! One thread runs the instance: its consumer subscribes to the topology's source topics
//! in the application's group, so more instances share the partitions; each assigned
//! partition number gets a task (the topology built for it, with its own stores, restored
//! from their changelogs before it processes anything: see [`restore`]). Every
//! `commit.interval.ms` the instance commits:
//! - at-least-once: the outputs and changelog records sent are acknowledged, then the
//!   consumed positions committed (a crash in between replays the records since the last
//!   commit);
//! - exactly-once (KIP-447): outputs, changelog records and the consumed positions are one
//!   transaction of a transactional producer; a rebalance that fences it aborts the
//!   transaction, and the instance rebuilds its tasks from the changelogs and the
//!   committed positions.
//!
//! After each commit the persistent stores are flushed with their checkpoint (the
//! changelog offset they hold), so a restart replays only the changelog's tail.

mod commit;
mod globals;
mod internal_topics;
mod queries;
mod restore;
mod standby;

use queries::Query;
pub use queries::{KeyQueryMetadata, LocalTasks};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::admin::Admin;
use strom_client::config::{IsolationLevel, OffsetReset};
use strom_client::consumer::{Consumer, ConsumerRecord};
use strom_client::producer::{Producer, Record};
use strom_client::{ClientConfig, ClientError};

use crate::serde::Serde;
use tracing::{info, warn};

use globals::Globals;
use standby::Standbys;

use commit::{lost_membership, CommitOnRevoke, Committer, InFlight};

use crate::state::{changelog_topic, StoreEnv};
use crate::task::{Input, Processed, Task};
use crate::topology::Topology;
use crate::StreamsError;

/// `processing.guarantee`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// Outputs acknowledged before positions are committed: after a crash, some records
    /// are processed again.
    #[default]
    AtLeastOnce,
    /// Outputs, state changes and positions committed in one transaction
    /// (`exactly_once_v2`): read with `read_committed`, each input counts once.
    ExactlyOnce,
}

/// How an instance runs: its application id, the client settings, where its state lives.
#[derive(Clone, Debug)]
pub struct StreamsConfig {
    /// `application.id`: the consumer group of every instance of the application, and
    /// the prefix of its internal topics.
    pub application_id: String,
    /// Connection and client settings (`bootstrap.servers`, ...).
    pub client: ClientConfig,
    /// How long a poll waits for records.
    pub poll_ms: u64,
    /// `commit.interval.ms`: how often positions (and transactions) are committed;
    /// Kafka's defaults: 30 s, or 100 ms under exactly-once.
    pub commit_interval_ms: u64,
    /// `processing.guarantee`.
    pub processing_guarantee: ProcessingGuarantee,
    /// `state.dir`: where persistent stores live, under `<application.id>/<task>/`.
    pub state_dir: PathBuf,
    /// `application.server`: `host:port` of this instance's own query endpoint, announced
    /// to the other instances (see [`KafkaStreams::metadata_for_key`]).
    pub application_server: Option<String>,
    /// `num.standby.replicas`: how many other instances keep a standby copy of each
    /// task's state.
    pub num_standby_replicas: usize,
}

impl StreamsConfig {
    /// The settings of application `application_id` on the cluster `client` reaches.
    pub fn new(application_id: impl Into<String>, client: ClientConfig) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            client,
            poll_ms: 100,
            commit_interval_ms: 30_000,
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            state_dir: std::env::temp_dir().join("strom-streams"),
            application_server: None,
            num_standby_replicas: 0,
        }
    }

    /// Sets `num.standby.replicas`.
    pub fn num_standby_replicas(mut self, replicas: usize) -> Self {
        self.num_standby_replicas = replicas;
        self
    }

    /// Sets `application.server`.
    pub fn application_server(mut self, host_port: impl Into<String>) -> Self {
        self.application_server = Some(host_port.into());
        self
    }

    /// Sets `processing.guarantee` (and, for exactly-once, Kafka's 100 ms commit interval).
    pub fn processing_guarantee(mut self, guarantee: ProcessingGuarantee) -> Self {
        self.processing_guarantee = guarantee;
        if guarantee == ProcessingGuarantee::ExactlyOnce {
            self.commit_interval_ms = 100;
        }
        self
    }

    /// Sets `commit.interval.ms`.
    pub fn commit_interval_ms(mut self, interval: u64) -> Self {
        self.commit_interval_ms = interval;
        self
    }

    /// Sets `state.dir`.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }
}

/// A running instance of a topology.
pub struct KafkaStreams {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), StreamsError>>>,
    queries: tokio::sync::mpsc::UnboundedSender<Query>,
    config: StreamsConfig,
    topology_sources: Vec<String>,
}

impl KafkaStreams {
    /// Starts an instance on a thread of its own.
    ///
    /// # Errors
    /// [`StreamsError::Io`] when the thread or its runtime cannot start; connection and
    /// group errors end the instance and come back from [`KafkaStreams::close`].
    pub fn start(topology: Topology, config: StreamsConfig) -> Result<KafkaStreams, StreamsError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let (queries, incoming) = tokio::sync::mpsc::unbounded_channel();
        let handle_config = config.clone();
        let internal = topology.internal_topics().clone();
        let topology_sources = topology
            .source_topics()
            .into_iter()
            .filter(|t| !internal.contains(t))
            .collect();
        let thread = std::thread::Builder::new()
            .name(format!("strom-streams-{}", config.application_id))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(run(&topology, &config, &stopping, incoming))
            })?;
        Ok(KafkaStreams {
            stop,
            thread: Some(thread),
            queries,
            config: handle_config,
            topology_sources,
        })
    }

    /// The value of `key` (its bytes as the store's key serde writes them) in store
    /// `store` of this instance's tasks (or a global table's store), answered between
    /// two polls of the instance.
    ///
    /// # Errors
    /// [`StreamsError::UnknownStore`], [`StreamsError::NotRunning`], store failures.
    pub async fn get_raw(&self, store: &str, key: Bytes) -> Result<Option<Bytes>, StreamsError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let query = Query::Get {
            store: store.to_owned(),
            key,
            reply,
        };
        self.queries
            .send(query)
            .map_err(|_| StreamsError::NotRunning)?;
        answer.await.map_err(|_| StreamsError::NotRunning)?
    }

    /// The value of `key` in store `store` of this instance, through the store's serdes.
    ///
    /// # Errors
    /// As [`KafkaStreams::get_raw`], and serde errors.
    pub async fn get<K: 'static, V: 'static>(
        &self,
        store: &str,
        key: &K,
        key_serde: &impl Serde<K>,
        value_serde: &impl Serde<V>,
    ) -> Result<Option<V>, StreamsError> {
        let key = key_serde.serialize(store, key)?.unwrap_or_default();
        match self.get_raw(store, key).await? {
            Some(bytes) => Ok(Some(value_serde.deserialize(store, Some(&bytes))?)),
            None => Ok(None),
        }
    }

    /// Every entry of store `store` across this instance's tasks, as bytes.
    ///
    /// # Errors
    /// As [`KafkaStreams::get_raw`].
    pub async fn entries(&self, store: &str) -> Result<Vec<(Bytes, Bytes)>, StreamsError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let query = Query::All {
            store: store.to_owned(),
            reply,
        };
        self.queries
            .send(query)
            .map_err(|_| StreamsError::NotRunning)?;
        answer.await.map_err(|_| StreamsError::NotRunning)?
    }

    /// The tasks this instance runs and those it keeps standbys of.
    ///
    /// # Errors
    /// [`StreamsError::NotRunning`].
    pub async fn local_tasks(&self) -> Result<LocalTasks, StreamsError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queries
            .send(Query::Tasks { reply })
            .map_err(|_| StreamsError::NotRunning)?;
        answer.await.map_err(|_| StreamsError::NotRunning)
    }

    /// Which partition (task) `key` (as its serde writes it) belongs to, and the
    /// `application.server` of the instance of the application holding that task now.
    ///
    /// # Errors
    /// Client errors reaching the cluster.
    pub async fn metadata_for_key(&self, key: &[u8]) -> Result<KeyQueryMetadata, StreamsError> {
        let app = &self.config.application_id;
        let admin =
            Admin::connect(self.config.client.clone().client_id(format!("{app}-admin"))).await?;
        let names: Vec<&str> = self.topology_sources.iter().map(String::as_str).collect();
        let partitions = admin
            .describe_topics(&names)
            .await?
            .iter()
            .map(|t| t.partitions.len())
            .max()
            .unwrap_or(1);
        let partition = queries::partition_of(key, partitions);
        let group = admin.describe_group(app).await?;
        let host = group
            .members
            .iter()
            .find(|m| {
                m.assignment
                    .iter()
                    .any(|(t, p)| *p == partition && self.topology_sources.contains(t))
            })
            .and_then(|m| queries::server_of(&m.client_id));
        Ok(KeyQueryMetadata { partition, host })
    }

    /// Whether the instance stopped on its own (an error, returned by `close`).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the instance: the records in hand are finished and committed, the consumer
    /// leaves the group.
    ///
    /// # Errors
    /// What ended the instance, if it failed.
    pub fn close(mut self) -> Result<(), StreamsError> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(StreamsError::Panicked),
            None => Ok(()),
        }
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The instance's loop: poll, process, send; commit every interval.
async fn run(
    topology: &Topology,
    config: &StreamsConfig,
    stop: &AtomicBool,
    queries: tokio::sync::mpsc::UnboundedReceiver<Query>,
) -> Result<(), StreamsError> {
    let mut instance = Instance::start(topology, config, queries).await?;
    let result = instance.run(stop).await;
    instance.close(result.is_ok()).await;
    result
}

/// What one instance holds: its clients and tasks.
struct Instance<'a> {
    topology: &'a Topology,
    config: &'a StreamsConfig,
    exactly_once: bool,
    admin: Admin,
    consumer: Consumer,
    restore_consumer: Consumer,
    committer: Arc<Committer>,
    tasks: HashMap<i32, TaskState>,
    /// `<application.id>-`, the prefix of internal topics.
    prefix: String,
    globals: Globals,
    queries: tokio::sync::mpsc::UnboundedReceiver<Query>,
    standbys: Option<Standbys>,
    /// The group generation the standbys were chosen in.
    standby_generation: Option<i32>,
}

/// A task and the changelog offsets its stores hold up to.
struct TaskState {
    task: Task,
    next_changelog: BTreeMap<String, i64>,
}

impl<'a> Instance<'a> {
    async fn start(
        topology: &'a Topology,
        config: &'a StreamsConfig,
        queries: tokio::sync::mpsc::UnboundedReceiver<Query>,
    ) -> Result<Instance<'a>, StreamsError> {
        let app = &config.application_id;
        let exactly_once = config.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
        let isolation = if exactly_once {
            IsolationLevel::ReadCommitted
        } else {
            IsolationLevel::ReadUncommitted
        };
        let admin = Admin::connect(config.client.clone().client_id(format!("{app}-admin"))).await?;
        internal_topics::prepare(&admin, topology, app).await?;
        let global_config = config
            .client
            .clone()
            .client_id(format!("{app}-global-consumer"));
        let globals = Globals::bootstrap(topology, &admin, global_config).await?;
        let consumer = Consumer::new(
            config
                .client
                .clone()
                .client_id(match &config.application_server {
                    Some(server) => format!("{app}-consumer@{server}"),
                    None => format!("{app}-consumer"),
                })
                .group_id(app.clone())
                .enable_auto_commit(false)
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(isolation),
        )
        .await?;
        let restore_consumer = Consumer::new(
            config
                .client
                .clone()
                .client_id(format!("{app}-restore-consumer"))
                .isolation_level(isolation),
        )
        .await?;
        let mut producer_config = config.client.clone().client_id(format!("{app}-producer"));
        if exactly_once {
            // One transactional id per instance; zombies are fenced by the group
            // generation their offsets carry (KIP-447), and what a dead instance left
            // open is aborted after Kafka Streams' 10 s transaction timeout.
            let id = format!("{app}-{}", uuid::Uuid::new_v4());
            producer_config = producer_config.transactional_id(id);
            producer_config.transaction_timeout_ms = 10_000;
        }
        let producer = Producer::new(producer_config.clone()).await?;
        let committer = Arc::new(Committer {
            application_id: app.clone(),
            exactly_once,
            producer_config,
            in_flight: tokio::sync::Mutex::new(InFlight {
                producer,
                deliveries: Vec::new(),
                positions: BTreeMap::new(),
                in_transaction: false,
                acked: BTreeMap::new(),
                refused: None,
            }),
        });
        let standbys = if config.num_standby_replicas > 0 && !topology.stores.is_empty() {
            let consumer = Consumer::new(
                config
                    .client
                    .clone()
                    .client_id(format!("{app}-standby-consumer"))
                    .isolation_level(isolation),
            )
            .await?;
            Some(Standbys::new(consumer, app, &topology.state_stores()))
        } else {
            None
        };
        let topics: Vec<String> = topology
            .source_topics()
            .into_iter()
            .map(|t| external_name(topology, app, t))
            .collect();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe_with_listener(&names, Arc::new(CommitOnRevoke(committer.clone())))?;
        info!(application = %app, topics = ?topics, exactly_once, "streams instance started");
        Ok(Instance {
            topology,
            config,
            exactly_once,
            admin,
            consumer,
            restore_consumer,
            committer,
            tasks: HashMap::new(),
            prefix: format!("{app}-"),
            globals,
            queries,
            standbys,
            standby_generation: None,
        })
    }

    async fn run(&mut self, stop: &AtomicBool) -> Result<(), StreamsError> {
        let poll = Duration::from_millis(self.config.poll_ms);
        let interval = Duration::from_millis(self.config.commit_interval_ms);
        let mut last_commit = Instant::now();
        while !stop.load(Ordering::Acquire) {
            self.globals.poll(Duration::ZERO).await?;
            if let Some(standbys) = &mut self.standbys {
                standbys.poll().await?;
            }
            let records = self.consumer.poll(poll).await?;
            let refused = self.committer.in_flight.lock().await.refused;
            if let Some(fenced) = refused {
                self.rewind(fenced).await?;
                continue;
            }
            self.sync_tasks().await?;
            self.process(records).await?;
            while let Ok(query) = self.queries.try_recv() {
                let local = LocalTasks {
                    active: self.tasks.keys().copied().collect(),
                    standby: self
                        .standbys
                        .as_ref()
                        .map(Standbys::partitions)
                        .unwrap_or_default(),
                };
                let tasks = self.tasks.values().map(|t| t.task.stores());
                queries::answer(query, tasks, &self.globals.stores, local);
            }
            if last_commit.elapsed() >= interval {
                self.commit().await?;
                last_commit = Instant::now();
            }
        }
        self.commit().await
    }

    /// Runs polled records through their tasks and sends what they make.
    async fn process(&mut self, records: Vec<ConsumerRecord>) -> Result<(), StreamsError> {
        let committer = self.committer.clone();
        let mut in_flight = committer.in_flight.lock().await;
        for r in in_timestamp_order(records) {
            let Some(state) = self.tasks.get_mut(&r.partition) else {
                // Revoked while the poll answered: its new owner reads it.
                continue;
            };
            let topic = r
                .topic
                .strip_prefix(&self.prefix)
                .filter(|t| self.topology.internal_topics().contains(*t))
                .unwrap_or(&r.topic);
            let processed = state.task.process(Input {
                topic,
                partition: r.partition,
                offset: r.offset,
                timestamp: r.timestamp,
                headers: r.headers.clone(),
                key: r.key.as_deref(),
                value: r.value.as_deref(),
            });
            in_flight
                .positions
                .insert((r.topic.clone(), r.partition), r.offset + 1);
            self.send(&mut in_flight, r.partition, processed, r.timestamp)
                .await?;
        }
        // Wall-clock punctuations due by now.
        let now = wall_clock_ms();
        let partitions: Vec<i32> = self.tasks.keys().copied().collect();
        for partition in partitions {
            let Some(state) = self.tasks.get_mut(&partition) else {
                continue;
            };
            let processed = state.task.punctuate_wall_clock(now);
            if !processed.outputs.is_empty() || !processed.changes.is_empty() {
                self.send(&mut in_flight, partition, processed, now).await?;
            }
        }
        Ok(())
    }

    /// Sends what a task made: outputs to their topics, changes to the changelogs of the
    /// task's partition.
    async fn send(
        &self,
        in_flight: &mut InFlight,
        partition: i32,
        processed: Processed,
        timestamp: i64,
    ) -> Result<(), StreamsError> {
        for error in processed.errors {
            warn!(application = %self.config.application_id, %error, "record not processed");
        }
        if processed.outputs.is_empty() && processed.changes.is_empty() {
            return Ok(());
        }
        if self.exactly_once && !in_flight.in_transaction {
            in_flight.producer.begin_transaction()?;
            in_flight.in_transaction = true;
        }
        for out in processed.outputs {
            let record = Record {
                topic: external_name(self.topology, &self.config.application_id, out.topic),
                partition: None,
                key: out.key,
                value: out.value,
                headers: out.headers,
                timestamp: Some(out.timestamp),
            };
            let delivery = in_flight.producer.send(record).await?;
            in_flight.deliveries.push((None, delivery));
        }
        for change in processed.changes {
            let record = Record {
                topic: changelog_topic(&self.config.application_id, &change.store),
                partition: Some(partition),
                key: Some(change.key),
                value: change.value,
                headers: Vec::new(),
                timestamp: Some(timestamp),
            };
            let delivery = in_flight.producer.send(record).await?;
            let store = Some((partition, change.store.to_string()));
            in_flight.deliveries.push((store, delivery));
        }
        Ok(())
    }

    /// Creates (and restores) the tasks of newly assigned partitions; drops the others.
    async fn sync_tasks(&mut self) -> Result<(), StreamsError> {
        let owned: BTreeSet<i32> = self
            .consumer
            .assignment()
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        let gone: Vec<i32> = self
            .tasks
            .keys()
            .filter(|p| !owned.contains(p))
            .copied()
            .collect();
        for partition in gone {
            // Committed when revoked; its stores keep what was flushed.
            if let Some(state) = self.tasks.remove(&partition) {
                flush(&state)?;
            }
            info!(application = %self.config.application_id, partition, "task closed");
        }
        let new: Vec<i32> = owned
            .into_iter()
            .filter(|p| !self.tasks.contains_key(p))
            .collect();
        if !new.is_empty() {
            // Restoring may take a while: what is in flight is committed first, so no
            // transaction stays open (and times out) meanwhile.
            Box::pin(self.commit()).await?;
        }
        for partition in new {
            let app = &self.config.application_id;
            let from_standby = self.standbys.as_mut().and_then(|s| s.take(partition));
            let (mut task, starts) = match from_standby {
                Some(standby) => {
                    info!(application = %app, partition, "task taken over from its standby");
                    (standby.task, standby.next_changelog)
                }
                None => {
                    let task = Task::new(self.topology, &self.store_env(partition))?;
                    let starts =
                        restore::start_offsets(&self.admin, app, partition, task.stores()).await?;
                    (task, starts)
                }
            };
            // Wall-clock schedules start now.
            task.punctuate_wall_clock(wall_clock_ms());
            let next_changelog = restore::restore(
                &self.admin,
                &self.restore_consumer,
                app,
                partition,
                task.stores(),
                &starts,
            )
            .await?;
            info!(application = %app, partition, "task started");
            self.tasks.insert(
                partition,
                TaskState {
                    task,
                    next_changelog,
                },
            );
        }
        self.sync_standbys().await
    }

    /// Where the stores of task `partition` live.
    fn store_env(&self, partition: i32) -> StoreEnv {
        let dir = self.config.state_dir.join(&self.config.application_id);
        StoreEnv {
            dir: Some(dir.join(partition.to_string())),
            globals: self.globals.stores.clone(),
        }
    }

    /// Chooses the standby tasks again after each rebalance.
    async fn sync_standbys(&mut self) -> Result<(), StreamsError> {
        let Some(mut standbys) = self.standbys.take() else {
            return Ok(());
        };
        let result = self.choose_standbys(&mut standbys).await;
        self.standbys = Some(standbys);
        result
    }

    async fn choose_standbys(&mut self, standbys: &mut Standbys) -> Result<(), StreamsError> {
        let Ok(group) = self.consumer.group_metadata() else {
            return Ok(());
        };
        if group.generation_id < 0 || self.standby_generation == Some(group.generation_id) {
            return Ok(());
        }
        self.standby_generation = Some(group.generation_id);
        let app = &self.config.application_id;
        let replicas = self.config.num_standby_replicas;
        let wanted = Standbys::wanted(&self.admin, app, &group.member_id, replicas).await?;
        let active: BTreeSet<i32> = self.tasks.keys().copied().collect();
        let make = |partition| Ok(Task::new(self.topology, &self.store_env(partition))?);
        standbys
            .sync(&self.admin, app, &wanted, &active, make)
            .await
    }

    /// Commits what was processed since the last commit; then flushes the stores with
    /// their checkpoints.
    async fn commit(&mut self) -> Result<(), StreamsError> {
        match self.committer.commit(&self.consumer).await {
            Ok(()) => {}
            Err(e) if lost_membership(&e) => {
                warn!(application = %self.config.application_id, error = %e, "commit refused after a rebalance");
                if self.exactly_once {
                    let fenced = matches!(e, ClientError::ProducerFenced { .. });
                    return Box::pin(self.rewind(fenced)).await;
                }
            }
            Err(e) => return Err(e.into()),
        }
        let acked = std::mem::take(&mut self.committer.in_flight.lock().await.acked);
        for ((partition, store), next) in acked {
            if let Some(state) = self.tasks.get_mut(&partition) {
                state.next_changelog.insert(store, next);
            }
        }
        self.tasks.values().try_for_each(flush)?;
        match &self.standbys {
            Some(standbys) => standbys.flush(),
            None => Ok(()),
        }
    }

    /// Exactly-once after a refused commit: the transaction is aborted, every task
    /// dropped (its stores hold changes that were not committed) and rebuilt from the
    /// changelogs, and the consumer goes back to the committed positions.
    async fn rewind(&mut self, fenced: bool) -> Result<(), StreamsError> {
        self.committer.discard(fenced).await?;
        // Not flushed: the stores' files keep their last checkpointed state.
        self.tasks.clear();
        let assigned = self.consumer.assignment();
        let committed = self.consumer.committed(&assigned).await?;
        for ((topic, partition), offset) in assigned.iter().zip(committed) {
            match offset {
                Some(offset) => self.consumer.seek(topic, *partition, offset)?,
                None => self
                    .consumer
                    .seek_to_beginning(&[(topic.clone(), *partition)])?,
            }
        }
        self.sync_tasks().await
    }

    async fn close(self, clean: bool) {
        let in_flight = self.committer.in_flight.lock().await;
        if !clean && in_flight.in_transaction {
            let _ = in_flight.producer.abort_transaction().await;
        }
        let producer = in_flight.producer.clone();
        drop(in_flight);
        if let Err(e) = self.consumer.shutdown().await {
            warn!(application = %self.config.application_id, error = %e, "leaving the group failed");
        }
        producer.close().await;
        info!(application = %self.config.application_id, "streams instance stopped");
    }
}

/// A poll's records in the order a task takes them (Kafka Streams' partition group):
/// each partition's records in offset order, and across partitions always the record with
/// the smallest timestamp among the partitions' next ones, so a table fed from one topic
/// is up to date when a stream's records with later timestamps reach a join.
fn in_timestamp_order(records: Vec<ConsumerRecord>) -> Vec<ConsumerRecord> {
    let mut queues: BTreeMap<(String, i32), std::collections::VecDeque<ConsumerRecord>> =
        BTreeMap::new();
    let total = records.len();
    for r in records {
        queues
            .entry((r.topic.clone(), r.partition))
            .or_default()
            .push_back(r);
    }
    if queues.len() < 2 {
        return queues.into_values().flatten().collect();
    }
    let mut ordered = Vec::with_capacity(total);
    loop {
        let next = queues
            .iter()
            .filter_map(|(tp, q)| q.front().map(|r| (r.timestamp, tp.clone())))
            .min();
        let Some((_, tp)) = next else {
            break;
        };
        if let Some(r) = queues
            .get_mut(&tp)
            .and_then(std::collections::VecDeque::pop_front)
        {
            ordered.push(r);
        }
    }
    ordered
}

/// The wall clock in milliseconds since the epoch.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Makes a task's stores durable with their checkpoints.
fn flush(state: &TaskState) -> Result<(), StreamsError> {
    for (name, store) in state.task.stores() {
        let checkpoint = state.next_changelog.get(name).copied();
        store.borrow_mut().flush(checkpoint)?;
    }
    Ok(())
}

/// A topic's name on the cluster: a repartition topic's with the application id before it.
fn external_name(topology: &Topology, application_id: &str, topic: String) -> String {
    if topology.internal_topics().contains(&topic) {
        format!("{application_id}-{topic}")
    } else {
        topic
    }
}
