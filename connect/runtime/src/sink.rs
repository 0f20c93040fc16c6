//! One sink task: a member of the connector's consumer group; records converted and put;
//! offsets committed after the task flushed what it was given.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strom_client::consumer::{Consumer, ConsumerRecord};
use strom_client::producer::{Producer, Record};
use strom_connect_api::{ConfigMap, ConnectError, Converter, SinkRecord, SinkTask, Transforms};
use tokio::sync::watch;
use tracing::warn;

use crate::worker::{State, TaskHandle};
use crate::RuntimeError;

pub(crate) struct SinkRunner {
    pub(crate) handle: TaskHandle,
    pub(crate) task: Box<dyn SinkTask>,
    pub(crate) consumer: Consumer,
    pub(crate) key: Box<dyn Converter>,
    pub(crate) value: Box<dyn Converter>,
    pub(crate) flush_every: Duration,
    pub(crate) tolerate: bool,
    /// The connector's single message transforms.
    pub(crate) transforms: std::sync::Arc<Transforms>,
    /// `errors.deadletterqueue.topic.name`: where records skipped under
    /// `errors.tolerance=all` go, with `__connect.errors.*` headers when
    /// `errors.deadletterqueue.context.headers.enable` is true.
    pub(crate) dead_letter: Option<DeadLetter>,
}

/// A sink's dead-letter topic.
pub(crate) struct DeadLetter {
    pub(crate) producer: Producer,
    pub(crate) topic: String,
    pub(crate) context_headers: bool,
}

/// Times a put refused as retriable is tried again before the task fails.
const PUT_ATTEMPTS: u32 = 10;

impl SinkRunner {
    pub(crate) async fn run(mut self, config: ConfigMap, mut stop: watch::Receiver<bool>) {
        if let Err(e) = self.task.start(config).await {
            self.handle.set(State::Failed(e.to_string()));
            let _ = self.consumer.shutdown().await;
            return;
        }
        self.handle.set(State::Running);
        // Next offset per partition of what was put and not yet committed.
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let mut flushed = Instant::now();
        let result = loop {
            if *stop.borrow() {
                break Ok(());
            }
            let polled = tokio::select! {
                polled = self.consumer.poll(Duration::from_millis(200)) => polled,
                _ = stop.changed() => break Ok(()),
            };
            let records = match polled {
                Ok(records) => records,
                Err(e) => break Err(e.into()),
            };
            if !records.is_empty() {
                if let Err(e) = self.put(&records).await {
                    break Err(e);
                }
                for r in &records {
                    let n = next.entry((r.topic.clone(), r.partition)).or_insert(0);
                    *n = (*n).max(r.offset + 1);
                }
            }
            if flushed.elapsed() >= self.flush_every {
                if let Err(e) = self.flush(&mut next).await {
                    break Err(e);
                }
                flushed = Instant::now();
            }
        };
        let last = match &result {
            Ok(()) => self.flush(&mut next).await,
            // A failed task commits nothing more: what it was given comes again.
            Err(_) => Ok(()),
        };
        self.task.stop().await;
        if let Err(e) = self.consumer.shutdown().await {
            warn!(connector = %self.handle.connector, error = %e, "leaving the group");
        }
        self.handle.ended(result.and(last));
    }

    /// Converts and puts one poll's records.
    async fn put(&mut self, records: &[ConsumerRecord]) -> Result<(), RuntimeError> {
        let mut converted = Vec::with_capacity(records.len());
        for r in records {
            let decoded = self
                .key
                .decode(r.key.as_deref())
                .and_then(|k| Ok((k, self.value.decode(r.value.as_deref())?)));
            let ((key_schema, key), (value_schema, value)) = match decoded {
                Ok(kv) => kv,
                Err(e) if self.tolerate => {
                    warn!(connector = %self.handle.connector, topic = %r.topic, partition = r.partition, offset = r.offset, error = %e, "record skipped (errors.tolerance=all)");
                    dead_letter(
                        self.dead_letter.as_ref(),
                        &self.handle,
                        r,
                        "VALUE_CONVERTER",
                        &e,
                    )
                    .await?;
                    continue;
                }
                Err(e) => {
                    return Err(ConnectError::Data(format!(
                        "{}-{}@{}: {e}",
                        r.topic, r.partition, r.offset
                    ))
                    .into())
                }
            };
            let mut record = SinkRecord {
                topic: r.topic.clone(),
                partition: r.partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key_schema: key_schema.map(std::sync::Arc::new),
                key,
                value_schema: value_schema.map(std::sync::Arc::new),
                value,
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.to_vec())))
                    .collect(),
            };
            match self.transforms.apply(&mut record) {
                Ok(true) => converted.push(record),
                Ok(false) => {}
                Err(e) if self.tolerate => {
                    warn!(connector = %self.handle.connector, error = %e, "record skipped (errors.tolerance=all)");
                    dead_letter(
                        self.dead_letter.as_ref(),
                        &self.handle,
                        r,
                        "TRANSFORMATION",
                        &e,
                    )
                    .await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut attempt = 0;
        loop {
            match self.task.put(converted.clone()).await {
                Ok(()) => return Ok(()),
                Err(ConnectError::Retriable(reason)) if attempt < PUT_ATTEMPTS => {
                    attempt += 1;
                    warn!(connector = %self.handle.connector, task = self.handle.id, %reason, attempt, "put refused; trying again");
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Has the task flush, then commits what it was given.
    async fn flush(&mut self, next: &mut BTreeMap<(String, i32), i64>) -> Result<(), RuntimeError> {
        if next.is_empty() {
            return Ok(());
        }
        self.task.flush().await?;
        let offsets: Vec<(String, i32, i64)> = std::mem::take(next)
            .into_iter()
            .map(|((t, p), o)| (t, p, o))
            .collect();
        if let Err(e) = self.consumer.commit_offsets(&offsets).await {
            // Refused in a rebalance: the records come again to whoever holds them.
            warn!(connector = %self.handle.connector, error = %e, "offsets not committed");
        }
        Ok(())
    }
}

/// Sends a skipped record, as it was, to the dead-letter topic (if there is one) and
/// waits for it.
async fn dead_letter(
    dlq: Option<&DeadLetter>,
    handle: &TaskHandle,
    r: &ConsumerRecord,
    stage: &str,
    error: &ConnectError,
) -> Result<(), RuntimeError> {
    let Some(dlq) = dlq else {
        return Ok(());
    };
    let mut record = Record::new(&dlq.topic);
    record.key = r.key.clone();
    record.value = r.value.clone();
    record.headers = r.headers.clone();
    record.timestamp = Some(r.timestamp);
    if dlq.context_headers {
        let context = [
            ("__connect.errors.topic", r.topic.clone()),
            ("__connect.errors.partition", r.partition.to_string()),
            ("__connect.errors.offset", r.offset.to_string()),
            ("__connect.errors.connector.name", handle.connector.clone()),
            ("__connect.errors.task.id", handle.id.to_string()),
            ("__connect.errors.stage", stage.to_owned()),
            ("__connect.errors.exception.message", error.to_string()),
        ];
        for (name, value) in context {
            record = record.header(name, value);
        }
    }
    dlq.producer.send(record).await?.await?;
    Ok(())
}
