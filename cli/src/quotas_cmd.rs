//! `strom quotas alter|describe`: client quotas per user and client id, as Kafka's
//! `kafka-configs --entity-type users|clients --alter --add-config producer_byte_rate=...`
//! manages them.
//!
//! The flags name one entity: `--user NAME` or `--user-default`, and/or `--client-id ID`
//! or `--client-id-default`. `alter` sets (`--add KEY=VALUE,...`) and removes
//! (`--delete KEY,...`) its quotas at once; `describe` shows exactly that entity (as
//! `kafka-configs --describe` does), or every entity when none is named.

use std::io::Write;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strom_client::admin::{QuotaEntity, QuotaFilter};

#[derive(Args, Debug)]
pub struct QuotasArgs {
    /// Broker to bootstrap from.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    /// A properties file of client settings for a secured cluster (`security.protocol`,
    /// `sasl.*`, `ssl.*`), as Kafka's tools take it.
    #[arg(long, value_name = "FILE", global = true)]
    command_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: QuotasCommand,
}

/// The entity flags both subcommands take.
#[derive(Args, Debug, Default)]
struct EntityArgs {
    /// A user.
    #[arg(long, value_name = "NAME", conflicts_with = "user_default")]
    user: Option<String>,
    /// Every user without a quota of its own.
    #[arg(long)]
    user_default: bool,
    /// A client id.
    #[arg(long, value_name = "ID", conflicts_with = "client_id_default")]
    client_id: Option<String>,
    /// Every client id without a quota of its own.
    #[arg(long)]
    client_id_default: bool,
}

#[derive(Subcommand, Debug)]
enum QuotasCommand {
    /// Set and remove quotas of one entity.
    Alter {
        #[command(flatten)]
        entity: EntityArgs,
        /// Quotas to set: `producer_byte_rate=1048576,consumer_byte_rate=...`; repeatable.
        #[arg(long, value_name = "KEY=VALUE,...")]
        add: Vec<String>,
        /// Quotas to remove: `request_percentage,...`; repeatable.
        #[arg(long, value_name = "KEY,...")]
        delete: Vec<String>,
    },
    /// Show the quotas of one entity, or of all.
    Describe {
        #[command(flatten)]
        entity: EntityArgs,
    },
}

/// What one `strom quotas` command asks of the cluster.
#[derive(Debug, PartialEq)]
enum Plan {
    Alter {
        entity: QuotaEntity,
        set: Vec<(String, f64)>,
        remove: Vec<String>,
    },
    Describe(QuotaFilter),
}

fn plan(command: &QuotasCommand) -> anyhow::Result<Plan> {
    match command {
        QuotasCommand::Alter {
            entity: flags,
            add,
            delete,
        } => {
            let Some(entity) = entity(flags) else {
                bail!("name an entity: --user NAME or --user-default, and/or --client-id ID or --client-id-default");
            };
            let set = additions(add)?;
            let remove = keys(delete);
            if set.is_empty() && remove.is_empty() {
                bail!("nothing to change: give --add KEY=VALUE,... and/or --delete KEY,...");
            }
            if let Some(key) = remove.iter().find(|k| set.iter().any(|(s, _)| s == *k)) {
                bail!("{key} is both in --add and in --delete");
            }
            Ok(Plan::Alter {
                entity,
                set,
                remove,
            })
        }
        QuotasCommand::Describe { entity: flags } => Ok(Plan::Describe(
            entity(flags).map_or_else(QuotaFilter::all, |e| QuotaFilter::entity(&e)),
        )),
    }
}

/// The entity the flags name; `None` when they name none.
fn entity(args: &EntityArgs) -> Option<QuotaEntity> {
    let part = |name: &Option<String>, default: bool| match (name, default) {
        (Some(name), _) => Some(Some(name.clone())),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let entity = QuotaEntity {
        user: part(&args.user, args.user_default),
        client_id: part(&args.client_id, args.client_id_default),
    };
    (entity != QuotaEntity::default()).then_some(entity)
}

/// The comma-separated items of every occurrence of a flag, trimmed, empty ones dropped.
fn keys(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `key=value,...` (from every `--add`) as pairs.
fn additions(values: &[String]) -> anyhow::Result<Vec<(String, f64)>> {
    keys(values)
        .iter()
        .map(|item| {
            let (key, value) = item
                .split_once('=')
                .with_context(|| format!("--add {item}: expected KEY=VALUE"))?;
            let value: f64 = value
                .trim()
                .parse()
                .with_context(|| format!("--add {item}: {value} is not a number"))?;
            Ok((key.trim().to_owned(), value))
        })
        .collect()
}

pub async fn run(args: QuotasArgs) -> anyhow::Result<()> {
    let plan = plan(&args.command)?;
    let admin = crate::produce_cmd::admin(&args.bootstrap, args.command_config.as_deref())
        .await
        .with_context(|| format!("connecting to {}", args.bootstrap))?;
    let mut out = std::io::stdout().lock();
    match plan {
        Plan::Alter {
            entity,
            set,
            remove,
        } => {
            let set: Vec<(&str, f64)> = set.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
            admin.alter_client_quotas(&entity, &set, &remove).await?;
            writeln!(out, "quotas of {entity} altered")?;
        }
        Plan::Describe(filter) => {
            for (entity, values) in admin.describe_client_quotas(&filter).await? {
                for (key, value) in values {
                    writeln!(out, "{entity}\t{key}={value}")?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: QuotasArgs,
    }

    fn parse(args: &[&str]) -> Result<QuotasArgs, clap::Error> {
        let argv = std::iter::once("strom-quotas").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|cli| cli.args)
    }

    fn planned(args: &[&str]) -> anyhow::Result<Plan> {
        match parse(args) {
            Ok(parsed) => plan(&parsed.command),
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    fn alter(entity: QuotaEntity, set: &[(&str, f64)], remove: &[&str]) -> Plan {
        Plan::Alter {
            entity,
            set: set.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            remove: remove.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    #[test]
    fn alter_names_an_entity_and_its_changes() {
        assert_eq!(
            planned(&[
                "alter",
                "--user",
                "alice",
                "--add",
                "producer_byte_rate=1048576, consumer_byte_rate=2e3",
                "--delete",
                "request_percentage",
            ])
            .unwrap(),
            alter(
                QuotaEntity::user("alice"),
                &[
                    ("producer_byte_rate", 1_048_576.0),
                    ("consumer_byte_rate", 2000.0)
                ],
                &["request_percentage"]
            )
        );
        assert_eq!(
            planned(&[
                "alter",
                "--user-default",
                "--client-id",
                "app",
                "--add",
                "producer_byte_rate=1",
                "--add",
                "request_percentage=25",
            ])
            .unwrap(),
            alter(
                QuotaEntity::default_user().and_client_id(Some("app")),
                &[("producer_byte_rate", 1.0), ("request_percentage", 25.0)],
                &[]
            )
        );
        assert_eq!(
            planned(&[
                "alter",
                "--client-id-default",
                "--delete",
                "a,b",
                "--delete",
                "c"
            ])
            .unwrap(),
            alter(QuotaEntity::default_client_id(), &[], &["a", "b", "c"])
        );
    }

    #[test]
    fn alter_refuses_what_it_cannot_send() {
        let refused = |args: &[&str]| planned(args).unwrap_err().to_string();
        let e = refused(&["alter", "--add", "producer_byte_rate=1"]);
        assert!(e.contains("name an entity"), "{e}");
        let e = refused(&["alter", "--user", "alice"]);
        assert!(e.contains("nothing to change"), "{e}");
        let e = refused(&[
            "alter",
            "--user",
            "alice",
            "--add",
            "producer_byte_rate=fast",
        ]);
        assert!(e.contains("fast"), "{e}");
        let e = refused(&["alter", "--user", "alice", "--add", "producer_byte_rate"]);
        assert!(e.contains("KEY=VALUE"), "{e}");
        let e = refused(&[
            "alter",
            "--user",
            "alice",
            "--add",
            "producer_byte_rate=1",
            "--delete",
            "producer_byte_rate",
        ]);
        assert!(e.contains("both"), "{e}");
        // A name and the default of one part cannot both be given.
        assert!(parse(&[
            "alter",
            "--user",
            "alice",
            "--user-default",
            "--delete",
            "x"
        ])
        .is_err());
        assert!(parse(&["describe", "--client-id", "a", "--client-id-default"]).is_err());
    }

    #[test]
    fn describe_shows_exactly_the_entity_named_or_all() {
        assert_eq!(
            planned(&["describe"]).unwrap(),
            Plan::Describe(QuotaFilter::all())
        );
        let both = QuotaEntity::user("alice").and_client_id(Some("app"));
        assert_eq!(
            planned(&["describe", "--user", "alice", "--client-id", "app"]).unwrap(),
            Plan::Describe(QuotaFilter::entity(&both))
        );
        assert_eq!(
            planned(&["describe", "--user-default"]).unwrap(),
            Plan::Describe(QuotaFilter::entity(&QuotaEntity::default_user()))
        );
    }

    #[test]
    fn bootstrap_and_command_config_go_before_or_after_the_subcommand() {
        let args = parse(&["-b", "h:1", "describe", "--command-config", "a.properties"]).unwrap();
        assert_eq!(args.bootstrap, "h:1");
        assert_eq!(
            args.command_config.as_deref(),
            Some(std::path::Path::new("a.properties"))
        );
    }
}
