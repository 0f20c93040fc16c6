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
    report("streams stateless", args.records, &stateless);
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
    report(label, args.records, &windowed);
    broker.shutdown().await?;
    Ok(())
}

/// Writes the input records.
async fn fill(config: &ClientConfig, args: &StreamsArgs) -> anyhow::Result<()> {
    let size = args.size;
    let records = (0..args.records).map(|i| {
        let mut value = format!("{i},page-{}", i % 50);
        value.extend(std::iter::repeat_n('x', size.saturating_sub(value.len())));
        Record::new("in")
            .key(format!("user-{}", i % 1000))
            .value(value)
            .timestamp(1_700_000_000_000 + i64::try_from(i).unwrap_or(i64::MAX))
    });
    produce_all(config, records).await
}

/// Sends `records` with a 5 ms linger, awaiting their acknowledgements every 100,000.
pub(crate) async fn produce_all(
    config: &ClientConfig,
    records: impl IntoIterator<Item = Record>,
) -> anyhow::Result<()> {
    let producer = Producer::new(config.clone().linger(Duration::from_millis(5))).await?;
    let mut deliveries = Vec::new();
    for record in records {
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

/// What a run took: wall time, CPU time of the streams thread, CPU time of the process
/// (broker, client I/O and streams together).
struct Took {
    wall: Duration,
    thread_cpu: Duration,
    process_cpu: Duration,
}

fn report(label: &str, records: u64, took: &Took) {
    crate::rate(label, records, 0, took.wall);
    let per = |cpu: Duration| records as f64 / cpu.as_secs_f64().max(1e-9);
    println!(
        "{:<22} streams thread {:.2} s CPU ({:.0} records per CPU-second), whole process {:.2} s CPU ({:.0} records per CPU-second)",
        "",
        took.thread_cpu.as_secs_f64(),
        per(took.thread_cpu),
        took.process_cpu.as_secs_f64(),
        per(took.process_cpu)
    );
}

/// CPU time (user + system) from a `/proc/.../stat` line, in clock ticks of 10 ms.
fn cpu_of(stat: &str) -> Duration {
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn process_cpu() -> Duration {
    std::fs::read_to_string("/proc/self/stat").map_or(Duration::ZERO, |s| cpu_of(&s))
}

/// CPU time of the threads whose name starts with `prefix` (Linux truncates names to 15
/// bytes).
fn threads_cpu(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|name| name.starts_with(prefix))
        })
        .map(|t| {
            std::fs::read_to_string(t.path().join("stat")).map_or(Duration::ZERO, |s| cpu_of(&s))
        })
        .sum()
}

/// Runs `topology` as `application` until its committed offset on `in` reaches `records`.
async fn time(
    admin: &Admin,
    config: &ClientConfig,
    application: &str,
    topology: Topology,
    records: u64,
    dir: &tempfile::TempDir,
) -> anyhow::Result<Took> {
    let streams_config = StreamsConfig::new(application, config.clone())
        .commit_interval_ms(100)
        .state_dir(dir.path().join("state"));
    let started = Instant::now();
    let process_before = process_cpu();
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
    let wall = started.elapsed();
    let thread_cpu = threads_cpu("strom-streams-");
    let process_cpu = process_cpu().saturating_sub(process_before);
    tokio::task::spawn_blocking(move || streams.close()).await??;
    Ok(Took {
        wall,
        thread_cpu,
        process_cpu,
    })
}
