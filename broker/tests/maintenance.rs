//! Background work wired into the running broker: retention, and pipelined requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use strom_protocol::connection::Connection;
use strom_protocol::records::{BatchBuilder, Compression};

use crate::{list_offset, produce, s, TestBroker};

async fn produce_one(conn: &Connection, topic: &str, partition: i32, timestamp: i64) -> i64 {
    let mut b = BatchBuilder::new(Compression::None);
    b.push(timestamp, None, Some(&[0u8; 600]), &[]);
    let (error, offset) = produce(conn, topic, partition, b.build().unwrap()).await;
    assert_eq!(error, 0);
    offset
}

#[tokio::test]
async fn retention_runs_in_the_background() {
    let b =
        TestBroker::start_with(|c| c.set("log.retention.check.interval.ms", "20").unwrap()).await;
    let conn = b.connect().await;
    let config = |k: &str, v: &str| {
        CreatableTopicConfig::default()
            .with_name(s(k))
            .with_value(Some(s(v)))
    };
    let topic = CreatableTopic::default()
        .with_name(TopicName(s("old")))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![
            config("segment.bytes", "1024"),
            config("retention.ms", "60000"),
        ]);
    assert_eq!(
        conn.send(&CreateTopicsRequest::default().with_topics(vec![topic]))
            .await
            .unwrap()
            .topics[0]
            .error_code,
        0
    );
    // Records from long ago, each in its own segment (600-byte values, 1 KiB segments),
    // then a recent one.
    for i in 0..5 {
        produce_one(&conn, "old", 0, 1_000 + i).await;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let last = produce_one(&conn, "old", 0, now).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, start, _) = list_offset(&conn, "old", 0, -2).await;
        if start == last {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention did not delete old segments: log start {start}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pipelined_requests_on_one_connection_get_their_own_answers() {
    let b = TestBroker::start().await;
    let conn = Arc::new(b.connect().await);
    let topics: Vec<String> = (0..8).map(|i| format!("pipe-{i}")).collect();
    for (i, t) in topics.iter().enumerate() {
        let topic = CreatableTopic::default()
            .with_name(TopicName(s(t)))
            .with_num_partitions(1)
            .with_replication_factor(1);
        conn.send(&CreateTopicsRequest::default().with_topics(vec![topic]))
            .await
            .unwrap();
        for _ in 0..=i {
            produce_one(&conn, t, 0, 1).await;
        }
    }
    // Many requests in flight at once on one socket; each answer must match its request.
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let conn = conn.clone();
            let topic = topics[n % topics.len()].clone();
            tokio::spawn(async move {
                let r = conn
                    .send(&ListOffsetsRequest::default().with_topics(
                        vec![ListOffsetsTopic::default()
                        .with_name(TopicName(s(&topic)))
                        .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)])],
                    ))
                    .await
                    .unwrap();
                (
                    n,
                    r.topics[0].name.0.to_string(),
                    r.topics[0].partitions[0].offset,
                )
            })
        })
        .collect();
    for task in tasks {
        let (n, name, offset) = task.await.unwrap();
        let i = n % topics.len();
        assert_eq!(name, topics[i]);
        assert_eq!(offset, i as i64 + 1);
    }
}

#[tokio::test]
async fn shutdown_does_not_wait_out_long_polls_and_closes_logs_cleanly() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    crate::create_topic(&conn, "quiet", 1).await;
    let poll = FetchRequest::default()
        .with_max_wait_ms(30_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(crate::name("quiet"))
            .with_partitions(vec![
                FetchPartition::default().with_partition_max_bytes(1 << 20)
            ])]);
    let waiting = tokio::spawn(async move { conn.send_version(&poll, 12).await });
    // The long poll is in flight once the broker has read it; a second connection's answer
    // proves the broker is serving, then shut down.
    let other = b.connect().await;
    other.send(&MetadataRequest::default()).await.unwrap();
    drop(other);
    let TestBroker { broker, dir } = b;
    tokio::time::timeout(Duration::from_secs(10), broker.shutdown())
        .await
        .expect("shutdown waited for the long poll")
        .unwrap();
    assert!(
        waiting.await.unwrap().is_err(),
        "the polling connection is closed"
    );
    assert!(
        dir.path().join("quiet-0").join("clean-shutdown").exists(),
        "log closed cleanly"
    );
}
