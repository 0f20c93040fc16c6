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

/// Every accepted key and the Java client key it sets. A key listed as its own target is
/// a Java name (or, for `partitioner`, librdkafka's); the others are librdkafka aliases.
const KEYS: &[(&str, &str)] = &[
    ("bootstrap.servers", "bootstrap.servers"),
    ("metadata.broker.list", "bootstrap.servers"),
    ("client.id", "client.id"),
    ("client.rack", "client.rack"),
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

/// Acknowledgements the leader waits for before answering a produce (`acks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Acks {
    /// `acks=0`: no answer at all; records may be lost silently.
    None,
    /// `acks=1`: the leader has written the records.
    Leader,
    /// `acks=all` (`-1`): every in-sync replica has the records. The Java default.
    All,
}

impl Acks {
    /// The value sent in a ProduceRequest: 0, 1 or -1.
    pub fn as_i16(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }

    /// Kafka's spelling: `0`, `1` or `all`.
    pub fn name(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "0" => Some(Acks::None),
            "1" => Some(Acks::Leader),
            "all" | "-1" => Some(Acks::All),
            _ => None,
        }
    }
}

/// Which records a consumer sees (`isolation.level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IsolationLevel {
    /// `read_uncommitted`: everything up to the high watermark. The default.
    ReadUncommitted,
    /// `read_committed`: only committed transactional records, up to the last stable offset.
    ReadCommitted,
}

impl IsolationLevel {
    /// The value sent in a FetchRequest or ListOffsetsRequest: 0 or 1.
    pub fn as_i8(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }

    /// Kafka's spelling: `read_uncommitted` or `read_committed`.
    pub fn name(self) -> &'static str {
        match self {
            IsolationLevel::ReadUncommitted => "read_uncommitted",
            IsolationLevel::ReadCommitted => "read_committed",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "read_uncommitted" => Some(IsolationLevel::ReadUncommitted),
            "read_committed" => Some(IsolationLevel::ReadCommitted),
            _ => None,
        }
    }
}

/// Where a consumer starts when it has no valid position (`auto.offset.reset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffsetReset {
    /// `earliest` (librdkafka also `smallest`, `beginning`): the log start offset.
    Earliest,
    /// `latest` (librdkafka also `largest`, `end`): the end of the log. The default.
    Latest,
    /// `none` (librdkafka `error`): fail with [`ClientError::NoOffsetForPartition`] or
    /// [`ClientError::OffsetOutOfRange`].
    None,
}

impl OffsetReset {
    /// Kafka's spelling: `earliest`, `latest` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
            OffsetReset::None => "none",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "earliest" | "smallest" | "beginning" => Some(OffsetReset::Earliest),
            "latest" | "largest" | "end" => Some(OffsetReset::Latest),
            "none" | "error" => Some(OffsetReset::None),
            _ => None,
        }
    }
}

/// How the producer picks a partition for a record without an explicit one (`partitioner`,
/// with librdkafka's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartitionerKind {
    /// `default`: the Java client's built-in partitioner. Keyed records go to murmur2 of
    /// the key modulo the partition count; records without a key stick to one partition
    /// until its batch is sent (KIP-480).
    Default,
    /// `murmur2`: murmur2 of the key for every record, keys equal to the Java client's;
    /// records without a key all go to one partition (librdkafka's `murmur2`).
    Murmur2,
    /// `murmur2_random`: murmur2 for keyed records, a random partition for records
    /// without a key (librdkafka's `murmur2_random`).
    Murmur2Random,
    /// `random`: a random partition for every record (librdkafka's `random`).
    Random,
}

impl PartitionerKind {
    /// The `partitioner` value naming this kind.
    pub fn name(self) -> &'static str {
        match self {
            PartitionerKind::Default => "default",
            PartitionerKind::Murmur2 => "murmur2",
            PartitionerKind::Murmur2Random => "murmur2_random",
            PartitionerKind::Random => "random",
        }
    }

    fn parse(value: &str) -> Result<Self, &'static str> {
        match value.to_ascii_lowercase().as_str() {
            "default" => Ok(PartitionerKind::Default),
            "murmur2" => Ok(PartitionerKind::Murmur2),
            "murmur2_random" => Ok(PartitionerKind::Murmur2Random),
            "random" => Ok(PartitionerKind::Random),
            "consistent" | "consistent_random" | "fnv1a" | "fnv1a_random" => Err(
                "librdkafka's CRC32 and FNV-1a partitioners are not supported; \
                 expected default, murmur2, murmur2_random or random",
            ),
            _ => Err("expected default, murmur2, murmur2_random or random"),
        }
    }
}

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
            "acks" => self.acks.name().to_owned(),
            "compression.type" => self.compression.name().to_owned(),
            "enable.idempotence" => self.idempotence_enabled().to_string(),
            "partitioner" => self.partitioner.name().to_owned(),
            "transactional.id" => self.transactional_id.clone().unwrap_or_default(),
            "isolation.level" => self.isolation_level.name().to_owned(),
            "auto.offset.reset" => self.auto_offset_reset.name().to_owned(),
            "group.id" => self.group_id.clone().unwrap_or_default(),
            "group.instance.id" => self.group_instance_id.clone().unwrap_or_default(),
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
        self.validate_ranges()?;
        self.validate_bootstrap()?;
        self.validate_idempotence()?;
        self.validate_timeouts()?;
        self.validate_names()
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

/// Typed builders for the common keys; each consumes and returns the config.
impl ClientConfig {
    /// Sets one key by its string name, as [`ClientConfig::set`], in a builder chain.
    pub fn with(mut self, key: &str, value: &str) -> Result<Self, ClientError> {
        self.set(key, value)?;
        Ok(self)
    }

    /// `bootstrap.servers`, comma-separated `host:port`.
    pub fn bootstrap(mut self, servers: &str) -> Self {
        self.bootstrap_servers = split_list(servers);
        self
    }

    /// `client.id`.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// `acks`.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// `linger.ms`.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger_ms = millis(linger);
        self
    }

    /// `batch.size`.
    pub fn batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    /// `compression.type`.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// `enable.idempotence`, explicitly.
    pub fn enable_idempotence(mut self, enable: bool) -> Self {
        self.enable_idempotence = Some(enable);
        self
    }

    /// `max.in.flight.requests.per.connection`.
    pub fn max_in_flight(mut self, requests: u32) -> Self {
        self.max_in_flight_requests_per_connection = requests;
        self
    }

    /// `request.timeout.ms`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout_ms = millis(timeout);
        self
    }

    /// `delivery.timeout.ms`.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout_ms = millis(timeout);
        self
    }

    /// `retries`.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// `retry.backoff.ms`.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff_ms = millis(backoff);
        self
    }

    /// `partitioner`.
    pub fn partitioner(mut self, partitioner: PartitionerKind) -> Self {
        self.partitioner = partitioner;
        self
    }

    /// `transactional.id`.
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }

    /// `group.id`.
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }

    /// `group.instance.id`.
    pub fn group_instance_id(mut self, instance: impl Into<String>) -> Self {
        self.group_instance_id = Some(instance.into());
        self
    }

    /// `isolation.level`.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = level;
        self
    }

    /// `auto.offset.reset`.
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// `enable.auto.commit`.
    pub fn enable_auto_commit(mut self, enable: bool) -> Self {
        self.enable_auto_commit = enable;
        self
    }

    /// `session.timeout.ms`.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout_ms = millis(timeout);
        self
    }

    /// `fetch.max.wait.ms`.
    pub fn fetch_max_wait(mut self, wait: Duration) -> Self {
        self.fetch_max_wait_ms = millis(wait);
        self
    }

    /// `max.poll.records`.
    pub fn max_poll_records(mut self, records: u32) -> Self {
        self.max_poll_records = records;
        self
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A valid value for `canonical` that differs from its default.
    fn sample(canonical: &str) -> &'static str {
        match canonical {
            "bootstrap.servers" => "a:9092,[::1]:9093",
            "client.id" | "client.rack" | "transactional.id" | "group.id" => "x1",
            "group.instance.id" => "member-1",
            "acks" => "0",
            "compression.type" => "lz4",
            "enable.idempotence" | "enable.auto.commit" => "false",
            "partitioner" => "murmur2_random",
            "isolation.level" => "read_committed",
            "auto.offset.reset" => "earliest",
            _ => "7",
        }
    }

    fn expect_config_error(result: Result<&mut ClientConfig, ClientError>, key: &str) {
        match result {
            Err(ClientError::Config { key: k, reason, .. }) => {
                assert_eq!(k, key);
                assert!(
                    reason.contains("expected") || reason.contains("not"),
                    "{reason}"
                );
            }
            other => panic!("{key}: expected a Config error, got {other:?}"),
        }
    }

    #[test]
    fn every_key_parses_and_reads_back() {
        let defaults = ClientConfig::new();
        for (key, canonical) in KEYS {
            let mut config = ClientConfig::new();
            config.set(key, sample(canonical)).unwrap();
            assert_eq!(config.get(key).unwrap(), sample(canonical), "{key}");
            assert_ne!(config, defaults, "{key} changed nothing");
        }
    }

    #[test]
    fn to_pairs_lists_each_java_key_once() {
        let pairs = ClientConfig::new().to_pairs();
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, java_keys().collect::<Vec<_>>());
        let find = |k: &str| pairs.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(find("acks"), "all");
        assert_eq!(find("linger.ms"), "5");
        assert_eq!(find("retries"), "2147483647");
        assert_eq!(find("enable.idempotence"), "true");
        assert_eq!(find("group.id"), "");
    }

    #[test]
    fn bad_values_name_the_key() {
        let free_text = [
            "client.id",
            "client.rack",
            "transactional.id",
            "group.id",
            "group.instance.id",
        ];
        for (key, canonical) in KEYS {
            if !free_text.contains(canonical) {
                expect_config_error(ClientConfig::new().set(key, "bogus"), key);
            }
        }
        let mut config = ClientConfig::new();
        expect_config_error(config.set("batch.size", "-1"), "batch.size");
        expect_config_error(config.set("batch.size", "2147483648"), "batch.size");
        expect_config_error(config.set("max.poll.records", "0"), "max.poll.records");
        expect_config_error(
            config.set("bootstrap.servers", "a:1,b"),
            "bootstrap.servers",
        );
        expect_config_error(
            config.set("bootstrap.servers", "a:99999"),
            "bootstrap.servers",
        );
        expect_config_error(
            config.set("partitioner", "consistent_random"),
            "partitioner",
        );
        let err = config.set("linger.ms", "soon").unwrap_err().to_string();
        assert_eq!(
            err,
            "configuration linger.ms=soon: expected an integer from 0 to 9223372036854775807"
        );
        // A failed set leaves the old value.
        assert_eq!(config, ClientConfig::new());
    }

    #[test]
    fn unknown_keys_suggest_the_near_one() {
        let err = ClientConfig::new().set("linger.mss", "5").unwrap_err();
        match &err {
            ClientError::UnknownConfig { key, suggestion } => {
                assert_eq!(key, "linger.mss");
                assert_eq!(suggestion.as_deref(), Some("linger.ms"));
            }
            other => panic!("{other:?}"),
        }
        let err = ClientConfig::new().set("key.serializer", "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown configuration key \"key.serializer\""
        );
        assert!(ClientConfig::new().get("acks.x").is_err());
    }

    #[test]
    fn values_are_trimmed_and_case_insensitive() {
        let config = ClientConfig::from_pairs([
            (" acks ", " ALL "),
            ("enable.auto.commit", "False"),
            ("compression.type", "ZSTD"),
            ("bootstrap.servers", " a:1 , PLAINTEXT://b:2 ,"),
            ("group.id", ""),
        ])
        .unwrap();
        assert_eq!(config.acks, Acks::All);
        assert!(!config.enable_auto_commit);
        assert_eq!(config.compression, Compression::Zstd);
        assert_eq!(config.bootstrap_servers, ["a:1", "PLAINTEXT://b:2"]);
        assert_eq!(config.group_id, None);
    }

    #[test]
    fn librdkafka_aliases_set_the_java_fields() {
        let pairs: &[(&str, &str)] = &[
            ("metadata.broker.list", "k1:9092,k2:9092"),
            ("queue.buffering.max.ms", "25"),
            ("compression.codec", "snappy"),
            ("request.required.acks", "-1"),
            ("message.max.bytes", "2000000"),
            ("message.timeout.ms", "90000"),
            ("message.send.max.retries", "3"),
            ("max.in.flight", "2"),
            ("fetch.wait.max.ms", "100"),
            ("fetch.message.max.bytes", "4096"),
            ("auto.offset.reset", "smallest"),
            ("partitioner", "murmur2"),
        ];
        let config = ClientConfig::try_from(pairs).unwrap();
        assert_eq!(config.bootstrap_servers, ["k1:9092", "k2:9092"]);
        assert_eq!(config.linger_ms, 25);
        assert_eq!(config.compression, Compression::Snappy);
        assert_eq!(config.acks, Acks::All);
        assert_eq!(config.message_max_bytes, 2_000_000);
        assert_eq!(config.delivery_timeout_ms, 90_000);
        assert_eq!(config.retries, 3);
        assert_eq!(config.max_in_flight_requests_per_connection, 2);
        assert_eq!(config.fetch_max_wait_ms, 100);
        assert_eq!(config.max_partition_fetch_bytes, 4096);
        assert_eq!(config.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(config.partitioner, PartitionerKind::Murmur2);
        assert_eq!(config.get("max.request.size").unwrap(), "2000000");
        config.validate().unwrap();
    }

    #[test]
    fn builders_set_the_fields() {
        let config = ClientConfig::new()
            .bootstrap("h:1")
            .client_id("c")
            .acks(Acks::Leader)
            .linger(Duration::from_millis(7))
            .batch_size(1000)
            .compression(Compression::Gzip)
            .enable_idempotence(false)
            .max_in_flight(9)
            .request_timeout(Duration::from_secs(3))
            .delivery_timeout(Duration::from_secs(60))
            .retries(4)
            .retry_backoff(Duration::from_millis(20))
            .partitioner(PartitionerKind::Random)
            .group_id("g")
            .group_instance_id("i")
            .isolation_level(IsolationLevel::ReadCommitted)
            .auto_offset_reset(OffsetReset::None)
            .enable_auto_commit(false)
            .session_timeout(Duration::from_secs(10))
            .fetch_max_wait(Duration::from_millis(50))
            .max_poll_records(10)
            .with("client.rack", "r1")
            .unwrap();
        config.validate().unwrap();
        let expected = ClientConfig::from_pairs([
            ("bootstrap.servers", "h:1"),
            ("client.id", "c"),
            ("acks", "1"),
            ("linger.ms", "7"),
            ("batch.size", "1000"),
            ("compression.type", "gzip"),
            ("enable.idempotence", "false"),
            ("max.in.flight.requests.per.connection", "9"),
            ("request.timeout.ms", "3000"),
            ("delivery.timeout.ms", "60000"),
            ("retries", "4"),
            ("retry.backoff.ms", "20"),
            ("partitioner", "random"),
            ("group.id", "g"),
            ("group.instance.id", "i"),
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "none"),
            ("enable.auto.commit", "false"),
            ("session.timeout.ms", "10000"),
            ("fetch.max.wait.ms", "50"),
            ("max.poll.records", "10"),
            ("client.rack", "r1"),
        ])
        .unwrap();
        assert_eq!(config, expected);
    }

    #[test]
    fn defaults_are_the_java_clients() {
        let c = ClientConfig::default();
        assert_eq!((c.acks, c.linger_ms, c.batch_size), (Acks::All, 5, 16_384));
        assert_eq!(c.max_in_flight_requests_per_connection, 5);
        assert_eq!(
            (c.request_timeout_ms, c.delivery_timeout_ms),
            (30_000, 120_000)
        );
        assert_eq!(c.retries, 2_147_483_647);
        assert_eq!(c.isolation_level, IsolationLevel::ReadUncommitted);
        assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
        assert!(c.idempotence_enabled());
        // Only the missing bootstrap servers keep the defaults from being usable.
        let err = c.validate().unwrap_err();
        assert!(err
            .to_string()
            .starts_with("configuration bootstrap.servers=: required"));
        c.bootstrap("localhost:9092").validate().unwrap();
    }

    fn base() -> ClientConfig {
        ClientConfig::new().bootstrap("localhost:9092")
    }

    fn conflict_key(config: &ClientConfig) -> String {
        match config.validate() {
            Err(ClientError::Config { key, reason, .. }) => {
                assert!(reason.contains("idempotence"), "{reason}");
                key
            }
            other => panic!("expected an idempotence conflict, got {other:?}"),
        }
    }

    #[test]
    fn implicit_idempotence_turns_off_on_conflict() {
        for config in [
            base().acks(Acks::Leader),
            base().acks(Acks::None),
            base().max_in_flight(6),
            base().retries(0),
        ] {
            assert!(!config.idempotence_enabled(), "{config:?}");
            config.validate().unwrap();
            assert_eq!(config.get("enable.idempotence").unwrap(), "false");
        }
        assert!(base().max_in_flight(5).idempotence_enabled());
    }

    #[test]
    fn explicit_idempotence_rejects_conflicts_naming_both_keys() {
        let on = || base().enable_idempotence(true);
        assert_eq!(conflict_key(&on().acks(Acks::Leader)), "acks");
        assert_eq!(
            conflict_key(&on().max_in_flight(6)),
            "max.in.flight.requests.per.connection"
        );
        assert_eq!(conflict_key(&on().retries(0)), "retries");
        let err = on().max_in_flight(6).validate().unwrap_err().to_string();
        assert_eq!(
            err,
            "configuration max.in.flight.requests.per.connection=6: enable.idempotence=true \
             requires max.in.flight.requests.per.connection <= 5; change \
             max.in.flight.requests.per.connection or set enable.idempotence=false"
        );
        on().validate().unwrap();
        base()
            .enable_idempotence(false)
            .acks(Acks::Leader)
            .validate()
            .unwrap();
    }

    #[test]
    fn transactions_need_idempotence() {
        base().transactional_id("t").validate().unwrap();
        assert_eq!(
            conflict_key(&base().transactional_id("t").acks(Acks::Leader)),
            "acks"
        );
        let off = base().transactional_id("t").enable_idempotence(false);
        assert_eq!(conflict_key(&off), "enable.idempotence");
    }

    #[test]
    fn timeouts_and_names_are_checked() {
        let err = base().request_timeout(Duration::from_secs(200)).validate();
        let Err(ClientError::Config { key, reason, .. }) = err else {
            panic!("{err:?}")
        };
        assert_eq!(key, "delivery.timeout.ms");
        assert!(
            reason.contains("linger.ms + request.timeout.ms"),
            "{reason}"
        );
        let err = base().session_timeout(Duration::from_secs(3)).validate();
        assert!(
            matches!(err, Err(ClientError::Config { key, .. }) if key == "heartbeat.interval.ms")
        );
        let err = base().group_id("").validate();
        assert!(matches!(err, Err(ClientError::Config { key, .. }) if key == "group.id"));
        let mut config = base();
        config.max_poll_records = 0;
        let err = config.validate();
        assert!(matches!(err, Err(ClientError::Config { key, .. }) if key == "max.poll.records"));
        config.max_poll_records = 1;
        config.request_timeout_ms = INT + 1;
        config.delivery_timeout_ms = LONG;
        let err = config.validate();
        assert!(matches!(err, Err(ClientError::Config { key, .. }) if key == "request.timeout.ms"));
    }

    fn arb_name() -> impl Strategy<Value = Option<String>> {
        prop::option::of("[a-z0-9-]{1,12}")
    }

    fn arb_config() -> impl Strategy<Value = ClientConfig> {
        let int = || 0..=INT;
        let long = || 0..=LONG;
        let strings = (
            prop::collection::vec(("[a-z][a-z0-9.-]{0,12}", any::<u16>()), 0..4),
            "[a-zA-Z0-9._-]{0,16}",
            (arb_name(), arb_name(), arb_name(), arb_name()),
        );
        let choices = (
            prop::sample::select(vec![Acks::None, Acks::Leader, Acks::All]),
            prop::sample::select(Compression::ALL.to_vec()),
            prop::option::of(any::<bool>()),
            prop::sample::select(vec![
                PartitionerKind::Default,
                PartitionerKind::Murmur2,
                PartitionerKind::Murmur2Random,
                PartitionerKind::Random,
            ]),
            any::<bool>(),
            prop::sample::select(vec![
                IsolationLevel::ReadCommitted,
                IsolationLevel::ReadUncommitted,
            ]),
            prop::sample::select(vec![
                OffsetReset::Earliest,
                OffsetReset::Latest,
                OffsetReset::None,
            ]),
        );
        let producer = (
            (long(), int(), long(), 1..=INT, int(), int()),
            (int(), long(), long(), long(), long(), int()),
        );
        let consumer = (
            (int(), int(), int(), int(), int(), int()),
            (int(), 1..=INT, 1..=INT, int()),
            (long(), long(), long(), long()),
        );
        (strings, choices, producer, consumer).prop_map(|(s, c, p, n)| {
            let to = |v: u64| usize::try_from(v).unwrap();
            let small = |v: u64| u32::try_from(v).unwrap();
            ClientConfig {
                bootstrap_servers: s.0.iter().map(|(h, p)| format!("{h}:{p}")).collect(),
                client_id: s.1,
                client_rack: s.2 .0,
                transactional_id: s.2 .1,
                group_id: s.2 .2,
                group_instance_id: s.2 .3,
                acks: c.0,
                compression: c.1,
                enable_idempotence: c.2,
                partitioner: c.3,
                enable_auto_commit: c.4,
                isolation_level: c.5,
                auto_offset_reset: c.6,
                linger_ms: p.0 .0,
                batch_size: to(p.0 .1),
                buffer_memory: to(p.0 .2),
                max_in_flight_requests_per_connection: small(p.0 .3),
                request_timeout_ms: p.0 .4,
                delivery_timeout_ms: p.0 .5,
                retries: small(p.1 .0),
                retry_backoff_ms: p.1 .1,
                retry_backoff_max_ms: p.1 .2,
                metadata_max_age_ms: p.1 .3,
                max_block_ms: p.1 .4,
                message_max_bytes: to(p.1 .5),
                transaction_timeout_ms: n.0 .0,
                fetch_min_bytes: small(n.0 .1),
                fetch_max_bytes: small(n.0 .2),
                fetch_max_wait_ms: n.0 .3,
                max_partition_fetch_bytes: small(n.0 .4),
                session_timeout_ms: n.0 .5,
                heartbeat_interval_ms: n.1 .0,
                max_poll_interval_ms: n.1 .1,
                max_poll_records: small(n.1 .2),
                auto_commit_interval_ms: n.1 .3,
                socket_connection_setup_timeout_ms: n.2 .0,
                connections_max_idle_ms: n.2 .1,
                reconnect_backoff_ms: n.2 .2,
                reconnect_backoff_max_ms: n.2 .3,
            }
        })
    }

    proptest! {
        #[test]
        fn to_pairs_round_trips(config in arb_config()) {
            let parsed = ClientConfig::from_pairs(config.to_pairs()).unwrap();
            let mut expected = config.clone();
            expected.enable_idempotence = Some(config.idempotence_enabled());
            prop_assert_eq!(&parsed, &expected);
            prop_assert_eq!(parsed.to_pairs(), config.to_pairs());
            prop_assert_eq!(parsed.validate().is_ok(), config.validate().is_ok());
        }
    }
}
