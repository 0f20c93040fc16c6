//! The cluster itself: DescribeCluster (key 60, Kafka 2.8+), falling back to Metadata
//! (key 3) on brokers that do not know it.

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{DescribeClusterRequest, DescribeQuorumRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::{ErrorCode, ProtocolError};
use tracing::debug;

use super::{check, Admin};
use crate::cluster::{BrokerInfo, ClusterMetadata};
use crate::error::ClientError;

/// The cluster's identity, controller and brokers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster id, when the brokers report one.
    pub cluster_id: Option<String>,
    /// Node id of the controller, -1 when unknown.
    pub controller_id: i32,
    /// The brokers, by node id.
    pub brokers: Vec<BrokerInfo>,
}

/// The KRaft metadata quorum, as DescribeQuorum (key 55) tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumDescription {
    /// Node id of the quorum's leader (the active controller), -1 when there is none.
    pub leader_id: i32,
    /// The leader's epoch (Raft term).
    pub leader_epoch: i32,
    /// The metadata log's committed offset.
    pub high_watermark: i64,
    /// Voters: node id and the log end offset the leader knows of (-1 when unknown).
    pub voters: Vec<(i32, i64)>,
    /// Observers (nodes that follow the log without voting), with their log end offsets.
    pub observers: Vec<(i32, i64)>,
}

impl From<&ClusterMetadata> for ClusterDescription {
    fn from(metadata: &ClusterMetadata) -> Self {
        ClusterDescription {
            cluster_id: metadata.cluster_id.clone(),
            controller_id: metadata.controller_id,
            brokers: metadata.brokers.values().cloned().collect(),
        }
    }
}

impl Admin {
    /// Describes the cluster: DescribeCluster where the broker supports it, else Metadata.
    ///
    /// # Errors
    /// When no broker answers within the API timeout.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, ClientError> {
        self.with_retries("describe cluster", &[], || async {
            match self.describe_cluster_once().await {
                Err(e) if unsupported(&e) => {
                    debug!(error = %e, "DescribeCluster unsupported; describing with Metadata");
                    let metadata = self.cluster.refresh_metadata(Some(&[])).await?;
                    Ok(ClusterDescription::from(&*metadata))
                }
                other => other,
            }
        })
        .await
    }

    async fn describe_cluster_once(&self) -> Result<ClusterDescription, ClientError> {
        let conn = self.cluster.any_broker().await?;
        let response = conn.send(&DescribeClusterRequest::default()).await?;
        check(response.error_code, response.error_message.as_ref(), || {
            "describe cluster".to_owned()
        })?;
        let mut brokers: Vec<BrokerInfo> = response
            .brokers
            .into_iter()
            .map(|b| BrokerInfo {
                node_id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.map(|r| r.to_string()),
            })
            .collect();
        brokers.sort_by_key(|b| b.node_id);
        Ok(ClusterDescription {
            cluster_id: Some(response.cluster_id.to_string()),
            controller_id: response.controller_id.0,
            brokers,
        })
    }
}

impl Admin {
    /// Describes the metadata quorum (KRaft clusters; Strom brokers).
    ///
    /// # Errors
    /// [`ClientError::Protocol`] with `UnsupportedVersion` on clusters without a quorum
    /// (ZooKeeper-based Kafka), or the broker's error.
    pub async fn describe_quorum(&self) -> Result<QuorumDescription, ClientError> {
        self.with_retries("describe quorum", &[], || async {
            let conn = self.cluster.any_broker().await?;
            let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
            let response = conn.send(&request).await?;
            check(response.error_code, response.error_message.as_ref(), || {
                "describe quorum".to_owned()
            })?;
            let partition = response
                .topics
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or_else(|| ClientError::Broker {
                    code: ErrorCode::UNKNOWN_SERVER_ERROR,
                    context: "describe quorum: the answer has no partition".to_owned(),
                })?;
            check(
                partition.error_code,
                partition.error_message.as_ref(),
                || "describe quorum".to_owned(),
            )?;
            let replicas =
                |states: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
                    states
                        .iter()
                        .map(|r| (r.replica_id.0, r.log_end_offset))
                        .collect()
                };
            Ok(QuorumDescription {
                leader_id: partition.leader_id.0,
                leader_epoch: partition.leader_epoch,
                high_watermark: partition.high_watermark,
                voters: replicas(&partition.current_voters),
                observers: replicas(&partition.observers),
            })
        })
        .await
    }
}

/// Whether `error` says the broker does not speak DescribeCluster.
fn unsupported(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Protocol(ProtocolError::UnsupportedVersion { .. })
    ) || error.code() == Some(ErrorCode::UNSUPPORTED_VERSION)
}
