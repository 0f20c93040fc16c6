//! `strom-bench transactions`: what transactions cost a producer, on an embedded broker.
//!
//! ```text
//!  idempotent:    N records of --size bytes (acks=all, linger.ms 5), to --partitions
//!                 partitions, every delivery awaited
//!  transactional: the same records in transactions committed every --commit-ms
//!                 (begin, send, ..., commit_transaction), the last one committed at the end
//!  both with Strom's producer and with librdkafka's, same broker, same run
//! ```

use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;

/// Options of `strom-bench transactions`.
#[derive(Args, Debug, Clone)]
pub struct TransactionsArgs {
    /// Records per run.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Partitions of the topics.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// How often the transactional runs commit.
    #[arg(long, default_value_t = 100)]
    pub commit_ms: u64,
}

/// Runs the benchmark on a broker of its own.
pub async fn run(args: &TransactionsArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Broker::start(BrokerConfig::new(dir.path())).await?;
    let bootstrap = broker.bootstrap();
    let admin = Admin::connect(ClientConfig::new().bootstrap(&bootstrap)).await?;
    for topic in ["tx-strom-idem", "tx-strom-txn", "tx-rd-idem", "tx-rd-txn"] {
        admin
            .create_topic(NewTopic::new(topic).partitions(args.partitions))
            .await?;
    }
    let value = vec![b'x'; args.size];
    let commit_every = Duration::from_millis(args.commit_ms);
    let base = ClientConfig::new()
        .bootstrap(&bootstrap)
        .linger(Duration::from_millis(5));

    let idempotent = strom_run(args, base.clone(), "tx-strom-idem", &value, None).await?;
    crate::rate("strom idempotent", args.records, idempotent.1, idempotent.0);
    let txn_config = base.transactional_id("strom-bench");
    let transactional =
        strom_run(args, txn_config, "tx-strom-txn", &value, Some(commit_every)).await?;
    crate::rate(
        "strom transactional",
        args.records,
        transactional.1,
        transactional.0,
    );
    println!(
        "strom transactional / idempotent: {:.2}",
        idempotent.0.as_secs_f64() / transactional.0.as_secs_f64()
    );

    let records = args.records;
    let partitions = args.partitions;
    let boot = bootstrap.clone();
    let rd = tokio::task::spawn_blocking(move || -> anyhow::Result<(Duration, Duration)> {
        let idem = rd_run(&boot, "tx-rd-idem", records, partitions, &value, None)?;
        let txn = rd_run(
            &boot,
            "tx-rd-txn",
            records,
            partitions,
            &value,
            Some(commit_every),
        )?;
        Ok((idem, txn))
    })
    .await??;
    let bytes = args.records * args.size as u64;
    crate::rate("librdkafka idempotent", args.records, bytes, rd.0);
    crate::rate("librdkafka transactional", args.records, bytes, rd.1);
    println!(
        "librdkafka transactional / idempotent: {:.2}",
        rd.0.as_secs_f64() / rd.1.as_secs_f64()
    );
    broker.shutdown().await?;
    Ok(())
}

/// One Strom run: elapsed time and bytes; transactional when `commit_every` is given.
async fn strom_run(
    args: &TransactionsArgs,
    config: ClientConfig,
    topic: &str,
    value: &[u8],
    commit_every: Option<Duration>,
) -> anyhow::Result<(Duration, u64)> {
    let producer = Producer::new(config).await?;
    let start = Instant::now();
    let mut last_commit = Instant::now();
    if commit_every.is_some() {
        producer.begin_transaction()?;
    }
    let mut deliveries = Vec::new();
    for i in 0..args.records {
        let partition = (i % args.partitions as u64) as i32;
        let record = Record::new(topic)
            .partition(partition)
            .value(value.to_vec());
        deliveries.push(producer.send(record).await?);
        if let Some(every) = commit_every {
            if last_commit.elapsed() >= every {
                producer.commit_transaction().await?;
                producer.begin_transaction()?;
                last_commit = Instant::now();
            }
        }
        if deliveries.len() >= 100_000 {
            for d in deliveries.drain(..) {
                d.await?;
            }
        }
    }
    if commit_every.is_some() {
        producer.commit_transaction().await?;
    }
    for d in deliveries {
        d.await?;
    }
    let elapsed = start.elapsed();
    producer.close().await;
    Ok((elapsed, args.records * value.len() as u64))
}

/// One librdkafka run, the same way.
fn rd_run(
    bootstrap: &str,
    topic: &str,
    records: u64,
    partitions: i32,
    value: &[u8],
    commit_every: Option<Duration>,
) -> anyhow::Result<Duration> {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000");
    if commit_every.is_some() {
        config.set("transactional.id", format!("rd-bench-{topic}"));
    }
    let producer: BaseProducer = config.create()?;
    let timeout = Duration::from_secs(30);
    if commit_every.is_some() {
        producer.init_transactions(timeout)?;
        producer.begin_transaction()?;
    }
    let start = Instant::now();
    let mut last_commit = Instant::now();
    for i in 0..records {
        let partition = (i % partitions as u64) as i32;
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .partition(partition)
            .payload(value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
        if let Some(every) = commit_every {
            if last_commit.elapsed() >= every {
                producer.commit_transaction(timeout)?;
                producer.begin_transaction()?;
                last_commit = Instant::now();
            }
        }
    }
    if commit_every.is_some() {
        producer.commit_transaction(timeout)?;
    }
    producer.flush(timeout)?;
    Ok(start.elapsed())
}
