//! The `strom broker` binary as a child process: for tests that need a real process to
//! SIGKILL, or the CLI's own start-up path.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::peers::strom_bin;
use crate::wait::wait_until;

/// The exact prefix of the first line `strom broker` prints on stdout.
const LISTENING_PREFIX: &str = "strom broker listening on ";
/// How long a broker may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `strom broker --listen 127.0.0.1:0 --data-dir DIR` process.
///
/// Its stderr (the logs) goes to a file, see [`BrokerProcess::log`]. Dropping it kills the
/// process (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct BrokerProcess {
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
}

impl BrokerProcess {
    /// Starts [`strom_bin`] on an ephemeral port with `data_dir`, logging to `log_path`
    /// (appended to, so a restarted broker's log follows the previous one), and waits for
    /// the `strom broker listening on 127.0.0.1:PORT` line.
    ///
    /// # Errors
    ///
    /// If the process cannot start, exits, or prints something else first; the error
    /// includes the tail of its log.
    ///
    /// # Panics
    ///
    /// If the binary is missing (see [`strom_bin`]).
    pub fn start(data_dir: &Path, log_path: &Path) -> io::Result<BrokerProcess> {
        BrokerProcess::start_with(data_dir, log_path, "127.0.0.1", &[])
    }

    /// As [`BrokerProcess::start`], listening on an ephemeral port of `host` (another
    /// loopback address such as `127.0.0.2`, for one broker of a cluster per address) and
    /// with `extra` arguments after the others (`--node-id`, `--controllers`, ...).
    ///
    /// # Errors
    /// As [`BrokerProcess::start`].
    pub fn start_with(
        data_dir: &Path,
        log_path: &Path,
        host: &str,
        extra: &[String],
    ) -> io::Result<BrokerProcess> {
        BrokerProcess::start_on(data_dir, log_path, &format!("{host}:0"), extra)
    }

    /// As [`BrokerProcess::start_with`], listening on `listen` (`host:port`): a broker
    /// restarted where it was, as a real one would be.
    ///
    /// # Errors
    /// As [`BrokerProcess::start`].
    pub fn start_on(
        data_dir: &Path,
        log_path: &Path,
        listen: &str,
        extra: &[String],
    ) -> io::Result<BrokerProcess> {
        let log = File::options().create(true).append(true).open(log_path)?;
        let mut child = Command::new(strom_bin())
            .args(["broker", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let Some(stdout) = child.stdout.take() else {
            return Err(io::Error::other("no stdout pipe for the broker"));
        };
        let first_line = read_first_line(stdout);
        let mut process = BrokerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_path: log_path.to_path_buf(),
        };
        let parsed = match first_line.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line
                .trim_end()
                .strip_prefix(LISTENING_PREFIX)
                .and_then(|addr| addr.parse::<SocketAddr>().ok())
                .ok_or_else(|| format!("unexpected first stdout line {line:?}")),
            Ok(Err(e)) => Err(format!("reading its stdout: {e}")),
            Err(_) => Err(format!("no listening line within {START_TIMEOUT:?}")),
        };
        match parsed {
            Ok(addr) => {
                process.addr = addr;
                Ok(process)
            }
            Err(why) => Err(io::Error::other(format!(
                "strom broker did not start: {why}\n--- broker log ---\n{}",
                process.log()
            ))),
        }
    }

    /// The address the broker listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, for a client's `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the broker with SIGKILL (no chance to flush or clean up) and reaps it.
    ///
    /// # Errors
    ///
    /// If the signal cannot be sent or the process cannot be waited on.
    pub fn kill(&mut self) -> io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(|_| ())
    }

    /// Asks the broker to shut down cleanly (SIGTERM) and waits up to `timeout` for it.
    ///
    /// # Errors
    ///
    /// If the signal cannot be sent, or the broker is still running after `timeout` (it is
    /// then killed with SIGKILL).
    pub fn terminate(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "kill -TERM {} failed: {status}",
                self.pid()
            )));
        }
        let mut exit = None;
        wait_until(Instant::now() + timeout, || {
            exit = self.child.try_wait().ok().flatten();
            exit.is_some()
        });
        match exit {
            Some(status) => Ok(status),
            None => {
                self.kill()?;
                Err(io::Error::other(format!(
                    "strom broker did not stop within {timeout:?} of SIGTERM\n--- broker log ---\n{}",
                    self.log()
                )))
            }
        }
    }

    /// The broker's stderr so far (its last 20,000 bytes), for failure messages.
    pub fn log(&self) -> String {
        read_tail(&self.log_path, 20_000)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads the first line of `stdout` on a thread, then keeps draining it so the broker
/// never blocks on a full pipe.
fn read_first_line(stdout: impl Read + Send + 'static) -> mpsc::Receiver<io::Result<String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let first = reader.read_line(&mut line).map(|_| line);
        let _ = tx.send(first);
        let _ = io::copy(&mut reader, &mut io::sink());
    });
    rx
}

fn read_tail(path: &Path, max_bytes: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max_bytes);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
