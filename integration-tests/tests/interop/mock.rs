//! The peers themselves, checked against a second broker: librdkafka's mock cluster
//! (started by the confluent peer's `mock-broker` mode). When a scenario fails against
//! Strom but passes here, the broker is the one to look at.
//!
//! Only what the mock serves is run: it has no CreateTopics / DeleteTopics /
//! DescribeConfigs, no timestamp look-ups and no message size limit, so `admin`,
//! `timestamps` and `large` are checked against Strom alone.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{Peer, ROUNDTRIPS};

/// A running mock cluster process, killed on drop.
struct MockCluster {
    child: Child,
    bootstrap: String,
}

impl MockCluster {
    fn start(confluent: &Peer) -> MockCluster {
        let mut child = confluent
            .command("-", &["mock-broker"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the mock cluster");
        let stdout = child.stdout.take().expect("mock cluster stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(Duration::from_secs(30));
        let bootstrap = match &line {
            Ok(Ok(line)) => line
                .trim()
                .strip_prefix("mock broker listening on ")
                .map(str::to_string),
            _ => None,
        };
        let Some(bootstrap) = bootstrap else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mock cluster did not start: {line:?}");
        };
        MockCluster { child, bootstrap }
    }
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_all(
    peer: &Peer,
    bootstrap: &str,
    scenarios: &[&[&str]],
    env: &[(&str, &str)],
) -> Vec<String> {
    let mut failures = Vec::new();
    for args in scenarios {
        let mut cmd = peer.command(bootstrap, args);
        cmd.envs(env.iter().copied());
        let out =
            strom_testkit::run_command(&mut cmd, crate::support::PEER_TIMEOUT).expect("run peer");
        if out.success() {
            eprintln!(
                "ok against the mock: {} {} ({:.1?})",
                peer.name,
                args.join(" "),
                out.elapsed
            );
        } else {
            failures.push(format!(
                "===== {} {} (mock cluster) =====\n{out}",
                peer.name,
                args.join(" ")
            ));
        }
    }
    failures
}

#[test]
fn peers_pass_against_librdkafka_mock_cluster() {
    let Some(confluent) = Peer::confluent() else {
        return;
    };
    let mock = MockCluster::start(&confluent);
    let bs = mock.bootstrap.as_str();
    let mut failures = Vec::new();

    let mut scenarios: Vec<&[&str]> = ROUNDTRIPS.to_vec();
    scenarios.extend([
        &["idempotent"][..],
        &["produce", "mock-c", "300"],
        &["consume", "mock-c", "300"],
    ]);
    failures.extend(run_all(&confluent, bs, &scenarios, &[]));

    if let Some(kafka_python) = Peer::kafka_python() {
        let mut scenarios: Vec<&[&str]> = ROUNDTRIPS.to_vec();
        scenarios.extend([
            &["idempotent"][..],
            &["produce", "mock-k", "300"],
            &["consume", "mock-k", "300"],
        ]);
        // kafka-python 3 cannot decode the mock's answer to its ApiVersions v4 probe.
        failures.extend(run_all(
            &kafka_python,
            bs,
            &scenarios,
            &[("KAFKA_PYTHON_API_VERSION", "2.1")],
        ));
    }
    if let Some(kafkajs) = Peer::kafkajs() {
        let scenarios: [&[&str]; 4] = [
            &["roundtrip", "none"],
            &["roundtrip", "gzip"],
            &["produce", "mock-j", "300"],
            &["offsets", "mock-j", "300"],
        ];
        failures.extend(run_all(&kafkajs, bs, &scenarios, &[]));
    }
    assert!(
        failures.is_empty(),
        "peers failed against the mock cluster:\n{}",
        failures.join("\n\n")
    );
}
