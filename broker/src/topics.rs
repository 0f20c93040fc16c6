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
//! A topic file is written (to a temporary name, then renamed) before its partition folders
//! are created, so a crash between the two leaves a topic whose empty partitions are
//! created again on the next start.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use strom_protocol::ErrorCode;
use tracing::{info, warn};
use uuid::Uuid;

use crate::error::BrokerError;
use crate::log::LogConfig;
use crate::partition::Partition;

/// Folder under the data dir holding one file per topic.
const TOPICS_DIR: &str = "__strom_topics";

/// Longest legal topic name (Kafka's limit).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// A topic and its partitions.
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    pub(crate) overrides: RwLock<BTreeMap<String, String>>,
    pub(crate) partitions: RwLock<Vec<Arc<Partition>>>,
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
}

#[derive(Serialize, Deserialize)]
struct TopicFile {
    id: String,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// All topics, by name and by id.
pub(crate) struct Topics {
    data_dir: PathBuf,
    defaults: LogConfig,
    by_name: RwLock<HashMap<String, Arc<Topic>>>,
}

/// Checks a topic name as Kafka does.
pub(crate) fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
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
            by_name: RwLock::new(HashMap::new()),
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
            let id = Uuid::parse_str(&file.id).map_err(|e| BrokerError::Metadata {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let topic = topics.open_topic(&name, id, file.partitions, file.configs, now_ms)?;
            info!(topic = %name, partitions = file.partitions, "loaded topic");
            topics.write_map().insert(name, Arc::new(topic));
        }
        Ok(topics)
    }

    fn write_map(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Topic>>> {
        self.by_name.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read_map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Topic>>> {
        self.by_name.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The effective log config for a topic with these overrides.
    pub(crate) fn log_config(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, crate::log::LogError> {
        self.defaults
            .with_overrides(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Broker-level defaults of topic configs.
    pub(crate) fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    fn open_topic(
        &self,
        name: &str,
        id: Uuid,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<Topic, BrokerError> {
        let config = self.log_config(&overrides)?;
        let mut opened = Vec::new();
        for index in 0..partitions {
            let dir = self.data_dir.join(format!("{name}-{index}"));
            opened.push(Arc::new(Partition::open(
                index,
                &dir,
                config.clone(),
                now_ms,
            )?));
        }
        Ok(Topic {
            name: name.to_owned(),
            id,
            overrides: RwLock::new(overrides),
            partitions: RwLock::new(opened),
        })
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_map().get(name).cloned()
    }

    pub(crate) fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read_map().values().find(|t| t.id == id).cloned()
    }

    /// All topics, sorted by name.
    pub(crate) fn all(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.read_map().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Creates a topic; `validate_only` checks without creating.
    pub(crate) fn create(
        &self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
        now_ms: i64,
    ) -> Result<Arc<Topic>, (ErrorCode, String)> {
        validate_topic_name(name).map_err(|m| (ErrorCode::INVALID_TOPIC_EXCEPTION, m))?;
        if partitions < 1 {
            return Err((
                ErrorCode::INVALID_PARTITIONS,
                format!("{partitions} partitions requested; at least 1 is needed"),
            ));
        }
        self.log_config(&overrides)
            .map_err(|e| (ErrorCode::INVALID_CONFIG, e.to_string()))?;
        let mut map = self.write_map();
        if map.contains_key(name) {
            return Err((
                ErrorCode::TOPIC_ALREADY_EXISTS,
                format!("topic '{name}' already exists"),
            ));
        }
        let id = Uuid::new_v4();
        if validate_only {
            return Ok(Arc::new(Topic {
                name: name.to_owned(),
                id,
                overrides: RwLock::new(overrides),
                partitions: RwLock::new(Vec::new()),
            }));
        }
        let internal = |e: BrokerError| (ErrorCode::KAFKA_STORAGE_ERROR, e.to_string());
        self.write_topic_file(name, id, partitions, &overrides)
            .map_err(internal)?;
        let topic = Arc::new(
            self.open_topic(name, id, partitions, overrides, now_ms)
                .map_err(internal)?,
        );
        map.insert(name.to_owned(), topic.clone());
        info!(topic = %name, partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its data.
    pub(crate) fn delete(&self, name: &str) -> Result<Uuid, ErrorCode> {
        let Some(topic) = self.write_map().remove(name) else {
            return Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
        };
        let path = self.topic_file(name);
        if let Err(e) = fs::remove_file(&path) {
            warn!(path = %path.display(), error = %e, "removing topic file");
        }
        let partitions =
            std::mem::take(&mut *topic.partitions.write().unwrap_or_else(|p| p.into_inner()));
        for partition in partitions {
            match Arc::try_unwrap(partition) {
                Ok(p) => {
                    if let Err(e) = p.delete() {
                        warn!(topic = %name, error = %e, "deleting partition data");
                    }
                }
                Err(p) => {
                    // A request still holds it; remove the folder directly.
                    let dir = self.data_dir.join(format!("{name}-{}", p.index));
                    if let Err(e) = fs::remove_dir_all(&dir) {
                        warn!(dir = %dir.display(), error = %e, "deleting partition folder");
                    }
                }
            }
        }
        info!(topic = %name, "deleted topic");
        Ok(topic.id)
    }

    /// Grows a topic to `count` partitions.
    pub(crate) fn add_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
        now_ms: i64,
    ) -> Result<(), (ErrorCode, String)> {
        let topic = self.get(name).ok_or((
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        ))?;
        let mut partitions = topic.partitions.write().unwrap_or_else(|p| p.into_inner());
        let current = partitions.len() as i32;
        if count <= current {
            return Err((
                ErrorCode::INVALID_PARTITIONS,
                format!("topic '{name}' has {current} partitions; {count} would not add any"),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let overrides = topic.overrides();
        let internal = |e: String| (ErrorCode::KAFKA_STORAGE_ERROR, e);
        self.write_topic_file(name, topic.id, count, &overrides)
            .map_err(|e| internal(e.to_string()))?;
        let config = self
            .log_config(&overrides)
            .map_err(|e| internal(e.to_string()))?;
        for index in current..count {
            let dir = self.data_dir.join(format!("{name}-{index}"));
            let partition = Partition::open(index, &dir, config.clone(), now_ms)
                .map_err(|e| internal(e.to_string()))?;
            partitions.push(Arc::new(partition));
        }
        info!(topic = %name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides and applies them to its partitions.
    pub(crate) fn set_overrides(
        &self,
        topic: &Topic,
        overrides: BTreeMap<String, String>,
    ) -> Result<(), (ErrorCode, String)> {
        let config = self
            .log_config(&overrides)
            .map_err(|e| (ErrorCode::INVALID_CONFIG, e.to_string()))?;
        self.write_topic_file(&topic.name, topic.id, topic.partition_count(), &overrides)
            .map_err(|e| (ErrorCode::KAFKA_STORAGE_ERROR, e.to_string()))?;
        for partition in topic.partitions() {
            partition.update_config(config.clone());
        }
        *topic.overrides.write().unwrap_or_else(|p| p.into_inner()) = overrides;
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
        write_atomically(&self.topic_file(name), text.as_bytes())
    }

    /// Closes every partition cleanly.
    pub(crate) fn close(&self) {
        for (name, topic) in self.write_map().drain() {
            let partitions =
                std::mem::take(&mut *topic.partitions.write().unwrap_or_else(|p| p.into_inner()));
            for partition in partitions {
                match Arc::try_unwrap(partition) {
                    Ok(p) => {
                        if let Err(e) = p.close() {
                            warn!(topic = %name, error = %e, "closing partition");
                        }
                    }
                    Err(p) => {
                        if let Err(e) = p.flush() {
                            warn!(topic = %name, error = %e, "flushing partition");
                        }
                    }
                }
            }
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, fsyncing the file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BrokerError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| BrokerError::io(format!("writing {}", path.display()), e))
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

    #[test]
    fn topics_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let topics = Topics::load(dir.path(), LogConfig::default(), 0).unwrap();
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_owned(), "1000".to_owned());
        let t = topics.create("a", 3, configs, false, 0).unwrap();
        let id = t.id;
        let again = topics.create("a", 1, BTreeMap::new(), false, 0);
        assert!(matches!(again, Err((ErrorCode::TOPIC_ALREADY_EXISTS, _))));
        topics.add_partitions("a", 4, false, 0).unwrap();
        drop(t);
        topics.close();
        let again = Topics::load(dir.path(), LogConfig::default(), 0).unwrap();
        let t = again.get("a").unwrap();
        assert_eq!(t.id, id);
        assert_eq!(t.partition_count(), 4);
        assert_eq!(t.overrides()["retention.ms"], "1000");
        drop(t);
        again.delete("a").unwrap();
        assert!(!dir.path().join("a-0").exists());
    }
}
