#!/usr/bin/env python3
"""maps.py: one module of a memory capture as the inputs of `modloader image` (python3 stdlib).

  maps.py CAPTURE.json MODULE OUTDIR

writes OUTDIR/sections.json ({"<section>": "0x<address>"}, /sys/module/MODULE/sections),
OUTDIR/symbols.json ({"<symbol>": "0x<address>"}), OUTDIR/params (the parameter string) and
OUTDIR/real/<section>.bin (the bytes the real kernel had), so that

  modloader image --kernel KERNEL --sections OUTDIR/sections.json --symbols OUTDIR/symbols.json \\
      --params "$(cat OUTDIR/params)" --out OUTDIR/sim FILE.ko
  cmp OUTDIR/real/.text.bin OUTDIR/sim/.text.bin

compares one section by hand (tests/memdump.rs compares them all).
"""
import base64
import json
import os
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    cap_path, module, out = sys.argv[1:]
    with open(cap_path) as f:
        cap = json.load(f)
    mods = [m for m in cap["modules"] if m["module"] == module]
    if not mods:
        names = " ".join(m["module"] for m in cap["modules"])
        sys.exit(f"maps.py: no module {module} in {cap_path} (it has: {names})")
    m = mods[0]
    os.makedirs(os.path.join(out, "real"), exist_ok=True)
    for name, value in (("sections.json", m["sections"]), ("symbols.json", m["symbols"])):
        with open(os.path.join(out, name), "w") as f:
            json.dump(value, f, indent=1)
            f.write("\n")
    with open(os.path.join(out, "params"), "w") as f:
        f.write(m["params"])
    for sec, b64 in m["bytes"].items():
        if "/" in sec or sec in (".", ".."):
            sys.exit(f"maps.py: section name {sec!r} cannot be a file name")
        with open(os.path.join(out, "real", sec + ".bin"), "wb") as f:
            f.write(base64.b64decode(b64))
    print(f"{out}: {len(m['sections'])} sections, {len(m['symbols'])} symbols, "
          f"{len(m['bytes'])} captured sections (file {m['file']})")


if __name__ == "__main__":
    main()
