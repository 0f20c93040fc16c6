//! The transactional producer's requests to its transaction coordinator:
//! AddPartitionsToTxn (key 24, versions 0-3), AddOffsetsToTxn (key 25, versions 0-4) and
//! EndTxn (key 26, versions 0-4). Before KIP-588's versions (AddPartitionsToTxn and
//! EndTxn v2, AddOffsetsToTxn v2), `PRODUCER_FENCED` is answered as
//! `INVALID_PRODUCER_EPOCH`.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse,
};
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;

use crate::group::OFFSETS_TOPIC;
use crate::state::BrokerState;

/// The code a client of `version` understands: `PRODUCER_FENCED` came with version
/// `fenced_since`.
fn for_version(code: ErrorCode, version: i16, fenced_since: i16) -> ErrorCode {
    if code == ErrorCode::PRODUCER_FENCED && version < fenced_since {
        ErrorCode::INVALID_PRODUCER_EPOCH
    } else {
        code
    }
}

/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED unless the client may WRITE the transactional id.
fn txn_write(
    state: &BrokerState,
    client: &crate::handler::Client,
    id: &kafka_protocol::protocol::StrBytes,
) -> Result<(), ErrorCode> {
    if state.allowed(
        client,
        Operation::Write,
        ResourceType::TransactionalId,
        id.as_str(),
    ) {
        Ok(())
    } else {
        Err(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    }
}

pub(crate) async fn add_partitions(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let image = state.topics.image();
    let txn_allowed = txn_write(state, client, &request.v3_and_below_transactional_id.0);
    let writable =
        |topic: &str| state.allowed(client, Operation::Write, ResourceType::Topic, topic);
    let mut wanted = Vec::new();
    let mut unknown = false;
    for topic in &request.v3_and_below_topics {
        let count = image
            .topic(topic.name.0.as_str())
            .map_or(0, |t| t.partitions.len());
        for &p in &topic.partitions {
            unknown |= usize::try_from(p).map_or(true, |p| p >= count);
            unknown |= !writable(topic.name.0.as_str());
            wanted.push((topic.name.0.to_string(), p));
        }
    }
    let outcome = if let Err(code) = txn_allowed {
        Err(code)
    } else if unknown {
        Err(ErrorCode::OPERATION_NOT_ATTEMPTED)
    } else {
        state
            .transactions
            .add_partitions(
                request.v3_and_below_transactional_id.0.as_str(),
                request.v3_and_below_producer_id.0,
                request.v3_and_below_producer_epoch,
                &wanted,
            )
            .await
            .map_err(|code| for_version(code, version, 2))
    };
    let results = request
        .v3_and_below_topics
        .iter()
        .map(|topic| {
            let count = image
                .topic(topic.name.0.as_str())
                .map_or(0, |t| t.partitions.len());
            let partitions = topic
                .partitions
                .iter()
                .map(|&p| {
                    let code = match outcome {
                        Err(code) if txn_allowed.is_err() => code,
                        _ if !writable(topic.name.0.as_str()) => {
                            ErrorCode::TOPIC_AUTHORIZATION_FAILED
                        }
                        _ if usize::try_from(p).map_or(true, |p| p >= count) => {
                            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                        }
                        Ok(()) => ErrorCode::NONE,
                        Err(code) => code,
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code.code())
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

pub(crate) async fn add_offsets(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let group = request.group_id.0.as_str();
    let outcome = async {
        txn_write(state, client, &request.transactional_id.0)?;
        super::group_check(state, client, group, Operation::Read)?;
        // The group's offsets partition joins the transaction (the offsets topic created
        // first if this is the first group).
        state.groups.find(group).await?;
        let count = state
            .topics
            .image()
            .topic(OFFSETS_TOPIC)
            .map_or(0, |t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX));
        let partition = crate::internal_topic::partition_for(group, count);
        state
            .transactions
            .add_partitions(
                request.transactional_id.0.as_str(),
                request.producer_id.0,
                request.producer_epoch,
                &[(OFFSETS_TOPIC.to_owned(), partition)],
            )
            .await
    }
    .await;
    let code = outcome
        .err()
        .map_or(ErrorCode::NONE, |c| for_version(c, version, 2));
    AddOffsetsToTxnResponse::default().with_error_code(code.code())
}

pub(crate) async fn end(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    if let Err(code) = txn_write(state, client, &request.transactional_id.0) {
        return EndTxnResponse::default().with_error_code(code.code());
    }
    let outcome = state
        .transactions
        .end(
            request.transactional_id.0.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
        )
        .await;
    let code = outcome
        .err()
        .map_or(ErrorCode::NONE, |c| for_version(c, version, 2));
    EndTxnResponse::default().with_error_code(code.code())
}
