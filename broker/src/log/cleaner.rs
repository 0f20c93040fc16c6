//! Log compaction (`cleanup.policy=compact`): keep the latest record per key.
//!
//! The log splits into a *clean* part (already compacted, below the first dirty offset in
//! `cleaner-offset-checkpoint`), a *dirty* part, and the active segment, which is never
//! touched. One pass of [`PartitionLog::compact`]:
//!
//! 1. takes the closed segments oldest first, stopping at the first one holding records
//!    younger than `min.compaction.lag.ms`: that is the cleanable range;
//! 2. skips the pass unless dirty bytes / cleanable bytes reaches
//!    `min.cleanable.dirty.ratio` (at segment granularity);
//! 3. builds an offset map `key -> latest offset` from the dirty segments (a `HashMap`,
//!    so memory grows with the number of distinct keys, unlike Kafka's fixed buffer);
//! 4. rewrites every cleanable segment: a record survives if its key is null, or no later
//!    offset for its key is in the map; a surviving tombstone (null value) is dropped too
//!    once its segment's largest timestamp is more than `delete.retention.ms` before
//!    `now_ms`. Batches that keep all records are copied byte for byte; batches that keep
//!    none disappear; others are re-encoded with the same base offset, last offset delta,
//!    producer fields, leader epoch, attributes and codec, each record keeping its own
//!    offset delta, so every offset stays what it was (gaps are legal). Control and
//!    transactional batches are copied untouched and their keys are not put in the map
//!    (a record in an aborted transaction must not hide an older committed value);
//! 5. swaps each rewritten segment in: write `<base>.log.cleaned` and fsync it, remove
//!    the old index files, rename over `<base>.log`, rebuild the indexes from the new
//!    file. A crash leaves either the old or the new `.log` (indexes missing are rebuilt
//!    on open; `*.cleaned` leftovers are deleted on open);
//! 6. moves the first dirty offset to the end of the cleanable range.
//!
//! Not done: merging small cleaned segments, removing aborted transactional data, keeping
//! an empty batch for a producer's last sequence (Kafka does, for idempotence state).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use bytes::Bytes;
use strom_protocol::records::{decode_batch, BatchHeader, Record};

use super::checkpoint::{self, CLEANER_OFFSET};
use super::error::LogError;
use super::rebuild::rebuild_batch;
use super::scan::{BatchScanner, Step};
use super::segment::{segment_file, LogSegment};
use super::PartitionLog;

const CLEAN_CHUNK: usize = 1 << 20;

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompactionStats {
    /// Segments in the cleanable range.
    pub segments_cleaned: usize,
    /// Segments whose file was rewritten.
    pub segments_rewritten: usize,
    /// Records dropped (superseded values and expired tombstones).
    pub records_removed: u64,
    /// Of those, tombstones.
    pub tombstones_removed: u64,
    /// Bytes of the cleanable segments before the pass.
    pub bytes_before: u64,
    /// Bytes of the cleanable segments after the pass.
    pub bytes_after: u64,
    /// Dirty bytes / cleanable bytes when the pass started.
    pub dirty_ratio: f64,
}

impl PartitionLog {
    /// One compaction pass (compact policies only; otherwise nothing happens).
    ///
    /// # Errors
    /// I/O errors, and [`LogError::Corrupt`] / [`LogError::Rebuild`] for batches that do
    /// not decode or re-encode. A failure while swapping a segment in leaves the log
    /// to be reopened.
    pub fn compact(&mut self, now_ms: i64) -> Result<CompactionStats, LogError> {
        let mut stats = CompactionStats::default();
        if !self.config.cleanup_policy.compacts() {
            return Ok(stats);
        }
        let cleanable = self.cleanable_segments(now_ms);
        let Some(&last) = cleanable.last() else {
            return Ok(stats);
        };
        let end_offset = self
            .segments
            .range(last + 1..)
            .next()
            .map_or(self.active.base_offset, |(b, _)| *b);
        let (mut dirty, mut total) = (0u64, 0u64);
        for segment in cleanable.iter().filter_map(|b| self.segments.get(b)) {
            total += segment.size;
            if segment.next_offset > self.first_dirty_offset {
                dirty += segment.size;
            }
        }
        stats.dirty_ratio = if total == 0 {
            0.0
        } else {
            dirty as f64 / total as f64
        };
        if dirty == 0 || stats.dirty_ratio < self.config.min_cleanable_dirty_ratio {
            return Ok(stats);
        }
        let map = self.build_offset_map(&cleanable)?;
        for base in &cleanable {
            self.clean_segment(*base, &map, now_ms, &mut stats)?;
        }
        stats.segments_cleaned = cleanable.len();
        self.first_dirty_offset = end_offset;
        checkpoint::write(&self.dir, CLEANER_OFFSET, end_offset)?;
        tracing::info!(dir = %self.dir.display(), segments = stats.segments_cleaned, removed = stats.records_removed, bytes_before = stats.bytes_before, bytes_after = stats.bytes_after, "compacted log");
        Ok(stats)
    }

    /// Closed segments, oldest first, up to the first one younger than the compaction lag.
    fn cleanable_segments(&self, now_ms: i64) -> Vec<i64> {
        let horizon = now_ms.saturating_sub(self.config.min_compaction_lag_ms);
        self.segments
            .values()
            .take_while(|s| self.config.min_compaction_lag_ms == 0 || s.max_timestamp <= horizon)
            .map(|s| s.base_offset)
            .collect()
    }

    /// `key -> latest offset` over the dirty segments among `cleanable`.
    fn build_offset_map(&self, cleanable: &[i64]) -> Result<HashMap<Bytes, i64>, LogError> {
        let mut map = HashMap::new();
        for segment in cleanable.iter().filter_map(|b| self.segments.get(b)) {
            if segment.next_offset <= self.first_dirty_offset {
                continue;
            }
            for_each_batch(segment, |header, position, bytes| {
                if header.is_control() || header.is_transactional() {
                    return Ok(());
                }
                for record in decode(segment, position, bytes)? {
                    if let Some(key) = record.key {
                        map.insert(key, record.offset);
                    }
                }
                Ok(())
            })?;
        }
        Ok(map)
    }

    fn clean_segment(
        &mut self,
        base: i64,
        map: &HashMap<Bytes, i64>,
        now_ms: i64,
        stats: &mut CompactionStats,
    ) -> Result<(), LogError> {
        let Some(segment) = self.segments.get(&base) else {
            return Ok(());
        };
        let age = now_ms.saturating_sub(segment.largest_timestamp_for_retention());
        let drop_tombstones = age > self.config.delete_retention_ms;
        let cleaned_path = segment_file(&self.dir, base, "log.cleaned");
        let file = File::create(&cleaned_path)
            .map_err(|e| LogError::io(&self.dir, &cleaned_path, "create", e))?;
        let mut out = BufWriter::new(file);
        let (mut written, mut changed) = (0u64, false);
        for_each_batch(segment, |header, position, bytes| {
            let kept = filter_batch(
                segment,
                header,
                position,
                bytes,
                map,
                drop_tombstones,
                stats,
            )?;
            let rebuilt;
            let data = match kept {
                Kept::All => bytes,
                Kept::None => {
                    changed = true;
                    return Ok(());
                }
                Kept::Some(records) => {
                    changed = true;
                    rebuilt =
                        rebuild_batch(header, &records).map_err(|source| LogError::Rebuild {
                            dir: segment.dir.clone(),
                            segment: base,
                            offset: header.base_offset,
                            source,
                        })?;
                    &rebuilt[..]
                }
            };
            written += data.len() as u64;
            out.write_all(data)
                .map_err(|e| LogError::io(&segment.dir, &cleaned_path, "write", e))
        })?;
        stats.bytes_before += segment.size;
        stats.bytes_after += written;
        let file = out
            .into_inner()
            .map_err(|e| LogError::io(&self.dir, &cleaned_path, "write", e.into_error()))?;
        if !changed {
            drop(file);
            return std::fs::remove_file(&cleaned_path)
                .map_err(|e| LogError::io(&self.dir, &cleaned_path, "delete", e));
        }
        file.sync_all()
            .map_err(|e| LogError::io(&self.dir, &cleaned_path, "fsync", e))?;
        stats.segments_rewritten += 1;
        self.swap_in(base, &cleaned_path, now_ms)
    }

    /// Replaces segment `base` by the file at `cleaned_path` (see the module docs, step 5).
    fn swap_in(&mut self, base: i64, cleaned_path: &Path, now_ms: i64) -> Result<(), LogError> {
        let Some(old) = self.segments.remove(&base) else {
            return Ok(());
        };
        let min_offset = old.base_offset;
        let log_path = old.log_path.clone();
        for path in [
            old.offset_index.path().to_owned(),
            old.time_index.path().to_owned(),
        ] {
            std::fs::remove_file(&path).map_err(|e| LogError::io(&self.dir, &path, "delete", e))?;
        }
        drop(old);
        std::fs::rename(cleaned_path, &log_path)
            .map_err(|e| LogError::io(&self.dir, &log_path, "rename", e))?;
        checkpoint::sync_dir(&self.dir)?;
        let (mut segment, _) = LogSegment::load(&self.dir, base, now_ms)?;
        if let Some(t) = segment.recover(min_offset, self.config.index_interval_bytes, now_ms)? {
            return Err(segment.corrupt(t.position, t.reason));
        }
        segment.seal()?;
        self.segments.insert(base, segment);
        Ok(())
    }
}

/// Which records of a batch survive.
enum Kept {
    All,
    None,
    Some(Vec<Record>),
}

fn filter_batch(
    segment: &LogSegment,
    header: &BatchHeader,
    position: u64,
    bytes: &[u8],
    map: &HashMap<Bytes, i64>,
    drop_tombstones: bool,
    stats: &mut CompactionStats,
) -> Result<Kept, LogError> {
    if header.is_control() || header.is_transactional() {
        return Ok(Kept::All);
    }
    let records = decode(segment, position, bytes)?;
    let total = records.len();
    let kept: Vec<Record> = records
        .into_iter()
        .filter(|r| {
            let Some(key) = &r.key else { return true };
            let latest = map.get(key).is_none_or(|&offset| offset <= r.offset);
            let expired_tombstone = r.value.is_none() && drop_tombstones;
            if latest && expired_tombstone {
                stats.tombstones_removed += 1;
            }
            latest && !expired_tombstone
        })
        .collect();
    stats.records_removed += (total - kept.len()) as u64;
    Ok(match kept.len() {
        0 => Kept::None,
        n if n == total => Kept::All,
        _ => Kept::Some(kept),
    })
}

/// Calls `f(header, position, bytes)` for every batch of `segment`.
fn for_each_batch(
    segment: &LogSegment,
    mut f: impl FnMut(&BatchHeader, u64, &[u8]) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut scanner = BatchScanner::new(&segment.file, 0, segment.size, CLEAN_CHUNK);
    loop {
        match scanner.next_step().map_err(|e| segment.read_error(e))? {
            Step::Batch { header, position } => {
                let bytes = scanner
                    .batch_bytes(&header, position)
                    .map_err(|e| segment.read_error(e))?;
                f(&header, position, bytes)?;
            }
            Step::End => return Ok(()),
            Step::Torn { position, reason } => return Err(segment.corrupt(position, reason)),
        }
    }
}

fn decode(segment: &LogSegment, position: u64, bytes: &[u8]) -> Result<Vec<Record>, LogError> {
    decode_batch(bytes)
        .map(|(_, records)| records)
        .map_err(|e| segment.corrupt(position, e.to_string()))
}
