//! Tests of `strom-sql`: queries over decoded records, and SQL-filtered consumers on the
//! embedded broker.
#![allow(clippy::unwrap_used, missing_docs)]

mod bounded;
mod consumer;
mod continuous;
mod filter;
mod formats;
mod jobs;
mod slt;
mod support;
