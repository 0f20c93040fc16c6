//! The group coordinator: classic consumer-group membership and committed offsets.
//!
//! ```text
//!  JoinGroup / SyncGroup / Heartbeat / LeaveGroup / OffsetCommit / OffsetFetch ...
//!        │ handler/<api>.rs
//!        ▼
//!  coordinator.rs ── one task per group ──▶ machine.rs (sans-IO state machine: members,
//!        │                                  generations, rebalances, timers on a given clock)
//!        └── committed offsets and group metadata as records in `__consumer_offsets`
//!            (schema.rs: Kafka's key/value layouts), reloaded at start
//! ```

mod coordinator;
pub(crate) mod machine;
pub(crate) mod schema;
mod store;

pub(crate) use coordinator::{Coordinator, Member};
pub(crate) use schema::{CommittedOffset, OFFSETS_TOPIC};
