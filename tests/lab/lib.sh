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
