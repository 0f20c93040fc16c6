//! The connector and its task: check the server, then snapshot and stream in a
//! background reader that hands batches to `poll` through a bounded channel.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use strom_connect_api::{
    ConfigKey, ConfigMap, ConnectError, SourceConnector, SourceRecord, SourceTask,
    SourceTaskContext,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::binlog::Reader;
use crate::config::{MySqlConfig, SnapshotMode};
use crate::envelope::{partition, Position};
use crate::history::{SchemaHistory, Schemas};
use crate::schema::TableSchema;
use crate::server::Server;
use crate::snapshot::{snapshot, Batch};

/// The MySQL / MariaDB change-capture source (Debezium's `MySqlConnector`; one task).
#[derive(Debug, Default)]
pub struct MySqlSource {
    config: ConfigMap,
}

#[async_trait]
impl SourceConnector for MySqlSource {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        crate::config::keys()
    }

    async fn start(&mut self, config: ConfigMap) -> Result<(), ConnectError> {
        MySqlConfig::from_config(&config)?;
        self.config = config;
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        // One binlog, one reader.
        Ok(vec![self.config.clone()])
    }

    fn task(&self) -> Box<dyn SourceTask> {
        Box::new(MySqlSourceTask::default())
    }

    async fn stop(&mut self) {}
}

/// The task: a reader in the background, batches through a channel.
#[derive(Default)]
pub struct MySqlSourceTask {
    batches: Option<mpsc::Receiver<Batch>>,
    reader: Option<JoinHandle<()>>,
    /// Whether the reader ends on its own (`snapshot.mode=initial_only`).
    finishes: bool,
}

/// What the reader does first.
enum Plan {
    /// A snapshot (with rows, or only schemas), then the binlog.
    Snapshot { rows: bool, then_stream: bool },
    /// The binlog from a stored position.
    Resume(Position),
    /// Nothing: the snapshot of `initial_only` was taken before.
    Done,
}

async fn plan(
    config: &MySqlConfig,
    server: &mut Server,
    stored: Option<(Position, bool)>,
) -> Result<Plan, ConnectError> {
    let fresh = match config.snapshot {
        SnapshotMode::NoData => Plan::Snapshot {
            rows: false,
            then_stream: true,
        },
        SnapshotMode::InitialOnly => Plan::Snapshot {
            rows: true,
            then_stream: false,
        },
        SnapshotMode::Initial | SnapshotMode::WhenNeeded => Plan::Snapshot {
            rows: true,
            then_stream: true,
        },
    };
    let Some((position, in_snapshot)) = stored else {
        return Ok(fresh);
    };
    if in_snapshot {
        info!("the last snapshot did not finish; taking it again");
        return Ok(fresh);
    }
    if config.snapshot == SnapshotMode::InitialOnly {
        info!("snapshot.mode=initial_only: the snapshot was taken before; nothing to do");
        return Ok(Plan::Done);
    }
    let logs = server.binary_logs().await?;
    if !logs.contains(&position.file) {
        if config.snapshot == SnapshotMode::WhenNeeded {
            warn!(file = %position.file, "the stored binlog position was purged; taking a new snapshot");
            return Ok(fresh);
        }
        return Err(ConnectError::Failed(format!(
            "the stored binlog position {}:{} was purged from {}:{} (it has {}): changes since \
             then are lost to the binlog; delete the connector's offsets to take a new \
             snapshot, or set snapshot.mode=when_needed",
            position.file,
            position.pos,
            config.host,
            config.port,
            logs.join(", ")
        )));
    }
    Ok(Plan::Resume(position))
}

/// The schemas in force at `position`: from the history, or (without one) as they are
/// now.
async fn schemas_at(
    config: &MySqlConfig,
    server: &mut Server,
    history: Option<&SchemaHistory>,
    position: &Position,
) -> Result<Schemas, ConnectError> {
    if let Some(history) = history {
        if let Some(schemas) = history.load(position).await? {
            return Ok(schemas);
        }
        warn!("the schema history has nothing for this connector; reading the schemas as they are now");
    }
    let mut schemas = Schemas::new();
    for (db, table) in server.tables(config).await? {
        if let Some(s) = TableSchema::load(&mut server.conn, &db, &table).await? {
            schemas.insert((db, table), s);
        }
    }
    Ok(schemas)
}

#[async_trait]
impl SourceTask for MySqlSourceTask {
    async fn start(
        &mut self,
        config: ConfigMap,
        context: SourceTaskContext,
    ) -> Result<(), ConnectError> {
        let config = MySqlConfig::from_config(&config)?;
        let mut server = Server::connect(&config).await?;
        let snapshots_only = config.snapshot == SnapshotMode::InitialOnly;
        if !snapshots_only {
            server.check_binlog(&config).await?;
        }
        // Fails on an included table that does not exist.
        server.tables(&config).await?;
        let stored = context
            .offsets
            .offset(&partition(&config))
            .and_then(|o| Position::from_offset(&o));
        let plan = plan(&config, &mut server, stored).await?;
        let history = match &config.history {
            Some((servers, topic)) => Some(Arc::new(
                SchemaHistory::open(servers, topic, &config.prefix).await?,
            )),
            None => None,
        };
        let resume = match &plan {
            Plan::Resume(position) => Some((
                position.clone(),
                schemas_at(&config, &mut server, history.as_deref(), position).await?,
            )),
            Plan::Snapshot { .. } | Plan::Done => None,
        };
        drop(server);
        let (tx, rx) = mpsc::channel::<Batch>(8);
        let reader = tokio::spawn(async move {
            let run = async {
                let (start, schemas) = match (plan, resume) {
                    (_, Some(resume)) => resume,
                    (Plan::Snapshot { rows, then_stream }, None) => {
                        let taken = snapshot(&config, history.as_deref(), &tx, rows).await?;
                        if !then_stream {
                            info!(
                                "snapshot.mode=initial_only: the snapshot is done; not streaming"
                            );
                            return Ok(());
                        }
                        taken
                    }
                    (Plan::Resume(_) | Plan::Done, None) => return Ok(()),
                };
                Reader::new(config, &start, schemas, history)
                    .await?
                    .run(tx.clone())
                    .await
            };
            if let Err(e) = run.await {
                let _ = tx.send(Err(e)).await;
            }
        });
        self.batches = Some(rx);
        self.reader = Some(reader);
        self.finishes = snapshots_only;
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let Some(batches) = self.batches.as_mut() else {
            return Err(ConnectError::Failed("the task was not started".into()));
        };
        match tokio::time::timeout(Duration::from_millis(200), batches.recv()).await {
            Ok(Some(batch)) => batch,
            // The reader finished: only initial_only's does so on its own (errors come
            // through the channel).
            Ok(None) if self.finishes => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(Vec::new())
            }
            Ok(None) => Err(ConnectError::Failed(
                "the binlog reader stopped unexpectedly".into(),
            )),
            Err(_) => Ok(Vec::new()),
        }
    }

    async fn stop(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
        self.batches = None;
    }
}
