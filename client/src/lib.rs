//! `strom-client`: an async Kafka client for Rust services. Pure Rust on tokio; works
//! against any Kafka-compatible cluster.
//!
//! This crate is being built up: configuration ([`config`]) and the Java-compatible
//! partitioner ([`producer::partitioner`]) are here; the producer, consumer and admin
//! client follow.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod error;
pub mod producer;

pub use config::ClientConfig;
pub use error::ClientError;
