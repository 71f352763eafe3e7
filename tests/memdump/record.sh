#!/bin/bash
# record.sh: record the memory of loaded modules on the real kernels, under QEMU (TCG), for the
# byte-by-byte comparison of the simulator's module layout and relocations.
#
# Usage: tests/memdump/record.sh [KERNEL...] [--out DIR]
#   KERNEL   debian-6.1-amd64 debian-6.1-arm64 debian-6.12-amd64 debian-6.12-arm64 (default: all)
#   --out    write DIR/<kernel>.json (default: tests/fixtures/memdump); CI records into a scratch
#            directory and runs tests/memdump.rs on it (MODSIM_MEMDUMP_DIR=DIR)
#   --append ARGS --suffix S
#            boot with ARGS added to the kernel command line and write DIR/<kernel>S.json only,
#            whose meta.append says ARGS (tests/memdump.rs applies it to the simulated machine).
#            Without it: the plain boot of every kernel, then the amd64 kernels again with
#            spectre_v2=off (+nospectre) and spectre_v2=retpoline,lfence (+lfence), the options
#            that change what apply_retpolines() writes
# Environment:
#   TIMEOUT  seconds per boot (default 300)   JOBS  kernels recorded at once (default 2)
#   FIXTURES_DIR  another fixtures directory, holding <kernel>/* (default tests/fixtures/ko)
#   KERNEL_SET    other kernels than the pinned four (tests/lab/lib.sh)
#
# One boot per kernel, with the machine of tests/conformance/record.sh (same QEMU options). The
# guest (guest/init.sh) loads mp_lib, mp_export, mp_use, mp_use_ns, mp_plt, mp_weak, mp_noexit,
# mp_patch and mp_types (with parameters; the list is in memdump.py) from tests/fixtures/ko/<kernel>/
# (arm64 refuses mp_weak, as expected: checked, and noted in the JSON), prints the
# /proc/kallsyms lines of the symbols the modules import and, through guest/kcore.c, the
# VMCOREINFO note of /proc/kcore (KERNELOFFSET: the KASLR slide), every section address of every
# module (/sys/module/*/sections) and the bytes of every live section read from /proc/kcore,
# base64 with a CRC32, on the serial console. memdump.py checks it, resolves the symbols (arm64
# also from the kernel Image's export table) and writes tests/fixtures/memdump/<kernel>.json
# (format: tests/fixtures/memdump/README.md). A boot takes 6-9 s.
# Work files and console logs: target/lab/memdump/<kernel>/ (console.log).
# A failed kernel (timeout, an insmod error, a bad or incomplete dump) keeps its old JSON file;
# the others go on, and record.sh exits 1 at the end.
set -euo pipefail
. "$(dirname "$0")/../lab/lib.sh"
MD=$REPO/tests/memdump
G=$MD/guest
PY=(python3 "$MD/memdump.py")
WORK=$LAB/memdump
KO_DIR=${FIXTURES_DIR:-$REPO/tests/fixtures/ko}
OUT=$REPO/tests/fixtures/memdump
TIMEOUT=${TIMEOUT:-300}
APPEND= SUFFIX=
JOBS=${JOBS:-2}

kernels=()
while [ $# -gt 0 ]; do
	case $1 in
	--out) [ $# -ge 2 ] || die "--out needs a value"; OUT=$2; shift 2 ;;
	--append) [ $# -ge 2 ] || die "--append needs a value"; APPEND=$2; shift 2 ;;
	--suffix) [ $# -ge 2 ] || die "--suffix needs a value"; SUFFIX=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	-*) die "unknown option $1" ;;
	*) check_kernel "$1"; kernels+=("$1"); shift ;;
	esac
done
[ ${#kernels[@]} -gt 0 ] || read -ra kernels <<<"$KERNELS"
[[ $SUFFIX =~ ^[A-Za-z0-9_.+-]*$ ]] || die "--suffix: letters, digits and _.+- only"
[ -z "$APPEND" ] || [ -n "$SUFFIX" ] || die "--append needs a --suffix (the default capture is without it)"
mkdir -p "$OUT" "$WORK/bin"
OUT=$(cd "$OUT" && pwd)

T0=$(date +%s%N)

"$REPO/tests/lab/fetch-kernels.sh"

gcc -static -O2 -Wall -Wextra -Werror -o "$WORK/bin/kcore-amd64" "$G/kcore.c"
aarch64-linux-gnu-gcc -static -O2 -Wall -Wextra -Werror -o "$WORK/bin/kcore-arm64" "$G/kcore.c"

# ---- stage and pack one initramfs per kernel ----
for k in "${kernels[@]}"; do
	a=$(karch "$k")
	[ -d "$KO_DIR/$k" ] || die "no fixtures $KO_DIR/$k"
	[ -f "$(kimage "$k")" ] || die "no $(kimage "$k")"
	st=$WORK/$k/stage
	stage_busybox "$k" "$st"
	cp "$WORK/bin/kcore-$a" "$st/bin/kcore"
	cp "$G/init.sh" "$st/init"; chmod 755 "$st/init"
	"${PY[@]}" prepare "$k" "$KO_DIR/$k" "$st/m"
	while read -r _ f _; do cp "$KO_DIR/$k/$f" "$st/m/"; done <"$st/m/load"
	python3 "$REPO/tests/conformance/guest/hosttool.py" cpio "$st" "$WORK/$k/initramfs.cpio.gz"
	echo "memdump: $k: initramfs $(stat -c %s "$WORK/$k/initramfs.cpio.gz") bytes"
done

# record_kernel KERNEL: one boot; writes $WORK/KERNEL/status (0: ok)
record_kernel() {
	local k=$1 a log rc=0 xrc=0 T=$(date +%s%N)
	a=$(karch "$k")
	qemu_argv "$k" "$WORK/$k/initramfs.cpio.gz" "loglevel=1 panic=-1 rdinit=/init${APPEND:+ $APPEND}"
	log=$WORK/$k/console$SUFFIX.log
	echo 1 >"$WORK/$k/status"
	timeout "$TIMEOUT" "${QEMU[@]}" </dev/null >"$log" 2>&1 || rc=$?
	if [ $rc = 124 ]; then
		echo "memdump: $k$SUFFIX: FAILED: boot timed out after ${TIMEOUT}s (log $log)" >&2
		tail -n 20 "$log" | tr -d '\r' | sed "s/^/  $k| /" >&2
		return
	fi
	local m
	m=$(qemu_machine "$k")
	[ "$a" = amd64 ] && m="$m (cpu qemu64)"
	MEMDUMP_APPEND=$APPEND "${PY[@]}" extract "$k" "$KO_DIR/$k" "$(kimage "$k")" "$log" "$m" "$OUT/$k$SUFFIX.json" \
		2> >(sed "s#^#  $k| #" >&2) || xrc=$?
	if [ $xrc != 0 ]; then
		echo "memdump: $k$SUFFIX: FAILED (qemu status $rc, log $log); console tail:" >&2
		tail -n 20 "$log" | tr -d '\r' | sed "s/^/  $k| /" >&2
		return
	fi
	echo 0 >"$WORK/$k/status"
	echo "memdump: $k$SUFFIX: ok in $(secs "$T")s, $(stat -c %s "$OUT/$k$SUFFIX.json") bytes"
}

failed=0
# record_set APPEND SUFFIX KERNEL...: one boot per kernel with APPEND on the command line
record_set() {
	APPEND=$1 SUFFIX=$2
	shift 2
	[ $# -gt 0 ] || return 0
	for k in "$@"; do rm -f "$WORK/$k/status"; done
	for_kernels "$JOBS" record_kernel "$@"
	for k in "$@"; do
		[ "$(cat "$WORK/$k/status" 2>/dev/null)" = 0 ] ||
			{ echo "memdump: $k$SUFFIX: FAILED" >&2; failed=1; }
	done
}
if [ -n "$APPEND" ]; then
	record_set "$APPEND" "$SUFFIX" "${kernels[@]}"
else
	record_set "" "" "${kernels[@]}"
	# The x86 patches that depend on the CPU's Spectre v2 mitigation (apply_retpolines), with
	# the boot options that choose it.
	amd64=()
	for k in "${kernels[@]}"; do [ "$(karch "$k")" = amd64 ] && amd64+=("$k"); done
	for v in "spectre_v2=off +nospectre" "spectre_v2=retpoline,lfence +lfence"; do
		record_set "${v% *}" "${v#* }" "${amd64[@]}"
	done
fi
echo "memdump: total $(secs "$T0")s"
exit $failed
