//! Unit tests of the parameter layer: the grammar and per-type behaviour through the
//! standalone API, memory effects, version differences, and a property test that no input
//! panics.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::conformance_tests::mp_types_decls;
use super::ops::KMALLOCED_PARAM_LABEL;
use super::standalone::{ParamDecl, ParamType as T, StandaloneModule, Value};
use super::table::{KERNEL_PARAM_OPS_FL_NOARG, OpFn, StdOps};
use super::{
    ArgBuf, Ctx, KernelFn, NoModuleCode, ParamEnv, destroy_params, load_module_parse_args,
};
use crate::errno::Errno;
use crate::log::KernelLog;
use crate::memory::RegionKind;
use crate::profile::KernelVersion;

fn s(v: &str) -> Value {
    Value::Str(Some(v.as_bytes().to_vec()))
}

/// Module `m` of the reference notes' worked examples.
fn decls() -> Vec<ParamDecl> {
    let p = |n: &str, t: T, v: Value| ParamDecl::new(n, t, 0o644, v);
    vec![
        p("i", T::Int, Value::Int(0)),
        p("u", T::Uint, Value::Int(0)),
        p("b", T::Byte, Value::Int(0)),
        p("s", T::Short, Value::Int(0)),
        p("l", T::Long, Value::Int(0)),
        p("ull", T::Ullong, Value::Int(0)),
        p("h", T::Hexint, Value::Int(0)),
        p("c", T::Charp, Value::Str(None)),
        p("f", T::Bool, Value::Bool(false)),
        p("inv", T::Invbool, Value::Bool(false)),
        p("bi", T::Bint, Value::Int(0)),
        p("eo", T::BoolEnableOnly, Value::Bool(true)),
        p("str", T::String { maxlen: 8 }, s("")),
        p(
            "arr",
            T::Array {
                elem: Box::new(T::Int),
                max: 4,
                with_num: true,
            },
            Value::Array(vec![]),
        ),
        p(
            "carr",
            T::Array {
                elem: Box::new(T::Charp),
                max: 3,
                with_num: false,
            },
            Value::Array(vec![]),
        ),
        p("a_b", T::Int, Value::Int(0)),
    ]
}

struct Run {
    errno: Option<Errno>,
    log: Vec<String>,
    values: BTreeMap<String, String>,
    async_probe: bool,
}

fn run_on(decls: &[ParamDecl], args: &[u8], env: &ParamEnv) -> Run {
    let mut m = StandaloneModule::new("m", decls).expect("valid table");
    let out = m.load(args, env);
    // The values as they are after the parameter step, loaded or not.
    let values = m
        .sysfs_values(env)
        .into_iter()
        .map(|(k, v)| {
            let t = match v {
                Ok(b) => super::decode_bytes(&b),
                Err(e) => format!("<{e}>"),
            };
            (k, t)
        })
        .collect();
    Run {
        errno: out.errno,
        log: out.log.into_iter().map(|l| l.text).collect(),
        values,
        async_probe: out.async_probe_requested,
    }
}

fn run(args: &str) -> Run {
    run_on(
        &decls(),
        args.as_bytes(),
        &ParamEnv::new(KernelVersion::V6_12),
    )
}

fn val(args: &str, name: &str) -> String {
    let r = run(args);
    assert_eq!(r.errno, None, "{args}: {:?}", r.log);
    r.values.get(name).cloned().unwrap_or_default()
}

fn fails(args: &str, e: Errno, log: &[&str]) {
    let r = run(args);
    assert_eq!(r.errno, Some(e), "{args}");
    assert_eq!(r.log, log, "{args}");
}

const EINVAL: Errno = Errno::EINVAL;
const ERANGE: Errno = Errno::ERANGE;

#[test]
fn numbers() {
    assert_eq!(val("i=42", "i"), "42\n");
    assert_eq!(val("i=0x2A", "i"), "42\n");
    assert_eq!(val("i=0X2a", "i"), "42\n");
    assert_eq!(val("i=052", "i"), "42\n");
    fails("i=08", EINVAL, &["m: `08' invalid for parameter `i'"]);
    assert_eq!(val("i=-2147483648", "i"), "-2147483648\n");
    fails(
        "i=2147483648",
        ERANGE,
        &["m: `2147483648' invalid for parameter `i'"],
    );
    assert_eq!(val("i=+7", "i"), "7\n");
    fails("i=-+7", EINVAL, &["m: `-+7' invalid for parameter `i'"]);
    fails(
        "i= 7",
        EINVAL,
        &[
            "m: `' invalid for parameter `i'",
            "m: unknown parameter '7' ignored",
        ],
    );
    fails("i", EINVAL, &["m: `' invalid for parameter `i'"]);
    assert_eq!(val("i=\"5\"", "i"), "5\n");
    assert_eq!(val("i=\"5", "i"), "5\n");
    fails(
        "i=5\" u=2",
        EINVAL,
        &["m: `5\" u=2' invalid for parameter `i'"],
    );
    assert_eq!(val("i=\"5\n\"", "i"), "5\n");
    let r = run("i=5\nu=2");
    assert_eq!(
        (r.values["i"].as_str(), r.values["u"].as_str()),
        ("5\n", "2\n")
    );
    fails("i==5", EINVAL, &["m: `=5' invalid for parameter `i'"]);
    fails("u=-1", EINVAL, &["m: `-1' invalid for parameter `u'"]);
    fails("u=-0", EINVAL, &["m: `-0' invalid for parameter `u'"]);
    assert_eq!(val("u=4294967295", "u"), "4294967295\n");
    assert_eq!(val("u=0xFFFFFFFF", "u"), "4294967295\n");
    assert_eq!(val("b=255", "b"), "255\n");
    assert_eq!(val("b=0xff", "b"), "255\n");
    fails("b=256", ERANGE, &["m: `256' invalid for parameter `b'"]);
    assert_eq!(val("s=-0x8000", "s"), "-32768\n");
    assert_eq!(val("l=-9223372036854775808", "l"), "-9223372036854775808\n");
    fails(
        "ull=99999999999999999999x",
        ERANGE,
        &["m: `99999999999999999999x' invalid for parameter `ull'"],
    );
    assert_eq!(val("h=255", "h"), "0x0000ff\n");
    assert_eq!(val("h=0", "h"), "0x000000\n");
    assert_eq!(val("h=0xdeadbeef", "h"), "0xdeadbeef\n");
    assert_eq!(val("h=16", "h"), "0x000010\n");
    for bad in ["i=0b101", "i=1e3", "i=0x", "i=0xg"] {
        assert_eq!(run(bad).errno, Some(EINVAL), "{bad}");
    }
    // A failed set leaves the old value.
    let r = run("i=3 i=x");
    assert_eq!((r.errno, r.values["i"].as_str()), (Some(EINVAL), "3\n"));
}

#[test]
fn bools() {
    assert_eq!(val("f", "f"), "Y\n");
    fails("f=", EINVAL, &["m: `' invalid for parameter `f'"]);
    for (a, v) in [
        ("yes", "Y"),
        ("Nope", "N"),
        ("on", "Y"),
        ("off", "N"),
        ("of", "N"),
        ("true", "Y"),
        ("0x1", "N"),
    ] {
        assert_eq!(val(&format!("f={a}"), "f"), format!("{v}\n"), "{a}");
    }
    assert_eq!(run("f=o").errno, Some(EINVAL));
    assert_eq!(run("f=2").errno, Some(EINVAL));
    fails("inv", EINVAL, &["m: `' invalid for parameter `inv'"]);
    assert_eq!(val("inv=y", "inv"), "Y\n");
    assert_eq!(val("inv=n", "inv"), "N\n");
    assert_eq!(val("bi", "bi"), "1\n");
    assert_eq!(val("bi=n", "bi"), "0\n");
    fails("eo=0", Errno::EROFS, &["m: `0' invalid for parameter `eo'"]);
    assert_eq!(val("eo=1", "eo"), "Y\n");
    assert_eq!(val("eo", "eo"), "Y\n");
}

#[test]
fn bool_enable_only_from_false() {
    let mut d = decls();
    d[11] = ParamDecl::new("eo", T::BoolEnableOnly, 0o644, Value::Bool(false));
    let env = ParamEnv::new(KernelVersion::V6_1);
    let r = run_on(&d, b"eo=0", &env);
    assert_eq!((r.errno, r.values["eo"].as_str()), (None, "N\n"));
    let r = run_on(&d, b"eo=1 eo=0", &env);
    assert_eq!(r.errno, Some(Errno::EROFS));
    assert_eq!(r.values["eo"], "Y\n");
}

#[test]
fn strings() {
    assert_eq!(val("", "c"), "(null)\n");
    assert_eq!(val("c=hello", "c"), "hello\n");
    assert_eq!(val("c=", "c"), "\n");
    fails("c", EINVAL, &["m: `' invalid for parameter `c'"]);
    assert_eq!(val("c=\"hello world\"", "c"), "hello world\n");
    assert_eq!(val("\"c=hello world\"", "c"), "hello world\n");
    assert_eq!(val("c=hello\" \"world", "c"), "hello\" \"world\n");
    assert_eq!(val("c=\"a\"b", "c"), "a\"b\n");
    let r = run("\"c\"=x");
    assert_eq!(r.log, ["m: unknown parameter 'c\"' ignored"]);
    assert_eq!(r.values["c"], "(null)\n");
    let r = run("c='x y'");
    assert_eq!(r.log, ["m: unknown parameter 'y'' ignored"]);
    assert_eq!(r.values["c"], "'x\n");
    let r = run("\"a=\"b c\"\"");
    assert_eq!(
        r.log,
        [
            "m: unknown parameter 'a' ignored",
            "m: unknown parameter 'c\"\"' ignored"
        ]
    );
    let long = "x".repeat(1024);
    assert_eq!(val(&format!("c={long}"), "c"), format!("{long}\n"));
    let long = "x".repeat(1025);
    fails(
        &format!("c={long}"),
        Errno::ENOSPC,
        &[
            "c: string parameter too long",
            &format!("m: `{long}' too large for parameter `c'"),
        ],
    );
    assert_eq!(val("str=1234567", "str"), "1234567\n");
    fails(
        "str=12345678",
        Errno::ENOSPC,
        &[
            "str: string doesn't fit in 7 chars.",
            "m: `12345678' too large for parameter `str'",
        ],
    );
    // strcpy leaves the old tail after the new NUL; %s stops at the NUL.
    assert_eq!(val("str=abcdef str=x", "str"), "x\n");
    // Bytes that are not UTF-8 survive (shown as U+00XX).
    assert_eq!(val("c=x\u{a0}", "c"), "x\u{c2}\n");
}

#[test]
fn arrays() {
    let r = run("arr=1,2,3");
    assert_eq!(r.values["arr"], "1,2,3\n");
    fails(
        "arr=1,2,3,4,5",
        EINVAL,
        &[
            "arr: can only take 4 arguments",
            "m: `1' invalid for parameter `arr'",
        ],
    );
    fails(
        "arr=1,2,3,4,",
        EINVAL,
        &[
            "arr: can only take 4 arguments",
            "m: `1' invalid for parameter `arr'",
        ],
    );
    // Elements set before the failure stay, and the count says how many.
    let r = run("arr=7,8,");
    assert_eq!((r.errno, r.values["arr"].as_str()), (Some(EINVAL), "7,8\n"));
    assert_eq!(r.log, ["m: `7' invalid for parameter `arr'"]);
    assert_eq!(run("arr=1,,3").errno, Some(EINVAL));
    assert_eq!(run("arr=").errno, Some(EINVAL));
    assert_eq!(run("arr").errno, Some(EINVAL));
    assert_eq!(run("arr=\"1, 2\"").errno, Some(EINVAL));
    assert_eq!(val("arr=0x10,010,10", "arr"), "16,8,10\n");
    assert_eq!(val("", "arr"), "");
    assert_eq!(val("", "carr"), "(null),(null),(null)\n");
    assert_eq!(val("carr=a,,b", "carr"), "a,,b\n");
    assert_eq!(val("carr=a", "carr"), "a,(null),(null)\n");
    assert_eq!(val("carr=a,b carr=c", "carr"), "c,b,(null)\n");
}

#[test]
fn grammar() {
    assert_eq!(val("a-b=1", "a_b"), "1\n");
    assert_eq!(val("a_b=1", "a_b"), "1\n");
    assert_eq!(run("A_B=1").log, ["m: unknown parameter 'A_B' ignored"]);
    assert_eq!(val("i=1 i=2", "i"), "2\n");
    let r = run("i=x u=5");
    assert_eq!((r.errno, r.values["u"].as_str()), (Some(EINVAL), "5\n"));
    let r = run("i=x u=-1 b=300");
    assert_eq!(r.errno, Some(ERANGE));
    assert_eq!(r.log.len(), 3);
    let r = run("i=1 -- u=2");
    assert_eq!(r.log, ["m: parameters 'u=2' after `--' ignored"]);
    assert_eq!(
        (r.values["i"].as_str(), r.values["u"].as_str()),
        ("1\n", "0\n")
    );
    fails("i=x -- u=2", EINVAL, &["m: `x' invalid for parameter `i'"]);
    assert_eq!(run("i=1 --").log, ["m: parameters '' after `--' ignored"]);
    assert_eq!(
        run("\"--\" u=2").log,
        ["m: parameters 'u=2' after `--' ignored"]
    );
    assert_eq!(
        run("-- a  b ").log,
        ["m: parameters 'a  b ' after `--' ignored"]
    );
    assert_eq!(run("--=1").log, ["m: unknown parameter '--' ignored"]);
    let r = run("\t i=1\x0c\x0bu=2\r\n");
    assert_eq!(
        (r.values["i"].as_str(), r.values["u"].as_str()),
        ("1\n", "2\n")
    );
    assert_eq!(run("=5").log, ["m: unknown parameter '=5' ignored"]);
    assert_eq!(run("\"\"").log, ["m: unknown parameter '' ignored"]);
    assert!(run("").log.is_empty() && run(" \t ").log.is_empty());
}

#[test]
fn nbsp_is_a_separator() {
    let r = run_on(
        &decls(),
        b"i=1\xa0u=2 c=x\xc2\xa0b=3",
        &ParamEnv::new(KernelVersion::V6_1),
    );
    assert_eq!(r.errno, None);
    assert_eq!(r.values["i"], "1\n");
    assert_eq!(r.values["u"], "2\n");
    assert_eq!(r.values["c"], "x\u{c2}\n");
    assert_eq!(r.values["b"], "3\n");
}

#[test]
fn unknown_names_dyndbg_and_async_probe() {
    assert_eq!(run("x.y=1").log, ["m: unknown parameter 'x' ignored"]);
    assert!(run("dyndbg=+p").log.is_empty());
    assert!(run("dyndbg").log.is_empty());
    assert!(run("foo.dyndbg=+p").log.is_empty());
    assert_eq!(
        run("dyndbg=+x").log,
        ["dyndbg: unknown flag 'x'", "dyndbg: flags parse failed"]
    );
    let mut env = ParamEnv::new(KernelVersion::V6_12);
    env.dynamic_debug_core = false;
    let r = run_on(&decls(), b"dyndbg=+p x.y=1 foo.dyndbg", &env);
    assert_eq!(r.errno, None);
    assert_eq!(
        r.log,
        [
            "dyndbg param is supported only in CONFIG_DYNAMIC_DEBUG builds",
            "m: unknown parameter 'x.y' ignored",
            "m: unknown parameter 'foo.dyndbg' ignored"
        ]
    );
    for (a, v) in [
        ("async_probe", true),
        ("async_probe=1", true),
        ("async_probe=0", false),
        ("async_probe=off", false),
        ("async_probe=maybe", true),
        ("async_probe=", true),
        ("", false),
    ] {
        let r = run(a);
        assert_eq!((r.async_probe, r.log.len()), (v, 0), "{a}");
    }
    assert_eq!(
        run("async-probe=1").log,
        ["m: unknown parameter 'async-probe' ignored"]
    );
}

#[test]
fn unsafe_hw_custom_and_levels() {
    let mut d = vec![
        ParamDecl::new("danger", T::Int, 0o644, Value::Int(0)).unsafe_(),
        ParamDecl::new("io", T::Int, 0o444, Value::Int(0)).hw(),
        ParamDecl::new(
            "cb",
            T::Custom {
                symbol: "my_ops".into(),
                flags: KERNEL_PARAM_OPS_FL_NOARG,
                set: OpFn::Kernel(KernelFn::SetBint),
                get: OpFn::Kernel(KernelFn::GetInt),
                free: OpFn::Null,
                storage: Box::new(T::Int),
            },
            0o600,
            Value::Int(5),
        ),
        ParamDecl::new(
            "opaque",
            T::Custom {
                symbol: "other_ops".into(),
                flags: 0,
                set: OpFn::Opaque("other_set".into()),
                get: OpFn::Null,
                free: OpFn::Null,
                storage: Box::new(T::Int),
            },
            0o644,
            Value::Int(0),
        ),
    ];
    let mut env = ParamEnv::new(KernelVersion::V6_12);
    let mut m = StandaloneModule::new("m", &d).expect("table");
    let out = m.load(b"danger=1 io=2 cb opaque=zz", &env);
    assert_eq!(out.errno, None);
    assert!(out.taint_user);
    assert_eq!(
        out.log.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
        ["Setting dangerous option danger - tainting kernel"]
    );
    let v = out.values.expect("loaded");
    assert_eq!(v["cb"], Ok(b"1\n".to_vec()));
    assert_eq!(v["io"], Ok(b"2\n".to_vec()));
    assert_eq!(v["opaque"], Err(Errno::EPERM));
    assert_eq!(m.params()[2].ops.symbol(), "my_ops");
    assert_eq!(m.params()[0].ops.symbol(), StdOps::Int.symbol());
    env.params_locked_down = true;
    let r = run_on(&d, b"io=2", &env);
    assert_eq!(r.errno, Some(Errno::EPERM));
    assert_eq!(
        r.log,
        [
            "Lockdown: insmod: unsafe module parameters is restricted; see man kernel_lockdown.7",
            "m: `2' invalid for parameter `io'"
        ]
    );
    // A level outside the window is skipped silently (never for modules: the window is
    // -32768..32767; here through parse_args directly).
    d[0].level = 3;
    let m = StandaloneModule::new("m", &d).expect("table");
    let mut mem = m.memory().clone();
    let mut log = KernelLog::new();
    let syms = |a: u64| m.symbol_at(a);
    let mut code = NoModuleCode;
    let mut ctx = Ctx::new(&env, &mut mem, &mut log, &syms, &mut code);
    let mut buf = ArgBuf::new(b"danger=1 nosuch=1");
    let r = super::parse_args(b"m", &mut buf, m.params(), 0, 2, None, &mut ctx);
    assert_eq!(r, Err(Errno::ENOENT));
    assert!(!ctx.taint_user);
    assert_eq!(log.texts(), ["m: Unknown parameter `nosuch'"]);
}

#[test]
fn sysfs_reads_and_writes() {
    let env = ParamEnv::new(KernelVersion::V6_12);
    let mut d = decls();
    d.push(ParamDecl::new("ro", T::Int, 0o444, Value::Int(1)));
    d.push(ParamDecl::new("hidden", T::Int, 0, Value::Int(1)));
    let mut m = StandaloneModule::new("m", &d).expect("table");
    assert_eq!(m.load(b"", &env).errno, None);
    assert_eq!(m.sysfs_write("i", b"7\n", &env).0, Ok(2));
    assert_eq!(m.get("i", &env), Some(Ok(b"7\n".to_vec())));
    assert_eq!(m.sysfs_write("c", b"hello\n", &env).0, Ok(6));
    assert_eq!(m.get("c", &env), Some(Ok(b"hello\n\n".to_vec())));
    assert_eq!(m.sysfs_write("arr", b"1,2,x", &env).0, Err(EINVAL));
    assert_eq!(m.get("arr", &env), Some(Ok(b"1,2\n".to_vec())));
    assert_eq!(m.sysfs_write("ro", b"2", &env).0, Err(Errno::EIO));
    assert_eq!(m.sysfs_write("i", b"", &env).0, Ok(0));
    assert_eq!(m.sysfs_write("hidden", b"2", &env).0, Err(Errno::ENOENT));
    assert!(!m.sysfs_values(&env).contains_key("hidden"));
    assert_eq!(m.get("hidden", &env), Some(Ok(b"1\n".to_vec())));
}

fn kmalloced(mem: &crate::memory::Memory) -> usize {
    mem.regions()
        .filter(|r| r.kind == RegionKind::Heap && r.label == KMALLOCED_PARAM_LABEL)
        .count()
}

/// Run the parameter step on the mp_types mirror with a memory limit, then destroy_params.
fn charp_under_limit(
    version: KernelVersion,
    args: &[u8],
    extra: u64,
) -> (Result<(), Errno>, Vec<u8>, usize, usize) {
    let env = ParamEnv::new(version);
    let m = StandaloneModule::new("mp_types", &mp_types_decls()).expect("table");
    let mut mem = crate::memory::Memory::new(m.memory().used() + extra);
    for r in m.memory().regions() {
        mem.alloc(r.base, r.bytes.len() as u64, r.kind, r.label.clone())
            .expect("copy");
        mem.write(r.base, &r.bytes).expect("copy");
    }
    let mut log = KernelLog::new();
    let syms = |a: u64| m.symbol_at(a);
    let mut code = NoModuleCode;
    let mut ctx = Ctx::new(&env, &mut mem, &mut log, &syms, &mut code);
    let out = load_module_parse_args(b"mp_types", ArgBuf::new(args), m.params(), false, &mut ctx);
    let charp = m
        .params()
        .iter()
        .find(|p| p.name == b"p_charp")
        .map(|p| super::param_attr_show(p, &mut ctx))
        .and_then(Result::ok)
        .unwrap_or_default();
    let before = kmalloced(ctx.mem);
    destroy_params(m.params(), &mut ctx);
    let after = kmalloced(ctx.mem);
    (out.result, charp, before, after)
}

#[test]
fn charp_copies_are_kmalloced_and_freed() {
    for v in [KernelVersion::V6_1, KernelVersion::V6_12] {
        let (r, c, before, after) =
            charp_under_limit(v, b"p_charp=a p_charp=bb p_charparr=x,y", 1 << 20);
        assert_eq!(
            (r, c.as_slice(), before, after),
            (Ok(()), &b"bb\n"[..], 3, 0)
        );
    }
}

#[test]
fn charp_enomem_differs_between_versions() {
    // Room for the first copy (16 + 2 bytes) or the second (16 + 4), not both.
    let args = b"p_charp=a p_charp=bcd";
    let (r, c, _, _) = charp_under_limit(KernelVersion::V6_1, args, 20);
    assert_eq!((r, c.as_slice()), (Err(Errno::ENOMEM), &b"a\n"[..]));
    // 6.12 frees the old copy first, so the second fits.
    let (r, c, _, _) = charp_under_limit(KernelVersion::V6_12, args, 20);
    assert_eq!((r, c.as_slice()), (Ok(()), &b"bcd\n"[..]));
    // 6.12 with no room at all: the old value is gone, the pointer NULL.
    let (r, c, _, _) = charp_under_limit(KernelVersion::V6_12, b"p_charp=abc", 0);
    assert_eq!((r, c.as_slice()), (Err(Errno::ENOMEM), &b"(null)\n"[..]));
    let (r, c, _, _) = charp_under_limit(KernelVersion::V6_1, b"p_charp=abc", 0);
    assert_eq!((r, c.as_slice()), (Err(Errno::ENOMEM), &b"hello\n"[..]));
}

#[test]
fn table_reader_reads_what_was_laid_out() {
    let m = StandaloneModule::new("mp_types", &mp_types_decls()).expect("table");
    let names: Vec<String> = m.params().iter().map(|p| p.name_str()).collect();
    assert_eq!(names.len(), 19);
    assert_eq!(names[0], "p_bool");
    let kinds: Vec<&str> = m.params().iter().map(|p| p.ops.symbol()).collect();
    assert_eq!(
        kinds,
        [
            "param_ops_bool",
            "param_ops_invbool",
            "param_ops_bint",
            "param_ops_byte",
            "param_ops_short",
            "param_ops_ushort",
            "param_ops_int",
            "param_ops_uint",
            "param_ops_long",
            "param_ops_ulong",
            "param_ops_ullong",
            "param_ops_hexint",
            "param_ops_charp",
            "param_ops_string",
            "param_array_ops",
            "param_array_ops",
            "param_ops_bool_enable_only",
            "param_ops_int",
            "mp_custom_ops",
        ]
    );
    assert!(m.params().iter().all(|p| p.level == -1 && p.flags == 0));
    assert_eq!(m.params()[17].perm, 0);
    // A section size that is not a multiple of 40 is truncated (sh_size / 40).
    let p = m.params()[0].clone();
    let base = m
        .memory()
        .regions()
        .find(|r| r.label.ends_with("__param"))
        .map(|r| r.base)
        .expect("section");
    let syms = |a: u64| m.symbol_at(a);
    let t = super::read_param_section(m.memory(), base, 79, &syms).expect("read");
    assert_eq!(t, vec![p]);
    assert_eq!(
        super::read_param_section(m.memory(), 0x1000, 40, &syms),
        Err(Errno::EFAULT)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_byte_string_panics(args in proptest::collection::vec(any::<u8>(), 0..200)) {
        for v in [KernelVersion::V6_1, KernelVersion::V6_12] {
            let mut env = ParamEnv::new(v);
            env.dynamic_debug_core = args.first().is_some_and(|b| b & 1 == 0);
            let mut m = StandaloneModule::new("mp_types", &mp_types_decls()).expect("table");
            let out = m.load(&args, &env);
            // At most one live copy per charp slot (p_charp and three array elements).
            prop_assert!(kmalloced(m.memory()) <= 4);
            if out.errno.is_none() {
                prop_assert!(out.values.is_some());
            }
        }
        let _ = super::kstrtox::kstrtoll(&args, 0);
        let _ = super::kstrtox::kstrtoull(&args, 16);
        let _ = super::dyndbg::ddebug_exec_queries(&args, None, KernelVersion::V6_12, &mut KernelLog::new());
    }

    #[test]
    fn grammar_bytes_do_not_panic(
        args in proptest::collection::vec(
            prop_oneof![
                Just(b'"'), Just(b'='), Just(b' '), Just(b','), Just(b'-'), Just(b'.'),
                Just(b'\n'), Just(0xa0u8), Just(b'p'), Just(b'_'), Just(b'x'), Just(b'1')
            ],
            0..60,
        ),
        prefix in prop_oneof![
            Just(&b"p_int="[..]), Just(&b"p_charparr="[..]), Just(&b"p_intarr="[..]),
            Just(&b"p_string="[..]), Just(&b"dyndbg="[..]), Just(&b""[..]), Just(&b"\""[..])
        ],
    ) {
        let mut a = prefix.to_vec();
        a.extend_from_slice(&args);
        let env = ParamEnv::new(KernelVersion::V6_12);
        let mut m = StandaloneModule::new("mp_types", &mp_types_decls()).expect("table");
        let _ = m.load(&a, &env);
    }
}

/// `param_array_get` over an element count read from module memory (up to 2^32) once called
/// module code that printed nothing for every element, with nothing to stop it: the simulator
/// runs no module code, so an element whose opaque `get` shows nothing ends the array's value
/// (what follows is as unknown). Kernel gets always print, and stop at PAGE_SIZE.
#[test]
fn an_array_of_opaque_elements_that_print_nothing_is_not_walked_to_its_count() {
    struct Counting(u64);
    impl super::ModuleCode for Counting {
        fn set(
            &mut self,
            _: &str,
            _: Option<&[u8]>,
            _: &super::ops::Kp<'_>,
            _: &mut crate::memory::Memory,
            _: &mut KernelLog,
        ) -> Result<(), Errno> {
            Ok(())
        }
        fn get(
            &mut self,
            _: &str,
            _: &super::ops::Kp<'_>,
            _: &crate::memory::Memory,
        ) -> Result<Vec<u8>, Errno> {
            self.0 += 1;
            Ok(Vec::new())
        }
    }
    let env = ParamEnv::new(KernelVersion::V6_12);
    let m = StandaloneModule::new("m", &decls()).expect("table");
    let arr = m.params().iter().find(|p| p.name == b"arr").expect("arr");
    let mut mem = m.memory().clone();
    let desc = super::table::KparamArray::read(&mem, arr.arg).expect("descriptor");
    // struct kparam_array { unsigned int max; unsigned short elemsize; unsigned int *num;
    // const struct kernel_param_ops *ops; void *elem; }: ops at +16, an unmapped address
    mem.write_u64(arr.arg + 16, 0xdead_0000).unwrap();
    mem.write_u32(desc.num, 1_000_000).unwrap();
    let mut log = KernelLog::new();
    let syms = |a: u64| m.symbol_at(a);
    let mut code = Counting(0);
    let mut ctx = Ctx::new(&env, &mut mem, &mut log, &syms, &mut code);
    let kp = super::ops::Kp {
        name: b"arr",
        arg: arr.arg,
        level: -1,
    };
    let got = super::ops::call_kernel_get(KernelFn::ArrayGet, &kp, &mut ctx);
    assert_eq!(got, Ok(Vec::new()));
    assert_eq!(code.0, 1, "element gets called");
}
