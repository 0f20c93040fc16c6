//! ElectLeaders (key 43): versions 0-2. Preferred-leader election (the first replica
//! leads again once it is back in sync) and, when asked explicitly, unclean election of a
//! partition without a leader. Served by the active controller; others answer
//! `NOT_CONTROLLER`. Version 0 has no election type: it is a preferred election.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::controller::reassignment::Election;
use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    if !state.allowed_on_cluster(client, Operation::Alter) {
        return ElectLeadersResponse::default()
            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code());
    }
    let kind = if version >= 1 {
        Election::from_kafka(request.election_type)
    } else {
        Some(Election::Preferred)
    };
    let Some(kind) = kind else {
        return ElectLeadersResponse::default().with_error_code(ErrorCode::INVALID_REQUEST.code());
    };
    let named: Option<Vec<(String, i32)>> = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect()
    });
    let results = match state.topics.elect_leaders(kind, named.clone()).await {
        Ok(results) => results,
        Err(failure) if version == 0 => {
            // Version 0 has no top-level error: it goes on every partition named.
            named
                .unwrap_or_default()
                .into_iter()
                .map(|name| (name, Err(failure.clone())))
                .collect()
        }
        Err((code, _)) => {
            return ElectLeadersResponse::default().with_error_code(code.code());
        }
    };
    let answers = results.into_iter().map(|((name, partition), outcome)| {
        let result = PartitionResult::default().with_partition_id(partition);
        let result = match outcome {
            Ok(()) => result,
            Err((code, message)) => result
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        };
        (name, result)
    });
    let topics = super::by_topic(answers, |name, partitions| {
        ReplicaElectionResult::default()
            .with_topic(TopicName(str_bytes(name)))
            .with_partition_result(partitions)
    });
    ElectLeadersResponse::default().with_replica_election_results(topics)
}
