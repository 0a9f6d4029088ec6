#!/usr/bin/env bash
# Benchmark: `omk-backup backup` vs bare `restic backup` of the same ~1 GiB of mixed data
# (thousands of small files and a few large ones), each into a fresh repository, same
# restic binary, alternating runs; prints the medians and the overhead ratio.
#   usage: scripts/bench-backup.sh [RUNS] [RESTIC...]   (defaults: 3, restic 0.14 and 0.18)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${1:-3}; shift || true
restics=("$@")
if [ ${#restics[@]} -eq 0 ]; then
    restics=(/usr/bin/restic)
    [ -x /opt/omk-test/restic-0.18/usr/bin/restic ] && restics+=(/opt/omk-test/restic-0.18/usr/bin/restic)
fi
cargo build --release --quiet
bin="$PWD/target/release/omk-backup"
work=/var/tmp/omk-bench-backup
data="$work/data"
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
        if i % 2:
            f.write(os.urandom(n))
        else:
            f.write((f"line {i} " * (n // 8 + 1)).encode()[:n])
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

t() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for r in "${restics[@]}"; do
    ver=$("$r" version | awk '{print $2}')
    bare=(); omk=()
    for i in $(seq 1 "$runs"); do
        # bare restic
        rm -rf "$work/repo-bare" "$work/cache"
        RESTIC_PASSWORD_FILE="$work/password" RESTIC_REPOSITORY="$work/repo-bare" "$r" init >/dev/null
        bare+=("$(t env RESTIC_PASSWORD_FILE="$work/password" RESTIC_REPOSITORY="$work/repo-bare" RESTIC_CACHE_DIR="$work/cache" "$r" backup --json --tag omk:job=bench "$data")")
        # omk-backup (same restic), repository created outside the timing
        rm -rf "$work/repo-omk" "$work/cache" "$work/catalog.db"* 
        printf '[repository]\nurl = "repo-omk"\npassword_file = "password"\n[jobs.bench]\nkind = "files"\npaths = ["data"]\n' > "$work/omk.toml"
        RESTIC_PASSWORD_FILE="$work/password" RESTIC_REPOSITORY="$work/repo-omk" "$r" init >/dev/null
        omk+=("$(t env OMK_BACKUP_CONFIG="$work/omk.toml" OMK_BACKUP_RESTIC="$r" RESTIC_CACHE_DIR="$work/cache" "$bin" -q backup)")
        echo "restic $ver run $i: bare ${bare[-1]} ms, omk-backup ${omk[-1]} ms" >&2
    done
    mb=$(median "${bare[@]}"); mo=$(median "${omk[@]}")
    echo "restic $ver: median bare ${mb} ms, omk-backup ${mo} ms, overhead ratio $(awk "BEGIN {printf \"%.3f\", $mo / $mb}") ($runs alternating runs)"
done

# The fixed cost omk-backup adds per run, isolated from data-size noise: back up one
# tiny file repeatedly (bare and omk-backup alternating, each into its own repository).
for r in "${restics[@]}"; do
    ver=$("$r" version | awk '{print $2}')
    tiny="$work/tiny"; rm -rf "$tiny"; mkdir -p "$tiny/data"; echo hi > "$tiny/data/a"
    export RESTIC_PASSWORD_FILE="$work/password" RESTIC_CACHE_DIR="$tiny/cache"
    RESTIC_REPOSITORY="$tiny/repo-bare" "$r" init >/dev/null
    RESTIC_REPOSITORY="$tiny/repo-omk" "$r" init >/dev/null
    printf '[repository]\nurl = "repo-omk"\npassword_file = "%s"\n[jobs.t]\nkind = "files"\npaths = ["data"]\n' "$work/password" > "$tiny/omk.toml"
    bare=(); omk=()
    for i in $(seq 1 15); do
        bare+=("$(t env RESTIC_REPOSITORY="$tiny/repo-bare" "$r" backup --json --tag omk:job=t "$tiny/data")")
        omk+=("$(t env OMK_BACKUP_CONFIG="$tiny/omk.toml" OMK_BACKUP_RESTIC="$r" "$bin" -q backup)")
    done
    mb=$(median "${bare[@]}"); mo=$(median "${omk[@]}")
    echo "restic $ver, one tiny file, 15 alternating runs: median bare ${mb} ms, omk-backup ${mo} ms, fixed overhead $((${mo%.*} - ${mb%.*})) ms"
done
