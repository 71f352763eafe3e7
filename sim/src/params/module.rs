//! The module side: `unknown_module_param_cb` and the `parse_args` step of `load_module`
//! (kernel/module/main.c), `destroy_params`, and the sysfs parameter files
//! (`param_attr_show` / `param_attr_store` in kernel/params.c).

use super::cmdline::{Arg, ArgBuf};
use super::dyndbg::ddebug_dyndbg_module_param_cb;
use super::kstrtox::kstrtobool;
use super::ops::{Kp, call_free, call_get, call_set};
use super::parse::{UnknownFn, param_check_unsafe, parse_args};
use super::table::{KernelParam, OpFn};
use super::{Ctx, ParamEnv, decode_bytes};
use crate::errno::Errno;
use crate::log::KernelLog;

/// `unknown_module_param_cb` (kernel/module/main.c): `async_probe[=bool]` sets
/// `async_probe_requested` (true when the value does not parse), `[<mod>.]dyndbg` goes to
/// dynamic debug, anything else is warned about and ignored. Always returns 0.
pub fn unknown_module_param_cb(
    buf: &mut ArgBuf,
    arg: Arg,
    modname: &[u8],
    async_probe_requested: &mut bool,
    env: &ParamEnv,
    log: &mut KernelLog,
) -> Result<(), Errno> {
    if buf.cstr(arg.param) == b"async_probe" {
        let val = arg.val.map(|v| buf.cstr(v).to_vec());
        match kstrtobool(val.as_deref()) {
            Ok(v) => *async_probe_requested = v,
            Err(_) => *async_probe_requested = true,
        }
        return Ok(());
    }
    // Check for magic 'dyndbg' arg
    let ret = ddebug_dyndbg_module_param_cb(buf, arg.param, arg.val, modname, env, log);
    if ret.is_err() {
        let msg = [
            modname,
            b": unknown parameter '",
            buf.cstr(arg.param),
            b"' ignored",
        ]
        .concat();
        log.warn(decode_bytes(&msg));
    }
    Ok(())
}

/// What the parameter step of `load_module` leaves behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleArgsOutcome {
    /// `mod->args` after parsing (edited in place; kept until the module is freed).
    pub args: ArgBuf,
    /// `Err` fails the load (`goto coming_cleanup`), with this errno.
    pub result: Result<(), Errno>,
    /// `mod->async_probe_requested`.
    pub async_probe_requested: bool,
}

/// The parameter step of `load_module` (kernel/module/main.c):
/// `mod->async_probe_requested = async_probe;` then `parse_args(mod->name, mod->args, mod->kp,
/// mod->num_kp, -32768, 32767, mod, unknown_module_param_cb)`, and for a `--` the warning
/// ``"%s: parameters '%s' after `--' ignored"``.
pub fn load_module_parse_args(
    modname: &[u8],
    mut args: ArgBuf,
    params: &[KernelParam],
    async_probe: bool,
    ctx: &mut Ctx<'_>,
) -> ModuleArgsOutcome {
    let mut async_probe_requested = async_probe;
    let result = {
        let mut cb = |buf: &mut ArgBuf, arg: Arg, doing: &[u8], c: &mut Ctx<'_>| {
            unknown_module_param_cb(buf, arg, doing, &mut async_probe_requested, c.env, c.log)
        };
        let cb: &mut UnknownFn<'_> = &mut cb;
        parse_args(modname, &mut args, params, -32768, 32767, Some(cb), ctx)
    };
    let result = match result {
        Err(e) => Err(e),
        Ok(None) => Ok(()),
        Ok(Some(rest)) => {
            let msg = [
                modname,
                b": parameters '",
                args.cstr(rest),
                b"' after `--' ignored",
            ]
            .concat();
            ctx.log.warn(decode_bytes(&msg));
            Ok(())
        }
    };
    ModuleArgsOutcome {
        args,
        result,
        async_probe_requested,
    }
}

/// `destroy_params` (kernel/params.c): `ops->free(arg)` for every parameter that has one
/// (frees `charp` copies, also inside arrays). Called when a load fails after parsing and when
/// the module is freed.
pub fn destroy_params(params: &[KernelParam], ctx: &mut Ctx<'_>) {
    for kp in params {
        let f = kp.ops.free_fn();
        if f != OpFn::Null {
            call_free(&f, kp.arg, ctx);
        }
    }
}

/// Whether `module_param_sysfs_setup` (kernel/params.c) makes a file for `kp`: perm ≠ 0.
pub fn has_sysfs_file(kp: &KernelParam) -> bool {
    kp.perm != 0
}

/// Reading `/sys/module/<mod>/parameters/<name>`: `param_attr_show` (kernel/params.c; `EPERM`
/// without `get`), then `sysfs_kf_seq_show` (fs/sysfs/file.c) cuts a count ≥ PAGE_SIZE to
/// PAGE_SIZE - 1.
pub fn param_attr_show(kp: &KernelParam, ctx: &mut Ctx<'_>) -> Result<Vec<u8>, Errno> {
    let get = kp.ops.get_fn();
    if get == OpFn::Null {
        return Err(Errno::EPERM);
    }
    let k = Kp {
        name: &kp.name,
        arg: kp.arg,
        level: kp.level,
    };
    let mut out = call_get(&get, &k, ctx)?;
    if out.len() >= ctx.env.page_size {
        out.truncate(ctx.env.page_size.saturating_sub(1));
    }
    Ok(out)
}

/// Writing `data` to `/sys/module/<mod>/parameters/<name>` once the VFS let it through:
/// `sysfs_kf_write` (fs/sysfs/file.c: 0 bytes do nothing), `module_attr_store` (`EIO` when
/// perm has no write bit, so no store hook), `param_attr_store` (kernel/params.c: `EPERM`
/// without `set`, the unsafe check, then `set` on the NUL-terminated bytes). Returns the byte
/// count on success. The caller cuts `data` to PAGE_SIZE as kernfs does.
pub fn param_attr_store(kp: &KernelParam, data: &[u8], ctx: &mut Ctx<'_>) -> Result<usize, Errno> {
    if data.is_empty() {
        return Ok(0);
    }
    if kp.perm & 0o222 == 0 {
        return Err(Errno::EIO);
    }
    let set = kp.ops.set_fn();
    if set == OpFn::Null {
        return Err(Errno::EPERM);
    }
    if !param_check_unsafe(kp, ctx) {
        return Err(Errno::EPERM);
    }
    let mut buf = data.to_vec();
    buf.push(0);
    let k = Kp {
        name: &kp.name,
        arg: kp.arg,
        level: kp.level,
    };
    call_set(&set, Some(&mut buf), &k, ctx)?;
    Ok(data.len())
}
