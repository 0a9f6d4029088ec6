# shellcheck shell=bash
# ensure_service for the scripts/env/1*.sh parts (remote repository servers). Sourced by
# them inside setup-test-env.sh, which defines pid_alive, stop_pid and port_listener.

# ensure_service NAME EXE PORT SIGNATURE CMD...: keep CMD (whose binary is EXE) running
# in the background under $OMK_RUN/NAME.pid, listening on 127.0.0.1:PORT. An instance
# of ours that is alive with the same SIGNATURE (its arguments and the digest of its
# files) is left alone; one with another signature is restarted. Prints what it did.
ensure_service() {
  local name=$1 exe=$2 port=$3 sig=$4; shift 4
  local pidf="$OMK_RUN/$name.pid" sigf="$OMK_RUN/$name.sig" pid=""
  [ -f "$pidf" ] && pid=$(cat "$pidf")
  if pid_alive "$pid" && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ]; then
    if [ "$(cat "$sigf" 2>/dev/null)" = "$sig" ] && [ -n "$(port_listener "$port")" ]; then
      echo "already running (pid $pid)"
      return 0
    fi
    log "restarting $name (configuration changed)"
    stop_pid "$pid"
  fi
  rm -f "$pidf" "$sigf"
  if [ -n "$(port_listener "$port")" ]; then
    die "$name: port $port is already in use by something else: $(port_listener "$port")"
  fi
  setsid nohup "$@" >> "$OMK_LOG/$name.log" 2>&1 < /dev/null 9>&- &
  pid=$!
  echo "$pid" > "$pidf"
  echo "$sig" > "$sigf"
  for _ in $(seq 100); do
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
