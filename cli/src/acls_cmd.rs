//! `strom acls add|list|remove`: ACLs kept in the cluster's metadata, with the flags of
//! Kafka's `kafka-acls` (`--allow-principal User:alice --operation Read --topic orders`,
//! `--producer`, `--consumer`).
//!
//! The flags are turned into bindings (`add`) or filters (`list`, `remove`) before the
//! cluster is contacted, so a mistake is reported without one: every combination of
//! principal, host, operation and resource named is one binding. Unlike `kafka-acls`,
//! `remove` does not ask for confirmation (`--force` is accepted for scripts written for
//! it), and a host or operation left out of `remove` means any.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strom_client::admin::{
    AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME, WILDCARD,
};

use crate::groups_cmd::table;

#[derive(Args, Debug)]
pub struct AclsArgs {
    /// Broker to bootstrap from.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    /// A properties file of client settings for a secured cluster (`security.protocol`,
    /// `sasl.*`, `ssl.*`), as Kafka's tools take it.
    #[arg(long, value_name = "FILE", global = true)]
    command_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: AclsCommand,
}

#[derive(Subcommand, Debug)]
enum AclsCommand {
    /// Add ACLs: each principal, host, operation and resource named makes one.
    Add(Selectors),
    /// List ACLs (all, or those on the resources and of the principals named).
    List(ListArgs),
    /// Remove the ACLs the selectors match (a selector left out matches any), without
    /// asking.
    Remove {
        #[command(flatten)]
        selectors: Selectors,
        /// Accepted for scripts written for kafka-acls; nothing is asked anyway.
        #[arg(long)]
        force: bool,
    },
}

/// The resources an ACL is about: any combination.
#[derive(Args, Debug)]
struct Resources {
    /// A topic (`*` for every topic); repeatable.
    #[arg(long = "topic", value_name = "TOPIC")]
    topics: Vec<String>,
    /// A consumer group (`*` for every group); repeatable.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// A transactional id (`*` for every one); repeatable.
    #[arg(long = "transactional-id", value_name = "ID")]
    transactional_ids: Vec<String>,
    /// The cluster.
    #[arg(long)]
    cluster: bool,
}

/// Who, from where, may or may not do what to which resources: for `add` and `remove`.
#[derive(Args, Debug)]
struct Selectors {
    /// A principal to allow, as `User:alice`; repeatable.
    #[arg(long = "allow-principal", value_name = "PRINCIPAL")]
    allow_principals: Vec<String>,
    /// A principal to deny, as `User:mallory`; repeatable.
    #[arg(long = "deny-principal", value_name = "PRINCIPAL")]
    deny_principals: Vec<String>,
    /// A host the allowed principals connect from (`add`: default `*`, every host);
    /// repeatable.
    #[arg(
        long = "allow-host",
        value_name = "HOST",
        requires = "allow_principals"
    )]
    allow_hosts: Vec<String>,
    /// A host the denied principals connect from (`add`: default `*`, every host);
    /// repeatable.
    #[arg(long = "deny-host", value_name = "HOST", requires = "deny_principals")]
    deny_hosts: Vec<String>,
    /// An operation: Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite, All (`add`: default All);
    /// repeatable.
    #[arg(long = "operation", value_name = "OP", conflicts_with_all = ["producer", "consumer"])]
    operations: Vec<String>,
    #[command(flatten)]
    resources: Resources,
    /// How topic, group and transactional id names match: literal (a name, or `*`; the
    /// default) or prefixed. `remove` also takes any and match, as `list` does, and with no
    /// resource named removes ACLs of every pattern type unless this says which. The
    /// cluster is always literal.
    #[arg(long, value_name = "TYPE")]
    resource_pattern_type: Option<String>,
    /// The ACLs of a producer: WRITE, DESCRIBE and CREATE on the topics, WRITE and
    /// DESCRIBE on the transactional ids.
    #[arg(long)]
    producer: bool,
    /// With --producer: IDEMPOTENT_WRITE on the cluster too.
    #[arg(long, requires = "producer")]
    idempotent: bool,
    /// The ACLs of a consumer: READ and DESCRIBE on the topics, READ on the groups.
    #[arg(long)]
    consumer: bool,
}

impl Selectors {
    /// `--resource-pattern-type`, or `default` when it is not given.
    fn pattern_type(&self, default: PatternType) -> anyhow::Result<PatternType> {
        self.resource_pattern_type
            .as_deref()
            .map_or(Ok(default), pattern_type)
    }
}

#[derive(Args, Debug)]
struct ListArgs {
    #[command(flatten)]
    resources: Resources,
    /// Only the ACLs of this principal, as `User:alice`; repeatable.
    #[arg(long = "principal", value_name = "PRINCIPAL")]
    principals: Vec<String>,
    /// Which ACLs on the resources named: any (named exactly, literal or prefixed), match
    /// (every ACL that applies to them, `*` and prefixes included), literal, prefixed.
    #[arg(long, value_name = "TYPE", default_value = "any")]
    resource_pattern_type: String,
}

/// A resource, or (in a filter, name `None`) every resource of a type.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    resource_type: ResourceType,
    name: Option<String>,
    pattern_type: PatternType,
}

/// Who the ACLs are for: a principal (or any), allowed, denied (or either), from a host
/// (or any).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Grantee {
    principal: Option<String>,
    permission: Permission,
    host: Option<String>,
}

const HEADER: [&str; 7] = [
    "RESOURCE-TYPE",
    "PATTERN-TYPE",
    "RESOURCE",
    "PRINCIPAL",
    "HOST",
    "OPERATION",
    "PERMISSION",
];

pub async fn run(args: AclsArgs) -> anyhow::Result<()> {
    let admin = || async {
        crate::produce_cmd::admin(&args.bootstrap, args.command_config.as_deref())
            .await
            .with_context(|| format!("connecting to {}", args.bootstrap))
    };
    let shown: BTreeSet<AclBinding> = match &args.command {
        AclsCommand::Add(selectors) => {
            let bindings = bindings(selectors)?;
            admin().await?.create_acls(&bindings).await?;
            bindings.into_iter().collect()
        }
        AclsCommand::List(list) => {
            let filters = list_filters(list)?;
            let admin = admin().await?;
            let mut found = BTreeSet::new();
            for filter in &filters {
                found.extend(admin.describe_acls(filter).await?);
            }
            found
        }
        AclsCommand::Remove { selectors, .. } => {
            let filters = remove_filters(selectors)?;
            admin()
                .await?
                .delete_acls(&filters)
                .await?
                .into_iter()
                .collect()
        }
    };
    let mut out = std::io::stdout().lock();
    for line in table(&HEADER, &rows(&shown)) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The bindings `add` creates, each checked as the broker will.
fn bindings(selectors: &Selectors) -> anyhow::Result<Vec<AclBinding>> {
    let pattern_type = selectors.pattern_type(PatternType::Literal)?;
    if !matches!(pattern_type, PatternType::Literal | PatternType::Prefixed) {
        bail!("--resource-pattern-type {pattern_type}: ACLs are added LITERAL or PREFIXED");
    }
    let grantees = grantees(selectors, Some(WILDCARD))?;
    if grantees.is_empty() {
        bail!("name who the ACLs are for with --allow-principal or --deny-principal");
    }
    let targets = targets(selectors, pattern_type, Operation::All)?;
    if targets.is_empty() {
        bail!("name a resource with --topic, --group, --transactional-id or --cluster");
    }
    let mut bindings = Vec::new();
    for (pattern, operations) in &targets {
        for grantee in &grantees {
            for operation in operations {
                let binding = AclBinding {
                    resource_type: pattern.resource_type,
                    resource_name: pattern.name.clone().unwrap_or_default(),
                    pattern_type: pattern.pattern_type,
                    principal: grantee.principal.clone().unwrap_or_default(),
                    host: grantee.host.clone().unwrap_or_default(),
                    operation: *operation,
                    permission: grantee.permission,
                };
                binding
                    .validate()
                    .with_context(|| format!("cannot add ACL {binding}"))?;
                bindings.push(binding);
            }
        }
    }
    Ok(bindings)
}

/// The filters `remove` deletes with.
fn remove_filters(selectors: &Selectors) -> anyhow::Result<Vec<AclFilter>> {
    let mut grantees = grantees(selectors, None)?;
    let mut targets = targets(
        selectors,
        selectors.pattern_type(PatternType::Literal)?,
        Operation::Any,
    )?;
    if targets.is_empty() {
        if grantees.is_empty() {
            bail!(
                "name the ACLs to remove with --topic, --group, --transactional-id, --cluster, \
                 --allow-principal or --deny-principal (nothing named would remove every ACL)"
            );
        }
        let operations = explicit_operations(selectors, Operation::Any)?;
        let every = any_resource(selectors.pattern_type(PatternType::Any)?);
        targets.push((every, operations));
    }
    if grantees.is_empty() {
        grantees.push(Grantee {
            principal: None,
            permission: Permission::Any,
            host: None,
        });
    }
    Ok(filters(&targets, &grantees))
}

/// The filters `list` describes with.
fn list_filters(list: &ListArgs) -> anyhow::Result<Vec<AclFilter>> {
    let pattern_type = pattern_type(&list.resource_pattern_type)?;
    let mut patterns = patterns(&list.resources, pattern_type);
    if patterns.is_empty() {
        patterns.push(any_resource(pattern_type));
    }
    let mut grantees = Vec::new();
    for principal in &list.principals {
        check_principal("--principal", principal)?;
        grantees.push(Grantee {
            principal: Some(principal.clone()),
            permission: Permission::Any,
            host: None,
        });
    }
    if grantees.is_empty() {
        grantees.push(Grantee {
            principal: None,
            permission: Permission::Any,
            host: None,
        });
    }
    let targets: Vec<(Pattern, Vec<Operation>)> = patterns
        .into_iter()
        .map(|p| (p, vec![Operation::Any]))
        .collect();
    Ok(filters(&targets, &grantees))
}

/// One filter per target, grantee and operation.
fn filters(targets: &[(Pattern, Vec<Operation>)], grantees: &[Grantee]) -> Vec<AclFilter> {
    let mut filters = Vec::new();
    for (pattern, operations) in targets {
        for grantee in grantees {
            for operation in operations {
                filters.push(AclFilter {
                    resource_type: pattern.resource_type,
                    resource_name: pattern.name.clone(),
                    pattern_type: pattern.pattern_type,
                    principal: grantee.principal.clone(),
                    host: grantee.host.clone(),
                    operation: *operation,
                    permission: grantee.permission,
                });
            }
        }
    }
    filters
}

/// Every resource whose binding has `pattern_type` (for filters).
fn any_resource(pattern_type: PatternType) -> Pattern {
    Pattern {
        resource_type: ResourceType::Any,
        name: None,
        pattern_type,
    }
}

/// The allowed and denied principals with their hosts; hosts not given are
/// `default_host` (`None`: any host, in filters).
fn grantees(selectors: &Selectors, default_host: Option<&str>) -> anyhow::Result<Vec<Grantee>> {
    let sides = [
        (
            "--allow-principal",
            Permission::Allow,
            &selectors.allow_principals,
            &selectors.allow_hosts,
        ),
        (
            "--deny-principal",
            Permission::Deny,
            &selectors.deny_principals,
            &selectors.deny_hosts,
        ),
    ];
    let mut grantees = Vec::new();
    for (flag, permission, principals, hosts) in sides {
        let hosts: Vec<Option<String>> = if hosts.is_empty() {
            vec![default_host.map(str::to_owned)]
        } else {
            hosts.iter().cloned().map(Some).collect()
        };
        for principal in principals {
            check_principal(flag, principal)?;
            for host in &hosts {
                grantees.push(Grantee {
                    principal: Some(principal.clone()),
                    permission,
                    host: host.clone(),
                });
            }
        }
    }
    Ok(grantees)
}

/// The resources named, each with its operations: `--operation`s (or `default` when none
/// is given), or those of `--producer` and `--consumer`.
fn targets(
    selectors: &Selectors,
    pattern_type: PatternType,
    default: Operation,
) -> anyhow::Result<Vec<(Pattern, Vec<Operation>)>> {
    let patterns = patterns(&selectors.resources, pattern_type);
    if selectors.producer || selectors.consumer {
        return convenience_targets(selectors, patterns);
    }
    let operations = explicit_operations(selectors, default)?;
    Ok(patterns
        .into_iter()
        .map(|p| (p, operations.clone()))
        .collect())
}

/// The `--operation`s, or `default` when none is given.
fn explicit_operations(
    selectors: &Selectors,
    default: Operation,
) -> anyhow::Result<Vec<Operation>> {
    let mut operations = Vec::new();
    for name in &selectors.operations {
        operations.push(operation(name)?);
    }
    if operations.is_empty() {
        operations.push(default);
    }
    Ok(operations)
}

/// The operations `--producer` and `--consumer` give on each resource, as `kafka-acls`
/// does; the cluster's IDEMPOTENT_WRITE comes with `--idempotent`.
fn convenience_targets(
    selectors: &Selectors,
    mut patterns: Vec<Pattern>,
) -> anyhow::Result<Vec<(Pattern, Vec<Operation>)>> {
    let resources = &selectors.resources;
    if resources.topics.is_empty() {
        bail!("--producer and --consumer need a --topic");
    }
    if resources.cluster {
        bail!("--producer and --consumer take no --cluster (--idempotent adds it)");
    }
    if selectors.consumer && resources.groups.is_empty() {
        bail!("--consumer needs a --group");
    }
    if !selectors.consumer && !resources.groups.is_empty() {
        bail!("--group is for --consumer");
    }
    if !selectors.producer && !resources.transactional_ids.is_empty() {
        bail!("--transactional-id is for --producer");
    }
    if selectors.idempotent {
        patterns.push(cluster());
    }
    Ok(patterns
        .into_iter()
        .map(|p| {
            let operations = convenience_operations(p.resource_type, selectors);
            (p, operations)
        })
        .collect())
}

fn convenience_operations(resource_type: ResourceType, selectors: &Selectors) -> Vec<Operation> {
    let (producer, consumer) = (selectors.producer, selectors.consumer);
    let mut operations = BTreeSet::new();
    match resource_type {
        ResourceType::Topic => {
            if producer {
                operations.extend([Operation::Write, Operation::Describe, Operation::Create]);
            }
            if consumer {
                operations.extend([Operation::Read, Operation::Describe]);
            }
        }
        ResourceType::TransactionalId if producer => {
            operations.extend([Operation::Write, Operation::Describe]);
        }
        ResourceType::Group if consumer => {
            operations.insert(Operation::Read);
        }
        ResourceType::Cluster if selectors.idempotent => {
            operations.insert(Operation::IdempotentWrite);
        }
        _ => {}
    }
    operations.into_iter().collect()
}

/// The resources `--topic`, `--group`, `--transactional-id` and `--cluster` name.
fn patterns(resources: &Resources, pattern_type: PatternType) -> Vec<Pattern> {
    let named = [
        (ResourceType::Topic, &resources.topics),
        (ResourceType::Group, &resources.groups),
        (ResourceType::TransactionalId, &resources.transactional_ids),
    ];
    let mut patterns: Vec<Pattern> = named
        .into_iter()
        .flat_map(|(resource_type, names)| {
            names.iter().map(move |name| Pattern {
                resource_type,
                name: Some(name.clone()),
                pattern_type,
            })
        })
        .collect();
    if resources.cluster {
        patterns.push(cluster());
    }
    patterns
}

/// The cluster resource, always literal (as `kafka-acls` has it).
fn cluster() -> Pattern {
    Pattern {
        resource_type: ResourceType::Cluster,
        name: Some(CLUSTER_NAME.to_owned()),
        pattern_type: PatternType::Literal,
    }
}

fn pattern_type(text: &str) -> anyhow::Result<PatternType> {
    PatternType::parse(text).with_context(|| {
        format!("--resource-pattern-type {text}: expected literal, prefixed, any or match")
    })
}

fn operation(text: &str) -> anyhow::Result<Operation> {
    Operation::parse(text).with_context(|| {
        let known: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
        format!(
            "--operation {text}: unknown operation; expected one of {}",
            known.join(", ")
        )
    })
}

/// Checks that `principal` is `Type:name`, as Kafka's principals are written.
fn check_principal(flag: &str, principal: &str) -> anyhow::Result<()> {
    match principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
        _ => bail!("{flag} {principal}: expected a principal such as User:alice"),
    }
}

/// The table rows of `bindings`, in their (sorted) order.
fn rows<'a>(bindings: impl IntoIterator<Item = &'a AclBinding>) -> Vec<Vec<String>> {
    bindings
        .into_iter()
        .map(|b| {
            vec![
                b.resource_type.name().to_owned(),
                b.pattern_type.name().to_owned(),
                b.resource_name.clone(),
                b.principal.clone(),
                b.host.clone(),
                b.operation.name().to_owned(),
                b.permission.name().to_owned(),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: AclsArgs,
    }

    fn command(args: &[&str]) -> AclsCommand {
        let argv = std::iter::once("strom-acls").chain(args.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.args.command,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    fn add(args: &[&str]) -> anyhow::Result<Vec<AclBinding>> {
        let mut argv = vec!["add"];
        argv.extend_from_slice(args);
        match command(&argv) {
            AclsCommand::Add(selectors) => bindings(&selectors),
            other => panic!("{other:?}"),
        }
    }

    fn remove(args: &[&str]) -> anyhow::Result<Vec<AclFilter>> {
        let mut argv = vec!["remove"];
        argv.extend_from_slice(args);
        match command(&argv) {
            AclsCommand::Remove { selectors, .. } => remove_filters(&selectors),
            other => panic!("{other:?}"),
        }
    }

    fn list(args: &[&str]) -> anyhow::Result<Vec<AclFilter>> {
        let mut argv = vec!["list"];
        argv.extend_from_slice(args);
        match command(&argv) {
            AclsCommand::List(list) => list_filters(&list),
            other => panic!("{other:?}"),
        }
    }

    fn binding(
        resource: (ResourceType, &str, PatternType),
        principal: &str,
        host: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: resource.0,
            resource_name: resource.1.into(),
            pattern_type: resource.2,
            principal: principal.into(),
            host: host.into(),
            operation,
            permission,
        }
    }

    const ORDERS: (ResourceType, &str, PatternType) =
        (ResourceType::Topic, "orders", PatternType::Literal);

    #[test]
    fn add_makes_one_binding_per_principal_host_operation_and_resource() {
        let added = add(&[
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--operation",
            "describe",
            "--topic",
            "orders",
        ])
        .unwrap();
        assert_eq!(
            added,
            [
                binding(
                    ORDERS,
                    "User:alice",
                    "*",
                    Operation::Read,
                    Permission::Allow
                ),
                binding(
                    ORDERS,
                    "User:alice",
                    "*",
                    Operation::Describe,
                    Permission::Allow
                ),
            ]
        );

        let added = add(&[
            "--allow-principal",
            "User:alice",
            "--allow-host",
            "10.0.0.1",
            "--deny-principal",
            "User:mallory",
            "--topic",
            "team-a.",
            "--group",
            "team-a.",
            "--resource-pattern-type",
            "prefixed",
        ])
        .unwrap();
        let topic = (ResourceType::Topic, "team-a.", PatternType::Prefixed);
        let group = (ResourceType::Group, "team-a.", PatternType::Prefixed);
        assert_eq!(
            added,
            [
                binding(
                    topic,
                    "User:alice",
                    "10.0.0.1",
                    Operation::All,
                    Permission::Allow
                ),
                binding(topic, "User:mallory", "*", Operation::All, Permission::Deny),
                binding(
                    group,
                    "User:alice",
                    "10.0.0.1",
                    Operation::All,
                    Permission::Allow
                ),
                binding(group, "User:mallory", "*", Operation::All, Permission::Deny),
            ]
        );
    }

    #[test]
    fn the_cluster_is_literal_and_named_kafka_cluster() {
        let added = add(&[
            "--allow-principal",
            "User:admin",
            "--operation",
            "alter-configs",
            "--cluster",
            "--resource-pattern-type",
            "prefixed",
        ])
        .unwrap();
        let cluster = (ResourceType::Cluster, CLUSTER_NAME, PatternType::Literal);
        assert_eq!(
            added,
            [binding(
                cluster,
                "User:admin",
                "*",
                Operation::AlterConfigs,
                Permission::Allow
            )]
        );
    }

    #[test]
    fn producer_and_consumer_give_kafka_acls_operations() {
        let added = add(&[
            "--allow-principal",
            "User:app",
            "--producer",
            "--idempotent",
            "--consumer",
            "--topic",
            "orders",
            "--group",
            "billing",
            "--transactional-id",
            "tx",
        ])
        .unwrap();
        let summary: Vec<(ResourceType, Operation)> = added
            .iter()
            .map(|b| (b.resource_type, b.operation))
            .collect();
        use Operation::*;
        use ResourceType::*;
        assert_eq!(
            summary,
            [
                (Topic, Read),
                (Topic, Write),
                (Topic, Create),
                (Topic, Describe),
                (Group, Read),
                (TransactionalId, Write),
                (TransactionalId, Describe),
                (Cluster, IdempotentWrite),
            ]
        );
        assert!(add(&["--allow-principal", "User:a", "--consumer", "--topic", "t"]).is_err());
        assert!(add(&["--allow-principal", "User:a", "--producer", "--group", "g"]).is_err());
    }

    #[test]
    fn add_refuses_what_the_broker_would() {
        let error = |args: &[&str]| format!("{:#}", add(args).unwrap_err());
        assert!(error(&["--allow-principal", "alice", "--topic", "t"]).contains("User:alice"));
        assert!(error(&["--topic", "t"]).contains("--allow-principal"));
        assert!(error(&["--allow-principal", "User:a"]).contains("--topic"));
        let wrong_op = error(&[
            "--allow-principal",
            "User:a",
            "--operation",
            "IdempotentWrite",
            "--topic",
            "t",
        ]);
        assert!(
            wrong_op.contains("IDEMPOTENT_WRITE does not apply to TOPIC"),
            "{wrong_op}"
        );
        assert!(error(&[
            "--allow-principal",
            "User:a",
            "--operation",
            "fly",
            "--topic",
            "t"
        ])
        .contains("unknown operation"));
        assert!(error(&[
            "--allow-principal",
            "User:a",
            "--topic",
            "t",
            "--resource-pattern-type",
            "match"
        ])
        .contains("LITERAL or PREFIXED"));
        // Clap's own rules: hosts need principals, --operation is not for --producer.
        let argv = ["strom-acls", "add", "--allow-host", "h", "--topic", "t"];
        assert!(Cli::try_parse_from(argv).is_err());
        let argv = ["strom-acls", "add", "--producer", "--operation", "Read"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    #[test]
    fn remove_leaves_what_is_not_named_open() {
        let filters = remove(&["--topic", "orders", "--force"]).unwrap();
        assert_eq!(
            filters,
            [AclFilter {
                resource_type: ResourceType::Topic,
                resource_name: Some("orders".into()),
                pattern_type: PatternType::Literal,
                ..AclFilter::any()
            }]
        );

        let filters =
            remove(&["--deny-principal", "User:mallory", "--operation", "Write"]).unwrap();
        assert_eq!(
            filters,
            [AclFilter {
                principal: Some("User:mallory".into()),
                operation: Operation::Write,
                permission: Permission::Deny,
                ..AclFilter::any()
            }]
        );

        let exact = binding(
            ORDERS,
            "User:alice",
            "*",
            Operation::Read,
            Permission::Allow,
        );
        let filters = remove(&[
            "--allow-principal",
            "User:alice",
            "--allow-host",
            "*",
            "--operation",
            "Read",
            "--topic",
            "orders",
        ])
        .unwrap();
        assert_eq!(filters, [AclFilter::from(&exact)]);

        assert!(remove(&[]).is_err());
    }

    #[test]
    fn list_filters_by_resource_and_principal() {
        assert_eq!(list(&[]).unwrap(), [AclFilter::any()]);
        let filters = list(&[
            "--topic",
            "orders",
            "--cluster",
            "--principal",
            "User:alice",
            "--resource-pattern-type",
            "match",
        ])
        .unwrap();
        assert_eq!(
            filters,
            [
                AclFilter {
                    resource_type: ResourceType::Topic,
                    resource_name: Some("orders".into()),
                    pattern_type: PatternType::Match,
                    principal: Some("User:alice".into()),
                    ..AclFilter::any()
                },
                AclFilter {
                    resource_type: ResourceType::Cluster,
                    resource_name: Some(CLUSTER_NAME.into()),
                    pattern_type: PatternType::Literal,
                    principal: Some("User:alice".into()),
                    ..AclFilter::any()
                },
            ]
        );
        assert!(list(&["--principal", "alice"]).is_err());
        assert!(list(&["--resource-pattern-type", "fuzzy"]).is_err());
    }

    #[test]
    fn bindings_print_as_an_aligned_table() {
        let shown: BTreeSet<AclBinding> = [
            binding(ORDERS, "User:bob", "*", Operation::Write, Permission::Deny),
            binding(
                ORDERS,
                "User:alice",
                "*",
                Operation::Read,
                Permission::Allow,
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            table(&HEADER, &rows(&shown)),
            [
                "RESOURCE-TYPE  PATTERN-TYPE  RESOURCE  PRINCIPAL   HOST  OPERATION  PERMISSION",
                "TOPIC          LITERAL       orders    User:alice  *     READ       ALLOW",
                "TOPIC          LITERAL       orders    User:bob    *     WRITE      DENY",
            ]
        );
        assert_eq!(table(&HEADER, &rows(&BTreeSet::new())).len(), 1);
    }
}
