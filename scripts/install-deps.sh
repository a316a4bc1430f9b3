#!/usr/bin/env bash
# Installs what s3blk's build, tests and demo need on a fresh Debian machine:
# FUSE 3, e2fsprogs, rsync, zstd (Debian packages) and MinIO (go install).
# Safe to run again: it installs only what is missing.
set -euo pipefail

MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
PACKAGES=(fuse3 e2fsprogs rsync util-linux psmisc curl time zstd ${EXTRA_PACKAGES:-})

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "install-deps: installing ${missing[*]}" >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# FUSE and loop devices must exist (they do on this kernel; load them if modular).
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || true

GOBIN=$(go env GOPATH)/bin
if [ ! -x "$GOBIN/minio" ]; then
	echo "install-deps: building MinIO $MINIO_VERSION (takes a few minutes the first time)" >&2
	(cd /tmp && go install "github.com/minio/minio@$MINIO_VERSION")
fi
