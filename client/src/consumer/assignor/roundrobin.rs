//! Java's `RoundRobinAssignor` (protocol name `roundrobin`).

use std::collections::BTreeMap;

use super::{
    empty_assignment, sorted_lists, sorted_members, subscribed_topics, Assignment, Assignor,
    MemberSubscription, RebalanceProtocol,
};

/// All partitions of the subscribed topics, sorted by topic then partition, dealt one at a
/// time to the members in a circle (Java's `MemberInfo` order: static members by
/// `group.instance.id` first, then the rest by member id), skipping members not subscribed
/// to the partition's topic.
///
/// With identical subscriptions the counts differ by at most one; with different ones the
/// skipping can leave it uneven.
///
/// ```
/// use std::collections::BTreeMap;
/// use strom_client::consumer::assignor::{Assignor, MemberSubscription, RoundRobinAssignor, Subscription};
///
/// let partitions = BTreeMap::from([("t0".to_owned(), 3), ("t1".to_owned(), 3)]);
/// let members = [
///     MemberSubscription::new("c0", Subscription::new(["t0", "t1"])),
///     MemberSubscription::new("c1", Subscription::new(["t0", "t1"])),
/// ];
/// let assignment = RoundRobinAssignor.assign(&partitions, &members);
/// let tp = |t: &str, p| (t.to_owned(), p);
/// assert_eq!(assignment["c0"], [tp("t0", 0), tp("t0", 2), tp("t1", 1)]);
/// assert_eq!(assignment["c1"], [tp("t0", 1), tp("t1", 0), tp("t1", 2)]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn protocols(&self) -> &[RebalanceProtocol] {
        &[RebalanceProtocol::Eager]
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> Assignment {
        let mut assignment = empty_assignment(members);
        let topics = subscribed_topics(partitions_per_topic, members);
        let circle = sorted_members(members);
        let mut next = 0;
        for (topic, count) in &topics {
            for partition in 0..*count {
                // Every topic kept by `subscribed_topics` has a subscriber, so this finds one
                // within one turn of the circle.
                let Some(offset) = (0..circle.len())
                    .find(|i| circle[(next + i) % circle.len()].subscribes_to(topic))
                else {
                    continue;
                };
                let member = circle[(next + offset) % circle.len()];
                next = (next + offset + 1) % circle.len();
                if let Some(partitions) = assignment.get_mut(&member.member_id) {
                    partitions.push((topic.clone(), partition));
                }
            }
        }
        sorted_lists(assignment)
    }
}
