//! The userspace side of module loading, like kmod's tools: talks to a [`backend::Backend`],
//! which is either the real kernel ([`kernel_backend::KernelBackend`]) or the simulator.
//!
//! - [`errno`]: errno numbers and their names.
//! - [`backend`]: the `Backend` trait and the state it reports.
//! - [`kernel_backend`]: the real kernel through the system calls (the only `unsafe` code).
//! - [`sim_backend`]: the simulated kernel (`sim::Kernel`) behind the same trait.
//! - [`scenario`]: scenario files, running them on a backend, comparing results.
//! - [`file`]: reading module files, plain or compressed (gzip, xz, zstd), bounded.
//! - [`modinfo`]: what a module file says about itself: `.modinfo`, `__versions`, exports,
//!   undefined symbols, signature.
//! - [`deps`]: depmod's work: which module provides which symbol, dependencies, load order,
//!   `modules.dep`.
//! - [`insert`]: inserting a module file like libkmod (`finit_module` first, compression,
//!   force flags, `init_module` fallback) with kmod's error texts.
//! - [`params`]: parameter strings quoted so the kernel's `next_arg()` reads them back.
//! - [`cli`]: kmod's `insmod`, `rmmod` and `lsmod` on any backend.

pub mod backend;
pub mod cli;
pub mod deps;
pub mod distro;
pub mod errno;
pub mod explain;
pub mod file;
pub mod image;
pub mod insert;
pub mod kernel_backend;
pub mod machine_dir;
pub mod modinfo;
pub mod params;
pub mod scenario;
pub mod shell;
pub mod sim_backend;
