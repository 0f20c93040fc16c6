//! Consumers in a group: partitions shared and moved as members come and go, committed
//! offsets resumed, the cooperative protocol moving only what must move.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_client::consumer::{ListenerFuture, RebalanceListener};
use strom_client::producer::{Producer, Record};
use strom_client::{ClientConfig, Consumer};
use tokio::sync::Notify;

use super::create;
use crate::support::TestBroker;

const TOPIC: &str = "grouped";
const PARTITIONS: i32 = 4;
/// How long any expected state may take.
const WAIT: Duration = Duration::from_secs(30);

type Tp = (String, i32);

async fn broker() -> TestBroker {
    let b = TestBroker::start_with(|c| c.group_initial_rebalance_delay = Duration::ZERO).await;
    create(&b, TOPIC, PARTITIONS).await;
    b
}

fn member_config(b: &TestBroker, group: &str, strategy: &str) -> ClientConfig {
    let mut config = b.config().client_id("group-tests");
    for (k, v) in [
        ("group.id", group),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
        ("heartbeat.interval.ms", "50"),
        ("session.timeout.ms", "6000"),
        ("partition.assignment.strategy", strategy),
    ] {
        config.set(k, v).unwrap();
    }
    config
}

/// `count` records per partition, values `{first + i}`.
async fn produce(b: &TestBroker, first: usize, count: usize) {
    let producer = Producer::new(b.config()).await.unwrap();
    let mut deliveries = Vec::new();
    for p in 0..PARTITIONS {
        for i in first..first + count {
            let record = Record::new(TOPIC).partition(p).value(i.to_string());
            deliveries.push(producer.send(record).await.unwrap());
        }
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close().await;
}

/// What the listener saw.
#[derive(Default)]
struct Events {
    revoked: Vec<Tp>,
    assigned: Vec<Tp>,
    lost: Vec<Tp>,
}

struct Recorder(Arc<Mutex<Events>>);

impl RebalanceListener for Recorder {
    fn on_partitions_revoked<'a>(
        &'a self,
        consumer: &'a Consumer,
        partitions: &'a [Tp],
    ) -> ListenerFuture<'a> {
        Box::pin(async move {
            // The last chance to commit what was read of them.
            consumer.commit().await.unwrap();
            self.0.lock().unwrap().revoked.extend_from_slice(partitions);
        })
    }

    fn on_partitions_lost<'a>(
        &'a self,
        _: &'a Consumer,
        partitions: &'a [Tp],
    ) -> ListenerFuture<'a> {
        // Others may own them already (or a rebalance was cut off): nothing to commit.
        Box::pin(async move { self.0.lock().unwrap().lost.extend_from_slice(partitions) })
    }

    fn on_partitions_assigned<'a>(
        &'a self,
        _: &'a Consumer,
        partitions: &'a [Tp],
    ) -> ListenerFuture<'a> {
        Box::pin(async move {
            self.0
                .lock()
                .unwrap()
                .assigned
                .extend_from_slice(partitions)
        })
    }
}

/// A consumer polling on its own task, recording what it reads.
struct Member {
    consumer: Arc<Consumer>,
    read: Arc<Mutex<Vec<(i32, i64)>>>,
    events: Arc<Mutex<Events>>,
    task: tokio::task::JoinHandle<()>,
}

impl Member {
    async fn start(config: ClientConfig, progress: Arc<Notify>) -> Member {
        let events = Arc::new(Mutex::new(Events::default()));
        let listener = Arc::new(Recorder(events.clone()));
        Member::start_with(config, progress, listener, events).await
    }

    async fn start_with(
        config: ClientConfig,
        progress: Arc<Notify>,
        listener: Arc<dyn RebalanceListener>,
        events: Arc<Mutex<Events>>,
    ) -> Member {
        let consumer = Arc::new(Consumer::new(config).await.unwrap());
        consumer
            .subscribe_with_listener(&[TOPIC], listener)
            .unwrap();
        let read = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (consumer.clone(), read.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok(records) = c.poll(Duration::from_millis(100)).await else {
                    return;
                };
                r.lock()
                    .unwrap()
                    .extend(records.iter().map(|rec| (rec.partition, rec.offset)));
                if !records.is_empty() {
                    c.commit().await.unwrap();
                }
                progress.notify_waiters();
            }
        });
        Member {
            consumer,
            read,
            events,
            task,
        }
    }

    fn assignment(&self) -> BTreeSet<i32> {
        self.consumer
            .assignment()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    fn read(&self) -> Vec<(i32, i64)> {
        self.read.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        self.consumer.shutdown().await.unwrap();
    }
}

/// Waits (woken by the members' polls) until `cond` holds.
async fn until(progress: &Notify, what: &str, cond: impl Fn() -> bool) {
    let waiting = async {
        loop {
            let next = progress.notified();
            if cond() {
                return;
            }
            next.await;
        }
    };
    tokio::time::timeout(WAIT, waiting)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

fn split(a: &Member, b: &Member) -> bool {
    let (pa, pb) = (a.assignment(), b.assignment());
    !pa.is_empty()
        && !pb.is_empty()
        && pa.is_disjoint(&pb)
        && pa.len() + pb.len() == PARTITIONS as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_partitions_and_resume_from_commits() {
    let b = broker().await;
    produce(&b, 0, 40).await;
    let progress = Arc::new(Notify::new());
    let config = member_config(&b, "shared", "range");
    let first = Member::start(config.clone(), progress.clone()).await;
    until(&progress, "the first member to read everything", || {
        first.read().len() == 160
    })
    .await;
    assert_eq!(first.assignment().len(), 4);

    let second = Member::start(config.clone(), progress.clone()).await;
    until(&progress, "the partitions to be split", || {
        split(&first, &second)
    })
    .await;
    // The eager protocol revoked all of the first member's partitions before the split.
    assert_eq!(first.events.lock().unwrap().revoked.len(), 4);
    produce(&b, 40, 10).await;
    until(&progress, "the new records", || {
        first.read().len() + second.read().len() == 200
    })
    .await;
    assert_eq!(
        second.read().len(),
        second.assignment().len() * 10,
        "only records after the commits"
    );

    second.stop().await;
    until(
        &progress,
        "the first member to own everything again",
        || first.assignment().len() == 4,
    )
    .await;
    first.stop().await;

    // A new member resumes where the group committed.
    produce(&b, 50, 5).await;
    let third = Member::start(config, progress.clone()).await;
    until(&progress, "the 20 newest records", || {
        third.read().len() == 20
    })
    .await;
    let offsets: BTreeSet<i64> = third.read().iter().map(|(_, o)| *o).collect();
    assert_eq!(offsets, (50..55).collect());
    let committed = third
        .consumer
        .committed(&[(TOPIC.to_owned(), 0), (TOPIC.to_owned(), 3)])
        .await
        .unwrap();
    assert_eq!(committed, [Some(55), Some(55)]);
    third.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_members_keep_what_they_keep() {
    let b = broker().await;
    produce(&b, 0, 5).await;
    let progress = Arc::new(Notify::new());
    let config = member_config(&b, "cooperative", "cooperative-sticky");
    let first = Member::start(config.clone(), progress.clone()).await;
    until(&progress, "the first member to read everything", || {
        first.read().len() == 20
    })
    .await;
    let second = Member::start(config, progress.clone()).await;
    until(&progress, "the partitions to be split", || {
        split(&first, &second)
    })
    .await;
    let kept = first.assignment();
    let revoked: BTreeSet<i32> = first
        .events
        .lock()
        .unwrap()
        .revoked
        .iter()
        .map(|(_, p)| *p)
        .collect();
    assert_eq!(kept.len(), 2);
    assert!(
        revoked.is_disjoint(&kept),
        "kept partitions were revoked: {revoked:?} / {kept:?}"
    );
    assert_eq!(
        revoked.len(),
        2,
        "only the partitions that moved were revoked"
    );
    assert_eq!(
        second.read().len(),
        0,
        "the moved partitions start at the committed offsets"
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_and_assignment_exclude_each_other_and_unsubscribe_revokes() {
    let b = broker().await;
    produce(&b, 0, 1).await;
    let consumer = Consumer::new(member_config(&b, "exclusive", "range"))
        .await
        .unwrap();
    consumer.assign(&[(TOPIC.to_owned(), 0)]).unwrap();
    assert!(
        consumer.subscribe(&[TOPIC]).is_err(),
        "subscribed over a manual assignment"
    );
    consumer.assign(&[]).unwrap();
    let events = Arc::new(Mutex::new(Events::default()));
    consumer
        .subscribe_with_listener(&[TOPIC], Arc::new(Recorder(events.clone())))
        .unwrap();
    assert!(
        consumer.assign(&[(TOPIC.to_owned(), 0)]).is_err(),
        "assigned while subscribed"
    );
    tokio::time::timeout(WAIT, async {
        while consumer.assignment().len() < PARTITIONS as usize {
            consumer.poll(Duration::from_millis(50)).await.unwrap();
        }
    })
    .await
    .expect("assignment");
    consumer.commit_async().unwrap().await.unwrap().unwrap();
    let given = [(TOPIC.to_owned(), 0, 1)];
    consumer
        .commit_offsets_async(&given)
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    let committed = consumer.committed(&[(TOPIC.to_owned(), 0)]).await.unwrap();
    assert_eq!(committed, [Some(1)]);
    consumer.unsubscribe().await.unwrap();
    assert!(consumer.assignment().is_empty());
    assert_eq!(events.lock().unwrap().revoked.len(), PARTITIONS as usize);
    consumer.assign(&[(TOPIC.to_owned(), 0)]).unwrap();
}

#[tokio::test]
async fn group_calls_need_a_group_id() {
    let b = TestBroker::start().await;
    let consumer = Consumer::new(b.config()).await.unwrap();
    assert!(consumer.subscribe(&["t"]).is_err());
    assert!(consumer.commit().await.is_err());
}

/// Who owns each partition, as the members' listeners report it; a partition assigned
/// while another member still holds it is a violation.
#[derive(Default)]
struct Owners {
    by_partition: BTreeMap<i32, usize>,
    violations: Vec<String>,
}

struct Ownership {
    me: usize,
    owners: Arc<Mutex<Owners>>,
}

impl RebalanceListener for Ownership {
    fn on_partitions_revoked<'a>(
        &'a self,
        consumer: &'a Consumer,
        partitions: &'a [Tp],
    ) -> ListenerFuture<'a> {
        Box::pin(async move {
            consumer.commit().await.unwrap();
            self.release(partitions);
        })
    }

    fn on_partitions_lost<'a>(
        &'a self,
        _: &'a Consumer,
        partitions: &'a [Tp],
    ) -> ListenerFuture<'a> {
        Box::pin(async move { self.release(partitions) })
    }

    fn on_partitions_assigned<'a>(
        &'a self,
        _: &'a Consumer,
        partitions: &'a [Tp],
    ) -> ListenerFuture<'a> {
        Box::pin(async move {
            let mut owners = self.owners.lock().unwrap();
            for (_, p) in partitions {
                if let Some(other) = owners.by_partition.insert(*p, self.me) {
                    if other != self.me {
                        let v = format!(
                            "partition {p} given to member {} while {other} held it",
                            self.me
                        );
                        owners.violations.push(v);
                    }
                }
            }
        })
    }
}

impl Ownership {
    fn release(&self, partitions: &[Tp]) {
        let mut owners = self.owners.lock().unwrap();
        for (_, p) in partitions {
            if owners.by_partition.get(p) == Some(&self.me) {
                owners.by_partition.remove(p);
            }
        }
    }
}

/// Whether the current members own every partition exactly once.
fn settled(members: &[Member]) -> bool {
    let mut all: Vec<i32> = members.iter().flat_map(|m| m.assignment()).collect();
    let total = all.len();
    all.sort_unstable();
    all.dedup();
    total == PARTITIONS as usize
        && all.len() == total
        && members.iter().all(|m| !m.assignment().is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_keeps_one_owner_per_partition_and_loses_nothing() {
    let b = broker().await;
    let progress = Arc::new(Notify::new());
    let config = member_config(&b, "churn", "cooperative-sticky");
    let owners = Arc::new(Mutex::new(Owners::default()));
    let mut next = 0;
    let mut join = |progress: Arc<Notify>| {
        let listener = Arc::new(Ownership {
            me: next,
            owners: owners.clone(),
        });
        next += 1;
        Member::start_with(
            config.clone(),
            progress,
            listener,
            Arc::new(Mutex::new(Events::default())),
        )
    };
    // Records flow throughout.
    let producing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let producer = {
        let (bootstrap, producing) = (b.config(), producing.clone());
        tokio::spawn(async move {
            let producer = Producer::new(bootstrap).await.unwrap();
            let mut sent = 0usize;
            while producing.load(std::sync::atomic::Ordering::SeqCst) {
                for p in 0..PARTITIONS {
                    let record = Record::new(TOPIC).partition(p).value(sent.to_string());
                    producer.send(record).await.unwrap().await.unwrap();
                }
                sent += 1;
                tokio::task::yield_now().await;
            }
            producer.close().await;
            sent
        })
    };
    let mut members = vec![join(progress.clone()).await, join(progress.clone()).await];
    let mut departed: Vec<(i32, i64)> = Vec::new();
    let mut last_committed = vec![0i64; PARTITIONS as usize];
    for step in 0..6 {
        if step % 2 == 0 {
            members.push(join(progress.clone()).await);
        } else {
            let leaving = members.remove(0);
            let read = leaving.read.clone();
            leaving.stop().await;
            departed.extend(read.lock().unwrap().iter().copied());
        }
        until(&progress, "the group to settle", || settled(&members)).await;
        let partitions: Vec<Tp> = (0..PARTITIONS).map(|p| (TOPIC.to_owned(), p)).collect();
        let committed = members[0].consumer.committed(&partitions).await.unwrap();
        for (p, c) in committed.iter().enumerate() {
            let c = c.unwrap_or(0);
            assert!(
                c >= last_committed[p],
                "step {step}: partition {p} committed offset went back from {} to {c}",
                last_committed[p]
            );
            last_committed[p] = c;
        }
    }
    producing.store(false, std::sync::atomic::Ordering::SeqCst);
    let rounds = producer.await.unwrap() as i64;
    until(&progress, "every record to be consumed", || {
        let mut seen: BTreeSet<(i32, i64)> = departed.iter().copied().collect();
        for m in &members {
            seen.extend(m.read());
        }
        (0..PARTITIONS).all(|p| (0..rounds).all(|o| seen.contains(&(p, o))))
    })
    .await;
    let violations = owners.lock().unwrap().violations.clone();
    assert!(violations.is_empty(), "{violations:?}");
    for m in members {
        m.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_subscriptions_follow_new_topics_and_partitions() {
    let b = broker().await;
    create(&b, "pat-a", 1).await;
    create(&b, "other", 1).await;
    let mut config = member_config(&b, "pattern", "range");
    config.set("metadata.max.age.ms", "50").unwrap();
    let consumer = Consumer::new(config).await.unwrap();
    consumer.subscribe_pattern("pat-.*", None).unwrap();
    let producer = Producer::new(b.config()).await.unwrap();
    let send = |topic: &'static str, partition: i32| {
        let producer = producer.clone();
        async move {
            let record = Record::new(topic).partition(partition).value(topic);
            producer.send(record).await.unwrap().await.unwrap();
        }
    };
    send("pat-a", 0).await;
    send("other", 0).await;
    let mut seen: BTreeSet<(String, i32)> = BTreeSet::new();
    read_until(&consumer, &mut seen, ("pat-a", 0)).await;
    // A topic created later that matches joins the subscription.
    create(&b, "pat-b", 1).await;
    send("pat-b", 0).await;
    read_until(&consumer, &mut seen, ("pat-b", 0)).await;
    // Partitions added to a subscribed topic are assigned too.
    b.admin().await.create_partitions("pat-a", 3).await.unwrap();
    send("pat-a", 2).await;
    read_until(&consumer, &mut seen, ("pat-a", 2)).await;
    assert!(
        !seen.iter().any(|(t, _)| t == "other"),
        "read a topic the pattern does not match"
    );
    assert!(consumer.subscribe_pattern("(", None).is_err());
    producer.close().await;
    consumer.shutdown().await.unwrap();
}

/// Polls until a record of `want` arrives, noting every (topic, partition) read.
async fn read_until(consumer: &Consumer, seen: &mut BTreeSet<(String, i32)>, want: (&str, i32)) {
    let want = (want.0.to_owned(), want.1);
    tokio::time::timeout(WAIT, async {
        while !seen.contains(&want) {
            for r in consumer.poll(Duration::from_millis(50)).await.unwrap() {
                seen.insert((r.topic.clone(), r.partition));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no record of {want:?}"));
}
