//! The `strom` binary's command line.

use std::process::Command;

#[test]
fn quickstart_runs_end_to_end() {
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["quickstart", "--records", "20"])
        .output()
        .expect("run strom");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("quickstart ok: 20 records"), "{stdout}");
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
    runtime.block_on(broker.shutdown()).expect("shutdown");
}
