//! Produce and fetch semantics: idempotence, long polls, size limits, timestamps, restarts.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use strom_protocol::connection::Connection;
use strom_protocol::records::{batches, decode_batch, BatchBuilder, Compression};
use strom_protocol::ErrorCode;

use crate::{create_topic, list_offset, name, produce, produce_request, TestBroker};

/// (offset, timestamp) of a ListOffsets query on partition 0 that must succeed.
async fn offset_at(conn: &Connection, topic: &str, timestamp: i64) -> (i64, i64) {
    let (error, offset, ts) = list_offset(conn, topic, 0, timestamp).await;
    assert_eq!(error, 0);
    (offset, ts)
}

fn records(values: &[&str], timestamp: i64) -> BatchBuilder {
    let mut b = BatchBuilder::new(Compression::Lz4);
    for (i, v) in values.iter().enumerate() {
        b.push(
            timestamp + i as i64 * 1000,
            Some(b"key"),
            Some(v.as_bytes()),
            &[("h", Some(b"x"))],
        );
    }
    b
}

fn fetch_request(
    topic: &str,
    offsets: &[(i32, i64)],
    partition_max: i32,
    max_bytes: i32,
    wait_ms: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(
                offsets
                    .iter()
                    .map(|&(p, o)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(o)
                            .with_partition_max_bytes(partition_max)
                    })
                    .collect(),
            )])
}

/// Sends a fetch at v12, the last version that names topics by name.
async fn fetch(conn: &Connection, request: &FetchRequest) -> FetchResponse {
    conn.send_version(request, 12).await.unwrap()
}

/// Values of every record in a fetched partition.
fn values(data: &Option<Bytes>) -> Vec<String> {
    let data = data.clone().unwrap_or_default();
    let mut out = Vec::new();
    for item in batches(&data) {
        let (_, range) = item.unwrap();
        let (_, recs) = decode_batch(&data[range]).unwrap();
        out.extend(
            recs.into_iter()
                .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
        );
    }
    out
}

#[tokio::test]
async fn idempotent_produce_drops_duplicates_and_refuses_gaps() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    create_topic(&conn, "idem", 1).await;
    let init = conn
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60000),
        )
        .await
        .unwrap();
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    let batch = |seq: i32, vals: &[&str]| {
        records(vals, 1000)
            .producer(pid, epoch, seq)
            .build()
            .unwrap()
    };

    assert_eq!(
        produce(&conn, "idem", 0, batch(0, &["a", "b"])).await,
        (0, 0)
    );
    // A retry of the same batch is acknowledged with its original offset and not stored again.
    assert_eq!(
        produce(&conn, "idem", 0, batch(0, &["a", "b"])).await,
        (0, 0)
    );
    assert_eq!(produce(&conn, "idem", 0, batch(2, &["c"])).await, (0, 2));
    // A gap is refused.
    assert_eq!(
        produce(&conn, "idem", 0, batch(5, &["x"])).await.0,
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER.code()
    );
    // An older epoch is fenced.
    let old = records(&["z"], 1000)
        .producer(pid, epoch - 1, 3)
        .build()
        .unwrap();
    assert_eq!(
        produce(&conn, "idem", 0, old).await.0,
        ErrorCode::INVALID_PRODUCER_EPOCH.code()
    );
    let r = fetch(
        &conn,
        &fetch_request("idem", &[(0, 0)], 1 << 20, 1 << 20, 0),
    )
    .await;
    assert_eq!(
        values(&r.responses[0].partitions[0].records),
        ["a", "b", "c"]
    );

    // Producer state is rebuilt from the log after a restart: the duplicate is still caught.
    drop(conn);
    let b = b.restart().await;
    let conn = b.connect().await;
    assert_eq!(produce(&conn, "idem", 0, batch(2, &["c"])).await, (0, 2));
    assert_eq!(produce(&conn, "idem", 0, batch(3, &["d"])).await, (0, 3));
}

#[tokio::test]
async fn long_poll_returns_when_data_arrives() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    create_topic(&conn, "poll", 1).await;
    let waiting = {
        let conn = b.connect().await;
        tokio::spawn(async move {
            fetch(
                &conn,
                &fetch_request("poll", &[(0, 0)], 1 << 20, 1 << 20, 20_000),
            )
            .await
        })
    };
    // The fetch waits; there is nothing to read yet. Produce, and it must answer with the data
    // (had it waited out its 20 s, this test would take that long and the assertion below
    // would still hold, so bound it).
    assert_eq!(
        produce(&conn, "poll", 0, records(&["hello"], 1).build().unwrap())
            .await
            .0,
        0
    );
    let r = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("long poll woke")
        .unwrap();
    assert_eq!(values(&r.responses[0].partitions[0].records), ["hello"]);

    // With max_wait 0 and nothing new, the answer is immediate and empty.
    let r = fetch(
        &conn,
        &fetch_request("poll", &[(0, 1)], 1 << 20, 1 << 20, 0),
    )
    .await;
    assert!(values(&r.responses[0].partitions[0].records).is_empty());
    assert_eq!(r.responses[0].partitions[0].high_watermark, 1);
}

#[tokio::test]
async fn fetch_limits_and_the_first_batch_rule() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    create_topic(&conn, "limits", 2).await;
    let big = "x".repeat(5000);
    for p in 0..2 {
        for _ in 0..3 {
            let mut batch = BatchBuilder::new(Compression::None);
            batch.push(1, None, Some(big.as_bytes()), &[]);
            assert_eq!(
                produce(&conn, "limits", p, batch.build().unwrap()).await.0,
                0
            );
        }
    }
    // A partition limit below one batch still returns the first whole batch (KIP-74) ...
    let r = fetch(
        &conn,
        &fetch_request("limits", &[(0, 0), (1, 0)], 100, 1 << 20, 0),
    )
    .await;
    let parts = &r.responses[0].partitions;
    assert_eq!(values(&parts[0].records).len(), 1);
    // ... but only for the first partition with data.
    assert_eq!(values(&parts[1].records).len(), 0);
    // The response limit caps the total.
    let r = fetch(
        &conn,
        &fetch_request("limits", &[(0, 0), (1, 0)], 1 << 20, 12_000, 0),
    )
    .await;
    let total: usize = r.responses[0]
        .partitions
        .iter()
        .map(|p| values(&p.records).len())
        .sum();
    assert_eq!(total, 2);
    // Out of range.
    let r = fetch(
        &conn,
        &fetch_request("limits", &[(0, 99)], 1 << 20, 1 << 20, 0),
    )
    .await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ErrorCode::OFFSET_OUT_OF_RANGE.code()
    );
}

#[tokio::test]
async fn list_offsets_by_timestamp() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    create_topic(&conn, "ts", 1).await;
    // Timestamps 10_000, 11_000, 12_000 then 20_000, 21_000.
    produce(
        &conn,
        "ts",
        0,
        records(&["a", "b", "c"], 10_000).build().unwrap(),
    )
    .await;
    produce(
        &conn,
        "ts",
        0,
        records(&["d", "e"], 20_000).build().unwrap(),
    )
    .await;
    assert_eq!(offset_at(&conn, "ts", -2).await.0, 0);
    assert_eq!(offset_at(&conn, "ts", -1).await.0, 5);
    assert_eq!(offset_at(&conn, "ts", 10_500).await, (1, 11_000));
    assert_eq!(offset_at(&conn, "ts", 12_001).await, (3, 20_000));
    assert_eq!(offset_at(&conn, "ts", 99_000).await, (-1, -1));
    assert_eq!(offset_at(&conn, "ts", -3).await, (4, 21_000));
}

#[tokio::test]
async fn acks_zero_gets_no_response_but_stores() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    create_topic(&conn, "fire", 1).await;
    let request = produce_request("fire", 0, records(&["a"], 1).build().unwrap()).with_acks(0);
    let version = conn.version_for::<ProduceRequest>().unwrap();
    conn.send_no_response(&request, version).await.unwrap();
    // Requests on one connection are answered in order, so this one sees the append.
    assert_eq!(offset_at(&conn, "fire", -1).await.0, 1);
}

#[tokio::test]
async fn auto_create_can_be_switched_off() {
    let b = TestBroker::start_with(|c| c.auto_create_topics = false).await;
    let conn = b.connect().await;
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name("nope")))
    ]));
    let r = conn.send(&req).await.unwrap();
    assert_eq!(
        r.topics[0].error_code,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
    );
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    let r = conn.send(&req).await.unwrap();
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].partitions.len(), 1);
}

#[tokio::test]
async fn records_and_topics_survive_restart() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    create_topic(&conn, "durable", 3).await;
    for p in 0..3 {
        produce(
            &conn,
            "durable",
            p,
            records(&["one", "two"], 5).build().unwrap(),
        )
        .await;
    }
    drop(conn);
    let b = b.restart().await;
    let conn = b.connect().await;
    let r = fetch(
        &conn,
        &fetch_request("durable", &[(0, 0), (1, 0), (2, 0)], 1 << 20, 1 << 20, 0),
    )
    .await;
    for p in &r.responses[0].partitions {
        assert_eq!(values(&p.records), ["one", "two"]);
    }
    assert_eq!(
        produce(&conn, "durable", 1, records(&["three"], 5).build().unwrap()).await,
        (0, 2)
    );
}

#[tokio::test]
async fn fetch_max_bytes_caps_what_a_client_asks() {
    let b = TestBroker::start_with(|c| c.set("fetch.max.bytes", "6000").unwrap()).await;
    let conn = b.connect().await;
    create_topic(&conn, "capped", 2).await;
    let big = "x".repeat(5000);
    for p in 0..2 {
        let mut batch = BatchBuilder::new(Compression::None);
        batch.push(1, None, Some(big.as_bytes()), &[]);
        assert_eq!(
            produce(&conn, "capped", p, batch.build().unwrap()).await.0,
            0
        );
    }
    let request = fetch_request("capped", &[(0, 0), (1, 0)], i32::MAX, i32::MAX, 0);
    let r = fetch(&conn, &request).await;
    let total: usize = r.responses[0]
        .partitions
        .iter()
        .map(|p| values(&p.records).len())
        .sum();
    assert_eq!(total, 1);
}
