//! `CREATE STREAM` jobs on the embedded broker (matches written as JSON, undecodable
//! records dead-lettered, offsets committed so a restart goes on where it stopped,
//! windows written when they close), and `filter_sql` in a topology.

use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use strom_sql::{
    FieldKind, JobOptions, SqlStreamExt, StreamJob, ValueField, ValueFormat, DEAD_LETTER_HEADERS,
};
use strom_streams::serde::StringSerde;
use strom_streams::{Consumed, Produced, StreamsBuilder, TopologyTestDriver};
use strom_testkit::wait_until_async;

use crate::support::read_all;

async fn broker() -> (tempfile::TempDir, Broker, ClientConfig) {
    let dir = tempfile::tempdir().unwrap();
    let mut broker_config = BrokerConfig::new(dir.path());
    broker_config.group_initial_rebalance_delay = Duration::ZERO;
    let broker = Broker::start(broker_config).await.unwrap();
    let config = ClientConfig::new().bootstrap(&broker.bootstrap());
    (dir, broker, config)
}

async fn send(producer: &Producer, records: Vec<Record>) {
    let mut deliveries = Vec::new();
    for record in records {
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
}

fn order(i: u32) -> Record {
    let country = if i.is_multiple_of(2) { "NO" } else { "SE" };
    Record::new("orders")
        .key(format!("order-{i}"))
        .value(format!(r#"{{"country":"{country}","amount":{}}}"#, i * 10))
}

async fn wait_read(job: &StreamJob, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    assert!(
        wait_until_async(deadline, || job.stats().read >= n).await,
        "{:?}",
        job.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_stream_writes_matches_dead_letters_the_rest_and_resumes() {
    let (_dir, broker, config) = broker().await;
    let admin = Admin::connect(config.clone()).await.unwrap();
    admin
        .create_topic(NewTopic::new("orders").partitions(2))
        .await
        .unwrap();
    let producer = Producer::new(config.clone()).await.unwrap();
    let mut input: Vec<Record> = (0..20).map(order).collect();
    input.push(
        Record::new("orders")
            .key("broken")
            .value("not json")
            .header("source", "test"),
    );
    send(&producer, input).await;

    let format = ValueFormat::Json(vec![
        ValueField::new("country", FieldKind::Text),
        ValueField::new("amount", FieldKind::Integer),
    ]);
    let query = "SELECT key, country, amount FROM orders WHERE country = 'NO' AND amount >= 100";
    let options = JobOptions {
        dead_letter: Some("orders-dlq".to_owned()),
        ..JobOptions::default()
    };
    let job = StreamJob::start(
        config.clone(),
        "big_no",
        query,
        format.clone(),
        options.clone(),
    )
    .await
    .unwrap();
    wait_read(&job, 21).await;
    let stats = job.stop().await.unwrap();
    // NO orders are the even ones; amount >= 100 leaves 10, 12, ..., 18.
    assert_eq!((stats.read, stats.written, stats.undecodable), (21, 5, 1));

    let mut out: Vec<(String, String)> = read_all(&config, "big_no")
        .await
        .into_iter()
        .map(|r| {
            (
                String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert_eq!(out.len(), 5);
    assert_eq!(
        out[0],
        (
            "order-10".to_owned(),
            r#"{"amount":100,"country":"NO"}"#.to_owned()
        )
    );

    let dead = read_all(&config, "orders-dlq").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(&b"not json"[..]));
    let header = |name: &str| {
        dead[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    };
    assert_eq!(header("source").as_deref(), Some("test"));
    assert_eq!(header(DEAD_LETTER_HEADERS[0]).as_deref(), Some("orders"));
    assert!(header(DEAD_LETTER_HEADERS[3]).unwrap().contains("not JSON"));

    // Started again, it reads only what came after its commit.
    send(&producer, vec![order(30), order(31)]).await;
    let job = StreamJob::start(config.clone(), "big_no", query, format, options)
        .await
        .unwrap();
    wait_read(&job, 2).await;
    let stats = job.stop().await.unwrap();
    assert_eq!((stats.read, stats.written), (2, 1));
    assert_eq!(read_all(&config, "big_no").await.len(), 6);
    producer.close().await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_consumer_dead_letters_what_it_cannot_decode() {
    let (_dir, broker, config) = broker().await;
    let admin = Admin::connect(config.clone()).await.unwrap();
    for topic in ["orders", "bad-orders"] {
        admin
            .create_topic(NewTopic::new(topic).partitions(1))
            .await
            .unwrap();
    }
    let producer = Producer::new(config.clone()).await.unwrap();
    send(
        &producer,
        vec![
            order(10),
            Record::new("orders")
                .key("broken")
                .value("{\"amount\": \"lots\"}"),
            order(12),
        ],
    )
    .await;
    let consumer = strom_client::consumer::Consumer::new(config.clone())
        .await
        .unwrap();
    let partitions = [("orders".to_owned(), 0)];
    consumer.assign(&partitions).unwrap();
    consumer.seek_to_beginning(&partitions).unwrap();
    let format = ValueFormat::Json(vec![ValueField::new("amount", FieldKind::Integer)]);
    let sql = "SELECT key FROM t WHERE amount > 100";
    let orders = strom_sql::SqlConsumer::new(consumer, format, sql)
        .await
        .unwrap()
        .dead_letter(Producer::new(config.clone()).await.unwrap(), "bad-orders");
    let (mut polled, mut kept) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while polled < 3 {
        assert!(Instant::now() < deadline);
        let batch = orders.poll(Duration::from_millis(100)).await.unwrap();
        polled += batch.polled;
        kept += batch.rows.num_rows();
    }
    assert_eq!((kept, orders.undecodable_count()), (1, 1));
    // The poll returned once the dead letter was acknowledged.
    let dead = read_all(&config, "bad-orders").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key.as_deref(), Some(&b"broken"[..]));
    producer.close().await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windowed_stream_writes_each_window_when_it_closes() {
    let (_dir, broker, config) = broker().await;
    let admin = Admin::connect(config.clone()).await.unwrap();
    admin
        .create_topic(NewTopic::new("clicks").partitions(1))
        .await
        .unwrap();
    let producer = Producer::new(config.clone()).await.unwrap();
    let t0 = 1_793_491_200_000;
    let click = |at: i64, page: &str| {
        Record::new("clicks")
            .value(format!(r#"{{"page":"{page}"}}"#))
            .timestamp(t0 + at)
    };
    send(
        &producer,
        vec![click(0, "a"), click(1_000, "b"), click(59_000, "a")],
    )
    .await;
    let format = ValueFormat::Json(vec![ValueField::new("page", FieldKind::Text)]);
    let job = StreamJob::start(
        config.clone(),
        "per_minute",
        "SELECT tumble(timestamp, INTERVAL '1 minute') AS minute, count(*) AS clicks, \
         count(DISTINCT page) AS pages FROM clicks GROUP BY minute",
        format,
        JobOptions::default(),
    )
    .await
    .unwrap();
    wait_read(&job, 3).await;
    assert_eq!(job.stats().written, 0, "the minute is open");
    send(&producer, vec![click(61_000, "c")]).await;
    wait_read(&job, 4).await;
    let stats = job.stop().await.unwrap();
    assert_eq!(stats.written, 1);
    let out = read_all(&config, "per_minute").await;
    assert_eq!(
        out[0].value.as_deref(),
        Some(&br#"{"clicks":3,"minute":"2026-11-01T00:00:00","pages":2}"#[..])
    );
    producer.close().await;
    broker.shutdown().await.unwrap();
}

#[test]
fn filter_sql_keeps_the_records_a_condition_holds_for() {
    let builder = StreamsBuilder::new();
    let format = ValueFormat::Json(vec![
        ValueField::new("amount", FieldKind::Float),
        ValueField::new("customer", FieldKind::Text),
    ]);
    let (stream, stats) = builder
        .stream("orders", Consumed::with(StringSerde, StringSerde))
        .filter_sql_with_stats(
            "amount > 100 AND regexp_like(customer->>'email', '@example\\.com$') AND key LIKE 'order-%'",
            format.clone(),
        )
        .unwrap();
    stream.to("large", Produced::with(StringSerde, StringSerde));
    let driver = TopologyTestDriver::new(&builder.build());
    let orders = driver.input_topic("orders", StringSerde, StringSerde);
    let large = driver.output_topic("large", StringSerde, StringSerde);
    let value = |amount: u32, email: &str| {
        format!(r#"{{"amount":{amount},"customer":{{"email":"{email}"}}}}"#)
    };
    orders.pipe_input("order-1".to_owned(), value(150, "ann@example.com"));
    orders.pipe_input("order-2".to_owned(), value(50, "bob@example.com"));
    orders.pipe_input("order-3".to_owned(), value(500, "cat@elsewhere.org"));
    orders.pipe_input("gift-4".to_owned(), value(500, "dan@example.com"));
    orders.pipe_raw(
        Some(Bytes::from_static(b"order-5")),
        Some(Bytes::from_static(b"{bad")),
        0,
    );
    orders.pipe_input("order-6".to_owned(), value(101, "eve@example.com"));
    let kept: Vec<String> = large
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kept, ["order-1", "order-6"]);
    assert_eq!(
        (stats.kept(), stats.dropped(), stats.undecodable()),
        (2, 3, 1)
    );

    // Bad SQL fails when the topology is built, naming the problem.
    let error = StreamsBuilder::new()
        .stream("orders", Consumed::with(StringSerde, StringSerde))
        .filter_sql("amount >", format)
        .err()
        .unwrap();
    assert!(error.to_string().contains("SQL"), "{error}");
}
