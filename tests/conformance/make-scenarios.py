#!/usr/bin/env python3
"""make-scenarios.py: writes tests/conformance/scenarios/*.jsonl (the committed scenario files).

Each scenario runs in one fresh boot of each real kernel (and in one fresh simulated kernel), so
once-per-boot log lines and taints show up in each file's first loads. Module paths are relative:
the recorder puts a kernel's fixtures (tests/fixtures/ko/<kernel>/) next to the scenario files,
and the simulator is given that directory with --modules-dir. The format is FORMAT.md.
Run it after changing a case, then re-record (tests/conformance/record.sh).
"""
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
NONBLOCK = 2048  # O_NONBLOCK, as rmmod passes it
TRUNC = 512      # O_TRUNC: forced unload


def finit(file, params="", flags=0, **kw):
    s = {"op": "finit_module", "file": file, "flags": flags, "params": params}
    s.update(kw)
    return s


def init(file, params="", **kw):
    s = {"op": "init_module", "file": file, "params": params}
    s.update(kw)
    return s


def rm(name, flags=NONBLOCK):
    return {"op": "delete_module", "name": name, "flags": flags}


def load_unload(params, module="mp_types"):
    """Load with params, then unload (the unload gives ENOENT when the load failed)."""
    return [finit(f"{module}.ko", params), rm(module)]


SCENARIOS = {}

# --- ELF validity: every broken image through both system calls -----------------------------
bad = ["bad_magic", "bad_truncated", "bad_shoff", "bad_secoff", "bad_machine", "bad_otherarch"]
SCENARIOS["elf"] = (
    [finit(f"{b}.ko") for b in bad]
    + [init(f"{b}.ko") for b in bad]
    + [
        finit("empty.ko"),                   # empty file: EINVAL from kernel_read_file
        init("empty.ko"),                    # zero-length image: ENOEXEC
        init("mp_lib.ko", len=0),
        init("mp_lib.ko", len=63),           # shorter than an ELF header
        init("mp_lib.ko", len=64),           # header only: section headers past the end
        init("mp_lib.ko", len=1024),
        init("mp_lib.ko.xz"),                # compressed bytes are not ELF
        finit("mp_lib.ko.gz"),
        finit("mp_lib.ko"),                  # finally a good one, through both calls
        rm("mp_lib"),
        init("mp_lib.ko"),
        rm("mp_lib"),
    ]
)

# --- vermagic, modversions and forced loads ------------------------------------------------
SCENARIOS["versions"] = [
    finit("bad_vermagic_release.ko"), rm("mp_lib"),
    finit("bad_vermagic_flags.ko"),
    finit("bad_vermagic_flags.ko", flags=2),  # IGNORE_VERMAGIC: forced, taints F
    rm("mp_lib"),
    init("bad_vermagic_flags.ko"),
    finit("bad_crc.ko"),
    init("bad_crc.ko"),
    finit("bad_crc.ko", flags=1),             # IGNORE_MODVERSIONS: forced
    rm("mp_types"),
    finit("bad_crc_layout.ko"),
    finit("bad_crc_layout.ko", flags=1),
    rm("mp_lib"),
    finit("no_versions.ko"),                  # no __versions: FORCE_LOAD kernels load it, F
    rm("mp_types"),
    finit("mp_lib.ko", flags=3),
    rm("mp_lib"),
    finit("mp_types.ko", flags=2, params="p_int=3"),
    rm("mp_types"),
]

# --- symbols: unknown, GPL-only, namespaces, weak, duplicates, use counts ------------------
SCENARIOS["symbols"] = [
    finit("mp_use.ko"),                       # exporter not loaded: unknown symbols
    finit("mp_unknown.ko"),
    finit("mp_weak.ko"),                      # weak undefined: fine
    rm("mp_weak"),
    finit("mp_export.ko"),
    finit("mp_use.ko"),
    finit("mp_use_ns.ko"),
    finit("mp_use_nons.ko"),                  # namespace not imported
    finit("mp_use_gplonly.ko"),               # proprietary module, GPL-only symbol
    finit("mp_prop_kgpl.ko"),                 # proprietary module, GPL-only vmlinux symbol
    finit("mp_export_dup.ko"),                # exports a symbol mp_export already exports
    rm("mp_export"),                          # in use: EWOULDBLOCK
    rm("mp_export", 0),
    rm("mp_use"),
    rm("mp_export"),
    rm("mp_use_ns"),
    rm("mp_export"),
    finit("mp_export_dup.ko"),                # now alone: loads
    finit("mp_use.ko"),                       # resolves against the duplicate's export? no: gpl missing
    rm("mp_use"),
    rm("mp_export_dup"),
    finit("mp_lib.ko"),
    init("mp_lib.ko"),                        # EEXIST
    rm("mp_lib"),
    finit("mp_prop.ko"),                      # proprietary, plain symbols only: loads, P
    rm("mp_prop"),
]

# --- init results, states, unload -----------------------------------------------------------
SCENARIOS["lifecycle"] = [
    finit("mp_initret.ko", init_returns=-19),               # default ret=-ENODEV
    finit("mp_initret.ko", "ret=-22", init_returns=-22),
    finit("mp_initret.ko", "ret=-1", init_returns=-1),
    init("mp_initret.ko", "ret=-12", init_returns=-12),
    finit("mp_initret.ko", "ret=0", init_returns=0),
    finit("mp_initret.ko", "ret=0", init_returns=0),        # EEXIST
    init("mp_initret.ko", "ret=0", init_returns=0),         # EEXIST
    rm("mp_initret"),
    finit("mp_initret.ko", "ret=7", init_returns=7),        # positive: warning, loads
    rm("mp_initret"),
    finit("mp_initpos.ko", init_returns=1),
    rm("mp_initpos"),
    finit("mp_noexit.ko"),
    rm("mp_noexit"),                                        # no exit: EBUSY
    rm("mp_noexit", 0),
    rm("mp_noexit", TRUNC | NONBLOCK),                      # forced: taints R
    rm("mp_nosuch"),
    rm("mp_nosuch", 0),
    rm(""),
    rm("x" * 100),                                          # longer than MODULE_NAME_LEN
    finit("mp_lib.ko"),
    rm("mp_lib", 0),
    finit("mp_types.ko"),
    rm("mp_types", TRUNC),
    finit("mp_types.ko"),
    rm("mp_types", 0xFFFF),                                 # unknown flag bits
    finit("mp_export.ko"),
    finit("mp_use.ko"),
    rm("mp_export", TRUNC | NONBLOCK),                      # in use: forced or not, EWOULDBLOCK
    rm("mp_use"),
    rm("mp_export"),
]

# --- taints ----------------------------------------------------------------------------------
SCENARIOS["taints"] = [
    finit("mp_staging.ko"),
    finit("mp_test.ko"),
    finit("mp_prop.ko"),
    finit("mp_lib.ko"),
    rm("mp_staging"), rm("mp_test"), rm("mp_prop"), rm("mp_lib"),
    finit("mp_staging.ko"),       # second time: no once-per-boot lines
    finit("mp_test.ko"),
    finit("mp_prop.ko"),
    rm("mp_staging"), rm("mp_test"), rm("mp_prop"),
]

# --- finit_module: descriptors, flags, compression --------------------------------------------
SCENARIOS["finit"] = [
    finit("mp_lib.ko", fd="wronly"),
    finit("mp_lib.ko", fd="rdwr"),
    finit("mp_lib.ko", fd="path"),
    finit("mp_lib.ko", fd="closed"),
    finit("."),                                  # a directory
    finit("/dev/null"),                          # a character device
    finit("empty.ko"),
    finit("mp_lib.ko", flags=8),
    finit("mp_lib.ko", flags=-1 & 0xFFFFFFFF),
    finit("mp_lib.ko", flags=4),                 # not compressed, but says it is
    finit("mp_lib.ko.xz", flags=4),
    rm("mp_lib"),
    finit("mp_lib.ko.gz", flags=4),
    finit("mp_lib.ko.zst", flags=4),
    finit("mp_lib.ko.xz"),                       # compressed without the flag
    finit("mp_types.ko.xz", "p_int=9", flags=4),
    rm("mp_types"),
    finit("mp_types.ko.xz", flags=5),
    rm("mp_types"),
    finit("mp_lib.ko", params=None),             # NULL params: EFAULT, late
    init("mp_lib.ko", params=None),
    finit("mp_lib.ko"),
    rm("mp_lib"),
]

# --- appended signatures ---------------------------------------------------------------------
sigs = ["bad_sig_garbage", "bad_sig_params", "bad_sig_type", "bad_sig_len"]
SCENARIOS["signature"] = (
    [s for b in sigs for s in (finit(f"{b}.ko"), rm("mp_lib"))]
    + [s for b in sigs for s in (init(f"{b}.ko"), rm("mp_lib"))]
    + [finit("bad_sig_garbage.ko", flags=1), rm("mp_lib"), finit("bad_sig_garbage.ko", flags=2), rm("mp_lib")]
)

SCENARIOS["sig_enforce"] = [
    {"op": "write", "path": "/sys/module/module/parameters/sig_enforce", "value": "1"},
    finit("mp_lib.ko"),
    init("mp_lib.ko"),
    finit("bad_sig_type.ko"),
    finit("bad_sig_garbage.ko"),
    finit("mp_lib.ko", flags=2),
    {"op": "write", "path": "/sys/module/module/parameters/sig_enforce", "value": "0"},
    finit("mp_lib.ko"),
]

SCENARIOS["blacklist"] = [
    {"op": "boot", "append": "module_blacklist=mp_lib,mp_test"},
    finit("mp_lib.ko"),
    init("mp_lib.ko"),
    finit("mp_test.ko"),
    finit("bad_vermagic_flags.ko"),              # blacklist is checked before vermagic
    finit("mp_types.ko"),
    rm("mp_types"),
]

SCENARIOS["permissions"] = [
    finit("mp_lib.ko"),
    {"op": "write", "path": "/proc/sys/kernel/modules_disabled", "value": "1"},
    finit("mp_types.ko"),
    init("mp_types.ko"),
    finit("bad_magic.ko"),
    rm("mp_lib"),
    rm("mp_nosuch"),
    {"op": "write", "path": "/proc/sys/kernel/modules_disabled", "value": "0"},
]

SCENARIOS["capability"] = [
    finit("mp_lib.ko"),
    {"op": "drop_capability", "name": "CAP_SYS_MODULE"},
    finit("mp_types.ko"),
    init("mp_types.ko"),
    finit("mp_lib.ko", flags=8),                 # EPERM comes before the flags check
    rm("mp_lib"),
]

# A module named like a built-in module that has parameters (/sys/module/printk): refused when
# its sysfs directory is made (mod_sysfs_init), both system calls, before and after a good load.
SCENARIOS["builtin"] = [
    finit("builtin_named.ko"),
    init("builtin_named.ko"),
    finit("mp_lib.ko"),
    finit("builtin_named.ko"),
    rm("mp_lib"),
    rm("printk"),
]

# Odd struct module names (found by fuzzing), the fixtures of make-variants.py: mod->name ""
# (kobject_add refuses an empty name in mod_sysfs_init), 55 characters (the longest
# MODULE_NAME_LEN holds; delete_module copies at most 55 bytes of its argument, so a longer
# name whose first 55 match finds it), and bytes that are not UTF-8. Scenario strings are JSON,
# that is Unicode, and both runners pass them UTF-8 encoded: no step can give delete_module the
# byte 0xe9 alone, so latin1_name stays loaded to the end (the last steps) and the deletes try
# the UTF-8 spelling "mp_l\u00e9b" (bytes c3 a9) and the base name.
LONG_NAME = ("mp_long_name_" + "0123456789" * 5)[:55]
assert len(LONG_NAME) == 55
SCENARIOS["odd_names"] = [
    rm(""),                                      # nothing loaded: ENOENT
    finit("empty_name.ko"),                      # first load of the boot: once-only lines name ""
    init("empty_name.ko"),
    rm(""),
    finit("long_name.ko"),
    init("long_name.ko"),                        # EEXIST
    finit("mp_lib.ko"),                          # exports mp_lib_fn too: the owner is named
    rm(LONG_NAME[:54]),                          # a prefix: ENOENT
    rm(LONG_NAME + "XXXXX"),                     # 60 characters, the first 55 match
    init("long_name.ko"),
    rm(LONG_NAME + "X"),                         # 56 characters
    finit("long_name.ko"),
    rm(LONG_NAME, 0),
    finit("latin1_name.ko"),
    init("latin1_name.ko"),                      # EEXIST
    finit("mp_lib.ko"),                          # duplicate export, owner named in raw bytes
    rm("mp_l\u00e9b"),                           # UTF-8 c3 a9, not the module's e9: ENOENT
    rm("mp_lib"),
    rm(""),
]

# --- parameters: every type with good, boundary and bad values ------------------------------
def cases(name, values):
    return [f"{name}={v}" if v is not None else name for v in values]

numeric = {
    "p_byte": ["0", "255", "256", "-1", "0x7f", "010", "+1", "1a", ""],
    "p_short": ["-32768", "32767", "32768", "-32769", "-0x10", "0x7fff"],
    "p_ushort": ["0", "65535", "65536", "-1", "0xffff"],
    "p_int": ["2147483647", "-2147483648", "2147483648", "-2147483649", "0x7fffffff", "-010",
              "+5", "5x", "", None, "7", "0b1", "1 2"],
    "p_uint": ["4294967295", "4294967296", "-1", "0xffffffff", "0"],
    "p_long": ["9223372036854775807", "-9223372036854775808", "9223372036854775808", "-1"],
    "p_ulong": ["18446744073709551615", "18446744073709551616", "0x10", "-1"],
    "p_ullong": ["18446744073709551615", "18446744073709551616", "077"],
    "p_hexint": ["0x10", "16", "ff", "0xffffffff", "0x100000000", "-1"],
}
booly = {
    "p_bool": ["1", "0", "y", "N", "true", "off", "on", "2", "", None, "yes", "nonsense"],
    "p_invbool": ["1", "n", "x", None, ""],
    "p_bint": ["1", "0", "Y", "5", None],
    "p_boolen": ["1", "0", None, "n"],
}
strings = {
    "p_charp": ["abc", "", None, '"a b c"', "x" * 1024, "x" * 1025, "caf\u00e9"],
    "p_string": ["short", "x" * 15, "x" * 16, "", None, '"two words"'],
    "p_intarr": ["1,2,3", "1,2,3,4", "1,2,3,4,5", "", "1,,3", "1,x", "-1,0x10", "7"],
    "p_charparr": ["a,b,c", "a,b,c,d", '"a b",c', ",", "one"],
    "p_custom": ["5", "x", None],
    "p_hidden": ["5", "x"],
}


def param_scenario(table):
    steps = []
    for name, values in table.items():
        for p in cases(name, values):
            steps += load_unload(p)
    return steps


SCENARIOS["params_numeric"] = param_scenario(numeric)
SCENARIOS["params_bool"] = param_scenario(booly)
SCENARIOS["params_string"] = param_scenario(strings)

grammar = [
    "", " ", "p_int=1 p_uint=2", "  p_int=5\tp_bool=0\np_byte=3  ",
    "p-int=5", "p_int=1 p_int=2", "p_int=1 bad_value_for p_int=x p_uint=2",
    'p_charp="hello world"', '"p_charp=hello world"', 'p_charp=a"b c"d', 'p_charp="unterminated',
    'p_charp=""', "p_charp=a=b", "p_int=1 -- p_int=2", "-- p_int=2", "p_int=1 --", "--",
    "nosuch=1", "nosuch", "=5", "mp_types.p_int=5", "P_INT=5", "p_int=1 nosuch=2 p_uint=x",
    "dyndbg=+p", "dyndbg", "mp_types.dyndbg=+p", "async_probe", "async_probe=0", "async_probe=x",
    "p_int=x p_uint=y", "p_intarr=1,2 p_charparr=x,y p_string=z p_hexint=0x1",
    "p_bool p_invbool p_bint", "p_int=" + "9" * 30,
]
SCENARIOS["params_grammar"] = [s for g in grammar for s in load_unload(g)] + [
    init("mp_types.ko", "p_int=42 p_charp=via_init_module"), rm("mp_types"),
    finit("mp_lib.ko", "nosuch=1 dyndbg=+p"), rm("mp_lib"),
]


# --- kmod's tools (modloader's own insmod/rmmod/lsmod, in-process on the same kernel) -------
# Recorded only where modloader runs in the guest (amd64): the file name starts with "tools".
def tool(*argv):
    return {"op": "tool", "argv": list(argv)}


SCENARIOS["tools"] = [
    tool("lsmod"),
    tool("insmod", "mp_types.ko", "p_int=5", "p_charp=hello world"),
    tool("lsmod"),
    tool("insmod", "mp_types.ko"),                   # File exists
    tool("rmmod", "mp_types"),
    tool("insmod", "mp_export.ko"),
    tool("insmod", "mp_use.ko"),
    tool("lsmod"),
    tool("rmmod", "mp_export"),                      # in use
    tool("rmmod", "mp_use", "mp_export"),
    tool("rmmod", "mp_nosuch"),                      # not loaded
    tool("insmod", "bad_magic.ko"),                  # Invalid module format
    tool("insmod", "nosuch.ko"),                     # could not load module
    tool("insmod", "mp_unknown.ko"),                 # Unknown symbol
    tool("insmod", "mp_types.ko", "p_int=x"),        # Invalid parameters
    tool("insmod", "bad_vermagic_flags.ko"),
    tool("insmod", "-f", "bad_vermagic_flags.ko"),   # forced: loads, taints F
    tool("rmmod", "mp_lib"),
    tool("insmod", "mp_types.ko.xz", "p_int=7"),     # 6.1: userspace xz; 6.12: in-kernel
    tool("rmmod", "mp_types"),
    tool("insmod", "--userspace-decompress", "mp_types.ko.xz", "p_int=8"),  # userspace on both
    tool("rmmod", "mp_types"),
    tool("insmod", "mp_types.ko.gz"),                # userspace on both
    tool("rmmod", "mp_types"),
    tool("insmod", "mp_types.ko.zst"),
    tool("rmmod", "mp_types"),
    tool("insmod", "mp_noexit.ko"),
    tool("rmmod", "mp_noexit"),                      # no exit: busy
    tool("rmmod", "-f", "mp_noexit"),                # forced
    tool("lsmod"),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):
        if old.endswith(".jsonl"):
            os.unlink(os.path.join(OUT, old))
    total = 0
    for name, steps in SCENARIOS.items():
        with open(os.path.join(OUT, f"{name}.jsonl"), "w") as f:
            for s in steps:
                f.write(json.dumps(s, ensure_ascii=False) + "\n")
        total += len(steps)
        print(f"{name}.jsonl: {len(steps)} steps")
    print(f"total: {total} steps in {len(SCENARIOS)} scenarios")


if __name__ == "__main__":
    main()
