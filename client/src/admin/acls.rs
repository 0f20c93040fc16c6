//! ACLs: CreateAcls (key 30), DescribeAcls (key 29) and DeleteAcls (key 31), versions 1-3
//! (v0 has no pattern type: every binding in it is literal, so it is not spoken).
//!
//! ```text
//!  create_acls    ──▶ controller: CreateAcls, one creation per binding
//!  describe_acls  ──▶ any broker: DescribeAcls, one filter
//!  delete_acls    ──▶ controller: DeleteAcls, one filter each; the bindings removed
//! ```
//!
//! ACLs live in the cluster metadata, which the controller writes: changes go to it, and
//! are sent again when it moved. A filter's wildcard name, principal or host travels as a
//! null string; its wildcard type, pattern, operation or permission as the `ANY` code.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let mut broker_config = strom_broker::BrokerConfig::new(dir.path());
//! # broker_config.authorizer = true;
//! # broker_config.super_users = vec!["User:ANONYMOUS".to_owned()];
//! # let broker = strom_broker::Broker::start(broker_config).await?;
//! use strom_client::admin::{
//!     AclBinding, AclFilter, Admin, Operation, PatternType, Permission, ResourceType,
//! };
//! use strom_client::ClientConfig;
//!
//! let admin = Admin::connect(ClientConfig::new().bootstrap(&broker.bootstrap())).await?;
//! let read_orders = AclBinding {
//!     resource_type: ResourceType::Topic,
//!     resource_name: "orders".to_owned(),
//!     pattern_type: PatternType::Literal,
//!     principal: "User:alice".to_owned(),
//!     host: "*".to_owned(),
//!     operation: Operation::Read,
//!     permission: Permission::Allow,
//! };
//! admin.create_acls(&[read_orders.clone()]).await?;
//!
//! let mut alices = AclFilter::any();
//! alices.principal = Some("User:alice".to_owned());
//! assert_eq!(admin.describe_acls(&alices).await?, vec![read_orders.clone()]);
//!
//! assert_eq!(admin.delete_acls(&[alices.clone()]).await?, vec![read_orders]);
//! assert!(admin.describe_acls(&alices).await?.is_empty());
//! # broker.shutdown().await?;
//! # Ok(()) }
//! ```

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use strom_protocol::acl::{
    AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType,
};
use strom_protocol::ErrorCode;
use tracing::debug;

use super::{check, str_bytes, Admin};
use crate::error::ClientError;

impl Admin {
    /// Creates `bindings` (creating one that exists already is no error, as in Kafka).
    ///
    /// # Errors
    /// The first binding the controller refused (`INVALID_REQUEST` for one that is not
    /// concrete, `CLUSTER_AUTHORIZATION_FAILED`, `SECURITY_DISABLED`, ...), as
    /// [`ClientError::Broker`] naming the binding; or the request's own failure.
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<(), ClientError> {
        if bindings.is_empty() {
            return Ok(());
        }
        let request =
            CreateAclsRequest::default().with_creations(bindings.iter().map(creation).collect());
        self.with_retries("create ACLs", &[], || async {
            let conn = self.cluster.controller().await?;
            let response = conn.send(&request).await?;
            if response.results.len() != bindings.len() {
                return Err(mismatch(
                    "create ACLs",
                    bindings.len(),
                    response.results.len(),
                ));
            }
            for (binding, result) in bindings.iter().zip(&response.results) {
                check(result.error_code, result.error_message.as_ref(), || {
                    format!("create ACL {binding}")
                })?;
            }
            debug!(count = bindings.len(), "ACLs created");
            Ok(())
        })
        .await
    }

    /// The bindings `filter` matches (see [`AclFilter::matches`]).
    ///
    /// # Errors
    /// The broker's refusal (`SECURITY_DISABLED` when it has no authoriser,
    /// `CLUSTER_AUTHORIZATION_FAILED`, ...), or an answer with a code this client does not
    /// know.
    pub async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>, ClientError> {
        let request = describe_request(filter);
        self.with_retries("describe ACLs", &[], || async {
            let conn = self.cluster.any_broker().await?;
            let response = conn.send(&request).await?;
            check(response.error_code, response.error_message.as_ref(), || {
                "describe ACLs".to_owned()
            })?;
            let mut bindings = Vec::new();
            for resource in &response.resources {
                for acl in &resource.acls {
                    let wire = WireAcl {
                        resource_type: resource.resource_type,
                        resource_name: resource.resource_name.as_str(),
                        pattern_type: resource.pattern_type,
                        principal: acl.principal.as_str(),
                        host: acl.host.as_str(),
                        operation: acl.operation,
                        permission: acl.permission_type,
                    };
                    bindings.push(wire.binding("describe ACLs")?);
                }
            }
            Ok(bindings)
        })
        .await
    }

    /// Deletes the bindings each of `filters` matches; returns them, filter by filter.
    ///
    /// A filter the controller could not serve for a retriable reason (it moved, say) is
    /// sent again; the others are not, so each binding removed is returned once.
    ///
    /// # Errors
    /// The first filter (or binding) the controller refused, as [`ClientError::Broker`]
    /// naming it; or the request's own failure.
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<AclBinding>, ClientError> {
        let mut pending: Vec<&AclFilter> = filters.iter().collect();
        let mut deleted = Vec::new();
        let mut retry = self.retry("delete ACLs");
        while !pending.is_empty() {
            if let Err(error) = self.delete_acls_once(&mut pending, &mut deleted).await {
                self.backoff(&mut retry, error, &[]).await?;
            }
        }
        debug!(count = deleted.len(), "ACLs deleted");
        Ok(deleted)
    }

    /// One DeleteAcls round trip for `pending`: the filters served are taken out of it and
    /// their bindings appended to `deleted`; the first failure is returned.
    async fn delete_acls_once(
        &self,
        pending: &mut Vec<&AclFilter>,
        deleted: &mut Vec<AclBinding>,
    ) -> Result<(), ClientError> {
        let conn = self.cluster.controller().await?;
        let request = DeleteAclsRequest::default()
            .with_filters(pending.iter().map(|f| delete_filter(f)).collect());
        let response = conn.send(&request).await?;
        if response.filter_results.len() != pending.len() {
            return Err(mismatch(
                "delete ACLs",
                pending.len(),
                response.filter_results.len(),
            ));
        }
        let mut failure = None;
        let mut failed = Vec::new();
        for (filter, result) in pending.iter().zip(&response.filter_results) {
            match removed(filter, result) {
                Ok(bindings) => deleted.extend(bindings),
                Err(error) => {
                    failure.get_or_insert(error);
                    failed.push(*filter);
                }
            }
        }
        *pending = failed;
        failure.map_or(Ok(()), Err)
    }
}

/// The bindings one filter's result says were removed, or its first error.
fn removed(
    filter: &AclFilter,
    result: &DeleteAclsFilterResult,
) -> Result<Vec<AclBinding>, ClientError> {
    check(result.error_code, result.error_message.as_ref(), || {
        format!("delete ACLs matching {}", describe_filter(filter))
    })?;
    result
        .matching_acls
        .iter()
        .map(|acl| {
            let wire = WireAcl {
                resource_type: acl.resource_type,
                resource_name: acl.resource_name.as_str(),
                pattern_type: acl.pattern_type,
                principal: acl.principal.as_str(),
                host: acl.host.as_str(),
                operation: acl.operation,
                permission: acl.permission_type,
            };
            let binding = wire.binding("delete ACLs")?;
            check(acl.error_code, acl.error_message.as_ref(), || {
                format!("delete ACL {binding}")
            })?;
            Ok(binding)
        })
        .collect()
}

/// The CreateAcls entry for `binding`.
fn creation(binding: &AclBinding) -> AclCreation {
    AclCreation::default()
        .with_resource_type(binding.resource_type.code())
        .with_resource_name(str_bytes(&binding.resource_name))
        .with_resource_pattern_type(binding.pattern_type.code())
        .with_principal(str_bytes(&binding.principal))
        .with_host(str_bytes(&binding.host))
        .with_operation(binding.operation.code())
        .with_permission_type(binding.permission.code())
}

/// The DescribeAcls request for `filter`.
fn describe_request(filter: &AclFilter) -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(filter.resource_type.code())
        .with_resource_name_filter(filter.resource_name.as_deref().map(str_bytes))
        .with_pattern_type_filter(filter.pattern_type.code())
        .with_principal_filter(filter.principal.as_deref().map(str_bytes))
        .with_host_filter(filter.host.as_deref().map(str_bytes))
        .with_operation(filter.operation.code())
        .with_permission_type(filter.permission.code())
}

/// The DeleteAcls entry for `filter`.
fn delete_filter(filter: &AclFilter) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(filter.resource_type.code())
        .with_resource_name_filter(filter.resource_name.as_deref().map(str_bytes))
        .with_pattern_type_filter(filter.pattern_type.code())
        .with_principal_filter(filter.principal.as_deref().map(str_bytes))
        .with_host_filter(filter.host.as_deref().map(str_bytes))
        .with_operation(filter.operation.code())
        .with_permission_type(filter.permission.code())
}

/// A filter for error messages: its fields, with wildcards spelled `any`.
fn describe_filter(filter: &AclFilter) -> String {
    let any = |field: &Option<String>| field.clone().unwrap_or_else(|| "any".to_owned());
    format!(
        "{} {} {} from {} on {}:{}:{}",
        any(&filter.principal),
        filter.permission,
        filter.operation,
        any(&filter.host),
        filter.resource_type,
        filter.pattern_type,
        any(&filter.resource_name),
    )
}

/// One binding as the responses carry it: codes and strings.
#[derive(Debug)]
struct WireAcl<'a> {
    resource_type: i8,
    resource_name: &'a str,
    pattern_type: i8,
    principal: &'a str,
    host: &'a str,
    operation: i8,
    permission: i8,
}

impl WireAcl<'_> {
    /// The binding, or an error naming `what` and the code this client does not know.
    fn binding(&self, what: &str) -> Result<AclBinding, ClientError> {
        Ok(AclBinding {
            resource_type: known(
                self.resource_type,
                ResourceType::from_code,
                "resource type",
                what,
            )?,
            resource_name: self.resource_name.to_owned(),
            pattern_type: known(
                self.pattern_type,
                PatternType::from_code,
                "pattern type",
                what,
            )?,
            principal: self.principal.to_owned(),
            host: self.host.to_owned(),
            operation: known(self.operation, Operation::from_code, "operation", what)?,
            permission: known(self.permission, Permission::from_code, "permission", what)?,
        })
    }
}

/// The value of wire number `code`, or an error naming the `field` and `what` was done.
fn known<T>(
    code: i8,
    from_code: fn(i8) -> Option<T>,
    field: &str,
    what: &str,
) -> Result<T, ClientError> {
    from_code(code).ok_or_else(|| ClientError::Broker {
        code: ErrorCode::UNKNOWN_SERVER_ERROR,
        context: format!("{what}: the broker's answer has unknown {field} code {code}"),
    })
}

/// The error for a response with `got` results to a request of `sent` entries.
fn mismatch(what: &str, sent: usize, got: usize) -> ClientError {
    ClientError::Broker {
        code: ErrorCode::UNKNOWN_SERVER_ERROR,
        context: format!("{what}: {sent} entries sent, {got} results in the broker's answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "orders".into(),
            pattern_type: PatternType::Prefixed,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Write,
            permission: Permission::Deny,
        }
    }

    #[test]
    fn creations_carry_every_field_as_its_wire_code() {
        let c = creation(&binding());
        assert_eq!(c.resource_type, 2);
        assert_eq!(c.resource_name.as_str(), "orders");
        assert_eq!(c.resource_pattern_type, 4);
        assert_eq!(c.principal.as_str(), "User:alice");
        assert_eq!(c.host.as_str(), "*");
        assert_eq!(c.operation, 4);
        assert_eq!(c.permission_type, 2);
    }

    #[test]
    fn filter_wildcards_travel_as_null_and_any() {
        let r = describe_request(&AclFilter::any());
        assert_eq!(r.resource_type_filter, ResourceType::Any.code());
        assert_eq!(r.pattern_type_filter, PatternType::Any.code());
        assert_eq!(r.operation, Operation::Any.code());
        assert_eq!(r.permission_type, Permission::Any.code());
        assert!(r.resource_name_filter.is_none());
        assert!(r.principal_filter.is_none() && r.host_filter.is_none());

        let d = delete_filter(&AclFilter::from(&binding()));
        assert_eq!(d.resource_type_filter, 2);
        assert_eq!(d.pattern_type_filter, 4);
        assert_eq!(d.resource_name_filter.as_deref(), Some("orders"));
        assert_eq!(d.principal_filter.as_deref(), Some("User:alice"));
        assert_eq!(d.host_filter.as_deref(), Some("*"));
        assert_eq!((d.operation, d.permission_type), (4, 2));
    }

    #[test]
    fn answers_decode_and_unknown_codes_are_errors() {
        let b = binding();
        let c = creation(&b);
        let mut wire = WireAcl {
            resource_type: c.resource_type,
            resource_name: c.resource_name.as_str(),
            pattern_type: c.resource_pattern_type,
            principal: c.principal.as_str(),
            host: c.host.as_str(),
            operation: c.operation,
            permission: c.permission_type,
        };
        assert_eq!(wire.binding("test").unwrap(), b);
        wire.operation = 99;
        let error = wire.binding("describe ACLs").unwrap_err();
        assert!(
            error.to_string().contains("unknown operation code 99"),
            "{error}"
        );
    }

    #[test]
    fn filters_read_in_errors() {
        let mut filter = AclFilter::any();
        filter.principal = Some("User:bob".into());
        assert_eq!(
            describe_filter(&filter),
            "User:bob ANY ANY from any on ANY:ANY:any"
        );
    }
}
