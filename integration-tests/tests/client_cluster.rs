//! The client's cluster view against two broker implementations: Strom's broker (in
//! process) and librdkafka's mock cluster (three brokers, from the `rdkafka` crate's
//! bundled build), so the client is not tested only against ourselves.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use rdkafka::mocking::MockCluster;
use strom_client::{ClientConfig, ClientError, Cluster};

fn config(bootstrap: &str) -> ClientConfig {
    ClientConfig::new().bootstrap(bootstrap)
}

async fn exercise(cluster: &Cluster, topic: &str, partitions: i32, brokers: usize) {
    let all = cluster.refresh_metadata(None).await.unwrap();
    assert_eq!(all.brokers.len(), brokers);
    let t = cluster.topic(topic).await.unwrap();
    assert_eq!(t.partitions.len(), partitions as usize);
    for p in 0..partitions {
        let (leader, conn) = cluster.leader(topic, p).await.unwrap();
        assert!(all.brokers.contains_key(&leader));
        // One connection per broker: asking again gives the same one.
        let again = cluster.broker(leader).await.unwrap();
        assert!(Arc::ptr_eq(&conn, &again));
    }
    let missing = cluster.topic("no-such-topic").await.unwrap_err();
    assert!(
        matches!(missing, ClientError::UnknownTopicOrPartition { .. }),
        "{missing}"
    );
    let unknown = cluster.leader(topic, partitions + 5).await.unwrap_err();
    assert!(
        matches!(unknown, ClientError::UnknownTopicOrPartition { .. }),
        "{unknown}"
    );
    cluster.controller().await.unwrap();
}

#[tokio::test]
async fn cluster_view_of_the_strom_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = strom_broker::Broker::start(strom_broker::BrokerConfig::new(dir.path()))
        .await
        .unwrap();
    let cluster = Cluster::connect(config(&broker.bootstrap())).await.unwrap();
    assert_eq!(
        cluster.metadata().cluster_id.as_deref(),
        Some(broker.cluster_id().as_str())
    );
    let admin = strom_protocol::connection::Connection::connect(&broker.bootstrap(), "setup")
        .await
        .unwrap();
    use strom_protocol::kafka_protocol::messages::{
        create_topics_request::CreatableTopic, CreateTopicsRequest, TopicName,
    };
    use strom_protocol::kafka_protocol::protocol::StrBytes;
    let created = admin
        .send(
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("views")))
                .with_num_partitions(3)
                .with_replication_factor(1)]),
        )
        .await
        .unwrap();
    assert_eq!(created.topics[0].error_code, 0);
    exercise(&cluster, "views", 3, 1).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn cluster_view_of_librdkafkas_mock_cluster() {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic("views", 6, 3).unwrap();
    let cluster = Cluster::connect(config(&mock.bootstrap_servers()))
        .await
        .unwrap();
    exercise(&cluster, "views", 6, 3).await;
}

#[tokio::test]
async fn unreachable_bootstrap_is_a_clear_error() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Cluster::connect(config(&format!("127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NoBrokers { .. }), "{err}");
    let err = Cluster::connect(ClientConfig::new()).await.unwrap_err();
    assert!(err.to_string().contains("bootstrap.servers"), "{err}");
}
