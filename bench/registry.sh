#!/usr/bin/env bash
# Benchmark of `airgap registry serve` against CNCF distribution (Debian's docker-registry 2.8) on
# 127.0.0.1, both holding the same images, driven by the same clients in the same run:
#   blob GET MiB/s (curl, 1 and 4 streams of the largest blob),
#   manifest GET req/s (wrk -c64 -t2, by tag over every image, OCI Accept header),
#   manifest HEAD req/s (ab -k -c64: wrk cannot do HEAD on keep-alive connections, it waits for a body),
#   peak RSS (VmHWM, reset through /proc/PID/clear_refs before each load),
# and airgap serving the bundle in place vs the same content pushed into its --storage directory.
# Limits: busybox httpd (sendfile) serving the same blob file to the same curl, and each server's
# cheapest request (GET /v2/) under the same wrk load.
# Usage: [SECS=15] [WAIT=180] bench/registry.sh [GIB | --help]   (default 1 GiB; SECS per load, WAIT the longest
# wait for the 1-minute load to drop below 2) — writes docs/benchmarks/registry.md
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup registry "$@"
gib=${1:-1}
secs=${SECS:-15}
pa=5311 pd=5312 ps=5313 pb=5314   # airgap on the bundle, distribution, airgap --storage, busybox

echo "generating a ${gib} GiB layout and packing it"
"$layout_bin" "$work/layout" "$gib" 2>/dev/null
"$bin" bundle pack "$work/layout" -o "$work/bundle" >/dev/null
images=$(grep -o '"org.opencontainers.image.ref.name":"[^"]*"' "$work/layout/index.json" | wc -l)

up() { for _ in $(seq 50); do curl -sf "http://127.0.0.1:$1/v2/" >/dev/null && return; sleep 0.2; done; echo "port $1 not up" >&2; exit 1; }
"$bin" registry serve "$work/bundle" --listen 127.0.0.1:$pa --quiet 2>/dev/null & pids+=($!); pid_a=$!
cat > "$work/dist.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/dist}}
http: {addr: 127.0.0.1:$pd}
EOF
docker-registry serve "$work/dist.yml" >"$work/dist.log" 2>&1 & pids+=($!); pid_d=$!
mkdir -p "$work/store"
"$bin" registry serve --storage "$work/store" --listen 127.0.0.1:$ps --quiet 2>/dev/null & pids+=($!); pid_s=$!
up $pa; up $pd; up $ps
# The same bundle pushed into both directories: same names, same digests.
"$bin" registry push "$work/bundle" --to 127.0.0.1:$pd --plain-http >/dev/null
"$bin" registry push "$work/bundle" --to 127.0.0.1:$ps --plain-http >/dev/null

accept='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json'
# The largest blob (image-0010's own layer, 384 MiB with bench_layout), and the same file for busybox.
big=$(ls -S "$work/layout/blobs/sha256" | head -1)
big_bytes=$(stat -c %s "$work/layout/blobs/sha256/$big")
big_repo=$(for i in $(seq -f %04g "$images"); do
  curl -sf -H "Accept: $accept" "http://127.0.0.1:$pa/v2/docker.io/bench/image-$i/manifests/1.0" | grep -q "$big" && { echo "docker.io/bench/image-$i"; break; }; done)
mkdir -p "$work/www" && ln "$work/layout/blobs/sha256/$big" "$work/www/big"
busybox httpd -f -p 127.0.0.1:$pb -h "$work/www" & pids+=($!)
sleep 0.5
# Every server gives the same bytes for the same manifest and blob.
for p in $pa $pd $ps; do
  curl -sf -H "Accept: $accept" "http://127.0.0.1:$p/v2/$big_repo/manifests/1.0" | sha256sum | cut -c1-64
  curl -sf "http://127.0.0.1:$p/v2/$big_repo/blobs/sha256:$big" | sha256sum | cut -c1-64
done | sort -u | wc -l | grep -qx 2 || { echo "servers disagree on content" >&2; exit 1; }

cat > "$work/manifests.lua" <<'EOF'
wrk.headers["Accept"] = os.getenv("ACCEPT")
local paths, n = {}, 0
for i = 1, tonumber(os.getenv("IMAGES")) do paths[i] = string.format("/v2/docker.io/bench/image-%04d/manifests/1.0", i) end
request = function() n = n % #paths + 1; return wrk.format(nil, paths[n]) end
EOF

# Wait (at most WAIT seconds, default 180) for the shared machine to calm down; print the 1-minute load.
quiet() { for _ in $(seq $(( ${WAIT:-180} / 10 ))); do awk '{exit !($1 < 2)}' /proc/loadavg && break; sleep 10; done; cut -d' ' -f1 /proc/loadavg; }
reset_hwm() { echo 5 > "/proc/$1/clear_refs"; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
wrk_rps() { # URL [lua]: requests/s; fails on any non-2xx answer or socket error
  local out; out=$(ACCEPT="$accept" IMAGES=$images wrk -c64 -t2 -d"${secs}s" --timeout 10s ${2:+-s "$2"} "$1")
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then echo "$out" >&2; exit 1; fi
  awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out"
}
ab_head() { # URL: HEAD requests/s over keep-alive
  local out; out=$(ab -q -k -c64 -t"$secs" -n 100000000 -i -H "Accept: $accept" "$1" 2>&1)
  grep -qE '^(Failed requests|Non-2xx responses): +[1-9]' <<<"$out" && { echo "$out" >&2; exit 1; }
  awk '/Requests per second/ {printf "%.0f", $4}' <<<"$out"
}
blob_rate() { # URL STREAMS: MiB/s of STREAMS parallel downloads, median of three rounds
  local rates=() s e
  for _ in 1 2 3; do
    s=$(date +%s.%N)
    for _ in $(seq "$2"); do curl -sf -o /dev/null "$1" & done; wait
    e=$(date +%s.%N)
    rates+=("$(echo "$big_bytes * $2 / ($e - $s) / 1048576" | bc)")
  done
  printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p
}

declare -A R
for name in a d s; do
  port=$(eval echo \$p$name); pid=$(eval echo \$pid_$name)
  base=http://127.0.0.1:$port
  echo "measuring $name on $port"
  R[load_$name]=$(quiet)
  reset_hwm "$pid"
  R[get_$name]=$(wrk_rps "$base" "$work/manifests.lua")
  R[head_$name]=$(ab_head "$base/v2/$big_repo/manifests/1.0")
  R[mrss_$name]=$(hwm "$pid")
  R[ping_$name]=$(wrk_rps "$base/v2/")
  reset_hwm "$pid"
  R[b1_$name]=$(blob_rate "$base/v2/$big_repo/blobs/sha256:$big" 1)
  R[b4_$name]=$(blob_rate "$base/v2/$big_repo/blobs/sha256:$big" 4)
  R[brss_$name]=$(hwm "$pid")
done
R[load_b]=$(quiet)
R[b1_b]=$(blob_rate "http://127.0.0.1:$pb/big" 1)
R[b4_b]=$(blob_rate "http://127.0.0.1:$pb/big" 4)

ratio() { echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; }
mkdir -p docs/benchmarks
# bench/registry-load.sh writes a section of its own into the same doc: keep it.
load_section=$(sed -n '/<!-- bench\/registry-load.sh: begin -->/,/<!-- bench\/registry-load.sh: end -->/p' \
  docs/benchmarks/registry.md 2>/dev/null || true)
cat > docs/benchmarks/registry.md <<DOC
# Registry benchmark

Made by \`SECS=$secs WAIT=${WAIT:-180} bench/registry.sh $gib\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo),
everything on 127.0.0.1, clients and servers sharing the two cores. 1-minute load before each server's
measurements: airgap ${R[load_a]}, distribution ${R[load_d]}, airgap --storage ${R[load_s]}, busybox ${R[load_b]} (the machine is shared:
compare ratios measured in this run, not absolute numbers).

Content: a $gib GiB layout from \`bundles/examples/bench_layout.rs\` ($images images), packed with \`airgap bundle pack\`.
- **airgap**: \`airgap registry serve BUNDLE\`, reading blobs from the compressed parts in place.
- **distribution**: Debian's \`docker-registry\` $(docker-registry --version | awk '{print $3}'), filesystem storage, the same bundle
  copied in with \`airgap registry push --plain-http\`.
- **airgap --storage**: \`airgap registry serve --storage DIR\` with the same bundle pushed into DIR.

Every server is checked to give the same bytes for the same manifest and blob before measuring.

| measure | airgap (bundle) | distribution | airgap / distribution | goal |
|---|---|---|---|---|
| blob GET, 1 stream, MiB/s | ${R[b1_a]} | ${R[b1_d]} | $(ratio "${R[b1_a]}" "${R[b1_d]}")× | |
| blob GET, 4 streams, MiB/s | ${R[b4_a]} | ${R[b4_d]} | $(ratio "${R[b4_a]}" "${R[b4_d]}")× | ≥ 1.5× |
| manifest GET req/s (wrk, 64 conn.) | ${R[get_a]} | ${R[get_d]} | $(ratio "${R[get_a]}" "${R[get_d]}")× | ≥ 3× |
| manifest HEAD req/s (ab -k, 64 conn.) | ${R[head_a]} | ${R[head_d]} | $(ratio "${R[head_a]}" "${R[head_d]}")× | ≥ 3× |
| peak RSS under manifest load, MiB | ${R[mrss_a]} | ${R[mrss_d]} | | ≤ 64 MiB |
| peak RSS under blob load, MiB | ${R[brss_a]} | ${R[brss_d]} | | ≤ 64 MiB |

## Bundle in place vs storage directory (airgap both)

| measure | bundle in place | --storage DIR | in place / storage | goal |
|---|---|---|---|---|
| blob GET, 1 stream, MiB/s | ${R[b1_a]} | ${R[b1_s]} | $(ratio "${R[b1_a]}" "${R[b1_s]}")× | |
| blob GET, 4 streams, MiB/s | ${R[b4_a]} | ${R[b4_s]} | $(ratio "${R[b4_a]}" "${R[b4_s]}")× | ≥ 0.8× |
| manifest GET req/s | ${R[get_a]} | ${R[get_s]} | $(ratio "${R[get_a]}" "${R[get_s]}")× | ≥ 0.8× |
| manifest HEAD req/s | ${R[head_a]} | ${R[head_s]} | $(ratio "${R[head_a]}" "${R[head_s]}")× | ≥ 0.8× |
| peak RSS, manifest / blob load, MiB | ${R[mrss_a]} / ${R[brss_a]} | ${R[mrss_s]} / ${R[brss_s]} | | |

## The limits they meet

| limit | value |
|---|---|
| busybox httpd (sendfile) → curl, same $(( big_bytes / 1048576 )) MiB file, 1 stream | ${R[b1_b]} MiB/s |
| busybox httpd (sendfile) → curl, 4 streams | ${R[b4_b]} MiB/s |
| GET /v2/ (the cheapest request), wrk 64 conn.: airgap / distribution / airgap --storage | ${R[ping_a]} / ${R[ping_d]} / ${R[ping_s]} req/s |

Blob rates are the median of three rounds of 1 or 4 parallel \`curl -o /dev/null\` of the largest blob
($(( big_bytes / 1048576 )) MiB). Manifest GETs go by tag over all $images images in turn; HEADs by tag on one image,
with \`ab\` because wrk 4.1 waits for a body after a HEAD response on a keep-alive connection. Each load runs ${secs} s.
Peak RSS is VmHWM from /proc/PID/status, reset (\`echo 5 > /proc/PID/clear_refs\`) before each load.
DOC
[ -z "$load_section" ] || printf '\n%s\n' "$load_section" >> docs/benchmarks/registry.md
cat docs/benchmarks/registry.md
