//! `parse_args` and `parse_one` (kernel/params.c): tokens applied left to right, first matching
//! name wins, errors printed and parsing continued, the last error returned, `--` stops.

use super::cmdline::{Arg, ArgBuf, next_arg, parameq, skip_spaces};
use super::ops::{Kp, call_set};
use super::table::KernelParam;
use super::table::{KERNEL_PARAM_FL_HWPARAM, KERNEL_PARAM_FL_UNSAFE, KERNEL_PARAM_OPS_FL_NOARG};
use super::{Ctx, decode_bytes};
use crate::errno::Errno;

/// The `handle_unknown` callback of `parse_args` (include/linux/moduleparam.h
/// `parse_unknown_fn`): called with the argument buffer, the token, and `doing`.
pub type UnknownFn<'f> = dyn FnMut(&mut ArgBuf, Arg, &[u8], &mut Ctx<'_>) -> Result<(), Errno> + 'f;

/// `param_check_unsafe` (kernel/params.c): `false` (→ `EPERM`) for a hardware parameter under
/// lockdown, after the lockdown LSM's notice; an unsafe parameter prints a notice and taints
/// the kernel (`TAINT_USER`, recorded in [`Ctx::taint_user`]).
pub fn param_check_unsafe(kp: &KernelParam, ctx: &mut Ctx<'_>) -> bool {
    if kp.flags & KERNEL_PARAM_FL_HWPARAM != 0 && ctx.env.params_locked_down {
        // security/lockdown/lockdown.c lockdown_is_locked_down (pr_notice_ratelimited).
        ctx.log.notice(format!(
            "Lockdown: {}: unsafe module parameters is restricted; see man kernel_lockdown.7",
            ctx.env.comm
        ));
        return false;
    }
    if kp.flags & KERNEL_PARAM_FL_UNSAFE != 0 {
        ctx.log.notice(format!(
            "Setting dangerous option {} - tainting kernel",
            kp.name_str()
        ));
        ctx.taint_user = true;
    }
    true
}

/// `parse_one` (kernel/params.c): find the first parameter whose name matches (`parameq`),
/// apply the level window and the NOARG rule, then `ops->set`; an unmatched name goes to
/// `handle_unknown` (`ENOENT` without one).
#[allow(clippy::too_many_arguments)]
pub fn parse_one(
    buf: &mut ArgBuf,
    arg: Arg,
    doing: &[u8],
    params: &[KernelParam],
    min_level: i16,
    max_level: i16,
    unknown: Option<&mut UnknownFn<'_>>,
    ctx: &mut Ctx<'_>,
) -> Result<(), Errno> {
    let name = buf.cstr(arg.param).to_vec();
    if let Some(kp) = params.iter().find(|kp| parameq(&name, &kp.name)) {
        if i16::from(kp.level) < min_level || i16::from(kp.level) > max_level {
            return Ok(());
        }
        // No one handled NULL, so do it here.
        if arg.val.is_none() && kp.ops.flags() & KERNEL_PARAM_OPS_FL_NOARG == 0 {
            return Err(Errno::EINVAL);
        }
        if !param_check_unsafe(kp, ctx) {
            return Err(Errno::EPERM);
        }
        let set = kp.ops.set_fn();
        let k = Kp {
            name: &kp.name,
            arg: kp.arg,
            level: kp.level,
        };
        let val = arg.val.map(|v| buf.tail_mut(v));
        return call_set(&set, val, &k, ctx);
    }
    match unknown {
        Some(f) => f(buf, arg, doing, ctx),
        None => Err(Errno::ENOENT),
    }
}

/// `parse_args` (kernel/params.c) over `buf` (edited in place, like `mod->args`): `Ok(None)`
/// when all went well (NULL), `Ok(Some(pos))` when `--` stopped it (the rest starts at `pos`),
/// `Err` with the **last** failing errno otherwise. Every failure is printed.
#[allow(clippy::too_many_arguments)]
pub fn parse_args(
    doing: &[u8],
    buf: &mut ArgBuf,
    params: &[KernelParam],
    min_level: i16,
    max_level: i16,
    mut unknown: Option<&mut UnknownFn<'_>>,
    ctx: &mut Ctx<'_>,
) -> Result<Option<usize>, Errno> {
    let mut err: Option<Errno> = None;
    let mut pos = skip_spaces(buf, 0);
    while buf.at(pos) != 0 {
        let (arg, next) = next_arg(buf, pos);
        pos = next;
        // Stop at --
        if arg.val.is_none() && buf.cstr(arg.param) == b"--" {
            return match err {
                Some(e) => Err(e),
                None => Ok(Some(pos)),
            };
        }
        let ret = parse_one(
            buf,
            arg,
            doing,
            params,
            min_level,
            max_level,
            unknown.as_deref_mut(),
            ctx,
        );
        let Err(e) = ret else { continue };
        let param = buf.cstr(arg.param).to_vec();
        let val = arg.val.map(|v| buf.cstr(v).to_vec()).unwrap_or_default();
        let msg = match e {
            Errno::ENOENT => [doing, b": Unknown parameter `", &param, b"'"].concat(),
            Errno::ENOSPC => [
                doing,
                b": `",
                &val,
                b"' too large for parameter `",
                &param,
                b"'",
            ]
            .concat(),
            _ => [
                doing,
                b": `",
                &val,
                b"' invalid for parameter `",
                &param,
                b"'",
            ]
            .concat(),
        };
        ctx.log.err(decode_bytes(&msg));
        err = Some(e);
    }
    match err {
        Some(e) => Err(e),
        None => Ok(None),
    }
}
