#!/usr/bin/env python3
"""Writes symbols-share-one-long-name: a `load` input (6.1 amd64, init_module, 64 MiB) whose
image is mp_lib.ko with its .symtab replaced by 10000 undefined symbols that all name the
same 100000-byte string of its new .strtab (a 344 KB input). The shape of the known defect
"symbol names are copied into owned Strings several times per load": without it the heap
stays small, and the time is what is left of it (each name scanned to its NUL on every
reading of the symbol table). Usage: symbols-share-one-long-name.py [OUTDIR] (default: here)."""
import os, struct
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
img = bytearray(open(os.path.join(root, "tests/fixtures/ko/debian-6.1-amd64/mp_lib.ko"), "rb").read())
shoff, = struct.unpack_from("<Q", img, 0x28)
shnum, = struct.unpack_from("<H", img, 0x3c)
N, L = 10000, 100000
strtab = b"\0" + b"A" * L + b"\0"
symtab = bytes(24) + struct.pack("<IBBHQQ", 1, 0x10, 0, 0, 0, 0) * (N - 1)
fields = "<IIQQQQIIQQ"
for i in range(shnum):
    f = struct.unpack_from(fields, img, shoff + 64 * i)
    if f[1] == 2:
        symidx, strndx = i, f[6]
def setsec(i, off, size, info=None):
    f = list(struct.unpack_from(fields, img, shoff + 64 * i))
    f[4], f[5] = off, size
    if info is not None:
        f[7] = info
    struct.pack_into(fields, img, shoff + 64 * i, *f)
while len(img) % 8:
    img.append(0)
so = len(img); img += symtab
to = len(img); img += strtab
setsec(symidx, so, len(symtab), 1)
setsec(strndx, to, len(strtab))
import sys
out = sys.argv[1] if len(sys.argv) > 1 else here
open(os.path.join(out, "symbols-share-one-long-name"), "wb").write(bytes([0, 0, 0, 0, 0]) + bytes(img))
