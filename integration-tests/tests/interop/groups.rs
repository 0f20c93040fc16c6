//! Consumer groups of third-party clients on the broker: confluent-kafka (librdkafka) and
//! kafka-python members in one group share a topic's partitions, rebalance as members come
//! and go, and a new member resumes from the committed offsets.
//!
//! The members are the peers' `group-member` scenario: they print `assigned ..` and
//! `record P O VALUE` lines and stop when their stdin closes. The test follows their
//! output as it comes (no sleeping) and produces with Strom's client.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;

use crate::support::{Peer, TestBroker};

/// How long the group may take to reach any expected state.
const WAIT: Duration = Duration::from_secs(60);
const TOPIC: &str = "group-topic";
const GROUP: &str = "mixed-group";
const PARTITIONS: i32 = 4;

/// One running group member.
struct Member {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
}

/// What the members have printed so far.
#[derive(Default)]
struct Seen {
    /// Each record (partition, offset) with the members that consumed it.
    records: BTreeMap<(i32, i64), Vec<usize>>,
    /// Each member's latest assignment.
    assigned: BTreeMap<usize, Vec<i32>>,
    closed: Vec<usize>,
    output: String,
}

struct Group {
    members: Vec<Member>,
    lines: mpsc::Receiver<(usize, String)>,
    sender: mpsc::Sender<(usize, String)>,
    seen: Seen,
}

impl Group {
    fn new() -> Group {
        let (sender, lines) = mpsc::channel();
        Group {
            members: Vec::new(),
            lines,
            sender,
            seen: Seen::default(),
        }
    }

    /// Starts `peer` as a member; returns its index.
    fn join(&mut self, peer: &Peer, bootstrap: &str) -> usize {
        let index = self.members.len();
        let mut child = peer
            .command(bootstrap, &["group-member", GROUP, TOPIC])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", peer.name));
        let stdout = child.stdout.take().expect("piped stdout");
        let sender = self.sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send((index, line)).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        self.members.push(Member {
            name: peer.name,
            child,
            stdin,
        });
        index
    }

    /// Tells member `index` to commit, leave and exit.
    fn leave(&mut self, index: usize) {
        self.members[index].stdin.take();
        self.wait("member to close", |seen| seen.closed.contains(&index));
        let status = self.members[index]
            .child
            .wait()
            .expect("wait for the member");
        assert!(
            status.success(),
            "{} exited with {status}",
            self.members[index].name
        );
    }

    /// Reads member output until `done` holds, or fails after [`WAIT`].
    fn wait(&mut self, what: &str, done: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((member, line)) => self.record(member, &line),
                Err(_) => panic!(
                    "timed out waiting for {what}; output so far:\n{}",
                    self.seen.output
                ),
            }
        }
    }

    fn record(&mut self, member: usize, line: &str) {
        let seen = &mut self.seen;
        seen.output
            .push_str(&format!("[{}] {line}\n", self.members[member].name));
        let mut words = line.split_whitespace();
        match words.next() {
            Some("assigned") => {
                let partitions = words
                    .next()
                    .map(|list| list.split(',').filter_map(|p| p.parse().ok()).collect())
                    .unwrap_or_default();
                seen.assigned.insert(member, partitions);
            }
            Some("record") => {
                let p: i32 = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .expect("partition");
                let o: i64 = words.next().and_then(|w| w.parse().ok()).expect("offset");
                seen.records.entry((p, o)).or_default().push(member);
            }
            Some("closed") => seen.closed.push(member),
            _ => {}
        }
    }

    /// Records consumed by `member`.
    fn consumed_by(&self, member: usize) -> usize {
        self.seen
            .records
            .values()
            .filter(|m| m.contains(&member))
            .count()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        for member in &mut self.members {
            let _ = member.child.kill();
            let _ = member.child.wait();
        }
    }
}

/// Produces `count` keyed records spread over the topic's partitions.
fn produce(runtime: &tokio::runtime::Runtime, bootstrap: &str, from: usize, count: usize) {
    runtime.block_on(async {
        let config = ClientConfig::new().bootstrap(bootstrap);
        let producer = Producer::new(config).await.expect("producer");
        let mut deliveries = Vec::new();
        for i in from..from + count {
            let record = Record::new(TOPIC)
                .key(format!("key-{i}"))
                .value(i.to_string());
            deliveries.push(producer.send(record).await.expect("send"));
        }
        for delivery in deliveries {
            delivery.await.expect("delivered");
        }
        producer.close().await;
    });
}

fn owns_all(seen: &Seen, member: usize) -> bool {
    seen.assigned
        .get(&member)
        .is_some_and(|p| p.len() == PARTITIONS as usize)
}

#[test]
fn mixed_group_shares_partitions_rebalances_and_resumes() {
    let (Some(confluent), Some(kafka_python)) = (Peer::confluent(), Peer::kafka_python()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("data dir");
    let broker = TestBroker::start_with(dir.path(), |c| {
        c.num_partitions = PARTITIONS;
        c.group_initial_rebalance_delay = Duration::from_millis(100);
    });
    let bootstrap = broker.bootstrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    produce(&runtime, &bootstrap, 0, 200);

    let mut group = Group::new();
    let a = group.join(&confluent, &bootstrap);
    group.wait("the first member to own every partition", |s| {
        owns_all(s, a)
    });
    group.wait("the first 200 records", |s| s.records.len() == 200);

    // A second member joins: the partitions are split between the two.
    let b = group.join(&kafka_python, &bootstrap);
    group.wait("both members to share the partitions", |s| {
        let (pa, pb) = (s.assigned.get(&a), s.assigned.get(&b));
        matches!((pa, pb), (Some(pa), Some(pb)) if !pa.is_empty() && !pb.is_empty()
            && pa.len() + pb.len() == PARTITIONS as usize && pa.iter().all(|p| !pb.contains(p)))
    });
    produce(&runtime, &bootstrap, 200, 200);
    group.wait("400 records", |s| s.records.len() == 400);
    assert!(
        group.consumed_by(b) > 0,
        "the second member consumed nothing"
    );

    // It leaves: the first member owns everything again and reads what follows.
    group.leave(b);
    group.wait("the first member to own every partition again", |s| {
        owns_all(s, a)
    });
    produce(&runtime, &bootstrap, 400, 100);
    group.wait("500 records", |s| s.records.len() == 500);
    group.leave(a);

    let twice: Vec<_> = group
        .seen
        .records
        .iter()
        .filter(|(_, m)| m.len() > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "records consumed twice: {twice:?}\n{}",
        group.seen.output
    );

    // A new member of the group starts from the committed offsets: only the new records.
    produce(&runtime, &bootstrap, 500, 50);
    let c = group.join(&kafka_python, &bootstrap);
    group.wait("the 50 new records", |s| s.records.len() == 550);
    group.leave(c);
    assert_eq!(group.consumed_by(c), 50, "output:\n{}", group.seen.output);
    let twice = group.seen.records.values().filter(|m| m.len() > 1).count();
    assert_eq!(
        twice, 0,
        "the new member re-read committed records:\n{}",
        group.seen.output
    );
    drop(group);
    broker.shutdown();
}
