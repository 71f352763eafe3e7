# apt.sh: sourced by fetch-kernels.sh and current.sh (after lib.sh). Debian's archive through a
# private apt state per source set, so that /etc/apt is never modified and what is found does
# not depend on the machine's own sources:
#   bookworm            bookworm + bookworm-security (the 6.1 kernels)
#   bookworm-backports  bookworm-backports (6.12 for Debian 12)
#   trixie              trixie + trixie-security (Debian 13's 6.12)
# papt SET CMD ARGS...: apt-get or apt-cache (CMD) on that set, amd64 and arm64 packages.
# The first use of a set runs 'apt-get update' on it (root only), unless it was updated less
# than an hour ago (by this or an earlier script of the same run).
ARCHIVE_URI=${ARCHIVE_URI:-http://deb.debian.org/debian}
SECURITY_URI=${SECURITY_URI:-http://deb.debian.org/debian-security}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
declare -A APT_READY=()

apt_sources() {
	local o="[signed-by=$KEYRING]"
	case $1 in
	bookworm) printf 'deb %s %s bookworm main\ndeb %s %s bookworm-security main\n' \
		"$o" "$ARCHIVE_URI" "$o" "$SECURITY_URI" ;;
	bookworm-backports) printf 'deb %s %s bookworm-backports main\n' "$o" "$ARCHIVE_URI" ;;
	trixie) printf 'deb %s %s trixie main\ndeb %s %s trixie-security main\n' \
		"$o" "$ARCHIVE_URI" "$o" "$SECURITY_URI" ;;
	*) die "unknown apt source set '$1'" ;;
	esac
}
apt_opts() { # SET -> the array APT_O
	local d=$LAB/apt/$1
	APT_O=(-o "Dir::Etc::SourceList=$d/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache" -o Dir::State::Status=/dev/null
		-o APT::Architectures::=amd64 -o APT::Architectures::=arm64
		-o APT::Sandbox::User=root -q)
}
apt_init() { # SET
	[ -z "${APT_READY[$1]:-}" ] || return 0
	local d=$LAB/apt/$1
	if [ -n "$(find "$d/updated" -mmin -60 2>/dev/null)" ] && [ "$(cat "$d/updated")" = "$(apt_sources "$1")" ]; then
		APT_READY[$1]=1
		return 0
	fi
	[ "$(id -u)" = 0 ] || die "downloading Debian packages needs root (apt-get update)"
	rm -f "$d/updated"
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
	apt_sources "$1" >"$d/sources.list"
	apt_opts "$1"
	apt-get "${APT_O[@]}" update >"$d/update.log" 2>&1 || { cat "$d/update.log" >&2; die "apt-get update of '$1' failed"; }
	grep -q '^\(W\|E\|Err\)' "$d/update.log" && { cat "$d/update.log" >&2; die "apt-get update of '$1' had errors"; }
	apt_sources "$1" >"$d/updated"
	APT_READY[$1]=1
}
papt() { # SET apt-get|apt-cache ARGS...
	local set=$1 cmd=$2
	shift 2
	apt_init "$set"
	apt_opts "$set"
	"$cmd" "${APT_O[@]}" "$@"
}
# apt_has SET NAME VERSION: whether the archive has NAME (name:arch) at VERSION
apt_has() {
	papt "$1" apt-cache show "$2=$3" 2>/dev/null | grep '^Package: ' >/dev/null
}
# apt_versions SET NAME: the versions the archive has of NAME, newest first
apt_versions() {
	papt "$1" apt-cache madison "$2" 2>/dev/null | awk -F' *[|] *' '{print $2}' | sort -Vru
}
