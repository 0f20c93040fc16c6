//! Change capture from Oracle's MySQL (8.4, GTIDs on) in Docker, where a Docker daemon
//! runs: the server-specific paths (FLUSH TABLES WITH READ LOCK for the snapshot,
//! `SHOW BINARY LOG STATUS`, GTID events) that MariaDB does not take.

use std::process::Command;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde_json::{json, Value as Json};
use strom_broker::{Broker, BrokerConfig};
use strom_client::ClientConfig;
use strom_connect_runtime::{Worker, WorkerConfig};

use crate::support::{cdc_config, plugins, wait_for_records};

/// A free port on 127.0.0.1 (free when asked; the container binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A container removed when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_in_docker_snapshot_and_binlog_with_gtids() {
    let daemon = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    if !daemon.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!(
            "skipping: no Docker daemon answers `docker info`, so MySQL's image cannot run here"
        );
        return;
    }
    let port = free_port();
    let started = Command::new("docker")
        .args([
            "run",
            "-d",
            "--rm",
            "-p",
            &format!("127.0.0.1:{port}:3306"),
            "-e",
            "MYSQL_ROOT_PASSWORD=secret",
            "mysql:8.4",
            "--binlog-row-metadata=FULL",
            "--gtid-mode=ON",
            "--enforce-gtid-consistency=ON",
        ])
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "docker run failed: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    let container = Container(String::from_utf8_lossy(&started.stdout).trim().to_owned());
    let url = format!("mysql://root:secret@127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut conn = loop {
        match mysql_async::Conn::from_url(url.as_str()).await {
            Ok(conn) => break conn,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "MySQL in container {} did not come up: {e}",
                    container.0
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    for sql in [
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40), qty INT UNSIGNED, at DATETIME(3))",
        "INSERT INTO shop.orders VALUES (1, 'apple', 3, '2024-01-02 03:04:05.678'), (2, 'pear', NULL, NULL)",
    ] {
        conn.query_drop(sql).await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig::new(dir.path().join("broker")))
        .await
        .unwrap();
    let client = ClientConfig::new().bootstrap(&broker.bootstrap());
    let worker = Worker::start(
        WorkerConfig::new(client.clone())
            .set("offset.flush.interval.ms", "50")
            .set("offset.storage.partitions", "1"),
        plugins(),
    )
    .await
    .unwrap();
    let port = port.to_string();
    let server = [
        ("database.port", port.as_str()),
        ("database.user", "root"),
        ("database.password", "secret"),
    ];
    let config = cdc_config(&broker.bootstrap(), &server, "shop.orders");
    worker.add_connector("mysql", config).await.unwrap();
    let topic = "app.shop.orders";
    let snapshot = wait_for_records(&client, topic, 2, Some(&worker)).await;
    assert_eq!(snapshot[0].1["op"], "r");
    assert_eq!(
        snapshot[0].1["after"],
        json!({"id": 1, "item": "apple", "qty": 3, "at": 1_704_164_645_678_i64})
    );
    for sql in [
        "INSERT INTO shop.orders VALUES (3, 'fig', 4294967295, NULL)",
        "UPDATE shop.orders SET qty = 5 WHERE id = 2",
        "DELETE FROM shop.orders WHERE id = 1",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    let all = wait_for_records(&client, topic, 6, Some(&worker)).await;
    let ops: Vec<&str> = all[2..]
        .iter()
        .map(|(_, v)| v["op"].as_str().unwrap_or("tombstone"))
        .collect();
    assert_eq!(ops, ["c", "u", "d", "tombstone"]);
    assert_eq!(all[2].1["after"]["qty"], json!(4_294_967_295_u64));
    // Each change names its transaction's GTID (server uuid:number).
    let gtid = all[2].1["source"]["gtid"].as_str().unwrap_or_default();
    assert!(gtid.contains(':'), "{}", all[2].1["source"]);
    assert_ne!(all[3].1["source"]["gtid"], all[2].1["source"]["gtid"]);
    assert_eq!(all[4].1["before"]["id"], Json::from(1));
    worker.shutdown().await;
    conn.disconnect().await.unwrap();
}
