# lib.sh: sourced by the scripts in tests/ (not run on its own).
# LAB is the work directory for downloaded packages, extracted kernel trees and builds.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB=${LAB:-$REPO/target/lab}
. "$REPO/tests/lab/kernels.env"

die() { echo "${0##*/}: $*" >&2; exit 1; }

check_kernel() {
	case " $KERNELS " in *" $1 "*) ;; *) die "unknown kernel '$1' (one of: $KERNELS)" ;; esac
}
# debian-6.12-arm64 -> arm64
karch() { echo "${1##*-}"; }
# debian-6.12-arm64 -> 6.12.95+deb12-arm64 (the kernel release, uname -r)
krel() {
	case $1 in
	debian-6.1-*) echo "$K61-$(karch "$1")" ;;
	debian-6.12-*) echo "$K612-$(karch "$1")" ;;
	*) die "unknown kernel '$1'" ;;
	esac
}
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
