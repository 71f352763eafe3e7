#!/bin/sh
# init.sh: /init (PID 1, busybox sh) of the guests built by tests/programs/record.sh.
#
# Runs Debian 12's module programs (kmod's modprobe/lsmod/insmod/rmmod/modinfo, busybox's
# insmod/lsmod/rmmod applets, systemd-modules-load) one command at a time, each through /rec/run
# (guest/run.c: PATH lookup, stdin /dev/null, stdout and stderr to files, a fixed environment),
# and keeps per command, in /out/<seq>/: argv (NUL-terminated arguments), stdout, stderr, exit,
# dmesg (what the kernel logged during the command: 'dmesg -c -r' right after it; the log is
# cleared before the first command) and request_module (the modprobe calls the kernel itself made
# during the command: /proc/sys/kernel/modprobe points at /rec/umh-modprobe, which logs its
# arguments and execs kmod's modprobe; meta/request_module has those made before the first
# command, from the kernel's boot on).
# Console output, each line behind a marker (anything else on the console is boot noise):
#   '@@PROG@@ '            base64 of a tar of /out (meta/ and one directory per command)
#   '@@PROG-INFO@@ '       what the guest waited for before the commands (log only)
#   '@@PROG-ERR@@ '        an error
#   '@@PROG-DONE@@ rc=N'   the end; N=0: every command ran (whatever it returned)
# then 'poweroff -f'.
/usr/bin/busybox mount -t proc proc /proc
/usr/bin/busybox mount -t sysfs sysfs /sys
/usr/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/usr/bin/busybox mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
/usr/bin/busybox mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
# as systemd mounts it on a Debian 12 system (systemd-modules-load looks at it)
/usr/bin/busybox mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
# the kernel's own module requests: through the logging wrapper (guest/umh-modprobe), which
# was /usr/sbin/modprobe while the kernel booted; kmod's modprobe back in its place
echo /rec/umh-modprobe >/proc/sys/kernel/modprobe
/usr/bin/busybox ln -sfn /bin/kmod /usr/sbin/modprobe
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
set -f

echo # the x86 boot stub leaves the cursor mid-line
info() { printf '@@PROG-INFO@@ %s\n' "$*"; }
err() { printf '@@PROG-ERR@@ %s\n' "$*"; }
finish() {
	printf '@@PROG-DONE@@ rc=%s\n' "$1"
	poweroff -f
	sleep 10
}
up() { cut -d' ' -f1 /proc/uptime; }
# wait_log SECONDS PATTERN: wait until the kernel log has a line matching PATTERN (grep -E)
wait_log() {
	n=0
	while ! dmesg | grep -qE "$2"; do
		[ $n -ge $(($1 * 10)) ] && return 1
		sleep 0.1
		n=$((n + 1))
	done
}

# Settle as tests/conformance/guest/init.sh does, so that the late boot messages (crng init,
# x86 'clocksource: Switched to clocksource tsc') are not in a command's dmesg.
t0=$(up)
if ! dmesg | grep -q 'random: crng init done'; then
	timeout 60 head -c 1 /dev/random >/dev/null || err "settle: /dev/random not ready after 60 s"
	wait_log 5 'random: crng init done' || err "settle: no 'random: crng init done'"
fi
t1=$(up)
if [ "$(uname -m)" = x86_64 ]; then
	wait_log 30 'clocksource: Switched to clocksource tsc$' ||
		err "settle: no 'clocksource: Switched to clocksource tsc' after 30 s"
fi
t2=$(up)
prev=$(dmesg | wc -l)
n=0
while sleep 0.5; do
	cur=$(dmesg | wc -l)
	[ "$cur" = "$prev" ] && break
	prev=$cur
	n=$((n + 1))
	[ $n -lt 20 ] || { err "settle: the kernel log is still growing after 10 s"; break; }
done
info "settle: init at ${t0}s, crng ready at ${t1}s, clocksource at ${t2}s, quiet at $(up)s"

mkdir -p /out/meta /root
R=$(uname -r)
MD=/lib/modules/$R
# ko PATH: the module file $MD/PATH.ko, .ko.xz, .ko.zst or .ko.gz, whichever exists
ko() {
	for x in .ko .ko.xz .ko.zst .ko.gz; do
		[ -f "$MD/$1$x" ] && { echo "$MD/$1$x"; return; }
	done
	echo "$MD/$1.ko"
}
LOOP=$(ko kernel/drivers/block/loop)
VFAT=$(ko kernel/fs/fat/vfat)
[ -f "$LOOP" ] && [ -f "$VFAT" ] || { err "no $LOOP or $VFAT"; finish 1; }
# meta: what the guest is; the programs' own version lines
uname -r >/out/meta/uname
uname -m >/out/meta/machine
for p in "kmod_version kmod --version" "busybox_version busybox" \
	"systemd_version /lib/systemd/systemd-modules-load --version"; do
	set -- $p
	n=$1
	shift
	mkdir /out/meta/$n
	/rec/run /out/meta/$n "$@" || { err "run $*"; finish 1; }
done
cp /rec/request-module.log /out/meta/request_module 2>/dev/null || : >/out/meta/request_module
: >/rec/request-module.log
dmesg -c >/dev/null

seq=0
# run ARG...: one recorded command
run() {
	seq=$((seq + 1))
	d=/out/$seq
	mkdir "$d"
	for a in "$@"; do printf '%s\0' "$a"; done >"$d/argv"
	/rec/run "$d" "$@" || { err "run $*"; finish 1; }
	dmesg -c -r >"$d/dmesg"
	cp /rec/request-module.log "$d/request_module"
	: >/rec/request-module.log
}

# 1. the initial state
run lsmod
# 2. modprobe with dependencies and softdeps (ext4: crc16, mbcache, jbd2; softdep crypto-crc32c)
run modprobe -v ext4
run lsmod
run ls /sys/module/ext4/
run grep -r . /sys/module/ext4/parameters/
run modprobe -v ext4
run rmmod jbd2
run modprobe -r -v ext4
run lsmod
# ext4 has no parameters: vcan (dependency can-dev) has one, 'echo' (0444)
run modprobe -v vcan echo=1
run lsmod
run grep -r . /sys/module/vcan/parameters/
run modprobe -r -v vcan
run modprobe -v nosuchmodule
run modprobe -r -v nosuchmodule
run modprobe -r -v loop
# 3. kmod's insmod/rmmod/modinfo on one module with parameters and no dependency
run insmod "$LOOP" max_loop=4
run cat /sys/module/loop/parameters/max_loop
run lsmod
run rmmod loop
run insmod "$LOOP" max_loop=4
run insmod "$LOOP" max_loop=4
run rmmod loop
run rmmod loop
run modinfo -F parm loop
run modinfo loop
run insmod "$MD/kernel/nosuchmodule.ko"
run insmod "$VFAT"
run insmod "$LOOP" max_loop=abc
run lsmod
# 4. busybox's applets
run busybox insmod "$LOOP" max_loop=4
run busybox lsmod
run cat /sys/module/loop/parameters/max_loop
run busybox insmod "$LOOP" max_loop=4
run busybox rmmod loop
run busybox rmmod loop
run busybox insmod "$MD/kernel/nosuchmodule.ko"
# 5. systemd-modules-load: vfat (dependency fat) and brd (options from /etc/modprobe.d)
printf '# tests/programs\nvfat\nbrd\n' >/etc/modules-load.d/test.conf
printf 'options brd rd_nr=2 rd_size=4096\n' >/etc/modprobe.d/test.conf
run cat /etc/modules-load.d/test.conf
run cat /etc/modprobe.d/test.conf
run /lib/systemd/systemd-modules-load
run lsmod
run grep -r . /sys/module/brd/parameters/
run modprobe -r -v vfat brd
run env SYSTEMD_LOG_LEVEL=debug /lib/systemd/systemd-modules-load
run env SYSTEMD_LOG_LEVEL=debug /lib/systemd/systemd-modules-load
run modprobe -r -v vfat brd
printf 'nosuchmodule\n' >/etc/modules-load.d/test.conf
run cat /etc/modules-load.d/test.conf
run /lib/systemd/systemd-modules-load
run env SYSTEMD_LOG_LEVEL=debug /lib/systemd/systemd-modules-load
# a module whose load fails (a bad option from /etc/modprobe.d)
printf 'brd\n' >/etc/modules-load.d/test.conf
printf 'options brd rd_nr=abc\n' >/etc/modprobe.d/test.conf
run cat /etc/modules-load.d/test.conf
run cat /etc/modprobe.d/test.conf
run /lib/systemd/systemd-modules-load
run lsmod
rm /etc/modules-load.d/test.conf /etc/modprobe.d/test.conf

echo "$seq" >/out/meta/commands
info "commands done at $(up)s"
tar -C /out -cf - . | base64 | sed 's/^/@@PROG@@ /'
finish 0
