//! Conformance with the real kernels: every load step of the recorded `params_*.jsonl`
//! scenarios (tests/conformance/) is replayed through the parameter step of `load_module` on a
//! standalone table that mirrors the `mp_types` fixture (tests/fixtures/src/mp_types/), and
//! the errno, the parameter log lines and every sysfs value are compared.
//!
//! Recordings are read from `tests/conformance/recorded/<kernel>/`, or else from the
//! directories listed in `MODSIM_RECORDED_DIRS` (colon-separated, each holding `<kernel>/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget};

use super::module::{has_sysfs_file, load_module_parse_args, param_attr_show};
use super::ops::Kp;
use super::standalone::{ParamDecl, ParamType, StandaloneModule, Value};
use super::table::{KernelParam, OpFn, read_param_section};
use super::{ArgBuf, Ctx, KernelFn, ModuleCode, ParamEnv, decode_bytes};
use crate::errno::Errno;
use crate::log::KernelLog;
use crate::memory::{Memory, RegionKind};
use crate::profile::{KernelVersion, Profile};

const KERNELS: [&str; 4] = [
    "debian-6.1-amd64",
    "debian-6.1-arm64",
    "debian-6.12-amd64",
    "debian-6.12-arm64",
];

const SCENARIOS: [&str; 4] = [
    "params_bool.jsonl",
    "params_grammar.jsonl",
    "params_numeric.jsonl",
    "params_string.jsonl",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn s(v: &str) -> Value {
    Value::Str(Some(v.as_bytes().to_vec()))
}

/// The parameter table of tests/fixtures/src/mp_types/mp_types.c, in source order.
pub(super) fn mp_types_decls() -> Vec<ParamDecl> {
    use ParamType as T;
    let p =
        |name: &str, ty: ParamType, perm: u16, init: Value| ParamDecl::new(name, ty, perm, init);
    vec![
        p("p_bool", T::Bool, 0o644, Value::Bool(true)),
        p("p_invbool", T::Invbool, 0o644, Value::Bool(true)),
        p("p_bint", T::Bint, 0o644, Value::Int(1)),
        p("p_byte", T::Byte, 0o644, Value::Int(42)),
        p("p_short", T::Short, 0o644, Value::Int(-1234)),
        p("p_ushort", T::Ushort, 0o644, Value::Int(54321)),
        p("p_int", T::Int, 0o644, Value::Int(-123456)),
        p("p_uint", T::Uint, 0o644, Value::Int(3_000_000_000)),
        p("p_long", T::Long, 0o644, Value::Int(-5_000_000_000)),
        p("p_ulong", T::Ulong, 0o644, Value::Int(10_000_000_000)),
        p(
            "p_ullong",
            T::Ullong,
            0o644,
            Value::Int(18_000_000_000_000_000_000),
        ),
        p("p_hexint", T::Hexint, 0o644, Value::Int(0xbeef)),
        p("p_charp", T::Charp, 0o644, s("hello")),
        p("p_string", T::String { maxlen: 16 }, 0o644, s("str")),
        p(
            "p_intarr",
            T::Array {
                elem: Box::new(T::Int),
                max: 4,
                with_num: true,
            },
            0o644,
            Value::Array(vec![
                Value::Int(1),
                Value::Int(2),
                Value::Int(3),
                Value::Int(4),
            ]),
        ),
        p(
            "p_charparr",
            T::Array {
                elem: Box::new(T::Charp),
                max: 3,
                with_num: true,
            },
            0o644,
            Value::Array(vec![s("a"), s("b"), s("c")]),
        ),
        p("p_boolen", T::BoolEnableOnly, 0o644, Value::Bool(true)),
        p("p_hidden", T::Int, 0, Value::Int(7)),
        // mp_custom_set/get call param_set_int/param_get_int.
        p(
            "p_custom",
            T::Custom {
                symbol: "mp_custom_ops".into(),
                flags: 0,
                set: OpFn::Kernel(KernelFn::SetInt),
                get: OpFn::Kernel(KernelFn::GetInt),
                free: OpFn::Null,
                storage: Box::new(T::Int),
            },
            0o644,
            Value::Int(99),
        ),
    ]
}

/// The `module_param*` declarations of a C source: (name, type token, perm), in order.
fn c_param_decls(src: &str) -> Vec<(String, String, u16)> {
    let mut out = Vec::new();
    for line in src.lines() {
        let line = line.trim();
        let Some((mac, rest)) = line.split_once('(') else {
            continue;
        };
        if !mac.starts_with("module_param") {
            continue;
        }
        let args: Vec<&str> = rest
            .trim_end_matches(';')
            .trim_end_matches(')')
            .split(',')
            .map(str::trim)
            .collect();
        let perm = args
            .last()
            .and_then(|p| u16::from_str_radix(p.trim_start_matches('0'), 8).ok())
            .unwrap_or(0);
        let name = args.first().copied().unwrap_or_default().to_string();
        let ty = match mac {
            "module_param" | "module_param_array" => args.get(1).copied().unwrap_or_default(),
            "module_param_string" => "string",
            "module_param_cb" => "custom",
            _ => "?",
        };
        let ty = if mac == "module_param_array" {
            format!("array of {ty}")
        } else {
            ty.to_string()
        };
        out.push((name, ty, perm));
    }
    out
}

fn type_token(t: &ParamType) -> String {
    match t {
        ParamType::Array { elem, .. } => format!("array of {}", type_token(elem)),
        ParamType::Custom { .. } => "custom".into(),
        t => t
            .std_ops()
            .map(|o| o.type_name().to_string())
            .unwrap_or_default(),
    }
}

#[test]
fn the_mirror_matches_the_fixture_source() {
    let path = repo().join("tests/fixtures/src/mp_types/mp_types.c");
    let src = std::fs::read_to_string(&path).expect("fixture source");
    let from_c = c_param_decls(&src);
    let mirror: Vec<(String, String, u16)> = mp_types_decls()
        .iter()
        .map(|d| (d.name.clone(), type_token(&d.ty), d.perm))
        .collect();
    assert_eq!(from_c, mirror);
}

/// Where the recording of `scenario` on `kernel` is.
fn recording(kernel: &str, scenario: &str) -> Option<PathBuf> {
    let mut dirs = vec![repo().join("tests/conformance/recorded")];
    if let Ok(extra) = std::env::var("MODSIM_RECORDED_DIRS") {
        dirs.extend(
            extra
                .split(':')
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
        );
    }
    dirs.into_iter()
        .map(|d| d.join(kernel).join(scenario))
        .find(|p| p.is_file())
}

fn read_jsonl(path: &Path) -> Vec<Json> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Text bytes of a JSON string as the recorder wrote them (U+0000..U+00FF that stand for
/// invalid bytes cannot be told apart from Latin-1 text here; the scenarios use UTF-8).
fn json_bytes(v: &Json) -> Option<Vec<u8>> {
    v.as_str().map(|s| s.as_bytes().to_vec())
}

/// The printk text limit of a record: `LOG_LINE_MAX` (1024 - 32) in 6.1, `PRINTKRB_RECORD_MAX`
/// (1024) in 6.12, minus the terminating NUL and the two bytes of the `KERN_<LEVEL>` prefix.
fn printk_limit(v: KernelVersion) -> usize {
    match v {
        KernelVersion::V6_1 => 992 - 1 - 2,
        KernelVersion::V6_12 => 1024 - 1 - 2,
    }
}

/// A model of what `syslog(2)` shows of the records printed: a record cut by the limit has no
/// final newline, so it stays open (unfinalized, invisible) until the next printk.
struct Printk {
    limit: usize,
    pending: Option<String>,
}

impl Printk {
    fn record(&mut self, out: &mut Vec<String>, text: &str) {
        if let Some(p) = self.pending.take() {
            out.push(p);
        }
        let bytes = text.as_bytes();
        if bytes.len() > self.limit {
            let cut = bytes.get(..self.limit).unwrap_or(bytes);
            self.pending = Some(decode_bytes(cut));
        } else {
            out.push(text.to_string());
        }
    }

    /// Another subsystem printed (finalizing an open record).
    fn foreign(&mut self, out: &mut Vec<String>) {
        if let Some(p) = self.pending.take() {
            out.push(p);
        }
    }
}

fn is_foreign_line(line: &str, module: &str) -> bool {
    let taint = [
        format!("{module}: loading out-of-tree module taints kernel."),
        format!(
            "{module}: module verification failed: signature and/or required key missing - tainting kernel"
        ),
    ];
    taint.iter().any(|t| t == line)
}

fn module_name(file: &str) -> String {
    let base = file.rsplit('/').next().unwrap_or(file);
    base.split(".ko").next().unwrap_or(base).to_string()
}

/// A module instance ready for the parameter step: memory, its table, and a symbol namer.
struct Instance {
    mem: Memory,
    params: Vec<KernelParam>,
    symbols: BTreeMap<u64, String>,
}

/// Where a step's module comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The standalone table mirroring mp_types.c.
    Mirror,
    /// The fixture `.ko` built for the kernel, relocated into memory.
    Ko,
}

fn mirror_instance(module: &str) -> Result<Instance, String> {
    let decls = match module {
        "mp_types" => mp_types_decls(),
        "mp_lib" => Vec::new(),
        other => return Err(format!("no mirror of {other}")),
    };
    let m = StandaloneModule::new(module, &decls).map_err(|e| format!("{module}: {e}"))?;
    // The standalone namer covers its own fake addresses: copy what it says about every
    // address an entry or a descriptor holds.
    let mut syms = BTreeMap::new();
    let mut probe = |a: u64| {
        if let Some(n) = m.symbol_at(a) {
            syms.insert(a, n);
        }
    };
    for kp in m.params() {
        probe(kp.ops_addr);
        if let Ok(arr) = super::table::KparamArray::read(m.memory(), kp.arg) {
            probe(arr.ops);
        }
    }
    Ok(Instance {
        mem: m.memory().clone(),
        params: m.params().to_vec(),
        symbols: syms,
    })
}

/// `R_X86_64_64` and `R_AARCH64_ABS64`: the only relocations data sections need here.
const ABS64: [u32; 2] = [1, 257];

/// Lay the SHF_ALLOC sections of a `.ko` out in memory, apply the absolute 64-bit
/// relocations (what the parameter table and its data use), give undefined symbols fake
/// vmlinux addresses, and read the `__param` section.
fn ko_instance(kernel: &str, module: &str) -> Result<Instance, String> {
    let path = repo()
        .join("tests/fixtures/ko")
        .join(kernel)
        .join(format!("{module}.ko"));
    let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let obj = object::File::parse(&*data).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut mem = Memory::default();
    let mut addr_of = BTreeMap::new();
    let mut next = 0xffff_ffff_c000_0000u64;
    for sec in obj.sections() {
        let alloc = matches!(sec.flags(), object::SectionFlags::Elf { sh_flags, .. } if sh_flags.0 & 2 != 0);
        if !alloc || sec.size() == 0 {
            continue;
        }
        let base = next;
        next = (base + sec.size() + 0xfff) & !0xfff;
        mem.alloc(
            base,
            sec.size(),
            RegionKind::Module,
            sec.name().unwrap_or("?"),
        )
        .map_err(|e| format!("alloc: {e}"))?;
        if let Ok(bytes) = sec.data() {
            mem.write(base, bytes).map_err(|e| format!("write: {e}"))?;
        }
        addr_of.insert(sec.index().0, base);
    }
    let mut symbols = BTreeMap::new();
    let mut kernel_next = 0xffff_ffff_8100_0000u64;
    let mut sym_addr = BTreeMap::new();
    for sym in obj.symbols() {
        let name = sym.name().unwrap_or("").to_string();
        let a = match sym.section_index() {
            Some(i) => match addr_of.get(&i.0) {
                Some(b) => b + sym.address(),
                None => continue,
            },
            None if sym.is_undefined() => {
                kernel_next += 0x100;
                kernel_next
            }
            None => continue,
        };
        if !name.is_empty() && (sym.is_undefined() || sym.kind() != object::SymbolKind::Section) {
            symbols.insert(a, name);
        }
        sym_addr.insert(sym.index().0, a);
    }
    for sec in obj.sections() {
        let Some(&base) = addr_of.get(&sec.index().0) else {
            continue;
        };
        for (off, rel) in sec.relocations() {
            let RelocationFlags::Elf { r_type } = rel.flags() else {
                continue;
            };
            if !ABS64.contains(&r_type.0) {
                continue;
            }
            let RelocationTarget::Symbol(si) = rel.target() else {
                continue;
            };
            let Some(&s) = sym_addr.get(&si.0) else {
                continue;
            };
            let v = s.wrapping_add_signed(rel.addend());
            mem.write_u64(base + off, v)
                .map_err(|e| format!("reloc: {e}"))?;
        }
    }
    let param = obj.section_by_name("__param");
    let params = match param.and_then(|p| addr_of.get(&p.index().0).map(|a| (*a, p.size()))) {
        Some((a, size)) => {
            let namer = |x: u64| symbols.get(&x).cloned();
            read_param_section(&mem, a, size, &namer).map_err(|e| format!("__param: {e}"))?
        }
        None => Vec::new(),
    };
    Ok(Instance {
        mem,
        params,
        symbols,
    })
}

/// mp_types.c's own functions: mp_custom_set/get call param_set_int/param_get_int.
struct MpTypesCode;

impl ModuleCode for MpTypesCode {
    fn set(
        &mut self,
        func: &str,
        val: Option<&[u8]>,
        kp: &Kp<'_>,
        mem: &mut Memory,
        _log: &mut KernelLog,
    ) -> Result<(), Errno> {
        match func {
            "mp_custom_set" => {
                let v = super::kstrtox::kstrtoint(val.ok_or(Errno::EINVAL)?, 0)?;
                mem.write(kp.arg, &v.to_le_bytes())
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    fn get(&mut self, func: &str, kp: &Kp<'_>, mem: &Memory) -> Result<Vec<u8>, Errno> {
        match func {
            "mp_custom_get" => {
                let b = mem.read(kp.arg, 4)?;
                let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                Ok(format!("{v}\n").into_bytes())
            }
            _ => Err(Errno::ENOSYS),
        }
    }
}

struct LoadResult {
    errno: Option<Errno>,
    log: Vec<String>,
    values: Option<BTreeMap<String, Result<Vec<u8>, Errno>>>,
}

/// The parameter step of load_module on an instance, then the sysfs files if it loaded.
fn load(inst: &mut Instance, module: &str, args: &[u8], env: &ParamEnv) -> LoadResult {
    let mut log = KernelLog::new();
    let symbols = inst.symbols.clone();
    let namer = move |a: u64| symbols.get(&a).cloned();
    let mut code = MpTypesCode;
    let mut ctx = Ctx::new(env, &mut inst.mem, &mut log, &namer, &mut code);
    let out = load_module_parse_args(
        module.as_bytes(),
        ArgBuf::new(args),
        &inst.params,
        false,
        &mut ctx,
    );
    let values = out.result.is_ok().then(|| {
        inst.params
            .iter()
            .filter(|kp| has_sysfs_file(kp))
            .map(|kp| (kp.name_str(), param_attr_show(kp, &mut ctx)))
            .collect()
    });
    LoadResult {
        errno: out.result.err(),
        log: log.texts(),
        values,
    }
}

#[derive(Default)]
struct Tally {
    agree: usize,
    differ: Vec<String>,
}

fn run_kernel(kernel: &str, source: Source) -> Result<Tally, String> {
    let profile = Profile::builtin(kernel).map_err(|e| format!("{kernel}: {e}"))?;
    let env = ParamEnv::from_profile(profile);
    let mut tally = Tally::default();
    for scenario in SCENARIOS {
        let steps = read_jsonl(&repo().join("tests/conformance/scenarios").join(scenario));
        let rec_path = recording(kernel, scenario)
            .ok_or_else(|| format!("{kernel}: no recording of {scenario}"))?;
        let rec: Vec<Json> = read_jsonl(&rec_path)
            .into_iter()
            .filter(|j| j.get("meta").is_none())
            .collect();
        if rec.len() != steps.len() {
            return Err(format!(
                "{kernel}/{scenario}: {} steps recorded, {} in the scenario",
                rec.len(),
                steps.len()
            ));
        }
        let mut printk = Printk {
            limit: printk_limit(env.version),
            pending: None,
        };
        for (i, (step, r)) in steps.iter().zip(&rec).enumerate() {
            let op = step.get("op").and_then(Json::as_str).unwrap_or("");
            let recorded_dmesg: Vec<String> = r
                .get("dmesg")
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if op != "finit_module" && op != "init_module" {
                continue;
            }
            let file = step.get("file").and_then(Json::as_str).unwrap_or("");
            let module = module_name(file);
            let args = step.get("params").and_then(json_bytes).unwrap_or_default();
            let mut inst = match source {
                Source::Mirror => mirror_instance(&module)?,
                Source::Ko => ko_instance(kernel, &module)?,
            };
            let out = load(&mut inst, &module, &args, &env);

            let mut expected_log = Vec::new();
            if recorded_dmesg.iter().any(|l| is_foreign_line(l, &module)) {
                printk.foreign(&mut expected_log);
            }
            for l in &out.log {
                printk.record(&mut expected_log, l);
            }
            let got_log: Vec<String> = recorded_dmesg
                .iter()
                .filter(|l| !is_foreign_line(l, &module))
                .cloned()
                .collect();
            let rec_errno = r.get("errno").and_then(Json::as_str).map(String::from);
            let sim_errno = out.errno.map(|e| e.name());
            let mut problems = Vec::new();
            if rec_errno != sim_errno {
                problems.push(format!("errno: kernel {rec_errno:?}, sim {sim_errno:?}"));
            }
            if got_log != expected_log {
                problems.push(format!("log: kernel {got_log:?}, sim {expected_log:?}"));
            }
            if rec_errno.is_none() {
                let rec_params: BTreeMap<String, String> = r
                    .get("modules")
                    .and_then(|m| m.get(&module))
                    .and_then(|m| m.get("params"))
                    .and_then(Json::as_object)
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let sim_params: BTreeMap<String, String> = out
                    .values
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| {
                        let text = match v {
                            Ok(b) => {
                                let b = b.strip_suffix(b"\n").unwrap_or(&b);
                                decode_bytes(b)
                            }
                            Err(e) => format!("<error {}>", e.name()),
                        };
                        (k, text)
                    })
                    .collect();
                if rec_params != sim_params {
                    for (k, v) in &rec_params {
                        if sim_params.get(k) != Some(v) {
                            problems.push(format!(
                                "param {k}: kernel {v:?}, sim {:?}",
                                sim_params.get(k)
                            ));
                        }
                    }
                    for k in sim_params.keys().filter(|k| !rec_params.contains_key(*k)) {
                        problems.push(format!("param {k}: only in the sim"));
                    }
                }
            }
            if problems.is_empty() {
                tally.agree += 1;
            } else {
                let params = String::from_utf8_lossy(&args);
                let shown: String = params.chars().take(80).collect();
                tally.differ.push(format!(
                    "{kernel} {scenario} step {} ({shown:?}): {}",
                    i + 1,
                    problems.join("; ")
                ));
            }
        }
    }
    Ok(tally)
}

#[test]
fn recorded_params_scenarios_agree_on_all_four_kernels() {
    let mut failures = Vec::new();
    for (kernel, source) in KERNELS
        .iter()
        .flat_map(|k| [(*k, Source::Mirror), (*k, Source::Ko)])
    {
        let what = match source {
            Source::Mirror => "standalone mirror of mp_types.c",
            Source::Ko => "fixture .ko, relocated",
        };
        match run_kernel(kernel, source) {
            Ok(t) => {
                println!(
                    "{kernel} ({what}): {} agree, {} differ",
                    t.agree,
                    t.differ.len()
                );
                for d in &t.differ {
                    println!("  {d}");
                }
                failures.extend(t.differ);
            }
            Err(e) => {
                println!("{kernel}: {e}");
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{} differences", failures.len());
}

#[test]
fn ko_tables_read_like_the_mirror() {
    let key = |kp: &KernelParam| {
        let ops = match &kp.ops {
            super::OpsKind::Std(s) => s.symbol().to_string(),
            super::OpsKind::Custom(c) => {
                format!("{}/{:?}/{:?}/{:?}", c.symbol, c.set, c.get, c.free)
            }
        };
        (kp.name_str(), ops, kp.perm, kp.level, kp.flags)
    };
    let mirror = mirror_instance("mp_types").expect("mirror");
    let mut want: Vec<_> = mirror.params.iter().map(key).collect();
    for w in &mut want {
        if w.0 == "p_custom" {
            w.1 = "mp_custom_ops/Opaque(\"mp_custom_set\")/Opaque(\"mp_custom_get\")/Null".into();
        }
    }
    want.sort();
    for kernel in KERNELS {
        let ko = ko_instance(kernel, "mp_types").expect("ko");
        let names: Vec<String> = ko.params.iter().map(KernelParam::name_str).collect();
        // The compiler emits the __param entries in reverse source order.
        let mut rev = names.clone();
        rev.reverse();
        assert_eq!(rev.first().map(String::as_str), Some("p_bool"), "{kernel}");
        let mut got: Vec<_> = ko.params.iter().map(key).collect();
        got.sort();
        assert_eq!(got, want, "{kernel}");
        assert!(ko_instance(kernel, "mp_lib").expect("ko").params.is_empty());
    }
}
