//! DescribeTransactions (key 65, version 0) and ListTransactions (key 66, versions 0-1):
//! what the transaction coordinator knows of the transactional ids it coordinates.
//!
//! DescribeTransactions answers each id from its coordinator (NOT_COORDINATOR from any
//! other broker, TRANSACTIONAL_ID_NOT_FOUND for an id it has no state for);
//! ListTransactions lists the ids of the partitions this broker coordinates, filtered by
//! state, producer id and (v1) how long the transaction has been running.

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;

use crate::state::{now_ms, BrokerState};
use crate::txn::state::TxnState;

/// Kafka's state names, which ListTransactions filters by.
const STATES: [&str; 6] = [
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
];

pub(crate) async fn describe(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let answer = TransactionState::default().with_transactional_id(id.clone());
        let id_str = id.0.as_str();
        if !state.allowed(
            client,
            Operation::Describe,
            ResourceType::TransactionalId,
            id_str,
        ) {
            let code = ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code();
            states.push(answer.with_error_code(code));
            continue;
        }
        let found = state.transactions.describe(id_str).await;
        states.push(match found {
            Err(code) => answer.with_error_code(code.code()),
            Ok(None) => answer.with_error_code(ErrorCode::TRANSACTIONAL_ID_NOT_FOUND.code()),
            Ok(Some(meta)) => {
                let mut topics: Vec<TopicData> = Vec::new();
                for (topic, partition) in &meta.partitions {
                    match topics.last_mut() {
                        Some(t) if t.topic.0.as_str() == topic => t.partitions.push(*partition),
                        _ => topics.push(
                            TopicData::default()
                                .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                                .with_partitions(vec![*partition]),
                        ),
                    }
                }
                answer
                    .with_transaction_state(StrBytes::from_static_str(meta.state.name()))
                    .with_transaction_timeout_ms(meta.timeout_ms)
                    .with_transaction_start_time_ms(meta.start_ms)
                    .with_producer_id(ProducerId(meta.producer_id))
                    .with_producer_epoch(meta.producer_epoch)
                    .with_topics(topics)
            }
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub(crate) async fn list(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    let unknown: Vec<StrBytes> = request
        .state_filters
        .iter()
        .filter(|s| !STATES.contains(&s.as_str()))
        .cloned()
        .collect();
    state.transactions.load_led().await;
    let now = now_ms();
    let min_duration = if version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    let listed = state
        .transactions
        .snapshot()
        .await
        .into_iter()
        .filter(|(id, _)| {
            state.allowed(
                client,
                Operation::Describe,
                ResourceType::TransactionalId,
                id,
            )
        })
        .filter(|(_, meta)| {
            request.state_filters.is_empty()
                || request
                    .state_filters
                    .iter()
                    .any(|s| s.as_str() == meta.state.name())
        })
        .filter(|(_, meta)| {
            request.producer_id_filters.is_empty()
                || request
                    .producer_id_filters
                    .contains(&ProducerId(meta.producer_id))
        })
        .filter(|(_, meta)| {
            min_duration < 0
                || (meta.state == TxnState::Ongoing && now - meta.start_ms >= min_duration)
        })
        .map(|(id, meta)| {
            Listed::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                .with_producer_id(ProducerId(meta.producer_id))
                .with_transaction_state(StrBytes::from_static_str(meta.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}
