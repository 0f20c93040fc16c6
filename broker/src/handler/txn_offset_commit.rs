//! TxnOffsetCommit (key 28): versions 0-4, sent by a transactional producer to a group's
//! coordinator (`send_offsets_to_transaction`).
//!
//! The offsets are written to `__consumer_offsets` in the producer's transaction and count
//! only once its commit marker reaches that partition (an abort drops them); until then an
//! OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for them. v3+ (KIP-447)
//! names the consumer's generation and member: a stale one is refused as a commit would be;
//! without them (generation -1) the producer is trusted.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::offset_commit::{requested_offsets, store};
use super::{by_topic, topic_name};
use crate::group::Member;
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;

use crate::state::{now_ms, BrokerState};

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let now = now_ms();
    let wanted = requested_offsets!(request.topics, now);
    let member = (version >= 3 && request.generation_id >= 0).then(|| Member {
        member_id: request.member_id.to_string(),
        generation_id: request.generation_id,
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
    });
    let producer = (request.producer_id.0, request.producer_epoch);
    let txn_id = request.transactional_id.0.as_str();
    let codes = if state.allowed(
        client,
        Operation::Write,
        ResourceType::TransactionalId,
        txn_id,
    ) {
        store((state, client), &group_id, &wanted, |known| {
            state.groups.txn_commit(&group_id, producer, member, known)
        })
        .await
    } else {
        vec![ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED; wanted.len()]
    };
    let partitions = wanted
        .iter()
        .zip(codes)
        .map(|(((topic, partition), _), code)| {
            let answer = TxnOffsetCommitResponsePartition::default()
                .with_partition_index(*partition)
                .with_error_code(code.code());
            (topic.clone(), answer)
        });
    let topics = by_topic(partitions, |name, partitions| {
        TxnOffsetCommitResponseTopic::default()
            .with_name(topic_name(name))
            .with_partitions(partitions)
    });
    TxnOffsetCommitResponse::default().with_topics(topics)
}
