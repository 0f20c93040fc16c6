//! [`OffsetIndex`]: the sparse offset index of one segment (`<base>.index`).
//!
//! Each 8-byte entry maps a batch's base offset, relative to the segment's base offset
//! (`u32`), to the batch's byte position in the `.log` file (`u32`). An entry is added for
//! the first batch of a segment and then for the first batch written after at least
//! `index.interval.bytes` bytes since the previous entry, so a lookup lands at most about
//! one interval before the batch it wants and the read scans forward from there.
//!
//! Invariants: relative offsets and positions strictly increase; every position is the
//! start of a batch whose base offset is the entry's offset. [`OffsetIndex::check`]
//! verifies the cheap part of that when a segment is loaded; a failed check makes the
//! segment rebuild both indexes from its log.

use std::io;
use std::path::Path;

use super::index_file::{be_u32, IndexEntry, IndexFile, IndexState};

/// One offset index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    /// Batch base offset minus the segment's base offset.
    pub(crate) relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub(crate) position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: be_u32(bytes, 0),
            position: be_u32(bytes, 4),
        }
    }
}

/// The sparse offset index of one segment.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    base_offset: i64,
    file: IndexFile<OffsetEntry>,
}

impl OffsetIndex {
    /// Opens (or creates) `path` for the segment starting at `base_offset`.
    pub(crate) fn open(path: &Path, base_offset: i64) -> io::Result<(Self, IndexState)> {
        let (file, state) = IndexFile::open(path)?;
        Ok((OffsetIndex { base_offset, file }, state))
    }

    /// The index file.
    pub(crate) fn file(&mut self) -> &mut IndexFile<OffsetEntry> {
        &mut self.file
    }

    /// The index file's path.
    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.file.entries().len()
    }

    /// The newest entry as (absolute offset, position).
    pub(crate) fn last(&self) -> Option<(i64, u64)> {
        self.file.last().map(|e| self.absolute(e))
    }

    /// Adds an entry for the batch with base `offset` at `position`. The caller keeps
    /// offsets within `u32` of the base (the log rolls before they would not fit).
    pub(crate) fn push(&mut self, offset: i64, position: u64) {
        let relative_offset = u32::try_from(offset - self.base_offset).unwrap_or(u32::MAX);
        let position = u32::try_from(position).unwrap_or(u32::MAX);
        self.file.push(OffsetEntry {
            relative_offset,
            position,
        });
    }

    /// The entry with the largest offset `<= offset`, as (absolute offset, position).
    pub(crate) fn lookup(&self, offset: i64) -> Option<(i64, u64)> {
        let entries = self.file.entries();
        let n =
            entries.partition_point(|e| i64::from(e.relative_offset) + self.base_offset <= offset);
        n.checked_sub(1).map(|i| self.absolute(entries[i]))
    }

    /// The entry with the largest position `<= position`, as (absolute offset, position).
    pub(crate) fn lookup_position(&self, position: u64) -> Option<(i64, u64)> {
        let entries = self.file.entries();
        let n = entries.partition_point(|e| u64::from(e.position) <= position);
        n.checked_sub(1).map(|i| self.absolute(entries[i]))
    }

    /// Drops the entries whose position is `>= position`.
    pub(crate) fn truncate_to_position(&mut self, position: u64) -> io::Result<()> {
        let keep = self
            .file
            .entries()
            .partition_point(|e| u64::from(e.position) < position);
        self.file.truncate(keep)
    }

    /// Checks the invariants that need no log reads: strictly increasing offsets and
    /// positions, all positions inside a `.log` of `log_size` bytes.
    pub(crate) fn check(&self, log_size: u64) -> Result<(), String> {
        let entries = self.file.entries();
        for pair in entries.windows(2) {
            if pair[1].relative_offset <= pair[0].relative_offset
                || pair[1].position <= pair[0].position
            {
                return Err(format!(
                    "entries out of order: {:?} then {:?}",
                    pair[0], pair[1]
                ));
            }
        }
        if let Some(last) = entries.last() {
            if u64::from(last.position) >= log_size {
                return Err(format!(
                    "position {} past the log size {log_size}",
                    last.position
                ));
            }
        }
        if log_size > 0 && entries.first().map(|e| e.position) != Some(0) {
            return Err("no entry for the first batch".to_owned());
        }
        Ok(())
    }

    fn absolute(&self, e: OffsetEntry) -> (i64, u64) {
        (
            self.base_offset + i64::from(e.relative_offset),
            u64::from(e.position),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_floor_entry_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let (mut index, state) = OffsetIndex::open(&path, 100).unwrap();
        assert_eq!(state, IndexState::Missing);
        for (i, offset) in [100i64, 110, 125].into_iter().enumerate() {
            index.push(offset, i as u64 * 1000);
        }
        index.file().write_pending().unwrap();
        assert_eq!(index.lookup(99), None);
        assert_eq!(index.lookup(100), Some((100, 0)));
        assert_eq!(index.lookup(124), Some((110, 1000)));
        assert_eq!(index.lookup(500), Some((125, 2000)));
        index.check(2001).unwrap();
        assert!(index.check(2000).is_err());

        let (reopened, state) = OffsetIndex::open(&path, 100).unwrap();
        assert_eq!(state, IndexState::Loaded);
        assert_eq!(reopened.lookup(124), Some((110, 1000)));

        index.truncate_to_position(1000).unwrap();
        assert_eq!(index.last(), Some((100, 0)));
        let (reopened, _) = OffsetIndex::open(&path, 100).unwrap();
        assert_eq!(reopened.len(), 1);
    }

    #[test]
    fn torn_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.index");
        std::fs::write(&path, [0u8; 11]).unwrap();
        let (index, state) = OffsetIndex::open(&path, 0).unwrap();
        assert_eq!(state, IndexState::Torn);
        assert_eq!(index.len(), 0);
    }
}
