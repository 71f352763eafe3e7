#!/bin/bash
# fetch.sh: the input of the whole-distribution check (tests/distro_depmod.rs): the module trees
# of the four pinned Debian kernels (tests/lab/kernels.env), as Debian ships them.
#
# tests/lab/fetch-kernels.sh does the work: it downloads the linux-image (the modules), headers
# (Module.symvers) and kbuild packages with `apt-get download` (never installing anything) and
# extracts them with dpkg-deb into $LAB/root/<kernel>/ (LAB defaults to target/lab). It is
# idempotent; downloading needs root (see that script). This script runs it, then checks that
# each tree has its modules and modules.order, and prints how many modules each has.
set -euo pipefail
. "$(dirname "$0")/../lab/lib.sh"

"$REPO/tests/lab/fetch-kernels.sh"

for k in $KERNELS; do
	dir=$(kmods "$k")
	[ -f "$dir/modules.order" ] || die "$k: $dir/modules.order is missing"
	[ -d "$dir/kernel" ] || die "$k: $dir/kernel is missing"
	n=$(find "$dir/kernel" -name '*.ko*' | wc -l)
	[ "$n" -gt 0 ] || die "$k: no modules under $dir/kernel"
	kinds=$(find "$dir/kernel" -name '*.ko*' | sed 's/.*\.ko/.ko/' | sort | uniq -c |
		awk '{printf "%s%s %s", sep, $1, $2; sep=", "}')
	symvers=$(kheaders "$k")/Module.symvers
	[ -f "$symvers" ] || die "$k: $symvers is missing"
	printf '%-18s %-22s %5d modules (%s), %5d in modules.order\n' \
		"$k" "$(krel "$k")" "$n" "$kinds" "$(wc -l < "$dir/modules.order")"
done
echo "fetch.sh: ready; run: cargo test --test distro_depmod -- --nocapture"
