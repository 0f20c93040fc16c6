//! [`BatchHeader`]: the fixed 61-byte header of a record batch, its CRC, and the two fields
//! a broker rewrites in place (base offset, partition leader epoch), which the CRC skips.
//!
//! ```text
//! 0  baseOffset i64        | 8  batchLength i32     | 12 partitionLeaderEpoch i32
//! 16 magic i8              | 17 crc u32 (CRC32C of bytes 21..end)
//! 21 attributes i16        | 23 lastOffsetDelta i32 | 27 baseTimestamp i64
//! 35 maxTimestamp i64      | 43 producerId i64      | 51 producerEpoch i16
//! 53 baseSequence i32      | 57 recordsCount i32    | 61 records...
//! ```

use super::{Compression, RecordsError, BATCH_HEADER_LEN, MAGIC_V2};

/// Bytes before `batchLength` counts: baseOffset + batchLength.
pub(crate) const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batchLength`: a header with no records.
pub(crate) const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
/// Offset of the magic byte.
pub(crate) const MAGIC_OFFSET: usize = 16;
/// Offset of the CRC.
const CRC_OFFSET: usize = 17;
/// Offset of the attributes, where CRC coverage starts.
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;

const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;
const DELETE_HORIZON_BIT: i16 = 1 << 6;

/// No producer id / epoch / sequence (idempotence off).
pub const NO_PRODUCER_ID: i64 = -1;
/// No producer epoch.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// No sequence number.
pub const NO_SEQUENCE: i32 = -1;
/// No partition leader epoch (what producers send).
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// The decoded fixed header of one record batch (magic 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after this field: total batch size minus 12.
    pub batch_length: i32,
    /// Leader epoch of the leader that appended the batch (-1 from producers).
    pub partition_leader_epoch: i32,
    /// Always [`MAGIC_V2`].
    pub magic: i8,
    /// CRC32C of the bytes from the attributes to the end of the batch.
    pub crc: u32,
    /// Codec, timestamp type, transactional, control and delete-horizon bits.
    pub attributes: i16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (or the delete horizon when that bit is set).
    pub base_timestamp: i64,
    /// Largest record timestamp (the append time for `LogAppendTime` batches).
    pub max_timestamp: i64,
    /// Idempotent / transactional producer id, -1 if none.
    pub producer_id: i64,
    /// Producer epoch, -1 if none.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 if none.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the first 61 bytes of `buf` (the rest of the batch need not be present).
    ///
    /// Checks `batchLength >= 49` and `magic == 2`; does not check the CRC (see [`verify_crc`]).
    pub fn parse(buf: &[u8]) -> Result<Self, RecordsError> {
        let h: &[u8; BATCH_HEADER_LEN] = buf.first_chunk().ok_or(RecordsError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: buf.len(),
        })?;
        let batch_length = i32::from_be_bytes(field(h, 8));
        if batch_length < MIN_BATCH_LENGTH {
            return Err(RecordsError::BadLength {
                batch_length,
                min: MIN_BATCH_LENGTH,
            });
        }
        let magic = h[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(RecordsError::BadMagic(magic));
        }
        Ok(Self {
            base_offset: i64::from_be_bytes(field(h, 0)),
            batch_length,
            partition_leader_epoch: i32::from_be_bytes(field(h, 12)),
            magic,
            crc: u32::from_be_bytes(field(h, CRC_OFFSET)),
            attributes: i16::from_be_bytes(field(h, ATTRIBUTES_OFFSET)),
            last_offset_delta: i32::from_be_bytes(field(h, 23)),
            base_timestamp: i64::from_be_bytes(field(h, 27)),
            max_timestamp: i64::from_be_bytes(field(h, MAX_TIMESTAMP_OFFSET)),
            producer_id: i64::from_be_bytes(field(h, 43)),
            producer_epoch: i16::from_be_bytes(field(h, 51)),
            base_sequence: i32::from_be_bytes(field(h, 53)),
            records_count: i32::from_be_bytes(field(h, 57)),
        })
    }

    /// Size of the whole batch in bytes: `batch_length + 12`.
    pub fn total_len(&self) -> usize {
        usize::try_from(self.batch_length).unwrap_or(0) + LOG_OVERHEAD
    }

    /// Offset of the last record: `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// Offset after the batch: `last_offset() + 1`.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// The codec in attribute bits 0-2.
    pub fn compression(&self) -> Result<Compression, RecordsError> {
        Compression::from_attributes(self.attributes)
    }

    /// Attribute bit 4: the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Attribute bit 5: the batch holds control records (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Attribute bit 3: timestamps are `LogAppendTime` (the broker's), not `CreateTime`.
    pub fn timestamp_type_log_append(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    /// Attribute bit 6: `base_timestamp` holds the delete horizon set by log compaction.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }

    /// Sequence of the last record: `base_sequence + last_offset_delta`, wrapping past
    /// `i32::MAX` to 0 as Kafka does; -1 when the batch has no sequence.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
/// Computed in i64 so corrupt (negative) deltas cannot overflow.
pub(crate) fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    let (sequence, increment, max) = (
        i64::from(sequence),
        i64::from(increment),
        i64::from(i32::MAX),
    );
    let next = if sequence > max - increment {
        increment - (max - sequence) - 1
    } else {
        sequence + increment
    };
    next as i32
}

fn field<const N: usize>(h: &[u8; BATCH_HEADER_LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = h.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// Checks that `batch` is exactly one whole batch (magic 2, length matching the slice) whose
/// CRC32C is correct.
pub fn verify_crc(batch: &[u8]) -> Result<(), RecordsError> {
    check_batch(batch).map(|_| ())
}

/// [`verify_crc`] returning the parsed header.
pub(crate) fn check_batch(batch: &[u8]) -> Result<BatchHeader, RecordsError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len() != batch.len() {
        return Err(RecordsError::LengthMismatch {
            declared: header.total_len(),
            actual: batch.len(),
        });
    }
    let actual = crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or_default());
    if actual != header.crc {
        return Err(RecordsError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    Ok(header)
}

/// Overwrites the base offset (bytes 0..8), as a leader does on append. The CRC does not
/// cover it. Does nothing if `batch` is shorter than 8 bytes.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    write_at(batch, 0, &base_offset.to_be_bytes());
}

/// Overwrites the partition leader epoch (bytes 12..16), as a leader does on append. The CRC
/// does not cover it. Does nothing if `batch` is shorter than 16 bytes.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    write_at(batch, 12, &epoch.to_be_bytes());
}

/// Turns a whole batch into a `LogAppendTime` batch stamped `timestamp`: sets attribute bit 3
/// and `maxTimestamp`, then recomputes the CRC (what a broker with
/// `message.timestamp.type=LogAppendTime` does on append).
pub fn set_log_append_time(batch: &mut [u8], timestamp: i64) -> Result<(), RecordsError> {
    let header = check_batch(batch)?;
    let attributes = header.attributes | TIMESTAMP_TYPE_BIT;
    write_at(batch, ATTRIBUTES_OFFSET, &attributes.to_be_bytes());
    write_at(batch, MAX_TIMESTAMP_OFFSET, &timestamp.to_be_bytes());
    write_crc(batch);
    Ok(())
}

/// Restamps a whole batch with producer epoch `epoch` and base sequence `sequence` and
/// recomputes the CRC (what an idempotent producer does to a batch it must send again
/// under new sequence numbers: after an earlier batch of its partition failed, or under a
/// bumped epoch).
pub fn set_producer_sequence(
    batch: &mut [u8],
    epoch: i16,
    sequence: i32,
) -> Result<(), RecordsError> {
    check_batch(batch)?;
    write_at(batch, PRODUCER_EPOCH_OFFSET, &epoch.to_be_bytes());
    write_at(batch, BASE_SEQUENCE_OFFSET, &sequence.to_be_bytes());
    write_crc(batch);
    Ok(())
}

/// Recomputes the CRC32C over bytes 21..end and stores it at bytes 17..21. For callers that
/// rewrite CRC-covered fields; does nothing if `batch` is shorter than a header.
pub fn write_crc(batch: &mut [u8]) {
    if batch.len() < BATCH_HEADER_LEN {
        return;
    }
    let crc = crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or_default());
    write_at(batch, CRC_OFFSET, &crc.to_be_bytes());
}

fn write_at(batch: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = batch.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::BatchBuilder;

    fn sample() -> Vec<u8> {
        let mut b = BatchBuilder::new(Compression::None)
            .base_offset(100)
            .producer(7, 3, i32::MAX - 1);
        for i in 0..3u8 {
            b.push(1_000 + i64::from(i), Some(&[i]), Some(b"v"), &[]);
        }
        b.build().unwrap().to_vec()
    }

    #[test]
    fn parses_builder_output() {
        let batch = sample();
        let h = BatchHeader::parse(&batch).unwrap();
        assert_eq!(h.total_len(), batch.len());
        assert_eq!(
            (h.base_offset, h.last_offset(), h.next_offset()),
            (100, 102, 103)
        );
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 3, i32::MAX - 1)
        );
        assert_eq!(h.last_sequence(), 0, "MAX-1 + 2 wraps to 0");
        assert_eq!(h.compression().unwrap(), Compression::None);
        assert!(!h.is_transactional() && !h.is_control() && !h.timestamp_type_log_append());
        verify_crc(&batch).unwrap();
    }

    #[test]
    fn sequence_wraps_like_kafka() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 2, 5), 2);
        let h = BatchHeader {
            base_sequence: NO_SEQUENCE,
            last_offset_delta: 4,
            ..BatchHeader::parse(&sample()).unwrap()
        };
        assert_eq!(h.last_sequence(), NO_SEQUENCE);
    }

    #[test]
    fn rejects_short_bad_magic_and_bad_length() {
        let batch = sample();
        assert!(matches!(
            BatchHeader::parse(&batch[..60]),
            Err(RecordsError::Truncated {
                needed: 61,
                available: 60
            })
        ));
        let mut bad = batch.clone();
        bad[MAGIC_OFFSET] = 1;
        assert!(matches!(
            BatchHeader::parse(&bad),
            Err(RecordsError::BadMagic(1))
        ));
        let mut bad = batch.clone();
        bad[8..12].copy_from_slice(&48i32.to_be_bytes());
        assert!(matches!(
            BatchHeader::parse(&bad),
            Err(RecordsError::BadLength { .. })
        ));
        assert!(matches!(
            verify_crc(&batch[..batch.len() - 1]),
            Err(RecordsError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn rewritten_offset_and_epoch_keep_crc_valid() {
        let mut batch = sample();
        set_base_offset(&mut batch, 1 << 40);
        set_partition_leader_epoch(&mut batch, 9);
        verify_crc(&batch).unwrap();
        let h = BatchHeader::parse(&batch).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (1 << 40, 9));
        set_base_offset(&mut [0u8; 3], 1); // too short: no-op, no panic
    }

    #[test]
    fn restamped_sequence_keeps_the_batch_valid() {
        let mut batch = sample();
        set_producer_sequence(&mut batch, 3, 42).unwrap();
        let header = check_batch(&batch).unwrap();
        assert_eq!(header.base_sequence, 42);
        assert_eq!((header.producer_id, header.producer_epoch), (7, 3));
        set_producer_sequence(&mut batch, 4, 0).unwrap();
        let header = check_batch(&batch).unwrap();
        assert_eq!((header.producer_epoch, header.base_sequence), (4, 0));
        assert!(set_producer_sequence(&mut batch[..20], 4, 1).is_err());
    }

    #[test]
    fn crc_detects_changes_to_covered_bytes() {
        let mut batch = sample();
        batch[30] ^= 1;
        assert!(matches!(
            verify_crc(&batch),
            Err(RecordsError::CrcMismatch { .. })
        ));
        write_crc(&mut batch);
        verify_crc(&batch).unwrap();
    }

    #[test]
    fn log_append_time_rewrite() {
        let mut batch = sample();
        set_log_append_time(&mut batch, 5_000).unwrap();
        verify_crc(&batch).unwrap();
        let h = BatchHeader::parse(&batch).unwrap();
        assert!(h.timestamp_type_log_append());
        assert_eq!(h.max_timestamp, 5_000);
    }
}
