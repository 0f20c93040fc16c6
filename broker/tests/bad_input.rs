//! Bad input gets a Kafka error or a closed connection, and other connections carry on.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_protocol::records::{BatchBuilder, Compression};
use strom_protocol::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{list_offset, produce, TestBroker};

/// Sends raw bytes and reports whether the broker closed the connection (reading to EOF).
async fn closes_after(b: &TestBroker, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(b.broker.local_addr()).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = vec![0u8; 1024];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn frame(api: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let mut f = BytesMut::new();
    f.put_i32((8 + 2 + body.len()) as i32);
    f.put_i16(api);
    f.put_i16(version);
    f.put_i32(correlation);
    f.put_i16(-1); // null client id
    f.put_slice(body);
    f.to_vec()
}

async fn still_serves(b: &TestBroker) {
    let conn = b.connect().await;
    let r = conn.send(&MetadataRequest::default()).await.unwrap();
    assert_eq!(r.brokers.len(), 1);
}

#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let b = TestBroker::start().await;
    // A frame announcing 200 MB (over socket.request.max.bytes), then nothing.
    assert!(closes_after(&b, &200_000_000i32.to_be_bytes()).await);
    // A negative length.
    assert!(closes_after(&b, &(-5i32).to_be_bytes()).await);
    // An unknown API key.
    assert!(closes_after(&b, &frame(999, 0, 1, &[])).await);
    // A known API at a version not served.
    assert!(closes_after(&b, &frame(ApiKey::Metadata as i16, 99, 1, &[])).await);
    // Produce v2 is advertised (as Kafka 4 does) but refused.
    assert!(closes_after(&b, &frame(ApiKey::Produce as i16, 2, 1, &[0, 1, 0, 0])).await);
    // A header shorter than the prefix.
    assert!(closes_after(&b, &[0, 0, 0, 3, 0, 1, 2]).await);
    // Metadata v1 announcing 2^31-1 topics in a 4-byte array header: refused before any
    // allocation (an unchecked decoder would try to reserve hundreds of GB and abort).
    assert!(
        closes_after(
            &b,
            &frame(ApiKey::Metadata as i16, 1, 1, &i32::MAX.to_be_bytes())
        )
        .await
    );
    // A string announcing 30000 bytes with 2 present.
    assert!(
        closes_after(
            &b,
            &frame(
                ApiKey::Metadata as i16,
                1,
                1,
                &[0, 0, 0, 1, 0x75, 0x30, b'a', b'b']
            )
        )
        .await
    );
    // Produce v3 with a body of garbage.
    assert!(closes_after(&b, &frame(ApiKey::Produce as i16, 3, 1, &[0xff; 40])).await);
    still_serves(&b).await;
}

#[tokio::test]
async fn too_new_api_versions_gets_v0_unsupported_version() {
    let b = TestBroker::start().await;
    let mut s = TcpStream::connect(b.broker.local_addr()).await.unwrap();
    s.write_all(&frame(ApiKey::ApiVersions as i16, 77, 42, &[]))
        .await
        .unwrap();
    let len = s.read_i32().await.unwrap();
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).await.unwrap();
    let mut bytes = bytes::Bytes::from(body);
    let correlation =
        strom_protocol::header::decode_response_header(&mut bytes, ApiKey::ApiVersions, 0).unwrap();
    assert_eq!(correlation, 42);
    let r: ApiVersionsResponse =
        strom_protocol::header::decode_body(&mut bytes, 0, "ApiVersions").unwrap();
    assert_eq!(r.error_code, ErrorCode::UNSUPPORTED_VERSION.code());
    assert_eq!(r.api_keys.len(), 1);
    assert_eq!((r.api_keys[0].api_key, r.api_keys[0].max_version), (18, 4));
}

#[tokio::test]
async fn corrupt_and_oversized_batches_get_kafka_errors() {
    let b = TestBroker::start_with(|c| c.set("message.max.bytes", "10000").unwrap()).await;
    let conn = b.connect().await;
    let created = conn
        .send(
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
        )
        .await
        .unwrap();
    assert_eq!(created.topics[0].error_code, 0);
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(1, Some(b"k"), Some(b"value"), &[]);
    let good = builder.build().unwrap();

    let mut flipped = good.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    assert_eq!(
        produce(&conn, "t", 0, flipped.into()).await.0,
        ErrorCode::CORRUPT_MESSAGE.code()
    );

    let mut short = good.to_vec();
    short.truncate(good.len() - 3);
    assert_eq!(
        produce(&conn, "t", 0, short.into()).await.0,
        ErrorCode::CORRUPT_MESSAGE.code()
    );

    let mut big = BatchBuilder::new(Compression::None);
    big.push(1, None, Some(&[7u8; 20_000]), &[]);
    assert_eq!(
        produce(&conn, "t", 0, big.build().unwrap()).await.0,
        ErrorCode::MESSAGE_TOO_LARGE.code()
    );

    // Nothing bad was stored, and the connection still works.
    assert_eq!(produce(&conn, "t", 0, good).await.0, 0);
    assert_eq!(list_offset(&conn, "t", 0, -1).await, (0, 1, -1));
}

#[tokio::test]
async fn produce_rules_kafka_enforces() {
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    crate::create_topic(&conn, "t", 1).await;
    let compacted = CreatableTopic::default()
        .with_name(crate::name("compacted"))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(crate::s("cleanup.policy"))
            .with_value(Some(crate::s("compact")))]);
    conn.send(&CreateTopicsRequest::default().with_topics(vec![compacted]))
        .await
        .unwrap();
    let one = |key: Option<&[u8]>| {
        let mut b = BatchBuilder::new(Compression::Lz4);
        b.push(1, key, Some(b"v"), &[]);
        b.build().unwrap()
    };
    // Two batches in one partition's payload.
    let mut two = one(Some(b"k")).to_vec();
    two.extend_from_slice(&one(Some(b"k")));
    assert_eq!(
        produce(&conn, "t", 0, two.into()).await.0,
        ErrorCode::INVALID_RECORD.code()
    );
    // A control batch.
    let control = BatchBuilder::new(Compression::None).control(true);
    let mut control = control;
    control.push(1, Some(&[0, 0, 0, 0]), Some(&[0, 0, 0, 0, 0, 0]), &[]);
    assert_eq!(
        produce(&conn, "t", 0, control.build().unwrap()).await.0,
        ErrorCode::INVALID_RECORD.code()
    );
    // A record without a key on a compacted topic; with a key it is fine.
    assert_eq!(
        produce(&conn, "compacted", 0, one(None)).await.0,
        ErrorCode::INVALID_RECORD.code()
    );
    assert_eq!(
        produce(&conn, "compacted", 0, one(Some(b"k"))).await,
        (0, 0)
    );
    assert_eq!(list_offset(&conn, "t", 0, -1).await, (0, 0, -1));
}

#[tokio::test]
async fn failed_acks_zero_produce_closes_the_connection() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    let mut batch = BatchBuilder::new(Compression::None);
    batch.push(1, None, Some(b"v"), &[]);
    let request = crate::produce_request("no-such-topic", 0, batch.build().unwrap()).with_acks(0);
    let version = conn.version_for::<ProduceRequest>().unwrap();
    conn.send_no_response(&request, version).await.unwrap();
    // The broker tells an acks=0 producer about a failure the only way it can.
    assert!(conn.send(&MetadataRequest::default()).await.is_err());
    still_serves(&b).await;
}
