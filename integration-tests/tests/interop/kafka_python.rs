//! kafka-python (pure Python, 3.x) against the broker.

use crate::support::{parse_acks, run_scenarios, Peer, TestBroker, ROUNDTRIPS};

#[test]
fn kafka_python_scenarios() {
    let Some(peer) = Peer::kafka_python() else {
        return;
    };
    let mut scenarios: Vec<&[&str]> = vec![&["admin"]];
    scenarios.extend(ROUNDTRIPS);
    scenarios.extend([&["timestamps"][..], &["idempotent"], &["large"]]);
    run_scenarios(&peer, &scenarios);
}

#[test]
fn kafka_python_produce_then_consume() {
    let Some(peer) = Peer::kafka_python() else {
        return;
    };
    let broker = TestBroker::start();
    let out = peer.run_ok(&broker.bootstrap(), &["produce", "numbers", "300"]);
    let acks = parse_acks(&out.stdout);
    let expected: Vec<(u64, i64)> = (0..300).map(|i| (i, i as i64)).collect();
    assert_eq!(acks, expected, "acknowledged offsets\n{out}");
    peer.run_ok(&broker.bootstrap(), &["consume", "numbers", "300"]);
    broker.shutdown();
}
