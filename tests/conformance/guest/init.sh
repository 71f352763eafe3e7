#!/bin/sh
# init.sh: /init (PID 1, busybox sh) of the conformance guests built by tests/conformance/record.sh.
#
# Kernel command line (set by record.sh):
#   modsim.scenario=NAME   run /m/NAME.jsonl (modloader) or /m/NAME.steps (runner.c)
#   modsim.kernel=KERNEL   the kernel's name (debian-6.1-amd64 ...), for the meta line
#   modsim.runner=modloader|c
#                          /bin/modloader scenario run --backend kernel /m/NAME.jsonl, or
#                          /c-runner/modloader /m/NAME.steps (the static C runner, guest/runner.c,
#                          under the same file name so that the kernel's messages that name the
#                          process, 'Comm: modloader' in a stack dump, are the same for both)
# Console output, each line behind a marker (anything else on the console is boot noise):
#   '@@MODSIM@@ '       the meta line, then the runner's result lines (the recording)
#   '@@MODSIM-INFO@@ '  what the guest waited for before the scenario (log only)
#   '@@MODSIM-ERR@@ '   an error: the runner's stderr, a missing file, a settle timeout
#   '@@MODSIM-DONE@@ rc=N'  the end; N is the runner's exit status (anything but 0 is a failure)
# then 'poweroff -f'.
/bin/busybox --install -s /bin
export PATH=/bin
set -f
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp

M='@@MODSIM@@ '
info() { printf '@@MODSIM-INFO@@ %s\n' "$*"; }
err() { printf '@@MODSIM-ERR@@ %s\n' "$*"; }
finish() {
	printf '@@MODSIM-DONE@@ rc=%s\n' "$1"
	poweroff -f
	sleep 10
}
arg() {
	for w in $(cat /proc/cmdline); do
		case $w in "$1="*) echo "${w#*=}"; return ;; esac
	done
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

echo # the x86 boot stub leaves the cursor mid-line

# Let the late boot messages arrive before the scenario clears the log for its first step, so
# that none of them lands in a step's dmesg:
# * 'random: crng init done': arm64 (QEMU virt gives an rng-seed) has it at boot; x86 (no RDRAND
#   in TCG's CPU) had not got it 130 s into an idle boot, so it could come at any step (and a
#   read of urandom before it logs 'random: ...' too). A blocking read of /dev/random makes the
#   kernel seed it now from timer jitter (about 1.1-1.6 s).
# * x86: 'tsc: Refined TSC clocksource calibration' then 'clocksource: Switched to clocksource tsc',
#   a delayed work about 1 s after tsc-early is registered; under TCG it races with /init.
# * then no new log line for 0.5 s.
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
dmesg -c >/dev/null

scen=$(arg modsim.scenario)
kern=$(arg modsim.kernel)
runner=$(arg modsim.runner)
case $runner in
modloader)
	r="$(/bin/modloader --version) (kernel backend)" || { err "modloader --version failed"; finish 1; }
	set -- /bin/modloader scenario run --backend kernel "/m/$scen.jsonl"
	;;
c)
	r=$(/c-runner/modloader --version) || { err "runner --version failed"; finish 1; }
	set -- /c-runner/modloader "/m/$scen.steps"
	;;
*) err "modsim.runner must be modloader or c, not '$runner'"; finish 1 ;;
esac
[ -f "/m/$scen.jsonl" ] || { err "no scenario /m/$scen.jsonl"; finish 1; }
info "run: $*"
printf '%s{"meta":{"runner":"%s","uname":"%s","kernel":"%s","scenario":"%s"}}\n' \
	"$M" "$r" "$(uname -r)" "$kern" "$scen.jsonl"
{
	"$@" 2>/tmp/stderr
	echo $? >/tmp/rc
} | sed "s/^/$M/"
while IFS= read -r l; do err "$l"; done </tmp/stderr
info "end at $(up)s"
finish "$(cat /tmp/rc)"
