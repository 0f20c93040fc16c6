//! [`LogError`]: everything that can go wrong in a partition log, with the directory,
//! segment and offset it happened at.
//!
//! The broker maps variants to Kafka error codes: [`LogError::OffsetOutOfRange`] to
//! `OFFSET_OUT_OF_RANGE`, [`LogError::MessageTooLarge`] to `MESSAGE_TOO_LARGE`,
//! [`LogError::AppendTooLarge`] to `RECORD_LIST_TOO_LARGE`, [`LogError::InvalidRecords`] to
//! `CORRUPT_MESSAGE`, [`LogError::InvalidConfig`] to `INVALID_CONFIG`, and I/O failures to
//! `KAFKA_STORAGE_ERROR`.

use std::path::PathBuf;

use strom_protocol::records::RecordsError;

/// An error from a [`PartitionLog`](super::PartitionLog) operation.
#[derive(thiserror::Error, Debug)]
pub enum LogError {
    /// A file system operation failed.
    #[error("I/O error in log {dir}: {action} {path}: {source}")]
    Io {
        /// The partition directory.
        dir: PathBuf,
        /// The file (or directory) the operation was on.
        path: PathBuf,
        /// What was being done ("open", "read", "write", "fsync", ...).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A fetch or a delete asked for an offset outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}] in log {dir}")]
    OffsetOutOfRange {
        /// The partition directory.
        dir: PathBuf,
        /// The offset asked for.
        offset: i64,
        /// The first offset the log holds.
        log_start_offset: i64,
        /// The offset the next appended record gets.
        log_end_offset: i64,
    },
    /// One batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes at offset {offset} exceeds max.message.bytes {max} in log {dir}")]
    MessageTooLarge {
        /// The partition directory.
        dir: PathBuf,
        /// The offset the batch would have got.
        offset: i64,
        /// Size of the batch in bytes.
        size: usize,
        /// The configured `max.message.bytes`.
        max: usize,
    },
    /// One append is larger than a whole segment (`segment.bytes`).
    #[error("append of {size} bytes exceeds segment.bytes {segment_bytes} in log {dir}")]
    AppendTooLarge {
        /// The partition directory.
        dir: PathBuf,
        /// Size of the append in bytes.
        size: usize,
        /// The configured `segment.bytes`.
        segment_bytes: usize,
    },
    /// The bytes handed to `append` are not a sequence of whole, well-formed batches.
    #[error("invalid records appended to log {dir}: {reason}")]
    InvalidRecords {
        /// The partition directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A batch stored in a segment is not what the log wrote (found while serving it).
    #[error("corrupt data in segment {segment} at position {position} of log {dir}: {reason}")]
    Corrupt {
        /// The partition directory.
        dir: PathBuf,
        /// Base offset of the segment.
        segment: i64,
        /// Byte position of the bad bytes in the segment file.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// Rebuilding a batch during compaction failed.
    #[error("rebuilding batch at offset {offset} in segment {segment} of log {dir}: {source}")]
    Rebuild {
        /// The partition directory.
        dir: PathBuf,
        /// Base offset of the segment.
        segment: i64,
        /// Base offset of the batch being rebuilt.
        offset: i64,
        /// What the records layer reported.
        #[source]
        source: RecordsError,
    },
    /// A topic config value is invalid.
    #[error("invalid value {value:?} for config {key}: {reason}")]
    InvalidConfig {
        /// The Kafka config name, e.g. `segment.bytes`.
        key: String,
        /// The rejected value.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A topic config name is not one this log understands.
    #[error("unknown log config {key}")]
    UnknownConfig {
        /// The config name.
        key: String,
    },
}

impl LogError {
    /// An [`LogError::Io`] for `action` on `path` in `dir`.
    pub(crate) fn io(
        dir: impl Into<PathBuf>,
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        LogError::Io {
            dir: dir.into(),
            path: path.into(),
            action,
            source,
        }
    }

    /// An [`LogError::InvalidConfig`].
    pub(crate) fn config(key: &str, value: &str, reason: impl Into<String>) -> Self {
        LogError::InvalidConfig {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}
