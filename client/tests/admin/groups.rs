//! Consumer groups through the admin client: a live member listed, described and its lag
//! measured; offsets reset (only once it left) and the group deleted.

use std::time::Duration;

use strom_client::admin::{Admin, GroupListing, GroupOffset, NewTopic, ResetTo};
use strom_client::config::OffsetReset;
use strom_client::{ClientConfig, ClientError, Consumer};
use strom_protocol::ErrorCode;
use tokio::time::Instant;

use crate::support::{now_ms, TestBroker};

const TOPIC: &str = "ledger";
const GROUP: &str = "auditors";
/// How long any expected state may take.
const WAIT: Duration = Duration::from_secs(30);

fn member_config(b: &TestBroker) -> ClientConfig {
    let mut config = b
        .config()
        .client_id("auditor-1")
        .group_id(GROUP)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false);
    config
        .set("partition.assignment.strategy", "range")
        .unwrap();
    config
}

/// Polls until `count` records arrived; returns their `(partition, offset)`s.
async fn read(consumer: &Consumer, count: usize) -> Vec<(i32, i64)> {
    let deadline = Instant::now() + WAIT;
    let mut read = Vec::new();
    while read.len() < count {
        assert!(
            Instant::now() < deadline,
            "only {read:?} of {count} records within {WAIT:?}"
        );
        let records = consumer.poll(Duration::from_millis(100)).await.unwrap();
        read.extend(records.iter().map(|r| (r.partition, r.offset)));
    }
    read
}

/// `(committed, log end, lag)` per partition.
async fn offsets(admin: &Admin) -> Vec<(i32, i64, i64, i64)> {
    let offsets = admin.group_offsets(GROUP).await.unwrap();
    assert!(offsets.iter().all(|o| o.topic == TOPIC), "{offsets:?}");
    offsets
        .iter()
        .map(|o| (o.partition, o.committed, o.log_end_offset, o.lag))
        .collect()
}

async fn reset(admin: &Admin, to: ResetTo) -> Vec<(String, i32, i64)> {
    admin
        .reset_group_offsets(GROUP, &[TOPIC], to)
        .await
        .unwrap()
}

fn in_ledger(offsets: [i64; 2]) -> Vec<(String, i32, i64)> {
    vec![
        (TOPIC.to_owned(), 0, offsets[0]),
        (TOPIC.to_owned(), 1, offsets[1]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_group_is_listed_described_and_measured() {
    let b = TestBroker::start_with(|c| c.group_initial_rebalance_delay = Duration::ZERO).await;
    let admin = b.admin().await;
    admin
        .create_topic(NewTopic::new(TOPIC).partitions(2))
        .await
        .unwrap();
    b.produce(TOPIC, 0, &[now_ms(); 5]).await;
    b.produce(TOPIC, 1, &[now_ms(); 3]).await;

    let consumer = Consumer::new(member_config(&b)).await.unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    assert_eq!(read(&consumer, 8).await.len(), 8);
    consumer.commit().await.unwrap();
    b.produce(TOPIC, 0, &[now_ms(); 2]).await;

    let listed = admin.list_groups().await.unwrap();
    assert_eq!(
        listed,
        [GroupListing {
            group_id: GROUP.to_owned(),
            protocol_type: "consumer".to_owned(),
            state: Some("Stable".to_owned()),
        }]
    );
    let group = admin.describe_group(GROUP).await.unwrap();
    assert_eq!(
        (
            group.group_id.as_str(),
            group.state.as_str(),
            group.protocol_type.as_str(),
            group.protocol.as_str()
        ),
        (GROUP, "Stable", "consumer", "range")
    );
    assert_eq!(group.members.len(), 1, "{group:?}");
    let member = &group.members[0];
    assert_eq!(member.client_id, "auditor-1");
    assert!(!member.member_id.is_empty() && !member.client_host.is_empty());
    assert_eq!(member.group_instance_id, None);
    assert_eq!(
        member.assignment,
        [(TOPIC.to_owned(), 0), (TOPIC.to_owned(), 1)]
    );

    assert_eq!(
        admin.group_offsets(GROUP).await.unwrap(),
        [
            GroupOffset {
                topic: TOPIC.to_owned(),
                partition: 0,
                committed: 5,
                log_end_offset: 7,
                lag: 2,
                metadata: String::new(),
            },
            GroupOffset {
                topic: TOPIC.to_owned(),
                partition: 1,
                committed: 3,
                log_end_offset: 3,
                lag: 0,
                metadata: String::new(),
            },
        ]
    );

    // A member could overwrite whatever an outsider commits: both are refused.
    for attempt in [
        admin
            .reset_group_offsets(GROUP, &[TOPIC], ResetTo::Earliest)
            .await,
        admin
            .plan_reset_group_offsets(GROUP, &[TOPIC], ResetTo::Earliest)
            .await,
    ] {
        match attempt {
            Err(ClientError::InvalidState { state, .. }) => {
                assert!(state.contains("Stable"), "{state}")
            }
            other => panic!("reset of a live group: {other:?}"),
        }
    }
    let deleted = admin.delete_groups(&[GROUP]).await.unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(
        deleted[0].1.as_ref().unwrap_err().code(),
        Some(ErrorCode::NON_EMPTY_GROUP)
    );
    assert_eq!(offsets(&admin).await, [(0, 5, 7, 2), (1, 3, 3, 0)]);
    consumer.shutdown().await.unwrap();

    let group = admin.describe_group(GROUP).await.unwrap();
    assert_eq!(group.state, "Empty");
    assert!(group.members.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_group_is_reset_and_deleted() {
    let b = TestBroker::start_with(|c| c.group_initial_rebalance_delay = Duration::ZERO).await;
    let admin = b.admin().await;
    admin
        .create_topic(NewTopic::new(TOPIC).partitions(2))
        .await
        .unwrap();
    let base = now_ms() - 60_000;
    // Partition 0: offsets 0..=4 a second apart; partition 1: 0..=2 ten seconds later.
    let p0: Vec<i64> = (0..5).map(|i| base + i * 1000).collect();
    b.produce(TOPIC, 0, &p0).await;
    b.produce(TOPIC, 1, &[base + 10_000; 3]).await;
    let consumer = Consumer::new(member_config(&b)).await.unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    read(&consumer, 8).await;
    consumer.commit().await.unwrap();
    consumer.shutdown().await.unwrap();
    assert_eq!(offsets(&admin).await, [(0, 5, 5, 0), (1, 3, 3, 0)]);

    assert_eq!(reset(&admin, ResetTo::Earliest).await, in_ledger([0, 0]));
    assert_eq!(offsets(&admin).await, [(0, 0, 5, 5), (1, 0, 3, 3)]);
    assert_eq!(reset(&admin, ResetTo::Latest).await, in_ledger([5, 3]));
    assert_eq!(offsets(&admin).await, [(0, 5, 5, 0), (1, 3, 3, 0)]);
    // Explicit offsets are moved into each partition's log.
    assert_eq!(reset(&admin, ResetTo::Offset(4)).await, in_ledger([4, 3]));
    assert_eq!(reset(&admin, ResetTo::Offset(-5)).await, in_ledger([0, 0]));
    // By time: the first record at or after it; the end where every record is older.
    let at = ResetTo::Timestamp(base + 1500);
    assert_eq!(reset(&admin, at).await, in_ledger([2, 0]));
    assert_eq!(offsets(&admin).await, [(0, 2, 5, 3), (1, 0, 3, 3)]);
    let future = ResetTo::Timestamp(now_ms() + 3_600_000);
    assert_eq!(reset(&admin, future).await, in_ledger([5, 3]));
    // A dry run commits nothing.
    let planned = admin
        .plan_reset_group_offsets(GROUP, &[TOPIC], ResetTo::Earliest)
        .await
        .unwrap();
    assert_eq!(planned, in_ledger([0, 0]));
    assert_eq!(offsets(&admin).await, [(0, 5, 5, 0), (1, 3, 3, 0)]);
    let missing = admin
        .reset_group_offsets(GROUP, &["no-such-topic"], ResetTo::Earliest)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));

    // The next member starts where the reset put the group.
    assert_eq!(reset(&admin, ResetTo::Offset(3)).await, in_ledger([3, 3]));
    b.produce(TOPIC, 1, &[now_ms()]).await;
    let consumer = Consumer::new(member_config(&b)).await.unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let mut again = read(&consumer, 3).await;
    again.sort_unstable();
    assert_eq!(again, [(0, 3), (0, 4), (1, 3)]);
    consumer.shutdown().await.unwrap();

    let deleted = admin.delete_groups(&[GROUP, "nobody"]).await.unwrap();
    assert_eq!(deleted[0].0, GROUP);
    assert!(deleted[0].1.is_ok(), "{deleted:?}");
    assert_eq!(deleted[1].0, "nobody");
    assert_eq!(
        deleted[1].1.as_ref().unwrap_err().code(),
        Some(ErrorCode::GROUP_ID_NOT_FOUND)
    );
    assert!(admin.list_groups().await.unwrap().is_empty());
    assert_eq!(admin.describe_group(GROUP).await.unwrap().state, "Dead");
    assert!(admin.group_offsets(GROUP).await.unwrap().is_empty());
}
