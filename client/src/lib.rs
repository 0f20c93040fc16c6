//! `strom-client`: an async Kafka client for Rust services. Pure Rust on tokio; works
//! against any Kafka-compatible cluster.
//!
//! - [`config`]: [`ClientConfig`], Kafka's key names (and librdkafka's aliases) or typed
//!   builders, checked with the Java client's rules.
//! - [`cluster`]: bootstrap, the metadata cache, one connection per broker.
//! - [`producer`]: batching per partition, linger, compression, `buffer.memory`
//!   backpressure, the Java client's partitioner, idempotence and retries.
//! - [`consumer`]: assigned partitions, seeks, pause/resume, pipelined fetches from each
//!   leader (consumer groups come next).
//! - [`admin`]: topics, partitions, configs, offsets, records, cluster.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let broker = strom_broker::Broker::start(strom_broker::BrokerConfig::new(dir.path())).await?;
//! # let bootstrap = broker.bootstrap();
//! use std::time::Duration;
//! use strom_client::admin::{Admin, NewTopic};
//! use strom_client::producer::{Producer, Record};
//! use strom_client::{ClientConfig, Consumer};
//!
//! let config = ClientConfig::new().bootstrap(&bootstrap);
//! Admin::connect(config.clone()).await?.create_topic(NewTopic::new("greetings").partitions(1)).await?;
//! let producer = Producer::new(config.clone()).await?;
//! producer.send(Record::new("greetings").key("k").value("hello")).await?.await?;
//! let consumer = Consumer::new(config).await?;
//! consumer.assign(&[("greetings".to_owned(), 0)])?;
//! consumer.seek_to_beginning(&[])?;
//! let records = consumer.poll(Duration::from_secs(5)).await?;
//! assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
//! # Ok(()) }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod cluster;
pub mod config;
pub mod consumer;
pub mod error;
pub mod producer;

pub use cluster::Cluster;
pub use config::ClientConfig;
pub use consumer::Consumer;
pub use error::ClientError;
