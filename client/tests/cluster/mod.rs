//! The client against a cluster of three Strom brokers (each also a controller): topics
//! created through the controller with three replicas, records produced (acks=all) to the
//! leader of each partition, and a consumer group coordinated by the broker that leads its
//! offsets partition.

use std::collections::BTreeMap;
use std::time::Duration;

use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::producer::{Producer, Record};
use strom_client::{ClientConfig, Consumer};
use tempfile::TempDir;

/// How long any expected state may take.
const WAIT: Duration = Duration::from_secs(30);

struct Cluster {
    brokers: Vec<Broker>,
    _dirs: Vec<TempDir>,
}

impl Cluster {
    async fn start() -> Cluster {
        let listeners: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let voters = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{}@{}", i + 1, l.local_addr().unwrap()))
            .collect::<Vec<_>>()
            .join(",");
        let mut brokers = Vec::new();
        let mut dirs = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let mut config = BrokerConfig::new(dir.path());
            config.node_id = i as i32 + 1;
            config.set("controller.quorum.voters", &voters).unwrap();
            config
                .set("controller.quorum.election.timeout.ms", "300")
                .unwrap();
            config.group_initial_rebalance_delay = Duration::ZERO;
            config.default_replication_factor = 3;
            brokers.push(
                Broker::start_with_controller_listener(config, listener)
                    .await
                    .unwrap(),
            );
            dirs.push(dir);
        }
        Cluster {
            brokers,
            _dirs: dirs,
        }
    }

    fn config(&self) -> ClientConfig {
        // One broker to bootstrap from is enough: the client finds the others.
        ClientConfig::new()
            .bootstrap(&self.brokers[1].bootstrap())
            .client_id("cluster-tests")
    }

    async fn shutdown(self) {
        for broker in self.brokers {
            broker.shutdown().await.unwrap();
        }
    }
}

#[tokio::test]
async fn produce_and_consume_in_a_group_across_three_brokers() {
    let cluster = Cluster::start().await;
    let admin = Admin::connect(cluster.config()).await.unwrap();
    // Every broker registers through the quorum.
    let deadline = tokio::time::Instant::now() + WAIT;
    while admin.describe_cluster().await.unwrap().brokers.len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "brokers never registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin
        .create_topic(NewTopic::new("orders").partitions(6))
        .await
        .unwrap();
    let described = &admin.describe_topics(&["orders"]).await.unwrap()[0];
    assert!(described.partitions.iter().all(|p| p.replicas.len() == 3));
    let mut leaders: Vec<i32> = described.partitions.iter().map(|p| p.leader).collect();
    leaders.sort_unstable();
    leaders.dedup();
    assert_eq!(leaders, [1, 2, 3], "partitions on every broker");

    let producer = Producer::new(cluster.config()).await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..600 {
        let record = Record::new("orders")
            .key(format!("customer-{}", i % 37))
            .value(i.to_string());
        deliveries.push(producer.send(record).await.unwrap());
    }
    let mut per_partition: BTreeMap<i32, usize> = BTreeMap::new();
    for delivery in deliveries {
        *per_partition
            .entry(delivery.await.unwrap().partition)
            .or_default() += 1;
    }
    producer.close().await;
    assert!(per_partition.len() > 1, "{per_partition:?}");

    let mut config = cluster.config();
    for (k, v) in [
        ("group.id", "billing"),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
    ] {
        config.set(k, v).unwrap();
    }
    let consumer = Consumer::new(config).await.unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let mut seen: BTreeMap<i32, usize> = BTreeMap::new();
    let mut values = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while values.len() < 600 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "got {} of 600",
            values.len()
        );
        for record in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            *seen.entry(record.partition).or_default() += 1;
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(seen, per_partition);
    values.sort_by_key(|v| v.parse::<u32>().unwrap());
    assert_eq!(values, (0..600).map(|i| i.to_string()).collect::<Vec<_>>());
    // Commits go to the group's coordinator, wherever it is.
    consumer.commit().await.unwrap();
    consumer.shutdown().await.unwrap();
    cluster.shutdown().await;
}
