//! Client quotas: DescribeClientQuotas and AlterClientQuotas (Kafka's
//! `kafka-configs --entity-type users|clients`). A quota belongs to an entity: a user, a
//! client id, or both, each named or the default; its keys are `producer_byte_rate`,
//! `consumer_byte_rate` (bytes per second) and `request_percentage`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let broker = strom_broker::Broker::start(strom_broker::BrokerConfig::new(dir.path())).await?;
//! use strom_client::admin::{Admin, QuotaEntity};
//! use strom_client::ClientConfig;
//!
//! let admin = Admin::connect(ClientConfig::new().bootstrap(&broker.bootstrap())).await?;
//! let alice = QuotaEntity::user("alice");
//! admin.alter_client_quotas(&alice, &[("producer_byte_rate", 1_048_576.0)], &[]).await?;
//! let quotas = admin.describe_client_quotas(Some(&alice)).await?;
//! assert_eq!(quotas[0].1["producer_byte_rate"], 1_048_576.0);
//! admin.alter_client_quotas(&alice, &[], &["producer_byte_rate"]).await?;
//! assert!(admin.describe_client_quotas(None).await?.is_empty());
//! # broker.shutdown().await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

use super::{check, Admin};
use crate::ClientError;

/// Whom a quota is for: a user, a client id, or both; `Some(name)` names one, `None`
/// is the default (every user, or client id, without a quota of its own).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct QuotaEntity {
    /// The user part, if any.
    pub user: Option<Option<String>>,
    /// The client id part, if any.
    pub client_id: Option<Option<String>>,
}

impl QuotaEntity {
    /// The user `name`.
    pub fn user(name: &str) -> QuotaEntity {
        QuotaEntity {
            user: Some(Some(name.to_owned())),
            client_id: None,
        }
    }

    /// Every user without a quota of its own.
    pub fn default_user() -> QuotaEntity {
        QuotaEntity {
            user: Some(None),
            client_id: None,
        }
    }

    /// The client id `id`.
    pub fn client_id(id: &str) -> QuotaEntity {
        QuotaEntity {
            user: None,
            client_id: Some(Some(id.to_owned())),
        }
    }

    /// Every client id without a quota of its own.
    pub fn default_client_id() -> QuotaEntity {
        QuotaEntity {
            user: None,
            client_id: Some(None),
        }
    }

    /// This entity narrowed to client id `id` (`None`: the default client id).
    pub fn and_client_id(mut self, id: Option<&str>) -> QuotaEntity {
        self.client_id = Some(id.map(str::to_owned));
        self
    }

    fn parts(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut parts = Vec::new();
        if let Some(user) = &self.user {
            parts.push(("user", user.as_deref()));
        }
        if let Some(id) = &self.client_id {
            parts.push(("client-id", id.as_deref()));
        }
        parts
    }
}

impl fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .parts()
            .into_iter()
            .map(|(kind, name)| format!("{kind}={}", name.unwrap_or("<default>")))
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Admin {
    /// Sets the quotas `set` (key, value) and removes the keys `remove` of `entity`.
    ///
    /// # Errors
    /// The broker's refusal as [`ClientError::Broker`] naming the entity: an unknown key
    /// or entity type, a value that is not positive (`INVALID_REQUEST`),
    /// `CLUSTER_AUTHORIZATION_FAILED`.
    pub async fn alter_client_quotas(
        &self,
        entity: &QuotaEntity,
        set: &[(&str, f64)],
        remove: &[&str],
    ) -> Result<(), ClientError> {
        let ops = set
            .iter()
            .map(|(key, value)| {
                OpData::default()
                    .with_key(StrBytes::from_string((*key).to_owned()))
                    .with_value(*value)
            })
            .chain(remove.iter().map(|key| {
                OpData::default()
                    .with_key(StrBytes::from_string((*key).to_owned()))
                    .with_remove(true)
            }))
            .collect();
        let entry = EntryData::default()
            .with_entity(
                entity
                    .parts()
                    .into_iter()
                    .map(|(kind, name)| {
                        EntityData::default()
                            .with_entity_type(StrBytes::from_static_str(kind))
                            .with_entity_name(name.map(|n| StrBytes::from_string(n.to_owned())))
                    })
                    .collect(),
            )
            .with_ops(ops);
        let request = AlterClientQuotasRequest::default().with_entries(vec![entry]);
        self.with_retries("alter client quotas", &[], || async {
            let conn = self.cluster.controller().await?;
            let response = conn.send(&request).await?;
            for entry in &response.entries {
                check(entry.error_code, entry.error_message.as_ref(), || {
                    format!("quotas of {entity}")
                })?;
            }
            Ok(())
        })
        .await
    }

    /// The quotas of `entity` exactly (every entity with quotas when `None`), each entity
    /// with its keys and values.
    ///
    /// # Errors
    /// The broker's refusal (`CLUSTER_AUTHORIZATION_FAILED`, ...).
    pub async fn describe_client_quotas(
        &self,
        entity: Option<&QuotaEntity>,
    ) -> Result<Vec<(QuotaEntity, BTreeMap<String, f64>)>, ClientError> {
        let components = entity.map_or_else(Vec::new, |entity| {
            entity
                .parts()
                .into_iter()
                .map(|(kind, name)| {
                    ComponentData::default()
                        .with_entity_type(StrBytes::from_static_str(kind))
                        .with_match_type(if name.is_some() { 0 } else { 1 })
                        .with_match(name.map(|n| StrBytes::from_string(n.to_owned())))
                })
                .collect()
        });
        let request = DescribeClientQuotasRequest::default()
            .with_components(components)
            .with_strict(entity.is_some());
        self.with_retries("describe client quotas", &[], || async {
            let conn = self.cluster.any_broker().await?;
            let response = conn.send(&request).await?;
            check(response.error_code, response.error_message.as_ref(), || {
                "describe client quotas".to_owned()
            })?;
            let mut described = Vec::new();
            for entry in response.entries.iter().flatten() {
                let mut entity = QuotaEntity::default();
                for part in &entry.entity {
                    let name = part.entity_name.as_ref().map(ToString::to_string);
                    match part.entity_type.as_str() {
                        "user" => entity.user = Some(name),
                        "client-id" => entity.client_id = Some(name),
                        _ => {}
                    }
                }
                let values = entry
                    .values
                    .iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect();
                described.push((entity, values));
            }
            described.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(described)
        })
        .await
    }
}
