//! The `strom` binary's command line.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[test]
fn quickstart_runs_end_to_end() {
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["quickstart", "--records", "2000"])
        .output()
        .expect("run strom");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("quickstart ok: 2000 records"), "{stdout}");
    assert!(stdout.contains("in order"), "{stdout}");
}

#[test]
fn bad_config_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args([
            "broker",
            "--listen",
            "127.0.0.1:0",
            "--set",
            "num.partitions=zero",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run strom");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("num.partitions"), "{stderr}");
}

/// Runs `strom topics ...` against `bootstrap` and returns stdout; panics with both streams
/// when it fails and `ok` is set.
fn topics(bootstrap: &str, args: &[&str], ok: bool) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .arg("topics")
        .arg("-b")
        .arg(bootstrap)
        .args(args)
        .output()
        .expect("run strom");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    if ok {
        assert!(
            out.status.success(),
            "strom topics {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
    (out.status.success(), stdout, stderr)
}

#[test]
fn topics_commands_manage_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let broker = runtime
        .block_on(strom_broker::Broker::start(
            strom_broker::BrokerConfig::new(dir.path()),
        ))
        .expect("broker");
    let b = broker.bootstrap();
    let (_, out, _) = topics(
        &b,
        &["create", "orders", "-p", "3", "-c", "retention.ms=60000"],
        true,
    );
    assert!(out.contains("created topic orders"), "{out}");
    let (_, out, _) = topics(&b, &["list"], true);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["orders"]);
    topics(&b, &["add-partitions", "orders", "--total", "4"], true);
    topics(
        &b,
        &["alter", "orders", "--set", "segment.ms=3600000"],
        true,
    );
    let (_, out, _) = topics(&b, &["describe", "orders"], true);
    assert!(out.contains("partitions 4"), "{out}");
    assert!(
        out.contains("retention.ms=60000") && out.contains("segment.ms=3600000"),
        "{out}"
    );
    let (ok, _, err) = topics(&b, &["create", "orders"], false);
    assert!(!ok && err.contains("TOPIC_ALREADY_EXISTS"), "{err}");
    let (ok, _, err) = topics(&b, &["create", "bad", "-c", "retention.ms=soon"], false);
    assert!(!ok && err.contains("retention.ms"), "{err}");
    topics(&b, &["delete", "orders"], true);
    let (_, out, _) = topics(&b, &["list"], true);
    assert!(out.trim().is_empty(), "{out}");
    let (ok, out, err) = topics(&b, &["describe", "orders"], false);
    assert!(
        !ok && out.is_empty() && err.contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{out}{err}"
    );
    runtime.block_on(broker.shutdown()).expect("shutdown");
}

/// An in-process broker for the tests that drive `strom` against it.
struct TestBroker {
    runtime: tokio::runtime::Runtime,
    broker: Option<strom_broker::Broker>,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    fn start() -> TestBroker {
        TestBroker::start_with(|_| {})
    }

    /// A broker with settings changed by `configure`.
    fn start_with(configure: impl FnOnce(&mut strom_broker::BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let mut config = strom_broker::BrokerConfig::new(dir.path());
        configure(&mut config);
        let broker = runtime
            .block_on(strom_broker::Broker::start(config))
            .expect("broker");
        TestBroker {
            runtime,
            broker: Some(broker),
            _dir: dir,
        }
    }

    fn bootstrap(&self) -> String {
        self.broker.as_ref().expect("running").bootstrap()
    }

    fn stop(mut self) {
        if let Some(broker) = self.broker.take() {
            self.runtime.block_on(broker.shutdown()).expect("shutdown");
        }
    }
}

/// Runs `strom` with `args` and `stdin`; returns success, stdout and stderr.
fn strom(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run strom");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for strom");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// As [`strom`], panicking with both streams unless it succeeds; returns stdout.
fn strom_ok(args: &[&str], stdin: &str) -> String {
    let (ok, stdout, stderr) = strom(args, stdin);
    assert!(ok, "strom {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    stdout
}

#[test]
fn produce_and_consume_round_trip() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    strom_ok(&["topics", "-b", &b, "create", "events", "-p", "2"], "");
    let input =
        "user-1:{\"n\":1}\nuser-2:{\"n\":2}\nno key here\nuser-1:{\"n\":3}:x\r\n:empty key\n";
    let (ok, _, stderr) = strom(
        &[
            "produce",
            "events",
            "--bootstrap",
            &b,
            "--key-separator",
            ":",
            "--header",
            "source=test",
            "--header",
            "env=ci",
            "--compression",
            "zstd",
            "--acks",
            "all",
            "--property",
            "linger.ms=1",
        ],
        input,
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("produced 5 record(s) to events"),
        "{stderr}"
    );

    let out = strom_ok(
        &[
            "consume",
            "events",
            "-b",
            &b,
            "--from-beginning",
            "--max-messages",
            "5",
            "--format",
            "%k|%s|%p|%o|%h\\n",
        ],
        "",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    // Per partition: offsets count up from 0, and records keep their input order.
    let mut by_partition: std::collections::BTreeMap<&str, Vec<(&str, &str, i64)>> =
        Default::default();
    for line in &lines {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 5, "{line}");
        assert_eq!(f[4], "source=test,env=ci", "{line}");
        by_partition
            .entry(f[2])
            .or_default()
            .push((f[0], f[1], f[3].parse().expect("offset")));
    }
    let mut all = Vec::new();
    for records in by_partition.values() {
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.2, i as i64, "{out}");
        }
        let positions: Vec<usize> = records
            .iter()
            .map(|r| {
                let expected = [
                    ("user-1", "{\"n\":1}"),
                    ("user-2", "{\"n\":2}"),
                    ("", "no key here"),
                    ("user-1", "{\"n\":3}:x"),
                    ("", "empty key"),
                ];
                expected
                    .iter()
                    .position(|e| (e.0, e.1) == (r.0, r.1))
                    .unwrap_or_else(|| panic!("unexpected record {r:?} in\n{out}"))
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{out}");
        all.extend(positions);
    }
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2, 3, 4], "{out}");
    // Both user-1 records went to one partition.
    let user1: Vec<_> = lines.iter().filter(|l| l.starts_with("user-1|")).collect();
    assert_eq!(user1[0].split('|').nth(2), user1[1].split('|').nth(2));

    // Null and empty keys differ: %K prints -1 for null.
    let out = strom_ok(
        &[
            "consume",
            "events",
            "-b",
            &b,
            "--from-beginning",
            "-e",
            "-f",
            "%K %S %t\\n",
        ],
        "",
    );
    let mut lens: Vec<&str> = out.lines().collect();
    lens.sort_unstable();
    assert_eq!(
        lens,
        [
            "-1 11 events",
            "0 9 events",
            "6 7 events",
            "6 7 events",
            "6 9 events"
        ],
        "{out}"
    );
    broker.stop();
}

/// `ms` since the epoch as RFC 3339 in the zone `offset_minutes` east of UTC.
fn rfc3339(ms: i64, offset_minutes: i64) -> String {
    let local = ms + offset_minutes * 60_000;
    let (days, rest) = (local.div_euclid(86_400_000), local.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let zone = if offset_minutes == 0 {
        "Z".to_owned()
    } else {
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let m = offset_minutes.abs();
        format!("{sign}{:02}:{:02}", m / 60, m % 60)
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}{zone}",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

#[test]
fn consume_from_time_and_offset() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    strom_ok(&["topics", "-b", &b, "create", "timed", "-p", "1"], "");
    strom_ok(&["produce", "timed", "-b", &b], "early-1\nearly-2\n");
    std::thread::sleep(Duration::from_millis(50));
    let middle = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    std::thread::sleep(Duration::from_millis(50));
    strom_ok(
        &["produce", "timed", "-b", &b, "-p", "0"],
        "late-1\nlate-2\n",
    );

    let consume = |extra: &[&str]| {
        let mut args = vec!["consume", "timed", "-b", &b, "-e", "-f", "%o:%s\\n"];
        args.extend_from_slice(extra);
        strom_ok(&args, "")
    };
    let late = "2:late-1\n3:late-2\n";
    assert_eq!(consume(&["--from-time", &rfc3339(middle, 0)]), late);
    assert_eq!(consume(&["--from-time", &rfc3339(middle, 150)]), late);
    assert_eq!(consume(&["--from-time", &rfc3339(middle, -330)]), late);
    assert_eq!(
        consume(&["--from-time", "1970-01-01T00:00:00Z"]),
        "0:early-1\n1:early-2\n2:late-1\n3:late-2\n"
    );
    assert_eq!(consume(&["--from-time", "2999-01-01T00:00:00Z"]), "");
    assert_eq!(
        consume(&["--offset", "1", "--partition", "0"]),
        "1:early-2\n2:late-1\n3:late-2\n"
    );
    assert_eq!(consume(&["--offset", "3"]), "3:late-2\n");
    assert_eq!(consume(&["--offset", "-2"]), late);
    assert_eq!(consume(&[]), "");
    assert_eq!(
        consume(&["--from-beginning", "--max-messages", "1"]),
        "0:early-1\n"
    );
    broker.stop();
}

#[test]
fn consume_follows_new_records() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    strom_ok(&["topics", "-b", &b, "create", "live", "-p", "2"], "");
    strom_ok(&["produce", "live", "-b", &b], "old\n");
    // Without a start option, only records produced after the consumer started show.
    // Once the consumer says where it starts, its positions are fixed at the end.
    let (stdout, _) = strom_after(
        &["consume", "live", "-b", &b, "--max-messages", "2"],
        "consuming live from",
        || {
            strom_ok(
                &["produce", "live", "-b", &b, "-K", "="],
                "a=new-1\nb=new-2\n",
            );
        },
    );
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["new-1", "new-2"]);
    broker.stop();
}

#[test]
fn produce_and_consume_report_bad_input() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    strom_ok(&["topics", "-b", &b, "create", "small", "-p", "1"], "");
    let (ok, _, err) = strom(&["produce", "small", "-b", &b, "--header", "nope"], "x\n");
    assert!(!ok && err.contains("KEY=VALUE"), "{err}");
    let (ok, _, err) = strom(
        &["produce", "small", "-b", &b, "--property", "linger.ms=soon"],
        "x\n",
    );
    assert!(!ok && err.contains("linger.ms"), "{err}");
    // One record too large for max.request.size fails; the others are sent.
    let big = "x".repeat(2000);
    let (ok, _, err) = strom(
        &["produce", "small", "-b", &b, "-X", "max.request.size=1000"],
        &format!("fine\n{big}\nalso fine\n"),
    );
    assert!(!ok, "{err}");
    assert!(
        err.contains("line 2") && err.contains("max.request.size"),
        "{err}"
    );
    assert!(
        err.contains("produced 2 record(s)") && err.contains("1 failed"),
        "{err}"
    );
    let (ok, _, err) = strom(&["consume", "missing", "-b", &b, "-e"], "");
    assert!(!ok && err.contains("missing"), "{err}");
    let (ok, _, err) = strom(
        &["consume", "small", "-b", &b, "--from-time", "yesterday"],
        "",
    );
    assert!(!ok && err.contains("--from-time"), "{err}");
    let (ok, _, err) = strom(&["consume", "small", "-b", &b, "-f", "%q"], "");
    assert!(!ok && err.contains("%q"), "{err}");
    let (ok, _, err) = strom(&["consume", "small", "-b", &b, "-p", "5", "-e"], "");
    assert!(!ok && err.contains("no partition 5"), "{err}");
    let (ok, _, _) = strom(
        &[
            "consume",
            "small",
            "-b",
            &b,
            "--from-beginning",
            "--offset",
            "1",
        ],
        "",
    );
    assert!(!ok);
    broker.stop();
}

/// A broker whose groups rebalance at once (no `group.initial.rebalance.delay.ms`).
fn group_broker() -> TestBroker {
    TestBroker::start_with(|c| c.group_initial_rebalance_delay = Duration::ZERO)
}

/// A running `strom`, and its stderr as far as it was read.
struct Running {
    child: std::process::Child,
    stderr: std::io::BufReader<std::process::ChildStderr>,
}

impl Running {
    /// Starts `strom` with `args` in the background.
    fn spawn(args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run strom");
        let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        Running { child, stderr }
    }

    /// Reads stderr up to the line starting with `prefix`, and returns that line.
    fn wait_for_line(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        while !line.starts_with(prefix) {
            line.clear();
            let n = std::io::BufRead::read_line(&mut self.stderr, &mut line).expect("read stderr");
            assert!(n > 0, "strom exited before printing {prefix:?}");
        }
        line.trim_end().to_owned()
    }

    /// Waits (up to 30 s) for the exit; returns stdout, panicking unless it succeeded.
    fn finish(self) -> String {
        self.finish_with_stderr().0
    }

    /// As [`Running::finish`], with the rest of stderr too.
    fn finish_with_stderr(mut self) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = self.child.wait_with_output().expect("wait");
        let mut stderr = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stderr, &mut stderr);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}\n{stderr}");
        (stdout, stderr)
    }
}

#[test]
fn consume_in_a_group_continues_where_it_stopped() {
    let broker = group_broker();
    let b = broker.bootstrap();
    strom_ok(&["topics", "-b", &b, "create", "jobs", "-p", "2"], "");
    strom_ok(
        &["produce", "jobs", "-b", &b, "-p", "0"],
        "a1\na2\na3\na4\n",
    );
    strom_ok(&["produce", "jobs", "-b", &b, "-p", "1"], "b1\nb2\n");
    let consume = |extra: &[&str]| {
        let mut args = vec![
            "consume",
            "jobs",
            "-b",
            &b,
            "--group",
            "workers",
            "--from-beginning",
            "-f",
            "%s\\n",
        ];
        args.extend_from_slice(extra);
        strom_ok(&args, "")
    };
    let first = consume(&["--max-messages", "3"]);
    let second = consume(&["--exit-at-end"]);
    assert_eq!(first.lines().count(), 3, "{first}");
    // The second run reads exactly what the first did not print, `--from-beginning` or not.
    let mut all: Vec<&str> = first.lines().chain(second.lines()).collect();
    all.sort_unstable();
    assert_eq!(
        all,
        ["a1", "a2", "a3", "a4", "b1", "b2"],
        "{first}--\n{second}"
    );
    assert_eq!(consume(&["--exit-at-end"]), "");
    strom_ok(&["produce", "jobs", "-b", &b, "-p", "1"], "b3\n");
    assert_eq!(consume(&["--exit-at-end"]), "b3\n");

    let (ok, _, err) = strom(
        &[
            "consume",
            "jobs",
            "-b",
            &b,
            "--group",
            "workers",
            "--partition",
            "0",
        ],
        "",
    );
    assert!(!ok && err.contains("--partition"), "{err}");
    let (ok, _, err) = strom(
        &[
            "consume", "jobs", "-b", &b, "-g", "workers", "--offset", "1",
        ],
        "",
    );
    assert!(!ok && err.contains("--offset"), "{err}");
    broker.stop();
}

/// The whitespace-separated fields of the lines of `out` that start with `first`.
fn rows<'a>(out: &'a str, first: &str) -> Vec<Vec<&'a str>> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.first() == Some(&first))
        .collect()
}

#[test]
fn groups_commands_describe_reset_and_delete() {
    let broker = group_broker();
    let b = broker.bootstrap();
    let groups = |args: &[&str]| {
        let mut all = vec!["groups", "-b", &b];
        all.extend_from_slice(args);
        strom(&all, "")
    };
    let groups_ok = |args: &[&str]| {
        let (ok, out, err) = groups(args);
        assert!(ok, "strom groups {args:?}\nstdout:\n{out}\nstderr:\n{err}");
        out
    };
    strom_ok(&["topics", "-b", &b, "create", "ledger", "-p", "2"], "");
    strom_ok(
        &["produce", "ledger", "-b", &b, "-p", "0"],
        "0\n1\n2\n3\n4\n",
    );
    strom_ok(&["produce", "ledger", "-b", &b, "-p", "1"], "0\n1\n2\n");
    let consumed = strom_ok(
        &[
            "consume",
            "ledger",
            "-b",
            &b,
            "-g",
            "auditors",
            "--from-beginning",
            "-e",
        ],
        "",
    );
    assert_eq!(consumed.lines().count(), 8, "{consumed}");
    assert_eq!(groups_ok(&["list"]), "auditors\n");
    assert_eq!(
        rows(&groups_ok(&["list", "--state"]), "auditors"),
        [["auditors", "Empty"]]
    );

    // A live member: described with its partitions; its offsets cannot be changed.
    let mut member = Running::spawn(&[
        "consume",
        "ledger",
        "-b",
        &b,
        "-g",
        "auditors",
        "--max-messages",
        "2",
        "-f",
        "%p:%o\\n",
    ]);
    let started = member.wait_for_line("consuming ledger in group auditors");
    assert!(started.ends_with("from 0@5 1@3"), "{started}");
    let out = groups_ok(&["describe", "auditors"]);
    assert!(
        out.starts_with("group auditors  state Stable  protocol range (consumer)  members 1\n"),
        "{out}"
    );
    let header = rows(&out, "MEMBER-ID");
    assert_eq!(
        header,
        [["MEMBER-ID", "CLIENT-ID", "HOST", "PARTITIONS"]],
        "{out}"
    );
    let member_row: Vec<&str> = out
        .lines()
        .find(|l| l.contains("ledger(0,1)"))
        .unwrap_or_else(|| panic!("no member row in\n{out}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        (member_row[1], member_row[3]),
        ("strom", "ledger(0,1)"),
        "{out}"
    );
    let member_id = member_row[0];
    assert_eq!(
        rows(&out, "ledger"),
        [
            ["ledger", "0", "5", "5", "0", member_id],
            ["ledger", "1", "3", "3", "0", member_id]
        ],
        "{out}"
    );
    let (ok, _, err) = groups(&["reset", "auditors", "--topic", "ledger", "--to-earliest"]);
    assert!(!ok && err.contains("Stable"), "{err}");
    let (ok, _, err) = groups(&["delete", "auditors"]);
    assert!(!ok && err.contains("NON_EMPTY_GROUP"), "{err}");
    strom_ok(&["produce", "ledger", "-b", &b, "-p", "0"], "5\n6\n");
    assert_eq!(member.finish(), "0:5\n0:6\n");

    // Left: lag shows, and the offsets can be moved.
    strom_ok(&["produce", "ledger", "-b", &b, "-p", "1"], "3\n");
    let out = groups_ok(&["describe", "auditors"]);
    assert!(out.starts_with("group auditors  state Empty"), "{out}");
    assert_eq!(
        rows(&out, "ledger"),
        [
            ["ledger", "0", "7", "7", "0", "-"],
            ["ledger", "1", "3", "4", "1", "-"]
        ],
        "{out}"
    );
    let planned = groups_ok(&[
        "reset",
        "auditors",
        "-t",
        "ledger",
        "--to-offset",
        "6",
        "--dry-run",
    ]);
    assert_eq!(
        rows(&planned, "ledger"),
        [["ledger", "0", "6"], ["ledger", "1", "4"]],
        "{planned}"
    );
    let out = groups_ok(&["describe", "auditors"]);
    assert_eq!(
        rows(&out, "ledger")[0][2],
        "7",
        "a dry run changes nothing: {out}"
    );
    groups_ok(&["reset", "auditors", "-t", "ledger", "--to-earliest"]);
    let out = groups_ok(&["describe", "auditors"]);
    assert_eq!(
        rows(&out, "ledger"),
        [
            ["ledger", "0", "0", "7", "7", "-"],
            ["ledger", "1", "0", "4", "4", "-"]
        ],
        "{out}"
    );
    let reset = groups_ok(&["reset", "auditors", "-t", "ledger", "--to-offset", "6"]);
    assert_eq!(
        rows(&reset, "ledger"),
        [["ledger", "0", "6"], ["ledger", "1", "4"]],
        "{reset}"
    );
    let consumed = strom_ok(
        &[
            "consume",
            "ledger",
            "-b",
            &b,
            "-g",
            "auditors",
            "-e",
            "-f",
            "%p:%o:%s\\n",
        ],
        "",
    );
    assert_eq!(consumed, "0:6:6\n", "reads from the reset offsets");
    let future = groups_ok(&[
        "reset",
        "auditors",
        "-t",
        "ledger",
        "--to-datetime",
        "2999-01-01T00:00:00Z",
    ]);
    assert_eq!(
        rows(&future, "ledger"),
        [["ledger", "0", "7"], ["ledger", "1", "4"]]
    );
    let (ok, _, err) = groups(&["reset", "auditors", "-t", "ledger", "--to-datetime", "soon"]);
    assert!(!ok && err.contains("--to-datetime"), "{err}");
    let (ok, _, _) = groups(&["reset", "auditors", "-t", "ledger"]);
    assert!(!ok, "a reset needs a target");

    assert_eq!(
        groups_ok(&["delete", "auditors"]),
        "deleted group auditors\n"
    );
    assert_eq!(groups_ok(&["list"]), "");
    let (ok, _, err) = groups(&["describe", "auditors"]);
    assert!(!ok && err.contains("does not exist"), "{err}");
    let (ok, _, err) = groups(&["delete", "auditors"]);
    assert!(!ok && err.contains("GROUP_ID_NOT_FOUND"), "{err}");
    broker.stop();
}

#[test]
fn cluster_describe_shows_brokers_and_quorum() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    let out = strom_ok(&["cluster", "describe", "-b", &b], "");
    let (host, port) = b.rsplit_once(':').expect("host:port");
    assert!(out.contains("controller: 1\n"), "{out}");
    assert!(out.contains(&format!("     1  {host}:{port}\n")), "{out}");
    assert!(out.contains("metadata quorum: leader 1, epoch "), "{out}");
    assert!(out.contains("  voter    1  log end "), "{out}");
    broker.stop();
}

/// Three in-process brokers, each also a controller of the metadata quorum.
struct TestCluster {
    runtime: tokio::runtime::Runtime,
    brokers: Vec<strom_broker::Broker>,
    _dirs: Vec<tempfile::TempDir>,
}

impl TestCluster {
    fn start() -> TestCluster {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let listeners: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let voters = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{}@{}", i + 1, l.local_addr().expect("address")))
            .collect::<Vec<_>>()
            .join(",");
        let mut brokers = Vec::new();
        let mut dirs = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut config = strom_broker::BrokerConfig::new(dir.path());
            config.node_id = i as i32 + 1;
            config
                .set("controller.quorum.voters", &voters)
                .expect("voters");
            brokers.push(
                runtime
                    .block_on(strom_broker::Broker::start_with_controller_listener(
                        config, listener,
                    ))
                    .expect("broker"),
            );
            dirs.push(dir);
        }
        let cluster = TestCluster {
            runtime,
            brokers,
            _dirs: dirs,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while cluster.brokers.iter().any(|b| b.live_brokers().len() < 3) {
            assert!(
                std::time::Instant::now() < deadline,
                "brokers never registered"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        cluster
    }

    fn bootstrap(&self) -> String {
        self.brokers[0].bootstrap()
    }

    fn stop(self) {
        for broker in self.brokers {
            self.runtime.block_on(broker.shutdown()).expect("shutdown");
        }
    }
}

/// The replicas of each partition as `strom topics describe` printed them.
fn replicas_in(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let replicas = l.split("replicas ").nth(1)?;
            Some(replicas.split("  isr").next()?.to_owned())
        })
        .collect()
}

/// Waits until `strom topics describe` of `topic` satisfies `check` (the broker described
/// from may apply a change a moment after the controller).
fn described_until(bootstrap: &str, topic: &str, check: impl Fn(&str) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, out, _) = topics(bootstrap, &["describe", topic], true);
        if check(&out) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits until the described replicas of `topic` satisfy `check`.
fn replicas_become(bootstrap: &str, topic: &str, check: impl Fn(&[String]) -> bool) {
    described_until(bootstrap, topic, |out| check(&replicas_in(out)));
}

#[test]
fn topics_reassign_moves_partitions_and_elects_leaders() {
    let cluster = TestCluster::start();
    let b = cluster.bootstrap();
    topics(&b, &["create", "moved", "-p", "3", "-r", "1"], true);

    // A dry run prints the plan (Kafka's JSON) and changes nothing.
    let before = replicas_in(&topics(&b, &["describe", "moved"], true).1);
    let (_, plan, _) = topics(
        &b,
        &[
            "reassign",
            "moved",
            "--brokers",
            "2,3",
            "--replication-factor",
            "2",
            "--dry-run",
        ],
        true,
    );
    assert!(
        plan.starts_with("{\"version\":1,\"partitions\":["),
        "{plan}"
    );
    assert_eq!(
        replicas_in(&topics(&b, &["describe", "moved"], true).1),
        before
    );

    // The whole topic onto brokers 2 and 3, two replicas each, waiting until done.
    let (_, out, _) = topics(
        &b,
        &[
            "reassign",
            "moved",
            "--brokers",
            "2,3",
            "--replication-factor",
            "2",
            "--wait",
        ],
        true,
    );
    assert!(out.contains("reassignment complete"), "{out}");
    replicas_become(&b, "moved", |r| r == ["[2, 3]", "[3, 2]", "[2, 3]"]);
    let (_, out, _) = topics(&b, &["reassignments"], true);
    assert!(out.contains("no reassignment in progress"), "{out}");

    // A plan file: partition 1 to broker 1 alone.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plan.json");
    std::fs::write(
        &path,
        r#"{"version":1,"partitions":[{"topic":"moved","partition":1,"replicas":[1]}]}"#,
    )
    .expect("write plan");
    let plan_arg = path.to_str().expect("utf-8 path");
    topics(&b, &["reassign", "--plan", plan_arg, "--wait"], true);
    replicas_become(&b, "moved", |r| r[1] == "[1]");

    // Bad moves are refused with the reason.
    let (ok, _, err) = topics(
        &b,
        &["reassign", "moved", "--partition", "0", "--replicas", "2,9"],
        false,
    );
    assert!(!ok && err.contains("broker 9 is not registered"), "{err}");
    std::fs::write(&path, "{\"partitions\": 3}").expect("write plan");
    let (ok, _, err) = topics(&b, &["reassign", "--plan", plan_arg], false);
    assert!(!ok && err.contains("not a reassignment plan"), "{err}");
    let (ok, _, err) = topics(&b, &["reassign", "moved", "--cancel"], false);
    assert!(!ok && err.contains("NO_REASSIGNMENT_IN_PROGRESS"), "{err}");

    // A move keeps a leader that stays a replica, even when it is not the preferred one:
    // an election hands each partition to its preferred replica, and then none is left.
    let (_, out, _) = topics(&b, &["elect-leaders", "moved"], true);
    assert!(out.contains(" leaders elected"), "{out}");
    let preferred_leads = |out: &str| {
        out.lines()
            .filter(|l| l.contains("replicas ["))
            .all(|line| {
                let leader = line
                    .split("leader")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next());
                let first = line
                    .split("replicas [")
                    .nth(1)
                    .and_then(|r| r.split([',', ']']).next());
                leader == first
            })
    };
    described_until(&b, "moved", preferred_leads);
    let (_, out, _) = topics(&b, &["elect-leaders"], true);
    assert!(out.contains("0 leaders elected"), "{out}");
    cluster.stop();
}

#[test]
fn sql_queries_topics_as_tables_in_three_output_formats() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    strom_ok(&["topics", "-b", &b, "create", "orders", "-p", "2"], "");
    let input = "o1|{\"country\":\"NO\",\"amount\":150}\n\
                 o2|{\"country\":\"SE\",\"amount\":90}\n\
                 o3|{\"country\":\"NO\",\"amount\":40,\"note\":\"a, \\\"quoted\\\" note\"}\n";
    strom_ok(
        &["produce", "orders", "-b", &b, "--key-separator", "|"],
        input,
    );
    let query = "SELECT key, amount, note FROM orders WHERE country = 'NO' ORDER BY key";
    let table = strom_ok(&["sql", "-b", &b, query], "");
    assert!(table.contains("| key | amount | note"), "{table}");
    assert!(table.contains("| o1  | 150    |"), "{table}");
    let json = strom_ok(&["sql", "-b", &b, "-o", "json", query], "");
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(
        lines,
        [
            r#"{"amount":150,"key":"o1","note":null}"#,
            r#"{"amount":40,"key":"o3","note":"a, \"quoted\" note"}"#,
        ],
        "{json}"
    );
    let csv = strom_ok(&["sql", "-b", &b, "-o", "csv", query], "");
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            "key,amount,note",
            "o1,150,",
            "o3,40,\"a, \"\"quoted\"\" note\""
        ],
        "{csv}"
    );
    let count = strom_ok(
        &[
            "sql",
            "-b",
            &b,
            "-o",
            "csv",
            "SELECT count(*) AS n, sum(amount) AS total FROM orders",
        ],
        "",
    );
    assert_eq!(count.lines().collect::<Vec<_>>(), ["n,total", "3,280"]);
    let (ok, _, stderr) = strom(&["sql", "-b", &b, "SELECT nothing FROM orders"], "");
    assert!(!ok);
    assert!(stderr.contains("nothing"), "{stderr}");
    broker.stop();
}

/// Runs strom until it exits (at most 30 s), after `ready` starts a line of its stderr
/// and `then` ran; its stdout and the rest of its stderr.
fn strom_after(args: &[&str], ready: &str, then: impl FnOnce()) -> (String, String) {
    let mut running = Running::spawn(args);
    running.wait_for_line(ready);
    then();
    running.finish_with_stderr()
}

#[test]
fn sql_follows_a_topic_and_creates_streams() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    strom_ok(&["topics", "-b", &b, "create", "events", "-p", "2"], "");
    strom_ok(
        &["produce", "events", "-b", &b, "--key-separator", "|"],
        "e1|{\"level\":\"error\",\"code\":1}\n\
         e2|{\"level\":\"info\",\"code\":2}\n\
         e3|{\"level\":\"error\",\"code\":3}\n",
    );
    // --follow prints what is there, then what arrives.
    let query = "SELECT key, code FROM events WHERE level = 'error'";
    let (out, _) = strom_after(
        &[
            "sql",
            "-b",
            &b,
            "--follow",
            "--max-rows",
            "3",
            "-o",
            "json",
            query,
        ],
        "following events",
        || {
            strom_ok(
                &["produce", "events", "-b", &b, "--key-separator", "|"],
                "e4|{\"level\":\"info\",\"code\":4}\n\
                 e5|{\"level\":\"error\",\"code\":5}\n",
            );
        },
    );
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            r#"{"code":1,"key":"e1"}"#,
            r#"{"code":3,"key":"e3"}"#,
            r#"{"code":5,"key":"e5"}"#
        ],
        "{out}"
    );

    // CREATE STREAM writes the rows to a topic, with an undecodable record
    // dead-lettered.
    strom_ok(&["produce", "events", "-b", &b], "not json\n");
    let statement = format!("CREATE STREAM errors AS {query}");
    let (_, stderr) = strom_after(
        &[
            "sql",
            "-b",
            &b,
            "--max-rows",
            "3",
            "--dead-letter",
            "events-dlq",
            &statement,
        ],
        "writing the rows of events to errors",
        || {},
    );
    assert!(
        stderr.contains("3 written to errors, 1 undecodable"),
        "{stderr}"
    );
    let out = strom_ok(
        &[
            "consume",
            "errors",
            "-b",
            &b,
            "--from-beginning",
            "--max-messages",
            "3",
            "--format",
            "%k %s\\n",
        ],
        "",
    );
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["e1 {\"code\":1}", "e3 {\"code\":3}", "e5 {\"code\":5}"],
        "{out}"
    );
    let dead = strom_ok(
        &[
            "consume",
            "events-dlq",
            "-b",
            &b,
            "--from-beginning",
            "--max-messages",
            "1",
            "--format",
            "%s\\n",
        ],
        "",
    );
    assert_eq!(dead.trim(), "not json");

    // Bad statements are clear errors.
    let (ok, _, stderr) = strom(&["sql", "-b", &b, "CREATE STREAM x SELECT 1"], "");
    assert!(!ok);
    assert!(stderr.contains("expected AS"), "{stderr}");
    let (ok, _, stderr) = strom(
        &[
            "sql",
            "-b",
            &b,
            "--follow",
            "SELECT level, count(*) FROM events GROUP BY level",
        ],
        "",
    );
    assert!(!ok);
    assert!(stderr.contains("tumble"), "{stderr}");
    broker.stop();
}

#[test]
fn connect_standalone_runs_connectors_from_properties_files() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    strom_ok(&["topics", "-b", &b, "create", "lines", "-p", "1"], "");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    std::fs::write(&input, "one\ntwo\nthree\n").expect("write input");
    let worker = dir.path().join("worker.properties");
    std::fs::write(
        &worker,
        format!(
            "# a standalone worker\nbootstrap.servers={b}\noffset.flush.interval.ms=100\n\
             offset.storage.partitions=1\nvalue.converter=org.apache.kafka.connect.storage.StringConverter\n\
             listeners=http://127.0.0.1:0\n"
        ),
    )
    .expect("write worker");
    let source = dir.path().join("source.properties");
    std::fs::write(
        &source,
        format!(
            "name=file-source\nconnector.class=FileStreamSource\ntasks.max=1\nfile={}\ntopic=lines\n",
            input.display()
        ),
    )
    .expect("write source");
    let sink = dir.path().join("sink.properties");
    std::fs::write(
        &sink,
        format!(
            "name=file-sink\nconnector.class=FileStreamSink\nfile={}\ntopics=lines\n",
            output.display()
        ),
    )
    .expect("write sink");
    let args = [
        "connect",
        "standalone",
        worker.to_str().expect("path"),
        source.to_str().expect("path"),
        sink.to_str().expect("path"),
    ];
    let mut running = Running::spawn(&args);
    running.wait_for_line("connector file-sink started");
    let rest = running.wait_for_line("REST API on ");
    let url = rest.trim_start_matches("REST API on ").to_owned();
    let out = strom_ok(
        &[
            "consume",
            "lines",
            "-b",
            &b,
            "--from-beginning",
            "--max-messages",
            "3",
            "-f",
            "%s\\n",
        ],
        "",
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["one", "two", "three"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&output).unwrap_or_default() != "one\ntwo\nthree\n" {
        assert!(
            Instant::now() < deadline,
            "the sink did not write the lines"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Kafka Connect's REST API, asked with curl.
    let curl = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("curl"))
            .find(|c| c.exists())
    });
    assert!(
        curl.is_some() || std::env::var("CI").as_deref() != Ok("true"),
        "curl is not installed (CI=true): run scripts/install-peers.sh"
    );
    if curl.is_none() {
        eprintln!("skipping the REST check: curl not installed (run scripts/install-peers.sh)");
    } else {
        let status = Command::new("curl")
            .args(["-sf", &format!("{url}/connectors/file-source/status")])
            .output()
            .expect("curl");
        let body = String::from_utf8_lossy(&status.stdout);
        assert!(body.contains(r#""state":"RUNNING""#), "{body}");
    }
    // Ctrl-C stops it cleanly.
    let pid = running.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill")
        .success());
    let (_, stderr) = running.finish_with_stderr();
    assert!(stderr.contains("stopping: flushing offsets"), "{stderr}");

    // A connector config without its required keys is refused, naming them.
    std::fs::write(&source, "name=bad\nconnector.class=FileStreamSource\n").expect("write");
    let (ok, _, stderr) = strom(&args[..4], "");
    assert!(!ok);
    assert!(stderr.contains("needs file, topic"), "{stderr}");
    broker.stop();
}

#[test]
fn secured_clusters_take_a_command_config() {
    let certs = strom_testkit::Certs::new("cli ca");
    let keystore = certs.issue("broker", "broker", &["127.0.0.1"]);
    let broker = TestBroker::start_with(|c| {
        c.set("listeners", "SSL://127.0.0.1:0").expect("listeners");
        c.set("ssl.keystore.location", &keystore.both.to_string_lossy())
            .expect("keystore");
    });
    let b = broker.bootstrap();
    let dir = tempfile::tempdir().expect("tempdir");
    let client = dir.path().join("client.properties");
    std::fs::write(
        &client,
        format!(
            "# as for kafka-topics.sh --command-config\nsecurity.protocol=SSL\nssl.ca.location={}\n",
            certs.ca().display()
        ),
    )
    .expect("write client.properties");
    let client = client.to_str().expect("utf-8 path");
    let secured = ["-b", &b, "--command-config", client];
    strom_ok(
        &[&["topics"][..], &secured, &["create", "secret", "-p", "1"]].concat(),
        "",
    );
    strom_ok(
        &[&["produce", "secret"][..], &secured].concat(),
        "one\ntwo\n",
    );
    let out = strom_ok(
        &[
            &["consume", "secret"][..],
            &secured,
            &["--from-beginning", "--exit-at-end"],
        ]
        .concat(),
        "",
    );
    assert_eq!(out, "one\ntwo\n");
    let out = strom_ok(&[&["groups"][..], &secured, &["list"]].concat(), "");
    assert!(!out.contains("error"), "{out}");
    // Without it, plaintext to a TLS listener fails with an error, not a hang.
    let (ok, _, stderr) = strom(&["topics", "-b", &b, "list"], "");
    assert!(!ok && !stderr.is_empty());
    // A file with a key no client knows names it.
    std::fs::write(dir.path().join("bad.properties"), "ssl.bogus=1\n").expect("write");
    let bad = dir.path().join("bad.properties");
    let (ok, _, stderr) = strom(
        &[
            "topics",
            "-b",
            &b,
            "--command-config",
            &bad.to_string_lossy(),
            "list",
        ],
        "",
    );
    assert!(!ok && stderr.contains("ssl.bogus"), "{stderr}");
    broker.stop();
}

#[test]
fn users_add_list_and_delete_scram_credentials() {
    let broker = TestBroker::start_with(|c| {
        c.set("listeners", "SASL_PLAINTEXT://127.0.0.1:0")
            .expect("listeners");
        c.set(
            "sasl.jaas.config",
            r#"PlainLoginModule required user_admin="admin-pw";"#,
        )
        .expect("users");
    });
    let b = broker.bootstrap();
    let dir = tempfile::tempdir().expect("tempdir");
    let properties = |user: &str, password: &str| {
        let path = dir.path().join(format!("{user}.properties"));
        std::fs::write(
            &path,
            format!(
                "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
                 sasl.username={user}\nsasl.password={password}\n"
            ),
        )
        .expect("write properties");
        path.to_string_lossy().into_owned()
    };
    let admin = properties("admin", "admin-pw");
    let as_admin = ["-b", &b, "--command-config", &admin];
    let out = strom_ok(
        &[
            &["users"][..],
            &as_admin,
            &["add-scram", "carol", "--password", "carol-pw"],
        ]
        .concat(),
        "",
    );
    assert!(out.contains("carol: SCRAM-SHA-512 set"), "{out}");
    let out = strom_ok(&[&["users"][..], &as_admin, &["list"]].concat(), "");
    assert!(
        out.contains("carol\tSCRAM-SHA-512 (8192 iterations)"),
        "{out}"
    );
    let carol = properties("carol", "carol-pw");
    strom_ok(
        &["topics", "-b", &b, "--command-config", &carol, "list"],
        "",
    );
    strom_ok(
        &[&["users"][..], &as_admin, &["delete", "carol"]].concat(),
        "",
    );
    let (ok, _, stderr) = strom(
        &["topics", "-b", &b, "--command-config", &carol, "list"],
        "",
    );
    assert!(!ok && stderr.contains("Authentication failed"), "{stderr}");
    let (ok, _, stderr) = strom(
        &[
            &["users"][..],
            &as_admin,
            &[
                "add-scram",
                "dave",
                "--password",
                "x",
                "--mechanism",
                "PLAIN",
            ],
        ]
        .concat(),
        "",
    );
    assert!(
        !ok && stderr.contains("SCRAM-SHA-256 or SCRAM-SHA-512"),
        "{stderr}"
    );
    broker.stop();
}

/// A broker on a SASL_PLAINTEXT listener with an authoriser, where `admin` is a super user
/// and `alice` and `bob` are not, and a `--command-config` file in `dir` for each of them.
/// Its groups rebalance at once.
fn acl_broker(dir: &std::path::Path) -> (TestBroker, [String; 3]) {
    let broker = TestBroker::start_with(|c| {
        c.set("listeners", "SASL_PLAINTEXT://127.0.0.1:0")
            .expect("listeners");
        c.set(
            "sasl.jaas.config",
            r#"PlainLoginModule required username="admin" password="admin-pw"
                user_admin="admin-pw" user_alice="alice-pw" user_bob="bob-pw";"#,
        )
        .expect("users");
        c.set(
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        )
        .expect("authorizer");
        c.set("super.users", "User:admin").expect("super users");
        c.group_initial_rebalance_delay = Duration::ZERO;
    });
    let config = |user: &str| {
        let path = dir.join(format!("{user}.properties"));
        std::fs::write(
            &path,
            format!(
                "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n\
                 sasl.username={user}\nsasl.password={user}-pw\n"
            ),
        )
        .expect("write properties");
        path.to_string_lossy().into_owned()
    };
    let configs = ["admin", "alice", "bob"].map(config);
    (broker, configs)
}

/// The rows of a `strom acls` table, below its header.
fn acl_rows(out: &str) -> Vec<Vec<&str>> {
    let mut lines = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>());
    let header = lines.next().unwrap_or_default();
    assert_eq!(header.first(), Some(&"RESOURCE-TYPE"), "{out}");
    lines.collect()
}

const ALICE_TOPICS: [&str; 7] = [
    "TOPIC",
    "PREFIXED",
    "alice.",
    "User:alice",
    "*",
    "ALL",
    "ALLOW",
];
const ALICE_GROUPS: [&str; 7] = [
    "GROUP",
    "PREFIXED",
    "alice.",
    "User:alice",
    "*",
    "ALL",
    "ALLOW",
];
const BOB_READ: [&str; 7] = [
    "TOPIC", "LITERAL", "shared", "User:bob", "*", "READ", "ALLOW",
];
const BOB_DESCRIBE: [&str; 7] = [
    "TOPIC", "LITERAL", "shared", "User:bob", "*", "DESCRIBE", "ALLOW",
];
const BOB_GROUP: [&str; 7] = [
    "GROUP",
    "LITERAL",
    "bob-group",
    "User:bob",
    "*",
    "READ",
    "ALLOW",
];

/// `add`, `list` and `remove --force` of alice's prefixed ACLs, as `kafka-acls` takes them.
const ALICE_PREFIX: [&str; 10] = [
    "--allow-principal",
    "User:alice",
    "--operation",
    "All",
    "--topic",
    "alice.",
    "--group",
    "alice.",
    "--resource-pattern-type",
    "prefixed",
];

#[test]
fn acls_add_list_and_remove_and_take_effect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, [admin, alice, bob]) = acl_broker(dir.path());
    let b = broker.bootstrap();
    let run = |command: &str, config: &str, args: &[&str], stdin: &str| {
        let secured = [command, "-b", &b, "--command-config", config];
        strom(&[&secured[..], args].concat(), stdin)
    };
    let acls = |config: &str, args: &[&str]| run("acls", config, args, "");
    let acls_ok = |args: &[&str]| {
        let (ok, out, stderr) = acls(&admin, args);
        assert!(ok, "strom acls {args:?}\n{out}{stderr}");
        out
    };

    // As the super user: each add prints the bindings it made.
    let out = acls_ok(&[&["add"][..], &ALICE_PREFIX].concat());
    assert_eq!(acl_rows(&out), [ALICE_TOPICS, ALICE_GROUPS], "{out}");
    let out = acls_ok(&[
        "add",
        "--consumer",
        "--allow-principal",
        "User:bob",
        "--topic",
        "shared",
        "--group",
        "bob-group",
    ]);
    assert_eq!(acl_rows(&out), [BOB_READ, BOB_DESCRIBE, BOB_GROUP], "{out}");
    let every = [
        ALICE_TOPICS,
        BOB_READ,
        BOB_DESCRIBE,
        ALICE_GROUPS,
        BOB_GROUP,
    ];
    assert_eq!(acl_rows(&acls_ok(&["list"])), every);
    let out = acls_ok(&["list", "--principal", "User:alice"]);
    assert_eq!(acl_rows(&out), [ALICE_TOPICS, ALICE_GROUPS], "{out}");
    // A topic named exactly has no ACL of its own; matched, alice's prefix applies to it.
    let out = acls_ok(&["list", "--topic", "alice.orders"]);
    assert!(acl_rows(&out).is_empty(), "{out}");
    let matched = ["list", "--topic", "alice.orders", "--resource-pattern-type"];
    let out = acls_ok(&[&matched[..], &["match"]].concat());
    assert_eq!(acl_rows(&out), [ALICE_TOPICS], "{out}");

    acls_hold_for_alice_and_bob(&b, &admin, &alice, &bob);

    // Only a super user reads or changes ACLs.
    let (ok, _, stderr) = acls(&alice, &["list"]);
    assert!(
        !ok && stderr.contains("CLUSTER_AUTHORIZATION_FAILED"),
        "{stderr}"
    );
    let (ok, _, stderr) = acls(
        &alice,
        &["add", "--allow-principal", "User:alice", "--cluster"],
    );
    assert!(
        !ok && stderr.contains("CLUSTER_AUTHORIZATION_FAILED"),
        "{stderr}"
    );

    // Remove prints what it removed; alice is back to nothing.
    let out = acls_ok(&[&["remove"][..], &ALICE_PREFIX, &["--force"]].concat());
    assert_eq!(acl_rows(&out), [ALICE_TOPICS, ALICE_GROUPS], "{out}");
    assert_eq!(
        acl_rows(&acls_ok(&["list"])),
        [BOB_READ, BOB_DESCRIBE, BOB_GROUP]
    );
    let (ok, _, stderr) = run("topics", &alice, &["create", "alice.more"], "");
    assert!(
        !ok && stderr.contains("TOPIC_AUTHORIZATION_FAILED"),
        "{stderr}"
    );
    broker.stop();
}

/// With alice's prefixed ACLs and bob's consumer ACLs in place: each does what they allow
/// and is refused, with the authorisation error named, what they do not.
fn acls_hold_for_alice_and_bob(b: &str, admin: &str, alice: &str, bob: &str) {
    let run = |command: &str, config: &str, args: &[&str], stdin: &str| {
        let secured = [command, "-b", b, "--command-config", config];
        strom(&[&secured[..], args].concat(), stdin)
    };
    let run_ok = |command: &str, config: &str, args: &[&str], stdin: &str| {
        let (ok, out, stderr) = run(command, config, args, stdin);
        assert!(ok, "strom {command} {args:?}\n{out}{stderr}");
        out
    };
    let refused = |command: &str, config: &str, args: &[&str], error: &str| {
        let (ok, out, stderr) = run(command, config, args, "x\n");
        assert!(
            !ok && stderr.contains(error),
            "strom {command} {args:?}\n{out}{stderr}"
        );
    };
    let from_start = ["--from-beginning", "--exit-at-end"];

    run_ok("topics", alice, &["create", "alice.orders"], "");
    refused(
        "topics",
        alice,
        &["create", "bob.x"],
        "TOPIC_AUTHORIZATION_FAILED",
    );
    run_ok("produce", alice, &["alice.orders"], "hi\n");
    let group = ["alice.orders", "-g", "alice.app"];
    let out = run_ok("consume", alice, &[&group[..], &from_start].concat(), "");
    assert_eq!(out, "hi\n");
    run_ok("topics", admin, &["create", "shared"], "");
    run_ok("produce", admin, &["shared"], "for bob\n");

    // bob sees only his topic, reads it in his group only, and writes nowhere: not even
    // an idempotent producer id, which needs WRITE on some topic.
    assert_eq!(run_ok("topics", bob, &["list"], ""), "shared\n");
    let group = ["shared", "-g", "bob-group"];
    let out = run_ok("consume", bob, &[&group[..], &from_start].concat(), "");
    assert_eq!(out, "for bob\n");
    let group = ["shared", "-g", "alice.app"];
    refused(
        "consume",
        bob,
        &[&group[..], &from_start].concat(),
        "GROUP_AUTHORIZATION_FAILED",
    );
    let alices = ["alice.orders"];
    refused(
        "consume",
        bob,
        &[&alices[..], &from_start].concat(),
        "TOPIC_AUTHORIZATION_FAILED",
    );
    refused("produce", bob, &alices, "CLUSTER_AUTHORIZATION_FAILED");
    let not_idempotent = ["alice.orders", "--property", "enable.idempotence=false"];
    refused(
        "produce",
        bob,
        &not_idempotent,
        "TOPIC_AUTHORIZATION_FAILED",
    );
    refused("produce", bob, &["shared"], "CLUSTER_AUTHORIZATION_FAILED");
}

#[test]
fn acls_need_an_authoriser() {
    let broker = TestBroker::start();
    let (ok, _, stderr) = strom(&["acls", "-b", &broker.bootstrap(), "list"], "");
    assert!(!ok && stderr.contains("SECURITY_DISABLED"), "{stderr}");
    broker.stop();
}

#[test]
fn quotas_are_altered_and_described_per_entity() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    let quotas = |args: &[&str]| strom(&[&["quotas", "-b", &b][..], args].concat(), "");
    let quotas_ok = |args: &[&str]| strom_ok(&[&["quotas", "-b", &b][..], args].concat(), "");
    assert_eq!(
        quotas_ok(&[
            "alter",
            "--user",
            "alice",
            "--add",
            "producer_byte_rate=1048576,request_percentage=50",
        ]),
        "quotas of user=alice altered\n"
    );
    quotas_ok(&[
        "alter",
        "--user",
        "alice",
        "--client-id",
        "app",
        "--add",
        "consumer_byte_rate=4096",
    ]);
    quotas_ok(&[
        "alter",
        "--client-id-default",
        "--add",
        "consumer_byte_rate=2048",
    ]);
    quotas_ok(&[
        "alter",
        "--user-default",
        "--add",
        "producer_byte_rate=1024",
    ]);

    assert_eq!(
        quotas_ok(&["describe"]),
        "client-id=<default>\tconsumer_byte_rate=2048\n\
         user=<default>\tproducer_byte_rate=1024\n\
         user=alice\tproducer_byte_rate=1048576\n\
         user=alice\trequest_percentage=50\n\
         user=alice,client-id=app\tconsumer_byte_rate=4096\n"
    );
    assert_eq!(
        quotas_ok(&["describe", "--user", "alice", "--client-id", "app"]),
        "user=alice,client-id=app\tconsumer_byte_rate=4096\n"
    );
    assert_eq!(
        quotas_ok(&["describe", "--client-id-default"]),
        "client-id=<default>\tconsumer_byte_rate=2048\n"
    );

    quotas_ok(&["alter", "--user", "alice", "--delete", "request_percentage"]);
    assert_eq!(
        quotas_ok(&["describe", "--user", "alice"]),
        "user=alice\tproducer_byte_rate=1048576\n"
    );
    assert_eq!(quotas_ok(&["describe", "--user", "bob"]), "");

    let (ok, _, stderr) = quotas(&["alter", "--user", "alice", "--add", "bogus_rate=1"]);
    assert!(
        !ok && stderr.contains("bogus_rate") && stderr.contains("INVALID_REQUEST"),
        "{stderr}"
    );
    let (ok, _, stderr) = quotas(&["alter", "--client-id", "x", "--add", "producer_byte_rate=0"]);
    assert!(!ok && stderr.contains("positive"), "{stderr}");
    let (ok, _, stderr) = quotas(&["alter", "--add", "producer_byte_rate=1"]);
    assert!(!ok && stderr.contains("name an entity"), "{stderr}");
    assert_eq!(
        quotas_ok(&["describe", "--client-id", "x"]),
        "",
        "a refused alter changes nothing"
    );
    broker.stop();
}
