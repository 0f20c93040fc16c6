//! Configs: DescribeConfigs (key 32) and IncrementalAlterConfigs (key 44).
//!
//! Topic configs can be read and changed through any broker; a broker's own configs only
//! through that broker, so those requests go to it.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use strom_protocol::connection::Connection;

use super::{check, str_bytes, Admin};
use crate::error::ClientError;

/// Kafka's `ConfigResource.Type` code for topics.
const RESOURCE_TOPIC: i8 = 2;
/// Kafka's `ConfigResource.Type` code for brokers.
const RESOURCE_BROKER: i8 = 4;

/// Something that has configs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConfigResource {
    /// A topic, by name.
    Topic(String),
    /// A broker, by node id.
    Broker(i32),
}

impl ConfigResource {
    fn kind(&self) -> i8 {
        match self {
            ConfigResource::Topic(_) => RESOURCE_TOPIC,
            ConfigResource::Broker(_) => RESOURCE_BROKER,
        }
    }

    fn name(&self) -> StrBytes {
        match self {
            ConfigResource::Topic(name) => str_bytes(name),
            ConfigResource::Broker(id) => StrBytes::from_string(id.to_string()),
        }
    }
}

impl std::fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigResource::Topic(name) => write!(f, "topic {name}"),
            ConfigResource::Broker(id) => write!(f, "broker {id}"),
        }
    }
}

/// Where a config's value comes from (Kafka's `ConfigEntry.ConfigSource`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigSource {
    /// Code 0, or a code this client does not know.
    Unknown,
    /// A topic-level override (`DYNAMIC_TOPIC_CONFIG`, 1).
    DynamicTopic,
    /// Set for this broker at runtime (`DYNAMIC_BROKER_CONFIG`, 2).
    DynamicBroker,
    /// Set for all brokers at runtime (`DYNAMIC_DEFAULT_BROKER_CONFIG`, 3).
    DynamicDefaultBroker,
    /// From the broker's configuration file (`STATIC_BROKER_CONFIG`, 4).
    StaticBroker,
    /// Kafka's default (`DEFAULT_CONFIG`, 5).
    Default,
    /// A broker logger level set at runtime (`DYNAMIC_BROKER_LOGGER_CONFIG`, 6).
    DynamicBrokerLogger,
    /// A client metrics subscription (`CLIENT_METRICS_CONFIG`, 7).
    ClientMetrics,
    /// A group-level override (`GROUP_CONFIG`, 8).
    Group,
}

impl ConfigSource {
    /// The source for a wire code.
    pub fn from_code(code: i8) -> ConfigSource {
        match code {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            7 => ConfigSource::ClientMetrics,
            8 => ConfigSource::Group,
            _ => ConfigSource::Unknown,
        }
    }

    /// The wire code (0 for [`ConfigSource::Unknown`]).
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::Unknown => 0,
            ConfigSource::DynamicTopic => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefaultBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
            ConfigSource::DynamicBrokerLogger => 6,
            ConfigSource::ClientMetrics => 7,
            ConfigSource::Group => 8,
        }
    }
}

/// One config of a resource, as described by the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The key, e.g. `retention.ms`.
    pub name: String,
    /// The value in effect; `None` when it is sensitive or unset.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be changed at runtime.
    pub read_only: bool,
    /// Whether it is a secret (its value is then withheld).
    pub sensitive: bool,
}

/// One change of [`Admin::alter_configs`] (IncrementalAlterConfigs operations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterConfigOp {
    /// Sets `key` to `value` (`SET`, 0).
    Set(String, String),
    /// Removes the override of `key`, back to its default (`DELETE`, 1).
    Delete(String),
    /// Adds `value` to the list config `key` (`APPEND`, 2).
    Append(String, String),
    /// Removes `value` from the list config `key` (`SUBTRACT`, 3).
    Subtract(String, String),
}

impl AlterConfigOp {
    fn to_request(&self) -> AlterableConfig {
        let (key, op, value) = match self {
            AlterConfigOp::Set(k, v) => (k, 0, Some(v)),
            AlterConfigOp::Delete(k) => (k, 1, None),
            AlterConfigOp::Append(k, v) => (k, 2, Some(v)),
            AlterConfigOp::Subtract(k, v) => (k, 3, Some(v)),
        };
        AlterableConfig::default()
            .with_name(str_bytes(key))
            .with_config_operation(op)
            .with_value(value.map(|v| str_bytes(v)))
    }
}

impl Admin {
    /// Every config of `resource` with its value in effect and where that comes from.
    ///
    /// # Errors
    /// `UNKNOWN_TOPIC_OR_PARTITION` for a topic that does not exist, or the request's
    /// error; as [`ClientError::Broker`] with the broker's message.
    pub async fn describe_configs(
        &self,
        resource: ConfigResource,
    ) -> Result<Vec<ConfigEntry>, ClientError> {
        self.with_retries(format!("describe configs of {resource}"), &[], || async {
            let conn = self.config_broker(&resource).await?;
            let request = DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(resource.kind())
                    .with_resource_name(resource.name())
                    .with_configuration_keys(None),
            ]);
            let response = conn.send(&request).await?;
            let result = response
                .results
                .into_iter()
                .find(|r| r.resource_type == resource.kind() && r.resource_name == resource.name())
                .ok_or_else(|| missing(&resource))?;
            check(result.error_code, result.error_message.as_ref(), || {
                format!("describe configs of {resource}")
            })?;
            Ok(result
                .configs
                .into_iter()
                .map(|c| ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.map(|v| v.to_string()),
                    source: ConfigSource::from_code(c.config_source),
                    read_only: c.read_only,
                    sensitive: c.is_sensitive,
                })
                .collect())
        })
        .await
    }

    /// Applies `ops` to the configs of `resource` in one step (IncrementalAlterConfigs):
    /// keys not named keep their values.
    ///
    /// # Errors
    /// `INVALID_CONFIG` naming the key for a bad key or value, `UNKNOWN_TOPIC_OR_PARTITION`,
    /// or the request's error; as [`ClientError::Broker`] with the broker's message.
    pub async fn alter_configs(
        &self,
        resource: ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<(), ClientError> {
        self.with_retries(format!("alter configs of {resource}"), &[], || async {
            let conn = self.config_broker(&resource).await?;
            let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(resource.kind())
                    .with_resource_name(resource.name())
                    .with_configs(ops.iter().map(AlterConfigOp::to_request).collect()),
            ]);
            let response = conn.send(&request).await?;
            let result = response
                .responses
                .into_iter()
                .find(|r| r.resource_type == resource.kind() && r.resource_name == resource.name())
                .ok_or_else(|| missing(&resource))?;
            check(result.error_code, result.error_message.as_ref(), || {
                format!("alter configs of {resource}")
            })
        })
        .await
    }

    /// The broker to ask about `resource`: the broker itself, or the controller for a
    /// topic (it has every topic's configs and takes their changes).
    async fn config_broker(
        &self,
        resource: &ConfigResource,
    ) -> Result<Arc<Connection>, ClientError> {
        match resource {
            ConfigResource::Topic(_) => self.cluster.controller().await,
            ConfigResource::Broker(id) => self.cluster.broker(*id).await,
        }
    }
}

/// The error for a resource the broker's answer left out.
fn missing(resource: &ConfigResource) -> ClientError {
    ClientError::Broker {
        code: strom_protocol::ErrorCode::UNKNOWN_SERVER_ERROR,
        context: format!("configs of {resource}: the broker's answer does not mention it"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_codes_round_trip() {
        for code in 0..=8 {
            assert_eq!(ConfigSource::from_code(code).code(), code);
        }
        assert_eq!(ConfigSource::from_code(42), ConfigSource::Unknown);
    }

    #[test]
    fn ops_map_to_kafka_operations() {
        let set = AlterConfigOp::Set("retention.ms".into(), "1000".into()).to_request();
        assert_eq!(
            (set.config_operation, set.value.as_deref()),
            (0, Some("1000"))
        );
        let delete = AlterConfigOp::Delete("retention.ms".into()).to_request();
        assert_eq!((delete.config_operation, delete.value), (1, None));
        let append = AlterConfigOp::Append("cleanup.policy".into(), "compact".into()).to_request();
        assert_eq!(append.config_operation, 2);
        let subtract =
            AlterConfigOp::Subtract("cleanup.policy".into(), "delete".into()).to_request();
        assert_eq!(subtract.config_operation, 3);
    }
}
