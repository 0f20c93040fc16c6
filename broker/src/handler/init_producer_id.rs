//! InitProducerId (key 22): versions 0-5, for idempotent producers.
//!
//! Without a transactional id the broker hands out a fresh producer id at epoch 0, as Kafka
//! does, whatever id and epoch the client passes (KIP-360 clients pass their current ones
//! after a sequence error; a fresh id serves them as well, and no client can bump another's
//! epoch). Transactional ids are not served by this broker yet and get `INVALID_REQUEST`.

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
    match state.producer_ids.next().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(code) => {
            warn!(error = %code, "cannot allocate a producer id");
            error(code)
        }
    }
}
