//! Single message transforms configured with Kafka Connect's keys.

use std::collections::BTreeMap;

use strom_connect_api::{
    ConfigMap, Schema, SchemaType, SinkRecord, SourceRecord, Transforms, Value,
};

fn config(pairs: &[(&str, &str)]) -> ConfigMap {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<BTreeMap<_, _>>()
}

fn row() -> SourceRecord {
    let mut record = SourceRecord::new(
        serde_json::Map::new(),
        serde_json::Map::new(),
        "db.inventory.customers",
        Value::structure(vec![
            ("id", Value::Int(1)),
            ("email", Value::String("a@example.com".into())),
            ("password", Value::String("secret".into())),
        ]),
    );
    record.value_schema = Some(std::sync::Arc::new(Schema::structure(vec![
        ("id", Schema::of(SchemaType::Int64)),
        ("email", Schema::of(SchemaType::String)),
        ("password", Schema::of(SchemaType::String)),
    ])));
    record.timestamp = Some(1_700_000_000_000);
    record
}

#[test]
fn insert_replace_and_route_in_order() {
    let transforms = Transforms::from_config(&config(&[
        ("transforms", "drop,tag,route"),
        (
            "transforms.drop.type",
            "org.apache.kafka.connect.transforms.ReplaceField$Value",
        ),
        ("transforms.drop.exclude", "password"),
        ("transforms.drop.renames", "email:mail"),
        (
            "transforms.tag.type",
            "org.apache.kafka.connect.transforms.InsertField$Value",
        ),
        ("transforms.tag.static.field", "origin"),
        ("transforms.tag.static.value", "mysql"),
        ("transforms.tag.topic.field", "from"),
        (
            "transforms.route.type",
            "org.apache.kafka.connect.transforms.RegexRouter",
        ),
        ("transforms.route.regex", "db\\.([^.]+)\\.(.*)"),
        ("transforms.route.replacement", "$1-$2"),
    ]))
    .unwrap();
    let mut record = row();
    assert!(transforms.apply(&mut record).unwrap());
    assert_eq!(record.topic, "inventory-customers");
    assert_eq!(
        record.value,
        Value::structure(vec![
            ("id", Value::Int(1)),
            ("mail", Value::String("a@example.com".into())),
            ("origin", Value::String("mysql".into())),
            ("from", Value::String("db.inventory.customers".into())),
        ])
    );
    let names: Vec<&str> = record
        .value_schema
        .as_ref()
        .unwrap()
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["id", "mail", "origin", "from"]);
}

#[test]
fn filters_drop_what_their_predicate_matches() {
    let transforms = Transforms::from_config(&config(&[
        ("transforms", "skipTombstones,onlyOrders"),
        (
            "transforms.skipTombstones.type",
            "org.apache.kafka.connect.transforms.Filter",
        ),
        ("transforms.skipTombstones.predicate", "tombstone"),
        (
            "transforms.onlyOrders.type",
            "org.apache.kafka.connect.transforms.Filter",
        ),
        ("transforms.onlyOrders.predicate", "orders"),
        ("transforms.onlyOrders.negate", "true"),
        ("predicates", "tombstone,orders"),
        (
            "predicates.tombstone.type",
            "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
        ),
        (
            "predicates.orders.type",
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        ),
        ("predicates.orders.pattern", "orders.*"),
    ]))
    .unwrap();
    let sink = |topic: &str, value: Value| SinkRecord {
        topic: topic.to_owned(),
        partition: 0,
        offset: 0,
        timestamp: 0,
        key_schema: None,
        key: Value::Null,
        value_schema: None,
        value,
        headers: Vec::new(),
    };
    assert!(transforms
        .apply(&mut sink("orders-eu", Value::String("x".into())))
        .unwrap());
    assert!(!transforms
        .apply(&mut sink("orders-eu", Value::Null))
        .unwrap());
    assert!(!transforms
        .apply(&mut sink("users", Value::String("x".into())))
        .unwrap());
}

#[test]
fn schemaless_maps_are_changed_too_and_bad_configs_are_named() {
    let transforms = Transforms::from_config(&config(&[
        ("transforms", "keep"),
        (
            "transforms.keep.type",
            "org.apache.kafka.connect.transforms.ReplaceField$Key",
        ),
        ("transforms.keep.include", "id"),
    ]))
    .unwrap();
    let mut record = row();
    record.key = Value::Map(vec![
        (Value::String("id".into()), Value::Int(1)),
        (Value::String("tenant".into()), Value::Int(9)),
    ]);
    assert!(transforms.apply(&mut record).unwrap());
    assert_eq!(
        record.key,
        Value::Map(vec![(Value::String("id".into()), Value::Int(1))])
    );
    // A field transform on a plain number says which transform failed.
    record.key = Value::Int(3);
    let err = transforms.apply(&mut record).unwrap_err();
    assert!(err.to_string().contains("transform keep"), "{err}");

    for (bad, says) in [
        (vec![("transforms", "x")], "transforms.x.type is missing"),
        (
            vec![
                ("transforms", "x"),
                ("transforms.x.type", "com.example.Nope"),
            ],
            "unknown transform com.example.Nope",
        ),
        (
            vec![
                ("transforms", "x"),
                (
                    "transforms.x.type",
                    "org.apache.kafka.connect.transforms.RegexRouter",
                ),
                ("transforms.x.regex", "("),
                ("transforms.x.replacement", "y"),
            ],
            "transforms.x.regex",
        ),
    ] {
        let err = Transforms::from_config(&config(&bad)).unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
}
