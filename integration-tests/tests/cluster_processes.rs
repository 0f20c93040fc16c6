//! A cluster of three `strom broker` processes, one per loopback address (127.0.0.1-3),
//! each a controller of the metadata quorum: SIGKILL the active controller, and another
//! is elected and takes metadata changes (a topic created through it), while the killed
//! one, restarted, rejoins as a follower and serves the new topic's metadata.

use std::time::{Duration, Instant};

use strom_client::admin::{Admin, NewTopic};
use strom_client::ClientConfig;
use strom_testkit::ProcessCluster;

/// How long the cluster may take for each expected state.
const WAIT: Duration = Duration::from_secs(30);

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
    if !ProcessCluster::loopback_addresses_usable() {
        return;
    }
    let mut cluster = ProcessCluster::start(3, &[]).expect("start the cluster");
    let first = leader(&cluster.bootstrap(1), None).await;
    live_brokers(&cluster.bootstrap(1), 3).await;
    let killed = usize::try_from(first).expect("node ids are 1-3");
    cluster.kill(killed).expect("SIGKILL the controller");
    let survivor = killed % 3 + 1;
    let second = leader(&cluster.bootstrap(survivor), Some(first)).await;
    assert_ne!(second, first);
    // The new controller fences the killed one.
    live_brokers(&cluster.bootstrap(survivor), 2).await;

    // Metadata changes keep working: the admin client finds the new controller.
    let through = admin(&cluster.bootstrap(survivor)).await;
    through
        .create_topic(NewTopic::new("after-failover").partitions(2))
        .await
        .expect("create a topic after failover");

    // The killed node comes back as a follower and knows the topic.
    cluster.restart(killed).expect("restart the killed node");
    let back = admin(&cluster.bootstrap(killed)).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let names = back.list_topics(false).await.unwrap_or_default();
        if names.iter().any(|t| t == "after-failover") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted node never learned the topic; its log:\n{}",
            cluster.log(killed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(leader(&cluster.bootstrap(killed), None).await, second);
}
