//! DeleteRecords (key 21): versions 0-2. Moves a partition's log start offset forward;
//! offset -1 means the high watermark. Whole segments below it are removed. Compact-only
//! topics refuse it (`POLICY_VIOLATION`), as in Kafka.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;

use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let topic = state.topics.get(t.name.0.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let result =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            let allowed = state.allowed(
                client,
                Operation::Delete,
                ResourceType::Topic,
                t.name.0.as_str(),
            );
            let outcome = match super::led_partition(
                state,
                t.name.0.as_str(),
                topic.as_ref(),
                p.partition_index,
            ) {
                _ if !allowed => Err(ErrorCode::TOPIC_AUTHORIZATION_FAILED),
                Err(code) => Err(code),
                Ok(partition) => partition.delete_records_before(p.offset).await,
            };
            partitions.push(match outcome {
                Ok(low) => result.with_low_watermark(low),
                Err(code) => result.with_error_code(code.code()).with_low_watermark(-1),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
