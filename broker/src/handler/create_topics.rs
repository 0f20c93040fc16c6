//! CreateTopics (key 19): versions 2-7.
//!
//! Partition count -1 means `num.partitions`; replication factor must be -1 or 1 on a single
//! broker; explicit assignments must name this broker. Config overrides are checked with
//! the topic config parser, so a bad value is `INVALID_CONFIG` naming the key. v5+ answers
//! with the topic's effective configs; v7 with its id. `validate_only` checks without
//! creating.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use strom_protocol::ErrorCode;

use super::describe_configs::topic_entries;
use super::str_bytes;
use crate::state::{now_ms, BrokerState};
use crate::topics::Failure;

pub(crate) async fn handle(
    state: &BrokerState,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicated: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        let created = match plan(state, topic, duplicated.contains(&name)) {
            Ok((partitions, overrides)) => state
                .topics
                .create(
                    &name,
                    partitions,
                    overrides.clone(),
                    request.validate_only,
                    now_ms(),
                )
                .await
                .map(|created| (created, partitions, overrides)),
            Err(failure) => Err(failure),
        };
        results.push(match created {
            Ok((created, partitions, overrides)) => {
                let mut result = result;
                if version >= 7 {
                    result = result.with_topic_id(created.id);
                }
                if version >= 5 {
                    let configs = topic_entries(state, &overrides)
                        .into_iter()
                        .map(|e| {
                            CreatableTopicConfigs::default()
                                .with_name(str_bytes(e.name))
                                .with_value(Some(str_bytes(e.value)))
                                .with_config_source(e.source)
                        })
                        .collect();
                    result = result
                        .with_num_partitions(partitions)
                        .with_replication_factor(1)
                        .with_configs(Some(configs));
                }
                result
            }
            Err((code, message)) => result
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// The partition count and config overrides a request entry asks for, or why it cannot be
/// served.
fn plan(
    state: &BrokerState,
    topic: &CreatableTopic,
    duplicated: bool,
) -> Result<(i32, BTreeMap<String, String>), Failure> {
    let name = topic.name.0.as_str();
    if duplicated {
        return Err((
            ErrorCode::INVALID_REQUEST,
            format!("topic '{name}' appears more than once in the request"),
        ));
    }
    let node = state.config.node_id;
    let partitions = if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ErrorCode::INVALID_REQUEST,
                "give either assignments or partitions and replication factor".into(),
            ));
        }
        if topic
            .assignments
            .iter()
            .any(|a| a.broker_ids.len() != 1 || a.broker_ids.iter().any(|b| b.0 != node))
        {
            return Err((
                ErrorCode::INVALID_REPLICA_ASSIGNMENT,
                format!("this cluster has one broker, {node}"),
            ));
        }
        topic.assignments.len() as i32
    } else if topic.num_partitions == -1 {
        state.config.num_partitions
    } else {
        topic.num_partitions
    };
    if !matches!(topic.replication_factor, -1 | 1) {
        let message = format!(
            "replication factor {} is larger than the 1 available broker",
            topic.replication_factor
        );
        return Err((ErrorCode::INVALID_REPLICATION_FACTOR, message));
    }
    let overrides = topic
        .configs
        .iter()
        .filter_map(|c| {
            c.value
                .as_ref()
                .map(|v| (c.name.to_string(), v.to_string()))
        })
        .collect();
    Ok((partitions, overrides))
}
