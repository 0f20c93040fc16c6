//! Records to Arrow: one `RecordBatch` per batch of consumed records, in the topic
//! table's schema. A value that does not decode (not UTF-8, not a JSON object, a field of
//! the wrong type) is counted and left out, with the reason.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use strom_client::consumer::ConsumerRecord;

use crate::schema::{JsonField, JsonKind, ValueFormat};
use crate::SqlError;

/// A record that did not decode, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecodable {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// What was wrong.
    pub reason: String,
}

/// Turns records into batches of one schema.
#[derive(Clone, Debug)]
pub struct Decoder {
    format: ValueFormat,
    schema: SchemaRef,
}

/// One value's JSON columns, decoded.
enum Cell {
    Text(Option<String>),
    Integer(Option<i64>),
    Float(Option<f64>),
    Boolean(Option<bool>),
}

impl Decoder {
    /// A decoder for values in `format`.
    ///
    /// # Errors
    /// As [`ValueFormat::schema`].
    pub fn new(format: ValueFormat) -> Result<Decoder, SqlError> {
        let schema = format.schema()?;
        Ok(Decoder { format, schema })
    }

    /// The schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The records as one batch, and those that did not decode.
    ///
    /// # Errors
    /// [`SqlError::Arrow`] if the columns do not make a batch (a bug).
    pub fn decode(
        &self,
        records: &[ConsumerRecord],
    ) -> Result<(RecordBatch, Vec<Undecodable>), SqlError> {
        let mut bad = Vec::new();
        let mut rows: Vec<(&ConsumerRecord, Vec<Cell>)> = Vec::with_capacity(records.len());
        for record in records {
            match self.cells(record) {
                Ok(cells) => rows.push((record, cells)),
                Err(reason) => bad.push(Undecodable {
                    topic: record.topic.clone(),
                    partition: record.partition,
                    offset: record.offset,
                    reason,
                }),
            }
        }
        let n = rows.len();
        let mut key = StringBuilder::with_capacity(n, n * 16);
        let mut text = StringBuilder::with_capacity(n, n * 64);
        let mut binary = BinaryBuilder::with_capacity(n, n * 64);
        let mut headers = StringBuilder::with_capacity(n, n * 2);
        let mut topic = StringBuilder::with_capacity(n, n * 8);
        let mut partition = Int32Builder::with_capacity(n);
        let mut offset = Int64Builder::with_capacity(n);
        let mut timestamp = TimestampMillisecondBuilder::with_capacity(n);
        for (r, _) in &rows {
            key.append_option(r.key.as_deref().map(String::from_utf8_lossy));
            match (&self.format, r.value.as_deref()) {
                (ValueFormat::Bytes, v) => binary.append_option(v),
                (_, Some(v)) => text.append_value(std::str::from_utf8(v).unwrap_or_default()),
                (_, None) => text.append_null(),
            }
            headers.append_value(headers_json(r));
            topic.append_value(&r.topic);
            partition.append_value(r.partition);
            offset.append_value(r.offset);
            timestamp.append_value(r.timestamp);
        }
        let value: ArrayRef = match self.format {
            ValueFormat::Bytes => Arc::new(binary.finish()),
            _ => Arc::new(text.finish()),
        };
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(key.finish()),
            value,
            Arc::new(headers.finish()),
            Arc::new(topic.finish()),
            Arc::new(partition.finish()),
            Arc::new(offset.finish()),
            Arc::new(timestamp.finish()),
        ];
        if let ValueFormat::Json(fields) = &self.format {
            for (i, field) in fields.iter().enumerate() {
                columns.push(json_column(field, rows.iter().map(|(_, cells)| &cells[i])));
            }
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        Ok((batch, bad))
    }

    /// A record's JSON cells, or why it does not decode.
    fn cells(&self, record: &ConsumerRecord) -> Result<Vec<Cell>, String> {
        let ValueFormat::Json(fields) = &self.format else {
            if self.format == ValueFormat::String {
                if let Some(v) = record.value.as_deref() {
                    std::str::from_utf8(v).map_err(|e| format!("value is not UTF-8: {e}"))?;
                }
            }
            return Ok(Vec::new());
        };
        let Some(value) = record.value.as_deref() else {
            // A tombstone: a row of nulls.
            return Ok(fields.iter().map(|f| null_cell(f.kind)).collect());
        };
        let parsed: serde_json::Value =
            serde_json::from_slice(value).map_err(|e| format!("value is not JSON: {e}"))?;
        let serde_json::Value::Object(object) = parsed else {
            return Err("value is not a JSON object".to_owned());
        };
        fields
            .iter()
            .map(|f| cell(f, object.get(&f.name)))
            .collect()
    }
}

fn null_cell(kind: JsonKind) -> Cell {
    match kind {
        JsonKind::Text => Cell::Text(None),
        JsonKind::Integer => Cell::Integer(None),
        JsonKind::Float => Cell::Float(None),
        JsonKind::Boolean => Cell::Boolean(None),
    }
}

/// A field's cell; a missing field or JSON null is a null.
fn cell(field: &JsonField, value: Option<&serde_json::Value>) -> Result<Cell, String> {
    use serde_json::Value;
    let wrong = |v: &Value| format!("field {} is {v}, not {:?}", field.name, field.kind);
    Ok(match (field.kind, value) {
        (kind, None | Some(Value::Null)) => null_cell(kind),
        (JsonKind::Text, Some(Value::String(s))) => Cell::Text(Some(s.clone())),
        (JsonKind::Text, Some(v)) => Cell::Text(Some(v.to_string())),
        (JsonKind::Integer, Some(v)) => Cell::Integer(Some(v.as_i64().ok_or_else(|| wrong(v))?)),
        (JsonKind::Float, Some(v)) => Cell::Float(Some(v.as_f64().ok_or_else(|| wrong(v))?)),
        (JsonKind::Boolean, Some(v)) => Cell::Boolean(Some(v.as_bool().ok_or_else(|| wrong(v))?)),
    })
}

/// The column of one JSON field.
fn json_column<'a>(field: &JsonField, cells: impl Iterator<Item = &'a Cell>) -> ArrayRef {
    match field.kind {
        JsonKind::Text => {
            let mut b = StringBuilder::new();
            for c in cells {
                b.append_option(if let Cell::Text(v) = c {
                    v.as_deref()
                } else {
                    None
                });
            }
            Arc::new(b.finish())
        }
        JsonKind::Integer => {
            let mut b = Int64Builder::new();
            for c in cells {
                b.append_option(if let Cell::Integer(v) = c { *v } else { None });
            }
            Arc::new(b.finish())
        }
        JsonKind::Float => {
            let mut b = Float64Builder::new();
            for c in cells {
                b.append_option(if let Cell::Float(v) = c { *v } else { None });
            }
            Arc::new(b.finish())
        }
        JsonKind::Boolean => {
            let mut b = BooleanBuilder::new();
            for c in cells {
                b.append_option(if let Cell::Boolean(v) = c { *v } else { None });
            }
            Arc::new(b.finish())
        }
    }
}

/// A record's headers as a JSON object (values as text, null for a null value).
fn headers_json(record: &ConsumerRecord) -> String {
    let object: serde_json::Map<String, serde_json::Value> = record
        .headers
        .iter()
        .map(|(k, v)| {
            let value = v.as_deref().map_or(serde_json::Value::Null, |v| {
                serde_json::Value::String(String::from_utf8_lossy(v).into_owned())
            });
            (k.clone(), value)
        })
        .collect();
    serde_json::Value::Object(object).to_string()
}
