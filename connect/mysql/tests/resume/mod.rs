//! Resuming: after a clean stop nothing is lost or repeated; after `kill -9` of a
//! `strom connect standalone` worker in the middle of a stream of transactions, the
//! topic holds every change (repeats only of what was written after the last offset
//! flush).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

use serde_json::Value as Json;

use crate::support::{records, setup, topic_size, wait_for_records, Setup};

/// The ids of the rows inserted, in topic order.
fn inserted_ids(records: &[(Json, Json)]) -> Vec<i64> {
    records
        .iter()
        .filter(|(_, v)| matches!(v["op"].as_str(), Some("c" | "r")))
        .map(|(_, v)| v["after"]["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_resumes_without_loss_or_repeats() {
    let Some(s) = setup().await else { return };
    s.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.events (id INT PRIMARY KEY, n INT);
         INSERT INTO shop.events VALUES (1, 0), (2, 0);",
    );
    let topic = "app.shop.events";
    let worker = s.worker().await;
    worker
        .add_connector("mysql", s.cdc_config("shop.events", &[]))
        .await
        .unwrap();
    s.sql("INSERT INTO shop.events VALUES (3, 0), (4, 0);");
    wait_for_records(&s.client, topic, 4, Some(&worker)).await;
    worker.shutdown().await;

    // Written while no worker runs, then a transaction with a row of another table
    // between its rows.
    s.sql(
        "CREATE TABLE shop.other (id INT PRIMARY KEY);
         INSERT INTO shop.events VALUES (5, 0);
         START TRANSACTION;
         INSERT INTO shop.events VALUES (6, 0);
         INSERT INTO shop.other VALUES (1);
         INSERT INTO shop.events VALUES (7, 0);
         COMMIT;",
    );
    let worker = s.worker().await;
    worker
        .add_connector("mysql", s.cdc_config("shop.events", &[]))
        .await
        .unwrap();
    s.sql("UPDATE shop.events SET n = 1 WHERE id = 1;");
    let all = wait_for_records(&s.client, topic, 8, Some(&worker)).await;
    assert_eq!(inserted_ids(&all), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(all[7].1["op"], "u");
    worker.shutdown().await;
}

fn spawn_worker(s: &Setup, dir: &std::path::Path) -> Child {
    let worker = dir.join("worker.properties");
    std::fs::write(
        &worker,
        format!(
            "bootstrap.servers={}\noffset.flush.interval.ms=100\noffset.storage.partitions=1\n\
             listeners=http://127.0.0.1:0\n\
             key.converter=org.apache.kafka.connect.json.JsonConverter\n\
             key.converter.schemas.enable=false\n\
             value.converter=org.apache.kafka.connect.json.JsonConverter\n\
             value.converter.schemas.enable=false\n",
            s.broker.bootstrap()
        ),
    )
    .unwrap();
    let connector = dir.join("mysql.properties");
    let config = s.cdc_config("shop.events", &[("name", "mysql")]);
    let text: String = config.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&connector, text).unwrap();
    Command::new(strom_testkit::strom_bin())
        .args(["connect", "standalone"])
        .arg(&worker)
        .arg(&connector)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stream_loses_no_change() {
    let Some(s) = setup().await else { return };
    s.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.events (id INT PRIMARY KEY, n INT);",
    );
    // 500 rows for the snapshot.
    let values: Vec<String> = (1..=500).map(|i| format!("({i}, -1)")).collect();
    s.sql(&format!(
        "INSERT INTO shop.events VALUES {};",
        values.join(",")
    ));
    let dir = tempfile::tempdir().unwrap();
    let topic = "app.shop.events";
    let mut child = spawn_worker(&s, dir.path());
    wait_for_records(&s.client, topic, 500, None).await;

    // Transactions of 50 rows keep coming while the worker is killed and restarted.
    let transactions: i64 = 400;
    let url = s.db.url();
    let writer = tokio::spawn(async move {
        use mysql_async::prelude::Queryable;
        let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
        for t in 0..transactions {
            let rows: Vec<String> = (0..50)
                .map(|i| format!("({}, {t})", 1000 + t * 50 + i))
                .collect();
            conn.query_drop(format!("INSERT INTO shop.events VALUES {}", rows.join(",")))
                .await
                .unwrap();
        }
    });
    // Killed in the middle of the stream, after offsets were stored more than once. (Not
    // a fixed larger count: offsets are stored only while changes come, and a quick
    // writer may be done before a fifth flush.)
    wait_for_records(&s.client, topic, 2000, None).await;
    crate::support::wait_for_size(&s.client, "connect-offsets", 2, None).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = topic_size(&s.client, topic).await;
    let mut child = spawn_worker(&s, dir.path());
    writer.await.unwrap();

    let expected: BTreeMap<i64, i64> = (1..=500)
        .map(|i| (i, -1))
        .chain((0..transactions).flat_map(|t| (0..50).map(move |i| (1000 + t * 50 + i, t))))
        .collect();
    let want = i64::try_from(expected.len()).unwrap();
    wait_for_records(&s.client, topic, want, None).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (seen, total) = loop {
        let all = records(&s.client, topic).await;
        let mut seen = BTreeMap::new();
        for (_, v) in &all {
            let after = &v["after"];
            seen.insert(after["id"].as_i64().unwrap(), after["n"].as_i64().unwrap());
        }
        if seen.len() == expected.len() || std::time::Instant::now() > deadline {
            break (seen, all.len());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(seen, expected, "every change is in the topic");
    let repeats = total - expected.len();
    assert!(
        i64::try_from(repeats).unwrap() < killed_at,
        "the restart resumed from the stored position, not from the start"
    );
    eprintln!(
        "killed with {killed_at} records in the topic; {total} records for {} changes: {repeats} repeated",
        expected.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_binlog_connection_is_reopened_where_it_was() {
    let Some(s) = setup().await else { return };
    s.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.events (id INT PRIMARY KEY, n INT);
         INSERT INTO shop.events VALUES (1, 0);",
    );
    let topic = "app.shop.events";
    let worker = s.worker().await;
    worker
        .add_connector("mysql", s.cdc_config("shop.events", &[]))
        .await
        .unwrap();
    s.sql("INSERT INTO shop.events VALUES (2, 0), (3, 0);");
    wait_for_records(&s.client, topic, 3, Some(&worker)).await;
    // The server drops the connector's binlog connection.
    let dump = s.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'");
    let id = dump.trim();
    assert!(!id.is_empty(), "no binlog dump thread");
    s.sql(&format!("KILL {id};"));
    s.sql("INSERT INTO shop.events VALUES (4, 0); INSERT INTO shop.events VALUES (5, 0), (6, 0);");
    let all = wait_for_records(&s.client, topic, 6, Some(&worker)).await;
    assert_eq!(inserted_ids(&all), [1, 2, 3, 4, 5, 6]);
    assert!(all.len() == 6, "nothing twice: {all:?}");
    let again =
        s.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'");
    assert!(
        !again.trim().is_empty() && again.trim() != id,
        "a new binlog connection: {again}"
    );
    let status = worker.status("mysql").await.unwrap();
    assert_eq!(status.tasks[0].state, strom_connect_runtime::State::Running);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_move_the_stored_position_while_only_other_tables_change() {
    let Some(s) = setup().await else { return };
    s.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.events (id INT PRIMARY KEY, n INT);
         CREATE TABLE shop.other (id INT PRIMARY KEY);
         INSERT INTO shop.events VALUES (1, 0);",
    );
    let worker = s.worker().await;
    let config = s.cdc_config("shop.events", &[("heartbeat.interval.ms", "1")]);
    worker.add_connector("mysql", config.clone()).await.unwrap();
    wait_for_records(&s.client, "app.shop.events", 1, Some(&worker)).await;
    for i in 0..20 {
        s.sql(&format!("INSERT INTO shop.other VALUES ({i});"));
    }
    let beats = wait_for_records(&s.client, "__debezium-heartbeat.app", 1, Some(&worker)).await;
    assert_eq!(beats[0].0, serde_json::json!({"serverName": "app"}));
    assert!(beats[0].1["ts_ms"].as_i64().unwrap() > 0);
    worker.shutdown().await;
    // Resumed from the heartbeat's position: the change after it, and nothing before.
    s.sql("INSERT INTO shop.events VALUES (2, 0);");
    let worker = s.worker().await;
    worker.add_connector("mysql", config).await.unwrap();
    let all = wait_for_records(&s.client, "app.shop.events", 2, Some(&worker)).await;
    assert_eq!(inserted_ids(&all), [1, 2]);
    worker.shutdown().await;
}
