//! Offsets by timestamp, for `ListOffsets`: the earliest record at or after a timestamp,
//! and the record with the largest timestamp (spec `-3`, `MAX_TIMESTAMP`).
//!
//! A search skips segments whose largest timestamp is below the target, starts inside the
//! first other segment at the last time index entry older than the target (everything up
//! to it is older), walks batch headers to the first batch whose max timestamp reaches the
//! target, and decodes that batch to find the exact record, as Kafka does.

use strom_protocol::records::decode_batch;

use super::error::LogError;
use super::scan::{BatchScanner, Step};
use super::segment::LogSegment;
use super::PartitionLog;

const SCAN_CHUNK: usize = 64 * 1024;

impl PartitionLog {
    /// The earliest record (at or after the log start offset) whose timestamp is
    /// `>= timestamp`, as (offset, record timestamp); `None` if there is none.
    ///
    /// # Errors
    /// I/O errors and [`LogError::Corrupt`] when a batch does not decode.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, LogError> {
        for segment in self.all_segments() {
            if segment
                .max_timestamp()
                .is_none_or(|(max, _)| max < timestamp)
            {
                continue;
            }
            if let Some(found) = segment.find_by_timestamp(timestamp, self.log_start_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The largest record timestamp in the log and the offset of the first record carrying
    /// it, as (timestamp, offset); `None` for an empty log.
    ///
    /// # Errors
    /// I/O errors and [`LogError::Corrupt`] when the batch does not decode.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        let mut best: Option<(&LogSegment, i64, i64)> = None;
        for segment in self.all_segments() {
            if let Some((max, offset)) = segment.max_timestamp() {
                if best.is_none_or(|(_, m, _)| max > m) {
                    best = Some((segment, max, offset));
                }
            }
        }
        let Some((segment, max, batch_offset)) = best else {
            return Ok(None);
        };
        let Some((position, header)) = segment.find_batch(batch_offset)? else {
            return Ok(Some((max, batch_offset)));
        };
        let bytes = segment.read_batch(position, &header)?;
        let (_, records) =
            decode_batch(&bytes).map_err(|e| segment.corrupt(position, e.to_string()))?;
        let offset = records
            .iter()
            .find(|r| r.timestamp == max)
            .map_or(header.base_offset, |r| r.offset);
        Ok(Some((max, offset)))
    }
}

impl LogSegment {
    /// The first record in this segment with timestamp `>= timestamp` and offset
    /// `>= min_offset`.
    pub(crate) fn find_by_timestamp(
        &self,
        timestamp: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let from = self
            .time_index
            .lookup_before(timestamp)
            .map_or(self.base_offset, |(_, offset)| offset)
            .max(min_offset);
        let start = self
            .offset_index
            .lookup(from)
            .map_or(0, |(_, position)| position);
        let mut scanner = BatchScanner::new(&self.file, start, self.size, SCAN_CHUNK);
        loop {
            let (header, position) = match scanner.next_step().map_err(|e| self.read_error(e))? {
                Step::Batch { header, position } => (header, position),
                Step::End => return Ok(None),
                Step::Torn { position, reason } => return Err(self.corrupt(position, reason)),
            };
            if header.last_offset() < min_offset || header.max_timestamp < timestamp {
                continue;
            }
            let bytes = scanner
                .batch_bytes(&header, position)
                .map_err(|e| self.read_error(e))?;
            let (_, records) =
                decode_batch(bytes).map_err(|e| self.corrupt(position, e.to_string()))?;
            let found = records
                .iter()
                .find(|r| r.timestamp >= timestamp && r.offset >= min_offset);
            if let Some(record) = found {
                return Ok(Some((record.offset, record.timestamp)));
            }
        }
    }
}
