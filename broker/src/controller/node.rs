//! One member of the metadata quorum: the `raft` crate's [`RawNode`] over the durable
//! [`RaftStore`], with the [`MetadataImage`] its committed records build. Sans-IO: the
//! caller ticks it, feeds it peers' messages, and after each of those calls
//! [`QuorumNode::ready`], which persists what Raft asks for (one fsync), applies what was
//! committed, and returns the messages to send. Time is the caller's ticks, so a test can
//! drive several nodes through elections and faults deterministically.

use std::path::Path;

use protobuf::Message as _;
use raft::prelude::{ConfChangeV2, Entry, EntryType, Message};
use raft::{RawNode, StateRole};
use tracing::{debug, info, warn};

use super::image::MetadataImage;
use super::raft_store::{RaftStore, RaftStoreError};
use super::records::MetadataRecord;

/// Entries kept after the snapshot before the log is compacted into a new snapshot.
const COMPACT_AFTER: usize = 4096;

/// Ticks of a quorum node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QuorumTiming {
    /// Ticks without hearing from a leader before a follower stands for election (Raft
    /// randomises each wait between this and twice this).
    pub(crate) election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub(crate) heartbeat_ticks: usize,
}

/// What went wrong in the quorum.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// The metadata log could not be read or written.
    #[error(transparent)]
    Store(#[from] RaftStoreError),
    /// Raft refused the operation (e.g. a proposal on a node that is not the leader).
    #[error("metadata quorum: {0}")]
    Raft(#[from] raft::Error),
    /// A committed entry could not be read back.
    #[error("metadata log entry {index} is unreadable: {reason}")]
    BadEntry {
        /// The entry's index.
        index: u64,
        /// Why.
        reason: String,
    },
}

/// What one [`QuorumNode::ready`] produced.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Messages for the other members, each addressed by its `to`.
    pub(crate) messages: Vec<Message>,
    /// Records newly committed and applied to the image, with their log indexes.
    pub(crate) applied: Vec<(u64, MetadataRecord)>,
    /// Index and term of every entry applied, records or not (a proposal is settled by
    /// whether its index was applied with the term it was proposed in).
    pub(crate) applied_terms: Vec<(u64, u64)>,
    /// Whether the membership changed.
    pub(crate) membership_changed: bool,
    /// A snapshot replaced the image: entries up to its index will not be applied one by
    /// one.
    pub(crate) snapshot_installed: Option<u64>,
}

/// A member of the metadata quorum (a voter, or a learner that only follows the log).
pub(crate) struct QuorumNode {
    raw: RawNode<RaftStore>,
    image: MetadataImage,
}

impl QuorumNode {
    /// Opens node `id` over the metadata log in `dir`; a new log starts with `voters` as
    /// the quorum. The image is rebuilt from the snapshot and the committed entries.
    pub(crate) fn open(
        id: u64,
        dir: &Path,
        voters: &[u64],
        timing: QuorumTiming,
    ) -> Result<QuorumNode, QuorumError> {
        let store = RaftStore::open(dir, voters)?;
        let mut image = image_of_snapshot(&store)?;
        let commit = store.hard_state().commit;
        for entry in store.entries_after_snapshot() {
            if entry.index > commit {
                break;
            }
            if let Some(record) = record_of(entry)? {
                image.apply(&record, entry.index);
            } else {
                image.applied = image.applied.max(entry.index);
            }
        }
        let config = raft::Config {
            id,
            election_tick: timing.election_ticks,
            heartbeat_tick: timing.heartbeat_ticks,
            applied: image.applied,
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..raft::Config::default()
        };
        config.validate()?;
        let raw = RawNode::new(&config, store, &logger())?;
        Ok(QuorumNode { raw, image })
    }

    /// This node's id.
    pub(crate) fn id(&self) -> u64 {
        self.raw.raft.id
    }

    /// The image as of the last applied record.
    pub(crate) fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// Whether this node is the quorum's leader (the active controller).
    pub(crate) fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this node knows of, if any.
    pub(crate) fn leader(&self) -> Option<u64> {
        let leader = self.raw.raft.leader_id;
        (leader != raft::INVALID_ID).then_some(leader)
    }

    /// The current term.
    pub(crate) fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// Index of the last entry in this node's log.
    pub(crate) fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// Index of the last entry known committed.
    pub(crate) fn commit(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// On the leader, each member's id and the last index it is known to hold; elsewhere
    /// only this node's.
    pub(crate) fn replication(&self) -> Vec<(u64, u64)> {
        if self.is_leader() {
            let mut members: Vec<(u64, u64)> = self
                .raw
                .raft
                .prs()
                .iter()
                .map(|(id, p)| (*id, p.matched))
                .collect();
            members.sort_unstable();
            members
        } else {
            vec![(self.id(), self.last_index())]
        }
    }

    /// Advances the node's clock by one tick.
    pub(crate) fn tick(&mut self) {
        self.raw.tick();
    }

    /// Hands the node a message from a peer.
    pub(crate) fn step(&mut self, message: Message) -> Result<(), QuorumError> {
        Ok(self.raw.step(message)?)
    }

    /// Stands for election now (a single-voter quorum elects itself this way at once).
    pub(crate) fn campaign(&mut self) -> Result<(), QuorumError> {
        Ok(self.raw.campaign()?)
    }

    /// Proposes records, in order, each as one entry. Only the leader accepts proposals;
    /// they are applied when committed, as seen in [`Progress::applied`].
    pub(crate) fn propose(&mut self, records: &[MetadataRecord]) -> Result<(), QuorumError> {
        for record in records {
            self.raw.propose(Vec::new(), record.encode())?;
        }
        Ok(())
    }

    /// Proposes a membership change (adding a learner, promoting it, removing a node).
    pub(crate) fn propose_membership(&mut self, change: ConfChangeV2) -> Result<(), QuorumError> {
        Ok(self.raw.propose_conf_change(Vec::new(), change)?)
    }

    /// The voters and learners of the quorum.
    pub(crate) fn membership(&self) -> (Vec<u64>, Vec<u64>) {
        let conf = self.raw.raft.prs().conf().to_conf_state();
        (conf.voters, conf.learners)
    }

    /// Persists what Raft produced since the last call (entries, hard state; one fsync),
    /// applies newly committed entries to the image, and returns the messages to send.
    pub(crate) fn ready(&mut self) -> Result<Progress, QuorumError> {
        let mut progress = Progress::default();
        if !self.raw.has_ready() {
            return Ok(progress);
        }
        let mut ready = self.raw.ready();
        progress.messages.extend(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.raw.mut_store().apply_snapshot(snapshot)?;
            self.image = image_of_snapshot(self.raw.store())?;
            progress.snapshot_installed = Some(self.image.applied);
            info!(index = self.image.applied, "metadata snapshot installed");
        }
        self.apply(ready.take_committed_entries(), &mut progress)?;
        if !ready.entries().is_empty() {
            self.raw.mut_store().append(ready.entries())?;
        }
        if let Some(hs) = ready.hs() {
            self.raw.mut_store().set_hard_state(hs.clone())?;
        }
        self.raw.mut_store().sync()?;
        progress.messages.extend(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        progress.messages.extend(light.take_messages());
        self.apply(light.take_committed_entries(), &mut progress)?;
        self.raw.advance_apply();
        self.maybe_compact()?;
        Ok(progress)
    }

    /// Applies committed entries: records to the image, membership changes to Raft.
    fn apply(&mut self, entries: Vec<Entry>, progress: &mut Progress) -> Result<(), QuorumError> {
        for entry in entries {
            progress.applied_terms.push((entry.index, entry.term));
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    if let Some(record) = record_of(&entry)? {
                        self.image.apply(&record, entry.index);
                        progress.applied.push((entry.index, record));
                    } else {
                        // The empty entry a new leader commits first.
                        self.image.applied = self.image.applied.max(entry.index);
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let conf = apply_conf_change(&mut self.raw, &entry)?;
                    info!(voters = ?conf.voters, learners = ?conf.learners, "metadata quorum membership changed");
                    self.raw.mut_store().set_conf_state(conf)?;
                    self.image.applied = self.image.applied.max(entry.index);
                    progress.membership_changed = true;
                }
            }
        }
        Ok(())
    }

    /// Replaces the applied part of a long log by a snapshot of the image.
    fn maybe_compact(&mut self) -> Result<(), QuorumError> {
        if self.raw.store().entries_after_snapshot().len() < COMPACT_AFTER {
            return Ok(());
        }
        let data = serde_json::to_vec(&self.image).unwrap_or_default();
        let applied = self.image.applied;
        self.raw.mut_store().compact(applied, data)?;
        debug!(index = applied, "metadata log compacted");
        Ok(())
    }
}

/// The image stored in the store's snapshot (empty when there is none).
fn image_of_snapshot(store: &RaftStore) -> Result<MetadataImage, QuorumError> {
    let snapshot = store.snapshot_ref();
    let index = snapshot.get_metadata().index;
    if snapshot.data.is_empty() {
        return Ok(MetadataImage {
            applied: index,
            ..MetadataImage::default()
        });
    }
    let mut image: MetadataImage =
        serde_json::from_slice(&snapshot.data).map_err(|e| QuorumError::BadEntry {
            index,
            reason: format!("snapshot: {e}"),
        })?;
    image.applied = index;
    Ok(image)
}

/// The record in a normal entry; `None` for an empty one.
fn record_of(entry: &Entry) -> Result<Option<MetadataRecord>, QuorumError> {
    if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
        return Ok(None);
    }
    MetadataRecord::decode(&entry.data)
        .map(Some)
        .map_err(|e| QuorumError::BadEntry {
            index: entry.index,
            reason: e.to_string(),
        })
}

/// Applies the membership change in a conf-change entry to Raft; returns the membership
/// that results.
fn apply_conf_change(
    raw: &mut RawNode<RaftStore>,
    entry: &Entry,
) -> Result<raft::prelude::ConfState, QuorumError> {
    let bad = |e: protobuf::ProtobufError| QuorumError::BadEntry {
        index: entry.index,
        reason: e.to_string(),
    };
    if entry.get_entry_type() == EntryType::EntryConfChange {
        let change = raft::prelude::ConfChange::parse_from_bytes(&entry.data).map_err(bad)?;
        return Ok(raw.apply_conf_change(&change)?);
    }
    let change = ConfChangeV2::parse_from_bytes(&entry.data).map_err(bad)?;
    Ok(raw.apply_conf_change(&change)?)
}

/// A logger for the `raft` crate that forwards to `tracing`.
fn logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}

/// Forwards `slog` records to `tracing` (target `raft`), with their key-value pairs.
struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        use slog::KV as _;
        let mut fields = KeyValues(String::new());
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        let (message, fields) = (record.msg(), fields.0);
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", "{message}{fields}")
            }
            slog::Level::Warning => warn!(target: "raft", "{message}{fields}"),
            slog::Level::Info => info!(target: "raft", "{message}{fields}"),
            slog::Level::Debug | slog::Level::Trace => {
                tracing::trace!(target: "raft", "{message}{fields}")
            }
        }
        Ok(())
    }
}

/// Collects `slog` key-value pairs as ` key=value` text.
struct KeyValues(String);

impl slog::Serializer for KeyValues {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments<'_>) -> slog::Result {
        use std::fmt::Write as _;
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}
