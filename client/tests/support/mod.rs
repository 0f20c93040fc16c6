//! Shared setup: an embedded broker in a temporary folder, and a raw connection to produce
//! with until the producer exists.

use std::time::{SystemTime, UNIX_EPOCH};

use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::Admin;
use strom_client::ClientConfig;
use strom_protocol::connection::Connection;
use strom_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use strom_protocol::kafka_protocol::messages::{ProduceRequest, TopicName};
use strom_protocol::kafka_protocol::protocol::StrBytes;
use strom_protocol::records::{BatchBuilder, Compression};
use tempfile::TempDir;

/// A running broker; dropped with its folder at the end of the test.
pub struct TestBroker {
    pub broker: Broker,
    pub dir: TempDir,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        TestBroker::start_with(|_| {}).await
    }

    /// A broker with settings changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::new(dir.path());
        configure(&mut config);
        let broker = Broker::start(config).await.unwrap();
        TestBroker { broker, dir }
    }

    pub fn config(&self) -> ClientConfig {
        ClientConfig::new()
            .bootstrap(&self.broker.bootstrap())
            .client_id("admin-tests")
    }

    pub async fn admin(&self) -> Admin {
        Admin::connect(self.config()).await.unwrap()
    }

    /// Produces one batch of `values` to `topic`-`partition`, the i-th record stamped
    /// `timestamps[i]`; returns the base offset.
    pub async fn produce(&self, topic: &str, partition: i32, timestamps: &[i64]) -> i64 {
        let conn = Connection::connect(&self.broker.bootstrap(), "admin-tests-producer")
            .await
            .unwrap();
        let mut batch = BatchBuilder::new(Compression::None);
        for (i, &timestamp) in timestamps.iter().enumerate() {
            batch.push(timestamp, None, Some(format!("record {i}").as_bytes()), &[]);
        }
        let data = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch.build().unwrap()))]);
        let response = conn
            .send(
                &ProduceRequest::default()
                    .with_acks(-1)
                    .with_timeout_ms(5000)
                    .with_topic_data(vec![data]),
            )
            .await
            .unwrap();
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{p:?}");
        p.base_offset
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
