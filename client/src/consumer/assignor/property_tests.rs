//! Properties of every assignor over seeded pseudo-random groups (a tiny xorshift, so a
//! failing seed replays exactly; the seed is in the panic message).

use std::collections::{BTreeMap, BTreeSet};

use super::{
    sticky, Assignment, Assignor, CooperativeStickyAssignor, MemberSubscription, RangeAssignor,
    RoundRobinAssignor, Subscription,
};

const SEEDS: u64 = 400;

/// xorshift64*: enough randomness for test inputs, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

struct Group {
    topics: BTreeMap<String, i32>,
    members: Vec<MemberSubscription>,
}

/// A random group: up to 4 topics (some empty, one subscribed but missing), up to 7
/// members, identical or random subscriptions, no owned partitions.
fn random_group(rng: &mut Rng, identical: bool) -> Group {
    let mut topics = BTreeMap::new();
    for t in 0..1 + rng.below(4) {
        let count = if rng.chance(10) { 0 } else { 1 + rng.below(9) };
        topics.insert(format!("t{t}"), count as i32);
    }
    let mut names: Vec<String> = topics.keys().cloned().collect();
    names.push("missing".to_owned());
    let shared = random_subset(rng, &names);
    let mut members = Vec::new();
    for m in 0..1 + rng.below(7) {
        let topics = if identical {
            shared.clone()
        } else {
            random_subset(rng, &names)
        };
        let mut member = MemberSubscription::new(format!("m{m}"), Subscription::new(topics));
        if rng.chance(20) {
            member.group_instance_id = Some(format!("i{}", rng.below(100)));
        }
        members.push(member);
    }
    rng.shuffle(&mut members);
    Group { topics, members }
}

fn random_subset(rng: &mut Rng, names: &[String]) -> Vec<String> {
    let mut subset: Vec<String> = names.iter().filter(|_| rng.chance(60)).cloned().collect();
    if subset.is_empty() {
        subset.push(names[rng.below(names.len())].clone());
    }
    rng.shuffle(&mut subset);
    subset
}

/// Gives members the partitions of `previous` as owned, as if it was the assignment of
/// `generation`.
fn own(group: &mut Group, previous: &Assignment, generation: i32) {
    for member in &mut group.members {
        member.subscription.owned_partitions =
            previous.get(&member.member_id).cloned().unwrap_or_default();
        member.subscription.generation_id = generation;
    }
}

/// The next generation: members own what `previous` gave them, some leave, one may join.
fn next_generation(rng: &mut Rng, group: &mut Group, previous: &Assignment, generation: i32) {
    own(group, previous, generation);
    let leaving: Vec<bool> = group.members.iter().map(|_| rng.chance(15)).collect();
    let mut index = 0;
    group.members.retain(|_| {
        index += 1;
        !leaving[index - 1]
    });
    if group.members.is_empty() {
        return;
    }
    if rng.chance(50) {
        let mut joiner = group.members[0].clone();
        joiner.member_id = format!("joiner{}", rng.below(1000));
        joiner.group_instance_id = None;
        joiner.subscription.owned_partitions.clear();
        group.members.push(joiner);
    }
    rng.shuffle(&mut group.members);
}

/// Random, conflicting claims: partitions that exist or not, random generations.
fn add_chaotic_claims(rng: &mut Rng, group: &mut Group) {
    let all = all_partitions(&group.topics);
    for member in &mut group.members {
        member.subscription.generation_id = rng.below(4) as i32 - 1;
        member.subscription.owned_partitions = (0..rng.below(5))
            .map(|_| match all.len() {
                0 => ("t0".to_owned(), 99),
                n if rng.chance(90) => all[rng.below(n)].clone(),
                _ => ("t0".to_owned(), 1000),
            })
            .collect();
    }
}

fn all_partitions(topics: &BTreeMap<String, i32>) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|(t, n)| (0..*n).map(move |p| (t.clone(), p)))
        .collect()
}

/// Partitions of topics some member subscribes to.
fn subscribed_partitions(group: &Group) -> BTreeSet<(String, i32)> {
    all_partitions(&group.topics)
        .into_iter()
        .filter(|(t, _)| group.members.iter().any(|m| m.subscribes_to(t)))
        .collect()
}

/// Every member present; lists sorted; each partition exists, once, and only with a
/// member subscribed to its topic; with `exact`, every subscribed partition assigned.
fn assert_valid(group: &Group, assignment: &Assignment, exact: bool, seed: u64) {
    let ids: BTreeSet<&String> = group.members.iter().map(|m| &m.member_id).collect();
    assert_eq!(ids, assignment.keys().collect(), "seed {seed}: members");
    let mut seen = BTreeSet::new();
    for member in &group.members {
        let partitions = &assignment[&member.member_id];
        assert!(
            partitions.is_sorted(),
            "seed {seed}: unsorted {partitions:?}"
        );
        for tp in partitions {
            let count = group.topics.get(&tp.0).copied().unwrap_or(0);
            assert!(
                (0..count).contains(&tp.1),
                "seed {seed}: {tp:?} does not exist"
            );
            assert!(
                member.subscribes_to(&tp.0),
                "seed {seed}: {tp:?} to {}",
                member.member_id
            );
            assert!(
                seen.insert(tp.clone()),
                "seed {seed}: {tp:?} assigned twice"
            );
        }
    }
    if exact {
        assert_eq!(
            seen,
            subscribed_partitions(group),
            "seed {seed}: not all assigned"
        );
    }
}

/// Same result twice, and with the members in another order.
fn assert_deterministic(
    assign: &dyn Fn(&Group) -> Assignment,
    group: &mut Group,
    rng: &mut Rng,
    seed: u64,
) -> Assignment {
    let first = assign(group);
    assert_eq!(assign(group), first, "seed {seed}: not repeatable");
    rng.shuffle(&mut group.members);
    assert_eq!(assign(group), first, "seed {seed}: member order matters");
    first
}

/// Java's balance criterion: no member could take a partition of its topics from a member
/// holding two or more partitions more than it.
fn assert_balanced(group: &Group, assignment: &Assignment, seed: u64) {
    let count = |id: &str| assignment[id].len();
    for (owner, partitions) in assignment {
        for (topic, _) in partitions {
            for other in group.members.iter().filter(|m| m.subscribes_to(topic)) {
                assert!(
                    count(owner) < count(&other.member_id) + 2,
                    "seed {seed}: {owner} could give {topic} to {}: {assignment:?}",
                    other.member_id
                );
            }
        }
    }
}

fn assert_within_one(assignment: &Assignment, seed: u64) {
    let counts: Vec<usize> = assignment.values().map(Vec::len).collect();
    let (min, max) = (counts.iter().min(), counts.iter().max());
    assert!(
        max <= min.map(|m| m + 1).as_ref(),
        "seed {seed}: {assignment:?}"
    );
}

/// No partition goes to a member whose own claim did not win while another member
/// claims it: every other claimer must have a strictly lower generation than the
/// receiver's own claim.
fn assert_no_transfer_while_claimed(group: &Group, assignment: &Assignment, seed: u64) {
    for member in &group.members {
        for tp in &assignment[&member.member_id] {
            let own = member.subscription.owned_partitions.contains(tp);
            for other in group
                .members
                .iter()
                .filter(|o| o.member_id != member.member_id)
            {
                if other.subscription.owned_partitions.contains(tp) {
                    let wins = own
                        && member.subscription.generation_id
                            > other.subscription.generation_id.max(-1);
                    assert!(
                        wins,
                        "seed {seed}: {tp:?} to {} while {} claims it",
                        member.member_id, other.member_id
                    );
                }
            }
        }
    }
}

fn range(group: &Group) -> Assignment {
    RangeAssignor.assign(&group.topics, &group.members)
}

fn roundrobin(group: &Group) -> Assignment {
    RoundRobinAssignor.assign(&group.topics, &group.members)
}

fn cooperative(group: &Group) -> Assignment {
    CooperativeStickyAssignor.assign(&group.topics, &group.members)
}

fn eager(group: &Group) -> Assignment {
    sticky::eager_assign(&group.topics, &group.members)
}

#[test]
fn range_and_roundrobin_assign_every_partition_once_to_subscribers() {
    for seed in 0..SEEDS {
        let mut rng = Rng::new(seed);
        let identical = rng.chance(30);
        let mut group = random_group(&mut rng, identical);
        if rng.chance(50) {
            add_chaotic_claims(&mut rng, &mut group);
        }
        for assign in [range as fn(&Group) -> Assignment, roundrobin] {
            let assignment = assert_deterministic(&assign, &mut group, &mut rng, seed);
            assert_valid(&group, &assignment, true, seed);
        }
    }
}

#[test]
fn roundrobin_is_within_one_for_identical_subscriptions() {
    for seed in 0..SEEDS {
        let mut rng = Rng::new(seed);
        let group = random_group(&mut rng, true);
        assert_within_one(&roundrobin(&group), seed);
    }
}

#[test]
fn sticky_is_valid_balanced_and_deterministic_from_scratch() {
    for seed in 0..SEEDS {
        let mut rng = Rng::new(seed);
        let identical = rng.chance(50);
        let mut group = random_group(&mut rng, identical);
        let assignment = assert_deterministic(&eager, &mut group, &mut rng, seed);
        assert_valid(&group, &assignment, true, seed);
        assert_balanced(&group, &assignment, seed);
        if identical {
            assert_within_one(&assignment, seed);
        }
        // Nobody owns anything yet, so nothing is held back.
        assert_eq!(cooperative(&group), assignment, "seed {seed}");
        // Owning exactly what it gives, nothing moves.
        own(&mut group, &assignment, 1);
        assert_eq!(eager(&group), assignment, "seed {seed}: not a fixed point");
        assert_eq!(
            cooperative(&group),
            assignment,
            "seed {seed}: not a fixed point"
        );
    }
}

#[test]
fn sticky_keeps_owned_partitions_as_far_as_balance_allows() {
    for seed in 0..SEEDS {
        let mut rng = Rng::new(seed);
        let mut group = random_group(&mut rng, true);
        let previous = eager(&group);
        next_generation(&mut rng, &mut group, &previous, 1);
        let assignment = assert_deterministic(&eager, &mut group, &mut rng, seed);
        assert_valid(&group, &assignment, true, seed);
        assert_within_one(&assignment, seed);
        for member in &group.members {
            let owned = &member.subscription.owned_partitions;
            let now = &assignment[&member.member_id];
            let kept = now.iter().filter(|tp| owned.contains(tp)).count();
            assert_eq!(
                kept,
                owned.len().min(now.len()),
                "seed {seed}: {}",
                member.member_id
            );
        }
    }
}

#[test]
fn cooperative_never_hands_over_a_claimed_partition() {
    for seed in 0..SEEDS {
        let mut rng = Rng::new(seed);
        let identical = rng.chance(50);
        let mut group = random_group(&mut rng, identical);
        if rng.chance(50) {
            add_chaotic_claims(&mut rng, &mut group);
        } else {
            let previous = eager(&group);
            next_generation(&mut rng, &mut group, &previous, 1);
        }
        let assignment = assert_deterministic(&cooperative, &mut group, &mut rng, seed);
        assert_valid(&group, &assignment, false, seed);
        assert_no_transfer_while_claimed(&group, &assignment, seed);
        let balanced = eager(&group);
        assert_valid(&group, &balanced, true, seed);
        for (member, partitions) in &assignment {
            assert!(
                partitions.iter().all(|tp| balanced[member].contains(tp)),
                "seed {seed}"
            );
        }
    }
}

#[test]
fn cooperative_converges_after_revocations() {
    for seed in 0..SEEDS {
        let mut rng = Rng::new(seed);
        let identical = rng.chance(50);
        let mut group = random_group(&mut rng, identical);
        let previous = cooperative(&group);
        next_generation(&mut rng, &mut group, &previous, 1);
        let mut assignment = cooperative(&group);
        let mut rounds = 0;
        while assignment != eager(&group) {
            rounds += 1;
            assert!(
                rounds <= 3,
                "seed {seed}: still revoking after {rounds} rounds"
            );
            for member in &mut group.members {
                member.subscription.owned_partitions = assignment[&member.member_id].clone();
                member.subscription.generation_id = 1 + rounds;
            }
            assignment = cooperative(&group);
        }
        assert_valid(&group, &assignment, true, seed);
        assert_balanced(&group, &assignment, seed);
        if identical {
            assert_within_one(&assignment, seed);
        }
    }
}
