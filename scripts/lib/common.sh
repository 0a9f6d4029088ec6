# shellcheck shell=bash
# Shared helpers for the omk-backup test harness scripts. Sourced, not executed.

# Always talk to Debian's docker CLI (same version as the daemon we start);
# a different `docker` earlier in PATH (e.g. /usr/local/bin/docker) may need buildx.
DOCKER=${OMK_DOCKER_CLI:-/usr/bin/docker}
OMK_CACHE=/var/cache/omk-test
OMK_RUN=/run/omk-test
OMK_LOG=/var/log/omk-test

log() { printf '[omk-test %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf '[omk-test] ERROR: %s\n' "$*" >&2; exit 1; }

# Milliseconds since the epoch (for timings).
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# Seconds with one decimal between two now_ms values.
elapsed() { local ms=$(( $2 - $1 )); printf '%d.%01ds' $(( ms / 1000 )) $(( (ms % 1000) / 100 )); }

# The Debian mirror this machine's apt uses (the URI of the stanza/line for the
# main "bookworm" suite). Never hard-code a host name.
debian_mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '
      function flush() { if (!done && uris != "" && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ / bookworm /) { split(uris, u, " "); print u[1]; done = 1; exit } uris=""; suites=""; types="" }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      tolower($1) == "uris:"   { $1=""; uris=$0; sub(/^ +/, "", uris) }
      tolower($1) == "suites:" { $1=""; suites=$0; sub(/^ +/, "", suites) }
      tolower($1) == "types:"  { $1=""; types=$0; sub(/^ +/, "", types) }
      END { flush() }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == "bookworm") { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || die "could not find the Debian mirror for bookworm in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  echo "${uri%/}"
}

docker_ok() { "$DOCKER" info >/dev/null 2>&1; }
