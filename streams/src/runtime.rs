//! [`KafkaStreams`]: a topology run against a Kafka cluster.
//!
//! ```text
//!  group consumer (group.id = application.id) ──poll──▶ task of the record's partition
//!       ▲                                                  │ outputs
//!       └── commit positions ◀── every output acknowledged ◀── producer (idempotent)
//! ```
//!
//! One thread runs the instance: its consumer subscribes to the topology's source topics
//! in the application's group, so more instances share the partitions; each assigned
//! partition number gets a task (the topology built for it, with its own state). After
//! each poll's records are processed, their outputs are sent and acknowledged before the
//! consumed positions are committed: at-least-once (a crash between the two replays the
//! records since the last commit). Not yet: state restored from changelogs, standby
//! replicas, exactly-once.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strom_client::config::OffsetReset;
use strom_client::consumer::Consumer;
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use tracing::{info, warn};

use crate::task::{Input, Task};
use crate::topology::Topology;
use crate::StreamsError;

/// How an instance runs: its application id and the client settings.
#[derive(Clone, Debug)]
pub struct StreamsConfig {
    /// `application.id`: the consumer group of every instance of the application.
    pub application_id: String,
    /// Connection and client settings (`bootstrap.servers`, ...).
    pub client: ClientConfig,
    /// How long a poll waits for records.
    pub poll_ms: u64,
}

impl StreamsConfig {
    /// The settings of application `application_id` on the cluster `client` reaches.
    pub fn new(application_id: impl Into<String>, client: ClientConfig) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            client,
            poll_ms: 100,
        }
    }
}

/// A running instance of a topology.
pub struct KafkaStreams {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), StreamsError>>>,
}

impl KafkaStreams {
    /// Starts an instance on a thread of its own.
    ///
    /// # Errors
    /// [`StreamsError::Io`] when the thread or its runtime cannot start; connection and
    /// group errors end the instance and come back from [`KafkaStreams::close`].
    pub fn start(topology: Topology, config: StreamsConfig) -> Result<KafkaStreams, StreamsError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("strom-streams-{}", config.application_id))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(run(&topology, &config, &stopping))
            })?;
        Ok(KafkaStreams {
            stop,
            thread: Some(thread),
        })
    }

    /// Whether the instance stopped on its own (an error, returned by `close`).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the instance: the records in hand are finished and committed, the consumer
    /// leaves the group.
    ///
    /// # Errors
    /// What ended the instance, if it failed.
    pub fn close(mut self) -> Result<(), StreamsError> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(StreamsError::Panicked),
            None => Ok(()),
        }
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The instance's loop: poll, process, send, wait for the acknowledgements, commit.
async fn run(
    topology: &Topology,
    config: &StreamsConfig,
    stop: &AtomicBool,
) -> Result<(), StreamsError> {
    let app = &config.application_id;
    let consumer = Consumer::new(
        config
            .client
            .clone()
            .client_id(format!("{app}-consumer"))
            .group_id(app.clone())
            .enable_auto_commit(false)
            .auto_offset_reset(OffsetReset::Earliest),
    )
    .await?;
    let producer =
        Producer::new(config.client.clone().client_id(format!("{app}-producer"))).await?;
    let topics: Vec<String> = topology.source_topics().into_iter().collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    info!(application = %app, topics = ?topics, "streams instance started");
    let mut tasks: HashMap<i32, Task> = HashMap::new();
    let poll = Duration::from_millis(config.poll_ms);
    while !stop.load(Ordering::Acquire) {
        let records = consumer.poll(poll).await?;
        // Tasks of partitions this instance no longer owns go (their state with them).
        let owned: BTreeSet<i32> = consumer.assignment().into_iter().map(|(_, p)| p).collect();
        tasks.retain(|p, _| owned.contains(p));
        if records.is_empty() {
            continue;
        }
        let mut deliveries = Vec::new();
        for r in records {
            let task = tasks
                .entry(r.partition)
                .or_insert_with(|| Task::new(topology));
            let processed = task.process(Input {
                topic: &r.topic,
                offset: r.offset,
                timestamp: r.timestamp,
                headers: r.headers.clone(),
                key: r.key.as_deref(),
                value: r.value.as_deref(),
            });
            for error in processed.errors {
                warn!(application = %app, %error, "record not processed");
            }
            for out in processed.outputs {
                let record = Record {
                    topic: out.topic,
                    partition: None,
                    key: out.key,
                    value: out.value,
                    headers: out.headers,
                    timestamp: Some(out.timestamp),
                };
                deliveries.push(producer.send(record).await?);
            }
        }
        for delivery in deliveries {
            delivery.await?;
        }
        consumer.commit().await?;
    }
    consumer.shutdown().await?;
    producer.close().await;
    info!(application = %app, "streams instance stopped");
    Ok(())
}
