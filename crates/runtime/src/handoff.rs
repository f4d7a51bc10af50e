//! A berth-runtime started before its command line is known.
//!
//! berth's monitor starts for `berth run` while the client is still
//! resolving the image and writing the bundle. It starts berth-runtime at
//! once too, with [`ENV`] naming one end of a `SOCK_SEQPACKET` pair, so that
//! the runtime's own start-up (executing a 4 MiB binary) happens on an idle
//! CPU rather than after the bundle is ready. When the client says GO, the
//! monitor sends one message: the command line (after the program name,
//! each argument ended by a NUL) with the runtime's stdin, stdout and
//! stderr attached. The runtime puts those on fds 0, 1 and 2 and goes on as
//! if started with that command line. If the monitor closes its end
//! instead (the client failed before the bundle was ready), the runtime
//! exits 0 having done nothing.
//!
//! The variable gives no power the caller lacks: whoever can set it can
//! run berth-runtime with any command line anyway.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The environment variable holding the fd number of the runtime's end.
pub const ENV: &str = "BERTH_RUNTIME_HANDOFF_FD";

/// The largest command line the message may carry.
const MAX_MESSAGE: usize = 64 * 1024;

/// What a runtime started with [`ENV`] was handed.
#[derive(Debug)]
pub enum Handed {
    /// Not started that way.
    NotHanded,
    /// The monitor closed its end: nothing to do.
    Cancelled,
    /// The command line to run, with stdio already on fds 0, 1 and 2.
    Args(Vec<OsString>),
}

/// The monitor's side: sends the command line `args` (after the program
/// name) and the runtime's stdin, stdout and stderr.
pub fn send(sock: BorrowedFd<'_>, args: &[OsString], stdio: [BorrowedFd<'_>; 3]) -> io::Result<()> {
    let mut msg = Vec::new();
    for a in args {
        let b = a.as_bytes();
        if b.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an argument contains a NUL byte",
            ));
        }
        msg.extend_from_slice(b);
        msg.push(0);
    }
    if msg.len() > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the command line is too long to hand over",
        ));
    }
    let fds = stdio.map(|f| f.as_raw_fd());
    berth_sys::socket::send_fds(sock, &msg, &fds)
}

/// The runtime's side, first thing in `main`: waits for the message if
/// [`ENV`] is set (removing it, so that nothing the runtime starts sees
/// it), and puts the stdio it carries on fds 0, 1 and 2.
pub fn receive() -> io::Result<Handed> {
    let Some(v) = std::env::var_os(ENV) else {
        return Ok(Handed::NotHanded);
    };
    // SAFETY: called first thing in main, before any thread exists (the
    // runtime never starts one).
    std::env::remove_var(ENV);
    let fd: RawFd = v
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|&fd| fd > 2)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{ENV}={v:?} is not an fd number above 2"),
            )
        })?;
    // Refuse an fd that is not an open socket rather than take it over.
    let st = berth_sys::fs::fstat(
        // SAFETY: only borrowed for fstat, which fails on a closed number.
        unsafe { BorrowedFd::borrow_raw(fd) },
    )?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ENV}={fd} is not a socket"),
        ));
    }
    // SAFETY: an open socket the monitor left to this process alone.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, fds) = berth_sys::socket::recv_fds(sock.as_fd(), &mut buf)?;
    if n == 0 && fds.is_empty() {
        return Ok(Handed::Cancelled);
    }
    if fds.len() != 3 || n == 0 || buf[n - 1] != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a malformed hand-over ({n} bytes, {} fds; 3 fds and NUL-ended arguments expected)",
                fds.len()
            ),
        ));
    }
    for (i, f) in fds.iter().enumerate() {
        // dup2 clears close-on-exec on the copy, as stdio needs.
        berth_sys::fs::dup2(f.as_raw_fd(), i as RawFd)?;
    }
    Ok(Handed::Args(
        buf[..n - 1]
            .split(|&b| b == 0)
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_with_nul_or_too_long_are_refused() {
        let (a, _b) = berth_sys::socket::seqpacket_pair().unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let stdio = [null.as_fd(), null.as_fd(), null.as_fd()];
        let bad = [OsString::from_vec(b"a\0b".to_vec())];
        assert!(send(a.as_fd(), &bad, stdio).is_err());
        let long = [OsString::from("x".repeat(MAX_MESSAGE))];
        assert!(send(a.as_fd(), &long, stdio).is_err());
    }
}
