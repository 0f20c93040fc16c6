//! The consumer against the embedded broker: positions, seeks, pause, fetch sizes, codecs.

mod group;
mod positions;
mod reading;

use std::time::Duration;

use bytes::Bytes;
use strom_client::admin::NewTopic;
use strom_client::config::OffsetReset;
use strom_client::consumer::ConsumerRecord;
use strom_client::{ClientConfig, Consumer};
use strom_protocol::connection::Connection;
use strom_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use strom_protocol::kafka_protocol::messages::{ProduceRequest, TopicName};
use strom_protocol::kafka_protocol::protocol::StrBytes;
use strom_protocol::records::{BatchBuilder, Compression};

use crate::support::TestBroker;

/// A record to produce: timestamp, key, value, headers.
pub type Rec<'a> = (
    i64,
    Option<&'a [u8]>,
    Option<&'a [u8]>,
    Vec<(&'a str, Option<&'a [u8]>)>,
);

/// Creates `topic` with `partitions` partitions.
pub async fn create(broker: &TestBroker, topic: &str, partitions: i32) {
    let admin = broker.admin().await;
    admin
        .create_topic(NewTopic::new(topic).partitions(partitions))
        .await
        .unwrap();
}

/// Produces one batch of `records` with `compression`; returns its base offset.
pub async fn produce(
    broker: &TestBroker,
    topic: &str,
    partition: i32,
    compression: Compression,
    records: &[Rec<'_>],
) -> i64 {
    let conn = Connection::connect(&broker.broker.bootstrap(), "consumer-tests-producer")
        .await
        .unwrap();
    let mut batch = BatchBuilder::new(compression);
    for (timestamp, key, value, headers) in records {
        batch.push(*timestamp, *key, *value, headers);
    }
    let data = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
        .with_partition_data(vec![PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(batch.build().unwrap()))]);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![data]);
    let response = conn.send(&request).await.unwrap();
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    p.base_offset
}

/// Produces `count` values `"{prefix}-{i}"` (timestamp `ts`) in one batch.
pub async fn produce_values(
    broker: &TestBroker,
    topic: &str,
    partition: i32,
    prefix: &str,
    count: usize,
    ts: i64,
) -> i64 {
    let values: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    let records: Vec<Rec<'_>> = values
        .iter()
        .map(|v| (ts, None, Some(v.as_bytes()), Vec::new()))
        .collect();
    produce(broker, topic, partition, Compression::None, &records).await
}

/// A consumer of the test broker with `reset` and `extra` settings.
pub async fn consumer(broker: &TestBroker, reset: OffsetReset, extra: &[(&str, &str)]) -> Consumer {
    let mut config = ClientConfig::new()
        .bootstrap(&broker.broker.bootstrap())
        .client_id("consumer-tests")
        .auto_offset_reset(reset)
        .fetch_max_wait(Duration::from_millis(100));
    for (key, value) in extra {
        config = config.with(key, value).unwrap();
    }
    Consumer::new(config).await.unwrap()
}

/// Polls until `count` records arrived (failing after 20 s).
pub async fn poll_n(consumer: &Consumer, count: usize) -> Vec<ConsumerRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut records = Vec::new();
    while records.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "got {} of {count} records",
            records.len()
        );
        records.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(records.len(), count, "more records than expected");
    records
}

/// A record's value as text.
pub fn text(record: &ConsumerRecord) -> String {
    String::from_utf8(record.value.clone().unwrap_or_default().to_vec()).unwrap()
}

/// `(topic, partition)` pairs.
pub fn tps(topic: &str, partitions: impl IntoIterator<Item = i32>) -> Vec<(String, i32)> {
    partitions
        .into_iter()
        .map(|p| (topic.to_owned(), p))
        .collect()
}

/// Bytes from a str.
pub fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}
