//! Third-party Kafka clients against the Strom broker (and a cluster of three):
//! confluent-kafka-python and kcat (librdkafka), kafka-python, kafkajs; also over TLS.
//!
//! Each peer is a program in `integration-tests/peers/` taking `BOOTSTRAP SCENARIO
//! [ARGS]` and exiting non-zero on any mismatch; these tests start an in-process broker per
//! scenario, run the peer against it and show its output when it fails. Peers come from
//! `scripts/install-peers.sh`: without them a test prints `skipping: ...` and passes,
//! except under `CI=true`, where it fails.

#[path = "interop/support.rs"]
mod support;

#[path = "interop/cluster.rs"]
mod cluster;
#[path = "interop/confluent.rs"]
mod confluent;
#[path = "interop/failover.rs"]
mod failover;
#[path = "interop/groups.rs"]
mod groups;
#[path = "interop/kafka_python.rs"]
mod kafka_python;
#[path = "interop/kafkajs.rs"]
mod kafkajs;
#[path = "interop/kcat.rs"]
mod kcat;
#[path = "interop/mock.rs"]
mod mock;
#[path = "interop/restart.rs"]
mod restart;
#[path = "interop/retries.rs"]
mod retries;
#[path = "interop/tls.rs"]
mod tls;
#[path = "interop/transactions.rs"]
mod transactions;
