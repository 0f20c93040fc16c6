//! Partition replication, Kafka's way: followers fetch from the leader with the Fetch API
//! as replicas (`fetcher.rs`); the leader tracks them (`leader.rs`, sans-IO): their fetch
//! offsets move the high watermark, which bounds what consumers read and what acks=all
//! waits for; one that catches up asks to join the ISR, one that lags past
//! `replica.lag.time.max.ms` is asked out (guarded partition changes through the metadata
//! log). The leader-epoch cache (`epochs.rs`) records where each leader epoch starts.

pub(crate) mod epochs;
pub(crate) mod fetcher;
pub(crate) mod leader;

#[cfg(test)]
mod sim_tests;
