//! Opening a partition directory, and recovery after an unclean shutdown.
//!
//! [`PartitionLog::open`]:
//! 1. creates the directory if missing, removes the `clean-shutdown` marker (remembering
//!    whether it was there) and leftovers of interrupted writes (`*.tmp`, `*.cleaned`,
//!    index files without a `.log`);
//! 2. loads every segment in base offset order. A segment is *recovered* when the
//!    shutdown was unclean and the segment may hold offsets at or past the recovery point
//!    (the next segment's base offset is above it, or it is the last one), or when its
//!    index files are missing, torn or inconsistent with the log;
//! 3. recovery walks the whole `.log` batch by batch, checking that each header parses,
//!    its length stays inside the file, its CRC matches and its base offset is not below
//!    the previous batch's next offset; it truncates the file at the first batch that
//!    fails (logged with `tracing::warn!` and fields `dir`, `segment`, `position`,
//!    `bytes_dropped`) and rebuilds both indexes from the batches it kept. Segments after
//!    a truncated one are deleted, since the log must not have a hole;
//! 4. restores the log start offset (`max` of the checkpoint and the first segment's
//!    base), the recovery point and the cleaner checkpoint, each clamped to the log end.
//!
//! A process kill loses nothing (every append reached the OS), so recovery then only
//! finds the same data and rebuilds indexes; a power loss can tear the unflushed tail,
//! which recovery cuts off.

use std::collections::BTreeMap;
use std::path::Path;

use strom_protocol::records::verify_crc;

use super::checkpoint::{self, CLEANER_OFFSET, CLEAN_SHUTDOWN, LOG_START_OFFSET, RECOVERY_POINT};
use super::config::LogConfig;
use super::error::LogError;
use super::scan::{BatchScanner, Step};
use super::segment::LogSegment;
use super::PartitionLog;

/// Chunk size for recovery scans.
const RECOVERY_CHUNK: usize = 1 << 20;

/// Where and why recovery cut a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Truncation {
    pub(crate) position: u64,
    pub(crate) bytes_dropped: u64,
    pub(crate) reason: String,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering it if it was not closed cleanly.
    ///
    /// # Errors
    /// I/O errors. Corrupt data is not an error: it is truncated away.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<PartitionLog, LogError> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir, dir, "create", e))?;
        let clean = checkpoint::remove(dir, CLEAN_SHUTDOWN)?;
        checkpoint::sync_dir(dir)?;
        let bases = scan_dir(dir)?;
        let recovery_point_on_disk = checkpoint::read(dir, RECOVERY_POINT)?.unwrap_or(i64::MIN);
        let recovery_point = match clean {
            true => i64::MAX,
            false => recovery_point_on_disk,
        };
        let mut loaded = load_segments(dir, &bases, recovery_point, &config, now_ms)?;
        let log_start_checkpoint = checkpoint::read(dir, LOG_START_OFFSET)?;
        let active = match loaded.pop_last() {
            Some((_, active)) => active,
            None => LogSegment::create(dir, log_start_checkpoint.unwrap_or(0).max(0), now_ms)?,
        };
        let leo = active.next_offset;
        let first_base = loaded
            .first_key_value()
            .map_or(active.base_offset, |(b, _)| *b);
        let log_start_offset = log_start_checkpoint
            .unwrap_or(first_base)
            .max(first_base)
            .min(leo);
        let recovery_point = recovery_point.clamp(0, leo);
        let first_dirty_offset = checkpoint::read(dir, CLEANER_OFFSET)?
            .unwrap_or(log_start_offset)
            .clamp(log_start_offset, leo);
        let mut log = PartitionLog {
            dir: dir.to_owned(),
            config,
            segments: loaded,
            active,
            log_start_offset,
            recovery_point,
            recovery_point_on_disk,
            first_dirty_offset,
            unflushed_messages: 0,
            last_flush_ms: now_ms,
        };
        log.delete_segments_below_log_start()?;
        tracing::debug!(dir = %dir.display(), clean, log_start_offset, log_end_offset = leo, segments = log.segment_count(), "opened log");
        Ok(log)
    }
}

/// Loads the segments at `bases`, recovering those that need it.
fn load_segments(
    dir: &Path,
    bases: &[i64],
    recovery_point: i64,
    config: &LogConfig,
    now_ms: i64,
) -> Result<BTreeMap<i64, LogSegment>, LogError> {
    let mut segments = BTreeMap::new();
    let mut expected = i64::MIN;
    for (i, &base) in bases.iter().enumerate() {
        let (mut segment, bad_index) = LogSegment::load(dir, base, now_ms)?;
        let unflushed = bases.get(i + 1).is_none_or(|next| *next > recovery_point);
        let truncated = match (unflushed, bad_index) {
            (false, None) => None,
            (_, reason) => {
                if let Some(reason) = reason {
                    tracing::info!(dir = %dir.display(), segment = base, %reason, "rebuilding indexes");
                }
                segment.recover(expected, config.index_interval_bytes, now_ms)?
            }
        };
        expected = segment.next_offset;
        segments.insert(base, segment);
        if let Some(t) = truncated {
            tracing::warn!(dir = %dir.display(), segment = base, position = t.position, bytes_dropped = t.bytes_dropped, reason = %t.reason, "truncated torn or corrupt log tail");
            for &later in &bases[i + 1..] {
                tracing::warn!(dir = %dir.display(), segment = later, "deleting segment after a truncated one");
                let (doomed, _) = LogSegment::load(dir, later, now_ms)?;
                doomed.delete()?;
            }
            break;
        }
    }
    Ok(segments)
}

impl LogSegment {
    /// Rebuilds this segment from its `.log`: walks every batch with CRC and offset-order
    /// checks, truncates the file at the first bad one and rewrites both indexes.
    /// `min_offset` is the previous segment's next offset.
    pub(crate) fn recover(
        &mut self,
        min_offset: i64,
        interval: usize,
        now_ms: i64,
    ) -> Result<Option<Truncation>, LogError> {
        self.reset_indexes()?;
        let file = self.file.try_clone().map_err(|e| self.read_error(e))?;
        let file_len = file.metadata().map_err(|e| self.read_error(e))?.len();
        let mut expected = min_offset.max(self.base_offset);
        let mut scanner = BatchScanner::new(&file, 0, file_len, RECOVERY_CHUNK);
        let mut first_timestamp = None;
        let torn = loop {
            let (header, position) = match scanner.next_step().map_err(|e| self.read_error(e))? {
                Step::Batch { header, position } => (header, position),
                Step::End => break None,
                Step::Torn { position, reason } => break Some((position, reason)),
            };
            if let Some(reason) = self.offset_problem(&header, expected) {
                break Some((position, reason));
            }
            let bytes = scanner
                .batch_bytes(&header, position)
                .map_err(|e| self.read_error(e))?;
            if let Err(e) = verify_crc(bytes) {
                break Some((position, e.to_string()));
            }
            first_timestamp.get_or_insert(header.max_timestamp);
            self.track_batch(&header, position, interval);
            expected = header.next_offset();
        };
        self.size = file_len;
        let truncation = torn.map(|(position, reason)| Truncation {
            position,
            bytes_dropped: file_len - position,
            reason,
        });
        if let Some(t) = &truncation {
            self.file
                .set_len(t.position)
                .map_err(|e| LogError::io(&self.dir, &self.log_path, "truncate", e))?;
            self.size = t.position;
        }
        self.write_indexes()?;
        self.created_ms = first_timestamp.filter(|ts| *ts >= 0).unwrap_or(now_ms);
        Ok(truncation)
    }

    fn offset_problem(
        &self,
        header: &strom_protocol::records::BatchHeader,
        expected: i64,
    ) -> Option<String> {
        if header.base_offset < expected {
            return Some(format!(
                "non-monotonic offsets: batch base {} below {expected}",
                header.base_offset
            ));
        }
        if header.last_offset_delta < 0 {
            return Some(format!(
                "negative last offset delta {}",
                header.last_offset_delta
            ));
        }
        if header.last_offset() - self.base_offset > i64::from(i32::MAX) {
            return Some(format!(
                "offset {} does not fit the segment",
                header.last_offset()
            ));
        }
        None
    }
}

/// Lists segment base offsets in `dir`, oldest first, removing leftovers of interrupted
/// writes on the way.
fn scan_dir(dir: &Path) -> Result<Vec<i64>, LogError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io(dir, dir, "list", e))?;
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(dir, dir, "list", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") || name.ends_with(".cleaned") {
            remove_file(dir, &entry.path())?;
            continue;
        }
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        let Some(base) = parse_base(stem) else {
            continue;
        };
        match ext {
            "log" => logs.push(base),
            "index" | "timeindex" => indexes.push((base, entry.path())),
            _ => {}
        }
    }
    logs.sort_unstable();
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            remove_file(dir, &path)?;
        }
    }
    Ok(logs)
}

fn parse_base(stem: &str) -> Option<i64> {
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

fn remove_file(dir: &Path, path: &Path) -> Result<(), LogError> {
    tracing::debug!(dir = %dir.display(), file = %path.display(), "removing leftover file");
    std::fs::remove_file(path).map_err(|e| LogError::io(dir, path, "delete", e))
}
