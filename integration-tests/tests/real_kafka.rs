//! The client's whole round trip (admin, idempotent compressed produce, consume, offsets)
//! against every broker this machine offers: the embedded Strom broker always; a real
//! Kafka when `STROM_TEST_KAFKA=host:port` names one; Apache Kafka's container image when a
//! Docker daemon answers (skipped with a printed reason otherwise).
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use strom_client::admin::{Admin, NewTopic, OffsetSpec};
use strom_client::config::OffsetReset;
use strom_client::producer::{Producer, Record};
use strom_client::{ClientConfig, Consumer};
use strom_protocol::records::Compression;

const RECORDS: usize = 1000;
const PARTITIONS: i32 = 3;

async fn round_trip(bootstrap: &str) {
    let topic = format!("round-trip-{}", std::process::id());
    let config = ClientConfig::new().bootstrap(bootstrap);
    let admin = Admin::connect(config.clone()).await.unwrap();
    admin
        .create_topic(
            NewTopic::new(&topic)
                .partitions(PARTITIONS)
                .replication_factor(1),
        )
        .await
        .unwrap();

    let producer = Producer::new(config.clone().compression(Compression::Lz4))
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..RECORDS {
        let record = Record::new(&topic)
            .key(format!("k{}", i % 50))
            .value(format!("v{i}"))
            .header("n", i.to_string());
        deliveries.push(producer.send(record).await.unwrap());
    }
    let mut per_partition: BTreeMap<i32, usize> = BTreeMap::new();
    for d in deliveries {
        *per_partition.entry(d.await.unwrap().partition).or_default() += 1;
    }
    producer.close().await;

    let latest = admin
        .list_offsets(&topic, OffsetSpec::Latest)
        .await
        .unwrap();
    for (p, n) in &per_partition {
        assert_eq!(latest[p].offset, *n as i64, "partition {p}");
    }

    let consumer = Consumer::new(config.auto_offset_reset(OffsetReset::Earliest))
        .await
        .unwrap();
    let partitions: Vec<(String, i32)> = (0..PARTITIONS).map(|p| (topic.clone(), p)).collect();
    consumer.assign(&partitions).unwrap();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < RECORDS {
        assert!(Instant::now() < deadline, "consumed {seen} of {RECORDS}");
        for r in consumer.poll(Duration::from_secs(1)).await.unwrap() {
            let n: usize = std::str::from_utf8(&r.headers[0].1.clone().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(r.value.as_deref(), Some(format!("v{n}").as_bytes()));
            seen += 1;
        }
    }
    consumer.close();
    admin.delete_topic(&topic).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = strom_broker::Broker::start(strom_broker::BrokerConfig::new(dir.path()))
        .await
        .unwrap();
    round_trip(&broker.bootstrap()).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_a_kafka_named_by_the_environment() {
    let Ok(bootstrap) = std::env::var("STROM_TEST_KAFKA") else {
        eprintln!("skipping: STROM_TEST_KAFKA is not set (host:port of a Kafka to test against)");
        return;
    };
    round_trip(&bootstrap).await;
}

/// A free port on 127.0.0.1 (free when asked; the container binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_apache_kafka_in_docker() {
    let daemon = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    if !daemon.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipping: no Docker daemon answers `docker info`, so Apache Kafka's image cannot run here");
        return;
    }
    let port = free_port();
    let env = [
        "KAFKA_NODE_ID=1".to_owned(),
        "KAFKA_PROCESS_ROLES=broker,controller".to_owned(),
        format!("KAFKA_LISTENERS=PLAINTEXT://:{port},CONTROLLER://:9093"),
        format!("KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://127.0.0.1:{port}"),
        "KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER".to_owned(),
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT".to_owned(),
        "KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:9093".to_owned(),
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1".to_owned(),
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1".to_owned(),
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1".to_owned(),
    ];
    let mut run = Command::new("docker");
    run.args([
        "run",
        "-d",
        "--rm",
        "-p",
        &format!("127.0.0.1:{port}:{port}"),
    ]);
    for e in &env {
        run.args(["-e", e]);
    }
    let started = run.arg("apache/kafka:3.9.0").output().unwrap();
    assert!(
        started.status.success(),
        "docker run failed: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    let container = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    let bootstrap = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while strom_client::Cluster::connect(ClientConfig::new().bootstrap(&bootstrap))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "Kafka in container {container} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    round_trip(&bootstrap).await;
    let _ = Command::new("docker")
        .args(["rm", "-f", &container])
        .output();
}
