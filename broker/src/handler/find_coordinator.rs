//! FindCoordinator (key 10): versions 0-6.
//!
//! With one broker, this broker coordinates every group and transactional id. v4+ asks for
//! many keys at once. librdkafka also reads FindCoordinator's presence in ApiVersions as
//! the sign of a broker new enough for LZ4 compression.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::state::BrokerState;

/// Kafka's coordinator types.
const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

pub(crate) async fn handle(
    state: &BrokerState,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let node = BrokerId(state.config.node_id);
    let host = str_bytes(state.advertised_host.clone());
    let port = state.advertised_port;
    let known_type = matches!(request.key_type, GROUP | TRANSACTION);
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key);
                if known_type {
                    c.with_node_id(node).with_host(host.clone()).with_port(port)
                } else {
                    c.with_node_id(BrokerId(-1))
                        .with_error_code(ErrorCode::INVALID_REQUEST.code())
                        .with_error_message(Some(str_bytes(format!(
                            "unknown coordinator type {}",
                            request.key_type
                        ))))
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    if !known_type {
        let r = FindCoordinatorResponse::default()
            .with_error_code(ErrorCode::INVALID_REQUEST.code())
            .with_node_id(BrokerId(-1));
        return if version >= 1 {
            r.with_error_message(Some(str_bytes("unknown coordinator type")))
        } else {
            r
        };
    }
    FindCoordinatorResponse::default()
        .with_node_id(node)
        .with_host(host)
        .with_port(port)
}
