//! Broker tests over real sockets, with Strom's own protocol connection as the client.
//! Third-party clients are driven from `integration-tests/`.
#![allow(clippy::unwrap_used, missing_docs)]

mod apis;
mod bad_input;
mod groups;
mod maintenance;
mod produce_fetch;
mod quorum;
mod transactions;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, ListOffsetsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_broker::{Broker, BrokerConfig};
use strom_protocol::connection::Connection;
use tempfile::TempDir;
use uuid::Uuid;

/// A broker on a free port in a temporary folder.
pub struct TestBroker {
    pub broker: Broker,
    pub dir: TempDir,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::new(dir.path());
        configure(&mut config);
        let broker = Broker::start(config).await.unwrap();
        TestBroker { broker, dir }
    }

    /// Stops the broker cleanly and starts a new one on the same data dir.
    pub async fn restart(self) -> TestBroker {
        let TestBroker { broker, dir } = self;
        broker.shutdown().await.unwrap();
        let broker = Broker::start(BrokerConfig::new(dir.path())).await.unwrap();
        TestBroker { broker, dir }
    }

    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.broker.bootstrap(), "broker-tests")
            .await
            .unwrap()
    }
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

pub fn name(topic: &str) -> TopicName {
    TopicName(s(topic))
}

/// Creates a topic and returns its id; any error fails the test.
pub async fn create_topic(conn: &Connection, topic: &str, partitions: i32) -> Uuid {
    let r = conn
        .send(
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1)]),
        )
        .await
        .unwrap();
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0]);
    r.topics[0].topic_id
}

/// A Produce request (acks=all) of one payload to one partition.
pub fn produce_request(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    let data = TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(records))]);
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![data])
}

/// Produces one payload: (error code, base offset).
pub async fn produce(conn: &Connection, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let r = conn
        .send(&produce_request(topic, partition, records))
        .await
        .unwrap();
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// ListOffsets for one partition: (error code, offset, timestamp).
pub async fn list_offset(
    conn: &Connection,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> (i16, i64, i64) {
    let r = conn
        .send(
            &ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)])]),
        )
        .await
        .unwrap();
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}
