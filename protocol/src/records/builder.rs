//! [`BatchBuilder`]: accumulates records and writes one batch (compressed, CRC-stamped).

use bytes::Bytes;

use super::batch::{
    write_crc, LOG_OVERHEAD, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
    NO_SEQUENCE,
};
use super::record::encode_record;
use super::{Compression, RecordsError, BATCH_HEADER_LEN, MAGIC_V2};

/// Timestamp of a batch with no records.
const NO_TIMESTAMP: i64 = -1;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// Builds one record batch.
///
/// Records are encoded as they are pushed (offset delta = push index, timestamp delta from the
/// first record's timestamp), after room left for the header; [`BatchBuilder::build`]
/// compresses them and writes the header (uncompressed, into that room, so the records are
/// not copied again).
/// Defaults: base offset 0, partition leader epoch -1, producer id / epoch / sequence -1,
/// `CreateTime`, not transactional, not control.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    compression: Compression,
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    /// Room for the header, then the encoded records.
    records: Vec<u8>,
    scratch: Vec<u8>,
    count: usize,
    base_timestamp: i64,
    max_timestamp: i64,
    oversized: Option<usize>,
}

impl BatchBuilder {
    /// An empty builder writing with `compression`.
    pub fn new(compression: Compression) -> Self {
        Self::with_capacity(compression, 0)
    }

    /// An empty builder writing with `compression`, with room for a batch of `capacity`
    /// bytes before it grows (a producer's `batch.size`).
    pub fn with_capacity(compression: Compression, capacity: usize) -> Self {
        let mut records = Vec::with_capacity(capacity.max(BATCH_HEADER_LEN));
        records.resize(BATCH_HEADER_LEN, 0);
        Self {
            compression,
            base_offset: 0,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            control: false,
            records,
            scratch: Vec::new(),
            count: 0,
            base_timestamp: NO_TIMESTAMP,
            max_timestamp: NO_TIMESTAMP,
            oversized: None,
        }
    }

    /// Sets the base offset (producers send 0; the leader assigns the real one).
    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    /// Sets the idempotent producer identity and the sequence of the first record.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch as part of a transaction (attribute bit 4).
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Marks the batch as holding control records (attribute bit 5).
    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// Sets the partition leader epoch.
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Appends a record. A key, value or header over `i32::MAX` bytes makes
    /// [`BatchBuilder::build`] fail with [`RecordsError::BatchTooLarge`].
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        if self.count == 0 {
            self.base_timestamp = timestamp;
            self.max_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        let Ok(offset_delta) = i32::try_from(self.count) else {
            self.oversized = Some(self.estimated_size());
            return;
        };
        let timestamp_delta = timestamp.wrapping_sub(self.base_timestamp);
        let encoded = encode_record(
            &mut self.records,
            &mut self.scratch,
            offset_delta,
            timestamp_delta,
            key,
            value,
            headers,
        );
        match encoded {
            Ok(()) => self.count += 1,
            Err(len) => self.oversized = Some(len),
        }
    }

    /// Bytes of batch (header included) the builder has room for before its buffer grows.
    pub fn capacity(&self) -> usize {
        self.records.capacity()
    }

    /// Number of records pushed.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no record has been pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch if it were built uncompressed: an upper estimate for compressed
    /// batches, used by producers to decide when a batch is full.
    pub fn estimated_size(&self) -> usize {
        self.records.len()
    }

    /// Compresses the records and writes the batch with its CRC.
    ///
    /// An empty builder gives a batch with `recordsCount` 0, `lastOffsetDelta` -1 and
    /// timestamps -1 (which [`validate_batches`](super::validate_batches) rejects, as Kafka
    /// does for produce).
    pub fn build(mut self) -> Result<Bytes, RecordsError> {
        if let Some(size) = self.oversized {
            return Err(RecordsError::BatchTooLarge { size });
        }
        let too_large = |size| RecordsError::BatchTooLarge { size };
        let count = i32::try_from(self.count).map_err(|_| too_large(self.records.len()))?;
        let mut out = match self.compression {
            Compression::None => std::mem::take(&mut self.records),
            codec => {
                let payload =
                    codec.compress(self.records.get(BATCH_HEADER_LEN..).unwrap_or_default())?;
                let mut out = Vec::with_capacity(BATCH_HEADER_LEN + payload.len());
                out.resize(BATCH_HEADER_LEN, 0);
                out.extend_from_slice(&payload);
                out
            }
        };
        let total = out.len();
        let batch_length = i32::try_from(total - LOG_OVERHEAD).map_err(|_| too_large(total))?;
        let mut header = Vec::with_capacity(BATCH_HEADER_LEN);
        header.extend_from_slice(&self.base_offset.to_be_bytes());
        header.extend_from_slice(&batch_length.to_be_bytes());
        header.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        header.extend_from_slice(&MAGIC_V2.to_be_bytes());
        header.extend_from_slice(&0u32.to_be_bytes()); // CRC, stamped below
        header.extend_from_slice(&self.attributes().to_be_bytes());
        header.extend_from_slice(&(count - 1).to_be_bytes());
        header.extend_from_slice(&self.base_timestamp.to_be_bytes());
        header.extend_from_slice(&self.max_timestamp.to_be_bytes());
        header.extend_from_slice(&self.producer_id.to_be_bytes());
        header.extend_from_slice(&self.producer_epoch.to_be_bytes());
        header.extend_from_slice(&self.base_sequence.to_be_bytes());
        header.extend_from_slice(&count.to_be_bytes());
        // The records start after exactly this many bytes.
        debug_assert_eq!(header.len(), BATCH_HEADER_LEN);
        if let Some(room) = out.get_mut(..header.len()) {
            room.copy_from_slice(&header);
        }
        write_crc(&mut out);
        Ok(Bytes::from(out))
    }

    fn attributes(&self) -> i16 {
        let mut attributes = self.compression.id();
        if self.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if self.control {
            attributes |= CONTROL_BIT;
        }
        attributes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{decode_batch, BatchHeader};

    #[test]
    fn header_fields_follow_the_records() {
        let mut b = BatchBuilder::new(Compression::Gzip)
            .base_offset(5)
            .partition_leader_epoch(2)
            .producer(11, 1, 40)
            .transactional(true);
        assert!(b.is_empty());
        for ts in [300, 100, 500, 200] {
            b.push(ts, None, Some(b"x"), &[]);
        }
        assert_eq!(b.len(), 4);
        assert!(b.estimated_size() > BATCH_HEADER_LEN);
        let batch = b.build().unwrap();
        let h = BatchHeader::parse(&batch).unwrap();
        assert_eq!(h.total_len(), batch.len());
        assert_eq!((h.base_offset, h.partition_leader_epoch), (5, 2));
        assert_eq!((h.last_offset_delta, h.records_count), (3, 4));
        assert_eq!((h.base_timestamp, h.max_timestamp), (300, 500));
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (11, 1, 40)
        );
        assert_eq!(h.last_sequence(), 43);
        assert_eq!(h.compression().unwrap(), Compression::Gzip);
        assert!(h.is_transactional() && !h.is_control());
        let (_, records) = decode_batch(&batch).unwrap();
        let ts: Vec<_> = records.iter().map(|r| (r.offset, r.timestamp)).collect();
        assert_eq!(ts, [(5, 300), (6, 100), (7, 500), (8, 200)]);
    }

    #[test]
    fn defaults_match_a_plain_producer() {
        let mut b = BatchBuilder::new(Compression::None).control(true);
        b.push(1, Some(b"k"), None, &[]);
        let batch = b.build().unwrap();
        let h = BatchHeader::parse(&batch).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (-1, -1, -1)
        );
        assert_eq!((h.base_offset, h.partition_leader_epoch), (0, -1));
        assert!(h.is_control() && !h.is_transactional());
        assert_eq!(h.attributes, 1 << 5);
    }

    #[test]
    fn empty_builder_builds_an_empty_batch() {
        let batch = BatchBuilder::new(Compression::Lz4).build().unwrap();
        let (h, records) = decode_batch(&batch).unwrap();
        assert!(records.is_empty());
        assert_eq!(
            (h.records_count, h.last_offset_delta, h.max_timestamp),
            (0, -1, -1)
        );
        assert_eq!(h.next_offset(), h.base_offset);
    }

    #[test]
    fn uncompressed_batches_are_built_where_their_records_were_encoded() {
        let mut b = BatchBuilder::with_capacity(Compression::None, 4096);
        let room = b.records.as_ptr();
        for i in 0..20u8 {
            b.push(i64::from(i), Some(&[i]), Some(&[i; 100]), &[("h", None)]);
        }
        assert_eq!(b.records.as_ptr(), room, "the records outgrew the capacity");
        let size = b.estimated_size();
        let batch = b.build().unwrap();
        assert_eq!(batch.as_ptr(), room);
        assert_eq!(batch.len(), size);
        let (h, records) = decode_batch(&batch).unwrap();
        assert_eq!(h.records_count, 20);
        assert_eq!(records[7].value.as_deref(), Some(&[7u8; 100][..]));
        assert_eq!(records[7].key.as_deref(), Some(&[7u8][..]));
    }

    #[test]
    fn extreme_timestamps_round_trip() {
        let mut b = BatchBuilder::new(Compression::None);
        for ts in [i64::MAX, i64::MIN, 0, -1] {
            b.push(ts, None, None, &[]);
        }
        let (_, records) = decode_batch(&b.build().unwrap()).unwrap();
        let ts: Vec<_> = records.iter().map(|r| r.timestamp).collect();
        assert_eq!(ts, [i64::MAX, i64::MIN, 0, -1]);
    }
}
