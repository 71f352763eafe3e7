//! The standard `kernel_param_ops` functions of kernel/params.c: `set` writes the value into
//! simulated memory with the C type's width, `get` produces the sysfs text, `free` releases
//! `charp` copies. Version differences are selected by [`ParamEnv::version`].

use super::kstrtox::{self, cstr};
use super::table::{KernelFn, KparamArray, KparamString, OpFn, resolve_ops};
use super::{Ctx, ParamEnv, decode_bytes};
use crate::errno::Errno;
use crate::memory::{Memory, RegionKind};
use crate::profile::KernelVersion;

/// The `maxlen` of `param_set_charp`: longer values are `ENOSPC`.
pub const CHARP_MAXLEN: usize = 1024;

/// `sizeof(struct kmalloced_param)` before `val[]`: the `list_head`.
const KMALLOCED_PARAM_HEADER: u64 = 16;

/// The label of the heap regions `kmalloc_parameter` allocates.
pub const KMALLOCED_PARAM_LABEL: &str = "kmalloced_param";

/// Where this module places its heap objects in the simulated address space (the addresses are
/// never observable; any free range above this is used).
pub const PARAM_HEAP_BASE: u64 = 0xffff_8880_4000_0000;
const PARAM_HEAP_END: u64 = 0xffff_8890_0000_0000;

/// The `struct kernel_param` a `set`/`get` function sees: the fields kernel/params.c reads
/// (`param_array` builds one with only these set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kp<'a> {
    /// `kp->name`.
    pub name: &'a [u8],
    /// `kp->arg` (or `kp->str`, `kp->arr`).
    pub arg: u64,
    /// `kp->level`.
    pub level: i8,
}

fn name_of(kp: &Kp<'_>) -> String {
    decode_bytes(kp.name)
}

/// Allocate `size` zeroed heap bytes anywhere free at or above [`PARAM_HEAP_BASE`] (`kmalloc`).
fn kmalloc(mem: &mut Memory, size: u64, label: &str) -> Result<u64, Errno> {
    let mut base = PARAM_HEAP_BASE;
    for r in mem.regions() {
        if r.base >= PARAM_HEAP_BASE && r.base < PARAM_HEAP_END {
            base = base.max(r.end());
        }
    }
    let base = base.checked_add(63).ok_or(Errno::ENOMEM)? & !63;
    if base.saturating_add(size) > PARAM_HEAP_END {
        return Err(Errno::ENOMEM);
    }
    mem.alloc(base, size.max(1), RegionKind::Heap, label)?;
    Ok(base)
}

/// `kmalloc_parameter` (kernel/params.c): a `kmalloced_param` of `size` value bytes; returns
/// the address of `val[]`, or `ENOMEM`.
pub fn kmalloc_parameter(mem: &mut Memory, size: u64) -> Result<u64, Errno> {
    let total = KMALLOCED_PARAM_HEADER
        .checked_add(size)
        .ok_or(Errno::ENOMEM)?;
    let base = kmalloc(mem, total, KMALLOCED_PARAM_LABEL)?;
    Ok(base + KMALLOCED_PARAM_HEADER)
}

/// `maybe_kfree_parameter` (kernel/params.c): frees `param` only if `kmalloc_parameter`
/// returned it.
pub fn maybe_kfree_parameter(mem: &mut Memory, param: u64) {
    let base = param.wrapping_sub(KMALLOCED_PARAM_HEADER);
    let ours = mem.region(base).is_some_and(|r| {
        r.kind == RegionKind::Heap && r.label == KMALLOCED_PARAM_LABEL && param >= base
    });
    if ours {
        mem.free(base);
    }
}

fn write_int(mem: &mut Memory, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    mem.write(addr, bytes)
}

/// `param_set_bool`: `kstrtobool(val ?: "1")`.
fn parse_bool(val: Option<&[u8]>) -> Result<bool, Errno> {
    kstrtox::kstrtobool(Some(val.unwrap_or(b"1")))
}

/// Run a kernel/params.c `set` function `f` with value `val` (the C string at the start of the
/// slice, which runs on to the end of the argument buffer; `param_array` edits it in place).
pub fn call_kernel_set(
    f: KernelFn,
    val: Option<&mut [u8]>,
    kp: &Kp<'_>,
    ctx: &mut Ctx<'_>,
) -> Result<(), Errno> {
    // A numeric set given NULL would dereference it; the kernel oopses. Only a custom ops
    // table with KERNEL_PARAM_OPS_FL_NOARG can get here with NULL: refuse with EINVAL.
    let num = |v: &Option<&mut [u8]>| -> Result<Vec<u8>, Errno> {
        match v {
            Some(s) => Ok(cstr(s).to_vec()),
            None => Err(Errno::EINVAL),
        }
    };
    match f {
        KernelFn::SetByte => {
            let v = kstrtox::kstrtou8(&num(&val)?, 0)?;
            write_int(ctx.mem, kp.arg, &v.to_le_bytes())
        }
        KernelFn::SetShort => {
            let v = kstrtox::kstrtos16(&num(&val)?, 0)?;
            write_int(ctx.mem, kp.arg, &v.to_le_bytes())
        }
        KernelFn::SetUshort => {
            let v = kstrtox::kstrtou16(&num(&val)?, 0)?;
            write_int(ctx.mem, kp.arg, &v.to_le_bytes())
        }
        KernelFn::SetInt => {
            let v = kstrtox::kstrtoint(&num(&val)?, 0)?;
            write_int(ctx.mem, kp.arg, &v.to_le_bytes())
        }
        KernelFn::SetUint | KernelFn::SetHexint => {
            let v = kstrtox::kstrtouint(&num(&val)?, 0)?;
            write_int(ctx.mem, kp.arg, &v.to_le_bytes())
        }
        KernelFn::SetLong => {
            let v = kstrtox::kstrtol(&num(&val)?, 0)?;
            write_int(ctx.mem, kp.arg, &v.to_le_bytes())
        }
        KernelFn::SetUlong => {
            let v = kstrtox::kstrtoul(&num(&val)?, 0)?;
            write_int(ctx.mem, kp.arg, &v.to_le_bytes())
        }
        KernelFn::SetUllong => {
            let v = kstrtox::kstrtoull(&num(&val)?, 0)?;
            write_int(ctx.mem, kp.arg, &v.to_le_bytes())
        }
        KernelFn::SetCharp => {
            let v = num(&val)?;
            param_set_charp(&v, kp, ctx)
        }
        KernelFn::SetBool => {
            let v = parse_bool(val.as_deref())?;
            write_int(ctx.mem, kp.arg, &[u8::from(v)])
        }
        KernelFn::SetBoolEnableOnly => {
            // param_set_bool_enable_only: parse into a temporary first.
            let orig = read_bool(ctx.mem, kp.arg)?;
            let new = parse_bool(val.as_deref())?;
            if !new && orig {
                return Err(Errno::EROFS);
            }
            if new {
                write_int(ctx.mem, kp.arg, &[1])?;
            }
            Ok(())
        }
        KernelFn::SetInvbool => {
            let v = parse_bool(val.as_deref())?;
            write_int(ctx.mem, kp.arg, &[u8::from(!v)])
        }
        KernelFn::SetBint => {
            let v = parse_bool(val.as_deref())?;
            write_int(ctx.mem, kp.arg, &i32::from(v).to_le_bytes())
        }
        KernelFn::ArraySet => match val {
            Some(v) => param_array_set(v, kp, ctx),
            None => Err(Errno::EINVAL),
        },
        KernelFn::SetCopystring => {
            let v = num(&val)?;
            param_set_copystring(&v, kp, ctx)
        }
        // A get or free function used as set: the kernel would call it with the wrong
        // arguments. Treat it as a set that does nothing.
        _ => Ok(()),
    }
}

/// `param_set_charp` (kernel/params.c). 6.1 allocates the copy before freeing the old value
/// (on `ENOMEM` the old value stays); 6.12 frees first (on `ENOMEM` the pointer is NULL).
fn param_set_charp(val: &[u8], kp: &Kp<'_>, ctx: &mut Ctx<'_>) -> Result<(), Errno> {
    let len = val.len().min(CHARP_MAXLEN + 1);
    if len == CHARP_MAXLEN + 1 {
        ctx.log
            .err(format!("{}: string parameter too long", name_of(kp)));
        return Err(Errno::ENOSPC);
    }
    let old = ctx.mem.read_u64(kp.arg)?;
    match ctx.env.version {
        KernelVersion::V6_1 => {
            let tmp = kmalloc_parameter(ctx.mem, len as u64 + 1)?;
            ctx.mem.write(tmp, val)?;
            maybe_kfree_parameter(ctx.mem, old);
            ctx.mem.write_u64(kp.arg, tmp)
        }
        KernelVersion::V6_12 => {
            maybe_kfree_parameter(ctx.mem, old);
            match kmalloc_parameter(ctx.mem, len as u64 + 1) {
                Ok(tmp) => {
                    ctx.mem.write_u64(kp.arg, tmp)?;
                    ctx.mem.write(tmp, val)
                }
                Err(e) => {
                    ctx.mem.write_u64(kp.arg, 0)?;
                    Err(e)
                }
            }
        }
    }
}

/// `param_set_copystring` (kernel/params.c): `strcpy` into the `kparam_string` buffer.
fn param_set_copystring(val: &[u8], kp: &Kp<'_>, ctx: &mut Ctx<'_>) -> Result<(), Errno> {
    let kps = KparamString::read(ctx.mem, kp.arg)?;
    let maxlen = kps.maxlen as usize;
    if val.len().min(maxlen) == maxlen {
        ctx.log.err(format!(
            "{}: string doesn't fit in {} chars.",
            name_of(kp),
            kps.maxlen.wrapping_sub(1)
        ));
        return Err(Errno::ENOSPC);
    }
    let mut bytes = val.to_vec();
    bytes.push(0);
    ctx.mem.write(kps.string, &bytes)
}

/// `param_array_set` → `param_array` (kernel/params.c): comma-separated elements, each set with
/// the element ops' `set` (commas are overwritten with NULs in place), at most `max`; the
/// count goes to `*num` as elements succeed.
fn param_array_set(val: &mut [u8], kp: &Kp<'_>, ctx: &mut Ctx<'_>) -> Result<(), Errno> {
    let arr = KparamArray::read(ctx.mem, kp.arg)?;
    let elem_ops = resolve_ops(ctx.mem, arr.ops, ctx.symbol_at);
    let set = elem_ops.set_fn();
    if set == OpFn::Kernel(KernelFn::ArraySet) {
        // An array of arrays: the kernel would read the element as a kparam_array and could
        // recurse without end. No module does this; refuse it.
        return Err(Errno::EINVAL);
    }
    let min: u32 = 1;
    let max = arr.max;
    // `elemsize` is passed as an int and added to a void pointer.
    let elemsize = i64::from(arr.elemsize as i32);
    let mut num: u32 = 0;
    let write_num = |mem: &mut Memory, n: u32| -> Result<(), Errno> {
        if arr.num != 0 {
            mem.write_u32(arr.num, n)
        } else {
            Ok(())
        }
    };
    write_num(ctx.mem, 0)?;
    let mut elem = arr.elem;
    let mut pos = 0usize;
    loop {
        if num == max {
            ctx.log.err(format!(
                "{}: can only take {} arguments",
                name_of(kp),
                max as i32
            ));
            return Err(Errno::EINVAL);
        }
        let rest = val.get(pos..).unwrap_or(&[]);
        let s = cstr(rest);
        let len = s.iter().position(|&b| b == b',').unwrap_or(s.len());
        let save = val.get(pos + len).copied().unwrap_or(0);
        if let Some(b) = val.get_mut(pos + len) {
            *b = 0;
        }
        let ekp = Kp {
            name: kp.name,
            arg: elem,
            level: kp.level,
        };
        let elem_val = val.get_mut(pos..).unwrap_or_default();
        call_set(&set, Some(elem_val), &ekp, ctx)?;
        elem = elem.wrapping_add_signed(elemsize);
        pos += len + 1;
        num += 1;
        write_num(ctx.mem, num)?;
        if save != b',' {
            break;
        }
    }
    if num < min {
        ctx.log.err(format!(
            "{}: needs at least {} arguments",
            name_of(kp),
            min as i32
        ));
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Call a `set` pointer: a kernel/params.c function, or opaque code through
/// [`super::ModuleCode`]. NULL is `EINVAL` (the kernel would jump to address 0).
pub fn call_set(
    f: &OpFn,
    val: Option<&mut [u8]>,
    kp: &Kp<'_>,
    ctx: &mut Ctx<'_>,
) -> Result<(), Errno> {
    match f {
        OpFn::Null => Err(Errno::EINVAL),
        OpFn::Kernel(k) => call_kernel_set(*k, val, kp, ctx),
        OpFn::Opaque(name) => {
            let v = val.map(|v| cstr(v).to_vec());
            ctx.code
                .set(name, v.as_deref(), kp, &mut *ctx.mem, &mut *ctx.log)
        }
    }
}

fn read_bool(mem: &Memory, addr: u64) -> Result<bool, Errno> {
    Ok(mem.read(addr, 1)?.first().copied().unwrap_or(0) != 0)
}

fn read_n<const N: usize>(mem: &Memory, addr: u64) -> Result<[u8; N], Errno> {
    let mut a = [0u8; N];
    a.copy_from_slice(mem.read(addr, N)?);
    Ok(a)
}

/// `scnprintf(buffer, PAGE_SIZE, ...)`: at most `PAGE_SIZE - 1` bytes.
fn scnprintf(env: &ParamEnv, mut out: Vec<u8>) -> Vec<u8> {
    out.truncate(env.page_size.saturating_sub(1));
    out
}

/// `%s` of a `char *` (lib/vsprintf.c `string` / `check_pointer_msg`): `(null)` for NULL,
/// `(efault)` below `PAGE_SIZE` or for an error pointer, else the C string in memory.
pub fn format_cstr_ptr(mem: &Memory, env: &ParamEnv, ptr: u64) -> Result<Vec<u8>, Errno> {
    if ptr == 0 {
        return Ok(b"(null)".to_vec());
    }
    if ptr < env.page_size as u64 || ptr >= (-4095i64) as u64 {
        return Ok(b"(efault)".to_vec());
    }
    Ok(mem.read_cstr(ptr, usize::MAX)?.to_vec())
}

fn line(s: impl std::fmt::Display) -> Vec<u8> {
    format!("{s}\n").into_bytes()
}

/// Run a kernel/params.c `get` function: the text a sysfs read returns.
pub fn call_kernel_get(f: KernelFn, kp: &Kp<'_>, ctx: &mut Ctx<'_>) -> Result<Vec<u8>, Errno> {
    let mem = &*ctx.mem;
    let env = ctx.env;
    let out = match f {
        KernelFn::GetByte => line(u8::from_le_bytes(read_n(mem, kp.arg)?)),
        KernelFn::GetShort => line(i16::from_le_bytes(read_n(mem, kp.arg)?)),
        KernelFn::GetUshort => line(u16::from_le_bytes(read_n(mem, kp.arg)?)),
        KernelFn::GetInt => line(i32::from_le_bytes(read_n(mem, kp.arg)?)),
        KernelFn::GetUint => line(u32::from_le_bytes(read_n(mem, kp.arg)?)),
        KernelFn::GetLong => line(i64::from_le_bytes(read_n(mem, kp.arg)?)),
        KernelFn::GetUlong | KernelFn::GetUllong => line(u64::from_le_bytes(read_n(mem, kp.arg)?)),
        // "%#08x": the kernel always prints the 0x prefix (zero too) and pads the digits to 6.
        KernelFn::GetHexint => {
            let v = u32::from_le_bytes(read_n(mem, kp.arg)?);
            format!("0x{v:06x}\n").into_bytes()
        }
        KernelFn::GetCharp => {
            let p = mem.read_u64(kp.arg)?;
            let mut s = format_cstr_ptr(mem, env, p)?;
            s.push(b'\n');
            s
        }
        KernelFn::GetBool => {
            let v = read_bool(mem, kp.arg)?;
            return Ok(if v { b"Y\n" } else { b"N\n" }.to_vec());
        }
        KernelFn::GetInvbool => {
            let v = read_bool(mem, kp.arg)?;
            return Ok(if v { b"N\n" } else { b"Y\n" }.to_vec());
        }
        KernelFn::GetString => {
            let kps = KparamString::read(mem, kp.arg)?;
            let mut s = format_cstr_ptr(mem, env, kps.string)?;
            s.push(b'\n');
            s
        }
        KernelFn::ArrayGet => return param_array_get(kp, ctx),
        // A set or free function used as get: nothing sensible to show.
        _ => Vec::new(),
    };
    Ok(scnprintf(env, out))
}

/// `arr->elem + arr->elemsize * i`: the product is computed in 32 bits (unsigned int).
fn elem_addr(arr: &KparamArray, i: u32) -> u64 {
    arr.elem
        .wrapping_add(u64::from(arr.elemsize.wrapping_mul(i)))
}

/// `param_array_get` (kernel/params.c): the element gets joined, each element's final `\n`
/// replaced by `,` before the next; `*num` elements (all `max` without `num`).
fn param_array_get(kp: &Kp<'_>, ctx: &mut Ctx<'_>) -> Result<Vec<u8>, Errno> {
    let arr = KparamArray::read(ctx.mem, kp.arg)?;
    let get = resolve_ops(ctx.mem, arr.ops, ctx.symbol_at).get_fn();
    if get == OpFn::Kernel(KernelFn::ArrayGet) {
        // An array of arrays (see param_array_set).
        return Err(Errno::EINVAL);
    }
    let n = if arr.num != 0 {
        ctx.mem.read_u32(arr.num)?
    } else {
        arr.max
    };
    let mut buf: Vec<u8> = Vec::new();
    for i in 0..n {
        if buf.len() >= ctx.env.page_size {
            // The kernel would go on writing past its one-page buffer; sysfs keeps
            // PAGE_SIZE - 1 bytes of it anyway.
            break;
        }
        if i > 0
            && let Some(last) = buf.last_mut()
        {
            *last = b',';
        }
        let ekp = Kp {
            name: kp.name,
            arg: elem_addr(&arr, i),
            level: kp.level,
        };
        let s = call_get(&get, &ekp, ctx)?;
        if s.is_empty() && matches!(get, OpFn::Opaque(_)) {
            // Module code the simulator does not run showed nothing for this element; what it
            // shows for the rest is as unknown, and walking a count read from module memory
            // (up to 2^32) to learn nothing more would only burn time. Every kernel get
            // prints at least a newline, so the PAGE_SIZE stop above bounds those.
            break;
        }
        buf.extend_from_slice(&s);
    }
    Ok(buf)
}

/// Call a `get` pointer: a kernel/params.c function, or opaque code through
/// [`super::ModuleCode`]. NULL is `EPERM` (as `param_attr_show` answers).
pub fn call_get(f: &OpFn, kp: &Kp<'_>, ctx: &mut Ctx<'_>) -> Result<Vec<u8>, Errno> {
    match f {
        OpFn::Null => Err(Errno::EPERM),
        OpFn::Kernel(k) => call_kernel_get(*k, kp, ctx),
        OpFn::Opaque(name) => ctx.code.get(name, kp, &*ctx.mem),
    }
}

/// Call a `free` pointer (`param_free_charp`, `param_array_free`, or opaque code).
pub fn call_free(f: &OpFn, arg: u64, ctx: &mut Ctx<'_>) {
    match f {
        OpFn::Null => {}
        OpFn::Kernel(KernelFn::FreeCharp) => {
            if let Ok(p) = ctx.mem.read_u64(arg) {
                maybe_kfree_parameter(ctx.mem, p);
            }
        }
        OpFn::Kernel(KernelFn::ArrayFree) => {
            let Ok(arr) = KparamArray::read(ctx.mem, arg) else {
                return;
            };
            let free = resolve_ops(ctx.mem, arr.ops, ctx.symbol_at).free_fn();
            if free == OpFn::Null || free == OpFn::Kernel(KernelFn::ArrayFree) {
                return;
            }
            let n = if arr.num != 0 {
                ctx.mem.read_u32(arr.num).unwrap_or(0)
            } else {
                arr.max
            };
            for i in 0..n {
                let a = elem_addr(&arr, i);
                // Stop where the kernel would fault (or, with elemsize 0, repeat itself).
                if (i > 0 && arr.elemsize == 0) || ctx.mem.read(a, 1).is_err() {
                    break;
                }
                call_free(&free, a, ctx);
            }
        }
        OpFn::Kernel(_) => {}
        OpFn::Opaque(name) => ctx.code.free(name, arg, &mut *ctx.mem),
    }
}
