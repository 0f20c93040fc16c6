//! The sink: the producer's one background task, draining ready batches to their leaders.
//!
//! ```text
//!  wake (new / full batch, flush, close, a request done) or linger / backoff deadline
//!     │
//!     ▼
//!  drain accumulator ──by leader──▶ spawn one request per broker ──▶ Produce ──▶ answers
//!     │ expired: fail (delivery.timeout.ms)   ≤ max.in.flight per broker          │
//!     │ no leader: refresh metadata                                               ▼
//!     └──────────◀── requeue retriable (same bytes, after backoff) ◀── complete / fail records
//! ```
//!
//! A request holds at most one batch per partition. Up to
//! `max.in.flight.requests.per.connection` batches of a partition are out at a time, drained
//! in order under one lock so they reach the connection in sequence order (the accumulator
//! keeps the order through retries). Requests to one broker are capped at the same number,
//! across partitions. With `linger.ms=0` a `send` that starts a batch sends it at once
//! unless its partition already has a batch out: then the sink sends it when it wakes, and
//! the records sent meanwhile (the rest of a burst) join it.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use strom_protocol::{ErrorCode, ProtocolError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn, Instrument};

use super::accumulator::{Drained, Finished};
use super::batch::{BatchKey, ProducerBatch};
use super::produce::{self, Outcome};
use super::Shared;
use crate::config::{Acks, ClientConfig};
use crate::error::ClientError;

/// Runs until the producer is closed and every batch has completed.
pub(super) async fn run(shared: Arc<Shared>) {
    let backoff = Duration::from_millis(shared.cluster.config().retry_backoff_ms);
    let mut last_refresh: Option<Instant> = None;
    loop {
        // Not nested in another drain on this thread: the sink's own task never is.
        let (mut next_wake, unknown_leaders) = drain_and_start(&shared).unwrap_or_default();
        if !unknown_leaders.is_empty() {
            refresh_leaders(&shared, unknown_leaders, &mut last_refresh, backoff);
            let soon = Instant::now() + backoff;
            next_wake = Some(next_wake.map_or(soon, |w| w.min(soon)));
        }
        let done = {
            let accumulator = shared.lock();
            accumulator.is_closing() && accumulator.is_empty()
        };
        if done {
            debug!("producer closed");
            return;
        }
        match next_wake {
            Some(at) => {
                let _ = tokio::time::timeout_at(at.into(), shared.wake.notified()).await;
            }
            None => shared.wake.notified().await,
        }
    }
}

thread_local! {
    /// Whether this thread is draining (a request that completes while it is being started
    /// must not start the next one recursively).
    static DRAINING: Cell<bool> = const { Cell::new(false) };
}

/// Drains the ready batches and starts their requests from the calling task, leaving to
/// the sink what needs timing (a linger or backoff still running) or metadata (a partition
/// with no known leader). Called where batches become ready: a `send` that fills a batch
/// (or starts one with `linger.ms=0`) and a finished request that frees its partition.
pub(super) fn dispatch(shared: &Arc<Shared>) {
    match drain_and_start(shared) {
        None => shared.wake.notify_one(),
        Some((next_wake, unknown_leaders)) => {
            if next_wake.is_some() || !unknown_leaders.is_empty() {
                shared.wake.notify_one();
            }
        }
    }
}

/// Drains and starts the requests, one caller at a time, so that requests reach each
/// broker's connection in the order their batches were drained (a partition's batches
/// must arrive in sequence order). `None`, doing nothing, when this thread is already
/// draining.
fn drain_and_start(shared: &Arc<Shared>) -> Option<(Option<Instant>, BTreeSet<Arc<str>>)> {
    if DRAINING.with(|d| d.replace(true)) {
        return None;
    }
    /// Clears the flag however the drain ends.
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            DRAINING.with(|d| d.set(false));
        }
    }
    let _done = Done;
    let _in_order = shared
        .draining
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    Some(start(shared, drain(shared)))
}

/// Fails the expired batches and starts one request per leader; returns when the next
/// batch becomes ready and the topics whose partitions have no known leader.
fn start(shared: &Arc<Shared>, drained: Drained) -> (Option<Instant>, BTreeSet<Arc<str>>) {
    let config = shared.cluster.config();
    for batch in drained.expired {
        let error = delivery_timeout(config, &batch, None);
        shared.fail(batch, error, false);
    }
    for (leader, batches) in drained.by_leader {
        // The drain took only leaders with a free slot, and slots are only taken here,
        // under the drain lock.
        let slot = shared.slots(leader).try_acquire_owned().ok();
        let span = tracing::debug_span!("produce", broker = leader, batches = batches.len());
        spawn_started(send(shared.clone(), leader, batches, slot).instrument(span));
    }
    (drained.next_wake, drained.unknown_leaders)
}

/// Runs `request` on the calling task until it first has to wait (usually once its bytes
/// are written), then moves the rest (waiting for the answer) to a task of its own. This
/// spares the request a hand-over to another task, often on another thread, before it
/// reaches the socket. A request that must wait before writing (for an in-flight slot, a
/// connection, the connection's writer) has joined those queues, which are first come,
/// first served, so it still writes in turn.
fn spawn_started(request: impl Future<Output = ()> + Send + 'static) {
    let mut request = Box::pin(request);
    let mut cx = Context::from_waker(Waker::noop());
    if request.as_mut().poll(&mut cx).is_pending() {
        // The task's first poll re-registers every wait with a real waker.
        tokio::spawn(request);
    }
}

/// Drains the accumulator, placing partitions by the leaders in the metadata snapshot;
/// leaders with `max.in.flight.requests.per.connection` requests out are skipped (the
/// answer to one of them drains again).
fn drain(shared: &Shared) -> Drained {
    let max_request_bytes = shared.cluster.config().message_max_bytes;
    let metadata = shared.cluster.metadata();
    let leader_of = |topic: &str, partition: i32| {
        let meta = metadata.topics.get(topic)?.partition(partition)?;
        (meta.leader >= 0).then_some(meta.leader)
    };
    let has_slot = |leader: i32| shared.has_slot(leader);
    shared
        .lock()
        .drain(Instant::now(), leader_of, has_slot, max_request_bytes)
}

/// Refreshes the metadata of topics with leaderless partitions, at most once per backoff.
fn refresh_leaders(
    shared: &Arc<Shared>,
    topics: BTreeSet<Arc<str>>,
    last: &mut Option<Instant>,
    backoff: Duration,
) {
    if last.is_some_and(|at| at.elapsed() < backoff) {
        return;
    }
    *last = Some(Instant::now());
    let shared = shared.clone();
    tokio::spawn(async move {
        let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        if let Err(e) = shared.cluster.refresh_metadata(Some(&names)).await {
            debug!(error = %e, "metadata refresh for leaderless partitions failed");
        }
        shared.wake.notify_one();
    });
}

/// Sends `batches` to broker `leader` in one request and settles each batch.
async fn send(
    shared: Arc<Shared>,
    leader: i32,
    batches: Vec<ProducerBatch>,
    slot: Option<OwnedSemaphorePermit>,
) {
    let mut parts = Vec::with_capacity(batches.len());
    let mut unbuilt = Vec::new();
    for mut batch in batches {
        match batch.build(shared.identity()) {
            Ok(bytes) => {
                batch.attempts += 1;
                parts.push((batch, bytes));
            }
            Err(e) => unbuilt.push((batch, e)),
        }
    }
    let answer = if parts.is_empty() {
        Ok(None)
    } else {
        exchange(&shared, leader, &parts).await
    };
    // The slot frees before the batches settle, so the drains their settling starts can
    // use it.
    drop(slot);
    for (batch, e) in unbuilt {
        shared.fail(batch, e, true);
    }
    match answer {
        Ok(None) => parts
            .into_iter()
            .for_each(|(b, _)| shared.complete(b, -1, -1)),
        Ok(Some(response)) => settle(&shared, parts, &response, leader).await,
        Err(e) => {
            warn!(broker = leader, error = %e, "produce request failed");
            let config = shared.cluster.config();
            let mut retry = Vec::new();
            for (batch, _) in parts {
                // The broker itself failed (gone, unreachable): wait `retry.backoff.ms`
                // each time, not a growing backoff, so the batch goes to the new leader
                // soon after the metadata names one.
                match retry_at(config, &batch, copy_error(&e), false, false) {
                    Ok(at) => retry.push((batch, at)),
                    Err(error) => shared.fail(batch, error, false),
                }
            }
            requeue(&shared, retry, leader).await;
        }
    }
}

/// Sends the request; `None` for `acks=0`, which gets no answer.
async fn exchange(
    shared: &Shared,
    leader: i32,
    parts: &[(ProducerBatch, Bytes)],
) -> Result<Option<ProduceResponse>, ClientError> {
    let config = shared.cluster.config();
    let conn = shared.cluster.broker(leader).await?;
    let version = conn
        .version_for::<ProduceRequest>()?
        .min(produce::MAX_VERSION);
    let batches = parts
        .iter()
        .map(|(b, bytes)| (&*b.topic, b.partition, bytes.clone()));
    let timeout_ms = i32::try_from(config.request_timeout_ms).unwrap_or(i32::MAX);
    let transactional_id = config.transactional_id.as_deref();
    let request = produce::request(batches, config.acks.as_i16(), timeout_ms, transactional_id);
    debug!(version, acks = config.acks.name(), "sending produce");
    if config.acks == Acks::None {
        conn.send_no_response(&request, version).await?;
        return Ok(None);
    }
    Ok(Some(conn.send_version(&request, version).await?))
}

/// Completes, fails or requeues each batch by its partition's answer.
async fn settle(
    shared: &Arc<Shared>,
    parts: Vec<(ProducerBatch, Bytes)>,
    response: &ProduceResponse,
    leader: i32,
) {
    let config = shared.cluster.config();
    let answers = produce::index(response);
    let mut retry = Vec::new();
    for (batch, _) in parts {
        let answer = answers.get(&(&*batch.topic, batch.partition)).copied();
        match produce::outcome(answer, &batch.topic, batch.partition) {
            Outcome::Done {
                base_offset,
                log_append_time,
            } => shared.complete(batch, base_offset, log_append_time),
            Outcome::Retry(e) => match retry_at(config, &batch, e, false, true) {
                Ok(at) => retry.push((batch, at)),
                Err(error) => shared.fail(batch, error, false),
            },
            Outcome::Fail(e) if is_gap(shared, &batch, &e) => {
                match retry_at(config, &batch, e, true, true) {
                    Ok(at) => retry.push((batch, at)),
                    Err(error) => shared.fail(batch, error, false),
                }
            }
            // A sequence error no earlier batch explains: the broker's numbering for this
            // producer is not what it should be (the batch may even be written), so the
            // partition starts over under a bumped epoch.
            Outcome::Fail(e) if is_sequence_error(&e) => shared.fail(batch, e, false),
            Outcome::Fail(e) => shared.fail(batch, e, true),
        }
    }
    requeue(shared, retry, leader).await;
}

/// Refreshes the retried batches' topics and puts the batches back at the front of their
/// queues. A batch whose partition has a leader other than `sent_to` now goes at once, not
/// after its backoff: the backoff is for a leader that failed, and the new one has not
/// (KIP-951's idea).
async fn requeue(shared: &Arc<Shared>, retry: Vec<(ProducerBatch, Instant)>, sent_to: i32) {
    if retry.is_empty() {
        return;
    }
    let topics: BTreeSet<String> = retry.iter().map(|(b, _)| b.topic.to_string()).collect();
    let topics: Vec<String> = topics.into_iter().collect();
    let metadata = match shared.cluster.refresh_metadata(Some(&topics)).await {
        Ok(metadata) => Some(metadata),
        Err(e) => {
            debug!(error = %e, "metadata refresh before retry failed");
            None
        }
    };
    let moved = |batch: &ProducerBatch| {
        metadata
            .as_ref()
            .and_then(|m| m.topics.get(&*batch.topic)?.partition(batch.partition))
            .is_some_and(|p| p.leader >= 0 && p.leader != sent_to)
    };
    {
        let mut accumulator = shared.lock();
        for (batch, at) in retry {
            let at = if moved(&batch) { Instant::now() } else { at };
            debug!(topic = %batch.topic, partition = batch.partition, attempts = batch.attempts, "retrying batch");
            accumulator.requeue(batch, at);
        }
    }
    shared.wake.notify_one();
}

/// Whether `error` is an `OUT_OF_ORDER_SEQUENCE_NUMBER` answer that only reflects an
/// earlier batch of the partition not being written yet (it is sent again, in order).
fn is_gap(shared: &Shared, batch: &ProducerBatch, error: &ClientError) -> bool {
    matches!(error, ClientError::Broker { code, .. } if *code == ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
        && shared.lock().after_gap(batch)
}

/// Whether `error` says the broker's sequence numbers for this producer and partition
/// differ from the batch's.
fn is_sequence_error(error: &ClientError) -> bool {
    matches!(error, ClientError::Broker { code, .. }
        if *code == ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER || *code == ErrorCode::UNKNOWN_PRODUCER_ID)
}

/// When to resend a batch that failed with `error` (`retriable` whatever its code), or the
/// error to fail it with: not retriable, out of `retries`, or past `delivery.timeout.ms`
/// by the time of the retry. The backoff grows per attempt when `growing` (an answer
/// refused the batch), and stays `retry.backoff.ms` otherwise (the broker itself failed).
fn retry_at(
    config: &ClientConfig,
    batch: &ProducerBatch,
    error: ClientError,
    retriable: bool,
    growing: bool,
) -> Result<Instant, ClientError> {
    if !(retriable || error.is_retriable()) || batch.attempts > config.retries {
        return Err(error);
    }
    let backoff = backoff(config, if growing { batch.attempts } else { 1 });
    let deadline = batch.created + Duration::from_millis(config.delivery_timeout_ms);
    let at = Instant::now() + backoff;
    if at >= deadline {
        return Err(delivery_timeout(config, batch, Some(&error)));
    }
    Ok(at)
}

/// `retry.backoff.ms`, doubled per earlier attempt, at most `retry.backoff.max.ms`.
fn backoff(config: &ClientConfig, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(32);
    let ms = config
        .retry_backoff_ms
        .saturating_mul(1u64 << doublings)
        .min(config.retry_backoff_max_ms.max(config.retry_backoff_ms));
    Duration::from_millis(ms)
}

fn delivery_timeout(
    config: &ClientConfig,
    batch: &ProducerBatch,
    last: Option<&ClientError>,
) -> ClientError {
    let (topic, partition) = (&batch.topic, batch.partition);
    let what = match last {
        Some(e) => format!("delivery to {topic}-{partition} (last error: {e})"),
        None => format!("delivery to {topic}-{partition}"),
    };
    ClientError::Timeout {
        what,
        after_ms: config.delivery_timeout_ms,
    }
}

impl Shared {
    /// Completes a batch's records and frees its partition and memory.
    fn complete(self: &Arc<Self>, batch: ProducerBatch, base_offset: i64, log_append_time: i64) {
        let key = batch.key();
        batch.complete(base_offset, log_append_time);
        self.finished(&key, Finished::Acked);
    }

    /// Fails a batch's records; `rollback` when the broker surely did not write it.
    fn fail(self: &Arc<Self>, batch: ProducerBatch, error: ClientError, rollback: bool) {
        let key = batch.key();
        warn!(topic = %key.topic, partition = key.partition, records = batch.record_count(), error = %error, "batch failed");
        if let Some(transactions) = &self.transactions {
            transactions.record_failed(&error, !rollback);
        }
        batch.fail(|| copy_error(&error));
        let how = if rollback {
            Finished::Refused
        } else {
            Finished::Failed
        };
        self.finished(&key, how);
    }

    fn finished(self: &Arc<Self>, key: &BatchKey, how: Finished) {
        let closing = {
            let mut accumulator = self.lock();
            accumulator.finish(key, how);
            accumulator.is_closing()
        };
        self.completed.notify_waiters();
        // The partition's next batch may be ready: start it from here.
        dispatch(self);
        if closing {
            // A closing sink stops once the last batch is done.
            self.wake.notify_one();
        }
    }

    /// The in-flight permits of broker `leader`.
    fn slots(&self, leader: i32) -> Arc<Semaphore> {
        let max_in_flight = super::max_in_flight(self.cluster.config());
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots
            .entry(leader)
            .or_insert_with(|| Arc::new(Semaphore::new(max_in_flight)))
            .clone()
    }

    /// Whether broker `leader` can take another request now (one it has not been sent
    /// any yet can).
    fn has_slot(&self, leader: i32) -> bool {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.get(&leader).is_none_or(|s| s.available_permits() > 0)
    }
}

/// The same error again, for each record of a failed batch ([`ClientError`] is not
/// `Clone`: I/O errors keep their kind and message).
fn copy_error(e: &ClientError) -> ClientError {
    let io = |io: &std::io::Error| std::io::Error::new(io.kind(), io.to_string());
    match e {
        ClientError::Broker { code, context } => ClientError::Broker {
            code: *code,
            context: context.clone(),
        },
        ClientError::Timeout { what, after_ms } => ClientError::Timeout {
            what: what.clone(),
            after_ms: *after_ms,
        },
        ClientError::Connect { addr, source } => ClientError::Connect {
            addr: addr.clone(),
            source: io(source),
        },
        ClientError::UnknownBroker { node_id } => ClientError::UnknownBroker { node_id: *node_id },
        ClientError::NoBrokers { bootstrap, last } => ClientError::NoBrokers {
            bootstrap: bootstrap.clone(),
            last: last.clone(),
        },
        ClientError::UnknownTopicOrPartition { topic, partition } => {
            ClientError::UnknownTopicOrPartition {
                topic: topic.clone(),
                partition: *partition,
            }
        }
        ClientError::Protocol(p) => ClientError::Protocol(copy_protocol_error(p)),
        ClientError::Closed => ClientError::Closed,
        other => ClientError::InvalidState {
            operation: "produce".to_owned(),
            state: other.to_string(),
        },
    }
}

fn copy_protocol_error(e: &ProtocolError) -> ProtocolError {
    match e {
        ProtocolError::Io(io) => ProtocolError::Io(std::io::Error::new(io.kind(), io.to_string())),
        ProtocolError::ConnectionClosed => ProtocolError::ConnectionClosed,
        ProtocolError::Timeout { api, timeout_ms } => ProtocolError::Timeout {
            api,
            timeout_ms: *timeout_ms,
        },
        ProtocolError::Broker(code) => ProtocolError::Broker(*code),
        ProtocolError::UnsupportedVersion {
            api,
            version,
            min,
            max,
        } => ProtocolError::UnsupportedVersion {
            api,
            version: *version,
            min: *min,
            max: *max,
        },
        other => ProtocolError::Encode {
            what: "ProduceRequest",
            version: -1,
            reason: other.to_string(),
        },
    }
}
