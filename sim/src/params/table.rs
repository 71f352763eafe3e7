//! The parameter table: `struct kernel_param` entries of a module's `__param` section, their
//! `kernel_param_ops` (the kernel's standard ones by symbol name, or a module's own), and the
//! `kparam_array` / `kparam_string` descriptors they point to (include/linux/moduleparam.h).
//! All layouts are LP64 (x86_64 and arm64), little-endian.

use crate::errno::Errno;
use crate::memory::Memory;

/// `sizeof(struct kernel_param)`: name, mod, ops (3 pointers), perm (u16), level (s8), flags
/// (u8), padding, then the `arg`/`str`/`arr` union.
pub const KERNEL_PARAM_SIZE: u64 = 40;
/// `sizeof(struct kernel_param_ops)`: flags (u32, padded), set, get, free.
pub const KERNEL_PARAM_OPS_SIZE: u64 = 32;
/// `sizeof(struct kparam_string)`: maxlen (u32, padded), string.
pub const KPARAM_STRING_SIZE: u64 = 16;
/// `sizeof(struct kparam_array)`: max (u32), elemsize (u32), num, ops, elem.
pub const KPARAM_ARRAY_SIZE: u64 = 32;

/// `KERNEL_PARAM_OPS_FL_NOARG`: the parameter may be given without `=value`.
pub const KERNEL_PARAM_OPS_FL_NOARG: u32 = 1 << 0;
/// `KERNEL_PARAM_FL_UNSAFE`: setting it taints the kernel (`module_param_unsafe`).
pub const KERNEL_PARAM_FL_UNSAFE: u8 = 1 << 0;
/// `KERNEL_PARAM_FL_HWPARAM`: refused under lockdown (`module_param_hw`).
pub const KERNEL_PARAM_FL_HWPARAM: u8 = 1 << 1;

/// A `set`/`get`/`free` function of kernel/params.c that an ops table can point to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum KernelFn {
    /// `param_set_byte`.
    SetByte,
    /// `param_get_byte`.
    GetByte,
    /// `param_set_short`.
    SetShort,
    /// `param_get_short`.
    GetShort,
    /// `param_set_ushort`.
    SetUshort,
    /// `param_get_ushort`.
    GetUshort,
    /// `param_set_int`.
    SetInt,
    /// `param_get_int`.
    GetInt,
    /// `param_set_uint`.
    SetUint,
    /// `param_get_uint`.
    GetUint,
    /// `param_set_long`.
    SetLong,
    /// `param_get_long`.
    GetLong,
    /// `param_set_ulong`.
    SetUlong,
    /// `param_get_ulong`.
    GetUlong,
    /// `param_set_ullong`.
    SetUllong,
    /// `param_get_ullong`.
    GetUllong,
    /// `param_set_hexint`.
    SetHexint,
    /// `param_get_hexint`.
    GetHexint,
    /// `param_set_charp`.
    SetCharp,
    /// `param_get_charp`.
    GetCharp,
    /// `param_free_charp`.
    FreeCharp,
    /// `param_set_bool`.
    SetBool,
    /// `param_get_bool`.
    GetBool,
    /// `param_set_bool_enable_only`.
    SetBoolEnableOnly,
    /// `param_set_invbool`.
    SetInvbool,
    /// `param_get_invbool`.
    GetInvbool,
    /// `param_set_bint`.
    SetBint,
    /// `param_array_set` (static).
    ArraySet,
    /// `param_array_get` (static).
    ArrayGet,
    /// `param_array_free` (static).
    ArrayFree,
    /// `param_set_copystring`.
    SetCopystring,
    /// `param_get_string`.
    GetString,
}

const KERNEL_FNS: [(KernelFn, &str); 32] = [
    (KernelFn::SetByte, "param_set_byte"),
    (KernelFn::GetByte, "param_get_byte"),
    (KernelFn::SetShort, "param_set_short"),
    (KernelFn::GetShort, "param_get_short"),
    (KernelFn::SetUshort, "param_set_ushort"),
    (KernelFn::GetUshort, "param_get_ushort"),
    (KernelFn::SetInt, "param_set_int"),
    (KernelFn::GetInt, "param_get_int"),
    (KernelFn::SetUint, "param_set_uint"),
    (KernelFn::GetUint, "param_get_uint"),
    (KernelFn::SetLong, "param_set_long"),
    (KernelFn::GetLong, "param_get_long"),
    (KernelFn::SetUlong, "param_set_ulong"),
    (KernelFn::GetUlong, "param_get_ulong"),
    (KernelFn::SetUllong, "param_set_ullong"),
    (KernelFn::GetUllong, "param_get_ullong"),
    (KernelFn::SetHexint, "param_set_hexint"),
    (KernelFn::GetHexint, "param_get_hexint"),
    (KernelFn::SetCharp, "param_set_charp"),
    (KernelFn::GetCharp, "param_get_charp"),
    (KernelFn::FreeCharp, "param_free_charp"),
    (KernelFn::SetBool, "param_set_bool"),
    (KernelFn::GetBool, "param_get_bool"),
    (KernelFn::SetBoolEnableOnly, "param_set_bool_enable_only"),
    (KernelFn::SetInvbool, "param_set_invbool"),
    (KernelFn::GetInvbool, "param_get_invbool"),
    (KernelFn::SetBint, "param_set_bint"),
    (KernelFn::ArraySet, "param_array_set"),
    (KernelFn::ArrayGet, "param_array_get"),
    (KernelFn::ArrayFree, "param_array_free"),
    (KernelFn::SetCopystring, "param_set_copystring"),
    (KernelFn::GetString, "param_get_string"),
];

impl KernelFn {
    /// The kernel symbol name (`param_set_int`), as defined in kernel/params.c.
    pub fn symbol(self) -> &'static str {
        KERNEL_FNS
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("", |(_, s)| s)
    }

    /// The function a kernel symbol names (kernel/params.c), if it is one of these.
    pub fn from_symbol(name: &str) -> Option<KernelFn> {
        KERNEL_FNS.iter().find(|(_, s)| *s == name).map(|(f, _)| *f)
    }
}

/// What a `set`/`get`/`free` pointer of a `struct kernel_param_ops` points to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OpFn {
    /// NULL.
    Null,
    /// A kernel/params.c function the simulator runs.
    Kernel(KernelFn),
    /// Code the simulator cannot run (a module's own function, another kernel function): its
    /// symbol name, or its address in hex. Calls go to a [`super::ModuleCode`].
    Opaque(String),
}

/// The standard `kernel_param_ops` objects exported by kernel/params.c.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StdOps {
    /// `param_ops_byte`.
    Byte,
    /// `param_ops_short`.
    Short,
    /// `param_ops_ushort`.
    Ushort,
    /// `param_ops_int`.
    Int,
    /// `param_ops_uint`.
    Uint,
    /// `param_ops_long`.
    Long,
    /// `param_ops_ulong`.
    Ulong,
    /// `param_ops_ullong`.
    Ullong,
    /// `param_ops_hexint`.
    Hexint,
    /// `param_ops_charp`.
    Charp,
    /// `param_ops_bool`.
    Bool,
    /// `param_ops_bool_enable_only`.
    BoolEnableOnly,
    /// `param_ops_invbool`.
    Invbool,
    /// `param_ops_bint`.
    Bint,
    /// `param_array_ops`.
    Array,
    /// `param_ops_string`.
    String,
}

const STD_OPS: [(StdOps, &str); 16] = [
    (StdOps::Byte, "param_ops_byte"),
    (StdOps::Short, "param_ops_short"),
    (StdOps::Ushort, "param_ops_ushort"),
    (StdOps::Int, "param_ops_int"),
    (StdOps::Uint, "param_ops_uint"),
    (StdOps::Long, "param_ops_long"),
    (StdOps::Ulong, "param_ops_ulong"),
    (StdOps::Ullong, "param_ops_ullong"),
    (StdOps::Hexint, "param_ops_hexint"),
    (StdOps::Charp, "param_ops_charp"),
    (StdOps::Bool, "param_ops_bool"),
    (StdOps::BoolEnableOnly, "param_ops_bool_enable_only"),
    (StdOps::Invbool, "param_ops_invbool"),
    (StdOps::Bint, "param_ops_bint"),
    (StdOps::Array, "param_array_ops"),
    (StdOps::String, "param_ops_string"),
];

impl StdOps {
    /// Every standard ops object, in kernel/params.c order.
    pub const ALL: [StdOps; 16] = [
        StdOps::Byte,
        StdOps::Short,
        StdOps::Ushort,
        StdOps::Int,
        StdOps::Uint,
        StdOps::Long,
        StdOps::Ulong,
        StdOps::Ullong,
        StdOps::Hexint,
        StdOps::Charp,
        StdOps::Bool,
        StdOps::BoolEnableOnly,
        StdOps::Invbool,
        StdOps::Bint,
        StdOps::Array,
        StdOps::String,
    ];

    /// The exported symbol (`param_ops_int`, `param_array_ops`) of kernel/params.c.
    pub fn symbol(self) -> &'static str {
        STD_OPS
            .iter()
            .find(|(o, _)| *o == self)
            .map_or("", |(_, s)| s)
    }

    /// The standard ops object a kernel symbol names (kernel/params.c), if any.
    pub fn from_symbol(name: &str) -> Option<StdOps> {
        STD_OPS.iter().find(|(_, s)| *s == name).map(|(o, _)| *o)
    }

    /// The `moduleparam.h` type name (`int`, `bool_enable_only`; `array`/`string` for the two
    /// containers), as in `param_ops_<type>`.
    pub fn type_name(self) -> &'static str {
        match self {
            StdOps::Array => "array",
            s => s.symbol().strip_prefix("param_ops_").unwrap_or(""),
        }
    }

    /// The object's `.flags` (kernel/params.c): `KERNEL_PARAM_OPS_FL_NOARG` for bool,
    /// bool_enable_only and bint only (not invbool).
    pub fn flags(self) -> u32 {
        match self {
            StdOps::Bool | StdOps::BoolEnableOnly | StdOps::Bint => KERNEL_PARAM_OPS_FL_NOARG,
            _ => 0,
        }
    }

    /// The object's `.set` (kernel/params.c).
    pub fn set(self) -> KernelFn {
        match self {
            StdOps::Byte => KernelFn::SetByte,
            StdOps::Short => KernelFn::SetShort,
            StdOps::Ushort => KernelFn::SetUshort,
            StdOps::Int => KernelFn::SetInt,
            StdOps::Uint => KernelFn::SetUint,
            StdOps::Long => KernelFn::SetLong,
            StdOps::Ulong => KernelFn::SetUlong,
            StdOps::Ullong => KernelFn::SetUllong,
            StdOps::Hexint => KernelFn::SetHexint,
            StdOps::Charp => KernelFn::SetCharp,
            StdOps::Bool => KernelFn::SetBool,
            StdOps::BoolEnableOnly => KernelFn::SetBoolEnableOnly,
            StdOps::Invbool => KernelFn::SetInvbool,
            StdOps::Bint => KernelFn::SetBint,
            StdOps::Array => KernelFn::ArraySet,
            StdOps::String => KernelFn::SetCopystring,
        }
    }

    /// The object's `.get` (kernel/params.c; bint uses `param_get_int`, bool_enable_only
    /// `param_get_bool`).
    pub fn get(self) -> KernelFn {
        match self {
            StdOps::Byte => KernelFn::GetByte,
            StdOps::Short => KernelFn::GetShort,
            StdOps::Ushort => KernelFn::GetUshort,
            StdOps::Int | StdOps::Bint => KernelFn::GetInt,
            StdOps::Uint => KernelFn::GetUint,
            StdOps::Long => KernelFn::GetLong,
            StdOps::Ulong => KernelFn::GetUlong,
            StdOps::Ullong => KernelFn::GetUllong,
            StdOps::Hexint => KernelFn::GetHexint,
            StdOps::Charp => KernelFn::GetCharp,
            StdOps::Bool | StdOps::BoolEnableOnly => KernelFn::GetBool,
            StdOps::Invbool => KernelFn::GetInvbool,
            StdOps::Array => KernelFn::ArrayGet,
            StdOps::String => KernelFn::GetString,
        }
    }

    /// The object's `.free` (kernel/params.c): charp and array only.
    pub fn free(self) -> Option<KernelFn> {
        match self {
            StdOps::Charp => Some(KernelFn::FreeCharp),
            StdOps::Array => Some(KernelFn::ArrayFree),
            _ => None,
        }
    }
}

/// A `struct kernel_param_ops` that is not one of [`StdOps`]: a module's own (`module_param_cb`,
/// `module_param_call`) or a kernel object the simulator does not model.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CustomOps {
    /// The ops object's symbol, or its address in hex when no symbol names it.
    pub symbol: String,
    /// `.flags` (`KERNEL_PARAM_OPS_FL_NOARG`).
    pub flags: u32,
    /// `.set`.
    pub set: OpFn,
    /// `.get`.
    pub get: OpFn,
    /// `.free`.
    pub free: OpFn,
}

/// What a `kernel_param.ops` points to (include/linux/moduleparam.h `struct kernel_param_ops`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OpsKind {
    /// One of the kernel's standard objects, by symbol.
    Std(StdOps),
    /// Anything else.
    Custom(CustomOps),
}

impl OpsKind {
    /// `ops->flags`.
    pub fn flags(&self) -> u32 {
        match self {
            OpsKind::Std(s) => s.flags(),
            OpsKind::Custom(c) => c.flags,
        }
    }

    /// `ops->set`.
    pub fn set_fn(&self) -> OpFn {
        match self {
            OpsKind::Std(s) => OpFn::Kernel(s.set()),
            OpsKind::Custom(c) => c.set.clone(),
        }
    }

    /// `ops->get`.
    pub fn get_fn(&self) -> OpFn {
        match self {
            OpsKind::Std(s) => OpFn::Kernel(s.get()),
            OpsKind::Custom(c) => c.get.clone(),
        }
    }

    /// `ops->free`.
    pub fn free_fn(&self) -> OpFn {
        match self {
            OpsKind::Std(s) => s.free().map_or(OpFn::Null, OpFn::Kernel),
            OpsKind::Custom(c) => c.free.clone(),
        }
    }

    /// The ops object's symbol (`param_ops_int`, or the custom object's).
    pub fn symbol(&self) -> &str {
        match self {
            OpsKind::Std(s) => s.symbol(),
            OpsKind::Custom(c) => &c.symbol,
        }
    }
}

/// One `struct kernel_param` (include/linux/moduleparam.h), with its name read and its ops
/// resolved.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KernelParam {
    /// `name`, the bytes of the C string it points to.
    pub name: Vec<u8>,
    /// `mod` (`THIS_MODULE`).
    pub mod_addr: u64,
    /// `ops`, resolved.
    pub ops: OpsKind,
    /// The address `ops` holds.
    pub ops_addr: u64,
    /// `perm`: sysfs mode; 0 means no sysfs file.
    pub perm: u16,
    /// `level`: -1 for every `module_param*`.
    pub level: i8,
    /// `flags`: `KERNEL_PARAM_FL_UNSAFE`, `KERNEL_PARAM_FL_HWPARAM`.
    pub flags: u8,
    /// `arg` / `str` / `arr`: the variable, or the `kparam_string` / `kparam_array`.
    pub arg: u64,
}

impl KernelParam {
    /// The name as text (invalid UTF-8 bytes become U+00XX).
    pub fn name_str(&self) -> String {
        super::decode_bytes(&self.name)
    }
}

/// `struct kparam_string` (include/linux/moduleparam.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KparamString {
    /// `maxlen`: the buffer size, NUL included.
    pub maxlen: u32,
    /// `string`: the buffer.
    pub string: u64,
}

impl KparamString {
    /// Read the descriptor at `addr` (a `kp->str`).
    pub fn read(mem: &Memory, addr: u64) -> Result<Self, Errno> {
        Ok(KparamString {
            maxlen: mem.read_u32(addr)?,
            string: mem.read_u64(addr.wrapping_add(8))?,
        })
    }
}

/// `struct kparam_array` (include/linux/moduleparam.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KparamArray {
    /// `max`: `ARRAY_SIZE(array)`.
    pub max: u32,
    /// `elemsize`: `sizeof(array[0])`.
    pub elemsize: u32,
    /// `num`: the element count variable, 0 for NULL.
    pub num: u64,
    /// `ops`: the element ops.
    pub ops: u64,
    /// `elem`: the array.
    pub elem: u64,
}

impl KparamArray {
    /// Read the descriptor at `addr` (a `kp->arr`).
    pub fn read(mem: &Memory, addr: u64) -> Result<Self, Errno> {
        Ok(KparamArray {
            max: mem.read_u32(addr)?,
            elemsize: mem.read_u32(addr.wrapping_add(4))?,
            num: mem.read_u64(addr.wrapping_add(8))?,
            ops: mem.read_u64(addr.wrapping_add(16))?,
            elem: mem.read_u64(addr.wrapping_add(24))?,
        })
    }
}

fn hex(addr: u64) -> String {
    format!("{addr:#x}")
}

/// Resolve a function pointer of an ops table: a kernel/params.c function by symbol, NULL, or
/// opaque code.
fn resolve_fn(addr: u64, symbol_at: &dyn Fn(u64) -> Option<String>) -> OpFn {
    if addr == 0 {
        return OpFn::Null;
    }
    match symbol_at(addr) {
        Some(name) => match KernelFn::from_symbol(&name) {
            Some(f) => OpFn::Kernel(f),
            None => OpFn::Opaque(name),
        },
        None => OpFn::Opaque(hex(addr)),
    }
}

/// Resolve an ops pointer: a standard object when `symbol_at` names one; otherwise the
/// `struct kernel_param_ops` read from `mem` (a module's own); otherwise (memory the
/// simulator does not hold, e.g. another vmlinux object) opaque, with flags 0.
pub fn resolve_ops(mem: &Memory, addr: u64, symbol_at: &dyn Fn(u64) -> Option<String>) -> OpsKind {
    let name = symbol_at(addr);
    if let Some(s) = name.as_deref().and_then(StdOps::from_symbol) {
        return OpsKind::Std(s);
    }
    let symbol = name.unwrap_or_else(|| hex(addr));
    let read = || -> Result<CustomOps, Errno> {
        Ok(CustomOps {
            symbol: symbol.clone(),
            flags: mem.read_u32(addr)?,
            set: resolve_fn(mem.read_u64(addr.wrapping_add(8))?, symbol_at),
            get: resolve_fn(mem.read_u64(addr.wrapping_add(16))?, symbol_at),
            free: resolve_fn(mem.read_u64(addr.wrapping_add(24))?, symbol_at),
        })
    };
    match read() {
        Ok(c) => OpsKind::Custom(c),
        Err(_) => OpsKind::Custom(CustomOps {
            symbol: symbol.clone(),
            flags: 0,
            set: OpFn::Opaque(format!("{symbol}.set")),
            get: OpFn::Opaque(format!("{symbol}.get")),
            free: OpFn::Null,
        }),
    }
}

/// Read one `struct kernel_param` at `addr`.
pub fn read_kernel_param(
    mem: &Memory,
    addr: u64,
    symbol_at: &dyn Fn(u64) -> Option<String>,
) -> Result<KernelParam, Errno> {
    let name_ptr = mem.read_u64(addr)?;
    let mod_addr = mem.read_u64(addr.wrapping_add(8))?;
    let ops_addr = mem.read_u64(addr.wrapping_add(16))?;
    let perm = mem.read_u16(addr.wrapping_add(24))?;
    let lf = mem.read(addr.wrapping_add(26), 2)?;
    let (level, flags) = match lf {
        [l, f] => (i8::from_le_bytes([*l]), *f),
        _ => return Err(Errno::EFAULT),
    };
    let arg = mem.read_u64(addr.wrapping_add(32))?;
    let name = mem.read_cstr(name_ptr, usize::MAX)?.to_vec();
    Ok(KernelParam {
        name,
        mod_addr,
        ops: resolve_ops(mem, ops_addr, symbol_at),
        ops_addr,
        perm,
        level,
        flags,
        arg,
    })
}

/// The module's parameter table as `find_module_sections` finds it (kernel/module/main.c
/// `section_objs(info, "__param", sizeof(struct kernel_param), &mod->num_kp)`): `size / 40`
/// entries from the relocated `__param` section at `addr`, names read through their pointers.
/// `EFAULT` if an entry or a name lies outside simulated memory (the kernel would oops).
pub fn read_param_section(
    mem: &Memory,
    addr: u64,
    size: u64,
    symbol_at: &dyn Fn(u64) -> Option<String>,
) -> Result<Vec<KernelParam>, Errno> {
    let n = size / KERNEL_PARAM_SIZE;
    let mut out = Vec::new();
    for i in 0..n {
        let a = addr
            .checked_add(i * KERNEL_PARAM_SIZE)
            .ok_or(Errno::EFAULT)?;
        out.push(read_kernel_param(mem, a, symbol_at)?);
    }
    Ok(out)
}
