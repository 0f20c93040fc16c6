//! Where the third-party peers and the `strom` binary are, and what to do without them.

use std::path::{Path, PathBuf};

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    let testkit = Path::new(env!("CARGO_MANIFEST_DIR"));
    testkit.parent().unwrap_or(testkit).to_path_buf()
}

/// `REPO/.peers`, where `scripts/install-peers.sh` puts the Python venv (`venv/`) and
/// kafkajs (`node/`).
pub fn peers_dir() -> PathBuf {
    repo_root().join(".peers")
}

/// Whether this run is CI's (`CI=true`), where a missing peer is a failure, not a skip.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Returns `path` if it exists; otherwise skips or fails the calling test.
///
/// Locally a missing peer prints `skipping: <name> not installed (run
/// scripts/install-peers.sh)` to stderr and returns `None`, and the caller returns early.
///
/// # Panics
///
/// When the environment has `CI=true` and `path` does not exist: CI must never pass by
/// skipping.
pub fn require_peer(name: &str, path: impl AsRef<Path>) -> Option<PathBuf> {
    let path = path.as_ref();
    if path.exists() {
        return Some(path.to_path_buf());
    }
    assert!(
        !in_ci(),
        "{name} not installed at {} (CI=true, so this fails instead of skipping): \
         run scripts/install-peers.sh",
        path.display()
    );
    eprintln!("skipping: {name} not installed (run scripts/install-peers.sh)");
    None
}

/// The first `name` on `PATH` that is a file, if any.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The `strom` binary built beside the running test executable (`target/<profile>/strom`).
///
/// # Panics
///
/// If the binary is not there, with a message saying to run `cargo build -p strom-cli`.
pub fn strom_bin() -> PathBuf {
    // current_exe() is target/<profile>/deps/NAME-HASH.
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let bin = profile_dir.join(format!("strom{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the strom binary is missing at {}: run `cargo build -p strom-cli` first \
         (scripts/test.sh does)",
        bin.display()
    );
    bin
}
