//! A permissive profile derived from a module itself (`--kernel self`): the kernel it says it
//! was built for, so that it loads with no kernel data at all.
//!
//! Start from the embedded profile of the module's architecture and kernel series (6.12 when
//! the vermagic says 6.12, else 6.1), then take from the module: its vermagic, `sizeof(struct
//! module)` from its `.gnu.linkonce.this_module`, and for every symbol it needs an export with
//! the CRC its `__versions` expects (not GPL-only, no namespace) — so the version, CRC, license
//! and namespace checks pass. Everything else (relocations, layout, parameters, init) is the
//! real simulated load path.

use super::{Arch, Export, KernelVersion, Profile, ProfileError};
use crate::image::{ElfHeader, ModInfo, Section, Symbol, parse_versions};

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const SHT_SYMTAB: u32 = 2;

fn invalid(why: impl Into<String>) -> ProfileError {
    ProfileError::Invalid(why.into())
}

impl Profile {
    /// The permissive profile for the module `image` (uncompressed). Fails with
    /// [`ProfileError::Invalid`] when the image is not an x86_64 or arm64 ELF module.
    pub fn permissive_for_module(image: &[u8]) -> Result<Profile, ProfileError> {
        let h = ElfHeader::parse(image).map_err(|e| invalid(format!("not an ELF module: {e}")))?;
        let arch = match h.e_machine {
            EM_X86_64 => Arch::X86_64,
            EM_AARCH64 => Arch::Aarch64,
            m => {
                return Err(invalid(format!(
                    "e_machine {m} is neither x86_64 nor arm64"
                )));
            }
        };
        let mut sections =
            Section::read_table(image, h.e_shoff, h.e_shnum).map_err(|e| invalid(e.to_string()))?;
        let strs = sections
            .get(usize::from(h.e_shstrndx))
            .map(|s| s.offset)
            .unwrap_or(0);
        for s in &mut sections {
            s.name =
                String::from_utf8_lossy(Section::read_name(image, strs, s.sh_name)).into_owned();
        }
        let find = |n: &str| sections.iter().find(|s| s.name == n);
        let modinfo = find(".modinfo")
            .map(|s| ModInfo::parse(image, s.offset, s.size))
            .unwrap_or_else(ModInfo::empty);
        let vermagic = modinfo.get("vermagic").map(str::to_string);
        let version = match &vermagic {
            Some(v) if v.starts_with("6.12") => KernelVersion::V6_12,
            _ => KernelVersion::V6_1,
        };
        let mut p = Profile::builtin_for(version, arch)?.clone();
        p.name = "self".to_string();
        if let Some(v) = vermagic {
            p.release = v.split(' ').next().unwrap_or("").to_string();
            p.vermagic = v;
        }
        if let Some(m) = find(".gnu.linkonce.this_module") {
            p.sizeof_struct_module = usize::try_from(m.size).unwrap_or(p.sizeof_struct_module);
        }
        let versions = match find("__versions") {
            Some(s) => {
                parse_versions(image, s.offset, s.size).map_err(|e| invalid(e.to_string()))?
            }
            None => Vec::new(),
        };
        let mut needed: Vec<(String, Option<u32>)> = versions
            .iter()
            .map(|v| (v.name.clone(), Some(v.crc as u32)))
            .collect();
        let mut seen: std::collections::HashSet<String> =
            needed.iter().map(|(n, _)| n.clone()).collect();
        if let Some(symtab) = sections.iter().find(|s| s.sh_type == SHT_SYMTAB) {
            let strtab = sections
                .get(symtab.link as usize)
                .map(|s| s.offset)
                .unwrap_or(0);
            let syms =
                Symbol::read_table(image, symtab, strtab).map_err(|e| invalid(e.to_string()))?;
            for s in syms
                .iter()
                .skip(1)
                // No vmlinux symbol is KSYM_NAME_LEN (512) bytes long or more: kallsyms
                // refuses such names when the kernel is built.
                .filter(|s| s.shndx == 0 && !s.name.is_empty() && s.name.len() < 512)
            {
                let name = s.name_str();
                if seen.insert(name.clone().into_owned()) {
                    needed.push((name.into_owned(), None));
                }
            }
        }
        for (name, crc) in needed {
            let old = p.exports.get(&name).map(|e| e.crc);
            let crc = crc.or(old).unwrap_or(0);
            p.exports.insert(
                name,
                Export {
                    crc,
                    gpl_only: false,
                    namespace: None,
                },
            );
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(kernel: &str, name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/ko")
            .join(kernel)
            .join(name);
        std::fs::read(p).unwrap()
    }

    #[test]
    fn a_module_loads_on_its_own_profile_even_when_its_crcs_and_vermagic_are_foreign() {
        for (k, m) in [
            ("debian-6.1-amd64", "bad_crc.ko"),
            ("debian-6.12-arm64", "mp_use_gplonly.ko"),
            ("debian-6.1-arm64", "mp_use_nons.ko"),
        ] {
            let img = fixture(k, m);
            let p = Profile::permissive_for_module(&img).unwrap();
            assert_eq!(p.name(), "self");
            let mut kernel = crate::kernel::Kernel::new(p);
            let r = kernel.finit_module_bytes(img, Some(b""), 0);
            assert!(r.is_ok(), "{k}/{m}: {r:?} {:?}", kernel.log());
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Profile::permissive_for_module(b"not elf").is_err());
        assert!(Profile::permissive_for_module(&[0x7f, b'E', b'L', b'F']).is_err());
    }
}
