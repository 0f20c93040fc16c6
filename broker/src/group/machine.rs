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

mod join;
mod rebalance;
mod types;

pub(crate) use types::*;

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
