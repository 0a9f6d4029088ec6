#!/usr/bin/env bash
# Entrypoint for omk-test/postgres:15, following the contract of the official
# postgres image: POSTGRES_PASSWORD (or _FILE), POSTGRES_USER, POSTGRES_DB,
# POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD, PGDATA,
# /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz, runs as user postgres
# (or as whatever --user the container is started with).
set -Eeo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*"; }
fail() { log "error: $*" >&2; exit 1; }

# file_env VAR [DEFAULT]: VAR or the content of the file named by VAR_FILE.
file_env() {
  local var=$1 fvar="${1}_FILE" def=${2:-} val
  if [ -n "${!var:-}" ] && [ -n "${!fvar:-}" ]; then fail "both $var and $fvar are set"; fi
  val=$def
  if [ -n "${!var:-}" ]; then val=${!var}; elif [ -n "${!fvar:-}" ]; then val=$(< "${!fvar}"); fi
  export "$var"="$val"
  unset "$fvar"
}

# `docker run IMAGE -c foo=bar` means `postgres -c foo=bar`.
if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

wants_help() {
  local a; for a; do case "$a" in -'?'|--help|--describe-config|-V|--version) return 0;; esac; done; return 1
}

create_dirs() {
  mkdir -p "$PGDATA"
  chmod 00700 "$PGDATA" || :
  mkdir -p /var/run/postgresql || :
  chmod 03775 /var/run/postgresql || :
  if [ "$(id -u)" = 0 ]; then
    find "$PGDATA" \! -user postgres -exec chown postgres: '{}' +
    find /var/run/postgresql \! -user postgres -exec chown postgres: '{}' +
  fi
}

psql_run() {
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"
}

init_db() {
  # initdb needs a passwd entry for the current uid: fake one with nss_wrapper
  # when started as an arbitrary --user (like the official image).
  local wrapper
  if ! getent passwd "$(id -u)" >/dev/null 2>&1; then
    for wrapper in /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so; do
      [ -e "$wrapper" ] || continue
      export LD_PRELOAD=$wrapper NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
      NSS_WRAPPER_PASSWD=$(mktemp) NSS_WRAPPER_GROUP=$(mktemp)
      echo "postgres:x:$(id -u):$(id -g):PostgreSQL:$PGDATA:/bin/false" > "$NSS_WRAPPER_PASSWD"
      echo "postgres:x:$(id -g):" > "$NSS_WRAPPER_GROUP"
      break
    done
  fi
  # The password goes through a pipe (--pwfile), never argv. The trailing
  # newline is needed: initdb rejects a completely empty file.
  eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"${POSTGRES_INITDB_ARGS:-}"
  if [ -n "${LD_PRELOAD:-}" ] && [ -n "${NSS_WRAPPER_PASSWD:-}" ]; then
    rm -f "$NSS_WRAPPER_PASSWD" "$NSS_WRAPPER_GROUP"
    unset LD_PRELOAD NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
  fi
}

setup_hba() {
  # initdb leaves local (socket) and loopback connections as "trust"; every
  # other host must authenticate, with the server's password_encryption
  # (scram-sha-256 on 15) unless POSTGRES_HOST_AUTH_METHOD says otherwise.
  local auth
  auth=$(postgres -C password_encryption)
  : "${POSTGRES_HOST_AUTH_METHOD:=$auth}"
  {
    printf '\n'
    [ "$POSTGRES_HOST_AUTH_METHOD" = trust ] && printf '# warning: trust is enabled for all connections\n'
    printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
  } >> "$PGDATA/pg_hba.conf"
}

run_init_files() {
  local f
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then log "running $f"; "$f"; else log "sourcing $f"; . "$f"; fi ;;
      *.sql)    log "running $f"; psql_run --dbname "$POSTGRES_DB" -f "$f"; echo ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | psql_run --dbname "$POSTGRES_DB"; echo ;;
      *"/*")    ;;  # empty directory
      *)        log "ignoring $f" ;;
    esac
  done
}

if [ "$1" = postgres ] && ! wants_help "$@"; then
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  create_dirs
  if [ "$(id -u)" = 0 ]; then
    # Drop root and start again as postgres.
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
  fi

  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "$POSTGRES_PASSWORD" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
      fail "database is uninitialized and superuser password is not specified. Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)."
    fi
    ls /docker-entrypoint-initdb.d/ >/dev/null
    init_db
    setup_hba
    export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
    # Temporary server on the unix socket only, so nobody connects mid-init.
    PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
    if [ "$POSTGRES_DB" != postgres ]; then
      exists=$(psql_run --dbname postgres --set db="$POSTGRES_DB" --tuples-only --no-align \
        <<< "SELECT 1 FROM pg_database WHERE datname = :'db';")
      if [ -z "$exists" ]; then
        psql_run --dbname postgres --set db="$POSTGRES_DB" <<< 'CREATE DATABASE :"db";'
      fi
    fi
    run_init_files
    PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGPASSWORD
    log 'PostgreSQL init process complete; ready for start up.'
  else
    log 'PostgreSQL database directory appears to contain a database; skipping initialization'
  fi
fi

exec "$@"
