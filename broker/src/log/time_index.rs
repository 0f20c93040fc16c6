//! [`TimeIndex`]: the sparse time index of one segment (`<base>.timeindex`).
//!
//! Each 12-byte entry is (timestamp `i64`, relative offset `u32`): the largest batch max
//! timestamp seen so far in the segment and the base offset of the batch that first
//! reached it. An entry is written together with each offset index entry when the
//! largest timestamp grew since the previous entry, and once more when the segment stops
//! being active (roll, close), so the last entry always holds the segment's largest
//! timestamp.
//!
//! Invariants: timestamps strictly increase, offsets never decrease. For a lookup of
//! target `t`, every batch at or before the offset of an entry with timestamp `< t`
//! holds only records older than `t`, so the search may start there.

use std::io;
use std::path::Path;

use super::index_file::{be_i64, be_u32, IndexEntry, IndexFile, IndexState};

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    /// Largest timestamp so far.
    pub(crate) timestamp: i64,
    /// Base offset of the batch holding it, minus the segment's base offset.
    pub(crate) relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Self {
        TimeEntry {
            timestamp: be_i64(bytes, 0),
            relative_offset: be_u32(bytes, 8),
        }
    }
}

/// The sparse time index of one segment.
#[derive(Debug)]
pub(crate) struct TimeIndex {
    base_offset: i64,
    file: IndexFile<TimeEntry>,
}

impl TimeIndex {
    /// Opens (or creates) `path` for the segment starting at `base_offset`.
    pub(crate) fn open(path: &Path, base_offset: i64) -> io::Result<(Self, IndexState)> {
        let (file, state) = IndexFile::open(path)?;
        Ok((TimeIndex { base_offset, file }, state))
    }

    /// The index file.
    pub(crate) fn file(&mut self) -> &mut IndexFile<TimeEntry> {
        &mut self.file
    }

    /// The index file's path.
    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }

    /// The newest entry as (timestamp, absolute offset).
    pub(crate) fn last(&self) -> Option<(i64, i64)> {
        self.file.last().map(|e| self.absolute(e))
    }

    /// Adds (`timestamp`, `offset`) if `timestamp` is larger than the newest entry's.
    pub(crate) fn maybe_push(&mut self, timestamp: i64, offset: i64) {
        if self.file.last().is_some_and(|e| e.timestamp >= timestamp) {
            return;
        }
        let relative_offset = u32::try_from(offset - self.base_offset).unwrap_or(u32::MAX);
        self.file.push(TimeEntry {
            timestamp,
            relative_offset,
        });
    }

    /// The newest entry with a timestamp `< timestamp`, as (timestamp, absolute offset):
    /// everything up to that offset's batch is older than `timestamp`.
    pub(crate) fn lookup_before(&self, timestamp: i64) -> Option<(i64, i64)> {
        let entries = self.file.entries();
        let n = entries.partition_point(|e| e.timestamp < timestamp);
        n.checked_sub(1).map(|i| self.absolute(entries[i]))
    }

    /// Drops the entries whose offset is `>= offset`.
    pub(crate) fn truncate_to_offset(&mut self, offset: i64) -> io::Result<()> {
        let base = self.base_offset;
        let keep = self
            .file
            .entries()
            .partition_point(|e| base + i64::from(e.relative_offset) < offset);
        self.file.truncate(keep)
    }

    /// Checks strictly increasing timestamps, non-decreasing offsets, all offsets below
    /// `next_offset`, and an entry present when the segment has data.
    pub(crate) fn check(&self, next_offset: i64) -> Result<(), String> {
        let entries = self.file.entries();
        for pair in entries.windows(2) {
            if pair[1].timestamp <= pair[0].timestamp
                || pair[1].relative_offset < pair[0].relative_offset
            {
                return Err(format!(
                    "entries out of order: {:?} then {:?}",
                    pair[0], pair[1]
                ));
            }
        }
        match self.last() {
            Some((_, offset)) if offset >= next_offset => Err(format!(
                "offset {offset} at or past the segment end {next_offset}"
            )),
            None if next_offset > self.base_offset => {
                Err("no entries for a non-empty segment".to_owned())
            }
            _ => Ok(()),
        }
    }

    fn absolute(&self, e: TimeEntry) -> (i64, i64) {
        (e.timestamp, self.base_offset + i64::from(e.relative_offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_growing_timestamps_and_looks_up_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000010.timeindex");
        let (mut index, _) = TimeIndex::open(&path, 10).unwrap();
        index.maybe_push(1000, 10);
        index.maybe_push(900, 12); // not larger: ignored
        index.maybe_push(2000, 15);
        index.maybe_push(3000, 20);
        index.file().write_pending().unwrap();
        assert_eq!(index.lookup_before(1000), None);
        assert_eq!(index.lookup_before(1001), Some((1000, 10)));
        assert_eq!(index.lookup_before(2500), Some((2000, 15)));
        index.check(21).unwrap();
        assert!(index.check(20).is_err());

        index.truncate_to_offset(15).unwrap();
        let (reopened, _) = TimeIndex::open(&path, 10).unwrap();
        assert_eq!(reopened.last(), Some((1000, 10)));
    }
}
