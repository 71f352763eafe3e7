//! `load`: a fuzzed module image through `init_module` / `finit_module` of a simulated machine
//! with fuzzed profile, settings, parameter string and flags.
//!
//! Input: `[b0][b1][b2][len: u16 le][params: len bytes][image...]`
//! - b0: bits 0-1 profile (`KERNELS`); bits 2-3 the call: `init_module`, `finit_module` on
//!   the bytes, `finit_module` with `MODULE_INIT_COMPRESSED_FILE`, `finit_module` on a real
//!   file descriptor; bit 4 a NULL parameter pointer; bits 5-6 what `init` returns (0,
//!   -ENODEV, 1, -ENOMEM).
//! - b1: bit 0 `sig_enforce`, bit 1 lockdown, bits 2-3 the memory limit (`MEMORY_LIMITS`),
//!   bit 4 `mp_lib` and `mp_export` loaded first, bit 5 `module_blacklist=mp_lib,mp_types`,
//!   bit 6 `MODULE_INIT_IGNORE_MODVERSIONS`, bit 7 `MODULE_INIT_IGNORE_VERMAGIC`.
//! - b2: bits 0-1 `spectre_v2` (retpoline, lfence, off), bit 2 SMP, bit 3 a return thunk,
//!   bit 4 an unknown flag bit (8), bit 5 load the same image a second time.
//!
//! Invariants: a failed load leaves no module (not even unformed) and no module memory; a
//! successful one adds exactly one live module whose live sections read back, loading the
//! same image again fails, and a forced `delete_module` returns the machine to where it was;
//! removing everything frees all module memory; the same call with tracing on gives the same
//! result, log, modules and memory; heap use stays within `budget(input, memory limit)`.
#![no_main]

use std::io::Write;
use std::os::fd::AsFd;

use libfuzzer_sys::fuzz_target;
use modsim_fuzz::{
    Input, KernelState, MEMORY_LIMITS, all_module_names, alloc, check_load_outcome,
    check_tracing_changes_nothing, check_unload, check_unload_all, fixtures, module_names,
};
use sim::errno::Errno;
use sim::file::FinitFd;
use sim::kernel::{
    Kernel, MODULE_INIT_COMPRESSED_FILE, MODULE_INIT_IGNORE_MODVERSIONS,
    MODULE_INIT_IGNORE_VERMAGIC, Settings, SysResult, X86Retpoline,
};

fuzz_target!(init: modsim_fuzz::init(), |data: &[u8]| run(data));

struct Call<'a> {
    op: u8,
    image: &'a [u8],
    uargs: Option<&'a [u8]>,
    flags: u32,
}

impl Call<'_> {
    fn on(&self, k: &mut Kernel) -> SysResult {
        match self.op {
            0 => k.init_module(self.image, self.uargs),
            1 => k.finit_module_bytes(self.image.to_vec(), self.uargs, self.flags),
            2 => k.finit_module_bytes(
                self.image.to_vec(),
                self.uargs,
                self.flags | MODULE_INIT_COMPRESSED_FILE,
            ),
            _ => {
                let path = modsim_fuzz::scratch_dir().join("load.ko");
                let written = std::fs::File::create(&path)
                    .and_then(|mut f| f.write_all(self.image))
                    .and_then(|()| std::fs::File::open(&path));
                match written {
                    Ok(f) => k.finit_module(FinitFd::Open(f.as_fd()), self.uargs, self.flags),
                    Err(e) => panic!("{}: {e}", path.display()),
                }
            }
        }
    }
}

fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let (b0, b1, b2) = (inp.u8(), inp.u8(), inp.u8());
    let plen = usize::from(inp.u16());
    let params = inp.take(plen);
    let image = inp.rest();

    let kernel = b0 & 3;
    let profile = modsim_fuzz::profile(kernel);
    let init_ret = [0, -(Errno::ENODEV.0), 1, -(Errno::ENOMEM.0)][usize::from((b0 >> 5) & 3)];
    let limit = MEMORY_LIMITS[usize::from((b1 >> 2) & 3)];
    let mut flags = 0;
    if b1 & 0x40 != 0 {
        flags |= MODULE_INIT_IGNORE_MODVERSIONS;
    }
    if b1 & 0x80 != 0 {
        flags |= MODULE_INIT_IGNORE_VERMAGIC;
    }
    if b2 & 0x10 != 0 {
        flags |= 8;
    }
    let settings = Settings {
        sig_enforce: b1 & 1 != 0,
        lockdown: b1 & 2 != 0,
        memory_limit: limit,
        blacklist: if b1 & 0x20 != 0 {
            vec!["mp_lib".into(), "mp_types".into()]
        } else {
            Vec::new()
        },
        x86_retpoline: match b2 & 3 {
            1 => X86Retpoline::Lfence,
            2 => X86Retpoline::Off,
            _ => X86Retpoline::Thunks,
        },
        uniprocessor: b2 & 4 == 0,
        x86_return_thunk: (b2 & 8 != 0).then(|| "__x86_return_thunk".to_string()),
        ..Settings::default()
    };
    let call = Call {
        op: (b0 >> 2) & 3,
        image,
        uargs: (b0 & 0x10 == 0).then_some(params),
        flags,
    };

    alloc::begin(modsim_fuzz::budget(data.len(), limit));
    let mut k0 = Kernel::with_settings(profile, settings);
    if b1 & 0x10 != 0 {
        let _ = k0.init_module(fixtures::mp_lib(kernel), Some(b""));
        let _ = k0.init_module(fixtures::mp_export(kernel), Some(b""));
    }
    k0.set_default_init_return(init_ret);
    let names0 = module_names(&k0);
    let all0 = all_module_names(&k0);
    let used0 = k0.memory().used();
    let heap0 = modsim_fuzz::param_heap(&k0);
    let log0 = k0.log_seq();

    // Untraced.
    let mut k = k0.clone();
    let r = call.on(&mut k);
    let plain = KernelState::of(&k, &r, log0);
    // A failed load that leaves parameter heap: the same load with an init that succeeds
    // shows whether the kernel's own array code leaks it (see arrays_walk_apart).
    // (The parameters may be what failed: then the same image without them.)
    let kernel_leaks = || {
        [call.uargs, Some(&b""[..])].into_iter().any(|uargs| {
            let mut again = k0.clone();
            again.set_default_init_return(0);
            let _ = Call { uargs, ..call }.on(&mut again);
            again
                .modules()
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()
                .iter()
                .any(|n| modsim_fuzz::arrays_walk_apart(&again, n))
        })
    };
    let loaded = check_load_outcome("load", &k, &r, &names0, &all0, used0, heap0, kernel_leaks);
    // Parameter heap the kernel leaks too (checked by check_load_outcome / check_unload).
    let mut leaked = if r.is_err() {
        k.memory().used() - used0
    } else {
        0
    };
    if let Some(name) = &loaded {
        if b2 & 0x20 != 0 {
            let used = k.memory().used();
            let all = all_module_names(&k);
            let again = call.on(&mut k);
            assert!(
                again.is_err(),
                "invariant: load: the same image loaded twice ({name})"
            );
            assert_eq!(
                (k.memory().used(), all_module_names(&k)),
                (used, all),
                "invariant: load: the refused second load of {name} changed the machine"
            );
        }
        leaked += check_unload("load", &mut k, name, &all0, used0, heap0);
    }
    check_unload_all("load", &mut k, leaked);
    drop(k);

    // Traced: the same call on the same machine.
    let mut kt = k0.clone();
    kt.set_tracing(true);
    let rt = call.on(&mut kt);
    let traced = KernelState::of(&kt, &rt, log0);
    check_tracing_changes_nothing("load", &plain, &traced);
    assert!(
        !kt.take_trace().is_empty(),
        "invariant: load: a traced system call recorded no trace event"
    );
    drop(kt);
    drop(k0);
    alloc::end();
}
