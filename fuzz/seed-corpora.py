#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, built from the repository's fixtures at run time.

    python3 fuzz/seed-corpora.py [OUT_DIR]      (default: fuzz/corpus)

Writes OUT_DIR/<target>/seed-<sha1> files (idempotent: a seed's name is its content's hash;
files the fuzzer added are left alone). Each seed is a target's control bytes (see the
comment at the top of fuzz/fuzz_targets/<target>.rs) followed by a fixture:

- load:       every fixture of every kernel (plain, and compressed ones the way 6.12 takes
              them), the modules that need others with mp_lib/mp_export loaded first,
              mp_types with the captured parameter string, a few with other settings;
- decompress: the compressed fixtures, each as detected and as its own format, and round
              trips of small modules;
- placed:     every module of every memory capture at its captured addresses;
- modinfo:    every fixture in memory, as a file with the command (with -F), and small index
              files;
- params:     the parameter strings of the conformance scenarios over an mp_types-like table;
- pkcs7:      a well-formed signature by each kernel's key (synthesized), a DER message built
              here from the profile's certificate, and the broken-signature fixtures' bytes;
- scenario:   the conformance scenarios, the recordings, and the memory captures' maps.

Standard library only (CI runs it on a fresh machine).
"""

import gzip
import hashlib
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = ["debian-6.1-amd64", "debian-6.1-arm64", "debian-6.12-amd64", "debian-6.12-arm64"]
KO = os.path.join(ROOT, "tests", "fixtures", "ko")
MEMDUMP = os.path.join(ROOT, "tests", "fixtures", "memdump")
SCENARIOS = os.path.join(ROOT, "tests", "conformance", "scenarios")
RECORDED = os.path.join(ROOT, "tests", "conformance", "recorded")
# The captures in the order fuzz_targets/placed.rs embeds them.
CAPTURES = [
    "debian-6.1-amd64", "debian-6.1-amd64+lfence", "debian-6.1-amd64+nospectre",
    "debian-6.1-arm64", "debian-6.12-amd64", "debian-6.12-amd64+lfence",
    "debian-6.12-amd64+nospectre", "debian-6.12-arm64",
]
NEEDS_OTHERS = ("mp_use", "mp_weak")
MAX_SEED = 256 << 10


def read(path):
    with open(path, "rb") as f:
        return f.read()


def fixtures(kernel):
    d = os.path.join(KO, kernel)
    return sorted((n, read(os.path.join(d, n))) for n in os.listdir(d) if ".ko" in n)


def captured_params(kernel, module):
    with open(os.path.join(MEMDUMP, kernel + ".json")) as f:
        cap = json.load(f)
    for m in cap["modules"]:
        if m["module"] == module:
            return m["params"].encode()
    return b""


class Out:
    def __init__(self, base):
        self.base = base
        self.count = {}

    def put(self, target, data):
        if len(data) > MAX_SEED:
            return
        d = os.path.join(self.base, target)
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest())
        if not os.path.exists(p):
            with open(p, "wb") as f:
                f.write(data)
        self.count[target] = self.count.get(target, 0) + 1


def load_seeds(out):
    for ki, k in enumerate(KERNELS):
        types_params = captured_params(k, "mp_types")
        for name, data in fixtures(k):
            params = types_params if name.startswith("mp_types") else b""
            b1 = 0x10 if name.startswith(NEEDS_OTHERS) else 0
            if name.endswith(".ko"):
                ops = [0, 1]
            else:
                ops = [2, 0]  # in-kernel decompression (6.12 xz), and the raw bytes
            for op in ops:
                b0 = ki | op << 2
                out.put("load", bytes([b0, b1, 0]) + struct.pack("<H", len(params)) + params + data)
        lib = read(os.path.join(KO, k, "mp_lib.ko"))
        types = read(os.path.join(KO, k, "mp_types.ko"))
        # Other settings: enforcement, small memory, init failing, a second load, a real fd,
        # SMP with a return thunk and lfence, both "ignore" flags, a NULL parameter pointer.
        for b0, b1, b2 in [(ki, 1, 0), (ki, 0x0c, 0), (ki | 0x20, 0, 0), (ki, 0, 0x20),
                           (ki | 0x0c, 0, 0), (ki, 0, 0x0d), (ki, 0xc0, 0), (ki | 0x10, 0, 0)]:
            out.put("load", bytes([b0, b1, b2, 0, 0]) + lib)
            out.put("load", bytes([b0, b1, b2]) + struct.pack("<H", len(types_params))
                    + types_params + types)


def decompress_seeds(out):
    seen = set()
    for k in KERNELS:
        for name, data in fixtures(k):
            if name.endswith(".ko"):
                continue
            kind = {".gz": 1, ".xz": 2, ".zst": 3}[os.path.splitext(name)[1]]
            for b0 in (0, kind, 0x80 | kind, 0x0c):
                out.put("decompress", bytes([b0]) + data)
            seen.add(k)
        lib = read(os.path.join(KO, k, "mp_lib.ko"))
        for b0 in (0x10, 0x11, 0x13, 0x30, 0x50, 0x70, 0xd0, 0x1c):
            out.put("decompress", bytes([b0]) + lib)
    out.put("decompress", bytes([0x10]) + b"")


def placed_seeds(out):
    for ci, c in enumerate(CAPTURES):
        with open(os.path.join(MEMDUMP, c + ".json")) as f:
            cap = json.load(f)
        for mi, _ in enumerate(cap["modules"]):
            out.put("placed", bytes([ci, mi, 7]))
            # Moved by a page, one symbol elsewhere.
            out.put("placed", bytes([ci, mi, 7, 1, 0]) + struct.pack("<Q", 0x1000)
                    + bytes([4, 0]) + struct.pack("<Q", 0x10))


def index_file(entries):
    """A kmod binary index (modules.*.bin) of a flat trie: one root with every key as a
    prefix child and a value; enough to get past the header checks."""
    # magic, version 2.1, root offset
    body = bytearray()
    root_at = 12
    node = bytearray()
    # The root node: prefix = "", values for each key as one node each would need real tries;
    # keep it to a root with values only.
    flags_values = 0x40000000
    node += struct.pack(">I", len(entries))
    for prio, (key, value) in enumerate(entries):
        node += struct.pack(">I", prio) + value + b"\0"
    body += struct.pack(">IIi", 0xB007F457, 0x00020001, root_at | flags_values) + node
    return bytes(body)


def modinfo_seeds(out):
    for k in KERNELS:
        for name, data in fixtures(k):
            ending = {".ko": 0, ".xz": 1, ".zst": 2, ".gz": 3}[os.path.splitext(name)[1]]
            out.put("modinfo", bytes([0]) + data)
            out.put("modinfo", bytes([1 | ending << 4 | 2 << 6]) + data)
    for idx in range(8):
        for flags in (0, 0x80, 0x04):
            b0 = 2 | idx << 4 | flags
            data = index_file([(b"mp_lib", b"kernel/mp_lib.ko: ")])
            out.put("modinfo", bytes([b0, 6]) + b"mp_lib" + data)
    builtin = b"mp_lib.license=GPL\0mp_lib.description=x\0other.alias=y\0"
    out.put("modinfo", bytes([2 | 5 << 4, 6]) + b"mp_lib" + builtin)


def scenario_params():
    found = []
    for n in sorted(os.listdir(SCENARIOS)):
        with open(os.path.join(SCENARIOS, n)) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    p = json.loads(line).get("params")
                except ValueError:
                    continue
                if p:
                    found.append(p.encode("utf-8", "surrogateescape"))
    return sorted(set(found))


def params_seeds(out):
    # p_int int 0644; p_charp charp 0644; p_string string[16] 0644; p_intarr int[4] with a
    # count 0644; p_bool bool 0644; dyn-dbg custom ops (param_set_int/get_int) 0644;
    # dyndbg charp 0600.
    table = bytes([3, 0, 0, 0,  9, 0, 0, 0,  14, 0, 0, 16,  15, 0, 0x38, 3,
                   10, 0, 0, 0,  16, 0, 0, 0x10,  9, 2, 0, 0])
    for p in scenario_params():
        for b0 in (1 | 7 << 2, 0 | 7 << 2):
            out.put("params", bytes([b0]) + table + struct.pack("<H", len(p)) + p
                    + bytes([0, 2]) + b"42")
    extra = [b"p_int=1 p_charp=\"a b\" p_string=xyz p_intarr=1,2,3 p_bool dyndbg=+p",
             b"p_int=0x10 -- ignored", b"\"p_int=5\" p-int=6 unknown=1",
             b"p_bool=y p_bool=n p_bool=1 p_bool p_bool=N"]
    for p in extra:
        out.put("params", bytes([1 | 7 << 2]) + table + struct.pack("<H", len(p)) + p)


# --- a PKCS#7 signature by a profile's key, for the raw mode of the pkcs7 target ---

def der(tag, content):
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(b)]) + b + content


def der_next(data, pos):
    tag = data[pos]
    l0 = data[pos + 1]
    pos += 2
    if l0 < 0x80:
        n = l0
    else:
        k = l0 & 0x7f
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    return tag, data[pos:pos + n], pos + n


def cert_issuer_serial(cert):
    _, c, _ = der_next(cert, 0)          # Certificate
    _, tbs, _ = der_next(c, 0)           # tbsCertificate
    pos = 0
    tag, v, nxt = der_next(tbs, pos)
    if tag == 0xA0:                      # version
        pos = nxt
    _, serial, pos = der_next(tbs, pos)
    _, _, pos = der_next(tbs, pos)       # signature
    _, issuer, pos = der_next(tbs, pos)
    return issuer, serial


def pkcs7_for(issuer, serial):
    oid = lambda b: der(0x06, b)
    alg = lambda b: der(0x30, oid(b) + b"\x05\x00")
    sha256 = bytes.fromhex("608648016503040201")
    rsa = bytes.fromhex("2a864886f70d010101")
    signer = der(0x30, der(0x02, b"\x01") + der(0x30, der(0x30, issuer) + der(0x02, serial))
                 + alg(sha256) + alg(rsa) + der(0x04, bytes(range(64))))
    sd = der(0x30, der(0x02, b"\x01") + der(0x31, alg(sha256))
             + der(0x30, oid(bytes.fromhex("2a864886f70d010701"))) + der(0x31, signer))
    return der(0x30, oid(bytes.fromhex("2a864886f70d010702")) + der(0xA0, sd))


def pkcs7_seeds(out):
    for ki, k in enumerate(KERNELS):
        with gzip.open(os.path.join(ROOT, "sim", "profiles", k + ".json.gz")) as f:
            prof = json.load(f)
        signing = prof.get("module_signing")
        for enforce in (0, 4):
            # Synthesized: sha256, rsa, no options; and v3, authattrs, two signers.
            for opts in (0, 1, 4, 0x40, 0x80):
                out.put("pkcs7", bytes([ki | enforce | 8, 0, 0, 0, opts]) + bytes(range(32)))
            if signing and signing.get("cert"):
                issuer, serial = cert_issuer_serial(bytes.fromhex(signing["cert"]))
                out.put("pkcs7", bytes([ki | enforce | 0x40, 0]) + pkcs7_for(issuer, serial))
        for name in ("bad_sig_garbage.ko", "bad_sig_params.ko"):
            data = read(os.path.join(KO, k, name))
            sig_len = struct.unpack(">I", data[-28 - 4:-28])[0]
            body = data[:-28 - 12]
            out.put("pkcs7", bytes([ki | 4, 0]) + body[len(body) - sig_len:])


def scenario_seeds(out):
    for n in sorted(os.listdir(SCENARIOS)):
        text = read(os.path.join(SCENARIOS, n))
        for ki in range(4):
            out.put("scenario", bytes([0 | 8 | ki << 4]) + text)
        out.put("scenario", bytes([4]) + text)
    for k in sorted(os.listdir(RECORDED)):
        d = os.path.join(RECORDED, k)
        for n in sorted(os.listdir(d))[:6]:
            out.put("scenario", bytes([1]) + read(os.path.join(d, n)))
    for c in CAPTURES[:2]:
        with open(os.path.join(MEMDUMP, c + ".json")) as f:
            cap = json.load(f)
        for m in cap["modules"][:3]:
            out.put("scenario", bytes([2]) + json.dumps(m["sections"]).encode())
            out.put("scenario", bytes([2]) + json.dumps(m["symbols"]).encode())


def main():
    base = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "fuzz", "corpus")
    out = Out(base)
    for f in (load_seeds, decompress_seeds, placed_seeds, modinfo_seeds, params_seeds,
              pkcs7_seeds, scenario_seeds):
        f(out)
    print("seeds: " + ", ".join(f"{t} {n}" for t, n in sorted(out.count.items())))


if __name__ == "__main__":
    main()
