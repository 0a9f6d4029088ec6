#!/usr/bin/env bash
# Benchmark: the dashboard with 100,000 runs in the catalog.
#   - overview (`GET /`) and job page (`GET /jobs/job0`) median render time over HTTP
#     (curl's time_total, 20 requests each, keep-alive off), side by side with the
#     median wall time of `omk-backup --json status` (the same data, a fresh process);
#   - the daemon's idle RSS with the web server on, and its CPU ticks and context
#     switches over a quiet 20 s (no one looking): both should stay flat.
#   usage: scripts/bench-web.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${1:-100000}
cargo build --release --quiet --example populate_catalog
cargo build --release --quiet
bin="$PWD/target/release/omk-backup"
work=/var/tmp/omk-bench-web
rm -rf "$work"; mkdir -p "$work/data" "$work/schedules"
echo pw > "$work/password"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
    printf '[repository]\nurl = "repo"\npassword_file = "password"\n'
    printf '[schedule]\nfiles = ["schedules/*.cron"]\n'
    printf '[web]\nlisten = "127.0.0.1:%s"\nactions = true\n' "$port"
    for j in 0 1 2 3 4; do printf '[jobs.job%s]\nkind = "files"\npaths = ["data"]\n' "$j"; done
} > "$work/omk.toml"
printf '30 2 * * * backup\n0 5 * * 0 check\n' > "$work/schedules/bench.cron"
target/release/examples/populate_catalog "$work/catalog.db" "$runs" 5
export OMK_BACKUP_CONFIG="$work/omk.toml"
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo "scale=2; ($e - $s) / 1000000" | bc; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
measure() { local v=(); for _ in $(seq 1 20); do v+=("$(ms "$@")"); done; median "${v[@]}"; }
http_ms() { curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port$1" | awk '{printf "%.2f", $1 * 1000}'; }
http_measure() { local v=(); for _ in $(seq 1 20); do v+=("$(http_ms "$1")"); done; median "${v[@]}"; }

"$bin" status >/dev/null   # warm the page cache
status=$(measure "$bin" --json status)

"$bin" daemon 2>"$work/daemon.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
for p in / /jobs/job0 /api/status; do   # the first requests warm the page cache
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$p")
    [ "$code" = 200 ] || { echo "GET $p answered $code, not 200" >&2; exit 1; }
done
overview=$(http_measure /)
job=$(http_measure /jobs/job0)
api=$(http_measure /api/status)
echo "with $runs runs in the catalog (5 jobs, 20 requests each, median):"
echo "  GET /            ${overview} ms"
echo "  GET /jobs/job0   ${job} ms"
echo "  GET /api/status  ${api} ms"
echo "  omk-backup --json status (fresh process) ${status} ms"

# Idle: no requests for a while, then RSS, CPU ticks and context switches over 20 s.
sleep 15
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
switches() { cat /proc/"$pid"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
t0=$(ticks); c0=$(switches)
sleep 20
t1=$(ticks); c1=$(switches)
echo "daemon idle with the web server on: RSS $(( $(rss) / 1024 )) MiB ($(rss) KiB), threads $(ls /proc/$pid/task | wc -l)"
echo "  over 20 idle seconds: CPU ticks +$((t1 - t0)), context switches +$((c1 - c0))"
# The same with a live page open (an SSE stream): still nothing while nothing changes.
curl -s -N "http://127.0.0.1:$port/api/live/events" > "$work/sse.out" &
sse=$!
sleep 3
grep -q '^event: live' "$work/sse.out" || { echo "no live event on /api/live/events" >&2; exit 1; }
t0=$(ticks); c0=$(switches)
sleep 20
t1=$(ticks); c1=$(switches)
kill "$sse" 2>/dev/null || true
echo "  with a live page open, over 20 idle seconds: CPU ticks +$((t1 - t0)), context switches +$((c1 - c0))"
