//! Connecting to the server and checking that change capture can work: the binary log on
//! in ROW format with full row images, the captured tables present, the resume position
//! not purged.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use strom_connect_api::ConnectError;

use crate::config::MySqlConfig;
use crate::envelope::Position;

/// A connection, and what kind of server it is on.
pub struct Server {
    /// The connection.
    pub conn: Conn,
    /// MariaDB rather than MySQL.
    pub mariadb: bool,
}

fn failed(what: &str, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Failed(format!("{what}: {e}"))
}

/// A global variable's value (`None` when the server has no such variable).
pub async fn variable(conn: &mut Conn, name: &str) -> Result<Option<String>, ConnectError> {
    let row: Option<(String, String)> = conn
        .exec_first("SHOW GLOBAL VARIABLES WHERE Variable_name = ?", (name,))
        .await
        .map_err(|e| failed(&format!("reading {name}"), e))?;
    Ok(row.map(|(_, v)| v))
}

impl Server {
    /// Connects, with an error that names the server and user.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses the user.
    pub async fn connect(config: &MySqlConfig) -> Result<Server, ConnectError> {
        let what = format!(
            "cannot connect to MySQL at {}:{} as {}",
            config.host, config.port, config.user
        );
        let mut conn = tokio::time::timeout(config.connect_timeout, Conn::new(config.opts()))
            .await
            .map_err(|_| failed(&what, "timed out"))?
            .map_err(|e| failed(&what, e))?;
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| failed(&what, e))?;
        let mariadb = version.is_some_and(|v| v.contains("MariaDB"));
        // Dates and times are read in UTC, as the binlog has TIMESTAMPs.
        conn.query_drop("SET SESSION time_zone = '+00:00'")
            .await
            .map_err(|e| failed(&what, e))?;
        Ok(Server { conn, mariadb })
    }

    /// Checks that the binlog can be read for change capture.
    ///
    /// # Errors
    /// The binlog off, not in ROW format, or without full row images.
    pub async fn check_binlog(&mut self, config: &MySqlConfig) -> Result<(), ConnectError> {
        let at = format!("{}:{}", config.host, config.port);
        let log_bin = variable(&mut self.conn, "log_bin").await?;
        if !matches!(log_bin.as_deref(), Some("ON" | "1")) {
            return Err(ConnectError::Failed(format!(
                "the binary log is off on {at} (log_bin={}): start the server with \
                 --log-bin and --binlog-format=ROW, or use the query-based source",
                log_bin.as_deref().unwrap_or("unset")
            )));
        }
        let format = variable(&mut self.conn, "binlog_format").await?;
        if format.as_deref() != Some("ROW") {
            return Err(ConnectError::Failed(format!(
                "binlog_format is {} on {at}: change capture needs ROW",
                format.as_deref().unwrap_or("unset")
            )));
        }
        if let Some(image) = variable(&mut self.conn, "binlog_row_image").await? {
            if image != "FULL" {
                return Err(ConnectError::Failed(format!(
                    "binlog_row_image is {image} on {at}: change capture needs FULL"
                )));
            }
        }
        if variable(&mut self.conn, "log_bin_compress")
            .await?
            .as_deref()
            == Some("ON")
        {
            return Err(ConnectError::Failed(format!(
                "log_bin_compress is ON on {at}: compressed row events cannot be read; \
                 turn it off"
            )));
        }
        match variable(&mut self.conn, "binlog_row_metadata")
            .await?
            .as_deref()
        {
            Some("FULL") | None => {}
            Some(other) => tracing::warn!(
                server = %at,
                binlog_row_metadata = other,
                "the binlog does not name columns: rows written before a DDL statement \
                 that the connector has not reached yet cannot be read; set \
                 binlog_row_metadata=FULL"
            ),
        }
        Ok(())
    }

    /// The binlog files the server still has, oldest first.
    ///
    /// # Errors
    /// Query failures (the user lacks REPLICATION CLIENT, say).
    pub async fn binary_logs(&mut self) -> Result<Vec<String>, ConnectError> {
        let rows: Vec<Row> = self
            .conn
            .query("SHOW BINARY LOGS")
            .await
            .map_err(|e| failed("SHOW BINARY LOGS", e))?;
        Ok(rows
            .into_iter()
            .filter_map(|mut r| r.take::<String, _>(0))
            .collect())
    }

    /// The end of the binlog now.
    ///
    /// # Errors
    /// Query failures.
    pub async fn current_position(&mut self) -> Result<Position, ConnectError> {
        let mut row: Option<Row> = self
            .conn
            .query_first("SHOW MASTER STATUS")
            .await
            .ok()
            .flatten();
        if row.is_none() {
            // MySQL 8.4 renamed it.
            row = self
                .conn
                .query_first("SHOW BINARY LOG STATUS")
                .await
                .map_err(|e| failed("SHOW BINARY LOG STATUS", e))?;
        }
        let mut row = row.ok_or_else(|| {
            ConnectError::Failed("SHOW MASTER STATUS is empty: is the binary log on?".into())
        })?;
        let file: String = row
            .take(0)
            .ok_or_else(|| ConnectError::Failed("SHOW MASTER STATUS has no file".into()))?;
        let pos: u64 = row
            .take(1)
            .ok_or_else(|| ConnectError::Failed("SHOW MASTER STATUS has no position".into()))?;
        let gtid = if self.mariadb {
            self.conn
                .exec_first::<String, _, _>("SELECT BINLOG_GTID_POS(?, ?)", (&file, pos))
                .await
                .ok()
                .flatten()
        } else {
            row.take::<Option<String>, _>(4).flatten()
        };
        Ok(Position {
            file,
            pos,
            skip: 0,
            gtid: gtid.filter(|g| !g.is_empty()),
        })
    }

    /// The captured tables as (database, table), checking that each literal entry of
    /// `table.include.list` names a table.
    ///
    /// # Errors
    /// An entry that matches no table, or query failures.
    pub async fn tables(
        &mut self,
        config: &MySqlConfig,
    ) -> Result<Vec<(String, String)>, ConnectError> {
        let all: Vec<(String, String)> = self
            .conn
            .query(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
            )
            .await
            .map_err(|e| failed("listing tables", e))?;
        for entry in &config.table_list {
            let literal = entry
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '\\' | '.'));
            let name = entry.replace("\\.", ".");
            if literal && !all.iter().any(|(db, t)| format!("{db}.{t}") == name) {
                return Err(ConnectError::Failed(format!(
                    "table.include.list names {name}, which does not exist on {}:{}",
                    config.host, config.port
                )));
            }
        }
        Ok(all
            .into_iter()
            .filter(|(db, t)| config.captures(db, t))
            .collect())
    }
}
