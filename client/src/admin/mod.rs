//! The admin client: create, describe and delete topics, read and change configs, look up
//! and trim offsets, list, describe, reset and delete consumer groups, manage SCRAM users,
//! ACLs and client quotas.
//!
//! [`Admin`] is a thin layer over a [`Cluster`]: each call builds one Kafka request, sends
//! it to the broker Kafka requires for it, and turns per-item error codes into
//! [`ClientError::Broker`] values that carry the broker's own error message.
//!
//! ```text
//!  create_topics / delete_topics / create_partitions ──▶ controller
//!  alter/list_partition_reassignments / elect_leaders ──▶ controller
//!  list_topics / describe_topics / describe_cluster   ──▶ any broker (Metadata, DescribeCluster)
//!  describe_configs / alter_configs                   ──▶ any broker (topics), that broker (brokers)
//!  list_offsets / delete_records                      ──▶ each partition's leader
//!  list_groups                                        ──▶ every broker (ListGroups)
//!  describe_group / group_offsets / reset_group_offsets
//!  / delete_groups                                    ──▶ the group's coordinator
//!  create_acls / delete_acls                          ──▶ controller
//!  describe_acls                                      ──▶ any broker
//!  alter_client_quotas                                ──▶ controller
//!  describe_client_quotas                             ──▶ any broker
//! ```
//!
//! Calls retry on their own when the cluster answers that it is moving: `NOT_CONTROLLER`,
//! `LEADER_NOT_AVAILABLE`, `NOT_LEADER_OR_FOLLOWER` and the other retriable codes, and
//! connection failures. Before each retry the metadata is refreshed (the controller or
//! leader may have moved) and the call waits `retry.backoff.ms`, doubling up to
//! `retry.backoff.max.ms`, until the admin's API timeout (60 s, Kafka's
//! `default.api.timeout.ms`; see [`Admin::with_api_timeout`]) runs out. A topic that does
//! not exist is an answer, not a reason to wait: `UNKNOWN_TOPIC_OR_PARTITION` is returned
//! at once. Every other error code is returned at once too.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let broker = strom_broker::Broker::start(strom_broker::BrokerConfig::new(dir.path())).await?;
//! use strom_client::admin::{Admin, NewTopic};
//! use strom_client::ClientConfig;
//!
//! let admin = Admin::connect(ClientConfig::new().bootstrap(&broker.bootstrap())).await?;
//! admin
//!     .create_topic(NewTopic::new("orders").partitions(3).config("retention.ms", "3600000"))
//!     .await?;
//!
//! let described = admin.describe_topics(&["orders"]).await?;
//! assert_eq!(described[0].partitions.len(), 3);
//! assert!(admin.list_topics(false).await?.contains(&"orders".to_owned()));
//!
//! admin.delete_topic("orders").await?;
//! assert!(!admin.list_topics(false).await?.contains(&"orders".to_owned()));
//! # broker.shutdown().await?;
//! # Ok(()) }
//! ```

mod acls;
mod cluster_info;
mod configs;
mod groups;
mod offsets;
mod quotas;
mod reassignments;
mod retry;
mod topics;
mod users;

use std::time::Duration;

use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

pub use cluster_info::{ClusterDescription, QuorumDescription};
pub use configs::{AlterConfigOp, ConfigEntry, ConfigResource, ConfigSource};
pub use groups::{GroupDescription, GroupListing, GroupMember, GroupOffset, ResetTo};
pub use offsets::{ListedOffset, OffsetSpec};
pub use quotas::{QuotaEntity, QuotaFilter, QuotaMatch};
pub use reassignments::{ElectionType, OngoingReassignment, PartitionMove, PartitionOutcome};
pub use topics::{NewTopic, TopicDescription, TopicResults};
pub use users::ScramCredentialInfo;
// Kafka's ACL vocabulary, for `Admin::create_acls`, `describe_acls` and `delete_acls`,
// so that callers need not depend on strom-protocol.
pub use strom_protocol::acl::{
    AclBinding, AclError, AclFilter, Operation, PatternType, Permission, ResourceType,
    CLUSTER_NAME, WILDCARD,
};

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::ClientError;

/// How long an admin call keeps retrying by default (Kafka's `default.api.timeout.ms`).
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(60);

/// An admin client for a Kafka cluster. Cheap to clone: clones share the cluster's
/// connections and metadata.
#[derive(Clone, Debug)]
pub struct Admin {
    cluster: Cluster,
    api_timeout: Duration,
}

impl Admin {
    /// Connects to the cluster named by `config.bootstrap_servers`.
    ///
    /// # Errors
    /// An invalid configuration, or no bootstrap server answering.
    pub async fn connect(config: ClientConfig) -> Result<Admin, ClientError> {
        Ok(Admin::new(Cluster::connect(config).await?))
    }

    /// An admin client sharing an already connected cluster (with a producer or consumer,
    /// say).
    pub fn new(cluster: Cluster) -> Admin {
        Admin {
            cluster,
            api_timeout: DEFAULT_API_TIMEOUT,
        }
    }

    /// Sets how long one call may keep retrying retriable errors before it gives up with
    /// [`ClientError::Timeout`] (default [`DEFAULT_API_TIMEOUT`]). Each request also waits
    /// at most `request.timeout.ms` for its response.
    pub fn with_api_timeout(mut self, timeout: Duration) -> Admin {
        self.api_timeout = timeout;
        self
    }

    /// The cluster this client talks to.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// `request.timeout.ms` as the `timeout_ms` field of requests that carry one.
    fn request_timeout_ms(&self) -> i32 {
        i32::try_from(self.cluster.config().request_timeout_ms).unwrap_or(i32::MAX)
    }
}

/// `Ok` for error code 0, else a [`ClientError::Broker`] whose context is `what`, followed
/// by the broker's message when it sent one.
fn check(
    code: i16,
    message: Option<&StrBytes>,
    what: impl FnOnce() -> String,
) -> Result<(), ClientError> {
    let code = ErrorCode(code);
    if code.is_ok() {
        return Ok(());
    }
    let what = what();
    let context = match message.map(|m| m.as_str()).filter(|m| !m.is_empty()) {
        Some(message) => format!("{what}: {message}"),
        None => what,
    };
    Err(ClientError::Broker { code, context })
}

/// A Kafka string from a Rust one.
fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}
