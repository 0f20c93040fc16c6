//! Transactions (KIP-98): a producer with `transactional.id` writes to several partitions,
//! and commits consumed offsets, atomically.
//!
//! ```text
//!  Producer::new ── FindCoordinator(txn id) ── InitProducerId(txn id) ──▶ id + epoch
//!                   (fences older producers of the id, aborts their open transaction)
//!  begin_transaction ─▶ send ── first record to a partition: AddPartitionsToTxn ──▶ Produce
//!                    └▶ send_offsets_to_transaction ── AddOffsetsToTxn ─▶ TxnOffsetCommit
//!  commit_transaction / abort_transaction ── flush ── EndTxn ──▶ the coordinator writes the
//!                                                                markers
//! ```
//!
//! A record that fails in a transaction makes the transaction abortable only: commit
//! refuses, abort works, and the producer then moves to a new epoch (InitProducerId with
//! its current id and epoch, KIP-360) so its sequence numbers start afresh. A newer
//! producer of the same id fences this one: [`ClientError::ProducerFenced`] from then on.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;
use tracing::{debug, info};

use super::batch::ProducerIdentity;
use crate::cluster::Cluster;
use crate::consumer::group::coordinator::{Coordinator, COORDINATOR_ERRORS};
use crate::consumer::ConsumerGroupMetadata;
use crate::error::ClientError;

/// Newest versions used: the last before each API's flexible encoding that the broker's
/// coordinator serves everywhere (AddPartitionsToTxn v4+ is for brokers).
const INIT_PRODUCER_ID_MAX: i16 = 4;
const ADD_PARTITIONS_MAX: i16 = 3;
const ADD_OFFSETS_MAX: i16 = 3;
const END_TXN_MAX: i16 = 3;
const TXN_OFFSET_COMMIT_MAX: i16 = 3;

/// Where the producer's transaction stands.
#[derive(Default)]
struct Status {
    /// A transaction is open.
    open: bool,
    /// Partitions added to the open transaction.
    added: HashSet<(String, i32)>,
    /// Why the open transaction can only be aborted (a record failed in it).
    failed: Option<String>,
    /// Records of unknown fate were sent under the current epoch: abort moves on to a new
    /// one.
    needs_new_epoch: bool,
    /// Offsets were sent in the open transaction (the coordinator has it even without
    /// records).
    offsets_sent: bool,
    /// A newer producer took the id: nothing more works.
    fenced: bool,
}

/// A transactional producer's side of its transactions.
pub(crate) struct Transactions {
    id: String,
    cluster: Cluster,
    coordinator: Coordinator,
    status: Mutex<Status>,
    /// One request to the coordinator at a time (adds, offsets, ends keep their order).
    requests: tokio::sync::Mutex<()>,
}

/// What a coordinator answer asks of the caller.
enum Next {
    Done,
    Retry,
    /// The coordinator is still writing the last transaction's markers: soon.
    RetrySoon,
    Fail(ClientError),
}

/// Wait before asking again while the coordinator finishes the previous transaction
/// (CONCURRENT_TRANSACTIONS), as the Java client's short retry does: its markers usually
/// take a millisecond or two.
const CONCURRENT_RETRY: Duration = Duration::from_millis(2);

impl Transactions {
    pub(crate) fn new(cluster: Cluster, id: String) -> Self {
        Transactions {
            coordinator: Coordinator::of_transaction(cluster.clone(), id.clone()),
            cluster,
            id,
            status: Mutex::new(Status::default()),
            requests: tokio::sync::Mutex::new(()),
        }
    }

    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fenced(&self) -> ClientError {
        ClientError::ProducerFenced {
            transactional_id: self.id.clone(),
        }
    }

    /// What an error code means here: done, retry (the coordinator is busy or moved), or
    /// fail (fenced, or anything else).
    async fn judge(&self, code: ErrorCode, what: &str) -> Next {
        if code.is_ok() {
            return Next::Done;
        }
        if code == ErrorCode::PRODUCER_FENCED || code == ErrorCode::INVALID_PRODUCER_EPOCH {
            self.status().fenced = true;
            return Next::Fail(self.fenced());
        }
        if COORDINATOR_ERRORS.contains(&code) {
            self.coordinator.reset().await;
            return Next::Retry;
        }
        if code == ErrorCode::CONCURRENT_TRANSACTIONS {
            return Next::RetrySoon;
        }
        if code.is_retriable() {
            return Next::Retry;
        }
        Next::Fail(ClientError::Broker {
            code,
            context: format!("{what} of transactional.id {}", self.id),
        })
    }

    /// Runs `attempt` (an answer's error code, and what it brings) until it is done or
    /// fails for good, retrying within `max.block.ms`.
    async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(ErrorCode, T), ClientError>>,
    {
        let config = self.cluster.config();
        let deadline = Instant::now() + Duration::from_millis(config.max_block_ms);
        let backoff = Duration::from_millis(config.retry_backoff_ms.clamp(1, 100));
        loop {
            let (next, value) = match attempt().await {
                Ok((code, value)) => (self.judge(code, what).await, Some(value)),
                Err(e) if e.is_retriable() => (Next::Retry, None),
                Err(e) => (Next::Fail(e), None),
            };
            match (next, value) {
                (Next::Done, Some(value)) => return Ok(value),
                (Next::Done, None) => return Err(ClientError::Closed),
                (Next::Fail(e), _) => return Err(e),
                (Next::Retry | Next::RetrySoon, _) if Instant::now() >= deadline => {
                    return Err(ClientError::Timeout {
                        what: format!("{what} of transactional.id {}", self.id),
                        after_ms: config.max_block_ms,
                    })
                }
                (Next::RetrySoon, _) => tokio::time::sleep(CONCURRENT_RETRY).await,
                (Next::Retry, _) => {
                    debug!(what, "transaction request retried");
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// InitProducerId: the id's producer id and a new epoch (fencing older producers);
    /// `current` is this producer's own, when it moves to a new epoch.
    pub(crate) async fn init(
        &self,
        current: Option<ProducerIdentity>,
    ) -> Result<ProducerIdentity, ClientError> {
        let _one = self.requests.lock().await;
        let timeout =
            i32::try_from(self.cluster.config().transaction_timeout_ms).unwrap_or(i32::MAX);
        let identity = self
            .retrying("InitProducerId", || async {
                let response = self
                    .coordinator
                    .send(
                        |version| {
                            let request = InitProducerIdRequest::default()
                                .with_transactional_id(Some(TransactionalId(
                                    StrBytes::from_string(self.id.clone()),
                                )))
                                .with_transaction_timeout_ms(timeout);
                            match current {
                                Some(c) if version >= 3 => request
                                    .with_producer_id(ProducerId(c.id))
                                    .with_producer_epoch(c.epoch),
                                _ => request,
                            }
                        },
                        INIT_PRODUCER_ID_MAX,
                        false,
                    )
                    .await?;
                let identity = ProducerIdentity {
                    id: response.producer_id.0,
                    epoch: response.producer_epoch,
                    transactional: true,
                };
                Ok((ErrorCode(response.error_code), identity))
            })
            .await?;
        info!(transactional_id = %self.id, producer_id = identity.id, epoch = identity.epoch, "transactional producer");
        let mut status = self.status();
        status.needs_new_epoch = false;
        status.failed = None;
        Ok(identity)
    }

    /// Opens a transaction.
    pub(crate) fn begin(&self) -> Result<(), ClientError> {
        let mut status = self.status();
        if status.fenced {
            return Err(self.fenced());
        }
        if status.open {
            return Err(ClientError::InvalidState {
                operation: "begin a transaction".to_owned(),
                state: "one is open already".to_owned(),
            });
        }
        status.open = true;
        status.added.clear();
        status.offsets_sent = false;
        status.failed = None;
        Ok(())
    }

    /// Makes sure `topic`-`partition` is in the open transaction before a record goes to
    /// it (AddPartitionsToTxn the first time).
    pub(crate) async fn add_partition(
        &self,
        identity: ProducerIdentity,
        topic: &str,
        partition: i32,
    ) -> Result<(), ClientError> {
        {
            let status = self.status();
            if status.fenced {
                return Err(self.fenced());
            }
            if !status.open {
                return Err(ClientError::InvalidState {
                    operation: "send a record".to_owned(),
                    state: "a transactional producer sends only in a transaction \
                            (begin_transaction first)"
                        .to_owned(),
                });
            }
            if status.added.contains(&(topic.to_owned(), partition)) {
                return Ok(());
            }
        }
        let _one = self.requests.lock().await;
        if self.status().added.contains(&(topic.to_owned(), partition)) {
            return Ok(());
        }
        self.retrying("AddPartitionsToTxn", || async {
            let response = self
                .coordinator
                .send(
                    |_| {
                        AddPartitionsToTxnRequest::default()
                            .with_v3_and_below_transactional_id(TransactionalId(
                                StrBytes::from_string(self.id.clone()),
                            ))
                            .with_v3_and_below_producer_id(ProducerId(identity.id))
                            .with_v3_and_below_producer_epoch(identity.epoch)
                            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                                .with_partitions(vec![partition])])
                    },
                    ADD_PARTITIONS_MAX,
                    false,
                )
                .await?;
            let code = response
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| &t.results_by_partition)
                .map(|p| ErrorCode(p.partition_error_code))
                .find(|c| !c.is_ok())
                .unwrap_or(ErrorCode::NONE);
            Ok((code, ()))
        })
        .await?;
        self.status().added.insert((topic.to_owned(), partition));
        Ok(())
    }

    /// A record of the open transaction failed: the transaction can only be aborted, and
    /// when its fate is unknown the producer needs a new epoch afterwards.
    pub(crate) fn record_failed(&self, error: &ClientError, unknown_fate: bool) {
        let mut status = self.status();
        status.failed.get_or_insert_with(|| error.to_string());
        status.needs_new_epoch |= unknown_fate;
    }

    /// AddOffsetsToTxn then TxnOffsetCommit: `offsets` (topic, partition, next offset to
    /// consume) of `group` commit with the transaction.
    pub(crate) async fn send_offsets(
        &self,
        identity: ProducerIdentity,
        offsets: &[(String, i32, i64)],
        group: &ConsumerGroupMetadata,
    ) -> Result<(), ClientError> {
        self.check_open("send offsets to the transaction")?;
        let _one = self.requests.lock().await;
        let transactional_id = TransactionalId(StrBytes::from_string(self.id.clone()));
        let group_id = GroupId(StrBytes::from_string(group.group_id.clone()));
        self.retrying("AddOffsetsToTxn", || async {
            let response = self
                .coordinator
                .send(
                    |_| {
                        AddOffsetsToTxnRequest::default()
                            .with_transactional_id(transactional_id.clone())
                            .with_producer_id(ProducerId(identity.id))
                            .with_producer_epoch(identity.epoch)
                            .with_group_id(group_id.clone())
                    },
                    ADD_OFFSETS_MAX,
                    false,
                )
                .await?;
            Ok((ErrorCode(response.error_code), ()))
        })
        .await?;
        self.status().offsets_sent = true;
        let group_coordinator = Coordinator::new(self.cluster.clone(), group.group_id.clone());
        let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
        for (topic, partition, offset) in offsets {
            let entry = TxnOffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset);
            match topics.last_mut() {
                Some(t) if t.name.0.as_str() == topic => t.partitions.push(entry),
                _ => topics.push(
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(vec![entry]),
                ),
            }
        }
        self.retrying("TxnOffsetCommit", || async {
            let response = group_coordinator
                .send(
                    |version| {
                        let request = TxnOffsetCommitRequest::default()
                            .with_transactional_id(transactional_id.clone())
                            .with_group_id(group_id.clone())
                            .with_producer_id(ProducerId(identity.id))
                            .with_producer_epoch(identity.epoch)
                            .with_topics(topics.clone());
                        if version >= 3 {
                            request
                                .with_generation_id(group.generation_id)
                                .with_member_id(StrBytes::from_string(group.member_id.clone()))
                                .with_group_instance_id(
                                    group.group_instance_id.clone().map(StrBytes::from_string),
                                )
                        } else {
                            request
                        }
                    },
                    TXN_OFFSET_COMMIT_MAX,
                    false,
                )
                .await?;
            let code = response
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| ErrorCode(p.error_code))
                .find(|c| !c.is_ok())
                .unwrap_or(ErrorCode::NONE);
            if COORDINATOR_ERRORS.contains(&code) {
                group_coordinator.reset().await;
            }
            Ok((code, ()))
        })
        .await
    }

    fn check_open(&self, operation: &str) -> Result<(), ClientError> {
        let status = self.status();
        if status.fenced {
            return Err(self.fenced());
        }
        if !status.open {
            return Err(ClientError::InvalidState {
                operation: operation.to_owned(),
                state: "no transaction is open".to_owned(),
            });
        }
        Ok(())
    }

    /// Whether the open transaction may commit: not after one of its records failed.
    pub(crate) fn check_committable(&self) -> Result<(), ClientError> {
        self.check_open("commit the transaction")?;
        match &self.status().failed {
            Some(reason) => Err(ClientError::InvalidState {
                operation: "commit the transaction".to_owned(),
                state: format!("a record of it failed ({reason}); abort it"),
            }),
            None => Ok(()),
        }
    }

    /// EndTxn: the coordinator commits or aborts the transaction; `Ok(true)` when the
    /// producer needs a new epoch now.
    pub(crate) async fn end(
        &self,
        identity: ProducerIdentity,
        commit: bool,
    ) -> Result<bool, ClientError> {
        let operation = if commit { "commit" } else { "abort" };
        self.check_open(&format!("{operation} the transaction"))?;
        let _one = self.requests.lock().await;
        let anything = {
            let status = self.status();
            !status.added.is_empty() || status.offsets_sent
        };
        if anything {
            self.retrying("EndTxn", || async {
                let response = self
                    .coordinator
                    .send(
                        |_| {
                            EndTxnRequest::default()
                                .with_transactional_id(TransactionalId(StrBytes::from_string(
                                    self.id.clone(),
                                )))
                                .with_producer_id(ProducerId(identity.id))
                                .with_producer_epoch(identity.epoch)
                                .with_committed(commit)
                        },
                        END_TXN_MAX,
                        false,
                    )
                    .await?;
                Ok((ErrorCode(response.error_code), ()))
            })
            .await?;
        }
        let mut status = self.status();
        status.open = false;
        status.added.clear();
        status.failed = None;
        Ok(!commit && status.needs_new_epoch)
    }
}
