//! Consumer groups: ListGroups (key 16) to every broker; DescribeGroups (key 15),
//! OffsetFetch (key 9), OffsetCommit (key 8) and DeleteGroups (key 42) to the group's
//! coordinator, found with FindCoordinator (key 10).
//!
//! ```text
//!  list_groups          ──▶ every broker (each lists the groups it coordinates), merged
//!  describe_group       ──▶ coordinator: DescribeGroups; member assignments decoded
//!  group_offsets        ──▶ coordinator: OffsetFetch (every partition)
//!                           + leaders: ListOffsets (latest), for the lag
//!  reset_group_offsets  ──▶ coordinator: DescribeGroups (Empty or Dead, else refused)
//!                           ──▶ leaders: ListOffsets ──▶ coordinator: OffsetCommit
//!  delete_groups        ──▶ each group's coordinator: DeleteGroups
//! ```
//!
//! Each call opens its own connection to the group's coordinator. A coordinator that moved
//! or is still loading (`NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE`,
//! `COORDINATOR_LOAD_IN_PROGRESS`) is looked up again and asked again, within the API
//! timeout, as the other admin calls retry.
//!
//! Committed offsets can only be changed from outside while the group has no members, as
//! Kafka's `kafka-consumer-groups --reset-offsets` requires: a running member would
//! overwrite them with its next commit.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let mut broker_config = strom_broker::BrokerConfig::new(dir.path());
//! # broker_config.group_initial_rebalance_delay = std::time::Duration::ZERO;
//! # let broker = strom_broker::Broker::start(broker_config).await?;
//! use strom_client::admin::{Admin, NewTopic, ResetTo};
//! use strom_client::config::OffsetReset;
//! use strom_client::producer::{Producer, Record};
//! use strom_client::{ClientConfig, Consumer};
//!
//! let config = ClientConfig::new().bootstrap(&broker.bootstrap());
//! let admin = Admin::connect(config.clone()).await?;
//! admin.create_topic(NewTopic::new("orders").partitions(1)).await?;
//! let producer = Producer::new(config.clone()).await?;
//! for i in 0..3 {
//!     producer.send(Record::new("orders").value(i.to_string())).await?.await?;
//! }
//!
//! let consumer = Consumer::new(
//!     config.clone().group_id("billing").auto_offset_reset(OffsetReset::Earliest),
//! )
//! .await?;
//! consumer.subscribe(&["orders"])?;
//! consumer.recv().await?; // joins the group and reads offset 0
//! consumer.commit().await?; // commits position 1
//!
//! let group = admin.describe_group("billing").await?;
//! assert_eq!(group.state, "Stable");
//! assert_eq!(group.members[0].assignment, [("orders".to_owned(), 0)]);
//! let offsets = admin.group_offsets("billing").await?;
//! assert_eq!((offsets[0].committed, offsets[0].log_end_offset, offsets[0].lag), (1, 3, 2));
//!
//! consumer.shutdown().await?; // leaves the group: now its offsets may be reset
//! let reset = admin.reset_group_offsets("billing", &["orders"], ResetTo::Earliest).await?;
//! assert_eq!(reset, [("orders".to_owned(), 0, 0)]);
//! for (_, result) in admin.delete_groups(&["billing"]).await? {
//!     result?;
//! }
//! assert!(admin.list_groups().await?.is_empty());
//! # broker.shutdown().await?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetCommitRequest,
    OffsetFetchRequest,
};
use kafka_protocol::protocol::Request;
use strom_protocol::ErrorCode;

use super::offsets::OffsetSpec;
use super::retry::Retry;
use super::topics::topic_name;
use super::{check, str_bytes, Admin};
use crate::consumer::assignor::decode_assignment;
use crate::consumer::group::coordinator::{Coordinator, COORDINATOR_ERRORS};
use crate::error::ClientError;

/// Newest versions whose fields these calls set.
const LIST_GROUPS_MAX: i16 = 4;
const DESCRIBE_GROUPS_MAX: i16 = 5;
const OFFSET_FETCH_MAX: i16 = 7;
const OFFSET_COMMIT_MAX: i16 = 8;
const DELETE_GROUPS_MAX: i16 = 2;

/// A group as [`Admin::list_groups`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// `consumer` for consumer groups; empty for a group that only stores offsets.
    pub protocol_type: String,
    /// Kafka's state name (`Stable`, `Empty`, ...); `None` from brokers before ListGroups
    /// v4 (Kafka 2.6).
    pub state: Option<String>,
}

/// A group as its coordinator describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Kafka's state name: `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable`,
    /// or `Dead` (also for a group that does not exist).
    pub state: String,
    /// `consumer` for consumer groups; empty when the group has none.
    pub protocol_type: String,
    /// The protocol the members agreed on (the assignor: `range`, `cooperative-sticky`,
    /// ...); empty unless `Stable`.
    pub protocol: String,
    /// The members, in the coordinator's order.
    pub members: Vec<GroupMember>,
}

/// One member of a [`GroupDescription`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    /// The id the coordinator gave the member.
    pub member_id: String,
    /// `group.instance.id` of a static member (DescribeGroups v4+).
    pub group_instance_id: Option<String>,
    /// The member's `client.id`.
    pub client_id: String,
    /// The host the member connected from, as the coordinator saw it.
    pub client_host: String,
    /// The member's partitions, sorted: decoded for consumer groups in the `Stable` state,
    /// empty otherwise (or when the bytes are not the consumer protocol's).
    pub assignment: Vec<(String, i32)>,
}

/// One partition's committed offset and how far behind the log end it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset: the next record the group reads.
    pub committed: i64,
    /// The partition's high watermark; -1 when the topic or partition no longer exists.
    pub log_end_offset: i64,
    /// `log_end_offset - committed` (never below 0); -1 when the log end is unknown.
    pub lag: i64,
    /// The metadata string committed with the offset.
    pub metadata: String,
}

/// Where [`Admin::reset_group_offsets`] moves a group's committed offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTo {
    /// Each partition's log start offset (`--to-earliest`).
    Earliest,
    /// Each partition's high watermark: only new records are read (`--to-latest`).
    Latest,
    /// The first record at or after this time, ms since the epoch; the log end where every
    /// record is older (`--to-datetime`).
    Timestamp(i64),
    /// This offset in every partition, moved into `[log start, log end]`
    /// (`--to-offset`).
    Offset(i64),
}

impl Admin {
    /// Every group of the cluster, sorted by id: ListGroups to each broker in the
    /// metadata (each lists the groups it coordinates), merged.
    ///
    /// # Errors
    /// A broker's error code as [`ClientError::Broker`], or a broker that stays
    /// unreachable for the API timeout.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        let metadata = self
            .with_retries("list groups", &[], || {
                self.cluster.refresh_metadata(Some(&[]))
            })
            .await?;
        let mut groups = BTreeMap::new();
        for &node_id in metadata.brokers.keys() {
            let listed = self
                .with_retries(format!("list groups on broker {node_id}"), &[], || {
                    self.list_groups_on(node_id)
                })
                .await?;
            for group in listed {
                groups.insert(group.group_id.clone(), group);
            }
        }
        Ok(groups.into_values().collect())
    }

    /// One ListGroups request to broker `node_id`.
    async fn list_groups_on(&self, node_id: i32) -> Result<Vec<GroupListing>, ClientError> {
        let conn = self.cluster.broker(node_id).await?;
        let version = conn
            .version_for::<ListGroupsRequest>()?
            .min(LIST_GROUPS_MAX);
        let response = conn
            .send_version(&ListGroupsRequest::default(), version)
            .await?;
        check(response.error_code, None, || {
            format!("list groups on broker {node_id}")
        })?;
        Ok(response
            .groups
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.group_id.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: (version >= 4).then(|| g.group_state.to_string()),
            })
            .collect())
    }

    /// Describes `group`: its state, protocol and members with their assignments. A group
    /// that does not exist is described as `Dead`, with no members.
    ///
    /// # Errors
    /// The group's error code (`INVALID_GROUP_ID`, ...) as [`ClientError::Broker`], or no
    /// coordinator answering within the API timeout.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, ClientError> {
        let coordinator = Coordinator::new(self.cluster.clone(), group.to_owned());
        self.describe_group_with(&coordinator, group).await
    }

    async fn describe_group_with(
        &self,
        coordinator: &Coordinator,
        group: &str,
    ) -> Result<GroupDescription, ClientError> {
        let what = format!("describe group {group}");
        let request = |_| DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
        self.ask_coordinator(
            coordinator,
            &what,
            DESCRIBE_GROUPS_MAX,
            request,
            |response| {
                let described = response
                    .groups
                    .into_iter()
                    .find(|g| g.group_id.0.as_str() == group)
                    .ok_or_else(|| missing_answer(&what))?;
                check(
                    described.error_code,
                    described.error_message.as_ref(),
                    || what.clone(),
                )?;
                Ok(description(described))
            },
        )
        .await
    }

    /// The committed offsets of every partition `group` has one for, each with its
    /// partition's log end offset and the lag between them, sorted by topic and partition.
    /// Needs OffsetFetch v2 (Kafka 0.10.2) to ask for every partition.
    ///
    /// # Errors
    /// The group's or a partition's error code as [`ClientError::Broker`]; a log end
    /// lookup's error other than a missing topic (whose partitions get -1).
    pub async fn group_offsets(&self, group: &str) -> Result<Vec<GroupOffset>, ClientError> {
        let coordinator = Coordinator::new(self.cluster.clone(), group.to_owned());
        let committed = self.committed_offsets(&coordinator, group).await?;
        let topics: BTreeSet<&str> = committed.iter().map(|c| c.0.as_str()).collect();
        let mut ends = BTreeMap::new();
        for topic in topics {
            match self.list_offsets(topic, OffsetSpec::Latest).await {
                Ok(found) => ends.extend(found.into_iter().map(|(p, o)| ((topic, p), o.offset))),
                Err(e) if e.code() == Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(committed
            .iter()
            .map(|(topic, partition, offset, metadata)| {
                let end = ends.get(&(topic.as_str(), *partition)).copied();
                let end = end.filter(|e| *e >= 0).unwrap_or(-1);
                GroupOffset {
                    topic: topic.clone(),
                    partition: *partition,
                    committed: *offset,
                    log_end_offset: end,
                    lag: if end >= 0 { (end - offset).max(0) } else { -1 },
                    metadata: metadata.clone(),
                }
            })
            .collect())
    }

    /// OffsetFetch of every partition of `group`: `(topic, partition, offset, metadata)`
    /// for those with a committed offset, sorted.
    async fn committed_offsets(
        &self,
        coordinator: &Coordinator,
        group: &str,
    ) -> Result<Vec<(String, i32, i64, String)>, ClientError> {
        let what = format!("fetch the committed offsets of group {group}");
        let request = |_| {
            OffsetFetchRequest::default()
                .with_group_id(group_id(group))
                .with_topics(None)
        };
        self.ask_coordinator(coordinator, &what, OFFSET_FETCH_MAX, request, |response| {
            check(response.error_code, None, || what.clone())?;
            let mut found = Vec::new();
            for t in response.topics {
                let topic = t.name.0.to_string();
                for p in t.partitions {
                    let partition = p.partition_index;
                    check(p.error_code, None, || {
                        format!("{what}: {topic}-{partition}")
                    })?;
                    if p.committed_offset >= 0 {
                        let metadata = p.metadata.map(|m| m.to_string()).unwrap_or_default();
                        found.push((topic.clone(), partition, p.committed_offset, metadata));
                    }
                }
            }
            found.sort();
            Ok(found)
        })
        .await
    }

    /// Deletes groups, with their committed offsets, each through its coordinator; returns
    /// each group's outcome in request order. Only groups without members can be deleted.
    ///
    /// # Errors
    /// The outer error when a coordinator cannot be reached within the API timeout;
    /// per-group errors such as `NON_EMPTY_GROUP` (it has members) or
    /// `GROUP_ID_NOT_FOUND` are in the results, as [`ClientError::Broker`].
    pub async fn delete_groups(
        &self,
        groups: &[&str],
    ) -> Result<Vec<(String, Result<(), ClientError>)>, ClientError> {
        let mut results = Vec::with_capacity(groups.len());
        for &group in groups {
            let result = match self.delete_group(group).await {
                Err(e @ ClientError::Broker { .. }) => Err(e),
                Err(e) => return Err(e),
                Ok(()) => Ok(()),
            };
            results.push((group.to_owned(), result));
        }
        Ok(results)
    }

    /// DeleteGroups of one group, to its coordinator.
    async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        let coordinator = Coordinator::new(self.cluster.clone(), group.to_owned());
        let what = format!("delete group {group}");
        let request = |_| DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
        self.ask_coordinator(
            &coordinator,
            &what,
            DELETE_GROUPS_MAX,
            request,
            |response| {
                let result = response
                    .results
                    .into_iter()
                    .find(|r| r.group_id.0.as_str() == group)
                    .ok_or_else(|| missing_answer(&what))?;
                check(result.error_code, None, || what.clone())
            },
        )
        .await
    }

    /// Moves the committed offsets of `group` for every partition of `topics` to `to`,
    /// and returns the new offsets `(topic, partition, offset)`, sorted. The group must
    /// have no members (state `Empty`, or `Dead` for a group that does not exist yet).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let broker = strom_broker::Broker::start(strom_broker::BrokerConfig::new(dir.path())).await?;
    /// use strom_client::admin::{Admin, NewTopic, ResetTo};
    /// use strom_client::ClientConfig;
    ///
    /// let admin = Admin::connect(ClientConfig::new().bootstrap(&broker.bootstrap())).await?;
    /// admin.create_topic(NewTopic::new("clicks").partitions(2)).await?;
    /// // A group that does not exist yet starts where it is told to.
    /// let reset = admin.reset_group_offsets("reports", &["clicks"], ResetTo::Offset(7)).await?;
    /// // The topic is empty: offset 7 is moved back to its end, 0.
    /// assert_eq!(reset, [("clicks".to_owned(), 0, 0), ("clicks".to_owned(), 1, 0)]);
    /// assert_eq!(admin.group_offsets("reports").await?.len(), 2);
    /// # broker.shutdown().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::InvalidState`] naming the group's state while it has members;
    /// `UNKNOWN_TOPIC_OR_PARTITION` for a topic that does not exist; the coordinator's
    /// answer to the commit (e.g. `UNKNOWN_MEMBER_ID` when a member joined meanwhile).
    pub async fn reset_group_offsets(
        &self,
        group: &str,
        topics: &[&str],
        to: ResetTo,
    ) -> Result<Vec<(String, i32, i64)>, ClientError> {
        let coordinator = Coordinator::new(self.cluster.clone(), group.to_owned());
        let offsets = self.plan_reset(&coordinator, group, topics, to).await?;
        self.commit_group_offsets(&coordinator, group, &offsets)
            .await?;
        Ok(offsets)
    }

    /// The offsets [`Admin::reset_group_offsets`] would commit, without committing them
    /// (a dry run); the group's state is checked the same way.
    ///
    /// # Errors
    /// As [`Admin::reset_group_offsets`], but for the commit's.
    pub async fn plan_reset_group_offsets(
        &self,
        group: &str,
        topics: &[&str],
        to: ResetTo,
    ) -> Result<Vec<(String, i32, i64)>, ClientError> {
        let coordinator = Coordinator::new(self.cluster.clone(), group.to_owned());
        self.plan_reset(&coordinator, group, topics, to).await
    }

    async fn plan_reset(
        &self,
        coordinator: &Coordinator,
        group: &str,
        topics: &[&str],
        to: ResetTo,
    ) -> Result<Vec<(String, i32, i64)>, ClientError> {
        let described = self.describe_group_with(coordinator, group).await?;
        if !matches!(described.state.as_str(), "Empty" | "Dead") {
            return Err(ClientError::InvalidState {
                operation: format!("reset the offsets of group {group}"),
                state: format!(
                    "the group is {} with {} member(s); offsets can only be reset while it has none",
                    described.state,
                    described.members.len()
                ),
            });
        }
        let mut offsets = Vec::new();
        for topic in topics.iter().collect::<BTreeSet<_>>() {
            let targets = self.reset_targets(topic, to).await?;
            offsets.extend(
                targets
                    .into_iter()
                    .map(|(p, o)| ((*topic).to_owned(), p, o)),
            );
        }
        Ok(offsets)
    }

    /// The offset `to` names in each partition of `topic`.
    async fn reset_targets(
        &self,
        topic: &str,
        to: ResetTo,
    ) -> Result<BTreeMap<i32, i64>, ClientError> {
        let offsets = |spec| async move {
            let found = self.list_offsets(topic, spec).await?;
            Ok::<_, ClientError>(
                found
                    .into_iter()
                    .map(|(p, o)| (p, o.offset))
                    .collect::<BTreeMap<i32, i64>>(),
            )
        };
        Ok(match to {
            ResetTo::Earliest => offsets(OffsetSpec::Earliest).await?,
            ResetTo::Latest => offsets(OffsetSpec::Latest).await?,
            ResetTo::Timestamp(ms) => {
                let at = offsets(OffsetSpec::Timestamp(ms)).await?;
                let mut ends = offsets(OffsetSpec::Latest).await?;
                for (p, end) in &mut ends {
                    if let Some(&offset) = at.get(p).filter(|o| **o >= 0) {
                        *end = offset;
                    }
                }
                ends
            }
            ResetTo::Offset(n) => {
                let starts = offsets(OffsetSpec::Earliest).await?;
                let mut ends = offsets(OffsetSpec::Latest).await?;
                for (p, end) in &mut ends {
                    let start = starts.get(p).copied().unwrap_or(0).min(*end);
                    *end = n.clamp(start, *end);
                }
                ends
            }
        })
    }

    /// OffsetCommit of `offsets` as an outsider (generation -1, no member id), accepted
    /// only while the group has no members.
    async fn commit_group_offsets(
        &self,
        coordinator: &Coordinator,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), ClientError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for (topic, partition, offset) in offsets {
            let partition = OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset);
            match topics.last_mut() {
                Some(last) if last.name.0.as_str() == topic => last.partitions.push(partition),
                _ => topics.push(
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let what = format!("commit offsets of group {group}");
        let request = |version: i16| {
            let r = OffsetCommitRequest::default()
                .with_group_id(group_id(group))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(str_bytes(""))
                .with_topics(topics.clone());
            if (2..=4).contains(&version) {
                r.with_retention_time_ms(-1)
            } else {
                r
            }
        };
        self.ask_coordinator(coordinator, &what, OFFSET_COMMIT_MAX, request, |response| {
            for t in &response.topics {
                for p in &t.partitions {
                    check(p.error_code, None, || {
                        format!("{what}: {}-{}", t.name.0, p.partition_index)
                    })?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Sends `request` to the group's coordinator and reads the answer with `answer`, again
    /// (after a backoff, and a new coordinator lookup when it moved) while either fails
    /// retriably, until the API timeout.
    async fn ask_coordinator<R: Request, T>(
        &self,
        coordinator: &Coordinator,
        what: &str,
        max_version: i16,
        request: impl Fn(i16) -> R,
        answer: impl Fn(R::Response) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut retry = self.retry(what);
        loop {
            let result = match coordinator.send(&request, max_version, false).await {
                Ok(response) => answer(response),
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            if error
                .code()
                .is_some_and(|c| COORDINATOR_ERRORS.contains(&c))
            {
                coordinator.reset().await;
            }
            if !Retry::is_retriable(&error) {
                return Err(error);
            }
            self.backoff(&mut retry, error, &[]).await?;
        }
    }
}

/// A description from DescribeGroups' answer.
fn description(group: DescribedGroup) -> GroupDescription {
    let protocol_type = group.protocol_type.to_string();
    let members = group
        .members
        .into_iter()
        .map(|m| {
            let mut assignment = if protocol_type == "consumer" {
                decode_assignment(&m.member_assignment).unwrap_or_default()
            } else {
                Vec::new()
            };
            assignment.sort();
            GroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment,
            }
        })
        .collect();
    GroupDescription {
        group_id: group.group_id.to_string(),
        state: group.group_state.to_string(),
        protocol_type,
        protocol: group.protocol_data.to_string(),
        members,
    }
}

fn group_id(group: &str) -> GroupId {
    GroupId(str_bytes(group))
}

/// The error for an answer that leaves out what was asked.
fn missing_answer(what: &str) -> ClientError {
    ClientError::Broker {
        code: ErrorCode::UNKNOWN_SERVER_ERROR,
        context: format!("{what}: the coordinator's answer does not mention the group"),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_groups_response::DescribedGroupMember;
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::consumer::assignor::encode_assignment;

    fn member(assignment: bytes::Bytes) -> DescribedGroupMember {
        DescribedGroupMember::default()
            .with_member_id(StrBytes::from_static_str("m-1"))
            .with_client_id(StrBytes::from_static_str("app"))
            .with_client_host(StrBytes::from_static_str("/10.0.0.1"))
            .with_member_assignment(assignment)
    }

    #[test]
    fn consumer_assignments_are_decoded_and_sorted() {
        let tps = [
            ("b".to_owned(), 1),
            ("a".to_owned(), 2),
            ("b".to_owned(), 0),
        ];
        let bytes = encode_assignment(&tps, None).expect("encodes");
        let group = DescribedGroup::default()
            .with_group_id(group_id("g"))
            .with_group_state(StrBytes::from_static_str("Stable"))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocol_data(StrBytes::from_static_str("range"))
            .with_members(vec![member(bytes.clone())]);
        let described = description(group.clone());
        assert_eq!(
            (described.state.as_str(), described.protocol.as_str()),
            ("Stable", "range")
        );
        let m = &described.members[0];
        assert_eq!(
            (m.client_id.as_str(), m.client_host.as_str()),
            ("app", "/10.0.0.1")
        );
        assert_eq!(
            m.assignment,
            [
                ("a".to_owned(), 2),
                ("b".to_owned(), 0),
                ("b".to_owned(), 1)
            ]
        );
        // Other protocols' bytes are not the consumer's, and neither is garbage.
        let connect = group
            .clone()
            .with_protocol_type(StrBytes::from_static_str("connect"));
        assert!(description(connect).members[0].assignment.is_empty());
        let garbage = group.with_members(vec![member(bytes::Bytes::from_static(b"\xff"))]);
        assert!(description(garbage).members[0].assignment.is_empty());
    }
}
