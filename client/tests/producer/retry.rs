//! Retries through a proxy that swallows the broker's answer to a Produce request and cuts
//! the connection: the idempotent producer's resend is recognised
//! as a duplicate; without idempotence the record is written twice, as in Kafka.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use strom_client::config::Acks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{ms, record, Fixture};

/// Forwards connections to the broker; cuts the one carrying the next Produce request
/// when `cut_next_produce` is set.
struct Proxy {
    cut_next_produce: Arc<AtomicBool>,
}

impl Proxy {
    fn start(listener: TcpListener, target: SocketAddr) -> Proxy {
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, target, flag.clone()));
            }
        });
        Proxy {
            cut_next_produce: cut,
        }
    }
}

async fn forward(client: TcpStream, target: SocketAddr, cut: Arc<AtomicBool>) {
    let server = TcpStream::connect(target).await.unwrap();
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // The index of the request whose answer is swallowed (none while `usize::MAX`), and the
    // signal that its answer arrived, i.e. that the broker has stored the records.
    let swallow = Arc::new(AtomicUsize::new(usize::MAX));
    let (swallowed_tx, swallowed_rx) = tokio::sync::oneshot::channel::<()>();
    let answers = {
        let swallow = swallow.clone();
        tokio::spawn(async move {
            let mut swallowed_tx = Some(swallowed_tx);
            for index in 0.. {
                let mut len = [0u8; 4];
                if server_read.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                if server_read.read_exact(&mut body).await.is_err() {
                    return;
                }
                if swallow.load(Ordering::SeqCst) == index {
                    if let Some(tx) = swallowed_tx.take() {
                        let _ = tx.send(());
                    }
                    return;
                }
                if client_write.write_all(&len).await.is_err()
                    || client_write.write_all(&body).await.is_err()
                {
                    return;
                }
            }
        })
    };
    for index in 0.. {
        let mut len = [0u8; 4];
        if client_read.read_exact(&mut len).await.is_err() {
            break;
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        if client_read.read_exact(&mut body).await.is_err() {
            break;
        }
        let is_produce = body[..2] == [0, 0];
        let cutting = is_produce && cut.swap(false, Ordering::SeqCst);
        if cutting {
            swallow.store(index, Ordering::SeqCst);
        }
        server_write.write_all(&len).await.unwrap();
        server_write.write_all(&body).await.unwrap();
        if cutting {
            // The broker has answered (so it stored the records) but the producer never
            // hears it: close the connection, and it will resend.
            let _ = swallowed_rx.await;
            break;
        }
    }
    answers.abort();
}

/// A broker reachable only through a proxy (it advertises the proxy's port).
async fn proxied_broker() -> (Fixture, Proxy, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    let fx = Fixture::start_with(|c| {
        c.num_partitions = 1;
        c.listeners[0].advertised_host = Some("127.0.0.1".to_owned());
        c.listeners[0].advertised_port = Some(proxy_addr.port());
    })
    .await;
    let proxy = Proxy::start(listener, fx.broker.local_addr());
    (fx, proxy, proxy_addr.to_string())
}

#[tokio::test]
async fn idempotent_retry_is_not_duplicated() {
    let (fx, proxy, bootstrap) = proxied_broker().await;
    let config = fx.config().bootstrap(&bootstrap).retry_backoff(ms(50));
    assert!(config.idempotence_enabled());
    let producer = fx.producer(config).await;
    // Create the topic first so the cut hits a produce.
    let first = producer
        .send(record("idem", "zero"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(first.offset, 0);
    proxy.cut_next_produce.store(true, Ordering::SeqCst);
    let retried = producer
        .send(record("idem", "one"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        !proxy.cut_next_produce.load(Ordering::SeqCst),
        "the produce was cut"
    );
    assert_eq!(
        retried.offset, 1,
        "the duplicate is answered with the first offset"
    );
    let next = producer
        .send(record("idem", "two"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(next.offset, 2);
    assert_eq!(fx.values("idem", 0).await, ["zero", "one", "two"]);
    producer.close().await;
}

#[tokio::test]
async fn retry_without_idempotence_duplicates() {
    let (fx, proxy, bootstrap) = proxied_broker().await;
    let config = fx
        .config()
        .bootstrap(&bootstrap)
        .acks(Acks::Leader)
        .retry_backoff(ms(50));
    assert!(!config.idempotence_enabled());
    let producer = fx.producer(config).await;
    producer
        .send(record("dup", "zero"))
        .await
        .unwrap()
        .await
        .unwrap();
    proxy.cut_next_produce.store(true, Ordering::SeqCst);
    let retried = producer
        .send(record("dup", "one"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        retried.offset, 2,
        "written at 1, then again at 2 by the retry"
    );
    assert_eq!(fx.values("dup", 0).await, ["zero", "one", "one"]);
    producer.close().await;
}

#[tokio::test]
async fn batches_out_together_are_resent_in_order_after_a_cut() {
    let (fx, proxy, bootstrap) = proxied_broker().await;
    let config = fx
        .config()
        .bootstrap(&bootstrap)
        .linger(ms(0))
        .retry_backoff(ms(20));
    assert_eq!(config.max_in_flight_requests_per_connection, 5);
    let producer = fx.producer(config).await;
    producer
        .send(record("burst", "0"))
        .await
        .unwrap()
        .await
        .unwrap();
    // With linger.ms=0 each send starts its own batch while earlier ones are out, so the
    // cut catches several batches of the partition in flight: the one whose answer is
    // lost (stored by the broker) and the ones behind it (never forwarded).
    let mut deliveries = Vec::new();
    for i in 1..400 {
        if i == 200 {
            proxy.cut_next_produce.store(true, Ordering::SeqCst);
        }
        deliveries.push(producer.send(record("burst", i.to_string())).await.unwrap());
    }
    let mut offsets = Vec::new();
    for d in deliveries {
        offsets.push(d.await.unwrap().offset);
    }
    assert!(
        !proxy.cut_next_produce.load(Ordering::SeqCst),
        "the produce was cut"
    );
    assert_eq!(offsets, (1..400).collect::<Vec<i64>>());
    let expected: Vec<String> = (0..400).map(|i| i.to_string()).collect();
    assert_eq!(fx.values("burst", 0).await, expected);
    producer.close().await;
}

/// Another writer using the producer's id moves the broker's sequence numbers for one
/// partition past the producer's: its next batch meets a sequence error that no batch of
/// its own explains. That batch fails, and the partition's later batches start over at
/// sequence 0 under the next epoch, so they are written.
#[tokio::test]
async fn an_unexplained_sequence_error_restarts_the_partition_under_the_next_epoch() {
    use strom_protocol::connection::Connection;
    use strom_protocol::kafka_protocol::messages::produce_request::{
        PartitionProduceData, TopicProduceData,
    };
    use strom_protocol::kafka_protocol::messages::{ProduceRequest, TopicName};
    use strom_protocol::kafka_protocol::protocol::StrBytes;
    use strom_protocol::records::{BatchBuilder, Compression};
    use strom_protocol::ErrorCode;

    let fx = Fixture::start(1).await;
    let producer = fx.producer(fx.config().retry_backoff(ms(20))).await;
    let send = |value: &'static str| {
        let producer = producer.clone();
        async move { producer.send(record("seq", value)).await.unwrap().await }
    };
    assert_eq!(send("zero").await.unwrap().offset, 0);
    let (header, _) = fx.read("seq", 0).await.remove(0);
    assert_eq!((header.producer_epoch, header.base_sequence), (0, 0));

    // Sequences 1 and 2 of the same producer, written by someone else.
    let mut rogue = BatchBuilder::new(Compression::None);
    rogue.push(0, None, Some(b"rogue-1"), &[]);
    rogue.push(0, None, Some(b"rogue-2"), &[]);
    let rogue = rogue.producer(header.producer_id, 0, 1);
    let conn = Connection::connect(&fx.broker.bootstrap(), "rogue")
        .await
        .unwrap();
    let data = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str("seq")))
        .with_partition_data(vec![PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(rogue.build().unwrap()))]);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![data]);
    let response = conn.send(&request).await.unwrap();
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);

    // The producer's sequence 1 is neither next (3) nor a duplicate.
    let refused = send("one").await.unwrap_err();
    assert!(
        matches!(&refused, strom_client::ClientError::Broker { code, .. } if *code == ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
        "{refused}"
    );
    // The next record starts over: epoch 1, sequence 0.
    assert_eq!(send("two").await.unwrap().offset, 3);
    assert_eq!(send("three").await.unwrap().offset, 4);
    let stamps: Vec<(i16, i32)> = fx
        .read("seq", 0)
        .await
        .iter()
        .map(|(h, _)| (h.producer_epoch, h.base_sequence))
        .collect();
    assert_eq!(stamps, [(0, 0), (0, 1), (1, 0), (1, 1)]);
    assert_eq!(
        fx.values("seq", 0).await,
        ["zero", "rogue-1", "rogue-2", "two", "three"]
    );
    producer.close().await;
}
