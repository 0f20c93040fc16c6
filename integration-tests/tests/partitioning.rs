//! Keyed records land where librdkafka puts them.
//!
//! librdkafka (bundled through `rdkafka`) produces 500 distinct keys with
//! `partitioner=murmur2_random`, its default and the Java client's placement for keys,
//! to its in-process mock cluster; each delivery report's partition must equal
//! `to_positive(murmur2(key)) % partitions` from `strom_client`'s partitioner.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use strom_client::producer::partitioner::{
    murmur2, partitioner_for, to_positive, DefaultPartitioner, Partitioner,
};

const TOPIC: &str = "partitioning";
const PARTITIONS: i32 = 7;
const KEYS: usize = 500;

/// Collects the partition of every delivered record by key.
#[derive(Default)]
struct Deliveries {
    partitions: Mutex<BTreeMap<Vec<u8>, i32>>,
    errors: Mutex<Vec<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                let key = message.key().unwrap_or_default().to_vec();
                self.partitions
                    .lock()
                    .unwrap()
                    .insert(key, message.partition());
            }
            Err((error, _)) => self.errors.lock().unwrap().push(error.to_string()),
        }
    }
}

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("key-{i}-{}", i * 7919)).collect()
}

#[test]
fn keyed_records_land_where_librdkafka_murmur2_random_puts_them() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();

    let producer: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000")
        .create_with_context(Deliveries::default())
        .unwrap();

    let keys = keys();
    for key in &keys {
        let record = BaseRecord::to(TOPIC).key(key.as_str()).payload("v");
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while producer.context().partitions.lock().unwrap().len() < KEYS
        && producer.context().errors.lock().unwrap().is_empty()
        && Instant::now() < deadline
    {
        producer.poll(Duration::from_millis(50));
    }

    let context = producer.context();
    assert!(
        context.errors.lock().unwrap().is_empty(),
        "delivery errors: {:?}",
        context.errors.lock().unwrap()
    );
    let delivered = context.partitions.lock().unwrap();
    assert_eq!(delivered.len(), KEYS, "every key delivered once");

    let strom = DefaultPartitioner::new();
    let mut used = std::collections::BTreeSet::new();
    for key in &keys {
        let librdkafka = delivered[key.as_bytes()];
        let expected = to_positive(murmur2(key.as_bytes())) % PARTITIONS;
        assert_eq!(librdkafka, expected, "key {key}");
        assert_eq!(
            strom.partition(TOPIC, Some(key.as_bytes()), PARTITIONS, &[]),
            expected
        );
        let murmur2_random = partitioner_for("murmur2_random").unwrap();
        assert_eq!(
            murmur2_random.partition(TOPIC, Some(key.as_bytes()), PARTITIONS, &[]),
            expected
        );
        used.insert(librdkafka);
    }
    // The topic really had 7 partitions, and the keys spread over all of them.
    assert_eq!(used.len(), PARTITIONS as usize);
}
