//! A SQL filter as a Kafka Connect single message transform: a record is kept when its
//! value meets a SQL condition.
//!
//! ```properties
//! transforms=big
//! transforms.big.type=io.strom.connect.transforms.SqlFilter
//! transforms.big.condition=op = 'd' OR after.qty > 5
//! ```
//!
//! The value's fields are the columns (a struct's fields as `col.field`;
//! arrays and maps as JSON text, for the `->`/`->>`/`json_get_*` functions); a value
//! that is not a struct is the column `value`. With a schema the column types come from it;
//! without one, from the value. The condition is planned by DataFusion once per shape of
//! record and evaluated on each record. Tombstones (null values) pass, so compaction still
//! sees deletes.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use datafusion::arrow::array::{
    new_null_array, ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, Int8Array, StringArray, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema as ArrowSchema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use strom_connect_api::{
    ConfigMap, ConnectError, ConnectRecord, CustomTransform, Schema, SchemaType, Value,
};

use crate::filter::SqlFilter;

/// The transform's class name.
pub const SQL_FILTER_CLASS: &str = "io.strom.connect.transforms.SqlFilter";

/// Distinct record shapes whose plans are kept.
const PLANS: usize = 16;

/// Keeps the records whose value meets `condition`.
#[derive(Debug)]
pub struct SqlFilterTransform {
    sql: String,
    plans: Mutex<Vec<(SchemaRef, Arc<SqlFilter>)>>,
}

impl SqlFilterTransform {
    /// A filter from its keys: `condition`, a SQL boolean expression.
    ///
    /// # Errors
    /// [`ConnectError::Config`] without a condition or when it is not SQL.
    ///
    /// ```
    /// use strom_sql::connect::SqlFilterTransform;
    ///
    /// let config = [("condition".to_owned(), "qty >".to_owned())].into_iter().collect();
    /// let e = SqlFilterTransform::from_config(&config).unwrap_err();
    /// assert!(e.to_string().contains("condition"));
    /// ```
    pub fn from_config(config: &ConfigMap) -> Result<SqlFilterTransform, ConnectError> {
        let condition = config
            .get("condition")
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ConnectError::Config("condition is required".into()))?;
        let sql = format!("SELECT * FROM record WHERE {condition}");
        Parser::parse_sql(&GenericDialect {}, &sql)
            .map_err(|e| ConnectError::Config(format!("condition {condition:?}: {e}")))?;
        Ok(SqlFilterTransform {
            sql,
            plans: Mutex::new(Vec::new()),
        })
    }

    /// The plan for records of `schema`, made on first use.
    fn plan(&self, schema: &SchemaRef) -> Result<Arc<SqlFilter>, ConnectError> {
        let mut plans = self
            .plans
            .lock()
            .map_err(|_| ConnectError::Failed("SQL filter: a plan cache poisoned".into()))?;
        if let Some((_, plan)) = plans.iter().find(|(s, _)| s == schema) {
            return Ok(plan.clone());
        }
        // Planning over an in-memory schema does no I/O: its future is ready at once.
        let mut compile = std::pin::pin!(SqlFilter::compile(&self.sql, "record", schema.clone()));
        let planned = match compile
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(planned) => planned,
            Poll::Pending => {
                return Err(ConnectError::Failed(
                    "SQL filter: planning did not finish at once".into(),
                ))
            }
        };
        let plan = Arc::new(planned.map_err(|e| ConnectError::Data(format!("SQL filter: {e}")))?);
        plans.truncate(PLANS - 1);
        plans.insert(0, (schema.clone(), plan.clone()));
        Ok(plan)
    }
}

impl CustomTransform for SqlFilterTransform {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<bool, ConnectError> {
        let (schema, value) = record.value_mut();
        if *value == Value::Null {
            return Ok(true);
        }
        let (fields, columns) = columns(schema.as_deref(), value);
        let arrow = Arc::new(ArrowSchema::new(fields));
        let plan = self.plan(&arrow)?;
        let batch = RecordBatch::try_new(arrow, columns)
            .map_err(|e| ConnectError::Data(format!("SQL filter: {e}")))?;
        let kept = plan
            .apply(&batch)
            .map_err(|e| ConnectError::Data(format!("SQL filter: {e}")))?;
        Ok(kept.num_rows() == 1)
    }
}

/// The top-level columns of a value: a struct's (or string-keyed map's) fields, or the
/// value itself as `value`.
fn columns(schema: Option<&Schema>, value: &Value) -> (Vec<Field>, Vec<ArrayRef>) {
    let named: Vec<(&str, Option<&Schema>, &Value)> = match (schema, value) {
        (Some(s), Value::Struct(values)) if s.kind == SchemaType::Struct => fields_of(s, values),
        (None, v) => named_fields(v).map_or_else(
            || vec![("value", None, v)],
            |n| n.into_iter().map(|(k, v)| (k, None, v)).collect(),
        ),
        (schema, v) => vec![("value", schema, v)],
    };
    named
        .into_iter()
        .map(|(name, schema, v)| {
            let array = array(schema, v);
            (Field::new(name, array.data_type().clone(), true), array)
        })
        .unzip()
}

/// A struct's fields in its schema's order, with their schemas (null where missing).
fn fields_of<'a>(
    schema: &'a Schema,
    values: &'a [(String, Value)],
) -> Vec<(&'a str, Option<&'a Schema>, &'a Value)> {
    schema
        .fields
        .iter()
        .map(|f| {
            let v = values
                .iter()
                .find(|(n, _)| n == &f.name)
                .map_or(&Value::Null, |(_, v)| v);
            (f.name.as_str(), Some(&f.schema), v)
        })
        .collect()
}

/// A one-row struct array of `children`.
fn struct_array(children: Vec<(&str, Option<&Schema>, &Value)>) -> ArrayRef {
    let children: Vec<(Arc<Field>, ArrayRef)> = children
        .into_iter()
        .map(|(name, schema, v)| {
            let child = array(schema, v);
            (
                Arc::new(Field::new(name, child.data_type().clone(), true)),
                child,
            )
        })
        .collect();
    Arc::new(StructArray::from(children))
}

/// The fields of a struct or of a map whose keys are all text, in order.
fn named_fields(value: &Value) -> Option<Vec<(&str, &Value)>> {
    match value {
        Value::Struct(fields) => Some(fields.iter().map(|(k, v)| (k.as_str(), v)).collect()),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| match k {
                Value::String(k) => Some((k.as_str(), v)),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// The Arrow type of a Connect schema.
fn data_type(schema: &Schema) -> DataType {
    match schema.kind {
        SchemaType::Int8 => DataType::Int8,
        SchemaType::Int16 => DataType::Int16,
        SchemaType::Int32 => DataType::Int32,
        SchemaType::Int64 => DataType::Int64,
        SchemaType::Float32 => DataType::Float32,
        SchemaType::Float64 => DataType::Float64,
        SchemaType::Boolean => DataType::Boolean,
        SchemaType::Bytes => DataType::Binary,
        SchemaType::String | SchemaType::Array | SchemaType::Map => DataType::Utf8,
        SchemaType::Struct => DataType::Struct(Fields::from(
            schema
                .fields
                .iter()
                .map(|f| Field::new(&f.name, data_type(&f.schema), true))
                .collect::<Vec<_>>(),
        )),
    }
}

/// A one-row array of `value`, typed by `schema` or, without one, by the value.
fn array(schema: Option<&Schema>, value: &Value) -> ArrayRef {
    let int = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        _ => None,
    };
    let float = |v: &Value| match v {
        Value::Float(f) => Some(*f),
        Value::Int(i) => Some(*i as f64),
        _ => None,
    };
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_json().to_string()),
    };
    if let Some(schema) = schema {
        return match schema.kind {
            SchemaType::Int8 => Arc::new(Int8Array::from(vec![
                int(value).and_then(|i| i8::try_from(i).ok())
            ])),
            SchemaType::Int16 => Arc::new(Int16Array::from(vec![
                int(value).and_then(|i| i16::try_from(i).ok())
            ])),
            SchemaType::Int32 => Arc::new(Int32Array::from(vec![
                int(value).and_then(|i| i32::try_from(i).ok())
            ])),
            SchemaType::Int64 => Arc::new(Int64Array::from(vec![int(value)])),
            SchemaType::Float32 => {
                Arc::new(Float32Array::from(vec![float(value).map(|f| f as f32)]))
            }
            SchemaType::Float64 => Arc::new(Float64Array::from(vec![float(value)])),
            SchemaType::Boolean => Arc::new(BooleanArray::from(vec![match value {
                Value::Boolean(b) => Some(*b),
                _ => None,
            }])),
            SchemaType::Bytes => Arc::new(BinaryArray::from(vec![match value {
                Value::Bytes(b) => Some(b.as_slice()),
                _ => None,
            }])),
            SchemaType::String | SchemaType::Array | SchemaType::Map => {
                Arc::new(StringArray::from(vec![text(value)]))
            }
            SchemaType::Struct => match value {
                Value::Struct(values) if !schema.fields.is_empty() => {
                    struct_array(fields_of(schema, values))
                }
                _ => new_null_array(&data_type(schema), 1),
            },
        };
    }
    if let Some(named) = named_fields(value).filter(|n| !n.is_empty()) {
        return struct_array(named.into_iter().map(|(k, v)| (k, None, v)).collect());
    }
    match value {
        Value::Null => new_null_array(&DataType::Utf8, 1),
        Value::Boolean(b) => Arc::new(BooleanArray::from(vec![Some(*b)])),
        Value::Int(i) => Arc::new(Int64Array::from(vec![Some(*i)])),
        Value::Float(f) => Arc::new(Float64Array::from(vec![Some(*f)])),
        Value::Bytes(b) => Arc::new(BinaryArray::from(vec![Some(b.as_slice())])),
        other => Arc::new(StringArray::from(vec![text(other)])),
    }
}

#[cfg(test)]
mod tests {
    use strom_connect_api::{CustomTransforms, SourceRecord, Transforms};

    use super::*;

    fn transforms(condition: &str) -> Transforms {
        let mut custom = CustomTransforms::new();
        let make: strom_connect_api::TransformFactory = Arc::new(|c: &ConfigMap| {
            Ok(Box::new(SqlFilterTransform::from_config(c)?) as Box<dyn CustomTransform>)
        });
        custom.insert("SqlFilter".into(), make);
        let config: ConfigMap = [
            ("transforms", "f"),
            ("transforms.f.type", "SqlFilter"),
            ("transforms.f.condition", condition),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Transforms::from_config_with(&config, &custom).unwrap()
    }

    fn change(op: &str, qty: Option<i64>) -> SourceRecord {
        let row = |qty: i64| {
            Value::structure(vec![
                ("id", Value::Int(1)),
                ("item", Value::String("fig".into())),
                ("qty", Value::Int(qty)),
            ])
        };
        let row_schema = Schema::structure(vec![
            ("id", Schema::of(SchemaType::Int32)),
            ("item", Schema::of(SchemaType::String)),
            ("qty", Schema::of(SchemaType::Int32).optional()),
        ])
        .optional();
        let schema = Schema::structure(vec![
            ("before", row_schema.clone()),
            ("after", row_schema),
            ("op", Schema::of(SchemaType::String)),
        ]);
        let value = Value::structure(vec![
            ("before", Value::Null),
            ("after", qty.map_or(Value::Null, row)),
            ("op", Value::String(op.into())),
        ]);
        let mut r = SourceRecord::new(Default::default(), Default::default(), "t", value);
        r.value_schema = Some(Arc::new(schema));
        r
    }

    #[test]
    fn records_are_kept_when_their_value_meets_the_condition() {
        let t = transforms("op = 'd' OR after.qty > 5");
        assert!(t.apply(&mut change("c", Some(7))).unwrap());
        assert!(!t.apply(&mut change("c", Some(3))).unwrap());
        assert!(t.apply(&mut change("d", None)).unwrap());
        assert!(!t.apply(&mut change("u", None)).unwrap());
        // Schemaless: columns and types from the value.
        let t = transforms("qty >= 2 AND name LIKE 'a%'");
        let mut r = SourceRecord::new(
            Default::default(),
            Default::default(),
            "t",
            Value::Map(vec![
                (Value::String("name".into()), Value::String("apple".into())),
                (Value::String("qty".into()), Value::Int(2)),
            ]),
        );
        assert!(t.apply(&mut r).unwrap());
        let mut tombstone =
            SourceRecord::new(Default::default(), Default::default(), "t", Value::Null);
        assert!(t.apply(&mut tombstone).unwrap());
    }

    #[test]
    fn bad_sql_and_unknown_columns_are_errors() {
        let config: ConfigMap = [("condition".to_owned(), "qty > > 1".to_owned())]
            .into_iter()
            .collect();
        assert!(SqlFilterTransform::from_config(&config).is_err());
        let t = transforms("nope = 1");
        let e = t.apply(&mut change("c", Some(1))).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
