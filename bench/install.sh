#!/usr/bin/env bash
# Install plan benchmark: `airgap install plan` of both MOSIP clusters (every helm release rendered
# by helm 3.8.2, every image through the leak check against the site registry, then the check that
# every object can start, against the site file's Kubernetes version since no cluster answers),
# and the same with `--no-check`, from the MOSIP bundle built against the stand-in upstream of
# tests/install_mosip.rs. Goal: under a minute with the check. The bundle is built once; then
# plan runs RUNS times each way (the ignored test `plan_benchmark`).
#
#   bench/install.sh [RUNS]     (default 3; release build)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup install "$@"
runs=${1:-3}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
AIRGAP_BENCH_RUNS=$runs cargo test --release -q --test install_mosip -- --ignored plan_benchmark --nocapture 2>&1 |
  grep -E '^install plan of both clusters' | awk '{ print "run " int((NR + 1) / 2) ": " $0 }'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
