//! FindCoordinator (key 10): versions 0-6.
//!
//! A group's coordinator is the leader of its `__consumer_offsets` partition (the topic is
//! created, through the controller, on the first ask); COORDINATOR_NOT_AVAILABLE while that
//! partition has no leader. A transactional id's is the leader of its `__transaction_state`
//! partition, created the same way. v4+ asks for
//! many keys at once. librdkafka also reads FindCoordinator's presence in ApiVersions as
//! the sign of a broker new enough for LZ4 compression.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::state::BrokerState;

/// Kafka's coordinator types.
const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let known_type = matches!(request.key_type, GROUP | TRANSACTION);
    if !known_type {
        let message = format!("unknown coordinator type {}", request.key_type);
        if version >= 4 {
            let coordinators = request
                .coordinator_keys
                .into_iter()
                .map(|key| {
                    Coordinator::default()
                        .with_key(key)
                        .with_node_id(BrokerId(-1))
                        .with_error_code(ErrorCode::INVALID_REQUEST.code())
                        .with_error_message(Some(str_bytes(message.clone())))
                })
                .collect();
            return FindCoordinatorResponse::default().with_coordinators(coordinators);
        }
        let r = FindCoordinatorResponse::default()
            .with_error_code(ErrorCode::INVALID_REQUEST.code())
            .with_node_id(BrokerId(-1));
        return if version >= 1 {
            r.with_error_message(Some(str_bytes(message)))
        } else {
            r
        };
    }
    if version >= 4 {
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in request.coordinator_keys {
            let found = locate(state, client, request.key_type, key.as_str()).await;
            let c = Coordinator::default().with_key(key);
            coordinators.push(match found {
                Ok((node, host, port)) => c
                    .with_node_id(BrokerId(node))
                    .with_host(host)
                    .with_port(port),
                Err(code) => c.with_node_id(BrokerId(-1)).with_error_code(code.code()),
            });
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match locate(state, client, request.key_type, request.key.as_str()).await {
        Ok((node, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(host)
            .with_port(port),
        Err(code) => FindCoordinatorResponse::default()
            .with_error_code(code.code())
            .with_node_id(BrokerId(-1)),
    }
}

/// Node id, host and port of the coordinator of `key`.
async fn locate(
    state: &BrokerState,
    client: &crate::handler::Client,
    key_type: i8,
    key: &str,
) -> Result<(i32, StrBytes, i32), ErrorCode> {
    // DESCRIBE on the group or transactional id, as Kafka asks.
    let (resource, denied) = if key_type == GROUP {
        (ResourceType::Group, ErrorCode::GROUP_AUTHORIZATION_FAILED)
    } else {
        (
            ResourceType::TransactionalId,
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        )
    };
    if !state.allowed(client, Operation::Describe, resource, key) {
        return Err(denied);
    }
    let node = if key_type == GROUP {
        state.groups.find(key).await?
    } else {
        state.transactions.find(key).await?
    };
    let image = state.quorum.image();
    let broker = image
        .brokers
        .get(&node)
        .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
    let (host, port) = broker.endpoint(&client.listener);
    Ok((node, str_bytes(host), port))
}
