//! Table schemas (read from `information_schema`), their Kafka Connect schemas in
//! Debezium's mapping, and MySQL values turned into Connect values.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde_json::json;
use strom_connect_api::{ConnectError, Schema, SchemaType, Value};

use crate::config::{DecimalMode, MySqlConfig};

/// What a column holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An integer of `bits` (8, 16, 24, 32, 64).
    Int {
        /// Its width.
        bits: u8,
        /// UNSIGNED.
        unsigned: bool,
    },
    /// FLOAT.
    Float,
    /// DOUBLE.
    Double,
    /// DECIMAL(precision, scale).
    Decimal {
        /// Digits in all.
        precision: u32,
        /// Digits after the point.
        scale: u32,
    },
    /// BIT(bits).
    Bit(u32),
    /// Text in a character set (`latin1` is decoded as such, others as UTF-8).
    Text {
        /// Whether it is latin1.
        latin1: bool,
    },
    /// BINARY, VARBINARY, BLOB and anything without a better mapping (geometry).
    Binary,
    /// DATE.
    Date,
    /// DATETIME(fsp).
    DateTime(u32),
    /// TIMESTAMP(fsp).
    Timestamp(u32),
    /// TIME(fsp).
    Time(u32),
    /// YEAR.
    Year,
    /// JSON (MySQL's type, or MariaDB's LONGTEXT with a `json_valid` check).
    Json,
    /// ENUM with its labels.
    Enum(Vec<String>),
    /// SET with its labels.
    Set(Vec<String>),
}

/// A column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// What it holds.
    pub kind: Kind,
    /// Whether it may be NULL.
    pub nullable: bool,
    /// Its declared type (`int(10) unsigned`).
    pub type_name: String,
}

/// A table's columns in order, and its primary key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    /// The database.
    pub db: String,
    /// The table.
    pub table: String,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the primary key, in key order.
    pub key: Vec<usize>,
}

/// The labels of `enum('a','b''c')` or `set(...)`.
fn labels(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut chars = column_type[start + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(next) = chars.next() {
                        label.push(next);
                    }
                }
                c => label.push(c),
            }
        }
        out.push(label);
    }
    out
}

/// The kind of a column from `information_schema.COLUMNS`.
fn kind(
    data_type: &str,
    column_type: &str,
    precision: Option<u64>,
    scale: Option<u64>,
    fsp: Option<u64>,
    charset: Option<&str>,
) -> Kind {
    let unsigned = column_type.contains("unsigned");
    let fsp = u32::try_from(fsp.unwrap_or(0)).unwrap_or(0);
    match data_type {
        "tinyint" => Kind::Int { bits: 8, unsigned },
        "smallint" => Kind::Int { bits: 16, unsigned },
        "mediumint" => Kind::Int { bits: 24, unsigned },
        "int" | "integer" => Kind::Int { bits: 32, unsigned },
        "bigint" => Kind::Int { bits: 64, unsigned },
        "float" => Kind::Float,
        "double" | "real" => Kind::Double,
        "decimal" | "numeric" => Kind::Decimal {
            precision: u32::try_from(precision.unwrap_or(10)).unwrap_or(65),
            scale: u32::try_from(scale.unwrap_or(0)).unwrap_or(0),
        },
        "bit" => Kind::Bit(u32::try_from(precision.unwrap_or(1)).unwrap_or(64)),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => Kind::Text {
            latin1: charset == Some("latin1"),
        },
        "date" => Kind::Date,
        "datetime" => Kind::DateTime(fsp),
        "timestamp" => Kind::Timestamp(fsp),
        "time" => Kind::Time(fsp),
        "year" => Kind::Year,
        "json" => Kind::Json,
        "enum" => Kind::Enum(labels(column_type)),
        "set" => Kind::Set(labels(column_type)),
        _ => Kind::Binary,
    }
}

fn db_error(what: &str, e: mysql_async::Error) -> ConnectError {
    ConnectError::Failed(format!("{what}: {e}"))
}

impl TableSchema {
    /// Reads the schema of `db.table` as it is now; `None` when there is no such table.
    ///
    /// # Errors
    /// Query failures.
    pub async fn load(
        conn: &mut Conn,
        db: &str,
        table: &str,
    ) -> Result<Option<TableSchema>, ConnectError> {
        type Row = (
            String,
            String,
            String,
            String,
            Option<u64>,
            Option<u64>,
            Option<u64>,
            Option<String>,
        );
        let rows: Vec<Row> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, \
                 NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                (db, table),
            )
            .await
            .map_err(|e| db_error(&format!("reading the columns of {db}.{table}"), e))?;
        if rows.is_empty() {
            return Ok(None);
        }
        // MariaDB's JSON is LONGTEXT with a json_valid() check named after the column.
        let checks: Vec<String> = conn
            .exec(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
                (db, table),
            )
            .await
            .unwrap_or_default();
        let key_names: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
                 ORDER BY ORDINAL_POSITION",
                (db, table),
            )
            .await
            .map_err(|e| db_error(&format!("reading the primary key of {db}.{table}"), e))?;
        let columns: Vec<Column> = rows
            .into_iter()
            .map(
                |(name, data_type, column_type, nullable, precision, scale, fsp, charset)| {
                    let data_type = data_type.to_ascii_lowercase();
                    let mut kind = kind(
                        &data_type,
                        &column_type,
                        precision,
                        scale,
                        fsp,
                        charset.as_deref(),
                    );
                    if data_type == "longtext"
                        && checks
                            .iter()
                            .any(|c| c.replace(['`', ' '], "") == format!("json_valid({name})"))
                    {
                        kind = Kind::Json;
                    }
                    Column {
                        name,
                        kind,
                        nullable: nullable == "YES",
                        type_name: column_type,
                    }
                },
            )
            .collect();
        let key = key_names
            .iter()
            .filter_map(|k| columns.iter().position(|c| &c.name == k))
            .collect();
        Ok(Some(TableSchema {
            db: db.to_owned(),
            table: table.to_owned(),
            columns,
            key,
        }))
    }

    /// The schema as stored in the schema history (Debezium's `tableChanges` shape).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "id": format!("\"{}\".\"{}\"", self.db, self.table),
            "table": {
                "primaryKeyColumnNames": self.key.iter().map(|i| &self.columns[*i].name).collect::<Vec<_>>(),
                "columns": self.columns.iter().enumerate().map(|(i, c)| json!({
                    "name": c.name,
                    "typeName": c.type_name,
                    "position": i + 1,
                    "optional": c.nullable,
                    "kind": kind_json(&c.kind),
                })).collect::<Vec<_>>(),
            },
        })
    }

    /// A schema stored by [`TableSchema::to_json`].
    pub fn from_json(db: &str, table: &str, json: &serde_json::Value) -> Option<TableSchema> {
        let t = json.get("table")?;
        let columns: Vec<Column> = t
            .get("columns")?
            .as_array()?
            .iter()
            .map(|c| {
                Some(Column {
                    name: c.get("name")?.as_str()?.to_owned(),
                    type_name: c.get("typeName")?.as_str()?.to_owned(),
                    nullable: c.get("optional")?.as_bool()?,
                    kind: kind_from_json(c.get("kind")?)?,
                })
            })
            .collect::<Option<_>>()?;
        let key = t
            .get("primaryKeyColumnNames")?
            .as_array()?
            .iter()
            .filter_map(|k| {
                columns
                    .iter()
                    .position(|c| Some(c.name.as_str()) == k.as_str())
            })
            .collect();
        Some(TableSchema {
            db: db.to_owned(),
            table: table.to_owned(),
            columns,
            key,
        })
    }

    fn name(&self, config: &MySqlConfig, suffix: &str) -> String {
        format!("{}.{}.{}.{suffix}", config.prefix, self.db, self.table)
    }

    /// The row's Connect schema (`<prefix>.<db>.<table>.Value`).
    pub fn value_schema(&self, config: &MySqlConfig) -> Schema {
        let mut schema = Schema::structure(
            self.columns
                .iter()
                .map(|c| (c.name.as_str(), column_schema(c, config)))
                .collect(),
        )
        .named(&self.name(config, "Value"));
        schema.optional = true;
        schema
    }

    /// The key's Connect schema, or `None` without a primary key.
    pub fn key_schema(&self, config: &MySqlConfig) -> Option<Schema> {
        if self.key.is_empty() {
            return None;
        }
        Some(
            Schema::structure(
                self.key
                    .iter()
                    .map(|i| {
                        (
                            self.columns[*i].name.as_str(),
                            column_schema(&self.columns[*i], config),
                        )
                    })
                    .collect(),
            )
            .named(&self.name(config, "Key")),
        )
    }

    /// The envelope's Connect schema (`<prefix>.<db>.<table>.Envelope`).
    pub fn envelope_schema(&self, config: &MySqlConfig) -> Schema {
        let row = self.value_schema(config);
        Schema::structure(vec![
            ("before", row.clone()),
            ("after", row),
            ("source", source_schema()),
            ("op", Schema::of(SchemaType::String)),
            ("ts_ms", Schema::of(SchemaType::Int64).optional()),
        ])
        .named(&self.name(config, "Envelope"))
    }

    /// A row's values as a Connect struct.
    ///
    /// # Errors
    /// A value that does not fit its column.
    pub fn row(
        &self,
        values: Vec<Option<mysql_async::Value>>,
        config: &MySqlConfig,
        binlog: bool,
    ) -> Result<Value, ConnectError> {
        if values.len() != self.columns.len() {
            return Err(ConnectError::Data(format!(
                "{}.{}: a row of {} columns, the schema has {}",
                self.db,
                self.table,
                values.len(),
                self.columns.len()
            )));
        }
        let fields = self
            .columns
            .iter()
            .zip(values)
            .map(|(c, v)| {
                let value = match v {
                    None | Some(mysql_async::Value::NULL) => Value::Null,
                    Some(v) => convert(c, v, config, binlog).map_err(|e| {
                        ConnectError::Data(format!("{}.{}.{}: {e}", self.db, self.table, c.name))
                    })?,
                };
                Ok((c.name.clone(), value))
            })
            .collect::<Result<_, ConnectError>>()?;
        Ok(Value::Struct(fields))
    }

    /// The key struct of a row struct, or `Value::Null` without a primary key.
    pub fn key_of(&self, row: &Value) -> Value {
        let Value::Struct(fields) = row else {
            return Value::Null;
        };
        if self.key.is_empty() {
            return Value::Null;
        }
        Value::Struct(
            self.key
                .iter()
                .filter_map(|i| fields.get(*i).cloned())
                .collect(),
        )
    }
}

fn kind_json(kind: &Kind) -> serde_json::Value {
    match kind {
        Kind::Int { bits, unsigned } => json!({"int": bits, "unsigned": unsigned}),
        Kind::Float => json!("float"),
        Kind::Double => json!("double"),
        Kind::Decimal { precision, scale } => json!({"decimal": [precision, scale]}),
        Kind::Bit(n) => json!({"bit": n}),
        Kind::Text { latin1 } => json!({"text": if *latin1 { "latin1" } else { "utf8" }}),
        Kind::Binary => json!("binary"),
        Kind::Date => json!("date"),
        Kind::DateTime(f) => json!({"datetime": f}),
        Kind::Timestamp(f) => json!({"timestamp": f}),
        Kind::Time(f) => json!({"time": f}),
        Kind::Year => json!("year"),
        Kind::Json => json!("json"),
        Kind::Enum(l) => json!({"enum": l}),
        Kind::Set(l) => json!({"set": l}),
    }
}

fn kind_from_json(json: &serde_json::Value) -> Option<Kind> {
    if let Some(s) = json.as_str() {
        return Some(match s {
            "float" => Kind::Float,
            "double" => Kind::Double,
            "binary" => Kind::Binary,
            "date" => Kind::Date,
            "year" => Kind::Year,
            "json" => Kind::Json,
            _ => return None,
        });
    }
    let o = json.as_object()?;
    let (k, v) = o.iter().find(|(k, _)| *k != "unsigned")?;
    let n = || v.as_u64().and_then(|n| u32::try_from(n).ok());
    let strings = || {
        v.as_array().map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
    };
    Some(match k.as_str() {
        "int" => Kind::Int {
            bits: u8::try_from(v.as_u64()?).ok()?,
            unsigned: o.get("unsigned")?.as_bool()?,
        },
        "decimal" => {
            let a = v.as_array()?;
            Kind::Decimal {
                precision: u32::try_from(a.first()?.as_u64()?).ok()?,
                scale: u32::try_from(a.get(1)?.as_u64()?).ok()?,
            }
        }
        "bit" => Kind::Bit(n()?),
        "text" => Kind::Text {
            latin1: v.as_str()? == "latin1",
        },
        "datetime" => Kind::DateTime(n()?),
        "timestamp" => Kind::Timestamp(n()?),
        "time" => Kind::Time(n()?),
        "enum" => Kind::Enum(strings()?),
        "set" => Kind::Set(strings()?),
        _ => return None,
    })
}

/// Debezium's `source` block schema for MySQL.
pub fn source_schema() -> Schema {
    let s = || Schema::of(SchemaType::String);
    Schema::structure(vec![
        ("version", s()),
        ("connector", s()),
        ("name", s()),
        ("ts_ms", Schema::of(SchemaType::Int64)),
        (
            "snapshot",
            s().optional()
                .named("io.debezium.data.Enum")
                .parameter("allowed", "true,last,false,incremental"),
        ),
        ("db", s()),
        ("table", s().optional()),
        ("server_id", Schema::of(SchemaType::Int64)),
        ("gtid", s().optional()),
        ("file", s()),
        ("pos", Schema::of(SchemaType::Int64)),
        ("row", Schema::of(SchemaType::Int32)),
        ("thread", Schema::of(SchemaType::Int64).optional()),
    ])
    .named("io.debezium.connector.mysql.Source")
}

/// A column's Connect schema, in Debezium's mapping.
pub fn column_schema(column: &Column, config: &MySqlConfig) -> Schema {
    let mut schema = match &column.kind {
        Kind::Int { bits, unsigned } => Schema::of(match (bits, unsigned) {
            (8, _) | (16, false) => SchemaType::Int16,
            (16, true) | (24, _) | (32, false) => SchemaType::Int32,
            (64, true) if config.unsigned_bigint_precise => {
                return decimal_schema(20, 0, column.nullable)
            }
            _ => SchemaType::Int64,
        }),
        Kind::Float => Schema::of(SchemaType::Float32),
        Kind::Double => Schema::of(SchemaType::Float64),
        Kind::Decimal { precision, scale } => match config.decimal {
            DecimalMode::Precise => return decimal_schema(*precision, *scale, column.nullable),
            DecimalMode::String => Schema::of(SchemaType::String),
            DecimalMode::Double => Schema::of(SchemaType::Float64),
        },
        Kind::Bit(1) => Schema::of(SchemaType::Boolean),
        Kind::Bit(n) => Schema::of(SchemaType::Bytes)
            .named("io.debezium.data.Bits")
            .parameter("length", &n.to_string()),
        Kind::Text { .. } => Schema::of(SchemaType::String),
        Kind::Binary => Schema::of(SchemaType::Bytes),
        Kind::Date => Schema::of(SchemaType::Int32).named("io.debezium.time.Date"),
        Kind::DateTime(fsp) if *fsp <= 3 => {
            Schema::of(SchemaType::Int64).named("io.debezium.time.Timestamp")
        }
        Kind::DateTime(_) => Schema::of(SchemaType::Int64).named("io.debezium.time.MicroTimestamp"),
        Kind::Timestamp(_) => {
            Schema::of(SchemaType::String).named("io.debezium.time.ZonedTimestamp")
        }
        Kind::Time(_) => Schema::of(SchemaType::Int64).named("io.debezium.time.MicroTime"),
        Kind::Year => Schema::of(SchemaType::Int32).named("io.debezium.time.Year"),
        Kind::Json => Schema::of(SchemaType::String).named("io.debezium.data.Json"),
        Kind::Enum(labels) => Schema::of(SchemaType::String)
            .named("io.debezium.data.Enum")
            .parameter("allowed", &labels.join(",")),
        Kind::Set(labels) => Schema::of(SchemaType::String)
            .named("io.debezium.data.EnumSet")
            .parameter("allowed", &labels.join(",")),
    };
    schema.optional = column.nullable;
    schema
}

fn decimal_schema(precision: u32, scale: u32, optional: bool) -> Schema {
    let mut schema = Schema::of(SchemaType::Bytes)
        .named("org.apache.kafka.connect.data.Decimal")
        .parameter("scale", &scale.to_string())
        .parameter("connect.decimal.precision", &precision.to_string());
    schema.optional = optional;
    schema
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD[ hh:mm:ss[.ffffff]]` (or with `T`) as microseconds since the epoch, or
/// `None` for a zero date.
pub(crate) fn datetime_micros(text: &str) -> Result<Option<i64>, String> {
    let bad = || format!("not a date: {text:?}");
    let (date, time) = text.split_once([' ', 'T']).unwrap_or((text, ""));
    let mut parts = date.split('-');
    let mut next =
        || -> Result<i64, String> { parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad) };
    let (y, m, d) = (next()?, next()?, next()?);
    let of_day = if time.is_empty() {
        0
    } else {
        parse_time(time)?
    };
    Ok(epoch_micros(
        y,
        u32::try_from(m).map_err(|_| bad())?,
        u32::try_from(d).map_err(|_| bad())?,
        of_day,
    ))
}

/// Microseconds of `[-]h:mm:ss[.ffffff]`.
fn parse_time(text: &str) -> Result<i64, String> {
    let bad = || format!("not a time: {text:?}");
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let mut parts = whole.split(':');
    let mut next =
        || -> Result<i64, String> { parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad) };
    let (h, m, s) = (next()?, next()?, next()?);
    let mut micros: i64 = 0;
    for (i, c) in fraction.chars().take(6).enumerate() {
        let digit = i64::from(c.to_digit(10).ok_or_else(bad)?);
        micros += digit * 10_i64.pow(5 - u32::try_from(i).unwrap_or(5));
    }
    let total = ((h * 60 + m) * 60 + s) * 1_000_000 + micros;
    Ok(if negative { -total } else { total })
}

/// A date and time as microseconds since the epoch, or `None` for a zero date.
fn epoch_micros(y: i64, m: u32, d: u32, micros_of_day: i64) -> Option<i64> {
    if m == 0 || d == 0 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400_000_000 + micros_of_day)
}

/// `YYYY-MM-DD<sep>hh:mm:ss[.f]` with `fsp` fraction digits.
pub(crate) fn format_datetime(epoch_micros: i64, fsp: u32, sep: char) -> String {
    let days = epoch_micros.div_euclid(86_400_000_000);
    let rest = epoch_micros.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let secs = rest / 1_000_000;
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}{sep}{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if fsp > 0 {
        let fraction = format!("{:06}", rest % 1_000_000);
        out.push('.');
        out.push_str(&fraction[..usize::try_from(fsp.min(6)).unwrap_or(6)]);
    }
    out
}

/// `YYYY-MM-DDThh:mm:ss[.f]Z` with `fsp` fraction digits.
fn zoned(epoch_micros: i64, fsp: u32) -> String {
    let mut out = format_datetime(epoch_micros, fsp, 'T');
    out.push('Z');
    out
}

/// A decimal string (`-12.5`) as Kafka Connect's Decimal: the unscaled value at `scale`
/// as a big-endian two's-complement integer.
pub fn decimal_bytes(text: &str, scale: u32) -> Result<Vec<u8>, String> {
    let bad = || format!("not a decimal: {text:?}");
    let (negative, digits) = match text.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.trim()),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).map_err(|_| bad())?;
    if fraction.len() > scale {
        return Err(format!(
            "{text:?} has more than {scale} digits after the point"
        ));
    }
    // Magnitude in base 256, most significant first.
    let mut magnitude: Vec<u8> = vec![0];
    let padded = fraction.chars().chain(std::iter::repeat('0')).take(scale);
    for c in whole.chars().chain(padded) {
        let mut carry = c.to_digit(10).ok_or_else(bad)?;
        for byte in magnitude.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            magnitude.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    while magnitude.len() > 1 && magnitude[0] == 0 {
        magnitude.remove(0);
    }
    let zero = magnitude.iter().all(|b| *b == 0);
    if !negative || zero {
        if magnitude[0] & 0x80 != 0 {
            magnitude.insert(0, 0);
        }
        return Ok(magnitude);
    }
    magnitude.insert(0, 0);
    for byte in magnitude.iter_mut() {
        *byte = !*byte;
    }
    for byte in magnitude.iter_mut().rev() {
        let (v, overflow) = byte.overflowing_add(1);
        *byte = v;
        if !overflow {
            break;
        }
    }
    while magnitude.len() > 1 && magnitude[0] == 0xff && magnitude[1] & 0x80 != 0 {
        magnitude.remove(0);
    }
    Ok(magnitude)
}

fn text(bytes: Vec<u8>, latin1: bool) -> String {
    if latin1 {
        bytes.into_iter().map(char::from).collect()
    } else {
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

fn as_text(value: &mysql_async::Value) -> Result<String, String> {
    match value {
        mysql_async::Value::Bytes(b) => String::from_utf8(b.clone()).map_err(|e| e.to_string()),
        mysql_async::Value::Int(i) => Ok(i.to_string()),
        mysql_async::Value::UInt(u) => Ok(u.to_string()),
        mysql_async::Value::Float(f) => Ok(f.to_string()),
        mysql_async::Value::Double(f) => Ok(f.to_string()),
        other => Err(format!("unexpected value {other:?}")),
    }
}

/// A MySQL value as a Connect value of its column's schema; `binlog` when it was read
/// from the binary log (a SET is then a bitmask, not text).
///
/// # Errors
/// A value that does not fit the column.
pub fn convert(
    column: &Column,
    value: mysql_async::Value,
    config: &MySqlConfig,
    binlog: bool,
) -> Result<Value, String> {
    use mysql_async::Value as V;
    Ok(match (&column.kind, value) {
        (_, V::NULL) => Value::Null,
        (Kind::Int { bits, unsigned }, v) => {
            let n: i128 = match v {
                V::Int(i) => i128::from(i),
                V::UInt(u) => i128::from(u),
                v => as_text(&v)?.parse().map_err(|e| format!("{e}"))?,
            };
            // The binlog has no signedness without full row metadata: an unsigned value
            // can arrive as a negative number of the column's width (and a reader may not
            // sign-extend a signed MEDIUMINT).
            let n = match (*unsigned, n) {
                (true, n) if n < 0 => n + (1_i128 << bits),
                (false, n) if *bits < 64 && n >= 1_i128 << (bits - 1) => n - (1_i128 << bits),
                (_, n) => n,
            };
            if *bits == 64 && *unsigned && config.unsigned_bigint_precise {
                Value::Bytes(decimal_bytes(&n.to_string(), 0)?)
            } else {
                Value::Int(n as i64)
            }
        }
        (Kind::Float | Kind::Double, V::Float(f)) => Value::Float(f64::from(f)),
        (Kind::Float | Kind::Double, V::Double(f)) => Value::Float(f),
        (Kind::Float | Kind::Double, v) => {
            Value::Float(as_text(&v)?.parse().map_err(|e| format!("{e}"))?)
        }
        (Kind::Decimal { scale, .. }, v) => {
            let t = as_text(&v)?;
            match config.decimal {
                DecimalMode::Precise => Value::Bytes(decimal_bytes(&t, *scale)?),
                DecimalMode::String => Value::String(t),
                DecimalMode::Double => Value::Float(t.parse().map_err(|e| format!("{e}"))?),
            }
        }
        (Kind::Bit(n), v) => {
            let bytes = match v {
                V::Bytes(b) => b,
                V::Int(i) => i.to_be_bytes().to_vec(),
                V::UInt(u) => u.to_be_bytes().to_vec(),
                v => return Err(format!("unexpected BIT value {v:?}")),
            };
            if *n == 1 {
                Value::Boolean(bytes.iter().any(|b| *b != 0))
            } else {
                // Debezium's Bits: little-endian, as many bytes as the width needs.
                let width = usize::try_from(n.div_ceil(8)).unwrap_or(8);
                let mut le: Vec<u8> = bytes.into_iter().rev().collect();
                le.resize(width, 0);
                Value::Bytes(le)
            }
        }
        // A query's text is in the connection's character set (UTF-8); the binlog has the
        // column's own.
        (Kind::Text { latin1 }, V::Bytes(b)) => Value::String(text(b, *latin1 && binlog)),
        (Kind::Text { .. } | Kind::Json, v) => Value::String(as_text(&v)?),
        (Kind::Binary, V::Bytes(b)) => Value::Bytes(b),
        (Kind::Binary, v) => Value::Bytes(as_text(&v)?.into_bytes()),
        (Kind::Date, V::Date(y, m, d, ..)) => {
            match epoch_micros(i64::from(y), u32::from(m), u32::from(d), 0) {
                Some(us) => Value::Int(us / 86_400_000_000),
                None if column.nullable => Value::Null,
                None => Value::Int(0),
            }
        }
        (Kind::DateTime(fsp), V::Date(y, m, d, h, mi, s, us)) => {
            let of_day = ((i64::from(h) * 60 + i64::from(mi)) * 60 + i64::from(s)) * 1_000_000
                + i64::from(us);
            let epoch = epoch_micros(i64::from(y), u32::from(m), u32::from(d), of_day);
            match epoch {
                Some(us) if *fsp <= 3 => Value::Int(us.div_euclid(1000)),
                Some(us) => Value::Int(us),
                None if column.nullable => Value::Null,
                None => Value::Int(0),
            }
        }
        (Kind::Time(_), V::Time(negative, days, h, m, s, us)) => {
            let total = (((i64::from(days) * 24 + i64::from(h)) * 60 + i64::from(m)) * 60
                + i64::from(s))
                * 1_000_000
                + i64::from(us);
            Value::Int(if negative { -total } else { total })
        }
        (Kind::Time(_), v) => Value::Int(parse_time(&as_text(&v)?)?),
        (Kind::Year, v) => {
            let year: i64 = as_text(&v)?.parse().map_err(|e| format!("{e}"))?;
            // YEAR holds 1901-2155 and 0000; the binlog reader turns 0000 into 1900.
            Value::Int(if binlog && year == 1900 { 0 } else { year })
        }
        (Kind::Date | Kind::DateTime(_), v) => {
            match (datetime_micros(&as_text(&v)?)?, &column.kind) {
                (Some(us), Kind::Date) => Value::Int(us.div_euclid(86_400_000_000)),
                (Some(us), Kind::DateTime(fsp)) if *fsp <= 3 => Value::Int(us.div_euclid(1000)),
                (Some(us), _) => Value::Int(us),
                (None, _) if column.nullable => Value::Null,
                (None, _) => Value::Int(0),
            }
        }
        (Kind::Timestamp(fsp), v) => {
            let t = as_text(&v)?;
            // The binlog has seconds since the epoch ("1700000000.123456"); a query in a
            // UTC session has "2023-11-14 22:13:20.123456".
            let micros = if t.contains('-') {
                datetime_micros(&t)?
            } else {
                let (secs, fraction) = t.split_once('.').unwrap_or((&t, ""));
                let secs: i64 = secs.parse().map_err(|e| format!("{e}"))?;
                let fraction = format!("{fraction:0<6}");
                let us: i64 = fraction[..6].parse().map_err(|e| format!("{e}"))?;
                Some(secs * 1_000_000 + us)
            };
            match micros {
                Some(us) => Value::String(zoned(us, *fsp)),
                None if column.nullable => Value::Null,
                None => Value::String(zoned(0, *fsp)),
            }
        }
        (Kind::Enum(labels), V::Int(i)) => {
            // The binlog has the 1-based index; 0 is the empty "error" value.
            let label = usize::try_from(i - 1).ok().and_then(|i| labels.get(i));
            Value::String(label.cloned().unwrap_or_default())
        }
        (Kind::Enum(_), v) => Value::String(as_text(&v)?),
        (Kind::Set(labels), V::Bytes(b)) if binlog => {
            let mut chosen = Vec::new();
            for (i, label) in labels.iter().enumerate() {
                if b.get(i / 8).is_some_and(|byte| byte & (1 << (i % 8)) != 0) {
                    chosen.push(label.as_str());
                }
            }
            Value::String(chosen.join(","))
        }
        (Kind::Set(labels), V::Int(bits)) => {
            let chosen: Vec<&str> = labels
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, l)| l.as_str())
                .collect();
            Value::String(chosen.join(","))
        }
        (Kind::Set(_), v) => Value::String(as_text(&v)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_twos_complement_of_the_unscaled_value() {
        assert_eq!(decimal_bytes("0", 2).unwrap(), vec![0]);
        assert_eq!(decimal_bytes("1.5", 1).unwrap(), vec![15]);
        assert_eq!(decimal_bytes("1.28", 2).unwrap(), vec![0, 128]);
        assert_eq!(decimal_bytes("-1.28", 2).unwrap(), vec![0x80]);
        assert_eq!(decimal_bytes("-1.29", 2).unwrap(), vec![0xff, 0x7f]);
        assert_eq!(decimal_bytes("-1", 0).unwrap(), vec![0xff]);
        assert_eq!(decimal_bytes("-129", 0).unwrap(), vec![0xff, 0x7f]);
        assert_eq!(
            decimal_bytes("12.3", 3).unwrap(),
            12300_i32.to_be_bytes()[2..].to_vec()
        );
        assert_eq!(
            decimal_bytes("18446744073709551615", 0).unwrap(),
            vec![0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert!(decimal_bytes("1.234", 2).is_err());
        assert!(decimal_bytes("1x", 0).is_err());
    }

    #[test]
    fn dates_round_trip_through_day_counts() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        for days in [-800_000, -1, 0, 59, 11_017, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(zoned(1_700_000_000_123_456, 3), "2023-11-14T22:13:20.123Z");
        assert_eq!(zoned(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_time("-838:59:59.5").unwrap(), -3_020_399_500_000);
    }

    #[test]
    fn enum_and_set_labels_are_read_from_the_column_type() {
        assert_eq!(labels("enum('a','b''c','d,e')"), vec!["a", "b'c", "d,e"]);
        assert_eq!(labels("set('x')"), vec!["x"]);
    }
}
