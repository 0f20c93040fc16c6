//! One partition: its log and its idempotent-producer state, behind one lock.
//!
//! The lock is async: a request waiting for it (while compaction or retention holds it, say)
//! yields its worker thread instead of blocking it, so one busy partition does not stall
//! other connections. Appends hold the write lock only for the in-memory checks and the
//! write to the page cache; fetches take the read lock to locate data, which they then send
//! without it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

use bytes::{Bytes, BytesMut};
use std::sync::{Arc, Weak};
use strom_protocol::records::{
    batches, decode_batch, end_transaction_marker, marker_of, validate_batches, Marker,
};
use strom_protocol::ErrorCode;

use tokio::sync::{Notify, RwLock};
use tracing::{debug, info, warn};

use crate::log::{FileRegion, LogConfig, LogError, PartitionLog};
use crate::producer_state::{AbortedTransaction, ProducerStates, SequenceCheck};
use crate::replication::epochs::EpochCache;
use crate::replication::leader::LeaderState;

struct State {
    log: PartitionLog,
    producers: ProducerStates,
    /// Leader epochs and where each starts in the log.
    epochs: EpochCache,
}

/// How this broker takes part in the partition's replication.
enum Role {
    /// The only replica, or not (yet) told otherwise: the high watermark is the log end.
    Solo,
    /// The leader of several replicas: the high watermark follows the ISR.
    Leader(LeaderState),
    /// A follower: the high watermark is the leader's, as far as this log reaches.
    Follower,
}

/// A partition of a topic.
pub(crate) struct Partition {
    pub(crate) index: i32,
    dir: PathBuf,
    role: std::sync::Mutex<Role>,
    /// The high watermark: consumers read below it, acks=all waits for it.
    high_watermark: AtomicI64,
    /// Woken when the high watermark moves.
    hw_moved: Notify,
    /// The leader epoch this broker follows in (-1 when not following).
    following_epoch: AtomicI32,
    /// The log may hold records the leader does not: ask it where they diverge before the
    /// next fetch (KIP-101).
    diverged: std::sync::atomic::AtomicBool,
    /// The leader epoch this broker leads the partition in (-1: not known to lead it);
    /// stamped on every batch appended.
    leader_epoch: AtomicI32,
    state: RwLock<State>,
    /// Fetches waiting for this partition to grow.
    waiters: std::sync::Mutex<Vec<Weak<Notify>>>,
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    /// Offset of the first record (of the original batch, for a duplicate).
    pub(crate) base_offset: i64,
    /// Log start offset after the append.
    pub(crate) log_start_offset: i64,
    /// The offset after the appended records (the log end, for a duplicate): acks=all
    /// answers once the high watermark reaches it.
    pub(crate) next_offset: i64,
}

/// Offsets of a partition at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Watermarks {
    pub(crate) log_start_offset: i64,
    pub(crate) high_watermark: i64,
    /// Below the high watermark and every open transaction: `read_committed` reads below.
    pub(crate) last_stable_offset: i64,
}

/// Who reads, which decides how far: a follower to the log end, a consumer to the high
/// watermark, a `read_committed` consumer to the last stable offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reader {
    Replica,
    Uncommitted,
    Committed,
}

/// What a fetch read: the watermarks, the batches' place in the log, and (for
/// `read_committed`) the aborted transactions among them.
pub(crate) struct ReadView {
    pub(crate) marks: Watermarks,
    pub(crate) region: Result<Option<FileRegion>, ErrorCode>,
    pub(crate) aborted: Vec<AbortedTransaction>,
}

/// Why an append was refused: the Kafka error and, where it helps, a message.
pub(crate) type Refusal = (ErrorCode, Option<String>);

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    (code, Some(message.into()))
}

impl Partition {
    /// Opens (recovering if needed) the log in `dir` and rebuilds producer state from it.
    pub(crate) fn open(
        index: i32,
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<Partition, LogError> {
        let log = PartitionLog::open(dir, config, now_ms)?;
        let producers = rebuild_producers(&log)?;
        let mut epochs = EpochCache::load(dir).unwrap_or_else(|reason| {
            warn!(partition = index, %reason, "unreadable leader-epoch checkpoint; starting afresh");
            EpochCache::default()
        });
        // Recovery may have cut the log's tail.
        epochs.truncate_from_end(log.log_end_offset());
        Ok(Partition {
            index,
            dir: dir.to_owned(),
            role: std::sync::Mutex::new(Role::Solo),
            // Not the log end: records past the last high watermark may exist nowhere else.
            // Leading alone, it is the log end again; with followers, it rises as they
            // fetch; following, it is the leader's.
            high_watermark: AtomicI64::new(log.log_start_offset()),
            hw_moved: Notify::new(),
            following_epoch: AtomicI32::new(-1),
            diverged: std::sync::atomic::AtomicBool::new(false),
            leader_epoch: AtomicI32::new(-1),
            state: RwLock::new(State {
                log,
                producers,
                epochs,
            }),
            waiters: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Validates and appends one produce payload; offsets are assigned here.
    ///
    /// As Kafka does for Produce v3+, the payload must be exactly one magic-2 batch; control
    /// batches are the broker's to write (see [`Partition::append_marker`]). A
    /// transactional batch opens its producer's transaction here if none is open.
    /// Compacted topics refuse records without a key.
    pub(crate) async fn append(&self, payload: Bytes, now_ms: i64) -> Result<Appended, Refusal> {
        let headers = validate_batches(&payload).map_err(|e| {
            debug!(partition = self.index, error = %e, "refusing corrupt batch");
            refuse(ErrorCode::CORRUPT_MESSAGE, e.to_string())
        })?;
        let [header] = headers[..] else {
            let message = format!(
                "a produce request carries exactly one record batch per partition, not {}",
                headers.len()
            );
            return Err(refuse(ErrorCode::INVALID_RECORD, message));
        };
        if header.is_control() {
            return Err(refuse(
                ErrorCode::INVALID_RECORD,
                "clients may not write control batches",
            ));
        }
        let state = self.state.write().await;
        let config = state.log.config();
        if header.total_len() > config.max_message_bytes {
            let message = format!(
                "batch of {} bytes exceeds max.message.bytes {}",
                header.total_len(),
                config.max_message_bytes
            );
            return Err(refuse(ErrorCode::MESSAGE_TOO_LARGE, message));
        }
        if config.cleanup_policy.compacts() {
            check_keys(&payload)?;
        }
        match state.producers.check(&header) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate { first_offset, .. } => {
                return Ok(Appended {
                    base_offset: first_offset,
                    log_start_offset: state.log.log_start_offset(),
                    next_offset: state.log.log_end_offset(),
                })
            }
            SequenceCheck::Reject(code) => return Err((code, None)),
        }
        self.append_as_leader(state, &payload, now_ms, |state, base_offset| {
            state.producers.record(&header, base_offset);
        })
    }

    /// Writes the marker ending producer `producer_id`'s transaction here (commit or
    /// abort), as the leader does for WriteTxnMarkers. Refused with
    /// `INVALID_PRODUCER_EPOCH` when the producer has a later epoch here already.
    pub(crate) async fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<Appended, Refusal> {
        let batch = end_transaction_marker(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            now_ms,
        )
        .map_err(|e| refuse(ErrorCode::UNKNOWN_SERVER_ERROR, e.to_string()))?;
        let state = self.state.write().await;
        state
            .producers
            .check_marker(producer_id, producer_epoch)
            .map_err(|code| (code, None))?;
        let hw = self.high_watermark();
        self.append_as_leader(state, &batch, now_ms, |state, base_offset| {
            let producers = &mut state.producers;
            let marker = Marker {
                commit,
                coordinator_epoch,
            };
            producers.record_marker(producer_id, producer_epoch, marker, base_offset, hw);
            producers.forget_before(state.log.log_start_offset());
        })
    }

    /// Writes `batch` as the leader: stamps this broker's leader epoch on it, appends it,
    /// lets `record` note it in the producer state (given its base offset), starts the
    /// epoch in the epoch cache if it is new there, and wakes whoever waits for appends.
    fn append_as_leader(
        &self,
        mut state: tokio::sync::RwLockWriteGuard<'_, State>,
        batch: &[u8],
        now_ms: i64,
        record: impl FnOnce(&mut State, i64),
    ) -> Result<Appended, Refusal> {
        let mut data = BytesMut::from(batch);
        let epoch = self.leader_epoch.load(Ordering::Acquire);
        if epoch >= 0 {
            // The partition leader epoch field, outside the CRC (KIP-101).
            if let Some(field) = data.get_mut(12..16) {
                field.copy_from_slice(&epoch.to_be_bytes());
            }
        }
        let info = state
            .log
            .append(&mut data, now_ms)
            .map_err(|e| (log_error_code(&e, self.index), Some(e.to_string())))?;
        record(&mut state, info.base_offset);
        if epoch >= 0
            && state
                .epochs
                .latest()
                .is_none_or(|(latest, _)| latest < epoch)
        {
            state.epochs.assign(epoch, info.base_offset);
            self.save_epochs(&state.epochs);
        }
        let log_start_offset = state.log.log_start_offset();
        let log_end = state.log.log_end_offset();
        drop(state);
        self.appended_to(log_end);
        self.wake_waiters();
        Ok(Appended {
            base_offset: info.base_offset,
            log_start_offset,
            next_offset: log_end,
        })
    }

    /// Asks to be woken (through `notify`) at the next append. A waiter that is gone by
    /// then is skipped; `notify_one` keeps the wake-up if the fetch is not waiting yet.
    pub(crate) fn wait_for_append(&self, notify: &Arc<Notify>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if waiters.len() >= 64 {
            waiters.retain(|w| w.strong_count() > 0);
        }
        waiters.push(Arc::downgrade(notify));
    }

    fn wake_waiters(&self) {
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|p| p.into_inner()));
        for notify in waiters.iter().filter_map(Weak::upgrade) {
            notify.notify_one();
        }
    }

    /// Locates whole batches from `offset` without reading them (the fetch path), with the
    /// watermarks of the same moment.
    /// Consumers read below the high watermark; followers (`replica`) up to the log end.
    pub(crate) async fn read_region(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        reader: Reader,
    ) -> ReadView {
        let state = self.state.read().await;
        let marks = self.watermarks_of(&state);
        let below = match reader {
            Reader::Replica => i64::MAX,
            Reader::Uncommitted => marks.high_watermark,
            Reader::Committed => marks.last_stable_offset,
        };
        let region = state
            .log
            .read_region_below(offset, max_bytes, min_one, below)
            .map_err(|e| log_error_code(&e, self.index));
        let aborted = match reader {
            Reader::Committed => state.producers.aborted_between(offset, below),
            _ => Vec::new(),
        };
        ReadView {
            marks,
            region,
            aborted,
        }
    }

    /// Reads whole batches from `offset` into memory, at least one (for the broker's own
    /// readers of internal topics; clients' fetches use [`Partition::read_region`]).
    pub(crate) async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<crate::log::ReadResult, ErrorCode> {
        let state = self.state.read().await;
        state
            .log
            .read(offset, max_bytes, true)
            .map_err(|e| log_error_code(&e, self.index))
    }

    /// The producers with state here, for DescribeProducers.
    pub(crate) async fn producers(&self) -> Vec<crate::producer_state::ProducerSummary> {
        self.state.read().await.producers.summaries()
    }

    pub(crate) async fn watermarks(&self) -> Watermarks {
        self.watermarks_of(&*self.state.read().await)
    }

    fn watermarks_of(&self, state: &State) -> Watermarks {
        let high_watermark = self
            .high_watermark
            .load(Ordering::Acquire)
            .min(state.log.log_end_offset());
        Watermarks {
            log_start_offset: state.log.log_start_offset(),
            high_watermark,
            last_stable_offset: state.producers.last_stable_offset(high_watermark),
        }
    }

    /// The high watermark.
    pub(crate) fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    fn role(&self) -> std::sync::MutexGuard<'_, Role> {
        self.role
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the high watermark and wakes acks=all waiters if it moved; returns whether it
    /// did (consumers' fetches waiting for records are for the caller to wake).
    fn set_high_watermark(&self, hw: i64) -> bool {
        let moved = self.high_watermark.swap(hw, Ordering::AcqRel) != hw;
        if moved {
            self.hw_moved.notify_waiters();
        }
        moved
    }

    /// The log now ends at `log_end` (an append here).
    fn appended_to(&self, log_end: i64) {
        let hw = match &mut *self.role() {
            Role::Solo => Some(log_end),
            Role::Leader(leader) => leader.on_append(log_end).then(|| leader.high_watermark()),
            Role::Follower => None,
        };
        if let Some(hw) = hw {
            self.set_high_watermark(hw);
        }
    }

    /// This broker leads the partition with `replicas` and `isr` (node `me` among them):
    /// alone, the high watermark is the log end; with followers, it follows the ISR.
    pub(crate) async fn lead(
        &self,
        me: i32,
        replicas: &[i32],
        isr: &[i32],
        partition_epoch: i32,
        now_ms: u64,
    ) {
        self.following_epoch.store(-1, Ordering::Release);
        self.diverged.store(false, Ordering::Release);
        let log_end = self.state.read().await.log.log_end_offset();
        let hw = {
            let mut role = self.role();
            if replicas.len() <= 1 {
                *role = Role::Solo;
                log_end
            } else {
                match &mut *role {
                    Role::Leader(leader) => {
                        leader.replicas_changed(replicas);
                        if leader.isr() != isr {
                            leader.isr_changed(isr, log_end);
                        }
                        leader.settled(partition_epoch, log_end);
                        leader.high_watermark()
                    }
                    _ => {
                        let hw = self.high_watermark();
                        let mut leader = LeaderState::new(me, replicas, isr, log_end, hw, now_ms);
                        leader.settled(partition_epoch, log_end);
                        let hw = leader.high_watermark();
                        *role = Role::Leader(leader);
                        hw
                    }
                }
            }
        };
        if self.set_high_watermark(hw) {
            self.wake_waiters();
        }
    }

    /// This broker follows the partition's leader in `epoch`. From another role or epoch,
    /// its log may hold records the new leader does not: before fetching, the fetcher asks
    /// the leader where this log's latest epoch ends and cuts the log there
    /// ([`Partition::truncate_for`]).
    pub(crate) fn follow(&self, epoch: i32) {
        let was = self.following_epoch.swap(epoch, Ordering::AcqRel);
        let mut role = self.role();
        if !matches!(*role, Role::Follower) || was != epoch {
            self.diverged.store(true, Ordering::Release);
        }
        *role = Role::Follower;
    }

    /// The leader refused this follower's fetch offset as past its log end: the log is
    /// checked against the leader's epochs again before the next fetch.
    pub(crate) fn follow_again(&self) {
        self.diverged.store(true, Ordering::Release);
    }

    /// Whether the log must be checked against the leader's before fetching.
    pub(crate) fn needs_truncation(&self) -> bool {
        self.diverged.load(Ordering::Acquire)
    }

    /// The latest leader epoch in this log (-1 for none).
    pub(crate) async fn latest_epoch(&self) -> i32 {
        self.state
            .read()
            .await
            .epochs
            .latest()
            .map_or(-1, |(epoch, _)| epoch)
    }

    /// Cuts the log where it diverges from the leader's, given the leader's answer to
    /// "where does my latest epoch end?"; returns the new log end.
    pub(crate) async fn truncate_for(&self, answer: (i32, i64)) -> i64 {
        let mut state = self.state.write().await;
        let log_end = state.log.log_end_offset();
        let point = state
            .epochs
            .truncation_point(log_end, self.high_watermark(), answer);
        if point < log_end {
            debug!(
                partition = self.index,
                from = log_end,
                to = point,
                "cutting the log back to the leader's"
            );
            if let Err(e) = state.log.truncate_to(point) {
                warn!(partition = self.index, error = %e, "truncating to the leader's log");
                return log_end;
            }
            state.epochs.truncate_from_end(point);
            self.save_epochs(&state.epochs);
            match rebuild_producers(&state.log) {
                Ok(producers) => state.producers = producers,
                Err(e) => warn!(partition = self.index, error = %e, "rebuilding producer state"),
            }
            if self.high_watermark() > point {
                self.high_watermark.store(point, Ordering::Release);
            }
        }
        self.diverged.store(false, Ordering::Release);
        state.log.log_end_offset()
    }

    /// A follower whose log ends below its leader's log start (the leader no longer has
    /// the records it needs next) starts over, empty, at that log start.
    pub(crate) async fn start_over_at(&self, leader_log_start: i64) {
        let mut state = self.state.write().await;
        if state.log.log_end_offset() >= leader_log_start {
            return;
        }
        info!(
            partition = self.index,
            offset = leader_log_start,
            "starting over at the leader's log start"
        );
        if let Err(e) = state.log.start_over_at(leader_log_start) {
            warn!(partition = self.index, error = %e, "starting the log over");
            return;
        }
        state.epochs.truncate_from_end(0);
        self.save_epochs(&state.epochs);
        match rebuild_producers(&state.log) {
            Ok(producers) => state.producers = producers,
            Err(e) => warn!(partition = self.index, error = %e, "rebuilding producer state"),
        }
        if self.high_watermark() < leader_log_start {
            self.high_watermark
                .store(leader_log_start, Ordering::Release);
        }
    }

    /// The log end offset.
    pub(crate) async fn log_end_offset(&self) -> i64 {
        self.state.read().await.log.log_end_offset()
    }

    /// The ISR size as this leader knows it (1 when it leads alone).
    pub(crate) fn isr_len(&self) -> usize {
        match &*self.role() {
            Role::Leader(leader) => leader.isr().len(),
            _ => 1,
        }
    }

    /// Follower `replica` fetched from `offset`: its progress moves the high watermark,
    /// and the ISR to ask for (with the partition epoch to guard it by) is returned when
    /// it should join.
    pub(crate) async fn replica_fetched(
        &self,
        replica: i32,
        offset: i64,
        now_ms: u64,
    ) -> Option<(Vec<i32>, i32)> {
        let log_end = self.state.read().await.log.log_end_offset();
        let (hw, expand) = match &mut *self.role() {
            Role::Leader(leader) => {
                let (moved, expand) = leader.on_fetch(replica, offset, log_end, now_ms);
                let epoch = leader.partition_epoch();
                (
                    moved.then(|| leader.high_watermark()),
                    expand.map(|isr| (isr, epoch)),
                )
            }
            _ => (None, None),
        };
        if hw.is_some_and(|hw| self.set_high_watermark(hw)) {
            self.wake_waiters();
        }
        expand
    }

    /// The ISR to ask for without followers not caught up for `lag_max_ms`, with the
    /// partition epoch to guard it by (`None` when all are fine).
    pub(crate) fn lagging(&self, now_ms: u64, lag_max_ms: u64) -> Option<(Vec<i32>, i32)> {
        match &*self.role() {
            Role::Leader(leader) => leader
                .shrink(now_ms, lag_max_ms)
                .map(|isr| (isr, leader.partition_epoch())),
            _ => None,
        }
    }

    /// Waits until the high watermark reaches `offset` (acks=all): `NOT_LEADER_OR_FOLLOWER`
    /// once this broker stops leading in `epoch`, the one it appended in (the records may or may
    /// not survive under the next leader, so the producer asks it), `REQUEST_TIMED_OUT`
    /// when `deadline` passes first.
    pub(crate) async fn wait_for_high_watermark(
        &self,
        offset: i64,
        epoch: i32,
        deadline: tokio::time::Instant,
    ) -> Result<(), ErrorCode> {
        loop {
            let moved = self.hw_moved.notified();
            // The epoch first: under a later one, the records below the high watermark
            // may be others than those appended.
            if epoch < 0 || self.leader_epoch() != epoch {
                return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
            }
            if self.high_watermark() >= offset {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, moved).await.is_err() {
                return if self.leader_epoch() != epoch {
                    Err(ErrorCode::NOT_LEADER_OR_FOLLOWER)
                } else if self.high_watermark() >= offset {
                    Ok(())
                } else {
                    Err(ErrorCode::REQUEST_TIMED_OUT)
                };
            }
        }
    }

    /// A follower appends batches fetched from the leader, keeping their offsets: they
    /// must start at this log's end, and be fetched in `epoch`, the epoch this replica
    /// follows now. `leader_hw` is the leader's high watermark; its log
    /// start (`leader_log_start`, -1 when unknown) moves this log's start along (records
    /// deleted or expired there are deleted here too).
    pub(crate) async fn append_replicated(
        &self,
        payload: Bytes,
        leader_hw: i64,
        leader_log_start: i64,
        epoch: i32,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        let mut state = self.state.write().await;
        // Fetched for an epoch this replica no longer follows (an answer that arrived after
        // a leader change), or before its log was checked against the leader's: appending
        // it could leave records here that the leader of now does not have.
        if self.following_epoch.load(Ordering::Acquire) != epoch || self.needs_truncation() {
            return Err(ErrorCode::FENCED_LEADER_EPOCH);
        }
        if leader_log_start > state.log.log_start_offset()
            && leader_log_start <= state.log.log_end_offset()
            && state.log.config().cleanup_policy.deletes()
        {
            match state.log.delete_records_before(leader_log_start) {
                Ok(start) => {
                    let before = state.epochs.clone();
                    state.epochs.truncate_from_start(start);
                    if state.epochs != before {
                        self.save_epochs(&state.epochs);
                    }
                }
                Err(e) => {
                    warn!(partition = self.index, error = %e, "following the leader's log start")
                }
            }
        }
        if !payload.is_empty() {
            let headers = validate_batches(&payload).map_err(|e| {
                warn!(partition = self.index, error = %e, "corrupt batch from the leader");
                ErrorCode::CORRUPT_MESSAGE
            })?;
            let log_end = state.log.log_end_offset();
            if headers.first().is_some_and(|h| h.base_offset < log_end) {
                return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
            }
            // The leader's offsets are kept, gaps included (a compacted leader log).
            state
                .log
                .append_with_offsets(&payload, now_ms)
                .map_err(|e| log_error_code(&e, self.index))?;
            let mut epochs_changed = false;
            let hw = self.high_watermark();
            let ranges = batches(&payload).flatten().map(|(_, range)| range);
            for (header, range) in headers.iter().zip(ranges) {
                if header.is_control() {
                    // A marker the leader could parse; one that does not parse here ends
                    // nothing (it cannot have been a transaction marker).
                    if let Ok(marker) = marker_of(payload.get(range).unwrap_or_default()) {
                        state.producers.record_marker(
                            header.producer_id,
                            header.producer_epoch,
                            marker,
                            header.base_offset,
                            hw,
                        );
                    }
                } else {
                    state.producers.record(header, header.base_offset);
                }
                let epoch = header.partition_leader_epoch;
                if epoch >= 0
                    && state
                        .epochs
                        .latest()
                        .is_none_or(|(latest, _)| latest < epoch)
                {
                    state.epochs.assign(epoch, header.base_offset);
                    epochs_changed = true;
                }
            }
            if epochs_changed {
                self.save_epochs(&state.epochs);
            }
        }
        let log_end = state.log.log_end_offset();
        drop(state);
        self.set_high_watermark(leader_hw.min(log_end));
        self.wake_waiters();
        Ok(())
    }

    pub(crate) async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, ErrorCode> {
        let state = self.state.read().await;
        state
            .log
            .offset_for_timestamp(timestamp)
            .map_err(|e| log_error_code(&e, self.index))
    }

    pub(crate) async fn max_timestamp(&self) -> Result<Option<(i64, i64)>, ErrorCode> {
        let state = self.state.read().await;
        state
            .log
            .max_timestamp()
            .map_err(|e| log_error_code(&e, self.index))
    }

    /// This broker leads the partition in `epoch` (from the metadata log): batches
    /// appended from now on carry it, and the epoch starts at the log end.
    pub(crate) async fn become_leader(&self, epoch: i32) {
        if self.leader_epoch.load(Ordering::Acquire) == epoch {
            return;
        }
        // The epoch enters the epoch cache before the partition is seen to lead in it, so
        // nothing answered in the new epoch (OffsetForLeaderEpoch, an append) misses it.
        let mut state = self.state.write().await;
        if state
            .epochs
            .latest()
            .is_none_or(|(latest, _)| latest < epoch)
        {
            let end = state.log.log_end_offset();
            state.epochs.assign(epoch, end);
            self.save_epochs(&state.epochs);
        }
        let previous = self.leader_epoch.swap(epoch, Ordering::AcqRel);
        drop(state);
        if previous != epoch {
            // Waiters of an earlier epoch are told it ended.
            self.hw_moved.notify_waiters();
        }
    }

    /// This broker no longer leads the partition: acks=all waiters are told so.
    pub(crate) fn resign(&self) {
        if self.leader_epoch.swap(-1, Ordering::AcqRel) >= 0 {
            self.hw_moved.notify_waiters();
        }
    }

    /// The epoch this broker leads the partition in, -1 when it does not.
    pub(crate) fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// OffsetForLeaderEpoch: the largest epoch not above `epoch` this log has, and where it
    /// ends (-1, -1 when the log has none that old).
    pub(crate) async fn end_offset_for(&self, epoch: i32) -> (i32, i64) {
        let state = self.state.read().await;
        state
            .epochs
            .end_offset_for(epoch, state.log.log_end_offset())
    }

    /// Writes the epoch cache beside the log; a failure is logged (the cache is rebuilt
    /// from what is left, and leader changes write it again).
    fn save_epochs(&self, epochs: &EpochCache) {
        let path = self.dir.join(crate::replication::epochs::CHECKPOINT);
        if let Err(e) = crate::topics::write_atomically(&path, epochs.to_checkpoint().as_bytes()) {
            warn!(partition = self.index, error = %e, "writing the leader-epoch checkpoint");
        }
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1: the high watermark).
    pub(crate) async fn delete_records_before(&self, offset: i64) -> Result<i64, ErrorCode> {
        let mut state = self.state.write().await;
        if state.log.config().cleanup_policy == crate::log::CleanupPolicy::Compact {
            return Err(ErrorCode::POLICY_VIOLATION);
        }
        if offset < -1 || offset > state.log.log_end_offset() {
            return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
        }
        let start = state
            .log
            .delete_records_before(offset)
            .map_err(|e| log_error_code(&e, self.index))?;
        let before = state.epochs.clone();
        state.epochs.truncate_from_start(start);
        if state.epochs != before {
            self.save_epochs(&state.epochs);
        }
        Ok(start)
    }

    pub(crate) async fn update_config(&self, config: LogConfig) {
        self.state.write().await.log.update_config(config);
    }

    /// Runs retention and, for compacted topics, compaction. Blocking: call it from a
    /// blocking thread.
    pub(crate) fn maintain(&self, now_ms: i64) {
        let mut state = self.state.blocking_write();
        let policy = state.log.config().cleanup_policy;
        if policy.deletes() {
            if let Err(e) = state.log.apply_retention(now_ms) {
                warn!(partition = self.index, error = %e, "retention failed");
            }
        }
        if policy.compacts() {
            if let Err(e) = state.log.compact(now_ms) {
                warn!(partition = self.index, error = %e, "compaction failed");
            }
        }
    }

    /// Fsyncs segments that rolled since the last time and moves the recovery point past
    /// them; the partition stays available meanwhile. Blocking.
    pub(crate) fn flush_rolled(&self) -> Result<(), LogError> {
        let Some(rolled) = self.state.blocking_read().log.rolled_unflushed() else {
            return Ok(());
        };
        rolled.sync()?;
        self.state.blocking_write().log.rolled_flushed(rolled.up_to)
    }

    /// Flushes the log. Blocking.
    pub(crate) fn flush(&self) -> Result<(), LogError> {
        self.state.blocking_write().log.flush()
    }

    /// Flushes and marks the log cleanly closed. Blocking.
    pub(crate) fn close(self) -> Result<(), LogError> {
        self.state.into_inner().log.close()
    }

    /// Removes the partition's folder. Blocking.
    pub(crate) fn delete(self) -> Result<(), LogError> {
        self.state.into_inner().log.delete_dir()
    }
}

/// Compacted topics keep the latest record per key, so every record needs one.
fn check_keys(batch: &[u8]) -> Result<(), Refusal> {
    let (_, records) =
        decode_batch(batch).map_err(|e| refuse(ErrorCode::CORRUPT_MESSAGE, e.to_string()))?;
    match records.iter().find(|r| r.key.is_none()) {
        Some(r) => Err(refuse(
            ErrorCode::INVALID_RECORD,
            format!(
                "record at offset delta {} has no key; compacted topics need keys",
                r.offset
            ),
        )),
        None => Ok(()),
    }
}

/// Kafka's error code for a log failure.
fn log_error_code(e: &LogError, partition: i32) -> ErrorCode {
    match e {
        LogError::OffsetOutOfRange { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
        LogError::MessageTooLarge { .. } => ErrorCode::MESSAGE_TOO_LARGE,
        LogError::AppendTooLarge { .. } => ErrorCode::RECORD_LIST_TOO_LARGE,
        LogError::InvalidRecords { .. } => ErrorCode::INVALID_RECORD,
        other => {
            warn!(partition, error = %other, "log operation failed");
            ErrorCode::KAFKA_STORAGE_ERROR
        }
    }
}

/// Replays the batch headers (and transaction markers) of the log into producer state.
/// Every marker counts as replicated: what the log holds past the high watermark is
/// checked against the leader's before anyone reads it.
fn rebuild_producers(log: &PartitionLog) -> Result<ProducerStates, LogError> {
    let mut producers = ProducerStates::default();
    log.for_each_batch_header_and_marker(|header, marker| match marker {
        Some(marker) => producers.record_marker(
            header.producer_id,
            header.producer_epoch,
            marker,
            header.base_offset,
            header.base_offset + 1,
        ),
        None if header.producer_id >= 0 => producers.record(header, header.base_offset),
        None => {}
    })?;
    Ok(producers)
}

#[cfg(test)]
mod tests {
    use strom_protocol::records::{set_base_offset, BatchBuilder, Compression};

    use super::*;

    /// One batch of `count` records starting at `base`.
    fn batch(base: i64, count: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(Compression::None);
        for i in 0..count {
            b.push(1, None, Some(format!("v{i}").as_bytes()), &[]);
        }
        let mut bytes = b.build().unwrap().to_vec();
        set_base_offset(&mut bytes, base);
        bytes
    }

    #[tokio::test]
    async fn replicated_batches_keep_the_leaders_offsets_gaps_included() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(0, dir.path(), LogConfig::default(), 0).unwrap();
        p.follow(0);
        p.truncate_for((-1, -1)).await;
        // Contiguous batches from this log's end: stored as they are.
        let payload = [batch(0, 2), batch(2, 3)].concat();
        p.append_replicated(Bytes::from(payload), 4, -1, 0, 0)
            .await
            .unwrap();
        assert_eq!(p.log_end_offset().await, 5);
        assert_eq!(p.high_watermark(), 4, "the leader's, within this log");
        // Overlapping what this log holds.
        let overlap = p
            .append_replicated(Bytes::from(batch(3, 1)), 10, -1, 0, 0)
            .await;
        assert_eq!(overlap, Err(ErrorCode::OFFSET_OUT_OF_RANGE));
        // A gap between batches (a compacted leader log) is kept as the leader has it.
        let gap = [batch(5, 1), batch(8, 1)].concat();
        p.append_replicated(Bytes::from(gap), 9, -1, 0, 0)
            .await
            .unwrap();
        assert_eq!(p.log_end_offset().await, 9);
        // Fetched in an epoch this replica no longer follows: refused, nothing appended.
        p.follow(1);
        let stale = p
            .append_replicated(Bytes::from(batch(5, 1)), 6, -1, 0, 0)
            .await;
        assert_eq!(stale, Err(ErrorCode::FENCED_LEADER_EPOCH));
        let unchecked = p
            .append_replicated(Bytes::from(batch(5, 1)), 6, -1, 1, 0)
            .await;
        assert_eq!(
            unchecked,
            Err(ErrorCode::FENCED_LEADER_EPOCH),
            "not yet truncated"
        );
        assert_eq!(p.log_end_offset().await, 9);
    }

    #[tokio::test]
    async fn a_follower_follows_the_leaders_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(0, dir.path(), LogConfig::default(), 0).unwrap();
        p.follow(0);
        p.truncate_for((-1, -1)).await;
        p.append_replicated(Bytes::from(batch(0, 4)), 4, 0, 0, 0)
            .await
            .unwrap();
        // The leader deleted records below 3: so does the follower.
        p.append_replicated(Bytes::new(), 4, 3, 0, 0).await.unwrap();
        assert_eq!(p.watermarks().await.log_start_offset, 3);
        // A log start past this log's end is not applied by an append...
        p.append_replicated(Bytes::new(), 4, 9, 0, 0).await.unwrap();
        assert_eq!(p.watermarks().await.log_start_offset, 3);
        // ...the log starts over there instead, and takes the leader's records from it.
        p.start_over_at(9).await;
        assert_eq!(p.log_end_offset().await, 9);
        assert_eq!(p.watermarks().await.log_start_offset, 9);
        p.append_replicated(Bytes::from(batch(9, 2)), 11, 9, 0, 0)
            .await
            .unwrap();
        assert_eq!(p.log_end_offset().await, 11);
        // Starting over never moves a log back.
        p.start_over_at(5).await;
        assert_eq!(p.log_end_offset().await, 11);
    }
}
