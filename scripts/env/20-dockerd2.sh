# shellcheck shell=bash
# A second Docker engine on this machine (tests/it/engines.rs): several engines from one
# omk-backup, a separate restore lab, cross-host restores. Sourced by
# scripts/setup-test-env.sh (uses log/die/step_done/pid_alive/stop_pid/port_listener).
#   - dockerd with its own data root, exec root, socket, pid file and bridge
#     (never `--bridge none`: that daemon deletes the first engine's docker0, see
#     /work/shared/notes/field-notes.md), no iptables or masquerading changes;
#   - the test images copied into it (docker save | docker load) when missing or changed;
#   - haproxy 127.0.0.1:2385: the suite's proxy rules (tests/proxy/haproxy.cfg) in front
#     of this engine;
#   - haproxy 127.0.0.1:2386: a *lab-mode* production proxy in front of the FIRST engine:
#     the same rules without container create, start, kill, delete or archive PUT, plus
#     `GET /images/{id}/get` (the lab copies a missing image from production).
D2_NAME=omk-docker2
D2_SOCK=$OMK_RUN/docker2.sock
D2_DATA=/var/lib/omk-test/docker2
D2_EXEC=$OMK_RUN/docker2-exec
D2_PID=$OMK_RUN/docker2.pid
D2_BRIDGE=omkbr2
D2_CIDR=172.31.254.1/24
D2_PROXY_PORT=2385
D2_LAB_PORT=2386
d2() { "$DOCKER" -H "unix://$D2_SOCK" "$@"; }
d2_ok() { d2 info >/dev/null 2>&1; }

t=$(now_ms)
if d2_ok; then
  d2s="already running"
else
  # Its own bridge, created first (dockerd with --bridge uses an existing one).
  if ! ip link show "$D2_BRIDGE" >/dev/null 2>&1; then
    ip link add "$D2_BRIDGE" type bridge || die "ip link add $D2_BRIDGE type bridge failed"
  fi
  ip -4 addr show dev "$D2_BRIDGE" | grep -q "${D2_CIDR%/*}/" \
    || ip addr add "$D2_CIDR" dev "$D2_BRIDGE" || die "ip addr add $D2_CIDR dev $D2_BRIDGE failed"
  ip link set "$D2_BRIDGE" up || die "ip link set $D2_BRIDGE up failed"
  d2pid=""
  [ -f "$D2_PID" ] && d2pid=$(cat "$D2_PID")
  if pid_alive "$d2pid"; then
    log "second dockerd (pid $d2pid) exists but does not answer yet; waiting for it"
  else
    rm -f "$D2_PID" "$D2_SOCK"
    mkdir -p "$D2_DATA" "$D2_EXEC"
    log "starting the second dockerd (socket $D2_SOCK, log: $OMK_LOG/$D2_NAME.log)"
    setsid nohup /usr/sbin/dockerd --data-root "$D2_DATA" --exec-root "$D2_EXEC" \
      -H "unix://$D2_SOCK" --pidfile "$D2_PID" --bridge "$D2_BRIDGE" \
      --iptables=false --ip-masq=false \
      >> "$OMK_LOG/$D2_NAME.log" 2>&1 < /dev/null 9>&- &
  fi
  for _ in $(seq 120); do d2_ok && break; sleep 0.5; done
  if ! d2_ok; then
    tail -n 30 "$OMK_LOG/$D2_NAME.log" >&2 || true
    die "the second dockerd did not answer on $D2_SOCK within 60 s (log: $OMK_LOG/$D2_NAME.log)"
  fi
  d2s="started"
fi
# The first engine must still have its bridge (the --bridge none trap).
ip link show docker0 >/dev/null 2>&1 || die "docker0 is gone: the first engine cannot run containers"
step_done "second dockerd" "$t" "$d2s ($D2_SOCK, bridge $D2_BRIDGE)"

# Test images: copied when missing on the second engine or when their id differs.
t=$(now_ms)
d2_loaded=()
for img in omk-test/postgres:15 omk-test/mariadb:10.11 omk-test/sqlite:3; do
  want=$("$DOCKER" image inspect -f '{{.Id}}' "$img" 2>/dev/null) || die "$img is missing on the first engine"
  have=$(d2 image inspect -f '{{.Id}}' "$img" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    log "copying $img to the second engine"
    "$DOCKER" save "$img" | d2 load -q >> "$OMK_LOG/$D2_NAME.log" 2>&1 \
      || die "docker save $img | docker -H unix://$D2_SOCK load failed"
    d2_loaded+=("$img")
  fi
done
step_done "second dockerd images" "$t" "${d2_loaded[*]:-up to date}"

# ensure_haproxy2 NAME PORT CONFIG: like ensure_proxy, with its own pid file (both
# processes are haproxy).
ensure_haproxy2() {
  local name=$1 port=$2 cfg=$3
  local pidf="$OMK_RUN/$name.pid" shaf="$OMK_RUN/$name.cfg.sha256" pid="" sum exe
  sum=$(sha256sum "$cfg" | cut -d' ' -f1)
  [ -f "$pidf" ] && pid=$(cat "$pidf")
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  if pid_alive "$pid" && [ "${exe##*/}" = haproxy ]; then
    if [ "$(cat "$shaf" 2>/dev/null)" = "$sum" ]; then echo "already running (pid $pid)"; return 0; fi
    log "restarting $name (config changed)"
    stop_pid "$pid"
  fi
  rm -f "$pidf" "$shaf"
  [ -z "$(port_listener "$port")" ] || die "port $port is already in use: $(port_listener "$port")"
  setsid nohup /usr/sbin/haproxy -db -f "$cfg" >> "$OMK_LOG/$name.log" 2>&1 < /dev/null 9>&- &
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
SUITE_CFG=$ROOT/tests/proxy/haproxy.cfg
D2_PROXY_CFG=$OMK_RUN/haproxy-docker2.cfg
LAB_PROXY_CFG=$OMK_RUN/haproxy-labmode.cfg
# The suite's rules, in front of the second engine, plus `POST /images/load` (as the
# restore lab, it receives images copied from production).
sed -e "s|^    bind 127.0.0.1:2375\$|    bind 127.0.0.1:$D2_PROXY_PORT|" \
    -e "s|^    server docker /var/run/docker.sock\$|    server docker $D2_SOCK|" \
    -e "s|^    http-request allow if image_inspect METH_GET\$|&\n    # The restore lab loads images copied from production.\n    acl image_load path,url_dec -m reg '^(/v1\\\\.[0-9]+)?/images/load\$'\n    http-request allow if image_load METH_POST|" \
    "$SUITE_CFG" > "$D2_PROXY_CFG.new"
grep -q "bind 127.0.0.1:$D2_PROXY_PORT\$" "$D2_PROXY_CFG.new" && grep -q "server docker $D2_SOCK\$" "$D2_PROXY_CFG.new" \
  && grep -q 'allow if image_load METH_POST' "$D2_PROXY_CFG.new" \
  || die "could not derive $D2_PROXY_CFG from $SUITE_CFG (its bind/server lines changed)"
mv "$D2_PROXY_CFG.new" "$D2_PROXY_CFG"
# Lab mode, in front of the first engine: no create/start/kill/delete/archive PUT.
# (stop is kept for quiesce; start is dropped, so a stop-quiesced container could not be
# started again: the lab tests quiesce by pause only.)
sed -e "s|^    bind 127.0.0.1:2375\$|    bind 127.0.0.1:$D2_LAB_PORT|" \
    -e 's#/(pause|unpause|stop|start|kill)\$#/(pause|unpause|stop)$#' \
    -e '/^    http-request allow if container_create /d' \
    -e '/^    http-request allow if container_delete /d' \
    -e '/^    http-request allow if restore_archive /d' \
    -e "s|^    http-request allow if image_inspect METH_GET\$|&\n    # Lab mode: the lab copies a missing image from here (a read).\n    acl image_export path,url_dec -m reg '^(/v1\\\\.[0-9]+)?/images/[a-zA-Z0-9][a-zA-Z0-9_.:@/-]*/get\$'\n    http-request allow if image_export METH_GET|" \
    "$SUITE_CFG" > "$LAB_PROXY_CFG.new"
for gone in container_create container_delete restore_archive; do
  ! grep -q "^    http-request allow if $gone " "$LAB_PROXY_CFG.new" || die "lab-mode proxy still allows $gone"
done
grep -q 'allow if image_export METH_GET' "$LAB_PROXY_CFG.new" || die "lab-mode proxy lacks the image export rule"
mv "$LAB_PROXY_CFG.new" "$LAB_PROXY_CFG"
for c in "$D2_PROXY_CFG" "$LAB_PROXY_CFG"; do haproxy -q -c -f "$c" || die "invalid $c"; done
d2ps=$(ensure_haproxy2 haproxy-docker2 "$D2_PROXY_PORT" "$D2_PROXY_CFG")
labs=$(ensure_haproxy2 haproxy-labmode "$D2_LAB_PORT" "$LAB_PROXY_CFG")
# Smoke tests: the second engine answers through its proxy, the lab-mode proxy refuses
# what it must and allows the image export.
[ "$(curl -fsS --max-time 10 "http://127.0.0.1:$D2_PROXY_PORT/_ping")" = OK ] || die "proxy :$D2_PROXY_PORT: GET /_ping is not OK"
check_code "$D2_PROXY_PORT" GET /info 403
check_code "$D2_PROXY_PORT" POST /images/create 403
check_code "$D2_PROXY_PORT" GET /containers/omk-no-such-container/json 404
check_code "$D2_LAB_PORT" GET /v1.41/version 200
check_code "$D2_LAB_PORT" POST /containers/create 403
check_code "$D2_LAB_PORT" POST /containers/omk-restore-x/start 403
check_code "$D2_LAB_PORT" DELETE /containers/omk-restore-x 403
check_code "$D2_LAB_PORT" PUT '/containers/omk-restore-x/archive?path=/tmp' 403
check_code "$D2_LAB_PORT" GET /images/omk-no-such-image/get 404
check_code "$D2_LAB_PORT" GET /containers/omk-no-such-container/json 404
step_done "docker2 proxies" "$t" "haproxy :$D2_PROXY_PORT $d2ps; lab-mode :$D2_LAB_PORT $labs"

ENV_EXTRA+=(
  "OMK_TEST_DOCKER2_SOCKET=unix://$D2_SOCK"
  "OMK_TEST_DOCKER2_PROXY=tcp://127.0.0.1:$D2_PROXY_PORT"
  "OMK_TEST_DOCKER_LAB_PROXY=tcp://127.0.0.1:$D2_LAB_PORT"
)
