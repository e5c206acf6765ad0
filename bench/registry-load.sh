#!/usr/bin/env bash
# Latency of `airgap registry serve` under load against CNCF distribution (Debian's docker-registry
# 2.8) on 127.0.0.1, both holding the same images, driven by the same clients in the same run:
#   mixed load: wrk -c64 for SECS seconds of manifest GETs (by tag) and blob GETs (configs and
#     layers up to 2 MiB), with 200 slow sockets beside it that send a request head a byte a second;
#     latency percentiles (wrk --latency), requests/s, errors, the server's peak RSS;
#   password checks: htpasswd (bcrypt cost 10) on both; a client with the right password
#     (wrk -c4) alone, then beside 32 connections sending a wrong one; its latency percentiles.
# Usage: [SECS=30] [WAIT=180] bench/registry-load.sh [GIB | --help]   (default 1 GiB of images) —
# writes the "Under load" section of docs/benchmarks/registry.md (bench/registry.sh writes the rest)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup registry-load "$@"
gib=${1:-1}
secs=${SECS:-30}
pa=5321 pd=5322 paa=5323 pda=5324   # airgap, distribution; each again with htpasswd

echo "generating a ${gib} GiB layout and packing it"
"$layout_bin" "$work/layout" "$gib" 2>/dev/null
"$bin" bundle pack "$work/layout" -o "$work/bundle" >/dev/null
images=$(grep -o '"org.opencontainers.image.ref.name":"[^"]*"' "$work/layout/index.json" | wc -l)

up() { for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$1/v2/" && return; sleep 0.2; done; echo "port $1 not up" >&2; exit 1; }
htpasswd -Bbc -C 10 "$work/htpasswd" bench right-password 2>/dev/null
dist_config() { # PORT DIR [auth]
  cat <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $2}}
http: {addr: 127.0.0.1:$1}
EOF
  [ -z "${3:-}" ] || printf 'auth: {htpasswd: {realm: bench, path: %s}}\n' "$work/htpasswd"
}
"$bin" registry serve "$work/bundle" --listen 127.0.0.1:$pa --quiet 2>/dev/null & pids+=($!); pid_a=$!
"$bin" registry serve "$work/bundle" --listen 127.0.0.1:$paa --quiet --htpasswd "$work/htpasswd" 2>/dev/null & pids+=($!)
dist_config $pd "$work/dist" > "$work/dist.yml"
docker-registry serve "$work/dist.yml" >"$work/dist.log" 2>&1 & pids+=($!); pid_d=$!
up $pa; up $paa; up $pd
"$bin" registry push "$work/bundle" --to 127.0.0.1:$pd --plain-http >/dev/null
# The authenticated distribution serves the same storage directory.
dist_config $pda "$work/dist" auth > "$work/dist-auth.yml"
docker-registry serve "$work/dist-auth.yml" >"$work/dist-auth.log" 2>&1 & pids+=($!)
up $pda

accept='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json'
# The paths of the mixed load: every image's manifest, its config and its layers up to 2 MiB.
: > "$work/paths"
for i in $(seq -f %04g "$images"); do
  repo=docker.io/bench/image-$i
  echo "/v2/$repo/manifests/1.0" >> "$work/paths"
  curl -sf -H "Accept: $accept" "http://127.0.0.1:$pa/v2/$repo/manifests/1.0" |
    jq -r --arg r "$repo" '[.config] + .layers | .[] | select(.size <= 2097152) | "/v2/\($r)/blobs/\(.digest)"' >> "$work/paths"
done
# Both servers give the same bytes for every path.
for p in $(cat "$work/paths"); do
  for port in $pa $pd; do curl -sf -H "Accept: $accept" "http://127.0.0.1:$port$p" | sha256sum; done | sort -u | wc -l |
    grep -qx 1 || { echo "servers disagree on $p" >&2; exit 1; }
done

cat > "$work/mixed.lua" <<'EOF'
wrk.headers["Accept"] = os.getenv("ACCEPT")
local paths, n = {}, 0
for line in io.lines(os.getenv("PATHS")) do paths[#paths + 1] = line end
request = function() n = n % #paths + 1; return wrk.format(nil, paths[n]) end
EOF
cat > "$work/slow.py" <<'EOF'
# 200 connections sending a request head one byte a second, each reopened when the server closes it.
import socket, sys, time
port, head = int(sys.argv[1]), b"GET /v2/ HTTP/1.1\r\nHost: slow\r\nX-Padding: "
socks = [None] * 200
sent = [0] * 200
while True:
    for i in range(len(socks)):
        try:
            if socks[i] is None:
                socks[i], sent[i] = socket.create_connection(("127.0.0.1", port), timeout=5), 0
            socks[i].send(head[sent[i]:sent[i] + 1] or b"x")
            sent[i] += 1
        except OSError:
            socks[i] = None
    time.sleep(1)
EOF

quiet() { for _ in $(seq $(( ${WAIT:-180} / 10 ))); do awk '{exit !($1 < 2)}' /proc/loadavg && break; sleep 10; done; cut -d' ' -f1 /proc/loadavg; }
reset_hwm() { echo 5 > "/proc/$1/clear_refs"; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
# wrk's --latency table and totals as "p50 p75 p90 p99 req/s errors" (times in ms).
wrk_summary() {
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; return v * 1000 }
    $1 == "50%" { p50 = ms($2) } $1 == "75%" { p75 = ms($2) } $1 == "90%" { p90 = ms($2) } $1 == "99%" { p99 = ms($2) }
    /Requests\/sec/ { rps = $2 }
    /Non-2xx/ { err += $NF } /Socket errors/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    END { printf "%.2f %.2f %.2f %.2f %.0f %d", p50, p75, p90, p99, rps, err }'
}
mixed() { # PORT: the mixed load beside 200 slow sockets
  python3 "$work/slow.py" "$1" & local slow=$!
  sleep 2
  ACCEPT="$accept" PATHS="$work/paths" wrk -c64 -t2 -d"${secs}s" --timeout 10s --latency -s "$work/mixed.lua" "http://127.0.0.1:$1" | wrk_summary
  kill $slow; wait $slow 2>/dev/null || true
}
auth_latency() { # PORT [bad]: a right password's latency, alone or beside 32 connections with a wrong one
  local bad=
  if [ -n "${2:-}" ]; then
    wrk -c32 -t1 -d"$(( secs + 4 ))s" --timeout 10s -H "Authorization: Basic $(printf bench:wrong-password | base64)" \
      "http://127.0.0.1:$1/v2/" >/dev/null & bad=$!
    sleep 2
  fi
  wrk -c4 -t1 -d"${secs}s" --timeout 10s --latency -H "Authorization: Basic $(printf bench:right-password | base64)" \
    "http://127.0.0.1:$1/v2/" | wrk_summary
  [ -z "$bad" ] || { kill $bad 2>/dev/null; wait $bad 2>/dev/null || true; }
}

declare -A R
for name in a d; do
  port=$(eval echo \$p$name); pid=$(eval echo \$pid_$name)
  echo "mixed load on $name ($port)"
  R[load_$name]=$(quiet)
  reset_hwm "$pid"
  R[mixed_$name]=$(mixed "$port")
  R[rss_$name]=$(hwm "$pid")
  port=$(eval echo \$p${name}a)
  echo "password checks on $name ($port)"
  R[alone_$name]=$(auth_latency "$port")
  R[beside_$name]=$(auth_latency "$port" bad)
done

col() { cut -d' ' -f"$2" <<<"$1"; }
row() { # LABEL KEY: one table row per server
  for name in a d; do
    local v=${R[${2}_$name]} label; label=$([ $name = a ] && echo airgap || echo distribution)
    echo "| $1 | $label | $(col "$v" 1) | $(col "$v" 2) | $(col "$v" 3) | $(col "$v" 4) | $(col "$v" 5) | $(col "$v" 6) |"
  done
}
section=$(cat <<DOC
<!-- bench/registry-load.sh: begin -->
## Under load

Made by \`SECS=$secs WAIT=${WAIT:-180} bench/registry-load.sh $gib\` on $(date -u +%Y-%m-%d), $(nproc) cores, everything on
127.0.0.1, clients and servers sharing the cores. 1-minute load before each server's run: airgap ${R[load_a]},
distribution ${R[load_d]}. Content: the same $gib GiB layout ($images images), served in place by airgap and pushed
into distribution with \`airgap registry push\`; both are checked to give the same bytes for every path.

**Mixed load**: \`wrk -c64 -t2 --latency\` for ${secs} s over every image's manifest (by tag), config and
layers up to 2 MiB ($(wc -l < "$work/paths") paths in turn), while 200 other connections send a request head one
byte a second (reopened whenever the server closes them). Times in ms; errors are non-2xx answers and
socket errors of the 64 clients (wrk gives up on an answer after 10 s).

| load | server | p50 | p75 | p90 | p99 | req/s | errors |
|---|---|---|---|---|---|---|---|
$(row "mixed, 64 conn. + 200 slow" mixed)

Peak RSS under the mixed load (VmHWM): airgap ${R[rss_a]} MiB, distribution ${R[rss_d]} MiB.

**Password checks**: both with the same htpasswd file (bcrypt cost 10); a client with the right password
(\`wrk -c4\`, \`GET /v2/\`) alone, then beside 32 connections sending a wrong password as fast as they are
answered. The errors column of the second row counts only the right client's.

| load | server | p50 | p75 | p90 | p99 | req/s | errors |
|---|---|---|---|---|---|---|---|
$(row "right password, alone" alone)
$(row "right password, beside 32 wrong" beside)
<!-- bench/registry-load.sh: end -->
DOC
)
doc=docs/benchmarks/registry.md
mkdir -p docs/benchmarks
touch "$doc"
# Replace this script's section, keeping the rest of the doc (bench/registry.sh's part).
printf '%s\n' "$section" > "$work/section.md"
awk -v section="$work/section.md" '
  function put() { while ((getline line < section) > 0) print line; done = 1 }
  /<!-- bench\/registry-load.sh: begin -->/ { skip = 1; put(); next }
  /<!-- bench\/registry-load.sh: end -->/ { skip = 0; next }
  !skip { print }
  END { if (!done) { print ""; put() } }' "$doc" > "$work/doc.md"
mv "$work/doc.md" "$doc"
echo "$section"
