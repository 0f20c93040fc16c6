//! The MySQL source's configuration, under Debezium's key names.

use std::time::Duration;

use mysql_async::{Opts, OptsBuilder};
use regex::Regex;
use strom_connect_api::{ConfigKey, ConfigMap, ConnectError};

/// What the connector does before it reads the binary log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotMode {
    /// A snapshot when no offset is stored, then the binlog (the default).
    Initial,
    /// A snapshot, then stop.
    InitialOnly,
    /// No rows: the binlog from the current position (`no_data`, `schema_only`).
    NoData,
    /// A snapshot when no offset is stored or when the stored position was purged.
    WhenNeeded,
}

/// How DECIMAL columns are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecimalMode {
    /// Kafka Connect's `Decimal` (exact; the default).
    Precise,
    /// A string (`"12.30"`).
    String,
    /// A double (may lose digits).
    Double,
}

/// The MySQL source's settings.
#[derive(Clone, Debug)]
pub struct MySqlConfig {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// The server id the connector registers as a replica with.
    pub server_id: u32,
    /// The topic prefix (`<prefix>.<db>.<table>`) and logical server name.
    pub prefix: String,
    /// Databases to capture (regular expressions; all when empty).
    pub databases: Vec<Regex>,
    /// Tables to capture as `db.table` (regular expressions; all when empty).
    pub tables: Vec<Regex>,
    /// The include list as written, to name entries that match no table.
    pub table_list: Vec<String>,
    /// Snapshot mode.
    pub snapshot: SnapshotMode,
    /// Rows per batch while snapshotting.
    pub fetch_size: usize,
    /// Change events per batch while streaming.
    pub batch_size: usize,
    /// DECIMAL handling.
    pub decimal: DecimalMode,
    /// BIGINT UNSIGNED as Decimal (`precise`, the default) or as a wrapping long (`long`).
    pub unsigned_bigint_precise: bool,
    /// A tombstone after each delete.
    pub tombstones: bool,
    /// DDL statements as events on the topic named by the prefix.
    pub schema_changes: bool,
    /// How often a heartbeat carries the position while only other tables change.
    pub heartbeat: Option<Duration>,
    /// Where the schema history goes: bootstrap servers and topic.
    pub history: Option<(String, String)>,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
}

/// The keys the MySQL source understands.
pub fn keys() -> Vec<ConfigKey> {
    let key = |name, required, default, doc| ConfigKey {
        name,
        required,
        default,
        doc,
    };
    vec![
        key("database.hostname", true, None, "MySQL or MariaDB host"),
        key("database.port", false, Some("3306"), "its port"),
        key(
            "database.user",
            true,
            None,
            "a user with SELECT, RELOAD, REPLICATION SLAVE and REPLICATION CLIENT",
        ),
        key("database.password", false, Some(""), "its password"),
        key(
            "database.server.id",
            false,
            None,
            "the replica server id (random in 5400-6400 when unset)",
        ),
        key(
            "topic.prefix",
            true,
            None,
            "topics are <prefix>.<db>.<table>",
        ),
        key(
            "database.include.list",
            false,
            Some(""),
            "databases to capture, comma-separated regular expressions",
        ),
        key(
            "table.include.list",
            false,
            Some(""),
            "tables to capture as db.table, comma-separated regular expressions",
        ),
        key(
            "snapshot.mode",
            false,
            Some("initial"),
            "initial, initial_only, no_data or when_needed",
        ),
        key(
            "snapshot.fetch.size",
            false,
            Some("2048"),
            "rows per batch while snapshotting",
        ),
        key(
            "max.batch.size",
            false,
            Some("2048"),
            "change events per batch while streaming",
        ),
        key(
            "decimal.handling.mode",
            false,
            Some("precise"),
            "precise, string or double",
        ),
        key(
            "bigint.unsigned.handling.mode",
            false,
            Some("precise"),
            "precise or long",
        ),
        key(
            "tombstones.on.delete",
            false,
            Some("true"),
            "a tombstone after each delete",
        ),
        key(
            "heartbeat.interval.ms",
            false,
            Some("0"),
            "a heartbeat record on __debezium-heartbeat.<prefix> this often while only tables not captured change (0: none)",
        ),
        key(
            "include.schema.changes",
            false,
            Some("true"),
            "DDL statements as events on the topic <prefix>",
        ),
        key(
            "schema.history.internal.kafka.bootstrap.servers",
            false,
            None,
            "Kafka for the schema history",
        ),
        key(
            "schema.history.internal.kafka.topic",
            false,
            None,
            "the schema history topic",
        ),
        key(
            "connect.timeout.ms",
            false,
            Some("30000"),
            "how long to wait for a connection",
        ),
    ]
}

fn bad(key: &str, value: &str, expected: &str) -> ConnectError {
    ConnectError::Config(format!("{key}={value}: expected {expected}"))
}

fn number<T: std::str::FromStr>(
    config: &ConfigMap,
    key: &str,
    default: T,
) -> Result<T, ConnectError> {
    match config.get(key).map(|v| v.trim()) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| bad(key, v, "a number")),
    }
}

fn flag(config: &ConfigMap, key: &str, default: bool) -> Result<bool, ConnectError> {
    match config
        .get(key)
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(bad(key, v, "true or false")),
    }
}

/// Comma-separated regular expressions, each matching a whole name.
fn patterns(config: &ConfigMap, key: &str) -> Result<(Vec<Regex>, Vec<String>), ConnectError> {
    let list: Vec<String> = config
        .get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let regexes = list
        .iter()
        .map(|p| {
            Regex::new(&format!("^(?:{p})$"))
                .map_err(|e| ConnectError::Config(format!("{key}: {p}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok((regexes, list))
}

impl MySqlConfig {
    /// Reads a connector configuration.
    ///
    /// # Errors
    /// A missing key or a bad value, named.
    pub fn from_config(config: &ConfigMap) -> Result<MySqlConfig, ConnectError> {
        let get = |key: &str| {
            config
                .get(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let host = get("database.hostname")
            .ok_or_else(|| ConnectError::Config("database.hostname is required".into()))?;
        let user = get("database.user")
            .ok_or_else(|| ConnectError::Config("database.user is required".into()))?;
        let prefix = get("topic.prefix")
            .or_else(|| get("database.server.name"))
            .ok_or_else(|| ConnectError::Config("topic.prefix is required".into()))?;
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(bad(
                "topic.prefix",
                &prefix,
                "letters, digits, '.', '_' or '-'",
            ));
        }
        let snapshot = match get("snapshot.mode").as_deref().unwrap_or("initial") {
            "initial" => SnapshotMode::Initial,
            "initial_only" => SnapshotMode::InitialOnly,
            "no_data" | "schema_only" | "never" => SnapshotMode::NoData,
            "when_needed" => SnapshotMode::WhenNeeded,
            v => {
                return Err(bad(
                    "snapshot.mode",
                    v,
                    "initial, initial_only, no_data or when_needed",
                ))
            }
        };
        let decimal = match get("decimal.handling.mode").as_deref().unwrap_or("precise") {
            "precise" => DecimalMode::Precise,
            "string" => DecimalMode::String,
            "double" => DecimalMode::Double,
            v => return Err(bad("decimal.handling.mode", v, "precise, string or double")),
        };
        let unsigned_bigint_precise = match get("bigint.unsigned.handling.mode")
            .as_deref()
            .unwrap_or("precise")
        {
            "precise" => true,
            "long" => false,
            v => return Err(bad("bigint.unsigned.handling.mode", v, "precise or long")),
        };
        let history = match (
            get("schema.history.internal.kafka.bootstrap.servers"),
            get("schema.history.internal.kafka.topic"),
        ) {
            (Some(servers), Some(topic)) => Some((servers, topic)),
            (None, None) => None,
            _ => {
                return Err(ConnectError::Config(
                    "schema.history.internal.kafka.bootstrap.servers and \
                     schema.history.internal.kafka.topic go together"
                        .into(),
                ))
            }
        };
        let (databases, _) = patterns(config, "database.include.list")?;
        let (tables, table_list) = patterns(config, "table.include.list")?;
        let server_id =
            match get("database.server.id") {
                Some(v) => v.parse().ok().filter(|id| *id > 0).ok_or_else(|| {
                    bad("database.server.id", &v, "a number from 1 to 4294967295")
                })?,
                None => rand::random_range(5400..6400),
            };
        let fetch_size: usize = number(config, "snapshot.fetch.size", 2048)?;
        let batch_size: usize = number(config, "max.batch.size", 2048)?;
        if fetch_size == 0 || batch_size == 0 {
            return Err(ConnectError::Config(
                "snapshot.fetch.size and max.batch.size must be at least 1".into(),
            ));
        }
        Ok(MySqlConfig {
            host,
            port: number(config, "database.port", 3306)?,
            user,
            password: config.get("database.password").cloned().unwrap_or_default(),
            server_id,
            prefix,
            databases,
            tables,
            table_list,
            snapshot,
            fetch_size,
            batch_size,
            decimal,
            unsigned_bigint_precise,
            tombstones: flag(config, "tombstones.on.delete", true)?,
            schema_changes: flag(config, "include.schema.changes", true)?,
            heartbeat: match number(config, "heartbeat.interval.ms", 0_u64)? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            history,
            connect_timeout: Duration::from_millis(number(config, "connect.timeout.ms", 30_000)?),
        })
    }

    /// Connection options.
    pub fn opts(&self) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .prefer_socket(false)
            .into()
    }

    /// Whether `db.table` is captured.
    pub fn captures(&self, db: &str, table: &str) -> bool {
        if matches!(
            db,
            "mysql" | "information_schema" | "performance_schema" | "sys"
        ) {
            return false;
        }
        if !self.databases.is_empty() && !self.databases.iter().any(|r| r.is_match(db)) {
            return false;
        }
        self.tables.is_empty() || {
            let name = format!("{db}.{table}");
            self.tables.iter().any(|r| r.is_match(&name))
        }
    }

    /// The topic of `db.table`.
    pub fn topic(&self, db: &str, table: &str) -> String {
        format!("{}.{db}.{table}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        let mut c: ConfigMap = [
            ("database.hostname", "localhost"),
            ("database.user", "u"),
            ("topic.prefix", "app"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in pairs {
            c.insert((*k).to_owned(), (*v).to_owned());
        }
        c
    }

    #[test]
    fn include_lists_match_whole_names() {
        let c = MySqlConfig::from_config(&config(&[(
            "table.include.list",
            "shop.orders, shop.item.*",
        )]))
        .unwrap();
        assert!(c.captures("shop", "orders"));
        assert!(c.captures("shop", "items"));
        assert!(!c.captures("shop", "orders_old"));
        assert!(!c.captures("other", "orders"));
        let all = MySqlConfig::from_config(&config(&[])).unwrap();
        assert!(all.captures("any", "t"));
        assert!(!all.captures("mysql", "user"));
        assert_eq!(all.topic("shop", "orders"), "app.shop.orders");
    }

    #[test]
    fn bad_values_are_named() {
        let e = MySqlConfig::from_config(&config(&[("snapshot.mode", "sometimes")])).unwrap_err();
        assert!(e.to_string().contains("snapshot.mode=sometimes"), "{e}");
        let e = MySqlConfig::from_config(&config(&[("database.port", "x")])).unwrap_err();
        assert!(e.to_string().contains("database.port=x"), "{e}");
        let e = MySqlConfig::from_config(&config(&[("table.include.list", "a.(")])).unwrap_err();
        assert!(e.to_string().contains("table.include.list"), "{e}");
        let mut missing = config(&[]);
        missing.remove("database.hostname");
        assert!(MySqlConfig::from_config(&missing).is_err());
    }
}
