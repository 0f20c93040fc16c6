//! Third-party clients against a cluster of three Strom brokers: each bootstraps from a
//! broker that is not necessarily the controller, produces with acks=all (the topic
//! auto-created through the controller, with three replicas) and reads back, finding
//! partition leaders through Metadata; with librdkafka, the leader is then stopped and
//! every acknowledged record is read from the new one.

use crate::support::{parse_acks, Peer, TestCluster};

/// Produces 300 numbered records through broker 1 of a fresh cluster and checks their
/// acknowledged offsets; then `check` (the peer's arguments after BOOTSTRAP) runs through
/// broker 2.
fn produce_then_check_on_a_cluster(peer: Option<Peer>, check: &[&str]) {
    let Some(peer) = peer else { return };
    let cluster = TestCluster::start();
    let out = peer.run_ok(&cluster.bootstrap(1), &["produce", "numbers", "300"]);
    let acks = parse_acks(&out.stdout);
    let expected: Vec<(u64, i64)> = (0..300).map(|i| (i, i as i64)).collect();
    assert_eq!(acks, expected, "acknowledged offsets\n{out}");
    peer.run_ok(&cluster.bootstrap(2), check);
    cluster.shutdown();
}

#[test]
fn confluent_kafka_reads_acknowledged_records_after_the_leader_stops() {
    let Some(peer) = Peer::confluent() else {
        return;
    };
    let mut cluster = TestCluster::start();
    let out = peer.run_ok(&cluster.bootstrap(0), &["produce", "failover", "300"]);
    let acks = parse_acks(&out.stdout);
    assert_eq!(acks.len(), 300, "{out}");
    let leader = cluster.leader_of("failover", 0);
    cluster.stop(leader);
    let survivor = (leader + 1) % 3;
    peer.run_ok(
        &cluster.bootstrap(survivor),
        &["consume", "failover", "300"],
    );
    cluster.shutdown();
}

#[test]
fn confluent_kafka_on_a_cluster() {
    produce_then_check_on_a_cluster(Peer::confluent(), &["consume", "numbers", "300"]);
}

#[test]
fn kafka_python_on_a_cluster() {
    produce_then_check_on_a_cluster(Peer::kafka_python(), &["consume", "numbers", "300"]);
}

#[test]
fn kafkajs_on_a_cluster() {
    // kafkajs reads only in a group: its check is the admin API's offset look-ups.
    produce_then_check_on_a_cluster(Peer::kafkajs(), &["offsets", "numbers", "300"]);
}
