#!/usr/bin/env bash
# Benchmark: the pause window of a files job with `quiesce = { mode = "pause" }` against
# restic's own time for the same data. Alternating runs, each into a fresh repository
# with the same restic: (a) bare `restic backup DATA`, wall time; (b) `omk-backup backup`
# of the same data with a container paused around it (through the haproxy socket proxy),
# the window read from the catalog's quiesce journal. Prints the medians, the difference
# (target: window <= restic + 100 ms) and the ratio.
#   usage: scripts/bench-quiesce.sh [RUNS] [MiB]     (defaults: 5 runs, 300 MiB)
# Needs the test environment (scripts/setup-test-env.sh) for dockerd, the proxy, the image.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${1:-5}; mib=${2:-300}
source target/omk-test-env.sh 2>/dev/null || { echo "run scripts/setup-test-env.sh first" >&2; exit 2; }
restic=${OMK_TEST_RESTIC_018}
cargo build --release --quiet
bin="$PWD/target/release/omk-backup"
work=/var/tmp/omk-bench-quiesce
c=omk-bench-quiesce-$$
rm -rf "$work"; mkdir -p "$work/data"
cleanup() { /usr/bin/docker rm -f -v "$c" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
/usr/bin/docker run -d --name "$c" "$OMK_TEST_IMAGE_SQLITE" >/dev/null
for i in $(seq 1 $((mib / 10))); do head -c 10485760 /dev/urandom > "$work/data/f$i"; done
echo bench-pw > "$work/password"
cat > "$work/omk.toml" <<TOML
[repository]
url = "repo-omk"
password_file = "password"
[docker]
host = "$OMK_TEST_DOCKER_PROXY"
discover = false
[jobs.vol]
kind = "files"
paths = ["data"]
quiesce = { container = "$c", mode = "pause" }
TOML
ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
bare=(); win=()
for i in $(seq 1 "$runs"); do
    rm -rf "$work/repo-bare" "$work/repo-omk" "$work/cache" "$work"/catalog.db*
    export RESTIC_PASSWORD_FILE="$work/password" RESTIC_CACHE_DIR="$work/cache"
    RESTIC_REPOSITORY="$work/repo-bare" "$restic" init >/dev/null
    RESTIC_REPOSITORY="$work/repo-omk" "$restic" init >/dev/null
    s=$(ms); RESTIC_REPOSITORY="$work/repo-bare" "$restic" backup -q "$work/data" >/dev/null; e=$(ms)
    bare+=($((e - s)))
    OMK_BACKUP_CONFIG="$work/omk.toml" OMK_BACKUP_RESTIC="$restic" "$bin" -q backup >/dev/null
    w=$(sqlite3 "$work/catalog.db" "SELECT window_ms FROM quiesce_journal ORDER BY id DESC LIMIT 1")
    state=$(/usr/bin/docker inspect -f '{{.State.Status}}' "$c")
    [ "$state" = running ] || { echo "container left $state" >&2; exit 1; }
    win+=("$w")
    echo "run $i: restic alone ${bare[-1]} ms, pause window $w ms" >&2
done
mb=$(median "${bare[@]}"); mw=$(median "${win[@]}")
echo "$mib MiB, $runs alternating runs, restic $("$restic" version | awk '{print $2}'): median restic alone ${mb} ms, median pause window ${mw} ms, difference $((${mw%.*} - ${mb%.*})) ms (target <= 100), ratio $(awk "BEGIN {printf \"%.3f\", $mw / $mb}")"
