//! Group membership of a subscribed consumer: joining, the leader's assignment, heartbeats
//! and committed offsets.
//!
//! ```text
//!  poll ──▶ before_poll: rejoin needed? ──▶ rebalance (in poll, as the Java client does):
//!    │        auto-commit due? ──▶ commit     eager: commit + on_revoked(all) first
//!    │                                        JoinGroup ─▶ leader: assignor over members'
//!    │                                        subscriptions ─▶ SyncGroup ─▶ assignment
//!    │                                        cooperative: revoke only what moved, then
//!    │                                        join again; new partitions start at their
//!    │                                        committed offsets ─▶ on_assigned(added)
//!    ▼
//!  heartbeat task: Heartbeat every heartbeat.interval.ms; REBALANCE_IN_PROGRESS or a
//!  lost membership marks "rejoin", a poll gap over max.poll.interval.ms leaves the group
//! ```
//!
//! The rebalance runs inside `poll` so the application's own processing never overlaps a
//! revocation: the listener runs between two polls' worth of records, and may commit.
//! While a rebalance waits for the other members, that `poll` waits with it.

pub(crate) mod coordinator;
mod heartbeat;
mod listener;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use listener::{ListenerFuture, RebalanceListener};

use self::coordinator::{Coordinator, COORDINATOR_ERRORS};
use self::listener::NoListener;
use super::assignor::{
    assignor_for, decode_assignment, decode_subscription, encode_assignment, encode_subscription,
    Assignor, MemberSubscription, RebalanceProtocol, Subscription,
};
use super::cursor::Cursor;
use super::fetcher::Shared;
use super::offsets::TopicPartition;
use super::Consumer;
use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::ClientError;

/// Newest versions used: the last before each API's flexible encoding, as librdkafka
/// sends (LeaveGroup: before the v3 batch of members, which this client does not need).
/// Every Kafka since 2.4 serves them (Kafka 4 kept them, KIP-896), while librdkafka's
/// mock cluster, which advertises the newer versions, mishandles them.
const JOIN_GROUP_MAX: i16 = 5;
const SYNC_GROUP_MAX: i16 = 3;
const LEAVE_GROUP_MAX: i16 = 2;
const OFFSET_COMMIT_MAX: i16 = 7;
const OFFSET_FETCH_MAX: i16 = 5;

/// Where the member stands in its group.
#[derive(Default)]
struct MemberState {
    /// Subscribed topics (empty: not subscribed; the group is used for commits only).
    topics: Vec<String>,
    /// A pattern subscription: `topics` are the cluster's topics it matches.
    pattern: Option<regex::Regex>,
    /// Partition counts of the subscribed topics when the assignment was made: a change
    /// (partitions added) calls for a new assignment.
    counts: BTreeMap<String, usize>,
    last_metadata_check: Option<Instant>,
    member_id: String,
    generation_id: i32,
    /// The partitions of the current assignment.
    owned: BTreeSet<TopicPartition>,
    /// A rebalance must run before the next records.
    rejoin: bool,
    /// The membership was lost (removed by the coordinator): the owned partitions may
    /// belong to others already.
    lost: bool,
    /// A join is under way (or was cut off): the generation held may be stale, so the
    /// owned partitions cannot be committed and are lost, not revoked, on close.
    joining: bool,
    last_poll: Option<Instant>,
    last_auto_commit: Option<Instant>,
}

/// A consumer's place in its group, as a transactional producer sends it with offsets
/// (Java's `ConsumerGroupMetadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// `group.id`.
    pub group_id: String,
    /// The generation the member joined (-1 before it has).
    pub generation_id: i32,
    /// The member id the coordinator gave it (empty before it has).
    pub member_id: String,
    /// `group.instance.id`, for static members.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// The metadata of a group this process is not a member of (offsets are then taken
    /// without a generation check).
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// One consumer's membership of its group.
pub(crate) struct GroupMember {
    group_id: String,
    coordinator: Coordinator,
    cluster: Cluster,
    /// The consumer's cursors (positions to commit, partitions to add and remove).
    shared: Arc<Shared>,
    state: Mutex<MemberState>,
    listener: Mutex<Arc<dyn RebalanceListener>>,
    /// Held while a rebalance runs (the heartbeat task stays off the coordinator then).
    rebalancing: tokio::sync::Mutex<()>,
    heartbeat: Mutex<Option<JoinHandle<()>>>,
}

impl GroupMember {
    pub(crate) fn new(shared: Arc<Shared>, group_id: String) -> Self {
        let cluster = shared.cluster.clone();
        GroupMember {
            coordinator: Coordinator::new(cluster.clone(), group_id.clone()),
            group_id,
            cluster,
            shared,
            state: Mutex::new(MemberState {
                generation_id: -1,
                ..MemberState::default()
            }),
            listener: Mutex::new(Arc::new(NoListener)),
            rebalancing: tokio::sync::Mutex::new(()),
            heartbeat: Mutex::new(None),
        }
    }

    /// The member's group id, generation and member id now.
    pub(crate) fn metadata(&self) -> ConsumerGroupMetadata {
        let state = self.lock();
        ConsumerGroupMetadata {
            group_id: self.group_id.clone(),
            generation_id: state.generation_id,
            member_id: state.member_id.clone(),
            group_instance_id: self.cluster.config().group_instance_id.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemberState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn config(&self) -> &ClientConfig {
        self.cluster.config()
    }

    /// Subscribes to `topics` (replacing the previous subscription); the next poll joins.
    pub(crate) fn subscribe(
        &self,
        topics: Vec<String>,
        listener: Option<Arc<dyn RebalanceListener>>,
    ) {
        self.lock().topics = topics;
        self.needs_rejoin();
        if let Some(listener) = listener {
            *self.listener.lock().unwrap_or_else(PoisonError::into_inner) = listener;
        }
    }

    /// Subscribes to every topic whose whole name matches `pattern`, now and as topics are
    /// created or deleted (checked every `metadata.max.age.ms`); internal topics never match.
    /// Whether the member subscribes to topics or a pattern (rather than only committing).
    pub(crate) fn is_subscribed(&self) -> bool {
        let state = self.lock();
        !state.topics.is_empty() || state.pattern.is_some()
    }

    /// Ends the subscription: the partitions are revoked (the listener told), the member
    /// leaves the group, and the consumer holds no partitions.
    pub(crate) async fn unsubscribe(&self, consumer: &Consumer) {
        self.give_up_all(consumer).await;
        self.leave().await;
        let mut state = self.lock();
        state.topics.clear();
        state.pattern = None;
        state.rejoin = false;
        state.counts.clear();
    }

    pub(crate) fn subscribe_pattern(
        &self,
        pattern: regex::Regex,
        listener: Option<Arc<dyn RebalanceListener>>,
    ) {
        {
            let mut state = self.lock();
            state.pattern = Some(pattern);
            state.last_metadata_check = None;
        }
        if let Some(listener) = listener {
            *self.listener.lock().unwrap_or_else(PoisonError::into_inner) = listener;
        }
    }

    /// Every `metadata.max.age.ms` (and at once after a pattern subscription): the topics a
    /// pattern matches, and the partition counts of the subscribed topics; a change to
    /// either calls for a rebalance.
    ///
    /// # Errors
    /// TOPIC_AUTHORIZATION_FAILED naming the subscribed topics the client may not
    /// describe (as the Java consumer's `TopicAuthorizationException`).
    async fn check_metadata(&self) -> Result<(), ClientError> {
        let (pattern, due) = {
            let state = self.lock();
            let age = Duration::from_millis(self.config().metadata_max_age_ms);
            let due = state
                .last_metadata_check
                .is_none_or(|at| at.elapsed() >= age);
            (
                state.pattern.clone(),
                due && (state.pattern.is_some() || !state.topics.is_empty()),
            )
        };
        if !due {
            return Ok(());
        }
        self.lock().last_metadata_check = Some(Instant::now());
        let topics = match &pattern {
            Some(_) => None,
            None => Some(self.lock().topics.clone()),
        };
        let metadata = match self.cluster.refresh_metadata(topics.as_deref()).await {
            Ok(metadata) => metadata,
            Err(e) => {
                debug!(group = %self.group_id, error = %e, "metadata check failed");
                return Ok(());
            }
        };
        let mut state = self.lock();
        let unauthorized: Vec<&str> = state
            .topics
            .iter()
            .filter(|t| {
                metadata
                    .topics
                    .get(*t)
                    .is_some_and(|t| t.error == ErrorCode::TOPIC_AUTHORIZATION_FAILED)
            })
            .map(String::as_str)
            .collect();
        if !unauthorized.is_empty() {
            return Err(ClientError::Broker {
                code: ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                context: format!("not authorized to subscribe to {unauthorized:?}"),
            });
        }
        if let Some(pattern) = &pattern {
            let mut matching: Vec<String> = metadata
                .topics
                .values()
                .filter(|t| !t.is_internal && t.error.is_ok())
                .filter(|t| pattern.is_match(&t.name))
                .map(|t| t.name.clone())
                .collect();
            matching.sort();
            if matching != state.topics {
                info!(group = %self.group_id, topics = ?matching, "pattern subscription changed");
                state.topics = matching;
                state.rejoin = true;
            }
        }
        let counts = partition_counts(&metadata, &state.topics);
        if !state.counts.is_empty() && counts != state.counts {
            debug!(group = %self.group_id, "partitions of subscribed topics changed");
            state.rejoin = true;
        }
        Ok(())
    }

    fn listener(&self) -> Arc<dyn RebalanceListener> {
        self.listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What `poll` does first: rejoin when needed, auto-commit when due.
    pub(crate) async fn before_poll(
        self: &Arc<Self>,
        consumer: &Consumer,
    ) -> Result<(), ClientError> {
        self.check_metadata().await?;
        let (rejoin, commit_due) = {
            let mut state = self.lock();
            state.last_poll = Some(Instant::now());
            let interval = Duration::from_millis(self.config().auto_commit_interval_ms);
            let due = state
                .last_auto_commit
                .is_none_or(|at| at.elapsed() >= interval);
            let subscribed = !state.topics.is_empty() || state.pattern.is_some();
            (state.rejoin && subscribed, due)
        };
        if self.config().enable_auto_commit && commit_due {
            self.lock().last_auto_commit = Some(Instant::now());
            if let Err(e) = self.commit(None).await {
                warn!(group = %self.group_id, error = %e, "auto-commit failed");
            }
        }
        if rejoin {
            self.rebalance(consumer).await?;
        }
        Ok(())
    }

    /// Runs rebalances until the member holds a settled assignment.
    async fn rebalance(self: &Arc<Self>, consumer: &Consumer) -> Result<(), ClientError> {
        let _one = self.rebalancing.lock().await;
        let assignors = self.assignors()?;
        let cooperative = assignors
            .iter()
            .all(|a| a.protocols().contains(&RebalanceProtocol::Cooperative));
        loop {
            self.give_up_before_join(consumer, cooperative).await;
            self.lock().joining = true;
            let joined = self.join(&assignors, cooperative).await?;
            let assignment = match self.sync(&joined, &assignors).await? {
                Some(assignment) => assignment,
                None => continue,
            };
            self.lock().joining = false;
            let again = self
                .take_assignment(consumer, assignment, cooperative)
                .await?;
            self.ensure_heartbeat();
            if !again {
                return Ok(());
            }
        }
    }

    /// The configured assignors, most preferred first.
    fn assignors(&self) -> Result<Vec<Box<dyn Assignor>>, ClientError> {
        self.config()
            .partition_assignment_strategy
            .iter()
            .map(|name| {
                assignor_for(name).ok_or_else(|| ClientError::Config {
                    key: "partition.assignment.strategy".to_owned(),
                    value: name.clone(),
                    reason: "unknown assignor".to_owned(),
                })
            })
            .collect()
    }

    /// Before joining: the eager protocol revokes everything; a lost membership loses
    /// everything (both protocols).
    async fn give_up_before_join(&self, consumer: &Consumer, cooperative: bool) {
        let (owned, lost) = {
            let mut state = self.lock();
            let lost = std::mem::take(&mut state.lost);
            // Cooperative members keep their partitions into the join, unless lost.
            let keep = cooperative && !lost;
            if keep || state.owned.is_empty() {
                return;
            }
            (std::mem::take(&mut state.owned), lost)
        };
        let owned: Vec<TopicPartition> = owned.into_iter().collect();
        if lost {
            self.listener().on_partitions_lost(consumer, &owned).await;
            remove_cursors(&self.shared, &owned);
        } else {
            self.revoke(consumer, &owned).await;
        }
    }

    /// Gives up `partitions`: auto-commits their positions, tells the listener, and stops
    /// fetching them.
    async fn revoke(&self, consumer: &Consumer, partitions: &[TopicPartition]) {
        if self.config().enable_auto_commit {
            if let Err(e) = self.commit(Some(partitions)).await {
                warn!(group = %self.group_id, error = %e, "commit before revoking failed");
            }
        }
        self.listener()
            .on_partitions_revoked(consumer, partitions)
            .await;
        remove_cursors(&self.shared, partitions);
    }

    /// JoinGroup until it succeeds (taking the member id the coordinator hands out).
    async fn join(
        &self,
        assignors: &[Box<dyn Assignor>],
        cooperative: bool,
    ) -> Result<JoinGroupResponse, ClientError> {
        let protocols = self.protocols(assignors, cooperative)?;
        let config = self.config();
        let session = i32::try_from(config.session_timeout_ms).unwrap_or(i32::MAX);
        let rebalance = i32::try_from(config.max_poll_interval_ms).unwrap_or(i32::MAX);
        loop {
            let member_id = self.lock().member_id.clone();
            let request = |version: i16| {
                let r = JoinGroupRequest::default()
                    .with_group_id(GroupId(str_bytes(&self.group_id)))
                    .with_session_timeout_ms(session)
                    .with_member_id(str_bytes(&member_id))
                    .with_protocol_type(str_bytes("consumer"))
                    .with_protocols(protocols.clone());
                let r = if version >= 1 {
                    r.with_rebalance_timeout_ms(rebalance)
                } else {
                    r
                };
                if version >= 5 {
                    r.with_group_instance_id(config.group_instance_id.as_deref().map(str_bytes))
                } else {
                    r
                }
            };
            let response = self.send_retrying(&request, JOIN_GROUP_MAX, true).await?;
            let code = ErrorCode(response.error_code);
            match code {
                ErrorCode::NONE => {
                    let mut state = self.lock();
                    state.member_id = response.member_id.to_string();
                    state.generation_id = response.generation_id;
                    debug!(group = %self.group_id, member = %state.member_id,
                        generation = state.generation_id, leader = %response.leader, "joined");
                    return Ok(response);
                }
                ErrorCode::MEMBER_ID_REQUIRED => {
                    self.lock().member_id = response.member_id.to_string();
                }
                ErrorCode::UNKNOWN_MEMBER_ID => self.lock().member_id.clear(),
                ErrorCode::REBALANCE_IN_PROGRESS => {}
                c if COORDINATOR_ERRORS.contains(&c) => self.backoff_coordinator(c).await,
                c if c.is_retriable() => self.backoff(&self.error(c, "join")).await,
                c => return Err(self.error(c, "join")),
            }
        }
    }

    /// The protocols offered: each assignor's name with this member's subscription.
    fn protocols(
        &self,
        assignors: &[Box<dyn Assignor>],
        cooperative: bool,
    ) -> Result<Vec<JoinGroupRequestProtocol>, ClientError> {
        let state = self.lock();
        let mut subscription = Subscription::new(state.topics.iter().cloned());
        if cooperative {
            subscription.owned_partitions = state.owned.iter().cloned().collect();
            subscription.generation_id = state.generation_id;
        }
        subscription.rack_id = self.config().client_rack.clone();
        let metadata = encode_subscription(&subscription)?;
        Ok(assignors
            .iter()
            .map(|a| {
                JoinGroupRequestProtocol::default()
                    .with_name(str_bytes(a.name()))
                    .with_metadata(metadata.clone())
            })
            .collect())
    }

    /// SyncGroup (the leader computes the assignment first); `None` when the group moved
    /// on and must be joined again.
    async fn sync(
        &self,
        joined: &JoinGroupResponse,
        assignors: &[Box<dyn Assignor>],
    ) -> Result<Option<Vec<TopicPartition>>, ClientError> {
        let protocol = joined
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let assignments = if joined.leader == joined.member_id {
            self.lead(joined, &protocol, assignors).await?
        } else {
            Vec::new()
        };
        let (member_id, generation) = {
            let state = self.lock();
            (state.member_id.clone(), state.generation_id)
        };
        let instance = self.config().group_instance_id.clone();
        let request = |version: i16| {
            let r = SyncGroupRequest::default()
                .with_group_id(GroupId(str_bytes(&self.group_id)))
                .with_generation_id(generation)
                .with_member_id(str_bytes(&member_id))
                .with_assignments(assignments.clone());
            let r = if version >= 3 {
                r.with_group_instance_id(instance.as_deref().map(str_bytes))
            } else {
                r
            };
            if version >= 5 {
                r.with_protocol_type(Some(str_bytes("consumer")))
                    .with_protocol_name(Some(str_bytes(&protocol)))
            } else {
                r
            }
        };
        let response = match self.coordinator.send(request, SYNC_GROUP_MAX, true).await {
            Ok(r) => r,
            Err(e) if e.is_retriable() => {
                self.backoff(&e).await;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match ErrorCode(response.error_code) {
            ErrorCode::NONE => Ok(Some(decode_assignment(&response.assignment)?)),
            ErrorCode::REBALANCE_IN_PROGRESS => Ok(None),
            ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION => {
                let mut state = self.lock();
                state.member_id.clear();
                state.generation_id = -1;
                Ok(None)
            }
            c if COORDINATOR_ERRORS.contains(&c) => {
                self.backoff_coordinator(c).await;
                Ok(None)
            }
            c => Err(self.error(c, "sync")),
        }
    }

    /// The leader's job: the chosen assignor over every member's subscription.
    async fn lead(
        &self,
        joined: &JoinGroupResponse,
        protocol: &str,
        assignors: &[Box<dyn Assignor>],
    ) -> Result<Vec<SyncGroupRequestAssignment>, ClientError> {
        let assignor = assignors
            .iter()
            .find(|a| a.name() == protocol)
            .ok_or_else(|| self.error(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, "assign"))?;
        let mut members = Vec::with_capacity(joined.members.len());
        for m in &joined.members {
            members.push(MemberSubscription {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                subscription: decode_subscription(&m.metadata)?,
            });
        }
        let topics: BTreeSet<String> = members
            .iter()
            .flat_map(|m| m.subscription.topics.iter().cloned())
            .collect();
        let mut partitions = BTreeMap::new();
        for topic in topics {
            match self.cluster.topic(&topic).await {
                Ok(meta) => {
                    partitions.insert(topic, meta.partitions.len() as i32);
                }
                Err(e) => debug!(%topic, error = %e, "subscribed topic left out of the assignment"),
            }
        }
        let assignment = assignor.assign(&partitions, &members);
        info!(group = %self.group_id, protocol, members = members.len(), "assigned partitions as leader");
        assignment
            .into_iter()
            .map(|(member_id, partitions)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(str_bytes(&member_id))
                    .with_assignment(encode_assignment(&partitions, None)?))
            })
            .collect()
    }

    /// Applies an assignment; returns whether another rebalance must follow (the
    /// cooperative protocol revoked partitions that other members wait for).
    async fn take_assignment(
        &self,
        consumer: &Consumer,
        assignment: Vec<TopicPartition>,
        cooperative: bool,
    ) -> Result<bool, ClientError> {
        let new: BTreeSet<TopicPartition> = assignment.into_iter().collect();
        let owned = self.lock().owned.clone();
        let revoked: Vec<TopicPartition> = owned.difference(&new).cloned().collect();
        if cooperative && !revoked.is_empty() {
            self.revoke(consumer, &revoked).await;
        }
        let added: Vec<TopicPartition> = new.difference(&owned).cloned().collect();
        let committed = self.committed(&added).await?;
        add_cursors(&self.shared, &added, &committed);
        {
            let metadata = self.cluster.metadata();
            let mut state = self.lock();
            state.owned = new;
            state.rejoin = cooperative && !revoked.is_empty();
            state.counts = partition_counts(&metadata, &state.topics);
        }
        info!(group = %self.group_id, added = added.len(), revoked = revoked.len(), "assignment");
        self.listener()
            .on_partitions_assigned(consumer, &added)
            .await;
        self.shared.wake.notify_waiters();
        Ok(cooperative && !revoked.is_empty())
    }

    /// The committed offsets of `partitions` (those without one are left out).
    pub(crate) async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            topics.entry(t).or_default().push(*p);
        }
        let topics: Vec<OffsetFetchRequestTopic> = topics
            .into_iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_partition_indexes(ps)
            })
            .collect();
        loop {
            let request = |_| {
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(str_bytes(&self.group_id)))
                    .with_topics(Some(topics.clone()))
            };
            let response = self
                .send_retrying(&request, OFFSET_FETCH_MAX, false)
                .await?;
            let code = ErrorCode(response.error_code);
            if COORDINATOR_ERRORS.contains(&code) {
                self.backoff_coordinator(code).await;
                continue;
            }
            if !code.is_ok() {
                return Err(self.error(code, "fetch committed offsets"));
            }
            let failed = response
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| ErrorCode(p.error_code)))
                .find(|c| !c.is_ok());
            match failed {
                // Offsets of a transaction not yet settled (UNSTABLE_OFFSET_COMMIT): ask again.
                Some(c) if c.is_retriable() => {
                    self.backoff(&self.error(c, "fetch committed offsets"))
                        .await;
                    continue;
                }
                Some(c) => return Err(self.error(c, "fetch committed offsets")),
                None => {}
            }
            let mut found = BTreeMap::new();
            for t in response.topics {
                for p in t.partitions.iter().filter(|p| p.committed_offset >= 0) {
                    found.insert((t.name.to_string(), p.partition_index), p.committed_offset);
                }
            }
            return Ok(found);
        }
    }

    /// Commits the positions of `only` those partitions (all assigned ones when `None`).
    pub(crate) async fn commit(&self, only: Option<&[TopicPartition]>) -> Result<(), ClientError> {
        let positions: Vec<(TopicPartition, i64)> = {
            let state = self.shared.lock();
            state
                .cursors
                .iter()
                .filter(|(tp, _)| only.is_none_or(|o| o.contains(tp)))
                .filter_map(|(tp, c)| c.position.map(|p| (tp.clone(), p)))
                .collect()
        };
        self.commit_offsets(&positions).await
    }

    /// OffsetCommit of `offsets`, as this member (or as a standalone consumer when not
    /// subscribed).
    pub(crate) async fn commit_offsets(
        &self,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<(), ClientError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let (member_id, generation) = {
            let state = self.lock();
            if state.topics.is_empty() && state.pattern.is_none() {
                (String::new(), -1)
            } else {
                (state.member_id.clone(), state.generation_id)
            }
        };
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for ((t, p), offset) in offsets {
            let partition = OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*offset);
            match topics.last_mut() {
                Some(last) if last.name.0.as_str() == t => last.partitions.push(partition),
                _ => topics.push(
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(str_bytes(t)))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let instance = self.config().group_instance_id.clone();
        loop {
            let request = |version: i16| {
                let r = OffsetCommitRequest::default()
                    .with_group_id(GroupId(str_bytes(&self.group_id)))
                    .with_generation_id_or_member_epoch(generation)
                    .with_member_id(str_bytes(&member_id))
                    .with_topics(topics.clone());
                let r = if (2..=4).contains(&version) {
                    r.with_retention_time_ms(-1)
                } else {
                    r
                };
                if version >= 7 {
                    r.with_group_instance_id(instance.as_deref().map(str_bytes))
                } else {
                    r
                }
            };
            let response = self
                .send_retrying(&request, OFFSET_COMMIT_MAX, false)
                .await?;
            let codes = response
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| ErrorCode(p.error_code)));
            let Some(code) = codes.into_iter().find(|c| !c.is_ok()) else {
                return Ok(());
            };
            match code {
                c if COORDINATOR_ERRORS.contains(&c) => self.backoff_coordinator(c).await,
                ErrorCode::REBALANCE_IN_PROGRESS => {
                    self.needs_rejoin();
                    return Err(self.error(code, "commit"));
                }
                ErrorCode::UNKNOWN_MEMBER_ID
                | ErrorCode::ILLEGAL_GENERATION
                | ErrorCode::FENCED_INSTANCE_ID => {
                    self.membership_lost();
                    return Err(self.error(code, "commit"));
                }
                c => return Err(self.error(c, "commit")),
            }
        }
    }

    /// The coordinator no longer knows this member (or its generation): rejoin, and the
    /// owned partitions count as lost.
    fn membership_lost(&self) {
        {
            let mut state = self.lock();
            state.member_id.clear();
            state.generation_id = -1;
            state.lost = !state.owned.is_empty();
        }
        self.needs_rejoin();
    }

    /// Marks a rebalance due and wakes a waiting `poll` to run it.
    fn needs_rejoin(&self) {
        self.lock().rejoin = true;
        self.shared.data.notify_waiters();
    }

    /// Before leaving: the owned partitions are revoked (lost, if the membership already
    /// was or a rebalance was cut off part way), so the listener can commit and clean up
    /// as in a rebalance.
    pub(crate) async fn give_up_all(&self, consumer: &Consumer) {
        let (owned, lost) = {
            let mut state = self.lock();
            let owned: Vec<TopicPartition> = std::mem::take(&mut state.owned).into_iter().collect();
            let joining = std::mem::take(&mut state.joining);
            (owned, std::mem::take(&mut state.lost) || joining)
        };
        if owned.is_empty() {
            return;
        }
        if lost {
            self.listener().on_partitions_lost(consumer, &owned).await;
            remove_cursors(&self.shared, &owned);
        } else {
            self.revoke(consumer, &owned).await;
        }
    }

    /// Leaves the group (dynamic members; a static member keeps its place for
    /// `session.timeout.ms`, as KIP-345 intends) and stops heartbeating.
    pub(crate) async fn leave(&self) {
        if let Some(task) = self
            .heartbeat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        let member_id = std::mem::take(&mut self.lock().member_id);
        if member_id.is_empty() || self.config().group_instance_id.is_some() {
            return;
        }
        self.send_leave(&member_id).await;
    }

    /// LeaveGroup for `member_id`.
    async fn send_leave(&self, member_id: &str) {
        let request = |version: i16| {
            let r = LeaveGroupRequest::default().with_group_id(GroupId(str_bytes(&self.group_id)));
            if version >= 3 {
                r.with_members(vec![
                    MemberIdentity::default().with_member_id(str_bytes(member_id))
                ])
            } else {
                r.with_member_id(str_bytes(member_id))
            }
        };
        match self.coordinator.send(request, LEAVE_GROUP_MAX, false).await {
            Ok(_) => info!(group = %self.group_id, member = %member_id, "left the group"),
            Err(e) => debug!(group = %self.group_id, error = %e, "leaving the group failed"),
        }
    }

    /// Starts the heartbeat task unless it runs.
    fn ensure_heartbeat(self: &Arc<Self>) {
        let mut task = self
            .heartbeat
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        *task = Some(tokio::spawn(heartbeat::run(Arc::downgrade(self))));
    }

    /// Sends a coordinator request, again after a backoff while it fails retriably on the
    /// way (connection lost, timeout); the answer's error codes are the caller's.
    async fn send_retrying<R: kafka_protocol::protocol::Request>(
        &self,
        request: &impl Fn(i16) -> R,
        max: i16,
        long: bool,
    ) -> Result<R::Response, ClientError> {
        loop {
            match self.coordinator.send(request, max, long).await {
                Err(e) if e.is_retriable() => self.backoff(&e).await,
                result => return result,
            }
        }
    }

    async fn backoff(&self, error: &ClientError) {
        debug!(group = %self.group_id, error = %error, "retrying a group request");
        tokio::time::sleep(Duration::from_millis(self.config().retry_backoff_ms)).await;
    }

    async fn backoff_coordinator(&self, code: ErrorCode) {
        self.coordinator.reset().await;
        self.backoff(&self.error(code, "reach the coordinator"))
            .await;
    }

    fn error(&self, code: ErrorCode, what: &str) -> ClientError {
        ClientError::Broker {
            code,
            context: format!("{what} in group {}", self.group_id),
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        if let Some(task) = self
            .heartbeat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// The partition count of each of `topics` the metadata knows.
fn partition_counts(
    metadata: &crate::cluster::ClusterMetadata,
    topics: &[String],
) -> BTreeMap<String, usize> {
    topics
        .iter()
        .filter_map(|t| {
            metadata
                .topics
                .get(t)
                .map(|m| (t.clone(), m.partitions.len()))
        })
        .collect()
}

/// Takes `partitions` out of the consumer's assignment.
fn remove_cursors(shared: &Shared, partitions: &[TopicPartition]) {
    let mut state = shared.lock();
    for tp in partitions {
        state.cursors.remove(tp);
    }
}

/// Adds `partitions` to the consumer's assignment, at their committed offsets where they
/// have one (the others get `auto.offset.reset`).
fn add_cursors(
    shared: &Shared,
    partitions: &[TopicPartition],
    committed: &BTreeMap<TopicPartition, i64>,
) {
    let mut state = shared.lock();
    for tp in partitions {
        let version = state.version();
        let mut cursor = Cursor::new(tp.0.clone(), tp.1, version);
        if let Some(&offset) = committed.get(tp) {
            let version = state.version();
            cursor.seek(offset, version);
        }
        state.cursors.insert(tp.clone(), cursor);
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}
