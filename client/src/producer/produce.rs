//! Produce (key 0) as the producer speaks it: one request per leader, one batch per
//! partition, and what each partition's answer means for its batch.
//!
//! Versions 3-12 are used (topics by name); v13 names topics by id and is not sent. No
//! transactional id is set: this producer is not transactional.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use crate::error::ClientError;

/// Highest Produce version sent: v13 replaces topic names with topic ids.
pub(super) const MAX_VERSION: i16 = 12;

/// What a partition's answer means for its batch.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Written (or already written: a duplicate sequence) at `base_offset`.
    Done {
        base_offset: i64,
        /// The broker's append time, -1 when the topic keeps producer timestamps.
        log_append_time: i64,
    },
    /// A retriable error: refresh metadata, back off, resend.
    Retry(ClientError),
    /// The broker refused the batch for good.
    Fail(ClientError),
}

/// A ProduceRequest carrying one encoded batch for each `(topic, partition, batch)`.
pub(super) fn request<'a>(
    batches: impl IntoIterator<Item = (&'a str, i32, Bytes)>,
    acks: i16,
    timeout_ms: i32,
    transactional_id: Option<&str>,
) -> ProduceRequest {
    let mut by_topic: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
    for (topic, partition, records) in batches {
        let data = PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(records));
        by_topic.entry(topic).or_default().push(data);
    }
    let topic_data = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_data(partitions)
        })
        .collect();
    ProduceRequest::default()
        .with_transactional_id(
            transactional_id.map(|id| TransactionalId(StrBytes::from_string(id.to_owned()))),
        )
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(topic_data)
}

/// The response's partitions by `(topic, partition)`.
pub(super) fn index(response: &ProduceResponse) -> HashMap<(&str, i32), &PartitionProduceResponse> {
    response
        .responses
        .iter()
        .flat_map(|t| {
            let topic = t.name.0.as_str();
            t.partition_responses
                .iter()
                .map(move |p| ((topic, p.index), p))
        })
        .collect()
}

/// What `answer` (the broker's answer for `topic`-`partition`, if it gave one) means.
pub(super) fn outcome(
    answer: Option<&PartitionProduceResponse>,
    topic: &str,
    partition: i32,
) -> Outcome {
    let Some(answer) = answer else {
        return Outcome::Fail(ClientError::Broker {
            code: ErrorCode::UNKNOWN_SERVER_ERROR,
            context: format!("produce to {topic}-{partition}: no answer for the partition"),
        });
    };
    let code = ErrorCode(answer.error_code);
    if code.is_ok() || code == ErrorCode::DUPLICATE_SEQUENCE_NUMBER {
        return Outcome::Done {
            base_offset: answer.base_offset,
            log_append_time: answer.log_append_time_ms,
        };
    }
    let context = match &answer.error_message {
        Some(message) => format!("produce to {topic}-{partition}: {message}"),
        None => format!("produce to {topic}-{partition}"),
    };
    let error = ClientError::Broker { code, context };
    if code.is_retriable() {
        Outcome::Retry(error)
    } else {
        Outcome::Fail(error)
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::produce_response::TopicProduceResponse;

    use super::*;

    fn response(code: ErrorCode, message: Option<&str>) -> ProduceResponse {
        let partition = PartitionProduceResponse::default()
            .with_index(3)
            .with_error_code(code.code())
            .with_base_offset(40)
            .with_error_message(message.map(|m| StrBytes::from_string(m.to_owned())));
        ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_responses(vec![partition])])
    }

    fn classify(code: ErrorCode, message: Option<&str>) -> Outcome {
        let response = response(code, message);
        let index = index(&response);
        outcome(index.get(&("t", 3)).copied(), "t", 3)
    }

    #[test]
    fn classifies_answers() {
        assert!(matches!(
            classify(ErrorCode::NONE, None),
            Outcome::Done {
                base_offset: 40,
                log_append_time: -1
            }
        ));
        assert!(matches!(
            classify(ErrorCode::DUPLICATE_SEQUENCE_NUMBER, None),
            Outcome::Done { .. }
        ));
        assert!(matches!(
            classify(ErrorCode::NOT_LEADER_OR_FOLLOWER, None),
            Outcome::Retry(_)
        ));
        let Outcome::Fail(e) = classify(ErrorCode::MESSAGE_TOO_LARGE, Some("too big")) else {
            panic!("expected a failure");
        };
        assert_eq!(e.code(), Some(ErrorCode::MESSAGE_TOO_LARGE));
        assert!(e.to_string().starts_with("produce to t-3: too big"), "{e}");
        assert!(matches!(outcome(None, "t", 1), Outcome::Fail(_)));
    }

    #[test]
    fn request_groups_by_topic() {
        let batches = [
            ("a", 0, Bytes::from_static(b"x")),
            ("b", 1, Bytes::from_static(b"y")),
            ("a", 2, Bytes::from_static(b"z")),
        ];
        let request = request(batches, -1, 1000, None);
        assert_eq!((request.acks, request.timeout_ms), (-1, 1000));
        let shape: Vec<(&str, Vec<i32>)> = request
            .topic_data
            .iter()
            .map(|t| {
                (
                    t.name.0.as_str(),
                    t.partition_data.iter().map(|p| p.index).collect(),
                )
            })
            .collect();
        assert_eq!(shape, [("a", vec![0, 2]), ("b", vec![1])]);
    }
}
