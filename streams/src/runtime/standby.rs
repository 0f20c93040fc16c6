//! Standby replicas (`num.standby.replicas`): copies of other instances' task state, kept
//! up to date from the changelogs, so a task that moves here starts from them instead of
//! replaying its changelogs from the start.
//!
//! ```text
//!  group members (DescribeGroups), ordered by member id; task p owned by member i
//!    ──▶ its standbys: members i+1 .. i+n (wrapping), never the owner
//!  standby consumer ──changelog partitions of the standby tasks──▶ their stores
//!  task p assigned here ──▶ its standby becomes the active task, restored only from where
//!                          the standby had read
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use strom_client::admin::Admin;
use strom_client::consumer::Consumer;
use tracing::info;

use super::restore::start_offsets;
use crate::state::changelog_topic;
use crate::task::Task;
use crate::StreamsError;

/// A task kept as a standby, and the changelog offsets its stores hold up to.
pub(crate) struct StandbyTask {
    pub(crate) task: Task,
    pub(crate) next_changelog: BTreeMap<String, i64>,
}

/// The instance's standby tasks and the consumer that feeds them.
pub(crate) struct Standbys {
    consumer: Consumer,
    tasks: HashMap<i32, StandbyTask>,
    /// Changelog topic to store name.
    stores_by_topic: BTreeMap<String, String>,
}

impl Standbys {
    pub(crate) fn new(consumer: Consumer, application_id: &str, stores: &[&str]) -> Standbys {
        Standbys {
            consumer,
            tasks: HashMap::new(),
            stores_by_topic: stores
                .iter()
                .map(|s| (changelog_topic(application_id, s), (*s).to_owned()))
                .collect(),
        }
    }

    /// The partitions this instance should keep standbys of: for each task of another
    /// member, the `replicas` members after its owner in member-id order.
    ///
    /// # Errors
    /// Client errors.
    pub(crate) async fn wanted(
        admin: &Admin,
        application_id: &str,
        me: &str,
        replicas: usize,
    ) -> Result<BTreeSet<i32>, StreamsError> {
        let group = admin.describe_group(application_id).await?;
        let mut members: Vec<(&str, BTreeSet<i32>)> = group
            .members
            .iter()
            .map(|m| {
                let tasks = m.assignment.iter().map(|(_, p)| *p).collect();
                (m.member_id.as_str(), tasks)
            })
            .collect();
        members.sort_by(|a, b| a.0.cmp(b.0));
        let Some(mine) = members.iter().position(|(id, _)| *id == me) else {
            return Ok(BTreeSet::new());
        };
        let count = members.len();
        let mut wanted = BTreeSet::new();
        for (owner, (_, tasks)) in members.iter().enumerate() {
            let holders = (1..=replicas.min(count.saturating_sub(1))).map(|k| (owner + k) % count);
            if holders.into_iter().any(|h| h == mine) {
                wanted.extend(tasks.iter().copied());
            }
        }
        Ok(wanted)
    }

    /// Keeps standbys of `wanted` except the `active` ones: new ones are built with
    /// `make` and start where their stores' checkpoints say.
    ///
    /// # Errors
    /// Client and store errors.
    pub(crate) async fn sync(
        &mut self,
        admin: &Admin,
        application_id: &str,
        wanted: &BTreeSet<i32>,
        active: &BTreeSet<i32>,
        make: impl Fn(i32) -> Result<Task, StreamsError>,
    ) -> Result<(), StreamsError> {
        let keep: BTreeSet<i32> = wanted.difference(active).copied().collect();
        let before: BTreeSet<i32> = self.tasks.keys().copied().collect();
        if before == keep {
            return Ok(());
        }
        self.tasks.retain(|p, _| keep.contains(p));
        for &partition in keep.difference(&before) {
            let task = make(partition)?;
            let next_changelog =
                start_offsets(admin, application_id, partition, task.stores()).await?;
            self.tasks.insert(
                partition,
                StandbyTask {
                    task,
                    next_changelog,
                },
            );
        }
        let mut assigned = Vec::new();
        for (partition, standby) in &self.tasks {
            for (store, offset) in &standby.next_changelog {
                assigned.push((changelog_topic(application_id, store), *partition, *offset));
            }
        }
        let partitions: Vec<(String, i32)> =
            assigned.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        self.consumer.assign(&partitions)?;
        for (topic, partition, offset) in assigned {
            self.consumer.seek(&topic, partition, offset)?;
        }
        info!(application = %application_id, standbys = ?keep, "standby tasks");
        Ok(())
    }

    /// Applies what arrived on the standbys' changelogs.
    ///
    /// # Errors
    /// Client and store errors.
    pub(crate) async fn poll(&mut self) -> Result<(), StreamsError> {
        if self.tasks.is_empty() {
            return Ok(());
        }
        for record in self.consumer.poll(Duration::ZERO).await? {
            let (Some(store), Some(standby)) = (
                self.stores_by_topic.get(&record.topic),
                self.tasks.get_mut(&record.partition),
            ) else {
                continue;
            };
            standby
                .next_changelog
                .insert(store.clone(), record.offset + 1);
            let (Some(target), Some(key)) = (standby.task.stores().get(store), record.key) else {
                continue;
            };
            target
                .borrow_mut()
                .restore(key, record.value, record.timestamp)?;
        }
        Ok(())
    }

    /// The standby of `partition`, to become its active task.
    pub(crate) fn take(&mut self, partition: i32) -> Option<StandbyTask> {
        self.tasks.remove(&partition)
    }

    /// Flushes the standbys' stores with their checkpoints.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) fn flush(&self) -> Result<(), StreamsError> {
        for standby in self.tasks.values() {
            for (name, store) in standby.task.stores() {
                let checkpoint = standby.next_changelog.get(name).copied();
                store.borrow_mut().flush(checkpoint)?;
            }
        }
        Ok(())
    }

    /// The partitions kept as standbys.
    pub(crate) fn partitions(&self) -> BTreeSet<i32> {
        self.tasks.keys().copied().collect()
    }
}
