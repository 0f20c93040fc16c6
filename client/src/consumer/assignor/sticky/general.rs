//! The sticky assignment when members subscribe to different topics (Java's
//! `GeneralAssignmentBuilder`):
//!
//! 1. Members keep the owned partitions of topics they still subscribe to.
//! 2. Each other partition (topics with fewer possible members first) goes to the least
//!    loaded member subscribed to its topic.
//! 3. While some member could take a partition from one holding two more than it, move
//!    one: back to the member that owned it in an older generation when that helps,
//!    otherwise to the least loaded member subscribed to its topic. Only partitions of
//!    topics with two or more possible members, and members that could change, take part.
//! 4. Unless nothing was assigned before, keep the moves only if they made the counts more
//!    even (the sum of count differences over all member pairs went down).

use std::collections::{BTreeMap, BTreeSet};

use super::movements::Movements;
use super::{Group, TopicPartition};

/// Member id to assigned partitions.
pub(super) fn assign(group: &Group) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut builder = Builder::new(group);
    let all = builder.partitions_by_contention();
    let unassigned = all
        .iter()
        .filter(|tp| builder.owner_of(tp).is_none())
        .cloned()
        .collect();
    builder.balance(all, unassigned);
    builder.current
}

struct Builder<'a> {
    topics: &'a BTreeMap<String, i32>,
    /// Member to the existing topics it subscribes to.
    member_topics: BTreeMap<String, BTreeSet<String>>,
    /// Topic to the members subscribed to it.
    topic_members: BTreeMap<String, Vec<String>>,
    /// The assignment being built, for the members taking part in balancing.
    current: BTreeMap<String, Vec<TopicPartition>>,
    /// Topic to each partition's member.
    owners: BTreeMap<String, Vec<Option<String>>>,
    /// (partition count, member) of the members in `current`, least loaded first.
    load: BTreeSet<(usize, String)>,
    /// Where partitions were in older generations.
    previous: BTreeMap<TopicPartition, (String, i32)>,
    movements: Movements,
    /// Whether a member keeps a partition of a topic it no longer subscribes to.
    revocation_required: bool,
}

impl<'a> Builder<'a> {
    fn new(group: &'a Group) -> Self {
        let topics = &group.topics;
        let mut builder = Builder {
            topics,
            member_topics: BTreeMap::new(),
            topic_members: topics.keys().map(|t| (t.clone(), Vec::new())).collect(),
            current: BTreeMap::new(),
            owners: topics
                .iter()
                .map(|(t, n)| (t.clone(), vec![None; usize::try_from(*n).unwrap_or(0)]))
                .collect(),
            load: BTreeSet::new(),
            previous: group.previous_owners(),
            movements: Movements::default(),
            revocation_required: false,
        };
        for (id, member) in &group.members {
            builder.add_member(id, &member.topics, &member.owned);
        }
        builder
    }

    /// Step 1 for one member: its subscription and the owned partitions it keeps.
    fn add_member(&mut self, id: &str, topics: &BTreeSet<String>, owned: &[TopicPartition]) {
        let existing: BTreeSet<String> = topics
            .iter()
            .filter(|t| self.topics.contains_key(*t))
            .cloned()
            .collect();
        for topic in &existing {
            if let Some(members) = self.topic_members.get_mut(topic) {
                members.push(id.to_owned());
            }
        }
        self.member_topics.insert(id.to_owned(), existing);
        self.current.insert(id.to_owned(), Vec::new());
        self.load.insert((0, id.to_owned()));
        for tp in owned {
            if topics.contains(&tp.0) {
                self.give(tp.clone(), id);
            } else {
                self.revocation_required = true;
            }
        }
    }

    /// All partitions, topics with fewer possible members first, then by name and index.
    fn partitions_by_contention(&self) -> Vec<TopicPartition> {
        let mut topics: Vec<(&String, &i32)> = self.topics.iter().collect();
        topics.sort_by_key(|(topic, _)| (self.contention(topic), *topic));
        topics
            .into_iter()
            .flat_map(|(topic, count)| (0..*count).map(move |p| (topic.clone(), p)))
            .collect()
    }

    /// Steps 2 to 4.
    fn balance(&mut self, mut all: Vec<TopicPartition>, mut unassigned: Vec<TopicPartition>) {
        let initializing = self.current.values().all(Vec::is_empty);
        for tp in &unassigned {
            if let Some(member) = self.least_loaded_for(&tp.0) {
                self.give(tp.clone(), &member);
            }
        }
        all.retain(|tp| self.contention(&tp.0) >= 2);
        unassigned.retain(|tp| self.contention(&tp.0) >= 2);
        let fixed = self.set_aside_fixed_members();
        let before = (self.current.clone(), self.owners.clone());
        if !self.revocation_required {
            self.reassign_until_balanced(&unassigned);
        }
        let moved = self.reassign_until_balanced(&all);
        if !initializing && moved && score(&self.current) >= score(&before.0) {
            (self.current, self.owners) = before;
        }
        self.current.extend(fixed);
    }

    /// Takes out of balancing the members that have every partition they could get and
    /// only partitions no other member could take.
    fn set_aside_fixed_members(&mut self) -> Vec<(String, Vec<TopicPartition>)> {
        let fixed: Vec<String> = self
            .current
            .iter()
            .filter(|(id, partitions)| {
                partitions.len() >= self.max_size(id)
                    && partitions.iter().all(|tp| self.contention(&tp.0) < 2)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut set_aside = Vec::new();
        for id in fixed {
            if let Some(partitions) = self.current.remove(&id) {
                self.load.remove(&(partitions.len(), id.clone()));
                set_aside.push((id, partitions));
            }
        }
        set_aside
    }

    /// Moves partitions in `partitions` until balanced; whether any moved.
    fn reassign_until_balanced(&mut self, partitions: &[TopicPartition]) -> bool {
        let mut moved = false;
        loop {
            let mut modified = false;
            for tp in partitions {
                if self.is_balanced() {
                    break;
                }
                modified |= self.try_move(tp);
            }
            moved |= modified;
            if !modified {
                return moved;
            }
        }
    }

    /// Moves `tp` (or a partition standing in for it) if another member subscribed to its
    /// topic has at least two fewer partitions than its owner.
    fn try_move(&mut self, tp: &TopicPartition) -> bool {
        let Some(owner) = self.owner_of(tp).cloned() else {
            return false;
        };
        let Some(owner_count) = self.count(&owner) else {
            return false;
        };
        if let Some((previous, _)) = self.previous.get(tp).cloned() {
            let lighter = self.count(&previous).is_some_and(|c| owner_count > c + 1);
            if lighter && self.subscribes(&previous, &tp.0) {
                self.reassign(tp, &owner, &previous);
                return true;
            }
        }
        let lighter_exists = self.topic_members.get(&tp.0).is_some_and(|members| {
            members
                .iter()
                .any(|m| self.count(m).is_some_and(|c| owner_count > c + 1))
        });
        match self.least_loaded_for(&tp.0) {
            Some(target) if lighter_exists => {
                self.reassign(tp, &owner, &target);
                true
            }
            _ => false,
        }
    }

    fn reassign(&mut self, tp: &TopicPartition, owner: &str, target: &str) {
        let moving = self.movements.partition_to_move(tp, owner, target);
        let Some(from) = self.owner_of(&moving).cloned() else {
            return;
        };
        if from == target {
            return;
        }
        self.movements.record(&moving, &from, target);
        self.take(&moving, &from);
        self.give(moving, target);
    }

    /// Whether no member could take a partition of its topics from a member holding two
    /// more than it.
    fn is_balanced(&self) -> bool {
        let (Some(least), Some(most)) = (self.load.first(), self.load.last()) else {
            return true;
        };
        if least.0 + 1 >= most.0 {
            return true;
        }
        self.load.iter().all(|(count, id)| {
            *count >= self.max_size(id)
                || self
                    .member_topics
                    .get(id)
                    .into_iter()
                    .flatten()
                    .all(|topic| {
                        let owners = self.owners.get(topic).into_iter().flatten();
                        owners.flatten().all(|owner| {
                            owner == id || self.count(owner).is_none_or(|c| c <= count + 1)
                        })
                    })
        })
    }

    fn give(&mut self, tp: TopicPartition, member: &str) {
        let Some(partitions) = self.current.get_mut(member) else {
            return;
        };
        self.load.remove(&(partitions.len(), member.to_owned()));
        if let Some(slot) = slot(&mut self.owners, &tp) {
            *slot = Some(member.to_owned());
        }
        partitions.push(tp);
        self.load.insert((partitions.len(), member.to_owned()));
    }

    fn take(&mut self, tp: &TopicPartition, member: &str) {
        let Some(partitions) = self.current.get_mut(member) else {
            return;
        };
        self.load.remove(&(partitions.len(), member.to_owned()));
        partitions.retain(|p| p != tp);
        self.load.insert((partitions.len(), member.to_owned()));
        if let Some(slot) = slot(&mut self.owners, tp) {
            *slot = None;
        }
    }

    /// The least loaded member in balancing subscribed to `topic` (ties by member id).
    fn least_loaded_for(&self, topic: &str) -> Option<String> {
        self.load
            .iter()
            .find(|(_, id)| self.subscribes(id, topic))
            .map(|(_, id)| id.clone())
    }

    fn owner_of(&self, tp: &TopicPartition) -> Option<&String> {
        let index = usize::try_from(tp.1).ok()?;
        self.owners.get(&tp.0)?.get(index)?.as_ref()
    }

    /// How many partitions `member` has, if it takes part in balancing.
    fn count(&self, member: &str) -> Option<usize> {
        self.current.get(member).map(Vec::len)
    }

    fn subscribes(&self, member: &str, topic: &str) -> bool {
        self.member_topics
            .get(member)
            .is_some_and(|topics| topics.contains(topic))
    }

    /// How many members subscribe to `topic`.
    fn contention(&self, topic: &str) -> usize {
        self.topic_members.get(topic).map_or(0, Vec::len)
    }

    /// How many partitions `member` could have at most: all of its topics'.
    fn max_size(&self, member: &str) -> usize {
        let topics = self.member_topics.get(member).into_iter().flatten();
        topics
            .filter_map(|t| self.topics.get(t))
            .map(|n| usize::try_from(*n).unwrap_or(0))
            .sum()
    }
}

fn slot<'o>(
    owners: &'o mut BTreeMap<String, Vec<Option<String>>>,
    tp: &TopicPartition,
) -> Option<&'o mut Option<String>> {
    let index = usize::try_from(tp.1).ok()?;
    owners.get_mut(&tp.0)?.get_mut(index)
}

/// The sum over all member pairs of the difference of their partition counts; 0 is
/// perfectly even.
fn score(assignment: &BTreeMap<String, Vec<TopicPartition>>) -> usize {
    let counts: Vec<usize> = assignment.values().map(Vec::len).collect();
    let mut score = 0;
    for (i, a) in counts.iter().enumerate() {
        for b in &counts[i + 1..] {
            score += a.abs_diff(*b);
        }
    }
    score
}
