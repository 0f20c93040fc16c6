//! The coordinator: one task per group, owning the group's state machine and committed
//! offsets; handlers send it commands and await the answers.
//!
//! ```text
//!  handler ──Command──▶ mpsc ──▶ group task ──▶ Group (machine.rs): join / sync / heartbeat
//!     ▲                              │            / leave / tick at its next deadline
//!     └──── oneshot answers ◀────────┤
//!                                    └──▶ Store: offsets and group metadata appended to
//!                                         __consumer_offsets before a commit is answered
//! ```
//!
//! The task is the only owner of its group, so nothing is locked while a member waits for
//! a rebalance: a JoinGroup or SyncGroup answer is a reply token the machine hands back
//! when the rebalance gets there (or a timer fires). Time is milliseconds since the
//! coordinator started, on tokio's clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use strom_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};

use super::machine::{
    Group, GroupConfig, GroupDescription, GroupSnapshot, JoinArgs, JoinResult, Output, SyncArgs,
    SyncResult,
};
use super::schema::{CommittedOffset, GroupMetadata, MAX_STRING_LEN};
use super::store::{Entry, Loaded, Store, TopicPartition};
use crate::config::BrokerConfig;
use crate::state::now_ms;
use crate::topics::Topics;

/// Largest `metadata` string kept with a committed offset (`offset.metadata.max.bytes`).
const OFFSET_METADATA_MAX_BYTES: usize = 4096;

/// Commands a group task takes.
enum Command {
    Join(JoinArgs, oneshot::Sender<JoinResult>),
    Sync(SyncArgs, oneshot::Sender<SyncResult>),
    Heartbeat(Member, oneshot::Sender<ErrorCode>),
    Leave(
        Vec<(String, Option<String>)>,
        oneshot::Sender<Vec<ErrorCode>>,
    ),
    Commit(
        Member,
        Vec<(TopicPartition, CommittedOffset)>,
        oneshot::Sender<Vec<ErrorCode>>,
    ),
    Fetch(
        Option<Vec<TopicPartition>>,
        oneshot::Sender<Vec<(TopicPartition, CommittedOffset)>>,
    ),
    /// TxnOffsetCommit: offsets in a producer's transaction (id, epoch), from a member
    /// (checked like a commit) or from a producer alone (`None`).
    TxnCommit(
        (i64, i16),
        Option<Member>,
        Vec<(TopicPartition, CommittedOffset)>,
        oneshot::Sender<Vec<ErrorCode>>,
    ),
    /// A producer's transaction ended on the group's offsets partition: its offsets count
    /// (commit) or are dropped.
    TxnEnd(i64, bool),
    /// Whether any offset of these partitions waits for a transaction to end.
    Unstable(Vec<TopicPartition>, oneshot::Sender<Vec<TopicPartition>>),
    Describe(oneshot::Sender<GroupDescription>),
    Delete(oneshot::Sender<ErrorCode>),
    DeleteOffsets(Vec<TopicPartition>, oneshot::Sender<Vec<ErrorCode>>),
}

/// Who a heartbeat or commit comes from.
pub(crate) struct Member {
    pub(crate) member_id: String,
    pub(crate) generation_id: i32,
    pub(crate) group_instance_id: Option<String>,
}

/// A reply the machine holds until the rebalance answers it.
enum Pending {
    Join(oneshot::Sender<JoinResult>),
    Sync(oneshot::Sender<SyncResult>),
}

/// The group coordinator of this broker: the groups of the offsets partitions it leads.
///
/// A partition's groups are loaded from its log the first time they are asked for after
/// this broker took the lead of it in a leader epoch (a restart, a failover, a preferred
/// election), replacing whatever was kept from an earlier epoch; meanwhile requests are
/// answered `COORDINATOR_LOAD_IN_PROGRESS`. A group task writes only in the epoch it was
/// loaded in, and each write is answered once the in-sync replicas have it, so a new
/// leader's load finds every answered commit.
pub(crate) struct Coordinator {
    store: Arc<Store>,
    node_id: i32,
    config: GroupConfig,
    groups: Mutex<HashMap<String, mpsc::Sender<Command>>>,
    /// The leader epoch each offsets partition's groups were loaded in.
    loaded: Mutex<HashMap<i32, i32>>,
    /// One load at a time.
    loading: tokio::sync::Mutex<()>,
    zero: Instant,
}

impl Coordinator {
    /// The coordinator; groups are loaded when first asked for (see [`Coordinator`]).
    pub(crate) async fn start(
        topics: Arc<Topics>,
        config: &BrokerConfig,
    ) -> Result<Self, ErrorCode> {
        let store = Arc::new(Store::new(
            topics,
            config.offsets_topic_num_partitions,
            config.offsets_topic_replication_factor,
        ));
        Ok(Coordinator {
            store,
            node_id: config.node_id,
            config: group_config(config),
            groups: Mutex::new(HashMap::new()),
            loaded: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            zero: Instant::now(),
        })
    }

    /// Makes the groups of offsets partition `partition` those of its log as of leader
    /// epoch `epoch` (this broker leads it), unless they already are.
    async fn ensure_loaded(&self, partition: i32, epoch: i32) -> Result<(), ErrorCode> {
        let is_loaded = |this: &Self| {
            this.loaded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&partition)
                == Some(&epoch)
        };
        if is_loaded(self) {
            return Ok(());
        }
        let _one = self.loading.lock().await;
        if is_loaded(self) {
            return Ok(());
        }
        let groups = self.store.load(partition, epoch).await?;
        let count = self.store.partition_count();
        // Groups of an earlier epoch of this partition are replaced by the log's.
        self.lock()
            .retain(|group, _| crate::internal_topic::partition_for(group, count) != partition);
        info!(partition, epoch, groups = groups.len(), "groups loaded");
        for (group_id, loaded) in groups {
            self.spawn(group_id, loaded, epoch);
        }
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(partition, epoch);
        Ok(())
    }

    /// Stops every group task; members waiting for a rebalance are told to find the
    /// coordinator again.
    pub(crate) fn shutdown(&self) {
        self.lock().clear();
    }

    /// The ids of every group this broker coordinates, with their protocol type and state.
    pub(crate) async fn list(&self) -> Vec<(String, GroupDescription)> {
        let led = self.store.led_partitions(self.node_id);
        for &(partition, epoch) in &led {
            if let Err(code) = self.ensure_loaded(partition, epoch).await {
                debug!(partition, error = %code, "groups not loaded yet");
            }
        }
        let count = self.store.partition_count();
        let handles: Vec<(String, mpsc::Sender<Command>)> = self
            .lock()
            .iter()
            .filter(|(g, _)| {
                let partition = crate::internal_topic::partition_for(g, count);
                led.iter().any(|&(p, _)| p == partition)
            })
            .map(|(g, tx)| (g.clone(), tx.clone()))
            .collect();
        let mut out = Vec::new();
        for (group_id, tx) in handles {
            if let Some(description) = ask(&tx, Command::Describe).await {
                out.push((group_id, description));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// JoinGroup.
    pub(crate) async fn join(&self, group_id: &str, args: JoinArgs) -> JoinResult {
        let member_id = args.member_id.clone();
        let mut names = vec![
            group_id,
            &args.member_id,
            &args.client_id,
            &args.client_host,
        ];
        names.extend(args.group_instance_id.as_deref());
        names.push(&args.protocol_type);
        names.extend(args.protocols.iter().map(|(name, _)| name.as_str()));
        if !storable(&names) {
            return JoinResult::error(&member_id, ErrorCode::INVALID_REQUEST);
        }
        if let Some(code) = self.not_here(group_id).await {
            return JoinResult::error(&member_id, code);
        }
        let tx = self.handle(group_id, true);
        let answer = match tx {
            Some(tx) => ask(&tx, |reply| Command::Join(args, reply)).await,
            None => None,
        };
        answer
            .unwrap_or_else(|| JoinResult::error(&member_id, ErrorCode::COORDINATOR_NOT_AVAILABLE))
    }

    /// SyncGroup.
    pub(crate) async fn sync(&self, group_id: &str, args: SyncArgs) -> SyncResult {
        if let Some(code) = self.not_here(group_id).await {
            return SyncResult::error(code);
        }
        let Some(tx) = self.handle(group_id, false) else {
            return SyncResult::error(ErrorCode::UNKNOWN_MEMBER_ID);
        };
        ask(&tx, |reply| Command::Sync(args, reply))
            .await
            .unwrap_or_else(|| SyncResult::error(ErrorCode::COORDINATOR_NOT_AVAILABLE))
    }

    /// Heartbeat.
    pub(crate) async fn heartbeat(&self, group_id: &str, member: Member) -> ErrorCode {
        if let Some(code) = self.not_here(group_id).await {
            return code;
        }
        let Some(tx) = self.handle(group_id, false) else {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        };
        ask(&tx, |reply| Command::Heartbeat(member, reply))
            .await
            .unwrap_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)
    }

    /// LeaveGroup: one code per member.
    pub(crate) async fn leave(
        &self,
        group_id: &str,
        members: Vec<(String, Option<String>)>,
    ) -> Vec<ErrorCode> {
        let count = members.len();
        if let Some(code) = self.not_here(group_id).await {
            return vec![code; count];
        }
        let Some(tx) = self.handle(group_id, false) else {
            return vec![ErrorCode::UNKNOWN_MEMBER_ID; count];
        };
        ask(&tx, |reply| Command::Leave(members, reply))
            .await
            .unwrap_or_else(|| vec![ErrorCode::COORDINATOR_NOT_AVAILABLE; count])
    }

    /// OffsetCommit: one code per partition, in order.
    pub(crate) async fn commit(
        &self,
        group_id: &str,
        member: Member,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> Vec<ErrorCode> {
        let count = offsets.len();
        self.store_offsets(group_id, count, |reply| {
            Command::Commit(member, offsets, reply)
        })
        .await
    }

    /// Sends a command storing `count` offsets to the group's task (started if needed);
    /// its codes, or one error for all.
    async fn store_offsets(
        &self,
        group_id: &str,
        count: usize,
        command: impl FnOnce(oneshot::Sender<Vec<ErrorCode>>) -> Command,
    ) -> Vec<ErrorCode> {
        if !storable(&[group_id]) {
            return vec![ErrorCode::INVALID_GROUP_ID; count];
        }
        if let Some(code) = self.not_here(group_id).await {
            return vec![code; count];
        }
        let Some(tx) = self.handle(group_id, true) else {
            return vec![ErrorCode::COORDINATOR_NOT_AVAILABLE; count];
        };
        ask(&tx, command)
            .await
            .unwrap_or_else(|| vec![ErrorCode::COORDINATOR_NOT_AVAILABLE; count])
    }

    /// TxnOffsetCommit: offsets written in producer `producer`'s transaction, counting
    /// once it commits; one code per partition, in order.
    pub(crate) async fn txn_commit(
        &self,
        group_id: &str,
        producer: (i64, i16),
        member: Option<Member>,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> Vec<ErrorCode> {
        let count = offsets.len();
        self.store_offsets(group_id, count, |reply| {
            Command::TxnCommit(producer, member, offsets, reply)
        })
        .await
    }

    /// A transaction marker of `producer_id` was written to offsets partition
    /// `partition`: the offsets its groups hold for that transaction count or go.
    pub(crate) async fn transaction_ended(&self, partition: i32, producer_id: i64, commit: bool) {
        let count = self.store.partition_count();
        let tasks: Vec<mpsc::Sender<Command>> = self
            .lock()
            .iter()
            .filter(|(group, _)| crate::internal_topic::partition_for(group, count) == partition)
            .map(|(_, tx)| tx.clone())
            .collect();
        for tx in tasks {
            let _ = tx.send(Command::TxnEnd(producer_id, commit)).await;
        }
    }

    /// Which of `partitions` have offsets in `group_id` waiting for a transaction to end
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for them).
    pub(crate) async fn unstable(
        &self,
        group_id: &str,
        partitions: Vec<TopicPartition>,
    ) -> Vec<TopicPartition> {
        let Some(tx) = self.handle(group_id, false) else {
            return Vec::new();
        };
        ask(&tx, |reply| Command::Unstable(partitions, reply))
            .await
            .unwrap_or_default()
    }

    /// OffsetFetch: the committed offsets of `partitions` (all when `None`); partitions
    /// without one are left out. An error when another broker coordinates the group.
    pub(crate) async fn fetch(
        &self,
        group_id: &str,
        partitions: Option<Vec<TopicPartition>>,
    ) -> Result<Vec<(TopicPartition, CommittedOffset)>, ErrorCode> {
        if let Some(code) = self.not_here(group_id).await {
            return Err(code);
        }
        let Some(tx) = self.handle(group_id, false) else {
            return Ok(Vec::new());
        };
        Ok(ask(&tx, |reply| Command::Fetch(partitions, reply))
            .await
            .unwrap_or_default())
    }

    /// DescribeGroups of one group; `None` when it does not exist, an error when another
    /// broker coordinates it.
    pub(crate) async fn describe(
        &self,
        group_id: &str,
    ) -> Result<Option<GroupDescription>, ErrorCode> {
        if let Some(code) = self.not_here(group_id).await {
            return Err(code);
        }
        let Some(tx) = self.handle(group_id, false) else {
            return Ok(None);
        };
        Ok(ask(&tx, Command::Describe).await)
    }

    /// DeleteGroups of one group.
    pub(crate) async fn delete(&self, group_id: &str) -> ErrorCode {
        if let Some(code) = self.not_here(group_id).await {
            return code;
        }
        let Some(tx) = self.handle(group_id, false) else {
            return ErrorCode::GROUP_ID_NOT_FOUND;
        };
        let code = ask(&tx, Command::Delete)
            .await
            .unwrap_or(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        if code.is_ok() {
            self.lock().remove(group_id);
        }
        code
    }

    /// OffsetDelete: one code per partition.
    pub(crate) async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<TopicPartition>,
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        if let Some(code) = self.not_here(group_id).await {
            return Err(code);
        }
        let tx = self
            .handle(group_id, false)
            .ok_or(ErrorCode::GROUP_ID_NOT_FOUND)?;
        ask(&tx, |reply| Command::DeleteOffsets(partitions, reply))
            .await
            .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)
    }

    /// The broker coordinating `group_id` (the leader of its offsets partition), the
    /// offsets topic created first if needed; COORDINATOR_NOT_AVAILABLE while there is
    /// none.
    pub(crate) async fn find(&self, group_id: &str) -> Result<i32, ErrorCode> {
        self.store.ensure_topic().await?;
        match self.store.coordinator_of(group_id) {
            Some(leader) if leader >= 0 => Ok(leader),
            _ => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
        }
    }

    /// Why this broker does not coordinate `group_id` (another leads its offsets
    /// partition: NOT_COORDINATOR; none does: COORDINATOR_NOT_AVAILABLE; it is loading:
    /// COORDINATOR_LOAD_IN_PROGRESS); `None` when it does. The offsets topic is created
    /// first when it does not exist.
    /// Loads the group's partition first if this broker has just taken its lead.
    async fn not_here(&self, group_id: &str) -> Option<ErrorCode> {
        let place = match self.store.place_or_create(group_id).await {
            Ok(place) => place,
            Err(code) => return Some(code),
        };
        match place.leader {
            leader if leader == self.node_id => {
                self.ensure_loaded(place.partition, place.epoch).await.err()
            }
            -1 => Some(ErrorCode::COORDINATOR_NOT_AVAILABLE),
            _ => Some(ErrorCode::NOT_COORDINATOR),
        }
    }

    /// The leader epoch the group's partition is loaded in (-1 when none).
    fn epoch_of(&self, group_id: &str) -> i32 {
        let Some(place) = self.store.place_of(group_id) else {
            return -1;
        };
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&place.partition)
            .copied()
            .unwrap_or(-1)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, mpsc::Sender<Command>>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The task of `group_id`, started (empty) when `create` and it has none.
    fn handle(&self, group_id: &str, create: bool) -> Option<mpsc::Sender<Command>> {
        if let Some(tx) = self.lock().get(group_id).filter(|tx| !tx.is_closed()) {
            return Some(tx.clone());
        }
        create.then(|| {
            let epoch = self.epoch_of(group_id);
            self.spawn(group_id.to_owned(), Loaded::default(), epoch)
        })
    }

    /// Starts the task of a group from what the log holds for it, writing in leader
    /// epoch `epoch` of its partition.
    fn spawn(&self, group_id: String, loaded: Loaded, epoch: i32) -> mpsc::Sender<Command> {
        let mut groups = self.lock();
        if let Some(tx) = groups.get(&group_id).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(64);
        let clock = Clock { zero: self.zero };
        let now = clock.now();
        let mut group = match loaded.metadata {
            Some(metadata) => Group::restore(
                group_id.clone(),
                snapshot_of(metadata),
                self.config.clone(),
                now,
            ),
            None => Group::new(group_id.clone(), self.config.clone()),
        };
        // Member ids stay unique across restarts of the broker.
        group.set_member_id_seed(uuid::Uuid::new_v4().as_u64_pair().0);
        let task = GroupTask {
            group,
            offsets: loaded.offsets,
            pending: loaded.pending,
            store: self.store.clone(),
            epoch,
            clock,
        };
        let span = tracing::debug_span!("group", group = %group_id);
        tokio::spawn(task.run(rx).instrument(span));
        groups.insert(group_id, tx.clone());
        tx
    }
}

/// Whether every one of `names` fits the string fields of `__consumer_offsets` records.
fn storable(names: &[&str]) -> bool {
    names.iter().all(|n| n.len() <= MAX_STRING_LEN)
}

/// Sends a command made around a fresh reply channel and awaits the answer; `None` when
/// the group task is gone.
async fn ask<T>(
    tx: &mpsc::Sender<Command>,
    command: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    tx.send(command(reply)).await.ok()?;
    answer.await.ok()
}

/// Milliseconds since the coordinator started.
#[derive(Clone, Copy)]
struct Clock {
    zero: Instant,
}

impl Clock {
    fn now(&self) -> u64 {
        u64::try_from(self.zero.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn instant(&self, ms: u64) -> Instant {
        self.zero + std::time::Duration::from_millis(ms)
    }
}

/// One group's task state.
struct GroupTask {
    group: Group<Pending>,
    offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// Offsets of transactions not ended yet, by producer id.
    pending: HashMap<i64, BTreeMap<TopicPartition, CommittedOffset>>,
    store: Arc<Store>,
    /// The leader epoch of its offsets partition it was loaded in: it writes in no other.
    epoch: i32,
    clock: Clock,
}

impl GroupTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            let deadline = self.group.next_deadline().map(|ms| self.clock.instant(ms));
            let command = tokio::select! {
                command = commands.recv() => command,
                _ = sleep_until(deadline) => {
                    let due = self.group.tick(self.clock.now());
                    deliver(due);
                    self.persist_metadata().await;
                    continue;
                }
            };
            let Some(command) = command else { break };
            if self.handle(command).await {
                debug!("group deleted");
                break;
            }
            self.persist_metadata().await;
        }
        deliver(self.group.shutdown());
    }

    /// Handles one command; `true` when the group was deleted.
    async fn handle(&mut self, command: Command) -> bool {
        let now = self.clock.now();
        match command {
            Command::Join(args, reply) => deliver(self.group.join(args, Pending::Join(reply), now)),
            Command::Sync(args, reply) => deliver(self.group.sync(args, Pending::Sync(reply), now)),
            Command::Heartbeat(m, reply) => {
                let code = self.group.heartbeat(
                    &m.member_id,
                    m.generation_id,
                    m.group_instance_id.as_deref(),
                    now,
                );
                let _ = reply.send(code);
            }
            Command::Leave(members, reply) => {
                let mut codes = Vec::with_capacity(members.len());
                for (member_id, instance) in members {
                    let (code, due) = self.group.leave(&member_id, instance.as_deref(), now);
                    deliver(due);
                    codes.push(code);
                }
                let _ = reply.send(codes);
            }
            Command::Commit(member, offsets, reply) => {
                let _ = reply.send(self.commit(&member, offsets).await);
            }
            Command::Fetch(partitions, reply) => {
                let _ = reply.send(self.committed(partitions));
            }
            Command::TxnCommit(producer, member, offsets, reply) => {
                let _ = reply.send(self.txn_commit(producer, member, offsets).await);
            }
            Command::TxnEnd(producer_id, commit) => {
                if let Some(offsets) = self.pending.remove(&producer_id) {
                    if commit {
                        self.offsets.extend(offsets);
                    }
                }
            }
            Command::Unstable(partitions, reply) => {
                let unstable = partitions
                    .into_iter()
                    .filter(|tp| self.pending.values().any(|p| p.contains_key(tp)))
                    .collect();
                let _ = reply.send(unstable);
            }
            Command::Describe(reply) => {
                let _ = reply.send(self.group.describe());
            }
            Command::Delete(reply) => {
                let code = self.delete().await;
                let _ = reply.send(code);
                return code.is_ok();
            }
            Command::DeleteOffsets(partitions, reply) => {
                let _ = reply.send(self.delete_offsets(partitions).await);
            }
        }
        false
    }

    /// Validates and stores a commit; one code per partition.
    async fn commit(
        &mut self,
        member: &Member,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> Vec<ErrorCode> {
        let valid = self.group.validate_commit(
            &member.member_id,
            member.generation_id,
            member.group_instance_id.as_deref(),
        );
        if let Err(code) = valid {
            return vec![code; offsets.len()];
        }
        let (codes, stored) = self.store_offsets(offsets, None).await;
        self.offsets.extend(stored);
        codes
    }

    /// Validates (KIP-447: against the member's generation when it names one) and stores
    /// offsets in a producer's transaction; they count once it commits.
    async fn txn_commit(
        &mut self,
        producer: (i64, i16),
        member: Option<Member>,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> Vec<ErrorCode> {
        if let Some(member) = member {
            let valid = self.group.validate_commit(
                &member.member_id,
                member.generation_id,
                member.group_instance_id.as_deref(),
            );
            if let Err(code) = valid {
                return vec![code; offsets.len()];
            }
        }
        let (codes, stored) = self.store_offsets(offsets, Some(producer)).await;
        self.pending.entry(producer.0).or_default().extend(stored);
        codes
    }

    /// Writes the offsets whose metadata fits (in `producer`'s transaction when given);
    /// one code per offset, and the offsets written.
    async fn store_offsets(
        &mut self,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
        producer: Option<(i64, i16)>,
    ) -> (Vec<ErrorCode>, Vec<(TopicPartition, CommittedOffset)>) {
        let codes: Vec<ErrorCode> = offsets
            .iter()
            .map(|(_, c)| {
                if c.metadata.len() > OFFSET_METADATA_MAX_BYTES {
                    ErrorCode::OFFSET_METADATA_TOO_LARGE
                } else {
                    ErrorCode::NONE
                }
            })
            .collect();
        let accepted: Vec<&(TopicPartition, CommittedOffset)> = offsets
            .iter()
            .zip(&codes)
            .filter(|(_, code)| code.is_ok())
            .map(|(o, _)| o)
            .collect();
        let entries: Vec<Entry<'_>> = accepted
            .iter()
            .map(|((t, p), c)| Entry::Offset(t, *p, c))
            .collect();
        let written = self
            .store
            .append_as(self.group.group_id(), self.epoch, &entries, producer)
            .await;
        if let Err(code) = written {
            let codes = codes
                .iter()
                .map(|c| if c.is_ok() { code } else { *c })
                .collect();
            return (codes, Vec::new());
        }
        let stored = offsets
            .into_iter()
            .zip(&codes)
            .filter(|(_, c)| c.is_ok())
            .map(|(o, _)| o)
            .collect();
        (codes, stored)
    }

    fn committed(
        &self,
        partitions: Option<Vec<TopicPartition>>,
    ) -> Vec<(TopicPartition, CommittedOffset)> {
        match partitions {
            None => self
                .offsets
                .iter()
                .map(|(tp, c)| (tp.clone(), c.clone()))
                .collect(),
            Some(wanted) => wanted
                .into_iter()
                .filter_map(|tp| self.offsets.get(&tp).map(|c| (tp, c.clone())))
                .collect(),
        }
    }

    /// DeleteGroups: tombstones for every offset and the group, then the task ends.
    async fn delete(&mut self) -> ErrorCode {
        if let Err(code) = self.group.delete() {
            return code;
        }
        let mut entries: Vec<Entry<'_>> = self
            .offsets
            .keys()
            .map(|(t, p)| Entry::OffsetGone(t, *p))
            .collect();
        entries.push(Entry::GroupGone);
        match self
            .store
            .append(self.group.group_id(), self.epoch, &entries)
            .await
        {
            Ok(()) => {
                self.offsets.clear();
                info!(group = %self.group.group_id(), "group deleted");
                ErrorCode::NONE
            }
            Err(code) => code,
        }
    }

    /// OffsetDelete: allowed for partitions of topics no member is subscribed to.
    async fn delete_offsets(&mut self, partitions: Vec<TopicPartition>) -> Vec<ErrorCode> {
        let subscribed = self.subscribed_topics();
        let codes: Vec<ErrorCode> = partitions
            .iter()
            .map(|(t, _)| {
                if subscribed.contains(t) {
                    ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC
                } else {
                    ErrorCode::NONE
                }
            })
            .collect();
        let gone: Vec<&TopicPartition> = partitions
            .iter()
            .zip(&codes)
            .filter(|(tp, c)| c.is_ok() && self.offsets.contains_key(*tp))
            .map(|(tp, _)| tp)
            .collect();
        let entries: Vec<Entry<'_>> = gone.iter().map(|(t, p)| Entry::OffsetGone(t, *p)).collect();
        if let Err(code) = self
            .store
            .append(self.group.group_id(), self.epoch, &entries)
            .await
        {
            return vec![code; partitions.len()];
        }
        for tp in &partitions {
            if !subscribed.contains(&tp.0) {
                self.offsets.remove(tp);
            }
        }
        codes
    }

    /// Topics the members of a `consumer` group subscribe to (from their protocol
    /// metadata); none for other protocol types or an empty group.
    fn subscribed_topics(&self) -> Vec<String> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.group.protocol_type() != Some("consumer") {
            return Vec::new();
        }
        let mut topics = Vec::new();
        for member in self.group.describe().members {
            let mut metadata = member.metadata.clone();
            let version = peek_version(&metadata);
            if version < 0 || bytes::Buf::remaining(&metadata) < 2 {
                continue;
            }
            bytes::Buf::advance(&mut metadata, 2);
            // Kafka decodes subscriptions of any version with the highest layout it knows.
            let version = version.min(3);
            if let Ok(subscription) = ConsumerProtocolSubscription::decode(&mut metadata, version) {
                topics.extend(subscription.topics.iter().map(|t| t.to_string()));
            }
        }
        topics.sort();
        topics.dedup();
        topics
    }

    /// Writes the group's metadata when the machine says a change Kafka persists happened
    /// (a completed rebalance, the group emptying, a static member replaced).
    async fn persist_metadata(&mut self) {
        if !self.group.take_persist_due() {
            return;
        }
        let metadata = metadata_of(self.group.snapshot(), now_ms());
        if let Err(code) = self
            .store
            .append(
                self.group.group_id(),
                self.epoch,
                &[Entry::Group(&metadata)],
            )
            .await
        {
            warn!(group = %self.group.group_id(), error = %code, "writing group metadata");
        }
    }
}

/// The version prefix of embedded protocol metadata (-1 when too short).
fn peek_version(bytes: &Bytes) -> i16 {
    match bytes.get(..2) {
        Some(&[a, b]) => i16::from_be_bytes([a, b]),
        _ => -1,
    }
}

/// Sleeps until `deadline`, forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sends each answer the machine released to its waiting handler.
fn deliver(outputs: Vec<Output<Pending>>) {
    for output in outputs {
        match output {
            Output::Join(Pending::Join(tx), result) => {
                let _ = tx.send(result);
            }
            Output::Sync(Pending::Sync(tx), result) => {
                let _ = tx.send(result);
            }
            // A token always comes back with the kind of answer it was given for.
            Output::Join(Pending::Sync(tx), _) => {
                let _ = tx.send(SyncResult::error(ErrorCode::UNKNOWN_SERVER_ERROR));
            }
            Output::Sync(Pending::Join(tx), _) => {
                let _ = tx.send(JoinResult::error("", ErrorCode::UNKNOWN_SERVER_ERROR));
            }
        }
    }
}

fn group_config(config: &BrokerConfig) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: u64::try_from(config.group_initial_rebalance_delay.as_millis())
            .unwrap_or(u64::MAX),
        min_session_timeout_ms: config.group_min_session_timeout_ms,
        max_session_timeout_ms: config.group_max_session_timeout_ms,
        max_size: config.group_max_size,
    }
}

/// The stored form of a machine snapshot.
fn metadata_of(snapshot: GroupSnapshot, now_ms: i64) -> GroupMetadata {
    GroupMetadata {
        protocol_type: snapshot.protocol_type.unwrap_or_default(),
        generation_id: snapshot.generation_id,
        protocol_name: snapshot.protocol_name,
        leader: snapshot.leader,
        current_state_timestamp_ms: now_ms,
        members: snapshot.members,
    }
}

/// A machine snapshot from the stored form.
fn snapshot_of(metadata: GroupMetadata) -> GroupSnapshot {
    GroupSnapshot {
        protocol_type: Some(metadata.protocol_type).filter(|p| !p.is_empty()),
        generation_id: metadata.generation_id,
        protocol_name: metadata.protocol_name,
        leader: metadata.leader,
        current_state_timestamp_ms: metadata.current_state_timestamp_ms,
        members: metadata.members,
    }
}
