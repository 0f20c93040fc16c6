//! `strom quickstart`: the whole path on one machine, in a few seconds.
//!
//! Starts an embedded broker in a temporary folder, creates a topic through CreateTopics,
//! produces keyed records through Produce (lz4-compressed batches), reads them back
//! through Fetch, and prints them.

use anyhow::{bail, Context};
use clap::Args;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_broker::{Broker, BrokerConfig};
use strom_protocol::connection::Connection;
use strom_protocol::records::{batches, decode_batch, BatchBuilder, Compression};
use strom_protocol::ErrorCode;

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// Number of records to produce.
    #[arg(long, default_value_t = 10)]
    records: usize,
}

const TOPIC: &str = "quickstart";
const PARTITIONS: i32 = 3;

pub async fn run(args: QuickstartArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary data folder")?;
    let broker = Broker::start(BrokerConfig::new(dir.path())).await?;
    println!(
        "broker listening on {} (data in {})",
        broker.bootstrap(),
        dir.path().display()
    );
    let conn = Connection::connect(&broker.bootstrap(), "strom-quickstart").await?;

    let topic = TopicName(StrBytes::from_static_str(TOPIC));
    let created = conn
        .send(
            &CreateTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(topic.clone())
                    .with_num_partitions(PARTITIONS)
                    .with_replication_factor(1)]),
        )
        .await?;
    for t in &created.topics {
        check(t.error_code, "CreateTopics")?;
    }
    // Fetch v13+ names topics by id.
    let topic_id = created
        .topics
        .first()
        .map(|t| t.topic_id)
        .unwrap_or_default();
    println!("created topic '{TOPIC}' with {PARTITIONS} partitions");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut builders: Vec<BatchBuilder> = (0..PARTITIONS)
        .map(|_| BatchBuilder::new(Compression::Lz4))
        .collect();
    for i in 0..args.records {
        let key = format!("user-{}", i % 5);
        let value = format!("{{\"event\":\"click\",\"n\":{i}}}");
        let partition = key
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % PARTITIONS as u32;
        builders[partition as usize].push(
            now + i as i64,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &[("source", Some(b"quickstart"))],
        );
    }
    let mut partitions = Vec::new();
    for (index, builder) in builders.into_iter().enumerate() {
        if !builder.is_empty() {
            partitions.push(
                PartitionProduceData::default()
                    .with_index(index as i32)
                    .with_records(Some(builder.build()?)),
            );
        }
    }
    let produced = conn
        .send(
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic.clone())
                    .with_partition_data(partitions)]),
        )
        .await?;
    for t in &produced.responses {
        for p in &t.partition_responses {
            check(p.error_code, "Produce")?;
            println!(
                "produced to partition {} at base offset {}",
                p.index, p.base_offset
            );
        }
    }

    let fetch = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic)
            .with_topic_id(topic_id)
            .with_partitions(
                (0..PARTITIONS)
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            )]);
    let fetched = conn.send(&fetch).await?;
    let mut count = 0;
    for t in &fetched.responses {
        for p in &t.partitions {
            check(p.error_code, "Fetch")?;
            let data = p.records.clone().unwrap_or_default();
            for item in batches(&data) {
                let (_, range) = item?;
                let (_, records) = decode_batch(&data[range])?;
                for r in records {
                    count += 1;
                    println!(
                        "consumed partition {} offset {}: {} = {}",
                        p.partition_index,
                        r.offset,
                        String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()),
                        String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()),
                    );
                }
            }
        }
    }
    if count != args.records {
        bail!("produced {} records but consumed {count}", args.records);
    }
    println!("quickstart ok: {count} records produced and consumed");
    drop(conn);
    broker.shutdown().await?;
    Ok(())
}

fn check(code: i16, what: &str) -> anyhow::Result<()> {
    let code = ErrorCode(code);
    if code.is_ok() {
        Ok(())
    } else {
        bail!("{what} failed: {code}")
    }
}
