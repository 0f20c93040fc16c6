//! A MariaDB server, a broker and a worker with the MySQL source, and reading topics.

use std::time::{Duration, Instant};

use serde_json::Value as Json;
use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, OffsetSpec};
use strom_client::consumer::Consumer;
use strom_client::ClientConfig;
use strom_connect_api::ConfigMap;
use strom_connect_mysql::{MySqlSource, QuerySource, MYSQL_SOURCE_CLASS, QUERY_SOURCE_CLASS};
use strom_connect_runtime::{Plugins, Worker, WorkerConfig};
use strom_testkit::MariaDb;

/// What a test runs against.
pub struct Setup {
    pub db: MariaDb,
    pub broker: Broker,
    pub client: ClientConfig,
    _dir: tempfile::TempDir,
}

/// A server and a broker, or `None` (reason printed) without a MariaDB installation.
pub async fn setup() -> Option<Setup> {
    setup_with(true).await
}

/// Like [`setup`], with the server's binary log on or off.
pub async fn setup_with(binlog: bool) -> Option<Setup> {
    let db = MariaDb::start_with(binlog).unwrap()?;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig::new(dir.path().join("broker")))
        .await
        .unwrap();
    let client = ClientConfig::new().bootstrap(&broker.bootstrap());
    Some(Setup {
        db,
        broker,
        client,
        _dir: dir,
    })
}

/// The worker's plugins: the built-in ones and the MySQL sources.
pub fn plugins() -> Plugins {
    let mut plugins = Plugins::builtin();
    plugins.add_source(MYSQL_SOURCE_CLASS, &["MySqlConnector"], || {
        Box::new(MySqlSource::default())
    });
    plugins.add_source(QUERY_SOURCE_CLASS, &["JdbcSourceConnector"], || {
        Box::new(QuerySource::default())
    });
    plugins.add_transform(strom_sql::connect::SQL_FILTER_CLASS, &["SqlFilter"], |c| {
        Ok(Box::new(
            strom_sql::connect::SqlFilterTransform::from_config(c)?,
        ))
    });
    plugins
}

impl Setup {
    /// A worker that stores offsets every 50 ms.
    pub async fn worker(&self) -> Worker {
        let config = WorkerConfig::new(self.client.clone())
            .set("offset.flush.interval.ms", "50")
            .set("offset.storage.partitions", "1");
        Worker::start(config, plugins()).await.unwrap()
    }

    /// A change-capture connector for `tables` with JSON converters without schemas,
    /// and `extra` settings.
    pub fn cdc_config(&self, tables: &str, extra: &[(&str, &str)]) -> ConfigMap {
        let port = self.db.port().to_string();
        let server = [
            ("database.port", port.as_str()),
            ("database.user", strom_testkit::MARIADB_USER),
            ("database.password", strom_testkit::MARIADB_PASSWORD),
        ];
        let mut config = cdc_config(&self.broker.bootstrap(), &server, tables);
        for (k, v) in extra {
            config.insert((*k).to_owned(), (*v).to_owned());
        }
        config
    }

    /// Runs SQL as root.
    pub fn sql(&self, sql: &str) -> String {
        self.db
            .root_sql(&format!(
                "SET NAMES utf8mb4; SET time_zone = '+00:00'; {sql}"
            ))
            .unwrap()
    }
}

/// Records in `topic` (0 while it does not exist).
pub async fn topic_size(client: &ClientConfig, topic: &str) -> i64 {
    let admin = Admin::connect(client.clone()).await.unwrap();
    match admin.list_offsets(topic, OffsetSpec::Latest).await {
        Ok(ends) => ends.values().map(|o| o.offset).sum(),
        Err(_) => 0,
    }
}

/// Waits until `topic` holds at least `n` records.
pub async fn wait_for_size(client: &ClientConfig, topic: &str, n: i64, worker: Option<&Worker>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let size = topic_size(client, topic).await;
        if size >= n {
            return;
        }
        let status = match worker {
            Some(w) => format!("{:?}", w.status("mysql").await.map(|s| s.tasks)),
            None => String::new(),
        };
        if Instant::now() >= deadline {
            let have = records(client, topic).await;
            panic!("{topic} has {size} of {n} records; {status}; {have:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Keys and values of `topic` as JSON (null for none), in offset order (one partition).
pub async fn records(client: &ClientConfig, topic: &str) -> Vec<(Json, Json)> {
    let end = topic_size(client, topic).await;
    let consumer = Consumer::new(client.clone()).await.unwrap();
    let partitions = [(topic.to_owned(), 0)];
    consumer.assign(&partitions).unwrap();
    consumer.seek_to_beginning(&partitions).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.position(topic, 0).await.unwrap() < end {
        assert!(Instant::now() < deadline);
        for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            let json = |b: Option<bytes::Bytes>| {
                b.map_or(Json::Null, |b| serde_json::from_slice(&b).unwrap())
            };
            out.push((json(r.key), json(r.value)));
        }
    }
    consumer.close();
    out
}

/// Waits for `topic` to hold `n` records and returns them.
pub async fn wait_for_records(
    client: &ClientConfig,
    topic: &str,
    n: i64,
    worker: Option<&Worker>,
) -> Vec<(Json, Json)> {
    wait_for_size(client, topic, n, worker).await;
    records(client, topic).await
}

/// Settings from pairs.
pub fn config_of(pairs: &[(&str, &str)]) -> ConfigMap {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// JSON key and value converters without schemas.
pub fn plain_json(config: &mut ConfigMap) {
    let json = "org.apache.kafka.connect.json.JsonConverter";
    config.extend(config_of(&[
        ("key.converter", json),
        ("key.converter.schemas.enable", "false"),
        ("value.converter", json),
        ("value.converter.schemas.enable", "false"),
    ]));
}

/// A change-capture connector of the server at 127.0.0.1 with `server`'s port and
/// credentials, for `tables`, with topic prefix `app` and plain JSON.
pub fn cdc_config(bootstrap: &str, server: &[(&str, &str)], tables: &str) -> ConfigMap {
    let mut config = config_of(&[
        ("connector.class", "MySqlConnector"),
        ("database.hostname", "127.0.0.1"),
        ("topic.prefix", "app"),
        ("table.include.list", tables),
        ("schema.history.internal.kafka.bootstrap.servers", bootstrap),
        ("schema.history.internal.kafka.topic", "app.history"),
    ]);
    config.extend(config_of(server));
    plain_json(&mut config);
    config
}
