#!/usr/bin/env bash
# Build the local test images (no registry needed):
#   omk-test/postgres:15, omk-test/mariadb:10.11, omk-test/sqlite:3
# Each is: debootstrap --variant=minbase bookworm rootfs (tarball cached under
# /var/cache/omk-test) -> `docker import` as omk-test/rootfs-NAME:KEY ->
# `docker build` of images/NAME/Dockerfile on top (entrypoint, ENV, VOLUME,
# STOPSIGNAL: `docker import -c` does not accept STOPSIGNAL).
# An image is rebuilt only when missing or when images/NAME/* changed (label
# omk.build-hash). Every fresh build is verified by running it.
# Usage: build-images.sh [--verify] [NAME...]   (--verify: verify even if up to date)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/common.sh
source "$ROOT/scripts/lib/common.sh"

declare -A TAGS=(
  [postgres]=omk-test/postgres:15
  [mariadb]=omk-test/mariadb:10.11
  [sqlite]=omk-test/sqlite:3
)
SUITE=bookworm
FORCE_VERIFY=0
NAMES=()
for a in "$@"; do
  case "$a" in
    --verify) FORCE_VERIFY=1 ;;
    postgres|mariadb|sqlite) NAMES+=("$a") ;;
    *) die "build-images.sh: unknown argument '$a'" ;;
  esac
done
[ ${#NAMES[@]} -gt 0 ] || NAMES=(postgres mariadb sqlite)

docker_ok || die "docker daemon not reachable (run scripts/setup-test-env.sh)"
MIRROR=$(debian_mirror)
mkdir -p "$OMK_CACHE" "$OMK_LOG"

# ---------------------------------------------------------------- verification
wait_for() { # wait_for SECONDS DESCRIPTION CONTAINER CMD...
  local secs=$1 what=$2 c=$3; shift 3
  local i
  for ((i = 0; i < secs * 2; i++)); do
    if "$DOCKER" exec "$c" "$@" >/dev/null 2>&1; then return 0; fi
    if [ "$("$DOCKER" inspect -f '{{.State.Running}}' "$c" 2>/dev/null)" != true ]; then
      "$DOCKER" logs "$c" >&2 || true
      die "container $c exited while waiting for $what"
    fi
    sleep 0.5
  done
  "$DOCKER" logs "$c" >&2 || true
  die "timed out after ${secs}s waiting for $what in $c"
}
cleanup_containers=()
UNVERIFIED_TAG=""
cleanup() {
  local c
  for c in "${cleanup_containers[@]}"; do "$DOCKER" rm -f -v "$c" >/dev/null 2>&1 || true; done
  # An image whose verification failed must not count as up to date next time.
  if [ -n "$UNVERIFIED_TAG" ]; then
    log "removing $UNVERIFIED_TAG (verification failed)"
    "$DOCKER" rmi -f "$UNVERIFIED_TAG" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
start() { # start NAME docker-run-args...
  local c=$1; shift
  "$DOCKER" rm -f -v "$c" >/dev/null 2>&1 || true
  cleanup_containers+=("$c")
  "$DOCKER" run -d --name "$c" "$@" >/dev/null
}
expect_eq() { [ "$1" = "$2" ] || die "verify: expected '$2', got '$1' ($3)"; }
stop_timed() { # docker stop must be prompt (stop signal handled)
  local c=$1 t0; t0=$(now_ms)
  "$DOCKER" stop -t 20 "$c" >/dev/null
  local ms=$(( $(now_ms) - t0 ))
  [ "$ms" -lt 8000 ] || die "verify: docker stop $c took ${ms}ms (stop signal not handled?)"
  log "  docker stop took ${ms}ms"
}

verify_postgres() {
  local img=$1 c=omk-verify-postgres
  start "$c" -e POSTGRES_PASSWORD='verify pw'"'"'$x' -e POSTGRES_DB=verifydb "$img"
  # TCP only answers after the init phase (temporary server is socket-only).
  wait_for 90 "pg_isready over TCP" "$c" pg_isready -h 127.0.0.1 -U postgres
  "$DOCKER" exec "$c" psql -v ON_ERROR_STOP=1 -U postgres -d verifydb -qc \
    "CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, 'omk-verify');"
  expect_eq "$("$DOCKER" exec "$c" psql -U postgres -d verifydb -tAc 'SELECT v FROM t')" omk-verify "psql query"
  expect_eq "$("$DOCKER" exec "$c" psql -U postgres -tAc 'SHOW server_encoding')" UTF8 "encoding"
  # Password auth over TCP (scram-sha-256), right and wrong password. As in
  # the official image, 127.0.0.1 is "trust": use the container's own IP.
  local ip; ip=$("$DOCKER" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$c")
  [ -n "$ip" ] || die "verify: no IP address for $c"
  "$DOCKER" exec -e PGPASSWORD='verify pw'"'"'$x' "$c" psql -h "$ip" -U postgres -d verifydb -tAc 'SELECT 1' >/dev/null \
    || die "verify: TCP login with POSTGRES_PASSWORD failed"
  if "$DOCKER" exec -e PGPASSWORD=wrong "$c" psql -h "$ip" -U postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
    die "verify: TCP login with a wrong password succeeded"
  fi
  local dump
  dump=$("$DOCKER" exec "$c" pg_dumpall -U postgres) || die "verify: pg_dumpall failed"
  grep -q 'omk-verify' <<< "$dump" || die "verify: pg_dumpall output lacks the row"
  "$DOCKER" exec "$c" sh -c 'pg_dump -U postgres verifydb | gzip | sha256sum' >/dev/null
  expect_eq "$("$DOCKER" exec "$c" id -un)" root "exec user"
  expect_eq "$("$DOCKER" exec "$c" sh -c 'ps -o user= -p 1 2>/dev/null || stat -c %U /proc/1')" postgres "server user"
  stop_timed "$c"
  # Captured first: `docker logs | grep -q` under pipefail fails if grep exits early.
  grep -q 'fast shutdown request' <<< "$("$DOCKER" logs "$c" 2>&1)" || die "verify: postgres did not see SIGINT (fast shutdown)"
  # Arbitrary --user, like the official image supports (PGDATA below the volume).
  start "$c-uid" --user 4321:4321 -e POSTGRES_PASSWORD=x -e PGDATA=/var/lib/postgresql/data/pgdata "$img"
  wait_for 90 "pg_isready (--user 4321)" "$c-uid" pg_isready -h 127.0.0.1 -U postgres
  expect_eq "$("$DOCKER" exec "$c-uid" psql -U postgres -tAc 'SELECT 1')" 1 "--user 4321 query"
}

verify_mariadb() {
  local img=$1 c=omk-verify-mariadb
  start "$c" -e MARIADB_ROOT_PASSWORD='verify root"\'"'"'pw' -e MARIADB_DATABASE=verifydb \
    -e MARIADB_USER=app -e MARIADB_PASSWORD=app-pw "$img"
  wait_for 90 "mariadb-admin ping over TCP" "$c" mariadb-admin --protocol=tcp -h127.0.0.1 ping
  local rootpw='verify root"\'"'"'pw'
  "$DOCKER" exec -e MYSQL_PWD="$rootpw" "$c" mariadb -uroot verifydb -e \
    "CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, 'omk-verify');"
  expect_eq "$("$DOCKER" exec -e MYSQL_PWD=app-pw "$c" mariadb --protocol=tcp -h127.0.0.1 -uapp verifydb -NBe 'SELECT v FROM t')" omk-verify "app user query over TCP"
  expect_eq "$("$DOCKER" exec -e MYSQL_PWD="$rootpw" "$c" mariadb --protocol=tcp -h127.0.0.1 -uroot -NBe 'SELECT 1')" 1 "root over TCP"
  if "$DOCKER" exec -e MYSQL_PWD=wrong "$c" mariadb -uroot -NBe 'SELECT 1' >/dev/null 2>&1; then
    die "verify: root login with a wrong password succeeded"
  fi
  local dump
  dump=$("$DOCKER" exec -e MYSQL_PWD="$rootpw" "$c" mariadb-dump -uroot --all-databases --single-transaction) \
    || die "verify: mariadb-dump --all-databases failed"
  grep -q 'omk-verify' <<< "$dump" || die "verify: mariadb-dump output lacks the row"
  "$DOCKER" exec -e MYSQL_PWD="$rootpw" "$c" sh -c 'mysqldump -uroot verifydb | gzip | sha256sum' >/dev/null
  expect_eq "$("$DOCKER" exec "$c" stat -c %U /proc/1)" mysql "server user"
  "$DOCKER" exec "$c" test -S /run/mysqld/mysqld.sock || die "verify: no socket at /run/mysqld/mysqld.sock"
  stop_timed "$c"
}

verify_sqlite() {
  local img=$1 c=omk-verify-sqlite
  start "$c" "$img"
  wait_for 30 "/data/app.db" "$c" test -s /data/app.db
  expect_eq "$("$DOCKER" exec "$c" sqlite3 /data/app.db 'SELECT count(*) FROM items')" 3 "sqlite rows"
  expect_eq "$("$DOCKER" exec "$c" sqlite3 /data/app.db 'PRAGMA journal_mode')" wal "journal mode"
  "$DOCKER" exec "$c" sh -c 'sqlite3 /data/app.db .dump | gzip | sha256sum' >/dev/null
  stop_timed "$c"
}

# ---------------------------------------------------------------- build
build_one() {
  local name=$1 tag=${TAGS[$1]} dir="$ROOT/images/$1"
  local pkgs key base tarball build_hash have t0 t1
  pkgs=$(tr -s ' \n\t' ',' < "$dir/packages" | sed 's/^,//; s/,$//')
  # The rootfs depends on suite, mirror and package list only.
  key=$(printf '%s\n' "$SUITE" minbase "$MIRROR" "$pkgs" | sha256sum | cut -c1-16)
  base="omk-test/rootfs-$name:$key"
  tarball="$OMK_CACHE/rootfs-$name-$key.tar"
  # The final image also depends on everything in images/NAME/.
  build_hash=$( { echo "$key"; cd "$dir" && find . -type f | LC_ALL=C sort | while read -r f; do
      printf '%s %s\n' "$f" "$(stat -c %a "$f")"; cat "$f"; done; } | sha256sum | cut -c1-16)
  have=$("$DOCKER" image inspect -f '{{index .Config.Labels "omk.build-hash"}}' "$tag" 2>/dev/null || true)
  if [ "$have" = "$build_hash" ]; then
    log "$tag is up to date ($build_hash)"
    if [ "$FORCE_VERIFY" = 1 ]; then "verify_$name" "$tag"; log "$tag verified"; fi
    return 0
  fi
  log "building $tag (build hash $build_hash, rootfs $key)"
  t0=$(now_ms)
  if ! "$DOCKER" image inspect "$base" >/dev/null 2>&1; then
    if [ ! -s "$tarball" ]; then
      local work="$OMK_CACHE/work-$name"
      rm -rf "$work"; mkdir -p "$work"
      log "debootstrap $SUITE ($pkgs) from $MIRROR -> $tarball (log: $OMK_LOG/debootstrap-$name.log)"
      if ! debootstrap --variant=minbase --include="$pkgs" "$SUITE" "$work" "$MIRROR" \
          > "$OMK_LOG/debootstrap-$name.log" 2>&1; then
        tail -n 30 "$OMK_LOG/debootstrap-$name.log" >&2
        die "debootstrap for $name failed (see $OMK_LOG/debootstrap-$name.log)"
      fi
      rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/*_* "$work"/tmp/*
      tar --numeric-owner -C "$work" -cf "$tarball.partial" .
      mv "$tarball.partial" "$tarball"
      rm -rf "$work"
      log "rootfs tarball done in $(elapsed "$t0" "$(now_ms)") ($(du -h "$tarball" | cut -f1))"
    else
      log "using cached rootfs $tarball"
    fi
    t1=$(now_ms)
    "$DOCKER" import -m "omk-test rootfs $name ($SUITE minbase: $pkgs)" "$tarball" "$base" >/dev/null
    log "imported $base in $(elapsed "$t1" "$(now_ms)")"
  fi
  t1=$(now_ms)
  if ! DOCKER_BUILDKIT=0 "$DOCKER" build -q --build-arg "BASE=$base" --label "omk.build-hash=$build_hash" \
      -t "$tag" "$dir" > "$OMK_LOG/build-$name.log" 2>&1; then
    cat "$OMK_LOG/build-$name.log" >&2
    die "docker build of $tag failed"
  fi
  log "docker build $tag in $(elapsed "$t1" "$(now_ms)")"
  t1=$(now_ms)
  UNVERIFIED_TAG=$tag
  "verify_$name" "$tag"
  UNVERIFIED_TAG=""
  log "$tag verified in $(elapsed "$t1" "$(now_ms)"); total $(elapsed "$t0" "$(now_ms)")"
}

for n in "${NAMES[@]}"; do build_one "$n"; done
