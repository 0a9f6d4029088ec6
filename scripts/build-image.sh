#!/usr/bin/env bash
# Build omk-backup:local, the image deploy/compose.yaml runs, with no registry:
#   1. `cargo build --release` (skipped with OMK_IMAGE_BINARY=/path/to/omk-backup);
#   2. a Debian 12 minbase rootfs from debootstrap with images/omk-backup/packages,
#      restic 0.18 (Debian 13's static binary) and images/omk-backup/rootfs-prepare.sh
#      (user omk-backup uid 1000, volume mount points), packed into a tarball cached
#      under /var/cache/omk-test and imported as omk-backup/rootfs:KEY — KEY hashes
#      every input, so it is rebuilt only when one of them changes;
#   3. `docker build` of images/omk-backup/Dockerfile on top: the (stripped) binary and
#      metadata only. Docker's build cache keeps the image when the binary is unchanged;
#      a new binary rebuilds that one layer.
# Every fresh image is checked by running it read-only, without capabilities.
# Usage: build-image.sh [--test-proxy]
#   --test-proxy  also build omk-test/haproxy:2.6 (the harness's proxy as a container,
#                 used by tests/it/deploy.rs)
# Env: OMK_IMAGE_TAG (default omk-backup:local), OMK_IMAGE_RESTIC (a restic 0.18
#      binary; default /opt/omk-test/restic-0.18/usr/bin/restic as the test harness
#      installs it, else fetched from Debian 13 with apt into /var/cache/omk-test),
#      OMK_IMAGE_BINARY.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/common.sh
source "$ROOT/scripts/lib/common.sh"

TAG=${OMK_IMAGE_TAG:-omk-backup:local}
PROXY_TAG=omk-test/haproxy:2.6
SUITE=bookworm
WITH_PROXY=0
for a in "$@"; do
  case "$a" in
    --test-proxy) WITH_PROXY=1 ;;
    *) die "build-image.sh: unknown argument '$a' (usage: build-image.sh [--test-proxy])" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "build-image.sh must run as root (debootstrap, chroot)"
for b in debootstrap "$DOCKER" sha256sum strip; do
  command -v "$b" >/dev/null || die "$b not found: apt-get install debootstrap docker.io binutils"
done
docker_ok || die "docker daemon not reachable (start dockerd, or run scripts/setup-test-env.sh)"
MIRROR=$(debian_mirror)
mkdir -p "$OMK_CACHE" "$OMK_LOG"
T0=$(now_ms)

# ---------------------------------------------------------------- restic 0.18
# The same source as the tests' restic 0.18: Debian 13's package, static binary.
fetch_restic() { # fetch_restic DEST_DIR
  local dest=$1 a="$OMK_CACHE/apt-trixie-image" deb
  rm -rf "$a"; mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/etc" "$a/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" > "$a/etc/sources.list"
  local opts=(-o Dir::Etc::sourcelist="$a/etc/sources.list" -o Dir::Etc::sourceparts=-
    -o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache"
    -o Dir::Etc::preferences=/dev/null -o Dir::Etc::preferencesparts=-
    -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root -o Acquire::Languages=none)
  log "fetching restic from $MIRROR trixie"
  { apt-get -q "${opts[@]}" update && (cd "$a/debs" && apt-get -q "${opts[@]}" download restic); } \
    > "$OMK_LOG/apt-trixie-image.log" 2>&1 \
    || { tail -n 20 "$OMK_LOG/apt-trixie-image.log" >&2; die "fetching restic from trixie failed"; }
  deb=$(ls "$a"/debs/restic_*.deb | head -n 1)
  rm -rf "$dest"; mkdir -p "$dest"; dpkg-deb -x "$deb" "$dest"; rm -rf "$a"
}
RESTIC=${OMK_IMAGE_RESTIC:-/opt/omk-test/restic-0.18/usr/bin/restic}
if [ ! -x "$RESTIC" ]; then
  RESTIC=$OMK_CACHE/restic-0.18-image/usr/bin/restic
  [ -x "$RESTIC" ] || fetch_restic "$OMK_CACHE/restic-0.18-image"
fi
"$RESTIC" version | grep -q '^restic 0\.18\.' || die "$RESTIC is not restic 0.18: $("$RESTIC" version)"

# ---------------------------------------------------------------- base images
# build_base NAME PACKAGES_FILE [PREPARE_SCRIPT] -> prints the imported image name.
build_base() {
  local name=$1 pkgfile=$2 prep=${3:-} pkgs key base tarball work t0
  pkgs=$(tr -s ' \n\t' ',' < "$pkgfile" | sed 's/^,//; s/,$//')
  key=$( { printf '%s\n' "$SUITE" minbase "$MIRROR" "$pkgs"
           [ -z "$prep" ] || { sha256sum "$prep" | cut -d' ' -f1; sha256sum "$RESTIC" | cut -d' ' -f1; }
         } | sha256sum | cut -c1-16)
  base="$name/rootfs:$key"
  tarball="$OMK_CACHE/rootfs-${name//\//-}-$key.tar"
  if "$DOCKER" image inspect "$base" >/dev/null 2>&1; then echo "$base"; return 0; fi
  t0=$(now_ms)
  if [ ! -s "$tarball" ]; then
    work="$OMK_CACHE/work-${name//\//-}"
    rm -rf "$work"; mkdir -p "$work"
    log "debootstrap $SUITE ($pkgs) -> $tarball (log: $OMK_LOG/debootstrap-${name//\//-}.log)"
    if ! debootstrap --variant=minbase --include="$pkgs" "$SUITE" "$work" "$MIRROR" \
        > "$OMK_LOG/debootstrap-${name//\//-}.log" 2>&1; then
      tail -n 30 "$OMK_LOG/debootstrap-${name//\//-}.log" >&2
      die "debootstrap for $name failed"
    fi
    if [ -n "$prep" ]; then
      install -m 0755 "$RESTIC" "$work/usr/local/bin/restic"
      install -m 0755 "$prep" "$work/rootfs-prepare.sh"
      chroot "$work" /rootfs-prepare.sh || die "$prep failed in the $name rootfs"
      rm -f "$work/rootfs-prepare.sh"
    fi
    rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/*_* "$work"/tmp/*
    tar --numeric-owner -C "$work" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf "$work"
    log "rootfs $name in $(elapsed "$t0" "$(now_ms)") ($(du -h "$tarball" | cut -f1))"
  fi
  "$DOCKER" import -m "omk rootfs $name ($SUITE minbase: $pkgs)" "$tarball" "$base" >/dev/null
  # Older rootfs builds of this name (other KEYs) are superseded: drop them.
  local old
  for old in $("$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}' "$name/rootfs"); do
    [ "$old" = "$base" ] || "$DOCKER" rmi "$old" >/dev/null 2>&1 || true
  done
  find "$OMK_CACHE" -maxdepth 1 -name "rootfs-${name//\//-}-*.tar" ! -name "$(basename "$tarball")" -delete
  echo "$base"
}

# docker_build TAG BASE CONTEXT: legacy builder (no BuildKit, no registry), with cache.
docker_build() {
  local log="$OMK_LOG/build-${1//[\/:]/-}.log"
  DOCKER_BUILDKIT=0 "$DOCKER" build --build-arg "BASE=$2" -t "$1" "$3" > "$log" 2>&1 \
    || { cat "$log" >&2; die "docker build of $1 failed"; }
}

# ---------------------------------------------------------------- omk-backup:local
BIN=${OMK_IMAGE_BINARY:-}
if [ -z "$BIN" ]; then
  export PATH="/root/.cargo/bin:${HOME:-/root}/.cargo/bin:$PATH"
  command -v cargo >/dev/null || die "cargo not found (or set OMK_IMAGE_BINARY)"
  t=$(now_ms)
  log "cargo build --release (log: $OMK_LOG/cargo-release.log)"
  (cd "$ROOT" && cargo build --release --bin omk-backup) > "$OMK_LOG/cargo-release.log" 2>&1 \
    || { tail -n 30 "$OMK_LOG/cargo-release.log" >&2; die "cargo build --release failed"; }
  log "release build in $(elapsed "$t" "$(now_ms)")"
  BIN=$ROOT/target/release/omk-backup
fi
[ -x "$BIN" ] || die "$BIN is not an executable"

base=$(build_base omk-backup "$ROOT/images/omk-backup/packages" "$ROOT/images/omk-backup/rootfs-prepare.sh")
ctx="$ROOT/target/omk-image"
mkdir -p "$ctx"
cp "$ROOT/images/omk-backup/Dockerfile" "$ctx/Dockerfile"
# Strip the debug info of the release profile (debug = 1): 1/5 of the size. Copy only
# when the content changed, so the build context (and the layer) stays identical.
strip -o "$ctx/omk-backup.new" "$BIN"
if cmp -s "$ctx/omk-backup.new" "$ctx/omk-backup"; then rm "$ctx/omk-backup.new"; else mv "$ctx/omk-backup.new" "$ctx/omk-backup"; fi
before=$("$DOCKER" image inspect -f '{{.Id}}' "$TAG" 2>/dev/null || true)
docker_build "$TAG" "$base" "$ctx"
after=$("$DOCKER" image inspect -f '{{.Id}}' "$TAG")

verify_image() { # read-only root, no capabilities, no new privileges, default user
  local run=("$DOCKER" run --rm --read-only --cap-drop ALL --security-opt no-new-privileges:true --network none)
  local out
  out=$("${run[@]}" --entrypoint sh "$TAG" -c 'id -u; id -g; restic version; ssh -V 2>&1; rclone version | head -n 1; test -s /etc/ssl/certs/ca-certificates.crt && echo certs; test -f /usr/share/zoneinfo/Europe/Berlin && echo tz') \
    || die "verify: $TAG does not run read-only without capabilities"
  local want
  for want in '^1000$' '^restic 0\.18\.' '^OpenSSH_' '^rclone v' '^certs$' '^tz$'; do
    grep -Eq "$want" <<< "$out" || die "verify: $TAG lacks $want: $out"
  done
  # Output captured first: `cmd | grep -q` under pipefail fails when grep exits before
  # cmd has written everything (the docker CLI then reports "broken pipe").
  out=$("${run[@]}" "$TAG" --version) || die "verify: omk-backup --version failed in $TAG"
  grep -q '^omk-backup ' <<< "$out" || die "verify: omk-backup --version failed in $TAG: $out"
}
if [ "$before" != "$after" ]; then
  verify_image
  log "built $TAG ($after) in $(elapsed "$T0" "$(now_ms)")"
else
  log "$TAG is up to date ($after)"
fi
log "$TAG: $("$DOCKER" image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')"

# ---------------------------------------------------------------- test proxy
if [ "$WITH_PROXY" = 1 ]; then
  pbase=$(build_base omk-test/haproxy "$ROOT/images/omk-backup/test-proxy/packages")
  docker_build "$PROXY_TAG" "$pbase" "$ROOT/images/omk-backup/test-proxy"
  pv=$("$DOCKER" run --rm --network none --entrypoint haproxy "$PROXY_TAG" -v) \
    || die "verify: $PROXY_TAG does not run haproxy -v"
  grep -q 'version 2\.6' <<< "$pv" || die "verify: $PROXY_TAG has no haproxy 2.6: $pv"
  log "$PROXY_TAG ready"
fi
