//! Single message transforms, configured as Kafka Connect's (`transforms=a,b`,
//! `transforms.a.type=...`, `transforms.a.predicate=p`, `transforms.a.negate=true`,
//! `predicates=p`, `predicates.p.type=...`), applied in order to each record a source
//! produces or a sink receives:
//! - `org.apache.kafka.connect.transforms.InsertField$Value` / `$Key`: `static.field` +
//!   `static.value`, `topic.field`, `timestamp.field`;
//! - `org.apache.kafka.connect.transforms.ReplaceField$Value` / `$Key`: `exclude`
//!   (`blacklist`), `include` (`whitelist`), `renames` (`old:new,...`);
//! - `org.apache.kafka.connect.transforms.RegexRouter`: `regex` (the whole topic) and
//!   `replacement` (`$1` for groups);
//! - `org.apache.kafka.connect.transforms.Filter`: drops the record (with a predicate:
//!   where it holds);
//! - predicates `TopicNameMatches` (`pattern`), `HasHeaderKey` (`name`),
//!   `RecordIsTombstone`.

use std::sync::Arc;

use regex::Regex;

use crate::data::{Field, Schema, SchemaType, Value};
use crate::record::{Headers, SinkRecord, SourceRecord};
use crate::{ConfigMap, ConnectError};

/// What transforms see of a record (sources' and sinks' alike).
pub trait ConnectRecord {
    /// Its topic, to read or change.
    fn topic_mut(&mut self) -> &mut String;
    /// Its key and the key's schema.
    fn key_mut(&mut self) -> (&mut Option<Arc<Schema>>, &mut Value);
    /// Its value and the value's schema.
    fn value_mut(&mut self) -> (&mut Option<Arc<Schema>>, &mut Value);
    /// Its headers.
    fn headers(&self) -> &Headers;
    /// Its timestamp (ms), if known.
    fn timestamp(&self) -> Option<i64>;
}

/// Both record types expose the same fields; only their timestamps differ in type.
macro_rules! connect_record {
    ($record:ty, $timestamp:expr) => {
        impl ConnectRecord for $record {
            fn topic_mut(&mut self) -> &mut String {
                &mut self.topic
            }
            fn key_mut(&mut self) -> (&mut Option<Arc<Schema>>, &mut Value) {
                (&mut self.key_schema, &mut self.key)
            }
            fn value_mut(&mut self) -> (&mut Option<Arc<Schema>>, &mut Value) {
                (&mut self.value_schema, &mut self.value)
            }
            fn headers(&self) -> &Headers {
                &self.headers
            }
            fn timestamp(&self) -> Option<i64> {
                $timestamp(self)
            }
        }
    };
}

connect_record!(SourceRecord, |r: &SourceRecord| r.timestamp);
connect_record!(SinkRecord, |r: &SinkRecord| Some(r.timestamp));

/// A transform supplied from outside this crate (the SQL filter, say), named by its class
/// in `transforms.<alias>.type`.
pub trait CustomTransform: Send + Sync + std::fmt::Debug {
    /// Applies to `record`; `false` drops it.
    ///
    /// # Errors
    /// [`ConnectError::Data`] for a record it cannot handle.
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<bool, ConnectError>;
}

/// Builds a custom transform from its keys (`transforms.<alias>.` taken off).
pub type TransformFactory =
    Arc<dyn Fn(&ConfigMap) -> Result<Box<dyn CustomTransform>, ConnectError> + Send + Sync>;

/// Custom transform classes by class name or alias.
pub type CustomTransforms = std::collections::BTreeMap<String, TransformFactory>;

/// Which half of a record a field transform changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Key,
    Value,
}

#[derive(Debug)]
enum Transform {
    InsertField {
        part: Part,
        fixed: Option<(String, String)>,
        topic: Option<String>,
        timestamp: Option<String>,
    },
    ReplaceField {
        part: Part,
        exclude: Vec<String>,
        include: Vec<String>,
        renames: Vec<(String, String)>,
    },
    RegexRouter {
        regex: Regex,
        replacement: String,
    },
    Filter,
    Custom(Box<dyn CustomTransform>),
}

#[derive(Debug)]
enum Predicate {
    TopicNameMatches(Regex),
    HasHeaderKey(String),
    RecordIsTombstone,
}

/// A transform's predicate, and whether it is negated.
type Condition = Option<(Predicate, bool)>;

/// A connector's transforms, in order.
#[derive(Debug, Default)]
pub struct Transforms {
    chain: Vec<(String, Transform, Condition)>,
}

fn list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// A whole-string regex.
fn whole(pattern: &str, key: &str) -> Result<Regex, ConnectError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| ConnectError::Config(format!("{key}: {e}")))
}

impl Transforms {
    /// The transforms `config` declares (none without `transforms`).
    ///
    /// # Errors
    /// [`ConnectError::Config`] naming an unknown type, a missing key or a bad regex.
    pub fn from_config(config: &ConfigMap) -> Result<Transforms, ConnectError> {
        Transforms::from_config_with(config, &CustomTransforms::new())
    }

    /// Like [`Transforms::from_config`], also knowing the `custom` classes.
    ///
    /// # Errors
    /// As [`Transforms::from_config`], and what a custom class refuses.
    pub fn from_config_with(
        config: &ConfigMap,
        custom: &CustomTransforms,
    ) -> Result<Transforms, ConnectError> {
        let mut chain = Vec::new();
        for alias in list(config.get("transforms")) {
            let prefix = format!("transforms.{alias}.");
            let get = |key: &str| config.get(&format!("{prefix}{key}"));
            let required = |key: &str| {
                get(key)
                    .cloned()
                    .ok_or_else(|| ConnectError::Config(format!("{prefix}{key} is missing")))
            };
            let kind = required("type")?;
            let (class, part) = match kind.rsplit_once('$') {
                Some((class, "Key")) => (class, Part::Key),
                Some((class, "Value")) => (class, Part::Value),
                _ => (kind.as_str(), Part::Value),
            };
            let transform = match class.rsplit('.').next().unwrap_or(class) {
                "InsertField" => Transform::InsertField {
                    part,
                    fixed: get("static.field")
                        .map(|f| (f.clone(), get("static.value").cloned().unwrap_or_default())),
                    topic: get("topic.field").cloned(),
                    timestamp: get("timestamp.field").cloned(),
                },
                "ReplaceField" => Transform::ReplaceField {
                    part,
                    exclude: list(get("exclude").or_else(|| get("blacklist"))),
                    include: list(get("include").or_else(|| get("whitelist"))),
                    renames: list(get("renames"))
                        .into_iter()
                        .map(|pair| {
                            pair.split_once(':')
                                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                                .ok_or_else(|| {
                                    ConnectError::Config(format!(
                                        "{prefix}renames: {pair} is not old:new"
                                    ))
                                })
                        })
                        .collect::<Result<_, _>>()?,
                },
                "RegexRouter" => Transform::RegexRouter {
                    regex: whole(&required("regex")?, &format!("{prefix}regex"))?,
                    replacement: required("replacement")?,
                },
                "Filter" => Transform::Filter,
                _ if custom.contains_key(kind.as_str()) => {
                    let own: ConfigMap = config
                        .iter()
                        .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_owned(), v.clone())))
                        .collect();
                    let make = &custom[kind.as_str()];
                    Transform::Custom(
                        make(&own).map_err(|e| {
                            ConnectError::Config(format!("transforms.{alias}: {e}"))
                        })?,
                    )
                }
                _ => {
                    return Err(ConnectError::Config(format!(
                        "{prefix}type: unknown transform {kind}"
                    )))
                }
            };
            let predicate = match get("predicate") {
                None => None,
                Some(name) => {
                    let p = format!("predicates.{name}.");
                    let pget = |key: &str| config.get(&format!("{p}{key}"));
                    let kind = pget("type")
                        .ok_or_else(|| ConnectError::Config(format!("{p}type is missing")))?;
                    let predicate = match kind.rsplit('.').next().unwrap_or(kind) {
                        "TopicNameMatches" => Predicate::TopicNameMatches(whole(
                            pget("pattern").ok_or_else(|| {
                                ConnectError::Config(format!("{p}pattern is missing"))
                            })?,
                            &format!("{p}pattern"),
                        )?),
                        "HasHeaderKey" => Predicate::HasHeaderKey(
                            pget("name")
                                .ok_or_else(|| ConnectError::Config(format!("{p}name is missing")))?
                                .clone(),
                        ),
                        "RecordIsTombstone" => Predicate::RecordIsTombstone,
                        _ => {
                            return Err(ConnectError::Config(format!(
                                "{p}type: unknown predicate {kind}"
                            )))
                        }
                    };
                    let negate = get("negate").is_some_and(|n| n == "true");
                    Some((predicate, negate))
                }
            };
            chain.push((alias, transform, predicate));
        }
        Ok(Transforms { chain })
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }

    /// Applies the transforms to `record`; `false` when one drops it.
    ///
    /// # Errors
    /// [`ConnectError::Data`] when a field transform meets a value it cannot change (a
    /// struct transform on a number, say), naming the transform.
    pub fn apply(&self, record: &mut dyn ConnectRecord) -> Result<bool, ConnectError> {
        for (alias, transform, predicate) in &self.chain {
            if let Some((predicate, negate)) = predicate {
                if predicate.holds(record) == *negate {
                    continue;
                }
            }
            let fail = |e: String| ConnectError::Data(format!("transform {alias}: {e}"));
            match transform {
                Transform::Filter => return Ok(false),
                Transform::Custom(t) => {
                    if !t.apply(record).map_err(|e| fail(e.to_string()))? {
                        return Ok(false);
                    }
                }
                Transform::RegexRouter { regex, replacement } => {
                    let topic = record.topic_mut();
                    if regex.is_match(topic) {
                        let routed = regex.replace(topic, replacement.as_str()).into_owned();
                        *topic = routed;
                    }
                }
                Transform::InsertField {
                    part,
                    fixed,
                    topic,
                    timestamp,
                } => {
                    let mut fields: Vec<(String, Schema, Value)> = Vec::new();
                    if let Some((name, value)) = fixed {
                        fields.push((
                            name.clone(),
                            Schema::of(SchemaType::String).optional(),
                            Value::String(value.clone()),
                        ));
                    }
                    if let Some(name) = topic {
                        let t = record.topic_mut().clone();
                        fields.push((
                            name.clone(),
                            Schema::of(SchemaType::String),
                            Value::String(t),
                        ));
                    }
                    if let Some(name) = timestamp {
                        let ts = record.timestamp().map_or(Value::Null, Value::Int);
                        fields.push((
                            name.clone(),
                            Schema::of(SchemaType::Int64)
                                .named("org.apache.kafka.connect.data.Timestamp")
                                .optional(),
                            ts,
                        ));
                    }
                    let (schema, value) = half(record, *part);
                    insert_fields(schema, value, fields).map_err(fail)?;
                }
                Transform::ReplaceField {
                    part,
                    exclude,
                    include,
                    renames,
                } => {
                    let (schema, value) = half(record, *part);
                    replace_fields(schema, value, exclude, include, renames).map_err(fail)?;
                }
            }
        }
        Ok(true)
    }
}

fn half(record: &mut dyn ConnectRecord, part: Part) -> (&mut Option<Arc<Schema>>, &mut Value) {
    match part {
        Part::Key => record.key_mut(),
        Part::Value => record.value_mut(),
    }
}

impl Predicate {
    fn holds(&self, record: &mut dyn ConnectRecord) -> bool {
        match self {
            Predicate::TopicNameMatches(regex) => regex.is_match(record.topic_mut()),
            Predicate::HasHeaderKey(name) => record.headers().iter().any(|(k, _)| k == name),
            Predicate::RecordIsTombstone => *record.value_mut().1 == Value::Null,
        }
    }
}

/// Adds fields to a struct (and its schema) or a schemaless map; a null stays null.
fn insert_fields(
    schema: &mut Option<Arc<Schema>>,
    value: &mut Value,
    fields: Vec<(String, Schema, Value)>,
) -> Result<(), String> {
    match value {
        Value::Null => Ok(()),
        Value::Struct(existing) => {
            for (name, field_schema, field_value) in fields {
                if let Some(schema) = schema.as_mut().map(Arc::make_mut) {
                    schema.fields.push(Field {
                        name: name.clone(),
                        schema: field_schema,
                    });
                }
                existing.push((name, field_value));
            }
            Ok(())
        }
        Value::Map(entries) if schema.is_none() => {
            for (name, _, field_value) in fields {
                entries.push((Value::String(name), field_value));
            }
            Ok(())
        }
        other => Err(format!("cannot add fields to {other:?}")),
    }
}

/// Drops, keeps and renames fields of a struct (and its schema) or a schemaless map.
fn replace_fields(
    schema: &mut Option<Arc<Schema>>,
    value: &mut Value,
    exclude: &[String],
    include: &[String],
    renames: &[(String, String)],
) -> Result<(), String> {
    let kept = |name: &str| {
        !exclude.iter().any(|e| e == name)
            && (include.is_empty() || include.iter().any(|i| i == name))
    };
    let renamed = |name: &str| {
        renames
            .iter()
            .find(|(from, _)| from == name)
            .map_or_else(|| name.to_owned(), |(_, to)| to.clone())
    };
    match value {
        Value::Null => Ok(()),
        Value::Struct(fields) => {
            fields.retain(|(name, _)| kept(name));
            for (name, _) in fields.iter_mut() {
                *name = renamed(name);
            }
            if let Some(schema) = schema.as_mut().map(Arc::make_mut) {
                schema.fields.retain(|f| kept(&f.name));
                for field in &mut schema.fields {
                    field.name = renamed(&field.name);
                }
            }
            Ok(())
        }
        Value::Map(entries) if schema.is_none() => {
            entries.retain(|(k, _)| !matches!(k, Value::String(name) if !kept(name)));
            for (k, _) in entries.iter_mut() {
                if let Value::String(name) = k {
                    *name = renamed(name);
                }
            }
            Ok(())
        }
        other => Err(format!("cannot replace fields of {other:?}")),
    }
}
