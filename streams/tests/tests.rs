//! Integration tests of `strom-streams`: each DSL operation on the synchronous test driver,
//! and the topology description.
#![allow(clippy::unwrap_used, missing_docs)]

mod stateful;
mod stateless;
