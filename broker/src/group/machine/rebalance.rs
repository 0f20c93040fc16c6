//! Rebalances (the join phase, its completion, the leader's assignment), SyncGroup,
//! member removal and the timers.

use super::*;

impl<R> Group<R> {
    // ---- Rebalance ----

    /// Starts a rebalance from Empty / Stable / CompletingRebalance, or tries to end the join
    /// phase that is running.
    pub(super) fn rebalance_or_complete_join(&mut self, now: u64, reason: &str) -> Vec<Output<R>> {
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
    pub(super) fn prepare_rebalance(&mut self, now: u64, reason: &str) -> Vec<Output<R>> {
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
    pub(super) fn maybe_complete_join(&mut self, now: u64) -> Vec<Output<R>> {
        let initial = self.join_phase.is_some_and(|p| p.initial.is_some());
        if self.state == GroupState::PreparingRebalance && !initial && self.all_joined() {
            self.complete_join(now)
        } else {
            Vec::new()
        }
    }

    /// Ends the join phase: dynamic members that did not rejoin are dropped, the generation
    /// bumped, a protocol chosen and every parked JoinGroup answered.
    pub(super) fn complete_join(&mut self, now: u64) -> Vec<Output<R>> {
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
    pub(super) fn answer_joins(&mut self, now: u64) -> Vec<Output<R>> {
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
    pub(super) fn elect_joined_leader(&mut self) -> bool {
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
    pub(super) fn select_protocol(&self) -> Option<String> {
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
    pub(super) fn check_sync(&self, args: &SyncArgs) -> Result<usize, ErrorCode> {
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
    pub(super) fn mark_synced(&mut self, idx: usize) {
        self.members[idx].pending_sync = false;
        if self.members.iter().all(|m| !m.pending_sync) {
            self.sync_deadline = None;
        }
    }

    /// Stores the leader's assignment (missing members get an empty one), becomes Stable and
    /// answers the parked SyncGroups.
    pub(super) fn apply_assignment(
        &mut self,
        assignments: Vec<(String, Bytes)>,
        now: u64,
    ) -> Vec<Output<R>> {
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
    pub(super) fn reset_assignments(&mut self, now: u64) -> Vec<Output<R>> {
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
    pub(super) fn sync_ok(&self, member: &Member<R>) -> SyncResult {
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
    pub(super) fn remove_member(&mut self, idx: usize) -> Vec<Output<R>> {
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
    pub(super) fn remove_and_rebalance(&mut self, idx: usize, now: u64) -> Vec<Output<R>> {
        let mut out = self.remove_member(idx);
        out.extend(self.after_removal(now));
        out
    }

    /// After a removal: a settled group rebalances; a join phase may now be complete.
    pub(super) fn after_removal(&mut self, now: u64) -> Vec<Output<R>> {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, "member removed")
            }
            _ => self.complete_join_if_all_joined(now),
        }
    }

    /// Ends the join phase if nobody is missing any more (after a removal, even during the
    /// initial delay, as Kafka does).
    pub(super) fn complete_join_if_all_joined(&mut self, now: u64) -> Vec<Output<R>> {
        if self.state == GroupState::PreparingRebalance && self.all_joined() {
            self.complete_join(now)
        } else {
            Vec::new()
        }
    }

    /// The earliest timer, if any.
    pub(super) fn next_timer(&self) -> Option<(u64, Timer)> {
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
    pub(super) fn fire(&mut self, timer: Timer, now: u64) -> Vec<Output<R>> {
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
    pub(super) fn on_join_deadline(&mut self, now: u64) -> Vec<Output<R>> {
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
    pub(super) fn on_sync_deadline(&mut self, now: u64) -> Vec<Output<R>> {
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
    pub(super) fn schedule_join(&mut self, now: u64) {
        let deadline = after(now, self.rebalance_timeout_ms());
        self.join_phase = Some(JoinPhase {
            deadline,
            initial: None,
        });
    }
}
