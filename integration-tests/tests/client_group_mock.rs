//! strom-client's group membership against librdkafka's mock cluster (three brokers, from
//! the `rdkafka` crate's bundled build), so the group code is not tested only against our
//! own coordinator: a member joins, reads and commits; commits survive the coordinator
//! answering NOT_COORDINATOR and moving to another broker, and read back as committed.
//!
//! One member at a time: the mock ends a rebalance's sync phase as soon as the leader's
//! SyncGroup arrives and answers a follower's later SyncGroup with INVALID_REQUEST (real
//! coordinators answer it with the follower's assignment), so whether two members settle
//! depends on which SyncGroup wins the race. Several members are tested against the
//! broker (`client/tests/consumer/group.rs`) and with librdkafka's and kafka-python's
//! consumers (`interop/groups.rs`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use strom_client::Consumer;

const TOPIC: &str = "group-mock";
const GROUP: &str = "mock-group";
const PARTITIONS: i32 = 4;
const WAIT: Duration = Duration::from_secs(60);

/// Produces `count` records with librdkafka, keyed so they spread over the partitions.
fn produce(bootstrap: &str, first: usize, count: usize) {
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in first..first + count {
        let key = format!("key-{i}");
        let value = i.to_string();
        producer
            .send(
                BaseRecord::to(TOPIC)
                    .key(key.as_str())
                    .payload(value.as_str()),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn config(bootstrap: &str) -> strom_client::ClientConfig {
    let mut config = strom_client::ClientConfig::new().bootstrap(bootstrap);
    for (k, v) in [
        ("group.id", GROUP),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
        ("heartbeat.interval.ms", "100"),
        ("session.timeout.ms", "6000"),
        ("partition.assignment.strategy", "range"),
    ] {
        config.set(k, v).unwrap();
    }
    config
}

/// A member polling on its own task, committing after each poll with records.
struct Member {
    consumer: Arc<Consumer>,
    read: Arc<Mutex<BTreeSet<(i32, i64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Member {
    async fn start(bootstrap: &str) -> Member {
        let consumer = Arc::new(Consumer::new(config(bootstrap)).await.unwrap());
        consumer.subscribe(&[TOPIC]).unwrap();
        let read = Arc::new(Mutex::new(BTreeSet::new()));
        let (c, r) = (consumer.clone(), read.clone());
        let task = tokio::spawn(async move {
            loop {
                let records = c.poll(Duration::from_millis(100)).await.unwrap();
                r.lock()
                    .unwrap()
                    .extend(records.iter().map(|rec| (rec.partition, rec.offset)));
                if !records.is_empty() {
                    c.commit().await.unwrap();
                }
            }
        });
        Member {
            consumer,
            read,
            task,
        }
    }

    fn read(&self) -> BTreeSet<(i32, i64)> {
        self.read.lock().unwrap().clone()
    }
}

/// Polls `cond` as the members make progress (their reads and assignments change only
/// when they poll; this checks on each of the test's own timer ticks).
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tick.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_on_librdkafkas_mock_cluster() {
    // RUST_LOG=strom_client=debug shows the group's requests when this fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    cluster
        .coordinator(MockCoordinator::Group(GROUP.to_owned()), 1)
        .unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let producing = bootstrap.clone();
    tokio::task::spawn_blocking(move || produce(&producing, 0, 200))
        .await
        .unwrap();

    let mut a = Member::start(&bootstrap).await;
    until("the member to own every partition", || {
        a.consumer.assignment().len() == PARTITIONS as usize
    })
    .await;
    until("the 200 records", || a.read().len() == 200).await;

    // The coordinator refuses a commit once, then moves to another broker: commits and
    // membership follow it.
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_COORDINATOR],
    );
    cluster
        .coordinator(MockCoordinator::Group(GROUP.to_owned()), 2)
        .unwrap();
    let producing = bootstrap.clone();
    tokio::task::spawn_blocking(move || produce(&producing, 200, 40))
        .await
        .unwrap();
    until("the 40 records after the move", || a.read().len() == 240).await;

    // What the member commits is what the mock's coordinator holds.
    a.task.abort();
    let _ = (&mut a.task).await;
    a.consumer.commit().await.unwrap();
    let partitions: Vec<(String, i32)> = (0..PARTITIONS).map(|p| (TOPIC.to_owned(), p)).collect();
    let committed = a.consumer.committed(&partitions).await.unwrap();
    let mut next = vec![0i64; PARTITIONS as usize];
    for (p, o) in a.read() {
        next[p as usize] = next[p as usize].max(o + 1);
    }
    let next: Vec<Option<i64>> = next.into_iter().map(Some).collect();
    assert_eq!(committed, next);
    a.consumer.shutdown().await.unwrap();
}
