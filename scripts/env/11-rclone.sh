# shellcheck shell=bash
# rclone: repositories: an rclone config with one local-disk remote, `omk-local`, so
# `rclone:omk-local:/var/lib/omk-test/rclone/NAME` works (restic starts `rclone serve
# restic --stdio` itself; rclone finds the config through $RCLONE_CONFIG, which the tests
# set from OMK_TEST_RCLONE_CONFIG). Sourced by setup-test-env.sh.
t=$(now_ms)
RCLONE_DIR=/var/lib/omk-test/rclone
RCLONE_CONF=/var/lib/omk-test/rclone.conf
[ -x /usr/bin/rclone ] || die "/usr/bin/rclone missing (the rclone package)"
mkdir -p "$RCLONE_DIR"
printf '# Written by scripts/env/11-rclone.sh\n[omk-local]\ntype = local\n' > "$RCLONE_CONF.new"
chmod 600 "$RCLONE_CONF.new"
mv "$RCLONE_CONF.new" "$RCLONE_CONF"
RCLONE_CONFIG=$RCLONE_CONF rclone lsf "omk-local:$RCLONE_DIR" > /dev/null 2> "$OMK_LOG/rclone-smoke.log" \
  || { cat "$OMK_LOG/rclone-smoke.log" >&2; die "rclone lsf omk-local:$RCLONE_DIR failed"; }
ENV_EXTRA+=(
  "OMK_TEST_RCLONE_CONFIG=$RCLONE_CONF"
  "OMK_TEST_RCLONE_REMOTE=omk-local"
  "OMK_TEST_RCLONE_DIR=$RCLONE_DIR"
)
step_done "rclone remote" "$t" "omk-local -> $RCLONE_DIR"
