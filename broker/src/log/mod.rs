//! The durable partition log: Kafka's on-disk layout and semantics for one partition.
//!
//! ```text
//! data/orders-0/
//!   00000000000000000000.log         record batches exactly as produced and served
//!   00000000000000000000.index       sparse offset index  (relative offset u32, position u32)
//!   00000000000000000000.timeindex   sparse time index    (timestamp i64, relative offset u32)
//!   00000000000000004711.log ...     next segment, named by its base offset (20 digits)
//!   log-start-offset-checkpoint      log start offset after DeleteRecords
//!   recovery-point-offset-checkpoint offsets below it were fsynced
//!   cleaner-offset-checkpoint        first offset compaction has not seen yet
//!   clean-shutdown                   present only between close() and the next open()
//! ```
//!
//! Data flow: `append` gives each batch its offsets by rewriting the base offset in place
//! (the CRC does not cover it), rolls to a new segment when the active one is full or too
//! old, writes all batches with one positioned write and adds index entries. `read` finds
//! the segment in a `BTreeMap` by base offset, the nearest earlier batch in the offset
//! index, walks batch headers forward to the batch holding the offset, and returns whole
//! batches as `Bytes` without re-encoding them.
//!
//! Invariants:
//! - the last segment is the active one, the only one appended to; closed segments are
//!   immutable except for compaction (which keeps offsets) and deletion from the front;
//! - base offsets of batches strictly increase across the log; offsets may have gaps
//!   (compaction) but never go back;
//! - `log_start_offset <= log_end_offset`; `log_end_offset` is the next offset of the
//!   active segment (its base offset while it is empty).
//!
//! Durability: data is written to the OS on every append, so a process kill loses
//! nothing appended; it is fsynced only when `flush.messages` / `flush.ms` say so or on
//! [`PartitionLog::flush`] / [`PartitionLog::close`], so a power loss may lose the unflushed
//! tail. Recovery (see [`recovery`]) scans every segment that may hold offsets at or past
//! the recovery point, checking CRCs and truncating torn writes. The broker should call
//! `flush` now and then (or set `flush.ms`) to bound that scan.
//!
//! Rolling: before an append that would make the active segment exceed `segment.bytes`,
//! when the active segment is older than `segment.ms` (counted from its creation, or
//! after a restart from its first batch's max timestamp, as Kafka does), or when an offset
//! would no longer fit the indexes' 32-bit relative offsets.
//!
//! Every call is quick (bounded by the bytes it touches) except `flush`, `close`,
//! `compact` and `open` after an unclean shutdown.

mod checkpoint;
pub mod cleaner;
pub mod config;
pub mod error;
mod index_file;
mod offset_index;
mod rebuild;
pub mod recovery;
pub mod retention;
mod scan;
mod segment;
mod time_index;
mod timestamp;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use strom_protocol::records::{batches, marker_of, set_base_offset, BatchHeader, Marker};

pub use cleaner::CompactionStats;
pub use config::{CleanupPolicy, ConfigEntry, LogConfig};
pub use error::LogError;

use scan::{BatchScanner, Step};
pub use segment::FileRegion;
use segment::LogSegment;

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record.
    pub base_offset: i64,
    /// Offset given to the last record.
    pub last_offset: i64,
    /// The broker's append time for `LogAppendTime` topics; always -1 here (`CreateTime`).
    pub log_append_time_ms: i64,
    /// Largest batch max timestamp among the appended batches.
    pub max_timestamp: i64,
    /// Base offset of the first appended batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: i64,
}

/// Closed segments to fsync before the recovery point can move to `up_to`.
#[derive(Debug)]
pub struct RolledSegments {
    dir: PathBuf,
    files: Vec<(PathBuf, std::sync::Arc<std::fs::File>)>,
    /// The recovery point once they are on disk.
    pub up_to: i64,
}

impl RolledSegments {
    /// Fsyncs the segments' `.log` files (their indexes are checked, and rebuilt if need
    /// be, when a log is opened).
    ///
    /// # Errors
    /// The first fsync that fails.
    pub fn sync(&self) -> Result<(), LogError> {
        for (path, file) in &self.files {
            file.sync_data()
                .map_err(|e| LogError::io(&self.dir, path, "fsync", e))?;
        }
        Ok(())
    }
}

/// What a read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole record batches, the first one holding the offset asked for (it may start
    /// before it). Empty at the log end or when the first batch exceeds `max_bytes` and
    /// `min_one` was not set.
    pub records: Bytes,
    /// The log start offset at the time of the read.
    pub log_start_offset: i64,
    /// The log end offset at the time of the read.
    pub log_end_offset: i64,
}

/// One partition's log: a directory of segments. Synchronous and `Send`; the broker
/// wraps it in a lock.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Closed segments by base offset.
    segments: BTreeMap<i64, LogSegment>,
    /// The segment appends go to; its base offset is above every closed one.
    active: LogSegment,
    log_start_offset: i64,
    recovery_point: i64,
    /// The recovery point in `recovery-point-offset-checkpoint`.
    recovery_point_on_disk: i64,
    first_dirty_offset: i64,
    unflushed_messages: i64,
    last_flush_ms: i64,
}

impl PartitionLog {
    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The first offset the log holds (`LogStartOffset`).
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The offset the next appended record gets (`LogEndOffset`).
    pub fn log_end_offset(&self) -> i64 {
        self.active.next_offset
    }

    /// Offsets below this are fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Total bytes of all `.log` files.
    pub fn size_bytes(&self) -> u64 {
        self.all_segments().map(|s| s.size).sum()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.segments.len() + 1
    }

    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.all_segments().map(|s| s.base_offset).collect()
    }

    /// The effective config.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the config; takes effect from the next call (existing segments keep their
    /// size and index spacing).
    pub fn update_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// Appends already-validated batches (one produce partition payload), giving them
    /// offsets from the log end offset by rewriting their base offsets in `records`.
    ///
    /// # Errors
    /// [`LogError::MessageTooLarge`] for a batch over `max.message.bytes`,
    /// [`LogError::AppendTooLarge`] for an append over `segment.bytes`,
    /// [`LogError::InvalidRecords`] for bytes that are not whole batches, and I/O errors
    /// (after which the log is as before the call).
    pub fn append(&mut self, records: &mut [u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let mut headers = self.parse_append(records)?;
        let count: i64 = headers
            .iter()
            .map(|(h, _)| i64::from(h.last_offset_delta) + 1)
            .sum();
        self.maybe_roll(records.len(), count, now_ms)?;
        let base_offset = self.log_end_offset();
        let mut next = base_offset;
        let (mut max_timestamp, mut offset_of_max_timestamp) = (i64::MIN, base_offset);
        for (header, range) in &mut headers {
            if let Some(batch) = records.get_mut(range.clone()) {
                set_base_offset(batch, next);
            }
            header.base_offset = next;
            if header.max_timestamp > max_timestamp {
                (max_timestamp, offset_of_max_timestamp) = (header.max_timestamp, next);
            }
            next = header.next_offset();
        }
        self.active
            .append(records, &headers, self.config.index_interval_bytes)?;
        self.unflushed_messages += count;
        self.maybe_flush(now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time_ms: -1,
            max_timestamp,
            offset_of_max_timestamp,
        })
    }

    /// Appends batches that carry their offsets already: a follower copying its leader's
    /// log, where compaction may have left gaps between batches. Each batch must start at
    /// or after the log end and after the one before it; their base offsets are kept.
    ///
    /// # Errors
    /// As [`PartitionLog::append`], and [`LogError::InvalidRecords`] for a batch that
    /// starts below the log end or the batch before it, or a gap too wide for one segment.
    pub fn append_with_offsets(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let headers = self.parse_append(records)?;
        let dir = self.dir.clone();
        let invalid = |reason: String| LogError::InvalidRecords {
            dir: dir.clone(),
            reason,
        };
        let mut expected = self.log_end_offset();
        let (mut max_timestamp, mut offset_of_max_timestamp) = (i64::MIN, expected);
        for (header, _) in &headers {
            if header.base_offset < expected {
                return Err(invalid(format!(
                    "a batch at offset {} overlaps what is before it (up to {expected})",
                    header.base_offset
                )));
            }
            if header.max_timestamp > max_timestamp {
                (max_timestamp, offset_of_max_timestamp) =
                    (header.max_timestamp, header.base_offset);
            }
            expected = header.next_offset();
        }
        let base_offset = headers.first().map_or(expected, |(h, _)| h.base_offset);
        self.maybe_roll(records.len(), expected - self.log_end_offset(), now_ms)?;
        if expected - 1 - self.active.base_offset > i64::from(i32::MAX) {
            return Err(invalid(format!(
                "offsets {base_offset}..{expected} are too far past the segment at {}",
                self.active.base_offset
            )));
        }
        self.active
            .append(records, &headers, self.config.index_interval_bytes)?;
        let count: i64 = headers
            .iter()
            .map(|(h, _)| i64::from(h.last_offset_delta) + 1)
            .sum();
        self.unflushed_messages += count;
        self.maybe_flush(now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset: expected - 1,
            log_append_time_ms: -1,
            max_timestamp,
            offset_of_max_timestamp,
        })
    }

    fn parse_append(
        &self,
        records: &[u8],
    ) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, LogError> {
        let invalid = |reason: String| LogError::InvalidRecords {
            dir: self.dir.clone(),
            reason,
        };
        if records.len() > self.config.segment_bytes {
            return Err(LogError::AppendTooLarge {
                dir: self.dir.clone(),
                size: records.len(),
                segment_bytes: self.config.segment_bytes,
            });
        }
        let mut headers = Vec::new();
        let mut iter = batches(records);
        for item in iter.by_ref() {
            let (header, range) = item.map_err(|e| invalid(e.to_string()))?;
            if header.total_len() > self.config.max_message_bytes {
                return Err(LogError::MessageTooLarge {
                    dir: self.dir.clone(),
                    offset: self.log_end_offset(),
                    size: header.total_len(),
                    max: self.config.max_message_bytes,
                });
            }
            if header.last_offset_delta < 0 {
                return Err(invalid(format!(
                    "negative last offset delta {}",
                    header.last_offset_delta
                )));
            }
            headers.push((header, range));
        }
        if iter.partial_tail() || headers.is_empty() {
            return Err(invalid("not a sequence of whole batches".to_owned()));
        }
        Ok(headers)
    }

    fn maybe_roll(&mut self, size: usize, count: i64, now_ms: i64) -> Result<(), LogError> {
        let active = &self.active;
        if active.size == 0 {
            return Ok(());
        }
        let full = active.size + size as u64 > self.config.segment_bytes as u64;
        let old = now_ms.saturating_sub(active.created_ms) > self.config.segment_ms;
        let last = self.log_end_offset() + count - 1;
        let overflow = last - active.base_offset > i64::from(i32::MAX);
        if full || old || overflow {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Closes the active segment and starts a new one at the log end offset. Does nothing
    /// while the active segment is empty.
    ///
    /// # Errors
    /// I/O errors creating the new segment's files.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        if self.active.size == 0 {
            return Ok(());
        }
        self.active.seal()?;
        let next = LogSegment::create(&self.dir, self.log_end_offset(), now_ms)?;
        let old = std::mem::replace(&mut self.active, next);
        tracing::debug!(dir = %self.dir.display(), segment = old.base_offset, next = self.active.base_offset, "rolled segment");
        self.segments.insert(old.base_offset, old);
        Ok(())
    }

    fn maybe_flush(&mut self, now_ms: i64) -> Result<(), LogError> {
        let by_count = self.unflushed_messages >= self.config.flush_messages;
        let by_time = now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms;
        if by_count || by_time {
            self.flush()?;
            self.last_flush_ms = now_ms;
        }
        Ok(())
    }

    /// Reads whole batches starting with the one holding `offset`, up to `max_bytes`; with
    /// `min_one` the first batch is returned even if larger (KIP-74). Data comes from one
    /// segment.
    ///
    /// # Errors
    /// [`LogError::OffsetOutOfRange`] outside `[log_start_offset, log_end_offset]`; I/O and
    /// [`LogError::Corrupt`] errors.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<ReadResult, LogError> {
        self.check_range(offset)?;
        let mut result = ReadResult {
            records: Bytes::new(),
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset(),
        };
        for segment in self.segments_from(offset) {
            if let Some((position, header)) = segment.find_batch(offset)? {
                result.records = segment.read(position, &header, max_bytes, min_one)?;
                break;
            }
        }
        Ok(result)
    }

    /// Like [`PartitionLog::read`], but locates the batches instead of reading them; the
    /// caller reads the [`FileRegion`] (which stays valid while the log moves on, even if
    /// the segment is deleted).
    ///
    /// # Errors
    /// As [`PartitionLog::read`].
    pub fn read_region(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<Option<FileRegion>, LogError> {
        self.read_region_below(offset, max_bytes, min_one, i64::MAX)
    }

    /// Like [`PartitionLog::read_region`], leaving out the batches from offset `below` on
    /// (a high watermark: where a batch starts).
    ///
    /// # Errors
    /// As [`PartitionLog::read`].
    pub fn read_region_below(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        below: i64,
    ) -> Result<Option<FileRegion>, LogError> {
        self.check_range(offset)?;
        for segment in self.segments_from(offset) {
            if let Some((position, header)) = segment.find_batch(offset)? {
                return segment.region(position, &header, max_bytes, min_one, below);
            }
        }
        Ok(None)
    }

    /// Calls `f` with the header of every batch from the log start, oldest first, and the
    /// transaction marker of each control batch (read from disk; control batches are small
    /// and rare); a control batch whose record is not a marker is given as `None`.
    ///
    /// # Errors
    /// I/O errors, and [`LogError::Corrupt`] for a batch that does not parse.
    pub fn for_each_batch_header_and_marker(
        &self,
        mut f: impl FnMut(&BatchHeader, Option<Marker>),
    ) -> Result<(), LogError> {
        for segment in self.all_segments() {
            let mut scanner = BatchScanner::new(&segment.file, 0, segment.size, 64 * 1024);
            loop {
                match scanner.next_step().map_err(|e| segment.read_error(e))? {
                    Step::Batch { header, .. } if header.last_offset() < self.log_start_offset => {}
                    Step::Batch { header, position } if header.is_control() => {
                        let batch = segment.read_batch(position, &header)?;
                        f(&header, marker_of(&batch).ok());
                    }
                    Step::Batch { header, .. } => f(&header, None),
                    Step::End => break,
                    Step::Torn { position, reason } => {
                        return Err(segment.corrupt(position, reason))
                    }
                }
            }
        }
        Ok(())
    }

    fn check_range(&self, offset: i64) -> Result<(), LogError> {
        if offset < self.log_start_offset || offset > self.log_end_offset() {
            return Err(LogError::OffsetOutOfRange {
                dir: self.dir.clone(),
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        Ok(())
    }

    /// All segments, oldest first.
    fn all_segments(&self) -> impl Iterator<Item = &LogSegment> {
        self.segments.values().chain(std::iter::once(&self.active))
    }

    /// The segment that may hold `offset` and every later one.
    fn segments_from(&self, offset: i64) -> impl Iterator<Item = &LogSegment> {
        let start = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(base, _)| *base);
        self.segments
            .range(start..)
            .map(|(_, s)| s)
            .chain(std::iter::once(&self.active))
    }

    /// fsyncs every segment that may hold data past the recovery point, then moves the
    /// recovery point to the log end offset.
    ///
    /// # Errors
    /// I/O errors.
    pub fn flush(&mut self) -> Result<(), LogError> {
        let recovery_point = self.recovery_point;
        for segment in self.segments.values_mut() {
            if segment.next_offset > recovery_point {
                segment.flush()?;
            }
        }
        self.active.write_indexes()?;
        self.active.flush()?;
        let leo = self.log_end_offset();
        // Recovery scans whole segments, so the checkpoint only needs rewriting once it
        // falls below the active segment (the first flush after a roll).
        if self.recovery_point_on_disk < self.active.base_offset {
            checkpoint::sync_dir(&self.dir)?;
            checkpoint::write(&self.dir, checkpoint::RECOVERY_POINT, leo)?;
            self.recovery_point_on_disk = leo;
        }
        self.recovery_point = leo;
        self.unflushed_messages = 0;
        Ok(())
    }

    /// The closed segments written since the recovery point was last stored, if any: the
    /// caller fsyncs their files (without holding the log) and then reports back with
    /// [`PartitionLog::rolled_flushed`]. This is Kafka's flush of rolled segments: it bounds
    /// what recovery must scan after an unclean stop to the active segment.
    pub fn rolled_unflushed(&self) -> Option<RolledSegments> {
        let up_to = self.active.base_offset;
        if self.recovery_point_on_disk >= up_to {
            return None;
        }
        let files = self
            .segments
            .values()
            .filter(|s| s.next_offset > self.recovery_point_on_disk)
            .map(|s| (s.log_path.clone(), s.file.clone()))
            .collect();
        Some(RolledSegments {
            dir: self.dir.clone(),
            files,
            up_to,
        })
    }

    /// Records that the segments from [`PartitionLog::rolled_unflushed`] are on disk: the
    /// recovery point moves to `up_to` (if the log still reaches it) and is stored.
    ///
    /// # Errors
    /// I/O errors writing the checkpoint.
    pub fn rolled_flushed(&mut self, up_to: i64) -> Result<(), LogError> {
        if up_to <= self.recovery_point_on_disk || up_to > self.log_end_offset() {
            return Ok(());
        }
        checkpoint::sync_dir(&self.dir)?;
        checkpoint::write(&self.dir, checkpoint::RECOVERY_POINT, up_to)?;
        self.recovery_point_on_disk = up_to;
        self.recovery_point = self.recovery_point.max(up_to);
        Ok(())
    }

    /// Flushes and writes the clean-shutdown marker, so the next `open` skips recovery.
    ///
    /// # Errors
    /// I/O errors (the marker is then not written).
    pub fn close(mut self) -> Result<(), LogError> {
        self.active.seal()?;
        self.flush()?;
        checkpoint::touch(&self.dir, checkpoint::CLEAN_SHUTDOWN)?;
        checkpoint::sync_dir(&self.dir)?;
        tracing::debug!(dir = %self.dir.display(), log_end_offset = self.log_end_offset(), "closed log");
        Ok(())
    }

    /// Removes the partition directory and everything in it (topic deletion).
    ///
    /// # Errors
    /// I/O errors.
    pub fn delete_dir(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).map_err(|e| LogError::io(&dir, &dir, "delete", e))
    }

    /// Drops every batch whose last offset is `>= offset`, so the log end offset becomes
    /// `offset` when `offset` is a batch boundary (and the start of the batch holding it
    /// otherwise). An `offset` below the log start offset empties the log and restarts it
    /// at `offset`. Used by replication to cut a diverged tail.
    ///
    /// # Errors
    /// [`LogError::OffsetOutOfRange`] for a negative offset; I/O errors.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                dir: self.dir.clone(),
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        let doomed: Vec<i64> = self.segments.range(offset + 1..).map(|(b, _)| *b).collect();
        for base in doomed {
            if let Some(segment) = self.segments.remove(&base) {
                segment.delete()?;
            }
        }
        if self.active.base_offset > offset {
            let Some((_, previous)) = self.segments.pop_last() else {
                return self.truncate_fully_and_start_at(offset);
            };
            std::mem::replace(&mut self.active, previous).delete()?;
        }
        self.active.truncate_to(offset)?;
        let leo = self.log_end_offset();
        self.log_start_offset = self.log_start_offset.min(leo);
        self.first_dirty_offset = self.first_dirty_offset.min(leo);
        if self.recovery_point > leo {
            self.recovery_point = leo;
            self.recovery_point_on_disk = leo;
            checkpoint::write(&self.dir, checkpoint::RECOVERY_POINT, leo)?;
        }
        tracing::info!(dir = %self.dir.display(), offset, log_end_offset = leo, "truncated log");
        Ok(())
    }

    /// Deletes every record and starts the log over, empty, at `offset`: a follower whose
    /// log ends below its leader's log start does so before it fetches.
    ///
    /// # Errors
    /// I/O errors.
    pub fn start_over_at(&mut self, offset: i64) -> Result<(), LogError> {
        self.truncate_fully_and_start_at(offset)
    }

    /// Deletes every segment and starts an empty one at `offset`.
    fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        let fresh = LogSegment::create(&self.dir, offset, self.active.created_ms)?;
        let old = std::mem::replace(&mut self.active, fresh);
        if old.base_offset != offset {
            old.delete()?;
        }
        for (base, segment) in std::mem::take(&mut self.segments) {
            if base != offset {
                segment.delete()?;
            }
        }
        self.log_start_offset = offset;
        self.recovery_point = offset;
        self.recovery_point_on_disk = offset;
        self.first_dirty_offset = offset;
        checkpoint::write(&self.dir, checkpoint::LOG_START_OFFSET, offset)?;
        checkpoint::write(&self.dir, checkpoint::RECOVERY_POINT, offset)?;
        checkpoint::write(&self.dir, checkpoint::CLEANER_OFFSET, offset)?;
        tracing::info!(dir = %self.dir.display(), offset, "truncated log fully");
        Ok(())
    }
}
