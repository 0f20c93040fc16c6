//! confluent-kafka-python (librdkafka 2.x) against the broker.

use crate::support::{produce_then_consume, standard_scenarios, Peer};

#[test]
fn confluent_kafka_scenarios() {
    standard_scenarios(Peer::confluent());
}

#[test]
fn confluent_kafka_produce_then_consume() {
    produce_then_consume(Peer::confluent());
}
