//! Scenarios: JSON Lines files of module system calls, and their per-step results.
//!
//! The format is described in `tests/conformance/FORMAT.md`. A scenario runs against any
//! [`Backend`]; the same file is recorded on real kernels and replayed on the simulator, and the
//! two results are compared field by field ([`compare`]).

pub mod compare;

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendError, FinitFd, ModuleTable};
use crate::errno::Errno;

/// The largest module file a scenario step reads (the kernel's own limit is `INT_MAX`).
pub const MAX_MODULE_FILE: u64 = 1 << 30;
/// The largest scenario file.
pub const MAX_SCENARIO_FILE: u64 = 16 << 20;

/// How a `finit_module` step opens its file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FdMode {
    /// `O_RDONLY`, as insmod does.
    #[default]
    Rdonly,
    /// `O_WRONLY`: the kernel answers `EBADF`.
    Wronly,
    /// `O_RDWR`: a writer exists, so the kernel answers `ETXTBSY`.
    Rdwr,
    /// `O_PATH`: not a real open file, `EBADF`.
    Path,
    /// A descriptor number that is not open: `EBADF`.
    Closed,
}

/// One step of a scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Extra kernel command line for the scenario's boot; only as the first step.
    Boot { append: String },
    /// `finit_module(open(file), params, flags)`.
    FinitModule {
        file: String,
        #[serde(default)]
        flags: u32,
        #[serde(default = "empty_params")]
        params: Option<String>,
        #[serde(default)]
        fd: FdMode,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init_returns: Option<i32>,
    },
    /// `init_module(contents of file, len, params)`.
    InitModule {
        file: String,
        #[serde(default = "empty_params")]
        params: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        len: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init_returns: Option<i32>,
    },
    /// `delete_module(name, flags)`.
    DeleteModule {
        name: String,
        #[serde(default)]
        flags: u32,
    },
    /// Write `value` to a control file.
    Write { path: String, value: String },
    /// Drop a capability for the rest of the scenario.
    DropCapability { name: String },
    /// Run one of modloader's kmod tools (`insmod`, `rmmod`, `lsmod`) in-process, on the same
    /// kernel, with the scenario's directory as the working directory; its exit status and
    /// output are recorded in the step's `tool` field.
    Tool { argv: Vec<String> },
}

fn empty_params() -> Option<String> {
    Some(String::new())
}

impl Step {
    /// The step's `op` name as written in the file.
    pub fn op(&self) -> &'static str {
        match self {
            Step::Boot { .. } => "boot",
            Step::FinitModule { .. } => "finit_module",
            Step::InitModule { .. } => "init_module",
            Step::DeleteModule { .. } => "delete_module",
            Step::Write { .. } => "write",
            Step::DropCapability { .. } => "drop_capability",
            Step::Tool { .. } => "tool",
        }
    }
}

/// A scenario file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_SCENARIO_FILE`].
    #[error("{path}: larger than {MAX_SCENARIO_FILE} bytes")]
    TooLarge { path: PathBuf },
    /// A line is not a valid step.
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A backend failed outside of a step (reading the state after a step).
    #[error("step {step}: {source}")]
    Backend { step: usize, source: BackendError },
}

/// A parsed scenario: its steps and the directory relative module paths resolve against.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Where the scenario came from.
    pub path: PathBuf,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The directory relative `file` paths resolve against.
    pub base: PathBuf,
}

impl Scenario {
    /// Parse scenario text; `path` is for messages and `base` resolves relative files.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Scenario, ScenarioError> {
        let mut steps = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let step: Step = serde_json::from_str(t).map_err(|e| ScenarioError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message: e.to_string(),
            })?;
            if matches!(step, Step::Boot { .. }) && !steps.is_empty() {
                return Err(ScenarioError::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: "a boot step must be the first step".into(),
                });
            }
            steps.push(step);
        }
        Ok(Scenario {
            path: path.to_path_buf(),
            steps,
            base: base.to_path_buf(),
        })
    }

    /// Read and parse a scenario file. Relative module paths resolve against `modules_dir` if
    /// given, else against the scenario file's directory.
    pub fn load(path: &Path, modules_dir: Option<&Path>) -> Result<Scenario, ScenarioError> {
        let io = |source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        };
        let f = fs::File::open(path).map_err(io)?;
        let mut text = String::new();
        f.take(MAX_SCENARIO_FILE + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_SCENARIO_FILE {
            return Err(ScenarioError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let base = match modules_dir {
            Some(d) => d.to_path_buf(),
            None => path.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        Scenario::parse(&text, path, &base)
    }

    /// The `append` of the scenario's boot step, if it has one.
    pub fn boot_append(&self) -> Option<&str> {
        match self.steps.first() {
            Some(Step::Boot { append }) => Some(append),
            _ => None,
        }
    }

    /// Where the module file `file` of a step is.
    pub fn resolve(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

/// What one step did, as printed (and recorded) per step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepResult {
    /// 1-based step number.
    pub step: usize,
    /// The step's op.
    pub op: String,
    /// `None` on success, else the errno name.
    pub errno: Option<String>,
    /// Kernel log lines the step produced.
    pub dmesg: Vec<String>,
    /// Every loaded module after the step.
    pub modules: ModuleTable,
    /// `/proc/sys/kernel/tainted` after the step.
    pub kernel_tainted: u64,
    /// For a `tool` step: what the tool did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolOutput>,
}

/// The first line of a recorded file: who produced it, where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The program that ran the scenario.
    pub runner: String,
    /// `uname -r` of the kernel (or the simulated kernel's release).
    pub uname: String,
    /// The kernel's name (`debian-6.1-amd64`).
    pub kernel: String,
    /// The scenario file name.
    pub scenario: String,
}

fn read_module_file(path: &Path) -> Result<Vec<u8>, Errno> {
    let f = fs::File::open(path).map_err(|e| Errno::from_io(&e))?;
    let mut buf = Vec::new();
    f.take(MAX_MODULE_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Errno::from_io(&e))?;
    if buf.len() as u64 > MAX_MODULE_FILE {
        return Err(Errno::EFBIG);
    }
    Ok(buf)
}

fn cparams(p: &Option<String>) -> Result<Option<CString>, Errno> {
    match p {
        None => Ok(None),
        Some(s) => CString::new(s.as_str())
            .map(Some)
            .map_err(|_| Errno::EINVAL),
    }
}

/// A descriptor number that is not open in this process.
fn closed_fd() -> Result<RawFd, Errno> {
    (1000..2000)
        .find(|n| fs::symlink_metadata(format!("/proc/self/fd/{n}")).is_err())
        .ok_or(Errno::EBADF)
}

enum StepFd {
    Open(OwnedFd),
    NotOpen(RawFd),
}

fn open_for(path: &Path, mode: FdMode) -> Result<StepFd, Errno> {
    let mut o = fs::OpenOptions::new();
    match mode {
        FdMode::Rdonly => o.read(true),
        FdMode::Wronly => o.write(true),
        FdMode::Rdwr => o.read(true).write(true),
        FdMode::Path => o.read(true).custom_flags(libc::O_PATH),
        FdMode::Closed => return closed_fd().map(StepFd::NotOpen),
    };
    o.open(path)
        .map(|f| StepFd::Open(OwnedFd::from(f)))
        .map_err(|e| Errno::from_io(&e))
}

/// Run one step's operation; `Err` is the errno the caller saw.
pub fn run_step<B: Backend + ?Sized>(
    backend: &mut B,
    scenario: &Scenario,
    step: &Step,
) -> Result<(), Errno> {
    match step {
        Step::Boot { append } => backend.boot_args(append).map_err(|e| e.errno),
        Step::FinitModule {
            file,
            flags,
            params,
            fd,
            init_returns,
        } => {
            backend.set_init_return(*init_returns);
            let params = cparams(params)?;
            let fd = open_for(&scenario.resolve(file), *fd)?;
            let fd = match &fd {
                StepFd::Open(owned) => FinitFd::Open(owned.as_fd()),
                StepFd::NotOpen(n) => FinitFd::NotOpen(*n),
            };
            backend
                .finit_module(fd, params.as_deref(), *flags)
                .map_err(|e| e.errno)
        }
        Step::InitModule {
            file,
            params,
            len,
            init_returns,
        } => {
            backend.set_init_return(*init_returns);
            let params = cparams(params)?;
            let mut image = read_module_file(&scenario.resolve(file))?;
            if let Some(len) = len {
                let len = usize::try_from(*len).map_err(|_| Errno::ENOMEM)?;
                if len as u64 > MAX_MODULE_FILE {
                    return Err(Errno::ENOMEM);
                }
                image.resize(len, 0);
            }
            backend
                .init_module(&image, params.as_deref())
                .map_err(|e| e.errno)
        }
        Step::DeleteModule { name, flags } => {
            let name = CString::new(name.as_str()).map_err(|_| Errno::EINVAL)?;
            backend.delete_module(&name, *flags).map_err(|e| e.errno)
        }
        Step::Write { path, value } => backend.write_control(path, value).map_err(|e| e.errno),
        Step::DropCapability { name } => backend.drop_capability(name).map_err(|e| e.errno),
        // A tool needs the whole machine (see `run_machine`); on a bare backend it cannot run.
        Step::Tool { .. } => Err(Errno::ENOSYS),
    }
}

/// What a `tool` step's program did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolOutput {
    /// Its exit status.
    pub status: u8,
    /// What it wrote to standard output.
    pub stdout: String,
    /// What it wrote to standard error.
    pub stderr: String,
}

/// Runs a `tool` step: the kmod tool `argv[0]` with the rest as its arguments, in the
/// scenario's directory (restored afterwards).
fn run_tool(machine: &mut crate::cli::Machine, scenario: &Scenario, argv: &[String]) -> ToolOutput {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let Some((name, args)) = argv.split_first() else {
        return ToolOutput {
            status: 2,
            stdout: String::new(),
            stderr: "tool: empty argv\n".into(),
        };
    };
    let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    let old = std::env::current_dir().ok();
    let _ = std::env::set_current_dir(&scenario.base);
    let status = {
        let mut con = crate::cli::Console::new(name, &mut out, &mut err);
        match name.as_str() {
            "insmod" => crate::cli::insmod::run(&args, machine, &mut con),
            "rmmod" => crate::cli::rmmod::run(&args, machine, &mut con),
            "lsmod" => crate::cli::lsmod::run(&args, machine, &mut con),
            other => {
                let _ = writeln!(err, "tool: {other}: not one of insmod, rmmod, lsmod");
                2
            }
        }
    };
    if let Some(d) = old {
        let _ = std::env::set_current_dir(d);
    }
    ToolOutput {
        status,
        stdout: crate::kernel_backend::decode_bytes(&out),
        stderr: crate::kernel_backend::decode_bytes(&err),
    }
}

/// Run a whole scenario on a machine (a backend plus what kmod's tools need), so `tool` steps
/// run too; `emit` gets each step's result as soon as it is known.
pub fn run_machine(
    machine: &mut crate::cli::Machine,
    scenario: &Scenario,
    mut emit: impl FnMut(&StepResult),
) -> Result<Vec<StepResult>, ScenarioError> {
    let mut out = Vec::with_capacity(scenario.steps.len());
    for (i, step) in scenario.steps.iter().enumerate() {
        let n = i + 1;
        let be = |source| ScenarioError::Backend { step: n, source };
        let gone = |why: String| be(BackendError::with_detail("machine", Errno::ENODEV, why));
        machine
            .backend_mut()
            .map_err(gone)?
            .clear_log()
            .map_err(be)?;
        let (res, tool) = match step {
            Step::Tool { argv } => (Ok(()), Some(run_tool(machine, scenario, argv))),
            _ => (
                run_step(machine.backend_mut().map_err(gone)?, scenario, step),
                None,
            ),
        };
        let r = finish_step(machine.backend_mut().map_err(gone)?, n, step, res, tool)?;
        emit(&r);
        out.push(r);
    }
    Ok(out)
}

/// A step's result: its outcome and the machine's state after it.
fn finish_step<B: Backend + ?Sized>(
    backend: &mut B,
    n: usize,
    step: &Step,
    res: Result<(), Errno>,
    tool: Option<ToolOutput>,
) -> Result<StepResult, ScenarioError> {
    let be = |source| ScenarioError::Backend { step: n, source };
    Ok(StepResult {
        step: n,
        op: step.op().to_string(),
        errno: res.err().map(Errno::name),
        dmesg: backend.take_log().map_err(be)?,
        modules: backend.modules().map_err(be)?,
        kernel_tainted: backend.kernel_tainted().map_err(be)?,
        tool,
    })
}

/// Run a whole scenario, calling `emit` with each step's result as soon as it is known.
pub fn run<B: Backend + ?Sized>(
    backend: &mut B,
    scenario: &Scenario,
    mut emit: impl FnMut(&StepResult),
) -> Result<Vec<StepResult>, ScenarioError> {
    let mut out = Vec::with_capacity(scenario.steps.len());
    for (i, step) in scenario.steps.iter().enumerate() {
        let n = i + 1;
        let be = |source| ScenarioError::Backend { step: n, source };
        backend.clear_log().map_err(be)?;
        let res = run_step(backend, scenario, step);
        let r = finish_step(backend, n, step, res, None)?;
        emit(&r);
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_with_defaults_and_reject_unknown_fields() {
        let text = r#"{"op":"boot","append":"module_blacklist=x"}
{"op":"finit_module","file":"mods/x.ko","flags":0,"params":"p_int=5"}
{"op":"finit_module","file":"x.ko"}
{"op":"init_module","file":"x.ko","params":null,"init_returns":-22}
{"op":"delete_module","name":"x","flags":2048}
"#;
        let s = Scenario::parse(text, Path::new("t.jsonl"), Path::new("/b")).unwrap();
        assert_eq!(s.steps.len(), 5);
        assert_eq!(s.boot_append(), Some("module_blacklist=x"));
        assert_eq!(
            s.steps[2],
            Step::FinitModule {
                file: "x.ko".into(),
                flags: 0,
                params: Some(String::new()),
                fd: FdMode::Rdonly,
                init_returns: None
            }
        );
        assert_eq!(
            s.steps[3],
            Step::InitModule {
                file: "x.ko".into(),
                params: None,
                len: None,
                init_returns: Some(-22)
            }
        );
        assert_eq!(s.resolve("mods/x.ko"), PathBuf::from("/b/mods/x.ko"));
        let bad = Scenario::parse(
            r#"{"op":"finit_module","file":"x","flag":1}"#,
            Path::new("t"),
            Path::new("."),
        );
        assert!(matches!(bad, Err(ScenarioError::Parse { line: 1, .. })));
        let late_boot = Scenario::parse(
            "{\"op\":\"delete_module\",\"name\":\"x\"}\n{\"op\":\"boot\",\"append\":\"\"}",
            Path::new("t"),
            Path::new("."),
        );
        assert!(matches!(
            late_boot,
            Err(ScenarioError::Parse { line: 2, .. })
        ));
    }

    #[test]
    fn results_serialize_in_the_documented_key_order() {
        let r = StepResult {
            step: 1,
            op: "finit_module".into(),
            errno: Some("EINVAL".into()),
            dmesg: vec!["a".into()],
            modules: ModuleTable::new(),
            kernel_tainted: 12288,
            tool: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"step":1,"op":"finit_module","errno":"EINVAL","dmesg":["a"],"modules":{},"kernel_tainted":12288}"#
        );
    }
}

/// A file of results: an optional leading `{"meta":…}` line, then one [`StepResult`] a line.
#[derive(Clone, Debug)]
pub struct Recording {
    /// Who produced it, if the file says.
    pub meta: Option<Meta>,
    /// The step results.
    pub steps: Vec<StepResult>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaLine {
    meta: Meta,
}

impl Recording {
    /// Parse the text of a results file; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Recording, ScenarioError> {
        let mut meta = None;
        let mut steps = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let perr = |e: serde_json::Error| ScenarioError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message: e.to_string(),
            };
            if i == 0 && line.starts_with("{\"meta\"") {
                meta = Some(serde_json::from_str::<MetaLine>(line).map_err(perr)?.meta);
            } else {
                steps.push(serde_json::from_str::<StepResult>(line).map_err(perr)?);
            }
        }
        Ok(Recording { meta, steps })
    }

    /// Read and parse a results file.
    pub fn load(path: &Path) -> Result<Recording, ScenarioError> {
        let io = |source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        };
        let f = fs::File::open(path).map_err(io)?;
        let mut text = String::new();
        f.take(MAX_SCENARIO_FILE * 16)
            .read_to_string(&mut text)
            .map_err(io)?;
        Recording::parse(&text, path)
    }
}
