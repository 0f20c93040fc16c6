//! Small per-partition state files beside the segments, each one offset:
//!
//! - `log-start-offset-checkpoint`: the log start offset when it lies inside the first
//!   segment (after `DeleteRecords`), so it survives a restart.
//! - `recovery-point-offset-checkpoint`: every offset below it was fsynced; after an
//!   unclean shutdown only segments that may hold offsets at or past it are scanned.
//! - `cleaner-offset-checkpoint`: the first offset the cleaner has not compacted yet
//!   (the start of the dirty section).
//! - `clean-shutdown`: empty marker written by `close()` and removed by `open()`.
//!
//! Format (as Kafka's checkpoint files): a version line `0`, then the offset, each
//! followed by `\n`. Writes go to `<name>.tmp`, are fsynced, then renamed over the old
//! file, so a crash leaves either the old or the new value.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::error::LogError;
use super::index_file::tmp_path;

/// Log start offset checkpoint file name.
pub(crate) const LOG_START_OFFSET: &str = "log-start-offset-checkpoint";
/// Recovery point checkpoint file name.
pub(crate) const RECOVERY_POINT: &str = "recovery-point-offset-checkpoint";
/// Cleaner (first dirty offset) checkpoint file name.
pub(crate) const CLEANER_OFFSET: &str = "cleaner-offset-checkpoint";
/// Clean shutdown marker file name.
pub(crate) const CLEAN_SHUTDOWN: &str = "clean-shutdown";

/// Reads checkpoint `name` in `dir`; `None` if it is missing or unreadable as a checkpoint
/// (a garbled checkpoint only costs a longer recovery or an earlier log start).
pub(crate) fn read(dir: &Path, name: &str) -> Result<Option<i64>, LogError> {
    let path = dir.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io(dir, &path, "read", e)),
    };
    let mut lines = text.lines();
    let parsed = match (lines.next(), lines.next()) {
        (Some("0"), Some(offset)) => offset.trim().parse::<i64>().ok(),
        _ => None,
    };
    if parsed.is_none() {
        tracing::warn!(dir = %dir.display(), file = name, "ignoring unreadable checkpoint");
    }
    Ok(parsed)
}

/// Writes checkpoint `name` in `dir` atomically (tmp file, fsync, rename).
pub(crate) fn write(dir: &Path, name: &str, offset: i64) -> Result<(), LogError> {
    let path = dir.join(name);
    let tmp = tmp_path(&path);
    let result = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(format!("0\n{offset}\n").as_bytes())?;
            f.sync_data()
        })
        .and_then(|()| std::fs::rename(&tmp, &path));
    result.map_err(|e| LogError::io(dir, &path, "write checkpoint", e))
}

/// Creates the empty marker file `name` in `dir` and fsyncs it.
pub(crate) fn touch(dir: &Path, name: &str) -> Result<(), LogError> {
    let path = dir.join(name);
    File::create(&path)
        .and_then(|f| f.sync_all())
        .map_err(|e| LogError::io(dir, &path, "create", e))
}

/// Removes `name` from `dir`; returns whether it existed.
pub(crate) fn remove(dir: &Path, name: &str) -> Result<bool, LogError> {
    let path = dir.join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(LogError::io(dir, &path, "delete", e)),
    }
}

/// fsyncs the directory itself, so created, renamed and removed names are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(dir, dir, "fsync", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path(), LOG_START_OFFSET).unwrap(), None);
        write(dir.path(), LOG_START_OFFSET, 42).unwrap();
        assert_eq!(read(dir.path(), LOG_START_OFFSET).unwrap(), Some(42));
        std::fs::write(dir.path().join(LOG_START_OFFSET), "junk").unwrap();
        assert_eq!(read(dir.path(), LOG_START_OFFSET).unwrap(), None);
        assert!(!remove(dir.path(), CLEAN_SHUTDOWN).unwrap());
        touch(dir.path(), CLEAN_SHUTDOWN).unwrap();
        assert!(remove(dir.path(), CLEAN_SHUTDOWN).unwrap());
    }
}
