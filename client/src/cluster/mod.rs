//! The cluster as the client sees it: bootstrap, a metadata cache, and one connection per
//! broker.
//!
//! ```text
//!  bootstrap.servers ──connect──▶ Metadata ──▶ ClusterMetadata (brokers, controller, topics)
//!                                                   │
//!        broker(node id) / leader(topic, p) ────────┴──▶ one Connection per broker,
//!                                                         opened on first use (ApiVersions
//!                                                         negotiated), reopened when closed
//! ```
//!
//! Metadata is refreshed on demand (an unknown topic, a leader that moved) and when it is
//! older than `metadata.max.age.ms`. Connections use the highest version of each API both
//! sides support.

mod metadata;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::connection::Connection;
use strom_protocol::{ErrorCode, ProtocolError};
use tracing::{debug, warn};

pub use metadata::{BrokerInfo, ClusterMetadata, PartitionMetadata, TopicMetadata};

use crate::config::ClientConfig;
use crate::error::ClientError;

/// A handle on a Kafka cluster; cheap to clone, shared by the producer, consumer and admin
/// client built on it.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    metadata: RwLock<Snapshot>,
    /// Open broker connections by node id; never held across an `.await`.
    connections: Mutex<HashMap<i32, Arc<Connection>>>,
    /// One lock per node, held while dialling it: callers wanting the same node wait for
    /// one dial, callers wanting other nodes do not wait at all.
    dialing: Mutex<HashMap<i32, Arc<tokio::sync::Mutex<()>>>>,
    /// A connection to a bootstrap server, used until broker connections exist.
    bootstrap: tokio::sync::Mutex<Option<Arc<Connection>>>,
    refresh: tokio::sync::Mutex<()>,
    /// TLS for `security.protocol=SSL`.
    tls: Option<Arc<rustls::ClientConfig>>,
}

struct Snapshot {
    metadata: Arc<ClusterMetadata>,
    taken: Instant,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap", &self.inner.config.bootstrap_servers)
            .field("brokers", &self.metadata().brokers.len())
            .finish()
    }
}

impl Cluster {
    /// Checks `config`, reaches a bootstrap server and loads the brokers' metadata.
    ///
    /// # Errors
    /// Configuration errors, or [`ClientError::NoBrokers`] when no bootstrap server answers.
    pub async fn connect(config: ClientConfig) -> Result<Cluster, ClientError> {
        config.validate_settings()?;
        let tls = config.tls()?;
        let cluster = Cluster {
            inner: Arc::new(Inner {
                tls,
                config,
                metadata: RwLock::new(Snapshot {
                    metadata: Arc::new(ClusterMetadata::default()),
                    taken: Instant::now(),
                }),
                connections: Mutex::new(HashMap::new()),
                dialing: Mutex::new(HashMap::new()),
                bootstrap: tokio::sync::Mutex::new(None),
                refresh: tokio::sync::Mutex::new(()),
            }),
        };
        cluster.refresh_metadata(Some(&[])).await?;
        Ok(cluster)
    }

    /// The configuration the cluster was opened with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The last metadata snapshot.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.inner
            .metadata
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .metadata
            .clone()
    }

    /// Whether the metadata snapshot is younger than `metadata.max.age.ms`.
    pub fn metadata_is_fresh(&self) -> bool {
        self.metadata_age() <= Duration::from_millis(self.inner.config.metadata_max_age_ms)
    }

    fn metadata_age(&self) -> Duration {
        self.inner
            .metadata
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .taken
            .elapsed()
    }

    /// Asks the cluster for metadata: `None` for every topic, `Some(&[])` for brokers only,
    /// or the topics named (which are not created if missing).
    ///
    /// # Errors
    /// When no broker answers within `request.timeout.ms`.
    pub async fn refresh_metadata(
        &self,
        topics: Option<&[String]>,
    ) -> Result<Arc<ClusterMetadata>, ClientError> {
        let _one_at_a_time = self.inner.refresh.lock().await;
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                    })
                    .collect()
            }));
        let conn = self.any_broker().await?;
        let version = conn.version_for::<MetadataRequest>()?;
        // v0 cannot ask for "no topics" (an empty list means all); v3 is needed for
        // `allow_auto_topic_creation = false` to be sent, older brokers never create here.
        let request = if version < 4 {
            request.with_allow_auto_topic_creation(true)
        } else {
            request
        };
        let response = match conn.send_version(&request, version).await {
            Ok(r) => r,
            Err(e) => {
                self.forget(&conn).await;
                return Err(e.into());
            }
        };
        let all = topics.is_none();
        let merged = Arc::new(self.metadata().merged(&response, all));
        *self
            .inner
            .metadata
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Snapshot {
            metadata: merged.clone(),
            taken: Instant::now(),
        };
        debug!(
            brokers = merged.brokers.len(),
            topics = merged.topics.len(),
            "metadata refreshed"
        );
        Ok(merged)
    }

    /// Metadata of one topic, asking the cluster when it is unknown or the snapshot is older
    /// than `metadata.max.age.ms`.
    ///
    /// # Errors
    /// [`ClientError::UnknownTopicOrPartition`] (partition -1) when the cluster does not
    /// have the topic.
    pub async fn topic(&self, topic: &str) -> Result<TopicMetadata, ClientError> {
        let stale =
            self.metadata_age() > Duration::from_millis(self.inner.config.metadata_max_age_ms);
        if !stale {
            if let Some(t) = self.metadata().topics.get(topic) {
                return Ok(t.clone());
            }
        }
        let refreshed = self.refresh_metadata(Some(&[topic.to_owned()])).await?;
        refreshed
            .topics
            .get(topic)
            .cloned()
            .ok_or_else(|| ClientError::UnknownTopicOrPartition {
                topic: topic.to_owned(),
                partition: -1,
            })
    }

    /// The connection to broker `node_id`, opened (with version negotiation) on first use
    /// and reopened when it has closed; metadata is refreshed when the node is unknown.
    ///
    /// # Errors
    /// The node is not in the cluster, or cannot be reached.
    pub async fn broker(&self, node_id: i32) -> Result<Arc<Connection>, ClientError> {
        if let Some(conn) = self.known_broker(node_id).await? {
            return Ok(conn);
        }
        self.refresh_metadata(Some(&[])).await?;
        self.known_broker(node_id)
            .await?
            .ok_or(ClientError::UnknownBroker { node_id })
    }

    /// The connection to `node_id` if the metadata knows the node (`None` otherwise).
    async fn known_broker(&self, node_id: i32) -> Result<Option<Arc<Connection>>, ClientError> {
        if let Some(conn) = self.open_connection(node_id) {
            return Ok(Some(conn));
        }
        let Some(address) = self
            .metadata()
            .brokers
            .get(&node_id)
            .map(BrokerInfo::address)
        else {
            return Ok(None);
        };
        let dial = self
            .inner
            .dialing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(node_id)
            .or_default()
            .clone();
        let _dialing = dial.lock().await;
        // Another caller may have dialled while this one waited.
        if let Some(conn) = self.open_connection(node_id) {
            return Ok(Some(conn));
        }
        let conn = Arc::new(self.open(&address).await?);
        self.connections().insert(node_id, conn.clone());
        Ok(Some(conn))
    }

    /// The open connection to `node_id`, if there is one.
    fn open_connection(&self, node_id: i32) -> Option<Arc<Connection>> {
        self.connections()
            .get(&node_id)
            .filter(|conn| conn.is_usable())
            .cloned()
    }

    fn connections(&self) -> MutexGuard<'_, HashMap<i32, Arc<Connection>>> {
        self.inner
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection to some live broker: an open one if there is, else the brokers in the
    /// metadata, else the bootstrap servers, in order.
    ///
    /// # Errors
    /// [`ClientError::NoBrokers`] when none can be reached.
    pub async fn any_broker(&self) -> Result<Arc<Connection>, ClientError> {
        let open = self.connections().values().find(|c| c.is_usable()).cloned();
        if let Some(conn) = open {
            return Ok(conn);
        }
        let known: Vec<i32> = self.metadata().brokers.keys().copied().collect();
        for node_id in known {
            match self.known_broker(node_id).await {
                Ok(Some(conn)) => return Ok(conn),
                Ok(None) => {}
                Err(e) => debug!(node_id, error = %e, "broker unreachable"),
            }
        }
        let mut bootstrap = self.inner.bootstrap.lock().await;
        if let Some(conn) = bootstrap.as_ref().filter(|c| c.is_usable()) {
            return Ok(conn.clone());
        }
        let mut last = "no bootstrap server".to_owned();
        for address in &self.inner.config.bootstrap_servers {
            match self.open(address).await {
                Ok(conn) => {
                    let conn = Arc::new(conn);
                    *bootstrap = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) => {
                    warn!(%address, error = %e, "bootstrap server unreachable");
                    last = format!("{address}: {e}");
                }
            }
        }
        Err(ClientError::NoBrokers {
            bootstrap: self.inner.config.bootstrap_servers.join(","),
            last,
        })
    }

    /// The connection to the controller (what CreateTopics and friends need), or to any
    /// broker when the cluster does not name a controller it lists.
    ///
    /// # Errors
    /// As [`Cluster::broker`].
    pub async fn controller(&self) -> Result<Arc<Connection>, ClientError> {
        let metadata = self.metadata();
        match metadata.controller_id {
            id if metadata.brokers.contains_key(&id) => self.broker(id).await,
            _ => self.any_broker().await,
        }
    }

    /// The leader of a partition and the connection to it, refreshing metadata when the
    /// topic is unknown or the partition has no leader.
    ///
    /// # Errors
    /// [`ClientError::UnknownTopicOrPartition`], or `LEADER_NOT_AVAILABLE` as a broker error.
    pub async fn leader(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<(i32, Arc<Connection>), ClientError> {
        let mut meta = self.topic(topic).await?;
        if meta.partition(partition).is_none_or(|p| p.leader < 0) {
            let refreshed = self.refresh_metadata(Some(&[topic.to_owned()])).await?;
            meta = refreshed.topics.get(topic).cloned().ok_or_else(|| {
                ClientError::UnknownTopicOrPartition {
                    topic: topic.to_owned(),
                    partition,
                }
            })?;
        }
        let Some(p) = meta.partition(partition) else {
            return Err(ClientError::UnknownTopicOrPartition {
                topic: topic.to_owned(),
                partition,
            });
        };
        if p.leader < 0 {
            return Err(ClientError::Broker {
                code: ErrorCode::LEADER_NOT_AVAILABLE,
                context: format!("{topic}-{partition} has no leader"),
            });
        }
        Ok((p.leader, self.broker(p.leader).await?))
    }

    pub(crate) async fn open(&self, address: &str) -> Result<Connection, ClientError> {
        let config = &self.inner.config;
        let setup = Duration::from_millis(config.socket_connection_setup_timeout_ms);
        let connecting = async {
            match &self.inner.tls {
                Some(tls) => Connection::connect_tls(address, &config.client_id, tls.clone()).await,
                None => Connection::connect(address, &config.client_id).await,
            }
        };
        let mut conn = match tokio::time::timeout(setup, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(ProtocolError::Io(source))) => {
                return Err(ClientError::Connect {
                    addr: address.to_owned(),
                    source,
                });
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                return Err(ClientError::Timeout {
                    what: format!("connecting to {address}"),
                    after_ms: config.socket_connection_setup_timeout_ms,
                })
            }
        };
        conn.set_request_timeout(Duration::from_millis(config.request_timeout_ms));
        if config.security_protocol.sasl() {
            authenticate(&conn, config).await?;
        }
        debug!(%address, "connected");
        Ok(conn)
    }

    /// Drops a connection that failed, so the next use reconnects.
    async fn forget(&self, failed: &Arc<Connection>) {
        self.connections().retain(|_, c| !Arc::ptr_eq(c, failed));
        let mut bootstrap = self.inner.bootstrap.lock().await;
        if bootstrap.as_ref().is_some_and(|c| Arc::ptr_eq(c, failed)) {
            *bootstrap = None;
        }
    }
}

/// SASL on a new connection, as `sasl.mechanism`, `sasl.username` and `sasl.password`
/// say; a session the broker limits is replaced before it ends.
async fn authenticate(conn: &Connection, config: &ClientConfig) -> Result<(), ClientError> {
    use strom_protocol::sasl::AuthenticateError;
    let user = config.sasl_username.clone().unwrap_or_default();
    let password = config
        .sasl_password
        .as_ref()
        .map(|p| p.0.clone())
        .unwrap_or_default();
    let lifetime_ms =
        strom_protocol::sasl::authenticate(conn, config.sasl_mechanism, &user, &password)
            .await
            .map_err(|e| match e {
                AuthenticateError::Protocol(e) => ClientError::from(e),
                AuthenticateError::Refused { code, context } => {
                    ClientError::Broker { code, context }
                }
            })?;
    retire_before_expiry(conn, lifetime_ms);
    Ok(())
}

/// KIP-368: a session the broker limits to `lifetime_ms` is replaced by a new connection
/// (authenticated afresh) once 85-95% of it has passed, as Kafka clients re-authenticate
/// then; requests already on the old connection finish there.
fn retire_before_expiry(conn: &Connection, lifetime_ms: i64) {
    if lifetime_ms <= 0 {
        return;
    }
    let share = 0.85 + rand::random::<f64>() * 0.10;
    let lifetime = Duration::from_millis(u64::try_from(lifetime_ms).unwrap_or(u64::MAX));
    conn.retire_at(std::time::Instant::now() + lifetime.mul_f64(share));
}
