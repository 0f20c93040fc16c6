//! Shared by the interop and crash tests: an in-process broker and the peer programs of
//! `integration-tests/peers/`.
#![allow(dead_code)] // crash.rs includes this module too and uses only part of it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use strom_broker::{Broker, BrokerConfig};
use strom_testkit::{find_in_path, peers_dir, repo_root, require_peer, run_command, CommandOutput};

/// A backstop only: every peer ends itself after 30 s per scenario.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// A broker running in this process on its own tokio runtime, so tests can stay
/// synchronous and block on child processes while the broker serves them.
pub struct TestBroker {
    // Dropped before the runtime that drives it.
    broker: Option<Broker>,
    runtime: tokio::runtime::Runtime,
    data_dir: PathBuf,
    _owned_dir: Option<tempfile::TempDir>,
}

impl TestBroker {
    /// Starts a broker with default settings on a fresh temporary data dir.
    pub fn start() -> TestBroker {
        let dir = tempfile::tempdir().expect("create a temporary data dir");
        let mut broker = TestBroker::start_in(dir.path());
        broker._owned_dir = Some(dir);
        broker
    }

    /// Starts a broker with default settings on `data_dir` (which may hold an earlier
    /// broker's data).
    pub fn start_in(data_dir: &Path) -> TestBroker {
        TestBroker::start_with(data_dir, |_| {})
    }

    /// Starts a broker on `data_dir` with settings changed by `configure`.
    pub fn start_with(data_dir: &Path, configure: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build a tokio runtime for the broker");
        let mut config = BrokerConfig::new(data_dir);
        configure(&mut config);
        let broker = runtime
            .block_on(Broker::start(config))
            .unwrap_or_else(|e| panic!("broker did not start on {}: {e}", data_dir.display()));
        TestBroker {
            broker: Some(broker),
            runtime,
            data_dir: data_dir.to_path_buf(),
            _owned_dir: None,
        }
    }

    /// The address the broker listens on (which may differ from what it advertises).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.broker
            .as_ref()
            .map(Broker::local_addr)
            .expect("broker running")
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        self.broker
            .as_ref()
            .map(Broker::bootstrap)
            .unwrap_or_default()
    }

    /// Runs `work` (a test's own requests) on the broker's runtime.
    pub fn block_on<F: std::future::Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
    }

    /// The broker's data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Shuts the broker down cleanly and waits for it.
    pub fn shutdown(mut self) {
        if let Some(broker) = self.broker.take() {
            self.runtime
                .block_on(broker.shutdown())
                .expect("clean broker shutdown");
        }
    }
}

/// Three in-process brokers forming one cluster (each also a controller of its metadata
/// quorum), on one runtime; topics have three replicas unless created otherwise.
pub struct TestCluster {
    brokers: Vec<Option<Broker>>,
    runtime: tokio::runtime::Runtime,
    _dirs: Vec<tempfile::TempDir>,
}

impl TestCluster {
    /// Starts the three and waits until each knows all three as live brokers.
    pub fn start() -> TestCluster {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build a tokio runtime for the cluster");
        let listeners: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a controller port"))
            .collect();
        let voters = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{}@{}", i + 1, l.local_addr().expect("bound address")))
            .collect::<Vec<_>>()
            .join(",");
        let mut brokers = Vec::new();
        let mut dirs = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let dir = tempfile::tempdir().expect("create a temporary data dir");
            let mut config = BrokerConfig::new(dir.path());
            config.node_id = i as i32 + 1;
            config
                .set("controller.quorum.voters", &voters)
                .expect("voters");
            config.group_initial_rebalance_delay = std::time::Duration::ZERO;
            config.default_replication_factor = 3;
            let broker = runtime
                .block_on(Broker::start_with_controller_listener(config, listener))
                .expect("cluster broker starts");
            brokers.push(Some(broker));
            dirs.push(dir);
        }
        let cluster = TestCluster {
            brokers,
            runtime,
            _dirs: dirs,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let registered = strom_testkit::wait_until(deadline, || {
            cluster
                .brokers
                .iter()
                .flatten()
                .all(|b| b.live_brokers().len() == 3)
        });
        assert!(registered, "the brokers did not all register");
        cluster
    }

    /// `127.0.0.1:PORT` of broker `index` (0-2).
    pub fn bootstrap(&self, index: usize) -> String {
        self.brokers[index]
            .as_ref()
            .map(Broker::bootstrap)
            .expect("broker running")
    }

    /// The index (0-2) of the broker leading partition `partition` of `topic`.
    pub fn leader_of(&self, topic: &str, partition: i32) -> usize {
        let bootstrap = self.bootstrap(self.brokers.iter().position(Option::is_some).unwrap_or(0));
        let leader = self.runtime.block_on(async {
            let admin = strom_client::admin::Admin::connect(
                strom_client::ClientConfig::new().bootstrap(&bootstrap),
            )
            .await
            .expect("admin connects");
            let topics = admin.describe_topics(&[topic]).await.expect("describe");
            topics[0].partitions[usize::try_from(partition).unwrap_or(0)].leader
        });
        usize::try_from(leader - 1).expect("a leader")
    }

    /// Stops broker `index` (its partitions' leadership moves to in-sync followers).
    pub fn stop(&mut self, index: usize) {
        if let Some(broker) = self.brokers[index].take() {
            self.runtime
                .block_on(broker.shutdown())
                .expect("clean broker shutdown");
        }
    }

    /// Shuts every broker down cleanly.
    pub fn shutdown(mut self) {
        for index in 0..self.brokers.len() {
            self.stop(index);
        }
    }
}

/// A command for a third-party program, with the environment cleaned of what `cargo test`
/// adds for Rust binaries: `cargo test --workspace` puts the native library folders of
/// every build script on `LD_LIBRARY_PATH`, among them rdkafka-sys's bundled librdkafka
/// (built without zstd), which kcat would load instead of the system's.
pub fn peer_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd
}

/// One third-party client program: an interpreter and its peer script.
pub struct Peer {
    pub name: &'static str,
    program: PathBuf,
    script: PathBuf,
}

fn peer_script(file: &str) -> PathBuf {
    repo_root().join("integration-tests/peers").join(file)
}

impl Peer {
    /// confluent-kafka-python (librdkafka 2.x) from the `.peers/venv`.
    pub fn confluent() -> Option<Peer> {
        let python = require_peer("confluent-kafka", peers_dir().join("venv/bin/python"))?;
        Some(Peer {
            name: "confluent-kafka",
            program: python,
            script: peer_script("confluent_kafka_peer.py"),
        })
    }

    /// kafka-python (pure Python) from the `.peers/venv`.
    pub fn kafka_python() -> Option<Peer> {
        let python = require_peer("kafka-python", peers_dir().join("venv/bin/python"))?;
        Some(Peer {
            name: "kafka-python",
            program: python,
            script: peer_script("kafka_python_peer.py"),
        })
    }

    /// kafkajs 2.2.4 from `.peers/node`, run by `node` from `PATH`.
    pub fn kafkajs() -> Option<Peer> {
        require_peer(
            "kafkajs",
            peers_dir().join("node/node_modules/kafkajs/package.json"),
        )?;
        let node = require_peer(
            "node",
            find_in_path("node").unwrap_or_else(|| PathBuf::from("/usr/bin/node")),
        )?;
        Some(Peer {
            name: "kafkajs",
            program: node,
            script: peer_script("kafkajs_peer.js"),
        })
    }

    /// `PROGRAM SCRIPT BOOTSTRAP ARGS...`, not yet started.
    pub fn command(&self, bootstrap: &str, args: &[&str]) -> Command {
        let mut cmd = peer_command(&self.program);
        cmd.arg(&self.script).arg(bootstrap).args(args);
        cmd.env("STROM_PEERS_DIR", peers_dir());
        cmd.env("PYTHONUNBUFFERED", "1");
        cmd
    }

    /// Runs the peer to completion (or [`PEER_TIMEOUT`]).
    pub fn run(&self, bootstrap: &str, args: &[&str]) -> CommandOutput {
        run_command(&mut self.command(bootstrap, args), PEER_TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.name))
    }

    /// Runs the peer and panics, showing its output, unless it succeeds.
    pub fn run_ok(&self, bootstrap: &str, args: &[&str]) -> CommandOutput {
        let out = self.run(bootstrap, args);
        assert!(
            out.success(),
            "{} {} failed:\n{out}",
            self.name,
            args.join(" ")
        );
        out
    }
}

/// Runs each scenario (the peer's arguments after BOOTSTRAP) against its own fresh
/// broker, one after another, and fails at the end listing every failed scenario with
/// its output, so one failure does not hide the others.
pub fn run_scenarios(peer: &Peer, scenarios: &[&[&str]]) {
    let mut failures = String::new();
    for args in scenarios {
        let broker = TestBroker::start();
        let out = peer.run(&broker.bootstrap(), args);
        // The records must be stored compressed as asked, not merely round-trip: a client
        // that turns compression off (librdkafka does when ApiVersions lacks what it looks
        // for) would otherwise pass unnoticed.
        let stored = match args {
            ["roundtrip", codec] if out.success() && !out.stdout.contains("skipped:") => {
                check_stored_codec(broker.data_dir(), "roundtrip-", codec).err()
            }
            _ => None,
        };
        broker.shutdown();
        let what = format!("{} {}", peer.name, args.join(" "));
        if let Some(problem) = stored {
            eprintln!("FAILED: {what}");
            let _ = write!(
                failures,
                "\n===== {what} =====\nstored batches: {problem}\n{out}\n"
            );
        } else if out.success() {
            for skipped in out.stdout.lines().filter(|l| l.starts_with("skipped:")) {
                eprintln!("{skipped}");
            }
            eprintln!("ok: {what} ({:.1?})", out.elapsed);
        } else {
            eprintln!("FAILED: {what}");
            let _ = write!(failures, "\n===== {what} =====\n{out}\n");
        }
    }
    assert!(
        failures.is_empty(),
        "{} scenarios failed:{failures}",
        peer.name
    );
}

/// Checks that the batches stored for topics named `prefix…` are compressed with `codec`:
/// at least one is, and none uses another codec. (librdkafka sends a batch uncompressed
/// when compressing would make it larger, so a few small batches may be stored plain.)
pub fn check_stored_codec(data_dir: &Path, prefix: &str, codec: &str) -> Result<(), String> {
    let mut compressed = 0;
    let mut plain = 0;
    let entries = std::fs::read_dir(data_dir).map_err(|e| e.to_string())?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(prefix) {
            continue;
        }
        for file in std::fs::read_dir(entry.path())
            .map_err(|e| e.to_string())?
            .flatten()
        {
            if file.path().extension().and_then(|e| e.to_str()) != Some("log") {
                continue;
            }
            let data = std::fs::read(file.path()).map_err(|e| e.to_string())?;
            for item in strom_protocol::records::batches(&data) {
                let (header, _) = item.map_err(|e| format!("{name}: {e}"))?;
                let stored = header.compression().map_err(|e| e.to_string())?.name();
                if stored == codec {
                    compressed += 1;
                } else if stored == "none" {
                    plain += 1;
                } else {
                    return Err(format!(
                        "{name}: batch at offset {} stored as {stored}, expected {codec}",
                        header.base_offset
                    ));
                }
            }
        }
    }
    if compressed == 0 && codec != "none" {
        return Err(format!(
            "none of the {plain} batches stored for topics {prefix}* is compressed with {codec}"
        ));
    }
    if compressed + plain == 0 {
        return Err(format!("no batches stored for topics {prefix}*"));
    }
    Ok(())
}

/// Every roundtrip scenario, one per codec.
pub const ROUNDTRIPS: [&[&str]; 5] = [
    &["roundtrip", "none"],
    &["roundtrip", "gzip"],
    &["roundtrip", "snappy"],
    &["roundtrip", "lz4"],
    &["roundtrip", "zstd"],
];

/// Parses the `ack I OFFSET` lines a peer's `produce` scenario prints.
pub fn parse_acks(stdout: &str) -> Vec<(u64, i64)> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut parts = line.strip_prefix("ack ")?.split_whitespace();
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect()
}

/// The scenarios every peer runs: admin, each codec, timestamps, idempotence, large
/// records.
pub fn standard_scenarios(peer: Option<Peer>) {
    let Some(peer) = peer else { return };
    let mut scenarios: Vec<&[&str]> = vec![&["admin"]];
    scenarios.extend(ROUNDTRIPS);
    scenarios.extend([&["timestamps"][..], &["idempotent"], &["large"]]);
    run_scenarios(&peer, &scenarios);
}

/// Produces 300 numbered records and checks their acknowledged offsets, then consumes them
/// back with the same peer.
pub fn produce_then_consume(peer: Option<Peer>) {
    let Some(peer) = peer else { return };
    let broker = TestBroker::start();
    let out = peer.run_ok(&broker.bootstrap(), &["produce", "numbers", "300"]);
    let acks = parse_acks(&out.stdout);
    let expected: Vec<(u64, i64)> = (0..300).map(|i| (i, i as i64)).collect();
    assert_eq!(acks, expected, "acknowledged offsets\n{out}");
    peer.run_ok(&broker.bootstrap(), &["consume", "numbers", "300"]);
    broker.shutdown();
}
