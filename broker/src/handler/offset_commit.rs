//! OffsetCommit (key 8): versions 2-8.
//!
//! Commits from a group member are checked against its generation (ILLEGAL_GENERATION,
//! UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS); a commit with generation -1 and no member id
//! is a standalone consumer's, accepted while the group has no members. v2-4 carry a
//! retention time (ignored, as Kafka 2.1+ does), v6 the leader epoch, v7 static
//! membership. The answer comes once the offsets are in `__consumer_offsets`.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;

use super::{by_topic, topic_name};
use crate::group::{CommittedOffset, Member};
use crate::state::{now_ms, BrokerState};

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: OffsetCommitRequest,
    _version: i16,
) -> OffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let now = now_ms();
    let wanted = requested_offsets!(request.topics, now);
    let member = Member {
        member_id: request.member_id.to_string(),
        generation_id: request.generation_id_or_member_epoch,
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
    };
    let codes = store((state, client), &group_id, &wanted, |known| {
        state.groups.commit(&group_id, member, known)
    })
    .await;
    respond(&wanted, codes)
}

/// The offsets a commit request (OffsetCommit or TxnOffsetCommit, whose topic types
/// differ but share their fields) asks for, each stamped `now`.
macro_rules! requested_offsets {
    ($topics:expr, $now:expr) => {
        $topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    let committed = $crate::handler::offset_commit::offset(
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.committed_metadata.as_ref(),
                        $now,
                    );
                    ((t.name.to_string(), p.partition_index), committed)
                })
            })
            .collect::<Vec<_>>()
    };
}
pub(crate) use requested_offsets;

/// A committed offset as a commit request gives it, stamped `now`.
pub(crate) fn offset(
    offset: i64,
    leader_epoch: i32,
    metadata: Option<&StrBytes>,
    now: i64,
) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch,
        metadata: metadata.map_or_else(String::new, |m| m.to_string()),
        commit_timestamp_ms: now,
        expire_timestamp_ms: -1,
    }
}

/// One code per wanted offset: INVALID_GROUP_ID for an empty group id,
/// GROUP_AUTHORIZATION_FAILED without READ on the group, TOPIC_AUTHORIZATION_FAILED without
/// READ on the topic,
/// UNKNOWN_TOPIC_OR_PARTITION for partitions that do not exist, and for the others what
/// `commit` (given them) answers.
pub(crate) async fn store<F: std::future::Future<Output = Vec<ErrorCode>>>(
    (state, client): (&BrokerState, &crate::handler::Client),
    group_id: &str,
    wanted: &[((String, i32), CommittedOffset)],
    commit: impl FnOnce(Vec<((String, i32), CommittedOffset)>) -> F,
) -> Vec<ErrorCode> {
    if group_id.is_empty() {
        return vec![ErrorCode::INVALID_GROUP_ID; wanted.len()];
    }
    if let Err(code) = super::group_check(state, client, group_id, Operation::Read) {
        return vec![code; wanted.len()];
    }
    let codes: Vec<ErrorCode> = unknown_topics(state, wanted)
        .into_iter()
        .zip(wanted)
        .map(|(code, ((topic, _), _))| {
            if state.allowed(client, Operation::Read, ResourceType::Topic, topic) {
                code
            } else {
                ErrorCode::TOPIC_AUTHORIZATION_FAILED
            }
        })
        .collect();
    let known: Vec<_> = wanted
        .iter()
        .zip(&codes)
        .filter(|(_, c)| c.is_ok())
        .map(|(w, _)| w.clone())
        .collect();
    let mut answers = commit(known).await.into_iter();
    codes
        .into_iter()
        .map(|c| {
            if c.is_ok() {
                answers.next().unwrap_or(ErrorCode::UNKNOWN_SERVER_ERROR)
            } else {
                c
            }
        })
        .collect()
}

/// UNKNOWN_TOPIC_OR_PARTITION for partitions that do not exist, NONE for the others.
fn unknown_topics(
    state: &BrokerState,
    wanted: &[((String, i32), CommittedOffset)],
) -> Vec<ErrorCode> {
    let image = state.quorum.image();
    wanted
        .iter()
        .map(|((topic, partition), _)| {
            let exists = image
                .topic(topic)
                .is_some_and(|t| usize::try_from(*partition).is_ok_and(|p| p < t.partitions.len()));
            if exists {
                ErrorCode::NONE
            } else {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            }
        })
        .collect()
}

fn respond(
    wanted: &[((String, i32), CommittedOffset)],
    codes: Vec<ErrorCode>,
) -> OffsetCommitResponse {
    let partitions = wanted
        .iter()
        .zip(codes)
        .map(|(((topic, partition), _), code)| {
            let answer = OffsetCommitResponsePartition::default()
                .with_partition_index(*partition)
                .with_error_code(code.code());
            (topic.clone(), answer)
        });
    let topics = by_topic(partitions, |name, partitions| {
        OffsetCommitResponseTopic::default()
            .with_name(topic_name(name))
            .with_partitions(partitions)
    });
    OffsetCommitResponse::default().with_topics(topics)
}
