//! CreatePartitions (key 37): versions 0-3. Grows a topic; explicit assignments must name
//! this broker.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let node = state.config.node_id;
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let bad_assignment = t
            .assignments
            .as_ref()
            .is_some_and(|a| a.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != node)));
        let outcome = if bad_assignment {
            Err((
                ErrorCode::INVALID_REPLICA_ASSIGNMENT,
                format!("this cluster has one broker, {node}"),
            ))
        } else {
            state
                .topics
                .add_partitions(t.name.0.as_str(), t.count, request.validate_only)
                .await
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
