//! The simulated kernel log (`printk`): lines with their log level, as `dmesg` shows them.

use std::fmt;

/// A printk log level (`include/linux/kern_levels.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelLog {
    lines: Vec<LogLine>,
    /// printk's limit on a record's text, in bytes (`None`: unlimited).
    limit: Option<usize>,
    /// A record cut by the limit: it lost its final newline, so readers see it only once the
    /// next record is printed (it stays open, like a `pr_cont` line).
    pending: Vec<LogLine>,
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

    /// Print `text` at `level` (like `printk`); a trailing newline is dropped, inner newlines
    /// split the message into lines. A record longer than the limit is cut there and held back
    /// until the next record (see [`KernelLog::with_record_limit`]).
    pub fn print(&mut self, level: Level, text: impl AsRef<str>) {
        self.lines.append(&mut self.pending);
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
        let target = if cut.is_some() {
            &mut self.pending
        } else {
            &mut self.lines
        };
        for part in t.split('\n') {
            target.push(LogLine {
                level,
                text: part.to_string(),
            });
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
        &self.lines
    }

    /// The texts, oldest first.
    pub fn texts(&self) -> Vec<String> {
        self.lines.iter().map(|l| l.text.clone()).collect()
    }

    /// Move every line of `other` to the end of this log.
    pub fn append(&mut self, other: &mut KernelLog) {
        self.lines.append(&mut other.lines);
    }

    /// Remove and return every line.
    pub fn take(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.lines)
    }

    /// True if nothing was printed.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
