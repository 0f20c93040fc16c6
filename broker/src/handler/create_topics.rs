//! CreateTopics (key 19): versions 2-7.
//!
//! Partition count -1 means `num.partitions`, replication factor -1
//! `default.replication.factor` (at most the live brokers); explicit assignments name
//! distinct registered brokers per partition.
//! Only the active controller creates topics; other brokers answer NOT_CONTROLLER. Config overrides are checked with
//! the topic config parser, so a bad value is `INVALID_CONFIG` naming the key. v5+ answers
//! with the topic's effective configs; v7 with its id. `validate_only` checks without
//! creating.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;

use super::describe_configs::topic_entries;
use super::str_bytes;
use crate::state::BrokerState;
use crate::topics::Failure;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
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
        let may_create = state.allowed_on_cluster(client, Operation::Create)
            || state.allowed(client, Operation::Create, ResourceType::Topic, &name);
        let planned = if may_create {
            plan(state, topic, duplicated.contains(&name))
        } else {
            Err((ErrorCode::TOPIC_AUTHORIZATION_FAILED, String::new()))
        };
        let created = match planned {
            Ok(Plan {
                partitions,
                factor,
                overrides,
                assignments,
            }) => state
                .topics
                .create(
                    &name,
                    partitions,
                    overrides.clone(),
                    factor,
                    assignments,
                    request.validate_only,
                )
                .await
                .map(|created| {
                    let count = created.partition_count();
                    (created, count, overrides)
                }),
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
                    let factor = state
                        .quorum
                        .image()
                        .partition(created.id, 0)
                        .map_or(1, |p| p.replicas.len());
                    result = result
                        .with_num_partitions(partitions)
                        .with_replication_factor(i16::try_from(factor).unwrap_or(i16::MAX))
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

/// What a request entry asks for.
struct Plan {
    partitions: i32,
    /// Replicas per partition.
    factor: usize,
    overrides: BTreeMap<String, String>,
    /// Explicit replicas per partition.
    assignments: Option<Vec<Vec<i32>>>,
}

/// The partition count, config overrides and explicit replica assignments (if any) a
/// request entry asks for, or why it cannot be served.
fn plan(state: &BrokerState, topic: &CreatableTopic, duplicated: bool) -> Result<Plan, Failure> {
    let name = topic.name.0.as_str();
    if duplicated {
        return Err((
            ErrorCode::INVALID_REQUEST,
            format!("topic '{name}' appears more than once in the request"),
        ));
    }
    let assignments: Option<Vec<Vec<i32>>> = if topic.assignments.is_empty() {
        None
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ErrorCode::INVALID_REQUEST,
                "give either assignments or partitions and replication factor".into(),
            ));
        }
        let mut sorted: Vec<_> = topic.assignments.iter().collect();
        sorted.sort_by_key(|a| a.partition_index);
        if sorted
            .iter()
            .enumerate()
            .any(|(i, a)| usize::try_from(a.partition_index).ok() != Some(i))
        {
            return Err((
                ErrorCode::INVALID_REPLICA_ASSIGNMENT,
                "assignments must cover partitions 0..n once each".into(),
            ));
        }
        Some(
            sorted
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect(),
        )
    };
    let partitions = match &assignments {
        Some(a) => i32::try_from(a.len()).unwrap_or(i32::MAX),
        None if topic.num_partitions == -1 => state.config.num_partitions,
        None => topic.num_partitions,
    };
    let factor = match topic.replication_factor {
        -1 => state.config.default_replication_factor,
        f if f >= 1 => usize::try_from(f).unwrap_or(1),
        f => {
            return Err((
                ErrorCode::INVALID_REPLICATION_FACTOR,
                format!("replication factor {f} is not allowed"),
            ))
        }
    };
    let overrides = topic
        .configs
        .iter()
        .filter_map(|c| {
            c.value
                .as_ref()
                .map(|v| (c.name.to_string(), v.to_string()))
        })
        .collect();
    Ok(Plan {
        partitions,
        factor,
        overrides,
        assignments,
    })
}
