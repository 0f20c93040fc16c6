//! `strom topics`: list, create, describe, delete, grow, configure and move topics on any
//! Kafka cluster, through the admin client.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strom_client::admin::{
    Admin, AlterConfigOp, ConfigResource, ConfigSource, ElectionType, NewTopic,
    OngoingReassignment, PartitionMove,
};
use strom_protocol::ErrorCode;

#[derive(Args, Debug)]
pub struct TopicsArgs {
    /// Broker to bootstrap from.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    /// A properties file of client settings for a secured cluster (`security.protocol`,
    /// `ssl.ca.location`, ...), as Kafka's tools take it.
    #[arg(long, value_name = "FILE", global = true)]
    command_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Subcommand, Debug)]
enum TopicsCommand {
    /// List topic names.
    List {
        /// Include internal topics (`__consumer_offsets`, ...).
        #[arg(long)]
        internal: bool,
    },
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Partitions (default: the broker's `num.partitions`).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's).
        #[arg(long, short = 'r')]
        replication_factor: Option<i16>,
        /// A topic config, e.g. `--config retention.ms=60000`; repeatable.
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// Show partitions, leaders, replicas and the configs that differ from defaults.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Grow a topic to a total number of partitions.
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total.
        #[arg(long)]
        total: i32,
    },
    /// Move partitions' replicas to other brokers while clients carry on: one partition
    /// (`--partition P --replicas 2,3,4`), a whole topic spread over `--brokers`, or a
    /// plan file in Kafka's reassignment JSON (`--plan FILE`). `--cancel` stops moves in
    /// progress; `--wait` waits until they are done.
    Reassign(ReassignArgs),
    /// List the reassignments in progress.
    Reassignments {
        /// Only this topic's.
        name: Option<String>,
    },
    /// Move leadership back to each partition's preferred (first) replica, or with
    /// `--unclean` give a partition without a leader any live replica (records only the
    /// lost replicas held are lost).
    ElectLeaders {
        /// Only this topic's partitions (default: all).
        name: Option<String>,
        /// Only this partition (with a topic).
        #[arg(long, requires = "name")]
        partition: Option<i32>,
        /// Unclean election instead of preferred.
        #[arg(long)]
        unclean: bool,
    },
    /// Change topic configs.
    Alter {
        /// Topic name.
        name: String,
        /// Set a config, e.g. `--set retention.ms=60000`; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Return a config to its default; repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

#[derive(Args, Debug)]
struct ReassignArgs {
    /// The topic (not with `--plan`).
    name: Option<String>,
    /// One partition to move (with `--replicas`), or to cancel.
    #[arg(long)]
    partition: Option<i32>,
    /// The partition's new replicas, preferred leader first, e.g. `2,3,4`.
    #[arg(long, value_delimiter = ',', requires = "partition")]
    replicas: Option<Vec<i32>>,
    /// Spread every partition of the topic over these brokers, e.g. `2,3,4`.
    #[arg(long, value_delimiter = ',', conflicts_with = "replicas")]
    brokers: Option<Vec<i32>>,
    /// With `--brokers`: replicas per partition (default: the topic's).
    #[arg(long, requires = "brokers")]
    replication_factor: Option<usize>,
    /// A plan in Kafka's reassignment JSON:
    /// `{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2]}]}`.
    #[arg(long, conflicts_with_all = ["name", "brokers", "replicas"])]
    plan: Option<std::path::PathBuf>,
    /// Cancel the moves in progress (of the topic, or of `--partition`).
    #[arg(long, conflicts_with_all = ["replicas", "brokers", "plan"])]
    cancel: bool,
    /// Print the moves without making them.
    #[arg(long)]
    dry_run: bool,
    /// Wait until the moves are complete.
    #[arg(long)]
    wait: bool,
}

/// Kafka's reassignment plan file.
#[derive(serde::Deserialize, serde::Serialize)]
struct Plan {
    #[serde(default = "plan_version")]
    version: i32,
    partitions: Vec<PlannedPartition>,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct PlannedPartition {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
}

fn plan_version() -> i32 {
    1
}

fn pair(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("{s:?}: expected KEY=VALUE"))?;
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    let admin = crate::produce_cmd::admin(&args.bootstrap, args.command_config.as_deref()).await?;
    match args.command {
        TopicsCommand::List { internal } => {
            for name in admin.list_topics(internal).await? {
                println!("{name}");
            }
        }
        TopicsCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut topic = NewTopic::new(&name);
            if let Some(p) = partitions {
                topic = topic.partitions(p);
            }
            if let Some(r) = replication_factor {
                topic = topic.replication_factor(r);
            }
            for c in &configs {
                let (k, v) = pair(c)?;
                topic = topic.config(k, v);
            }
            let id = admin.create_topic(topic).await?;
            println!("created topic {name} (id {id})");
        }
        TopicsCommand::Describe { name } => describe(&admin, &name).await?,
        TopicsCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            println!("deleted topic {name}");
        }
        TopicsCommand::AddPartitions { name, total } => {
            admin.create_partitions(&name, total).await?;
            println!("topic {name} now has {total} partitions");
        }
        TopicsCommand::Reassign(args) => reassign(&admin, args).await?,
        TopicsCommand::Reassignments { name } => {
            let ongoing = list_moves(&admin, name.as_deref()).await?;
            if ongoing.is_empty() {
                println!("no reassignment in progress");
            }
            for r in ongoing {
                println!(
                    "{} partition {}  replicas {:?}  adding {:?}  removing {:?}",
                    r.topic, r.partition, r.replicas, r.adding, r.removing
                );
            }
        }
        TopicsCommand::ElectLeaders {
            name,
            partition,
            unclean,
        } => elect(&admin, name, partition, unclean).await?,
        TopicsCommand::Alter { name, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
            }
            let mut ops = Vec::new();
            for s in &set {
                let (k, v) = pair(s)?;
                ops.push(AlterConfigOp::Set(k, v));
            }
            ops.extend(delete.into_iter().map(AlterConfigOp::Delete));
            admin
                .alter_configs(ConfigResource::Topic(name.clone()), &ops)
                .await?;
            println!("altered configs of {name}");
        }
    }
    Ok(())
}

/// The partitions of `name` and their current replicas.
async fn replicas_of(admin: &Admin, name: &str) -> anyhow::Result<Vec<(i32, Vec<i32>)>> {
    let topic = admin
        .describe_topics(&[name])
        .await?
        .into_iter()
        .next()
        .filter(|t| !t.partitions.is_empty())
        .with_context(|| format!("topic {name} not found"))?;
    Ok(topic
        .partitions
        .iter()
        .map(|p| (p.partition, p.replicas.clone()))
        .collect())
}

/// Every partition of a topic spread round-robin over `brokers`, `factor` replicas each,
/// each partition's preferred leader on the next broker.
fn spread(partitions: &[(i32, Vec<i32>)], brokers: &[i32], factor: usize) -> Vec<(i32, Vec<i32>)> {
    partitions
        .iter()
        .map(|(p, _)| {
            let start = usize::try_from(*p).unwrap_or(0);
            let replicas = (0..factor)
                .map(|j| brokers[(start + j) % brokers.len()])
                .collect();
            (*p, replicas)
        })
        .collect()
}

async fn reassign(admin: &Admin, args: ReassignArgs) -> anyhow::Result<()> {
    let moves: Vec<PartitionMove> = if let Some(path) = &args.plan {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let plan: Plan = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a reassignment plan", path.display()))?;
        if plan.version != 1 {
            bail!(
                "{}: plan version {} (expected 1)",
                path.display(),
                plan.version
            );
        }
        plan.partitions
            .into_iter()
            .map(|p| PartitionMove {
                topic: p.topic,
                partition: p.partition,
                replicas: Some(p.replicas),
            })
            .collect()
    } else {
        let Some(name) = args.name.clone() else {
            bail!("name a topic, or give --plan FILE");
        };
        let current = replicas_of(admin, &name).await?;
        let chosen: Vec<(i32, Option<Vec<i32>>)> = if args.cancel {
            current
                .iter()
                .filter(|(p, _)| args.partition.is_none_or(|only| only == *p))
                .map(|(p, _)| (*p, None))
                .collect()
        } else if let Some(replicas) = args.replicas.clone() {
            let partition = args.partition.context("--replicas needs --partition")?;
            vec![(partition, Some(replicas))]
        } else if let Some(brokers) = args.brokers.clone() {
            let factor = args
                .replication_factor
                .or_else(|| current.first().map(|(_, r)| r.len()))
                .unwrap_or(1);
            if brokers.is_empty() || factor == 0 || factor > brokers.len() {
                bail!(
                    "{factor} replicas per partition cannot be spread over {} brokers",
                    brokers.len()
                );
            }
            spread(&current, &brokers, factor)
                .into_iter()
                .filter(|(p, replicas)| {
                    args.partition.is_none_or(|only| only == *p) && {
                        current.iter().any(|(q, r)| q == p && r != replicas)
                    }
                })
                .map(|(p, r)| (p, Some(r)))
                .collect()
        } else {
            bail!("say where to: --partition P --replicas 1,2,3, --brokers 1,2,3, or --cancel");
        };
        chosen
            .into_iter()
            .map(|(partition, replicas)| PartitionMove {
                topic: name.clone(),
                partition,
                replicas,
            })
            .collect()
    };
    if moves.is_empty() {
        println!("nothing to move: the partitions are already there");
        return Ok(());
    }
    if args.dry_run || !args.cancel {
        let plan = Plan {
            version: 1,
            partitions: moves
                .iter()
                .filter_map(|m| {
                    Some(PlannedPartition {
                        topic: m.topic.clone(),
                        partition: m.partition,
                        replicas: m.replicas.clone()?,
                    })
                })
                .collect(),
        };
        println!("{}", serde_json::to_string(&plan)?);
    }
    if args.dry_run {
        return Ok(());
    }
    let mut failed = 0;
    for outcome in admin.alter_partition_reassignments(&moves).await? {
        match outcome.result {
            Ok(()) => println!(
                "{} partition {}: {}",
                outcome.topic,
                outcome.partition,
                if args.cancel { "cancelled" } else { "moving" }
            ),
            Err(e) => {
                failed += 1;
                eprintln!("{} partition {}: {e}", outcome.topic, outcome.partition);
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} partitions not reassigned", moves.len());
    }
    if args.wait && !args.cancel {
        let mut topics: Vec<&str> = moves.iter().map(|m| m.topic.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        loop {
            let mut left = 0;
            for topic in &topics {
                left += list_moves(admin, Some(topic))
                    .await?
                    .iter()
                    .filter(|r| {
                        moves
                            .iter()
                            .any(|m| m.topic == r.topic && m.partition == r.partition)
                    })
                    .count();
            }
            if left == 0 {
                println!("reassignment complete");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

async fn list_moves(admin: &Admin, name: Option<&str>) -> anyhow::Result<Vec<OngoingReassignment>> {
    let named = match name {
        Some(name) => {
            let partitions = replicas_of(admin, name)
                .await?
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            Some(vec![(name, partitions)])
        }
        None => None,
    };
    Ok(admin.list_partition_reassignments(named.as_deref()).await?)
}

async fn elect(
    admin: &Admin,
    name: Option<String>,
    partition: Option<i32>,
    unclean: bool,
) -> anyhow::Result<()> {
    let named: Option<Vec<(&str, i32)>> = match (&name, partition) {
        (Some(name), Some(p)) => Some(vec![(name.as_str(), p)]),
        (Some(name), None) => Some(
            replicas_of(admin, name)
                .await?
                .into_iter()
                .map(|(p, _)| (name.as_str(), p))
                .collect(),
        ),
        (None, _) => None,
    };
    let kind = if unclean {
        ElectionType::Unclean
    } else {
        ElectionType::Preferred
    };
    let outcomes = admin.elect_leaders(kind, named.as_deref()).await?;
    let mut elected = 0;
    for outcome in &outcomes {
        match &outcome.result {
            Ok(()) => {
                elected += 1;
                println!(
                    "{} partition {}: new leader elected",
                    outcome.topic, outcome.partition
                );
            }
            Err(_) if outcome.is(ErrorCode::ELECTION_NOT_NEEDED) => {}
            Err(e) => eprintln!("{} partition {}: {e}", outcome.topic, outcome.partition),
        }
    }
    println!("{elected} leaders elected");
    Ok(())
}

async fn describe(admin: &Admin, name: &str) -> anyhow::Result<()> {
    let descriptions = admin.describe_topics(&[name]).await?;
    let Some(topic) = descriptions.into_iter().next() else {
        bail!("topic {name} not found");
    };
    if !topic.error.is_ok() {
        bail!("topic {name}: {}", topic.error.name());
    }
    println!(
        "topic {}  id {}  partitions {}{}",
        topic.name,
        topic.id,
        topic.partitions.len(),
        if topic.internal { "  internal" } else { "" }
    );
    for p in &topic.partitions {
        println!(
            "  partition {:>4}  leader {:>3}  epoch {:>3}  replicas {:?}  isr {:?}",
            p.partition, p.leader, p.leader_epoch, p.replicas, p.isr
        );
    }
    let configs = admin
        .describe_configs(ConfigResource::Topic(name.to_owned()))
        .await?;
    let set: BTreeMap<_, _> = configs
        .iter()
        .filter(|c| c.source == ConfigSource::DynamicTopic)
        .map(|c| (c.name.clone(), c.value.clone().unwrap_or_default()))
        .collect();
    if set.is_empty() {
        println!("  configs: no overrides");
    } else {
        println!("  configs set on the topic:");
        for (k, v) in set {
            println!("    {k}={v}");
        }
    }
    Ok(())
}
