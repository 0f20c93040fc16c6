//! What the producer writes: partitions, order, codecs, headers, acks, batching, limits.

use std::collections::BTreeMap;

use strom_client::config::Acks;
use strom_client::producer::partitioner::keyed_partition;
use strom_client::producer::Record;
use strom_client::ClientError;
use strom_protocol::records::Compression;

use super::{ms, record, send_all, text, Fixture};

#[tokio::test]
async fn keyed_records_land_on_murmur2_partitions_in_order() {
    let fx = Fixture::start(4).await;
    let producer = fx.producer(fx.config().linger(ms(5))).await;
    let mut deliveries = Vec::new();
    for i in 0..200 {
        let key = format!("key-{}", i % 13);
        let r = Record::new("keyed")
            .key(key.clone())
            .value(format!("{key}:{i}"));
        deliveries.push((key, producer.send(r).await.unwrap()));
    }
    let mut expected: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for (i, (key, delivery)) in deliveries.into_iter().enumerate() {
        let m = delivery.await.unwrap();
        assert_eq!(m.partition, keyed_partition(key.as_bytes(), 4), "{key}");
        expected
            .entry(m.partition)
            .or_default()
            .push((m.offset, format!("{key}:{i}")));
    }
    for (partition, sent) in expected {
        let stored: Vec<(i64, String)> = fx
            .read("keyed", partition)
            .await
            .into_iter()
            .flat_map(|(_, records)| records)
            .map(|r| (r.offset, text(r.value.as_ref())))
            .collect();
        // Offsets follow send order within each partition, from 0.
        let offsets: Vec<i64> = (0..sent.len() as i64).collect();
        assert_eq!(sent.iter().map(|s| s.0).collect::<Vec<_>>(), offsets);
        assert_eq!(stored, sent);
    }
    producer.close().await;
}

#[tokio::test]
async fn every_codec_round_trips() {
    let fx = Fixture::start(1).await;
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let topic = format!("codec-{}", codec.name());
        let producer = fx
            .producer(fx.config().compression(codec).linger(ms(20)))
            .await;
        let values: Vec<String> = (0..50)
            .map(|i| format!("value {i} {}", "z".repeat(i)))
            .collect();
        for v in &values {
            drop(producer.send(record(&topic, v.clone())).await.unwrap());
        }
        producer.flush().await;
        let stored = fx.read(&topic, 0).await;
        assert!(
            stored
                .iter()
                .all(|(h, _)| h.compression().unwrap() == codec),
            "{codec:?}"
        );
        let read: Vec<String> = stored
            .into_iter()
            .flat_map(|(_, r)| r)
            .map(|r| text(r.value.as_ref()))
            .collect();
        assert_eq!(read, values, "{codec:?}");
        producer.close().await;
    }
}

#[tokio::test]
async fn headers_keys_and_timestamps_are_kept() {
    let fx = Fixture::start(1).await;
    let producer = fx.producer(fx.config()).await;
    let mut r = Record::new("headers")
        .key("k")
        .value("v")
        .header("trace", "abc")
        .header("trace", "def")
        .timestamp(1_700_000_000_123);
    r.headers.push(("empty".to_owned(), None));
    let m = producer.send(r).await.unwrap().await.unwrap();
    assert_eq!((m.offset, m.timestamp), (0, 1_700_000_000_123));
    let tombstone = producer
        .send(Record::new("headers").key("k"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(tombstone.offset, 1);
    let stored: Vec<_> = fx
        .read("headers", 0)
        .await
        .into_iter()
        .flat_map(|(_, r)| r)
        .collect();
    assert_eq!(stored[0].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(stored[0].timestamp, 1_700_000_000_123);
    let headers: Vec<(&str, Option<&[u8]>)> = stored[0]
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    assert_eq!(
        headers,
        [
            ("trace", Some(&b"abc"[..])),
            ("trace", Some(&b"def"[..])),
            ("empty", None)
        ]
    );
    assert_eq!(stored[1].value, None);
    producer.close().await;
}

#[tokio::test]
async fn acks_zero_one_and_all() {
    let fx = Fixture::start(1).await;
    for acks in [Acks::None, Acks::Leader, Acks::All] {
        let topic = format!("acks-{}", acks.name());
        let producer = fx.producer(fx.config().acks(acks)).await;
        let mut offsets = Vec::new();
        for i in 0..10 {
            let delivery = producer.send(record(&topic, format!("{i}"))).await.unwrap();
            offsets.push(delivery.await.unwrap().offset);
        }
        let expected: Vec<i64> = match acks {
            Acks::None => vec![-1; 10],
            _ => (0..10).collect(),
        };
        assert_eq!(offsets, expected, "{acks:?}");
        producer.close().await;
        let values = fx.values(&topic, 0).await;
        assert_eq!(
            values,
            (0..10).map(|i| i.to_string()).collect::<Vec<_>>(),
            "{acks:?}"
        );
    }
}

#[tokio::test]
async fn linger_gathers_records_into_one_batch() {
    let fx = Fixture::start(1).await;
    let producer = fx.producer(fx.config().linger(ms(300))).await;
    let mut deliveries = Vec::new();
    for i in 0..100 {
        deliveries.push(
            producer
                .send(record("linger", format!("{i}")))
                .await
                .unwrap(),
        );
    }
    for d in deliveries {
        d.await.unwrap();
    }
    let stored = fx.read("linger", 0).await;
    assert_eq!(
        stored.len(),
        1,
        "one batch for records sent within linger.ms"
    );
    assert_eq!(stored[0].1.len(), 100);
    producer.close().await;
}

#[tokio::test]
async fn batch_size_splits_batches() {
    let fx = Fixture::start(1).await;
    let producer = fx
        .producer(fx.config().linger(ms(300)).batch_size(1000))
        .await;
    send_all(
        &producer,
        "small-batches",
        (0..50).map(|i| format!("{i:0>100}")),
    )
    .await;
    let stored = fx.read("small-batches", 0).await;
    assert!(stored.len() >= 6, "{} batches", stored.len());
    assert!(stored.iter().all(|(h, _)| h.total_len() <= 1000));
    assert_eq!(stored.iter().map(|(_, r)| r.len()).sum::<usize>(), 50);
    // A record larger than batch.size still goes, in a batch of its own.
    let big = producer
        .send(record("small-batches", "x".repeat(5000)))
        .await
        .unwrap();
    assert_eq!(big.await.unwrap().offset, 50);
    producer.close().await;
}

#[tokio::test]
async fn records_over_max_request_size_are_refused() {
    let fx = Fixture::start(1).await;
    let config = fx.config().with("max.request.size", "1000").unwrap();
    let producer = fx.producer(config).await;
    let err = producer
        .send(record("big", "x".repeat(2000)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::RecordTooLarge {
                limit_key: "max.request.size",
                limit: 1000,
                ..
            }
        ),
        "{err:?}"
    );
    let fine = producer.send(record("big", "x".repeat(500))).await.unwrap();
    assert_eq!(fine.await.unwrap().offset, 0);
    producer.close().await;
}

#[tokio::test]
async fn sends_wait_for_buffer_memory() {
    let fx = Fixture::start(2).await;
    let config = fx
        .config()
        .with("buffer.memory", "10000")
        .unwrap()
        .linger(ms(1));
    let producer = fx.producer(config).await;
    let mut deliveries = Vec::new();
    // 200 KB through a 10 KB buffer: sends wait for earlier batches to complete.
    for i in 0..200 {
        let r = record("pressure", format!("{i:0>1000}")).partition(i % 2);
        deliveries.push(producer.send(r).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    let total = fx.values("pressure", 0).await.len() + fx.values("pressure", 1).await.len();
    assert_eq!(total, 200);
    // A record larger than the whole buffer can never fit.
    let err = producer
        .send(record("pressure", "x".repeat(20_000)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::RecordTooLarge {
                limit_key: "buffer.memory",
                ..
            }
        ),
        "{err:?}"
    );
    producer.close().await;
}

#[tokio::test]
async fn flush_sends_lingering_records_and_waits() {
    let fx = Fixture::start(3).await;
    let config = fx.config().linger(ms(60_000)).delivery_timeout(ms(120_000));
    let producer = fx.producer(config).await;
    let mut deliveries = Vec::new();
    for i in 0..30 {
        deliveries.push(
            producer
                .send(record("flushed", format!("{i}")))
                .await
                .unwrap(),
        );
    }
    tokio::time::timeout(ms(10_000), producer.flush())
        .await
        .expect("flush ignores linger.ms");
    for d in deliveries {
        // Already complete: flush waited for them.
        tokio::time::timeout(ms(0), d)
            .await
            .expect("complete after flush")
            .unwrap();
    }
    producer.close().await;
}

#[tokio::test]
async fn unknown_topics_are_created_or_time_out() {
    let fx = Fixture::start(2).await;
    let producer = fx.producer(fx.config()).await;
    let m = producer
        .send(record("fresh", "hello"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!((m.topic.as_str(), m.offset), ("fresh", 0));
    let err = producer
        .send(record("fresh", "x").partition(5))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::UnknownTopicOrPartition { partition: 5, .. }
        ),
        "{err:?}"
    );
    producer.close().await;

    let fx = Fixture::start_with(|c| c.auto_create_topics = false).await;
    let config = fx.config().with("max.block.ms", "300").unwrap();
    let producer = fx.producer(config).await;
    let err = producer.send(record("absent", "x")).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    producer.close().await;
}

#[tokio::test]
async fn closed_producers_refuse_sends() {
    let fx = Fixture::start(1).await;
    let producer = fx.producer(fx.config().linger(ms(60_000))).await;
    let clone = producer.clone();
    let pending = producer.send(record("closing", "last")).await.unwrap();
    producer.close().await;
    assert_eq!(
        pending.await.unwrap().offset,
        0,
        "close sends what is buffered"
    );
    assert!(matches!(
        clone.send(record("closing", "late")).await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test]
async fn keyless_records_stick_to_a_partition_per_batch_and_spread() {
    let fx = Fixture::start(4).await;
    let producer = fx
        .producer(fx.config().linger(ms(300)).batch_size(1000))
        .await;
    send_all(&producer, "spread", (0..80).map(|i| format!("{i:0>100}"))).await;
    producer.close().await;
    let mut used = 0;
    let mut total = 0;
    for p in 0..4 {
        let stored = fx.read("spread", p).await;
        if !stored.is_empty() {
            used += 1;
        }
        // Every batch but a partition's last one is full: records stick to one partition
        // until its batch is full, then move on.
        for (header, records) in stored.iter().rev().skip(1) {
            assert!(
                header.total_len() > 800 && records.len() > 5,
                "a small batch on partition {p}"
            );
        }
        total += stored.iter().map(|(_, r)| r.len()).sum::<usize>();
    }
    assert_eq!(total, 80);
    assert!(used >= 2, "keyless records all went to one partition");
}

/// A partitioner that answers a partition the topic does not have.
#[derive(Debug)]
struct Wrong;

impl strom_client::producer::partitioner::Partitioner for Wrong {
    fn partition(&self, _: &str, _: Option<&[u8]>, _: i32, _: &[i32]) -> i32 {
        99
    }
}

#[tokio::test]
async fn a_partition_the_topic_lacks_is_refused_at_send() {
    let fx = Fixture::start(2).await;
    let cluster = strom_client::Cluster::connect(fx.config()).await.unwrap();
    let producer = strom_client::producer::Producer::with_partitioner(cluster, Box::new(Wrong))
        .await
        .unwrap();
    let err = producer.send(record("wrong", "v")).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::UnknownTopicOrPartition { partition: 99, .. }
        ),
        "{err}"
    );
    let err = producer
        .send(record("wrong", "v").partition(7))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::UnknownTopicOrPartition { partition: 7, .. }
        ),
        "{err}"
    );
    producer.close().await;
}
