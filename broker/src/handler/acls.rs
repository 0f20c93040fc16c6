//! DescribeAcls (key 29), CreateAcls (key 30), DeleteAcls (key 31): versions 1-3 (v2+ are
//! flexible; v0, without pattern types, is gone from Kafka 4 as from here).
//!
//! ACLs live in the metadata log (`Acl` / `RemoveAcl` records), so every broker enforces
//! the same ones; changes go through the active controller. As Kafka: SECURITY_DISABLED
//! when no authoriser is configured; describing needs DESCRIBE on the cluster, changing
//! ALTER (CLUSTER_AUTHORIZATION_FAILED).

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::acl::{
    AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType,
};
use strom_protocol::ErrorCode;

use super::{str_bytes, Client};
use crate::controller::records::MetadataRecord;
use crate::state::BrokerState;

/// Why the whole request is refused, if it is.
fn refused(state: &BrokerState, client: &Client, operation: Operation) -> Option<ErrorCode> {
    if !state.authorizer.enabled() {
        Some(ErrorCode::SECURITY_DISABLED)
    } else if !state.allowed_on_cluster(client, operation) {
        Some(ErrorCode::CLUSTER_AUTHORIZATION_FAILED)
    } else {
        None
    }
}

/// A filter from its wire fields; `None` when a field holds an unknown code.
#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Option<AclFilter> {
    Some(AclFilter {
        resource_type: ResourceType::from_code(resource_type)?,
        resource_name: name.map(ToString::to_string),
        pattern_type: PatternType::from_code(pattern_type)?,
        principal: principal.map(ToString::to_string),
        host: host.map(ToString::to_string),
        operation: Operation::from_code(operation)?,
        permission: Permission::from_code(permission)?,
    })
}

pub(crate) async fn describe(
    state: &BrokerState,
    client: &Client,
    request: DescribeAclsRequest,
    _version: i16,
) -> DescribeAclsResponse {
    let response = DescribeAclsResponse::default();
    if let Some(code) = refused(state, client, Operation::Describe) {
        return response.with_error_code(code.code());
    }
    let Some(filter) = filter(
        request.resource_type_filter,
        request.resource_name_filter.as_ref(),
        request.pattern_type_filter,
        request.principal_filter.as_ref(),
        request.host_filter.as_ref(),
        request.operation,
        request.permission_type,
    ) else {
        return response
            .with_error_code(ErrorCode::INVALID_REQUEST.code())
            .with_error_message(Some(str_bytes(
                "unknown resource, pattern, operation or permission type",
            )));
    };
    let image = state.quorum.image();
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    // The image keeps bindings sorted by resource, so each resource's are together.
    for binding in image.acls.iter().filter(|b| filter.matches(b)) {
        let same = resources.last().is_some_and(|r| {
            r.resource_type == binding.resource_type.code()
                && r.resource_name.as_str() == binding.resource_name
                && r.pattern_type == binding.pattern_type.code()
        });
        if !same {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(binding.resource_type.code())
                    .with_resource_name(str_bytes(binding.resource_name.clone()))
                    .with_pattern_type(binding.pattern_type.code()),
            );
        }
        if let Some(resource) = resources.last_mut() {
            resource.acls.push(
                AclDescription::default()
                    .with_principal(str_bytes(binding.principal.clone()))
                    .with_host(str_bytes(binding.host.clone()))
                    .with_operation(binding.operation.code())
                    .with_permission_type(binding.permission.code()),
            );
        }
    }
    response.with_resources(resources)
}

pub(crate) async fn create(
    state: &BrokerState,
    client: &Client,
    request: CreateAclsRequest,
    _version: i16,
) -> CreateAclsResponse {
    let refusal = refused(state, client, Operation::Alter);
    let mut records = Vec::new();
    let mut results: Vec<Result<(), (ErrorCode, String)>> = Vec::new();
    for creation in &request.creations {
        if let Some(code) = refusal {
            results.push(Err((code, String::new())));
            continue;
        }
        let binding = binding_of(
            creation.resource_type,
            &creation.resource_name,
            creation.resource_pattern_type,
            (&creation.principal, &creation.host),
            creation.operation,
            creation.permission_type,
        );
        match binding {
            Ok(binding) => {
                records.push(MetadataRecord::Acl { binding });
                results.push(Ok(()));
            }
            Err(message) => results.push(Err((ErrorCode::INVALID_REQUEST, message))),
        }
    }
    let committed = super::commit(state, records).await;
    let results = results
        .into_iter()
        .map(|result| match result.and(committed.clone()) {
            Ok(()) => AclCreationResult::default(),
            Err((code, message)) => AclCreationResult::default()
                .with_error_code(code.code())
                .with_error_message((!message.is_empty()).then(|| str_bytes(message))),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// A binding from a creation's wire fields, checked as Kafka checks it.
fn binding_of(
    resource_type: i8,
    name: &StrBytes,
    pattern_type: i8,
    (principal, host): (&StrBytes, &StrBytes),
    operation: i8,
    permission: i8,
) -> Result<AclBinding, String> {
    let unknown = |what: &str, code: i8| format!("unknown {what} {code}");
    let binding = AclBinding {
        resource_type: ResourceType::from_code(resource_type)
            .ok_or_else(|| unknown("resource type", resource_type))?,
        resource_name: name.to_string(),
        pattern_type: PatternType::from_code(pattern_type)
            .ok_or_else(|| unknown("pattern type", pattern_type))?,
        principal: principal.to_string(),
        host: host.to_string(),
        operation: Operation::from_code(operation)
            .ok_or_else(|| unknown("operation", operation))?,
        permission: Permission::from_code(permission)
            .ok_or_else(|| unknown("permission type", permission))?,
    };
    binding.validate().map_err(|e| e.to_string())?;
    Ok(binding)
}

pub(crate) async fn delete(
    state: &BrokerState,
    client: &Client,
    request: DeleteAclsRequest,
    _version: i16,
) -> DeleteAclsResponse {
    let refusal = refused(state, client, Operation::Alter);
    let image = state.quorum.image();
    let mut removed = std::collections::BTreeSet::new();
    let mut results: Vec<Result<Vec<AclBinding>, (ErrorCode, String)>> = Vec::new();
    for f in &request.filters {
        if let Some(code) = refusal {
            results.push(Err((code, String::new())));
            continue;
        }
        let Some(filter) = filter(
            f.resource_type_filter,
            f.resource_name_filter.as_ref(),
            f.pattern_type_filter,
            f.principal_filter.as_ref(),
            f.host_filter.as_ref(),
            f.operation,
            f.permission_type,
        ) else {
            results.push(Err((
                ErrorCode::INVALID_REQUEST,
                "unknown filter type".into(),
            )));
            continue;
        };
        let matching: Vec<AclBinding> = image
            .acls
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect();
        removed.extend(matching.iter().cloned());
        results.push(Ok(matching));
    }
    let records = removed
        .into_iter()
        .map(|binding| MetadataRecord::RemoveAcl { binding })
        .collect();
    let committed = super::commit(state, records).await;
    let filter_results = results
        .into_iter()
        .map(|result| match result {
            Ok(matching) => DeleteAclsFilterResult::default().with_matching_acls(
                matching
                    .iter()
                    .map(|b| matching_acl(b, committed.as_ref().err()))
                    .collect(),
            ),
            Err((code, message)) => DeleteAclsFilterResult::default()
                .with_error_code(code.code())
                .with_error_message((!message.is_empty()).then(|| str_bytes(message))),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(filter_results)
}

fn matching_acl(
    binding: &AclBinding,
    failed: Option<&(ErrorCode, String)>,
) -> DeleteAclsMatchingAcl {
    let acl = DeleteAclsMatchingAcl::default()
        .with_resource_type(binding.resource_type.code())
        .with_resource_name(str_bytes(binding.resource_name.clone()))
        .with_pattern_type(binding.pattern_type.code())
        .with_principal(str_bytes(binding.principal.clone()))
        .with_host(str_bytes(binding.host.clone()))
        .with_operation(binding.operation.code())
        .with_permission_type(binding.permission.code());
    match failed {
        None => acl,
        Some((code, message)) => acl
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message.clone()))),
    }
}
