//! Source offsets in a compacted topic, in Kafka Connect's format: key
//! `["<connector>", {<source partition>}]`, value `{<source offset>}` (JSON without
//! schemas), so a Kafka Connect cluster and Strom read each other's offsets.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use strom_client::admin::{Admin, NewTopic, OffsetSpec};
use strom_client::consumer::Consumer;
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use strom_connect_api::{OffsetMap, OffsetReader};
use tracing::warn;

use crate::RuntimeError;

/// Stored offsets by connector and source partition, and the topic they live in.
#[derive(Clone)]
pub struct OffsetStore {
    topic: String,
    producer: Producer,
    offsets: Arc<RwLock<HashMap<(String, String), OffsetMap>>>,
    /// Follows the topic, for what other workers wrote.
    reader: Arc<tokio::sync::Mutex<Reader>>,
}

struct Reader {
    admin: Admin,
    consumer: Consumer,
}

/// The key of a connector's source partition (`["name",{...}]`).
fn key(connector: &str, partition: &OffsetMap) -> String {
    serde_json::Value::Array(vec![
        serde_json::Value::String(connector.to_owned()),
        serde_json::Value::Object(partition.clone()),
    ])
    .to_string()
}

impl OffsetStore {
    /// Opens `topic` (created compacted with `partitions` if missing) and reads it to
    /// its end.
    ///
    /// # Errors
    /// Client errors.
    pub async fn open(
        client: &ClientConfig,
        topic: &str,
        partitions: i32,
    ) -> Result<OffsetStore, RuntimeError> {
        let admin = Admin::connect(client.clone()).await?;
        if !admin.list_topics(true).await?.iter().any(|t| t == topic) {
            admin
                .create_topic(
                    NewTopic::new(topic)
                        .partitions(partitions)
                        .config("cleanup.policy", "compact"),
                )
                .await?;
        }
        let ends = admin.list_offsets(topic, OffsetSpec::Latest).await?;
        let consumer = Consumer::new(client.clone()).await?;
        let assigned: Vec<(String, i32)> = ends.keys().map(|p| (topic.to_owned(), *p)).collect();
        consumer.assign(&assigned)?;
        consumer.seek_to_beginning(&assigned)?;
        let producer = Producer::new(client.clone().enable_idempotence(true)).await?;
        let store = OffsetStore {
            topic: topic.to_owned(),
            producer,
            offsets: Arc::new(RwLock::new(HashMap::new())),
            reader: Arc::new(tokio::sync::Mutex::new(Reader { admin, consumer })),
        };
        store.catch_up().await?;
        Ok(store)
    }

    /// Reads what was written to the topic since it was last read, up to its end now
    /// (offsets other workers stored, before taking over their tasks).
    ///
    /// # Errors
    /// Client errors.
    pub async fn catch_up(&self) -> Result<(), RuntimeError> {
        let reader = self.reader.lock().await;
        let topic = &self.topic;
        let ends = reader.admin.list_offsets(topic, OffsetSpec::Latest).await?;
        loop {
            let mut done = true;
            for (partition, end) in &ends {
                done &= reader.consumer.position(topic, *partition).await? >= end.offset;
            }
            if done {
                return Ok(());
            }
            for record in reader.consumer.poll(Duration::from_millis(200)).await? {
                self.apply(
                    record.offset,
                    record.key.as_deref(),
                    record.value.as_deref(),
                );
            }
        }
    }

    /// Applies one record of the topic.
    fn apply(&self, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(k) = key else {
            return;
        };
        let Ok(serde_json::Value::Array(parts)) = serde_json::from_slice(k) else {
            warn!(
                offset,
                "offsets topic: a key that is not [connector, partition]"
            );
            return;
        };
        let [serde_json::Value::String(name), serde_json::Value::Object(partition)] =
            parts.as_slice()
        else {
            return;
        };
        let id = (
            name.clone(),
            serde_json::Value::Object(partition.clone()).to_string(),
        );
        let Ok(mut offsets) = self.offsets.write() else {
            return;
        };
        match value.map(serde_json::from_slice) {
            None => {
                offsets.remove(&id);
            }
            Some(Ok(serde_json::Value::Object(offset))) => {
                offsets.insert(id, offset);
            }
            Some(_) => warn!(offset, "offsets topic: a value that is not an object"),
        }
    }

    /// The stored offset of `connector`'s source `partition`.
    pub fn get(&self, connector: &str, partition: &OffsetMap) -> Option<OffsetMap> {
        let id = (
            connector.to_owned(),
            serde_json::Value::Object(partition.clone()).to_string(),
        );
        self.offsets.read().ok()?.get(&id).cloned()
    }

    /// Stores offsets of `connector` and waits until the topic has them.
    ///
    /// # Errors
    /// Client errors (nothing is stored in memory then).
    pub async fn put(
        &self,
        connector: &str,
        offsets: &[(OffsetMap, OffsetMap)],
    ) -> Result<(), RuntimeError> {
        let mut deliveries = Vec::new();
        for (partition, offset) in offsets {
            let record = Record::new(&self.topic)
                .key(key(connector, partition))
                .value(serde_json::Value::Object(offset.clone()).to_string());
            deliveries.push(self.producer.send(record).await?);
        }
        for delivery in deliveries {
            delivery.await?;
        }
        if let Ok(mut stored) = self.offsets.write() {
            for (partition, offset) in offsets {
                let id = (
                    connector.to_owned(),
                    serde_json::Value::Object(partition.clone()).to_string(),
                );
                stored.insert(id, offset.clone());
            }
        }
        Ok(())
    }

    /// A reader of `connector`'s offsets, for its tasks.
    pub fn reader(&self, connector: &str) -> Arc<dyn OffsetReader> {
        Arc::new(ConnectorOffsets {
            store: self.clone(),
            connector: connector.to_owned(),
        })
    }
}

struct ConnectorOffsets {
    store: OffsetStore,
    connector: String,
}

impl OffsetReader for ConnectorOffsets {
    fn offset(&self, partition: &OffsetMap) -> Option<OffsetMap> {
        self.store.get(&self.connector, partition)
    }
}
