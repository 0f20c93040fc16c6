//! Two instances of the word-count application share a 4-partition topic; one is killed
//! with SIGKILL mid-stream (or stopped cleanly). The survivor takes its tasks, restores
//! their counts from the changelogs, and the final counts equal a single-instance run;
//! under exactly-once every word's counts, read with `read_committed`, are 1, 2, 3, ...
//! with no repeat.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::config::IsolationLevel;
use strom_client::consumer::Consumer;
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;

const WORDS: [&str; 12] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima",
];

/// An instance process; killed when dropped.
struct Instance(Child);

impl Instance {
    fn start(bootstrap: &str, state_dir: &std::path::Path, exactly_once: bool) -> Instance {
        let mut command = Command::new(env!("CARGO_BIN_EXE_word-count"));
        command
            .arg("--instance")
            .arg(bootstrap)
            .arg(state_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if exactly_once {
            command.arg("--exactly-once");
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        let stdout = child.stdout.as_mut().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "running");
        Instance(child)
    }

    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// Closes its input: the instance commits, leaves the group and exits.
    fn stop(mut self) {
        drop(self.0.stdin.take());
        let status = self.0.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sentence `i`: three words, deterministic.
fn sentence(i: usize) -> String {
    (0..3)
        .map(|j| WORDS[(i * 7 + j * 5) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes sentences `range`, 100 at a time (each hundred acknowledged before the next),
/// so they keep arriving while an instance goes.
async fn produce(producer: &Producer, range: std::ops::Range<usize>) {
    let all: Vec<usize> = range.collect();
    for chunk in all.chunks(100) {
        let mut deliveries = Vec::new();
        for &i in chunk {
            let record = Record::new("sentences")
                .key(format!("line-{i}"))
                .value(sentence(i));
            deliveries.push(producer.send(record).await.unwrap());
        }
        for d in deliveries {
            d.await.unwrap();
        }
    }
}

/// Whether every word's last count in `seen` is at least its count in `totals`.
fn reached(seen: &BTreeMap<String, Vec<i64>>, totals: &BTreeMap<String, i64>) -> bool {
    totals
        .iter()
        .all(|(w, n)| seen.get(w).and_then(|c| c.last()).is_some_and(|c| c >= n))
}

/// Reads `word-counts` into `seen` (every count per word, in order) until `done`.
async fn read_counts(
    consumer: &Consumer,
    seen: &mut BTreeMap<String, Vec<i64>>,
    done: impl Fn(&BTreeMap<String, Vec<i64>>) -> bool,
    live: &mut [Option<Instance>],
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if done(seen) {
            return;
        }
        for instance in live.iter_mut().flatten() {
            assert!(
                instance.0.try_wait().unwrap().is_none(),
                "an instance exited"
            );
        }
        let last: BTreeMap<_, _> = seen.iter().map(|(w, c)| (w, c.last())).collect();
        assert!(Instant::now() < deadline, "counts {last:?}");
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let word = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let bytes: [u8; 8] = r.value.unwrap().as_ref().try_into().unwrap();
            seen.entry(word)
                .or_default()
                .push(i64::from_be_bytes(bytes));
        }
    }
}

/// Waits until the application's group is stable with both instances holding partitions.
async fn both_working(admin: &Admin) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let group = admin.describe_group("word-count").await.unwrap();
        let working = group
            .members
            .iter()
            .filter(|m| !m.assignment.is_empty())
            .count();
        if group.state == "Stable" && working == 2 {
            return;
        }
        assert!(Instant::now() < deadline, "{group:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(exactly_once: bool, kill: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut broker_config = BrokerConfig::new(dir.path().join("broker"));
    broker_config.group_initial_rebalance_delay = Duration::ZERO;
    broker_config.transaction_abort_interval = Duration::from_millis(500);
    let broker = Broker::start(broker_config).await.unwrap();
    let bootstrap = broker.bootstrap();
    let config = ClientConfig::new().bootstrap(&bootstrap);
    let admin = Admin::connect(config.clone()).await.unwrap();
    for topic in ["sentences", "word-counts"] {
        let new = NewTopic::new(topic).partitions(4);
        admin.create_topic(new).await.unwrap();
    }
    let producer = Producer::new(config.clone()).await.unwrap();
    let (first, total) = (600, 4_000);
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..total {
        for word in sentence(i).split(' ') {
            *expected.entry(word.to_owned()).or_default() += 1;
        }
    }
    let consumer = Consumer::new(
        config
            .clone()
            .isolation_level(IsolationLevel::ReadCommitted),
    )
    .await
    .unwrap();
    let all: Vec<(String, i32)> = (0..4).map(|p| ("word-counts".to_owned(), p)).collect();
    consumer.assign(&all).unwrap();
    consumer.seek_to_beginning(&all).unwrap();

    let a = Instance::start(&bootstrap, &dir.path().join("a"), exactly_once);
    let b = Instance::start(&bootstrap, &dir.path().join("b"), exactly_once);
    both_working(&admin).await;
    produce(&producer, 0..first).await;
    // Both instances are working before one goes.
    let half: BTreeMap<String, i64> = {
        let mut half = BTreeMap::new();
        for i in 0..first {
            for word in sentence(i).split(' ') {
                *half.entry(word.to_owned()).or_default() += 1;
            }
        }
        half
    };
    let mut live = [Some(a), Some(b)];
    let mut seen = BTreeMap::new();
    read_counts(&consumer, &mut seen, |seen| reached(seen, &half), &mut live).await;
    // Instance a goes right after more sentences are acknowledged: while it works on
    // them, with a transaction open (it commits every 100 ms).
    let middle = (first + total) / 2;
    produce(&producer, first..middle).await;
    let a = live[0].take().unwrap();
    if kill {
        a.kill();
    } else {
        a.stop();
    }
    produce(&producer, middle..total).await;
    read_counts(
        &consumer,
        &mut seen,
        |seen| reached(seen, &expected),
        &mut live,
    )
    .await;
    // The final counts equal a single instance's.
    let last: BTreeMap<String, i64> = seen
        .iter()
        .map(|(w, c)| (w.clone(), *c.last().unwrap()))
        .collect();
    assert_eq!(last, expected);
    if exactly_once {
        // Nothing counted twice, nothing skipped: each word's counts are 1, 2, 3, ...
        for (word, counts) in &seen {
            let want: Vec<i64> = (1..=expected[word]).collect();
            assert_eq!(counts, &want, "{word}");
        }
    }
    live[1].take().unwrap().stop();
    // Records of transactions that were aborted (what the killed instance had not
    // committed): visible to read_uncommitted only.
    let uncommitted = Consumer::new(config.clone()).await.unwrap();
    uncommitted.assign(&all).unwrap();
    uncommitted.seek_to_beginning(&all).unwrap();
    let committed_records: usize = seen.values().map(Vec::len).sum();
    let mut read = 0;
    while read < committed_records {
        read += uncommitted
            .poll(Duration::from_millis(200))
            .await
            .unwrap()
            .len();
    }
    read += uncommitted
        .poll(Duration::from_millis(500))
        .await
        .unwrap()
        .len();
    println!(
        "{committed_records} counts committed, {} more aborted",
        read - committed_records
    );
    uncommitted.shutdown().await.unwrap();
    consumer.shutdown().await.unwrap();
    producer.close().await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_tasks_move_and_exactly_once_counts_each_word_once() {
    run(true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_s_tasks_move_with_their_state() {
    run(false, false).await;
}
