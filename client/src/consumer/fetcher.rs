//! [`Shared`]: the state the consumer handle and its per-broker fetch loops share.
//!
//! The cursors live in one map behind a short-held lock; each cursor names the broker
//! whose fetch loop serves it (`leader`). Moving a partition to a new leader rewrites that
//! field, so its position and buffered records move with it rather than restarting.
//! The handle's `poll` does the slow steps the loops cannot: resolving positions
//! (ListOffsets) and routing unrouted partitions (metadata), starting a loop for each
//! broker that leads an assigned partition.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::debug;

use super::cursor::{Cursor, Reset};
use super::offsets::{list_offsets, TopicPartition, EARLIEST, LATEST};
use super::record::ConsumerRecord;
use super::source;
use crate::cluster::Cluster;
use crate::config::OffsetReset;
use crate::error::ClientError;

/// What the consumer handle and its fetch loops share.
pub(crate) struct Shared {
    pub(crate) cluster: Cluster,
    state: Mutex<State>,
    /// Signalled when records, errors or unrouted partitions appear (wakes `poll`).
    pub(crate) data: Notify,
    /// Signalled when the set of fetchable partitions may have grown (wakes fetch loops).
    pub(crate) wake: Notify,
    closed: AtomicBool,
}

/// The assignment and the fetch loops.
pub(crate) struct State {
    pub(crate) cursors: BTreeMap<TopicPartition, Cursor>,
    sources: HashMap<i32, JoinHandle<()>>,
    next_version: u64,
    next_drain: usize,
    last_refresh: Option<Instant>,
}

impl State {
    /// A version no cursor has had, for a cursor that changes position.
    pub(crate) fn version(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }
}

impl Shared {
    pub(crate) fn new(cluster: Cluster) -> Self {
        Shared {
            cluster,
            state: Mutex::new(State {
                cursors: BTreeMap::new(),
                sources: HashMap::new(),
                next_version: 0,
                next_drain: 0,
                last_refresh: None,
            }),
            data: Notify::new(),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// The state, recovered if a holder panicked (every update leaves it consistent).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Stops every fetch loop; later calls on the handle fail with `Closed`.
    pub(crate) fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        for (_, source) in self.lock().sources.drain() {
            source.abort();
        }
        self.wake.notify_waiters();
        self.data.notify_waiters();
    }

    /// Bytes a partition may buffer before its fetching stops: twice
    /// `max.partition.fetch.bytes`.
    pub(crate) fn max_buffered(&self) -> usize {
        2 * self.cluster.config().max_partition_fetch_bytes as usize
    }

    pub(crate) fn retry_backoff(&self) -> Duration {
        Duration::from_millis(self.cluster.config().retry_backoff_ms)
    }

    /// Gives every partition that needs one a position, then routes unrouted partitions to
    /// their leaders' fetch loops.
    ///
    /// # Errors
    /// [`ClientError::NoOffsetForPartition`] / [`ClientError::OffsetOutOfRange`] under
    /// `auto.offset.reset=none`, or a lasting ListOffsets error.
    pub(crate) async fn prepare(self: &Arc<Self>) -> Result<(), ClientError> {
        self.resolve_positions(None).await?;
        self.route().await;
        Ok(())
    }

    /// Resolves the missing positions (of `only` that partition, if given) by ListOffsets.
    pub(crate) async fn resolve_positions(
        &self,
        only: Option<&TopicPartition>,
    ) -> Result<(), ClientError> {
        let asks = self.reset_asks(only)?;
        if asks.is_empty() {
            return Ok(());
        }
        let wanted: Vec<_> = asks.iter().map(|(tp, ts, _)| (tp.clone(), *ts)).collect();
        let found = match list_offsets(&self.cluster, &wanted).await {
            Ok(found) => found,
            Err(e) if e.is_retriable() => {
                debug!(error = %e, "resetting positions failed; retrying on the next poll");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut state = self.lock();
        for (tp, _, version) in asks {
            let Some(&(offset, _)) = found.get(&tp) else {
                continue;
            };
            let new_version = state.version();
            if let Some(c) = state.cursors.get_mut(&tp) {
                if c.version == version && c.position.is_none() && offset >= 0 {
                    debug!(topic = %tp.0, partition = tp.1, offset, "position reset");
                    c.seek(offset, new_version);
                }
            }
        }
        drop(state);
        self.wake.notify_waiters();
        Ok(())
    }

    /// The ListOffsets timestamps the partitions without a position need, with the cursor
    /// versions they were asked for.
    fn reset_asks(
        &self,
        only: Option<&TopicPartition>,
    ) -> Result<Vec<(TopicPartition, i64, u64)>, ClientError> {
        let policy = self.cluster.config().auto_offset_reset;
        let state = self.lock();
        let mut asks = Vec::new();
        for (tp, c) in &state.cursors {
            if c.position.is_some() || only.is_some_and(|o| o != tp) {
                continue;
            }
            let timestamp = match (c.reset, policy) {
                (Reset::Earliest, _) | (Reset::Auto(_), OffsetReset::Earliest) => EARLIEST,
                (Reset::Latest, _) | (Reset::Auto(_), OffsetReset::Latest) => LATEST,
                (Reset::Auto(out_of_range), OffsetReset::None) => {
                    return Err(no_position(tp, out_of_range));
                }
            };
            asks.push((tp.clone(), timestamp, c.version));
        }
        Ok(asks)
    }

    /// Finds the leader of every partition with a position but no fetch loop, and starts
    /// the loops needed. Failures leave the partition unrouted for the next poll.
    async fn route(self: &Arc<Self>) {
        let (unrouted, stale) = {
            let state = self.lock();
            let unrouted: Vec<TopicPartition> = state
                .cursors
                .iter()
                .filter(|(_, c)| c.leader.is_none() && c.position.is_some())
                .map(|(tp, _)| tp.clone())
                .collect();
            let stale = state.cursors.values().any(|c| c.stale_leader);
            (unrouted, stale)
        };
        if unrouted.is_empty() {
            return;
        }
        if stale && self.refresh_due() {
            let mut topics: Vec<String> = unrouted.iter().map(|(t, _)| t.clone()).collect();
            topics.dedup();
            if let Err(e) = self.cluster.refresh_metadata(Some(&topics)).await {
                debug!(error = %e, "metadata refresh failed");
            }
        }
        for tp in unrouted {
            let leader = self.cluster.leader(&tp.0, tp.1).await;
            let mut state = self.lock();
            match leader {
                Ok((node, _)) => {
                    if let Some(c) = state.cursors.get_mut(&tp) {
                        debug!(topic = %tp.0, partition = tp.1, node, "partition routed");
                        c.leader = Some(node);
                        c.stale_leader = false;
                    }
                    self.ensure_source(&mut state, node);
                }
                Err(e) => {
                    debug!(topic = %tp.0, partition = tp.1, error = %e, "no leader yet");
                    if let Some(c) = state.cursors.get_mut(&tp) {
                        c.stale_leader = true;
                    }
                }
            }
        }
        self.wake.notify_waiters();
    }

    /// Whether the last forced metadata refresh is older than `retry.backoff.ms`.
    fn refresh_due(&self) -> bool {
        let mut state = self.lock();
        let now = Instant::now();
        let due = state
            .last_refresh
            .is_none_or(|at| now.duration_since(at) >= self.retry_backoff());
        if due {
            state.last_refresh = Some(now);
        }
        due
    }

    /// Starts the fetch loop of broker `node` unless it runs.
    fn ensure_source(self: &Arc<Self>, state: &mut State, node: i32) {
        if self.is_closed() || state.sources.get(&node).is_some_and(|h| !h.is_finished()) {
            return;
        }
        let handle = tokio::spawn(source::run(Arc::clone(self), node));
        state.sources.insert(node, handle);
    }

    /// Whether some partition waits for a position or a leader (poll should come back
    /// soon rather than sleep out its timeout).
    pub(crate) fn has_unsettled(&self) -> bool {
        self.lock()
            .cursors
            .values()
            .any(|c| c.position.is_none() || (c.leader.is_none() && !c.paused))
    }

    /// Up to `max` buffered records, taken round-robin across partitions; or the first
    /// partition error waiting to be reported.
    pub(crate) fn drain(&self, max: usize) -> Result<Vec<ConsumerRecord>, ClientError> {
        let mut state = self.lock();
        if let Some(error) = state.cursors.values_mut().find_map(|c| c.error.take()) {
            return Err(error);
        }
        let count = state.cursors.len().max(1);
        let start = state.next_drain % count;
        state.next_drain = start + 1;
        let mut out = Vec::new();
        for c in state.cursors.values_mut().skip(start) {
            c.take(max - out.len(), &mut out);
        }
        for c in state.cursors.values_mut().take(start) {
            c.take(max - out.len(), &mut out);
        }
        drop(state);
        if !out.is_empty() {
            self.wake.notify_waiters();
        }
        Ok(out)
    }
}

/// The error for a partition without a position under `auto.offset.reset=none`.
fn no_position(tp: &TopicPartition, out_of_range: Option<i64>) -> ClientError {
    let (topic, partition) = (tp.0.clone(), tp.1);
    match out_of_range {
        Some(offset) => ClientError::OffsetOutOfRange {
            topic,
            partition,
            offset,
        },
        None => ClientError::NoOffsetForPartition { topic, partition },
    }
}
