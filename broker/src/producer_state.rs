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
//! Transactions (KIP-98): a producer's first transactional batch on the partition opens its
//! transaction there, and the marker the coordinator has the leader write (commit or abort)
//! closes it. The last stable offset is the high watermark, or the first offset of the
//! oldest transaction still open (or closed by a marker not yet below the high watermark)
//! if that is lower: `read_committed` consumers read below it. Aborted transactions are
//! kept as `(producer, first offset, marker offset)` so fetches can tell those consumers
//! which records to skip.
//!
//! The state is rebuilt from the batch headers (and markers) in the log when a partition
//! is opened, so it survives restarts without a separate snapshot.

use std::collections::{BTreeMap, HashMap, VecDeque};

use strom_protocol::records::{BatchHeader, Marker};
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
    /// First offset of its transaction open on this partition.
    open_transaction: Option<i64>,
    /// The largest timestamp of its last batch.
    last_timestamp: i64,
    /// The epoch of the coordinator that wrote its last marker.
    coordinator_epoch: Option<i32>,
}

/// One producer as DescribeProducers shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerSummary {
    /// The producer id.
    pub producer_id: i64,
    /// Its current epoch here.
    pub producer_epoch: i16,
    /// Sequence of its last record here (-1 for none).
    pub last_sequence: i32,
    /// The largest timestamp of its last batch (-1 for none).
    pub last_timestamp: i64,
    /// The epoch of the coordinator that wrote its last marker (-1 for none).
    pub coordinator_epoch: i32,
    /// First offset of its open transaction (-1 for none).
    pub current_txn_start_offset: i64,
}

/// A transaction that ended in an abort: `read_committed` consumers skip its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTransaction {
    /// The producer whose transaction it was.
    pub producer_id: i64,
    /// Its first record on this partition.
    pub first_offset: i64,
    /// The offset of its abort marker.
    pub last_offset: i64,
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
    /// Open transactions: first offset -> producer id.
    open: BTreeMap<i64, i64>,
    /// Transactions ended by markers that may still be above the high watermark: marker
    /// offset -> first offset.
    ended: BTreeMap<i64, i64>,
    /// Aborted transactions, in marker order (so by last offset).
    aborted: Vec<AbortedTransaction>,
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
        // A coordinator's own transactional records (offsets committed in a transaction)
        // carry no sequence numbers: only the epoch is checked.
        if first < 0 {
            return SequenceCheck::Append;
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

    /// Records a data batch that was appended at `first_offset`.
    pub fn record(&mut self, batch: &BatchHeader, first_offset: i64) {
        if batch.producer_id < 0 || batch.is_control() {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = batch.max_timestamp;
        if batch.is_transactional() && entry.open_transaction.is_none() {
            entry.open_transaction = Some(first_offset);
            self.open.insert(first_offset, batch.producer_id);
        }
        if batch.base_sequence < 0 {
            return;
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

    /// Whether a transaction marker of `producer_id` at `epoch` may be written: not when
    /// the producer has moved on to a later epoch (`INVALID_PRODUCER_EPOCH`).
    pub fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<(), ErrorCode> {
        match self.producers.get(&producer_id) {
            Some(entry) if epoch < entry.epoch => Err(ErrorCode::INVALID_PRODUCER_EPOCH),
            _ => Ok(()),
        }
    }

    /// Records the transaction marker of `producer_id` (at `epoch`) written at `offset`:
    /// its transaction open here, if any, ends (committed, or aborted). `high_watermark`
    /// lets the ended transactions already below it be forgotten.
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        marker: Marker,
        offset: i64,
        high_watermark: i64,
    ) {
        let commit = marker.commit;
        let entry = self.producers.entry(producer_id).or_default();
        entry.coordinator_epoch = Some(marker.coordinator_epoch);
        if epoch > entry.epoch {
            // A bumped epoch (the coordinator aborting for a fenced or timed-out producer):
            // numbering starts over.
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if let Some(first) = entry.open_transaction.take() {
            self.open.remove(&first);
            self.ended.insert(offset, first);
            if !commit {
                self.aborted.push(AbortedTransaction {
                    producer_id,
                    first_offset: first,
                    last_offset: offset,
                });
            }
        }
        self.ended = self.ended.split_off(&high_watermark);
    }

    /// The last stable offset given the high watermark: the first offset of the oldest
    /// transaction not known to be ended below the high watermark, or the high watermark.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        let open = self.open.keys().next().copied();
        let ended = self
            .ended
            .range(high_watermark..)
            .map(|(_, &first)| first)
            .min();
        [open, ended]
            .into_iter()
            .flatten()
            .fold(high_watermark, i64::min)
    }

    /// The aborted transactions with records in `[from, to)`, oldest marker first.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTransaction> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below `log_start` (deleted by retention).
    pub fn forget_before(&mut self, log_start: i64) {
        let gone = self.aborted.partition_point(|a| a.last_offset < log_start);
        self.aborted.drain(..gone);
    }

    /// The producers tracked, by id.
    pub fn summaries(&self) -> Vec<ProducerSummary> {
        let mut out: Vec<ProducerSummary> = self
            .producers
            .iter()
            .map(|(&producer_id, entry)| ProducerSummary {
                producer_id,
                producer_epoch: entry.epoch,
                last_sequence: entry.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: if entry.batches.is_empty() {
                    -1
                } else {
                    entry.last_timestamp
                },
                coordinator_epoch: entry.coordinator_epoch.unwrap_or(-1),
                current_txn_start_offset: entry.open_transaction.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
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

    fn marker(commit: bool) -> Marker {
        Marker {
            commit,
            coordinator_epoch: 4,
        }
    }

    fn transactional(pid: i64, seq: i32, count: i32) -> BatchHeader {
        let mut header = batch(pid, 0, seq, count);
        header.attributes |= 0x10;
        header
    }

    #[test]
    fn transactions_hold_back_the_last_stable_offset_until_their_markers_are_replicated() {
        let mut s = ProducerStates::default();
        assert_eq!(s.last_stable_offset(10), 10);
        // Producer 1's transaction opens at 10, producer 2's at 12.
        s.record(&transactional(1, 0, 2), 10);
        s.record(&transactional(2, 0, 1), 12);
        s.record(&transactional(1, 2, 1), 13);
        assert_eq!(s.last_stable_offset(14), 10);
        // 1 commits at 14: 2's transaction is now the oldest open.
        s.record_marker(1, 0, marker(true), 14, 14);
        assert_eq!(
            s.last_stable_offset(14),
            10,
            "the marker is not replicated yet"
        );
        assert_eq!(s.last_stable_offset(15), 12);
        // 2 aborts at 15; until the high watermark passes the marker, 12 stays unstable.
        s.record_marker(2, 0, marker(false), 15, 15);
        assert_eq!(s.last_stable_offset(15), 12);
        assert_eq!(s.last_stable_offset(16), 16);
        let aborted = AbortedTransaction {
            producer_id: 2,
            first_offset: 12,
            last_offset: 15,
        };
        assert_eq!(s.aborted_between(0, 16), [aborted]);
        assert_eq!(s.aborted_between(16, 20), []);
        assert_eq!(s.aborted_between(0, 12), []);
        assert_eq!(s.aborted_between(13, 14), [aborted]);
        // A new transaction of producer 1 opens afresh.
        s.record(&transactional(1, 3, 1), 16);
        assert_eq!(s.last_stable_offset(17), 16);
        s.forget_before(16);
        assert_eq!(s.aborted_between(0, 20), []);
    }

    #[test]
    fn markers_of_an_older_epoch_are_refused_and_a_newer_one_fences() {
        let mut s = ProducerStates::default();
        s.record(&transactional(1, 0, 1), 0);
        assert_eq!(s.check_marker(1, 0), Ok(()));
        assert_eq!(s.check_marker(9, 0), Ok(()), "unknown producers pass");
        let open = s.summaries();
        assert_eq!(
            (
                open[0].producer_id,
                open[0].last_sequence,
                open[0].current_txn_start_offset
            ),
            (1, 0, 0)
        );
        assert_eq!(open[0].coordinator_epoch, -1);
        // The coordinator aborts with a bumped epoch: the old epoch is fenced.
        s.record_marker(1, 1, marker(false), 1, 2);
        let ended = s.summaries();
        assert_eq!(
            (ended[0].producer_epoch, ended[0].coordinator_epoch),
            (1, 4)
        );
        assert_eq!(ended[0].current_txn_start_offset, -1);
        assert_eq!(s.check_marker(1, 0), Err(ErrorCode::INVALID_PRODUCER_EPOCH));
        assert_eq!(
            s.check(&transactional(1, 1, 1)),
            SequenceCheck::Reject(ErrorCode::INVALID_PRODUCER_EPOCH)
        );
    }

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
