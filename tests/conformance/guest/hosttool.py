#!/usr/bin/env python3
"""hosttool.py: the host-side helpers of tests/conformance/record.sh (python3 stdlib only).

  hosttool.py steps SCENARIO.jsonl OUT.steps   convert a scenario for guest/runner.c (and check it)
  hosttool.py append SCENARIO.jsonl            print the kernel command line of its boot step ('' if none)
  hosttool.py cpio STAGEDIR OUT.cpio.gz        gzip'd newc initramfs of a staged tree, no root needed:
                                               files owned by 0:0, mtime 0, plus /dev/console and /dev/null
  hosttool.py extract CONSOLE.log SCENARIO.jsonl OUT.jsonl
                                               take the marked lines out of a console log, check them
                                               (meta first, one valid JSON object per step, done marker,
                                               runner exit status 0), write them byte for byte;
                                               exit 3 (nothing written) if a step's dmesg holds
                                               boot noise (clocksource:, hrtimer: interrupt took ...)

The steps format (read by runner.c): first line 'modsim-steps 1', then one line per step, TAB
separated, strings hex-encoded ('-': absent / NULL pointer):
  boot            HEX(append)
  finit_module    FLAGS FDMODE HEX(file) HEX(params)|-
  init_module     HEX(file) HEX(params)|- LEN|-
  delete_module   HEX(name) FLAGS
  write           HEX(path) HEX(value)
  drop_capability HEX(name)
"""
import gzip
import json
import os
import re
import stat
import sys

MARK = b"@@MODSIM@@ "
ERR = b"@@MODSIM-ERR@@ "
DONE = b"@@MODSIM-DONE@@ "

# field types as loader/src/scenario/mod.rs (serde) has them: u32 flags, u64 len, i32 init_returns
U32, U64, I32 = (0, 2**32 - 1), (0, 2**64 - 1), (-2**31, 2**31 - 1)
FIELDS = {
    "boot": {"append": str},
    "finit_module": {"file": str, "flags": U32, "params": (str, type(None)), "fd": str, "init_returns": I32},
    "init_module": {"file": str, "params": (str, type(None)), "len": U64, "init_returns": I32},
    "delete_module": {"name": str, "flags": U32},
    "write": {"path": str, "value": str},
    "drop_capability": {"name": str},
    "tool": {"argv": list},  # modloader's own insmod/rmmod/lsmod: only in tools*.jsonl (amd64)
}
REQUIRED = {
    "boot": ("append",), "finit_module": ("file",), "init_module": ("file",), "delete_module": ("name",),
    "write": ("path", "value"), "drop_capability": ("name",), "tool": ("argv",),
}
FD_MODES = ("rdonly", "wronly", "rdwr", "path", "closed")
# Kernel messages that come from the machine (TCG timing, host load), not from the step: one in a
# step's dmesg makes the recording unusable ('extract' exits 3, record.sh boots again).
NOISE = re.compile(r"^(clocksource: |tsc: |random: |hrtimer: interrupt took |sched: RT throttling"
                   r"|rcu: INFO: |watchdog: BUG: soft lockup|INFO: task .* blocked for more than)")


class Noise(Exception):
    pass


class Bad(Exception):
    pass


def load_scenario(path):
    """The scenario's steps as dicts, checked against FORMAT.md."""
    steps = []
    with open(path, "rb") as f:
        data = f.read()
    def no_dups(pairs):
        d = {}
        for k, v in pairs:
            if k in d:
                raise ValueError(f"duplicate field '{k}'")
            d[k] = v
        return d

    for n, raw in enumerate(data.split(b"\n"), 1):
        raw = raw.strip()
        if not raw or raw.startswith(b"#"):  # blank lines and comments, as modloader skips them
            continue
        where = f"{path}:{n}"
        try:
            s = json.loads(raw, object_pairs_hook=no_dups)
        except ValueError as e:
            raise Bad(f"{where}: not JSON: {e}")
        if not isinstance(s, dict) or not isinstance(s.get("op"), str):
            raise Bad(f"{where}: not an object with a string 'op'")
        op = s["op"]
        if op not in FIELDS:
            raise Bad(f"{where}: unknown op '{op}'")
        for k, v in s.items():
            if k == "op":
                continue
            if k not in FIELDS[op]:
                raise Bad(f"{where}: unknown field '{k}' for {op}")
            t = FIELDS[op][k]
            if isinstance(t, tuple) and isinstance(t[0], int):
                if isinstance(v, bool) or not isinstance(v, int) or not t[0] <= v <= t[1]:
                    raise Bad(f"{where}: field '{k}' must be an integer in {t[0]}..{t[1]}")
            elif not isinstance(v, t):
                raise Bad(f"{where}: field '{k}' has the wrong type")
        for k in REQUIRED[op]:
            if k not in s:
                raise Bad(f"{where}: {op} needs '{k}'")
        if op == "boot" and steps:
            raise Bad(f"{where}: boot is only allowed as the first step")
        if op == "finit_module" and s.get("fd", "rdonly") not in FD_MODES:
            raise Bad(f"{where}: fd must be one of {', '.join(FD_MODES)}")
        if op == "boot" and any(ord(c) < 0x20 for c in s["append"]):
            raise Bad(f"{where}: control character in the boot append")
        steps.append(s)
    if not steps:
        raise Bad(f"{path}: no steps")
    return steps


def hx(s):
    if s is None:
        return "-"
    try:
        return s.encode("utf-8").hex()
    except UnicodeEncodeError:
        raise Bad(f"string {s!r} is not encodable as UTF-8")


def to_steps(steps):
    out = ["modsim-steps 1"]
    for s in steps:
        op = s["op"]
        if op == "boot":
            f = [hx(s["append"])]
        elif op == "finit_module":
            f = [str(s.get("flags", 0)), s.get("fd", "rdonly"), hx(s["file"]), hx(s.get("params", ""))]
        elif op == "init_module":
            f = [hx(s["file"]), hx(s.get("params", "")), str(s["len"]) if "len" in s else "-"]
        elif op == "delete_module":
            f = [hx(s["name"]), str(s.get("flags", 0))]
        elif op == "write":
            f = [hx(s["path"]), hx(s["value"])]
        else:
            f = [hx(s["name"])]
        out.append("\t".join([op] + f))
    return "\n".join(out) + "\n"


def cmd_steps(src, dst):
    text = to_steps(load_scenario(src))
    with open(dst, "w") as f:
        f.write(text)


def cmd_append(src):
    steps = load_scenario(src)
    print(steps[0].get("append", "") if steps[0]["op"] == "boot" else "")


def cpio_entry(name, mode, data=b"", rdev=(0, 0), ino=0):
    name_b = name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(mode) else 1
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0)
    hdr = b"070701" + b"".join(b"%08x" % v for v in fields)
    out = hdr + name_b
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def cmd_cpio(root, dst):
    entries = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(d, root)
        for name in sorted(dirs) + sorted(files):
            p = os.path.join(d, name)
            r = name if rel == "." else os.path.join(rel, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                entries.append((r, stat.S_IFLNK | 0o777, os.readlink(p).encode(), (0, 0)))
            elif stat.S_ISDIR(st.st_mode):
                entries.append((r, stat.S_IFDIR | 0o755, b"", (0, 0)))
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    data = f.read()
                perm = 0o755 if st.st_mode & 0o111 else 0o644
                entries.append((r, stat.S_IFREG | perm, data, (0, 0)))
            else:
                raise Bad(f"{p}: not a file, directory or symlink")
    names = {e[0] for e in entries}
    if "dev" not in names:
        entries.append(("dev", stat.S_IFDIR | 0o755, b"", (0, 0)))
    entries.append(("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)))
    entries.append(("dev/null", stat.S_IFCHR | 0o666, b"", (1, 3)))
    entries.sort(key=lambda e: e[0])
    out = bytearray()
    for i, (name, mode, data, rdev) in enumerate(entries, 1):
        out += cpio_entry(name, mode, data, rdev, ino=i)
    out += cpio_entry("TRAILER!!!", 0)
    with open(dst, "wb") as f:
        f.write(gzip.compress(bytes(out), compresslevel=9, mtime=0))


def cmd_extract(log, scenario, dst):
    steps = load_scenario(scenario)
    with open(log, "rb") as f:
        data = f.read()
    lines, errs, done = [], [], None
    for raw in data.split(b"\n"):
        raw = raw.rstrip(b"\r")
        for mark in (MARK, ERR, DONE):
            i = raw.find(mark)
            if i >= 0:
                rest = raw[i + len(mark):]
                if mark is MARK:
                    lines.append(rest)
                elif mark is ERR:
                    errs.append(rest)
                else:
                    done = rest
                break
    for e in errs:
        sys.stderr.write("guest: " + e.decode("utf-8", "replace") + "\n")
    if done is None:
        raise Bad(f"{log}: no done marker (guest crashed, hung or was killed?)")
    if done.strip() != b"rc=0":
        raise Bad(f"{log}: the runner failed ({done.decode('utf-8', 'replace')})")
    objs = []
    for i, l in enumerate(lines):
        try:
            o = json.loads(l)
        except ValueError as e:
            raise Bad(f"{log}: marked line {i + 1} is not valid JSON ({e}): {l[:200]!r}")
        if not isinstance(o, dict):
            raise Bad(f"{log}: marked line {i + 1} is not an object")
        objs.append(o)
    if not objs or list(objs[0]) != ["meta"]:
        raise Bad(f"{log}: the first marked line is not the meta line")
    meta = objs[0]["meta"]
    if list(meta) != ["runner", "uname", "kernel", "scenario"]:
        raise Bad(f"{log}: bad meta line {meta}")
    if len(objs) - 1 != len(steps):
        raise Bad(f"{log}: {len(objs) - 1} results for {len(steps)} steps")
    keys = ["step", "op", "errno", "dmesg", "modules", "kernel_tainted"]
    tool_keys = keys + ["tool"]  # a tool step also has what the tool did
    for n, (o, s) in enumerate(zip(objs[1:], steps), 1):
        want = tool_keys if s["op"] == "tool" else keys
        if list(o) != want or o["step"] != n or o["op"] != s["op"]:
            raise Bad(f"{log}: result {n} does not match step {n} ({s['op']}): {lines[n][:200]!r}")
    for o in objs[1:]:
        for m in o["dmesg"]:
            if NOISE.match(m):
                raise Noise(f"{log}: step {o['step']}: boot noise in dmesg: {m!r}")
    with open(dst + ".tmp", "wb") as f:
        f.write(b"".join(l + b"\n" for l in lines))
    os.replace(dst + ".tmp", dst)


def main(argv):
    try:
        if len(argv) == 3 and argv[0] == "steps":
            cmd_steps(argv[1], argv[2])
        elif len(argv) == 2 and argv[0] == "append":
            cmd_append(argv[1])
        elif len(argv) == 3 and argv[0] == "cpio":
            cmd_cpio(argv[1], argv[2])
        elif len(argv) == 4 and argv[0] == "extract":
            cmd_extract(argv[1], argv[2], argv[3])
        else:
            sys.stderr.write(__doc__)
            return 2
    except Bad as e:
        sys.stderr.write(f"hosttool: {e}\n")
        return 1
    except Noise as e:
        sys.stderr.write(f"hosttool: {e}\n")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
