//! The enumerated settings: acks, isolation level, offset reset, partitioner, security
//! protocol.

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

    pub(super) fn parse(value: &str) -> Option<Self> {
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

    pub(super) fn parse(value: &str) -> Option<Self> {
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

    pub(super) fn parse(value: &str) -> Option<Self> {
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

    pub(super) fn parse(value: &str) -> Result<Self, &'static str> {
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

/// How a client talks to brokers (`security.protocol`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    /// `PLAINTEXT`: unencrypted TCP. The default.
    #[default]
    Plaintext,
    /// `SSL`: TLS, the broker's certificate checked against `ssl.ca.location`.
    Ssl,
    /// `SASL_PLAINTEXT`: SASL authentication (`sasl.mechanism`) over TCP.
    SaslPlaintext,
    /// `SASL_SSL`: SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's spelling.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections use TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    pub(super) fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }
}

/// A password that is never printed (`Debug` shows `[hidden]`).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[hidden]")
    }
}
