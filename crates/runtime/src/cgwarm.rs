//! Starts the cgroup v1 move wait early, in the background.
//!
//! The first move of a process into a cgroup v1 hierarchy after a quiet
//! moment waits for an RCU grace period (8-25 ms on a 2-core VM), longer
//! than everything else `create` does; see
//! [`berth_cgroups::Layout::warm_up_target`]. A forked helper makes a no-op
//! move of itself once the container's cgroup exists (it waits holding the
//! kernel's cgroup mutex, so creating the cgroup would wait for it), and the
//! wait runs while the init is cloned and mounts its root; the container's
//! own moves find it over, or shorter.

use berth_cgroups::Layout;
use berth_sys::fs as sfs;
use berth_sys::process as sp;
use std::os::fd::AsRawFd;

/// The helper process; reaped on drop.
pub(crate) struct WarmUp(Option<i32>);

impl WarmUp {
    /// Forks the helper, or does nothing on cgroup v2, without a layout, or
    /// when the file cannot be opened (a rootless runtime): it only saves
    /// time, so it never fails.
    pub(crate) fn start(layout: Option<&Layout>) -> WarmUp {
        let Some(target) = layout.and_then(Layout::warm_up_target) else {
            return WarmUp(None);
        };
        let Ok(fd) = sfs::open(&target, libc::O_WRONLY | libc::O_CLOEXEC, 0) else {
            return WarmUp(None);
        };
        // SAFETY: berth-runtime is single-threaded (see `launch`); the child
        // makes two raw syscalls on memory it owns, then leaves without
        // running any destructor.
        match unsafe { sp::clone3(0, None) } {
            Ok(sp::Forked::Child) => {
                // SAFETY: a valid fd and a one-byte buffer; _exit never returns.
                unsafe {
                    libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1);
                    libc::_exit(0)
                }
            }
            Ok(sp::Forked::Parent { pid, .. }) => WarmUp(Some(pid)),
            Err(e) => {
                tracing::debug!("no cgroup warm-up helper: {e}");
                WarmUp(None)
            }
        }
    }
}

impl Drop for WarmUp {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = sp::waitpid(pid);
        }
    }
}
