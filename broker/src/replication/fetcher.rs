//! Followers' fetchers: one task per leader this broker follows partitions of, fetching
//! them all in one Fetch (as a replica: `replica_id` is this node) from their log ends,
//! appending what comes back with the leader's offsets, and taking the leader's high
//! watermark. A partition that starts following (or follows a new epoch) first asks the
//! leader with OffsetForLeaderEpoch where its latest epoch ends and cuts its log there. The set of partitions is updated as the metadata moves leadership; a
//! fetcher whose set empties stops.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::connection::Connection;
use strom_protocol::ErrorCode;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::controller::quorum::Quorum;
use crate::partition::Partition;

/// How long a fetch waits at the leader for new records.
const MAX_WAIT_MS: i32 = 200;
/// Pause after a failed fetch or connection.
const BACKOFF: Duration = Duration::from_millis(100);
/// Fetch version used: the last that names topics.
const FETCH_VERSION: i16 = 12;

/// A partition followed from some leader.
#[derive(Clone)]
pub(crate) struct Followed {
    pub(crate) topic: String,
    pub(crate) index: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) partition: Arc<Partition>,
}

type Set = Arc<Mutex<BTreeMap<(String, i32), Followed>>>;

/// The fetchers of one broker, by leader.
pub(crate) struct Fetchers {
    me: i32,
    quorum: Arc<Quorum>,
    by_leader: Mutex<HashMap<i32, (Set, JoinHandle<()>)>>,
}

impl Fetchers {
    pub(crate) fn new(me: i32, quorum: Arc<Quorum>) -> Fetchers {
        Fetchers {
            me,
            quorum,
            by_leader: Mutex::new(HashMap::new()),
        }
    }

    /// Makes the followed partitions exactly `wanted` (by leader), starting and stopping
    /// fetchers as needed.
    pub(crate) fn set(&self, wanted: HashMap<i32, Vec<Followed>>) {
        let mut by_leader = self
            .by_leader
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        by_leader.retain(|leader, (set, task)| {
            let keep = wanted.contains_key(leader) && !task.is_finished();
            if !keep {
                task.abort();
                set.lock().unwrap_or_else(PoisonError::into_inner).clear();
            }
            keep
        });
        for (leader, partitions) in wanted {
            let entries: BTreeMap<(String, i32), Followed> = partitions
                .into_iter()
                .map(|f| ((f.topic.clone(), f.index), f))
                .collect();
            match by_leader.get(&leader) {
                Some((set, _)) => *set.lock().unwrap_or_else(PoisonError::into_inner) = entries,
                None => {
                    let set: Set = Arc::new(Mutex::new(entries));
                    let task = tokio::spawn(run(self.me, leader, set.clone(), self.quorum.clone()));
                    by_leader.insert(leader, (set, task));
                }
            }
        }
    }

    /// Stops every fetcher.
    pub(crate) fn stop(&self) {
        for (_, (_, task)) in self
            .by_leader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
        {
            task.abort();
        }
    }
}

/// Fetches from `leader` until the set is empty (or the task is aborted).
async fn run(me: i32, leader: i32, set: Set, quorum: Arc<Quorum>) {
    let mut conn: Option<Connection> = None;
    loop {
        let followed: Vec<Followed> = set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        if followed.is_empty() {
            return;
        }
        if !conn.as_ref().is_some_and(Connection::is_usable) {
            // Named as Kafka names its replica fetchers, so logs and proxies tell them apart.
            let client_id = format!("broker-{me}-fetcher");
            match quorum.connect_broker(leader, &client_id).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    debug!(leader, error = %e, "leader unreachable");
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_ref() else { continue };
        if let Err(e) = fetch_once(me, c, &followed).await {
            debug!(leader, error = %e, "replica fetch failed");
            conn = None;
            tokio::time::sleep(BACKOFF).await;
        }
    }
}

/// Asks the leader where the latest epoch of each partition that needs it ends, and cuts
/// those logs there (KIP-101), before they fetch again.
async fn truncate_diverged(
    me: i32,
    conn: &Connection,
    followed: &[Followed],
) -> Result<(), String> {
    let diverged: Vec<&Followed> = followed
        .iter()
        .filter(|f| f.partition.needs_truncation())
        .collect();
    if diverged.is_empty() {
        return Ok(());
    }
    let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
    for f in &diverged {
        let partition = OffsetForLeaderPartition::default()
            .with_partition(f.index)
            .with_current_leader_epoch(f.leader_epoch)
            .with_leader_epoch(f.partition.latest_epoch().await);
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == f.topic => t.partitions.push(partition),
            _ => topics.push(
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(f.topic.clone())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(me))
        .with_topics(topics);
    let response = conn.send(&request).await.map_err(|e| e.to_string())?;
    for topic in response.topics {
        for answer in topic.partitions {
            let Some(f) = diverged
                .iter()
                .find(|f| f.topic == topic.topic.0.as_str() && f.index == answer.partition)
            else {
                continue;
            };
            if !ErrorCode(answer.error_code).is_ok() {
                // Not the leader yet (or any more): asked again on the next round.
                continue;
            }
            f.partition
                .truncate_for((answer.leader_epoch, answer.end_offset))
                .await;
        }
    }
    Ok(())
}

/// One Fetch for every followed partition, applied.
async fn fetch_once(me: i32, conn: &Connection, followed: &[Followed]) -> Result<(), String> {
    truncate_diverged(me, conn, followed).await?;
    // Partitions still to be checked against the leader do not fetch yet.
    let followed: Vec<Followed> = followed
        .iter()
        .filter(|f| !f.partition.needs_truncation())
        .cloned()
        .collect();
    if followed.is_empty() {
        tokio::time::sleep(BACKOFF).await;
        return Ok(());
    }
    let followed = &followed[..];
    let mut topics: Vec<FetchTopic> = Vec::new();
    for f in followed {
        let partition = FetchPartition::default()
            .with_partition(f.index)
            .with_current_leader_epoch(f.leader_epoch)
            .with_fetch_offset(f.partition.log_end_offset().await)
            .with_partition_max_bytes(1 << 20);
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == f.topic => t.partitions.push(partition),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(f.topic.clone())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(16 << 20)
        .with_topics(topics);
    let response = conn
        .send_version(&request, FETCH_VERSION)
        .await
        .map_err(|e| e.to_string())?;
    let now = crate::state::now_ms();
    let mut backoff = false;
    for topic in response.responses {
        for data in topic.partitions {
            let Some(f) = followed
                .iter()
                .find(|f| f.topic == topic.topic.0.as_str() && f.index == data.partition_index)
            else {
                continue;
            };
            let code = ErrorCode(data.error_code);
            if code == ErrorCode::OFFSET_OUT_OF_RANGE {
                let asked = f.partition.log_end_offset().await;
                if asked < data.log_start_offset {
                    // The leader deleted what this log needs next.
                    f.partition.start_over_at(data.log_start_offset).await;
                } else {
                    // Ahead of the leader's log: it is cut by the leader's epochs first.
                    f.partition.follow_again();
                }
                continue;
            }
            if !code.is_ok() {
                // Leadership moved or the leader is not ready: the metadata will say.
                debug!(topic = %f.topic, partition = f.index, error = %code, "replica fetch refused");
                backoff = true;
                continue;
            }
            let records = data.records.unwrap_or_default();
            if let Err(code) = f
                .partition
                .append_replicated(
                    records,
                    data.high_watermark,
                    data.log_start_offset,
                    f.leader_epoch,
                    now,
                )
                .await
            {
                warn!(topic = %f.topic, partition = f.index, error = %code, "appending replicated records");
                backoff = true;
            }
        }
    }
    if backoff {
        tokio::time::sleep(BACKOFF).await;
    }
    Ok(())
}
