#!/usr/bin/env bash
# Scheduler figures: daemon idle RSS, wakeups while idle (voluntary context switches
# from /proc/PID/status over a minute), and `schedule list` latency.
# Usage: scripts/bench-daemon.sh [BINARY] [IDLE_SECONDS]   (default: target/release/omk-backup, 60)
set -euo pipefail
BIN=${1:-target/release/omk-backup}
IDLE=${2:-60}
[ -x "$BIN" ] || { echo "build it first: cargo build --release ($BIN missing)" >&2; exit 2; }
BIN=$(realpath "$BIN")
DIR=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
cd "$DIR"
echo pw > password
mkdir -p data schedules
echo hello > data/x
cat > omk.toml <<TOML
[repository]
url = "repo"
password_file = "password"

[jobs.a]
kind = "files"
paths = ["data"]
TOML
# Nothing due for a long time (and no catch-up): the daemon must sleep.
cat > schedules/bench.cron <<CRON
CRON_TZ=Europe/Berlin
30 2 1 1 *   backup
0 4 1 1 *    forget --prune
0 5 1 1 *    check
CRON

"$BIN" --config omk.toml daemon 2>daemon.log &
PID=$!
sleep 2
threads=$(ls /proc/$PID/task | wc -l)
ctx() { # sum of voluntary context switches over all threads
  local s=0
  for t in /proc/$PID/task/*; do
    s=$((s + $(awk '/^voluntary_ctxt_switches/ {print $2}' "$t/status")))
  done
  echo "$s"
}
before=$(ctx)
sleep "$IDLE"
after=$(ctx)
rss=$(awk '/^VmRSS/ {print $2}' /proc/$PID/status)
hwm=$(awk '/^VmHWM/ {print $2}' /proc/$PID/status)
kill -TERM "$PID"; wait "$PID" || true

# schedule list: best and median of 50 runs, in ms.
times=()
for _ in $(seq 50); do
  t0=$(date +%s%N); "$BIN" --config omk.toml schedule list >/dev/null; t1=$(date +%s%N)
  times+=($(( (t1 - t0) / 1000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
printf 'daemon idle RSS: %s KiB (peak %s KiB), %s threads\n' "$rss" "$hwm" "$threads"
printf 'voluntary context switches while idle for %ss: %s\n' "$IDLE" "$((after - before))"
printf 'schedule list: min %s us, median %s us (50 runs)\n' "${sorted[0]}" "${sorted[25]}"
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 5 "$BIN --config $DIR/omk.toml schedule list"
fi
