//! IncrementalAlterConfigs (key 44): versions 0-1. Per key: SET (0), DELETE (1) back to
//! the default, APPEND (2) and SUBTRACT (3) for list configs (`cleanup.policy`).

use std::collections::BTreeMap;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use strom_protocol::ErrorCode;

use super::alter_configs::not_alterable;
use super::{str_bytes, RESOURCE_TOPIC};
use crate::state::BrokerState;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

type Failure = (ErrorCode, String);

/// Applies `change` to a topic's overrides and stores the result (unless `validate_only`).
pub(crate) fn apply(
    state: &BrokerState,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Failure>,
) -> Result<(), Failure> {
    if resource_type != RESOURCE_TOPIC {
        return Err(not_alterable(resource_type));
    }
    let topic = state.topics.get(name).ok_or_else(|| {
        (
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        )
    })?;
    let overrides = change(topic.overrides())?;
    if validate_only {
        return state
            .topics
            .log_config(&overrides)
            .map(|_| ())
            .map_err(|e| (ErrorCode::INVALID_CONFIG, e.to_string()));
    }
    state.topics.set_overrides(&topic, overrides)
}

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
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let responses = request
        .resources
        .into_iter()
        .map(|resource| {
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let configs = resource.configs;
            let outcome = apply(
                state,
                resource.resource_type,
                resource.resource_name.as_str(),
                request.validate_only,
                |mut overrides| {
                    for c in &configs {
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
                                let current = overrides.get(&key).cloned().or_else(|| {
                                    Some(
                                        state
                                            .topics
                                            .defaults()
                                            .cleanup_policy
                                            .as_kafka_str()
                                            .to_owned(),
                                    )
                                });
                                let edited = list_edit(
                                    current.as_ref(),
                                    &value,
                                    c.config_operation == APPEND,
                                );
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
                },
            );
            match outcome {
                Ok(()) => response,
                Err((code, message)) => response
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
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
