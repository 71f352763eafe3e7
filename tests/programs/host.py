#!/usr/bin/env python3
"""host.py: the host side of tests/programs/record.sh (python3 stdlib and binutils' readelf).

  host.py libs SYSROOT FILE...
      the shared-library closure of FILE... (paths relative to SYSROOT, an extracted Debian root):
      every NEEDED soname found through the object's RUNPATH, then /lib/<triplet> and
      /usr/lib/<triplet>, with the symlinks that lead to it; one path a line. Exit 1 naming the
      first soname that is in none of them.
  host.py modules MODDIR CONF... -- NAME...
      the module files (relative to MODDIR, a depmod'd lib/modules/<release>) that modprobe may
      touch for NAME...: each name resolved like kmod (module name, else built-in: nothing, else
      modules.alias), then its modules.dep dependencies and the soft dependencies of
      modules.softdep and of the modprobe.d files CONF..., recursively; one path a line.
  host.py extract KERNEL RELEASE QEMU CONSOLE.log PACKAGES.env MODDIR STAGED.list OUT.jsonl
      take the guest's tar out of a console log (guest/init.sh), check it (meta, every command's
      files, done marker rc=0, no error line; every module the kernel itself asked modprobe for
      was in the guest's tree), write OUT.jsonl (format: tests/programs/README.md). Exit 1
      (nothing written) on any problem.
  host.py table FILE.jsonl...
      one line per command: seq, exit, argv, the first line of stdout and stderr, dmesg lines
"""
import base64
import fnmatch
import io
import json
import os
import re
import subprocess
import sys
import tarfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conformance", "guest"))
from hosttool import NOISE  # noqa: E402  (the boot-noise messages of the conformance recordings)

MARK = b"@@PROG@@ "
INFO = b"@@PROG-INFO@@ "
ERR = b"@@PROG-ERR@@ "
DONE = b"@@PROG-DONE@@ "
TRIPLET = "x86_64-linux-gnu"
FILES = ("argv", "stdout", "stderr", "exit", "dmesg", "request_module")


class Bad(Exception):
    pass


def need(cond, what):
    if not cond:
        raise Bad(what)


# ---- libs ----

def dynamic(path):
    """(NEEDED list, RUNPATH/RPATH list) of an ELF file"""
    out = subprocess.run(["readelf", "-dW", path], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)
    runpath = []
    for m in re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.+?)\]", out):
        runpath += m.split(":")
    return needed, runpath


def in_root(root, p):
    """resolve p (absolute, in the root's terms) inside root: returns the chain of relative paths
    (symlinks then the file), following symlinks as the guest would"""
    chain = []
    rel = p.lstrip("/")
    for _ in range(40):
        full = os.path.join(root, rel)
        if os.path.islink(full):
            chain.append(rel)
            t = os.readlink(full)
            rel = os.path.normpath(os.path.join(os.path.dirname(rel), t) if not t.startswith("/") else t.lstrip("/"))
            continue
        if os.path.isfile(full):
            chain.append(rel)
            return chain
        return None
    return None


def cmd_libs(root, files):
    seen, out, todo = set(), [], list(files)
    while todo:
        f = todo.pop(0)
        chain = in_root(root, f)
        if chain is None:
            sys.exit(f"host.py libs: {f}: not in {root}")
        for c in chain:
            if c not in seen:
                seen.add(c)
                out.append(c)
        needed, runpath = dynamic(os.path.join(root, chain[-1]))
        for so in needed:
            dirs = runpath + [f"/lib/{TRIPLET}", f"/usr/lib/{TRIPLET}"]
            for d in dirs:
                if in_root(root, os.path.join(d, so)):
                    p = os.path.join(d, so)
                    if p.lstrip("/") not in seen:
                        todo.append(p)
                    break
            else:
                sys.exit(f"host.py libs: {so} (NEEDED by {chain[-1]}) is in none of {dirs}: "
                         "a package is missing from tests/programs/packages.env")
    # the dynamic loader the binaries name (PT_INTERP) is libc6's /lib64/ld-linux-x86-64.so.2
    interp = in_root(root, "/lib64/ld-linux-x86-64.so.2")
    if interp is None:
        sys.exit("host.py libs: no /lib64/ld-linux-x86-64.so.2")
    for c in interp:
        if c not in seen:
            seen.add(c)
            out.append(c)
    print("\n".join(out))


# ---- modules ----

def norm(name):
    return name.replace("-", "_")


def modname(path):
    b = os.path.basename(path)
    return norm(b[:b.index(".ko")])


class Tree:
    def __init__(self, moddir, confs=()):
        self.dep, self.path = {}, {}
        with open(os.path.join(moddir, "modules.dep")) as f:
            for line in f:
                k, v = line.split(":", 1)
                self.dep[k] = v.split()
                self.path[modname(k)] = k
        self.builtin = set()
        with open(os.path.join(moddir, "modules.builtin")) as f:
            self.builtin = {modname(x.strip()) for x in f if x.strip()}
        self.alias = []
        with open(os.path.join(moddir, "modules.alias")) as f:
            for line in f:
                w = line.split()
                if len(w) == 3 and w[0] == "alias":
                    self.alias.append((w[1], norm(w[2])))
        self.softdep = {}
        for src in [os.path.join(moddir, "modules.softdep")] + list(confs):
            with open(src) as f:
                for line in f:
                    w = line.split()
                    if len(w) >= 2 and w[0] == "softdep":
                        self.softdep.setdefault(norm(w[1]), []).extend(x for x in w[2:] if x not in ("pre:", "post:"))
                    elif len(w) == 3 and w[0] == "alias":
                        self.alias.append((w[1], norm(w[2])))

    def resolve(self, name):
        """module names NAME stands for (empty: built in or unknown)"""
        n = norm(name)
        if n in self.path:
            return [n]
        if n in self.builtin:
            return []
        return sorted({m for p, m in self.alias
                       if fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(n, norm(p))})

    def closure(self, names):
        """relative paths of every module file modprobe may touch for names"""
        done, files, todo = set(), set(), list(names)
        while todo:
            n = todo.pop()
            for m in self.resolve(n):
                if m in done:
                    continue
                done.add(m)
                if m not in self.path:  # an alias naming a module that is built in or absent
                    continue
                p = self.path[m]
                files.add(p)
                files.update(self.dep[p])
                todo += [modname(d) for d in self.dep[p]] + self.softdep.get(m, [])
        return sorted(files)


def cmd_modules(moddir, confs, names):
    print("\n".join(Tree(moddir, confs).closure(names)))


# ---- extract ----

def dmesg_lines(raw):
    """'dmesg -c -r' output: '<N>[ time] text' per record; the texts, noise apart"""
    log, noise = [], []
    for line in raw.decode("utf-8", "replace").split("\n"):
        if not line:
            continue
        m = re.match(r"^<\d+>(?:\[\s*\d+\.\d+\] ?)?(.*)$", line)
        need(m, f"bad dmesg line {line!r}")
        (noise if NOISE.match(m.group(1)) else log).append(m.group(1))
    return log, noise


def text(b, what):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        raise Bad(f"{what}: not UTF-8")


def requests(raw):
    return [x for x in raw.decode("utf-8", "replace").split("\n") if x]


def requested_name(argv_line):
    """the module name of a kernel request ('-q -- NAME')"""
    w = argv_line.split()
    return w[w.index("--") + 1] if "--" in w and w.index("--") + 1 < len(w) else (w[-1] if w else "")


def cmd_extract(kernel, release, qemu, console, packages, moddir, staged_list, out):
    with open(console, "rb") as f:
        data = f.read()
    b64, done, errors = [], None, []
    for raw in data.split(b"\n"):
        raw = raw.rstrip(b"\r")
        i = raw.find(b"@@PROG")
        if i < 0:
            continue
        raw = raw[i:]
        if raw.startswith(ERR):
            errors.append(raw[len(ERR):].decode("utf-8", "replace"))
        elif raw.startswith(DONE):
            need(done is None, "two done markers")
            done = raw[len(DONE):].decode()
        elif raw.startswith(MARK):
            need(done is None, "a line after the done marker")
            b64.append(raw[len(MARK):])
        elif not raw.startswith(INFO):
            raise Bad(f"bad marked line {raw[:80]!r}")
    need(not errors, "guest error: " + "; ".join(errors))
    need(done is not None, "no done marker (the guest did not finish)")
    need(done == "rc=0", f"guest exit status {done}")
    need(b64, "no output")
    try:
        tar = tarfile.open(fileobj=io.BytesIO(base64.b64decode(b"".join(b64), validate=True)))
        files = {}
        for m in tar.getmembers():
            if m.isfile():
                files[os.path.normpath(m.name)] = tar.extractfile(m).read()
    except (ValueError, tarfile.TarError) as e:
        raise Bad(f"the guest's tar: {e}")

    def get(name):
        need(name in files, f"no {name} in the guest's output")
        return files[name]

    uname = text(get("meta/uname"), "uname").strip()
    need(uname == release, f"uname -r {uname!r}, expected {release}")
    machine = text(get("meta/machine"), "machine").strip()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(kernel.rsplit("-", 1)[-1])
    need(machine == arch, f"uname -m {machine!r}, expected {arch}")
    versions = {}
    for n in ("kmod", "busybox", "systemd"):
        need(get(f"meta/{n}_version/exit") == b"exit 0\n", f"{n} version probe failed")
        first = text(get(f"meta/{n}_version/stdout"), n).split("\n")[0]
        need(first, f"{n}: no version line")
        versions[n] = first
    pkgs = {}
    with open(packages) as f:
        for line in f:
            w = line.split()
            if w and not w[0].startswith("#"):
                pkgs[w[0]] = w[1]
    with open(staged_list) as f:
        staged = [x.strip() for x in f if x.strip()]
    tree = Tree(moddir, [])
    n = int(get("meta/commands"))
    need(n > 0, "no commands")
    unstaged = []

    def check_requests(lines, where):
        for r in lines:
            for m in tree.resolve(requested_name(r)):
                p = tree.path.get(m)
                if p and p not in staged and p not in " ".join(unstaged):
                    unstaged.append(f"{where}: the kernel asked for {r!r}: {p} is not in the guest's tree")

    # sorted: the boot's requests run concurrently (6.12: several crypto self-tests at once) and
    # come in a different order from one boot to the next
    boot_req = sorted(requests(get("meta/request_module")))
    check_requests(boot_req, "before the commands")
    rows = []
    for i in range(1, n + 1):
        for fn in FILES:
            get(f"{i}/{fn}")
        argv = text(files[f"{i}/argv"], f"command {i} argv")
        need(argv.endswith("\0"), f"command {i}: bad argv")
        cmd = argv[:-1].split("\0")
        ex = text(files[f"{i}/exit"], f"command {i} exit").strip()
        row = {"seq": i, "cmd": cmd,
               "stdout": text(files[f"{i}/stdout"], f"command {i} stdout"),
               "stderr": text(files[f"{i}/stderr"], f"command {i} stderr")}
        m = re.fullmatch(r"(exit|signal|exec) (\d+)", ex)
        need(m, f"command {i}: bad exit file {ex!r}")
        need(m.group(1) != "exec", f"command {i} {cmd}: could not be executed (errno {m.group(2)})")
        if m.group(1) == "exit":
            row["exit"] = int(m.group(2))
        else:
            row["exit"] = None
            row["signal"] = int(m.group(2))
        row["dmesg"], row["noise"] = dmesg_lines(files[f"{i}/dmesg"])
        row["request_module"] = requests(files[f"{i}/request_module"])
        check_requests(row["request_module"], f"command {i}")
        rows.append(row)
    need(f"{n + 1}/argv" not in files, "more commands than meta/commands says")
    need(not unstaged, "; ".join(unstaged) + " (add the name to MODULES in tests/programs/record.sh)")
    meta = {"kernel": kernel, "uname": uname, "machine": machine, "qemu": qemu,
            "packages": {k: pkgs[k] for k in ("kmod", "busybox-static", "systemd")},
            "libraries": {k: v for k, v in pkgs.items() if k not in ("kmod", "busybox-static", "systemd")},
            "versions": versions,
            "env": {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"},
            "modules": staged, "request_module_before": boot_req, "commands": n}
    lines = [json.dumps({"meta": meta}, separators=(",", ":"))]
    lines += [json.dumps(r, separators=(",", ":")) for r in rows]
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, out)


def first(s):
    s = s.split("\n")[0]
    return s[:70] + "..." if len(s) > 70 else s


def cmd_table(paths):
    for path in paths:
        with open(path) as f:
            rows = [json.loads(x) for x in f if x.strip()]
        meta = rows[0]["meta"]
        print(f"== {meta['kernel']} ({meta['uname']}): {meta['versions']['kmod']}; "
              f"{meta['versions']['busybox'][:40]}; {meta['versions']['systemd']}")
        for r in rows[1:]:
            ex = r["exit"] if r["exit"] is not None else f"sig{r['signal']}"
            print(f"{r['seq']:3} exit={ex} $ {' '.join(r['cmd'])}")
            if r["stdout"]:
                print(f"      out: {first(r['stdout'])}")
            if r["stderr"]:
                print(f"      err: {first(r['stderr'])}")
            for d in r["dmesg"]:
                print(f"      log: {d}")
            for q in r["request_module"]:
                print(f"      request_module: {q}")


def main():
    a = sys.argv[1:]
    try:
        if len(a) >= 2 and a[0] == "libs":
            cmd_libs(a[1], a[2:])
        elif len(a) >= 3 and a[0] == "modules" and "--" in a:
            i = a.index("--")
            cmd_modules(a[1], a[2:i], a[i + 1:])
        elif len(a) == 9 and a[0] == "extract":
            cmd_extract(*a[1:])
        elif len(a) >= 2 and a[0] == "table":
            cmd_table(a[1:])
        else:
            sys.exit(__doc__)
    except Bad as e:
        print(f"host.py {a[0]}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
