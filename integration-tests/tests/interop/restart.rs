//! Records survive a clean broker restart: written by one client, read by another.

use crate::support::{parse_acks, Peer, TestBroker};

const RECORDS: u64 = 500;

#[test]
fn records_survive_a_clean_restart() {
    let (Some(writer), Some(reader)) = (Peer::confluent(), Peer::kafka_python()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary data dir");
    let n = RECORDS.to_string();

    let broker = TestBroker::start_in(dir.path());
    let out = writer.run_ok(&broker.bootstrap(), &["produce", "restart", &n]);
    let acks = parse_acks(&out.stdout);
    assert_eq!(acks.len() as u64, RECORDS, "acks before the restart\n{out}");
    broker.shutdown();

    let broker = TestBroker::start_in(dir.path());
    reader.run_ok(&broker.bootstrap(), &["consume", "restart", &n]);
    if let Some(kafkajs) = Peer::kafkajs() {
        kafkajs.run_ok(&broker.bootstrap(), &["offsets", "restart", &n]);
    }
    // The log goes on where it stopped.
    let out = writer.run_ok(&broker.bootstrap(), &["produce", "restart", "10"]);
    let offsets: Vec<i64> = parse_acks(&out.stdout).iter().map(|&(_, o)| o).collect();
    let expected: Vec<i64> = (RECORDS as i64..RECORDS as i64 + 10).collect();
    assert_eq!(offsets, expected, "offsets after the restart\n{out}");
    broker.shutdown();
}
