//! The application's internal topics: a changelog per state store and the repartition
//! topics, created when an instance starts (an existing one is kept), with as many
//! partitions as the source topics; and the co-partitioning check of the sources read by
//! one task.

use std::collections::BTreeMap;

use strom_client::admin::{Admin, NewTopic};
use strom_protocol::ErrorCode;
use tracing::info;

use crate::state::{changelog_topic, StoreKind};
use crate::topology::Topology;
use crate::StreamsError;

/// Checks the source topics and creates the changelogs; the number of tasks (the
/// largest partition count of the sources).
///
/// # Errors
/// [`StreamsError::MissingSourceTopic`] for a source topic that does not exist,
/// [`StreamsError::NotCopartitioned`] when topics a stateful topology reads together have
/// different partition counts, and client errors.
pub(crate) async fn prepare(
    admin: &Admin,
    topology: &Topology,
    application_id: &str,
) -> Result<i32, StreamsError> {
    let internal = topology.internal_topics();
    let sources: Vec<String> = topology
        .source_topics()
        .into_iter()
        .filter(|t| !internal.contains(t))
        .chain(topology.global_topics().keys().cloned())
        .collect();
    let names: Vec<&str> = sources.iter().map(String::as_str).collect();
    let mut counts = BTreeMap::new();
    for topic in admin.describe_topics(&names).await? {
        if topic.error != ErrorCode::NONE || topic.partitions.is_empty() {
            return Err(StreamsError::MissingSourceTopic { topic: topic.name });
        }
        counts.insert(
            topic.name,
            i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX),
        );
    }
    for group in topology.copartitioned_sources() {
        // Repartition topics get the tasks' count, below.
        let of: BTreeMap<&String, i32> = group
            .iter()
            .filter_map(|t| counts.get(t).map(|c| (t, *c)))
            .collect();
        let mut distinct: Vec<i32> = of.values().copied().collect();
        distinct.dedup();
        if distinct.len() > 1 {
            return Err(StreamsError::NotCopartitioned {
                topics: of.iter().map(|(t, c)| format!("{t} ({c})")).collect(),
            });
        }
    }
    let tasks = counts
        .iter()
        .filter(|(t, _)| !topology.global_topics().contains_key(*t))
        .map(|(_, c)| *c)
        .max()
        .unwrap_or(1);
    let repartition = internal.iter().map(|topic| {
        NewTopic::new(format!("{application_id}-{topic}"))
            .partitions(tasks)
            .config("cleanup.policy", "delete")
    });
    let changelogs: Vec<NewTopic> = topology
        .stores
        .iter()
        .map(|store| {
            let topic =
                NewTopic::new(changelog_topic(application_id, &store.name)).partitions(tasks);
            match store.kind {
                StoreKind::KeyValue => topic.config("cleanup.policy", "compact"),
                StoreKind::Window { retention_ms } => topic
                    .config("cleanup.policy", "compact,delete")
                    .config("retention.ms", retention_ms.to_string()),
            }
        })
        .chain(repartition)
        .collect();
    if !changelogs.is_empty() {
        for (topic, result) in admin.create_topics(&changelogs, false).await? {
            match result {
                Ok(_) => info!(%topic, partitions = tasks, "internal topic created"),
                Err(e) if e.code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(tasks)
}
