#!/usr/bin/env bash
# Entrypoint for omk-test/mariadb:10.11, following the contract of the official
# mariadb image: MARIADB_ROOT_PASSWORD / MYSQL_ROOT_PASSWORD (or _FILE),
# MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, MARIADB_RANDOM_ROOT_PASSWORD,
# MARIADB_ROOT_HOST, MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD
# (MYSQL_* spellings too), /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz.
# Passwords are never put on a command line: SQL goes over stdin and the
# client reads the root password from an option file on a pipe.
set -Eeo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*"; }
fail() { log "error: $*" >&2; exit 1; }

# file_env VAR [DEFAULT]: MARIADB_X, else MYSQL_X, else the file in *_FILE.
file_env() {
  local var=$1 def=${2:-} alt="MYSQL_${1#MARIADB_}" val=""
  local fvar="${var}_FILE" falt="${alt}_FILE"
  if [ -n "${!var:-}" ]; then val=${!var}
  elif [ -n "${!fvar:-}" ]; then val=$(< "${!fvar}")
  elif [ -n "${!alt:-}" ]; then val=${!alt}
  elif [ -n "${!falt:-}" ]; then val=$(< "${!falt}")
  else val=$def; fi
  export "$var"="$val"
  unset "$fvar" "$falt"
}

if [ "${1:0:1}" = '-' ]; then set -- mariadbd "$@"; fi

wants_help() {
  local a; for a; do case "$a" in -'?'|--help|--print-defaults|-V|--version) return 0;; esac; done; return 1
}

# The server's own view of an option (respects config files and args).
server_opt() {
  local opt=$1; shift
  # Only unindented "name value" lines of the variables table count (an
  # indented help text line can start with the same word). No early exit:
  # that would SIGPIPE the server under pipefail.
  "$@" --verbose --help 2>/dev/null \
    | awk -v o="$opt" '!found && $1 == o && /^[^ \t]/ { sub(/^[^ \t]+[ \t]+/, ""); print; found = 1 }'
}

# Escape a string for a single-quoted SQL literal.
sql_escape() { local s=${1//\\/\\\\}; s=${s//\'/\\\'}; printf '%s' "$s"; }
# Escape a string for a double-quoted option-file value.
cnf_escape() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '%s' "$s"; }

# mariadb client as root over the socket; the password (if any) comes from a
# pipe via --defaults-extra-file, never argv.
client() {
  mariadb --defaults-extra-file=<(printf '[client]\npassword="%s"\n' "$(cnf_escape "${ROOT_PW_FOR_CLIENT:-}")") \
    --protocol=socket -uroot -hlocalhost --socket="$SOCKET" "$@"
}

run_init_files() {
  local f db=()
  [ -n "$MARIADB_DATABASE" ] && db=(--database="$MARIADB_DATABASE")
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then log "running $f"; "$f"; else log "sourcing $f"; . "$f"; fi ;;
      *.sql)     log "running $f"; client "${db[@]}" < "$f" ;;
      *.sql.gz)  log "running $f"; gunzip -c "$f" | client "${db[@]}" ;;
      *.sql.xz)  log "running $f"; xzcat "$f" | client "${db[@]}" ;;
      *"/*")     ;;
      *)         log "ignoring $f" ;;
    esac
  done
}

if { [ "$1" = mariadbd ] || [ "$1" = mysqld ]; } && ! wants_help "$@"; then
  file_env MARIADB_ROOT_PASSWORD
  file_env MARIADB_ALLOW_EMPTY_ROOT_PASSWORD
  file_env MARIADB_RANDOM_ROOT_PASSWORD
  file_env MARIADB_ROOT_HOST '%'
  file_env MARIADB_DATABASE
  file_env MARIADB_USER
  file_env MARIADB_PASSWORD
  # MYSQL_ALLOW_EMPTY_PASSWORD is the old name of the "allow empty root" flag.
  : "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:=${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"

  DATADIR=$(server_opt datadir "$@"); DATADIR=${DATADIR%/}
  SOCKET=$(server_opt socket "$@")
  [ "${DATADIR:0:1}" = / ] && [ "${SOCKET:0:1}" = / ] || fail "could not read datadir/socket from '$* --verbose --help'"

  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$DATADIR" "$(dirname "$SOCKET")"
    find "$DATADIR" "$(dirname "$SOCKET")" \! -user mysql -exec chown mysql: '{}' +
    exec setpriv --reuid=mysql --regid=mysql --init-groups "${BASH_SOURCE[0]}" "$@"
  fi

  if [ ! -d "$DATADIR/mysql" ]; then
    if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ] && [ -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
      fail "database is uninitialized and password option is not specified. You need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD"
    fi
    if [ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ] && [ -z "$MARIADB_ROOT_PASSWORD" ]; then
      MARIADB_ROOT_PASSWORD=$(tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 32 || :)
      log "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
    fi
    mkdir -p "$DATADIR"
    log "initializing database files in $DATADIR"
    mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal \
      --skip-test-db --skip-name-resolve --default-time-zone=SYSTEM --skip-log-bin \
      --expire-logs-days=0 >/dev/null
    log "database files initialized; starting temporary server"
    "$@" --skip-networking --default-time-zone=SYSTEM --socket="$SOCKET" --skip-log-bin \
      --expire-logs-days=0 --loose-innodb_buffer_pool_load_at_startup=0 &
    pid=$!
    for _ in $(seq 60); do
      if client --database=mysql <<< 'SELECT 1' >/dev/null 2>&1; then break; fi
      kill -0 "$pid" 2>/dev/null || fail "temporary server exited during start-up"
      sleep 1
    done
    client --database=mysql <<< 'SELECT 1' >/dev/null || fail "temporary server did not start"

    rootpw=$(sql_escape "$MARIADB_ROOT_PASSWORD")
    roothost=$(sql_escape "$MARIADB_ROOT_HOST")
    {
      echo "SET @@SESSION.SQL_LOG_BIN=0;"
      echo "DROP USER IF EXISTS root@'127.0.0.1', root@'::1';"
      echo "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname, '\'');"
      echo "SET PASSWORD FOR 'root'@'localhost' = PASSWORD('$rootpw');"
      if [ "$MARIADB_ROOT_HOST" != localhost ]; then
        echo "CREATE USER 'root'@'$roothost' IDENTIFIED BY '$rootpw';"
        echo "GRANT ALL ON *.* TO 'root'@'$roothost' WITH GRANT OPTION;"
        echo "GRANT PROXY ON ''@'%' TO 'root'@'$roothost' WITH GRANT OPTION;"
      fi
      echo "DROP DATABASE IF EXISTS test;"
      if [ -n "$MARIADB_DATABASE" ]; then
        echo "CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE//\`/\`\`}\`;"
      fi
      if [ -n "$MARIADB_USER" ] && [ -n "$MARIADB_PASSWORD" ]; then
        echo "CREATE USER '$(sql_escape "$MARIADB_USER")'@'%' IDENTIFIED BY '$(sql_escape "$MARIADB_PASSWORD")';"
        if [ -n "$MARIADB_DATABASE" ]; then
          echo "GRANT ALL ON \`${MARIADB_DATABASE//\`/\`\`}\`.* TO '$(sql_escape "$MARIADB_USER")'@'%';"
        fi
      elif [ -n "$MARIADB_USER" ]; then
        fail "MARIADB_USER is set but MARIADB_PASSWORD is not"
      fi
      echo "FLUSH PRIVILEGES;"
    } | client --database=mysql --binary-mode
    unset rootpw
    export ROOT_PW_FOR_CLIENT=$MARIADB_ROOT_PASSWORD
    run_init_files
    unset ROOT_PW_FOR_CLIENT
    kill "$pid"
    wait "$pid" || fail "temporary server did not shut down cleanly"
    log 'MariaDB init process done. Ready for start up.'
  fi
fi

exec "$@"
