//! strom-client's consumer reads back what librdkafka produced to librdkafka's mock
//! cluster (three brokers, from the `rdkafka` crate's bundled build), so the consumer is
//! not tested only against our own broker. Halfway, every partition's leader moves to
//! another broker: the consumer must follow (NOT_LEADER_OR_FOLLOWER → metadata refresh →
//! the new leader's fetch loop) without losing or repeating records.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use strom_client::config::OffsetReset;
use strom_client::{Cluster, Consumer};

const TOPIC: &str = "consumer-mock";
const PARTITIONS: i32 = 4;
const RECORDS: usize = 400;

/// Produces records `range` (keyed, one header each) with one header each; librdkafka spreads them over
/// the partitions by key.
fn produce(bootstrap: &str, compression: &str, range: std::ops::Range<usize>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.codec", compression)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in range {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        let headers = OwnedHeaders::new().insert(Header {
            key: "n",
            value: Some(i.to_string().as_bytes()),
        });
        let record = BaseRecord::to(TOPIC)
            .key(key.as_str())
            .payload(value.as_str())
            .headers(headers);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_reads_back_what_librdkafka_produced_to_its_mock_cluster() {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let producing = bootstrap.clone();
    tokio::task::spawn_blocking(move || produce(&producing, "lz4", 0..RECORDS))
        .await
        .unwrap();

    let config = strom_client::ClientConfig::new()
        .bootstrap(&bootstrap)
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100));
    let consumer = Consumer::new(config.clone()).await.unwrap();
    let assignment: Vec<(String, i32)> = (0..PARTITIONS).map(|p| (TOPIC.to_owned(), p)).collect();
    consumer.assign(&assignment).unwrap();
    let mut read = Read::default();
    read.until(&consumer, RECORDS).await;

    // Every leader moves to the next broker.
    let view = Cluster::connect(config).await.unwrap();
    let mut old_leaders = Vec::new();
    for p in 0..PARTITIONS {
        let (leader, _) = view.leader(TOPIC, p).await.unwrap();
        old_leaders.push(leader);
        cluster
            .partition_leader(TOPIC, p, Some(leader % 3 + 1))
            .unwrap();
    }
    let moved = view
        .refresh_metadata(Some(&[TOPIC.to_owned()]))
        .await
        .unwrap();
    let leaders: Vec<i32> = moved.topics[TOPIC]
        .partitions
        .iter()
        .map(|p| p.leader)
        .collect();
    assert_ne!(leaders, old_leaders, "the mock moved the leaders");
    let producing = bootstrap.clone();
    tokio::task::spawn_blocking(move || produce(&producing, "gzip", RECORDS..2 * RECORDS))
        .await
        .unwrap();
    read.until(&consumer, 2 * RECORDS).await;

    assert!(
        read.next_offset.len() > 1,
        "records spread over partitions: {:?}",
        read.next_offset
    );
    for (partition, end) in &read.next_offset {
        assert_eq!(consumer.position(TOPIC, *partition).await.unwrap(), *end);
    }
    assert!(consumer
        .poll(Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    consumer.close();
}

/// What the consumer has read: record number → partition, and each partition's next
/// expected offset.
#[derive(Default)]
struct Read {
    by_value: BTreeMap<usize, i32>,
    next_offset: BTreeMap<i32, i64>,
}

impl Read {
    /// Polls until `total` distinct records were read, checking order and contents.
    async fn until(&mut self, consumer: &Consumer, total: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.by_value.len() < total {
            assert!(
                Instant::now() < deadline,
                "read {} of {total}",
                self.by_value.len()
            );
            for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
                let expected = self.next_offset.entry(r.partition).or_insert(0);
                assert_eq!(
                    r.offset, *expected,
                    "partition {} out of order",
                    r.partition
                );
                *expected += 1;
                let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                let i: usize = value.trim_start_matches("value-").parse().unwrap();
                assert_eq!(r.key.as_deref(), Some(format!("key-{i}").as_bytes()));
                let header = &r.headers[0];
                assert_eq!(
                    (header.0.as_str(), header.1.as_deref()),
                    ("n", Some(i.to_string().as_bytes()))
                );
                assert!(
                    self.by_value.insert(i, r.partition).is_none(),
                    "record {i} twice"
                );
            }
        }
        assert_eq!(self.by_value.len(), total);
    }
}
