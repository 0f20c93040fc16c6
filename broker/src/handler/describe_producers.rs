//! DescribeProducers (key 61, version 0): the idempotent and transactional producers a
//! partition's leader has state for (`kafka-transactions.sh describe-producers`), with
//! their epochs, last sequence numbers and the start of their open transactions.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;

use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: DescribeProducersRequest,
    _version: i16,
) -> DescribeProducersResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let local = state.topics.get(topic.name.0.as_str());
        let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
        for index in topic.partition_indexes {
            let answer = PartitionResponse::default().with_partition_index(index);
            let name = topic.name.0.as_str();
            let led = if state.allowed(client, Operation::Read, ResourceType::Topic, name) {
                super::led_partition(state, name, local.as_ref(), index)
            } else {
                Err(ErrorCode::TOPIC_AUTHORIZATION_FAILED)
            };
            partitions.push(match led {
                Err(code) => answer.with_error_code(code.code()),
                Ok(partition) => {
                    let producers = partition
                        .producers()
                        .await
                        .into_iter()
                        .map(|p| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(p.producer_id))
                                .with_producer_epoch(i32::from(p.producer_epoch))
                                .with_last_sequence(p.last_sequence)
                                .with_last_timestamp(p.last_timestamp)
                                .with_coordinator_epoch(p.coordinator_epoch)
                                .with_current_txn_start_offset(p.current_txn_start_offset)
                        })
                        .collect();
                    answer.with_active_producers(producers)
                }
            });
        }
        topics.push(
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}
