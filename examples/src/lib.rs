//! What the example programs share: a cluster to run on (an embedded broker unless an
//! address is given), writing their input and reading their output.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::consumer::Consumer;
use strom_client::consumer::ConsumerRecord;
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;

/// The cluster an example runs on: the address given as its first argument, or an
/// embedded broker in a temporary directory.
pub struct Cluster {
    /// The client settings reaching it.
    pub config: ClientConfig,
    broker: Option<Broker>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Connects to the cluster named by the program's first argument, or starts one.
    ///
    /// # Errors
    /// When the embedded broker cannot start.
    pub async fn from_args() -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let (bootstrap, broker) = match std::env::args().nth(1) {
            Some(bootstrap) => (bootstrap, None),
            None => {
                let mut config = BrokerConfig::new(dir.path());
                config.group_initial_rebalance_delay = Duration::ZERO;
                let broker = Broker::start(config).await?;
                (broker.bootstrap(), Some(broker))
            }
        };
        Ok(Cluster {
            config: ClientConfig::new().bootstrap(&bootstrap),
            broker,
            _dir: dir,
        })
    }

    /// Creates `topics` with one partition each (kept if they exist).
    ///
    /// # Errors
    /// When the cluster cannot be reached.
    pub async fn create_topics(&self, topics: &[&str]) -> anyhow::Result<()> {
        let admin = Admin::connect(self.config.clone()).await?;
        for topic in topics {
            // Already there when run again against the same cluster.
            let _ = admin
                .create_topic(NewTopic::new(*topic).partitions(1))
                .await;
        }
        Ok(())
    }

    /// Writes `records` (key, value, timestamp) to `topic`, each acknowledged.
    ///
    /// # Errors
    /// When a record is refused.
    pub async fn write(&self, topic: &str, records: &[(&str, &str, i64)]) -> anyhow::Result<()> {
        let producer = Producer::new(self.config.clone()).await?;
        for (key, value, timestamp) in records {
            let record = Record::new(topic)
                .key(key.to_string())
                .value(value.to_string())
                .timestamp(*timestamp);
            producer.send(record).await?.await?;
        }
        producer.close().await;
        Ok(())
    }

    /// Reads `topic` from its start until `count` records arrived or 30 s passed.
    ///
    /// # Errors
    /// When the cluster cannot be reached.
    pub async fn read(&self, topic: &str, count: usize) -> anyhow::Result<Vec<ConsumerRecord>> {
        let consumer = Consumer::new(self.config.clone()).await?;
        let all = [(topic.to_owned(), 0)];
        consumer.assign(&all)?;
        consumer.seek_to_beginning(&all)?;
        let mut records = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while records.len() < count && Instant::now() < deadline {
            records.extend(consumer.poll(Duration::from_millis(200)).await?);
        }
        consumer.shutdown().await?;
        Ok(records)
    }

    /// Stops the embedded broker, if any.
    ///
    /// # Errors
    /// When it does not stop cleanly.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(broker) = self.broker {
            broker.shutdown().await?;
        }
        Ok(())
    }
}

/// A record's key or value as text.
pub fn text(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(
        || "null".to_owned(),
        |b| String::from_utf8_lossy(b).into_owned(),
    )
}
