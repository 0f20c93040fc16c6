//! The data a group takes and gives: settings, states, request arguments, answers,
//! descriptions and snapshots.

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
pub(crate) use crate::group::schema::GroupMemberMetadata as SnapshotMember;

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
