#!/bin/bash
# install-deps.sh: the Debian packages the recorder needs on a fresh Debian 12 amd64 machine
# (qemu for both architectures, static busybox, the arm64 cross compiler for the guest runner,
# cpio and the compressors). With --fixtures, also what rebuilding the fixture modules needs
# (mmdebstrap: the trixie build root of tests/lab/trixie-root.sh).
# Runs apt-get as root (through sudo when not root). Idempotent.
set -euo pipefail
pkgs=(qemu-system-x86 qemu-system-arm busybox-static cpio gzip xz-utils zstd kmod
      gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu
      python3 ca-certificates)
if [ "${1:-}" = --fixtures ]; then
	pkgs+=(make gcc-12 bc libelf1 libssl3 zlib1g pahole mmdebstrap)
fi
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	$SUDO dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "install-deps: ok"
