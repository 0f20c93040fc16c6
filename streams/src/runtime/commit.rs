//! Committing what an instance processed: shared by its loop (every
//! `commit.interval.ms`) and its rebalance listener (before partitions move away, so the
//! next owner starts exactly where this one stopped).
//!
//! At-least-once: every record sent is acknowledged, then the consumed positions are
//! committed. Exactly-once: the positions join the open transaction, which commits.

use std::collections::BTreeMap;

use strom_client::consumer::{Consumer, ListenerFuture, RebalanceListener};
use strom_client::producer::{DeliveryFuture, Producer};
use strom_client::{ClientConfig, ClientError};
use strom_protocol::ErrorCode;
use tracing::warn;

/// What was sent and consumed since the last commit.
pub(crate) struct InFlight {
    pub(crate) producer: Producer,
    /// Records sent, each with the (task, store) of a changelog record.
    pub(crate) deliveries: Vec<(Option<(i32, String)>, DeliveryFuture)>,
    /// Next offsets to commit, per consumed partition.
    pub(crate) positions: BTreeMap<(String, i32), i64>,
    pub(crate) in_transaction: bool,
    /// Next changelog offset per (task, store), from the acknowledgements.
    pub(crate) acked: BTreeMap<(i32, String), i64>,
    /// Exactly-once: a commit was refused (`Some(fenced)`), so the tasks' state holds
    /// changes that are not committed and must be rebuilt.
    pub(crate) refused: Option<bool>,
}

/// An instance's commits.
pub(crate) struct Committer {
    pub(crate) application_id: String,
    pub(crate) exactly_once: bool,
    pub(crate) producer_config: ClientConfig,
    pub(crate) in_flight: tokio::sync::Mutex<InFlight>,
}

impl Committer {
    /// Commits what is in flight, positions from `consumer`'s group.
    ///
    /// # Errors
    /// The producer's or the group's refusal ([`lost_membership`] after a rebalance).
    pub(crate) async fn commit(&self, consumer: &Consumer) -> Result<(), ClientError> {
        let mut in_flight = self.in_flight.lock().await;
        let result = self.commit_locked(&mut in_flight, consumer).await;
        if let Err(e) = &result {
            if self.exactly_once && lost_membership(e) {
                in_flight.refused = Some(matches!(e, ClientError::ProducerFenced { .. }));
            }
        }
        result
    }

    async fn commit_locked(
        &self,
        in_flight: &mut InFlight,
        consumer: &Consumer,
    ) -> Result<(), ClientError> {
        let offsets: Vec<(String, i32, i64)> = std::mem::take(&mut in_flight.positions)
            .into_iter()
            .map(|((t, p), o)| (t, p, o))
            .collect();
        if self.exactly_once {
            if !in_flight.in_transaction {
                return Ok(());
            }
            let group = consumer.group_metadata()?;
            if !offsets.is_empty() {
                in_flight
                    .producer
                    .send_offsets_to_transaction(&offsets, &group)
                    .await?;
            }
            in_flight.producer.commit_transaction().await?;
            in_flight.in_transaction = false;
            in_flight.await_deliveries().await
        } else {
            in_flight.await_deliveries().await?;
            if offsets.is_empty() {
                return Ok(());
            }
            consumer.commit_offsets(&offsets).await
        }
    }

    /// After a refused commit: drops what was in flight, aborts the transaction (a fenced
    /// producer is replaced by a new one, taking the next epoch).
    pub(crate) async fn discard(&self, fenced: bool) -> Result<(), ClientError> {
        let mut in_flight = self.in_flight.lock().await;
        in_flight.refused = None;
        in_flight.deliveries.clear();
        in_flight.positions.clear();
        if fenced {
            in_flight.in_transaction = false;
            let fresh = Producer::new(self.producer_config.clone()).await?;
            std::mem::replace(&mut in_flight.producer, fresh)
                .close()
                .await;
        }
        if in_flight.in_transaction {
            if let Err(e) = in_flight.producer.abort_transaction().await {
                warn!(application = %self.application_id, error = %e, "abort after a rebalance failed");
            }
            in_flight.in_transaction = false;
        }
        Ok(())
    }
}

impl InFlight {
    /// Waits for the records sent; records the changelog offsets their stores hold.
    async fn await_deliveries(&mut self) -> Result<(), ClientError> {
        for (store, delivery) in std::mem::take(&mut self.deliveries) {
            let metadata = delivery.await?;
            if let Some(slot) = store {
                self.acked.insert(slot, metadata.offset + 1);
            }
        }
        Ok(())
    }
}

/// Commits before partitions are revoked.
pub(crate) struct CommitOnRevoke(pub(crate) std::sync::Arc<Committer>);

impl RebalanceListener for CommitOnRevoke {
    fn on_partitions_revoked<'a>(
        &'a self,
        consumer: &'a Consumer,
        partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        Box::pin(async move {
            if let Err(e) = self.0.commit(consumer).await {
                warn!(application = %self.0.application_id, error = %e, ?partitions, "commit before a rebalance failed");
            }
        })
    }
}

/// Whether `e` says this instance is no longer the owner of what it processed.
pub(crate) fn lost_membership(e: &ClientError) -> bool {
    matches!(e, ClientError::ProducerFenced { .. })
        || e.code().is_some_and(|code| {
            [
                ErrorCode::ILLEGAL_GENERATION,
                ErrorCode::UNKNOWN_MEMBER_ID,
                ErrorCode::REBALANCE_IN_PROGRESS,
                ErrorCode::FENCED_INSTANCE_ID,
            ]
            .contains(&code)
        })
}
