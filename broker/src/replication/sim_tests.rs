//! A seeded simulation of one partition's replication: three brokers (replicas 1, 2, 3)
//! and a controller that is always available. It drives the real sans-IO pieces, the
//! leader's [`LeaderState`], each replica's [`EpochCache`], the controller's `decide` and
//! `MetadataImage::apply`; the glue around them (`Partition::lead`, `follow`,
//! `become_leader`, `truncate_for`, `append_replicated`, the fetcher's rounds, the Fetch
//! and OffsetForLeaderEpoch handlers, `Topics::reconcile` and `request_isr`) is mirrored in
//! memory, step for step. A log is a vector of (leader epoch, record id), offsets
//! implicit; logs, epoch caches and the metadata a broker applied survive its crashes, its
//! role does not.
//!
//! Faults from a seed: crashes and restarts, cut and healed links between brokers and to
//! the controller (a broker the controller does not hear from is dead to `decide`),
//! metadata reaching a broker late or stalling, ISR requests delayed or lost, responses
//! lost, the clock jumping. Producers send acks=all to whoever believes it leads; a record
//! is acknowledged once that broker's high watermark passes it while it still leads in the
//! epoch it was written in.
//!
//! After every step: one broker per leader epoch; a leader's high watermark at most the log
//! end of every ISR member it knows, their logs equal to its own below it; every
//! acknowledged record at its offset in the current leader's log, in every ISR member's
//! log as far as it reaches, and below every replica's high watermark; two replicas' logs
//! equal below the lower of their high watermarks. At the end, faults healed, all replicas
//! hold the same log with every acknowledged record in it.
//! `STROM_SIM_SEED=N` replays one seed; failures print theirs, the step, the state and the
//! last events.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::epochs::EpochCache;
use super::leader::LeaderState;
use crate::controller::decisions::decide;
use crate::controller::image::{MetadataImage, PartitionRegistration};
use crate::controller::records::MetadataRecord;

const REPLICAS: [i32; 3] = [1, 2, 3];
const TOPIC_ID: Uuid = Uuid::from_u128(0x5157);
/// `replica.lag.time.max.ms`.
const LAG_MAX_MS: u64 = 1_000;
/// Steps per seed, before the faults are healed.
const STEPS: usize = 2_000;
/// Events kept for a failure's report.
const TRACE_LEN: usize = 40;

/// One record of a replica's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    epoch: i32,
    id: u64,
}

/// `partition::Role`.
enum Role {
    Solo,
    Leader(LeaderState),
    Follower,
}

/// One broker's replica of the partition, and the metadata it applied.
struct Broker {
    id: i32,
    up: bool,
    /// Raised by every restart; the registration's broker epoch.
    incarnation: i64,
    /// Whether this incarnation's registration reached the controller.
    registered: bool,
    log: Vec<Entry>,
    epochs: EpochCache,
    high_watermark: i64,
    role: Role,
    /// The epoch it leads in, -1 when it does not (`Partition::leader_epoch`).
    leader_epoch: i32,
    following_epoch: i32,
    /// Must ask the leader where its log diverges before fetching.
    diverged: bool,
    image: MetadataImage,
    /// How many of the controller's records it applied.
    applied: usize,
}

impl Broker {
    fn new(id: i32) -> Broker {
        Broker {
            id,
            up: true,
            incarnation: 1,
            registered: true,
            log: Vec::new(),
            epochs: EpochCache::default(),
            high_watermark: 0,
            role: Role::Solo,
            leader_epoch: -1,
            following_epoch: -1,
            diverged: false,
            image: MetadataImage::default(),
            applied: 0,
        }
    }

    fn log_end(&self) -> i64 {
        self.log.len() as i64
    }

    fn partition(&self) -> Option<&PartitionRegistration> {
        self.image.partition(TOPIC_ID, 0)
    }

    /// Whether its metadata names it the leader (what the produce, fetch and
    /// OffsetForLeaderEpoch handlers check).
    fn leads(&self) -> bool {
        self.up
            && self
                .partition()
                .is_some_and(|p| p.leader == self.id && p.leader_epoch == self.leader_epoch)
    }

    fn leader_state(&self) -> Option<&LeaderState> {
        match &self.role {
            Role::Leader(leader) if self.up => Some(leader),
            _ => None,
        }
    }

    /// `Topics::reconcile` for this partition.
    fn reconcile(&mut self, now: u64) {
        let Some(p) = self.partition().cloned() else {
            return;
        };
        if p.leader == self.id && !self.registered {
            // Not registered (this incarnation): it leads nothing yet.
            self.leader_epoch = -1;
        } else if p.leader == self.id {
            self.become_leader(p.leader_epoch);
            self.lead(&p.replicas, &p.isr, p.partition_epoch, now);
        } else {
            self.leader_epoch = -1;
            if p.leader >= 0 {
                self.follow(p.leader_epoch);
            }
        }
    }

    /// `Partition::become_leader`.
    fn become_leader(&mut self, epoch: i32) {
        if std::mem::replace(&mut self.leader_epoch, epoch) == epoch {
            return;
        }
        if self
            .epochs
            .latest()
            .is_none_or(|(latest, _)| latest < epoch)
        {
            self.epochs.assign(epoch, self.log_end());
        }
    }

    /// `Partition::lead`.
    fn lead(&mut self, replicas: &[i32], isr: &[i32], partition_epoch: i32, now: u64) {
        self.following_epoch = -1;
        self.diverged = false;
        let log_end = self.log_end();
        self.high_watermark = if replicas.len() <= 1 {
            self.role = Role::Solo;
            log_end
        } else {
            match &mut self.role {
                Role::Leader(leader) => {
                    leader.replicas_changed(replicas);
                    if leader.isr() != isr {
                        leader.isr_changed(isr, log_end);
                    }
                    leader.settled(partition_epoch, log_end);
                    leader.high_watermark()
                }
                _ => {
                    let hw = self.high_watermark;
                    let mut leader = LeaderState::new(self.id, replicas, isr, log_end, hw, now);
                    leader.settled(partition_epoch, log_end);
                    let hw = leader.high_watermark();
                    self.role = Role::Leader(leader);
                    hw
                }
            }
        };
    }

    /// `Partition::follow`.
    fn follow(&mut self, epoch: i32) {
        let was = std::mem::replace(&mut self.following_epoch, epoch);
        if !matches!(self.role, Role::Follower) || was != epoch {
            self.diverged = true;
        }
        self.role = Role::Follower;
    }

    /// `Partition::truncate_for`; returns how many records were cut.
    fn truncate_for(&mut self, answer: (i32, i64)) -> i64 {
        let log_end = self.log_end();
        let point = self
            .epochs
            .truncation_point(log_end, self.high_watermark, answer);
        let cut = (log_end - point).max(0);
        if point < log_end {
            self.log.truncate(usize::try_from(point).unwrap());
            self.epochs.truncate_from_end(point);
            self.high_watermark = self.high_watermark.min(point);
        }
        self.diverged = false;
        cut
    }

    /// `Partition::append_replicated`: records from this log's end, then the leader's
    /// high watermark.
    fn append_replicated(&mut self, entries: &[Entry], leader_hw: i64) {
        for entry in entries {
            let offset = self.log_end();
            if entry.epoch >= 0
                && self
                    .epochs
                    .latest()
                    .is_none_or(|(latest, _)| latest < entry.epoch)
            {
                self.epochs.assign(entry.epoch, offset);
            }
            self.log.push(*entry);
        }
        self.high_watermark = leader_hw.min(self.log_end());
    }

    /// `Partition::append` (one record): stamped with the epoch it leads in; returns its
    /// offset.
    fn append(&mut self, id: u64) -> i64 {
        let epoch = self.leader_epoch;
        let offset = self.log_end();
        self.log.push(Entry { epoch, id });
        if epoch >= 0
            && self
                .epochs
                .latest()
                .is_none_or(|(latest, _)| latest < epoch)
        {
            self.epochs.assign(epoch, offset);
        }
        let log_end = self.log_end();
        match &mut self.role {
            Role::Solo => self.high_watermark = log_end,
            Role::Leader(leader) => {
                if leader.on_append(log_end) {
                    self.high_watermark = leader.high_watermark();
                }
            }
            Role::Follower => {}
        }
        offset
    }

    /// `Partition::replica_fetched`: the ISR to ask for, if any.
    fn replica_fetched(&mut self, replica: i32, offset: i64, now: u64) -> Option<(Vec<i32>, i32)> {
        let log_end = self.log_end();
        let Role::Leader(leader) = &mut self.role else {
            return None;
        };
        let (moved, expand) = leader.on_fetch(replica, offset, log_end, now);
        if moved {
            self.high_watermark = leader.high_watermark();
        }
        expand.map(|isr| (isr, leader.partition_epoch()))
    }

    /// The OffsetForLeaderEpoch handler: `None` for an error (not the leader, or
    /// `current` is not its epoch).
    fn offset_for_leader_epoch(&self, current: i32, epoch: i32) -> Option<(i32, i64)> {
        if !self.leads() || current != self.leader_epoch {
            return None;
        }
        Some(self.epochs.end_offset_for(epoch, self.log_end()))
    }

    /// A restart: `Partition::open` (log and epoch cache from disk, the high watermark at
    /// the log start), then a reconcile with the metadata applied before the crash (it
    /// leads nothing until registered again).
    fn restart(&mut self, now: u64) {
        self.up = true;
        self.incarnation += 1;
        self.registered = false;
        self.role = Role::Solo;
        self.high_watermark = 0;
        self.leader_epoch = -1;
        self.following_epoch = -1;
        self.diverged = false;
        self.epochs.truncate_from_end(self.log_end());
        self.reconcile(now);
    }

    fn describe(&self) -> String {
        let p = self.partition();
        let mut text = format!(
            "broker {}: {}, metadata {} (leader {} epoch {} isr {:?}), ",
            self.id,
            if self.up { "up" } else { "down" },
            self.applied,
            p.map_or(-1, |p| p.leader),
            p.map_or(-1, |p| p.leader_epoch),
            p.map(|p| p.isr.clone()).unwrap_or_default(),
        );
        let _ = match &self.role {
            Role::Solo => write!(text, "solo"),
            Role::Leader(l) => write!(
                text,
                "leading (isr {:?}, hw {})",
                l.isr(),
                l.high_watermark()
            ),
            Role::Follower => write!(
                text,
                "following epoch {}{}",
                self.following_epoch,
                if self.diverged { ", diverged" } else { "" }
            ),
        };
        let _ = write!(
            text,
            ", leader epoch {}, log end {}, hw {}, {:?}\n  log: {}",
            self.leader_epoch,
            self.log_end(),
            self.high_watermark,
            self.epochs,
            runs(&self.log)
        );
        text
    }
}

/// A log as runs of one epoch: `[start..end) e<epoch> ids <first>..<last>`.
fn runs(log: &[Entry]) -> String {
    let mut text = String::new();
    let mut start = 0;
    for i in 1..=log.len() {
        if i == log.len() || log[i].epoch != log[start].epoch {
            let _ = write!(
                text,
                "[{start}..{i}) e{} ids {}..{}; ",
                log[start].epoch,
                log[start].id,
                log[i - 1].id
            );
            start = i;
        }
    }
    text
}

fn at(id: i32) -> usize {
    usize::try_from(id - 1).unwrap()
}

/// The first offset below `len` where two logs differ.
fn first_difference(a: &[Entry], b: &[Entry], len: i64) -> Option<usize> {
    let len = usize::try_from(len.max(0)).unwrap();
    (0..len).find(|&i| a.get(i) != b.get(i))
}

/// An acks=all produce waiting for the high watermark.
struct Pending {
    id: u64,
    broker: usize,
    epoch: i32,
    offset: i64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    acked: usize,
    failed: usize,
    truncated: i64,
    leader_epochs: usize,
    isr_changes: usize,
}

struct Sim {
    seed: u64,
    rng: StdRng,
    step: usize,
    now: u64,
    brokers: Vec<Broker>,
    /// The controller's image and every record it applied, in order; brokers apply the
    /// same records, each at its own pace.
    image: MetadataImage,
    records: Vec<MetadataRecord>,
    /// Records submitted to the controller and not applied yet.
    inbox: VecDeque<MetadataRecord>,
    /// Whether two brokers (by index) reach each other.
    linked: [[bool; 3]; 3],
    /// Whether each broker and the controller reach each other.
    heard: [bool; 3],
    /// Whether metadata stopped reaching each broker (the controller still hears it).
    stalled: [bool; 3],
    pending: Vec<Pending>,
    /// Acknowledged records by offset.
    acked: BTreeMap<i64, u64>,
    /// The broker that led each leader epoch.
    led: BTreeMap<i32, i32>,
    next_id: u64,
    trace: VecDeque<String>,
    stats: Stats,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut sim = Sim {
            seed,
            rng: StdRng::seed_from_u64(seed),
            step: 0,
            now: 1_000,
            brokers: REPLICAS.iter().map(|&id| Broker::new(id)).collect(),
            image: MetadataImage::default(),
            records: Vec::new(),
            inbox: VecDeque::new(),
            linked: [[true; 3]; 3],
            heard: [true; 3],
            stalled: [false; 3],
            pending: Vec::new(),
            acked: BTreeMap::new(),
            led: BTreeMap::new(),
            next_id: 1,
            trace: VecDeque::new(),
            stats: Stats::default(),
        };
        for id in REPLICAS {
            sim.apply(MetadataRecord::RegisterBroker {
                id,
                epoch: 1,
                host: "sim".into(),
                port: 9092,
                rack: None,
                endpoints: Vec::new(),
            });
            sim.apply(MetadataRecord::FenceBroker {
                id,
                epoch: 1,
                fenced: false,
            });
        }
        sim.apply(MetadataRecord::Topic {
            name: "t".into(),
            id: TOPIC_ID,
        });
        sim.apply(MetadataRecord::Partition {
            topic_id: TOPIC_ID,
            partition: 0,
            replicas: REPLICAS.to_vec(),
            isr: REPLICAS.to_vec(),
            leader: 1,
            leader_epoch: 0,
        });
        for b in 0..REPLICAS.len() {
            sim.deliver(b, sim.records.len());
        }
        sim
    }

    fn note(&mut self, event: String) {
        if self.trace.len() == TRACE_LEN {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>5} {event}", self.step));
    }

    /// The controller applies `record`.
    fn apply(&mut self, record: MetadataRecord) {
        let before = self.image.partition(TOPIC_ID, 0).cloned();
        self.records.push(record.clone());
        self.image.apply(&record, self.records.len() as u64);
        let after = self.image.partition(TOPIC_ID, 0).cloned();
        if let (Some(b), Some(a)) = (before, after) {
            if a != b {
                self.stats.isr_changes += usize::from(a.isr != b.isr);
                self.note(format!(
                    "controller: leader {} epoch {} isr {:?} (partition epoch {})",
                    a.leader, a.leader_epoch, a.isr, a.partition_epoch
                ));
            }
        }
    }

    /// Broker `b` applies the controller's records up to `upto` and reconciles.
    fn deliver(&mut self, b: usize, upto: usize) {
        let broker = &mut self.brokers[b];
        for index in broker.applied..upto {
            broker.image.apply(&self.records[index], index as u64 + 1);
        }
        broker.applied = upto;
        let (epoch, hw) = (broker.leader_epoch, broker.high_watermark);
        broker.reconcile(self.now);
        if broker.leader_epoch != epoch {
            // `become_leader` and `resign` wake the acks=all waiters of the epoch that
            // ended before `lead` moves the high watermark: those it had not passed fail.
            let waiting = self.pending.len();
            self.pending.retain(|p| p.broker != b || p.offset < hw);
            self.stats.failed += waiting - self.pending.len();
        }
        let broker = &self.brokers[b];
        let p = broker.partition().cloned();
        let id = broker.id;
        if let Some(p) = p {
            self.note(format!(
                "{id} takes metadata {upto}: leader {} epoch {} isr {:?}",
                p.leader, p.leader_epoch, p.isr
            ));
        }
    }

    /// `Topics::request_isr` on broker `b`: a change guarded by the partition epoch it
    /// knows, which may be lost on its way.
    fn request_isr(&mut self, b: usize, isr: Vec<i32>, guard: i32, loss: f64) {
        let broker = &self.brokers[b];
        let Some(p) = broker.partition() else {
            return;
        };
        if p.leader != broker.id || p.partition_epoch != guard {
            return;
        }
        let record = MetadataRecord::PartitionChange {
            topic_id: TOPIC_ID,
            partition: 0,
            if_partition_epoch: Some(guard),
            leader: None,
            isr: Some(isr.clone()),
            replicas: None,
            adding: None,
            removing: None,
        };
        let epoch = p.partition_epoch;
        let lost = !self.heard[b] || self.rng.random_bool(loss);
        self.note(format!(
            "{} asks for isr {isr:?} at partition epoch {epoch}{}",
            broker.id,
            if lost { " (lost)" } else { "" }
        ));
        if !lost {
            self.inbox.push_back(record);
        }
    }

    fn produce(&mut self) {
        let leaders: Vec<usize> = (0..self.brokers.len())
            .filter(|&b| self.brokers[b].leads())
            .collect();
        if leaders.is_empty() {
            return;
        }
        let b = leaders[self.rng.random_range(0..leaders.len())];
        let id = self.next_id;
        self.next_id += 1;
        let broker = &mut self.brokers[b];
        let offset = broker.append(id);
        let (epoch, broker_id) = (broker.leader_epoch, broker.id);
        self.pending.push(Pending {
            id,
            broker: b,
            epoch,
            offset,
        });
        self.note(format!(
            "{broker_id} appends record {id} at {offset} in epoch {epoch}"
        ));
    }

    /// One round of follower `f`'s fetcher against the leader its metadata names: the
    /// OffsetForLeaderEpoch exchange when its log may have diverged, then a Fetch from
    /// its log end, for at most `count` records. Each response is lost with probability
    /// `loss`.
    fn fetch(&mut self, f: usize, count: i64, loss: f64) {
        let follower = &self.brokers[f];
        let Some(p) = follower.partition() else {
            return;
        };
        if !follower.up || p.leader < 0 || p.leader == follower.id {
            return;
        }
        let (l, current, fid) = (at(p.leader), p.leader_epoch, follower.id);
        if !self.brokers[l].up || !self.linked[f][l] {
            return;
        }
        if follower.diverged {
            let latest = follower.epochs.latest().map_or(-1, |(epoch, _)| epoch);
            let Some(answer) = self.brokers[l].offset_for_leader_epoch(current, latest) else {
                return;
            };
            if self.rng.random_bool(loss) {
                return;
            }
            let cut = self.brokers[f].truncate_for(answer);
            self.stats.truncated += cut;
            self.note(format!(
                "{fid} asks {} where epoch {latest} ends: {answer:?}; cuts {cut}, log end {}",
                l + 1,
                self.brokers[f].log_end()
            ));
        }
        let offset = self.brokers[f].log_end();
        // `leader_epoch_check` (KIP-320): a fetch in another epoch than the leader's is
        // refused, and says nothing of the follower's progress.
        let same_epoch = self.brokers[l].leader_epoch == current;
        if same_epoch {
            if let Some((isr, guard)) = self.brokers[l].replica_fetched(fid, offset, self.now) {
                self.request_isr(l, isr, guard, loss * 2.0);
            }
        }
        let leader = &self.brokers[l];
        if !leader.leads() || !same_epoch {
            return;
        }
        if offset > leader.log_end() {
            // OFFSET_OUT_OF_RANGE: `Partition::follow_again`.
            self.brokers[f].diverged = true;
            self.note(format!("{fid} fetches from {} past its log end", l + 1));
            return;
        }
        let end = (offset + count).min(leader.log_end());
        let entries =
            leader.log[usize::try_from(offset).unwrap()..usize::try_from(end).unwrap()].to_vec();
        let hw = leader.high_watermark.min(leader.log_end());
        if self.rng.random_bool(loss) {
            return;
        }
        self.brokers[f].append_replicated(&entries, hw);
        if !entries.is_empty() {
            self.note(format!(
                "{fid} fetches [{offset}..{end}) from {}, hw {hw}",
                l + 1
            ));
        }
    }

    /// The controller applies what was submitted to it (broker registrations first).
    fn controller_applies(&mut self, all: bool) {
        for b in 0..self.brokers.len() {
            let broker = &mut self.brokers[b];
            if broker.up && !broker.registered && self.heard[b] {
                broker.registered = true;
                let record = MetadataRecord::RegisterBroker {
                    id: broker.id,
                    epoch: broker.incarnation,
                    host: "sim".into(),
                    port: 9092,
                    rack: None,
                    endpoints: Vec::new(),
                };
                self.apply(record);
            }
        }
        let count = if all || self.inbox.is_empty() {
            self.inbox.len()
        } else {
            self.rng.random_range(1..=self.inbox.len())
        };
        for _ in 0..count {
            if let Some(record) = self.inbox.pop_front() {
                self.apply(record);
            }
        }
    }

    fn controller_decides(&mut self) {
        let alive = |id: i32| self.brokers[at(id)].up && self.heard[at(id)];
        for record in decide(&self.image, alive) {
            self.apply(record);
        }
    }

    fn deliver_some(&mut self) {
        let b = self.rng.random_range(0..self.brokers.len());
        let behind = self.brokers[b].applied < self.records.len();
        if self.brokers[b].up && self.heard[b] && !self.stalled[b] && behind {
            let upto = self
                .rng
                .random_range(self.brokers[b].applied + 1..=self.records.len());
            self.deliver(b, upto);
        }
    }

    /// `watch_isr` on one broker (`Partition::lagging`).
    fn shrink(&mut self) {
        let b = self.rng.random_range(0..self.brokers.len());
        let now = self.now;
        let broker = &mut self.brokers[b];
        let wanted = match &broker.role {
            Role::Leader(leader) if broker.up => leader
                .shrink(now, LAG_MAX_MS)
                .map(|isr| (isr, leader.partition_epoch())),
            _ => None,
        };
        if let Some((isr, guard)) = wanted {
            self.request_isr(b, isr, guard, 0.1);
        }
    }

    fn crash_or_restart(&mut self) {
        let b = self.rng.random_range(0..self.brokers.len());
        let down = self.brokers.iter().filter(|b| !b.up).count();
        if self.brokers[b].up && down < 2 {
            self.brokers[b].up = false;
            self.brokers[b].role = Role::Solo;
            self.note(format!("{} crashes", b + 1));
        } else if !self.brokers[b].up {
            self.brokers[b].restart(self.now);
            self.note(format!("{} restarts", b + 1));
        }
    }

    /// Starts or ends one of nine faults (at most three at once): a cut between two
    /// brokers, a cut between a broker and the controller, or a broker's metadata stalling
    /// while the controller still hears from it.
    fn cut_or_heal(&mut self) {
        let faults = (0..9).filter(|&fault| self.faulty(fault)).count();
        let fault = self.rng.random_range(0..9);
        let on = !self.faulty(fault);
        if on && faults >= 3 {
            return;
        }
        let b = fault % 3;
        let (what, b2) = match fault / 3 {
            0 => {
                let c = (b + 1) % 3;
                self.linked[b][c] = !on;
                self.linked[c][b] = !on;
                ("link to", format!("{}", c + 1))
            }
            1 => {
                self.heard[b] = !on;
                ("link to", "the controller".into())
            }
            _ => {
                self.stalled[b] = on;
                ("metadata", "stalls".into())
            }
        };
        let state = if on { "starts" } else { "ends" };
        self.note(format!("{} {what} {b2}: fault {state}", b + 1));
    }

    /// Whether fault `fault` is on: 0-2 cuts between brokers, 3-5 cuts to the controller,
    /// 6-8 stalled metadata.
    fn faulty(&self, fault: usize) -> bool {
        let b = fault % 3;
        match fault / 3 {
            0 => !self.linked[b][(b + 1) % 3],
            1 => !self.heard[b],
            _ => self.stalled[b],
        }
    }

    /// Answers the produce requests whose fate is known: acknowledged once the high
    /// watermark passes the record, failed once the broker stops leading in that epoch
    /// (`wait_for_high_watermark`) or goes down.
    fn resolve_acks(&mut self) -> Result<(), String> {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            let broker = &self.brokers[p.broker];
            let outcome = if !broker.up {
                Some(false)
            } else if broker.high_watermark > p.offset {
                Some(true)
            } else if broker.leader_epoch != p.epoch {
                Some(false)
            } else {
                None
            };
            let Some(acked) = outcome else {
                i += 1;
                continue;
            };
            let p = self.pending.swap_remove(i);
            if !acked {
                self.stats.failed += 1;
                continue;
            }
            self.stats.acked += 1;
            self.note(format!("record {} at {} acknowledged", p.id, p.offset));
            if let Some(earlier) = self.acked.insert(p.offset, p.id) {
                return Err(format!(
                    "record {} acknowledged at offset {}, where record {earlier} was acknowledged before",
                    p.id, p.offset
                ));
            }
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), String> {
        self.one_leader_per_epoch()?;
        self.leaders_stay_below_their_isr()?;
        self.acknowledged_records_stay()?;
        self.logs_agree()
    }

    fn one_leader_per_epoch(&mut self) -> Result<(), String> {
        for broker in self.brokers.iter().filter(|b| b.up && b.leader_epoch >= 0) {
            let first = *self.led.entry(broker.leader_epoch).or_insert(broker.id);
            if first != broker.id {
                return Err(format!(
                    "leader epoch {} led by {first} and by {}",
                    broker.leader_epoch, broker.id
                ));
            }
        }
        self.stats.leader_epochs = self.led.len();
        Ok(())
    }

    fn leaders_stay_below_their_isr(&self) -> Result<(), String> {
        for leader in &self.brokers {
            let Some(state) = leader.leader_state() else {
                continue;
            };
            let hw = state.high_watermark();
            for &m in state.isr() {
                let member = &self.brokers[at(m)];
                if hw > member.log_end() {
                    return Err(format!(
                        "leader {} has high watermark {hw} above the log end {} of ISR member {m}",
                        leader.id,
                        member.log_end()
                    ));
                }
                if let Some(o) = first_difference(&leader.log, &member.log, hw) {
                    return Err(format!(
                        "leader {} (high watermark {hw}) and ISR member {m} differ at offset {o}",
                        leader.id
                    ));
                }
            }
        }
        Ok(())
    }

    fn acknowledged_records_stay(&self) -> Result<(), String> {
        let p = self.image.partition(TOPIC_ID, 0).unwrap();
        let holds = |b: &Broker, offset: i64, id: u64| {
            usize::try_from(offset)
                .ok()
                .and_then(|o| b.log.get(o))
                .is_some_and(|e| e.id == id)
        };
        let lost = |b: &Broker, offset: i64, id: u64, whose: &str| {
            format!(
                "acknowledged record {id} at offset {offset} is not in the log of {whose} {}",
                b.id
            )
        };
        if p.leader >= 0 {
            let leader = &self.brokers[at(p.leader)];
            if leader.up && leader.applied == self.records.len() {
                if let Some((&o, &id)) = self.acked.iter().find(|(&o, &id)| !holds(leader, o, id)) {
                    return Err(lost(leader, o, id, "the leader"));
                }
            }
        }
        for &m in &p.isr {
            let member = &self.brokers[at(m)];
            let reached = self.acked.range(..member.log_end());
            if let Some((&o, &id)) = reached.into_iter().find(|(&o, &id)| !holds(member, o, id)) {
                return Err(lost(member, o, id, "ISR member"));
            }
        }
        for b in self.brokers.iter().filter(|b| b.up) {
            let below = b.high_watermark.min(b.log_end());
            if let Some((&o, &id)) = self.acked.range(..below).find(|(&o, &id)| !holds(b, o, id)) {
                return Err(lost(
                    b,
                    o,
                    id,
                    &format!("(below its high watermark {below})"),
                ));
            }
        }
        Ok(())
    }

    fn logs_agree(&self) -> Result<(), String> {
        let up: Vec<&Broker> = self.brokers.iter().filter(|b| b.up).collect();
        for (i, a) in up.iter().enumerate() {
            for b in &up[i + 1..] {
                let below = a
                    .high_watermark
                    .min(b.high_watermark)
                    .min(a.log_end())
                    .min(b.log_end());
                if let Some(o) = first_difference(&a.log, &b.log, below) {
                    return Err(format!(
                        "brokers {} and {} differ at offset {o}, below both high watermarks ({} and {})",
                        a.id, b.id, a.high_watermark, b.high_watermark
                    ));
                }
            }
        }
        Ok(())
    }

    /// One random event.
    fn event(&mut self) {
        match self.rng.random_range(0..100) {
            0..=19 => self.produce(),
            20..=49 => {
                let f = self.rng.random_range(0..self.brokers.len());
                let count = self.rng.random_range(0..=8);
                self.fetch(f, count, 0.05);
            }
            50..=64 => self.deliver_some(),
            65..=71 => {
                self.now += self.rng.random_range(1..=LAG_MAX_MS / 2);
            }
            72..=76 => self.shrink(),
            77..=86 => self.controller_applies(false),
            87..=91 => self.controller_decides(),
            92..=95 => self.crash_or_restart(),
            _ => self.cut_or_heal(),
        }
    }

    fn run(&mut self, steps: usize) -> Result<(), String> {
        for step in 1..=steps {
            self.step = step;
            self.event();
            self.resolve_acks()
                .and_then(|()| self.check())
                .map_err(|e| self.report(&e))?;
        }
        self.heal().map_err(|e| self.report(&e))
    }

    /// Heals every fault and runs fault-free rounds until the replicas converge, then
    /// checks that every replica holds every acknowledged record.
    fn heal(&mut self) -> Result<(), String> {
        self.step += 1;
        self.note("everything healed".into());
        self.linked = [[true; 3]; 3];
        self.heard = [true; 3];
        self.stalled = [false; 3];
        for b in 0..self.brokers.len() {
            if !self.brokers[b].up {
                self.brokers[b].restart(self.now);
            }
        }
        for _ in 0..100 {
            self.step += 1;
            self.controller_applies(true);
            self.controller_decides();
            for b in 0..self.brokers.len() {
                self.deliver(b, self.records.len());
            }
            for f in 0..self.brokers.len() {
                self.fetch(f, i64::MAX / 2, 0.0);
            }
            self.resolve_acks()?;
            self.check()?;
            if self.converged() {
                return self.all_hold_every_acknowledged_record();
            }
        }
        Err("the replicas did not converge once healed".into())
    }

    /// One leader, everyone in sync on the latest metadata, equal logs, nothing pending.
    fn converged(&self) -> bool {
        let p = self.image.partition(TOPIC_ID, 0).unwrap();
        if p.leader < 0 || p.isr.len() != REPLICAS.len() || !self.pending.is_empty() {
            return false;
        }
        let leader = &self.brokers[at(p.leader)];
        leader
            .leader_state()
            .is_some_and(|l| l.isr().len() == REPLICAS.len())
            && self.brokers.iter().all(|b| {
                b.up && b.applied == self.records.len()
                    && b.log == leader.log
                    && b.high_watermark == leader.log_end()
            })
    }

    fn all_hold_every_acknowledged_record(&self) -> Result<(), String> {
        for b in &self.brokers {
            for (&offset, &id) in &self.acked {
                let held = usize::try_from(offset).ok().and_then(|o| b.log.get(o));
                if held.is_none_or(|e| e.id != id) {
                    return Err(format!(
                        "after healing, acknowledged record {id} at offset {offset} is not in the log of {}",
                        b.id
                    ));
                }
            }
        }
        Ok(())
    }

    /// The failure, with the seed, the step, the state and the last events.
    fn report(&self, failure: &str) -> String {
        let p = self.image.partition(TOPIC_ID, 0).unwrap();
        let mut text = format!(
            "seed {} step {}: {failure}\ncontroller: leader {} epoch {} isr {:?} partition epoch {}, {} records, {} submitted\n",
            self.seed,
            self.step,
            p.leader,
            p.leader_epoch,
            p.isr,
            p.partition_epoch,
            self.records.len(),
            self.inbox.len()
        );
        for b in &self.brokers {
            let _ = writeln!(text, "{}", b.describe());
        }
        let _ = writeln!(text, "acknowledged: {:?}", self.acked);
        let _ = writeln!(text, "last events:");
        for event in &self.trace {
            let _ = writeln!(text, "  {event}");
        }
        text
    }
}

#[test]
fn replicas_keep_every_acknowledged_record_under_seeded_faults() {
    let seeds: Vec<u64> = match std::env::var("STROM_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("STROM_SIM_SEED is a number")],
        Err(_) => (0..64).collect(),
    };
    let mut failures: Vec<(u64, String)> = Vec::new();
    let mut total = Stats::default();
    for &seed in &seeds {
        let mut sim = Sim::new(seed);
        if let Err(report) = sim.run(STEPS) {
            failures.push((seed, report));
            continue;
        }
        total.acked += sim.stats.acked;
        total.failed += sim.stats.failed;
        total.truncated += sim.stats.truncated;
        total.leader_epochs += sim.stats.leader_epochs;
        total.isr_changes += sim.stats.isr_changes;
    }
    if let Some((_, first)) = failures.first() {
        let summary: Vec<&str> = failures
            .iter()
            .filter_map(|(_, report)| report.lines().next())
            .collect();
        panic!(
            "{} of {} seeds failed:\n{}\n\nthe first in full:\n{first}",
            failures.len(),
            seeds.len(),
            summary.join("\n")
        );
    }
    let runs = seeds.len();
    assert!(
        total.acked > 50 * runs && total.leader_epochs > 3 * runs && total.truncated > 0,
        "the simulation did too little to prove anything: {total:?}"
    );
}
