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

use crate::{create_topic, name, produce, TestBroker};

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
    drop(conn);
    let b = b.restart().await;
    let conn = b.connect().await;
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
