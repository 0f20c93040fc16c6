//! The heartbeat task of a group member.
//!
//! Every `heartbeat.interval.ms` it tells the coordinator the member is alive, except while
//! a rebalance runs (the JoinGroup or SyncGroup in flight already says so). What the answer
//! says is left for the next `poll`: REBALANCE_IN_PROGRESS marks a rejoin; an unknown
//! member or generation also marks the owned partitions lost. A member whose application
//! has not polled for `max.poll.interval.ms` leaves the group, as the Java client's does,
//! so its partitions go to members that make progress.

use std::sync::Weak;
use std::time::Duration;

use kafka_protocol::messages::{GroupId, HeartbeatRequest};
use strom_protocol::ErrorCode;
use tracing::{debug, warn};

use super::coordinator::COORDINATOR_ERRORS;
use super::{str_bytes, GroupMember};

/// Newest Heartbeat version used: the last before the flexible encoding (see the group
/// module's version notes).
const HEARTBEAT_MAX: i16 = 3;

/// Runs until the member is dropped or leaves.
pub(super) async fn run(member: Weak<GroupMember>) {
    loop {
        let Some(interval) = member.upgrade().map(|m| m.config().heartbeat_interval_ms) else {
            return;
        };
        tokio::time::sleep(Duration::from_millis(interval)).await;
        let Some(member) = member.upgrade() else {
            return;
        };
        if member.poll_overdue() {
            warn!(group = %member.group_id, "no poll within max.poll.interval.ms; leaving the group");
            member.leave_for_rejoin().await;
            continue;
        }
        // A rebalance in progress heartbeats by itself.
        let Ok(_rebalancing) = member.rebalancing.try_lock() else {
            continue;
        };
        beat(&member).await;
    }
}

async fn beat(member: &GroupMember) {
    let (member_id, generation) = {
        let state = member.lock();
        (state.member_id.clone(), state.generation_id)
    };
    if member_id.is_empty() {
        return;
    }
    let instance = member.config().group_instance_id.clone();
    let request = |version: i16| {
        let r = HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(&member.group_id)))
            .with_generation_id(generation)
            .with_member_id(str_bytes(&member_id));
        if version >= 3 {
            r.with_group_instance_id(instance.as_deref().map(str_bytes))
        } else {
            r
        }
    };
    let code = match member.coordinator.send(request, HEARTBEAT_MAX, false).await {
        Ok(response) => ErrorCode(response.error_code),
        Err(e) => {
            debug!(group = %member.group_id, error = %e, "heartbeat failed");
            return;
        }
    };
    match code {
        ErrorCode::NONE => {}
        ErrorCode::REBALANCE_IN_PROGRESS => member.needs_rejoin(),
        ErrorCode::UNKNOWN_MEMBER_ID
        | ErrorCode::ILLEGAL_GENERATION
        | ErrorCode::FENCED_INSTANCE_ID => {
            debug!(group = %member.group_id, error = %code, "membership lost");
            member.membership_lost();
        }
        c if COORDINATOR_ERRORS.contains(&c) => member.coordinator.reset().await,
        c => warn!(group = %member.group_id, error = %c, "heartbeat refused"),
    }
}

impl GroupMember {
    /// Whether the application has gone `max.poll.interval.ms` without polling.
    fn poll_overdue(&self) -> bool {
        let limit = Duration::from_millis(self.config().max_poll_interval_ms);
        let state = self.lock();
        !state.member_id.is_empty() && state.last_poll.is_some_and(|at| at.elapsed() > limit)
    }

    /// Leaves so others take over, and rejoins on the next poll (the partitions are lost).
    async fn leave_for_rejoin(&self) {
        let member_id = self.lock().member_id.clone();
        if member_id.is_empty() {
            return;
        }
        self.send_leave(&member_id).await;
        self.membership_lost();
    }
}
