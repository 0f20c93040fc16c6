//! DescribeClientQuotas (key 48) and AlterClientQuotas (key 49), versions 0-1: quotas per
//! user and client id (`producer_byte_rate`, `consumer_byte_rate`, `request_percentage`),
//! kept in the metadata log; changes go through the active controller. Describing needs
//! DESCRIBE_CONFIGS on the cluster, altering ALTER_CONFIGS.

use kafka_protocol::messages::alter_client_quotas_response as alter_response;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use super::{str_bytes, Client};
use crate::controller::records::MetadataRecord;
use crate::quota::{QuotaEntity, QuotaValue, CLIENT_ID, KEYS, USER};
use crate::state::BrokerState;

/// DescribeClientQuotas match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

pub(crate) async fn describe(
    state: &BrokerState,
    client: &Client,
    request: DescribeClientQuotasRequest,
    _version: i16,
) -> DescribeClientQuotasResponse {
    let failed = |code: ErrorCode, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if !state.allowed_on_cluster(client, Operation::DescribeConfigs) {
        return failed(
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
            "not authorized to describe quotas".to_owned(),
        );
    }
    for c in &request.components {
        if !matches!(c.entity_type.as_str(), USER | CLIENT_ID) {
            return failed(
                ErrorCode::INVALID_REQUEST,
                format!("unknown entity type {}", c.entity_type.as_str()),
            );
        }
        if !matches!(c.match_type, MATCH_EXACT | MATCH_DEFAULT | MATCH_ANY) {
            return failed(
                ErrorCode::INVALID_REQUEST,
                format!("unknown match type {}", c.match_type),
            );
        }
    }
    let image = state.quorum.image();
    let entries = image
        .quotas
        .iter()
        .filter(|(entity, _)| {
            let components_match = request.components.iter().all(|c| {
                let name = entity
                    .iter()
                    .find(|(kind, _)| kind == c.entity_type.as_str())
                    .map(|(_, name)| name.as_deref());
                match (c.match_type, name) {
                    (_, None) => false,
                    (MATCH_EXACT, Some(name)) => name == c._match.as_deref(),
                    (MATCH_DEFAULT, Some(name)) => name.is_none(),
                    _ => true,
                }
            });
            let no_others = !request.strict
                || entity.iter().all(|(kind, _)| {
                    request
                        .components
                        .iter()
                        .any(|c| c.entity_type.as_str() == kind)
                });
            components_match && no_others
        })
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(
                    entity
                        .iter()
                        .map(|(kind, name)| {
                            EntityData::default()
                                .with_entity_type(str_bytes(kind.clone()))
                                .with_entity_name(name.clone().map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(key, value)| {
                            ValueData::default()
                                .with_key(str_bytes(key.clone()))
                                .with_value(value.0)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

pub(crate) async fn alter(
    state: &BrokerState,
    client: &Client,
    request: AlterClientQuotasRequest,
    _version: i16,
) -> AlterClientQuotasResponse {
    let allowed = state.allowed_on_cluster(client, Operation::AlterConfigs);
    let mut records = Vec::new();
    let mut checked = Vec::new();
    for entry in &request.entries {
        let entity: Vec<(String, Option<String>)> = entry
            .entity
            .iter()
            .map(|e| {
                (
                    e.entity_type.to_string(),
                    e.entity_name.as_ref().map(ToString::to_string),
                )
            })
            .collect();
        let outcome = if allowed {
            entry_records(&entity, entry)
        } else {
            Err((
                ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
                "not authorized to alter quotas".to_owned(),
            ))
        };
        if let Ok(more) = &outcome {
            records.extend(more.iter().cloned());
        }
        checked.push((entity, outcome.map(|_| ())));
    }
    // Nothing changes unless every entry is good (as Kafka validates before writing).
    let all_good = checked.iter().all(|(_, outcome)| outcome.is_ok());
    let committed = if request.validate_only || !all_good {
        Ok(())
    } else {
        super::commit(state, records).await
    };
    let entries = checked
        .into_iter()
        .map(|(entity, outcome)| {
            let answer = alter_response::EntryData::default().with_entity(
                entity
                    .into_iter()
                    .map(|(kind, name)| {
                        alter_response::EntityData::default()
                            .with_entity_type(str_bytes(kind))
                            .with_entity_name(name.map(str_bytes))
                    })
                    .collect(),
            );
            let outcome = match outcome {
                Ok(()) if !all_good => Err((
                    ErrorCode::INVALID_REQUEST,
                    "not applied: another entry of the request was refused".to_owned(),
                )),
                Ok(()) => committed.clone(),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => answer,
                Err((code, message)) => answer
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

/// The records one entry comes to, or why it is refused.
fn entry_records(
    entity: &[(String, Option<String>)],
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<Vec<MetadataRecord>, (ErrorCode, String)> {
    let invalid = |message: String| (ErrorCode::INVALID_REQUEST, message);
    if entity.is_empty() {
        return Err(invalid(
            "an entity names a user, a client id or both".into(),
        ));
    }
    let mut sorted: QuotaEntity = entity.to_vec();
    sorted.sort();
    for pair in sorted.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(invalid(format!("entity type {} given twice", pair[0].0)));
        }
    }
    if let Some((kind, _)) = sorted.iter().find(|(k, _)| k != USER && k != CLIENT_ID) {
        return Err(invalid(format!(
            "entity type {kind} is not supported (user, client-id)"
        )));
    }
    let mut records = Vec::new();
    for op in &entry.ops {
        let key = op.key.as_str();
        if !KEYS.contains(&key) {
            return Err(invalid(format!(
                "unknown quota {key} (expected one of {})",
                KEYS.join(", ")
            )));
        }
        let positive = op.value.is_finite() && op.value > 0.0;
        if !op.remove && !positive {
            return Err(invalid(format!("{key} must be a positive number")));
        }
        records.push(MetadataRecord::ClientQuota {
            entity: sorted.clone(),
            key: key.to_owned(),
            value: (!op.remove).then_some(QuotaValue(op.value)),
        });
    }
    Ok(records)
}
