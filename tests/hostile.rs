//! Hostile inputs measured by what they cost: a counting allocator sees every heap allocation
//! of this test binary, so a load's peak heap use can be checked against the input's size.
//! The tests of this file run one at a time (a lock), so that each measures only itself.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use modsim_tests::fixtures;
use sim::errno::Errno;
use sim::kernel::Kernel;
use sim::profile::Profile;

/// The system allocator, counting the bytes in use and the peak since the last reset.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
            let now = IN_USE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The peak heap use of `f` above what was in use when it started.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fn u16_at(b: &[u8], o: usize) -> usize {
    usize::from(u16::from_le_bytes([b[o], b[o + 1]]))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fn put_u64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// `ko` with `extra` undefined global symbols added, whose names all lie in one string of
/// `len` bytes, each starting one byte further in (every name is a distinct suffix). The new
/// symbol and string tables are appended; the section headers point at them.
fn overlapping_names(ko: &[u8], extra: usize, len: usize) -> Vec<u8> {
    let mut out = ko.to_vec();
    let shoff = usize::try_from(u64_at(ko, 0x28)).unwrap();
    let shentsize = u16_at(ko, 0x3a);
    let shnum = u16_at(ko, 0x3c);
    let sh = |i: usize| shoff + i * shentsize;
    let symtab = (0..shnum)
        .find(|&i| u32::from_le_bytes(ko[sh(i) + 4..sh(i) + 8].try_into().unwrap()) == 2)
        .expect("a symbol table");
    let strtab =
        u32::from_le_bytes(ko[sh(symtab) + 0x28..sh(symtab) + 0x2c].try_into().unwrap()) as usize;
    let (sym_off, sym_size) = (u64_at(ko, sh(symtab) + 0x18), u64_at(ko, sh(symtab) + 0x20));
    let (str_off, str_size) = (u64_at(ko, sh(strtab) + 0x18), u64_at(ko, sh(strtab) + 0x20));
    let old_str = &ko[str_off as usize..(str_off + str_size) as usize];
    let old_syms = &ko[sym_off as usize..(sym_off + sym_size) as usize];

    let mut strs = old_str.to_vec();
    let long_at = strs.len() as u32;
    strs.extend(std::iter::repeat_n(b'A', len));
    strs.push(0);
    let mut syms = old_syms.to_vec();
    for i in 0..extra as u32 {
        let mut e = [0u8; 24];
        e[0..4].copy_from_slice(&(long_at + i).to_le_bytes());
        e[4] = 0x10; // STB_GLOBAL, STT_NOTYPE; st_shndx 0: undefined
        syms.extend_from_slice(&e);
    }
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let new_sym = out.len() as u64;
    out.extend_from_slice(&syms);
    let new_str = out.len() as u64;
    out.extend_from_slice(&strs);
    put_u64(&mut out, sh(symtab) + 0x18, new_sym);
    put_u64(&mut out, sh(symtab) + 0x20, syms.len() as u64);
    put_u64(&mut out, sh(strtab) + 0x18, new_str);
    put_u64(&mut out, sh(strtab) + 0x20, strs.len() as u64);
    out
}

/// Issue 11, item 4: symbol names were copied into owned strings, four times per load, so a
/// module whose names overlap in its string table cost the number of symbols times the
/// table's size (2.6 GB of heap for a 330 KB file). The kernel only runs `strlen` over them.
#[test]
fn overlapping_symbol_names_cost_no_copies() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for kernel in ["debian-6.1-amd64", "debian-6.12-arm64"] {
        let ko = std::fs::read(fixtures(kernel).join("mp_lib.ko")).unwrap();
        let image = overlapping_names(&ko, 1000, 128 << 10);
        let profile = Profile::builtin(kernel).unwrap();
        let mut k = Kernel::new(profile);
        let (r, peak) = peak_of(|| k.init_module(&image, Some(b"")));
        // Every added name is an undefined symbol nobody exports.
        assert_eq!(r.unwrap_err().errno, Errno::ENOENT, "{kernel}");
        assert!(
            peak < 8 * image.len() + (4 << 20),
            "{kernel}: a {} byte module took {peak} bytes of heap",
            image.len()
        );
    }
}

/// `n` zero bytes, gzip-compressed (about a thousandth of that).
fn gzip_bomb(n: usize) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..n / zeros.len() {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap()
}

/// Issue 11, item 7: a decompression bomb was stopped at the limit only after the buffer had
/// grown past it by doubling (peaks of 1.05-1.22 GiB for the 1 GiB limit).
#[test]
fn a_decompression_bomb_costs_no_more_than_the_limit() {
    let bomb = gzip_bomb(300 << 20);
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let limit = 200u64 << 20;
    let (r, peak) =
        peak_of(|| loader::file::decompress(loader::file::Compression::Gzip, &bomb, limit));
    assert!(matches!(
        r,
        Err(loader::file::DecompressError::TooLarge(..))
    ));
    assert!(
        peak as u64 <= limit + (2 << 20),
        "a bomb stopped at {limit} bytes took {peak} bytes of heap"
    );
}

/// Issue 11, item 7: insmod of a bomb on a simulated machine with a 64 MiB memory limit gets
/// the kernel's answer, `ENOMEM`, without decompressing past what the machine could hold (a
/// 900 MiB bomb was accepted, and insmod peaked at 1.9 GB).
#[test]
fn insmod_of_a_bomb_on_a_small_machine_is_enomem_without_decompressing_it() {
    use loader::backend::Backend;
    let dir = std::env::temp_dir().join(format!("modsim-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bomb.ko.gz");
    std::fs::write(&path, gzip_bomb(900 << 20)).unwrap();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let profile = Profile::builtin("debian-6.1-amd64").unwrap();
    let settings = sim::kernel::Settings {
        memory_limit: 64 << 20,
        ..Default::default()
    };
    let mut backend =
        loader::sim_backend::SimBackend::from_kernel(Kernel::with_settings(profile, settings));
    assert_eq!(backend.memory_limit(), Some(64 << 20));
    let (r, peak) = peak_of(|| {
        loader::insert::insert_module(
            &mut backend,
            &path,
            c"",
            &loader::insert::InsertOptions::default(),
        )
    });
    std::fs::remove_dir_all(&dir).ok();
    let e = r.unwrap_err();
    assert_eq!(
        (e.stage, e.errno),
        (loader::insert::Stage::InitModule, Errno::ENOMEM)
    );
    assert!(
        peak < 80 << 20,
        "insmod of a bomb took {peak} bytes of heap"
    );
}

/// Issue 11, item 7: the kernel log had no bound (210 k lines for one 1 MB parameter string).
/// It holds what printk's ring buffer of `CONFIG_LOG_BUF_SHIFT` (17: 128 KiB, 4096 records)
/// holds; the lines still count.
#[test]
fn a_flood_of_log_lines_keeps_what_the_ring_buffer_holds() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let ko = std::fs::read(fixtures("debian-6.12-amd64").join("mp_lib.ko")).unwrap();
    let mut k = Kernel::new(Profile::builtin("debian-6.12-amd64").unwrap());
    let args = "u ".repeat(500_000);
    k.init_module(&ko, Some(args.as_bytes())).unwrap();
    assert!(k.log_seq() >= 500_000, "{} lines printed", k.log_seq());
    let held = k.log();
    assert!(held.len() <= 4096, "{} lines held", held.len());
    let bytes: usize = held
        .iter()
        .map(|l| (8 + l.text.len()).next_multiple_of(8))
        .sum();
    assert!(bytes <= 128 << 10, "{bytes} bytes held");
    // The newest lines are the ones kept.
    assert!(
        held.last()
            .unwrap()
            .text
            .contains("unknown parameter 'u' ignored")
    );
}

/// `ko` with its `struct module` name (in `.gnu.linkonce.this_module`) made empty.
fn with_empty_name(ko: &[u8], name_offset: usize) -> Vec<u8> {
    let mut out = ko.to_vec();
    let shoff = usize::try_from(u64_at(ko, 0x28)).unwrap();
    let (shentsize, shnum, shstrndx) = (u16_at(ko, 0x3a), u16_at(ko, 0x3c), u16_at(ko, 0x3e));
    let sh = |i: usize| shoff + i * shentsize;
    let strtab = usize::try_from(u64_at(ko, sh(shstrndx) + 0x18)).unwrap();
    let this = (0..shnum)
        .find(|&i| {
            let n = u32::from_le_bytes(ko[sh(i)..sh(i) + 4].try_into().unwrap()) as usize;
            ko[strtab + n..].starts_with(b".gnu.linkonce.this_module\0")
        })
        .expect("a .gnu.linkonce.this_module");
    let at = usize::try_from(u64_at(ko, sh(this) + 0x18)).unwrap() + name_offset;
    out[at..at + 56].fill(0);
    out
}

/// A module the kernel refuses in `mod_sysfs_setup()` (an empty name: a WARN and `EINVAL`)
/// after its parameters were set: `coming_cleanup` destroys them (the simulator left the
/// charp copies behind; found by fuzzing, `fuzz/regressions/load/sysfs-refusal-leaves-parameters`).
#[test]
fn a_module_refused_after_its_parameters_were_set_frees_them() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for kernel in ["debian-6.1-amd64", "debian-6.12-arm64"] {
        let profile = Profile::builtin(kernel).unwrap();
        let ko = std::fs::read(fixtures(kernel).join("mp_types.ko")).unwrap();
        let image = with_empty_name(&ko, profile.this_module().name_offset);
        let mut k = Kernel::new(profile);
        let r = k.init_module(&image, Some(b"p_charp=x p_charparr=a,b"));
        assert_eq!(r.unwrap_err().errno, Errno::EINVAL, "{kernel}");
        assert!(k.log().iter().any(|l| {
            l.text
                .contains("attempted to be registered with empty name")
        }));
        assert_eq!(
            k.memory().used(),
            0,
            "{kernel}: memory left after a refused load"
        );
        assert_eq!(
            k.tainted() & (1 << 9),
            1 << 9,
            "{kernel}: the WARN taints W"
        );
    }
}
