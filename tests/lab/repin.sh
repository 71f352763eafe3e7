#!/bin/bash
# repin.sh: move the pins (tests/lab/kernels.env) to the kernels Debian ships now, and redo
# everything that belongs to the pinned kernels, so that moving is one command and one
# reviewable commit.
#
# Usage: tests/lab/repin.sh [--dry-run]
#   --dry-run   print the current kernels and the kernels.env that would be written; change nothing
#
# 1. the newest 6.1 (bookworm + bookworm-security) and 6.12 (bookworm-backports) kernels, from
#    tests/lab/current.sh --resolve-only; both architectures must have the same version;
# 2. kernels.env rewritten, and the old releases and versions replaced by the new ones in the
#    text that names them (README.md, tests/**/README.md, the vermagic table of
#    sim/src/profile/tests.rs, the release examples of tests/fixtures/make-variants.py);
# 3. tests/lab/fetch-kernels.sh, tests/fixtures/build.sh (every fixture, rebuilt), then
#    tests/lab/make-profiles.py (sim/profiles/*.json.gz), tests/lab/struct-module.sh,
#    tests/conformance/record.sh (every scenario), tests/memdump/record.sh (every capture);
# 4. cargo test --workspace, whose failures (export counts of sim/src/profile/tests.rs, say) are
#    what is left for the person reviewing the commit.
# Nothing is committed: review with 'git status' and 'git diff --stat', then commit.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
unset KERNEL_SET PIN_K61 PIN_V61 PIN_K612 PIN_V612
. "$HERE/lib.sh"
dry=0
case ${1:-} in
--dry-run) dry=1 ;;
'') ;;
-h|--help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
*) die "unknown argument $1" ;;
esac

SCRATCH=$LAB/repin
"$HERE/current.sh" --resolve-only --out "$SCRATCH" --only \
	"bookworm-6.1-amd64 bookworm-6.1-arm64 bookworm-6.12-amd64 bookworm-6.12-arm64" >/dev/null
# pick SERIES FIELD: the field (2 release, 4 version) of the set's SERIES kernels, one value for both
# architectures (the release without its -<arch>)
pick() {
	local v
	v=$(awk -v s="bookworm-$1-" -v f="$2" 'index($1, s) == 1 { x = $f; sub(/-(amd64|arm64)$/, "", x); print x }' \
		"$SCRATCH/kernels.tsv" | sort -u)
	[ "$(wc -l <<<"$v")" = 1 ] && [ -n "$v" ] || die "bookworm $1: the architectures differ ($v)"
	echo "$v"
}
nK61=$(pick 6.1 2) nV61=$(pick 6.1 4) nK612=$(pick 6.12 2) nV612=$(pick 6.12 4)
echo "repin: 6.1  $K61 ($V61) -> $nK61 ($nV61)"
echo "repin: 6.12 $K612 ($V612) -> $nK612 ($nV612)"
# sed patterns: the dots of a version made literal (+ and ~ already are, in a basic regex)
lit() { sed 's/[.]/\\&/g' <<<"$1"; }
subst=(-e "s/$(lit "$K61")/$nK61/g; s/$(lit "$V61")/$nV61/g" -e "s/$(lit "$K612")/$nK612/g; s/$(lit "$V612")/$nV612/g")
env_text=$(sed "${subst[@]}" "$HERE/kernels.env")
if [ $dry = 1 ]; then
	echo "repin: --dry-run: tests/lab/kernels.env would be:"
	echo "$env_text"
	exit 0
fi
if [ "$K61 $V61 $K612 $V612" = "$nK61 $nV61 $nK612 $nV612" ]; then
	echo "repin: the pins are the current kernels already; nothing to do"
	exit 0
fi

# ---- 2. the pins, and the text that names them ----
echo "$env_text" >"$HERE/kernels.env"
files=("$REPO/README.md" "$REPO/tests/fixtures/make-variants.py" "$REPO/sim/src/profile/tests.rs")
while IFS= read -r f; do files+=("$REPO/$f"); done < <(cd "$REPO" && git ls-files 'tests/*README.md')
sed -i "${subst[@]}" "${files[@]}"
. "$HERE/lib.sh" # the new pins

# ---- 3. everything that belongs to the pinned kernels ----
"$HERE/fetch-kernels.sh"
"$REPO/tests/fixtures/build.sh"
python3 "$HERE/make-profiles.py"
"$HERE/struct-module.sh"
"$REPO/tests/conformance/record.sh"
"$REPO/tests/memdump/record.sh"

# ---- 4. the tests ----
if (cd "$REPO" && cargo test --workspace -q); then
	echo "repin: done; the tests pass. Review 'git status' and commit."
else
	echo "repin: done, but some tests fail (above): what they name is left to review." >&2
	exit 1
fi
