//! The connection to a group's (or a transactional id's) coordinator, found with
//! FindCoordinator.
//!
//! The coordinator gets a connection of its own, apart from the one `Cluster` keeps to the
//! same broker for fetches and metadata (as the Java client and librdkafka do): a broker
//! answers a connection's requests one at a time, so a JoinGroup waiting for the rebalance,
//! or a long-polling Fetch, would otherwise hold up heartbeats and commits.
//!
//! The connection's own timeout covers the longest request (JoinGroup waits up to the
//! rebalance timeout, `max.poll.interval.ms`); every other request is bounded by
//! `request.timeout.ms` here.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::FindCoordinatorResponse;
use kafka_protocol::protocol::{Request, StrBytes};
use strom_protocol::connection::Connection;
use strom_protocol::ErrorCode;
use tokio::sync::Mutex;
use tracing::debug;

use crate::cluster::Cluster;
use crate::error::ClientError;

/// Errors after which the coordinator must be looked up again.
pub(crate) const COORDINATOR_ERRORS: [ErrorCode; 3] = [
    ErrorCode::NOT_COORDINATOR,
    ErrorCode::COORDINATOR_NOT_AVAILABLE,
    ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
];

/// The group's coordinator, looked up on first use and again after it moves.
pub(crate) struct Coordinator {
    cluster: Cluster,
    /// The group id, or the transactional id.
    group_id: String,
    /// FindCoordinator's key type: 0 for a group, 1 for a transactional id.
    key_type: i8,
    conn: Mutex<Option<Arc<Connection>>>,
}

impl Coordinator {
    pub(crate) fn new(cluster: Cluster, group_id: String) -> Self {
        Coordinator {
            cluster,
            group_id,
            key_type: 0,
            conn: Mutex::new(None),
        }
    }

    /// The coordinator of transactional id `id`.
    pub(crate) fn of_transaction(cluster: Cluster, id: String) -> Self {
        Coordinator {
            key_type: 1,
            ..Coordinator::new(cluster, id)
        }
    }

    /// Sends `request` at the highest version both sides speak, capped at `max` (the newest
    /// version whose fields the caller sets), within `request.timeout.ms` unless `long`
    /// (JoinGroup and SyncGroup wait for the rebalance).
    pub(crate) async fn send<R: Request>(
        &self,
        request: impl FnOnce(i16) -> R,
        max: i16,
        long: bool,
    ) -> Result<R::Response, ClientError> {
        let conn = self.connection().await?;
        let version = conn.version_for::<R>()?.min(max);
        let request = request(version);
        let exchange = conn.send_version(&request, version);
        let config = self.cluster.config();
        let result = if long {
            exchange.await
        } else {
            let limit = Duration::from_millis(config.request_timeout_ms);
            match tokio::time::timeout(limit, exchange).await {
                Ok(result) => result,
                Err(_) => {
                    self.reset().await;
                    return Err(ClientError::Timeout {
                        what: format!("group {} request", self.group_id),
                        after_ms: config.request_timeout_ms,
                    });
                }
            }
        };
        if result.is_err() {
            self.reset().await;
        }
        Ok(result?)
    }

    /// Forgets the coordinator (it moved, or its connection failed).
    pub(crate) async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    async fn connection(&self) -> Result<Arc<Connection>, ClientError> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref().filter(|c| c.is_usable()) {
            return Ok(c.clone());
        }
        let address = self.find().await?;
        let mut opened = self.cluster.open(&address).await?;
        let config = self.cluster.config();
        // JoinGroup may wait for the whole rebalance timeout.
        let longest = config.max_poll_interval_ms.max(config.request_timeout_ms) + 5_000;
        opened.set_request_timeout(Duration::from_millis(longest));
        debug!(group = %self.group_id, %address, "connected to the group coordinator");
        let opened = Arc::new(opened);
        *conn = Some(opened.clone());
        Ok(opened)
    }

    /// The coordinator's `host:port`, from any broker.
    async fn find(&self) -> Result<String, ClientError> {
        let conn = self.cluster.any_broker().await?;
        let version = conn.version_for::<FindCoordinatorRequest>()?.min(4);
        let key = StrBytes::from_string(self.group_id.clone());
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key(key)
        };
        let request = if version >= 1 {
            request.with_key_type(self.key_type)
        } else {
            request
        };
        let response: FindCoordinatorResponse = conn.send_version(&request, version).await?;
        let (code, host, port) = match response.coordinators.first() {
            Some(c) if version >= 4 => (c.error_code, c.host.to_string(), c.port),
            _ => (
                response.error_code,
                response.host.to_string(),
                response.port,
            ),
        };
        let code = ErrorCode(code);
        if !code.is_ok() {
            return Err(ClientError::Broker {
                code,
                context: format!("finding the coordinator of {}", self.group_id),
            });
        }
        Ok(format!("{host}:{port}"))
    }
}
