//! The transactional producer against the embedded broker: commits seen by
//! `read_committed` consumers, aborts never; offsets committed with a transaction; a
//! second producer with the same `transactional.id` fencing the first; misuse refused.

use std::time::Duration;

use strom_client::config::{IsolationLevel, OffsetReset};
use strom_client::consumer::Consumer;
use strom_client::producer::Producer;
use strom_client::{ClientConfig, ClientError};

use super::{ms, record, Fixture};

/// Every value a `read_committed` consumer reads from `topic`-0 until `count` arrived
/// and nothing more follows for a moment.
async fn committed_values(config: ClientConfig, topic: &str, count: usize) -> Vec<String> {
    let consumer = Consumer::new(config.isolation_level(IsolationLevel::ReadCommitted))
        .await
        .unwrap();
    let all = [(topic.to_owned(), 0)];
    consumer.assign(&all).unwrap();
    consumer.seek_to_beginning(&all).unwrap();
    let mut values = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while values.len() < count && tokio::time::Instant::now() < deadline {
        for r in consumer.poll(ms(100)).await.unwrap() {
            values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    values.extend(
        consumer
            .poll(ms(300))
            .await
            .unwrap()
            .into_iter()
            .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
    );
    consumer.shutdown().await.unwrap();
    values
}

async fn send_all(producer: &Producer, topic: &str, values: &[&str]) {
    let mut deliveries = Vec::new();
    for v in values {
        deliveries.push(producer.send(record(topic, *v)).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
}

#[tokio::test]
async fn committed_transactions_are_read_and_aborted_ones_are_not() {
    let fx = Fixture::start(1).await;
    let config = fx.config().transactional_id("orders-writer").linger(ms(5));
    let producer = fx.producer(config).await;
    // Sends outside a transaction are refused.
    let outside = producer.send(record("orders", "stray")).await.unwrap_err();
    assert!(
        matches!(outside, ClientError::InvalidState { .. }),
        "{outside}"
    );

    producer.begin_transaction().unwrap();
    send_all(&producer, "orders", &["a", "b"]).await;
    producer.commit_transaction().await.unwrap();
    producer.begin_transaction().unwrap();
    send_all(&producer, "orders", &["dropped-1", "dropped-2"]).await;
    producer.abort_transaction().await.unwrap();
    producer.begin_transaction().unwrap();
    // Records not yet delivered when commit is called are flushed first.
    for v in ["c", "d"] {
        drop(producer.send(record("orders", v)).await.unwrap());
    }
    producer.commit_transaction().await.unwrap();
    assert_eq!(
        committed_values(fx.config(), "orders", 4).await,
        ["a", "b", "c", "d"]
    );
    // An empty transaction commits too.
    producer.begin_transaction().unwrap();
    producer.commit_transaction().await.unwrap();
    producer.close().await;
}

#[tokio::test]
async fn a_second_producer_with_the_id_fences_the_first() {
    let fx = Fixture::start(1).await;
    let config = fx.config().transactional_id("single-writer");
    let first = fx.producer(config.clone()).await;
    first.begin_transaction().unwrap();
    send_all(&first, "fenced", &["old-1"]).await;
    // The newcomer aborts the open transaction and takes over.
    let second = fx.producer(config).await;
    let fenced = first.commit_transaction().await.unwrap_err();
    assert!(
        matches!(&fenced, ClientError::ProducerFenced { transactional_id } if transactional_id == "single-writer"),
        "{fenced}"
    );
    assert!(matches!(
        first.begin_transaction(),
        Err(ClientError::ProducerFenced { .. }) | Err(ClientError::InvalidState { .. })
    ));
    second.begin_transaction().unwrap();
    send_all(&second, "fenced", &["new-1"]).await;
    second.commit_transaction().await.unwrap();
    assert_eq!(committed_values(fx.config(), "fenced", 1).await, ["new-1"]);
}

#[tokio::test]
async fn offsets_commit_with_the_transaction_and_only_then() {
    let fx = Fixture::start(1).await;
    let source = fx.producer(fx.config()).await;
    send_all(&source, "input", &["1", "2", "3"]).await;
    let consumer = Consumer::new(
        fx.config()
            .group_id("transformers")
            .auto_offset_reset(OffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted),
    )
    .await
    .unwrap();
    consumer.subscribe(&["input"]).unwrap();
    let mut read = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while read.len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "read {read:?}");
        read.extend(consumer.poll(ms(200)).await.unwrap());
    }
    let producer = fx
        .producer(fx.config().transactional_id("transformer"))
        .await;
    let group = consumer.group_metadata().unwrap();
    assert!(group.generation_id >= 0, "{group:?}");
    // Aborted: output and offsets both vanish.
    producer.begin_transaction().unwrap();
    send_all(&producer, "output", &["x"]).await;
    let offsets = [("input".to_owned(), 0, 3)];
    producer
        .send_offsets_to_transaction(&offsets, &group)
        .await
        .unwrap();
    producer.abort_transaction().await.unwrap();
    let committed = consumer
        .committed(&[("input".to_owned(), 0)])
        .await
        .unwrap();
    assert_eq!(committed, [None]);
    // Committed: both count.
    producer.begin_transaction().unwrap();
    send_all(&producer, "output", &["2", "4", "6"]).await;
    producer
        .send_offsets_to_transaction(&offsets, &group)
        .await
        .unwrap();
    producer.commit_transaction().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let committed = consumer
            .committed(&[("input".to_owned(), 0)])
            .await
            .unwrap();
        if committed == [Some(3)] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{committed:?}");
        tokio::time::sleep(ms(20)).await;
    }
    assert_eq!(
        committed_values(fx.config(), "output", 3).await,
        ["2", "4", "6"]
    );
    consumer.shutdown().await.unwrap();
}
