//! Metadata (key 3): versions 0-12.
//!
//! A null topic list (v1+) or an empty one (v0) asks for every topic. Unknown topics are
//! created when `auto.create.topics.enable` is on and the request allows it (v4+ says so
//! per request), with `num.partitions` partitions, by the active controller (another broker
//! asks the controller with CreateTopics and tells the client LEADER_NOT_AVAILABLE, so it
//! asks again). v10+ may name topics by id. Brokers,
//! leaders, replicas, ISRs and leader epochs come from the metadata image, so every broker
//! that has caught up answers the same. Topics the client may not DESCRIBE are left out
//! of "every topic" and TOPIC_AUTHORIZATION_FAILED when named; creating one needs CREATE on
//! the cluster or the topic.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use std::collections::BTreeMap;
use std::sync::Arc;
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::{str_bytes, topic_name};
use crate::controller::image::{MetadataImage, TopicImage};
use crate::group::OFFSETS_TOPIC;
use crate::state::BrokerState;
use crate::topics::validate_topic_name;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let status = state.quorum.status();
    let all = match &request.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let mut image = status.image.clone();
    let mut topics = if all {
        // Every topic the client may describe; the others it does not see.
        let mut topics: Vec<&TopicImage> = image
            .topics
            .values()
            .filter(|t| state.may_describe_topic(client, &t.name))
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
            .into_iter()
            .map(|t| describe(&image, t, version))
            .collect()
    } else {
        let allow_create =
            state.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
        let mut found = Vec::new();
        for t in request.topics.unwrap_or_default() {
            found.push(match t.name {
                Some(name) if !state.may_describe_topic(client, name.0.as_str()) => {
                    denied(name.0.as_str())
                }
                Some(name) => {
                    let name = name.0.as_str();
                    let creating = allow_create && image.topic(name).is_none();
                    if creating && !may_create(state, client, name) {
                        denied(name)
                    } else {
                        by_name(state, &mut image, name, allow_create, version).await
                    }
                }
                None => match by_id(&image, t.topic_id, version) {
                    found if found.error_code == 0 => {
                        let name = found.name.as_ref().map_or("", |n| n.0.as_str());
                        if state.may_describe_topic(client, name) {
                            found
                        } else {
                            MetadataResponseTopic::default()
                                .with_topic_id(t.topic_id)
                                .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.code())
                        }
                    }
                    missing => missing,
                },
            });
        }
        found
    };
    if version >= 8 && request.include_topic_authorized_operations {
        for topic in &mut topics {
            if let Some(name) = topic.name.as_ref().filter(|_| topic.error_code == 0) {
                topic.topic_authorized_operations = authorized(state, client, name.0.as_str());
            }
        }
    }
    let brokers = image
        .live_brokers()
        .map(|b| {
            let broker = MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(b.endpoint(&client.listener).0))
                .with_port(b.endpoint(&client.listener).1);
            if version >= 1 {
                broker.with_rack(b.rack.clone().map(str_bytes))
            } else {
                broker
            }
        })
        .collect();
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(topics);
    if version >= 1 {
        response = response.with_controller_id(BrokerId(status.leader.unwrap_or(-1)));
    }
    if version >= 2 {
        response = response.with_cluster_id(Some(str_bytes(state.cluster_id())));
    }
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = state.authorizer.authorized_operations(
            &state.quorum.image(),
            client,
            ResourceType::Cluster,
            strom_protocol::acl::CLUSTER_NAME,
        );
    }
    response
}

/// A topic the client may not describe.
fn denied(name: &str) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(name)))
        .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.code())
}

/// Whether the client may create topic `name` (CREATE on the cluster or on the topic).
fn may_create(state: &BrokerState, client: &crate::handler::Client, name: &str) -> bool {
    state.allowed_on_cluster(client, Operation::Create)
        || state.allowed(client, Operation::Create, ResourceType::Topic, name)
}

/// The topic operations the client may do, as Kafka's bit field.
fn authorized(state: &BrokerState, client: &crate::handler::Client, name: &str) -> i32 {
    state
        .authorizer
        .authorized_operations(&state.quorum.image(), client, ResourceType::Topic, name)
}

async fn by_name(
    state: &BrokerState,
    image: &mut Arc<MetadataImage>,
    name: &str,
    allow_create: bool,
    version: i16,
) -> MetadataResponseTopic {
    if let Some(topic) = image.topic(name) {
        return describe(image, topic, version);
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
        .create_anywhere(
            name,
            state.config.num_partitions,
            state.config.default_replication_factor,
            BTreeMap::new(),
        )
        .await;
    match created {
        // Created here or concurrently by another request: the image now has it.
        Ok(true) => {
            *image = state.quorum.image();
            match image.topic(name) {
                Some(topic) => describe(image, topic, version),
                None => failed(ErrorCode::LEADER_NOT_AVAILABLE),
            }
        }
        // The controller was asked: the client asks again.
        Ok(false) => failed(ErrorCode::LEADER_NOT_AVAILABLE),
        Err((code, _)) => failed(code),
    }
}

fn by_id(image: &MetadataImage, id: Uuid, version: i16) -> MetadataResponseTopic {
    match image.topics.get(&id) {
        Some(topic) => describe(image, topic, version),
        None => MetadataResponseTopic::default()
            .with_topic_id(if version >= 10 { id } else { Uuid::nil() })
            .with_error_code(ErrorCode::UNKNOWN_TOPIC_ID.code()),
    }
}

/// A topic's metadata, with only the fields `version` has. Replicas on fenced brokers are
/// offline; a partition with no leader is LEADER_NOT_AVAILABLE.
fn describe(image: &MetadataImage, topic: &TopicImage, version: i16) -> MetadataResponseTopic {
    let ids = |nodes: &[i32]| nodes.iter().map(|&n| BrokerId(n)).collect::<Vec<_>>();
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let offline: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|r| image.brokers.get(r).is_none_or(|b| b.fenced))
                .collect();
            let mut partition = MetadataResponsePartition::default()
                .with_partition_index(i32::try_from(index).unwrap_or(i32::MAX))
                .with_leader_id(BrokerId(p.leader))
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr));
            if p.leader < 0 {
                partition = partition.with_error_code(ErrorCode::LEADER_NOT_AVAILABLE.code());
            }
            if version >= 7 {
                partition = partition.with_leader_epoch(p.leader_epoch);
            }
            if version >= 5 {
                partition = partition.with_offline_replicas(ids(&offline));
            }
            partition
        })
        .collect();
    let mut response = MetadataResponseTopic::default()
        .with_name(Some(topic_name(topic.name.clone())))
        .with_partitions(partitions);
    if version >= 1 {
        response = response.with_is_internal(
            topic.name == OFFSETS_TOPIC || topic.name == crate::txn::TRANSACTION_TOPIC,
        );
    }
    if version >= 10 {
        response = response.with_topic_id(topic.id);
    }
    response
}
