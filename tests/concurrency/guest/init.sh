#!/bin/sh
# init.sh: /init (PID 1, busybox sh) of the concurrency guests built by tests/concurrency/record.sh.
#
# Kernel command line (set by record.sh): concur.hold_ms=MS, the time mp_hold's init sleeps in
# the first load of each case. On x86 it first waits (30 s at most) for the late
# 'clocksource: Switched to clocksource tsc' (a delayed work about 1 s into the boot under TCG),
# then runs /bin/concurrent MS (guest/concurrent.c) with /m/mp_hold.ko and /m/mp_hold_copy.ko.
# Console output, each line behind a marker (anything else on the console is boot noise):
#   '@@CONCUR@@ '          the meta line, then one JSON object per case (concurrent.c)
#   '@@CONCUR-ERR@@ '      an error
#   '@@CONCUR-DONE@@ rc=N' the end; N is concurrent's exit status (anything but 0 is a failure)
# then 'poweroff -f'.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

echo # the x86 boot stub leaves the cursor mid-line
finish() {
	printf '@@CONCUR-DONE@@ rc=%s\n' "$1"
	poweroff -f
	sleep 10
}
hold=
for w in $(cat /proc/cmdline); do
	case $w in concur.hold_ms=*) hold=${w#*=} ;; esac
done
[ -n "$hold" ] || { echo '@@CONCUR-ERR@@ no concur.hold_ms= on the kernel command line'; finish 1; }
if [ "$(uname -m)" = x86_64 ]; then
	n=0
	while ! dmesg | grep -q 'clocksource: Switched to clocksource tsc$'; do
		[ $n -ge 300 ] && { echo '@@CONCUR-ERR@@ settle: no switch to the tsc clocksource after 30 s'; break; }
		sleep 0.1
		n=$((n + 1))
	done
fi
/bin/concurrent "$hold"
finish $?
