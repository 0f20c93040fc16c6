//! Integration tests of `strom-client` against the embedded Strom broker: one test binary
//! with a module per client part.
#![allow(clippy::unwrap_used, missing_docs)]

mod acls;
mod admin;
mod cluster;
mod consumer;
mod faults;
mod producer;
mod sasl;
mod support;
mod tls;
