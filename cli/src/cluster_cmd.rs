//! `strom cluster describe`: the cluster's id, controller and brokers, and on clusters
//! with a metadata quorum (Strom, KRaft Kafka) its leader, epoch and voters, as Kafka's
//! `kafka-cluster` and `kafka-metadata-quorum` tools show them.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use strom_client::admin::{ClusterDescription, QuorumDescription};

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Broker to bootstrap from.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    /// A properties file of client settings for a secured cluster (`security.protocol`,
    /// `ssl.ca.location`, ...), as Kafka's tools take it.
    #[arg(long, value_name = "FILE", global = true)]
    command_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Show the cluster id, the controller, the brokers and the metadata quorum.
    Describe,
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let admin = crate::produce_cmd::admin(&args.bootstrap, args.command_config.as_deref())
        .await
        .with_context(|| format!("connecting to {}", args.bootstrap))?;
    match args.command {
        ClusterCommand::Describe => {
            let cluster = admin.describe_cluster().await?;
            // Clusters without a metadata quorum (ZooKeeper-based Kafka) do not answer.
            let quorum = admin.describe_quorum().await.ok();
            let mut out = std::io::stdout().lock();
            write_description(&mut out, &cluster, quorum.as_ref())?;
        }
    }
    Ok(())
}

/// Writes the description as aligned text.
fn write_description(
    out: &mut impl Write,
    cluster: &ClusterDescription,
    quorum: Option<&QuorumDescription>,
) -> std::io::Result<()> {
    writeln!(
        out,
        "cluster id: {}",
        cluster.cluster_id.as_deref().unwrap_or("(none)")
    )?;
    writeln!(out, "controller: {}", cluster.controller_id)?;
    writeln!(out, "brokers:")?;
    for b in &cluster.brokers {
        let rack = b
            .rack
            .as_deref()
            .map(|r| format!(" rack {r}"))
            .unwrap_or_default();
        writeln!(out, "  {:>4}  {}:{}{rack}", b.node_id, b.host, b.port)?;
    }
    match quorum {
        Some(q) => {
            writeln!(
                out,
                "metadata quorum: leader {}, epoch {}, committed offset {}",
                q.leader_id, q.leader_epoch, q.high_watermark
            )?;
            for (id, end) in &q.voters {
                let end = if *end < 0 {
                    "?".to_owned()
                } else {
                    end.to_string()
                };
                writeln!(out, "  voter {id:>4}  log end {end}")?;
            }
            for (id, end) in &q.observers {
                writeln!(out, "  observer {id:>4}  log end {end}")?;
            }
        }
        None => writeln!(out, "metadata quorum: (not reported)")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use strom_client::cluster::BrokerInfo;

    use super::*;

    #[test]
    fn describes_brokers_and_quorum() {
        let cluster = ClusterDescription {
            cluster_id: Some("abc".into()),
            controller_id: 2,
            brokers: vec![BrokerInfo {
                node_id: 1,
                host: "h".into(),
                port: 9092,
                rack: Some("r1".into()),
            }],
        };
        let quorum = QuorumDescription {
            leader_id: 2,
            leader_epoch: 3,
            high_watermark: 40,
            voters: vec![(1, 40), (2, -1)],
            observers: Vec::new(),
        };
        let mut out = Vec::new();
        write_description(&mut out, &cluster, Some(&quorum)).expect("write to a Vec");
        let text = String::from_utf8(out).expect("UTF-8");
        assert_eq!(
            text,
            "cluster id: abc\ncontroller: 2\nbrokers:\n     1  h:9092 rack r1\n\
             metadata quorum: leader 2, epoch 3, committed offset 40\n  \
             voter    1  log end 40\n  voter    2  log end ?\n"
        );
    }
}
