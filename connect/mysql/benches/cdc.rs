//! Change capture throughput: rows/s of a snapshot, and change events/s from the binlog to
//! a topic, for small rows, on a MariaDB server of the benchmark's own (binlog on) and the
//! embedded broker.
//!
//! ```sh
//! cargo bench -p strom-connect-mysql --bench cdc -- [--rows 1000000] [--schemas]
//! ```
//!
//! The streaming case writes the rows while its connector is stopped at a stored
//! position, then starts it, so it measures reading the binlog into the topic rather than
//! the server's insert speed.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::time::{Duration, Instant};

use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic, OffsetSpec};
use strom_client::ClientConfig;
use strom_connect_api::ConfigMap;
use strom_connect_mysql::{MySqlSource, MYSQL_SOURCE_CLASS};
use strom_connect_runtime::{Plugins, Worker, WorkerConfig};
use strom_testkit::{MariaDb, MARIADB_PASSWORD, MARIADB_USER};

// As the `strom` binary: records are made on one thread and freed on another, which
// glibc's allocator serialises on its arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn topic_size(admin: &Admin, topic: &str) -> i64 {
    match admin.list_offsets(topic, OffsetSpec::Latest).await {
        Ok(ends) => ends.values().map(|o| o.offset).sum(),
        Err(_) => 0,
    }
}

/// Waits until `topic` has `n` records; the time it took from `since`.
async fn until_size(admin: &Admin, topic: &str, n: i64, since: Instant) -> Duration {
    loop {
        if topic_size(admin, topic).await >= n {
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn config(db: &MariaDb, table: &str, schemas: bool, extra: &[(&str, &str)]) -> ConfigMap {
    let port = db.port().to_string();
    let schemas = schemas.to_string();
    let mut c: ConfigMap = [
        ("connector.class", MYSQL_SOURCE_CLASS),
        ("database.hostname", "127.0.0.1"),
        ("database.port", port.as_str()),
        ("database.user", MARIADB_USER),
        ("database.password", MARIADB_PASSWORD),
        ("topic.prefix", "bench"),
        ("table.include.list", table),
        (
            "key.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("key.converter.schemas.enable", schemas.as_str()),
        (
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("value.converter.schemas.enable", schemas.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        c.insert((*k).to_owned(), (*v).to_owned());
    }
    c
}

/// Fills `table` with `rows` small rows in transactions of 10,000.
fn fill(db: &MariaDb, table: &str, from: i64, rows: i64) {
    let mut start = from;
    while start < from + rows {
        let end = (start + 10_000).min(from + rows);
        db.root_sql(&format!(
            "USE b; INSERT INTO {table} SELECT seq, seq % 1000, CONCAT('value-', seq) FROM seq_{start}_to_{}",
            end - 1
        ))
        .unwrap();
        start = end;
    }
}

fn rate(n: i64, took: Duration) -> String {
    format!(
        "{n} in {:.2} s = {:.0}/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: i64 = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .map_or(1_000_000, |n| n.parse().unwrap());
    let schemas = args.iter().any(|a| a == "--schemas");
    let Some(db) = MariaDb::start().unwrap() else {
        eprintln!("no MariaDB server: nothing measured");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig::new(dir.path().join("broker")))
        .await
        .unwrap();
    let client = ClientConfig::new().bootstrap(&broker.bootstrap());
    let admin = Admin::connect(client.clone()).await.unwrap();
    for topic in ["bench.b.snap", "bench.b.stream"] {
        admin
            .create_topic(NewTopic::new(topic).partitions(1))
            .await
            .unwrap();
    }
    db.root_sql(
        "CREATE DATABASE b;
         CREATE TABLE b.snap (id BIGINT PRIMARY KEY, n INT, s VARCHAR(32));
         CREATE TABLE b.stream (id BIGINT PRIMARY KEY, n INT, s VARCHAR(32));",
    )
    .unwrap();
    let mut plugins = Plugins::builtin();
    plugins.add_source(MYSQL_SOURCE_CLASS, &[], || Box::new(MySqlSource::default()));
    let worker = Worker::start(
        WorkerConfig::new(client.clone())
            .set("offset.flush.interval.ms", "1000")
            .set("offset.storage.partitions", "1"),
        plugins,
    )
    .await
    .unwrap();
    println!("rows of (BIGINT id, INT n, VARCHAR s ~12 bytes); JSON converters, schemas.enable={schemas}");

    // Snapshot.
    let loading = Instant::now();
    fill(&db, "b.snap", 1, rows);
    println!("loaded b.snap: {}", rate(rows, loading.elapsed()));
    let start = Instant::now();
    worker
        .add_connector("snap", config(&db, "b.snap", schemas, &[]))
        .await
        .unwrap();
    let took = until_size(&admin, "bench.b.snap", rows, start).await;
    println!("snapshot: {} rows", rate(rows, took));
    worker.remove_connector("snap").await.unwrap();

    // Streaming: a stored position first, then the rows while the connector is away.
    let stream = config(&db, "b.stream", schemas, &[("snapshot.mode", "no_data")]);
    worker
        .add_connector("stream", stream.clone())
        .await
        .unwrap();
    // A row the running connector captures, so a position is stored; written until one
    // lands (the reader may not have reached the binlog's end yet).
    let mut id = 0;
    while topic_size(&admin, "bench.b.stream").await == 0 {
        id -= 1;
        db.root_sql(&format!("INSERT INTO b.stream VALUES ({id}, 0, 'first')"))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let marker = topic_size(&admin, "bench.b.stream").await;
    worker.remove_connector("stream").await.unwrap();
    let loading = Instant::now();
    fill(&db, "b.stream", 1, rows);
    println!("loaded b.stream: {}", rate(rows, loading.elapsed()));
    let start = Instant::now();
    worker.add_connector("stream", stream).await.unwrap();
    let took = until_size(&admin, "bench.b.stream", marker + rows, start).await;
    println!("binlog to topic: {} change events", rate(rows, took));
    worker.shutdown().await;
}
