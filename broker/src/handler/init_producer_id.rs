//! InitProducerId (key 22): versions 0-5, for idempotent producers.
//!
//! Without a transactional id the broker hands out a fresh producer id at epoch 0. A client
//! that passes its current id and epoch (KIP-360, after a sequence error) gets the same id
//! with the epoch bumped, or a new id once the epoch is exhausted. Transactional ids are not
//! served by this broker yet and get `INVALID_REQUEST`.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use strom_protocol::ErrorCode;
use tracing::warn;

use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    request: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    let error = |code: ErrorCode| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        return error(ErrorCode::INVALID_REQUEST);
    }
    let (id, epoch) = match (request.producer_id.0, request.producer_epoch) {
        (id, epoch) if id >= 0 && (0..i16::MAX - 1).contains(&epoch) => (id, epoch + 1),
        _ => match state.producer_ids.next() {
            Ok(id) => (id, 0),
            Err(e) => {
                warn!(error = %e, "cannot allocate a producer id");
                return error(ErrorCode::KAFKA_STORAGE_ERROR);
            }
        },
    };
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
}
