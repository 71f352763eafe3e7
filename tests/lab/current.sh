#!/bin/bash
# current.sh: the real-kernel loop on the kernels Debian ships today, whatever the pins say.
#
# Usage: tests/lab/current.sh [--out DIR] [--only 'KERNEL...'] [--resolve-only]
#   --out DIR        the scratch directory (default $LAB/current); nothing committed changes
#   --only           only these kernels of the set (names as below)
#   --resolve-only   write DIR/kernels.tsv and stop
# Environment: JOBS (kernels at once, default 2), TIMEOUT (seconds per boot), LAB.
#
# 1. finds the newest kernel of each series in Debian's archive, for amd64 and arm64, from the
#    meta packages linux-image-<arch> and linux-headers-<arch> of each source set:
#      bookworm-6.1-<arch>    bookworm + bookworm-security
#      bookworm-6.12-<arch>   bookworm-backports
#      trixie-6.12-<arch>     trixie + trixie-security
#    and writes DIR/kernels.tsv (the KERNEL_SET format of tests/lab/lib.sh);
# 2. fetches them (tests/lab/fetch-kernels.sh: exact versions, sha256 printed);
# 3. builds the fixture modules against each kernel's headers (tests/fixtures/build.sh into
#    DIR/ko/<kernel>/; trixie's kbuild needs trixie's glibc and gcc, so those are built in a
#    trixie root made by tests/lab/trixie-root.sh);
# 4. records every conformance scenario (tests/conformance/record.sh --out DIR/recorded) and
#    captures module memory (tests/memdump/record.sh --out DIR/memdump) under QEMU, and writes
#    each kernel's struct module table from its BTF (DIR/struct_module/);
# 5. compares the simulator, running the profile derived from each kernel's headers directory
#    alone (DIR/headers/<kernel> links to it), with that fresh recording: tests/conformance.rs
#    and tests/memdump.rs with MODSIM_KERNEL_SET=DIR. Exit status 0 only when every step and
#    every captured section agree.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
unset KERNEL_SET
. "$HERE/lib.sh"
. "$HERE/apt.sh"
OUT=$LAB/current only= resolve_only=0
while [ $# -gt 0 ]; do
	case $1 in
	--out) [ $# -ge 2 ] || die "--out needs a value"; OUT=$2; shift 2 ;;
	--only) [ $# -ge 2 ] || die "--only needs a value"; only=$2; shift 2 ;;
	--resolve-only) resolve_only=1; shift ;;
	-h|--help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) die "unknown argument $1" ;;
	esac
done
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
T0=$(date +%s%N)

# ---- 1. the newest kernel of each series ----
# meta SET PKG ARCH -> "name version" of the package the candidate of meta package PKG depends on
meta() {
	local c dep
	c=$(papt "$1" apt-cache policy "$2:$3" | awk '/Candidate:/{print $2}')
	[ -n "$c" ] && [ "$c" != "(none)" ] || die "$1: no $2:$3 in the archive"
	dep=$(papt "$1" apt-cache show "$2:$3=$c" | sed -n 's/^Depends: //p' | head -1 | tr ',' '\n' |
		sed -n "s/^ *\(linux-[a-z]*-[0-9][^ ]*-$3\) (= \([^)]*\)).*/\1 \2/p" | head -1)
	[ -n "$dep" ] || die "$1: cannot read what $2:$3=$c depends on"
	echo "$dep"
}
tsv=$OUT/kernels.tsv.new
printf '# name\trelease\tsuite\tversion\timage-version\tkbuild\n' >"$tsv"
for row in "bookworm 6.1" "bookworm-backports 6.12" "trixie 6.12"; do
	set -- $row
	suite=$1 series=$2
	for a in amd64 arm64; do
		read -r hname hver < <(meta "$suite" linux-headers-$a $a)
		read -r iname iver < <(meta "$suite" linux-image-$a $a)
		rel=${hname#linux-headers-}
		[ "linux-image-$rel" = "$iname" ] || die "$suite $a: headers $hname but image $iname"
		case $rel in "$series".*) ;; *) die "$suite $a: $rel is not a $series kernel" ;; esac
		case $rel in
		*+deb*) kb=linux-kbuild-${rel%-"$a"} ;;
		*) kb=linux-kbuild-$series ;;
		esac
		name=${suite%-backports}-$series-$a
		[ -z "$only" ] || case " $only " in *" $name "*) ;; *) continue ;; esac
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rel" "$suite" "$hver" "$iver" "$kb" >>"$tsv"
	done
done
mv "$tsv" "$OUT/kernels.tsv"
echo "current: the kernels Debian ships now:"
sed 's/^/  /' "$OUT/kernels.tsv"
[ $resolve_only = 0 ] || exit 0

export KERNEL_SET=$OUT/kernels.tsv
. "$HERE/lib.sh" # again: the set's kernels
fails=()
step() { echo "== current: $*"; }

# ---- 2. fetch ----
step "fetching"
"$HERE/fetch-kernels.sh"
rm -rf "$OUT/headers"; mkdir -p "$OUT/headers"
for k in $KERNELS; do ln -s "$(kheaders "$k")" "$OUT/headers/$k"; done

# ---- 3. fixtures ----
step "building the fixtures against each kernel's headers"
FIXTURES_OUT=$OUT/ko "$REPO/tests/fixtures/build.sh" $KERNELS

# ---- 4. record ----
step "recording the conformance scenarios"
FIXTURES_DIR=$OUT/ko "$REPO/tests/conformance/record.sh" --out "$OUT/recorded" || fails+=(conformance-record)
step "capturing module memory"
FIXTURES_DIR=$OUT/ko "$REPO/tests/memdump/record.sh" --out "$OUT/memdump" || fails+=(memdump-record)
step "struct module from each kernel's BTF"
STRUCT_MODULE_OUT=$OUT/struct_module FIXTURES_DIR=$OUT/ko "$HERE/struct-module.sh" || fails+=(struct-module)

# ---- 5. compare ----
step "the simulator (profiles from the headers directories) against the fresh recording"
(cd "$REPO" && MODSIM_KERNEL_SET=$OUT cargo test -q --test conformance --test memdump \
	-- --nocapture the_simulator_matches_every_recorded_step simulated_module_memory_is_byte_identical) ||
	fails+=(compare)

echo "current: $(for k in $KERNELS; do printf '%s=%s ' "$k" "$(krel "$k")"; done)in $(secs "$T0")s"
if [ ${#fails[@]} -gt 0 ]; then
	echo "current: FAILED: ${fails[*]}" >&2
	exit 1
fi
echo "current: every step and every captured section agree"
