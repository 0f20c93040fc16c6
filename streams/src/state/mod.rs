//! State stores: the key-value state of a task's aggregations, tables, windows and
//! suppression buffers, as bytes, each backed by a changelog topic.
//!
//! ```text
//!  processor ──put(key, value)──▶ StateStore ──▶ backend (in memory, or on disk: redb)
//!                                     └──────▶ change (store, key, value) in the record's
//!                                              context ──▶ <application.id>-<store>-changelog
//!  new task ──▶ open the backend (checkpointed changelog offset) ──▶ replay the changelog
//!               from there to its end ──▶ processing starts
//! ```
//!
//! A store keeps keys and values as bytes (written by the DSL's serdes), ordered by key
//! so that window stores can drop closed windows by range. Every change a processor makes
//! goes to the store's changelog partition of the task's number; the changelog is
//! compacted, so replaying it rebuilds the store after a restart or when the task moves to
//! another instance. A persistent store also remembers up to which changelog offset it
//! holds the changes (its checkpoint), so a restart replays only what came after.

pub(crate) mod memory;
pub(crate) mod persistent;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::Bytes;

use crate::processor::RecordContext;

/// A store's backend failed (disk, corrupt file).
#[derive(Debug, thiserror::Error)]
#[error("state store {store}: {reason}")]
pub struct StoreError {
    /// The store's name.
    pub store: String,
    /// What went wrong.
    pub reason: String,
}

/// Where a store keeps its entries: ordered bytes to bytes.
pub(crate) trait KeyValueBytes {
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, StoreError>;
    fn put(&mut self, key: Bytes, value: Bytes) -> Result<(), StoreError>;
    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError>;
    /// Entries with `from <= key < to` (`to` `None`: to the end), in key order.
    fn range(&mut self, from: &[u8], to: Option<&[u8]>) -> Result<Vec<(Bytes, Bytes)>, StoreError>;
    /// Makes what was written durable, with `checkpoint` (the changelog offset the store
    /// holds the changes up to) recorded with it.
    fn flush(&mut self, checkpoint: Option<i64>) -> Result<(), StoreError>;
    /// The checkpoint recorded by the last flush that kept one.
    fn checkpoint(&self) -> Option<i64>;
    /// Removes every entry and the checkpoint.
    fn clear(&mut self) -> Result<(), StoreError>;
}

/// What kind of state a store holds, which decides how its changelog is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreKind {
    /// Latest value per key: the changelog is compacted.
    KeyValue,
    /// Values per key and window, kept `retention_ms`: the changelog is compacted and
    /// deletes what is older than the retention.
    Window { retention_ms: i64 },
}

/// A store of the topology: its name, what it holds, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoreSpec {
    pub(crate) name: String,
    pub(crate) kind: StoreKind,
    /// On local disk (`state.dir`) rather than in memory.
    pub(crate) persistent: bool,
}

/// Where a task's stores live.
#[derive(Clone, Default)]
pub(crate) struct StoreEnv {
    /// The directory of this task's persistent stores; `None` keeps every store in memory.
    pub(crate) dir: Option<PathBuf>,
    /// The instance's global stores (shared by all its tasks), by name.
    pub(crate) globals: std::collections::BTreeMap<String, SharedStore>,
}

impl StoreEnv {
    /// Opens the backend of `spec`.
    pub(crate) fn open(&self, spec: &StoreSpec) -> Result<Box<dyn KeyValueBytes>, StoreError> {
        match (&self.dir, spec.persistent) {
            (Some(dir), true) => Ok(Box::new(persistent::RedbStore::open(
                &spec.name,
                &dir.join(&spec.name),
            )?)),
            _ => Ok(Box::new(memory::MemoryStore::default())),
        }
    }
}

/// A global table's store: in memory, filled from its topic by the instance.
pub(crate) fn global_store(name: &str) -> SharedStore {
    Rc::new(RefCell::new(StateStore::new(
        name,
        Box::new(memory::MemoryStore::default()),
    )))
}

/// One change to a store, for its changelog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) store: Rc<str>,
    pub(crate) key: Bytes,
    /// `None`: the key was deleted (a tombstone).
    pub(crate) value: Option<Bytes>,
}

/// A task's store: its backend, and the stream time of what it holds.
pub(crate) struct StateStore {
    name: Rc<str>,
    backend: Box<dyn KeyValueBytes>,
    /// The largest record timestamp the store's changes were made at (restored ones
    /// included): a window store's stream time after a restart.
    observed_time: i64,
}

/// A store as the nodes of a task share it.
pub(crate) type SharedStore = Rc<RefCell<StateStore>>;

impl StateStore {
    pub(crate) fn new(name: &str, backend: Box<dyn KeyValueBytes>) -> Self {
        StateStore {
            name: Rc::from(name),
            backend,
            observed_time: i64::MIN,
        }
    }

    /// The value of `key`; a failure is reported on `ctx` and reads as absent.
    pub(crate) fn get(&mut self, ctx: &mut RecordContext, key: &[u8]) -> Option<Bytes> {
        match self.backend.get(key) {
            Ok(value) => value,
            Err(e) => {
                ctx.errors.push(e.to_string());
                None
            }
        }
    }

    /// Writes `key` (a `None` value deletes it) and logs the change.
    pub(crate) fn put(&mut self, ctx: &mut RecordContext, key: Bytes, value: Option<Bytes>) {
        let written = match &value {
            Some(v) => self.backend.put(key.clone(), v.clone()),
            None => self.backend.delete(&key),
        };
        if let Err(e) = written {
            ctx.errors.push(e.to_string());
            return;
        }
        self.observed_time = self.observed_time.max(ctx.timestamp);
        ctx.changes.push(Change {
            store: self.name.clone(),
            key,
            value,
        });
    }

    /// Removes `key` without logging it (state the changelog's retention drops anyway).
    pub(crate) fn forget(&mut self, ctx: &mut RecordContext, key: &[u8]) {
        if let Err(e) = self.backend.delete(key) {
            ctx.errors.push(e.to_string());
        }
    }

    /// Entries with `from <= key < to`, in key order.
    pub(crate) fn range(
        &mut self,
        ctx: &mut RecordContext,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> Vec<(Bytes, Bytes)> {
        match self.backend.range(from, to) {
            Ok(entries) => entries,
            Err(e) => {
                ctx.errors.push(e.to_string());
                Vec::new()
            }
        }
    }

    /// The value of `key` (for queries).
    pub(crate) fn lookup(&mut self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.backend.get(key)
    }

    /// Every entry, in key order (for queries and tests).
    pub(crate) fn all(&mut self) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        self.backend.range(&[], None)
    }

    /// The stream time of the store's contents (`i64::MIN` when empty).
    pub(crate) fn observed_time(&self) -> i64 {
        self.observed_time
    }

    /// Applies a change read back from the changelog.
    pub(crate) fn restore(
        &mut self,
        key: Bytes,
        value: Option<Bytes>,
        timestamp: i64,
    ) -> Result<(), StoreError> {
        self.observed_time = self.observed_time.max(timestamp);
        match value {
            Some(v) => self.backend.put(key, v),
            None => self.backend.delete(&key),
        }
    }

    /// Makes the store durable up to changelog offset `checkpoint`.
    pub(crate) fn flush(&mut self, checkpoint: Option<i64>) -> Result<(), StoreError> {
        self.backend.flush(checkpoint)
    }

    /// Empties the store (its checkpoint does not match its changelog).
    pub(crate) fn clear(&mut self) -> Result<(), StoreError> {
        self.observed_time = i64::MIN;
        self.backend.clear()
    }

    /// The changelog offset the store holds the changes up to, from its last flush.
    pub(crate) fn checkpoint(&self) -> Option<i64> {
        self.backend.checkpoint()
    }
}

/// The changelog topic of store `store` of application `application_id`, named as Kafka
/// Streams names it.
pub(crate) fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}
