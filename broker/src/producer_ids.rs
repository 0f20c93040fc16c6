//! Allocation of producer ids for InitProducerId.
//!
//! Ids are handed out from blocks; the end of the current block is persisted before any id
//! of it is used, so a restarted broker never hands out an id twice.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::BrokerError;
use crate::topics::write_atomically;

const BLOCK: i64 = 1000;
const FILE: &str = "producer_id_block";

/// Hands out unique producer ids.
pub(crate) struct ProducerIds {
    path: PathBuf,
    state: Mutex<(i64, i64)>,
}

impl ProducerIds {
    /// Loads the allocator state from `data_dir`.
    pub(crate) fn load(data_dir: &Path) -> Result<ProducerIds, BrokerError> {
        let path = data_dir.join(FILE);
        let end = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<i64>()
                .map_err(|e| BrokerError::Metadata {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(BrokerError::io(format!("reading {}", path.display()), e)),
        };
        Ok(ProducerIds {
            path,
            state: Mutex::new((end, end)),
        })
    }

    /// The next unused producer id.
    pub(crate) fn next(&self) -> Result<i64, BrokerError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (next, end) = *state;
        if next >= end {
            let new_end = next + BLOCK;
            write_atomically(&self.path, new_end.to_string().as_bytes())?;
            *state = (next + 1, new_end);
        } else {
            *state = (next + 1, end);
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::load(dir.path()).unwrap();
        assert_eq!(ids.next().unwrap(), 0);
        assert_eq!(ids.next().unwrap(), 1);
        drop(ids);
        let ids = ProducerIds::load(dir.path()).unwrap();
        assert_eq!(ids.next().unwrap(), BLOCK);
    }
}
