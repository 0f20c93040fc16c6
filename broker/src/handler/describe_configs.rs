//! DescribeConfigs (key 32): versions 1-4.
//!
//! Topic resources list every topic-level config with its effective value and where it
//! comes from: the topic's own override (`DYNAMIC_TOPIC_CONFIG`), the broker's file
//! (`STATIC_BROKER_CONFIG`) or Kafka's default (`DEFAULT_CONFIG`). Broker resources list
//! the broker's settings as static configs.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use super::{str_bytes, RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::state::BrokerState;

/// Kafka's `ConfigSource` codes.
pub(crate) const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub(crate) const SOURCE_STATIC_BROKER: i8 = 4;
pub(crate) const SOURCE_DEFAULT: i8 = 5;

/// Kafka's `ConfigType` codes.
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

/// One described config.
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) source: i8,
    pub(crate) kind: i8,
}

/// Effective topic configs for `overrides` over the broker's defaults.
pub(crate) fn topic_entries(
    state: &BrokerState,
    overrides: &BTreeMap<String, String>,
) -> Vec<Entry> {
    let config = state
        .topics
        .log_config(overrides)
        .unwrap_or_else(|_| state.topics.defaults().clone());
    crate::topic_config::describe(&config, overrides)
        .into_iter()
        .map(|e| {
            let source = if e.overridden {
                SOURCE_DYNAMIC_TOPIC
            } else if state.config.log_defaults.contains_key(&e.name) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            let kind = match e.name.as_str() {
                "cleanup.policy"
                | "leader.replication.throttled.replicas"
                | "follower.replication.throttled.replicas" => TYPE_LIST,
                "min.cleanable.dirty.ratio" => TYPE_DOUBLE,
                "compression.type" | "message.timestamp.type" => TYPE_STRING,
                "unclean.leader.election.enable"
                | "message.downconversion.enable"
                | "preallocate"
                | "remote.storage.enable" => TYPE_BOOLEAN,
                "segment.bytes"
                | "max.message.bytes"
                | "index.interval.bytes"
                | "min.insync.replicas"
                | "segment.index.bytes" => TYPE_INT,
                _ => TYPE_LONG,
            };
            Entry {
                name: e.name,
                value: e.value,
                source,
                kind,
            }
        })
        .collect()
}

fn broker_entries(state: &BrokerState) -> Vec<Entry> {
    let c = &state.config;
    let entry = |name: &str, value: String, kind: i8| Entry {
        name: name.to_owned(),
        value,
        source: SOURCE_STATIC_BROKER,
        kind,
    };
    let mut entries = vec![
        entry("node.id", c.node_id.to_string(), TYPE_INT),
        entry("broker.id", c.node_id.to_string(), TYPE_INT),
        entry("log.dirs", c.data_dir.display().to_string(), TYPE_STRING),
        entry(
            "listeners",
            c.listeners
                .iter()
                .map(|l| format!("{}://{}", l.name, l.address))
                .collect::<Vec<_>>()
                .join(","),
            TYPE_LIST,
        ),
        entry(
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
        ),
        entry("num.partitions", c.num_partitions.to_string(), TYPE_INT),
        entry(
            "message.max.bytes",
            c.message_max_bytes.to_string(),
            TYPE_INT,
        ),
        entry(
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            TYPE_INT,
        ),
        entry(
            "log.retention.check.interval.ms",
            c.retention_check_interval.as_millis().to_string(),
            TYPE_LONG,
        ),
    ];
    for (key, value) in &c.log_defaults {
        if let Some(broker_key) = crate::config::broker_key_for(key) {
            entries.push(entry(broker_key, value.clone(), TYPE_STRING));
        }
    }
    entries
}

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let denied = super::config_denied(
                state,
                client,
                resource.resource_type,
                &name,
                Operation::DescribeConfigs,
            );
            let entries = match resource.resource_type {
                _ if denied.is_some() => Err(denied.unwrap_or_default()),
                RESOURCE_TOPIC => match state.quorum.image().topic(&name) {
                    Some(topic) => Ok(topic_entries(state, &topic.configs)),
                    None => Err((
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("topic '{name}' does not exist"),
                    )),
                },
                RESOURCE_BROKER if name.is_empty() || name == state.config.node_id.to_string() => {
                    Ok(broker_entries(state))
                }
                RESOURCE_BROKER => Err((
                    ErrorCode::INVALID_REQUEST,
                    format!("this broker is {}, not {name}", state.config.node_id),
                )),
                other => Err((
                    ErrorCode::INVALID_REQUEST,
                    format!("resource type {other} is not supported"),
                )),
            };
            match entries {
                Ok(entries) => {
                    // Null (and, leniently, empty) asks for every config.
                    let wanted = resource
                        .configuration_keys
                        .as_ref()
                        .filter(|k| !k.is_empty());
                    let configs = entries
                        .into_iter()
                        .filter(|e| {
                            wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name))
                        })
                        .map(|e| {
                            let mut r = DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(e.name))
                                .with_value(Some(str_bytes(e.value)))
                                .with_read_only(resource.resource_type == RESOURCE_BROKER)
                                .with_config_source(e.source);
                            if version >= 3 {
                                r = r.with_config_type(e.kind);
                            }
                            r
                        })
                        .collect();
                    result.with_configs(configs)
                }
                Err((code, message)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
