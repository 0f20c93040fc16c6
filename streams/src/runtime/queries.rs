//! Interactive queries: reading a running instance's stores from other threads, and
//! finding which instance holds a key.
//!
//! ```text
//!  KafkaStreams::get(store, key) ──channel──▶ instance loop (between polls) ──▶ its tasks'
//!        ▲                                                                    and global
//!        └──────────────────────── answer (oneshot) ◀──────────────────────── stores
//!  KafkaStreams::metadata_for_key(topic, key) ──▶ partition = murmur2(key) % partitions
//!        ──▶ the group member assigned that partition ──▶ its `application.server`
//! ```
//!
//! An instance announces its `application.server` (host:port of the user's own query
//! endpoint) in its consumer's client id (`<application.id>-consumer@host:port`), which
//! DescribeGroups shows every member, so any instance (or tool) can route a query.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::state::SharedStore;
use crate::StreamsError;

/// A question for the instance's loop.
pub(crate) enum Query {
    /// The value of a key in a store, from whichever local task holds it.
    Get {
        store: String,
        key: Bytes,
        reply: oneshot::Sender<Result<Option<Bytes>, StreamsError>>,
    },
    /// Every entry of a store across the local tasks.
    All {
        store: String,
        reply: oneshot::Sender<Result<Vec<(Bytes, Bytes)>, StreamsError>>,
    },
    /// The instance's active and standby tasks.
    Tasks { reply: oneshot::Sender<LocalTasks> },
}

/// The tasks (by partition number) an instance runs and those it keeps standbys of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalTasks {
    /// Tasks processing records here.
    pub active: BTreeSet<i32>,
    /// Tasks whose state is kept here as a standby replica.
    pub standby: BTreeSet<i32>,
}

/// Answers `query` from the stores of the local tasks (`tasks`) and the global ones;
/// `local` lists the tasks.
pub(crate) fn answer<'a>(
    query: Query,
    tasks: impl Iterator<Item = &'a BTreeMap<String, SharedStore>>,
    globals: &BTreeMap<String, SharedStore>,
    local: LocalTasks,
) {
    let stores = |name: &str, tasks: Vec<&'a BTreeMap<String, SharedStore>>| -> Vec<SharedStore> {
        tasks
            .into_iter()
            .filter_map(|t| t.get(name).cloned())
            .chain(globals.get(name).cloned())
            .collect()
    };
    let tasks: Vec<_> = tasks.collect();
    match query {
        Query::Get { store, key, reply } => {
            let found = stores(&store, tasks);
            let result = if found.is_empty() {
                Err(StreamsError::UnknownStore { store })
            } else {
                found
                    .iter()
                    .map(|s| s.borrow_mut().lookup(&key))
                    .find(|r| !matches!(r, Ok(None)))
                    .unwrap_or(Ok(None))
                    .map_err(StreamsError::from)
            };
            let _ = reply.send(result);
        }
        Query::All { store, reply } => {
            let found = stores(&store, tasks);
            let result = if found.is_empty() {
                Err(StreamsError::UnknownStore { store })
            } else {
                found
                    .iter()
                    .map(|s| s.borrow_mut().all())
                    .collect::<Result<Vec<_>, _>>()
                    .map(|parts| parts.into_iter().flatten().collect())
                    .map_err(StreamsError::from)
            };
            let _ = reply.send(result);
        }
        Query::Tasks { reply } => {
            let _ = reply.send(local);
        }
    }
}

/// Where a key lives: its partition (the task's number) and the `application.server` of
/// the instance that holds it, if that instance announced one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyQueryMetadata {
    /// The partition (and task) of the key.
    pub partition: i32,
    /// `host:port` of the instance holding it (`None`: no instance holds it now, or it
    /// announced no `application.server`).
    pub host: Option<String>,
}

/// The partition Kafka's default partitioner gives `key` among `partitions`.
pub(crate) fn partition_of(key: &[u8], partitions: usize) -> i32 {
    let hash = strom_client::producer::partitioner::murmur2(key) & 0x7fff_ffff;
    let n = i32::try_from(partitions.max(1)).unwrap_or(i32::MAX);
    hash % n
}

/// The `application.server` a consumer's client id announces.
pub(crate) fn server_of(client_id: &str) -> Option<String> {
    client_id
        .split_once('@')
        .map(|(_, server)| server.to_owned())
}
