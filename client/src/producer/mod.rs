//! The producer: batches records per partition and sends them to the partitions' leaders.
//!
//! ```text
//!  send(record) ──partitioner──▶ buffer.memory ──append──▶ Accumulator ──drain──▶ sink task
//!    │ size check,   (metadata)   (waits ≤ max.block.ms)    per-partition         one ProduceRequest
//!    │ returns a DeliveryFuture                              batch queues          per leader broker
//!    ▼                                                           ▲                     │
//!  DeliveryFuture ◀──────── offsets / errors ─────────────────── └── retriable: back ◀─┘
//!                                                                    to the front
//! ```
//!
//! [`Producer::send`] checks the record's size against `max.request.size`, picks its
//! partition (the record's own, or the configured partitioner's over the topic's partition
//! count), reserves its bytes from `buffer.memory` — waiting up to `max.block.ms` for
//! earlier records to be sent, which is the producer's backpressure — and appends it to the
//! partition's open batch. A batch is sent when it is full (`batch.size`), when it is
//! `linger.ms` old, or when [`Producer::flush`] or [`Producer::close`] asks.
//!
//! Ready batches are drained and sent as one ProduceRequest per leader broker holding at
//! most one batch per partition: by the task that made them ready where it can (a `send`
//! that fills a batch or starts one with `linger.ms=0`, a response that frees a
//! partition), otherwise by one background task, the sink, which also times `linger.ms`
//! and retries. Each partition has at most one
//! batch out at a time: this keeps its records in order across retries and makes
//! idempotent retries safe, while different partitions on one broker proceed in parallel,
//! up to `max.in.flight.requests.per.connection` requests per broker. Retriable errors (a
//! moved leader, a timeout, a lost connection) refresh the topic's metadata and resend the
//! same batch bytes after `retry.backoff.ms` (doubling up to `retry.backoff.max.ms`),
//! until `delivery.timeout.ms` after the batch was created.
//!
//! With idempotence (the default with `acks=all`), the producer asks for a producer id
//! (InitProducerId) when it starts and numbers each partition's records; a retried batch
//! the broker already has is answered as a duplicate with its first offsets, so retries do
//! not duplicate records. A batch whose fate is left unknown (a sequence error
//! `OUT_OF_ORDER_SEQUENCE_NUMBER` or `UNKNOWN_PRODUCER_ID` that no earlier batch explains,
//! or a delivery timeout after it was sent) fails, and its partition's later batches are
//! numbered from 0 again under the producer epoch plus one, so they are still written (the
//! Java client's epoch bump, done per partition without asking the broker).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let broker = strom_broker::Broker::start(strom_broker::BrokerConfig::new(dir.path())).await?;
//! # let bootstrap = broker.bootstrap();
//! use std::time::Duration;
//! use strom_client::producer::{Producer, Record};
//! use strom_client::ClientConfig;
//!
//! let config = ClientConfig::new()
//!     .bootstrap(&bootstrap)
//!     .linger(Duration::from_millis(10));
//! let producer = Producer::new(config).await?;
//! let delivery = producer
//!     .send(Record::new("orders").key("customer-7").value("{\"total\": 12}"))
//!     .await?;
//! let metadata = delivery.await?;
//! assert_eq!((metadata.topic.as_str(), metadata.offset), ("orders", 0));
//! producer.close().await;
//! # Ok(()) }
//! ```

mod accumulator;
mod batch;
mod idempotence;
pub mod partitioner;
mod produce;
mod record;
mod sink;
mod topics;
mod transaction;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use record::{DeliveryFuture, Record, RecordMetadata};

use self::accumulator::{Accumulator, AccumulatorConfig};
use self::batch::ProducerIdentity;
use self::partitioner::{partitioner_for, DefaultPartitioner, Partitioner};
use self::record::BATCH_OVERHEAD;
use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::ClientError;

/// An asynchronous Kafka producer. Cheap to clone; clones share one buffer and one
/// background task.
///
/// Dropping the last clone without [`Producer::close`] still sends what is buffered, in the
/// background.
#[derive(Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

/// Owned by the clones of one producer; closes the producer when the last one goes.
struct Handle {
    shared: Arc<Shared>,
    sink: Mutex<Option<JoinHandle<()>>>,
}

/// What `send` and the sink task share.
struct Shared {
    cluster: Cluster,
    accumulator: Mutex<Accumulator>,
    /// `buffer.memory`, one permit per byte.
    memory: Arc<Semaphore>,
    /// Wakes the sink: a new or full batch, a flush, a finished request, close.
    wake: Notify,
    /// A batch completed; `flush` re-checks.
    completed: Notify,
    partitioner: Box<dyn Partitioner>,
    /// Producer id and epoch, with idempotence (a transactional producer's moves on to a
    /// new epoch after an abort).
    identity: Mutex<Option<ProducerIdentity>>,
    /// With `transactional.id`: the transactions' state and coordinator.
    transactions: Option<transaction::Transactions>,
    /// Per broker, `max.in.flight.requests.per.connection` permits.
    slots: Mutex<HashMap<i32, Arc<Semaphore>>>,
    /// Held while draining and starting requests: one drainer at a time.
    draining: Mutex<()>,
    closed: AtomicBool,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("cluster", &self.handle.shared.cluster)
            .field("identity", &self.handle.shared.identity())
            .finish()
    }
}

impl Producer {
    /// Connects to the cluster and starts the producer's background task; with idempotence
    /// on, first obtains a producer id.
    ///
    /// # Errors
    /// Configuration errors, an unreachable cluster, or a failed InitProducerId.
    pub async fn new(config: ClientConfig) -> Result<Producer, ClientError> {
        Producer::with_cluster(Cluster::connect(config).await?).await
    }

    /// A producer on an existing [`Cluster`] handle, using its configuration.
    ///
    /// # Errors
    /// As [`Producer::new`], past connecting.
    pub async fn with_cluster(cluster: Cluster) -> Result<Producer, ClientError> {
        let config = cluster.config();
        let partitioner =
            partitioner_for(config.partitioner.name()).unwrap_or_else(default_partitioner);
        Producer::with_partitioner(cluster, partitioner).await
    }

    /// A producer choosing partitions with `partitioner` instead of the configured one.
    ///
    /// # Errors
    /// As [`Producer::with_cluster`].
    pub async fn with_partitioner(
        cluster: Cluster,
        partitioner: Box<dyn Partitioner>,
    ) -> Result<Producer, ClientError> {
        let config = cluster.config().clone();
        // The cluster read the TLS files already.
        config.validate_settings()?;
        let transactions = config
            .transactional_id
            .clone()
            .map(|id| transaction::Transactions::new(cluster.clone(), id));
        let identity = match &transactions {
            Some(transactions) => Some(transactions.init(None).await?),
            None if config.idempotence_enabled() => {
                Some(idempotence::init_producer_id(&cluster).await?)
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            accumulator: Mutex::new(Accumulator::new(accumulator_config(&config))),
            memory: Arc::new(Semaphore::new(
                config.buffer_memory.min(Semaphore::MAX_PERMITS),
            )),
            wake: Notify::new(),
            completed: Notify::new(),
            partitioner,
            identity: Mutex::new(identity),
            transactions,
            slots: Mutex::new(HashMap::new()),
            draining: Mutex::new(()),
            closed: AtomicBool::new(false),
            cluster,
        });
        let span = tracing::info_span!("producer", client_id = %config.client_id);
        let sink = tokio::spawn(sink::run(shared.clone()).instrument(span));
        let handle = Handle {
            shared,
            sink: Mutex::new(Some(sink)),
        };
        Ok(Producer {
            handle: Arc::new(handle),
        })
    }

    /// Buffers `record` for sending and returns a future of its outcome.
    ///
    /// Waits, at most `max.block.ms`, for the topic's metadata (asking the cluster to create
    /// a missing topic, as the Java client's `allow.auto.create.topics`) and for room in
    /// `buffer.memory`.
    ///
    /// # Errors
    /// [`ClientError::RecordTooLarge`] over `max.request.size` or `buffer.memory`;
    /// [`ClientError::Timeout`] when the topic's metadata does not arrive in time;
    /// [`ClientError::UnknownTopicOrPartition`] for a partition the topic does not have;
    /// [`ClientError::BufferFull`] when no room frees in time; [`ClientError::Closed`]
    /// after [`Producer::close`].
    pub async fn send(&self, record: Record) -> Result<DeliveryFuture, ClientError> {
        let shared = &self.handle.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(ClientError::Closed);
        }
        let size = record.size_upper_bound();
        check_size(shared.cluster.config(), size)?;
        let deadline = Instant::now() + Duration::from_millis(shared.cluster.config().max_block_ms);
        let record_size = size.saturating_sub(BATCH_OVERHEAD);
        let partition = topics::partition_for(shared, &record, record_size, deadline).await?;
        if let Some(transactions) = &shared.transactions {
            let identity = shared.identity().ok_or(ClientError::Closed)?;
            transactions
                .add_partition(identity, &record.topic, partition)
                .await?;
        }
        let memory = shared.reserve(size, deadline).await?;
        shared.append(record, partition, size, memory)
    }

    /// Sends every buffered record now, whatever its linger, and waits until every record
    /// sent before this call has completed (successfully or not).
    pub async fn flush(&self) {
        let shared = &self.handle.shared;
        let mark = shared.lock().begin_flush();
        shared.wake.notify_one();
        loop {
            let completed = shared.completed.notified();
            tokio::pin!(completed);
            completed.as_mut().enable();
            if shared.lock().flushed(mark) {
                return;
            }
            completed.await;
        }
    }

    /// Opens a transaction (a producer with `transactional.id`; [`Producer::new`] has
    /// initialised its transactions, as Java's `initTransactions`). Records sent from now
    /// until [`Producer::commit_transaction`] or [`Producer::abort_transaction`] belong to it.
    ///
    /// # Errors
    /// [`ClientError::InvalidState`] without `transactional.id` or with a transaction open;
    /// [`ClientError::ProducerFenced`] once a newer producer took the id.
    pub fn begin_transaction(&self) -> Result<(), ClientError> {
        self.transactions("begin a transaction")?.begin()
    }

    /// Commits `offsets` (topic, partition, next offset to consume) of a consumer group
    /// with the open transaction: consume-transform-produce exactly once. `group` comes
    /// from [`Consumer::group_metadata`](crate::consumer::Consumer::group_metadata), so a
    /// consumer that lost its partitions in a rebalance cannot commit (KIP-447).
    ///
    /// # Errors
    /// As [`Producer::begin_transaction`], or the coordinators' refusal (for instance
    /// ILLEGAL_GENERATION, or a timeout past `max.block.ms`).
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[(String, i32, i64)],
        group: &crate::consumer::ConsumerGroupMetadata,
    ) -> Result<(), ClientError> {
        let transactions = self.transactions("send offsets to a transaction")?;
        let identity = self.handle.shared.identity().ok_or(ClientError::Closed)?;
        transactions.send_offsets(identity, offsets, group).await
    }

    /// Sends what the transaction still buffers, waits for it, then commits the
    /// transaction: its records become visible to `read_committed` consumers, its offsets
    /// count.
    ///
    /// # Errors
    /// [`ClientError::InvalidState`] when a record of the transaction failed (abort it
    /// then) or none is open; [`ClientError::ProducerFenced`]; the coordinator's refusal.
    pub async fn commit_transaction(&self) -> Result<(), ClientError> {
        let transactions = self.transactions("commit a transaction")?;
        transactions.check_committable()?;
        self.flush().await;
        transactions.check_committable()?;
        let identity = self.handle.shared.identity().ok_or(ClientError::Closed)?;
        transactions.end(identity, true).await.map(|_| ())
    }

    /// Waits for what the transaction sent, then aborts it: `read_committed` consumers
    /// never see its records, its offsets do not count. When some of its records failed
    /// with their fate unknown, the producer moves to a new epoch (its sequence numbers
    /// start afresh) before the next transaction.
    ///
    /// # Errors
    /// As [`Producer::begin_transaction`], or the coordinator's refusal.
    pub async fn abort_transaction(&self) -> Result<(), ClientError> {
        let transactions = self.transactions("abort a transaction")?;
        self.flush().await;
        let shared = &self.handle.shared;
        let identity = shared.identity().ok_or(ClientError::Closed)?;
        if transactions.end(identity, false).await? {
            let next = transactions.init(Some(identity)).await?;
            *shared
                .identity
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(next);
            shared.lock().restart_numbering();
        }
        Ok(())
    }

    fn transactions(&self, operation: &str) -> Result<&transaction::Transactions, ClientError> {
        self.handle
            .shared
            .transactions
            .as_ref()
            .ok_or_else(|| ClientError::InvalidState {
                operation: operation.to_owned(),
                state: "the producer has no transactional.id".to_owned(),
            })
    }

    /// Sends everything buffered, waits for the outcomes and stops the background task.
    /// Other clones of this producer are closed too: their sends fail with
    /// [`ClientError::Closed`].
    pub async fn close(self) {
        self.flush().await;
        self.handle.shared.close();
        let sink = self
            .handle
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sink) = sink {
            let _ = sink.await;
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl Shared {
    /// The producer id and epoch batches are stamped with now.
    fn identity(&self) -> Option<ProducerIdentity> {
        *self.identity.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, Accumulator> {
        self.accumulator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops new sends and lets the sink send what is left, then stop.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.lock().close();
        self.wake.notify_one();
    }

    /// Reserves `size` bytes of `buffer.memory`, waiting until `deadline`.
    async fn reserve(
        &self,
        size: usize,
        deadline: Instant,
    ) -> Result<OwnedSemaphorePermit, ClientError> {
        let buffer_memory = self.cluster.config().buffer_memory;
        let permits = u32::try_from(size).map_err(|_| ClientError::RecordTooLarge {
            size,
            limit_key: "buffer.memory",
            limit: buffer_memory,
        })?;
        // Most sends find room at once; only waiting needs a timer.
        if let Ok(permit) = self.memory.clone().try_acquire_many_owned(permits) {
            return Ok(permit);
        }
        let acquire = self.memory.clone().acquire_many_owned(permits);
        match tokio::time::timeout_at(deadline.into(), acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::BufferFull { buffer_memory }),
        }
    }

    /// Appends the record to its partition's open batch. A batch that is ready at once
    /// (full, or `linger.ms=0`) is sent from here, sparing the hand-over to the sink;
    /// otherwise a new batch wakes the sink to time its linger.
    fn append(
        self: &Arc<Self>,
        record: Record,
        partition: i32,
        size: usize,
        memory: OwnedSemaphorePermit,
    ) -> Result<DeliveryFuture, ClientError> {
        let timestamp = record.timestamp.unwrap_or_else(record::now_ms);
        let (sender, future) = DeliveryFuture::channel();
        let appended = {
            let mut accumulator = self.lock();
            if accumulator.is_closing() {
                return Err(ClientError::Closed);
            }
            let record_size = size.saturating_sub(BATCH_OVERHEAD);
            accumulator.append(&record.topic, partition, record_size, |batch| {
                batch.push(&record, timestamp, sender, memory)
            })
        };
        let linger = self.cluster.config().linger_ms;
        if appended.batch_full || (appended.new_batch && linger == 0 && !appended.behind) {
            sink::dispatch(self);
        } else if appended.new_batch {
            // Behind a batch still out, a record gives the ones sent right after it (a
            // burst) the sink's wake-up to join its batch: one request, not one each.
            self.wake.notify_one();
        }
        Ok(future)
    }
}

/// Checks a record's size against `max.request.size` and `buffer.memory`.
fn check_size(config: &ClientConfig, size: usize) -> Result<(), ClientError> {
    let limits = [
        ("max.request.size", config.message_max_bytes),
        ("buffer.memory", config.buffer_memory),
    ];
    match limits.into_iter().find(|&(_, limit)| size > limit) {
        Some((limit_key, limit)) => Err(ClientError::RecordTooLarge {
            size,
            limit_key,
            limit,
        }),
        None => Ok(()),
    }
}

fn accumulator_config(config: &ClientConfig) -> AccumulatorConfig {
    AccumulatorConfig {
        batch_size: config.batch_size,
        linger: Duration::from_millis(config.linger_ms),
        compression: config.compression,
        delivery_timeout: Duration::from_millis(config.delivery_timeout_ms),
        idempotent: config.idempotence_enabled(),
        max_in_flight: max_in_flight(config),
        bump_epochs: config.transactional_id.is_none(),
    }
}

/// `max.in.flight.requests.per.connection`, at least 1.
fn max_in_flight(config: &ClientConfig) -> usize {
    usize::try_from(config.max_in_flight_requests_per_connection)
        .unwrap_or(1)
        .max(1)
}

fn default_partitioner() -> Box<dyn Partitioner> {
    Box::new(DefaultPartitioner::new())
}
