//! Who may do what: Kafka's standard authoriser over the ACLs in the cluster metadata.
//!
//! Off unless `authorizer.class.name` is set; then every handler asks [`Authorizer::allowed`]
//! before it touches a resource and answers with Kafka's authorisation error codes. The
//! rules are Kafka's `StandardAuthorizer`:
//!
//! 1. super users (`super.users`) may do everything;
//! 2. a DENY binding that covers the resource, principal (or `User:*`), host (or `*`)
//!    and operation (or `ALL`) wins;
//! 3. else an ALLOW binding that covers them allows; `READ`, `WRITE`, `DELETE` and `ALTER`
//!    imply `DESCRIBE`, and `ALTER_CONFIGS` implies `DESCRIBE_CONFIGS`;
//! 4. else a resource that no binding covers at all is open when
//!    `allow.everyone.if.no.acl.found` is true; everything else is denied.

use std::collections::BTreeSet;

use strom_protocol::acl::{AclBinding, Operation, Permission, ResourceType, WILDCARD};

use crate::controller::image::MetadataImage;
use crate::handler::Client;

/// The broker's authorisation settings.
#[derive(Clone, Debug, Default)]
pub(crate) struct Authorizer {
    enabled: bool,
    super_users: BTreeSet<String>,
    allow_if_no_acl: bool,
}

/// The principal everyone has before authenticating.
pub(crate) const ANONYMOUS: &str = "User:ANONYMOUS";

impl Authorizer {
    pub(crate) fn new(config: &crate::config::BrokerConfig) -> Authorizer {
        Authorizer {
            enabled: config.authorizer,
            super_users: config.super_users.iter().cloned().collect(),
            allow_if_no_acl: config.allow_everyone_if_no_acl_found,
        }
    }

    /// Whether ACLs are enforced at all.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `client` may do `operation` on the resource `name` of `resource_type`.
    pub(crate) fn allowed(
        &self,
        image: &MetadataImage,
        client: &Client,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.enabled || self.super_users.contains(&client.principal) {
            return true;
        }
        let mut covered = false;
        let mut allowed = false;
        for binding in image
            .acls
            .iter()
            .filter(|b| b.resource_type == resource_type && b.covers(name) && applies_to(b, client))
        {
            covered = true;
            match binding.permission {
                Permission::Deny
                    if binding.operation == operation || binding.operation == Operation::All =>
                {
                    return false;
                }
                Permission::Allow if grants(binding.operation, operation) => allowed = true,
                _ => {}
            }
        }
        if allowed {
            return true;
        }
        // "No ACL found" means none on the resource for anyone.
        self.allow_if_no_acl
            && !covered
            && !image
                .acls
                .iter()
                .any(|b| b.resource_type == resource_type && b.covers(name))
    }

    /// Whether `client` may do `operation` on some resource of `resource_type`: what
    /// Kafka asks for idempotent producers (WRITE on any topic stands for
    /// IDEMPOTENT_WRITE on the cluster, KIP-679).
    pub(crate) fn allowed_on_any(
        &self,
        image: &MetadataImage,
        client: &Client,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if !self.enabled || self.super_users.contains(&client.principal) {
            return true;
        }
        let denied_everywhere = image.acls.iter().any(|b| {
            b.resource_type == resource_type
                && b.permission == Permission::Deny
                && b.resource_name == WILDCARD
                && b.pattern_type == strom_protocol::acl::PatternType::Literal
                && (b.operation == operation || b.operation == Operation::All)
                && applies_to(b, client)
        });
        !denied_everywhere
            && image.acls.iter().any(|b| {
                b.resource_type == resource_type
                    && b.permission == Permission::Allow
                    && grants(b.operation, operation)
                    && applies_to(b, client)
            })
    }

    /// Kafka's authorised-operations bit field (bit `n` for operation code `n`) for the
    /// resource, as Metadata, DescribeCluster and DescribeGroups report it.
    pub(crate) fn authorized_operations(
        &self,
        image: &MetadataImage,
        client: &Client,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        strom_protocol::acl::operations_of(resource_type)
            .iter()
            .filter(|op| self.allowed(image, client, **op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

/// Whether the binding's principal and host are the client's (or wildcards).
fn applies_to(binding: &AclBinding, client: &Client) -> bool {
    (binding.principal == client.principal || binding.principal == "User:*")
        && (binding.host == WILDCARD || binding.host == client.ip)
}

/// Whether an ALLOW of `granted` allows `wanted`.
fn grants(granted: Operation, wanted: Operation) -> bool {
    use Operation::*;
    granted == wanted
        || granted == All
        || (wanted == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (wanted == DescribeConfigs && granted == AlterConfigs)
}

impl crate::state::BrokerState {
    /// Whether `client` may do `operation` on the resource (see [`Authorizer::allowed`]).
    pub(crate) fn allowed(
        &self,
        client: &Client,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        !self.authorizer.enabled()
            || self
                .authorizer
                .allowed(&self.quorum.image(), client, operation, resource_type, name)
    }

    /// Whether `client` may do `operation` on the cluster.
    pub(crate) fn allowed_on_cluster(&self, client: &Client, operation: Operation) -> bool {
        self.allowed(
            client,
            operation,
            ResourceType::Cluster,
            strom_protocol::acl::CLUSTER_NAME,
        )
    }

    /// Whether `client` may describe topic `name` (else it answers as if it saw nothing).
    pub(crate) fn may_describe_topic(&self, client: &Client, name: &str) -> bool {
        self.allowed(client, Operation::Describe, ResourceType::Topic, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::acl::PatternType;

    fn client(principal: &str) -> Client {
        Client {
            client_id: "test".into(),
            host: "/10.0.0.1".into(),
            ip: "10.0.0.1".into(),
            principal: principal.into(),
            listener: "PLAINTEXT".into(),
        }
    }

    fn acl(
        principal: &str,
        pattern_type: PatternType,
        name: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission,
        }
    }

    fn authorizer() -> Authorizer {
        Authorizer {
            enabled: true,
            super_users: ["User:admin".to_owned()].into(),
            allow_if_no_acl: false,
        }
    }

    #[test]
    fn prefixed_allow_deny_and_implied_describe() {
        let mut image = MetadataImage::default();
        image.acls.insert(acl(
            "User:alice",
            PatternType::Prefixed,
            "a.",
            Operation::Read,
            Permission::Allow,
        ));
        image.acls.insert(acl(
            "User:*",
            PatternType::Literal,
            "a.secret",
            Operation::All,
            Permission::Deny,
        ));
        let auth = authorizer();
        let alice = client("User:alice");
        let topic = ResourceType::Topic;
        assert!(auth.allowed(&image, &alice, Operation::Read, topic, "a.orders"));
        assert!(auth.allowed(&image, &alice, Operation::Describe, topic, "a.orders"));
        assert!(!auth.allowed(&image, &alice, Operation::Write, topic, "a.orders"));
        assert!(!auth.allowed(&image, &alice, Operation::Read, topic, "b.orders"));
        assert!(!auth.allowed(&image, &alice, Operation::Read, topic, "a.secret"));
        assert!(auth.allowed(&image, &client("User:admin"), Operation::Alter, topic, "x"));
        assert!(!auth.allowed(&image, &client("User:bob"), Operation::Read, topic, "a.x"));
        let bits = auth.authorized_operations(&image, &alice, topic, "a.orders");
        assert_eq!(
            bits,
            (1 << Operation::Read.code()) | (1 << Operation::Describe.code())
        );
    }

    #[test]
    fn hosts_and_no_acl_found() {
        let mut image = MetadataImage::default();
        let mut from_elsewhere = acl(
            "User:bob",
            PatternType::Literal,
            "t",
            Operation::Write,
            Permission::Allow,
        );
        from_elsewhere.host = "10.9.9.9".into();
        image.acls.insert(from_elsewhere);
        let mut auth = authorizer();
        let bob = client("User:bob");
        let topic = ResourceType::Topic;
        assert!(!auth.allowed(&image, &bob, Operation::Write, topic, "t"));
        assert!(!auth.allowed(&image, &bob, Operation::Write, topic, "open"));
        auth.allow_if_no_acl = true;
        assert!(auth.allowed(&image, &bob, Operation::Write, topic, "open"));
        // Covered by a binding, even for someone else: not open.
        assert!(!auth.allowed(&image, &bob, Operation::Write, topic, "t"));
        assert!(!auth.allowed_on_any(&image, &bob, Operation::Write, topic));
        image.acls.insert(acl(
            "User:bob",
            PatternType::Prefixed,
            "b.",
            Operation::Write,
            Permission::Allow,
        ));
        assert!(auth.allowed_on_any(&image, &bob, Operation::Write, topic));
    }
}
