//! Moving replicas and leaders on request, on the active controller:
//! AlterPartitionReassignments, ListPartitionReassignments and ElectLeaders. The rules are
//! in `controller::reassignment`; here they are applied to the image and committed.
//!
//! Changes are guarded by the partition epoch they were decided on, so one that raced an
//! ISR change is dropped by every node alike; such a partition is decided again on the new
//! state (a few rounds at most: ISR changes are rare next to these).

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_protocol::ErrorCode;
use tracing::info;
use uuid::Uuid;

use super::{Failure, Topics};
use crate::controller::image::{MetadataImage, PartitionRegistration};
use crate::controller::reassignment::{self, Change, Election};

/// How many times a change dropped for a racing change is decided again.
const ROUNDS: usize = 5;

/// A partition named by a request: topic name and index.
pub(crate) type PartitionName = (String, i32);

impl Topics {
    /// AlterPartitionReassignments: for each partition, starts moving it to the target
    /// replicas (`Some`) or cancels its move (`None`). Answers per partition, in order;
    /// the outer error when this node is not the active controller.
    pub(crate) async fn reassign(
        self: &Arc<Self>,
        wanted: Vec<(PartitionName, Option<Vec<i32>>)>,
    ) -> Result<Vec<Result<(), Failure>>, Failure> {
        let results = self
            .change_partitions(
                wanted.iter().map(|(name, _)| name.clone()).collect(),
                |image, i, p| {
                    let registered = |id: i32| image.brokers.contains_key(&id);
                    match &wanted[i].1 {
                        Some(target) => reassignment::start(p, target, registered)
                            // Already moving there (or there): nothing to record.
                            .map(|change| (!change.is_applied_to(p)).then_some(change)),
                        None => reassignment::cancel(p).map(Some),
                    }
                },
            )
            .await?;
        for ((topic, partition), target) in &wanted {
            info!(%topic, partition, ?target, "partition reassignment");
        }
        Ok(results)
    }

    /// ElectLeaders: a new leader of `kind` for each partition named, or for every
    /// partition when `None` (then only the partitions that got one, or failed otherwise
    /// than by not needing one, are answered, as Kafka does).
    pub(crate) async fn elect_leaders(
        self: &Arc<Self>,
        kind: Election,
        partitions: Option<Vec<PartitionName>>,
    ) -> Result<Vec<(PartitionName, Result<(), Failure>)>, Failure> {
        let all = partitions.is_none();
        let names = match partitions {
            Some(names) => names,
            None => {
                let image = self.controller_image()?;
                image
                    .topics
                    .values()
                    .flat_map(|t| {
                        (0..t.partitions.len())
                            .filter_map(|i| i32::try_from(i).ok())
                            .map(|i| (t.name.clone(), i))
                    })
                    .collect()
            }
        };
        let results = self
            .change_partitions(names.clone(), |image, _, p| {
                let usable = |id: i32| image.brokers.get(&id).is_some_and(|b| !b.fenced);
                reassignment::elect(p, kind, usable).map(Some)
            })
            .await?;
        Ok(names
            .into_iter()
            .zip(results)
            .filter(|(_, r)| {
                !(all && matches!(r, Err((code, _)) if *code == ErrorCode::ELECTION_NOT_NEEDED))
            })
            .collect())
    }

    /// The partitions with a reassignment in progress (their `replicas`, `adding` and
    /// `removing` say it), of the partitions named or of all.
    pub(crate) fn reassignments(
        &self,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> BTreeMap<PartitionName, PartitionRegistration> {
        let image = self.image();
        let mut out = BTreeMap::new();
        let mut add = |name: &str, index: i32, p: &PartitionRegistration| {
            if reassignment::in_progress(p) {
                out.insert((name.to_owned(), index), p.clone());
            }
        };
        match topics {
            Some(topics) => {
                for (name, indexes) in topics {
                    let Some(topic) = image.topic(name) else {
                        continue;
                    };
                    for &index in indexes {
                        if let Some(p) = image.partition(topic.id, index) {
                            add(name, index, p);
                        }
                    }
                }
            }
            None => {
                for topic in image.topics.values() {
                    for (index, p) in topic.partitions.iter().enumerate() {
                        add(&topic.name, i32::try_from(index).unwrap_or(i32::MAX), p);
                    }
                }
            }
        }
        out
    }

    /// Decides a change for each named partition with `decide` (given the image, the
    /// name's position and the partition; `Ok(None)` for nothing to change) and commits
    /// them together, deciding again those a racing change made the metadata log drop.
    async fn change_partitions(
        self: &Arc<Self>,
        names: Vec<PartitionName>,
        decide: impl Fn(
            &MetadataImage,
            usize,
            &PartitionRegistration,
        ) -> Result<Option<Change>, Failure>,
    ) -> Result<Vec<Result<(), Failure>>, Failure> {
        let _admin = self.admin.lock().await;
        let mut results: Vec<Option<Result<(), Failure>>> = vec![None; names.len()];
        for _ in 0..ROUNDS {
            let image = self.controller_image()?;
            let mut records = Vec::new();
            // The changes recorded, by position of the name, with the topic's id.
            let mut decided: Vec<(usize, Uuid, Change)> = Vec::new();
            for (i, (topic, index)) in names.iter().enumerate() {
                if results[i].is_some() {
                    continue;
                }
                let found = image
                    .topic(topic)
                    .and_then(|t| Some((t.id, image.partition(t.id, *index)?)));
                let Some((topic_id, p)) = found else {
                    results[i] = Some(Err((
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("partition {index} of topic '{topic}' does not exist"),
                    )));
                    continue;
                };
                match decide(&image, i, p) {
                    Ok(Some(change)) => {
                        records.push(change.clone().record(topic_id, *index, p.partition_epoch));
                        decided.push((i, topic_id, change));
                    }
                    Ok(None) => results[i] = Some(Ok(())),
                    Err(failure) => results[i] = Some(Err(failure)),
                }
            }
            if records.is_empty() {
                break;
            }
            self.commit(records).await?;
            let image = self.image();
            for (i, topic_id, change) in decided {
                // Dropped if another change came first: then decided again on the new state.
                if image
                    .partition(topic_id, names[i].1)
                    .is_some_and(|p| change.is_applied_to(p))
                {
                    results[i] = Some(Ok(()));
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err((
                        ErrorCode::REQUEST_TIMED_OUT,
                        "the partition kept changing; try again".into(),
                    ))
                })
            })
            .collect())
    }
}
