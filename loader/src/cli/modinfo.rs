//! `modinfo`: prints what kmod's `modinfo` prints — the one Debian 12 ships, kmod 30
//! (`30+20221128`, upstream commit d5950b0) — byte for byte, with the same exit status and
//! error messages.
//!
//! kmod's own command line (`tools/modinfo.c`, parsed like glibc's `getopt_long`):
//! `modinfo [-F FIELD] [-0] [-a|-d|-l|-p|-n] [-m] [-b ROOT] [-k KVER] [-V] [-h] FILE|NAME...`.
//!
//! **What is printed.** For each argument, `filename:` (the path made absolute against the
//! current directory, as libkmod does, without resolving `..` or symbolic links), then every
//! `.modinfo` string in file order as `key:` padded to 16 columns and the value (`key=value` with
//! `-0`), then, for a signed module, `sig_id`, `signer`, `sig_key`, `sig_hashalgo` and
//! `signature` (keys and signatures as `XX:XX:...`, 20 bytes a line, continued on lines
//! indented by two tabs), and last the parameters (`parm:` `name:description (type)`,
//! combining `parm` and `parmtype`, the most recently first-seen parameter first). `-F FIELD`
//! prints only the values of that key, one a line; `-a`, `-d`, `-l`, `-n`, `-p` are `-F author`,
//! `description`, `license`, `filename`, `parm`; `-0` ends each line with NUL instead.
//!
//! **Files and names.** An argument naming an existing regular file ending in `.ko`, `.ko.xz`
//! or `.ko.zst` (and `.ko.gz` with [`Features::gzip`]) is read as a module; anything else is
//! looked up as kmod does, in the binary indexes depmod writes under
//! `ROOT/lib/modules/KVER` (`-b`, `-k`; default `/lib/modules/$(uname -r)`): `modules.dep.bin`,
//! `modules.symbols.bin` (for `symbol:NAME`), `modules.alias.bin`, `modules.builtin.bin`,
//! `modules.builtin.alias.bin`; built-in modules print `name:`, `filename: (builtin)` and what
//! `modules.builtin.modinfo` says. `-m` looks up module names only. kmod reads no
//! configuration files here, and neither does this.
//!
//! **Deliberate differences.** gzip-compressed modules are read by default ([`Features::ALL`];
//! Debian's kmod is built without zlib and answers `Module X.ko.gz not found.`;
//! [`Features::DEBIAN_KMOD_30`] behaves like it), and `-V` says `+ZLIB` accordingly. Where
//! libkmod aborts on an internal assertion (some malformed ELF files) this reports
//! `Invalid argument` instead; where it would read past the end of a corrupt index file this
//! stops reading; files or decompressed images over 1 GiB are refused (`Cannot allocate
//! memory`). A PKCS#7 signature is decoded by a reader that follows OpenSSL's decoder where
//! module signatures can differ, not by OpenSSL itself (see `signature.rs`). A zstd stream cut
//! inside a raw block yields that block's bytes with libzstd and not here.
//!
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

mod elf;
mod fnmatch;
mod getopt;
mod index;
mod signature;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;

use crate::errno::Errno;

use getopt::{Found, Getopt, Long, Short};
use index::Index;

/// Compile-time features of kmod that change what modinfo does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// Read gzip-compressed modules (`.ko.gz`; kmod's `+ZLIB`).
    pub gzip: bool,
}

impl Features {
    /// Everything this implementation supports: `+ZSTD +XZ +ZLIB +LIBCRYPTO`.
    pub const ALL: Features = Features { gzip: true };
    /// Debian 12's kmod 30: `+ZSTD +XZ -ZLIB +LIBCRYPTO` (a `.ko.gz` file is not a module file,
    /// so it is looked up as a name and not found).
    pub const DEBIAN_KMOD_30: Features = Features { gzip: false };
}

impl Default for Features {
    fn default() -> Self {
        Features::ALL
    }
}

/// Runs modinfo with the process's standard output and error; `argv[0]` is the program name
/// (its last path component prefixes error messages, as kmod's `program_invocation_short_name`).
pub fn main(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = argv.into_iter().collect();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let code = run(&args, &mut out, &mut err);
    let _ = out.flush();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Runs modinfo on `args` (`args[0]` is the program name) with [`Features::ALL`], writing what
/// kmod writes to `out` and `err`; returns the exit status (0 or 1).
pub fn run(args: &[OsString], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    run_with(args, out, err, Features::ALL)
}

/// [`run`] with the given kmod features.
pub fn run_with(
    args: &[OsString],
    out: &mut dyn Write,
    err: &mut dyn Write,
    features: Features,
) -> i32 {
    let argv: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    let prog = argv
        .first()
        .map(|a| {
            let base = a.rsplit(|&b| b == b'/').next().unwrap_or(a);
            String::from_utf8_lossy(base).into_owned()
        })
        .unwrap_or_else(|| "modinfo".to_owned());
    let mut tool = Modinfo {
        out: Out {
            w: out,
            broken: false,
        },
        err,
        prog,
        sep: b'\n',
        field: None,
        features,
        dirname: Vec::new(),
        indexes: HashMap::new(),
    };
    tool.main(&argv)
}

const SHORTS: [Short; 12] = [
    short(b'a', false),
    short(b'd', false),
    short(b'l', false),
    short(b'p', false),
    short(b'n', false),
    short(b'0', false),
    short(b'm', false),
    short(b'F', true),
    short(b'k', true),
    short(b'b', true),
    short(b'V', false),
    short(b'h', false),
];

const LONGS: [Long; 12] = [
    long("author", false, b'a'),
    long("description", false, b'd'),
    long("license", false, b'l'),
    long("parameters", false, b'p'),
    long("filename", false, b'n'),
    long("null", false, b'0'),
    long("modname", false, b'm'),
    long("field", true, b'F'),
    long("set-version", true, b'k'),
    long("basedir", true, b'b'),
    long("version", false, b'V'),
    long("help", false, b'h'),
];

const fn short(letter: u8, has_arg: bool) -> Short {
    Short { letter, has_arg }
}

const fn long(name: &'static str, has_arg: bool, val: u8) -> Long {
    Long { name, has_arg, val }
}

/// The first line of `modinfo -V` (kmod's `PACKAGE " version " VERSION`).
const VERSION: &str = "kmod version 30";

/// `PATH_MAX - 1`: how much of a name libkmod's normalisers look at.
const NAME_MAX: usize = 4095;

/// Standard output, where a reader that went away stops the output (kmod would die of SIGPIPE)
/// and other failures are ignored (as `printf`'s are).
struct Out<'a> {
    w: &'a mut dyn Write,
    broken: bool,
}

impl Out<'_> {
    fn put(&mut self, parts: &[&[u8]]) {
        if self.broken {
            return;
        }
        for p in parts {
            if let Err(e) = self.w.write_all(p) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    self.broken = true;
                }
                return;
            }
        }
    }
}

/// A module as libkmod knows it while modinfo prints it.
struct Module {
    /// The module's name (from the file name, or the index).
    name: Vec<u8>,
    /// Its file, once known.
    path: Option<Vec<u8>>,
    /// Whether its `modules.dep` line was read (`init.dep`).
    dep_read: bool,
    /// Whether it is built into the kernel; `None` until asked (`KMOD_MODULE_BUILTIN_UNKNOWN`).
    builtin: Option<bool>,
}

impl Module {
    fn named(name: Vec<u8>, builtin: Option<bool>) -> Module {
        Module {
            name,
            path: None,
            dep_read: false,
            builtin,
        }
    }
}

/// A module parameter being assembled from `parm` and `parmtype` strings.
struct Param {
    name: Vec<u8>,
    desc: Option<Vec<u8>>,
    ty: Option<Vec<u8>>,
}

/// One modinfo run: options and output.
struct Modinfo<'a> {
    out: Out<'a>,
    err: &'a mut dyn Write,
    /// The program name for error messages.
    prog: String,
    /// `\n`, or NUL with `-0`.
    sep: u8,
    /// `-F` and its shortcuts.
    field: Option<Vec<u8>>,
    features: Features,
    /// The module directory (libkmod's `ctx->dirname`).
    dirname: Vec<u8>,
    /// The index files read so far, by name (`None`: missing or not an index).
    indexes: HashMap<&'static str, Option<Index>>,
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

impl Modinfo<'_> {
    /// `ERR(...)`: `modinfo: ERROR: ...` on stderr.
    fn error(&mut self, parts: &[&[u8]]) {
        let mut line = format!("{}: ERROR: ", self.prog).into_bytes();
        for p in parts {
            line.extend_from_slice(p);
        }
        let _ = self.err.write_all(&line);
    }

    /// `do_modinfo`.
    fn main(&mut self, argv: &[Vec<u8>]) -> i32 {
        let mut root: Option<Vec<u8>> = None;
        let mut kversion: Option<Vec<u8>> = None;
        let mut by_name = false;
        let mut opts = Getopt::new(argv, &SHORTS, &LONGS);
        while let Some(found) = opts.next_opt(self.err) {
            let (c, arg) = match found {
                Found::Opt(c, arg) => (c, arg.unwrap_or_default()),
                Found::Error => return 1,
            };
            match c {
                b'a' => self.field = Some(b"author".to_vec()),
                b'd' => self.field = Some(b"description".to_vec()),
                b'l' => self.field = Some(b"license".to_vec()),
                b'p' => self.field = Some(b"parm".to_vec()),
                b'n' => self.field = Some(b"filename".to_vec()),
                b'0' => self.sep = 0,
                b'm' => by_name = true,
                b'F' => self.field = Some(arg),
                b'k' => kversion = Some(arg),
                b'b' => root = Some(arg),
                b'h' => {
                    self.help();
                    return 0;
                }
                b'V' => {
                    let zlib = if self.features.gzip { '+' } else { '-' };
                    let text =
                        format!("{VERSION}\n+ZSTD +XZ {zlib}ZLIB +LIBCRYPTO -EXPERIMENTAL\n");
                    self.out.put(&[text.as_bytes()]);
                    return 0;
                }
                _ => return 1,
            }
        }
        let operands = opts.operands();
        if operands.is_empty() {
            self.error(&[b"missing module or filename.\n"]);
            return 1;
        }
        let release = kernel_release();
        let dir = if root.is_some() || kversion.is_some() {
            let mut d = root.unwrap_or_default();
            d.extend_from_slice(b"/lib/modules/");
            d.extend_from_slice(&kversion.unwrap_or(release));
            d
        } else {
            let mut d = b"/lib/modules/".to_vec();
            d.extend_from_slice(&release);
            d
        };
        self.dirname = make_absolute(&dir).unwrap_or(dir);
        let mut failed = false;
        for name in &operands {
            let r = if by_name {
                self.name_do(name)
            } else if self.is_module_filename(name) {
                self.path_do(name)
            } else {
                self.alias_do(name)
            };
            failed |= r.is_err();
            if self.out.broken {
                return 1;
            }
        }
        i32::from(failed)
    }

    fn help(&mut self) {
        let text = format!(
            "Usage:\n\
             \t{} [options] <modulename|filename> [args]\n\
             Options:\n\
             \t-a, --author                Print only 'author'\n\
             \t-d, --description           Print only 'description'\n\
             \t-l, --license               Print only 'license'\n\
             \t-p, --parameters            Print only 'parm'\n\
             \t-n, --filename              Print only 'filename'\n\
             \t-0, --null                  Use \\0 instead of \\n\n\
             \t-m, --modname               Handle argument as module name instead of alias or filename\n\
             \t-F, --field=FIELD           Print only provided FIELD\n\
             \t-k, --set-version=VERSION   Use VERSION instead of `uname -r`\n\
             \t-b, --basedir=DIR           Use DIR as filesystem root for /lib/modules\n\
             \t-V, --version               Show version\n\
             \t-h, --help                  Show this help\n",
            self.prog
        );
        self.out.put(&[text.as_bytes()]);
    }

    /// `is_module_filename`: an existing regular file with a module extension.
    fn is_module_filename(&self, name: &[u8]) -> bool {
        let regular = std::fs::metadata(OsStr::from_bytes(name)).is_ok_and(|m| m.is_file());
        let gz: &[&[u8]] = if self.features.gzip {
            &[b".ko.gz"]
        } else {
            &[]
        };
        let exts = [&[b".ko".as_slice(), b".ko.xz", b".ko.zst"][..], gz].concat();
        regular
            && exts
                .iter()
                .any(|e| name.len() > e.len() && name.ends_with(e))
    }

    /// `modinfo_path_do`.
    fn path_do(&mut self, path: &[u8]) -> Result<(), Errno> {
        let abs = make_absolute(path);
        let exists = abs
            .as_ref()
            .is_some_and(|a| std::fs::metadata(OsStr::from_bytes(a)).is_ok());
        let base = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        let (Some(abs), true, false) = (abs, exists, base.is_empty()) else {
            self.error(&[b"Module file ", path, b" not found.\n"]);
            return Err(Errno::ENOENT);
        };
        let mut m = Module {
            name: modname_normalize(base),
            path: Some(abs),
            dep_read: false,
            builtin: Some(false),
        };
        self.modinfo_do(&mut m)
    }

    /// `modinfo_name_do` (`-m`): module names only.
    fn name_do(&mut self, name: &[u8]) -> Result<(), Errno> {
        let norm = modname_normalize(name);
        let mut found = self.lookup_moddep(&norm);
        if found.is_empty() {
            found = self.lookup_builtin(&norm);
        }
        if found.is_empty() {
            found = self.lookup_alias_bin("modules.builtin.alias", &norm, true);
        }
        let Some(mut m) = found.into_iter().next() else {
            self.error(&[b"Module name ", name, b" not found.\n"]);
            return Err(Errno::ENOENT);
        };
        self.modinfo_do(&mut m)
    }

    /// `modinfo_alias_do`: `kmod_module_new_from_lookup` and every module it finds.
    fn alias_do(&mut self, alias: &[u8]) -> Result<(), Errno> {
        let Some(norm) = alias_normalize(alias) else {
            self.error(&[b"Module alias ", alias, b" not found.\n"]);
            return Err(Errno::EINVAL);
        };
        // Configuration aliases and install commands: modinfo reads no configuration.
        let mut list = self.lookup_moddep(&norm);
        if list.is_empty() && norm.starts_with(b"symbol:") {
            list = self.lookup_alias_bin("modules.symbols", &norm, false);
        }
        if list.is_empty() {
            list = self.lookup_alias_bin("modules.alias", &norm, false);
        }
        if list.is_empty() {
            list = self.lookup_builtin(&norm);
        }
        if list.is_empty() {
            list = self.lookup_alias_bin("modules.builtin.alias", &norm, true);
        }
        if list.is_empty() {
            self.error(&[b"Module ", alias, b" not found.\n"]);
            return Err(Errno::ENOENT);
        }
        let mut result = Ok(());
        for mut m in list {
            if let Err(e) = self.modinfo_do(&mut m) {
                result = Err(e);
            }
        }
        result
    }

    /// An index file under the module directory, read once.
    fn index(&mut self, name: &'static str) -> Option<&Index> {
        if !self.indexes.contains_key(name) {
            let mut path = self.dirname.clone();
            path.extend_from_slice(format!("/{name}.bin").as_bytes());
            let idx = std::fs::read(OsStr::from_bytes(&path))
                .ok()
                .and_then(Index::parse);
            self.indexes.insert(name, idx);
        }
        self.indexes.get(name).and_then(|i| i.as_ref())
    }

    /// `kmod_search_moddep`: the `modules.dep` line of a module.
    fn search_moddep(&mut self, name: &[u8]) -> Option<Vec<u8>> {
        self.index("modules.dep")?.search(name)
    }

    /// `kmod_lookup_alias_from_moddep_file`.
    fn lookup_moddep(&mut self, name: &[u8]) -> Vec<Module> {
        if name.contains(&b':') {
            return Vec::new();
        }
        let Some(line) = self.search_moddep(name) else {
            return Vec::new();
        };
        let mut m = Module::named(modname_normalize(name), None);
        self.parse_depline(&mut m, &line);
        vec![m]
    }

    /// `kmod_lookup_alias_from_builtin_file`: a name in `modules.builtin.bin`.
    fn lookup_builtin(&mut self, name: &[u8]) -> Vec<Module> {
        match self.index("modules.builtin").and_then(|i| i.search(name)) {
            Some(_) => vec![Module::named(modname_normalize(name), Some(true))],
            None => Vec::new(),
        }
    }

    /// `kmod_lookup_alias_from_alias_bin`: the modules whose patterns in an alias index match.
    fn lookup_alias_bin(&mut self, index: &'static str, name: &[u8], builtin: bool) -> Vec<Module> {
        let Some(idx) = self.index(index) else {
            return Vec::new();
        };
        idx.search_wild(name)
            .into_iter()
            .map(|v| Module::named(v.value, builtin.then_some(true)))
            .collect()
    }

    /// `kmod_module_parse_depline`: the module's path from its `modules.dep` line (relative
    /// paths are under the module directory).
    fn parse_depline(&mut self, m: &mut Module, line: &[u8]) {
        m.dep_read = true;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        let rel = line.get(..colon).unwrap_or_default();
        if m.path.is_none() {
            m.path = Some(if rel.first() == Some(&b'/') {
                rel.to_vec()
            } else {
                [&self.dirname[..], b"/", rel].concat()
            });
        }
    }

    /// `kmod_module_get_path`.
    fn module_path(&mut self, m: &mut Module) -> Option<Vec<u8>> {
        if let Some(p) = &m.path {
            return Some(p.clone());
        }
        if m.dep_read {
            return None;
        }
        let line = self.search_moddep(&m.name)?;
        self.parse_depline(m, &line);
        m.path.clone()
    }

    /// `kmod_module_is_builtin`.
    fn is_builtin(&mut self, m: &mut Module) -> bool {
        match m.builtin {
            Some(b) => b,
            None => {
                let b = self
                    .index("modules.builtin")
                    .and_then(|i| i.search(&m.name))
                    .is_some();
                m.builtin = Some(b);
                b
            }
        }
    }

    /// `kmod_module_get_info`: the `.modinfo` strings split at the first `=`, then the
    /// signature's fields.
    fn get_info(&mut self, m: &mut Module) -> Result<Entries, Errno> {
        let mut entries = Vec::new();
        if self.is_builtin(m) {
            for s in self.builtin_modinfo(&m.name)? {
                entries.push(split_entry(&s));
            }
            return Ok(entries);
        }
        let path = self.module_path(m).ok_or(Errno::ENOENT)?;
        let data = elf::load(Path::new(OsStr::from_bytes(&path)), self.features.gzip)?;
        for s in elf::modinfo_strings(&data)? {
            entries.push(split_entry(s));
        }
        entries.extend(signature::entries(&data));
        Ok(entries)
    }

    /// `kmod_builtin_get_modinfo`: a built-in module's strings from `modules.builtin.modinfo`
    /// (`name.key=value`, a module's strings together); `ENOSYS` when it has none there.
    fn builtin_modinfo(&mut self, name: &[u8]) -> Result<Vec<Vec<u8>>, Errno> {
        let mut path = self.dirname.clone();
        path.extend_from_slice(b"/modules.builtin.modinfo");
        let data = std::fs::read(OsStr::from_bytes(&path)).map_err(|e| Errno::from_io(&e))?;
        // NUL-terminated strings (an unterminated last one ends the iteration).
        let mut strings: Vec<&[u8]> = data.split(|&b| b == 0).collect();
        strings.pop();
        let mut group: Option<&[u8]> = None;
        let mut found = Vec::new();
        for s in strings {
            let Some(dot) = s.iter().position(|&b| b == b'.') else {
                break;
            };
            let prefix = s.get(..dot).unwrap_or_default();
            if group != Some(prefix) {
                if !found.is_empty() {
                    break;
                }
                group = Some(prefix);
            }
            if prefix == name {
                found.push(s.get(dot + 1..).unwrap_or_default().to_vec());
            }
        }
        if found.is_empty() {
            return Err(Errno::ENOSYS);
        }
        Ok(found)
    }

    /// `modinfo_do`: one module.
    fn modinfo_do(&mut self, m: &mut Module) -> Result<(), Errno> {
        let sep = [self.sep];
        let path = self.module_path(m);
        let is_builtin = path.is_none();
        let field = self.field.clone();
        let field = field.as_deref();
        if is_builtin {
            match field {
                None => self.out.put(&[b"name:           ", &m.name, &sep]),
                Some(b"name") => self.out.put(&[&m.name, &sep]),
                Some(_) => {}
            }
        }
        let filename = path.unwrap_or_else(|| b"(builtin)".to_vec());
        match field {
            Some(b"filename") => {
                self.out.put(&[&filename, &sep]);
                return Ok(());
            }
            None => self.out.put(&[b"filename:       ", &filename, &sep]),
            Some(_) => {}
        }
        let entries = match self.get_info(m) {
            Ok(e) => e,
            // An old kernel without modules.builtin.modinfo.
            Err(e) if is_builtin && e == Errno::ENOENT => return Ok(()),
            Err(e) => {
                let msg = strerror(e);
                self.error(&[
                    b"could not get modinfo from '",
                    &m.name,
                    b"': ",
                    msg.as_bytes(),
                    b"\n",
                ]);
                return Err(e);
            }
        };
        let mut params: Vec<Param> = Vec::new();
        if field == Some(b"parm") {
            for (k, v) in &entries {
                if k == b"parm" || k == b"parmtype" {
                    self.process_parm(k, v, &mut params);
                }
            }
            for p in params.iter().rev() {
                let (name, desc, ty) = (&p.name[..], p.desc.as_deref(), p.ty.as_deref());
                match (desc, ty) {
                    (None, ty) => self
                        .out
                        .put(&[name, b": (", ty.unwrap_or_default(), b")", &sep]),
                    (Some(d), Some(t)) => self.out.put(&[name, b":", d, b" (", t, b")", &sep]),
                    (Some(d), None) => self.out.put(&[name, b":", d, &sep]),
                }
            }
            return Ok(());
        }
        for (k, v) in &entries {
            if let Some(f) = field {
                if f == &k[..] {
                    self.out.put(&[v, &sep]);
                }
                continue;
            }
            if k == b"parm" || k == b"parmtype" {
                self.process_parm(k, v, &mut params);
                continue;
            }
            if self.sep == 0 {
                self.out.put(&[k, b"=", v, &sep]);
                continue;
            }
            // printf("%s:%-*s%s", key, 15 - keylen, "", value): a negative width is a width too.
            let pad = vec![b' '; 15usize.abs_diff(k.len())];
            self.out.put(&[k, b":", &pad, v, &sep]);
        }
        if field.is_some() {
            return Ok(());
        }
        for p in params.iter().rev() {
            let (name, desc, ty) = (&p.name[..], p.desc.as_deref(), p.ty.as_deref());
            let head = b"parm:           ";
            match (desc, ty) {
                (None, ty) => self
                    .out
                    .put(&[head, name, b":", ty.unwrap_or_default(), &sep]),
                (Some(d), Some(t)) => self.out.put(&[head, name, b":", d, b" (", t, b")", &sep]),
                (Some(d), None) => self.out.put(&[head, name, b":", d, &sep]),
            }
        }
        Ok(())
    }

    /// `process_parm`: a `parm=name:description` or `parmtype=name:type` string.
    fn process_parm(&mut self, key: &[u8], value: &[u8], params: &mut Vec<Param>) {
        let Some(colon) = value.iter().position(|&b| b == b':') else {
            self.error(&[b"Found invalid \"", key, b"=", value, b"\": missing ':'\n"]);
            return;
        };
        let name = value.get(..colon).unwrap_or_default();
        let rest = value.get(colon + 1..).unwrap_or_default().to_vec();
        let at = match params.iter().position(|p| p.name == name) {
            Some(i) => i,
            None => {
                params.push(Param {
                    name: name.to_vec(),
                    desc: None,
                    ty: None,
                });
                params.len() - 1
            }
        };
        if let Some(p) = params.get_mut(at) {
            if key == b"parm" {
                p.desc = Some(rest);
            } else {
                p.ty = Some(rest);
            }
        }
    }
}

/// A `key=value` string split at the first `=` (no `=`: the whole string is the key).
fn split_entry(s: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match s.iter().position(|&b| b == b'=') {
        Some(i) => (
            s.get(..i).unwrap_or_default().to_vec(),
            s.get(i + 1..).unwrap_or_default().to_vec(),
        ),
        None => (s.to_vec(), Vec::new()),
    }
}

/// glibc's `strerror` text for an errno.
fn strerror(e: Errno) -> String {
    let s = std::io::Error::from_raw_os_error(e.0).to_string();
    match s.find(" (os error ") {
        Some(i) => s.get(..i).unwrap_or(&s).to_owned(),
        None => s,
    }
}

/// The running kernel's release (`uname -r`).
fn kernel_release() -> Vec<u8> {
    std::fs::read("/proc/sys/kernel/osrelease")
        .map(|mut r| {
            while r.last() == Some(&b'\n') {
                r.pop();
            }
            r
        })
        .unwrap_or_default()
}

/// `path_make_absolute_cwd`: `path` itself when absolute, else the current directory (as
/// glibc's `get_current_dir_name` gives it: `$PWD` when that is the current directory), `/`,
/// `path`. Nothing is resolved.
fn make_absolute(path: &[u8]) -> Option<Vec<u8>> {
    if path.first() == Some(&b'/') {
        return Some(path.to_vec());
    }
    let mut cwd = current_dir()?;
    cwd.push(b'/');
    cwd.extend_from_slice(path);
    Some(cwd)
}

fn current_dir() -> Option<Vec<u8>> {
    if let Some(pwd) = std::env::var_os("PWD") {
        let same =
            |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
        if pwd.as_bytes().first() == Some(&b'/')
            && let (Ok(p), Ok(d)) = (std::fs::metadata(&pwd), std::fs::metadata("."))
            && same(&p, &d)
        {
            return Some(pwd.as_bytes().to_vec());
        }
    }
    std::env::current_dir()
        .ok()
        .map(|p| p.as_os_str().as_bytes().to_vec())
}

/// `modname_normalize`: up to the first `.`, `-` as `_`.
fn modname_normalize(name: &[u8]) -> Vec<u8> {
    name.iter()
        .take(NAME_MAX)
        .take_while(|&&b| b != b'.')
        .map(|&b| if b == b'-' { b'_' } else { b })
        .collect()
}

/// `alias_normalize`: `-` as `_` except inside `[...]`; `None` for an unbalanced `]` or `[`.
fn alias_normalize(alias: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(alias.len());
    let mut i = 0;
    while i < NAME_MAX {
        let Some(&c) = alias.get(i) else {
            break;
        };
        match c {
            b'-' => out.push(b'_'),
            b']' => return None,
            b'[' => {
                while let Some(&b) = alias.get(i).filter(|&&b| b != b']') {
                    out.push(b);
                    i += 1;
                }
                alias.get(i)?;
                out.push(b']');
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn modinfo(args: &[&str]) -> (i32, String, String) {
        let argv: Vec<OsString> = std::iter::once("modinfo")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&argv, &mut out, &mut err);
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn normalisers() {
        assert_eq!(modname_normalize(b"snd-hda.ko.xz"), b"snd_hda");
        assert_eq!(alias_normalize(b"a-b[0-9]-c").unwrap(), b"a_b[0-9]_c");
        assert!(alias_normalize(b"a]").is_none());
        assert!(alias_normalize(b"a[0-").is_none());
    }

    #[test]
    fn usage_errors() {
        assert_eq!(
            modinfo(&[]),
            (
                1,
                String::new(),
                "modinfo: ERROR: missing module or filename.\n".into()
            )
        );
        let (code, out, err) = modinfo(&["-x", "a.ko"]);
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(err, "modinfo: invalid option -- 'x'\n");
        let (code, out, _) = modinfo(&["-h", "--bogus"]);
        assert_eq!(code, 0);
        assert!(out.starts_with("Usage:\n\tmodinfo [options]"), "{out}");
        let (code, out, _) = modinfo(&["-V"]);
        assert_eq!(
            (code, out.as_str()),
            (
                0,
                "kmod version 30\n+ZSTD +XZ +ZLIB +LIBCRYPTO -EXPERIMENTAL\n"
            )
        );
    }

    #[test]
    fn names_without_indexes_are_not_found() {
        let (code, out, err) = modinfo(&["-b", "/nonexistent", "-k", "1", "nosuch", "a]"]);
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(
            err,
            "modinfo: ERROR: Module nosuch not found.\nmodinfo: ERROR: Module alias a] not found.\n"
        );
        let (code, _, err) = modinfo(&["-m", "-b", "/nonexistent", "x-y.ko"]);
        assert_eq!(code, 1);
        assert_eq!(err, "modinfo: ERROR: Module name x-y.ko not found.\n");
    }

    #[test]
    fn parameters_in_kmod_order() {
        let mut t_out = Vec::new();
        let mut t_err = Vec::new();
        let mut tool = Modinfo {
            out: Out {
                w: &mut t_out,
                broken: false,
            },
            err: &mut t_err,
            prog: "modinfo".into(),
            sep: b'\n',
            field: None,
            features: Features::ALL,
            dirname: Vec::new(),
            indexes: HashMap::new(),
        };
        let mut params = Vec::new();
        tool.process_parm(b"parmtype", b"b:int", &mut params);
        tool.process_parm(b"parm", b"a:first", &mut params);
        tool.process_parm(b"parm", b"b:second", &mut params);
        tool.process_parm(b"parm", b"broken", &mut params);
        let names: Vec<&[u8]> = params.iter().rev().map(|p| &p.name[..]).collect();
        assert_eq!(names, [b"a".as_slice(), b"b"]);
        assert_eq!(params[0].desc.as_deref(), Some(&b"second"[..]));
        assert_eq!(params[0].ty.as_deref(), Some(&b"int"[..]));
        drop(tool);
        assert_eq!(
            String::from_utf8(t_err).unwrap(),
            "modinfo: ERROR: Found invalid \"parm=broken\": missing ':'\n"
        );
    }
}
