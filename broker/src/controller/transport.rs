//! Raft messages between controllers over TCP.
//!
//! ```text
//!  node A ── one outbound connection per peer ──▶ node B's controller listener
//!            frames: [len u32][kind u8][payload]           └─▶ quorum task
//!            kinds: 0 a protobuf raft Message, 1 a join (a node that is not a member yet,
//!            asking to follow the log: its id and controller address, as JSON)
//! ```
//!
//! Messages are one-way (each node answers on its own connection to the sender), and
//! Raft tolerates their loss, so a full queue or a broken connection drops messages
//! rather than waiting: a peer that is down costs nothing but reconnection attempts.
//! Whatever arrives that is not a whole, decodable message for this node closes the
//! connection it came on.

use std::collections::HashMap;
use std::time::Duration;

use protobuf::Message as _;
use raft::prelude::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

/// Messages queued for one peer before new ones are dropped.
const QUEUE: usize = 4096;

/// Largest message frame accepted (snapshots of a large cluster's metadata included).
const MAX_FRAME: usize = 256 << 20;

/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Frame kinds.
const RAFT: u8 = 0;
const JOIN: u8 = 1;

/// What arrives from peers.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A Raft message for this node.
    Raft(Message),
    /// A node asking to join the quorum as a learner.
    Join(Join),
}

/// A node's request to follow the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Join {
    /// Its Raft id.
    pub(crate) id: u64,
    /// Where its controller listener is.
    pub(crate) address: String,
}

/// What goes out to one peer.
enum Outbound {
    Raft(Message),
    Join(Join),
}

/// Outbound queues to the other controllers.
pub(crate) struct Transport {
    me: u64,
    /// Each peer's address and queue.
    peers: HashMap<u64, (String, mpsc::Sender<Outbound>)>,
    shutdown: watch::Receiver<bool>,
}

impl Transport {
    /// Starts one sender task per peer (`peers`: id → controller address) and, when given
    /// a listener, the task that accepts peers' connections and hands their messages to
    /// `inbound`. Everything stops when `shutdown` turns true.
    pub(crate) fn start(
        me: u64,
        peers: &[(u64, String)],
        listener: Option<TcpListener>,
        inbound: mpsc::Sender<Inbound>,
        shutdown: &watch::Receiver<bool>,
    ) -> Transport {
        let mut transport = Transport {
            me,
            peers: HashMap::new(),
            shutdown: shutdown.clone(),
        };
        for (id, address) in peers {
            transport.add_peer(*id, address);
        }
        if let Some(listener) = listener {
            tokio::spawn(accept_loop(me, listener, inbound, shutdown.clone()));
        }
        transport
    }

    /// Starts sending to peer `id` at `address` (nothing if it is this node or already
    /// sent to there).
    pub(crate) fn add_peer(&mut self, id: u64, address: &str) {
        if id == self.me || self.peers.get(&id).is_some_and(|(at, _)| at == address) {
            return;
        }
        // A new peer, or one that came back at another address: the old queue's sender
        // task ends when its queue is dropped.
        let (tx, rx) = mpsc::channel(QUEUE);
        self.peers.insert(id, (address.to_owned(), tx));
        tokio::spawn(send_loop(id, address.to_owned(), rx, self.shutdown.clone()));
    }

    /// Whether peer `id` has a queue.
    pub(crate) fn knows(&self, id: u64) -> bool {
        self.peers.contains_key(&id)
    }

    /// Queues `message` for its addressee; drops it if the queue is full or the peer
    /// unknown.
    pub(crate) fn send(&self, message: Message) {
        let to = message.to;
        self.queue(to, Outbound::Raft(message));
    }

    /// Asks every known peer to let this node join.
    pub(crate) fn send_join(&self, join: &Join) {
        for id in self.peers.keys() {
            self.queue(*id, Outbound::Join(join.clone()));
        }
    }

    fn queue(&self, to: u64, outbound: Outbound) {
        match self.peers.get(&to) {
            Some((_, queue)) => {
                if queue.try_send(outbound).is_err() {
                    debug!("controller message dropped: queue full");
                }
            }
            None => debug!(to, "controller message for an unknown peer"),
        }
    }
}

/// Keeps a connection to peer `id` and writes its queued messages, reconnecting after
/// failures.
async fn send_loop(
    id: u64,
    address: String,
    mut queue: mpsc::Receiver<Outbound>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connection: Option<TcpStream> = None;
    let mut frames = Vec::new();
    loop {
        let message = tokio::select! {
            message = queue.recv() => match message {
                Some(message) => message,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        frames.clear();
        push_frame(&mut frames, &message);
        while let Ok(more) = queue.try_recv() {
            push_frame(&mut frames, &more);
        }
        if connection.is_none() {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&address)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    connection = Some(stream);
                }
                _ => {
                    debug!(peer = id, %address, "controller unreachable; messages dropped");
                    // Raft resends; what is queued now is stale by then.
                    while queue.try_recv().is_ok() {}
                    continue;
                }
            }
        }
        if let Some(stream) = connection.as_mut() {
            if let Err(e) = stream.write_all(&frames).await {
                debug!(peer = id, error = %e, "controller connection lost");
                connection = None;
            }
        }
    }
}

fn push_frame(out: &mut Vec<u8>, outbound: &Outbound) {
    let (kind, bytes) = match outbound {
        Outbound::Raft(message) => (RAFT, message.write_to_bytes().unwrap_or_default()),
        Outbound::Join(join) => (JOIN, serde_json::to_vec(join).unwrap_or_default()),
    };
    let len = u32::try_from(bytes.len() + 1).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(&bytes);
}

async fn accept_loop(
    me: u64,
    listener: TcpListener,
    inbound: mpsc::Sender<Inbound>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let (inbound, shutdown) = (inbound.clone(), shutdown.clone());
                tokio::spawn(async move {
                    if let Err(reason) = receive(me, stream, inbound, shutdown).await {
                        warn!(%peer, %reason, "closing controller connection");
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "controller accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads one peer's messages until it closes; an error says why the connection is bad.
async fn receive(
    me: u64,
    mut stream: TcpStream,
    inbound: mpsc::Sender<Inbound>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut buffer = Vec::new();
    loop {
        let len = tokio::select! {
            len = stream.read_u32() => match len {
                Ok(len) => len as usize,
                Err(_) => return Ok(()),
            },
            _ = shutdown.changed() => return Ok(()),
        };
        if len == 0 || len > MAX_FRAME {
            return Err(format!("frame of {len} bytes"));
        }
        buffer.resize(len, 0);
        if stream.read_exact(&mut buffer).await.is_err() {
            return Ok(());
        }
        let arrived = match buffer[0] {
            RAFT => {
                let message = Message::parse_from_bytes(&buffer[1..]).map_err(|e| e.to_string())?;
                if message.to != me {
                    return Err(format!("message for node {} reached node {me}", message.to));
                }
                Inbound::Raft(message)
            }
            JOIN => Inbound::Join(serde_json::from_slice(&buffer[1..]).map_err(|e| e.to_string())?),
            other => return Err(format!("frame of unknown kind {other}")),
        };
        if inbound.send(arrived).await.is_err() {
            return Ok(());
        }
    }
}
