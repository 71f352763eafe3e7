//! The simulated kernel address space that modules live in: regions (vmalloc'd module memory,
//! kmalloc'd copies such as `charp` parameter values) at kernel virtual addresses, read and
//! written by address, bounds-checked, under a memory limit.
//!
//! *Invariant:* no access outside a region succeeds; no allocation exceeds the limit (it is
//! `ENOMEM`, as a failed `vmalloc` is in the kernel); nothing here panics on any address or size.

use std::collections::BTreeMap;

use crate::errno::Errno;

/// What a region holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RegionKind {
    /// Module memory (text, data, rodata, init ...), from the module area.
    Module,
    /// A kernel heap object (`kmalloc`), such as a `charp` parameter's copy.
    Heap,
}

/// One allocated range of the address space.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Region {
    /// First address.
    pub base: u64,
    /// The bytes; `bytes.len()` is the region's size.
    pub bytes: Vec<u8>,
    /// What it holds.
    pub kind: RegionKind,
    /// A label for people (`"mp_types: core text"`).
    pub label: String,
}

impl Region {
    /// One past the last address.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.bytes.len() as u64)
    }
}

/// The default memory limit: 1 GiB, the size of the x86_64 module area.
pub const DEFAULT_LIMIT: u64 = 1 << 30;

/// A sparse address space of non-overlapping regions.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Memory {
    regions: BTreeMap<u64, Region>,
    used: u64,
    limit: u64,
    /// The lowest base of a [`RegionKind::Module`] region freed since the last
    /// [`Memory::take_lowest_module_free`] (`u64::MAX`: none).
    lowest_module_free: u64,
}

impl Default for Memory {
    fn default() -> Self {
        Memory::new(DEFAULT_LIMIT)
    }
}

impl Memory {
    /// An empty address space that holds at most `limit` bytes in all.
    pub fn new(limit: u64) -> Self {
        Memory {
            regions: BTreeMap::new(),
            used: 0,
            limit,
            lowest_module_free: u64::MAX,
        }
    }

    /// Bytes allocated now.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The limit set at creation.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Allocate `size` zeroed bytes at `base`. `ENOMEM` when the limit would be exceeded,
    /// `EINVAL` when the range wraps or overlaps an existing region.
    pub fn alloc(
        &mut self,
        base: u64,
        size: u64,
        kind: RegionKind,
        label: impl Into<String>,
    ) -> Result<(), Errno> {
        let end = base.checked_add(size).ok_or(Errno::EINVAL)?;
        if self.used.checked_add(size).is_none_or(|u| u > self.limit) {
            return Err(Errno::ENOMEM);
        }
        if self.overlaps(base, end) {
            return Err(Errno::EINVAL);
        }
        let len = usize::try_from(size).map_err(|_| Errno::ENOMEM)?;
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
        bytes.resize(len, 0);
        self.regions.insert(
            base,
            Region {
                base,
                bytes,
                kind,
                label: label.into(),
            },
        );
        self.used += size;
        Ok(())
    }

    /// True if `[base, end)` overlaps a region.
    pub fn overlaps(&self, base: u64, end: u64) -> bool {
        if let Some((_, r)) = self.regions.range(..end).next_back()
            && r.end() > base
        {
            return true;
        }
        false
    }

    /// Free the region that starts at `base` (no effect if there is none).
    pub fn free(&mut self, base: u64) {
        if let Some(r) = self.regions.remove(&base) {
            self.used = self.used.saturating_sub(r.bytes.len() as u64);
            if r.kind == RegionKind::Module {
                self.lowest_module_free = self.lowest_module_free.min(base);
            }
        }
    }

    /// The lowest base of a module region freed since the last call, if any (the allocator's
    /// search can start there again).
    pub fn take_lowest_module_free(&mut self) -> Option<u64> {
        let low = std::mem::replace(&mut self.lowest_module_free, u64::MAX);
        (low != u64::MAX).then_some(low)
    }

    /// First fit, as vmalloc's `alloc_vmap_area()` searches: the lowest page-aligned address
    /// `a >= from` with `[a, page_align(a + size) + guard)` free of regions and `a + size <=
    /// end`; each region is taken to be followed by its own `guard` bytes. `None` when nothing
    /// fits. `page` must be a power of two.
    pub fn first_fit(&self, from: u64, end: u64, size: u64, page: u64, guard: u64) -> Option<u64> {
        let align = |x: u64| x.checked_add(page - 1).map(|v| v & !(page - 1));
        let mut cand = align(from)?;
        // The region that starts below `from` may reach past it.
        let first = self
            .regions
            .range(..cand)
            .next_back()
            .map_or(cand, |(b, _)| *b);
        for r in self.regions.range(first..).map(|(_, r)| r) {
            let need = align(cand.checked_add(size)?)?.checked_add(guard)?;
            if r.base >= need {
                break;
            }
            if r.end() > cand {
                cand = cand.max(align(r.end())?.checked_add(guard)?);
            }
            if cand >= end {
                return None;
            }
        }
        (cand.checked_add(size)? <= end).then_some(cand)
    }

    /// The region containing `addr`.
    pub fn region_at(&self, addr: u64) -> Option<&Region> {
        self.regions
            .range(..=addr)
            .next_back()
            .map(|(_, r)| r)
            .filter(|r| addr < r.end())
    }

    /// The region that starts at `base`.
    pub fn region(&self, base: u64) -> Option<&Region> {
        self.regions.get(&base)
    }

    /// Every region, by address.
    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.values()
    }

    fn span(&self, addr: u64, len: usize) -> Result<(u64, usize), Errno> {
        let r = self.region_at(addr).ok_or(Errno::EFAULT)?;
        let off = usize::try_from(addr - r.base).map_err(|_| Errno::EFAULT)?;
        let end = off.checked_add(len).ok_or(Errno::EFAULT)?;
        if end > r.bytes.len() {
            return Err(Errno::EFAULT);
        }
        Ok((r.base, off))
    }

    /// `len` bytes at `addr`, all inside one region; `EFAULT` otherwise.
    pub fn read(&self, addr: u64, len: usize) -> Result<&[u8], Errno> {
        let (base, off) = self.span(addr, len)?;
        self.regions
            .get(&base)
            .and_then(|r| r.bytes.get(off..off + len))
            .ok_or(Errno::EFAULT)
    }

    /// Mutable access to `len` bytes at `addr`, all inside one region; `EFAULT` otherwise.
    pub fn slice_mut(&mut self, addr: u64, len: usize) -> Result<&mut [u8], Errno> {
        let (base, off) = self.span(addr, len)?;
        self.regions
            .get_mut(&base)
            .and_then(|r| r.bytes.get_mut(off..off + len))
            .ok_or(Errno::EFAULT)
    }

    /// Write `data` at `addr`, all inside one region; `EFAULT` otherwise.
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.slice_mut(addr, data.len())?.copy_from_slice(data);
        Ok(())
    }

    /// A little-endian `u16` at `addr`.
    pub fn read_u16(&self, addr: u64) -> Result<u16, Errno> {
        let b = self.read(addr, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// A little-endian `u32` at `addr`.
    pub fn read_u32(&self, addr: u64) -> Result<u32, Errno> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.read(addr, 4)?);
        Ok(u32::from_le_bytes(a))
    }

    /// A little-endian `u64` at `addr`.
    pub fn read_u64(&self, addr: u64) -> Result<u64, Errno> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.read(addr, 8)?);
        Ok(u64::from_le_bytes(a))
    }

    /// Write a little-endian `u32` at `addr`.
    pub fn write_u32(&mut self, addr: u64, v: u32) -> Result<(), Errno> {
        self.write(addr, &v.to_le_bytes())
    }

    /// Write a little-endian `u64` at `addr`.
    pub fn write_u64(&mut self, addr: u64, v: u64) -> Result<(), Errno> {
        self.write(addr, &v.to_le_bytes())
    }

    /// The NUL-terminated string at `addr` (without the NUL), at most `max` bytes; `EFAULT` if
    /// it leaves its region before a NUL or is longer than `max`.
    pub fn read_cstr(&self, addr: u64, max: usize) -> Result<&[u8], Errno> {
        let r = self.region_at(addr).ok_or(Errno::EFAULT)?;
        let off = usize::try_from(addr - r.base).map_err(|_| Errno::EFAULT)?;
        let rest = r.bytes.get(off..).ok_or(Errno::EFAULT)?;
        let rest = &rest[..rest.len().min(max.saturating_add(1))];
        let n = rest.iter().position(|&b| b == 0).ok_or(Errno::EFAULT)?;
        Ok(&rest[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_stay_inside_regions() {
        let mut m = Memory::new(1 << 20);
        m.alloc(0x1000, 0x100, RegionKind::Module, "a").unwrap();
        m.write_u64(0x10f8, 0x1122334455667788).unwrap();
        assert_eq!(m.read_u64(0x10f8), Ok(0x1122334455667788));
        assert_eq!(m.read_u64(0x10f9), Err(Errno::EFAULT));
        assert_eq!(m.read(0xfff, 1), Err(Errno::EFAULT));
        assert_eq!(m.read(u64::MAX, 2), Err(Errno::EFAULT));
        assert_eq!(
            m.alloc(0x10ff, 2, RegionKind::Heap, "b"),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            m.alloc(u64::MAX, 2, RegionKind::Heap, "b"),
            Err(Errno::EINVAL)
        );
        m.write(0x1000, b"abc\0").unwrap();
        assert_eq!(m.read_cstr(0x1000, 10), Ok(&b"abc"[..]));
        assert_eq!(m.read_cstr(0x1000, 2), Err(Errno::EFAULT));
    }

    #[test]
    fn the_limit_gives_enomem_not_an_abort() {
        let mut m = Memory::new(4096);
        assert_eq!(
            m.alloc(0, 4097, RegionKind::Module, "x"),
            Err(Errno::ENOMEM)
        );
        assert_eq!(
            m.alloc(0, u64::MAX, RegionKind::Module, "x"),
            Err(Errno::ENOMEM)
        );
        m.alloc(0, 4096, RegionKind::Module, "x").unwrap();
        m.free(0);
        assert_eq!(m.used(), 0);
    }

    #[test]
    fn first_fit_takes_the_lowest_gap_that_holds_the_region_and_its_guard() {
        let mut m = Memory::new(1 << 30);
        let (page, start, end) = (0x1000, 0x10_0000, 0x20_0000);
        assert_eq!(m.first_fit(start, end, 1, page, page), Some(start));
        assert_eq!(
            m.first_fit(start + 1, end, 1, page, page),
            Some(start + page)
        );
        m.alloc(start, 0x1800, RegionKind::Module, "a").unwrap(); // pages 0-1, guard page 2
        m.alloc(start + 0x5000, 0x1000, RegionKind::Module, "b")
            .unwrap(); // page 5, guard 6
        // pages 3-4 are free: one page with its guard fits, two do not
        assert_eq!(
            m.first_fit(start, end, 0x1000, page, page),
            Some(start + 0x3000)
        );
        assert_eq!(
            m.first_fit(start, end, 0x1001, page, page),
            Some(start + 0x7000)
        );
        assert_eq!(m.first_fit(start, start + 0x7000, 0x1001, page, page), None);
        assert_eq!(
            m.first_fit(u64::MAX - 0x1000, u64::MAX, 0x2000, page, page),
            None
        );
        assert_eq!(m.first_fit(start, end, u64::MAX, page, page), None);
        assert_eq!(m.take_lowest_module_free(), None);
        m.free(start);
        assert_eq!(m.take_lowest_module_free(), Some(start));
        assert_eq!(m.take_lowest_module_free(), None);
        assert_eq!(m.first_fit(start, end, 0x2000, page, page), Some(start));
    }
}
