//! sim: an in-process model of the Linux kernel's module loader.
//!
//! - [`profile`]: what a kernel is (the four embedded Debian profiles, or a headers directory).
//! - [`errno`], [`log`]: the errno values and kernel log lines every step produces.
//! - [`memory`]: the simulated address space module memory lives in.
#![forbid(unsafe_code)]

pub mod errno;
pub mod file;
pub mod image;
pub mod kernel;
pub mod load;
pub mod log;
pub mod memory;
pub mod params;
pub mod profile;
pub mod shared;
pub mod taint;
pub mod trace;

pub use errno::Errno;
