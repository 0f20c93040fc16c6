//! Tests of the Connect runtime on the embedded broker: a standalone worker's source and
//! sink tasks, distributed workers, and the REST API.
#![allow(clippy::unwrap_used, missing_docs)]

mod distributed;
mod rest;
mod standalone;
mod support;
