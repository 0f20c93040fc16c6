//! Starting and stopping a broker: the listener, the connection tasks, and the background
//! task that applies retention, compaction and time-based flushes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::controller::quorum::{Quorum, QuorumSetup};
use crate::controller::records::Endpoint;
use crate::error::BrokerError;
use crate::group::Coordinator;
use crate::log::LogConfig;
use crate::producer_ids::ProducerIds;
use crate::state::{load_cluster_id, now_ms, BrokerState};
use crate::topics::Topics;

/// Opens the metadata log and starts this node's part in the quorum: alone, as one of the
/// voters of `controller.quorum.voters` (listening on its controller address), or, when it
/// is not among them, as a broker-only node that joins as a learner (listening on a free
/// port of its client listener's host).
async fn start_quorum(
    config: &BrokerConfig,
    cluster_id: &str,
    (advertised, endpoints): ((String, i32), Vec<Endpoint>),
    listener: Option<std::net::TcpListener>,
    shutdown: watch::Receiver<bool>,
) -> Result<Quorum, BrokerError> {
    let voters = &config.controller_quorum_voters;
    let mine = voters.iter().find(|(id, _)| *id == config.node_id);
    if config.node_id < 0 {
        return Err(BrokerError::Config {
            key: "node.id".into(),
            value: config.node_id.to_string(),
            reason: "must not be negative".into(),
        });
    }
    let learner = !voters.is_empty() && mine.is_none();
    let listener =
        match (listener, mine) {
            (Some(listener), _) => {
                listener
                    .set_nonblocking(true)
                    .map_err(|e| BrokerError::io("controller listener", e))?;
                Some(
                    TcpListener::from_std(listener)
                        .map_err(|e| BrokerError::io("controller listener", e))?,
                )
            }
            (None, Some((_, address))) => Some(TcpListener::bind(address).await.map_err(|e| {
                BrokerError::io(format!("binding controller address {address}"), e)
            })?),
            (None, None) if learner => {
                let address = SocketAddr::new(config.listen().ip(), 0);
                Some(TcpListener::bind(address).await.map_err(|e| {
                    BrokerError::io(format!("binding a controller listener on {address}"), e)
                })?)
            }
            (None, None) => None,
        };
    let learner_address = match (&listener, learner) {
        (Some(listener), true) => {
            let port = listener
                .local_addr()
                .map_err(|e| BrokerError::io("reading the controller address", e))?
                .port();
            Some(format!("{}:{port}", advertised.0))
        }
        _ => None,
    };
    let dir = config.data_dir.join(METADATA_DIR);
    let setup = QuorumSetup {
        node_id: config.node_id,
        dir: &dir,
        voters: voters.clone(),
        listener,
        election_timeout: config.controller_election_timeout,
        session_timeout: config.broker_session_timeout,
        advertised,
        endpoints,
        connector: crate::net::inter_broker::InterBroker::new(config)?,
        rack: config.rack.clone(),
        cluster_id: cluster_id.to_owned(),
        learner_address,
    };
    let quorum = Quorum::start(setup, shutdown)
        .await
        .map_err(|e| BrokerError::io("starting the metadata quorum", std::io::Error::other(e)))?;
    if voters.is_empty() {
        // Alone, this broker registers at once; with peers it registers once they are up.
        let mut status = quorum.watch();
        let registered =
            tokio::time::timeout(REGISTRATION_TIMEOUT, status.wait_for(|s| s.registered)).await;
        if !matches!(registered, Ok(Ok(_))) {
            return Err(BrokerError::io(
                "registering in the metadata log",
                std::io::Error::other("not registered in time"),
            ));
        }
    }
    Ok(quorum)
}

/// Binds `listener` with its security: TLS acceptor, SASL users.
async fn bind_listener(
    config: &BrokerConfig,
    listener: &crate::config::ListenerConfig,
) -> Result<crate::net::Bound, BrokerError> {
    let tls = config
        .listener_tls(&listener.name)?
        .map(tokio_rustls::TlsAcceptor::from);
    let sasl = config.listener_sasl(&listener.name).then(|| {
        let users = config
            .sasl_users
            .0
            .iter()
            .map(|(u, p)| (u.as_str(), p.as_str()));
        let mut users = crate::net::sasl::SaslUsers::new(config.sasl_mechanisms.clone(), users);
        users.session_lifetime = config.connections_max_reauth;
        Arc::new(users)
    });
    let tcp = TcpListener::bind(listener.address).await.map_err(|e| {
        BrokerError::io(
            format!("binding {} ({})", listener.address, listener.name),
            e,
        )
    })?;
    let addr = tcp
        .local_addr()
        .map_err(|e| BrokerError::io("reading the bound address", e))?;
    Ok(crate::net::Bound {
        tcp,
        name: Arc::from(listener.name.as_str()),
        tls,
        sasl,
        addr,
    })
}

/// How long a broker alone may take to register itself in its metadata log.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Folder of the metadata log under the data dir (also KRaft's name for the metadata
/// topic, so no topic may have it).
pub(crate) const METADATA_DIR: &str = "__cluster_metadata";

/// A running broker.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), strom_broker::BrokerError> {
/// let dir = tempfile::tempdir().map_err(|e| strom_broker::BrokerError::Io { context: "tempdir".into(), source: e })?;
/// let broker = strom_broker::Broker::start(strom_broker::BrokerConfig::new(dir.path())).await?;
/// assert!(broker.bootstrap().starts_with("127.0.0.1:"));
/// broker.shutdown().await?;
/// # Ok(()) }
/// ```
pub struct Broker {
    state: Arc<BrokerState>,
    local_addr: SocketAddr,
    /// Each listener's name and advertised `host:port`.
    bootstrap: Vec<(String, String)>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl Broker {
    /// Opens the data directory (recovering logs after an unclean stop), binds the listener
    /// and starts serving.
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        Broker::start_with(config, None).await
    }

    /// Like [`Broker::start`], with the controller listener already bound (its address
    /// must be this node's in `controller.quorum.voters`). Tests bind port 0 this way, so
    /// every node knows the others' addresses before any starts.
    pub async fn start_with_controller_listener(
        config: BrokerConfig,
        listener: std::net::TcpListener,
    ) -> Result<Broker, BrokerError> {
        Broker::start_with(config, Some(listener)).await
    }

    async fn start_with(
        config: BrokerConfig,
        controller_listener: Option<std::net::TcpListener>,
    ) -> Result<Broker, BrokerError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            BrokerError::io(
                format!("creating data dir {}", config.data_dir.display()),
                e,
            )
        })?;
        let mut config = config;
        // `message.max.bytes` may have been set as a field rather than through `set`.
        config
            .log_defaults
            .entry("max.message.bytes".to_owned())
            .or_insert_with(|| config.message_max_bytes.to_string());
        let defaults = LogConfig::default().with_overrides(
            config
                .log_defaults
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )?;
        let cluster_id = load_cluster_id(&config.data_dir, config.node_id)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut listeners = Vec::new();
        let mut endpoints = Vec::new();
        for listener in &config.listeners {
            let bound = bind_listener(&config, listener).await?;
            let (host, port) = listener.advertised(bound.addr);
            listeners.push(bound);
            endpoints.push(Endpoint {
                name: listener.name.clone(),
                host,
                port,
            });
        }
        let inter_broker = config.inter_broker_listener()?.name.clone();
        let advertised = endpoints
            .iter()
            .find(|e| e.name == inter_broker)
            .map(|e| (e.host.clone(), e.port))
            .unwrap_or_default();
        // The first listener's, for [`Broker::bootstrap`].
        let bootstrap: Vec<(String, String)> = endpoints
            .iter()
            .map(|e| (e.name.clone(), format!("{}:{}", e.host, e.port)))
            .collect();
        let (local_addr, (advertised_host, advertised_port)) =
            match (listeners.first(), endpoints.first()) {
                (Some(l), Some(e)) => (l.addr, (e.host.clone(), e.port)),
                _ => {
                    return Err(BrokerError::Config {
                        key: "listeners".to_owned(),
                        value: String::new(),
                        reason: "at least one listener is needed".to_owned(),
                    })
                }
            };
        let quorum = start_quorum(
            &config,
            &cluster_id,
            (advertised, endpoints),
            controller_listener,
            shutdown_rx.clone(),
        )
        .await?;
        let quorum = Arc::new(quorum);
        let topics = Arc::new(Topics::new(
            &config.data_dir,
            defaults,
            config.node_id,
            quorum.clone(),
        ));
        // The topics this node hosts, as of its metadata log, are open before it serves.
        topics.reconcile(&quorum.status().image, now_ms()).await;
        tokio::spawn(crate::topics::follow(
            topics.clone(),
            quorum.watch(),
            shutdown_rx.clone(),
        ));
        tokio::spawn(crate::topics::watch_isr(
            topics.clone(),
            config.replica_lag_time_max,
            shutdown_rx.clone(),
        ));
        if config.controller_quorum_voters.is_empty() {
            topics.import_legacy().await?;
        }
        let producer_ids = ProducerIds::new(&config.data_dir, config.node_id, quorum.clone())?;
        let retention_every = config.retention_check_interval;
        let groups = Coordinator::start(topics.clone(), &config)
            .await
            .map_err(|code| {
                BrokerError::io("loading groups", std::io::Error::other(code.to_string()))
            })?;
        let transactions = Arc::new(crate::txn::TxnCoordinator::new(topics.clone(), &config));
        let abort_every = config.transaction_abort_interval;
        let authorizer = crate::authorizer::Authorizer::new(&config);
        let quotas = crate::quota::Quotas::new(crate::quota::Window {
            samples: config.quota_window_num,
            size_ms: u64::try_from(config.quota_window_size.as_millis()).unwrap_or(1000),
        });
        let state = Arc::new(BrokerState {
            authorizer,
            quotas,
            config,
            cluster_id,
            advertised_host,
            advertised_port,
            topics,
            producer_ids,
            groups,
            transactions,
            quorum,
        });
        let mut tasks: Vec<JoinHandle<()>> = listeners
            .into_iter()
            .map(|bound| {
                tokio::spawn(crate::net::accept_loop(
                    bound,
                    state.clone(),
                    shutdown_rx.clone(),
                ))
            })
            .collect();
        tasks.extend([
            tokio::spawn(crate::txn::abort_timed_out(
                state.transactions.clone(),
                abort_every,
                shutdown_rx.clone(),
            )),
            tokio::spawn(maintenance(state.clone(), retention_every, shutdown_rx)),
        ]);
        info!(addr = %local_addr, cluster_id = %state.cluster_id, node_id = state.config.node_id, "broker started");
        Ok(Broker {
            state,
            local_addr,
            bootstrap,
            shutdown,
            tasks,
        })
    }

    /// `host:port` of listener `name` (as advertised), for clients of that listener.
    pub fn listener_bootstrap(&self, name: &str) -> Option<String> {
        let name = name.to_uppercase();
        self.bootstrap
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, address)| address.clone())
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `host:port` for clients' `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!(
            "{}:{}",
            self.state.advertised_host, self.state.advertised_port
        )
    }

    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.state.config.node_id
    }

    /// The node ids of the registered, unfenced brokers as this node's metadata says.
    pub fn live_brokers(&self) -> Vec<i32> {
        self.state
            .quorum
            .image()
            .live_brokers()
            .map(|b| b.id)
            .collect()
    }

    /// The cluster's id (as the metadata log has it; this node's own before it does).
    pub fn cluster_id(&self) -> String {
        self.state.cluster_id()
    }

    /// Stops accepting, closes connections, flushes and cleanly closes every log.
    pub async fn shutdown(mut self) -> Result<(), BrokerError> {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.state.groups.shutdown();
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.topics.close())
            .await
            .map_err(|e| BrokerError::io("closing logs", std::io::Error::other(e)))?;
        info!("broker stopped");
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// How often segments that rolled are fsynced (Kafka flushes a segment when it rolls).
const ROLLED_FLUSH_EVERY: Duration = Duration::from_secs(10);

/// Background work on timers: retention and compaction every `every`, and the fsync of
/// rolled segments every [`ROLLED_FLUSH_EVERY`].
async fn maintenance(
    state: Arc<BrokerState>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    let mut flush_tick = tokio::time::interval(ROLLED_FLUSH_EVERY);
    tick.tick().await;
    flush_tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = flush_tick.tick() => {
                let state = state.clone();
                let run = tokio::task::spawn_blocking(move || {
                    for topic in state.topics.all() {
                        for partition in topic.partitions() {
                            if let Err(e) = partition.flush_rolled() {
                                warn!(topic = %topic.name, partition = partition.index, error = %e, "flushing rolled segments");
                            }
                        }
                    }
                });
                if let Err(e) = run.await {
                    warn!(error = %e, "flush task failed");
                }
                continue;
            }
            _ = shutdown.changed() => return,
        }
        let state = state.clone();
        let run = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for topic in state.topics.all() {
                for partition in topic.partitions() {
                    partition.maintain(now);
                }
            }
        });
        if let Err(e) = run.await {
            warn!(error = %e, "maintenance task failed");
        }
    }
}
