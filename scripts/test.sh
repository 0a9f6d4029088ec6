#!/usr/bin/env bash
# The project's test command: prepare the environment (Docker, proxies,
# images, restic 0.14 + 0.18), then fmt, clippy and the full test suite.
# Extra arguments are passed to `cargo test --all-targets`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="/root/.cargo/bin:${HOME:-/root}/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "[omk-test] ERROR: cargo not found (looked in PATH and /root/.cargo/bin)" >&2; exit 1; }

bash "$ROOT/scripts/setup-test-env.sh"
# shellcheck source=/dev/null
source "$ROOT/target/omk-test-env.sh"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test --all-targets $*"
cargo test --all-targets "$@"
