//! Converters against Kafka Connect's formats.

use std::collections::BTreeMap;

use serde_json::json;
use strom_connect_api::{
    converter_from_config, ByteArrayConverter, ConnectError, Converter, JsonConverter, Schema,
    SchemaType, StringConverter, Value,
};

fn customer_schema() -> Schema {
    Schema::structure(vec![
        ("id", Schema::of(SchemaType::Int64)),
        ("name", Schema::of(SchemaType::String).optional()),
        ("photo", Schema::of(SchemaType::Bytes).optional()),
        (
            "balance",
            Schema::of(SchemaType::Bytes)
                .named("org.apache.kafka.connect.data.Decimal")
                .parameter("scale", "2"),
        ),
        ("tags", Schema::array(Schema::of(SchemaType::String))),
        (
            "scores",
            Schema::map(
                Schema::of(SchemaType::String),
                Schema::of(SchemaType::Int32),
            ),
        ),
    ])
    .named("server1.inventory.customers.Value")
}

fn customer() -> Value {
    Value::structure(vec![
        ("id", Value::Int(1001)),
        ("name", Value::String("Sally".into())),
        ("photo", Value::Null),
        ("balance", Value::Bytes(vec![0x30, 0x39])),
        ("tags", Value::Array(vec![Value::String("vip".into())])),
        (
            "scores",
            Value::Map(vec![(Value::String("q1".into()), Value::Int(7))]),
        ),
    ])
}

#[test]
fn json_with_schemas_writes_kafka_connects_envelope_and_reads_it_back() {
    let converter = JsonConverter {
        schemas_enable: true,
    };
    let bytes = converter
        .encode(Some(&customer_schema()), &customer())
        .unwrap()
        .unwrap();
    let written: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    // What Kafka's JsonConverter writes for this schema and value.
    let expected = json!({
        "schema": {
            "type": "struct", "optional": false, "name": "server1.inventory.customers.Value",
            "fields": [
                {"type": "int64", "optional": false, "field": "id"},
                {"type": "string", "optional": true, "field": "name"},
                {"type": "bytes", "optional": true, "field": "photo"},
                {"type": "bytes", "optional": false, "name": "org.apache.kafka.connect.data.Decimal",
                 "parameters": {"scale": "2"}, "field": "balance"},
                {"type": "array", "items": {"type": "string", "optional": false}, "optional": false, "field": "tags"},
                {"type": "map", "keys": {"type": "string", "optional": false},
                 "values": {"type": "int32", "optional": false}, "optional": false, "field": "scores"}
            ]
        },
        "payload": {"id": 1001, "name": "Sally", "photo": null, "balance": "MDk=",
                    "tags": ["vip"], "scores": {"q1": 7}}
    });
    assert_eq!(written, expected);
    let (schema, value) = converter.decode(Some(&bytes)).unwrap();
    assert_eq!(schema.unwrap(), customer_schema());
    assert_eq!(value, customer());
}

#[test]
fn json_without_schemas_is_the_payload_alone() {
    let converter = JsonConverter {
        schemas_enable: false,
    };
    let bytes = converter
        .encode(Some(&customer_schema()), &customer())
        .unwrap()
        .unwrap();
    let written: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(written["id"], json!(1001));
    let (schema, value) = converter
        .decode(Some(br#"{"a": 1, "b": [true, 2.5]}"#))
        .unwrap();
    assert!(schema.is_none());
    assert_eq!(
        value,
        Value::Map(vec![
            (Value::String("a".into()), Value::Int(1)),
            (
                Value::String("b".into()),
                Value::Array(vec![Value::Boolean(true), Value::Float(2.5)])
            ),
        ])
    );
    // Null is a tombstone.
    assert_eq!(converter.encode(None, &Value::Null).unwrap(), None);
}

#[test]
fn bad_bytes_and_values_are_clear_errors() {
    let with_schemas = JsonConverter {
        schemas_enable: true,
    };
    let err = with_schemas.decode(Some(b"{\"a\": 1}")).unwrap_err();
    assert!(err.to_string().contains("schemas.enable=false"), "{err}");
    let err = with_schemas.decode(Some(b"not json")).unwrap_err();
    assert!(matches!(err, ConnectError::Data(_)), "{err}");
    let wrong = json!({"schema": {"type": "int32", "optional": false}, "payload": "x"});
    let err = with_schemas
        .decode(Some(wrong.to_string().as_bytes()))
        .unwrap_err();
    assert!(err.to_string().contains("int32"), "{err}");
    let null = json!({"schema": {"type": "int32", "optional": false}, "payload": null});
    assert!(with_schemas
        .decode(Some(null.to_string().as_bytes()))
        .is_err());
    assert!(StringConverter.decode(Some(&[0xff, 0xfe])).is_err());
    assert!(ByteArrayConverter.encode(None, &Value::Int(3)).is_err());
}

#[test]
fn converters_come_from_kafka_connect_config_keys() {
    let mut config = BTreeMap::new();
    config.insert(
        "value.converter".to_owned(),
        "org.apache.kafka.connect.storage.StringConverter".to_owned(),
    );
    let string = converter_from_config(&config, "value.converter").unwrap();
    assert_eq!(
        string.encode(None, &Value::String("hi".into())).unwrap(),
        Some(b"hi".to_vec())
    );
    config.insert(
        "key.converter".to_owned(),
        "org.apache.kafka.connect.json.JsonConverter".to_owned(),
    );
    config.insert(
        "key.converter.schemas.enable".to_owned(),
        "false".to_owned(),
    );
    let json = converter_from_config(&config, "key.converter").unwrap();
    assert_eq!(
        json.encode(None, &Value::Int(5)).unwrap(),
        Some(b"5".to_vec())
    );
    config.insert("key.converter".to_owned(), "com.example.Nope".to_owned());
    let err = converter_from_config(&config, "key.converter")
        .err()
        .unwrap();
    assert!(err.to_string().contains("com.example.Nope"), "{err}");
    config.insert(
        "value.converter.schemas.enable".to_owned(),
        "yes".to_owned(),
    );
    assert!(converter_from_config(&config, "value.converter").is_err());
}
