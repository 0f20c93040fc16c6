//! strom-client's transactional producer against librdkafka's mock cluster (a second
//! implementation of the transaction coordinator): init, commit, abort and commit again,
//! and a second producer of the same `transactional.id` taking over; librdkafka then reads
//! every record in order. The mock accepts the protocol but neither fences an older epoch
//! nor writes abort markers (its read_committed readers see aborted records): fencing and
//! aborts are checked against Strom's coordinator, where librdkafka reads them.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::{Offset, TopicPartitionList};
use strom_client::producer::{Producer, Record};

const TOPIC: &str = "transactions-mock";

/// The values librdkafka reads with read_committed until `expected` arrived (or 30 s
/// passed) and a moment without more.
fn read_committed(bootstrap: &str, expected: usize) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "transactions-mock-check")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut values = Vec::new();
    let mut quiet_until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < quiet_until {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = message.unwrap();
        values.push(String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap());
        if values.len() >= expected {
            quiet_until = Instant::now() + Duration::from_secs(1);
        }
    }
    values
}

async fn send_all(producer: &Producer, values: &[String]) {
    let mut deliveries = Vec::new();
    for v in values {
        let record = Record::new(TOPIC).partition(0).value(v.clone());
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_producer_on_librdkafkas_mock_cluster() {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic(TOPIC, 1, 3).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let config = strom_client::ClientConfig::new()
        .bootstrap(&bootstrap)
        .transactional_id("mock-writer")
        .linger(Duration::from_millis(5));
    let producer = Producer::new(config.clone()).await.unwrap();
    producer.begin_transaction().unwrap();
    send_all(&producer, &numbered("committed", 0..50)).await;
    producer.commit_transaction().await.unwrap();
    producer.begin_transaction().unwrap();
    send_all(&producer, &numbered("aborted", 0..50)).await;
    producer.abort_transaction().await.unwrap();
    producer.begin_transaction().unwrap();
    send_all(&producer, &numbered("committed", 50..100)).await;
    producer.commit_transaction().await.unwrap();

    // The next producer of the id takes over with a new epoch.
    let next = Producer::new(config).await.unwrap();
    drop(producer);
    next.begin_transaction().unwrap();
    send_all(&next, &numbered("committed", 100..110)).await;
    next.commit_transaction().await.unwrap();
    next.close().await;

    let reading = bootstrap.clone();
    let read = tokio::task::spawn_blocking(move || read_committed(&reading, 160))
        .await
        .unwrap();
    let committed: Vec<String> = read
        .iter()
        .filter(|v| !v.starts_with("aborted-"))
        .cloned()
        .collect();
    assert_eq!(committed, numbered("committed", 0..110));
    let aborted = read.len() - committed.len();
    assert!(aborted == 0 || aborted == 50, "{aborted} aborted records");
}
