//! Positions: auto.offset.reset, seeks, out-of-range resets, pause and resume, assign.

use std::time::Duration;

use strom_client::config::OffsetReset;
use strom_client::ClientError;

use super::*;

#[tokio::test]
async fn auto_offset_reset_earliest_latest_and_none() {
    let broker = TestBroker::start().await;
    create(&broker, "reset", 1).await;
    produce_values(&broker, "reset", 0, "old", 5, 0).await;

    let earliest = consumer(&broker, OffsetReset::Earliest, &[]).await;
    earliest.assign(&tps("reset", [0])).unwrap();
    assert_eq!(text(&poll_n(&earliest, 5).await[0]), "old-0");

    let latest = consumer(&broker, OffsetReset::Latest, &[]).await;
    latest.assign(&tps("reset", [0])).unwrap();
    assert!(latest
        .poll(Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(latest.position("reset", 0).await.unwrap(), 5);
    produce_values(&broker, "reset", 0, "new", 1, 0).await;
    let got = poll_n(&latest, 1).await;
    assert_eq!((text(&got[0]), got[0].offset), ("new-0".to_owned(), 5));

    let none = consumer(&broker, OffsetReset::None, &[]).await;
    none.assign(&tps("reset", [0])).unwrap();
    let error = none.poll(Duration::from_millis(100)).await.unwrap_err();
    assert!(
        matches!(error, ClientError::NoOffsetForPartition { ref topic, partition: 0 } if topic == "reset"),
        "{error}"
    );
    none.seek("reset", 0, 4).unwrap();
    let got = poll_n(&none, 2).await;
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [4, 5]);
}

#[tokio::test]
async fn seek_to_offset_end_and_timestamp() {
    let broker = TestBroker::start().await;
    create(&broker, "seeks", 2).await;
    for partition in 0..2 {
        produce_values(&broker, "seeks", partition, "a", 5, 1_000).await;
        produce_values(&broker, "seeks", partition, "b", 5, 2_000).await;
    }
    let consumer = consumer(&broker, OffsetReset::Earliest, &[]).await;
    consumer.assign(&tps("seeks", 0..2)).unwrap();
    poll_n(&consumer, 20).await;

    consumer.seek("seeks", 1, 7).unwrap();
    let got = poll_n(&consumer, 3).await;
    assert!(got.iter().all(|r| r.partition == 1));
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [7, 8, 9]);

    consumer.seek_to_beginning(&[]).unwrap();
    poll_n(&consumer, 20).await;

    let found = consumer
        .offsets_for_times(&[("seeks".into(), 0, 1_500), ("seeks".into(), 1, 9_999)])
        .await
        .unwrap();
    assert_eq!(found, [Some((5, 2_000)), None]);
    consumer.seek_to_timestamp(&[], 1_500).await.unwrap();
    let got = poll_n(&consumer, 10).await;
    assert!(got.iter().all(|r| text(r).starts_with("b-")));
    assert_eq!(consumer.position("seeks", 1).await.unwrap(), 10);

    consumer.seek("seeks", 0, 2).unwrap();
    consumer.seek_to_end(&tps("seeks", [0])).unwrap();
    assert!(consumer
        .poll(Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(consumer.position("seeks", 0).await.unwrap(), 10);
    let error = consumer.seek("other", 0, 0).unwrap_err();
    assert!(matches!(error, ClientError::InvalidState { .. }), "{error}");
}

#[tokio::test]
async fn out_of_range_positions_reset_or_fail() {
    let broker = TestBroker::start().await;
    create(&broker, "range", 1).await;
    produce_values(&broker, "range", 0, "r", 3, 0).await;
    let earliest = consumer(&broker, OffsetReset::Earliest, &[]).await;
    earliest.assign(&tps("range", [0])).unwrap();
    earliest.seek("range", 0, 1_000).unwrap();
    let got = poll_n(&earliest, 3).await;
    assert_eq!(got[0].offset, 0);

    let none = consumer(&broker, OffsetReset::None, &[]).await;
    none.assign(&tps("range", [0])).unwrap();
    none.seek("range", 0, 1_000).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let error = loop {
        match none.poll(Duration::from_millis(200)).await {
            Err(e) => break e,
            Ok(records) => assert!(records.is_empty()),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no out-of-range error"
        );
    };
    assert!(
        matches!(error, ClientError::OffsetOutOfRange { offset: 1_000, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn records_fetched_before_the_log_start_moved_are_still_handed_out() {
    let broker = TestBroker::start().await;
    create(&broker, "moved", 1).await;
    produce_values(&broker, "moved", 0, "a", 10, 0).await;
    // Buffered records are 67 bytes each here; fetching stops while 400 bytes or more are
    // buffered, so the next fetch goes out with records still buffered (whether its answer
    // comes back before they are all handed out is up to timing; the source's unit tests
    // cover that case).
    let extra = [
        ("max.poll.records", "1"),
        ("max.partition.fetch.bytes", "200"),
    ];
    let consumer = consumer(&broker, OffsetReset::Earliest, &extra).await;
    consumer.assign(&tps("moved", [0])).unwrap();
    let first = poll_n(&consumer, 1).await;
    assert_eq!(first[0].offset, 0);
    // The log moves on past everything fetched: that next fetch is out of range.
    produce_values(&broker, "moved", 0, "b", 10, 0).await;
    let admin = broker.admin().await;
    assert_eq!(admin.delete_records("moved", 0, 15).await.unwrap(), 15);
    let offsets: Vec<i64> = poll_n(&consumer, 14)
        .await
        .iter()
        .map(|r| r.offset)
        .collect();
    let expected: Vec<i64> = (1..10).chain(15..20).collect();
    assert_eq!(offsets, expected, "buffered records first, then the reset");
}

#[tokio::test]
async fn pause_holds_partitions_until_resumed() {
    let broker = TestBroker::start().await;
    create(&broker, "paused", 2).await;
    for partition in 0..2 {
        produce_values(&broker, "paused", partition, "p", 4, 0).await;
    }
    let consumer = consumer(&broker, OffsetReset::Earliest, &[]).await;
    consumer.assign(&tps("paused", 0..2)).unwrap();
    consumer.pause(&tps("paused", [1])).unwrap();
    assert_eq!(consumer.paused(), tps("paused", [1]));
    let got = poll_n(&consumer, 4).await;
    assert!(got.iter().all(|r| r.partition == 0));
    assert!(consumer
        .poll(Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    consumer.resume(&tps("paused", [1])).unwrap();
    let got = poll_n(&consumer, 4).await;
    assert!(got.iter().all(|r| r.partition == 1));
}

#[tokio::test]
async fn assign_replaces_the_assignment_and_keeps_positions() {
    let broker = TestBroker::start().await;
    create(&broker, "moves", 3).await;
    for partition in 0..3 {
        produce_values(&broker, "moves", partition, "m", 2, 0).await;
    }
    let consumer = consumer(&broker, OffsetReset::Earliest, &[]).await;
    consumer.assign(&tps("moves", [0, 1])).unwrap();
    assert!(poll_n(&consumer, 4).await.iter().all(|r| r.partition < 2));
    consumer.assign(&tps("moves", [1, 2])).unwrap();
    assert_eq!(consumer.assignment(), tps("moves", [1, 2]));
    let got = poll_n(&consumer, 2).await;
    assert!(
        got.iter().all(|r| r.partition == 2),
        "partition 1 kept its position"
    );
    let error = consumer.position("moves", 0).await.unwrap_err();
    assert!(matches!(error, ClientError::InvalidState { .. }), "{error}");
}
