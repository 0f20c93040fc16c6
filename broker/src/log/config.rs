//! [`LogConfig`]: the per-topic storage settings, under Kafka's names and with Kafka's
//! defaults.
//!
//! Topic configs arrive as strings (`CreateTopics`, `AlterConfigs`, the broker's TOML);
//! [`LogConfig::from_kafka_pairs`] and [`LogConfig::with_overrides`] parse them with the
//! same validation Kafka applies, and [`LogConfig::describe`] lists the effective values for
//! `DescribeConfigs`. Keys that belong to other parts of the broker (`compression.type`,
//! `min.insync.replicas`, ...) are not accepted here: filter with [`LogConfig::KEYS`].

use super::error::LogError;

/// What a log does with old data: Kafka's `cleanup.policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// `delete`: drop whole segments past `retention.ms` / `retention.bytes`.
    Delete,
    /// `compact`: keep the latest record per key.
    Compact,
    /// `compact,delete`: both.
    CompactAndDelete,
}

impl CleanupPolicy {
    /// Whether retention deletes old segments under this policy.
    pub fn deletes(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Delete | CleanupPolicy::CompactAndDelete
        )
    }

    /// Whether the cleaner compacts under this policy.
    pub fn compacts(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Compact | CleanupPolicy::CompactAndDelete
        )
    }

    /// The Kafka spelling: `delete`, `compact` or `compact,delete`.
    pub fn as_kafka_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactAndDelete => "compact,delete",
        }
    }

    /// Parses Kafka's comma-separated list (`delete`, `compact`, `compact,delete`, in any
    /// order, spaces allowed).
    pub fn parse(value: &str) -> Option<CleanupPolicy> {
        let (mut delete, mut compact) = (false, false);
        for part in value.split(',').map(str::trim) {
            match part {
                "delete" => delete = true,
                "compact" => compact = true,
                _ => return None,
            }
        }
        match (compact, delete) {
            (true, true) => Some(CleanupPolicy::CompactAndDelete),
            (true, false) => Some(CleanupPolicy::Compact),
            (false, true) => Some(CleanupPolicy::Delete),
            (false, false) => None,
        }
    }
}

/// Storage settings of one partition log. Field names are Kafka's topic config names with
/// `.` replaced by `_`; defaults are Kafka's.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment when the active one would exceed this.
    pub segment_bytes: usize,
    /// `segment.ms`: roll when the active segment is older than this.
    pub segment_ms: i64,
    /// `retention.ms`: delete segments whose newest record is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 is unlimited.
    pub retention_bytes: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long compaction keeps tombstones.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: compact only when this share of the log is uncleaned.
    pub min_cleanable_dirty_ratio: f64,
    /// `max.message.bytes`: the largest batch an append accepts.
    pub max_message_bytes: usize,
    /// `flush.messages`: fsync after this many appended records (`i64::MAX`: never).
    pub flush_messages: i64,
    /// `flush.ms`: fsync when the last flush is older than this (`i64::MAX`: never).
    pub flush_ms: i64,
    /// `index.interval.bytes`: bytes of batches between two index entries.
    pub index_interval_bytes: usize,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: DAY_MS,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.5,
            max_message_bytes: 1_048_588,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            index_interval_bytes: 4096,
        }
    }
}

/// One effective config value, as `DescribeConfigs` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The Kafka config name, e.g. `retention.ms`.
    pub name: &'static str,
    /// The value in Kafka's string form.
    pub value: String,
    /// Whether the value equals Kafka's default (compared by value, not by source).
    pub is_default: bool,
}

impl LogConfig {
    /// The Kafka config names this type understands.
    pub const KEYS: [&'static str; 12] = [
        "segment.bytes",
        "segment.ms",
        "retention.ms",
        "retention.bytes",
        "cleanup.policy",
        "delete.retention.ms",
        "min.compaction.lag.ms",
        "min.cleanable.dirty.ratio",
        "max.message.bytes",
        "flush.messages",
        "flush.ms",
        "index.interval.bytes",
    ];

    /// Kafka's defaults overridden by `pairs` of (Kafka name, string value).
    ///
    /// # Errors
    /// [`LogError::InvalidConfig`] naming the key and value for a value that does not
    /// parse or is out of Kafka's range; [`LogError::UnknownConfig`] for a key not in
    /// [`LogConfig::KEYS`].
    pub fn from_kafka_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<LogConfig, LogError> {
        LogConfig::default().with_overrides(pairs)
    }

    /// A copy of `self` with `pairs` applied on top (topic overrides over broker defaults).
    ///
    /// # Errors
    /// As [`LogConfig::from_kafka_pairs`].
    pub fn with_overrides<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<LogConfig, LogError> {
        let mut config = self.clone();
        for (key, value) in pairs {
            config.set(key, value)?;
        }
        Ok(config)
    }

    /// Sets one config from its Kafka name and string value.
    ///
    /// # Errors
    /// As [`LogConfig::from_kafka_pairs`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), LogError> {
        let v = value.trim();
        match key {
            "segment.bytes" => self.segment_bytes = parse_usize(key, v, 14, i32::MAX as usize)?,
            "segment.ms" => self.segment_ms = parse_i64(key, v, 1)?,
            "retention.ms" => self.retention_ms = parse_i64(key, v, -1)?,
            "retention.bytes" => self.retention_bytes = parse_i64(key, v, i64::MIN)?,
            "cleanup.policy" => {
                self.cleanup_policy = CleanupPolicy::parse(v).ok_or_else(|| {
                    LogError::config(key, value, "expected delete, compact or compact,delete")
                })?
            }
            "delete.retention.ms" => self.delete_retention_ms = parse_i64(key, v, 0)?,
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = parse_i64(key, v, 0)?,
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio = parse_ratio(key, v)?,
            "max.message.bytes" => {
                self.max_message_bytes = parse_usize(key, v, 0, i32::MAX as usize)?
            }
            "flush.messages" => self.flush_messages = parse_i64(key, v, 1)?,
            "flush.ms" => self.flush_ms = parse_i64(key, v, 0)?,
            "index.interval.bytes" => {
                self.index_interval_bytes = parse_usize(key, v, 0, i32::MAX as usize)?
            }
            _ => {
                return Err(LogError::UnknownConfig {
                    key: key.to_owned(),
                })
            }
        }
        Ok(())
    }

    /// Every config with its effective value, in [`LogConfig::KEYS`] order.
    pub fn describe(&self) -> Vec<ConfigEntry> {
        let default = LogConfig::default();
        let mine = self.values();
        let theirs = default.values();
        LogConfig::KEYS
            .iter()
            .zip(mine.into_iter().zip(theirs))
            .map(|(name, (value, default_value))| ConfigEntry {
                name,
                is_default: value == default_value,
                value,
            })
            .collect()
    }

    fn values(&self) -> [String; 12] {
        [
            self.segment_bytes.to_string(),
            self.segment_ms.to_string(),
            self.retention_ms.to_string(),
            self.retention_bytes.to_string(),
            self.cleanup_policy.as_kafka_str().to_owned(),
            self.delete_retention_ms.to_string(),
            self.min_compaction_lag_ms.to_string(),
            self.min_cleanable_dirty_ratio.to_string(),
            self.max_message_bytes.to_string(),
            self.flush_messages.to_string(),
            self.flush_ms.to_string(),
            self.index_interval_bytes.to_string(),
        ]
    }
}

fn parse_i64(key: &str, value: &str, min: i64) -> Result<i64, LogError> {
    let n: i64 = value
        .parse()
        .map_err(|_| LogError::config(key, value, "expected an integer"))?;
    if n < min {
        return Err(LogError::config(
            key,
            value,
            format!("must be at least {min}"),
        ));
    }
    Ok(n)
}

fn parse_usize(key: &str, value: &str, min: usize, max: usize) -> Result<usize, LogError> {
    let n: i64 = value
        .parse()
        .map_err(|_| LogError::config(key, value, "expected an integer"))?;
    match usize::try_from(n) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(LogError::config(
            key,
            value,
            format!("must be between {min} and {max}"),
        )),
    }
}

fn parse_ratio(key: &str, value: &str) -> Result<f64, LogError> {
    let r: f64 = value
        .parse()
        .map_err(|_| LogError::config(key, value, "expected a number"))?;
    if !(0.0..=1.0).contains(&r) {
        return Err(LogError::config(key, value, "must be between 0 and 1"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_pairs() {
        let config = LogConfig::from_kafka_pairs([
            ("segment.bytes", "1024"),
            ("retention.ms", "-1"),
            ("cleanup.policy", "delete, compact"),
            ("min.cleanable.dirty.ratio", "0.1"),
        ])
        .unwrap();
        assert_eq!(config.segment_bytes, 1024);
        assert_eq!(config.retention_ms, -1);
        assert_eq!(config.cleanup_policy, CleanupPolicy::CompactAndDelete);
        assert_eq!(config.min_cleanable_dirty_ratio, 0.1);
        let described = config.describe();
        let retention = described.iter().find(|e| e.name == "retention.ms").unwrap();
        assert_eq!(
            (retention.value.as_str(), retention.is_default),
            ("-1", false)
        );
        let flush = described.iter().find(|e| e.name == "flush.ms").unwrap();
        assert!(flush.is_default);
        assert_eq!(described.len(), LogConfig::KEYS.len());
    }

    #[test]
    fn rejects_bad_values_naming_the_key() {
        let err = LogConfig::from_kafka_pairs([("segment.bytes", "abc")]).unwrap_err();
        assert!(
            matches!(&err, LogError::InvalidConfig { key, value, .. } if key == "segment.bytes" && value == "abc")
        );
        assert!(LogConfig::from_kafka_pairs([("retention.ms", "-2")]).is_err());
        assert!(LogConfig::from_kafka_pairs([("cleanup.policy", "shred")]).is_err());
        assert!(LogConfig::from_kafka_pairs([("min.cleanable.dirty.ratio", "1.5")]).is_err());
        assert!(matches!(
            LogConfig::from_kafka_pairs([("compression.type", "lz4")]),
            Err(LogError::UnknownConfig { .. })
        ));
    }
}
