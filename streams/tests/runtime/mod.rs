//! A topology run by `KafkaStreams` against the embedded broker: word count from a topic
//! of sentences to a topic of counts, read back with the client.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::consumer::Consumer;
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use strom_streams::serde::{I64Serde, Serde, StringSerde};
use strom_streams::{KafkaStreams, StreamsConfig};

use crate::word_count;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_runs_against_the_broker() {
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
    let lines = ["the cat sat", "the dog sat", "THE END"];
    for line in lines {
        let record = Record::new("sentences").key("k").value(line);
        producer.send(record).await.unwrap().await.unwrap();
    }

    let streams = KafkaStreams::start(
        word_count(),
        StreamsConfig::new("word-count", config.clone())
            .state_dir(dir.path().join("state"))
            .commit_interval_ms(100),
    )
    .unwrap();
    let consumer = Consumer::new(config.clone()).await.unwrap();
    let all = [("word-counts".to_owned(), 0)];
    consumer.assign(&all).unwrap();
    consumer.seek_to_beginning(&all).unwrap();
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let mut updates = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while updates < 8 {
        assert!(Instant::now() < deadline, "{updates} updates: {counts:?}");
        assert!(!streams.is_finished(), "the instance stopped");
        for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            let word = StringSerde
                .deserialize("word-counts", r.key.as_deref())
                .unwrap();
            let count = I64Serde
                .deserialize("word-counts", r.value.as_deref())
                .unwrap();
            counts.insert(word, count);
            updates += 1;
        }
    }
    let expected: BTreeMap<String, i64> =
        [("the", 3), ("cat", 1), ("sat", 2), ("dog", 1), ("end", 1)]
            .iter()
            .map(|(w, c)| ((*w).to_owned(), *c))
            .collect();
    assert_eq!(counts, expected);
    tokio::task::spawn_blocking(move || streams.close())
        .await
        .unwrap()
        .unwrap();
    // The application's offsets are committed: everything it read counts as consumed.
    let committed = admin.group_offsets("word-count").await.unwrap();
    let sentences: Vec<(i32, i64)> = committed
        .iter()
        .filter(|o| o.topic == "sentences")
        .map(|o| (o.partition, o.committed))
        .collect();
    assert_eq!(sentences, [(0, 3)]);
    consumer.shutdown().await.unwrap();
    producer.close().await;
    broker.shutdown().await.unwrap();
}
