//! `strom broker`: a broker that needs no configuration.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use strom_broker::{Broker, BrokerConfig};

#[derive(Args, Debug)]
pub struct BrokerArgs {
    /// Folder for logs and broker metadata.
    #[arg(long, default_value = "./strom-data")]
    data_dir: PathBuf,
    /// Address of the first listener (port 0 picks a free port); 127.0.0.1:9092 unless
    /// given here or by `listeners` in the config file.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// This node's id (`node.id`).
    #[arg(long)]
    node_id: Option<i32>,
    /// The metadata quorum's controllers, `ID@HOST:PORT,...` (`controller.quorum.voters`),
    /// this node among them; without it the node is a cluster of its own.
    #[arg(long, value_name = "ID@HOST:PORT,...")]
    controllers: Option<String>,
    /// TOML file of Kafka broker keys (e.g. `"log.retention.ms" = 3600000`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Set one Kafka broker key, e.g. `--set num.partitions=3`; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

pub async fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let mut config = BrokerConfig::new(&args.data_dir);
    if let Some(path) = &args.config {
        config.apply_toml_file(path)?;
    }
    // Flags win over the file.
    config.data_dir = args.data_dir.clone();
    let defaults = BrokerConfig::new(&args.data_dir).listeners;
    match args.listen {
        Some(address) => config.set_listen(address),
        None if config.listeners == defaults => {
            config.set_listen(SocketAddr::from(([127, 0, 0, 1], 9092)))
        }
        None => {}
    }
    if let Some(id) = args.node_id {
        config.node_id = id;
    }
    if let Some(controllers) = &args.controllers {
        config.set("controller.quorum.voters", controllers)?;
    }
    for pair in &args.overrides {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--set {pair}: expected KEY=VALUE"))?;
        config.set(key.trim(), value.trim())?;
    }
    let broker = Broker::start(config).await?;
    // The first stdout line tells scripts (and tests using port 0) where to connect.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "strom broker listening on {}", broker.bootstrap())?;
    stdout.flush()?;
    wait_for_signal().await?;
    tracing::info!("shutting down");
    broker.shutdown().await?;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
