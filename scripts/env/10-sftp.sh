# shellcheck shell=bash
# sftp: repositories: a second OpenSSH server on 127.0.0.1:2222 (own host key, own
# sshd_config, key authentication only, root with a dedicated key), data under
# /var/lib/omk-test/sftp, and a `Host omk-sftp` entry (plus `omk-sftp-*` for the private
# servers single tests start on their own ports) in an ssh client config that root's ssh
# reads through one `Include` line at the top of /root/.ssh/config. restic's sftp backend
# runs plain `ssh`, so `sftp:omk-sftp:/var/lib/omk-test/sftp/NAME` needs nothing else.
# Sourced by setup-test-env.sh.
# shellcheck source=../lib/service.sh
source "$ROOT/scripts/lib/service.sh"
t=$(now_ms)
SFTP_PORT=2222
SFTP_ETC=/var/lib/omk-test/sshd
SFTP_DATA=/var/lib/omk-test/sftp
if [ ! -x /usr/sbin/sshd ]; then
  log "installing openssh-server (the system's sshd is not started: only ours runs)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q > "$OMK_LOG/apt-sftp.log" 2>&1 || { tail -n 20 "$OMK_LOG/apt-sftp.log" >&2; die "apt-get update failed"; }
  apt-get install -y -q --no-install-recommends openssh-server openssh-client openssh-sftp-server >> "$OMK_LOG/apt-sftp.log" 2>&1 \
    || { tail -n 30 "$OMK_LOG/apt-sftp.log" >&2; die "apt-get install openssh-server failed"; }
fi
for b in /usr/sbin/sshd /usr/bin/ssh /usr/bin/sftp /usr/bin/ssh-keygen; do
  [ -x "$b" ] || die "$b missing after installing openssh-server (sftp repositories)"
done
mkdir -p "$SFTP_ETC" "$SFTP_DATA" /run/sshd
chmod 700 "$SFTP_ETC"
[ -s "$SFTP_ETC/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C omk-test-sftp-host -f "$SFTP_ETC/host_ed25519" || die "ssh-keygen (host key) failed"
[ -s "$SFTP_ETC/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C omk-test-sftp-client -f "$SFTP_ETC/client_ed25519" || die "ssh-keygen (client key) failed"
cp "$SFTP_ETC/client_ed25519.pub" "$SFTP_ETC/authorized_keys"
chmod 600 "$SFTP_ETC/authorized_keys" "$SFTP_ETC/host_ed25519" "$SFTP_ETC/client_ed25519"
# The host key is pinned under the alias omk-sftp, whatever port a test's server uses.
echo "omk-sftp $(cut -d' ' -f1-2 "$SFTP_ETC/host_ed25519.pub")" > "$SFTP_ETC/known_hosts"
# The server's config (tests start private copies with -o ListenAddress=... -o PidFile=...).
cat > "$SFTP_ETC/sshd_config" <<CFG
ListenAddress 127.0.0.1:$SFTP_PORT
HostKey $SFTP_ETC/host_ed25519
PidFile $OMK_RUN/sshd-omk.pidfile
AuthorizedKeysFile $SFTP_ETC/authorized_keys
AllowUsers root
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
Subsystem sftp internal-sftp
CFG
/usr/sbin/sshd -t -f "$SFTP_ETC/sshd_config" || die "invalid $SFTP_ETC/sshd_config"
cat > "$SFTP_ETC/ssh_config" <<CFG
# Written by scripts/env/10-sftp.sh: the omk-backup test sftp server(s).
Host omk-sftp omk-sftp-*
  HostName 127.0.0.1
  Port $SFTP_PORT
  User root
  IdentityFile $SFTP_ETC/client_ed25519
  IdentitiesOnly yes
  HostKeyAlias omk-sftp
  UserKnownHostsFile $SFTP_ETC/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
  ServerAliveInterval 5
  ServerAliveCountMax 2
CFG
# root's ssh reads ~/.ssh/config of the passwd entry (not $HOME); the Include goes first
# so it is not inside another Host block.
SSH_HOME=$(getent passwd root | cut -d: -f6)
mkdir -p "$SSH_HOME/.ssh"; chmod 700 "$SSH_HOME/.ssh"
SFTP_INCLUDE="Include $SFTP_ETC/ssh_config"
if ! grep -qxF "$SFTP_INCLUDE" "$SSH_HOME/.ssh/config" 2>/dev/null; then
  { echo "$SFTP_INCLUDE"; cat "$SSH_HOME/.ssh/config" 2>/dev/null || true; } > "$SSH_HOME/.ssh/config.omk-new"
  chmod 600 "$SSH_HOME/.ssh/config.omk-new"
  mv "$SSH_HOME/.ssh/config.omk-new" "$SSH_HOME/.ssh/config"
fi
SFTP_SIG="$(sha256sum "$SFTP_ETC/sshd_config" "$SFTP_ETC/authorized_keys" "$SFTP_ETC/host_ed25519" | sha256sum | cut -d' ' -f1)"
ss_state=$(ensure_service sshd-omk /usr/sbin/sshd "$SFTP_PORT" "$SFTP_SIG" /usr/sbin/sshd -D -e -f "$SFTP_ETC/sshd_config")
# Smoke test: key login through the Host entry, and sftp in batch mode.
ssh omk-sftp true 2> "$OMK_LOG/sftp-smoke.log" || { cat "$OMK_LOG/sftp-smoke.log" >&2; die "ssh omk-sftp (127.0.0.1:$SFTP_PORT) failed"; }
echo "ls $SFTP_DATA" | sftp -q -b - omk-sftp > /dev/null 2>> "$OMK_LOG/sftp-smoke.log" || { cat "$OMK_LOG/sftp-smoke.log" >&2; die "sftp -b omk-sftp failed"; }
ENV_EXTRA+=(
  "OMK_TEST_SFTP_HOST=omk-sftp"
  "OMK_TEST_SFTP_PORT=$SFTP_PORT"
  "OMK_TEST_SFTP_DIR=$SFTP_DATA"
  "OMK_TEST_SFTP_SSHD_CONFIG=$SFTP_ETC/sshd_config"
)
step_done "sftp server" "$t" "sshd :$SFTP_PORT $ss_state"
