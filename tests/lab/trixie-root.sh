#!/bin/bash
# trixie-root.sh ROOTDIR: a minimal Debian 13 "trixie" root to chroot into, able to build
# out-of-tree modules against trixie's 6.12 headers for amd64 (native) and arm64 (cross). Trixie's
# linux-kbuild binaries need trixie's glibc (2.38), and its kernels are built with gcc-14, so
# tests/fixtures/build.sh runs their builds inside this root (chroot, no mounts needed).
# Idempotent: exits at once if ROOTDIR carries a matching completion stamp. Never touches the
# host's /etc/apt (mmdebstrap uses its own apt state). Takes about 35 s and 210 MB.
set -euo pipefail

ROOTDIR=${1:?usage: $0 ROOTDIR}
MIRROR=${ARCHIVE_URI:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_URI:-http://deb.debian.org/debian-security}
KEYRING=${KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
SUITE=trixie

# gcc-14 / gcc-14-aarch64-linux-gnu: CONFIG_CC_VERSION_TEXT is "<triplet>-gcc-14 (Debian 14.2.0-19)"
#   and .kernelvariables sets CC=$(CROSS_COMPILE)gcc-14 with CROSS_COMPILE forced
#   to x86_64-linux-gnu- / aarch64-linux-gnu-.
# libc6-dev is NOT needed (kernel code builds with -nostdinc; kbuild's host tools are prebuilt).
# libelf1t64 libssl3t64 zlib1g pahole: runtime deps of linux-kbuild-6.12.* (modpost,
#   objtool, resolve_btfids, sign-file); pahole generates module BTF against the
#   vmlinux shipped in the headers packages (CONFIG_DEBUG_INFO_BTF_MODULES=y).
PKGS="make,gcc-14,binutils,gcc-14-aarch64-linux-gnu,binutils-aarch64-linux-gnu,libelf1t64,libssl3t64,zlib1g,pahole"

STAMP_NAME=.trixie-kbuild-root.stamp
STAMP_CONTENT="suite=$SUITE pkgs=$PKGS slim=${SLIM:-1} v=2"

ROOTDIR=$(realpath -m -- "$ROOTDIR")
[ "$ROOTDIR" != / ] || { echo "refusing ROOTDIR=/" >&2; exit 2; }

if [ -f "$ROOTDIR/$STAMP_NAME" ] && [ "$(cat "$ROOTDIR/$STAMP_NAME")" = "$STAMP_CONTENT" ]; then
    echo "trixie root $ROOTDIR already complete"
    exit 0
fi
if [ -e "$ROOTDIR" ] && [ -n "$(ls -A "$ROOTDIR" 2>/dev/null)" ]; then
    echo "$ROOTDIR exists, is not empty and has no (matching) $STAMP_NAME; remove it first" >&2
    exit 1
fi

[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }
command -v mmdebstrap >/dev/null || {
    echo "installing mmdebstrap on the host" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >&2
}
[ -r "$KEYRING" ] || { echo "missing keyring $KEYRING" >&2; exit 1; }

# Build next to the target and rename at the end, so ROOTDIR only ever
# appears complete. A leftover from an interrupted run is removed first,
# but never while something is still mounted below it.
WORK="$ROOTDIR.partial"
cleanup() {
    if [ -d "$WORK" ] && ! findmnt -rn -o TARGET | grep -q "^$WORK\(/\|$\)"; then
        rm -rf --one-file-system -- "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# mounts left by a SIGKILLed mmdebstrap (it bind-mounts /proc /sys /dev/pts /dev/shm
# into the target while installing and unmounts them itself on normal exit/INT/TERM)
{ findmnt -rn -o TARGET | grep "^$WORK/" || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
if findmnt -rn -o TARGET | grep -q "^$WORK\(/\|$\)"; then
    echo "something is still mounted under $WORK; unmount it first" >&2; exit 1
fi
rm -rf --one-file-system -- "$WORK"
mkdir -p "$(dirname "$ROOTDIR")"

# SLIM=1 (default): also drop files a kernel-module build never uses: the LTO
# compiler/dumper (kernel gcc builds have CONFIG_LTO_NONE) and the user-space
# sanitizer runtimes pulled in by libgcc-14-dev (~190 MB together).
SLIM_OPTS=()
if [ "${SLIM:-1}" = 1 ]; then
    for p in '/usr/bin/*-lto-dump-*' '/usr/libexec/gcc*/*/*/lto1' \
             '/usr/lib/*/lib*san.so*' '/usr/aarch64-linux-gnu/lib/lib*san.so*' \
             '/usr/lib/gcc*/*/*/lib*san*.a' '/usr/lib/gcc*/*/*/lib*san*.so' ; do
        SLIM_OPTS+=(--dpkgopt="path-exclude=$p")
    done
fi

# Optional persistent .deb cache (DEB_CACHE=/some/dir) to make re-creation fast.
CACHE_OPTS=()
if [ -n "${DEB_CACHE:-}" ]; then
    mkdir -p "$DEB_CACHE"
    DEB_CACHE=$(realpath "$DEB_CACHE")
    CACHE_OPTS=(--skip=download/empty --skip=essential/unlink
        --setup-hook='mkdir -p "$1"/var/cache/apt/archives/'
        --setup-hook="sync-in '$DEB_CACHE' /var/cache/apt/archives/"
        --customize-hook="sync-out /var/cache/apt/archives '$DEB_CACHE'")
fi

# --variant=essential: only Essential:yes packages + the includes; apt runs on the
# host side (mmdebstrap's private apt state), so no apt inside the root.
# path-exclude drops docs/man/locales (~tens of MB).
mmdebstrap \
    --mode=root --variant=essential --format=directory \
    --keyring="$KEYRING" \
    --aptopt='Apt::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt=force-unsafe-io \
    "${SLIM_OPTS[@]}" \
    --include="$PKGS" \
    "${CACHE_OPTS[@]}" \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*.log' \
    "$SUITE" "$WORK" \
    "deb $MIRROR $SUITE main" \
    "deb $SECURITY_MIRROR $SUITE-security main"

# sanity: the tools the kernel build calls must exist and run inside the root
chroot "$WORK" /usr/bin/env -i PATH=/usr/bin:/bin sh -ec '
    x86_64-linux-gnu-gcc-14 --version >/dev/null
    aarch64-linux-gnu-gcc-14 --version >/dev/null
    aarch64-linux-gnu-ld --version >/dev/null
    make --version >/dev/null
    pahole --version >/dev/null
    test -c /dev/null'

echo "$STAMP_CONTENT" > "$WORK/$STAMP_NAME"
rmdir "$ROOTDIR" 2>/dev/null || true
mv -T -- "$WORK" "$ROOTDIR"
echo "trixie root ready: $ROOTDIR ($(du -sh --one-file-system "$ROOTDIR" | cut -f1))"
