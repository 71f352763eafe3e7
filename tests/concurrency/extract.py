#!/usr/bin/env python3
"""extract.py: the host side of tests/concurrency/record.sh (python3 stdlib only).

  extract.py KERNEL RELEASE QEMU CONSOLE.log OUT.jsonl
      take the marked lines out of a guest's console log (guest/init.sh, guest/concurrent.c),
      check them (meta first, with uname RELEASE and the kernel's architecture; every case
      the meta names, once, in order; the fields of tests/concurrency/README.md; the done
      marker with rc=0; no error line),
      add the derived fields (waited, b_waited; kernel messages that come from the machine,
      not from the case, moved from 'log' to 'noise') and write OUT.jsonl: the meta line, then
      one line per case. Exit 1 (nothing written) on any problem.
  extract.py table FILE.jsonl...
      print a summary of recordings, one line per case and file: each process's call, errno
      (ok: returned 0) and whether it waited, what was loaded afterwards, the kernel log
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conformance", "guest"))
from hosttool import NOISE  # noqa: E402  (the boot-noise messages of the conformance recordings)

MARK = b"@@CONCUR@@ "
ERR = b"@@CONCUR-ERR@@ "
DONE = b"@@CONCUR-DONE@@ "
# a process that was started once A was seen Loading 'waited' when it returned no earlier than
# this many ms before the end of A's hold (hold_ms after Loading was seen)
MARGIN_MS = 200

CALLS = ("init_module", "finit_module", "delete_module")
WHENS = ("start", "loading", "going", "after")


class Bad(Exception):
    pass


def need(cond, what):
    if not cond:
        raise Bad(what)


def check_state(s, where):
    need(isinstance(s, dict) and set(s) == {"proc_modules", "sysfs", "initstate", "hold_ms", "init_ret"},
         f"{where}: bad state object {s!r}")
    need(s["proc_modules"] is None or s["proc_modules"].startswith("mp_hold "), f"{where}: bad proc_modules")


def check_case(c, name, hold):
    w = f"case {name}"
    need(c.get("case") == name, f"expected case {name}, got {c.get('case')!r}")
    need(c.get("hold_ms") == hold, f"{w}: hold_ms")
    co = c.get("coming")
    need(isinstance(co, dict) and isinstance(co.get("proc_modules"), str)
         and " Loading 0x0" in co["proc_modules"], f"{w}: bad coming {co!r}")
    procs = c.get("procs")
    need(isinstance(procs, list) and procs and procs[0].get("who") == "A"
         and procs[0].get("when") == "start", f"{w}: procs must start with A")
    for p in procs:
        need(p.get("call") in CALLS and p.get("when") in WHENS, f"{w}: bad process {p!r}")
        need(isinstance(p.get("ret"), int) and isinstance(p.get("start_ms"), (int, float))
             and isinstance(p.get("end_ms"), (int, float)) and p["end_ms"] >= p["start_ms"],
             f"{w}: bad process {p!r}")
        e = p.get("errno")
        need(e is None or (isinstance(e, str) and e.startswith("E")), f"{w}: bad errno in {p!r}")
        need((p["ret"] == 0) == (e is None), f"{w}: ret/errno disagree in {p!r}")
        need(p["ret"] in (0, -1), f"{w}: ret {p['ret']}")
    check_state(c.get("after"), f"{w}: after")
    if "between" in c:
        check_state(c["between"], f"{w}: between")
    need(isinstance(c.get("log"), list) and all(isinstance(x, str) for x in c["log"]), f"{w}: bad log")


def derive(c, hold):
    """waited per process started at 'loading'; b_waited: B's; noise out of log"""
    for p in c["procs"]:
        p["waited"] = p["end_ms"] >= hold - MARGIN_MS if p["when"] == "loading" else None
    b = [p for p in c["procs"] if p["who"] == "B"]
    c["b_waited"] = b[0]["waited"] if b else None
    c["noise"] = [x for x in c["log"] if NOISE.match(x)]
    c["log"] = [x for x in c["log"] if not NOISE.match(x)]


def table(files):
    for path in files:
        with open(path) as f:
            rows = [json.loads(x) for x in f if x.strip()]
        meta = rows[0]["meta"]
        print(f"== {meta['kernel']} ({meta['uname']}), hold {meta['hold_ms']} ms; warmup log: {meta['warmup_log']}")
        for c in rows[1:]:
            ps = []
            for p in c["procs"]:
                what = p["call"].split("_")[0] + ("(" + str(p["flags"]) + ")" if "flags" in p else "")
                r = p["errno"] or "ok"
                w = {True: " waited", False: " no-wait", None: ""}[p["waited"]]
                saw = f" saw {p['saw']}" if "saw" in p else ""
                ps.append(f"{p['who']}:{what}={r}{w}{saw} [{p['start_ms']:.0f}..{p['end_ms']:.0f}]")
            a = c["after"]
            after = "none" if a["proc_modules"] is None else f"{a['initstate']} hold_ms={a['hold_ms']}"
            print(f"  {c['case']:28} {'  '.join(ps)}  | after: {after}  | log: {c['log']}")


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "table":
        table(sys.argv[2:])
        return
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    kernel, release, qemu, console, out = sys.argv[1:]
    with open(console, "rb") as f:
        data = f.read()
    objs, done = [], None
    try:
        for raw in data.split(b"\n"):
            raw = raw.rstrip(b"\r")
            i = raw.find(b"@@CONCUR")
            if i < 0:
                continue
            raw = raw[i:]
            if raw.startswith(ERR):
                raise Bad("guest error: " + raw[len(ERR):].decode("utf-8", "replace"))
            if raw.startswith(DONE):
                need(done is None, "two done markers")
                done = raw[len(DONE):].decode()
                continue
            need(raw.startswith(MARK), f"bad marked line {raw[:80]!r}")
            need(done is None, "a line after the done marker")
            try:
                objs.append(json.loads(raw[len(MARK):]))
            except ValueError as e:
                raise Bad(f"not JSON ({e}): {raw[:120]!r}")
        need(done is not None, "no done marker (the guest did not finish)")
        need(done == "rc=0", f"guest exit status {done}")
        need(objs and "meta" in objs[0], "no meta line first")
        meta = objs[0]["meta"]
        need(meta.get("uname") == release, f"uname {meta.get('uname')!r}, expected {release}")
        arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(kernel.rsplit("-", 1)[-1])
        need(meta.get("machine") == arch, f"uname -m {meta.get('machine')!r}, expected {arch}")
        hold = meta.get("hold_ms")
        need(isinstance(hold, int) and hold > 0, "bad hold_ms")
        names = meta.get("cases")
        need(isinstance(names, list) and len(objs) == len(names) + 1,
             f"{len(objs) - 1} cases, the meta names {names and len(names)}")
        for c, n in zip(objs[1:], names):
            check_case(c, n, hold)
            derive(c, hold)
        meta["noise"] = [x for x in meta.get("warmup_log", []) if NOISE.match(x)]
        meta["warmup_log"] = [x for x in meta.get("warmup_log", []) if not NOISE.match(x)]
    except Bad as e:
        print(f"extract: {console}: {e}", file=sys.stderr)
        sys.exit(1)
    meta = {"kernel": kernel, "qemu": qemu, "margin_ms": MARGIN_MS, **meta}
    lines = [json.dumps({"meta": meta}, separators=(",", ":"))]
    lines += [json.dumps(c, separators=(",", ":")) for c in objs[1:]]
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
