#!/usr/bin/env bash
# Install plan benchmark: `airgap install plan` of both MOSIP clusters (every helm release rendered
# by helm 3.8.2, every image through the leak check against the site registry), from the MOSIP
# bundle built against the stand-in upstream of tests/install_mosip.rs. Goal: under a minute.
#
#   bench/install.sh [RUNS]     (default 3; release build)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup install "$@"
runs=${1:-3}
for i in $(seq "$runs"); do
  cargo test --release -q --test install_mosip -- --nocapture 2>&1 | grep -E '^install plan of both clusters' |
    sed "s/^/run $i: /"
done
