//! A topic as a table: the record columns every topic has, plus the value's own columns
//! when it is JSON (declared, or inferred from a sample and then fixed).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::SqlError;

/// The columns of every record, in this order, before the value's own.
pub const RECORD_COLUMNS: [&str; 7] = [
    "key",
    "value",
    "headers",
    "topic",
    "partition",
    "offset",
    "timestamp",
];

/// How a topic's values are read.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueFormat {
    /// UTF-8 text in `value`.
    String,
    /// Raw bytes in `value` (binary).
    Bytes,
    /// JSON: `value` holds the text, and each declared field of the top-level object is a
    /// column of its own (nested objects and arrays as JSON text, for `->` / `->>`).
    Json(Vec<JsonField>),
}

/// A top-level field of JSON values, as a column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonField {
    /// The field's (and column's) name.
    pub name: String,
    /// Its type.
    pub kind: JsonKind,
}

/// The column type of a JSON field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonKind {
    /// Text (`Utf8`); also objects and arrays, as JSON text.
    Text,
    /// Whole numbers (`Int64`).
    Integer,
    /// Numbers (`Float64`).
    Float,
    /// `true` / `false` (`Boolean`).
    Boolean,
}

impl JsonField {
    /// A field named `name` of `kind`.
    pub fn new(name: impl Into<String>, kind: JsonKind) -> Self {
        JsonField {
            name: name.into(),
            kind,
        }
    }
}

impl JsonKind {
    fn data_type(self) -> DataType {
        match self {
            JsonKind::Text => DataType::Utf8,
            JsonKind::Integer => DataType::Int64,
            JsonKind::Float => DataType::Float64,
            JsonKind::Boolean => DataType::Boolean,
        }
    }

    /// The kind a JSON value suggests.
    fn of(value: &serde_json::Value) -> Option<JsonKind> {
        match value {
            serde_json::Value::Null => None,
            serde_json::Value::Bool(_) => Some(JsonKind::Boolean),
            serde_json::Value::Number(n) if n.is_i64() => Some(JsonKind::Integer),
            serde_json::Value::Number(_) => Some(JsonKind::Float),
            _ => Some(JsonKind::Text),
        }
    }
}

impl ValueFormat {
    /// JSON with the fields seen in `sample` (values of a topic): each field's kind from
    /// its values (integers and floats make a float; any other mix makes text), in
    /// name order. Values that are not JSON objects are skipped.
    pub fn infer_json<'a>(sample: impl IntoIterator<Item = &'a [u8]>) -> ValueFormat {
        let mut kinds: BTreeMap<String, Option<JsonKind>> = BTreeMap::new();
        for value in sample {
            let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(value) else {
                continue;
            };
            for (name, field) in object {
                let seen = JsonKind::of(&field);
                let entry = kinds.entry(name).or_insert(seen);
                *entry = match (*entry, seen) {
                    (a, None) => a,
                    (None, b) => b,
                    (Some(a), Some(b)) if a == b => Some(a),
                    (Some(JsonKind::Integer), Some(JsonKind::Float))
                    | (Some(JsonKind::Float), Some(JsonKind::Integer)) => Some(JsonKind::Float),
                    _ => Some(JsonKind::Text),
                };
            }
        }
        ValueFormat::Json(
            kinds
                .into_iter()
                .map(|(name, kind)| JsonField::new(name, kind.unwrap_or(JsonKind::Text)))
                .collect(),
        )
    }

    /// The table's schema.
    ///
    /// # Errors
    /// [`SqlError::Schema`] when a JSON field's name is one of the record columns.
    pub fn schema(&self) -> Result<SchemaRef, SqlError> {
        let value_type = match self {
            ValueFormat::Bytes => DataType::Binary,
            _ => DataType::Utf8,
        };
        let mut fields = vec![
            Field::new("key", DataType::Utf8, true),
            Field::new("value", value_type, true),
            Field::new("headers", DataType::Utf8, false),
            Field::new("topic", DataType::Utf8, false),
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ];
        if let ValueFormat::Json(declared) = self {
            for field in declared {
                if RECORD_COLUMNS.contains(&field.name.as_str()) {
                    return Err(SqlError::Schema(format!(
                        "JSON field {} has the name of a record column",
                        field.name
                    )));
                }
                fields.push(Field::new(&field.name, field.kind.data_type(), true));
            }
        }
        Ok(Arc::new(Schema::new(fields)))
    }
}
