//! A parameter table declared in Rust, without a module image: the declarations are laid out
//! in a private [`Memory`] the way the `module_param*` macros (include/linux/moduleparam.h)
//! lay them out in a module (variables, `kparam_string` / `kparam_array` descriptors, the
//! `__param` section), read back with [`read_param_section`], and loaded with the same
//! [`load_module_parse_args`] the load path uses.

use std::collections::BTreeMap;

use super::module::{has_sysfs_file, load_module_parse_args, param_attr_show, param_attr_store};
use super::table::{
    KERNEL_PARAM_FL_HWPARAM, KERNEL_PARAM_FL_UNSAFE, KERNEL_PARAM_SIZE, KernelParam, OpFn, StdOps,
    read_param_section,
};
use super::{ArgBuf, Ctx, NoModuleCode, ParamEnv};
use crate::errno::Errno;
use crate::log::{KernelLog, LogLine};
use crate::memory::{Memory, RegionKind};

/// The type of a declared parameter (the `type` of `module_param`, or the other macros).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamType {
    /// `byte` (`unsigned char`).
    Byte,
    /// `short`.
    Short,
    /// `ushort`.
    Ushort,
    /// `int`.
    Int,
    /// `uint`.
    Uint,
    /// `long` (64-bit).
    Long,
    /// `ulong` (64-bit).
    Ulong,
    /// `ullong`.
    Ullong,
    /// `hexint` (`unsigned int`).
    Hexint,
    /// `charp` (`char *`).
    Charp,
    /// `bool`.
    Bool,
    /// `bool_enable_only`.
    BoolEnableOnly,
    /// `invbool` (stores the negation).
    Invbool,
    /// `bint` (an `int` set like a bool).
    Bint,
    /// `module_param_string(name, buf, maxlen, perm)`: a `char[maxlen]`.
    String {
        /// `sizeof(buf)`, NUL included.
        maxlen: u32,
    },
    /// `module_param_array(name, type, nump, perm)`.
    Array {
        /// The element type: a scalar (not `String`, `Array` or `Custom`).
        elem: Box<ParamType>,
        /// `ARRAY_SIZE(array)`.
        max: u32,
        /// Whether `nump` is a variable (else NULL: sysfs shows all `max` elements).
        with_num: bool,
    },
    /// `module_param_cb(name, &ops, &var, perm)` with the module's own `kernel_param_ops`.
    Custom {
        /// The ops object's symbol (`mp_custom_ops`).
        symbol: String,
        /// `.flags` (`KERNEL_PARAM_OPS_FL_NOARG`).
        flags: u32,
        /// `.set`: a kernel/params.c function (run by the simulator), opaque code (does
        /// nothing, see [`NoModuleCode`]), or NULL.
        set: OpFn,
        /// `.get`.
        get: OpFn,
        /// `.free`.
        free: OpFn,
        /// The variable `arg` points to, laid out as a parameter of this type.
        storage: Box<ParamType>,
    },
}

impl ParamType {
    /// The standard ops object `module_param` uses for this type (include/linux/moduleparam.h
    /// `param_ops_##type`); `None` for `Custom`.
    pub fn std_ops(&self) -> Option<StdOps> {
        Some(match self {
            ParamType::Byte => StdOps::Byte,
            ParamType::Short => StdOps::Short,
            ParamType::Ushort => StdOps::Ushort,
            ParamType::Int => StdOps::Int,
            ParamType::Uint => StdOps::Uint,
            ParamType::Long => StdOps::Long,
            ParamType::Ulong => StdOps::Ulong,
            ParamType::Ullong => StdOps::Ullong,
            ParamType::Hexint => StdOps::Hexint,
            ParamType::Charp => StdOps::Charp,
            ParamType::Bool => StdOps::Bool,
            ParamType::BoolEnableOnly => StdOps::BoolEnableOnly,
            ParamType::Invbool => StdOps::Invbool,
            ParamType::Bint => StdOps::Bint,
            ParamType::String { .. } => StdOps::String,
            ParamType::Array { .. } => StdOps::Array,
            ParamType::Custom { .. } => return None,
        })
    }

    /// `sizeof` of a scalar's C type (LP64); `None` for containers.
    fn scalar_size(&self) -> Option<u32> {
        Some(match self {
            ParamType::Byte | ParamType::Bool | ParamType::BoolEnableOnly | ParamType::Invbool => 1,
            ParamType::Short | ParamType::Ushort => 2,
            ParamType::Int | ParamType::Uint | ParamType::Hexint | ParamType::Bint => 4,
            ParamType::Long | ParamType::Ulong | ParamType::Ullong | ParamType::Charp => 8,
            _ => return None,
        })
    }
}

/// An initial value (the C initializer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An integer; stored in the type's width (two's complement).
    Int(i128),
    /// `true` / `false`.
    Bool(bool),
    /// A string (`charp`, `string`); `None` is NULL (or an all-zero `string` buffer).
    Str(Option<Vec<u8>>),
    /// Array elements: the first ones; the rest are zero. The count variable starts at the
    /// number given.
    Array(Vec<Value>),
}

/// One declared parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamDecl {
    /// The parameter name.
    pub name: String,
    /// Its type.
    pub ty: ParamType,
    /// The sysfs mode (0: no file).
    pub perm: u16,
    /// The initial value.
    pub init: Value,
    /// `level` (-1 for every `module_param*`).
    pub level: i8,
    /// `flags`: `KERNEL_PARAM_FL_UNSAFE` (`module_param_unsafe`), `KERNEL_PARAM_FL_HWPARAM`.
    pub flags: u8,
}

impl ParamDecl {
    /// `module_param(name, type, perm)` with an initial value.
    pub fn new(name: &str, ty: ParamType, perm: u16, init: Value) -> Self {
        ParamDecl {
            name: name.to_string(),
            ty,
            perm,
            init,
            level: -1,
            flags: 0,
        }
    }

    /// `module_param_unsafe`: flags `KERNEL_PARAM_FL_UNSAFE`.
    pub fn unsafe_(mut self) -> Self {
        self.flags |= KERNEL_PARAM_FL_UNSAFE;
        self
    }

    /// `module_param_hw`: flags `KERNEL_PARAM_FL_HWPARAM`.
    pub fn hw(mut self) -> Self {
        self.flags |= KERNEL_PARAM_FL_HWPARAM;
        self
    }
}

/// What loading with a parameter string gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `None` on success, else the errno `init_module` returns.
    pub errno: Option<Errno>,
    /// The log lines the parameter step printed.
    pub log: Vec<LogLine>,
    /// After a successful load: each sysfs parameter file (perm ≠ 0) and what reading it
    /// gives, by name.
    pub values: Option<BTreeMap<String, Result<Vec<u8>, Errno>>>,
    /// `mod->async_probe_requested`.
    pub async_probe_requested: bool,
    /// Whether the kernel was tainted with `TAINT_USER` (an unsafe parameter was set).
    pub taint_user: bool,
}

/// Where the standalone module's memory lives (the x86_64 module area).
const RODATA: u64 = 0xffff_ffff_c000_0000;
const DATA: u64 = 0xffff_ffff_c100_0000;
const PARAM: u64 = 0xffff_ffff_c200_0000;
const TEXT: u64 = 0xffff_ffff_c300_0000;
const THIS_MODULE: u64 = 0xffff_ffff_c400_0000;
const SECTION_MAX: usize = 0x100_0000;
/// Fake vmlinux addresses of the standard ops objects and functions.
const KSYM_OPS: u64 = 0xffff_ffff_8200_0000;
const KSYM_FNS: u64 = 0xffff_ffff_8201_0000;

/// A growing section image with the address it will have.
struct Sect {
    base: u64,
    bytes: Vec<u8>,
}

impl Sect {
    fn new(base: u64) -> Self {
        Sect {
            base,
            bytes: Vec::new(),
        }
    }

    /// Reserve `size` zero bytes aligned to `align`; their address.
    fn reserve(&mut self, size: usize, align: usize) -> Result<u64, Errno> {
        let align = align.max(1);
        let pad = (align - self.bytes.len() % align) % align;
        let off = self.bytes.len() + pad;
        let end = off.checked_add(size).ok_or(Errno::ENOMEM)?;
        if end > SECTION_MAX {
            return Err(Errno::ENOMEM);
        }
        self.bytes.resize(end, 0);
        Ok(self.base + off as u64)
    }

    fn put(&mut self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        let off = addr.checked_sub(self.base).ok_or(Errno::EINVAL)?;
        let off = usize::try_from(off).map_err(|_| Errno::EINVAL)?;
        let end = off.checked_add(data.len()).ok_or(Errno::EINVAL)?;
        let dst = self.bytes.get_mut(off..end).ok_or(Errno::EINVAL)?;
        dst.copy_from_slice(data);
        Ok(())
    }

    fn push(&mut self, data: &[u8], align: usize) -> Result<u64, Errno> {
        let a = self.reserve(data.len(), align)?;
        self.put(a, data)?;
        Ok(a)
    }

    fn cstring(&mut self, s: &[u8]) -> Result<u64, Errno> {
        let mut v = s.to_vec();
        v.push(0);
        self.push(&v, 1)
    }
}

/// The symbol table of the fake kernel and module: address → name.
#[derive(Clone, Debug, Default)]
struct Symbols {
    by_addr: BTreeMap<u64, String>,
    next_text: u64,
}

impl Symbols {
    fn new() -> Self {
        let mut by_addr = BTreeMap::new();
        for (i, o) in StdOps::ALL.iter().enumerate() {
            by_addr.insert(KSYM_OPS + 0x40 * i as u64, o.symbol().to_string());
        }
        Symbols {
            by_addr,
            next_text: TEXT,
        }
    }

    fn std_ops(o: StdOps) -> u64 {
        let i = StdOps::ALL.iter().position(|x| *x == o).unwrap_or(0);
        KSYM_OPS + 0x40 * i as u64
    }

    /// The address of a function pointer's target, registering its name.
    fn function(&mut self, f: &OpFn) -> u64 {
        match f {
            OpFn::Null => 0,
            OpFn::Kernel(k) => {
                let name = k.symbol();
                let addr = self
                    .by_addr
                    .iter()
                    .find(|(_, n)| n.as_str() == name)
                    .map(|(a, _)| *a);
                addr.unwrap_or_else(|| {
                    let a = KSYM_FNS + 0x10 * self.by_addr.len() as u64;
                    self.by_addr.insert(a, name.to_string());
                    a
                })
            }
            OpFn::Opaque(name) => {
                let a = self.next_text;
                self.next_text += 0x10;
                self.by_addr.insert(a, name.clone());
                a
            }
        }
    }

    fn at(&self, addr: u64) -> Option<String> {
        self.by_addr.get(&addr).cloned()
    }
}

/// Bytes of `v` in `size` bytes, two's complement, if it fits signed or unsigned.
fn int_bytes(v: i128, size: u32) -> Result<Vec<u8>, Errno> {
    let bits = size * 8;
    let lo = -(1i128 << (bits - 1));
    let hi = (1i128 << bits) - 1;
    if v < lo || v > hi {
        return Err(Errno::ERANGE);
    }
    let le = v.to_le_bytes();
    Ok(le.get(..size as usize).unwrap_or(&[]).to_vec())
}

/// One module instance with a declared parameter table.
#[derive(Clone, Debug)]
pub struct StandaloneModule {
    name: Vec<u8>,
    mem: Memory,
    params: Vec<KernelParam>,
    symbols: Symbols,
}

/// Lay out a scalar's initial value at `addr` (in `data`), `charp` strings in `rodata`.
fn init_scalar(
    ty: &ParamType,
    init: &Value,
    addr: u64,
    data: &mut Sect,
    rodata: &mut Sect,
) -> Result<(), Errno> {
    let size = ty.scalar_size().ok_or(Errno::EINVAL)?;
    let bytes = match (ty, init) {
        (ParamType::Charp, Value::Str(None)) => vec![0; 8],
        (ParamType::Charp, Value::Str(Some(s))) => {
            if s.contains(&0) {
                return Err(Errno::EINVAL);
            }
            rodata.cstring(s)?.to_le_bytes().to_vec()
        }
        (ParamType::Charp, _) => return Err(Errno::EINVAL),
        (_, Value::Bool(b)) => int_bytes(i128::from(*b), size)?,
        (_, Value::Int(v)) => int_bytes(*v, size)?,
        _ => return Err(Errno::EINVAL),
    };
    data.put(addr, &bytes)
}

/// Lay out one parameter's storage; its `arg` value.
fn layout(ty: &ParamType, init: &Value, data: &mut Sect, rodata: &mut Sect) -> Result<u64, Errno> {
    match ty {
        ParamType::String { maxlen } => {
            let len = *maxlen as usize;
            let buf = data.reserve(len.max(1), 8)?;
            match init {
                Value::Str(None) => {}
                Value::Str(Some(s)) if s.len() < len && !s.contains(&0) => data.put(buf, s)?,
                _ => return Err(Errno::EINVAL),
            }
            let mut d = maxlen.to_le_bytes().to_vec();
            d.extend_from_slice(&[0; 4]);
            d.extend_from_slice(&buf.to_le_bytes());
            rodata.push(&d, 8)
        }
        ParamType::Array {
            elem,
            max,
            with_num,
        } => {
            let esize = elem.scalar_size().ok_or(Errno::EINVAL)?;
            let eops = elem.std_ops().ok_or(Errno::EINVAL)?;
            let Value::Array(vals) = init else {
                return Err(Errno::EINVAL);
            };
            if vals.len() > *max as usize {
                return Err(Errno::EINVAL);
            }
            let total = (*max as usize)
                .checked_mul(esize as usize)
                .ok_or(Errno::ENOMEM)?;
            let base = data.reserve(total.max(1), 8)?;
            for (i, v) in vals.iter().enumerate() {
                init_scalar(elem, v, base + (i as u64) * u64::from(esize), data, rodata)?;
            }
            let num = if *with_num {
                let n = u32::try_from(vals.len()).map_err(|_| Errno::EINVAL)?;
                data.push(&n.to_le_bytes(), 4)?
            } else {
                0
            };
            let mut d = Vec::new();
            d.extend_from_slice(&max.to_le_bytes());
            d.extend_from_slice(&esize.to_le_bytes());
            d.extend_from_slice(&num.to_le_bytes());
            d.extend_from_slice(&Symbols::std_ops(eops).to_le_bytes());
            d.extend_from_slice(&base.to_le_bytes());
            rodata.push(&d, 8)
        }
        ParamType::Custom { storage, .. } => layout(storage, init, data, rodata),
        scalar => {
            let size = scalar.scalar_size().ok_or(Errno::EINVAL)?;
            let addr = data.reserve(size as usize, size as usize)?;
            init_scalar(scalar, init, addr, data, rodata)?;
            Ok(addr)
        }
    }
}

impl StandaloneModule {
    /// Build the module `name` with these parameters (in `__param` order). `EINVAL` for a
    /// declaration that does not make sense (an initial value of the wrong kind, a string that
    /// does not fit, an array of containers), `ERANGE` for an integer too wide for its type.
    pub fn new(name: &str, decls: &[ParamDecl]) -> Result<Self, Errno> {
        let mut rodata = Sect::new(RODATA);
        let mut data = Sect::new(DATA);
        let mut params = Sect::new(PARAM);
        let mut syms = Symbols::new();
        for d in decls {
            if d.name.as_bytes().contains(&0) {
                return Err(Errno::EINVAL);
            }
            let name_addr = rodata.cstring(d.name.as_bytes())?;
            let arg = layout(&d.ty, &d.init, &mut data, &mut rodata)?;
            let ops_addr = match &d.ty {
                ParamType::Custom {
                    symbol,
                    flags,
                    set,
                    get,
                    free,
                    ..
                } => {
                    let mut o = Vec::new();
                    o.extend_from_slice(&flags.to_le_bytes());
                    o.extend_from_slice(&[0; 4]);
                    for f in [set, get, free] {
                        o.extend_from_slice(&syms.function(f).to_le_bytes());
                    }
                    let a = rodata.push(&o, 8)?;
                    syms.by_addr.insert(a, symbol.clone());
                    a
                }
                t => Symbols::std_ops(t.std_ops().ok_or(Errno::EINVAL)?),
            };
            let mut kp = Vec::with_capacity(KERNEL_PARAM_SIZE as usize);
            kp.extend_from_slice(&name_addr.to_le_bytes());
            kp.extend_from_slice(&THIS_MODULE.to_le_bytes());
            kp.extend_from_slice(&ops_addr.to_le_bytes());
            kp.extend_from_slice(&d.perm.to_le_bytes());
            kp.extend_from_slice(&d.level.to_le_bytes());
            kp.push(d.flags);
            kp.extend_from_slice(&[0; 4]);
            kp.extend_from_slice(&arg.to_le_bytes());
            params.push(&kp, 8)?;
        }
        let mut mem = Memory::default();
        for (s, label) in [(&rodata, ".rodata"), (&data, ".data"), (&params, "__param")] {
            let size = s.bytes.len().max(1) as u64;
            mem.alloc(s.base, size, RegionKind::Module, format!("{name}: {label}"))?;
            mem.write(s.base, &s.bytes)?;
        }
        let table = {
            let lookup = |a: u64| syms.at(a);
            read_param_section(&mem, PARAM, params.bytes.len() as u64, &lookup)?
        };
        Ok(StandaloneModule {
            name: name.as_bytes().to_vec(),
            mem,
            params: table,
            symbols: syms,
        })
    }

    /// The parameter table as read back from memory.
    pub fn params(&self) -> &[KernelParam] {
        &self.params
    }

    /// The simulated memory.
    pub fn memory(&self) -> &Memory {
        &self.mem
    }

    /// The symbol at `addr` in the fake kernel/module symbol table (`param_ops_int`, …).
    pub fn symbol_at(&self, addr: u64) -> Option<String> {
        self.symbols.at(addr)
    }

    fn with_ctx<R>(
        &mut self,
        env: &ParamEnv,
        log: &mut KernelLog,
        f: impl FnOnce(&[KernelParam], &mut Ctx<'_>) -> R,
    ) -> (R, bool) {
        let syms = self.symbols.clone();
        let lookup = move |a: u64| syms.at(a);
        let mut code = NoModuleCode;
        let mut ctx = Ctx::new(env, &mut self.mem, log, &lookup, &mut code);
        let r = f(&self.params, &mut ctx);
        (r, ctx.taint_user)
    }

    /// Load this instance with `args` (the parameter step of `load_module`, with
    /// `module.async_probe` off), then read every sysfs file if it succeeded. Use a new
    /// instance for each load: values persist.
    pub fn load(&mut self, args: &[u8], env: &ParamEnv) -> Outcome {
        let mut log = KernelLog::new();
        let name = self.name.clone();
        let (out, taint_user) = self.with_ctx(env, &mut log, |params, ctx| {
            load_module_parse_args(&name, ArgBuf::new(args), params, false, ctx)
        });
        let values = match out.result {
            Ok(()) => Some(self.sysfs_values(env)),
            Err(_) => None,
        };
        Outcome {
            errno: out.result.err(),
            log: log.take(),
            values,
            async_probe_requested: out.async_probe_requested,
            taint_user,
        }
    }

    /// Every sysfs parameter file (perm ≠ 0) and what reading it gives, by name.
    pub fn sysfs_values(&mut self, env: &ParamEnv) -> BTreeMap<String, Result<Vec<u8>, Errno>> {
        let mut log = KernelLog::new();
        let (m, _) = self.with_ctx(env, &mut log, |params, ctx| {
            let mut m = BTreeMap::new();
            for kp in params.iter().filter(|kp| has_sysfs_file(kp)) {
                m.insert(kp.name_str(), param_attr_show(kp, ctx));
            }
            m
        });
        m
    }

    /// What `get` shows for parameter `name` whether or not it has a sysfs file.
    pub fn get(&mut self, name: &str, env: &ParamEnv) -> Option<Result<Vec<u8>, Errno>> {
        let mut log = KernelLog::new();
        let (r, _) = self.with_ctx(env, &mut log, |params, ctx| {
            params
                .iter()
                .find(|kp| kp.name == name.as_bytes())
                .map(|kp| param_attr_show(kp, ctx))
        });
        r
    }

    /// Write `data` to the sysfs file of `name` (`param_attr_store`): the byte count or the
    /// errno, and the log lines. `ENOENT` if there is no such file.
    pub fn sysfs_write(
        &mut self,
        name: &str,
        data: &[u8],
        env: &ParamEnv,
    ) -> (Result<usize, Errno>, Vec<LogLine>) {
        let mut log = KernelLog::new();
        let (r, _) = self.with_ctx(env, &mut log, |params, ctx| {
            match params
                .iter()
                .find(|kp| kp.name == name.as_bytes() && has_sysfs_file(kp))
            {
                Some(kp) => param_attr_store(kp, data, ctx),
                None => Err(Errno::ENOENT),
            }
        });
        (r, log.take())
    }
}
