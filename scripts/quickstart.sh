#!/usr/bin/env bash
# The main job on an embedded default: back up a sample folder into a local restic
# repository with a local SQLite catalog, list the snapshots, restore the latest into a
# folder and compare, then prove it with a restore test. Everything lives in ./demo
# (safe to rerun: each run adds a backup).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v restic >/dev/null 2>&1; then
    echo "== installing restic (Debian package)"
    if [ "$(id -u)" -ne 0 ]; then echo "restic is missing: run 'sudo apt-get install restic' first" >&2; exit 2; fi
    apt-get install -y -q restic >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q restic >/dev/null; }
fi

echo "== building omk-backup (release)"
cargo build --release --quiet
bin="$PWD/target/release/omk-backup"

demo="$PWD/demo"
mkdir -p "$demo/sample/photos" "$demo/sample/notes"
if [ ! -f "$demo/password" ]; then
    umask 077
    head -c 24 /dev/urandom | base64 > "$demo/password"
    umask 022
fi
for i in $(seq 1 20); do echo "note $i, written $(date -u +%FT%TZ)" > "$demo/sample/notes/note-$i.txt"; done
[ -f "$demo/sample/photos/big.raw" ] || head -c 5000000 /dev/urandom > "$demo/sample/photos/big.raw"

cat > "$demo/omk-backup.toml" <<TOML
# A minimal configuration: a local restic repository and a catalog beside this file.
[catalog]
path = "catalog.db"

[repository]
url = "repo"
password_file = "password"

[retention]
keep_daily = 7
keep_weekly = 4
keep_monthly = 12

[jobs.sample]
kind = "files"
paths = ["sample"]
TOML

export OMK_BACKUP_CONFIG="$demo/omk-backup.toml"
echo "== config check"
"$bin" config check
echo "== backup (creating the repository on the first run)"
if [ -f "$demo/repo/config" ]; then "$bin" backup; else "$bin" backup --init; fi
echo "== snapshots"
"$bin" snapshots
echo "== restore latest"
rm -rf "$demo/restored"
"$bin" restore latest --job sample --target "$demo/restored"
diff -r "$demo/sample" "$demo/restored$demo/sample" && echo "restored data matches the sample folder"
echo "== restore-test (scratch restore, compared with the source; encryption proof)"
"$bin" restore-test
echo "== status"
"$bin" status
