//! AlterPartitionReassignments (key 45, versions 0-1) and ListPartitionReassignments
//! (key 46, version 0): moving partitions' replicas to other brokers (KIP-455).
//!
//! Alter is answered by the active controller once the moves are recorded in the metadata
//! log (not once they complete: the new replicas then catch up, and the controller
//! finishes each move when they are in sync); other brokers answer `NOT_CONTROLLER`.
//! List is answered from any broker's image.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::state::BrokerState;

pub(crate) async fn alter(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    if !state.allowed_on_cluster(client, Operation::Alter) {
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code());
    }
    let allow_factor_change = version < 1 || request.allow_replication_factor_change;
    let image = state.topics.image();
    let mut wanted = Vec::new();
    // Answers decided here (a replication factor change not allowed), by position.
    let mut refused = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let target: Option<Vec<i32>> =
                p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            let current = image
                .topic(topic.name.0.as_str())
                .and_then(|t| image.partition(t.id, p.partition_index))
                .map(crate::controller::reassignment::original);
            let factor_changes = match (&target, &current) {
                (Some(target), Some(current)) => target.len() != current.len(),
                _ => false,
            };
            refused.push((!allow_factor_change && factor_changes).then(|| {
                (
                    ErrorCode::INVALID_REPLICATION_FACTOR,
                    "the request does not allow changing the replication factor".to_owned(),
                )
            }));
            if !factor_changes || allow_factor_change {
                wanted.push(((topic.name.0.to_string(), p.partition_index), target));
            }
        }
    }
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_factor_change);
    let mut results = match state.topics.reassign(wanted).await {
        Ok(results) => results.into_iter(),
        Err((code, message)) => {
            return response
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message)));
        }
    };
    let mut refused = refused.into_iter();
    let responses = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let outcome = match refused.next().flatten() {
                        Some(failure) => Err(failure),
                        None => results.next().unwrap_or(Ok(())),
                    };
                    let answer = ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match outcome {
                        Ok(()) => answer,
                        Err((code, message)) => answer
                            .with_error_code(code.code())
                            .with_error_message(Some(str_bytes(message))),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    response.with_responses(responses)
}

pub(crate) async fn list(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: ListPartitionReassignmentsRequest,
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    if !state.allowed_on_cluster(client, Operation::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code());
    }
    let named: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let ongoing = state.topics.reassignments(named.as_deref());
    let ids = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let answers = ongoing.into_iter().map(|((name, index), p)| {
        let partition = OngoingPartitionReassignment::default()
            .with_partition_index(index)
            .with_replicas(ids(&p.replicas))
            .with_adding_replicas(ids(&p.adding))
            .with_removing_replicas(ids(&p.removing));
        (name, partition)
    });
    let topics = super::by_topic(answers, |name, partitions| {
        OngoingTopicReassignment::default()
            .with_name(TopicName(str_bytes(name)))
            .with_partitions(partitions)
    });
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
