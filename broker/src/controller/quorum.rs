//! The quorum task: drives this node's [`QuorumNode`] on a timer, with peers' messages
//! from the [`Transport`], and publishes what it learns.
//!
//! ```text
//!  tick (election timeout / 10) ─┐
//!  peer messages (transport) ────┼─▶ quorum task ── ready(): persist, apply ──▶ messages out
//!  propose(records) ─────────────┘        │                                   status (watch):
//!                                          └─ settles proposals when applied   leader, term,
//!                                                                             commit, image
//! ```
//!
//! A quorum of this node alone elects itself when it starts, so a broker with no quorum
//! configured has a working metadata log at once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::prelude::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info};

use super::decisions::decide;
use super::image::MetadataImage;
use super::node::{QuorumError, QuorumNode, QuorumTiming};
use super::records::MetadataRecord;
use super::transport::{Inbound, Join, Transport};

/// Ticks in an election timeout.
const ELECTION_TICKS: usize = 10;

/// Ticks between a leader's heartbeats.
const HEARTBEAT_TICKS: usize = 2;

/// Why a proposal did not make it into the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProposeError {
    /// This node is not the quorum's leader; the leader's node id is given when known.
    #[error("not the active controller (leader: {leader:?})")]
    NotLeader { leader: Option<i32> },
    /// Leadership moved before the records were committed; they may not have been.
    #[error("leadership moved before the change was committed")]
    Lost,
    /// The quorum task has stopped (shutdown or a failed metadata log).
    #[error("the metadata quorum is stopped")]
    Stopped,
}

/// What the quorum looks like from this node. Ids are Kafka node ids.
#[derive(Clone, Debug)]
pub(crate) struct QuorumStatus {
    pub(crate) node_id: i32,
    pub(crate) leader: Option<i32>,
    pub(crate) term: u64,
    pub(crate) commit: u64,
    /// Voters, with the last index each is known to hold (on the leader; elsewhere only
    /// this node's is known, the others' are 0).
    pub(crate) voters: Vec<(i32, u64)>,
    pub(crate) learners: Vec<i32>,
    /// Whether this incarnation of this broker is registered and unfenced, and the
    /// cluster has its id.
    pub(crate) registered: bool,
    pub(crate) image: Arc<MetadataImage>,
}

/// Raft's id of Kafka node `id` (Raft reserves 0).
fn raft_id(id: i32) -> u64 {
    u64::from(id.unsigned_abs()) + 1
}

/// The Kafka node id of Raft's `id`.
fn node_id(id: u64) -> i32 {
    i32::try_from(id.saturating_sub(1)).unwrap_or(i32::MAX)
}

enum Command {
    Propose(
        Vec<MetadataRecord>,
        oneshot::Sender<Result<u64, ProposeError>>,
    ),
    /// Proposed through whichever node leads (Raft forwards a follower's proposal), with
    /// no answer: for records that are safe to lose or repeat.
    Submit(Vec<MetadataRecord>),
}

/// A handle on the running quorum task.
pub(crate) struct Quorum {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<QuorumStatus>,
    /// How to reach the brokers registered in the image.
    connector: crate::net::inter_broker::InterBroker,
}

/// Where the quorum task keeps and finds what it needs.
pub(crate) struct QuorumSetup<'a> {
    /// This node's (Kafka) id, not negative.
    pub(crate) node_id: i32,
    /// Folder of the metadata log.
    pub(crate) dir: &'a Path,
    /// Voters (Kafka node ids) and their controller addresses; empty for this node alone.
    pub(crate) voters: Vec<(i32, String)>,
    /// The bound controller listener, when there are peers.
    pub(crate) listener: Option<TcpListener>,
    pub(crate) election_timeout: Duration,
    /// How long a broker may stay silent before the active controller fences it
    /// (`broker.session.timeout.ms`).
    pub(crate) session_timeout: Duration,
    /// Where clients reach this broker, registered in the metadata log.
    pub(crate) advertised: (String, i32),
    /// Every listener's advertised endpoint.
    pub(crate) endpoints: Vec<super::records::Endpoint>,
    pub(crate) connector: crate::net::inter_broker::InterBroker,
    pub(crate) rack: Option<String>,
    /// This node's cluster id, given to the metadata log if it has none yet.
    pub(crate) cluster_id: String,
    /// This node's controller address, when it is not one of the voters: it joins the
    /// quorum as a learner (a broker-only node) and is reached there.
    pub(crate) learner_address: Option<String>,
}

impl Quorum {
    /// Opens the metadata log and starts the quorum task (and its transport).
    pub(crate) async fn start(
        setup: QuorumSetup<'_>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Quorum, QuorumError> {
        let me = raft_id(setup.node_id);
        let connector = setup.connector.clone();
        let peers: Vec<(u64, String)> = setup
            .voters
            .iter()
            .map(|(id, address)| (raft_id(*id), address.clone()))
            .collect();
        // Every new log starts with the configured voters, a learner's too (it is not one
        // of them, so it never stands for election; it becomes a learner when the entry
        // adding it is applied).
        let ids: Vec<u64> = if peers.is_empty() {
            vec![me]
        } else {
            peers.iter().map(|(id, _)| *id).collect()
        };
        let tick = setup.election_timeout / ELECTION_TICKS as u32;
        let timing = QuorumTiming {
            election_ticks: ELECTION_TICKS,
            heartbeat_ticks: HEARTBEAT_TICKS,
        };
        let dir = setup.dir.to_owned();
        let opened = tokio::task::spawn_blocking(move || QuorumNode::open(me, &dir, &ids, timing))
            .await
            .map_err(|e| {
                QuorumError::Store(super::raft_store::RaftStoreError::Io {
                    path: setup.dir.to_owned(),
                    source: std::io::Error::other(e),
                })
            })?;
        let mut node = opened?;
        let single = node.membership().0 == [me];
        if single && !node.is_leader() {
            node.campaign()?;
        }
        let (inbound_tx, inbound) = mpsc::channel(1024);
        let mut transport = Transport::start(me, &peers, setup.listener, inbound_tx, &shutdown);
        for (id, address) in &node.image().quorum_peers {
            transport.add_peer(raft_id(*id), address);
        }
        // Settle the election of a quorum of one before anyone asks.
        let first = node.ready()?;
        for message in first.messages {
            transport.send(message);
        }
        // This incarnation's epoch: higher than any earlier one's.
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let registration = MetadataRecord::RegisterBroker {
            id: setup.node_id,
            epoch,
            host: setup.advertised.0.clone(),
            port: setup.advertised.1,
            rack: setup.rack.clone(),
            endpoints: setup.endpoints.clone(),
        };
        let (status_tx, status) = watch::channel(status_of(&node, epoch, None));
        let (commands, command_rx) = mpsc::channel(256);
        let task = Task {
            node,
            transport,
            status: status_tx,
            pending: Vec::new(),
            registration,
            epoch,
            registered_at: None,
            liveness: Liveness::new(setup.session_timeout),
            awaiting: None,
            election_timeout: setup.election_timeout,
            cluster_id: setup.cluster_id.clone(),
            join: setup
                .learner_address
                .clone()
                .map(|address| Join { id: me, address }),
            joined_at: None,
        };
        tokio::spawn(task.run(inbound, command_rx, tick, shutdown));
        Ok(Quorum {
            commands,
            status,
            connector,
        })
    }

    /// Appends `records` to the metadata log through this node, which must be the leader;
    /// returns the index of the last once all are committed and applied here.
    pub(crate) async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, ProposeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Propose(records, reply))
            .await
            .map_err(|_| ProposeError::Stopped)?;
        answer.await.unwrap_or(Err(ProposeError::Stopped))
    }

    /// Proposes `records` through the leader, wherever it is, without waiting: lost when
    /// there is no leader; the caller repeats what it still needs.
    pub(crate) fn submit(&self, records: Vec<MetadataRecord>) {
        let _ = self.commands.try_send(Command::Submit(records));
    }

    /// The quorum as last seen.
    pub(crate) fn status(&self) -> QuorumStatus {
        self.status.borrow().clone()
    }

    /// A connection to broker `node`'s inter-broker listener, as the image has it.
    ///
    /// # Errors
    /// What went wrong, for the log: not registered, unreachable, refused.
    pub(crate) async fn connect_broker(
        &self,
        node: i32,
        client_id: &str,
    ) -> Result<strom_protocol::connection::Connection, String> {
        let image = self.image();
        let broker = image
            .brokers
            .get(&node)
            .ok_or_else(|| format!("broker {node} is not registered"))?;
        let address = format!("{}:{}", broker.host, broker.port);
        self.connector
            .connect(&address, client_id)
            .await
            .map_err(|e| format!("{address}: {e}"))
    }

    /// The metadata image as last applied here.
    pub(crate) fn image(&self) -> Arc<MetadataImage> {
        self.status.borrow().image.clone()
    }

    /// A receiver of every status change.
    pub(crate) fn watch(&self) -> watch::Receiver<QuorumStatus> {
        self.status.clone()
    }
}

/// The status of `node`; the image is `previous` again (no copy) while nothing more was
/// applied.
fn status_of(node: &QuorumNode, epoch: i64, previous: Option<&Arc<MetadataImage>>) -> QuorumStatus {
    let (mut voters, mut learners) = node.membership();
    voters.sort_unstable();
    learners.sort_unstable();
    let known = node.replication();
    QuorumStatus {
        node_id: node_id(node.id()),
        leader: node.leader().map(node_id),
        term: node.term(),
        commit: node.commit(),
        voters: voters
            .into_iter()
            .map(|id| {
                let index = known.iter().find(|(k, _)| *k == id).map_or(0, |(_, i)| *i);
                (node_id(id), index)
            })
            .collect(),
        learners: learners.into_iter().map(node_id).collect(),
        registered: node.image().cluster_id.is_some()
            && node
                .image()
                .brokers
                .get(&node_id(node.id()))
                .is_some_and(|b| b.epoch == epoch && !b.fenced),
        image: match previous {
            Some(image) if image.applied == node.image().applied => image.clone(),
            _ => Arc::new(node.image().clone()),
        },
    }
}

/// A proposal waiting for its last record to be applied.
struct Pending {
    index: u64,
    term: u64,
    reply: oneshot::Sender<Result<u64, ProposeError>>,
}

/// When each peer was last heard from, for the active controller's fencing.
struct Liveness {
    session_timeout: Duration,
    last_seen: HashMap<u64, Instant>,
    /// When this node last became the leader.
    leading_since: Option<Instant>,
}

impl Liveness {
    fn new(session_timeout: Duration) -> Liveness {
        Liveness {
            session_timeout,
            last_seen: HashMap::new(),
            leading_since: None,
        }
    }

    fn heard(&mut self, from: u64, now: Instant) {
        self.last_seen.insert(from, now);
    }

    /// Whether Kafka node `id` answered within the session timeout (`me` always has).
    fn alive(&self, id: i32, me: u64, now: Instant) -> bool {
        let raft = raft_id(id);
        if raft == me {
            return true;
        }
        // A peer never heard from gets a session from when this node took the lead; one
        // heard from (its vote included) is judged by when it last spoke, so a leader that
        // died is fenced as soon as its successor has waited out the session.
        let since = self
            .last_seen
            .get(&raft)
            .copied()
            .or(self.leading_since)
            .unwrap_or(now);
        now.saturating_duration_since(since) < self.session_timeout
    }
}

/// The quorum task's state.
struct Task {
    node: QuorumNode,
    transport: Transport,
    status: watch::Sender<QuorumStatus>,
    pending: Vec<Pending>,
    /// This broker's registration, proposed until the image has it.
    registration: MetadataRecord,
    epoch: i64,
    registered_at: Option<Instant>,
    liveness: Liveness,
    /// On the leader: the index of the last decisions proposed, not yet applied.
    awaiting: Option<u64>,
    election_timeout: Duration,
    cluster_id: String,
    /// A learner's request to join, sent until it is a member.
    join: Option<Join>,
    joined_at: Option<Instant>,
}

impl Task {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut commands: mpsc::Receiver<Command>,
        tick: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_leader = self.node.leader();
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.node.tick();
                    self.on_tick(Instant::now());
                }
                Some(arrived) = inbound.recv() => match arrived {
                    Inbound::Raft(message) => {
                        self.liveness.heard(message.from, Instant::now());
                        // A message Raft cannot use (a stale term, a removed peer) is dropped.
                        let _ = self.node.step(message);
                    }
                    Inbound::Join(join) => self.on_join(join),
                },
                Some(command) = commands.recv() => match command {
                    Command::Propose(records, reply) => {
                        propose(&mut self.node, records, reply, &mut self.pending)
                    }
                    Command::Submit(records) => {
                        if self.node.leader().is_some() {
                            let _ = self.node.propose(&records);
                        }
                    }
                },
                _ = shutdown.changed() => break,
            }
            let progress = match self.node.ready() {
                Ok(progress) => progress,
                Err(e) => {
                    // The metadata log cannot be written: this node must stop taking part.
                    error!(error = %e, "metadata quorum stopped");
                    break;
                }
            };
            for (_, record) in &progress.applied {
                if let MetadataRecord::QuorumPeer { id, address } = record {
                    self.transport.add_peer(raft_id(*id), address);
                }
            }
            for message in progress.messages {
                self.transport.send(message);
            }
            settle(
                &mut self.pending,
                &progress.applied_terms,
                progress.snapshot_installed,
            );
            let leader = self.node.leader();
            let leader_moved = leader != last_leader;
            if leader_moved {
                info!(leader = ?leader.map(node_id), term = self.node.term(), "metadata quorum leader");
                last_leader = leader;
                self.awaiting = None;
                self.liveness.leading_since = self.node.is_leader().then(Instant::now);
            }
            let changed =
                !progress.applied_terms.is_empty() || progress.membership_changed || leader_moved;
            // The leader publishes every round too: its followers' progress moves.
            if changed || self.node.is_leader() {
                let previous = self.status.borrow().image.clone();
                self.status
                    .send_replace(status_of(&self.node, self.epoch, Some(&previous)));
            }
        }
        for p in self.pending {
            let _ = p.reply.send(Err(ProposeError::Stopped));
        }
    }

    /// On the leader: adds a node that asks to join as a learner, and records where it is.
    fn on_join(&mut self, join: Join) {
        if !self.node.is_leader() {
            return;
        }
        let (voters, learners) = self.node.membership();
        if voters.contains(&join.id) {
            return;
        }
        if learners.contains(&join.id) {
            // A learner that restarted elsewhere (its controller port is picked at start):
            // every controller learns its new address from the log.
            let id = node_id(join.id);
            if self.node.image().quorum_peers.get(&id) != Some(&join.address) {
                info!(node = id, address = %join.address, "broker rejoining the metadata quorum");
                self.transport.add_peer(join.id, &join.address);
                let _ = self.node.propose(&[MetadataRecord::QuorumPeer {
                    id,
                    address: join.address,
                }]);
            }
            return;
        }
        info!(node = node_id(join.id), address = %join.address, "broker joining the metadata quorum");
        self.transport.add_peer(join.id, &join.address);
        let record = MetadataRecord::QuorumPeer {
            id: node_id(join.id),
            address: join.address.clone(),
        };
        let mut change = ConfChangeSingle::default();
        change.set_change_type(ConfChangeType::AddLearnerNode);
        change.node_id = join.id;
        let mut changes = ConfChangeV2::default();
        changes.set_changes(vec![change].into());
        // One membership change at a time: a refused one is asked for again.
        if self.node.propose(&[record]).is_ok() {
            let _ = self.node.propose_membership(changes);
        }
    }

    /// Registers this broker until the image has it, and on the leader, acts on the
    /// brokers' liveness.
    fn on_tick(&mut self, now: Instant) {
        let me = self.node.id();
        if let Some(join) = &self.join {
            let (voters, learners) = self.node.membership();
            // Joined once the log has this node as a member at its current address (a
            // learner restarting keeps its membership but not its address).
            let member = voters.contains(&me)
                || (learners.contains(&me)
                    && self.node.image().quorum_peers.get(&node_id(me)) == Some(&join.address));
            if member {
                self.join = None;
            } else if self
                .joined_at
                .is_none_or(|at| now.saturating_duration_since(at) >= self.election_timeout)
            {
                self.transport.send_join(join);
                self.joined_at = Some(now);
            }
        }
        let registered = self
            .node
            .image()
            .brokers
            .get(&node_id(me))
            .is_some_and(|b| b.epoch == self.epoch);
        let retry_due = self
            .registered_at
            .is_none_or(|at| now.saturating_duration_since(at) >= self.election_timeout);
        if !registered && retry_due && self.node.leader().is_some() {
            // A follower's proposal is forwarded to the leader by Raft.
            let _ = self.node.propose(std::slice::from_ref(&self.registration));
            self.registered_at = Some(now);
        }
        if !self.node.is_leader() {
            return;
        }
        let applied = self.node.image().applied;
        if self.awaiting.is_some_and(|index| applied < index) {
            return;
        }
        self.awaiting = None;
        let liveness = &self.liveness;
        let mut records = decide(self.node.image(), |id| liveness.alive(id, me, now));
        if self.node.image().cluster_id.is_none() {
            records.push(MetadataRecord::Cluster {
                id: self.cluster_id.clone(),
            });
        }
        if records.is_empty() {
            return;
        }
        info!(
            changes = records.len(),
            "controller: acting on broker liveness"
        );
        if self.node.propose(&records).is_ok() {
            self.awaiting = Some(self.node.last_index());
        }
    }
}

fn propose(
    node: &mut QuorumNode,
    records: Vec<MetadataRecord>,
    reply: oneshot::Sender<Result<u64, ProposeError>>,
    pending: &mut Vec<Pending>,
) {
    if !node.is_leader() {
        let _ = reply.send(Err(ProposeError::NotLeader {
            leader: node.leader().map(node_id),
        }));
        return;
    }
    if records.is_empty() {
        let _ = reply.send(Ok(node.image().applied));
        return;
    }
    match node.propose(&records) {
        Ok(()) => pending.push(Pending {
            index: node.last_index(),
            term: node.term(),
            reply,
        }),
        Err(_) => {
            let _ = reply.send(Err(ProposeError::NotLeader {
                leader: node.leader().map(node_id),
            }));
        }
    }
}

/// Answers the proposals whose last entry was applied: committed if it was applied in
/// the term it was proposed in, lost otherwise.
fn settle(pending: &mut Vec<Pending>, applied: &[(u64, u64)], snapshot: Option<u64>) {
    pending.retain_mut(|p| {
        let outcome = match applied.iter().find(|(index, _)| *index == p.index) {
            Some((_, term)) if *term == p.term => Some(Ok(p.index)),
            Some(_) => Some(Err(ProposeError::Lost)),
            None if snapshot.is_some_and(|s| s >= p.index) => Some(Err(ProposeError::Lost)),
            None => None,
        };
        match outcome {
            Some(result) => {
                let (tx, _) = oneshot::channel();
                let reply = std::mem::replace(&mut p.reply, tx);
                let _ = reply.send(result);
                false
            }
            None => true,
        }
    });
}

/// A started quorum of node 1 alone in `dir`, registered; the sender stops it.
#[cfg(test)]
pub(crate) async fn single_node(dir: &Path) -> (Arc<Quorum>, watch::Sender<bool>) {
    let (stop, shutdown) = watch::channel(false);
    let setup = QuorumSetup {
        node_id: 1,
        dir: &dir.join("__cluster_metadata"),
        voters: Vec::new(),
        listener: None,
        election_timeout: Duration::from_millis(100),
        session_timeout: Duration::from_millis(500),
        advertised: ("127.0.0.1".into(), 9092),
        endpoints: Vec::new(),
        connector: Default::default(),
        rack: None,
        cluster_id: "test-cluster".into(),
        learner_address: None,
    };
    let quorum = Arc::new(Quorum::start(setup, shutdown).await.unwrap());
    let mut status = quorum.watch();
    status.wait_for(|s| s.registered).await.unwrap();
    (quorum, stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_quorum_of_one_commits_proposals_and_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let setup = |dir| QuorumSetup {
            node_id: 0,
            dir,
            voters: Vec::new(),
            listener: None,
            election_timeout: Duration::from_millis(100),
            session_timeout: Duration::from_millis(500),
            advertised: ("127.0.0.1".to_owned(), 9092),
            endpoints: Vec::new(),
            connector: Default::default(),
            rack: None,
            cluster_id: "test-cluster".to_owned(),
            learner_address: None,
        };
        let (stop, shutdown) = watch::channel(false);
        let quorum = Quorum::start(setup(dir.path()), shutdown.clone())
            .await
            .unwrap();
        assert_eq!(quorum.status().leader, Some(0), "node 0 is Raft's 1");
        let records = vec![
            MetadataRecord::ProducerIds { next: 10 },
            MetadataRecord::ProducerIds { next: 20 },
        ];
        let index = quorum.propose(records).await.unwrap();
        let status = quorum.status();
        assert!(status.commit >= index);
        assert_eq!(status.image.next_producer_id, 20);
        assert_eq!(status.voters.len(), 1);
        stop.send_replace(true);
        drop(quorum);

        let (_stop, shutdown) = watch::channel(false);
        let quorum = Quorum::start(setup(dir.path()), shutdown).await.unwrap();
        assert_eq!(quorum.status().image.next_producer_id, 20);
        let index_after = quorum
            .propose(vec![MetadataRecord::ProducerIds { next: 30 }])
            .await
            .unwrap();
        assert!(index_after > index);
    }

    #[test]
    fn proposals_settle_by_the_term_their_entry_was_applied_in() {
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let (tx3, mut rx3) = oneshot::channel();
        let mut pending = vec![
            Pending {
                index: 5,
                term: 2,
                reply: tx1,
            },
            Pending {
                index: 6,
                term: 2,
                reply: tx2,
            },
            Pending {
                index: 9,
                term: 2,
                reply: tx3,
            },
        ];
        // 5 kept its term; 6 was replaced by a later leader's entry; 9 is not applied yet.
        settle(&mut pending, &[(5, 2), (6, 3)], None);
        assert_eq!(rx1.try_recv().unwrap(), Ok(5));
        assert_eq!(rx2.try_recv().unwrap(), Err(ProposeError::Lost));
        assert!(rx3.try_recv().is_err() && pending.len() == 1);
        // A snapshot past it: whether it made it is unknown.
        settle(&mut pending, &[], Some(10));
        assert_eq!(rx3.try_recv().unwrap(), Err(ProposeError::Lost));
    }
}
