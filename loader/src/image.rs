//! A module's memory image as the real kernel would have it: load a module into the simulator
//! at the addresses a real boot gave its sections, with the kernel symbol addresses of that
//! boot, and read every live section back (what `modloader image` writes and what the memory
//! captures in `tests/fixtures/memdump/` are compared with).
//!
//! *Invariant:* the address maps are parsed strictly (`{"name": "0x<hex>"}`, nothing else) and
//! bounded by the input's size; a load that fails reports the kernel's errno and log.

use indexmap::IndexMap;
use sim::kernel::Kernel;

/// Why an image could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// An address map is not `{"name": "0x<hex>", ...}`.
    #[error("{what}: {why}")]
    BadMap {
        /// Which map (a file name).
        what: String,
        /// What is wrong.
        why: String,
    },
    /// The simulated kernel refused the module.
    #[error("the simulated kernel refused the module: {step}: {errno}{log}")]
    Load {
        /// The kernel step that failed.
        step: String,
        /// Its errno (`ENOEXEC` ...).
        errno: String,
        /// The kernel's log lines of the load, each on its own line.
        log: String,
    },
}

/// Parse an address map: a JSON object of names to `"0x<hex>"` strings (what
/// `/sys/module/<m>/sections/*` and `/proc/kallsyms` print).
pub fn parse_address_map(what: &str, json: &str) -> Result<IndexMap<String, u64>, ImageError> {
    let bad = |why: String| ImageError::BadMap {
        what: what.to_string(),
        why,
    };
    let v: IndexMap<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| bad(format!("not a JSON object: {e}")))?;
    let mut out = IndexMap::with_capacity(v.len());
    for (k, v) in v {
        let s = v
            .as_str()
            .ok_or_else(|| bad(format!("{k}: the address must be a string \"0x...\"")))?;
        let hex = s
            .strip_prefix("0x")
            .ok_or_else(|| bad(format!("{k}: {s:?} does not start with 0x")))?;
        let a = u64::from_str_radix(hex, 16)
            .map_err(|e| bad(format!("{k}: {s:?} is not a 64-bit hex address: {e}")))?;
        out.insert(k, a);
    }
    Ok(out)
}

/// Load `image` into `kernel` with its sections at `sections` and the kernel symbols at
/// `symbols` ([`Kernel::place_next_load`], [`Kernel::set_symbol_addresses`]); returns the
/// module's name.
pub fn load_placed(
    kernel: &mut Kernel,
    image: &[u8],
    params: &str,
    sections: IndexMap<String, u64>,
    symbols: IndexMap<String, u64>,
) -> Result<String, ImageError> {
    kernel.set_symbol_addresses(symbols);
    kernel.place_next_load(sections);
    let before: Vec<String> = kernel.modules().map(|m| m.name.clone()).collect();
    let start = kernel.log_seq();
    let r = kernel.init_module(image, Some(params.as_bytes()));
    if let Err(e) = r {
        let log: String = kernel
            .log_since(start)
            .iter()
            .map(|l| format!("\n  {}", l.text))
            .collect();
        return Err(ImageError::Load {
            step: e.step.to_string(),
            errno: e.errno.name(),
            log,
        });
    }
    Ok(kernel
        .modules()
        .map(|m| m.name.clone())
        .find(|n| !before.contains(n))
        .unwrap_or_default())
}

/// Every live (non-init) section of a loaded module with its bytes, in section order.
pub fn live_sections(kernel: &Kernel, module: &str) -> Vec<(String, u64, Vec<u8>)> {
    let Some(m) = kernel.module(module) else {
        return Vec::new();
    };
    m.sections
        .iter()
        .filter(|s| !s.init && s.size > 0)
        .filter_map(|s| {
            kernel
                .section_bytes(module, &s.name)
                .ok()
                .map(|b| (s.name.clone(), s.addr, b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_maps_are_parsed_strictly() {
        let m = parse_address_map("S.json", r#"{".text": "0xffffffffc0000000", "x": "0x0"}"#)
            .expect("valid");
        assert_eq!(m[".text"], 0xffff_ffff_c000_0000);
        assert_eq!(m["x"], 0);
        for bad in [
            "[]",
            r#"{".text": 5}"#,
            r#"{".text": "ffff"}"#,
            r#"{".text": "0x1ffffffffffffffff"}"#,
            r#"{".text": "0xzz"}"#,
            "",
        ] {
            assert!(parse_address_map("S.json", bad).is_err(), "{bad}");
        }
    }
}
