//! The in-memory backend: an ordered map, gone with the process (the changelog rebuilds
//! it).

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use super::{KeyValueBytes, StoreError};

/// Entries in a `BTreeMap`, ordered by key bytes.
#[derive(Default)]
pub(crate) struct MemoryStore {
    entries: BTreeMap<Bytes, Bytes>,
}

impl KeyValueBytes for MemoryStore {
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.entries.get(key).cloned())
    }

    fn put(&mut self, key: Bytes, value: Bytes) -> Result<(), StoreError> {
        self.entries.insert(key, value);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.entries.remove(key);
        Ok(())
    }

    fn range(&mut self, from: &[u8], to: Option<&[u8]>) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        let upper = to.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(self
            .entries
            .range::<[u8], _>((Bound::Included(from), upper))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn flush(&mut self, _checkpoint: Option<i64>) -> Result<(), StoreError> {
        Ok(())
    }

    fn clear(&mut self) -> Result<(), StoreError> {
        self.entries.clear();
        Ok(())
    }

    fn checkpoint(&self) -> Option<i64> {
        // Nothing survives the process: a new task replays the whole changelog.
        None
    }
}
