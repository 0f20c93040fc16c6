//! Strom Connect's connector interfaces, compatible in shape with Kafka Connect's: a
//! connector splits its work into task configurations; source tasks poll records that
//! carry a source partition and offset (which the runtime stores once the records are
//! written, and hands back on restart); sink tasks receive records read from topics.
//!
//! ```text
//!  SourceConnector ──task_configs──▶ SourceTask::poll ──SourceRecord (key, value with
//!      optional Schema, source partition + offset)──▶ runtime: Converter ──▶ producer
//!  consumer ──▶ runtime: Converter ──SinkRecord──▶ SinkTask::put / flush
//! ```
//!
//! Data is [`Value`]s described by optional [`Schema`]s (Connect's types: integers of
//! 8-64 bits, floats, boolean, string, bytes, array, map, struct, with names such as
//! `org.apache.kafka.connect.data.Decimal` for logical types). [`Converter`]s encode them as
//! bytes and back: JSON with or without the schema envelope, string, bytes.
//!
//! ```
//! use strom_connect_api::{Converter, JsonConverter, Schema, SchemaType, Value};
//!
//! let schema = Schema::structure(vec![("id", Schema::of(SchemaType::Int64))]);
//! let value = Value::structure(vec![("id", Value::Int(7))]);
//! let json = JsonConverter { schemas_enable: false };
//! assert_eq!(json.encode(Some(&schema), &value)?, Some(br#"{"id":7}"#.to_vec()));
//! # Ok::<(), strom_connect_api::ConnectError>(())
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod connector;
mod converter;
mod data;
mod record;
mod transform;

pub use connector::{
    ConfigKey, ConnectorKind, OffsetReader, SinkConnector, SinkTask, SourceConnector, SourceTask,
    SourceTaskContext,
};
pub use converter::{
    converter_from_config, ByteArrayConverter, Converter, JsonConverter, StringConverter,
};
pub use data::{Field, Schema, SchemaType, Value};
pub use record::{Headers, SinkRecord, SourceRecord};
pub use transform::{
    ConnectRecord, CustomTransform, CustomTransforms, TransformFactory, Transforms,
};

/// A connector's or task's configuration: Kafka Connect's string keys and values.
pub type ConfigMap = std::collections::BTreeMap<String, String>;

/// A source partition or offset: a JSON object (`{"file": "a.txt"}`, `{"position": 42}`).
pub type OffsetMap = serde_json::Map<String, serde_json::Value>;

/// What can go wrong in a connector or converter.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A configuration is missing a key or has a bad value.
    #[error("config: {0}")]
    Config(String),
    /// Data does not fit its schema, or bytes do not convert.
    #[error("data: {0}")]
    Data(String),
    /// The connector failed and can be retried (a connection dropped, say).
    #[error("retriable: {0}")]
    Retriable(String),
    /// The connector failed for good.
    #[error("{0}")]
    Failed(String),
}
