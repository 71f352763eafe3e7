#!/bin/sh
# init.sh: /init (PID 1, busybox sh) of the memdump guests built by tests/memdump/record.sh.
#
# /m/load (memdump.py prepare) lists the modules in load order, 'MODULE FILE load|refuse
# PARAMS...'; each is loaded with busybox insmod ('refuse': this kernel is expected to refuse it;
# insmod's message and the module's kernel messages are printed as 'refused' lines). Then, all from this one boot: the /proc/kallsyms lines of the names
# in /m/syms (kptr_restrict=1: real addresses for root) and the VMCOREINFO note of /proc/kcore.
# Right after each module is loaded (before the next one's init runs), /bin/kcore
# (guest/kcore.c) prints its section addresses and the bytes of its live sections from
# /proc/kcore.
# Console output, each line behind a marker (anything else on the console is boot noise):
#   '@@MEMDUMP@@ '        meta, loaded, refused, ksym lines, and kcore's vmcoreinfo/sec/bytes/b/end lines
#   '@@MEMDUMP-ERR@@ '    an error (insmod's message, a kcore failure, ...)
#   '@@MEMDUMP-DONE@@ rc=N'  the end; anything but rc=0 is a failure
# then 'poweroff -f'.
/bin/busybox --install -s /bin
export PATH=/bin
set -f
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp

M='@@MEMDUMP@@'
err() { printf '@@MEMDUMP-ERR@@ %s\n' "$*"; }
finish() {
	printf '@@MEMDUMP-DONE@@ rc=%s\n' "$1"
	poweroff -f
	sleep 10
}

echo # the x86 boot stub leaves the cursor mid-line

echo 1 >/proc/sys/kernel/kptr_restrict || { err "cannot set kptr_restrict"; finish 1; }
printf '%s meta uname %s\n' "$M" "$(uname -r)"
printf '%s meta possible %s\n' "$M" "$(cat /sys/devices/system/cpu/possible)"

while read -r mod file expect params; do
	[ -n "$mod" ] || continue
	dmesg -c >/dev/null
	# $params unquoted: one argument per parameter (set -f: no globbing)
	if insmod "/m/$file" $params 2>/tmp/err; then
		[ "$expect" = load ] || { err "insmod $file: loaded, but this kernel should refuse it"; finish 1; }
		printf '%s loaded %s\n' "$M" "$mod"
		# Dump it now, before the next module's init can write into it (mp_use's init
		# increments mp_export_counter): each module as its own load left it.
		/bin/kcore module "$mod" "/m/$mod.sizes" || { err "kcore module $mod failed"; finish 1; }
		continue
	fi
	if [ "$expect" = refuse ]; then
		# expected: its messages for the record
		printf '%s refused %s\n' "$M" "$mod"
		cat /tmp/err | while IFS= read -r l; do printf '%s refused %s %s\n' "$M" "$mod" "$l"; done
		dmesg | grep -F "$mod" | while IFS= read -r l; do printf '%s refused %s %s\n' "$M" "$mod" "$l"; done
		continue
	fi
	while IFS= read -r l; do err "insmod $file: $l"; done </tmp/err
	dmesg | tail -n 5 | while IFS= read -r l; do err "dmesg: $l"; done
	err "insmod $file failed"
	finish 1
done </m/load

awk -v m="$M" 'NR == FNR { w[$1] = 1; next } ($3 in w) { print m " ksym " $0 }' /m/syms /proc/kallsyms ||
	{ err "reading /proc/kallsyms failed"; finish 1; }

/bin/kcore vmcoreinfo || { err "kcore vmcoreinfo failed"; finish 1; }
finish 0
