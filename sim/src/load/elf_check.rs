//! ELF validity checks: `elf_validity_check()`/`setup_load_info()` (6.1) and `elf_validity_cache_copy()` (6.12). (In progress.)
