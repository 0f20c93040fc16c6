//! Helpers the tests share.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic, OffsetSpec};
use strom_client::ClientConfig;

/// Records in `topic` (0 while it does not exist).
pub async fn topic_size(client: &ClientConfig, topic: &str) -> i64 {
    let admin = Admin::connect(client.clone()).await.unwrap();
    match admin.list_offsets(topic, OffsetSpec::Latest).await {
        Ok(ends) => ends.values().map(|o| o.offset).sum(),
        Err(_) => 0,
    }
}

/// Waits until `topic` holds `n` records (it may not exist yet).
pub async fn wait_for_size(client: &ClientConfig, topic: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let size = topic_size(client, topic).await;
        assert!(size <= n, "{topic} has {size} records, more than {n}");
        if size == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} has {size} of {n} records"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One request; the status and the JSON body (null when empty).
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let status: u16 = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    (status, json)
}

/// Every value in `topic` now, partition by partition in offset order.
pub async fn all_values(client: &ClientConfig, topic: &str) -> Vec<String> {
    let admin = Admin::connect(client.clone()).await.unwrap();
    let ends = admin.list_offsets(topic, OffsetSpec::Latest).await.unwrap();
    let consumer = strom_client::Consumer::new(client.clone()).await.unwrap();
    let partitions: Vec<(String, i32)> = ends.keys().map(|p| (topic.to_owned(), *p)).collect();
    consumer.assign(&partitions).unwrap();
    consumer.seek_to_beginning(&partitions).unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut done = true;
        for (p, end) in &ends {
            done &= consumer.position(topic, *p).await.unwrap() >= end.offset;
        }
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    consumer.close();
    values
}

/// A broker in a temporary directory, a client of it, and `topic` made with
/// `partitions`.
pub async fn broker_with_topic(
    topic: &str,
    partitions: i32,
) -> (tempfile::TempDir, Broker, ClientConfig) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig::new(dir.path().join("broker")))
        .await
        .unwrap();
    let client = ClientConfig::new().bootstrap(&broker.bootstrap());
    let admin = Admin::connect(client.clone()).await.unwrap();
    admin
        .create_topic(NewTopic::new(topic).partitions(partitions))
        .await
        .unwrap();
    (dir, broker, client)
}
