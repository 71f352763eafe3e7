#!/bin/bash
# fetch-kernels.sh: download (never install) the Debian kernel packages of the kernels of
# tests/lab/lib.sh (the four pinned ones of tests/lab/kernels.env, or those of $KERNEL_SET) and
# extract them, plus busybox-static:arm64 for arm64 guests.
#
#   $LAB/debs/            the .deb files (a .deb already there is not downloaded again)
#   $LAB/root/<kernel>/   image + headers-<arch> + headers-common + linux-kbuild (always amd64: its
#                         host tools build modules for both architectures)
#   $LAB/root/busybox-arm64/
# LAB defaults to target/lab in the repository. Needs root only when something must be downloaded.
# /etc/apt is never modified: the archive is reached through private apt states (tests/lab/apt.sh).
#
# Ground truth and tools are told apart:
#   - linux-image, linux-headers-<arch> and linux-headers-common are the ground truth: exactly the
#     pinned versions. When one has left the archive, fetch-kernels.sh names it in one line per
#     kernel on stderr and exits 3 (the recorded ground truth and the profiles belong to them).
#   - linux-kbuild (the host tools that build modules) is not: when the pinned revision is gone,
#     the archive's newest revision of the same upstream version is taken, or else the newest of
#     the package, and what was taken is printed.
# The sha256 of every package used is printed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/apt.sh"
mkdir -p "$LAB/debs" "$LAB/root"
DEBS=$LAB/debs

# debfile NAME ARCH VERSION -> the file name apt-get download writes
debfile() { echo "${1}_${3//:/%3a}_$2.deb"; }

# ground KERNEL -> "name arch version" lines: the ground-truth packages
ground() {
	local k=$1 a r
	a=$(karch "$k") r=$(krel "$k")
	echo "linux-image-$r $a ${KIVER[$k]}"
	echo "linux-headers-$r $a ${KVER[$k]}"
	echo "linux-headers-${r%-"$a"}-common all ${KVER[$k]}"
}

# get SET NAME ARCH VERSION: $DEBS/<file> there, downloaded if it is not; 1 if the archive has no
# such version
get() {
	local set=$1 name=$2 arch=$3 ver=$4 f
	f=$(debfile "$name" "$arch" "$ver")
	[ -s "$DEBS/$f" ] && return 0
	apt_has "$set" "$name:$arch" "$ver" || return 1
	(cd "$DEBS" && papt "$set" apt-get download "$name:$arch=$ver" >/dev/null) ||
		die "cannot download $name:$arch=$ver from $set"
	[ -s "$DEBS/$f" ] || die "downloaded $name:$arch=$ver but $DEBS/$f is missing"
}

# The ground truth first: all of it must be there.
gone=0
declare -A USED=()
for k in $KERNELS; do
	missing=()
	while read -r n a v; do
		if get "${KSUITE[$k]}" "$n" "$a" "$v"; then
			USED[$(debfile "$n" "$a" "$v")]=1
		else
			missing+=("$n=$v")
		fi
	done < <(ground "$k")
	if [ ${#missing[@]} -gt 0 ]; then
		echo "fetch-kernels: $k ($(krel "$k")) is no longer in Debian's archive: ${missing[*]}" >&2
		gone=1
	fi
done
[ $gone = 0 ] || exit 3

# kbuild KERNEL: the kbuild package's file: the pinned version, else the newest revision of the
# same upstream version, else the newest
declare -A KBFILE=() KBSAID=()
kbuild() {
	local k=$1 set=${KSUITE[$1]} n=${KKBUILD[$1]} v=${KVER[$1]} alt up
	if [ -n "${KBSAID[$n=$v]:-}" ]; then
		KBFILE[$k]=${KBSAID[$n=$v]}
		return
	fi
	if get "$set" "$n" amd64 "$v"; then
		KBFILE[$k]=$(debfile "$n" amd64 "$v")
		return
	fi
	up=${v%-*}
	# the archive's versions, newest first: the first of the same upstream version, else the first
	alt=$(apt_versions "$set" "$n:amd64" | awk -v up="$up" '
		NR == 1 { first = $0 }
		$0 == up || index($0, up "-") == 1 { print; found = 1; exit }
		END { if (!found && first != "") print first }')
	[ -n "$alt" ] || die "$k: the archive has no $n at all"
	get "$set" "$n" amd64 "$alt" || die "$k: cannot download $n=$alt"
	echo "fetch-kernels: $n $v is no longer in the archive; took $alt (a build tool, not ground truth)"
	KBFILE[$k]=$(debfile "$n" amd64 "$alt")
	KBSAID[$n=$v]=${KBFILE[$k]}
}
for k in $KERNELS; do kbuild "$k"; USED[${KBFILE[$k]}]=1; done

bb=$(cd "$DEBS" && ls busybox-static_*_arm64.deb 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bb" ]; then
	(cd "$DEBS" && papt bookworm apt-get download busybox-static:arm64 >/dev/null) ||
		die "cannot download busybox-static:arm64"
	bb=$(cd "$DEBS" && ls busybox-static_*_arm64.deb | sort -V | tail -1)
fi
USED[$bb]=1
for f in $(printf '%s\n' "${!USED[@]}" | sort); do
	echo "fetch-kernels: sha256 $(sha256sum "$DEBS/$f" | cut -d' ' -f1) $f"
done

# extract KERNEL: unpack into $LAB/root/KERNEL (skipped when the stamp says it is done), then point
# the headers Makefile's absolute 'include /usr/src/linux-headers-*-common/Makefile' at the
# extracted -common tree.
for k in $KERNELS; do
	dest=$(kroot "$k"); mk=$(kheaders "$k")/Makefile
	files=()
	while read -r n a v; do files+=("$DEBS/$(debfile "$n" "$a" "$v")"); done < <(ground "$k")
	files+=("$DEBS/${KBFILE[$k]}")
	stamp="${files[*]} $LAB"
	if [ -f "$LAB/root/.$k.stamp" ] && [ "$(cat "$LAB/root/.$k.stamp")" = "$stamp" ] && [ -f "$mk" ]; then
		continue
	fi
	echo "$k: extracting ${#files[@]} packages"
	rm -rf "$dest" "$LAB/root/.$k.stamp"; mkdir -p "$dest"
	for d in "${files[@]}"; do dpkg-deb -x "$d" "$dest"; done
	sed -i "s#^include /usr/src/#include $dest/usr/src/#" "$mk"
	grep -q "^include $dest/usr/src/" "$mk" || die "$mk: include line not fixed"
	echo "$stamp" > "$LAB/root/.$k.stamp"
done
if [ ! -x "$LAB/root/busybox-arm64/bin/busybox" ]; then
	rm -rf "$LAB/root/busybox-arm64"
	dpkg-deb -x "$DEBS/$bb" "$LAB/root/busybox-arm64"
fi
echo "fetch-kernels: $(for k in $KERNELS; do printf '%s ' "$k=$(krel "$k")"; done)in $LAB/root"
