//! The topics this broker hosts: the local side of the metadata log's topics.
//!
//! ```text
//! DATA_DIR/
//!   meta.properties              cluster.id, node.id (as Kafka writes it)
//!   __cluster_metadata/          the metadata log (topics, partitions, configs: see controller)
//!   NAME-0/ NAME-1/ ...          partition logs (see `log`), each with partition.metadata
//!                                naming its topic id
//! ```
//!
//! Topic changes (create, delete, add partitions, alter configs) are checked here, then
//! proposed to the metadata log by the active controller (this node must be the quorum's
//! leader: others answer NOT_CONTROLLER) and answered once committed and applied here.
//! Every node applies the committed topics with [`Topics::reconcile`]: it opens the
//! partitions whose replicas include it, updates configs, and removes what the log deleted.
//! A partition folder whose `partition.metadata` names another topic id (a topic of the
//! same name deleted while this node was away) is wiped before it is used, so an old
//! topic's records never reappear under a new topic. Topics of the earlier per-topic files
//! (`__strom_topics/NAME.toml`) are imported into the log once, on the first start.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};
use strom_protocol::ErrorCode;
use tracing::{info, warn};
use uuid::Uuid;

use crate::controller::image::MetadataImage;
use crate::controller::placement::{self, Candidate};
use crate::controller::quorum::{ProposeError, Quorum};
use crate::controller::reassignment;
use crate::controller::records::MetadataRecord;
use crate::error::BrokerError;
use crate::log::LogConfig;
use crate::partition::Partition;
use crate::replication::fetcher::{Fetchers, Followed};
use crate::topic_config;

mod moves;

/// Folder under the data dir of the earlier per-topic files, imported once.
const TOPICS_DIR: &str = "__strom_topics";

/// File in a partition folder naming the topic id it belongs to (Kafka's name and format).
const PARTITION_METADATA: &str = "partition.metadata";

/// Longest legal topic name (Kafka's limit).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Most partitions one topic may have on this broker: each is a folder and three open
/// files.
pub const MAX_PARTITIONS: i32 = 10_000;

/// A failed admin change: the Kafka error and a message for the client.
pub(crate) type Failure = (ErrorCode, String);

/// A topic and the partitions of it this broker hosts.
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    overrides: RwLock<BTreeMap<String, String>>,
    /// Hosted partitions by index.
    partitions: RwLock<BTreeMap<i32, Arc<Partition>>>,
    /// Partitions of the topic in the cluster, hosted here or not.
    count: AtomicI32,
    /// Set when the topic is deleted, so work racing the deletion stops.
    deleted: AtomicBool,
}

impl Topic {
    /// The hosted partitions, by index.
    pub(crate) fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Partition `index`, if this broker hosts it.
    pub(crate) fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&index)
            .cloned()
    }

    /// The topic's partition count in the cluster.
    pub(crate) fn partition_count(&self) -> i32 {
        self.count.load(Ordering::Acquire)
    }

    pub(crate) fn overrides(&self) -> BTreeMap<String, String> {
        self.overrides
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The topic's `min.insync.replicas` (1 unless overridden), read in place.
    pub(crate) fn min_insync_replicas(&self) -> usize {
        self.overrides
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get("min.insync.replicas")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    fn take_partitions(&self) -> Vec<Arc<Partition>> {
        std::mem::take(&mut *self.partitions.write().unwrap_or_else(|p| p.into_inner()))
            .into_values()
            .collect()
    }
}

#[derive(Serialize, Deserialize)]
struct TopicFile {
    id: String,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

#[derive(Default)]
struct Maps {
    by_name: HashMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

/// All topics, by name and by id.
pub(crate) struct Topics {
    data_dir: PathBuf,
    defaults: LogConfig,
    maps: RwLock<Maps>,
    /// Serialises this node's topic changes, so each is checked against an image that
    /// has the ones before it.
    admin: tokio::sync::Mutex<()>,
    /// Serialises reconciliations.
    reconciling: tokio::sync::Mutex<()>,
    temp_files: AtomicU64,
    node_id: i32,
    pub(crate) quorum: Arc<Quorum>,
    /// Index of the last metadata record applied here.
    reconciled: tokio::sync::watch::Sender<u64>,
    /// The fetchers of the partitions this node follows.
    fetchers: Fetchers,
    /// ISR changes asked for, and when.
    isr_requests: std::sync::Mutex<HashMap<(Uuid, i32), IsrRequest>>,
}

/// An ISR asked for, and when.
type IsrRequest = (std::time::Instant, Vec<i32>);

/// How often a leader repeats the same ISR request.
const ISR_REQUEST_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Checks a topic name as Kafka does.
pub(crate) fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." || name == crate::server::METADATA_DIR {
        return Err(format!("topic name {name:?} is not allowed"));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(format!(
            "topic name is longer than {MAX_TOPIC_NAME_LEN} characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("topic name {name:?} contains {c:?}; allowed are ASCII letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

impl Topics {
    /// The topics of node `node_id`, kept in `quorum`'s metadata log. Nothing is opened
    /// until the first [`Topics::reconcile`].
    pub(crate) fn new(
        data_dir: &Path,
        defaults: LogConfig,
        node_id: i32,
        quorum: Arc<Quorum>,
    ) -> Topics {
        let fetchers = Fetchers::new(node_id, quorum.clone());
        Topics {
            data_dir: data_dir.to_owned(),
            defaults,
            maps: RwLock::new(Maps::default()),
            admin: tokio::sync::Mutex::new(()),
            reconciling: tokio::sync::Mutex::new(()),
            temp_files: AtomicU64::new(0),
            node_id,
            quorum,
            reconciled: tokio::sync::watch::Sender::new(0),
            isr_requests: std::sync::Mutex::new(HashMap::new()),
            fetchers,
        }
    }

    /// Imports the topics of the earlier per-topic files into the metadata log (this node
    /// leading a quorum of its own), keeping their ids, partition counts and configs, and
    /// removes the files once the log has them.
    pub(crate) async fn import_legacy(self: &Arc<Self>) -> Result<(), BrokerError> {
        let dir = self.data_dir.join(TOPICS_DIR);
        if !dir.is_dir() {
            return Ok(());
        }
        let files = read_legacy_files(&dir)?;
        let image = self.quorum.status().image;
        let mut records = Vec::new();
        for (name, file) in &files {
            let id = Uuid::parse_str(&file.id).map_err(|e| BrokerError::Metadata {
                path: name.clone(),
                reason: e.to_string(),
            })?;
            if image.names.contains_key(name) {
                continue;
            }
            records.extend(topic_records(
                name,
                id,
                &vec![vec![self.node_id]; file.partitions.max(0) as usize],
                &file.configs,
                0,
            ));
            info!(topic = %name, partitions = file.partitions, "importing topic into the metadata log");
        }
        if !records.is_empty() {
            let index = self
                .quorum
                .propose(records)
                .await
                .map_err(|e| BrokerError::io("importing topics", std::io::Error::other(e)))?;
            self.wait_reconciled(index).await;
        }
        fs::remove_dir_all(&dir)
            .map_err(|e| BrokerError::io(format!("removing {}", dir.display()), e))
    }

    fn insert_arc(&self, topic: Arc<Topic>) {
        let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
        maps.by_name.insert(topic.name.clone(), topic.clone());
        maps.by_id.insert(topic.id, topic);
    }

    /// The effective log config for a topic with these overrides.
    pub(crate) fn log_config(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, String> {
        topic_config::effective(&self.defaults, overrides)
    }

    /// Broker-level defaults of topic configs.
    pub(crate) fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.maps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .get(name)
            .cloned()
    }

    pub(crate) fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.maps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .get(&id)
            .cloned()
    }

    /// All topics, sorted by name.
    pub(crate) fn all(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self
            .maps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The metadata image as last applied by the quorum (it may be ahead of the local
    /// topics for a moment).
    pub(crate) fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    /// Waits until the local topics have caught up with the image as it is now.
    pub(crate) async fn catch_up(&self) {
        self.wait_reconciled(self.quorum.image().applied).await;
    }

    /// Waits until the records up to `index` are applied here.
    async fn wait_reconciled(&self, index: u64) {
        let mut reconciled = self.reconciled.subscribe();
        let _ = reconciled.wait_for(|&at| at >= index).await;
    }

    /// Proposes topic records through this node as the active controller and waits until
    /// they are applied here.
    async fn commit(&self, records: Vec<MetadataRecord>) -> Result<(), Failure> {
        let index = self.quorum.propose(records).await.map_err(|e| match e {
            ProposeError::NotLeader { leader } => (
                ErrorCode::NOT_CONTROLLER,
                format!("this broker is not the active controller (the controller is {leader:?})"),
            ),
            other => (ErrorCode::REQUEST_TIMED_OUT, other.to_string()),
        })?;
        self.wait_reconciled(index).await;
        Ok(())
    }

    /// The image, checked to be one this node may change topics from: it must lead the
    /// quorum.
    fn controller_image(&self) -> Result<Arc<MetadataImage>, Failure> {
        let status = self.quorum.status();
        if status.leader != Some(self.node_id) {
            return Err((
                ErrorCode::NOT_CONTROLLER,
                format!(
                    "this broker is not the active controller (the controller is {:?})",
                    status.leader
                ),
            ));
        }
        Ok(status.image)
    }

    /// Creates a topic; `validate_only` checks without creating. Replicas are placed on
    /// the live brokers (one per partition), or as `assignments` say.
    pub(crate) async fn create(
        self: &Arc<Self>,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        factor: usize,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, Failure> {
        validate_topic_name(name).map_err(|m| (ErrorCode::INVALID_TOPIC_EXCEPTION, m))?;
        check_partition_count(partitions)?;
        self.log_config(&overrides)
            .map_err(|e| (ErrorCode::INVALID_CONFIG, e))?;
        let _admin = self.admin.lock().await;
        let image = self.controller_image()?;
        if image.names.contains_key(name) {
            return Err((
                ErrorCode::TOPIC_ALREADY_EXISTS,
                format!("topic '{name}' already exists"),
            ));
        }
        let id = Uuid::new_v4();
        let replicas = match assignments {
            Some(assignments) => check_assignments(&image, assignments)?,
            None => place(&image, id, factor, 0, partitions)?,
        };
        let count = i32::try_from(replicas.len()).unwrap_or(i32::MAX);
        let topic = Topic::new(name, id, overrides.clone(), count);
        if validate_only {
            return Ok(Arc::new(topic));
        }
        self.commit(topic_records(name, id, &replicas, &overrides, 0))
            .await?;
        info!(topic = %name, partitions = count, "created topic");
        Ok(self.get(name).unwrap_or_else(|| Arc::new(topic)))
    }

    /// Creates a topic a broker needs (an internal topic, or one a client's Metadata
    /// asked for with auto-creation on): here on the active controller, else by asking the
    /// controller with CreateTopics. `Ok(true)` once created here (or already there);
    /// `Ok(false)` when the controller was asked, and the caller's client should ask
    /// again once the metadata has it.
    pub(crate) async fn create_anywhere(
        self: &Arc<Self>,
        name: &str,
        partitions: i32,
        factor: usize,
        overrides: BTreeMap<String, String>,
    ) -> Result<bool, Failure> {
        match self
            .create(name, partitions, overrides.clone(), factor, None, false)
            .await
        {
            Ok(_) | Err((ErrorCode::TOPIC_ALREADY_EXISTS, _)) => Ok(true),
            Err((ErrorCode::NOT_CONTROLLER, _)) => {
                let unavailable = |reason: String| (ErrorCode::LEADER_NOT_AVAILABLE, reason);
                let status = self.quorum.status();
                let conn = crate::controller::client::connect(&self.quorum, &status)
                    .await
                    .map_err(|code| unavailable(format!("controller unreachable: {code}")))?;
                let configs = overrides
                    .into_iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k))
                            .with_value(Some(StrBytes::from_string(v)))
                    })
                    .collect();
                let request =
                    CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                        .with_num_partitions(partitions)
                        .with_replication_factor(i16::try_from(factor).unwrap_or(-1))
                        .with_configs(configs)]);
                conn.send(&request)
                    .await
                    .map_err(|e| unavailable(format!("asking the controller: {e}")))?;
                Ok(false)
            }
            Err(failure) => Err(failure),
        }
    }

    /// Asks the controller (through the metadata log) for partition `partition` of topic
    /// `topic_id` to have `isr`, guarded by `partition_epoch`, the state the leader
    /// decided on, so a request made on a state that changed meanwhile is dropped (the
    /// same ISR again settles a request whose fate the leader does not know). Repeated at
    /// most once a second per partition: the leader asks again while it still needs it.
    pub(crate) fn request_isr(
        &self,
        topic_id: Uuid,
        partition: i32,
        isr: Vec<i32>,
        partition_epoch: i32,
    ) {
        let image = self.quorum.image();
        let Some(current) = image.partition(topic_id, partition) else {
            return;
        };
        if current.leader != self.node_id || current.partition_epoch != partition_epoch {
            // Decided on an older state: the leader decides again on the new one.
            return;
        }
        let now = std::time::Instant::now();
        {
            let mut asked = self.isr_requests.lock().unwrap_or_else(|p| p.into_inner());
            if asked
                .get(&(topic_id, partition))
                .is_some_and(|(at, wanted)| {
                    *wanted == isr && now.duration_since(*at) < ISR_REQUEST_EVERY
                })
            {
                return;
            }
            asked.insert((topic_id, partition), (now, isr.clone()));
        }
        info!(%topic_id, partition, ?isr, "asking for an ISR change");
        self.quorum.submit(vec![MetadataRecord::PartitionChange {
            topic_id,
            partition,
            if_partition_epoch: Some(partition_epoch),
            leader: None,
            isr: Some(isr),
            replicas: None,
            adding: None,
            removing: None,
        }]);
    }

    /// Deletes a topic and its data.
    pub(crate) async fn delete(self: &Arc<Self>, name: &str) -> Result<Uuid, Failure> {
        let _admin = self.admin.lock().await;
        let image = self.controller_image()?;
        let Some(topic) = image.topic(name) else {
            return Err((
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            ));
        };
        let id = topic.id;
        self.commit(vec![MetadataRecord::RemoveTopic { id }])
            .await?;
        info!(topic = %name, "deleted topic");
        Ok(id)
    }

    /// Grows a topic to `count` partitions, placed on the live brokers or as `assignments`
    /// say (one replica list per new partition).
    pub(crate) async fn add_partitions(
        self: &Arc<Self>,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), Failure> {
        check_partition_count(count)?;
        let _admin = self.admin.lock().await;
        let image = self.controller_image()?;
        let topic = image.topic(name).ok_or((
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        ))?;
        let current = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        if count <= current {
            return Err((
                ErrorCode::INVALID_PARTITIONS,
                format!("topic '{name}' has {current} partitions; {count} would not add any"),
            ));
        }
        let factor = topic
            .partitions
            .first()
            .map_or(1, |p| p.replicas.len().max(1));
        let replicas = match assignments {
            Some(assignments) => {
                if i32::try_from(assignments.len()).ok() != Some(count - current) {
                    return Err((
                        ErrorCode::INVALID_REPLICA_ASSIGNMENT,
                        format!(
                            "{} assignments for {} new partitions",
                            assignments.len(),
                            count - current
                        ),
                    ));
                }
                check_assignments(&image, assignments)?
            }
            None => place(&image, topic.id, factor, current, count - current)?,
        };
        if validate_only {
            return Ok(());
        }
        let mut records = topic_records(name, topic.id, &replicas, &BTreeMap::new(), current);
        // Only the partitions: the topic record is already there.
        records.remove(0);
        self.commit(records).await?;
        info!(topic = %name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Changes a topic's config overrides (`change` maps the current ones to the new ones,
    /// under the admin lock, so concurrent changes do not lose each other) through the
    /// metadata log.
    pub(crate) async fn alter_overrides(
        self: &Arc<Self>,
        name: &str,
        validate_only: bool,
        change: impl FnOnce(BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Failure>,
    ) -> Result<(), Failure> {
        let _admin = self.admin.lock().await;
        let image = self.controller_image()?;
        let topic = image.topic(name).ok_or((
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        ))?;
        let overrides = change(topic.configs.clone())?;
        self.log_config(&overrides)
            .map_err(|e| (ErrorCode::INVALID_CONFIG, e))?;
        if validate_only {
            return Ok(());
        }
        let mut records: Vec<MetadataRecord> = overrides
            .iter()
            .filter(|(k, v)| topic.configs.get(*k) != Some(*v))
            .map(|(k, v)| MetadataRecord::TopicConfig {
                topic_id: topic.id,
                name: k.clone(),
                value: Some(v.clone()),
            })
            .collect();
        records.extend(
            topic
                .configs
                .keys()
                .filter(|k| !overrides.contains_key(*k))
                .map(|k| MetadataRecord::TopicConfig {
                    topic_id: topic.id,
                    name: k.clone(),
                    value: None,
                }),
        );
        if records.is_empty() {
            return Ok(());
        }
        self.commit(records).await
    }

    /// Makes the local topics those of `image`: opens the partitions whose replicas
    /// include this node, applies config changes, removes what the image no longer has.
    pub(crate) async fn reconcile(self: &Arc<Self>, image: &MetadataImage, now_ms: i64) {
        let _one = self.reconciling.lock().await;
        if image.applied <= *self.reconciled.borrow() && image.applied > 0 {
            return;
        }
        // Topics gone (or replaced by a new topic of the same name).
        let gone: Vec<Arc<Topic>> = self
            .all()
            .into_iter()
            .filter(|t| !image.topics.contains_key(&t.id))
            .collect();
        for topic in gone {
            self.remove_local(topic).await;
        }
        let mut moved_away: Vec<(String, Arc<Partition>)> = Vec::new();
        for meta in image.topics.values() {
            let count = i32::try_from(meta.partitions.len()).unwrap_or(i32::MAX);
            // A new topic is visible only once its partitions here are open.
            let (topic, is_new) = match self.get_by_id(meta.id) {
                Some(topic) => (topic, false),
                None => {
                    let topic = Topic::new(&meta.name, meta.id, meta.configs.clone(), count);
                    (Arc::new(topic), true)
                }
            };
            topic.count.store(count, Ordering::Release);
            let config = match self.log_config(&meta.configs) {
                Ok(config) => config,
                Err(reason) => {
                    warn!(topic = %meta.name, %reason, "topic config refused; using the defaults");
                    self.defaults.clone()
                }
            };
            if topic.overrides() != meta.configs {
                for partition in topic.partitions() {
                    partition.update_config(config.clone()).await;
                }
                *topic.overrides.write().unwrap_or_else(|p| p.into_inner()) = meta.configs.clone();
            }
            // Replicas moved off this node (a reassignment) are dropped with their data.
            {
                let mut hosted = topic.partitions.write().unwrap_or_else(|p| p.into_inner());
                let gone: Vec<i32> = hosted
                    .keys()
                    .copied()
                    .filter(|&i| {
                        usize::try_from(i)
                            .ok()
                            .and_then(|i| meta.partitions.get(i))
                            .is_none_or(|p| !p.replicas.contains(&self.node_id))
                    })
                    .collect();
                for index in gone {
                    if let Some(partition) = hosted.remove(&index) {
                        moved_away.push((meta.name.clone(), partition));
                    }
                }
            }
            let missing: Vec<i32> = meta
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.replicas.contains(&self.node_id))
                .filter_map(|(i, _)| i32::try_from(i).ok())
                .filter(|&i| topic.partition(i).is_none())
                .collect();
            if missing.is_empty() {
                if is_new {
                    self.insert_arc(topic);
                }
                continue;
            }
            let this = self.clone();
            let (name, id) = (meta.name.clone(), meta.id);
            let opened = blocking(move || {
                missing
                    .into_iter()
                    .map(|index| this.open_partition(&name, id, index, &config, now_ms))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await;
            match opened {
                Ok(opened) => {
                    {
                        let mut hosted =
                            topic.partitions.write().unwrap_or_else(|p| p.into_inner());
                        for partition in opened {
                            hosted.insert(partition.index, partition);
                        }
                    }
                    if is_new {
                        self.insert_arc(topic);
                    }
                }
                Err((_, message)) => {
                    warn!(topic = %meta.name, error = %message, "opening partitions");
                }
            }
        }
        // Leadership: the partitions this node leads stamp their epoch on what they append
        // and track their followers; the ones it follows are fetched from their leaders.
        let now = u64::try_from(now_ms).unwrap_or(0);
        // A broker leads nothing until this incarnation is registered and unfenced: until
        // then its metadata may be from before it stopped, and what it led then may have
        // moved on without it.
        let serving = self.quorum.status().registered;
        let mut followed: HashMap<i32, Vec<Followed>> = HashMap::new();
        for meta in image.topics.values() {
            let Some(topic) = self.get_by_id(meta.id) else {
                continue;
            };
            for (index, p) in meta.partitions.iter().enumerate() {
                let Some(partition) = i32::try_from(index).ok().and_then(|i| topic.partition(i))
                else {
                    continue;
                };
                if p.leader == self.node_id && !serving {
                    partition.resign();
                } else if p.leader == self.node_id {
                    partition.become_leader(p.leader_epoch).await;
                    partition
                        .lead(self.node_id, &p.replicas, &p.isr, p.partition_epoch, now)
                        .await;
                } else {
                    partition.resign();
                    if p.leader >= 0 {
                        partition.follow(p.leader_epoch);
                        followed.entry(p.leader).or_default().push(Followed {
                            topic: meta.name.clone(),
                            index: partition.index,
                            leader_epoch: p.leader_epoch,
                            partition: partition.clone(),
                        });
                    }
                }
            }
        }
        self.fetchers.set(followed);
        if !moved_away.is_empty() {
            for (topic, partition) in &moved_away {
                info!(%topic, partition = partition.index, "no longer a replica here; deleting its data");
                partition.resign();
            }
            self.delete_partitions(moved_away).await;
        }
        self.reconciled.send_replace(image.applied);
    }

    /// Deletes partitions' data (of a deleted topic, or replicas moved off this node),
    /// given with their topic's name.
    async fn delete_partitions(self: &Arc<Self>, partitions: Vec<(String, Arc<Partition>)>) {
        let this = self.clone();
        let removed = blocking(move || {
            for (topic, partition) in partitions {
                let index = partition.index;
                let removed = match Arc::try_unwrap(partition) {
                    Ok(p) => p.delete().map_err(BrokerError::from),
                    // A request still holds it; its open files stay readable until it ends.
                    Err(_) => remove_dir(&this.partition_dir(&topic, index)),
                };
                if let Err(e) = removed {
                    warn!(%topic, partition = index, error = %e, "deleting partition data; removed when the name is used again");
                }
            }
            Ok(())
        })
        .await;
        if let Err((_, message)) = removed {
            warn!(error = %message, "deleting partition data");
        }
    }

    /// Drops a topic from this broker and deletes its partitions' data.
    async fn remove_local(self: &Arc<Self>, topic: Arc<Topic>) {
        {
            let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
            if maps
                .by_id
                .get(&topic.id)
                .is_some_and(|t| Arc::ptr_eq(t, &topic))
            {
                maps.by_id.remove(&topic.id);
            }
            if maps
                .by_name
                .get(&topic.name)
                .is_some_and(|t| Arc::ptr_eq(t, &topic))
            {
                maps.by_name.remove(&topic.name);
            }
        }
        topic.deleted.store(true, Ordering::Release);
        let partitions = topic.take_partitions();
        self.delete_partitions(
            partitions
                .into_iter()
                .map(|p| (topic.name.clone(), p))
                .collect(),
        )
        .await;
    }

    /// Opens partition `index` of topic `id`, wiping a folder left by another topic of the
    /// same name. Blocking.
    fn open_partition(
        &self,
        name: &str,
        id: Uuid,
        index: i32,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Arc<Partition>, BrokerError> {
        let dir = self.partition_dir(name, index);
        let marker = dir.join(PARTITION_METADATA);
        let expected = format!("version: 0\ntopic_id: {id}\n");
        match fs::read_to_string(&marker) {
            Ok(found) if found == expected => {}
            Ok(_) => {
                warn!(topic = %name, partition = index, "removing data left by an earlier topic of this name");
                remove_dir(&dir)?;
            }
            // A folder from before these markers (imported) or a new one.
            Err(_) => {}
        }
        let partition = Partition::open(index, &dir, config.clone(), now_ms)?;
        if fs::read_to_string(&marker).ok().as_deref() != Some(expected.as_str()) {
            let n = self.temp_files.fetch_add(1, Ordering::Relaxed);
            write_atomically_via(&marker, &format!("tmp{n}"), expected.as_bytes())?;
        }
        Ok(Arc::new(partition))
    }

    fn partition_dir(&self, name: &str, index: i32) -> PathBuf {
        self.data_dir.join(format!("{name}-{index}"))
    }

    /// Closes every partition cleanly. Blocking.
    pub(crate) fn close(&self) {
        self.fetchers.stop();
        let topics: Vec<Arc<Topic>> = {
            let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
            maps.by_id.clear();
            maps.by_name.drain().map(|(_, t)| t).collect()
        };
        for topic in topics {
            for partition in topic.take_partitions() {
                let closed = match Arc::try_unwrap(partition) {
                    Ok(p) => p.close(),
                    Err(p) => p.flush(),
                };
                if let Err(e) = closed {
                    warn!(topic = %topic.name, error = %e, "closing partition");
                }
            }
        }
    }
}

impl Topic {
    fn new(name: &str, id: Uuid, overrides: BTreeMap<String, String>, count: i32) -> Topic {
        Topic {
            name: name.to_owned(),
            id,
            overrides: RwLock::new(overrides),
            partitions: RwLock::new(BTreeMap::new()),
            count: AtomicI32::new(count),
            deleted: AtomicBool::new(false),
        }
    }
}

/// On the partitions this node leads, asks for lagging followers to leave the ISR (not
/// caught up for `lag_max`), checking four times per `lag_max`, until `shutdown`.
pub(crate) async fn watch_isr(
    topics: Arc<Topics>,
    lag_max: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let every = (lag_max / 4).clamp(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_secs(1),
    );
    let lag_ms = u64::try_from(lag_max.as_millis()).unwrap_or(u64::MAX);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let now = u64::try_from(crate::state::now_ms()).unwrap_or(0);
        for topic in topics.all() {
            for partition in topic.partitions() {
                if let Some((isr, epoch)) = partition.lagging(now, lag_ms) {
                    topics.request_isr(topic.id, partition.index, isr, epoch);
                }
            }
        }
    }
}

/// Applies each new metadata image to `topics` until `shutdown`.
pub(crate) async fn follow(
    topics: Arc<Topics>,
    mut status: tokio::sync::watch::Receiver<crate::controller::quorum::QuorumStatus>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let image = status.borrow_and_update().image.clone();
        topics.reconcile(&image, crate::state::now_ms()).await;
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// The records of a topic with partitions `first..` placed on `replicas` (one list per
/// partition, preferred leader first) and its config overrides.
fn topic_records(
    name: &str,
    id: Uuid,
    replicas: &[Vec<i32>],
    overrides: &BTreeMap<String, String>,
    first: i32,
) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::Topic {
        name: name.to_owned(),
        id,
    }];
    for (i, replicas) in replicas.iter().enumerate() {
        records.push(MetadataRecord::Partition {
            topic_id: id,
            partition: first + i32::try_from(i).unwrap_or(i32::MAX),
            replicas: replicas.clone(),
            isr: replicas.clone(),
            leader: replicas.first().copied().unwrap_or(-1),
            leader_epoch: 0,
        });
    }
    records.extend(overrides.iter().map(|(k, v)| MetadataRecord::TopicConfig {
        topic_id: id,
        name: k.clone(),
        value: Some(v.clone()),
    }));
    records
}

/// Replicas for `count` new partitions from index `first`, `factor` per partition, placed
/// over the live brokers (see `controller::placement`) from a start that depends on the topic.
fn place(
    image: &MetadataImage,
    id: Uuid,
    factor: usize,
    first: i32,
    count: i32,
) -> Result<Vec<Vec<i32>>, Failure> {
    let live: Vec<Candidate> = image
        .live_brokers()
        .map(|b| Candidate {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect();
    let start = (id.as_u128() % live.len().max(1) as u128) as usize;
    placement::place(&live, factor, first, count, start)
        .map_err(|reason| (ErrorCode::INVALID_REPLICATION_FACTOR, reason))
}

/// Checks explicit replica assignments: distinct replicas per partition, on registered
/// brokers.
fn check_assignments(
    image: &MetadataImage,
    assignments: Vec<Vec<i32>>,
) -> Result<Vec<Vec<i32>>, Failure> {
    for replicas in &assignments {
        reassignment::check_replicas(replicas, |b| image.brokers.contains_key(&b))?;
    }
    check_partition_count(i32::try_from(assignments.len()).unwrap_or(i32::MAX))?;
    Ok(assignments)
}

/// The earlier per-topic files, by topic name.
fn read_legacy_files(dir: &Path) -> Result<Vec<(String, TopicFile)>, BrokerError> {
    let entries =
        fs::read_dir(dir).map_err(|e| BrokerError::io(format!("listing {}", dir.display()), e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| BrokerError::io("listing topics", e))?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        let text = fs::read_to_string(&path)
            .map_err(|e| BrokerError::io(format!("reading {}", path.display()), e))?;
        let file: TopicFile = toml::from_str(&text).map_err(|e| BrokerError::Metadata {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        files.push((name, file));
    }
    Ok(files)
}

fn check_partition_count(count: i32) -> Result<(), Failure> {
    if count < 1 {
        return Err((
            ErrorCode::INVALID_PARTITIONS,
            format!("{count} partitions requested; at least 1 is needed"),
        ));
    }
    if count > MAX_PARTITIONS {
        return Err((ErrorCode::INVALID_PARTITIONS, format!("{count} partitions requested; this broker allows at most {MAX_PARTITIONS} per topic")));
    }
    Ok(())
}

/// Runs file work on a blocking thread; failures become `KAFKA_STORAGE_ERROR`.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BrokerError> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err((ErrorCode::KAFKA_STORAGE_ERROR, e.to_string())),
        Err(e) => Err((ErrorCode::KAFKA_STORAGE_ERROR, e.to_string())),
    }
}

fn remove_dir(dir: &Path) -> Result<(), BrokerError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BrokerError::io(format!("removing {}", dir.display()), e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), BrokerError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BrokerError::io(format!("syncing folder {}", dir.display()), e))
}

/// Writes `bytes` to `path` through a temporary file and a rename, fsyncing the file and
/// then the folder so the rename itself survives a power loss.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BrokerError> {
    write_atomically_via(path, "tmp", bytes)
}

fn write_atomically_via(
    path: &Path,
    temp_extension: &str,
    bytes: &[u8],
) -> Result<(), BrokerError> {
    let tmp = path.with_extension(temp_extension);
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| BrokerError::io(format!("writing {}", path.display()), e))?;
    match path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name("__cluster_metadata").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    /// The topics of a broker alone in `dir`, following its metadata log.
    async fn open(dir: &Path) -> (Arc<Topics>, tokio::sync::watch::Sender<bool>) {
        let (quorum, stop) = crate::controller::quorum::single_node(dir).await;
        let topics = Arc::new(Topics::new(dir, LogConfig::default(), 1, quorum.clone()));
        topics.reconcile(&quorum.status().image, 0).await;
        tokio::spawn(follow(topics.clone(), quorum.watch(), stop.subscribe()));
        (topics, stop)
    }

    #[tokio::test]
    async fn topics_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (topics, stop) = open(dir.path()).await;
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_owned(), "1000".to_owned());
        configs.insert("min.insync.replicas".to_owned(), "2".to_owned());
        let t = topics
            .create("a", 3, configs, 1, None, false)
            .await
            .unwrap();
        let id = t.id;
        assert_eq!(t.partitions().len(), 3, "hosted here");
        let again = topics.create("a", 1, BTreeMap::new(), 1, None, false).await;
        assert!(matches!(again, Err((ErrorCode::TOPIC_ALREADY_EXISTS, _))));
        assert!(matches!(
            topics
                .create("b", MAX_PARTITIONS + 1, BTreeMap::new(), 1, None, false)
                .await,
            Err((ErrorCode::INVALID_PARTITIONS, _))
        ));
        let elsewhere = topics
            .create("c", 1, BTreeMap::new(), 1, Some(vec![vec![7]]), false)
            .await;
        assert!(matches!(
            elsewhere,
            Err((ErrorCode::INVALID_REPLICA_ASSIGNMENT, _))
        ));
        topics.add_partitions("a", 4, None, false).await.unwrap();
        assert_eq!(topics.get_by_id(id).unwrap().name, "a");
        drop(t);
        stop.send_replace(true);
        topics.close();
        drop(topics);

        let (again, _stop) = open(dir.path()).await;
        let t = again.get("a").unwrap();
        assert_eq!(t.id, id);
        assert_eq!((t.partition_count(), t.partitions().len()), (4, 4));
        assert_eq!(t.overrides()["retention.ms"], "1000");
        drop(t);
        again.delete("a").await.unwrap();
        assert!(!dir.path().join("a-0").exists());
        assert!(again.get_by_id(id).is_none());
    }

    #[tokio::test]
    async fn folders_of_an_earlier_topic_do_not_come_back_under_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (topics, _stop) = open(dir.path()).await;
        // A folder of an earlier "old" (another topic id), with a segment in it.
        fs::create_dir_all(dir.path().join("old-0")).unwrap();
        fs::write(dir.path().join("old-0/00000000000000000000.log"), b"stale").unwrap();
        fs::write(
            dir.path().join("old-0").join(PARTITION_METADATA),
            format!("version: 0\ntopic_id: {}\n", Uuid::new_v4()),
        )
        .unwrap();
        topics
            .create("old", 1, BTreeMap::new(), 1, None, false)
            .await
            .unwrap();
        let log = fs::read(dir.path().join("old-0/00000000000000000000.log")).unwrap_or_default();
        assert!(log.is_empty(), "stale data survived");
    }

    #[tokio::test]
    async fn topics_of_the_earlier_files_are_imported() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        fs::create_dir_all(dir.path().join(TOPICS_DIR)).unwrap();
        fs::write(
            dir.path().join(TOPICS_DIR).join("kept.toml"),
            format!("id = \"{id}\"\npartitions = 2\n[configs]\n\"retention.ms\" = \"5000\"\n"),
        )
        .unwrap();
        let (topics, _stop) = open(dir.path()).await;
        topics.import_legacy().await.unwrap();
        let t = topics.get("kept").unwrap();
        assert_eq!((t.id, t.partition_count()), (id, 2));
        assert_eq!(t.overrides()["retention.ms"], "5000");
        assert!(!dir.path().join(TOPICS_DIR).exists());
    }

    #[tokio::test]
    async fn concurrent_config_changes_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let (topics, _stop) = open(dir.path()).await;
        topics
            .create("c", 1, BTreeMap::new(), 1, None, false)
            .await
            .unwrap();
        const KEYS: [&str; 4] = [
            "retention.ms",
            "segment.ms",
            "delete.retention.ms",
            "min.insync.replicas",
        ];
        let keys = KEYS;
        let tasks: Vec<_> = KEYS
            .into_iter()
            .map(|key| {
                let topics = topics.clone();
                tokio::spawn(async move {
                    topics
                        .alter_overrides("c", false, |mut o| {
                            o.insert(key.to_owned(), "5".to_owned());
                            Ok(o)
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(topics.get("c").unwrap().overrides().len(), keys.len());
    }
}
