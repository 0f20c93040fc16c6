//! `strom topics`: list, create, describe, delete, grow and configure topics on any Kafka
//! cluster, through the admin client.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strom_client::admin::{Admin, AlterConfigOp, ConfigResource, ConfigSource, NewTopic};
use strom_client::ClientConfig;

#[derive(Args, Debug)]
pub struct TopicsArgs {
    /// Broker to bootstrap from.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
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

fn pair(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("{s:?}: expected KEY=VALUE"))?;
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    let admin = Admin::connect(ClientConfig::new().bootstrap(&args.bootstrap)).await?;
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

async fn describe(admin: &Admin, name: &str) -> anyhow::Result<()> {
    let descriptions = admin.describe_topics(&[name]).await?;
    let Some(topic) = descriptions.into_iter().next() else {
        bail!("topic {name} not found");
    };
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
