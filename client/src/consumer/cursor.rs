//! [`Cursor`]: the fetch state of one assigned partition.
//!
//! A cursor holds two offsets: `position`, the next offset [`Consumer::poll`] hands out,
//! and `fetch_offset`, the next offset to ask the leader for; the records between them
//! wait in a bounded buffer. Every change the application makes (seek, reset, reassign)
//! bumps the cursor's `version`, so a fetch response planned before the change is
//! recognised as stale and dropped instead of reviving discarded offsets.
//!
//! [`Consumer::poll`]: super::Consumer::poll

use std::collections::VecDeque;

use tokio::time::Instant;

use super::record::ConsumerRecord;
use crate::error::ClientError;

/// How a partition without a position gets one on the next poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reset {
    /// The log start offset (`seek_to_beginning`).
    Earliest,
    /// The high watermark (`seek_to_end`).
    Latest,
    /// By `auto.offset.reset`: for a new assignment (`None`), or after the broker said the
    /// fetch offset is out of range (`Some(offset)`).
    Auto(Option<i64>),
}

/// The fetch state of one assigned partition; see the module docs.
#[derive(Debug)]
pub(crate) struct Cursor {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// The next offset to hand out; `None` until a reset resolves it.
    pub(crate) position: Option<i64>,
    /// Why the position is missing (meaningful while `position` is `None`).
    pub(crate) reset: Reset,
    /// The next offset to fetch.
    pub(crate) fetch_offset: i64,
    /// The broker whose fetch loop serves this partition; `None` until routed.
    pub(crate) leader: Option<i32>,
    /// Whether routing must ask the cluster for fresh metadata first.
    pub(crate) stale_leader: bool,
    pub(crate) paused: bool,
    pub(crate) in_flight: bool,
    pub(crate) version: u64,
    /// Not fetched before this instant (after a retriable error).
    pub(crate) retry_at: Option<Instant>,
    /// An error to hand to the next poll.
    pub(crate) error: Option<ClientError>,
    buffer: VecDeque<ConsumerRecord>,
    buffered_bytes: usize,
    /// Fetched responses whose records are still being decoded: `fetch_offset` is
    /// already past them, so the next fetch can be on its way meanwhile.
    decoding: usize,
    /// Their bytes, counted against the buffer's bound.
    decoding_bytes: usize,
    /// The broker whose fetch loop decodes them; only it may fetch the partition until
    /// they are in the buffer, so records arrive in offset order.
    decoding_node: i32,
}

impl Cursor {
    /// A cursor for a newly assigned partition: no position, reset by `auto.offset.reset`.
    pub(crate) fn new(topic: String, partition: i32, version: u64) -> Self {
        Cursor {
            topic,
            partition,
            position: None,
            reset: Reset::Auto(None),
            fetch_offset: 0,
            leader: None,
            stale_leader: false,
            paused: false,
            in_flight: false,
            version,
            retry_at: None,
            error: None,
            buffer: VecDeque::new(),
            buffered_bytes: 0,
            decoding: 0,
            decoding_bytes: 0,
            decoding_node: -1,
        }
    }

    /// Moves to `offset`: buffered records are discarded, fetches in flight go stale.
    pub(crate) fn seek(&mut self, offset: i64, version: u64) {
        self.position = Some(offset);
        self.fetch_offset = offset;
        self.discard(version);
    }

    /// Drops the position; the next poll resolves it by `reset`.
    pub(crate) fn request_reset(&mut self, reset: Reset, version: u64) {
        self.position = None;
        self.reset = reset;
        self.discard(version);
    }

    fn discard(&mut self, version: u64) {
        self.version = version;
        self.buffer.clear();
        self.buffered_bytes = 0;
        self.decoding = 0;
        self.decoding_bytes = 0;
        self.error = None;
        self.retry_at = None;
        self.in_flight = false;
    }

    /// Whether the fetch loop of broker `node` should ask for this partition now: it has a
    /// position, is routed there, is neither paused nor in flight nor failed, waits for no
    /// backoff, and its buffer (with what is being decoded) holds less than
    /// `max_buffered` bytes. Records still being decoded by another broker's loop hold it
    /// back until they are in the buffer.
    pub(crate) fn is_fetchable(&self, node: i32, max_buffered: usize, now: Instant) -> bool {
        self.position.is_some()
            && self.leader == Some(node)
            && !self.paused
            && !self.in_flight
            && self.error.is_none()
            && self.retry_at.is_none_or(|at| at <= now)
            && (self.decoding == 0 || self.decoding_node == node)
            && self.buffered_bytes + self.decoding_bytes < max_buffered
    }

    /// Takes a fetched response of `bytes` bytes ending before `next_fetch_offset` for
    /// decoding on broker `node`'s loop: the fetch offset moves past it now, its records
    /// follow with [`Cursor::finish_decode`].
    pub(crate) fn begin_decode(&mut self, next_fetch_offset: i64, bytes: usize, node: i32) {
        self.fetch_offset = self.fetch_offset.max(next_fetch_offset);
        self.decoding += 1;
        self.decoding_bytes += bytes;
        self.decoding_node = node;
    }

    /// Ends what [`Cursor::begin_decode`] began; the caller then pushes the records.
    pub(crate) fn finish_decode(&mut self, bytes: usize) {
        self.decoding = self.decoding.saturating_sub(1);
        self.decoding_bytes = self.decoding_bytes.saturating_sub(bytes);
    }

    /// Appends fetched records (those below the fetch offset already dropped) and moves the
    /// fetch offset to `next_fetch_offset`.
    pub(crate) fn push(&mut self, records: Vec<ConsumerRecord>, next_fetch_offset: i64) {
        for record in records {
            self.buffered_bytes += record.size();
            self.buffer.push_back(record);
        }
        self.fetch_offset = self.fetch_offset.max(next_fetch_offset);
    }

    /// Moves up to `max` buffered records to `out`, advancing the position past them.
    /// Paused partitions keep their records.
    pub(crate) fn take(&mut self, max: usize, out: &mut Vec<ConsumerRecord>) {
        if self.paused || self.position.is_none() {
            return;
        }
        for _ in 0..max {
            let Some(record) = self.buffer.pop_front() else {
                break;
            };
            self.buffered_bytes = self.buffered_bytes.saturating_sub(record.size());
            self.position = Some(record.offset + 1);
            out.push(record);
        }
        if self.buffer.is_empty() && self.decoding == 0 {
            // Control batches and aborted records advance the fetch offset without
            // yielding records; the position follows once nothing is left to hand out.
            self.position = Some(self.fetch_offset);
        }
    }

    /// Whether every fetched record has been handed out (paused or not).
    pub(crate) fn is_drained(&self) -> bool {
        self.buffer.is_empty() && self.decoding == 0
    }

    /// Whether records wait to be handed out.
    #[cfg(test)]
    pub(crate) fn has_records(&self) -> bool {
        !self.buffer.is_empty() && !self.paused
    }

    /// Bytes held in the buffer.
    #[cfg(test)]
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp: 0,
            key: None,
            value: Some(bytes::Bytes::from_static(b"value")),
            headers: Vec::new(),
            leader_epoch: None,
        }
    }

    #[test]
    fn take_advances_position_and_frees_the_buffer() {
        let mut c = Cursor::new("t".into(), 0, 1);
        c.seek(5, 2);
        c.leader = Some(1);
        let now = Instant::now();
        assert!(c.is_fetchable(1, 1000, now));
        assert!(!c.is_fetchable(2, 1000, now));
        c.push(vec![record(5), record(6), record(7)], 9);
        assert_eq!(c.fetch_offset, 9);
        assert!(!c.is_fetchable(1, 100, now), "buffer over its bound");
        let mut out = Vec::new();
        c.take(2, &mut out);
        assert_eq!(c.position, Some(7));
        c.take(10, &mut out);
        // The last batch ended with a control record at 8: the position skips it.
        assert_eq!(c.position, Some(9));
        assert_eq!(out.len(), 3);
        assert_eq!(c.buffered_bytes(), 0);
    }

    #[test]
    fn seek_and_pause_discard_or_hold_records() {
        let mut c = Cursor::new("t".into(), 0, 1);
        assert_eq!(c.position, None);
        assert_eq!(c.reset, Reset::Auto(None));
        c.seek(0, 2);
        c.push(vec![record(0)], 1);
        c.paused = true;
        let mut out = Vec::new();
        c.take(10, &mut out);
        assert!(out.is_empty() && !c.has_records());
        c.paused = false;
        assert!(c.has_records());
        c.seek(42, 3);
        assert!(!c.has_records());
        assert_eq!((c.position, c.fetch_offset, c.version), (Some(42), 42, 3));
        c.request_reset(Reset::Latest, 4);
        assert_eq!(c.position, None);
        assert!(!c.is_fetchable(1, 1000, Instant::now()));
    }
}
