//! OffsetFetch (key 9): versions 1-8.
//!
//! A group's committed offsets; a partition without one answers offset -1. v2+ may ask
//! for every partition the group has offsets for (null topics) and carries a top-level
//! error; v5 adds leader epochs; v7 `require_stable`: a partition whose offset waits for
//! a transaction to end (TxnOffsetCommit) answers UNSTABLE_OFFSET_COMMIT, which clients
//! retry; v8 asks for several groups at once.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use super::{by_topic, str_bytes, topic_name};
use crate::group::CommittedOffset;
use crate::state::BrokerState;

/// One partition's answer: its committed offset (if any), or an error.
type Answer = ((String, i32), Result<Option<CommittedOffset>, ErrorCode>);

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::new();
        for group in &request.groups {
            let wanted = group.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.to_string(), p)))
                    .collect::<Vec<_>>()
            });
            let answered =
                OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
            groups.push(
                match lookup(
                    (state, client),
                    &group.group_id.to_string(),
                    wanted,
                    request.require_stable,
                )
                .await
                {
                    Ok(answers) => answered.with_topics(topics_v8(answers)),
                    Err(code) => answered.with_error_code(code.code()),
                },
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.to_string(), p)))
            .collect::<Vec<_>>()
    });
    let stable = version >= 7 && request.require_stable;
    match lookup(
        (state, client),
        &request.group_id.to_string(),
        wanted.clone(),
        stable,
    )
    .await
    {
        Ok(answers) => {
            let response = OffsetFetchResponse::default().with_topics(topics_v1(answers, version));
            if version >= 2 {
                response.with_error_code(ErrorCode::NONE.code())
            } else {
                response
            }
        }
        // v2+ has a top-level error; v1 carries it on each partition asked for.
        Err(code) if version >= 2 => OffsetFetchResponse::default().with_error_code(code.code()),
        Err(code) => {
            let partitions = wanted.unwrap_or_default().into_iter().map(|(topic, p)| {
                let answer = OffsetFetchResponsePartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(-1)
                    .with_error_code(code.code());
                (topic, answer)
            });
            OffsetFetchResponse::default().with_topics(by_topic(partitions, |name, partitions| {
                OffsetFetchResponseTopic::default()
                    .with_name(topic_name(name))
                    .with_partitions(partitions)
            }))
        }
    }
}

/// The committed offsets of `wanted` (every stored one when `None`), in order.
async fn lookup(
    (state, client): (&BrokerState, &crate::handler::Client),
    group_id: &str,
    wanted: Option<Vec<(String, i32)>>,
    require_stable: bool,
) -> Result<Vec<Answer>, ErrorCode> {
    super::group_check(state, client, group_id, Operation::Describe)?;
    let found = state.groups.fetch(group_id, wanted.clone()).await?;
    let described = |topic: &str| state.may_describe_topic(client, topic);
    let answers: Vec<((String, i32), Option<CommittedOffset>)> = match wanted {
        // Every stored offset: those of topics the client may describe.
        None => found
            .into_iter()
            .filter(|((topic, _), _)| described(topic))
            .map(|(tp, c)| (tp, Some(c)))
            .collect(),
        Some(wanted) => wanted
            .into_iter()
            .map(|tp| {
                let committed = found.iter().find(|(f, _)| *f == tp).map(|(_, c)| c.clone());
                (tp, committed)
            })
            .collect(),
    };
    let unstable = if require_stable {
        let asked = answers.iter().map(|(tp, _)| tp.clone()).collect();
        state.groups.unstable(group_id, asked).await
    } else {
        Vec::new()
    };
    Ok(answers
        .into_iter()
        .map(|(tp, committed)| {
            if !described(&tp.0) {
                (tp, Err(ErrorCode::TOPIC_AUTHORIZATION_FAILED))
            } else if unstable.contains(&tp) {
                (tp, Err(ErrorCode::UNSTABLE_OFFSET_COMMIT))
            } else {
                (tp, Ok(committed))
            }
        })
        .collect())
}

/// Offset, leader epoch, metadata and error of one answer.
fn fields(answer: &Result<Option<CommittedOffset>, ErrorCode>) -> (i64, i32, String, ErrorCode) {
    match answer {
        Ok(Some(c)) => (
            c.offset,
            c.leader_epoch,
            c.metadata.clone(),
            ErrorCode::NONE,
        ),
        Ok(None) => (-1, -1, String::new(), ErrorCode::NONE),
        Err(code) => (-1, -1, String::new(), *code),
    }
}

fn topics_v1(answers: Vec<Answer>, version: i16) -> Vec<OffsetFetchResponseTopic> {
    let partitions = answers.into_iter().map(|((topic, partition), committed)| {
        let (offset, epoch, metadata, code) = fields(&committed);
        let answer = OffsetFetchResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(code.code())
            .with_committed_offset(offset)
            .with_metadata(Some(str_bytes(metadata)));
        let answer = if version >= 5 {
            answer.with_committed_leader_epoch(epoch)
        } else {
            answer
        };
        (topic, answer)
    });
    by_topic(partitions, |name, partitions| {
        OffsetFetchResponseTopic::default()
            .with_name(topic_name(name))
            .with_partitions(partitions)
    })
}

fn topics_v8(answers: Vec<Answer>) -> Vec<OffsetFetchResponseTopics> {
    let partitions = answers.into_iter().map(|((topic, partition), committed)| {
        let (offset, epoch, metadata, code) = fields(&committed);
        let answer = OffsetFetchResponsePartitions::default()
            .with_partition_index(partition)
            .with_error_code(code.code())
            .with_committed_offset(offset)
            .with_committed_leader_epoch(epoch)
            .with_metadata(Some(str_bytes(metadata)));
        (topic, answer)
    });
    by_topic(partitions, |name, partitions| {
        OffsetFetchResponseTopics::default()
            .with_name(topic_name(name))
            .with_partitions(partitions)
    })
}
