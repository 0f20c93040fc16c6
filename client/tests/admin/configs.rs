//! DescribeConfigs and IncrementalAlterConfigs through the admin client.

use strom_client::admin::{AlterConfigOp, ConfigEntry, ConfigResource, ConfigSource, NewTopic};
use strom_protocol::ErrorCode;

use crate::support::TestBroker;

fn entry<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name} in {entries:?}"))
}

#[tokio::test]
async fn describe_and_alter_topic_configs_round_trip() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    admin
        .create_topic(NewTopic::new("configured").config("retention.ms", "1000"))
        .await
        .unwrap();
    let topic = ConfigResource::Topic("configured".into());

    let entries = admin.describe_configs(topic.clone()).await.unwrap();
    let retention = entry(&entries, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("1000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert!(!retention.read_only && !retention.sensitive);
    assert_eq!(
        entry(&entries, "cleanup.policy").source,
        ConfigSource::Default
    );

    admin
        .alter_configs(
            topic.clone(),
            &[
                AlterConfigOp::Set("retention.ms".into(), "2000".into()),
                AlterConfigOp::Append("cleanup.policy".into(), "compact".into()),
            ],
        )
        .await
        .unwrap();
    let entries = admin.describe_configs(topic.clone()).await.unwrap();
    assert_eq!(
        entry(&entries, "retention.ms").value.as_deref(),
        Some("2000")
    );
    let policy = entry(&entries, "cleanup.policy");
    assert_eq!(policy.source, ConfigSource::DynamicTopic);
    let mut policies: Vec<&str> = policy.value.as_deref().unwrap().split(',').collect();
    policies.sort_unstable();
    assert_eq!(policies, ["compact", "delete"]);

    admin
        .alter_configs(
            topic.clone(),
            &[
                AlterConfigOp::Delete("retention.ms".into()),
                AlterConfigOp::Subtract("cleanup.policy".into(), "delete".into()),
            ],
        )
        .await
        .unwrap();
    let entries = admin.describe_configs(topic).await.unwrap();
    let retention = entry(&entries, "retention.ms");
    assert_ne!(retention.source, ConfigSource::DynamicTopic);
    assert_ne!(retention.value.as_deref(), Some("2000"));
    assert_eq!(
        entry(&entries, "cleanup.policy").value.as_deref(),
        Some("compact")
    );
}

#[tokio::test]
async fn altering_to_a_bad_value_is_invalid_config_naming_the_key() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    admin.create_topic(NewTopic::new("strict")).await.unwrap();
    let topic = ConfigResource::Topic("strict".into());
    let err = admin
        .alter_configs(
            topic.clone(),
            &[AlterConfigOp::Set("segment.bytes".into(), "huge".into())],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::INVALID_CONFIG));
    assert!(err.to_string().contains("segment.bytes"), "{err}");
    let err = admin
        .alter_configs(
            topic.clone(),
            &[AlterConfigOp::Append("retention.ms".into(), "1".into())],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::INVALID_CONFIG));
    assert!(err.to_string().contains("retention.ms"), "{err}");
    // Nothing was changed.
    let entries = admin.describe_configs(topic).await.unwrap();
    assert_ne!(
        entry(&entries, "segment.bytes").source,
        ConfigSource::DynamicTopic
    );
}

#[tokio::test]
async fn configs_of_an_unknown_topic() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    let err = admin
        .describe_configs(ConfigResource::Topic("ghost".into()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
    assert!(err.to_string().contains("ghost"), "{err}");
    let err = admin
        .alter_configs(
            ConfigResource::Topic("ghost".into()),
            &[AlterConfigOp::Set("retention.ms".into(), "1".into())],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
}

#[tokio::test]
async fn broker_configs_come_from_that_broker() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;
    let node = admin.describe_cluster().await.unwrap().controller_id;
    let entries = admin
        .describe_configs(ConfigResource::Broker(node))
        .await
        .unwrap();
    let partitions = entry(&entries, "num.partitions");
    assert_eq!(partitions.value.as_deref(), Some("1"));
    assert_eq!(partitions.source, ConfigSource::StaticBroker);
    assert!(partitions.read_only);
    assert_eq!(entry(&entries, "node.id").value, Some(node.to_string()));
}
