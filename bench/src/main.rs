//! `strom-bench`: throughput of the Strom broker driven by librdkafka.
//!
//! ```text
//! cargo run --release -p strom-bench -- --records 5000000
//! ```
//!
//! 1. produce: librdkafka (`rdkafka`, bundled build) produces `--records` records of
//!    `--size` bytes to one partition with `linger.ms=5`, and reports records/s and MB/s
//!    counted from delivery reports;
//! 2. fetch (raw): Strom's protocol `Connection` fetches the stored data back with plain
//!    Fetch requests: what the broker can serve, without a client's record parsing;
//! 3. fetch (librdkafka): a librdkafka consumer reads every record back;
//! 4. loopback: one TCP stream on 127.0.0.1 moving 2 GiB in 1 MiB writes, the ceiling the
//!    fetch numbers are compared with.
//!
//! The broker runs in this process unless `--bootstrap` names another one.
//!
//! `strom-bench clients` compares Strom's producer and consumer with librdkafka and krafka
//! instead (see `clients.rs`); `strom-bench groups` measures how long a consumer group takes
//! to consume again after a member joins (see `groups.rs`).
// A benchmark reports on stdout.
#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{CreateTopicsRequest, FetchRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use strom_broker::{Broker, BrokerConfig};
use strom_protocol::connection::Connection;

mod clients;
mod groups;
mod latency;
mod replication;
mod sql;
mod streams;
mod transactions;

#[derive(Parser, Debug)]
struct Args {
    /// Records to produce.
    #[arg(long, default_value_t = 5_000_000)]
    records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// librdkafka compression.codec.
    #[arg(long, default_value = "none")]
    compression: String,
    /// librdkafka linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// acks.
    #[arg(long, default_value = "1")]
    acks: String,
    /// Times the raw fetch reads the whole partition (the page cache is warm after the first).
    #[arg(long, default_value_t = 3)]
    fetch_rounds: u32,
    /// Partition bytes per raw Fetch request.
    #[arg(long, default_value_t = 16 << 20)]
    fetch_bytes: i32,
    /// Skip the librdkafka consumer (client-bound: it measures librdkafka, not the broker).
    #[arg(long)]
    no_consumer: bool,
    /// Concurrent raw fetchers, each on its own connection reading its share of the offsets.
    #[arg(long, default_value_t = 1)]
    fetchers: u32,
    /// Fetch an existing topic (partition 0) instead of creating and producing one.
    #[arg(long)]
    existing_topic: Option<String>,
    /// Use this broker instead of an embedded one.
    #[arg(long)]
    bootstrap: Option<String>,
    /// Another benchmark instead of the broker one.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Strom's producer and consumer against librdkafka and krafka: throughput and
    /// end-to-end latency.
    Clients(clients::ClientsArgs),
    /// Rebalance latency of Strom's group consumer: a member joins a consuming group, eager
    /// and cooperative, small and large groups.
    Groups(groups::GroupsArgs),
    /// Replication on three in-process brokers: acks=all with three replicas against
    /// acks=1 with one, and the time a partition takes to fail over.
    Replication(replication::ReplicationArgs),
    /// A transactional producer committing every 100 ms against the idempotent one, Strom
    /// and librdkafka side by side.
    Transactions(transactions::TransactionsArgs),
    /// Records/s through a strom-streams topology: stateless, and a windowed count with a
    /// persistent store.
    Streams(streams::StreamsArgs),
    /// A SQL-filtered consumer against one that decodes with serde_json and filters in
    /// Rust, over 1 KB JSON records; and the filter's evaluation alone.
    Sql(sql::SqlArgs),
}

struct Counter(Arc<AtomicU64>, Arc<AtomicU64>);

impl ClientContext for Counter {}

impl ProducerContext for Counter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => self.0.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.1.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn rate(label: &str, records: u64, bytes: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{label:<22} {records:>10} records in {secs:>6.2} s: {:>12.0} records/s {:>9.1} MB/s",
        records as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs only when asked for (RUST_LOG), on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    if let Some(Command::Clients(clients_args)) = &args.command {
        let broker = match &clients_args.bootstrap {
            Some(_) => None,
            None => Some(Broker::start(BrokerConfig::new(dir.path())).await?),
        };
        let bootstrap = match (&clients_args.bootstrap, &broker) {
            (Some(b), _) => b.clone(),
            (None, Some(b)) => b.bootstrap(),
            (None, None) => bail!("no broker"),
        };
        clients::run(clients_args, &bootstrap).await?;
        if let Some(broker) = broker {
            broker.shutdown().await?;
        }
        return Ok(());
    }
    if let Some(Command::Replication(replication_args)) = &args.command {
        return replication::run(replication_args).await;
    }
    if let Some(Command::Sql(sql_args)) = &args.command {
        return sql::run(sql_args).await;
    }
    if let Some(Command::Streams(streams_args)) = &args.command {
        return streams::run(streams_args).await;
    }
    if let Some(Command::Transactions(transactions_args)) = &args.command {
        return transactions::run(transactions_args).await;
    }
    if let Some(Command::Groups(groups_args)) = &args.command {
        let broker = match &groups_args.bootstrap {
            Some(_) => None,
            None => {
                let mut config = BrokerConfig::new(dir.path());
                config.group_initial_rebalance_delay =
                    Duration::from_millis(groups_args.initial_rebalance_delay_ms);
                Some(Broker::start(config).await?)
            }
        };
        let bootstrap = match (&groups_args.bootstrap, &broker) {
            (Some(b), _) => b.clone(),
            (None, Some(b)) => b.bootstrap(),
            (None, None) => bail!("no broker"),
        };
        groups::run(groups_args, &bootstrap).await?;
        if let Some(broker) = broker {
            broker.shutdown().await?;
        }
        return Ok(());
    }
    let broker = match &args.bootstrap {
        Some(_) => None,
        None => Some(Broker::start(BrokerConfig::new(dir.path())).await?),
    };
    let bootstrap = match (&args.bootstrap, &broker) {
        (Some(b), _) => b.clone(),
        (None, Some(b)) => b.bootstrap(),
        (None, None) => bail!("no broker"),
    };
    let conn = Connection::connect(&bootstrap, "strom-bench").await?;
    if let Some(topic) = &args.existing_topic {
        let metadata = conn
            .send(&MetadataRequest::default().with_topics(Some(
                vec![MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(topic.clone()))))],
            )))
            .await?;
        let topic_id = metadata.topics.first().context("no such topic")?.topic_id;
        for _ in 0..args.fetch_rounds {
            let (records, bytes, elapsed) =
                raw_fetch(&bootstrap, topic, topic_id, args.fetch_bytes, args.fetchers).await?;
            rate("fetch (raw Fetch)", records, bytes, elapsed);
        }
        return Ok(());
    }
    let topic = format!("bench-{}", std::process::id());
    let created = conn
        .send(
            &CreateTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_num_partitions(1)
                    .with_replication_factor(1)]),
        )
        .await?;
    if created.topics.iter().any(|t| t.error_code != 0) {
        bail!("CreateTopics failed: {:?}", created.topics);
    }
    let topic_id = created
        .topics
        .first()
        .map(|t| t.topic_id)
        .unwrap_or_default();
    println!("broker {bootstrap}, topic {topic}, {} records of {} bytes, compression {}, linger.ms {}, acks {}", args.records, args.size, args.compression, args.linger_ms, args.acks);

    let a = args.records;
    let size = args.size;
    let (t, b, codec, linger, acks) = (
        topic.clone(),
        bootstrap.clone(),
        args.compression.clone(),
        args.linger_ms,
        args.acks.clone(),
    );
    let produced =
        tokio::task::spawn_blocking(move || produce(&b, &t, a, size, &codec, linger, &acks))
            .await??;
    rate(
        "produce (librdkafka)",
        args.records,
        args.records * args.size as u64,
        produced,
    );

    let (bytes, elapsed) = tokio::task::spawn_blocking(loopback).await??;
    rate("loopback TCP", 0, bytes, elapsed);
    for _ in 0..args.fetch_rounds {
        let (records, bytes, elapsed) = raw_fetch(
            &bootstrap,
            &topic,
            topic_id,
            args.fetch_bytes,
            args.fetchers,
        )
        .await?;
        rate("fetch (raw Fetch)", records, bytes, elapsed);
    }
    if args.no_consumer {
        drop(conn);
        if let Some(broker) = broker {
            broker.shutdown().await?;
        }
        return Ok(());
    }

    let (t, b, n) = (topic.clone(), bootstrap.clone(), args.records);
    let (count, elapsed) = tokio::task::spawn_blocking(move || consume(&b, &t, n)).await??;
    rate(
        "fetch (librdkafka)",
        count,
        count * args.size as u64,
        elapsed,
    );

    drop(conn);
    if let Some(broker) = broker {
        broker.shutdown().await?;
    }
    Ok(())
}

/// Raw TCP throughput of one loopback stream, as a baseline.
fn loopback() -> anyhow::Result<(u64, Duration)> {
    use std::io::{Read, Write};
    const TOTAL: u64 = 2 << 30;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut s = std::net::TcpStream::connect(addr)?;
        let chunk = vec![1u8; 1 << 20];
        for _ in 0..TOTAL >> 20 {
            s.write_all(&chunk)?;
        }
        Ok(())
    });
    let (mut s, _) = listener.accept()?;
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    let mut got = 0u64;
    while got < TOTAL {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let elapsed = start.elapsed();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    Ok((got, elapsed))
}

fn produce(
    bootstrap: &str,
    topic: &str,
    records: u64,
    size: usize,
    codec: &str,
    linger_ms: u64,
    acks: &str,
) -> anyhow::Result<Duration> {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let producer: BaseProducer<Counter> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.codec", codec)
        .set("acks", acks)
        .create_with_context(Counter(ok.clone(), failed.clone()))?;
    let payload = vec![b'x'; size];
    let start = Instant::now();
    for _ in 0..records {
        loop {
            match producer.send(
                BaseRecord::<(), [u8]>::to(topic)
                    .payload(&payload[..])
                    .partition(0),
            ) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e).context("produce"),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let elapsed = start.elapsed();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    if ok != records || failed != 0 {
        bail!("{ok} delivered, {failed} failed of {records}");
    }
    Ok(elapsed)
}

/// Fetches partition 0 of `topic` with `fetchers` connections at once, each reading its
/// share of the offsets; returns (records, bytes, elapsed).
async fn raw_fetch(
    bootstrap: &str,
    topic: &str,
    topic_id: uuid::Uuid,
    fetch_bytes: i32,
    fetchers: u32,
) -> anyhow::Result<(u64, u64, Duration)> {
    let mut conns = Vec::new();
    for _ in 0..fetchers.max(1) {
        conns.push(Connection::connect(bootstrap, "strom-bench").await?);
    }
    let (_, high_watermark, _) = fetch_once(&conns[0], topic, topic_id, 0, 1).await?;
    let n = conns.len() as i64;
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let (topic, i) = (topic.to_owned(), i as i64);
            let (from, to) = (high_watermark * i / n, high_watermark * (i + 1) / n);
            tokio::spawn(async move {
                fetch_range(&conn, &topic, topic_id, fetch_bytes, from, to).await
            })
        })
        .collect();
    let mut bytes = 0;
    for task in tasks {
        bytes += task.await??;
    }
    Ok((high_watermark as u64, bytes, start.elapsed()))
}

/// One Fetch at `offset`: (next offset, high watermark, bytes).
async fn fetch_once(
    conn: &Connection,
    topic: &str,
    topic_id: uuid::Uuid,
    offset: i64,
    fetch_bytes: i32,
) -> anyhow::Result<(i64, i64, u64)> {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(fetch_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_topic_id(topic_id)
            .with_partitions(vec![FetchPartition::default()
                .with_fetch_offset(offset)
                .with_partition_max_bytes(fetch_bytes)])]);
    let response = conn.send(&request).await?;
    let p = response
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .context("empty fetch response")?;
    if p.error_code != 0 {
        bail!("fetch error {}", p.error_code);
    }
    let data = p.records.clone().unwrap_or_default();
    let mut next = offset;
    for item in strom_protocol::records::batches(&data) {
        let (header, _) = item?;
        next = header.next_offset();
    }
    Ok((next, p.high_watermark, data.len() as u64))
}

/// Fetches offsets `from..to`; returns the bytes received.
async fn fetch_range(
    conn: &Connection,
    topic: &str,
    topic_id: uuid::Uuid,
    fetch_bytes: i32,
    from: i64,
    to: i64,
) -> anyhow::Result<u64> {
    let mut offset = from;
    let mut bytes = 0;
    while offset < to {
        let (next, _, got) = fetch_once(conn, topic, topic_id, offset, fetch_bytes).await?;
        if next <= offset {
            bail!("fetch made no progress at offset {offset}");
        }
        bytes += got;
        offset = next;
    }
    Ok(bytes)
}

fn consume(bootstrap: &str, topic: &str, records: u64) -> anyhow::Result<(u64, Duration)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "strom-bench")
        .set("enable.auto.commit", "false")
        // librdkafka 2.4+ pauses a partition's fetches for fetch.queue.backoff.ms (1 s) once
        // queued.min.messages are buffered; with 100-byte records that is every few ms.
        .set("fetch.queue.backoff.ms", "1")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let start = Instant::now();
    let mut count = 0u64;
    while count < records {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                count += 1;
                std::hint::black_box(m.payload());
            }
            Some(Err(e)) => bail!("consume: {e}"),
            None => bail!("no records for 10 s after {count}"),
        }
    }
    Ok((count, start.elapsed()))
}
