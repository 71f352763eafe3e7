//! The simulated kernel log (`printk`): lines with their log level, as `dmesg` shows them.

use std::fmt;

/// A printk log level (`include/linux/kern_levels.h`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Level {
    Emerg = 0,
    Alert = 1,
    Crit = 2,
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

/// One line of the kernel log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// The level it was printed at.
    pub level: Level,
    /// The text, without level, timestamp or trailing newline.
    pub text: String,
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>{}", self.level as u8, self.text)
    }
}

/// Log lines in the order they were printed. A message with embedded newlines is stored as one
/// line per newline-separated part, as `dmesg` prints it.
///
/// With a ring ([`KernelLog::with_ring`]) the log holds what printk's ring buffer holds: the
/// oldest lines are dropped to make room, so a flood of messages costs a bounded amount of
/// memory, as on the real kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KernelLog {
    /// The lines; those before `start` were dropped (kept until a compaction).
    lines: Vec<LogLine>,
    start: usize,
    /// Lines dropped (or taken) before `lines[start]`: line numbers go on counting.
    dropped: u64,
    ring: Option<Ring>,
    /// printk's limit on a record's text, in bytes (`None`: unlimited).
    limit: Option<usize>,
    /// A record cut by the limit: it lost its final newline, so readers see it only once the
    /// next record is printed (it stays open, like a `pr_cont` line).
    pending: Vec<LogLine>,
}

/// printk's ring buffer (kernel/printk/printk_ringbuffer.c): a data ring of `2^shift` bytes
/// where a record takes `ALIGN(sizeof(long) + text, sizeof(long))` bytes and never wraps (a
/// record that would cross the end starts again at the beginning), and `2^(shift - 5)`
/// descriptors (`PRB_AVGBITS`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Ring {
    size: u64,
    max_records: usize,
    /// The next record's logical position.
    head: u64,
    /// Each live line's data block (begin, end), oldest first (parallel to `lines[start..]`).
    blocks: std::collections::VecDeque<(u64, u64)>,
}

impl Ring {
    fn new(shift: u32) -> Ring {
        let shift = shift.clamp(12, 25);
        Ring {
            size: 1 << shift,
            max_records: 1 << (shift - 5),
            head: 0,
            blocks: std::collections::VecDeque::new(),
        }
    }

    /// Place a record of `len` text bytes; how many of the oldest records it pushes out.
    fn push(&mut self, len: usize) -> usize {
        let blk = if len == 0 {
            0
        } else {
            (8 + len as u64).next_multiple_of(8).min(self.size)
        };
        let mut begin = self.head;
        if blk > 0 && begin % self.size + blk > self.size {
            begin = begin.next_multiple_of(self.size);
        }
        let end = begin + blk;
        self.head = end;
        let mut out = 0;
        while let Some(&(b, _)) = self.blocks.front() {
            if self.blocks.len() + 1 > self.max_records || end - b > self.size {
                self.blocks.pop_front();
                out += 1;
            } else {
                break;
            }
        }
        self.blocks.push_back((begin, end));
        out
    }
}

impl KernelLog {
    /// An empty log.
    pub fn new() -> Self {
        KernelLog::default()
    }

    /// An empty log whose records are cut at `limit` bytes of text, as printk does (989 bytes
    /// on 6.1, 1021 on 6.12).
    pub fn with_record_limit(limit: usize) -> Self {
        KernelLog {
            limit: Some(limit),
            ..KernelLog::default()
        }
    }

    /// This log, holding only what a printk ring buffer of `2^shift` bytes holds
    /// (`CONFIG_LOG_BUF_SHIFT`; clamped to 12..=25).
    pub fn with_ring(mut self, shift: u32) -> Self {
        let lines = self.take();
        self.dropped -= lines.len() as u64;
        self.ring = Some(Ring::new(shift));
        for l in lines {
            self.push(l);
        }
        self
    }

    fn drop_oldest(&mut self, n: usize) {
        let n = n.min(self.lines.len() - self.start);
        self.start += n;
        self.dropped += n as u64;
        if self.start > 64 && self.start * 2 > self.lines.len() {
            self.lines.drain(..self.start);
            self.start = 0;
        }
    }

    fn push(&mut self, line: LogLine) {
        if let Some(ring) = &mut self.ring {
            let out = ring.push(line.text.len());
            self.drop_oldest(out);
        }
        self.lines.push(line);
    }

    /// Print `text` at `level` (like `printk`); a trailing newline is dropped, inner newlines
    /// split the message into lines. A record longer than the limit is cut there and held back
    /// until the next record (see [`KernelLog::with_record_limit`]).
    pub fn print(&mut self, level: Level, text: impl AsRef<str>) {
        for l in std::mem::take(&mut self.pending) {
            self.push(l);
        }
        let t = text.as_ref();
        let t = t.strip_suffix('\n').unwrap_or(t);
        let cut = self.limit.filter(|&n| t.len() > n);
        let t: String = match cut {
            Some(n) => {
                let mut end = n;
                while !t.is_char_boundary(end) {
                    end -= 1;
                }
                t[..end].to_string()
            }
            None => t.to_string(),
        };
        for part in t.split('\n') {
            let line = LogLine {
                level,
                text: part.to_string(),
            };
            if cut.is_some() {
                self.pending.push(line);
            } else {
                self.push(line);
            }
        }
    }

    /// `pr_err`.
    pub fn err(&mut self, text: impl AsRef<str>) {
        self.print(Level::Err, text);
    }

    /// `pr_warn`.
    pub fn warn(&mut self, text: impl AsRef<str>) {
        self.print(Level::Warning, text);
    }

    /// `pr_notice`.
    pub fn notice(&mut self, text: impl AsRef<str>) {
        self.print(Level::Notice, text);
    }

    /// `pr_info`.
    pub fn info(&mut self, text: impl AsRef<str>) {
        self.print(Level::Info, text);
    }

    /// The lines, oldest first.
    pub fn lines(&self) -> &[LogLine] {
        &self.lines[self.start..]
    }

    /// The number the next line will have: lines are numbered from 0 in the order printed,
    /// whether still held or dropped.
    pub fn next_seq(&self) -> u64 {
        self.dropped + (self.lines.len() - self.start) as u64
    }

    /// The lines still held whose number is `seq` or later.
    pub fn lines_since(&self, seq: u64) -> &[LogLine] {
        let skip = usize::try_from(seq.saturating_sub(self.dropped)).unwrap_or(usize::MAX);
        let held = self.lines();
        &held[skip.min(held.len())..]
    }

    /// The texts, oldest first.
    pub fn texts(&self) -> Vec<String> {
        self.lines().iter().map(|l| l.text.clone()).collect()
    }

    /// Move every line of `other` to the end of this log.
    pub fn append(&mut self, other: &mut KernelLog) {
        for l in other.take() {
            self.push(l);
        }
    }

    /// Remove and return every line.
    pub fn take(&mut self) -> Vec<LogLine> {
        let mut lines = std::mem::take(&mut self.lines);
        lines.drain(..self.start);
        self.dropped += lines.len() as u64;
        self.start = 0;
        if let Some(r) = &mut self.ring {
            r.blocks.clear();
        }
        lines
    }

    /// True if nothing is held.
    pub fn is_empty(&self) -> bool {
        self.lines().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_holds_what_printks_ring_buffer_holds() {
        // 2^12 bytes: 128 descriptors.
        let mut log = KernelLog::new().with_ring(12);
        for i in 0..200 {
            log.info(format!("line {i:4}"));
        }
        assert_eq!(log.lines().len(), 128);
        assert_eq!(log.next_seq(), 200);
        assert_eq!(log.lines()[0].text, "line   72");
        assert_eq!(log.lines_since(190).len(), 10);
        // 1000-byte records take 1008 bytes: four fit in 4096, and a fifth does not cross the
        // end of the ring but starts again at its beginning.
        for _ in 0..9 {
            log.info("x".repeat(1000));
        }
        assert!(
            (3..=4).contains(&log.lines().len()),
            "{}",
            log.lines().len()
        );
        assert_eq!(log.next_seq(), 209);
        let taken = log.take();
        assert!(!taken.is_empty() && log.is_empty());
        assert_eq!(log.next_seq(), 209);
    }

    #[test]
    fn a_record_over_the_limit_is_cut_and_shows_only_after_the_next_one() {
        let mut l = KernelLog::with_record_limit(4);
        l.warn("abcdefg");
        assert!(l.is_empty());
        l.warn("x");
        assert_eq!(l.texts(), vec!["abcd", "x"]);
    }

    #[test]
    fn multi_line_messages_become_one_entry_per_line() {
        let mut l = KernelLog::new();
        l.warn("a\nb\n");
        l.err("c");
        assert_eq!(l.texts(), vec!["a", "b", "c"]);
        assert_eq!(l.lines()[2].level, Level::Err);
    }
}
