//! ListOffsets (key 2): versions 1-9.
//!
//! Special timestamps: -2 earliest (log start offset), -1 latest (the high watermark, or
//! for `read_committed` (isolation level 1) the last stable offset), -3 the record with the largest
//! timestamp (v7+), -4 earliest local (v8+, the log start offset: all data is local).
//! Any other timestamp finds the first record whose timestamp is at or after it, or
//! offset -1 when there is none.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use strom_protocol::ErrorCode;

use crate::partition::Partition;
use crate::state::BrokerState;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_PENDING_UPLOAD: i64 = -5;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let committed = request.isolation_level == 1;
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let topic = state.topics.get(t.name.0.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let response =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let described = state.may_describe_topic(client, t.name.0.as_str());
            let found = match super::led_partition(
                state,
                t.name.0.as_str(),
                topic.as_ref(),
                p.partition_index,
            ) {
                _ if !described => Err(ErrorCode::TOPIC_AUTHORIZATION_FAILED),
                Err(code) => Err(code),
                Ok(partition) => lookup(&partition, p.timestamp, committed).await,
            };
            partitions.push(match found {
                Ok((offset, timestamp)) => {
                    let epoch = if version >= 4 { 0 } else { -1 };
                    response
                        .with_offset(offset)
                        .with_timestamp(timestamp)
                        .with_leader_epoch(epoch)
                }
                Err(code) => response.with_error_code(code.code()),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) for a ListOffsets timestamp query.
async fn lookup(
    partition: &Partition,
    timestamp: i64,
    committed: bool,
) -> Result<(i64, i64), ErrorCode> {
    match timestamp {
        LATEST if committed => Ok((partition.watermarks().await.last_stable_offset, -1)),
        LATEST => Ok((partition.watermarks().await.high_watermark, -1)),
        EARLIEST | EARLIEST_LOCAL | EARLIEST_PENDING_UPLOAD => {
            Ok((partition.watermarks().await.log_start_offset, -1))
        }
        MAX_TIMESTAMP => Ok(partition
            .max_timestamp()
            .await?
            .map_or((-1, -1), |(ts, offset)| (offset, ts))),
        t if t < 0 => Err(ErrorCode::INVALID_REQUEST),
        t => Ok(partition.offset_for_timestamp(t).await?.unwrap_or((-1, -1))),
    }
}
