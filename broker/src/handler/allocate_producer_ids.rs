//! AllocateProducerIds (key 67): version 0. A broker asks the active controller for a
//! block of producer ids; the block is committed to the metadata log before the answer.
//! Only registered brokers of the current incarnation are served.

use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, ProducerId,
};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: AllocateProducerIdsRequest,
    _version: i16,
) -> AllocateProducerIdsResponse {
    let error = |code: ErrorCode| {
        AllocateProducerIdsResponse::default()
            .with_error_code(code.code())
            .with_producer_id_start(ProducerId(-1))
    };
    if !state.allowed_on_cluster(client, Operation::ClusterAction) {
        return error(ErrorCode::CLUSTER_AUTHORIZATION_FAILED);
    }
    let image = state.quorum.image();
    match image.brokers.get(&request.broker_id.0) {
        None => return error(ErrorCode::BROKER_ID_NOT_REGISTERED),
        Some(b) if b.epoch != request.broker_epoch => return error(ErrorCode::STALE_BROKER_EPOCH),
        Some(_) => {}
    }
    match state.producer_ids.allocate().await {
        Ok((start, len)) => AllocateProducerIdsResponse::default()
            .with_producer_id_start(ProducerId(start))
            .with_producer_id_len(i32::try_from(len).unwrap_or(i32::MAX)),
        Err(code) => error(code),
    }
}
