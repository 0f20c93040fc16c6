//! TLS between the client and the broker: certificates made here with rcgen, a broker
//! with an `SSL://` listener, with and without client certificates (mTLS).

use std::path::Path;
use std::time::{Duration, Instant};

use strom_client::admin::{Admin, NewTopic};
use strom_client::consumer::Consumer;
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;

use strom_testkit::Certs;

use crate::support::TestBroker;

async fn tls_broker(certs: &Certs, client_auth: &str, names: &[&str]) -> TestBroker {
    let keystore = certs.issue("broker", "broker", names).both;
    let truststore = certs.ca();
    let auth = client_auth.to_owned();
    TestBroker::start_with(move |c| {
        c.set("listeners", "SSL://127.0.0.1:0").unwrap();
        c.set("ssl.keystore.type", "PEM").unwrap();
        c.set("ssl.keystore.location", keystore.to_str().unwrap())
            .unwrap();
        c.set("ssl.truststore.location", truststore.to_str().unwrap())
            .unwrap();
        c.set("ssl.client.auth", &auth).unwrap();
    })
    .await
}

fn ssl_config(b: &TestBroker, ca: &Path) -> ClientConfig {
    let mut config = b.config();
    config.set("security.protocol", "SSL").unwrap();
    config
        .set("ssl.ca.location", ca.to_str().unwrap())
        .unwrap()
        .set("socket.connection.setup.timeout.ms", "5000")
        .unwrap();
    config
}

/// `ssl_config` showing the client certificate `issued`.
fn with_certificate(b: &TestBroker, ca: &Path, issued: &strom_testkit::Issued) -> ClientConfig {
    let mut config = ssl_config(b, ca);
    config
        .set("ssl.certificate.location", issued.cert.to_str().unwrap())
        .unwrap()
        .set("ssl.key.location", issued.key.to_str().unwrap())
        .unwrap();
    config
}

/// Writes and reads back records over TLS.
pub(crate) async fn round_trip(config: &ClientConfig, topic: &str) {
    let admin = Admin::connect(config.clone()).await.unwrap();
    admin
        .create_topic(NewTopic::new(topic).partitions(1))
        .await
        .unwrap();
    let producer = Producer::new(config.clone()).await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..50 {
        let record = Record::new(topic).value(format!("secret-{i}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close().await;
    let consumer = Consumer::new(config.clone()).await.unwrap();
    let partitions = [(topic.to_owned(), 0)];
    consumer.assign(&partitions).unwrap();
    consumer.seek_to_beginning(&partitions).unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while values.len() < 50 {
        assert!(Instant::now() < deadline, "{} of 50 records", values.len());
        for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(values[49], "secret-49");
    consumer.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_speak_tls_and_bad_peers_are_refused() {
    let certs = Certs::new("test ca");
    let b = tls_broker(&certs, "none", &["localhost", "127.0.0.1"]).await;
    round_trip(&ssl_config(&b, &certs.ca()), "encrypted").await;

    // Plaintext on the TLS port: refused, the broker carries on.
    let plain = b
        .config()
        .set("socket.connection.setup.timeout.ms", "3000")
        .unwrap()
        .clone();
    assert!(Admin::connect(plain).await.is_err());
    // A certificate from a CA the client does not trust.
    let other = Certs::new("another ca");
    let e = Admin::connect(ssl_config(&b, &other.ca()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    // A CA file that is not there: a config error naming it.
    let e = Admin::connect(ssl_config(&b, Path::new("/nonexistent/ca.pem")))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    still_serves(ssl_config(&b, &certs.ca()), "encrypted").await;
}

/// A request larger than the transport holds at once reaches the peer whole: a TLS write
/// returns once rustls took the bytes, which may still hold the end of the request, so
/// the connection flushes it.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_large_request_over_tls_reaches_the_peer_whole() {
    use strom_protocol::connection::Connection;
    use strom_protocol::frame::{FrameReader, DEFAULT_MAX_FRAME_BYTES};
    use strom_protocol::kafka_protocol::messages::produce_request::{
        PartitionProduceData, TopicProduceData,
    };
    use strom_protocol::kafka_protocol::messages::{ProduceRequest, TopicName};
    use strom_protocol::kafka_protocol::protocol::StrBytes;

    // A transport that holds 1 KiB: the writer waits on the reader all the time.
    let (near, far) = Certs::new("test ca").tls_over_duplex(1024).await;
    let conn = Connection::from_stream(near, "test");

    let records = bytes::Bytes::from(vec![7u8; 1 << 20]);
    let request =
        ProduceRequest::default()
            .with_acks(0)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records))])]);
    let mut reader = FrameReader::new(far, DEFAULT_MAX_FRAME_BYTES);
    // Paused time moves on only when both sides are stuck: then the timeout fires.
    let (sent, frame) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(conn.send_no_response(&request, 3), reader.next_frame())
    })
    .await
    .expect("the whole request arrives");
    sent.unwrap();
    let frame = frame.unwrap().unwrap();
    assert!(frame.len() > 1 << 20, "a frame of {} bytes", frame.len());

    // Dropped, the connection says goodbye: `close_notify`, not a bare close.
    drop(conn);
    let mut rest = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(reader.get_mut(), &mut rest).await;
    assert_eq!(read.unwrap(), 0);
}

/// The broker still serves after bad peers: `topic` is listed.
pub(crate) async fn still_serves(config: ClientConfig, topic: &str) {
    let admin = Admin::connect(config).await.unwrap();
    let topics = admin.list_topics(false).await.unwrap();
    assert!(topics.contains(&topic.to_owned()), "{topics:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_requires_client_certificates_refuses_clients_without_one() {
    let certs = Certs::new("test ca");
    let b = tls_broker(&certs, "required", &["127.0.0.1"]).await;
    let without = ssl_config(&b, &certs.ca());
    assert!(Admin::connect(without.clone()).await.is_err());
    let alice = certs.issue("alice", "alice", &["alice"]);
    let with = with_certificate(&b, &certs.ca(), &alice);
    round_trip(&with, "mutual").await;
    // Host names are checked unless turned off: the broker's certificate does not
    // name localhost.
    let mut elsewhere = with.clone();
    let port = b.broker.bootstrap().rsplit_once(':').unwrap().1.to_owned();
    elsewhere.bootstrap_servers = vec![format!("localhost:{port}")];
    let e = Admin::connect(elsewhere.clone()).await.unwrap_err();
    assert!(e.to_string().contains("not valid for name"), "{e}");
    elsewhere
        .set("ssl.endpoint.identification.algorithm", "")
        .unwrap();
    // Metadata sends the client back to 127.0.0.1, which the certificate names.
    Admin::connect(elsewhere).await.unwrap();
}

/// Listeners by name: a client of each is told that listener's endpoints, so the
/// plaintext and the TLS clients each stay on their own port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_advertises_its_own_endpoints() {
    let certs = Certs::new("test ca");
    let keystore = certs.issue("broker", "broker", &["127.0.0.1"]).both;
    let truststore = certs.ca();
    let b = TestBroker::start_with(move |c| {
        c.set("listeners", "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0")
            .unwrap();
        c.set(
            "listener.security.protocol.map",
            "INTERNAL:PLAINTEXT,EXTERNAL:SSL",
        )
        .unwrap();
        c.set("inter.broker.listener.name", "INTERNAL").unwrap();
        c.set("ssl.keystore.location", keystore.to_str().unwrap())
            .unwrap();
        c.set("ssl.truststore.location", truststore.to_str().unwrap())
            .unwrap();
    })
    .await;
    let internal = b.broker.listener_bootstrap("internal").unwrap();
    let external = b.broker.listener_bootstrap("EXTERNAL").unwrap();
    assert_ne!(internal, external);
    let mut tls = ssl_config(&b, &certs.ca());
    tls.bootstrap_servers = vec![external.clone()];
    round_trip(&tls, "over-tls").await;
    let described = Admin::connect(tls.clone())
        .await
        .unwrap()
        .describe_cluster()
        .await
        .unwrap();
    let told: Vec<String> = described
        .brokers
        .iter()
        .map(|b| format!("{}:{}", b.host, b.port))
        .collect();
    assert_eq!(told, [external]);
    let plain = b.config();
    assert_eq!(plain.bootstrap_servers, [internal]);
    round_trip(&plain, "in-the-clear").await;
}

/// A broker with nothing but a TLS listener reaches itself over TLS too: transaction
/// markers go through its own listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_on_a_broker_with_only_tls() {
    let certs = Certs::new("test ca");
    let b = tls_broker(&certs, "required", &["127.0.0.1"]).await;
    let alice = certs.issue("alice", "alice", &["alice"]);
    let config = with_certificate(&b, &certs.ca(), &alice);
    committed_transaction(&config, "txn-tls").await;
}

/// Commits one record in a transaction to a new `topic` and reads it back
/// `read_committed`: the markers went through the broker's inter-broker connection.
pub(crate) async fn committed_transaction(config: &ClientConfig, topic: &str) {
    use strom_client::producer::{Producer, Record};
    let admin = Admin::connect(config.clone()).await.unwrap();
    admin
        .create_topic(NewTopic::new(topic).partitions(1))
        .await
        .unwrap();
    let mut txn = config.clone();
    txn.set("transactional.id", &format!("{topic}-txn"))
        .unwrap();
    let producer = Producer::new(txn).await.unwrap();
    producer.begin_transaction().unwrap();
    let delivery = producer
        .send(Record::new(topic).value("committed"))
        .await
        .unwrap();
    producer.commit_transaction().await.unwrap();
    delivery.await.unwrap();
    producer.close().await;
    let mut reader = config.clone();
    reader.set("isolation.level", "read_committed").unwrap();
    let consumer = Consumer::new(reader).await.unwrap();
    let partitions = [(topic.to_owned(), 0)];
    consumer.assign(&partitions).unwrap();
    consumer.seek_to_beginning(&partitions).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut values = Vec::new();
    while values.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the committed record never showed"
        );
        for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            values.push(r.value.unwrap());
        }
    }
    assert_eq!(values[0].as_ref(), b"committed");
    consumer.close();
}

/// Expired certificates are refused on both sides: a broker's by the client, a client's by
/// a broker that requires certificates; the broker serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificates_are_refused() {
    let certs = Certs::new("test ca");
    // The broker's own certificate expired.
    let expired = certs
        .issue_expired("old-broker", "broker", &["127.0.0.1"])
        .both;
    let truststore = certs.ca();
    let b = TestBroker::start_with(move |c| {
        c.set("listeners", "SSL://127.0.0.1:0").unwrap();
        c.set("ssl.keystore.location", expired.to_str().unwrap())
            .unwrap();
        c.set("ssl.truststore.location", truststore.to_str().unwrap())
            .unwrap();
    })
    .await;
    let e = Admin::connect(ssl_config(&b, &certs.ca()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("certificate expired"), "{e}");

    // A client's certificate expired.
    let b = tls_broker(&certs, "required", &["127.0.0.1"]).await;
    let old = certs.issue_expired("old-alice", "alice", &["alice"]);
    let config = with_certificate(&b, &certs.ca(), &old);
    assert!(Admin::connect(config).await.is_err());
    let alice = certs.issue("alice", "alice", &["alice"]);
    let config = with_certificate(&b, &certs.ca(), &alice);
    round_trip(&config, "after-expired").await;
}
