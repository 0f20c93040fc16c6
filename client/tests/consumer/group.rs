//! Consumers in a group: partitions shared and moved as members come and go, committed
//! offsets resumed, the cooperative protocol moving only what must move.

use std::collections::BTreeSet;
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
        let consumer = Arc::new(Consumer::new(config).await.unwrap());
        let events = Arc::new(Mutex::new(Events::default()));
        consumer
            .subscribe_with_listener(&[TOPIC], Arc::new(Recorder(events.clone())))
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

#[tokio::test]
async fn group_calls_need_a_group_id() {
    let b = TestBroker::start().await;
    let consumer = Consumer::new(b.config()).await.unwrap();
    assert!(consumer.subscribe(&["t"]).is_err());
    assert!(consumer.commit().await.is_err());
}
