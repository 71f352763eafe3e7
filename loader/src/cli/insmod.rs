//! `insmod` (kmod's tools/insmod.c): insert one module file with parameters.
//!
//! `insmod [-f] [--force-modversion] [--force-vermagic] [-s] [-v] FILE [NAME[=VALUE]...]`:
//! the words after the file become the parameter string ([`crate::params::from_args`]), and
//! [`crate::insert::insert_module`] does the rest. On failure kmod prints
//! `insmod: ERROR: could not insert module FILE: <reason>` (or `could not load module` when the
//! path itself is missing) and exits with status 1; on success it prints nothing.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{Console, EXIT_FAILURE, LOG_INFO, LongOpt, Machine, Opt, getopt};
use crate::insert::{InsertOptions, insert_module, strerror};

const SHORT: &str = "fsvVh";
/// Codes of the long-only options.
const FORCE_MODVERSION: char = '\u{2}';
const FORCE_VERMAGIC: char = '\u{1}';
/// modloader's own option (not kmod's): never let the kernel decompress.
const USERSPACE_DECOMPRESS: char = '\u{3}';
const LONG: &[LongOpt] = &[
    ("userspace-decompress", USERSPACE_DECOMPRESS),
    ("force", 'f'),
    ("force-modversion", FORCE_MODVERSION),
    ("force-vermagic", FORCE_VERMAGIC),
    ("syslog", 's'),
    ("verbose", 'v'),
    ("version", 'V'),
    ("help", 'h'),
];

fn help(prog: &str) -> String {
    format!(
        "Usage:\n\t{prog} [options] filename [module options]\nOptions:\n\
         \t-f, --force              DANGEROUS: forces a module load, may cause\n\
         \t                         data corruption and crash your machine.\n\
         \t                         implies --force-modversion and\n\
         \t                         --force-vermagic\n\
         \t    --force-modversion   Ignore module's version\n\
         \t    --force-vermagic     Ignore module's version magic\n\
         \t    --userspace-decompress  (modloader) decompress here even when the\n\
         \t                         kernel could (init_module with the image)\n\
         \t-s, --syslog             print to syslog, not stderr\n\
         \t-v, --verbose            enables more messages\n\
         \t-V, --version            show version\n\
         \t-h, --help               show this help\n"
    )
}

/// `path_make_absolute_cwd()`: the path libkmod names in its log.
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(path),
        Err(_) => path.to_path_buf(),
    }
}

/// Runs `insmod` with `args` (the arguments after the program name) against `machine`;
/// returns the exit status.
pub fn run(args: &[OsString], machine: &mut Machine, con: &mut Console<'_>) -> u8 {
    let prog = con.prog().to_string();
    let (opts, operands) = getopt(&prog, args, SHORT, LONG);
    let mut common = super::CommonOpts::default();
    let mut insert = InsertOptions::default();
    let mut userspace_decompress = false;
    for o in opts {
        match super::common_option(&o, &mut common, help, con) {
            Err(status) => return status,
            Ok(true) => continue,
            Ok(false) => {}
        }
        match o {
            Opt::Flag('f') => {
                insert.force_modversion = true;
                insert.force_vermagic = true;
            }
            Opt::Flag(FORCE_MODVERSION) => insert.force_modversion = true,
            Opt::Flag(FORCE_VERMAGIC) => insert.force_vermagic = true,
            Opt::Flag(USERSPACE_DECOMPRESS) => userspace_decompress = true,
            _ => {}
        }
    }
    con.use_syslog(common.syslog);
    let Some((filename, words)) = operands.split_first() else {
        con.error("missing filename.");
        return EXIT_FAILURE;
    };
    if filename == "-" {
        con.error("this tool does not support loading from stdin!");
        return EXIT_FAILURE;
    }
    let params = match crate::params::from_args(words) {
        Ok(p) => p,
        Err(e) => {
            con.error(&format!("could not gather module options: {e}"));
            return EXIT_FAILURE;
        }
    };
    let (compression, warning) = machine.kernel_compression();
    if !userspace_decompress {
        insert.kernel_compression = compression;
    }
    let backend = match machine.backend_mut() {
        Ok(b) => b,
        Err(why) => {
            con.error(&why);
            return EXIT_FAILURE;
        }
    };
    if let Some(w) = warning {
        con.error(&w);
    }
    con.set_priority(common.verbose);
    let path = Path::new(filename);
    match insert_module(backend, path, &params, &insert) {
        Ok(_) => 0,
        Err(e) => {
            for line in &e.log {
                con.error(line);
            }
            if e.stage != crate::insert::Stage::Path {
                con.log(
                    LOG_INFO,
                    &format!(
                        "Failed to insert module '{}': {}",
                        absolute(path).display(),
                        strerror(e.errno)
                    ),
                );
            }
            con.error(&e.message());
            EXIT_FAILURE
        }
    }
}
