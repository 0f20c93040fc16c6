//! Query rows as JSON objects and as records to produce.
//!
//! A row becomes a record this way:
//! - with a `value` column (`SELECT * ...`, `SELECT key, value ...`), the record is the
//!   input record again: that value as is, the `key` column as key, the `headers` column
//!   (a JSON object) as headers and the `timestamp` column as timestamp, when selected;
//! - otherwise the value is a JSON object of the row's columns but `key`, which is the
//!   key; a `timestamp` column of timestamp type is also the record's timestamp.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray,
    TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Value};

use crate::SqlError;

/// A row as a record to produce.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputRecord {
    /// The key.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Option<Bytes>,
    /// The headers.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The timestamp (ms), when the row has one.
    pub timestamp: Option<i64>,
}

/// Each row of `batch` as a JSON object: numbers and booleans as such, text as strings,
/// other types as their display text, nulls as null.
///
/// # Errors
/// [`SqlError::Arrow`] for a column that cannot be shown (a bug).
pub fn json_rows(batch: &RecordBatch) -> Result<Vec<Map<String, Value>>, SqlError> {
    let schema = batch.schema();
    let columns = batch
        .columns()
        .iter()
        .map(json_values)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            schema
                .fields()
                .iter()
                .zip(&columns)
                .map(|(field, column)| (field.name().clone(), column[row].clone()))
                .collect()
        })
        .collect())
}

/// A column's cells as JSON values.
fn json_values(column: &ArrayRef) -> Result<Vec<Value>, SqlError> {
    let n = column.len();
    let cells = |f: &dyn Fn(usize) -> Value| -> Vec<Value> {
        (0..n)
            .map(|i| if column.is_null(i) { Value::Null } else { f(i) })
            .collect()
    };
    let data_type = column.data_type();
    Ok(match data_type {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let array = cast(column, &DataType::Int64)?;
            let array = downcast::<Int64Array>(&array)?;
            cells(&|i| Value::from(array.value(i)))
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let array = cast(column, &DataType::UInt64)?;
            let array = downcast::<UInt64Array>(&array)?;
            cells(&|i| Value::from(array.value(i)))
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let array = cast(column, &DataType::Float64)?;
            let array = downcast::<Float64Array>(&array)?;
            cells(&|i| {
                serde_json::Number::from_f64(array.value(i)).map_or(Value::Null, Value::Number)
            })
        }
        DataType::Boolean => {
            let array = downcast::<BooleanArray>(column)?;
            cells(&|i| Value::Bool(array.value(i)))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let array = cast(column, &DataType::Utf8)?;
            let array = downcast::<StringArray>(&array)?;
            cells(&|i| Value::String(array.value(i).to_owned()))
        }
        _ => {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())?;
            cells(&|i| Value::String(formatter.value(i).to_string()))
        }
    })
}

fn downcast<T: 'static>(array: &ArrayRef) -> Result<&T, SqlError> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| SqlError::Schema(format!("a column of {} is not one", array.data_type())))
}

/// Each row of `batch` as a record (see the module's rules).
///
/// # Errors
/// [`SqlError::Arrow`] for a column that cannot be converted (a bug).
pub fn output_records(batch: &RecordBatch) -> Result<Vec<OutputRecord>, SqlError> {
    let schema = batch.schema();
    let text = |name: &str| -> Result<Option<ArrayRef>, SqlError> {
        Ok(match batch.column_by_name(name) {
            Some(c) => Some(cast(c, &DataType::Utf8)?),
            None => None,
        })
    };
    let keys = text("key")?;
    let timestamps = match batch.column_by_name("timestamp") {
        Some(c) if matches!(c.data_type(), DataType::Timestamp(..)) => {
            Some(cast(c, &DataType::Timestamp(TimeUnit::Millisecond, None))?)
        }
        _ => None,
    };
    let bytes_of = |array: &Option<ArrayRef>, row: usize| -> Result<Option<Bytes>, SqlError> {
        let Some(array) = array else {
            return Ok(None);
        };
        if array.is_null(row) {
            return Ok(None);
        }
        Ok(Some(match array.data_type() {
            DataType::Binary => Bytes::copy_from_slice(downcast::<BinaryArray>(array)?.value(row)),
            _ => Bytes::copy_from_slice(downcast::<StringArray>(array)?.value(row).as_bytes()),
        }))
    };
    let timestamp_of = |row: usize| -> Result<Option<i64>, SqlError> {
        let Some(array) = &timestamps else {
            return Ok(None);
        };
        let array = downcast::<TimestampMillisecondArray>(array)?;
        Ok((!array.is_null(row)).then(|| array.value(row)))
    };
    let mut records = Vec::with_capacity(batch.num_rows());
    if let Some(value) = batch.column_by_name("value") {
        let values: Option<ArrayRef> = Some(match value.data_type() {
            DataType::Binary => Arc::clone(value),
            _ => cast(value, &DataType::Utf8)?,
        });
        let headers = text("headers")?;
        for row in 0..batch.num_rows() {
            let headers = match bytes_of(&headers, row)? {
                Some(json) => parse_headers(&json),
                None => Vec::new(),
            };
            records.push(OutputRecord {
                key: bytes_of(&keys, row)?,
                value: bytes_of(&values, row)?,
                headers,
                timestamp: timestamp_of(row)?,
            });
        }
        return Ok(records);
    }
    let objects = json_rows(batch)?;
    for (row, mut object) in objects.into_iter().enumerate() {
        object.remove("key");
        let _ = &schema;
        records.push(OutputRecord {
            key: bytes_of(&keys, row)?,
            value: Some(Bytes::from(Value::Object(object).to_string())),
            headers: Vec::new(),
            timestamp: timestamp_of(row)?,
        });
    }
    Ok(records)
}

/// Headers from the `headers` column's JSON object (text values; null for none).
fn parse_headers(json: &[u8]) -> Vec<(String, Option<Bytes>)> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(json) else {
        return Vec::new();
    };
    object
        .into_iter()
        .map(|(k, v)| {
            let value = match v {
                Value::Null => None,
                Value::String(s) => Some(Bytes::from(s)),
                other => Some(Bytes::from(other.to_string())),
            };
            (k, value)
        })
        .collect()
}
