//! A trace of the load path, for people learning how module loading works: one event per
//! kernel step, naming the kernel function it models, what it checked and the values involved.
//! Off by default ([`crate::kernel::Kernel::set_tracing`]); the load path is the same with or
//! without it.

use serde::Serialize;

/// One step of a load, as it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    /// The kernel function the step models (`check_modinfo`).
    pub function: &'static str,
    /// Where it lives in the kernel sources.
    pub source: &'static str,
    /// One line saying what the step did.
    pub summary: String,
    /// The values involved, in order (`("module vermagic", "6.1.0-56-amd64 SMP ...")`).
    pub details: Vec<(String, String)>,
    /// `Some(errno name)` if the load failed here.
    pub failed: Option<String>,
}

impl TraceEvent {
    /// An event of `function` (in `source`) with `summary`.
    pub fn new(function: &'static str, source: &'static str, summary: impl Into<String>) -> Self {
        TraceEvent {
            function,
            source,
            summary: summary.into(),
            details: Vec::new(),
            failed: None,
        }
    }

    /// Add a value.
    pub fn with(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.details.push((key.into(), value.to_string()));
        self
    }
}

/// The name of a relocation type on the architecture (`R_X86_64_PC32`, `R_AARCH64_CALL26`).
pub fn reloc_type_name(aarch64: bool, t: u32) -> String {
    let n = if aarch64 {
        match t {
            0 | 256 => "R_AARCH64_NONE",
            257 => "R_AARCH64_ABS64",
            258 => "R_AARCH64_ABS32",
            259 => "R_AARCH64_ABS16",
            260 => "R_AARCH64_PREL64",
            261 => "R_AARCH64_PREL32",
            262 => "R_AARCH64_PREL16",
            263 => "R_AARCH64_MOVW_UABS_G0",
            264 => "R_AARCH64_MOVW_UABS_G0_NC",
            265 => "R_AARCH64_MOVW_UABS_G1",
            266 => "R_AARCH64_MOVW_UABS_G1_NC",
            267 => "R_AARCH64_MOVW_UABS_G2",
            268 => "R_AARCH64_MOVW_UABS_G2_NC",
            269 => "R_AARCH64_MOVW_UABS_G3",
            270 => "R_AARCH64_MOVW_SABS_G0",
            271 => "R_AARCH64_MOVW_SABS_G1",
            272 => "R_AARCH64_MOVW_SABS_G2",
            273 => "R_AARCH64_LD_PREL_LO19",
            274 => "R_AARCH64_ADR_PREL_LO21",
            275 => "R_AARCH64_ADR_PREL_PG_HI21",
            276 => "R_AARCH64_ADR_PREL_PG_HI21_NC",
            277 => "R_AARCH64_ADD_ABS_LO12_NC",
            278 => "R_AARCH64_LDST8_ABS_LO12_NC",
            279 => "R_AARCH64_TSTBR14",
            280 => "R_AARCH64_CONDBR19",
            282 => "R_AARCH64_JUMP26",
            283 => "R_AARCH64_CALL26",
            284 => "R_AARCH64_LDST16_ABS_LO12_NC",
            285 => "R_AARCH64_LDST32_ABS_LO12_NC",
            286 => "R_AARCH64_LDST64_ABS_LO12_NC",
            287 => "R_AARCH64_MOVW_PREL_G0",
            288 => "R_AARCH64_MOVW_PREL_G0_NC",
            289 => "R_AARCH64_MOVW_PREL_G1",
            290 => "R_AARCH64_MOVW_PREL_G1_NC",
            291 => "R_AARCH64_MOVW_PREL_G2",
            292 => "R_AARCH64_MOVW_PREL_G2_NC",
            293 => "R_AARCH64_MOVW_PREL_G3",
            299 => "R_AARCH64_LDST128_ABS_LO12_NC",
            _ => "",
        }
    } else {
        match t {
            0 => "R_X86_64_NONE",
            1 => "R_X86_64_64",
            2 => "R_X86_64_PC32",
            4 => "R_X86_64_PLT32",
            10 => "R_X86_64_32",
            11 => "R_X86_64_32S",
            24 => "R_X86_64_PC64",
            _ => "",
        }
    };
    if n.is_empty() {
        format!("type {t}")
    } else {
        n.to_string()
    }
}

/// Why the kernel refused a load at `step` with `errno`, and what to do about it.
pub fn hint(step: &str, errno: crate::errno::Errno) -> String {
    let e = errno.name();
    let why = match (step, e.as_str()) {
        ("may_init_module", _) => {
            "loading needs CAP_SYS_MODULE, and kernel.modules_disabled must be 0 (it cannot be reset once set)"
        }
        ("finit_module", "EINVAL") => {
            "finit_module takes only the flags 1 (ignore modversions), 2 (ignore vermagic) and 4 (compressed file)"
        }
        ("kernel_read_file", "EBADF") => {
            "the descriptor must be open for reading (not O_PATH, not write-only)"
        }
        ("kernel_read_file", "ETXTBSY") => "someone has the file open for writing; close it first",
        ("kernel_read_file", "EINVAL") => "the descriptor must be a non-empty regular file",
        ("module_decompress", "EOPNOTSUPP") => {
            "this kernel has no in-kernel decompression (CONFIG_MODULE_DECOMPRESS): decompress in userspace (insmod does)"
        }
        ("module_decompress", _) => {
            "the kernel decompresses only its own format (xz on Debian 6.12): decompress in userspace instead"
        }
        ("copy_module_from_user", _) => "the image is shorter than an ELF header",
        ("module_sig_check", "EKEYREJECTED") => {
            "signatures are enforced (module.sig_enforce=1 or CONFIG_MODULE_SIG_FORCE): sign the module with a key the kernel trusts"
        }
        ("module_sig_check", _) => {
            "the appended signature is malformed: re-sign the module or strip the trailer"
        }
        ("elf_validity_check" | "elf_validity_cache_copy", _) => {
            "not a valid module for this kernel: check the architecture (e_machine) and that the file is a whole, uncompressed .ko"
        }
        ("blacklisted", _) => "the module is on the kernel's module_blacklist= boot parameter",
        ("check_modstruct_version", _) => {
            "built against other kernel headers (its module_layout CRC differs): rebuild against this kernel's headers, or force with --force-modversion"
        }
        ("check_modinfo", _) => {
            "the version magic differs from this kernel's: rebuild against this kernel, or force with --force-vermagic"
        }
        ("add_unformed_module" | "module_patient_check_exists", "EEXIST") => {
            "a module of that name is already loaded: remove it first"
        }
        ("add_unformed_module" | "module_patient_check_exists", _) => {
            "a module of that name is still loading or unloading"
        }
        ("module_enforce_rwx_sections", _) => {
            "a section is both writable and executable, which CONFIG_STRICT_MODULE_RWX forbids"
        }
        ("percpu_modalloc", _) => "the 8 KiB per-cpu area reserved for modules is used up",
        ("simplify_symbols", "ENOENT") => {
            "a needed symbol is exported by neither the kernel nor a loaded module (or it is GPL-only and the module is not GPL): load its provider first, as modprobe does"
        }
        ("simplify_symbols", "EINVAL") => {
            "a symbol's CRC differs from the exporter's, or its namespace is not imported (MODULE_IMPORT_NS)"
        }
        ("simplify_symbols", _) => "a symbol could not be resolved (see the log)",
        ("apply_relocate_add" | "apply_relocate", _) => {
            "a relocation is unsupported by the kernel or its value is out of range"
        }
        ("verify_exported_symbols", _) => {
            "the module exports a symbol that is already exported: unload the other exporter first"
        }
        ("check_export_symbol_versions", _) => {
            "the module exports symbols without CRCs and the kernel cannot force it"
        }
        ("strndup_user", _) => "the parameter string pointer is invalid (NULL)",
        ("parse_args", _) => "a parameter was rejected (see the log line): fix its value or name",
        ("mod_sysfs_init", _) => "a built-in module of that name already has /sys/module/<name>",
        ("do_init_module", _) => {
            "the module's own init function returned this error: its code refused to load"
        }
        _ => "see the kernel log lines",
    };
    format!("the kernel refused the module with {e}: {why}")
}
