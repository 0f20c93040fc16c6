//! Restoring a task's stores from their changelogs before the task processes anything.
//!
//! For each store: from its checkpoint (a persistent store that was flushed) or from the
//! changelog's start, every change of the task's changelog partition is applied, up to
//! the high watermark read when the restore began. Under exactly-once the restore
//! consumer reads committed changes only.

use std::collections::BTreeMap;
use std::time::Duration;

use strom_client::admin::{Admin, OffsetSpec};
use strom_client::consumer::Consumer;
use tracing::{debug, info, warn};

use crate::state::{changelog_topic, SharedStore};
use crate::StreamsError;

/// Restores `stores` (of the task of `partition`) from their changelogs; the next
/// changelog offset of each, by store name.
///
/// # Errors
/// Client errors, and store failures.
pub(crate) async fn restore(
    admin: &Admin,
    consumer: &Consumer,
    application_id: &str,
    partition: i32,
    stores: &BTreeMap<String, SharedStore>,
) -> Result<BTreeMap<String, i64>, StreamsError> {
    let mut next = BTreeMap::new();
    for (name, store) in stores {
        let topic = changelog_topic(application_id, name);
        let listed = admin.list_offsets(&topic, OffsetSpec::Latest).await?;
        let end = listed.get(&partition).map_or(0, |o| o.offset);
        let earliest = admin.list_offsets(&topic, OffsetSpec::Earliest).await?;
        let earliest = earliest.get(&partition).map_or(0, |o| o.offset);
        let checkpoint = store.borrow().checkpoint();
        let start = match checkpoint {
            Some(offset) if (earliest..=end).contains(&offset) => offset,
            Some(offset) => {
                // Not this changelog's (a recreated topic, another cluster): start over.
                warn!(store = %name, partition, checkpoint = offset, earliest, end, "checkpoint outside the changelog, restoring from its start");
                store.borrow_mut().clear()?;
                earliest
            }
            None => earliest,
        };
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
