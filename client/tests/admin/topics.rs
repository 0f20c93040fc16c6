//! CreateTopics, DeleteTopics, CreatePartitions and Metadata through the admin client.

use std::time::{Duration, Instant};

use strom_client::admin::{Admin, NewTopic};
use strom_client::{ClientError, Cluster};
use strom_protocol::ErrorCode;

use crate::support::TestBroker;

/// The broker error code and context of `result`'s error.
fn broker_error<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (ErrorCode, String) {
    match result {
        Err(ClientError::Broker { code, context }) => (code, context),
        other => panic!("expected a broker error, got {other:?}"),
    }
}

#[tokio::test]
async fn create_describe_list_delete() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;

    let id = admin
        .create_topic(
            NewTopic::new("orders")
                .partitions(3)
                .replication_factor(1)
                .config("retention.ms", "3600000"),
        )
        .await
        .unwrap();
    assert!(!id.is_nil());

    let described = admin.describe_topics(&["orders"]).await.unwrap();
    assert_eq!(described.len(), 1);
    let orders = &described[0];
    assert_eq!(
        (
            orders.name.as_str(),
            orders.id,
            orders.internal,
            orders.error
        ),
        ("orders", id, false, ErrorCode::NONE)
    );
    let partitions: Vec<i32> = orders.partitions.iter().map(|p| p.partition).collect();
    assert_eq!(partitions, [0, 1, 2]);
    let node = admin.describe_cluster().await.unwrap().controller_id;
    assert!(orders
        .partitions
        .iter()
        .all(|p| p.leader == node && p.replicas == [node] && p.isr == [node]));

    assert_eq!(admin.list_topics(false).await.unwrap(), ["orders"]);
    admin.delete_topic("orders").await.unwrap();
    assert!(admin.list_topics(true).await.unwrap().is_empty());
    let gone = admin.describe_topics(&["orders"]).await.unwrap();
    assert_eq!(gone[0].error, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
    assert!(gone[0].partitions.is_empty());
}

#[tokio::test]
async fn default_partitions_come_from_the_broker() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    admin.create_topic(NewTopic::new("defaults")).await.unwrap();
    let described = admin.describe_topics(&["defaults"]).await.unwrap();
    assert_eq!(
        described[0].partitions.len(),
        1,
        "the broker's num.partitions"
    );
}

#[tokio::test]
async fn creating_an_existing_topic_fails_with_the_brokers_message() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    admin.create_topic(NewTopic::new("twice")).await.unwrap();
    let (code, context) = broker_error(admin.create_topic(NewTopic::new("twice")).await);
    assert_eq!(code, ErrorCode::TOPIC_ALREADY_EXISTS);
    assert!(
        context.contains("create topic twice") && context.contains("already exists"),
        "{context}"
    );
}

#[tokio::test]
async fn a_bad_config_is_invalid_config_naming_the_key() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    let started = Instant::now();
    let result = admin
        .create_topic(NewTopic::new("bad").config("retention.ms", "soon"))
        .await;
    let (code, context) = broker_error(result);
    assert_eq!(code, ErrorCode::INVALID_CONFIG);
    assert!(context.contains("retention.ms"), "{context}");
    assert!(started.elapsed() < Duration::from_secs(5), "not retried");
    assert!(admin.list_topics(false).await.unwrap().is_empty());
}

#[tokio::test]
async fn batch_results_follow_request_order_and_validate_only_creates_nothing() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    admin.create_topic(NewTopic::new("b")).await.unwrap();
    let topics = [
        NewTopic::new("a").partitions(2),
        NewTopic::new("b"),
        NewTopic::new("c").replication_factor(3),
    ];

    let checked = admin.create_topics(&topics, true).await.unwrap();
    let names: Vec<&str> = checked.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(checked[0].1.is_ok());
    assert_eq!(
        checked[1].1.as_ref().unwrap_err().code(),
        Some(ErrorCode::TOPIC_ALREADY_EXISTS)
    );
    assert_eq!(
        checked[2].1.as_ref().unwrap_err().code(),
        Some(ErrorCode::INVALID_REPLICATION_FACTOR)
    );
    assert_eq!(admin.list_topics(false).await.unwrap(), ["b"]);

    let created = admin.create_topics(&topics, false).await.unwrap();
    assert!(!created[0].1.as_ref().unwrap().is_nil());
    assert!(created[1].1.is_err() && created[2].1.is_err());
    assert_eq!(admin.list_topics(false).await.unwrap(), ["a", "b"]);
}

#[tokio::test]
async fn deleting_an_unknown_topic_fails_at_once() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    admin.create_topic(NewTopic::new("real")).await.unwrap();
    let started = Instant::now();
    let (code, context) = broker_error(admin.delete_topic("ghost").await);
    assert_eq!(code, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
    assert!(context.contains("ghost"), "{context}");
    assert!(started.elapsed() < Duration::from_secs(5), "not retried");

    let results = admin.delete_topics(&["ghost", "real"]).await.unwrap();
    assert_eq!(results[0].0, "ghost");
    assert!(results[0].1.is_err());
    assert_eq!(results[1].0, "real");
    assert!(results[1].1.is_ok());
}

#[tokio::test]
async fn create_partitions_grows_a_topic() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    admin
        .create_topic(NewTopic::new("grow").partitions(1))
        .await
        .unwrap();
    admin.create_partitions("grow", 4).await.unwrap();
    assert_eq!(
        admin.describe_topics(&["grow"]).await.unwrap()[0]
            .partitions
            .len(),
        4
    );

    let (code, context) = broker_error(admin.create_partitions("grow", 2).await);
    assert_eq!(code, ErrorCode::INVALID_PARTITIONS);
    assert!(context.contains("grow"), "{context}");
    let (code, _) = broker_error(admin.create_partitions("ghost", 2).await);
    assert_eq!(code, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
}

#[tokio::test]
async fn admin_shares_a_cluster() {
    let broker = TestBroker::start().await;
    let cluster = Cluster::connect(broker.config()).await.unwrap();
    let admin = Admin::new(cluster.clone());
    admin
        .clone()
        .create_topic(NewTopic::new("shared").partitions(2))
        .await
        .unwrap();
    admin.describe_topics(&["shared"]).await.unwrap();
    // The admin's metadata refreshes land in the shared cluster view.
    assert_eq!(cluster.metadata().topics["shared"].partitions.len(), 2);
    assert_eq!(admin.cluster().config().client_id, "admin-tests");
}
