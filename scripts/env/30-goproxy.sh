# shellcheck shell=bash
# A CetusGuard-like Go forwarding proxy on 127.0.0.1:2377 (scripts/goproxy/main.go):
# Transport.RoundTrip + io.Copy for plain answers, hijack for upgraded ones, the same
# allow-list as tests/proxy/haproxy.cfg. Built with Debian's golang-go, only when its
# source changed; (re)started like the other proxies. Sourced by setup-test-env.sh.
t=$(now_ms)
if ! dpkg-query -W -f='${Status}' golang-go 2>/dev/null | grep -q 'install ok installed'; then
  log "installing golang-go (the Go proxy)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q > "$OMK_LOG/apt-go.log" 2>&1 || { tail -n 20 "$OMK_LOG/apt-go.log" >&2; die "apt-get update failed"; }
  apt-get install -y -q golang-go >> "$OMK_LOG/apt-go.log" 2>&1 \
    || { tail -n 30 "$OMK_LOG/apt-go.log" >&2; die "apt-get install golang-go failed"; }
fi
[ -x /usr/bin/go ] || die "/usr/bin/go missing after installing golang-go"

GOPROXY_SRC=$ROOT/scripts/goproxy
GOPROXY_DIR=/opt/omk-test/goproxy
GOPROXY_BIN=$GOPROXY_DIR/omk-goproxy
GOPROXY_PORT=2377
src_sum=$(cat "$GOPROXY_SRC/main.go" "$GOPROXY_SRC/go.mod" | sha256sum | cut -d' ' -f1)
if [ -x "$GOPROXY_BIN" ] && [ "$(cat "$GOPROXY_DIR/source.sha256" 2>/dev/null)" = "$src_sum" ]; then
  built="binary up to date"
else
  log "building the Go proxy ($GOPROXY_SRC)"
  mkdir -p "$GOPROXY_DIR" "$OMK_CACHE/go-build"
  # Offline (no module proxy is reachable, none is needed: standard library only).
  (cd "$GOPROXY_SRC" && GOCACHE=$OMK_CACHE/go-build GOPATH=$OMK_CACHE/gopath GOFLAGS=-mod=mod \
    GOPROXY=off CGO_ENABLED=0 go build -o "$GOPROXY_BIN.new" .) > "$OMK_LOG/goproxy-build.log" 2>&1 \
    || { tail -n 30 "$OMK_LOG/goproxy-build.log" >&2; die "building scripts/goproxy failed (log: $OMK_LOG/goproxy-build.log)"; }
  mv "$GOPROXY_BIN.new" "$GOPROXY_BIN"
  echo "$src_sum" > "$GOPROXY_DIR/source.sha256"
  built="built"
  # A proxy still running the replaced binary shows "(deleted)" in its exe link, which
  # ensure_proxy does not recognise as ours: stop it here.
  old=$(cat "$OMK_RUN/omk-goproxy.pid" 2>/dev/null \
    || port_listener "$GOPROXY_PORT" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2 || true)
  if pid_alive "$old" && [ "$(readlink "/proc/$old/exe" 2>/dev/null)" = "$GOPROXY_BIN (deleted)" ]; then
    log "stopping the Go proxy running the old binary (pid $old)"
    stop_pid "$old"
  fi
fi
# The "config" ensure_proxy watches: arguments plus the binary's digest, so a rebuild
# restarts the running proxy.
GOPROXY_CFG=$OMK_RUN/goproxy.args
printf '%s\n' "-listen 127.0.0.1:$GOPROXY_PORT -socket /var/run/docker.sock" "$(sha256sum "$GOPROXY_BIN")" > "$GOPROXY_CFG.new"
cmp -s "$GOPROXY_CFG.new" "$GOPROXY_CFG" 2>/dev/null && rm -f "$GOPROXY_CFG.new" || mv "$GOPROXY_CFG.new" "$GOPROXY_CFG"
gs=$(ensure_proxy omk-goproxy "$GOPROXY_PORT" "$GOPROXY_CFG" "$GOPROXY_BIN" -listen "127.0.0.1:$GOPROXY_PORT" -socket /var/run/docker.sock)

# Smoke test: allowed, denied and the restore-archive rule, as for the other proxies.
[ "$(curl -fsS --max-time 10 "http://127.0.0.1:$GOPROXY_PORT/_ping")" = OK ] || die "Go proxy :$GOPROXY_PORT: GET /_ping is not OK"
check_code "$GOPROXY_PORT" HEAD /_ping 200
check_code "$GOPROXY_PORT" GET /v1.41/version 200
check_code "$GOPROXY_PORT" GET /containers/json 200
check_code "$GOPROXY_PORT" GET /info 403
check_code "$GOPROXY_PORT" GET /v1.41/info 403
check_code "$GOPROXY_PORT" GET /images/json 403
check_code "$GOPROXY_PORT" POST /images/create 403
check_code "$GOPROXY_PORT" PUT /containers/some-app/archive 403
check_code "$GOPROXY_PORT" PUT /containers/omk-restore-x/../some-app/archive 403
check_code "$GOPROXY_PORT" GET /containers/omk-no-such-container/json 404
check_code "$GOPROXY_PORT" PUT '/containers/omk-restore-no-such/archive?path=/tmp' 404
ENV_EXTRA+=("OMK_TEST_DOCKER_GO_PROXY=tcp://127.0.0.1:$GOPROXY_PORT")
step_done "Go proxy" "$t" "omk-goproxy :$GOPROXY_PORT ($built) $gs"
