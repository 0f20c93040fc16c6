//! The producer against the embedded broker; records are read back with raw Fetch requests.

mod delivery;
mod quotas;
mod retry;
mod transactions;

use std::time::Duration;

use bytes::Bytes;
use strom_broker::{Broker, BrokerConfig};
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use strom_protocol::connection::Connection;
use strom_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_protocol::kafka_protocol::messages::{FetchRequest, TopicName};
use strom_protocol::kafka_protocol::protocol::StrBytes;
use strom_protocol::records::{batches, decode_batch, BatchHeader, Record as StoredRecord};
use tempfile::TempDir;

/// A broker whose auto-created topics have `partitions` partitions.
pub struct Fixture {
    pub broker: Broker,
    pub _dir: TempDir,
}

impl Fixture {
    pub async fn start(partitions: i32) -> Fixture {
        Fixture::start_with(|c| c.num_partitions = partitions).await
    }

    pub async fn start_with(edit: impl FnOnce(&mut BrokerConfig)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::new(dir.path());
        edit(&mut config);
        let broker = Broker::start(config).await.unwrap();
        Fixture { broker, _dir: dir }
    }

    pub fn config(&self) -> ClientConfig {
        ClientConfig::new()
            .bootstrap(&self.broker.bootstrap())
            .client_id("producer-tests")
    }

    pub async fn producer(&self, config: ClientConfig) -> Producer {
        Producer::new(config).await.unwrap()
    }

    /// Every batch of a partition, with its records, from offset 0.
    pub async fn read(&self, topic: &str, partition: i32) -> Vec<(BatchHeader, Vec<StoredRecord>)> {
        let conn = Connection::connect(&self.broker.bootstrap(), "reader")
            .await
            .unwrap();
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(64 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(64 << 20)])]);
        let response = conn.send_version(&request, 12).await.unwrap();
        let data = &response.responses[0].partitions[0];
        assert_eq!(data.error_code, 0, "fetch {topic}-{partition}: {data:?}");
        let records = data.records.clone().unwrap_or_default();
        batches(&records)
            .map(|item| decode_batch(&records[item.unwrap().1]).unwrap())
            .collect()
    }

    /// Every record's value of a partition, as text.
    pub async fn values(&self, topic: &str, partition: i32) -> Vec<String> {
        self.read(topic, partition)
            .await
            .into_iter()
            .flat_map(|(_, records)| records)
            .map(|r| text(r.value.as_ref()))
            .collect()
    }
}

pub fn text(bytes: Option<&Bytes>) -> String {
    String::from_utf8(bytes.unwrap().to_vec()).unwrap()
}

/// `linger.ms`-sized durations read better in tests.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A record to `topic` with a text value.
/// Sends a record per value and waits for every delivery, in send order.
pub async fn send_all(
    producer: &Producer,
    topic: &str,
    values: impl IntoIterator<Item = String>,
) -> Vec<strom_client::producer::RecordMetadata> {
    let mut deliveries = Vec::new();
    for value in values {
        deliveries.push(producer.send(record(topic, value)).await.unwrap());
    }
    let mut delivered = Vec::new();
    for d in deliveries {
        delivered.push(d.await.unwrap());
    }
    delivered
}

pub fn record(topic: &str, value: impl Into<String>) -> Record {
    Record::new(topic).value(value.into())
}
