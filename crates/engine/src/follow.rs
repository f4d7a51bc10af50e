//! What `berth logs -f` sleeps in: until the container's log directory
//! changes or its monitor ends, not on a timer.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use crate::error::{io, Result};

pub struct LogWait {
    /// None where inotify is unavailable (its limits reached): then a wait
    /// is a 100 ms sleep.
    watch: Option<berth_sys::watch::DirWatch>,
    monitor: Option<(i32, OwnedFd)>,
}

impl LogWait {
    /// Watches the directory that holds the container's log files.
    pub fn new(log_dir: &Path) -> LogWait {
        LogWait {
            watch: berth_sys::watch::DirWatch::new(log_dir).ok(),
            monitor: None,
        }
    }

    /// Wakes the next waits when this monitor ends (a new pid replaces the
    /// one tracked; 0 is ignored).
    pub fn track_monitor(&mut self, pid: i32) {
        if pid > 0 && self.monitor.as_ref().is_none_or(|(p, _)| *p != pid) {
            self.monitor = berth_sys::process::pidfd_open(pid).ok().map(|fd| (pid, fd));
        }
    }

    /// Sleeps until the log may have grown. Returns true when the caller
    /// should read the container's status again: its monitor ended, or
    /// nothing happened for a second.
    pub fn wait(&self) -> Result<bool> {
        let Some(w) = &self.watch else {
            std::thread::sleep(Duration::from_millis(100));
            return Ok(true);
        };
        let other = self.monitor.as_ref().map(|(_, fd)| fd.as_fd());
        let woke = w
            .wait(other, Duration::from_secs(1))
            .map_err(io("wait for the container's log to grow"))?;
        Ok(woke.other || !woke.changed)
    }
}
