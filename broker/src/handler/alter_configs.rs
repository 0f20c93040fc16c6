//! AlterConfigs (key 33): versions 0-2. Replaces a topic's whole set of overrides (Kafka's
//! semantics: keys not given return to their defaults). Broker configs are static here and
//! cannot be altered.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use super::{str_bytes, RESOURCE_TOPIC};
use crate::state::BrokerState;
use crate::topics::Failure;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let overrides = resource
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let denied = super::config_denied(
            state,
            client,
            resource.resource_type,
            resource.resource_name.as_str(),
            Operation::AlterConfigs,
        );
        let outcome = match denied.map_or_else(|| topic_resource(resource.resource_type), Err) {
            Ok(()) => {
                state
                    .topics
                    .alter_overrides(
                        resource.resource_name.as_str(),
                        request.validate_only,
                        |_| Ok(overrides),
                    )
                    .await
            }
            Err(failure) => Err(failure),
        };
        responses.push(match outcome {
            Ok(()) => response,
            Err((code, message)) => response
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Only topic configs can be altered on this broker.
pub(crate) fn topic_resource(resource_type: i8) -> Result<(), Failure> {
    if resource_type == RESOURCE_TOPIC {
        Ok(())
    } else {
        Err((
            ErrorCode::INVALID_REQUEST,
            format!("configs of resource type {resource_type} cannot be altered on this broker"),
        ))
    }
}
