//! Java's `RangeAssignor` (protocol name `range`), without its rack-aware variant.

use std::collections::BTreeMap;

use super::{
    empty_assignment, sorted_lists, sorted_members, subscribed_topics, Assignment, Assignor,
    MemberSubscription, RebalanceProtocol,
};

/// Per topic, the members subscribed to it (in Java's `MemberInfo` order: static members by
/// `group.instance.id` first, then the rest by member id) each get one contiguous range of
/// its partitions; the first `partitions % members` of them get one more.
///
/// Topics are split independently, so with many topics of few partitions the first members
/// get more than the others.
///
/// ```
/// use std::collections::BTreeMap;
/// use strom_client::consumer::assignor::{Assignor, MemberSubscription, RangeAssignor, Subscription};
///
/// let partitions = BTreeMap::from([("t0".to_owned(), 3), ("t1".to_owned(), 3)]);
/// let members = [
///     MemberSubscription::new("c0", Subscription::new(["t0", "t1"])),
///     MemberSubscription::new("c1", Subscription::new(["t0", "t1"])),
/// ];
/// let assignment = RangeAssignor.assign(&partitions, &members);
/// let tp = |t: &str, p| (t.to_owned(), p);
/// assert_eq!(assignment["c0"], [tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)]);
/// assert_eq!(assignment["c1"], [tp("t0", 2), tp("t1", 2)]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
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
        let members = sorted_members(members);
        for (topic, count) in topics {
            let subscribers: Vec<&str> = members
                .iter()
                .filter(|m| m.subscribes_to(&topic))
                .map(|m| m.member_id.as_str())
                .collect();
            for (member, range) in subscribers.iter().zip(ranges(count, subscribers.len())) {
                if let Some(partitions) = assignment.get_mut(*member) {
                    partitions.extend(range.map(|p| (topic.clone(), p)));
                }
            }
        }
        sorted_lists(assignment)
    }
}

/// The partition ranges of a topic with `count` partitions split among `members`, first
/// member first.
fn ranges(count: i32, members: usize) -> impl Iterator<Item = std::ops::Range<i32>> {
    let members = i32::try_from(members).unwrap_or(i32::MAX).max(1);
    let per_member = count / members;
    let with_extra = count % members;
    (0..members).map(move |i| {
        let start = per_member * i + i.min(with_extra);
        let length = per_member + i32::from(i < with_extra);
        start..start + length
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_give_the_first_members_the_extra_partitions() {
        let split: Vec<_> = ranges(7, 3).collect();
        assert_eq!(split, [0..3, 3..5, 5..7]);
        let split: Vec<_> = ranges(2, 3).collect();
        assert_eq!(split, [0..1, 1..2, 2..2]);
    }
}
