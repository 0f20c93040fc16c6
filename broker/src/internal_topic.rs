//! An internal topic a coordinator keeps its state in (`__consumer_offsets`,
//! `__transaction_state`).
//!
//! ```text
//!  coordinator ── append(records) ──▶ <topic>-<partition_for(key)>   answered once the
//!                                     (compacted: last record per     in-sync replicas
//!                                      key wins)                      have them
//!  new leader of a partition ── read ──▶ the partition from its start, batch by batch
//! ```
//!
//! Everything under one key (a group, a transactional id) goes to one partition
//! ([`partition_for`], as Kafka places them), so its records are in the order written; the
//! partition's leader is the key's coordinator. The topic is created by the first
//! coordinator that needs it, as Kafka does, with the configured partition count and
//! replication factor (fewer replicas when fewer brokers are live).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use strom_protocol::records::{
    batches, decode_batch, marker_of, BatchBuilder, Compression, Record,
};
use strom_protocol::ErrorCode;
use tracing::warn;

use crate::state::now_ms;
use crate::topics::{Topic, Topics};

/// Where a key is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    /// Its partition of the internal topic.
    pub(crate) partition: i32,
    /// That partition's leader (-1 for none): the key's coordinator.
    pub(crate) leader: i32,
    /// That partition's leader epoch.
    pub(crate) epoch: i32,
}

/// What loading a partition finds, in log order.
pub(crate) enum Item {
    /// A record; `transaction` names the producer whose transaction wrote it, if one did
    /// (it counts once that producer's commit marker follows).
    Record {
        transaction: Option<i64>,
        record: Record,
    },
    /// A transaction marker of producer `producer_id`.
    Marker { producer_id: i64, commit: bool },
}

/// Bytes read from a partition at a time while loading.
const LOAD_CHUNK: usize = 1 << 20;

/// How long a write waits for the in-sync replicas of its partition.
const REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The partition of `key` among `partitions`: Java's `abs(key.hashCode()) % partitions`,
/// so a key has the coordinator Kafka would give it.
pub(crate) fn partition_for(key: &str, partitions: i32) -> i32 {
    let hash = java_hash_code(key);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    if partitions > 0 {
        abs % partitions
    } else {
        0
    }
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping.
fn java_hash_code(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// One internal topic, as seen by its coordinator.
pub(crate) struct InternalTopic {
    topics: Arc<Topics>,
    name: &'static str,
    /// Partitions when creating it (an existing topic keeps its count).
    partitions: i32,
    /// Replicas when creating it, at most the live brokers.
    factor: usize,
    /// Its topic configs.
    overrides: BTreeMap<String, String>,
}

impl InternalTopic {
    pub(crate) fn new(
        topics: Arc<Topics>,
        name: &'static str,
        partitions: i32,
        factor: usize,
        overrides: BTreeMap<String, String>,
    ) -> Self {
        InternalTopic {
            topics,
            name,
            partitions,
            factor,
            overrides,
        }
    }

    /// Where `key` is kept: its partition, that partition's leader and leader epoch;
    /// `None` while the topic does not exist.
    pub(crate) fn place_of(&self, key: &str) -> Option<Place> {
        let image = self.topics.image();
        let topic = image.topic(self.name)?;
        let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let partition = partition_for(key, count);
        let (leader, epoch) = image
            .partition(topic.id, partition)
            .map_or((-1, -1), |p| (p.leader, p.leader_epoch));
        Some(Place {
            partition,
            leader,
            epoch,
        })
    }

    /// Where `key` is kept, the topic created first if it does not exist (answered once
    /// this broker has opened it).
    pub(crate) async fn place_or_create(&self, key: &str) -> Result<Place, ErrorCode> {
        if let Some(place) = self.place_of(key) {
            return Ok(place);
        }
        self.ensure_topic().await?;
        self.topics.catch_up().await;
        self.place_of(key)
            .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)
    }

    /// The partitions broker `me` leads, with their leader epochs.
    pub(crate) fn led_partitions(&self, me: i32) -> Vec<(i32, i32)> {
        let image = self.topics.image();
        let Some(topic) = image.topic(self.name) else {
            return Vec::new();
        };
        topic
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.leader == me)
            .filter_map(|(i, p)| Some((i32::try_from(i).ok()?, p.leader_epoch)))
            .collect()
    }

    /// The topic's partition count (0 while it does not exist).
    pub(crate) fn partition_count(&self) -> i32 {
        self.topics
            .image()
            .topic(self.name)
            .map_or(0, |t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX))
    }

    /// Makes sure the topic exists: created here on the active controller, asked of the
    /// controller elsewhere (answered once this node's image has it, or
    /// COORDINATOR_NOT_AVAILABLE for the client to ask again).
    pub(crate) async fn ensure_topic(&self) -> Result<(), ErrorCode> {
        if self.topics.image().topic(self.name).is_some() {
            return Ok(());
        }
        let factor = self.factor();
        // A topic created on fewer brokers than its minimum ISR could take no write.
        let mut overrides = self.overrides.clone();
        if let Some(min) = overrides.get_mut("min.insync.replicas") {
            let capped = min.parse::<usize>().unwrap_or(1).min(factor);
            *min = capped.to_string();
        }
        let created = self
            .topics
            .create_anywhere(self.name, self.partitions, factor, overrides)
            .await;
        match created {
            Ok(true) => Ok(()),
            // The controller was asked: the client asks again once the image has it.
            Ok(false) => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
            Err((code, message)) => {
                warn!(error = %code, message, "creating {}", self.name);
                Err(ErrorCode::COORDINATOR_NOT_AVAILABLE)
            }
        }
    }

    /// The topic, created if missing.
    async fn topic(&self) -> Result<Arc<Topic>, ErrorCode> {
        if let Some(topic) = self.topics.get(self.name) {
            return Ok(topic);
        }
        self.ensure_topic().await?;
        // Created: this broker may still be opening its partitions.
        self.topics.catch_up().await;
        self.topics
            .get(self.name)
            .ok_or(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS)
    }

    /// Replicas: the configured factor, at most the live brokers.
    fn factor(&self) -> usize {
        let live = self.topics.image().live_brokers().count().max(1);
        self.factor.min(live)
    }

    /// Appends `records` (keys and values, `None` for a tombstone) as one batch to the
    /// partition of `key`, which this broker must lead in `epoch` (the one the key's state
    /// was loaded in); `Ok` once the records are in the log of every in-sync replica, so
    /// a new leader has them. Errors: NOT_COORDINATOR (not the leader in `epoch`),
    /// MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE, COORDINATOR_NOT_AVAILABLE (fewer in-sync
    /// replicas than the topic's `min.insync.replicas`, or anything else).
    pub(crate) async fn append(
        &self,
        key: &str,
        epoch: i32,
        records: &[(Bytes, Option<Bytes>)],
    ) -> Result<(), ErrorCode> {
        self.append_as(key, epoch, records, None).await
    }

    /// Like [`InternalTopic::append`], written in the transaction of `producer` (id and
    /// epoch) when given: the records count once its commit marker is written here.
    pub(crate) async fn append_as(
        &self,
        key: &str,
        epoch: i32,
        records: &[(Bytes, Option<Bytes>)],
        producer: Option<(i64, i16)>,
    ) -> Result<(), ErrorCode> {
        if records.is_empty() {
            return Ok(());
        }
        let topic = self.topic().await?;
        let index = partition_for(key, topic.partition_count());
        let partition = topic
            .partition(index)
            .filter(|p| p.leader_epoch() == epoch && epoch >= 0)
            .ok_or(ErrorCode::NOT_COORDINATOR)?;
        // As acks=all: below the topic's minimum ISR the write is refused.
        if partition.isr_len() < topic.min_insync_replicas() {
            warn!(
                key,
                isr = partition.isr_len(),
                "too few in-sync replicas of {}",
                self.name
            );
            return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        }
        let now = now_ms();
        let mut batch = BatchBuilder::new(Compression::None);
        if let Some((id, producer_epoch)) = producer {
            batch = batch.producer(id, producer_epoch, -1).transactional(true);
        }
        for (k, value) in records {
            batch.push(now, Some(k), value.as_deref(), &[]);
        }
        let batch = batch.build().map_err(|e| {
            warn!(key, error = %e, "encoding records of {}", self.name);
            ErrorCode::UNKNOWN_SERVER_ERROR
        })?;
        let appended = partition
            .append(batch, now)
            .await
            .map_err(|(code, message)| {
                warn!(key, error = %code, message, "writing to {}", self.name);
                match code {
                    ErrorCode::MESSAGE_TOO_LARGE
                    | ErrorCode::RECORD_LIST_TOO_LARGE
                    | ErrorCode::INVALID_PRODUCER_EPOCH => code,
                    _ => ErrorCode::COORDINATOR_NOT_AVAILABLE,
                }
            })?;
        let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
        partition
            .wait_for_high_watermark(appended.next_offset, epoch, deadline)
            .await
            .map_err(|code| {
                warn!(key, error = %code, "{} not replicated", self.name);
                match code {
                    ErrorCode::NOT_LEADER_OR_FOLLOWER => ErrorCode::NOT_COORDINATOR,
                    _ => ErrorCode::COORDINATOR_NOT_AVAILABLE,
                }
            })
    }

    /// Reads partition `index` from its start, which this broker must lead in `epoch` (it
    /// has taken the lead: the log holds everything committed), giving `apply` each record
    /// and transaction marker in order. A batch that does not decode ends the read with a
    /// warning.
    pub(crate) async fn read(
        &self,
        index: i32,
        epoch: i32,
        mut apply: impl FnMut(Item),
    ) -> Result<(), ErrorCode> {
        let Some(topic) = self.topics.get(self.name) else {
            return Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
        };
        // Not reconciled into the lead yet: the client asks again.
        let partition = topic
            .partition(index)
            .filter(|p| p.leader_epoch() == epoch)
            .ok_or(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS)?;
        let mut offset = partition.watermarks().await.log_start_offset;
        loop {
            let read = partition.read(offset, LOAD_CHUNK).await?;
            if read.records.is_empty() || offset >= read.log_end_offset {
                return Ok(());
            }
            offset = self.apply_batches(&read.records, offset, &mut apply);
        }
    }

    /// Gives `apply` the records and markers of `bytes` (whole batches) at or after
    /// `from`; returns the offset after the last batch.
    fn apply_batches(&self, bytes: &[u8], from: i64, apply: &mut impl FnMut(Item)) -> i64 {
        let mut next = from;
        for batch in batches(bytes) {
            let Ok((_, range)) = batch else { break };
            let Some(batch) = bytes.get(range) else { break };
            let Ok((header, records)) = decode_batch(batch) else {
                warn!(
                    offset = next,
                    "skipping an unreadable batch of {}", self.name
                );
                break;
            };
            next = header.base_offset + i64::from(header.last_offset_delta) + 1;
            if header.is_control() {
                if let Ok(marker) = marker_of(batch) {
                    apply(Item::Marker {
                        producer_id: header.producer_id,
                        commit: marker.commit,
                    });
                }
                continue;
            }
            let transaction = header.is_transactional().then_some(header.producer_id);
            for record in records.into_iter().filter(|r| r.offset >= from) {
                apply(Item::Record {
                    transaction,
                    record,
                });
            }
        }
        next.max(from + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_codes() {
        assert_eq!(java_hash_code(""), 0);
        assert_eq!(java_hash_code("a"), 97);
        assert_eq!(java_hash_code("hello"), 99_162_322);
        // U+1F600 is the surrogate pair 0xD83D 0xDE00: 0xD83D * 31 + 0xDE00.
        assert_eq!(java_hash_code("😀"), 1_772_899);
        assert_eq!(java_hash_code("héllo"), 103_094_734);
        assert_eq!(java_hash_code("my-group"), -1_906_497_762);
        assert_eq!(java_hash_code("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn partitions_match_kafka() {
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("a", 50), 47);
        assert_eq!(partition_for("hello", 50), 22);
        assert_eq!(partition_for("😀", 50), 49);
        // Negative hash: abs first (a mask with 0x7fffffff would give 36).
        assert_eq!(partition_for("my-group", 50), 12);
        // i32::MIN: Kafka's Utils.abs gives 0 (Math.abs would stay negative).
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("orders", 50), 31);
        assert_eq!(partition_for("hello", 1), 0);
        assert_eq!(partition_for("hello", 0), 0);
    }
}
