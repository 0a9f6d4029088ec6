#!/usr/bin/env bash
# Install and start everything the omk-backup test suite needs, idempotently,
# then write target/omk-test-env.sh (export lines). Run as root on Debian 12.
#   - Debian packages (docker.io, restic 0.14, haproxy, nginx-light, ...)
#   - restic 0.18 from Debian 13 (trixie), unpacked under /opt/omk-test
#   - dockerd (background, log /var/log/omk-test/dockerd.log)
#   - test images omk-test/{postgres:15,mariadb:10.11,sqlite:3} (scripts/build-images.sh)
#   - socket proxies: haproxy on 127.0.0.1:2375, nginx (upgrade-passing) on 127.0.0.1:2376
#   - deployment: omk-backup:local + omk-test/haproxy:2.6 (scripts/build-image.sh, with
#     the release build), docker-compose 1.29, systemd-analyze, the service user
# Fast when everything is already in place. Every failure exits non-zero.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/common.sh
source "$ROOT/scripts/lib/common.sh"

[ "$(id -u)" = 0 ] || die "setup-test-env.sh must run as root"
mkdir -p "$OMK_RUN" "$OMK_LOG" "$OMK_CACHE"
# Serialise concurrent runs (two test runs starting at once). Daemons started
# below get "9>&-" so they do not inherit (and hold) this lock.
exec 9> "$OMK_RUN/setup.lock"
flock -w 600 9 || die "another setup-test-env.sh holds $OMK_RUN/setup.lock"

T_ALL=$(now_ms)
declare -a SUMMARY=()
step_done() { SUMMARY+=("$(printf '%-28s %8s  %s' "$1" "$(elapsed "$2" "$(now_ms)")" "${3:-}")"); }

# ------------------------------------------------------------------ packages
PACKAGES=(docker.io restic haproxy nginx-light debootstrap sqlite3 curl jq ca-certificates util-linux iproute2 procps chromium bc)
# deployment (tests/it/deploy.rs): compose validation/runs, unit verification, strip.
PACKAGES+=(docker-compose systemd binutils)
# Remote repositories: rclone serves the restic REST protocol (see the REST block below).
PACKAGES+=(rclone openssl)
t=$(now_ms)
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q > "$OMK_LOG/apt.log" 2>&1 || { tail -n 20 "$OMK_LOG/apt.log" >&2; die "apt-get update failed"; }
  apt-get install -y -q "${missing[@]}" >> "$OMK_LOG/apt.log" 2>&1 || { tail -n 30 "$OMK_LOG/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
  step_done "apt packages" "$t" "installed: ${missing[*]}"
else
  step_done "apt packages" "$t" "already installed"
fi
for b in /usr/bin/docker /usr/sbin/dockerd /usr/bin/restic /usr/sbin/haproxy /usr/sbin/nginx /usr/sbin/debootstrap /usr/bin/curl /usr/bin/jq; do
  [ -x "$b" ] || die "$b missing after package install"
done
restic014=/usr/bin/restic
"$restic014" version | grep -q '^restic 0\.14\.' || die "$restic014 is not restic 0.14: $("$restic014" version)"

# ------------------------------------------------------------------ restic 0.18 (trixie)
t=$(now_ms)
R18_DIR=/opt/omk-test/restic-0.18
restic018=$R18_DIR/usr/bin/restic
if [ -x "$restic018" ] && "$restic018" version 2>/dev/null | grep -q '^restic 0\.18\.'; then
  step_done "restic 0.18" "$t" "already in $R18_DIR"
else
  mirror=$(debian_mirror)
  A=$OMK_CACHE/apt-trixie
  rm -rf "$A"; mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/etc" "$A/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$A/etc/sources.list"
  # A separate apt configuration: own sources, lists and caches; the
  # system's apt state is not touched.
  APT_OPTS=(
    -o Dir::Etc::sourcelist="$A/etc/sources.list" -o Dir::Etc::sourceparts=-
    -o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache"
    -o Dir::Etc::preferences=/dev/null -o Dir::Etc::preferencesparts=-
    -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root
    -o Acquire::Languages=none
  )
  log "fetching restic from $mirror trixie"
  apt-get -q "${APT_OPTS[@]}" update > "$OMK_LOG/apt-trixie.log" 2>&1 \
    || { tail -n 20 "$OMK_LOG/apt-trixie.log" >&2; die "apt-get update (trixie, temporary config) failed"; }
  (cd "$A/debs" && apt-get -q "${APT_OPTS[@]}" download restic) >> "$OMK_LOG/apt-trixie.log" 2>&1 \
    || { tail -n 20 "$OMK_LOG/apt-trixie.log" >&2; die "apt-get download restic (trixie) failed"; }
  deb=$(ls "$A"/debs/restic_*.deb 2>/dev/null | head -n 1)
  [ -n "$deb" ] || die "no restic .deb downloaded from trixie"
  rm -rf "$R18_DIR.new"; mkdir -p "$R18_DIR.new"
  dpkg-deb -x "$deb" "$R18_DIR.new"
  "$R18_DIR.new/usr/bin/restic" version | grep -q '^restic 0\.18\.' \
    || die "trixie restic is not 0.18: $("$R18_DIR.new/usr/bin/restic" version)"
  rm -rf "$R18_DIR"; mv "$R18_DIR.new" "$R18_DIR"
  rm -rf "$A"
  step_done "restic 0.18" "$t" "$(basename "$deb")"
fi

# ------------------------------------------------------------------ dockerd
t=$(now_ms)
if docker_ok; then
  step_done "dockerd" "$t" "already running"
else
  if pgrep -x dockerd >/dev/null; then
    log "dockerd process exists but 'docker info' fails; waiting for it"
  else
    # A stale pid file (daemon killed, pid reused) makes dockerd refuse to start.
    if [ -f /var/run/docker.pid ] && ! pgrep -x dockerd >/dev/null; then rm -f /var/run/docker.pid; fi
    log "starting dockerd (log: $OMK_LOG/dockerd.log)"
    # setsid + nohup: survives this script and the test run.
    setsid nohup /usr/sbin/dockerd >> "$OMK_LOG/dockerd.log" 2>&1 < /dev/null 9>&- &
    echo $! > "$OMK_RUN/dockerd.pid"
  fi
  for _ in $(seq 120); do docker_ok && break; sleep 0.5; done
  if ! docker_ok; then
    tail -n 30 "$OMK_LOG/dockerd.log" >&2 || true
    die "dockerd did not answer 'docker info' within 60 s (log: $OMK_LOG/dockerd.log)"
  fi
  step_done "dockerd" "$t" "started"
fi
[ -S /var/run/docker.sock ] || die "/var/run/docker.sock is not a socket"

# ------------------------------------------------------------------ images
t=$(now_ms)
bash "$ROOT/scripts/build-images.sh" || die "building test images failed"
step_done "images" "$t"

# ------------------------------------------------------------------ proxies
pid_alive() { # running and not a zombie
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
stop_pid() { # stop_pid PID: TERM, wait up to 5 s, then KILL
  local pid=$1
  pid_alive "$pid" || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do pid_alive "$pid" || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
port_listener() { ss -Hltnp "sport = :$1" 2>/dev/null || true; }

# ensure_proxy NAME PORT CONFIG CMD...: (re)start CMD in the background unless
# our process is alive with the same config; then wait for the port.
ensure_proxy() {
  local name=$1 port=$2 cfg=$3; shift 3
  local pidf="$OMK_RUN/$name.pid" shaf="$OMK_RUN/$name.cfg.sha256" pid="" sum exe
  sum=$(sha256sum "$cfg" | cut -d' ' -f1)
  [ -f "$pidf" ] && pid=$(cat "$pidf")
  if pid_alive "$pid" && [ "$(cat "$shaf" 2>/dev/null)" = "$sum" ]; then
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    case "$exe" in */"$name") echo "already running (pid $pid)"; return 0 ;; esac
  fi
  if pid_alive "$pid"; then
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    case "$exe" in */"$name") log "restarting $name (config changed)"; stop_pid "$pid" ;; esac
  fi
  rm -f "$pidf" "$shaf"
  if [ -n "$(port_listener "$port")" ]; then
    die "port $port is already in use by something else: $(port_listener "$port")"
  fi
  setsid nohup "$@" >> "$OMK_LOG/$name.log" 2>&1 < /dev/null 9>&- &
  pid=$!
  echo "$pid" > "$pidf"
  echo "$sum" > "$shaf"
  for _ in $(seq 50); do
    [ -n "$(port_listener "$port")" ] && break
    pid_alive "$pid" || break
    sleep 0.1
  done
  if ! pid_alive "$pid" || [ -z "$(port_listener "$port")" ]; then
    tail -n 20 "$OMK_LOG/$name.log" >&2 || true
    die "$name did not start listening on 127.0.0.1:$port (log: $OMK_LOG/$name.log)"
  fi
  echo "started (pid $pid)"
}

t=$(now_ms)
HAPROXY_CFG=$ROOT/tests/proxy/haproxy.cfg
NGINX_CFG=$ROOT/tests/proxy/nginx.conf
mkdir -p "$OMK_RUN/nginx"
haproxy -q -c -f "$HAPROXY_CFG" || die "invalid $HAPROXY_CFG"
nginx -q -t -c "$NGINX_CFG" -e "$OMK_LOG/nginx-error.log" 2>&1 | grep -v 'test is successful' >&2 || true
nginx -q -t -c "$NGINX_CFG" -e "$OMK_LOG/nginx-error.log" >/dev/null 2>&1 || die "invalid $NGINX_CFG"
hs=$(ensure_proxy haproxy 2375 "$HAPROXY_CFG" /usr/sbin/haproxy -db -f "$HAPROXY_CFG")
ns=$(ensure_proxy nginx 2376 "$NGINX_CFG" /usr/sbin/nginx -c "$NGINX_CFG" -e "$OMK_LOG/nginx-error.log")

# Smoke-test both proxies: allowed, denied and the restore-archive rule.
check_code() { # check_code PORT METHOD PATH EXPECTED
  local got
  local m=(-X "$2"); [ "$2" = HEAD ] && m=(-I)
  got=$(curl -s --path-as-is --max-time 10 -o /dev/null -w "%{http_code}" "${m[@]}" "http://127.0.0.1:$1$3" || true)
  [ "$got" = "$4" ] || die "proxy :$1: $2 $3 returned $got, expected $4"
}
for port in 2375 2376; do
  [ "$(curl -fsS --max-time 10 "http://127.0.0.1:$port/_ping")" = OK ] || die "proxy :$port: GET /_ping is not OK"
  check_code "$port" HEAD /_ping 200
  check_code "$port" GET /v1.41/version 200
  check_code "$port" GET /containers/json 200
  check_code "$port" GET /v1.41/containers/json 200
  check_code "$port" GET /info 403
  check_code "$port" GET /v1.41/info 403
  check_code "$port" GET /images/json 403
  check_code "$port" POST /images/create 403
  check_code "$port" PUT /containers/some-app/archive 403
  check_code "$port" PUT /containers/omk-restore-x/../some-app/archive 403
  check_code "$port" GET /containers/omk-no-such-container/json 404
  # Allowed by the proxy, so the daemon answers (no such container).
  check_code "$port" PUT '/containers/omk-restore-no-such/archive?path=/tmp' 404
done
step_done "proxies" "$t" "haproxy :2375 $hs; nginx :2376 $ns"

# ------------------------------------------------------------------ deployment image
# omk-backup:local as deploy/compose.yaml runs it, and the harness's haproxy as a
# container (tests/it/deploy.rs). Cached: the rootfs only when its inputs change, the
# binary layer only when the release binary changes. The systemd test runs run-due as
# the unit's User=omk-backup, created as docs/deploy.md says.
t=$(now_ms)
for b in /usr/bin/docker-compose /usr/bin/systemd-analyze /usr/bin/strip; do
  [ -x "$b" ] || die "$b missing after package install"
done
id omk-backup >/dev/null 2>&1 \
  || useradd --system --home-dir /var/lib/omk-backup --no-create-home --shell /usr/sbin/nologin omk-backup \
  || die "useradd omk-backup failed"
bash "$ROOT/scripts/build-image.sh" --test-proxy || die "building omk-backup:local failed (scripts/build-image.sh)"
step_done "deployment image" "$t" "$("$DOCKER" image inspect -f '{{.Size}}' omk-backup:local | awk '{printf "omk-backup:local %.0f MB", $1/1e6}')"

# ------------------------------------------------------------------ REST repository server
# `rclone serve restic` is a real rest-server protocol endpoint. Basic auth from an
# htpasswd file (`{SHA}` form), so the password is in no argv; tests read it from
# $OMK_TEST_REST_PASS_FILE and use a sub-path of their own per repository.
t=$(now_ms)
REST_PORT=2380
REST_DIR=/var/lib/omk-test/rest
REST_PASS_FILE=$OMK_RUN/rest-server.pass
mkdir -p "$REST_DIR"
if [ ! -s "$REST_PASS_FILE" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$REST_PASS_FILE")
fi
chmod 600 "$REST_PASS_FILE"
REST_HTPASSWD=$OMK_RUN/rest-server.htpasswd
printf 'omk:{SHA}%s\n' "$(tr -d '\n' < "$REST_PASS_FILE" | openssl dgst -sha1 -binary | base64)" > "$REST_HTPASSWD.new"
chmod 600 "$REST_HTPASSWD.new"
mv "$REST_HTPASSWD.new" "$REST_HTPASSWD"
REST_CFG=$OMK_RUN/rest-server.args
printf '%s\n' "serve restic --addr 127.0.0.1:$REST_PORT --htpasswd $REST_HTPASSWD $REST_DIR" "$(sha256sum "$REST_HTPASSWD")" > "$REST_CFG"
rs=$(ensure_proxy rclone "$REST_PORT" "$REST_CFG" /usr/bin/rclone serve restic --addr "127.0.0.1:$REST_PORT" --htpasswd "$REST_HTPASSWD" "$REST_DIR")
got=$(curl -s --max-time 10 -o /dev/null -w "%{http_code}" "http://127.0.0.1:$REST_PORT/" || true)
[ "$got" = 401 ] || die "REST server :$REST_PORT answered $got without credentials, expected 401"
step_done "REST server" "$t" "rclone :$REST_PORT $rs"

# ------------------------------------------------------------------ web dashboard tests
# tests/it/web.rs: promtool (Debian's prometheus package) checks /metrics; chromium with
# chromium-driver (WebDriver) drives the real-browser test. The prometheus server the
# package brings is not needed: it is not started here.
t=$(now_ms)
web_missing=()
for p in chromium chromium-driver prometheus; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then web_missing+=("$p"); fi
done
if [ ${#web_missing[@]} -gt 0 ]; then
  log "installing Debian packages for the web tests: ${web_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q > "$OMK_LOG/apt-web.log" 2>&1 || { tail -n 20 "$OMK_LOG/apt-web.log" >&2; die "apt-get update failed"; }
  apt-get install -y -q --no-install-recommends "${web_missing[@]}" >> "$OMK_LOG/apt-web.log" 2>&1 \
    || { tail -n 30 "$OMK_LOG/apt-web.log" >&2; die "apt-get install ${web_missing[*]} failed"; }
fi
for b in /usr/bin/promtool /usr/bin/chromedriver /usr/bin/chromium; do
  [ -x "$b" ] || die "$b missing after package install (web tests)"
done
step_done "web test tools" "$t" "promtool, chromium, chromedriver"

# ------------------------------------------------------------------ more services
# Each scripts/env/*.sh adds one service (sourced in name order, same shell: it may use
# log/die/step_done/ensure_proxy and must be idempotent) and appends the export lines
# its tests need to ENV_EXTRA.
ENV_EXTRA=()
for part in "$ROOT"/scripts/env/*.sh; do
  [ -e "$part" ] || continue
  # shellcheck source=/dev/null
  . "$part"
done

# ------------------------------------------------------------------ env file
mkdir -p "$ROOT/target"
ENV_FILE=$ROOT/target/omk-test-env.sh
cat > "$ENV_FILE.tmp" <<ENV
# Written by scripts/setup-test-env.sh — source it before running the tests.
export OMK_TEST_RESTIC_014=$restic014
export OMK_TEST_RESTIC_018=$restic018
export OMK_TEST_DOCKER_PROXY=tcp://127.0.0.1:2375
export OMK_TEST_DOCKER_UPGRADE_PROXY=tcp://127.0.0.1:2376
export OMK_TEST_DOCKER_SOCKET=unix:///var/run/docker.sock
export OMK_TEST_IMAGE_POSTGRES=omk-test/postgres:15
export OMK_TEST_IMAGE_MARIADB=omk-test/mariadb:10.11
export OMK_TEST_IMAGE_SQLITE=omk-test/sqlite:3
export OMK_TEST_IMAGE_OMK_BACKUP=omk-backup:local
export OMK_TEST_IMAGE_PROXY=omk-test/haproxy:2.6
export OMK_TEST_REST_ADDR=127.0.0.1:$REST_PORT
export OMK_TEST_REST_USER=omk
export OMK_TEST_REST_PASS_FILE=$REST_PASS_FILE
ENV
for line in "${ENV_EXTRA[@]}"; do printf 'export %s\n' "$line" >> "$ENV_FILE.tmp"; done
mv "$ENV_FILE.tmp" "$ENV_FILE"

# ------------------------------------------------------------------ summary
{
  echo "omk-test environment ready in $(elapsed "$T_ALL" "$(now_ms)")"
  printf '  %s\n' "${SUMMARY[@]}"
  echo "  docker:  $("$DOCKER" version -f '{{.Server.Version}} (API {{.Server.APIVersion}})')"
  echo "  restic:  $("$restic014" version | cut -d' ' -f1-2) | $("$restic018" version | cut -d' ' -f1-2)"
  echo "  images:  $("$DOCKER" image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^omk-test/(postgres|mariadb|sqlite):' | sort | tr '\n' ' ')"
  echo "  env:     $ENV_FILE"
} >&2
