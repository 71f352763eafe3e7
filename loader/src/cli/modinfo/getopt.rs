//! GNU `getopt_long` as glibc implements it, for kmod's command lines: argument permutation
//! (options may follow operands), `--` ending the options, clustered short options (`-0F x`,
//! `-Fx`), long options with `=VALUE` or a separate value, unique abbreviations of long options
//! (`--auth`), and glibc's error messages on stderr. `POSIXLY_CORRECT` in the environment stops
//! option parsing at the first operand, as in glibc.

use std::io::Write;

/// A short option: its letter and whether it takes a value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Short {
    /// The option letter.
    pub letter: u8,
    /// Whether the option needs a value (`F:`).
    pub has_arg: bool,
}

/// A long option: its name, whether it takes a value, and the short option letter it stands for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Long {
    /// The name without the leading `--`.
    pub name: &'static str,
    /// Whether the option needs a value.
    pub has_arg: bool,
    /// The letter `getopt_long` returns for it.
    pub val: u8,
}

/// What [`Getopt::next_opt`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// An option (its letter) with its value, if it takes one.
    Opt(u8, Option<Vec<u8>>),
    /// A malformed option; the message is already written (getopt's `'?'`).
    Error,
}

/// An option parser over `argv` (`argv[0]` is the program name, used in messages).
pub(crate) struct Getopt<'a> {
    argv: &'a [Vec<u8>],
    shorts: &'a [Short],
    longs: &'a [Long],
    /// The next element of `argv` to look at.
    optind: usize,
    /// The rest of a cluster of short options being read (`-0p` after `0`).
    cluster: Vec<u8>,
    /// Operands seen so far (permutation moves them behind the options).
    operands: Vec<Vec<u8>>,
    /// Stop at the first operand (`POSIXLY_CORRECT`).
    require_order: bool,
    done: bool,
}

impl<'a> Getopt<'a> {
    /// A parser for `argv` with the given options.
    pub(crate) fn new(argv: &'a [Vec<u8>], shorts: &'a [Short], longs: &'a [Long]) -> Self {
        Getopt {
            argv,
            shorts,
            longs,
            optind: 1,
            cluster: Vec::new(),
            operands: Vec::new(),
            require_order: std::env::var_os("POSIXLY_CORRECT").is_some(),
            done: false,
        }
    }

    fn prog(&self) -> String {
        String::from_utf8_lossy(self.argv.first().map_or(&[][..], |a| a.as_slice())).into_owned()
    }

    /// The next option, `None` when there are no more (then [`Getopt::operands`] are the rest).
    pub(crate) fn next_opt(&mut self, err: &mut dyn Write) -> Option<Found> {
        if !self.cluster.is_empty() {
            return Some(self.short_option(err));
        }
        while !self.done {
            let Some(arg) = self.argv.get(self.optind) else {
                self.done = true;
                break;
            };
            if arg.as_slice() == b"--" {
                self.optind += 1;
                self.finish();
                break;
            }
            if arg.len() < 2 || arg.first() != Some(&b'-') {
                if self.require_order {
                    self.finish();
                    break;
                }
                self.operands.push(arg.clone());
                self.optind += 1;
                continue;
            }
            self.optind += 1;
            if let Some(long) = arg.strip_prefix(b"--") {
                return Some(self.long_option(long, err));
            }
            self.cluster = arg.get(1..).unwrap_or_default().to_vec();
            return Some(self.short_option(err));
        }
        None
    }

    /// Everything from `optind` on is an operand.
    fn finish(&mut self) {
        self.operands
            .extend(self.argv.iter().skip(self.optind).cloned());
        self.optind = self.argv.len();
        self.done = true;
    }

    /// The operands, in order (call after [`Getopt::next_opt`] returned `None`).
    pub(crate) fn operands(self) -> Vec<Vec<u8>> {
        self.operands
    }

    fn short_option(&mut self, err: &mut dyn Write) -> Found {
        let Some((&c, rest)) = self.cluster.split_first() else {
            return Found::Error;
        };
        let rest = rest.to_vec();
        self.cluster.clear();
        let Some(opt) = self.shorts.iter().find(|s| s.letter == c) else {
            let _ = writeln!(err, "{}: invalid option -- '{}'", self.prog(), c as char);
            self.cluster = rest;
            return Found::Error;
        };
        if !opt.has_arg {
            self.cluster = rest;
            return Found::Opt(c, None);
        }
        if !rest.is_empty() {
            return Found::Opt(c, Some(rest));
        }
        match self.argv.get(self.optind) {
            Some(v) => {
                self.optind += 1;
                Found::Opt(c, Some(v.clone()))
            }
            None => {
                let _ = writeln!(
                    err,
                    "{}: option requires an argument -- '{}'",
                    self.prog(),
                    c as char
                );
                Found::Error
            }
        }
    }

    fn long_option(&mut self, text: &[u8], err: &mut dyn Write) -> Found {
        let (name, value) = match text.iter().position(|&b| b == b'=') {
            Some(i) => (
                text.get(..i).unwrap_or_default(),
                Some(text.get(i + 1..).unwrap_or_default()),
            ),
            None => (text, None),
        };
        let shown = String::from_utf8_lossy(text);
        let exact = self.longs.iter().find(|l| l.name.as_bytes() == name);
        let found = match exact {
            Some(l) => *l,
            None => {
                let matches: Vec<&Long> = self
                    .longs
                    .iter()
                    .filter(|l| l.name.as_bytes().starts_with(name))
                    .collect();
                let Some(&&first) = matches.first() else {
                    let _ = writeln!(err, "{}: unrecognized option '--{shown}'", self.prog());
                    return Found::Error;
                };
                let ambiguous = matches
                    .iter()
                    .any(|l| l.has_arg != first.has_arg || l.val != first.val);
                if ambiguous {
                    let mut msg = format!(
                        "{}: option '--{shown}' is ambiguous; possibilities:",
                        self.prog()
                    );
                    for l in &matches {
                        msg.push_str(&format!(" '--{}'", l.name));
                    }
                    let _ = writeln!(err, "{msg}");
                    return Found::Error;
                }
                first
            }
        };
        match (found.has_arg, value) {
            (true, Some(v)) => Found::Opt(found.val, Some(v.to_vec())),
            (false, Some(_)) => {
                let _ = writeln!(
                    err,
                    "{}: option '--{}' doesn't allow an argument",
                    self.prog(),
                    found.name
                );
                Found::Error
            }
            (false, None) => Found::Opt(found.val, None),
            (true, None) => match self.argv.get(self.optind) {
                Some(v) => {
                    self.optind += 1;
                    Found::Opt(found.val, Some(v.clone()))
                }
                None => {
                    let _ = writeln!(
                        err,
                        "{}: option '--{}' requires an argument",
                        self.prog(),
                        found.name
                    );
                    Found::Error
                }
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const SHORTS: [Short; 3] = [
        Short {
            letter: b'a',
            has_arg: false,
        },
        Short {
            letter: b'0',
            has_arg: false,
        },
        Short {
            letter: b'F',
            has_arg: true,
        },
    ];
    const LONGS: [Long; 4] = [
        Long {
            name: "author",
            has_arg: false,
            val: b'a',
        },
        Long {
            name: "filename",
            has_arg: false,
            val: b'n',
        },
        Long {
            name: "null",
            has_arg: false,
            val: b'0',
        },
        Long {
            name: "field",
            has_arg: true,
            val: b'F',
        },
    ];

    fn parse(args: &[&str]) -> (Vec<Found>, Vec<String>, String) {
        let argv: Vec<Vec<u8>> = std::iter::once("prog")
            .chain(args.iter().copied())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let mut g = Getopt::new(&argv, &SHORTS, &LONGS);
        g.require_order = false;
        let mut err = Vec::new();
        let mut found = Vec::new();
        while let Some(f) = g.next_opt(&mut err) {
            found.push(f);
        }
        let ops = g
            .operands()
            .into_iter()
            .map(|o| String::from_utf8(o).unwrap())
            .collect();
        (found, ops, String::from_utf8(err).unwrap())
    }

    #[test]
    fn permutes_and_clusters() {
        let (f, ops, err) = parse(&["x.ko", "-0aFvermagic", "y", "-F", "-0", "--", "-a"]);
        assert_eq!(
            f,
            [
                Found::Opt(b'0', None),
                Found::Opt(b'a', None),
                Found::Opt(b'F', Some(b"vermagic".to_vec())),
                Found::Opt(b'F', Some(b"-0".to_vec())),
            ]
        );
        assert_eq!(ops, ["x.ko", "y", "-a"]);
        assert_eq!(err, "");
    }

    #[test]
    fn long_options_and_abbreviations() {
        let (f, _, err) = parse(&["--auth", "--field=x", "--fie", "y", "--nu"]);
        assert_eq!(
            f,
            [
                Found::Opt(b'a', None),
                Found::Opt(b'F', Some(b"x".to_vec())),
                Found::Opt(b'F', Some(b"y".to_vec())),
                Found::Opt(b'0', None),
            ]
        );
        assert_eq!(err, "");
    }

    #[test]
    fn glibc_messages() {
        let cases = [
            (vec!["-x"], "prog: invalid option -- 'x'\n"),
            (vec!["-F"], "prog: option requires an argument -- 'F'\n"),
            (vec!["--foo=1"], "prog: unrecognized option '--foo=1'\n"),
            (
                vec!["--f"],
                "prog: option '--f' is ambiguous; possibilities: '--filename' '--field'\n",
            ),
            (
                vec!["--author=1"],
                "prog: option '--author' doesn't allow an argument\n",
            ),
            (
                vec!["--field"],
                "prog: option '--field' requires an argument\n",
            ),
        ];
        for (args, want) in cases {
            let (f, _, err) = parse(&args);
            assert_eq!(f.first(), Some(&Found::Error), "{args:?}");
            assert_eq!(err, want, "{args:?}");
        }
    }

    #[test]
    fn lone_dash_is_an_operand() {
        let (f, ops, _) = parse(&["-", "-a"]);
        assert_eq!(f, [Found::Opt(b'a', None)]);
        assert_eq!(ops, ["-"]);
    }
}
