#!/usr/bin/env bash
# Benchmark: `omk-backup copy` vs bare `restic copy` (source by RESTIC_FROM_REPOSITORY /
# RESTIC_FROM_PASSWORD_FILE) of the same ~1 GiB snapshot of mixed data, between the same
# two local repositories, same restic binary. Every round copies into a fresh target
# (created with `init --copy-chunker-params` outside the timing); bare and omk-backup
# alternate which goes first; one warm-up round is not counted. Prints the medians and
# the median of the per-round ratios.
#   usage: scripts/bench-copy.sh [ROUNDS] [RESTIC...]   (defaults: 3, restic 0.14 and 0.18)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
rounds=${1:-3}; shift || true
restics=("$@")
if [ ${#restics[@]} -eq 0 ]; then
    restics=(/usr/bin/restic)
    [ -x /opt/omk-test/restic-0.18/usr/bin/restic ] && restics+=(/opt/omk-test/restic-0.18/usr/bin/restic)
fi
cargo build --release --quiet
bin="$PWD/target/release/omk-backup"
work=/var/tmp/omk-bench-copy
data="$work/data"
mkdir -p "$work"
if [ ! -f "$data/.complete" ]; then
    echo "generating ~1 GiB of mixed data in $data" >&2
    rm -rf "$data"; mkdir -p "$data/small" "$data/large"
    python3 - "$data" <<'PY'
import os, sys, random
root = sys.argv[1]
rnd = random.Random(42)
# 6000 small files (1-64 KiB, half compressible text, half random) in 60 folders
for i in range(6000):
    d = os.path.join(root, "small", f"d{i % 60:02d}")
    os.makedirs(d, exist_ok=True)
    n = rnd.randint(1024, 65536)
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(n) if i % 2 else (f"line {i} " * (n // 8 + 1)).encode()[:n])
# 4 large files of ~200 MiB random data
for i in range(4):
    with open(os.path.join(root, "large", f"big{i}.bin"), "wb") as f:
        for _ in range(200):
            f.write(os.urandom(1 << 20))
PY
    touch "$data/.complete"
fi
du -sh "$data" >&2
echo 'bench-password' > "$work/password"
echo 'bench-copy-password' > "$work/password2"

t() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for r in "${restics[@]}"; do
    ver=$("$r" version | awk '{print $2}')
    # The primary: one good snapshot made by omk-backup (the catalog vouches for it).
    rm -rf "$work/primary" "$work/target" "$work/cache" "$work/catalog.db"*
    printf '[repository]\nurl = "primary"\npassword_file = "password"\n[jobs.bench]\nkind = "files"\npaths = ["data"]\n[copies.bench]\nurl = "target"\npassword_file = "password2"\n' > "$work/omk.toml"
    omk() { env OMK_BACKUP_CONFIG="$work/omk.toml" OMK_BACKUP_RESTIC="$r" RESTIC_CACHE_DIR="$work/cache" "$bin" -q "$@"; }
    omk backup --init >/dev/null
    id=$(sqlite3 "$work/catalog.db" "SELECT snapshot_id FROM snapshots WHERE state = 'good'")
    fresh_target() {
        rm -rf "$work/target"
        RESTIC_FROM_REPOSITORY="$work/primary" RESTIC_FROM_PASSWORD_FILE="$work/password" \
            RESTIC_REPOSITORY="$work/target" RESTIC_PASSWORD_FILE="$work/password2" \
            "$r" init --copy-chunker-params >/dev/null
    }
    bare_copy() {
        fresh_target
        t env RESTIC_FROM_REPOSITORY="$work/primary" RESTIC_FROM_PASSWORD_FILE="$work/password" \
            RESTIC_REPOSITORY="$work/target" RESTIC_PASSWORD_FILE="$work/password2" \
            RESTIC_CACHE_DIR="$work/cache" "$r" copy "$id"
    }
    omk_copy() { fresh_target; t omk copy; }
    bare=(); ours=(); ratios=()
    for i in $(seq 0 "$rounds"); do
        if (( i % 2 )); then b=$(bare_copy); o=$(omk_copy); else o=$(omk_copy); b=$(bare_copy); fi
        held=$(RESTIC_REPOSITORY="$work/target" RESTIC_PASSWORD_FILE="$work/password2" "$r" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
        [ "$held" = 1 ] || { echo "the target holds $held snapshots after omk-backup copy" >&2; exit 1; }
        if (( i == 0 )); then echo "restic $ver warm-up: bare $b ms, omk-backup $o ms" >&2; continue; fi
        bare+=("$b"); ours+=("$o"); ratios+=("$(awk "BEGIN {printf \"%.4f\", $o / $b}")")
        echo "restic $ver round $i: bare $b ms, omk-backup $o ms, ratio ${ratios[-1]}" >&2
    done
    echo "restic $ver: median bare $(median "${bare[@]}") ms, omk-backup $(median "${ours[@]}") ms, median ratio $(median "${ratios[@]}") ($rounds alternating rounds after a warm-up)"
done
