//! Change events in Debezium's envelope: `before`, `after`, `source`, `op`, `ts_ms`,
//! keyed by the primary key, and the offsets they carry.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use strom_connect_api::{OffsetMap, Schema, SourceRecord, Value};

use crate::config::MySqlConfig;
use crate::schema::TableSchema;

/// The version in each event's `source` block.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A place in the binary log to resume from: the start of a transaction, how many of its
/// captured row changes were already written, and the last GTID seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Binlog file.
    pub file: String,
    /// Byte position of the transaction's first event in it.
    pub pos: u64,
    /// Captured row changes of that transaction already written.
    pub skip: u64,
    /// The GTID of the transaction (`domain-server-seq` on MariaDB, `uuid:n` on MySQL).
    pub gtid: Option<String>,
}

impl Position {
    /// The offset stored for it (`snapshot` while a snapshot is being written).
    pub fn offset(&self, snapshot: bool) -> OffsetMap {
        let mut offset = OffsetMap::new();
        offset.insert("file".into(), json!(self.file));
        offset.insert("pos".into(), json!(self.pos));
        offset.insert("skip".into(), json!(self.skip));
        if let Some(gtid) = &self.gtid {
            offset.insert("gtid".into(), json!(gtid));
        }
        if snapshot {
            offset.insert("snapshot".into(), json!(true));
        }
        offset
    }

    /// A stored offset: the position, and whether it was taken during a snapshot.
    pub fn from_offset(offset: &OffsetMap) -> Option<(Position, bool)> {
        let position = Position {
            file: offset.get("file")?.as_str()?.to_owned(),
            pos: offset.get("pos")?.as_u64()?,
            skip: offset.get("skip").and_then(|s| s.as_u64()).unwrap_or(0),
            gtid: offset
                .get("gtid")
                .and_then(|g| g.as_str())
                .map(str::to_owned),
        };
        let snapshot = offset.get("snapshot").and_then(|s| s.as_bool()) == Some(true);
        Some((position, snapshot))
    }

    /// Whether this position is at or after `other` in the binlog.
    pub fn at_or_after(&self, file: &str, pos: u64) -> bool {
        (self.file.as_str(), self.pos) >= (file, pos)
    }
}

/// The source partition of a connector (`{"server": prefix}`).
pub fn partition(config: &MySqlConfig) -> OffsetMap {
    let mut p = OffsetMap::new();
    p.insert("server".into(), json!(config.prefix));
    p
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A table's schemas, built once per schema version.
#[derive(Clone, Debug)]
pub struct Table {
    /// Columns and key.
    pub schema: TableSchema,
    /// The key's Connect schema.
    pub key_schema: Option<Arc<Schema>>,
    /// The envelope's Connect schema.
    pub envelope: Arc<Schema>,
    /// The topic.
    pub topic: String,
}

impl Table {
    /// The Connect schemas of `schema`.
    pub fn new(schema: TableSchema, config: &MySqlConfig) -> Table {
        Table {
            key_schema: schema.key_schema(config).map(Arc::new),
            envelope: Arc::new(schema.envelope_schema(config)),
            topic: config.topic(&schema.db, &schema.table),
            schema,
        }
    }
}

/// Where a change came from, for the `source` block.
#[derive(Clone, Debug)]
pub struct Source<'a> {
    /// When the change was made (ms).
    pub ts_ms: i64,
    /// `"true"` or `"last"` in a snapshot.
    pub snapshot: Option<&'static str>,
    /// The server that wrote it.
    pub server_id: u32,
    /// Binlog file and position of the event.
    pub file: &'a str,
    /// Position of the event.
    pub pos: u64,
    /// Index of the row in its event.
    pub row: i32,
    /// The transaction's GTID.
    pub gtid: Option<&'a str>,
    /// The thread that made it.
    pub thread: Option<i64>,
}

/// A change: `op` is `c`, `u`, `d` or `r` (read by a snapshot).
pub fn change(
    config: &MySqlConfig,
    table: &Table,
    op: &str,
    before: Value,
    after: Value,
    source: &Source<'_>,
    offset: OffsetMap,
) -> SourceRecord {
    let key = table.schema.key_of(if after == Value::Null {
        &before
    } else {
        &after
    });
    let opt_str = |s: Option<&str>| s.map_or(Value::Null, |s| Value::String(s.to_owned()));
    let source = Value::Struct(vec![
        ("version".into(), Value::String(VERSION.into())),
        ("connector".into(), Value::String("mysql".into())),
        ("name".into(), Value::String(config.prefix.clone())),
        ("ts_ms".into(), Value::Int(source.ts_ms)),
        ("snapshot".into(), opt_str(source.snapshot)),
        ("db".into(), Value::String(table.schema.db.clone())),
        ("table".into(), Value::String(table.schema.table.clone())),
        ("server_id".into(), Value::Int(i64::from(source.server_id))),
        ("gtid".into(), opt_str(source.gtid)),
        ("file".into(), Value::String(source.file.to_owned())),
        (
            "pos".into(),
            Value::Int(i64::try_from(source.pos).unwrap_or(i64::MAX)),
        ),
        ("row".into(), Value::Int(i64::from(source.row))),
        (
            "thread".into(),
            source.thread.map_or(Value::Null, Value::Int),
        ),
    ]);
    let value = Value::Struct(vec![
        ("before".into(), before),
        ("after".into(), after),
        ("source".into(), source),
        ("op".into(), Value::String(op.to_owned())),
        ("ts_ms".into(), Value::Int(now_ms())),
    ]);
    SourceRecord {
        source_partition: partition(config),
        source_offset: offset,
        topic: table.topic.clone(),
        partition: None,
        key_schema: table.key_schema.clone(),
        key,
        value_schema: Some(table.envelope.clone()),
        value,
        timestamp: None,
        headers: Vec::new(),
    }
}

/// The tombstone that follows a delete, so compaction can drop the key.
pub fn tombstone(delete: &SourceRecord) -> SourceRecord {
    SourceRecord {
        value_schema: None,
        value: Value::Null,
        ..delete.clone()
    }
}
