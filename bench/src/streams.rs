//! `strom-bench streams`: records/s through a strom-streams topology on one streams
//! thread, on an embedded broker.
//!
//! ```text
//!  --records records (key user-<i % 1000>, value "<i>,page-<i % 50>,<padding to --size>",
//!  timestamps 1 ms apart) written to `in` first; then one KafkaStreams instance runs
//!    stateless: filter (even pages) -> map_values (upper case) -> to(out)
//!    windowed:  group_by_key -> 1-minute tumbling windows -> count (persistent store,
//!               changelogged) -> to_stream -> to(out)
//!  timed from start to the group's committed offset reaching the end of `in` (group join
//!  included), at-least-once, commit.interval.ms 100
//! ```
//!
//! The instance processes on one thread; the broker and the client's I/O tasks run on the
//! process's other threads.

use std::time::{Duration, Instant};

use clap::Args;
use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use strom_streams::serde::{I64Serde, StringSerde};
use strom_streams::{
    Consumed, Grouped, KafkaStreams, Materialized, Produced, StreamsBuilder, StreamsConfig,
    TimeWindows, Topology, WindowedSerde,
};

/// Options of `strom-bench streams`.
#[derive(Args, Debug, Clone)]
pub struct StreamsArgs {
    /// Records per run.
    #[arg(long, default_value_t = 2_000_000)]
    pub records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Keep the windowed store in memory instead of on disk.
    #[arg(long)]
    pub in_memory: bool,
}

/// Runs both topologies on a broker of their own.
pub async fn run(args: &StreamsArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut broker_config = BrokerConfig::new(dir.path().join("broker"));
    broker_config.group_initial_rebalance_delay = Duration::ZERO;
    let broker = Broker::start(broker_config).await?;
    let config = ClientConfig::new().bootstrap(&broker.bootstrap());
    let admin = Admin::connect(config.clone()).await?;
    for topic in ["in", "out-stateless", "out-windowed"] {
        admin
            .create_topic(NewTopic::new(topic).partitions(1))
            .await?;
    }
    fill(&config, args).await?;

    let stateless = time(
        &admin,
        &config,
        "bench-stateless",
        stateless(),
        args.records,
        &dir,
    )
    .await?;
    crate::rate("streams stateless", args.records, 0, stateless);
    let windowed = time(
        &admin,
        &config,
        "bench-windowed",
        windowed(!args.in_memory),
        args.records,
        &dir,
    )
    .await?;
    let label = if args.in_memory {
        "streams windowed (mem)"
    } else {
        "streams windowed (disk)"
    };
    crate::rate(label, args.records, 0, windowed);
    broker.shutdown().await?;
    Ok(())
}

/// Writes the input records.
async fn fill(config: &ClientConfig, args: &StreamsArgs) -> anyhow::Result<()> {
    let producer = Producer::new(config.clone().linger(Duration::from_millis(5))).await?;
    let mut deliveries = Vec::new();
    for i in 0..args.records {
        let mut value = format!("{i},page-{}", i % 50);
        value.extend(std::iter::repeat_n(
            'x',
            args.size.saturating_sub(value.len()),
        ));
        let record = Record::new("in")
            .key(format!("user-{}", i % 1000))
            .value(value)
            .timestamp(1_700_000_000_000 + i64::try_from(i)?);
        deliveries.push(producer.send(record).await?);
        if deliveries.len() >= 100_000 {
            for d in deliveries.drain(..) {
                d.await?;
            }
        }
    }
    for d in deliveries {
        d.await?;
    }
    producer.close().await;
    Ok(())
}

fn stateless() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(StringSerde, StringSerde))
        .filter(|_, v: &String| {
            v.split(',')
                .nth(1)
                .and_then(|p| p.strip_prefix("page-"))
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n % 2 == 0)
        })
        .map_values(|v: String| v.to_uppercase())
        .to("out-stateless", Produced::with(StringSerde, StringSerde));
    builder.build()
}

fn windowed(persistent: bool) -> Topology {
    let builder = StreamsBuilder::new();
    let materialized = if persistent {
        Materialized::with(I64Serde)
    } else {
        Materialized::with(I64Serde).in_memory()
    };
    builder
        .stream("in", Consumed::with(StringSerde, StringSerde))
        .group_by_key(Grouped::with(StringSerde, StringSerde))
        .windowed_by(TimeWindows::of_size_with_grace(
            Duration::from_secs(60),
            Duration::ZERO,
        ))
        .aggregate(|| 0, |_, _, n| n + 1, materialized)
        .table()
        .to_stream()
        .to(
            "out-windowed",
            Produced::with(
                WindowedSerde::new(StringSerde, Duration::from_secs(60)),
                I64Serde,
            ),
        );
    builder.build()
}

/// Runs `topology` as `application` until its committed offset on `in` reaches `records`.
async fn time(
    admin: &Admin,
    config: &ClientConfig,
    application: &str,
    topology: Topology,
    records: u64,
    dir: &tempfile::TempDir,
) -> anyhow::Result<Duration> {
    let streams_config = StreamsConfig::new(application, config.clone())
        .commit_interval_ms(100)
        .state_dir(dir.path().join("state"));
    let started = Instant::now();
    let streams = KafkaStreams::start(topology, streams_config)?;
    let end = i64::try_from(records)?;
    loop {
        let offsets = admin.group_offsets(application).await?;
        let done = offsets
            .iter()
            .any(|o| o.topic == "in" && o.committed >= end);
        if done {
            break;
        }
        if streams.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    tokio::task::spawn_blocking(move || streams.close()).await??;
    Ok(elapsed)
}
