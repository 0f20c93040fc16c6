//! [`ConsumerRecord`]: one record as [`Consumer::poll`](super::Consumer::poll) hands it out.

use bytes::Bytes;
use strom_protocol::records::Record;

/// A record read from a partition, with its absolute offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic it was read from.
    pub topic: String,
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its timestamp, ms since the epoch (create time, or the broker's append time for
    /// `LogAppendTime` topics).
    pub timestamp: i64,
    /// The key; `None` is a null key (distinct from an empty one).
    pub key: Option<Bytes>,
    /// The value; `None` is a null value (a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Headers in the order the producer wrote them; values may be null.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The leader epoch of the leader that appended it, when the broker stamps one.
    pub leader_epoch: Option<i32>,
}

impl ConsumerRecord {
    /// A record of `topic`-`partition` from a decoded batch record.
    pub(crate) fn from_record(
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        record: Record,
    ) -> Self {
        ConsumerRecord {
            topic: topic.to_owned(),
            partition,
            offset: record.offset,
            timestamp: record.timestamp,
            key: record.key,
            value: record.value,
            headers: record.headers,
            leader_epoch: (leader_epoch >= 0).then_some(leader_epoch),
        }
    }

    /// What [`ConsumerRecord::size`] counts for a record beyond its key, value and headers.
    pub(crate) const OVERHEAD: usize = 64;

    /// Approximate memory held: key, value and headers; what the per-partition buffer
    /// bound counts.
    pub(crate) fn size(&self) -> usize {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + len(v)).sum();
        len(&self.key) + len(&self.value) + headers + Self::OVERHEAD
    }
}
