//! Linux errno values and their symbolic names.
//!
//! The numbers are the generic ones (`include/uapi/asm-generic/errno-base.h` and `errno.h`), which
//! x86_64 and arm64 share. Names follow glibc's `strerrorname_np`, so that the Rust runner and the
//! C runner of the recorder print the same name for the same number.

use std::fmt;

/// An errno value as the kernel returns it (positive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(pub i32);

impl std::error::Error for Errno {}

/// Names indexed by errno number; `""` where the number has no name of its own (41 and 58 are
/// unused: `EWOULDBLOCK` is `EAGAIN`, `EDEADLOCK` is `EDEADLK`).
const NAMES: [&str; 134] = [
    "",
    "EPERM",
    "ENOENT",
    "ESRCH",
    "EINTR",
    "EIO",
    "ENXIO",
    "E2BIG",
    "ENOEXEC",
    "EBADF",
    "ECHILD",
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EFAULT",
    "ENOTBLK",
    "EBUSY",
    "EEXIST",
    "EXDEV",
    "ENODEV",
    "ENOTDIR",
    "EISDIR",
    "EINVAL",
    "ENFILE",
    "EMFILE",
    "ENOTTY",
    "ETXTBSY",
    "EFBIG",
    "ENOSPC",
    "ESPIPE",
    "EROFS",
    "EMLINK",
    "EPIPE",
    "EDOM",
    "ERANGE",
    "EDEADLK",
    "ENAMETOOLONG",
    "ENOLCK",
    "ENOSYS",
    "ENOTEMPTY",
    "ELOOP",
    "",
    "ENOMSG",
    "EIDRM",
    "ECHRNG",
    "EL2NSYNC",
    "EL3HLT",
    "EL3RST",
    "ELNRNG",
    "EUNATCH",
    "ENOCSI",
    "EL2HLT",
    "EBADE",
    "EBADR",
    "EXFULL",
    "ENOANO",
    "EBADRQC",
    "EBADSLT",
    "",
    "EBFONT",
    "ENOSTR",
    "ENODATA",
    "ETIME",
    "ENOSR",
    "ENONET",
    "ENOPKG",
    "EREMOTE",
    "ENOLINK",
    "EADV",
    "ESRMNT",
    "ECOMM",
    "EPROTO",
    "EMULTIHOP",
    "EDOTDOT",
    "EBADMSG",
    "EOVERFLOW",
    "ENOTUNIQ",
    "EBADFD",
    "EREMCHG",
    "ELIBACC",
    "ELIBBAD",
    "ELIBSCN",
    "ELIBMAX",
    "ELIBEXEC",
    "EILSEQ",
    "ERESTART",
    "ESTRPIPE",
    "EUSERS",
    "ENOTSOCK",
    "EDESTADDRREQ",
    "EMSGSIZE",
    "EPROTOTYPE",
    "ENOPROTOOPT",
    "EPROTONOSUPPORT",
    "ESOCKTNOSUPPORT",
    "EOPNOTSUPP",
    "EPFNOSUPPORT",
    "EAFNOSUPPORT",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "ENETDOWN",
    "ENETUNREACH",
    "ENETRESET",
    "ECONNABORTED",
    "ECONNRESET",
    "ENOBUFS",
    "EISCONN",
    "ENOTCONN",
    "ESHUTDOWN",
    "ETOOMANYREFS",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "EHOSTDOWN",
    "EHOSTUNREACH",
    "EALREADY",
    "EINPROGRESS",
    "ESTALE",
    "EUCLEAN",
    "ENOTNAM",
    "ENAVAIL",
    "EISNAM",
    "EREMOTEIO",
    "EDQUOT",
    "ENOMEDIUM",
    "EMEDIUMTYPE",
    "ECANCELED",
    "ENOKEY",
    "EKEYEXPIRED",
    "EKEYREVOKED",
    "EKEYREJECTED",
    "EOWNERDEAD",
    "ENOTRECOVERABLE",
    "ERFKILL",
    "EHWPOISON",
];

impl Errno {
    pub const EPERM: Errno = Errno(1);
    pub const ENOENT: Errno = Errno(2);
    pub const EINTR: Errno = Errno(4);
    pub const EIO: Errno = Errno(5);
    pub const ENOEXEC: Errno = Errno(8);
    pub const EBADF: Errno = Errno(9);
    pub const EAGAIN: Errno = Errno(11);
    /// `EWOULDBLOCK` is `EAGAIN`.
    pub const EWOULDBLOCK: Errno = Errno(11);
    pub const ENOMEM: Errno = Errno(12);
    pub const EACCES: Errno = Errno(13);
    pub const EFAULT: Errno = Errno(14);
    pub const EBUSY: Errno = Errno(16);
    pub const EEXIST: Errno = Errno(17);
    pub const ENODEV: Errno = Errno(19);
    pub const EINVAL: Errno = Errno(22);
    pub const ETXTBSY: Errno = Errno(26);
    pub const EFBIG: Errno = Errno(27);
    pub const ENOSPC: Errno = Errno(28);
    pub const EROFS: Errno = Errno(30);
    pub const ERANGE: Errno = Errno(34);
    pub const ENOSYS: Errno = Errno(38);
    pub const ENODATA: Errno = Errno(61);
    pub const ENOPKG: Errno = Errno(65);
    pub const EBADMSG: Errno = Errno(74);
    pub const EOPNOTSUPP: Errno = Errno(95);
    pub const ENOKEY: Errno = Errno(126);
    pub const EKEYREJECTED: Errno = Errno(129);

    /// The symbolic name (`"EINVAL"`), or `"E#<n>"` for a number without one.
    pub fn name(self) -> String {
        match usize::try_from(self.0).ok().and_then(|i| NAMES.get(i)) {
            Some(n) if !n.is_empty() => (*n).to_string(),
            _ => format!("E#{}", self.0),
        }
    }

    /// The errno with this symbolic name (`"EINVAL"`, `"EWOULDBLOCK"`, `"E#41"`), if any.
    pub fn from_name(name: &str) -> Option<Errno> {
        match name {
            "EWOULDBLOCK" => return Some(Errno::EAGAIN),
            "EDEADLOCK" => return Some(Errno(35)),
            _ => {}
        }
        if let Some(n) = name.strip_prefix("E#") {
            return n.parse().ok().map(Errno);
        }
        NAMES
            .iter()
            .position(|n| !n.is_empty() && *n == name)
            .and_then(|i| i32::try_from(i).ok())
            .map(Errno)
    }

    /// The errno carried by an I/O error (`EIO` when it carries none).
    pub fn from_io(e: &std::io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(5))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_every_named_errno() {
        for i in 0..140 {
            let e = Errno(i);
            assert_eq!(Errno::from_name(&e.name()), Some(e), "{i}");
        }
    }

    #[test]
    fn names_match_the_kernel_numbers_used_by_the_load_path() {
        assert_eq!(Errno(8).name(), "ENOEXEC");
        assert_eq!(Errno(17).name(), "EEXIST");
        assert_eq!(Errno(61).name(), "ENODATA");
        assert_eq!(Errno(65).name(), "ENOPKG");
        assert_eq!(Errno(74).name(), "EBADMSG");
        assert_eq!(Errno(95).name(), "EOPNOTSUPP");
        assert_eq!(Errno(126).name(), "ENOKEY");
        assert_eq!(Errno(129).name(), "EKEYREJECTED");
        assert_eq!(Errno(41).name(), "E#41");
        assert_eq!(Errno(-3).name(), "E#-3");
        assert_eq!(Errno::from_name("EWOULDBLOCK"), Some(Errno(11)));
    }
}
