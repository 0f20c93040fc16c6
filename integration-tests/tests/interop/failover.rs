//! Kill -9 under load: three `strom broker` processes (127.0.0.1-3), a topic of three
//! partitions with three replicas and `min.insync.replicas=2`, and two idempotent acks=all
//! producers writing all the while: librdkafka (confluent-kafka) and Strom. Each cycle
//! SIGKILLs the leader of a partition picked by a seeded generator, waits for a new leader
//! and for the producers to get acknowledgements again, restarts the node and waits until
//! it is back in every ISR. A Strom consumer reads throughout.
//!
//! Afterwards every acknowledged record is in the log exactly once, at the offset it was
//! acknowledged with, in the order each producer wrote it per partition, and the consumer
//! that ran through the failovers has read them all. `STROM_STRESS_SEED` replays a seed,
//! `STROM_STRESS_CYCLES` sets the number of cycles (4 by default); the seed is printed.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_client::admin::{Admin, NewTopic, OffsetSpec};
use strom_client::cluster::PartitionMetadata;
use strom_client::producer::{Producer, Record};
use strom_client::{ClientConfig, Consumer};
use strom_testkit::ProcessCluster;
use tokio::time::Instant;

use crate::support::Peer;

const TOPIC: &str = "stress";
const PARTITIONS: i32 = 3;
/// How long each expected state may take.
const WAIT: Duration = Duration::from_secs(60);

/// A record as acknowledged or read: partition, offset, value.
type Placed = (i32, i64, String);

/// splitmix64: a small seeded generator, enough to pick victims reproducibly.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// The topic's partitions as any live broker describes them, once `ready` holds.
async fn partitions_until(
    admin: &Admin,
    what: &str,
    ready: impl Fn(&[PartitionMetadata]) -> bool,
) -> Vec<PartitionMetadata> {
    let deadline = Instant::now() + WAIT;
    loop {
        let described = admin
            .describe_topics(&[TOPIC])
            .await
            .ok()
            .and_then(|mut d| d.pop())
            .map(|d| d.partitions)
            .unwrap_or_default();
        if described.len() == PARTITIONS as usize && ready(&described) {
            return described;
        }
        assert!(Instant::now() < deadline, "{what}: {described:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One poll of `consumer`, its records added to `read`.
async fn poll_into(consumer: &Consumer, read: &Mutex<BTreeSet<Placed>>) {
    for r in consumer
        .poll(Duration::from_millis(100))
        .await
        .expect("poll")
    {
        let value = String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned();
        read.lock()
            .expect("lock")
            .insert((r.partition, r.offset, value));
    }
}

/// Waits until `count` has grown by `by` from `from`.
async fn progress(count: &AtomicUsize, from: usize, by: usize, what: &str) {
    let deadline = Instant::now() + WAIT;
    while count.load(Ordering::Relaxed) < from + by {
        assert!(
            Instant::now() < deadline,
            "{what}: {} acknowledged",
            count.load(Ordering::Relaxed) - from
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_leaders_killed_under_load() {
    let Some(peer) = Peer::confluent() else {
        return;
    };
    if !ProcessCluster::loopback_addresses_usable() {
        return;
    }
    // RUST_LOG=strom_client=debug shows the producer's retries.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let seed = env_number("STROM_STRESS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let cycles = env_number("STROM_STRESS_CYCLES").unwrap_or(4);
    eprintln!(
        "failover stress: seed {seed}, {cycles} cycles (STROM_STRESS_SEED, STROM_STRESS_CYCLES)"
    );
    let mut rng = seed;

    let mut cluster = ProcessCluster::start(3, &[]).expect("start the cluster");
    let bootstrap = cluster.bootstrap_all();
    let config = ClientConfig::new()
        .bootstrap(&bootstrap)
        .client_id("failover-stress");
    let admin = Admin::connect(config.clone()).await.expect("admin");
    let deadline = Instant::now() + WAIT;
    while admin
        .describe_cluster()
        .await
        .map_or(0, |c| c.brokers.len())
        < 3
    {
        assert!(Instant::now() < deadline, "brokers never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin
        .create_topic(
            NewTopic::new(TOPIC)
                .partitions(PARTITIONS)
                .replication_factor(3)
                .config("min.insync.replicas", "2"),
        )
        .await
        .expect("create the topic");
    partitions_until(&admin, "all in sync", |p| {
        p.iter().all(|p| p.isr.len() == 3)
    })
    .await;

    // librdkafka, writing c-N.
    let files = tempfile::tempdir().expect("tempdir");
    let acks_file = files.path().join("librdkafka-acks.txt");
    let mut librdkafka = peer
        .command(
            &bootstrap,
            &[
                "produce-until-stdin-closed",
                TOPIC,
                &PARTITIONS.to_string(),
                acks_file.to_str().expect("utf-8 path"),
            ],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the confluent-kafka producer");

    // Strom, writing s-N, about a thousand a second.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let strom_acks: Arc<Mutex<Vec<Placed>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let producer = Producer::new(config.clone().enable_idempotence(true))
        .await
        .expect("producer");
    let producing = {
        let (stop, acked, acks, failures) = (
            stop.clone(),
            acked.clone(),
            strom_acks.clone(),
            failures.clone(),
        );
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut waiting = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let value = format!("s-{n}");
                let record = Record::new(TOPIC)
                    .partition((n % PARTITIONS as u64) as i32)
                    .value(value.clone());
                let delivery = producer.send(record).await.expect("queue a record");
                let (acked, acks, failures) = (acked.clone(), acks.clone(), failures.clone());
                waiting.push(tokio::spawn(async move {
                    match delivery.await {
                        Ok(d) => {
                            acks.lock()
                                .expect("lock")
                                .push((d.partition, d.offset, value));
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failures.lock().expect("lock").push(format!("{value}: {e}")),
                    }
                }));
                n += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            for w in waiting {
                w.await.expect("delivery task");
            }
            n
        })
    };

    // A consumer reading all the while.
    let consumer = Consumer::new(config.clone()).await.expect("consumer");
    let all: Vec<(String, i32)> = (0..PARTITIONS).map(|p| (TOPIC.to_owned(), p)).collect();
    consumer.assign(&all).expect("assign");
    consumer.seek_to_beginning(&all).expect("seek");
    let read: Arc<Mutex<BTreeSet<Placed>>> = Arc::default();
    let reading = {
        let (stop, read) = (stop.clone(), read.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                poll_into(&consumer, &read).await;
            }
            consumer
        })
    };

    progress(&acked, 0, 300, "before the first kill").await;
    for cycle in 0..cycles {
        let partition = (next(&mut rng) % PARTITIONS as u64) as usize;
        let described = partitions_until(&admin, "a leader", |p| p[partition].leader > 0).await;
        let victim = described[partition].leader;
        eprintln!("cycle {cycle}: SIGKILL node {victim}, leader of partition {partition}");
        let before = acked.load(Ordering::Relaxed);
        let victim_index = usize::try_from(victim).expect("node ids are 1-3");
        cluster.kill(victim_index).expect("SIGKILL");
        partitions_until(&admin, "a new leader", |p| {
            p[partition].leader > 0 && p[partition].leader != victim
        })
        .await;
        progress(&acked, before, 300, "acknowledgements after the failover").await;
        cluster
            .restart(victim_index)
            .expect("restart the killed node");
        partitions_until(&admin, "the restarted node back in every ISR", |p| {
            p.iter().all(|p| p.isr.len() == 3)
        })
        .await;
    }

    // Stop the producers and collect what they were told.
    stop.store(true, Ordering::Relaxed);
    let sent = producing.await.expect("producer task");
    producer.close().await;
    drop(librdkafka.stdin.take());
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::task::spawn_blocking(move || librdkafka.wait_with_output()),
    )
    .await
    .expect("the confluent-kafka producer finishes")
    .expect("join")
    .expect("its output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "confluent-kafka producer failed:\n{stdout}\n{stderr}"
    );
    let done: Vec<u64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("done "))
        .expect("a done line")
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect();
    assert_eq!(done[2], 0, "librdkafka deliveries failed:\n{stderr}");
    let failed = failures.lock().expect("lock").clone();
    let mut acks: Vec<Placed> = strom_acks.lock().expect("lock").clone();
    // Records whose delivery failed are checked after the log (did anything acknowledged
    // go missing with them?).
    assert_eq!(
        acks.len() as u64 + failed.len() as u64,
        sent,
        "every Strom record answered"
    );
    let librdkafka_acks = std::fs::read_to_string(&acks_file).expect("the acks file");
    for line in librdkafka_acks.lines() {
        let parsed = (|| {
            let mut parts = line.split_whitespace();
            let value = parts.next()?.to_owned();
            Some((
                parts.next()?.parse().ok()?,
                parts.next()?.parse().ok()?,
                value,
            ))
        })();
        acks.push(parsed.unwrap_or_else(|| panic!("acks file line {line:?}")));
    }
    assert_eq!(acks.len() as u64 + failed.len() as u64, sent + done[1]);
    eprintln!(
        "acknowledged: {sent} from Strom, {} from librdkafka, over {cycles} leader kills",
        done[1]
    );

    // The log, read afresh up to its end.
    let ends = admin
        .list_offsets(TOPIC, OffsetSpec::Latest)
        .await
        .expect("end offsets");
    let fresh = Consumer::new(config.clone()).await.expect("consumer");
    fresh.assign(&all).expect("assign");
    fresh.seek_to_beginning(&all).expect("seek");
    let mut log: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    while (0..PARTITIONS)
        .any(|p| log.get(&p).and_then(|r| r.last()).map_or(0, |(o, _)| o + 1) < ends[&p].offset)
    {
        assert!(Instant::now() < deadline, "read the log to its end");
        for r in fresh.poll(Duration::from_millis(200)).await.expect("poll") {
            let value = String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned();
            log.entry(r.partition).or_default().push((r.offset, value));
        }
    }
    fresh.shutdown().await.expect("close");

    // Exactly once: no value twice anywhere, every acknowledged one where it was acked.
    let mut at: BTreeMap<(i32, i64), &str> = BTreeMap::new();
    let mut values = BTreeSet::new();
    for (p, records) in &log {
        for (offset, value) in records {
            assert!(values.insert(value.as_str()), "{value} is in the log twice");
            at.insert((*p, *offset), value);
        }
        // Per producer, values in the order written.
        for prefix in ["s-", "c-"] {
            let numbers: Vec<u64> = records
                .iter()
                .filter_map(|(_, v)| v.strip_prefix(prefix)?.parse().ok())
                .collect();
            assert!(
                numbers.windows(2).all(|w| w[0] < w[1]),
                "partition {p}: {prefix} records out of order"
            );
        }
    }
    for (partition, offset, value) in &acks {
        assert_eq!(
            at.get(&(*partition, *offset)).copied(),
            Some(value.as_str()),
            "acknowledged {value} at {partition}/{offset} (seed {seed})"
        );
    }

    if !failed.is_empty() {
        for id in 1..=cluster.len() {
            let log = cluster.log(id);
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(TOPIC)).collect();
            eprintln!("--- node {id}, its last lines about {TOPIC} ---");
            for line in &lines[lines.len().saturating_sub(80)..] {
                eprintln!("{line}");
            }
        }
        // Where the first failed record of each partition is: in the log (written, its
        // answer lost) or not, and the Strom records around it.
        let mut seen = BTreeSet::new();
        for failure in &failed {
            let value = failure.split(':').next().unwrap_or_default();
            let n: u64 = value
                .strip_prefix("s-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_default();
            let partition = (n % PARTITIONS as u64) as i32;
            if !seen.insert(partition) {
                continue;
            }
            let records = log.get(&partition).map(Vec::as_slice).unwrap_or_default();
            let strom: Vec<&(i64, String)> = records
                .iter()
                .filter(|(_, v)| v.starts_with("s-"))
                .collect();
            let after =
                strom.partition_point(|(_, v)| v[2..].parse::<u64>().map_or(true, |m| m < n));
            let around = &strom[after.saturating_sub(5)..(after + 5).min(strom.len())];
            eprintln!(
                "partition {partition}: first failed {value}, in the log: {}; Strom records around it: {around:?}",
                at.values().any(|v| *v == value)
            );
        }
        panic!(
            "Strom deliveries failed (seed {seed}): {:?}",
            &failed[..failed.len().min(5)]
        );
    }
    // The consumer that ran through the failovers saw only records that are in the log
    // (nothing that was later cut away: it reads below the high watermark only)...
    {
        let read = read.lock().expect("lock");
        let phantoms: Vec<&Placed> = read
            .iter()
            .filter(|(p, o, v)| at.get(&(*p, *o)).copied() != Some(v.as_str()))
            .take(10)
            .collect();
        assert!(
            phantoms.is_empty(),
            "read records not in the log (seed {seed}): {phantoms:?}"
        );
    }
    // ...and read every acknowledged record.
    let deadline = Instant::now() + WAIT;
    let consumer = reading.await.expect("consumer task");
    loop {
        {
            let read = read.lock().expect("lock");
            if acks.iter().all(|a| read.contains(a)) {
                break;
            }
        }
        if Instant::now() >= deadline {
            let read = read.lock().expect("lock");
            let missed: Vec<&Placed> = acks.iter().filter(|a| !read.contains(a)).collect();
            let near: Vec<&Placed> = missed
                .iter()
                .flat_map(|(p, o, _)| {
                    read.range((*p, o - 2, String::new())..(*p, o + 3, String::new()))
                })
                .collect();
            panic!(
                "the running consumer missed {} records (seed {seed}), first {:?}; it read around them: {near:?}",
                missed.len(),
                &missed[..missed.len().min(10)]
            );
        }
        poll_into(&consumer, &read).await;
    }
    consumer.shutdown().await.expect("close");
    drop(cluster);
}
