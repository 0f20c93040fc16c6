//! DeleteTopics (key 20): versions 1-6. v6 names topics by name or by id.
//!
//! The topic disappears from metadata at once and its partition folders are removed.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::{str_bytes, topic_name};
use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<String>, Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let name = name.or_else(|| state.topics.get_by_id(id).map(|t| t.name.clone()));
        let Some(name) = name else {
            responses.push(
                DeletableTopicResult::default()
                    .with_topic_id(id)
                    .with_error_code(ErrorCode::UNKNOWN_TOPIC_ID.code()),
            );
            continue;
        };
        let result = DeletableTopicResult::default().with_name(Some(topic_name(name.clone())));
        let deleted = if state.allowed(client, Operation::Delete, ResourceType::Topic, &name) {
            state.topics.delete(&name).await
        } else {
            Err((ErrorCode::TOPIC_AUTHORIZATION_FAILED, String::new()))
        };
        responses.push(match deleted {
            Ok(id) if version >= 6 => result.with_topic_id(id),
            Ok(_) => result,
            Err((code, message)) if version >= 5 => result
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
            Err((code, _)) => result.with_error_code(code.code()),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
