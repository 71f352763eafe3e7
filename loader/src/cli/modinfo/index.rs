//! kmod's binary index files (`modules.dep.bin`, `modules.alias.bin`, `modules.symbols.bin`,
//! `modules.builtin.bin`, `modules.builtin.alias.bin`, written by depmod) and the two searches
//! libkmod runs on them: the exact one (`index_search`) and the one where the stored keys are
//! `fnmatch(3)` patterns (`index_searchwild`), with libkmod's result order.
//!
//! The format (libkmod-index.c): a big-endian header `magic 0xB007F457, version 0x0002xxxx,
//! root offset`, then nodes of a radix tree. A node offset's high nibble says what the node has:
//! a NUL-terminated prefix (`0x8`), values (`0x4`), children (`0x2`); children are a `first` and a
//! `last` byte and one 32-bit offset per byte in between; values are a count, then a priority and
//! a NUL-terminated string each. Reads past the end of the file yield nothing (kmod's own reader
//! has no error handling there).

use super::fnmatch::fnmatch;

const MAGIC: u32 = 0xB007_F457;
const VERSION_MAJOR: u32 = 0x0002;
const NODE_PREFIX: u32 = 0x8000_0000;
const NODE_VALUES: u32 = 0x4000_0000;
const NODE_CHILDS: u32 = 0x2000_0000;
const NODE_MASK: u32 = 0x0FFF_FFFF;

/// A value stored under a key, with its priority (lower first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Value {
    /// The priority depmod gave it (its order in the text file).
    pub priority: u32,
    /// The value (a module name, or a `modules.dep` line).
    pub value: Vec<u8>,
}

/// An index file in memory.
pub(crate) struct Index {
    data: Vec<u8>,
    root: u32,
}

/// One node of the tree.
struct Node {
    prefix: Vec<u8>,
    first: u8,
    last: u8,
    children: Vec<u32>,
    values: Vec<Value>,
}

/// libkmod's `add_value`: keep the list sorted by priority, a new value going before the ones
/// of equal priority.
fn add_value(values: &mut Vec<Value>, v: Value) {
    let at = values
        .iter()
        .position(|x| x.priority >= v.priority)
        .unwrap_or(values.len());
    values.insert(at, v);
}

impl Index {
    /// The index in `data`, `None` when the header is not an index of a version kmod reads.
    pub(crate) fn parse(data: Vec<u8>) -> Option<Index> {
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
        };
        if word(0)? != MAGIC || word(4)? >> 16 != VERSION_MAJOR {
            return None;
        }
        let root = word(8)?;
        Some(Index { data, root })
    }

    fn u32_at(&self, pos: &mut usize) -> u32 {
        let v = self
            .data
            .get(*pos..*pos + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_be_bytes);
        *pos += 4;
        v
    }

    fn cstr_at(&self, pos: &mut usize) -> Vec<u8> {
        let rest = self.data.get(*pos..).unwrap_or_default();
        let s = rest.split(|&b| b == 0).next().unwrap_or(rest);
        *pos += s.len() + 1;
        s.to_vec()
    }

    fn read(&self, offset: u32) -> Option<Node> {
        let off = offset & NODE_MASK;
        if off == 0 {
            return None;
        }
        let mut pos = off as usize;
        let prefix = if offset & NODE_PREFIX != 0 {
            self.cstr_at(&mut pos)
        } else {
            Vec::new()
        };
        let (mut first, mut last, mut children) = (128u8, 0u8, Vec::new());
        if offset & NODE_CHILDS != 0 {
            first = self.data.get(pos).copied().unwrap_or(0);
            last = self.data.get(pos + 1).copied().unwrap_or(0);
            pos += 2;
            // kmod computes the count with signed chars; bytes above 0x7f never name a child.
            let count = i32::from(last as i8) - i32::from(first as i8) + 1;
            for _ in 0..count.max(0) {
                children.push(self.u32_at(&mut pos));
            }
        }
        let mut values = Vec::new();
        if offset & NODE_VALUES != 0 {
            let count = self.u32_at(&mut pos);
            for _ in 0..count {
                if pos >= self.data.len() {
                    break;
                }
                let priority = self.u32_at(&mut pos);
                let value = self.cstr_at(&mut pos);
                add_value(&mut values, Value { priority, value });
            }
        }
        Some(Node {
            prefix,
            first,
            last,
            children,
            values,
        })
    }

    /// `index_readchild`: the child under byte `ch` (a byte above 0x7f is a negative `char` in
    /// kmod and never matches).
    fn child(&self, node: &Node, ch: u8) -> Option<Node> {
        if ch > 0x7f || ch < node.first || ch > node.last {
            return None;
        }
        let off = *node.children.get(usize::from(ch - node.first))?;
        self.read(off)
    }

    /// `index_search`: the first value stored under exactly `key`.
    pub(crate) fn search(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut node = self.read(self.root);
        let mut i = 0usize;
        while let Some(n) = node {
            for (j, &ch) in n.prefix.iter().enumerate() {
                if key.get(i + j) != Some(&ch) {
                    return None;
                }
            }
            i += n.prefix.len();
            let Some(&c) = key.get(i) else {
                return n.values.into_iter().next().map(|v| v.value);
            };
            node = self.child(&n, c);
            i += 1;
        }
        None
    }

    /// `index_searchwild`: the values of every stored key (a pattern) that matches `key`.
    pub(crate) fn search_wild(&self, key: &[u8]) -> Vec<Value> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        self.wild_node(self.read(self.root), &mut buf, key, 0, &mut out);
        out
    }

    fn wild_node(
        &self,
        mut node: Option<Node>,
        buf: &mut Vec<u8>,
        key: &[u8],
        mut i: usize,
        out: &mut Vec<Value>,
    ) {
        while let Some(n) = node {
            for (j, &ch) in n.prefix.iter().enumerate() {
                if ch == b'*' || ch == b'?' || ch == b'[' {
                    let sub = key.get(i + j..).unwrap_or_default();
                    self.wild_all(n, j, buf, sub, out);
                    return;
                }
                if key.get(i + j) != Some(&ch) {
                    return;
                }
            }
            i += n.prefix.len();
            let sub = key.get(i..).unwrap_or_default();
            for w in [b'*', b'?', b'['] {
                if let Some(child) = self.child(&n, w) {
                    buf.push(w);
                    self.wild_all(child, 0, buf, sub, out);
                    buf.pop();
                }
            }
            let Some(&c) = key.get(i) else {
                for v in n.values {
                    add_value(out, v);
                }
                return;
            };
            node = self.child(&n, c);
            i += 1;
        }
    }

    /// `index_searchwild__all`: every key under `node` (the pattern so far in `buf`, then the
    /// node's prefix from `j`) that matches `subkey`.
    fn wild_all(
        &self,
        node: Node,
        j: usize,
        buf: &mut Vec<u8>,
        subkey: &[u8],
        out: &mut Vec<Value>,
    ) {
        let pushed = node.prefix.len().saturating_sub(j);
        buf.extend_from_slice(node.prefix.get(j..).unwrap_or_default());
        if node.first <= node.last {
            for ch in node.first..=node.last {
                if let Some(child) = self.child(&node, ch) {
                    buf.push(ch);
                    self.wild_all(child, 0, buf, subkey, out);
                    buf.pop();
                }
            }
        }
        if !node.values.is_empty() && fnmatch(buf, subkey) {
            for v in node.values {
                add_value(out, v);
            }
        }
        buf.truncate(buf.len().saturating_sub(pushed));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A hand-built index: keys "ab" -> [x], "a*" -> [y (prio 1), z (prio 0)].
    fn sample() -> Index {
        let mut d = Vec::new();
        d.extend_from_slice(&MAGIC.to_be_bytes());
        d.extend_from_slice(&0x0002_0001u32.to_be_bytes());
        d.extend_from_slice(&0u32.to_be_bytes()); // root, patched below
        // Leaf "b" (under 'b'): values [x].
        let leaf_b = d.len() as u32;
        d.extend_from_slice(&1u32.to_be_bytes());
        d.extend_from_slice(&0u32.to_be_bytes());
        d.extend_from_slice(b"x\0");
        // Leaf under '*': values [y prio 1, z prio 0].
        let leaf_star = d.len() as u32;
        d.extend_from_slice(&2u32.to_be_bytes());
        d.extend_from_slice(&1u32.to_be_bytes());
        d.extend_from_slice(b"y\0");
        d.extend_from_slice(&0u32.to_be_bytes());
        d.extend_from_slice(b"z\0");
        // Root: prefix "a", children '*'..'b'.
        let root = d.len() as u32;
        d.extend_from_slice(b"a\0");
        d.push(b'*');
        d.push(b'b');
        for ch in b'*'..=b'b' {
            let off = match ch {
                b'*' => leaf_star | NODE_VALUES,
                b'b' => leaf_b | NODE_VALUES,
                _ => 0,
            };
            d.extend_from_slice(&off.to_be_bytes());
        }
        let r = (root | NODE_PREFIX | NODE_CHILDS).to_be_bytes();
        d[8..12].copy_from_slice(&r);
        Index::parse(d).unwrap()
    }

    #[test]
    fn exact_and_wild() {
        let idx = sample();
        assert_eq!(idx.search(b"ab"), Some(b"x".to_vec()));
        assert_eq!(idx.search(b"a"), None);
        assert_eq!(idx.search(b"ac"), None);
        let names = |v: Vec<Value>| -> Vec<String> {
            v.into_iter()
                .map(|v| String::from_utf8(v.value).unwrap())
                .collect()
        };
        // The exact key's value goes before the pattern's of equal priority (kmod's `add_value`).
        assert_eq!(names(idx.search_wild(b"ab")), ["x", "z", "y"]);
        assert_eq!(names(idx.search_wild(b"aq")), ["z", "y"]);
        assert!(idx.search_wild(b"b").is_empty());
    }

    #[test]
    fn refuses_other_files() {
        assert!(Index::parse(b"not an index".to_vec()).is_none());
        assert!(Index::parse(Vec::new()).is_none());
    }
}
