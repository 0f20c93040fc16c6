//! WriteTxnMarkers (key 27): version 1, sent by a transaction coordinator to the leaders
//! of a transaction's partitions when it ends.
//!
//! Each partition gets a marker batch (commit or abort) stamped with the producer's id and
//! epoch; it closes the producer's transaction there, so the last stable offset can move
//! past it, and an abort is remembered for `read_committed` fetches. As in Kafka the answer
//! waits until the in-sync replicas have the marker (the coordinator completes the
//! transaction only then), or `REQUEST_TIMED_OUT` after the broker's request timeout.
//! A marker on a `__consumer_offsets` partition also tells the group coordinator, so
//! offsets committed in the transaction count (commit) or are dropped (abort).

use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;
use tracing::debug;

use crate::group::OFFSETS_TOPIC;
use crate::state::{now_ms, BrokerState};

/// How long a marker may wait for the in-sync replicas.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: WriteTxnMarkersRequest,
    _version: i16,
) -> WriteTxnMarkersResponse {
    // Only brokers write markers.
    let allowed = state.allowed_on_cluster(client, Operation::ClusterAction);
    let mut markers = Vec::with_capacity(request.markers.len());
    for marker in request.markers {
        let mut topics = Vec::with_capacity(marker.topics.len());
        for topic in marker.topics {
            let name = topic.name.0.as_str();
            let local = state.topics.get(name);
            let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
            for index in topic.partition_indexes {
                let code = match super::led_partition(state, name, local.as_ref(), index) {
                    _ if !allowed => ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
                    Err(code) => code,
                    Ok(partition) => {
                        let epoch = partition.leader_epoch();
                        let written = partition
                            .append_marker(
                                marker.producer_id.0,
                                marker.producer_epoch,
                                marker.transaction_result,
                                marker.coordinator_epoch,
                                now_ms(),
                            )
                            .await;
                        match written {
                            Err((code, message)) => {
                                debug!(topic = name, partition = index, error = %code, ?message, "marker refused");
                                code
                            }
                            Ok(appended) => {
                                let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
                                let replicated = partition
                                    .wait_for_high_watermark(appended.next_offset, epoch, deadline)
                                    .await;
                                // Offsets committed in the transaction count (or go) now.
                                if replicated.is_ok() && name == OFFSETS_TOPIC {
                                    let (producer, commit) =
                                        (marker.producer_id.0, marker.transaction_result);
                                    state
                                        .groups
                                        .transaction_ended(index, producer, commit)
                                        .await;
                                }
                                replicated.err().unwrap_or(ErrorCode::NONE)
                            }
                        }
                    }
                };
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code.code()),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
