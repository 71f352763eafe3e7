//! `rmmod` (kmod's tools/rmmod.c): unload modules by name or by file path.
//!
//! For each argument: an existing path names the module of its file name, anything else is a
//! name (both normalized: up to the first `.`, `-` as `_`). Without `-f`, kmod's
//! `check_module_inuse()` runs first: builtin (`Module X is builtin.`), not loaded (`Module X is
//! not currently loaded`), holders (`Module X is in use by: A B`), a reference count above zero
//! (`Module X is in use`), or no `refcnt` file (`Module unloading is not supported`). Then
//! `delete_module(name, O_NONBLOCK)`, with `O_TRUNC` under `-f`. A failed argument makes the
//! exit status 1; the others are still tried.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::{CString, OsString};

use super::{
    Console, EXIT_FAILURE, LongOpt, Machine, Opt, getopt, modname_normalize, path_to_modname,
    sysfs_order,
};
use crate::backend::{O_NONBLOCK, O_TRUNC};
use crate::errno::Errno;
use crate::insert::strerror;

const SHORT: &str = "fsvVh";
const LONG: &[LongOpt] = &[
    ("force", 'f'),
    ("syslog", 's'),
    ("verbose", 'v'),
    ("version", 'V'),
    ("help", 'h'),
];

fn help(prog: &str) -> String {
    format!(
        "Usage:\n\t{prog} [options] modulenames\nOptions:\n\
         \t-f, --force       DANGEROUS: forces a module unload and may\n\
         \t                  crash your machine\n\
         \t-s, --syslog      print to syslog, not stderr\n\
         \t-v, --verbose     enables more messages\n\
         \t-V, --version     show version\n\
         \t-h, --help        show this help\n"
    )
}

/// Why a module may not be removed, as `check_module_inuse()` decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InUse {
    /// Listed in `modules.builtin`.
    Builtin,
    /// Not in `/proc/modules` and no `/sys/module/<name>`.
    NotLoaded,
    /// Other modules use it (in sysfs order).
    Holders(Vec<String>),
    /// Its reference count is above zero.
    Referenced,
    /// No `refcnt` file (no `CONFIG_MODULE_UNLOAD`, or sysfs directory of builtin code).
    UnloadUnsupported,
}

impl InUse {
    /// The lines kmod prints (libkmod's first), without the `rmmod: ERROR: ` prefix.
    pub fn messages(&self, name: &str) -> Vec<String> {
        match self {
            InUse::Builtin => vec![format!("Module {name} is builtin.")],
            InUse::NotLoaded => vec![format!("Module {name} is not currently loaded")],
            InUse::Holders(h) => {
                let list: String = h.iter().map(|n| format!(" {n}")).collect();
                vec![format!("Module {name} is in use by:{list}")]
            }
            InUse::Referenced => vec![format!("Module {name} is in use")],
            InUse::UnloadUnsupported => vec![
                format!(
                    "could not open '/sys/module/{name}/holders': {}",
                    strerror(Errno::ENOENT)
                ),
                "Module unloading is not supported".to_string(),
            ],
        }
    }
}

/// kmod's `check_module_inuse()` for the module `name` on `machine`: `Ok` when it may be
/// removed.
///
/// Fails with the [`InUse`] reason otherwise (no backend counts as not loaded).
pub fn check_module_inuse(machine: &Machine, name: &str) -> Result<(), InUse> {
    if machine.is_builtin(name) {
        return Err(InUse::Builtin);
    }
    let state = machine
        .backend()
        .ok()
        .and_then(|b| b.modules().ok())
        .and_then(|t| t.get(name).cloned());
    let Some(state) = state else {
        // No initstate: a directory /sys/module/<name> makes libkmod think it is coming, and
        // then it finds no holders/ and no refcnt.
        return Err(if machine.has_sysfs_dir(name) {
            InUse::UnloadUnsupported
        } else {
            InUse::NotLoaded
        });
    };
    if !state.holders.is_empty() {
        let mut holders = state.holders;
        sysfs_order(&mut holders, machine.char_is_signed());
        return Err(InUse::Holders(holders));
    }
    if state.refcnt > 0 {
        return Err(InUse::Referenced);
    }
    Ok(())
}

/// Runs `rmmod` with `args` (the arguments after the program name) against `machine`; returns
/// the exit status.
pub fn run(args: &[OsString], machine: &mut Machine, con: &mut Console<'_>) -> u8 {
    let prog = con.prog().to_string();
    let (opts, operands) = getopt(&prog, args, SHORT, LONG);
    let mut common = super::CommonOpts::default();
    let mut force = false;
    for o in opts {
        match super::common_option(&o, &mut common, help, con) {
            Err(status) => return status,
            Ok(true) => continue,
            Ok(false) => {}
        }
        if let Opt::Flag('f') = o {
            force = true;
        }
    }
    con.use_syslog(common.syslog);
    if operands.is_empty() {
        con.error("missing module name.");
        return EXIT_FAILURE;
    }
    if let Err(why) = machine.backend() {
        con.error(&why);
        return EXIT_FAILURE;
    }
    con.set_priority(common.verbose);
    let mut status = 0;
    for arg in &operands {
        let shown = arg.to_string_lossy();
        // kmod_module_new_from_path() for an existing file, else _from_name().
        let name = if std::fs::metadata(arg).is_ok() {
            match path_to_modname(arg) {
                Some(n) => n,
                None => {
                    con.error(&format!(
                        "could not use module {shown}: {}",
                        strerror(Errno::ENOENT)
                    ));
                    status = EXIT_FAILURE;
                    break;
                }
            }
        } else {
            modname_normalize(arg)
        };
        if !force && let Err(why) = check_module_inuse(machine, &name) {
            for m in why.messages(&name) {
                con.error(&m);
            }
            status = EXIT_FAILURE;
            continue;
        }
        let flags = O_NONBLOCK | if force { O_TRUNC } else { 0 };
        let result = match CString::new(name.as_bytes()) {
            Ok(c) => machine
                .backend_mut()
                .and_then(|b| b.delete_module(&c, flags).map_err(|e| strerror(e.errno))),
            Err(_) => Err(strerror(Errno::ENOENT)),
        };
        if let Err(text) = result {
            con.error(&format!("could not remove '{name}': {text}"));
            con.error(&format!("could not remove module {shown}: {text}"));
            status = EXIT_FAILURE;
        }
    }
    status
}
