//! Global tables in an instance: a consumer of every partition of each global topic,
//! read to its end before processing starts, then polled between the group consumer's
//! polls; its records go straight into the global stores all tasks share.

use std::collections::BTreeMap;
use std::time::Duration;

use strom_client::admin::{Admin, OffsetSpec};
use strom_client::consumer::Consumer;
use strom_client::ClientConfig;
use tracing::info;

use crate::state::{global_store, SharedStore};
use crate::topology::Topology;
use crate::StreamsError;

/// The instance's global stores and the consumer that fills them.
#[derive(Default)]
pub(crate) struct Globals {
    /// By store name, as tasks look them up.
    pub(crate) stores: BTreeMap<String, SharedStore>,
    /// By topic, as records arrive.
    by_topic: BTreeMap<String, SharedStore>,
    consumer: Option<Consumer>,
}

impl Globals {
    /// Creates the global stores and reads their topics to the end.
    ///
    /// # Errors
    /// Client errors (a global topic that does not exist among them), store failures.
    pub(crate) async fn bootstrap(
        topology: &Topology,
        admin: &Admin,
        config: ClientConfig,
    ) -> Result<Globals, StreamsError> {
        let mut globals = Globals::default();
        if topology.global_topics().is_empty() {
            return Ok(globals);
        }
        let consumer = Consumer::new(config).await?;
        let mut assigned = Vec::new();
        let mut ends = BTreeMap::new();
        for (topic, store_name) in topology.global_topics() {
            let store = global_store(store_name);
            globals.stores.insert(store_name.clone(), store.clone());
            globals.by_topic.insert(topic.clone(), store);
            for (partition, end) in admin.list_offsets(topic, OffsetSpec::Latest).await? {
                assigned.push((topic.clone(), partition));
                ends.insert((topic.clone(), partition), end.offset);
            }
        }
        consumer.assign(&assigned)?;
        consumer.seek_to_beginning(&assigned)?;
        globals.consumer = Some(consumer);
        loop {
            let mut behind = false;
            for ((topic, partition), end) in &ends {
                if let Some(consumer) = &globals.consumer {
                    behind |= consumer.position(topic, *partition).await? < *end;
                }
            }
            if !behind {
                break;
            }
            globals.poll(Duration::from_millis(100)).await?;
        }
        info!(topics = ?topology.global_topics().keys().collect::<Vec<_>>(), "global tables loaded");
        Ok(globals)
    }

    /// Applies what arrived on the global topics, waiting at most `timeout`.
    ///
    /// # Errors
    /// Client errors, store failures.
    pub(crate) async fn poll(&self, timeout: Duration) -> Result<(), StreamsError> {
        let Some(consumer) = &self.consumer else {
            return Ok(());
        };
        for record in consumer.poll(timeout).await? {
            let (Some(store), Some(key)) = (self.by_topic.get(&record.topic), record.key) else {
                continue;
            };
            store
                .borrow_mut()
                .restore(key, record.value, record.timestamp)?;
        }
        Ok(())
    }
}
