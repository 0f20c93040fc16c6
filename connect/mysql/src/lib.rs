//! Strom Connect's MySQL and MariaDB source.
//!
//! [`MySqlSource`] captures changes like Debezium's MySQL connector: a consistent
//! snapshot of the selected tables (`table.include.list`), streamed in batches, then the
//! binary log from the position the snapshot was taken at, so nothing between them is
//! missed or doubled. Each change is an event in Debezium's envelope (`before`, `after`,
//! `source` with file, position and GTID, `op` `c`/`u`/`d`/`r`, `ts_ms`), keyed by the
//! primary key, on the topic `<topic.prefix>.<db>.<table>`, with a tombstone after each
//! delete. DDL statements reload the schemas they touch and are kept in a schema-history
//! topic, so a restart reads rows with the schema in force where it resumes; they are
//! also events on the topic `<topic.prefix>` (`include.schema.changes`), keyed by
//! database, with the statement and the tables' new columns.
//!
//! ```text
//!  snapshot (START TRANSACTION WITH CONSISTENT SNAPSHOT at binlog file:pos)
//!      └─ op "r" events ─┐
//!  binlog from file:pos ─┴─▶ Reader ──batches──▶ MySqlSourceTask::poll ──▶ runtime
//!      offsets: {file, pos: transaction start, skip: changes of it already written}
//! ```
//!
//! Offsets name the start of the transaction an event belongs to and how many of its
//! captured changes were already written: after a restart the task reads the
//! transaction again and leaves those out. What can repeat after a crash is what the
//! runtime wrote but had not yet stored the offset of (at most one
//! `offset.flush.interval.ms`): delivery is at-least-once within that window.
//!
//! [`QuerySource`] is the query-based alternative for servers without a binlog, like
//! the JDBC source connector: `mode=incrementing`, `timestamp`,
//! `timestamp+incrementing` or `bulk`.
//!
//! ```
//! use strom_connect_mysql::MySqlConfig;
//!
//! let config: strom_connect_api::ConfigMap = [
//!     ("database.hostname", "127.0.0.1"),
//!     ("database.user", "cdc"),
//!     ("topic.prefix", "shop"),
//!     ("table.include.list", "inventory.orders"),
//! ]
//! .into_iter()
//! .map(|(k, v)| (k.to_owned(), v.to_owned()))
//! .collect();
//! let config = MySqlConfig::from_config(&config)?;
//! assert_eq!(config.topic("inventory", "orders"), "shop.inventory.orders");
//! assert!(!config.captures("inventory", "customers"));
//! # Ok::<(), strom_connect_api::ConnectError>(())
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod binlog;
mod config;
mod envelope;
mod history;
mod query;
mod schema;
mod server;
mod snapshot;
mod source;
mod tablemap;

pub use config::{keys, DecimalMode, MySqlConfig, SnapshotMode};
pub use envelope::Position;
pub use query::{QueryMode, QuerySource, QuerySourceTask};
pub use schema::{Column, Kind, TableSchema};
pub use source::{MySqlSource, MySqlSourceTask};

/// The JDBC source connector's class name, for the query-based source.
pub const QUERY_SOURCE_CLASS: &str = "io.confluent.connect.jdbc.JdbcSourceConnector";
/// Debezium's class name for the change-capture source.
pub const MYSQL_SOURCE_CLASS: &str = "io.debezium.connector.mysql.MySqlConnector";
