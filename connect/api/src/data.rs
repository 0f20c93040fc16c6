//! Connect data: [`Schema`]s and [`Value`]s, and their JSON forms (the schema envelope of
//! Kafka's `JsonConverter` with `schemas.enable=true`).

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value as Json;

use crate::ConnectError;

/// The type of a schema (Kafka Connect's `Schema.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaType {
    /// 8-bit signed integer.
    Int8,
    /// 16-bit signed integer.
    Int16,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
    /// `true` / `false`.
    Boolean,
    /// UTF-8 text.
    String,
    /// Bytes (base64 in JSON).
    Bytes,
    /// A list of `items`.
    Array,
    /// `keys` to `values`.
    Map,
    /// Named `fields`.
    Struct,
}

impl SchemaType {
    /// The name in JSON schemas (`int64`, `struct`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float",
            SchemaType::Float64 => "double",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    fn from_name(name: &str) -> Option<SchemaType> {
        Some(match name {
            "int8" => SchemaType::Int8,
            "int16" => SchemaType::Int16,
            "int32" => SchemaType::Int32,
            "int64" => SchemaType::Int64,
            "float" => SchemaType::Float32,
            "double" => SchemaType::Float64,
            "boolean" => SchemaType::Boolean,
            "string" => SchemaType::String,
            "bytes" => SchemaType::Bytes,
            "array" => SchemaType::Array,
            "map" => SchemaType::Map,
            "struct" => SchemaType::Struct,
            _ => return None,
        })
    }
}

/// A field of a struct schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its schema.
    pub schema: Schema,
}

/// The shape of a value.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    /// Its type.
    pub kind: SchemaType,
    /// Whether null is allowed.
    pub optional: bool,
    /// A name (logical types: `org.apache.kafka.connect.data.Decimal`, ...).
    pub name: Option<String>,
    /// A version.
    pub version: Option<i32>,
    /// Documentation.
    pub doc: Option<String>,
    /// Parameters (a decimal's `scale`, an enum's allowed values, ...).
    pub parameters: BTreeMap<String, String>,
    /// Fields of a struct.
    pub fields: Vec<Field>,
    /// Items of an array; keys and values of a map (boxed as `[key, value]`).
    pub items: Vec<Schema>,
}

impl Schema {
    /// A required schema of `kind`.
    pub fn of(kind: SchemaType) -> Schema {
        Schema {
            kind,
            optional: false,
            name: None,
            version: None,
            doc: None,
            parameters: BTreeMap::new(),
            fields: Vec::new(),
            items: Vec::new(),
        }
    }

    /// A struct of `fields` (name, schema).
    pub fn structure(fields: Vec<(&str, Schema)>) -> Schema {
        let mut schema = Schema::of(SchemaType::Struct);
        schema.fields = fields
            .into_iter()
            .map(|(name, schema)| Field {
                name: name.to_owned(),
                schema,
            })
            .collect();
        schema
    }

    /// An array of `items`.
    pub fn array(items: Schema) -> Schema {
        let mut schema = Schema::of(SchemaType::Array);
        schema.items = vec![items];
        schema
    }

    /// A map of `keys` to `values`.
    pub fn map(keys: Schema, values: Schema) -> Schema {
        let mut schema = Schema::of(SchemaType::Map);
        schema.items = vec![keys, values];
        schema
    }

    /// The same, allowing null.
    pub fn optional(mut self) -> Schema {
        self.optional = true;
        self
    }

    /// The same, named.
    pub fn named(mut self, name: &str) -> Schema {
        self.name = Some(name.to_owned());
        self
    }

    /// The same, with a parameter.
    pub fn parameter(mut self, key: &str, value: &str) -> Schema {
        self.parameters.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The schema in Kafka Connect's JSON form (`{"type": "struct", "fields": [...]}`);
    /// `field` names it inside a struct.
    pub fn to_json(&self, field: Option<&str>) -> Json {
        // Serialising into a JSON tree cannot fail: every key is text.
        serde_json::to_value(SchemaJson(self, field)).unwrap_or(Json::Null)
    }

    /// A schema from its JSON form.
    ///
    /// # Errors
    /// [`ConnectError::Data`] for an unknown type or a malformed schema.
    pub fn from_json(json: &Json) -> Result<Schema, ConnectError> {
        let bad = |what: &str| ConnectError::Data(format!("schema: {what}: {json}"));
        let kind = json
            .get("type")
            .and_then(Json::as_str)
            .and_then(SchemaType::from_name)
            .ok_or_else(|| bad("no known type"))?;
        let mut schema = Schema::of(kind);
        schema.optional = json
            .get("optional")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        schema.name = json.get("name").and_then(Json::as_str).map(String::from);
        schema.version = json
            .get("version")
            .and_then(Json::as_i64)
            .and_then(|v| i32::try_from(v).ok());
        schema.doc = json.get("doc").and_then(Json::as_str).map(String::from);
        if let Some(Json::Object(parameters)) = json.get("parameters") {
            for (k, v) in parameters {
                let v = v.as_str().map_or_else(|| v.to_string(), String::from);
                schema.parameters.insert(k.clone(), v);
            }
        }
        match kind {
            SchemaType::Struct => {
                let fields = json
                    .get("fields")
                    .and_then(Json::as_array)
                    .ok_or_else(|| bad("a struct without fields"))?;
                for field in fields {
                    let name = field
                        .get("field")
                        .and_then(Json::as_str)
                        .ok_or_else(|| bad("a field without a name"))?;
                    schema.fields.push(Field {
                        name: name.to_owned(),
                        schema: Schema::from_json(field)?,
                    });
                }
            }
            SchemaType::Array => {
                let items = json
                    .get("items")
                    .ok_or_else(|| bad("an array without items"))?;
                schema.items = vec![Schema::from_json(items)?];
            }
            SchemaType::Map => {
                let keys = json.get("keys").ok_or_else(|| bad("a map without keys"))?;
                let values = json
                    .get("values")
                    .ok_or_else(|| bad("a map without values"))?;
                schema.items = vec![Schema::from_json(keys)?, Schema::from_json(values)?];
            }
            _ => {}
        }
        Ok(schema)
    }
}

/// A value of Connect data.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Null.
    Null,
    /// A boolean.
    Boolean(bool),
    /// An integer (of the schema's width).
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    String(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// A map, in order.
    Map(Vec<(Value, Value)>),
    /// A struct's fields, in the schema's order.
    Struct(Vec<(String, Value)>),
}

impl Value {
    /// A struct value from `(name, value)` pairs.
    pub fn structure(fields: Vec<(&str, Value)>) -> Value {
        Value::Struct(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// The value as JSON: bytes in base64, maps with text keys as objects (others as
    /// arrays of `[key, value]` pairs), structs as objects.
    pub fn to_json(&self) -> Json {
        // Serialising into a JSON tree cannot fail: every key is text.
        serde_json::to_value(ValueJson(self)).unwrap_or(Json::Null)
    }

    /// A value from JSON read with `schema` (without one: inferred, objects as maps).
    ///
    /// # Errors
    /// [`ConnectError::Data`] when the JSON does not fit the schema.
    pub fn from_json(json: &Json, schema: Option<&Schema>) -> Result<Value, ConnectError> {
        let Some(schema) = schema else {
            return Ok(Value::from_schemaless_json(json));
        };
        let wrong = || {
            ConnectError::Data(format!(
                "{json} is not a {}{}",
                schema.kind.name(),
                schema
                    .name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ))
        };
        if json.is_null() {
            return if schema.optional {
                Ok(Value::Null)
            } else {
                Err(wrong())
            };
        }
        Ok(match schema.kind {
            SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 | SchemaType::Int64 => {
                Value::Int(json.as_i64().ok_or_else(wrong)?)
            }
            SchemaType::Float32 | SchemaType::Float64 => {
                Value::Float(json.as_f64().ok_or_else(wrong)?)
            }
            SchemaType::Boolean => Value::Boolean(json.as_bool().ok_or_else(wrong)?),
            SchemaType::String => Value::String(json.as_str().ok_or_else(wrong)?.to_owned()),
            SchemaType::Bytes => Value::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(json.as_str().ok_or_else(wrong)?)
                    .map_err(|_| wrong())?,
            ),
            SchemaType::Array => {
                let items = schema.items.first();
                Value::Array(
                    json.as_array()
                        .ok_or_else(wrong)?
                        .iter()
                        .map(|item| Value::from_json(item, items))
                        .collect::<Result<_, _>>()?,
                )
            }
            SchemaType::Map => {
                let (keys, values) = (schema.items.first(), schema.items.get(1));
                match json {
                    Json::Object(object) => Value::Map(
                        object
                            .iter()
                            .map(|(k, v)| {
                                Ok((Value::String(k.clone()), Value::from_json(v, values)?))
                            })
                            .collect::<Result<_, ConnectError>>()?,
                    ),
                    Json::Array(pairs) => Value::Map(
                        pairs
                            .iter()
                            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                                Some([k, v]) => {
                                    Ok((Value::from_json(k, keys)?, Value::from_json(v, values)?))
                                }
                                _ => Err(wrong()),
                            })
                            .collect::<Result<_, _>>()?,
                    ),
                    _ => return Err(wrong()),
                }
            }
            SchemaType::Struct => {
                let object = json.as_object().ok_or_else(wrong)?;
                Value::Struct(
                    schema
                        .fields
                        .iter()
                        .map(|f| {
                            let v = object.get(&f.name).unwrap_or(&Json::Null);
                            Ok((f.name.clone(), Value::from_json(v, Some(&f.schema))?))
                        })
                        .collect::<Result<_, ConnectError>>()?,
                )
            }
        })
    }

    fn from_schemaless_json(json: &Json) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Boolean(*b),
            Json::Number(n) => n
                .as_i64()
                .map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::Int),
            Json::String(s) => Value::String(s.clone()),
            Json::Array(items) => {
                Value::Array(items.iter().map(Value::from_schemaless_json).collect())
            }
            Json::Object(object) => Value::Map(
                object
                    .iter()
                    .map(|(k, v)| (Value::String(k.clone()), Value::from_schemaless_json(v)))
                    .collect(),
            ),
        }
    }
}

/// A value written as JSON straight from the value (no intermediate JSON tree), fields
/// in their order.
pub(crate) struct ValueJson<'a>(pub(crate) &'a Value);

impl serde::Serialize for ValueJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) if f.is_finite() => s.serialize_f64(*f),
            Value::Float(_) => s.serialize_unit(),
            Value::String(text) => s.serialize_str(text),
            Value::Bytes(b) => {
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&ValueJson(item))?;
                }
                seq.end()
            }
            Value::Map(entries) if entries.iter().all(|(k, _)| matches!(k, Value::String(_))) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    if let Value::String(k) = k {
                        map.serialize_entry(k, &ValueJson(v))?;
                    }
                }
                map.end()
            }
            Value::Map(entries) => {
                let mut seq = s.serialize_seq(Some(entries.len()))?;
                for (k, v) in entries {
                    seq.serialize_element(&[ValueJson(k), ValueJson(v)])?;
                }
                seq.end()
            }
            Value::Struct(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, &ValueJson(v))?;
                }
                map.end()
            }
        }
    }
}

/// A schema written as Kafka Connect's JSON form straight from the schema; `field` names
/// it inside a struct.
pub(crate) struct SchemaJson<'a>(pub(crate) &'a Schema, pub(crate) Option<&'a str>);

impl serde::Serialize for SchemaJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (schema, field) = (self.0, self.1);
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("type", schema.kind.name())?;
        match schema.kind {
            SchemaType::Struct => {
                let fields: Vec<SchemaJson<'_>> = schema
                    .fields
                    .iter()
                    .map(|f| SchemaJson(&f.schema, Some(&f.name)))
                    .collect();
                map.serialize_entry("fields", &fields)?;
            }
            SchemaType::Array => {
                if let Some(items) = schema.items.first() {
                    map.serialize_entry("items", &SchemaJson(items, None))?;
                }
            }
            SchemaType::Map => {
                if let [keys, values] = schema.items.as_slice() {
                    map.serialize_entry("keys", &SchemaJson(keys, None))?;
                    map.serialize_entry("values", &SchemaJson(values, None))?;
                }
            }
            _ => {}
        }
        map.serialize_entry("optional", &schema.optional)?;
        if let Some(name) = &schema.name {
            map.serialize_entry("name", name)?;
        }
        if let Some(version) = schema.version {
            map.serialize_entry("version", &version)?;
        }
        if let Some(doc) = &schema.doc {
            map.serialize_entry("doc", doc)?;
        }
        if !schema.parameters.is_empty() {
            map.serialize_entry("parameters", &schema.parameters)?;
        }
        if let Some(field) = field {
            map.serialize_entry("field", field)?;
        }
        map.end()
    }
}
