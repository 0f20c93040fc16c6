//! Turning a partition's `records` from a fetch response into [`ConsumerRecord`]s.
//!
//! A size-limited fetch response may end with a partial batch (the broker cuts at
//! `partition_max_bytes`); [`records::batches`] stops there and so do we: the tail is not
//! an error, it is fetched whole next time from the offset after the last whole batch.
//! A batch may start before the fetch offset (the broker returns whole batches), so
//! records below it are dropped. Control batches are skipped, and with
//! `isolation.level=read_committed` so are batches of aborted transactions, located with
//! the response's `aborted_transactions` as the Java client does.

use std::collections::HashSet;

use strom_protocol::records::{self, RecordsError};

use super::record::ConsumerRecord;

/// What one partition's fetched bytes yielded.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// Records at or after the fetch offset, in offset order.
    pub(crate) records: Vec<ConsumerRecord>,
    /// The offset after the last whole batch; `None` when the bytes held no whole batch.
    pub(crate) next_offset: Option<i64>,
}

/// An aborted transaction from a fetch response: its producer and first offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Aborted {
    pub(crate) producer_id: i64,
    pub(crate) first_offset: i64,
}

/// Decodes the whole batches of `data`, fetched for `topic`-`partition` at `fetch_offset`.
/// `aborted` is `Some` under `read_committed` (possibly empty).
///
/// # Errors
/// A corrupt batch (bad CRC, length or magic) or one that does not decompress.
pub(crate) fn decode_partition(
    topic: &str,
    partition: i32,
    fetch_offset: i64,
    data: &[u8],
    aborted: Option<Vec<Aborted>>,
) -> Result<Decoded, RecordsError> {
    let mut filter = aborted.map(AbortFilter::new);
    let mut decoded = Decoded {
        records: Vec::with_capacity(record_count(data)),
        next_offset: None,
    };
    for batch in records::batches(data) {
        let (header, range) = batch?;
        decoded.next_offset = Some(header.next_offset());
        if header.next_offset() <= fetch_offset {
            continue;
        }
        let skip = match filter.as_mut() {
            Some(f) => f.skips(&header),
            None => header.is_control(),
        };
        if skip {
            continue;
        }
        let (header, batch) = records::decode_batch(data.get(range).unwrap_or_default())?;
        let epoch = header.partition_leader_epoch;
        decoded.records.extend(
            batch
                .into_iter()
                .filter(|r| r.offset >= fetch_offset)
                .map(|r| ConsumerRecord::from_record(topic, partition, epoch, r)),
        );
    }
    Ok(decoded)
}

/// About how many records `data` holds, for the capacity of their vector: what its whole
/// batches declare, but never more than its bytes could hold uncompressed (a count is the
/// peer's word, not a reason to allocate).
fn record_count(data: &[u8]) -> usize {
    // A corrupt header fails decoding anyway; the capacity does not matter then.
    let declared = scan(data).map_or(0, |scanned| scanned.records);
    declared.min(data.len() / MIN_RECORD_BYTES)
}

/// The smallest record on the wire: its length and six one-byte fields.
const MIN_RECORD_BYTES: usize = 7;

/// What the batch headers of a partition's fetched bytes say, before any record is
/// decoded.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// The offset after the last whole batch: what [`decode_partition`] gives as
    /// `next_offset`.
    pub(crate) next_offset: Option<i64>,
    /// The records the whole batches declare.
    pub(crate) records: usize,
    /// About what the decoded records will count against the buffer's bound (see
    /// [`ConsumerRecord::size`]): the bytes plus the per-record overhead.
    pub(crate) size: usize,
}

/// Reads the batch headers of `data` (not their records).
///
/// # Errors
/// A batch whose header is corrupt (bad length or magic).
pub(crate) fn scan(data: &[u8]) -> Result<Scanned, RecordsError> {
    let mut scanned = Scanned::default();
    for batch in records::batches(data) {
        let (header, _) = batch?;
        scanned.next_offset = Some(header.next_offset());
        scanned.records = scanned
            .records
            .saturating_add(usize::try_from(header.records_count).unwrap_or(0));
    }
    scanned.size = data
        .len()
        .saturating_add(scanned.records.saturating_mul(ConsumerRecord::OVERHEAD));
    Ok(scanned)
}

/// Which batches `read_committed` hides: those of producers with an aborted transaction
/// open at the batch, until that producer's control (abort) marker.
struct AbortFilter {
    /// Aborted transactions by descending first offset; the next to open is last.
    pending: Vec<Aborted>,
    open: HashSet<i64>,
}

impl AbortFilter {
    fn new(mut aborted: Vec<Aborted>) -> Self {
        aborted.sort_by_key(|a| std::cmp::Reverse(a.first_offset));
        AbortFilter {
            pending: aborted,
            open: HashSet::new(),
        }
    }

    fn skips(&mut self, header: &records::BatchHeader) -> bool {
        while self
            .pending
            .last()
            .is_some_and(|a| a.first_offset <= header.last_offset())
        {
            if let Some(a) = self.pending.pop() {
                self.open.insert(a.producer_id);
            }
        }
        if header.is_control() {
            self.open.remove(&header.producer_id);
            return true;
        }
        header.is_transactional() && self.open.contains(&header.producer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use strom_protocol::records::{BatchBuilder, Compression};

    fn batch(base: i64, values: &[&str], compression: Compression) -> Bytes {
        let mut b = BatchBuilder::new(compression).base_offset(base);
        for v in values {
            b.push(1000, Some(b"k"), Some(v.as_bytes()), &[("h", None)]);
        }
        b.build().unwrap()
    }

    fn concat(parts: &[Bytes]) -> BytesMut {
        let mut buf = BytesMut::new();
        for p in parts {
            buf.extend_from_slice(p);
        }
        buf
    }

    #[test]
    fn scan_reads_what_decoding_finds() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, &["a", "b"], Compression::None));
        data.extend_from_slice(&batch(2, &["c"], Compression::Lz4));
        let whole = data.len();
        data.extend_from_slice(&batch(3, &["d"], Compression::None)[..30]);
        let scanned = scan(&data).unwrap();
        let decoded = decode_partition("t", 0, 0, &data, None).unwrap();
        assert_eq!(scanned.next_offset, decoded.next_offset);
        assert_eq!(scanned.next_offset, Some(3));
        assert_eq!(scanned.size, data.len() + 3 * ConsumerRecord::OVERHEAD);
        assert!(whole < data.len());
        assert_eq!(scan(&[]).unwrap(), Scanned::default());
    }

    #[test]
    fn partial_tail_stops_without_error() {
        let first = batch(0, &["a", "b"], Compression::None);
        let second = batch(2, &["c", "d"], Compression::Lz4);
        let whole = concat(&[first.clone(), second.clone()]);
        for cut in first.len()..whole.len() {
            let d = decode_partition("t", 0, 0, &whole[..cut], None).unwrap();
            assert_eq!(d.records.len(), 2, "cut at {cut}");
            assert_eq!(d.next_offset, Some(2));
        }
        let d = decode_partition("t", 0, 0, &whole[..first.len() - 1], None).unwrap();
        assert!(d.records.is_empty() && d.next_offset.is_none());
        let d = decode_partition("t", 0, 0, &whole, None).unwrap();
        let values: Vec<_> = d.records.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(values, ["a", "b", "c", "d"]);
        assert_eq!(d.next_offset, Some(4));
        assert_eq!(d.records[3].headers, vec![("h".to_owned(), None)]);
    }

    #[test]
    fn records_below_the_fetch_offset_are_dropped() {
        let data = batch(10, &["a", "b", "c"], Compression::Zstd);
        let d = decode_partition("t", 3, 11, &data, None).unwrap();
        let offsets: Vec<_> = d.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [11, 12]);
        assert_eq!(d.records[0].partition, 3);
        let d = decode_partition("t", 3, 13, &data, None).unwrap();
        assert!(d.records.is_empty());
        assert_eq!(d.next_offset, Some(13));
    }

    #[test]
    fn control_and_aborted_batches_are_skipped() {
        let txn = |base, pid, control: bool| {
            let mut b = BatchBuilder::new(Compression::None)
                .base_offset(base)
                .producer(pid, 0, 0)
                .transactional(true)
                .control(control);
            let value: &[u8] = if control { &[0, 0, 0, 0] } else { b"v" };
            b.push(0, Some(&[0, 0, 0, 0]), Some(value), &[]);
            b.build().unwrap()
        };
        // Producer 7 aborts offset 0, producer 8 commits offset 1.
        let data = concat(&[
            txn(0, 7, false),
            txn(1, 8, false),
            txn(2, 7, true),
            txn(3, 8, true),
        ]);
        let committed = decode_partition("t", 0, 0, &data, None).unwrap();
        assert_eq!(
            committed.records.len(),
            2,
            "read_uncommitted skips only markers"
        );
        let aborted = vec![Aborted {
            producer_id: 7,
            first_offset: 0,
        }];
        let d = decode_partition("t", 0, 0, &data, Some(aborted)).unwrap();
        let offsets: Vec<_> = d.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [1]);
        assert_eq!(d.next_offset, Some(4));
    }

    #[test]
    fn corrupt_batch_is_an_error() {
        let mut data = BytesMut::from(&batch(0, &["a"], Compression::None)[..]);
        let last = data.len() - 1;
        data[last] ^= 0xff;
        assert!(decode_partition("t", 0, 0, &data, None).is_err());
    }

    #[test]
    fn a_lying_record_count_reserves_nothing_for_it() {
        let mut data = BytesMut::from(&batch(0, &["a"], Compression::None)[..]);
        // recordsCount (bytes 57..61 of the header) claims i32::MAX records; the CRC no
        // longer matches.
        data[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(record_count(&data) <= data.len() / MIN_RECORD_BYTES);
        assert!(decode_partition("t", 0, 0, &data, None).is_err());
        let whole = batch(0, &["a", "b", "c"], Compression::Lz4);
        assert_eq!(record_count(&whole), 3);
    }
}
