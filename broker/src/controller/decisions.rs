//! What the active controller decides from the image and the brokers' liveness: fence
//! brokers that stopped answering, unfence those that came back, and move the leadership
//! of partitions off fenced brokers. Pure functions of their inputs, so every rule is a
//! unit test; the quorum task proposes what they return.
//!
//! Leaders are chosen from the ISR only (unclean election is off): a partition whose
//! in-sync replicas are all fenced goes offline (leader -1) keeping its last ISR member, so
//! that member leads again when it comes back and nothing acknowledged is lost.

use uuid::Uuid;

use super::image::{MetadataImage, PartitionRegistration};
use super::reassignment::{self, Change};
use super::records::MetadataRecord;

/// The records that bring the image in line with which brokers are `alive`.
pub(crate) fn decide(image: &MetadataImage, alive: impl Fn(i32) -> bool) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    let mut fenced: Vec<i32> = Vec::new();
    for broker in image.brokers.values() {
        let live = alive(broker.id);
        if live == broker.fenced {
            out.push(MetadataRecord::FenceBroker {
                id: broker.id,
                epoch: broker.epoch,
                fenced: !live,
            });
        }
        if !live {
            fenced.push(broker.id);
        }
    }
    let usable = |id: i32| image.brokers.contains_key(&id) && !fenced.contains(&id);
    for topic in image.topics.values() {
        for (index, p) in topic.partitions.iter().enumerate() {
            let partition = i32::try_from(index).unwrap_or(i32::MAX);
            if let Some(change) = leadership(topic.id, partition, p, &usable) {
                out.push(change);
            } else if let Some(change) = reassignment::complete(p, usable) {
                out.push(change.record(topic.id, partition, p.partition_epoch));
            }
        }
    }
    out
}

/// The change a partition needs: a new leader when its leader is not usable (or it has
/// none and an ISR member is usable again), or a smaller ISR when a follower in it is
/// fenced; `None` when it is fine.
fn leadership(
    topic_id: Uuid,
    partition: i32,
    p: &PartitionRegistration,
    usable: &impl Fn(i32) -> bool,
) -> Option<MetadataRecord> {
    if p.leader >= 0 && usable(p.leader) {
        // The leader stays; fenced followers leave the ISR, so acks=all does not wait for
        // them.
        if p.isr.iter().all(|&r| usable(r)) {
            return None;
        }
        let isr: Vec<i32> = p.isr.iter().copied().filter(|&r| usable(r)).collect();
        let change = Change {
            isr: Some(isr),
            ..Change::default()
        };
        return Some(change.record(topic_id, partition, p.partition_epoch));
    }
    // Replicas in preference order, restricted to the ISR.
    let candidate = p
        .replicas
        .iter()
        .copied()
        .find(|&r| p.isr.contains(&r) && usable(r));
    let (leader, isr) = match candidate {
        Some(leader) => {
            // Fenced members leave the ISR; the new leader stays.
            let isr: Vec<i32> = p.isr.iter().copied().filter(|&r| usable(r)).collect();
            (leader, isr)
        }
        // Nobody in sync is usable: offline, keeping the last ISR member.
        None if p.leader >= 0 => (-1, vec![p.leader]),
        None => return None,
    };
    if leader == p.leader && isr == p.isr {
        return None;
    }
    let change = Change {
        leader: Some(leader),
        isr: Some(isr),
        ..Change::default()
    };
    Some(change.record(topic_id, partition, p.partition_epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(brokers: &[(i32, bool)], partitions: &[(Vec<i32>, Vec<i32>, i32)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        let mut index = 0;
        let mut apply = |image: &mut MetadataImage, r: MetadataRecord| {
            index += 1;
            image.apply(&r, index);
        };
        for &(id, fenced) in brokers {
            apply(
                &mut image,
                MetadataRecord::RegisterBroker {
                    id,
                    epoch: 1,
                    host: "h".into(),
                    port: 1,
                    rack: None,
                    endpoints: Vec::new(),
                },
            );
            apply(
                &mut image,
                MetadataRecord::FenceBroker {
                    id,
                    epoch: 1,
                    fenced,
                },
            );
        }
        let id = Uuid::from_u128(7);
        apply(
            &mut image,
            MetadataRecord::Topic {
                name: "t".into(),
                id,
            },
        );
        for (i, (replicas, isr, leader)) in partitions.iter().enumerate() {
            apply(
                &mut image,
                MetadataRecord::Partition {
                    topic_id: id,
                    partition: i as i32,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: 0,
                },
            );
        }
        image
    }

    fn changes(records: &[MetadataRecord]) -> Vec<(i32, i32, Vec<i32>)> {
        records
            .iter()
            .filter_map(|r| match r {
                MetadataRecord::PartitionChange {
                    partition,
                    leader: Some(leader),
                    isr: Some(isr),
                    ..
                } => Some((*partition, *leader, isr.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_silent_broker_is_fenced_and_loses_its_leaderships() {
        let image = image(
            &[(1, false), (2, false), (3, false)],
            &[
                (vec![1, 2, 3], vec![1, 2, 3], 1),
                (vec![2, 3, 1], vec![2, 3, 1], 2),
                // 3 is not in sync: it cannot take over.
                (vec![1, 3], vec![1], 1),
            ],
        );
        let records = decide(&image, |id| id != 1);
        assert!(records.contains(&MetadataRecord::FenceBroker {
            id: 1,
            epoch: 1,
            fenced: true
        }));
        assert_eq!(
            changes(&records),
            [(0, 2, vec![2, 3]), (2, -1, vec![1])],
            "partition 1 keeps its leader; partition 2 goes offline keeping 1 in its ISR"
        );
        // Partition 1 keeps its leader; the fenced follower leaves its ISR.
        assert!(records.iter().any(|r| matches!(
            r,
            MetadataRecord::PartitionChange { partition: 1, leader: None, isr: Some(isr), .. }
                if *isr == [2, 3]
        )));
        // Once applied, nothing more to do.
        let mut after = image.clone();
        for (i, r) in records.iter().enumerate() {
            after.apply(r, 100 + i as u64);
        }
        assert!(decide(&after, |id| id != 1).is_empty());

        // 1 comes back: unfenced, and it leads the partition only it was in sync for.
        let back = decide(&after, |_| true);
        assert!(back.contains(&MetadataRecord::FenceBroker {
            id: 1,
            epoch: 1,
            fenced: false
        }));
        assert_eq!(changes(&back), [(2, 1, vec![1])]);
    }

    #[test]
    fn nothing_changes_while_everyone_is_alive() {
        let image = image(&[(1, false), (2, false)], &[(vec![1, 2], vec![1, 2], 1)]);
        assert!(decide(&image, |_| true).is_empty());
        // A newly registered (fenced) broker that is alive gets unfenced.
        let image = self::image(&[(1, false), (2, true)], &[]);
        assert_eq!(
            decide(&image, |_| true),
            [MetadataRecord::FenceBroker {
                id: 2,
                epoch: 1,
                fenced: false
            }]
        );
    }
}
