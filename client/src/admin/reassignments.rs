//! Moving replicas and leaders: AlterPartitionReassignments (key 45),
//! ListPartitionReassignments (key 46) and ElectLeaders (key 43), all sent to the
//! controller (a `NOT_CONTROLLER` answer refreshes the metadata and retries).
//!
//! A reassignment is accepted once the controller has recorded it; the new replicas then
//! copy the partition from its leader while producers and consumers carry on, and the
//! controller completes the move once they are in sync.
//! [`Admin::list_partition_reassignments`] shows the moves still in progress.

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest,
    ListPartitionReassignmentsRequest,
};
use strom_protocol::ErrorCode;

use super::topics::topic_name;
use super::{check, Admin};
use crate::error::ClientError;

/// One partition's move: to `Some(replicas)` (preferred leader first), or `None` to cancel
/// the move in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionMove {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
    /// The target replicas; `None` cancels.
    pub replicas: Option<Vec<i32>>,
}

/// A reassignment in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OngoingReassignment {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
    /// The partition's replicas now: the target ones, then those being removed.
    pub replicas: Vec<i32>,
    /// Replicas being added (catching up).
    pub adding: Vec<i32>,
    /// Replicas to be removed once the added ones are in sync.
    pub removing: Vec<i32>,
}

/// Which leader [`Admin::elect_leaders`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionType {
    /// The preferred (first) replica, if it is alive and in sync.
    Preferred,
    /// Any live replica of a partition that has no leader, in sync or not: records only
    /// the lost replicas held are gone for good.
    Unclean,
}

/// The outcome for one partition of a request about many.
#[derive(Debug)]
pub struct PartitionOutcome {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
    /// `Ok`, or the broker's error for this partition.
    pub result: Result<(), ClientError>,
}

impl Admin {
    /// Starts (or cancels) moving partitions to other brokers. Answers per partition once
    /// the controller has recorded the moves; they complete in the background.
    ///
    /// # Errors
    /// The request as a whole failing (no controller within the API timeout); a
    /// partition's own error (`INVALID_REPLICA_ASSIGNMENT`, `UNKNOWN_TOPIC_OR_PARTITION`,
    /// `NO_REASSIGNMENT_IN_PROGRESS` for a cancel) is in its [`PartitionOutcome`].
    pub async fn alter_partition_reassignments(
        &self,
        moves: &[PartitionMove],
    ) -> Result<Vec<PartitionOutcome>, ClientError> {
        let mut topics: Vec<ReassignableTopic> = Vec::new();
        for m in moves {
            let partition = ReassignablePartition::default()
                .with_partition_index(m.partition)
                .with_replicas(
                    m.replicas
                        .as_ref()
                        .map(|r| r.iter().copied().map(BrokerId).collect()),
                );
            match topics.iter_mut().find(|t| t.name.0.as_str() == m.topic) {
                Some(t) => t.partitions.push(partition),
                None => topics.push(
                    ReassignableTopic::default()
                        .with_name(topic_name(&m.topic))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.request_timeout_ms())
            .with_allow_replication_factor_change(true)
            .with_topics(topics);
        let response = self
            .with_retries("alter partition reassignments", &[], || async {
                let conn = self.cluster.controller().await?;
                let response = conn.send(&request).await?;
                check(response.error_code, response.error_message.as_ref(), || {
                    "alter partition reassignments".to_owned()
                })?;
                Ok(response)
            })
            .await?;
        let mut out = Vec::new();
        for topic in response.responses {
            for p in topic.partitions {
                let name = topic.name.0.to_string();
                out.push(PartitionOutcome {
                    result: check(p.error_code, p.error_message.as_ref(), || {
                        format!("reassign partition {} of {name}", p.partition_index)
                    }),
                    topic: name,
                    partition: p.partition_index,
                });
            }
        }
        Ok(out)
    }

    /// The reassignments in progress, of `topics` or of every topic (`None`).
    ///
    /// # Errors
    /// The request failing within the API timeout.
    pub async fn list_partition_reassignments(
        &self,
        topics: Option<&[(&str, Vec<i32>)]>,
    ) -> Result<Vec<OngoingReassignment>, ClientError> {
        let request = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.request_timeout_ms())
            .with_topics(topics.map(|topics| {
                topics
                    .iter()
                    .map(|(name, partitions)| {
                        ListPartitionReassignmentsTopics::default()
                            .with_name(topic_name(name))
                            .with_partition_indexes(partitions.clone())
                    })
                    .collect()
            }));
        let response = self
            .with_retries("list partition reassignments", &[], || async {
                let conn = self.cluster.controller().await?;
                let response = conn.send(&request).await?;
                check(response.error_code, response.error_message.as_ref(), || {
                    "list partition reassignments".to_owned()
                })?;
                Ok(response)
            })
            .await?;
        let ids = |ids: Vec<BrokerId>| ids.into_iter().map(|b| b.0).collect();
        Ok(response
            .topics
            .into_iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partitions.into_iter().map(move |p| OngoingReassignment {
                    topic: name.clone(),
                    partition: p.partition_index,
                    replicas: ids(p.replicas),
                    adding: ids(p.adding_replicas),
                    removing: ids(p.removing_replicas),
                })
            })
            .collect())
    }

    /// Elects leaders: of `partitions`, or of every partition (`None`; then only the
    /// partitions that got a new leader, or could not for another reason than already
    /// having the wanted one, are answered).
    ///
    /// # Errors
    /// The request as a whole failing; a partition's own error (`ELECTION_NOT_NEEDED`,
    /// `PREFERRED_LEADER_NOT_AVAILABLE`, `ELIGIBLE_LEADERS_NOT_AVAILABLE`) is in its
    /// [`PartitionOutcome`].
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<&[(&str, i32)]>,
    ) -> Result<Vec<PartitionOutcome>, ClientError> {
        let topic_partitions = partitions.map(|partitions| {
            let mut topics: Vec<TopicPartitions> = Vec::new();
            for &(topic, partition) in partitions {
                match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
                    Some(t) => t.partitions.push(partition),
                    None => topics.push(
                        TopicPartitions::default()
                            .with_topic(topic_name(topic))
                            .with_partitions(vec![partition]),
                    ),
                }
            }
            topics
        });
        let request = ElectLeadersRequest::default()
            .with_election_type(match election {
                ElectionType::Preferred => 0,
                ElectionType::Unclean => 1,
            })
            .with_topic_partitions(topic_partitions)
            .with_timeout_ms(self.request_timeout_ms());
        let response = self
            .with_retries("elect leaders", &[], || async {
                let conn = self.cluster.controller().await?;
                let response = conn.send(&request).await?;
                check(response.error_code, None, || "elect leaders".to_owned())?;
                Ok(response)
            })
            .await?;
        let mut out = Vec::new();
        for topic in response.replica_election_results {
            let name = topic.topic.0.to_string();
            for p in topic.partition_result {
                out.push(PartitionOutcome {
                    result: check(p.error_code, p.error_message.as_ref(), || {
                        format!("elect a leader of partition {} of {name}", p.partition_id)
                    }),
                    topic: name.clone(),
                    partition: p.partition_id,
                });
            }
        }
        Ok(out)
    }
}

impl PartitionOutcome {
    /// Whether the partition's error is `code`.
    pub fn is(&self, code: ErrorCode) -> bool {
        matches!(&self.result, Err(ClientError::Broker { code: c, .. }) if *c == code)
    }
}
