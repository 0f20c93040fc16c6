//! Test helpers shared by Strom's test suites (dev-dependency only).
//!
//! - [`wait_until`] / [`wait_until_async`]: poll a condition until a deadline, the
//!   replacement for sleeps as synchronisation.
//! - Third-party peers: [`repo_root`], [`peers_dir`], [`require_peer`] find what
//!   `scripts/install-peers.sh` installed, and skip (locally) or fail (in CI) without it.
//! - [`run_command`]: runs a child process with a hard timeout, capturing its output.
//! - [`strom_bin`] and [`BrokerProcess`]: the `strom` binary as a separate process, for
//!   tests that must kill a broker the hard way; [`ProcessCluster`]: several of them
//!   forming one cluster on 127.0.0.1, .2, ...
//! - [`MariaDb`]: a MariaDB server of the test's own with the binary log on.
//! - [`Certs`]: a CA and certificates made with rcgen for TLS tests, and a TLS session
//!   over an in-memory transport ([`Certs::tls_over_duplex`]).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod broker_process;
mod certs;
mod command;
mod mariadb;
mod peers;
mod process_cluster;
mod wait;

pub use broker_process::BrokerProcess;
pub use certs::{Certs, Issued};
pub use command::{run_command, CommandOutput};
pub use mariadb::{MariaDb, MARIADB_PASSWORD, MARIADB_USER};
pub use peers::{find_in_path, peers_dir, repo_root, require_peer, strom_bin};
pub use process_cluster::ProcessCluster;
pub use wait::{wait_until, wait_until_async};
