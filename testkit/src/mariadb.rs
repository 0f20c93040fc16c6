//! A MariaDB (or MySQL) server of a test's own: a temporary data directory, the binary log
//! on (`ROW` format, server id 1), listening on a free port of 127.0.0.1 and on a socket
//! in that directory. Tests that need change capture start one instead of assuming the
//! machine's server has a binlog.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::peers::{find_in_path, in_ci};
use crate::wait::wait_until;

/// The account tests connect with (all privileges, replication included).
pub const MARIADB_USER: &str = "strom";
/// Its password.
pub const MARIADB_PASSWORD: &str = "strom-test";

/// A running server; dropping it kills it and removes its data.
#[derive(Debug)]
pub struct MariaDb {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    client: PathBuf,
}

/// A binary from PATH or the sbin directories (where Debian puts `mariadbd`).
fn binary(names: &[&str]) -> Option<PathBuf> {
    names.iter().find_map(|name| {
        find_in_path(name).or_else(|| {
            ["/usr/sbin", "/usr/local/sbin"]
                .iter()
                .map(|dir| Path::new(dir).join(name))
                .find(|p| p.exists())
        })
    })
}

impl MariaDb {
    /// Starts a server, or `None` (with the reason printed) when no server is installed;
    /// under `CI=true` a missing server is a failure instead.
    ///
    /// # Errors
    /// When the server is installed but does not start; the error has its log's tail.
    pub fn start() -> io::Result<Option<MariaDb>> {
        MariaDb::start_with(true)
    }

    /// Like [`MariaDb::start`], with the binary log on or off (for tests of what a
    /// change-capture client says when it is off).
    ///
    /// # Errors
    /// When the server is installed but does not start; the error has its log's tail.
    pub fn start_with(binlog: bool) -> io::Result<Option<MariaDb>> {
        let (Some(server), Some(install), Some(client)) = (
            binary(&["mariadbd", "mysqld"]),
            binary(&["mariadb-install-db", "mysql_install_db"]),
            binary(&["mariadb", "mysql"]),
        ) else {
            assert!(
                !in_ci(),
                "no MariaDB server installed (CI=true): run scripts/install-peers.sh"
            );
            eprintln!("skipping: no MariaDB server installed (run scripts/install-peers.sh)");
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let user = whoami();
        // Temporary tables in a directory of its own: two servers installing at once
        // in one /tmp collide.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp)?;
        let installed = Command::new(&install)
            .env("TMPDIR", &tmp)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--user={user}"))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        if !installed.status.success() {
            return Err(io::Error::other(format!(
                "{} failed: {}",
                install.display(),
                String::from_utf8_lossy(&installed.stderr)
            )));
        }
        // A free port: bound and released, then given to the server.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = dir.path().join("mariadbd.log");
        let child = Command::new(&server)
            .env("TMPDIR", &tmp)
            .arg("--no-defaults")
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--user={user}"))
            .arg("--server-id=1")
            .args(if binlog {
                &[
                    "--log-bin=binlog",
                    "--binlog-format=ROW",
                    "--binlog-row-metadata=FULL",
                ][..]
            } else {
                &["--skip-log-bin"][..]
            })
            .arg("--innodb-buffer-pool-size=64M")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut db = MariaDb {
            child,
            port,
            dir,
            client,
        };
        let up = wait_until(Instant::now() + Duration::from_secs(60), || {
            db.root_sql("SELECT 1").is_ok()
        });
        if !up || db.child.try_wait()?.is_some() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
            return Err(io::Error::other(format!("mariadbd did not start: {tail}")));
        }
        db.root_sql(&format!(
            "CREATE USER '{MARIADB_USER}'@'%' IDENTIFIED BY '{MARIADB_PASSWORD}'; \
             GRANT ALL PRIVILEGES ON *.* TO '{MARIADB_USER}'@'%' WITH GRANT OPTION;"
        ))?;
        Ok(Some(db))
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://strom:...@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!(
            "mysql://{MARIADB_USER}:{MARIADB_PASSWORD}@127.0.0.1:{}",
            self.port
        )
    }

    /// Runs `sql` as root through the socket with the command-line client; its output
    /// (rows tab-separated, no column names).
    ///
    /// # Errors
    /// The client's error message.
    pub fn root_sql(&self, sql: &str) -> io::Result<String> {
        let out = Command::new(&self.client)
            .arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .args(["-uroot", "--batch", "--skip-column-names", "-e", sql])
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(io::Error::other(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The user the server runs as (it refuses root unless told so).
fn whoami() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_of_its_own_has_the_binary_log_in_row_format() {
        let Some(db) = MariaDb::start().unwrap() else {
            return;
        };
        let vars = db
            .root_sql("SHOW VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'port')")
            .unwrap();
        assert!(vars.contains("log_bin\tON"), "{vars}");
        assert!(vars.contains("binlog_format\tROW"), "{vars}");
        assert!(vars.contains(&format!("port\t{}", db.port())), "{vars}");
        assert!(db.root_sql("SELECT nonsense FROM nowhere").is_err());
        let users = db.root_sql("SELECT user FROM mysql.user").unwrap();
        assert!(users.contains(MARIADB_USER), "{users}");
    }
}
