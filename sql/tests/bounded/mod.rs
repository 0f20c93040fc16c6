//! Bounded queries over topics on the embedded broker: aggregates, ORDER BY, LIMIT, a join
//! between topics, and predicates on partition, offset and timestamp narrowing what is
//! fetched.

use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use strom_sql::arrow::array::{Array, Int64Array, StringArray};
use strom_sql::arrow::record_batch::RecordBatch;
use strom_sql::{FieldKind, SqlSession, TopicTable, ValueField, ValueFormat};

/// 2026-11-01T00:00:00Z.
const T0: i64 = 1_793_491_200_000;
const HOUR: i64 = 3_600_000;

fn int(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column(column)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            a.values().to_vec()
        })
        .collect()
}

fn text(batches: &[RecordBatch], column: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column(column)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            (0..a.len())
                .map(|i| a.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_fetch_only_the_range_their_predicates_leave() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig::new(dir.path())).await.unwrap();
    let config = ClientConfig::new().bootstrap(&broker.bootstrap());
    let admin = Admin::connect(config.clone()).await.unwrap();
    admin
        .create_topic(NewTopic::new("orders").partitions(3))
        .await
        .unwrap();
    admin
        .create_topic(NewTopic::new("customers").partitions(1))
        .await
        .unwrap();
    let producer = Producer::new(config.clone()).await.unwrap();
    // 300 orders, one an hour, 100 per partition; customers c0..c2.
    for i in 0..300i64 {
        let value = format!(r#"{{"customer":"c{}","amount":{}}}"#, i % 3, i);
        let record = Record::new("orders")
            .partition(i32::try_from(i % 3).unwrap())
            .key(format!("o{i}"))
            .value(value)
            .timestamp(T0 + i * HOUR);
        producer.send(record).await.unwrap().await.unwrap();
    }
    for (id, name) in [("c0", "ann"), ("c1", "bob"), ("c2", "cat")] {
        let record = Record::new("customers")
            .key(id)
            .value(format!(r#"{{"name":"{name}"}}"#));
        producer.send(record).await.unwrap().await.unwrap();
    }
    let session = SqlSession::new().unwrap();
    let orders_format = ValueFormat::Json(vec![
        ValueField::new("customer", FieldKind::Text),
        ValueField::new("amount", FieldKind::Integer),
    ]);
    let orders = session
        .register(
            "orders",
            TopicTable::new(config.clone(), "orders", orders_format).unwrap(),
        )
        .unwrap();
    let customers_format = ValueFormat::Json(vec![ValueField::new("name", FieldKind::Text)]);
    session
        .register(
            "customers",
            TopicTable::new(config.clone(), "customers", customers_format).unwrap(),
        )
        .unwrap();

    let all = session
        .query("SELECT count(*), sum(amount) FROM orders")
        .await
        .unwrap();
    assert_eq!((int(&all, 0), int(&all, 1)), (vec![300], vec![44_850]));
    assert_eq!(orders.fetched(), 300);

    // The last 30 hours: only those 30 records are fetched.
    let since = session
        .query("SELECT count(*) FROM orders WHERE timestamp >= '2026-11-12T06:00:00Z'")
        .await
        .unwrap();
    assert_eq!(int(&since, 0), [30]);
    assert_eq!(orders.fetched(), 330);

    // One partition, an offset range: 10 records fetched.
    let slice = session
        .query(
            "SELECT \"offset\", amount FROM orders WHERE partition = 1 \
             AND \"offset\" >= 5 AND \"offset\" < 15 ORDER BY \"offset\" DESC LIMIT 3",
        )
        .await
        .unwrap();
    assert_eq!(int(&slice, 0), [14, 13, 12]);
    assert_eq!(int(&slice, 1), [43, 40, 37]);
    assert_eq!(orders.fetched(), 340);

    // A join between topics, grouped.
    let per_name = session
        .query(
            "SELECT c.name, count(*) AS n FROM orders o JOIN customers c ON o.customer = c.key \
             WHERE o.amount >= 270 GROUP BY c.name ORDER BY c.name",
        )
        .await
        .unwrap();
    assert_eq!(text(&per_name, 0), ["ann", "bob", "cat"]);
    assert_eq!(int(&per_name, 1), [10, 10, 10]);

    let bad = session.query("SELECT nope FROM orders").await.unwrap_err();
    assert!(bad.to_string().contains("nope"), "{bad}");
    producer.close().await;
    broker.shutdown().await.unwrap();
}
