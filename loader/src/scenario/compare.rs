//! Comparing scenario results field by field, after removing what legitimately varies.
//!
//! Two runs of the same scenario on the same kernel differ in a few places that say nothing about
//! module loading. [`normalize`] removes exactly these, and nothing else:
//! - the module address in each `/proc/modules` line (KASLR: it changes every boot) becomes
//!   `0x<address>`;
//! - a stack dump (`dump_stack()`, printed after an init that returned a positive value: the
//!   `CPU: … PID: … Comm: …` line and the lines of the dump after it — 6.12's `Tainted: [O]=…`,
//!   `Hardware name:`, `Call Trace:`/`Call trace:`, the indented frames, and x86's user register
//!   dump `RIP:`/`Code:`/`RSP:`/`RAX:`…) becomes one line `<stack dump>` — its PID, command name,
//!   code offsets and registers belong to the process and the build, not to the loader;
//!   (x86's kernel register lines `FS:`/`CS:`/`CR2:` and arm64's `pstate:`, `pc :`, `lr :`,
//!   `sp :`, `x29: …` too, as a `WARN()` prints them);
//! - in a `WARN()` report, the CPU and PID on its `WARNING:` line and the code offsets after the
//!   function (`WARNING: CPU: 0 PID: 121 at lib/kobject.c:210 kobject_add_internal+0x241/0x260`
//!   becomes `WARNING: at lib/kobject.c:210 kobject_add_internal`), and a `%p` pointer in a
//!   `kobject: (…)` line (hashed per boot, or `(____ptrval____)` early) becomes `(<pointer>)`;
//! - kernel log lines from subsystems that finish booting late under emulation and can land in
//!   any step ([`BOOT_NOISE`]).

use std::fmt;

use super::StepResult;

/// Prefixes of kernel log lines that come from late boot activity, not from the step.
pub const BOOT_NOISE: &[&str] = &[
    "clocksource: ",
    "tsc: ",
    "random: crng init done",
    "input: ",
    "platform regulatory.0: ",
    "cfg80211: ",
];

/// What a normalized stack dump is replaced with.
pub const STACK_DUMP: &str = "<stack dump>";

/// Which fields take part in a comparison.
#[derive(Clone, Copy, Debug)]
pub struct CompareOptions {
    /// Compare parameter values (`modules.<m>.params`).
    pub params: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { params: true }
    }
}

fn is_noise(line: &str) -> bool {
    BOOT_NOISE.iter().any(|p| line.starts_with(p))
}

fn is_stack_dump_start(line: &str) -> bool {
    line.starts_with("CPU: ") && line.contains(" PID: ") && line.contains(" Comm: ")
}

/// Lines that continue a stack dump: see the module docs.
fn is_stack_dump_body(line: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "Tainted: ",
        "Hardware name: ",
        "Call Trace:",
        "Call trace:",
        "Code: ",
        // x86 kernel register lines.
        "FS:  ",
        "CS:  ",
        "CR2: ",
        // arm64's register dump.
        "pstate: ",
        "pc : ",
        "lr : ",
        "sp : ",
    ];
    if line.starts_with(' ') || PREFIXES.iter().any(|p| line.starts_with(p)) {
        return true;
    }
    // arm64 general registers: `x29: …`, `x8 : …`.
    if let Some(rest) = line.strip_prefix('x') {
        let reg: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !reg.is_empty() && rest[reg.len()..].trim_start().starts_with(':') {
            return true;
        }
    }
    // x86 register lines: `RIP: 0033:…`, `RSP: 002b:…`, `RAX: …`, `R10: …`.
    let first = line.split(' ').next().unwrap_or("");
    first.len() <= 4
        && first.len() >= 3
        && first.starts_with('R')
        && first.ends_with(':')
        && first[..first.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The kernel log lines with boot noise removed and stack dumps collapsed.
pub fn normalize_dmesg(lines: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(lines.len());
    let mut in_dump = false;
    for l in lines {
        if is_stack_dump_start(l) {
            in_dump = true;
            out.push(STACK_DUMP.to_string());
            continue;
        }
        if in_dump && is_stack_dump_body(l) {
            continue;
        }
        in_dump = false;
        if !is_noise(l) {
            out.push(normalize_warning(l));
        }
    }
    out
}

/// A `WARN()` report's lines that name the machine: see the module docs.
fn normalize_warning(line: &str) -> String {
    if let Some(rest) = line.strip_prefix("WARNING: ")
        && let Some(at) = rest.find(" at ")
        && rest.starts_with("CPU: ")
    {
        let site = &rest[at + 4..];
        // `file:line function+0xoff/0xsize`: the offsets belong to the build.
        let site = match site.rfind('+') {
            Some(p) if site[p..].contains("/0x") => &site[..p],
            _ => site,
        };
        return format!("WARNING: at {site}");
    }
    if let Some(rest) = line.strip_prefix("kobject: (")
        && let Some(end) = rest.find("): ")
    {
        return format!("kobject: (<pointer>){}", &rest[end + 1..]);
    }
    line.to_string()
}

/// A `/proc/modules` line with its address field replaced by `0x<address>`.
pub fn normalize_proc_modules(line: &str) -> String {
    line.split(' ')
        .enumerate()
        .map(|(i, w)| {
            if i == 5 && w.starts_with("0x") {
                "0x<address>"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A result with everything that varies between boots removed (see the module docs).
pub fn normalize(r: &StepResult) -> StepResult {
    let mut n = r.clone();
    n.dmesg = normalize_dmesg(&r.dmesg);
    for m in n.modules.values_mut() {
        m.proc_modules = normalize_proc_modules(&m.proc_modules);
    }
    n
}

/// One field that differs between an expected and an actual result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// 1-based step number.
    pub step: usize,
    /// The field's path, such as `errno`, `dmesg` or `modules.mp_types.refcnt`.
    pub field: String,
    /// The expected value, as JSON text.
    pub expected: String,
    /// The actual value, as JSON text.
    pub actual: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} {}: expected {} got {}",
            self.step, self.field, self.expected, self.actual
        )
    }
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("<{e}>"))
}

fn field<T: serde::Serialize + PartialEq + ?Sized>(
    out: &mut Vec<Difference>,
    step: usize,
    name: &str,
    e: &T,
    a: &T,
) {
    if e != a {
        out.push(Difference {
            step,
            field: name.to_string(),
            expected: json(e),
            actual: json(a),
        });
    }
}

/// The differences between two runs of one scenario, both normalized first.
pub fn compare(
    expected: &[StepResult],
    actual: &[StepResult],
    opts: CompareOptions,
) -> Vec<Difference> {
    let mut out = Vec::new();
    for (e, a) in expected.iter().zip(actual) {
        let (e, a) = (normalize(e), normalize(a));
        let s = e.step;
        field(&mut out, s, "op", &e.op, &a.op);
        field(&mut out, s, "errno", &e.errno, &a.errno);
        field(&mut out, s, "dmesg", &e.dmesg, &a.dmesg);
        field(
            &mut out,
            s,
            "kernel_tainted",
            &e.kernel_tainted,
            &a.kernel_tainted,
        );
        let en: Vec<&String> = e.modules.keys().collect();
        let an: Vec<&String> = a.modules.keys().collect();
        field(&mut out, s, "modules", &en, &an);
        for (name, em) in &e.modules {
            let Some(am) = a.modules.get(name) else {
                continue;
            };
            let p = |f: &str| format!("modules.{name}.{f}");
            field(&mut out, s, &p("initstate"), &em.initstate, &am.initstate);
            field(&mut out, s, &p("taint"), &em.taint, &am.taint);
            field(&mut out, s, &p("refcnt"), &em.refcnt, &am.refcnt);
            field(&mut out, s, &p("holders"), &em.holders, &am.holders);
            field(
                &mut out,
                s,
                &p("proc_modules"),
                &em.proc_modules,
                &am.proc_modules,
            );
            if opts.params {
                field(&mut out, s, &p("params"), &em.params, &am.params);
            }
        }
    }
    if expected.len() != actual.len() {
        out.push(Difference {
            step: expected.len().min(actual.len()) + 1,
            field: "steps".into(),
            expected: expected.len().to_string(),
            actual: actual.len().to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{ModuleState, ModuleTable};

    fn result(dmesg: &[&str], addr: &str, refcnt: i64) -> StepResult {
        let mut modules = ModuleTable::new();
        modules.insert(
            "m".into(),
            ModuleState {
                initstate: "live".into(),
                taint: "OE".into(),
                refcnt,
                holders: vec![],
                params: Default::default(),
                proc_modules: format!("m 16384 0 - Live {addr} (OE)"),
            },
        );
        StepResult {
            step: 1,
            op: "finit_module".into(),
            errno: None,
            dmesg: dmesg.iter().map(|s| s.to_string()).collect(),
            modules,
            kernel_tainted: 12288,
            tool: None,
        }
    }

    #[test]
    fn addresses_noise_and_stack_dumps_are_ignored() {
        let a = result(
            &[
                "tsc: Refined TSC clocksource calibration: 3000 MHz",
                "m: hi",
                "CPU: 0 PID: 52 Comm: modloader Tainted: G OE",
                "Hardware name: QEMU",
                "Call Trace:",
                " <TASK>",
                " dump_stack_lvl+0x44/0x5c",
                " </TASK>",
                "after",
            ],
            "0xffffffffc0200000",
            0,
        );
        let b = result(
            &[
                "m: hi",
                "CPU: 0 PID: 99 Comm: runner Tainted: G OE",
                "Call trace:",
                " x+0x1/0x2",
                "after",
            ],
            "0xffffffffc0a00000",
            0,
        );
        assert_eq!(
            compare(std::slice::from_ref(&a), &[b], CompareOptions::default()),
            vec![]
        );
        assert_eq!(normalize(&a).dmesg, vec!["m: hi", STACK_DUMP, "after"]);
    }

    #[test]
    fn real_differences_are_reported_by_field() {
        let a = result(&["m: hi"], "0x1", 0);
        let b = result(&["m: ho"], "0x1", 1);
        let d = compare(&[a], &[b], CompareOptions::default());
        let fields: Vec<&str> = d.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, vec!["dmesg", "modules.m.refcnt"]);
    }
}
