//! Control records: the transaction markers a partition leader writes when a transaction
//! ends (KIP-98).
//!
//! A marker is a batch of its own with the control and transactional attribute bits set,
//! the producer's id and epoch in the header, and one record whose key is
//! `version: i16 = 0, type: i16` (0 abort, 1 commit) and whose value is
//! `version: i16 = 0, coordinator_epoch: i32`.
//!
//! ```
//! use strom_protocol::records::{end_transaction_marker, marker_of, Marker};
//!
//! let batch = end_transaction_marker(4000, 3, true, 7, 1_700_000_000_000)?;
//! let marker = marker_of(&batch)?;
//! assert_eq!(marker, Marker { commit: true, coordinator_epoch: 7 });
//! # Ok::<(), strom_protocol::records::RecordsError>(())
//! ```

use bytes::Bytes;

use super::{decode_batch, BatchBuilder, Compression, RecordsError};

/// The control record type of an aborted transaction's marker.
const ABORT: i16 = 0;
/// The control record type of a committed transaction's marker.
const COMMIT: i16 = 1;

/// What a transaction marker says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    /// Whether the transaction committed (else it aborted).
    pub commit: bool,
    /// The epoch of the transaction coordinator that wrote it.
    pub coordinator_epoch: i32,
}

/// A marker batch ending producer `producer_id`'s transaction (at `producer_epoch`) with
/// `commit` or abort, written at `timestamp_ms` for coordinator epoch `coordinator_epoch`.
///
/// # Errors
/// Only if the batch cannot be encoded (it always can).
pub fn end_transaction_marker(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Result<Bytes, RecordsError> {
    let kind = if commit { COMMIT } else { ABORT };
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&kind.to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(producer_id, producer_epoch, -1)
        .transactional(true)
        .control(true);
    builder.push(timestamp_ms, Some(&key), Some(&value), &[]);
    builder.build()
}

/// The marker held by control batch `batch` (one whole batch).
///
/// # Errors
/// [`RecordsError::BadBatch`] when `batch` is not a control batch or its record is not a
/// transaction marker; decoding errors of the batch itself.
pub fn marker_of(batch: &[u8]) -> Result<Marker, RecordsError> {
    let (header, records) = decode_batch(batch)?;
    if !header.is_control() {
        return Err(RecordsError::BadBatch("not a control batch".to_owned()));
    }
    let record = records
        .first()
        .ok_or_else(|| RecordsError::BadBatch("a control batch without records".to_owned()))?;
    let key = record.key.as_deref().unwrap_or_default();
    let kind = match key {
        [0, 0, high, low] => i16::from_be_bytes([*high, *low]),
        _ => {
            return Err(RecordsError::BadBatch(format!(
                "control record key of {} bytes is not version 0",
                key.len()
            )))
        }
    };
    let commit = match kind {
        COMMIT => true,
        ABORT => false,
        other => {
            return Err(RecordsError::BadBatch(format!(
                "control record type {other} is not a transaction marker"
            )))
        }
    };
    let value = record.value.as_deref().unwrap_or_default();
    let coordinator_epoch = match value {
        [_, _, a, b, c, d, ..] => i32::from_be_bytes([*a, *b, *c, *d]),
        _ => -1,
    };
    Ok(Marker {
        commit,
        coordinator_epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::BatchHeader;

    #[test]
    fn markers_round_trip_with_kafka_header_bits() {
        for commit in [true, false] {
            let batch = end_transaction_marker(12, 4, commit, 9, 5).unwrap();
            let header = BatchHeader::parse(&batch).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (12, 4));
            assert_eq!(header.records_count, 1);
            assert_eq!(
                marker_of(&batch).unwrap(),
                Marker {
                    commit,
                    coordinator_epoch: 9
                }
            );
        }
    }

    #[test]
    fn data_batches_and_unknown_control_types_are_refused() {
        let mut data = BatchBuilder::new(Compression::None);
        data.push(0, Some(b"\0\0\0\x01"), None, &[]);
        assert!(marker_of(&data.build().unwrap()).is_err());
        let mut other = BatchBuilder::new(Compression::None).control(true);
        other.push(0, Some(&[0, 0, 0, 5]), None, &[]);
        assert!(marker_of(&other.build().unwrap()).is_err());
        let mut short = BatchBuilder::new(Compression::None).control(true);
        short.push(0, Some(&[0]), None, &[]);
        assert!(marker_of(&short.build().unwrap()).is_err());
    }
}
