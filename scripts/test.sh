#!/usr/bin/env bash
# The whole test suite: third-party peers, the CLI binary the crash tests spawn, then every
# crate's tests. Extra arguments go to `cargo test --workspace` (e.g. `-- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-peers.sh
cargo build -p strom-cli
cargo test --workspace "$@"
