//! `strom-bench sql`: a SQL-filtered consumer against a hand-written one, and the filter
//! on its own.
//!
//! ```text
//!  --records JSON orders of --size bytes (id, country, amount, customer{...}, items[...],
//!  note padding) written to `orders` (one partition) on an embedded broker; then, read
//!  from the start by one consumer each, in turn:
//!    hand-written   strom Consumer + serde_json into struct { country, amount } + `if`
//!    librdkafka     rdkafka BaseConsumer + the same serde_json struct and `if`
//!    sql            SqlConsumer "SELECT key, amount FROM t WHERE country = 'NO' AND amount > 500"
//!  each timed from the first poll to the last record, matches counted (and compared);
//!  then, on one thread, the compiled filter alone over decoded batches, and the decoding
//!  of records to batches alone
//! ```

use std::time::{Duration, Instant};

use anyhow::ensure;
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message;
use serde::Deserialize;
use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::consumer::{Consumer, ConsumerRecord};
use strom_client::producer::Record;
use strom_client::ClientConfig;
use strom_sql::{Decoder, FieldKind, SqlConsumer, SqlFilter, ValueField, ValueFormat};

/// Options of `strom-bench sql`.
#[derive(Args, Debug, Clone)]
pub struct SqlArgs {
    /// Records per run.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Rounds of each consumer (alternating), to see the spread.
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
}

const QUERY: &str = "SELECT key, amount FROM t WHERE country = 'NO' AND amount > 500";
const COUNTRIES: [&str; 8] = ["NO", "SE", "DK", "FI", "DE", "NL", "FR", "ES"];

/// The hand-written consumer's view of an order.
#[derive(Deserialize)]
struct Order {
    country: String,
    amount: f64,
}

fn hand_written_keeps(value: &[u8]) -> bool {
    serde_json::from_slice::<Order>(value).is_ok_and(|o| o.country == "NO" && o.amount > 500.0)
}

fn order(i: u64, size: usize) -> String {
    let country = COUNTRIES[(i % 8) as usize];
    let amount = (i * 37 % 1000) as f64 + 0.25;
    let mut value = format!(
        r#"{{"id":{i},"country":"{country}","amount":{amount},"customer":{{"name":"user-{}","city":"city-{}","tier":"gold"}},"items":[{{"sku":"sku-{}","qty":2,"price":19.5}},{{"sku":"sku-{}","qty":1,"price":5.25}}],"note":""#,
        i % 10_000,
        i % 100,
        i % 500,
        i % 300
    );
    value.extend(std::iter::repeat_n(
        'x',
        size.saturating_sub(value.len() + 2),
    ));
    value.push_str("\"}");
    value
}

fn format() -> ValueFormat {
    // As inferred from the topic: every top-level field.
    ValueFormat::Json(vec![
        ValueField::new("amount", FieldKind::Float),
        ValueField::new("country", FieldKind::Text),
        ValueField::new("customer", FieldKind::Text),
        ValueField::new("id", FieldKind::Integer),
        ValueField::new("items", FieldKind::Text),
        ValueField::new("note", FieldKind::Text),
    ])
}

/// Runs the consumers and the filter on a broker of their own.
pub async fn run(args: &SqlArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Broker::start(BrokerConfig::new(dir.path())).await?;
    let bootstrap = broker.bootstrap();
    let config = ClientConfig::new().bootstrap(&bootstrap);
    let admin = Admin::connect(config.clone()).await?;
    admin
        .create_topic(NewTopic::new("orders").partitions(1))
        .await?;
    fill(&config, args).await?;
    let expected = (0..args.records)
        .filter(|i| hand_written_keeps(order(*i, args.size).as_bytes()))
        .count() as u64;
    println!(
        "{} orders of {} bytes, {expected} match {QUERY:?}",
        args.records, args.size
    );
    for _ in 0..args.rounds {
        let (matched, took) = hand_written(&config, args.records).await?;
        ensure!(matched == expected, "hand-written matched {matched}");
        report("hand-written (strom)", args.records, took);
        let (matched, took) = librdkafka(&bootstrap, args.records).await?;
        ensure!(matched == expected, "librdkafka matched {matched}");
        report("hand-written (rdkafka)", args.records, took);
        let (matched, took) = sql(&config, args.records).await?;
        ensure!(matched == expected, "sql matched {matched}");
        report("sql consumer", args.records, took);
    }
    filter_only(args.size).await?;
    broker.shutdown().await?;
    Ok(())
}

fn report(label: &str, records: u64, took: Duration) {
    crate::rate(label, records, 0, took);
}

async fn fill(config: &ClientConfig, args: &SqlArgs) -> anyhow::Result<()> {
    let records = (0..args.records).map(|i| {
        Record::new("orders")
            .key(format!("order-{i}"))
            .value(order(i, args.size))
    });
    crate::streams::produce_all(config, records).await
}

async fn from_start(config: &ClientConfig) -> anyhow::Result<Consumer> {
    let consumer = Consumer::new(config.clone()).await?;
    let partitions = [("orders".to_owned(), 0)];
    consumer.assign(&partitions)?;
    consumer.seek_to_beginning(&partitions)?;
    Ok(consumer)
}

fn last_offset(records: &[ConsumerRecord]) -> Option<i64> {
    records.last().map(|r| r.offset)
}

async fn hand_written(config: &ClientConfig, records: u64) -> anyhow::Result<(u64, Duration)> {
    let consumer = from_start(config).await?;
    let end = i64::try_from(records)? - 1;
    let started = Instant::now();
    let mut matched = 0;
    loop {
        let batch = consumer.poll(Duration::from_millis(500)).await?;
        matched += batch
            .iter()
            .filter(|r| r.value.as_deref().is_some_and(hand_written_keeps))
            .count() as u64;
        if last_offset(&batch).is_some_and(|o| o >= end) {
            break;
        }
    }
    let took = started.elapsed();
    consumer.close();
    Ok((matched, took))
}

async fn librdkafka(bootstrap: &str, records: u64) -> anyhow::Result<(u64, Duration)> {
    let bootstrap = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, Duration)> {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "bench-sql-rdkafka")
            .set("enable.auto.commit", "false")
            .create()?;
        let mut partitions = rdkafka::TopicPartitionList::new();
        partitions.add_partition_offset("orders", 0, rdkafka::Offset::Beginning)?;
        consumer.assign(&partitions)?;
        let end = i64::try_from(records)? - 1;
        let started = Instant::now();
        let mut matched = 0;
        loop {
            let Some(message) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let message = message?;
            if message.payload().is_some_and(hand_written_keeps) {
                matched += 1;
            }
            if message.offset() >= end {
                break;
            }
        }
        Ok((matched, started.elapsed()))
    })
    .await?
}

async fn sql(config: &ClientConfig, records: u64) -> anyhow::Result<(u64, Duration)> {
    let consumer = SqlConsumer::new(from_start(config).await?, format(), QUERY).await?;
    let end = i64::try_from(records)?;
    let started = Instant::now();
    let mut matched = 0;
    let mut polled = 0;
    while polled < end {
        let batch = consumer.poll(Duration::from_millis(500)).await?;
        matched += batch.rows.num_rows() as u64;
        polled += batch.polled as i64;
    }
    let took = started.elapsed();
    ensure!(consumer.undecodable_count() == 0, "undecodable records");
    consumer.consumer().close();
    Ok((matched, took))
}

/// The filter alone, and decoding alone, on this task's thread over 1,000,000 records in batches
/// of 10,000 (what a poll returns at this size is smaller; the per-batch cost is in the
/// consumer figures above).
async fn filter_only(size: usize) -> anyhow::Result<()> {
    let records: Vec<Vec<ConsumerRecord>> = (0..100)
        .map(|b| {
            (0..10_000)
                .map(|i| {
                    let n = b * 10_000 + i;
                    ConsumerRecord {
                        topic: "orders".to_owned(),
                        partition: 0,
                        offset: n as i64,
                        timestamp: 1_800_000_000_000,
                        key: Some(format!("order-{n}").into()),
                        value: Some(order(n, size).into()),
                        headers: Vec::new(),
                        leader_epoch: None,
                    }
                })
                .collect()
        })
        .collect();
    let total = 1_000_000;
    let full = SqlFilter::compile(QUERY, "t", format().schema()?).await?;
    let columns = full.input_columns();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let decoder = Decoder::projected(format(), &columns)?;
    let filter = SqlFilter::compile(QUERY, "t", decoder.schema()).await?;

    let started = Instant::now();
    let mut batches = Vec::new();
    for chunk in &records {
        batches.push(decoder.decode(chunk)?.0);
    }
    report("decode (json → arrow)", total, started.elapsed());

    let started = Instant::now();
    let mut kept = 0;
    for batch in &batches {
        kept += filter.apply(batch)?.num_rows();
    }
    report("filter evaluation", total, started.elapsed());

    let started = Instant::now();
    let mut by_hand = 0;
    for chunk in &records {
        by_hand += chunk
            .iter()
            .filter(|r| r.value.as_deref().is_some_and(hand_written_keeps))
            .count();
    }
    report("serde_json + if", total, started.elapsed());
    ensure!(kept == by_hand, "filter kept {kept}, by hand {by_hand}");
    Ok(())
}
