//! The bytes inside JoinGroup and SyncGroup for the `consumer` protocol type:
//! `ConsumerProtocolSubscription` (a member's protocol metadata) and
//! `ConsumerProtocolAssignment` (a member's assignment), each a big-endian `i16` version
//! followed by the body at that version.
//!
//! Written at the highest version the `kafka-protocol` crate knows (3 for both). Read at
//! any version from 0; a newer version than 3 is read with the version-3 layout and the
//! bytes after it ignored, as Kafka's `ConsumerProtocol` does (later versions only append
//! fields).

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    consumer_protocol_assignment, consumer_protocol_subscription, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};
use strom_protocol::ProtocolError;

use super::Subscription;
use crate::error::ClientError;

const SUBSCRIPTION: &str = "ConsumerProtocolSubscription";
const ASSIGNMENT: &str = "ConsumerProtocolAssignment";
const SUBSCRIPTION_VERSION: i16 = ConsumerProtocolSubscription::VERSIONS.max;
const ASSIGNMENT_VERSION: i16 = ConsumerProtocolAssignment::VERSIONS.max;

/// A member's subscription as JoinGroup protocol metadata (version 3).
///
/// # Errors
///
/// [`ProtocolError::Encode`] if a field does not fit the wire format (a topic or rack
/// name over 32767 bytes).
///
/// ```
/// use strom_client::consumer::assignor::{decode_subscription, encode_subscription, Subscription};
///
/// let mut subscription = Subscription::new(["orders"]);
/// subscription.owned_partitions = vec![("orders".to_owned(), 2)];
/// subscription.generation_id = 7;
/// let bytes = encode_subscription(&subscription)?;
/// assert_eq!(&bytes[..2], &[0, 3]);
/// assert_eq!(decode_subscription(&bytes)?, subscription);
/// # Ok::<(), strom_client::ClientError>(())
/// ```
pub fn encode_subscription(subscription: &Subscription) -> Result<Bytes, ClientError> {
    let owned = group_by_topic(&subscription.owned_partitions)
        .into_iter()
        .map(|(topic, partitions)| {
            consumer_protocol_subscription::TopicPartition::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions)
        })
        .collect();
    let message = ConsumerProtocolSubscription::default()
        .with_topics(subscription.topics.iter().map(|t| str_bytes(t)).collect())
        .with_user_data(subscription.user_data.clone())
        .with_owned_partitions(owned)
        .with_generation_id(subscription.generation_id)
        .with_rack_id(subscription.rack_id.as_deref().map(str_bytes));
    encode(&message, SUBSCRIPTION_VERSION, SUBSCRIPTION)
}

/// A member's subscription from JoinGroup protocol metadata of any version; fields the
/// version lacks get their defaults (no owned partitions, generation -1, no rack).
///
/// # Errors
///
/// [`ProtocolError::Decode`] if the bytes are not a subscription.
pub fn decode_subscription(bytes: &[u8]) -> Result<Subscription, ClientError> {
    let (version, mut body) = split_version(bytes, SUBSCRIPTION)?;
    let version = version.min(SUBSCRIPTION_VERSION);
    let message = ConsumerProtocolSubscription::decode(&mut body, version)
        .map_err(|e| decode_error(SUBSCRIPTION, version, e.to_string()))?;
    let owned_partitions = message
        .owned_partitions
        .iter()
        .flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.to_string(), *p)))
        .collect();
    Ok(Subscription {
        topics: message.topics.iter().map(ToString::to_string).collect(),
        owned_partitions,
        generation_id: message.generation_id,
        rack_id: message.rack_id.map(|r| r.to_string()),
        user_data: message.user_data,
    })
}

/// A member's assignment as SyncGroup assignment bytes (version 3).
///
/// # Errors
///
/// [`ProtocolError::Encode`] if a topic name is over 32767 bytes.
///
/// ```
/// use strom_client::consumer::assignor::{decode_assignment, encode_assignment};
///
/// let partitions = [("orders".to_owned(), 0), ("orders".to_owned(), 1)];
/// let bytes = encode_assignment(&partitions, None)?;
/// assert_eq!(decode_assignment(&bytes)?, partitions);
/// # Ok::<(), strom_client::ClientError>(())
/// ```
pub fn encode_assignment(
    partitions: &[(String, i32)],
    user_data: Option<Bytes>,
) -> Result<Bytes, ClientError> {
    let assigned = group_by_topic(partitions)
        .into_iter()
        .map(|(topic, partitions)| {
            consumer_protocol_assignment::TopicPartition::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions)
        })
        .collect();
    let message = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(assigned)
        .with_user_data(user_data);
    encode(&message, ASSIGNMENT_VERSION, ASSIGNMENT)
}

/// The partitions in SyncGroup assignment bytes of any version, in the order sent. Empty
/// bytes are an empty assignment (what the coordinator sends a member it gave nothing).
///
/// # Errors
///
/// [`ProtocolError::Decode`] if the bytes are not an assignment.
pub fn decode_assignment(bytes: &[u8]) -> Result<Vec<(String, i32)>, ClientError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let (version, mut body) = split_version(bytes, ASSIGNMENT)?;
    let version = version.min(ASSIGNMENT_VERSION);
    let message = ConsumerProtocolAssignment::decode(&mut body, version)
        .map_err(|e| decode_error(ASSIGNMENT, version, e.to_string()))?;
    Ok(message
        .assigned_partitions
        .iter()
        .flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.to_string(), *p)))
        .collect())
}

fn encode<M: Encodable>(
    message: &M,
    version: i16,
    what: &'static str,
) -> Result<Bytes, ClientError> {
    let mut out = BytesMut::new();
    out.put_i16(version);
    message
        .encode(&mut out, version)
        .map_err(|e| ProtocolError::Encode {
            what,
            version,
            reason: e.to_string(),
        })?;
    Ok(out.freeze())
}

/// The version prefix and the body after it.
fn split_version<'a>(bytes: &'a [u8], what: &'static str) -> Result<(i16, &'a [u8]), ClientError> {
    let Some((prefix, body)) = bytes.split_first_chunk::<2>() else {
        return Err(decode_error(what, -1, "no version prefix".into()));
    };
    let version = i16::from_be_bytes(*prefix);
    if version < 0 {
        return Err(decode_error(what, version, "negative version".into()));
    }
    Ok((version, body))
}

fn decode_error(what: &'static str, version: i16, reason: String) -> ClientError {
    ClientError::Protocol(ProtocolError::Decode {
        what,
        version,
        reason,
    })
}

/// Partitions grouped by topic, topics sorted, partitions in the order given.
fn group_by_topic(partitions: &[(String, i32)]) -> BTreeMap<&str, Vec<i32>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    by_topic
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(str_bytes(topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription_v(version: i16, message: &ConsumerProtocolSubscription) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_i16(version);
        message.encode(&mut out, version.min(3)).unwrap();
        out.to_vec()
    }

    #[test]
    fn subscription_round_trips_every_field() {
        let subscription = Subscription {
            topics: vec!["a".into(), "b".into()],
            owned_partitions: vec![("a".into(), 0), ("a".into(), 2), ("b".into(), 1)],
            generation_id: 12,
            rack_id: Some("rack-1".into()),
            user_data: Some(Bytes::from_static(b"\x00\x00\x00\x0c")),
        };
        let bytes = encode_subscription(&subscription).unwrap();
        assert_eq!(decode_subscription(&bytes).unwrap(), subscription);
    }

    #[test]
    fn old_subscription_versions_get_defaults() {
        let message = ConsumerProtocolSubscription::default()
            .with_topics(vec![str_bytes("a")])
            .with_user_data(Some(Bytes::from_static(b"x")));
        let decoded = decode_subscription(&subscription_v(0, &message)).unwrap();
        assert_eq!(decoded.topics, ["a"]);
        assert_eq!(decoded.user_data.as_deref(), Some(&b"x"[..]));
        assert_eq!(decoded.generation_id, -1);
        assert!(decoded.owned_partitions.is_empty());
        assert_eq!(decoded.rack_id, None);

        let owned = consumer_protocol_subscription::TopicPartition::default()
            .with_topic(topic_name("a"))
            .with_partitions(vec![1]);
        let v1 = message.with_owned_partitions(vec![owned]);
        let decoded = decode_subscription(&subscription_v(1, &v1)).unwrap();
        assert_eq!(decoded.owned_partitions, [("a".to_owned(), 1)]);
        assert_eq!(decoded.generation_id, -1);
    }

    #[test]
    fn newer_versions_read_with_the_highest_known_layout() {
        let subscription = Subscription {
            generation_id: 4,
            ..Subscription::new(["a"])
        };
        let mut bytes = encode_subscription(&subscription).unwrap().to_vec();
        bytes[1] = 9; // version 9, with a field we do not know appended
        bytes.extend_from_slice(b"\x00\x05extra");
        assert_eq!(decode_subscription(&bytes).unwrap(), subscription);

        let mut bytes = encode_assignment(&[("a".into(), 3)], None)
            .unwrap()
            .to_vec();
        bytes[1] = 7;
        bytes.push(0xff);
        assert_eq!(decode_assignment(&bytes).unwrap(), [("a".to_owned(), 3)]);
    }

    #[test]
    fn assignment_round_trips_and_groups_by_topic() {
        let partitions = [
            ("b".to_owned(), 0),
            ("a".to_owned(), 1),
            ("b".to_owned(), 2),
        ];
        let bytes = encode_assignment(&partitions, Some(Bytes::from_static(b"u"))).unwrap();
        assert_eq!(&bytes[..2], &[0, 3]);
        let decoded = decode_assignment(&bytes).unwrap();
        assert_eq!(
            decoded,
            [
                ("a".to_owned(), 1),
                ("b".to_owned(), 0),
                ("b".to_owned(), 2)
            ]
        );
        assert!(decode_assignment(&[]).unwrap().is_empty());
    }

    #[test]
    fn garbage_is_a_decode_error() {
        for bytes in [&[0u8][..], &[0xff, 0xff, 0, 0][..], &[0, 0, 0, 0, 0, 9][..]] {
            let e = decode_subscription(bytes).unwrap_err();
            assert!(
                matches!(e, ClientError::Protocol(ProtocolError::Decode { .. })),
                "{e}"
            );
        }
        let e = decode_assignment(&[0, 1, 0x7f, 0xff, 0xff, 0xff]).unwrap_err();
        assert!(
            matches!(e, ClientError::Protocol(ProtocolError::Decode { .. })),
            "{e}"
        );
    }

    #[test]
    fn oversized_names_are_an_encode_error() {
        let long = "t".repeat(40_000);
        let e = encode_subscription(&Subscription::new([long.clone()])).unwrap_err();
        assert!(
            matches!(e, ClientError::Protocol(ProtocolError::Encode { .. })),
            "{e}"
        );
        let e = encode_assignment(&[(long, 0)], None).unwrap_err();
        assert!(
            matches!(e, ClientError::Protocol(ProtocolError::Encode { .. })),
            "{e}"
        );
    }
}
