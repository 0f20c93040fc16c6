//! [`IndexFile`]: fixed-size index entries kept in a `Vec` and mirrored to a file.
//!
//! The in-memory `Vec` is the truth while the log is open; the file is its append-only
//! mirror, written with one positioned write per append call (the entries an append
//! produced) and cut with `set_len` on truncation. Nothing is preallocated, so the file
//! size is always a whole number of entries unless a crash tore the last write, which
//! the loader detects (size not a multiple of the entry size) and answers with a rebuild.
//! Entries are big-endian, as in Kafka's index files.

use std::fs::{File, OpenOptions};
use std::io;
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One fixed-size index entry.
pub(crate) trait IndexEntry: Copy {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Appends the big-endian encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes from exactly [`IndexEntry::SIZE`] bytes.
    fn decode(bytes: &[u8]) -> Self;
}

/// Entries in memory plus their file mirror.
#[derive(Debug)]
pub(crate) struct IndexFile<E> {
    path: PathBuf,
    file: File,
    entries: Vec<E>,
    /// How many of `entries` are in the file.
    persisted: usize,
    /// Whether the file changed since the last fsync.
    unsynced: bool,
    _entry: PhantomData<E>,
}

/// What [`IndexFile::open`] found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexState {
    /// The file existed and held whole entries.
    Loaded,
    /// The file did not exist (it was created empty).
    Missing,
    /// The file size was not a whole number of entries (it was emptied).
    Torn,
}

impl<E: IndexEntry> IndexFile<E> {
    /// Opens (or creates) the file at `path` and reads its entries.
    pub(crate) fn open(path: &Path) -> io::Result<(Self, IndexState)> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        let mut index = IndexFile {
            path: path.to_owned(),
            file,
            entries: Vec::new(),
            persisted: 0,
            unsynced: !existed,
            _entry: PhantomData,
        };
        if !existed {
            return Ok((index, IndexState::Missing));
        }
        if len % E::SIZE as u64 != 0 {
            index.clear()?;
            return Ok((index, IndexState::Torn));
        }
        let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(0)];
        index.file.read_exact_at(&mut bytes, 0)?;
        index.entries = bytes.chunks_exact(E::SIZE).map(E::decode).collect();
        index.persisted = index.entries.len();
        Ok((index, IndexState::Loaded))
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// All entries, oldest first.
    pub(crate) fn entries(&self) -> &[E] {
        &self.entries
    }

    /// The newest entry.
    pub(crate) fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    /// Adds an entry in memory; [`IndexFile::write_pending`] mirrors it to the file.
    pub(crate) fn push(&mut self, entry: E) {
        self.entries.push(entry);
    }

    /// Writes the entries pushed since the last call, in one write.
    pub(crate) fn write_pending(&mut self) -> io::Result<()> {
        if self.persisted >= self.entries.len() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity((self.entries.len() - self.persisted) * E::SIZE);
        for entry in &self.entries[self.persisted..] {
            entry.encode(&mut buf);
        }
        self.file
            .write_all_at(&buf, (self.persisted * E::SIZE) as u64)?;
        self.persisted = self.entries.len();
        self.unsynced = true;
        Ok(())
    }

    /// Keeps the first `len` entries, in memory and in the file.
    pub(crate) fn truncate(&mut self, len: usize) -> io::Result<()> {
        if len >= self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(len);
        if self.persisted > len {
            self.file.set_len((len * E::SIZE) as u64)?;
            self.persisted = len;
            self.unsynced = true;
        }
        Ok(())
    }

    /// Drops every entry.
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.persisted = 0;
        self.unsynced = true;
        self.file.set_len(0)
    }

    /// Writes pending entries and fsyncs the file if it changed since the last fsync.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.write_pending()?;
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }
}

/// `<path>.tmp`.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Reads a big-endian `u32` at `at`.
pub(crate) fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(b)
}

/// Reads a big-endian `i64` at `at`.
pub(crate) fn be_i64(bytes: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(b)
}
