//! `__consumer_offsets` as the coordinator's storage.
//!
//! ```text
//!  group task ── append(key, value | tombstone) ──▶ __consumer_offsets-<partition_for(group)>
//!                 answered once the in-sync replicas  (compacted: the last record per key wins)
//!                 have it
//!  new leader of a partition ── load ──▶ the partition read from its start, records applied
//!                            in order ──▶ per group: committed offsets + last group metadata
//! ```
//!
//! A group's records all go to one partition (`partition_for`), so their order in the log
//! is the order they were written. The topic is created with the first group that needs
//! it, as Kafka does, with `offsets.topic.num.partitions` partitions and
//! `offsets.topic.replication.factor` replicas (fewer when fewer brokers are live).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use strom_protocol::records::{decode_batch, BatchBuilder, Compression};
use strom_protocol::ErrorCode;
use tracing::{debug, warn};

use super::schema::{
    decode_group, decode_key, decode_offset, encode_group, encode_key, encode_offset,
    partition_for, CommittedOffset, GroupMetadata, OffsetsKey, OFFSETS_TOPIC,
};
use crate::state::now_ms;
use crate::topics::{Topic, Topics};

/// A topic-partition of a committed offset.
pub(crate) type TopicPartition = (String, i32);

/// What the log holds for one group.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Committed offsets by partition.
    pub(crate) offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// The group's last metadata record, unless deleted since.
    pub(crate) metadata: Option<GroupMetadata>,
}

/// One record to write: a key and its value, or a tombstone.
pub(crate) enum Entry<'a> {
    /// A committed offset.
    Offset(&'a str, i32, &'a CommittedOffset),
    /// The offset of a partition is deleted.
    OffsetGone(&'a str, i32),
    /// The group's metadata after a rebalance.
    Group(&'a GroupMetadata),
    /// The group is deleted.
    GroupGone,
}

/// Reads and writes `__consumer_offsets`.
pub(crate) struct Store {
    topics: Arc<Topics>,
    partitions: i32,
    /// `offsets.topic.replication.factor`.
    factor: usize,
}

/// Where a group is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    /// Its offsets partition.
    pub(crate) partition: i32,
    /// That partition's leader (-1 for none): the group's coordinator.
    pub(crate) leader: i32,
    /// That partition's leader epoch.
    pub(crate) epoch: i32,
}

/// Bytes read from a partition at a time while loading.
const LOAD_CHUNK: usize = 1 << 20;

/// How long a group's write waits for the in-sync replicas of its offsets partition.
const REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Overrides of the offsets topic, as Kafka creates it.
fn topic_overrides() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("segment.bytes".to_owned(), "104857600".to_owned()),
    ])
}

impl Store {
    /// The store of a broker with `partitions` offsets partitions (used when creating the
    /// topic; an existing topic keeps its count).
    pub(crate) fn new(topics: Arc<Topics>, partitions: i32, factor: usize) -> Self {
        Store {
            topics,
            partitions,
            factor,
        }
    }

    /// The broker leading the offsets partition of `group_id` (-1 for none); `None` while
    /// the offsets topic does not exist.
    pub(crate) fn coordinator_of(&self, group_id: &str) -> Option<i32> {
        self.place_of(group_id).map(|place| place.leader)
    }

    /// Where `group_id` is kept: its offsets partition, that partition's leader and
    /// leader epoch; `None` while the offsets topic does not exist.
    pub(crate) fn place_of(&self, group_id: &str) -> Option<Place> {
        let image = self.topics.image();
        let topic = image.topic(OFFSETS_TOPIC)?;
        let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let partition = partition_for(group_id, count);
        let (leader, epoch) = image
            .partition(topic.id, partition)
            .map_or((-1, -1), |p| (p.leader, p.leader_epoch));
        Some(Place {
            partition,
            leader,
            epoch,
        })
    }

    /// Where `group_id` is kept, the offsets topic created first if it does not exist
    /// (answered once this broker has opened it).
    pub(crate) async fn place_or_create(&self, group_id: &str) -> Result<Place, ErrorCode> {
        if let Some(place) = self.place_of(group_id) {
            return Ok(place);
        }
        self.ensure_topic().await?;
        self.topics.catch_up().await;
        self.place_of(group_id)
            .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)
    }

    /// The offsets partitions this broker leads, with their leader epochs.
    pub(crate) fn led_partitions(&self, me: i32) -> Vec<(i32, i32)> {
        let image = self.topics.image();
        let Some(topic) = image.topic(OFFSETS_TOPIC) else {
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

    /// The partition count of the offsets topic (0 while it does not exist).
    pub(crate) fn partition_count(&self) -> i32 {
        self.topics
            .image()
            .topic(OFFSETS_TOPIC)
            .map_or(0, |t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX))
    }

    /// Makes sure the offsets topic exists: created here on the active controller, asked
    /// of the controller elsewhere (answered once this node's image has it, or
    /// COORDINATOR_NOT_AVAILABLE for the client to ask again).
    pub(crate) async fn ensure_topic(&self) -> Result<(), ErrorCode> {
        if self.topics.image().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        match self
            .topics
            // Replicated like Kafka's (`offsets.topic.replication.factor`, 3), on as many
            // brokers as there are when fewer: a partition's new leader loads its groups.
            .create_anywhere(
                OFFSETS_TOPIC,
                self.partitions,
                self.factor(),
                topic_overrides(),
            )
            .await
        {
            Ok(true) => Ok(()),
            // The controller was asked: the client asks again once the image has it.
            Ok(false) => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
            Err((code, message)) => {
                warn!(error = %code, message, "creating {OFFSETS_TOPIC}");
                Err(ErrorCode::COORDINATOR_NOT_AVAILABLE)
            }
        }
    }

    /// The offsets topic, created if missing.
    async fn topic(&self) -> Result<Arc<Topic>, ErrorCode> {
        if let Some(topic) = self.topics.get(OFFSETS_TOPIC) {
            return Ok(topic);
        }
        self.ensure_topic().await?;
        // Created: this broker may still be opening its partitions.
        self.topics.catch_up().await;
        self.topics
            .get(OFFSETS_TOPIC)
            .ok_or(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS)
    }

    /// Replicas of the offsets topic: `offsets.topic.replication.factor`, at most the
    /// live brokers.
    fn factor(&self) -> usize {
        let live = self.topics.image().live_brokers().count().max(1);
        self.factor.min(live)
    }

    /// Appends `entries` of `group` as one batch to its partition, which this broker must
    /// lead in `epoch` (the one the group was loaded in); when this returns `Ok` the
    /// records are in the log of every in-sync replica, so a new leader has them.
    pub(crate) async fn append(
        &self,
        group: &str,
        epoch: i32,
        entries: &[Entry<'_>],
    ) -> Result<(), ErrorCode> {
        if entries.is_empty() {
            return Ok(());
        }
        let topic = self.topic().await?;
        let index = partition_for(group, topic.partition_count());
        let partition = topic
            .partition(index)
            .filter(|p| p.leader_epoch() == epoch && epoch >= 0)
            .ok_or(ErrorCode::NOT_COORDINATOR)?;
        let now = now_ms();
        let mut batch = BatchBuilder::new(Compression::None);
        for entry in entries {
            let (key, value) = encode_entry(group, entry);
            batch.push(now, Some(&key), value.as_deref(), &[]);
        }
        let batch = batch.build().map_err(|e| {
            warn!(group, error = %e, "encoding group records");
            ErrorCode::UNKNOWN_SERVER_ERROR
        })?;
        let appended = partition
            .append(batch, now)
            .await
            .map_err(|(code, message)| {
                warn!(group, error = %code, message, "writing to {OFFSETS_TOPIC}");
                // As Kafka maps storage errors of the offsets topic for the client.
                match code {
                    ErrorCode::MESSAGE_TOO_LARGE | ErrorCode::RECORD_LIST_TOO_LARGE => {
                        ErrorCode::INVALID_COMMIT_OFFSET_SIZE
                    }
                    _ => ErrorCode::COORDINATOR_NOT_AVAILABLE,
                }
            })?;
        let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
        partition
            .wait_for_high_watermark(appended.next_offset, epoch, deadline)
            .await
            .map_err(|code| {
                warn!(group, error = %code, "{OFFSETS_TOPIC} not replicated");
                match code {
                    ErrorCode::NOT_LEADER_OR_FOLLOWER => ErrorCode::NOT_COORDINATOR,
                    _ => ErrorCode::COORDINATOR_NOT_AVAILABLE,
                }
            })
    }

    /// The committed offsets and metadata of the groups of offsets partition `index`,
    /// from its log, which this broker must lead in `epoch` (it has taken the lead: the
    /// log holds everything committed). Records that do not decode are skipped with a
    /// warning.
    pub(crate) async fn load(
        &self,
        index: i32,
        epoch: i32,
    ) -> Result<HashMap<String, Loaded>, ErrorCode> {
        let mut groups: HashMap<String, Loaded> = HashMap::new();
        let Some(topic) = self.topics.get(OFFSETS_TOPIC) else {
            return Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
        };
        // Not reconciled into the lead yet: the client asks again.
        let partition = topic
            .partition(index)
            .filter(|p| p.leader_epoch() == epoch)
            .ok_or(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS)?;
        {
            let mut offset = partition.watermarks().await.log_start_offset;
            loop {
                let read = partition.read(offset, LOAD_CHUNK).await?;
                if read.records.is_empty() || offset >= read.log_end_offset {
                    break;
                }
                offset = apply_batches(&read.records, offset, &mut groups);
            }
        }
        groups.retain(|_, g| g.metadata.is_some() || !g.offsets.is_empty());
        debug!(
            partition = index,
            epoch,
            groups = groups.len(),
            "loaded {OFFSETS_TOPIC}"
        );
        Ok(groups)
    }
}

/// The key and value (`None`: tombstone) of one entry.
fn encode_entry(group: &str, entry: &Entry<'_>) -> (Bytes, Option<Bytes>) {
    let offset_key = |topic: &str, partition: i32| OffsetsKey::Offset {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
    };
    let group_key = || OffsetsKey::Group {
        group: group.to_owned(),
    };
    match entry {
        Entry::Offset(t, p, committed) => (
            encode_key(&offset_key(t, *p)),
            Some(encode_offset(committed)),
        ),
        Entry::OffsetGone(t, p) => (encode_key(&offset_key(t, *p)), None),
        Entry::Group(metadata) => (encode_key(&group_key()), Some(encode_group(metadata))),
        Entry::GroupGone => (encode_key(&group_key()), None),
    }
}

/// Applies the records of `bytes` (whole batches) at or after `from`; returns the offset
/// after the last batch.
fn apply_batches(bytes: &[u8], from: i64, groups: &mut HashMap<String, Loaded>) -> i64 {
    let mut next = from;
    for batch in strom_protocol::records::batches(bytes) {
        let Ok((_, range)) = batch else { break };
        let Some(batch) = bytes.get(range) else { break };
        let decoded = decode_batch(batch);
        let Ok((header, records)) = decoded else {
            warn!(
                offset = next,
                "skipping an unreadable batch of {OFFSETS_TOPIC}"
            );
            break;
        };
        next = header.base_offset + i64::from(header.last_offset_delta) + 1;
        if header.is_control() {
            continue;
        }
        for record in records.into_iter().filter(|r| r.offset >= from) {
            apply_record(record.key.as_deref(), record.value.as_deref(), groups);
        }
    }
    next.max(from + 1)
}

/// Applies one record: a value sets, a tombstone removes.
fn apply_record(key: Option<&[u8]>, value: Option<&[u8]>, groups: &mut HashMap<String, Loaded>) {
    let Some(key) = key.map(decode_key) else {
        return;
    };
    let key = match key {
        Ok(key) => key,
        Err(e) => {
            warn!(error = %e, "skipping a record of {OFFSETS_TOPIC}");
            return;
        }
    };
    match key {
        OffsetsKey::Offset {
            group,
            topic,
            partition,
        } => {
            let offsets = &mut groups.entry(group).or_default().offsets;
            match value.map(decode_offset) {
                None => {
                    offsets.remove(&(topic, partition));
                }
                Some(Ok(committed)) => {
                    offsets.insert((topic, partition), committed);
                }
                Some(Err(e)) => warn!(error = %e, topic, partition, "skipping an offset record"),
            }
        }
        OffsetsKey::Group { group } => {
            let loaded = groups.entry(group).or_default();
            match value.map(decode_group) {
                None => loaded.metadata = None,
                Some(Ok(metadata)) => loaded.metadata = Some(metadata),
                Some(Err(e)) => warn!(error = %e, "skipping a group metadata record"),
            }
        }
    }
}
