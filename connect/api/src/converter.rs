//! Converters between Connect data and record bytes, as Kafka Connect's `key.converter`
//! and `value.converter`: JSON (with the `{"schema", "payload"}` envelope when
//! `schemas.enable` is true, its default), string and bytes.

use crate::data::{Schema, SchemaJson, SchemaType, Value, ValueJson};
use crate::{ConfigMap, ConnectError};

/// Turns values into record bytes and back.
pub trait Converter: Send + Sync {
    /// `value` (with its schema) as bytes; `None` for null.
    ///
    /// # Errors
    /// [`ConnectError::Data`] when the value cannot be written this way.
    fn encode(
        &self,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError>;

    /// Bytes (`None`: null) as a value, with its schema when the bytes carry one.
    ///
    /// # Errors
    /// [`ConnectError::Data`] when the bytes are not of this format.
    fn decode(&self, bytes: Option<&[u8]>) -> Result<(Option<Schema>, Value), ConnectError>;
}

thread_local! {
    /// The schemas last written on this thread and their JSON: a source's records share
    /// a few schemas (a key's and a value's per table), and comparing is much cheaper
    /// than writing one.
    static SCHEMA_JSON: std::cell::RefCell<Vec<(Schema, Vec<u8>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Schemas whose JSON each thread keeps.
const SCHEMA_CACHE: usize = 16;

/// Appends `schema`'s JSON form (`null` for none).
fn write_schema(schema: Option<&Schema>, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let Some(schema) = schema else {
        out.extend_from_slice(b"null");
        return Ok(());
    };
    SCHEMA_JSON.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(i) = cache.iter().position(|(cached, _)| cached == schema) {
            out.extend_from_slice(&cache[i].1);
            // Most recently used first.
            cache[..=i].rotate_right(1);
            return Ok(());
        }
        let json = serde_json::to_vec(&SchemaJson(schema, None))?;
        out.extend_from_slice(&json);
        cache.truncate(SCHEMA_CACHE - 1);
        cache.insert(0, (schema.clone(), json));
        Ok(())
    })
}

/// JSON, with or without the schema envelope.
#[derive(Clone, Copy, Debug)]
pub struct JsonConverter {
    /// Whether values travel as `{"schema": ..., "payload": ...}`.
    pub schemas_enable: bool,
}

impl Converter for JsonConverter {
    fn encode(
        &self,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError> {
        if *value == Value::Null && !self.schemas_enable {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(128);
        let written = if self.schemas_enable {
            out.extend_from_slice(b"{\"schema\":");
            write_schema(schema, &mut out)
                .and_then(|()| {
                    out.extend_from_slice(b",\"payload\":");
                    serde_json::to_writer(&mut out, &ValueJson(value))
                })
                .map(|()| out.push(b'}'))
        } else {
            serde_json::to_writer(&mut out, &ValueJson(value))
        };
        written
            .map(|()| Some(out))
            .map_err(|e| ConnectError::Data(e.to_string()))
    }

    fn decode(&self, bytes: Option<&[u8]>) -> Result<(Option<Schema>, Value), ConnectError> {
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        let json: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| ConnectError::Data(format!("not JSON: {e}")))?;
        if !self.schemas_enable {
            return Ok((None, Value::from_json(&json, None)?));
        }
        let (Some(schema), Some(payload)) = (json.get("schema"), json.get("payload")) else {
            return Err(ConnectError::Data(
                "JSON with schemas.enable=true has \"schema\" and \"payload\" fields; set schemas.enable=false for plain JSON".to_owned(),
            ));
        };
        let schema = match schema {
            serde_json::Value::Null => None,
            s => Some(Schema::from_json(s)?),
        };
        let value = Value::from_json(payload, schema.as_ref())?;
        Ok((schema, value))
    }
}

/// UTF-8 text; other values as their JSON text.
#[derive(Clone, Copy, Debug, Default)]
pub struct StringConverter;

impl Converter for StringConverter {
    fn encode(
        &self,
        _schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError> {
        Ok(match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone().into_bytes()),
            other => Some(other.to_json().to_string().into_bytes()),
        })
    }

    fn decode(&self, bytes: Option<&[u8]>) -> Result<(Option<Schema>, Value), ConnectError> {
        let schema = Some(Schema::of(SchemaType::String).optional());
        match bytes {
            None => Ok((schema, Value::Null)),
            Some(b) => String::from_utf8(b.to_vec())
                .map(|s| (schema, Value::String(s)))
                .map_err(|e| ConnectError::Data(format!("not UTF-8: {e}"))),
        }
    }
}

/// Bytes as they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn encode(
        &self,
        _schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError> {
        match value {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            Value::String(s) => Ok(Some(s.clone().into_bytes())),
            other => Err(ConnectError::Data(format!(
                "the bytes converter writes bytes, not {other:?}"
            ))),
        }
    }

    fn decode(&self, bytes: Option<&[u8]>) -> Result<(Option<Schema>, Value), ConnectError> {
        let schema = Some(Schema::of(SchemaType::Bytes).optional());
        Ok((
            schema,
            bytes.map_or(Value::Null, |b| Value::Bytes(b.to_vec())),
        ))
    }
}

/// The converter `config` names under `prefix` (`value.converter`): its class (Kafka's
/// class names, or `json`, `string`, `bytes`) and `<prefix>.schemas.enable`.
///
/// # Errors
/// [`ConnectError::Config`] for an unknown converter.
pub fn converter_from_config(
    config: &ConfigMap,
    prefix: &str,
) -> Result<Box<dyn Converter>, ConnectError> {
    let class = config.get(prefix).map_or(
        "org.apache.kafka.connect.json.JsonConverter",
        String::as_str,
    );
    let schemas = config
        .get(&format!("{prefix}.schemas.enable"))
        .map_or(Ok(true), |v| match v.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(ConnectError::Config(format!(
                "{prefix}.schemas.enable is true or false, not {other}"
            ))),
        })?;
    Ok(match class {
        "org.apache.kafka.connect.json.JsonConverter" | "json" => Box::new(JsonConverter {
            schemas_enable: schemas,
        }),
        "org.apache.kafka.connect.storage.StringConverter" | "string" => Box::new(StringConverter),
        "org.apache.kafka.connect.converters.ByteArrayConverter" | "bytes" => {
            Box::new(ByteArrayConverter)
        }
        other => {
            return Err(ConnectError::Config(format!(
                "{prefix}: unknown converter {other} (JsonConverter, StringConverter, ByteArrayConverter)"
            )))
        }
    })
}
