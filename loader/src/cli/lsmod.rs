//! `lsmod` (kmod's tools/lsmod.c): the loaded modules in `/proc/modules` order, one line each,
//! under the header `Module                  Size  Used by`.
//!
//! A row is `printf("%-19s %8ld  %d", name, size, refcnt)`, then the holders (the entries of
//! `/sys/module/<m>/holders/` in `readdir()` order, which is kernfs's name-hash order) after a
//! space, separated by commas. kmod reads the size from `/sys/module/<m>/coresize`, which equals
//! the size in `/proc/modules` once a module is live (here: the size in `/proc/modules`), and
//! the count from `/sys/module/<m>/refcnt`.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;

use super::{Console, EXIT_FAILURE, LongOpt, Machine, getopt, sysfs_order};
use crate::backend::{ModuleState, ModuleTable};

const SHORT: &str = "svVh";
const LONG: &[LongOpt] = &[
    ("syslog", 's'),
    ("verbose", 'v'),
    ("version", 'V'),
    ("help", 'h'),
];

/// kmod's header line (without the newline).
pub const HEADER: &str = "Module                  Size  Used by";

fn help(prog: &str) -> String {
    format!(
        "Usage:\n\t{prog} [options]\nOptions:\n\
         \t-s, --syslog      print to syslog, not stderr\n\
         \t-v, --verbose     enables more messages\n\
         \t-V, --version     show version\n\
         \t-h, --help        show this help\n"
    )
}

/// The size a module's `/proc/modules` line shows (its second field); `-ENOENT` when there is
/// none, as `kmod_module_get_size()` returns.
fn size_of(state: &ModuleState) -> i64 {
    state
        .proc_modules
        .split([' ', '\t'])
        .filter(|s| !s.is_empty())
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(-2)
}

/// One row of lsmod's output for module `name` (without the newline).
pub fn row(name: &str, state: &ModuleState, char_is_signed: bool) -> String {
    let mut line = format!("{name:<19} {:>8}  {}", size_of(state), state.refcnt);
    let mut holders = state.holders.clone();
    sysfs_order(&mut holders, char_is_signed);
    let mut sep = ' ';
    for h in &holders {
        line.push(sep);
        sep = ',';
        line.push_str(h);
    }
    line
}

/// lsmod's whole output for a module table: the header and one row per module, each line
/// ending with a newline.
pub fn format(table: &ModuleTable, char_is_signed: bool) -> String {
    let mut out = format!("{HEADER}\n");
    for (name, state) in table {
        out.push_str(&row(name, state, char_is_signed));
        out.push('\n');
    }
    out
}

/// Runs `lsmod` with `args` (the arguments after the program name) against `machine`; returns
/// the exit status.
pub fn run(args: &[OsString], machine: &mut Machine, con: &mut Console<'_>) -> u8 {
    let prog = con.prog().to_string();
    let (opts, operands) = getopt(&prog, args, SHORT, LONG);
    let mut common = super::CommonOpts::default();
    // lsmod has only the options every tool shares.
    for o in opts {
        if let Err(status) = super::common_option(&o, &mut common, help, con) {
            return status;
        }
    }
    con.use_syslog(common.syslog);
    if !operands.is_empty() {
        con.error("too many arguments provided.");
        return EXIT_FAILURE;
    }
    let backend = match machine.backend() {
        Ok(b) => b,
        Err(why) => {
            con.error(&why);
            return EXIT_FAILURE;
        }
    };
    con.set_priority(common.verbose);
    let table = match backend.modules() {
        Ok(t) => t,
        Err(e) => {
            if e.op == "read /proc/modules" {
                con.error(&format!(
                    "could not open /proc/modules: {}",
                    crate::insert::strerror(e.errno)
                ));
            }
            con.error(&format!(
                "could not get list of modules: {}",
                crate::insert::strerror(e.errno)
            ));
            return EXIT_FAILURE;
        }
    };
    match con.print(&format(&table, machine.char_is_signed())) {
        Ok(()) => 0,
        // `lsmod | head`: puts() fails silently in kmod too.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(_) => EXIT_FAILURE,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn state(line: &str, refcnt: i64, holders: &[&str]) -> ModuleState {
        ModuleState {
            initstate: "live".into(),
            taint: String::new(),
            refcnt,
            holders: holders.iter().map(|s| s.to_string()).collect(),
            params: Default::default(),
            proc_modules: line.into(),
        }
    }

    #[test]
    fn rows_like_kmod() {
        let s = state(
            "mp_lib 16384 1 mp_use, Live 0xffffffffc0000000 (OE)",
            1,
            &["mp_use"],
        );
        assert_eq!(
            row("mp_lib", &s, true),
            "mp_lib                 16384  1 mp_use"
        );
        let s = state("x 8192 0 - Live 0x0", 0, &[]);
        assert_eq!(row("x", &s, true), "x                       8192  0");
        let long = "a_module_name_longer_than_nineteen";
        let s = state(&format!("{long} 123456789 0 - Live 0x0"), 0, &[]);
        assert_eq!(row(long, &s, true), format!("{long} 123456789  0"));
        let s = state("bad", 0, &[]);
        assert_eq!(row("bad", &s, true), "bad                       -2  0");
    }

    #[test]
    fn holders_in_sysfs_order() {
        let mut names = vec!["b".to_string(), "a".to_string(), "mp_use".to_string()];
        sysfs_order(&mut names, true);
        let s = state("m 1 3 a,b,mp_use, Live 0x0", 3, &["a", "b", "mp_use"]);
        assert_eq!(
            row("m", &s, true),
            format!("m                          1  3 {}", names.join(","))
        );
    }
}
