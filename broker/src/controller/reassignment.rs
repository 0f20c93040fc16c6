//! Moving a partition's replicas and choosing its leader on request: what the active
//! controller records for AlterPartitionReassignments and ElectLeaders, and when a
//! reassignment is complete. Pure functions of a partition's registration, so every rule
//! is a unit test.
//!
//! A reassignment follows KIP-455: the partition's replicas become the target replicas
//! followed by the ones being removed, `adding` and `removing` say which are which, and the
//! new replicas fetch from the leader like any follower. Once every target replica is in
//! the ISR the reassignment completes in one change: the replicas become the target, the
//! removed ones leave the ISR, and if the leader was removed the first in-sync target
//! replica takes over (a new leader epoch). Until then nothing is lost by cancelling: the
//! original replicas never stopped being replicas.

use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::image::PartitionRegistration;
use super::records::MetadataRecord;

/// A refusal: the Kafka error code and a message naming the problem.
pub(crate) type Refusal = (ErrorCode, String);

/// The fields of a partition change; `None` keeps a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) leader: Option<i32>,
    pub(crate) isr: Option<Vec<i32>>,
    pub(crate) replicas: Option<Vec<i32>>,
    pub(crate) adding: Option<Vec<i32>>,
    pub(crate) removing: Option<Vec<i32>>,
}

impl Change {
    /// Whether `p` is as this change makes it, leaving the ISR aside (the leader moves it
    /// on its own).
    pub(crate) fn is_applied_to(&self, p: &PartitionRegistration) -> bool {
        self.leader.is_none_or(|l| l == p.leader)
            && self.replicas.as_ref().is_none_or(|r| *r == p.replicas)
            && self.adding.as_ref().is_none_or(|r| *r == p.adding)
            && self.removing.as_ref().is_none_or(|r| *r == p.removing)
    }

    /// The record applying this change to partition `partition` of `topic_id` if it is
    /// still at partition epoch `if_epoch`.
    pub(crate) fn record(self, topic_id: Uuid, partition: i32, if_epoch: i32) -> MetadataRecord {
        MetadataRecord::PartitionChange {
            topic_id,
            partition,
            if_partition_epoch: Some(if_epoch),
            leader: self.leader,
            isr: self.isr,
            replicas: self.replicas,
            adding: self.adding,
            removing: self.removing,
        }
    }
}

/// Which leader an ElectLeaders request asks for (its `election_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Election {
    /// The first replica, if it is in sync and alive.
    Preferred,
    /// Any live replica, in sync or not, for a partition without a leader: records only
    /// its log holds may be lost, which is why it is never done without being asked.
    Unclean,
}

impl Election {
    /// The election type of a request (0 preferred, 1 unclean).
    pub(crate) fn from_kafka(kind: i8) -> Option<Election> {
        match kind {
            0 => Some(Election::Preferred),
            1 => Some(Election::Unclean),
            _ => None,
        }
    }
}

/// Whether a reassignment of `p` is in progress.
pub(crate) fn in_progress(p: &PartitionRegistration) -> bool {
    !p.adding.is_empty() || !p.removing.is_empty()
}

/// The replicas `p` had before its reassignment (its replicas when there is none).
pub(crate) fn original(p: &PartitionRegistration) -> Vec<i32> {
    p.replicas
        .iter()
        .copied()
        .filter(|r| !p.adding.contains(r))
        .collect()
}

/// The replicas `p` will have once its reassignment completes.
pub(crate) fn target(p: &PartitionRegistration) -> Vec<i32> {
    p.replicas
        .iter()
        .copied()
        .filter(|r| !p.removing.contains(r))
        .collect()
}

/// Checks a replica list someone asked for: not empty, distinct, on brokers that are
/// `registered`.
pub(crate) fn check_replicas(
    replicas: &[i32],
    registered: impl Fn(i32) -> bool,
) -> Result<(), Refusal> {
    let mut distinct = replicas.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if replicas.is_empty() || distinct.len() != replicas.len() {
        return Err((
            ErrorCode::INVALID_REPLICA_ASSIGNMENT,
            format!("the replicas {replicas:?} must be distinct and not empty"),
        ));
    }
    if let Some(unknown) = replicas.iter().find(|&&b| !registered(b)) {
        return Err((
            ErrorCode::INVALID_REPLICA_ASSIGNMENT,
            format!("broker {unknown} is not registered"),
        ));
    }
    Ok(())
}

/// The change that starts moving `p` to `target` (replacing a reassignment in progress,
/// counted from the original replicas). `registered` says which broker ids exist.
pub(crate) fn start(
    p: &PartitionRegistration,
    target: &[i32],
    registered: impl Fn(i32) -> bool,
) -> Result<Change, Refusal> {
    check_replicas(target, registered)?;
    let original = original(p);
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    let removing: Vec<i32> = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    // Replicas added by a replaced reassignment and not wanted now leave the ISR.
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect();
    Ok(Change {
        leader: None,
        isr: Some(isr),
        replicas: Some(replicas),
        adding: Some(adding),
        removing: Some(removing),
    })
}

/// The change that cancels the reassignment of `p`, going back to its original replicas.
pub(crate) fn cancel(p: &PartitionRegistration) -> Result<Change, Refusal> {
    if !in_progress(p) {
        return Err((
            ErrorCode::NO_REASSIGNMENT_IN_PROGRESS,
            "no reassignment of this partition is in progress".into(),
        ));
    }
    let original = original(p);
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| original.contains(r))
        .collect();
    Ok(Change {
        leader: None,
        isr: Some(isr),
        replicas: Some(original),
        adding: Some(Vec::new()),
        removing: Some(Vec::new()),
    })
}

/// The change that completes the reassignment of `p` once every target replica is in
/// sync; `None` while one is not (or there is no reassignment, or no usable leader among
/// the target replicas).
pub(crate) fn complete(p: &PartitionRegistration, usable: impl Fn(i32) -> bool) -> Option<Change> {
    if !in_progress(p) {
        return None;
    }
    let target = target(p);
    if !target.iter().all(|r| p.isr.contains(r)) {
        return None;
    }
    let leader = if target.contains(&p.leader) && usable(p.leader) {
        p.leader
    } else {
        target.iter().copied().find(|&r| usable(r))?
    };
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| target.contains(r))
        .collect();
    Some(Change {
        leader: (leader != p.leader).then_some(leader),
        isr: Some(isr),
        replicas: Some(target),
        adding: Some(Vec::new()),
        removing: Some(Vec::new()),
    })
}

/// The change an election of `kind` makes to `p`, or why there is none: Kafka's
/// `ELECTION_NOT_NEEDED` when the wanted leader already leads,
/// `PREFERRED_LEADER_NOT_AVAILABLE` / `ELIGIBLE_LEADERS_NOT_AVAILABLE` when no replica
/// may lead.
pub(crate) fn elect(
    p: &PartitionRegistration,
    kind: Election,
    usable: impl Fn(i32) -> bool,
) -> Result<Change, Refusal> {
    match kind {
        Election::Preferred => {
            let Some(&preferred) = p.replicas.first() else {
                return Err((
                    ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE,
                    "the partition has no replicas".into(),
                ));
            };
            if p.leader == preferred {
                return Err((
                    ErrorCode::ELECTION_NOT_NEEDED,
                    format!("the preferred replica {preferred} already leads"),
                ));
            }
            if !p.isr.contains(&preferred) || !usable(preferred) {
                return Err((
                    ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE,
                    format!("the preferred replica {preferred} is not alive and in sync"),
                ));
            }
            Ok(Change {
                leader: Some(preferred),
                ..Change::default()
            })
        }
        Election::Unclean => {
            if p.leader >= 0 && usable(p.leader) {
                return Err((
                    ErrorCode::ELECTION_NOT_NEEDED,
                    format!("replica {} leads", p.leader),
                ));
            }
            let in_sync = p
                .replicas
                .iter()
                .copied()
                .find(|&r| p.isr.contains(&r) && usable(r));
            if let Some(leader) = in_sync {
                let isr = p.isr.iter().copied().filter(|&r| usable(r)).collect();
                return Ok(Change {
                    leader: Some(leader),
                    isr: Some(isr),
                    ..Change::default()
                });
            }
            let Some(leader) = p
                .replicas
                .iter()
                .copied()
                .find(|&r| usable(r) && !p.adding.contains(&r))
            else {
                return Err((
                    ErrorCode::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                    "no replica of the partition is alive".into(),
                ));
            };
            Ok(Change {
                leader: Some(leader),
                isr: Some(vec![leader]),
                ..Change::default()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionRegistration {
        PartitionRegistration {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    /// `p` with `change` applied the way the image applies it.
    fn apply(p: &PartitionRegistration, change: Change) -> PartitionRegistration {
        let mut image = crate::controller::image::MetadataImage::default();
        let id = Uuid::from_u128(1);
        image.apply(
            &MetadataRecord::Topic {
                name: "t".into(),
                id,
            },
            1,
        );
        image.apply(
            &MetadataRecord::Partition {
                topic_id: id,
                partition: 0,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                leader: p.leader,
                leader_epoch: p.leader_epoch,
            },
            2,
        );
        let mut current = image.partition(id, 0).cloned().unwrap();
        current.adding.clone_from(&p.adding);
        current.removing.clone_from(&p.removing);
        image.topics.get_mut(&id).unwrap().partitions[0] = current;
        image.apply(&change.record(id, 0, 0), 3);
        image.partition(id, 0).cloned().unwrap()
    }

    #[test]
    fn a_move_adds_the_new_replicas_and_completes_once_they_are_in_sync() {
        let p = partition(&[1, 2, 3], &[1, 2, 3], 1);
        let moving = apply(&p, start(&p, &[2, 3, 4], |_| true).unwrap());
        assert_eq!(moving.replicas, [2, 3, 4, 1]);
        assert_eq!(
            (moving.adding.clone(), moving.removing.clone()),
            (vec![4], vec![1])
        );
        assert_eq!(target(&moving), [2, 3, 4]);
        assert_eq!(original(&moving), [2, 3, 1]);
        assert_eq!(
            moving.leader, 1,
            "the leader stays until the move completes"
        );
        assert_eq!(complete(&moving, |_| true), None, "4 is not in sync yet");

        let mut caught_up = moving.clone();
        caught_up.isr = vec![1, 2, 3, 4];
        let done = apply(&caught_up, complete(&caught_up, |_| true).unwrap());
        assert_eq!(done.replicas, [2, 3, 4]);
        assert_eq!(done.isr, [2, 3, 4]);
        assert_eq!(
            done.leader, 2,
            "the removed leader hands over to the first target"
        );
        assert_eq!(done.leader_epoch, 1);
        assert!(!in_progress(&done));
        assert_eq!(complete(&done, |_| true), None);
    }

    #[test]
    fn a_move_within_the_replicas_completes_without_a_new_leader() {
        // Dropping a replica: nothing to add, so it completes at once.
        let p = partition(&[1, 2, 3], &[1, 2, 3], 1);
        let moving = apply(&p, start(&p, &[1, 2], |_| true).unwrap());
        let done = complete(&moving, |_| true).unwrap();
        assert_eq!(done.leader, None);
        assert_eq!(done.replicas, Some(vec![1, 2]));
        assert_eq!(done.isr, Some(vec![1, 2]));
        // A target replica out of sync holds the move back.
        let p = partition(&[1, 2, 3], &[1, 2], 1);
        let moving = apply(&p, start(&p, &[1, 3], |_| true).unwrap());
        assert_eq!(complete(&moving, |_| true), None);
        // And a target without a live replica to lead holds it back too.
        let mut p = partition(&[1, 2], &[1, 2, 3], 1);
        p.adding = vec![3];
        p.replicas = vec![3, 1, 2];
        p.removing = vec![1, 2];
        assert_eq!(complete(&p, |id| id != 3), None);
    }

    #[test]
    fn a_new_target_replaces_the_move_in_progress_and_cancel_goes_back() {
        let p = partition(&[1, 2], &[1, 2], 1);
        let first = apply(&p, start(&p, &[3, 4], |_| true).unwrap());
        assert_eq!(first.replicas, [3, 4, 1, 2]);
        let mut first_caught_up = first.clone();
        first_caught_up.isr = vec![1, 2, 3];
        let second = apply(
            &first_caught_up,
            start(&first_caught_up, &[2, 5], |_| true).unwrap(),
        );
        assert_eq!(second.replicas, [2, 5, 1]);
        assert_eq!(
            (second.adding.clone(), second.removing.clone()),
            (vec![5], vec![1])
        );
        assert_eq!(second.isr, [1, 2], "3 is no replica any more");

        let back = apply(&second, cancel(&second).unwrap());
        assert_eq!(back.replicas, [2, 1]);
        assert_eq!(back.isr, [1, 2]);
        assert!(!in_progress(&back));
        assert_eq!(
            cancel(&back).unwrap_err().0,
            ErrorCode::NO_REASSIGNMENT_IN_PROGRESS
        );
    }

    #[test]
    fn bad_targets_are_refused() {
        let p = partition(&[1, 2], &[1, 2], 1);
        for target in [&[][..], &[1, 1], &[1, 9]] {
            let (code, message) = start(&p, target, |id| id < 5).unwrap_err();
            assert_eq!(code, ErrorCode::INVALID_REPLICA_ASSIGNMENT, "{message}");
        }
    }

    #[test]
    fn preferred_election_needs_the_first_replica_alive_and_in_sync() {
        let p = partition(&[1, 2, 3], &[1, 2, 3], 2);
        assert_eq!(
            elect(&p, Election::Preferred, |_| true).unwrap().leader,
            Some(1)
        );
        let (code, _) = elect(&p, Election::Preferred, |id| id != 1).unwrap_err();
        assert_eq!(code, ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE);
        let out_of_sync = partition(&[1, 2, 3], &[2, 3], 2);
        let (code, _) = elect(&out_of_sync, Election::Preferred, |_| true).unwrap_err();
        assert_eq!(code, ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE);
        let led = partition(&[1, 2, 3], &[1, 2, 3], 1);
        let (code, _) = elect(&led, Election::Preferred, |_| true).unwrap_err();
        assert_eq!(code, ErrorCode::ELECTION_NOT_NEEDED);
    }

    #[test]
    fn unclean_election_takes_any_live_replica_only_when_asked_and_needed() {
        // Offline, its last in-sync replica (1) gone: 3 may lead, alone in the ISR.
        let offline = partition(&[1, 2, 3], &[1], -1);
        let change = elect(&offline, Election::Unclean, |id| id == 3).unwrap();
        assert_eq!((change.leader, change.isr), (Some(3), Some(vec![3])));
        // An in-sync replica is preferred when there is one.
        let change = elect(&offline, Election::Unclean, |_| true).unwrap();
        assert_eq!(change.leader, Some(1));
        let (code, _) = elect(&offline, Election::Unclean, |_| false).unwrap_err();
        assert_eq!(code, ErrorCode::ELIGIBLE_LEADERS_NOT_AVAILABLE);
        let led = partition(&[1, 2, 3], &[1, 2, 3], 2);
        let (code, _) = elect(&led, Election::Unclean, |_| true).unwrap_err();
        assert_eq!(code, ErrorCode::ELECTION_NOT_NEEDED);
    }
}
