//! Decoding and filtering batches of records: JSON with nested and missing fields,
//! undecodable values, regular expressions, timestamps, and bad queries.

use bytes::Bytes;
use strom_client::consumer::ConsumerRecord;
use strom_sql::arrow::array::{Array, Float64Array, Int64Array, StringArray};
use strom_sql::arrow::record_batch::RecordBatch;
use strom_sql::{Decoder, FieldKind, SqlError, SqlFilter, ValueField, ValueFormat};

fn record(offset: i64, key: &str, value: &str) -> ConsumerRecord {
    ConsumerRecord {
        topic: "orders".to_owned(),
        partition: 0,
        offset,
        // 2026-11-01T00:00:00Z plus a day per record.
        timestamp: 1_793_491_200_000 + offset * 86_400_000,
        key: Some(Bytes::copy_from_slice(key.as_bytes())),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        headers: vec![("source".to_owned(), Some(Bytes::from_static(b"web")))],
        leader_epoch: None,
    }
}

fn orders() -> Vec<ConsumerRecord> {
    vec![
        record(
            0,
            "order-1",
            r#"{"country":"NO","amount":150.5,"customer":{"name":"ann","city":"Oslo"}}"#,
        ),
        record(
            1,
            "order-2",
            r#"{"country":"SE","amount":900,"customer":{"name":"bob"}}"#,
        ),
        record(2, "order-3", r#"{"country":"NO","amount":20}"#),
        record(
            3,
            "gift-4",
            r#"{"country":"NO","amount":300,"customer":{"name":"cat","city":"Bergen"}}"#,
        ),
        // Missing fields are nulls.
        record(4, "order-5", r#"{"amount":500}"#),
        // Undecodable: not JSON, not an object, a field of the wrong type.
        record(5, "order-6", "not json"),
        record(6, "order-7", "[1, 2]"),
        record(7, "order-8", r#"{"country":"NO","amount":"lots"}"#),
    ]
}

fn format() -> ValueFormat {
    ValueFormat::Json(vec![
        ValueField::new("country", FieldKind::Text),
        ValueField::new("amount", FieldKind::Float),
        ValueField::new("customer", FieldKind::Text),
    ])
}

async fn run(sql: &str) -> Result<RecordBatch, SqlError> {
    let decoder = Decoder::new(format()).unwrap();
    let (batch, _) = decoder.decode(&orders()).unwrap();
    let filter = SqlFilter::compile(sql, "t", decoder.schema()).await?;
    filter.apply(&batch)
}

fn strings(batch: &RecordBatch, column: usize) -> Vec<Option<String>> {
    let array = batch
        .column(column)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    (0..array.len())
        .map(|i| (!array.is_null(i)).then(|| array.value(i).to_owned()))
        .collect()
}

#[test]
fn undecodable_values_are_reported_not_dropped_silently() {
    let decoder = Decoder::new(format()).unwrap();
    let (batch, bad) = decoder.decode(&orders()).unwrap();
    assert_eq!(batch.num_rows(), 5);
    let offsets: Vec<i64> = bad.iter().map(|b| b.offset).collect();
    assert_eq!(offsets, [5, 6, 7]);
    assert!(bad[0].reason.contains("not JSON"), "{bad:?}");
    assert!(bad[1].reason.contains("not a JSON object"), "{bad:?}");
    assert!(bad[2].reason.contains("amount"), "{bad:?}");
}

#[tokio::test]
async fn two_predicates_and_a_projection() {
    let batch = run("SELECT key, amount FROM t WHERE country = 'NO' AND amount > 100")
        .await
        .unwrap();
    assert_eq!(
        strings(&batch, 0),
        [Some("order-1".to_owned()), Some("gift-4".to_owned())]
    );
    let amounts = batch
        .column(1)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(amounts.values().to_vec(), [150.5, 300.0]);
    assert_eq!(batch.schema().field(1).name(), "amount");
}

#[tokio::test]
async fn nested_json_missing_fields_and_regular_expressions() {
    let batch = run("SELECT key, customer->>'city' AS city FROM t \
         WHERE regexp_like(key, '^order-[0-9]+$') AND (customer->>'name') IS NOT NULL")
    .await
    .unwrap();
    assert_eq!(
        strings(&batch, 0),
        [Some("order-1".to_owned()), Some("order-2".to_owned())]
    );
    // bob has no city: a null, not an error.
    assert_eq!(strings(&batch, 1), [Some("Oslo".to_owned()), None]);
    let missing = run("SELECT key FROM t WHERE country IS NULL")
        .await
        .unwrap();
    assert_eq!(strings(&missing, 0), [Some("order-5".to_owned())]);
    let headers = run("SELECT key FROM t WHERE (headers->>'source') = 'web' AND \"offset\" < 2")
        .await
        .unwrap();
    assert_eq!(headers.num_rows(), 2);
}

#[tokio::test]
async fn timestamps_partitions_and_offsets_are_columns() {
    let batch = run("SELECT \"offset\", partition, topic FROM t \
         WHERE timestamp >= '2026-11-03' AND timestamp < '2026-11-05'")
    .await
    .unwrap();
    let offsets = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(offsets.values().to_vec(), [2, 3]);
    assert_eq!(
        strings(&batch, 2),
        [Some("orders".to_owned()), Some("orders".to_owned())]
    );
    let all = run("SELECT * FROM t").await.unwrap();
    assert_eq!((all.num_rows(), all.num_columns()), (5, 10));
    let none = run("SELECT key FROM t WHERE 1 = 2").await.unwrap();
    assert_eq!(none.num_rows(), 0);
}

#[tokio::test]
async fn bad_queries_are_clear_errors() {
    let syntax = run("SELEC key FROM t").await.unwrap_err().to_string();
    assert!(syntax.contains("SELEC"), "{syntax}");
    let column = run("SELECT key FROM t WHERE colour = 'red'")
        .await
        .unwrap_err()
        .to_string();
    assert!(column.contains("colour"), "{column}");
    let position = run("SELECT key FROM t WHERE amount = = 1")
        .await
        .unwrap_err()
        .to_string();
    assert!(position.contains("Line: 1"), "{position}");
    let aggregate = run("SELECT count(*) FROM t").await.unwrap_err();
    assert!(
        matches!(&aggregate, SqlError::Unsupported { reason, .. } if reason.contains("aggregate")),
        "{aggregate}"
    );
    let table = run("SELECT key FROM orders").await.unwrap_err().to_string();
    assert!(table.contains("orders"), "{table}");
}

#[test]
fn inferred_json_schemas_take_each_field_s_type() {
    let sample: Vec<&[u8]> = vec![
        br#"{"a":1,"b":"x","c":true,"d":{"e":1}}"#,
        br#"{"a":2.5,"b":null,"f":3}"#,
        br#"{"f":"three"}"#,
        b"not json",
    ];
    let ValueFormat::Json(fields) = ValueFormat::infer_json(sample) else {
        panic!("JSON expected");
    };
    let kinds: Vec<(&str, FieldKind)> = fields.iter().map(|f| (f.name.as_str(), f.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("a", FieldKind::Float),
            ("b", FieldKind::Text),
            ("c", FieldKind::Boolean),
            ("d", FieldKind::Text),
            ("f", FieldKind::Text),
        ]
    );
    let clash = ValueFormat::Json(vec![ValueField::new("offset", FieldKind::Integer)]);
    assert!(clash.schema().is_err());
}
