//! DescribeQuorum (key 55): versions 0-2.
//!
//! The metadata quorum as this node sees it, in KRaft's shape: the `__cluster_metadata`
//! topic's one partition, its leader and term (as the leader epoch), the commit index (as
//! the high watermark) and the voters with the last index each holds (known on the
//! leader; followers report their own). Learners are the observers.

use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::state::BrokerState;

/// The metadata log's topic name, as KRaft calls it.
pub(crate) const METADATA_TOPIC: &str = "__cluster_metadata";

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    if !state.allowed_on_cluster(client, Operation::Describe) {
        return DescribeQuorumResponse::default()
            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code());
    }
    let status = state.quorum.status();
    let replica = |id: i32, index: u64| {
        let end = i64::try_from(index).unwrap_or(i64::MAX);
        let replica = ReplicaState::default()
            .with_replica_id(BrokerId(id))
            .with_log_end_offset(end);
        if version >= 1 {
            replica
                .with_last_fetch_timestamp(-1)
                .with_last_caught_up_timestamp(-1)
        } else {
            replica
        }
    };
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    if topic.topic_name.0.as_str() != METADATA_TOPIC || p.partition_index != 0 {
                        return PartitionData::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code());
                    }
                    PartitionData::default()
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(status.leader.unwrap_or(-1)))
                        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
                        .with_high_watermark(i64::try_from(status.commit).unwrap_or(i64::MAX))
                        .with_current_voters(
                            status
                                .voters
                                .iter()
                                .map(|&(id, i)| replica(id, i))
                                .collect(),
                        )
                        .with_observers(status.learners.iter().map(|&id| replica(id, 0)).collect())
                })
                .collect();
            TopicData::default()
                .with_topic_name(TopicName(str_bytes(topic.topic_name.0.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}
