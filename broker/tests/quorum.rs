//! The metadata quorum over the wire: DescribeQuorum on a broker alone, and a quorum of
//! three that elects a leader, registers every broker, elects another leader and fences
//! the old one when it stops, and takes it back (registered again, unfenced) as a
//! follower when it restarts; topics placed across the brokers; groups coordinated by
//! the leader of their offsets partition.

use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, DescribeClusterRequest, DescribeQuorumRequest, FindCoordinatorRequest,
    GroupId, MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use strom_broker::{Broker, BrokerConfig};
use strom_protocol::connection::Connection;
use strom_protocol::records::{BatchBuilder, Compression};
use strom_protocol::ErrorCode;
use tempfile::TempDir;

use crate::{list_offset, name, produce, s, TestBroker};

/// Leader, term and voters as `broker` describes the quorum.
async fn describe(bootstrap: &str) -> Option<(i32, i32, Vec<i32>)> {
    let conn = Connection::connect(bootstrap, "quorum-tests").await.ok()?;
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(s("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let response = conn.send(&request).await.ok()?;
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let voters = p.current_voters.iter().map(|v| v.replica_id.0).collect();
    Some((p.leader_id.0, p.leader_epoch, voters))
}

#[tokio::test]
async fn a_broker_alone_leads_its_own_quorum() {
    let broker = TestBroker::start().await;
    let (leader, term, voters) = describe(&broker.broker.bootstrap()).await.unwrap();
    assert_eq!((leader, voters), (1, vec![1]));
    assert!(term >= 1);
}

struct Node {
    id: i32,
    dir: TempDir,
    controller: std::net::SocketAddr,
    broker: Option<Broker>,
}

fn config(node: &Node, voters: &str) -> BrokerConfig {
    let mut config = BrokerConfig::new(node.dir.path());
    config.node_id = node.id;
    config.set("controller.quorum.voters", voters).unwrap();
    config
        .set("controller.quorum.election.timeout.ms", "300")
        .unwrap();
    config.set("broker.session.timeout.ms", "600").unwrap();
    config
}

/// The live brokers' ids as broker `bootstrap` describes the cluster.
async fn described_brokers(bootstrap: &str) -> Option<Vec<i32>> {
    let conn = Connection::connect(bootstrap, "quorum-tests").await.ok()?;
    let response = conn.send(&DescribeClusterRequest::default()).await.ok()?;
    let mut ids: Vec<i32> = response.brokers.iter().map(|b| b.broker_id.0).collect();
    ids.sort_unstable();
    Some(ids)
}

/// Waits until every running node describes exactly `expected` as the live brokers.
async fn live_brokers_are(nodes: &[Node], expected: &[i32]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for broker in nodes.iter().filter_map(|n| n.broker.as_ref()) {
            seen.push(described_brokers(&broker.bootstrap()).await);
        }
        if seen.iter().all(|s| s.as_deref() == Some(expected)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "live brokers {seen:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start(node: &mut Node, voters: &str, listener: std::net::TcpListener) {
    let broker = Broker::start_with_controller_listener(config(node, voters), listener)
        .await
        .unwrap();
    node.broker = Some(broker);
}

/// Waits until every running node names the same leader (not `not`); returns it and the
/// term.
async fn agreed_leader(nodes: &[Node], not: Option<i32>) -> (i32, i32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for broker in nodes.iter().filter_map(|n| n.broker.as_ref()) {
            seen.push(describe(&broker.bootstrap()).await);
        }
        if let Some(Some((leader, term, _))) = seen.first() {
            let agreed = seen
                .iter()
                .all(|d| d.as_ref().is_some_and(|(l, t, _)| l == leader && t == term));
            if agreed && *leader >= 0 && Some(*leader) != not {
                return (*leader, *term);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no agreed leader: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// CreateTopics of `topic` with `partitions` partitions through `bootstrap`: the error.
async fn create_through(bootstrap: &str, topic: &str, partitions: i32) -> ErrorCode {
    create_replicated(bootstrap, topic, partitions, -1, &[]).await
}

/// CreateTopics with a replication factor and config overrides: the error.
async fn create_replicated(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    factor: i16,
    configs: &[(&str, &str)],
) -> ErrorCode {
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    let conn = Connection::connect(bootstrap, "quorum-tests")
        .await
        .unwrap();
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(s(k))
                .with_value(Some(s(v)))
        })
        .collect();
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(factor)
        .with_configs(configs)]);
    let response = conn.send(&request).await.unwrap();
    ErrorCode(response.topics[0].error_code)
}

/// The leader of each partition of `topic` as broker `bootstrap` answers Metadata.
async fn leaders(bootstrap: &str, topic: &str) -> Vec<i32> {
    let topic = topic_metadata(bootstrap, topic).await;
    let mut partitions: Vec<(i32, i32)> = topic
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    partitions.sort_unstable();
    partitions.into_iter().map(|(_, leader)| leader).collect()
}

/// Waits until every running node reports `expected` as the partitions' leaders.
async fn leaders_are(nodes: &[Node], topic: &str, expected: &[i32]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for broker in nodes.iter().filter_map(|n| n.broker.as_ref()) {
            seen.push(leaders(&broker.bootstrap(), topic).await);
        }
        if seen.iter().all(|l| l == expected) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "leaders {seen:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates `topic` through `controller` with one partition per broker of `brokers`, checks
/// each broker leads one, waits until every node agrees; returns the leaders.
async fn create_spread(nodes: &[Node], controller: i32, topic: &str, brokers: &[i32]) -> Vec<i32> {
    let count = i32::try_from(brokers.len()).unwrap();
    assert_eq!(
        create_through(&bootstrap(nodes, controller), topic, count).await,
        ErrorCode::NONE
    );
    let placed = leaders(&bootstrap(nodes, controller), topic).await;
    let mut distinct = placed.clone();
    distinct.sort_unstable();
    assert_eq!(distinct, brokers, "one partition per broker: {placed:?}");
    leaders_are(nodes, topic, &placed).await;
    placed
}

/// Produces one record to a partition `conn` leads, once it has opened it (until then the
/// answer is a retriable error, as any client expects after a topic is created); returns
/// the offset.
async fn produce_once_led(conn: &Connection, topic: &str, partition: i32) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, offset) = produce(conn, topic, partition, one_record()).await;
        if code == 0 {
            return offset;
        }
        assert!(ErrorCode(code).is_retriable(), "{:?}", ErrorCode(code));
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// OffsetForLeaderEpoch of `epoch` for one partition: (answered epoch, end offset).
async fn epoch_end(conn: &Connection, topic: &str, partition: i32, epoch: i32) -> (i32, i64) {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    let request = kafka_protocol::messages::OffsetForLeaderEpochRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_leader_epoch(epoch)])]);
    let r = conn.send(&request).await.unwrap();
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    (p.leader_epoch, p.end_offset)
}

fn one_record() -> bytes::Bytes {
    let mut batch = BatchBuilder::new(Compression::None);
    batch.push(1, Some(b"k"), Some(b"v"), &[]);
    batch.build().unwrap()
}

/// Three nodes, each broker and controller, started; returns them and the voters.
async fn cluster() -> (Vec<Node>, String) {
    let mut listeners = Vec::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        nodes.push(Node {
            id,
            dir: tempfile::tempdir().unwrap(),
            controller: listener.local_addr().unwrap(),
            broker: None,
        });
        listeners.push(listener);
    }
    let voters = nodes
        .iter()
        .map(|n| format!("{}@{}", n.id, n.controller))
        .collect::<Vec<_>>()
        .join(",");
    for (node, listener) in nodes.iter_mut().zip(listeners) {
        start(node, &voters, listener).await;
    }
    (nodes, voters)
}

/// The client address of running node `id`.
fn bootstrap(nodes: &[Node], id: i32) -> String {
    nodes[(id - 1) as usize]
        .broker
        .as_ref()
        .unwrap()
        .bootstrap()
}

/// FindCoordinator of group `group` through `bootstrap`: (error, node id).
async fn find_coordinator(bootstrap: &str, group: &str) -> (ErrorCode, i32) {
    let conn = Connection::connect(bootstrap, "quorum-tests")
        .await
        .unwrap();
    let request = FindCoordinatorRequest::default().with_key(s(group));
    let r = conn.send_version(&request, 3).await.unwrap();
    (ErrorCode(r.error_code), r.node_id.0)
}

#[tokio::test]
async fn groups_are_coordinated_by_the_leader_of_their_offsets_partition() {
    let (mut nodes, _) = cluster().await;
    let (controller, _) = agreed_leader(&nodes, None).await;
    live_brokers_are(&nodes, &[1, 2, 3]).await;
    assert_eq!(
        create_through(&bootstrap(&nodes, controller), "orders", 1).await,
        ErrorCode::NONE
    );
    let placed = leaders(&bootstrap(&nodes, controller), "orders").await;
    leaders_are(&nodes, "orders", &placed).await;
    // Every broker names the same coordinator once the offsets topic exists (created
    // through the controller by whichever broker is asked first).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let coordinator = loop {
        let answers: Vec<(ErrorCode, i32)> = coordinators_named(&nodes, "orders-app").await;
        if answers.iter().all(|a| a.0.is_ok() && a.1 == answers[0].1) {
            break answers[0].1;
        }
        assert!(
            answers
                .iter()
                .all(|a| a.0.is_ok() || a.0 == ErrorCode::COORDINATOR_NOT_AVAILABLE),
            "{answers:?}"
        );
        assert!(tokio::time::Instant::now() < deadline, "{answers:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Commits and fetches go to the coordinator; elsewhere they are NOT_COORDINATOR.
    let commit = |offset: i64| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s("orders-app")))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(s(""))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(name("orders"))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)])])
    };
    for id in 1..=3 {
        let conn = Connection::connect(&bootstrap(&nodes, id), "quorum-tests")
            .await
            .unwrap();
        // The coordinator may still be opening the offsets partitions it leads.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let code = loop {
            let r = conn.send_version(&commit(42), 7).await.unwrap();
            let code = ErrorCode(r.topics[0].partitions[0].error_code);
            if code != ErrorCode::COORDINATOR_LOAD_IN_PROGRESS {
                break code;
            }
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let expected = if id == coordinator {
            ErrorCode::NONE
        } else {
            ErrorCode::NOT_COORDINATOR
        };
        assert_eq!(code, expected, "commit at node {id}");
        let fetch = OffsetFetchRequest::default()
            .with_group_id(GroupId(s("orders-app")))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(name("orders"))
                .with_partition_indexes(vec![0])]));
        let r = conn.send_version(&fetch, 5).await.unwrap();
        assert_eq!(ErrorCode(r.error_code), expected, "fetch at node {id}");
        if id == coordinator {
            assert_eq!(r.topics[0].partitions[0].committed_offset, 42);
        }
    }
    for node in &mut nodes {
        node.broker.take().unwrap().shutdown().await.unwrap();
    }
}

/// FindCoordinator of `group` asked of every running node.
async fn coordinators_named(nodes: &[Node], group: &str) -> Vec<(ErrorCode, i32)> {
    let mut answers = Vec::new();
    for broker in nodes.iter().filter_map(|n| n.broker.as_ref()) {
        answers.push(find_coordinator(&broker.bootstrap(), group).await);
    }
    answers
}

/// Observers (learners) of the quorum as `bootstrap` describes it.
async fn observers(bootstrap: &str) -> Vec<i32> {
    let conn = Connection::connect(bootstrap, "quorum-tests")
        .await
        .unwrap();
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(s("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let response = conn.send(&request).await.unwrap();
    response.topics[0].partitions[0]
        .observers
        .iter()
        .map(|o| o.replica_id.0)
        .collect()
}

#[tokio::test]
async fn a_broker_only_node_joins_the_cluster_and_takes_partitions() {
    let (mut nodes, voters) = cluster().await;
    let (controller, _) = agreed_leader(&nodes, None).await;
    live_brokers_are(&nodes, &[1, 2, 3]).await;
    // Node 4 is not a voter: it joins as a learner, follows the log and registers.
    let mut fourth = Node {
        id: 4,
        dir: tempfile::tempdir().unwrap(),
        controller: "127.0.0.1:0".parse().unwrap(),
        broker: None,
    };
    fourth.broker = Some(Broker::start(config(&fourth, &voters)).await.unwrap());
    nodes.push(fourth);
    live_brokers_are(&nodes, &[1, 2, 3, 4]).await;
    assert_eq!(observers(&bootstrap(&nodes, controller)).await, [4]);
    // New topics use it.
    let placed = create_spread(&nodes, controller, "wide", &[1, 2, 3, 4]).await;
    let on_fourth = placed.iter().position(|&l| l == 4).unwrap() as i32;
    let conn = Connection::connect(&bootstrap(&nodes, 4), "quorum-tests")
        .await
        .unwrap();
    assert_eq!(produce_once_led(&conn, "wide", on_fourth).await, 0);
    // A voter, asked, still says the learner cannot vote: the leader stays.
    assert_eq!(agreed_leader(&nodes, None).await.0, controller);
    for node in &mut nodes {
        node.broker.take().unwrap().shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn replicated_records_survive_their_leader() {
    let (mut nodes, voters) = cluster().await;
    let (controller, _) = agreed_leader(&nodes, None).await;
    live_brokers_are(&nodes, &[1, 2, 3]).await;
    assert_eq!(
        create_replicated(&bootstrap(&nodes, controller), "kept", 1, 3, &[]).await,
        ErrorCode::NONE
    );
    assert_eq!(
        create_replicated(
            &bootstrap(&nodes, controller),
            "strict",
            1,
            3,
            &[("min.insync.replicas", "3")]
        )
        .await,
        ErrorCode::NONE
    );
    assert_eq!(
        create_replicated(&bootstrap(&nodes, controller), "too-wide", 1, 4, &[]).await,
        ErrorCode::INVALID_REPLICATION_FACTOR
    );
    let leader = leaders(&bootstrap(&nodes, controller), "kept").await[0];
    leaders_are(&nodes, "kept", &[leader]).await;
    let strict_leader = leaders(&bootstrap(&nodes, controller), "strict").await[0];
    leaders_are(&nodes, "strict", &[strict_leader]).await;
    // acks=all: each answer means all three replicas have the records.
    let conn = Connection::connect(&bootstrap(&nodes, leader), "quorum-tests")
        .await
        .unwrap();
    for i in 0..10 {
        assert_eq!(produce_once_led(&conn, "kept", 0).await, i);
    }
    // A transaction aborted (its marker replicated before the answer) and one left open.
    let (aborted, open) = (9001, 9002);
    let batch = |pid| crate::transactions::batch(pid, 0, 0, &["t"], true);
    assert_eq!(produce(&conn, "kept", 0, batch(aborted)).await, (0, 10));
    let end = crate::transactions::end_on(&conn, "kept", aborted, 0, false).await;
    assert_eq!(end, 0);
    assert_eq!(produce(&conn, "kept", 0, batch(open)).await, (0, 12));
    let strict = Connection::connect(&bootstrap(&nodes, strict_leader), "quorum-tests")
        .await
        .unwrap();
    assert_eq!(produce_once_led(&strict, "strict", 0).await, 0);
    drop((conn, strict));

    // The leader of "kept" goes; another in-sync replica takes over with every record.
    let gone = (leader - 1) as usize;
    nodes[gone].broker.take().unwrap().shutdown().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let next = loop {
        let survivor = bootstrap(&nodes, (1..=3).find(|&id| id != leader).unwrap());
        let now = leaders(&survivor, "kept").await[0];
        if now >= 0 && now != leader {
            break now;
        }
        assert!(tokio::time::Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let conn = Connection::connect(&bootstrap(&nodes, next), "quorum-tests")
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while list_offset(&conn, "kept", 0, -1).await != (0, 13, -1) {
        assert!(tokio::time::Instant::now() < deadline, "records lost");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The new leader knows the transactions from the replicated log: the open one holds
    // the last stable offset back, the aborted one is reported to read_committed fetches.
    let seen = crate::transactions::fetch_from(&conn, "kept", 1).await;
    assert_eq!((seen.high_watermark, seen.last_stable_offset), (13, 12));
    assert_eq!(seen.aborted, Some(vec![(aborted, 10)]));
    // It takes acks=all writes with the two replicas left in the ISR.
    assert_eq!(produce_once_led(&conn, "kept", 0).await, 13);

    // "strict" wants three in-sync replicas; with two left, acks=all is refused.
    let strict_now = leaders(&bootstrap(&nodes, next), "strict").await[0];
    if strict_now >= 0 {
        let strict = Connection::connect(&bootstrap(&nodes, strict_now), "quorum-tests")
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (code, _) = produce(&strict, "strict", 0, one_record()).await;
            if ErrorCode(code) == ErrorCode::NOT_ENOUGH_REPLICAS {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                ErrorCode(code)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The old leader comes back as a follower, catches up and rejoins the ISR.
    let listener = std::net::TcpListener::bind(nodes[gone].controller).unwrap();
    start(&mut nodes[gone], &voters, listener).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while isr(&bootstrap(&nodes, next), "kept").await != [1, 2, 3] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never back in the ISR"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for node in &mut nodes {
        if let Some(broker) = node.broker.take() {
            broker.shutdown().await.unwrap();
        }
    }
}

/// The sorted ISR of partition 0 of `topic` as `bootstrap` answers Metadata.
async fn isr(bootstrap: &str, topic: &str) -> Vec<i32> {
    let topic = topic_metadata(bootstrap, topic).await;
    let mut isr: Vec<i32> = topic.partitions[0].isr_nodes.iter().map(|n| n.0).collect();
    isr.sort_unstable();
    isr
}

/// Metadata (v9) of `topic` as `bootstrap` answers.
async fn topic_metadata(
    bootstrap: &str,
    topic: &str,
) -> kafka_protocol::messages::metadata_response::MetadataResponseTopic {
    let conn = Connection::connect(bootstrap, "quorum-tests")
        .await
        .unwrap();
    let request = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(name(topic))),
    ]));
    let mut response = conn.send_version(&request, 9).await.unwrap();
    response.topics.remove(0)
}

#[tokio::test]
async fn three_controllers_elect_a_leader_and_survive_losing_it() {
    let (mut nodes, voters) = cluster().await;
    let (first, term) = agreed_leader(&nodes, None).await;
    let (_, _, described) = describe(&nodes[0].broker.as_ref().unwrap().bootstrap())
        .await
        .unwrap();
    assert_eq!(described, [1, 2, 3]);
    // Each registered through the leader and was unfenced, and all share one cluster id.
    live_brokers_are(&nodes, &[1, 2, 3]).await;
    let ids: Vec<String> = nodes
        .iter()
        .map(|n| n.broker.as_ref().unwrap().cluster_id())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");

    // Topics are created by the active controller only, and spread over the brokers.
    let follower = (1..=3).find(|&id| id != first).unwrap();
    assert_eq!(
        create_through(&bootstrap(&nodes, follower), "spread", 3).await,
        ErrorCode::NOT_CONTROLLER
    );
    let placed = create_spread(&nodes, first, "spread", &[1, 2, 3]).await;
    for (partition, &leader) in placed.iter().enumerate() {
        let partition = partition as i32;
        let other = (1..=3).find(|&id| id != leader).unwrap();
        let led_elsewhere = produce(
            &Connection::connect(&bootstrap(&nodes, other), "quorum-tests")
                .await
                .unwrap(),
            "spread",
            partition,
            one_record(),
        )
        .await;
        assert_eq!(
            ErrorCode(led_elsewhere.0),
            ErrorCode::NOT_LEADER_OR_FOLLOWER
        );
        let conn = Connection::connect(&bootstrap(&nodes, leader), "quorum-tests")
            .await
            .unwrap();
        assert_eq!(produce_once_led(&conn, "spread", partition).await, 0);
        assert_eq!(list_offset(&conn, "spread", partition, -1).await.1, 1);
    }

    // Producer ids come from blocks of the metadata log: every node hands out its own.
    let mut producer_ids = Vec::new();
    for id in 1..=3 {
        let conn = Connection::connect(&bootstrap(&nodes, id), "quorum-tests")
            .await
            .unwrap();
        let r = conn
            .send(
                &kafka_protocol::messages::InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60000),
            )
            .await
            .unwrap();
        assert_eq!(r.error_code, 0, "node {id}");
        producer_ids.push(r.producer_id.0);
    }
    producer_ids.sort_unstable();
    producer_ids.dedup();
    assert_eq!(producer_ids.len(), 3, "{producer_ids:?}");

    // Garbage on a controller port closes that connection and nothing else.
    for junk in [
        &[0xff_u8; 64][..],
        &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3][..],
        &[0, 0, 0, 3, 0xde, 0xad, 0xbe][..],
    ] {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(nodes[0].controller)
            .await
            .unwrap();
        stream.write_all(junk).await.unwrap();
    }
    assert_eq!(agreed_leader(&nodes, None).await, (first, term));

    // The leader stops: the other two elect one of themselves.
    let index = nodes.iter().position(|n| n.id == first).unwrap();
    nodes[index]
        .broker
        .take()
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    let (second, later) = agreed_leader(&nodes, Some(first)).await;
    assert!(later > term);
    // Metadata changes keep working through the new controller.
    assert_eq!(
        create_through(&bootstrap(&nodes, second), "after-failover", 2).await,
        ErrorCode::NONE
    );

    // The new leader fences the silent one; the partition only it had goes offline.
    let survivors: Vec<i32> = (1..=3).filter(|&id| id != first).collect();
    live_brokers_are(&nodes, &survivors).await;
    let offline: Vec<i32> = placed
        .iter()
        .map(|&l| if l == first { -1 } else { l })
        .collect();
    leaders_are(&nodes, "spread", &offline).await;

    // It comes back on the same address and follows the new leader.
    let listener = std::net::TcpListener::bind(nodes[index].controller).unwrap();
    start(&mut nodes[index], &voters, listener).await;
    let (leader, _) = agreed_leader(&nodes, None).await;
    assert_ne!(
        leader, first,
        "a restarted node does not disrupt a working leader"
    );
    assert_eq!(leader, second);
    // Registered again with a new epoch, and unfenced; it leads its partition again, with
    // the record it had.
    live_brokers_are(&nodes, &[1, 2, 3]).await;
    leaders_are(&nodes, "spread", &placed).await;
    let back = placed.iter().position(|&l| l == first).unwrap() as i32;
    let conn = Connection::connect(&bootstrap(&nodes, first), "quorum-tests")
        .await
        .unwrap();
    assert_eq!(list_offset(&conn, "spread", back, -1).await, (0, 1, -1));
    // It leads in a later epoch now (offline, then back: two leader changes); the record
    // of epoch 0 ends that epoch at 1, where the current one starts.
    assert_eq!(epoch_end(&conn, "spread", back, 0).await, (0, 1));
    assert_eq!(epoch_end(&conn, "spread", back, 2).await, (2, 1));
    for node in &mut nodes {
        node.broker.take().unwrap().shutdown().await.unwrap();
    }
}
