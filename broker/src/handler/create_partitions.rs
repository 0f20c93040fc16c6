//! CreatePartitions (key 37): versions 0-3. Grows a topic, on the active controller.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        // An empty list is no assignment (as null is).
        let assignments = t.assignments.filter(|a| !a.is_empty()).map(|a| {
            a.into_iter()
                .map(|a| a.broker_ids.into_iter().map(|b| b.0).collect())
                .collect()
        });
        let name = t.name.0.as_str();
        let outcome = if state.allowed(client, Operation::Alter, ResourceType::Topic, name) {
            state
                .topics
                .add_partitions(name, t.count, assignments, request.validate_only)
                .await
        } else {
            Err((
                ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                format!("not authorized to alter topic {name}"),
            ))
        };
        results.push(match outcome {
            Ok(()) => result,
            Err((code, message)) => result
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
