//! A cluster of `strom broker` processes, one per loopback address (127.0.0.1, .2, ...),
//! each a controller of the metadata quorum, for tests that kill brokers with SIGKILL and
//! start them again on their data.

use std::io;
use std::path::PathBuf;

use crate::BrokerProcess;

/// One node of a [`ProcessCluster`].
struct Node {
    host: String,
    dir: tempfile::TempDir,
    log: PathBuf,
    args: Vec<String>,
    /// The client port it got on its first start.
    port: Option<u16>,
    process: Option<BrokerProcess>,
}

/// Brokers `1..=n` as separate processes on 127.0.0.1..n, all voters of the quorum.
pub struct ProcessCluster {
    nodes: Vec<Node>,
    _logs: tempfile::TempDir,
}

/// A free port on `host`, found by binding port 0 (the broker binds it again at once).
fn free_port(host: &str) -> io::Result<u16> {
    Ok(std::net::TcpListener::bind((host, 0))?.local_addr()?.port())
}

impl ProcessCluster {
    /// Whether 127.0.0.2 and up can be bound here (Linux routes all of 127.0.0.0/8 to the
    /// loopback device; other systems may not). Without them a test prints why it skips,
    /// except under `CI=true`, where it panics.
    pub fn loopback_addresses_usable() -> bool {
        if std::net::TcpListener::bind(("127.0.0.2", 0)).is_ok() {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "127.0.0.2 is not usable (CI=true, so this fails instead of skipping)"
        );
        eprintln!("skipping: 127.0.0.2 is not a usable loopback address here");
        false
    }

    /// Starts `size` brokers, node `i` on 127.0.0.`i` with the given extra `args`.
    ///
    /// # Errors
    /// A broker that does not start (the error has its log).
    pub fn start(size: usize, args: &[&str]) -> io::Result<ProcessCluster> {
        let hosts: Vec<String> = (1..=size).map(|i| format!("127.0.0.{i}")).collect();
        let mut voters = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            voters.push(format!("{}@{host}:{}", i + 1, free_port(host)?));
        }
        let voters = voters.join(",");
        let logs = tempfile::tempdir()?;
        let mut nodes = Vec::new();
        for (i, host) in hosts.into_iter().enumerate() {
            let mut node_args = vec![
                "--node-id".to_owned(),
                (i + 1).to_string(),
                "--controllers".to_owned(),
                voters.clone(),
            ];
            node_args.extend(args.iter().map(|a| (*a).to_owned()));
            nodes.push(Node {
                host,
                dir: tempfile::tempdir()?,
                log: logs.path().join(format!("broker-{}.log", i + 1)),
                args: node_args,
                port: None,
                process: None,
            });
        }
        let mut cluster = ProcessCluster { nodes, _logs: logs };
        for id in 1..=size {
            cluster.restart(id)?;
        }
        Ok(cluster)
    }

    fn node(&self, id: usize) -> &Node {
        &self.nodes[id - 1]
    }

    /// Node `id`'s client address.
    ///
    /// # Panics
    /// If it is not running.
    pub fn bootstrap(&self, id: usize) -> String {
        self.node(id)
            .process
            .as_ref()
            .expect("the node is running")
            .bootstrap()
    }

    /// The client addresses of every running node, comma-separated.
    pub fn bootstrap_all(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|n| n.process.as_ref().map(BrokerProcess::bootstrap))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills node `id` with SIGKILL; [`ProcessCluster::restart`] brings it back on the
    /// same port.
    ///
    /// # Errors
    /// If it cannot be killed.
    pub fn kill(&mut self, id: usize) -> io::Result<()> {
        if let Some(mut process) = self.nodes[id - 1].process.take() {
            process.kill()?;
        }
        Ok(())
    }

    /// Starts node `id` (again) on its data, on the client port it had before (a free
    /// one the first time).
    ///
    /// # Errors
    /// If it does not start.
    pub fn restart(&mut self, id: usize) -> io::Result<()> {
        let node = &mut self.nodes[id - 1];
        let listen = match node.port {
            Some(port) => format!("{}:{port}", node.host),
            None => format!("{}:0", node.host),
        };
        let process = BrokerProcess::start_on(node.dir.path(), &node.log, &listen, &node.args)?;
        node.port = Some(process.addr().port());
        node.process = Some(process);
        Ok(())
    }

    /// Whether node `id` runs.
    pub fn is_running(&self, id: usize) -> bool {
        self.node(id).process.is_some()
    }

    /// Node `id`'s log so far (every run of it).
    pub fn log(&self, id: usize) -> String {
        std::fs::read_to_string(&self.node(id).log).unwrap_or_default()
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}
