//! Tests of the `__consumer_offsets` layouts: golden bytes, older versions, Java's
//! hashCode, and decoders that never panic.

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
            |(protocol_type, generation_id, protocol_name, leader, ts, members)| GroupMetadata {
                protocol_type,
                generation_id,
                protocol_name,
                leader,
                current_state_timestamp_ms: ts,
                members,
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
