//! Kafka's access control vocabulary, shared by the broker's authoriser and the admin
//! client: resource types, pattern types, operations and permissions with their wire
//! numbers, ACL bindings, and filters that match them (CreateAcls, DescribeAcls,
//! DeleteAcls).
//!
//! A binding says: `principal` from `host` is allowed (or denied) `operation` on the
//! resources that `pattern` names. Patterns are literal (one name, or `*` for all) or
//! prefixed (every name starting with it).

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The wire number.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code,)* }
            }

            /// The value with wire number `code`.
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// The name Kafka's tools print (`TOPIC`, `PREFIXED`, `DESCRIBE_CONFIGS`, ...).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// Parses a name as Kafka's tools write it, in any case, with `-` or `_`
            /// (`describe-configs`, `DescribeConfigs`, `DESCRIBE_CONFIGS`).
            pub fn parse(text: &str) -> Option<$name> {
                let wanted: String = text
                    .chars()
                    .filter(|c| *c != '_' && *c != '-')
                    .collect::<String>()
                    .to_ascii_uppercase();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name().replace('_', "") == wanted)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum!(
    /// What kind of resource an ACL is about (Kafka's `ResourceType`).
    ResourceType {
        /// In filters: any type.
        Any = 1 => "ANY",
        /// A topic.
        Topic = 2 => "TOPIC",
        /// A consumer group.
        Group = 3 => "GROUP",
        /// The cluster (its name is always `kafka-cluster`).
        Cluster = 4 => "CLUSTER",
        /// A transactional id.
        TransactionalId = 5 => "TRANSACTIONAL_ID",
        /// A delegation token.
        DelegationToken = 6 => "DELEGATION_TOKEN",
        /// A user (for quotas and credentials).
        User = 7 => "USER",
    }
);

wire_enum!(
    /// How a binding's resource name matches resources (Kafka's `PatternType`).
    PatternType {
        /// In filters: literal or prefixed, named exactly as the filter's name.
        Any = 1 => "ANY",
        /// In filters: every binding that applies to the filter's resource name.
        Match = 2 => "MATCH",
        /// The name itself, or every resource when the name is `*`.
        Literal = 3 => "LITERAL",
        /// Every resource whose name starts with the name.
        Prefixed = 4 => "PREFIXED",
    }
);

wire_enum!(
    /// What a principal does to a resource (Kafka's `AclOperation`).
    Operation {
        /// In filters: any operation.
        Any = 1 => "ANY",
        /// Every operation.
        All = 2 => "ALL",
        /// Consume from a topic, join or commit in a group.
        Read = 3 => "READ",
        /// Produce to a topic, use a transactional id.
        Write = 4 => "WRITE",
        /// Create topics.
        Create = 5 => "CREATE",
        /// Delete topics, records, groups.
        Delete = 6 => "DELETE",
        /// Add partitions, change ACLs or reassignments.
        Alter = 7 => "ALTER",
        /// See a resource: metadata, offsets, group state.
        Describe = 8 => "DESCRIBE",
        /// What brokers do to each other (replication, markers).
        ClusterAction = 9 => "CLUSTER_ACTION",
        /// Read configs.
        DescribeConfigs = 10 => "DESCRIBE_CONFIGS",
        /// Change configs.
        AlterConfigs = 11 => "ALTER_CONFIGS",
        /// Produce idempotently.
        IdempotentWrite = 12 => "IDEMPOTENT_WRITE",
        /// Create delegation tokens.
        CreateTokens = 13 => "CREATE_TOKENS",
        /// Describe delegation tokens.
        DescribeTokens = 14 => "DESCRIBE_TOKENS",
    }
);

wire_enum!(
    /// Whether a binding allows or denies (Kafka's `AclPermissionType`).
    Permission {
        /// In filters: either.
        Any = 1 => "ANY",
        /// Denies: wins over any allow.
        Deny = 2 => "DENY",
        /// Allows.
        Allow = 3 => "ALLOW",
    }
);

/// The one cluster resource's name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The name of every resource in a literal pattern, every principal, every host.
pub const WILDCARD: &str = "*";

/// One ACL: `principal` from `host` is allowed or denied `operation` on the resources
/// `resource_type`/`pattern_type`/`resource_name` names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// What kind of resource.
    pub resource_type: ResourceType,
    /// The resource's name, or a prefix of names, or `*`.
    pub resource_name: String,
    /// How the name matches: [`PatternType::Literal`] or [`PatternType::Prefixed`].
    pub pattern_type: PatternType,
    /// Who: `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// From where: an IP address, or `*`.
    pub host: String,
    /// What.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

/// Why a binding cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A field holds a filter value (`ANY`, `MATCH`) where a binding needs a concrete one.
    #[error("{0} is not allowed in an ACL binding")]
    NotConcrete(&'static str),
    /// The principal is not `Type:name`.
    #[error("principal {0:?} is not of the form User:NAME")]
    Principal(String),
    /// Empty resource name.
    #[error("an ACL needs a resource name")]
    EmptyName,
    /// A cluster ACL names something other than `kafka-cluster`.
    #[error("the cluster resource is named {CLUSTER_NAME}, not {0:?}")]
    ClusterName(String),
    /// An operation that does not apply to the resource type.
    #[error("{operation} does not apply to {resource_type} resources")]
    Operation {
        /// The resource type.
        resource_type: ResourceType,
        /// The operation.
        operation: Operation,
    },
}

impl AclBinding {
    /// Checks that the binding is one Kafka would store: concrete values, a `Type:name`
    /// principal, an operation that applies to the resource type.
    ///
    /// # Errors
    /// [`AclError`] naming the first problem.
    pub fn validate(&self) -> Result<(), AclError> {
        if matches!(
            self.resource_type,
            ResourceType::Any | ResourceType::User | ResourceType::DelegationToken
        ) {
            return Err(AclError::NotConcrete(self.resource_type.name()));
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Err(AclError::NotConcrete(self.pattern_type.name()));
        }
        if self.operation == Operation::Any {
            return Err(AclError::NotConcrete("ANY operation"));
        }
        if self.permission == Permission::Any {
            return Err(AclError::NotConcrete("ANY permission"));
        }
        if self.resource_name.is_empty() {
            return Err(AclError::EmptyName);
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Err(AclError::Principal(self.principal.clone())),
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(AclError::ClusterName(self.resource_name.clone()));
        }
        if self.operation != Operation::All
            && !operations_of(self.resource_type).contains(&self.operation)
        {
            return Err(AclError::Operation {
                resource_type: self.resource_type,
                operation: self.operation,
            });
        }
        Ok(())
    }

    /// Whether the binding's pattern covers the resource `name` of its type.
    pub fn covers(&self, name: &str) -> bool {
        match self.pattern_type {
            PatternType::Literal => self.resource_name == WILDCARD || self.resource_name == name,
            PatternType::Prefixed => name.starts_with(&self.resource_name),
            PatternType::Any | PatternType::Match => false,
        }
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} from {} on {}:{}:{}",
            self.principal,
            self.permission,
            self.operation,
            self.host,
            self.resource_type,
            self.pattern_type,
            self.resource_name
        )
    }
}

/// The operations that apply to a resource type (besides `ALL`).
pub fn operations_of(resource_type: ResourceType) -> &'static [Operation] {
    use Operation::*;
    match resource_type {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Delete,
            Alter,
            Describe,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write],
        ResourceType::DelegationToken => &[Describe],
        ResourceType::User => &[CreateTokens, DescribeTokens],
        ResourceType::Any => &[],
    }
}

/// Which bindings a DescribeAcls or DeleteAcls request means: each field either names a
/// value or is a wildcard (`None`, or the `ANY` value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    /// Resource type, or [`ResourceType::Any`].
    pub resource_type: ResourceType,
    /// Resource name; `None` for any.
    pub resource_name: Option<String>,
    /// [`PatternType::Any`], [`PatternType::Match`] or a concrete pattern type.
    pub pattern_type: PatternType,
    /// Principal; `None` for any.
    pub principal: Option<String>,
    /// Host; `None` for any.
    pub host: Option<String>,
    /// Operation, or [`Operation::Any`].
    pub operation: Operation,
    /// Permission, or [`Permission::Any`].
    pub permission: Permission,
}

impl AclFilter {
    /// A filter that matches every binding.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        }
    }

    /// Whether `binding` is one the filter means, as Kafka's `AclBindingFilter.matches`:
    /// with [`PatternType::Match`], the bindings that apply to the named resource
    /// (literal by name or `*`, prefixed by a prefix of the name).
    pub fn matches(&self, binding: &AclBinding) -> bool {
        let type_ok =
            self.resource_type == ResourceType::Any || self.resource_type == binding.resource_type;
        let pattern_ok = match (self.pattern_type, &self.resource_name) {
            (PatternType::Any, None) => true,
            (PatternType::Any, Some(name)) => binding.resource_name == *name,
            (PatternType::Match, None) => true,
            (PatternType::Match, Some(name)) => binding.covers(name),
            (concrete, name) => {
                binding.pattern_type == concrete
                    && name.as_ref().is_none_or(|n| binding.resource_name == *n)
            }
        };
        type_ok
            && pattern_ok
            && self
                .principal
                .as_ref()
                .is_none_or(|p| binding.principal == *p)
            && self.host.as_ref().is_none_or(|h| binding.host == *h)
            && (self.operation == Operation::Any || self.operation == binding.operation)
            && (self.permission == Permission::Any || self.permission == binding.permission)
    }
}

impl From<&AclBinding> for AclFilter {
    /// The filter that matches exactly `binding`.
    fn from(binding: &AclBinding) -> AclFilter {
        AclFilter {
            resource_type: binding.resource_type,
            resource_name: Some(binding.resource_name.clone()),
            pattern_type: binding.pattern_type,
            principal: Some(binding.principal.clone()),
            host: Some(binding.host.clone()),
            operation: binding.operation,
            permission: binding.permission,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(pattern_type: PatternType, name: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn names_parse_in_any_spelling_and_codes_round_trip() {
        assert_eq!(
            Operation::parse("describe-configs"),
            Some(Operation::DescribeConfigs)
        );
        assert_eq!(
            Operation::parse("DescribeConfigs"),
            Some(Operation::DescribeConfigs)
        );
        assert_eq!(
            ResourceType::parse("transactional_id"),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(Operation::parse("fly"), None);
        for op in Operation::ALL {
            assert_eq!(Operation::from_code(op.code()), Some(*op));
        }
        assert_eq!(Operation::from_code(0), None);
    }

    #[test]
    fn patterns_cover_names() {
        assert!(binding(PatternType::Literal, "orders").covers("orders"));
        assert!(!binding(PatternType::Literal, "orders").covers("orders2"));
        assert!(binding(PatternType::Literal, "*").covers("anything"));
        assert!(binding(PatternType::Prefixed, "team-a.").covers("team-a.orders"));
        assert!(!binding(PatternType::Prefixed, "team-a.").covers("team-b.orders"));
        // A prefixed `*` is a prefix like any other, not a wildcard.
        assert!(!binding(PatternType::Prefixed, "*").covers("orders"));
    }

    #[test]
    fn filters_match_as_kafka_does() {
        let prefixed = binding(PatternType::Prefixed, "team-a.");
        let literal = binding(PatternType::Literal, "team-a.orders");
        let mut filter = AclFilter::any();
        assert!(filter.matches(&prefixed) && filter.matches(&literal));
        filter.resource_name = Some("team-a.orders".into());
        assert!(!filter.matches(&prefixed) && filter.matches(&literal));
        filter.pattern_type = PatternType::Match;
        assert!(filter.matches(&prefixed) && filter.matches(&literal));
        filter.pattern_type = PatternType::Prefixed;
        assert!(!filter.matches(&prefixed) && !filter.matches(&literal));
        assert!(AclFilter::from(&literal).matches(&literal));
        filter = AclFilter::from(&literal);
        filter.permission = Permission::Deny;
        assert!(!filter.matches(&literal));
    }

    #[test]
    fn bindings_are_validated() {
        assert!(binding(PatternType::Literal, "t").validate().is_ok());
        assert!(binding(PatternType::Match, "t").validate().is_err());
        let mut b = binding(PatternType::Literal, "t");
        b.principal = "alice".into();
        assert!(matches!(b.validate(), Err(AclError::Principal(_))));
        let mut b = binding(PatternType::Literal, "t");
        b.operation = Operation::ClusterAction;
        assert!(matches!(b.validate(), Err(AclError::Operation { .. })));
        let mut b = binding(PatternType::Literal, "other");
        b.resource_type = ResourceType::Cluster;
        b.operation = Operation::Alter;
        assert!(matches!(b.validate(), Err(AclError::ClusterName(_))));
    }
}
