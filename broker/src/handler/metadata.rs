//! Metadata (key 3): versions 0-12.
//!
//! A null topic list (v1+) or an empty one (v0) asks for every topic. Unknown topics are
//! created when `auto.create.topics.enable` is on and the request allows it (v4+ says so
//! per request), with `num.partitions` partitions. v10+ may name topics by id. This broker is
//! the leader of every partition, at leader epoch 0.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use std::collections::BTreeMap;
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::{str_bytes, topic_name};
use crate::group::OFFSETS_TOPIC;
use crate::state::{now_ms, BrokerState};
use crate::topics::{validate_topic_name, Topic};

pub(crate) async fn handle(
    state: &BrokerState,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let node = BrokerId(state.config.node_id);
    let broker = MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(str_bytes(state.advertised_host.clone()))
        .with_port(state.advertised_port);
    let all = match &request.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let topics = if all {
        state
            .topics
            .all()
            .iter()
            .map(|t| describe(t, node, version))
            .collect()
    } else {
        let allow_create =
            state.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
        let mut found = Vec::new();
        for t in request.topics.unwrap_or_default() {
            found.push(match t.name {
                Some(name) => by_name(state, name.0.as_str(), allow_create, node, version).await,
                None => by_id(state, t.topic_id, node, version),
            });
        }
        found
    };
    let mut response = MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_topics(topics);
    if version >= 1 {
        response = response.with_controller_id(node);
    }
    if version >= 2 {
        response = response.with_cluster_id(Some(str_bytes(state.cluster_id.clone())));
    }
    response
}

async fn by_name(
    state: &BrokerState,
    name: &str,
    allow_create: bool,
    node: BrokerId,
    version: i16,
) -> MetadataResponseTopic {
    if let Some(topic) = state.topics.get(name) {
        return describe(&topic, node, version);
    }
    let failed = |code: ErrorCode| {
        MetadataResponseTopic::default()
            .with_name(Some(topic_name(name)))
            .with_error_code(code.code())
    };
    if validate_topic_name(name).is_err() {
        return failed(ErrorCode::INVALID_TOPIC_EXCEPTION);
    }
    if !allow_create {
        return failed(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
    }
    let created = state
        .topics
        .create(
            name,
            state.config.num_partitions,
            BTreeMap::new(),
            false,
            now_ms(),
        )
        .await;
    match created {
        Ok(topic) => describe(&topic, node, version),
        // Created concurrently by another request.
        Err((ErrorCode::TOPIC_ALREADY_EXISTS, _)) => match state.topics.get(name) {
            Some(topic) => describe(&topic, node, version),
            None => failed(ErrorCode::LEADER_NOT_AVAILABLE),
        },
        Err((code, _)) => failed(code),
    }
}

fn by_id(state: &BrokerState, id: Uuid, node: BrokerId, version: i16) -> MetadataResponseTopic {
    match state.topics.get_by_id(id) {
        Some(topic) => describe(&topic, node, version),
        None => MetadataResponseTopic::default()
            .with_topic_id(if version >= 10 { id } else { Uuid::nil() })
            .with_error_code(ErrorCode::UNKNOWN_TOPIC_ID.code()),
    }
}

/// A topic's metadata, with only the fields `version` has.
fn describe(topic: &Topic, node: BrokerId, version: i16) -> MetadataResponseTopic {
    let partitions = (0..topic.partition_count())
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    let mut response = MetadataResponseTopic::default()
        .with_name(Some(topic_name(topic.name.clone())))
        .with_partitions(partitions);
    if version >= 1 {
        response = response
            .with_is_internal(topic.name == OFFSETS_TOPIC || topic.name == "__transaction_state");
    }
    if version >= 10 {
        response = response.with_topic_id(topic.id);
    }
    response
}
