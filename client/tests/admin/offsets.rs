//! ListOffsets and DeleteRecords through the admin client, after producing records.

use strom_client::admin::{ListedOffset, NewTopic, OffsetSpec};
use strom_client::ClientError;
use strom_protocol::ErrorCode;

use crate::support::{now_ms, TestBroker};

#[tokio::test]
async fn offsets_of_an_empty_topic() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    admin
        .create_topic(NewTopic::new("empty").partitions(3))
        .await
        .unwrap();
    for spec in [OffsetSpec::Earliest, OffsetSpec::Latest] {
        let offsets = admin.list_offsets("empty", spec).await.unwrap();
        assert_eq!(offsets.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
        assert!(
            offsets.values().all(|o| o.offset == 0),
            "{spec:?}: {offsets:?}"
        );
    }
    let none = admin
        .list_offsets("empty", OffsetSpec::Timestamp(0))
        .await
        .unwrap();
    assert!(none.values().all(|o| o.offset == -1), "{none:?}");
}

#[tokio::test]
async fn list_offsets_by_timestamp_after_producing() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    admin
        .create_topic(NewTopic::new("events").partitions(2))
        .await
        .unwrap();
    let base = now_ms() - 60_000;
    // Partition 0: offsets 0..=2 at base, base+1s, base+2s; then 3..=4 at base+3s, base+4s.
    broker
        .produce("events", 0, &[base, base + 1000, base + 2000])
        .await;
    broker
        .produce("events", 0, &[base + 3000, base + 4000])
        .await;
    // Partition 1: one record at base+10s.
    broker.produce("events", 1, &[base + 10_000]).await;

    let latest = admin
        .list_offsets("events", OffsetSpec::Latest)
        .await
        .unwrap();
    assert_eq!((latest[&0].offset, latest[&1].offset), (5, 1));
    let earliest = admin
        .list_offsets("events", OffsetSpec::Earliest)
        .await
        .unwrap();
    assert_eq!((earliest[&0].offset, earliest[&1].offset), (0, 0));

    let at = admin
        .list_offsets("events", OffsetSpec::Timestamp(base + 1500))
        .await
        .unwrap();
    assert_eq!(
        at[&0],
        ListedOffset {
            offset: 2,
            timestamp: base + 2000
        }
    );
    assert_eq!(
        at[&1],
        ListedOffset {
            offset: 0,
            timestamp: base + 10_000
        }
    );
    let exact = admin
        .list_offsets("events", OffsetSpec::Timestamp(base + 3000))
        .await
        .unwrap();
    assert_eq!(
        exact[&0],
        ListedOffset {
            offset: 3,
            timestamp: base + 3000
        }
    );
    let after = admin
        .list_offsets("events", OffsetSpec::Timestamp(base + 5000))
        .await
        .unwrap();
    assert_eq!(
        after[&0].offset, -1,
        "no record at or after it in partition 0"
    );
    assert_eq!(after[&1].offset, 0);

    let max = admin
        .list_offsets("events", OffsetSpec::MaxTimestamp)
        .await
        .unwrap();
    assert_eq!(
        max[&0],
        ListedOffset {
            offset: 4,
            timestamp: base + 4000
        }
    );
    assert_eq!(
        max[&1],
        ListedOffset {
            offset: 0,
            timestamp: base + 10_000
        }
    );
}

#[tokio::test]
async fn delete_records_moves_the_log_start() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    admin.create_topic(NewTopic::new("trim")).await.unwrap();
    let base = now_ms();
    broker.produce("trim", 0, &[base, base, base, base]).await;

    assert_eq!(admin.delete_records("trim", 0, 2).await.unwrap(), 2);
    let earliest = admin
        .list_offsets("trim", OffsetSpec::Earliest)
        .await
        .unwrap();
    assert_eq!(earliest[&0].offset, 2);
    // -1 means up to the high watermark.
    assert_eq!(admin.delete_records("trim", 0, -1).await.unwrap(), 4);

    let err = admin.delete_records("trim", 0, 100).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::OFFSET_OUT_OF_RANGE), "{err}");
    assert!(err.to_string().contains("trim-0"), "{err}");
}

#[tokio::test]
async fn offsets_of_an_unknown_topic_or_partition() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    let err = admin
        .list_offsets("ghost", OffsetSpec::Latest)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
        "{err}"
    );
    admin.create_topic(NewTopic::new("one")).await.unwrap();
    let err = admin.delete_records("one", 7, 0).await.unwrap_err();
    assert!(err.to_string().contains("one-7"), "{err}");
    assert!(
        matches!(
            err,
            ClientError::UnknownTopicOrPartition { partition: 7, .. }
        ),
        "{err}"
    );
}
