//! A network cut: three brokers whose every link goes through proxies this test controls
//! (the controllers' links one proxy per direction and pair, each client listener behind
//! a proxy it is advertised as). Node 3 leads a partition with three replicas and
//! `min.insync.replicas=2` when it is cut off: it still takes a few acks=1 records that
//! reach it directly (a tail no other replica has), while on the other side the ISR
//! shrinks to nodes 1 and 2, one of them leads, and an acks=all producer keeps being
//! acknowledged. Healed, node 3 cuts its divergent tail, catches up and is in sync again;
//! led by it once more, the partition holds exactly the acknowledged records.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, ElectionType, NewTopic, PartitionMove};
use strom_client::producer::{Producer, Record};
use strom_client::{ClientConfig, Consumer};
use strom_protocol::connection::Connection;
use strom_protocol::records::{BatchBuilder, Compression};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use super::{described_until, WAIT};

/// What a proxy lets through.
#[derive(Default)]
struct Rules {
    /// Nothing passes.
    cut: bool,
    /// Connections whose first request names one of these client ids are dropped.
    blocked_clients: Vec<String>,
}

/// A TCP proxy to `target` that the test can cut, whole or by the client id of the first
/// Kafka request on a connection.
struct Proxy {
    addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    rules: Arc<Mutex<Rules>>,
    /// Open connections.
    open: Arc<Mutex<Vec<AbortHandle>>>,
}

/// The client id of a Kafka request frame (length prefix included): after the API key,
/// version and correlation id comes a nullable int16-length string.
fn client_id_of(frame: &[u8]) -> Option<String> {
    let header = frame.get(4..)?;
    let len = i16::from_be_bytes(header.get(8..10)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    Some(String::from_utf8_lossy(header.get(10..10 + len)?).into_owned())
}

impl Proxy {
    /// A proxy on a free port; `kafka` makes it read each connection's first request to
    /// learn its client id.
    async fn start(kafka: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            target: Arc::default(),
            rules: Arc::default(),
            open: Arc::default(),
        };
        let (target, rules, open) = (
            proxy.target.clone(),
            proxy.rules.clone(),
            proxy.open.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let (target, rules, open_list) = (target.clone(), rules.clone(), open.clone());
                let task = tokio::spawn(async move {
                    let mut first = Vec::new();
                    if kafka {
                        let mut len = [0u8; 4];
                        if client.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let size = u32::from_be_bytes(len) as usize;
                        first = vec![0u8; 4 + size];
                        first[..4].copy_from_slice(&len);
                        if client.read_exact(&mut first[4..]).await.is_err() {
                            return;
                        }
                    }
                    let client_id = client_id_of(&first);
                    {
                        let rules = rules.lock().unwrap();
                        let blocked = client_id
                            .as_ref()
                            .is_some_and(|id| rules.blocked_clients.contains(id));
                        if rules.cut || blocked {
                            return;
                        }
                    }
                    let Some(to) = *target.lock().unwrap() else {
                        return;
                    };
                    let Ok(mut server) = TcpStream::connect(to).await else {
                        return;
                    };
                    if server.write_all(&first).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                let mut open = open_list.lock().unwrap();
                open.retain(|t| !t.is_finished());
                open.push(task.abort_handle());
            }
        });
        proxy
    }

    fn forward_to(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = Some(target);
    }

    /// Cuts (or heals) everything through this proxy, open connections included.
    fn cut(&self, cut: bool) {
        self.rules.lock().unwrap().cut = cut;
        if cut {
            self.drop_open();
        }
    }

    /// Drops connections of client `id` (and refuses new ones) until healed.
    fn block_client(&self, id: &str) {
        self.rules
            .lock()
            .unwrap()
            .blocked_clients
            .push(id.to_owned());
        // Open connections cannot be told apart after their first request: drop them
        // all; the others reconnect.
        self.drop_open();
    }

    fn heal(&self) {
        *self.rules.lock().unwrap() = Rules::default();
    }

    fn drop_open(&self) {
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// Three brokers behind proxies.
struct CutCluster {
    brokers: Vec<Broker>,
    _dirs: Vec<tempfile::TempDir>,
    /// Client listener proxies, by node.
    clients: Vec<Proxy>,
    /// Controller link proxies: (from, to, proxy).
    links: Vec<(i32, i32, Proxy)>,
}

impl CutCluster {
    async fn start() -> CutCluster {
        let controllers: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut links = Vec::new();
        for from in 1..=3 {
            for to in (1..=3).filter(|&to| to != from) {
                let proxy = Proxy::start(false).await;
                proxy.forward_to(controllers[to as usize - 1].local_addr().unwrap());
                links.push((from, to, proxy));
            }
        }
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(Proxy::start(true).await);
        }
        let mut brokers = Vec::new();
        let mut dirs = Vec::new();
        for (i, listener) in controllers.into_iter().enumerate() {
            let me = i as i32 + 1;
            // Each node reaches the others' controllers through its own proxies.
            let voters = (1..=3)
                .map(|to| {
                    let addr = if to == me {
                        listener.local_addr().unwrap()
                    } else {
                        links
                            .iter()
                            .find(|(f, t, _)| *f == me && *t == to)
                            .unwrap()
                            .2
                            .addr
                    };
                    format!("{to}@{addr}")
                })
                .collect::<Vec<_>>()
                .join(",");
            let dir = tempfile::tempdir().unwrap();
            let mut config = BrokerConfig::new(dir.path());
            config.node_id = me;
            config.set("controller.quorum.voters", &voters).unwrap();
            config
                .set(
                    "advertised.listeners",
                    &format!("PLAINTEXT://{}", clients[i].addr),
                )
                .unwrap();
            config.set("replica.lag.time.max.ms", "1000").unwrap();
            let broker = Broker::start_with_controller_listener(config, listener)
                .await
                .unwrap();
            clients[i].forward_to(broker.local_addr());
            brokers.push(broker);
            dirs.push(dir);
        }
        CutCluster {
            brokers,
            _dirs: dirs,
            clients,
            links,
        }
    }

    fn config(&self, client_id: &str) -> ClientConfig {
        ClientConfig::new()
            .bootstrap(&format!(
                "{},{}",
                self.clients[0].addr, self.clients[1].addr
            ))
            .client_id(client_id)
    }

    /// Cuts node `id` off: its controller links both ways, every client connection to it,
    /// and its replica fetches from the others.
    fn isolate(&self, id: i32) {
        for (from, to, proxy) in &self.links {
            if *from == id || *to == id {
                proxy.cut(true);
            }
        }
        for (i, proxy) in self.clients.iter().enumerate() {
            if i as i32 + 1 == id {
                proxy.cut(true);
            } else {
                proxy.block_client(&format!("broker-{id}-fetcher"));
            }
        }
    }

    fn heal(&self) {
        for (_, _, proxy) in &self.links {
            proxy.heal();
        }
        for proxy in &self.clients {
            proxy.heal();
        }
    }
}

/// Produces `values` with acks=all; returns each one's offset.
async fn produce_all(producer: &Producer, values: std::ops::Range<u32>) -> Vec<(i64, String)> {
    let mut deliveries = Vec::new();
    for i in values {
        let value = i.to_string();
        let record = Record::new("cut").partition(0).value(value.clone());
        deliveries.push((producer.send(record).await.unwrap(), value));
    }
    let mut acked = Vec::new();
    for (delivery, value) in deliveries {
        acked.push((delivery.await.expect("acknowledged").offset, value));
    }
    acked
}

#[tokio::test]
async fn a_cut_off_leader_loses_its_unreplicated_tail_and_catches_up_when_healed() {
    let cluster = CutCluster::start().await;
    let admin = Admin::connect(cluster.config("cut-admin")).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while admin
        .describe_cluster()
        .await
        .map_or(0, |c| c.brokers.len())
        < 3
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "brokers never registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin
        .create_topic(
            NewTopic::new("cut")
                .partitions(1)
                .replication_factor(3)
                .config("min.insync.replicas", "2"),
        )
        .await
        .unwrap();
    // Node 3 leads: preferred, then elected.
    let to_3 = PartitionMove {
        topic: "cut".into(),
        partition: 0,
        replicas: Some(vec![3, 1, 2]),
    };
    for outcome in admin.alter_partition_reassignments(&[to_3]).await.unwrap() {
        outcome.result.unwrap();
    }
    described_until(&admin, "cut", "replicas 3, 1, 2 in sync", |d| {
        d.partitions[0].replicas == [3, 1, 2] && d.partitions[0].isr.len() == 3
    })
    .await;
    let elected = admin
        .elect_leaders(ElectionType::Preferred, Some(&[("cut", 0)]))
        .await
        .unwrap();
    assert!(
        elected[0].result.is_ok() || elected[0].is(strom_protocol::ErrorCode::ELECTION_NOT_NEEDED)
    );
    described_until(&admin, "cut", "node 3 leads", |d| {
        d.partitions[0].leader == 3
    })
    .await;

    let producer = Producer::new(cluster.config("cut-producer").enable_idempotence(true))
        .await
        .unwrap();
    let mut acked = produce_all(&producer, 0..100).await;
    assert_eq!(acked.last().unwrap().0, 99);
    described_until(&admin, "cut", "all in sync", |d| {
        d.partitions[0].isr.len() == 3
    })
    .await;

    cluster.isolate(3);
    // The cut-off leader still takes acks=1 records from a client that reaches it: a tail
    // no other replica gets.
    let direct = Connection::connect(&cluster.brokers[2].local_addr().to_string(), "cut-direct")
        .await
        .unwrap();
    let mut batch = BatchBuilder::new(Compression::None);
    for i in 0..5 {
        batch.push(1_000 + i, None, Some(format!("lost-{i}").as_bytes()), &[]);
    }
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("cut")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch.build().unwrap()))])]);
    let response = direct.send(&request).await.unwrap();
    let written = &response.responses[0].partition_responses[0];
    assert_eq!((written.error_code, written.base_offset), (0, 100));

    // The other side: the ISR shrinks to 1 and 2, one of them leads, and acks=all with
    // min.insync.replicas=2 keeps working.
    let shrunk = described_until(&admin, "cut", "ISR without node 3", |d| {
        let p = &d.partitions[0];
        p.leader != 3 && p.leader > 0 && !p.isr.contains(&3) && p.isr.len() == 2
    })
    .await;
    eprintln!("cut: {:?}", shrunk.partitions[0]);
    let during = produce_all(&producer, 100..150).await;
    assert_eq!(
        during.first().unwrap().0,
        100,
        "the new leader's log has no cut-off tail"
    );
    acked.extend(during);

    // Healed: node 3 follows, cuts its tail, catches up, and is in sync again.
    cluster.heal();
    described_until(&admin, "cut", "node 3 back in sync", |d| {
        d.partitions[0].isr.len() == 3
    })
    .await;
    let elected = admin
        .elect_leaders(ElectionType::Preferred, Some(&[("cut", 0)]))
        .await
        .unwrap();
    elected[0].result.as_ref().expect("node 3 leads again");
    described_until(&admin, "cut", "node 3 leads again", |d| {
        d.partitions[0].leader == 3
    })
    .await;
    producer.close().await;

    // Read from node 3: exactly the acknowledged records, no trace of the lost tail.
    let consumer = Consumer::new(cluster.config("cut-consumer")).await.unwrap();
    consumer.assign(&[("cut".into(), 0)]).unwrap();
    consumer.seek_to_beginning(&[("cut".into(), 0)]).unwrap();
    let mut read: Vec<(i64, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while read.len() < acked.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "read {}",
            read.len()
        );
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            read.push((
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            ));
        }
    }
    assert_eq!(read, acked);
    assert_eq!(consumer.position("cut", 0).await.unwrap(), 150);
    consumer.shutdown().await.unwrap();
    for broker in cluster.brokers {
        broker.shutdown().await.unwrap();
    }
}
