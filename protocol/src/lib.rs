//! Strom's Kafka wire layer: what both ends of the wire agree on.
//!
//! - [`frame`]: length-prefixed frames with a size limit checked before allocation.
//! - [`header`]: request and response headers with the header version each API version uses.
//! - [`versions`]: `ApiVersions` negotiation.
//! - [`error`]: [`ErrorCode`], Kafka's error codes with their retriable meaning.
//! - [`records`]: record batch v2 (magic 2): parse, build, CRC32C, compression.
//! - [`connection`]: an async client connection with correlation ids and pipelining.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod acl;
pub mod connection;
pub mod error;
pub mod frame;
pub mod header;
pub mod records;
pub mod sasl;
pub mod tls;
pub mod versions;

pub use error::{ErrorCode, ProtocolError};
pub use kafka_protocol;
