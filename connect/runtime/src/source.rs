//! One source task: poll, convert, produce; flush offsets once what was sent is
//! acknowledged.

use std::time::{Duration, Instant};

use strom_client::producer::{DeliveryFuture, Producer, Record};
use strom_connect_api::{
    ConfigMap, ConnectError, Converter, OffsetMap, SourceRecord, SourceTask, SourceTaskContext,
    Transforms,
};
use tokio::sync::watch;
use tracing::warn;

use crate::offsets::OffsetStore;
use crate::worker::{State, TaskHandle};
use crate::RuntimeError;

pub(crate) struct SourceRunner {
    pub(crate) handle: TaskHandle,
    pub(crate) task: Box<dyn SourceTask>,
    pub(crate) producer: Producer,
    pub(crate) key: Box<dyn Converter>,
    pub(crate) value: Box<dyn Converter>,
    pub(crate) offsets: OffsetStore,
    pub(crate) flush_every: Duration,
    /// `errors.tolerance=all`: records that do not convert are skipped (and logged).
    pub(crate) tolerate: bool,
    /// The connector's single message transforms.
    pub(crate) transforms: std::sync::Arc<Transforms>,
}

/// A record sent (or dropped by a transform: no delivery) and not yet flushed, and where
/// it came from.
type Pending = (Option<DeliveryFuture>, OffsetMap, OffsetMap);

impl SourceRunner {
    pub(crate) async fn run(mut self, config: ConfigMap, mut stop: watch::Receiver<bool>) {
        let context = SourceTaskContext {
            offsets: self.offsets.reader(&self.handle.connector),
        };
        if let Err(e) = self.task.start(config, context).await {
            self.handle.set(State::Failed(e.to_string()));
            return;
        }
        self.handle.set(State::Running);
        let mut pending: Vec<Pending> = Vec::new();
        let mut flushed = Instant::now();
        let result = loop {
            if *stop.borrow() {
                break Ok(());
            }
            let polled = tokio::select! {
                polled = self.task.poll() => polled,
                _ = stop.changed() => break Ok(()),
            };
            match polled {
                Ok(records) => {
                    if let Err(e) = self.send(records, &mut pending).await {
                        break Err(e);
                    }
                }
                Err(ConnectError::Retriable(reason)) => {
                    warn!(connector = %self.handle.connector, task = self.handle.id, %reason, "poll failed; polling again");
                }
                Err(e) => break Err(e.into()),
            }
            if flushed.elapsed() >= self.flush_every {
                if let Err(e) = self.flush(&mut pending).await {
                    break Err(e);
                }
                flushed = Instant::now();
            }
        };
        // What was acknowledged keeps its offsets, also when the task failed.
        let last = self.flush(&mut pending).await;
        self.task.stop().await;
        self.handle.ended(result.and(last));
    }

    async fn send(
        &mut self,
        records: Vec<SourceRecord>,
        pending: &mut Vec<Pending>,
    ) -> Result<(), RuntimeError> {
        for mut r in records {
            match self.transforms.apply(&mut r) {
                Ok(true) => {}
                Ok(false) => {
                    pending.push((None, r.source_partition, r.source_offset));
                    continue;
                }
                Err(e) if self.tolerate => {
                    warn!(connector = %self.handle.connector, error = %e, "record skipped (errors.tolerance=all)");
                    pending.push((None, r.source_partition, r.source_offset));
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let converted = self
                .key
                .encode(r.key_schema.as_deref(), &r.key)
                .and_then(|k| Ok((k, self.value.encode(r.value_schema.as_deref(), &r.value)?)));
            let (key, value) = match converted {
                Ok(kv) => kv,
                Err(e) if self.tolerate => {
                    warn!(connector = %self.handle.connector, topic = %r.topic, error = %e, "record skipped (errors.tolerance=all)");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let mut record = Record::new(&r.topic);
            record.partition = r.partition;
            record.key = key.map(Into::into);
            record.value = value.map(Into::into);
            record.timestamp = r.timestamp;
            record.headers = r
                .headers
                .into_iter()
                .map(|(k, v)| (k, v.map(Into::into)))
                .collect();
            let delivery = self.producer.send(record).await?;
            pending.push((Some(delivery), r.source_partition, r.source_offset));
        }
        Ok(())
    }

    /// Waits for every pending record, then stores the last offset of each source
    /// partition among them.
    async fn flush(&mut self, pending: &mut Vec<Pending>) -> Result<(), RuntimeError> {
        let mut latest: Vec<(OffsetMap, OffsetMap)> = Vec::new();
        let mut failed = None;
        for (delivery, partition, offset) in pending.drain(..) {
            if failed.is_some() {
                continue;
            }
            let delivered = match delivery {
                Some(delivery) => delivery.await.map(drop),
                None => Ok(()),
            };
            match delivered {
                Ok(()) => match latest.iter_mut().find(|(p, _)| *p == partition) {
                    Some(entry) => entry.1 = offset,
                    None => latest.push((partition, offset)),
                },
                // Records after a failed one keep their offsets unstored.
                Err(e) => failed = Some(e),
            }
        }
        if !latest.is_empty() {
            self.offsets.put(&self.handle.connector, &latest).await?;
            self.task.commit().await;
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}
