//! Unit tests of the classic group state machine, on a manual clock.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use strom_protocol::ErrorCode;

use super::*;

/// Session timeout of the test members.
const SESSION: i32 = 10_000;
/// Rebalance timeout of the test members.
const REBALANCE: i32 = 30_000;
/// `group.initial.rebalance.delay.ms` of most tests.
const DELAY: u64 = 3_000;

/// Broker settings with the given initial delay and size limit.
fn config(delay: u64, max_size: Option<usize>) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: delay,
        min_session_timeout_ms: 1_000,
        max_session_timeout_ms: 60_000,
        max_size,
    }
}

/// A consumer JoinGroup; each protocol's metadata is `<name>-meta`.
fn join_args(member_id: &str, protocols: &[&str]) -> JoinArgs {
    JoinArgs {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".to_string(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("{p}-meta"))))
            .collect(),
        require_known_member_id: false,
        reason: None,
    }
}

/// A static member's JoinGroup.
fn static_args(member_id: &str, instance: &str) -> JoinArgs {
    JoinArgs {
        group_instance_id: Some(instance.to_string()),
        ..join_args(member_id, &["range"])
    }
}

/// A group on a manual clock that records every reply and checks none is answered twice.
struct Harness {
    /// The machine.
    group: Group<u64>,
    /// The clock.
    now: u64,
    /// Tokens handed to the machine.
    issued: HashSet<u64>,
    /// JoinGroup answers by token.
    joins: HashMap<u64, JoinResult>,
    /// SyncGroup answers by token.
    syncs: HashMap<u64, SyncResult>,
    /// JoinGroup answers not yet looked at by the random test.
    fresh_joins: Vec<JoinResult>,
}

impl Harness {
    /// A new group.
    fn new(config: GroupConfig) -> Self {
        Harness {
            group: Group::new("g".to_string(), config),
            now: 0,
            issued: HashSet::new(),
            joins: HashMap::new(),
            syncs: HashMap::new(),
            fresh_joins: Vec::new(),
        }
    }

    /// A fresh reply token.
    fn token(&mut self) -> u64 {
        let token = self.issued.len() as u64 + 1;
        self.issued.insert(token);
        token
    }

    /// Records replies, failing on a token answered twice or never issued.
    fn collect(&mut self, out: Vec<Output<u64>>) {
        for output in out {
            let token = match output {
                Output::Join(token, result) => {
                    self.fresh_joins.push(result.clone());
                    assert!(
                        self.joins.insert(token, result).is_none(),
                        "join {token} answered twice"
                    );
                    token
                }
                Output::Sync(token, result) => {
                    assert!(
                        self.syncs.insert(token, result).is_none(),
                        "sync {token} answered twice"
                    );
                    token
                }
            };
            assert!(self.issued.contains(&token), "token {token} never issued");
            let answered = self.joins.contains_key(&token) && self.syncs.contains_key(&token);
            assert!(!answered, "token {token} answered as join and sync");
        }
    }

    /// Sends a JoinGroup; returns its token.
    fn join(&mut self, args: JoinArgs) -> u64 {
        let token = self.token();
        let out = self.group.join(args, token, self.now);
        self.collect(out);
        token
    }

    /// Sends a SyncGroup; returns its token.
    fn sync(&mut self, member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> u64 {
        let args = SyncArgs {
            member_id: member_id.to_string(),
            generation_id,
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                .collect(),
        };
        self.sync_with(args)
    }

    /// Sends a SyncGroup built by the caller.
    fn sync_with(&mut self, args: SyncArgs) -> u64 {
        let token = self.token();
        let out = self.group.sync(args, token, self.now);
        self.collect(out);
        token
    }

    /// Heartbeat of a dynamic member.
    fn heartbeat(&mut self, member_id: &str, generation_id: i32) -> ErrorCode {
        self.group
            .heartbeat(member_id, generation_id, None, self.now)
    }

    /// LeaveGroup of one dynamic member.
    fn leave(&mut self, member_id: &str) -> ErrorCode {
        let (code, out) = self.group.leave(member_id, None, self.now);
        self.collect(out);
        code
    }

    /// Moves the clock and fires due timers.
    fn advance(&mut self, ms: u64) {
        self.now += ms;
        let out = self.group.tick(self.now);
        self.collect(out);
    }

    /// Moves the clock to the next deadline and fires it.
    fn run_to_deadline(&mut self) {
        let deadline = self.group.next_deadline().unwrap();
        self.advance(deadline - self.now);
    }

    /// The answer to a JoinGroup.
    fn joined(&self, token: u64) -> &JoinResult {
        self.joins
            .get(&token)
            .unwrap_or_else(|| panic!("join {token} not answered"))
    }

    /// The answer to a SyncGroup.
    fn synced(&self, token: u64) -> &SyncResult {
        self.syncs
            .get(&token)
            .unwrap_or_else(|| panic!("sync {token} not answered"))
    }

    /// Tokens not answered yet.
    fn outstanding(&self) -> usize {
        self.issued.len() - self.joins.len() - self.syncs.len()
    }

    /// Two dynamic members joined (initial delay) and synced: (leader, follower), generation 1.
    fn stable_pair(&mut self) -> (String, String) {
        let first = self.join(join_args("", &["range"]));
        let second = self.join(join_args("", &["range"]));
        while !self.joins.contains_key(&second) {
            self.run_to_deadline();
        }
        let leader = self.joined(first).member_id.clone();
        let follower = self.joined(second).member_id.clone();
        let assignments = [
            (leader.as_str(), "a-leader"),
            (follower.as_str(), "a-follower"),
        ];
        self.sync(&follower, 1, &[]);
        self.sync(&leader, 1, &assignments);
        assert_eq!(self.group.state(), &GroupState::Stable);
        (leader, follower)
    }
}

#[test]
fn two_members_join_with_initial_delay_then_sync() {
    let mut h = Harness::new(config(DELAY, None));
    let first = h.join(join_args("", &["range"]));
    assert_eq!(h.group.state(), &GroupState::PreparingRebalance);
    assert_eq!(h.group.next_deadline(), Some(DELAY));
    h.advance(1_000);
    let second = h.join(join_args("", &["range"]));
    h.advance(2_000);
    assert!(
        h.joins.is_empty(),
        "a member arrived during the delay: it is extended"
    );
    assert_eq!(h.group.next_deadline(), Some(2 * DELAY));
    h.run_to_deadline();

    let (lead, follow) = (h.joined(first).clone(), h.joined(second).clone());
    assert_eq!(
        (lead.error, lead.generation_id, follow.generation_id),
        (ErrorCode::NONE, 1, 1)
    );
    assert_eq!(lead.leader, lead.member_id);
    assert_eq!(follow.leader, lead.member_id);
    assert_eq!(lead.protocol_name.as_deref(), Some("range"));
    assert_eq!(lead.members.len(), 2);
    assert_eq!(lead.members[1].metadata, Bytes::from("range-meta"));
    assert!(follow.members.is_empty());
    assert_eq!(h.group.state(), &GroupState::CompletingRebalance);

    let follower_sync = h.sync(&follow.member_id, 1, &[]);
    assert!(
        !h.syncs.contains_key(&follower_sync),
        "followers wait for the leader"
    );
    let assignments = [
        (lead.member_id.as_str(), "p0"),
        (follow.member_id.as_str(), "p1"),
    ];
    let leader_sync = h.sync(&lead.member_id, 1, &assignments);
    assert_eq!(h.synced(leader_sync).assignment, Bytes::from("p0"));
    assert_eq!(h.synced(follower_sync).assignment, Bytes::from("p1"));
    assert_eq!(
        h.synced(follower_sync).protocol_name.as_deref(),
        Some("range")
    );
    assert_eq!(h.group.state(), &GroupState::Stable);
    assert!(h.group.take_persist_due());
    let description = h.group.describe();
    assert_eq!(
        (description.state, description.protocol.as_str()),
        ("Stable", "range")
    );
    assert_eq!(description.members[1].assignment, Bytes::from("p1"));
}

#[test]
fn member_id_required_round() {
    let mut h = Harness::new(config(DELAY, None));
    let mut args = join_args("", &["range"]);
    args.require_known_member_id = true;
    let first = h.join(args.clone());
    let answer = h.joined(first).clone();
    assert_eq!(answer.error, ErrorCode::MEMBER_ID_REQUIRED);
    assert!(
        answer.member_id.starts_with("client-"),
        "{}",
        answer.member_id
    );
    assert_eq!(
        (h.group.state(), h.group.member_count()),
        (&GroupState::Empty, 0)
    );
    assert_eq!(h.group.next_deadline(), Some(SESSION as u64));

    let again = h.join(args.clone());
    let other_id = h.joined(again).member_id.clone();
    assert_ne!(other_id, answer.member_id, "every join gets a new id");

    args.member_id = answer.member_id.clone();
    let rejoin = h.join(args);
    h.run_to_deadline();
    assert_eq!(h.joined(rejoin).error, ErrorCode::NONE);
    assert_eq!(h.joined(rejoin).member_id, answer.member_id);
    assert_eq!(h.joined(rejoin).generation_id, 1);

    h.advance(SESSION as u64);
    let late = h.join(join_args(&other_id, &["range"]));
    assert_eq!(
        h.joined(late).error,
        ErrorCode::UNKNOWN_MEMBER_ID,
        "the handed-out id expired"
    );
}

#[test]
fn third_member_triggers_rebalance_and_old_members_rejoin() {
    let mut h = Harness::new(config(DELAY, None));
    let (leader, follower) = h.stable_pair();
    let third = h.join(join_args("", &["range"]));
    assert_eq!(h.group.state(), &GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&leader, 1), ErrorCode::REBALANCE_IN_PROGRESS);
    assert_eq!(h.heartbeat(&follower, 1), ErrorCode::REBALANCE_IN_PROGRESS);

    let leader_join = h.join(join_args(&leader, &["range"]));
    assert!(!h.joins.contains_key(&third));
    let follower_join = h.join(join_args(&follower, &["range"]));
    for token in [third, leader_join, follower_join] {
        assert_eq!(h.joined(token).generation_id, 2);
        assert_eq!(h.joined(token).leader, leader, "the leader keeps leading");
    }
    assert_eq!(h.joined(leader_join).members.len(), 3);
    assert_eq!(h.group.member_count(), 3);
}

#[test]
fn session_expiry_removes_member_and_rebalances() {
    let mut h = Harness::new(config(DELAY, None));
    let (leader, follower) = h.stable_pair();
    for _ in 0..4 {
        h.advance(3_000);
        if h.group.state() == &GroupState::Stable {
            assert_eq!(h.heartbeat(&leader, 1), ErrorCode::NONE);
        }
    }
    assert_eq!(h.group.state(), &GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&follower, 1), ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!(h.heartbeat(&leader, 1), ErrorCode::REBALANCE_IN_PROGRESS);
    let rejoin = h.join(join_args(&leader, &["range"]));
    assert_eq!(h.joined(rejoin).generation_id, 2);
    assert_eq!(h.joined(rejoin).members.len(), 1);
}

#[test]
fn rebalance_timeout_drops_member_that_never_rejoins() {
    let mut h = Harness::new(config(DELAY, None));
    let (leader, follower) = h.stable_pair();
    let rejoin = h.join(join_args(&leader, &["range"]));
    assert_eq!(
        h.group.state(),
        &GroupState::PreparingRebalance,
        "a leader's join rebalances"
    );
    let deadline = h.group.join_phase.unwrap().deadline;
    assert_eq!(deadline, h.now + REBALANCE as u64);
    while h.now + 3_000 < deadline {
        h.advance(3_000);
        assert_eq!(h.heartbeat(&follower, 1), ErrorCode::REBALANCE_IN_PROGRESS);
    }
    assert!(!h.joins.contains_key(&rejoin));
    h.advance(deadline - h.now);
    assert_eq!(h.joined(rejoin).generation_id, 2);
    assert_eq!(h.joined(rejoin).members.len(), 1);
    assert_eq!(h.heartbeat(&follower, 2), ErrorCode::UNKNOWN_MEMBER_ID);
}

#[test]
fn leave_triggers_rebalance() {
    let mut h = Harness::new(config(DELAY, None));
    let (leader, follower) = h.stable_pair();
    assert_eq!(h.leave("nobody"), ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!(h.leave(&follower), ErrorCode::NONE);
    assert_eq!(h.group.state(), &GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&leader, 1), ErrorCode::REBALANCE_IN_PROGRESS);
    let rejoin = h.join(join_args(&leader, &["range"]));
    assert_eq!(h.joined(rejoin).generation_id, 2);
    assert_eq!(h.group.state(), &GroupState::CompletingRebalance);
}

#[test]
fn leaving_member_gets_its_parked_join_answered() {
    let mut h = Harness::new(config(DELAY, None));
    let (leader, follower) = h.stable_pair();
    let rejoin = h.join(join_args(&leader, &["range"]));
    assert_eq!(h.leave(&leader), ErrorCode::NONE);
    assert_eq!(h.joined(rejoin).error, ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!(h.group.leader(), Some(follower.as_str()));
}

#[test]
fn last_leave_empties_group() {
    let mut h = Harness::new(config(DELAY, None));
    let (leader, follower) = h.stable_pair();
    h.group.take_persist_due();
    assert_eq!(h.leave(&follower), ErrorCode::NONE);
    assert_eq!(h.leave(&leader), ErrorCode::NONE);
    assert_eq!(h.group.state(), &GroupState::Empty);
    assert_eq!(
        h.group.generation_id(),
        2,
        "the empty join phase still bumps the generation"
    );
    assert_eq!(
        (
            h.group.member_count(),
            h.group.leader(),
            h.group.protocol_name()
        ),
        (0, None, None)
    );
    assert_eq!(h.group.protocol_type(), Some("consumer"));
    assert_eq!(h.group.next_deadline(), None);
    assert!(h.group.take_persist_due());
}

#[test]
fn heartbeat_and_sync_errors() {
    let mut h = Harness::new(config(DELAY, None));
    assert_eq!(
        h.heartbeat("nobody", 0),
        ErrorCode::UNKNOWN_MEMBER_ID,
        "empty group"
    );
    let (leader, follower) = h.stable_pair();
    assert_eq!(h.heartbeat(&follower, 1), ErrorCode::NONE);
    assert_eq!(h.heartbeat(&follower, 0), ErrorCode::ILLEGAL_GENERATION);
    assert_eq!(h.heartbeat("nobody", 1), ErrorCode::UNKNOWN_MEMBER_ID);

    let unknown = h.sync("nobody", 1, &[]);
    let stale = h.sync(&follower, 0, &[]);
    let mut args = SyncArgs {
        member_id: follower.clone(),
        generation_id: 1,
        group_instance_id: None,
        protocol_type: Some("consumer".to_string()),
        protocol_name: Some("roundrobin".to_string()),
        assignments: Vec::new(),
    };
    let wrong_protocol = h.sync_with(args.clone());
    args.protocol_name = Some("range".to_string());
    let fine = h.sync_with(args);
    assert_eq!(h.synced(unknown).error, ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!(h.synced(stale).error, ErrorCode::ILLEGAL_GENERATION);
    assert_eq!(
        h.synced(wrong_protocol).error,
        ErrorCode::INCONSISTENT_GROUP_PROTOCOL
    );
    assert_eq!(
        h.synced(fine).assignment,
        Bytes::from("a-follower"),
        "Stable answers at once"
    );

    h.join(join_args(&leader, &["range"]));
    let during_rebalance = h.sync(&follower, 1, &[]);
    assert_eq!(
        h.synced(during_rebalance).error,
        ErrorCode::REBALANCE_IN_PROGRESS
    );
}

#[test]
fn protocol_selected_by_votes() {
    let mut h = Harness::new(config(DELAY, None));
    let tokens = [
        h.join(join_args("", &["roundrobin", "range"])),
        h.join(join_args("", &["range", "roundrobin", "sticky"])),
        h.join(join_args("", &["roundrobin", "range"])),
    ];
    while !h.joins.contains_key(&tokens[2]) {
        h.run_to_deadline();
    }
    assert_eq!(
        h.joined(tokens[0]).protocol_name.as_deref(),
        Some("roundrobin")
    );
    assert_eq!(
        h.joined(tokens[0]).members[1].metadata,
        Bytes::from("roundrobin-meta")
    );

    let mut tie = Harness::new(config(DELAY, None));
    let a = tie.join(join_args("", &["y", "x"]));
    tie.join(join_args("", &["x", "y"]));
    while !tie.joins.contains_key(&a) {
        tie.run_to_deadline();
    }
    assert_eq!(
        tie.joined(a).protocol_name.as_deref(),
        Some("x"),
        "a tie goes to the smallest name"
    );
}

#[test]
fn inconsistent_group_protocol() {
    let mut h = Harness::new(config(DELAY, None));
    let nothing = h.join(join_args("", &[]));
    assert_eq!(
        h.joined(nothing).error,
        ErrorCode::INCONSISTENT_GROUP_PROTOCOL
    );
    h.join(join_args("", &["range"]));
    let other_type = h.join(JoinArgs {
        protocol_type: "connect".to_string(),
        ..join_args("", &["range"])
    });
    let other_protocol = h.join(join_args("", &["sticky"]));
    assert_eq!(
        h.joined(other_type).error,
        ErrorCode::INCONSISTENT_GROUP_PROTOCOL
    );
    assert_eq!(
        h.joined(other_protocol).error,
        ErrorCode::INCONSISTENT_GROUP_PROTOCOL
    );
    assert_eq!(h.group.member_count(), 1);
}

#[test]
fn invalid_session_timeout() {
    let mut h = Harness::new(config(DELAY, None));
    let short = h.join(JoinArgs {
        session_timeout_ms: 500,
        ..join_args("", &["range"])
    });
    let long = h.join(JoinArgs {
        session_timeout_ms: 70_000,
        ..join_args("", &["range"])
    });
    assert_eq!(h.joined(short).error, ErrorCode::INVALID_SESSION_TIMEOUT);
    assert_eq!(h.joined(long).error, ErrorCode::INVALID_SESSION_TIMEOUT);
    assert_eq!(h.group.state(), &GroupState::Empty);
}

#[test]
fn max_size() {
    let mut h = Harness::new(config(DELAY, Some(2)));
    let (leader, _) = h.stable_pair();
    let third = h.join(join_args("", &["range"]));
    assert_eq!(h.joined(third).error, ErrorCode::GROUP_MAX_SIZE_REACHED);
    assert_eq!(h.joined(third).member_id, "");
    assert_eq!(
        (h.group.state(), h.group.member_count()),
        (&GroupState::Stable, 2)
    );
    let known = h.join(join_args(&leader, &["range"]));
    assert!(
        !h.joins.contains_key(&known),
        "known members are always accepted"
    );
}

#[test]
fn static_member_rejoin_without_rebalance_and_fencing() {
    let mut h = Harness::new(config(DELAY, None));
    let a = h.join(static_args("", "instance-a"));
    let b = h.join(static_args("", "instance-b"));
    while !h.joins.contains_key(&b) {
        h.run_to_deadline();
    }
    let (a_id, old_b) = (h.joined(a).member_id.clone(), h.joined(b).member_id.clone());
    assert!(old_b.starts_with("instance-b-"), "{old_b}");
    h.sync(&a_id, 1, &[(&a_id, "pa"), (&old_b, "pb")]);

    let b2 = h.join(static_args("", "instance-b"));
    let answer = h.joined(b2).clone();
    assert_eq!((answer.error, answer.generation_id), (ErrorCode::NONE, 1));
    assert_ne!(answer.member_id, old_b);
    assert_eq!(answer.leader, a_id);
    assert_eq!(
        h.group.state(),
        &GroupState::Stable,
        "same metadata: no rebalance"
    );
    assert!(h.group.take_persist_due());

    let fenced = h.group.heartbeat(&old_b, 1, Some("instance-b"), h.now);
    assert_eq!(fenced, ErrorCode::FENCED_INSTANCE_ID);
    assert_eq!(
        h.group.validate_commit(&old_b, 1, Some("instance-b")),
        Err(ErrorCode::FENCED_INSTANCE_ID)
    );
    let sync_of = |member_id: &str| SyncArgs {
        member_id: member_id.to_string(),
        generation_id: 1,
        group_instance_id: Some("instance-b".to_string()),
        protocol_type: None,
        protocol_name: None,
        assignments: Vec::new(),
    };
    let old_sync = h.sync_with(sync_of(&old_b));
    let new_sync = h.sync_with(sync_of(&answer.member_id));
    assert_eq!(h.synced(old_sync).error, ErrorCode::FENCED_INSTANCE_ID);
    assert_eq!(
        h.synced(new_sync).assignment,
        Bytes::from("pb"),
        "the new id keeps the assignment"
    );

    let a2 = h.join(static_args("", "instance-a"));
    let leader_answer = h.joined(a2).clone();
    assert!(
        leader_answer.skip_assignment,
        "a static leader rejoining is told not to assign"
    );
    assert_eq!(leader_answer.leader, leader_answer.member_id);
    assert_eq!(leader_answer.members.len(), 2);

    let mut changed = static_args("", "instance-b");
    changed.protocols = vec![("range".to_string(), Bytes::from("new topics"))];
    h.join(changed);
    assert_eq!(
        h.group.state(),
        &GroupState::PreparingRebalance,
        "changed metadata rebalances"
    );
}

#[test]
fn static_member_replaced_while_joining_is_fenced() {
    let mut h = Harness::new(config(DELAY, None));
    let first = h.join(static_args("", "instance-a"));
    let second = h.join(static_args("", "instance-a"));
    assert_eq!(h.joined(first).error, ErrorCode::FENCED_INSTANCE_ID);
    h.run_to_deadline();
    assert_eq!(h.joined(second).error, ErrorCode::NONE);
    assert_eq!(h.group.member_count(), 1);
}

#[test]
fn static_member_survives_a_missed_join_phase() {
    let mut h = Harness::new(config(DELAY, None));
    let a = h.join(static_args("", "instance-a"));
    let b = h.join(join_args("", &["range"]));
    while !h.joins.contains_key(&b) {
        h.run_to_deadline();
    }
    let (a_id, b_id) = (h.joined(a).member_id.clone(), h.joined(b).member_id.clone());
    h.sync(&b_id, 1, &[]);
    h.sync(&a_id, 1, &[]);
    let rejoin = h.join(join_args(&b_id, &["range", "roundrobin"]));
    let deadline = h.group.join_phase.unwrap().deadline;
    while h.now + 3_000 < deadline {
        h.advance(3_000);
        let code = h.group.heartbeat(&a_id, 1, Some("instance-a"), h.now);
        assert_eq!(code, ErrorCode::REBALANCE_IN_PROGRESS);
    }
    assert!(!h.joins.contains_key(&rejoin));
    h.advance(deadline - h.now);
    assert_eq!(h.joined(rejoin).generation_id, 2);
    assert_eq!(
        h.group.member_count(),
        2,
        "the static member that did not rejoin stays"
    );
    assert_eq!(
        h.joined(rejoin).leader,
        b_id,
        "leadership passes to a member that rejoined"
    );
}

#[test]
fn leader_never_syncs_times_out() {
    let mut h = Harness::new(config(DELAY, None));
    let first = h.join(join_args("", &["range"]));
    let second = h.join(join_args("", &["range"]));
    while !h.joins.contains_key(&second) {
        h.run_to_deadline();
    }
    let (leader, follower) = (
        h.joined(first).member_id.clone(),
        h.joined(second).member_id.clone(),
    );
    let parked = h.sync(&follower, 1, &[]);
    let deadline = h.group.sync_deadline.unwrap();
    assert_eq!(deadline, h.now + REBALANCE as u64);
    while h.now + 3_000 < deadline {
        h.advance(3_000);
        assert_eq!(
            h.heartbeat(&leader, 1),
            ErrorCode::NONE,
            "alive, just never syncs"
        );
    }
    h.advance(deadline - h.now);
    assert_eq!(h.synced(parked).error, ErrorCode::REBALANCE_IN_PROGRESS);
    assert_eq!(h.heartbeat(&leader, 1), ErrorCode::UNKNOWN_MEMBER_ID);
    let rejoin = h.join(join_args(&follower, &["range"]));
    assert_eq!(h.joined(rejoin).generation_id, 2);
    assert_eq!(h.joined(rejoin).leader, follower);
}

#[test]
fn validate_commit_cases() {
    let mut h = Harness::new(config(DELAY, None));
    assert_eq!(
        h.group.validate_commit("", -1, None),
        Ok(()),
        "simple commits while Empty"
    );
    assert_eq!(
        h.group.validate_commit("x", 3, None),
        Err(ErrorCode::UNKNOWN_MEMBER_ID)
    );
    let (leader, follower) = h.stable_pair();
    assert_eq!(
        h.group.validate_commit("", -1, None),
        Err(ErrorCode::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(h.group.validate_commit(&follower, 1, None), Ok(()));
    assert_eq!(
        h.group.validate_commit(&follower, 0, None),
        Err(ErrorCode::ILLEGAL_GENERATION)
    );
    assert_eq!(
        h.group.validate_commit("nobody", 1, None),
        Err(ErrorCode::UNKNOWN_MEMBER_ID)
    );

    h.join(join_args(&leader, &["range"]));
    assert_eq!(
        h.group.validate_commit(&follower, 1, None),
        Ok(()),
        "PreparingRebalance allows"
    );
    h.join(join_args(&follower, &["range"]));
    assert_eq!(h.group.state(), &GroupState::CompletingRebalance);
    let completing = h.group.validate_commit(&follower, 2, None);
    assert_eq!(completing, Err(ErrorCode::REBALANCE_IN_PROGRESS));
}

#[test]
fn delete_only_when_empty() {
    let mut h = Harness::new(config(DELAY, None));
    let (leader, follower) = h.stable_pair();
    assert_eq!(h.group.delete(), Err(ErrorCode::NON_EMPTY_GROUP));
    h.leave(&leader);
    h.leave(&follower);
    assert_eq!(h.group.delete(), Ok(()));
    assert_eq!(h.group.describe().state, "Dead");
    assert_eq!(h.group.delete(), Ok(()));
    let join = h.join(join_args("", &["range"]));
    assert_eq!(h.joined(join).error, ErrorCode::COORDINATOR_NOT_AVAILABLE);
    assert_eq!(h.group.next_deadline(), None);
}

#[test]
fn shutdown_answers_every_parked_reply() {
    let mut h = Harness::new(config(DELAY, None));
    let (leader, follower) = h.stable_pair();
    let joins = [
        h.join(join_args(&leader, &["range"])),
        h.join(join_args("", &["range"])),
    ];
    let out = h.group.shutdown();
    h.collect(out);
    for token in joins {
        assert_eq!(h.joined(token).error, ErrorCode::NOT_COORDINATOR);
    }
    assert_eq!(h.outstanding(), 0);
    assert_eq!(h.group.state(), &GroupState::Dead);
    assert_eq!(h.heartbeat(&follower, 1), ErrorCode::UNKNOWN_MEMBER_ID);
}

#[test]
fn snapshot_restore_round_trip() {
    let mut h = Harness::new(config(DELAY, None));
    let (leader, follower) = h.stable_pair();
    let mut snapshot = h.group.snapshot();
    snapshot.current_state_timestamp_ms = 1_234;
    assert_eq!(snapshot.members[1].subscription, Bytes::from("range-meta"));
    let mut restored: Group<u64> =
        Group::restore("g".to_string(), snapshot.clone(), config(DELAY, None), 500);
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(restored.state(), &GroupState::Stable);
    assert_eq!(
        (restored.group_id(), restored.leader()),
        ("g", Some(leader.as_str()))
    );
    assert_eq!(restored.next_deadline(), Some(500 + SESSION as u64));

    assert_eq!(restored.heartbeat(&leader, 1, None, 8_000), ErrorCode::NONE);
    assert!(restored.tick(10_500).is_empty());
    assert_eq!(
        restored.state(),
        &GroupState::PreparingRebalance,
        "the gone follower expired"
    );
    assert_eq!(
        restored.heartbeat(&follower, 1, None, 10_500),
        ErrorCode::UNKNOWN_MEMBER_ID
    );

    let empty = GroupSnapshot {
        members: Vec::new(),
        leader: None,
        ..snapshot
    };
    let group: Group<u64> = Group::restore("g".to_string(), empty, config(DELAY, None), 0);
    assert_eq!(
        (group.state(), group.generation_id()),
        (&GroupState::Empty, 1)
    );
    assert_eq!(group.next_deadline(), None);
}

#[test]
fn next_deadline_moves_forward_and_tick_makes_progress() {
    let mut h = Harness::new(config(DELAY, None));
    h.stable_pair();
    h.join(join_args("", &["range"]));
    let mut args = join_args("", &["range"]);
    args.require_known_member_id = true;
    h.join(args);
    let mut previous = h.now;
    let mut ticks = 0;
    while let Some(deadline) = h.group.next_deadline() {
        assert!(
            deadline > previous,
            "deadline {deadline} not after {previous}"
        );
        h.run_to_deadline();
        previous = deadline;
        ticks += 1;
        assert!(ticks < 100, "timers never settle");
    }
    assert_eq!(
        h.group.state(),
        &GroupState::Empty,
        "everyone eventually expires"
    );
    assert_eq!(h.outstanding(), 0);
}

/// The xorshift64 generator of the random test.
struct XorShift(u64);

impl XorShift {
    /// The next number below `n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// One of `items`.
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[test]
fn random_operations_keep_invariants() {
    let mut coverage = Coverage::default();
    for seed in 1..=200 {
        match std::panic::catch_unwind(|| random_run(seed, 300)) {
            Ok(run) => coverage.add(&run),
            Err(panic) => {
                eprintln!("group machine random test failed: replay with random_run({seed}, 300)");
                std::panic::resume_unwind(panic);
            }
        }
    }
    assert!(
        coverage.stable_steps > 2_000,
        "runs rarely reach Stable: {coverage:?}"
    );
    assert!(
        coverage.max_generation >= 5,
        "runs rarely rebalance: {coverage:?}"
    );
    assert!(
        coverage.static_members > 100,
        "static members rarely join: {coverage:?}"
    );
}

/// What the random runs reached, so they cannot silently stop exercising the machine.
#[derive(Debug, Default)]
struct Coverage {
    /// Steps that ended in Stable.
    stable_steps: usize,
    /// Highest generation seen.
    max_generation: i32,
    /// Steps that ended with a static member in the group.
    static_members: usize,
}

impl Coverage {
    /// Adds up another run.
    fn add(&mut self, run: &Coverage) {
        self.stable_steps += run.stable_steps;
        self.max_generation = self.max_generation.max(run.max_generation);
        self.static_members += run.static_members;
    }
}

/// One seeded run of random requests and clock moves, checking invariants after each step.
fn random_run(seed: u64, steps: usize) -> Coverage {
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let delay = *rng.pick(&[0, DELAY]);
    let max_size = *rng.pick(&[None, Some(3)]);
    let mut h = Harness::new(config(delay, max_size));
    let mut ids: Vec<String> = Vec::new();
    let mut last: HashMap<String, JoinResult> = HashMap::new();
    let mut generation = 0;
    let mut coverage = Coverage::default();
    for step in 0..steps {
        random_step(&mut h, &mut rng, &ids, &last);
        for result in std::mem::take(&mut h.fresh_joins) {
            if !result.member_id.is_empty() && !ids.contains(&result.member_id) {
                ids.push(result.member_id.clone());
            }
            if result.error == ErrorCode::NONE {
                last.insert(result.member_id.clone(), result);
            }
        }
        assert!(
            h.group.generation_id() >= generation,
            "step {step}: generation went back"
        );
        generation = h.group.generation_id();
        check_invariants(&h, step);
        coverage.stable_steps += usize::from(h.group.state() == &GroupState::Stable);
        let statics = h
            .group
            .members
            .iter()
            .any(|m| m.group_instance_id.is_some());
        coverage.static_members += usize::from(statics);
    }
    coverage.max_generation = generation;
    let out = h.group.shutdown();
    h.collect(out);
    assert_eq!(h.outstanding(), 0, "replies left unanswered after shutdown");
    coverage
}

/// One random request or clock move.
fn random_step(
    h: &mut Harness,
    rng: &mut XorShift,
    ids: &[String],
    last: &HashMap<String, JoinResult>,
) {
    let leader = h
        .group
        .leader()
        .filter(|_| rng.below(2) == 0)
        .map(str::to_string);
    let known = match leader {
        Some(leader) => leader,
        None if ids.is_empty() => String::new(),
        None => rng.pick(ids).clone(),
    };
    let protocols = *rng.pick(&[
        &["range"][..],
        &["range", "roundrobin"],
        &["roundrobin", "range"],
        &["sticky"],
    ]);
    let generation = last
        .get(&known)
        .map_or(rng.below(3) as i32, |r| r.generation_id);
    match rng.below(10) {
        0 | 1 => {
            let mut args = join_args("", protocols);
            args.require_known_member_id = rng.below(2) == 0;
            h.join(args);
        }
        2 => {
            h.join(join_args(&known, protocols));
        }
        3 => {
            let instance = rng.pick(&["s1", "s2"]).to_string();
            let member_id = if rng.below(2) == 0 {
                String::new()
            } else {
                known.clone()
            };
            h.join(JoinArgs {
                group_instance_id: Some(instance),
                ..join_args(&member_id, protocols)
            });
        }
        4 | 5 => {
            let members = last
                .get(&known)
                .map(|r| r.members.clone())
                .unwrap_or_default();
            let assignments: Vec<(String, Bytes)> = members
                .iter()
                .map(|m| (m.member_id.clone(), Bytes::from(m.member_id.clone())))
                .collect();
            let instance = h.group.members.iter().find(|m| m.member_id == known);
            let group_instance_id = instance.and_then(|m| m.group_instance_id.clone());
            let args = SyncArgs {
                member_id: known.clone(),
                generation_id: generation,
                group_instance_id,
                protocol_type: None,
                protocol_name: None,
                assignments,
            };
            h.sync_with(args);
        }
        6 => {
            let _ = h.heartbeat(&known, generation);
        }
        7 => {
            h.leave(&known);
        }
        8 => h.advance(rng.below(6_000)),
        _ => {
            if h.group.next_deadline().is_some() {
                h.run_to_deadline();
            }
        }
    }
    let _ = h.group.validate_commit(&known, generation, None);
}

/// What must hold after every step.
fn check_invariants(h: &Harness, step: usize) {
    let group = &h.group;
    let parked: usize = group
        .members
        .iter()
        .map(|m| usize::from(m.awaiting_join.is_some()) + usize::from(m.awaiting_sync.is_some()))
        .sum();
    assert_eq!(
        parked,
        h.outstanding(),
        "step {step}: parked replies and unanswered tokens differ"
    );
    if h.outstanding() > 0 {
        assert!(
            group.next_deadline().is_some(),
            "step {step}: replies parked without a timer"
        );
    }
    assert_eq!(
        group.leader.is_some(),
        !group.members.is_empty(),
        "step {step}: leader without members or the reverse"
    );
    if let Some(leader) = group.leader() {
        assert!(
            group.member_index(leader).is_some(),
            "step {step}: leader {leader} is not a member"
        );
    }
    match group.state() {
        GroupState::Empty => assert!(group.members.is_empty(), "step {step}: Empty with members"),
        GroupState::Stable => {
            for member in &group.members {
                assert!(
                    !member.assignment.is_empty(),
                    "step {step}: {} has no assignment in Stable",
                    member.member_id
                );
                assert!(
                    member.awaiting_join.is_none() && member.awaiting_sync.is_none(),
                    "step {step}: parked in Stable"
                );
            }
        }
        GroupState::PreparingRebalance => {
            assert!(group.join_phase.is_some(), "step {step}: no join timer");
            let syncing = group.members.iter().any(|m| m.awaiting_sync.is_some());
            assert!(
                !syncing,
                "step {step}: a SyncGroup parked while rebalancing"
            );
        }
        GroupState::CompletingRebalance => {
            let joining = group.members.iter().any(|m| m.awaiting_join.is_some());
            assert!(
                !joining,
                "step {step}: a JoinGroup parked after the join phase"
            );
            let leader = group
                .leader()
                .and_then(|id| group.member_index(id))
                .unwrap();
            assert!(
                group.members[leader].pending_sync,
                "step {step}: leader synced but not Stable"
            );
        }
        GroupState::Dead => {}
    }
    let mut instances: Vec<&str> = group
        .members
        .iter()
        .filter_map(|m| m.group_instance_id.as_deref())
        .collect();
    let count = instances.len();
    instances.sort_unstable();
    instances.dedup();
    assert_eq!(
        instances.len(),
        count,
        "step {step}: an instance id maps to two members"
    );
}
