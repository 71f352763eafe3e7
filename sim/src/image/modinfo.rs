//! `.modinfo`: the `tag=value` strings of a module, read as the kernel's `get_modinfo()` reads
//! them.

use super::{cstr_at, decode_bytes};

/// One `tag=value` string of `.modinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModInfoEntry {
    /// The tag (before the first `=`), as text.
    pub key: String,
    /// The value (after the first `=`, up to NUL), as text.
    pub value: String,
    /// The tag's bytes (what the kernel compares).
    pub key_bytes: Vec<u8>,
    /// The value's bytes.
    pub value_bytes: Vec<u8>,
}

/// The `.modinfo` strings of a module, in file order.
///
/// Built by walking the section as `get_next_modinfo()`/`next_string()` in
/// kernel/module/main.c do: from the section start, each string up to its NUL, then any NUL
/// padding, until the section's size runs out. A string without `=` can match no tag, so it is
/// not kept. The last string may run past the end of the section (the kernel reads on until a
/// NUL); the model reads on up to the end of the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    entries: Vec<ModInfoEntry>,
}

impl ModInfo {
    /// No strings (a module without `.modinfo`). Cannot fail.
    pub fn empty() -> ModInfo {
        ModInfo::default()
    }

    /// Walks `size` bytes at `offset` of `image` (the module image, bounded by its `len`) as
    /// `get_next_modinfo()` does. Bytes outside `image` read as NUL. Cannot fail; at most one
    /// entry per byte of the section.
    pub fn parse(image: &[u8], offset: u64, size: u64) -> ModInfo {
        let mut entries = Vec::new();
        let byte = |q: usize| image.get(q).copied().unwrap_or(0);
        let Ok(mut p) = usize::try_from(offset) else {
            return ModInfo { entries };
        };
        let mut left = size;
        // `(*secsize)-- <= 1`: compare, then decrement.
        let step = |left: &mut u64| {
            let old = *left;
            *left = left.wrapping_sub(1);
            old > 1
        };
        'walk: while let Some(s) = cstr_at(image, p as u64) {
            if let Some(eq) = s.iter().position(|&b| b == b'=') {
                let (k, v) = (&s[..eq], &s[eq + 1..]);
                entries.push(ModInfoEntry {
                    key: decode_bytes(k),
                    value: decode_bytes(v),
                    key_bytes: k.to_vec(),
                    value_bytes: v.to_vec(),
                });
            }
            // next_string(): skip the string, then the NUL padding; past the end of the image
            // everything reads as NUL, so the walk can only end there.
            while byte(p) != 0 {
                p += 1;
                if !step(&mut left) || p >= image.len() {
                    break 'walk;
                }
            }
            while byte(p) == 0 {
                p += 1;
                if !step(&mut left) || p >= image.len() {
                    break 'walk;
                }
            }
        }
        ModInfo { entries }
    }

    /// Builds the strings from `(tag, value)` pairs (for tests and tools); [`ModInfo::to_bytes`]
    /// gives the section bytes back. Cannot fail.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ModInfo {
        ModInfo {
            entries: pairs
                .into_iter()
                .map(|(k, v)| ModInfoEntry {
                    key: k.to_owned(),
                    value: v.to_owned(),
                    key_bytes: k.as_bytes().to_vec(),
                    value_bytes: v.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    /// The section bytes: each `tag=value` followed by a NUL. Cannot fail.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.entries {
            out.extend_from_slice(&e.key_bytes);
            out.push(b'=');
            out.extend_from_slice(&e.value_bytes);
            out.push(0);
        }
        out
    }

    /// The first value of `tag` (the kernel's `get_modinfo(info, tag)`), `None` when absent.
    /// Cannot fail.
    pub fn get(&self, tag: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.key_bytes == tag.as_bytes())
            .map(|e| e.value.as_str())
    }

    /// The bytes of the first value of `tag`. Cannot fail.
    pub fn get_bytes(&self, tag: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|e| e.key_bytes == tag.as_bytes())
            .map(|e| e.value_bytes.as_slice())
    }

    /// Every value of `tag`, in file order (the kernel's `get_next_modinfo()` loop). Cannot
    /// fail.
    pub fn get_all(&self, tag: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| e.key_bytes == tag.as_bytes())
            .map(|e| e.value.as_str())
            .collect()
    }

    /// All entries, in file order. Cannot fail.
    pub fn entries(&self) -> &[ModInfoEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_returns_the_first_value_and_get_all_every_value_in_order() {
        let sec = b"\0\0license=GPL\0depends=\0alias=a\0\0\0alias=b\0name=x=y\0junk\0";
        let mi = ModInfo::parse(sec, 0, sec.len() as u64);
        assert_eq!(mi.get("license"), Some("GPL"));
        assert_eq!(mi.get("depends"), Some(""));
        assert_eq!(mi.get("name"), Some("x=y"));
        assert_eq!(mi.get_all("alias"), ["a", "b"]);
        assert_eq!(mi.get("junk"), None);
        assert_eq!(mi.get("alia"), None);
    }

    #[test]
    fn the_walk_stops_where_the_section_size_runs_out() {
        // the kernel's size counter ends the walk inside "b=2": it is never reached
        let img = b"a=1\0b=2\0";
        assert_eq!(ModInfo::parse(img, 0, 4).get("b"), None);
        assert_eq!(ModInfo::parse(img, 0, 5).get("b"), Some("2"));
        // an empty section still looks at its first string (size 0: next_string gives NULL)
        assert_eq!(ModInfo::parse(img, 0, 0).get("a"), Some("1"));
    }

    #[test]
    fn an_unterminated_last_string_reads_on_to_the_end_of_the_image() {
        let img = b"name=abcdef";
        assert_eq!(ModInfo::parse(img, 0, 6).get("name"), Some("abcdef"));
        assert_eq!(ModInfo::parse(img, 100, 6), ModInfo::empty());
    }

    #[test]
    fn pairs_round_trip_through_bytes() {
        let mi = ModInfo::from_pairs([("name", "m"), ("vermagic", "6.1.0 SMP ")]);
        let b = mi.to_bytes();
        assert_eq!(ModInfo::parse(&b, 0, b.len() as u64), mi);
    }
}
