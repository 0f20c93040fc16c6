//! `strom-client`: an async Kafka client for Rust services. Pure Rust on tokio; works
//! against any Kafka-compatible cluster.
//!
//! This crate is being built up: configuration ([`config`]), the cluster view and
//! connections ([`cluster`]), the admin client ([`admin`]) and the Java-compatible
//! partitioner ([`producer::partitioner`]) are here; the producer and consumer follow.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod cluster;
pub mod config;
pub mod consumer;
pub mod error;
pub mod producer;

pub use cluster::Cluster;
pub use config::ClientConfig;
pub use consumer::Consumer;
pub use error::ClientError;
