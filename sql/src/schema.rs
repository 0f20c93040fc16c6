//! A topic as a table: the record columns every topic has, plus the value's own columns
//! when it is JSON (declared, or inferred from a sample and then fixed), CSV or Avro.

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
    Json(Vec<ValueField>),
    /// One line of comma-separated values (RFC 4180 quoting): `value` holds the text, and
    /// the declared fields are its columns, by position. An empty unquoted field is null.
    Csv(Vec<ValueField>),
    /// Avro binary datums of one record schema: each top-level field is a column
    /// (records, arrays, maps, bytes and decimals as JSON text); `value` holds the bytes.
    Avro(AvroFormat),
}

/// Avro values: the writer's schema, and how datums are framed.
#[derive(Clone, Debug, PartialEq)]
pub struct AvroFormat {
    schema: apache_avro::Schema,
    fields: Vec<ValueField>,
    confluent: bool,
}

impl AvroFormat {
    /// The record schema the values were written with.
    pub fn schema(&self) -> &apache_avro::Schema {
        &self.schema
    }

    /// Whether each value starts with the Confluent wire-format header (magic byte 0 and
    /// a four-byte schema id) before the datum.
    pub fn confluent_framing(&self) -> bool {
        self.confluent
    }
}

/// A field of the values, as a column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueField {
    /// The field's (and column's) name.
    pub name: String,
    /// Its type.
    pub kind: FieldKind,
}

/// The column type of a value's field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// Text (`Utf8`); also objects and arrays, as JSON text.
    Text,
    /// Whole numbers (`Int64`).
    Integer,
    /// Numbers (`Float64`).
    Float,
    /// `true` / `false` (`Boolean`).
    Boolean,
}

impl ValueField {
    /// A field named `name` of `kind`.
    pub fn new(name: impl Into<String>, kind: FieldKind) -> Self {
        ValueField {
            name: name.into(),
            kind,
        }
    }
}

impl FieldKind {
    fn data_type(self) -> DataType {
        match self {
            FieldKind::Text => DataType::Utf8,
            FieldKind::Integer => DataType::Int64,
            FieldKind::Float => DataType::Float64,
            FieldKind::Boolean => DataType::Boolean,
        }
    }

    /// The kind a JSON value suggests.
    fn of(value: &serde_json::Value) -> Option<FieldKind> {
        match value {
            serde_json::Value::Null => None,
            serde_json::Value::Bool(_) => Some(FieldKind::Boolean),
            serde_json::Value::Number(n) if n.is_i64() => Some(FieldKind::Integer),
            serde_json::Value::Number(_) => Some(FieldKind::Float),
            _ => Some(FieldKind::Text),
        }
    }

    /// The kind of an Avro field's values: numbers and booleans as such (dates and times
    /// as their integer encoding), a union of null and one type as that type, anything
    /// else as text.
    fn of_avro(schema: &apache_avro::Schema) -> FieldKind {
        use apache_avro::Schema as S;
        match schema {
            S::Boolean => FieldKind::Boolean,
            S::Int
            | S::Long
            | S::Date
            | S::TimeMillis
            | S::TimeMicros
            | S::TimestampMillis
            | S::TimestampMicros
            | S::TimestampNanos
            | S::LocalTimestampMillis
            | S::LocalTimestampMicros
            | S::LocalTimestampNanos => FieldKind::Integer,
            S::Float | S::Double => FieldKind::Float,
            S::Union(union) => {
                let variants: Vec<&S> =
                    union.variants().iter().filter(|v| **v != S::Null).collect();
                match variants.as_slice() {
                    [one] => FieldKind::of_avro(one),
                    _ => FieldKind::Text,
                }
            }
            _ => FieldKind::Text,
        }
    }
}

impl ValueFormat {
    /// JSON with the fields seen in `sample` (values of a topic): each field's kind from
    /// its values (integers and floats make a float; any other mix makes text), in
    /// name order. Values that are not JSON objects are skipped.
    pub fn infer_json<'a>(sample: impl IntoIterator<Item = &'a [u8]>) -> ValueFormat {
        let mut kinds: BTreeMap<String, Option<FieldKind>> = BTreeMap::new();
        for value in sample {
            let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(value) else {
                continue;
            };
            for (name, field) in object {
                let seen = FieldKind::of(&field);
                let entry = kinds.entry(name).or_insert(seen);
                *entry = match (*entry, seen) {
                    (a, None) => a,
                    (None, b) => b,
                    (Some(a), Some(b)) if a == b => Some(a),
                    (Some(FieldKind::Integer), Some(FieldKind::Float))
                    | (Some(FieldKind::Float), Some(FieldKind::Integer)) => Some(FieldKind::Float),
                    _ => Some(FieldKind::Text),
                };
            }
        }
        ValueFormat::Json(
            kinds
                .into_iter()
                .map(|(name, kind)| ValueField::new(name, kind.unwrap_or(FieldKind::Text)))
                .collect(),
        )
    }

    /// Avro datums written with `schema` (Avro's JSON schema text, a record), framed as
    /// Confluent's serializers do when `confluent_framing` (the schema id is not checked:
    /// every value is read with `schema`).
    ///
    /// # Errors
    /// [`SqlError::Schema`] when the schema does not parse or is not a record.
    pub fn avro(schema: &str, confluent_framing: bool) -> Result<ValueFormat, SqlError> {
        let schema = apache_avro::Schema::parse_str(schema)
            .map_err(|e| SqlError::Schema(format!("Avro schema: {e}")))?;
        let apache_avro::Schema::Record(record) = &schema else {
            return Err(SqlError::Schema(
                "Avro schema: values must be records to be rows".to_owned(),
            ));
        };
        let fields = record
            .fields
            .iter()
            .map(|f| ValueField::new(&f.name, FieldKind::of_avro(&f.schema)))
            .collect();
        Ok(ValueFormat::Avro(AvroFormat {
            schema,
            fields,
            confluent: confluent_framing,
        }))
    }

    /// The value's fields that are columns of their own (none for text and bytes).
    pub fn fields(&self) -> &[ValueField] {
        match self {
            ValueFormat::String | ValueFormat::Bytes => &[],
            ValueFormat::Json(fields) | ValueFormat::Csv(fields) => fields,
            ValueFormat::Avro(avro) => &avro.fields,
        }
    }

    /// The table's schema.
    ///
    /// # Errors
    /// [`SqlError::Schema`] when a field's name is one of the record columns or
    /// declared twice.
    pub fn schema(&self) -> Result<SchemaRef, SqlError> {
        let value_type = match self {
            ValueFormat::Bytes | ValueFormat::Avro(_) => DataType::Binary,
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
        let mut seen = std::collections::BTreeSet::new();
        for field in self.fields() {
            if RECORD_COLUMNS.contains(&field.name.as_str()) {
                return Err(SqlError::Schema(format!(
                    "value field {} has the name of a record column",
                    field.name
                )));
            }
            if !seen.insert(field.name.as_str()) {
                return Err(SqlError::Schema(format!(
                    "value field {} is declared twice",
                    field.name
                )));
            }
            fields.push(Field::new(&field.name, field.kind.data_type(), true));
        }
        Ok(Arc::new(Schema::new(fields)))
    }
}
