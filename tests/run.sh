#!/usr/bin/env bash
# Every test, on a fresh machine or a warm one: installs and caches the real peers
# (tests/tools/install.sh), then checks formatting, runs clippy (warnings are errors) and the whole
# workspace's tests, end-to-end tier included.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
start=$(date +%s)
bash tests/tools/install.sh
echo "peers ready after $(( $(date +%s) - start ))s"
# Lints first: a warning fails the run before an hour of tests is spent.
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast -- --test-threads=2
echo "all tests done after $(( $(date +%s) - start ))s"
