//! Consumer groups of third-party clients on the broker, together with Strom's consumer:
//! confluent-kafka (librdkafka), kafka-python, kafkajs (with a `range` assigner: its own
//! has a name the others do not offer) and Strom members in one group share a topic's
//! partitions, rebalance as members come, leave and are killed, and a new member resumes
//! from the committed offsets.
//!
//! The members are the peers' `group-member` scenario: they print `assigned ..` and
//! `record P O VALUE` lines and stop when their stdin closes. The test follows their
//! output as it comes (no sleeping) and produces with Strom's client.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strom_client::consumer::{ListenerFuture, RebalanceListener};
use strom_client::producer::{Producer, Record};
use strom_client::{ClientConfig, Consumer};

use crate::support::{Peer, TestBroker};

/// How long the group may take to reach any expected state.
const WAIT: Duration = Duration::from_secs(60);
const TOPIC: &str = "group-topic";
const GROUP: &str = "mixed-group";
const PARTITIONS: i32 = 4;

/// One running group member: a peer process, or a Strom consumer on a thread of its own.
struct Member {
    name: &'static str,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// Tells the Strom member to stop.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
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
            child: Some(child),
            stdin,
            stop: None,
            thread: None,
        });
        index
    }

    /// Starts a Strom consumer as a member, printing the same lines as the peers do.
    fn join_strom(&mut self, bootstrap: &str) -> usize {
        let index = self.members.len();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (sender, bootstrap) = (self.sender.clone(), bootstrap.to_owned());
        let thread = std::thread::spawn(move || strom_member(&bootstrap, index, sender, stopped));
        self.members.push(Member {
            name: "strom",
            child: None,
            stdin: None,
            stop: Some(stop),
            thread: Some(thread),
        });
        index
    }

    /// Tells member `index` to commit, leave and exit.
    fn leave(&mut self, index: usize) {
        let member = &mut self.members[index];
        member.stdin.take();
        if let Some(stop) = member.stop.take() {
            let _ = stop.send(());
        }
        self.wait("member to close", |seen| seen.closed.contains(&index));
        let member = &mut self.members[index];
        if let Some(child) = member.child.as_mut() {
            let status = child.wait().expect("wait for the member");
            assert!(status.success(), "{} exited with {status}", member.name);
        }
        if let Some(thread) = member.thread.take() {
            thread.join().expect("the Strom member's thread");
        }
    }

    /// Kills member `index` (a peer process) without letting it leave or commit.
    fn kill(&mut self, index: usize) {
        let member = &mut self.members[index];
        let child = member.child.as_mut().expect("a peer process");
        child.kill().expect("kill the member");
        child.wait().expect("reap the member");
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
            if let Some(child) = member.child.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
            if let Some(stop) = member.stop.take() {
                let _ = stop.send(());
            }
        }
    }
}

/// Prints the listener's assignments as `assigned` lines.
struct Announce {
    index: usize,
    lines: mpsc::Sender<(usize, String)>,
    consumer_assignment: std::sync::Mutex<Vec<(String, i32)>>,
}

impl RebalanceListener for Announce {
    fn on_partitions_revoked<'a>(
        &'a self,
        _: &'a Consumer,
        partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        let mut owned = self.consumer_assignment.lock().expect("lock");
        owned.retain(|tp| !partitions.contains(tp));
        Box::pin(async {})
    }

    fn on_partitions_assigned<'a>(
        &'a self,
        _: &'a Consumer,
        partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        let mut owned = self.consumer_assignment.lock().expect("lock");
        owned.extend_from_slice(partitions);
        owned.sort();
        let list: Vec<String> = owned.iter().map(|(_, p)| p.to_string()).collect();
        let _ = self
            .lines
            .send((self.index, format!("assigned {}", list.join(","))));
        Box::pin(async {})
    }
}

/// A Strom consumer in the group until `stop`: the peers' `group-member` in Rust.
fn strom_member(
    bootstrap: &str,
    index: usize,
    lines: mpsc::Sender<(usize, String)>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut config = ClientConfig::new()
            .bootstrap(bootstrap)
            .client_id("strom-member");
        for (k, v) in [
            ("group.id", GROUP),
            ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "false"),
            ("heartbeat.interval.ms", "500"),
            ("session.timeout.ms", "10000"),
        ] {
            config.set(k, v).expect("config");
        }
        let consumer = Consumer::new(config).await.expect("consumer");
        let listener = Announce {
            index,
            lines: lines.clone(),
            consumer_assignment: std::sync::Mutex::new(Vec::new()),
        };
        consumer
            .subscribe_with_listener(&[TOPIC], std::sync::Arc::new(listener))
            .expect("subscribe");
        while stop.try_recv().is_err() {
            let records = consumer
                .poll(Duration::from_millis(200))
                .await
                .expect("poll");
            for r in &records {
                let value =
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
                let _ = lines.send((
                    index,
                    format!("record {} {} {value}", r.partition, r.offset),
                ));
            }
            if !records.is_empty() {
                consumer.commit().await.expect("commit");
            }
        }
        consumer.shutdown().await.expect("shutdown");
        let _ = lines.send((index, "closed".to_owned()));
    });
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

/// Whether each of `members` owns partitions, and together they own each partition once.
fn shared_by(seen: &Seen, members: &[usize]) -> bool {
    let owned: Vec<&Vec<i32>> = members
        .iter()
        .filter_map(|m| seen.assigned.get(m))
        .collect();
    let mut all: Vec<i32> = owned.iter().flat_map(|p| p.iter().copied()).collect();
    let total = all.len();
    all.sort_unstable();
    all.dedup();
    owned.len() == members.len()
        && owned.iter().all(|p| !p.is_empty())
        && total == PARTITIONS as usize
        && all.len() == PARTITIONS as usize
}

#[test]
fn mixed_group_shares_partitions_rebalances_and_resumes() {
    let (Some(confluent), Some(kafka_python), Some(kafkajs)) =
        (Peer::confluent(), Peer::kafka_python(), Peer::kafkajs())
    else {
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
    // A Strom consumer and a kafkajs one join them: four members, one partition each.
    let c = group.join_strom(&bootstrap);
    group.wait("three members to share the partitions", |s| {
        shared_by(s, &[a, b, c])
    });
    let e = group.join(&kafkajs, &bootstrap);
    group.wait("four members to share the partitions", |s| {
        shared_by(s, &[a, b, c, e])
    });
    produce(&runtime, &bootstrap, 200, 200);
    group.wait("400 records", |s| s.records.len() == 400);
    for member in [b, c, e] {
        assert!(
            group.consumed_by(member) > 0,
            "member {member} consumed nothing"
        );
    }

    // They leave: the first member owns everything again and reads what follows. The
    // Strom and kafkajs members leave; the kafka-python one is killed, and its partitions
    // move once its session times out.
    group.leave(e);
    group.leave(c);
    group.kill(b);
    group.wait("the first member to own every partition again", |s| {
        owns_all(s, a)
    });
    produce(&runtime, &bootstrap, 400, 100);
    group.wait("500 records", |s| s.records.len() == 500);
    group.leave(a);

    // At least once: only what the killed member read (and may not have committed) can be
    // read twice.
    let twice: Vec<_> = group
        .seen
        .records
        .iter()
        .filter(|(_, m)| m.len() > 1 && m[0] != b)
        .collect();
    assert!(
        twice.is_empty(),
        "records consumed twice: {twice:?}\n{}",
        group.seen.output
    );

    // A new member of the group starts from the committed offsets: only the new records.
    produce(&runtime, &bootstrap, 500, 50);
    let d = group.join(&kafka_python, &bootstrap);
    group.wait("the 50 new records", |s| s.records.len() == 550);
    group.leave(d);
    assert_eq!(group.consumed_by(d), 50, "output:\n{}", group.seen.output);
    let twice = group
        .seen
        .records
        .values()
        .filter(|m| m.contains(&d) && m.len() > 1)
        .count();
    assert_eq!(
        twice, 0,
        "the new member re-read committed records:\n{}",
        group.seen.output
    );
    drop(group);
    broker.shutdown();
}
