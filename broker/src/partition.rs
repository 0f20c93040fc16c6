//! One partition: its log and its idempotent-producer state, behind one lock.
//!
//! Appends take the write lock only for the in-memory checks and the write to the page
//! cache; fetches take the read lock for positioned reads, so many readers share a partition.

use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::{Bytes, BytesMut};
use strom_protocol::records::{batches, validate_batches, BatchHeader};
use strom_protocol::ErrorCode;
use tracing::{debug, warn};

use crate::log::{FileRegion, LogConfig, LogError, PartitionLog};
use crate::producer_state::{ProducerStates, SequenceCheck};

struct State {
    log: PartitionLog,
    producers: ProducerStates,
}

/// A partition of a topic.
pub(crate) struct Partition {
    pub(crate) index: i32,
    state: RwLock<State>,
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    /// Offset of the first record (of the original batch, for a duplicate).
    pub(crate) base_offset: i64,
    /// Log start offset after the append.
    pub(crate) log_start_offset: i64,
}

/// Offsets of a partition at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Watermarks {
    pub(crate) log_start_offset: i64,
    pub(crate) high_watermark: i64,
}

impl Partition {
    /// Opens (recovering if needed) the log in `dir` and rebuilds producer state from it.
    pub(crate) fn open(
        index: i32,
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<Partition, LogError> {
        let log = PartitionLog::open(dir, config, now_ms)?;
        let producers = rebuild_producers(&log)?;
        Ok(Partition {
            index,
            state: RwLock::new(State { log, producers }),
        })
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Validates and appends a produce payload; offsets are assigned here.
    pub(crate) fn append(&self, payload: Bytes, now_ms: i64) -> Result<Appended, ErrorCode> {
        let headers = validate_batches(&payload).map_err(|e| {
            debug!(partition = self.index, error = %e, "refusing corrupt batch");
            ErrorCode::CORRUPT_MESSAGE
        })?;
        if headers.is_empty() {
            return Err(ErrorCode::INVALID_RECORD);
        }
        let mut state = self.write_state();
        let max = state.log.config().max_message_bytes;
        if headers.iter().any(|h| h.total_len() > max) {
            return Err(ErrorCode::MESSAGE_TOO_LARGE);
        }
        // Kafka clients send one batch per partition; check every batch all the same.
        for header in &headers {
            match state.producers.check(header) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate { first_offset, .. } if headers.len() == 1 => {
                    return Ok(Appended {
                        base_offset: first_offset,
                        log_start_offset: state.log.log_start_offset(),
                    });
                }
                SequenceCheck::Duplicate { .. } => {
                    return Err(ErrorCode::DUPLICATE_SEQUENCE_NUMBER)
                }
                SequenceCheck::Reject(code) => return Err(code),
            }
        }
        let mut data = BytesMut::from(&payload[..]);
        let info = state
            .log
            .append(&mut data, now_ms)
            .map_err(|e| log_error_code(&e, self.index))?;
        let mut offset = info.base_offset;
        for header in &headers {
            state.producers.record(header, offset);
            offset += i64::from(header.last_offset_delta) + 1;
        }
        Ok(Appended {
            base_offset: info.base_offset,
            log_start_offset: state.log.log_start_offset(),
        })
    }

    /// Locates whole batches from `offset` without reading them (the fetch path).
    pub(crate) fn read_region(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<Option<FileRegion>, ErrorCode> {
        self.read_state()
            .log
            .read_region(offset, max_bytes, min_one)
            .map_err(|e| log_error_code(&e, self.index))
    }

    pub(crate) fn watermarks(&self) -> Watermarks {
        let state = self.read_state();
        Watermarks {
            log_start_offset: state.log.log_start_offset(),
            high_watermark: state.log.log_end_offset(),
        }
    }

    pub(crate) fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, ErrorCode> {
        self.read_state()
            .log
            .offset_for_timestamp(timestamp)
            .map_err(|e| log_error_code(&e, self.index))
    }

    pub(crate) fn max_timestamp(&self) -> Result<Option<(i64, i64)>, ErrorCode> {
        self.read_state()
            .log
            .max_timestamp()
            .map_err(|e| log_error_code(&e, self.index))
    }

    pub(crate) fn delete_records_before(&self, offset: i64) -> Result<i64, ErrorCode> {
        let mut state = self.write_state();
        let target = if offset == -1 {
            state.log.log_end_offset()
        } else {
            offset
        };
        if target < 0 || target > state.log.log_end_offset() {
            return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
        }
        state
            .log
            .delete_records_before(target)
            .map_err(|e| log_error_code(&e, self.index))
    }

    pub(crate) fn update_config(&self, config: LogConfig) {
        self.write_state().log.update_config(config);
    }

    /// Runs retention and, for compacted topics, compaction.
    pub(crate) fn maintain(&self, now_ms: i64) {
        let mut state = self.write_state();
        let policy = state.log.config().cleanup_policy;
        if policy.deletes() {
            if let Err(e) = state.log.apply_retention(now_ms) {
                warn!(partition = self.index, error = %e, "retention failed");
            }
        }
        if policy.compacts() {
            if let Err(e) = state.log.compact(now_ms) {
                warn!(partition = self.index, error = %e, "compaction failed");
            }
        }
    }

    pub(crate) fn flush(&self) -> Result<(), LogError> {
        self.write_state().log.flush()
    }

    /// Flushes and marks the log cleanly closed.
    pub(crate) fn close(self) -> Result<(), LogError> {
        let state = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        state.log.close()
    }

    /// Removes the partition's folder.
    pub(crate) fn delete(self) -> Result<(), LogError> {
        let state = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        state.log.delete_dir()
    }
}

/// Kafka's error code for a log failure.
fn log_error_code(e: &LogError, partition: i32) -> ErrorCode {
    match e {
        LogError::OffsetOutOfRange { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
        LogError::MessageTooLarge { .. } => ErrorCode::MESSAGE_TOO_LARGE,
        other => {
            warn!(partition, error = %other, "log operation failed");
            ErrorCode::KAFKA_STORAGE_ERROR
        }
    }
}

/// Replays batch headers of the whole log into producer state.
fn rebuild_producers(log: &PartitionLog) -> Result<ProducerStates, LogError> {
    let mut producers = ProducerStates::default();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read = log.read(offset, 4 << 20, true)?;
        if read.records.is_empty() {
            break;
        }
        let mut next = offset;
        for item in batches(&read.records) {
            let Ok((header, _)) = item else { break };
            record_if_idempotent(&mut producers, &header);
            next = header.next_offset();
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(producers)
}

fn record_if_idempotent(producers: &mut ProducerStates, header: &BatchHeader) {
    if header.producer_id >= 0 {
        producers.record(header, header.base_offset);
    }
}
