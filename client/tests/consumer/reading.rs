//! Reading: every codec across partitions, record fields, fetch sizes, long polls.

use std::time::Duration;

use strom_client::config::OffsetReset;
use strom_protocol::records::Compression;

use super::*;
use crate::support::now_ms;

#[tokio::test]
async fn consumes_every_codec_across_partitions_from_the_beginning() {
    let broker = TestBroker::start().await;
    create(&broker, "codecs", 5).await;
    let ts = now_ms();
    for (partition, codec) in Compression::ALL.into_iter().enumerate() {
        let partition = partition as i32;
        for batch in 0..3 {
            let values: Vec<String> = (0..10)
                .map(|i| format!("{partition}/{}", batch * 10 + i))
                .collect();
            let records: Vec<Rec<'_>> = values
                .iter()
                .map(|v| (ts, Some(v.as_bytes()), Some(v.as_bytes()), Vec::new()))
                .collect();
            produce(&broker, "codecs", partition, codec, &records).await;
        }
    }
    let consumer = consumer(&broker, OffsetReset::Earliest, &[("max.poll.records", "7")]).await;
    consumer.assign(&tps("codecs", 0..5)).unwrap();
    let mut records = Vec::new();
    while records.len() < 150 {
        let polled = consumer.poll(Duration::from_secs(5)).await.unwrap();
        assert!(!polled.is_empty() && polled.len() <= 7, "{}", polled.len());
        records.extend(polled);
    }
    assert_eq!(records.len(), 150);
    for partition in 0..5 {
        let got: Vec<_> = records
            .iter()
            .filter(|r| r.partition == partition)
            .collect();
        let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
        assert_eq!(
            offsets,
            (0..30).collect::<Vec<_>>(),
            "partition {partition}"
        );
        for r in got {
            assert_eq!(text(r), format!("{partition}/{}", r.offset));
            assert_eq!(r.key, r.value);
            assert_eq!(r.timestamp, ts);
            assert_eq!(r.topic, "codecs");
        }
        assert_eq!(consumer.position("codecs", partition).await.unwrap(), 30);
    }
    assert!(consumer
        .poll(Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn headers_and_null_keys_and_values_round_trip() {
    let broker = TestBroker::start().await;
    let records: Vec<Rec<'_>> = vec![
        (1, None, None, Vec::new()),
        (
            2,
            Some(b""),
            Some(b"v"),
            vec![("a", Some(b"1")), ("b", None), ("a", Some(b""))],
        ),
        (3, Some(b"k"), None, vec![("only", Some(b"h"))]),
    ];
    create(&broker, "fields", 1).await;
    produce(&broker, "fields", 0, Compression::Gzip, &records).await;
    let consumer = consumer(&broker, OffsetReset::Earliest, &[]).await;
    consumer.assign(&tps("fields", [0])).unwrap();
    let got = poll_n(&consumer, 3).await;
    assert_eq!((got[0].key.clone(), got[0].value.clone()), (None, None));
    assert!(got[0].headers.is_empty());
    assert_eq!(got[1].key, Some(b("")));
    assert_eq!(
        got[1].headers,
        vec![
            ("a".to_owned(), Some(b("1"))),
            ("b".to_owned(), None),
            ("a".to_owned(), Some(b("")))
        ]
    );
    assert_eq!(
        (got[2].key.clone(), got[2].value.clone()),
        (Some(b("k")), None)
    );
    let timestamps: Vec<i64> = got.iter().map(|r| r.timestamp).collect();
    assert_eq!(timestamps, [1, 2, 3]);
}

#[tokio::test]
async fn fetch_limits_smaller_than_a_batch_still_make_progress() {
    let broker = TestBroker::start().await;
    create(&broker, "big", 2).await;
    let big = "x".repeat(2000);
    for partition in 0..2 {
        for _ in 0..4 {
            let records: Vec<Rec<'_>> = (0..3)
                .map(|_| (0, None, Some(big.as_bytes()), Vec::new()))
                .collect();
            produce(&broker, "big", partition, Compression::None, &records).await;
        }
    }
    let limits = [
        ("max.partition.fetch.bytes", "100"),
        ("fetch.max.bytes", "100"),
    ];
    let consumer = consumer(&broker, OffsetReset::Earliest, &limits).await;
    consumer.assign(&tps("big", 0..2)).unwrap();
    let got = poll_n(&consumer, 24).await;
    for partition in 0..2 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|r| r.partition == partition)
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, (0..12).collect::<Vec<_>>());
    }
    assert!(got
        .iter()
        .all(|r| r.value.as_ref().map(|v| v.len()) == Some(2000)));
}

#[tokio::test]
async fn records_produced_while_polling_arrive() {
    let broker = TestBroker::start().await;
    create(&broker, "live", 1).await;
    let consumer = consumer(
        &broker,
        OffsetReset::Latest,
        &[("fetch.max.wait.ms", "5000")],
    )
    .await;
    consumer.assign(&tps("live", [0])).unwrap();
    // The position is the (empty) end; nothing to read yet.
    assert_eq!(consumer.position("live", 0).await.unwrap(), 0);
    assert!(consumer
        .poll(Duration::from_millis(200))
        .await
        .unwrap()
        .is_empty());
    let started = tokio::time::Instant::now();
    let (polled, _) = tokio::join!(consumer.poll(Duration::from_secs(10)), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        produce_values(&broker, "live", 0, "late", 2, 0).await
    });
    let polled = polled.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "long poll answered late"
    );
    assert_eq!(
        polled.iter().map(text).collect::<Vec<_>>(),
        ["late-0", "late-1"]
    );
    let record = tokio::join!(consumer.recv(), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        produce_values(&broker, "live", 0, "next", 1, 0).await
    })
    .0
    .unwrap();
    assert_eq!((text(&record), record.offset), ("next-0".to_owned(), 2));
    consumer.close();
    assert!(matches!(
        consumer.poll(Duration::ZERO).await,
        Err(strom_client::ClientError::Closed)
    ));
}

#[tokio::test]
async fn records_come_as_a_stream_which_ends_when_the_consumer_closes() {
    use futures_core::Stream;
    use std::future::poll_fn;
    use std::pin::pin;

    let broker = TestBroker::start().await;
    create(&broker, "streamed", 1).await;
    produce_values(&broker, "streamed", 0, "s", 20, now_ms()).await;
    let consumer = consumer(&broker, OffsetReset::Earliest, &[]).await;
    consumer.assign(&tps("streamed", [0])).unwrap();
    let mut got = Vec::new();
    {
        let mut records = pin!(consumer.stream());
        while got.len() < 20 {
            let next = poll_fn(|cx| records.as_mut().poll_next(cx)).await;
            got.push(text(&next.unwrap().unwrap()));
        }
    }
    let expected: Vec<String> = (0..20).map(|i| format!("s-{i}")).collect();
    assert_eq!(got, expected);
    consumer.close();
    let mut records = pin!(consumer.stream());
    assert!(poll_fn(|cx| records.as_mut().poll_next(cx)).await.is_none());
}
