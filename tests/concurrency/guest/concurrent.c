// SPDX-License-Identifier: GPL-2.0
/*
 * concurrent.c: guest program of tests/concurrency/record.sh (built static for amd64 and arm64).
 * Runs concurrent loads of the same module, mp_hold (tests/fixtures/src/mp_hold: init sleeps
 * hold_ms, then returns init_ret), against the real kernel, with raw system calls, and prints
 * one JSON object per case.
 *
 *   concurrent HOLD_MS          run every case (the module files are /m/mp_hold.ko and
 *                               /m/mp_hold_copy.ko, a copy with its own inode)
 *
 * A case: process A starts a load with hold_ms=HOLD_MS; the parent polls /proc/modules every
 * 5 ms until the mp_hold line says 'Loading' (that instant is time 0 of the case), records
 * the line and /sys/module/mp_hold/initstate, then forks the other processes (B, C, ...). Each
 * process makes one system call and records its return value, errno and CLOCK_MONOTONIC
 * start/end. Then the parent waits for all of them, records what is left (the /proc/modules
 * line, initstate, parameters) and the kernel log of the case (klogctl READ_CLEAR; cleared
 * before A starts), and unloads mp_hold (delete_module O_NONBLOCK, retried while EBUSY).
 * Before the cases, one ordinary load and unload (the 'warmup': the once-per-boot taint
 * messages) is made and its log printed in the meta line.
 *
 * Output on stdout, every line marked:
 *   @@CONCUR@@ {"meta":{...}}        first
 *   @@CONCUR@@ {"case":...}          one per case, in order (format: tests/concurrency/README.md)
 *   @@CONCUR-ERR@@ MESSAGE           an internal failure, then exit status 1
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MARK "@@CONCUR@@ "
#define MOD "mp_hold"
#define FILE_MAIN "/m/mp_hold.ko"
#define FILE_COPY "/m/mp_hold_copy.ko"
#define POLL_NS 5000000L         /* the parent's /proc/modules poll interval */
#define LOADING_TIMEOUT_MS 30000 /* A must be seen Loading within this */
#define MAXP 4

static void fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	printf("@@CONCUR-ERR@@ ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(long ns)
{
	struct timespec ts = { ns / 1000000000L, ns % 1000000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---- output: one JSON object built in a buffer ---- */
static char out[1 << 20];
static size_t outn;

static void o(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out + outn, sizeof(out) - outn, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(out) - outn)
		fail("output line too long");
	outn += n;
}

/* a JSON string of n bytes (control characters and bytes >= 0x7f escaped as \u00XX) */
static void ostr(const char *s, size_t n)
{
	o("\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\')
			o("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			o("\\u%04x", c);
		else
			o("%c", c);
	}
	o("\"");
}

static void ocstr(const char *s)
{
	if (s)
		ostr(s, strlen(s));
	else
		o("null");
}

static void oerrno(int e)
{
	const char *name = e ? strerrorname_np(e) : NULL;

	if (!e)
		o("null");
	else if (name)
		o("\"%s\"", name);
	else
		o("\"E#%d\"", e);
}

static void flush_line(void)
{
	printf("%s%.*s\n", MARK, (int)outn, out);
	fflush(stdout);
	outn = 0;
}

/* ---- files ---- */

/* The whole file into a malloc'd NUL-terminated buffer; NULL (errno set) on failure. */
static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 65536, n = 0;
	char *p;

	if (fd < 0)
		return NULL;
	p = malloc(cap + 1);
	if (!p)
		fail("out of memory");
	for (;;) {
		ssize_t r;

		if (n == cap) {
			cap *= 2;
			p = realloc(p, cap + 1);
			if (!p)
				fail("out of memory");
		}
		r = read(fd, p + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			free(p);
			close(fd);
			errno = e;
			return NULL;
		}
		if (r == 0)
			break;
		n += r;
	}
	close(fd);
	p[n] = 0;
	if (len)
		*len = n;
	return p;
}

/* A sysfs value without its trailing newline, or NULL (errno set). */
static char *sysfs(const char *path)
{
	size_t n;
	char *p = slurp(path, &n);

	if (p && n && p[n - 1] == '\n')
		p[n - 1] = 0;
	return p;
}

/*
 * The mp_hold line of /proc/modules into line (address field replaced by 0x0), or "" when
 * there is none; returns a pointer to its state field (Live, Loading, Unloading) or NULL.
 */
static const char *modline(char *line, size_t size)
{
	static char state[32];
	char *pm = slurp("/proc/modules", NULL), *l, *save = NULL;

	if (!pm)
		fail("/proc/modules: %s", strerror(errno));
	line[0] = 0;
	for (l = strtok_r(pm, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *f[8], *w, *s2 = NULL, copy[512];
		int nf = 0;

		if (strncmp(l, MOD " ", strlen(MOD) + 1))
			continue;
		/* name size refcnt users state address [taint] */
		snprintf(copy, sizeof(copy), "%s", l);
		for (w = strtok_r(copy, " ", &s2); w && nf < 8; w = strtok_r(NULL, " ", &s2))
			f[nf++] = w;
		if (nf < 6)
			fail("/proc/modules: bad line '%s'", l);
		snprintf(state, sizeof(state), "%s", f[4]);
		if (!strncmp(f[5], "0x", 2))
			f[5] = "0x0";
		line[0] = 0;
		for (int i = 0; i < nf; i++) {
			size_t k = strlen(line);

			snprintf(line + k, size - k, "%s%s", i ? " " : "", f[i]);
		}
		free(pm);
		return state;
	}
	free(pm);
	return NULL;
}

static int sysfs_dir_exists(void)
{
	struct stat st;

	return stat("/sys/module/" MOD, &st) == 0;
}

/* the kernel log since the last read, as a JSON array of lines without "<N>" and "[ time] " */
static void olog(void)
{
	static char log[1 << 20];
	int n = klogctl(4 /* SYSLOG_ACTION_READ_CLEAR */, log, sizeof(log));
	int first = 1;

	if (n < 0)
		fail("klogctl READ_CLEAR: %s", strerror(errno));
	o("[");
	for (int i = 0; i < n;) {
		int j = i;
		const char *s;
		size_t l;

		while (j < n && log[j] != '\n')
			j++;
		s = log + i;
		l = j - i;
		i = j + 1;
		if (l && s[0] == '<') {
			size_t k = 1;

			while (k < l && isdigit((unsigned char)s[k]))
				k++;
			if (k < l && s[k] == '>')
				s += k + 1, l -= k + 1;
		}
		if (l && s[0] == '[') {
			size_t k = 1;

			while (k < l && (s[k] == ' ' || s[k] == '.' || isdigit((unsigned char)s[k])))
				k++;
			if (k < l && s[k] == ']') {
				k++;
				if (k < l && s[k] == ' ')
					k++;
				s += k, l -= k;
			}
		}
		if (!l)
			continue;
		o("%s", first ? "" : ",");
		first = 0;
		ostr(s, l);
	}
	o("]");
}

static void clear_log(void)
{
	if (klogctl(5 /* SYSLOG_ACTION_CLEAR */, NULL, 0) < 0)
		fail("klogctl CLEAR: %s", strerror(errno));
}

/* ---- the module ---- */
static char *image;
static size_t image_len;
static unsigned hold;

enum call { INIT, FINIT, DELETE };
static const char *call_name[] = { "init_module", "finit_module", "delete_module" };

/*
 * When a process starts:
 *   AT_START    A: the first load
 *   AT_LOADING  forked once A's module is seen Loading (and its initstate read)
 *   AT_GOING    forked at the same time, but polls /proc/modules itself (no sleep) and makes
 *               its call as soon as the line is no longer 'Loading' (Unloading or gone)
 *   AFTER_A     run after every other process has ended (its start is the next process)
 */
enum when { AT_START, AT_LOADING, AT_GOING, AFTER_A };
static const char *when_name[] = { "start", "loading", "going", "after" };

struct pspec {
	const char *who;
	enum call call;
	const char *file;   /* INIT: the image read from it; FINIT: opened by the process */
	const char *params; /* "{H}" stands for the hold time; DELETE: the name */
	unsigned flags;
	enum when when;
};

struct cspec {
	const char *name;
	struct pspec p[MAXP];
};

#define A_OK "hold_ms={H} init_ret=0"
#define A_FAIL "hold_ms={H} init_ret=-19"
#define O_NB O_NONBLOCK
static const struct cspec cases[] = {
	{ "init_init_ok", {
		{ "A", INIT, FILE_MAIN, A_OK, 0, AT_START },
		{ "B", INIT, FILE_MAIN, "", 0, AT_LOADING } } },
	{ "init_init_fail", {
		{ "A", INIT, FILE_MAIN, A_FAIL, 0, AT_START },
		{ "B", INIT, FILE_MAIN, "", 0, AT_LOADING } } },
	{ "finit_same_file_ok", {
		{ "A", FINIT, FILE_MAIN, A_OK, 0, AT_START },
		{ "B", FINIT, FILE_MAIN, "", 0, AT_LOADING } } },
	{ "finit_same_file_fail", {
		{ "A", FINIT, FILE_MAIN, A_FAIL, 0, AT_START },
		{ "B", FINIT, FILE_MAIN, "", 0, AT_LOADING } } },
	{ "finit_other_file_ok", {
		{ "A", FINIT, FILE_MAIN, A_OK, 0, AT_START },
		{ "B", FINIT, FILE_COPY, "", 0, AT_LOADING } } },
	{ "finit_other_file_fail", {
		{ "A", FINIT, FILE_MAIN, A_FAIL, 0, AT_START },
		{ "B", FINIT, FILE_COPY, "", 0, AT_LOADING } } },
	{ "init_then_finit_ok", {
		{ "A", INIT, FILE_MAIN, A_OK, 0, AT_START },
		{ "B", FINIT, FILE_MAIN, "", 0, AT_LOADING } } },
	{ "init_then_finit_fail", {
		{ "A", INIT, FILE_MAIN, A_FAIL, 0, AT_START },
		{ "B", FINIT, FILE_MAIN, "", 0, AT_LOADING } } },
	{ "finit_then_init_ok", {
		{ "A", FINIT, FILE_MAIN, A_OK, 0, AT_START },
		{ "B", INIT, FILE_MAIN, "", 0, AT_LOADING } } },
	{ "finit_then_init_fail", {
		{ "A", FINIT, FILE_MAIN, A_FAIL, 0, AT_START },
		{ "B", INIT, FILE_MAIN, "", 0, AT_LOADING } } },
	{ "delete_while_coming", {
		{ "A", INIT, FILE_MAIN, A_OK, 0, AT_START },
		{ "B", DELETE, NULL, MOD, O_NB, AT_LOADING },
		{ "C", DELETE, NULL, MOD, O_NB | O_TRUNC, AT_LOADING },
		{ "D", DELETE, NULL, MOD, 0, AT_LOADING } } },
	{ "load_after_failed", {
		{ "A", INIT, FILE_MAIN, A_FAIL, 0, AT_START },
		{ "C", INIT, FILE_MAIN, "", 0, AFTER_A } } },
	{ "finit_load_after_failed", {
		{ "A", FINIT, FILE_MAIN, A_FAIL, 0, AT_START },
		{ "C", FINIT, FILE_MAIN, "", 0, AFTER_A } } },
	{ "three_init_ok", {
		{ "A", INIT, FILE_MAIN, A_OK, 0, AT_START },
		{ "B", INIT, FILE_MAIN, "", 0, AT_LOADING },
		{ "C", INIT, FILE_MAIN, "", 0, AT_LOADING } } },
	{ "three_init_fail", {
		{ "A", INIT, FILE_MAIN, A_FAIL, 0, AT_START },
		{ "B", INIT, FILE_MAIN, "", 0, AT_LOADING },
		{ "C", INIT, FILE_MAIN, "", 0, AT_LOADING } } },
	{ "three_finit_same_file_ok", {
		{ "A", FINIT, FILE_MAIN, A_OK, 0, AT_START },
		{ "B", FINIT, FILE_MAIN, "", 0, AT_LOADING },
		{ "C", FINIT, FILE_MAIN, "", 0, AT_LOADING } } },
	{ "three_finit_same_file_fail", {
		{ "A", FINIT, FILE_MAIN, A_FAIL, 0, AT_START },
		{ "B", FINIT, FILE_MAIN, "", 0, AT_LOADING },
		{ "C", FINIT, FILE_MAIN, "", 0, AT_LOADING } } },
	{ "init_going_race", {
		{ "A", INIT, FILE_MAIN, A_FAIL, 0, AT_START },
		{ "B", INIT, FILE_MAIN, "", 0, AT_GOING } } },
	{ "finit_going_race", {
		{ "A", FINIT, FILE_MAIN, A_FAIL, 0, AT_START },
		{ "B", FINIT, FILE_COPY, "", 0, AT_GOING } } },
};

/* what each process writes, in memory shared with the parent */
struct result {
	int done;
	long ret;
	int err;
	long long start, end;
	char saw[32]; /* AT_GOING: the state it saw last before its call */
	long long saw_at;
	long long ino;
};
static struct result *res;

/* "{H}" in s -> the hold time */
static void expand(char *dst, size_t size, const char *s)
{
	const char *h = strstr(s, "{H}");

	if (!h)
		snprintf(dst, size, "%s", s);
	else
		snprintf(dst, size, "%.*s%u%s", (int)(h - s), s, hold, h + 3);
}

static long do_call(const struct pspec *p, struct result *r)
{
	char args[128];
	long ret;
	int fd = -1;

	expand(args, sizeof(args), p->params);
	if (p->call == FINIT) {
		struct stat st;

		fd = open(p->file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fail("open %s: %s", p->file, strerror(errno));
		if (fstat(fd, &st) == 0)
			r->ino = st.st_ino;
	}
	r->start = now_ns();
	switch (p->call) {
	case INIT:
		ret = syscall(SYS_init_module, image, image_len, args);
		break;
	case FINIT:
		ret = syscall(SYS_finit_module, fd, args, 0);
		break;
	default:
		ret = syscall(SYS_delete_module, args, p->flags);
		break;
	}
	r->err = ret < 0 ? errno : 0;
	r->end = now_ns();
	r->ret = ret;
	if (fd >= 0)
		close(fd);
	__atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
	return ret;
}

static pid_t start(const struct pspec *p, struct result *r)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid)
		return pid;
	if (p->when == AT_GOING) {
		char line[512];
		const char *st;

		for (;;) {
			st = modline(line, sizeof(line));
			if (!st || strcmp(st, "Loading"))
				break;
		}
		snprintf(r->saw, sizeof(r->saw), "%s", st ? st : "gone");
		r->saw_at = now_ns();
	}
	do_call(p, r);
	_exit(0);
}

/* delete_module(mp_hold) until it is gone; retried while EBUSY (its init still running) */
static void unload(void)
{
	char line[512];
	long long t = now_ns();

	for (;;) {
		if (syscall(SYS_delete_module, MOD, O_NONBLOCK) == 0 || errno == ENOENT)
			break;
		if (errno != EBUSY)
			fail("delete_module %s: %s", MOD, strerror(errno));
		if (now_ns() - t > 30000000000LL)
			fail("delete_module %s: still EBUSY after 30 s", MOD);
		sleep_ns(20000000L);
	}
	while (modline(line, sizeof(line)) || sysfs_dir_exists()) {
		if (now_ns() - t > 30000000000LL)
			fail("%s still listed 30 s after delete_module", MOD);
		sleep_ns(5000000L);
	}
}

static void oms(long long t, long long t0)
{
	o("%.1f", (t - t0) / 1e6);
}

/* the module's state now: {"proc_modules":..., "sysfs":bool, "initstate":..., params...} */
static void ostate(void)
{
	char line[512], *v;
	const char *st = modline(line, sizeof(line));

	o("{\"proc_modules\":");
	ocstr(st ? line : NULL);
	o(",\"sysfs\":%s,\"initstate\":", sysfs_dir_exists() ? "true" : "false");
	v = sysfs("/sys/module/" MOD "/initstate");
	ocstr(v);
	free(v);
	o(",\"hold_ms\":");
	v = sysfs("/sys/module/" MOD "/parameters/hold_ms");
	ocstr(v);
	free(v);
	o(",\"init_ret\":");
	v = sysfs("/sys/module/" MOD "/parameters/init_ret");
	ocstr(v);
	free(v);
	o("}");
}

static void run_case(const struct cspec *c)
{
	const struct pspec *p = c->p;
	pid_t pids[MAXP] = { 0 };
	char line[512], coming[512] = "", *initstate = NULL;
	const char *st = NULL;
	long long t0 = 0, tstart, tinit = 0;
	int np = 0, ia = -1, ok;

	while (np < MAXP && p[np].who)
		np++;
	memset(res, 0, sizeof(*res) * MAXP);
	if (modline(line, sizeof(line)) || sysfs_dir_exists())
		fail("%s: %s is loaded at the start", c->name, MOD);
	clear_log();

	tstart = now_ns();
	for (int i = 0; i < np; i++)
		if (p[i].when == AT_START)
			pids[i] = start(&p[i], &res[i]), ia = i;
	if (ia != 0)
		fail("%s: A must be the first process", c->name);
	/* wait for A's module to be Loading */
	for (;;) {
		st = modline(line, sizeof(line));
		if (st && !strcmp(st, "Loading")) {
			t0 = now_ns();
			snprintf(coming, sizeof(coming), "%s", line);
			break;
		}
		if (__atomic_load_n(&res[0].done, __ATOMIC_SEQ_CST))
			break;
		if (now_ns() - tstart > LOADING_TIMEOUT_MS * 1000000LL)
			fail("%s: A not seen Loading after %d ms", c->name, LOADING_TIMEOUT_MS);
		sleep_ns(POLL_NS);
	}
	if (!t0)
		fail("%s: A ended (ret %ld, %s) before it was seen Loading", c->name, res[0].ret,
		     strerror(res[0].err));
	/* /sys/module/mp_hold/initstate: created a little after the module turns Loading */
	while (!(initstate = sysfs("/sys/module/" MOD "/initstate"))) {
		if (errno != ENOENT || now_ns() - t0 > 1000000000LL)
			break;
		sleep_ns(1000000L);
	}
	tinit = now_ns();
	for (int i = 0; i < np; i++)
		if (p[i].when == AT_LOADING || p[i].when == AT_GOING)
			pids[i] = start(&p[i], &res[i]);
	for (int i = 0; i < np; i++)
		if (pids[i] && waitpid(pids[i], NULL, 0) != pids[i])
			fail("waitpid: %s", strerror(errno));
	for (int i = 0; i < np; i++)
		if (pids[i] && !res[i].done)
			fail("%s: process %s died", c->name, p[i].who);

	o("{\"case\":\"%s\",\"hold_ms\":%u,\"coming\":{\"proc_modules\":", c->name, hold);
	ocstr(coming);
	o(",\"initstate\":");
	ocstr(initstate);
	o(",\"initstate_ms\":");
	oms(tinit, t0);
	o("}");
	free(initstate);
	/* AFTER_A: what A left behind, then the process */
	ok = 0;
	for (int i = 0; i < np; i++) {
		if (p[i].when != AFTER_A)
			continue;
		if (!ok) {
			o(",\"between\":");
			ostate();
			ok = 1;
		}
		pids[i] = start(&p[i], &res[i]);
		if (waitpid(pids[i], NULL, 0) != pids[i] || !res[i].done)
			fail("%s: process %s died", c->name, p[i].who);
	}
	o(",\"procs\":[");
	for (int i = 0; i < np; i++) {
		char args[128];

		expand(args, sizeof(args), p[i].params);
		o("%s{\"who\":\"%s\",\"call\":\"%s\",\"when\":\"%s\",", i ? "," : "", p[i].who,
		  call_name[p[i].call], when_name[p[i].when]);
		if (p[i].call == DELETE) {
			o("\"name\":");
			ocstr(args);
			o(",\"flags\":%u", p[i].flags);
		} else {
			o("\"file\":");
			ocstr(p[i].file);
			if (p[i].call == FINIT)
				o(",\"ino\":%lld", res[i].ino);
			o(",\"args\":");
			ocstr(args);
		}
		o(",\"ret\":%ld,\"errno\":", res[i].ret);
		oerrno(res[i].err);
		o(",\"start_ms\":");
		oms(res[i].start, t0);
		o(",\"end_ms\":");
		oms(res[i].end, t0);
		if (p[i].when == AT_GOING) {
			o(",\"saw\":");
			ocstr(res[i].saw);
			o(",\"saw_ms\":");
			oms(res[i].saw_at, t0);
		}
		o("}");
	}
	o("],\"after\":");
	ostate();
	o(",\"log\":");
	olog();
	o("}");
	flush_line();
	unload();
}

int main(int argc, char **argv)
{
	struct utsname u;
	long long t;

	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	if (argc != 2 || !(hold = strtoul(argv[1], NULL, 10)))
		fail("usage: concurrent HOLD_MS");
	image = slurp(FILE_MAIN, &image_len);
	if (!image)
		fail("%s: %s", FILE_MAIN, strerror(errno));
	res = mmap(NULL, sizeof(*res) * MAXP, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	uname(&u);

	/* warmup: the once-per-boot messages (module verification, taint) land here */
	unload();
	clear_log();
	t = now_ns();
	if (syscall(SYS_init_module, image, image_len, "") != 0)
		fail("warmup init_module: %s", strerror(errno));
	t = now_ns() - t;
	unload();
	o("{\"meta\":{\"uname\":");
	ocstr(u.release);
	o(",\"machine\":");
	ocstr(u.machine);
	o(",\"hold_ms\":%u,\"poll_ms\":%ld,\"cases\":[", hold, POLL_NS / 1000000L);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		o("%s\"%s\"", i ? "," : "", cases[i].name);
	o("],\"warmup_ms\":");
	oms(t, 0);
	o(",\"warmup_log\":");
	olog();
	o("}}");
	flush_line();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	return 0;
}
