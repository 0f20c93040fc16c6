//! The query-based source on a server without a binlog: new rows by an incrementing
//! column, updated rows by a timestamp, resuming from stored offsets.

use serde_json::{json, Value as Json};
use strom_connect_api::ConfigMap;

use crate::support::{setup_with, wait_for_records, Setup};

fn query_config(s: &Setup, mode: &str, prefix: &str) -> ConfigMap {
    let url = format!("jdbc:mysql://127.0.0.1:{}/inv", s.db.port());
    [
        ("connector.class", "JdbcSourceConnector"),
        ("connection.url", url.as_str()),
        ("connection.user", strom_testkit::MARIADB_USER),
        ("connection.password", strom_testkit::MARIADB_PASSWORD),
        ("mode", mode),
        ("incrementing.column.name", "id"),
        ("timestamp.column.name", "updated"),
        ("table.whitelist", "items"),
        ("topic.prefix", prefix),
        ("poll.interval.ms", "50"),
        ("batch.max.rows", "2"),
        (
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("value.converter.schemas.enable", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A worker with an incrementing and a timestamp+incrementing source on `inv.items`.
async fn query_worker(s: &Setup) -> strom_connect_runtime::Worker {
    let worker = s.worker().await;
    worker
        .add_connector("inc", query_config(s, "incrementing", "inc-"))
        .await
        .unwrap();
    worker
        .add_connector("ts", query_config(s, "timestamp+incrementing", "ts-"))
        .await
        .unwrap();
    worker
}

fn ids(records: &[(Json, Json)]) -> Vec<i64> {
    records
        .iter()
        .map(|(_, v)| v["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_and_updated_rows_are_read_by_query_and_resume_from_their_offsets() {
    let Some(s) = setup_with(false).await else {
        return;
    };
    s.sql(
        "CREATE DATABASE inv;
         CREATE TABLE inv.items (
             id INT AUTO_INCREMENT PRIMARY KEY,
             name VARCHAR(20) NOT NULL,
             updated DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3));
         INSERT INTO inv.items (name) VALUES ('a'), ('b'), ('c'), ('d'), ('e');",
    );
    let worker = query_worker(&s).await;
    let inc = wait_for_records(&s.client, "inc-items", 5, None).await;
    assert_eq!(ids(&inc), [1, 2, 3, 4, 5]);
    assert_eq!(inc[1].1["name"], json!("b"));
    wait_for_records(&s.client, "ts-items", 5, None).await;

    // An update: the timestamp mode reads it again, the incrementing one does not.
    s.sql("UPDATE inv.items SET name = 'B' WHERE id = 2;");
    let ts = wait_for_records(&s.client, "ts-items", 6, None).await;
    assert_eq!(ts[5].1["id"], 2);
    assert_eq!(ts[5].1["name"], "B");
    worker.shutdown().await;

    // Restarted: from the stored offsets, nothing read twice.
    s.sql("INSERT INTO inv.items (name) VALUES ('f');");
    let worker = query_worker(&s).await;
    let inc = wait_for_records(&s.client, "inc-items", 6, None).await;
    assert_eq!(ids(&inc), [1, 2, 3, 4, 5, 6]);
    let ts = wait_for_records(&s.client, "ts-items", 7, None).await;
    assert_eq!(ids(&ts)[6], 6);
    worker.shutdown().await;
}
