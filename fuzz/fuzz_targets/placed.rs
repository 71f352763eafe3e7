//! `placed`: a fixture module loaded at fuzzed section addresses with fuzzed kernel symbol
//! addresses (`Kernel::place_next_load`, `Kernel::set_symbol_addresses`, through
//! `loader::image::load_placed`, what `modloader image` does), starting from the addresses a
//! real boot gave it (`tests/fixtures/memdump/*.json`, embedded).
//!
//! Input: `[capture][module][b2][records...]`
//! - capture: one of the eight memory captures (kernel and boot options); module: one of the
//!   modules it loaded, on a machine where the modules captured before it are loaded at their
//!   real addresses (what it may need);
//! - b2: bit 0 start from the real section map (else an empty one), bit 1 start from the real
//!   symbol map, bit 2 the captured parameter string (else the empty one);
//! - records of 10 bytes `[op][index][value: u64 le]`, op % 6: set section `index` to
//!   `value`; move it by `value` as an `i32`; remove it; set symbol `index` to `value`; move
//!   it by `value` as an `i32`; remove it. Section names are the real map's and the image's
//!   section names; symbol names the real map's and the module's undefined symbols.
//!
//! Invariants: the real maps as captured load; a failed load leaves no module and no memory;
//! a successful one adds one live module, every section with a given address is at that
//! address (a placed load never moves a section), its live sections read back, and a forced
//! `delete_module` frees everything it took; tracing changes nothing; heap use stays within
//! the budget.
#![no_main]

use std::sync::OnceLock;

use indexmap::IndexMap;
use libfuzzer_sys::fuzz_target;
use modsim_fuzz::{
    Input, KernelState, all_module_names, alloc, check_load_outcome, check_tracing_changes_nothing,
    check_unload, fixtures, module_names,
};
use sim::kernel::{Kernel, Settings};

/// The simulated memory limit of the machines here.
const LIMIT: u64 = 64 << 20;

const CAPTURES: [(&str, &str); 8] = [
    (
        "debian-6.1-amd64",
        include_str!("../../tests/fixtures/memdump/debian-6.1-amd64.json"),
    ),
    (
        "debian-6.1-amd64",
        include_str!("../../tests/fixtures/memdump/debian-6.1-amd64+lfence.json"),
    ),
    (
        "debian-6.1-amd64",
        include_str!("../../tests/fixtures/memdump/debian-6.1-amd64+nospectre.json"),
    ),
    (
        "debian-6.1-arm64",
        include_str!("../../tests/fixtures/memdump/debian-6.1-arm64.json"),
    ),
    (
        "debian-6.12-amd64",
        include_str!("../../tests/fixtures/memdump/debian-6.12-amd64.json"),
    ),
    (
        "debian-6.12-amd64",
        include_str!("../../tests/fixtures/memdump/debian-6.12-amd64+lfence.json"),
    ),
    (
        "debian-6.12-amd64",
        include_str!("../../tests/fixtures/memdump/debian-6.12-amd64+nospectre.json"),
    ),
    (
        "debian-6.12-arm64",
        include_str!("../../tests/fixtures/memdump/debian-6.12-arm64.json"),
    ),
];

/// One captured module, ready to load.
struct Target {
    image: &'static [u8],
    params: String,
    sections: IndexMap<String, u64>,
    symbols: IndexMap<String, u64>,
    /// Section names to choose from: the real map's, then the image's.
    section_names: Vec<String>,
    /// Symbol names to choose from: the real map's, then the module's undefined symbols.
    symbol_names: Vec<String>,
    /// The machine with the modules captured before this one loaded.
    base: Kernel,
}

fn hex_map(v: &serde_json::Value) -> IndexMap<String, u64> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| {
                    let s = v.as_str()?.strip_prefix("0x")?;
                    Some((k.clone(), u64::from_str_radix(s, 16).ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn elf_section_names(image: &[u8]) -> Vec<String> {
    use sim::image::{ElfHeader, Section};
    let Ok(h) = ElfHeader::parse(image) else {
        return Vec::new();
    };
    let Ok(secs) = Section::read_table(image, h.e_shoff, h.e_shnum) else {
        return Vec::new();
    };
    let Some(strtab) = secs.get(usize::from(h.e_shstrndx)) else {
        return Vec::new();
    };
    secs.iter()
        .map(|s| String::from_utf8_lossy(Section::read_name(image, strtab.offset, s.sh_name)))
        .filter(|n| !n.is_empty())
        .map(|n| n.into_owned())
        .collect()
}

fn targets() -> &'static Vec<Vec<Target>> {
    static T: OnceLock<Vec<Vec<Target>>> = OnceLock::new();
    T.get_or_init(|| {
        CAPTURES
            .iter()
            .map(|(kernel, text)| {
                let cap: serde_json::Value = serde_json::from_str(text).expect("capture JSON");
                let ki = modsim_fuzz::KERNELS
                    .iter()
                    .position(|k| k == kernel)
                    .expect("kernel") as u8;
                let mut settings = Settings {
                    memory_limit: LIMIT,
                    ..Settings::default()
                };
                settings.apply_cmdline(cap["meta"]["append"].as_str().unwrap_or(""));
                let mut k = Kernel::with_settings(modsim_fuzz::profile(ki), settings);
                let mut out = Vec::new();
                for m in cap["modules"].as_array().into_iter().flatten() {
                    let file = m["file"].as_str().unwrap_or("");
                    let Some(image) = fixtures::get(ki, file) else {
                        continue;
                    };
                    let sections = hex_map(&m["sections"]);
                    let symbols = hex_map(&m["symbols"]);
                    let params = m["params"].as_str().unwrap_or("").to_string();
                    let mut section_names: Vec<String> = sections.keys().cloned().collect();
                    for n in elf_section_names(image) {
                        if !section_names.contains(&n) {
                            section_names.push(n);
                        }
                    }
                    let mut symbol_names: Vec<String> = symbols.keys().cloned().collect();
                    if let Ok(info) = loader::modinfo::read(image) {
                        for u in info.undefined {
                            if !symbol_names.contains(&u.name) {
                                symbol_names.push(u.name);
                            }
                        }
                    }
                    let base = k.clone();
                    let _ = loader::image::load_placed(
                        &mut k,
                        image,
                        &params,
                        sections.clone(),
                        symbols.clone(),
                    );
                    out.push(Target {
                        image,
                        params,
                        sections,
                        symbols,
                        section_names,
                        symbol_names,
                        base,
                    });
                }
                out
            })
            .collect()
    })
}

fn init() {
    modsim_fuzz::init();
    targets();
}

fuzz_target!(init: init(), |data: &[u8]| run(data));

/// `base + delta`, with the delta a signed 32-bit value.
fn moved(base: u64, v: u64) -> u64 {
    base.wrapping_add_signed(i64::from(v as u32 as i32))
}

fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let caps = targets();
    let cap = &caps[usize::from(inp.u8()) % caps.len()];
    if cap.is_empty() {
        return;
    }
    let t = &cap[usize::from(inp.u8()) % cap.len()];
    let b2 = inp.u8();
    let mut sections = if b2 & 1 != 0 {
        t.sections.clone()
    } else {
        IndexMap::new()
    };
    let mut symbols = if b2 & 2 != 0 {
        t.symbols.clone()
    } else {
        IndexMap::new()
    };
    let params = if b2 & 4 != 0 { t.params.as_str() } else { "" };
    let real = b2 & 7 == 7 && inp.is_empty();
    // A reference address for moves of names the real map does not have.
    let anchor = t.sections.values().copied().min().unwrap_or(0);
    while !inp.is_empty() {
        let op = inp.u8();
        let idx = usize::from(inp.u8());
        let v = inp.u64();
        match op % 6 {
            0..=2 => {
                if t.section_names.is_empty() {
                    continue;
                }
                let name = &t.section_names[idx % t.section_names.len()];
                let cur = sections
                    .get(name)
                    .or_else(|| t.sections.get(name))
                    .copied()
                    .unwrap_or(anchor);
                match op % 6 {
                    0 => {
                        sections.insert(name.clone(), v);
                    }
                    1 => {
                        sections.insert(name.clone(), moved(cur, v));
                    }
                    _ => {
                        sections.shift_remove(name);
                    }
                }
            }
            _ => {
                if t.symbol_names.is_empty() {
                    continue;
                }
                let name = &t.symbol_names[idx % t.symbol_names.len()];
                let cur = symbols
                    .get(name)
                    .or_else(|| t.symbols.get(name))
                    .copied()
                    .unwrap_or(0xffff_ffff_8100_0000);
                let addr = |a: u64| a;
                match op % 6 {
                    3 => {
                        symbols.insert(name.clone(), addr(v));
                    }
                    4 => {
                        symbols.insert(name.clone(), addr(moved(cur, v)));
                    }
                    _ => {
                        symbols.shift_remove(name);
                    }
                }
            }
        }
    }

    alloc::begin(modsim_fuzz::budget(data.len(), LIMIT));
    let names0 = module_names(&t.base);
    let all0 = all_module_names(&t.base);
    let used0 = t.base.memory().used();
    let log0 = t.base.log_seq();

    let mut k = t.base.clone();
    let r = loader::image::load_placed(&mut k, t.image, params, sections.clone(), symbols.clone());
    let name = match &r {
        Ok(n) => Some(n.clone()),
        Err(e) => {
            assert!(
                !real,
                "invariant: placed: the module does not load at its captured addresses: {e}"
            );
            None
        }
    };
    // The system call's own result, for the shared checks.
    let sys = match &r {
        Ok(_) => Ok(()),
        Err(_) => Err(sim::kernel::SysError::new(
            "load_placed",
            sim::errno::Errno::EINVAL,
        )),
    };
    let heap0 = modsim_fuzz::param_heap(&t.base);
    let loaded = check_load_outcome("placed", &k, &sys, &names0, &all0, used0, heap0, || false);
    assert_eq!(
        loaded, name,
        "invariant: placed: load_placed named another module than the one that appeared"
    );
    let plain = KernelState::of(&k, &Ok(()), log0);
    if let Some(name) = &loaded {
        let m = k.module(name).expect("loaded");
        for s in &m.sections {
            if let Some(&want) = sections.get(&s.name) {
                assert_eq!(
                    s.addr, want,
                    "invariant: placed: {name} section {} was given {want:#x} and put at {:#x}",
                    s.name, s.addr
                );
            }
        }
        let live = loader::image::live_sections(&k, name);
        for (sec, addr, bytes) in &live {
            // Names repeat in malformed images; `section_bytes` goes by name.
            if m.sections.iter().filter(|s| &s.name == sec).count() > 1 {
                continue;
            }
            let s = m.sections.iter().find(|s| &s.name == sec).expect("section");
            assert!(
                *addr == s.addr && bytes.len() as u64 == s.size && !s.init,
                "invariant: placed: live_sections disagrees with the module's section {sec}"
            );
        }
        // A symbol map no boot gives — two kernel symbols at one address (param_ops_int where
        // param_ops_charp is: an int parameter set as a charp writes a pointer over its
        // neighbours), or a kernel symbol inside the module's own memory (its parameter code
        // rewrites the ops it is later freed with) — makes the kernel leak or fault alike.
        // The unload must still succeed; freeing everything is checked for maps a boot could
        // give.
        let mut addrs: Vec<u64> = symbols.values().copied().collect();
        addrs.sort_unstable();
        let shared = addrs.windows(2).any(|w| w[0] == w[1]);
        let inside_module = symbols.values().any(|&a| {
            k.memory()
                .region_at(a)
                .is_some_and(|r| r.label.starts_with(&format!("{name}: ")))
        });
        if shared || inside_module {
            let raw = modsim_fuzz::raw_name(&k, name);
            let r = k.delete_module(&raw, modsim_fuzz::FORCE);
            assert!(
                r.is_ok(),
                "invariant: placed: forced delete_module({name}) failed: {r:?}"
            );
        } else {
            check_unload("placed", &mut k, name, &all0, used0, heap0);
        }
    }
    drop(k);

    let mut kt = t.base.clone();
    kt.set_tracing(true);
    let rt = loader::image::load_placed(&mut kt, t.image, params, sections, symbols);
    assert_eq!(
        rt.is_ok(),
        r.is_ok(),
        "invariant: placed: tracing changed the outcome ({:?} vs {:?})",
        r.as_ref().err().map(ToString::to_string),
        rt.as_ref().err().map(ToString::to_string)
    );
    let traced = KernelState::of(&kt, &Ok(()), log0);
    check_tracing_changes_nothing("placed", &plain, &traced);
    drop(kt);
    alloc::end();
}
