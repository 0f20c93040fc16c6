//! `strom groups`: list, describe, reset and delete consumer groups on any Kafka cluster,
//! through the admin client, as Kafka's `kafka-consumer-groups` does.
//!
//! `describe` shows the group's state and members with their partitions, then for each
//! partition the committed offset, the log end offset and the lag between them. `reset`
//! and `delete` work only on groups without members (stop the consumers first): a live
//! member would overwrite the offsets with its next commit.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strom_client::admin::{Admin, GroupDescription, GroupOffset, OffsetSpec, ResetTo};

use crate::consume_cmd::parse_rfc3339;

#[derive(Args, Debug)]
pub struct GroupsArgs {
    /// Broker to bootstrap from.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    /// A properties file of client settings for a secured cluster (`security.protocol`,
    /// `ssl.ca.location`, ...), as Kafka's tools take it.
    #[arg(long, value_name = "FILE", global = true)]
    command_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Subcommand, Debug)]
enum GroupsCommand {
    /// List group ids.
    List {
        /// Show each group's state too.
        #[arg(long)]
        state: bool,
    },
    /// Show state, members and their partitions, and per partition the committed offset,
    /// log end offset and lag.
    Describe {
        /// Group id.
        group: String,
    },
    /// Delete groups without members, with their committed offsets.
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move a group's committed offsets (only while it has no members).
    Reset {
        /// Group id.
        group: String,
        /// Topic whose partitions are reset; repeatable.
        #[arg(long = "topic", short = 't', required = true, value_name = "TOPIC")]
        topics: Vec<String>,
        #[command(flatten)]
        to: Target,
        /// Show the new offsets without committing them.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Where `reset` moves the offsets: exactly one of these.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct Target {
    /// To the first record still in each partition.
    #[arg(long)]
    to_earliest: bool,
    /// To the end of each partition: only new records are read.
    #[arg(long)]
    to_latest: bool,
    /// To this offset in each partition (moved into the partition's log).
    #[arg(long, value_name = "N")]
    to_offset: Option<i64>,
    /// To the first record at or after this time, RFC 3339 (`2024-05-01T12:00:00Z`).
    #[arg(long, value_name = "RFC3339")]
    to_datetime: Option<String>,
}

impl Target {
    fn reset_to(&self) -> anyhow::Result<ResetTo> {
        Ok(match (self.to_offset, &self.to_datetime) {
            (Some(n), _) => ResetTo::Offset(n),
            (None, Some(t)) => {
                ResetTo::Timestamp(parse_rfc3339(t).with_context(|| format!("--to-datetime {t}"))?)
            }
            (None, None) if self.to_latest => ResetTo::Latest,
            (None, None) => ResetTo::Earliest,
        })
    }
}

pub async fn run(args: GroupsArgs) -> anyhow::Result<()> {
    let admin = crate::produce_cmd::admin(&args.bootstrap, args.command_config.as_deref())
        .await
        .with_context(|| format!("connecting to {}", args.bootstrap))?;
    match args.command {
        GroupsCommand::List { state } => {
            let groups = admin.list_groups().await?;
            if state {
                let rows = groups.into_iter().map(|g| {
                    let state = g.state.unwrap_or_else(|| "-".to_owned());
                    vec![g.group_id, state]
                });
                print_table(&["GROUP", "STATE"], rows.collect());
            } else {
                for g in groups {
                    println!("{}", g.group_id);
                }
            }
        }
        GroupsCommand::Describe { group } => describe(&admin, &group).await?,
        GroupsCommand::Delete { groups } => {
            let names: Vec<&str> = groups.iter().map(String::as_str).collect();
            let mut failed = 0;
            for (group, result) in admin.delete_groups(&names).await? {
                match result {
                    Ok(()) => println!("deleted group {group}"),
                    Err(e) => {
                        eprintln!("strom: group {group} not deleted: {e}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} group(s) not deleted", groups.len());
            }
        }
        GroupsCommand::Reset {
            group,
            topics,
            to,
            dry_run,
        } => {
            let to = to.reset_to()?;
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            let offsets = if dry_run {
                admin.plan_reset_group_offsets(&group, &topics, to).await?
            } else {
                admin.reset_group_offsets(&group, &topics, to).await?
            };
            let rows = offsets
                .into_iter()
                .map(|(t, p, o)| vec![t, p.to_string(), o.to_string()]);
            print_table(&["TOPIC", "PARTITION", "NEW-OFFSET"], rows.collect());
            if dry_run {
                eprintln!("dry run: the offsets of group {group} were not changed");
            }
        }
    }
    Ok(())
}

async fn describe(admin: &Admin, group: &str) -> anyhow::Result<()> {
    let description = admin.describe_group(group).await?;
    let offsets = admin.group_offsets(group).await?;
    if description.state == "Dead" && offsets.is_empty() {
        bail!("group {group} does not exist");
    }
    let protocol = match (
        description.protocol.as_str(),
        description.protocol_type.as_str(),
    ) {
        ("", "") => String::new(),
        ("", kind) => format!("  type {kind}"),
        (protocol, kind) => format!("  protocol {protocol} ({kind})"),
    };
    println!(
        "group {}  state {}{protocol}  members {}",
        description.group_id,
        description.state,
        description.members.len()
    );
    if !description.members.is_empty() {
        println!();
        let rows = description.members.iter().map(|m| {
            vec![
                m.member_id.clone(),
                m.client_id.clone(),
                m.client_host.clone(),
                assignment(&m.assignment),
            ]
        });
        print_table(
            &["MEMBER-ID", "CLIENT-ID", "HOST", "PARTITIONS"],
            rows.collect(),
        );
    }
    let rows = partition_rows(admin, &description, offsets).await?;
    if !rows.is_empty() {
        println!();
        print_table(
            &[
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "MEMBER-ID",
            ],
            rows,
        );
    }
    Ok(())
}

/// A row per partition with a committed offset or an owner: offsets, lag and owner, `-`
/// for what is unknown.
async fn partition_rows(
    admin: &Admin,
    description: &GroupDescription,
    offsets: Vec<GroupOffset>,
) -> anyhow::Result<Vec<Vec<String>>> {
    let owners: BTreeMap<(&str, i32), &str> = description
        .members
        .iter()
        .flat_map(|m| {
            m.assignment
                .iter()
                .map(|(t, p)| ((t.as_str(), *p), m.member_id.as_str()))
        })
        .collect();
    let committed: BTreeMap<(&str, i32), &GroupOffset> = offsets
        .iter()
        .map(|o| ((o.topic.as_str(), o.partition), o))
        .collect();
    // Owned partitions without a committed offset still have a log end worth showing.
    let uncommitted: BTreeSet<&str> = owners
        .keys()
        .filter(|tp| !committed.contains_key(tp))
        .map(|(t, _)| *t)
        .collect();
    let mut ends = BTreeMap::new();
    for topic in uncommitted {
        let found = admin
            .list_offsets(topic, OffsetSpec::Latest)
            .await
            .with_context(|| format!("listing the end offsets of {topic}"))?;
        ends.extend(found.into_iter().map(|(p, o)| ((topic, p), o.offset)));
    }
    let known = |n: i64| if n < 0 { "-".to_owned() } else { n.to_string() };
    let partitions: BTreeSet<(&str, i32)> =
        owners.keys().chain(committed.keys()).copied().collect();
    Ok(partitions
        .into_iter()
        .map(|tp| {
            let (current, end, lag) = match committed.get(&tp) {
                Some(o) => (o.committed, o.log_end_offset, o.lag),
                None => (-1, ends.get(&tp).copied().unwrap_or(-1), -1),
            };
            vec![
                tp.0.to_owned(),
                tp.1.to_string(),
                known(current),
                known(end),
                known(lag),
                owners.get(&tp).map_or("-", |m| m).to_owned(),
            ]
        })
        .collect())
}

/// Partitions as `topic(0,1,2)`, a group per topic.
fn assignment(partitions: &[(String, i32)]) -> String {
    let mut by_topic: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(p.to_string());
    }
    if by_topic.is_empty() {
        return "-".to_owned();
    }
    let topics: Vec<String> = by_topic
        .into_iter()
        .map(|(t, ps)| format!("{t}({})", ps.join(",")))
        .collect();
    topics.join(" ")
}

/// Prints `rows` under `header` in columns two spaces apart, each as wide as its widest
/// cell (the last one unpadded).
fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    for line in table(header, &rows) {
        println!("{line}");
    }
}

pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    std::iter::once(&header)
        .chain(rows)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, &w)| format!("{cell:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned() {
        let rows = vec![
            vec!["orders".to_owned(), "0".to_owned(), "12".to_owned()],
            vec!["o".to_owned(), "10".to_owned(), "-".to_owned()],
        ];
        assert_eq!(
            table(&["TOPIC", "PARTITION", "LAG"], &rows),
            [
                "TOPIC   PARTITION  LAG",
                "orders  0          12",
                "o       10         -"
            ]
        );
    }

    #[test]
    fn assignments_group_by_topic() {
        let tps = [
            ("a".to_owned(), 0),
            ("a".to_owned(), 2),
            ("b".to_owned(), 1),
        ];
        assert_eq!(assignment(&tps), "a(0,2) b(1)");
        assert_eq!(assignment(&[]), "-");
    }
}
