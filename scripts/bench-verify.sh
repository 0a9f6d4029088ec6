#!/usr/bin/env bash
# Restore-test verification hashing vs sha256sum over the same files.
#
#   scripts/bench-verify.sh [DIR]
#
# Without DIR, a data set is generated under $TMPDIR (default: 64 x 4 MiB + 2048 x 64 KiB
# random files, 384 MiB; OMK_BENCH_BIG / OMK_BENCH_SMALL change the counts). Every
# hasher runs once to warm the page cache, then OMK_BENCH_ROUNDS times (default 3); the
# best time of each counts. Prints throughputs and the ratio omk/sha256sum (target >= 0.80).
# OMK_BENCH_PROFILE=dev skips the release build (sha2 is optimised in dev builds too).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${OMK_BENCH_PROFILE:-release}
if [ "$profile" = release ]; then
    cargo build --release --quiet
    bin=target/release/omk-backup
else
    cargo build --quiet
    bin=target/debug/omk-backup
fi
rounds=${OMK_BENCH_ROUNDS:-3}

dir=${1:-}
cleanup=
if [ -z "$dir" ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/omk-bench-verify.XXXXXX")
    cleanup=$dir
    trap '[ -n "$cleanup" ] && rm -rf "$cleanup"' EXIT
    mkdir -p "$dir/big" "$dir/small"
    for i in $(seq 1 "${OMK_BENCH_BIG:-64}"); do
        head -c $((4 << 20)) /dev/urandom >"$dir/big/f$i"
    done
    head -c $((64 << 10 << 11)) /dev/urandom | split -b $((64 << 10)) -a 4 - "$dir/small/s"
    small=${OMK_BENCH_SMALL:-2048}
    ls "$dir/small" | tail -n +$((small + 1)) | sed "s|^|$dir/small/|" | xargs -r rm -f
fi
bytes=$(find "$dir" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
files=$(find "$dir" -type f | wc -l)

now() { date +%s.%N; }
calc() { awk "BEGIN { print $* }"; }
best() { # command... -> best wall seconds over $rounds (after one warm-up)
    "$@" >/dev/null
    local b=
    for _ in $(seq 1 "$rounds"); do
        local t0 t1 d
        t0=$(now)
        "$@" >/dev/null
        t1=$(now)
        d=$(calc "$t1 - $t0")
        if [ -z "$b" ] || [ "$(calc "($d < $b) ? 1 : 0")" = 1 ]; then b=$d; fi
    done
    echo "$b"
}
sha_single() { find "$dir" -type f -print0 | xargs -0 sha256sum; }
sha_par() { find "$dir" -type f -print0 | xargs -0 -n 64 -P "$(nproc)" sha256sum; }
omk() { "$bin" hash-bench "$dir"; }

t_sha=$(best sha_single)
t_par=$(best sha_par)
t_omk=$(best omk)
mbps() { printf '%.1f' "$(calc "$bytes / 1000000 / $1")"; }
echo "data: $files files, $bytes bytes in $dir; $(nproc) cores; best of $rounds"
echo "sha256sum (one process):       $(printf '%.3f' "$t_sha") s  $(mbps "$t_sha") MB/s"
echo "sha256sum (xargs -P $(nproc)):        $(printf '%.3f' "$t_par") s  $(mbps "$t_par") MB/s"
echo "omk-backup restore-test hasher: $(printf '%.3f' "$t_omk") s  $(mbps "$t_omk") MB/s"
echo "ratio omk / sha256sum:          $(printf '%.2f' "$(calc "$t_sha / $t_omk")") (target >= 0.80)"
echo "ratio omk / parallel sha256sum: $(printf '%.2f' "$(calc "$t_par / $t_omk")")"
