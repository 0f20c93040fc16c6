//! The fetch loop of one broker (a "source", as franz-go calls it).
//!
//! ```text
//!  loop: plan ── the cursors routed here that are fetchable (position known, not paused,
//!          │     not in flight, buffer under its bound), marked in flight
//!          ├─▶ one Fetch (v4..=16) for all of them, long-polled by
//!          │   fetch.min.bytes / fetch.max.wait.ms, sized by fetch.max.bytes and
//!          │   max.partition.fetch.bytes
//!          └─▶ apply: records into each cursor's buffer (if its version is unchanged),
//!              OFFSET_OUT_OF_RANGE → reset, leader errors → unrouted (poll re-routes),
//!              other retriable errors → retry.backoff.ms
//! ```
//!
//! With nothing to fetch the loop sleeps until woken (a seek, resume, drained buffer) or
//! `retry.backoff.ms` passes. Fetch v13+ names topics by id (from the metadata); when the
//! metadata lacks an id of a planned topic (a broker from before topic ids), that request
//! uses v12, the last that names topics, so the client works with any broker since Kafka
//! 0.11 (Fetch v4).

use std::collections::HashMap;
use std::sync::Arc;
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
use super::decode::{decode_partition, Aborted};
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
    while !shared.is_closed() {
        let woken = shared.wake.notified();
        let plan = plan(&shared, node);
        if plan.is_empty() {
            let _ = tokio::time::timeout(backoff, woken).await;
            continue;
        }
        let plan = Arc::new(plan);
        match fetch(&shared, node, &plan).await {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(backoff).await,
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
/// connection's reader as soon as it arrives, so `poll` wakes without a hand-over through
/// this loop. Returns whether the request as a whole succeeded.
async fn fetch(
    shared: &Arc<Shared>,
    node: i32,
    plan: &Arc<Vec<Planned>>,
) -> Result<bool, ClientError> {
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
            let applied = response.map(|response| apply(&shared, &plan, ids.as_ref(), response));
            // `poll` is woken after this loop, so that it runs first.
            (applied, move || shared.data.notify_waiters())
        })
        .await;
    Ok(applied??)
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

/// Applies a Fetch response to the cursors still as planned. Returns `false` when the
/// whole request failed (the loop backs off).
fn apply(
    shared: &Shared,
    plan: &[Planned],
    ids: Option<&HashMap<String, Uuid>>,
    response: FetchResponse,
) -> bool {
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
        return false;
    }
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
                apply_partition(
                    c,
                    planned.fetch_offset,
                    data,
                    read_committed,
                    backoff,
                    version,
                );
            }
        }
    }
    true
}

/// The cursor `planned` was made from, if nothing moved it since.
fn current<'a>(state: &'a mut State, planned: &Planned) -> Option<&'a mut Cursor> {
    state
        .cursors
        .get_mut(&planned.tp)
        .filter(|c| c.version == planned.version)
}

/// One partition's answer; `version` is a fresh version should the cursor be reset.
fn apply_partition(
    c: &mut Cursor,
    fetch_offset: i64,
    data: PartitionData,
    read_committed: bool,
    backoff: Duration,
    version: u64,
) {
    let code = ErrorCode::from(data.error_code);
    if code.is_ok() {
        // A response that arrives after its request timed out and the cursor moved on
        // (fetched elsewhere since) is stale.
        if c.fetch_offset != fetch_offset {
            return;
        }
        return apply_records(c, fetch_offset, data, read_committed, backoff);
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
}

fn apply_records(
    c: &mut Cursor,
    fetch_offset: i64,
    data: PartitionData,
    read_committed: bool,
    backoff: Duration,
) {
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
    match decode_partition(&c.topic, c.partition, fetch_offset, &records, aborted) {
        Ok(decoded) => match decoded.next_offset {
            Some(next) => c.push(decoded.records, next),
            None if !records.is_empty() => {
                warn!(topic = %c.topic, partition = c.partition, bytes = records.len(),
                    "fetch returned only part of a batch; retrying");
                c.retry_at = Some(Instant::now() + backoff);
            }
            None => {}
        },
        Err(e) => c.error = Some(ClientError::Protocol(e.into())),
    }
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
        apply_partition(&mut c, 3, out_of_range(), false, backoff, 3);
        assert_eq!(c.position, Some(1), "records 1 and 2 are still to come");
        assert!(c.retry_at.is_some(), "the fetch is tried again later");
        c.take(10, &mut out);
        assert_eq!(out.len(), 3);
        apply_partition(&mut c, 3, out_of_range(), false, backoff, 4);
        assert_eq!(c.position, None);
        assert_eq!(c.reset, Reset::Auto(Some(3)));
    }
}
