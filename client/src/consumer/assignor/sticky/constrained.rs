//! The sticky assignment when every member subscribes to the same topics (Java's
//! `ConstrainedAssignmentBuilder`): with `P` partitions and `N` members each member gets
//! `min_quota = P / N` or `max_quota = ceil(P / N)` partitions, exactly `P % N` of them the
//! larger.
//!
//! 1. Members keep owned partitions (lowest partition index first): all of them if fewer
//!    than `min_quota`; `max_quota` if they own that many and the `P % N` places with
//!    `max_quota` are not taken yet; otherwise `min_quota`.
//! 2. The rest, sorted by topic then partition, go round robin to members under
//!    `min_quota` (by member id), then one each to members at `min_quota` while places
//!    with `max_quota` remain.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::TopicPartition;

/// Member id to assigned partitions, given each member's owned partitions (claims already
/// settled, all in `topics`).
pub(super) fn assign(
    topics: &BTreeMap<String, i32>,
    owned: &BTreeMap<String, Vec<TopicPartition>>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let total: usize = topics.values().map(|count| count_of(*count)).sum();
    let mut builder = Builder::new(total, owned.len());
    builder.keep_owned(owned);
    let unassigned = unassigned(topics, &builder.assignment);
    builder.fill(unassigned);
    builder.assignment
}

struct Builder {
    min_quota: usize,
    max_quota: usize,
    /// How many members end with `max_quota` when `max_quota > min_quota`.
    expected_over_min: usize,
    /// How many members have `max_quota` so far.
    over_min: usize,
    assignment: BTreeMap<String, Vec<TopicPartition>>,
    /// Members below `min_quota`.
    under_min: Vec<String>,
    /// Members at `min_quota` that may still get one more.
    exactly_min: VecDeque<String>,
}

impl Builder {
    fn new(total: usize, members: usize) -> Self {
        let members = members.max(1);
        Builder {
            min_quota: total / members,
            max_quota: total.div_ceil(members),
            expected_over_min: total % members,
            over_min: 0,
            assignment: BTreeMap::new(),
            under_min: Vec::new(),
            exactly_min: VecDeque::new(),
        }
    }

    /// Step 1: keep owned partitions up to each member's quota.
    fn keep_owned(&mut self, owned: &BTreeMap<String, Vec<TopicPartition>>) {
        for (member, partitions) in owned {
            let mut partitions = partitions.clone();
            partitions.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
            let keep = if partitions.len() < self.min_quota {
                self.under_min.push(member.clone());
                partitions.len()
            } else if partitions.len() >= self.max_quota && self.over_min < self.expected_over_min {
                self.over_min += 1;
                if self.over_min == self.expected_over_min {
                    self.exactly_min.clear();
                }
                self.max_quota
            } else {
                if self.over_min < self.expected_over_min {
                    self.exactly_min.push_back(member.clone());
                }
                self.min_quota
            };
            partitions.truncate(keep);
            self.assignment.insert(member.clone(), partitions);
        }
    }

    /// Step 2: hand out the partitions nobody kept.
    fn fill(&mut self, unassigned: Vec<TopicPartition>) {
        self.under_min.sort();
        self.exactly_min.make_contiguous().sort();
        let mut cursor = 0;
        for tp in unassigned {
            let from_under_min = !self.under_min.is_empty();
            let member = if cursor < self.under_min.len() {
                cursor += 1;
                self.under_min[cursor - 1].clone()
            } else if from_under_min {
                cursor = 1;
                self.under_min[0].clone()
            } else if let Some(member) = self.exactly_min.pop_front() {
                member
            } else {
                // The quotas add up to the partition count, so this cannot happen.
                tracing::error!(topic = %tp.0, partition = tp.1, "sticky assignor: no member left");
                continue;
            };
            let count = self.give(tp, &member);
            if count == self.min_quota && from_under_min {
                cursor -= 1;
                self.under_min.remove(cursor);
                self.exactly_min.push_back(member);
            } else if count == self.max_quota {
                self.over_min += 1;
            }
        }
    }

    /// Adds `tp` to `member`'s partitions; returns how many it has now.
    fn give(&mut self, tp: TopicPartition, member: &str) -> usize {
        let partitions = self.assignment.entry(member.to_owned()).or_default();
        partitions.push(tp);
        partitions.len()
    }
}

/// The partitions of `topics` nobody has in `assignment`, sorted by topic then partition.
fn unassigned(
    topics: &BTreeMap<String, i32>,
    assignment: &BTreeMap<String, Vec<TopicPartition>>,
) -> Vec<TopicPartition> {
    let assigned: BTreeSet<&TopicPartition> = assignment.values().flatten().collect();
    topics
        .iter()
        .flat_map(|(topic, count)| (0..*count).map(move |p| (topic.clone(), p)))
        .filter(|tp| !assigned.contains(tp))
        .collect()
}

/// A partition count as a `usize` (negative counts are none).
fn count_of(count: i32) -> usize {
    usize::try_from(count).unwrap_or(0)
}
