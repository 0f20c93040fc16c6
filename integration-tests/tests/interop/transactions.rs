//! Transactions seen by `read_committed` consumers: a partition holding a committed
//! transaction, an aborted one interleaved with it, a plain record and a transaction still
//! open, written with raw requests as a producer and its coordinator would. librdkafka
//! (confluent-kafka) and the Strom consumer both read exactly the committed and plain
//! records, and nothing from the open transaction on.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    InitProducerIdRequest, ProduceRequest, ProducerId, TopicName, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use strom_client::admin::{Admin, NewTopic};
use strom_client::config::IsolationLevel;
use strom_client::consumer::{Consumer, ConsumerRecord};
use strom_client::ClientConfig;
use strom_protocol::connection::Connection;
use strom_protocol::records::{BatchBuilder, Compression};

use crate::support::{Peer, TestBroker};

const TOPIC: &str = "transactions";

/// How long a reader waits for the records it expects.
const WAIT: Duration = Duration::from_secs(30);

async fn producer_id(conn: &Connection) -> i64 {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let response = conn.send(&request).await.expect("InitProducerId");
    assert_eq!(response.error_code, 0);
    response.producer_id.0
}

/// Appends one batch of `values` (transactional when `pid` is given) at the expected offset.
async fn append(conn: &Connection, pid: Option<(i64, i32)>, values: &[&str], offset: i64) {
    let mut batch = BatchBuilder::new(Compression::None);
    if let Some((pid, sequence)) = pid {
        batch = batch.producer(pid, 0, sequence).transactional(true);
    }
    for v in values {
        batch.push(1000, None, Some(v.as_bytes()), &[]);
    }
    let records: Bytes = batch.build().expect("a batch");
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response = conn.send(&request).await.expect("Produce");
    let p = &response.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, offset), "{values:?}");
}

async fn end(conn: &Connection, pid: i64, commit: bool) {
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(0)
            .with_transaction_result(commit)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_indexes(vec![0])])]);
    let response = conn.send(&request).await.expect("WriteTxnMarkers");
    assert_eq!(response.markers[0].topics[0].partitions[0].error_code, 0);
}

/// Creates one-partition `topics`.
async fn create_topics(bootstrap: &str, topics: &[&str]) {
    let admin = Admin::connect(ClientConfig::new().bootstrap(bootstrap))
        .await
        .expect("admin");
    for topic in topics {
        admin
            .create_topic(NewTopic::new(*topic).partitions(1))
            .await
            .expect("create a topic");
    }
}

/// Writes `record-0` .. `record-{n-1}` to `topic`-0 and waits for every delivery.
async fn produce_numbered(bootstrap: &str, topic: &str, n: usize) {
    let config = ClientConfig::new().bootstrap(bootstrap);
    let producer = strom_client::producer::Producer::new(config)
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..n {
        let record = strom_client::producer::Record::new(topic)
            .partition(0)
            .value(format!("record-{i}"));
        deliveries.push(producer.send(record).await.expect("send"));
    }
    for delivery in deliveries {
        delivery.await.expect("delivered");
    }
    producer.close().await;
}

/// What a Strom `read_committed` consumer reads of `topic`-0 from its start until `count`
/// records came (or `wait` passed), as (offset, value); and the records a further half
/// second brings.
async fn read_committed(
    bootstrap: &str,
    topic: &str,
    count: usize,
    wait: Duration,
) -> (Vec<(i64, String)>, Vec<ConsumerRecord>) {
    let config = ClientConfig::new()
        .bootstrap(bootstrap)
        .isolation_level(IsolationLevel::ReadCommitted);
    let consumer = Consumer::new(config).await.expect("consumer");
    let all = [(topic.to_owned(), 0)];
    consumer.assign(&all).expect("assign");
    consumer.seek_to_beginning(&all).expect("seek");
    let mut read = Vec::new();
    let deadline = Instant::now() + wait;
    while read.len() < count && Instant::now() < deadline {
        for r in consumer
            .poll(Duration::from_millis(200))
            .await
            .expect("poll")
        {
            let value = String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned();
            read.push((r.offset, value));
        }
    }
    let more = consumer
        .poll(Duration::from_millis(500))
        .await
        .expect("poll");
    consumer.shutdown().await.expect("close");
    (read, more)
}

/// The values of `read`.
fn values(read: Vec<(i64, String)>) -> Vec<String> {
    read.into_iter().map(|(_, v)| v).collect()
}

/// Offsets and values a `read_committed` reader must see.
const COMMITTED: [(i64, &str); 4] = [(0, "c-1"), (1, "c-2"), (3, "plain"), (5, "c-3")];

async fn write_transactions(bootstrap: &str) {
    create_topics(bootstrap, &[TOPIC]).await;
    let conn = Connection::connect(bootstrap, "transactions-setup")
        .await
        .expect("connect");
    let (committed, aborted, open) = (
        producer_id(&conn).await,
        producer_id(&conn).await,
        producer_id(&conn).await,
    );
    append(&conn, Some((committed, 0)), &["c-1", "c-2"], 0).await;
    append(&conn, Some((aborted, 0)), &["a-1"], 2).await;
    append(&conn, None, &["plain"], 3).await;
    append(&conn, Some((aborted, 1)), &["a-2"], 4).await;
    append(&conn, Some((committed, 2)), &["c-3"], 5).await;
    end(&conn, aborted, false).await; // 6
    end(&conn, committed, true).await; // 7
    append(&conn, Some((open, 0)), &["o-1"], 8).await;
    append(&conn, None, &["after-open"], 9).await;
}

#[test]
fn read_committed_consumers_skip_aborted_and_open_transactions() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.block_on(write_transactions(&bootstrap));

    // The Strom consumer; nothing past the open transaction arrives.
    let (read, more) = broker.block_on(read_committed(&bootstrap, TOPIC, COMMITTED.len(), WAIT));
    assert!(
        more.is_empty(),
        "read past the last stable offset: {more:?}"
    );
    let expected: Vec<(i64, String)> = COMMITTED
        .iter()
        .map(|(o, v)| (*o, (*v).to_owned()))
        .collect();
    assert_eq!(read, expected);

    // librdkafka.
    if let Some(peer) = Peer::confluent() {
        let count = COMMITTED.len().to_string();
        let out = peer.run_ok(&bootstrap, &["consume-committed", TOPIC, &count]);
        let lines: Vec<String> = out
            .stdout
            .lines()
            .filter(|l| !l.starts_with("end "))
            .map(str::to_owned)
            .collect();
        let expected: Vec<String> = COMMITTED.iter().map(|(o, v)| format!("{o} {v}")).collect();
        assert_eq!(lines, expected, "{out}");
    }
    broker.shutdown();
}

/// librdkafka's transactional producer against the broker's transaction coordinator:
/// commits, an abort, zombie fencing; read_committed readers (librdkafka's and Strom's)
/// see exactly the committed records.
#[test]
fn librdkafka_transactions_commit_abort_and_fence() {
    let Some(peer) = Peer::confluent() else {
        return;
    };
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.block_on(create_topics(&bootstrap, &["txn-interop"]));
    let out = peer.run_ok(&bootstrap, &["transactions", "txn-interop"]);
    let expected: Vec<String> = (0..11).map(|i| format!("committed-{i}")).collect();
    let printed: Vec<String> = out.stdout.lines().map(str::to_owned).collect();
    assert_eq!(printed, expected, "{out}");
    let (read, _) = broker.block_on(read_committed(
        &bootstrap,
        "txn-interop",
        expected.len(),
        WAIT,
    ));
    let read = values(read);
    assert_eq!(read, expected);
    broker.shutdown();
}

/// Exactly-once consume-transform-produce with librdkafka: output and consumed offsets
/// commit together (AddOffsetsToTxn, TxnOffsetCommit); an aborted round leaves neither.
#[test]
fn librdkafka_consume_transform_produce_commits_offsets_in_transactions() {
    let Some(peer) = Peer::confluent() else {
        return;
    };
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    const N: usize = 200;
    broker.block_on(async {
        create_topics(&bootstrap, &["transform-in", "transform-out"]).await;
        produce_numbered(&bootstrap, "transform-in", N).await;
    });
    let out = peer.run_ok(
        &bootstrap,
        &[
            "transform",
            "transform-in",
            "transform-out",
            "transformers",
            &N.to_string(),
        ],
    );
    assert!(out.stdout.contains(&format!("committed {N}")), "{out}");
    let (read, more) = broker.block_on(read_committed(&bootstrap, "transform-out", N, WAIT));
    assert!(more.is_empty(), "more than one result per record: {more:?}");
    let read = values(read);
    let expected: Vec<String> = (0..N).map(|i| format!("RECORD-{i}")).collect();
    assert_eq!(read, expected);
    broker.shutdown();
}

/// Runs the peer's `transform-until` until it has printed a position of at least `until`
/// (then kills it, SIGKILL, likely mid-transaction) or `done` (then waits for it).
fn transform_until_position(
    peer: &Peer,
    bootstrap: &str,
    total: usize,
    kill_at: Option<u64>,
) -> u64 {
    use std::io::{BufRead, BufReader};
    let total = total.to_string();
    let args = [
        "transform-until",
        "eos-in",
        "eos-out",
        "eos-group",
        "eos-transformer",
        total.as_str(),
    ];
    let mut child = peer
        .command(bootstrap, &args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the transformer");
    let stdout = child.stdout.take().expect("stdout");
    let mut last = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        if let Some(p) = line.strip_prefix("position ") {
            last = p.trim().parse().expect("a position");
            if kill_at.is_some_and(|k| last >= k) {
                child.kill().expect("SIGKILL the transformer");
                break;
            }
        }
        if line == "done" {
            break;
        }
    }
    let status = child.wait().expect("wait for the transformer");
    if kill_at.is_none() {
        assert!(status.success(), "the transformer failed: {status:?}");
    }
    last
}

/// Exactly once through failures: librdkafka's consume-transform-produce loop is killed
/// mid-way (SIGKILL, with a transaction likely open), the broker holding the transaction
/// and group coordinators restarts, and a new process of the same `transactional.id`
/// finishes the job. Read with read_committed, the output holds each input's result
/// exactly once.
#[test]
fn exactly_once_through_a_killed_transformer_and_a_restarted_coordinator() {
    let Some(peer) = Peer::confluent() else {
        return;
    };
    const N: usize = 3_000;
    let data = tempfile::tempdir().expect("a data dir");
    let broker = TestBroker::start_in(data.path());
    let bootstrap = broker.bootstrap();
    broker.block_on(async {
        create_topics(&bootstrap, &["eos-in", "eos-out"]).await;
        produce_numbered(&bootstrap, "eos-in", N).await;
    });
    // Killed a third of the way, then the broker restarts.
    let reached = transform_until_position(&peer, &bootstrap, N, Some(N as u64 / 3));
    assert!(reached < N as u64, "killed before the end");
    broker.shutdown();
    let broker = TestBroker::start_in(data.path());
    let bootstrap = broker.bootstrap();
    let finished = transform_until_position(&peer, &bootstrap, N, None);
    assert!(finished >= N as u64);
    let wait = Duration::from_secs(60);
    let (read, more) = broker.block_on(read_committed(&bootstrap, "eos-out", N, wait));
    assert!(more.is_empty(), "duplicates after {} results", read.len());
    let read = values(read);
    let expected: Vec<String> = (0..N).map(|i| format!("RECORD-{i}")).collect();
    assert_eq!(read.len(), N, "results read with read_committed");
    assert_eq!(read, expected, "each input's result exactly once, in order");
    broker.shutdown();
}
