//! The query-based source, for servers whose binary log is not available: like the JDBC
//! source connector, it polls each table for rows past its stored offset, by a strictly
//! increasing column (`mode=incrementing`), a last-modified timestamp (`timestamp`), or
//! both (`timestamp+incrementing`, which also catches updates without missing rows that
//! share a timestamp), or the whole table each time (`bulk`).
//!
//! Each row is a record of the table's row struct on the topic `<topic.prefix><table>`;
//! its source partition is `{"table": "<db>.<table>"}` and its offset
//! `{"incrementing": n, "timestamp_us": t}`. Deletes are not seen (no row is left to
//! read); use change capture from the binlog where that matters. `incrementing` and
//! `timestamp+incrementing` read `batch.max.rows` at a time; `timestamp` alone reads every
//! row past the last timestamp in one query (rows sharing a timestamp cannot be split).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use serde_json::json;
use strom_connect_api::{
    ConfigKey, ConfigMap, ConnectError, OffsetMap, SourceConnector, SourceRecord, SourceTask,
    SourceTaskContext, Value,
};
use tracing::info;

use crate::config::MySqlConfig;
use crate::schema::{datetime_micros, format_datetime, Kind, TableSchema};
use crate::snapshot::quote;

/// What the source reads each poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryMode {
    /// The whole table.
    Bulk,
    /// Rows whose incrementing column is past the last seen.
    Incrementing,
    /// Rows whose timestamp column is past the last seen.
    Timestamp,
    /// Rows past the last seen (timestamp, incrementing) pair.
    TimestampIncrementing,
}

/// The query-based source's settings.
#[derive(Clone, Debug)]
struct QueryConfig {
    server: MySqlConfig,
    db: String,
    tables: Vec<String>,
    mode: QueryMode,
    incrementing: Option<String>,
    timestamp: Option<String>,
    prefix: String,
    poll: Duration,
    batch: usize,
    delay: Duration,
}

fn config_error(message: impl Into<String>) -> ConnectError {
    ConnectError::Config(message.into())
}

/// A connection URL's user, password, host, port and database.
type UrlParts = (Option<String>, Option<String>, String, u16, String);

/// `jdbc:mysql://host:port/db?...` or `mysql://user:pass@host:port/db` into its parts.
fn parse_url(url: &str) -> Result<UrlParts, ConnectError> {
    let bad = || {
        config_error(format!(
            "connection.url={url}: expected jdbc:mysql://HOST[:PORT]/DATABASE"
        ))
    };
    let rest = url
        .strip_prefix("jdbc:")
        .unwrap_or(url)
        .strip_prefix("mysql://")
        .or_else(|| url.strip_prefix("jdbc:mariadb://"))
        .or_else(|| url.strip_prefix("mariadb://"))
        .ok_or_else(bad)?;
    let rest = rest.split('?').next().unwrap_or(rest);
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (Some(auth), rest),
        None => (None, rest),
    };
    let (user, password) = match auth.map(|a| a.split_once(':').unwrap_or((a, ""))) {
        Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
        None => (None, None),
    };
    let (host_port, db) = rest.split_once('/').ok_or_else(bad)?;
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
        None => (host_port, 3306),
    };
    if host.is_empty() || db.is_empty() {
        return Err(bad());
    }
    Ok((user, password, host.to_owned(), port, db.to_owned()))
}

impl QueryConfig {
    fn from_config(config: &ConfigMap) -> Result<QueryConfig, ConnectError> {
        let get = |key: &str| {
            config
                .get(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let url =
            get("connection.url").ok_or_else(|| config_error("connection.url is required"))?;
        let (user, password, host, port, db) = parse_url(&url)?;
        let user = get("connection.user")
            .or(user)
            .ok_or_else(|| config_error("connection.user is required"))?;
        let password = config
            .get("connection.password")
            .cloned()
            .or(password)
            .unwrap_or_default();
        let mode = match get("mode").as_deref() {
            Some("bulk") => QueryMode::Bulk,
            Some("incrementing") => QueryMode::Incrementing,
            Some("timestamp") => QueryMode::Timestamp,
            Some("timestamp+incrementing") => QueryMode::TimestampIncrementing,
            Some(m) => {
                return Err(config_error(format!(
                    "mode={m}: expected bulk, incrementing, timestamp or timestamp+incrementing"
                )))
            }
            None => return Err(config_error("mode is required")),
        };
        let incrementing = get("incrementing.column.name");
        let timestamp = get("timestamp.column.name");
        if matches!(
            mode,
            QueryMode::Incrementing | QueryMode::TimestampIncrementing
        ) && incrementing.is_none()
        {
            return Err(config_error(
                "incrementing.column.name is required in this mode",
            ));
        }
        if matches!(
            mode,
            QueryMode::Timestamp | QueryMode::TimestampIncrementing
        ) && timestamp.is_none()
        {
            return Err(config_error(
                "timestamp.column.name is required in this mode",
            ));
        }
        let tables: Vec<String> = get("table.whitelist")
            .or_else(|| get("table.include.list"))
            .or_else(|| get("tables"))
            .map(|t| {
                t.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let number = |key: &str, default: u64| -> Result<u64, ConnectError> {
            match get(key) {
                Some(v) => v
                    .parse()
                    .map_err(|_| config_error(format!("{key}={v}: expected a number"))),
                None => Ok(default),
            }
        };
        let server_keys: ConfigMap = [
            ("database.hostname", host.as_str()),
            ("database.port", &port.to_string()),
            ("database.user", user.as_str()),
            ("database.password", password.as_str()),
            ("topic.prefix", "query"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain(
            ["decimal.handling.mode", "bigint.unsigned.handling.mode"]
                .into_iter()
                .filter_map(|k| config.get(k).map(|v| (k.to_owned(), v.clone()))),
        )
        .collect();
        Ok(QueryConfig {
            server: MySqlConfig::from_config(&server_keys)?,
            db,
            tables,
            mode,
            incrementing,
            timestamp,
            prefix: get("topic.prefix").unwrap_or_default(),
            poll: Duration::from_millis(number("poll.interval.ms", 5000)?),
            batch: usize::try_from(number("batch.max.rows", 100)?.max(1)).unwrap_or(100),
            delay: Duration::from_millis(number("timestamp.delay.interval.ms", 0)?),
        })
    }
}

const KEYS: [ConfigKey; 11] = [
    ConfigKey {
        name: "connection.url",
        required: true,
        default: None,
        doc: "jdbc:mysql://HOST:PORT/DATABASE",
    },
    ConfigKey {
        name: "connection.user",
        required: false,
        default: None,
        doc: "the user (or in the URL)",
    },
    ConfigKey {
        name: "connection.password",
        required: false,
        default: Some(""),
        doc: "its password",
    },
    ConfigKey {
        name: "mode",
        required: true,
        default: None,
        doc: "bulk, incrementing, timestamp or timestamp+incrementing",
    },
    ConfigKey {
        name: "incrementing.column.name",
        required: false,
        default: None,
        doc: "a strictly increasing column",
    },
    ConfigKey {
        name: "timestamp.column.name",
        required: false,
        default: None,
        doc: "a last-modified DATETIME or TIMESTAMP column",
    },
    ConfigKey {
        name: "table.whitelist",
        required: false,
        default: None,
        doc: "tables to read (all tables of the database when unset)",
    },
    ConfigKey {
        name: "topic.prefix",
        required: false,
        default: Some(""),
        doc: "topics are <prefix><table>",
    },
    ConfigKey {
        name: "poll.interval.ms",
        required: false,
        default: Some("5000"),
        doc: "how often each table is queried",
    },
    ConfigKey {
        name: "batch.max.rows",
        required: false,
        default: Some("100"),
        doc: "rows per query",
    },
    ConfigKey {
        name: "timestamp.delay.interval.ms",
        required: false,
        default: Some("0"),
        doc: "how long after a timestamp its rows are read (for transactions still open)",
    },
];

/// The query-based source connector (the JDBC source connector's modes).
#[derive(Debug, Default)]
pub struct QuerySource {
    config: ConfigMap,
    tables: Vec<String>,
}

#[async_trait]
impl SourceConnector for QuerySource {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        KEYS.to_vec()
    }

    async fn start(&mut self, config: ConfigMap) -> Result<(), ConnectError> {
        let parsed = QueryConfig::from_config(&config)?;
        let mut conn = connect(&parsed).await?;
        let tables: Vec<String> = conn
            .exec(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
                 AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                (&parsed.db,),
            )
            .await
            .map_err(|e| {
                ConnectError::Failed(format!("listing the tables of {}: {e}", parsed.db))
            })?;
        for t in &parsed.tables {
            if !tables.contains(t) {
                return Err(ConnectError::Failed(format!(
                    "table.whitelist names {}.{t}, which does not exist",
                    parsed.db
                )));
            }
        }
        self.tables = if parsed.tables.is_empty() {
            tables
        } else {
            parsed.tables
        };
        self.config = config;
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        // Tables dealt out to the tasks in turn.
        let tasks = max_tasks.clamp(1, self.tables.len().max(1));
        Ok((0..tasks)
            .map(|i| {
                let mine: Vec<&str> = self
                    .tables
                    .iter()
                    .skip(i)
                    .step_by(tasks)
                    .map(String::as_str)
                    .collect();
                let mut c = self.config.clone();
                c.insert("tables".into(), mine.join(","));
                c.remove("table.whitelist");
                c.remove("table.include.list");
                c
            })
            .collect())
    }

    fn task(&self) -> Box<dyn SourceTask> {
        Box::new(QuerySourceTask::default())
    }

    async fn stop(&mut self) {}
}

async fn connect(config: &QueryConfig) -> Result<Conn, ConnectError> {
    let server = crate::server::Server::connect(&config.server).await?;
    Ok(server.conn)
}

/// A table's schema, and where it was left.
struct Cursor {
    schema: TableSchema,
    topic: String,
    incrementing: Option<i64>,
    timestamp_us: Option<i64>,
    due: Instant,
}

/// Polls its tables in turn.
#[derive(Default)]
pub struct QuerySourceTask {
    config: Option<QueryConfig>,
    conn: Option<Conn>,
    cursors: Vec<Cursor>,
    next: usize,
}

fn partition(db: &str, table: &str) -> OffsetMap {
    let mut p = OffsetMap::new();
    p.insert("table".into(), json!(format!("{db}.{table}")));
    p
}

/// `YYYY-MM-DD hh:mm:ss.ffffff` of microseconds since the epoch (UTC).
fn sql_time(micros: i64) -> String {
    format_datetime(micros, 6, ' ')
}

/// The epoch microseconds of a row's timestamp column value.
fn micros_of(value: &Value, kind: &Kind) -> Option<i64> {
    match (value, kind) {
        (Value::Int(ms), Kind::DateTime(fsp)) if *fsp <= 3 => Some(ms * 1000),
        (Value::Int(us), Kind::DateTime(_)) => Some(*us),
        (Value::String(z), Kind::Timestamp(_)) => {
            datetime_micros(z.trim_end_matches('Z')).ok().flatten()
        }
        _ => None,
    }
}

impl QuerySourceTask {
    async fn query(&mut self, index: usize) -> Result<Vec<SourceRecord>, ConnectError> {
        let (Some(config), Some(conn)) = (self.config.as_ref(), self.conn.as_mut()) else {
            return Err(ConnectError::Failed("the task was not started".into()));
        };
        let cursor = &mut self.cursors[index];
        let table = format!("{}.{}", quote(&config.db), quote(&cursor.schema.table));
        let columns: Vec<String> = cursor
            .schema
            .columns
            .iter()
            .map(|c| quote(&c.name))
            .collect();
        let inc = config.incrementing.as_deref().map(quote);
        let ts = config.timestamp.as_deref().map(quote);
        let now_us = if matches!(
            config.mode,
            QueryMode::Timestamp | QueryMode::TimestampIncrementing
        ) {
            let now: Option<String> = conn
                .query_first("SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%d %H:%i:%s.%f')")
                .await
                .map_err(|e| ConnectError::Retriable(format!("reading the server's time: {e}")))?;
            let now = datetime_micros(&now.unwrap_or_default()).ok().flatten();
            now.map(|us| us - i64::try_from(config.delay.as_micros()).unwrap_or(0))
        } else {
            None
        };
        let (filter, order, limit) = match config.mode {
            QueryMode::Bulk => (String::new(), String::new(), String::new()),
            QueryMode::Incrementing => {
                let inc = inc.unwrap_or_default();
                (
                    cursor
                        .incrementing
                        .map_or(String::new(), |n| format!(" WHERE {inc} > {n}")),
                    format!(" ORDER BY {inc}"),
                    format!(" LIMIT {}", config.batch),
                )
            }
            QueryMode::Timestamp => {
                let ts = ts.unwrap_or_default();
                let until = sql_time(now_us.unwrap_or(0));
                let since = cursor
                    .timestamp_us
                    .map_or(String::new(), |t| format!("{ts} > '{}' AND ", sql_time(t)));
                (
                    format!(" WHERE {since}{ts} < '{until}'"),
                    format!(" ORDER BY {ts}"),
                    String::new(),
                )
            }
            QueryMode::TimestampIncrementing => {
                let (ts, inc) = (ts.unwrap_or_default(), inc.unwrap_or_default());
                let until = sql_time(now_us.unwrap_or(0));
                let since = match (cursor.timestamp_us, cursor.incrementing) {
                    (Some(t), Some(n)) => {
                        let t = sql_time(t);
                        format!("(({ts} = '{t}' AND {inc} > {n}) OR {ts} > '{t}') AND ")
                    }
                    _ => String::new(),
                };
                (
                    format!(" WHERE {since}{ts} < '{until}'"),
                    format!(" ORDER BY {ts}, {inc}"),
                    format!(" LIMIT {}", config.batch),
                )
            }
        };
        let sql = format!(
            "SELECT {} FROM {table}{filter}{order}{limit}",
            columns.join(", ")
        );
        let rows: Vec<Row> = conn.query(&sql).await.map_err(|e| {
            ConnectError::Failed(format!("{}.{}: {e}", config.db, cursor.schema.table))
        })?;
        let inc_index = config
            .incrementing
            .as_ref()
            .and_then(|c| cursor.schema.columns.iter().position(|x| &x.name == c));
        let ts_index = config
            .timestamp
            .as_ref()
            .and_then(|c| cursor.schema.columns.iter().position(|x| &x.name == c));
        let schema = std::sync::Arc::new(
            cursor
                .schema
                .value_schema(&config.server)
                .named(&cursor.schema.table),
        );
        let mut records = Vec::with_capacity(rows.len());
        // The cursor moves only once the whole batch converted.
        let (mut incrementing, mut timestamp_us) = (cursor.incrementing, cursor.timestamp_us);
        for row in rows {
            let values: Vec<mysql_async::Value> = row.unwrap();
            // The incrementing column as the server wrote it (any integer type).
            if let Some(v) = inc_index.and_then(|i| values.get(i)) {
                let text = match v {
                    mysql_async::Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                    mysql_async::Value::Int(i) => i.to_string(),
                    mysql_async::Value::UInt(u) => u.to_string(),
                    _ => String::new(),
                };
                let n = text.parse::<i64>().map_err(|_| {
                    ConnectError::Data(format!(
                        "{}.{}: incrementing column value {text:?} is not a 64-bit integer",
                        config.db, cursor.schema.table
                    ))
                })?;
                incrementing = Some(n);
            }
            let value = cursor.schema.row(
                values.into_iter().map(Some).collect(),
                &config.server,
                false,
            )?;
            let Value::Struct(fields) = &value else {
                continue;
            };
            if let Some(i) = ts_index {
                if let Some(us) = fields
                    .get(i)
                    .and_then(|(_, v)| micros_of(v, &cursor.schema.columns[i].kind))
                {
                    timestamp_us = Some(us);
                }
            }
            let mut offset = OffsetMap::new();
            if let Some(n) = incrementing {
                offset.insert("incrementing".into(), json!(n));
            }
            if let Some(t) = timestamp_us {
                offset.insert("timestamp_us".into(), json!(t));
            }
            let mut record = SourceRecord::new(
                partition(&config.db, &cursor.schema.table),
                offset,
                cursor.topic.clone(),
                value,
            );
            record.value_schema = Some(schema.clone());
            records.push(record);
        }
        cursor.incrementing = incrementing;
        cursor.timestamp_us = timestamp_us;
        // A full batch means more are waiting: query again at once.
        let more = !limit.is_empty() && records.len() >= config.batch;
        cursor.due = if more {
            Instant::now()
        } else {
            Instant::now() + config.poll
        };
        Ok(records)
    }
}

#[async_trait]
impl SourceTask for QuerySourceTask {
    async fn start(
        &mut self,
        config: ConfigMap,
        context: SourceTaskContext,
    ) -> Result<(), ConnectError> {
        let parsed = QueryConfig::from_config(&config)?;
        let mut conn = connect(&parsed).await?;
        let mut cursors = Vec::new();
        for table in &parsed.tables {
            let schema = TableSchema::load(&mut conn, &parsed.db, table)
                .await?
                .ok_or_else(|| {
                    ConnectError::Failed(format!("{}.{table} does not exist", parsed.db))
                })?;
            for column in [&parsed.incrementing, &parsed.timestamp]
                .into_iter()
                .flatten()
            {
                if !schema.columns.iter().any(|c| &c.name == column) {
                    return Err(ConnectError::Failed(format!(
                        "{}.{table} has no column {column}",
                        parsed.db
                    )));
                }
            }
            if let Some(c) = &parsed.incrementing {
                let kind = schema
                    .columns
                    .iter()
                    .find(|x| &x.name == c)
                    .map(|x| &x.kind);
                if !matches!(kind, Some(Kind::Int { .. })) {
                    return Err(ConnectError::Failed(format!(
                        "{}.{table}.{c} is not an integer column",
                        parsed.db
                    )));
                }
            }
            if let Some(c) = &parsed.timestamp {
                let kind = schema
                    .columns
                    .iter()
                    .find(|x| &x.name == c)
                    .map(|x| &x.kind);
                if !matches!(kind, Some(Kind::DateTime(_) | Kind::Timestamp(_))) {
                    return Err(ConnectError::Failed(format!(
                        "{}.{table}.{c} is not a DATETIME or TIMESTAMP",
                        parsed.db
                    )));
                }
            }
            let stored = context.offsets.offset(&partition(&parsed.db, table));
            let get = |k: &str| {
                stored
                    .as_ref()
                    .and_then(|o| o.get(k))
                    .and_then(|v| v.as_i64())
            };
            info!(table = %format!("{}.{table}", parsed.db), offset = ?stored, "query source table");
            cursors.push(Cursor {
                topic: format!("{}{table}", parsed.prefix),
                schema,
                incrementing: get("incrementing"),
                timestamp_us: get("timestamp_us"),
                due: Instant::now(),
            });
        }
        self.config = Some(parsed);
        self.conn = Some(conn);
        self.cursors = cursors;
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        if self.cursors.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(Vec::new());
        }
        let count = self.cursors.len();
        let due = (0..count)
            .map(|i| (self.next + i) % count)
            .find(|i| self.cursors[*i].due <= Instant::now());
        let Some(index) = due else {
            let next = self
                .cursors
                .iter()
                .map(|c| c.due)
                .min()
                .unwrap_or_else(Instant::now);
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(200));
            tokio::time::sleep(wait).await;
            return Ok(Vec::new());
        };
        self.next = (index + 1) % count;
        self.query(index).await
    }

    async fn stop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.disconnect().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_urls_are_read_as_the_jdbc_source_writes_them() {
        let (u, p, h, port, db) =
            parse_url("jdbc:mysql://db.example:3307/shop?useSSL=false").unwrap();
        assert_eq!(
            (u, p, h.as_str(), port, db.as_str()),
            (None, None, "db.example", 3307, "shop")
        );
        let (u, p, h, port, db) = parse_url("mysql://app:secret@127.0.0.1/inv").unwrap();
        assert_eq!(
            (u.as_deref(), p.as_deref(), h.as_str(), port, db.as_str()),
            (Some("app"), Some("secret"), "127.0.0.1", 3306, "inv")
        );
        assert!(parse_url("postgres://x/y").is_err());
        assert!(parse_url("jdbc:mysql://host:port/db").is_err());
        assert_eq!(
            sql_time(1_700_000_000_123_456),
            "2023-11-14 22:13:20.123456"
        );
    }
}
