//! The Strom broker: a small Kafka-compatible broker that third-party Kafka clients can use.
//!
//! ```text
//!  TCP ─▶ net (frames, one task per connection) ─▶ net::dispatch (API table)
//!                                                       │
//!                              handler/<api>.rs ◀───────┘
//!                                   │
//!                 topics (names, ids, configs) ─▶ partition (lock, idempotence)
//!                                                       │
//!                                                log (segments, indexes)
//! ```
//!
//! Start one in-process with [`Broker::start`] (port 0 and a temporary folder make it
//! self-contained for tests and examples), or run `strom broker`.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod authorizer;
pub mod config;
mod controller;
pub mod error;
mod group;
mod handler;
mod internal_topic;
pub mod log;
mod net;
mod partition;
mod producer_ids;
pub mod producer_state;
mod quota;
mod replication;
mod server;
mod state;
mod topic_config;
mod topics;
mod txn;

pub use config::BrokerConfig;
pub use error::BrokerError;
pub use server::Broker;
