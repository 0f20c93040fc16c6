//! The metadata log on disk: the `raft` crate's [`Storage`] over one append-only file.
//!
//! ```text
//! DATA_DIR/__cluster_metadata/
//!   raft.log     frames: [len u32][crc32c u32][kind u8][protobuf bytes]
//!                kinds: entry, hard state, conf state; replayed in order on open
//!   snapshot     [crc32c u32][protobuf Snapshot]: the image at an index, and the
//!                membership then; written to a temporary file and renamed
//! ```
//!
//! The metadata log is small (one entry per metadata change), so the entries after the
//! snapshot are also kept in memory. An entry at an index the log already has replaces it
//! and everything after it (Raft's rule for a follower that accepted a deposed leader's
//! entries); on disk that is just another frame, and replay applies the same rule. A torn
//! or corrupt tail (an unclean stop in the middle of a write) is cut off at the last whole
//! frame, which Raft allows: only frames fsynced by [`RaftStore::sync`] were acknowledged.
//! [`RaftStore::compact`] replaces the log by a snapshot and a fresh file once it grows.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use tracing::warn;

/// Frame kinds in `raft.log`.
const ENTRY: u8 = 1;
const HARD_STATE: u8 = 2;
const CONF_STATE: u8 = 3;

/// Bytes before a frame's payload: length, CRC, kind.
const FRAME_HEADER: usize = 9;

/// Largest frame accepted when reading back (far above any metadata entry).
const MAX_FRAME: usize = 64 << 20;

const LOG_FILE: &str = "raft.log";
const SNAPSHOT_FILE: &str = "snapshot";

/// Why the metadata log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RaftStoreError {
    /// A file could not be read or written.
    #[error("metadata log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// The snapshot file is damaged (it is written whole, so this is not a torn write).
    #[error("metadata snapshot {path} is corrupt: {reason}")]
    CorruptSnapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The durable Raft state of one node: hard state, membership, snapshot and entries.
pub(crate) struct RaftStore {
    dir: PathBuf,
    log: File,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    /// Entries after the snapshot, in index order without gaps.
    entries: Vec<Entry>,
    /// Frames written since the last fsync.
    dirty: bool,
}

impl RaftStore {
    /// Opens (or creates) the metadata log in `dir`. A new log starts with `voters` as its
    /// membership; an existing one keeps what it recorded.
    pub(crate) fn open(dir: &Path, voters: &[u64]) -> Result<RaftStore, RaftStoreError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| RaftStoreError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let snapshot = read_snapshot(&dir.join(SNAPSHOT_FILE))?;
        let log_path = dir.join(LOG_FILE);
        let is_new = !log_path.exists() && snapshot.is_none();
        let mut log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let mut store = RaftStore {
            dir: dir.to_owned(),
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            snapshot: Snapshot::default(),
            entries: Vec::new(),
            dirty: false,
            log: log.try_clone().map_err(io_err(&log_path))?,
        };
        if let Some(snapshot) = snapshot {
            store.conf_state = snapshot.get_metadata().get_conf_state().clone();
            store.hard_state.set_commit(snapshot.get_metadata().index);
            store.hard_state.set_term(snapshot.get_metadata().term);
            store.snapshot = snapshot;
        }
        let good = store.replay(&mut log).map_err(io_err(&log_path))?;
        let len = log.metadata().map_err(io_err(&log_path))?.len();
        if good < len {
            warn!(
                path = %log_path.display(),
                kept = good,
                cut = len - good,
                "metadata log has a torn or corrupt tail; cutting it off"
            );
            log.set_len(good).map_err(io_err(&log_path))?;
            log.sync_all().map_err(io_err(&log_path))?;
        }
        if is_new {
            let mut conf = ConfState::default();
            conf.set_voters(voters.to_vec());
            store.set_conf_state(conf)?;
            store.sync()?;
        }
        Ok(store)
    }

    /// Reads every whole frame of the log into the state; returns the length of the good
    /// part of the file.
    fn replay(&mut self, log: &mut File) -> io::Result<u64> {
        log.seek(SeekFrom::Start(0))?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes)?;
        let mut at = 0usize;
        while let Some((kind, payload, next)) = frame_at(&bytes, at) {
            let applied = match kind {
                ENTRY => Entry::parse_from_bytes(payload)
                    .map(|entry| self.put_entries(std::slice::from_ref(&entry))),
                HARD_STATE => HardState::parse_from_bytes(payload).map(|hs| self.hard_state = hs),
                CONF_STATE => ConfState::parse_from_bytes(payload).map(|cs| self.conf_state = cs),
                _ => break,
            };
            if applied.is_err() {
                break;
            }
            at = next;
        }
        Ok(at as u64)
    }

    /// Appends `entries` (from a Raft `Ready`), replacing any the log has at their indexes
    /// and after. Durable after [`RaftStore::sync`].
    pub(crate) fn append(&mut self, entries: &[Entry]) -> Result<(), RaftStoreError> {
        let mut frames = Vec::new();
        for entry in entries {
            push_frame(
                &mut frames,
                ENTRY,
                &entry.write_to_bytes().unwrap_or_default(),
            );
        }
        self.write(&frames)?;
        self.put_entries(entries);
        Ok(())
    }

    /// The in-memory side of [`RaftStore::append`].
    fn put_entries(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let snapshot_index = self.snapshot.get_metadata().index;
        if first.index <= snapshot_index {
            // Already covered by the snapshot.
            let skip = (snapshot_index + 1 - first.index) as usize;
            return self.put_entries(entries.get(skip..).unwrap_or_default());
        }
        let keep = (first.index - snapshot_index - 1) as usize;
        self.entries.truncate(keep);
        if self.entries.len() == keep {
            self.entries.extend_from_slice(entries);
        } else {
            // A gap: cannot happen with Raft's appends; keep what is contiguous.
            warn!(
                index = first.index,
                "metadata log entry after a gap ignored"
            );
        }
    }

    /// Records the hard state (term, vote, commit).
    pub(crate) fn set_hard_state(&mut self, hs: HardState) -> Result<(), RaftStoreError> {
        let mut frame = Vec::new();
        push_frame(
            &mut frame,
            HARD_STATE,
            &hs.write_to_bytes().unwrap_or_default(),
        );
        self.write(&frame)?;
        self.hard_state = hs;
        Ok(())
    }

    /// Records the commit index.
    pub(crate) fn set_commit(&mut self, commit: u64) -> Result<(), RaftStoreError> {
        if commit <= self.hard_state.commit {
            return Ok(());
        }
        let mut hs = self.hard_state.clone();
        hs.set_commit(commit);
        self.set_hard_state(hs)
    }

    /// Records the membership after a configuration change.
    pub(crate) fn set_conf_state(&mut self, cs: ConfState) -> Result<(), RaftStoreError> {
        let mut frame = Vec::new();
        push_frame(
            &mut frame,
            CONF_STATE,
            &cs.write_to_bytes().unwrap_or_default(),
        );
        self.write(&frame)?;
        self.conf_state = cs;
        Ok(())
    }

    /// The durable state as recorded: hard state and membership.
    pub(crate) fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The snapshot's metadata and data (empty data when there is none).
    pub(crate) fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The entries after the snapshot.
    pub(crate) fn entries_after_snapshot(&self) -> &[Entry] {
        &self.entries
    }

    /// Installs a snapshot received from the leader: the log restarts after it.
    pub(crate) fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), RaftStoreError> {
        let meta = snapshot.get_metadata().clone();
        self.rewrite(snapshot, Vec::new())?;
        let mut hs = self.hard_state.clone();
        hs.set_term(hs.term.max(meta.term));
        hs.set_commit(hs.commit.max(meta.index));
        self.set_hard_state(hs)?;
        self.sync()
    }

    /// Replaces the entries up to `index` (applied, so part of `data`, the image as of
    /// `index`) by a snapshot, and starts a fresh log file with the rest.
    pub(crate) fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), RaftStoreError> {
        let snapshot_index = self.snapshot.get_metadata().index;
        if index <= snapshot_index || index > self.last() {
            return Ok(());
        }
        let term = self.term_at(index).unwrap_or(0);
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..SnapshotMetadata::default()
        };
        meta.set_conf_state(self.conf_state.clone());
        let mut snapshot = Snapshot::default();
        snapshot.set_metadata(meta);
        snapshot.data = data.into();
        let rest = self.entries[(index - snapshot_index) as usize..].to_vec();
        self.rewrite(snapshot, rest)
    }

    /// Writes `snapshot` and a new log file holding the current hard state, membership and
    /// `entries`; both replace the old files by rename.
    fn rewrite(&mut self, snapshot: Snapshot, entries: Vec<Entry>) -> Result<(), RaftStoreError> {
        let snapshot_path = self.dir.join(SNAPSHOT_FILE);
        let bytes = snapshot.write_to_bytes().unwrap_or_default();
        let mut contents = crc32c::crc32c(&bytes).to_be_bytes().to_vec();
        contents.extend_from_slice(&bytes);
        self.replace_file(&snapshot_path, &contents)?;
        let conf_state = snapshot.get_metadata().get_conf_state().clone();
        let mut frames = Vec::new();
        push_frame(
            &mut frames,
            HARD_STATE,
            &self.hard_state.write_to_bytes().unwrap_or_default(),
        );
        push_frame(
            &mut frames,
            CONF_STATE,
            &conf_state.write_to_bytes().unwrap_or_default(),
        );
        for entry in &entries {
            push_frame(
                &mut frames,
                ENTRY,
                &entry.write_to_bytes().unwrap_or_default(),
            );
        }
        let log_path = self.dir.join(LOG_FILE);
        self.replace_file(&log_path, &frames)?;
        self.log = OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(|source| RaftStoreError::Io {
                path: log_path.clone(),
                source,
            })?;
        self.snapshot = snapshot;
        self.conf_state = conf_state;
        self.entries = entries;
        Ok(())
    }

    /// Writes `contents` to `path` durably: a temporary file, fsync, rename, fsync of the
    /// folder.
    fn replace_file(&self, path: &Path, contents: &[u8]) -> Result<(), RaftStoreError> {
        let temp = path.with_extension("tmp");
        let io_err = |source| RaftStoreError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = File::create(&temp).map_err(io_err)?;
        file.write_all(contents).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        fs::rename(&temp, path).map_err(io_err)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err)
    }

    fn write(&mut self, frames: &[u8]) -> Result<(), RaftStoreError> {
        self.log
            .write_all(frames)
            .map_err(|source| RaftStoreError::Io {
                path: self.dir.join(LOG_FILE),
                source,
            })?;
        self.dirty = true;
        Ok(())
    }

    /// Makes everything written so far durable (one fsync).
    pub(crate) fn sync(&mut self) -> Result<(), RaftStoreError> {
        if std::mem::take(&mut self.dirty) {
            self.log.sync_data().map_err(|source| RaftStoreError::Io {
                path: self.dir.join(LOG_FILE),
                source,
            })?;
        }
        Ok(())
    }

    fn first(&self) -> u64 {
        self.snapshot.get_metadata().index + 1
    }

    fn last(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot.get_metadata().index, |e| e.index)
    }

    fn term_at(&self, index: u64) -> Option<u64> {
        let meta = self.snapshot.get_metadata();
        if index == meta.index {
            return Some(meta.term);
        }
        let at = index.checked_sub(self.first())?;
        self.entries.get(usize::try_from(at).ok()?).map(|e| e.term)
    }
}

impl Storage for RaftStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let from = (low - self.first()) as usize;
        let to = (high - self.first()) as usize;
        let mut entries = self.entries[from..to].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.snapshot.get_metadata().index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.term_at(idx)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        Ok(self.snapshot.clone())
    }
}

/// Appends a frame of `kind` holding `payload` to `out`.
fn push_frame(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let len = u32::try_from(payload.len() + 1).unwrap_or(u32::MAX);
    let mut checked = Vec::with_capacity(payload.len() + 1);
    checked.push(kind);
    checked.extend_from_slice(payload);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&checked).to_be_bytes());
    out.extend_from_slice(&checked);
}

/// The whole frame at `at`: kind, payload and where the next frame starts; `None` at the
/// end or at a torn or corrupt frame.
fn frame_at(bytes: &[u8], at: usize) -> Option<(u8, &[u8], usize)> {
    let header = bytes.get(at..at.checked_add(FRAME_HEADER - 1)?)?;
    let len = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(header[4..8].try_into().ok()?);
    if len == 0 || len > MAX_FRAME {
        return None;
    }
    let start = at + 8;
    let checked = bytes.get(start..start.checked_add(len)?)?;
    if crc32c::crc32c(checked) != crc {
        return None;
    }
    Some((checked[0], &checked[1..], start + len))
}

/// The snapshot file, if there is one.
fn read_snapshot(path: &Path) -> Result<Option<Snapshot>, RaftStoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RaftStoreError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let corrupt = |reason: String| RaftStoreError::CorruptSnapshot {
        path: path.to_owned(),
        reason,
    };
    let (crc, body) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("shorter than its checksum".into()))?;
    if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
        return Err(corrupt("checksum mismatch".into()));
    }
    Snapshot::parse_from_bytes(body)
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &str) -> Entry {
        Entry {
            index,
            term,
            data: data.as_bytes().to_vec().into(),
            ..Entry::default()
        }
    }

    fn context() -> GetEntriesContext {
        GetEntriesContext::empty(false)
    }

    fn data(store: &RaftStore, low: u64, high: u64) -> Vec<String> {
        store
            .entries(low, high, None, context())
            .unwrap()
            .iter()
            .map(|e| String::from_utf8(e.data.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn entries_and_state_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RaftStore::open(dir.path(), &[1, 2, 3]).unwrap();
        assert_eq!(store.initial_state().unwrap().conf_state.voters, [1, 2, 3]);
        assert_eq!(
            (store.first_index().unwrap(), store.last_index().unwrap()),
            (1, 0)
        );
        store
            .append(&[entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")])
            .unwrap();
        // A new leader's entries replace 3 and anything after it.
        store
            .append(&[entry(3, 2, "c2"), entry(4, 2, "d")])
            .unwrap();
        let mut hs = HardState::default();
        hs.set_term(2);
        hs.set_vote(2);
        hs.set_commit(3);
        store.set_hard_state(hs.clone()).unwrap();
        store.sync().unwrap();
        drop(store);

        // Membership given on reopen is ignored: the log has its own.
        let store = RaftStore::open(dir.path(), &[9]).unwrap();
        let state = store.initial_state().unwrap();
        assert_eq!(
            (state.hard_state, state.conf_state.voters),
            (hs, vec![1, 2, 3])
        );
        assert_eq!(data(&store, 1, 5), ["a", "b", "c2", "d"]);
        assert_eq!(store.term(3).unwrap(), 2);
        assert!(store.entries(1, 6, None, context()).is_err());
    }

    #[test]
    fn a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RaftStore::open(dir.path(), &[1]).unwrap();
        store.append(&[entry(1, 1, "a"), entry(2, 1, "b")]).unwrap();
        store.sync().unwrap();
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let len = fs::metadata(&path).unwrap().len();
        // Half of the last frame was written.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let mut store = RaftStore::open(dir.path(), &[1]).unwrap();
        assert_eq!(store.last_index().unwrap(), 1);
        store.append(&[entry(2, 1, "b2")]).unwrap();
        store.sync().unwrap();
        drop(store);
        // Garbage after the last frame is cut off too.
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[0xff; 20])
            .unwrap();
        let store = RaftStore::open(dir.path(), &[1]).unwrap();
        assert_eq!(data(&store, 1, 3), ["a", "b2"]);
    }

    #[test]
    fn compaction_keeps_the_rest_and_snapshots_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RaftStore::open(dir.path(), &[1]).unwrap();
        let entries: Vec<Entry> = (1..=5).map(|i| entry(i, 1, &format!("e{i}"))).collect();
        store.append(&entries).unwrap();
        store.set_commit(4).unwrap();
        store.compact(3, b"image at 3".to_vec()).unwrap();
        assert_eq!(store.first_index().unwrap(), 4);
        assert!(matches!(
            store.entries(2, 4, None, context()),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(store.term(3).unwrap(), 1);
        drop(store);
        let store = RaftStore::open(dir.path(), &[1]).unwrap();
        assert_eq!(data(&store, 4, 6), ["e4", "e5"]);
        let snapshot = store.snapshot(0, 0).unwrap();
        assert_eq!(snapshot.get_metadata().index, 3);
        assert_eq!(&snapshot.data[..], b"image at 3");
        assert_eq!(store.hard_state().commit, 4);
        assert_eq!(store.initial_state().unwrap().conf_state.voters, [1]);

        // A corrupt snapshot is an error, not an empty log.
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(
            RaftStore::open(dir.path(), &[1]),
            Err(RaftStoreError::CorruptSnapshot { .. })
        ));
    }
}
