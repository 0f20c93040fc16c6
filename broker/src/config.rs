//! Broker configuration, under Kafka's own key names.
//!
//! [`BrokerConfig::set`] takes any supported Kafka broker key as a string (what a TOML file or
//! the command line gives); the typed fields can also be set directly. Broker-level log keys
//! (`log.segment.bytes`, `log.retention.ms`, ...) become the defaults of the matching
//! topic-level keys (`segment.bytes`, `retention.ms`, ...), which topics may override.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::BrokerError;

/// Kafka's default `message.max.bytes`.
pub const DEFAULT_MESSAGE_MAX_BYTES: i32 = 1_048_588;

/// SASL users and their passwords, as configured (never printed).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SaslPasswords(pub Vec<(String, String)>);

impl std::fmt::Debug for SaslPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(user, _)| user.as_str()).collect();
        write!(f, "SaslPasswords({names:?})")
    }
}

/// One listener of `listeners`, with what clients are told of it (`advertised.listeners`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Its name (`PLAINTEXT`, `SSL`, `CLIENT`, ...): its security protocol, or mapped to
    /// one by `listener.security.protocol.map`.
    pub name: String,
    /// Address to listen on; port 0 picks a free port.
    pub address: SocketAddr,
    /// Host given to clients in metadata; defaults to the listen address's IP (or
    /// 127.0.0.1 when listening on all interfaces).
    pub advertised_host: Option<String>,
    /// Port given to clients in metadata; defaults to the bound port. Set it when clients
    /// reach the broker through a proxy or a port mapping.
    pub advertised_port: Option<u16>,
}

impl ListenerConfig {
    /// A listener named `name` on `address`, advertised as bound.
    pub fn new(name: &str, address: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            name: name.to_uppercase(),
            address,
            advertised_host: None,
            advertised_port: None,
        }
    }

    /// The host and port clients are told to connect to, once bound to `bound`.
    pub fn advertised(&self, bound: SocketAddr) -> (String, i32) {
        let host = match &self.advertised_host {
            Some(h) => h.clone(),
            None if bound.ip().is_unspecified() => "127.0.0.1".to_owned(),
            None => bound.ip().to_string(),
        };
        let port = self.advertised_port.unwrap_or(bound.port());
        (host, i32::from(port))
    }
}

/// Configuration of one broker.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// The listeners (`listeners`, `NAME://HOST:PORT,...`): each its own port and security
    /// protocol. One `PLAINTEXT` listener on 127.0.0.1, port 0, unless set.
    pub listeners: Vec<ListenerConfig>,
    /// The listener other brokers (replication, transaction markers, controller requests)
    /// connect to (`inter.broker.listener.name`); the first listener unless set.
    pub inter_broker_listener_name: Option<String>,
    /// `listener.security.protocol.map`: listener names to security protocols
    /// (`CLIENT:SSL`); a name missing here is its own protocol.
    pub security_protocol_map: std::collections::BTreeMap<String, String>,
    /// TLS settings for an `SSL` listener: `ssl.keystore.location` (a PEM file with the
    /// certificate chain and private key; `ssl.keystore.type=PEM`),
    /// `ssl.truststore.location` (PEM CA certificates for client certificates),
    /// `ssl.client.auth` (`none`, `requested`, `required`).
    pub ssl: strom_protocol::tls::ServerTls,
    /// `sasl.enabled.mechanisms` of a `SASL_PLAINTEXT` or `SASL_SSL` listener (default
    /// `PLAIN,SCRAM-SHA-256,SCRAM-SHA-512`).
    pub sasl_mechanisms: Vec<strom_protocol::sasl::Mechanism>,
    /// Users of a SASL listener, from the `user_<name>="<password>"` entries of any
    /// `*sasl.jaas.config` setting (as Kafka's `PlainLoginModule` takes them).
    pub sasl_users: SaslPasswords,
    /// What this broker authenticates as to other brokers over a SASL inter-broker
    /// listener: the `username="..."` and `password="..."` of a `*sasl.jaas.config`, as
    /// in Kafka.
    pub inter_broker_credentials: SaslPasswords,
    /// The mechanism for that (`sasl.mechanism.inter.broker.protocol`; PLAIN unless set).
    pub inter_broker_sasl_mechanism: strom_protocol::sasl::Mechanism,
    /// Whether ACLs are enforced (`authorizer.class.name` set, as to Kafka's
    /// `org.apache.kafka.metadata.authorizer.StandardAuthorizer`).
    pub authorizer: bool,
    /// Principals that may do everything (`super.users`, `User:a;User:b`).
    pub super_users: Vec<String>,
    /// Whether a resource no ACL covers is open to everyone
    /// (`allow.everyone.if.no.acl.found`, false as in Kafka).
    pub allow_everyone_if_no_acl_found: bool,
    /// How long a SASL session lasts before the client must re-authenticate
    /// (`connections.max.reauth.ms`, KIP-368); `None` (0) for as long as the connection.
    pub connections_max_reauth: Option<Duration>,
    /// Quota rates are measured over `quota.window.num` samples (11) of
    /// `quota.window.size.seconds` (1).
    pub quota_window_num: usize,
    /// See `quota_window_num`.
    pub quota_window_size: Duration,
    /// Folder holding partition logs and broker metadata (`log.dirs`).
    pub data_dir: PathBuf,
    /// This broker's id (`node.id`).
    pub node_id: i32,
    /// Create topics when Metadata asks for unknown ones (`auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic or a CreateTopics with -1 (`num.partitions`).
    pub num_partitions: i32,
    /// Largest record batch accepted (`message.max.bytes`); topics override it with
    /// `max.message.bytes`.
    pub message_max_bytes: i32,
    /// Largest Fetch response, whatever a client asks (`fetch.max.bytes`).
    pub fetch_max_bytes: i32,
    /// Largest request frame accepted (`socket.request.max.bytes`).
    pub socket_request_max_bytes: usize,
    /// How often retention and compaction run (`log.retention.check.interval.ms`).
    pub retention_check_interval: Duration,
    /// Defaults for topic-level configs, by topic-level key (`segment.bytes`, ...).
    pub log_defaults: BTreeMap<String, String>,
    /// How long the first rebalance of an empty group waits for more members
    /// (`group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay: Duration,
    /// Smallest session timeout a member may ask for (`group.min.session.timeout.ms`).
    pub group_min_session_timeout_ms: i32,
    /// Largest session timeout a member may ask for (`group.max.session.timeout.ms`).
    pub group_max_session_timeout_ms: i32,
    /// Most members in one group (`group.max.size`); `None` for no limit.
    pub group_max_size: Option<usize>,
    /// Partitions of the `__consumer_offsets` topic (`offsets.topic.num.partitions`).
    pub offsets_topic_num_partitions: i32,
    /// Replicas of the `__consumer_offsets` topic (`offsets.topic.replication.factor`, 3
    /// as in Kafka; fewer when fewer brokers are live when it is created).
    pub offsets_topic_replication_factor: usize,
    /// Partitions of the `__transaction_state` topic
    /// (`transaction.state.log.num.partitions`).
    pub transaction_state_num_partitions: i32,
    /// Replicas of the `__transaction_state` topic
    /// (`transaction.state.log.replication.factor`, 3; fewer when fewer brokers are live).
    pub transaction_state_replication_factor: usize,
    /// The longest transaction timeout a producer may ask for
    /// (`transaction.max.timeout.ms`).
    pub transaction_max_timeout_ms: i32,
    /// How often the transaction coordinator aborts transactions past their timeout
    /// (`transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    pub transaction_abort_interval: Duration,
    /// The metadata quorum's voters and their controller addresses
    /// (`controller.quorum.voters`, `1@host:port,2@host:port,...`); empty for a quorum of
    /// this broker alone.
    pub controller_quorum_voters: Vec<(i32, String)>,
    /// How long a controller hears nothing from the quorum's leader before it stands for
    /// election (`controller.quorum.election.timeout.ms`; 500 ms here, Kafka has 1 s).
    pub controller_election_timeout: Duration,
    /// How long a broker may go unheard before the active controller fences it and moves
    /// its leaderships (`broker.session.timeout.ms`; 1 s here, where Kafka has 9 s,
    /// since the quorum's own heartbeats, every fifth of an election timeout, carry it).
    pub broker_session_timeout: Duration,
    /// The broker's rack, for replica placement (`broker.rack`).
    pub rack: Option<String>,
    /// Replicas of auto-created topics and of CreateTopics with -1
    /// (`default.replication.factor`).
    pub default_replication_factor: usize,
    /// How long a follower may go without catching up before it leaves the ISR
    /// (`replica.lag.time.max.ms`).
    pub replica_lag_time_max: Duration,
}

/// Parses `controller.quorum.voters`: `ID@HOST:PORT` entries separated by commas, with
/// distinct ids.
///
/// ```
/// let mut config = strom_broker::BrokerConfig::new("/tmp/x");
/// config.set("controller.quorum.voters", "1@127.0.0.1:9093, 2@localhost:9094").unwrap();
/// assert_eq!(config.controller_quorum_voters[1], (2, "localhost:9094".to_owned()));
/// assert!(config.set("controller.quorum.voters", "1@a:1,1@b:2").is_err());
/// assert!(config.set("controller.quorum.voters", "one@a:1").is_err());
/// ```
fn parse_voters(value: &str) -> Result<Vec<(i32, String)>, String> {
    let mut voters: Vec<(i32, String)> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, address) = entry
            .split_once('@')
            .ok_or_else(|| format!("{entry}: expected ID@HOST:PORT"))?;
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| format!("{entry}: the id is not a number"))?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("{entry}: expected HOST:PORT after @"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("{entry}: expected HOST:PORT after @"));
        }
        if id < 0 || voters.iter().any(|(other, _)| *other == id) {
            return Err(format!("{entry}: ids must be distinct and not negative"));
        }
        voters.push((id, address.to_owned()));
    }
    Ok(voters)
}

/// Broker keys that set the default of a topic-level key.
const LOG_KEYS: &[(&str, &str)] = &[
    ("log.segment.bytes", "segment.bytes"),
    ("log.roll.ms", "segment.ms"),
    ("log.retention.ms", "retention.ms"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.cleanup.policy", "cleanup.policy"),
    ("log.cleaner.delete.retention.ms", "delete.retention.ms"),
    ("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms"),
    (
        "log.cleaner.min.cleanable.ratio",
        "min.cleanable.dirty.ratio",
    ),
    ("log.flush.interval.messages", "flush.messages"),
    ("log.flush.interval.ms", "flush.ms"),
    ("log.index.interval.bytes", "index.interval.bytes"),
    ("message.max.bytes", "max.message.bytes"),
];

/// The broker key whose value is the default of topic key `topic_key`.
pub(crate) fn broker_key_for(topic_key: &str) -> Option<&'static str> {
    LOG_KEYS
        .iter()
        .find(|(_, t)| *t == topic_key)
        .map(|(b, _)| *b)
}

impl BrokerConfig {
    /// Defaults as Kafka has them, listening on 127.0.0.1 port 0, storing in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        BrokerConfig {
            listeners: vec![ListenerConfig::new(
                "PLAINTEXT",
                SocketAddr::from(([127, 0, 0, 1], 0)),
            )],
            inter_broker_listener_name: None,
            security_protocol_map: std::collections::BTreeMap::new(),
            ssl: strom_protocol::tls::ServerTls::default(),
            sasl_mechanisms: strom_protocol::sasl::Mechanism::ALL.to_vec(),
            sasl_users: SaslPasswords::default(),
            inter_broker_credentials: SaslPasswords::default(),
            inter_broker_sasl_mechanism: strom_protocol::sasl::Mechanism::Plain,
            authorizer: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            connections_max_reauth: None,
            quota_window_num: 11,
            quota_window_size: Duration::from_secs(1),
            data_dir: data_dir.into(),
            node_id: 1,
            auto_create_topics: true,
            num_partitions: 1,
            message_max_bytes: DEFAULT_MESSAGE_MAX_BYTES,
            fetch_max_bytes: 57_671_680,
            socket_request_max_bytes: strom_protocol::frame::DEFAULT_MAX_FRAME_BYTES,
            retention_check_interval: Duration::from_secs(300),
            log_defaults: BTreeMap::new(),
            group_initial_rebalance_delay: Duration::from_millis(3000),
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: None,
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            transaction_state_num_partitions: 50,
            transaction_state_replication_factor: 3,
            transaction_max_timeout_ms: 900_000,
            transaction_abort_interval: Duration::from_secs(10),
            controller_quorum_voters: Vec::new(),
            controller_election_timeout: Duration::from_millis(500),
            broker_session_timeout: Duration::from_millis(1000),
            rack: None,
            default_replication_factor: 1,
            replica_lag_time_max: Duration::from_millis(30_000),
        }
    }

    /// Sets one Kafka broker key from its string form.
    ///
    /// ```
    /// let mut config = strom_broker::BrokerConfig::new("/tmp/x");
    /// config.set("num.partitions", "3").unwrap();
    /// config.set("log.retention.ms", "60000").unwrap();
    /// assert_eq!(config.num_partitions, 3);
    /// assert!(config.set("no.such.key", "1").is_err());
    /// assert!(config.set("num.partitions", "three").is_err());
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), BrokerError> {
        let bad = |reason: &str| BrokerError::Config {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        match key {
            "listen" => self.set_listen(value.parse().map_err(|_| bad("expected HOST:PORT"))?),
            "listeners" => {
                let mut listeners = Vec::new();
                for item in value.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                    let (name, address) = parse_listener(item)
                        .ok_or_else(|| bad("expected NAME://HOST:PORT, e.g. PLAINTEXT://:9092"))?;
                    if listeners.iter().any(|l: &ListenerConfig| l.name == name) {
                        return Err(bad(&format!("listener {name} is named twice")));
                    }
                    listeners.push(ListenerConfig::new(&name, address));
                }
                if listeners.is_empty() {
                    return Err(bad("at least one listener is needed"));
                }
                // Advertised endpoints set earlier stay with their listeners.
                for listener in &mut listeners {
                    if let Some(old) = self.listeners.iter().find(|l| l.name == listener.name) {
                        listener.advertised_host.clone_from(&old.advertised_host);
                        listener.advertised_port = old.advertised_port;
                    }
                }
                self.listeners = listeners;
            }
            "inter.broker.listener.name" => {
                self.inter_broker_listener_name = Some(value.trim().to_uppercase())
            }
            "listener.security.protocol.map" => {
                let mut map = std::collections::BTreeMap::new();
                for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (name, protocol) = pair
                        .split_once(':')
                        .ok_or_else(|| bad("expected NAME:PROTOCOL,..."))?;
                    map.insert(name.trim().to_uppercase(), protocol.trim().to_uppercase());
                }
                self.security_protocol_map = map;
            }
            "ssl.keystore.location" => self.ssl.keystore = Some(PathBuf::from(value)),
            "ssl.truststore.location" => self.ssl.truststore = Some(PathBuf::from(value)),
            "ssl.keystore.type" | "ssl.truststore.type" => {
                if !value.eq_ignore_ascii_case("PEM") {
                    return Err(bad("only PEM stores are read"));
                }
            }
            "sasl.enabled.mechanisms" => {
                let mut mechanisms = Vec::new();
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    mechanisms.push(strom_protocol::sasl::Mechanism::parse(name).ok_or_else(
                        || bad("expected PLAIN, SCRAM-SHA-256 and/or SCRAM-SHA-512"),
                    )?);
                }
                self.sasl_mechanisms = mechanisms;
            }
            key if key.ends_with("sasl.jaas.config") => {
                let users = crate::net::sasl::jaas_users(value);
                let login = crate::net::sasl::jaas_login(value);
                if users.is_empty() && login.is_none() {
                    return Err(bad(
                        "neither user_<name>=\"<password>\" entries nor username=\"...\" password=\"...\"",
                    ));
                }
                self.sasl_users.0.extend(users);
                if let Some(login) = login {
                    self.inter_broker_credentials = SaslPasswords(vec![login]);
                }
            }
            "sasl.mechanism.inter.broker.protocol" => {
                self.inter_broker_sasl_mechanism = strom_protocol::sasl::Mechanism::parse(value)
                    .ok_or_else(|| bad("expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))?
            }
            "ssl.client.auth" => {
                self.ssl.client_auth = strom_protocol::tls::ClientAuth::parse(value)
                    .ok_or_else(|| bad("expected none, requested or required"))?
            }
            key if key == "connections.max.reauth.ms"
                || key.starts_with("listener.name.")
                    && key.ends_with(".connections.max.reauth.ms") =>
            {
                let ms: u64 = parse(value).map_err(|_| bad("expected milliseconds"))?;
                self.connections_max_reauth = (ms > 0).then(|| Duration::from_millis(ms));
            }
            "quota.window.num" => {
                self.quota_window_num = parse(value).map_err(|_| bad("expected a count"))?;
                if self.quota_window_num < 2 {
                    return Err(bad("must be at least 2"));
                }
            }
            "quota.window.size.seconds" => {
                let seconds: u64 = parse(value).map_err(|_| bad("expected seconds"))?;
                if seconds == 0 {
                    return Err(bad("must be at least 1"));
                }
                self.quota_window_size = Duration::from_secs(seconds);
            }
            "authorizer.class.name" => self.authorizer = !value.trim().is_empty(),
            "super.users" => {
                let users: Vec<String> = value
                    .split(';')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect();
                if let Some(bad_user) = users.iter().find(|u| !u.contains(':')) {
                    return Err(bad(&format!(
                        "{bad_user:?} is not a principal: write User:NAME, separated by ;"
                    )));
                }
                self.super_users = users;
            }
            "allow.everyone.if.no.acl.found" => {
                self.allow_everyone_if_no_acl_found =
                    parse_bool(value).ok_or_else(|| bad("expected true or false"))?
            }
            "advertised.host.name" => {
                if let Some(first) = self.listeners.first_mut() {
                    first.advertised_host = Some(value.to_owned());
                }
            }
            "advertised.port" => {
                let port = parse(value).map_err(|_| bad("expected a port"))?;
                if let Some(first) = self.listeners.first_mut() {
                    first.advertised_port = Some(port);
                }
            }
            "advertised.listeners" => {
                for item in value.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                    let (name, host, port) = parse_advertised(item)
                        .ok_or_else(|| bad("expected NAME://HOST:PORT,..."))?;
                    let listener = self
                        .listeners
                        .iter_mut()
                        .find(|l| l.name == name)
                        .ok_or_else(|| {
                            bad(&format!("{name} is not in listeners (set listeners first)"))
                        })?;
                    listener.advertised_host = Some(host);
                    listener.advertised_port = Some(port);
                }
            }
            "log.dirs" | "log.dir" | "data.dir" => self.data_dir = PathBuf::from(value),
            "node.id" | "broker.id" => {
                self.node_id = parse(value).map_err(|_| bad("expected an integer"))?
            }
            "auto.create.topics.enable" => {
                self.auto_create_topics =
                    parse_bool(value).ok_or_else(|| bad("expected true or false"))?
            }
            "num.partitions" => {
                self.num_partitions = parse(value).map_err(|_| bad("expected an integer"))?;
                if self.num_partitions < 1 {
                    return Err(bad("must be at least 1"));
                }
            }
            "fetch.max.bytes" => {
                self.fetch_max_bytes = parse(value).map_err(|_| bad("expected a byte count"))?;
                if self.fetch_max_bytes < 1024 {
                    return Err(bad("must be at least 1024"));
                }
            }
            "socket.request.max.bytes" => {
                self.socket_request_max_bytes =
                    parse(value).map_err(|_| bad("expected a byte count"))?
            }
            "log.retention.check.interval.ms" => {
                let ms: u64 = parse(value).map_err(|_| bad("expected milliseconds"))?;
                self.retention_check_interval = Duration::from_millis(ms.max(1));
            }
            "log.retention.hours" => self.set_log_default(
                "retention.ms",
                hours_to_ms(value).ok_or_else(|| bad("expected hours"))?,
            ),
            "log.roll.hours" => self.set_log_default(
                "segment.ms",
                hours_to_ms(value).ok_or_else(|| bad("expected hours"))?,
            ),
            "group.initial.rebalance.delay.ms" => {
                let ms: u64 = parse(value).map_err(|_| bad("expected milliseconds"))?;
                self.group_initial_rebalance_delay = Duration::from_millis(ms);
            }
            "group.min.session.timeout.ms" => {
                self.group_min_session_timeout_ms =
                    parse(value).map_err(|_| bad("expected milliseconds"))?
            }
            "group.max.session.timeout.ms" => {
                self.group_max_session_timeout_ms =
                    parse(value).map_err(|_| bad("expected milliseconds"))?
            }
            "group.max.size" => {
                let size: usize = parse(value).map_err(|_| bad("expected a member count"))?;
                if size < 1 {
                    return Err(bad("must be at least 1"));
                }
                self.group_max_size = (size < i32::MAX as usize).then_some(size);
            }
            "offsets.topic.num.partitions" => {
                self.offsets_topic_num_partitions =
                    parse(value).map_err(|_| bad("expected an integer"))?;
                if !(1..=1000).contains(&self.offsets_topic_num_partitions) {
                    return Err(bad("must be between 1 and 1000"));
                }
            }
            "offsets.topic.replication.factor" => {
                let factor: usize = parse(value).map_err(|_| bad("expected a count"))?;
                if factor == 0 {
                    return Err(bad("must be at least 1"));
                }
                self.offsets_topic_replication_factor = factor;
            }
            "offsets.retention.minutes" | "offsets.commit.timeout.ms" => {}
            "default.replication.factor" => {
                let factor: usize = parse(value).map_err(|_| bad("expected a count"))?;
                if factor == 0 {
                    return Err(bad("must be at least 1"));
                }
                self.default_replication_factor = factor
            }
            "replica.lag.time.max.ms" => {
                let ms: u64 = parse(value).map_err(|_| bad("expected milliseconds"))?;
                self.replica_lag_time_max = Duration::from_millis(ms)
            }
            "transaction.state.log.num.partitions" => {
                self.transaction_state_num_partitions =
                    parse(value).map_err(|_| bad("expected an integer"))?;
                if !(1..=1000).contains(&self.transaction_state_num_partitions) {
                    return Err(bad("must be between 1 and 1000"));
                }
            }
            "transaction.state.log.replication.factor" => {
                let factor: usize = parse(value).map_err(|_| bad("expected a count"))?;
                if factor == 0 {
                    return Err(bad("must be at least 1"));
                }
                self.transaction_state_replication_factor = factor;
            }
            "transaction.max.timeout.ms" => {
                self.transaction_max_timeout_ms =
                    parse(value).map_err(|_| bad("expected milliseconds"))?;
                if self.transaction_max_timeout_ms < 1 {
                    return Err(bad("must be at least 1"));
                }
            }
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                let ms: u64 = parse(value).map_err(|_| bad("expected milliseconds"))?;
                if ms < 1 {
                    return Err(bad("must be at least 1"));
                }
                self.transaction_abort_interval = Duration::from_millis(ms)
            }
            "process.roles" => {}
            "controller.quorum.voters" => {
                self.controller_quorum_voters = parse_voters(value).map_err(|r| bad(&r))?
            }
            "broker.session.timeout.ms" => {
                let ms: u64 = parse(value).map_err(|_| bad("expected milliseconds"))?;
                if ms < 10 {
                    return Err(bad("must be at least 10"));
                }
                self.broker_session_timeout = Duration::from_millis(ms)
            }
            "broker.rack" => self.rack = Some(value.to_owned()).filter(|r| !r.is_empty()),
            "controller.quorum.election.timeout.ms" => {
                let ms: u64 = parse(value).map_err(|_| bad("expected milliseconds"))?;
                if ms < 10 {
                    return Err(bad("must be at least 10"));
                }
                self.controller_election_timeout = Duration::from_millis(ms)
            }
            _ => {
                let Some((_, topic_key)) = LOG_KEYS.iter().find(|(k, _)| *k == key) else {
                    return Err(bad("unknown broker configuration key"));
                };
                if key == "message.max.bytes" {
                    self.message_max_bytes =
                        parse(value).map_err(|_| bad("expected a byte count"))?;
                }
                let mut probe = BTreeMap::new();
                probe.insert((*topic_key).to_owned(), value.to_owned());
                crate::log::LogConfig::from_kafka_pairs(
                    probe.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                )
                .map_err(|e| bad(&e.to_string()))?;
                self.set_log_default(topic_key, value.to_owned());
            }
        }
        Ok(())
    }

    /// Reads a TOML file of Kafka keys over these settings. Keys may be quoted
    /// (`"log.retention.ms" = 60000`) or dotted (`log.retention.ms = 60000`).
    pub fn apply_toml_file(&mut self, path: &Path) -> Result<(), BrokerError> {
        let text = std::fs::read_to_string(path).map_err(|e| BrokerError::Io {
            context: format!("reading config file {}", path.display()),
            source: e,
        })?;
        self.apply_toml_str(&text).map_err(|e| match e {
            BrokerError::ConfigFile { reason, .. } => BrokerError::ConfigFile {
                path: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Reads TOML text of Kafka keys over these settings.
    pub fn apply_toml_str(&mut self, text: &str) -> Result<(), BrokerError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| BrokerError::ConfigFile {
                    path: "<string>".to_owned(),
                    reason: e.to_string(),
                })?;
        let mut flat = Vec::new();
        flatten("", &toml::Value::Table(table), &mut flat);
        for (key, value) in flat {
            self.set(&key, &value)?;
        }
        Ok(())
    }

    fn set_log_default(&mut self, topic_key: &str, value: String) {
        self.log_defaults.insert(topic_key.to_owned(), value);
    }

    /// The security protocol of listener `name`: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or
    /// `SASL_SSL`.
    ///
    /// # Errors
    /// [`BrokerError::Config`] when the name is no protocol and not mapped to one.
    pub fn security_protocol<'a>(&'a self, name: &'a str) -> Result<&'a str, BrokerError> {
        let protocol = self
            .security_protocol_map
            .get(name)
            .map_or(name, String::as_str);
        match protocol {
            "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL" => Ok(protocol),
            other => Err(BrokerError::Config {
                key: "listeners".to_owned(),
                value: name.to_owned(),
                reason: format!(
                    "{other} is not a security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL); map listener names with listener.security.protocol.map"
                ),
            }),
        }
    }

    /// Whether listener `name` authenticates with SASL.
    pub fn listener_sasl(&self, name: &str) -> bool {
        self.security_protocol(name)
            .is_ok_and(|p| p.starts_with("SASL_"))
    }

    /// The TLS configuration of listener `name` (`None` without TLS).
    ///
    /// # Errors
    /// [`BrokerError::Config`] for an unknown security protocol, or TLS files that cannot
    /// be used.
    pub fn listener_tls(
        &self,
        name: &str,
    ) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, BrokerError> {
        match self.security_protocol(name)? {
            "SSL" | "SASL_SSL" => self
                .ssl
                .config()
                .map(Some)
                .map_err(|e| BrokerError::Config {
                    key: "listeners".to_owned(),
                    value: name.to_owned(),
                    reason: e.to_string(),
                }),
            _ => Ok(None),
        }
    }

    /// The listener other brokers connect to (`inter.broker.listener.name`, else the first).
    ///
    /// # Errors
    /// [`BrokerError::Config`] when `inter.broker.listener.name` names no listener.
    pub fn inter_broker_listener(&self) -> Result<&ListenerConfig, BrokerError> {
        let bad = |value: &str, reason: String| BrokerError::Config {
            key: "inter.broker.listener.name".to_owned(),
            value: value.to_owned(),
            reason,
        };
        let listener = match &self.inter_broker_listener_name {
            Some(name) => self
                .listeners
                .iter()
                .find(|l| l.name == *name)
                .ok_or_else(|| bad(name, "no listener has this name".to_owned()))?,
            None => self
                .listeners
                .first()
                .ok_or_else(|| bad("", "no listeners".to_owned()))?,
        };
        Ok(listener)
    }

    /// The first listener's address (`listeners`).
    pub fn listen(&self) -> SocketAddr {
        self.listeners
            .first()
            .map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |l| l.address)
    }

    /// Sets the first listener's address, keeping its name.
    pub fn set_listen(&mut self, address: SocketAddr) {
        match self.listeners.first_mut() {
            Some(first) => first.address = address,
            None => self
                .listeners
                .push(ListenerConfig::new("PLAINTEXT", address)),
        }
    }
}

fn parse<T: std::str::FromStr>(value: &str) -> Result<T, T::Err> {
    value.trim().parse()
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn hours_to_ms(value: &str) -> Option<String> {
    let hours: i64 = value.trim().parse().ok()?;
    Some(hours.checked_mul(3_600_000)?.to_string())
}

/// One `NAME://host:port` of `advertised.listeners` as name, host and port.
fn parse_advertised(item: &str) -> Option<(String, String, u16)> {
    let (name, addr) = item.split_once("://").unwrap_or(("PLAINTEXT", item));
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().ok()?;
    if host.is_empty() {
        return None;
    }
    Some((name.to_uppercase(), host.to_owned(), port))
}

/// One listener of `listeners` (`NAME://host:port`): its name and address.
fn parse_listener(item: &str) -> Option<(String, SocketAddr)> {
    let (name, addr) = item.split_once("://").unwrap_or(("PLAINTEXT", item));
    let addr = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    };
    Some((name.to_uppercase(), addr.parse().ok()?))
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_with_dotted_and_quoted_keys() {
        let mut c = BrokerConfig::new("/tmp/d");
        c.apply_toml_str(
            r#"
            "auto.create.topics.enable" = false
            log.segment.bytes = 1048576
            listeners = "PLAINTEXT://127.0.0.1:19092"
            [log.retention]
            ms = 1000
            "#,
        )
        .unwrap();
        assert!(!c.auto_create_topics);
        assert_eq!(c.listen().port(), 19092);
        assert_eq!(c.log_defaults["segment.bytes"], "1048576");
        assert_eq!(c.log_defaults["retention.ms"], "1000");
    }

    #[test]
    fn advertised_listener_overrides_host_and_port() {
        let mut c = BrokerConfig::new("/tmp/d");
        let bound: SocketAddr = "0.0.0.0:9092".parse().unwrap();
        assert_eq!(
            c.listeners[0].advertised(bound),
            ("127.0.0.1".to_owned(), 9092)
        );
        c.set("advertised.listeners", "PLAINTEXT://kafka.example:19092")
            .unwrap();
        assert_eq!(
            c.listeners[0].advertised(bound),
            ("kafka.example".to_owned(), 19092)
        );
        assert!(c.set("advertised.listeners", "PLAINTEXT://nohost").is_err());
        assert!(c.set("advertised.listeners", "SSL://a:1").is_err());
    }

    #[test]
    fn several_listeners_each_advertised_and_one_for_brokers() {
        let mut c = BrokerConfig::new("/tmp/d");
        c.set("listeners", "INTERNAL://127.0.0.1:0, CLIENT://0.0.0.0:9093")
            .unwrap();
        c.set(
            "listener.security.protocol.map",
            "INTERNAL:PLAINTEXT,CLIENT:SASL_SSL",
        )
        .unwrap();
        c.set("advertised.listeners", "CLIENT://kafka.example:443")
            .unwrap();
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.listeners[1].advertised_port, Some(443));
        assert!(c.listener_sasl("CLIENT") && !c.listener_sasl("INTERNAL"));
        assert_eq!(c.inter_broker_listener().unwrap().name, "INTERNAL");
        c.set("inter.broker.listener.name", "client").unwrap();
        assert_eq!(c.inter_broker_listener().unwrap().name, "CLIENT");
        c.set("inter.broker.listener.name", "nowhere").unwrap();
        assert!(c.inter_broker_listener().is_err());
        assert!(c.set("listeners", "A://:1,A://:2").is_err());
    }

    #[test]
    fn listeners_name_their_security_protocol() {
        let mut c = BrokerConfig::new("/tmp/d");
        assert!(c.listener_tls("PLAINTEXT").unwrap().is_none());
        c.set("listeners", "SSL://127.0.0.1:9093").unwrap();
        assert_eq!(c.listeners[0].name, "SSL");
        assert_eq!(c.listen(), "127.0.0.1:9093".parse().unwrap());
        let e = c.listener_tls("SSL").unwrap_err().to_string();
        assert!(e.contains("ssl.keystore.location"), "{e}");
        c.set("ssl.keystore.location", "/nonexistent/broker.pem")
            .unwrap();
        let e = c.listener_tls("SSL").unwrap_err().to_string();
        assert!(e.contains("/nonexistent/broker.pem"), "{e}");
        // Names mapped to protocols.
        c.set("listeners", "CLIENT://:9094").unwrap();
        c.set(
            "listener.security.protocol.map",
            "CLIENT:PLAINTEXT,OTHER:SSL",
        )
        .unwrap();
        assert!(c.listener_tls("CLIENT").unwrap().is_none());
        c.set("listener.security.protocol.map", "CLIENT:SASL_PLAINTEXT")
            .unwrap();
        assert!(c.listener_sasl("CLIENT") && c.listener_tls("CLIENT").unwrap().is_none());
        c.set(
            "listener.name.client.plain.sasl.jaas.config",
            r#"PlainLoginModule required user_alice="pw";"#,
        )
        .unwrap();
        assert_eq!(c.sasl_users.0, [("alice".to_owned(), "pw".to_owned())]);
        assert!(!format!("{c:?}").contains("\"pw\""));
        assert!(c.set("sasl.jaas.config", "nothing").is_err());
        assert!(c.set("sasl.enabled.mechanisms", "GSSAPI").is_err());
        c.set("listener.security.protocol.map", "").unwrap();
        let e = c.listener_tls("CLIENT").unwrap_err().to_string();
        assert!(e.contains("CLIENT is not a security protocol"), "{e}");
        assert!(c.set("ssl.keystore.type", "JKS").is_err());
        assert!(c.set("ssl.client.auth", "maybe").is_err());
        assert!(c.set("listener.security.protocol.map", "nocolon").is_err());
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut c = BrokerConfig::new("/tmp/d");
        let e = c
            .apply_toml_str("\"log.segment.bytes\" = \"big\"")
            .unwrap_err();
        assert!(e.to_string().contains("log.segment.bytes"), "{e}");
        let e = c.set("frobnicate", "1").unwrap_err();
        assert!(e.to_string().contains("frobnicate"), "{e}");
    }
}
