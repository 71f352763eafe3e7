//! The load path: one function per kernel step, named after the kernel function it models.
//! (In progress: issue 3.)

pub mod decompress;
pub mod elf_check;
pub mod reloc;
pub mod signing;
