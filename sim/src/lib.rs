//! sim: an in-process model of the Linux kernel's module loader.
#![forbid(unsafe_code)]

pub mod profile;
