//! A cluster of three `strom broker` processes, one per loopback address (127.0.0.1-3),
//! each a controller of the metadata quorum: SIGKILL the active controller, and another
//! is elected and takes metadata changes (a topic created through it), while the killed
//! one, restarted, rejoins as a follower and serves the new topic's metadata.

use std::time::{Duration, Instant};

use strom_client::admin::{Admin, NewTopic};
use strom_client::ClientConfig;
use strom_testkit::BrokerProcess;

/// How long the cluster may take for each expected state.
const WAIT: Duration = Duration::from_secs(30);

/// A free port on `host`, found by binding port 0 (the broker binds it again at once).
fn free_port(host: &str) -> u16 {
    let listener = std::net::TcpListener::bind((host, 0)).expect("bind port 0");
    listener.local_addr().expect("bound address").port()
}

struct Node {
    host: String,
    dir: tempfile::TempDir,
    log: std::path::PathBuf,
    args: Vec<String>,
    process: Option<BrokerProcess>,
}

impl Node {
    fn start(&mut self) {
        let process = BrokerProcess::start_with(self.dir.path(), &self.log, &self.host, &self.args)
            .expect("start strom broker");
        self.process = Some(process);
    }

    fn bootstrap(&self) -> String {
        self.process.as_ref().expect("running").bootstrap()
    }
}

async fn admin(bootstrap: &str) -> Admin {
    Admin::connect(
        ClientConfig::new()
            .bootstrap(bootstrap)
            .client_id("cluster-processes"),
    )
    .await
    .expect("admin connects")
}

/// The quorum leader as `bootstrap` describes it, once it names one other than `not`.
async fn leader(bootstrap: &str, not: Option<i32>) -> i32 {
    let admin = admin(bootstrap).await;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(quorum) = admin.describe_quorum().await {
            if quorum.leader_id >= 0 && Some(quorum.leader_id) != not {
                return quorum.leader_id;
            }
        }
        assert!(Instant::now() < deadline, "no leader other than {not:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `bootstrap` describes exactly `count` live brokers.
async fn live_brokers(bootstrap: &str, count: usize) {
    let admin = admin(bootstrap).await;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(cluster) = admin.describe_cluster().await {
            if cluster.brokers.len() == count {
                return;
            }
        }
        assert!(Instant::now() < deadline, "never {count} live brokers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn killing_the_active_controller_elects_another_that_takes_changes() {
    let hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    // Linux routes all of 127.0.0.0/8 to the loopback device; elsewhere it may not be.
    if std::net::TcpListener::bind(("127.0.0.2", 0)).is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "127.0.0.2 is not usable (CI=true, so this fails instead of skipping)"
        );
        eprintln!("skipping: 127.0.0.2 is not a usable loopback address here");
        return;
    }
    let voters = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| format!("{}@{host}:{}", i + 1, free_port(host)))
        .collect::<Vec<_>>()
        .join(",");
    let logs = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<Node> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| Node {
            host: (*host).to_owned(),
            dir: tempfile::tempdir().expect("tempdir"),
            log: logs.path().join(format!("broker-{}.log", i + 1)),
            args: vec![
                "--node-id".into(),
                (i + 1).to_string(),
                "--controllers".into(),
                voters.clone(),
            ],
            process: None,
        })
        .collect();
    for node in &mut nodes {
        node.start();
    }
    let first = leader(&nodes[0].bootstrap(), None).await;
    live_brokers(&nodes[0].bootstrap(), 3).await;
    let killed = usize::try_from(first - 1).expect("node ids are 1-3");
    nodes[killed]
        .process
        .as_mut()
        .expect("running")
        .kill()
        .expect("SIGKILL the controller");
    nodes[killed].process = None;
    let survivor = (killed + 1) % 3;
    let second = leader(&nodes[survivor].bootstrap(), Some(first)).await;
    assert_ne!(second, first);
    // The new controller fences the killed one.
    live_brokers(&nodes[survivor].bootstrap(), 2).await;

    // Metadata changes keep working: the admin client finds the new controller.
    let through = admin(&nodes[survivor].bootstrap()).await;
    through
        .create_topic(NewTopic::new("after-failover").partitions(2))
        .await
        .expect("create a topic after failover");

    // The killed node comes back as a follower and knows the topic.
    nodes[killed].start();
    let back = admin(&nodes[killed].bootstrap()).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let names = back.list_topics(false).await.unwrap_or_default();
        if names.iter().any(|t| t == "after-failover") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted node never learned the topic; its log:\n{}",
            nodes[killed]
                .process
                .as_ref()
                .map(BrokerProcess::log)
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(leader(&nodes[killed].bootstrap(), None).await, second);
}
