//! Deleting old data from the front of the log: `DeleteRecords` and retention.
//!
//! Only whole closed segments are deleted; the active segment stays even when all of its
//! data is below the log start offset (it goes once it has rolled). Deleting a segment
//! advances the log start offset to the next segment's base offset. A log start offset
//! inside a segment (after `DeleteRecords`) is kept in `log-start-offset-checkpoint`,
//! written before any file is removed, so a crash in between only leaves files that the
//! next `open` or retention pass deletes.
//!
//! Retention under `cleanup.policy` `delete` (or `compact,delete`), oldest segment first,
//! stopping at the first one that is kept, as Kafka does:
//! - by time: a segment whose largest timestamp (its file's modification time when its
//!   batches carry no timestamps) is more than `retention.ms` before `now_ms`;
//! - by size: while the log would still be at least `retention.bytes` without the
//!   segment.

use super::checkpoint::{self, LOG_START_OFFSET};
use super::error::LogError;
use super::PartitionLog;

impl PartitionLog {
    /// `DeleteRecords`: moves the log start offset to `offset` (-1: the log end offset)
    /// and deletes the closed segments entirely below it. Returns the new log start
    /// offset; an `offset` at or below the current one changes nothing.
    ///
    /// # Errors
    /// [`LogError::OffsetOutOfRange`] past the log end offset; I/O errors.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        let leo = self.log_end_offset();
        let target = if offset == -1 { leo } else { offset };
        if target < 0 || target > leo {
            return Err(LogError::OffsetOutOfRange {
                dir: self.dir.clone(),
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: leo,
            });
        }
        if target <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        checkpoint::write(&self.dir, LOG_START_OFFSET, target)?;
        self.log_start_offset = target;
        self.first_dirty_offset = self.first_dirty_offset.max(target);
        self.delete_segments_below_log_start()?;
        tracing::info!(dir = %self.dir.display(), log_start_offset = target, "deleted records");
        Ok(target)
    }

    /// Applies `retention.ms` and `retention.bytes` (delete policies only) and removes
    /// segments below the log start offset. Returns how many segments were deleted.
    ///
    /// # Errors
    /// I/O errors.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let mut deleted = self.delete_segments_below_log_start()?;
        if !self.config.cleanup_policy.deletes() {
            return Ok(deleted);
        }
        let retention_ms = self.config.retention_ms;
        if retention_ms >= 0 {
            while let Some((_, first)) = self.segments.first_key_value() {
                let age = now_ms.saturating_sub(first.largest_timestamp_for_retention());
                if age <= retention_ms {
                    break;
                }
                self.delete_first_segment("retention.ms")?;
                deleted += 1;
            }
        }
        let retention_bytes = self.config.retention_bytes;
        if retention_bytes >= 0 {
            let mut excess = i64::try_from(self.size_bytes()).unwrap_or(i64::MAX) - retention_bytes;
            while let Some((_, first)) = self.segments.first_key_value() {
                let size = i64::try_from(first.size).unwrap_or(i64::MAX);
                if excess < size {
                    break;
                }
                excess -= size;
                self.delete_first_segment("retention.bytes")?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Deletes closed segments whose data lies entirely below the log start offset.
    pub(crate) fn delete_segments_below_log_start(&mut self) -> Result<usize, LogError> {
        let mut deleted = 0;
        // A closed segment covers [its base, the next segment's base): offsets compaction
        // removed from its end still belong to it.
        while let Some(next_base) = self
            .segments
            .keys()
            .nth(1)
            .copied()
            .or((!self.segments.is_empty()).then_some(self.active.base_offset))
        {
            if next_base > self.log_start_offset {
                break;
            }
            self.delete_first_segment("log start offset")?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Deletes the oldest closed segment and advances the log start offset past it.
    fn delete_first_segment(&mut self, reason: &'static str) -> Result<(), LogError> {
        let Some((base, segment)) = self.segments.pop_first() else {
            return Ok(());
        };
        let size = segment.size;
        segment.delete()?;
        let next_base = self
            .segments
            .first_key_value()
            .map_or(self.active.base_offset, |(b, _)| *b);
        self.log_start_offset = self.log_start_offset.max(next_base);
        self.first_dirty_offset = self.first_dirty_offset.max(self.log_start_offset);
        tracing::info!(dir = %self.dir.display(), segment = base, size, reason, log_start_offset = self.log_start_offset, "deleted segment");
        Ok(())
    }
}
