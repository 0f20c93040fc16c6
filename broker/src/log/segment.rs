//! [`LogSegment`]: one `.log` file of whole record batches plus its two indexes.
//!
//! ```text
//! 00000000000000000100.log        batches exactly as served, base offsets >= 100
//! 00000000000000000100.index      (relative offset u32, position u32) every ~index.interval.bytes
//! 00000000000000000100.timeindex  (max timestamp so far i64, relative offset u32)
//! ```
//!
//! Invariants kept while the segment is open: `size` is the length of the valid data in
//! the `.log` (the file is never longer after a successful call); `next_offset` is the
//! offset after the last batch (`base_offset` when empty); batch base offsets strictly
//! increase and every offset is within `u32` of `base_offset`; the in-memory state that is
//! not in the indexes (`next_offset`, largest timestamp, bytes since the last index
//! entry) is rebuilt on load by replaying the batches after the last offset index entry.
//!
//! Reads use positioned reads (`read_at`) and so need only `&self`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use strom_protocol::records::{batches, BatchHeader, BATCH_HEADER_LEN};

use super::error::LogError;
use super::index_file::IndexState;
use super::offset_index::OffsetIndex;
use super::scan::{BatchScanner, Step};
use super::time_index::TimeIndex;

/// Chunk size for header walks that start at an index entry (about two intervals).
const LOOKUP_CHUNK: usize = 16 * 1024;

/// One segment: its `.log` file, indexes and the state derived from them.
#[derive(Debug)]
pub(crate) struct LogSegment {
    pub(crate) dir: PathBuf,
    pub(crate) base_offset: i64,
    pub(crate) log_path: PathBuf,
    /// Shared so that a fetch can keep reading a region while the log moves on.
    pub(crate) file: Arc<File>,
    pub(crate) size: u64,
    pub(crate) next_offset: i64,
    pub(crate) offset_index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    /// Largest batch max timestamp, `i64::MIN` while empty.
    pub(crate) max_timestamp: i64,
    /// Base offset of the first batch that reached `max_timestamp`.
    pub(crate) offset_of_max_timestamp: i64,
    pub(crate) bytes_since_last_index_entry: usize,
    /// When the segment counts as created for `segment.ms`.
    pub(crate) created_ms: i64,
}

/// `<dir>/<base offset, 20 digits>.<ext>`.
pub(crate) fn segment_file(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

impl LogSegment {
    /// Creates an empty segment at `base_offset`, replacing any files of that name.
    pub(crate) fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self, LogError> {
        let mut segment = Self::open_files(dir, base_offset, now_ms, true)?.0;
        segment.reset_indexes()?;
        Ok(segment)
    }

    /// Opens an existing segment and loads its indexes. Returns `Some(reason)` when the
    /// indexes are missing or inconsistent and the segment needs
    /// [`LogSegment::recover`](super::recovery).
    pub(crate) fn load(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
    ) -> Result<(Self, Option<String>), LogError> {
        let (mut segment, states) = Self::open_files(dir, base_offset, now_ms, false)?;
        if segment.size == 0 {
            segment.reset_indexes()?;
            return Ok((segment, None));
        }
        if states != (IndexState::Loaded, IndexState::Loaded) {
            return Ok((segment, Some(format!("index files {states:?}"))));
        }
        if let Err(reason) = segment.offset_index.check(segment.size) {
            return Ok((segment, Some(format!("offset index: {reason}"))));
        }
        if let Some(reason) = segment.replay_from_last_entry(segment.size)? {
            return Ok((
                segment,
                Some(format!("log after the last index entry: {reason}")),
            ));
        }
        if let Err(reason) = segment.time_index.check(segment.next_offset) {
            return Ok((segment, Some(format!("time index: {reason}"))));
        }
        segment.created_ms = segment.first_batch_timestamp()?.unwrap_or(now_ms);
        Ok((segment, None))
    }

    fn open_files(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
        truncate: bool,
    ) -> Result<(Self, (IndexState, IndexState)), LogError> {
        let log_path = segment_file(dir, base_offset, "log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(truncate)
            .open(&log_path)
            .map_err(|e| LogError::io(dir, &log_path, "open", e))?;
        let size = file
            .metadata()
            .map_err(|e| LogError::io(dir, &log_path, "stat", e))?
            .len();
        let index_path = segment_file(dir, base_offset, "index");
        let (offset_index, offset_state) = OffsetIndex::open(&index_path, base_offset)
            .map_err(|e| LogError::io(dir, &index_path, "open", e))?;
        let time_path = segment_file(dir, base_offset, "timeindex");
        let (time_index, time_state) = TimeIndex::open(&time_path, base_offset)
            .map_err(|e| LogError::io(dir, &time_path, "open", e))?;
        let file = Arc::new(file);
        let segment = LogSegment {
            dir: dir.to_owned(),
            base_offset,
            log_path,
            file,
            size,
            next_offset: base_offset,
            offset_index,
            time_index,
            max_timestamp: i64::MIN,
            offset_of_max_timestamp: base_offset,
            bytes_since_last_index_entry: 0,
            created_ms: now_ms,
        };
        Ok((segment, (offset_state, time_state)))
    }

    /// Empties both indexes and the derived state (the `.log` is untouched).
    pub(crate) fn reset_indexes(&mut self) -> Result<(), LogError> {
        let (dir, index_path) = (&self.dir, self.offset_index.path().to_owned());
        self.offset_index
            .file()
            .clear()
            .map_err(|e| LogError::io(dir, &index_path, "truncate", e))?;
        let time_path = self.time_index.path().to_owned();
        self.time_index
            .file()
            .clear()
            .map_err(|e| LogError::io(dir, &time_path, "truncate", e))?;
        self.next_offset = self.base_offset;
        self.max_timestamp = i64::MIN;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        Ok(())
    }

    /// Accounts for the batch with `header` at `position`: adds index entries when due and
    /// advances the derived state. Entries reach the files at [`Self::write_indexes`].
    pub(crate) fn track_batch(&mut self, header: &BatchHeader, position: u64, interval: usize) {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset;
        }
        if self.offset_index.len() == 0 || self.bytes_since_last_index_entry >= interval {
            self.offset_index.push(header.base_offset, position);
            self.time_index
                .maybe_push(self.max_timestamp, self.offset_of_max_timestamp);
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += header.total_len();
        self.next_offset = header.next_offset();
    }

    /// Writes index entries added since the last call.
    pub(crate) fn write_indexes(&mut self) -> Result<(), LogError> {
        let path = self.offset_index.path().to_owned();
        self.offset_index
            .file()
            .write_pending()
            .map_err(|e| LogError::io(&self.dir, &path, "write", e))?;
        let path = self.time_index.path().to_owned();
        self.time_index
            .file()
            .write_pending()
            .map_err(|e| LogError::io(&self.dir, &path, "write", e))
    }

    /// Appends `buf`, whose batches (already given their offsets) are `headers` with their
    /// ranges in `buf`, in one write. On a failed write the file is cut back.
    pub(crate) fn append(
        &mut self,
        buf: &[u8],
        headers: &[(BatchHeader, std::ops::Range<usize>)],
        interval: usize,
    ) -> Result<(), LogError> {
        if let Err(e) = self.file.write_all_at(buf, self.size) {
            let _ = self.file.set_len(self.size);
            return Err(LogError::io(&self.dir, &self.log_path, "write", e));
        }
        for (header, range) in headers {
            self.track_batch(header, self.size + range.start as u64, interval);
        }
        self.size += buf.len() as u64;
        self.write_indexes()
    }

    /// The first batch whose last offset is `>= offset`, as (position, header), or `None`
    /// when the segment holds no such batch.
    pub(crate) fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let start = self
            .offset_index
            .lookup(offset)
            .map_or(0, |(_, position)| position);
        let mut scanner = BatchScanner::new(&self.file, start, self.size, LOOKUP_CHUNK);
        loop {
            match scanner.next_step().map_err(|e| self.read_error(e))? {
                Step::Batch { header, position } if header.last_offset() >= offset => {
                    return Ok(Some((position, header)))
                }
                Step::Batch { .. } => {}
                Step::End => return Ok(None),
                Step::Torn { position, reason } => return Err(self.corrupt(position, reason)),
            }
        }
    }

    /// Whole batches starting at `position` (where `first` starts): as many as fit in
    /// `max_bytes`, and at least `first` when `min_one` is set.
    pub(crate) fn read(
        &self,
        position: u64,
        first: &BatchHeader,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<Bytes, LogError> {
        let first_len = first.total_len();
        if first_len > max_bytes && !min_one {
            return Ok(Bytes::new());
        }
        let available = usize::try_from(self.size - position).unwrap_or(usize::MAX);
        let want = max_bytes.max(first_len).min(available);
        let mut buf = vec![0u8; want];
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(|e| self.read_error(e))?;
        let mut iter = batches(&buf);
        for item in iter.by_ref() {
            if let Err(e) = item {
                return Err(self.corrupt(position + iter.position() as u64, e.to_string()));
            }
        }
        let whole = iter.position();
        buf.truncate(whole);
        Ok(Bytes::from(buf))
    }

    /// Like [`LogSegment::read`], but returns where the batches are instead of reading
    /// them: the fetch path reads the region in small pieces while writing it to the socket.
    pub(crate) fn region(
        &self,
        position: u64,
        first: &BatchHeader,
        max_bytes: usize,
        min_one: bool,
        below: i64,
    ) -> Result<Option<FileRegion>, LogError> {
        if first.base_offset >= below {
            return Ok(None);
        }
        let first_len = first.total_len() as u64;
        if first_len > max_bytes as u64 && !min_one {
            return Ok(None);
        }
        // Batches from offset `below` on stay out (it is always where a batch starts).
        let cut = match self.find_batch(below)? {
            Some((at, _)) => at,
            None => self.size,
        };
        let limit = (position + (max_bytes as u64).max(first_len))
            .min(self.size)
            .min(cut.max(position + first_len));
        // Every batch before an index entry at or below `limit` ends below it, so only the
        // batches after that entry need their headers read.
        let start = self
            .offset_index
            .lookup_position(limit)
            .map_or(position, |(_, p)| p.max(position));
        let mut end = position + first_len;
        let mut scanner = BatchScanner::new(&self.file, start, self.size, LOOKUP_CHUNK);
        loop {
            match scanner.next_step().map_err(|e| self.read_error(e))? {
                Step::Batch {
                    header,
                    position: at,
                } => {
                    let batch_end = at + header.total_len() as u64;
                    if batch_end > limit {
                        break;
                    }
                    end = end.max(batch_end);
                }
                Step::End => break,
                Step::Torn { position, reason } => return Err(self.corrupt(position, reason)),
            }
        }
        Ok(Some(FileRegion {
            file: self.file.clone(),
            position,
            len: (end - position) as usize,
        }))
    }

    /// Reads the whole batch with `header` at `position`.
    pub(crate) fn read_batch(
        &self,
        position: u64,
        header: &BatchHeader,
    ) -> Result<Vec<u8>, LogError> {
        let mut buf = vec![0u8; header.total_len()];
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(|e| self.read_error(e))?;
        Ok(buf)
    }

    /// Drops every batch whose last offset is `>= offset` (the batch holding `offset`
    /// goes whole).
    pub(crate) fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let Some((position, header)) = self.find_batch(offset)? else {
            return Ok(());
        };
        self.truncate_at(position, header.base_offset)
    }

    /// Cuts the log at `position` (the batch starting at `offset`) and the indexes to match.
    pub(crate) fn truncate_at(&mut self, position: u64, offset: i64) -> Result<(), LogError> {
        let path = self.offset_index.path().to_owned();
        self.offset_index
            .truncate_to_position(position)
            .map_err(|e| LogError::io(&self.dir, &path, "truncate", e))?;
        let path = self.time_index.path().to_owned();
        self.time_index
            .truncate_to_offset(offset)
            .map_err(|e| LogError::io(&self.dir, &path, "truncate", e))?;
        self.file
            .set_len(position)
            .map_err(|e| LogError::io(&self.dir, &self.log_path, "truncate", e))?;
        self.size = position;
        if let Some(reason) = self.replay_from_last_entry(position)? {
            return Err(self.corrupt(position, reason));
        }
        Ok(())
    }

    /// Rebuilds the derived state from the indexes plus a header walk from the last offset
    /// index entry to `end`. Returns the reason if the walk finds bytes that are not
    /// whole batches.
    fn replay_from_last_entry(&mut self, end: u64) -> Result<Option<String>, LogError> {
        self.next_offset = self.base_offset;
        self.max_timestamp = i64::MIN;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        if let Some((timestamp, offset)) = self.time_index.last() {
            self.max_timestamp = timestamp;
            self.offset_of_max_timestamp = offset;
        }
        let entry = self.offset_index.last();
        let start = entry.map_or(0, |(_, position)| position);
        let mut scanner = BatchScanner::new(&self.file, start, end, LOOKUP_CHUNK);
        loop {
            match scanner.next_step().map_err(|e| self.read_error(e))? {
                Step::Batch { header, position } => {
                    if let Some((entry_offset, _)) = entry.filter(|_| position == start) {
                        if header.base_offset != entry_offset {
                            return Ok(Some(format!(
                                "index entry for offset {entry_offset} points at a batch with base {}",
                                header.base_offset
                            )));
                        }
                    }
                    if header.max_timestamp > self.max_timestamp {
                        self.max_timestamp = header.max_timestamp;
                        self.offset_of_max_timestamp = header.base_offset;
                    }
                    self.bytes_since_last_index_entry += header.total_len();
                    self.next_offset = header.next_offset();
                }
                Step::End => return Ok(None),
                Step::Torn { reason, .. } => return Ok(Some(reason)),
            }
        }
    }

    /// The first batch's max timestamp, if the segment has a batch and it has one.
    fn first_batch_timestamp(&self) -> Result<Option<i64>, LogError> {
        if self.size < BATCH_HEADER_LEN as u64 {
            return Ok(None);
        }
        let mut buf = [0u8; BATCH_HEADER_LEN];
        self.file
            .read_exact_at(&mut buf, 0)
            .map_err(|e| self.read_error(e))?;
        Ok(BatchHeader::parse(&buf)
            .ok()
            .map(|h| h.max_timestamp)
            .filter(|ts| *ts >= 0))
    }

    /// Records the final largest timestamp in the time index (when the segment stops being
    /// active or the log closes) and writes pending entries.
    pub(crate) fn seal(&mut self) -> Result<(), LogError> {
        if self.size > 0 {
            self.time_index
                .maybe_push(self.max_timestamp, self.offset_of_max_timestamp);
        }
        self.write_indexes()
    }

    /// fsyncs the `.log` and both indexes.
    pub(crate) fn flush(&mut self) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(|e| LogError::io(&self.dir, &self.log_path, "fsync", e))?;
        let path = self.offset_index.path().to_owned();
        self.offset_index
            .file()
            .sync()
            .map_err(|e| LogError::io(&self.dir, &path, "fsync", e))?;
        let path = self.time_index.path().to_owned();
        self.time_index
            .file()
            .sync()
            .map_err(|e| LogError::io(&self.dir, &path, "fsync", e))
    }

    /// Removes the segment's files.
    pub(crate) fn delete(self) -> Result<(), LogError> {
        for path in [
            self.log_path.clone(),
            self.offset_index.path().to_owned(),
            self.time_index.path().to_owned(),
        ] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(LogError::io(&self.dir, &path, "delete", e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// (largest timestamp, base offset of its batch), or `None` while empty.
    pub(crate) fn max_timestamp(&self) -> Option<(i64, i64)> {
        (self.size > 0).then_some((self.max_timestamp, self.offset_of_max_timestamp))
    }

    /// The largest timestamp for retention: the largest batch timestamp, or the file's
    /// modification time when the batches carry none.
    pub(crate) fn largest_timestamp_for_retention(&self) -> i64 {
        if self.size > 0 && self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(self.created_ms, |d| {
                i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
            })
    }

    pub(crate) fn read_error(&self, e: io::Error) -> LogError {
        LogError::io(&self.dir, &self.log_path, "read", e)
    }

    pub(crate) fn corrupt(&self, position: u64, reason: String) -> LogError {
        LogError::Corrupt {
            dir: self.dir.clone(),
            segment: self.base_offset,
            position,
            reason,
        }
    }
}

/// Whole batches in a segment file, located but not yet read.
#[derive(Debug, Clone)]
pub struct FileRegion {
    file: Arc<File>,
    position: u64,
    len: usize,
}

impl FileRegion {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty region.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads `buf.len()` bytes starting `at` bytes into the region.
    ///
    /// # Errors
    /// An I/O error, or `UnexpectedEof` when the segment was truncated after the region was
    /// located (recovery or replica truncation).
    pub fn read_at(&self, buf: &mut [u8], at: usize) -> io::Result<()> {
        if at + buf.len() > self.len {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        self.file.read_exact_at(buf, self.position + at as u64)
    }

    /// Sends up to `max` bytes of the region, starting `at` bytes into it, from the page
    /// cache straight to `socket` (`sendfile`: no copy through user space). Returns the
    /// bytes sent; `WouldBlock` when a non-blocking socket is full.
    ///
    /// # Errors
    /// An I/O error, or `UnexpectedEof` when the segment was truncated after the region was
    /// located.
    #[cfg(target_os = "linux")]
    pub fn send_to(
        &self,
        socket: impl std::os::fd::AsFd,
        at: usize,
        max: usize,
    ) -> io::Result<usize> {
        let count = max.min(self.len.saturating_sub(at));
        if count == 0 {
            return Ok(0);
        }
        let mut offset = self.position + at as u64;
        match rustix::fs::sendfile(socket, &*self.file, Some(&mut offset), count) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => Ok(n),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the whole region into memory.
    ///
    /// # Errors
    /// As [`FileRegion::read_at`].
    pub fn to_bytes(&self) -> io::Result<Bytes> {
        let mut buf = vec![0u8; self.len];
        self.read_at(&mut buf, 0)?;
        Ok(Bytes::from(buf))
    }
}
