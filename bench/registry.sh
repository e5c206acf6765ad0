#!/usr/bin/env bash
# Benchmark of `airgap registry serve` against CNCF distribution (Debian's docker-registry 2.8) on
# 127.0.0.1, both holding the same images, driven by the same clients in the same run:
#   blob GET MiB/s (curl, 1 and 4 streams of the largest blob),
#   manifest GET req/s (wrk -c64 -t2, by tag over every image, OCI Accept header),
#   manifest HEAD req/s (ab -k -c64: wrk cannot do HEAD on keep-alive connections, it waits for a body),
#   peak RSS (VmHWM, reset through /proc/PID/clear_refs before each load),
# and airgap serving the bundle in place vs the same content pushed into its --storage directory.
# BASELINES names earlier commits whose airgap (built once by bench_baseline, bench/lib.sh) serves
# the same bundle beside this tree's, so a change's effect is measured in one run.
# Limits: busybox httpd (sendfile) serving the same blob file to the same curl; one core
# decompressing the blob's zstd frames (zstd -d) and one core hashing it (sha256sum, openssl's
# SHA-256); each server's cheapest request (GET /v2/) under the same wrk load.
# Blob rates and their limits are taken in three rounds, each server in turn within a round, so
# the shared machine's load falls on all of them alike; each figure is the median of its rounds.
# Usage: [SECS=15] [WAIT=180] [BASELINES="REV..."] bench/registry.sh [GIB | --help]   (default 1 GiB;
# SECS per load, WAIT the longest wait for the 1-minute load to drop below 2) — writes docs/benchmarks/registry.md
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup registry "$@"
gib=${1:-1}
secs=${SECS:-15}
read -ra revs <<<"${BASELINES:-}"
pb=5314 # busybox
# a: airgap on the bundle, d: distribution, s: airgap --storage, v0…: BASELINES' airgap on the bundle
declare -A port=([a]=5311 [d]=5312 [s]=5313) pid bins label
label=([a]="$(git rev-parse --short HEAD) (this tree)" [d]=distribution [s]="airgap --storage")
bins[a]=$bin
olds=()
for i in "${!revs[@]}"; do
  k=v$i
  olds+=("$k")
  port[$k]=$((5315 + i))
  echo "airgap at ${revs[$i]}"
  bins[$k]=$(bench_baseline "${revs[$i]}")
  label[$k]=$(git log -1 --format='%h (%cs)' "${revs[$i]}")
done
servers=(a "${olds[@]}" d s)

echo "generating a ${gib} GiB layout and packing it"
"$layout_bin" "$work/layout" "$gib" 2>/dev/null
"$bin" bundle pack "$work/layout" -o "$work/bundle" >/dev/null
images=$(grep -o '"org.opencontainers.image.ref.name":"[^"]*"' "$work/layout/index.json" | wc -l)

up() { for _ in $(seq 50); do curl -sf "http://127.0.0.1:$1/v2/" >/dev/null && return; sleep 0.2; done; echo "port $1 not up" >&2; exit 1; }
for k in a "${olds[@]}"; do
  "${bins[$k]}" registry serve "$work/bundle" --listen 127.0.0.1:${port[$k]} --quiet 2>/dev/null & pids+=($!); pid[$k]=$!
done
cat > "$work/dist.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/dist}}
http: {addr: 127.0.0.1:${port[d]}}
EOF
docker-registry serve "$work/dist.yml" >"$work/dist.log" 2>&1 & pids+=($!); pid[d]=$!
mkdir -p "$work/store"
"$bin" registry serve --storage "$work/store" --listen 127.0.0.1:${port[s]} --quiet 2>/dev/null & pids+=($!); pid[s]=$!
for k in "${servers[@]}"; do up "${port[$k]}"; done
# The same bundle pushed into both directories: same names, same digests.
"$bin" registry push "$work/bundle" --to 127.0.0.1:${port[d]} --plain-http >/dev/null
"$bin" registry push "$work/bundle" --to 127.0.0.1:${port[s]} --plain-http >/dev/null

accept='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json'
# The largest blob (image-0010's own layer, 384 MiB with bench_layout), and the same file for busybox.
big=$(ls -S "$work/layout/blobs/sha256" | head -1)
big_file=$work/layout/blobs/sha256/$big
big_bytes=$(stat -c %s "$big_file")
big_repo=$(for i in $(seq -f %04g "$images"); do
  curl -sf -H "Accept: $accept" "http://127.0.0.1:${port[a]}/v2/docker.io/bench/image-$i/manifests/1.0" | grep -q "$big" && { echo "docker.io/bench/image-$i"; break; }; done)
mkdir -p "$work/www" && ln "$big_file" "$work/www/big"
busybox httpd -f -p 127.0.0.1:$pb -h "$work/www" & pids+=($!); pid[b]=$!
sleep 0.5
# Every server gives the same bytes for the same manifest and blob.
for k in "${servers[@]}"; do
  curl -sf -H "Accept: $accept" "http://127.0.0.1:${port[$k]}/v2/$big_repo/manifests/1.0" | sha256sum | cut -c1-64
  curl -sf "http://127.0.0.1:${port[$k]}/v2/$big_repo/blobs/sha256:$big" | sha256sum | cut -c1-64
done | sort -u | wc -l | grep -qx 2 || { echo "servers disagree on content" >&2; exit 1; }

# The compressed frames that hold the blob, cut from the parts: what a bundle server decompresses
# to serve it (a frame or two of its neighbours at the ends), for the stock zstd to decompress.
parts=("$work"/bundle/bundle.tar.zst.*)
archive_bytes() { # START LEN: bytes of the archive the parts make when joined
  local start=$1 len=$2 p size n
  for p in "${parts[@]}"; do
    size=$(stat -c %s "$p")
    if [ "$start" -ge "$size" ]; then start=$((start - size)); continue; fi
    [ "$len" -gt 0 ] || break
    n=$((size - start < len ? size - start : len))
    dd if="$p" bs=1M iflag=skip_bytes,count_bytes skip="$start" count="$n" status=none
    len=$((len - n)) start=0
  done
}
total=$(cat "${parts[@]}" | wc -c)
read -r offset size < <(jq -r --arg p "blobs/sha256/$big" '.members[] | select(.path == $p) | "\(.offset) \(.size)"' "$work/bundle/bundle.json")
# The seek table's footer: frame count, descriptor, magic; the entries before it: compressed and
# decompressed size of each frame.
nframes=$(archive_bytes $((total - 9)) 4 | od -An -tu4 | tr -d ' ')
read -r zstart zlen zout < <(archive_bytes $((total - 9 - 8 * nframes)) $((8 * nframes)) | od -An -tu4 -w8 -v |
  awk -v from="$offset" -v to=$((offset + size)) '
    u + $2 > from && u < to { if (!n++) start = c; len += $1; out += $2 }
    { u += $2; c += $1 }
    END { print start, len, out }')
archive_bytes "$zstart" "$zlen" > "$work/big.zst"
[ "$(zstd -dqc "$work/big.zst" | wc -c)" = "$zout" ] || { echo "the blob's frames do not decompress to $zout bytes" >&2; exit 1; }
sha_ni=$(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)
# sha2 0.10 picks its SHA-NI code at run time (cpufeatures) when the CPU has it; the code is there
# if the binary holds the instruction.
sha_ni_code=$( (set +o pipefail; objdump -d --no-show-raw-insn "$bin" | grep -q sha256rnds2) && echo yes || echo no)

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
mibs() { echo "$1 / ($3 - $2) / 1048576" | bc; } # BYTES START END: MiB/s
blob_rate() { # URL STREAMS: MiB/s of STREAMS parallel downloads
  local s; s=$(date +%s.%N)
  for _ in $(seq "$2"); do curl -sf -o /dev/null "$1" & done; wait
  mibs $((big_bytes * $2)) "$s" "$(date +%s.%N)"
}
one_core() { # NAME BYTES COMMAND…: MiB/s of one process doing COMMAND over BYTES, by the clock and per CPU second
  local name=$1 bytes=$2 t; shift 2
  t=$( { /usr/bin/time -f '%e %U %S' "$@" >/dev/null; } 2>&1 | tail -1)
  read -r wall user sys <<<"$t"
  rounds[$name]+=" $(mibs "$bytes" 0 "$wall")"
  rounds[cpu_$name]+=" $(mibs "$bytes" 0 "$user + $sys")"
}
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; } # PID: user + system CPU ticks so far
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }

declare -A R
for k in "${servers[@]}"; do
  base=http://127.0.0.1:${port[$k]}
  echo "measuring manifests on ${label[$k]}"
  R[load_$k]=$(quiet)
  reset_hwm "${pid[$k]}"
  R[get_$k]=$(wrk_rps "$base" "$work/manifests.lua")
  R[head_$k]=$(ab_head "$base/v2/$big_repo/manifests/1.0")
  R[mrss_$k]=$(hwm "${pid[$k]}")
  R[ping_$k]=$(wrk_rps "$base/v2/")
done

declare -A rounds cpu
served() { # KEY STREAMS: one blob round of a server, its MiB/s kept, its CPU ticks counted (not
  # busybox's: a child process per connection sends the file)
  local before; before=$(ticks "${pid[$1]}")
  rounds[b${2}_$1]+=" $(blob_rate "$(url "$1")" "$2")"
  cpu[$1]=$(( ${cpu[$1]:-0} + $(ticks "${pid[$1]}") - before ))
}
url() { if [ "$1" = b ]; then echo "http://127.0.0.1:$pb/big"; else echo "http://127.0.0.1:${port[$1]}/v2/$big_repo/blobs/sha256:$big"; fi; }
for k in "${servers[@]}"; do reset_hwm "${pid[$k]}"; done
cat "$big_file" > /dev/null
blob_loads=()
for round in 1 2 3; do
  echo "blob round $round"
  blob_loads+=("$(quiet)")
  for n in 1 4; do
    for k in "${servers[@]}" b; do served "$k" $n; done
  done
  one_core zstd "$zout" zstd -dqc "$work/big.zst"
  one_core sha256sum "$big_bytes" sha256sum "$big_file"
  one_core openssl "$big_bytes" openssl dgst -sha256 "$big_file"
done
for key in "${!rounds[@]}"; do R[$key]=$(median ${rounds[$key]}); done
for k in "${servers[@]}"; do R[brss_$k]=$(hwm "${pid[$k]}"); done
# What each server spent for the blobs it sent: MiB per CPU second, over every round.
for k in "${servers[@]}"; do R[cpu_$k]=$((big_bytes * 5 * 3 * $(getconf CLK_TCK) / (cpu[$k] > 0 ? cpu[$k] : 1) / 1048576)); done
# One core that decompresses a frame, then hashes it, then the next: 1 / (1/zstd + 1/SHA-NI).
R[serial]=$(echo "${R[cpu_zstd]} * ${R[cpu_openssl]} / (${R[cpu_zstd]} + ${R[cpu_openssl]})" | bc)

ratio() { echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; }
row() { # KEY: one airgap's bundle row of the versions table
  echo "| ${label[$1]} | ${R[b1_$1]} | $(ratio "${R[b1_$1]}" "${R[b1_d]}")× | ${R[b4_$1]} | $(ratio "${R[b4_$1]}" "${R[b4_d]}")× | ${R[cpu_$1]} | ${R[get_$1]} | ${R[head_$1]} | ${R[mrss_$1]} / ${R[brss_$1]} |"
}
mkdir -p docs/benchmarks
# bench/registry-load.sh writes a section of its own into the same doc: keep it.
load_section=$(sed -n '/<!-- bench\/registry-load.sh: begin -->/,/<!-- bench\/registry-load.sh: end -->/p' \
  docs/benchmarks/registry.md 2>/dev/null || true)
loads=$(for k in "${servers[@]}"; do printf '%s %s; ' "${label[$k]}" "${R[load_$k]}"; done)
cat > docs/benchmarks/registry.md <<DOC
# Registry benchmark

Made by \`SECS=$secs WAIT=${WAIT:-180}${revs:+ BASELINES=\"${revs[*]}\"} bench/registry.sh $gib\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo),
everything on 127.0.0.1, clients and servers sharing the cores. 1-minute load before each server's manifest
measurements: ${loads%; }; before each of the three blob rounds: ${blob_loads[*]} (the machine is shared:
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
| blob GET, MiB sent per server CPU second | ${R[cpu_a]} | ${R[cpu_d]} | $(ratio "${R[cpu_a]}" "${R[cpu_d]}")× | |
| manifest GET req/s (wrk, 64 conn.) | ${R[get_a]} | ${R[get_d]} | $(ratio "${R[get_a]}" "${R[get_d]}")× | ≥ 3× |
| manifest HEAD req/s (ab -k, 64 conn.) | ${R[head_a]} | ${R[head_d]} | $(ratio "${R[head_a]}" "${R[head_d]}")× | ≥ 3× |
| peak RSS under manifest load, MiB | ${R[mrss_a]} | ${R[mrss_d]} | | ≤ 64 MiB |
| peak RSS under blob load, MiB | ${R[brss_a]} | ${R[brss_d]} | | ≤ 64 MiB |
$(if [ ${#olds[@]} -gt 0 ]; then cat <<VERSIONS

## The bundle served by earlier versions (same run, same bundle)

| airgap at | blob 1 stream, MiB/s | / distribution | blob 4 streams, MiB/s | / distribution | blob MiB per server CPU second | manifest GET req/s | HEAD req/s | peak RSS, manifest / blob load, MiB |
|---|---|---|---|---|---|---|---|---|
$(for k in "${olds[@]}"; do row "$k"; done)
$(row a)
VERSIONS
fi)

## Bundle in place vs storage directory (airgap both)

| measure | bundle in place | --storage DIR | in place / storage | goal |
|---|---|---|---|---|
| blob GET, 1 stream, MiB/s | ${R[b1_a]} | ${R[b1_s]} | $(ratio "${R[b1_a]}" "${R[b1_s]}")× | |
| blob GET, 4 streams, MiB/s | ${R[b4_a]} | ${R[b4_s]} | $(ratio "${R[b4_a]}" "${R[b4_s]}")× | ≥ 0.8× |
| blob GET, MiB sent per server CPU second | ${R[cpu_a]} | ${R[cpu_s]} | $(ratio "${R[cpu_a]}" "${R[cpu_s]}")× | |
| manifest GET req/s | ${R[get_a]} | ${R[get_s]} | $(ratio "${R[get_a]}" "${R[get_s]}")× | ≥ 0.8× |
| manifest HEAD req/s | ${R[head_a]} | ${R[head_s]} | $(ratio "${R[head_a]}" "${R[head_s]}")× | ≥ 0.8× |
| peak RSS, manifest / blob load, MiB | ${R[mrss_a]} / ${R[brss_a]} | ${R[mrss_s]} / ${R[brss_s]} | | |

## The limits they meet

| limit | MiB/s by the clock | MiB per CPU second |
|---|---|---|
| busybox httpd (sendfile) → curl, same $(( big_bytes / 1048576 )) MiB file, 1 stream | ${R[b1_b]} | |
| busybox httpd (sendfile) → curl, 4 streams | ${R[b4_b]} | |
| one core decompressing the blob's $(( zlen / 1048576 )) MiB of zstd frames ($(( zout / 1048576 )) MiB out): \`zstd -dc\` $(zstd --version | grep -o 'v[0-9.]*') | ${R[zstd]} | ${R[cpu_zstd]} |
| one core hashing the blob from the page cache: \`sha256sum\` (coreutils $(sha256sum --version | awk 'NR == 1 {print $4}'), no SHA-NI) | ${R[sha256sum]} | ${R[cpu_sha256sum]} |
| one core hashing the blob from the page cache: \`openssl dgst -sha256\` ($(openssl version | awk '{print $2}'), SHA-NI where the CPU has it) | ${R[openssl]} | ${R[cpu_openssl]} |
| one core decompressing, then hashing with SHA-NI (1 / (1/zstd + 1/openssl), per CPU second) | | ${R[serial]} |
| GET /v2/ (the cheapest request), wrk 64 conn., req/s | $(for k in "${servers[@]}"; do printf '%s: %s; ' "${label[$k]}" "${R[ping_$k]}"; done | sed 's/; $//') | |

The CPU has SHA-NI: $sha_ni. This tree's airgap holds SHA-NI code (\`sha256rnds2\`, which the \`sha2\` crate
chooses at run time when the CPU has it): $sha_ni_code.

MiB per CPU second divides the bytes a server sent over every blob round by the user and system CPU time
its process spent meanwhile (from /proc/PID/stat): unlike a rate by the clock, it does not fall when other
work on the machine takes the cores. Blob rates are the median of three rounds of 1 or 4 parallel \`curl -o /dev/null\` of the largest blob
($(( big_bytes / 1048576 )) MiB), every server in turn within a round; the one-core limits are the median of one run
in each round. Manifest GETs go by tag over all $images images in turn; HEADs by tag on one image,
with \`ab\` because wrk 4.1 waits for a body after a HEAD response on a keep-alive connection. Each load runs ${secs} s.
Peak RSS is VmHWM from /proc/PID/status, reset (\`echo 5 > /proc/PID/clear_refs\`) before each load.
DOC
[ -z "$load_section" ] || printf '\n%s\n' "$load_section" >> docs/benchmarks/registry.md
cat docs/benchmarks/registry.md
