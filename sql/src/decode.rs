//! Records to Arrow: one `RecordBatch` per batch of consumed records, in the topic
//! table's schema, or in the part of it a query reads (a projected decoder builds only
//! those columns, and decodes only the value fields among them). A value that does not
//! decode (not UTF-8, not a JSON object, a field of the wrong type, a short Avro datum) is
//! left out and returned with the reason.
//!
//! JSON objects are read in one pass without building a tree: wanted fields are decoded
//! by their kind (text borrowed from the record where it has no escapes), the others are
//! skipped, still checked for syntax.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use strom_client::consumer::ConsumerRecord;

use crate::schema::{AvroFormat, FieldKind, ValueFormat, RECORD_COLUMNS};
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
    /// Which of [`RECORD_COLUMNS`] are built.
    record: [bool; RECORD_COLUMNS.len()],
    /// The value fields built: index into the format's fields, and kind.
    fields: Vec<(usize, FieldKind)>,
    /// JSON field name to its place in `fields`.
    by_name: HashMap<String, usize>,
    /// CSV and Avro field position to its place in `fields`.
    by_position: Vec<Option<usize>>,
}

/// One field of one value, decoded.
#[derive(Clone, Debug, PartialEq)]
enum Cell<'a> {
    Null,
    Text(Cow<'a, str>),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

impl Decoder {
    /// A decoder for values in `format`, building every column.
    ///
    /// # Errors
    /// As [`ValueFormat::schema`].
    pub fn new(format: ValueFormat) -> Result<Decoder, SqlError> {
        let full = format.schema()?;
        let all: Vec<&str> = full.fields().iter().map(|f| f.name().as_str()).collect();
        Decoder::projected(format, &all)
    }

    /// A decoder for values in `format` that builds only `columns` (in the table's order).
    ///
    /// # Errors
    /// As [`ValueFormat::schema`]; [`SqlError::Schema`] for a column the table lacks.
    pub fn projected(format: ValueFormat, columns: &[&str]) -> Result<Decoder, SqlError> {
        let full = format.schema()?;
        for column in columns {
            if full.field_with_name(column).is_err() {
                return Err(SqlError::Schema(format!("no column {column}")));
            }
        }
        let kept: Vec<usize> = (0..full.fields().len())
            .filter(|i| columns.contains(&full.field(*i).name().as_str()))
            .collect();
        let schema = Arc::new(full.project(&kept)?);
        let mut record = [false; RECORD_COLUMNS.len()];
        for (i, name) in RECORD_COLUMNS.iter().enumerate() {
            record[i] = columns.contains(name);
        }
        let declared = format.fields();
        let mut fields = Vec::new();
        let mut by_name = HashMap::new();
        let mut by_position = vec![None; declared.len()];
        for (i, field) in declared.iter().enumerate() {
            if columns.contains(&field.name.as_str()) {
                by_name.insert(field.name.clone(), fields.len());
                by_position[i] = Some(fields.len());
                fields.push((i, field.kind));
            }
        }
        Ok(Decoder {
            format,
            schema,
            record,
            fields,
            by_name,
            by_position,
        })
    }

    /// The schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The format values are read in.
    pub fn format(&self) -> &ValueFormat {
        &self.format
    }

    /// The records as one batch, and those that did not decode.
    ///
    /// # Errors
    /// [`SqlError::Arrow`] if the columns do not make a batch (a bug).
    pub fn decode(
        &self,
        records: &[ConsumerRecord],
    ) -> Result<(RecordBatch, Vec<Undecodable>), SqlError> {
        let n = records.len();
        let mut bad = Vec::new();
        let mut builders = Builders::new(self, n);
        let mut cells: Vec<Cell<'_>> = Vec::with_capacity(self.fields.len());
        for record in records {
            cells.clear();
            cells.resize(self.fields.len(), Cell::Null);
            if let Err(reason) = self.cells(record, &mut cells) {
                bad.push(Undecodable {
                    topic: record.topic.clone(),
                    partition: record.partition,
                    offset: record.offset,
                    reason,
                });
                continue;
            }
            builders.append(self, record, &cells);
        }
        let rows = n - bad.len();
        let columns = builders.finish(self);
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        Ok((batch, bad))
    }

    /// A record's value fields into `cells`, or why its value does not decode.
    fn cells<'r>(&self, record: &'r ConsumerRecord, cells: &mut [Cell<'r>]) -> Result<(), String> {
        let Some(value) = record.value.as_deref() else {
            // A tombstone: a row of nulls.
            return Ok(());
        };
        match &self.format {
            ValueFormat::Bytes => Ok(()),
            ValueFormat::String => std::str::from_utf8(value)
                .map(drop)
                .map_err(|e| format!("value is not UTF-8: {e}")),
            ValueFormat::Json(_) => {
                let mut de = serde_json::Deserializer::from_slice(value);
                de.deserialize_map(JsonObject {
                    decoder: self,
                    cells,
                })
                .and_then(|()| de.end())
                .map_err(|e| json_error(value, &e))
            }
            ValueFormat::Csv(declared) => {
                let text =
                    std::str::from_utf8(value).map_err(|e| format!("value is not UTF-8: {e}"))?;
                let line = csv_fields(text)?;
                if line.len() != declared.len() {
                    return Err(format!(
                        "CSV value has {} fields, {} declared",
                        line.len(),
                        declared.len()
                    ));
                }
                for (position, field) in line.into_iter().enumerate() {
                    if let Some(slot) = self.by_position[position] {
                        let (index, kind) = self.fields[slot];
                        cells[slot] = csv_cell(&declared[index].name, kind, field)?;
                    }
                }
                Ok(())
            }
            ValueFormat::Avro(avro) => self.avro_cells(avro, value, cells),
        }
    }

    fn avro_cells(
        &self,
        avro: &AvroFormat,
        value: &[u8],
        cells: &mut [Cell<'_>],
    ) -> Result<(), String> {
        let mut datum = value;
        if avro.confluent_framing() {
            match value {
                [0, _, _, _, _, rest @ ..] => datum = rest,
                _ => {
                    return Err("value lacks the Confluent header (magic byte 0, schema id)".into())
                }
            }
        }
        let decoded = apache_avro::from_avro_datum(avro.schema(), &mut datum, None)
            .map_err(|e| format!("value is not an Avro datum of the schema: {e}"))?;
        if !datum.is_empty() {
            return Err(format!("{} bytes after the Avro datum", datum.len()));
        }
        let apache_avro::types::Value::Record(fields) = decoded else {
            return Err("Avro datum is not a record".to_owned());
        };
        for (position, (name, field)) in fields.into_iter().enumerate() {
            if let Some(slot) = self.by_position.get(position).copied().flatten() {
                cells[slot] = avro_cell(&name, self.fields[slot].1, field)?;
            }
        }
        Ok(())
    }
}

/// The column builders of one batch.
struct Builders {
    key: StringBuilder,
    text: StringBuilder,
    binary: BinaryBuilder,
    headers: StringBuilder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMillisecondBuilder,
    fields: Vec<FieldBuilder>,
}

enum FieldBuilder {
    Text(StringBuilder),
    Integer(Int64Builder),
    Float(Float64Builder),
    Boolean(BooleanBuilder),
}

impl Builders {
    fn new(decoder: &Decoder, n: usize) -> Builders {
        let sized = |wanted: bool, bytes: usize| if wanted { n * bytes } else { 0 };
        let r = &decoder.record;
        Builders {
            key: StringBuilder::with_capacity(n, sized(r[0], 16)),
            text: StringBuilder::with_capacity(n, sized(r[1], 64)),
            binary: BinaryBuilder::with_capacity(n, sized(r[1], 64)),
            headers: StringBuilder::with_capacity(n, sized(r[2], 2)),
            topic: StringBuilder::with_capacity(n, sized(r[3], 8)),
            partition: Int32Builder::with_capacity(n),
            offset: Int64Builder::with_capacity(n),
            timestamp: TimestampMillisecondBuilder::with_capacity(n),
            fields: decoder
                .fields
                .iter()
                .map(|(_, kind)| match kind {
                    FieldKind::Text => FieldBuilder::Text(StringBuilder::with_capacity(n, n * 8)),
                    FieldKind::Integer => FieldBuilder::Integer(Int64Builder::with_capacity(n)),
                    FieldKind::Float => FieldBuilder::Float(Float64Builder::with_capacity(n)),
                    FieldKind::Boolean => FieldBuilder::Boolean(BooleanBuilder::with_capacity(n)),
                })
                .collect(),
        }
    }

    fn append(&mut self, decoder: &Decoder, r: &ConsumerRecord, cells: &[Cell<'_>]) {
        let wanted = &decoder.record;
        if wanted[0] {
            self.key
                .append_option(r.key.as_deref().map(String::from_utf8_lossy));
        }
        if wanted[1] {
            match (&decoder.format, r.value.as_deref()) {
                (ValueFormat::Bytes | ValueFormat::Avro(_), v) => self.binary.append_option(v),
                // Decoded values are UTF-8: the format checked.
                (_, Some(v)) => self
                    .text
                    .append_value(std::str::from_utf8(v).unwrap_or_default()),
                (_, None) => self.text.append_null(),
            }
        }
        if wanted[2] {
            self.headers.append_value(headers_json(r));
        }
        if wanted[3] {
            self.topic.append_value(&r.topic);
        }
        if wanted[4] {
            self.partition.append_value(r.partition);
        }
        if wanted[5] {
            self.offset.append_value(r.offset);
        }
        if wanted[6] {
            self.timestamp.append_value(r.timestamp);
        }
        for (builder, cell) in self.fields.iter_mut().zip(cells) {
            match (builder, cell) {
                (FieldBuilder::Text(b), Cell::Text(v)) => b.append_value(v),
                (FieldBuilder::Integer(b), Cell::Integer(v)) => b.append_value(*v),
                (FieldBuilder::Float(b), Cell::Float(v)) => b.append_value(*v),
                (FieldBuilder::Boolean(b), Cell::Boolean(v)) => b.append_value(*v),
                (FieldBuilder::Text(b), _) => b.append_null(),
                (FieldBuilder::Integer(b), _) => b.append_null(),
                (FieldBuilder::Float(b), _) => b.append_null(),
                (FieldBuilder::Boolean(b), _) => b.append_null(),
            }
        }
    }

    /// The columns, in the schema's order: the record columns built, then the fields.
    fn finish(mut self, decoder: &Decoder) -> Vec<ArrayRef> {
        let binary = matches!(decoder.format, ValueFormat::Bytes | ValueFormat::Avro(_));
        let mut columns: Vec<ArrayRef> =
            Vec::with_capacity(RECORD_COLUMNS.len() + self.fields.len());
        for (i, _) in decoder.record.iter().enumerate().filter(|(_, w)| **w) {
            columns.push(match i {
                0 => Arc::new(self.key.finish()),
                1 if binary => Arc::new(self.binary.finish()),
                1 => Arc::new(self.text.finish()),
                2 => Arc::new(self.headers.finish()),
                3 => Arc::new(self.topic.finish()),
                4 => Arc::new(self.partition.finish()),
                5 => Arc::new(self.offset.finish()),
                _ => Arc::new(self.timestamp.finish()),
            });
        }
        for field in self.fields {
            columns.push(match field {
                FieldBuilder::Text(mut b) => Arc::new(b.finish()),
                FieldBuilder::Integer(mut b) => Arc::new(b.finish()),
                FieldBuilder::Float(mut b) => Arc::new(b.finish()),
                FieldBuilder::Boolean(mut b) => Arc::new(b.finish()),
            });
        }
        columns
    }
}

/// A JSON object's wanted fields into cells; the rest skipped.
struct JsonObject<'d, 'c, 'r> {
    decoder: &'d Decoder,
    cells: &'c mut [Cell<'r>],
}

impl<'de, 'd, 'c> Visitor<'de> for JsonObject<'d, 'c, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.decoder.by_name.get(key.as_ref()) {
                Some(&slot) => {
                    let kind = self.decoder.fields[slot].1;
                    self.cells[slot] = map.next_value_seed(JsonCell { name: &key, kind })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Why a value did not decode as a JSON object of the declared fields.
fn json_error(value: &[u8], error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let object = value.trim_ascii_start().first() == Some(&b'{');
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => format!("value is not JSON: {error}"),
        Category::Data if !object => format!("value is not a JSON object: {error}"),
        Category::Data => format!("value does not fit its fields: {error}"),
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// One JSON field's value as a cell of its kind; null for JSON null.
struct JsonCell<'n> {
    name: &'n str,
    kind: FieldKind,
}

impl<'de> DeserializeSeed<'de> for JsonCell<'_> {
    type Value = Cell<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cell<'de>, D::Error> {
        use serde::de::Error;
        if self.kind != FieldKind::Text {
            return deserializer.deserialize_any(self);
        }
        // Text: strings as their text, anything else as its JSON text.
        let raw = <&'de serde_json::value::RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        Ok(match text.as_bytes() {
            b"null" => Cell::Null,
            [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => {
                Cell::Text(Cow::Borrowed(&text[1..text.len() - 1]))
            }
            [b'"', ..] => Cell::Text(Cow::Owned(
                serde_json::from_str::<String>(text).map_err(D::Error::custom)?,
            )),
            _ => Cell::Text(Cow::Borrowed(text)),
        })
    }
}

impl<'de> Visitor<'de> for JsonCell<'_> {
    type Value = Cell<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {} of kind {:?}", self.name, self.kind)
    }

    fn visit_unit<E>(self) -> Result<Cell<'de>, E> {
        Ok(Cell::Null)
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Cell<'de>, E> {
        match self.kind {
            FieldKind::Boolean => Ok(Cell::Boolean(v)),
            _ => Err(E::invalid_type(serde::de::Unexpected::Bool(v), &self)),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Cell<'de>, E> {
        match self.kind {
            FieldKind::Integer => Ok(Cell::Integer(v)),
            #[allow(clippy::cast_precision_loss)]
            FieldKind::Float => Ok(Cell::Float(v as f64)),
            _ => Err(E::invalid_type(serde::de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Cell<'de>, E> {
        match (self.kind, i64::try_from(v)) {
            (FieldKind::Integer, Ok(v)) => Ok(Cell::Integer(v)),
            #[allow(clippy::cast_precision_loss)]
            (FieldKind::Float, _) => Ok(Cell::Float(v as f64)),
            _ => Err(E::invalid_type(serde::de::Unexpected::Unsigned(v), &self)),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Cell<'de>, E> {
        match self.kind {
            FieldKind::Float => Ok(Cell::Float(v)),
            _ => Err(E::invalid_type(serde::de::Unexpected::Float(v), &self)),
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Cell<'de>, E> {
        Err(E::invalid_type(serde::de::Unexpected::Str(v), &self))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Cell<'de>, A::Error> {
        Err(serde::de::Error::invalid_type(
            serde::de::Unexpected::Map,
            &self,
        ))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Cell<'de>, A::Error> {
        Err(serde::de::Error::invalid_type(
            serde::de::Unexpected::Seq,
            &self,
        ))
    }
}

/// The fields of one CSV line (RFC 4180: double quotes around fields with commas, quotes
/// or line breaks, quotes inside doubled). An empty unquoted field is `None` (null).
fn csv_fields(line: &str) -> Result<Vec<Option<Cow<'_, str>>>, String> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => {
                        if quoted[i + 1..].starts_with('"') {
                            text.push('"');
                            chars.next();
                        } else {
                            break i + 1;
                        }
                    }
                    Some((_, c)) => text.push(c),
                    None => return Err("CSV value has an unclosed quote".to_owned()),
                }
            };
            fields.push(Some(Cow::Owned(text)));
            rest = &quoted[end..];
            match rest.strip_prefix(',') {
                Some(next) => rest = next,
                None if rest.is_empty() => return Ok(fields),
                None => return Err("CSV value has text after a closing quote".to_owned()),
            }
        } else {
            let (field, next) = match rest.find(',') {
                Some(comma) => (&rest[..comma], Some(&rest[comma + 1..])),
                None => (rest, None),
            };
            if field.contains('"') {
                return Err("CSV value has a quote inside an unquoted field".to_owned());
            }
            fields.push((!field.is_empty()).then_some(Cow::Borrowed(field)));
            match next {
                Some(next) => rest = next,
                None => return Ok(fields),
            }
        }
    }
}

/// A CSV field as a cell of `kind`.
fn csv_cell<'a>(
    name: &str,
    kind: FieldKind,
    field: Option<Cow<'a, str>>,
) -> Result<Cell<'a>, String> {
    let Some(text) = field else {
        return Ok(Cell::Null);
    };
    let wrong = || format!("field {name} is {text:?}, not {kind:?}");
    Ok(match kind {
        FieldKind::Text => return Ok(Cell::Text(text)),
        FieldKind::Integer => Cell::Integer(text.trim().parse().map_err(|_| wrong())?),
        FieldKind::Float => Cell::Float(text.trim().parse().map_err(|_| wrong())?),
        FieldKind::Boolean => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Cell::Boolean(true),
            "false" => Cell::Boolean(false),
            _ => return Err(wrong()),
        },
    })
}

/// An Avro field's value as a cell of `kind` (its kind from the schema).
fn avro_cell(
    name: &str,
    kind: FieldKind,
    value: apache_avro::types::Value,
) -> Result<Cell<'static>, String> {
    use apache_avro::types::Value as V;
    Ok(match (kind, value) {
        (_, V::Null) => Cell::Null,
        (kind, V::Union(_, inner)) => return avro_cell(name, kind, *inner),
        (FieldKind::Boolean, V::Boolean(b)) => Cell::Boolean(b),
        (FieldKind::Integer, V::Int(v) | V::Date(v) | V::TimeMillis(v)) => {
            Cell::Integer(i64::from(v))
        }
        (
            FieldKind::Integer,
            V::Long(v)
            | V::TimeMicros(v)
            | V::TimestampMillis(v)
            | V::TimestampMicros(v)
            | V::TimestampNanos(v)
            | V::LocalTimestampMillis(v)
            | V::LocalTimestampMicros(v)
            | V::LocalTimestampNanos(v),
        ) => Cell::Integer(v),
        (FieldKind::Float, V::Float(v)) => Cell::Float(f64::from(v)),
        (FieldKind::Float, V::Double(v)) => Cell::Float(v),
        (FieldKind::Text, V::String(s) | V::Enum(_, s)) => Cell::Text(Cow::Owned(s)),
        (FieldKind::Text, other) => {
            let json =
                serde_json::Value::try_from(other).map_err(|e| format!("field {name}: {e}"))?;
            Cell::Text(Cow::Owned(json.to_string()))
        }
        (kind, other) => return Err(format!("field {name} is {other:?}, not {kind:?}")),
    })
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
