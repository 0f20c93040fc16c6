//! kafka-python (pure Python, 3.x) against the broker.

use crate::support::{produce_then_consume, standard_scenarios, Peer};

#[test]
fn kafka_python_scenarios() {
    standard_scenarios(Peer::kafka_python());
}

#[test]
fn kafka_python_produce_then_consume() {
    produce_then_consume(Peer::kafka_python());
}
