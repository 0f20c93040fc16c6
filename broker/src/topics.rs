//! The topics this broker hosts: names, ids, partitions, config overrides, and how they are
//! kept on disk.
//!
//! ```text
//! DATA_DIR/
//!   meta.properties              cluster.id, node.id (as Kafka writes it)
//!   __strom_topics/NAME.toml     topic id, partition count, config overrides
//!   NAME-0/ NAME-1/ ...          partition logs (see `log`)
//! ```
//!
//! Changes (create, delete, add partitions, alter configs) are serialised by one admin lock
//! and do their file work on a blocking thread, so requests for other topics never wait on
//! it. A topic's file is written (temporary name, fsync, rename, fsync of the folder) only
//! after its partitions are open, and removed before its folders are; partition folders
//! left behind by a deletion cut short are removed when the name is created again, so an
//! old topic's records never reappear under a new topic.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use strom_protocol::ErrorCode;
use tracing::{info, warn};
use uuid::Uuid;

use crate::error::BrokerError;
use crate::log::LogConfig;
use crate::partition::Partition;
use crate::topic_config;

/// Folder under the data dir holding one file per topic.
const TOPICS_DIR: &str = "__strom_topics";

/// Longest legal topic name (Kafka's limit).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Most partitions one topic may have on this broker: each is a folder and three open
/// files.
pub const MAX_PARTITIONS: i32 = 10_000;

/// A failed admin change: the Kafka error and a message for the client.
pub(crate) type Failure = (ErrorCode, String);

/// A topic and its partitions.
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    overrides: RwLock<BTreeMap<String, String>>,
    partitions: RwLock<Vec<Arc<Partition>>>,
    /// Set (under the admin lock) when the topic is deleted, so a change racing the deletion
    /// does not write its file back.
    deleted: AtomicBool,
}

impl Topic {
    pub(crate) fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let partitions = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        usize::try_from(index)
            .ok()
            .and_then(|i| partitions.get(i).cloned())
    }

    pub(crate) fn partition_count(&self) -> i32 {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len() as i32
    }

    pub(crate) fn overrides(&self) -> BTreeMap<String, String> {
        self.overrides
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn take_partitions(&self) -> Vec<Arc<Partition>> {
        std::mem::take(&mut *self.partitions.write().unwrap_or_else(|p| p.into_inner()))
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
    admin: tokio::sync::Mutex<()>,
    temp_files: AtomicU64,
}

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
    /// Loads every topic stored under `data_dir`, opening (and recovering) its partitions.
    pub(crate) fn load(
        data_dir: &Path,
        defaults: LogConfig,
        now_ms: i64,
    ) -> Result<Topics, BrokerError> {
        let topics = Topics {
            data_dir: data_dir.to_owned(),
            defaults,
            maps: RwLock::new(Maps::default()),
            admin: tokio::sync::Mutex::new(()),
            temp_files: AtomicU64::new(0),
        };
        let dir = data_dir.join(TOPICS_DIR);
        fs::create_dir_all(&dir)
            .map_err(|e| BrokerError::io(format!("creating {}", dir.display()), e))?;
        let entries = fs::read_dir(&dir)
            .map_err(|e| BrokerError::io(format!("listing {}", dir.display()), e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| BrokerError::io("listing topics", e))?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                // Temporary files of a write cut short.
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            let bad = |reason: String| BrokerError::Metadata {
                path: path.display().to_string(),
                reason,
            };
            let text = fs::read_to_string(&path)
                .map_err(|e| BrokerError::io(format!("reading {}", path.display()), e))?;
            let file: TopicFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
            let id = Uuid::parse_str(&file.id).map_err(|e| bad(e.to_string()))?;
            let config = topics.log_config(&file.configs).map_err(bad)?;
            let partitions = topics.open_partitions(&name, 0..file.partitions, &config, now_ms)?;
            info!(topic = %name, partitions = file.partitions, "loaded topic");
            topics.insert(Topic::new(&name, id, file.configs, partitions));
        }
        Ok(topics)
    }

    fn insert(&self, topic: Topic) -> Arc<Topic> {
        let topic = Arc::new(topic);
        let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
        maps.by_name.insert(topic.name.clone(), topic.clone());
        maps.by_id.insert(topic.id, topic.clone());
        topic
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

    /// Creates a topic; `validate_only` checks without creating.
    pub(crate) async fn create(
        self: &Arc<Self>,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
        now_ms: i64,
    ) -> Result<Arc<Topic>, Failure> {
        validate_topic_name(name).map_err(|m| (ErrorCode::INVALID_TOPIC_EXCEPTION, m))?;
        check_partition_count(partitions)?;
        let config = self
            .log_config(&overrides)
            .map_err(|e| (ErrorCode::INVALID_CONFIG, e))?;
        let _admin = self.admin.lock().await;
        if self.get(name).is_some() {
            return Err((
                ErrorCode::TOPIC_ALREADY_EXISTS,
                format!("topic '{name}' already exists"),
            ));
        }
        let topic = Topic::new(name, Uuid::new_v4(), overrides, Vec::new());
        if validate_only {
            return Ok(Arc::new(topic));
        }
        let this = self.clone();
        let topic = blocking(move || {
            this.remove_leftover_folders(&topic.name)?;
            let opened = this.open_partitions(&topic.name, 0..partitions, &config, now_ms);
            let opened = opened.and_then(|p| {
                this.write_topic_file(&topic.name, topic.id, partitions, &topic.overrides())?;
                Ok(p)
            });
            match opened {
                Ok(p) => {
                    *topic.partitions.write().unwrap_or_else(|e| e.into_inner()) = p;
                    Ok(topic)
                }
                Err(e) => {
                    // Leave nothing half made behind.
                    let _ = this.remove_leftover_folders(&topic.name);
                    Err(e)
                }
            }
        })
        .await?;
        info!(topic = %name, partitions, "created topic");
        Ok(self.insert(topic))
    }

    /// Deletes a topic and its data.
    pub(crate) async fn delete(self: &Arc<Self>, name: &str) -> Result<Uuid, ErrorCode> {
        let _admin = self.admin.lock().await;
        let topic = {
            let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
            let Some(topic) = maps.by_name.remove(name) else {
                return Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
            };
            maps.by_id.remove(&topic.id);
            topic
        };
        topic.deleted.store(true, Ordering::Release);
        let this = self.clone();
        let id = topic.id;
        let result = blocking(move || {
            let path = this.topic_file(&topic.name);
            fs::remove_file(&path).map_err(|e| BrokerError::io(format!("removing {}", path.display()), e))?;
            sync_dir(&this.data_dir.join(TOPICS_DIR))?;
            for partition in topic.take_partitions() {
                let index = partition.index;
                let removed = match Arc::try_unwrap(partition) {
                    Ok(p) => p.delete().map_err(BrokerError::from),
                    // A request still holds it; its open files stay readable until it ends.
                    Err(_) => remove_dir(&this.partition_dir(&topic.name, index)),
                };
                if let Err(e) = removed {
                    warn!(topic = %topic.name, partition = index, error = %e, "deleting partition data; removed when the name is created again");
                }
            }
            Ok(())
        })
        .await;
        if let Err((_, message)) = result {
            warn!(topic = %name, error = %message, "deleting topic");
            return Err(ErrorCode::KAFKA_STORAGE_ERROR);
        }
        info!(topic = %name, "deleted topic");
        Ok(id)
    }

    /// Grows a topic to `count` partitions.
    pub(crate) async fn add_partitions(
        self: &Arc<Self>,
        name: &str,
        count: i32,
        validate_only: bool,
        now_ms: i64,
    ) -> Result<(), Failure> {
        check_partition_count(count)?;
        let _admin = self.admin.lock().await;
        let topic = self.get(name).ok_or((
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        ))?;
        let current = topic.partition_count();
        if count <= current {
            return Err((
                ErrorCode::INVALID_PARTITIONS,
                format!("topic '{name}' has {current} partitions; {count} would not add any"),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let this = self.clone();
        let grown = topic.clone();
        blocking(move || {
            let config =
                this.log_config(&grown.overrides())
                    .map_err(|reason| BrokerError::Metadata {
                        path: grown.name.clone(),
                        reason,
                    })?;
            let added = this.open_partitions(&grown.name, current..count, &config, now_ms)?;
            this.write_topic_file(&grown.name, grown.id, count, &grown.overrides())?;
            grown
                .partitions
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .extend(added);
            Ok(())
        })
        .await?;
        info!(topic = %name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Changes a topic's config overrides (`change` maps the current ones to the new ones,
    /// under the admin lock, so concurrent changes do not lose each other), stores them and
    /// applies them to its partitions.
    pub(crate) async fn alter_overrides(
        self: &Arc<Self>,
        name: &str,
        validate_only: bool,
        change: impl FnOnce(BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Failure>,
    ) -> Result<(), Failure> {
        let _admin = self.admin.lock().await;
        let topic = self.get(name).ok_or((
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        ))?;
        let overrides = change(topic.overrides())?;
        let config = self
            .log_config(&overrides)
            .map_err(|e| (ErrorCode::INVALID_CONFIG, e))?;
        if validate_only || topic.deleted.load(Ordering::Acquire) {
            return Ok(());
        }
        let this = self.clone();
        let stored = topic.clone();
        let written = overrides.clone();
        blocking(move || {
            this.write_topic_file(&stored.name, stored.id, stored.partition_count(), &written)
        })
        .await?;
        for partition in topic.partitions() {
            partition.update_config(config.clone()).await;
        }
        *topic.overrides.write().unwrap_or_else(|p| p.into_inner()) = overrides;
        Ok(())
    }

    fn open_partitions(
        &self,
        name: &str,
        indexes: std::ops::Range<i32>,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Vec<Arc<Partition>>, BrokerError> {
        indexes
            .map(|index| {
                Ok(Arc::new(Partition::open(
                    index,
                    &self.partition_dir(name, index),
                    config.clone(),
                    now_ms,
                )?))
            })
            .collect()
    }

    fn partition_dir(&self, name: &str, index: i32) -> PathBuf {
        self.data_dir.join(format!("{name}-{index}"))
    }

    /// Removes partition folders of `name` that no topic owns.
    fn remove_leftover_folders(&self, name: &str) -> Result<(), BrokerError> {
        let entries = fs::read_dir(&self.data_dir)
            .map_err(|e| BrokerError::io(format!("listing {}", self.data_dir.display()), e))?;
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(rest) = file_name
                .to_str()
                .and_then(|f| f.strip_prefix(name))
                .and_then(|r| r.strip_prefix('-'))
            else {
                continue;
            };
            if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
                warn!(topic = %name, folder = %entry.path().display(), "removing data left by an earlier topic of this name");
                remove_dir(&entry.path())?;
            }
        }
        Ok(())
    }

    fn topic_file(&self, name: &str) -> PathBuf {
        self.data_dir.join(TOPICS_DIR).join(format!("{name}.toml"))
    }

    fn write_topic_file(
        &self,
        name: &str,
        id: Uuid,
        partitions: i32,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        let file = TopicFile {
            id: id.to_string(),
            partitions,
            configs: overrides.clone(),
        };
        let text = toml::to_string(&file).map_err(|e| BrokerError::Metadata {
            path: name.to_owned(),
            reason: e.to_string(),
        })?;
        let n = self.temp_files.fetch_add(1, Ordering::Relaxed);
        write_atomically_via(&self.topic_file(name), &format!("tmp{n}"), text.as_bytes())
    }

    /// Closes every partition cleanly. Blocking.
    pub(crate) fn close(&self) {
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
    fn new(
        name: &str,
        id: Uuid,
        overrides: BTreeMap<String, String>,
        partitions: Vec<Arc<Partition>>,
    ) -> Topic {
        Topic {
            name: name.to_owned(),
            id,
            overrides: RwLock::new(overrides),
            partitions: RwLock::new(partitions),
            deleted: AtomicBool::new(false),
        }
    }
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
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    #[tokio::test]
    async fn topics_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let topics = Arc::new(Topics::load(dir.path(), LogConfig::default(), 0).unwrap());
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_owned(), "1000".to_owned());
        configs.insert("min.insync.replicas".to_owned(), "2".to_owned());
        let t = topics.create("a", 3, configs, false, 0).await.unwrap();
        let id = t.id;
        let again = topics.create("a", 1, BTreeMap::new(), false, 0).await;
        assert!(matches!(again, Err((ErrorCode::TOPIC_ALREADY_EXISTS, _))));
        assert!(matches!(
            topics
                .create("b", MAX_PARTITIONS + 1, BTreeMap::new(), false, 0)
                .await,
            Err((ErrorCode::INVALID_PARTITIONS, _))
        ));
        topics.add_partitions("a", 4, false, 0).await.unwrap();
        assert_eq!(topics.get_by_id(id).unwrap().name, "a");
        drop(t);
        topics.close();
        let again = Arc::new(Topics::load(dir.path(), LogConfig::default(), 0).unwrap());
        let t = again.get("a").unwrap();
        assert_eq!(t.id, id);
        assert_eq!(t.partition_count(), 4);
        assert_eq!(t.overrides()["retention.ms"], "1000");
        drop(t);
        again.delete("a").await.unwrap();
        assert!(!dir.path().join("a-0").exists());
        assert!(again.get_by_id(id).is_none());
    }

    #[tokio::test]
    async fn leftover_folders_do_not_come_back_under_a_new_topic() {
        let dir = tempfile::tempdir().unwrap();
        let topics = Arc::new(Topics::load(dir.path(), LogConfig::default(), 0).unwrap());
        // A folder of an earlier "old" whose deletion did not finish, with a segment in it.
        fs::create_dir_all(dir.path().join("old-0")).unwrap();
        fs::write(dir.path().join("old-0/00000000000000000000.log"), b"stale").unwrap();
        fs::create_dir_all(dir.path().join("old-x")).unwrap();
        topics
            .create("old", 1, BTreeMap::new(), false, 0)
            .await
            .unwrap();
        let log = fs::read(dir.path().join("old-0/00000000000000000000.log")).unwrap_or_default();
        assert!(log.is_empty(), "stale data survived");
        assert!(
            dir.path().join("old-x").exists(),
            "only NAME-<digits> folders are partitions"
        );
    }

    #[tokio::test]
    async fn concurrent_config_changes_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let topics = Arc::new(Topics::load(dir.path(), LogConfig::default(), 0).unwrap());
        topics
            .create("c", 1, BTreeMap::new(), false, 0)
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
