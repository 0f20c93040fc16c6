//! The coordinator itself: loading, the requests, markers and timeouts (see the module
//! documentation for the flow).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::connection::Connection;
use strom_protocol::ErrorCode;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::log::{decode_key, decode_value, encode_key, encode_value};
use super::state::{TxnMetadata, TxnPartition, TxnState};
use crate::config::BrokerConfig;
use crate::internal_topic::{InternalTopic, Item, Place};
use crate::producer_ids::ProducerIds;
use crate::state::now_ms;
use crate::topics::Topics;

/// The transaction coordinator's topic.
pub(crate) const TRANSACTION_TOPIC: &str = "__transaction_state";

/// Wait between rounds of markers that could not all be written.
const MARKER_RETRY: Duration = Duration::from_millis(100);

/// One transactional id's state, locked while a request changes it.
type Slot = Arc<tokio::sync::Mutex<Option<TxnMetadata>>>;

/// The ids of one loaded `__transaction_state` partition.
struct LoadedPartition {
    /// The leader epoch it was loaded in.
    epoch: i32,
    ids: HashMap<String, Slot>,
}

/// The coordinator of the transactional ids whose partitions this broker leads.
pub(crate) struct TxnCoordinator {
    node_id: i32,
    topics: Arc<Topics>,
    topic: InternalTopic,
    max_timeout_ms: i32,
    loaded: Mutex<HashMap<i32, LoadedPartition>>,
    /// One load at a time.
    loading: tokio::sync::Mutex<()>,
    /// Ids whose markers are being written (one writer per id).
    completing: Mutex<HashSet<String>>,
    /// Connections to partition leaders, for markers.
    connections: tokio::sync::Mutex<HashMap<i32, Arc<Connection>>>,
}

/// Overrides of the transaction topic, as Kafka creates it.
fn topic_overrides() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("min.insync.replicas".to_owned(), "2".to_owned()),
        ("segment.bytes".to_owned(), "104857600".to_owned()),
    ])
}

/// Where a transactional id's state is, once loaded.
struct Located {
    epoch: i32,
    slot: Slot,
}

impl TxnCoordinator {
    pub(crate) fn new(topics: Arc<Topics>, config: &BrokerConfig) -> Self {
        let topic = InternalTopic::new(
            topics.clone(),
            TRANSACTION_TOPIC,
            config.transaction_state_num_partitions,
            config.transaction_state_replication_factor,
            topic_overrides(),
        );
        TxnCoordinator {
            node_id: config.node_id,
            topics,
            topic,
            max_timeout_ms: config.transaction_max_timeout_ms,
            loaded: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            completing: Mutex::new(HashSet::new()),
            connections: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The coordinator of `transactional_id` (the topic created on the first ask):
    /// COORDINATOR_NOT_AVAILABLE while its partition has no leader.
    pub(crate) async fn find(&self, transactional_id: &str) -> Result<i32, ErrorCode> {
        let place = self.topic.place_or_create(transactional_id).await?;
        if place.leader < 0 {
            return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        }
        Ok(place.leader)
    }

    /// The state slot of `id`, its partition loaded first if this broker has just taken
    /// its lead; NOT_COORDINATOR when another broker leads it.
    async fn locate(self: &Arc<Self>, id: &str) -> Result<Located, ErrorCode> {
        if id.is_empty() {
            return Err(ErrorCode::INVALID_REQUEST);
        }
        let place = self.topic.place_or_create(id).await?;
        if place.leader != self.node_id {
            return Err(ErrorCode::NOT_COORDINATOR);
        }
        self.ensure_loaded(place).await?;
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let partition = loaded
            .get_mut(&place.partition)
            .filter(|p| p.epoch == place.epoch)
            .ok_or(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS)?;
        let slot = partition.ids.entry(id.to_owned()).or_default().clone();
        Ok(Located {
            epoch: place.epoch,
            slot,
        })
    }

    /// Loads the partition of `place` from its log unless it is loaded in its epoch,
    /// then finishes the transactions found ending.
    async fn ensure_loaded(self: &Arc<Self>, place: Place) -> Result<(), ErrorCode> {
        let is_loaded = |this: &Self| {
            this.loaded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&place.partition)
                .is_some_and(|p| p.epoch == place.epoch)
        };
        if is_loaded(self) {
            return Ok(());
        }
        let _one = self.loading.lock().await;
        if is_loaded(self) {
            return Ok(());
        }
        let mut found: HashMap<String, Option<TxnMetadata>> = HashMap::new();
        self.topic
            .read(place.partition, place.epoch, |item| {
                let Item::Record { record, .. } = item else {
                    return;
                };
                let Some(key) = record.key.as_deref() else {
                    return;
                };
                let id = match decode_key(key) {
                    Ok(id) => id,
                    Err(e) => return warn!(error = %e, "skipping a {TRANSACTION_TOPIC} record"),
                };
                match record.value.as_deref().map(decode_value) {
                    None => {
                        found.remove(&id);
                    }
                    Some(Ok(meta)) => {
                        found.insert(id, meta);
                    }
                    Some(Err(e)) => warn!(id, error = %e, "skipping a {TRANSACTION_TOPIC} record"),
                }
            })
            .await?;
        let ending: Vec<String> = found
            .iter()
            .filter(|(_, m)| m.as_ref().is_some_and(|m| m.state.is_preparing()))
            .map(|(id, _)| id.clone())
            .collect();
        info!(
            partition = place.partition,
            epoch = place.epoch,
            ids = found.len(),
            ending = ending.len(),
            "loaded {TRANSACTION_TOPIC}"
        );
        let ids = found
            .into_iter()
            .map(|(id, meta)| (id, Arc::new(tokio::sync::Mutex::new(meta))))
            .collect();
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                place.partition,
                LoadedPartition {
                    epoch: place.epoch,
                    ids,
                },
            );
        for id in ending {
            self.spawn_completion(id);
        }
        Ok(())
    }

    /// Writes `meta` for `id` and, once replicated, makes it the state in `slot`.
    async fn persist(
        &self,
        id: &str,
        at: &Located,
        slot: &mut Option<TxnMetadata>,
        meta: TxnMetadata,
    ) -> Result<(), ErrorCode> {
        let record = (encode_key(id), Some(encode_value(&meta)));
        self.topic
            .append(id, at.epoch, &[record])
            .await
            .map_err(|code| match code {
                ErrorCode::NOT_COORDINATOR => ErrorCode::NOT_COORDINATOR,
                _ => ErrorCode::COORDINATOR_NOT_AVAILABLE,
            })?;
        *slot = Some(meta);
        Ok(())
    }

    /// InitProducerId with a transactional id: a producer id and a new epoch for it,
    /// fencing earlier producers of the id. An open transaction is aborted first (the
    /// answer is CONCURRENT_TRANSACTIONS until that is done; clients retry).
    pub(crate) async fn init_producer(
        self: &Arc<Self>,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        producer_ids: &ProducerIds,
    ) -> Result<(i64, i16), ErrorCode> {
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(ErrorCode::INVALID_TRANSACTION_TIMEOUT);
        }
        let at = self.locate(id).await?;
        let mut slot = at.slot.clone().lock_owned().await;
        let now = now_ms();
        let next = match slot.as_ref() {
            None => TxnMetadata::new(producer_ids.next().await?, timeout_ms, now),
            Some(current) if current.state == TxnState::Ongoing => {
                if let Some(aborting) = current.abort_and_fence(now) {
                    self.persist(id, &at, &mut slot, aborting).await?;
                    self.spawn_completion(id.to_owned());
                }
                return Err(ErrorCode::CONCURRENT_TRANSACTIONS);
            }
            Some(current) => match current.init(timeout_ms, expected, now)? {
                Some(next) => next,
                // The epoch is used up: a new producer id.
                None => TxnMetadata::new(producer_ids.next().await?, timeout_ms, now),
            },
        };
        let answer = (next.producer_id, next.producer_epoch);
        self.persist(id, &at, &mut slot, next).await?;
        debug!(
            id,
            producer_id = answer.0,
            epoch = answer.1,
            "transactional producer"
        );
        Ok(answer)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: `partitions` join the producer's transaction.
    pub(crate) async fn add_partitions(
        self: &Arc<Self>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
    ) -> Result<(), ErrorCode> {
        let at = self.locate(id).await?;
        let mut slot = at.slot.clone().lock_owned().await;
        let current = slot
            .as_ref()
            .ok_or(ErrorCode::INVALID_PRODUCER_ID_MAPPING)?;
        let next = current.add_partitions(producer_id, epoch, partitions, now_ms())?;
        if next.state == current.state && next.partitions == current.partitions {
            return Ok(());
        }
        self.persist(id, &at, &mut slot, next).await
    }

    /// EndTxn: the transaction commits or aborts; answered once the decision is
    /// replicated, the markers written after.
    pub(crate) async fn end(
        self: &Arc<Self>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), ErrorCode> {
        let at = self.locate(id).await?;
        let mut slot = at.slot.clone().lock_owned().await;
        let current = slot
            .as_ref()
            .ok_or(ErrorCode::INVALID_PRODUCER_ID_MAPPING)?;
        match current.end(producer_id, epoch, commit, now_ms())? {
            None => Ok(()),
            Some(next) => {
                self.persist(id, &at, &mut slot, next).await?;
                drop(slot);
                self.spawn_completion(id.to_owned());
                Ok(())
            }
        }
    }

    /// Writes the markers of `id`'s ending transaction in the background, then completes
    /// it; one writer per id.
    fn spawn_completion(self: &Arc<Self>, id: String) {
        {
            let mut completing = self
                .completing
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !completing.insert(id.clone()) {
                return;
            }
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.complete(&id).await;
            this.completing
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        });
    }

    /// Writes the markers of `id`'s transaction to every partition until all are in,
    /// then records it complete. Stops when this broker stops coordinating the id.
    async fn complete(self: &Arc<Self>, id: &str) {
        loop {
            let Ok(at) = self.locate(id).await else {
                return;
            };
            let Some(meta) = at.slot.lock().await.clone() else {
                return;
            };
            if !meta.state.is_preparing() {
                return;
            }
            let commit = meta.state == TxnState::PrepareCommit;
            let mut left: Vec<TxnPartition> = meta.partitions.iter().cloned().collect();
            while !left.is_empty() {
                if self.topic.place_of(id).map(|p| (p.leader, p.epoch))
                    != Some((self.node_id, at.epoch))
                {
                    return;
                }
                left = self.write_markers(&meta, commit, at.epoch, left).await;
                if !left.is_empty() {
                    tokio::time::sleep(MARKER_RETRY).await;
                }
            }
            let mut slot = at.slot.clone().lock_owned().await;
            if slot.as_ref() != Some(&meta) {
                continue;
            }
            let Some(done) = meta.complete(now_ms()) else {
                return;
            };
            match self.persist(id, &at, &mut slot, done).await {
                Ok(()) => {
                    debug!(id, commit, "transaction complete");
                    return;
                }
                Err(ErrorCode::NOT_COORDINATOR) => return,
                Err(code) => {
                    warn!(id, error = %code, "recording a complete transaction");
                    drop(slot);
                    tokio::time::sleep(MARKER_RETRY).await;
                }
            }
        }
    }

    /// One round of markers for `partitions`, a request per leader; returns the
    /// partitions still to do. Partitions of deleted topics are done.
    async fn write_markers(
        &self,
        meta: &TxnMetadata,
        commit: bool,
        coordinator_epoch: i32,
        partitions: Vec<TxnPartition>,
    ) -> Vec<TxnPartition> {
        let image = self.topics.image();
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        let mut left = Vec::new();
        for (topic, index) in partitions {
            let leader = image
                .topic(&topic)
                .and_then(|t| image.partition(t.id, index))
                .map(|p| p.leader);
            match leader {
                // Deleted: nothing left to mark.
                None => {}
                Some(leader) if leader < 0 => left.push((topic, index)),
                Some(leader) => by_leader
                    .entry(leader)
                    .or_default()
                    .entry(topic)
                    .or_default()
                    .push(index),
            }
        }
        for (leader, topics) in by_leader {
            let marker = WritableTxnMarker::default()
                .with_producer_id(ProducerId(meta.producer_id))
                .with_producer_epoch(meta.producer_epoch)
                .with_transaction_result(commit)
                .with_coordinator_epoch(coordinator_epoch)
                .with_topics(
                    topics
                        .iter()
                        .map(|(topic, indexes)| {
                            WritableTxnMarkerTopic::default()
                                .with_name(TopicName(StrBytes::from_string(topic.clone())))
                                .with_partition_indexes(indexes.clone())
                        })
                        .collect(),
                );
            let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
            let all = || {
                topics
                    .iter()
                    .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                    .collect::<Vec<_>>()
            };
            let response = match self.connection(leader).await {
                Ok(conn) => conn.send(&request).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            let response = match response {
                Ok(response) => response,
                Err(reason) => {
                    debug!(leader, %reason, "markers not sent");
                    self.connections.lock().await.remove(&leader);
                    left.extend(all());
                    continue;
                }
            };
            for topic in response.markers.iter().flat_map(|m| &m.topics) {
                for p in &topic.partitions {
                    let code = ErrorCode(p.error_code);
                    if code.is_ok() || code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION {
                        continue;
                    }
                    debug!(topic = %topic.name.0, partition = p.partition_index, error = %code, "marker not written");
                    left.push((topic.name.0.to_string(), p.partition_index));
                }
            }
        }
        left
    }

    /// A connection to broker `node`, opened on first use.
    async fn connection(&self, node: i32) -> Result<Arc<Connection>, String> {
        let mut connections = self.connections.lock().await;
        if let Some(conn) = connections.get(&node).filter(|c| c.is_usable()) {
            return Ok(conn.clone());
        }
        let conn = self
            .topics
            .quorum
            .connect_broker(node, &format!("broker-{}-txn", self.node_id))
            .await?;
        let conn = Arc::new(conn);
        connections.insert(node, conn.clone());
        Ok(conn)
    }

    /// Aborts, fencing their producers, the open transactions of loaded partitions that
    /// have outlived their timeouts.
    async fn abort_timed_out_once(self: &Arc<Self>) {
        self.load_led().await;
        let led: HashMap<i32, i32> = self
            .topic
            .led_partitions(self.node_id)
            .into_iter()
            .collect();
        let slots: Vec<(String, i32, Slot)> = {
            let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
            loaded.retain(|partition, p| led.get(partition) == Some(&p.epoch));
            loaded
                .iter()
                .flat_map(|(&partition, p)| {
                    p.ids
                        .iter()
                        .map(move |(id, slot)| (id.clone(), partition, slot.clone()))
                })
                .collect()
        };
        let now = now_ms();
        for (id, partition, slot) in slots {
            let mut guard = slot.clone().lock_owned().await;
            let Some(aborting) = guard
                .as_ref()
                .filter(|m| m.timed_out(now))
                .and_then(|m| m.abort_and_fence(now))
            else {
                continue;
            };
            let Some(&epoch) = led.get(&partition) else {
                continue;
            };
            let at = Located { epoch, slot };
            info!(id, "aborting a transaction past its timeout");
            match self.persist(&id, &at, &mut guard, aborting).await {
                Ok(()) => {
                    drop(guard);
                    self.spawn_completion(id);
                }
                Err(code) => warn!(id, error = %code, "aborting a timed-out transaction"),
            }
        }
    }

    /// The transactions of the loaded partitions, for ListTransactions and
    /// DescribeTransactions.
    pub(crate) async fn snapshot(&self) -> Vec<(String, TxnMetadata)> {
        let slots: Vec<(String, Slot)> = {
            let loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
            loaded
                .values()
                .flat_map(|p| p.ids.iter().map(|(id, s)| (id.clone(), s.clone())))
                .collect()
        };
        let mut out = Vec::with_capacity(slots.len());
        for (id, slot) in slots {
            if let Some(meta) = slot.lock().await.clone() {
                out.push((id, meta));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The state of `id` if this broker coordinates it (loading its partition first).
    pub(crate) async fn describe(
        self: &Arc<Self>,
        id: &str,
    ) -> Result<Option<TxnMetadata>, ErrorCode> {
        let at = self.locate(id).await?;
        let meta = at.slot.lock().await.clone();
        Ok(meta)
    }

    /// Loads the `__transaction_state` partitions this broker leads (so ListTransactions
    /// sees every id, and transactions a failed coordinator left ending are finished).
    pub(crate) async fn load_led(self: &Arc<Self>) {
        for (partition, epoch) in self.topic.led_partitions(self.node_id) {
            let place = Place {
                partition,
                leader: self.node_id,
                epoch,
            };
            if let Err(code) = self.ensure_loaded(place).await {
                debug!(partition, error = %code, "loading {TRANSACTION_TOPIC}");
            }
        }
    }
}

/// Runs the coordinator's timeout check every `interval` until shutdown.
pub(crate) async fn abort_timed_out(
    coordinator: Arc<TxnCoordinator>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => coordinator.abort_timed_out_once().await,
            _ = shutdown.changed() => return,
        }
    }
}
