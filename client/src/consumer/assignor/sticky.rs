//! Java's `CooperativeStickyAssignor` (protocol name `cooperative-sticky`): the
//! `AbstractStickyAssignor` algorithms plus the cooperative hold-back, without rack
//! awareness.
//!
//! ```text
//! subscriptions ──▶ claims: owned_partitions, conflicts settled by generation
//!                       │
//!         same topics for everyone? ──yes──▶ constrained: keep owned up to quota, fill up
//!                       │ no
//!                       └─────────────────▶ general: keep owned, give the rest to the least
//!                                            loaded, then move partitions until balanced
//!                       │
//!                       ▼
//!  cooperative hold-back: a partition moving to a member that another member still claims
//!  is left out this round; its owner revokes it and the next rebalance assigns it
//! ```

mod constrained;
mod general;
mod movements;

use std::collections::{BTreeMap, BTreeSet};

use super::{
    sorted_lists, subscribed_topics, Assignment, Assignor, MemberSubscription, RebalanceProtocol,
    Subscription, TopicPartition,
};

/// The generation of a member that never got an assignment (Java's `DEFAULT_GENERATION`).
const NO_GENERATION: i32 = -1;

/// Balanced and sticky: the partition counts differ by at most one when all members
/// subscribe to the same topics (and are as even as the subscriptions allow otherwise),
/// and members keep the partitions they own (`Subscription::owned_partitions`) wherever
/// balance allows.
///
/// When two members claim the same partition, the one with the higher `generation_id`
/// keeps it; with equal generations neither does. For the cooperative protocol a
/// partition that moves is not handed to its new member while another member still
/// claims it: it is left out of this assignment, its owner revokes it, rejoins, and the
/// follow-up rebalance assigns it (Java's `CooperativeStickyAssignor.adjustAssignment`).
///
/// ```
/// use std::collections::BTreeMap;
/// use strom_client::consumer::assignor::{
///     Assignor, CooperativeStickyAssignor, MemberSubscription, Subscription,
/// };
///
/// let partitions = BTreeMap::from([("t".to_owned(), 4)]);
/// let tp = |p| ("t".to_owned(), p);
/// // m1 owned everything; m2 joins.
/// let mut owner = Subscription::new(["t"]);
/// owner.owned_partitions = (0..4).map(tp).collect();
/// owner.generation_id = 3;
/// let members = [
///     MemberSubscription::new("m1", owner),
///     MemberSubscription::new("m2", Subscription::new(["t"])),
/// ];
/// let assignment = CooperativeStickyAssignor.assign(&partitions, &members);
/// // m1 keeps two and revokes two; m2 gets them in the next rebalance.
/// assert_eq!(assignment["m1"], [tp(0), tp(1)]);
/// assert!(assignment["m2"].is_empty());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &'static str {
        "cooperative-sticky"
    }

    fn protocols(&self) -> &[RebalanceProtocol] {
        &[RebalanceProtocol::Cooperative, RebalanceProtocol::Eager]
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> Assignment {
        let group = Group::new(partitions_per_topic, members);
        let balanced = group.balanced_assignment();
        sorted_lists(group.hold_back_transfers(balanced))
    }
}

/// The sticky assignment before the cooperative hold-back: what Java's eager
/// `StickyAssignor` would give with the same owned partitions.
#[cfg(test)]
pub(super) fn eager_assign(
    partitions_per_topic: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
) -> Assignment {
    let group = Group::new(partitions_per_topic, members);
    sorted_lists(group.balanced_assignment())
}

/// The leader's view of the group for one assignment.
struct Group {
    /// The subscribed topics with their partition counts.
    topics: BTreeMap<String, i32>,
    /// Members by id.
    members: BTreeMap<String, Member>,
    /// The highest generation any member reports.
    max_generation: i32,
}

struct Member {
    /// The topics it subscribes to, as sent.
    topics: BTreeSet<String>,
    /// Its owned partitions that exist, sorted, without duplicates.
    claimed: Vec<TopicPartition>,
    /// The generation its claims are from.
    generation: i32,
    /// The claims it won against other members' claims on the same partitions.
    owned: Vec<TopicPartition>,
}

impl Group {
    fn new(partitions_per_topic: &BTreeMap<String, i32>, members: &[MemberSubscription]) -> Self {
        let topics = subscribed_topics(partitions_per_topic, members);
        let mut members: BTreeMap<String, Member> = members
            .iter()
            .map(|m| (m.member_id.clone(), Member::new(&m.subscription, &topics)))
            .collect();
        resolve_claims(&mut members);
        let max_generation = members
            .values()
            .map(|m| m.generation)
            .fold(NO_GENERATION, i32::max);
        Group {
            topics,
            members,
            max_generation,
        }
    }

    /// The balanced, sticky assignment (Java's `AbstractStickyAssignor.assignPartitions`).
    fn balanced_assignment(&self) -> Assignment {
        if self.members.is_empty() {
            return Assignment::new();
        }
        if self.all_subscriptions_equal() {
            let owned = self
                .members
                .iter()
                .map(|(id, m)| (id.clone(), m.owned.clone()))
                .collect();
            constrained::assign(&self.topics, &owned)
        } else {
            general::assign(self)
        }
    }

    fn all_subscriptions_equal(&self) -> bool {
        let mut subscriptions = self.members.values().map(|m| &m.topics);
        let first = subscriptions.next();
        subscriptions.all(|topics| Some(topics) == first)
    }

    /// Leaves out each partition given to a member whose own claim on it did not win while
    /// another member claims it: that member must revoke it first.
    fn hold_back_transfers(&self, mut assignment: Assignment) -> Assignment {
        let mut claimers: BTreeMap<&TopicPartition, Vec<&str>> = BTreeMap::new();
        for (id, member) in &self.members {
            for tp in &member.claimed {
                claimers.entry(tp).or_default().push(id);
            }
        }
        for (id, partitions) in assignment.iter_mut() {
            let owned = self.members.get(id).map(|m| m.owned.as_slice());
            partitions.retain(|tp| {
                let won = owned.is_some_and(|owned| owned.contains(tp));
                let claimed_by_other = claimers
                    .get(tp)
                    .is_some_and(|claimers| claimers.iter().any(|c| c != id));
                won || !claimed_by_other
            });
        }
        assignment
    }

    /// Per partition claimed by a member of an older generation than the newest, the
    /// member and generation of the newest such claim (Java's `prevAssignment`): where the
    /// general algorithm prefers to move a partition back to.
    fn previous_owners(&self) -> BTreeMap<TopicPartition, (String, i32)> {
        let mut previous: BTreeMap<TopicPartition, (String, i32)> = BTreeMap::new();
        for (id, member) in &self.members {
            if member.generation >= self.max_generation {
                continue;
            }
            for tp in &member.claimed {
                let newer = previous
                    .get(tp)
                    .is_none_or(|(_, generation)| member.generation > *generation);
                if newer {
                    previous.insert(tp.clone(), (id.clone(), member.generation));
                }
            }
        }
        previous
    }
}

impl Member {
    fn new(subscription: &Subscription, topics: &BTreeMap<String, i32>) -> Self {
        let mut claimed: Vec<TopicPartition> = subscription
            .owned_partitions
            .iter()
            .filter(|(topic, p)| {
                topics
                    .get(topic)
                    .is_some_and(|count| (0..*count).contains(p))
            })
            .cloned()
            .collect();
        claimed.sort();
        claimed.dedup();
        Member {
            topics: subscription.topics.iter().cloned().collect(),
            claimed,
            generation: member_generation(subscription),
            owned: Vec::new(),
        }
    }
}

/// The generation of a member's claims: `generation_id` (subscription v2+), else the
/// 4-byte generation Java's `CooperativeStickyAssignor` puts in its user data for older
/// subscription versions, else unknown.
fn member_generation(subscription: &Subscription) -> i32 {
    if subscription.generation_id >= 0 {
        return subscription.generation_id;
    }
    subscription
        .user_data
        .as_deref()
        .and_then(|data| data.first_chunk::<4>())
        .map_or(NO_GENERATION, |b| i32::from_be_bytes(*b).max(NO_GENERATION))
}

/// Gives each claimed partition to the one claimer with the highest generation; when
/// several share the highest generation none of them keeps it.
fn resolve_claims(members: &mut BTreeMap<String, Member>) {
    let mut claims: BTreeMap<TopicPartition, Vec<(i32, String)>> = BTreeMap::new();
    for (id, member) in members.iter() {
        for tp in &member.claimed {
            let claim = (member.generation, id.clone());
            claims.entry(tp.clone()).or_default().push(claim);
        }
    }
    for (tp, mut claimants) in claims {
        claimants.sort_by_key(|(generation, _)| std::cmp::Reverse(*generation));
        let contested = claimants
            .get(1)
            .is_some_and(|second| second.0 == claimants[0].0);
        if contested {
            continue;
        }
        if let Some(winner) = claimants.first().and_then(|(_, id)| members.get_mut(id)) {
            winner.owned.push(tp);
        }
    }
}
