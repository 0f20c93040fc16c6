//! Fetch (key 1): versions 4-16.
//!
//! Stored batches are returned as they are on disk, without re-encoding: the handler only
//! locates them ([`FileRegion`]s); the connection sends each region from the page cache
//! to the socket with `sendfile` (see `net::fetch_response`). The response is limited by
//! the request's `max_bytes` (capped by the broker's `fetch.max.bytes`) and each
//! partition's `partition_max_bytes`, except
//! that the first partition with data always gets at least one whole batch (KIP-74) so a
//! consumer can make progress past a batch larger than its limits. When less than
//! `min_bytes` is available the request waits up to `max_wait_ms` for appends to the
//! partitions it asks for (long poll; each partition wakes only its own waiters).
//! Consumers need READ on each topic (TOPIC_AUTHORIZATION_FAILED), followers
//! CLUSTER_ACTION (CLUSTER_AUTHORIZATION_FAILED for the whole request).
//! v13+ names topics by id. Fetch sessions (KIP-227) are not created: the response's session
//! id is always 0, which tells clients to keep sending full requests.

use std::time::Duration;

use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::log::FileRegion;
use crate::partition::{Partition, ReadView, Reader};
use crate::state::BrokerState;
use crate::topics::Topic;
use std::sync::Arc;

/// Longest wait honoured, whatever a client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// A response whose partitions' records are still in the log: `regions` has one entry per
/// partition, in response order; where it is `Some`, the partition's `records` field is a
/// placeholder for the region's bytes.
pub(crate) struct FetchOutput {
    pub(crate) response: FetchResponse,
    pub(crate) regions: Vec<Option<FileRegion>>,
}

impl FetchOutput {
    /// Bytes of records in the response, for the consumer byte-rate quota.
    pub(crate) fn bytes(&self) -> usize {
        let regions: usize = self.regions.iter().flatten().map(|r| r.len()).sum();
        let inline: usize = self
            .response
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.records.as_ref())
            .map(bytes::Bytes::len)
            .sum();
        regions + inline
    }

    /// Reads every region into its partition's `records`, for the generic encoder.
    pub(crate) fn materialize(mut self) -> std::io::Result<FetchResponse> {
        let mut regions = self.regions.into_iter();
        for topic in &mut self.response.responses {
            for partition in &mut topic.partitions {
                if let Some(Some(region)) = regions.next() {
                    partition.records = Some(region.to_bytes()?);
                }
            }
        }
        Ok(self.response)
    }
}

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: FetchRequest,
    version: i16,
) -> FetchOutput {
    if request.session_id != 0 || request.session_epoch > 0 {
        let response =
            FetchResponse::default().with_error_code(ErrorCode::FETCH_SESSION_ID_NOT_FOUND.code());
        return FetchOutput {
            response,
            regions: Vec::new(),
        };
    }
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let topics: Vec<Option<Arc<Topic>>> = request
        .topics
        .iter()
        .map(|t| {
            if version >= 13 {
                state.topics.get_by_id(t.topic_id)
            } else {
                state.topics.get(t.topic.0.as_str())
            }
        })
        .collect();
    // The response limit: the client's, capped by the broker's `fetch.max.bytes`.
    let max_bytes = request.max_bytes.clamp(0, state.config.fetch_max_bytes) as usize;
    // A follower's fetch: its fetch offsets are its log ends, which move the leader's high
    // watermark and may bring it into the ISR. Followers need CLUSTER_ACTION; consumers
    // READ on each topic.
    let replica = replica_of(&request, version);
    if replica >= 0 && !state.allowed_on_cluster(client, Operation::ClusterAction) {
        let response = FetchResponse::default()
            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code());
        return FetchOutput {
            response,
            regions: Vec::new(),
        };
    }
    let denied: Vec<bool> = request
        .topics
        .iter()
        .zip(&topics)
        .map(|(t, topic)| {
            let name = topic
                .as_ref()
                .map_or(t.topic.0.as_str(), |t| t.name.as_str());
            let unnamed = version >= 13 && topic.is_none();
            replica < 0
                && !unnamed
                && !state.allowed(client, Operation::Read, ResourceType::Topic, name)
        })
        .collect();
    let topics: Vec<Option<Arc<Topic>>> = topics
        .into_iter()
        .zip(&denied)
        .map(|(topic, denied)| topic.filter(|_| !denied))
        .collect();
    if replica >= 0 {
        replica_progress(state, &request, &topics, replica).await;
    }
    let woken = Arc::new(Notify::new());
    loop {
        // Ask to be woken before reading, so an append between the read and the wait is
        // not missed (the wake-up is kept until we wait).
        for (fetch_topic, topic) in request.topics.iter().zip(&topics) {
            for p in &fetch_topic.partitions {
                if let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition)) {
                    partition.wait_for_append(&woken);
                }
            }
        }
        let (output, read) =
            read_all(state, &request, (&topics, &denied), version, max_bytes).await;
        let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
        let nothing_asked = request.topics.iter().all(|t| t.partitions.is_empty());
        if read.bytes >= min_bytes || read.errors || nothing_asked || Instant::now() >= deadline {
            return output;
        }
        if tokio::time::timeout_at(deadline, woken.notified())
            .await
            .is_err()
        {
            return read_all(state, &request, (&topics, &denied), version, max_bytes)
                .await
                .0;
        }
    }
}

/// KIP-320: a fetch naming the leader epoch it expects (v9+; -1 does not) is refused
/// when this broker leads in another: `FENCED_LEADER_EPOCH` for an older one (the fetcher
/// missed a leader change and may hold records this leader does not),
/// `UNKNOWN_LEADER_EPOCH` for a newer one (this broker has yet to learn of it).
pub(crate) fn leader_epoch_check(partition: &Partition, current: i32) -> Result<(), ErrorCode> {
    if current < 0 {
        return Ok(());
    }
    let ours = partition.leader_epoch();
    match current.cmp(&ours) {
        std::cmp::Ordering::Less => Err(ErrorCode::FENCED_LEADER_EPOCH),
        std::cmp::Ordering::Greater => Err(ErrorCode::UNKNOWN_LEADER_EPOCH),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// What one pass over the requested partitions found.
struct Read {
    bytes: usize,
    errors: bool,
}

/// The node id of the follower sending a fetch (v15+ says it in the replica state), -1 for
/// a consumer.
pub(crate) fn replica_of(request: &FetchRequest, version: i16) -> i32 {
    if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    }
}

/// Records follower `replica`'s fetch offsets with the partitions it follows from here,
/// and asks the controller to add it to the ISR of those it caught up with.
async fn replica_progress(
    state: &BrokerState,
    request: &FetchRequest,
    topics: &[Option<Arc<Topic>>],
    replica: i32,
) {
    let now = u64::try_from(crate::state::now_ms()).unwrap_or(0);
    for (fetch_topic, topic) in request.topics.iter().zip(topics) {
        let Some(topic) = topic else { continue };
        for p in &fetch_topic.partitions {
            let Some(partition) = topic.partition(p.partition) else {
                continue;
            };
            if leader_epoch_check(&partition, p.current_leader_epoch).is_err() {
                // A follower of another epoch: its offset says nothing of this log.
                continue;
            }
            if let Some((isr, epoch)) = partition
                .replica_fetched(replica, p.fetch_offset, now)
                .await
            {
                state.topics.request_isr(topic.id, p.partition, isr, epoch);
            }
        }
    }
}

async fn read_all(
    state: &BrokerState,
    request: &FetchRequest,
    (topics, denied): (&[Option<Arc<Topic>>], &[bool]),
    version: i16,
    max_bytes: usize,
) -> (FetchOutput, Read) {
    let replica = replica_of(request, version);
    let mut regions = Vec::new();
    let mut remaining = max_bytes;
    let mut total = 0usize;
    let mut errors = false;
    let mut responses = Vec::with_capacity(request.topics.len());
    for ((fetch_topic, topic), denied) in request.topics.iter().zip(topics).zip(denied) {
        let mut partitions = Vec::with_capacity(fetch_topic.partitions.len());
        for p in &fetch_topic.partitions {
            let data = PartitionData::default().with_partition_index(p.partition);
            if *denied {
                let code = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
                partitions.push(data.with_error_code(code).with_high_watermark(-1));
                regions.push(None);
                errors = true;
                continue;
            }
            let led = super::led_partition(
                state,
                fetch_topic.topic.0.as_str(),
                topic.as_ref(),
                p.partition,
            );
            let Ok(partition) = led else {
                // v13+ names topics by id: an unknown id is UNKNOWN_TOPIC_ID; a partition
                // led elsewhere NOT_LEADER_OR_FOLLOWER; an unknown partition of a known
                // topic UNKNOWN_TOPIC_OR_PARTITION.
                let code = match led {
                    Err(_) if version >= 13 && topic.is_none() => ErrorCode::UNKNOWN_TOPIC_ID,
                    Err(code) => code,
                    Ok(_) => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                };
                partitions.push(data.with_error_code(code.code()).with_high_watermark(-1));
                regions.push(None);
                errors = true;
                continue;
            };
            if let Err(code) = leader_epoch_check(&partition, p.current_leader_epoch) {
                partitions.push(data.with_error_code(code.code()).with_high_watermark(-1));
                regions.push(None);
                errors = true;
                continue;
            }
            let limit = usize::try_from(p.partition_max_bytes)
                .unwrap_or(0)
                .min(remaining);
            let min_one = total == 0;
            // Watermarks and data from the same moment, so no record is past the high
            // watermark reported with it.
            let reader = match (replica >= 0, request.isolation_level) {
                (true, _) => Reader::Replica,
                (false, 1) => Reader::Committed,
                (false, _) => Reader::Uncommitted,
            };
            let ReadView {
                marks,
                region,
                aborted,
            } = if limit == 0 && !min_one {
                ReadView {
                    marks: partition.watermarks().await,
                    region: Ok(None),
                    aborted: Vec::new(),
                }
            } else {
                partition
                    .read_region(p.fetch_offset, limit, min_one, reader)
                    .await
            };
            let mut data = data
                .with_high_watermark(marks.high_watermark)
                .with_last_stable_offset(marks.last_stable_offset);
            if version >= 5 {
                data = data.with_log_start_offset(marks.log_start_offset);
            }
            // v4+: read_committed fetches are told which aborted transactions the records
            // hold; others get null.
            if version >= 4 && reader == Reader::Committed {
                let aborted = aborted
                    .iter()
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(a.producer_id))
                            .with_first_offset(a.first_offset)
                    })
                    .collect();
                data = data.with_aborted_transactions(Some(aborted));
            } else {
                data = data.with_aborted_transactions(None);
            }
            match region {
                Ok(region) => {
                    let len = region.as_ref().map_or(0, FileRegion::len);
                    total += len;
                    remaining = remaining.saturating_sub(len);
                    partitions.push(data.with_records(Some(Default::default())));
                    regions.push(region.filter(|r| !r.is_empty()));
                }
                Err(code) => {
                    errors = true;
                    partitions.push(data.with_error_code(code.code()));
                    regions.push(None);
                }
            }
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(fetch_topic.topic.clone())
                .with_topic_id(fetch_topic.topic_id)
                .with_partitions(partitions),
        );
    }
    let read = Read {
        bytes: total,
        errors,
    };
    let response = FetchResponse::default().with_responses(responses);
    (FetchOutput { response, regions }, read)
}
