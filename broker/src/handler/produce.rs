//! Produce (key 0): versions 3-11 served; 0-2 advertised but refused (see `net::dispatch`).
//!
//! Each partition's payload is validated (one magic-2 batch, lengths, CRC,
//! `max.message.bytes`, keys on compacted topics), checked against the idempotent-producer
//! state, and appended with offsets assigned here. With one broker the in-sync replicas
//! are this broker alone, so `acks=all` and `acks=1` answer once the records are in the log
//! (written to the OS; see the log's flush policy). `acks=0` gets no response; as in Kafka,
//! a failure then closes the connection, the only way left to tell the client.
//! Writing needs WRITE on the topic (TOPIC_AUTHORIZATION_FAILED) and, in a transaction,
//! on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition).

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::group::OFFSETS_TOPIC;
use crate::partition::Refusal;
use crate::state::{now_ms, BrokerState};

/// What a Produce request comes to.
pub(crate) enum Produced {
    /// Send this response.
    Respond(ProduceResponse),
    /// `acks=0`, everything stored: no response.
    Silent,
    /// `acks=0` and something failed: close the connection.
    Failed(ErrorCode),
}

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: ProduceRequest,
    version: i16,
) -> Produced {
    let acks = request.acks;
    let txn_denied = request.transactional_id.as_ref().is_some_and(|id| {
        !state.allowed(
            client,
            Operation::Write,
            ResourceType::TransactionalId,
            id.as_str(),
        )
    });
    let refuse_all: Option<Refusal> = if !matches!(acks, -1..=1) {
        Some((
            ErrorCode::INVALID_REQUIRED_ACKS,
            Some("acks must be -1 (all), 0 or 1".into()),
        ))
    } else if txn_denied {
        Some((ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None))
    } else {
        None
    };
    let now = now_ms();
    let mut first_error = None;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        let name = topic_data.name.0.as_str();
        let denied = !state.allowed(client, Operation::Write, ResourceType::Topic, name);
        let topic = state.topics.get(name);
        let mut partition_responses = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let response = PartitionProduceResponse::default().with_index(data.index);
            let result = match (&refuse_all, &topic, data.records) {
                (Some(refusal), _, _) => Err(refusal.clone()),
                (None, _, _) if denied => Err((ErrorCode::TOPIC_AUTHORIZATION_FAILED, None)),
                // Not hosted here: led elsewhere, or unknown.
                (None, None, _) => Err((
                    super::led_partition(state, topic_data.name.0.as_str(), None, data.index)
                        .err()
                        .unwrap_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                    None,
                )),
                // As Kafka: the coordinator alone writes its internal topic.
                (None, Some(topic), _) if topic.name == OFFSETS_TOPIC => Err((
                    ErrorCode::INVALID_TOPIC_EXCEPTION,
                    Some(format!(
                        "clients may not write to the internal topic {OFFSETS_TOPIC}"
                    )),
                )),
                (None, Some(_), None) => {
                    Err((ErrorCode::INVALID_RECORD, Some("no records".into())))
                }
                (None, Some(topic), Some(records)) => {
                    match super::led_partition(state, &topic.name, Some(topic), data.index) {
                        Err(code) => Err((code, None)),
                        Ok(partition) if acks == -1 => {
                            replicated_append(topic, &partition, records, now, request.timeout_ms)
                                .await
                        }
                        Ok(partition) => partition.append(records, now).await,
                    }
                }
            };
            partition_responses.push(match result {
                Ok(appended) => {
                    let response = response.with_base_offset(appended.base_offset);
                    if version >= 5 {
                        response.with_log_start_offset(appended.log_start_offset)
                    } else {
                        response
                    }
                }
                Err((code, message)) => {
                    first_error.get_or_insert(code);
                    let response = response.with_error_code(code.code()).with_base_offset(-1);
                    if version >= 8 {
                        response.with_error_message(message.map(str_bytes))
                    } else {
                        response
                    }
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partition_responses),
        );
    }
    match (acks, first_error) {
        (0, None) => Produced::Silent,
        (0, Some(code)) => Produced::Failed(code),
        _ => Produced::Respond(ProduceResponse::default().with_responses(responses)),
    }
}

/// acks=all: refused with NOT_ENOUGH_REPLICAS while the ISR is smaller than the topic's
/// `min.insync.replicas`; answered once the high watermark passes the records (every ISR
/// member has them), or REQUEST_TIMED_OUT after `timeout_ms` (the records may still be
/// replicated later, as in Kafka).
async fn replicated_append(
    topic: &crate::topics::Topic,
    partition: &crate::partition::Partition,
    records: bytes::Bytes,
    now: i64,
    timeout_ms: i32,
) -> Result<crate::partition::Appended, crate::partition::Refusal> {
    let min_insync = topic.min_insync_replicas();
    let isr = partition.isr_len();
    if isr < min_insync {
        return Err((
            ErrorCode::NOT_ENOUGH_REPLICAS,
            Some(format!(
                "{isr} in-sync replicas; min.insync.replicas is {min_insync}"
            )),
        ));
    }
    // The epoch the records are appended in: the acknowledgement is for them only while
    // this broker still leads in it.
    let epoch = partition.leader_epoch();
    let appended = partition.append(records, now).await?;
    let wait = std::time::Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + wait;
    match partition
        .wait_for_high_watermark(appended.next_offset, epoch, deadline)
        .await
    {
        Ok(()) => Ok(appended),
        Err(ErrorCode::REQUEST_TIMED_OUT) => Err((
            ErrorCode::REQUEST_TIMED_OUT,
            Some("the in-sync replicas did not all acknowledge in time".into()),
        )),
        Err(code) => Err((
            code,
            Some("leadership moved before the in-sync replicas acknowledged".into()),
        )),
    }
}
