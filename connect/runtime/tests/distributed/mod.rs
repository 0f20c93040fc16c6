//! Distributed mode: workers in a group share a connector's tasks, hand them over when
//! one leaves (nothing lost or repeated) or is killed (nothing lost), and any worker
//! manages the cluster's connectors.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value as Json};
use strom_connect_api::{
    ConfigKey, ConfigMap, ConnectError, OffsetMap, SourceConnector, SourceRecord, SourceTask,
    SourceTaskContext, Value,
};
use strom_connect_runtime::{
    ConnectorStatus, DistributedWorker, Herder, Plugins, RuntimeError, State, WorkerConfig,
};

use crate::support::{all_values, broker_with_topic, http, topic_size, wait_for_size};

/// A source whose task `n` writes `n:0`, `n:1`, ... up to `count` records, resuming
/// after the last stored sequence number.
#[derive(Default)]
struct Counter {
    config: ConfigMap,
}

#[async_trait]
impl SourceConnector for Counter {
    fn version(&self) -> &str {
        "1"
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        let key = |name| ConfigKey {
            name,
            required: true,
            default: None,
            doc: "",
        };
        vec![key("topic"), key("count")]
    }

    async fn start(&mut self, config: ConfigMap) -> Result<(), ConnectError> {
        self.config = config;
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        Ok((0..max_tasks)
            .map(|n| {
                let mut config = self.config.clone();
                config.insert("task".to_owned(), n.to_string());
                config
            })
            .collect())
    }

    fn task(&self) -> Box<dyn SourceTask> {
        Box::<CounterTask>::default()
    }

    async fn stop(&mut self) {}
}

#[derive(Default)]
struct CounterTask {
    topic: String,
    task: String,
    next: u64,
    count: u64,
}

impl CounterTask {
    fn partition(&self) -> OffsetMap {
        let mut partition = OffsetMap::new();
        partition.insert("task".to_owned(), json!(self.task));
        partition
    }
}

#[async_trait]
impl SourceTask for CounterTask {
    async fn start(
        &mut self,
        config: ConfigMap,
        context: SourceTaskContext,
    ) -> Result<(), ConnectError> {
        self.topic = config["topic"].clone();
        self.task = config["task"].clone();
        self.count = config["count"].parse().unwrap();
        self.next = context
            .offsets
            .offset(&self.partition())
            .and_then(|o| o.get("seq").and_then(Json::as_u64))
            .map_or(0, |seq| seq + 1);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        // A source that takes its time, like a real one.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let end = (self.next + 20).min(self.count);
        let records = (self.next..end)
            .map(|seq| {
                let mut offset = OffsetMap::new();
                offset.insert("seq".to_owned(), json!(seq));
                let value = Value::String(format!("{}:{seq}", self.task));
                SourceRecord::new(self.partition(), offset, &self.topic, value)
            })
            .collect();
        self.next = end;
        Ok(records)
    }

    async fn stop(&mut self) {}
}

fn plugins() -> Plugins {
    let mut plugins = Plugins::builtin();
    plugins.add_source("test.Counter", &["Counter"], || Box::<Counter>::default());
    plugins
}

/// Waits until connector `name`'s status on `worker` satisfies `done`.
async fn wait_status(
    worker: &DistributedWorker,
    name: &str,
    what: &str,
    done: impl Fn(&ConnectorStatus) -> bool,
) -> ConnectorStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = worker.status(name).await;
        if let Ok(status) = &status {
            if done(status) {
                return status.clone();
            }
        }
        assert!(Instant::now() < deadline, "{what}: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_in(status: &ConnectorStatus, state: &State) -> bool {
    status.state == *state && status.tasks.iter().all(|t| t.state == *state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_tasks_and_hand_them_over_when_one_leaves() {
    let (_dir, _broker, client) = broker_with_topic("counts", 2).await;
    let config = WorkerConfig::new(client.clone())
        .set("group.id", "cluster")
        .set("offset.flush.interval.ms", "50")
        .set("offset.storage.partitions", "3")
        .set("slots.storage.partitions", "8");
    let one = DistributedWorker::start(config.clone(), plugins(), "one")
        .await
        .unwrap();
    let two = DistributedWorker::start(config.clone(), plugins(), "two")
        .await
        .unwrap();
    // A worker without group.id is refused.
    let lone = WorkerConfig::new(client.clone());
    assert!(matches!(
        DistributedWorker::start(lone, plugins(), "lone").await,
        Err(RuntimeError::Config(m)) if m.contains("group.id")
    ));

    // Created through one worker's REST API...
    let one = Arc::new(one);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(strom_connect_runtime::rest::serve(one.clone(), listener));
    let counter = json!({
        "connector.class": "Counter",
        "tasks.max": "4",
        "topic": "counts",
        "count": "4000",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
    });
    let (code, body) = http(
        addr,
        "POST",
        "/connectors",
        Some(json!({"name": "counter", "config": counter})),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, _) = http(
        addr,
        "POST",
        "/connectors",
        Some(json!({"name": "counter", "config": counter})),
    )
    .await;
    assert_eq!(code, 409, "created twice");
    let (code, body) = http(
        addr,
        "POST",
        "/connectors",
        Some(json!({"name": "bad", "config": {"connector.class": "Counter"}})),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        body["message"].as_str().unwrap().contains("topic"),
        "{body}"
    );

    // ...seen on the other, its tasks spread over both workers.
    let status = wait_status(&two, "counter", "all running", |s| {
        s.tasks.len() == 4 && all_in(s, &State::Running)
    })
    .await;
    let on: BTreeSet<&str> = status.tasks.iter().map(|t| t.worker_id.as_str()).collect();
    assert_eq!(on, BTreeSet::from(["one", "two"]), "{status:?}");
    let (code, body) = http(addr, "GET", "/connectors/counter/status", None).await;
    assert_eq!(code, 200);
    assert_eq!(body["tasks"].as_array().unwrap().len(), 4, "{body}");
    let (_, tasks) = http(addr, "GET", "/connectors/counter/tasks", None).await;
    assert_eq!(tasks[3]["config"]["task"], "3", "{tasks}");

    // One worker leaves in the middle: the other takes its tasks from their offsets.
    let deadline = Instant::now() + Duration::from_secs(60);
    while topic_size(&client, "counts").await < 2000 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.abort();
    let _ = server.await;
    one.shutdown().await;
    wait_status(&two, "counter", "all on two", |s| {
        all_in(s, &State::Running)
            && s.worker_id == "two"
            && s.tasks.iter().all(|t| t.worker_id == "two")
    })
    .await;
    // Every record once: a clean handover flushes offsets before the tasks move.
    wait_for_size(&client, "counts", 16_000).await;
    let values = all_values(&client, "counts").await;
    let distinct: BTreeSet<&String> = values.iter().collect();
    assert_eq!(distinct.len(), 16_000);

    // Pause, resume, restart and delete through the remaining worker.
    two.pause("counter").await.unwrap();
    wait_status(&two, "counter", "paused", |s| all_in(s, &State::Paused)).await;
    two.resume("counter").await.unwrap();
    wait_status(&two, "counter", "resumed", |s| all_in(s, &State::Running)).await;
    two.restart("counter").await.unwrap();
    wait_status(&two, "counter", "restarted", |s| all_in(s, &State::Running)).await;
    // A new configuration makes new task configurations.
    let mut fewer: ConfigMap = two.config("counter").await.unwrap();
    fewer.insert("tasks.max".to_owned(), "2".to_owned());
    assert!(!two.put_config("counter", fewer).await.unwrap());
    wait_status(&two, "counter", "two tasks", |s| {
        s.tasks.len() == 2 && all_in(s, &State::Running)
    })
    .await;
    two.remove_connector("counter").await.unwrap();
    assert!(two.connectors().await.is_empty());
    assert!(matches!(
        two.status("counter").await,
        Err(RuntimeError::UnknownConnector(_))
    ));
    assert!(matches!(
        two.pause("counter").await,
        Err(RuntimeError::UnknownConnector(_))
    ));
    two.shutdown().await;

    // A worker that joins later reads the configs from the topic.
    let three = DistributedWorker::start(config, plugins(), "three")
        .await
        .unwrap();
    assert!(three.connectors().await.is_empty());
    three.shutdown().await;
}

/// A `strom connect distributed` process and its REST address.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_worker(properties: &std::path::Path) -> Process {
    let mut child = Command::new(strom_testkit::strom_bin())
        .args(["connect", "distributed", "--config"])
        .arg(properties)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some((_, addr)) = line.split_once("REST API on http://") {
                let _ = tx.send(addr.to_owned());
                break;
            }
        }
        // Keep the pipe drained.
        for _ in lines {}
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the worker did not start")
        .parse()
        .unwrap();
    Process { child, addr }
}

async fn status_of(addr: SocketAddr) -> Json {
    http(addr, "GET", "/connectors/file/status", None).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_task_moves_to_the_survivor_and_loses_nothing() {
    let (dir, broker, client) = broker_with_topic("lines", 1).await;
    let input = dir.path().join("input.txt");
    let lines =
        |range: std::ops::Range<u32>| -> String { range.map(|i| format!("line-{i}\n")).collect() };
    std::fs::write(&input, lines(0..200)).unwrap();
    let properties = dir.path().join("worker.properties");
    std::fs::write(
        &properties,
        format!(
            "bootstrap.servers={}\ngroup.id=files\nlisteners=http://127.0.0.1:0\n\
             offset.flush.interval.ms=100\noffset.storage.partitions=1\n\
             slots.storage.partitions=4\nsession.timeout.ms=6000\nheartbeat.interval.ms=500\n\
             value.converter=org.apache.kafka.connect.storage.StringConverter\n",
            broker.bootstrap()
        ),
    )
    .unwrap();
    let mut workers = vec![spawn_worker(&properties), spawn_worker(&properties)];
    let config = json!({
        "connector.class": "FileStreamSource",
        "file": input.to_str().unwrap(),
        "topic": "lines",
    });
    let (code, body) = http(
        workers[0].addr,
        "PUT",
        "/connectors/file/config",
        Some(config),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    wait_for_size(&client, "lines", 200).await;
    // The worker running the task, as the other worker's API reports it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let runner = loop {
        let status = status_of(workers[1].addr).await;
        if status["tasks"][0]["state"] == "RUNNING" {
            break status["tasks"][0]["worker_id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let killed = workers
        .iter()
        .position(|w| w.addr.to_string() == runner)
        .unwrap_or_else(|| panic!("no worker {runner}"));
    let mut dead = workers.remove(killed);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let survivor = &workers[0];
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap()
        .write_all(lines(200..400).as_bytes())
        .unwrap();
    // After the session timeout the survivor owns the task and reads on.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = status_of(survivor.addr).await;
        let task = &status["tasks"][0];
        if task["state"] == "RUNNING" && task["worker_id"] == survivor.addr.to_string() {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let values = all_values(&client, "lines").await;
        let distinct: BTreeSet<&str> = values.iter().map(String::as_str).collect();
        if distinct.len() == 400 {
            // At least once: lines sent after the dead worker's last offset flush are
            // read again, never more than it had sent.
            assert!(values.len() - 400 <= 200, "{} records", values.len());
            assert!((0..400).all(|i| distinct.contains(format!("line-{i}").as_str())));
            break;
        }
        assert!(Instant::now() < deadline, "{} lines of 400", distinct.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
