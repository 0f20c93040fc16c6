//! Transactions at the partition: transactional batches, markers written through
//! WriteTxnMarkers, the last stable offset, and `read_committed` fetches with their aborted
//! transactions, across a restart.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use strom_protocol::connection::Connection;
use strom_protocol::records::{batches, decode_batch, BatchBuilder, Compression};
use strom_protocol::ErrorCode;

use crate::{create_topic, name, produce, s, TestBroker};

const TOPIC: &str = "txn";

async fn producer_id(conn: &Connection) -> i64 {
    let init = conn
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60000),
        )
        .await
        .unwrap();
    assert_eq!(init.error_code, 0);
    init.producer_id.0
}

pub fn batch(pid: i64, epoch: i16, seq: i32, values: &[&str], transactional: bool) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None)
        .producer(pid, epoch, seq)
        .transactional(transactional);
    for v in values {
        b.push(1000, None, Some(v.as_bytes()), &[]);
    }
    b.build().unwrap()
}

/// Writes the marker ending `pid`'s transaction on partition 0; the partition's error.
async fn end(conn: &Connection, pid: i64, epoch: i16, commit: bool) -> i16 {
    end_on(conn, TOPIC, pid, epoch, commit).await
}

/// Writes the marker ending `pid`'s transaction on `topic`-0; the partition's error.
pub async fn end_on(conn: &Connection, topic: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(0)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(name(topic))
                .with_partition_indexes(vec![0])])]);
    let response = conn.send(&request).await.unwrap();
    response.markers[0].topics[0].partitions[0].error_code
}

/// What a fetch of partition 0 from offset 0 at `isolation` saw.
pub struct Seen {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub values: Vec<String>,
    pub markers: usize,
    pub aborted: Option<Vec<(i64, i64)>>,
}

async fn fetch(conn: &Connection, isolation: i8) -> Seen {
    fetch_from(conn, TOPIC, isolation).await
}

/// Fetches `topic`-0 from offset 0 at `isolation` (1: read_committed).
pub async fn fetch_from(conn: &Connection, topic: &str, isolation: i8) -> Seen {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = conn.send_version(&request, 12).await.unwrap();
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let data = p.records.clone().unwrap_or_default();
    let (mut values, mut markers) = (Vec::new(), 0);
    for item in batches(&data) {
        let (header, range) = item.unwrap();
        if header.is_control() {
            markers += 1;
            continue;
        }
        let (_, records) = decode_batch(&data[range]).unwrap();
        values.extend(
            records
                .into_iter()
                .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
        );
    }
    Seen {
        high_watermark: p.high_watermark,
        last_stable_offset: p.last_stable_offset,
        values,
        markers,
        aborted: p.aborted_transactions.as_ref().map(|a| {
            a.iter()
                .map(|t| (t.producer_id.0, t.first_offset))
                .collect()
        }),
    }
}

/// DescribeProducers of partition 0: (id, epoch, last sequence, open transaction start).
async fn describe_producers(conn: &Connection) -> Vec<(i64, i32, i32, i64)> {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(name(TOPIC))
        .with_partition_indexes(vec![0])]);
    let response = conn.send(&request).await.unwrap();
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let mut producers: Vec<_> = partition
        .active_producers
        .iter()
        .map(|p| {
            let state = (p.producer_id.0, p.producer_epoch, p.last_sequence);
            (state.0, state.1, state.2, p.current_txn_start_offset)
        })
        .collect();
    producers.sort();
    producers
}

async fn latest(conn: &Connection, isolation: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_isolation_level(isolation)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(TOPIC))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let response = conn.send(&request).await.unwrap();
    response.topics[0].partitions[0].offset
}

#[tokio::test]
async fn read_committed_sees_committed_transactions_below_the_last_stable_offset() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    create_topic(&conn, TOPIC, 1).await;
    let (p1, p2) = (producer_id(&conn).await, producer_id(&conn).await);

    // Two open transactions and a plain record.
    let first = batch(p1, 0, 0, &["a1", "a2"], true);
    assert_eq!(produce(&conn, TOPIC, 0, first).await, (0, 0));
    assert_eq!(
        produce(&conn, TOPIC, 0, batch(p2, 0, 0, &["b1"], true)).await,
        (0, 2)
    );
    assert_eq!(
        produce(&conn, TOPIC, 0, batch(-1, -1, -1, &["plain"], false)).await,
        (0, 3)
    );
    let open = fetch(&conn, 1).await;
    assert_eq!((open.high_watermark, open.last_stable_offset), (4, 0));
    assert!(open.values.is_empty(), "nothing is stable yet");
    assert_eq!(open.aborted, Some(vec![]));
    assert_eq!((latest(&conn, 0).await, latest(&conn, 1).await), (4, 0));
    let uncommitted = fetch(&conn, 0).await;
    assert_eq!(uncommitted.values, ["a1", "a2", "b1", "plain"]);
    assert_eq!(uncommitted.aborted, None);

    // p1 commits: stable up to p2's open transaction.
    assert_eq!(end(&conn, p1, 0, true).await, 0);
    let seen = fetch(&conn, 1).await;
    assert_eq!((seen.high_watermark, seen.last_stable_offset), (5, 2));
    assert_eq!(seen.values, ["a1", "a2"]);

    // p2's transaction is aborted by the coordinator with a bumped epoch.
    assert_eq!(end(&conn, p2, 1, false).await, 0);
    let seen = fetch(&conn, 1).await;
    assert_eq!((seen.high_watermark, seen.last_stable_offset), (6, 6));
    assert_eq!(seen.values, ["a1", "a2", "b1", "plain"]);
    assert_eq!(seen.markers, 2);
    assert_eq!(seen.aborted, Some(vec![(p2, 2)]));
    assert_eq!(latest(&conn, 1).await, 6);
    // The old epoch is fenced, for records and markers alike.
    assert_eq!(
        produce(&conn, TOPIC, 0, batch(p2, 0, 1, &["zombie"], true))
            .await
            .0,
        ErrorCode::INVALID_PRODUCER_EPOCH.code()
    );
    assert_eq!(
        end(&conn, p2, 0, true).await,
        ErrorCode::INVALID_PRODUCER_EPOCH.code()
    );
    // Clients may not write markers themselves.
    let forged = strom_protocol::records::end_transaction_marker(p1, 0, true, 0, 1).unwrap();
    assert_eq!(
        produce(&conn, TOPIC, 0, forged).await.0,
        ErrorCode::INVALID_RECORD.code()
    );

    // p1 opens another transaction; after a restart the state is rebuilt from the log.
    assert_eq!(
        produce(&conn, TOPIC, 0, batch(p1, 0, 2, &["a3"], true)).await,
        (0, 6)
    );
    let producers = describe_producers(&conn).await;
    assert_eq!(producers, [(p1, 0, 2, 6), (p2, 1, -1, -1)]);
    drop(conn);
    let b = b.restart().await;
    let conn = b.connect().await;
    assert_eq!(describe_producers(&conn).await, producers);
    let seen = fetch(&conn, 1).await;
    assert_eq!((seen.high_watermark, seen.last_stable_offset), (7, 6));
    assert_eq!(seen.aborted, Some(vec![(p2, 2)]));
    assert_eq!(end(&conn, p1, 0, false).await, 0);
    let seen = fetch(&conn, 1).await;
    assert_eq!(seen.last_stable_offset, 8);
    assert_eq!(seen.aborted, Some(vec![(p2, 2), (p1, 6)]));
}

#[tokio::test]
async fn markers_for_partitions_not_led_here_are_refused() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    create_topic(&conn, TOPIC, 1).await;
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(5))
            .with_producer_epoch(0)
            .with_transaction_result(true)
            .with_topics(vec![
                WritableTxnMarkerTopic::default()
                    .with_name(name(TOPIC))
                    .with_partition_indexes(vec![0, 7]),
                WritableTxnMarkerTopic::default()
                    .with_name(name("missing"))
                    .with_partition_indexes(vec![0]),
            ])]);
    let response = conn.send(&request).await.unwrap();
    let codes: Vec<Vec<i16>> = response.markers[0]
        .topics
        .iter()
        .map(|t| t.partitions.iter().map(|p| p.error_code).collect())
        .collect();
    let unknown = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
    assert_eq!(codes, [vec![0, unknown], vec![unknown]]);
}

/// A transactional producer's requests to the coordinator, as a client sends them.
struct TxnClient<'a> {
    conn: &'a Connection,
    id: &'static str,
    pid: i64,
    epoch: i16,
}

impl TxnClient<'_> {
    /// InitProducerId with the transactional id, retried while the coordinator is busy.
    async fn init<'c>(conn: &'c Connection, id: &'static str, timeout_ms: i32) -> TxnClient<'c> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let request = InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s(id))))
                .with_transaction_timeout_ms(timeout_ms);
            let r = conn.send(&request).await.unwrap();
            match ErrorCode(r.error_code) {
                ErrorCode::NONE => {
                    return TxnClient {
                        conn,
                        id,
                        pid: r.producer_id.0,
                        epoch: r.producer_epoch,
                    }
                }
                code if code.is_retriable() || code == ErrorCode::CONCURRENT_TRANSACTIONS => {
                    assert!(tokio::time::Instant::now() < deadline, "{code:?}");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                code => panic!("InitProducerId: {code:?}"),
            }
        }
    }

    async fn add(&self, topic: &str, partition: i32) -> i16 {
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(self.id)))
            .with_v3_and_below_producer_id(ProducerId(self.pid))
            .with_v3_and_below_producer_epoch(self.epoch)
            .with_v3_and_below_topics(vec![
                kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![partition]),
            ]);
        let r = self.conn.send_version(&request, 3).await.unwrap();
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
    }

    /// Writes `values` in the transaction: the partition added, then a batch produced.
    async fn write(&self, seq: i32, values: &[&str]) -> (i16, i64) {
        assert_eq!(self.add(TOPIC, 0).await, 0);
        let mut request =
            crate::produce_request(TOPIC, 0, batch(self.pid, self.epoch, seq, values, true));
        request.transactional_id = Some(TransactionalId(s(self.id)));
        let r = self.conn.send(&request).await.unwrap();
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    async fn end(&self, commit: bool) -> i16 {
        let request = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(self.id)))
            .with_producer_id(ProducerId(self.pid))
            .with_producer_epoch(self.epoch)
            .with_committed(commit);
        self.conn.send(&request).await.unwrap().error_code
    }
}

/// Waits until a read_committed fetch returns `values` (aborted ones included: the
/// reader skips those) and the last stable offset `lso`.
async fn committed_are(conn: &Connection, values: &[&str], lso: i64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let seen = fetch(conn, 1).await;
        if seen.values == values && seen.last_stable_offset == lso {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "read_committed saw {:?} below {}",
            seen.values,
            seen.last_stable_offset
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_coordinator_commits_aborts_fences_and_survives_a_restart() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    create_topic(&conn, TOPIC, 1).await;
    // FindCoordinator for a transactional id names this broker (creating the topic).
    let request = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_key(s("payments"));
    let found = conn.send_version(&request, 3).await.unwrap();
    assert_eq!((found.error_code, found.node_id.0), (0, 1));

    let first = TxnClient::init(&conn, "payments", 60_000).await;
    assert_eq!(first.epoch, 0);
    assert_eq!(first.write(0, &["one", "two"]).await, (0, 0));
    assert_eq!(first.end(true).await, 0);
    committed_are(&conn, &["one", "two"], 3).await;
    assert_eq!(first.write(2, &["dropped"]).await, (0, 3));
    assert_eq!(first.end(false).await, 0);
    // Retrying the same end is fine; the other outcome is not.
    assert_eq!(first.end(false).await, 0);
    committed_are(&conn, &["one", "two", "dropped"], 5).await;
    assert_eq!(fetch(&conn, 1).await.aborted, Some(vec![(first.pid, 3)]));
    assert_eq!(first.end(true).await, ErrorCode::INVALID_TXN_STATE.code());

    // A second producer with the id takes over: the first is fenced.
    let second = TxnClient::init(&conn, "payments", 60_000).await;
    assert_eq!((second.pid, second.epoch), (first.pid, 1));
    assert_eq!(first.add(TOPIC, 0).await, ErrorCode::PRODUCER_FENCED.code());
    assert_eq!(first.end(true).await, ErrorCode::PRODUCER_FENCED.code());
    assert_eq!(second.write(0, &["three"]).await, (0, 5));

    // A second producer while a transaction is open aborts it (fencing its writer).
    let third = TxnClient::init(&conn, "payments", 60_000).await;
    assert_eq!(
        third.epoch, 3,
        "one bump to abort, one for the new producer"
    );
    assert_eq!(second.end(true).await, ErrorCode::PRODUCER_FENCED.code());
    committed_are(&conn, &["one", "two", "dropped", "three"], 7).await;
    assert_eq!(
        fetch(&conn, 1).await.aborted,
        Some(vec![(first.pid, 3), (first.pid, 5)])
    );

    // The coordinator's state survives a restart: the next producer gets the next epoch.
    let first_pid = first.pid;
    drop(conn);
    let b = b.restart().await;
    let conn = b.connect().await;
    let fourth = TxnClient::init(&conn, "payments", 60_000).await;
    assert_eq!((fourth.pid, fourth.epoch), (first_pid, 4));
    // Errors: a bad timeout, an unknown partition, an unknown id.
    let bad = conn
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("payments"))))
                .with_transaction_timeout_ms(900_001),
        )
        .await
        .unwrap();
    assert_eq!(
        bad.error_code,
        ErrorCode::INVALID_TRANSACTION_TIMEOUT.code()
    );
    assert_eq!(
        fourth.add("no-such-topic", 0).await,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
    );
    let stranger = TxnClient {
        conn: &conn,
        id: "never-seen",
        pid: 1,
        epoch: 0,
    };
    assert_eq!(
        stranger.end(true).await,
        ErrorCode::INVALID_PRODUCER_ID_MAPPING.code()
    );
}

#[tokio::test]
async fn transactions_past_their_timeout_are_aborted_and_their_producer_fenced() {
    let b = TestBroker::start_with(|c| {
        c.transaction_abort_interval = std::time::Duration::from_millis(50);
    })
    .await;
    let conn = b.connect().await;
    create_topic(&conn, TOPIC, 1).await;
    let slow = TxnClient::init(&conn, "slow", 200).await;
    assert_eq!(slow.write(0, &["late"]).await, (0, 0));
    // The coordinator aborts it (the records are reported aborted), fencing the producer.
    committed_are(&conn, &["late"], 2).await;
    assert_eq!(fetch(&conn, 1).await.aborted, Some(vec![(slow.pid, 0)]));
    assert_eq!(slow.end(true).await, ErrorCode::PRODUCER_FENCED.code());
    let listed = conn
        .send(&ListTransactionsRequest::default())
        .await
        .unwrap();
    let states: Vec<(String, String)> = listed
        .transaction_states
        .iter()
        .map(|t| {
            (
                t.transactional_id.0.to_string(),
                t.transaction_state.to_string(),
            )
        })
        .collect();
    assert_eq!(states, [("slow".to_owned(), "CompleteAbort".to_owned())]);
    let described = conn
        .send(
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![
                TransactionalId(s("slow")),
                TransactionalId(s("nobody")),
            ]),
        )
        .await
        .unwrap();
    let s0 = &described.transaction_states[0];
    assert_eq!((s0.error_code, s0.producer_epoch), (0, 1));
    assert_eq!(s0.transaction_state.as_str(), "CompleteAbort");
    assert_eq!(
        described.transaction_states[1].error_code,
        ErrorCode::TRANSACTIONAL_ID_NOT_FOUND.code()
    );
}

impl TxnClient<'_> {
    /// AddOffsetsToTxn then TxnOffsetCommit of `offset` for `group` on `TOPIC`-0.
    async fn commit_offset(&self, group: &str, offset: i64) -> (i16, i16) {
        use kafka_protocol::messages::txn_offset_commit_request::{
            TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
        };
        let add = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(self.id)))
            .with_producer_id(ProducerId(self.pid))
            .with_producer_epoch(self.epoch)
            .with_group_id(GroupId(s(group)));
        let added = self.conn.send(&add).await.unwrap().error_code;
        let commit = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(self.id)))
            .with_group_id(GroupId(s(group)))
            .with_producer_id(ProducerId(self.pid))
            .with_producer_epoch(self.epoch)
            .with_generation_id(-1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(name(TOPIC))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)])]);
        let r = self.conn.send_version(&commit, 3).await.unwrap();
        (added, r.topics[0].partitions[0].error_code)
    }
}

/// OffsetFetch v7 of `group` for `TOPIC`-0: (error, offset).
async fn committed_offset(conn: &Connection, group: &str, require_stable: bool) -> (i16, i64) {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(name(TOPIC))
            .with_partition_indexes(vec![0])]));
    let r = conn.send_version(&request, 7).await.unwrap();
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

/// Waits until `group`'s stable committed offset is `offset`.
async fn stable_offset_is(conn: &Connection, group: &str, offset: i64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while committed_offset(conn, group, true).await != (0, offset) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "offset never {offset}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn offsets_committed_in_transactions_count_once_committed_and_survive_a_restart() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    create_topic(&conn, TOPIC, 1).await;
    let producer = TxnClient::init(&conn, "offsets", 60_000).await;
    assert_eq!(producer.commit_offset("readers", 5).await, (0, 0));
    // Pending: unstable for readers that ask for stable offsets, unset for the others.
    assert_eq!(
        committed_offset(&conn, "readers", true).await,
        (ErrorCode::UNSTABLE_OFFSET_COMMIT.code(), -1)
    );
    assert_eq!(committed_offset(&conn, "readers", false).await, (0, -1));
    assert_eq!(producer.end(true).await, 0);
    stable_offset_is(&conn, "readers", 5).await;
    // An aborted transaction's offset never counts.
    assert_eq!(producer.commit_offset("readers", 9).await, (0, 0));
    assert_eq!(producer.end(false).await, 0);
    stable_offset_is(&conn, "readers", 5).await;
    // A third, left open across the restart: still pending after it.
    assert_eq!(producer.commit_offset("readers", 12).await, (0, 0));

    drop(conn);
    let b = b.restart().await;
    let conn = b.connect().await;
    assert_eq!(
        committed_offset(&conn, "readers", true).await,
        (ErrorCode::UNSTABLE_OFFSET_COMMIT.code(), -1)
    );
    assert_eq!(committed_offset(&conn, "readers", false).await, (0, 5));
    // A new producer of the id aborts the open transaction: the offset stays 5.
    let next = TxnClient::init(&conn, "offsets", 60_000).await;
    assert_eq!(next.epoch, 2);
    stable_offset_is(&conn, "readers", 5).await;
    assert_eq!(next.commit_offset("readers", 20).await, (0, 0));
    assert_eq!(next.end(true).await, 0);
    stable_offset_is(&conn, "readers", 20).await;
}
