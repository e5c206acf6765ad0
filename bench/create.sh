#!/usr/bin/env bash
# Benchmark of `airgap bundle create` against skopeo fetching the same images from the same upstream:
# Debian's docker-registry (CNCF distribution 2.8) on 127.0.0.1, seeded with a generated image set.
#   airgap: bundle create SPEC --cache FRESH -o OUT   (images named registry.bench.example/..., mirrored
#           to the local upstream through the spec's `mirrors`)
#   peer:   skopeo copy --all docker://... oci:LAYOUT:REF for each image, one after the other, into
#           one OCI layout (what the README's pack example does; skopeo 1.9's sync cannot write oci:)
# airgap writes more than skopeo (compressed parts, SHA256SUMS, SBOMs), so the table also gives
# skopeo followed by `airgap bundle pack` of its layout: the same end product by the other road.
# Usage: bench/create.sh [GIB | --help] (default 1.5; RUNS=3 runs each, median) — writes docs/benchmarks/create.md
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup create "$@"
gib=${1:-1.5}
runs=${RUNS:-3}
port=5321

echo "seeding the upstream with a ${gib} GiB image set"
"$layout_bin" "$work/layout" "$gib" 2>/dev/null
"$bin" bundle pack "$work/layout" -o "$work/seed" >/dev/null
cat > "$work/dist.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/dist}}
http: {addr: 127.0.0.1:$port}
EOF
docker-registry serve "$work/dist.yml" >"$work/dist.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.2; done
"$bin" registry push "$work/seed" --to 127.0.0.1:$port --plain-http >/dev/null
rm -rf "$work/seed"
# Repositories as the upstream holds them (docker.io/bench/image-NNNN), tag 1.0.
repos=$(grep -o '"org.opencontainers.image.ref.name":"[^"]*"' "$work/layout/index.json" | sed 's/.*:"\(.*\):1.0"/\1/')
images=$(wc -w <<<"$repos")
layer_bytes=$(du -sb "$work/layout/blobs" | cut -f1)
rm -rf "$work/layout"
{
  echo "images:"
  for r in $repos; do echo "  - registry.bench.example/$r:1.0"; done
  echo "mirrors:"
  echo "  registry.bench.example: http://127.0.0.1:$port"
} > "$work/spec.yaml"

quiet() { for _ in $(seq 6); do awk '{exit !($1 < 2)}' /proc/loadavg && break; sleep 10; done; cut -d' ' -f1 /proc/loadavg; }
# Wall seconds and peak RSS (KiB) of one command, left in $work/time; a failing command stops the script.
timed() { /usr/bin/time -o "$work/time" -f '%e %M' "$@" >/dev/null 2>>"$work/err.log"; }
median() { sort -n | sed -n "$(( (runs + 1) / 2 ))p"; }

a_s=() a_m=() k_s=() k_m=() p_s=() loads=()
for n in $(seq "$runs"); do
  loads+=("$(quiet)")
  echo "run $n: airgap bundle create"
  rm -rf "$work/out" "$work/cache"
  timed "$bin" bundle create "$work/spec.yaml" --cache "$work/cache" -o "$work/out" --json; read -r s m < "$work/time"
  a_s+=("$s") a_m+=("$m")
  echo "run $n: skopeo copy --all, $images images"
  rm -rf "$work/oci" "$work/packed"
  total=0 peak=0
  for r in $repos; do
    timed skopeo copy -q --all --src-tls-verify=false \
      "docker://127.0.0.1:$port/$r:1.0" "oci:$work/oci:registry.bench.example/$r:1.0"
    read -r s m < "$work/time"
    total=$(echo "$total + $s" | bc); if (( m > peak )); then peak=$m; fi
  done
  k_s+=("$total") k_m+=("$peak")
  timed "$bin" bundle pack "$work/oci" -o "$work/packed"; read -r s _ < "$work/time"
  p_s+=("$(echo "$total + $s" | bc)")
done
# airgap's bundle holds every image as the upstream serves it (same manifest digest); count the
# images whose manifest skopeo rewrote on the way (it re-serialises some, changing their digest).
rewritten=0
for r in $repos; do
  d=$(curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$port/v2/$r/manifests/1.0" |
    tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" {print $2}')
  [[ -n $d ]] && grep -q "$d" "$work/out/bundle.lock.json" || { echo "airgap's bundle lacks $r@$d" >&2; exit 1; }
  grep -q "$d" "$work/oci/index.json" || rewritten=$((rewritten + 1))
done
A=$(printf '%s\n' "${a_s[@]}" | median); AM=$(printf '%s\n' "${a_m[@]}" | sort -n | tail -1)
K=$(printf '%s\n' "${k_s[@]}" | median); KM=$(printf '%s\n' "${k_m[@]}" | sort -n | tail -1)
P=$(printf '%s\n' "${p_s[@]}" | median)
ratio() { echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; }
mib() { echo "scale=1; $1 / 1024" | bc; }
mkdir -p docs/benchmarks
cat > docs/benchmarks/create.md <<DOC
# Bundle create benchmark

Made by \`bench/create.sh $gib\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo);
1-minute load before each of the $runs runs: ${loads[*]} (the machine is shared: compare ratios from this run).

Upstream: Debian's \`docker-registry\` $(docker-registry --version | awk '{print $3}') on 127.0.0.1 (filesystem storage, page cache warm),
seeded with $images images, $(echo "scale=2; $layer_bytes / 1073741824" | bc) GiB of blobs, from \`bundles/examples/bench_layout.rs\`.
Both tools fetch all $images images from it; every run starts with an empty output and an empty \`--cache\`.
Times are medians of $runs runs; memory is the largest peak RSS (\`/usr/bin/time -f %M\`) over all runs.

| job | wall | peak RSS | airgap speed-up |
|---|---|---|---|
| \`airgap bundle create SPEC --cache FRESH\` | ${A} s | $(mib "$AM") MiB | |
| \`skopeo copy --all docker://… oci:LAYOUT:…\` per image | ${K} s | $(mib "$KM") MiB (largest copy) | $(ratio "$K" "$A")× (goal ≥ 2×) |
| the same, then \`airgap bundle pack LAYOUT\` | ${P} s | | $(ratio "$P" "$A")× |

Goal for airgap's peak memory: < 200 MiB.

\`bundle create\` does more than skopeo: it checks every blob against its digest, writes the seekable
zstd parts, SHA256SUMS, the lock and two SBOMs, and fsyncs the parts. skopeo only writes the OCI
layout (it does check digests). The spec is generated: every image as
\`registry.bench.example/docker.io/bench/image-NNNN:1.0\`, and \`mirrors: {registry.bench.example: http://127.0.0.1:$port}\`.
After the runs the script checks that airgap's lock holds every image under the manifest digest the
upstream serves; skopeo's layout holds $rewritten of the $images images under a different digest (skopeo
re-serialised their manifests), which \`bundle create\` never does.
DOC
cat docs/benchmarks/create.md
