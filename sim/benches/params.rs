//! Parameter strings parsed and set per second through the standalone API
//! (`StandaloneModule::load`), for a table of 16 parameters (one of every standard type, like
//! tests/fixtures/src/mp_types) and a realistic string that sets all of them, against two
//! references measured in the same run:
//!
//! - `reference`: the independent reference implementation of the property tests
//!   (tests/params_props/reference.rs: plain Rust values, no simulated memory), loading the
//!   same string and producing the same sysfs texts;
//! - `naive`: `str::split_whitespace`, `split_once('=')` and `str::parse` into a `Vec` of
//!   values (no quotes, bases, sysfs text or error reporting): a floor for "parse 16
//!   numbers and strings".
//!
//! Run with `cargo bench -p sim --bench params`. Prints loads per second and the ratios.

use std::hint::black_box;
use std::time::{Duration, Instant};

use sim::params::{ParamDecl, ParamEnv, StandaloneModule};
use sim::profile::KernelVersion;

#[path = "../../tests/params_props/mp_types_table.rs"]
mod mp_types_table;
#[allow(dead_code)]
#[path = "../../tests/params_props/reference.rs"]
mod reference;

/// The string loaded in every iteration: all 16 parameters, in several number bases, with a
/// quoted string, an array, and bools in two spellings.
const ARGS: &str = "p_bool=N p_invbool=y p_bint=0 p_byte=0x7f p_short=-300 p_ushort=65535 \
p_int=-42 p_uint=4000000000 p_long=-9000000000 p_ulong=0x1234567890 \
p_ullong=18446744073709551615 p_hexint=0xdeadbeef p_charp=\"hello world\" p_string=eth0 \
p_intarr=1,-2,3,4 p_boolen=1";

fn table() -> Vec<ParamDecl> {
    mp_types_table::table_a()
}

fn reference_table() -> Vec<reference::Param> {
    use reference::{Cell, Kind, Param};
    let p = |n: &str, kind: Kind, init: Cell| Param {
        name: n.as_bytes().to_vec(),
        kind,
        init,
    };
    let t = |v: &str| Cell::Text(Some(v.as_bytes().to_vec()));
    vec![
        p("p_bool", Kind::Bool, Cell::Flag(true)),
        p("p_invbool", Kind::Invbool, Cell::Flag(true)),
        p("p_bint", Kind::Bint, Cell::Num(1)),
        p("p_byte", Kind::Byte, Cell::Num(42)),
        p("p_short", Kind::Short, Cell::Num(-1234)),
        p("p_ushort", Kind::Ushort, Cell::Num(54321)),
        p("p_int", Kind::Int, Cell::Num(-123_456)),
        p("p_uint", Kind::Uint, Cell::Num(3_000_000_000)),
        p("p_long", Kind::Long, Cell::Num(-5_000_000_000)),
        p("p_ulong", Kind::Ulong, Cell::Num(10_000_000_000)),
        p(
            "p_ullong",
            Kind::Ullong,
            Cell::Num(18_000_000_000_000_000_000),
        ),
        p("p_hexint", Kind::Hexint, Cell::Num(0xbeef)),
        p("p_charp", Kind::Charp, t("hello")),
        p("p_string", Kind::Str { maxlen: 16 }, t("str")),
        p(
            "p_intarr",
            Kind::Array {
                elem: Box::new(Kind::Int),
                max: 4,
                counted: true,
            },
            Cell::Arr {
                items: (1..=4).map(Cell::Num).collect(),
                count: 4,
            },
        ),
        p("p_boolen", Kind::BoolEnableOnly, Cell::Flag(true)),
    ]
}

/// What the naive baseline stores (read only through `black_box`).
#[allow(dead_code)]
#[derive(Debug)]
enum Naive {
    Int(i64),
    Uint(u64),
    Bool(bool),
    Text(String),
    Ints(Vec<i64>),
}

/// `split_whitespace` + `str::parse`: the names are known, values are decimal or `0x` hex,
/// strings lose their quotes (and so `"hello world"` splits in two: this baseline does less
/// than the kernel's grammar).
fn naive(args: &str, names: &[&str]) -> Vec<Option<Naive>> {
    let mut out: Vec<Option<Naive>> = names.iter().map(|_| None).collect();
    let int = |v: &str| -> Option<i64> {
        match v.strip_prefix("0x") {
            Some(h) => i64::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        }
    };
    let uint = |v: &str| -> Option<u64> {
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        }
    };
    for tok in args.split_whitespace() {
        let Some((name, val)) = tok.split_once('=') else {
            continue;
        };
        let Some(i) = names.iter().position(|n| *n == name) else {
            continue;
        };
        let val = val.trim_matches('"');
        out[i] = match name {
            "p_bool" | "p_invbool" | "p_boolen" | "p_bint" => Some(Naive::Bool(matches!(
                val.as_bytes().first(),
                Some(b'y' | b'Y' | b'1')
            ))),
            "p_charp" | "p_string" => Some(Naive::Text(val.to_string())),
            "p_intarr" => Some(Naive::Ints(val.split(',').filter_map(int).collect())),
            "p_byte" | "p_ushort" | "p_uint" | "p_ulong" | "p_ullong" | "p_hexint" => {
                uint(val).map(Naive::Uint)
            }
            _ => int(val).map(Naive::Int),
        };
    }
    out
}

/// Loads per second of `f`: the best of five one-second rounds (after a warm-up).
fn rate(mut f: impl FnMut()) -> f64 {
    let round = |f: &mut dyn FnMut(), d: Duration| {
        let start = Instant::now();
        let mut n: u64 = 0;
        while start.elapsed() < d {
            for _ in 0..64 {
                f();
            }
            n += 64;
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    round(&mut f, Duration::from_millis(300));
    (0..5)
        .map(|_| round(&mut f, Duration::from_secs(1)))
        .fold(0.0, f64::max)
}

fn main() {
    let env = ParamEnv::new(KernelVersion::V6_12);
    let decls = table();
    let module = StandaloneModule::new("mp16", &decls).expect("table builds");
    let rtable = reference_table();
    let names: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();

    // Both implementations load the string and agree on what sysfs shows.
    let out = module.clone().load(ARGS.as_bytes(), &env);
    assert_eq!(out.errno, None, "{:?}", out.log);
    let r = reference::load(b"mp16", &rtable, ARGS.as_bytes());
    assert_eq!(r.errno, None);
    let shown: Vec<(Vec<u8>, Vec<u8>)> = out
        .values
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.into_bytes(), v.unwrap_or_default()))
        .collect();
    assert_eq!(shown, r.values.into_iter().collect::<Vec<_>>());

    let sim_load = rate(|| {
        let mut m = module.clone();
        black_box(m.load(black_box(ARGS.as_bytes()), &env));
    });
    let sim_clone = rate(|| {
        black_box(black_box(&module).clone());
    });
    let sim_build = rate(|| {
        black_box(StandaloneModule::new("mp16", black_box(&decls)).ok());
    });
    let reference = rate(|| {
        black_box(reference::load(
            b"mp16",
            &rtable,
            black_box(ARGS.as_bytes()),
        ));
    });
    let naive_rate = rate(|| {
        black_box(naive(black_box(ARGS), &names));
    });

    println!(
        "parameter strings parsed and set per second, 16 parameters, {} bytes:",
        ARGS.len()
    );
    println!("  sim (clone + StandaloneModule::load, values read back): {sim_load:>12.0} /s");
    println!("  reference (tests/params_props/reference.rs):           {reference:>12.0} /s");
    println!("  naive (split_whitespace + str::parse):                  {naive_rate:>12.0} /s");
    println!("  (of which cloning the built module alone:               {sim_clone:>12.0} /s)");
    println!("  (building the module, StandaloneModule::new:            {sim_build:>12.0} /s)");
    println!("ratio sim / reference: {:.3}", sim_load / reference);
    println!("ratio sim / naive:     {:.3}", sim_load / naive_rate);
}
