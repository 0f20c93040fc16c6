//! kafkajs 2.2.4 against the broker.
//!
//! kafkajs consumes only through a consumer group, so its scenarios check what was
//! written through acknowledged offsets and the admin API's offset look-ups; reading
//! records back is left to the other peers.

use crate::support::{parse_acks, standard_scenarios, Peer, TestBroker};

#[test]
fn kafkajs_scenarios() {
    standard_scenarios(Peer::kafkajs());
}

#[test]
fn kafkajs_produce_then_offsets() {
    let Some(peer) = Peer::kafkajs() else { return };
    let broker = TestBroker::start();
    let out = peer.run_ok(&broker.bootstrap(), &["produce", "numbers", "300"]);
    let acks = parse_acks(&out.stdout);
    let expected: Vec<(u64, i64)> = (0..300).map(|i| (i, i as i64)).collect();
    assert_eq!(acks, expected, "acknowledged offsets\n{out}");
    peer.run_ok(&broker.bootstrap(), &["offsets", "numbers", "300"]);
    // Records kafkajs wrote, read back by another client.
    if let Some(reader) = Peer::confluent() {
        reader.run_ok(&broker.bootstrap(), &["consume", "numbers", "300"]);
    }
    broker.shutdown();
}
