#!/bin/sh
# Run by scripts/build-image.sh inside the debootstrapped rootfs (chroot), before it is
# packed and imported as the base of omk-backup:local. Creates the non-root user and the
# folders the compose file mounts volumes on, and drops what a runtime never reads.
set -eu
groupadd --gid 1000 omk-backup
useradd --uid 1000 --gid 1000 --home-dir /var/lib/omk-backup --no-create-home \
  --shell /usr/sbin/nologin omk-backup
# Volume mount points, owned by the user so that a fresh named volume (Docker copies the
# image folder's owner and mode into it) is writable by uid 1000.
install -d -m 0750 -o 1000 -g 1000 /var/lib/omk-backup /cache
install -d -m 0755 /etc/omk-backup /repo
# Nothing at runtime reads these; apt and dpkg stay (debugging in a copy of the image).
rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* \
  /usr/share/lintian /usr/share/bash-completion \
  /var/cache/apt/* /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/* /tmp/* 2>/dev/null || true
