//! The persistent backend: a [redb](https://docs.rs/redb) file per store and task (a
//! pure-Rust copy-on-write B-tree), with writes gathered in memory between flushes.
//!
//! Recently read or written values stay in a cache (hot keys, such as the open windows'
//! counts, never reach the file on a read). Writes go to an ordered buffer and reach the
//! file in one write transaction per flush, that is per commit of the task, with the
//! checkpoint (the changelog offset the store then holds) in the same transaction, so the
//! file and its checkpoint never disagree. A flush without a checkpoint (exactly-once
//! processing, where the changelog is the truth) clears the stored one, so that a crash
//! before the next clean flush replays the whole changelog.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;

use bytes::Bytes;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use super::{KeyValueBytes, StoreError};

const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const CHECKPOINT: &str = "changelog_checkpoint";

/// Entries the read cache holds at most; past that it starts over at the next flush.
const CACHE_ENTRIES: usize = 100_000;

/// A store in a redb file, with a write buffer and a read cache.
pub(crate) struct RedbStore {
    name: String,
    db: Database,
    /// Writes not yet in the file (`None`: a delete).
    pending: BTreeMap<Bytes, Option<Bytes>>,
    /// Values read or written lately (`None`: absent), so hot keys skip the file.
    cache: HashMap<Bytes, Option<Bytes>>,
    checkpoint: Option<i64>,
}

impl RedbStore {
    /// Opens (or creates) the store `name` in file `path`.
    pub(crate) fn open(name: &str, path: &Path) -> Result<RedbStore, StoreError> {
        let fail = |reason: String| StoreError {
            store: name.to_owned(),
            reason,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| fail(format!("creating {}: {e}", parent.display())))?;
        }
        let db = Database::builder()
            .set_cache_size(64 << 20)
            .create(path)
            .map_err(|e| fail(format!("opening {}: {e}", path.display())))?;
        let mut store = RedbStore {
            name: name.to_owned(),
            db,
            pending: BTreeMap::new(),
            cache: HashMap::new(),
            checkpoint: None,
        };
        store.checkpoint = store.read_checkpoint()?;
        if store.checkpoint.is_none() {
            // Without a checkpoint nothing says what the file holds: the changelog is
            // replayed from its start into an empty store.
            KeyValueBytes::clear(&mut store)?;
        }
        Ok(store)
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            store: self.name.clone(),
            reason: format!("{what}: {e}"),
        }
    }

    fn read_checkpoint(&self) -> Result<Option<i64>, StoreError> {
        let read = self.db.begin_read().map_err(|e| self.error("read", e))?;
        let meta = match read.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.error("open meta", e)),
        };
        let value = meta.get(CHECKPOINT).map_err(|e| self.error("read", e))?;
        Ok(value.map(|v| v.value()))
    }

    /// The value of `key` in the file.
    fn file_get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let read = self.db.begin_read().map_err(|e| self.error("read", e))?;
        let table = match read.open_table(ENTRIES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.error("open", e)),
        };
        let value = table.get(key).map_err(|e| self.error("get", e))?;
        Ok(value.map(|v| Bytes::copy_from_slice(v.value())))
    }

    /// Entries of the file in `[from, to)`, in key order.
    fn file_range(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        let read = self.db.begin_read().map_err(|e| self.error("read", e))?;
        let table = match read.open_table(ENTRIES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.error("open", e)),
        };
        let upper = to.map_or(Bound::Unbounded, Bound::Excluded);
        let range = table
            .range::<&[u8]>((Bound::Included(from), upper))
            .map_err(|e| self.error("range", e))?;
        let mut out = Vec::new();
        for entry in range {
            let (k, v) = entry.map_err(|e| self.error("range", e))?;
            out.push((
                Bytes::copy_from_slice(k.value()),
                Bytes::copy_from_slice(v.value()),
            ));
        }
        Ok(out)
    }
}

impl KeyValueBytes for RedbStore {
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        if let Some(cached) = self.cache.get(key) {
            return Ok(cached.clone());
        }
        let value = self.file_get(key)?;
        self.cache
            .insert(Bytes::copy_from_slice(key), value.clone());
        Ok(value)
    }

    fn put(&mut self, key: Bytes, value: Bytes) -> Result<(), StoreError> {
        self.cache.insert(key.clone(), Some(value.clone()));
        self.pending.insert(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let key = Bytes::copy_from_slice(key);
        self.cache.insert(key.clone(), None);
        self.pending.insert(key, None);
        Ok(())
    }

    fn range(&mut self, from: &[u8], to: Option<&[u8]>) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        let mut merged: BTreeMap<Bytes, Bytes> = self.file_range(from, to)?.into_iter().collect();
        let upper = to.map_or(Bound::Unbounded, Bound::Excluded);
        for (k, v) in self
            .pending
            .range::<[u8], _>((Bound::Included(from), upper))
        {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }

    fn flush(&mut self, checkpoint: Option<i64>) -> Result<(), StoreError> {
        let mut write = self.db.begin_write().map_err(|e| self.error("write", e))?;
        // The changelog holds every change: a crash losing the last flush costs a longer
        // replay, not data, unless a checkpoint is being recorded.
        let durability = if checkpoint.is_some() {
            Durability::Immediate
        } else {
            Durability::None
        };
        write
            .set_durability(durability)
            .map_err(|e| self.error("write", e))?;
        {
            let mut table = write
                .open_table(ENTRIES)
                .map_err(|e| self.error("open", e))?;
            for (k, v) in std::mem::take(&mut self.pending) {
                match v {
                    Some(v) => table.insert(k.as_ref(), v.as_ref()),
                    None => table.remove(k.as_ref()),
                }
                .map_err(|e| self.error("write", e))?;
            }
            let mut meta = write.open_table(META).map_err(|e| self.error("open", e))?;
            match checkpoint {
                Some(offset) => meta.insert(CHECKPOINT, offset),
                None => meta.remove(CHECKPOINT),
            }
            .map_err(|e| self.error("write", e))?;
        }
        write.commit().map_err(|e| self.error("commit", e))?;
        self.checkpoint = checkpoint;
        if self.cache.len() > CACHE_ENTRIES {
            self.cache.clear();
        }
        Ok(())
    }

    fn checkpoint(&self) -> Option<i64> {
        self.checkpoint
    }

    fn clear(&mut self) -> Result<(), StoreError> {
        self.pending.clear();
        self.cache.clear();
        self.checkpoint = None;
        let write = self.db.begin_write().map_err(|e| self.error("write", e))?;
        write
            .delete_table(ENTRIES)
            .map_err(|e| self.error("clear", e))?;
        write
            .delete_table(META)
            .map_err(|e| self.error("clear", e))?;
        write.commit().map_err(|e| self.error("commit", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn writes_survive_a_reopen_with_their_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut store = RedbStore::open("s", &path).unwrap();
        store.put(b("a"), b("1")).unwrap();
        store.put(b("b"), b("2")).unwrap();
        store.flush(Some(7)).unwrap();
        store.delete(b"a").unwrap();
        store.put(b("c"), b("3")).unwrap();
        // Pending writes are read before the file's.
        assert_eq!(store.get(b"a").unwrap(), None);
        let all = store.range(b"", None).unwrap();
        assert_eq!(all, [(b("b"), b("2")), (b("c"), b("3"))]);
        drop(store);
        // Unflushed writes are gone; the flushed ones and their checkpoint are not.
        let mut store = RedbStore::open("s", &path).unwrap();
        assert_eq!(store.checkpoint(), Some(7));
        assert_eq!(store.get(b"a").unwrap(), Some(b("1")));
        assert_eq!(store.range(b"b", Some(b"c")).unwrap(), [(b("b"), b("2"))]);
        store.flush(None).unwrap();
        drop(store);
        assert_eq!(RedbStore::open("s", &path).unwrap().checkpoint(), None);
    }

    #[test]
    fn a_file_that_is_not_a_store_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, b"not a database at all, just some bytes").unwrap();
        let err = RedbStore::open("counts", &path).err().unwrap();
        assert!(err.to_string().contains("state store counts"), "{err}");
    }
}
