//! The cluster itself: DescribeCluster (key 60, Kafka 2.8+), falling back to Metadata
//! (key 3) on brokers that do not know it.

use kafka_protocol::messages::DescribeClusterRequest;
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

/// Whether `error` says the broker does not speak DescribeCluster.
fn unsupported(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Protocol(ProtocolError::UnsupportedVersion { .. })
    ) || error.code() == Some(ErrorCode::UNSUPPORTED_VERSION)
}
