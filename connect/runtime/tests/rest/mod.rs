//! Kafka Connect's REST API on a standalone worker, spoken over plain HTTP/1.1.

use std::sync::Arc;

use serde_json::json;
use strom_broker::{Broker, BrokerConfig};
use strom_client::ClientConfig;
use strom_connect_runtime::{Plugins, Worker, WorkerConfig};

use crate::support::{http, topic_size, wait_for_size};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_api_manages_connectors_as_kafka_connects_does() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig::new(dir.path().join("broker")))
        .await
        .unwrap();
    let client = ClientConfig::new().bootstrap(&broker.bootstrap());
    let config = WorkerConfig::new(client.clone())
        .set("offset.flush.interval.ms", "50")
        .set("offset.storage.partitions", "1");
    let worker = Arc::new(Worker::start(config, Plugins::builtin()).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(strom_connect_runtime::rest::serve(worker.clone(), listener));

    let (code, root) = http(addr, "GET", "/", None).await;
    assert_eq!(code, 200);
    assert!(root["version"].is_string());
    let (code, plugins) = http(addr, "GET", "/connector-plugins", None).await;
    assert_eq!(code, 200);
    assert!(plugins.as_array().unwrap().contains(&json!({
        "class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "type": "source",
        "version": env!("CARGO_PKG_VERSION"),
    })));

    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\nb\n").unwrap();
    let source = json!({
        "connector.class": "FileStreamSource",
        "file": input.to_str().unwrap(),
        "topic": "lines",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
    });
    let (code, created) = http(
        addr,
        "POST",
        "/connectors",
        Some(json!({"name": "src", "config": source})),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["tasks"], json!([{"connector": "src", "task": 0}]));
    assert_eq!(created["type"], "source");
    assert_eq!(created["config"]["name"], "src");
    wait_for_size(&client, "lines", 2).await;

    // Conflicts and bad configs are Kafka Connect's error bodies.
    let (code, error) = http(
        addr,
        "POST",
        "/connectors",
        Some(json!({"name": "src", "config": source})),
    )
    .await;
    assert_eq!((code, error["error_code"].clone()), (409, json!(409)));
    let (code, error) = http(
        addr,
        "POST",
        "/connectors",
        Some(json!({"name": "bad", "config": {"connector.class": "FileStreamSource"}})),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("needs file, topic"),
        "{error}"
    );
    let (code, error) = http(addr, "GET", "/connectors/nope/status", None).await;
    assert_eq!((code, error["error_code"].clone()), (404, json!(404)));

    let (_, names) = http(addr, "GET", "/connectors", None).await;
    assert_eq!(names, json!(["src"]));
    let (_, expanded) = http(addr, "GET", "/connectors?expand=status&expand=info", None).await;
    assert_eq!(expanded["src"]["status"]["connector"]["state"], "RUNNING");
    let (code, status) = http(addr, "GET", "/connectors/src/status", None).await;
    assert_eq!(code, 200);
    assert_eq!(status["tasks"][0]["state"], "RUNNING");
    assert_eq!(status["tasks"][0]["id"], 0);
    let (code, task) = http(addr, "GET", "/connectors/src/tasks/0/status", None).await;
    assert_eq!((code, task["state"].clone()), (200, json!("RUNNING")));
    let (code, _) = http(addr, "GET", "/connectors/src/tasks/7/status", None).await;
    assert_eq!(code, 404);

    // Paused, it reads nothing; resumed, it goes on from its offset.
    let (code, _) = http(addr, "PUT", "/connectors/src/pause", None).await;
    assert_eq!(code, 202);
    let (_, status) = http(addr, "GET", "/connectors/src/status", None).await;
    assert_eq!(status["connector"]["state"], "PAUSED");
    assert_eq!(status["tasks"][0]["state"], "PAUSED");
    std::fs::write(&input, "a\nb\nc\n").unwrap();
    let (code, _) = http(addr, "PUT", "/connectors/src/resume", None).await;
    assert_eq!(code, 202);
    wait_for_size(&client, "lines", 3).await;

    // A new config restarts it.
    let mut changed = source.clone();
    changed["batch.size"] = json!("1");
    let (code, info) = http(addr, "PUT", "/connectors/src/config", Some(changed)).await;
    assert_eq!(code, 200, "{info}");
    let (_, config) = http(addr, "GET", "/connectors/src/config", None).await;
    assert_eq!(config["batch.size"], "1");
    let (_, tasks) = http(addr, "GET", "/connectors/src/tasks", None).await;
    assert_eq!(tasks[0]["id"], json!({"connector": "src", "task": 0}));
    assert_eq!(tasks[0]["config"]["batch.size"], "1");
    let (code, _) = http(addr, "POST", "/connectors/src/restart", None).await;
    assert_eq!(code, 204);
    let (code, _) = http(addr, "DELETE", "/connectors/src", None).await;
    assert_eq!(code, 204);
    let (code, _) = http(addr, "GET", "/connectors/src", None).await;
    assert_eq!(code, 404);
    assert_eq!(topic_size(&client, "lines").await, 3);

    server.abort();
    broker.shutdown().await.unwrap();
}
