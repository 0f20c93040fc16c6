//! Word count with strom-streams: sentences in, a running count per word out.
//!
//! ```sh
//! cargo run -p strom-examples --bin word-count                  # on an embedded broker
//! cargo run -p strom-examples --bin word-count -- 127.0.0.1:9092  # on a cluster
//! # one instance of the application, until its input closes (run several):
//! cargo run -p strom-examples --bin word-count -- --instance 127.0.0.1:9092 STATE_DIR [--exactly-once]
//! ```
//!
//! It writes a few sentences to `sentences`, runs the topology as application
//! `word-count` (a consumer group: start it twice and the instances share the partitions),
//! and prints each word's count as the `word-counts` topic receives it. With `--instance`
//! it only runs the application, keeping its state under STATE_DIR, until its standard
//! input closes.
// A program: printing is its output.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strom_client::admin::{Admin, NewTopic};
use strom_client::consumer::Consumer;
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use strom_streams::serde::{I64Serde, Serde, StringSerde};
use strom_streams::{
    Consumed, Grouped, KafkaStreams, ProcessingGuarantee, Produced, StreamsBuilder, StreamsConfig,
    Topology,
};

const SENTENCES: [&str; 4] = [
    "all streams lead to kafka",
    "hello kafka streams",
    "join kafka summit",
    "streams in rust",
];

/// The topology: sentences split into lower-case words, counted per word.
fn word_count() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream("sentences", Consumed::with(StringSerde, StringSerde))
        .flat_map_values(|line: String| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(
            |_, word| word.clone(),
            Grouped::with(StringSerde, StringSerde),
        )
        .count()
        .to_stream()
        .to("word-counts", Produced::with(StringSerde, I64Serde));
    builder.build()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs on standard error, filtered by RUST_LOG (`RUST_LOG=strom_streams=info`).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--instance") {
        return instance(&args[1..]).await;
    }
    let dir = tempfile::tempdir()?;
    let (bootstrap, broker) = match std::env::args().nth(1) {
        Some(bootstrap) => (bootstrap, None),
        None => {
            let mut config = strom_broker::BrokerConfig::new(dir.path());
            config.group_initial_rebalance_delay = Duration::ZERO;
            let broker = strom_broker::Broker::start(config).await?;
            (broker.bootstrap(), Some(broker))
        }
    };
    let config = ClientConfig::new().bootstrap(&bootstrap);
    let admin = Admin::connect(config.clone()).await?;
    for topic in ["sentences", "word-counts"] {
        // Already there when run again against the same cluster.
        let _ = admin.create_topic(NewTopic::new(topic).partitions(1)).await;
    }
    let producer = Producer::new(config.clone()).await?;
    for sentence in SENTENCES {
        producer
            .send(Record::new("sentences").key("line").value(sentence))
            .await?
            .await?;
    }
    producer.close().await;
    println!("{} sentences written to `sentences`", SENTENCES.len());

    println!("{}", word_count().describe());
    let streams = KafkaStreams::start(
        word_count(),
        StreamsConfig::new("word-count", config.clone()),
    )?;

    let consumer = Consumer::new(config).await?;
    let all = [("word-counts".to_owned(), 0)];
    consumer.assign(&all)?;
    consumer.seek_to_beginning(&all)?;
    let words: usize = SENTENCES.iter().map(|s| s.split_whitespace().count()).sum();
    let mut counts = BTreeMap::new();
    let (mut updates, deadline) = (0, Instant::now() + Duration::from_secs(30));
    while updates < words && Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(200)).await? {
            let word = StringSerde.deserialize("word-counts", record.key.as_deref())?;
            let count = I64Serde.deserialize("word-counts", record.value.as_deref())?;
            println!("{word:>10} {count}");
            counts.insert(word, count);
            updates += 1;
        }
    }
    println!("final counts: {counts:?}");
    consumer.shutdown().await?;
    tokio::task::spawn_blocking(move || streams.close()).await??;
    if let Some(broker) = broker {
        broker.shutdown().await?;
    }
    Ok(())
}

/// Runs one instance of the application until standard input closes.
async fn instance(args: &[String]) -> anyhow::Result<()> {
    let [bootstrap, state_dir, rest @ ..] = args else {
        anyhow::bail!("usage: word-count --instance BOOTSTRAP STATE_DIR [--exactly-once]");
    };
    let guarantee = match rest {
        [] => ProcessingGuarantee::AtLeastOnce,
        [flag] if flag == "--exactly-once" => ProcessingGuarantee::ExactlyOnce,
        _ => anyhow::bail!("unknown arguments {rest:?}"),
    };
    // A short session timeout: a dead instance's tasks move within seconds.
    let client = ClientConfig::new()
        .bootstrap(bootstrap)
        .session_timeout(Duration::from_secs(6));
    let config = StreamsConfig::new("word-count", client)
        .processing_guarantee(guarantee)
        .state_dir(state_dir);
    let streams = KafkaStreams::start(word_count(), config)?;
    println!("running");
    tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
        .await??;
    tokio::task::spawn_blocking(move || streams.close()).await??;
    println!("stopped");
    Ok(())
}
