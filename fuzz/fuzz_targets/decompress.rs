//! `decompress`: compressed module data through the loader's userspace decompression
//! (`loader::file::decompress`, `ModuleFile::from_bytes`) and the simulator's in-kernel xz
//! decompression (`sim::load::decompress::module_decompress`), each with a fuzzed output limit.
//!
//! Input: `[b0][data...]`
//! - b0: bits 0-1 the format the loader is told (0: detected by magic, 1 gzip, 2 xz, 3 zstd);
//!   bits 2-3 the limit (64 MiB, 1 MiB, 64 KiB, 4 KiB); bit 4 round trip: `data` is the
//!   payload, compressed here first; bits 5-6 the xz BCJ filter of the round trip (none, x86,
//!   ARM64, RISC-V); bit 7 the simulated kernel is `debian-6.12-arm64` (else amd64).
//!
//! Invariants: no output exceeds its limit; `ModuleFile` agrees with `decompress` and only
//! accepts ELF; where both the kernel model and the loader decode the same xz data they give
//! the same bytes; a 6.1 kernel refuses `MODULE_INIT_COMPRESSED_FILE` data silently; round
//! trips give the payload back (gzip, xz, zstd in userspace; xz in the kernel model, with the
//! BCJ filters that kernel has) or `TooLarge`/`ENOMEM` exactly when it is over the limit.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use loader::file::{Compression, DecompressError, ModuleFile, decompress};
use modsim_fuzz::{Input, alloc};
use sim::errno::Errno;
use sim::load::decompress::module_decompress;
use sim::log::KernelLog;

const LIMITS: [u64; 4] = [64 << 20, 1 << 20, 64 << 10, 4 << 10];

fuzz_target!(init: modsim_fuzz::init(), |data: &[u8]| run(data));

fn kind_of(sel: u8, data: &[u8]) -> Compression {
    match sel & 3 {
        1 => Compression::Gzip,
        2 => Compression::Xz,
        3 => Compression::Zstd,
        _ => Compression::detect(data).unwrap_or(Compression::None),
    }
}

fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let b0 = inp.u8();
    let rest = inp.rest();
    let limit = LIMITS[usize::from((b0 >> 2) & 3)];
    let p612 = modsim_fuzz::profile(if b0 & 0x80 != 0 { 3 } else { 2 });
    let p61 = modsim_fuzz::profile(if b0 & 0x80 != 0 { 1 } else { 0 });
    alloc::begin(modsim_fuzz::budget(data.len(), limit));
    if b0 & 0x10 != 0 {
        round_trip(b0, rest, limit, p612);
    } else {
        decode(b0, rest, limit, p612, p61);
    }
    alloc::end();
}

fn decode(
    b0: u8,
    data: &[u8],
    limit: u64,
    p612: &sim::profile::Profile,
    p61: &sim::profile::Profile,
) {
    let kind = kind_of(b0, data);
    let user = decompress(kind, data, limit);
    if let Ok(out) = &user {
        assert!(
            out.len() as u64 <= limit,
            "invariant: decompress: {kind} gave {} bytes over the limit {limit}",
            out.len()
        );
        if kind == Compression::None {
            assert_eq!(
                out.as_slice(),
                data,
                "invariant: decompress: none changed the data"
            );
        }
    }
    if kind == Compression::None {
        assert_eq!(
            user.is_ok(),
            data.len() as u64 <= limit,
            "invariant: decompress: none accepts exactly the data within the limit"
        );
    }

    match ModuleFile::from_bytes("fuzz.ko", data.to_vec(), limit) {
        Ok(mf) => {
            let detected = Compression::detect(data);
            assert_eq!(
                Some(mf.compression()),
                detected,
                "invariant: ModuleFile: compression is not the detected one"
            );
            assert!(
                mf.data().starts_with(b"\x7fELF"),
                "invariant: ModuleFile: accepted data that are not ELF"
            );
            assert!(
                mf.data().len() as u64 <= limit,
                "invariant: ModuleFile: {} bytes over the limit {limit}",
                mf.data().len()
            );
            assert_eq!(mf.file_size(), data.len() as u64);
            if kind == mf.compression() {
                match &user {
                    Ok(out) => assert_eq!(
                        out.as_slice(),
                        mf.data(),
                        "invariant: ModuleFile and decompress disagree"
                    ),
                    Err(e) => {
                        panic!("invariant: ModuleFile accepted what decompress refused ({e:?})")
                    }
                }
            }
        }
        Err(e) => {
            let errno = e.errno();
            assert!(
                [Errno::ENOEXEC.0, Errno::EINVAL.0, 27].contains(&errno.0),
                "invariant: ModuleFile::from_bytes: errno {errno:?} for in-memory data ({e})"
            );
        }
    }

    // The kernel model: 6.12 decompresses xz, 6.1 has no in-kernel decompression.
    let mut log = KernelLog::new();
    let lim = usize::try_from(limit).unwrap_or(usize::MAX);
    let kernel = module_decompress(p612, data, lim, &mut log);
    match &kernel {
        Ok(out) => {
            assert!(
                out.len() <= lim,
                "invariant: module_decompress: {} bytes over the limit {limit}",
                out.len()
            );
            if let Ok(u) = decompress(Compression::Xz, data, limit) {
                assert!(
                    &u == out,
                    "invariant: the kernel model and the loader decode the same xz data to \
                     different bytes ({} vs {})",
                    out.len(),
                    u.len()
                );
            }
        }
        Err(e) => assert!(
            [Errno::EINVAL, Errno::ENOMEM].contains(e),
            "invariant: module_decompress: unexpected errno {e:?}"
        ),
    }
    let mut log61 = KernelLog::new();
    assert_eq!(
        module_decompress(p61, data, lim, &mut log61),
        Err(Errno::EOPNOTSUPP),
        "invariant: 6.1 has no in-kernel decompression"
    );
    assert!(log61.is_empty(), "invariant: 6.1's EOPNOTSUPP is silent");
}

fn xz_compress(payload: &[u8], bcj: u8) -> Vec<u8> {
    use liblzma::stream::{Check, Filters, LzmaOptions, Stream};
    let opts = LzmaOptions::new_preset(0).expect("xz preset 0");
    let mut filters = Filters::new();
    match bcj {
        1 => {
            filters.x86();
        }
        2 => {
            filters.arm64();
        }
        3 => {
            filters.riscv();
        }
        _ => {}
    }
    filters.lzma2(&opts);
    let stream = Stream::new_stream_encoder(&filters, Check::Crc32).expect("xz encoder");
    let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    enc.write_all(payload).expect("xz encode");
    enc.finish().expect("xz finish")
}

fn round_trip(b0: u8, payload: &[u8], limit: u64, p612: &sim::profile::Profile) {
    let fits = payload.len() as u64 <= limit;
    let kind = match b0 & 3 {
        0 | 2 => Compression::Xz,
        1 => Compression::Gzip,
        _ => Compression::Zstd,
    };
    let bcj = (b0 >> 5) & 3;
    let packed = match kind {
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(payload).expect("gzip encode");
            e.finish().expect("gzip finish")
        }
        Compression::Zstd => {
            ruzstd::encoding::compress_to_vec(payload, ruzstd::encoding::CompressionLevel::Fastest)
        }
        _ => xz_compress(payload, bcj),
    };
    match decompress(kind, &packed, limit) {
        Ok(out) => assert!(
            fits && out == payload,
            "invariant: {kind} round trip of {} bytes (limit {limit}) gave {} other bytes",
            payload.len(),
            out.len()
        ),
        Err(DecompressError::TooLarge(..)) => assert!(
            !fits,
            "invariant: {kind} round trip of {} bytes refused as over the limit {limit}",
            payload.len()
        ),
        Err(e) => panic!(
            "invariant: {kind} round trip of {} bytes failed: {e:?}",
            payload.len()
        ),
    }
    match ModuleFile::from_bytes("fuzz.ko", packed.clone(), limit) {
        Ok(mf) => assert!(fits && mf.data() == payload && payload.starts_with(b"\x7fELF")),
        Err(e) => assert!(
            !fits || !payload.starts_with(b"\x7fELF"),
            "invariant: ModuleFile refused a compressed ELF payload within the limit: {e}"
        ),
    }
    if kind == Compression::Xz {
        // An empty payload makes a stream without blocks: no filter is ever looked at.
        let supported = payload.is_empty()
            || matches!(
                (p612.arch(), bcj),
                (_, 0 | 2 | 3) | (sim::profile::Arch::X86_64, 1)
            );
        let mut log = KernelLog::new();
        let lim = usize::try_from(limit).unwrap_or(usize::MAX);
        let r = module_decompress(p612, &packed, lim, &mut log);
        match (supported, fits, r) {
            (true, true, Ok(out)) => assert!(
                out == payload,
                "invariant: the kernel model's xz round trip changed the payload"
            ),
            (true, false, Err(Errno::ENOMEM)) => {}
            (false, _, Err(Errno::EINVAL)) => {}
            (s, f, r) => panic!(
                "invariant: the kernel model's xz round trip (BCJ {bcj}, supported {s}, \
                 within the limit {f}) gave {:?}; log {:?}",
                r.map(|v| v.len()),
                log.texts()
            ),
        }
    }
}
