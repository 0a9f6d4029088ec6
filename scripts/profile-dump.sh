#!/usr/bin/env bash
# Where omk-backup's own CPU goes during a database dump: runs `omk-backup backup JOB`
# under `perf record -g` (Debian's linux-perf) and prints omk-backup's threads only
# (restic and the docker daemon excluded by comm), then the process's own counters from
# /proc (user+sys CPU, read/write syscalls, bytes) sampled until it exits.
#   usage: scripts/profile-dump.sh BIN CONFIG_DIR [JOB]
# CONFIG_DIR holds omk.toml (a database job, repository `repo`, initialised here);
# $OMK_BACKUP_RESTIC picks restic. Leaves perf.data in CONFIG_DIR.
set -euo pipefail
bin=$1 dir=$2 job=${3:-bench}
command -v perf >/dev/null || { echo "perf is missing: apt-get install -y linux-perf" >&2; exit 1; }
rm -rf "$dir/repo" "$dir/catalog.db"*
RESTIC_PASSWORD_FILE=$(awk -F'"' '/password_file/ {print $2}' "$dir/omk.toml") \
  RESTIC_REPOSITORY="$dir/repo" "${OMK_BACKUP_RESTIC:-restic}" init -q >/dev/null
ticks=$(getconf CLK_TCK)
perf record -q -F 499 -g -o "$dir/perf.data" -- "$bin" --config "$dir/omk.toml" --json backup "$job" > "$dir/out.json" &
ppid=$!
pid=
for _ in $(seq 100); do pid=$(pgrep -P "$ppid" -x omk-backup || true); [ -n "$pid" ] && break; sleep 0.02; done
cpu=0
: > "$dir/tasks.txt"
while [ -n "$pid" ] && [ -r "/proc/$pid/stat" ]; do
  s=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12, $13}') || true
  [ -n "$s" ] && cpu=$s
  # Per thread (children excluded, unlike /proc/PID/io): read/write syscalls, switches.
  for t in /proc/"$pid"/task/*; do
    awk -v t="${t##*/}" '/^syscr|^syscw/ {v[$1]=$2} END {printf "%s %s %s ", t, v["syscr:"], v["syscw:"]}' "$t/io" 2>/dev/null &&
      awk '/ctxt_switches/ {n += $2} END {print n}' "$t/status" 2>/dev/null
  done >> "$dir/tasks.txt" || true
  sleep 0.05
done
wait "$ppid"
read -r u k <<<"$cpu"
printf 'omk-backup own CPU: user %.2f s, sys %.2f s\n' "$(echo "$u / $ticks" | bc -l)" "$(echo "$k / $ticks" | bc -l)"
awk 'NF == 4 {r[$1] = $2; w[$1] = $3; c[$1] = $4} END {for (t in r) {R += r[t]; W += w[t]; C += c[t]}
  printf "omk-backup threads: %d read-side syscalls, %d write-side syscalls, %d context switches\n", R, W, C}' "$dir/tasks.txt"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]; print("dump bytes:", j["bytes"])' "$dir/out.json"
perf report -i "$dir/perf.data" --comms omk-backup,tokio-rt-worker,omk-digest --no-children \
  --sort comm,dso,sym --stdio -g none --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | head -45
