//! DescribeCluster, and retries when the cluster is gone.

use std::time::{Duration, Instant};

use strom_client::ClientError;

use crate::support::TestBroker;

#[tokio::test]
async fn describe_cluster_names_the_broker() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    let cluster = admin.describe_cluster().await.unwrap();
    assert_eq!(
        cluster.cluster_id.as_deref(),
        Some(broker.broker.cluster_id().as_str())
    );
    assert_eq!(cluster.brokers.len(), 1);
    let only = &cluster.brokers[0];
    assert_eq!(only.node_id, cluster.controller_id);
    assert_eq!(only.port, i32::from(broker.broker.local_addr().port()));
}

#[tokio::test]
async fn calls_retry_until_the_api_timeout_when_no_broker_answers() {
    let broker = TestBroker::start().await;
    let admin = broker
        .admin()
        .await
        .with_api_timeout(Duration::from_millis(800));
    let TestBroker { broker, dir: _dir } = broker;
    broker.shutdown().await.unwrap();

    let started = Instant::now();
    let err = admin.list_topics(false).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("list topics"), "{err}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}
