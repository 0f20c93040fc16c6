//! `strom`: run a broker, manage topics and consumer groups, produce and consume, or try the
//! whole stack with `strom quickstart`.
// Printing to stdout is this binary's job.
#![allow(clippy::print_stdout)]

mod acls_cmd;
mod broker_cmd;
mod cluster_cmd;
mod connect_cmd;
mod consume_cmd;
mod groups_cmd;
mod produce_cmd;
mod quickstart;
mod quotas_cmd;
mod sql_cmd;
mod topics_cmd;
mod users_cmd;

use clap::{Parser, Subcommand};

/// Strom: a Rust-native Kafka toolkit.
#[derive(Parser, Debug)]
#[command(name = "strom", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a Kafka-compatible broker (no configuration needed).
    Broker(broker_cmd::BrokerArgs),
    /// Start an embedded broker, create a topic, produce and consume a few records.
    Quickstart(quickstart::QuickstartArgs),
    /// Manage topics on any Kafka cluster.
    Topics(topics_cmd::TopicsArgs),
    /// Produce records from standard input, one per line.
    Produce(produce_cmd::ProduceArgs),
    /// Print a topic's records, alone or as a member of a consumer group.
    Consume(consume_cmd::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    Groups(groups_cmd::GroupsArgs),
    /// Describe the cluster: id, controller, brokers, metadata quorum.
    Cluster(cluster_cmd::ClusterArgs),
    /// Query topics with SQL (each topic a table; JSON values as columns).
    Sql(sql_cmd::SqlArgs),
    /// Run source and sink connectors (Kafka Connect's standalone or distributed mode).
    Connect(connect_cmd::ConnectArgs),
    /// Manage SCRAM users kept in the cluster's metadata.
    Users(users_cmd::UsersArgs),
    /// Add, list and remove ACLs kept in the cluster's metadata.
    Acls(acls_cmd::AclsArgs),
    /// Manage client quotas per user and client id.
    Quotas(quotas_cmd::QuotasArgs),
}

// Records are often made on one thread and freed on another (a connector's reader and
// its producer loop, a fetch and its consumer), which glibc's allocator serialises on its
// arena locks; mimalloc does not (3x the change events/s in BENCHMARKS.md, "Connect").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // A closed stderr must not turn a log line into a panic (tracing-subscriber would
        // report the failed write with `eprintln!`, which panics).
        .log_internal_errors(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strom: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Broker(args) => broker_cmd::run(args).await,
            Command::Quickstart(args) => quickstart::run(args).await,
            Command::Topics(args) => topics_cmd::run(args).await,
            Command::Produce(args) => produce_cmd::run(args).await,
            Command::Consume(args) => consume_cmd::run(args).await,
            Command::Groups(args) => groups_cmd::run(args).await,
            Command::Cluster(args) => cluster_cmd::run(args).await,
            Command::Users(args) => users_cmd::run(args).await,
            Command::Acls(args) => acls_cmd::run(args).await,
            Command::Quotas(args) => quotas_cmd::run(args).await,
            Command::Sql(args) => sql_cmd::run(args).await,
            Command::Connect(args) => connect_cmd::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strom: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
