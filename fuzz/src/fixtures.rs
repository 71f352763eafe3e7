//! Fixture modules embedded at build time (`tests/fixtures/ko/<kernel>/`): the modules the
//! memory captures (`tests/fixtures/memdump/`) load, for every kernel. A reproducer that
//! names a fixture by index keeps meaning the same bytes for as long as the fixtures do.

/// One embedded fixture file.
pub struct Fixture {
    /// Index into [`crate::KERNELS`].
    pub kernel: u8,
    /// The file name (`mp_lib.ko`).
    pub file: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

macro_rules! fixture {
    ($k:literal, $kernel:literal, $file:literal) => {
        Fixture {
            kernel: $k,
            file: $file,
            bytes: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/ko/",
                $kernel,
                "/",
                $file
            )),
        }
    };
}

/// The embedded fixtures: for each kernel, the modules of its memory capture.
pub static FIXTURES: &[Fixture] = &[
    fixture!(0, "debian-6.1-amd64", "mp_lib.ko"),
    fixture!(0, "debian-6.1-amd64", "mp_export.ko"),
    fixture!(0, "debian-6.1-amd64", "mp_use.ko"),
    fixture!(0, "debian-6.1-amd64", "mp_use_ns.ko"),
    fixture!(0, "debian-6.1-amd64", "mp_plt.ko"),
    fixture!(0, "debian-6.1-amd64", "mp_weak.ko"),
    fixture!(0, "debian-6.1-amd64", "mp_noexit.ko"),
    fixture!(0, "debian-6.1-amd64", "mp_patch.ko"),
    fixture!(0, "debian-6.1-amd64", "mp_types.ko"),
    fixture!(1, "debian-6.1-arm64", "mp_lib.ko"),
    fixture!(1, "debian-6.1-arm64", "mp_export.ko"),
    fixture!(1, "debian-6.1-arm64", "mp_use.ko"),
    fixture!(1, "debian-6.1-arm64", "mp_use_ns.ko"),
    fixture!(1, "debian-6.1-arm64", "mp_plt.ko"),
    fixture!(1, "debian-6.1-arm64", "mp_weak.ko"),
    fixture!(1, "debian-6.1-arm64", "mp_noexit.ko"),
    fixture!(1, "debian-6.1-arm64", "mp_patch.ko"),
    fixture!(1, "debian-6.1-arm64", "mp_types.ko"),
    fixture!(2, "debian-6.12-amd64", "mp_lib.ko"),
    fixture!(2, "debian-6.12-amd64", "mp_export.ko"),
    fixture!(2, "debian-6.12-amd64", "mp_use.ko"),
    fixture!(2, "debian-6.12-amd64", "mp_use_ns.ko"),
    fixture!(2, "debian-6.12-amd64", "mp_plt.ko"),
    fixture!(2, "debian-6.12-amd64", "mp_weak.ko"),
    fixture!(2, "debian-6.12-amd64", "mp_noexit.ko"),
    fixture!(2, "debian-6.12-amd64", "mp_patch.ko"),
    fixture!(2, "debian-6.12-amd64", "mp_types.ko"),
    fixture!(3, "debian-6.12-arm64", "mp_lib.ko"),
    fixture!(3, "debian-6.12-arm64", "mp_export.ko"),
    fixture!(3, "debian-6.12-arm64", "mp_use.ko"),
    fixture!(3, "debian-6.12-arm64", "mp_use_ns.ko"),
    fixture!(3, "debian-6.12-arm64", "mp_plt.ko"),
    fixture!(3, "debian-6.12-arm64", "mp_weak.ko"),
    fixture!(3, "debian-6.12-arm64", "mp_noexit.ko"),
    fixture!(3, "debian-6.12-arm64", "mp_patch.ko"),
    fixture!(3, "debian-6.12-arm64", "mp_types.ko"),
];

/// The fixture `file` of kernel `KERNELS[kernel % 4]`.
pub fn get(kernel: u8, file: &str) -> Option<&'static [u8]> {
    FIXTURES
        .iter()
        .find(|f| f.kernel == kernel % 4 && f.file == file)
        .map(|f| f.bytes)
}

/// `mp_lib.ko` of kernel `KERNELS[kernel % 4]` (exports `mp_lib_*`, loads on its own).
pub fn mp_lib(kernel: u8) -> &'static [u8] {
    get(kernel, "mp_lib.ko").unwrap_or_default()
}

/// `mp_export.ko` of kernel `KERNELS[kernel % 4]` (exports plain, GPL and namespaced symbols).
pub fn mp_export(kernel: u8) -> &'static [u8] {
    get(kernel, "mp_export.ko").unwrap_or_default()
}
