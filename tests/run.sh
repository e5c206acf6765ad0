#!/usr/bin/env bash
# Every test, on a fresh machine or a warm one: installs and caches the real peers
# (tests/tools/install.sh), then runs the whole workspace's tests, end-to-end tier included.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
start=$(date +%s)
bash tests/tools/install.sh
echo "peers ready after $(( $(date +%s) - start ))s"
cargo test --workspace --no-fail-fast -- --test-threads=2
echo "all tests done after $(( $(date +%s) - start ))s"
