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
