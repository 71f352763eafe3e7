# lib.sh: sourced by the scripts in tests/ (not run on its own).
# LAB is the work directory for downloaded packages, extracted kernel trees and builds.
#
# The kernels the scripts work on: the four pinned ones of tests/lab/kernels.env, or, when
# KERNEL_SET names a file (tests/lab/current.sh writes one), the kernels listed there, one a line:
#   name  release  suite  version  image-version  kbuild-package
# name is <anything>-<series>-<arch> (debian-6.1-amd64, trixie-6.12-arm64); suite is the apt
# source set of tests/lab/apt.sh it comes from; version is the linux source package's (headers,
# kbuild), image-version the linux-image package's.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB=${LAB:-$REPO/target/lab}
. "$REPO/tests/lab/kernels.env"
# PIN_K61, PIN_V61, PIN_K612, PIN_V612 override the pins (to try what happens when the pinned
# kernels have left the archive).
K61=${PIN_K61:-$K61} V61=${PIN_V61:-$V61} K612=${PIN_K612:-$K612} V612=${PIN_V612:-$V612}

die() { echo "${0##*/}: $*" >&2; exit 1; }

declare -A KREL=() KSUITE=() KVER=() KIVER=() KKBUILD=()
if [ -n "${KERNEL_SET:-}" ]; then
	[ -f "$KERNEL_SET" ] || die "KERNEL_SET=$KERNEL_SET: no such file"
	KERNELS=
	while read -r _n _r _s _v _i _b _rest; do
		case $_n in ''|'#'*) continue ;; esac
		[ -n "$_b" ] && [ -z "$_rest" ] || die "$KERNEL_SET: bad line '$_n $_r $_s $_v $_i $_b $_rest'"
		[[ $_n =~ ^[A-Za-z0-9_.+]+-[0-9]+\.[0-9]+-(amd64|arm64)$ ]] || die "$KERNEL_SET: bad kernel name '$_n'"
		KREL[$_n]=$_r KSUITE[$_n]=$_s KVER[$_n]=$_v KIVER[$_n]=$_i KKBUILD[$_n]=$_b
		KERNELS="${KERNELS:+$KERNELS }$_n"
	done <"$KERNEL_SET"
	[ -n "$KERNELS" ] || die "$KERNEL_SET: no kernels"
else
	for _a in amd64 arm64; do
		KREL[debian-6.1-$_a]=$K61-$_a KSUITE[debian-6.1-$_a]=bookworm
		KVER[debian-6.1-$_a]=$V61 KIVER[debian-6.1-$_a]=$V61 KKBUILD[debian-6.1-$_a]=linux-kbuild-6.1
		KREL[debian-6.12-$_a]=$K612-$_a KSUITE[debian-6.12-$_a]=bookworm-backports
		KVER[debian-6.12-$_a]=$V612 KIVER[debian-6.12-$_a]=$V612 KKBUILD[debian-6.12-$_a]=linux-kbuild-$K612
	done
fi

check_kernel() {
	case " $KERNELS " in *" $1 "*) ;; *) die "unknown kernel '$1' (one of: $KERNELS)" ;; esac
}
# debian-6.12-arm64 -> arm64
karch() { echo "${1##*-}"; }
# debian-6.12-arm64 -> 6.12
kseries() { local s=${1%-*}; echo "${s##*-}"; }
# debian-6.12-arm64 -> 6.12.95+deb12-arm64 (the kernel release, uname -r)
krel() { [ -n "${KREL[$1]:-}" ] || die "unknown kernel '$1'"; echo "${KREL[$1]}"; }
# the extracted tree of a kernel: boot/, lib/modules/, usr/src/linux-headers-*
kroot() { echo "$LAB/root/$1"; }
kheaders() { echo "$LAB/root/$1/usr/src/linux-headers-$(krel "$1")"; }
kimage() { echo "$LAB/root/$1/boot/vmlinuz-$(krel "$1")"; }

# secs START_NS: seconds since START_NS (date +%s%N), one decimal
secs() { local d=$(( $(date +%s%N) - $1 )); printf '%d.%d' $((d / 1000000000)) $((d / 100000000 % 10)); }

# The QEMU machine every recording runs on (TCG, 1 GiB, one CPU; arm64: virt, Cortex-A57).
# qemu_machine KERNEL: its description; qemu_argv KERNEL INITRD APPEND: sets the array QEMU to
# the whole command line (the console is added to APPEND).
qemu_machine() {
	case $(karch "$1") in
	amd64) echo "qemu-system-x86_64 -accel tcg -m 1G -smp 1" ;;
	arm64) echo "qemu-system-aarch64 -M virt -cpu cortex-a57 -accel tcg -m 1G -smp 1" ;;
	esac
}
qemu_argv() {
	local console=ttyS0
	[ "$(karch "$1")" = arm64 ] && console=ttyAMA0
	read -ra QEMU <<<"$(qemu_machine "$1")"
	QEMU+=(-nographic -no-reboot -kernel "$(kimage "$1")" -initrd "$2" -append "console=$console $3")
}

# stage_busybox KERNEL STAGEDIR: a fresh initramfs tree with the kernel's architecture's static
# busybox as /bin/busybox and /bin/sh, and empty /m /proc /sys /dev /tmp.
stage_busybox() {
	local bb
	case $(karch "$1") in
	amd64) bb=/bin/busybox ;;
	arm64) bb=$LAB/root/busybox-arm64/bin/busybox ;;
	esac
	[ -f "$bb" ] || die "no static busybox $bb"
	readelf -lW "$bb" | grep -q 'program interpreter' && die "$bb is not static"
	rm -rf "$2"; mkdir -p "$2/bin" "$2/m" "$2/proc" "$2/sys" "$2/dev" "$2/tmp"
	cp "$bb" "$2/bin/busybox"; ln -s busybox "$2/bin/sh"
}

# for_kernels JOBS FUNC KERNEL...: FUNC KERNEL for each kernel, JOBS at a time
for_kernels() {
	local jobs=$1 f=$2 k running=0
	shift 2
	for k in "$@"; do
		if [ $running -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
		"$f" "$k" &
		running=$((running + 1))
	done
	wait
}

# kmods KERNEL: the kernel's module directory in its extracted tree: lib/modules/<release>, or
# usr/lib/modules/<release> where the package ships it there (Debian 13 and later)
kmods() {
	local r d
	r=$(krel "$1")
	for d in "$(kroot "$1")/lib/modules/$r" "$(kroot "$1")/usr/lib/modules/$r"; do
		[ -d "$d" ] && { echo "$d"; return; }
	done
	echo "$(kroot "$1")/lib/modules/$r"
}
