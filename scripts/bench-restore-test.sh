#!/usr/bin/env bash
# Benchmark: a database restore test by omk-backup (scratch container from the source's
# image with the isolation settings, readiness poll, `restic dump` streamed through the
# socket proxy as an archive PUT with SHA-256, end-marker check, psql -v ON_ERROR_STOP=1,
# row counts per table vs the fingerprint) vs a hand-run restore of the same dump into
# the same image with the same container settings:
#   docker run -d ... IMAGE; poll pg_isready; restic dump SNAP /bench.sql | docker exec -i C psql
# Both include starting the container and waiting for the engine; omk-backup's figure is
# its own RTO (`rto_seconds`, start of the test to verified restore) and the wall time of
# the whole command (which adds the encryption proof and the clean-up).
#   usage: scripts/bench-restore-test.sh [ROWS] [RESTIC]
#   defaults: 2000000 rows (a dump of about 150 MiB), restic 0.18 from the test env.
# Needs: dockerd, the haproxy proxy ($OMK_TEST_DOCKER_PROXY), the omk-test/postgres image.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-2000000}
restic=${2:-${OMK_TEST_RESTIC_018:-/opt/omk-test/restic-0.18/usr/bin/restic}}
proxy=${OMK_TEST_DOCKER_PROXY:-tcp://127.0.0.1:2375}
image=${OMK_TEST_IMAGE_POSTGRES:-omk-test/postgres:15}
cargo build --release --quiet
bin="$PWD/target/release/omk-backup"
work=/var/tmp/omk-bench-restore-test
c=omk-bench-rt-src-$$
m=omk-bench-rt-manual-$$
rm -rf "$work"; mkdir -p "$work"
cleanup() { docker rm -f -v "$c" "$m" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
head -c 24 /dev/urandom | base64 > "$work/password"

echo "starting $image as $c and loading $rows rows" >&2
docker run -d --name "$c" -e POSTGRES_PASSWORD=bench "$image" >/dev/null
for _ in $(seq 120); do docker exec "$c" pg_isready -h 127.0.0.1 -U postgres >/dev/null 2>&1 && break; sleep 1; done
docker exec "$c" psql -q -v ON_ERROR_STOP=1 -U postgres -c 'CREATE DATABASE bench'
docker exec "$c" psql -q -v ON_ERROR_STOP=1 -U postgres -d bench -c \
  "CREATE TABLE t (id bigint primary key, a text, b text); INSERT INTO t SELECT g, md5(g::text), md5((-g)::text) FROM generate_series(1, $rows) g;"

cat > "$work/omk.toml" <<TOML
[docker]
host = "$proxy"
discover = false

[repository]
url = "repo"
password_file = "password"

[jobs.bench]
kind = "postgres"
container = "$c"
TOML
export OMK_BACKUP_RESTIC="$restic" RESTIC_CACHE_DIR="$work/cache"
"$bin" --config "$work/omk.toml" --json backup --init bench > "$work/backup.json"
snap=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"][0]["snapshot_id"])' "$work/backup.json")
bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"][0]["bytes"])' "$work/backup.json")

now() { date +%s.%N; }
# Warm the repository's cache and the page cache once so neither side pays first reads.
RESTIC_REPOSITORY="$work/repo" RESTIC_PASSWORD_FILE="$work/password" "$restic" dump "$snap" /bench.sql > /dev/null

t0=$(now)
"$bin" --config "$work/omk.toml" --json restore-test bench > "$work/rt.json"
t1=$(now)
rto=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["tests"][0]; assert t["passed"], t; print(t["rto_seconds"])' "$work/rt.json")

# By hand: the same image, the same isolation, the same superuser trick, same psql flags.
image_id=$(docker inspect -f '{{.Image}}' "$c")
pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
t2=$(now)
docker run -d --name "$m" --network none --security-opt no-new-privileges --cap-drop ALL \
  --cap-add CHOWN --cap-add SETUID --cap-add SETGID --memory 2g --memory-swap 2g --cpus 1 \
  --pids-limit 512 --tmpfs /var/lib/postgresql/data -e POSTGRES_PASSWORD="$pw" \
  -e POSTGRES_USER=omk_restore -e POSTGRES_DB=postgres "$image_id" >/dev/null
until docker exec "$m" pg_isready -q -h 127.0.0.1 >/dev/null 2>&1; do sleep 0.25; done
RESTIC_REPOSITORY="$work/repo" RESTIC_PASSWORD_FILE="$work/password" "$restic" dump "$snap" /bench.sql \
  | docker exec -i "$m" psql -X -q -v ON_ERROR_STOP=1 -U omk_restore -d postgres >/dev/null
t3=$(now)
docker rm -f -v "$m" >/dev/null

wall=$(echo "$t1 - $t0" | bc -l); manual=$(echo "$t3 - $t2" | bc -l)
printf 'restic:           %s\n' "$("$restic" version | head -1)"
printf 'dump:             %s bytes (%.1f MiB), %s rows\n' "$bytes" "$(echo "$bytes / 1048576" | bc -l)" "$rows"
printf 'omk-backup RTO:   %.1f s (rto_seconds; through %s)\n' "$rto" "$proxy"
printf 'omk-backup wall:  %.1f s (whole restore-test command: + encryption proof, clean-up)\n' "$wall"
printf 'by hand:          %.1f s (docker run + pg_isready + restic dump | docker exec -i psql)\n' "$manual"
printf 'ratio RTO/hand:   %.2f\n' "$(echo "$rto / $manual" | bc -l)"
printf 'load average:     %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
