//! Running a child process to completion with a hard timeout.

use std::fmt;
use std::io::{self, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::wait::wait_until;

/// What a finished (or timed-out and killed) command left behind.
#[derive(Debug)]
pub struct CommandOutput {
    /// The command line, for messages.
    pub command: String,
    /// The exit status; `None` if the command ran past its timeout and was killed.
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stdout (lossily decoded).
    pub stdout: String,
    /// Everything it wrote to stderr (lossily decoded).
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl CommandOutput {
    /// Whether the command exited on its own with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

impl fmt::Display for CommandOutput {
    /// The command, how it ended and its whole output: what a failing test should show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ended = match self.status {
            Some(status) => format!("{status}"),
            None => "timed out and was killed".to_string(),
        };
        writeln!(
            f,
            "$ {}\n  ({ended}, after {:.1?})",
            self.command, self.elapsed
        )?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error just ends the capture: the output so far is still worth showing.
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `cmd` with stdin closed and stdout/stderr captured, killing it (SIGKILL) if it is
/// still running after `timeout`.
///
/// # Errors
///
/// If the command cannot be started (e.g. the program does not exist).
pub fn run_command(cmd: &mut Command, timeout: Duration) -> io::Result<CommandOutput> {
    let command = format!("{cmd:?}");
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start {command}: {e}")))?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);

    let mut status = None;
    let mut wait_error = None;
    wait_until(started + timeout, || match child.try_wait() {
        Ok(Some(s)) => {
            status = Some(s);
            true
        }
        Ok(None) => false,
        Err(e) => {
            wait_error = Some(e);
            true
        }
    });
    if status.is_none() {
        // Timed out (or could not be waited on): make sure it is gone before reading pipes.
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(e) = wait_error {
        return Err(e);
    }
    let collect = |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(CommandOutput {
        command,
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let out = run_command(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.status.and_then(|s| s.code()), Some(3));
        assert!(!out.success());
    }

    #[test]
    fn kills_a_command_past_its_timeout() {
        let out = run_command(
            Command::new("sh").args(["-c", "echo started; exec sleep 30"]),
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(out.status.is_none(), "{out}");
        assert_eq!(out.stdout, "started\n");
        assert!(out.elapsed < Duration::from_secs(10));
    }
}
