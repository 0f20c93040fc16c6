//! `strom connect standalone WORKER.properties CONNECTOR.properties...`: one worker in this
//! process running the connectors the files describe, as Kafka's `connect-standalone`
//! does (offsets, though, in the cluster's offsets topic, so a restart resumes there).
//! `strom connect distributed --config WORKER.properties`: one of a cluster of workers
//! sharing the connectors created through the REST API, as `connect-distributed` does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strom_connect_runtime::{
    parse_properties, DistributedWorker, Herder, Plugins, State, Worker, WorkerConfig,
};

#[derive(Args, Debug)]
pub struct ConnectArgs {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Run connectors in this process until Ctrl-C.
    Standalone {
        /// The worker's properties (bootstrap.servers, converters, offset.* keys).
        worker: PathBuf,
        /// Connector properties files (name, connector.class, tasks.max, its own keys).
        #[arg(required = true)]
        connectors: Vec<PathBuf>,
    },
    /// Join a cluster of workers (those with the same group.id) until Ctrl-C: they share
    /// the connectors created through the REST API of any of them.
    Distributed {
        /// The worker's properties (bootstrap.servers, group.id, config.storage.topic,
        /// status.storage.topic, offset.storage.topic, converters, listeners).
        #[arg(long)]
        config: PathBuf,
    },
}

fn read(path: &Path) -> anyhow::Result<strom_connect_api::ConfigMap> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_properties(&text).with_context(|| path.display().to_string())
}

fn worker_config(path: &Path) -> anyhow::Result<WorkerConfig> {
    let properties = read(path)?;
    if properties.contains_key("offset.storage.file.filename") {
        eprintln!(
            "offset.storage.file.filename is not used: offsets are kept in the offsets topic (offset.storage.topic)"
        );
    }
    WorkerConfig::from_properties(&properties).with_context(|| path.display().to_string())
}

pub async fn run(args: ConnectArgs) -> anyhow::Result<()> {
    match args.mode {
        Mode::Standalone { worker, connectors } => standalone(&worker, &connectors).await,
        Mode::Distributed { config } => distributed(&config).await,
    }
}

async fn standalone(worker: &Path, connectors: &[PathBuf]) -> anyhow::Result<()> {
    let config = worker_config(worker)?;
    let mut configs = Vec::new();
    for path in connectors {
        let config = read(path)?;
        let Some(name) = config.get("name").cloned() else {
            bail!("{}: name is missing", path.display());
        };
        configs.push((name, config));
    }
    let listen = rest_address(&config.get("listeners", "http://0.0.0.0:8083"))?;
    let worker = Arc::new(Worker::start(config, plugins()).await?);
    for (name, config) in configs {
        worker
            .add_connector(&name, config)
            .await
            .with_context(|| format!("connector {name}"))?;
        eprintln!("connector {name} started");
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("REST API on {listen}"))?;
    eprintln!("REST API on http://{}", listener.local_addr()?);
    serve_until_stopped(worker.clone(), listener).await;
    eprintln!("stopping: flushing offsets");
    worker.shutdown().await;
    Ok(())
}

async fn distributed(path: &Path) -> anyhow::Result<()> {
    let config = worker_config(path)?;
    let listen = rest_address(&config.get("listeners", "http://0.0.0.0:8083"))?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("REST API on {listen}"))?;
    let bound = listener.local_addr()?;
    // Workers are named by the address their REST API is reached at.
    let host = config.get("rest.advertised.host.name", &bound.ip().to_string());
    let port = config.get("rest.advertised.port", &bound.port().to_string());
    let id = format!("{host}:{port}");
    let worker = Arc::new(
        DistributedWorker::start(config, plugins(), &id)
            .await
            .with_context(|| path.display().to_string())?,
    );
    eprintln!("worker {id} joined; REST API on http://{bound}");
    serve_until_stopped(worker.clone(), listener).await;
    eprintln!("stopping: flushing offsets and leaving the group");
    worker.shutdown().await;
    Ok(())
}

/// Serves the REST API until Ctrl-C, saying once when a task fails.
async fn serve_until_stopped(herder: Arc<dyn Herder>, listener: tokio::net::TcpListener) {
    let rest = tokio::spawn(strom_connect_runtime::rest::serve(herder.clone(), listener));
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let mut reported = std::collections::BTreeSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => {}
        }
        for name in herder.connectors().await {
            let Ok(status) = herder.status(&name).await else {
                continue;
            };
            for task in status.tasks {
                if let State::Failed(trace) = &task.state {
                    if reported.insert((name.clone(), task.id)) {
                        eprintln!("connector {name} task {} failed: {trace}", task.id);
                    }
                }
            }
        }
    }
    rest.abort();
    let _ = rest.await;
}

/// The address of the first `http://host:port` of `listeners` (an empty host is every
/// interface).
fn rest_address(listeners: &str) -> anyhow::Result<String> {
    let first = listeners.split(',').next().unwrap_or_default().trim();
    let Some(address) = first.strip_prefix("http://") else {
        bail!("listeners: {first} is not http://host:port (https is not served)");
    };
    let address = address.trim_end_matches('/');
    Ok(match address.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => address.to_owned(),
    })
}

/// The connectors `strom connect` runs: the built-in file connectors, the MySQL change
/// capture and query sources; and the SQL filter transform.
pub fn plugins() -> Plugins {
    let mut plugins = Plugins::builtin();
    plugins.add_source(
        strom_connect_mysql::MYSQL_SOURCE_CLASS,
        &["MySqlConnector", "MySql"],
        || Box::new(strom_connect_mysql::MySqlSource::default()),
    );
    plugins.add_source(
        strom_connect_mysql::QUERY_SOURCE_CLASS,
        &["JdbcSourceConnector"],
        || Box::new(strom_connect_mysql::QuerySource::default()),
    );
    plugins.add_transform(strom_sql::connect::SQL_FILTER_CLASS, &["SqlFilter"], |c| {
        Ok(Box::new(
            strom_sql::connect::SqlFilterTransform::from_config(c)?,
        ))
    });
    plugins
}
