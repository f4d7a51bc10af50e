//! berth-sys: the raw system calls berth needs, each wrapped once with its
//! safety argument written down, plus a few fd and path helpers.
//!
//! Everything here returns [`std::io::Error`]; callers add the object and the
//! operation to the message. Nothing in this crate allocates threads, so it is
//! safe to use between `clone3` and `execve` in a single-threaded process.

pub mod bpf;
pub mod caps;
pub mod fs;
pub mod mount;
pub mod process;
pub mod selfexe;
pub mod signal;
pub mod size;
pub mod socket;
pub mod sysctl;
pub mod time;
pub mod userns;
pub mod watch;

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Turns a `-1`-on-error return value into an [`io::Result`].
pub fn cvt<T: IsMinusOne>(ret: T) -> io::Result<T> {
    if ret.is_minus_one() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Retries a syscall wrapper while it fails with `EINTR`.
pub fn retry<T, F: FnMut() -> io::Result<T>>(mut f: F) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            other => return other,
        }
    }
}

#[doc(hidden)]
pub trait IsMinusOne {
    fn is_minus_one(&self) -> bool;
}
macro_rules! impl_minus_one {
    ($($t:ty)*) => ($(impl IsMinusOne for $t { fn is_minus_one(&self) -> bool { *self == -1 } })*)
}
impl_minus_one! { i32 i64 isize }

/// A path as a C string; paths with an interior NUL are rejected with `EINVAL`.
pub fn cstr(path: impl AsRef<Path>) -> io::Result<CString> {
    CString::new(path.as_ref().as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `/proc/self/fd/N`: lets path-based syscalls act on an fd we resolved safely.
pub fn fd_path(fd: RawFd) -> CString {
    // A formatted integer never contains NUL.
    CString::new(format!("/proc/self/fd/{fd}")).unwrap_or_default()
}

/// An empty C string, for the `AT_EMPTY_PATH` forms of the *at() calls.
pub const EMPTY: &CStr = c"";
