//! Client configuration under Kafka's own key names.
//!
//! A [`ClientConfig`] is one flat set of settings shared by the producer, the consumer and
//! the admin client, as in the Java client's properties: each part reads the keys it needs.
//! Settings arrive three ways, all ending in the same typed `pub` fields:
//!
//! ```text
//!   "linger.ms" = "20"  ──set / from_pairs──┐
//!   .linger(Duration)   ──builder methods───┼──> ClientConfig fields ──validate──> clients
//!   config.linger_ms = 20  ─────────────────┘         │
//!                                                     └──to_pairs──> ("linger.ms", "20"), ...
//! ```
//!
//! Keys are the Java client's names; librdkafka's names are accepted where they mean the
//! same thing (`metadata.broker.list`, `queue.buffering.max.ms`, `compression.codec`,
//! `message.max.bytes`, ...). Defaults are the Java client's (4.0). [`ClientConfig::set`]
//! checks one value; [`ClientConfig::validate`] checks the rules between keys, such as
//! idempotence needing `acks=all`, and the clients call it when they start.
//!
//! ```
//! use std::time::Duration;
//! use strom_client::config::{Acks, ClientConfig};
//! use strom_client::ClientError;
//!
//! // Kafka's key names, as in a Java properties file or a librdkafka config.
//! let config = ClientConfig::from_pairs([
//!     ("bootstrap.servers", "127.0.0.1:9092"),
//!     ("acks", "1"),
//!     ("linger.ms", "20"),
//!     ("compression.type", "zstd"),
//! ])?;
//! config.validate()?;
//! assert_eq!(config.acks, Acks::Leader);
//! // acks=1 with enable.idempotence unset turns idempotence off, as in the Java client.
//! assert!(!config.idempotence_enabled());
//!
//! // The same through typed builders.
//! let config = ClientConfig::new()
//!     .bootstrap("127.0.0.1:9092")
//!     .client_id("billing")
//!     .acks(Acks::All)
//!     .linger(Duration::from_millis(20));
//! config.validate()?;
//! assert_eq!(config.linger_ms, 20);
//! assert!(config.idempotence_enabled());
//!
//! // An unknown key is an error that names it, with the nearest known key.
//! let err = ClientConfig::new().set("linger.mss", "5").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     r#"unknown configuration key "linger.mss" (did you mean "linger.ms"?)"#
//! );
//! # Ok::<(), ClientError>(())
//! ```

use std::time::Duration;

use strom_protocol::records::Compression;

use crate::error::ClientError;

mod builder;
mod kinds;
#[cfg(test)]
mod tests;

pub use kinds::{Acks, IsolationLevel, OffsetReset, PartitionerKind, Password, SecurityProtocol};

/// Every accepted key and the Java client key it sets. A key listed as its own target is
/// a Java name (or, for `partitioner`, librdkafka's); the others are librdkafka aliases.
const KEYS: &[(&str, &str)] = &[
    ("bootstrap.servers", "bootstrap.servers"),
    ("metadata.broker.list", "bootstrap.servers"),
    ("client.id", "client.id"),
    ("client.rack", "client.rack"),
    ("security.protocol", "security.protocol"),
    ("ssl.ca.location", "ssl.ca.location"),
    ("ssl.truststore.location", "ssl.ca.location"),
    ("ssl.certificate.location", "ssl.certificate.location"),
    ("ssl.key.location", "ssl.key.location"),
    (
        "ssl.endpoint.identification.algorithm",
        "ssl.endpoint.identification.algorithm",
    ),
    ("sasl.mechanism", "sasl.mechanism"),
    ("sasl.mechanisms", "sasl.mechanism"),
    ("sasl.username", "sasl.username"),
    ("sasl.password", "sasl.password"),
    ("sasl.jaas.config", "sasl.jaas.config"),
    ("acks", "acks"),
    ("request.required.acks", "acks"),
    ("linger.ms", "linger.ms"),
    ("queue.buffering.max.ms", "linger.ms"),
    ("batch.size", "batch.size"),
    ("buffer.memory", "buffer.memory"),
    ("compression.type", "compression.type"),
    ("compression.codec", "compression.type"),
    ("enable.idempotence", "enable.idempotence"),
    (
        "max.in.flight.requests.per.connection",
        "max.in.flight.requests.per.connection",
    ),
    ("max.in.flight", "max.in.flight.requests.per.connection"),
    ("request.timeout.ms", "request.timeout.ms"),
    ("delivery.timeout.ms", "delivery.timeout.ms"),
    ("message.timeout.ms", "delivery.timeout.ms"),
    ("retries", "retries"),
    ("message.send.max.retries", "retries"),
    ("retry.backoff.ms", "retry.backoff.ms"),
    ("retry.backoff.max.ms", "retry.backoff.max.ms"),
    ("metadata.max.age.ms", "metadata.max.age.ms"),
    ("max.block.ms", "max.block.ms"),
    ("max.request.size", "max.request.size"),
    ("message.max.bytes", "max.request.size"),
    ("partitioner", "partitioner"),
    ("transactional.id", "transactional.id"),
    ("transaction.timeout.ms", "transaction.timeout.ms"),
    ("fetch.min.bytes", "fetch.min.bytes"),
    ("fetch.max.bytes", "fetch.max.bytes"),
    ("fetch.max.wait.ms", "fetch.max.wait.ms"),
    ("fetch.wait.max.ms", "fetch.max.wait.ms"),
    ("max.partition.fetch.bytes", "max.partition.fetch.bytes"),
    ("fetch.message.max.bytes", "max.partition.fetch.bytes"),
    ("isolation.level", "isolation.level"),
    ("auto.offset.reset", "auto.offset.reset"),
    ("group.id", "group.id"),
    ("group.instance.id", "group.instance.id"),
    (
        "partition.assignment.strategy",
        "partition.assignment.strategy",
    ),
    ("session.timeout.ms", "session.timeout.ms"),
    ("heartbeat.interval.ms", "heartbeat.interval.ms"),
    ("max.poll.interval.ms", "max.poll.interval.ms"),
    ("max.poll.records", "max.poll.records"),
    ("enable.auto.commit", "enable.auto.commit"),
    ("auto.commit.interval.ms", "auto.commit.interval.ms"),
    (
        "socket.connection.setup.timeout.ms",
        "socket.connection.setup.timeout.ms",
    ),
    ("connections.max.idle.ms", "connections.max.idle.ms"),
    ("reconnect.backoff.ms", "reconnect.backoff.ms"),
    ("reconnect.backoff.max.ms", "reconnect.backoff.max.ms"),
];

/// Largest value of a key the Java client types as `int`.
const INT: u64 = i32::MAX as u64;
/// Largest value of a key the Java client types as `long`.
const LONG: u64 = i64::MAX as u64;
/// Most requests in flight per connection that idempotence can keep in order.
const IDEMPOTENT_MAX_IN_FLIGHT: u32 = 5;

/// Settings of a producer, consumer or admin client, with the Java client's defaults.
///
/// Each field names its Kafka key. Set fields directly, through the builder methods, or by
/// key with [`ClientConfig::set`]; check the result with [`ClientConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port` of brokers to fetch metadata from. Required to
    /// connect; empty by default.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`: names this client in broker logs and quotas. Default `strom`.
    pub client_id: String,
    /// `client.rack`: this client's rack, for fetching from the nearest replica (KIP-392).
    pub client_rack: Option<String>,
    /// `security.protocol`: `PLAINTEXT` (the default), `SSL`, `SASL_PLAINTEXT` or
    /// `SASL_SSL`.
    pub security_protocol: SecurityProtocol,
    /// `sasl.mechanism` (alias `sasl.mechanisms`): `PLAIN` (the default),
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub sasl_mechanism: strom_protocol::sasl::Mechanism,
    /// `sasl.username` (or `username="..."` in `sasl.jaas.config`).
    pub sasl_username: Option<String>,
    /// `sasl.password` (or `password="..."` in `sasl.jaas.config`); never printed.
    pub sasl_password: Option<Password>,
    /// TLS settings for `security.protocol=SSL`: `ssl.ca.location` (alias
    /// `ssl.truststore.location`, a PEM file), `ssl.certificate.location` and
    /// `ssl.key.location` (a client certificate for brokers that ask for one),
    /// `ssl.endpoint.identification.algorithm` (`https`, the default, checks the broker's
    /// host name; empty or `none` does not).
    pub ssl: strom_protocol::tls::ClientTls,
    /// `acks`. Default [`Acks::All`].
    pub acks: Acks,
    /// `linger.ms`: how long a batch waits for more records before it is sent. Default 5.
    pub linger_ms: u64,
    /// `batch.size`: bytes per partition batch before it is sent. Default 16384.
    pub batch_size: usize,
    /// `buffer.memory`: bytes of records the producer holds unsent. Default 33554432.
    pub buffer_memory: usize,
    /// `compression.type`: codec for produced batches. Default none.
    pub compression: Compression,
    /// `enable.idempotence`. `None` (the default) means on unless another key rules it out
    /// (then off, as the Java client does); `Some(true)` makes such a key an error. See
    /// [`ClientConfig::idempotence_enabled`].
    pub enable_idempotence: Option<bool>,
    /// `max.in.flight.requests.per.connection`: unanswered requests per broker. Default 5;
    /// idempotence needs at most 5.
    pub max_in_flight_requests_per_connection: u32,
    /// `request.timeout.ms`: how long to wait for a response. Default 30000.
    pub request_timeout_ms: u64,
    /// `delivery.timeout.ms`: how long a record may take from `send` to its result,
    /// retries included. Default 120000; at least `linger.ms + request.timeout.ms`.
    pub delivery_timeout_ms: u64,
    /// `retries`: how often a failed produce is resent. Default `i32::MAX` (bounded by
    /// `delivery.timeout.ms`).
    pub retries: u32,
    /// `retry.backoff.ms`: first wait before a retry. Default 100.
    pub retry_backoff_ms: u64,
    /// `retry.backoff.max.ms`: longest wait before a retry, as the backoff grows. Default
    /// 1000.
    pub retry_backoff_max_ms: u64,
    /// `metadata.max.age.ms`: metadata is refreshed at least this often. Default 300000.
    pub metadata_max_age_ms: u64,
    /// `max.block.ms`: how long `send` waits for metadata or buffer space. Default 60000.
    pub max_block_ms: u64,
    /// `max.request.size` (librdkafka `message.max.bytes`): largest produce request, and so
    /// largest record. Default 1048576.
    pub message_max_bytes: usize,
    /// `partitioner`. Default [`PartitionerKind::Default`].
    pub partitioner: PartitionerKind,
    /// `transactional.id`: enables transactions; requires idempotence.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms`: the coordinator aborts a transaction open this long.
    /// Default 60000.
    pub transaction_timeout_ms: u64,
    /// `fetch.min.bytes`: the broker waits for this many bytes before answering a fetch.
    /// Default 1.
    pub fetch_min_bytes: u32,
    /// `fetch.max.bytes`: largest fetch response asked for. Default 52428800.
    pub fetch_max_bytes: u32,
    /// `fetch.max.wait.ms`: longest the broker holds a fetch for `fetch.min.bytes`.
    /// Default 500.
    pub fetch_max_wait_ms: u64,
    /// `max.partition.fetch.bytes`: largest amount per partition in a fetch. Default
    /// 1048576.
    pub max_partition_fetch_bytes: u32,
    /// `isolation.level`. Default [`IsolationLevel::ReadUncommitted`].
    pub isolation_level: IsolationLevel,
    /// `auto.offset.reset`. Default [`OffsetReset::Latest`].
    pub auto_offset_reset: OffsetReset,
    /// `group.id`: the consumer group; none means no group (manual assignment only).
    pub group_id: Option<String>,
    /// `group.instance.id`: static membership (KIP-345).
    pub group_instance_id: Option<String>,
    /// `partition.assignment.strategy`: the assignors this member offers, most preferred
    /// first (`range`, `roundrobin`, `cooperative-sticky`, or Java's class names). Default
    /// `range,cooperative-sticky`, as the Java client's.
    pub partition_assignment_strategy: Vec<String>,
    /// `session.timeout.ms`: the coordinator drops a member silent this long. Default 45000.
    pub session_timeout_ms: u64,
    /// `heartbeat.interval.ms`: heartbeat period; below `session.timeout.ms`. Default 3000.
    pub heartbeat_interval_ms: u64,
    /// `max.poll.interval.ms`: longest gap between polls before the member leaves the
    /// group. Default 300000.
    pub max_poll_interval_ms: u64,
    /// `max.poll.records`: most records one poll returns. Default 500.
    pub max_poll_records: u32,
    /// `enable.auto.commit`: commit positions in the background. Default true.
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`: period of background commits. Default 5000.
    pub auto_commit_interval_ms: u64,
    /// `socket.connection.setup.timeout.ms`: how long a connection may take to open.
    /// Default 10000.
    pub socket_connection_setup_timeout_ms: u64,
    /// `connections.max.idle.ms`: idle connections are closed after this. Default 540000.
    pub connections_max_idle_ms: u64,
    /// `reconnect.backoff.ms`: first wait before reconnecting to a broker. Default 50.
    pub reconnect_backoff_ms: u64,
    /// `reconnect.backoff.max.ms`: longest wait before reconnecting. Default 1000.
    pub reconnect_backoff_max_ms: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            bootstrap_servers: Vec::new(),
            client_id: "strom".to_owned(),
            client_rack: None,
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: strom_protocol::sasl::Mechanism::Plain,
            sasl_username: None,
            sasl_password: None,
            ssl: strom_protocol::tls::ClientTls {
                verify_hostname: true,
                ..strom_protocol::tls::ClientTls::default()
            },
            acks: Acks::All,
            linger_ms: 5,
            batch_size: 16_384,
            buffer_memory: 33_554_432,
            compression: Compression::None,
            enable_idempotence: None,
            max_in_flight_requests_per_connection: 5,
            request_timeout_ms: 30_000,
            delivery_timeout_ms: 120_000,
            retries: i32::MAX.unsigned_abs(),
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 1_000,
            metadata_max_age_ms: 300_000,
            max_block_ms: 60_000,
            message_max_bytes: 1_048_576,
            partitioner: PartitionerKind::Default,
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            fetch_min_bytes: 1,
            fetch_max_bytes: 52_428_800,
            fetch_max_wait_ms: 500,
            max_partition_fetch_bytes: 1_048_576,
            isolation_level: IsolationLevel::ReadUncommitted,
            auto_offset_reset: OffsetReset::Latest,
            group_id: None,
            group_instance_id: None,
            partition_assignment_strategy: vec![
                "range".to_owned(),
                "cooperative-sticky".to_owned(),
            ],
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 3_000,
            max_poll_interval_ms: 300_000,
            max_poll_records: 500,
            enable_auto_commit: true,
            auto_commit_interval_ms: 5_000,
            socket_connection_setup_timeout_ms: 10_000,
            connections_max_idle_ms: 540_000,
            reconnect_backoff_ms: 50,
            reconnect_backoff_max_ms: 1_000,
        }
    }
}

impl ClientConfig {
    /// The Java client's defaults, with no bootstrap servers.
    pub fn new() -> Self {
        Self::default()
    }

    /// A config from `(key, value)` pairs applied in order over the defaults, as by
    /// [`ClientConfig::set`]. Cross-key rules are left to [`ClientConfig::validate`].
    ///
    /// ```
    /// use std::collections::HashMap;
    /// let props = HashMap::from([("bootstrap.servers", "b1:9092,b2:9092"), ("group.id", "g")]);
    /// let config = strom_client::ClientConfig::from_pairs(&props)?;
    /// assert_eq!(config.bootstrap_servers, ["b1:9092", "b2:9092"]);
    /// # Ok::<(), strom_client::ClientError>(())
    /// ```
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut config = Self::new();
        for (key, value) in pairs {
            config.set(key.as_ref(), value.as_ref())?;
        }
        Ok(config)
    }

    /// Sets one key from its string form. Keys are the Java client's names or librdkafka
    /// aliases of the same meaning; booleans are `true`/`false`; enum values are not case
    /// sensitive; surrounding whitespace is ignored, and an empty value unsets an optional
    /// key (`group.id`, `transactional.id`, ...).
    ///
    /// A value that does not parse or is out of range is [`ClientError::Config`] naming the
    /// key, the value and what is expected; a key this client does not know is
    /// [`ClientError::UnknownConfig`].
    ///
    /// ```
    /// let mut config = strom_client::ClientConfig::new();
    /// config.set("acks", "all")?.set("queue.buffering.max.ms", "50")?;
    /// assert_eq!(config.linger_ms, 50);
    /// let err = config.set("batch.size", "big").unwrap_err();
    /// assert!(err.to_string().starts_with("configuration batch.size=big: expected"));
    /// # Ok::<(), strom_client::ClientError>(())
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self, ClientError> {
        let (key, value) = (key.trim(), value.trim());
        let canonical = canonical(key).ok_or_else(|| unknown(key))?;
        let bad = |reason: &str| config_error(key, value, reason);
        const BOOL: &str = "expected true or false";
        match canonical {
            "bootstrap.servers" => {
                let servers = split_list(value);
                if let Some(entry) = servers.iter().find(|s| !is_host_port(s)) {
                    return Err(bad(&format!("{entry:?} is not host:port")));
                }
                self.bootstrap_servers = servers;
            }
            "client.id" => self.client_id = value.to_owned(),
            "client.rack" => self.client_rack = optional(value),
            "security.protocol" => {
                self.security_protocol = SecurityProtocol::parse(value)
                    .ok_or_else(|| bad("expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"))?
            }
            "sasl.mechanism" => {
                self.sasl_mechanism = strom_protocol::sasl::Mechanism::parse(value)
                    .ok_or_else(|| bad("expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))?
            }
            "sasl.username" => self.sasl_username = optional(value),
            "sasl.password" => self.sasl_password = optional(value).map(Password),
            "sasl.jaas.config" if value.is_empty() => {}
            "sasl.jaas.config" => {
                let quoted = |name: &str| {
                    let at = value.find(&format!("{name}="))?;
                    let rest = value[at + name.len() + 1..]
                        .trim_start()
                        .strip_prefix('"')?;
                    Some(rest.split_once('"')?.0.to_owned())
                };
                let (Some(user), Some(password)) = (quoted("username"), quoted("password")) else {
                    return Err(bad("expected username=\"...\" password=\"...\""));
                };
                self.sasl_username = Some(user);
                self.sasl_password = Some(Password(password));
            }
            "ssl.ca.location" => self.ssl.ca = optional(value).map(Into::into),
            "ssl.certificate.location" => self.ssl.certificate = optional(value).map(Into::into),
            "ssl.key.location" => self.ssl.key = optional(value).map(Into::into),
            "ssl.endpoint.identification.algorithm" => {
                self.ssl.verify_hostname = match value.to_ascii_lowercase().as_str() {
                    "https" => true,
                    "" | "none" => false,
                    _ => return Err(bad("expected https, none or empty")),
                }
            }
            "acks" => {
                self.acks = Acks::parse(value).ok_or_else(|| bad("expected all, -1, 0 or 1"))?
            }
            "compression.type" => {
                self.compression = Compression::from_name(&value.to_ascii_lowercase())
                    .map_err(|_| bad("expected none, gzip, snappy, lz4 or zstd"))?
            }
            "enable.idempotence" => {
                self.enable_idempotence = Some(parse_bool(value).ok_or_else(|| bad(BOOL))?)
            }
            "partitioner" => self.partitioner = PartitionerKind::parse(value).map_err(bad)?,
            "transactional.id" => self.transactional_id = optional(value),
            "isolation.level" => {
                self.isolation_level = IsolationLevel::parse(value)
                    .ok_or_else(|| bad("expected read_uncommitted or read_committed"))?
            }
            "auto.offset.reset" => {
                self.auto_offset_reset = OffsetReset::parse(value)
                    .ok_or_else(|| bad("expected earliest, latest or none"))?
            }
            "group.id" => self.group_id = optional(value),
            "group.instance.id" => self.group_instance_id = optional(value),
            "partition.assignment.strategy" => {
                let names: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect();
                let unknown = names
                    .iter()
                    .find(|n| crate::consumer::assignor::assignor_for(n).is_none());
                if let Some(name) = unknown {
                    return Err(bad(&format!(
                        "unknown assignor {name}; expected range, roundrobin or cooperative-sticky"
                    )));
                }
                if names.is_empty() {
                    return Err(bad("needs at least one assignor"));
                }
                self.partition_assignment_strategy = names;
            }
            "enable.auto.commit" => {
                self.enable_auto_commit = parse_bool(value).ok_or_else(|| bad(BOOL))?
            }
            _ => self.set_number(canonical, key, value)?,
        }
        Ok(self)
    }

    /// Sets a numeric key after checking it is an integer within the key's range.
    fn set_number(&mut self, canonical: &str, key: &str, value: &str) -> Result<(), ClientError> {
        let (min, max) = bounds(canonical);
        let bad = || {
            config_error(
                key,
                value,
                &format!("expected an integer from {min} to {max}"),
            )
        };
        let n: u64 = value
            .parse()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(bad)?;
        let int = || u32::try_from(n).map_err(|_| bad());
        let size = || usize::try_from(n).map_err(|_| bad());
        match canonical {
            "linger.ms" => self.linger_ms = n,
            "batch.size" => self.batch_size = size()?,
            "buffer.memory" => self.buffer_memory = size()?,
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight_requests_per_connection = int()?
            }
            "request.timeout.ms" => self.request_timeout_ms = n,
            "delivery.timeout.ms" => self.delivery_timeout_ms = n,
            "retries" => self.retries = int()?,
            "retry.backoff.ms" => self.retry_backoff_ms = n,
            "retry.backoff.max.ms" => self.retry_backoff_max_ms = n,
            "metadata.max.age.ms" => self.metadata_max_age_ms = n,
            "max.block.ms" => self.max_block_ms = n,
            "max.request.size" => self.message_max_bytes = size()?,
            "transaction.timeout.ms" => self.transaction_timeout_ms = n,
            "fetch.min.bytes" => self.fetch_min_bytes = int()?,
            "fetch.max.bytes" => self.fetch_max_bytes = int()?,
            "fetch.max.wait.ms" => self.fetch_max_wait_ms = n,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = int()?,
            "session.timeout.ms" => self.session_timeout_ms = n,
            "heartbeat.interval.ms" => self.heartbeat_interval_ms = n,
            "max.poll.interval.ms" => self.max_poll_interval_ms = n,
            "max.poll.records" => self.max_poll_records = int()?,
            "auto.commit.interval.ms" => self.auto_commit_interval_ms = n,
            "socket.connection.setup.timeout.ms" => self.socket_connection_setup_timeout_ms = n,
            "connections.max.idle.ms" => self.connections_max_idle_ms = n,
            "reconnect.backoff.ms" => self.reconnect_backoff_ms = n,
            "reconnect.backoff.max.ms" => self.reconnect_backoff_max_ms = n,
            _ => return Err(unknown(key)),
        }
        Ok(())
    }

    /// The value in effect for `key` (a Java name or an alias), in its string form. For
    /// `enable.idempotence` that is [`ClientConfig::idempotence_enabled`]; an unset
    /// optional key is the empty string.
    pub fn get(&self, key: &str) -> Result<String, ClientError> {
        let canonical = canonical(key.trim()).ok_or_else(|| unknown(key))?;
        if let Some(n) = self.number(canonical) {
            return Ok(n.to_string());
        }
        let text = match canonical {
            "bootstrap.servers" => self.bootstrap_servers.join(","),
            "client.id" => self.client_id.clone(),
            "client.rack" => self.client_rack.clone().unwrap_or_default(),
            "security.protocol" => self.security_protocol.name().to_owned(),
            "sasl.mechanism" => self.sasl_mechanism.name().to_owned(),
            "sasl.username" => self.sasl_username.clone().unwrap_or_default(),
            "sasl.password" => self
                .sasl_password
                .as_ref()
                .map(|p| p.0.clone())
                .unwrap_or_default(),
            // Read into sasl.username and sasl.password.
            "sasl.jaas.config" => String::new(),
            "ssl.ca.location" => path_text(self.ssl.ca.as_deref()),
            "ssl.certificate.location" => path_text(self.ssl.certificate.as_deref()),
            "ssl.key.location" => path_text(self.ssl.key.as_deref()),
            "ssl.endpoint.identification.algorithm" => if self.ssl.verify_hostname {
                "https"
            } else {
                ""
            }
            .to_owned(),
            "acks" => self.acks.name().to_owned(),
            "compression.type" => self.compression.name().to_owned(),
            "enable.idempotence" => self.idempotence_enabled().to_string(),
            "partitioner" => self.partitioner.name().to_owned(),
            "transactional.id" => self.transactional_id.clone().unwrap_or_default(),
            "isolation.level" => self.isolation_level.name().to_owned(),
            "auto.offset.reset" => self.auto_offset_reset.name().to_owned(),
            "group.id" => self.group_id.clone().unwrap_or_default(),
            "group.instance.id" => self.group_instance_id.clone().unwrap_or_default(),
            "partition.assignment.strategy" => self.partition_assignment_strategy.join(","),
            "enable.auto.commit" => self.enable_auto_commit.to_string(),
            _ => return Err(unknown(key)),
        };
        Ok(text)
    }

    /// Every setting in effect under its Java client name, in a fixed order, for logging
    /// and describing. Reading the pairs back with [`ClientConfig::from_pairs`] gives this
    /// config, with `enable.idempotence` made explicit.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        java_keys()
            .filter_map(|key| Some((key.to_owned(), self.get(key).ok()?)))
            .collect()
    }

    /// The value of numeric key `canonical`, or `None` for other keys.
    fn number(&self, canonical: &str) -> Option<u64> {
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Some(match canonical {
            "linger.ms" => self.linger_ms,
            "batch.size" => wide(self.batch_size),
            "buffer.memory" => wide(self.buffer_memory),
            "max.in.flight.requests.per.connection" => {
                u64::from(self.max_in_flight_requests_per_connection)
            }
            "request.timeout.ms" => self.request_timeout_ms,
            "delivery.timeout.ms" => self.delivery_timeout_ms,
            "retries" => u64::from(self.retries),
            "retry.backoff.ms" => self.retry_backoff_ms,
            "retry.backoff.max.ms" => self.retry_backoff_max_ms,
            "metadata.max.age.ms" => self.metadata_max_age_ms,
            "max.block.ms" => self.max_block_ms,
            "max.request.size" => wide(self.message_max_bytes),
            "transaction.timeout.ms" => self.transaction_timeout_ms,
            "fetch.min.bytes" => u64::from(self.fetch_min_bytes),
            "fetch.max.bytes" => u64::from(self.fetch_max_bytes),
            "fetch.max.wait.ms" => self.fetch_max_wait_ms,
            "max.partition.fetch.bytes" => u64::from(self.max_partition_fetch_bytes),
            "session.timeout.ms" => self.session_timeout_ms,
            "heartbeat.interval.ms" => self.heartbeat_interval_ms,
            "max.poll.interval.ms" => self.max_poll_interval_ms,
            "max.poll.records" => u64::from(self.max_poll_records),
            "auto.commit.interval.ms" => self.auto_commit_interval_ms,
            "socket.connection.setup.timeout.ms" => self.socket_connection_setup_timeout_ms,
            "connections.max.idle.ms" => self.connections_max_idle_ms,
            "reconnect.backoff.ms" => self.reconnect_backoff_ms,
            "reconnect.backoff.max.ms" => self.reconnect_backoff_max_ms,
            _ => return None,
        })
    }

    /// Whether the producer will be idempotent: `enable.idempotence` if set; otherwise on
    /// unless `acks`, `max.in.flight.requests.per.connection` or `retries` rule it out, as
    /// in the Java client since 3.0.
    pub fn idempotence_enabled(&self) -> bool {
        self.enable_idempotence
            .unwrap_or_else(|| self.idempotence_conflict().is_none())
    }

    /// The first setting idempotence cannot work with: its key, its value, and what
    /// idempotence requires instead.
    fn idempotence_conflict(&self) -> Option<(&'static str, String, &'static str)> {
        if self.acks != Acks::All {
            let value = self.acks.name().to_owned();
            return Some(("acks", value, "acks=all"));
        }
        if self.max_in_flight_requests_per_connection > IDEMPOTENT_MAX_IN_FLIGHT {
            let value = self.max_in_flight_requests_per_connection.to_string();
            let needs = "max.in.flight.requests.per.connection <= 5";
            return Some(("max.in.flight.requests.per.connection", value, needs));
        }
        if self.retries == 0 {
            return Some(("retries", "0".to_owned(), "retries > 0"));
        }
        None
    }

    /// Checks what [`ClientConfig::set`] cannot see alone: every value within its key's
    /// range (fields may be set directly), at least one valid bootstrap server, and the
    /// rules between keys as the Java client has them:
    ///
    /// - `enable.idempotence=true` needs `acks=all`, `max.in.flight.requests.per.connection`
    ///   at most 5 and `retries` above 0 (unset, idempotence just turns off instead);
    /// - `transactional.id` needs idempotence;
    /// - `delivery.timeout.ms` at least `linger.ms + request.timeout.ms`;
    /// - `heartbeat.interval.ms` below `session.timeout.ms`;
    /// - optional names (`group.id`, ...) not empty.
    ///
    /// ```
    /// use strom_client::config::{Acks, ClientConfig};
    /// let config = ClientConfig::new().bootstrap("localhost:9092").acks(Acks::Leader);
    /// assert!(config.validate().is_ok());
    /// let err = config.enable_idempotence(true).validate().unwrap_err();
    /// assert!(err.to_string().contains("enable.idempotence=true requires acks=all"));
    /// ```
    pub fn validate(&self) -> Result<(), ClientError> {
        self.validate_settings()?;
        self.tls().map(|_| ())
    }

    /// Everything [`ClientConfig::validate`] checks but the TLS files (which
    /// [`ClientConfig::tls`] reads and checks once, where they are used).
    pub(crate) fn validate_settings(&self) -> Result<(), ClientError> {
        self.validate_ranges()?;
        self.validate_bootstrap()?;
        self.validate_idempotence()?;
        self.validate_timeouts()?;
        self.validate_names()?;
        self.validate_sasl()
    }

    fn validate_sasl(&self) -> Result<(), ClientError> {
        if self.security_protocol.sasl()
            && (self.sasl_username.is_none() || self.sasl_password.is_none())
        {
            let protocol = self.security_protocol.name();
            return Err(config_error(
                "sasl.username",
                "",
                &format!("{protocol} needs sasl.username and sasl.password (or sasl.jaas.config), not set"),
            ));
        }
        Ok(())
    }

    /// The TLS configuration connections use (`None` for `PLAINTEXT`).
    ///
    /// # Errors
    /// [`ClientError::Config`] naming the `ssl.*` setting that cannot be used.
    pub fn tls(&self) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, ClientError> {
        if !self.security_protocol.tls() {
            return Ok(None);
        }
        self.ssl.config().map(Some).map_err(|e| {
            let value = path_text(self.ssl.ca.as_deref());
            config_error("ssl.ca.location", &value, &e.to_string())
        })
    }

    fn validate_ranges(&self) -> Result<(), ClientError> {
        for key in java_keys() {
            if let Some(n) = self.number(key) {
                let (min, max) = bounds(key);
                if !(min..=max).contains(&n) {
                    let reason = format!("expected an integer from {min} to {max}");
                    return Err(config_error(key, &n.to_string(), &reason));
                }
            }
        }
        Ok(())
    }

    fn validate_bootstrap(&self) -> Result<(), ClientError> {
        let key = "bootstrap.servers";
        if self.bootstrap_servers.is_empty() {
            return Err(config_error(
                key,
                "",
                "required: list at least one host:port",
            ));
        }
        match self.bootstrap_servers.iter().find(|s| !is_host_port(s)) {
            Some(entry) => {
                let value = self.bootstrap_servers.join(",");
                Err(config_error(
                    key,
                    &value,
                    &format!("{entry:?} is not host:port"),
                ))
            }
            None => Ok(()),
        }
    }

    fn validate_idempotence(&self) -> Result<(), ClientError> {
        let conflict = self.idempotence_conflict();
        if let (Some(true), Some((key, value, needs))) = (self.enable_idempotence, &conflict) {
            let reason = format!(
                "enable.idempotence=true requires {needs}; change {key} or set enable.idempotence=false"
            );
            return Err(config_error(key, value, &reason));
        }
        let Some(id) = &self.transactional_id else {
            return Ok(());
        };
        if self.idempotence_enabled() {
            return Ok(());
        }
        Err(match conflict {
            Some((key, value, needs)) => {
                let reason =
                    format!("transactional.id={id} needs idempotence, which requires {needs}");
                config_error(key, &value, &reason)
            }
            None => {
                let reason = format!("transactional.id={id} requires enable.idempotence=true");
                config_error("enable.idempotence", "false", &reason)
            }
        })
    }

    fn validate_timeouts(&self) -> Result<(), ClientError> {
        let floor = self.linger_ms.saturating_add(self.request_timeout_ms);
        if self.delivery_timeout_ms < floor {
            let reason = format!(
                "must be at least linger.ms + request.timeout.ms = {} + {} = {floor}",
                self.linger_ms, self.request_timeout_ms
            );
            let value = self.delivery_timeout_ms.to_string();
            return Err(config_error("delivery.timeout.ms", &value, &reason));
        }
        if self.heartbeat_interval_ms >= self.session_timeout_ms {
            let reason = format!(
                "must be below session.timeout.ms={}",
                self.session_timeout_ms
            );
            let value = self.heartbeat_interval_ms.to_string();
            return Err(config_error("heartbeat.interval.ms", &value, &reason));
        }
        Ok(())
    }

    fn validate_names(&self) -> Result<(), ClientError> {
        let names = [
            ("client.rack", &self.client_rack),
            ("transactional.id", &self.transactional_id),
            ("group.id", &self.group_id),
            ("group.instance.id", &self.group_instance_id),
        ];
        match names.iter().find(|(_, v)| v.as_deref() == Some("")) {
            Some((key, _)) => Err(config_error(key, "", "must not be empty; leave it unset")),
            None => Ok(()),
        }
    }
}

impl TryFrom<&[(&str, &str)]> for ClientConfig {
    type Error = ClientError;

    /// As [`ClientConfig::from_pairs`].
    fn try_from(pairs: &[(&str, &str)]) -> Result<Self, ClientError> {
        Self::from_pairs(pairs.iter().copied())
    }
}

/// The Java client key that `key` sets, if `key` is known.
fn canonical(key: &str) -> Option<&'static str> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, c)| *c)
}

/// Each Java client key once, in table order.
fn java_keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter().filter(|(k, c)| k == c).map(|(k, _)| *k)
}

/// An optional path as a setting's text (empty when unset).
fn path_text(path: Option<&std::path::Path>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_default()
}

fn unknown(key: &str) -> ClientError {
    let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
    ClientError::unknown_config(key, &known)
}

fn config_error(key: &str, value: &str, reason: &str) -> ClientError {
    ClientError::Config {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Allowed range of numeric key `canonical`, from the Java client's type and validator.
fn bounds(canonical: &str) -> (u64, u64) {
    match canonical {
        "max.in.flight.requests.per.connection" | "max.poll.records" | "max.poll.interval.ms" => {
            (1, INT)
        }
        "linger.ms"
        | "buffer.memory"
        | "retry.backoff.ms"
        | "retry.backoff.max.ms"
        | "metadata.max.age.ms"
        | "max.block.ms"
        | "socket.connection.setup.timeout.ms"
        | "connections.max.idle.ms"
        | "reconnect.backoff.ms"
        | "reconnect.backoff.max.ms" => (0, LONG),
        _ => (0, INT),
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn optional(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// A comma-separated list, entries trimmed, empty entries dropped.
fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `host:port`, `[v6]:port`, optionally behind a `PLAINTEXT://`-style prefix.
fn is_host_port(entry: &str) -> bool {
    let address = entry.split_once("://").map_or(entry, |(_, a)| a);
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    !host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .is_empty()
        && port.parse::<u16>().is_ok()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
