//! OffsetDelete (key 47): version 0.
//!
//! Deletes a group's committed offsets of some partitions, refused per partition
//! (GROUP_SUBSCRIBED_TO_TOPIC) while a member of the group is subscribed to the topic.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;

use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let group_id = request.group_id.to_string();
    if group_id.is_empty() {
        return OffsetDeleteResponse::default().with_error_code(ErrorCode::INVALID_GROUP_ID.code());
    }
    if let Err(code) = super::group_check(state, client, &group_id, Operation::Delete) {
        return OffsetDeleteResponse::default().with_error_code(code.code());
    }
    let readable = |topic: &str| state.allowed(client, Operation::Read, ResourceType::Topic, topic);
    let wanted: Vec<(String, i32)> = request
        .topics
        .iter()
        .filter(|t| readable(t.name.as_str()))
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let codes = match state.groups.delete_offsets(&group_id, wanted.clone()).await {
        Ok(codes) => codes,
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code.code()),
    };
    let mut codes = codes.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if readable(t.name.as_str()) {
                        codes.next().unwrap_or(ErrorCode::UNKNOWN_SERVER_ERROR)
                    } else {
                        ErrorCode::TOPIC_AUTHORIZATION_FAILED
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code.code())
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
