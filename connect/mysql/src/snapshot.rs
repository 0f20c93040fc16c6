//! The initial snapshot: every row of the captured tables as of one binlog position,
//! read in a consistent-snapshot transaction and streamed in batches (a table is never
//! held in memory), each row an `op: "r"` event.

use mysql_async::prelude::Queryable;
use mysql_async::Row;
use strom_connect_api::{ConnectError, SourceRecord, Value};
use tokio::sync::mpsc;
use tracing::info;

use crate::config::MySqlConfig;
use crate::envelope::{change, now_ms, Position, Source, Table};
use crate::history::{SchemaHistory, Schemas};
use crate::schema::TableSchema;
use crate::server::Server;

/// What the reader hands to the task: a batch, or why it stopped.
pub type Batch = Result<Vec<SourceRecord>, ConnectError>;

fn failed(what: &str, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Failed(format!("snapshot: {what}: {e}"))
}

/// Quotes an identifier.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Opens the consistent-snapshot transaction and returns the binlog position it sees.
/// MariaDB tells the position of the snapshot itself; MySQL needs a brief global read
/// lock around taking it.
async fn begin(server: &mut Server) -> Result<Position, ConnectError> {
    let conn = &mut server.conn;
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(|e| failed("isolation level", e))?;
    if server.mariadb {
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            .await
            .map_err(|e| failed("START TRANSACTION", e))?;
        let rows: Vec<(String, String)> = conn
            .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
            .await
            .map_err(|e| failed("binlog_snapshot_file", e))?;
        let get = |name: &str| rows.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let (Some(file), Some(pos)) =
            (get("Binlog_snapshot_file"), get("Binlog_snapshot_position"))
        else {
            return Err(ConnectError::Failed(
                "snapshot: the server does not report Binlog_snapshot_file".into(),
            ));
        };
        let pos: u64 = pos
            .parse()
            .map_err(|e| failed("Binlog_snapshot_position", e))?;
        let gtid: Option<String> = conn
            .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&file, pos))
            .await
            .ok()
            .flatten();
        return Ok(Position {
            file,
            pos,
            skip: 0,
            gtid: gtid.filter(|g| !g.is_empty()),
        });
    }
    conn.query_drop("FLUSH TABLES WITH READ LOCK")
        .await
        .map_err(|e| failed("FLUSH TABLES WITH READ LOCK (the user needs RELOAD)", e))?;
    let begun = conn
        .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await
        .map_err(|e| failed("START TRANSACTION", e));
    let position = match begun {
        Ok(()) => server.current_position().await,
        Err(e) => Err(e),
    };
    server
        .conn
        .query_drop("UNLOCK TABLES")
        .await
        .map_err(|e| failed("UNLOCK TABLES", e))?;
    position
}

/// Sets `source.snapshot` of a snapshot event to `"last"`.
fn mark_last(record: &mut SourceRecord) {
    if let Value::Struct(fields) = &mut record.value {
        for (name, value) in fields.iter_mut() {
            if name == "source" {
                if let Value::Struct(source) = value {
                    for (k, v) in source.iter_mut() {
                        if k == "snapshot" {
                            *v = Value::String("last".into());
                        }
                    }
                }
            }
        }
    }
}

/// Takes the snapshot of the captured tables, sending batches to `out`; returns the
/// position streaming starts from and the schemas there. With `rows` false only the
/// schemas are read (`snapshot.mode=no_data`).
///
/// # Errors
/// Query failures; `Ok` with nothing sent when `out` closed.
pub async fn snapshot(
    config: &MySqlConfig,
    history: Option<&SchemaHistory>,
    out: &mpsc::Sender<Batch>,
    rows: bool,
) -> Result<(Position, Schemas), ConnectError> {
    let mut server = Server::connect(config).await?;
    let position = if rows {
        begin(&mut server).await?
    } else {
        server.current_position().await?
    };
    let tables = server.tables(config).await?;
    let mut schemas = Schemas::new();
    for (db, table) in &tables {
        if let Some(schema) = TableSchema::load(&mut server.conn, db, table).await? {
            schemas.insert((db.clone(), table.clone()), schema);
        }
    }
    if let Some(history) = history {
        let changes: Vec<(String, String, Option<&TableSchema>)> = tables
            .iter()
            .map(|(db, t)| (db.clone(), t.clone(), schemas.get(&(db.clone(), t.clone()))))
            .collect();
        history.record(&position, "", "", &changes).await?;
    }
    info!(file = %position.file, pos = position.pos, tables = tables.len(), rows, "snapshot at binlog position");
    if !rows {
        return Ok((position, schemas));
    }
    let offset = position.offset(true);
    let mut held: Option<SourceRecord> = None;
    let mut total = 0u64;
    for (db, name) in &tables {
        let Some(schema) = schemas.get(&(db.clone(), name.clone())) else {
            continue;
        };
        let table = Table::new(schema.clone(), config);
        let columns: Vec<String> = schema.columns.iter().map(|c| quote(&c.name)).collect();
        let sql = format!(
            "SELECT {} FROM {}.{}",
            columns.join(", "),
            quote(db),
            quote(name)
        );
        let mut result = server
            .conn
            .query_iter(sql)
            .await
            .map_err(|e| failed(&format!("{db}.{name}"), e))?;
        let mut batch = Vec::with_capacity(config.fetch_size);
        let ts_ms = now_ms();
        let source = Source {
            ts_ms,
            snapshot: Some("true"),
            server_id: 0,
            file: &position.file,
            pos: position.pos,
            row: 0,
            gtid: position.gtid.as_deref(),
            thread: None,
        };
        while let Some(row) = result
            .next()
            .await
            .map_err(|e| failed(&format!("{db}.{name}"), e))?
        {
            let row: Row = row;
            let values = row.unwrap().into_iter().map(Some).collect();
            let after = schema.row(values, config, false)?;
            let record = change(
                config,
                &table,
                "r",
                Value::Null,
                after,
                &source,
                offset.clone(),
            );
            if let Some(previous) = held.replace(record) {
                batch.push(previous);
            }
            total += 1;
            if batch.len() >= config.fetch_size
                && out.send(Ok(std::mem::take(&mut batch))).await.is_err()
            {
                return Ok((position, schemas));
            }
        }
        if !batch.is_empty() && out.send(Ok(batch)).await.is_err() {
            return Ok((position, schemas));
        }
        info!(table = %format!("{db}.{name}"), "snapshot of table done");
    }
    server
        .conn
        .query_drop("COMMIT")
        .await
        .map_err(|e| failed("COMMIT", e))?;
    // The last snapshot event carries the streaming offset: once it is stored, a restart
    // streams instead of taking the snapshot again.
    if let Some(mut last) = held {
        mark_last(&mut last);
        last.source_offset = position.offset(false);
        if out.send(Ok(vec![last])).await.is_err() {
            return Ok((position, schemas));
        }
    }
    info!(rows = total, "snapshot done");
    Ok((position, schemas))
}
