#!/usr/bin/env bash
# Benchmark: omk-backup's database dump (exec through the Docker API, stdout streamed
# into `restic backup --stdin`, SHA-256 and row fingerprint on the way) against the hand
# pipeline `docker exec CONTAINER DUMP | restic backup --stdin --stdin-filename db.sql`
# (docker CLI, raw socket), each run into a fresh repository with the same restic.
#
# omk-backup runs twice per pair: through the raw socket (unix:///var/run/docker.sock)
# and through the haproxy socket proxy ($OMK_TEST_DOCKER_PROXY). One warm-up round, then
# RUNS rounds in alternating order (hand first, then omk first, ...); prints the median
# wall time of each, the median ratios, omk-backup's own CPU seconds (user+sys of its
# process, all threads, children excluded: /proc/PID/stat, sampled every 50 ms), the
# docker CLI's CPU seconds in the hand pipeline, omk-backup's peak RSS (VmHWM) and the
# load average next to every round.
#   usage: scripts/bench-dump.sh [postgres|mariadb] [ROWS] [RUNS] [RESTIC]
#   defaults: postgres, 10500000 rows (a pg_dumpall of ~745 MiB), 3 runs, restic 0.18.
#   mariadb: `mariadb-dump --single-transaction --routines --events --all-databases` on
#   both sides (what omk-backup runs); default 4000000 rows.
# Needs: dockerd, the haproxy proxy and the test images (scripts/setup-test-env.sh);
# uses ~3 GiB under /var/tmp. Prints figures only: nothing here asserts a time.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${1:-postgres}
case "$engine" in
postgres) rows=${2:-10500000} ;;
mariadb) rows=${2:-4000000} ;;
*) echo "usage: $0 [postgres|mariadb] [ROWS] [RUNS] [RESTIC]" >&2; exit 2 ;;
esac
runs=${3:-3}
restic=${4:-${OMK_TEST_RESTIC_018:-/opt/omk-test/restic-0.18/usr/bin/restic}}
proxy=${OMK_TEST_DOCKER_PROXY:-tcp://127.0.0.1:2375}
socket=${OMK_TEST_DOCKER_SOCKET:-unix:///var/run/docker.sock}
bin=${OMK_BENCH_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet
  bin="$PWD/target/release/omk-backup"
fi
work=/var/tmp/omk-bench-dump-$$
c=omk-bench-$engine-$$
rm -rf "$work"; mkdir -p "$work"
cleanup() { docker rm -f -v "$c" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
head -c 24 /dev/urandom | base64 > "$work/password"
ticks=$(getconf CLK_TCK)

echo "starting $engine as $c and loading $rows rows" >&2
if [ "$engine" = postgres ]; then
  docker run -d --name "$c" -e POSTGRES_PASSWORD=bench "${OMK_TEST_IMAGE_POSTGRES:-omk-test/postgres:15}" >/dev/null
  for _ in $(seq 120); do docker exec "$c" pg_isready -h 127.0.0.1 -U postgres >/dev/null 2>&1 && break; sleep 1; done
  docker exec "$c" psql -q -v ON_ERROR_STOP=1 -U postgres -c 'CREATE DATABASE bench'
  docker exec "$c" psql -q -v ON_ERROR_STOP=1 -U postgres -d bench -c \
    "CREATE TABLE t (id bigint, a text, b text); INSERT INTO t SELECT g, md5(g::text), md5((-g)::text) FROM generate_series(1, $rows) g;"
  dump=(pg_dumpall -U postgres --no-password)
else
  docker run -d --name "$c" -e MARIADB_ROOT_PASSWORD=bench "${OMK_TEST_IMAGE_MARIADB:-omk-test/mariadb:10.11}" >/dev/null
  for _ in $(seq 120); do docker exec "$c" mariadb-admin --protocol=tcp -h127.0.0.1 -uroot -pbench ping >/dev/null 2>&1 && break; sleep 1; done
  docker exec "$c" mariadb -uroot -pbench -e \
    "CREATE DATABASE bench; USE bench; CREATE TABLE t (id bigint, a text, b text); INSERT INTO t SELECT seq, md5(seq), md5(-seq) FROM seq_1_to_$rows;"
  dump=(sh -c 'MYSQL_PWD=bench exec mariadb-dump --user=root --single-transaction --routines --events --all-databases')
fi

export RESTIC_PASSWORD_FILE="$work/password" RESTIC_CACHE_DIR="$work/cache"
now() { date +%s.%N; }
load() { cut -d' ' -f1 /proc/loadavg; }

# The hand pipeline into a fresh repository: prints "WALL DOCKER_CPU".
hand() {
  local repo="$work/repo-hand"
  rm -rf "$repo"; RESTIC_REPOSITORY="$repo" "$restic" init -q >/dev/null
  local t0 t1
  t0=$(now)
  /usr/bin/time -f '%U %S' -o "$work/cli.time" docker exec "$c" "${dump[@]}" | \
    RESTIC_REPOSITORY="$repo" "$restic" backup -q --stdin --stdin-filename db.sql
  t1=$(now)
  echo "$(echo "$t1 - $t0" | bc -l) $(awk '{print $1 + $2}' "$work/cli.time")"
}

# omk-backup into a fresh repository through HOST: prints "WALL CPU PEAK_RSS_KIB".
omk() {
  local host=$1 dir="$work/omk"
  rm -rf "$dir"; mkdir -p "$dir"
  RESTIC_REPOSITORY="$dir/repo" "$restic" init -q >/dev/null
  printf '[docker]\nhost = "%s"\ndiscover = false\n\n[repository]\nurl = "repo"\npassword_file = "%s"\n\n[jobs.bench]\nkind = "%s"\ncontainer = "%s"\n' \
    "$host" "$work/password" "$engine" "$c" > "$dir/omk.toml"
  local t0 t1 pid cpu=0 hwm=0 s v
  t0=$(now)
  OMK_BACKUP_RESTIC="$restic" "$bin" --config "$dir/omk.toml" --json backup bench > "$dir/out.json" &
  pid=$!
  while [ -r "/proc/$pid/stat" ]; do
    # Fields after the ")" of comm: utime and stime are the 12th and 13th.
    s=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || true
    [ -n "$s" ] && [ "$s" -gt "$cpu" ] && cpu=$s
    v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null) || true
    [ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
    sleep 0.05
  done
  wait "$pid"
  t1=$(now)
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"][0]["bytes"])' "$dir/out.json" > "$work/bytes"
  echo "$(echo "$t1 - $t0" | bc -l) $(echo "$cpu / $ticks" | bc -l) $hwm"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

: > "$work/rounds"
for round in $(seq 0 "$runs"); do
  l0=$(load)
  if [ $((round % 2)) -eq 0 ]; then
    h=$(hand); r=$(omk "$socket"); p=$(omk "$proxy"); order="hand, raw, proxy"
  else
    p=$(omk "$proxy"); r=$(omk "$socket"); h=$(hand); order="proxy, raw, hand"
  fi
  read -r hw hc <<<"$h"; read -r rw rc rr <<<"$r"; read -r pw pc pr <<<"$p"
  label=$([ "$round" -eq 0 ] && echo "warm-up" || echo "round $round")
  printf '%-8s (%s; load %s -> %s): hand %.1f s (docker CLI %.2f s CPU) | raw %.1f s, %.2f s CPU, %s KiB | proxy %.1f s, %.2f s CPU, %s KiB | ratios %.3f / %.3f\n' \
    "$label" "$order" "$l0" "$(load)" "$hw" "$hc" "$rw" "$rc" "$rr" "$pw" "$pc" "$pr" \
    "$(echo "$rw / $hw" | bc -l)" "$(echo "$pw / $hw" | bc -l)"
  [ "$round" -gt 0 ] && echo "$hw $hc $rw $rc $rr $pw $pc $pr" >> "$work/rounds"
done

bytes=$(cat "$work/bytes")
col() { awk -v k="$1" '{print $k}' "$work/rounds" | median; }
ratio() { awk -v k="$1" '{print $k / $1}' "$work/rounds" | median; }
printf '\n%s, %s rows, dump %s bytes (%.1f MiB), %s, %s rounds after a warm-up\n' \
  "$engine" "$rows" "$bytes" "$(echo "$bytes / 1048576" | bc -l)" "$("$restic" version | cut -d' ' -f1-2)" "$runs"
printf 'median wall:   hand %.2f s | omk raw socket %.2f s | omk proxy %.2f s\n' "$(col 1)" "$(col 3)" "$(col 6)"
printf 'median ratio:  raw socket %.3f | proxy %.3f (per-round ratios, median)\n' "$(ratio 3)" "$(ratio 6)"
printf 'median CPU:    docker CLI %.2f s | omk-backup raw %.2f s | omk-backup proxy %.2f s\n' "$(col 2)" "$(col 4)" "$(col 7)"
printf 'peak RSS of omk-backup (VmHWM, max): raw %s KiB | proxy %s KiB\n' \
  "$(awk '{print $5}' "$work/rounds" | sort -g | tail -1)" "$(awk '{print $8}' "$work/rounds" | sort -g | tail -1)"
printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
