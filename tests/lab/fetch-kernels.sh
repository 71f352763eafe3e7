#!/bin/bash
# fetch-kernels.sh: download (never install) the pinned Debian kernel packages of the four target
# kernels (tests/lab/kernels.env) and extract them, plus busybox-static:arm64 for arm64 guests.
#
#   $LAB/debs/            the .deb files (a .deb already there is not downloaded again)
#   $LAB/root/<kernel>/   image + headers-<arch> + headers-common + linux-kbuild (always amd64: its
#                         host tools build modules for both architectures)
#   $LAB/root/busybox-arm64/
# LAB defaults to target/lab in the repository. Needs root only when something must be downloaded
# (dpkg --add-architecture arm64, apt-get update). /etc/apt is never modified: bookworm-backports,
# where the 6.12 kernel lives, is reached through a private apt state directory $LAB/apt-bpo.
# A pinned version that is no longer in the archive is an error: the recorded ground truth and
# the profiles belong to the pinned kernels.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ARCHIVE_URI=${ARCHIVE_URI:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
mkdir -p "$LAB/debs" "$LAB/root"
DEBS=$LAB/debs

# pkgs KERNEL -> "package:arch=version" lines
pkgs() {
	local k=$1 a rel ver kb
	a=$(karch "$k")
	case $k in
	debian-6.1-*) rel=$K61; ver=$V61; kb=linux-kbuild-6.1 ;;
	debian-6.12-*) rel=$K612; ver=$V612; kb=linux-kbuild-$K612 ;;
	esac
	echo "linux-image-$rel-$a:$a=$ver linux-headers-$rel-$a:$a=$ver linux-headers-$rel-common:all=$ver $kb:amd64=$ver"
}
# debfile "name:arch=version" -> the file name apt-get download writes
debfile() {
	local p=$1 name arch ver
	name=${p%%:*}; arch=${p#*:}; arch=${arch%%=*}; ver=${p#*=}
	echo "${name}_${ver//:/%3a}_$arch.deb"
}

BPO_DIR=$LAB/apt-bpo
BPO=(-o "Dir::Etc::SourceList=$BPO_DIR/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o "Dir::State::Lists=$BPO_DIR/lists" -o "Dir::Cache=$BPO_DIR/cache")
APT_READY=0
apt_init() {
	[ $APT_READY = 0 ] || return 0
	[ "$(id -u)" = 0 ] || die "packages are missing in $DEBS and downloading them needs root"
	dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
	apt-get update -q
	mkdir -p "$BPO_DIR/lists/partial" "$BPO_DIR/cache/archives/partial"
	echo "deb [signed-by=$KEYRING] $ARCHIVE_URI bookworm-backports main" > "$BPO_DIR/sources.list"
	apt-get "${BPO[@]}" update -q
	APT_READY=1
}

cd "$DEBS"
for k in $KERNELS; do
	for p in $(pkgs "$k"); do
		f=$(debfile "$p")
		[ -s "$f" ] && continue
		apt_init
		name=${p%%=*}; name=${name%:all}; ver=${p#*=}
		opts=(); case $k in debian-6.12-*) opts=("${BPO[@]}") ;; esac
		apt-get "${opts[@]}" -o APT::Sandbox::User=root download -q "$name=$ver" ||
			die "cannot download $name=$ver: is the pinned kernel still in the archive?"
		[ -s "$f" ] || die "downloaded $name=$ver but $f is missing"
	done
done
if ! ls busybox-static_*_arm64.deb >/dev/null 2>&1; then
	apt_init
	apt-get -o APT::Sandbox::User=root download -q busybox-static:arm64
fi

# extract KERNEL: unpack into $LAB/root/KERNEL (skipped when the stamp says it is done), then point
# the headers Makefile's absolute 'include /usr/src/linux-headers-*-common/Makefile' at the
# extracted -common tree.
for k in $KERNELS; do
	dest=$(kroot "$k"); mk=$(kheaders "$k")/Makefile
	files=(); for p in $(pkgs "$k"); do files+=("$DEBS/$(debfile "$p")"); done
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
	dpkg-deb -x "$(ls "$DEBS"/busybox-static_*_arm64.deb | sort -V | tail -1)" "$LAB/root/busybox-arm64"
fi
echo "fetch-kernels: $(for k in $KERNELS; do printf '%s ' "$k=$(krel "$k")"; done)in $LAB/root"
