#!/bin/sh
# Entrypoint for omk-test/sqlite:3: make sure /data/app.db exists (a small
# WAL-mode database with an `items` table and three rows), then run CMD.
set -eu

mkdir -p /data
if [ ! -e /data/app.db ]; then
  sqlite3 /data/app.db <<'SQL'
PRAGMA journal_mode = WAL;
CREATE TABLE items (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
INSERT INTO items (name) VALUES ('alpha'), ('beta'), ('gamma');
SQL
  echo "created /data/app.db"
fi

# A bare `sleep` as PID 1 ignores SIGTERM, so `docker stop` would wait its
# full timeout. Keep the default CMD (`sleep infinity`) but stop promptly on
# TERM/INT, as a real app would.
if [ "${1:-}" = sleep ]; then
  "$@" &
  child=$!
  trap 'kill "$child" 2>/dev/null; exit 0' TERM INT
  wait "$child"
  exit $?
fi
exec "$@"
