//! `sizeof(struct module)` and the offsets of its `name`, `init` and `exit` fields, read from
//! the BTF (`.BTF` section) of a vmlinux. Debian's 6.12 headers packages ship such a vmlinux
//! (BTF only, for building modules with BTF); this reads just enough of the format
//! (Documentation/bpf/btf.rst) to find one struct.

use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSection};

/// What the loader needs of `struct module`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StructModule {
    pub size: u64,
    pub name: u64,
    pub init: u64,
    pub exit: Option<u64>,
}

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;

struct Reader<'a> {
    data: &'a [u8],
    big_endian: bool,
}

impl Reader<'_> {
    fn u32_at(&self, off: usize) -> Result<u32, String> {
        let bytes: [u8; 4] = off
            .checked_add(4)
            .and_then(|end| self.data.get(off..end))
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("BTF truncated at byte {off}"))?;
        Ok(if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    }
}

/// The size in bytes of what follows a `struct btf_type` of that kind with `vlen` entries.
fn trailer_len(kind: u32, vlen: usize) -> Result<usize, String> {
    Ok(match kind {
        1 => 4,                                      // INT
        2 | 7 | 8 | 9 | 10 | 11 | 12 | 16 | 18 => 0, // PTR FWD TYPEDEF VOLATILE CONST RESTRICT FUNC FLOAT TYPE_TAG
        3 => 12,                                     // ARRAY
        4 | 5 => 12 * vlen,                          // STRUCT UNION: btf_member
        6 => 8 * vlen,                               // ENUM
        13 => 8 * vlen,                              // FUNC_PROTO: btf_param
        14 => 4,                                     // VAR
        15 => 12 * vlen,                             // DATASEC
        17 => 4,                                     // DECL_TAG
        19 => 12 * vlen,                             // ENUM64
        _ => return Err(format!("unknown BTF kind {kind}")),
    })
}

/// Finds `struct module` in the `.BTF` section of an ELF vmlinux.
pub(super) fn struct_module_layout(elf: &[u8]) -> Result<StructModule, String> {
    let file = ElfFile64::<Endianness>::parse(elf).map_err(|e| format!("not an ELF64: {e}"))?;
    let section = file
        .section_by_name(".BTF")
        .ok_or("no .BTF section (vmlinux built without CONFIG_DEBUG_INFO_BTF?)")?;
    let btf = section.data().map_err(|e| format!(".BTF: {e}"))?;
    struct_module_in_btf(btf)
}

/// Finds `struct module` in raw BTF data.
pub(super) fn struct_module_in_btf(btf: &[u8]) -> Result<StructModule, String> {
    let magic = btf.get(..2).ok_or("BTF truncated")?;
    let big_endian = match u16::from_le_bytes([magic[0], magic[1]]) {
        BTF_MAGIC => false,
        m if m.swap_bytes() == BTF_MAGIC => true,
        _ => return Err("bad BTF magic".into()),
    };
    let r = Reader {
        data: btf,
        big_endian,
    };
    let word = |off: usize| r.u32_at(off).map(|v| v as usize);
    let hdr_len = word(4)?;
    let (type_off, type_len, str_off, str_len) = (word(8)?, word(12)?, word(16)?, word(20)?);
    let range = |off: usize, len: usize| -> Result<(usize, usize), String> {
        let start = hdr_len.checked_add(off).ok_or("BTF offset overflow")?;
        let end = start.checked_add(len).ok_or("BTF offset overflow")?;
        if end > btf.len() {
            return Err("BTF section overruns the data".into());
        }
        Ok((start, end))
    };
    let (types_start, types_end) = range(type_off, type_len)?;
    let (str_start, str_end) = range(str_off, str_len)?;
    let strings = &btf[str_start..str_end];
    let name_at = |off: u32| -> Result<&[u8], String> {
        let rest = strings
            .get(off as usize..)
            .ok_or_else(|| format!("BTF string offset {off} out of range"))?;
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or("unterminated BTF string")?;
        Ok(&rest[..len])
    };

    let mut found: Option<StructModule> = None;
    let mut pos = types_start;
    while pos < types_end {
        let name_off = r.u32_at(pos)?;
        let info = r.u32_at(pos + 4)?;
        let size = r.u32_at(pos + 8)?;
        let kind = (info >> 24) & 0x1f;
        let kind_flag = info >> 31 == 1;
        let vlen = (info & 0xffff) as usize;
        let members = pos + 12;
        pos = members
            .checked_add(trailer_len(kind, vlen)?)
            .filter(|&end| end <= types_end)
            .ok_or("BTF type runs past the type section")?;
        if kind != KIND_STRUCT || name_at(name_off)? != b"module" {
            continue;
        }
        let (mut name, mut init, mut exit) = (None, None, None);
        for m in 0..vlen {
            let at = members + 12 * m;
            let member_name = name_at(r.u32_at(at)?)?;
            let raw = r.u32_at(at + 8)?;
            // with kind_flag, the top 8 bits are a bitfield size
            let bits = if kind_flag { raw & 0x00ff_ffff } else { raw };
            let slot = match member_name {
                b"name" => &mut name,
                b"init" => &mut init,
                b"exit" => &mut exit,
                _ => continue,
            };
            if bits % 8 != 0 {
                return Err("struct module field is not byte-aligned".into());
            }
            *slot = Some(u64::from(bits / 8));
        }
        let layout = StructModule {
            size: u64::from(size),
            name: name.ok_or("struct module has no name field")?,
            init: init.ok_or("struct module has no init field")?,
            exit,
        };
        if found.is_some_and(|f| f != layout) {
            return Err("two different struct module in BTF".into());
        }
        found = Some(layout);
    }
    found.ok_or_else(|| "no struct module in BTF".into())
}
