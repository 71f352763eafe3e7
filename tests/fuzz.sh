#!/bin/bash
# fuzz.sh: coverage-guided fuzzing of the simulator and the loader (fuzz/, cargo-fuzz with
# libFuzzer, stable toolchain: --sanitizer none).
#
#   tests/fuzz.sh [--time SECONDS_PER_TARGET] [--seed N] [--strict] [TARGET...]
#
# Installs cargo-fuzz if it is missing (cargo install --locked), builds every target, seeds
# the corpora from the fixtures (fuzz/seed-corpora.py into fuzz/corpus/<target>/), replays
# the committed reproducers (fuzz/regressions/<target>/) and the inputs fuzz/crafted/<target>/*.py
# write (each must run clean within the 1 s timeout), then fuzzes each target in turn, one process at a time,
# for SECONDS_PER_TARGET (default 60) with -timeout=1 (an input that runs over 1 s is a
# failure), -rss_limit_mb=2048 and its dictionaries (fuzz/dict/*.dict, see dicts()). Prints
# each target's executions and executions per second (libFuzzer's final stats) and exits
# non-zero if any target crashed, hung or broke an invariant; the input is then in
# fuzz/artifacts/<target>/ and the log in fuzz/logs/<target>.log.
#
# A timeout is replayed alone (-runs=1 -timeout=1): an input that then runs clean was slow only
# because the machine was busy, and is reported as such, not as a failure.
# --seed N: libFuzzer's -seed (default 0: a new one each run); CI fixes it, so that the same
# tree fuzzes the same inputs first.
# --strict: MODSIM_FUZZ_STRICT=1, so the known, reported failures the harness steps around
# (see fuzz/README.md) fail again (to check whether a fix landed).
# TARGETS: load decompress placed modinfo params pkcs7 scenario (default: all).
# FUZZ_TMPDIR: the targets' scratch directory (default fuzz/logs/tmp; two runs at once need two).
# A long run (an hour per target):  tests/fuzz.sh --time 3600
set -euo pipefail
cd "$(dirname "$0")/.."
ALL=(load decompress placed modinfo params pkcs7 scenario)
time=60
seed=0
targets=()
while [ $# -gt 0 ]; do
	case $1 in
	--time) time=$2; shift 2 ;;
	--time=*) time=${1#--time=}; shift ;;
	--seed) seed=$2; shift 2 ;;
	--strict) export MODSIM_FUZZ_STRICT=1; shift ;;
	-h|--help) sed -n '2,22p' "$0"; exit 0 ;;
	-*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
	*) targets+=("$1"); shift ;;
	esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
for t in "${targets[@]}"; do
	[ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "fuzz.sh: no target $t (${ALL[*]})" >&2; exit 2; }
done

# The dictionaries (fuzz/dict/) each target's inputs are spelled with.
dicts() {
	case $1 in
	load) echo elf decompress ;;
	decompress) echo decompress elf ;;
	modinfo) echo elf index decompress ;;
	params) echo params ;;
	scenario) echo scenario params ;;
	*) echo elf ;;
	esac
}

# The largest input each target gets (its control bytes and a module, a text ...).
max_len() {
	case $1 in
	params) echo 8192 ;;
	scenario) echo 65536 ;;
	*) echo 262144 ;;
	esac
}

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "== installing cargo-fuzz"
	cargo install cargo-fuzz --locked
fi
# libfuzzer-sys compiles libFuzzer (C++).
if ! command -v c++ >/dev/null 2>&1; then
	echo "== installing g++ (libFuzzer is C++)"
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends g++
fi
echo "== $(cargo fuzz --version), building the fuzz targets (--sanitizer none)"
mkdir -p fuzz/logs
if ! (cd fuzz && cargo fuzz build --sanitizer none) >fuzz/logs/build.log 2>&1; then
	tail -40 fuzz/logs/build.log >&2
	echo "fuzz.sh: the build failed (fuzz/logs/build.log)" >&2
	exit 1
fi
bin=fuzz/target/x86_64-unknown-linux-gnu/release
[ -x "$bin/load" ] || bin=$(dirname "$(find fuzz/target -path '*/release/load' -type f | head -1)")

echo "== seeding the corpora"
python3 fuzz/seed-corpora.py fuzz/corpus

failed=()
total_runs=0
printf '%-11s %12s %9s %7s %8s  %s\n' target executions exec/s corpus rss_mb result
# The targets' scratch files (module files, index trees) go here, removed after each target.
export TMPDIR=${FUZZ_TMPDIR:-$PWD/fuzz/logs/tmp}
for t in "${targets[@]}"; do
	log=fuzz/logs/$t.log
	: >"$log"
	rm -rf "$TMPDIR"; mkdir -p "$TMPDIR"
	mkdir -p "fuzz/artifacts/$t"
	# Committed reproducers first, and the crafted inputs (fuzz/crafted/<target>/*.py write
	# them): each must run clean, within the 1 s timeout.
	crafted=fuzz/logs/crafted/$t
	rm -rf "$crafted"; mkdir -p "$crafted"
	for py in fuzz/crafted/"$t"/*.py; do
		[ -e "$py" ] && python3 "$py" "$crafted"
	done
	if compgen -G "fuzz/regressions/$t/*" >/dev/null || compgen -G "$crafted/*" >/dev/null; then
		if ! "$bin/$t" -runs=1 -timeout=1 $(compgen -G "fuzz/regressions/$t/*") $(compgen -G "$crafted/*") >>"$log" 2>&1; then
			printf '%-11s %12s %9s %7s %8s  %s\n' "$t" - - - - "FAILED (a reproducer in fuzz/regressions/$t/ fails; see $log)"
			failed+=("$t")
			continue
		fi
	fi
	for d in $(dicts "$t"); do cat "fuzz/dict/$d.dict"; done >"fuzz/logs/$t.dict"
	before=$(ls "fuzz/artifacts/$t" | wc -l)
	rc=0
	"$bin/$t" "fuzz/corpus/$t" -artifact_prefix="fuzz/artifacts/$t/" \
		-max_total_time="$time" -timeout=1 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
		-print_final_stats=1 -seed="$seed" -dict="fuzz/logs/$t.dict" >>"$log" 2>&1 || rc=$?
	after=$(ls "fuzz/artifacts/$t" | wc -l)
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
	if [ -z "$runs" ]; then
		# A crash ends the run before the final stats: take the last status line.
		last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
		runs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$last")
		speed=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$last")
		rss=$(sed -nE 's/.*rss: ([0-9]+)Mb.*/\1/p' <<<"$last")
	fi
	corpus=$(ls "fuzz/corpus/$t" | wc -l)
	total_runs=$((total_runs + ${runs:-0}))
	art=$(ls -t "fuzz/artifacts/$t" | head -1)
	if [ "$rc" -eq 0 ] && [ "$after" -eq "$before" ]; then
		result=ok
	elif [ "$after" -eq $((before + 1)) ] && [[ $art == timeout-* ]] &&
		"$bin/$t" -runs=1 -timeout=1 "fuzz/artifacts/$t/$art" >>"$log" 2>&1; then
		# libFuzzer's timeout is wall time: on a loaded machine an input can pass 1 s that
		# takes milliseconds. Run alone it must stay under 1 s, or it is a hang.
		result="ok (a timeout under load; fuzz/artifacts/$t/$art runs clean alone; the run stopped there)"
	else
		why=$(grep -m1 -E 'invariant:|panicked at|ERROR: libFuzzer|Timeout' "$log" | cut -c1-160 || true)
		result="FAILED: fuzz/artifacts/$t/$art: $why"
		failed+=("$t")
	fi
	printf '%-11s %12s %9s %7s %8s  %s\n' "$t" "${runs:--}" "${speed:--}" "$corpus" "${rss:--}" "$result"
done
rm -rf "$TMPDIR"
echo "== $total_runs executions in all, ${time} s per target"
if [ ${#failed[@]} -gt 0 ]; then
	echo "== fuzzing found failures in: ${failed[*]} (logs in fuzz/logs/, inputs in fuzz/artifacts/)" >&2
	exit 1
fi
echo "== fuzzing passed"
