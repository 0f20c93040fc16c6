//! A topology run by `KafkaStreams` against the embedded broker: word count from a topic
//! of sentences to a topic of counts, read back with the client; restarted with its state
//! directory kept (the stores resume from their checkpoints) and wiped (the stores are
//! rebuilt from their changelogs).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::consumer::Consumer;
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use strom_streams::serde::{I64Serde, Serde, StringSerde};
use strom_streams::{KafkaStreams, LocalTasks, StreamsConfig, StreamsError};

use crate::word_count;

async fn write(producer: &Producer, lines: &[&'static str]) {
    for line in lines {
        let record = Record::new("sentences").key("k").value(*line);
        producer.send(record).await.unwrap().await.unwrap();
    }
}

/// Reads `updates` more count updates into `counts`.
async fn read(
    consumer: &Consumer,
    streams: &KafkaStreams,
    counts: &mut BTreeMap<String, i64>,
    updates: usize,
) {
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while read < updates {
        assert!(Instant::now() < deadline, "{read} updates: {counts:?}");
        assert!(!streams.is_finished(), "the instance stopped");
        for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            let word = StringSerde
                .deserialize("word-counts", r.key.as_deref())
                .unwrap();
            let count = I64Serde
                .deserialize("word-counts", r.value.as_deref())
                .unwrap();
            counts.insert(word, count);
            read += 1;
        }
    }
}

fn start(config: &ClientConfig, state: &Path) -> KafkaStreams {
    let config = StreamsConfig::new("word-count", config.clone())
        .state_dir(state)
        .commit_interval_ms(100)
        .application_server("counts.example:8080");
    KafkaStreams::start(word_count(), config).unwrap()
}

async fn close(streams: KafkaStreams) -> Result<(), StreamsError> {
    tokio::task::spawn_blocking(move || streams.close())
        .await
        .unwrap()
}

fn counts_of(words: &[(&str, i64)]) -> BTreeMap<String, i64> {
    words.iter().map(|(w, c)| ((*w).to_owned(), *c)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_runs_against_the_broker_and_keeps_its_counts_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker_config = BrokerConfig::new(dir.path());
    broker_config.group_initial_rebalance_delay = Duration::ZERO;
    let broker = Broker::start(broker_config).await.unwrap();
    let config = ClientConfig::new().bootstrap(&broker.bootstrap());
    let admin = Admin::connect(config.clone()).await.unwrap();
    for topic in ["sentences", "word-counts"] {
        admin
            .create_topic(NewTopic::new(topic).partitions(1))
            .await
            .unwrap();
    }
    let producer = Producer::new(config.clone()).await.unwrap();
    write(&producer, &["the cat sat", "the dog sat", "THE END"]).await;

    let state = dir.path().join("state");
    let streams = start(&config, &state);
    let consumer = Consumer::new(config.clone()).await.unwrap();
    let all = [("word-counts".to_owned(), 0)];
    consumer.assign(&all).unwrap();
    consumer.seek_to_beginning(&all).unwrap();
    let mut counts = BTreeMap::new();
    read(&consumer, &streams, &mut counts, 8).await;
    let expected = counts_of(&[("the", 3), ("cat", 1), ("sat", 2), ("dog", 1), ("end", 1)]);
    assert_eq!(counts, expected);
    close(streams).await.unwrap();
    // The application's offsets are committed: everything it read counts as consumed.
    let committed = admin.group_offsets("word-count").await.unwrap();
    let sentences: Vec<(i32, i64)> = committed
        .iter()
        .filter(|o| o.topic == "sentences")
        .map(|o| (o.partition, o.committed))
        .collect();
    assert_eq!(sentences, [(0, 3)]);

    // Restarted with its state: the counts go on from where they were.
    write(&producer, &["the cat"]).await;
    let streams = start(&config, &state);
    read(&consumer, &streams, &mut counts, 2).await;
    assert_eq!((counts["the"], counts["cat"]), (4, 2));
    close(streams).await.unwrap();

    // Restarted without it: the stores are rebuilt from their changelogs.
    std::fs::remove_dir_all(&state).unwrap();
    write(&producer, &["the end"]).await;
    let streams = start(&config, &state);
    read(&consumer, &streams, &mut counts, 2).await;
    assert_eq!((counts["the"], counts["end"]), (5, 2));

    // Interactive queries: the count store of the running instance, and where a key lives.
    let topology = word_count();
    let store = topology.state_stores()[0];
    let the = streams
        .get(store, &"the".to_owned(), &StringSerde, &I64Serde)
        .await
        .unwrap();
    assert_eq!(the, Some(5));
    let nothing = streams
        .get(store, &"zebra".to_owned(), &StringSerde, &I64Serde)
        .await
        .unwrap();
    assert_eq!(nothing, None);
    assert_eq!(streams.entries(store).await.unwrap().len(), counts.len());
    let unknown = streams.entries("no-such-store").await;
    assert!(
        matches!(unknown, Err(StreamsError::UnknownStore { .. })),
        "{unknown:?}"
    );
    let metadata = streams.metadata_for_key(b"the").await.unwrap();
    assert_eq!(metadata.partition, 0);
    assert_eq!(metadata.host.as_deref(), Some("counts.example:8080"));
    close(streams).await.unwrap();

    consumer.shutdown().await.unwrap();
    producer.close().await;
    broker.shutdown().await.unwrap();
}

/// Polls `streams`' tasks until `done` holds.
async fn wait_tasks(streams: &KafkaStreams, done: impl Fn(&LocalTasks) -> bool) -> LocalTasks {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = streams.local_tasks().await.unwrap();
        if done(&tasks) {
            return tasks;
        }
        assert!(Instant::now() < deadline, "{tasks:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_keeps_a_standby_of_the_other_s_tasks_and_takes_them_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker_config = BrokerConfig::new(dir.path());
    broker_config.group_initial_rebalance_delay = Duration::ZERO;
    let broker = Broker::start(broker_config).await.unwrap();
    let config = ClientConfig::new().bootstrap(&broker.bootstrap());
    let admin = Admin::connect(config.clone()).await.unwrap();
    for topic in ["sentences", "word-counts"] {
        let new = NewTopic::new(topic).partitions(2);
        admin.create_topic(new).await.unwrap();
    }
    let producer = Producer::new(config.clone()).await.unwrap();
    let start_standby = |name: &str| {
        let streams_config = StreamsConfig::new("word-count", config.clone())
            .state_dir(dir.path().join(name))
            .commit_interval_ms(100)
            .num_standby_replicas(1);
        KafkaStreams::start(word_count(), streams_config).unwrap()
    };
    let a = start_standby("a");
    let b = start_standby("b");
    // Each instance runs one task and keeps the other's as a standby.
    let one_each =
        |t: &LocalTasks| t.active.len() == 1 && t.standby.len() == 1 && t.active != t.standby;
    let on_a = wait_tasks(&a, one_each).await;
    let on_b = wait_tasks(&b, one_each).await;
    assert_eq!(on_a.active, on_b.standby);
    assert_eq!(on_b.active, on_a.standby);

    let lines: Vec<String> = (0..40).map(|i| format!("w{} common", i % 4)).collect();
    for line in &lines {
        let record = Record::new("sentences")
            .key(line.clone())
            .value(line.clone());
        producer.send(record).await.unwrap().await.unwrap();
    }
    let consumer = Consumer::new(config.clone()).await.unwrap();
    let all = [("word-counts".to_owned(), 0), ("word-counts".to_owned(), 1)];
    consumer.assign(&all).unwrap();
    consumer.seek_to_beginning(&all).unwrap();
    let mut counts = BTreeMap::new();
    read(&consumer, &b, &mut counts, 80).await;
    assert_eq!(counts["common"], 40);

    // a goes; b takes its task over from the standby and keeps counting from there.
    close(a).await.unwrap();
    let all_on_b = wait_tasks(&b, |t| t.active.len() == 2).await;
    assert!(all_on_b.standby.is_empty(), "{all_on_b:?}");
    for line in ["w0 common", "w3 common"] {
        let record = Record::new("sentences").key(line).value(line);
        producer.send(record).await.unwrap().await.unwrap();
    }
    read(&consumer, &b, &mut counts, 4).await;
    assert_eq!((counts["common"], counts["w0"], counts["w3"]), (42, 11, 11));
    close(b).await.unwrap();
    consumer.shutdown().await.unwrap();
    producer.close().await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_joined_with_different_partition_counts_or_missing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig::new(dir.path())).await.unwrap();
    let config = ClientConfig::new().bootstrap(&broker.bootstrap());
    let admin = Admin::connect(config.clone()).await.unwrap();
    for (topic, partitions) in [("clicks", 2), ("users", 1)] {
        let new = NewTopic::new(topic).partitions(partitions);
        admin.create_topic(new).await.unwrap();
    }
    let joined = || {
        let builder = strom_streams::StreamsBuilder::new();
        let strings = || strom_streams::Consumed::with(StringSerde, StringSerde);
        let users = builder.table("users", strings());
        builder
            .stream("clicks", strings())
            .join(&users, |click, user| format!("{user} {click}"))
            .to(
                "out",
                strom_streams::Produced::with(StringSerde, StringSerde),
            );
        builder.build()
    };
    let streams_config =
        StreamsConfig::new("joins", config.clone()).state_dir(dir.path().join("s"));
    let streams = KafkaStreams::start(joined(), streams_config.clone()).unwrap();
    let err = close_when_finished(streams).await;
    match &err {
        Err(StreamsError::NotCopartitioned { topics }) => {
            assert_eq!(topics, &["clicks (2)", "users (1)"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("same number of partitions"));

    admin.delete_topic("users").await.unwrap();
    let streams = KafkaStreams::start(joined(), streams_config).unwrap();
    let err = close_when_finished(streams).await;
    assert!(
        matches!(&err, Err(StreamsError::MissingSourceTopic { topic }) if topic == "users"),
        "{err:?}"
    );
    broker.shutdown().await.unwrap();
}

/// Waits for an instance to stop on its own; what it ended with.
async fn close_when_finished(streams: KafkaStreams) -> Result<(), StreamsError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !streams.is_finished() {
        assert!(Instant::now() < deadline, "the instance kept running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    close(streams).await
}
