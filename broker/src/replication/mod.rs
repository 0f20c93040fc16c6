//! Partition replication: the leader-epoch cache (`epochs.rs`), with which followers find
//! where their log diverges from a new leader's, and the leader's view of its followers
//! (`leader.rs`): fetch progress, high watermark, ISR expansion and shrinking. Both are
//! sans-IO and tested on their own; the fetchers and the produce and fetch paths build on
//! them.

// The replica fetchers and the produce path that use these are built on them next.
#![allow(dead_code)]

pub(crate) mod epochs;
pub(crate) mod leader;
