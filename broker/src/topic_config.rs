//! Topic configs: the storage keys the log acts on, and the other Kafka topic keys.
//!
//! Tools that create topics (Kafka Streams, Connect, Debezium, admin scripts) routinely set
//! keys such as `min.insync.replicas` or `compression.type`. The keys in [`PASSIVE`] are
//! accepted, validated, stored and described, though a single broker has nothing to do
//! with them yet; unknown keys are refused with an error that names them.

use std::collections::BTreeMap;

use crate::log::LogConfig;

/// How a passive key's value is checked.
#[derive(Clone, Copy)]
enum Kind {
    Bool,
    /// An integer no smaller than this.
    Long(i64),
    OneOf(&'static [&'static str]),
    List,
}

/// Kafka topic keys stored but not acted on, with Kafka's defaults.
const PASSIVE: &[(&str, &str, Kind)] = &[
    (
        "compression.type",
        "producer",
        Kind::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
    ),
    ("min.insync.replicas", "1", Kind::Long(1)),
    ("unclean.leader.election.enable", "false", Kind::Bool),
    (
        "message.timestamp.type",
        "CreateTime",
        Kind::OneOf(&["CreateTime"]),
    ),
    (
        "message.timestamp.difference.max.ms",
        "9223372036854775807",
        Kind::Long(0),
    ),
    (
        "message.timestamp.before.max.ms",
        "9223372036854775807",
        Kind::Long(0),
    ),
    ("message.timestamp.after.max.ms", "3600000", Kind::Long(0)),
    ("message.downconversion.enable", "true", Kind::Bool),
    (
        "max.compaction.lag.ms",
        "9223372036854775807",
        Kind::Long(1),
    ),
    ("segment.index.bytes", "10485760", Kind::Long(4)),
    ("segment.jitter.ms", "0", Kind::Long(0)),
    ("file.delete.delay.ms", "60000", Kind::Long(0)),
    ("preallocate", "false", Kind::Bool),
    ("leader.replication.throttled.replicas", "", Kind::List),
    ("follower.replication.throttled.replicas", "", Kind::List),
    ("local.retention.ms", "-2", Kind::Long(-2)),
    ("local.retention.bytes", "-2", Kind::Long(-2)),
    ("remote.storage.enable", "false", Kind::Bool),
];

fn check_passive(kind: Kind, key: &str, value: &str) -> Result<(), String> {
    let v = value.trim();
    let ok = match kind {
        Kind::Bool => matches!(v, "true" | "false"),
        Kind::Long(min) => v.parse::<i64>().is_ok_and(|n| n >= min),
        Kind::OneOf(allowed) => allowed.contains(&v),
        Kind::List => true,
    };
    if ok {
        return Ok(());
    }
    let expected = match kind {
        Kind::Bool => "true or false".to_owned(),
        Kind::Long(min) => format!("an integer >= {min}"),
        Kind::OneOf(allowed) => format!("one of {}", allowed.join(", ")),
        Kind::List => String::new(),
    };
    Err(format!(
        "invalid value {value:?} for topic config {key}: expected {expected}"
    ))
}

/// The log config for `overrides` over `defaults`, after checking every key.
pub(crate) fn effective(
    defaults: &LogConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<LogConfig, String> {
    let mut storage = Vec::new();
    for (key, value) in overrides {
        match PASSIVE.iter().find(|(k, _, _)| k == key) {
            Some((_, _, kind)) => check_passive(*kind, key, value)?,
            None => storage.push((key.as_str(), value.as_str())),
        }
    }
    defaults.with_overrides(storage).map_err(|e| e.to_string())
}

/// One topic config as DescribeConfigs reports it.
pub(crate) struct Described {
    pub(crate) name: String,
    pub(crate) value: String,
    /// Set by the topic (rather than a default).
    pub(crate) overridden: bool,
}

/// Every topic config with its effective value: storage keys first, then passive ones.
pub(crate) fn describe(config: &LogConfig, overrides: &BTreeMap<String, String>) -> Vec<Described> {
    let storage = config.describe().into_iter().map(|e| Described {
        overridden: overrides.contains_key(e.name),
        name: e.name.to_owned(),
        value: e.value,
    });
    let passive = PASSIVE.iter().map(|(key, default, _)| Described {
        name: (*key).to_owned(),
        value: overrides
            .get(*key)
            .cloned()
            .unwrap_or_else(|| (*default).to_owned()),
        overridden: overrides.contains_key(*key),
    });
    storage.chain(passive).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn passive_keys_are_checked_and_storage_keys_applied() {
        let config = effective(
            &LogConfig::default(),
            &map(&[("min.insync.replicas", "2"), ("retention.ms", "1000")]),
        )
        .unwrap();
        assert_eq!(config.retention_ms, 1000);
        let e =
            effective(&LogConfig::default(), &map(&[("min.insync.replicas", "0")])).unwrap_err();
        assert!(e.contains("min.insync.replicas"), "{e}");
        let e = effective(
            &LogConfig::default(),
            &map(&[("compression.type", "brotli")]),
        )
        .unwrap_err();
        assert!(e.contains("compression.type"), "{e}");
        let e = effective(&LogConfig::default(), &map(&[("no.such.key", "1")])).unwrap_err();
        assert!(e.contains("no.such.key"), "{e}");
    }

    #[test]
    fn describe_lists_defaults_and_overrides() {
        let overrides = map(&[("compression.type", "lz4")]);
        let all = describe(&LogConfig::default(), &overrides);
        let c = all.iter().find(|d| d.name == "compression.type").unwrap();
        assert_eq!((c.value.as_str(), c.overridden), ("lz4", true));
        let m = all
            .iter()
            .find(|d| d.name == "min.insync.replicas")
            .unwrap();
        assert_eq!((m.value.as_str(), m.overridden), ("1", false));
    }
}
