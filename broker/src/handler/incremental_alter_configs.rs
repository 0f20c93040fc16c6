//! IncrementalAlterConfigs (key 44): versions 0-1. Per key: SET (0), DELETE (1) back to
//! the default, APPEND (2) and SUBTRACT (3) for list configs (`cleanup.policy`).

use std::collections::BTreeMap;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;

use super::alter_configs::topic_resource;
use super::str_bytes;
use crate::state::BrokerState;
use crate::topics::Failure;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn list_edit(current: Option<&String>, value: &str, append: bool) -> String {
    let mut items: Vec<String> = current
        .map(|c| {
            c.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for v in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if append {
            if !items.iter().any(|i| i == v) {
                items.push(v.to_owned());
            }
        } else {
            items.retain(|i| i != v);
        }
    }
    items.join(",")
}

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let default_policy = state.topics.defaults().cleanup_policy.as_kafka_str();
        let denied = super::config_denied(
            state,
            client,
            resource.resource_type,
            resource.resource_name.as_str(),
            Operation::AlterConfigs,
        );
        let outcome = match denied.map_or_else(|| topic_resource(resource.resource_type), Err) {
            Ok(()) => {
                let configs = resource.configs;
                let name = resource.resource_name.as_str();
                state
                    .topics
                    .alter_overrides(name, request.validate_only, |o| {
                        apply(o, &configs, default_policy)
                    })
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
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Applies each operation to a topic's overrides.
fn apply(
    mut overrides: BTreeMap<String, String>,
    configs: &[AlterableConfig],
    default_policy: &str,
) -> Result<BTreeMap<String, String>, Failure> {
    for c in configs {
        let key = c.name.to_string();
        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        match c.config_operation {
            SET => {
                overrides.insert(key, value);
            }
            DELETE => {
                overrides.remove(&key);
            }
            APPEND | SUBTRACT if key == "cleanup.policy" => {
                let current = overrides
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| default_policy.to_owned());
                let edited = list_edit(Some(&current), &value, c.config_operation == APPEND);
                overrides.insert(key, edited);
            }
            APPEND | SUBTRACT => {
                return Err((
                    ErrorCode::INVALID_CONFIG,
                    format!("{key} is not a list config"),
                ))
            }
            other => {
                return Err((
                    ErrorCode::INVALID_REQUEST,
                    format!("unknown config operation {other}"),
                ))
            }
        }
    }
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_edits() {
        assert_eq!(
            list_edit(Some(&"delete".to_owned()), "compact", true),
            "delete,compact"
        );
        assert_eq!(
            list_edit(Some(&"delete,compact".to_owned()), "delete", false),
            "compact"
        );
        assert_eq!(list_edit(None, "compact", true), "compact");
    }
}
