#!/usr/bin/env bash
# Benchmark: `omk-backup status` and `snapshots` with 100,000 runs in the catalog.
# Prints the median wall time of each (20 runs) and, as the in-script baseline, the
# median of `omk-backup --version` (process start alone) and the ratio to it.
#   usage: scripts/bench-catalog.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${1:-100000}
cargo build --release --quiet --example populate_catalog
cargo build --release --quiet
bin="$PWD/target/release/omk-backup"
work=/var/tmp/omk-bench-catalog
rm -rf "$work"; mkdir -p "$work/data"
echo pw > "$work/password"
{
    printf '[repository]\nurl = "repo"\npassword_file = "password"\n'
    for j in 0 1 2 3 4; do printf '[jobs.job%s]\nkind = "files"\npaths = ["data"]\n' "$j"; done
} > "$work/omk.toml"
target/release/examples/populate_catalog "$work/catalog.db" "$runs" 5
export OMK_BACKUP_CONFIG="$work/omk.toml"
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo "scale=2; ($e - $s) / 1000000" | bc; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
measure() { local v=(); for _ in $(seq 1 20); do v+=("$(ms "$@")"); done; median "${v[@]}"; }
"$bin" status >/dev/null   # warm the page cache
base=$(measure "$bin" --version)
for cmd in "status" "--json status" "snapshots" "--json snapshots"; do
    # shellcheck disable=SC2086
    m=$(measure "$bin" $cmd)
    echo "omk-backup $cmd: median ${m} ms over 20 runs ($runs runs in the catalog); process start alone ${base} ms; ratio $(echo "scale=2; $m / $base" | bc)"
done
