#!/usr/bin/env bash
# Benchmark: omk-backup's Postgres dump (exec through the socket proxy, streamed into
# restic with SHA-256 and fingerprint on the way) vs the bare pipeline
# `docker exec CONTAINER pg_dumpall | restic backup --stdin` on the same machine, each
# into a fresh repository with the same restic binary. Prints both times, the ratio and
# omk-backup's peak RSS (/usr/bin/time -v).
#   usage: scripts/bench-dump.sh [ROWS] [RESTIC]
#   defaults: 15000000 rows (a dump of about 1.1 GiB), restic 0.18 from the test env.
# Needs: dockerd, the haproxy proxy ($OMK_TEST_DOCKER_PROXY) and the omk-test/postgres
# image (scripts/setup-test-env.sh); uses ~3 GiB under /var/tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-15000000}
restic=${2:-${OMK_TEST_RESTIC_018:-/opt/omk-test/restic-0.18/usr/bin/restic}}
proxy=${OMK_TEST_DOCKER_PROXY:-tcp://127.0.0.1:2375}
image=${OMK_TEST_IMAGE_POSTGRES:-omk-test/postgres:15}
cargo build --release --quiet
bin="$PWD/target/release/omk-backup"
work=/var/tmp/omk-bench-dump
c=omk-bench-pg-$$
rm -rf "$work"; mkdir -p "$work"
cleanup() { docker rm -f -v "$c" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
head -c 24 /dev/urandom | base64 > "$work/password"

echo "starting $image as $c and loading $rows rows" >&2
docker run -d --name "$c" -e POSTGRES_PASSWORD=bench "$image" >/dev/null
for _ in $(seq 120); do docker exec "$c" pg_isready -h 127.0.0.1 -U postgres >/dev/null 2>&1 && break; sleep 1; done
docker exec "$c" psql -q -v ON_ERROR_STOP=1 -U postgres -c 'CREATE DATABASE bench'
docker exec "$c" psql -q -v ON_ERROR_STOP=1 -U postgres -d bench -c \
  "CREATE TABLE t (id bigint, a text, b text); INSERT INTO t SELECT g, md5(g::text), md5((-g)::text) FROM generate_series(1, $rows) g;"
size=$(docker exec "$c" psql -U postgres -tAc "SELECT pg_size_pretty(pg_database_size('bench'))")
echo "database size: $size" >&2

export RESTIC_PASSWORD_FILE="$work/password" RESTIC_CACHE_DIR="$work/cache"
RESTIC_REPOSITORY="$work/repo-omk" "$restic" init -q >/dev/null
RESTIC_REPOSITORY="$work/repo-bare" "$restic" init -q >/dev/null
cat > "$work/omk.toml" <<TOML
[docker]
host = "$proxy"
discover = false

[repository]
url = "repo-omk"
password_file = "password"

[jobs.bench]
kind = "postgres"
container = "$c"
TOML

now() { date +%s.%N; }
# Warm the page cache once so neither side pays the first read.
docker exec "$c" pg_dumpall -U postgres > /dev/null

t0=$(now)
# /usr/bin/time's maximum RSS is the largest process of the tree (restic); omk-backup's
# own peak is VmHWM from /proc, read until it exits.
OMK_BACKUP_RESTIC="$restic" /usr/bin/time -v -o "$work/time.txt" \
  "$bin" --config "$work/omk.toml" --json backup bench > "$work/omk.json" &
tpid=$!
hwm=0
while kill -0 "$tpid" 2>/dev/null; do
  opid=$(pgrep -P "$tpid" -x omk-backup || true)
  if [ -n "$opid" ]; then
    v=$(awk '/VmHWM/ {print $2}' "/proc/$opid/status" 2>/dev/null || echo 0)
    [ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
  fi
  sleep 0.1
done
wait "$tpid"
t1=$(now)
docker exec "$c" pg_dumpall -U postgres | \
  RESTIC_REPOSITORY="$work/repo-bare" /usr/bin/time -v -o "$work/time-bare.txt" \
  "$restic" backup -q --stdin --stdin-filename bench.sql
t2=$(now)

omk=$(echo "$t1 - $t0" | bc -l); bare=$(echo "$t2 - $t1" | bc -l)
rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/time.txt")
rss_bare=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/time-bare.txt")
bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"][0]["bytes"])' "$work/omk.json")
printf 'restic:        %s\n' "$("$restic" version | head -1)"
printf 'dump size:     %s bytes (%.2f GiB), database %s\n' "$bytes" "$(echo "$bytes / 1073741824" | bc -l)" "$size"
printf 'omk-backup:    %.1f s (through %s)\n' "$omk" "$proxy"
printf 'bare pipeline: %.1f s (docker exec | restic backup --stdin)\n' "$bare"
printf 'ratio:         %.2f\n' "$(echo "$omk / $bare" | bc -l)"
printf 'omk-backup peak RSS (VmHWM): %s KiB\n' "$hwm"
printf 'largest process of omk-backup'"'"'s tree (restic): %s KiB; bare restic: %s KiB\n' "$rss" "$rss_bare"
printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
