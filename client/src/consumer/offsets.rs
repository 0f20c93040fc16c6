//! ListOffsets (key 2) for the consumer: resolving resets (earliest / latest) and
//! `offsets_for_times`, one request per leader for all its partitions asked.
//!
//! Partitions whose leader moved or whose broker is unreachable are asked again after a
//! metadata refresh and `retry.backoff.ms`, until `request.timeout.ms` has passed.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;
use tokio::time::Instant;
use tracing::debug;

use crate::cluster::Cluster;
use crate::error::ClientError;

/// A partition of a topic.
pub(crate) type TopicPartition = (String, i32);

/// Kafka's ListOffsets timestamp for the log start offset.
pub(crate) const EARLIEST: i64 = -2;
/// Kafka's ListOffsets timestamp for the high watermark (last stable offset under
/// `read_committed`).
pub(crate) const LATEST: i64 = -1;

/// Looks up `timestamp` in each partition; answers are `(offset, timestamp)`, offset -1
/// when no record is at or after a timestamp.
///
/// # Errors
/// A partition's lasting error, or [`ClientError::Timeout`] while leaders keep failing.
pub(crate) async fn list_offsets(
    cluster: &Cluster,
    wanted: &[(TopicPartition, i64)],
) -> Result<HashMap<TopicPartition, (i64, i64)>, ClientError> {
    let config = cluster.config();
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let deadline = Instant::now() + timeout;
    let mut found = HashMap::new();
    loop {
        let pending: Vec<_> = wanted
            .iter()
            .filter(|(tp, _)| !found.contains_key(tp))
            .cloned()
            .collect();
        if pending.is_empty() {
            return Ok(found);
        }
        let before = found.len();
        let error = match ask_leaders(cluster, &pending, &mut found).await {
            Ok(()) if found.len() > before => continue,
            Ok(()) => ClientError::Broker {
                code: ErrorCode::LEADER_NOT_AVAILABLE,
                context: "list offsets: the leaders did not answer for every partition".into(),
            },
            Err(e) if e.is_retriable() => e,
            Err(e) => return Err(e),
        };
        if Instant::now() >= deadline {
            return Err(ClientError::Timeout {
                what: format!("list offsets (last error: {error})"),
                after_ms: config.request_timeout_ms,
            });
        }
        debug!(error = %error, "list offsets failed; retrying");
        tokio::time::sleep(Duration::from_millis(config.retry_backoff_ms)).await;
        let topics: Vec<String> = pending.iter().map(|((t, _), _)| t.clone()).collect();
        if let Err(e) = cluster.refresh_metadata(Some(&topics)).await {
            debug!(error = %e, "metadata refresh before retry failed");
        }
    }
}

/// One round: groups `pending` by leader and asks each; the last retriable error comes
/// back after all leaders were asked.
async fn ask_leaders(
    cluster: &Cluster,
    pending: &[(TopicPartition, i64)],
    found: &mut HashMap<TopicPartition, (i64, i64)>,
) -> Result<(), ClientError> {
    let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, i64)>> = BTreeMap::new();
    let mut retriable = None;
    for (tp, timestamp) in pending {
        match cluster.leader(&tp.0, tp.1).await {
            Ok((leader, _)) => by_leader
                .entry(leader)
                .or_default()
                .push((tp.clone(), *timestamp)),
            Err(e) if e.is_retriable() => retriable = Some(e),
            Err(e) => return Err(e),
        }
    }
    for (leader, asks) in by_leader {
        match ask_leader(cluster, leader, &asks, found).await {
            Ok(()) => {}
            Err(e) if e.is_retriable() => retriable = Some(e),
            Err(e) => return Err(e),
        }
    }
    retriable.map_or(Ok(()), Err)
}

/// One ListOffsets request to broker `leader`.
async fn ask_leader(
    cluster: &Cluster,
    leader: i32,
    asks: &[(TopicPartition, i64)],
    found: &mut HashMap<TopicPartition, (i64, i64)>,
) -> Result<(), ClientError> {
    let conn = cluster.broker(leader).await?;
    let version = conn.version_for::<ListOffsetsRequest>()?;
    let mut request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(request_topics(asks));
    if version >= 2 {
        request = request.with_isolation_level(cluster.config().isolation_level.as_i8());
    }
    let response = conn.send_version(&request, version).await?;
    let mut retriable = None;
    for t in response.topics {
        for p in t.partitions {
            let tp = (t.name.0.to_string(), p.partition_index);
            match ErrorCode::from(p.error_code) {
                code if code.is_ok() => {
                    found.insert(tp, (p.offset, p.timestamp));
                }
                code => {
                    let error = ClientError::Broker {
                        code,
                        context: format!("list offsets of {}-{} on broker {leader}", tp.0, tp.1),
                    };
                    if !error.is_retriable() {
                        return Err(error);
                    }
                    retriable = Some(error);
                }
            }
        }
    }
    retriable.map_or(Ok(()), Err)
}

fn request_topics(asks: &[(TopicPartition, i64)]) -> Vec<ListOffsetsTopic> {
    let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for ((topic, partition), timestamp) in asks {
        topics.entry(topic).or_default().push(
            ListOffsetsPartition::default()
                .with_partition_index(*partition)
                .with_timestamp(*timestamp),
        );
    }
    topics
        .into_iter()
        .map(|(name, partitions)| {
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                .with_partitions(partitions)
        })
        .collect()
}
