//! Tests of the MySQL source against a real MariaDB server of the test's own (binlog on)
//! and the embedded broker; and against MySQL in Docker where a Docker daemon runs.
#![allow(clippy::unwrap_used, missing_docs)]

mod cdc;
mod docker;
mod errors;
mod query;
mod resume;
mod support;
