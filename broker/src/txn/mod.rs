//! The transaction coordinator (KIP-98): transactional ids, their producer ids and epochs,
//! and the transactions they run, kept in `__transaction_state`.
//!
//! ```text
//!  InitProducerId(txn id) ─┐                      ┌─▶ __transaction_state-<partition_for(id)>
//!  AddPartitionsToTxn ─────┼─▶ TxnCoordinator ────┤     (every change written, replicated,
//!  AddOffsetsToTxn ────────┤   (state.rs rules)   │      then applied in memory)
//!  EndTxn ─────────────────┘          │           └─▶ WriteTxnMarkers to each partition's
//!                                     │               leader, then Complete{Commit,Abort}
//!  every abort interval ── Ongoing past its timeout: abort, epoch + 1 (the producer is fenced)
//! ```
//!
//! A transactional id's coordinator is the leader of its `__transaction_state` partition.
//! A broker that takes the lead of such a partition loads it from the log (on the first
//! request for one of its ids) and finishes the transactions it finds ending. EndTxn is
//! answered once the decision (PrepareCommit or PrepareAbort) is replicated; the markers
//! follow, and the id takes no new transaction until they are all written
//! (`CONCURRENT_TRANSACTIONS`, which clients retry).

mod coordinator;
mod log;
pub(crate) mod state;

pub(crate) use coordinator::{abort_timed_out, TxnCoordinator, TRANSACTION_TOPIC};
