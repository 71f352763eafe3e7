#!/usr/bin/env python3
"""memdump.py: the host side of tests/memdump/record.sh (python3 stdlib only).

  memdump.py prepare KERNEL KO_DIR OUTDIR
      write into OUTDIR (the initramfs' /m/): 'load' (one line per module, in load order:
      'MODULE FILE load|refuse PARAMS...'; refuse: this kernel is expected to refuse it, see
      REFUSED), '<module>.sizes' (for guest/kcore.c: 'NAME SIZE' per section of the .ko with a
      size, 'NAME page' for the sections the kernel resizes at load: arm64 .plt and
      .text.ftrace_trampoline) and 'syms' (the symbol names the guest looks up in
      /proc/kallsyms, one a line: every undefined symbol of the modules, EXTRA_SYMS and _text)
  memdump.py extract KERNEL KO_DIR IMAGE CONSOLE.log MACHINE OUT.json
      take the marked lines out of the console log, check them (every base64 block complete,
      length and CRC32 as the guest computed them, every live section of every module dumped,
      lengths as in the .ko), resolve the symbols and write OUT.json (see
      tests/fixtures/memdump/README.md). Exit 1 with a message on any error, nothing written.

Symbols, all from the one boot:
* a kernel symbol: its /proc/kallsyms line. arm64 6.1 has no CONFIG_KALLSYMS_ALL, so exported
  data symbols (param_ops_int ...) and _text are missing there; on arm64 they come from the
  export table of the kernel image IMAGE (a flat Image that starts at _text): the PREL32 struct
  kernel_symbol {value_offset, name_offset, namespace_offset} whose name points at the symbol's
  name gives the value's offset in the Image; address = runtime _text + offset, where runtime
  _text = kallsyms address - offset must be one and the same for every symbol that both have
  (and equal kallsyms' _text when it has one). Debian's /boot/System.map is a one-line stub (the
  real one is in the -dbg package, 800 MB), so it is not used.
* a symbol of another fixture module: its kallsyms line ([module]), else the exporter's section
  address + st_value in its .ko.
* an absent weak symbol: 0x0.
The slide is KERNELOFFSET of the VMCOREINFO note of /proc/kcore (the kernel's kaslr_offset());
runtime _text - slide must be the link-time _text of LINK_TEXT.
"""

import array
import base64
import json
import os
import re
import struct
import sys
import zlib

RECORDER = "tests/memdump/record.sh"
# load order, one boot per kernel
MP_TYPES_PARAMS = ("p_bool=n p_invbool=n p_bint=0 p_byte=7 p_short=-7 p_ushort=7 p_int=-42 "
                   "p_uint=42 p_long=-4200000000 p_ulong=4200000000 p_ullong=123456789012345 "
                   "p_hexint=0x1234 p_charp=world p_string=abc p_intarr=9,8 p_charparr=x,y "
                   "p_hidden=3 p_custom=5")
MODULES = [
    ("mp_lib", ""),
    ("mp_export", ""),
    ("mp_use", ""),
    ("mp_use_ns", ""),
    ("mp_plt", ""),
    ("mp_weak", ""),
    ("mp_noexit", ""),
    ("mp_patch", ""),
    ("mp_types", MP_TYPES_PARAMS),
]
# modules the kernel refuses (as the conformance recordings show: symbols.jsonl): arch -> {module:
# a line expected in the messages}. arm64 has no R_AARCH64_ADR_GOT_PAGE (312) for modules, which
# the weak undefined symbol is reached through.
REFUSED = {"arm64": {"mp_weak": "unsupported RELA relocation: 312"}}
# kernel symbols the simulator needs for the kernel's own post-relocation patches (when the
# kernel has them)
EXTRA_SYMS = ("ftrace_caller", "ftrace_regs_caller", "ftrace_nop_ops", "__fentry__",
              "__x86_return_thunk", "__x86_indirect_thunk_array", "x86_return_thunk")
# arm64: sized by the kernel at load (module_frob_arch_sections), dumped to the next section or
# the end of the 4 KiB page
PAGE_RULE = {"arm64": (".plt", ".text.ftrace_trampoline")}
PAGE = 4096
# link-time address of _text: x86_64 __START_KERNEL_map + CONFIG_PHYSICAL_START; arm64
# KIMAGE_VADDR = MODULES_END = _PAGE_END(VA_BITS_MIN) + MODULES_VSIZE (asm/memory.h: 6.1 48-bit,
# 128 MiB; 6.12 VA_BITS_MIN 48, 2 GiB)
# Keyed by (series, arch): a kernel is named <anything>-<series>-<arch>.
LINK_TEXT = {
    ("6.1", "amd64"): 0xffffffff81000000,
    ("6.12", "amd64"): 0xffffffff81000000,
    ("6.1", "arm64"): 0xffff800008000000,
    ("6.12", "arm64"): 0xffff800080000000,
}
MARK = b"@@MEMDUMP@@ "
ERR = b"@@MEMDUMP-ERR@@ "
DONE = b"@@MEMDUMP-DONE@@ "

SHN_UNDEF = 0
SHN_LORESERVE = 0xff00
STB_WEAK = 2
SHT_SYMTAB = 2


class Bad(Exception):
    pass


def karch(kernel):
    return kernel.rsplit("-", 1)[1]


def is_live(name):
    return not name.startswith(".init") and name not in (".symtab", ".strtab")


class Ko:
    """The section headers and symbol table of an ELF64 little-endian relocatable file."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            d = f.read()
        if d[:4] != b"\x7fELF" or d[4] != 2 or d[5] != 1:
            raise Bad(f"{path}: not an ELF64 little-endian file")
        shoff, = struct.unpack_from("<Q", d, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3a)
        if shentsize != 64 or shoff + shnum * 64 > len(d):
            raise Bad(f"{path}: bad section header table")
        hdrs = [struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * 64) for i in range(shnum)]
        stroff = hdrs[shstrndx][4]

        def cstr(off):
            return d[off:d.index(b"\0", off)].decode()

        # (name, type, flags, size)
        self.sections = [(cstr(stroff + h[0]), h[1], h[2], h[5]) for h in hdrs]
        self.symbols = []  # (name, value, shndx, bind)
        for h in hdrs:
            if h[1] != SHT_SYMTAB:
                continue
            strtab = hdrs[h[6]][4]
            for off in range(h[4], h[4] + h[5], 24):
                st_name, st_info, _, st_shndx, st_value, _ = struct.unpack_from("<IBBHQQ", d, off)
                self.symbols.append((cstr(strtab + st_name), st_value, st_shndx, st_info >> 4))

    def undefined(self):
        """{name: weak} of the undefined symbols"""
        return {n: b == STB_WEAK for n, _, shndx, b in self.symbols if n and shndx == SHN_UNDEF}

    def defined(self, name):
        """(section name, st_value) of a global or weak symbol defined here, or None"""
        for n, v, shndx, b in self.symbols:
            if n == name and shndx != SHN_UNDEF and shndx < SHN_LORESERVE and b in (1, STB_WEAK):
                return self.sections[shndx][0], v
        return None


def load_kos(ko_dir):
    return {m: Ko(os.path.join(ko_dir, m + ".ko")) for m, _ in MODULES}


def one_addr(entries, what):
    """the address of a name from [(addr, type)]: unique, else the unique global one"""
    addrs = {a for a, _ in entries}
    if len(addrs) > 1:
        addrs = {a for a, t in entries if t.isupper()}
    if len(addrs) != 1:
        raise Bad(f"{what}: {len(entries)} entries, no unique address: "
                  + ", ".join(f"{a:#x} {t}" for a, t in entries))
    return addrs.pop()


def wanted_syms(kos):
    names = set(EXTRA_SYMS) | {"_text"}
    for ko in kos.values():
        names |= set(ko.undefined())
    return sorted(names)


def expected(kernel):
    """the modules to be loaded and the modules to be refused, in load order"""
    ref = REFUSED.get(karch(kernel), {})
    return [m for m, _ in MODULES if m not in ref], [m for m, _ in MODULES if m in ref]


def cmd_prepare(kernel, ko_dir, outdir):
    kos = load_kos(ko_dir)
    page = PAGE_RULE.get(karch(kernel), ())
    refused = REFUSED.get(karch(kernel), {})
    with open(os.path.join(outdir, "load"), "w") as f:
        for m, params in MODULES:
            f.write(f"{m} {m}.ko {'refuse' if m in refused else 'load'}{' ' + params if params else ''}\n")
    for m, ko in kos.items():
        seen = set()
        with open(os.path.join(outdir, m + ".sizes"), "w") as f:
            for name, _, _, size in ko.sections:
                if not name or not size:
                    continue
                if name in seen:
                    raise Bad(f"{ko.path}: two sections named {name}")
                seen.add(name)
                f.write(f"{name} {'page' if name in page else size}\n")
    with open(os.path.join(outdir, "syms"), "w") as f:
        for n in wanted_syms(kos):
            f.write(n + "\n")


def image_exports(image, names):
    """{name: offset}: the offsets, from the start of a flat kernel Image (arm64: offset 0 is
    _text), of the values of the exported symbols in names, from the PREL32 struct kernel_symbol
    entries of __ksymtab and __ksymtab_gpl: {int value_offset; int name_offset; int
    namespace_offset;}, each relative to its own field, 4-byte aligned, in arrays. An entry
    counts if its name field points at the name (NUL before and after) and a neighbouring entry's
    name field points at another NUL-terminated identifier; two entries for a name are an error."""
    with open(image, "rb") as f:
        d = f.read()
    if d[0x38:0x3c] != b"ARM\x64":
        raise Bad(f"{image}: not an arm64 Image")
    strs = {}  # offset of a name string -> name
    for n in names:
        pat = b"\0" + n.encode() + b"\0"
        i = d.find(pat)
        while i >= 0:
            strs[i + 1] = n
            i = d.find(pat, i + 1)
    a = array.array("i")
    a.frombytes(d[:len(d) // 4 * 4])
    if sys.byteorder != "little":
        a.byteswap()
    ident = re.compile(rb"[A-Za-z_][A-Za-z0-9_.]*\0")

    def names_string(j):
        t = 4 * j + a[j]
        return 0 < t < len(d) and d[t - 1] == 0 and ident.match(d, t) is not None

    out = {}
    for j in range(4, len(a) - 4):  # j: a name_offset field
        t = 4 * j + a[j]
        if t in strs:
            v = 4 * (j - 1) + a[j - 1]
            if 0 <= v < len(d) and (names_string(j - 3) or names_string(j + 3)):
                out.setdefault(strs[t], set()).add(v)
    for n, vs in out.items():
        if len(vs) != 1:
            raise Bad(f"{image}: {len(vs)} export table entries for {n}: "
                      + ", ".join(f"{v:#x}" for v in sorted(vs)))
    return {n: vs.pop() for n, vs in out.items()}


def parse_console(path):
    """the marked lines: (meta {key: value}, vmcoreinfo {key: value}, loaded [module],
    ksyms [[words]], sections
    {module: {name: addr}}, dumps {module: {name: (addr, bytes, rule)}}, errors, done rc)"""
    with open(path, "rb") as f:
        data = f.read()
    meta, vmci, loaded, ksyms, secs, dumps, errs, done = {}, {}, [], [], {}, {}, [], None
    refused = {}
    cur = None  # [module, name, addr, len, crc, rule, [b64 lines]]
    for n, raw in enumerate(data.split(b"\n"), 1):
        raw = raw.rstrip(b"\r")
        where = f"{path}:{n}"
        i = raw.find(ERR)
        if i >= 0:
            errs.append(raw[i + len(ERR):].decode(errors="replace"))
            continue
        i = raw.find(DONE)
        if i >= 0:
            m = re.fullmatch(rb"rc=(\d+)", raw[i + len(DONE):])
            if not m:
                raise Bad(f"{where}: bad done line {raw!r}")
            done = int(m.group(1))
            continue
        i = raw.find(MARK)
        if i < 0:  # boot noise, even between the lines of a dump (the CRC32 covers the data)
            continue
        try:
            line = raw[i + len(MARK):].decode("ascii")
        except UnicodeDecodeError:
            raise Bad(f"{where}: not ASCII: {raw!r}")
        w = line.split()
        if not w:
            raise Bad(f"{where}: empty marked line")
        kind = w[0]
        if cur is not None and kind not in ("b", "end"):
            raise Bad(f"{where}: '{kind}' line inside the bytes of {cur[0]} {cur[1]}")
        if kind == "meta" and len(w) >= 2:
            meta[w[1]] = " ".join(w[2:])
        elif kind == "vmcoreinfo" and len(w) >= 2 and "=" in w[1]:
            k, v = " ".join(w[1:]).split("=", 1)
            vmci[k] = v
        elif kind == "refused" and len(w) >= 2:
            msg = re.sub(r"^\[ *\d+\.\d+\] ", "", " ".join(w[2:]))
            r = refused.setdefault(w[1], [])
            if msg and msg not in r:
                r.append(msg)
        elif kind == "loaded" and len(w) == 2:
            loaded.append(w[1])
        elif kind == "ksym" and len(w) in (4, 5):
            ksyms.append(w[1:])
        elif kind == "sec" and len(w) == 4:
            s = secs.setdefault(w[1], {})
            if w[2] in s:
                raise Bad(f"{where}: section {w[1]} {w[2]} twice")
            s[w[2]] = int(w[3], 16)
        elif kind == "bytes" and len(w) == 7:
            cur = [w[1], w[2], int(w[3], 16), int(w[4]), int(w[5], 16), w[6], []]
        elif kind == "b" and len(w) == 2 and cur is not None:
            if len(w[1]) > 76 or not re.fullmatch(r"[A-Za-z0-9+/]+=*", w[1]):
                raise Bad(f"{where}: bad base64 line {w[1]!r}")
            cur[6].append(w[1])
        elif kind == "end" and len(w) == 4 and cur is not None:
            mod, name, addr, ln, crc, rule, lines = cur
            if (w[1], w[2]) != (mod, name) or int(w[3]) != len(lines):
                raise Bad(f"{where}: end of {w[1]} {w[2]} ({w[3]} lines) after {len(lines)} "
                          f"lines of {mod} {name}")
            b = base64.b64decode("".join(lines), validate=True)
            if len(b) != ln or zlib.crc32(b) != crc:
                raise Bad(f"{where}: {mod} {name}: {len(b)} bytes, CRC32 {zlib.crc32(b):08x}; "
                          f"the guest said {ln} bytes, CRC32 {crc:08x}")
            d = dumps.setdefault(mod, {})
            if name in d:
                raise Bad(f"{where}: bytes of {mod} {name} twice")
            d[name] = (addr, b, rule)
            cur = None
        else:
            raise Bad(f"{where}: bad marked line {line!r}")
    if cur is not None:
        raise Bad(f"{path}: the bytes of {cur[0]} {cur[1]} are not complete")
    meta["refused"] = refused
    return meta, vmci, loaded, ksyms, secs, dumps, errs, done


def cmd_extract(kernel, ko_dir, image, log, machine, out):
    arch = karch(kernel)
    kos = load_kos(ko_dir)
    meta, vmci, loaded, ksyms, secs, dumps, errs, done = parse_console(log)
    if errs:
        raise Bad("the guest reported errors:\n  " + "\n  ".join(errs))
    if done is None:
        raise Bad("no done marker (the guest did not finish)")
    if done != 0:
        raise Bad(f"the guest finished with rc={done}")
    order, refuse = expected(kernel)
    if loaded != order:
        raise Bad(f"modules loaded: {loaded}, expected {order}")
    refused = meta["refused"]
    if sorted(refused) != sorted(refuse):
        raise Bad(f"modules refused: {sorted(refused)}, expected {refuse}")
    for m in refuse:
        want = REFUSED[arch][m]
        if not any(want in line for line in refused[m]):
            raise Bad(f"{m} refused, but no '{want}' in {refused[m]}")
    for k in ("uname", "possible"):
        if not meta.get(k):
            raise Bad(f"no meta {k} line")

    # ---- kernel symbols ----
    kern, mods = {}, {}  # name -> [(addr, type)]; (module, name) -> [(addr, type)]
    for w in ksyms:
        a, t, name = int(w[0], 16), w[1], w[2]
        if len(w) == 4:
            if not re.fullmatch(r"\[\w+\]", w[3]):
                raise Bad(f"bad kallsyms line {' '.join(w)}")
            mods.setdefault((w[3][1:-1], name), []).append((a, t))
        else:
            kern.setdefault(name, []).append((a, t))
    kaddr = {n: one_addr(e, f"kallsyms {n}") for n, e in kern.items()}
    if any(a == 0 for a in kaddr.values()):
        raise Bad("kallsyms gives 0 for a symbol (kptr_restrict?)")
    if not re.fullmatch(r"[0-9a-f]+", vmci.get("KERNELOFFSET", "")):
        raise Bad(f"no KERNELOFFSET in VMCOREINFO: {vmci.get('KERNELOFFSET')!r}")
    slide = int(vmci["KERNELOFFSET"], 16)
    text = kaddr.get("_text")  # arm64 6.1 (no KALLSYMS_ALL) has no _text in kallsyms
    exp, checked = {}, []
    if arch == "arm64":
        offs = image_exports(image, wanted_syms(kos))
        bases = {}  # runtime _text = kallsyms address - offset in the Image
        for n in sorted(offs):
            if n in kaddr:
                bases.setdefault((kaddr[n] - offs[n]) % 2**64, []).append(n)
        if len(bases) != 1:
            raise Bad("the Image's export table and kallsyms disagree: _text would be "
                      + "; ".join(f"{b:#x} ({' '.join(ns)})" for b, ns in sorted(bases.items())))
        base, checked = bases.popitem()
        if text is not None and base != text:
            raise Bad(f"kallsyms _text {text:#x}, the Image's export table gives {base:#x}")
        text = base
        exp = {n: (base + o) % 2**64 for n, o in offs.items()}
    if text is None:
        raise Bad("no _text in kallsyms")
    link_text = LINK_TEXT[(kernel.rsplit("-", 2)[1], arch)]
    if (text - slide) % 2**64 != link_text:
        raise Bad(f"_text {text:#x} - KERNELOFFSET {slide:#x} = {(text - slide) % 2**64:#x}, "
                  f"not the link-time _text {link_text:#x}")

    from_image, from_ko = set(), set()

    def resolve(mod, name, weak):
        if name in kaddr:
            return kaddr[name]
        if name in exp:
            from_image.add(name)
            return exp[name]
        hits = {}
        for (m, n), entries in mods.items():
            if n == name and m != mod:
                hits[m] = one_addr(entries, f"kallsyms {name} [{m}]")
        if len(hits) > 1:
            raise Bad(f"{mod}: {name} is defined by several modules: {sorted(hits)}")
        if hits:
            return hits.popitem()[1]
        owners = []
        for m in order[:order.index(mod)]:
            d = kos[m].defined(name)
            if d:
                owners.append((m, d))
        if len(owners) > 1:
            raise Bad(f"{mod}: {name} is defined by several modules: {[o[0] for o in owners]}")
        if owners:
            m, (sec, value) = owners[0]
            if sec not in secs.get(m, {}):
                raise Bad(f"{mod}: {name}: section {sec} of {m} has no address")
            from_ko.add(f"{name} ({m} {sec}+{value:#x})")
            return secs[m][sec] + value
        if weak:
            return 0
        raise Bad(f"{mod}: symbol {name} not found (kallsyms, export table, fixture modules)")

    # ---- modules ----
    page = PAGE_RULE.get(arch, ())
    modules = []
    for mod, params in MODULES:
        if mod not in order:
            continue
        ko = kos[mod]
        sizes = {n: s for n, _, _, s in ko.sections if n}
        ms = secs.get(mod)
        if not ms:
            raise Bad(f"{mod}: no sections")
        live = sorted(n for n in ms if is_live(n))
        md = dumps.get(mod, {})
        if sorted(md) != live:
            raise Bad(f"{mod}: bytes of {sorted(md)}, live sections {live}")
        for n in live:
            addr, b, rule = md[n]
            if addr != ms[n]:
                raise Bad(f"{mod} {n}: dumped at {addr:#x}, the section is at {ms[n]:#x}")
            if n in page:
                end = (addr // PAGE + 1) * PAGE
                if rule != "page" or not 0 < len(b) <= end - addr:
                    raise Bad(f"{mod} {n}: {len(b)} bytes ({rule}) at {addr:#x}, expected the rest of the page")
            elif rule != "size" or len(b) != sizes.get(n):
                raise Bad(f"{mod} {n}: {len(b)} bytes ({rule}), the .ko says {sizes.get(n)}")
        syms = {}
        und = ko.undefined()
        for n in EXTRA_SYMS:
            if n in kaddr or n in exp:
                und.setdefault(n, False)
        for n in sorted(und):
            syms[n] = f"{resolve(mod, n, und[n]):#x}"
        modules.append({
            "module": mod,
            "file": mod + ".ko",
            "params": params,
            "sections": {n: f"{ms[n]:#x}" for n in sorted(ms)},
            "symbols": syms,
            "bytes": {n: base64.b64encode(md[n][1]).decode() for n in live},
        })
    doc = {
        "meta": {
            "kernel": kernel,
            "uname": meta["uname"],
            "recorder": RECORDER,
            "machine": machine,
            "append": os.environ.get("MEMDUMP_APPEND", ""),
            "possible_cpus": meta["possible"],
            "slide": f"{slide:#x}",
            "refused": {m: refused[m] for m in refuse},
        },
        "modules": modules,
    }
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, out)
    nbytes = sum(len(md[1]) for m in dumps.values() for md in m.values())
    print(f"memdump: {kernel}: {len(modules)} modules, {sum(len(m['sections']) for m in modules)} "
          f"sections, {nbytes} bytes dumped, slide {slide:#x}"
          + (f"; the Image's export table agrees with kallsyms on {len(checked)} symbols"
             if checked else ""))
    if from_image:
        print(f"memdump: {kernel}: not in kallsyms, from the Image's export table: "
              f"{' '.join(sorted(from_image))}")
    if from_ko:
        print(f"memdump: {kernel}: from the exporter's .ko (not in kallsyms): {', '.join(sorted(from_ko))}")


def main(argv):
    try:
        if len(argv) == 5 and argv[1] == "prepare":
            cmd_prepare(*argv[2:])
        elif len(argv) == 8 and argv[1] == "extract":
            cmd_extract(*argv[2:])
        else:
            sys.stderr.write(__doc__)
            return 2
    except (Bad, OSError, ValueError) as e:
        print(f"memdump.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
