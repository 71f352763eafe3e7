//! A simulated machine that lasts across processes: a directory holding its state
//! (`modloader --machine DIR`, or `MODSIM_MACHINE`).
//!
//! `DIR/state` is the machine ([`sim::kernel::Kernel::save`]: every module with its memory,
//! references, holders and parameters, the kernel log, the taints), `DIR/lock` serializes the
//! processes that use it: a command takes the lock for as long as it talks to the machine, as
//! the kernel's `module_mutex` serializes loads (a load's init is instantaneous in the
//! simulator, so a second load of the same name always finds the first one finished: live,
//! `EEXIST`, or gone). The state is replaced atomically (a new file, synced, renamed over the
//! old), so a reader sees the state before or after a command, never half of one.
//!
//! A directory that is missing or empty becomes a new machine running the given kernel. Any
//! other directory without a state, a damaged state, one made by a newer modsim, or one running
//! another kernel than the one asked for is an error, one line, and nothing is changed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use sim::kernel::{Kernel, ProfileRef};

/// The largest state file read (module memory is at most the machine's memory limit, 1 GiB
/// by default).
const MAX_STATE: u64 = 4 << 30;

/// Why a machine directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MachineDirError {
    /// Reading or writing the directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A directory with other things in it and no machine.
    #[error("{}: not a modsim machine directory (it has files but no 'state')", .0.display())]
    Foreign(PathBuf),
    /// A new machine needs a kernel.
    #[error("{}: no machine there yet: give --kernel to make one", .0.display())]
    NeedKernel(PathBuf),
    /// The machine runs another kernel.
    #[error("{}: the machine runs {has}, not {asked}", path.display())]
    OtherKernel {
        /// The directory.
        path: PathBuf,
        /// Its kernel.
        has: String,
        /// The one asked for.
        asked: String,
    },
    /// The state is damaged, foreign or from another format.
    #[error("{}: {source}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        source: sim::kernel::PersistError,
    },
}

/// A machine directory, locked: the machine is this process's until it is dropped.
#[derive(Debug)]
pub struct MachineDir {
    dir: PathBuf,
    /// Held locked (`flock`) for the life of the value.
    _lock: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MachineDirError + '_ {
    move |source| MachineDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl MachineDir {
    /// Locks the machine in `dir` and reads it; a missing or empty `dir` becomes a new
    /// machine running `kernel`. `kernel`, when given for an existing machine, must be the
    /// profile it runs (by name).
    pub fn open(
        dir: &Path,
        kernel: Option<ProfileRef>,
    ) -> Result<(MachineDir, Kernel), MachineDirError> {
        if kernel.is_none() && !dir.join("state").exists() && !dir.exists() {
            return Err(MachineDirError::NeedKernel(dir.to_path_buf()));
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        let md = MachineDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        };
        let state = md.state_path();
        let kernel_state = match File::open(&state) {
            Ok(f) => {
                let bytes = read_bounded(f, &state)?;
                let k = Kernel::restore(&bytes).map_err(|source| MachineDirError::State {
                    path: state.clone(),
                    source,
                })?;
                if let Some(p) = &kernel
                    && p.name() != k.profile().name()
                {
                    return Err(MachineDirError::OtherKernel {
                        path: dir.to_path_buf(),
                        has: k.profile().name().to_string(),
                        asked: p.name().to_string(),
                    });
                }
                k
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let others = std::fs::read_dir(dir)
                    .map_err(io(dir))?
                    .filter_map(Result::ok)
                    .any(|e| e.file_name() != "lock" && e.file_name() != "state.new");
                if others {
                    return Err(MachineDirError::Foreign(dir.to_path_buf()));
                }
                let p = kernel.ok_or_else(|| MachineDirError::NeedKernel(dir.to_path_buf()))?;
                let k = Kernel::new(p);
                md.save(&k)?;
                k
            }
            Err(e) => return Err(io(&state)(e)),
        };
        Ok((md, kernel_state))
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Writes the machine back: a new file, synced, renamed over the old state.
    pub fn save(&self, kernel: &Kernel) -> Result<(), MachineDirError> {
        let state = self.state_path();
        let bytes = kernel.save().map_err(|source| MachineDirError::State {
            path: state.clone(),
            source,
        })?;
        let tmp = self.dir.join("state.new");
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &state).map_err(io(&state))?;
        Ok(())
    }
}

fn read_bounded(f: File, path: &Path) -> Result<Vec<u8>, MachineDirError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    f.take(MAX_STATE + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() as u64 > MAX_STATE {
        return Err(MachineDirError::State {
            path: path.to_path_buf(),
            source: sim::kernel::PersistError::Corrupt(format!("larger than {MAX_STATE} bytes")),
        });
    }
    Ok(bytes)
}
