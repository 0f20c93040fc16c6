//! `strom-bench clients`: Strom's producer and consumer against librdkafka (its fastest
//! API, `BaseProducer` / `BaseConsumer`) and krafka (a pure-Rust client), one broker, one
//! run.
//!
//! For each record size:
//! 1. produce: each client produces N records to its own fresh topic (`linger.ms`,
//!    `acks=all`, idempotence on, the same `batch.size`), timed from the first send to the
//!    last acknowledgement;
//! 2. consume: each client reads one topic (the one librdkafka produced, so all read the
//!    same batches) from the beginning, timed from assignment to the N-th record;
//! 3. latency: each client sends stamped records at a fixed rate to its own 1-partition
//!    topic while a consumer of the same client reads them; the stamp is nanoseconds since
//!    a shared `Instant`, so send and receive times come from one monotonic clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use rdkafka::consumer::Consumer as _;
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::producer::{DeliveryResult, Producer as _, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use strom_client::admin::{Admin, NewTopic};
use strom_client::config::{Acks, OffsetReset};

use crate::latency::{self, Pacer, Percentiles};

/// Options of `strom-bench clients`.
#[derive(Args, Debug, Clone)]
pub struct ClientsArgs {
    /// Records per throughput run for records of 100 bytes or less.
    #[arg(long, default_value_t = 2_000_000)]
    pub records: u64,
    /// Records per throughput run for records larger than 100 bytes.
    #[arg(long, default_value_t = 500_000)]
    pub records_large: u64,
    /// Record value sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    pub sizes: Vec<usize>,
    /// Partition counts of the throughput topics.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub partitions: Vec<i32>,
    /// Clients to run: strom, librdkafka, krafka.
    #[arg(long, value_delimiter = ',', default_value = "strom,librdkafka,krafka")]
    pub clients: Vec<String>,
    /// linger.ms of the throughput runs.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// batch.size for every client.
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_size: usize,
    /// Latency run: records per second.
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Latency run: seconds of sending (after a warm-up of 0.2 s whose records are not
    /// counted).
    #[arg(long, default_value_t = 5)]
    pub latency_secs: u64,
    /// linger.ms of the latency runs.
    #[arg(long, default_value_t = 0)]
    pub latency_linger_ms: u64,
    /// Skip the throughput runs.
    #[arg(long)]
    pub no_throughput: bool,
    /// Skip the latency runs.
    #[arg(long)]
    pub no_latency: bool,
    /// Use this broker instead of an embedded one.
    #[arg(long)]
    pub bootstrap: Option<String>,
}

/// The clients compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Strom,
    Librdkafka,
    Krafka,
}

impl Client {
    const ALL: [Client; 3] = [Client::Strom, Client::Librdkafka, Client::Krafka];

    fn name(self) -> &'static str {
        match self {
            Client::Strom => "strom",
            Client::Librdkafka => "librdkafka",
            Client::Krafka => "krafka",
        }
    }
}

/// One measurement.
#[derive(Debug)]
enum Outcome {
    Rate {
        records: u64,
        bytes: u64,
        elapsed: Duration,
    },
    Latency(Percentiles),
    Failed(String),
}

impl Outcome {
    fn records_per_sec(&self) -> Option<f64> {
        match self {
            Outcome::Rate {
                records, elapsed, ..
            } => Some(*records as f64 / elapsed.as_secs_f64()),
            _ => None,
        }
    }
}

/// A row of the result table: one phase, size and partition count, every client.
struct Row {
    phase: &'static str,
    size: usize,
    partitions: i32,
    outcomes: Vec<(Client, Outcome)>,
}

impl Row {
    fn get(&self, client: Client) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .find(|(c, _)| *c == client)
            .map(|(_, o)| o)
    }
}

fn describe(client: Client, outcome: &Outcome) {
    match outcome {
        Outcome::Rate {
            records,
            bytes,
            elapsed,
        } => {
            let secs = elapsed.as_secs_f64();
            println!(
                "  {:<11} {records:>9} records in {secs:>6.2} s: {:>10.0} records/s {:>7.1} MB/s",
                client.name(),
                *records as f64 / secs,
                *bytes as f64 / secs / 1e6
            );
        }
        Outcome::Latency(p) => println!(
            "  {:<11} {} records: p50 {:?} p99 {:?} p99.9 {:?} max {:?}",
            client.name(),
            p.count,
            p.p50,
            p.p99,
            p.p999,
            p.max
        ),
        Outcome::Failed(e) => println!("  {:<11} failed: {e}", client.name()),
    }
}

/// Runs the comparison against `bootstrap`.
pub async fn run(args: &ClientsArgs, bootstrap: &str) -> anyhow::Result<()> {
    let mut clients = Vec::new();
    for name in &args.clients {
        match Client::ALL.iter().find(|c| c.name() == name.as_str()) {
            Some(c) => clients.push(*c),
            None => bail!("unknown client {name:?} (strom, librdkafka, krafka)"),
        }
    }
    let admin = Admin::connect(strom_client::ClientConfig::new().bootstrap(bootstrap)).await?;
    let run_id = std::process::id();
    println!(
        "broker {bootstrap}; linger.ms {} (latency runs: {}), batch.size {}, acks=all, idempotence on",
        args.linger_ms, args.latency_linger_ms, args.batch_size
    );
    let mut rows = Vec::new();
    for &size in &args.sizes {
        let records = if size <= 100 {
            args.records
        } else {
            args.records_large
        };
        if !args.no_throughput {
            for &partitions in &args.partitions {
                let mut produce_row = Row {
                    phase: "produce",
                    size,
                    partitions,
                    outcomes: Vec::new(),
                };
                println!("produce: {records} records of {size} bytes, {partitions} partition(s)");
                for &client in &clients {
                    let topic = format!("clients-{run_id}-{}-{size}-p{partitions}", client.name());
                    admin
                        .create_topic(
                            NewTopic::new(topic.clone())
                                .partitions(partitions)
                                .replication_factor(1),
                        )
                        .await?;
                    let result =
                        produce(client, bootstrap, &topic, records, size, partitions, args)
                            .await
                            .map(|elapsed| Outcome::Rate {
                                records,
                                bytes: records * size as u64,
                                elapsed,
                            });
                    let outcome = result.unwrap_or_else(|e| Outcome::Failed(format!("{e:#}")));
                    describe(client, &outcome);
                    produce_row.outcomes.push((client, outcome));
                }
                // Every consumer reads the same batches: librdkafka's topic when it was
                // produced, else the first client's.
                let source = [Client::Librdkafka]
                    .into_iter()
                    .chain(clients.iter().copied())
                    .find(|c| matches!(produce_row.get(*c), Some(Outcome::Rate { .. })));
                rows.push(produce_row);
                let Some(source) = source else { continue };
                let topic = format!("clients-{run_id}-{}-{size}-p{partitions}", source.name());
                let mut consume_row = Row {
                    phase: "consume",
                    size,
                    partitions,
                    outcomes: Vec::new(),
                };
                println!("consume: {topic} from the beginning");
                for &client in &clients {
                    let result = consume(client, bootstrap, &topic, records, partitions).await;
                    let outcome = match result {
                        Ok((count, bytes, elapsed)) => Outcome::Rate {
                            records: count,
                            bytes,
                            elapsed,
                        },
                        Err(e) => Outcome::Failed(format!("{e:#}")),
                    };
                    describe(client, &outcome);
                    consume_row.outcomes.push((client, outcome));
                }
                rows.push(consume_row);
            }
        }
        if !args.no_latency {
            let mut row = Row {
                phase: "latency",
                size,
                partitions: 1,
                outcomes: Vec::new(),
            };
            println!(
                "latency: {} records/s for {} s, {size} bytes, linger.ms {}",
                args.rate, args.latency_secs, args.latency_linger_ms
            );
            for &client in &clients {
                let topic = format!("clients-{run_id}-{}-{size}-latency", client.name());
                admin
                    .create_topic(
                        NewTopic::new(topic.clone())
                            .partitions(1)
                            .replication_factor(1),
                    )
                    .await?;
                let outcome = match latency_run(client, bootstrap, &topic, size, args).await {
                    Ok(p) => Outcome::Latency(p),
                    Err(e) => Outcome::Failed(format!("{e:#}")),
                };
                describe(client, &outcome);
                row.outcomes.push((client, outcome));
            }
            rows.push(row);
        }
    }
    print_table(&rows, &clients);
    Ok(())
}

fn print_table(rows: &[Row], clients: &[Client]) {
    let others: Vec<Client> = clients
        .iter()
        .copied()
        .filter(|c| *c != Client::Strom)
        .collect();
    println!();
    println!(
        "| phase | size | partitions | {} | {} |",
        clients
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(" | "),
        others
            .iter()
            .map(|c| format!("strom / {}", c.name()))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!(
        "|---|---|---|{}{}",
        "---|".repeat(clients.len()),
        "---|".repeat(others.len())
    );
    for row in rows {
        let cells: Vec<String> = clients
            .iter()
            .map(|c| match row.get(*c) {
                Some(Outcome::Rate {
                    records,
                    bytes,
                    elapsed,
                }) => {
                    let secs = elapsed.as_secs_f64();
                    format!(
                        "{:.0} rec/s ({:.0} MB/s)",
                        *records as f64 / secs,
                        *bytes as f64 / secs / 1e6
                    )
                }
                Some(Outcome::Latency(p)) => format!(
                    "p50 {:.2} / p99 {:.2} / p99.9 {:.2} ms",
                    ms(p.p50),
                    ms(p.p99),
                    ms(p.p999)
                ),
                Some(Outcome::Failed(_)) => "failed".to_owned(),
                None => "-".to_owned(),
            })
            .collect();
        let strom = row.get(Client::Strom);
        let ratios: Vec<String> = others
            .iter()
            .map(|c| match (strom, row.get(*c)) {
                (Some(Outcome::Latency(s)), Some(Outcome::Latency(o))) => format!(
                    "p50 {:.2}x, p99 {:.2}x (lower is better)",
                    ms(s.p50) / ms(o.p50),
                    ms(s.p99) / ms(o.p99)
                ),
                (Some(s), Some(o)) => match (s.records_per_sec(), o.records_per_sec()) {
                    (Some(s), Some(o)) => format!("{:.2}x", s / o),
                    _ => "-".to_owned(),
                },
                _ => "-".to_owned(),
            })
            .collect();
        println!(
            "| {} | {} B | {} | {} | {} |",
            row.phase,
            row.size,
            row.partitions,
            cells.join(" | "),
            ratios.join(" | ")
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Producer settings shared by the clients, as librdkafka properties.
fn rdkafka_producer_config(
    bootstrap: &str,
    linger_ms: u64,
    batch_size: usize,
) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", batch_size.to_string())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    rdkafka_debug(&mut config);
    config
}

/// librdkafka's `debug` contexts from `RDKAFKA_DEBUG`, for looking into a run.
fn rdkafka_debug(config: &mut rdkafka::ClientConfig) {
    if let Ok(contexts) = std::env::var("RDKAFKA_DEBUG") {
        config.set("debug", contexts);
    }
}

fn strom_producer_config(
    bootstrap: &str,
    linger_ms: u64,
    batch_size: usize,
) -> anyhow::Result<strom_client::ClientConfig> {
    let mut config = strom_client::ClientConfig::new()
        .bootstrap(bootstrap)
        .linger(Duration::from_millis(linger_ms))
        .acks(Acks::All)
        .enable_idempotence(true)
        .batch_size(batch_size);
    config.set("buffer.memory", "268435456")?;
    Ok(config)
}

async fn krafka_producer(
    bootstrap: &str,
    linger_ms: u64,
    batch_size: usize,
) -> anyhow::Result<krafka::producer::Producer> {
    let kafka = krafka::Kafka::builder(bootstrap).connect().await?;
    Ok(kafka
        .producer()
        .linger(Duration::from_millis(linger_ms))
        .acks(krafka::producer::Acks::All)
        .idempotent(true)
        .batch_size(batch_size)
        .buffer_memory(256 << 20)
        .metrics_push(false)
        .build()
        .await?)
}

/// Delivery reports outstanding before a producer waits for the oldest.
const WINDOW: usize = 1 << 18;

async fn produce(
    client: Client,
    bootstrap: &str,
    topic: &str,
    records: u64,
    size: usize,
    partitions: i32,
    args: &ClientsArgs,
) -> anyhow::Result<Duration> {
    let payload = Bytes::from(vec![b'x'; size]);
    let one_partition = partitions == 1;
    match client {
        Client::Strom => {
            use strom_client::producer::{Producer, Record};
            let producer = Producer::new(strom_producer_config(
                bootstrap,
                args.linger_ms,
                args.batch_size,
            )?)
            .await?;
            // Warm-up, untimed: metadata, connection, producer id.
            let _ = producer
                .send(Record::new(topic).partition(0).value(payload.clone()))
                .await?
                .await?;
            let start = Instant::now();
            let mut pending = VecDeque::with_capacity(WINDOW);
            for _ in 0..records {
                let mut record = Record::new(topic).value(payload.clone());
                if one_partition {
                    record = record.partition(0);
                }
                pending.push_back(producer.send(record).await?);
                if pending.len() >= WINDOW {
                    if let Some(oldest) = pending.pop_front() {
                        oldest.await?;
                    }
                }
            }
            producer.flush().await;
            for delivery in pending {
                delivery.await?;
            }
            let elapsed = start.elapsed();
            producer.close().await;
            Ok(elapsed)
        }
        Client::Krafka => {
            use krafka::producer::Record;
            let producer = krafka_producer(bootstrap, args.linger_ms, args.batch_size).await?;
            // Warm-up, untimed: metadata, connection, producer id.
            let _ = producer
                .send(Record::new(topic, payload.clone()).partition(0))
                .await?;
            let start = Instant::now();
            let mut pending = VecDeque::with_capacity(WINDOW);
            for _ in 0..records {
                let mut record = Record::new(topic, payload.clone());
                if one_partition {
                    record = record.partition(0);
                }
                pending.push_back(producer.enqueue(record).await?);
                if pending.len() >= WINDOW {
                    if let Some(oldest) = pending.pop_front() {
                        let _ = oldest.await?;
                    }
                }
            }
            producer.flush().await?;
            for delivery in pending {
                let _ = delivery.await?;
            }
            let elapsed = start.elapsed();
            producer.close().await?;
            Ok(elapsed)
        }
        Client::Librdkafka => {
            let config = rdkafka_producer_config(bootstrap, args.linger_ms, args.batch_size);
            let topic = topic.to_owned();
            tokio::task::spawn_blocking(move || {
                rdkafka_produce(config, &topic, records, &payload, one_partition)
            })
            .await?
        }
    }
}

/// Counts delivery reports.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
}

struct DeliveryCount(Arc<Deliveries>);

impl ClientContext for DeliveryCount {}

impl ProducerContext for DeliveryCount {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => self.0.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

type RdProducer = rdkafka::producer::BaseProducer<DeliveryCount>;

/// Sends one record with librdkafka's `BaseProducer`, serving delivery reports while its
/// queue is full.
fn rdkafka_send(
    producer: &RdProducer,
    topic: &str,
    payload: &[u8],
    one_partition: bool,
) -> anyhow::Result<()> {
    loop {
        let mut record = rdkafka::producer::BaseRecord::<(), [u8]>::to(topic).payload(payload);
        if one_partition {
            record = record.partition(0);
        }
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e).context("produce"),
        }
    }
}

fn rdkafka_produce(
    config: rdkafka::ClientConfig,
    topic: &str,
    records: u64,
    payload: &[u8],
    one_partition: bool,
) -> anyhow::Result<Duration> {
    let deliveries = Arc::new(Deliveries::default());
    let producer: RdProducer = config.create_with_context(DeliveryCount(deliveries.clone()))?;
    // Warm-up, untimed: metadata, connection, producer id.
    rdkafka_send(&producer, topic, payload, true)?;
    producer.flush(Duration::from_secs(30))?;
    let start = Instant::now();
    for _ in 0..records {
        rdkafka_send(&producer, topic, payload, one_partition)?;
    }
    producer.flush(Duration::from_secs(300))?;
    let elapsed = start.elapsed();
    let (ok, failed) = (
        deliveries.ok.load(Ordering::Relaxed),
        deliveries.failed.load(Ordering::Relaxed),
    );
    if ok != records + 1 || failed != 0 {
        bail!("{ok} delivered, {failed} failed of {}", records + 1);
    }
    Ok(elapsed)
}

fn strom_consumer_config(bootstrap: &str) -> strom_client::ClientConfig {
    strom_client::ClientConfig::new()
        .bootstrap(bootstrap)
        .auto_offset_reset(OffsetReset::Earliest)
}

async fn krafka_consumer(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<krafka::consumer::Consumer> {
    let kafka = krafka::Kafka::builder(bootstrap).connect().await?;
    let consumer = kafka
        .consumer_without_group()
        .auto_offset_reset(krafka::consumer::AutoOffsetReset::Earliest)
        .metrics_push(false)
        .build()
        .await?;
    consumer.assign(topic, (0..partitions).collect()).await?;
    Ok(consumer)
}

fn rdkafka_consumer(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<rdkafka::consumer::BaseConsumer> {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "strom-bench-clients")
        .set("enable.auto.commit", "false")
        // librdkafka 2.4+ pauses a partition's fetches for fetch.queue.backoff.ms (1 s) once
        // queued.min.messages are buffered; with small records that is every few ms.
        .set("fetch.queue.backoff.ms", "1");
    rdkafka_debug(&mut config);
    let consumer: rdkafka::consumer::BaseConsumer = config.create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// How long a consumer may see nothing before the run fails.
const STALL: Duration = Duration::from_secs(10);

/// Counts consumed records; the clock starts after the first non-empty poll, whose
/// records are not timed.
#[derive(Default)]
struct Tally {
    count: u64,
    bytes: u64,
    start: Option<(Instant, u64)>,
}

impl Tally {
    /// Adds one poll's records, given their value sizes.
    fn add(&mut self, sizes: impl ExactSizeIterator<Item = u64>) {
        self.count += sizes.len() as u64;
        if self.start.is_none() {
            self.start = Some((Instant::now(), self.count));
        } else {
            self.bytes += sizes.sum::<u64>();
        }
    }

    /// (records timed, their value bytes, elapsed).
    fn finish(self) -> anyhow::Result<(u64, u64, Duration)> {
        let (start, untimed) = self.start.context("nothing read")?;
        Ok((self.count - untimed, self.bytes, start.elapsed()))
    }
}

/// Reads `topic` from the beginning: it holds `records` records after the producer's
/// warm-up record. Timed from the end of the first non-empty poll (which connects and
/// finds the position) to the last record: (records timed, their value bytes, elapsed).
async fn consume(
    client: Client,
    bootstrap: &str,
    topic: &str,
    records: u64,
    partitions: i32,
) -> anyhow::Result<(u64, u64, Duration)> {
    let total = records + 1;
    let mut tally = Tally::default();
    let size = |v: Option<&bytes::Bytes>| v.map_or(0, |v| v.len() as u64);
    match client {
        Client::Strom => {
            let consumer = strom_client::Consumer::new(strom_consumer_config(bootstrap)).await?;
            let assignment: Vec<(String, i32)> =
                (0..partitions).map(|p| (topic.to_owned(), p)).collect();
            consumer.assign(&assignment)?;
            while tally.count < total {
                let batch = consumer.poll(STALL).await?;
                if batch.is_empty() {
                    bail!("no records for {STALL:?} after {}", tally.count);
                }
                tally.add(batch.iter().map(|r| size(r.value.as_ref())));
            }
            consumer.close();
            tally.finish()
        }
        Client::Krafka => {
            let consumer = krafka_consumer(bootstrap, topic, partitions).await?;
            while tally.count < total {
                let batch = consumer.poll(STALL).await?;
                if batch.is_empty() {
                    bail!("no records for {STALL:?} after {}", tally.count);
                }
                tally.add(batch.iter().map(|r| size(r.value.as_ref())));
            }
            consumer.close().await?;
            tally.finish()
        }
        Client::Librdkafka => {
            let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
            tokio::task::spawn_blocking(move || {
                let consumer = rdkafka_consumer(&bootstrap, &topic, partitions)?;
                while tally.count < total {
                    match consumer.poll(STALL) {
                        Some(Ok(m)) => {
                            tally.add(std::iter::once(m.payload().map_or(0, |v| v.len() as u64)))
                        }
                        Some(Err(e)) => bail!("consume: {e}"),
                        None => bail!("no records for {STALL:?} after {}", tally.count),
                    }
                }
                tally.finish()
            })
            .await?
        }
    }
}

/// Paced records sent before the measured ones (0.2 s at the rate), after one record sent
/// and acknowledged alone; none of them is counted.
fn warmup(args: &ClientsArgs) -> u64 {
    args.rate / 5
}

/// Paces `total` sends at `rate` records/s on a blocking thread ([`Pacer::run`]) for a client
/// whose send is async: `send` gets the producer and a runtime handle to block on. Returns
/// the producer and what each send returned.
async fn paced_async<P: Send + 'static, T: Send + 'static>(
    producer: P,
    rate: u64,
    total: u64,
    mut send: impl FnMut(&P, &tokio::runtime::Handle) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<(P, Vec<T>)> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        Pacer::run(
            rate,
            total,
            || {
                out.push(send(&producer, &runtime)?);
                anyhow::Ok(())
            },
            || {},
        )?;
        Ok((producer, out))
    })
    .await?
}

/// End-to-end latency at `args.rate` records/s: one producer and one consumer of `client`
/// on a 1-partition topic.
async fn latency_run(
    client: Client,
    bootstrap: &str,
    topic: &str,
    size: usize,
    args: &ClientsArgs,
) -> anyhow::Result<Percentiles> {
    let warm = warmup(args);
    let measured = args.rate * args.latency_secs;
    // Paced records; the consumer also reads the one warm-up record sent before them.
    let total = warm + measured;
    let base = Instant::now();
    let samples = match client {
        Client::Strom => {
            use strom_client::producer::{Producer, Record};
            let consumer = strom_client::Consumer::new(strom_consumer_config(bootstrap)).await?;
            consumer.assign(&[(topic.to_owned(), 0)])?;
            let reader = tokio::spawn(async move {
                let mut samples = Vec::with_capacity(total as usize + 1);
                while (samples.len() as u64) < total + 1 {
                    let batch = consumer.poll(STALL).await?;
                    if batch.is_empty() {
                        bail!("no records for {STALL:?} after {}", samples.len());
                    }
                    for record in batch {
                        samples.push(
                            latency::since_stamp(base, record.value.as_deref())
                                .context("record without a stamp")?,
                        );
                    }
                }
                consumer.close();
                Ok(samples)
            });
            let producer = Producer::new(strom_producer_config(
                bootstrap,
                args.latency_linger_ms,
                args.batch_size,
            )?)
            .await?;
            let first = Record::new(topic)
                .partition(0)
                .value(latency::stamped(base, size));
            let _ = producer.send(first).await?.await?;
            let owned_topic = topic.to_owned();
            let (producer, pending) =
                paced_async(producer, args.rate, total, move |producer, runtime| {
                    let record = Record::new(&owned_topic)
                        .partition(0)
                        .value(latency::stamped(base, size));
                    Ok(runtime.block_on(producer.send(record))?)
                })
                .await?;
            for delivery in pending {
                delivery.await?;
            }
            producer.close().await;
            reader.await??
        }
        Client::Krafka => {
            use krafka::producer::Record;
            let consumer = krafka_consumer(bootstrap, topic, 1).await?;
            let reader = tokio::spawn(async move {
                let mut samples = Vec::with_capacity(total as usize + 1);
                while (samples.len() as u64) < total + 1 {
                    let batch = consumer.poll(STALL).await?;
                    if batch.is_empty() {
                        bail!("no records for {STALL:?} after {}", samples.len());
                    }
                    for record in batch {
                        samples.push(
                            latency::since_stamp(base, record.value.as_deref())
                                .context("record without a stamp")?,
                        );
                    }
                }
                consumer.close().await?;
                Ok(samples)
            });
            let producer =
                krafka_producer(bootstrap, args.latency_linger_ms, args.batch_size).await?;
            let first = Record::new(topic, latency::stamped(base, size)).partition(0);
            let _ = producer.send(first).await?;
            let owned_topic = topic.to_owned();
            let (producer, pending) =
                paced_async(producer, args.rate, total, move |producer, runtime| {
                    let record =
                        Record::new(&owned_topic, latency::stamped(base, size)).partition(0);
                    Ok(runtime.block_on(producer.enqueue(record))?)
                })
                .await?;
            for delivery in pending {
                let _ = delivery.await?;
            }
            producer.close().await?;
            reader.await??
        }
        Client::Librdkafka => {
            let consumer = rdkafka_consumer(bootstrap, topic, 1)?;
            let reader = std::thread::spawn(move || -> anyhow::Result<Vec<u64>> {
                let mut samples = Vec::with_capacity(total as usize + 1);
                while (samples.len() as u64) < total + 1 {
                    match consumer.poll(STALL) {
                        Some(Ok(m)) => samples.push(
                            latency::since_stamp(base, m.payload())
                                .context("record without a stamp")?,
                        ),
                        Some(Err(e)) => bail!("consume: {e}"),
                        None => bail!("no records for {STALL:?} after {}", samples.len()),
                    }
                }
                Ok(samples)
            });
            let config =
                rdkafka_producer_config(bootstrap, args.latency_linger_ms, args.batch_size);
            let (rate, topic) = (args.rate, topic.to_owned());
            let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let deliveries = Arc::new(Deliveries::default());
                let producer: RdProducer =
                    config.create_with_context(DeliveryCount(deliveries.clone()))?;
                rdkafka_send(&producer, &topic, &latency::stamped(base, size), true)?;
                producer.flush(Duration::from_secs(30))?;
                Pacer::run(
                    rate,
                    total,
                    || rdkafka_send(&producer, &topic, &latency::stamped(base, size), true),
                    || producer.poll(Duration::ZERO),
                )?;
                producer.flush(Duration::from_secs(60))?;
                let ok = deliveries.ok.load(Ordering::Relaxed);
                if ok != total + 1 {
                    bail!("{ok} of {} delivered", total + 1);
                }
                Ok(())
            });
            writer.await??;
            tokio::task::spawn_blocking(move || reader.join())
                .await?
                .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??
        }
    };
    let measured: Vec<u64> = samples.into_iter().skip(warm as usize + 1).collect();
    latency::percentiles(measured).context("no samples")
}
