#!/usr/bin/env bash
# Code figures for a source tree: lines per module (folder or file under src/), files
# over 600 lines, and the longest functions (from `fn` to its closing brace at the same
# indentation). Usage: scripts/code-stats.sh [SRC_DIR] (default: src).
set -euo pipefail
src="${1:-src}"
echo "== lines per module =="
for m in "$src"/*; do
  n=$(find "$m" -name '*.rs' -print0 | xargs -0 cat | wc -l)
  printf '%6d %s\n' "$n" "${m#"$src"/}"
done | sort -rn
echo "== files over 600 lines =="
find "$src" -name '*.rs' -print0 | xargs -0 wc -l | awk '$2 != "total" && $1 > 600 {print}' | sort -rn
TOP="${TOP:-10}"
echo "== longest functions (top $TOP, and every one over 80 lines) =="
find "$src" -name '*.rs' -print0 | xargs -0 awk '
  FNR == 1 { infn = 0 }
  !infn && match($0, /^( *)(pub(\([a-z]+\))? )?(async )?fn [a-z_0-9]+/) {
    ind = RLENGTH; line = $0; sub(/^ */, "", line); pad = substr($0, 1, index($0, line) - 1)
    name = line; sub(/\(.*/, "", name); sub(/.*fn /, "", name)
    if ($0 ~ /;[ ]*$/) next
    infn = 1; start = FNR; file = FILENAME; p = pad; next
  }
  infn && $0 == p "}" { printf "%5d %s:%d %s\n", FNR - start + 1, file, start, name; infn = 0 }
' | sort -rn | awk -v n="${TOP:-10}" 'NR <= n || $1 > 80'
