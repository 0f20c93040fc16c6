//! AlterConfigs (key 33): versions 0-2. Replaces a topic's whole set of overrides (Kafka's
//! semantics: keys not given return to their defaults). Broker configs are static here and
//! cannot be altered.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    request: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let responses = request
        .resources
        .into_iter()
        .map(|resource| {
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let overrides: BTreeMap<String, String> = resource
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            let outcome = super::incremental_alter_configs::apply(
                state,
                resource.resource_type,
                resource.resource_name.as_str(),
                request.validate_only,
                |_| Ok(overrides),
            );
            match outcome {
                Ok(()) => response,
                Err((code, message)) => response
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// The error for resources other than topics.
pub(crate) fn not_alterable(resource_type: i8) -> (ErrorCode, String) {
    (
        ErrorCode::INVALID_REQUEST,
        format!("configs of resource type {resource_type} cannot be altered on this broker"),
    )
}
