//! `strom users add-scram|list|delete`: SCRAM users kept in the cluster's metadata, as
//! Kafka's `kafka-configs --alter --add-config 'SCRAM-SHA-512=[password=...]'
//! --entity-type users` manages them (the password is salted here; only the salt and
//! salted password are sent).

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use strom_protocol::sasl::Mechanism;

#[derive(Args, Debug)]
pub struct UsersArgs {
    /// Broker to bootstrap from.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    /// A properties file of client settings for a secured cluster (`security.protocol`,
    /// `sasl.*`, `ssl.*`), as Kafka's tools take it.
    #[arg(long, value_name = "FILE", global = true)]
    command_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Set a user's SCRAM password (creating the user).
    AddScram {
        /// The user.
        user: String,
        /// The password.
        #[arg(long)]
        password: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = 8192)]
        iterations: i32,
    },
    /// List users with SCRAM credentials (all, or those named).
    List {
        /// Users to show.
        users: Vec<String>,
    },
    /// Delete a user's SCRAM credential.
    Delete {
        /// The user.
        user: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
    },
}

fn mechanism(name: &str) -> anyhow::Result<Mechanism> {
    Mechanism::parse(name)
        .filter(|m| *m != Mechanism::Plain)
        .with_context(|| format!("--mechanism {name}: expected SCRAM-SHA-256 or SCRAM-SHA-512"))
}

pub async fn run(args: UsersArgs) -> anyhow::Result<()> {
    let admin = crate::produce_cmd::admin(&args.bootstrap, args.command_config.as_deref())
        .await
        .with_context(|| format!("connecting to {}", args.bootstrap))?;
    let mut out = std::io::stdout().lock();
    match args.command {
        UsersCommand::AddScram {
            user,
            password,
            mechanism: name,
            iterations,
        } => {
            let m = mechanism(&name)?;
            admin
                .upsert_scram_credential(&user, m, &password, iterations)
                .await?;
            writeln!(out, "{user}: {} set ({iterations} iterations)", m.name())?;
        }
        UsersCommand::List { users } => {
            let names: Vec<&str> = users.iter().map(String::as_str).collect();
            let named = (!names.is_empty()).then_some(names.as_slice());
            for (user, credentials) in admin.describe_scram_credentials(named).await? {
                let list: Vec<String> = credentials
                    .iter()
                    .map(|c| format!("{} ({} iterations)", c.mechanism.name(), c.iterations))
                    .collect();
                writeln!(out, "{user}\t{}", list.join(", "))?;
            }
        }
        UsersCommand::Delete {
            user,
            mechanism: name,
        } => {
            let m = mechanism(&name)?;
            admin.delete_scram_credential(&user, m).await?;
            writeln!(out, "{user}: {} deleted", m.name())?;
        }
    }
    Ok(())
}
