#!/bin/bash
# record.sh: record how the real kernels treat concurrent loads of the same module, under QEMU
# (TCG): a second (third) init_module/finit_module/delete_module of mp_hold while the first
# load's init is still running.
#
# Usage: tests/concurrency/record.sh [KERNEL...] [--out DIR]
#   KERNEL   debian-6.1-amd64 debian-6.1-arm64 debian-6.12-amd64 debian-6.12-arm64 (default: all)
#   --out    write DIR/<kernel>.jsonl (default: tests/concurrency/recorded)
# Environment:
#   HOLD_MS  how long the first load's init sleeps (default 3000)
#   TIMEOUT  seconds per boot (default 300)   JOBS  kernels recorded at once (default 2)
#   FIXTURES_DIR  another fixtures directory, holding <kernel>/mp_hold.ko (default tests/fixtures/ko)
#   KERNEL_SET    other kernels than the pinned four (tests/lab/lib.sh)
#
# One boot per kernel, on the machine of the other record scripts (tests/lab/lib.sh qemu_argv:
# TCG, 1 GiB, one CPU). The initramfs: static busybox, guest/concurrent.c built static as
# /bin/concurrent, guest/init.sh as /init, the kernel's mp_hold.ko as /m/mp_hold.ko and again as
# /m/mp_hold_copy.ko (another inode). The guest runs every case (the list is in concurrent.c)
# and prints one marked JSON line per case; extract.py checks them and writes
# DIR/<kernel>.jsonl (format: README.md). A boot takes about 60-75 s.
# Work files and console logs: target/lab/concurrency/<kernel>/ (console.log).
# A failed kernel (timeout, a guest error, a bad or incomplete output) keeps its old file; the
# others go on, and record.sh exits 1 at the end.
set -euo pipefail
. "$(dirname "$0")/../lab/lib.sh"
CC=$REPO/tests/concurrency
G=$CC/guest
WORK=$LAB/concurrency
KO_DIR=${FIXTURES_DIR:-$REPO/tests/fixtures/ko}
OUT=$CC/recorded
HOLD_MS=${HOLD_MS:-3000}
TIMEOUT=${TIMEOUT:-300}
JOBS=${JOBS:-2}

kernels=()
while [ $# -gt 0 ]; do
	case $1 in
	--out) [ $# -ge 2 ] || die "--out needs a value"; OUT=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	-*) die "unknown option $1" ;;
	*) check_kernel "$1"; kernels+=("$1"); shift ;;
	esac
done
[ ${#kernels[@]} -gt 0 ] || read -ra kernels <<<"$KERNELS"
[[ $HOLD_MS =~ ^[1-9][0-9]*$ ]] || die "HOLD_MS must be a positive number of milliseconds"
mkdir -p "$OUT" "$WORK/bin"
OUT=$(cd "$OUT" && pwd)

T0=$(date +%s%N)

"$REPO/tests/lab/fetch-kernels.sh"

gcc -static -O2 -Wall -Wextra -Werror -o "$WORK/bin/concurrent-amd64" "$G/concurrent.c"
aarch64-linux-gnu-gcc -static -O2 -Wall -Wextra -Werror -o "$WORK/bin/concurrent-arm64" "$G/concurrent.c"

# ---- stage and pack one initramfs per kernel ----
for k in "${kernels[@]}"; do
	a=$(karch "$k")
	[ -f "$KO_DIR/$k/mp_hold.ko" ] || die "no $KO_DIR/$k/mp_hold.ko (tests/fixtures/build.sh)"
	[ -f "$(kimage "$k")" ] || die "no $(kimage "$k")"
	st=$WORK/$k/stage
	stage_busybox "$k" "$st"
	cp "$WORK/bin/concurrent-$a" "$st/bin/concurrent"
	cp "$G/init.sh" "$st/init"; chmod 755 "$st/init"
	cp "$KO_DIR/$k/mp_hold.ko" "$st/m/mp_hold.ko"
	cp "$KO_DIR/$k/mp_hold.ko" "$st/m/mp_hold_copy.ko"
	python3 "$REPO/tests/conformance/guest/hosttool.py" cpio "$st" "$WORK/$k/initramfs.cpio.gz"
	echo "concurrency: $k: initramfs $(stat -c %s "$WORK/$k/initramfs.cpio.gz") bytes"
done

# record_kernel KERNEL: one boot; writes $WORK/KERNEL/status (0: ok)
record_kernel() {
	local k=$1 log rc=0 xrc=0 m T=$(date +%s%N)
	qemu_argv "$k" "$WORK/$k/initramfs.cpio.gz" "loglevel=1 panic=-1 rdinit=/init concur.hold_ms=$HOLD_MS"
	log=$WORK/$k/console.log
	echo 1 >"$WORK/$k/status"
	timeout "$TIMEOUT" "${QEMU[@]}" </dev/null >"$log" 2>&1 || rc=$?
	if [ $rc = 124 ]; then
		echo "concurrency: $k: FAILED: boot timed out after ${TIMEOUT}s (log $log)" >&2
		tail -n 20 "$log" | tr -d '\r' | sed "s/^/  $k| /" >&2
		return
	fi
	m=$(qemu_machine "$k")
	python3 "$CC/extract.py" "$k" "$(krel "$k")" "$m" "$log" "$OUT/$k.jsonl" \
		2> >(sed "s#^#  $k| #" >&2) || xrc=$?
	if [ $xrc != 0 ]; then
		echo "concurrency: $k: FAILED (qemu status $rc, log $log); console tail:" >&2
		tail -n 20 "$log" | tr -d '\r' | sed "s/^/  $k| /" >&2
		return
	fi
	echo 0 >"$WORK/$k/status"
	echo "concurrency: $k: ok in $(secs "$T")s, $(($(wc -l <"$OUT/$k.jsonl") - 1)) cases"
}

for k in "${kernels[@]}"; do rm -f "$WORK/$k/status"; done
for_kernels "$JOBS" record_kernel "${kernels[@]}"
failed=0
for k in "${kernels[@]}"; do
	[ "$(cat "$WORK/$k/status" 2>/dev/null)" = 0 ] || { echo "concurrency: $k: FAILED" >&2; failed=1; }
done
echo "concurrency: total $(secs "$T0")s"
exit $failed
