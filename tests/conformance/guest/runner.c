/*
 * runner.c: the static C scenario runner for guests where the project's own `modloader` cannot
 * run (arm64: no Rust target for it here). It runs one scenario against the real kernel and prints
 * exactly the result JSON of tests/conformance/FORMAT.md, one line per step.
 *
 *   runner [-d DIR] FILE.steps      run a scenario (relative paths resolve against DIR, default:
 *                                   the directory of FILE.steps)
 *   runner --version
 *
 * FILE.steps is a scenario (*.jsonl) converted by guest/hosttool.py (record.sh does it), so that
 * no JSON parser is needed here. Its first line is "modsim-steps 1"; then one line per step,
 * fields separated by one TAB; every string is hex-encoded (two lowercase or uppercase digits a byte,
 * the empty string is an empty field), "-" means absent (params: a NULL pointer; len: not given):
 *
 *   boot           HEX(append)
 *   finit_module   FLAGS FDMODE HEX(file) HEX(params)|-        FDMODE: rdonly wronly rdwr path closed
 *   init_module    HEX(file) HEX(params)|- LEN|-
 *   delete_module  HEX(name) FLAGS
 *   write          HEX(path) HEX(value)
 *   drop_capability HEX(name)
 *
 * Exit status: 0 when every step ran (whatever errno the steps got), 1 on a bad steps file or an
 * internal failure (the message is on stderr; the step's line is not printed).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define VERSION "runner.c (static C runner)"
#define MAX_FILE (1u << 30)       /* a module file for init_module (EFBIG), and its len (ENOMEM) */
#define MAX_SMALL (16u << 20)     /* /proc/modules, a steps file, a sysfs file */
#define MAX_LOG (64u << 20)       /* the kernel log buffer */

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("runner: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fflush(stdout);
	exit(1);
}

/* ---- growable output buffer ---- */
struct buf {
	char *p;
	size_t n, cap;
};

static void reserve(struct buf *b, size_t more)
{
	if (b->n + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->n + more + 1) {
		if (cap > SIZE_MAX / 2)
			die("out of memory");
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (!p)
		die("out of memory");
	b->p = p;
	b->cap = cap;
}

static void put(struct buf *b, const void *s, size_t n)
{
	reserve(b, n);
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

static void putf(struct buf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof tmp)
		die("format overflow");
	put(b, tmp, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s (strict, as Rust's str::from_utf8), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* A JSON string, escaped as serde_json does; bytes that are not valid UTF-8 become \u00XX. */
static void put_json_str(struct buf *b, const void *v, size_t n)
{
	const unsigned char *s = v;
	puts_(b, "\"");
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		switch (c) {
		case '"': puts_(b, "\\\""); i++; continue;
		case '\\': puts_(b, "\\\\"); i++; continue;
		case '\b': puts_(b, "\\b"); i++; continue;
		case '\f': puts_(b, "\\f"); i++; continue;
		case '\n': puts_(b, "\\n"); i++; continue;
		case '\r': puts_(b, "\\r"); i++; continue;
		case '\t': puts_(b, "\\t"); i++; continue;
		}
		if (c < 0x20) {
			putf(b, "\\u%04x", c);
			i++;
			continue;
		}
		size_t l = utf8_len(s + i, n - i);
		if (!l) {
			putf(b, "\\u%04x", c);
			i++;
			continue;
		}
		put(b, s + i, l);
		i += l;
	}
	puts_(b, "\"");
}

static void put_json_cstr(struct buf *b, const char *s) { put_json_str(b, s, strlen(s)); }

static void put_errname(struct buf *b, int e)
{
	const char *name = strerrorname_np(e);
	if (name)
		put_json_cstr(b, name);
	else {
		char tmp[32];
		snprintf(tmp, sizeof tmp, "E#%d", e);
		put_json_cstr(b, tmp);
	}
}

/* ---- files ---- */

/* Read a whole file (at most max bytes, else EFBIG) into a malloc'd buffer with a NUL after it.
 * Returns 0 or an errno. */
static int read_file(const char *path, size_t max, char **out, size_t *outn)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	size_t cap = 4096, n = 0;
	char *p = malloc(cap + 1);
	if (!p)
		die("out of memory");
	for (;;) {
		if (n == cap) {
			if (cap >= max) {
				free(p);
				close(fd);
				return EFBIG;
			}
			cap = cap * 2 > max ? max : cap * 2;
			char *q = realloc(p, cap + 1);
			if (!q)
				die("out of memory");
			p = q;
		}
		ssize_t r = read(fd, p + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(p);
			close(fd);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	p[n] = 0;
	*out = p;
	*outn = n;
	return 0;
}

/* A sysfs value: content with one trailing newline removed, or "<error ENAME>". */
static void put_sysfs_value(struct buf *b, const char *path)
{
	char *p;
	size_t n;
	int e = read_file(path, MAX_SMALL, &p, &n);
	if (e) {
		const char *name = strerrorname_np(e);
		char tmp[64];
		if (name)
			snprintf(tmp, sizeof tmp, "<error %s>", name);
		else
			snprintf(tmp, sizeof tmp, "<error E#%d>", e);
		put_json_cstr(b, tmp);
		return;
	}
	if (n && p[n - 1] == '\n')
		n--;
	put_json_str(b, p, n);
	free(p);
}

/* initstate, taint: content without trailing whitespace, "" when unreadable (as modloader). */
static void put_sysfs_field(struct buf *b, const char *path)
{
	char *p;
	size_t n;
	if (read_file(path, MAX_SMALL, &p, &n)) {
		puts_(b, "\"\"");
		return;
	}
	while (n && strchr(" \t\n\v\f\r", p[n - 1]))
		n--;
	put_json_str(b, p, n);
	free(p);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in a directory (without . and ..); a missing directory is empty. */
static char **list_dir(const char *path, size_t *count)
{
	size_t n = 0, cap = 16;
	char **v = malloc(cap * sizeof *v);
	if (!v)
		die("out of memory");
	DIR *d = opendir(path);
	if (d) {
		struct dirent *de;
		errno = 0;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (n == cap) {
				cap *= 2;
				char **w = realloc(v, cap * sizeof *v);
				if (!w)
					die("out of memory");
				v = w;
			}
			if (!(v[n++] = strdup(de->d_name)))
				die("out of memory");
		}
		closedir(d);
	} /* an unreadable or missing directory is empty, as in modloader */
	qsort(v, n, sizeof *v, cmp_str);
	*count = n;
	return v;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- result parts ---- */

static void put_dmesg(struct buf *b)
{
	int size = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
	if (size <= 0)
		die("klogctl SIZE_BUFFER: %s", strerror(errno));
	if ((unsigned)size > MAX_LOG)
		size = MAX_LOG;
	char *log = malloc((size_t)size);
	if (!log)
		die("out of memory");
	int n = klogctl(4 /* SYSLOG_ACTION_READ_CLEAR */, log, size);
	if (n < 0)
		die("klogctl READ_CLEAR: %s", strerror(errno));
	puts_(b, "[");
	int first = 1;
	for (int i = 0; i < n;) {
		int j = i;
		while (j < n && log[j] != '\n')
			j++;
		const char *s = log + i;
		size_t l = (size_t)(j - i);
		if (j < n && l && s[l - 1] == '\r') /* "\r\n" ends a line, as in str::lines() */
			l--;
		/* "<level>": '<', digits, '>' (as loader's strip_log_prefixes) */
		if (l && s[0] == '<') {
			size_t k = 1;
			while (k < l && isdigit((unsigned char)s[k]))
				k++;
			if (k < l && s[k] == '>') {
				s += k + 1;
				l -= k + 1;
			}
		}
		/* "[    1.234567] ": '[', spaces, dots and digits, ']', one optional space */
		if (l && s[0] == '[') {
			size_t k = 1;
			while (k < l && (s[k] == ' ' || s[k] == '.' || isdigit((unsigned char)s[k])))
				k++;
			if (k < l && s[k] == ']') {
				k++;
				if (k < l && s[k] == ' ')
					k++;
				s += k;
				l -= k;
			}
		}
		if (!first)
			puts_(b, ",");
		first = 0;
		put_json_str(b, s, l);
		i = j + 1;
	}
	puts_(b, "]");
	free(log);
}

static void put_modules(struct buf *b)
{
	char *pm;
	size_t pmn;
	int e = read_file("/proc/modules", MAX_SMALL, &pm, &pmn);
	if (e)
		die("/proc/modules: %s", strerror(e));
	puts_(b, "{");
	int first = 1;
	char path[512];
	for (size_t i = 0; i < pmn;) {
		size_t j = i;
		while (j < pmn && pm[j] != '\n')
			j++;
		const char *line = pm + i;
		size_t l = j - i;
		i = j + 1;
		if (!l)
			continue;
		size_t nl = 0;
		while (nl < l && line[nl] != ' ')
			nl++;
		char name[256];
		if (nl == 0 || nl >= sizeof name)
			die("/proc/modules: bad line");
		memcpy(name, line, nl);
		name[nl] = 0;
		if (!first)
			puts_(b, ",");
		first = 0;
		put_json_cstr(b, name);
		puts_(b, ":{\"initstate\":");
		snprintf(path, sizeof path, "/sys/module/%s/initstate", name);
		put_sysfs_field(b, path);
		puts_(b, ",\"taint\":");
		snprintf(path, sizeof path, "/sys/module/%s/taint", name);
		put_sysfs_field(b, path);
		puts_(b, ",\"refcnt\":");
		snprintf(path, sizeof path, "/sys/module/%s/refcnt", name);
		char *rc;
		size_t rcn;
		char *end;
		long long v;
		v = -1; /* unreadable: -1, as modloader */
		if (!read_file(path, 64, &rc, &rcn)) {
			while (rcn && strchr(" \t\n\v\f\r", rc[rcn - 1]))
				rc[--rcn] = 0;
			errno = 0;
			long long x = strtoll(rc, &end, 10);
			if (!errno && rcn && !isspace((unsigned char)rc[0]) && end == rc + rcn)
				v = x;
			free(rc);
		}
		putf(b, "%lld", v);
		puts_(b, ",\"holders\":[");
		size_t hn;
		snprintf(path, sizeof path, "/sys/module/%s/holders", name);
		char **h = list_dir(path, &hn);
		for (size_t k = 0; k < hn; k++) {
			if (k)
				puts_(b, ",");
			put_json_cstr(b, h[k]);
		}
		free_list(h, hn);
		puts_(b, "],\"params\":{");
		size_t pn;
		snprintf(path, sizeof path, "/sys/module/%s/parameters", name);
		char **p = list_dir(path, &pn);
		for (size_t k = 0; k < pn; k++) {
			char fp[1024];
			if (k)
				puts_(b, ",");
			put_json_cstr(b, p[k]);
			puts_(b, ":");
			if ((size_t)snprintf(fp, sizeof fp, "%s/%s", path, p[k]) >= sizeof fp)
				die("%s/%s: name too long", path, p[k]);
			put_sysfs_value(b, fp);
		}
		free_list(p, pn);
		puts_(b, "},\"proc_modules\":");
		put_json_str(b, line, l);
		puts_(b, "}");
	}
	puts_(b, "}");
	free(pm);
}

static unsigned long long kernel_tainted(void)
{
	char *p;
	size_t n;
	int e = read_file("/proc/sys/kernel/tainted", 64, &p, &n);
	if (e)
		die("/proc/sys/kernel/tainted: %s", strerror(e));
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p, &end, 10);
	if (errno || end == p || (*end && *end != '\n'))
		die("/proc/sys/kernel/tainted: not a number: %s", p);
	free(p);
	return v;
}

/* ---- steps ----
 * Each op does what loader/src/scenario/mod.rs (run_step) and kernel_backend.rs do, in the same
 * order, so that both runners record the same errno for the same step: a params or name string
 * holding a NUL is EINVAL before anything else, a file or path holding one is EIO (what Rust's
 * std reports for it), open errors come before the system call. */

struct str {
	char *p;   /* NUL-terminated copy, NULL when absent ("-") */
	size_t n;  /* length of the decoded bytes */
};

/* Decode a hex field; "-" gives an absent string. */
static struct str unhex(const char *f, int step)
{
	struct str r = {NULL, 0};
	if (!strcmp(f, "-"))
		return r;
	size_t n = strlen(f);
	if (n % 2)
		die("step %d: odd hex field", step);
	char *s = malloc(n / 2 + 1);
	if (!s)
		die("out of memory");
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char c = f[2 * i + k];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v |= (unsigned)(c - 'A' + 10);
			else
				die("step %d: bad hex digit", step);
		}
		s[i] = (char)v;
	}
	s[n / 2] = 0;
	r.p = s;
	r.n = n / 2;
	return r;
}

static struct str need_hex(const char *f, int step, const char *what)
{
	struct str s = unhex(f, step);
	if (!s.p)
		die("step %d: %s must not be absent", step, what);
	return s;
}

static int has_nul(struct str s) { return s.p && strlen(s.p) != s.n; }

static unsigned long long unum(const char *f, int step, unsigned long long max)
{
	char *end;
	errno = 0;
	if (f[0] == '-')
		die("step %d: negative number '%s'", step, f);
	unsigned long long v = strtoull(f, &end, 10);
	if (errno || end == f || *end || v > max)
		die("step %d: bad number '%s'", step, f);
	return v;
}

static const char *base_dir;

/* A module file path: relative ones resolve against the scenario's (or -d) directory. */
static char *resolve(const char *p)
{
	size_t n = strlen(base_dir) + 1 + strlen(p) + 1;
	char *r = malloc(n);
	if (!r)
		die("out of memory");
	if (p[0] == '/')
		snprintf(r, n, "%s", p);
	else
		snprintf(r, n, "%s/%s", base_dir, p);
	return r;
}

/* boot APPEND: a real kernel can only be checked: every word of APPEND must be on its command
 * line, else EINVAL. */
static int do_boot(char **f, int nf, int step)
{
	if (nf != 2)
		die("step %d: boot needs 1 field", step);
	struct str app = need_hex(f[1], step, "append");
	char *cmd;
	size_t cn;
	int e = read_file("/proc/cmdline", MAX_SMALL, &cmd, &cn);
	if (e) {
		free(app.p);
		return e;
	}
	static const char ws[] = " \t\n\v\f\r";
	char *save1 = NULL;
	for (char *w = strtok_r(app.p, ws, &save1); w && !e; w = strtok_r(NULL, ws, &save1)) {
		size_t wl = strlen(w);
		int found = 0;
		for (char *c = cmd; *c && !found;) {
			c += strspn(c, ws);
			size_t l = strcspn(c, ws);
			found = l && l == wl && !memcmp(c, w, l);
			c += l;
		}
		if (!found) {
			fprintf(stderr, "runner: boot: the kernel was not booted with '%s'\n", w);
			e = EINVAL;
		}
	}
	free(cmd);
	free(app.p);
	return e;
}

/* The first descriptor number in 1000..1999 that is not open (as modloader picks it). */
static int closed_fd(void)
{
	for (int n = 1000; n < 2000; n++)
		if (fcntl(n, F_GETFD) < 0 && errno == EBADF)
			return n;
	return -1;
}

static int do_finit(char **f, int nf, int step)
{
	if (nf != 5)
		die("step %d: finit_module needs 4 fields", step);
	unsigned flags = (unsigned)unum(f[1], step, 0xffffffffull);
	const char *mode = f[2];
	struct str file = need_hex(f[3], step, "file");
	struct str params = unhex(f[4], step);
	int fd = -1, oflags, e = 0;
	if (!strcmp(mode, "rdonly"))
		oflags = O_RDONLY;
	else if (!strcmp(mode, "wronly"))
		oflags = O_WRONLY;
	else if (!strcmp(mode, "rdwr"))
		oflags = O_RDWR;
	else if (!strcmp(mode, "path"))
		oflags = O_PATH;
	else if (!strcmp(mode, "closed"))
		oflags = -1;
	else
		die("step %d: bad fd mode '%s'", step, mode);
	char *path = resolve(file.p);
	if (has_nul(params))
		e = EINVAL;
	else if (oflags == -1) {
		fd = closed_fd();
		if (fd < 0)
			e = EBADF;
	} else if (has_nul(file))
		e = EIO;
	else if ((fd = open(path, oflags | O_CLOEXEC)) < 0)
		e = errno;
	if (!e) {
		long rc = syscall(SYS_finit_module, fd, params.p, (int)flags);
		e = rc ? errno : 0;
		if (oflags != -1)
			close(fd);
	}
	free(path);
	free(file.p);
	free(params.p);
	return e;
}

static int do_init(char **f, int nf, int step)
{
	if (nf != 4)
		die("step %d: init_module needs 3 fields", step);
	struct str file = need_hex(f[1], step, "file");
	struct str params = unhex(f[2], step);
	int has_len = strcmp(f[3], "-") != 0;
	unsigned long long len = has_len ? unum(f[3], step, ~0ull) : 0;
	char *path = resolve(file.p);
	char *img = MAP_FAILED;
	size_t maplen = 0;
	int fd = -1, e = 0;
	if (has_nul(params)) {
		e = EINVAL;
		goto out;
	}
	if (has_nul(file)) {
		e = EIO;
		goto out;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		e = errno;
		goto out;
	}
	/* read the whole file: at most MAX_FILE bytes, EFBIG beyond */
	size_t cap = 1 << 20, got = 0;
	char *data = malloc(cap);
	if (!data)
		die("out of memory");
	for (;;) {
		if (got == cap) {
			if (cap > MAX_FILE) {
				free(data);
				e = EFBIG;
				goto out;
			}
			cap *= 2;
			char *q = realloc(data, cap);
			if (!q)
				die("out of memory");
			data = q;
		}
		ssize_t r = read(fd, data + got, cap - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(data);
			e = errno;
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got > MAX_FILE) {
		free(data);
		e = EFBIG;
		goto out;
	}
	if (has_len && len > MAX_FILE) {
		free(data);
		e = ENOMEM;
		goto out;
	}
	size_t ulen = has_len ? (size_t)len : got;
	/* anonymous zero pages: a len past the file reads zeros, untouched pages cost nothing */
	maplen = ulen ? ulen : 1;
	img = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (img == MAP_FAILED)
		die("mmap %zu bytes: %s", maplen, strerror(errno));
	memcpy(img, data, got < ulen ? got : ulen);
	free(data);
	long rc = syscall(SYS_init_module, img, (unsigned long)ulen, params.p);
	e = rc ? errno : 0;
out:
	if (img != MAP_FAILED)
		munmap(img, maplen);
	if (fd >= 0)
		close(fd);
	free(path);
	free(file.p);
	free(params.p);
	return e;
}

static int do_delete(char **f, int nf, int step)
{
	if (nf != 3)
		die("step %d: delete_module needs 2 fields", step);
	struct str name = need_hex(f[1], step, "name");
	unsigned flags = (unsigned)unum(f[2], step, 0xffffffffull);
	int e = 0;
	if (has_nul(name))
		e = EINVAL;
	else {
		long rc = syscall(SYS_delete_module, name.p, flags);
		e = rc ? errno : 0;
	}
	free(name.p);
	return e;
}

/* write PATH VALUE as the Rust backend's write_control does: open(O_WRONLY) (no O_CREAT, so a
 * missing control file gives the kernel's own errno), write
 * it all (a write of 0 bytes is EIO, as std's WriteZero maps), close errors ignored; PATH as
 * given (not resolved against the scenario's directory). */
static int do_write(char **f, int nf, int step)
{
	if (nf != 3)
		die("step %d: write needs 2 fields", step);
	struct str path = need_hex(f[1], step, "path");
	struct str value = need_hex(f[2], step, "value");
	int e = 0;
	if (has_nul(path))
		e = EIO;
	else {
		int fd = open(path.p, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			e = errno;
		else {
			for (size_t done = 0; done < value.n && !e;) {
				ssize_t r = write(fd, value.p + done, value.n - done);
				if (r < 0 && errno == EINTR)
					continue;
				if (r < 0)
					e = errno;
				else if (r == 0)
					e = EIO;
				else
					done += (size_t)r;
			}
			close(fd);
		}
	}
	free(path.p);
	free(value.p);
	return e;
}

/* drop_capability NAME: only CAP_SYS_MODULE (else EINVAL): PR_CAPBSET_DROP, then capset
 * without it in the effective, permitted and inheritable sets. */
static int do_drop_cap(char **f, int nf, int step)
{
	if (nf != 2)
		die("step %d: drop_capability needs 1 field", step);
	struct str name = need_hex(f[1], step, "name");
	int known = !strcmp(name.p, "CAP_SYS_MODULE") && !has_nul(name);
	free(name.p);
	if (!known)
		return EINVAL;
	int cap = CAP_SYS_MODULE;
	if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0))
		return errno;
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof data);
	if (syscall(SYS_capget, &hdr, data))
		return errno;
	data[cap / 32].effective &= ~(1u << (cap % 32));
	data[cap / 32].permitted &= ~(1u << (cap % 32));
	data[cap / 32].inheritable &= ~(1u << (cap % 32));
	if (syscall(SYS_capset, &hdr, data))
		return errno;
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *steps = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--version")) {
			puts(VERSION);
			return 0;
		} else if (!strcmp(argv[i], "-d") && i + 1 < argc)
			dir = argv[++i];
		else if (!steps && argv[i][0] != '-')
			steps = argv[i];
		else
			die("usage: runner [-d DIR] FILE.steps | --version");
	}
	if (!steps)
		die("usage: runner [-d DIR] FILE.steps | --version");
	if (!dir) {
		char *d = strdup(steps);
		if (!d)
			die("out of memory");
		char *slash = strrchr(d, '/');
		if (!slash)
			dir = ".";
		else if (slash == d)
			dir = "/";
		else {
			*slash = 0;
			dir = d;
		}
	}
	base_dir = dir;

	char *text;
	size_t tn;
	int e = read_file(steps, MAX_SMALL, &text, &tn);
	if (e)
		die("%s: %s", steps, strerror(e));
	if (memchr(text, 0, tn))
		die("%s: NUL byte", steps);
	char *save = NULL;
	char *line = strtok_r(text, "\n", &save);
	if (!line || strcmp(line, "modsim-steps 1"))
		die("%s: not a steps file (first line must be 'modsim-steps 1')", steps);
	int lineno = 0, step = 0; /* lineno: the step number (line 0 is the header) */
	struct buf out = {0};
	while ((line = strtok_r(NULL, "\n", &save))) {
		lineno++;
		char *f[8];
		int nf = 0;
		for (char *p = line;;) {
			if (nf == 8)
				die("step %d: too many fields", lineno);
			f[nf++] = p;
			char *t = strchr(p, '\t');
			if (!t)
				break;
			*t = 0;
			p = t + 1;
		}
		const char *op = f[0];
		step++;
		fflush(stdout);
		if (klogctl(5 /* SYSLOG_ACTION_CLEAR */, NULL, 0) < 0)
			die("klogctl CLEAR: %s", strerror(errno));
		int err = 0;
		if (!strcmp(op, "boot"))
			err = do_boot(f, nf, lineno);
		else if (!strcmp(op, "finit_module"))
			err = do_finit(f, nf, lineno);
		else if (!strcmp(op, "init_module"))
			err = do_init(f, nf, lineno);
		else if (!strcmp(op, "delete_module"))
			err = do_delete(f, nf, lineno);
		else if (!strcmp(op, "write"))
			err = do_write(f, nf, lineno);
		else if (!strcmp(op, "drop_capability"))
			err = do_drop_cap(f, nf, lineno);
		else
			die("step %d: unknown op '%s'", lineno, op);

		out.n = 0;
		putf(&out, "{\"step\":%d,\"op\":", step);
		put_json_cstr(&out, op);
		puts_(&out, ",\"errno\":");
		if (err)
			put_errname(&out, err);
		else
			puts_(&out, "null");
		puts_(&out, ",\"dmesg\":");
		put_dmesg(&out);
		puts_(&out, ",\"modules\":");
		put_modules(&out);
		putf(&out, ",\"kernel_tainted\":%llu}\n", kernel_tainted());
		if (fwrite(out.p, 1, out.n, stdout) != out.n || fflush(stdout))
			die("stdout: %s", strerror(errno));
	}
	free(out.p);
	free(text);
	return 0;
}
