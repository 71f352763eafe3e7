//! `modloader shell`: one kernel across many commands. The simulator lives in this process, so
//! a sequence of `insmod`, `rmmod`, `lsmod` only makes sense inside one session: the shell keeps
//! the machine and offers the tools and the files a person would look at (`dmesg`,
//! `cat /proc/modules`, `cat /sys/module/<m>/...`, `ls /sys/module`). Interactive input gets
//! line editing and history (`rustyline`); piped input is read line by line, so sessions can
//! be scripted and tested.

use std::io::{BufRead, Read, Write};

use crate::cli::{Console, Machine};

/// What the shell understands, for `help`.
pub const HELP: &str = "\
commands (one kernel for the whole session):
  insmod [-f] FILE [PARAM=VALUE...]   load a module (kmod's insmod)
  rmmod [-f] NAME...                  unload modules (kmod's rmmod)
  lsmod                               list loaded modules (kmod's lsmod)
  dmesg [-c]                          the kernel log (-c: and clear it)
  cat /proc/modules | /proc/sys/kernel/tainted | /sys/module/M/{initstate,taint,refcnt}
  cat /sys/module/M/parameters/P      a parameter's value
  ls /sys/module | /sys/module/M | /sys/module/M/parameters | /sys/module/M/holders
  help, exit
";

/// Split a command line into words: whitespace separates, double or single quotes group, a
/// backslash escapes the next character (outside single quotes).
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => match chars.next() {
                Some(n) => {
                    cur.push(n);
                    in_word = true;
                }
                None => return Err("a line may not end with a backslash".into()),
            },
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// A `/sys/module/...` or `/proc/...` file's content on the machine, as `cat` shows it.
fn cat(machine: &Machine, path: &str) -> Result<String, String> {
    let backend = machine.backend()?;
    let modules = backend.modules().map_err(|e| e.to_string())?;
    let nofile = || format!("cat: {path}: No such file or directory");
    match path {
        "/proc/modules" => {
            return Ok(modules
                .values()
                .map(|m| format!("{}\n", m.proc_modules))
                .collect());
        }
        "/proc/sys/kernel/tainted" => {
            return Ok(format!(
                "{}\n",
                backend.kernel_tainted().map_err(|e| e.to_string())?
            ));
        }
        _ => {}
    }
    let rest = path.strip_prefix("/sys/module/").ok_or_else(nofile)?;
    let mut parts = rest.splitn(3, '/');
    let (name, what, param) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next(),
    );
    let m = modules.get(name).ok_or_else(nofile)?;
    match (what, param) {
        ("initstate", None) => Ok(format!("{}\n", m.initstate)),
        ("taint", None) => Ok(format!("{}\n", m.taint)),
        ("refcnt", None) => Ok(format!("{}\n", m.refcnt)),
        ("parameters", Some(p)) => m.params.get(p).map(|v| format!("{v}\n")).ok_or_else(nofile),
        _ => Err(nofile()),
    }
}

fn ls(machine: &Machine, path: &str) -> Result<String, String> {
    let backend = machine.backend()?;
    let modules = backend.modules().map_err(|e| e.to_string())?;
    let nofile = || format!("ls: cannot access '{path}': No such file or directory");
    let path = path.trim_end_matches('/');
    if path == "/sys/module" {
        let mut names: Vec<&String> = modules.keys().collect();
        names.sort();
        return Ok(names.iter().map(|n| format!("{n}\n")).collect());
    }
    let rest = path.strip_prefix("/sys/module/").ok_or_else(nofile)?;
    let (name, sub) = rest.split_once('/').unwrap_or((rest, ""));
    let m = modules.get(name).ok_or_else(nofile)?;
    let list: Vec<String> = match sub {
        "" => ["holders", "initstate", "parameters", "refcnt", "taint"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "parameters" => m.params.keys().cloned().collect(),
        "holders" => m.holders.clone(),
        _ => return Err(nofile()),
    };
    Ok(list.iter().map(|n| format!("{n}\n")).collect())
}

/// Run one command line; returns false for `exit`.
pub fn command(
    machine: &mut Machine,
    line: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> bool {
    let words = match split_words(line) {
        Ok(w) => w,
        Err(e) => {
            let _ = writeln!(err, "shell: {e}");
            return true;
        }
    };
    let Some((cmd, args)) = words.split_first() else {
        return true;
    };
    let os: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    let r: Result<String, String> = match cmd.as_str() {
        "exit" | "quit" => return false,
        "help" => Ok(HELP.to_string()),
        "insmod" | "rmmod" | "lsmod" => {
            let mut con = Console::new(cmd, out, err);
            let _ = match cmd.as_str() {
                "insmod" => crate::cli::insmod::run(&os, machine, &mut con),
                "rmmod" => crate::cli::rmmod::run(&os, machine, &mut con),
                _ => crate::cli::lsmod::run(&os, machine, &mut con),
            };
            return true;
        }
        "dmesg" => {
            let clear = args.iter().any(|a| a == "-c");
            match machine {
                Machine::Sim(b) => {
                    let text: String = b
                        .kernel()
                        .log()
                        .iter()
                        .map(|l| format!("{}\n", l.text))
                        .collect();
                    if clear {
                        b.kernel_mut().take_log();
                    }
                    Ok(text)
                }
                _ => match machine.backend_mut() {
                    Ok(b) => b
                        .take_log()
                        .map(|l| l.iter().map(|x| format!("{x}\n")).collect())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                },
            }
        }
        "cat" => args.iter().map(|p| cat(machine, p)).collect(),
        "ls" => ls(machine, args.first().map_or("/sys/module", String::as_str)),
        other => Err(format!("shell: {other}: unknown command (try help)")),
    };
    match r {
        Ok(text) => {
            let _ = out.write_all(text.as_bytes());
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
        }
    }
    true
}

/// The longest command line [`run_lines`] reads; at a longer one it stops.
pub const MAX_LINE: u64 = 1 << 20;

/// Read commands from `input` until end of input or `exit` (no prompt: scripted use). A line
/// longer than [`MAX_LINE`] bytes (`< /dev/zero`) ends the input with a message on `err`;
/// bytes that are not UTF-8 are read as U+FFFD.
pub fn run_lines(
    machine: &mut Machine,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut *input).take(MAX_LINE + 1).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) if buf.len() as u64 > MAX_LINE && buf.last() != Some(&b'\n') => {
                let _ = writeln!(
                    err,
                    "modloader: shell: a line longer than {MAX_LINE} bytes: input ignored from there"
                );
                return;
            }
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                if !command(machine, line.trim_end_matches(['\n', '\r']), out, err) {
                    return;
                }
            }
        }
    }
}

/// The interactive shell with line editing and history (kept in `$HOME/.modloader_history`).
pub fn run_interactive(machine: &mut Machine, prompt: &str) -> Result<(), String> {
    let mut rl = rustyline::DefaultEditor::new().map_err(|e| e.to_string())?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".modloader_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    loop {
        match rl.readline(prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                if !command(machine, &line, &mut stdout.lock(), &mut stderr.lock()) {
                    break;
                }
            }
            Err(
                rustyline::error::ReadlineError::Eof | rustyline::error::ReadlineError::Interrupted,
            ) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim_backend::SimBackend;

    /// `modloader shell < /dev/zero` once grew one line until the allocation failed: input
    /// that never ends a line stops at MAX_LINE with one message.
    #[test]
    fn a_line_without_end_stops_the_input() {
        let mut m = Machine::Sim(Box::new(SimBackend::builtin("debian-6.1-amd64").unwrap()));
        let zeros = std::io::repeat(0).take(64 * MAX_LINE);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        run_lines(
            &mut m,
            &mut std::io::BufReader::new(zeros),
            &mut out,
            &mut err,
        );
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("a line longer than 1048576 bytes"), "{err}");
        // a line of exactly MAX_LINE bytes is still a command
        let long = format!("{}\nlsmod\n", "x".repeat(MAX_LINE as usize));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        run_lines(&mut m, &mut long.as_bytes(), &mut out, &mut err);
        assert!(String::from_utf8(out).unwrap().starts_with("Module"));
    }

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"insmod m.ko "p_charp=a b" x\ y 'q"r'"#).unwrap(),
            vec!["insmod", "m.ko", "p_charp=a b", "x y", "q\"r"]
        );
        assert!(split_words("a \"b").is_err());
    }

    #[test]
    fn a_session_keeps_one_kernel_across_commands() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/ko/debian-6.1-amd64");
        let mut m = Machine::Sim(Box::new(SimBackend::builtin("debian-6.1-amd64").unwrap()));
        let script = format!(
            "insmod {0}/mp_export.ko\ninsmod {0}/mp_use.ko\nlsmod\ncat /sys/module/mp_export/refcnt\nls /sys/module/mp_export/holders\nrmmod mp_export\ndmesg\ninsmod {0}/mp_types.ko p_int=7\ncat /sys/module/mp_types/parameters/p_int\ncat /proc/sys/kernel/tainted\nexit\nlsmod\n",
            dir.display()
        );
        let (mut out, mut err) = (Vec::new(), Vec::new());
        run_lines(&mut m, &mut script.as_bytes(), &mut out, &mut err);
        let out = String::from_utf8(out).unwrap();
        let err = String::from_utf8(err).unwrap();
        assert!(
            out.contains("mp_export              16384  1 mp_use"),
            "{out}"
        );
        assert!(out.contains("\n1\nmp_use\n"), "{out}");
        assert!(
            err.contains("Module mp_export is in use by: mp_use"),
            "{err}"
        );
        assert!(
            out.contains("mp_export: loading out-of-tree module taints kernel."),
            "{out}"
        );
        assert!(out.contains("\n7\n12288\n"), "{out}");
        // Nothing after exit ran: one lsmod only.
        assert_eq!(out.matches("Used by").count(), 1, "{out}");
    }
}
