#!/usr/bin/env bash
# Benchmark: `omk-backup backup` vs bare `restic backup` of the same ~1 GiB of mixed data
# to the harness's sftp server (scripts/env/10-sftp.sh, `Host omk-sftp`), each run into a
# fresh repository on that server (created outside the timing), same restic binary,
# alternating which goes first; one warm-up pair is discarded; prints every pair, the
# medians and the median of the per-pair ratios (target <= 1.03).
#   usage: scripts/bench-remote.sh [PAIRS] [RESTIC]   (defaults: 3, restic 0.18)
#   OMK_BENCH_PROFILE=debug uses the debug build (when a release build cannot be afforded;
#   it can only make omk-backup look slower).
# Needs: scripts/setup-test-env.sh run (the sftp server), root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
pairs=${1:-3}
restic=${2:-/opt/omk-test/restic-0.18/usr/bin/restic}
[ -x "$restic" ] || { echo "restic $restic missing: run scripts/setup-test-env.sh" >&2; exit 1; }
ssh -o BatchMode=yes omk-sftp true || { echo "ssh omk-sftp fails: run scripts/setup-test-env.sh" >&2; exit 1; }
profile=${OMK_BENCH_PROFILE:-release}
if [ "$profile" = debug ]; then cargo build --quiet; else cargo build --release --quiet; fi
bin="$PWD/target/$profile/omk-backup"
work=/var/tmp/omk-bench-remote
data="$work/data"
remote_dir=/var/lib/omk-test/sftp/bench
mkdir -p "$work"
if [ ! -f "$data/.complete" ]; then
    echo "generating ~1 GiB of mixed data in $data" >&2
    rm -rf "$data"; mkdir -p "$data/small" "$data/large"
    python3 - "$data" <<'PY'
import os, sys, random
root = sys.argv[1]
rnd = random.Random(7)
# 6000 small files (1-64 KiB; half compressible text, half random) in 60 folders
for i in range(6000):
    d = os.path.join(root, "small", f"d{i % 60:02d}")
    os.makedirs(d, exist_ok=True)
    n = rnd.randint(1024, 65536)
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(n) if i % 2 else (f"row {i};" * (n // 8 + 1)).encode()[:n])
# 4 large random files of 200 MiB
for i in range(4):
    with open(os.path.join(root, "large", f"big{i}.bin"), "wb") as f:
        for _ in range(200):
            f.write(os.urandom(1 << 20))
PY
    touch "$data/.complete"
fi
du -sh "$data" >&2
echo 'bench-password' > "$work/password"
export RESTIC_PASSWORD_FILE="$work/password"

ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; echo "FAILED: $*" >&2; exit 1; }; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
fresh() { # fresh NAME: an empty repository on the sftp server, and no cache
    ssh omk-sftp rm -rf "$remote_dir/$1"
    rm -rf "$work/cache-$1"
    RESTIC_REPOSITORY="sftp:omk-sftp:$remote_dir/$1" "$restic" init > /dev/null
}
bare_run() {
    fresh bare
    ms env RESTIC_REPOSITORY="sftp:omk-sftp:$remote_dir/bare" RESTIC_CACHE_DIR="$work/cache-bare" \
        "$restic" backup --json --host bench --tag omk:job=bench "$data"
}
omk_run() {
    fresh omk
    rm -f "$work"/catalog.db*
    printf '[repository]\nurl = "sftp:omk-sftp:%s/omk"\npassword_file = "password"\nhost = "bench"\n\n[jobs.bench]\nkind = "files"\npaths = ["data"]\n' "$remote_dir" > "$work/omk.toml"
    ms env OMK_BACKUP_CONFIG="$work/omk.toml" OMK_BACKUP_RESTIC="$restic" RESTIC_CACHE_DIR="$work/cache-omk" "$bin" -q backup
}

ver=$("$restic" version | awk '{print $2}')
echo "restic $ver, omk-backup $profile build, sftp:omk-sftp, load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
bare=(); omk=(); ratios=()
for i in $(seq 0 "$pairs"); do
    if [ $((i % 2)) = 0 ]; then o=$(omk_run); b=$(bare_run); else b=$(bare_run); o=$(omk_run); fi
    r=$(awk "BEGIN {printf \"%.3f\", $o / $b}")
    if [ "$i" = 0 ]; then echo "warm-up pair (discarded): bare $b ms, omk-backup $o ms" >&2; continue; fi
    bare+=("$b"); omk+=("$o"); ratios+=("$r")
    echo "pair $i: bare $b ms, omk-backup $o ms, ratio $r (load $(cut -d' ' -f1 /proc/loadavg))" >&2
done
ssh omk-sftp rm -rf "$remote_dir/bare" "$remote_dir/omk"
echo "restic $ver over sftp: median bare $(median "${bare[@]}") ms, omk-backup $(median "${omk[@]}") ms, median ratio $(median "${ratios[@]}") ($pairs alternating pairs after a warm-up pair; load after: $(cut -d' ' -f1-3 /proc/loadavg))"
