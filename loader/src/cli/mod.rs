//! kmod's command line tools: [`insmod`], [`rmmod`] and [`lsmod`] on any backend, and
//! [`modinfo`] (files only), with kmod's
//! argument syntax (GNU `getopt_long`), messages and exit statuses (kmod 34, `tools/*.c`).
//!
//! Each tool's `run` takes the arguments after the program name, a [`Machine`] (the simulated
//! or the real kernel) and a [`Console`] (where stdout, stderr and the log go), and returns the
//! exit status. A [`Machine`] lives as long as its caller keeps it: in one `modloader` process
//! a simulated kernel sees one tool run; a library caller can run several against it.

// (Inner lint attributes here would reach every tool module, so each file sets its own; this
// one was checked with `clippy::indexing_slicing`, `unwrap_used` and `expect_used` denied.)
#![forbid(unsafe_code)]

pub mod insmod;
pub mod lsmod;
pub mod modinfo;
pub mod rmmod;

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::backend::Backend;
use crate::file::Compression;
use crate::kernel_backend::KernelBackend;
use crate::sim_backend::SimBackend;

/// `EXIT_FAILURE`.
pub const EXIT_FAILURE: u8 = 1;

/// What `-V` prints.
pub fn version() -> String {
    format!("modloader version {}\n", env!("CARGO_PKG_VERSION"))
}

/// The kernel the tools talk to.
#[derive(Debug)]
pub enum Machine {
    /// A simulated kernel.
    Sim(Box<SimBackend>),
    /// The running kernel (system calls, `/proc`, `/sys`, `/lib/modules`).
    Kernel(KernelBackend),
    /// No kernel: why (an unknown profile, say). A tool reports it once its arguments are
    /// parsed, where kmod would report a failed `kmod_new()`.
    Unavailable(String),
}

impl Machine {
    /// The backend, or why there is none.
    ///
    /// Fails with the message of [`Machine::Unavailable`].
    pub fn backend(&self) -> Result<&dyn Backend, String> {
        match self {
            Machine::Sim(b) => Ok(b.as_ref()),
            Machine::Kernel(b) => Ok(b),
            Machine::Unavailable(why) => Err(why.clone()),
        }
    }

    /// The backend, mutable, or why there is none.
    ///
    /// Fails with the message of [`Machine::Unavailable`].
    pub fn backend_mut(&mut self) -> Result<&mut dyn Backend, String> {
        match self {
            Machine::Sim(b) => Ok(b.as_mut()),
            Machine::Kernel(b) => Ok(b),
            Machine::Unavailable(why) => Err(why.clone()),
        }
    }

    /// What the kernel decompresses itself (`/sys/module/compression`), and the error libkmod
    /// would log reading it.
    pub fn kernel_compression(&self) -> (Compression, Option<String>) {
        match self {
            Machine::Sim(b) => (
                crate::insert::profile_compression(b.kernel().profile()),
                None,
            ),
            Machine::Kernel(_) => crate::insert::sysfs_compression(),
            Machine::Unavailable(_) => (Compression::None, None),
        }
    }

    /// Whether `name` is built into the kernel (listed in `modules.builtin`, as libkmod's
    /// `kmod_module_is_builtin()` checks it).
    pub fn is_builtin(&self, name: &str) -> bool {
        match self {
            Machine::Sim(b) => b.kernel().profile().is_builtin_module(name),
            Machine::Kernel(_) => running_kernel_builtin(name),
            Machine::Unavailable(_) => false,
        }
    }

    /// Whether `/sys/module/<name>` exists for something that is not a loaded module (builtin
    /// code with parameters): libkmod then takes the module for one still coming.
    pub fn has_sysfs_dir(&self, name: &str) -> bool {
        match self {
            Machine::Sim(b) => b.kernel().profile().has_builtin_sysfs_dir(name),
            Machine::Kernel(_) => Path::new("/sys/module").join(name).is_dir(),
            Machine::Unavailable(_) => false,
        }
    }

    /// Whether the kernel's `char` is signed (x86-64: yes, arm64: no), which its sysfs name
    /// hash sees for bytes past ASCII.
    pub fn char_is_signed(&self) -> bool {
        match self {
            Machine::Sim(b) => b.kernel().profile().arch() == sim::profile::Arch::X86_64,
            _ => cfg!(target_arch = "x86_64"),
        }
    }
}

/// Whether the running kernel's `modules.builtin` lists `name`.
fn running_kernel_builtin(name: &str) -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let dir = sim::profile::modules_dir(Path::new("/"), release.trim());
    let Ok(text) = std::fs::read_to_string(dir.join("modules.builtin")) else {
        return false;
    };
    text.lines()
        .any(|l| path_to_modname(OsStr::new(l)).as_deref() == Some(name))
}

/// `LOG_ERR`.
pub const LOG_ERR: i32 = 3;
/// `LOG_WARNING`.
pub const LOG_WARNING: i32 = 4;
/// `LOG_INFO`.
pub const LOG_INFO: i32 = 6;

/// Where a tool writes: stdout, stderr, and its log (stderr or syslog), filtered by priority
/// like kmod's `tools/log.c`.
pub struct Console<'a> {
    prog: String,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    priority: i32,
    syslog: bool,
}

impl<'a> Console<'a> {
    /// A console for the tool called `prog` (`program_invocation_short_name`).
    pub fn new(prog: &str, out: &'a mut dyn Write, err: &'a mut dyn Write) -> Self {
        Console {
            prog: prog.to_string(),
            out,
            err,
            priority: LOG_WARNING,
            syslog: false,
        }
    }

    /// The tool's name as it prints it.
    pub fn prog(&self) -> &str {
        &self.prog
    }

    /// `log_open()`: send log messages to syslog instead of stderr.
    pub fn use_syslog(&mut self, on: bool) {
        self.syslog = on;
    }

    /// `log_setup_kmod_log()`: print messages up to this priority (`LOG_ERR` + one per `-v`).
    pub fn set_priority(&mut self, priority: i32) {
        self.priority = priority;
    }

    /// `log_printf()`: `prog: PRIO: msg` (the message without its newline), when `prio` is
    /// within the priority set.
    pub fn log(&mut self, prio: i32, msg: &str) {
        if prio > self.priority {
            return;
        }
        let name = match prio {
            2 => "FATAL",
            3 => "ERROR",
            4 => "WARNING",
            5 => "NOTICE",
            6 => "INFO",
            7 => "DEBUG",
            _ => "LOG",
        };
        if self.syslog && send_syslog(&self.prog, prio, &format!("{name}: {msg}")) {
            return;
        }
        let _ = writeln!(self.err, "{}: {name}: {msg}", self.prog);
    }

    /// An `ERROR` message.
    pub fn error(&mut self, msg: &str) {
        self.log(LOG_ERR, msg);
    }

    /// A line on stderr as it is (getopt's messages).
    pub fn stderr_line(&mut self, line: &str) {
        let _ = writeln!(self.err, "{line}");
    }

    /// Text on stdout. Fails when stdout cannot be written (a closed pipe).
    pub fn print(&mut self, text: &str) -> std::io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}

/// Sends one message to the system log (`/dev/log`, facility `LOG_DAEMON`, as `openlog(prog,
/// LOG_CONS, LOG_DAEMON)` sets it up); false when there is no log to send to (the message then
/// goes to stderr, as `LOG_CONS` sends it to the console).
fn send_syslog(prog: &str, prio: i32, msg: &str) -> bool {
    const LOG_DAEMON: i32 = 3 << 3;
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return false;
    };
    let line = format!("<{}>{prog}: {msg}", LOG_DAEMON | prio);
    sock.send_to(line.as_bytes(), "/dev/log").is_ok()
}

/// What [`getopt`] found, in command line order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opt {
    /// An option, by its short letter (or the code of a long-only option).
    Flag(char),
    /// A usage error, with GNU getopt's message (`insmod: invalid option -- 'x'`).
    Error(String),
}

/// The options every kmod tool shares: `-s` (syslog) and `-v` (more messages).
#[derive(Clone, Copy, Debug)]
pub struct CommonOpts {
    /// `-s`: log to syslog instead of stderr.
    pub syslog: bool,
    /// The log priority, `LOG_ERR` raised by each `-v`.
    pub verbose: i32,
}

impl Default for CommonOpts {
    fn default() -> Self {
        CommonOpts {
            syslog: false,
            verbose: LOG_ERR,
        }
    }
}

/// Handles an option every kmod tool shares: `-s`, `-v`, `-h` (prints `help(prog)`), `-V`, and
/// a usage error. `Err(status)` ends the tool with that status; `Ok(true)` means the option was
/// taken; `Ok(false)` means it is the tool's own.
pub fn common_option(
    o: &Opt,
    common: &mut CommonOpts,
    help: fn(&str) -> String,
    con: &mut Console<'_>,
) -> Result<bool, u8> {
    match o {
        Opt::Flag('s') => common.syslog = true,
        Opt::Flag('v') => common.verbose += 1,
        Opt::Flag('h') => {
            let prog = con.prog().to_string();
            let _ = con.print(&help(&prog));
            return Err(0);
        }
        Opt::Flag('V') => {
            let _ = con.print(&version());
            return Err(0);
        }
        Opt::Error(msg) => {
            con.stderr_line(msg);
            return Err(EXIT_FAILURE);
        }
        Opt::Flag(_) => return Ok(false),
    }
    Ok(true)
}

/// A long option: its name and the code [`getopt`] reports for it.
pub type LongOpt = (&'static str, char);

/// GNU `getopt_long()` with options that take no argument, as kmod's tools call it: options
/// may come anywhere (non-options are moved after them), `--` ends the options, `-` alone is
/// not an option, short options may be grouped (`-fv`), long ones abbreviated to a unique
/// prefix. Returns the options in order and the other arguments in order.
pub fn getopt(
    prog: &str,
    args: &[OsString],
    short: &str,
    long: &[LongOpt],
) -> (Vec<Opt>, Vec<OsString>) {
    let mut opts = Vec::new();
    let mut operands = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            operands.extend(iter.by_ref().cloned());
            break;
        }
        if let Some(body) = bytes.strip_prefix(b"--") {
            opts.push(long_opt(prog, body, long));
        } else if let Some(letters) = bytes.strip_prefix(b"-").filter(|l| !l.is_empty()) {
            for &b in letters {
                let c = char::from(b);
                if b.is_ascii() && short.contains(c) {
                    opts.push(Opt::Flag(c));
                } else {
                    opts.push(Opt::Error(format!("{prog}: invalid option -- '{c}'")));
                }
            }
        } else {
            operands.push(arg.clone());
        }
    }
    (opts, operands)
}

fn long_opt(prog: &str, body: &[u8], long: &[LongOpt]) -> Opt {
    let text = String::from_utf8_lossy(body);
    let (name, has_value) = match body.iter().position(|&b| b == b'=') {
        Some(eq) => (body.get(..eq).unwrap_or_default(), true),
        None => (body, false),
    };
    let exact = long.iter().find(|(n, _)| n.as_bytes() == name);
    let found = match exact {
        Some(o) => Some(*o),
        None => {
            let cands: Vec<&LongOpt> = long
                .iter()
                .filter(|(n, _)| n.as_bytes().starts_with(name))
                .collect();
            match cands.as_slice() {
                [] => None,
                [one] => Some(**one),
                [first, rest @ ..] if rest.iter().all(|(_, c)| c == &first.1) => Some(**first),
                many => {
                    let list: String = many.iter().map(|(n, _)| format!(" '--{n}'")).collect();
                    return Opt::Error(format!(
                        "{prog}: option '--{}' is ambiguous; possibilities:{list}",
                        String::from_utf8_lossy(name)
                    ));
                }
            }
        }
    };
    match found {
        None => Opt::Error(format!("{prog}: unrecognized option '--{text}'")),
        Some((n, _)) if has_value => {
            Opt::Error(format!("{prog}: option '--{n}' doesn't allow an argument"))
        }
        Some((_, c)) => Opt::Flag(c),
    }
}

/// libkmod's `modname_normalize()`: up to the first `.`, with `-` turned into `_`.
pub fn modname_normalize(name: &OsStr) -> String {
    let bytes = name.as_bytes();
    let end = bytes.iter().position(|&b| b == b'.').unwrap_or(bytes.len());
    let norm: Vec<u8> = bytes
        .iter()
        .take(end)
        .map(|&b| if b == b'-' { b'_' } else { b })
        .collect();
    String::from_utf8_lossy(&norm).into_owned()
}

/// libkmod's `path_to_modname()`: the normalized name of the path's last component, `None`
/// when it has none (`"dir/"`).
pub fn path_to_modname(path: &OsStr) -> Option<String> {
    let bytes = path.as_bytes();
    let base = match bytes.iter().rposition(|&b| b == b'/') {
        Some(i) => bytes.get(i + 1..).unwrap_or_default(),
        None => bytes,
    };
    if base.is_empty() {
        None
    } else {
        Some(modname_normalize(OsStr::from_bytes(base)))
    }
}

/// `kernfs_name_hash()` (fs/kernfs/dir.c) of a name without namespace: sysfs lists a
/// directory in the order of this hash, then of the names.
pub fn kernfs_name_hash(name: &[u8], char_is_signed: bool) -> u32 {
    const GOLDEN_RATIO_64: u64 = 0x61C8_8646_80B5_83EB;
    let mut hash: u64 = 0;
    for &b in name {
        // partial_name_hash(*name++, hash): the char widens to unsigned long.
        let c = if char_is_signed {
            i64::from(b as i8) as u64
        } else {
            u64::from(b)
        };
        hash = hash
            .wrapping_add(c << 4)
            .wrapping_add(c >> 4)
            .wrapping_mul(11);
    }
    // end_name_hash(): hash_long(hash, 32) = hash * GOLDEN_RATIO_64 >> 32 on 64-bit.
    let mut h = (hash.wrapping_mul(GOLDEN_RATIO_64) >> 32) as u32;
    h &= 0x7fff_ffff;
    if h < 2 {
        h += 2;
    }
    if h >= i32::MAX as u32 {
        h = i32::MAX as u32 - 1;
    }
    h
}

/// Sorts names as `readdir()` of a sysfs directory returns them (kernfs order: hash, then
/// name), which is the order kmod prints a module's holders in.
pub fn sysfs_order(names: &mut [String], char_is_signed: bool) {
    names.sort_by(|a, b| {
        (kernfs_name_hash(a.as_bytes(), char_is_signed), a.as_bytes())
            .cmp(&(kernfs_name_hash(b.as_bytes(), char_is_signed), b.as_bytes()))
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    const LONG: &[LongOpt] = &[
        ("force", 'f'),
        ("syslog", 's'),
        ("verbose", 'v'),
        ("version", 'V'),
        ("help", 'h'),
    ];

    #[test]
    fn getopt_like_glibc() {
        let (o, a) = getopt(
            "insmod",
            &os(&["-fv", "x.ko", "a=1", "--syslog", "-"]),
            "fsvVh",
            LONG,
        );
        assert_eq!(o, vec![Opt::Flag('f'), Opt::Flag('v'), Opt::Flag('s')]);
        assert_eq!(a, os(&["x.ko", "a=1", "-"]));
        let (o, a) = getopt("insmod", &os(&["--", "-f", "--x"]), "fsvVh", LONG);
        assert!(o.is_empty());
        assert_eq!(a, os(&["-f", "--x"]));
        let (o, _) = getopt("insmod", &os(&["-x"]), "fsvVh", LONG);
        assert_eq!(o, vec![Opt::Error("insmod: invalid option -- 'x'".into())]);
        let (o, _) = getopt("insmod", &os(&["--foo=1"]), "fsvVh", LONG);
        assert_eq!(
            o,
            vec![Opt::Error("insmod: unrecognized option '--foo=1'".into())]
        );
        let (o, _) = getopt("insmod", &os(&["--ver"]), "fsvVh", LONG);
        assert_eq!(
            o,
            vec![Opt::Error(
                "insmod: option '--ver' is ambiguous; possibilities: '--verbose' '--version'"
                    .into()
            )]
        );
        let (o, _) = getopt("insmod", &os(&["--for", "--verb", "--vers"]), "fsvVh", LONG);
        assert_eq!(o, vec![Opt::Flag('f'), Opt::Flag('v'), Opt::Flag('V')]);
        let (o, _) = getopt("insmod", &os(&["--force=yes"]), "fsvVh", LONG);
        assert_eq!(
            o,
            vec![Opt::Error(
                "insmod: option '--force' doesn't allow an argument".into()
            )]
        );
    }

    #[test]
    fn module_names_like_libkmod() {
        assert_eq!(modname_normalize(OsStr::new("a-b.c")), "a_b");
        assert_eq!(modname_normalize(OsStr::new("mp_lib")), "mp_lib");
        assert_eq!(
            path_to_modname(OsStr::new("/x/y/mp-types.ko.xz")).as_deref(),
            Some("mp_types")
        );
        assert_eq!(path_to_modname(OsStr::new("dir/")), None);
    }

    #[test]
    fn kernfs_hash_values() {
        // Reserved values are avoided; the hash fits in 31 bits.
        for n in ["", "a", "mp_use", "snd_hda_codec_realtek"] {
            let h = kernfs_name_hash(n.as_bytes(), true);
            assert!((2..i32::MAX as u32).contains(&h), "{n}: {h}");
        }
        // ASCII names hash alike whatever the signedness of char.
        assert_eq!(
            kernfs_name_hash(b"mp_use", true),
            kernfs_name_hash(b"mp_use", false)
        );
        assert_ne!(
            kernfs_name_hash("é".as_bytes(), true),
            kernfs_name_hash("é".as_bytes(), false)
        );
    }

    /// This machine's `/sys/module` is a kernfs directory: its `readdir()` order is the order
    /// `sysfs_order` computes (when there is one to look at).
    #[test]
    fn sysfs_order_matches_this_machines_readdir() {
        let Ok(rd) = std::fs::read_dir("/sys/module") else {
            return;
        };
        let listed: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if listed.len() < 2 {
            return;
        }
        let mut sorted = listed.clone();
        sysfs_order(&mut sorted, cfg!(target_arch = "x86_64"));
        assert_eq!(sorted, listed);
    }
}
