#!/bin/bash
# record.sh: record what Debian 12's own module programs print and return on the real kernels,
# under QEMU (TCG): kmod's lsmod/modprobe/insmod/rmmod/modinfo, busybox's insmod/lsmod/rmmod
# applets and systemd-modules-load, one command at a time (the list is in guest/init.sh).
#
# Usage: tests/programs/record.sh [KERNEL...] [--out DIR]
#   KERNEL   debian-6.1-amd64 debian-6.12-amd64 (default: both; amd64 only: the programs are
#            Debian 12's amd64 packages)
#   --out    write DIR/<kernel>.jsonl (default: tests/programs/recorded)
# Environment:
#   TIMEOUT  seconds per boot (default 300)   JOBS  kernels recorded at once (default 2)
#   KERNEL_SET    other kernels than the pinned ones (tests/lab/lib.sh)
#   PACKAGES      another pin file than tests/programs/packages.env
#
# The programs come from the Debian packages pinned in packages.env (exact version and sha256;
# downloaded, never installed, into target/lab/programs/debs; exit 3 when a pinned version has
# left the archive). One boot per kernel, on the machine of the other record scripts
# (tests/lab/lib.sh qemu_argv: TCG, 1 GiB, one CPU). The initramfs is a small merged-/usr
# Debian 12 root (README.md): the packages' files the programs need, busybox as the shell and
# coreutils, and the kernel's module tree as Debian installs it, cut down: every index file of a
# depmod run (Debian 12's own depmod, on the host, over the kernel's whole lib/modules/<release>),
# and only the module files that modprobe may touch for MODULES below (their dependencies and
# soft dependencies). host.py extract checks that every module the kernel itself asked modprobe
# for during the run was there. guest/init.sh prints the results as a base64 tar on the
# console; host.py extract checks it and writes DIR/<kernel>.jsonl (format: README.md).
# Work files and console logs: target/lab/programs/<kernel>/ (console.log).
# A failed kernel (timeout, a guest error, a bad or incomplete output) keeps its old file; the
# others go on, and record.sh exits 1 at the end.
set -euo pipefail
. "$(dirname "$0")/../lab/lib.sh"
. "$REPO/tests/lab/apt.sh"
P=$REPO/tests/programs
G=$P/guest
WORK=$LAB/programs
OUT=$P/recorded
TIMEOUT=${TIMEOUT:-300}
JOBS=${JOBS:-2}
PACKAGES=${PACKAGES:-$P/packages.env}
# the modules the commands of guest/init.sh load (by name), and what the kernel asks modprobe for
# by itself (6.12 at boot: crypto-aes, i.e. aesni-intel and padlock-aes, which fail under TCG);
# the guest's tree has these, their dependencies and soft dependencies
MODULES="ext4 vcan loop vfat brd crypto-aes"

kernels=()
while [ $# -gt 0 ]; do
	case $1 in
	--out) [ $# -ge 2 ] || die "--out needs a value"; OUT=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	-*) die "unknown option $1" ;;
	*)
		check_kernel "$1"
		[ "$(karch "$1")" = amd64 ] || die "$1: amd64 kernels only (the programs are Debian 12 amd64 packages)"
		kernels+=("$1"); shift ;;
	esac
done
if [ ${#kernels[@]} = 0 ]; then
	for k in $KERNELS; do [ "$(karch "$k")" = amd64 ] && kernels+=("$k"); done
fi
mkdir -p "$OUT" "$WORK/debs" "$WORK/bin"
OUT=$(cd "$OUT" && pwd)

T0=$(date +%s%N)

"$REPO/tests/lab/fetch-kernels.sh"

# ---- the pinned packages ----
DEBS=$WORK/debs
debfile() { echo "${1}_${2//:/%3a}_amd64.deb"; } # NAME VERSION
gone=() used=()
while read -r n v sum _; do
	case $n in ''|'#'*) continue ;; esac
	f=$(debfile "$n" "$v")
	if [ ! -s "$DEBS/$f" ]; then
		if ! apt_has bookworm "$n:amd64" "$v"; then
			gone+=("$n=$v")
			continue
		fi
		(cd "$DEBS" && papt bookworm apt-get download "$n:amd64=$v" >/dev/null) ||
			die "cannot download $n:amd64=$v"
		[ -s "$DEBS/$f" ] || die "downloaded $n:amd64=$v but $DEBS/$f is missing"
	fi
	got=$(sha256sum "$DEBS/$f" | cut -d' ' -f1)
	echo "programs: sha256 $got $f"
	if [ "$sum" != - ] && [ "$sum" != "$got" ]; then
		die "$f: sha256 $got, but $PACKAGES pins $sum"
	fi
	used+=("$DEBS/$f")
done <"$PACKAGES"
if [ ${#gone[@]} -gt 0 ]; then
	echo "programs: no longer in Debian's archive (bookworm, bookworm-security): ${gone[*]}" >&2
	echo "programs: move the pins in $PACKAGES (or put the old .debs, from snapshot.debian.org, into $DEBS)" >&2
	exit 3
fi

# one Debian root with every package (their own layout: /bin, /lib, /usr/lib ...)
SYSROOT=$WORK/sysroot
rm -rf "$SYSROOT"; mkdir -p "$SYSROOT"
for d in "${used[@]}"; do dpkg-deb -x "$d" "$SYSROOT"; done
# kmod from the sysroot, run on the host through the sysroot's own dynamic loader (depmod only)
hostkmod() { # ARGV0 ARG...
	local a0=$1
	shift
	"$SYSROOT/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
		--library-path "$SYSROOT/lib/x86_64-linux-gnu:$SYSROOT/usr/lib/x86_64-linux-gnu" \
		--argv0 "$a0" "$SYSROOT/bin/kmod" "$@"
}
gcc -static -O2 -Wall -Wextra -Werror -o "$WORK/bin/run" "$G/run.c"

# ---- stage and pack one initramfs per kernel ----
# usrpath REL: where a path of a package's own layout lives in the merged-/usr guest
usrpath() {
	case $1 in bin/*|sbin/*|lib/*|lib64/*) echo "usr/$1" ;; *) echo "$1" ;; esac
}
# put STAGE REL...: copy sysroot paths into the stage (symlinks as symlinks)
put() {
	local st=$1 r d
	shift
	for r in "$@"; do
		[ -e "$SYSROOT/$r" ] || [ -L "$SYSROOT/$r" ] || die "no $r in the packages"
		d=$st/$(usrpath "$r")
		mkdir -p "$(dirname "$d")"
		cp -P "$SYSROOT/$r" "$d"
	done
}
libs=$(python3 "$P/host.py" libs "$SYSROOT" /bin/kmod /lib/systemd/systemd-modules-load)
for k in "${kernels[@]}"; do
	r=$(krel "$k")
	[ -f "$(kimage "$k")" ] || die "no $(kimage "$k")"
	# Debian's module tree: the package's files plus what depmod makes of them at install
	src=$(kmods "$k")
	tree=$WORK/$k/tree
	rm -rf "$tree"; mkdir -p "$tree/lib/modules" "$WORK/$k/depmod.d"
	cp -al "$src" "$tree/lib/modules/$r"
	hostkmod depmod -a -b "$tree" -C "$WORK/$k/depmod.d" "$r"
	md=$tree/lib/modules/$r
	python3 "$P/host.py" modules "$md" "$SYSROOT/lib/modprobe.d/aliases.conf" \
		"$SYSROOT/lib/modprobe.d/systemd.conf" -- $MODULES >"$WORK/$k/modules.list"

	st=$WORK/$k/stage
	rm -rf "$st"
	mkdir -p "$st"/usr/{bin,sbin,lib,lib64} "$st"/{proc,sys,dev,run,tmp,root,rec/kmod} \
		"$st"/etc/{modprobe.d,modules-load.d} "$st/usr/lib/modules-load.d"
	for d in bin sbin lib lib64; do ln -s "usr/$d" "$st/$d"; done
	put "$st" bin/kmod bin/lsmod sbin/depmod sbin/insmod sbin/lsmod sbin/modinfo sbin/modprobe sbin/rmmod \
		bin/busybox lib/systemd/systemd-modules-load lib/modprobe.d/aliases.conf lib/modprobe.d/systemd.conf
	# shellcheck disable=SC2086
	put "$st" $libs
	ln -s busybox "$st/usr/bin/sh"
	# busybox is the guest's shell and coreutils, not its kmod
	for a in $("$SYSROOT/bin/busybox" --list); do
		case $a in depmod|insmod|lsmod|modinfo|modprobe|rmmod) continue ;; esac
		[ -e "$st/usr/bin/$a" ] || [ -e "$st/usr/sbin/$a" ] || ln -s busybox "$st/usr/bin/$a"
	done
	mkdir -p "$st/usr/lib/modules/$r"
	cp "$md"/modules.* "$st/usr/lib/modules/$r/"
	while read -r m; do
		mkdir -p "$(dirname "$st/usr/lib/modules/$r/$m")"
		cp "$md/$m" "$st/usr/lib/modules/$r/$m"
	done <"$WORK/$k/modules.list"
	cp "$G/init.sh" "$st/init"; chmod 755 "$st/init"
	cp "$WORK/bin/run" "$st/rec/run"
	cp "$G/umh-modprobe" "$st/rec/umh-modprobe"; chmod 755 "$st/rec/umh-modprobe"
	# the boot's module requests are logged too; init.sh puts kmod's link back
	[ "$(readlink "$SYSROOT/sbin/modprobe")" = /bin/kmod ] || die "kmod's sbin/modprobe is not a link to /bin/kmod"
	rm "$st/usr/sbin/modprobe"; cp "$st/rec/umh-modprobe" "$st/usr/sbin/modprobe"
	ln -s /usr/bin/kmod "$st/rec/kmod/modprobe"
	python3 "$REPO/tests/conformance/guest/hosttool.py" cpio "$st" "$WORK/$k/initramfs.cpio.gz"
	echo "programs: $k: initramfs $(stat -c %s "$WORK/$k/initramfs.cpio.gz") bytes," \
		"$(wc -l <"$WORK/$k/modules.list") module files"
done

# record_kernel KERNEL: one boot; writes $WORK/KERNEL/status (0: ok)
record_kernel() {
	local k=$1 log rc=0 xrc=0 T=$(date +%s%N)
	qemu_argv "$k" "$WORK/$k/initramfs.cpio.gz" "loglevel=1 panic=-1 rdinit=/init"
	log=$WORK/$k/console.log
	echo 1 >"$WORK/$k/status"
	timeout "$TIMEOUT" "${QEMU[@]}" </dev/null >"$log" 2>&1 || rc=$?
	if [ $rc = 124 ]; then
		echo "programs: $k: FAILED: boot timed out after ${TIMEOUT}s (log $log)" >&2
		tail -n 20 "$log" | tr -d '\r' | sed "s/^/  $k| /" >&2
		return
	fi
	python3 "$P/host.py" extract "$k" "$(krel "$k")" "$(qemu_machine "$k")" "$log" "$PACKAGES" \
		"$WORK/$k/tree/lib/modules/$(krel "$k")" "$WORK/$k/modules.list" "$OUT/$k.jsonl" \
		2> >(sed "s#^#  $k| #" >&2) || xrc=$?
	if [ $xrc != 0 ]; then
		echo "programs: $k: FAILED (qemu status $rc, log $log); console tail:" >&2
		tail -n 20 "$log" | tr -d '\r' | sed "s/^/  $k| /" >&2
		return
	fi
	echo 0 >"$WORK/$k/status"
	echo "programs: $k: ok in $(secs "$T")s, $(($(wc -l <"$OUT/$k.jsonl") - 1)) commands"
}

for k in "${kernels[@]}"; do rm -f "$WORK/$k/status"; done
for_kernels "$JOBS" record_kernel "${kernels[@]}"
failed=0
for k in "${kernels[@]}"; do
	[ "$(cat "$WORK/$k/status" 2>/dev/null)" = 0 ] || { echo "programs: $k: FAILED" >&2; failed=1; }
done
echo "programs: total $(secs "$T0")s"
exit $failed
