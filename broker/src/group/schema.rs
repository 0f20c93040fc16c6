//! The records of `__consumer_offsets`, byte for byte as Apache Kafka stores them.
//!
//! Committed offsets and classic group metadata live as key/value records in the compacted
//! topic [`OFFSETS_TOPIC`]. Using Kafka's own layouts (the JSON schemas `OffsetCommitKey`,
//! `OffsetCommitValue`, `GroupMetadataKey` and `GroupMetadataValue` under
//! `group-coordinator/src/main/resources/common/message/`) means tools that read the topic,
//! such as `kafka-console-consumer --formatter ...OffsetsMessageFormatter`, understand what
//! Strom writes, and Strom can load what Kafka wrote.
//!
//! ```text
//!  key   = version:int16 ─┬─ 0, 1  OffsetCommitKey     group:string topic:string partition:int32
//!                          └─ 2     GroupMetadataKey    group:string
//!
//!  value = version:int16 ── OffsetCommitValue   v0-v4   offset leaderEpoch(v3+) metadata
//!          (none: a                                      commitTimestamp expireTimestamp(v1)
//!          tombstone)     GroupMetadataValue  v0-v4   protocolType generation protocol? leader?
//!                                                      currentStateTimestamp(v2+) [members]
//! ```
//!
//! The key's version says which record it is; the value's version is the value's schema
//! version. A key with no value is a tombstone: it deletes the offset or the group when the
//! topic is compacted, so only the key encoders exist for it.
//!
//! Versions 0-3 are not flexible: strings carry an int16 length (-1 for null), bytes and
//! arrays an int32 one. Version 4 of both values is flexible: lengths are unsigned varints
//! holding length + 1 (0 for null) and every struct ends with a tagged-field section, which we
//! skip (these schemas define no tagged fields).
//!
//! What we write is what Kafka's `GroupCoordinatorRecordHelpers` writes:
//! - keys: version 1 for offsets (version 0 is the pre-0.9 layout, identical, read only) and
//!   version 2 for groups;
//! - `OffsetCommitValue` version 3, or version 1 when the commit carries an expire timestamp
//!   (`offsetCommitValueVersion`: "Serialize with the highest supported non-flexible version
//!   until a tagged field is introduced or the version is bumped"); version 1 has no leader
//!   epoch, so it is dropped there, as in Kafka;
//! - `GroupMetadataValue` version 3 (`GROUP_METADATA_VALUE_VERSION = 3`).
//!
//! Kafka's versions before 3.5 (KIP-915) cannot read version 4, which is why nobody writes it
//! yet; we read all versions 0-4.

use bytes::{BufMut, Bytes, BytesMut};

/// Kafka's internal topic of committed offsets and group metadata.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The longest string Kafka's schemas allow, in UTF-8 bytes (flexible versions included).
pub(crate) const MAX_STRING_LEN: usize = i16::MAX as usize;

/// `leaderEpoch` of a commit that carries none (and of values before version 3).
pub(crate) const NO_LEADER_EPOCH: i32 = -1;

/// A timestamp that is not set: `expireTimestamp` outside version 1, `currentStateTimestamp`
/// before version 2.
pub(crate) const NO_TIMESTAMP: i64 = -1;

/// Key version of an offset commit as Kafka wrote it before 0.9; same fields as version 1.
const LEGACY_OFFSET_COMMIT_KEY_VERSION: i16 = 0;
/// Key version Kafka writes for an offset commit.
const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version of group metadata.
const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// `OffsetCommitValue` version Kafka writes when there is no expire timestamp.
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// `OffsetCommitValue` version Kafka writes when there is an expire timestamp.
const OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY: i16 = 1;
/// `GroupMetadataValue` version Kafka writes.
const GROUP_METADATA_VALUE_VERSION: i16 = 3;
/// Highest version of both value schemas.
const HIGHEST_VALUE_VERSION: i16 = 4;
/// First flexible version of both value schemas.
const FIRST_FLEXIBLE_VALUE_VERSION: i16 = 4;

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum OffsetsKey {
    /// `OffsetCommitKey`: the committed offset of one partition for one group.
    Offset {
        /// The group id.
        group: String,
        /// The topic name.
        topic: String,
        /// The partition index.
        partition: i32,
    },
    /// `GroupMetadataKey`: the membership of a classic group.
    Group {
        /// The group id.
        group: String,
    },
}

/// `OffsetCommitValue`: an offset committed for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedOffset {
    /// The next offset the group will consume.
    pub offset: i64,
    /// The leader epoch of the record before `offset`, or [`NO_LEADER_EPOCH`].
    pub leader_epoch: i32,
    /// The client's metadata string ("" when the client sent none).
    pub metadata: String,
    /// When the broker took the commit.
    pub commit_timestamp_ms: i64,
    /// When the commit expires, from an old OffsetCommit's retention time, or
    /// [`NO_TIMESTAMP`]. Only version 1 carries it; setting it makes us write version 1.
    pub expire_timestamp_ms: i64,
}

/// `GroupMetadataValue`: a classic group's generation and members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupMetadata {
    /// The protocol type, e.g. "consumer" ("" for a group with none).
    pub protocol_type: String,
    /// The generation id.
    pub generation_id: i32,
    /// The chosen protocol (assignor) name; `None` for an empty group.
    pub protocol_name: Option<String>,
    /// The leader's member id; `None` for an empty group.
    pub leader: Option<String>,
    /// When the group entered its current state, or [`NO_TIMESTAMP`] (always before v2).
    pub current_state_timestamp_ms: i64,
    /// The members of the current generation.
    pub members: Vec<GroupMemberMetadata>,
}

/// `GroupMetadataValue.MemberMetadata`: one member of a classic group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupMemberMetadata {
    /// The member id the coordinator gave.
    pub member_id: String,
    /// The static member id (`group.instance.id`); `None` before v3.
    pub group_instance_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client's host, as Kafka prints it ("/10.0.0.1").
    pub client_host: String,
    /// The rebalance timeout; v0 has none and reads as the session timeout, as in Kafka.
    pub rebalance_timeout_ms: i32,
    /// The session timeout.
    pub session_timeout_ms: i32,
    /// The member's metadata for the chosen protocol.
    pub subscription: Bytes,
    /// The assignment the leader gave the member.
    pub assignment: Bytes,
}

/// A `__consumer_offsets` key or value that cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SchemaError {
    /// The bytes end inside a field.
    #[error("truncated {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// The version prefix names no version (or record type) we know.
    #[error("unknown {what} version {version}")]
    UnknownVersion {
        /// "key", "OffsetCommitValue" or "GroupMetadataValue".
        what: &'static str,
        /// The version read.
        version: i16,
    },
    /// A string is not UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        what: &'static str,
    },
    /// A length below -1.
    #[error("{what} has negative length {length}")]
    NegativeLength {
        /// The field being read.
        what: &'static str,
        /// The length read.
        length: i64,
    },
    /// A null where the schema allows none.
    #[error("{what} is null but is not nullable")]
    UnexpectedNull {
        /// The field being read.
        what: &'static str,
    },
    /// An unsigned varint of more than five bytes.
    #[error("{what}: unsigned varint longer than 5 bytes")]
    VarintTooLong {
        /// The field being read.
        what: &'static str,
    },
}

/// Encodes a key: version 1 for an offset, version 2 for a group.
///
/// # Panics
///
/// If a string is longer than [`MAX_STRING_LEN`] bytes: Kafka refuses such ids when parsing
/// requests, so the coordinator must refuse them before they get here.
pub(crate) fn encode_key(key: &OffsetsKey) -> Bytes {
    match key {
        OffsetsKey::Offset {
            group,
            topic,
            partition,
        } => {
            let mut w = Writer::new(OFFSET_COMMIT_KEY_VERSION, false);
            w.string("group", group);
            w.string("topic", topic);
            w.i32(*partition);
            w.finish()
        }
        OffsetsKey::Group { group } => {
            let mut w = Writer::new(GROUP_METADATA_KEY_VERSION, false);
            w.string("group", group);
            w.finish()
        }
    }
}

/// Decodes a key of version 0, 1 (offset) or 2 (group). Other versions are other record
/// types (Kafka's newer consumer and share groups): [`SchemaError::UnknownVersion`].
pub(crate) fn decode_key(bytes: &[u8]) -> Result<OffsetsKey, SchemaError> {
    let mut r = Reader::new(bytes);
    match r.i16("key version")? {
        LEGACY_OFFSET_COMMIT_KEY_VERSION | OFFSET_COMMIT_KEY_VERSION => {
            let group = r.string("group")?;
            let topic = r.string("topic")?;
            let partition = r.i32("partition")?;
            Ok(OffsetsKey::Offset {
                group,
                topic,
                partition,
            })
        }
        GROUP_METADATA_KEY_VERSION => Ok(OffsetsKey::Group {
            group: r.string("group")?,
        }),
        version => Err(SchemaError::UnknownVersion {
            what: "key",
            version,
        }),
    }
}

/// Encodes an `OffsetCommitValue` at the version Kafka picks: 1 when
/// `expire_timestamp_ms` is set (the leader epoch is then lost, as in Kafka), else 3.
///
/// # Panics
///
/// If the metadata is longer than [`MAX_STRING_LEN`] bytes (the coordinator refuses it first,
/// with `OFFSET_METADATA_TOO_LARGE`).
pub(crate) fn encode_offset(value: &CommittedOffset) -> Bytes {
    let version = if value.expire_timestamp_ms == NO_TIMESTAMP {
        OFFSET_COMMIT_VALUE_VERSION
    } else {
        OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY
    };
    encode_offset_version(value, version)
}

/// Encodes an `OffsetCommitValue` at `version` (0-4); fields the version lacks are dropped.
fn encode_offset_version(value: &CommittedOffset, version: i16) -> Bytes {
    let mut w = Writer::new(version, version >= FIRST_FLEXIBLE_VALUE_VERSION);
    w.i64(value.offset);
    if version >= 3 {
        w.i32(value.leader_epoch);
    }
    w.string("metadata", &value.metadata);
    w.i64(value.commit_timestamp_ms);
    if version == 1 {
        w.i64(value.expire_timestamp_ms);
    }
    w.tagged_fields();
    w.finish()
}

/// Decodes an `OffsetCommitValue` of version 0-4. Bytes after the value are ignored, as
/// Kafka does.
pub(crate) fn decode_offset(bytes: &[u8]) -> Result<CommittedOffset, SchemaError> {
    let (mut r, version) = Reader::value(bytes, "OffsetCommitValue")?;
    let offset = r.i64("offset")?;
    let leader_epoch = if version >= 3 {
        r.i32("leaderEpoch")?
    } else {
        NO_LEADER_EPOCH
    };
    let metadata = r.string("metadata")?;
    let commit_timestamp_ms = r.i64("commitTimestamp")?;
    let expire_timestamp_ms = if version == 1 {
        r.i64("expireTimestamp")?
    } else {
        NO_TIMESTAMP
    };
    r.tagged_fields("OffsetCommitValue")?;
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
        expire_timestamp_ms,
    })
}

/// Encodes a `GroupMetadataValue` at version 3, the one Kafka writes.
///
/// # Panics
///
/// If a string is longer than [`MAX_STRING_LEN`] bytes, or a subscription, an assignment or
/// the member list is longer than `i32::MAX`: all came in requests that Kafka refuses first.
pub(crate) fn encode_group(value: &GroupMetadata) -> Bytes {
    encode_group_version(value, GROUP_METADATA_VALUE_VERSION)
}

/// Encodes a `GroupMetadataValue` at `version` (0-4); fields the version lacks are dropped.
fn encode_group_version(value: &GroupMetadata, version: i16) -> Bytes {
    let mut w = Writer::new(version, version >= FIRST_FLEXIBLE_VALUE_VERSION);
    w.string("protocolType", &value.protocol_type);
    w.i32(value.generation_id);
    w.nullable_string("protocol", value.protocol_name.as_deref());
    w.nullable_string("leader", value.leader.as_deref());
    if version >= 2 {
        w.i64(value.current_state_timestamp_ms);
    }
    w.array_len("members", value.members.len());
    for member in &value.members {
        write_member(&mut w, member, version);
    }
    w.tagged_fields();
    w.finish()
}

/// Writes one `MemberMetadata` struct.
fn write_member(w: &mut Writer, member: &GroupMemberMetadata, version: i16) {
    w.string("memberId", &member.member_id);
    if version >= 3 {
        w.nullable_string("groupInstanceId", member.group_instance_id.as_deref());
    }
    w.string("clientId", &member.client_id);
    w.string("clientHost", &member.client_host);
    if version >= 1 {
        w.i32(member.rebalance_timeout_ms);
    }
    w.i32(member.session_timeout_ms);
    w.bytes("subscription", &member.subscription);
    w.bytes("assignment", &member.assignment);
    w.tagged_fields();
}

/// Decodes a `GroupMetadataValue` of version 0-4. Bytes after the value are ignored, as
/// Kafka does.
pub(crate) fn decode_group(bytes: &[u8]) -> Result<GroupMetadata, SchemaError> {
    let (mut r, version) = Reader::value(bytes, "GroupMetadataValue")?;
    let protocol_type = r.string("protocolType")?;
    let generation_id = r.i32("generation")?;
    let protocol_name = r.nullable_string("protocol")?;
    let leader = r.nullable_string("leader")?;
    let current_state_timestamp_ms = if version >= 2 {
        r.i64("currentStateTimestamp")?
    } else {
        NO_TIMESTAMP
    };
    let count = r.array_len("members")?;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        members.push(read_member(&mut r, version)?);
    }
    r.tagged_fields("GroupMetadataValue")?;
    Ok(GroupMetadata {
        protocol_type,
        generation_id,
        protocol_name,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

/// Reads one `MemberMetadata` struct.
fn read_member(r: &mut Reader<'_>, version: i16) -> Result<GroupMemberMetadata, SchemaError> {
    let member_id = r.string("memberId")?;
    let group_instance_id = if version >= 3 {
        r.nullable_string("groupInstanceId")?
    } else {
        None
    };
    let client_id = r.string("clientId")?;
    let client_host = r.string("clientHost")?;
    let rebalance_timeout_ms = if version >= 1 {
        Some(r.i32("rebalanceTimeout")?)
    } else {
        None
    };
    let session_timeout_ms = r.i32("sessionTimeout")?;
    let subscription = r.bytes("subscription")?;
    let assignment = r.bytes("assignment")?;
    r.tagged_fields("MemberMetadata")?;
    Ok(GroupMemberMetadata {
        member_id,
        group_instance_id,
        client_id,
        client_host,
        // Kafka's loader: `if (version == 0) sessionTimeout else rebalanceTimeout`.
        rebalance_timeout_ms: rebalance_timeout_ms.unwrap_or(session_timeout_ms),
        session_timeout_ms,
        subscription,
        assignment,
    })
}

/// The `__consumer_offsets` partition that holds `group`: Kafka's
/// `Utils.abs(groupId.hashCode()) % partitions`, where `Utils.abs` maps `i32::MIN` to 0 and
/// `hashCode` is Java's `String.hashCode` over UTF-16 code units. Returns 0 when
/// `partitions` is not positive (`offsets.topic.num.partitions` is at least 1).
pub(crate) fn partition_for(group: &str, partitions: i32) -> i32 {
    let hash = java_hash_code(group);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    if partitions > 0 {
        abs % partitions
    } else {
        0
    }
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping.
fn java_hash_code(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// How a non-flexible version prefixes a length.
#[derive(Clone, Copy)]
enum Prefix {
    /// Strings.
    Int16,
    /// Bytes and arrays.
    Int32,
}

/// Bounds-checked reads over a byte slice, in one version's layout.
struct Reader<'a> {
    /// The bytes not read yet.
    rest: &'a [u8],
    /// Whether the version is flexible (compact lengths, tagged fields).
    flexible: bool,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`, not flexible.
    fn new(bytes: &'a [u8]) -> Self {
        Reader {
            rest: bytes,
            flexible: false,
        }
    }

    /// Reads the version prefix of a value schema (0-4) and sets the layout from it.
    fn value(bytes: &'a [u8], what: &'static str) -> Result<(Self, i16), SchemaError> {
        let mut r = Reader::new(bytes);
        let version = r.i16(what)?;
        if !(0..=HIGHEST_VALUE_VERSION).contains(&version) {
            return Err(SchemaError::UnknownVersion { what, version });
        }
        r.flexible = version >= FIRST_FLEXIBLE_VALUE_VERSION;
        Ok((r, version))
    }

    /// The next `len` bytes.
    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], SchemaError> {
        if len > self.rest.len() {
            return Err(SchemaError::Truncated { what });
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], SchemaError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// A big-endian int16.
    fn i16(&mut self, what: &'static str) -> Result<i16, SchemaError> {
        self.fixed(what).map(i16::from_be_bytes)
    }

    /// A big-endian int32.
    fn i32(&mut self, what: &'static str) -> Result<i32, SchemaError> {
        self.fixed(what).map(i32::from_be_bytes)
    }

    /// A big-endian int64.
    fn i64(&mut self, what: &'static str) -> Result<i64, SchemaError> {
        self.fixed(what).map(i64::from_be_bytes)
    }

    /// An unsigned varint of at most five bytes (bits past 32 dropped, as in Java).
    fn unsigned_varint(&mut self, what: &'static str) -> Result<u32, SchemaError> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let [byte] = self.fixed(what)?;
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(SchemaError::VarintTooLong { what })
    }

    /// A length prefix: `None` for null. Compact (varint of length + 1) when flexible.
    fn length(&mut self, what: &'static str, prefix: Prefix) -> Result<Option<usize>, SchemaError> {
        let length = match (self.flexible, prefix) {
            (true, _) => i64::from(self.unsigned_varint(what)?) - 1,
            (false, Prefix::Int16) => i64::from(self.i16(what)?),
            (false, Prefix::Int32) => i64::from(self.i32(what)?),
        };
        if length == -1 {
            return Ok(None);
        }
        usize::try_from(length)
            .map(Some)
            .map_err(|_| SchemaError::NegativeLength { what, length })
    }

    /// A string that may be null.
    fn nullable_string(&mut self, what: &'static str) -> Result<Option<String>, SchemaError> {
        let Some(len) = self.length(what, Prefix::Int16)? else {
            return Ok(None);
        };
        let raw = self.take(len, what)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(Some(s.to_owned())),
            Err(_) => Err(SchemaError::InvalidUtf8 { what }),
        }
    }

    /// A string that must not be null.
    fn string(&mut self, what: &'static str) -> Result<String, SchemaError> {
        self.nullable_string(what)?
            .ok_or(SchemaError::UnexpectedNull { what })
    }

    /// A byte field that must not be null.
    fn bytes(&mut self, what: &'static str) -> Result<Bytes, SchemaError> {
        let len = self
            .length(what, Prefix::Int32)?
            .ok_or(SchemaError::UnexpectedNull { what })?;
        self.take(len, what).map(Bytes::copy_from_slice)
    }

    /// The element count of an array that must not be null. Every element takes at least
    /// one byte, so a count above the bytes left is refused before anything is allocated.
    fn array_len(&mut self, what: &'static str) -> Result<usize, SchemaError> {
        let len = self
            .length(what, Prefix::Int32)?
            .ok_or(SchemaError::UnexpectedNull { what })?;
        if len > self.rest.len() {
            return Err(SchemaError::Truncated { what });
        }
        Ok(len)
    }

    /// Skips a tagged-field section (flexible versions only; none of these schemas has
    /// tagged fields, so all are unknown to us).
    fn tagged_fields(&mut self, what: &'static str) -> Result<(), SchemaError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.unsigned_varint(what)?;
        for _ in 0..count {
            let _tag = self.unsigned_varint(what)?;
            let size = self.unsigned_varint(what)?;
            let size = usize::try_from(size).map_err(|_| SchemaError::Truncated { what })?;
            self.take(size, what)?;
        }
        Ok(())
    }
}

/// Writes one version's layout into a buffer, version prefix first.
struct Writer {
    /// The bytes written so far.
    buf: BytesMut,
    /// Whether the version is flexible (compact lengths, tagged fields).
    flexible: bool,
}

impl Writer {
    /// A writer that has written the int16 `version` prefix.
    fn new(version: i16, flexible: bool) -> Self {
        let mut buf = BytesMut::with_capacity(128);
        buf.put_i16(version);
        Writer { buf, flexible }
    }

    /// The bytes written.
    fn finish(self) -> Bytes {
        self.buf.freeze()
    }

    /// A big-endian int16.
    fn i16(&mut self, value: i16) {
        self.buf.put_i16(value);
    }

    /// A big-endian int32.
    fn i32(&mut self, value: i32) {
        self.buf.put_i32(value);
    }

    /// A big-endian int64.
    fn i64(&mut self, value: i64) {
        self.buf.put_i64(value);
    }

    /// An unsigned varint, seven bits a byte, low bits first.
    fn unsigned_varint(&mut self, mut value: u32) {
        while value >= 0x80 {
            self.buf.put_u8((value & 0x7f) as u8 | 0x80);
            value >>= 7;
        }
        self.buf.put_u8(value as u8);
    }

    /// A length prefix; `None` is null.
    fn length(&mut self, what: &'static str, len: Option<usize>, prefix: Prefix) {
        match (self.flexible, prefix) {
            (true, _) => {
                let compact = len.map_or(0, |len| fits::<u32>(what, len).saturating_add(1));
                self.unsigned_varint(compact);
            }
            (false, Prefix::Int16) => self.i16(len.map_or(-1, |len| fits(what, len))),
            (false, Prefix::Int32) => self.i32(len.map_or(-1, |len| fits(what, len))),
        }
    }

    /// A string that may be null.
    fn nullable_string(&mut self, what: &'static str, value: Option<&str>) {
        if let Some(s) = value {
            assert!(
                s.len() <= MAX_STRING_LEN,
                "{what} is {} bytes, more than Kafka's {MAX_STRING_LEN}",
                s.len()
            );
        }
        self.length(what, value.map(str::len), Prefix::Int16);
        if let Some(s) = value {
            self.buf.put_slice(s.as_bytes());
        }
    }

    /// A string.
    fn string(&mut self, what: &'static str, value: &str) {
        self.nullable_string(what, Some(value));
    }

    /// A byte field.
    fn bytes(&mut self, what: &'static str, value: &[u8]) {
        self.length(what, Some(value.len()), Prefix::Int32);
        self.buf.put_slice(value);
    }

    /// An array's element count.
    fn array_len(&mut self, what: &'static str, len: usize) {
        self.length(what, Some(len), Prefix::Int32);
    }

    /// An empty tagged-field section (flexible versions only).
    fn tagged_fields(&mut self) {
        if self.flexible {
            self.unsigned_varint(0);
        }
    }
}

/// `len` as the length type `T`.
///
/// # Panics
///
/// If it does not fit: the field is longer than Kafka's schema can carry.
fn fits<T: TryFrom<usize>>(what: &'static str, len: usize) -> T {
    match T::try_from(len) {
        Ok(len) => len,
        Err(_) => panic!("{what} is {len} long, more than Kafka's schema can carry"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The concatenation of `parts`.
    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// A non-flexible string: int16 length, then UTF-8.
    fn s16(s: &str) -> Vec<u8> {
        let mut out = (s.len() as i16).to_be_bytes().to_vec();
        out.extend_from_slice(s.as_bytes());
        out
    }

    /// A flexible string: varint length + 1 (all test strings are under 127 bytes).
    fn compact(s: &str) -> Vec<u8> {
        let mut out = vec![s.len() as u8 + 1];
        out.extend_from_slice(s.as_bytes());
        out
    }

    /// A non-flexible byte field: int32 length, then the bytes.
    fn b32(b: &[u8]) -> Vec<u8> {
        let mut out = (b.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(b);
        out
    }

    /// A commit with a leader epoch and no expiry.
    fn offset_value() -> CommittedOffset {
        CommittedOffset {
            offset: 5,
            leader_epoch: 2,
            metadata: "m".into(),
            commit_timestamp_ms: 1000,
            expire_timestamp_ms: NO_TIMESTAMP,
        }
    }

    /// A member with fixed client fields.
    fn member(id: &str, instance: Option<&str>) -> GroupMemberMetadata {
        GroupMemberMetadata {
            member_id: id.into(),
            group_instance_id: instance.map(Into::into),
            client_id: "c".into(),
            client_host: "/h".into(),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 10_000,
            subscription: Bytes::from_static(&[1, 2]),
            assignment: Bytes::from_static(&[3]),
        }
    }

    /// A stable group of two members, one static.
    fn group_value() -> GroupMetadata {
        GroupMetadata {
            protocol_type: "consumer".into(),
            generation_id: 7,
            protocol_name: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: 1234,
            members: vec![member("m1", Some("i1")), member("m2", None)],
        }
    }

    /// What a value written at `version` reads back as: the fields it lacks at defaults.
    fn group_at_version(mut value: GroupMetadata, version: i16) -> GroupMetadata {
        if version < 2 {
            value.current_state_timestamp_ms = NO_TIMESTAMP;
        }
        for m in &mut value.members {
            if version < 3 {
                m.group_instance_id = None;
            }
            if version < 1 {
                m.rebalance_timeout_ms = m.session_timeout_ms;
            }
        }
        value
    }

    #[test]
    fn offset_key_golden_bytes() {
        let key = OffsetsKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        };
        let bytes = encode_key(&key);
        assert_eq!(&bytes[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 0]);
        assert_eq!(decode_key(&bytes).unwrap(), key);
    }

    #[test]
    fn group_key_golden_bytes() {
        let key = OffsetsKey::Group { group: "g".into() };
        let bytes = encode_key(&key);
        assert_eq!(&bytes[..], &[0, 2, 0, 1, b'g']);
        assert_eq!(decode_key(&bytes).unwrap(), key);
    }

    #[test]
    fn legacy_offset_key_v0_decodes() {
        let bytes = cat(&[&[0, 0], &s16("grp"), &s16("topic"), &[0, 0, 0, 9]]);
        let expected = OffsetsKey::Offset {
            group: "grp".into(),
            topic: "topic".into(),
            partition: 9,
        };
        assert_eq!(decode_key(&bytes).unwrap(), expected);
    }

    #[test]
    fn other_record_types_are_unknown_versions() {
        // Record type 3 is ConsumerGroupMetadataKey in Kafka 3.7+.
        let bytes = cat(&[&[0, 3], &s16("g")]);
        assert!(matches!(
            decode_key(&bytes),
            Err(SchemaError::UnknownVersion {
                what: "key",
                version: 3
            })
        ));
    }

    #[test]
    fn offset_value_v3_golden_bytes() {
        let bytes = encode_offset(&offset_value());
        let expected = cat(&[
            &[0, 3],
            &5i64.to_be_bytes(),
            &2i32.to_be_bytes(),
            &[0, 1, b'm'],
            &[0, 0, 0, 0, 0, 0, 0x03, 0xe8],
        ]);
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(decode_offset(&bytes).unwrap(), offset_value());
    }

    #[test]
    fn offset_value_with_expiry_is_v1_without_leader_epoch() {
        let value = CommittedOffset {
            expire_timestamp_ms: 9000,
            ..offset_value()
        };
        let bytes = encode_offset(&value);
        let expected = cat(&[
            &[0, 1],
            &5i64.to_be_bytes(),
            &s16("m"),
            &1000i64.to_be_bytes(),
            &9000i64.to_be_bytes(),
        ]);
        assert_eq!(&bytes[..], &expected[..]);
        let decoded = decode_offset(&bytes).unwrap();
        assert_eq!(
            decoded,
            CommittedOffset {
                leader_epoch: NO_LEADER_EPOCH,
                ..value
            }
        );
    }

    #[test]
    fn offset_value_v0_and_v2_decode() {
        for version in [0u8, 2] {
            let bytes = cat(&[
                &[0, version],
                &42i64.to_be_bytes(),
                &s16("meta"),
                &77i64.to_be_bytes(),
            ]);
            let decoded = decode_offset(&bytes).unwrap();
            assert_eq!(
                decoded,
                CommittedOffset {
                    offset: 42,
                    leader_epoch: NO_LEADER_EPOCH,
                    metadata: "meta".into(),
                    commit_timestamp_ms: 77,
                    expire_timestamp_ms: NO_TIMESTAMP,
                },
                "version {version}"
            );
        }
    }

    #[test]
    fn offset_value_v4_is_flexible_and_skips_tagged_fields() {
        let bytes = cat(&[
            &[0, 4],
            &42i64.to_be_bytes(),
            &3i32.to_be_bytes(),
            &compact("meta"),
            &77i64.to_be_bytes(),
            // One unknown tagged field: tag 5, two bytes.
            &[1, 5, 2, 0xaa, 0xbb],
        ]);
        let decoded = decode_offset(&bytes).unwrap();
        assert_eq!(
            decoded,
            CommittedOffset {
                offset: 42,
                leader_epoch: 3,
                metadata: "meta".into(),
                commit_timestamp_ms: 77,
                expire_timestamp_ms: NO_TIMESTAMP,
            }
        );
        // Our own v4 writer matches the hand-built layout (without the tagged field).
        let written = encode_offset_version(&decoded, 4);
        assert_eq!(&written[..], &cat(&[&bytes[..bytes.len() - 5], &[0]])[..]);
    }

    #[test]
    fn offset_value_round_trips_every_version() {
        for version in 0..=HIGHEST_VALUE_VERSION {
            let value = CommittedOffset {
                expire_timestamp_ms: 9000,
                ..offset_value()
            };
            let decoded = decode_offset(&encode_offset_version(&value, version)).unwrap();
            assert_eq!(decoded.offset, value.offset);
            assert_eq!(decoded.metadata, value.metadata);
            assert_eq!(decoded.commit_timestamp_ms, value.commit_timestamp_ms);
            let epoch = if version >= 3 { 2 } else { NO_LEADER_EPOCH };
            assert_eq!(decoded.leader_epoch, epoch, "version {version}");
            let expire = if version == 1 { 9000 } else { NO_TIMESTAMP };
            assert_eq!(decoded.expire_timestamp_ms, expire, "version {version}");
        }
    }

    #[test]
    fn group_value_v3_golden_bytes() {
        let value = GroupMetadata {
            members: vec![member("m1", None)],
            ..group_value()
        };
        let bytes = encode_group(&value);
        let expected = cat(&[
            &[0, 3],
            &s16("consumer"),
            &7i32.to_be_bytes(),
            &s16("range"),
            &s16("m1"),
            &1234i64.to_be_bytes(),
            &1i32.to_be_bytes(),
            &s16("m1"),
            &[0xff, 0xff], // groupInstanceId: null
            &s16("c"),
            &s16("/h"),
            &300_000i32.to_be_bytes(),
            &10_000i32.to_be_bytes(),
            &b32(&[1, 2]),
            &b32(&[3]),
        ]);
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(decode_group(&bytes).unwrap(), value);
    }

    #[test]
    fn empty_group_round_trips() {
        let value = GroupMetadata {
            protocol_type: String::new(),
            generation_id: 0,
            protocol_name: None,
            leader: None,
            current_state_timestamp_ms: 55,
            members: Vec::new(),
        };
        let bytes = encode_group(&value);
        assert_eq!(
            &bytes[..],
            &cat(&[
                &[0, 3, 0, 0],
                &[0, 0, 0, 0],
                &[0xff, 0xff, 0xff, 0xff],
                &55i64.to_be_bytes(),
                &[0, 0, 0, 0]
            ])[..]
        );
        assert_eq!(decode_group(&bytes).unwrap(), value);
    }

    #[test]
    fn group_value_v0_decodes_with_session_timeout_as_rebalance_timeout() {
        let bytes = cat(&[
            &[0, 0],
            &s16("consumer"),
            &1i32.to_be_bytes(),
            &s16("range"),
            &s16("m1"),
            &1i32.to_be_bytes(),
            &s16("m1"),
            &s16("c"),
            &s16("/h"),
            &6000i32.to_be_bytes(),
            &b32(&[9]),
            &b32(&[]),
        ]);
        let decoded = decode_group(&bytes).unwrap();
        assert_eq!(decoded.current_state_timestamp_ms, NO_TIMESTAMP);
        let m = &decoded.members[0];
        assert_eq!((m.rebalance_timeout_ms, m.session_timeout_ms), (6000, 6000));
        assert_eq!(m.group_instance_id, None);
        assert_eq!(&m.subscription[..], &[9]);
        assert!(m.assignment.is_empty());
    }

    #[test]
    fn group_value_v1_and_v2_decode() {
        let member_v1 = cat(&[
            &s16("m1"),
            &s16("c"),
            &s16("/h"),
            &300_000i32.to_be_bytes(),
            &10_000i32.to_be_bytes(),
            &b32(&[1, 2]),
            &b32(&[3]),
        ]);
        let head = cat(&[
            &s16("consumer"),
            &7i32.to_be_bytes(),
            &s16("range"),
            &s16("m1"),
        ]);
        let v1 = cat(&[&[0, 1], &head, &1i32.to_be_bytes(), &member_v1]);
        let v2 = cat(&[
            &[0, 2],
            &head,
            &1234i64.to_be_bytes(),
            &1i32.to_be_bytes(),
            &member_v1,
        ]);
        let expected = GroupMetadata {
            members: vec![member("m1", None)],
            ..group_value()
        };
        assert_eq!(
            decode_group(&v1).unwrap(),
            GroupMetadata {
                current_state_timestamp_ms: NO_TIMESTAMP,
                ..expected.clone()
            }
        );
        assert_eq!(decode_group(&v2).unwrap(), expected);
    }

    #[test]
    fn group_value_v4_is_flexible() {
        let bytes = cat(&[
            &[0, 4],
            &compact("consumer"),
            &7i32.to_be_bytes(),
            &compact("range"),
            &[0], // leader: null
            &1234i64.to_be_bytes(),
            &[2], // one member
            &compact("m1"),
            &compact("i1"),
            &compact("c"),
            &compact("/h"),
            &300_000i32.to_be_bytes(),
            &10_000i32.to_be_bytes(),
            &[3, 1, 2],       // subscription
            &[2, 3],          // assignment
            &[1, 0, 1, 0xee], // member: one tagged field, tag 0, one byte
            &[0],             // value: no tagged fields
        ]);
        let expected = GroupMetadata {
            leader: None,
            members: vec![member("m1", Some("i1"))],
            ..group_value()
        };
        assert_eq!(decode_group(&bytes).unwrap(), expected);
    }

    #[test]
    fn java_hash_codes() {
        assert_eq!(java_hash_code(""), 0);
        assert_eq!(java_hash_code("a"), 97);
        assert_eq!(java_hash_code("hello"), 99_162_322);
        // U+1F600 is the surrogate pair 0xD83D 0xDE00: 0xD83D * 31 + 0xDE00.
        assert_eq!(java_hash_code("😀"), 1_772_899);
        assert_eq!(java_hash_code("héllo"), 103_094_734);
        assert_eq!(java_hash_code("my-group"), -1_906_497_762);
        assert_eq!(java_hash_code("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn partitions_match_kafka() {
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("a", 50), 47);
        assert_eq!(partition_for("hello", 50), 22);
        assert_eq!(partition_for("😀", 50), 49);
        // Negative hash: abs first (a mask with 0x7fffffff would give 36).
        assert_eq!(partition_for("my-group", 50), 12);
        // i32::MIN: Kafka's Utils.abs gives 0 (Math.abs would stay negative).
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("orders", 50), 31);
        assert_eq!(partition_for("hello", 1), 0);
        assert_eq!(partition_for("hello", 0), 0);
    }

    #[test]
    fn truncated_input_is_an_error() {
        let key = encode_key(&OffsetsKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        });
        for len in 0..key.len() {
            assert!(decode_key(&key[..len]).is_err(), "key cut at {len}");
        }
        let offset = encode_offset(&offset_value());
        for len in 0..offset.len() {
            assert!(
                decode_offset(&offset[..len]).is_err(),
                "offset cut at {len}"
            );
        }
        let group = encode_group(&group_value());
        for len in 0..group.len() {
            assert!(decode_group(&group[..len]).is_err(), "group cut at {len}");
        }
        let flexible = encode_group_version(&group_value(), 4);
        for len in 0..flexible.len() {
            assert!(
                decode_group(&flexible[..len]).is_err(),
                "v4 group cut at {len}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(
            decode_offset(&[0, 5]),
            Err(SchemaError::UnknownVersion { version: 5, .. })
        ));
        assert!(matches!(
            decode_group(&[0xff, 0xff]),
            Err(SchemaError::UnknownVersion { version: -1, .. })
        ));
        // A null group id in a key.
        assert!(matches!(
            decode_key(&[0, 2, 0xff, 0xff]),
            Err(SchemaError::UnexpectedNull { what: "group" })
        ));
        // A string length below -1.
        assert!(matches!(
            decode_key(&[0, 2, 0xff, 0xfe]),
            Err(SchemaError::NegativeLength { length: -2, .. })
        ));
        // Invalid UTF-8.
        assert!(matches!(
            decode_key(&[0, 2, 0, 1, 0xff]),
            Err(SchemaError::InvalidUtf8 { what: "group" })
        ));
        // A member count far beyond the bytes left is refused before allocating.
        let huge = cat(&[
            &[0, 3],
            &s16(""),
            &[0, 0, 0, 0],
            &[0xff, 0xff, 0xff, 0xff],
            &[0; 8],
            &i32::MAX.to_be_bytes(),
        ]);
        assert!(matches!(
            decode_group(&huge),
            Err(SchemaError::Truncated { what: "members" })
        ));
        // A varint that never ends.
        let endless = cat(&[&[0, 4], &[0xff; 6]]);
        assert!(matches!(
            decode_group(&endless),
            Err(SchemaError::VarintTooLong { .. })
        ));
    }

    /// An arbitrary group member for the round-trip property.
    fn arb_member() -> impl Strategy<Value = GroupMemberMetadata> {
        (
            "\\PC{0,12}",
            proptest::option::of("\\PC{0,12}"),
            ("\\PC{0,12}", "\\PC{0,12}"),
            (any::<i32>(), any::<i32>()),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(
                |(
                    member_id,
                    group_instance_id,
                    (client_id, client_host),
                    (rebalance, session),
                    sub,
                    assign,
                )| {
                    GroupMemberMetadata {
                        member_id,
                        group_instance_id,
                        client_id,
                        client_host,
                        rebalance_timeout_ms: rebalance,
                        session_timeout_ms: session,
                        subscription: Bytes::from(sub),
                        assignment: Bytes::from(assign),
                    }
                },
            )
    }

    /// An arbitrary group value for the round-trip property.
    fn arb_group() -> impl Strategy<Value = GroupMetadata> {
        (
            "\\PC{0,12}",
            any::<i32>(),
            proptest::option::of("\\PC{0,12}"),
            proptest::option::of("\\PC{0,12}"),
            any::<i64>(),
            proptest::collection::vec(arb_member(), 0..4),
        )
            .prop_map(
                |(protocol_type, generation_id, protocol_name, leader, ts, members)| {
                    GroupMetadata {
                        protocol_type,
                        generation_id,
                        protocol_name,
                        leader,
                        current_state_timestamp_ms: ts,
                        members,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_key(&b);
            let _ = decode_offset(&b);
            let _ = decode_group(&b);
        }

        #[test]
        fn decode_after_a_known_version_never_panics(
            version in 0i16..=4,
            b in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let bytes = cat(&[&version.to_be_bytes(), &b]);
            let _ = decode_key(&bytes);
            let _ = decode_offset(&bytes);
            let _ = decode_group(&bytes);
        }

        #[test]
        fn group_round_trips(value in arb_group(), version in 0..=HIGHEST_VALUE_VERSION) {
            let bytes = encode_group_version(&value, version);
            prop_assert_eq!(decode_group(&bytes).unwrap(), group_at_version(value, version));
        }

        #[test]
        fn offset_round_trips(
            offset in any::<i64>(),
            leader_epoch in any::<i32>(),
            metadata in "\\PC{0,40}",
            commit_timestamp_ms in any::<i64>(),
        ) {
            let value = CommittedOffset {
                offset,
                leader_epoch,
                metadata,
                commit_timestamp_ms,
                expire_timestamp_ms: NO_TIMESTAMP,
            };
            prop_assert_eq!(decode_offset(&encode_offset(&value)).unwrap(), value);
        }

        #[test]
        fn key_round_trips(group in "\\PC{0,20}", topic in "\\PC{0,20}", partition in any::<i32>()) {
            let offset = OffsetsKey::Offset { group: group.clone(), topic, partition };
            prop_assert_eq!(decode_key(&encode_key(&offset)).unwrap(), offset);
            let group = OffsetsKey::Group { group };
            prop_assert_eq!(decode_key(&encode_key(&group)).unwrap(), group);
        }
    }
}
