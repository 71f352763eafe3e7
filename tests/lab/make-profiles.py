#!/usr/bin/env python3
"""make-profiles.py: write the kernel profiles sim/profiles/<kernel>.json.gz.

Usage: tests/lab/make-profiles.py [KERNEL...]     (default: every kernel of tests/lab/kernels.env)

Reads the trees that tests/lab/fetch-kernels.sh extracted under $LAB/root/<kernel>/ (LAB defaults
to target/lab): the linux-headers-<krel> directory (.config, Module.symvers, include/generated/*),
lib/modules/<krel>/ (modules.builtin, modules.builtin.modinfo and every shipped .ko / .ko.xz) and
boot/vmlinuz-<krel> (for the module signing certificate). Python standard library only; `zstd`
is run as a subprocess to unpack a zstd-compressed bzImage.

The output is deterministic: sorted keys, sorted lists, gzip with mtime 0 and no file name.
Format 1 (read by sim/src/profile.rs, which documents every field):
  format, name, release, package_version, arch, version, vermagic, config{OPTION: value},
  sizeof_struct_module, this_module{name, init, exit}, module_signing{signer, serial, key_algo,
  hash, cert}, exports[[name, crc, gpl_only, namespace|null]], builtin_modules[...],
  builtin_sysfs_modules[...]
Consistency checks across the shipped modules (one vermagic, one .gnu.linkonce.this_module size,
one set of struct module offsets, one signing key) are fatal when they fail.
"""

import gzip
import io
import json
import lzma
import os
import re
import struct
import subprocess
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.environ.get("LAB") or os.path.join(REPO, "target", "lab")
OUT = os.path.join(REPO, "sim", "profiles")
FORMAT = 1

# The .config options kept in a profile: the ones the module load path (kernel/module/*,
# arch/*/kernel/module*.c, the signature/lockdown/keyring code it calls, the sections it
# processes) or the vermagic depends on. Exact names, then prefixes. sim/src/profile.rs holds
# the same two lists (LOAD_PATH_OPTIONS, LOAD_PATH_PREFIXES); a test checks they agree by
# rebuilding each profile from its headers directory.
CONFIG_EXACT = {
    "64BIT", "X86_64", "ARM64", "MMU", "SMP", "NR_CPUS", "RELOCATABLE", "RANDOMIZE_BASE",
    "64BIT", "X86_64", "ARM64", "MMU", "SMP", "LOG_BUF_SHIFT",
    "RANDOMIZE_MODULE_REGION_FULL", "RANDOMIZE_MEMORY", "CONSTRUCTORS", "RETPOLINE", "RETHUNK",
    "CALL_PADDING", "CALL_DEPTH_TRACKING", "CALL_THUNKS", "CPU_UNRET_ENTRY", "CPU_SRSO",
    "MITIGATION_RETPOLINE", "MITIGATION_RETHUNK", "MITIGATION_UNRET_ENTRY", "MITIGATION_SRSO",
    "MITIGATION_CALL_DEPTH_TRACKING", "MITIGATION_ITS",
    "X86_KERNEL_IBT", "X86_USER_SHADOW_STACK", "OBJTOOL", "UNWINDER_ORC", "UNWINDER_FRAME_POINTER",
    "PARAVIRT", "PARAVIRT_SPINLOCKS", "SMP_ALTERNATIVES",
    "ARM64_MODULE_PLTS", "ARM64_ERRATUM_843419", "ARM64_4K_PAGES", "ARM64_16K_PAGES",
    "ARM64_64K_PAGES", "ARM64_PAGE_SHIFT", "ARM64_VA_BITS", "ARM64_BTI_KERNEL",
    "ARM64_PTR_AUTH_KERNEL", "ARM64_USE_LSE_ATOMICS", "SHADOW_CALL_STACK", "UNWIND_TABLES",
    "PAGE_SHIFT", "PAGE_SIZE_4KB", "PAGE_SIZE_16KB", "PAGE_SIZE_64KB",
    "FUNCTION_TRACER", "FTRACE", "FTRACE_MCOUNT_RECORD", "FTRACE_MCOUNT_USE_CC",
    "FTRACE_MCOUNT_USE_OBJTOOL", "FTRACE_MCOUNT_USE_PATCHABLE_FUNCTION_ENTRY",
    "FUNCTION_ERROR_INJECTION", "KPROBES", "KPROBE_EVENTS", "TRACEPOINTS", "EVENT_TRACING",
    "BPF_EVENTS", "BPF_SYSCALL", "PRINTK_INDEX", "JUMP_LABEL", "HAVE_STATIC_CALL",
    "HAVE_STATIC_CALL_INLINE", "TREE_SRCU", "SRCU", "DEBUG_KMEMLEAK", "KCOV", "GCOV_KERNEL",
    "KMSAN", "KCSAN", "UBSAN", "CFI_CLANG", "STACKPROTECTOR", "STACKPROTECTOR_STRONG", "BUG",
    "GENERIC_BUG", "GENERIC_BUG_RELATIVE_POINTERS", "SYSFS", "KEYS", "CRYPTO_ECDSA", "CRYPTO_RSA",
    "CRYPTO_SHA256", "CRYPTO_SHA512", "PKCS7_MESSAGE_PARSER", "SIGNED_PE_FILE_VERIFICATION",
    "SYSTEM_DATA_VERIFICATION", "SYSTEM_EXTRA_CERTIFICATE", "SYSTEM_REVOCATION_LIST",
    "SYSTEM_REVOCATION_KEYS", "SECURITY", "SECURITYFS", "LSM", "DEFAULT_SECURITY_APPARMOR",
    "SECURITY_LOADPIN", "SECURITY_LOADPIN_ENFORCE", "EFI", "EFI_STUB", "LOAD_UEFI_KEYS",
    "STACKTRACE_BUILD_ID", "BUILDTIME_TABLE_SORT", "HAVE_ARCH_PREL32_RELOCATIONS",
    "HAVE_MOD_ARCH_SPECIFIC", "ARCH_HAS_STRICT_MODULE_RWX", "ARCH_WANTS_MODULES_DATA_IN_VMALLOC",
    "HAVE_DYNAMIC_FTRACE", "EXECMEM", "ARCH_HAS_EXECMEM_ROX", "PREEMPTION", "TRIM_UNUSED_KSYMS",
    "UNUSED_KSYMS_WHITELIST", "ASM_MODVERSIONS", "MODVERSIONS", "GENDWARFKSYMS",
    "GENKSYMS", "EXTENDED_MODVERSIONS", "BASIC_MODVERSIONS", "RUST", "RANDSTRUCT",
    "RANDSTRUCT_FULL", "RANDSTRUCT_PERFORMANCE", "RANDSTRUCT_NONE", "GCC_PLUGIN_RANDSTRUCT",
}
CONFIG_PREFIXES = (
    "MODULE", "DYNAMIC_DEBUG", "STRICT_MODULE_RWX", "STRICT_KERNEL_RWX", "LIVEPATCH", "KALLSYMS",
    "LOCK_DOWN_", "SECURITY_LOCKDOWN", "PREEMPT", "DYNAMIC_FTRACE", "KASAN",
    "DEBUG_INFO_BTF", "SYSTEM_TRUSTED_", "SYSTEM_BLACKLIST_", "SECONDARY_TRUSTED_KEYRING",
    "INTEGRITY_", "IMA_APPRAISE", "IMA_ARCH_POLICY", "IMA_SECURE_AND_OR_TRUSTED_BOOT",
)

def die(msg):
    sys.exit(f"make-profiles.py: {msg}")


def keep_option(name):
    return name in CONFIG_EXACT or name.startswith(CONFIG_PREFIXES)


def read_env():
    env = {}
    with open(os.path.join(REPO, "tests", "lab", "kernels.env")) as f:
        for line in f:
            m = re.match(r"^([A-Z0-9_]+)=(.*)$", line.strip())
            if m:
                env[m.group(1)] = m.group(2).strip('"')
    return env


# --- .config -------------------------------------------------------------------------------

def parse_config(path):
    """Every set option of a .config: name (without CONFIG_) -> value (quotes removed)."""
    opts = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.startswith("CONFIG_"):
                continue
            name, sep, value = line[len("CONFIG_"):].partition("=")
            if not sep:
                die(f"{path}: bad line {line!r}")
            if value.startswith('"'):
                if not value.endswith('"') or len(value) < 2:
                    die(f"{path}: unterminated string in {line!r}")
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            opts[name] = value
    return opts


# --- Module.symvers ------------------------------------------------------------------------

def parse_symvers(path):
    """The vmlinux exports: sorted [name, crc, gpl_only, namespace or None]."""
    out, seen, vmlinux_lines = [], set(), 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) not in (4, 5):
                die(f"{path}:{n}: {len(fields)} fields")
            crc, name, module, kind = fields[:4]
            ns = fields[4] if len(fields) == 5 and fields[4] else None
            if module != "vmlinux":
                continue
            vmlinux_lines += 1
            if kind not in ("EXPORT_SYMBOL", "EXPORT_SYMBOL_GPL"):
                die(f"{path}:{n}: unknown export type {kind}")
            if name in seen:
                die(f"{path}:{n}: {name} exported twice")
            seen.add(name)
            out.append([name, int(crc, 16), kind == "EXPORT_SYMBOL_GPL", ns])
    out.sort(key=lambda e: e[0])
    assert len(out) == vmlinux_lines
    return out


# --- modules.builtin(.modinfo) -------------------------------------------------------------

def modname(path):
    base = os.path.basename(path)
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def parse_builtin(mods):
    with open(os.path.join(mods, "modules.builtin")) as f:
        names = sorted({modname(line.strip()) for line in f if line.strip()})
    # Builtin code that declares a parameter (parmtype) or a MODULE_VERSION gets a
    # /sys/module/<name> directory at boot (param_sysfs_builtin, version_sysfs_builtin);
    # mod_sysfs_init() then refuses a module of that name ("module is already loaded", EINVAL).
    # Approximation: a parameter with permission 0 creates no directory, a module_param_cb()
    # records no parmtype.
    sysfs = set()
    with open(os.path.join(mods, "modules.builtin.modinfo"), "rb") as f:
        for entry in f.read().split(b"\0"):
            m = re.match(rb"^([^.=]+)\.(parmtype|version)=", entry)
            if m:
                sysfs.add(m.group(1).decode().replace("-", "_"))
    return names, sorted(sysfs)


# --- ELF modules ---------------------------------------------------------------------------

class Der:
    """A minimal DER reader: just what a module's PKCS#7 signature and an X.509 cert need."""

    @staticmethod
    def read(buf, pos):
        """-> (tag, start of content, end of content)"""
        tag = buf[pos]
        n = buf[pos + 1]
        pos += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(buf[pos:pos + k], "big")
            pos += k
        if pos + n > len(buf):
            raise ValueError("DER element overruns its buffer")
        return tag, pos, pos + n

    @staticmethod
    def children(buf, start, end):
        out, pos = [], start
        while pos < end:
            tag, s, e = Der.read(buf, pos)
            out.append((tag, s, e))
            pos = e
        return out

    @staticmethod
    def oid(b):
        first = b[0]
        parts, v = [first // 40, first % 40], 0
        for c in b[1:]:
            v = (v << 7) | (c & 0x7F)
            if not c & 0x80:
                parts.append(v)
                v = 0
        return ".".join(map(str, parts))

    @staticmethod
    def common_name(buf, start, end):
        for _, s, e in Der.children(buf, start, end):  # SET
            for _, s2, e2 in Der.children(buf, s, e):  # SEQ {OID, value}
                (t1, os_, oe), (t2, vs, ve) = Der.children(buf, s2, e2)[:2]
                if t1 == 0x06 and Der.oid(buf[os_:oe]) == "2.5.4.3":
                    return buf[vs:ve].decode("utf-8")
        return None


OIDS = {
    "1.2.840.113549.1.1.1": "rsa", "1.2.840.10045.2.1": "ecdsa",
    "1.2.840.10045.4.3.2": "ecdsa", "1.2.840.10045.4.3.3": "ecdsa", "1.2.840.10045.4.3.4": "ecdsa",
    "2.16.840.1.101.3.4.2.1": "sha256", "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512", "1.3.14.3.2.26": "sha1",
}
SIG_MAGIC = b"~Module signature appended~\n"


def module_signature(data):
    """(signer CN, serial hex, key algo, hash algo) of an appended PKCS#7 signature, or None."""
    if not data.endswith(SIG_MAGIC):
        return None, data
    info = data[-len(SIG_MAGIC) - 12:-len(SIG_MAGIC)]
    sig_len = struct.unpack(">I", info[8:12])[0]
    if info[2] != 2:  # id_type PKEY_ID_PKCS7
        die(f"signature id_type {info[2]} is not PKCS#7")
    end = len(data) - len(SIG_MAGIC) - 12
    p7 = data[end - sig_len:end]
    _, s, e = Der.read(p7, 0)  # ContentInfo
    oid, explicit = Der.children(p7, s, e)[:2]
    if Der.oid(p7[oid[1]:oid[2]]) != "1.2.840.113549.1.7.2":
        die("module signature is not PKCS#7 signedData")
    _, s, e = Der.read(p7, explicit[1])  # SignedData
    signer_infos = [c for c in Der.children(p7, s, e) if c[0] == 0x31][-1]
    sinfos = Der.children(p7, signer_infos[1], signer_infos[2])
    if len(sinfos) != 1:
        die(f"{len(sinfos)} SignerInfos in a module signature")
    fields = Der.children(p7, sinfos[0][1], sinfos[0][2])
    issuer, serial = Der.children(p7, fields[1][1], fields[1][2])[:2]
    digest = Der.children(p7, fields[2][1], fields[2][2])[0]
    enc = [f for f in fields[3:] if f[0] == 0x30][0]
    enc_oid = Der.children(p7, enc[1], enc[2])[0]
    sig = (
        Der.common_name(p7, issuer[1], issuer[2]),
        p7[serial[1]:serial[2]].hex(),
        OIDS.get(Der.oid(p7[enc_oid[1]:enc_oid[2]]), Der.oid(p7[enc_oid[1]:enc_oid[2]])),
        OIDS.get(Der.oid(p7[digest[1]:digest[2]]), Der.oid(p7[digest[1]:digest[2]])),
    )
    return sig, data[:end - sig_len]


def scan_module(path):
    """Facts about one shipped module, as a tuple (hashable, so results can be counted)."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        data = lzma.decompress(data)
    sig, data = module_signature(data)
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        die(f"{path}: not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    shdrs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = shdrs[shstrndx]

    def sname(sh):
        off = strtab[4] + sh[0]
        return data[off:data.index(b"\0", off)].decode()

    secs = {sname(sh): (i, sh) for i, sh in enumerate(shdrs)}
    modinfo_sh = secs[".modinfo"][1]
    modinfo = {}
    for entry in data[modinfo_sh[4]:modinfo_sh[4] + modinfo_sh[5]].split(b"\0"):
        k, sep, v = entry.partition(b"=")
        if sep:
            modinfo.setdefault(k.decode(), v.decode())
    tm_idx, tm = secs[".gnu.linkonce.this_module"]
    tm_data = data[tm[4]:tm[4] + tm[5]]
    name = modinfo.get("name", modname(path)).encode()
    # struct module's name[] field: the first 8-aligned offset holding the NUL-terminated name
    name_off = next((o for o in range(0, len(tm_data), 8)
                     if tm_data[o:o + len(name) + 1] == name + b"\0"), None)
    init_off = exit_off = None
    rela = secs.get(".rela.gnu.linkonce.this_module")
    if rela is not None:
        rsh = rela[1]
        symtab = shdrs[rsh[6]]
        symstr = shdrs[symtab[6]]
        for off in range(rsh[4], rsh[4] + rsh[5], 24):
            r_offset, r_info = struct.unpack_from("<QQ", data, off)
            st_name, = struct.unpack_from("<I", data, symtab[4] + (r_info >> 32) * 24)
            so = symstr[4] + st_name
            sym = data[so:data.index(b"\0", so)]
            if sym == b"init_module":
                init_off = r_offset
            elif sym == b"cleanup_module":
                exit_off = r_offset
    return (modinfo.get("vermagic"), tm[5], name_off, init_off, exit_off, sig)


def only(counter, what, kernel, allow_none=False):
    """The one value every module agrees on (None values ignored when allow_none)."""
    values = {v: c for v, c in counter.items() if not (allow_none and v is None)}
    if len(values) != 1:
        die(f"{kernel}: shipped modules disagree on {what}: {dict(values)}")
    return next(iter(values))


# --- the signing certificate embedded in the kernel image --------------------------------

def kernel_image(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[0x202:0x206] != b"HdrS":
        return data  # arm64: a plain Image
    setup_sects = data[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = data[start:start + payload_length]
    if payload[:6] == b"\xfd7zXZ\x00":
        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        return d.decompress(payload)
    if payload[:4] == b"\x28\xb5\x2f\xfd":
        # the kernel appends the decompressed size (4 bytes) after the zstd frame
        return subprocess.run(["zstd", "-dcq"], input=payload[:-4], check=True,
                              stdout=subprocess.PIPE).stdout
    if payload[:2] == b"\x1f\x8b":
        return gzip.decompress(payload[:-4])
    die(f"{path}: unknown bzImage payload compression {payload[:6].hex()}")


def signing_cert(image, signer, serial_hex):
    """The DER X.509 certificate of the signing key: issued to signer, with that serial."""
    needle, pos, found = signer.encode(), 0, set()
    while (hit := image.find(needle, pos)) >= 0:
        pos = hit + 1
        for start in range(hit - 1, max(0, hit - 2048), -1):
            if image[start] != 0x30 or image[start + 1] != 0x82 or image[start + 4] != 0x30:
                continue
            try:
                _, s, e = Der.read(image, start)
                if e <= hit:
                    continue
                tbs = Der.children(image, s, e)[0]
                kids = Der.children(image, tbs[1], tbs[2])
                kids = kids[1:] if kids[0][0] == 0xA0 else kids  # [0] version
                serial = image[kids[0][1]:kids[0][2]].hex()
                spki = kids[5]
                alg = Der.children(image, *Der.children(image, spki[1], spki[2])[0][1:])[0]
                algo = OIDS.get(Der.oid(image[alg[1]:alg[2]]))
            except (ValueError, IndexError):
                continue
            if serial == serial_hex:
                found.add((image[start:e], algo))
            break
    if len(found) != 1:
        die(f"{len(found)} certificates for '{signer}' serial {serial_hex} in the kernel image")
    return found.pop()


# --- one kernel -----------------------------------------------------------------------------

def make_profile(kernel, env, pool):
    m = re.match(r"^debian-(6\.1|6\.12)-(amd64|arm64)$", kernel)
    if not m:
        die(f"unknown kernel '{kernel}' (one of: {env['KERNELS']})")
    version, debarch = m.groups()
    krel = {"6.1": env["K61"], "6.12": env["K612"]}[version] + "-" + debarch
    pkgver = {"6.1": env["V61"], "6.12": env["V612"]}[version]
    root = os.path.join(LAB, "root", kernel)
    hdr = os.path.join(root, "usr", "src", f"linux-headers-{krel}")
    mods = os.path.join(root, "lib", "modules", krel)
    for p in (hdr, mods):
        if not os.path.isdir(p):
            die(f"{p} is missing: run tests/lab/fetch-kernels.sh first")

    full = parse_config(os.path.join(hdr, ".config"))
    boot = parse_config(os.path.join(root, "boot", f"config-{krel}"))
    for k in sorted(set(full) ^ set(boot) | {k for k in full if k in boot and full[k] != boot[k]}):
        print(f"  {kernel}: note: CONFIG_{k} headers={full.get(k)!r} boot={boot.get(k)!r}",
              file=sys.stderr)
    config = {k: v for k, v in sorted(full.items()) if keep_option(k)}

    exports = parse_symvers(os.path.join(hdr, "Module.symvers"))
    builtin, builtin_sysfs = parse_builtin(mods)

    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(mods, "kernel"))
                   for f in fs if f.endswith((".ko", ".ko.xz")))
    facts = list(pool.map(scan_module, files, chunksize=32))
    vermagic = only(Counter(f[0] for f in facts), "vermagic", kernel)
    size = only(Counter(f[1] for f in facts), "the size of .gnu.linkonce.this_module", kernel)
    name_off = only(Counter(f[2] for f in facts), "offsetof(struct module, name)", kernel)
    init_off = only(Counter(f[3] for f in facts), "offsetof(struct module, init)", kernel, True)
    exit_off = only(Counter(f[4] for f in facts), "offsetof(struct module, exit)", kernel, True)
    unsigned = sum(1 for f in facts if f[5] is None)
    if unsigned:
        die(f"{kernel}: {unsigned} shipped modules are not signed")
    signer, serial, key_algo, hash_algo = only(Counter(f[5] for f in facts), "signing key", kernel)
    cert, cert_algo = signing_cert(kernel_image(os.path.join(root, "boot", f"vmlinuz-{krel}")),
                                   signer, serial)
    if cert_algo != key_algo:
        die(f"{kernel}: certificate key {cert_algo} but signatures made with {key_algo}")
    if config.get("MODULE_SIG_HASH") != hash_algo:
        die(f"{kernel}: CONFIG_MODULE_SIG_HASH={config.get('MODULE_SIG_HASH')} "
            f"but modules are signed with {hash_algo}")
    if not vermagic.startswith(krel + " "):
        die(f"{kernel}: vermagic {vermagic!r} does not start with the release {krel}")

    profile = {
        "format": FORMAT,
        "name": kernel,
        "release": krel,
        "package_version": pkgver,
        "arch": {"amd64": "x86_64", "arm64": "aarch64"}[debarch],
        "version": version,
        "vermagic": vermagic,
        "config": config,
        "sizeof_struct_module": size,
        "this_module": {"name": name_off, "init": init_off, "exit": exit_off},
        "module_signing": {"signer": signer, "serial": serial, "key_algo": key_algo,
                           "hash": hash_algo, "cert": cert.hex()},
        "exports": exports,
        "builtin_modules": builtin,
        "builtin_sysfs_modules": builtin_sysfs,
    }
    stats = (f"{len(files)} modules scanned, {len(exports)} exports, {len(config)} of "
             f"{len(full)} options, {len(builtin)} builtin ({len(builtin_sysfs)} sysfs), "
             f"sizeof(struct module)={size}, name/init/exit at {name_off}/{init_off}/{exit_off}, "
             f"{key_algo}/{hash_algo} key {serial}")
    return profile, stats


def write_gz(path, obj):
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw + b"\n")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)
    return len(raw), len(buf.getvalue())


def main(argv):
    env = read_env()
    kernels = argv or env["KERNELS"].split()
    os.makedirs(OUT, exist_ok=True)
    with ProcessPoolExecutor() as pool:
        for kernel in kernels:
            profile, stats = make_profile(kernel, env, pool)
            path = os.path.join(OUT, f"{kernel}.json.gz")
            raw, gz = write_gz(path, profile)
            print(f"{kernel}: {os.path.relpath(path, REPO)} {gz} bytes ({raw} raw JSON); {stats}")


if __name__ == "__main__":
    main(sys.argv[1:])
