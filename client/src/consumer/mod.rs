//! The consumer: reads records from partitions the application assigns, or that its
//! consumer group assigns it ([`Consumer::subscribe`], with `group.id`; committed offsets
//! live in the group's coordinator).
//!
//! ```text
//!  assign / seek / pause ──▶ Cursor per partition (position, fetch offset, bounded buffer)
//!                                 ▲                                   │
//!           source (one fetch loop per leader broker):                │ poll / recv:
//!           one Fetch in flight for all its cursors,                  │ resolve positions
//!           records decoded into the cursors' buffers                 │ (ListOffsets), route
//!                                 ▲                                   │ to leaders, drain up
//!                                 └──── leader moved: cursor re-routed ◀┘ to max.poll.records
//! ```
//!
//! * Positions: a partition without one gets it from `auto.offset.reset` (earliest or
//!   latest by ListOffsets; `none` makes `poll` fail with
//!   [`ClientError::NoOffsetForPartition`]). A fetch answered `OFFSET_OUT_OF_RANGE` resets
//!   the same way (or fails with [`ClientError::OffsetOutOfRange`]).
//! * Fetching runs in the background, one task per broker leading an assigned partition,
//!   each keeping one Fetch in flight for all its partitions; a partition stops being
//!   fetched while its buffer holds `2 × max.partition.fetch.bytes`, so memory stays
//!   bounded however slowly the application polls.
//! * `seek`, `assign` and `pause` take effect on the next poll: a moved partition's
//!   buffered records are discarded, and a response for its old position is dropped.
//! * Leader errors and broken connections send the partition back to `poll`, which
//!   refreshes metadata and hands it to the new leader's loop, keeping its position.
//!
//! There is no `Stream` implementation (the crate does not depend on `futures`); loop on
//! [`Consumer::recv`] or [`Consumer::poll`] instead.

pub mod assignor;
mod cursor;
mod decode;
mod fetcher;
pub(crate) mod group;
mod offsets;
mod record;
mod source;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

pub use group::{ConsumerGroupMetadata, ListenerFuture, RebalanceListener};
pub use record::ConsumerRecord;
pub use stream::RecordStream;

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::ClientError;
use cursor::{Cursor, Reset};
use fetcher::Shared;
use offsets::list_offsets;

/// How long [`Consumer::recv`] waits per round before looking again.
const RECV_ROUND: Duration = Duration::from_secs(1);

/// A consumer of manually assigned partitions.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use strom_protocol::kafka_protocol::messages::{produce_request::*, *};
/// # use strom_protocol::kafka_protocol::protocol::StrBytes;
/// # use strom_protocol::records::{BatchBuilder, Compression};
/// # let dir = tempfile::tempdir()?;
/// # let broker = strom_broker::Broker::start(strom_broker::BrokerConfig::new(dir.path())).await?;
/// # let bootstrap = broker.bootstrap();
/// # let admin = strom_client::admin::Admin::connect(strom_client::ClientConfig::new().bootstrap(&bootstrap)).await?;
/// # admin.create_topic(strom_client::admin::NewTopic::new("greetings")).await?;
/// # let conn = strom_protocol::connection::Connection::connect(&bootstrap, "doc").await?;
/// # let mut batch = BatchBuilder::new(Compression::None);
/// # batch.push(0, Some(b"k"), Some(b"hello"), &[]);
/// # let data = TopicProduceData::default()
/// #     .with_name(TopicName(StrBytes::from_static_str("greetings")))
/// #     .with_partition_data(vec![PartitionProduceData::default().with_records(Some(batch.build()?))]);
/// # conn.send(&ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![data])).await?;
/// use std::time::Duration;
/// use strom_client::config::OffsetReset;
/// use strom_client::{ClientConfig, Consumer};
///
/// let config = ClientConfig::new()
///     .bootstrap(&bootstrap)
///     .auto_offset_reset(OffsetReset::Earliest);
/// let consumer = Consumer::new(config).await?;
/// consumer.assign(&[("greetings".to_owned(), 0)])?;
/// let record = consumer.recv().await?;
/// assert_eq!(record.value.as_deref(), Some(&b"hello"[..]));
/// assert_eq!(consumer.position("greetings", 0).await?, 1);
/// assert!(consumer.poll(Duration::from_millis(10)).await?.is_empty());
/// consumer.close();
/// # Ok(())
/// # }
/// ```
pub struct Consumer {
    shared: Arc<Shared>,
    /// Membership of `group.id`, when configured.
    group: Option<Arc<group::GroupMember>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("assignment", &self.assignment())
            .finish()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.shared.shutdown();
    }
}

impl Consumer {
    /// Connects to the cluster `config` names; nothing is assigned yet.
    ///
    /// # Errors
    /// Configuration errors, or [`ClientError::NoBrokers`].
    pub async fn new(config: ClientConfig) -> Result<Consumer, ClientError> {
        Ok(Consumer::with_cluster(Cluster::connect(config).await?))
    }

    /// A consumer sharing an open cluster view (and its connections) with other clients.
    pub fn with_cluster(cluster: Cluster) -> Consumer {
        let group_id = cluster.config().group_id.clone();
        let shared = Arc::new(Shared::new(cluster));
        let group = group_id.map(|g| Arc::new(group::GroupMember::new(shared.clone(), g)));
        Consumer { shared, group }
    }

    /// Replaces the assignment with `partitions` (`(topic, partition)` pairs). Partitions
    /// kept keep their positions; new ones start by `auto.offset.reset` unless sought.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub fn assign(&self, partitions: &[(String, i32)]) -> Result<(), ClientError> {
        if self.group.as_ref().is_some_and(|g| g.is_subscribed()) {
            return Err(ClientError::InvalidState {
                operation: "assign".into(),
                state: "the consumer is subscribed; unsubscribe first".into(),
            });
        }
        let mut state = self.open_state()?;
        let mut old = std::mem::take(&mut state.cursors);
        for tp in partitions {
            let cursor = match old.remove(tp) {
                Some(c) => c,
                None => {
                    let version = state.version();
                    Cursor::new(tp.0.clone(), tp.1, version)
                }
            };
            state.cursors.insert(tp.clone(), cursor);
        }
        debug!(partitions = partitions.len(), "assigned");
        drop(state);
        self.shared.wake.notify_waiters();
        Ok(())
    }

    /// The assigned partitions, ordered.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.shared.lock().cursors.keys().cloned().collect()
    }

    /// Moves `topic`-`partition` to `offset`: the next poll returns the record there.
    ///
    /// # Errors
    /// [`ClientError::InvalidState`] when the partition is not assigned; `Closed`.
    pub fn seek(&self, topic: &str, partition: i32, offset: i64) -> Result<(), ClientError> {
        self.update(&[(topic.to_owned(), partition)], "seek", |c, v| {
            c.seek(offset, v)
        })
    }

    /// Moves `partitions` (all assigned ones when empty) to their log start, resolved on
    /// the next poll.
    ///
    /// # Errors
    /// As [`Consumer::seek`].
    pub fn seek_to_beginning(&self, partitions: &[(String, i32)]) -> Result<(), ClientError> {
        self.update(partitions, "seek to beginning", |c, v| {
            c.request_reset(Reset::Earliest, v)
        })
    }

    /// Moves `partitions` (all assigned ones when empty) to their end, resolved on the
    /// next poll: only records produced after that are read.
    ///
    /// # Errors
    /// As [`Consumer::seek`].
    pub fn seek_to_end(&self, partitions: &[(String, i32)]) -> Result<(), ClientError> {
        self.update(partitions, "seek to end", |c, v| {
            c.request_reset(Reset::Latest, v)
        })
    }

    /// For each `(topic, partition, timestamp)`, the offset and timestamp of the first
    /// record at or after the timestamp, or `None` when every record is older.
    ///
    /// # Errors
    /// A partition's lasting error (e.g. `UNKNOWN_TOPIC_OR_PARTITION`) or a timeout.
    pub async fn offsets_for_times(
        &self,
        partitions: &[(String, i32, i64)],
    ) -> Result<Vec<Option<(i64, i64)>>, ClientError> {
        self.check_open()?;
        let wanted: Vec<_> = partitions
            .iter()
            .map(|(t, p, ts)| ((t.clone(), *p), *ts))
            .collect();
        let found = list_offsets(&self.shared.cluster, &wanted).await?;
        Ok(wanted
            .iter()
            .map(|(tp, _)| found.get(tp).copied().filter(|(offset, _)| *offset >= 0))
            .collect())
    }

    /// Moves `partitions` (all assigned ones when empty) to their first record at or after
    /// `timestamp` (ms since the epoch); partitions where every record is older go to the
    /// end.
    ///
    /// # Errors
    /// As [`Consumer::offsets_for_times`] and [`Consumer::seek`].
    pub async fn seek_to_timestamp(
        &self,
        partitions: &[(String, i32)],
        timestamp: i64,
    ) -> Result<(), ClientError> {
        let partitions = self.selected(partitions);
        let asks: Vec<_> = partitions
            .iter()
            .map(|(t, p)| (t.clone(), *p, timestamp))
            .collect();
        let found = self.offsets_for_times(&asks).await?;
        for (tp, answer) in partitions.iter().zip(found) {
            let tp = std::slice::from_ref(tp);
            match answer {
                Some((offset, _)) => {
                    self.update(tp, "seek to timestamp", |c, v| c.seek(offset, v))?
                }
                None => self.seek_to_end(tp)?,
            }
        }
        Ok(())
    }

    /// The offset of the next record [`Consumer::poll`] returns for `topic`-`partition`,
    /// resolving it by ListOffsets first if the partition has none yet.
    ///
    /// # Errors
    /// [`ClientError::InvalidState`] when not assigned; the errors of a reset.
    pub async fn position(&self, topic: &str, partition: i32) -> Result<i64, ClientError> {
        let tp = (topic.to_owned(), partition);
        for _ in 0..2 {
            if let Some(position) = self.known_position(&tp)? {
                return Ok(position);
            }
            self.shared.resolve_positions(Some(&tp)).await?;
        }
        Err(ClientError::Timeout {
            what: format!("position of {topic}-{partition}"),
            after_ms: self.shared.cluster.config().request_timeout_ms,
        })
    }

    /// Stops returning and fetching records of `partitions`; their positions and buffered
    /// records stay.
    ///
    /// # Errors
    /// As [`Consumer::seek`].
    pub fn pause(&self, partitions: &[(String, i32)]) -> Result<(), ClientError> {
        self.update(partitions, "pause", |c, _| c.paused = true)
    }

    /// Fetches and returns records of `partitions` again.
    ///
    /// # Errors
    /// As [`Consumer::seek`].
    pub fn resume(&self, partitions: &[(String, i32)]) -> Result<(), ClientError> {
        self.update(partitions, "resume", |c, _| c.paused = false)
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<(String, i32)> {
        let state = self.shared.lock();
        let paused = state.cursors.iter().filter(|(_, c)| c.paused);
        paused.map(|(tp, _)| tp.clone()).collect()
    }

    /// Waits up to `timeout` for records and returns up to `max.poll.records` of them
    /// (empty when none arrived in time).
    ///
    /// # Errors
    /// [`ClientError::NoOffsetForPartition`] / [`ClientError::OffsetOutOfRange`] under
    /// `auto.offset.reset=none`; a partition's lasting fetch error (reported once per
    /// occurrence); [`ClientError::Closed`].
    pub async fn poll(&self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        let max = self.shared.cluster.config().max_poll_records.max(1) as usize;
        self.poll_up_to(timeout, max).await
    }

    /// Waits for the next record.
    ///
    /// # Errors
    /// As [`Consumer::poll`].
    pub async fn recv(&self) -> Result<ConsumerRecord, ClientError> {
        loop {
            if let Some(record) = self.poll_up_to(RECV_ROUND, 1).await?.pop() {
                return Ok(record);
            }
        }
    }

    /// The records as a `futures::Stream`, one at a time as [`Consumer::recv`] returns them.
    ///
    /// ```no_run
    /// # async fn demo(consumer: strom_client::Consumer) {
    /// use std::pin::pin;
    /// use std::future::poll_fn;
    /// use futures_core::Stream;
    /// let mut records = pin!(consumer.stream());
    /// while let Some(record) = poll_fn(|cx| records.as_mut().poll_next(cx)).await {
    ///     let record = record.expect("consumer error");
    ///     println!("{}-{}@{}", record.topic, record.partition, record.offset);
    /// }
    /// # }
    /// ```
    pub fn stream(&self) -> RecordStream<'_> {
        RecordStream::new(self)
    }

    /// Stops the fetch loops; later calls fail with [`ClientError::Closed`]. Dropping the
    /// consumer does the same. A group member leaves its group in the background; use
    /// [`Consumer::shutdown`] to commit and leave before returning.
    pub fn close(&self) {
        if let Some(group) = self.group.clone() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { group.leave().await });
            }
        }
        self.shared.shutdown();
    }

    /// Closes the consumer in order: a group member's partitions are revoked (with
    /// `enable.auto.commit` their positions committed first, and the rebalance listener
    /// told, as in a rebalance), then it leaves the group (so its partitions move at once,
    /// not after `session.timeout.ms`); then fetching stops.
    ///
    /// # Errors
    /// [`ClientError::Closed`] when already closed.
    pub async fn shutdown(&self) -> Result<(), ClientError> {
        self.check_open()?;
        if let Some(group) = &self.group {
            group.give_up_all(self).await;
            group.leave().await;
        }
        self.shared.shutdown();
        Ok(())
    }

    /// Subscribes to `topics` as a member of `group.id`: the group's coordinator assigns
    /// partitions among its members, starting each at its committed offset (or
    /// `auto.offset.reset`), and moves them as members come and go. Joining happens in
    /// the next [`Consumer::poll`]. Replaces an earlier subscription or assignment.
    ///
    /// # Errors
    /// [`ClientError::InvalidState`] without `group.id`, or with no topics.
    pub fn subscribe(&self, topics: &[&str]) -> Result<(), ClientError> {
        self.subscribe_inner(topics, None)
    }

    /// [`Consumer::subscribe`], with `listener` told of partitions revoked and assigned.
    ///
    /// # Errors
    /// As [`Consumer::subscribe`].
    pub fn subscribe_with_listener(
        &self,
        topics: &[&str],
        listener: Arc<dyn RebalanceListener>,
    ) -> Result<(), ClientError> {
        self.subscribe_inner(topics, Some(listener))
    }

    /// Subscribes to every topic whose whole name matches the regular expression
    /// `pattern` (internal topics excluded), following topics as they are created and
    /// deleted (checked every `metadata.max.age.ms`), as a member of `group.id`.
    ///
    /// # Errors
    /// [`ClientError::InvalidState`] without `group.id`; [`ClientError::Config`] for a
    /// pattern that does not compile.
    pub fn subscribe_pattern(
        &self,
        pattern: &str,
        listener: Option<Arc<dyn RebalanceListener>>,
    ) -> Result<(), ClientError> {
        self.check_open()?;
        let group = self.group("subscribe")?;
        self.check_not_assigned(group)?;
        let regex =
            regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| ClientError::Config {
                key: "subscription pattern".to_owned(),
                value: pattern.to_owned(),
                reason: e.to_string(),
            })?;
        group.subscribe_pattern(regex, listener);
        Ok(())
    }

    /// Leaves the group: the partitions are revoked (the listener told, positions
    /// committed with `enable.auto.commit`) and no longer fetched.
    ///
    /// # Errors
    /// [`ClientError::InvalidState`] without `group.id`.
    pub async fn unsubscribe(&self) -> Result<(), ClientError> {
        self.check_open()?;
        self.group("unsubscribe")?.unsubscribe(self).await;
        Ok(())
    }

    /// Refuses a subscription while partitions are assigned by hand (as the Java client
    /// does: the two are exclusive).
    fn check_not_assigned(&self, group: &group::GroupMember) -> Result<(), ClientError> {
        if !group.is_subscribed() && !self.shared.lock().cursors.is_empty() {
            return Err(ClientError::InvalidState {
                operation: "subscribe".into(),
                state: "partitions are assigned by hand; assign an empty list first".into(),
            });
        }
        Ok(())
    }

    fn subscribe_inner(
        &self,
        topics: &[&str],
        listener: Option<Arc<dyn RebalanceListener>>,
    ) -> Result<(), ClientError> {
        self.check_open()?;
        let group = self.group("subscribe")?;
        self.check_not_assigned(group)?;
        if topics.is_empty() {
            return Err(ClientError::InvalidState {
                operation: "subscribe".into(),
                state: "no topics given".into(),
            });
        }
        group.subscribe(topics.iter().map(|t| (*t).to_owned()).collect(), listener);
        Ok(())
    }

    /// Commits the positions of every assigned partition to the group (what the next
    /// member to own each partition starts from), and waits for the coordinator's answer.
    ///
    /// # Errors
    /// [`ClientError::InvalidState`] without `group.id`; a broker error such as
    /// `REBALANCE_IN_PROGRESS` or `ILLEGAL_GENERATION` when the group moved on (the
    /// partitions are being reassigned; the next poll rejoins).
    pub async fn commit(&self) -> Result<(), ClientError> {
        self.check_open()?;
        self.group("commit")?.commit(None).await
    }

    /// Commits the given offsets (`(topic, partition, next offset to read)`).
    ///
    /// # Errors
    /// As [`Consumer::commit`].
    pub async fn commit_offsets(&self, offsets: &[(String, i32, i64)]) -> Result<(), ClientError> {
        self.check_open()?;
        let offsets: Vec<_> = offsets
            .iter()
            .map(|(t, p, o)| ((t.clone(), *p), *o))
            .collect();
        self.group("commit")?.commit_offsets(&offsets).await
    }

    /// Starts committing the positions of every assigned partition and returns at once;
    /// the handle gives the outcome.
    ///
    /// # Errors
    /// As [`Consumer::commit`], for the parts known before sending.
    pub fn commit_async(
        &self,
    ) -> Result<tokio::task::JoinHandle<Result<(), ClientError>>, ClientError> {
        self.check_open()?;
        let group = self.group("commit")?.clone();
        Ok(tokio::spawn(async move { group.commit(None).await }))
    }

    /// Starts committing the given offsets (`(topic, partition, next offset to read)`) and
    /// returns at once; the handle gives the outcome.
    ///
    /// # Errors
    /// As [`Consumer::commit`], for the parts known before sending.
    pub fn commit_offsets_async(
        &self,
        offsets: &[(String, i32, i64)],
    ) -> Result<tokio::task::JoinHandle<Result<(), ClientError>>, ClientError> {
        self.check_open()?;
        let group = self.group("commit")?.clone();
        let offsets: Vec<_> = offsets
            .iter()
            .map(|(t, p, o)| ((t.clone(), *p), *o))
            .collect();
        Ok(tokio::spawn(
            async move { group.commit_offsets(&offsets).await },
        ))
    }

    /// The group's committed offsets of `partitions` (`None` where there is none).
    ///
    /// # Errors
    /// [`ClientError::InvalidState`] without `group.id`; coordinator errors.
    pub async fn committed(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<i64>>, ClientError> {
        self.check_open()?;
        let found = self
            .group("read committed offsets")?
            .committed(partitions)
            .await?;
        Ok(partitions.iter().map(|tp| found.get(tp).copied()).collect())
    }

    /// The consumer's place in its group (group id, generation, member id), for a
    /// transactional producer's
    /// [`send_offsets_to_transaction`](crate::producer::Producer::send_offsets_to_transaction):
    /// the coordinator refuses offsets from a member of an old generation (KIP-447).
    ///
    /// # Errors
    /// [`ClientError::InvalidState`] without `group.id`.
    pub fn group_metadata(&self) -> Result<ConsumerGroupMetadata, ClientError> {
        Ok(self.group("read group metadata")?.metadata())
    }

    fn group(&self, operation: &str) -> Result<&Arc<group::GroupMember>, ClientError> {
        self.group
            .as_ref()
            .ok_or_else(|| ClientError::InvalidState {
                operation: operation.to_owned(),
                state: "the consumer has no group.id".to_owned(),
            })
    }

    async fn poll_up_to(
        &self,
        timeout: Duration,
        max: usize,
    ) -> Result<Vec<ConsumerRecord>, ClientError> {
        // `poll(Duration::MAX)` means "wait as long as it takes", not an overflow.
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        loop {
            let arrived = self.shared.data.notified();
            self.check_open()?;
            if let Some(group) = &self.group {
                group.before_poll(self).await?;
            }
            // Resolving positions (ListOffsets) may retry for a while: never past the
            // caller's deadline; whatever is left resumes on the next poll.
            match tokio::time::timeout_at(deadline, self.shared.prepare()).await {
                Ok(prepared) => prepared?,
                Err(_) => return Ok(Vec::new()),
            }
            let records = self.shared.drain(max)?;
            let now = Instant::now();
            if !records.is_empty() || now >= deadline {
                return Ok(records);
            }
            let mut wait = deadline - now;
            if self.shared.has_unsettled() {
                wait = wait.min(self.shared.retry_backoff().max(Duration::from_millis(10)));
            }
            let _ = tokio::time::timeout(wait, arrived).await;
        }
    }

    /// Applies `change` (given a fresh cursor version) to each of `partitions`, or to all
    /// assigned ones when empty, then wakes the fetch loops.
    fn update(
        &self,
        partitions: &[(String, i32)],
        operation: &str,
        change: impl Fn(&mut Cursor, u64),
    ) -> Result<(), ClientError> {
        let partitions = self.selected(partitions);
        let mut state = self.open_state()?;
        if let Some(tp) = partitions
            .iter()
            .find(|tp| !state.cursors.contains_key(*tp))
        {
            return Err(not_assigned(operation, tp));
        }
        for tp in &partitions {
            let version = state.version();
            if let Some(c) = state.cursors.get_mut(tp) {
                change(c, version);
            }
        }
        drop(state);
        self.shared.wake.notify_waiters();
        Ok(())
    }

    /// `partitions`, or the whole assignment when empty.
    fn selected(&self, partitions: &[(String, i32)]) -> Vec<(String, i32)> {
        if partitions.is_empty() {
            self.assignment()
        } else {
            partitions.to_vec()
        }
    }

    /// The position of `tp` if it has one.
    fn known_position(&self, tp: &(String, i32)) -> Result<Option<i64>, ClientError> {
        let state = self.open_state()?;
        match state.cursors.get(tp) {
            None => Err(not_assigned("get the position of", tp)),
            Some(c) => Ok(c.position),
        }
    }

    fn check_open(&self) -> Result<(), ClientError> {
        if self.shared.is_closed() {
            return Err(ClientError::Closed);
        }
        Ok(())
    }

    fn open_state(&self) -> Result<std::sync::MutexGuard<'_, fetcher::State>, ClientError> {
        if self.shared.is_closed() {
            return Err(ClientError::Closed);
        }
        Ok(self.shared.lock())
    }
}

fn not_assigned(operation: &str, tp: &(String, i32)) -> ClientError {
    ClientError::InvalidState {
        operation: format!("{operation} {}-{}", tp.0, tp.1),
        state: "the partition is not assigned".into(),
    }
}
