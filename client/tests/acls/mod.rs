//! Multi-tenancy with ACLs: two users, each with prefixed ACLs on its own topics and
//! groups, cannot read, write, describe or join each other's; a super user can do
//! everything. The broker checks every request; the client surfaces Kafka's
//! authorisation errors.

use std::time::{Duration, Instant};

use strom_client::admin::{
    AclBinding, AclFilter, Admin, NewTopic, Operation, PatternType, Permission, ResourceType,
};
use strom_client::consumer::Consumer;
use strom_client::producer::{Producer, Record};
use strom_client::{ClientConfig, ClientError};
use strom_protocol::ErrorCode;

use crate::support::TestBroker;

const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required
    username="admin" password="admin-secret"
    user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";"#;

async fn secured_broker() -> TestBroker {
    TestBroker::start_with(|c| {
        c.set("listeners", "SASL_PLAINTEXT://127.0.0.1:0").unwrap();
        c.set("sasl.jaas.config", JAAS).unwrap();
        c.set(
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        )
        .unwrap();
        c.set("super.users", "User:admin").unwrap();
        c.num_partitions = 1;
        c.offsets_topic_num_partitions = 1;
        c.group_initial_rebalance_delay = Duration::ZERO;
    })
    .await
}

fn as_user(b: &TestBroker, user: &str) -> ClientConfig {
    let mut config = b.config();
    config
        .set("security.protocol", "SASL_PLAINTEXT")
        .unwrap()
        .set("sasl.mechanism", "SCRAM-SHA-256")
        .unwrap()
        .set("sasl.username", user)
        .unwrap()
        .set("sasl.password", &format!("{user}-secret"))
        .unwrap()
        .set("client.id", user)
        .unwrap()
        .set("max.block.ms", "3000")
        .unwrap()
        .set("delivery.timeout.ms", "3000")
        .unwrap()
        .set("request.timeout.ms", "2000")
        .unwrap();
    config
}

/// ALLOW ALL on topics and groups whose names start with `user.`.
fn tenant(user: &str) -> Vec<AclBinding> {
    [ResourceType::Topic, ResourceType::Group]
        .into_iter()
        .map(|resource_type| AclBinding {
            resource_type,
            resource_name: format!("{user}."),
            pattern_type: PatternType::Prefixed,
            principal: format!("User:{user}"),
            host: "*".into(),
            operation: Operation::All,
            permission: Permission::Allow,
        })
        .collect()
}

fn is_code(e: &ClientError, code: ErrorCode) -> bool {
    e.to_string().contains(&code.to_string())
        || matches!(e, ClientError::Broker { code: c, .. } if *c == code)
}

async fn write(config: &ClientConfig, topic: &str, value: &str) -> Result<(), ClientError> {
    let producer = Producer::new(config.clone()).await?;
    let sent = async {
        producer
            .send(Record::new(topic).value(value.to_owned()))
            .await?
            .await
    }
    .await;
    producer.close().await;
    sent.map(|_| ())
}

/// Reads `topic` as member of `group` until a record arrives or an error does.
async fn read(config: &ClientConfig, topic: &str, group: &str) -> Result<Vec<u8>, ClientError> {
    let mut config = config.clone();
    config
        .set("group.id", group)
        .unwrap()
        .set("auto.offset.reset", "earliest")
        .unwrap();
    let consumer = Consumer::new(config).await?;
    consumer.subscribe(&[topic])?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let outcome = loop {
        if Instant::now() > deadline {
            break Err(ClientError::Timeout {
                what: format!("reading {topic}"),
                after_ms: 15_000,
            });
        }
        match consumer.poll(Duration::from_millis(200)).await {
            Ok(records) if records.is_empty() => continue,
            Ok(records) => break Ok(records[0].value.clone().unwrap_or_default().to_vec()),
            Err(e) => break Err(e),
        }
    };
    if outcome.is_ok() {
        consumer.commit().await?;
    }
    consumer.close();
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_keep_to_their_own_topics_and_groups() {
    let b = secured_broker().await;
    let admin = Admin::connect(as_user(&b, "admin")).await.unwrap();
    let bindings: Vec<AclBinding> = tenant("alice").into_iter().chain(tenant("bob")).collect();
    admin.create_acls(&bindings).await.unwrap();
    let listed = admin.describe_acls(&AclFilter::any()).await.unwrap();
    assert_eq!(listed.len(), 4, "{listed:?}");

    let alice = as_user(&b, "alice");
    let bob = as_user(&b, "bob");
    // Each creates, writes and reads (in a group) its own.
    for (config, user) in [(&alice, "alice"), (&bob, "bob")] {
        let topic = format!("{user}.orders");
        Admin::connect(config.clone())
            .await
            .unwrap()
            .create_topic(NewTopic::new(&topic).partitions(1))
            .await
            .unwrap();
        write(config, &topic, &format!("{user}'s order"))
            .await
            .unwrap();
        let value = read(config, &topic, &format!("{user}.readers"))
            .await
            .unwrap();
        assert_eq!(value, format!("{user}'s order").into_bytes());
    }

    // Bob cannot write, read or describe Alice's topic, nor join her group.
    let e = write(&bob, "alice.orders", "intruder").await.unwrap_err();
    assert!(is_code(&e, ErrorCode::TOPIC_AUTHORIZATION_FAILED), "{e}");
    let e = read(&bob, "alice.orders", "bob.readers").await.unwrap_err();
    assert!(is_code(&e, ErrorCode::TOPIC_AUTHORIZATION_FAILED), "{e}");
    let e = read(&bob, "bob.orders", "alice.readers").await.unwrap_err();
    assert!(is_code(&e, ErrorCode::GROUP_AUTHORIZATION_FAILED), "{e}");
    let bob_admin = Admin::connect(bob.clone()).await.unwrap();
    let topics = bob_admin.list_topics(false).await.unwrap();
    assert_eq!(topics, ["bob.orders"]);
    let described = bob_admin.describe_topics(&["alice.orders"]).await.unwrap();
    assert_eq!(described[0].error, ErrorCode::TOPIC_AUTHORIZATION_FAILED);
    assert!(described[0].partitions.is_empty());
    let e = bob_admin.group_offsets("alice.readers").await.unwrap_err();
    assert!(is_code(&e, ErrorCode::GROUP_AUTHORIZATION_FAILED), "{e}");
    let e = bob_admin
        .create_topic(NewTopic::new("alice.more").partitions(1))
        .await
        .unwrap_err();
    assert!(is_code(&e, ErrorCode::TOPIC_AUTHORIZATION_FAILED), "{e}");
    // Nor change ACLs.
    let e = bob_admin.create_acls(&tenant("mallory")).await.unwrap_err();
    assert!(is_code(&e, ErrorCode::CLUSTER_AUTHORIZATION_FAILED), "{e}");

    // A DENY wins over Alice's prefixed ALLOW, for that one topic only.
    admin
        .create_acls(&[AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "alice.secret".into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Write,
            permission: Permission::Deny,
        }])
        .await
        .unwrap();
    let e = write(&alice, "alice.secret", "shh").await.unwrap_err();
    assert!(is_code(&e, ErrorCode::TOPIC_AUTHORIZATION_FAILED), "{e}");
    write(&alice, "alice.orders", "second order").await.unwrap();

    // The super user sees and reads everything.
    let all = admin.list_topics(false).await.unwrap();
    assert!(
        all.contains(&"alice.orders".to_owned()) && all.contains(&"bob.orders".to_owned()),
        "{all:?}"
    );
    let admin_config = as_user(&b, "admin");
    let value = read(&admin_config, "alice.orders", "audit").await.unwrap();
    assert_eq!(value, b"alice's order");
    let offsets = admin.group_offsets("alice.readers").await.unwrap();
    assert_eq!(offsets.len(), 1);

    // Taking Alice's ACLs away takes her access away.
    let removed = admin
        .delete_acls(&[AclFilter {
            principal: Some("User:alice".into()),
            ..AclFilter::any()
        }])
        .await
        .unwrap();
    assert_eq!(removed.len(), 3);
    // An idempotent producer needs WRITE on some topic to get a producer id.
    let e = write(&alice, "alice.orders", "again").await.unwrap_err();
    assert!(is_code(&e, ErrorCode::CLUSTER_AUTHORIZATION_FAILED), "{e}");
    let mut plain = alice.clone();
    plain.set("enable.idempotence", "false").unwrap();
    let e = write(&plain, "alice.orders", "again").await.unwrap_err();
    assert!(is_code(&e, ErrorCode::TOPIC_AUTHORIZATION_FAILED), "{e}");
}
