//! OffsetForLeaderEpoch (key 23): versions 2-4.
//!
//! Where a leader epoch ends in the leader's log (KIP-101; clients use it to check their
//! position after a leader change, KIP-320). Only the partition's leader answers;
//! `current_leader_epoch` (-1: unchecked) older than the leader's is FENCED_LEADER_EPOCH,
//! newer is UNKNOWN_LEADER_EPOCH.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    // Followers (CLUSTER_ACTION) may ask of every topic; consumers of those they may
    // describe.
    let replica = request.replica_id.0 >= 0;
    let cluster_action = state.allowed_on_cluster(client, Operation::ClusterAction);
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let name = t.topic.0.as_str();
        let local = state.topics.get(name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let answer = EpochEndOffset::default().with_partition(p.partition);
            let denied = if replica {
                (!cluster_action).then_some(ErrorCode::CLUSTER_AUTHORIZATION_FAILED)
            } else {
                (!state.may_describe_topic(client, name))
                    .then_some(ErrorCode::TOPIC_AUTHORIZATION_FAILED)
            };
            let found = denied.map_or(Ok(()), Err);
            let found = found
                .and_then(|()| super::led_partition(state, name, local.as_ref(), p.partition))
                .and_then(|partition| {
                    super::fetch::leader_epoch_check(&partition, p.current_leader_epoch)
                        .map(|()| partition)
                });
            partitions.push(match found {
                Ok(partition) => {
                    let (epoch, end) = partition.end_offset_for(p.leader_epoch).await;
                    answer.with_leader_epoch(epoch).with_end_offset(end)
                }
                Err(code) => answer
                    .with_error_code(code.code())
                    .with_leader_epoch(-1)
                    .with_end_offset(-1),
            });
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
