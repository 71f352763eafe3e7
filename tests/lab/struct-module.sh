#!/bin/bash
# struct-module.sh [KERNEL...]: the top-level members of `struct module` of each target kernel
# (default: all of tests/lab/kernels.env), read from the kernel's own BTF, written to
# tests/fixtures/memdump/struct_module/<kernel>.tsv as `offset<TAB>size<TAB>member` lines
# (bytes, decimal, in offset order) after a header comment that gives sizeof(struct module).
#
# Where the BTF comes from (the kernel trees extracted by fetch-kernels.sh):
#   6.12  the .BTF section of usr/src/linux-headers-<release>/vmlinux (a BTF-only ELF); the same
#         blob is also cut out of boot/vmlinuz-<release> and must be byte-identical.
#   6.1   no vmlinux in the headers, and Debian's boot/System.map is a stub (no __start_BTF), so
#         the blob comes from boot/vmlinuz-<release>: amd64 bzImage -> the compressed payload
#         named by the setup header (payload_offset/payload_length), decompressed (xz or zstd)
#         to the vmlinux ELF -> its .BTF section; arm64 Image (raw; gunzipped first if gzip) ->
#         the one well-formed BTF blob found by its header (magic 9f eb 01 00, hdr_len 24).
# The BTF is parsed here (python3 stdlib; Documentation/bpf/btf.rst); pahole, when installed,
# cross-checks sizeof and the top-level offsets. Temporary files: $LAB/struct-module/<kernel>/.
#
# Members of an anonymous struct/union at the top level are listed each with its own offset
# (the way C names them: mod->member); a bitfield gets the bytes that contain its bits.
#
# Fails loudly unless, on each kernel:
#   - name/init/exit offsets and sizeof equal sim/profiles/<kernel>.json.gz ("this_module",
#     "sizeof_struct_module");
#   - sizeof equals the size of .gnu.linkonce.this_module in tests/fixtures/ko/<kernel>/mp_lib.ko,
#     whose name field holds "mp_lib";
#   - the relocations of .gnu.linkonce.this_module in tests/fixtures/ko/<kernel>/mp_initret.ko
#     against init_module/cleanup_module sit at the init/exit offsets.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || read -r -a kernels <<<"$KERNELS"
for k in "${kernels[@]}"; do check_kernel "$k"; done
for t in python3 xz zstd gzip; do command -v $t >/dev/null || die "$t not found"; done

# STRUCT_MODULE_OUT, FIXTURES_DIR: other directories (tests/lab/current.sh, with KERNEL_SET; a
# kernel without an embedded profile is checked against its fixtures only).
OUT=${STRUCT_MODULE_OUT:-$REPO/tests/fixtures/memdump/struct_module}
KO_DIR=${FIXTURES_DIR:-$REPO/tests/fixtures/ko}
mkdir -p "$OUT"
for k in "${kernels[@]}"; do
	rel=$(krel "$k")
	work=$LAB/struct-module/$k
	mkdir -p "$work"
	image=$(kimage "$k") headers=$(kheaders "$k")
	[ -f "$image" ] || die "$k: no $image (run tests/lab/fetch-kernels.sh)"
	python3 - "$k" "$rel" "$image" "$headers" "$work" "$OUT/$k.tsv" \
		"$REPO/sim/profiles/$k.json.gz" "$KO_DIR/$k" <<'PY' || die "$k: failed"
import gzip, json, os, re, shutil, struct, subprocess, sys

kernel, rel, image, headers, work, out, profile, kodir = sys.argv[1:]

def fail(msg):
    sys.exit(f"struct-module.sh: {kernel}: {msg}")

def note(msg):
    print(f"{kernel}: {msg}", file=sys.stderr)

# ---- ELF (64-bit little-endian only: both target architectures) ----
def elf_sections(data, what):
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        fail(f"{what}: not a 64-bit little-endian ELF")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3a)
    secs = []
    for i in range(shnum):
        secs.append(struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize))
    stroff = secs[shstrndx][4]
    res = {}
    for i, s in enumerate(secs):
        end = data.index(b"\0", stroff + s[0])
        name = data[stroff + s[0]:end].decode()
        # name -> (index, type, offset, size, link, info, entsize)
        res[name] = (i, s[1], s[4], s[5], s[6], s[7], s[9])
    return res

def elf_section(data, name, what):
    secs = elf_sections(data, what)
    if name not in secs:
        fail(f"{what}: no {name} section")
    _, _, off, size, *_ = secs[name]
    return data[off:off + size]

# ---- BTF ----
BTF_MAGIC = b"\x9f\xeb\x01\x00"
HDR = "<HBBIIIII"  # magic version flags hdr_len type_off type_len str_off str_len
KIND_EXTRA = {1: 4, 2: 0, 3: 12, 7: 0, 8: 0, 9: 0, 10: 0, 11: 0, 12: 0, 14: 4, 16: 0, 17: 4, 18: 0}
KIND_VLEN = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}

def btf_parse(blob):
    """-> (types, strings) or None if the blob is not a well-formed BTF. types[id] = (kind,
    kind_flag, name_off, size_or_type, extra bytes); id 0 (void) is None."""
    if len(blob) < 24 or blob[:4] != BTF_MAGIC:
        return None
    _, _, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(HDR, blob)
    if hdr_len != 24 or len(blob) != hdr_len + max(type_off + type_len, str_off + str_len):
        return None
    tsec = blob[hdr_len + type_off:hdr_len + type_off + type_len]
    strs = blob[hdr_len + str_off:hdr_len + str_off + str_len]
    if not strs or strs[0] != 0 or strs[-1] != 0:
        return None
    types, p = [None], 0
    while p < len(tsec):
        if p + 12 > len(tsec):
            return None
        name_off, info, st = struct.unpack_from("<III", tsec, p)
        kind, vlen, kflag = (info >> 24) & 0x1f, info & 0xffff, info >> 31
        if kind in KIND_EXTRA:
            n = KIND_EXTRA[kind]
        elif kind in KIND_VLEN:
            n = KIND_VLEN[kind] * vlen
        else:
            return None
        if name_off >= len(strs) or p + 12 + n > len(tsec):
            return None
        types.append((kind, kflag, name_off, st, tsec[p + 12:p + 12 + n]))
        p += 12 + n
    return types, strs

def btf_blob_at(data, off):
    """The BTF blob whose header starts at data[off], cut to its header's lengths, or None."""
    if data[off:off + 4] != BTF_MAGIC or off + 24 > len(data):
        return None
    _, _, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(HDR, data, off)
    if hdr_len != 24 or type_off != 0 or str_off != type_len:
        return None
    blob = data[off:off + 24 + str_off + str_len]
    return blob if btf_parse(blob) else None

def btf_in_raw(data, what):
    """The one well-formed BTF blob in a raw kernel image."""
    found, off = [], data.find(BTF_MAGIC)
    while off >= 0:
        b = btf_blob_at(data, off)
        if b:
            found.append((off, b))
        off = data.find(BTF_MAGIC, off + 1)
    if len(found) != 1:
        fail(f"{what}: {len(found)} well-formed BTF blobs (at {[o for o, _ in found]}), want 1")
    note(f"BTF blob at file offset {found[0][0]:#x} of {what}, {len(found[0][1])} bytes")
    return found[0][1]

def btf_from_image(path):
    data = open(path, "rb").read()
    base = os.path.basename(path)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
        base += " (gunzipped)"
        note(f"{base} is gzip-compressed: gunzipped")
    if data[0x202:0x206] == b"HdrS":  # x86 bzImage: the setup header names the payload
        setup_sects = data[0x1f1] or 4
        payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
        start = (setup_sects + 1) * 512 + payload_offset
        payload = data[start:start + payload_length]
        if payload[:6] == b"\xfd7zXZ\x00":
            cmd, comp = ["xz", "-dc", "--single-stream"], "xz"
        elif payload[:4] == b"\x28\xb5\x2f\xfd":
            cmd, comp = ["zstd", "-dc"], "zstd"
        else:
            fail(f"{base}: bzImage payload is neither xz nor zstd ({payload[:6].hex()})")
        # the payload ends with the decompressed size (le32, scripts/Makefile.lib size_append)
        payload, want = payload[:-4], struct.unpack_from("<I", payload, len(payload) - 4)[0]
        vmlinux = subprocess.run(cmd, input=payload, stdout=subprocess.PIPE, check=True).stdout
        if len(vmlinux) != want:
            fail(f"{base}: decompressed payload is {len(vmlinux)} bytes, size_append says {want}")
        path_v = os.path.join(work, "vmlinux")
        open(path_v, "wb").write(vmlinux)
        note(f"{base}: bzImage payload ({comp}, {payload_length} bytes at {start:#x}) -> "
             f"{path_v}, {len(vmlinux)} bytes")
        btf = elf_section(vmlinux, ".BTF", "decompressed vmlinux")
        if btf_parse(btf) is None:
            fail("the .BTF section of the decompressed vmlinux is not well-formed BTF")
        note(f".BTF section of the decompressed vmlinux, {len(btf)} bytes")
        return btf, f"the .BTF section of the vmlinux in the {comp} payload of boot/{base}"
    if data[0x38:0x3c] == b"ARM\x64":  # arm64 Image: raw, the BTF blob is in it as is
        return btf_in_raw(data, base), f"the BTF blob in the raw arm64 Image boot/{base}"
    fail(f"{base}: neither a bzImage nor an arm64 Image")

# ---- the BTF of this kernel ----
vmlinux_h = os.path.join(headers, "vmlinux")
img_btf, img_source = btf_from_image(image)
if os.path.exists(vmlinux_h):
    btf = elf_section(open(vmlinux_h, "rb").read(), ".BTF", vmlinux_h)
    if btf_parse(btf) is None:
        fail(f"the .BTF section of {vmlinux_h} is not well-formed BTF")
    if btf != img_btf:
        fail(f"the .BTF of {vmlinux_h} differs from the BTF in {image}")
    source = f"the .BTF section of usr/src/linux-headers-{rel}/vmlinux (= the blob in boot/vmlinuz-{rel})"
    note(f".BTF section of the headers' vmlinux, {len(btf)} bytes: identical to the image's")
else:
    btf = img_btf
    source = img_source
btf_file = os.path.join(work, "vmlinux.btf")
open(btf_file, "wb").write(btf)
types, strs = btf_parse(btf)

def name(off):
    return strs[off:strs.index(b"\0", off)].decode()

MODIFIERS = (8, 9, 10, 11, 18)  # typedef volatile const restrict type_tag

def resolve(tid):
    while types[tid] and types[tid][0] in MODIFIERS:
        tid = types[tid][3]
    return tid

def sizeof(tid):
    tid = resolve(tid)
    t = types[tid]
    if t is None:
        fail("sizeof(void)")
    kind = t[0]
    if kind == 2:
        return 8
    if kind == 3:
        elem, _, nelems = struct.unpack("<III", t[4])
        return nelems * sizeof(elem)
    if kind in (1, 4, 5, 6, 16, 19):
        return t[3]
    fail(f"sizeof type {tid} of kind {kind}")

def members(tid):
    """-> [(name, bit offset, bitfield size or 0, type id)]"""
    kind, kflag, _, _, extra = types[tid]
    res = []
    for i in range(0, len(extra), 12):
        n, mt, off = struct.unpack_from("<III", extra, i)
        bits = 0
        if kflag:
            bits, off = off >> 24, off & 0xffffff
        res.append((name(n), off, bits, mt))
    return res

cands = [i for i, t in enumerate(types)
         if t and t[0] == 4 and name(t[2]) == "module" and t[4]]
if len(cands) != 1:
    fail(f"{len(cands)} 'struct module' definitions in the BTF, want 1")
smod = cands[0]
size = types[smod][3]

rows, anon = [], 0  # (offset, size, name)
def flatten(tid, base_bits, prefix_anon):
    global anon
    for n, off, bits, mt in members(tid):
        off += base_bits
        if not n:
            inner = resolve(mt)
            if types[inner][0] not in (4, 5):
                fail(f"anonymous member of kind {types[inner][0]}")
            anon += 1
            flatten(inner, off, True)
            continue
        if bits:
            start, end = off // 8, (off + bits + 7) // 8
        else:
            if off % 8:
                fail(f"member {n} at bit offset {off} is not byte-aligned")
            start, end = off // 8, off // 8 + sizeof(mt)
        if end > size:
            fail(f"member {n} ends at {end}, past sizeof {size}")
        rows.append((start, end - start, n, bits))
flatten(smod, 0, False)
rows.sort(key=lambda r: r[0])  # stable: declaration order at equal offsets
by_name = {}
for off, sz, n, _ in rows:
    if n in by_name:
        fail(f"member {n} twice")
    by_name[n] = off
nbits = sum(1 for r in rows if r[3])
note(f"struct module (BTF type {smod}): sizeof {size}, {len(rows)} members"
     f" ({anon} anonymous struct/union(s) flattened, {nbits} bitfield(s))")

# ---- checks ----
if os.path.exists(profile):
    prof = json.loads(gzip.open(profile).read())
    tm, psize = prof["this_module"], prof["sizeof_struct_module"]
    for f in ("name", "init", "exit"):
        if by_name.get(f) != tm[f]:
            fail(f"offsetof(struct module, {f}) = {by_name.get(f)} in the BTF, {tm[f]} in {profile}")
    if size != psize:
        fail(f"sizeof(struct module) = {size} in the BTF, {psize} in {profile}")
    note(f"profile agrees: name {tm['name']}, init {tm['init']}, exit {tm['exit']}, sizeof {psize}")

ko = os.path.join(kodir, "mp_lib.ko")
kd = open(ko, "rb").read()
sec = elf_section(kd, ".gnu.linkonce.this_module", ko)
if len(sec) != size:
    fail(f"{ko}: .gnu.linkonce.this_module is {len(sec)} bytes, sizeof(struct module) {size}")
if sec[by_name["name"]:by_name["name"] + 7] != b"mp_lib\0":
    fail(f"{ko}: no \"mp_lib\" at the name offset {by_name['name']} of .gnu.linkonce.this_module")

ko = os.path.join(kodir, "mp_initret.ko")
kd = open(ko, "rb").read()
secs = elf_sections(kd, ko)
rela = secs.get(".rela.gnu.linkonce.this_module")
if rela is None:
    fail(f"{ko}: no .rela.gnu.linkonce.this_module")
_, _, roff, rsize, symtab, _, _ = rela
symsec = [s for s in secs.values() if s[0] == symtab][0]
strsec = [s for s in secs.values() if s[0] == symsec[4]][0]
relocs = {}
for i in range(roff, roff + rsize, 24):
    r_off, r_info = struct.unpack_from("<QQ", kd, i)
    st_name, = struct.unpack_from("<I", kd, symsec[2] + (r_info >> 32) * 24)
    s = strsec[2] + st_name
    relocs[kd[s:kd.index(b"\0", s)].decode()] = r_off
for sym, f in (("init_module", "init"), ("cleanup_module", "exit")):
    if relocs.get(sym) != by_name[f]:
        fail(f"{ko}: relocation against {sym} at {relocs.get(sym)}, offsetof {f} {by_name[f]}")
note(f"modules agree: mp_lib.ko this_module section {size} bytes, mp_initret.ko relocations "
     f"at init {relocs['init_module']}, exit {relocs['cleanup_module']}")

pahole = shutil.which("pahole")
if pahole:
    p = subprocess.run([pahole, "-F", "btf", "-C", "module", btf_file],
                       stdout=subprocess.PIPE, text=True, check=True).stdout
    m = re.search(r"/\* size: (\d+),", p)
    if not m or int(m.group(1)) != size:
        fail(f"pahole says size {m and m.group(1)}, the BTF parse {size}")
    # top-level member lines: one tab, then `... name...;  /* offset size */`
    poffs = [int(x) for x in re.findall(r"^\t[^\t\n].*;\s*/\*\s*(\d+)[\s:]", p, re.M)]
    mine = sorted({r[0] for r in rows})
    if sorted(set(poffs)) != mine:
        fail(f"pahole's top-level offsets differ from the BTF parse:\n {sorted(set(poffs))}\n {mine}")
    note(f"pahole agrees: size {size}, {len(set(poffs))} distinct top-level offsets")
else:
    note("pahole not found: no pahole cross-check")

with open(out, "w") as f:
    f.write(f"# struct module of {rel}, from the kernel's BTF (tests/lab/struct-module.sh); "
            f"sizeof = {size}\n")
    f.write(f"# BTF: {source}\n")
    f.write("# offset<TAB>size<TAB>member, bytes, decimal; members of an anonymous struct/union at "
            "the top level each with its own offset; a bitfield: the bytes that contain its bits\n")
    for off, sz, n, _ in rows:
        f.write(f"{off}\t{sz}\t{n}\n")
print(f"{kernel}: {out} ({len(rows)} members, sizeof {size})")
PY
done
