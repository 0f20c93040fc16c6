//! Streaming from the binary log: row events of captured tables become change events;
//! DDL statements reload the schemas they touch (and are recorded in the schema
//! history); each event's offset is the start of its transaction plus how many of the
//! transaction's changes were already written, so a restart neither loses nor repeats.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn};
use regex::Regex;
use strom_connect_api::{ConnectError, SourceRecord, Value};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::MySqlConfig;
use crate::envelope::{change, tombstone, Position, Source, Table};
use crate::history::{SchemaHistory, Schemas};
use crate::schema::TableSchema;
use crate::server::Server;
use crate::snapshot::Batch;

/// MariaDB's GTID event (the start of a transaction).
const MARIADB_GTID_EVENT: u8 = 0xa2;
/// MariaDB's compressed query and row events (`log_bin_compress`).
const MARIADB_COMPRESSED_EVENTS: std::ops::RangeInclusive<u8> = 0xa5..=0xab;

fn failed(what: &str, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Failed(format!("binlog: {what}: {e}"))
}

/// Where the reader is: the last complete transaction's end, and the current
/// transaction's start and changes written.
#[derive(Clone, Debug)]
struct Cursor {
    file: String,
    /// The position after the last complete transaction (or the start position).
    boundary: u64,
    /// The current transaction's first event, while in one.
    tx_start: Option<u64>,
    /// Captured changes of the current transaction so far.
    seen: u64,
    /// Changes of the first transaction to leave out (written before a restart).
    skip: u64,
    gtid: Option<String>,
    thread: Option<i64>,
}

impl Cursor {
    /// A position in the current file with the current GTID.
    fn at(&self, pos: u64, skip: u64) -> Position {
        Position {
            file: self.file.clone(),
            pos,
            skip,
            gtid: self.gtid.clone(),
        }
    }

    fn resume_at(&self) -> Position {
        match self.tx_start {
            Some(start) => self.at(start, self.seen),
            None => self.at(self.boundary, 0),
        }
    }

    /// Back to the current transaction's start, to read it again leaving out what was
    /// already handed on.
    fn rewind(&mut self) {
        let at = self.resume_at();
        self.skip = self.skip.max(at.skip);
        self.boundary = at.pos;
        self.tx_start = None;
        self.seen = 0;
    }
}

/// A table a DDL statement touched.
#[derive(Debug, PartialEq, Eq)]
enum Touched {
    /// Created or altered: read its schema again.
    Changed(String, String),
    /// Dropped.
    Dropped(String, String),
    /// Every table of a database dropped.
    DroppedDatabase(String),
}

static IDENT: &str = r"(?:`(?:[^`]|``)+`|[\w$]+)";

static DDL: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern
    Regex::new(
        r"(?is)^\s*(?:/\*.*?\*/\s*)*(?P<verb>CREATE\s+(?:OR\s+REPLACE\s+)?TABLE(?:\s+IF\s+NOT\s+EXISTS)?|ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE(?:\s+IF\s+EXISTS)?|DROP\s+TABLE(?:\s+IF\s+EXISTS)?|RENAME\s+TABLE(?:\s+IF\s+EXISTS)?|DROP\s+(?:DATABASE|SCHEMA)(?:\s+IF\s+EXISTS)?)\s+(?P<rest>.*)$"
    )
    .unwrap()
});

static NAME: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern
    Regex::new(&format!(r"^\s*(?P<a>{IDENT})(?:\s*\.\s*(?P<b>{IDENT}))?")).unwrap()
});

fn unquote(ident: &str) -> String {
    ident
        .strip_prefix('`')
        .and_then(|i| i.strip_suffix('`'))
        .map_or_else(|| ident.to_owned(), |i| i.replace("``", "`"))
}

/// The `[db.]name` at the start of `text`, and what follows it.
fn name<'a>(text: &'a str, default_db: &str) -> Option<((String, String), &'a str)> {
    let caps = NAME.captures(text)?;
    let end = caps.get(0)?.end();
    let a = unquote(caps.name("a")?.as_str());
    let name = match caps.name("b") {
        Some(b) => (a, unquote(b.as_str())),
        None => (default_db.to_owned(), a),
    };
    Some((name, &text[end..]))
}

/// The tables a statement creates, alters, renames or drops.
fn touched(query: &str, default_db: &str) -> Vec<Touched> {
    let Some(caps) = DDL.captures(query) else {
        return Vec::new();
    };
    let verb = caps["verb"].to_ascii_uppercase();
    let rest = caps.name("rest").map_or("", |m| m.as_str());
    let mut out = Vec::new();
    if verb.starts_with("DROP") && (verb.contains("DATABASE") || verb.contains("SCHEMA")) {
        if let Some(((_, db), _)) = name(rest, "") {
            out.push(Touched::DroppedDatabase(db));
        }
    } else if verb.starts_with("DROP") {
        let mut rest = rest;
        while let Some(((db, t), after)) = name(rest, default_db) {
            out.push(Touched::Dropped(db, t));
            match after.trim_start().strip_prefix(',') {
                Some(next) => rest = next,
                None => break,
            }
        }
    } else if verb.starts_with("RENAME") {
        let mut rest = rest;
        while let Some(((db, t), after)) = name(rest, default_db) {
            let Some(after) = after.trim_start().get(2..).filter(|_| {
                after.trim_start().len() >= 2 && after.trim_start()[..2].eq_ignore_ascii_case("to")
            }) else {
                break;
            };
            let Some(((db2, t2), after)) = name(after, default_db) else {
                break;
            };
            out.push(Touched::Dropped(db, t));
            out.push(Touched::Changed(db2, t2));
            match after.trim_start().strip_prefix(',') {
                Some(next) => rest = next,
                None => break,
            }
        }
    } else if let Some(((db, t), after)) = name(rest, default_db) {
        // ALTER TABLE t ... RENAME [TO|AS] u
        static RENAME: LazyLock<Regex> = LazyLock::new(|| {
            #[allow(clippy::unwrap_used)] // a constant pattern
            Regex::new(r"(?i)\bRENAME\s+(?:TO\s+|AS\s+)?").unwrap()
        });
        let renamed = verb
            .starts_with("ALTER")
            .then(|| RENAME.find(after))
            .flatten()
            .and_then(|m| name(&after[m.end()..], default_db))
            .filter(|_| {
                !after.to_ascii_uppercase().contains("RENAME COLUMN")
                    && !after.to_ascii_uppercase().contains("RENAME INDEX")
                    && !after.to_ascii_uppercase().contains("RENAME KEY")
            });
        match renamed {
            Some((to, _)) => {
                out.push(Touched::Dropped(db, t));
                out.push(Touched::Changed(to.0, to.1));
            }
            None => out.push(Touched::Changed(db, t)),
        }
    }
    out
}

/// Statements that belong to the transaction around them.
fn in_transaction_statement(query: &str) -> bool {
    let upper = query.get(..20).unwrap_or(query).to_ascii_uppercase();
    ["SAVEPOINT", "ROLLBACK TO", "RELEASE SAVEPOINT", "XA "]
        .iter()
        .any(|p| upper.starts_with(p))
}

/// A change logged as a statement rather than as rows.
fn statement_dml(query: &str) -> bool {
    let upper = query.get(..10).unwrap_or(query).to_ascii_uppercase();
    ["INSERT", "UPDATE", "DELETE", "REPLACE"]
        .iter()
        .any(|p| upper.starts_with(p))
}

/// The MySQL value of a binlog value.
fn plain(value: BinlogValue<'_>) -> Result<mysql_async::Value, String> {
    match value {
        BinlogValue::Value(v) => Ok(v),
        BinlogValue::Jsonb(j) => serde_json::Value::try_from(j)
            .map(|json| mysql_async::Value::Bytes(json.to_string().into_bytes()))
            .map_err(|e| e.to_string()),
        BinlogValue::JsonDiff(_) => Err(
            "a partial JSON update (binlog_row_value_options=PARTIAL_JSON is not supported)".into(),
        ),
    }
}

/// The binlog reader of one connector.
pub struct Reader {
    config: MySqlConfig,
    tables: HashMap<(String, String), Table>,
    /// Schemas of the table maps seen since the last DDL, by table id.
    by_id: HashMap<u64, Table>,
    meta: Server,
    history: Option<Arc<SchemaHistory>>,
    cursor: Cursor,
    /// Whether this stream's format description came.
    described: bool,
    /// When the last record was handed on, and the position then.
    beat: (Instant, u64),
}

impl Reader {
    /// A reader from `start` with the schemas in force there.
    ///
    /// # Errors
    /// When the server cannot be reached.
    pub async fn new(
        config: MySqlConfig,
        start: &Position,
        schemas: Schemas,
        history: Option<Arc<SchemaHistory>>,
    ) -> Result<Reader, ConnectError> {
        let meta = Server::connect(&config).await?;
        let tables = schemas
            .into_iter()
            .filter(|((db, t), _)| config.captures(db, t))
            .map(|(k, s)| (k, Table::new(s, &config)))
            .collect();
        Ok(Reader {
            config,
            tables,
            by_id: HashMap::new(),
            meta,
            history,
            cursor: Cursor {
                file: start.file.clone(),
                boundary: start.pos,
                tx_start: None,
                seen: 0,
                skip: start.skip,
                gtid: start.gtid.clone(),
                thread: None,
            },
            described: false,
            beat: (Instant::now(), start.pos),
        })
    }

    async fn open(&mut self) -> Result<BinlogStream, ConnectError> {
        let mut conn = Conn::new(self.config.opts())
            .await
            .map_err(|e| failed("connecting", e))?;
        if self.meta.mariadb {
            // Ask for MariaDB's GTID events rather than their old-style stand-ins.
            conn.query_drop("SET @mariadb_slave_capability = 4")
                .await
                .map_err(|e| failed("mariadb_slave_capability", e))?;
        }
        let start = self.cursor.resume_at();
        let request = BinlogStreamRequest::new(self.config.server_id)
            .with_filename(start.file.as_bytes())
            .with_pos(start.pos);
        info!(file = %start.file, pos = start.pos, skip = self.cursor.skip, "streaming from the binlog");
        conn.get_binlog_stream(request)
            .await
            .map_err(|e| failed(&format!("reading from {}:{}", start.file, start.pos), e))
    }

    /// Streams change events into `out` until it closes or the binlog fails for good.
    /// A dropped connection is reopened at the current transaction's start.
    ///
    /// # Errors
    /// What stopped it.
    pub async fn run(mut self, out: mpsc::Sender<Batch>) -> Result<(), ConnectError> {
        // Failures in a row, without progress between them.
        let mut failures = 0u32;
        loop {
            let error = match self.open().await {
                Ok(mut stream) => {
                    self.described = false;
                    let before = self.cursor.resume_at();
                    match self.read(&mut stream, &out).await {
                        Ok(()) => return Ok(()),
                        Err(ReadError::Connect(e)) => return Err(e),
                        Err(ReadError::Io(e)) => {
                            if self.cursor.resume_at() != before {
                                failures = 0;
                            }
                            self.cursor.rewind();
                            e
                        }
                    }
                }
                // Reopening: the server may be restarting.
                Err(e) if failures > 0 => e.to_string(),
                Err(e) => return Err(e),
            };
            failures += 1;
            if failures > 5 {
                return Err(failed("the connection keeps failing", error));
            }
            warn!(%error, "binlog connection lost; reconnecting");
            tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))).await;
        }
    }

    async fn read(
        &mut self,
        stream: &mut BinlogStream,
        out: &mpsc::Sender<Batch>,
    ) -> Result<(), ReadError> {
        let mut batch: Vec<SourceRecord> = Vec::new();
        loop {
            let next = if batch.is_empty() {
                Some(next_event(stream).await)
            } else {
                // More only if it is already here; otherwise hand on what there is.
                tokio::time::timeout(Duration::ZERO, next_event(stream))
                    .await
                    .ok()
            };
            let event = match next {
                None => {
                    if out.send(Ok(std::mem::take(&mut batch))).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                Some(None) => {
                    return Err(ReadError::Io("the server closed the binlog stream".into()))
                }
                Some(Some(Err(e))) => return Err(classify(e)),
                Some(Some(Ok(event))) => event,
            };
            self.handle(stream, &event, &mut batch).await?;
            self.heartbeat(&mut batch);
            if batch.len() >= self.config.batch_size
                && out.send(Ok(std::mem::take(&mut batch))).await.is_err()
            {
                return Ok(());
            }
        }
    }

    async fn handle(
        &mut self,
        stream: &BinlogStream,
        event: &mysql_async::binlog::events::Event,
        batch: &mut Vec<SourceRecord>,
    ) -> Result<(), ReadError> {
        let header = event.header();
        let end = u64::from(header.log_pos());
        let start = end.saturating_sub(u64::from(header.event_size()));
        if MARIADB_COMPRESSED_EVENTS.contains(&header.event_type_raw()) {
            return Err(ReadError::Connect(failed(
                "a compressed event",
                "log_bin_compress is on: turn it off on the server",
            )));
        }
        if header.event_type_raw() == MARIADB_GTID_EVENT {
            let data = event.data();
            if data.len() >= 12 {
                let seq = u64::from_le_bytes(data[0..8].try_into().unwrap_or_default());
                let domain = u32::from_le_bytes(data[8..12].try_into().unwrap_or_default());
                self.cursor.gtid = Some(format!("{domain}-{}-{seq}", header.server_id()));
            }
            self.begin(start);
            return Ok(());
        }
        let data = match event.read_data() {
            Ok(Some(data)) => data,
            Ok(None) => return Ok(()),
            Err(e) => return Err(ReadError::Connect(failed("an event it cannot read", e))),
        };
        match data {
            // The first rotate of a stream comes before the format description, with
            // its checksum left on the name: the file asked for is known already.
            EventData::RotateEvent(rotate) if header.timestamp() == 0 && !self.described => {
                self.cursor.boundary = rotate.position();
                self.cursor.tx_start = None;
            }
            EventData::FormatDescriptionEvent(_) => self.described = true,
            EventData::RotateEvent(rotate) => {
                self.by_id.clear();
                self.cursor.file = rotate.name().into_owned();
                self.cursor.boundary = rotate.position();
                self.cursor.tx_start = None;
            }
            EventData::GtidEvent(gtid) => {
                self.cursor.gtid = Some(format!("{}:{}", uuid(&gtid.sid()), gtid.gno()));
                self.begin(start);
            }
            EventData::AnonymousGtidEvent(_) => self.begin(start),
            EventData::QueryEvent(query) => {
                let text = query.query();
                let trimmed = text.trim();
                if trimmed.eq_ignore_ascii_case("BEGIN") {
                    if self.cursor.tx_start.is_none() {
                        self.begin(start);
                    }
                    self.cursor.thread = Some(i64::from(query.thread_id()));
                } else if trimmed.eq_ignore_ascii_case("COMMIT") {
                    self.commit(end);
                } else if in_transaction_statement(trimmed) {
                    // SAVEPOINT, ROLLBACK TO, RELEASE SAVEPOINT and XA statements belong
                    // to the transaction around them.
                } else if statement_dml(trimmed) {
                    warn!(query = %trimmed, "a change logged as a statement (binlog_format is not ROW for some session): it is not captured");
                    self.commit(end);
                } else {
                    let schema = query.schema().into_owned();
                    let text = text.into_owned();
                    // Table ids may name other definitions after any statement.
                    self.by_id.clear();
                    self.ddl(&text, &schema, end, header.timestamp(), batch)
                        .await?;
                    self.commit(end);
                }
            }
            EventData::XidEvent(_) => self.commit(end),
            EventData::RowsEvent(rows) => {
                self.rows(
                    stream,
                    &rows,
                    start,
                    header.timestamp(),
                    header.server_id(),
                    batch,
                )
                .await?
            }
            _ => {}
        }
        Ok(())
    }

    /// With `heartbeat.interval.ms`, a heartbeat record carrying the position when the
    /// binlog moved on (changes of tables not captured) and nothing was written for that
    /// long, so the stored offset follows the binlog.
    fn heartbeat(&mut self, batch: &mut Vec<SourceRecord>) {
        let Some(every) = self.config.heartbeat else {
            return;
        };
        if !batch.is_empty() {
            self.beat = (Instant::now(), self.cursor.boundary);
            return;
        }
        if self.cursor.tx_start.is_some()
            || self.beat.1 == self.cursor.boundary
            || self.beat.0.elapsed() < every
        {
            return;
        }
        self.beat = (Instant::now(), self.cursor.boundary);
        let position = self.cursor.at(self.cursor.boundary, 0);
        let mut record = SourceRecord::new(
            crate::envelope::partition(&self.config),
            position.offset(false),
            format!("__debezium-heartbeat.{}", self.config.prefix),
            Value::structure(vec![("ts_ms", Value::Int(crate::envelope::now_ms()))]),
        );
        record.key = Value::structure(vec![(
            "serverName",
            Value::String(self.config.prefix.clone()),
        )]);
        batch.push(record);
    }

    /// A table's schema as it is now, through the metadata connection (opened again
    /// if it went away while idle).
    async fn load(&mut self, db: &str, table: &str) -> Result<Option<TableSchema>, ConnectError> {
        match TableSchema::load(&mut self.meta.conn, db, table).await {
            Ok(schema) => Ok(schema),
            Err(e) => {
                warn!(error = %e, "metadata connection failed; reconnecting");
                self.meta = Server::connect(&self.config).await?;
                TableSchema::load(&mut self.meta.conn, db, table).await
            }
        }
    }

    fn begin(&mut self, start: u64) {
        self.cursor.tx_start = Some(start);
        self.cursor.seen = 0;
    }

    fn commit(&mut self, end: u64) {
        self.cursor.tx_start = None;
        self.cursor.boundary = end;
        self.cursor.seen = 0;
        self.cursor.skip = 0;
    }

    /// Reloads the schemas a DDL statement touched and records them.
    async fn ddl(
        &mut self,
        query: &str,
        default_db: &str,
        end: u64,
        timestamp: u32,
        batch: &mut Vec<SourceRecord>,
    ) -> Result<(), ReadError> {
        let touched = touched(query, default_db);
        let mut changes: Vec<(String, String, Option<TableSchema>)> = Vec::new();
        for t in touched {
            match t {
                Touched::Changed(db, table) if self.config.captures(&db, &table) => {
                    let schema = self.load(&db, &table).await?;
                    match &schema {
                        Some(s) => {
                            self.tables.insert(
                                (db.clone(), table.clone()),
                                Table::new(s.clone(), &self.config),
                            );
                        }
                        None => {
                            self.tables.remove(&(db.clone(), table.clone()));
                        }
                    }
                    changes.push((db, table, schema));
                }
                Touched::Dropped(db, table)
                    if self.tables.remove(&(db.clone(), table.clone())).is_some() =>
                {
                    changes.push((db, table, None));
                }
                Touched::DroppedDatabase(db) => {
                    let gone: Vec<(String, String)> = self
                        .tables
                        .keys()
                        .filter(|(d, _)| *d == db)
                        .cloned()
                        .collect();
                    for key in gone {
                        self.tables.remove(&key);
                        changes.push((key.0, key.1, None));
                    }
                }
                _ => {}
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        info!(ddl = %query, tables = changes.len(), "schema change");
        let position = self.cursor.at(end, 0);
        // A statement with qualified names and no current database is of its table's.
        let db = match default_db {
            "" => changes.first().map_or("", |c| c.0.as_str()),
            db => db,
        };
        if self.config.schema_changes {
            batch.push(schema_change(
                &self.config,
                &position,
                i64::from(timestamp) * 1000,
                db,
                query,
                &changes,
            ));
        }
        if let Some(history) = &self.history {
            let refs: Vec<(String, String, Option<&TableSchema>)> = changes
                .iter()
                .map(|(d, t, s)| (d.clone(), t.clone(), s.as_ref()))
                .collect();
            history
                .record(&position, db, query, &refs)
                .await
                .map_err(ReadError::Connect)?;
        }
        Ok(())
    }

    /// Without column names in the table map, the known schema must fit the row
    /// event; a table first seen here is read from the server.
    async fn known_schema(
        &mut self,
        key: &(String, String),
        columns: u64,
        start: u64,
    ) -> Result<TableSchema, ReadError> {
        let columns = usize::try_from(columns).unwrap_or(usize::MAX);
        if let Some(t) = self
            .tables
            .get(key)
            .filter(|t| t.schema.columns.len() == columns)
        {
            return Ok(t.schema.clone());
        }
        match self.load(&key.0, &key.1).await? {
            Some(s) if s.columns.len() == columns => {
                self.tables
                    .insert(key.clone(), Table::new(s.clone(), &self.config));
                Ok(s)
            }
            found => Err(ReadError::Connect(ConnectError::Failed(format!(
                "binlog: {}.{} has {columns} columns in the binlog at {}:{start} but {} in \
                 its schema now, and the binlog does not name its columns: set \
                 binlog_row_metadata=FULL on the server so rows are read with the schema \
                 they were written with",
                key.0,
                key.1,
                self.cursor.file,
                found.map_or(0, |s| s.columns.len())
            )))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn rows(
        &mut self,
        stream: &BinlogStream,
        rows: &RowsEventData<'_>,
        start: u64,
        timestamp: u32,
        server_id: u32,
        batch: &mut Vec<SourceRecord>,
    ) -> Result<(), ReadError> {
        let Some(tme) = stream.get_tme(rows.table_id()) else {
            return Err(ReadError::Connect(failed(
                "a row event without its table map",
                rows.table_id(),
            )));
        };
        let key = (
            tme.database_name().into_owned(),
            tme.table_name().into_owned(),
        );
        if !self.config.captures(&key.0, &key.1) {
            return Ok(());
        }
        let id = rows.table_id();
        if !self.by_id.contains_key(&id) {
            let known = self.tables.get(&key).map(|t| &t.schema);
            let schema = match crate::tablemap::schema_of(tme, known, self.meta.mariadb) {
                Some(schema) => schema,
                None => self.known_schema(&key, tme.columns_count(), start).await?,
            };
            self.by_id.insert(id, Table::new(schema, &self.config));
        }
        if self.cursor.tx_start.is_none() {
            // No GTID or BEGIN before it: resume from the last boundary, before its table
            // map.
            self.begin(self.cursor.boundary);
        }
        let Some(table) = self.by_id.get(&id) else {
            return Ok(());
        };
        let op = match rows {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => "c",
            RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => "u",
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => "d",
            RowsEventData::PartialUpdateRowsEvent(_) => {
                return Err(ReadError::Connect(failed(
                    "partial row updates",
                    "set binlog_row_value_options to ''",
                )))
            }
        };
        for (index, row) in rows.rows(tme).enumerate() {
            let (before, after) =
                row.map_err(|e| ReadError::Connect(failed("a row it cannot read", e)))?;
            self.cursor.seen += 1;
            if self.cursor.seen <= self.cursor.skip {
                continue;
            }
            let to_value =
                |row: Option<mysql_async::binlog::row::BinlogRow>| -> Result<Value, ConnectError> {
                    let Some(mut row) = row else {
                        return Ok(Value::Null);
                    };
                    let values = (0..row.len())
                        .map(|i| row.take(i).map(plain).transpose())
                        .collect::<Result<Vec<_>, String>>()
                        .map_err(|e| ConnectError::Data(format!("{}.{}: {e}", key.0, key.1)))?;
                    table.schema.row(values, &self.config, true)
                };
            let before = to_value(before).map_err(ReadError::Connect)?;
            let after = to_value(after).map_err(ReadError::Connect)?;
            let position = self
                .cursor
                .at(self.cursor.tx_start.unwrap_or(start), self.cursor.seen);
            let source = Source {
                ts_ms: i64::from(timestamp) * 1000,
                snapshot: None,
                server_id,
                file: &self.cursor.file,
                pos: start,
                row: i32::try_from(index).unwrap_or(i32::MAX),
                gtid: self.cursor.gtid.as_deref(),
                thread: self.cursor.thread,
            };
            let key_moved = op == "u"
                && !table.schema.key.is_empty()
                && table.schema.key_of(&before) != table.schema.key_of(&after);
            if key_moved {
                // A new primary key: a delete (and tombstone) of the old key, then a
                // create of the new, as Debezium writes it. Until the create is written
                // the change counts as not done, so a restart writes all three again.
                let mut undone = position.clone();
                undone.skip = undone.skip.saturating_sub(1);
                let delete = change(
                    &self.config,
                    table,
                    "d",
                    before.clone(),
                    Value::Null,
                    &source,
                    undone.offset(false),
                );
                let tomb = self.config.tombstones.then(|| tombstone(&delete));
                batch.push(delete);
                batch.extend(tomb);
                let create = change(
                    &self.config,
                    table,
                    "c",
                    Value::Null,
                    after,
                    &source,
                    position.offset(false),
                );
                batch.push(create);
                continue;
            }
            let record = change(
                &self.config,
                table,
                op,
                before,
                after,
                &source,
                position.offset(false),
            );
            let tomb = (op == "d" && self.config.tombstones && record.key != Value::Null)
                .then(|| tombstone(&record));
            batch.push(record);
            batch.extend(tomb);
        }
        Ok(())
    }
}

/// A DDL statement as an event on the topic named by the prefix, keyed by database, as
/// Debezium's schema change events are.
fn schema_change(
    config: &MySqlConfig,
    position: &Position,
    ts_ms: i64,
    db: &str,
    ddl: &str,
    changes: &[(String, String, Option<TableSchema>)],
) -> SourceRecord {
    let table_changes: Vec<Value> = changes
        .iter()
        .map(|(d, t, s)| {
            let json = match s {
                Some(s) => {
                    let mut j = s.to_json();
                    j["type"] = serde_json::json!("ALTER");
                    j
                }
                None => serde_json::json!({"type": "DROP", "id": format!("\"{d}\".\"{t}\"")}),
            };
            Value::from_json(&json, None).unwrap_or(Value::Null)
        })
        .collect();
    let source = Value::structure(vec![
        ("server", Value::String(config.prefix.clone())),
        ("file", Value::String(position.file.clone())),
        (
            "pos",
            Value::Int(i64::try_from(position.pos).unwrap_or(i64::MAX)),
        ),
        (
            "gtid",
            position.gtid.clone().map_or(Value::Null, Value::String),
        ),
        ("ts_ms", Value::Int(ts_ms)),
    ]);
    let key_schema = strom_connect_api::Schema::structure(vec![(
        "databaseName",
        strom_connect_api::Schema::of(strom_connect_api::SchemaType::String),
    )])
    .named("io.debezium.connector.mysql.SchemaChangeKey");
    let mut record = SourceRecord::new(
        crate::envelope::partition(config),
        position.offset(false),
        config.prefix.clone(),
        Value::structure(vec![
            ("source", source),
            ("ts_ms", Value::Int(crate::envelope::now_ms())),
            ("databaseName", Value::String(db.to_owned())),
            ("ddl", Value::String(ddl.to_owned())),
            ("tableChanges", Value::Array(table_changes)),
        ]),
    );
    record.key_schema = Some(Arc::new(key_schema));
    record.key = Value::structure(vec![("databaseName", Value::String(db.to_owned()))]);
    record
}

/// Why reading stopped.
enum ReadError {
    /// The connection dropped: reconnect.
    Io(String),
    /// Anything else: the task fails.
    Connect(ConnectError),
}

impl From<ConnectError> for ReadError {
    fn from(e: ConnectError) -> Self {
        ReadError::Connect(e)
    }
}

fn classify(e: mysql_async::Error) -> ReadError {
    match e {
        mysql_async::Error::Io(e) => ReadError::Io(e.to_string()),
        // The connection killed, the server shutting down, a read interrupted or timed out.
        mysql_async::Error::Server(e) if matches!(e.code, 1927 | 1317 | 1053 | 1159 | 1161) => {
            ReadError::Io(format!("{} ({})", e.message, e.code))
        }
        mysql_async::Error::Driver(e) => ReadError::Io(e.to_string()),
        mysql_async::Error::Server(e) if e.code == 1236 => {
            ReadError::Connect(ConnectError::Failed(format!(
                "binlog: the server cannot send the binlog from the stored position ({}); \
             it was probably purged: delete the connector's offsets to take a new snapshot, \
             or use snapshot.mode=when_needed",
                e.message
            )))
        }
        e => ReadError::Connect(failed("reading", e)),
    }
}

async fn next_event(
    stream: &mut BinlogStream,
) -> Option<Result<mysql_async::binlog::events::Event, mysql_async::Error>> {
    std::future::poll_fn(|cx| futures_core::Stream::poll_next(std::pin::Pin::new(&mut *stream), cx))
        .await
}

fn uuid(sid: &[u8; 16]) -> String {
    let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(db: &str, t: &str) -> Touched {
        Touched::Changed(db.into(), t.into())
    }
    fn dropped(db: &str, t: &str) -> Touched {
        Touched::Dropped(db.into(), t.into())
    }

    #[test]
    fn ddl_statements_name_the_tables_they_touch() {
        assert_eq!(
            touched("ALTER TABLE t ADD COLUMN c INT", "d"),
            vec![changed("d", "t")]
        );
        assert_eq!(
            touched("ALTER TABLE IF EXISTS t ADD COLUMN c INT", "d"),
            vec![changed("d", "t")]
        );
        assert_eq!(
            touched("alter table `x`.`odd``name` drop c", "d"),
            vec![changed("x", "odd`name")]
        );
        assert_eq!(
            touched("CREATE TABLE IF NOT EXISTS s.t (id INT PRIMARY KEY)", "d"),
            vec![changed("s", "t")]
        );
        assert_eq!(
            touched(
                "DROP TABLE IF EXISTS `a`, b.c /* generated by server */",
                "d"
            ),
            vec![dropped("d", "a"), dropped("b", "c")]
        );
        assert_eq!(
            touched("RENAME TABLE a TO b, c TO x.d", "d"),
            vec![
                dropped("d", "a"),
                changed("d", "b"),
                dropped("d", "c"),
                changed("x", "d")
            ]
        );
        assert_eq!(
            touched("ALTER TABLE a RENAME TO b", "d"),
            vec![dropped("d", "a"), changed("d", "b")]
        );
        assert_eq!(
            touched("ALTER TABLE a RENAME COLUMN x TO y", "d"),
            vec![changed("d", "a")]
        );
        assert_eq!(
            touched("DROP DATABASE shop", "d"),
            vec![Touched::DroppedDatabase("shop".into())]
        );
        assert!(touched("INSERT INTO t VALUES (1)", "d").is_empty());
        assert!(touched("CREATE INDEX i ON t (c)", "d").is_empty());
    }
}
