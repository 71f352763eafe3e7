//! Relocations as `apply_relocate_add()` does them on x86_64 and arm64. (In progress.)
