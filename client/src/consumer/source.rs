//! The fetch loop of one broker (a "source", as franz-go calls it).
//!
//! ```text
//!  loop: plan ── the cursors routed here that are fetchable (position known, not paused,
//!          │     not in flight, buffer under its bound), marked in flight
//!          ├─▶ one Fetch (v4..=16) for all of them, long-polled by
//!          │   fetch.min.bytes / fetch.max.wait.ms, sized by fetch.max.bytes and
//!          │   max.partition.fetch.bytes; once it is written:
//!          ├─▶ decode the previous response's records into the cursors' buffers
//!          └─▶ apply the response (on the connection's reader): each cursor's fetch
//!              offset moves past its whole batches (read from the batch headers),
//!              OFFSET_OUT_OF_RANGE → reset, leader errors → unrouted (poll re-routes),
//!              other retriable errors → retry.backoff.ms; a small response's records
//!              are decoded there and then
//! ```
//!
//! Decoding a large response while the broker reads and sends the next keeps both sides
//! busy: the fetch offset is known from the batch headers, so the next request need not
//! wait for the records. Until they are in the buffer, records being decoded count
//! against its bound, the position does not move past them, and only this loop may fetch
//! their partition, so records reach the buffer in offset order.
//!
//! With nothing to fetch the loop sleeps until woken (a seek, resume, drained buffer) or
//! `retry.backoff.ms` passes. Fetch v13+ names topics by id (from the metadata); when the
//! metadata lacks an id of a planned topic (a broker from before topic ids), that request
//! uses v12, the last that names topics, so the client works with any broker since Kafka
//! 0.11 (Fetch v4).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;
use tokio::time::Instant;
use tracing::{debug, warn, Instrument};
use uuid::Uuid;

use super::cursor::{Cursor, Reset};
use super::decode::{decode_partition, scan, Aborted, Scanned};
use super::fetcher::{Shared, State};
use super::offsets::TopicPartition;
use crate::config::IsolationLevel;
use crate::error::ClientError;

/// The highest Fetch version used.
const MAX_FETCH_VERSION: i16 = 16;

/// The last Fetch version that names topics; later ones give topic ids.
const LAST_FETCH_VERSION_BY_NAME: i16 = 12;

/// Errors after which the partition's leader must be looked up again.
const LEADER_ERRORS: [ErrorCode; 8] = [
    ErrorCode::NOT_LEADER_OR_FOLLOWER,
    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
    ErrorCode::LEADER_NOT_AVAILABLE,
    ErrorCode::FENCED_LEADER_EPOCH,
    ErrorCode::UNKNOWN_LEADER_EPOCH,
    ErrorCode::KAFKA_STORAGE_ERROR,
    ErrorCode::REPLICA_NOT_AVAILABLE,
    ErrorCode::UNKNOWN_TOPIC_ID,
];

/// A partition in a Fetch request, as the cursor was when the request was planned.
#[derive(Clone, Debug)]
struct Planned {
    tp: TopicPartition,
    fetch_offset: i64,
    version: u64,
}

/// Runs broker `node`'s fetch loop until the consumer closes.
pub(crate) async fn run(shared: Arc<Shared>, node: i32) {
    let span = tracing::debug_span!("fetch_source", node);
    fetch_loop(shared, node).instrument(span).await;
}

async fn fetch_loop(shared: Arc<Shared>, node: i32) {
    let backoff = shared.retry_backoff().max(Duration::from_millis(10));
    // The last response's records, decoded while the next fetch is on its way.
    let mut fetched: Vec<Fetched> = Vec::new();
    while !shared.is_closed() {
        let woken = shared.wake.notified();
        let plan = plan(&shared, node);
        if plan.is_empty() {
            if fetched.is_empty() {
                let _ = tokio::time::timeout(backoff, woken).await;
            } else {
                decode_fetched(&shared, std::mem::take(&mut fetched));
            }
            continue;
        }
        let plan = Arc::new(plan);
        let mut request = std::pin::pin!(fetch(&shared, node, &plan));
        // Send the request (its first poll writes it), then decode the last response
        // while the broker prepares the next.
        let sent = std::future::poll_fn(|cx| Poll::Ready(request.as_mut().poll(cx))).await;
        decode_fetched(&shared, std::mem::take(&mut fetched));
        let result = match sent {
            Poll::Ready(result) => result,
            Poll::Pending => request.await,
        };
        match result {
            Ok((ok, next)) => {
                fetched = next;
                if !ok {
                    tokio::time::sleep(backoff).await;
                }
            }
            Err(e) => {
                warn!(error = %e, partitions = plan.len(), "fetch failed; re-routing");
                unroute(&shared, &plan);
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// The fetchable cursors of `node`, marked in flight.
fn plan(shared: &Shared, node: i32) -> Vec<Planned> {
    let max_buffered = shared.max_buffered();
    let now = Instant::now();
    let mut state = shared.lock();
    let mut plan = Vec::new();
    for (tp, c) in state.cursors.iter_mut() {
        if c.is_fetchable(node, max_buffered, now) {
            c.in_flight = true;
            c.retry_at = None;
            plan.push(Planned {
                tp: tp.clone(),
                fetch_offset: c.fetch_offset,
                version: c.version,
            });
        }
    }
    plan
}

/// Sends one Fetch for `plan` to `node`; the response is applied to the cursors on the
/// connection's reader as soon as it arrives (errors, fetch offsets), so `poll` wakes
/// without a hand-over through this loop. Returns whether the request as a whole
/// succeeded, and the fetched records, to be decoded with [`decode_fetched`].
async fn fetch(
    shared: &Arc<Shared>,
    node: i32,
    plan: &Arc<Vec<Planned>>,
) -> Result<(bool, Vec<Fetched>), ClientError> {
    let conn = shared.cluster.broker(node).await?;
    let mut version = conn.version_for::<FetchRequest>()?.min(MAX_FETCH_VERSION);
    let ids = if version > LAST_FETCH_VERSION_BY_NAME {
        topic_ids(shared, plan)
    } else {
        None
    };
    if ids.is_none() {
        version = version.min(LAST_FETCH_VERSION_BY_NAME);
    }
    let request = fetch_request(shared, plan, ids.as_ref());
    debug!(version, partitions = plan.len(), "fetch");
    let (shared, plan) = (shared.clone(), plan.clone());
    let applied = conn
        .send_then(&request, version, move |response| {
            let applied =
                response.map(|response| apply(&shared, node, &plan, ids.as_ref(), response));
            // A small response is decoded here at once (latency is what counts for it); a
            // large one by the loop, while the next fetch is out.
            let (applied, now) = match applied {
                Ok((ok, fetched)) if fetched_size(&fetched) < DECODE_LATER_BYTES => {
                    (Ok((ok, Vec::new())), fetched)
                }
                other => (other, Vec::new()),
            };
            let later = applied.as_ref().is_ok_and(|(_, f)| !f.is_empty());
            // After this loop has been woken: `poll` runs first.
            (applied, move || {
                if !now.is_empty() {
                    decode_fetched(&shared, now);
                } else if !later {
                    // Errors, resets, unrouted partitions.
                    shared.data.notify_waiters();
                }
            })
        })
        .await;
    Ok(applied??)
}

/// Fetched bytes from which a response's records are decoded by the fetch loop while the
/// next fetch is out, rather than at once on the connection's reader.
const DECODE_LATER_BYTES: usize = 64 * 1024;

fn fetched_size(fetched: &[Fetched]) -> usize {
    fetched.iter().map(|f| f.records.records.len()).sum()
}

/// The ids of the planned topics by name; `None` unless the metadata has every one.
fn topic_ids(shared: &Shared, plan: &[Planned]) -> Option<HashMap<String, Uuid>> {
    let metadata = shared.cluster.metadata();
    plan.iter()
        .map(|p| {
            let id = metadata.topics.get(&p.tp.0)?.id;
            (!id.is_nil()).then(|| (p.tp.0.clone(), id))
        })
        .collect()
}

/// The Fetch request for `plan`, naming topics by id when `ids` are given (v13+).
fn fetch_request(
    shared: &Shared,
    plan: &[Planned],
    ids: Option<&HashMap<String, Uuid>>,
) -> FetchRequest {
    let config = shared.cluster.config();
    let partition_max_bytes = i32::try_from(config.max_partition_fetch_bytes).unwrap_or(i32::MAX);
    let mut topics: Vec<(&str, FetchTopic)> = Vec::new();
    for p in plan {
        let partition = FetchPartition::default()
            .with_partition(p.tp.1)
            .with_fetch_offset(p.fetch_offset)
            .with_partition_max_bytes(partition_max_bytes);
        match topics.last_mut() {
            Some((name, t)) if *name == p.tp.0 => t.partitions.push(partition),
            _ => {
                let topic = FetchTopic::default().with_partitions(vec![partition]);
                let topic = match ids.and_then(|ids| ids.get(&p.tp.0)) {
                    Some(&id) => topic.with_topic_id(id),
                    None => topic.with_topic(TopicName(StrBytes::from_string(p.tp.0.clone()))),
                };
                topics.push((p.tp.0.as_str(), topic));
            }
        }
    }
    FetchRequest::default()
        .with_max_wait_ms(i32::try_from(config.fetch_max_wait_ms).unwrap_or(i32::MAX))
        .with_min_bytes(i32::try_from(config.fetch_min_bytes).unwrap_or(i32::MAX))
        .with_max_bytes(i32::try_from(config.fetch_max_bytes).unwrap_or(i32::MAX))
        .with_isolation_level(config.isolation_level.as_i8())
        .with_topics(topics.into_iter().map(|(_, t)| t).collect())
}

/// One partition's fetched records, their fetch offset already moved past them
/// ([`Cursor::begin_decode`]), to be decoded outside the lock.
struct Fetched {
    tp: TopicPartition,
    version: u64,
    fetch_offset: i64,
    records: ToDecode,
}

/// Applies a Fetch response to the cursors still as planned, from broker `node`. Returns
/// `false` when the whole request failed (the loop backs off), and the records to decode.
fn apply(
    shared: &Shared,
    node: i32,
    plan: &[Planned],
    ids: Option<&HashMap<String, Uuid>>,
    response: FetchResponse,
) -> (bool, Vec<Fetched>) {
    let read_committed = shared.cluster.config().isolation_level == IsolationLevel::ReadCommitted;
    let backoff = shared.retry_backoff();
    let mut state = shared.lock();
    for p in plan {
        if let Some(c) = current(&mut state, p) {
            c.in_flight = false;
        }
    }
    let whole = ErrorCode::from(response.error_code);
    if !whole.is_ok() {
        warn!(error = %whole, "fetch request failed");
        return (false, Vec::new());
    }
    let mut fetched = Vec::new();
    for topic in response.responses {
        // v13+ answers by topic id.
        let by_id = ids.and_then(|ids| ids.iter().find(|(_, id)| **id == topic.topic_id));
        let name = match by_id {
            Some((name, _)) => name.clone(),
            None => topic.topic.0.to_string(),
        };
        for data in topic.partitions {
            let tp = (name.clone(), data.partition_index);
            let Some(planned) = plan.iter().find(|p| p.tp == tp) else {
                continue;
            };
            let version = state.version();
            if let Some(c) = current(&mut state, planned) {
                let records = apply_partition(
                    c,
                    planned.fetch_offset,
                    data,
                    (read_committed, backoff, node),
                    version,
                );
                fetched.extend(records.map(|records| Fetched {
                    tp,
                    version: planned.version,
                    fetch_offset: planned.fetch_offset,
                    records,
                }));
            }
        }
    }
    (true, fetched)
}

/// Decodes fetched records and hands them to their cursors, unless a cursor moved since
/// (a seek, a reset, a failed batch before them).
fn decode_fetched(shared: &Shared, fetched: Vec<Fetched>) {
    if fetched.is_empty() {
        return;
    }
    let decoded: Vec<_> = fetched
        .into_iter()
        .map(|f| {
            let (topic, partition, r) = (&f.tp.0, f.tp.1, f.records);
            let records = decode_partition(topic, partition, f.fetch_offset, &r.records, r.aborted);
            (f.tp, f.version, r.next_offset, r.size, records)
        })
        .collect();
    let mut state = shared.lock();
    for (tp, version, next_offset, size, records) in decoded {
        let Some(c) = state.cursors.get_mut(&tp).filter(|c| c.version == version) else {
            continue;
        };
        c.finish_decode(size);
        if c.error.is_some() {
            continue;
        }
        match records {
            Ok(decoded) => c.push(decoded.records, next_offset),
            Err(e) => c.error = Some(ClientError::Protocol(e.into())),
        }
    }
    drop(state);
    shared.data.notify_waiters();
    // Partitions held back for this loop's decoding may now be fetched by others.
    shared.wake.notify_waiters();
}

/// The cursor `planned` was made from, if nothing moved it since.
fn current<'a>(state: &'a mut State, planned: &Planned) -> Option<&'a mut Cursor> {
    state
        .cursors
        .get_mut(&planned.tp)
        .filter(|c| c.version == planned.version)
}

/// Records of one partition to decode.
#[derive(Debug)]
struct ToDecode {
    /// The offset after them.
    next_offset: i64,
    /// What they count against the buffer's bound until decoded.
    size: usize,
    records: bytes::Bytes,
    /// Under `read_committed`, the response's aborted transactions.
    aborted: Option<Vec<Aborted>>,
}

/// One partition's answer; `version` is a fresh version should the cursor be reset.
fn apply_partition(
    c: &mut Cursor,
    fetch_offset: i64,
    data: PartitionData,
    (read_committed, backoff, node): (bool, Duration, i32),
    version: u64,
) -> Option<ToDecode> {
    let code = ErrorCode::from(data.error_code);
    if code.is_ok() {
        // A response that arrives after its request timed out and the cursor moved on
        // (fetched elsewhere since) is stale; so is one after a batch that failed.
        if c.fetch_offset != fetch_offset || c.error.is_some() {
            return None;
        }
        return apply_records(c, data, read_committed, backoff, node);
    }
    debug!(topic = %c.topic, partition = c.partition, error = %code, "partition fetch error");
    if code == ErrorCode::OFFSET_OUT_OF_RANGE {
        if c.is_drained() {
            c.request_reset(Reset::Auto(Some(fetch_offset)), version);
        } else {
            // Records fetched before the log moved are still to be handed out: they go
            // first, and the fetch after them meets the error again and resets (the Java
            // client's rule: reset only when the fetch offset is the position).
            c.retry_at = Some(Instant::now() + backoff);
        }
    } else if LEADER_ERRORS.contains(&code) {
        c.leader = None;
        c.stale_leader = true;
    } else if code.is_retriable() {
        c.retry_at = Some(Instant::now() + backoff);
    } else {
        c.error = Some(ClientError::Broker {
            code,
            context: format!("fetch {}-{} at {fetch_offset}", c.topic, c.partition),
        });
    }
    None
}

/// Moves the cursor's fetch offset past the whole batches of `data` (their headers
/// read, not their records) and returns them for decoding.
fn apply_records(
    c: &mut Cursor,
    data: PartitionData,
    read_committed: bool,
    backoff: Duration,
    node: i32,
) -> Option<ToDecode> {
    let records = data.records.unwrap_or_default();
    let aborted = read_committed.then(|| {
        data.aborted_transactions
            .unwrap_or_default()
            .iter()
            .map(|a| Aborted {
                producer_id: a.producer_id.0,
                first_offset: a.first_offset,
            })
            .collect()
    });
    match scan(&records) {
        Ok(Scanned {
            next_offset: Some(next),
            size,
            ..
        }) => {
            c.begin_decode(next, size, node);
            return Some(ToDecode {
                next_offset: next,
                size,
                records,
                aborted,
            });
        }
        Ok(Scanned {
            next_offset: None, ..
        }) if !records.is_empty() => {
            warn!(topic = %c.topic, partition = c.partition, bytes = records.len(),
                "fetch returned only part of a batch; retrying");
            c.retry_at = Some(Instant::now() + backoff);
        }
        Ok(_) => {}
        Err(e) => c.error = Some(ClientError::Protocol(e.into())),
    }
    None
}

/// After a failed request: the planned partitions go back to `poll` for routing.
fn unroute(shared: &Shared, plan: &[Planned]) {
    let mut state = shared.lock();
    for p in plan {
        if let Some(c) = current(&mut state, p) {
            c.in_flight = false;
            c.leader = None;
            c.stale_leader = true;
        }
    }
    drop(state);
    shared.data.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::ConsumerRecord;
    use bytes::BytesMut;
    use strom_protocol::records::{BatchBuilder, Compression};

    fn out_of_range() -> PartitionData {
        PartitionData::default().with_error_code(ErrorCode::OFFSET_OUT_OF_RANGE.code())
    }

    #[test]
    fn out_of_range_resets_only_once_the_fetched_records_are_handed_out() {
        let backoff = Duration::from_millis(100);
        let mut c = Cursor::new("t".into(), 0, 1);
        c.seek(0, 2);
        let records = (0..3)
            .map(|offset| ConsumerRecord {
                topic: "t".into(),
                partition: 0,
                offset,
                timestamp: 0,
                key: None,
                value: None,
                headers: Vec::new(),
                leader_epoch: None,
            })
            .collect();
        c.push(records, 3);
        let mut out = Vec::new();
        c.take(1, &mut out);
        apply_partition(&mut c, 3, out_of_range(), (false, backoff, 1), 3);
        assert_eq!(c.position, Some(1), "records 1 and 2 are still to come");
        assert!(c.retry_at.is_some(), "the fetch is tried again later");
        c.take(10, &mut out);
        assert_eq!(out.len(), 3);
        apply_partition(&mut c, 3, out_of_range(), (false, backoff, 1), 4);
        assert_eq!(c.position, None);
        assert_eq!(c.reset, Reset::Auto(Some(3)));
    }

    fn batch(base: i64, count: usize) -> bytes::Bytes {
        let mut b = BatchBuilder::new(Compression::None).base_offset(base);
        for _ in 0..count {
            b.push(1000, None, Some(b"value"), &[]);
        }
        b.build().unwrap()
    }

    #[test]
    fn a_response_moves_the_fetch_offset_before_its_records_are_decoded() {
        let backoff = Duration::from_millis(100);
        let mut c = Cursor::new("t".into(), 0, 1);
        c.seek(0, 2);
        c.leader = Some(1);
        let mut wire = BytesMut::new();
        // Five records of 5 bytes in two batches (and a partial one): they count as
        // their bytes and 64 each against the bound while decoded.
        wire.extend_from_slice(&batch(0, 3));
        wire.extend_from_slice(&batch(3, 2));
        // A partial batch at the end, cut by the size limit.
        wire.extend_from_slice(&batch(5, 4)[..20]);
        let data = PartitionData::default().with_records(Some(wire.freeze()));
        let ToDecode {
            next_offset: next,
            size,
            records,
            aborted,
        } = apply_partition(&mut c, 0, data, (false, backoff, 1), 3).unwrap();
        assert_eq!((next, c.fetch_offset), (5, 5));
        assert!(aborted.is_none());
        assert_eq!(size, records.len() + 5 * ConsumerRecord::OVERHEAD);
        // The next fetch may go out meanwhile, from the same broker only.
        let now = Instant::now();
        assert!(c.is_fetchable(1, 1 << 20, now));
        assert!(!c.is_fetchable(1, size, now));
        assert!(!c.is_fetchable(2, 1 << 20, now));
        // Nothing to hand out yet, and the position waits for the records.
        let mut out = Vec::new();
        c.take(10, &mut out);
        assert_eq!((out.len(), c.position), (0, Some(0)));
        assert!(!c.is_drained());
        // An out-of-range answer to that next fetch does not reset past them.
        apply_partition(&mut c, 5, out_of_range(), (false, backoff, 1), 4);
        assert_eq!(c.position, Some(0));
        let decoded = decode_partition("t", 0, 0, &records, None).unwrap();
        c.finish_decode(size);
        c.push(decoded.records, next);
        c.take(10, &mut out);
        let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [0, 1, 2, 3, 4]);
        assert_eq!(c.position, Some(5));
        assert!(c.is_drained());
        // Decoded: another broker may fetch it (after the out-of-range answer's backoff).
        c.leader = Some(2);
        assert!(c.is_fetchable(2, 1 << 20, Instant::now() + backoff));
    }

    #[test]
    fn records_being_decoded_count_against_the_buffer_bound() {
        let mut c = Cursor::new("t".into(), 0, 1);
        c.seek(0, 2);
        c.leader = Some(1);
        c.begin_decode(10, 1000, 1);
        let now = Instant::now();
        assert!(!c.is_fetchable(1, 1000, now));
        assert!(c.is_fetchable(1, 1001, now));
        // A seek drops them: the cursor is free for any broker again.
        c.seek(0, 3);
        assert!(c.is_drained());
        c.leader = Some(2);
        assert!(c.is_fetchable(2, 1000, now));
    }

    #[test]
    fn a_corrupt_batch_header_fails_the_partition_without_moving_it() {
        let backoff = Duration::from_millis(100);
        let mut c = Cursor::new("t".into(), 0, 1);
        c.seek(0, 2);
        let mut wire = BytesMut::from(&batch(0, 3)[..]);
        // The magic byte.
        wire[16] = 7;
        let data = PartitionData::default().with_records(Some(wire.freeze()));
        assert!(apply_partition(&mut c, 0, data, (false, backoff, 1), 3).is_none());
        assert!(c.error.is_some());
        assert_eq!(c.fetch_offset, 0);
    }
}
