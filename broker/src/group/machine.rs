//! The classic consumer-group membership state machine (Kafka's `ClassicGroup` and the
//! JoinGroup / SyncGroup / Heartbeat / LeaveGroup rules of its group coordinator).
//!
//! Sans-IO: a [`Group`] is a plain struct. Requests come in with the time `now` (milliseconds
//! on the caller's clock) and an opaque reply token `R`; the calls return the replies that are
//! due ([`Output`]), possibly for other members' parked requests. Nothing here sleeps, reads a
//! clock or draws random numbers: the runtime calls [`Group::tick`] at [`Group::next_deadline`].
//!
//! ```text
//!            first join                 join phase done (all known members rejoined,
//!   Empty ─────────────▶ Preparing ───  or the rebalance timeout passed): generation += 1,
//!     ▲                  Rebalance  │   protocol chosen, every parked JoinGroup answered
//!     │ join phase done     ▲  ▲    ▼
//!     │ with no members     │  │  Completing ── leader's SyncGroup: assignments stored,
//!     └─────────────────────┘  │  Rebalance     parked SyncGroups answered
//!                              │    │               │
//!      join, leave, expiry,    └────┴──── Stable ◀──┘
//!      late SyncGroup              rebalance
//!
//!   Empty ── DeleteGroups ──▶ Dead ◀── shutdown (every parked reply: NOT_COORDINATOR)
//! ```
//!
//! Timers, all kept as deadlines: the join phase (the rebalance timeout, the largest of the
//! members', or `group.initial.rebalance.delay.ms` stretched per new member while a new group
//! forms), the pending sync (members must SyncGroup within the rebalance timeout after the
//! join phase), each member's session (not running while it waits for a join or sync reply)
//! and each member id handed out with `MEMBER_ID_REQUIRED` that has not joined yet.
//!
//! Static members (`group.instance.id`) survive a join phase they miss, as in Kafka; a new
//! instance of one replaces the old member id, which is fenced from then on.

use std::collections::BTreeMap;

use bytes::Bytes;
use strom_protocol::ErrorCode;

/// Broker settings a group runs with.
#[derive(Debug, Clone)]
pub(crate) struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long a new group waits for more members.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`; `None` is unbounded.
    pub max_size: Option<usize>,
}

/// The states of a classic group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    /// No members; offsets may still be committed with generation -1.
    Empty,
    /// Waiting for the members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted or unloaded.
    Dead,
}

impl GroupState {
    /// Kafka's name for the state, as DescribeGroups and ListGroups report it.
    pub fn name(&self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One JoinGroup request.
#[derive(Debug, Clone)]
pub(crate) struct JoinArgs {
    /// Empty for a member joining for the first time.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Session timeout the member asks for.
    pub session_timeout_ms: i32,
    /// Rebalance timeout (the session timeout for JoinGroup v0).
    pub rebalance_timeout_ms: i32,
    /// E.g. `consumer`.
    pub protocol_type: String,
    /// Protocol names with their metadata, most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets its id with `MEMBER_ID_REQUIRED`.
    pub require_known_member_id: bool,
    /// Client-supplied reason (v8+), logged.
    pub reason: Option<String>,
}

/// A member as the leader's JoinGroup response lists it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// A JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinResult {
    /// Error code.
    pub error: ErrorCode,
    /// The new generation, -1 on error.
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// The member's id (the generated one for new members).
    pub member_id: String,
    /// Every member with its metadata; only in the leader's response.
    pub members: Vec<JoinedMember>,
    /// v9+: the leader must not assign (a static leader rejoined a Stable group). Older
    /// versions cannot say it; such a leader assigns and its SyncGroup gets the stored
    /// assignment anyway.
    pub skip_assignment: bool,
}

/// One SyncGroup request.
#[derive(Debug, Clone)]
pub(crate) struct SyncArgs {
    /// Member id.
    pub member_id: String,
    /// Generation the member joined.
    pub generation_id: i32,
    /// `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// v5+: must match the group's when given.
    pub protocol_type: Option<String>,
    /// v5+: must match the group's when given.
    pub protocol_name: Option<String>,
    /// The leader's assignment per member id; empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncResult {
    /// Error code.
    pub error: ErrorCode,
    /// The group's protocol type on success.
    pub protocol_type: Option<String>,
    /// The group's protocol on success.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// A reply that is due, with the token of the request it answers.
#[derive(Debug)]
pub(crate) enum Output<R> {
    /// Answer a JoinGroup.
    Join(R, JoinResult),
    /// Answer a SyncGroup.
    Sync(R, SyncResult),
}

/// A member as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Metadata of the chosen protocol; empty unless Stable (as Kafka).
    pub metadata: Bytes,
    /// Assignment; empty unless Stable (as Kafka).
    pub assignment: Bytes,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupDescription {
    /// Kafka's state name.
    pub state: &'static str,
    /// Protocol type, empty if none.
    pub protocol_type: String,
    /// Chosen protocol; empty unless Stable (as Kafka).
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// What the runtime persists (Kafka's GroupMetadataValue) and restores at start.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupSnapshot {
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Generation.
    pub generation_id: i32,
    /// Chosen protocol.
    pub protocol_name: Option<String>,
    /// Leader's member id.
    pub leader: Option<String>,
    /// Wall time of the last state change; the caller fills it, the machine carries a restored
    /// value until the next state change and says -1 (unknown) otherwise.
    pub current_state_timestamp_ms: i64,
    /// Members.
    pub members: Vec<SnapshotMember>,
}

/// One member of a [`GroupSnapshot`]: the member as `__consumer_offsets` stores it.
pub(crate) use super::schema::GroupMemberMetadata as SnapshotMember;

/// A parked JoinGroup: the reply token and the order it arrived in (the first joiner leads).
struct ParkedJoin<R> {
    /// Reply token.
    reply: R,
    /// Arrival order.
    seq: u64,
}

/// One member.
struct Member<R> {
    /// Member id.
    member_id: String,
    /// `group.instance.id`, if static.
    group_instance_id: Option<String>,
    /// Client id.
    client_id: String,
    /// Client address.
    client_host: String,
    /// Session timeout.
    session_timeout_ms: i32,
    /// Rebalance timeout.
    rebalance_timeout_ms: i32,
    /// Supported protocols, most preferred first.
    protocols: Vec<(String, Bytes)>,
    /// Assignment of the current generation.
    assignment: Bytes,
    /// A JoinGroup waiting for the join phase to end.
    awaiting_join: Option<ParkedJoin<R>>,
    /// A SyncGroup waiting for the leader's assignment.
    awaiting_sync: Option<R>,
    /// Has not sent SyncGroup for this generation yet.
    pending_sync: bool,
    /// Session expiry; only runs while no join or sync reply is parked.
    session_deadline: u64,
}

impl<R> Member<R> {
    /// A member from its first JoinGroup.
    fn from_join(member_id: String, args: JoinArgs, join: ParkedJoin<R>, now: u64) -> Self {
        Member {
            session_deadline: after(now, ms(args.session_timeout_ms)),
            member_id,
            group_instance_id: args.group_instance_id,
            client_id: args.client_id,
            client_host: args.client_host,
            session_timeout_ms: args.session_timeout_ms,
            rebalance_timeout_ms: args.rebalance_timeout_ms,
            protocols: args.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(join),
            awaiting_sync: None,
            pending_sync: false,
        }
    }

    /// A member from a snapshot; its only protocol is the group's.
    fn restored(m: SnapshotMember, protocol: Option<&str>, now: u64) -> Self {
        Member {
            session_deadline: after(now, ms(m.session_timeout_ms)),
            protocols: protocol
                .map(|p| vec![(p.to_string(), m.subscription)])
                .unwrap_or_default(),
            member_id: m.member_id,
            group_instance_id: m.group_instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            assignment: m.assignment,
            awaiting_join: None,
            awaiting_sync: None,
            pending_sync: false,
        }
    }

    /// Metadata for `protocol`, empty if unsupported.
    fn metadata(&self, protocol: Option<&str>) -> Bytes {
        let found = self
            .protocols
            .iter()
            .find(|(name, _)| Some(name.as_str()) == protocol);
        found.map(|(_, meta)| meta.clone()).unwrap_or_default()
    }

    /// Whether the member supports `protocol`.
    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    /// When the session expires, unless a reply is parked.
    fn session_expiry(&self) -> Option<u64> {
        let parked = self.awaiting_join.is_some() || self.awaiting_sync.is_some();
        (!parked).then_some(self.session_deadline)
    }

    /// Restarts the session.
    fn touch(&mut self, now: u64) {
        self.session_deadline = after(now, ms(self.session_timeout_ms));
    }

    /// Takes on a JoinGroup's settings and protocols.
    fn update(&mut self, args: &JoinArgs) {
        self.client_id.clone_from(&args.client_id);
        self.client_host.clone_from(&args.client_host);
        self.session_timeout_ms = args.session_timeout_ms;
        self.rebalance_timeout_ms = args.rebalance_timeout_ms;
        self.protocols.clone_from(&args.protocols);
    }
}

/// The join phase timer.
#[derive(Debug, Clone, Copy)]
struct JoinPhase {
    /// When the join phase ends (or the initial delay is reconsidered).
    deadline: u64,
    /// Set while a new group waits out `group.initial.rebalance.delay.ms`.
    initial: Option<InitialDelay>,
}

/// Kafka's InitialDelayedJoin: the delay restarts when members keep arriving, within the
/// rebalance timeout.
#[derive(Debug, Clone, Copy)]
struct InitialDelay {
    /// The delay that is running.
    delay_ms: u64,
    /// What is left of the rebalance timeout after it.
    remaining_ms: u64,
    /// A member joined during this delay.
    new_member_added: bool,
}

/// Which timer is due next.
enum Timer {
    /// The join phase.
    Join,
    /// The pending sync.
    Sync,
    /// A `MEMBER_ID_REQUIRED` id that never joined.
    Pending(String),
    /// A member's session.
    Session(String),
}

/// One classic group. `R` is the runtime's reply token (e.g. a oneshot sender).
pub(crate) struct Group<R> {
    /// Group id.
    group_id: String,
    /// Settings.
    config: GroupConfig,
    /// State.
    state: GroupState,
    /// Generation; bumped at the end of every join phase.
    generation_id: i32,
    /// Protocol type, set by the first member; kept while Empty.
    protocol_type: Option<String>,
    /// Chosen protocol of the generation.
    protocol_name: Option<String>,
    /// Leader's member id; `Some` whenever there are members.
    leader: Option<String>,
    /// Members in the order they were added.
    members: Vec<Member<R>>,
    /// Ids handed out with `MEMBER_ID_REQUIRED`, with their expiry.
    pending_members: BTreeMap<String, u64>,
    /// Set in PreparingRebalance.
    join_phase: Option<JoinPhase>,
    /// Set while members still owe a SyncGroup.
    sync_deadline: Option<u64>,
    /// Counter behind generated member ids.
    member_id_counter: u64,
    /// Seed of generated member ids; see [`Group::set_member_id_seed`].
    member_id_seed: u64,
    /// Counter ordering parked joins.
    join_seq: u64,
    /// See [`GroupSnapshot::current_state_timestamp_ms`].
    current_state_timestamp_ms: i64,
    /// Something worth persisting changed; see [`Group::take_persist_due`].
    persist_due: bool,
}

impl<R> Group<R> {
    /// A new, Empty group.
    pub fn new(group_id: String, config: GroupConfig) -> Self {
        Group {
            member_id_seed: mix(group_id.bytes().fold(0, |h, b| mix(h ^ u64::from(b)))),
            group_id,
            config,
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending_members: BTreeMap::new(),
            join_phase: None,
            sync_deadline: None,
            member_id_counter: 0,
            join_seq: 0,
            current_state_timestamp_ms: -1,
            persist_due: false,
        }
    }

    /// JoinGroup. Returns the replies due now: this one unless it is parked until the join
    /// phase ends, and others when this join ends the phase.
    pub fn join(&mut self, args: JoinArgs, reply: R, now: u64) -> Vec<Output<R>> {
        if let Err(error) = self.check_join(&args) {
            return self.reject_join(&args.member_id, error, reply, now);
        }
        if args.member_id.is_empty() {
            self.join_new(args, reply, now)
        } else if self.pending_members.contains_key(&args.member_id)
            && args.group_instance_id.is_none()
        {
            self.add_member(args.member_id.clone(), args, reply, now)
        } else {
            self.join_existing(args, reply, now)
        }
    }

    /// SyncGroup. Followers are parked until the leader's SyncGroup in CompletingRebalance.
    pub fn sync(&mut self, args: SyncArgs, reply: R, now: u64) -> Vec<Output<R>> {
        let idx = match self.check_sync(&args) {
            Ok(idx) => idx,
            Err(error) => return vec![Output::Sync(reply, SyncResult::error(error))],
        };
        if self.state == GroupState::Stable {
            self.mark_synced(idx);
            self.members[idx].touch(now);
            return vec![Output::Sync(reply, self.sync_ok(&self.members[idx]))];
        }
        let mut out = Vec::new();
        if let Some(old) = self.members[idx].awaiting_sync.replace(reply) {
            out.push(Output::Sync(
                old,
                SyncResult::error(ErrorCode::REBALANCE_IN_PROGRESS),
            ));
        }
        self.mark_synced(idx);
        if self.leader.as_deref() == Some(args.member_id.as_str()) {
            out.extend(self.apply_assignment(args.assignments, now));
        }
        out
    }

    /// Heartbeat: refreshes the session of a known member of the current generation.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        generation_id: i32,
        group_instance_id: Option<&str>,
        now: u64,
    ) -> ErrorCode {
        if self.state == GroupState::Dead {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        }
        let idx = match self.validate_member(member_id, group_instance_id) {
            Ok(idx) => idx,
            Err(error) => return error,
        };
        if generation_id != self.generation_id {
            return ErrorCode::ILLEGAL_GENERATION;
        }
        let member = &mut self.members[idx];
        member.touch(now);
        match self.state {
            GroupState::PreparingRebalance => ErrorCode::REBALANCE_IN_PROGRESS,
            GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::NONE,
            GroupState::Empty | GroupState::Dead => ErrorCode::UNKNOWN_MEMBER_ID,
        }
    }

    /// One member of a LeaveGroup. An empty `member_id` with a `group_instance_id` removes that
    /// static member (v3+ admin removal). The last member leaving ends a join phase with no
    /// members: the group becomes Empty and the generation is bumped, as in Kafka.
    pub fn leave(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        now: u64,
    ) -> (ErrorCode, Vec<Output<R>>) {
        if self.state == GroupState::Dead {
            return (ErrorCode::COORDINATOR_NOT_AVAILABLE, Vec::new());
        }
        if member_id.is_empty() {
            return match group_instance_id.and_then(|id| self.static_member(id)) {
                Some(idx) => (ErrorCode::NONE, self.remove_and_rebalance(idx, now)),
                None => (ErrorCode::UNKNOWN_MEMBER_ID, Vec::new()),
            };
        }
        if self.pending_members.remove(member_id).is_some() {
            return (ErrorCode::NONE, self.complete_join_if_all_joined(now));
        }
        match self.validate_member(member_id, group_instance_id) {
            Ok(idx) => (ErrorCode::NONE, self.remove_and_rebalance(idx, now)),
            Err(error) => (error, Vec::new()),
        }
    }

    /// Fires every timer due at `now`.
    pub fn tick(&mut self, now: u64) -> Vec<Output<R>> {
        let mut out = Vec::new();
        while let Some((deadline, timer)) = self.next_timer() {
            if deadline > now {
                break;
            }
            out.extend(self.fire(timer, now));
        }
        out
    }

    /// When [`Group::tick`] must next be called; `None` when no timer runs.
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_timer().map(|(deadline, _)| deadline)
    }

    /// OffsetCommit rules (Kafka's `validateOffsetCommit`, non-transactional): generation -1
    /// commits only while Empty; otherwise a known member of the current generation, and not
    /// while CompletingRebalance.
    pub fn validate_commit(
        &self,
        member_id: &str,
        generation_id: i32,
        group_instance_id: Option<&str>,
    ) -> Result<(), ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_member(member_id, group_instance_id)?;
            if generation_id != self.generation_id {
                return Err(ErrorCode::ILLEGAL_GENERATION);
            }
        } else if self.state != GroupState::Empty {
            return Err(ErrorCode::UNKNOWN_MEMBER_ID);
        }
        match self.state {
            GroupState::CompletingRebalance => Err(ErrorCode::REBALANCE_IN_PROGRESS),
            _ => Ok(()),
        }
    }

    /// DescribeGroups.
    pub fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol_name.as_deref().filter(|_| stable);
        let members = self.members.iter().map(|m| MemberDescription {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            metadata: if stable {
                m.metadata(protocol)
            } else {
                Bytes::new()
            },
            assignment: if stable {
                m.assignment.clone()
            } else {
                Bytes::new()
            },
        });
        GroupDescription {
            state: self.state.name(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.unwrap_or_default().to_string(),
            members: members.collect(),
        }
    }

    /// The state.
    #[cfg(test)]
    pub fn state(&self) -> &GroupState {
        &self.state
    }

    /// The generation.
    #[cfg(test)]
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// The protocol type.
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The chosen protocol.
    #[cfg(test)]
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    /// The leader's member id.
    #[cfg(test)]
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// The group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// Number of members (ids awaiting their first join not counted).
    #[cfg(test)]
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Seeds the generated member ids (`{client.id}-{uuid-like}`). Without it they derive from
    /// the group id, a counter and the `now` of the join; a fresh random seed per `Group` built
    /// makes ids from before a restart impossible to hand out again.
    pub fn set_member_id_seed(&mut self, seed: u64) {
        self.member_id_seed = seed;
    }

    /// True once after each change Kafka persists: the leader's SyncGroup made the group
    /// Stable, a join phase left it Empty, a static member was replaced without a rebalance.
    pub fn take_persist_due(&mut self) -> bool {
        std::mem::take(&mut self.persist_due)
    }

    /// DeleteGroups: only an Empty (or already Dead) group becomes Dead.
    pub fn delete(&mut self) -> Result<(), ErrorCode> {
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                self.pending_members.clear();
                self.transition(GroupState::Dead);
                Ok(())
            }
            _ => Err(ErrorCode::NON_EMPTY_GROUP),
        }
    }

    /// The coordinator stops: every parked reply gets NOT_COORDINATOR and the group is Dead.
    pub fn shutdown(&mut self) -> Vec<Output<R>> {
        let mut out = Vec::new();
        for member in &mut self.members {
            if let Some(join) = member.awaiting_join.take() {
                let result = JoinResult::error(&member.member_id, ErrorCode::NOT_COORDINATOR);
                out.push(Output::Join(join.reply, result));
            }
            if let Some(reply) = member.awaiting_sync.take() {
                out.push(Output::Sync(
                    reply,
                    SyncResult::error(ErrorCode::NOT_COORDINATOR),
                ));
            }
        }
        self.pending_members.clear();
        self.transition(GroupState::Dead);
        out
    }

    /// What to persist.
    pub fn snapshot(&self) -> GroupSnapshot {
        let protocol = self.protocol_name.as_deref();
        let members = self.members.iter().map(|m| SnapshotMember {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            session_timeout_ms: m.session_timeout_ms,
            subscription: m.metadata(protocol),
            assignment: m.assignment.clone(),
        });
        GroupSnapshot {
            protocol_type: self.protocol_type.clone(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: self.current_state_timestamp_ms,
            members: members.collect(),
        }
    }

    /// A group from its snapshot: Stable with every session restarted at `now` when it has
    /// members (those really gone expire and trigger a rebalance), else Empty with the
    /// generation kept.
    pub fn restore(
        group_id: String,
        snapshot: GroupSnapshot,
        config: GroupConfig,
        now: u64,
    ) -> Self {
        let mut group = Group::new(group_id, config);
        let protocol = snapshot.protocol_name.as_deref();
        let members = snapshot.members.into_iter();
        group.members = members
            .map(|m| Member::restored(m, protocol, now))
            .collect();
        group.generation_id = snapshot.generation_id;
        group.protocol_type = snapshot.protocol_type;
        group.current_state_timestamp_ms = snapshot.current_state_timestamp_ms;
        if group.members.is_empty() {
            return group;
        }
        group.state = GroupState::Stable;
        group.protocol_name = snapshot.protocol_name;
        let leader = snapshot
            .leader
            .filter(|id| group.member_index(id).is_some());
        group.leader = leader.or_else(|| group.members.first().map(|m| m.member_id.clone()));
        group
    }

    // ---- JoinGroup ----

    /// The checks every JoinGroup passes first, in Kafka's order.
    fn check_join(&self, args: &JoinArgs) -> Result<(), ErrorCode> {
        let session = args.session_timeout_ms;
        if self.state == GroupState::Dead {
            Err(ErrorCode::COORDINATOR_NOT_AVAILABLE)
        } else if session < self.config.min_session_timeout_ms
            || session > self.config.max_session_timeout_ms
        {
            Err(ErrorCode::INVALID_SESSION_TIMEOUT)
        } else if !self.accepts_joining_member(&args.member_id) {
            Err(ErrorCode::GROUP_MAX_SIZE_REACHED)
        } else if !self.supports_protocols(args) {
            Err(ErrorCode::INCONSISTENT_GROUP_PROTOCOL)
        } else {
            Ok(())
        }
    }

    /// Answers a rejected JoinGroup; a known member refused for size is removed (Kafka).
    fn reject_join(
        &mut self,
        member_id: &str,
        error: ErrorCode,
        reply: R,
        now: u64,
    ) -> Vec<Output<R>> {
        let mut out = Vec::new();
        let mut answer_id = member_id;
        if error == ErrorCode::GROUP_MAX_SIZE_REACHED {
            answer_id = "";
            if let Some(idx) = self.member_index(member_id) {
                out.extend(self.remove_and_rebalance(idx, now));
            }
        }
        out.push(Output::Join(reply, JoinResult::error(answer_id, error)));
        out
    }

    /// Kafka's `acceptJoiningMember`: while rebalancing, count the members already rejoined.
    fn accepts_joining_member(&self, member_id: &str) -> bool {
        let Some(max) = self.config.max_size else {
            return true;
        };
        let known = self.member_index(member_id).map(|idx| &self.members[idx]);
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                known.is_some_and(|m| m.awaiting_join.is_some()) || self.awaiting_join_count() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                known.is_some() || self.members.len() < max
            }
        }
    }

    /// Protocol type and at least one protocol every other member supports.
    fn supports_protocols(&self, args: &JoinArgs) -> bool {
        if args.protocol_type.is_empty() || args.protocols.is_empty() {
            return false;
        }
        if self.state == GroupState::Empty {
            return true;
        }
        if self.protocol_type.as_deref() != Some(args.protocol_type.as_str()) {
            return false;
        }
        let others: Vec<&Member<R>> = self
            .members
            .iter()
            .filter(|m| m.member_id != args.member_id)
            .collect();
        args.protocols
            .iter()
            .any(|(name, _)| others.iter().all(|m| m.supports(name)))
    }

    /// A JoinGroup without a member id.
    fn join_new(&mut self, args: JoinArgs, reply: R, now: u64) -> Vec<Output<R>> {
        let new_id = self.generate_member_id(&args, now);
        if let Some(instance) = args.group_instance_id.as_deref() {
            return match self.static_member(instance) {
                Some(idx) => self.replace_static(idx, new_id, args, reply, now),
                None => self.add_member(new_id, args, reply, now),
            };
        }
        if args.require_known_member_id {
            let deadline = after(now, ms(args.session_timeout_ms));
            self.pending_members.insert(new_id.clone(), deadline);
            let result = JoinResult::error(&new_id, ErrorCode::MEMBER_ID_REQUIRED);
            return vec![Output::Join(reply, result)];
        }
        self.add_member(new_id, args, reply, now)
    }

    /// A JoinGroup from a known member id (Kafka's `classicGroupJoinExistingMember`).
    fn join_existing(&mut self, args: JoinArgs, reply: R, now: u64) -> Vec<Output<R>> {
        let instance = args.group_instance_id.as_deref();
        let idx = match self.validate_member(&args.member_id, instance) {
            Ok(idx) => idx,
            Err(error) => {
                return vec![Output::Join(
                    reply,
                    JoinResult::error(&args.member_id, error),
                )]
            }
        };
        let unchanged = self.members[idx].protocols == args.protocols;
        let is_leader = self.leader.as_deref() == Some(args.member_id.as_str());
        let result = match self.state {
            // Same metadata: the member missed its answer; repeat it (Kafka).
            GroupState::CompletingRebalance if unchanged => {
                self.current_join_result(&args.member_id, is_leader)
            }
            // A follower with nothing new needs no rebalance; a leader's join forces one.
            GroupState::Stable if unchanged && !is_leader => {
                self.current_join_result(&args.member_id, false)
            }
            GroupState::Empty | GroupState::Dead => {
                JoinResult::error(&args.member_id, ErrorCode::UNKNOWN_MEMBER_ID)
            }
            _ => return self.update_member(idx, &args, reply, now),
        };
        vec![Output::Join(reply, result)]
    }

    /// Adds a member whose JoinGroup is parked, then rebalances or ends the join phase.
    fn add_member(
        &mut self,
        member_id: String,
        args: JoinArgs,
        reply: R,
        now: u64,
    ) -> Vec<Output<R>> {
        if let Some(initial) = self.join_phase.as_mut().and_then(|p| p.initial.as_mut()) {
            initial.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(args.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        self.pending_members.remove(&member_id);
        tracing::debug!(member = %member_id, reason = ?args.reason, "member joined");
        let join = self.park(reply);
        self.members
            .push(Member::from_join(member_id, args, join, now));
        self.rebalance_or_complete_join(now, "member joined")
    }

    /// A known member's JoinGroup that (re)starts or joins the rebalance.
    fn update_member(&mut self, idx: usize, args: &JoinArgs, reply: R, now: u64) -> Vec<Output<R>> {
        let join = self.park(reply);
        let member = &mut self.members[idx];
        member.update(args);
        let mut out = Vec::new();
        if let Some(old) = member.awaiting_join.replace(join) {
            let result = JoinResult::error(&member.member_id, ErrorCode::REBALANCE_IN_PROGRESS);
            out.push(Output::Join(old.reply, result));
        }
        tracing::debug!(member = %args.member_id, reason = ?args.reason, "member rejoined");
        out.extend(self.rebalance_or_complete_join(now, "member rejoined"));
        out
    }

    /// A new instance of a static member takes over its entry under a new member id; the old id
    /// is fenced. In Stable with the same metadata the group carries on without a rebalance.
    fn replace_static(
        &mut self,
        idx: usize,
        new_id: String,
        args: JoinArgs,
        reply: R,
        now: u64,
    ) -> Vec<Output<R>> {
        let protocol = self.protocol_name.clone();
        let old_meta = self.members[idx].metadata(protocol.as_deref());
        let mut out = self.fence(idx);
        let member = &mut self.members[idx];
        let old_id = std::mem::replace(&mut member.member_id, new_id.clone());
        member.update(&args);
        member.touch(now);
        let same_meta = member.metadata(protocol.as_deref()) == old_meta;
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        if self.state == GroupState::Stable && same_meta && self.select_protocol() == protocol {
            self.persist_due = true;
            let is_leader = self.leader.as_deref() == Some(new_id.as_str());
            let mut result = self.current_join_result(&new_id, is_leader);
            result.skip_assignment = is_leader;
            out.push(Output::Join(reply, result));
            return out;
        }
        let join = self.park(reply);
        self.members[idx].awaiting_join = Some(join);
        out.extend(self.rebalance_or_complete_join(now, "static member rejoined"));
        out
    }

    /// Answers the parked requests of a replaced static member with FENCED_INSTANCE_ID.
    fn fence(&mut self, idx: usize) -> Vec<Output<R>> {
        let member = &mut self.members[idx];
        let mut out = Vec::new();
        if let Some(join) = member.awaiting_join.take() {
            let result = JoinResult::error(&member.member_id, ErrorCode::FENCED_INSTANCE_ID);
            out.push(Output::Join(join.reply, result));
        }
        if let Some(reply) = member.awaiting_sync.take() {
            out.push(Output::Sync(
                reply,
                SyncResult::error(ErrorCode::FENCED_INSTANCE_ID),
            ));
        }
        out
    }

    /// The current generation as a JoinGroup answer, without a rebalance.
    fn current_join_result(&self, member_id: &str, with_members: bool) -> JoinResult {
        JoinResult {
            error: ErrorCode::NONE,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if with_members {
                self.joined_members()
            } else {
                Vec::new()
            },
            skip_assignment: false,
        }
    }

    /// Every member with its metadata for the chosen protocol.
    fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref();
        let members = self.members.iter().map(|m| JoinedMember {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            metadata: m.metadata(protocol),
        });
        members.collect()
    }

    // ---- Rebalance ----

    /// Starts a rebalance from Empty / Stable / CompletingRebalance, or tries to end the join
    /// phase that is running.
    fn rebalance_or_complete_join(&mut self, now: u64, reason: &str) -> Vec<Output<R>> {
        match self.state {
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, reason)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Dead => Vec::new(),
        }
    }

    /// Enters PreparingRebalance: parked syncs are told to rejoin, the join phase timer starts
    /// (the initial delay for a new group), and the phase ends at once if everyone has joined.
    fn prepare_rebalance(&mut self, now: u64, reason: &str) -> Vec<Output<R>> {
        let mut out = Vec::new();
        if self.state == GroupState::CompletingRebalance {
            out = self.reset_assignments(now);
        }
        self.members.iter_mut().for_each(|m| m.pending_sync = false);
        self.sync_deadline = None;
        let delay_ms = self.config.initial_rebalance_delay_ms;
        let initial = self.state == GroupState::Empty && delay_ms > 0;
        self.transition(GroupState::PreparingRebalance);
        tracing::info!(
            generation = self.generation_id,
            reason,
            "preparing rebalance"
        );
        if initial {
            let remaining_ms = self.rebalance_timeout_ms().saturating_sub(delay_ms);
            let delay = InitialDelay {
                delay_ms,
                remaining_ms,
                new_member_added: false,
            };
            self.join_phase = Some(JoinPhase {
                deadline: after(now, delay_ms),
                initial: Some(delay),
            });
        } else if self.all_joined() {
            out.extend(self.complete_join(now));
        } else {
            self.schedule_join(now);
        }
        out
    }

    /// Ends the join phase if every known member has rejoined (not during the initial delay).
    fn maybe_complete_join(&mut self, now: u64) -> Vec<Output<R>> {
        let initial = self.join_phase.is_some_and(|p| p.initial.is_some());
        if self.state == GroupState::PreparingRebalance && !initial && self.all_joined() {
            self.complete_join(now)
        } else {
            Vec::new()
        }
    }

    /// Ends the join phase: dynamic members that did not rejoin are dropped, the generation
    /// bumped, a protocol chosen and every parked JoinGroup answered.
    fn complete_join(&mut self, now: u64) -> Vec<Output<R>> {
        self.join_phase = None;
        let mut out = Vec::new();
        while let Some(idx) = self
            .members
            .iter()
            .position(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
        {
            out.extend(self.remove_member(idx));
        }
        if !self.members.is_empty() && !self.elect_joined_leader() {
            // Only static members that did not rejoin: wait for them (or their sessions).
            self.schedule_join(now);
            return out;
        }
        self.generation_id = self.generation_id.saturating_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty);
            self.persist_due = true;
            return out;
        }
        self.protocol_name = self.select_protocol();
        self.transition(GroupState::CompletingRebalance);
        let members = self.members.len();
        tracing::info!(
            generation = self.generation_id,
            members,
            "join phase complete"
        );
        out.extend(self.answer_joins(now));
        self.sync_deadline = Some(after(now, self.rebalance_timeout_ms()));
        out
    }

    /// Answers every parked JoinGroup with the new generation; everyone now owes a SyncGroup.
    fn answer_joins(&mut self, now: u64) -> Vec<Output<R>> {
        let mut parked = Vec::new();
        for member in &mut self.members {
            member.touch(now);
            member.pending_sync = true;
            if let Some(join) = member.awaiting_join.take() {
                parked.push((join.reply, member.member_id.clone()));
            }
        }
        let leader = self.leader.clone().unwrap_or_default();
        let answer = |(reply, id): (R, String)| {
            Output::Join(reply, self.current_join_result(&id, id == leader))
        };
        parked.into_iter().map(answer).collect()
    }

    /// Keeps the leader if it rejoined, else the first member that did; false if none did.
    fn elect_joined_leader(&mut self) -> bool {
        let leader = self.leader.as_deref().and_then(|id| self.member_index(id));
        if leader.is_some_and(|idx| self.members[idx].awaiting_join.is_some()) {
            return true;
        }
        let joined = self
            .members
            .iter()
            .filter_map(|m| m.awaiting_join.as_ref().map(|j| (j.seq, m)));
        let first = joined
            .min_by_key(|(seq, _)| *seq)
            .map(|(_, m)| m.member_id.clone());
        let elected = first.is_some();
        if elected {
            self.leader = first;
        }
        elected
    }

    /// Kafka's vote: each member names its most preferred protocol all members support; most
    /// votes wins, ties go to the smallest name.
    fn select_protocol(&self) -> Option<String> {
        let all_support = |name: &str| self.members.iter().all(|m| m.supports(name));
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in &self.members {
            if let Some((name, _)) = member.protocols.iter().find(|(name, _)| all_support(name)) {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let best = votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)));
        best.map(|(name, _)| name.to_string())
    }

    // ---- SyncGroup ----

    /// The checks of a SyncGroup; the member's index when it may proceed.
    fn check_sync(&self, args: &SyncArgs) -> Result<usize, ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        }
        let idx = self.validate_member(&args.member_id, args.group_instance_id.as_deref())?;
        if args.generation_id != self.generation_id {
            return Err(ErrorCode::ILLEGAL_GENERATION);
        }
        if inconsistent(&args.protocol_type, &self.protocol_type)
            || inconsistent(&args.protocol_name, &self.protocol_name)
        {
            return Err(ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Err(ErrorCode::UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => Err(ErrorCode::REBALANCE_IN_PROGRESS),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(idx),
        }
    }

    /// The member has sent its SyncGroup; the sync timer stops once nobody owes one.
    fn mark_synced(&mut self, idx: usize) {
        self.members[idx].pending_sync = false;
        if self.members.iter().all(|m| !m.pending_sync) {
            self.sync_deadline = None;
        }
    }

    /// Stores the leader's assignment (missing members get an empty one), becomes Stable and
    /// answers the parked SyncGroups.
    fn apply_assignment(&mut self, assignments: Vec<(String, Bytes)>, now: u64) -> Vec<Output<R>> {
        let mut by_member: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        for member in &mut self.members {
            member.assignment = by_member.remove(&member.member_id).unwrap_or_default();
        }
        self.transition(GroupState::Stable);
        self.persist_due = true;
        tracing::info!(generation = self.generation_id, "group stable");
        let mut parked = Vec::new();
        for (idx, member) in self.members.iter_mut().enumerate() {
            if let Some(reply) = member.awaiting_sync.take() {
                member.touch(now);
                parked.push((reply, idx));
            }
        }
        let answer =
            |(reply, idx): (R, usize)| Output::Sync(reply, self.sync_ok(&self.members[idx]));
        parked.into_iter().map(answer).collect()
    }

    /// Leaving CompletingRebalance early: assignments dropped, parked syncs told to rejoin.
    fn reset_assignments(&mut self, now: u64) -> Vec<Output<R>> {
        let mut out = Vec::new();
        for member in &mut self.members {
            member.assignment = Bytes::new();
            if let Some(reply) = member.awaiting_sync.take() {
                member.touch(now);
                out.push(Output::Sync(
                    reply,
                    SyncResult::error(ErrorCode::REBALANCE_IN_PROGRESS),
                ));
            }
        }
        out
    }

    /// A successful SyncGroup answer for `member`.
    fn sync_ok(&self, member: &Member<R>) -> SyncResult {
        SyncResult {
            error: ErrorCode::NONE,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: member.assignment.clone(),
        }
    }

    // ---- Removal and timers ----

    /// Removes a member, answering its parked requests with UNKNOWN_MEMBER_ID; the leader
    /// passes to the oldest remaining member.
    fn remove_member(&mut self, idx: usize) -> Vec<Output<R>> {
        let member = self.members.remove(idx);
        let mut out = Vec::new();
        if let Some(join) = member.awaiting_join {
            out.push(Output::Join(
                join.reply,
                JoinResult::error("", ErrorCode::UNKNOWN_MEMBER_ID),
            ));
        }
        if let Some(reply) = member.awaiting_sync {
            out.push(Output::Sync(
                reply,
                SyncResult::error(ErrorCode::UNKNOWN_MEMBER_ID),
            ));
        }
        if self.leader.as_deref() == Some(member.member_id.as_str()) {
            self.leader = self.members.first().map(|m| m.member_id.clone());
        }
        tracing::debug!(member = %member.member_id, "member removed");
        out
    }

    /// Removes a member (leave, expiry, size limit) and reacts as Kafka does.
    fn remove_and_rebalance(&mut self, idx: usize, now: u64) -> Vec<Output<R>> {
        let mut out = self.remove_member(idx);
        out.extend(self.after_removal(now));
        out
    }

    /// After a removal: a settled group rebalances; a join phase may now be complete.
    fn after_removal(&mut self, now: u64) -> Vec<Output<R>> {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, "member removed")
            }
            _ => self.complete_join_if_all_joined(now),
        }
    }

    /// Ends the join phase if nobody is missing any more (after a removal, even during the
    /// initial delay, as Kafka does).
    fn complete_join_if_all_joined(&mut self, now: u64) -> Vec<Output<R>> {
        if self.state == GroupState::PreparingRebalance && self.all_joined() {
            self.complete_join(now)
        } else {
            Vec::new()
        }
    }

    /// The earliest timer, if any.
    fn next_timer(&self) -> Option<(u64, Timer)> {
        if self.state == GroupState::Dead {
            return None;
        }
        let join = self.join_phase.map(|p| (p.deadline, Timer::Join));
        let sync = self.sync_deadline.map(|d| (d, Timer::Sync));
        let pending = self.pending_members.iter().min_by_key(|(_, d)| **d);
        let pending = pending.map(|(id, d)| (*d, Timer::Pending(id.clone())));
        let sessions = self
            .members
            .iter()
            .filter_map(|m| m.session_expiry().map(|d| (d, m)));
        let session = sessions.min_by_key(|(d, _)| *d);
        let session = session.map(|(d, m)| (d, Timer::Session(m.member_id.clone())));
        [join, sync, pending, session]
            .into_iter()
            .flatten()
            .min_by_key(|(d, _)| *d)
    }

    /// Fires one due timer; each either clears itself or moves past `now`.
    fn fire(&mut self, timer: Timer, now: u64) -> Vec<Output<R>> {
        match timer {
            Timer::Join => self.on_join_deadline(now),
            Timer::Sync => self.on_sync_deadline(now),
            Timer::Pending(id) => {
                self.pending_members.remove(&id);
                self.complete_join_if_all_joined(now)
            }
            Timer::Session(id) => match self.member_index(&id) {
                Some(idx) => self.remove_and_rebalance(idx, now),
                None => Vec::new(),
            },
        }
    }

    /// The join phase timer: restart the initial delay if members keep coming, else end it.
    fn on_join_deadline(&mut self, now: u64) -> Vec<Output<R>> {
        let initial = self.join_phase.take().and_then(|p| p.initial);
        if let Some(delay) = initial.filter(|d| d.new_member_added && d.remaining_ms > 0) {
            let delay_ms = self
                .config
                .initial_rebalance_delay_ms
                .min(delay.remaining_ms);
            let remaining_ms = delay.remaining_ms.saturating_sub(delay.delay_ms);
            let initial = InitialDelay {
                delay_ms,
                remaining_ms,
                new_member_added: false,
            };
            self.join_phase = Some(JoinPhase {
                deadline: after(now, delay_ms),
                initial: Some(initial),
            });
            return Vec::new();
        }
        self.complete_join(now)
    }

    /// Kafka's pending-sync expiry: members that never sent SyncGroup are dropped and the
    /// group rebalances.
    fn on_sync_deadline(&mut self, now: u64) -> Vec<Output<R>> {
        self.sync_deadline = None;
        let settled = matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        );
        if !settled || self.members.iter().all(|m| !m.pending_sync) {
            return Vec::new();
        }
        let mut out = Vec::new();
        while let Some(idx) = self.members.iter().position(|m| m.pending_sync) {
            out.extend(self.remove_member(idx));
        }
        out.extend(self.prepare_rebalance(now, "members did not sync in time"));
        out
    }

    /// Restarts the join phase timer for a full rebalance timeout.
    fn schedule_join(&mut self, now: u64) {
        let deadline = after(now, self.rebalance_timeout_ms());
        self.join_phase = Some(JoinPhase {
            deadline,
            initial: None,
        });
    }

    // ---- Helpers ----

    /// Changes state; the machine does not know the wall time of the change.
    fn transition(&mut self, state: GroupState) {
        self.state = state;
        self.current_state_timestamp_ms = -1;
        if state != GroupState::PreparingRebalance {
            self.join_phase = None;
        }
        if state == GroupState::Dead {
            self.sync_deadline = None;
        }
    }

    /// Kafka's `validateMember`: a static member's instance id must map to this member id.
    fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<usize, ErrorCode> {
        if let Some(instance) = group_instance_id {
            let idx = self
                .static_member(instance)
                .ok_or(ErrorCode::UNKNOWN_MEMBER_ID)?;
            if self.members[idx].member_id != member_id {
                return Err(ErrorCode::FENCED_INSTANCE_ID);
            }
            return Ok(idx);
        }
        self.member_index(member_id)
            .ok_or(ErrorCode::UNKNOWN_MEMBER_ID)
    }

    /// Index of a member.
    fn member_index(&self, member_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.member_id == member_id)
    }

    /// Index of the static member with this instance id.
    fn static_member(&self, instance: &str) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.group_instance_id.as_deref() == Some(instance))
    }

    /// Whether every member has a parked JoinGroup and no handed-out id is still to join.
    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.iter().all(|m| m.awaiting_join.is_some())
    }

    /// Members with a parked JoinGroup.
    fn awaiting_join_count(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    /// The group's rebalance timeout: the largest of the members'.
    fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .iter()
            .map(|m| ms(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Parks a JoinGroup reply, numbered in arrival order.
    fn park(&mut self, reply: R) -> ParkedJoin<R> {
        self.join_seq += 1;
        ParkedJoin {
            reply,
            seq: self.join_seq,
        }
    }

    /// `{group.instance.id or client.id}-{uuid-like}`, unique within the group.
    fn generate_member_id(&mut self, args: &JoinArgs, now: u64) -> String {
        let prefix = args.group_instance_id.as_deref().unwrap_or(&args.client_id);
        loop {
            self.member_id_counter += 1;
            let uuid = uuid_like(self.member_id_seed, self.member_id_counter, now);
            let id = format!("{prefix}-{uuid}");
            if self.member_index(&id).is_none() && !self.pending_members.contains_key(&id) {
                return id;
            }
        }
    }
}

impl JoinResult {
    /// An error answer.
    pub(crate) fn error(member_id: &str, error: ErrorCode) -> Self {
        JoinResult {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

impl SyncResult {
    /// An error answer.
    pub(crate) fn error(error: ErrorCode) -> Self {
        SyncResult {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A SyncGroup field that is given and differs from the group's.
fn inconsistent(requested: &Option<String>, group: &Option<String>) -> bool {
    matches!((requested, group), (Some(r), Some(g)) if r != g)
}

/// A deadline `duration_ms` after `now`, always later than `now` so timers make progress.
fn after(now: u64, duration_ms: u64) -> u64 {
    now.saturating_add(duration_ms.max(1))
}

/// A protocol timeout as milliseconds; negative ones count as zero.
fn ms(timeout_ms: i32) -> u64 {
    u64::try_from(timeout_ms).unwrap_or(0)
}

/// A UUID-shaped string: its first half is a bijection of `counter` for a given `seed` (unique
/// within a run), its second half also mixes in `now` (different across runs).
fn uuid_like(seed: u64, counter: u64, now: u64) -> String {
    let hi = mix(seed ^ mix(counter));
    let lo = mix(hi ^ mix(now));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// The splitmix64 finalizer, a bijection on `u64`.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
