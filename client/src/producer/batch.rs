//! One partition's batch of records on its way to the leader: the records encoded so far,
//! each record's delivery slot, and the `buffer.memory` bytes they hold.
//!
//! A batch is *open* while it takes records, *closed* once full or lingered, and *built*
//! when first drained for sending: the encoded bytes (with the producer id, epoch and base
//! sequence fixed then) are kept, so a retry resends exactly the same batch and the broker
//! can recognise a duplicate.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use strom_protocol::records::{set_producer_sequence, BatchBuilder, Compression};
use strom_protocol::ProtocolError;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::record::{DeliveryResult, Record, RecordMetadata};
use crate::error::ClientError;

/// The idempotent producer's identity, stamped into every batch it builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProducerIdentity {
    /// The producer id from InitProducerId.
    pub(crate) id: i64,
    /// Its epoch.
    pub(crate) epoch: i16,
    /// Whether its batches belong to transactions (`transactional.id`).
    pub(crate) transactional: bool,
}

/// Which batch, for the accumulator's bookkeeping once the batch itself is consumed.
#[derive(Clone, Debug)]
pub(crate) struct BatchKey {
    pub(crate) id: u64,
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) base_sequence: Option<i32>,
    pub(crate) epoch_bump: i16,
}

/// One record's delivery slot: where to send its outcome, and its timestamp.
struct Delivery {
    sender: oneshot::Sender<DeliveryResult>,
    timestamp: i64,
}

/// A batch of records for one partition.
pub(crate) struct ProducerBatch {
    /// Increasing with creation; `flush` waits for every batch below a mark.
    pub(crate) id: u64,
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    /// The encoder while the batch is open; `None` once built.
    builder: Option<BatchBuilder>,
    /// The encoded batch, from the first time it is sent.
    built: Option<Bytes>,
    /// Base sequence, with idempotence: assigned by the accumulator when the batch is first
    /// drained (again if an earlier batch's failure freed its numbers), stamped at build
    /// time.
    pub(crate) base_sequence: Option<i32>,
    /// Added to the producer's epoch for this batch: its partition's numbering restarted
    /// at 0 under a bumped epoch this many times (after a batch's fate was left unknown).
    pub(crate) epoch_bump: i16,
    /// The epoch and base sequence stamped in `built`.
    stamped: Option<(i16, i32)>,
    deliveries: Vec<Delivery>,
    /// The `buffer.memory` bytes its records hold, released when the batch completes.
    memory: Option<OwnedSemaphorePermit>,
    pub(crate) created: Instant,
    /// No more records once closed.
    pub(crate) closed: bool,
    /// Sends so far.
    pub(crate) attempts: u32,
    /// Not before this, after a retriable failure.
    pub(crate) retry_at: Option<Instant>,
    /// Whether it was last sent while an earlier batch of its partition was out.
    pub(crate) sent_behind: bool,
}

impl ProducerBatch {
    /// An empty batch with room for `capacity` bytes of encoded batch (what the accumulator
    /// expects it to hold), so that its records are encoded without moving.
    pub(crate) fn new(
        id: u64,
        topic: Arc<str>,
        partition: i32,
        codec: Compression,
        capacity: usize,
    ) -> Self {
        ProducerBatch {
            id,
            topic,
            partition,
            builder: Some(BatchBuilder::with_capacity(codec, capacity)),
            built: None,
            base_sequence: None,
            epoch_bump: 0,
            stamped: None,
            deliveries: Vec::new(),
            memory: None,
            created: Instant::now(),
            closed: false,
            attempts: 0,
            retry_at: None,
            sent_behind: false,
        }
    }

    /// Which batch this is.
    pub(crate) fn key(&self) -> BatchKey {
        BatchKey {
            id: self.id,
            topic: self.topic.clone(),
            partition: self.partition,
            base_sequence: self.base_sequence,
            epoch_bump: self.epoch_bump,
        }
    }

    /// Size so far, uncompressed (an upper estimate once compressed).
    pub(crate) fn estimated_size(&self) -> usize {
        match (&self.builder, &self.built) {
            (Some(builder), _) => builder.estimated_size(),
            (None, Some(built)) => built.len(),
            (None, None) => 0,
        }
    }

    /// Bytes the open batch has room for before its buffer grows.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.builder.as_ref().map_or(0, BatchBuilder::capacity)
    }

    pub(crate) fn record_count(&self) -> usize {
        self.deliveries.len()
    }

    /// Whether `size` more bytes fit under `batch_size`; an empty batch takes anything, so
    /// a record larger than `batch.size` gets a batch of its own.
    pub(crate) fn has_room(&self, size: usize, batch_size: usize) -> bool {
        !self.closed
            && self.builder.is_some()
            && (self.deliveries.is_empty() || self.estimated_size() + size <= batch_size)
    }

    /// Encodes `record` into the batch and keeps its delivery slot and memory.
    pub(crate) fn push(
        &mut self,
        record: &Record,
        timestamp: i64,
        sender: oneshot::Sender<DeliveryResult>,
        memory: OwnedSemaphorePermit,
    ) {
        if let Some(builder) = self.builder.as_mut() {
            let headers: Vec<(&str, Option<&[u8]>)> = record
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect();
            let (key, value) = (record.key.as_deref(), record.value.as_deref());
            builder.push(timestamp, key, value, &headers);
        }
        self.deliveries.push(Delivery { sender, timestamp });
        match self.memory.as_mut() {
            Some(held) => held.merge(memory),
            None => self.memory = Some(memory),
        }
    }

    /// The encoded batch: built (compressed, stamped with `producer`, its epoch bumped by
    /// `epoch_bump`, and the base sequence the accumulator assigned) the first time, the
    /// same bytes on every retry unless the batch was given new sequence numbers since
    /// (then restamped).
    pub(crate) fn build(
        &mut self,
        producer: Option<ProducerIdentity>,
    ) -> Result<Bytes, ClientError> {
        let sequence = self.base_sequence.unwrap_or(0);
        let producer = match producer {
            Some(p) => Some(ProducerIdentity {
                transactional: p.transactional,
                id: p.id,
                epoch: p.epoch.checked_add(self.epoch_bump).ok_or_else(|| {
                    ClientError::InvalidState {
                        operation: "produce".to_owned(),
                        state: format!(
                            "the producer epoch of {}-{} is exhausted; start a new producer",
                            self.topic, self.partition
                        ),
                    }
                })?,
            }),
            None => None,
        };
        if let Some(built) = &mut self.built {
            if let Some(p) = producer.filter(|p| self.stamped != Some((p.epoch, sequence))) {
                let mut restamped = BytesMut::from(&built[..]);
                set_producer_sequence(&mut restamped, p.epoch, sequence)
                    .map_err(ProtocolError::from)?;
                *built = restamped.freeze();
                self.stamped = Some((p.epoch, sequence));
            }
            return Ok(built.clone());
        }
        let Some(builder) = self.builder.take() else {
            return Err(ProtocolError::ConnectionClosed.into());
        };
        let builder = match producer {
            Some(p) => {
                self.stamped = Some((p.epoch, sequence));
                builder
                    .producer(p.id, p.epoch, sequence)
                    .transactional(p.transactional)
            }
            None => builder,
        };
        let built = builder.build().map_err(ProtocolError::from)?;
        self.built = Some(built.clone());
        self.closed = true;
        Ok(built)
    }

    /// Completes every record: offsets from `base_offset` (-1 stays -1, for `acks=0`),
    /// timestamps the broker's `log_append_time` when it set one, else the records' own.
    pub(crate) fn complete(self, base_offset: i64, log_append_time: i64) {
        let topic = self.topic.to_string();
        for (index, delivery) in (0i64..).zip(self.deliveries) {
            let offset = if base_offset < 0 {
                -1
            } else {
                base_offset + index
            };
            let timestamp = if log_append_time == -1 {
                delivery.timestamp
            } else {
                log_append_time
            };
            let metadata = RecordMetadata {
                topic: topic.clone(),
                partition: self.partition,
                offset,
                timestamp,
            };
            // The caller may have dropped its future; nothing to tell then.
            let _ = delivery.sender.send(Ok(metadata));
        }
    }

    /// Fails every record with an error made by `error`.
    pub(crate) fn fail(self, error: impl Fn() -> ClientError) {
        for delivery in self.deliveries {
            let _ = delivery.sender.send(Err(error()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::producer::record::DeliveryFuture;

    fn batch_with(values: &[&'static str], memory: &Arc<Semaphore>) -> Vec<DeliveryFuture> {
        let mut batch = ProducerBatch::new(0, Arc::from("t"), 2, Compression::None, 1024);
        let mut futures = Vec::new();
        for v in values {
            let (tx, fut) = DeliveryFuture::channel();
            let permit = memory.clone().try_acquire_many_owned(10).unwrap();
            batch.push(&Record::new("t").value(*v), 7, tx, permit);
            futures.push(fut);
        }
        let identity = ProducerIdentity {
            id: 9,
            epoch: 1,
            transactional: false,
        };
        batch.base_sequence = Some(5);
        let bytes = batch.build(Some(identity)).unwrap();
        assert_eq!(batch.build(Some(identity)).unwrap(), bytes);
        let (header, _) = strom_protocol::records::decode_batch(&bytes).unwrap();
        assert_eq!((header.producer_id, header.base_sequence), (9, 5));
        // New sequence numbers: the same records, restamped.
        batch.base_sequence = Some(99);
        let restamped = batch.build(Some(identity)).unwrap();
        let (header, records) = strom_protocol::records::decode_batch(&restamped).unwrap();
        assert_eq!((header.producer_id, header.base_sequence), (9, 99));
        assert_eq!(records.len(), values.len());
        // A bumped epoch: numbered from 0 again.
        batch.epoch_bump = 1;
        batch.base_sequence = Some(0);
        let bumped = batch.build(Some(identity)).unwrap();
        let (header, _) = strom_protocol::records::decode_batch(&bumped).unwrap();
        let stamp = (
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
        );
        assert_eq!(stamp, (9, 2, 0));
        batch.complete(100, -1);
        futures
    }

    #[tokio::test]
    async fn completes_with_offsets_and_releases_memory() {
        let memory = Arc::new(Semaphore::new(100));
        let futures = batch_with(&["a", "b"], &memory);
        assert_eq!(memory.available_permits(), 100);
        let mut offsets = Vec::new();
        for f in futures {
            let m = f.await.unwrap();
            assert_eq!((m.partition, m.timestamp), (2, 7));
            offsets.push(m.offset);
        }
        assert_eq!(offsets, [100, 101]);
    }
}
