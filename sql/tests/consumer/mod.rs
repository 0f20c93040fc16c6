//! A group of SQL-filtered consumers on the embedded broker: together they receive every
//! matching record once, and only those.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::consumer::Consumer;
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use strom_sql::arrow::array::{Array, StringArray};
use strom_sql::{FieldKind, SqlConsumer, ValueField, ValueFormat};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_sql_consumers_shares_the_matching_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker_config = BrokerConfig::new(dir.path());
    broker_config.group_initial_rebalance_delay = Duration::ZERO;
    let broker = Broker::start(broker_config).await.unwrap();
    let config = ClientConfig::new().bootstrap(&broker.bootstrap());
    let admin = Admin::connect(config.clone()).await.unwrap();
    admin
        .create_topic(NewTopic::new("events").partitions(4))
        .await
        .unwrap();
    let format = ValueFormat::Json(vec![
        ValueField::new("level", FieldKind::Text),
        ValueField::new("code", FieldKind::Integer),
    ]);
    let sql = "SELECT key FROM t WHERE level = 'error' AND code % 3 = 0";
    let mut members = Vec::new();
    for _ in 0..2 {
        let consumer = Consumer::new(
            config
                .clone()
                .group_id("sql-group")
                .auto_offset_reset(strom_client::config::OffsetReset::Earliest),
        )
        .await
        .unwrap();
        consumer.subscribe(&["events"]).unwrap();
        members.push(
            SqlConsumer::new(consumer, format.clone(), sql)
                .await
                .unwrap(),
        );
    }
    // Each member polls on its own task (a member's poll takes part in rebalances).
    let polled = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for member in members {
        let polled = polled.clone();
        tasks.push(tokio::spawn(async move {
            let mut keys = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while polled.load(Ordering::SeqCst) < 401 {
                assert!(Instant::now() < deadline, "{polled:?} records polled");
                let batch = member.poll(Duration::from_millis(100)).await.unwrap();
                polled.fetch_add(batch.polled, Ordering::SeqCst);
                let column = batch
                    .rows
                    .column(0)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone();
                keys.extend((0..column.len()).map(|r| column.value(r).to_owned()));
            }
            member.consumer().shutdown().await.unwrap();
            (member, keys)
        }));
    }
    // Both members hold partitions before anything is written, so both filter.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let group = admin.describe_group("sql-group").await.unwrap();
        let working = group
            .members
            .iter()
            .filter(|m| !m.assignment.is_empty())
            .count();
        if group.state == "Stable" && working == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{group:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let producer = Producer::new(config.clone()).await.unwrap();
    let mut expected = BTreeSet::new();
    for i in 0..400 {
        let level = ["info", "warn", "error", "debug"][i % 4];
        let value = format!(r#"{{"level":"{level}","code":{i}}}"#);
        if level == "error" && i % 3 == 0 {
            expected.insert(format!("e{i}"));
        }
        let record = Record::new("events").key(format!("e{i}")).value(value);
        producer.send(record).await.unwrap().await.unwrap();
    }
    // One that is not JSON: counted, not delivered.
    let record = Record::new("events").key("bad").value("{oops");
    producer.send(record).await.unwrap().await.unwrap();

    let mut seen = Vec::new();
    let mut per_member = Vec::new();
    let mut members = Vec::new();
    for task in tasks {
        let (member, keys) = task.await.unwrap();
        per_member.push(keys.len());
        seen.extend(keys);
        members.push(member);
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), unique.len(), "a record reached two members");
    assert_eq!(unique, expected);
    assert!(
        per_member.iter().all(|n| *n > 0),
        "both members filtered: {per_member:?}"
    );
    let bad: u64 = members.iter().map(SqlConsumer::undecodable_count).sum();
    assert_eq!(bad, 1);
    producer.close().await;
    broker.shutdown().await.unwrap();
}
