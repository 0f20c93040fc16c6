//! Produce and consume throughput of Strom's client over TLS against plaintext, each
//! against an embedded broker of its own (an `SSL://` listener with a certificate made
//! for the run) on a runtime of its own, as a broker process would be:
//!
//! ```text
//! cargo bench -p strom-client --bench tls -- [--records 1000000] [--sizes 100,1024] \
//!     [--transports plaintext,TLS] [--runs 3] [--pin] [--kcat]
//! ```
//!
//! `--kcat` also consumes each run's records with `kcat` (librdkafka) over the same
//! transport from the same broker, for librdkafka's own TLS/plaintext ratio; its time
//! includes starting the process and its handshake.
//!
//! `--pin` keeps the broker's threads on CPU 0 and the client's on CPU 1 (`taskset`), as a
//! broker and a client on machines of their own.
//!
//! Besides the rates, each run prints the CPU time the client's threads and the broker's
//! used over each phase, as a share of one core. The brokers' logs go to the temporary
//! directory: `TMPDIR=/dev/shm` keeps them in memory, out of reach of page-cache
//! writeback.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::config::{Acks, OffsetReset};
use strom_client::consumer::Consumer;
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use strom_testkit::Certs;

/// Deliveries a producer keeps open before waiting for the oldest.
const WINDOW: usize = 50_000;

struct TlsArgs {
    records: u64,
    sizes: Vec<usize>,
    /// `plaintext`, `TLS` or both: one alone is for profiling.
    transports: Vec<String>,
    /// Runs of each transport; the medians are compared.
    runs: usize,
    /// `--pin`: the broker's threads on CPU 0 and the client's on CPU 1.
    pin: bool,
    /// `--kcat`: also consume with kcat.
    kcat: bool,
}

impl TlsArgs {
    fn parse() -> TlsArgs {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        TlsArgs {
            records: value("--records").map_or(1_000_000, |v| v.parse().unwrap()),
            sizes: value("--sizes").map_or(vec![100, 1024], |v| {
                v.split(',').map(|s| s.parse().unwrap()).collect()
            }),
            runs: value("--runs").map_or(3, |v| v.parse().unwrap()),
            pin: args.iter().any(|a| a == "--pin"),
            kcat: args.iter().any(|a| a == "--kcat"),
            transports: value("--transports").map_or(vec!["plaintext".into(), "TLS".into()], |v| {
                v.split(',').map(str::to_owned).collect()
            }),
        }
    }
}

/// Starts a broker in `dir`, with TLS when `certs` are given; its client settings.
async fn start(
    runtime: &tokio::runtime::Handle,
    dir: &std::path::Path,
    certs: Option<&Certs>,
) -> anyhow::Result<(Broker, ClientConfig)> {
    let mut config = BrokerConfig::new(dir);
    if let Some(certs) = certs {
        let keystore = certs.issue("broker", "broker", &["127.0.0.1"]);
        config.set("listeners", "SSL://127.0.0.1:0")?;
        config.set("ssl.keystore.location", &keystore.both.to_string_lossy())?;
    }
    let broker = runtime.spawn(Broker::start(config)).await??;
    let mut client = ClientConfig::new().bootstrap(&broker.bootstrap());
    if let Some(certs) = certs {
        client.set("security.protocol", "SSL")?;
        client.set("ssl.ca.location", &certs.ca().to_string_lossy())?;
    }
    Ok((broker, client))
}

async fn produce(
    config: &ClientConfig,
    topic: &str,
    records: u64,
    size: usize,
) -> anyhow::Result<Phase> {
    let mut config = config
        .clone()
        .acks(Acks::All)
        .enable_idempotence(true)
        .linger(Duration::from_millis(5))
        .batch_size(1_000_000);
    config.set("buffer.memory", "268435456")?;
    let producer = Producer::new(config).await?;
    let payload = Bytes::from(vec![b'x'; size]);
    producer
        .send(Record::new(topic).partition(0).value(payload.clone()))
        .await?
        .await?;
    let start = Phase::start();
    let mut pending = VecDeque::with_capacity(WINDOW);
    for _ in 0..records {
        pending.push_back(
            producer
                .send(Record::new(topic).partition(0).value(payload.clone()))
                .await?,
        );
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
    let phase = start.end();
    producer.close().await;
    Ok(phase)
}

async fn consume(config: &ClientConfig, topic: &str, records: u64) -> anyhow::Result<Phase> {
    let consumer = Consumer::new(config.clone().auto_offset_reset(OffsetReset::Earliest)).await?;
    consumer.assign(&[(topic.to_owned(), 0)])?;
    let start = Phase::start();
    let mut read = 0;
    // The warm-up record and the run's.
    while read < records + 1 {
        read += consumer.poll(Duration::from_millis(500)).await?.len() as u64;
    }
    let phase = start.end();
    consumer.close();
    Ok(phase)
}

/// Consumes partition 0 of `topic` from its start to its end with kcat (on CPU 1 with
/// `pin`), checking that it read `records` records; how long that took.
fn kcat_consume(
    bootstrap: &str,
    certs: Option<&Certs>,
    topic: &str,
    records: u64,
    pin: bool,
) -> anyhow::Result<Duration> {
    let mut command = if pin {
        let mut taskset = std::process::Command::new("taskset");
        taskset.args(["-c", "1", "kcat"]);
        taskset
    } else {
        std::process::Command::new("kcat")
    };
    command.args([
        "-C",
        "-b",
        bootstrap,
        "-t",
        topic,
        "-p",
        "0",
        "-o",
        "beginning",
        "-e",
    ]);
    command.args(["-f", "%o\n"]);
    if let Some(certs) = certs {
        command.args(["-X", "security.protocol=ssl", "-X"]);
        command.arg(format!("ssl.ca.location={}", certs.ca().display()));
    }
    let start = Instant::now();
    let output = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()?;
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // "% Reached end of topic T [0] at offset N: exiting"
    let end = stderr
        .lines()
        .find_map(|l| l.split(" at offset ").nth(1))
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.trim().parse::<u64>().ok());
    anyhow::ensure!(
        output.status.success() && end == Some(records),
        "kcat read to {end:?} of {records}: {stderr}"
    );
    Ok(took)
}

/// How long a phase of a run took, and the CPU time the process (client and broker)
/// used meanwhile.
#[derive(Clone, Copy)]
struct Phase {
    wall: Duration,
    cpu: Cpu,
}

impl Phase {
    fn start() -> PhaseStart {
        PhaseStart(Instant::now(), cpu_time())
    }
}

/// When a phase started, and the CPU time used until then.
struct PhaseStart(Instant, Cpu);

impl PhaseStart {
    fn end(self) -> Phase {
        let cpu = cpu_time();
        Phase {
            wall: self.0.elapsed(),
            cpu: Cpu {
                broker: cpu.broker.saturating_sub(self.1.broker),
                client: cpu.client.saturating_sub(self.1.client),
            },
        }
    }
}

/// CPU time used so far by the broker's threads and by the rest of the process (user
/// and system), from `/proc/self/task/*/stat` in clock ticks of 10 ms; zero where those
/// files are absent.
fn cpu_time() -> Cpu {
    let mut cpu = Cpu::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return cpu;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses (and may hold spaces); the fields after it
        // start with the state, so utime and stime are the 12th and 13th.
        let Some((name, rest)) = stat.split_once('(').and_then(|(_, r)| r.rsplit_once(')')) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let used = Duration::from_millis((ticks(11) + ticks(12)) * 10);
        if name.starts_with("broker") {
            cpu.broker += used;
        } else {
            cpu.client += used;
        }
    }
    cpu
}

/// The broker's threads to CPU 0 and the others to CPU 1 (with `taskset`), as a broker
/// and a client on machines of their own; threads started later inherit their starter's.
fn pin_threads() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let cpu = if name.starts_with("broker") { "0" } else { "1" };
        let _ = std::process::Command::new("taskset")
            .args(["-pc", cpu, &task.file_name().to_string_lossy()])
            .stdout(std::process::Stdio::null())
            .status();
    }
}

/// CPU time of the broker's threads and of the client's.
#[derive(Clone, Copy, Default)]
struct Cpu {
    broker: Duration,
    client: Duration,
}

/// The median of `values` (the upper one of an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One run of `records` records of `size` bytes against a fresh broker: the produce and
/// consume phases, and with `--kcat` how long kcat took to read them.
async fn run(
    args: &TlsArgs,
    size: usize,
    tls: Option<&Certs>,
) -> anyhow::Result<(Phase, Phase, Option<Duration>)> {
    let dir = tempfile::tempdir()?;
    // The broker on threads of its own, as in a process of its own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("broker")
        .enable_all()
        .build()?;
    let (broker, client) = start(runtime.handle(), dir.path(), tls).await?;
    if args.pin {
        pin_threads();
    }
    let topic = format!("bench-{size}");
    Admin::connect(client.clone())
        .await?
        .create_topic(NewTopic::new(&topic).partitions(1))
        .await?;
    let produced = produce(&client, &topic, args.records, size).await?;
    let consumed = consume(&client, &topic, args.records).await?;
    let kcat = if args.kcat {
        // The warm-up record and the run's.
        let bootstrap = broker.bootstrap();
        Some(kcat_consume(
            &bootstrap,
            tls,
            &topic,
            args.records + 1,
            args.pin,
        )?)
    } else {
        None
    };
    runtime.spawn(broker.shutdown()).await??;
    runtime.shutdown_background();
    Ok((produced, consumed, kcat))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = &TlsArgs::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let certs = Certs::new("strom-bench");
    println!(
        "{:<10} {:>6} {:>14} {:>10} {:>14} {:>10}  {:>13}  {:>13}",
        "transport",
        "bytes",
        "produce rec/s",
        "MB/s",
        "consume rec/s",
        "MB/s",
        "CPU cl+br P",
        "CPU cl+br C"
    );
    if args.kcat {
        println!("{:>96}", "kcat MB/s");
    }
    let transports: Vec<(&str, Option<&Certs>)> = [("plaintext", None), ("TLS", Some(&certs))]
        .into_iter()
        .filter(|(name, _)| args.transports.iter().any(|t| t.eq_ignore_ascii_case(name)))
        .collect();
    for &size in &args.sizes {
        let mb = |r: f64| r * size as f64 / 1e6;
        let line = |name: &str, p: f64, c: f64| {
            println!(
                "{name:<10} {size:>6} {p:>14.0} {:>10.1} {c:>14.0} {:>10.1}",
                mb(p),
                mb(c)
            );
        };
        // Runs alternate between the transports, so that a slow spell of the machine
        // falls on both.
        let mut rates: Vec<(Vec<f64>, Vec<f64>)> = vec![Default::default(); transports.len()];
        let mut kcat_rates: Vec<Vec<f64>> = vec![Vec::new(); transports.len()];
        for _ in 0..args.runs {
            for (i, &(name, tls)) in transports.iter().enumerate() {
                let (produced, consumed, kcat) = run(args, size, tls).await?;
                let per_sec = |phase: Phase| args.records as f64 / phase.wall.as_secs_f64();
                let cpu = |phase: Phase| {
                    let share = |d: Duration| 100.0 * d.as_secs_f64() / phase.wall.as_secs_f64();
                    format!(
                        "{:.0}%+{:.0}%",
                        share(phase.cpu.client),
                        share(phase.cpu.broker)
                    )
                };
                let (p, c) = (per_sec(produced), per_sec(consumed));
                let kcat = kcat.map(|took| args.records as f64 / took.as_secs_f64());
                println!(
                    "{name:<10} {size:>6} {p:>14.0} {:>10.1} {c:>14.0} {:>10.1}  {:>13}  {:>13}{}",
                    mb(p),
                    mb(c),
                    cpu(produced),
                    cpu(consumed),
                    kcat.map_or(String::new(), |k| format!(" {:>10.1}", mb(k)))
                );
                kcat_rates[i].extend(kcat);
                rates[i].0.push(p);
                rates[i].1.push(c);
            }
        }
        let medians: Vec<(f64, f64)> = rates.iter().map(|(p, c)| (median(p), median(c))).collect();
        for (&(name, _), &(p, c)) in transports.iter().zip(&medians) {
            line(&format!("{name} med"), p, c);
        }
        if let [(pp, pc), (tp, tc)] = medians[..] {
            println!(
                "{:<10} {size:>6} {:>13.0}% {:>10} {:>13.0}%",
                "TLS/plain",
                100.0 * tp / pp,
                "",
                100.0 * tc / pc
            );
            if let [plain, tls] = &kcat_rates[..] {
                if !plain.is_empty() {
                    println!(
                        "kcat TLS/plaintext consume {:.0}% (medians {:.1} and {:.1} MB/s)",
                        100.0 * median(tls) / median(plain),
                        mb(median(tls)),
                        mb(median(plain))
                    );
                }
            }
        }
    }
    Ok(())
}
