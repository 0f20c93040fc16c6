//! A transactional id's state and the rules for changing it, as Kafka's
//! `TransactionMetadata`: pure functions from the current state and a request to the next
//! state or the error the client gets.
//!
//! ```text
//!  Empty ──AddPartitions──▶ Ongoing ──EndTxn(commit)──▶ PrepareCommit ──markers──▶ CompleteCommit
//!    ▲                        │    └──EndTxn(abort) / timeout / fencing──▶ PrepareAbort ──markers──▶ CompleteAbort
//!    └── InitProducerId (epoch + 1) from Empty or Complete*; AddPartitions from Complete* starts anew
//! ```

use std::collections::BTreeSet;

use strom_protocol::ErrorCode;

/// Where a transaction is (Kafka's `TransactionState`, with its wire ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// The id stored in `__transaction_state`.
    pub(crate) fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
        }
    }

    /// The state stored as `id` (`None` for Dead and unknown ids).
    pub(crate) fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            _ => return None,
        })
    }

    /// Kafka's name, as DescribeTransactions and ListTransactions give it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Whether markers are being written (the transaction is ending).
    pub(crate) fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// A topic-partition in a transaction.
pub(crate) type TxnPartition = (String, i32);

/// What the coordinator keeps per transactional id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TxnMetadata {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) timeout_ms: i32,
    pub(crate) state: TxnState,
    /// The partitions written (or to be written) in the current transaction.
    pub(crate) partitions: BTreeSet<TxnPartition>,
    /// When the current transaction started (its first AddPartitions).
    pub(crate) start_ms: i64,
    pub(crate) last_update_ms: i64,
}

/// Why a request is refused: the error and whether the client should retry it.
pub(crate) type Refused = ErrorCode;

impl TxnMetadata {
    /// A new transactional id's first producer id.
    pub(crate) fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// Checks a request's producer id and epoch: `INVALID_PRODUCER_ID_MAPPING` for another
    /// producer id, `PRODUCER_FENCED` for an older epoch.
    pub(crate) fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), Refused> {
        if producer_id != self.producer_id {
            return Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING);
        }
        if epoch != self.producer_epoch {
            return Err(ErrorCode::PRODUCER_FENCED);
        }
        Ok(())
    }

    /// InitProducerId for an id whose transaction is finished: the epoch moves on by one
    /// (`None` when it cannot: a new producer id is needed). A transaction still open or
    /// ending is `CONCURRENT_TRANSACTIONS` (the caller aborts an open one first).
    /// `expected` is KIP-360's (producer id, epoch) from a producer re-initialising.
    pub(crate) fn init(
        &self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, Refused> {
        if !matches!(
            self.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        ) {
            return Err(ErrorCode::CONCURRENT_TRANSACTIONS);
        }
        if let Some((id, epoch)) = expected {
            if id != self.producer_id || epoch != self.producer_epoch {
                return Err(ErrorCode::PRODUCER_FENCED);
            }
        }
        let Some(epoch) = self.producer_epoch.checked_add(1).filter(|e| *e < i16::MAX) else {
            return Ok(None);
        };
        Ok(Some(TxnMetadata {
            producer_epoch: epoch,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            ..self.clone()
        }))
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition): the
    /// partitions join the transaction, which starts if none is open.
    pub(crate) fn add_partitions(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
        now_ms: i64,
    ) -> Result<TxnMetadata, Refused> {
        self.check_producer(producer_id, epoch)?;
        if self.state.is_preparing() {
            return Err(ErrorCode::CONCURRENT_TRANSACTIONS);
        }
        let mut next = self.clone();
        if self.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now_ms;
        Ok(next)
    }

    /// EndTxn: an open transaction starts ending. A retry of an end already done (or
    /// under way) with the same outcome is answered `Ok(None)`; anything else is
    /// `INVALID_TXN_STATE`.
    pub(crate) fn end(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, Refused> {
        self.check_producer(producer_id, epoch)?;
        match (self.state, commit) {
            (TxnState::Ongoing, _) => Ok(Some(self.prepare(commit, self.producer_epoch, now_ms))),
            (TxnState::PrepareCommit | TxnState::CompleteCommit, true)
            | (TxnState::PrepareAbort | TxnState::CompleteAbort, false) => Ok(None),
            (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => {
                Err(ErrorCode::CONCURRENT_TRANSACTIONS)
            }
            _ => Err(ErrorCode::INVALID_TXN_STATE),
        }
    }

    /// The coordinator aborts the open transaction itself (it timed out, or another
    /// producer took the id), bumping the epoch so the producer that opened it is fenced.
    pub(crate) fn abort_and_fence(&self, now_ms: i64) -> Option<TxnMetadata> {
        let epoch = self.producer_epoch.checked_add(1)?;
        (self.state == TxnState::Ongoing).then(|| self.prepare(false, epoch, now_ms))
    }

    fn prepare(&self, commit: bool, epoch: i16, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            producer_epoch: epoch,
            state: if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            },
            last_update_ms: now_ms,
            ..self.clone()
        }
    }

    /// Every marker is written: the transaction is complete.
    pub(crate) fn complete(&self, now_ms: i64) -> Option<TxnMetadata> {
        let state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return None,
        };
        Some(TxnMetadata {
            state,
            partitions: BTreeSet::new(),
            last_update_ms: now_ms,
            ..self.clone()
        })
    }

    /// Whether the open transaction has outlived its timeout at `now_ms`.
    pub(crate) fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(names: &[(&str, i32)]) -> Vec<TxnPartition> {
        names.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect()
    }

    #[test]
    fn a_transaction_commits_and_the_next_one_starts_afresh() {
        let fresh = TxnMetadata::new(7, 60_000, 0);
        let meta = fresh.init(60_000, None, 1).unwrap().unwrap();
        assert_eq!((meta.producer_epoch, meta.state), (1, TxnState::Empty));
        let ongoing = meta
            .add_partitions(7, 1, &parts(&[("a", 0), ("b", 1)]), 10)
            .unwrap();
        assert_eq!((ongoing.state, ongoing.start_ms), (TxnState::Ongoing, 10));
        let more = ongoing
            .add_partitions(7, 1, &parts(&[("a", 0)]), 20)
            .unwrap();
        assert_eq!(more.partitions.len(), 2);
        assert_eq!(
            more.start_ms, 10,
            "the transaction started with its first partition"
        );
        let preparing = more.end(7, 1, true, 30).unwrap().unwrap();
        assert_eq!(preparing.state, TxnState::PrepareCommit);
        // Retried while ending: nothing new; another producer call waits.
        assert_eq!(preparing.end(7, 1, true, 31), Ok(None));
        assert_eq!(
            preparing.add_partitions(7, 1, &parts(&[("c", 0)]), 31),
            Err(ErrorCode::CONCURRENT_TRANSACTIONS)
        );
        assert_eq!(
            preparing.init(60_000, None, 31),
            Err(ErrorCode::CONCURRENT_TRANSACTIONS)
        );
        let done = preparing.complete(40).unwrap();
        assert_eq!(
            (done.state, done.partitions.len()),
            (TxnState::CompleteCommit, 0)
        );
        assert_eq!(done.end(7, 1, true, 41), Ok(None));
        assert_eq!(done.end(7, 1, false, 41), Err(ErrorCode::INVALID_TXN_STATE));
        let next = done.add_partitions(7, 1, &parts(&[("c", 0)]), 50).unwrap();
        assert_eq!(next.partitions, parts(&[("c", 0)]).into_iter().collect());
        assert_eq!(next.start_ms, 50);
    }

    #[test]
    fn older_epochs_and_other_producer_ids_are_refused() {
        let meta = TxnMetadata::new(7, 60_000, 0)
            .init(60_000, None, 0)
            .unwrap()
            .unwrap();
        assert_eq!(
            meta.add_partitions(7, 0, &parts(&[("a", 0)]), 1),
            Err(ErrorCode::PRODUCER_FENCED)
        );
        assert_eq!(
            meta.add_partitions(8, 1, &parts(&[("a", 0)]), 1),
            Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING)
        );
        assert_eq!(meta.end(7, 1, true, 1), Err(ErrorCode::INVALID_TXN_STATE));
        // KIP-360: re-initialising with the current id and epoch bumps; a stale one is fenced.
        assert!(meta.init(60_000, Some((7, 1)), 2).unwrap().is_some());
        assert_eq!(
            meta.init(60_000, Some((7, 0)), 2),
            Err(ErrorCode::PRODUCER_FENCED)
        );
    }

    #[test]
    fn the_coordinator_aborts_timed_out_transactions_and_fences_their_producer() {
        let meta = TxnMetadata::new(7, 100, 0)
            .init(100, None, 0)
            .unwrap()
            .unwrap();
        let ongoing = meta
            .add_partitions(7, 1, &parts(&[("a", 0)]), 1_000)
            .unwrap();
        assert!(!ongoing.timed_out(1_100));
        assert!(ongoing.timed_out(1_101));
        let aborting = ongoing.abort_and_fence(1_101).unwrap();
        assert_eq!(
            (aborting.state, aborting.producer_epoch),
            (TxnState::PrepareAbort, 2)
        );
        assert_eq!(
            aborting.end(7, 1, true, 1_102),
            Err(ErrorCode::PRODUCER_FENCED)
        );
        assert!(meta.abort_and_fence(0).is_none(), "nothing open to abort");
        let done = aborting.complete(1_200).unwrap();
        assert_eq!(done.state, TxnState::CompleteAbort);
    }

    #[test]
    fn an_exhausted_epoch_asks_for_a_new_producer_id() {
        let mut meta = TxnMetadata::new(7, 100, 0);
        meta.producer_epoch = i16::MAX - 1;
        assert_eq!(meta.init(100, None, 0), Ok(None));
    }

    #[test]
    fn states_keep_kafkas_ids() {
        for id in 0..6 {
            assert_eq!(TxnState::from_id(id).unwrap().id(), id);
        }
        assert_eq!(TxnState::from_id(6), None);
    }
}
