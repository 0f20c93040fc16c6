//! Idempotent-producer state of one partition: per producer id, its epoch and the last few
//! batches' sequence ranges (Kafka's `ProducerStateManager`).
//!
//! A batch from producer `p` at epoch `e` with sequences `first..=last` is:
//! - a duplicate when one of the last [`RETAINED_BATCHES`] batches of `p` at `e` has the same
//!   range: the broker answers with the offsets it stored the first time and appends nothing;
//! - in order when `first` follows the last stored sequence (or is 0 at a new epoch, or
//!   the producer is unknown here: its earlier batches may have been deleted);
//! - otherwise out of order (`OUT_OF_ORDER_SEQUENCE_NUMBER`), or fenced when `e` is older
//!   than the producer's current epoch (`INVALID_PRODUCER_EPOCH`).
//!
//! The state is rebuilt from the batch headers in the log when a partition is opened, so it
//! survives restarts without a separate snapshot.

use std::collections::{HashMap, VecDeque};

use strom_protocol::records::BatchHeader;
use strom_protocol::ErrorCode;

/// How many recent batches per producer are kept for duplicate detection; Kafka clients keep
/// at most five requests in flight per partition.
pub const RETAINED_BATCHES: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchRange {
    first_seq: i32,
    last_seq: i32,
    first_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchRange>,
}

/// The verdict on an incoming batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already stored at these offsets; append nothing.
    Duplicate {
        /// First offset of the stored batch.
        first_offset: i64,
        /// Last offset of the stored batch.
        last_offset: i64,
    },
    /// Refuse it with this error.
    Reject(ErrorCode),
}

/// Producer states of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStates {
    /// Decides what to do with a batch. Batches without a producer id are always appended.
    pub fn check(&self, batch: &BatchHeader) -> SequenceCheck {
        if batch.producer_id < 0 {
            return SequenceCheck::Append;
        }
        let first = batch.base_sequence;
        let last = batch.last_sequence();
        // A producer this partition has no state for is taken at its word, as Kafka does:
        // retention, DeleteRecords or compaction may have removed its earlier batches.
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return SequenceCheck::Append;
        };
        if batch.producer_epoch < entry.epoch {
            return SequenceCheck::Reject(ErrorCode::INVALID_PRODUCER_EPOCH);
        }
        if batch.producer_epoch > entry.epoch {
            return if first == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
            };
        }
        if let Some(stored) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return SequenceCheck::Duplicate {
                first_offset: stored.first_offset,
                last_offset: stored.last_offset,
            };
        }
        match entry.batches.back() {
            Some(latest) if first != next_seq(latest.last_seq) => {
                SequenceCheck::Reject(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Records a batch that was appended at `first_offset`.
    pub fn record(&mut self, batch: &BatchHeader, first_offset: i64) {
        if batch.producer_id < 0 || batch.base_sequence < 0 {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == RETAINED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchRange {
            first_seq: batch.base_sequence,
            last_seq: batch.last_sequence(),
            first_offset,
            last_offset: first_offset + i64::from(batch.last_offset_delta),
        });
    }

    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True when no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn in_order_duplicates_and_gaps() {
        let mut s = ProducerStates::default();
        let b0 = batch(7, 0, 0, 10);
        assert_eq!(s.check(&b0), SequenceCheck::Append);
        s.record(&b0, 100);
        assert_eq!(
            s.check(&b0),
            SequenceCheck::Duplicate {
                first_offset: 100,
                last_offset: 109
            }
        );
        let gap = batch(7, 0, 11, 5);
        assert_eq!(
            s.check(&gap),
            SequenceCheck::Reject(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        let next = batch(7, 0, 10, 5);
        assert_eq!(s.check(&next), SequenceCheck::Append);
        s.record(&next, 110);
        let old_epoch = batch(7, -1, 15, 1);
        assert_eq!(
            s.check(&old_epoch),
            SequenceCheck::Reject(ErrorCode::INVALID_PRODUCER_EPOCH)
        );
        let bumped = batch(7, 1, 0, 1);
        assert_eq!(s.check(&bumped), SequenceCheck::Append);
    }

    #[test]
    fn unknown_producers_and_plain_batches_pass() {
        let s = ProducerStates::default();
        assert_eq!(s.check(&batch(9, 0, 3, 1)), SequenceCheck::Append);
        assert_eq!(s.check(&batch(-1, -1, -1, 3)), SequenceCheck::Append);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            let b = batch(1, 0, i, 1);
            assert_eq!(s.check(&b), SequenceCheck::Append);
            s.record(&b, i64::from(i));
        }
        assert!(matches!(
            s.check(&batch(1, 0, 6, 1)),
            SequenceCheck::Duplicate { .. }
        ));
        assert!(matches!(
            s.check(&batch(1, 0, 1, 1)),
            SequenceCheck::Reject(_)
        ));
    }
}
