//! Records that sources produce and sinks receive.

use std::sync::Arc;

use crate::data::{Schema, Value};
use crate::OffsetMap;

/// Record headers: names with optional byte values, in order.
pub type Headers = Vec<(String, Option<Vec<u8>>)>;

/// A record a source task read: where it goes, what it is, and where in the source it
/// came from.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRecord {
    /// The part of the source it came from (a file, a table, a binlog).
    pub source_partition: OffsetMap,
    /// Its position there; the runtime stores it once the record is written, and gives
    /// the last stored one back to the task on restart.
    pub source_offset: OffsetMap,
    /// The topic it goes to.
    pub topic: String,
    /// A partition, or `None` for the producer's partitioner.
    pub partition: Option<i32>,
    /// The key's schema (`None`: schemaless), shared by the records of one table or
    /// file.
    pub key_schema: Option<Arc<Schema>>,
    /// The key.
    pub key: Value,
    /// The value's schema (`None`: schemaless), shared likewise.
    pub value_schema: Option<Arc<Schema>>,
    /// The value (`Value::Null` makes a tombstone).
    pub value: Value,
    /// A timestamp in ms, or `None` for the time it is written.
    pub timestamp: Option<i64>,
    /// Headers.
    pub headers: Headers,
}

impl SourceRecord {
    /// A record for `topic` with no key, schema or headers.
    pub fn new(
        source_partition: OffsetMap,
        source_offset: OffsetMap,
        topic: impl Into<String>,
        value: Value,
    ) -> SourceRecord {
        SourceRecord {
            source_partition,
            source_offset,
            topic: topic.into(),
            partition: None,
            key_schema: None,
            key: Value::Null,
            value_schema: None,
            value,
            timestamp: None,
            headers: Vec::new(),
        }
    }
}

/// A record a sink task receives.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkRecord {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (ms).
    pub timestamp: i64,
    /// The key's schema, when the converter knows one.
    pub key_schema: Option<Arc<Schema>>,
    /// The key.
    pub key: Value,
    /// The value's schema, when the converter knows one.
    pub value_schema: Option<Arc<Schema>>,
    /// The value.
    pub value: Value,
    /// Headers.
    pub headers: Headers,
}
