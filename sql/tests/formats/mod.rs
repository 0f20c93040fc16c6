//! Values as CSV and Avro (raw datums and Confluent's framing), and decoders that build
//! only the columns a query reads.

use apache_avro::types::{Record, Value};
use bytes::Bytes;
use strom_client::consumer::ConsumerRecord;
use strom_sql::arrow::array::{Array, Float64Array, Int64Array, StringArray};
use strom_sql::arrow::record_batch::RecordBatch;
use strom_sql::{Decoder, FieldKind, SqlFilter, ValueField, ValueFormat};

fn record(offset: i64, value: Vec<u8>) -> ConsumerRecord {
    ConsumerRecord {
        topic: "in".to_owned(),
        partition: 0,
        offset,
        timestamp: 1_793_491_200_000 + offset,
        key: Some(Bytes::from(format!("k{offset}"))),
        value: Some(Bytes::from(value)),
        headers: Vec::new(),
        leader_epoch: None,
    }
}

fn texts(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = batch.column_by_name(column).unwrap();
    let array = array.as_any().downcast_ref::<StringArray>().unwrap();
    (0..array.len())
        .map(|i| (!array.is_null(i)).then(|| array.value(i).to_owned()))
        .collect()
}

fn ids(batch: &RecordBatch) -> Vec<i64> {
    let array = batch.column(0).as_any().downcast_ref::<Int64Array>();
    array.unwrap().values().to_vec()
}

async fn query(decoder: &Decoder, records: &[ConsumerRecord], sql: &str) -> RecordBatch {
    let (batch, _) = decoder.decode(records).unwrap();
    let filter = SqlFilter::compile(sql, "t", decoder.schema())
        .await
        .unwrap();
    filter.apply(&batch).unwrap()
}

#[tokio::test]
async fn csv_values_are_columns_by_position() {
    let format = ValueFormat::Csv(vec![
        ValueField::new("city", FieldKind::Text),
        ValueField::new("population", FieldKind::Integer),
        ValueField::new("area", FieldKind::Float),
        ValueField::new("capital", FieldKind::Boolean),
    ]);
    let records = vec![
        record(0, b"Oslo,709037,454.0,true".to_vec()),
        record(1, b"\"Bergen, Vestland\",291940,,false\r\n".to_vec()),
        record(2, b"\"Say \"\"hi\"\"\",,1.5,".to_vec()),
        // Undecodable: too few fields, a number that is not one, an open quote.
        record(3, b"Trondheim,212660".to_vec()),
        record(4, b"Stavanger,many,71.4,false".to_vec()),
        record(5, b"\"Troms,77000,2521,false".to_vec()),
    ];
    let decoder = Decoder::new(format).unwrap();
    let (batch, bad) = decoder.decode(&records).unwrap();
    assert_eq!(batch.num_rows(), 3);
    assert_eq!(
        texts(&batch, "city"),
        [
            Some("Oslo".to_owned()),
            Some("Bergen, Vestland".to_owned()),
            Some("Say \"hi\"".to_owned())
        ]
    );
    let reasons: Vec<(i64, &str)> = bad.iter().map(|b| (b.offset, b.reason.as_str())).collect();
    assert_eq!(reasons[0], (3, "CSV value has 2 fields, 4 declared"));
    assert_eq!(reasons[1], (4, "field population is \"many\", not Integer"));
    assert_eq!(reasons[2], (5, "CSV value has an unclosed quote"));

    let rows = query(
        &decoder,
        &records,
        "SELECT city FROM t WHERE population > 100000 AND area IS NULL",
    )
    .await;
    assert_eq!(texts(&rows, "city"), [Some("Bergen, Vestland".to_owned())]);
    let rows = query(&decoder, &records, "SELECT city FROM t WHERE capital").await;
    assert_eq!(texts(&rows, "city"), [Some("Oslo".to_owned())]);
}

const SCHEMA: &str = r#"{
  "type": "record", "name": "Order",
  "fields": [
    {"name": "id", "type": "long"},
    {"name": "country", "type": ["null", "string"], "default": null},
    {"name": "amount", "type": "double"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
    {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
      {"name": "name", "type": "string"}, {"name": "vip", "type": "boolean"}]}},
    {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-millis"}}
  ]
}"#;

/// An order as an Avro datum, written by the reference implementation.
fn order(id: i64, country: Option<&str>, amount: f64, paid: bool, name: &str) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(SCHEMA).unwrap();
    let mut order = Record::new(&schema).unwrap();
    order.put("id", id);
    order.put(
        "country",
        match country {
            Some(c) => Value::Union(1, Box::new(Value::String(c.to_owned()))),
            None => Value::Union(0, Box::new(Value::Null)),
        },
    );
    order.put("amount", amount);
    order.put(
        "status",
        if paid {
            Value::Enum(1, "PAID".to_owned())
        } else {
            Value::Enum(0, "NEW".to_owned())
        },
    );
    order.put(
        "customer",
        Value::Record(vec![
            ("name".to_owned(), Value::String(name.to_owned())),
            ("vip".to_owned(), Value::Boolean(id % 2 == 0)),
        ]),
    );
    order.put("placed", Value::TimestampMillis(1_793_491_200_000 + id));
    apache_avro::to_avro_datum(&schema, order).unwrap()
}

#[tokio::test]
async fn avro_values_are_columns_with_their_schema_types() {
    let format = ValueFormat::avro(SCHEMA, false).unwrap();
    let kinds: Vec<(&str, FieldKind)> = format
        .fields()
        .iter()
        .map(|f| (f.name.as_str(), f.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("id", FieldKind::Integer),
            ("country", FieldKind::Text),
            ("amount", FieldKind::Float),
            ("status", FieldKind::Text),
            ("customer", FieldKind::Text),
            ("placed", FieldKind::Integer),
        ]
    );
    let mut truncated = order(4, Some("NO"), 1.0, true, "dan");
    truncated.truncate(5);
    let records = vec![
        record(0, order(1, Some("NO"), 150.5, true, "ann")),
        record(1, order(2, None, 900.0, false, "bob")),
        record(2, order(3, Some("NO"), 20.0, true, "cat")),
        record(3, truncated),
    ];
    let decoder = Decoder::new(format).unwrap();
    let (batch, bad) = decoder.decode(&records).unwrap();
    assert_eq!(batch.num_rows(), 3);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].offset, 3);
    assert!(bad[0].reason.contains("Avro"), "{bad:?}");

    let rows = query(
        &decoder,
        &records,
        "SELECT id, customer->>'name' AS name FROM t \
         WHERE status = 'PAID' AND country = 'NO' AND amount > 100",
    )
    .await;
    assert_eq!(ids(&rows), [1]);
    assert_eq!(texts(&rows, "name"), [Some("ann".to_owned())]);
    let rows = query(
        &decoder,
        &records,
        "SELECT id FROM t WHERE country IS NULL AND (customer->'vip')::boolean",
    )
    .await;
    assert_eq!(ids(&rows), [2]);
}

#[tokio::test]
async fn avro_in_confluent_framing_skips_the_header() {
    let format = ValueFormat::avro(SCHEMA, true).unwrap();
    let mut framed = vec![0, 0, 0, 0, 42];
    framed.extend(order(7, Some("SE"), 10.0, false, "eve"));
    let records = vec![
        record(0, framed),
        record(1, order(8, Some("SE"), 10.0, false, "eve")),
    ];
    let decoder = Decoder::new(format).unwrap();
    let (batch, bad) = decoder.decode(&records).unwrap();
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(texts(&batch, "country"), [Some("SE".to_owned())]);
    assert_eq!(bad.len(), 1);
    assert!(bad[0].reason.contains("Confluent"), "{bad:?}");
    assert!(ValueFormat::avro("{\"type\": \"string\"}", false).is_err());
    assert!(ValueFormat::avro("{not a schema", false).is_err());
}

#[tokio::test]
async fn a_projected_decoder_builds_only_the_columns_a_query_reads() {
    let format = ValueFormat::Json(vec![
        ValueField::new("a", FieldKind::Integer),
        ValueField::new("b", FieldKind::Float),
        ValueField::new("c", FieldKind::Text),
    ]);
    let sql = "SELECT c FROM t WHERE b > 1.5";
    let full = SqlFilter::compile(sql, "t", format.schema().unwrap())
        .await
        .unwrap();
    assert_eq!(full.input_columns(), ["b", "c"]);
    let decoder = Decoder::projected(format, &["b", "c"]).unwrap();
    let names: Vec<String> = decoder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["b", "c"]);
    let records = vec![
        record(0, br#"{"a": 1, "b": 2, "c": {"x": [1, 2]}}"#.to_vec()),
        record(1, br#"{"a": 2, "b": 1.0, "c": "esc\"aped"}"#.to_vec()),
        // Fields not read are still checked for syntax.
        record(2, br#"{"a": tru, "b": 3, "c": "x"}"#.to_vec()),
        record(3, br#"{"c": "esc\"aped", "b": 1e3}"#.to_vec()),
    ];
    let (batch, bad) = decoder.decode(&records).unwrap();
    assert_eq!(batch.num_columns(), 2);
    assert_eq!(
        bad.iter().map(|b| b.offset).collect::<Vec<_>>(),
        [2],
        "{bad:?}"
    );
    let b = batch
        .column(0)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(b.values().to_vec(), [2.0, 1.0, 1000.0]);
    assert_eq!(
        texts(&batch, "c"),
        [
            Some(r#"{"x": [1, 2]}"#.to_owned()),
            Some("esc\"aped".to_owned()),
            Some("esc\"aped".to_owned())
        ]
    );
    let filter = SqlFilter::compile(sql, "t", decoder.schema())
        .await
        .unwrap();
    assert_eq!(filter.apply(&batch).unwrap().num_rows(), 2);
    assert!(Decoder::projected(ValueFormat::Json(Vec::new()), &["nope"]).is_err());
}
