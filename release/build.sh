#!/usr/bin/env bash
# The portable airgap: a stripped linux/amd64 binary that starts on glibc 2.17 and later (RHEL 7
# and every newer distribution), linked by zig against glibc 2.17's symbols (cargo-zigbuild).
#
#   release/build.sh            # writes dist/airgap-linux-amd64
#   release/build.sh OUT_DIR    # writes OUT_DIR/airgap-linux-amd64
#
# zig and cargo-zigbuild come from PyPI, pinned, into a virtualenv kept in the tools cache
# ($AIRGAP_TOOLS_DIR, default .cache/tools/release-venv). The build goes into the usual target
# folder under x86_64-unknown-linux-gnu/dist/. The host target is all rustup needs: the glibc
# version is a suffix cargo-zigbuild reads, not a target of its own.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/dist}
ZIGLANG=0.17.1
CARGO_ZIGBUILD=0.24.1
TARGET=x86_64-unknown-linux-gnu
GLIBC=2.17
NAME=airgap-linux-amd64

TOOLS=${AIRGAP_TOOLS_DIR:-$ROOT/.cache/tools}
VENV=$TOOLS/release-venv
KEY="ziglang-$ZIGLANG-cargo-zigbuild-$CARGO_ZIGBUILD"
if [[ $(cat "$VENV/stamp" 2>/dev/null) != "$KEY" ]]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check -q "ziglang==$ZIGLANG" "cargo-zigbuild==$CARGO_ZIGBUILD"
  echo "$KEY" >"$VENV/stamp"
fi
# cargo-zigbuild runs `python3 -m ziglang` when no zig is on PATH: the virtualenv's python has it.
export PATH="$VENV/bin:$HOME/.cargo/bin:$PATH"

cd "$ROOT"
cargo zigbuild --locked --profile dist -p airgap --bin airgap --target "$TARGET.$GLIBC"
mkdir -p "$OUT"
install -m 755 "${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/dist/airgap" "$OUT/$NAME"
echo "$OUT/$NAME: $(stat -c %s "$OUT/$NAME") bytes, glibc $GLIBC and later"
