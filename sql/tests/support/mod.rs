//! Helpers the tests share.

use std::time::{Duration, Instant};

use strom_client::admin::{Admin, OffsetSpec};
use strom_client::consumer::{Consumer, ConsumerRecord};
use strom_client::ClientConfig;

/// Every record of `topic`, by partition then offset.
pub async fn read_all(config: &ClientConfig, topic: &str) -> Vec<ConsumerRecord> {
    let admin = Admin::connect(config.clone()).await.unwrap();
    let ends = admin.list_offsets(topic, OffsetSpec::Latest).await.unwrap();
    let consumer = Consumer::new(config.clone()).await.unwrap();
    let partitions: Vec<(String, i32)> = ends.keys().map(|p| (topic.to_owned(), *p)).collect();
    consumer.assign(&partitions).unwrap();
    consumer.seek_to_beginning(&partitions).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut done = true;
        for (p, end) in &ends {
            done &= consumer.position(topic, *p).await.unwrap() >= end.offset;
        }
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "reading {topic}");
        records.extend(consumer.poll(Duration::from_millis(100)).await.unwrap());
    }
    consumer.close();
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}
