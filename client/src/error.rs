//! The client's error type, [`ClientError`].
//!
//! Every variant carries the context needed to act on it (key, topic, partition, broker
//! error code). Retry loops branch on [`ClientError::is_retriable`], which for broker
//! errors defers to Kafka's own retriable flag ([`ErrorCode::is_retriable`]), never on
//! message text.

use strom_protocol::{ErrorCode, ProtocolError};

/// Errors configuring or using a producer, consumer or admin client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A configuration key has a value that cannot be parsed, is out of range, or conflicts
    /// with another key (then `reason` names the other key).
    #[error("configuration {key}={value}: {reason}")]
    Config {
        /// The key, as the caller spelled it.
        key: String,
        /// The value given (or in effect).
        value: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A configuration key that this client does not know.
    #[error("unknown configuration key {key:?}{}", did_you_mean(.suggestion.as_deref()))]
    UnknownConfig {
        /// The key, as the caller spelled it.
        key: String,
        /// A known key within edit distance 2, if there is one.
        suggestion: Option<String>,
    },
    /// The wire layer failed (connection, framing, encoding, version negotiation).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A connection to a broker could not be opened.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The `host:port` dialed.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A broker answered with a Kafka error code.
    #[error("{context}: {code}")]
    Broker {
        /// The code the broker returned.
        code: ErrorCode,
        /// What was being done, e.g. `produce to orders-3`.
        context: String,
    },
    /// An operation did not finish in time (`request.timeout.ms`, `max.block.ms`,
    /// `delivery.timeout.ms`, ...).
    #[error("{what} timed out after {after_ms} ms")]
    Timeout {
        /// What was waited for, e.g. `metadata for orders`.
        what: String,
        /// How long was waited.
        after_ms: u64,
    },
    /// The metadata names a broker (a partition's leader, say) that its broker list does
    /// not have (yet): a broker being fenced or registering. Retriable once the metadata is
    /// refreshed.
    #[error("broker {node_id} is not in the cluster metadata")]
    UnknownBroker {
        /// The broker's node id.
        node_id: i32,
    },
    /// None of the bootstrap servers could be reached, or the list is empty.
    #[error("no broker reachable (bootstrap.servers={bootstrap:?}): {last}")]
    NoBrokers {
        /// The configured `bootstrap.servers`, comma-separated.
        bootstrap: String,
        /// Why the last one could not be used.
        last: String,
    },
    /// The topic or partition is not in the cluster's metadata.
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// A fetch position is outside the partition's log and `auto.offset.reset` is `none`.
    #[error("offset {offset} is out of range for {topic}-{partition}")]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The position that was asked for.
        offset: i64,
    },
    /// A partition has no committed offset and `auto.offset.reset` is `none`.
    #[error("no committed offset for {topic}-{partition} and auto.offset.reset=none")]
    NoOffsetForPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// A record is larger than `max.request.size` or `buffer.memory` allows.
    #[error("record of {size} bytes exceeds {limit_key}={limit}")]
    RecordTooLarge {
        /// The record's serialized size.
        size: usize,
        /// The key whose limit it exceeds.
        limit_key: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The producer's `buffer.memory` is used up and did not free within `max.block.ms`
    /// (or the caller asked not to wait).
    #[error("producer buffer full (buffer.memory={buffer_memory} bytes)")]
    BufferFull {
        /// The configured `buffer.memory`.
        buffer_memory: usize,
    },
    /// The call is not allowed in the client's current state, e.g. committing a transaction
    /// that was never begun, or committing offsets without a `group.id`.
    #[error("cannot {operation}: {state}")]
    InvalidState {
        /// What was attempted.
        operation: String,
        /// Why the current state forbids it.
        state: String,
    },
    /// The client was shut down; no further calls succeed.
    #[error("client is closed")]
    Closed,
    /// A newer producer with the same `transactional.id` has started (or the coordinator
    /// aborted this producer's transaction for its timeout): this producer can do no more.
    #[error("producer fenced: another producer with transactional.id {transactional_id:?} took over, or its transaction timed out")]
    ProducerFenced {
        /// The transactional id.
        transactional_id: String,
    },
}

impl ClientError {
    /// Whether retrying the same operation can succeed: Kafka's retriable broker codes,
    /// timeouts, a full buffer, and connection-level failures (I/O, closed connections,
    /// unreachable brokers). Configuration and usage errors are never retriable.
    ///
    /// ```
    /// use strom_client::ClientError;
    /// use strom_protocol::ErrorCode;
    /// let leader_moved = ClientError::Broker {
    ///     code: ErrorCode::NOT_LEADER_OR_FOLLOWER,
    ///     context: "produce to orders-0".into(),
    /// };
    /// assert!(leader_moved.is_retriable());
    /// assert!(!ClientError::Closed.is_retriable());
    /// ```
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => code.is_retriable(),
            ClientError::Protocol(e) => protocol_is_retriable(e),
            ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::NoBrokers { .. }
            | ClientError::UnknownBroker { .. }
            | ClientError::BufferFull { .. } => true,
            // Kafka's UNKNOWN_TOPIC_OR_PARTITION is retriable: metadata may still be
            // propagating after a topic is created.
            ClientError::UnknownTopicOrPartition { .. } => {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.is_retriable()
            }
            ClientError::Config { .. }
            | ClientError::UnknownConfig { .. }
            | ClientError::OffsetOutOfRange { .. }
            | ClientError::NoOffsetForPartition { .. }
            | ClientError::RecordTooLarge { .. }
            | ClientError::InvalidState { .. }
            | ClientError::ProducerFenced { .. }
            | ClientError::Closed => false,
        }
    }

    /// The Kafka error code behind this error, if a broker sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. }
            | ClientError::Protocol(ProtocolError::Broker(code)) => Some(*code),
            _ => None,
        }
    }

    /// An [`ClientError::UnknownConfig`] for `key`, suggesting the closest of `known`.
    pub(crate) fn unknown_config(key: &str, known: &[&str]) -> Self {
        ClientError::UnknownConfig {
            key: key.to_owned(),
            suggestion: closest(key, known, 2).map(str::to_owned),
        }
    }
}

fn protocol_is_retriable(e: &ProtocolError) -> bool {
    match e {
        ProtocolError::Io(_) | ProtocolError::ConnectionClosed | ProtocolError::Timeout { .. } => {
            true
        }
        ProtocolError::Broker(code) => code.is_retriable(),
        _ => false,
    }
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean {s:?}?)"))
}

/// The candidate nearest to `word` by edit distance, if within `max_distance`; the first
/// listed wins a tie.
fn closest<'a>(word: &str, candidates: &[&'a str], max_distance: usize) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&word, c), *c))
        .filter(|(d, _)| *d <= max_distance)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance (insertions, deletions, substitutions) between `a` and `b`, by char.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("", ""), 0);
        assert_eq!(levenshtein("acks", ""), 4);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("linger.mss", "linger.ms"), 1);
        assert_eq!(levenshtein("linegr.ms", "linger.ms"), 2);
    }

    #[test]
    fn suggestion_only_when_close() {
        let known = ["linger.ms", "acks", "batch.size"];
        assert_eq!(closest("linger.mss", &known, 2), Some("linger.ms"));
        assert_eq!(closest("ACKS", &known, 2), Some("acks"));
        assert_eq!(closest("frobnicate", &known, 2), None);
        let e = ClientError::unknown_config("batch.sise", &known);
        assert_eq!(
            e.to_string(),
            "unknown configuration key \"batch.sise\" (did you mean \"batch.size\"?)"
        );
        let e = ClientError::unknown_config("frobnicate", &known);
        assert_eq!(e.to_string(), "unknown configuration key \"frobnicate\"");
    }

    #[test]
    fn retriable_follows_codes_and_connection_errors() {
        let broker = |code| ClientError::Broker {
            code,
            context: "test".into(),
        };
        assert!(broker(ErrorCode::LEADER_NOT_AVAILABLE).is_retriable());
        assert!(!broker(ErrorCode::MESSAGE_TOO_LARGE).is_retriable());
        assert!(ClientError::from(ProtocolError::ConnectionClosed).is_retriable());
        assert!(!ClientError::from(ProtocolError::UnknownApiKey(99)).is_retriable());
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(ClientError::from(ProtocolError::Io(io)).is_retriable());
        let timeout = ClientError::Timeout {
            what: "metadata".into(),
            after_ms: 10,
        };
        assert!(timeout.is_retriable());
        let config = ClientError::Config {
            key: "acks".into(),
            value: "2".into(),
            reason: "expected all, -1, 0 or 1".into(),
        };
        assert!(!config.is_retriable());
        assert_eq!(
            config.to_string(),
            "configuration acks=2: expected all, -1, 0 or 1"
        );
        assert_eq!(
            ClientError::from(ProtocolError::Broker(ErrorCode::NOT_COORDINATOR)).code(),
            Some(ErrorCode::NOT_COORDINATOR)
        );
    }
}
