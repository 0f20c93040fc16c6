//! `strom quickstart`: the whole path on one machine, in a few seconds.
//!
//! Starts an embedded broker in a temporary folder, creates a topic with the admin client,
//! produces keyed records with the producer (lz4-compressed batches), reads them back from
//! the beginning with the consumer, checks that every record came back in order, and
//! prints what it did.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Args;
use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::config::OffsetReset;
use strom_client::consumer::ConsumerRecord;
use strom_client::producer::{Producer, Record};
use strom_client::{ClientConfig, Consumer};

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// Number of records to produce.
    #[arg(long, default_value_t = 5000)]
    records: usize,
}

const TOPIC: &str = "quickstart";
const PARTITIONS: i32 = 3;
const USERS: usize = 50;
const EVENTS: [&str; 3] = ["view", "click", "purchase"];
/// How long the consumer may take to read everything back.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(args: QuickstartArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary data folder")?;
    let broker = Broker::start(BrokerConfig::new(dir.path()))
        .await
        .context("starting the embedded broker")?;
    let bootstrap = broker.bootstrap();
    println!(
        "broker listening on {bootstrap} (data in {})",
        dir.path().display()
    );
    let result = exercise(&bootstrap, args.records).await;
    broker.shutdown().await.context("stopping the broker")?;
    result?;
    println!(
        "quickstart ok: {} records produced and consumed",
        args.records
    );
    Ok(())
}

/// Creates the topic, produces, consumes and checks, against the broker at `bootstrap`.
async fn exercise(bootstrap: &str, records: usize) -> anyhow::Result<()> {
    let config = ClientConfig::new()
        .bootstrap(bootstrap)
        .client_id("strom-quickstart");
    let admin = Admin::connect(config.clone())
        .await
        .context("connecting the admin client")?;
    admin
        .create_topic(NewTopic::new(TOPIC).partitions(PARTITIONS))
        .await
        .with_context(|| format!("creating topic {TOPIC}"))?;
    println!("created topic '{TOPIC}' with {PARTITIONS} partitions");

    // Produce.
    let producer = Producer::new(
        config
            .clone()
            .linger(Duration::from_millis(5))
            .with("compression.type", "lz4")?,
    )
    .await
    .context("starting the producer")?;
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(records);
    let mut bytes = 0usize;
    for i in 0..records {
        let user = format!("user-{}", i % USERS);
        let value = format!(
            "{{\"user\":\"{user}\",\"event\":\"{}\",\"amount\":{},\"n\":{i}}}",
            EVENTS[i % EVENTS.len()],
            (i * 7) % 100
        );
        bytes += user.len() + value.len();
        let record = Record::new(TOPIC)
            .key(user)
            .value(value)
            .header("source", "quickstart");
        deliveries.push(producer.send(record).await.context("sending a record")?);
    }
    producer.flush().await;
    let mut produced: BTreeMap<i32, (usize, i64, i64)> = BTreeMap::new();
    for delivery in deliveries {
        let m = delivery.await.context("a record was not delivered")?;
        let entry = produced
            .entry(m.partition)
            .or_insert((0, m.offset, m.offset));
        entry.0 += 1;
        entry.1 = entry.1.min(m.offset);
        entry.2 = entry.2.max(m.offset);
    }
    let elapsed = started.elapsed();
    producer.close().await;
    println!(
        "produced {records} records ({}) in {} with the producer (acks=all, idempotent, lz4)",
        human_bytes(bytes),
        rate(records, bytes, elapsed)
    );
    for (p, (count, first, last)) in &produced {
        println!("  partition {p}: {count} records, offsets {first}..={last}");
    }

    // Consume.
    let consumer = Consumer::new(config.auto_offset_reset(OffsetReset::Earliest))
        .await
        .context("starting the consumer")?;
    let assignment: Vec<(String, i32)> = (0..PARTITIONS).map(|p| (TOPIC.to_owned(), p)).collect();
    consumer.assign(&assignment)?;
    consumer.seek_to_beginning(&[])?;
    let started = Instant::now();
    let deadline = started + CONSUME_TIMEOUT;
    let mut consumed: Vec<ConsumerRecord> = Vec::with_capacity(records);
    while consumed.len() < records {
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "consumed only {} of {records} records in {CONSUME_TIMEOUT:?}",
                consumed.len()
            );
        }
        consumed.extend(consumer.poll(deadline - now).await.context("polling")?);
    }
    let elapsed = started.elapsed();
    // Anything more would be a duplicate.
    consumed.extend(consumer.poll(Duration::from_millis(50)).await?);
    consumer.close();
    ensure!(
        consumed.len() == records,
        "produced {records} records but consumed {}",
        consumed.len()
    );
    println!(
        "consumed {records} records from the beginning in {} with the consumer",
        rate(records, bytes, elapsed)
    );
    check_order(&consumed, &produced)?;
    println!("  every partition came back complete and in order");
    let mut samples: BTreeMap<i32, &ConsumerRecord> = BTreeMap::new();
    for r in &consumed {
        samples.entry(r.partition).or_insert(r);
    }
    for r in samples.values() {
        println!(
            "  sample: partition {} offset {}: {} = {}  [{}]",
            r.partition,
            r.offset,
            String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()),
            String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()),
            r.headers
                .iter()
                .map(|(k, v)| format!(
                    "{k}={}",
                    String::from_utf8_lossy(v.as_deref().unwrap_or_default())
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    Ok(())
}

/// Checks that each partition's records have consecutive offsets starting at 0 and its
/// sequence numbers (`"n"`) rise, and that counts match what the producer reported.
fn check_order(
    consumed: &[ConsumerRecord],
    produced: &BTreeMap<i32, (usize, i64, i64)>,
) -> anyhow::Result<()> {
    // Per partition: records seen, last offset, last sequence number.
    let mut seen: BTreeMap<i32, (usize, i64, i64)> = BTreeMap::new();
    for r in consumed {
        let n = sequence(r).with_context(|| {
            format!(
                "partition {} offset {}: no sequence number",
                r.partition, r.offset
            )
        })?;
        let (count, last_offset, last_n) = seen.entry(r.partition).or_insert((0, -1, -1));
        ensure!(
            r.offset == *last_offset + 1,
            "partition {}: offset {} after {last_offset}",
            r.partition,
            r.offset
        );
        ensure!(
            n > *last_n,
            "partition {}: record {n} after record {last_n}",
            r.partition
        );
        *count += 1;
        *last_offset = r.offset;
        *last_n = n;
    }
    for (p, (count, _, _)) in produced {
        let got = seen.get(p).map_or(0, |s| s.0);
        ensure!(
            got == *count,
            "partition {p}: produced {count} records, consumed {got}"
        );
    }
    Ok(())
}

/// The `"n":` field of a quickstart record's value.
fn sequence(r: &ConsumerRecord) -> Option<i64> {
    let value = std::str::from_utf8(r.value.as_deref()?).ok()?;
    let rest = &value[value.find("\"n\":")? + 4..];
    rest.trim_end_matches('}').trim().parse().ok()
}

/// `12 ms (410000 records/s, 20.1 MB/s)`.
fn rate(records: usize, bytes: usize, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    format!(
        "{} ms ({:.0} records/s, {:.1} MB/s)",
        elapsed.as_millis(),
        records as f64 / secs,
        bytes as f64 / secs / 1e6
    )
}

fn human_bytes(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}
