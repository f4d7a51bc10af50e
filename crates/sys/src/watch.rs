//! Waiting for a directory to change (inotify), and optionally for a process
//! to end (its pidfd), in one `poll`: what `berth logs -f` sleeps in.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use crate::cvt;

/// An inotify watch on one directory: files written, created, moved in or
/// out, or removed there.
pub struct DirWatch {
    fd: OwnedFd,
}

/// What ended a [`DirWatch::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Woke {
    /// Something in the directory changed.
    pub changed: bool,
    /// The other fd became readable (for a pidfd: the process ended).
    pub other: bool,
}

impl DirWatch {
    pub fn new(dir: &Path) -> io::Result<DirWatch> {
        // SAFETY: plain syscall with flag arguments.
        let fd = cvt(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })?;
        // SAFETY: the kernel returned a new fd that we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let path = crate::cstr(dir)?;
        let mask = libc::IN_MODIFY
            | libc::IN_CREATE
            | libc::IN_MOVED_TO
            | libc::IN_MOVED_FROM
            | libc::IN_DELETE
            | libc::IN_DELETE_SELF
            | libc::IN_CLOSE_WRITE;
        // SAFETY: a valid inotify fd and a NUL-terminated path that outlives
        // the call.
        cvt(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) })?;
        Ok(DirWatch { fd })
    }

    /// Sleeps until the directory changes, `other` becomes readable, or
    /// `timeout` passes, whichever comes first; then forgets the changes seen
    /// so far.
    pub fn wait(&self, other: Option<BorrowedFd<'_>>, timeout: Duration) -> io::Result<Woke> {
        let mut fds = [
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: other.map_or(-1, |o| o.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: two valid pollfds (a negative fd is ignored by poll).
        crate::retry(|| cvt(unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) }))?;
        let woke = Woke {
            changed: fds[0].revents != 0,
            other: fds[1].revents != 0,
        };
        if woke.changed {
            self.drain()?;
        }
        Ok(woke)
    }

    fn drain(&self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads at most buf.len() bytes into buf.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                continue;
            }
            if n == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(()),
                Some(libc::EINTR) => continue,
                _ => Err(e),
            };
        }
    }
}

impl AsRawFd for DirWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn wakes_on_a_write_and_on_a_process_end_and_times_out_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let w = DirWatch::new(dir.path()).unwrap();
        let t = Instant::now();
        let woke = w.wait(None, Duration::from_millis(50)).unwrap();
        assert_eq!(
            woke,
            Woke {
                changed: false,
                other: false
            }
        );
        assert!(t.elapsed() >= Duration::from_millis(45));

        // A write by another process (this crate starts no threads).
        let p = dir.path().join("log");
        let mut writer = std::process::Command::new("sh")
            .arg("-c")
            .arg("sleep 0.03; echo x > \"$0\"")
            .arg(&p)
            .spawn()
            .unwrap();
        let woke = w.wait(None, Duration::from_secs(10)).unwrap();
        assert!(woke.changed && !woke.other);
        writer.wait().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x\n");
        // Drained: a wait now times out again (the write's later events may
        // still be queued once: take them).
        let _ = w.wait(None, Duration::from_millis(20)).unwrap();
        assert!(!w.wait(None, Duration::from_millis(20)).unwrap().changed);

        let mut child = std::process::Command::new("sleep")
            .arg("0.05")
            .spawn()
            .unwrap();
        let pidfd = crate::process::pidfd_open(child.id() as i32).unwrap();
        let t = Instant::now();
        let woke = w
            .wait(
                Some(std::os::fd::AsFd::as_fd(&pidfd)),
                Duration::from_secs(10),
            )
            .unwrap();
        assert!(woke.other && !woke.changed, "{woke:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
        child.wait().unwrap();
    }
}
