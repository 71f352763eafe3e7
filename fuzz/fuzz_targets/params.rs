//! `params`: module parameters as kernel/params.c handles them — `next_arg`, `parse_args`
//! through the standalone API (`sim::params::StandaloneModule`, a parameter table declared
//! here and laid out in simulated memory as the `module_param*` macros do), sysfs reads and
//! writes, `kstrto*` — and the loader's quoting (`loader::params::quote`).
//!
//! Input: `[b0][decl × n][args len: u16 le][args][writes...]`
//! - b0: bit 0 6.12 (else 6.1), bit 1 parameters locked down, bits 2-4 the number of
//!   declarations n (0-7);
//! - a declaration is 4 bytes `[type][perm][flags][extra]` (see `decl`); its name is `NAMES[i]`;
//! - a write is `[parameter index][length][bytes]`, to its sysfs file.
//!
//! Invariants: `next_arg` always advances and stays inside the buffer; a load is
//! deterministic, and has sysfs values exactly when it succeeded; a successful sysfs write
//! reports the whole length; whatever `quote` accepts, `next_arg` reads back as the same name
//! and value and nothing else; `kstrtoull`/`kstrtoll` values print and parse back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modsim_fuzz::{Input, alloc};
use sim::params::kstrtox::{kstrtobool, kstrtoll, kstrtoull};
use sim::params::{
    ArgBuf, KernelFn, OpFn, ParamDecl, ParamEnv, ParamType, StandaloneModule, Value, next_arg,
};
use sim::profile::KernelVersion;

/// Names by declaration index: the mp_types module's, and ones that `parameq` and the
/// unknown-parameter callback treat specially.
const NAMES: [&str; 7] = [
    "p_int", "p_charp", "p_string", "p_intarr", "p_bool", "dyn-dbg", "dyndbg",
];
const PERMS: [u16; 8] = [0o644, 0o444, 0o600, 0o200, 0, 0o664, 0o400, 0o222];

fuzz_target!(init: modsim_fuzz::init(), |data: &[u8]| run(data));

fn scalar(sel: u8) -> ParamType {
    match sel % 14 {
        0 => ParamType::Byte,
        1 => ParamType::Short,
        2 => ParamType::Ushort,
        3 => ParamType::Int,
        4 => ParamType::Uint,
        5 => ParamType::Long,
        6 => ParamType::Ulong,
        7 => ParamType::Ullong,
        8 => ParamType::Hexint,
        9 => ParamType::Charp,
        10 => ParamType::Bool,
        11 => ParamType::BoolEnableOnly,
        12 => ParamType::Invbool,
        _ => ParamType::Bint,
    }
}

fn zero(ty: &ParamType) -> Value {
    match ty {
        ParamType::Charp | ParamType::String { .. } => Value::Str(None),
        ParamType::Bool | ParamType::BoolEnableOnly | ParamType::Invbool => Value::Bool(false),
        ParamType::Array { .. } => Value::Array(Vec::new()),
        ParamType::Custom { storage, .. } => zero(storage),
        _ => Value::Int(0),
    }
}

fn op_fn(sel: u8) -> OpFn {
    const FNS: [&str; 8] = [
        "param_set_int",
        "param_get_int",
        "param_set_charp",
        "param_get_charp",
        "param_free_charp",
        "param_set_bool",
        "param_get_bool",
        "param_set_copystring",
    ];
    match sel % 10 {
        8 => OpFn::Null,
        9 => OpFn::Opaque("mp_custom_set".into()),
        i => KernelFn::from_symbol(FNS[usize::from(i)]).map_or(OpFn::Null, OpFn::Kernel),
    }
}

/// Declaration `i` from `[type][perm][flags][extra]`: type % 18 is a scalar (0-13), a
/// string of `extra` bytes (14), an array of `flags >> 4` + 1 scalars `extra` with or without
/// a count (15), a custom ops object over an `int` or a `charp` (16), or an `int` again (17).
fn decl(i: usize, b: [u8; 4]) -> ParamDecl {
    let [t, perm, flags, extra] = b;
    let ty = match t % 18 {
        n @ 0..=13 => scalar(n),
        14 => ParamType::String {
            maxlen: u32::from(extra),
        },
        15 => ParamType::Array {
            elem: Box::new(scalar(extra)),
            max: u32::from(flags >> 4) + 1,
            with_num: flags & 8 != 0,
        },
        16 => ParamType::Custom {
            symbol: "mp_custom_ops".into(),
            flags: u32::from(flags >> 7),
            set: op_fn(extra),
            get: op_fn(extra >> 4),
            free: op_fn(flags >> 3),
            storage: Box::new(if extra & 0x80 != 0 {
                ParamType::Charp
            } else {
                ParamType::Int
            }),
        },
        _ => ParamType::Int,
    };
    let init = zero(&ty);
    let mut d = ParamDecl::new(
        NAMES[i % NAMES.len()],
        ty,
        PERMS[usize::from(perm & 7)],
        init,
    );
    if flags & 1 != 0 {
        d = d.unsafe_();
    }
    if flags & 2 != 0 {
        d = d.hw();
    }
    d
}

/// Every token `next_arg` finds in `args`, as (name, value) byte strings; checks that each
/// call advances and stays inside the buffer.
fn tokens(args: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut buf = ArgBuf::new(args);
    let len = buf.as_bytes().len();
    let mut pos = sim::params::cmdline::skip_spaces(&buf, 0);
    let mut out = Vec::new();
    while buf.at(pos) != 0 {
        let (arg, next) = next_arg(&mut buf, pos);
        assert!(
            next > pos && next <= len,
            "invariant: next_arg did not advance within the buffer ({pos} -> {next}, {len})"
        );
        assert!(arg.param < len && arg.val.is_none_or(|v| v < len));
        out.push((
            buf.cstr(arg.param).to_vec(),
            arg.val.map(|v| buf.cstr(v).to_vec()),
        ));
        pos = next;
    }
    assert!(out.len() <= len, "invariant: more tokens than bytes");
    out
}

fn check_kstrtox(s: &[u8]) {
    if let Ok(v) = kstrtoull(s, 10) {
        assert_eq!(
            kstrtoull(v.to_string().as_bytes(), 10),
            Ok(v),
            "invariant: kstrtoull({:?}) = {v} does not read back",
            String::from_utf8_lossy(s)
        );
    }
    if let Ok(v) = kstrtoll(s, 0) {
        assert_eq!(
            kstrtoll(v.to_string().as_bytes(), 10),
            Ok(v),
            "invariant: kstrtoll({:?}, 0) = {v} does not read back",
            String::from_utf8_lossy(s)
        );
    }
    if let Ok(v) = kstrtoull(s, 16) {
        assert_eq!(kstrtoull(format!("{v:x}").as_bytes(), 16), Ok(v));
    }
    let _ = kstrtobool(Some(s));
}

fn check_quote(name: &[u8], value: Option<&[u8]>) {
    let Ok(q) = loader::params::quote(name, value) else {
        return;
    };
    let back = tokens(&q);
    assert!(
        back.len() == 1 && back[0].0 == name && back[0].1.as_deref() == value && !q.contains(&0),
        "invariant: quote({:?}, {:?}) = {:?} reads back as {back:?}",
        String::from_utf8_lossy(name),
        value.map(String::from_utf8_lossy),
        String::from_utf8_lossy(&q)
    );
}

fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let b0 = inp.u8();
    let version = if b0 & 1 != 0 {
        KernelVersion::V6_12
    } else {
        KernelVersion::V6_1
    };
    let mut env = ParamEnv::new(version);
    env.params_locked_down = b0 & 2 != 0;
    let n = usize::from((b0 >> 2) & 7);
    let decls: Vec<ParamDecl> = (0..n)
        .map(|i| decl(i, [inp.u8(), inp.u8(), inp.u8(), inp.u8()]))
        .collect();
    let alen = usize::from(inp.u16());
    let args = inp.take(alen);

    alloc::begin(modsim_fuzz::budget(data.len(), 0));
    let toks = tokens(args);
    for (name, value) in &toks {
        if let Some(v) = value {
            check_kstrtox(v);
        }
        check_quote(name, value.as_deref());
        // A value as a name and the whole token as a value: other quoting cases.
        check_quote(b"x", Some(name));
    }
    check_quote(b"p", Some(args));

    if let Ok(module) = StandaloneModule::new("fuzz", &decls) {
        let mut m = module.clone();
        let out = m.load(args, &env);
        assert_eq!(
            out.values.is_some(),
            out.errno.is_none(),
            "invariant: sysfs values exactly after a successful load ({out:?})"
        );
        let again = module.clone().load(args, &env);
        assert_eq!(out, again, "invariant: the same load gave another outcome");
        if out.errno.is_none() {
            while !inp.is_empty() {
                let idx = usize::from(inp.u8());
                let len = usize::from(inp.u8());
                // kernfs hands a store at most PAGE_SIZE bytes.
                let bytes = inp.take(len.min(4096));
                let Some(d) = decls.get(idx % decls.len().max(1)) else {
                    break;
                };
                let (r, _log) = m.sysfs_write(&d.name, bytes, &env);
                if let Ok(n) = r {
                    assert_eq!(
                        n,
                        bytes.len(),
                        "invariant: a sysfs write reported {n} of {} bytes",
                        bytes.len()
                    );
                }
                let _ = m.sysfs_values(&env);
            }
        }
    }
    alloc::end();
}
