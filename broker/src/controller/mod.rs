//! The metadata quorum: cluster metadata as a replicated log of records (KRaft's idea),
//! kept by a Raft quorum of controller nodes with the `raft` crate (TiKV's raft-rs).
//!
//! ```text
//!  records.rs    MetadataRecord: one change (broker registered, topic, partition change, ...)
//!  image.rs      MetadataImage: the replay of the committed records
//!  raft_store.rs the Raft log, hard state and snapshot on disk (raft::Storage)
//!  node.rs       QuorumNode: RawNode + store + image, sans-IO (ticks and messages in,
//!                messages and applied records out)
//!  decisions.rs  fencing and leader election on broker liveness; completing reassignments
//!  reassignment.rs moving replicas (KIP-455) and ElectLeaders, as partition changes
//! ```

// Proposals, the image's queries and membership changes are the API the controller's
// decisions (registration, fencing, leader election, ISR changes) are built on.
#![allow(dead_code)]

pub(crate) mod client;
pub(crate) mod decisions;
pub(crate) mod image;
pub(crate) mod node;
pub(crate) mod placement;
pub(crate) mod quorum;
pub(crate) mod raft_store;
pub(crate) mod reassignment;
pub(crate) mod records;
pub(crate) mod transport;

#[cfg(test)]
mod sim_tests;
