//! Consumer group partition assignors: how the group leader splits the subscribed topics'
//! partitions among the members, the way the Java client's `RangeAssignor`,
//! `RoundRobinAssignor` and `CooperativeStickyAssignor` do. Range and round robin give
//! exactly Java's assignment; the sticky assignor runs Java's algorithm, but where Java's
//! choice depends on `HashMap` iteration order (which member keeps its extra partition)
//! it goes by member id.
//!
//! ```text
//!  JoinGroup   each member: Subscription ──encode_subscription──▶ protocol metadata
//!                                                                       │
//!  leader      decode_subscription(each member's metadata) ──▶ [MemberSubscription]
//!              Assignor::assign(partitions_per_topic, members) ──▶ Assignment
//!                                                                       │
//!  SyncGroup   leader: encode_assignment(per member) ──▶ each member: decode_assignment
//! ```
//!
//! The contract every [`Assignor`] here keeps:
//!
//! * Pure and deterministic: no I/O, no clock, no randomness; the same input gives the same
//!   output, whatever the order of `members` (ties break on member id).
//! * Every member is a key of the [`Assignment`], with an empty list if it gets nothing;
//!   each list is sorted by topic, then partition.
//! * A partition goes to at most one member, and only to a member subscribed to its topic.
//!   Range and round robin assign every partition of a subscribed topic; the cooperative
//!   sticky assignor may hold a partition back for one round (see [`CooperativeStickyAssignor`]).
//! * Topics nobody subscribes to are ignored; a subscribed topic missing from
//!   `partitions_per_topic` (or with no partitions) is skipped, as the Java leader skips
//!   topics without metadata.
//! * Member ids are unique within a call; with duplicates the result is unspecified (but
//!   nothing panics).
//!
//! Rack awareness (KIP-881: matching `rack_id` with replica racks) is not implemented: the
//! assignors behave as Java's do when no rack information is available.
//!
//! ```
//! use std::collections::BTreeMap;
//! use strom_client::consumer::assignor::{assignor_for, MemberSubscription, Subscription};
//!
//! let range = assignor_for("range").expect("a built-in assignor");
//! let partitions = BTreeMap::from([("orders".to_owned(), 3)]);
//! let members = [
//!     MemberSubscription::new("m1", Subscription::new(["orders"])),
//!     MemberSubscription::new("m2", Subscription::new(["orders"])),
//! ];
//! let assignment = range.assign(&partitions, &members);
//! assert_eq!(assignment["m1"], [("orders".to_owned(), 0), ("orders".to_owned(), 1)]);
//! assert_eq!(assignment["m2"], [("orders".to_owned(), 2)]);
//! ```

mod codec;
mod range;
mod roundrobin;
mod sticky;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod property_tests;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

pub use codec::{decode_assignment, decode_subscription, encode_assignment, encode_subscription};
pub use range::RangeAssignor;
pub use roundrobin::RoundRobinAssignor;
pub use sticky::CooperativeStickyAssignor;

/// A topic partition: topic name and partition index.
type TopicPartition = (String, i32);

/// A member's subscription as the group leader sees it (Kafka's
/// `ConsumerProtocolSubscription`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The topics the member wants to consume.
    pub topics: Vec<String>,
    /// The partitions the member owns now (version 1+); the cooperative protocol keeps
    /// them where it can and revokes before reassigning.
    pub owned_partitions: Vec<(String, i32)>,
    /// The generation in which the member got `owned_partitions` (version 2+); -1 unknown.
    pub generation_id: i32,
    /// The member's rack (`client.rack`, version 3+).
    pub rack_id: Option<String>,
    /// Opaque data for the assignor.
    pub user_data: Option<Bytes>,
}

impl Subscription {
    /// A subscription to `topics` owning nothing, generation unknown.
    ///
    /// ```
    /// use strom_client::consumer::assignor::Subscription;
    /// let subscription = Subscription::new(["orders", "payments"]);
    /// assert_eq!(subscription.topics, ["orders", "payments"]);
    /// assert_eq!(subscription.generation_id, -1);
    /// ```
    pub fn new<I, S>(topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Subscription {
            topics: topics.into_iter().map(Into::into).collect(),
            owned_partitions: Vec::new(),
            generation_id: -1,
            rack_id: None,
            user_data: None,
        }
    }
}

impl Default for Subscription {
    fn default() -> Self {
        Subscription::new(Vec::<String>::new())
    }
}

/// One member of the group as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its `group.instance.id`, for static members.
    pub group_instance_id: Option<String>,
    /// What it subscribed to.
    pub subscription: Subscription,
}

impl MemberSubscription {
    /// A dynamic member (no `group.instance.id`).
    pub fn new(member_id: impl Into<String>, subscription: Subscription) -> Self {
        MemberSubscription {
            member_id: member_id.into(),
            group_instance_id: None,
            subscription,
        }
    }

    /// The order Java's `AbstractPartitionAssignor.MemberInfo` sorts members in: static
    /// members first, by `group.instance.id`, then dynamic members by member id.
    fn sort_key(&self) -> (bool, Option<&str>, &str) {
        let instance = self.group_instance_id.as_deref();
        (instance.is_none(), instance, &self.member_id)
    }

    fn subscribes_to(&self, topic: &str) -> bool {
        self.subscription.topics.iter().any(|t| t == topic)
    }
}

/// What the leader decides for each member (Kafka's `ConsumerProtocolAssignment`): member
/// id to the partitions it gets.
pub type Assignment = BTreeMap<String, Vec<(String, i32)>>;

/// How a group hands partitions over in a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RebalanceProtocol {
    /// Every member revokes everything before rejoining.
    Eager,
    /// Members keep what they own; only partitions that move are revoked (KIP-429).
    Cooperative,
}

/// A partition assignment strategy, run by the group leader.
pub trait Assignor: Send + Sync {
    /// The name sent in JoinGroup (`range`, `roundrobin`, `cooperative-sticky`).
    fn name(&self) -> &'static str;

    /// The rebalance protocols it supports, preferred first.
    fn protocols(&self) -> &[RebalanceProtocol];

    /// Splits the partitions of the subscribed topics among `members` (see the module
    /// docs for the contract). `partitions_per_topic` maps topic to partition count.
    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> Assignment;
}

/// The built-in assignor called `name`: the protocol name (`range`, `roundrobin`,
/// `cooperative-sticky`) or the Java class name in `partition.assignment.strategy`.
///
/// ```
/// use strom_client::consumer::assignor::{assignor_for, RebalanceProtocol};
///
/// let sticky = assignor_for("org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
/// let sticky = sticky.expect("a built-in assignor");
/// assert_eq!(sticky.name(), "cooperative-sticky");
/// assert_eq!(sticky.protocols()[0], RebalanceProtocol::Cooperative);
/// assert!(assignor_for("sticky").is_none());
/// ```
pub fn assignor_for(name: &str) -> Option<Box<dyn Assignor>> {
    const JAVA: &str = "org.apache.kafka.clients.consumer.";
    let short = name.trim();
    let short = short.strip_prefix(JAVA).unwrap_or(short);
    match short {
        "range" | "RangeAssignor" => Some(Box::new(RangeAssignor)),
        "roundrobin" | "RoundRobinAssignor" => Some(Box::new(RoundRobinAssignor)),
        "cooperative-sticky" | "CooperativeStickyAssignor" => {
            Some(Box::new(CooperativeStickyAssignor))
        }
        _ => None,
    }
}

/// The topics worth assigning: subscribed by some member and with at least one partition.
fn subscribed_topics(
    partitions_per_topic: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
) -> BTreeMap<String, i32> {
    let subscribed: BTreeSet<&str> = members
        .iter()
        .flat_map(|m| m.subscription.topics.iter().map(String::as_str))
        .collect();
    partitions_per_topic
        .iter()
        .filter(|(topic, count)| **count > 0 && subscribed.contains(topic.as_str()))
        .map(|(topic, count)| (topic.clone(), *count))
        .collect()
}

/// `members` in Java's `MemberInfo` order.
fn sorted_members(members: &[MemberSubscription]) -> Vec<&MemberSubscription> {
    let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
    sorted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    sorted
}

/// An assignment giving every member an empty list.
fn empty_assignment(members: &[MemberSubscription]) -> Assignment {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect()
}

/// Sorts each member's list, as the contract promises.
fn sorted_lists(mut assignment: Assignment) -> Assignment {
    for partitions in assignment.values_mut() {
        partitions.sort();
    }
    assignment
}
