//! The record accumulator: per partition, a queue of batches waiting to be sent.
//!
//! ```text
//!  send ──append──▶ [ open batch ] ──full / linger.ms / flush / close──▶ [ closed ] ... ──drain──▶ sink
//!                     per (topic, partition) queue, oldest first          ▲
//!                                                                         └── requeue (retry, at the front)
//! ```
//!
//! A plain struct with no I/O and no `.await`: the producer keeps it behind a mutex, `send`
//! appends, the sink drains. Up to `max.in.flight.requests.per.connection` batches of a
//! partition are out at a time (drained and not yet completed), each drained in order and
//! numbered then, with idempotence, so the broker appends them in order or refuses the
//! ones after a gap. When a batch comes back unsent (a retriable error) while later ones
//! are out, the partition sends nothing new until all are back; then its returned batches
//! go again one at a time, in their original order. A batch the broker refused (so surely
//! did not write) hands its sequence numbers to the batches after it, which are restamped.
//! A batch whose fate is unknown (failed after being sent: its delivery timed out, or the
//! broker answered with a sequence error no earlier batch explains) leaves the broker's
//! numbering unknown too: once none of the partition's batches is out, its numbering
//! restarts at 0 under the producer epoch plus one, which the broker accepts as a new
//! start for that producer (the Java client's epoch bump, per partition).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_protocol::records::Compression;

use super::batch::{BatchKey, ProducerBatch};
use super::record::BATCH_OVERHEAD;

/// What the accumulator needs from the producer's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AccumulatorConfig {
    /// `batch.size`.
    pub(crate) batch_size: usize,
    /// `linger.ms`.
    pub(crate) linger: Duration,
    /// `compression.type`.
    pub(crate) compression: Compression,
    /// `delivery.timeout.ms`: batches older than this fail instead of being sent.
    pub(crate) delivery_timeout: Duration,
    /// Whether to assign sequence numbers (idempotence).
    pub(crate) idempotent: bool,
    /// `max.in.flight.requests.per.connection`: batches of one partition out at a time.
    pub(crate) max_in_flight: usize,
    /// Whether a batch of unknown fate restarts its partition's numbering under a bumped
    /// epoch (not for transactional producers: their coordinator owns the epoch, and the
    /// transaction is aborted instead).
    pub(crate) bump_epochs: bool,
}

/// One partition's batches, oldest (lowest id) first.
#[derive(Default)]
struct PartitionQueue {
    batches: VecDeque<ProducerBatch>,
    /// Ids of this partition's batches that are out, oldest first.
    in_flight: Vec<u64>,
    /// Sequence of the next record, with idempotence.
    next_sequence: i32,
    /// A batch came back unsent while others were out: nothing new goes out until every
    /// batch is back.
    recovering: bool,
    /// Batches above this id hold sequence numbers a failed batch gave back: they are
    /// renumbered when sent again.
    renumber_above: Option<u64>,
    /// Epoch bumps so far: batches are stamped with the producer's epoch plus this.
    epoch_bump: i16,
    /// A batch's fate is unknown: the numbering restarts under the next epoch once no
    /// batch is out.
    bump_pending: bool,
    /// Size of the partition's last batch taken out: a new batch starts with that much
    /// room (up to `batch.size`), so that a busy partition's batches fill without moving
    /// and a quiet one's do not each hold `batch.size`.
    last_size: usize,
}

impl PartitionQueue {
    /// Whether the front batch may go out now, as far as the batches out allow.
    fn may_send(&self, max_in_flight: usize) -> bool {
        let Some(front) = self.batches.front() else {
            return false;
        };
        if self.in_flight.is_empty() {
            return true;
        }
        // A batch sent before goes alone: it is the oldest left, and the ones out after it
        // would be refused for the gap anyway.
        !self.recovering && front.attempts == 0 && self.in_flight.len() < max_in_flight
    }

    /// Takes batch `id` off the batches out; once none is out, recovery ends (and a
    /// pending epoch bump happens).
    fn returned(&mut self, id: u64) {
        self.in_flight.retain(|&out| out != id);
        if self.in_flight.is_empty() {
            self.recovering = false;
            self.renumber_above = None;
            if self.bump_pending {
                self.bump_pending = false;
                self.epoch_bump = self.epoch_bump.saturating_add(1);
                self.next_sequence = 0;
            }
        }
    }

    /// The batches after `id` lose their numbers (those out when they come back), and
    /// no new batch goes out until all are back.
    fn renumber_after(&mut self, id: u64) {
        for waiting in self.batches.iter_mut().filter(|b| b.id > id) {
            waiting.base_sequence = None;
        }
        if self.in_flight.iter().any(|&out| out != id) {
            self.recovering = true;
            self.renumber_above = Some(self.renumber_above.map_or(id, |a| a.min(id)));
        }
    }
}

/// How a batch ended, for [`Accumulator::finish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finished {
    /// The broker acknowledged it.
    Acked,
    /// It failed; the broker may have written it. If it was sent, its partition's
    /// numbering restarts under a bumped epoch.
    Failed,
    /// It failed and the broker surely did not write it: its sequence numbers go to the
    /// batches after it.
    Refused,
}

/// What [`Accumulator::append`] did, for the caller to act on outside the lock.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    /// A batch was started (the sink may need to recompute its linger deadline).
    pub(crate) new_batch: bool,
    /// A batch filled up: it is ready to send, and sticky partitioners move on.
    pub(crate) batch_full: bool,
    /// The partition had batches out when this one was started.
    pub(crate) behind: bool,
}

/// What one drain produced.
#[derive(Default)]
pub(crate) struct Drained {
    /// Ready batches by leader node id, at most one per partition, each node's total
    /// bytes at most the request limit (or a single larger batch).
    pub(crate) by_leader: HashMap<i32, Vec<ProducerBatch>>,
    /// Batches past `delivery.timeout.ms` before being sent: to fail.
    pub(crate) expired: Vec<ProducerBatch>,
    /// Topics with ready batches on partitions with no known leader.
    pub(crate) unknown_leaders: BTreeSet<Arc<str>>,
    /// When the next batch becomes ready (linger expiry or end of a retry backoff).
    pub(crate) next_wake: Option<Instant>,
}

/// The per-partition batch queues of one producer.
pub(crate) struct Accumulator {
    config: AccumulatorConfig,
    topics: HashMap<Arc<str>, HashMap<i32, PartitionQueue>>,
    next_batch_id: u64,
    /// Ids of batches not yet completed (in a queue or with the sink).
    incomplete: BTreeSet<u64>,
    /// Batches with a lower id are ready whatever their linger (a flush is waiting).
    flush_until: u64,
    /// Every batch is ready: the producer is closing.
    closing: bool,
}

impl Accumulator {
    pub(crate) fn new(config: AccumulatorConfig) -> Self {
        Accumulator {
            config,
            topics: HashMap::new(),
            next_batch_id: 0,
            incomplete: BTreeSet::new(),
            flush_until: 0,
            closing: false,
        }
    }

    /// Appends to the partition's open batch, starting a new batch when there is none or
    /// `size` more bytes would not fit in `batch.size`. `add` pushes the record.
    pub(crate) fn append(
        &mut self,
        topic: &str,
        partition: i32,
        size: usize,
        add: impl FnOnce(&mut ProducerBatch),
    ) -> Appended {
        let batch_size = self.config.batch_size;
        let mut outcome = Appended {
            new_batch: false,
            batch_full: false,
            behind: false,
        };
        match self.queue(topic, partition).batches.back_mut() {
            Some(open) if open.has_room(size, batch_size) => {
                add(open);
                outcome.batch_full = close_if_full(open, batch_size);
                return outcome;
            }
            Some(full) if !full.closed => {
                full.closed = true;
                outcome.batch_full = true;
            }
            _ => {}
        }
        let queue = self.queue(topic, partition);
        let previous = queue
            .batches
            .back()
            .map_or(queue.last_size, ProducerBatch::estimated_size);
        // As much as the partition's last batch held, and room for this record however
        // large.
        let capacity = previous.min(batch_size).max(BATCH_OVERHEAD + size);
        let mut batch = self.new_batch(topic, partition, capacity);
        add(&mut batch);
        outcome.batch_full |= close_if_full(&mut batch, batch_size);
        outcome.new_batch = true;
        let queue = self.queue(topic, partition);
        outcome.behind = !queue.in_flight.is_empty();
        queue.batches.push_back(batch);
        outcome
    }

    /// Whether the partition's open batch can take `size` more bytes (false when a record
    /// of that size would start a new batch).
    pub(crate) fn has_room(&self, topic: &str, partition: i32, size: usize) -> bool {
        self.topics
            .get(topic)
            .and_then(|t| t.get(&partition))
            .and_then(|q| q.batches.back())
            .is_some_and(|b| b.has_room(size, self.config.batch_size))
    }

    /// The queue of a partition, created empty on first use.
    fn queue(&mut self, topic: &str, partition: i32) -> &mut PartitionQueue {
        let key = self.topic_key(topic);
        self.topics
            .entry(key)
            .or_default()
            .entry(partition)
            .or_default()
    }

    /// The shared name of `topic`, so batches do not each copy it.
    fn topic_key(&self, topic: &str) -> Arc<str> {
        self.topics
            .get_key_value(topic)
            .map_or_else(|| Arc::from(topic), |(k, _)| k.clone())
    }

    /// A new empty batch for the partition with room for `capacity` bytes, registered as
    /// incomplete.
    fn new_batch(&mut self, topic: &str, partition: i32, capacity: usize) -> ProducerBatch {
        let id = self.next_batch_id;
        self.next_batch_id += 1;
        self.incomplete.insert(id);
        ProducerBatch::new(
            id,
            self.topic_key(topic),
            partition,
            self.config.compression,
            capacity,
        )
    }

    /// Takes the next ready batch of every partition that may send one, whose leader is
    /// known and `has_slot` for another request, grouped by leader; at most
    /// `max_request_bytes` per leader (a larger single batch goes alone). Idempotent
    /// batches get their base sequence here.
    pub(crate) fn drain(
        &mut self,
        now: Instant,
        leader_of: impl Fn(&str, i32) -> Option<i32>,
        has_slot: impl Fn(i32) -> bool,
        max_request_bytes: usize,
    ) -> Drained {
        let mut drained = Drained::default();
        let mut bytes_by_leader: HashMap<i32, usize> = HashMap::new();
        let (config, flush_until, closing) = (self.config, self.flush_until, self.closing);
        for (topic, partitions) in &mut self.topics {
            for (&partition, queue) in partitions.iter_mut() {
                if queue.in_flight.is_empty() {
                    drained
                        .expired
                        .extend(expire(queue, now, config.delivery_timeout));
                }
                if !queue.may_send(config.max_in_flight) {
                    continue;
                }
                let Some(front) = queue.batches.front() else {
                    continue;
                };
                if let Some(at) = not_ready_until(front, now, &config, flush_until, closing) {
                    drained.next_wake = Some(drained.next_wake.map_or(at, |w| w.min(at)));
                    continue;
                }
                let Some(leader) = leader_of(topic, partition) else {
                    drained.unknown_leaders.insert(topic.clone());
                    continue;
                };
                if !has_slot(leader) {
                    continue;
                }
                let used = bytes_by_leader.entry(leader).or_default();
                let size = front.estimated_size();
                if *used > 0 && *used + size > max_request_bytes {
                    continue;
                }
                *used += size;
                let Some(batch) = take_front(queue, config.idempotent) else {
                    continue;
                };
                drained.by_leader.entry(leader).or_default().push(batch);
            }
        }
        drained
    }

    /// Puts a batch that failed retriably back in its queue, in creation order, to be sent
    /// again not before `retry_at`.
    pub(crate) fn requeue(&mut self, mut batch: ProducerBatch, retry_at: Instant) {
        batch.retry_at = Some(retry_at);
        let queue = self.queue(&batch.topic, batch.partition);
        if queue.renumber_above.is_some_and(|above| batch.id > above) {
            batch.base_sequence = None;
        }
        queue.returned(batch.id);
        if !queue.in_flight.is_empty() {
            queue.recovering = true;
        }
        let at = queue.batches.partition_point(|b| b.id < batch.id);
        queue.batches.insert(at, batch);
    }

    /// Whether an `OUT_OF_ORDER_SEQUENCE_NUMBER` answer for `batch` may follow from an
    /// earlier batch of its partition not being written first (it was out, or gave its
    /// numbers back), so sending it again in order can succeed; rather than from the
    /// broker having lost the producer's state.
    pub(crate) fn after_gap(&self, batch: &ProducerBatch) -> bool {
        let renumbered = self
            .topics
            .get(&*batch.topic)
            .and_then(|t| t.get(&batch.partition))
            .and_then(|queue| queue.renumber_above)
            .is_some_and(|above| batch.id > above);
        renumbered || batch.sent_behind
    }

    /// Records that a batch is done (its records completed or failed), drained or
    /// expired. A [`Finished::Refused`] batch gives its sequence numbers to the batches
    /// after it: those waiting are renumbered when drained, those out when they come back.
    /// A [`Finished::Failed`] batch that was numbered (sent) makes its partition renumber
    /// the batches after it from 0 under a bumped epoch, once none is out.
    pub(crate) fn finish(&mut self, batch: &BatchKey, how: Finished) {
        let bump_epochs = self.config.bump_epochs;
        let queue = self.queue(&batch.topic, batch.partition);
        let was_out = queue.in_flight.contains(&batch.id);
        match (how, batch.base_sequence) {
            (Finished::Refused, Some(base)) if was_out => {
                if !queue.bump_pending && batch.epoch_bump == queue.epoch_bump {
                    queue.next_sequence = base;
                }
                queue.renumber_after(batch.id);
            }
            // Numbered since under a later epoch: nothing to restart.
            (Finished::Failed, Some(_)) if bump_epochs && batch.epoch_bump == queue.epoch_bump => {
                queue.bump_pending = true;
                queue.renumber_after(batch.id);
            }
            _ => {}
        }
        queue.returned(batch.id);
        self.incomplete.remove(&batch.id);
    }

    /// Numbers every partition from 0 again (the producer has a new epoch; no batch may
    /// be out or waiting).
    pub(crate) fn restart_numbering(&mut self) {
        for queue in self.topics.values_mut().flat_map(HashMap::values_mut) {
            queue.next_sequence = 0;
            queue.epoch_bump = 0;
            queue.bump_pending = false;
            for batch in &mut queue.batches {
                batch.base_sequence = None;
            }
        }
    }

    /// Makes every batch created so far ready; returns the mark to wait for with
    /// [`Accumulator::flushed`].
    pub(crate) fn begin_flush(&mut self) -> u64 {
        self.flush_until = self.next_batch_id;
        self.next_batch_id
    }

    /// Whether every batch created before the `mark` of a flush has completed.
    pub(crate) fn flushed(&self, mark: u64) -> bool {
        self.incomplete.first().is_none_or(|&oldest| oldest >= mark)
    }

    /// Makes every batch ready from now on.
    pub(crate) fn close(&mut self) {
        self.closing = true;
    }

    /// Whether [`Accumulator::close`] was called: no more appends.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing
    }

    /// Whether no batch is waiting or out.
    pub(crate) fn is_empty(&self) -> bool {
        self.incomplete.is_empty()
    }
}

/// Closes `batch` when it has reached `batch.size`; whether it did.
fn close_if_full(batch: &mut ProducerBatch, batch_size: usize) -> bool {
    if batch.estimated_size() >= batch_size {
        batch.closed = true;
    }
    batch.closed
}

/// Pops the expired batches at the front of an idle queue.
fn expire(queue: &mut PartitionQueue, now: Instant, timeout: Duration) -> Vec<ProducerBatch> {
    let mut expired = Vec::new();
    while queue
        .batches
        .front()
        .is_some_and(|b| now.saturating_duration_since(b.created) >= timeout)
    {
        expired.extend(queue.batches.pop_front());
    }
    expired
}

/// `None` when `batch` may be sent now; otherwise when it may (as far as time decides).
fn not_ready_until(
    batch: &ProducerBatch,
    now: Instant,
    config: &AccumulatorConfig,
    flush_until: u64,
    closing: bool,
) -> Option<Instant> {
    if let Some(at) = batch.retry_at.filter(|&at| at > now) {
        return Some(at);
    }
    let lingered = batch.created + config.linger;
    let ready = batch.closed || closing || batch.id < flush_until || lingered <= now;
    (!ready).then_some(lingered)
}

/// Takes the front batch out, closing it and assigning its base sequence.
fn take_front(queue: &mut PartitionQueue, idempotent: bool) -> Option<ProducerBatch> {
    let mut batch = queue.batches.pop_front()?;
    batch.closed = true;
    queue.last_size = batch.estimated_size();
    if idempotent && batch.base_sequence.is_none() {
        batch.base_sequence = Some(queue.next_sequence);
        batch.epoch_bump = queue.epoch_bump;
        queue.next_sequence = next_sequence(queue.next_sequence, batch.record_count());
    }
    batch.sent_behind = !queue.in_flight.is_empty();
    queue.in_flight.push(batch.id);
    Some(batch)
}

/// `sequence + count`, wrapping past `i32::MAX` to 0 as Kafka does.
fn next_sequence(sequence: i32, count: usize) -> i32 {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let next = (i64::from(sequence) + count) % (i64::from(i32::MAX) + 1);
    i32::try_from(next).unwrap_or(0)
}

#[cfg(test)]
#[path = "accumulator_tests.rs"]
mod tests;
