//! A standalone worker on the embedded broker: the file source writes a file's lines to
//! a topic, stores its position only once they are acknowledged, and resumes from it.

use std::io::Write;
use std::time::{Duration, Instant};

use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, OffsetSpec};
use strom_client::consumer::Consumer;
use strom_client::ClientConfig;
use strom_connect_api::ConfigMap;
use strom_connect_runtime::{Plugins, RuntimeError, State, Worker, WorkerConfig};

use crate::support::{all_values, broker_with_topic, topic_size, wait_for_size};

fn lines(range: std::ops::Range<u32>) -> String {
    range.map(|i| format!("line-{i}\n")).collect()
}

fn file_source(path: &std::path::Path) -> ConfigMap {
    [
        ("connector.class", "FileStreamSource"),
        ("file", path.to_str().unwrap()),
        ("topic", "lines"),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_source_resumes_from_its_stored_position() {
    let (dir, broker, client) = broker_with_topic("lines", 1).await;
    let path = dir.path().join("input.txt");
    std::fs::write(&path, lines(0..100)).unwrap();
    let config = WorkerConfig::new(client.clone())
        .set("offset.flush.interval.ms", "50")
        .set("offset.storage.partitions", "3");

    let worker = Worker::start(config.clone(), Plugins::builtin())
        .await
        .unwrap();
    worker
        .add_connector("file-source", file_source(&path))
        .await
        .unwrap();
    wait_for_size(&client, "lines", 100).await;
    // The file is followed as it grows; a line without its newline waits for it.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(b"line-100\nline-1").unwrap();
    wait_for_size(&client, "lines", 101).await;
    let status = worker.status("file-source").await.unwrap();
    assert_eq!(
        status.class,
        "org.apache.kafka.connect.file.FileStreamSourceConnector"
    );
    assert_eq!(status.tasks[0].state, State::Running);
    worker.shutdown().await;

    // Written while no worker ran; a new worker goes on from the stored position.
    file.write_all(format!("01\n{}", lines(102..150)).as_bytes())
        .unwrap();
    let worker = Worker::start(config, Plugins::builtin()).await.unwrap();
    worker
        .add_connector("file-source", file_source(&path))
        .await
        .unwrap();
    wait_for_size(&client, "lines", 150).await;
    let expected: Vec<String> = (0..150).map(|i| format!("line-{i}")).collect();
    assert_eq!(all_values(&client, "lines").await, expected);

    // Offsets are in Kafka Connect's format.
    let consumer = Consumer::new(client.clone()).await.unwrap();
    let admin = Admin::connect(client.clone()).await.unwrap();
    let admin_ends = admin
        .list_offsets("connect-offsets", OffsetSpec::Latest)
        .await
        .unwrap();
    let partitions: Vec<(String, i32)> = admin_ends
        .keys()
        .map(|p| ("connect-offsets".to_owned(), *p))
        .collect();
    consumer.assign(&partitions).unwrap();
    consumer.seek_to_beginning(&partitions).unwrap();
    let key = format!(
        "[\"file-source\",{{\"filename\":{}}}]",
        serde_json::Value::String(path.to_str().unwrap().to_owned())
    );
    let size = std::fs::metadata(&path).unwrap().len();
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while last != Some(format!("{{\"position\":{size}}}")) {
        assert!(
            Instant::now() < deadline,
            "last stored offset {last:?}, file size {size}"
        );
        for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            if r.key.as_deref() == Some(key.as_bytes()) {
                last = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
            }
        }
    }
    consumer.close();
    worker.shutdown().await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connector_configs_are_refused_with_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig::new(dir.path())).await.unwrap();
    let client = ClientConfig::new().bootstrap(&broker.bootstrap());
    let config = WorkerConfig::new(client).set("offset.storage.partitions", "1");
    let worker = Worker::start(config.clone(), Plugins::builtin())
        .await
        .unwrap();
    let mut file = file_source(std::path::Path::new("/nonexistent"));
    file.remove("topic");
    let err = worker.add_connector("a", file.clone()).await.unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Config(m) if m.contains("needs topic")),
        "{err}"
    );
    file.insert("topic".into(), "x".into());
    file.insert("connector.class".into(), "com.example.Nope".into());
    let err = worker.add_connector("a", file.clone()).await.unwrap_err();
    assert!(err.to_string().contains("com.example.Nope"), "{err}");
    file.insert("connector.class".into(), "FileStreamSource".into());
    file.insert("value.converter".into(), "Avro".into());
    let err = worker.add_connector("a", file.clone()).await.unwrap_err();
    assert!(err.to_string().contains("unknown converter Avro"), "{err}");
    file.remove("value.converter");
    worker.add_connector("a", file.clone()).await.unwrap();
    let err = worker.add_connector("a", file).await.unwrap_err();
    assert!(matches!(err, RuntimeError::ConnectorExists(_)), "{err}");
    assert!(matches!(
        worker.status("b").await,
        Err(RuntimeError::UnknownConnector(_))
    ));
    let bad = Worker::start(
        config.set("offset.flush.interval.ms", "soon"),
        Plugins::builtin(),
    )
    .await;
    let err = bad.err().unwrap();
    assert!(
        err.to_string().contains("offset.flush.interval.ms"),
        "{err}"
    );
    worker.shutdown().await;
    broker.shutdown().await.unwrap();
}

/// Waits until `path` holds `n` lines.
async fn wait_for_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        assert!(lines.len() <= n, "{} lines, more than {n}", lines.len());
        if lines.len() == n {
            return lines;
        }
        assert!(Instant::now() < deadline, "{} of {n} lines", lines.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_copies_through_a_topic_with_json_schemas_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker_config = BrokerConfig::new(dir.path().join("broker"));
    broker_config.group_initial_rebalance_delay = Duration::ZERO;
    let broker = Broker::start(broker_config).await.unwrap();
    let client = ClientConfig::new().bootstrap(&broker.bootstrap());
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    std::fs::write(&input, lines(0..40)).unwrap();
    let config = WorkerConfig::new(client.clone())
        .set("offset.flush.interval.ms", "50")
        .set("offset.storage.partitions", "1");
    let mut source = file_source(&input);
    // The worker's default converter: JSON with schemas.
    source.remove("value.converter");
    let sink: ConfigMap = [
        (
            "connector.class",
            "org.apache.kafka.connect.file.FileStreamSinkConnector",
        ),
        ("file", output.to_str().unwrap()),
        ("topics", "lines"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();

    let worker = Worker::start(config.clone(), Plugins::builtin())
        .await
        .unwrap();
    worker
        .add_connector("source", source.clone())
        .await
        .unwrap();
    wait_for_size(&client, "lines", 40).await;
    let first = all_values(&client, "lines").await;
    assert_eq!(
        first[0],
        r#"{"schema":{"type":"string","optional":false},"payload":"line-0"}"#
    );
    worker.add_connector("sink", sink.clone()).await.unwrap();
    let copied = wait_for_lines(&output, 40).await;
    assert_eq!(copied[39], "line-39");
    assert_eq!(
        worker.status("sink").await.unwrap().tasks[0].state,
        State::Running
    );
    worker.shutdown().await;

    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap()
        .write_all(lines(40..60).as_bytes())
        .unwrap();
    let worker = Worker::start(config, Plugins::builtin()).await.unwrap();
    worker.add_connector("sink", sink).await.unwrap();
    worker.add_connector("source", source).await.unwrap();
    let copied = wait_for_lines(&output, 60).await;
    let expected: Vec<String> = (0..60).map(|i| format!("line-{i}")).collect();
    assert_eq!(copied, expected);
    worker.shutdown().await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_route_and_filter_records_and_filtered_offsets_still_advance() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig::new(dir.path().join("broker")))
        .await
        .unwrap();
    let client = ClientConfig::new().bootstrap(&broker.bootstrap());
    let path = dir.path().join("input.txt");
    std::fs::write(&path, lines(0..3)).unwrap();
    let config = WorkerConfig::new(client.clone())
        .set("offset.flush.interval.ms", "20")
        .set("offset.storage.partitions", "1");
    let worker = Worker::start(config.clone(), Plugins::builtin())
        .await
        .unwrap();
    let mut routed = file_source(&path);
    routed.extend([
        ("transforms".to_owned(), "route".to_owned()),
        (
            "transforms.route.type".to_owned(),
            "org.apache.kafka.connect.transforms.RegexRouter".to_owned(),
        ),
        ("transforms.route.regex".to_owned(), "li(ne)s".to_owned()),
        (
            "transforms.route.replacement".to_owned(),
            "routed-$1".to_owned(),
        ),
    ]);
    worker.add_connector("routed", routed).await.unwrap();
    wait_for_size(&client, "routed-ne", 3).await;
    assert_eq!(
        all_values(&client, "routed-ne").await,
        ["line-0", "line-1", "line-2"]
    );

    // Everything filtered: nothing written, but the position still advances, so a
    // restart does not read the lines again.
    let mut dropped = file_source(&path);
    dropped.extend([
        ("transforms".to_owned(), "none".to_owned()),
        (
            "transforms.none.type".to_owned(),
            "org.apache.kafka.connect.transforms.Filter".to_owned(),
        ),
    ]);
    worker.add_connector("dropped", dropped).await.unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(20);
    let partition: strom_connect_api::OffsetMap =
        serde_json::from_value(serde_json::json!({"filename": path.to_str().unwrap()})).unwrap();
    let offsets = strom_connect_runtime::OffsetStore::open(&client, "connect-offsets", 1)
        .await
        .unwrap();
    let mut stored = offsets.get("dropped", &partition);
    while stored
        .as_ref()
        .and_then(|o| o.get("position"))
        .and_then(|p| p.as_u64())
        != Some(size)
    {
        assert!(Instant::now() < deadline, "stored {stored:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let reopened = strom_connect_runtime::OffsetStore::open(&client, "connect-offsets", 1)
            .await
            .unwrap();
        stored = reopened.get("dropped", &partition);
    }
    assert_eq!(topic_size(&client, "lines").await, 0);

    // A bad transform is refused when the connector is added.
    let mut bad = file_source(&path);
    bad.insert("transforms".to_owned(), "x".to_owned());
    let err = worker.add_connector("bad", bad).await.unwrap_err();
    assert!(err.to_string().contains("transforms.x.type"), "{err}");
    worker.shutdown().await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_sends_what_it_cannot_read_to_its_dead_letter_topic() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker_config = BrokerConfig::new(dir.path().join("broker"));
    broker_config.group_initial_rebalance_delay = Duration::ZERO;
    let broker = Broker::start(broker_config).await.unwrap();
    let client = ClientConfig::new().bootstrap(&broker.bootstrap());
    let producer = strom_client::producer::Producer::new(client.clone())
        .await
        .unwrap();
    for value in [r#""first""#, "{not json", r#""third""#] {
        producer
            .send(strom_client::producer::Record::new("events").value(value.to_owned()))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let output = dir.path().join("out.txt");
    let sink: ConfigMap = [
        ("connector.class", "FileStreamSink"),
        ("file", output.to_str().unwrap()),
        ("topics", "events"),
        (
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("value.converter.schemas.enable", "false"),
        ("errors.tolerance", "all"),
        ("errors.deadletterqueue.topic.name", "events-dlq"),
        ("errors.deadletterqueue.context.headers.enable", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = WorkerConfig::new(client.clone())
        .set("offset.flush.interval.ms", "50")
        .set("offset.storage.partitions", "1");
    let worker = Worker::start(config, Plugins::builtin()).await.unwrap();
    // A dead-letter topic needs errors.tolerance=all.
    let mut strict = sink.clone();
    strict.insert("errors.tolerance".to_owned(), "none".to_owned());
    let err = worker.add_connector("strict", strict).await.unwrap_err();
    assert!(err.to_string().contains("errors.tolerance=all"), "{err}");

    worker.add_connector("sink", sink).await.unwrap();
    assert_eq!(wait_for_lines(&output, 2).await, ["first", "third"]);
    wait_for_size(&client, "events-dlq", 1).await;
    let consumer = Consumer::new(client.clone()).await.unwrap();
    let partitions = [("events-dlq".to_owned(), 0)];
    consumer.assign(&partitions).unwrap();
    consumer.seek_to_beginning(&partitions).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        assert!(Instant::now() < deadline);
        if let Some(r) = consumer
            .poll(Duration::from_millis(100))
            .await
            .unwrap()
            .pop()
        {
            break r;
        }
    };
    assert_eq!(dead.value.as_deref(), Some(&b"{not json"[..]));
    let header = |name: &str| {
        dead.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header("__connect.errors.topic").as_deref(), Some("events"));
    assert_eq!(header("__connect.errors.offset").as_deref(), Some("1"));
    assert_eq!(
        header("__connect.errors.connector.name").as_deref(),
        Some("sink")
    );
    assert!(header("__connect.errors.exception.message")
        .unwrap()
        .contains("not JSON"));
    consumer.close();
    producer.close().await;
    worker.shutdown().await;
    broker.shutdown().await.unwrap();
}
