//! InitProducerId (key 22): versions 0-5, for idempotent and transactional producers.
//!
//! Without a transactional id the broker hands out a fresh producer id at epoch 0, as Kafka
//! does, whatever id and epoch the client passes (KIP-360 clients pass their current ones
//! after a sequence error; a fresh id serves them as well, and no client can bump another's
//! epoch). With one, the transaction coordinator answers (it must lead the id's
//! `__transaction_state` partition): the id's producer id with its epoch moved on, fencing
//! earlier producers. Before v4, `PRODUCER_FENCED` is answered as `INVALID_PRODUCER_EPOCH`.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;
use tracing::warn;

use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let error = |code: ErrorCode| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    // A transactional id needs WRITE on it; an idempotent producer IDEMPOTENT_WRITE on the
    // cluster or WRITE on some topic (KIP-679).
    let image = state.quorum.image();
    let allowed = match &request.transactional_id {
        Some(id) => state
            .allowed(
                client,
                Operation::Write,
                ResourceType::TransactionalId,
                id.0.as_str(),
            )
            .then_some(())
            .ok_or(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        None => (state.allowed_on_cluster(client, Operation::IdempotentWrite)
            || state.authorizer.allowed_on_any(
                &image,
                client,
                Operation::Write,
                ResourceType::Topic,
            ))
        .then_some(())
        .ok_or(ErrorCode::CLUSTER_AUTHORIZATION_FAILED),
    };
    if let Err(code) = allowed {
        return error(code);
    }
    if let Some(id) = &request.transactional_id {
        let expected =
            (request.producer_id.0 >= 0).then_some((request.producer_id.0, request.producer_epoch));
        let answer = state
            .transactions
            .init_producer(
                id.0.as_str(),
                request.transaction_timeout_ms,
                expected,
                &state.producer_ids,
            )
            .await;
        return match answer {
            Ok((id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(ErrorCode::PRODUCER_FENCED) if version < 4 => {
                error(ErrorCode::INVALID_PRODUCER_EPOCH)
            }
            Err(code) => error(code),
        };
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
