//! JoinGroup: checks, new and returning members, static members replacing themselves.

use super::*;

impl<R> Group<R> {
    /// The checks every JoinGroup passes first, in Kafka's order.
    pub(super) fn check_join(&self, args: &JoinArgs) -> Result<(), ErrorCode> {
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
    pub(super) fn reject_join(
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
    pub(super) fn accepts_joining_member(&self, member_id: &str) -> bool {
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
    pub(super) fn supports_protocols(&self, args: &JoinArgs) -> bool {
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
    pub(super) fn join_new(&mut self, args: JoinArgs, reply: R, now: u64) -> Vec<Output<R>> {
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
    pub(super) fn join_existing(&mut self, args: JoinArgs, reply: R, now: u64) -> Vec<Output<R>> {
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
    pub(super) fn add_member(
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
    pub(super) fn update_member(
        &mut self,
        idx: usize,
        args: &JoinArgs,
        reply: R,
        now: u64,
    ) -> Vec<Output<R>> {
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
    pub(super) fn replace_static(
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
    pub(super) fn fence(&mut self, idx: usize) -> Vec<Output<R>> {
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
    pub(super) fn current_join_result(&self, member_id: &str, with_members: bool) -> JoinResult {
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
    pub(super) fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref();
        let members = self.members.iter().map(|m| JoinedMember {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            metadata: m.metadata(protocol),
        });
        members.collect()
    }
}
