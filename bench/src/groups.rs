//! `strom-bench groups`: rebalance latency of Strom's group consumer, the time from a
//! member joining to the group consuming again.
//!
//! For each `heartbeat.interval.ms`, protocol (eager: `range`; cooperative:
//! `cooperative-sticky`) and group size N, on a fresh topic of `max(6, 2N)` partitions and
//! a fresh group:
//!
//! ```text
//!  producer task ── --rate records/s, round-robin over the partitions ──▶ topic
//!  N-1 members, each a task polling in a loop (--poll-ms), rebalance listener recording
//!  every revoke / assign with its time and the first records received after it
//!
//!  T0: member N starts ─▶ JoinGroup parks ─▶ the others see REBALANCE_IN_PROGRESS on their
//!      next heartbeat and rejoin in poll ─▶ SyncGroup ─▶ (cooperative: the members that
//!      gave partitions up rejoin, the others notice by heartbeat again) ─▶ assigned
//!      ─▶ every member receives records ─▶ consuming
//!  member N shuts down (leaves); the group settles again; repeat --joins times
//! ```
//!
//! Per join: *assigned*, T0 to the last member's last `on_partitions_assigned` once every
//! partition is owned exactly once and the new member owns some; *consuming*, T0 to the
//! last member's first records after its last rebalance; the partitions revoked from the
//! members that were already there; the rebalance rounds (assignments per member). The
//! group must then stay quiet (no rebalance) for a heartbeat interval plus 0.5 s and be
//! `Stable` in DescribeGroups before the next step. The same is measured for forming the
//! N-1 member group from nothing (where `group.initial.rebalance.delay.ms` applies) and for
//! the joiner leaving.
//!
//! The members' heartbeat timers share a phase (each started when the group first formed),
//! and how long they take to notice a join is the wait for their next heartbeat. So join k
//! of K (and the leave after it) starts (k - 0.5) / K of a heartbeat interval after a
//! heartbeat, sampling that wait evenly rather than at whatever phase a fixed pause hits.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use strom_client::admin::{Admin, NewTopic};
use strom_client::consumer::{ListenerFuture, RebalanceListener};
use strom_client::producer::{Producer, Record};
use strom_client::{ClientConfig, Consumer};
use tokio::task::JoinHandle;

use crate::latency::Pacer;

/// Options of `strom-bench groups`.
#[derive(Args, Debug, Clone)]
pub struct GroupsArgs {
    /// Group sizes, counting the member that joins.
    #[arg(long, value_delimiter = ',', default_value = "3,30")]
    pub members: Vec<usize>,
    /// Rebalance protocols: eager (the `range` assignor), cooperative (`cooperative-sticky`).
    #[arg(long, value_delimiter = ',', default_value = "eager,cooperative")]
    pub protocols: Vec<String>,
    /// heartbeat.interval.ms values: how soon members notice a rebalance.
    #[arg(long, value_delimiter = ',', default_value = "3000,100")]
    pub heartbeat_ms: Vec<u64>,
    /// session.timeout.ms of the members.
    #[arg(long, default_value_t = 45_000)]
    pub session_timeout_ms: u64,
    /// Joins (each followed by the joiner leaving) per scenario.
    #[arg(long, default_value_t = 5)]
    pub joins: usize,
    /// Records per second produced across the partitions.
    #[arg(long, default_value_t = 2_000)]
    pub rate: u64,
    /// Partitions per member (at least 6 in all).
    #[arg(long, default_value_t = 2)]
    pub partitions_per_member: i32,
    /// fetch.max.wait.ms of the members.
    #[arg(long, default_value_t = 500)]
    pub fetch_max_wait_ms: u64,
    /// Timeout of each member's polls, in ms.
    #[arg(long, default_value_t = 100)]
    pub poll_ms: u64,
    /// group.initial.rebalance.delay.ms of the embedded broker.
    #[arg(long, default_value_t = 0)]
    pub initial_rebalance_delay_ms: u64,
    /// Use this broker instead of an embedded one (its own initial delay applies).
    #[arg(long)]
    pub bootstrap: Option<String>,
}

/// How long a group may take to settle before the scenario fails.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// Delivery futures the feed keeps before awaiting the oldest.
const FEED_WINDOW: usize = 1_000;

/// The rebalance protocols compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Eager,
    Cooperative,
}

impl Protocol {
    fn parse(name: &str) -> anyhow::Result<Protocol> {
        match name {
            "eager" => Ok(Protocol::Eager),
            "cooperative" => Ok(Protocol::Cooperative),
            _ => bail!("unknown protocol {name:?} (eager, cooperative)"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Protocol::Eager => "eager",
            Protocol::Cooperative => "cooperative",
        }
    }

    fn assignor(self) -> &'static str {
        match self {
            Protocol::Eager => "range",
            Protocol::Cooperative => "cooperative-sticky",
        }
    }
}

/// One group configuration measured.
#[derive(Clone, Copy, Debug)]
struct Scenario {
    heartbeat_ms: u64,
    protocol: Protocol,
    members: usize,
    partitions: i32,
}

impl Scenario {
    /// How long the group must go without a rebalance to count as settled: a member still
    /// to notice one does so within a heartbeat interval.
    fn quiet(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms + 500)
    }
}

/// What a rebalance did to one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Revoked,
    Assigned,
    Lost,
}

#[derive(Clone, Copy, Debug)]
struct Event {
    at: Instant,
    change: Change,
    partitions: usize,
}

/// One member as its listener and poll loop see it.
#[derive(Default)]
struct Slot {
    /// Partitions owned, as the listener was told.
    owned: BTreeSet<i32>,
    /// Listener calls since the window was last cleared.
    events: Vec<Event>,
    /// When `poll` first returned records after the last listener call.
    first_records: Option<Instant>,
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The rebalance listener: records each change in the member's slot.
struct Probe(Arc<Mutex<Slot>>);

impl Probe {
    fn record(&self, change: Change, partitions: &[(String, i32)]) {
        let at = Instant::now();
        let mut slot = lock(&self.0);
        for (_, p) in partitions {
            match change {
                Change::Assigned => slot.owned.insert(*p),
                Change::Revoked | Change::Lost => slot.owned.remove(p),
            };
        }
        slot.events.push(Event {
            at,
            change,
            partitions: partitions.len(),
        });
        slot.first_records = None;
    }
}

impl RebalanceListener for Probe {
    fn on_partitions_revoked<'a>(
        &'a self,
        _consumer: &'a Consumer,
        partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        self.record(Change::Revoked, partitions);
        Box::pin(std::future::ready(()))
    }

    fn on_partitions_assigned<'a>(
        &'a self,
        _consumer: &'a Consumer,
        partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        self.record(Change::Assigned, partitions);
        Box::pin(std::future::ready(()))
    }

    fn on_partitions_lost<'a>(
        &'a self,
        _consumer: &'a Consumer,
        partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        self.record(Change::Lost, partitions);
        Box::pin(std::future::ready(()))
    }
}

/// A group member running on its own task.
struct Member {
    slot: Arc<Mutex<Slot>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Member {
    /// Starts a consumer that subscribes to `topic` and polls until stopped.
    fn start(config: ClientConfig, topic: &str, poll: Duration) -> Member {
        let slot = Arc::new(Mutex::new(Slot::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (records_slot, flag, topic) = (slot.clone(), stop.clone(), topic.to_owned());
        let probe = Arc::new(Probe(slot.clone()));
        let task = tokio::spawn(async move {
            let consumer = Consumer::new(config).await?;
            consumer.subscribe_with_listener(&[&topic], probe)?;
            while !flag.load(Ordering::Acquire) {
                let records = consumer.poll(poll).await?;
                if !records.is_empty() {
                    let at = Instant::now();
                    lock(&records_slot).first_records.get_or_insert(at);
                }
            }
            consumer.shutdown().await?;
            Ok(())
        });
        Member { slot, stop, task }
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        lock(&self.slot)
    }

    /// Shuts the consumer down (it leaves the group) and waits for its task.
    async fn stop(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Release);
        self.task.await?
    }
}

/// One rebalance, measured from its start `t0`.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    /// To the last member's last assignment.
    assigned: Duration,
    /// To the last member's first records after its last rebalance.
    consuming: Duration,
    /// Partitions revoked from the members that were there before.
    revoked: usize,
    /// Partitions lost (membership lost without a rebalance): should stay 0.
    lost: usize,
    /// Assignments of the member that had the most: the rebalance rounds.
    rounds: usize,
    /// Partitions the joining member ended up with.
    joiner_partitions: usize,
}

/// The window's events of `members`; the first `existing` were there before `t0`, any
/// others joined.
fn measure(members: &[Member], t0: Instant, existing: usize) -> Sample {
    let mut sample = Sample::default();
    for (i, member) in members.iter().enumerate() {
        let slot = member.slot();
        let count = |change: Change| -> usize {
            let changed = slot.events.iter().filter(|e| e.change == change);
            changed.map(|e| e.partitions).sum()
        };
        let mut assignments = slot.events.iter().filter(|e| e.change == Change::Assigned);
        sample.rounds = sample.rounds.max(assignments.clone().count());
        if let Some(last) = assignments.next_back() {
            sample.assigned = sample.assigned.max(last.at.saturating_duration_since(t0));
        }
        if let Some(first) = slot.first_records {
            sample.consuming = sample.consuming.max(first.saturating_duration_since(t0));
        }
        if i < existing {
            sample.revoked += count(Change::Revoked);
        } else {
            sample.joiner_partitions = slot.owned.len();
        }
        sample.lost += count(Change::Lost);
    }
    sample
}

/// When `members` are settled, the time of their latest rebalance event: each partition
/// owned by exactly one member (the last, if `joiner`, owning some), and every member
/// having rebalanced since the window was cleared and received records since.
fn settled_at(members: &[Member], partitions: i32, joiner: bool) -> Option<Instant> {
    let mut owners = vec![0u32; usize::try_from(partitions).ok()?];
    let mut latest: Option<Instant> = None;
    for member in members {
        let slot = member.slot();
        let last = slot.events.last()?.at;
        slot.first_records?;
        for &p in &slot.owned {
            *owners.get_mut(usize::try_from(p).ok()?)? += 1;
        }
        latest = latest.max(Some(last));
    }
    if joiner && members.last()?.slot().owned.is_empty() {
        return None;
    }
    owners.iter().all(|&n| n == 1).then_some(latest).flatten()
}

/// Waits until `members` are settled, have had no rebalance for `quiet`, and the
/// coordinator calls the group `Stable` with as many members; returns the time of the last
/// rebalance event.
async fn wait_settled(
    members: &[Member],
    scenario: &Scenario,
    joiner: bool,
    admin: &Admin,
    group: &str,
) -> anyhow::Result<Instant> {
    let start = Instant::now();
    loop {
        if let Some(stopped) = members.iter().position(|m| m.task.is_finished()) {
            bail!("member {stopped} stopped polling");
        }
        if start.elapsed() > SETTLE_LIMIT {
            bail!("not settled after {SETTLE_LIMIT:?}: {}", describe(members));
        }
        let settled = settled_at(members, scenario.partitions, joiner);
        let Some(last) = settled.filter(|at| at.elapsed() >= scenario.quiet()) else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let described = admin.describe_group(group).await?;
        if described.state == "Stable" && described.members.len() == members.len() {
            return Ok(last);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each member's owned partitions and event count, for a failure message.
fn describe(members: &[Member]) -> String {
    let parts: Vec<String> = members
        .iter()
        .map(|m| {
            let slot = m.slot();
            format!(
                "{:?} ({} events, records {})",
                slot.owned,
                slot.events.len(),
                if slot.first_records.is_some() {
                    "yes"
                } else {
                    "no"
                }
            )
        })
        .collect();
    parts.join("; ")
}

/// Forgets the members' events: a new window starts.
fn clear(members: &[Member]) {
    for member in members {
        member.slot().events.clear();
    }
}

/// The producer task keeping records flowing.
struct Feed {
    stop: Arc<AtomicBool>,
    task: JoinHandle<anyhow::Result<u64>>,
}

impl Feed {
    async fn start(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        rate: u64,
    ) -> anyhow::Result<Feed> {
        let config = ClientConfig::new()
            .bootstrap(bootstrap)
            .linger(Duration::from_millis(1));
        let producer = Producer::new(config).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, topic) = (stop.clone(), topic.to_owned());
        let task = tokio::spawn(async move {
            let sent = feed(&producer, &topic, partitions, rate, &flag).await;
            producer.close().await;
            sent
        });
        Ok(Feed { stop, task })
    }

    /// Stops producing; returns the records sent.
    async fn stop(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Release);
        self.task.await?
    }
}

/// Sends `rate` records/s to `topic`'s partitions in turn until `stop`.
async fn feed(
    producer: &Producer,
    topic: &str,
    partitions: i32,
    rate: u64,
    stop: &AtomicBool,
) -> anyhow::Result<u64> {
    let value = Bytes::from(vec![b'x'; 100]);
    let pacer = Pacer::new(rate, u64::MAX);
    let mut pending = VecDeque::with_capacity(FEED_WINDOW);
    let mut sent: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        let due = pacer.due();
        while sent < due {
            let partition = i32::try_from(sent % partitions as u64)?;
            let record = Record::new(topic).partition(partition).value(value.clone());
            pending.push_back(producer.send(record).await?);
            sent += 1;
        }
        while pending.len() > FEED_WINDOW {
            if let Some(oldest) = pending.pop_front() {
                oldest.await.context("feed")?;
            }
        }
        tokio::time::sleep(Pacer::TICK).await;
    }
    for delivery in pending {
        delivery.await.context("feed")?;
    }
    Ok(sent)
}

/// A scenario's results.
struct Outcome {
    scenario: Scenario,
    formed: Sample,
    joins: Vec<Sample>,
    leaves: Vec<Sample>,
}

/// Runs every scenario against `bootstrap`.
pub async fn run(args: &GroupsArgs, bootstrap: &str) -> anyhow::Result<()> {
    let protocols: Vec<Protocol> = args
        .protocols
        .iter()
        .map(|p| Protocol::parse(p))
        .collect::<anyhow::Result<_>>()?;
    if args.members.iter().any(|&n| n < 2) {
        bail!("a group needs at least 2 members (one of them joins)");
    }
    let admin = Admin::connect(ClientConfig::new().bootstrap(bootstrap)).await?;
    let delay = match &args.bootstrap {
        Some(_) => "the broker's own".to_owned(),
        None => format!("{} ms", args.initial_rebalance_delay_ms),
    };
    println!(
        "broker {bootstrap}; group.initial.rebalance.delay.ms {delay}; {} records/s; \
         session.timeout.ms {}; fetch.max.wait.ms {}; polls of {} ms; auto-commit on; \
         {} joins per scenario",
        args.rate, args.session_timeout_ms, args.fetch_max_wait_ms, args.poll_ms, args.joins
    );
    let mut results = Vec::new();
    for &heartbeat_ms in &args.heartbeat_ms {
        for &protocol in &protocols {
            for &members in &args.members {
                let partitions = (args.partitions_per_member * members as i32).max(6);
                let scenario = Scenario {
                    heartbeat_ms,
                    protocol,
                    members,
                    partitions,
                };
                println!(
                    "heartbeat.interval.ms {heartbeat_ms}, {}, {members} members, {partitions} partitions",
                    protocol.name()
                );
                match run_scenario(&admin, bootstrap, &scenario, args).await {
                    Ok(outcome) => results.push(outcome),
                    Err(e) => println!("  failed: {e:#}"),
                }
            }
        }
    }
    print_table(&results);
    Ok(())
}

/// One scenario on a fresh topic and group: form N-1 members, then join and leave.
async fn run_scenario(
    admin: &Admin,
    bootstrap: &str,
    scenario: &Scenario,
    args: &GroupsArgs,
) -> anyhow::Result<Outcome> {
    let name = format!(
        "groups-{}-hb{}-{}-{}",
        std::process::id(),
        scenario.heartbeat_ms,
        scenario.protocol.name(),
        scenario.members
    );
    admin
        .create_topic(
            NewTopic::new(name.clone())
                .partitions(scenario.partitions)
                .replication_factor(1),
        )
        .await?;
    let feed = Feed::start(bootstrap, &name, scenario.partitions, args.rate).await?;
    let config = member_config(bootstrap, &name, scenario, args)?;
    let mut members = Vec::new();
    let result = join_and_leave(admin, &name, &config, scenario, args, &mut members).await;
    for member in &members {
        member.stop.store(true, Ordering::Release);
    }
    for member in members {
        if let Err(e) = member.stop().await {
            println!("  member shutdown: {e:#}");
        }
    }
    match feed.stop().await {
        Ok(sent) => println!("  {sent} records produced"),
        Err(e) => println!("  producer: {e:#}"),
    }
    result
}

/// Forms the group of N-1 members, then runs the joins, each followed by a leave.
async fn join_and_leave(
    admin: &Admin,
    group: &str,
    config: &ClientConfig,
    scenario: &Scenario,
    args: &GroupsArgs,
    members: &mut Vec<Member>,
) -> anyhow::Result<Outcome> {
    let poll = Duration::from_millis(args.poll_ms);
    let start =
        |i: usize| Member::start(config.clone().client_id(format!("member-{i}")), group, poll);
    let existing = scenario.members - 1;
    let t0 = Instant::now();
    members.extend((0..existing).map(start));
    let mut last = wait_settled(members, scenario, false, admin, group)
        .await
        .context("forming the group")?;
    let formed = measure(members, t0, existing);
    println!(
        "  formed ({existing} members): consuming after {}",
        ms(formed.consuming)
    );
    let (mut joins, mut leaves) = (Vec::new(), Vec::new());
    for round in 1..=args.joins {
        clear(members);
        let t0 = phase_start(last, scenario, round, args.joins).await;
        members.push(start(existing));
        last = wait_settled(members, scenario, true, admin, group)
            .await
            .with_context(|| format!("join {round}"))?;
        let join = measure(members, t0, existing);
        clear(members);
        let joiner = members.pop().context("no joiner")?;
        let t0 = phase_start(last, scenario, round, args.joins).await;
        joiner.stop().await.context("joiner shutdown")?;
        last = wait_settled(members, scenario, false, admin, group)
            .await
            .with_context(|| format!("leave {round}"))?;
        let leave = measure(members, t0, existing);
        println!(
            "  join {round}: assigned {}, consuming {}, revoked {}, joiner got {}, rounds {}, lost {}; \
             leave: consuming {}, revoked {}",
            ms(join.assigned),
            ms(join.consuming),
            join.revoked,
            join.joiner_partitions,
            join.rounds,
            join.lost,
            ms(leave.consuming),
            leave.revoked
        );
        joins.push(join);
        leaves.push(leave);
    }
    Ok(Outcome {
        scenario: *scenario,
        formed,
        joins,
        leaves,
    })
}

/// Waits for the `round`-th of `rounds` phases of the heartbeat interval, counted from
/// `last` (the last rebalance, which ended on the members' heartbeat: their timers share
/// a phase), and returns the time then. A join's latency depends on how long the members
/// wait for their next heartbeat; rounds spread over the interval sample that evenly,
/// where a fixed pause after settling would hit the same phase every time.
async fn phase_start(last: Instant, scenario: &Scenario, round: usize, rounds: usize) -> Instant {
    let interval = Duration::from_millis(scenario.heartbeat_ms.max(1));
    let elapsed = last.elapsed().as_nanos() / interval.as_nanos();
    let ticks = u32::try_from(elapsed + 1).unwrap_or(u32::MAX);
    let phase = interval.mul_f64((round as f64 - 0.5) / rounds.max(1) as f64);
    tokio::time::sleep_until((last + interval * ticks + phase).into()).await;
    Instant::now()
}

fn member_config(
    bootstrap: &str,
    group: &str,
    scenario: &Scenario,
    args: &GroupsArgs,
) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::new().bootstrap(bootstrap);
    config
        .set("group.id", group)?
        .set(
            "partition.assignment.strategy",
            scenario.protocol.assignor(),
        )?
        .set("heartbeat.interval.ms", &scenario.heartbeat_ms.to_string())?
        .set("session.timeout.ms", &args.session_timeout_ms.to_string())?
        .set("auto.offset.reset", "earliest")?
        .set("enable.auto.commit", "true")?
        .set("fetch.max.wait.ms", &args.fetch_max_wait_ms.to_string())?;
    Ok(config)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// "median / max" of `pick` over `samples`, in ms.
fn median_max(samples: &[Sample], pick: impl Fn(&Sample) -> Duration) -> String {
    let mut values: Vec<Duration> = samples.iter().map(pick).collect();
    values.sort_unstable();
    match (values.get(values.len() / 2), values.last()) {
        (Some(median), Some(max)) => format!(
            "{:.0} / {:.0}",
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        ),
        _ => "-".to_owned(),
    }
}

/// "min-max" (or the one value) of `pick` over `samples`.
fn range(samples: &[Sample], pick: impl Fn(&Sample) -> usize) -> String {
    let values: Vec<usize> = samples.iter().map(pick).collect();
    match (values.iter().min(), values.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
        (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
        _ => "-".to_owned(),
    }
}

fn print_table(results: &[Outcome]) {
    println!();
    println!(
        "| heartbeat.interval.ms | protocol | members | partitions | join → assigned, median / max (ms) \
         | join → consuming, median / max (ms) | revoked per join | rounds | leave → consuming, \
         median / max (ms) | forming N-1 → consuming (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for o in results {
        let s = &o.scenario;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
            s.heartbeat_ms,
            s.protocol.name(),
            s.members,
            s.partitions,
            median_max(&o.joins, |j| j.assigned),
            median_max(&o.joins, |j| j.consuming),
            range(&o.joins, |j| j.revoked),
            range(&o.joins, |j| j.rounds),
            median_max(&o.leaves, |j| j.consuming),
            o.formed.consuming.as_secs_f64() * 1e3
        );
    }
}
