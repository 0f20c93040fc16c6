//! What a connector says when it cannot capture changes: a wrong password, a missing
//! table, the binlog off, a purged position; the worker keeps running the others.

use std::time::{Duration, Instant};

use strom_connect_runtime::{State, Worker};
use strom_testkit::MariaDb;

use crate::support::{setup, wait_for_records};

/// Waits for `name`'s task to fail and returns the error.
async fn failure(worker: &Worker, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = worker.status(name).await.unwrap();
        if let Some(State::Failed(e)) = status.tasks.first().map(|t| t.state.clone()) {
            return e;
        }
        assert!(Instant::now() < deadline, "{name} did not fail: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET path` from the worker's REST API, as JSON.
async fn rest_get(worker: &std::sync::Arc<Worker>, path: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(strom_connect_runtime::rest::serve(worker.clone(), listener));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    server.abort();
    let _ = server.await;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

async fn running(worker: &Worker, name: &str) -> bool {
    let status = worker.status(name).await.unwrap();
    status.state == State::Running && status.tasks.iter().all(|t| t.state == State::Running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_fail_the_connector_with_a_clear_error_and_others_keep_running() {
    let Some(s) = setup().await else { return };
    s.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.a (id INT PRIMARY KEY);
         INSERT INTO shop.a VALUES (1);",
    );
    let worker = s.worker().await;
    worker
        .add_connector("mysql", s.cdc_config("shop.a", &[]))
        .await
        .unwrap();
    wait_for_records(&s.client, "app.shop.a", 1, Some(&worker)).await;

    let bad = [
        (
            "password",
            s.cdc_config(
                "shop.a",
                &[("database.password", "wrong"), ("topic.prefix", "p1")],
            ),
        ),
        (
            "missing",
            s.cdc_config("shop.a,shop.nope", &[("topic.prefix", "p2")]),
        ),
        (
            "port",
            s.cdc_config("shop.a", &[("database.port", "1"), ("topic.prefix", "p3")]),
        ),
    ];
    for (name, config) in bad {
        worker.add_connector(name, config).await.unwrap();
    }
    let e = failure(&worker, "password").await;
    assert!(e.contains("Access denied") && e.contains("as strom"), "{e}");
    let worker = std::sync::Arc::new(worker);
    let status = rest_get(&worker, "/connectors/password/status").await;
    assert_eq!(status["tasks"][0]["state"], "FAILED", "{status}");
    let trace = status["tasks"][0]["trace"].as_str().unwrap_or_default();
    assert!(trace.contains("Access denied"), "{status}");
    let e = failure(&worker, "missing").await;
    assert!(
        e.contains("shop.nope") && e.contains("does not exist"),
        "{e}"
    );
    let e = failure(&worker, "port").await;
    assert!(e.contains("cannot connect to MySQL at 127.0.0.1:1"), "{e}");

    // The binlog off: a server of its own without one.
    let Some(plain) = MariaDb::start_with(false).unwrap() else {
        return;
    };
    plain
        .root_sql("CREATE DATABASE shop; CREATE TABLE shop.a (id INT PRIMARY KEY);")
        .unwrap();
    let port = plain.port().to_string();
    let config = s.cdc_config(
        "shop.a",
        &[("database.port", port.as_str()), ("topic.prefix", "p4")],
    );
    worker.add_connector("nobinlog", config).await.unwrap();
    let e = failure(&worker, "nobinlog").await;
    assert!(
        e.contains("binary log is off") && e.contains("log_bin=OFF"),
        "{e}"
    );

    // The healthy connector still captures.
    assert!(running(&worker, "mysql").await);
    s.sql("INSERT INTO shop.a VALUES (2);");
    wait_for_records(&s.client, "app.shop.a", 2, Some(&worker)).await;

    // Its position purged while it is stopped: restarting says so.
    worker.pause("mysql").await.unwrap();
    s.sql(
        "INSERT INTO shop.a VALUES (3);
         FLUSH BINARY LOGS; FLUSH BINARY LOGS;",
    );
    let last = s.sql("SHOW MASTER STATUS");
    let last = last.split('\t').next().unwrap();
    // The server keeps a file a replica still reads; the paused reader's connection
    // goes away once the server notices.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        s.sql(&format!("PURGE BINARY LOGS TO '{last}';"));
        if !s.sql("SHOW BINARY LOGS").contains("binlog.000001") {
            break;
        }
        assert!(Instant::now() < deadline, "binlog.000001 is never purged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.resume("mysql").await.unwrap();
    let e = failure(&worker, "mysql").await;
    assert!(e.contains("purged") && e.contains("binlog.000001"), "{e}");
    // The REST API shows the same error.
    let status = worker.status("mysql").await.unwrap();
    assert_eq!(status.tasks[0].state.name(), "FAILED");
    worker.shutdown().await;
}
