// SPDX-License-Identifier: GPL-2.0
/*
 * kcore.c: guest tool of tests/memdump/record.sh (built static for amd64 and arm64).
 * Reads kernel virtual memory through /proc/kcore (an ELF64 core file: each PT_LOAD maps
 * p_vaddr .. p_vaddr + p_filesz to the file offset p_offset) and prints it as base64.
 *
 *   kcore module NAME SIZES   every section of a loaded module: its address (from
 *                             /sys/module/NAME/sections/) and, for the live ones, the bytes
 *   kcore vmcoreinfo          the lines of the VMCOREINFO note of /proc/kcore (KERNELOFFSET=
 *                             is the KASLR offset of the kernel image)
 *   kcore read ADDR LEN       one range (for debugging)
 * The environment variable KCORE names another core file (for testing on the host).
 *
 * SIZES (written by memdump.py from the .ko) has one line per SHF_ALLOC section: 'NAME SIZE'
 * (decimal) or 'NAME page': dump from the address up to the lowest other live section address
 * of the module above it if that lies in the same 4 KiB page, else up to the end of the page
 * (arm64 .plt and .text.ftrace_trampoline, which the kernel resizes at load).
 * Live sections: all but .init* (freed after init), .symtab and .strtab (in the init allocation).
 *
 * Output on stdout, every line marked:
 *   @@MEMDUMP@@ sec MODULE NAME 0xADDR              every section listed in sysfs, sorted by name
 *   @@MEMDUMP@@ bytes MODULE NAME 0xADDR LEN CRC32 RULE     (RULE: size or page)
 *   @@MEMDUMP@@ b BASE64                            76 base64 characters a line at most
 *   @@MEMDUMP@@ end MODULE NAME LINES               LINES: the number of 'b' lines
 *   @@MEMDUMP@@ vmcoreinfo LINE                     (kcore vmcoreinfo)
 *   @@MEMDUMP-ERR@@ MESSAGE                         then exit status 1
 * CRC32 is zlib's (polynomial 0xedb88320), in 8 hex digits.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MARK "@@MEMDUMP@@ "
#define PAGE 4096ULL
#define MAXSEC 512
#define MAXLOAD 256

static void fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	printf("@@MEMDUMP-ERR@@ kcore: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

static int kfd = -1;
static const char *kpath = "/proc/kcore";
static Elf64_Phdr loads[MAXLOAD], notes[MAXLOAD];
static int nloads, nnotes;

static void kcore_open(void)
{
	Elf64_Ehdr eh;
	int i;

	if (getenv("KCORE"))
		kpath = getenv("KCORE");
	kfd = open(kpath, O_RDONLY);
	if (kfd < 0)
		fail("open %s: %s", kpath, strerror(errno));
	if (pread(kfd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
		fail("read the ELF header of %s", kpath);
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr))
		fail("%s is not an ELF64 core file", kpath);
	for (i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		if (pread(kfd, &ph, sizeof(ph), eh.e_phoff + (uint64_t)i * sizeof(ph)) != (ssize_t)sizeof(ph))
			fail("read program header %d of %s", i, kpath);
		if (ph.p_type == PT_NOTE && nnotes < MAXLOAD)
			notes[nnotes++] = ph;
		if (ph.p_type != PT_LOAD)
			continue;
		if (nloads == MAXLOAD)
			fail("more than %d PT_LOAD headers", MAXLOAD);
		loads[nloads++] = ph;
	}
}

/* read len bytes at kernel virtual address addr, across PT_LOAD segments if need be */
static void kread(uint64_t addr, unsigned char *buf, uint64_t len)
{
	while (len) {
		const Elf64_Phdr *ph = NULL;
		uint64_t n;
		ssize_t r;
		int i;

		for (i = 0; i < nloads; i++)
			if (addr >= loads[i].p_vaddr && addr - loads[i].p_vaddr < loads[i].p_filesz) {
				ph = &loads[i];
				break;
			}
		if (!ph)
			fail("0x%" PRIx64 " is in no PT_LOAD segment of %s", addr, kpath);
		n = ph->p_vaddr + ph->p_filesz - addr;
		if (n > len)
			n = len;
		r = pread(kfd, buf, n, ph->p_offset + (addr - ph->p_vaddr));
		if (r < 0 || (uint64_t)r != n)
			fail("read %" PRIu64 " bytes at 0x%" PRIx64 " from %s: %s", n, addr, kpath,
			     r < 0 ? strerror(errno) : "short read");
		addr += n;
		buf += n;
		len -= n;
	}
}

static uint32_t crc32(const unsigned char *p, uint64_t n)
{
	uint32_t c = 0xffffffffu;
	int k;

	while (n--) {
		c ^= *p++;
		for (k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & -(c & 1));
	}
	return ~c;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* the base64 lines of buf; returns their number */
static unsigned long b64_lines(const unsigned char *p, uint64_t n)
{
	char line[80];
	unsigned long lines = 0;
	uint64_t i = 0;

	while (i < n) {
		int l = 0;

		/* 57 bytes -> 76 characters */
		while (i < n && l < 76) {
			uint32_t v = (uint32_t)p[i] << 16;
			int k = (int)(n - i < 3 ? n - i : 3);

			if (k > 1)
				v |= (uint32_t)p[i + 1] << 8;
			if (k > 2)
				v |= p[i + 2];
			line[l++] = B64[v >> 18 & 63];
			line[l++] = B64[v >> 12 & 63];
			line[l++] = k > 1 ? B64[v >> 6 & 63] : '=';
			line[l++] = k > 2 ? B64[v & 63] : '=';
			i += k;
		}
		line[l] = 0;
		printf(MARK "b %s\n", line);
		lines++;
	}
	return lines;
}

static void dump(const char *mod, const char *name, uint64_t addr, uint64_t len, const char *rule)
{
	unsigned char *buf = malloc(len ? len : 1);
	unsigned long lines;

	if (!buf)
		fail("out of memory (%" PRIu64 " bytes)", len);
	kread(addr, buf, len);
	printf(MARK "bytes %s %s 0x%" PRIx64 " %" PRIu64 " %08" PRIx32 " %s\n", mod, name, addr, len,
	       crc32(buf, len), rule);
	lines = b64_lines(buf, len);
	printf(MARK "end %s %s %lu\n", mod, name, lines);
	fflush(stdout);
	free(buf);
}

struct sec {
	char name[256];
	uint64_t addr;
	int live;
	int page;       /* the 'page' rule */
	uint64_t size;
	int sized;      /* found in SIZES */
};

static struct sec secs[MAXSEC];
static int nsecs;

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct sec *)a)->name, ((const struct sec *)b)->name);
}

static int is_live(const char *name)
{
	return strncmp(name, ".init", 5) && strcmp(name, ".symtab") && strcmp(name, ".strtab");
}

static void do_module(const char *mod, const char *sizes)
{
	char dir[512], path[1024], line[512];
	struct dirent *de;
	DIR *d;
	FILE *f;
	int i, j;

	snprintf(dir, sizeof(dir), "/sys/module/%s/sections", mod);
	d = opendir(dir);
	if (!d)
		fail("%s: %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		struct sec *s;
		char *end;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (nsecs == MAXSEC)
			fail("%s: more than %d sections", dir, MAXSEC);
		if (strlen(de->d_name) >= sizeof(s->name) || strpbrk(de->d_name, " \t\r\n"))
			fail("%s: unexpected section name '%s'", dir, de->d_name);
		s = &secs[nsecs++];
		strcpy(s->name, de->d_name);
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "r");
		if (!f || !fgets(line, sizeof(line), f))
			fail("read %s: %s", path, strerror(errno));
		fclose(f);
		errno = 0;
		s->addr = strtoull(line, &end, 16);
		if (errno || strncmp(line, "0x", 2) || (*end && *end != '\n'))
			fail("%s: not an address: '%s'", path, line);
		s->live = is_live(s->name);
	}
	closedir(d);
	if (!nsecs)
		fail("%s is empty", dir);
	qsort(secs, nsecs, sizeof(secs[0]), by_name);

	f = fopen(sizes, "r");
	if (!f)
		fail("%s: %s", sizes, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char name[256], val[64];

		if (sscanf(line, "%255s %63s", name, val) != 2)
			fail("%s: bad line '%s'", sizes, line);
		for (i = 0; i < nsecs; i++) {
			if (strcmp(secs[i].name, name))
				continue;
			secs[i].sized = 1;
			if (!strcmp(val, "page")) {
				secs[i].page = 1;
			} else {
				char *end;

				errno = 0;
				secs[i].size = strtoull(val, &end, 10);
				if (errno || *end)
					fail("%s: bad size '%s'", sizes, val);
			}
		}
	}
	fclose(f);

	for (i = 0; i < nsecs; i++)
		printf(MARK "sec %s %s 0x%" PRIx64 "\n", mod, secs[i].name, secs[i].addr);
	fflush(stdout);
	for (i = 0; i < nsecs; i++) {
		struct sec *s = &secs[i];
		uint64_t end;

		if (!s->live)
			continue;
		if (!s->sized)
			fail("%s: section %s is not in %s", mod, s->name, sizes);
		if (!s->page) {
			dump(mod, s->name, s->addr, s->size, "size");
			continue;
		}
		end = (s->addr & ~(PAGE - 1)) + PAGE;
		for (j = 0; j < nsecs; j++)
			if (j != i && secs[j].live && secs[j].addr > s->addr && secs[j].addr < end)
				end = secs[j].addr;
		dump(mod, s->name, s->addr, end - s->addr, "page");
	}
}

static void do_vmcoreinfo(void)
{
	int i, found = 0;

	for (i = 0; i < nnotes; i++) {
		uint64_t n = notes[i].p_filesz, off = 0;
		unsigned char *buf = malloc(n ? n : 1);

		if (!buf)
			fail("out of memory (%" PRIu64 " bytes)", n);
		if (pread(kfd, buf, n, notes[i].p_offset) != (ssize_t)n)
			fail("read the PT_NOTE segment of %s: %s", kpath, strerror(errno));
		while (off + 12 <= n) {
			uint32_t namesz, descsz;
			uint64_t name, desc;

			memcpy(&namesz, buf + off, 4);
			memcpy(&descsz, buf + off + 4, 4);
			name = off + 12;
			desc = name + ((namesz + 3ULL) & ~3ULL);
			off = desc + ((descsz + 3ULL) & ~3ULL);
			if (desc + descsz > n)
				break;
			if (namesz == 11 && !memcmp(buf + name, "VMCOREINFO", 11)) {
				char *p = (char *)buf + desc, *e = p + descsz;

				found = 1;
				while (p < e && *p) {
					char *nl = memchr(p, '\n', e - p);
					int len = (int)(nl ? nl - p : e - p);

					printf(MARK "vmcoreinfo %.*s\n", len, p);
					p += len + 1;
				}
			}
		}
		free(buf);
	}
	if (!found)
		fail("no VMCOREINFO note in %s", kpath);
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "module")) {
		kcore_open();
		do_module(argv[2], argv[3]);
	} else if (argc == 2 && !strcmp(argv[1], "vmcoreinfo")) {
		kcore_open();
		do_vmcoreinfo();
	} else if (argc == 4 && !strcmp(argv[1], "read")) {
		char *e1, *e2;
		uint64_t addr = strtoull(argv[2], &e1, 16), len = strtoull(argv[3], &e2, 0);

		if (*e1 || *e2)
			fail("usage: kcore read HEXADDR LEN");
		kcore_open();
		dump("-", "-", addr, len, "size");
	} else {
		fprintf(stderr, "usage: kcore module NAME SIZES | kcore vmcoreinfo | kcore read HEXADDR LEN\n");
		return 2;
	}
	return 0;
}
