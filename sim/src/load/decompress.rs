//! In-kernel decompression of `MODULE_INIT_COMPRESSED_FILE` (`kernel/module/decompress.c`). (In progress.)
