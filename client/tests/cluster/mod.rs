//! The client against a cluster of three Strom brokers (each also a controller): topics
//! created through the controller with three replicas, records produced (acks=all) to the
//! leader of each partition, and a consumer group coordinated by the broker that leads its
//! offsets partition.

mod network_cut;

use std::collections::BTreeMap;
use std::time::Duration;

use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, ElectionType, NewTopic, PartitionMove};
use strom_client::producer::{Producer, Record};
use strom_client::{ClientConfig, Consumer};
use strom_protocol::ErrorCode;
use tempfile::TempDir;

/// How long any expected state may take.
const WAIT: Duration = Duration::from_secs(30);

struct Cluster {
    brokers: Vec<Broker>,
    _dirs: Vec<TempDir>,
    voters: String,
}

impl Cluster {
    async fn start() -> Cluster {
        Cluster::start_with(0, 3).await
    }

    /// Three nodes that are brokers and controllers, and `extra` broker-only nodes (ids
    /// 4 and up); `factor` replicas per topic by default.
    async fn start_with(extra: usize, factor: usize) -> Cluster {
        let listeners: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let voters = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{}@{}", i + 1, l.local_addr().unwrap()))
            .collect::<Vec<_>>()
            .join(",");
        let mut brokers = Vec::new();
        let mut dirs = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let mut config = BrokerConfig::new(dir.path());
            config.node_id = i as i32 + 1;
            config.set("controller.quorum.voters", &voters).unwrap();
            config
                .set("controller.quorum.election.timeout.ms", "300")
                .unwrap();
            config.group_initial_rebalance_delay = Duration::ZERO;
            config.default_replication_factor = factor;
            config.retention_check_interval = Duration::from_millis(50);
            brokers.push(
                Broker::start_with_controller_listener(config, listener)
                    .await
                    .unwrap(),
            );
            dirs.push(dir);
        }
        let mut cluster = Cluster {
            brokers,
            _dirs: dirs,
            voters,
        };
        for _ in 0..extra {
            let dir = tempfile::tempdir().unwrap();
            let id = cluster.brokers.len() as i32 + 1;
            cluster.brokers.push(
                Broker::start(cluster.broker_only(id, dir.path()))
                    .await
                    .unwrap(),
            );
            cluster._dirs.push(dir);
        }
        cluster
    }

    /// The config of broker-only node `id` keeping its data in `dir`.
    fn broker_only(&self, id: i32, dir: &std::path::Path) -> BrokerConfig {
        let mut config = BrokerConfig::new(dir);
        config.node_id = id;
        config
            .set("controller.quorum.voters", &self.voters)
            .unwrap();
        config.retention_check_interval = Duration::from_millis(50);
        config
    }

    /// Stops the last node (a broker-only one); returns its id.
    async fn stop_last(&mut self) -> i32 {
        let broker = self.brokers.pop().unwrap();
        let id = broker.node_id();
        broker.shutdown().await.unwrap();
        id
    }

    /// Starts broker-only node `id` again on its data, as the last node.
    async fn start_again(&mut self, id: i32) {
        assert_eq!(self.brokers.len(), usize::try_from(id - 1).unwrap());
        let dir = self._dirs[self.brokers.len()].path().to_path_buf();
        let broker = Broker::start(self.broker_only(id, &dir)).await.unwrap();
        self.brokers.push(broker);
    }

    /// The folder of partition `index` of `topic` on node `id`, if it has one.
    fn holds(&self, id: i32, topic: &str, index: i32) -> bool {
        self._dirs[usize::try_from(id - 1).unwrap()]
            .path()
            .join(format!("{topic}-{index}"))
            .exists()
    }

    fn config(&self) -> ClientConfig {
        // Every broker, so a client bootstraps whichever of them stops.
        let bootstrap: Vec<String> = self.brokers.iter().map(Broker::bootstrap).collect();
        ClientConfig::new()
            .bootstrap(&bootstrap.join(","))
            .client_id("cluster-tests")
    }

    async fn shutdown(self) {
        for broker in self.brokers {
            broker.shutdown().await.unwrap();
        }
    }
}

#[tokio::test]
async fn produce_and_consume_in_a_group_across_three_brokers() {
    let cluster = Cluster::start().await;
    let admin = Admin::connect(cluster.config()).await.unwrap();
    // Every broker registers through the quorum.
    registered(&admin, 3).await;
    admin
        .create_topic(NewTopic::new("orders").partitions(6))
        .await
        .unwrap();
    let described = &admin.describe_topics(&["orders"]).await.unwrap()[0];
    assert!(described.partitions.iter().all(|p| p.replicas.len() == 3));
    let mut leaders: Vec<i32> = described.partitions.iter().map(|p| p.leader).collect();
    leaders.sort_unstable();
    leaders.dedup();
    assert_eq!(leaders, [1, 2, 3], "partitions on every broker");

    let producer = Producer::new(cluster.config()).await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..600 {
        let record = Record::new("orders")
            .key(format!("customer-{}", i % 37))
            .value(i.to_string());
        deliveries.push(producer.send(record).await.unwrap());
    }
    let mut per_partition: BTreeMap<i32, usize> = BTreeMap::new();
    for delivery in deliveries {
        *per_partition
            .entry(delivery.await.unwrap().partition)
            .or_default() += 1;
    }
    producer.close().await;
    assert!(per_partition.len() > 1, "{per_partition:?}");

    let mut config = cluster.config();
    for (k, v) in [
        ("group.id", "billing"),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
    ] {
        config.set(k, v).unwrap();
    }
    let consumer = Consumer::new(config).await.unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let mut seen: BTreeMap<i32, usize> = BTreeMap::new();
    let mut values = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while values.len() < 600 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "got {} of 600",
            values.len()
        );
        for record in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            *seen.entry(record.partition).or_default() += 1;
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(seen, per_partition);
    values.sort_by_key(|v| v.parse::<u32>().unwrap());
    assert_eq!(values, (0..600).map(|i| i.to_string()).collect::<Vec<_>>());
    // Commits go to the group's coordinator, wherever it is.
    consumer.commit().await.unwrap();
    consumer.shutdown().await.unwrap();
    cluster.shutdown().await;
}

/// Waits until `check` holds of the topic's description, or fails with `what`.
async fn described_until(
    admin: &Admin,
    topic: &str,
    what: &str,
    check: impl Fn(&strom_client::admin::TopicDescription) -> bool,
) -> strom_client::admin::TopicDescription {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let described = admin.describe_topics(&[topic]).await.unwrap().remove(0);
        if check(&described) {
            return described;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {:?}",
            described.partitions
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Partitions move to other brokers while a producer (acks=all, idempotent) and a
/// consumer carry on: every acknowledged record is read once, in order per partition; the
/// moved-off replicas' data is gone; and preferred-leader election brings leadership back
/// to a restarted preferred replica.
#[tokio::test]
async fn partitions_move_to_other_brokers_while_clients_carry_on() {
    let mut cluster = Cluster::start_with(1, 2).await;
    let admin = Admin::connect(cluster.config()).await.unwrap();
    registered(&admin, 4).await;
    admin
        .create_topic(NewTopic::new("moving").partitions(2))
        .await
        .unwrap();
    let before = admin.describe_topics(&["moving"]).await.unwrap().remove(0);
    // Partition 0 moves to node 4 (preferred) and a node it is not on; partition 1 moves
    // wholly to the two nodes it is not on.
    let p0 = &before.partitions[0].replicas;
    let other = (1..=3).find(|b| !p0.contains(b)).unwrap();
    let p1 = &before.partitions[1].replicas;
    let rest: Vec<i32> = (1..=4).filter(|b| !p1.contains(b)).collect();
    let targets = [vec![4, other], rest];

    let producer = Producer::new(cluster.config().enable_idempotence(true))
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producing = {
        let stop = stop.clone();
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut deliveries = Vec::new();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let record = Record::new("moving")
                    .partition((i % 2) as i32)
                    .value(i.to_string());
                deliveries.push(producer.send(record).await.unwrap());
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let mut acked = Vec::new();
            for d in deliveries {
                let d = d.await.expect("every record is acknowledged");
                acked.push((d.partition, d.offset));
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let moves: Vec<PartitionMove> = targets
        .iter()
        .enumerate()
        .map(|(p, r)| PartitionMove {
            topic: "moving".into(),
            partition: p as i32,
            replicas: Some(r.clone()),
        })
        .collect();
    for outcome in admin.alter_partition_reassignments(&moves).await.unwrap() {
        outcome.result.unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while !admin
        .list_partition_reassignments(None)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the moves never completed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = described_until(&admin, "moving", "moved, all in sync", |d| {
        d.partitions.iter().all(|p| p.isr.len() == 2)
    })
    .await;
    for (p, target) in after.partitions.iter().zip(&targets) {
        assert_eq!(&p.replicas, target);
        assert!(target.contains(&p.leader), "{p:?}");
    }
    assert_eq!(
        after.partitions[0].leader, 4,
        "the old leader gave way to the first target"
    );
    // A cancel with nothing in progress is refused per partition.
    let cancel = PartitionMove {
        topic: "moving".into(),
        partition: 0,
        replicas: None,
    };
    let refused = admin
        .alter_partition_reassignments(&[cancel])
        .await
        .unwrap();
    assert!(refused[0].is(ErrorCode::NO_REASSIGNMENT_IN_PROGRESS));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = producing.await.unwrap();
    producer.close().await;
    assert!(acked.len() > 100, "{} records", acked.len());

    // Every acknowledged record, once, in offset order per partition.
    let consumer = Consumer::new(cluster.config()).await.unwrap();
    consumer
        .assign(&[("moving".into(), 0), ("moving".into(), 1)])
        .unwrap();
    consumer
        .seek_to_beginning(&[("moving".into(), 0), ("moving".into(), 1)])
        .unwrap();
    let mut read: BTreeMap<i32, Vec<(i64, u32)>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while read.values().map(Vec::len).sum::<usize>() < acked.len() {
        assert!(tokio::time::Instant::now() < deadline, "read {read:?}");
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let value: u32 = std::str::from_utf8(&r.value.unwrap())
                .unwrap()
                .parse()
                .unwrap();
            read.entry(r.partition).or_default().push((r.offset, value));
        }
    }
    consumer.shutdown().await.unwrap();
    for (partition, records) in &read {
        assert!(
            records.windows(2).all(|w| w[0].0 < w[1].0),
            "offsets in order"
        );
        assert!(
            records.windows(2).all(|w| w[0].1 < w[1].1),
            "values in the order produced, none twice, in partition {partition}"
        );
        assert!(records.iter().all(|(_, v)| (*v % 2) as i32 == *partition));
    }
    let mut read_offsets: Vec<(i32, i64)> = read
        .iter()
        .flat_map(|(p, r)| r.iter().map(move |(o, _)| (*p, *o)))
        .collect();
    read_offsets.sort_unstable();
    let mut acked = acked;
    acked.sort_unstable();
    assert_eq!(read_offsets, acked, "exactly the acknowledged records");

    // The replicas moved off a node left no data behind; the new ones hold it.
    for (p, (old, new)) in [p0, p1].into_iter().zip(&targets).enumerate() {
        for node in 1..=4 {
            let expected = new.contains(&node);
            let deadline = tokio::time::Instant::now() + WAIT;
            while cluster.holds(node, "moving", p as i32) != expected {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "node {node}, partition {p} (was on {old:?}, now {new:?})"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    // Node 4, partition 0's preferred leader, goes away: another replica leads; back and in
    // sync, a preferred election gives it the lead again.
    assert_eq!(cluster.stop_last().await, 4);
    described_until(
        &admin,
        "moving",
        "partition 0 led by its other replica",
        |d| d.partitions[0].leader == other,
    )
    .await;
    let not_available = admin
        .elect_leaders(ElectionType::Preferred, Some(&[("moving", 0)]))
        .await
        .unwrap();
    assert!(not_available[0].is(ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE));
    cluster.start_again(4).await;
    described_until(&admin, "moving", "node 4 back in sync", |d| {
        d.partitions[0].isr.contains(&4)
    })
    .await;
    // It is in sync once it fetched; the controller also needs to have unfenced it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let elected = loop {
        let elected = admin
            .elect_leaders(ElectionType::Preferred, None)
            .await
            .unwrap();
        if elected
            .iter()
            .any(|o| o.topic == "moving" && o.partition == 0 && o.result.is_ok())
        {
            break elected;
        }
        assert!(tokio::time::Instant::now() < deadline, "{elected:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        elected
            .iter()
            .all(|o| !o.is(ErrorCode::ELECTION_NOT_NEEDED)),
        "an election of all partitions leaves out those that need none"
    );
    described_until(&admin, "moving", "node 4 leads partition 0 again", |d| {
        d.partitions[0].leader == 4
    })
    .await;
    let again = admin
        .elect_leaders(ElectionType::Preferred, Some(&[("moving", 0)]))
        .await
        .unwrap();
    assert!(again[0].is(ErrorCode::ELECTION_NOT_NEEDED));
    cluster.shutdown().await;
}

/// Waits until `count` brokers are registered and live.
async fn registered(admin: &Admin, count: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while admin.describe_cluster().await.unwrap().brokers.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "brokers never registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `consumer` until `values` holds `until` record values.
/// Sends the numbers of `range` (as keys and values) to `topic` (`partition` if given)
/// and waits for every delivery.
async fn send_numbers(
    producer: &Producer,
    topic: &str,
    partition: Option<i32>,
    range: std::ops::Range<u32>,
) {
    let mut deliveries = Vec::new();
    for i in range {
        let mut record = Record::new(topic).key(i.to_string()).value(i.to_string());
        if let Some(p) = partition {
            record = record.partition(p);
        }
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
}

async fn read_values(consumer: &Consumer, values: &mut Vec<u32>, until: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while values.len() < until {
        assert!(
            tokio::time::Instant::now() < deadline,
            "read {}",
            values.len()
        );
        for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            values.push(
                std::str::from_utf8(&r.value.unwrap())
                    .unwrap()
                    .parse()
                    .unwrap(),
            );
        }
    }
}

/// The node FindCoordinator names for `group`, asked of `bootstrap`.
async fn coordinator_of(bootstrap: &str, group: &str) -> i32 {
    find_coordinator(bootstrap, group, 0).await
}

/// The node FindCoordinator names for `key` of `key_type` (0 group, 1 transactional id).
async fn find_coordinator(bootstrap: &str, key: &str, key_type: i8) -> i32 {
    use kafka_protocol::messages::FindCoordinatorRequest;
    use kafka_protocol::protocol::StrBytes;
    let conn = strom_protocol::connection::Connection::connect(bootstrap, "cluster-tests")
        .await
        .unwrap();
    let request = FindCoordinatorRequest::default()
        .with_key_type(key_type)
        .with_key(StrBytes::from_string(key.into()));
    let response = conn.send_version(&request, 3).await.unwrap();
    assert_eq!(response.error_code, 0);
    response.node_id.0
}

/// The offsets topic has three replicas; when the broker coordinating a group stops, the
/// new leader of its offsets partition loads the group, and its members carry on from
/// the offsets they committed: nothing read again, nothing skipped.
#[tokio::test]
async fn a_group_keeps_its_offsets_when_its_coordinator_stops() {
    let mut cluster = Cluster::start().await;
    let admin = Admin::connect(cluster.config()).await.unwrap();
    registered(&admin, 3).await;
    admin
        .create_topic(NewTopic::new("ha").partitions(2))
        .await
        .unwrap();
    let producer = Producer::new(cluster.config()).await.unwrap();
    let send = |range| send_numbers(&producer, "ha", None, range);
    send(0..100).await;

    let mut config = cluster.config();
    for (k, v) in [
        ("group.id", "ha-group"),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
        ("heartbeat.interval.ms", "100"),
    ] {
        config.set(k, v).unwrap();
    }
    let consumer = Consumer::new(config).await.unwrap();
    consumer.subscribe(&["ha"]).unwrap();
    let mut values: Vec<u32> = Vec::new();
    read_values(&consumer, &mut values, 100).await;
    consumer.commit().await.unwrap();
    let offsets = admin
        .describe_topics(&["__consumer_offsets"])
        .await
        .unwrap();
    assert!(offsets[0].partitions.iter().all(|p| p.replicas.len() == 3));

    // The coordinator stops; another broker leads the group's offsets partition.
    let coordinator = coordinator_of(&cluster.brokers[0].bootstrap(), "ha-group").await;
    let index = cluster
        .brokers
        .iter()
        .position(|b| b.node_id() == coordinator)
        .unwrap();
    cluster.brokers.remove(index).shutdown().await.unwrap();
    send(100..150).await;
    read_values(&consumer, &mut values, 150).await;
    values.sort_unstable();
    assert_eq!(values, (0..150).collect::<Vec<_>>(), "each record once");
    // FindCoordinator answers from the asked broker's metadata, which learns of the new
    // leader of the offsets partition shortly after the consumer did.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while coordinator_of(&cluster.brokers[0].bootstrap(), "ha-group").await == coordinator {
        assert!(
            std::time::Instant::now() < deadline,
            "the group's coordinator is still the stopped broker {coordinator}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumer.commit().await.unwrap();
    let committed = consumer
        .committed(&[("ha".into(), 0), ("ha".into(), 1)])
        .await
        .unwrap();
    assert_eq!(committed.iter().flatten().sum::<i64>(), 150);
    consumer.shutdown().await.unwrap();
    producer.close().await;
    cluster.shutdown().await;
}

/// Reads partition 0 of `topic` from its start to its end as (offset, key, value).
async fn read_partition(cluster: &Cluster, topic: &str) -> Vec<(i64, String, String)> {
    let admin = Admin::connect(cluster.config()).await.unwrap();
    let end = admin
        .list_offsets(topic, strom_client::admin::OffsetSpec::Latest)
        .await
        .unwrap()[&0]
        .offset;
    let consumer = Consumer::new(cluster.config()).await.unwrap();
    consumer.assign(&[(topic.into(), 0)]).unwrap();
    consumer.seek_to_beginning(&[(topic.into(), 0)]).unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while out.last().map_or(0, |(o, _, _)| o + 1) < end {
        assert!(
            tokio::time::Instant::now() < deadline,
            "read {} of {end}",
            out.len()
        );
        for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            let text = |b: Option<bytes::Bytes>| String::from_utf8(b.unwrap().to_vec()).unwrap();
            out.push((r.offset, text(r.key), text(r.value)));
        }
    }
    consumer.shutdown().await.unwrap();
    out
}

/// A compacted partition (offsets with gaps between its batches) moves to a new replica:
/// the replica copies it with the leader's offsets, gaps included, catches up, and leads
/// it with the same records.
#[tokio::test]
async fn a_new_replica_copies_a_compacted_log_with_its_gaps() {
    let cluster = Cluster::start_with(1, 2).await;
    let admin = Admin::connect(cluster.config()).await.unwrap();
    registered(&admin, 4).await;
    admin
        .create_topic(
            NewTopic::new("compacted")
                .partitions(1)
                .config("cleanup.policy", "compact")
                .config("segment.bytes", "2048")
                .config("min.cleanable.dirty.ratio", "0.01"),
        )
        .await
        .unwrap();
    let producer = Producer::new(cluster.config()).await.unwrap();
    for i in 0..400u32 {
        let record = Record::new("compacted")
            .partition(0)
            .key(format!("key-{}", i % 10))
            .value(format!("value-{i}"));
        producer.send(record).await.unwrap().await.unwrap();
    }
    producer.close().await;
    // Compacted on its replicas: fewer records than offsets.
    let deadline = tokio::time::Instant::now() + WAIT;
    let compacted = loop {
        let read = read_partition(&cluster, "compacted").await;
        if read.len() < 200 {
            break read;
        }
        assert!(tokio::time::Instant::now() < deadline, "never compacted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Removed records leave offsets out: before the first kept one, or between two.
    let gaps = compacted[0].0 > 0 || compacted.windows(2).any(|w| w[1].0 > w[0].0 + 1);
    assert!(gaps, "{compacted:?}");

    // Node 4 becomes its only replica: it must copy the log to be in sync first.
    let moved = PartitionMove {
        topic: "compacted".into(),
        partition: 0,
        replicas: Some(vec![4]),
    };
    for outcome in admin.alter_partition_reassignments(&[moved]).await.unwrap() {
        outcome.result.unwrap();
    }
    described_until(&admin, "compacted", "moved to node 4", |d| {
        d.partitions[0].replicas == [4] && d.partitions[0].leader == 4
    })
    .await;
    let copied = read_partition(&cluster, "compacted").await;
    // The latest value of every key, at the leader's offsets (compaction may have gone
    // on meanwhile, so older values may be gone from either).
    let latest = |records: &[(i64, String, String)]| {
        let mut by_key = BTreeMap::new();
        for (offset, key, value) in records {
            by_key.insert(key.clone(), (*offset, value.clone()));
        }
        by_key
    };
    assert_eq!(latest(&copied), latest(&compacted));
    assert_eq!(latest(&copied).len(), 10);
    cluster.shutdown().await;
}

/// `__transaction_state` has three replicas; when the broker coordinating a
/// transactional id stops with a transaction ending or open, the new leader of its
/// partition loads the id and finishes what was decided: the committed transaction's
/// records are readable, the producer carries on with the next one.
#[tokio::test]
async fn transactions_survive_their_coordinator_stopping() {
    use strom_client::config::IsolationLevel;
    let mut cluster = Cluster::start().await;
    let admin = Admin::connect(cluster.config()).await.unwrap();
    registered(&admin, 3).await;
    admin
        .create_topic(NewTopic::new("txn-ha").partitions(1))
        .await
        .unwrap();
    let producer = Producer::new(cluster.config().transactional_id("ha-writer"))
        .await
        .unwrap();
    let send = |range| send_numbers(&producer, "txn-ha", Some(0), range);
    producer.begin_transaction().unwrap();
    send(0..50).await;
    producer.commit_transaction().await.unwrap();
    let state = admin
        .describe_topics(&["__transaction_state"])
        .await
        .unwrap();
    assert!(state[0].partitions.iter().all(|p| p.replicas.len() == 3));

    // The coordinator stops; the producer finds the new one and goes on.
    let coordinator = find_coordinator(&cluster.brokers[0].bootstrap(), "ha-writer", 1).await;
    let index = cluster
        .brokers
        .iter()
        .position(|b| b.node_id() == coordinator)
        .unwrap();
    cluster.brokers.remove(index).shutdown().await.unwrap();
    producer.begin_transaction().unwrap();
    send(50..100).await;
    producer.commit_transaction().await.unwrap();
    producer.begin_transaction().unwrap();
    send(100..120).await;
    producer.abort_transaction().await.unwrap();

    let consumer = Consumer::new(
        cluster
            .config()
            .isolation_level(IsolationLevel::ReadCommitted),
    )
    .await
    .unwrap();
    let all = [("txn-ha".to_owned(), 0)];
    consumer.assign(&all).unwrap();
    consumer.seek_to_beginning(&all).unwrap();
    let mut values = Vec::new();
    read_values(&consumer, &mut values, 100).await;
    let more = consumer.poll(Duration::from_millis(500)).await.unwrap();
    assert!(more.is_empty(), "aborted records read: {more:?}");
    assert_eq!(values, (0..100).collect::<Vec<u32>>());
    consumer.shutdown().await.unwrap();
    producer.close().await;
    cluster.shutdown().await;
}
