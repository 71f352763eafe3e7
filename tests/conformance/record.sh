#!/bin/bash
# record.sh: record the ground truth, every scenario on the real kernels, under QEMU (TCG).
#
# Usage: tests/conformance/record.sh [KERNEL...] [--scenarios 'a b'] [--out DIR]
#   KERNEL       debian-6.1-amd64 debian-6.1-arm64 debian-6.12-amd64 debian-6.12-arm64 (default: all)
#   --scenarios  scenario names (tests/conformance/scenarios/NAME.jsonl; default: all of them;
#                recorded files of scenarios that no longer exist are then removed)
#   --out DIR    default tests/conformance/recorded; writes DIR/<kernel>/<scenario>.jsonl
# Environment:
#   RUNNER=c       use the static C runner (guest/runner.c) on amd64 too (default: the project's
#                  own modloader, built static, runs amd64 scenarios; runner.c always runs arm64)
#   SCENARIOS_DIR  another scenarios directory (then --out defaults to target/lab/record/out)
#   FIXTURES_DIR   another fixtures directory, holding <kernel>/* (default tests/fixtures/ko)
#   TIMEOUT        seconds per boot (default 300)   JOBS  kernels recorded at once (default 2)
#
# One boot per scenario. Each kernel gets one initramfs (target/lab/record/<kernel>/): static
# busybox, the runners (/bin/modloader, /c-runner/modloader = runner.c), guest/init.sh as /init,
# and in /m/ the kernel's fixtures, every scenario and its .steps conversion (for runner.c).
# The kernel command line is 'console=... loglevel=1 panic=-1 rdinit=/init modsim.scenario=NAME
# modsim.kernel=KERNEL modsim.runner=modloader|c' plus the 'append' of the scenario's boot step. The guest prints marked lines (see guest/init.sh); they
# are checked (meta line, one JSON result per step, runner exit status 0) and written byte for
# byte. Console logs: target/lab/record/<kernel>/<scenario>.console.
# A timed out boot, a missing done marker or a bad line is an error: the scenario's recording is
# not written, the others go on, and record.sh exits 1 at the end. Boot noise in a step's dmesg
# (a late 'clocksource:' line, 'hrtimer: interrupt took', an RCU stall: see guest/hosttool.py)
# boots the scenario once more.
set -euo pipefail
. "$(dirname "$0")/../lab/lib.sh"
CONF=$REPO/tests/conformance
G=$CONF/guest
HT=(python3 "$G/hosttool.py")
WORK=$LAB/record
SCEN_DIR=${SCENARIOS_DIR:-$CONF/scenarios}
KO_DIR=${FIXTURES_DIR:-$REPO/tests/fixtures/ko}
if [ -n "${SCENARIOS_DIR:-}" ]; then OUT=$WORK/out; else OUT=$CONF/recorded; fi
RUNNER=${RUNNER:-modloader}
TIMEOUT=${TIMEOUT:-300}
JOBS=${JOBS:-2}

kernels=() scen_arg=
while [ $# -gt 0 ]; do
	case $1 in
	--scenarios) [ $# -ge 2 ] || die "--scenarios needs a value"; scen_arg=$2; shift 2 ;;
	--out) [ $# -ge 2 ] || die "--out needs a value"; OUT=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	-*) die "unknown option $1" ;;
	*) check_kernel "$1"; kernels+=("$1"); shift ;;
	esac
done
[ ${#kernels[@]} -gt 0 ] || read -ra kernels <<<"$KERNELS"
case $RUNNER in modloader|c) ;; *) die "RUNNER must be modloader or c" ;; esac
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
[ -d "$SCEN_DIR" ] || die "no scenarios directory $SCEN_DIR"

all=0
if [ -n "$scen_arg" ]; then
	read -ra scenarios <<<"$scen_arg"
	scenarios=("${scenarios[@]%.jsonl}")
else
	all=1 scenarios=()
	for f in "$SCEN_DIR"/*.jsonl; do [ -e "$f" ] && scenarios+=("$(basename "$f" .jsonl)"); done
fi
[ ${#scenarios[@]} -gt 0 ] || die "no scenarios in $SCEN_DIR"
for s in "${scenarios[@]}"; do
	[[ $s =~ ^[A-Za-z0-9_][A-Za-z0-9_.+-]*$ ]] || die "bad scenario name '$s'"
	[ -f "$SCEN_DIR/$s.jsonl" ] || die "no scenario $SCEN_DIR/$s.jsonl"
done

T0=$(date +%s%N)

"$REPO/tests/lab/fetch-kernels.sh"

# ---- build the runners ----
mkdir -p "$WORK/bin"
need_modloader=0
for k in "${kernels[@]}"; do
	[ "$(karch "$k")" = amd64 ] && [ "$RUNNER" = modloader ] && need_modloader=1
done
MODLOADER=$REPO/target/static/x86_64-unknown-linux-gnu/release/modloader
if [ $need_modloader = 1 ]; then
	echo "record: building the static modloader"
	(cd "$REPO" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -q -p loader \
		--bin modloader --target x86_64-unknown-linux-gnu --target-dir "$REPO/target/static")
	readelf -lW "$MODLOADER" | grep -q 'program interpreter' && die "$MODLOADER is not static"
fi
gcc -static -O2 -Wall -Wextra -Werror -o "$WORK/bin/runner-amd64" "$G/runner.c"
aarch64-linux-gnu-gcc -static -O2 -Wall -Wextra -Werror -o "$WORK/bin/runner-arm64" "$G/runner.c"

# ---- stage and pack one initramfs per kernel ----
for k in "${kernels[@]}"; do
	a=$(karch "$k")
	[ -d "$KO_DIR/$k" ] || die "no fixtures $KO_DIR/$k"
	st=$WORK/$k/stage
	stage_busybox "$k" "$st"
	mkdir "$st/c-runner"; cp "$WORK/bin/runner-$a" "$st/c-runner/modloader" # see guest/init.sh
	if [ "$a" = amd64 ] && [ "$RUNNER" = modloader ]; then cp "$MODLOADER" "$st/bin/modloader"; fi
	cp "$G/init.sh" "$st/init"; chmod 755 "$st/init"
	cp -r "$KO_DIR/$k/." "$st/m/"
	for f in "$SCEN_DIR"/*.jsonl; do
		[ -e "$f" ] || continue
		s=$(basename "$f" .jsonl)
		cp "$f" "$st/m/"
		# tools*.jsonl run modloader's own kmod tools: no .steps for the C runner.
		case $s in tools*) continue ;; esac
		if ! "${HT[@]}" steps "$f" "$st/m/$s.steps"; then
			case " ${scenarios[*]} " in
			*" $s "*) die "$f: bad scenario" ;;
			*) echo "record: warning: $f is not a valid scenario (not recorded now)" >&2 ;;
			esac
		fi
	done
	"${HT[@]}" cpio "$st" "$WORK/$k/initramfs.cpio.gz"
	echo "record: $k: initramfs $(stat -c %s "$WORK/$k/initramfs.cpio.gz") bytes"
done
echo "record: ${#scenarios[@]} scenarios x ${#kernels[@]} kernels, $JOBS at a time, out $OUT"

# record_kernel KERNEL: boot once per scenario; writes $WORK/KERNEL/status (failed scenarios)
record_kernel() {
	local k=$1 a rn s app log t rc xrc try fails=0 T=$(date +%s%N)
	a=$(karch "$k")
	rn=c; [ "$a" = amd64 ] && rn=$RUNNER
	mkdir -p "$OUT/$k"
	for s in "${scenarios[@]}"; do
		if [ "$rn" = c ]; then
			case $s in tools*) echo "record: $k/$s: skipped (runs modloader's kmod tools; this guest has the C runner)"; continue ;; esac
		fi
		app=$("${HT[@]}" append "$SCEN_DIR/$s.jsonl")
		app="loglevel=1 panic=-1 rdinit=/init modsim.scenario=$s modsim.kernel=$k modsim.runner=$rn${app:+ $app}"
		qemu_argv "$k" "$WORK/$k/initramfs.cpio.gz" "$app"
		log=$WORK/$k/$s.console
		for try in 1 2; do
			t=$(date +%s%N) rc=0 xrc=0
			timeout "$TIMEOUT" "${QEMU[@]}" </dev/null >"$log" 2>&1 || rc=$?
			[ $rc = 124 ] && break
			"${HT[@]}" extract "$log" "$SCEN_DIR/$s.jsonl" "$OUT/$k/$s.jsonl" 2> >(sed "s#^#  $k/$s| #" >&2) || xrc=$?
			[ $xrc = 3 ] && [ $try = 1 ] || break
			echo "record: $k/$s: boot noise in a step's dmesg, booting again" >&2
		done
		if [ $rc = 124 ]; then
			echo "record: $k/$s: FAILED: boot timed out after ${TIMEOUT}s (log $log)" >&2
			tail -n 20 "$log" | tr -d '\r' | sed "s/^/  $k| /" >&2
			fails=$((fails + 1)); continue
		fi
		if [ $xrc != 0 ]; then
			echo "record: $k/$s: FAILED (qemu status $rc, log $log); console tail:" >&2
			tail -n 20 "$log" | tr -d '\r' | sed "s/^/  $k| /" >&2
			fails=$((fails + 1)); continue
		fi
		echo "record: $k/$s: ok $(secs "$t")s ($(tr -d '\r' <"$log" | sed -n 's/.*@@MODSIM-INFO@@ settle: //p'))"
	done
	if [ $all = 1 ] && [ $fails = 0 ]; then
		for f in "$OUT/$k"/*.jsonl; do
			[ -e "$f" ] || continue
			[ -f "$SCEN_DIR/$(basename "$f")" ] || { echo "record: $k: removing stale $f"; rm -f "$f"; }
		done
	fi
	echo "$fails" >"$WORK/$k/status"
	echo "record: $k: done in $(secs "$T")s, $fails failed"
}

for k in "${kernels[@]}"; do rm -f "$WORK/$k/status"; done
for_kernels "$JOBS" record_kernel "${kernels[@]}"

failed=0
for k in "${kernels[@]}"; do
	n=$(cat "$WORK/$k/status" 2>/dev/null || echo "all")
	[ "$n" = 0 ] || { echo "record: $k: $n scenario(s) FAILED" >&2; failed=1; }
done
echo "record: total $(secs "$T0")s"
exit $failed
