//! `strom quotas alter|describe`: client quotas per user and client id, as Kafka's
//! `kafka-configs --entity-type users|clients --alter --add-config producer_byte_rate=...`
//! manages them.

use std::io::Write;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strom_client::admin::QuotaEntity;

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
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// Every user without a quota of its own.
    #[arg(long)]
    user_default: bool,
    /// A client id.
    #[arg(long, conflicts_with = "client_id_default")]
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
        /// Quotas to set: `producer_byte_rate=1048576,consumer_byte_rate=...`.
        #[arg(long, value_name = "KEY=VALUE,...")]
        add: Option<String>,
        /// Quotas to remove: `request_percentage,...`.
        #[arg(long, value_name = "KEY,...")]
        delete: Option<String>,
    },
    /// Show quotas: of one entity, or all.
    Describe {
        #[command(flatten)]
        entity: EntityArgs,
    },
}

/// The entity the flags name; `None` when they name none.
fn entity(args: &EntityArgs) -> Option<QuotaEntity> {
    let user = match (&args.user, args.user_default) {
        (Some(name), _) => Some(Some(name.clone())),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let client_id = match (&args.client_id, args.client_id_default) {
        (Some(id), _) => Some(Some(id.clone())),
        (None, true) => Some(None),
        (None, false) => None,
    };
    (user.is_some() || client_id.is_some()).then_some(QuotaEntity { user, client_id })
}

/// `key=value,...` as pairs.
fn additions(text: &str) -> anyhow::Result<Vec<(String, f64)>> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
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
    let admin = crate::produce_cmd::admin(&args.bootstrap, args.command_config.as_deref())
        .await
        .with_context(|| format!("connecting to {}", args.bootstrap))?;
    let mut out = std::io::stdout().lock();
    match args.command {
        QuotasCommand::Alter {
            entity: flags,
            add,
            delete,
        } => {
            let Some(entity) = entity(&flags) else {
                bail!("name an entity: --user NAME or --user-default, and/or --client-id ID or --client-id-default");
            };
            let set = additions(add.as_deref().unwrap_or(""))?;
            let removed: Vec<&str> = delete
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .collect();
            if set.is_empty() && removed.is_empty() {
                bail!("nothing to change: give --add KEY=VALUE,... and/or --delete KEY,...");
            }
            let pairs: Vec<(&str, f64)> = set.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            admin.alter_client_quotas(&entity, &pairs, &removed).await?;
            writeln!(out, "quotas of {entity} altered")?;
        }
        QuotasCommand::Describe { entity: flags } => {
            let named = entity(&flags);
            for (entity, values) in admin.describe_client_quotas(named.as_ref()).await? {
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
    use super::*;

    #[test]
    fn flags_name_entities() {
        assert_eq!(entity(&EntityArgs::default()), None);
        let both = EntityArgs {
            user: Some("alice".into()),
            client_id_default: true,
            ..EntityArgs::default()
        };
        assert_eq!(
            entity(&both).unwrap().to_string(),
            "user=alice,client-id=<default>"
        );
    }

    #[test]
    fn additions_parse_or_name_the_bad_item() {
        assert_eq!(
            additions("producer_byte_rate=1024, consumer_byte_rate=2e3").unwrap(),
            [
                ("producer_byte_rate".to_owned(), 1024.0),
                ("consumer_byte_rate".to_owned(), 2000.0)
            ]
        );
        let e = additions("producer_byte_rate=fast")
            .unwrap_err()
            .to_string();
        assert!(e.contains("fast"), "{e}");
        assert!(additions("producer_byte_rate").is_err());
    }
}
