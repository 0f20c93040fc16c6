//! Restoring a task's stores from their changelogs before the task processes anything.
//!
//! For each store: from its checkpoint (a persistent store that was flushed), from where a
//! standby had read, or from the changelog's start, every change of the task's changelog
//! partition is applied, up to the high watermark read when the restore began. Under
//! exactly-once the restore consumer reads committed changes only.

use std::collections::BTreeMap;
use std::time::Duration;

use strom_client::admin::{Admin, OffsetSpec};
use strom_client::consumer::Consumer;
use tracing::{debug, info, warn};

use crate::state::{changelog_topic, SharedStore};
use crate::StreamsError;

/// Where each store's replay starts: its checkpoint when that lies inside the changelog,
/// otherwise the changelog's start (and the store is emptied).
///
/// # Errors
/// Client errors, and store failures.
pub(crate) async fn start_offsets(
    admin: &Admin,
    application_id: &str,
    partition: i32,
    stores: &BTreeMap<String, SharedStore>,
) -> Result<BTreeMap<String, i64>, StreamsError> {
    let mut starts = BTreeMap::new();
    for (name, store) in stores {
        let topic = changelog_topic(application_id, name);
        let (earliest, end) = bounds(admin, &topic, partition).await?;
        let checkpoint = store.borrow().checkpoint();
        let start = match checkpoint {
            Some(offset) if (earliest..=end).contains(&offset) => offset,
            Some(offset) => {
                // Not this changelog's (a recreated topic, another cluster): start over.
                warn!(store = %name, partition, checkpoint = offset, earliest, end, "checkpoint outside the changelog, restoring from its start");
                store.borrow_mut().clear()?;
                earliest
            }
            None => {
                store.borrow_mut().clear()?;
                earliest
            }
        };
        starts.insert(name.clone(), start);
    }
    Ok(starts)
}

/// The log start and the high watermark of a changelog partition.
async fn bounds(admin: &Admin, topic: &str, partition: i32) -> Result<(i64, i64), StreamsError> {
    let end = admin.list_offsets(topic, OffsetSpec::Latest).await?;
    let end = end.get(&partition).map_or(0, |o| o.offset);
    let earliest = admin.list_offsets(topic, OffsetSpec::Earliest).await?;
    let earliest = earliest.get(&partition).map_or(0, |o| o.offset);
    Ok((earliest, end))
}

/// Replays the changelogs of `stores` (of the task of `partition`) from `starts` to their
/// ends; the next changelog offset of each, by store name.
///
/// # Errors
/// Client errors, and store failures.
pub(crate) async fn restore(
    admin: &Admin,
    consumer: &Consumer,
    application_id: &str,
    partition: i32,
    stores: &BTreeMap<String, SharedStore>,
    starts: &BTreeMap<String, i64>,
) -> Result<BTreeMap<String, i64>, StreamsError> {
    let mut next = BTreeMap::new();
    for (name, store) in stores {
        let topic = changelog_topic(application_id, name);
        let (earliest, end) = bounds(admin, &topic, partition).await?;
        let start = starts.get(name).copied().unwrap_or(earliest).max(earliest);
        next.insert(name.clone(), end.max(start));
        if start >= end {
            debug!(store = %name, partition, end, "nothing to restore");
            continue;
        }
        let assigned = [(topic.clone(), partition)];
        consumer.assign(&assigned)?;
        consumer.seek(&topic, partition, start)?;
        let mut restored = 0u64;
        while consumer.position(&topic, partition).await? < end {
            for record in consumer.poll(Duration::from_millis(100)).await? {
                if record.topic != topic || record.partition != partition {
                    continue;
                }
                let Some(key) = record.key else {
                    continue;
                };
                store
                    .borrow_mut()
                    .restore(key, record.value, record.timestamp)?;
                restored += 1;
            }
        }
        info!(store = %name, partition, from = start, to = end, restored, "store restored");
    }
    consumer.assign(&[])?;
    Ok(next)
}
