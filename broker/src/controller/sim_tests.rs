//! A seeded simulation of the metadata quorum: three nodes on real metadata logs (in temp
//! folders), a network that loses, reorders and cuts messages, crashes and restarts, and
//! proposals on whoever leads. After every step: at most one leader per term, and no two
//! nodes ever apply different records at the same index. At the end, with the faults
//! healed, every node holds the same image, and every record a leader applied is in it.
//! `STROM_SIM_SEED=N` replays one seed; failures print theirs.

use std::collections::{BTreeMap, HashMap};

use raft::prelude::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::node::{QuorumNode, QuorumTiming};
use super::records::MetadataRecord;

const TIMING: QuorumTiming = QuorumTiming {
    election_ticks: 10,
    heartbeat_ticks: 2,
};

struct Sim {
    seed: u64,
    rng: StdRng,
    dirs: Vec<tempfile::TempDir>,
    nodes: Vec<Option<QuorumNode>>,
    network: Vec<Message>,
    /// Nodes whose messages are lost, both ways.
    cut: Vec<bool>,
    /// Every record any node applied, by index.
    committed: BTreeMap<u64, MetadataRecord>,
    leaders: HashMap<u64, u64>,
    next_value: i64,
}

/// A folder for a node's log: in memory where the system has one, as fsyncs on a disk
/// would make thousands of steps slow.
fn temp_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

impl Sim {
    fn new(seed: u64, size: u64) -> Sim {
        let voters: Vec<u64> = (1..=size).collect();
        let dirs: Vec<_> = voters.iter().map(|_| temp_dir()).collect();
        let nodes = voters
            .iter()
            .zip(&dirs)
            .map(|(&id, dir)| Some(QuorumNode::open(id, dir.path(), &voters, TIMING).unwrap()))
            .collect();
        Sim {
            seed,
            rng: StdRng::seed_from_u64(seed),
            dirs,
            nodes,
            network: Vec::new(),
            cut: vec![false; size as usize],
            committed: BTreeMap::new(),
            leaders: HashMap::new(),
            next_value: 1,
        }
    }

    fn index(id: u64) -> usize {
        (id - 1) as usize
    }

    /// Runs every live node's `ready` and checks the invariants.
    fn settle(&mut self) {
        for i in 0..self.nodes.len() {
            let Some(node) = self.nodes[i].as_mut() else {
                continue;
            };
            let progress = node.ready().unwrap();
            for (index, record) in progress.applied {
                match self.committed.get(&index) {
                    Some(seen) => assert_eq!(
                        seen, &record,
                        "seed {}: two records applied at index {index}",
                        self.seed
                    ),
                    None => {
                        self.committed.insert(index, record);
                    }
                }
            }
            if node.is_leader() {
                let (term, id) = (node.term(), node.id());
                let first = *self.leaders.entry(term).or_insert(id);
                assert_eq!(first, id, "seed {}: two leaders in term {term}", self.seed);
            }
            self.network.extend(progress.messages);
        }
    }

    /// Delivers some of the messages in flight, in random order; loses some.
    fn deliver(&mut self, loss: f64) {
        let mut batch = std::mem::take(&mut self.network);
        let keep = self.rng.random_range(0..=batch.len());
        let later = batch.split_off(keep);
        self.network = later;
        // Shuffle what is delivered now.
        for i in (1..batch.len()).rev() {
            let j = self.rng.random_range(0..=i);
            batch.swap(i, j);
        }
        for message in batch {
            let (from, to) = (Self::index(message.from), Self::index(message.to));
            if self.cut[from] || self.cut[to] || self.rng.random_bool(loss) {
                continue;
            }
            if let Some(node) = self.nodes[to].as_mut() {
                // A message a node cannot take (e.g. from a removed peer) is its business.
                let _ = node.step(message);
            }
        }
    }

    fn tick(&mut self) {
        for node in self.nodes.iter_mut().flatten() {
            node.tick();
        }
    }

    fn leader(&mut self) -> Option<&mut QuorumNode> {
        self.nodes
            .iter_mut()
            .flatten()
            .filter(|n| n.is_leader())
            .max_by_key(|n| n.term())
    }

    fn propose(&mut self) {
        let value = self.next_value;
        if let Some(leader) = self.leader() {
            if leader
                .propose(&[MetadataRecord::ProducerIds { next: value }])
                .is_ok()
            {
                self.next_value += 1;
            }
        }
    }

    fn crash_or_restart(&mut self) {
        let i = self.rng.random_range(0..self.nodes.len());
        let down = self.nodes.iter().filter(|n| n.is_none()).count();
        if self.nodes[i].is_some() && down == 0 {
            self.nodes[i] = None;
            // Messages to and from it that were in flight are gone with its sockets.
            let id = i as u64 + 1;
            self.network.retain(|m| m.from != id && m.to != id);
        } else if self.nodes[i].is_none() {
            let voters: Vec<u64> = (1..=self.nodes.len() as u64).collect();
            let node =
                QuorumNode::open(i as u64 + 1, self.dirs[i].path(), &voters, TIMING).unwrap();
            self.nodes[i] = Some(node);
        }
    }

    fn cut_or_heal(&mut self) {
        let i = self.rng.random_range(0..self.cut.len());
        let cut = self.cut.iter().filter(|&&c| c).count();
        self.cut[i] = !self.cut[i] && cut == 0;
    }

    fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            match self.rng.random_range(0..100) {
                0..=39 => self.tick(),
                40..=79 => self.deliver(0.05),
                80..=93 => self.propose(),
                94..=96 => self.crash_or_restart(),
                _ => self.cut_or_heal(),
            }
            self.settle();
        }
        // Heal everything and let the quorum catch up.
        self.cut.iter_mut().for_each(|c| *c = false);
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_none() {
                self.crash_or_restart_at(i);
            }
        }
        for _ in 0..2000 {
            self.tick();
            self.settle();
            self.deliver(0.0);
            self.settle();
            if self.converged() {
                break;
            }
        }
        assert!(
            self.converged(),
            "seed {}: the nodes did not converge",
            self.seed
        );
        let image = self.nodes[0].as_ref().unwrap().image();
        let max_applied = self
            .committed
            .values()
            .filter_map(|r| match r {
                MetadataRecord::ProducerIds { next } => Some(*next),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        assert_eq!(
            image.next_producer_id, max_applied,
            "seed {}: an applied record is missing",
            self.seed
        );
    }

    fn crash_or_restart_at(&mut self, i: usize) {
        let voters: Vec<u64> = (1..=self.nodes.len() as u64).collect();
        self.nodes[i] =
            Some(QuorumNode::open(i as u64 + 1, self.dirs[i].path(), &voters, TIMING).unwrap());
    }

    /// Every node up, one leader, and equal images that hold every committed record.
    fn converged(&self) -> bool {
        let nodes: Vec<&QuorumNode> = self.nodes.iter().flatten().collect();
        let last = self.committed.keys().next_back().copied().unwrap_or(0);
        nodes.len() == self.nodes.len()
            && nodes.iter().filter(|n| n.is_leader()).count() == 1
            && nodes.windows(2).all(|w| w[0].image() == w[1].image())
            && nodes[0].image().applied >= last
    }
}

#[test]
fn a_single_voter_elects_itself_and_keeps_its_records() {
    let dir = temp_dir();
    let mut node = QuorumNode::open(1, dir.path(), &[1], TIMING).unwrap();
    node.campaign().unwrap();
    node.ready().unwrap();
    assert!(node.is_leader());
    node.propose(&[MetadataRecord::ProducerIds { next: 5 }])
        .unwrap();
    let progress = node.ready().unwrap();
    assert_eq!(
        progress.applied.last().map(|(_, r)| r),
        Some(&MetadataRecord::ProducerIds { next: 5 })
    );
    drop(node);
    let node = QuorumNode::open(1, dir.path(), &[1], TIMING).unwrap();
    assert_eq!(node.image().next_producer_id, 5, "rebuilt from the log");
}

#[test]
fn the_quorum_stays_consistent_under_seeded_faults() {
    let seeds: Vec<u64> = match std::env::var("STROM_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("STROM_SIM_SEED is a number")],
        Err(_) => (0..32).collect(),
    };
    for seed in seeds {
        let mut sim = Sim::new(seed, 3);
        sim.run(3000);
        assert!(
            sim.leaders.len() > 1 || sim.committed.len() > 10,
            "seed {seed}: the simulation did too little to prove anything"
        );
    }
}
