//! Offsets: ListOffsets (key 2) and DeleteRecords (key 21), each sent to the partition's
//! leader.
//!
//! [`Admin::list_offsets`] asks every partition of a topic: partitions are grouped by
//! leader, one request per leader. Partitions whose leader moved (`NOT_LEADER_OR_FOLLOWER`,
//! `LEADER_NOT_AVAILABLE`) are asked again after a metadata refresh; the others keep their
//! answers.

use std::collections::BTreeMap;

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, DeleteRecordsRequest, ListOffsetsRequest};
use strom_protocol::ErrorCode;

use super::retry::Retry;
use super::topics::topic_name;
use super::{check, Admin};
use crate::error::ClientError;

/// Which offset [`Admin::list_offsets`] looks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset: the first offset still in the log.
    Earliest,
    /// The high watermark: the offset the next record will get.
    Latest,
    /// The record with the largest timestamp (ListOffsets v7+, Kafka 3.0+).
    MaxTimestamp,
    /// The first record whose timestamp is at or after this one (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    /// The wire timestamp: Kafka's special values for the named specs.
    fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// An offset found by [`Admin::list_offsets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset; -1 when no record matches a timestamp (all are older).
    pub offset: i64,
    /// The timestamp of the record at `offset` for timestamp lookups; -1 for
    /// [`OffsetSpec::Earliest`] and [`OffsetSpec::Latest`].
    pub timestamp: i64,
}

/// ListOffsets version that knows `MaxTimestamp` (-3).
const MAX_TIMESTAMP_VERSION: i16 = 7;

impl Admin {
    /// Looks up `spec` in every partition of `topic`, asking each partition's leader.
    ///
    /// # Errors
    /// `UNKNOWN_TOPIC_OR_PARTITION` as [`ClientError::Broker`] when the topic does not
    /// exist; a partition's error; `UNSUPPORTED_VERSION` for
    /// [`OffsetSpec::MaxTimestamp`] on brokers before ListOffsets v7; or a timeout while
    /// leaders keep moving.
    pub async fn list_offsets(
        &self,
        topic: &str,
        spec: OffsetSpec,
    ) -> Result<BTreeMap<i32, ListedOffset>, ClientError> {
        let topics = [topic.to_owned()];
        let mut retry = self.retry(format!("list offsets of {topic}"));
        let partitions = loop {
            match self.topic_partitions(topic).await {
                Ok(partitions) => break partitions,
                Err(e) => self.backoff(&mut retry, e, &topics).await?,
            }
        };
        let mut found = BTreeMap::new();
        loop {
            let pending: Vec<i32> = partitions
                .iter()
                .copied()
                .filter(|p| !found.contains_key(p))
                .collect();
            let Some(&first) = pending.first() else {
                return Ok(found);
            };
            match self
                .list_offsets_once(topic, &pending, spec, &mut found)
                .await
            {
                Err(e) => self.backoff(&mut retry, e, &topics).await?,
                Ok(()) if !found.contains_key(&first) => {
                    return Err(ClientError::Broker {
                        code: ErrorCode::UNKNOWN_SERVER_ERROR,
                        context: format!(
                            "list offsets of {topic}-{first}: the leader did not answer for it"
                        ),
                    })
                }
                Ok(()) => {}
            }
        }
    }

    /// The partition indexes of `topic`, from fresh metadata.
    async fn topic_partitions(&self, topic: &str) -> Result<Vec<i32>, ClientError> {
        let metadata = self
            .cluster
            .refresh_metadata(Some(&[topic.to_owned()]))
            .await?;
        let Some(t) = metadata.topics.get(topic) else {
            return Err(ClientError::Broker {
                code: ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                context: format!("list offsets of {topic}: no such topic"),
            });
        };
        check(t.error.code(), None, || format!("list offsets of {topic}"))?;
        Ok(t.partitions.iter().map(|p| p.partition).collect())
    }

    /// Asks the leaders of `partitions` (skipping those already in `found`) and records
    /// their answers in `found`; the first retriable error is returned after all leaders
    /// were asked, a lasting one at once.
    async fn list_offsets_once(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
        found: &mut BTreeMap<i32, ListedOffset>,
    ) -> Result<(), ClientError> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        let mut retriable = None;
        for &partition in partitions.iter().filter(|p| !found.contains_key(p)) {
            match self.cluster.leader(topic, partition).await {
                Ok((leader, _)) => by_leader.entry(leader).or_default().push(partition),
                Err(e) if Retry::is_retriable(&e) => retriable = Some(e),
                Err(e) => return Err(e),
            }
        }
        for (leader, partitions) in by_leader {
            if let Err(e) = self
                .list_offsets_from(leader, topic, &partitions, spec, found)
                .await
            {
                if !Retry::is_retriable(&e) {
                    return Err(e);
                }
                retriable = Some(e);
            }
        }
        retriable.map_or(Ok(()), Err)
    }

    /// One ListOffsets request to broker `leader` for `partitions` of `topic`.
    async fn list_offsets_from(
        &self,
        leader: i32,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
        found: &mut BTreeMap<i32, ListedOffset>,
    ) -> Result<(), ClientError> {
        let conn = self.cluster.broker(leader).await?;
        let version = conn.version_for::<ListOffsetsRequest>()?;
        if spec == OffsetSpec::MaxTimestamp && version < MAX_TIMESTAMP_VERSION {
            return Err(ClientError::Broker {
                code: ErrorCode::UNSUPPORTED_VERSION,
                context: format!("list offsets of {topic} by max timestamp needs ListOffsets v7, broker {leader} speaks v{version}"),
            });
        }
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(spec.timestamp())
                        })
                        .collect(),
                )]);
        let response = conn.send_version(&request, version).await?;
        let mut retriable = None;
        for p in response
            .topics
            .into_iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partitions)
        {
            let partition = p.partition_index;
            match check(p.error_code, None, || {
                format!("list offsets of {topic}-{partition} on broker {leader}")
            }) {
                Ok(()) => {
                    found.insert(
                        partition,
                        ListedOffset {
                            offset: p.offset,
                            timestamp: p.timestamp,
                        },
                    );
                }
                Err(e) if Retry::is_retriable(&e) => retriable = Some(e),
                Err(e) => return Err(e),
            }
        }
        retriable.map_or(Ok(()), Err)
    }

    /// Deletes the records of `topic`-`partition` before offset `before` (-1 for the high
    /// watermark, i.e. all), by moving the log start offset. Returns the partition's new
    /// low watermark.
    ///
    /// # Errors
    /// `OFFSET_OUT_OF_RANGE` when `before` is above the high watermark, `POLICY_VIOLATION`
    /// on compacted topics, unknown topic or partition, or the request's error.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        before: i64,
    ) -> Result<i64, ClientError> {
        let topics = [topic.to_owned()];
        self.with_retries(format!("delete records of {topic}-{partition}"), &topics, || async {
            let (leader, conn) = self.cluster.leader(topic, partition).await?;
            let request = DeleteRecordsRequest::default()
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(partition).with_offset(before)])])
                .with_timeout_ms(self.request_timeout_ms());
            let response = conn.send(&request).await?;
            let answer = response
                .topics
                .into_iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| t.partitions)
                .find(|p| p.partition_index == partition)
                .ok_or_else(|| ClientError::Broker {
                    code: ErrorCode::UNKNOWN_SERVER_ERROR,
                    context: format!("delete records of {topic}-{partition}: broker {leader} did not answer for it"),
                })?;
            check(answer.error_code, None, || format!("delete records of {topic}-{partition} before {before} on broker {leader}"))?;
            Ok(answer.low_watermark)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_use_kafkas_special_timestamps() {
        assert_eq!(OffsetSpec::Earliest.timestamp(), -2);
        assert_eq!(OffsetSpec::Latest.timestamp(), -1);
        assert_eq!(OffsetSpec::MaxTimestamp.timestamp(), -3);
        assert_eq!(
            OffsetSpec::Timestamp(1_700_000_000_000).timestamp(),
            1_700_000_000_000
        );
    }
}
