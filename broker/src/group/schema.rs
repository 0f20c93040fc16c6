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
#[path = "schema_tests.rs"]
mod tests;
