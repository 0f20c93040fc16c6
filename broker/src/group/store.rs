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
use strom_protocol::ErrorCode;
use tracing::{debug, warn};

use super::schema::{
    decode_group, decode_key, decode_offset, encode_group, encode_key, encode_offset,
    CommittedOffset, GroupMetadata, OffsetsKey, OFFSETS_TOPIC,
};
pub(crate) use crate::internal_topic::Place;
use crate::internal_topic::{InternalTopic, Item};
use crate::topics::Topics;

/// A topic-partition of a committed offset.
pub(crate) type TopicPartition = (String, i32);

/// What the log holds for one group.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Committed offsets by partition.
    pub(crate) offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// The group's last metadata record, unless deleted since.
    pub(crate) metadata: Option<GroupMetadata>,
    /// Offsets committed in transactions not ended yet, by producer id.
    pub(crate) pending: HashMap<i64, BTreeMap<TopicPartition, CommittedOffset>>,
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
    topic: InternalTopic,
}

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
        let overrides = topic_overrides();
        Store {
            topic: InternalTopic::new(topics, OFFSETS_TOPIC, partitions, factor, overrides),
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
        self.topic.place_of(group_id)
    }

    /// Where `group_id` is kept, the offsets topic created first if it does not exist
    /// (answered once this broker has opened it).
    pub(crate) async fn place_or_create(&self, group_id: &str) -> Result<Place, ErrorCode> {
        self.topic.place_or_create(group_id).await
    }

    /// The offsets partitions this broker leads, with their leader epochs.
    pub(crate) fn led_partitions(&self, me: i32) -> Vec<(i32, i32)> {
        self.topic.led_partitions(me)
    }

    /// The partition count of the offsets topic (0 while it does not exist).
    pub(crate) fn partition_count(&self) -> i32 {
        self.topic.partition_count()
    }

    /// Makes sure the offsets topic exists (see [`InternalTopic::ensure_topic`]).
    pub(crate) async fn ensure_topic(&self) -> Result<(), ErrorCode> {
        self.topic.ensure_topic().await
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
        self.append_as(group, epoch, entries, None).await
    }

    /// Like [`Store::append`], in the transaction of `producer` (TxnOffsetCommit): the
    /// offsets count once the producer's commit marker follows them.
    pub(crate) async fn append_as(
        &self,
        group: &str,
        epoch: i32,
        entries: &[Entry<'_>],
        producer: Option<(i64, i16)>,
    ) -> Result<(), ErrorCode> {
        let records: Vec<(Bytes, Option<Bytes>)> =
            entries.iter().map(|e| encode_entry(group, e)).collect();
        self.topic
            .append_as(group, epoch, &records, producer)
            .await
            .map_err(|code| match code {
                // As Kafka maps storage errors of the offsets topic for the client.
                ErrorCode::MESSAGE_TOO_LARGE | ErrorCode::RECORD_LIST_TOO_LARGE => {
                    ErrorCode::INVALID_COMMIT_OFFSET_SIZE
                }
                other => other,
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
        self.topic
            .read(index, epoch, |item| match item {
                Item::Record {
                    transaction,
                    record,
                } => apply_record(
                    record.key.as_deref(),
                    record.value.as_deref(),
                    transaction,
                    &mut groups,
                ),
                Item::Marker {
                    producer_id,
                    commit,
                } => {
                    for group in groups.values_mut() {
                        if let Some(offsets) = group.pending.remove(&producer_id) {
                            if commit {
                                group.offsets.extend(offsets);
                            }
                        }
                    }
                }
            })
            .await?;
        groups
            .retain(|_, g| g.metadata.is_some() || !g.offsets.is_empty() || !g.pending.is_empty());
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

/// Applies one record: a value sets, a tombstone removes; an offset written in producer
/// `transaction`'s transaction waits for its marker.
fn apply_record(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    transaction: Option<i64>,
    groups: &mut HashMap<String, Loaded>,
) {
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
            let loaded = groups.entry(group).or_default();
            let offsets = match transaction {
                Some(producer) => loaded.pending.entry(producer).or_default(),
                None => &mut loaded.offsets,
            };
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
