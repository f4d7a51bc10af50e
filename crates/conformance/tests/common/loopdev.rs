//! A loop device for tests that need a real device no container has by
//! default (shared with the engine's tests: crates/cli/tests/common). Made
//! with the loop ioctls, so it needs no losetup (the cgroup v2 VM has only
//! busybox); the loop module must be loaded.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;

/// A loop block device over a 64 KiB file of 'A's, detached when dropped:
/// a real device that is in no container's default list.
pub struct LoopDevice {
    pub path: String,
    pub major: i64,
    pub minor: i64,
    dev: File,
    file: tempfile::NamedTempFile,
}

impl LoopDevice {
    pub fn attach() -> LoopDevice {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), vec![b'A'; 64 << 10]).unwrap();
        let backing = OpenOptions::new()
            .read(true)
            .write(true)
            .open(file.path())
            .unwrap();
        let ctl =
            File::open("/dev/loop-control").expect("/dev/loop-control is missing: modprobe loop");
        // Another test may take the free device first: then try again.
        for _ in 0..100 {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument.
            let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
            assert!(
                n >= 0,
                "LOOP_CTL_GET_FREE: {}",
                std::io::Error::last_os_error()
            );
            let path = format!("/dev/loop{n}");
            let Ok(dev) = OpenOptions::new().read(true).write(true).open(&path) else {
                continue;
            };
            // SAFETY: LOOP_SET_FD takes the backing file's descriptor.
            if unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_FD, backing.as_raw_fd()) } != 0 {
                continue;
            }
            let rdev = dev.metadata().unwrap().rdev();
            return LoopDevice {
                path,
                major: libc::major(rdev) as i64,
                minor: libc::minor(rdev) as i64,
                dev,
                file,
            };
        }
        panic!("no free loop device");
    }

    /// The backing file's first bytes (after the device's cached writes:
    /// this handle keeps it open, so a container's close does not flush it).
    pub fn head(&self, n: usize) -> Vec<u8> {
        self.dev.sync_all().unwrap();
        let mut b = std::fs::read(self.file.path()).unwrap();
        b.truncate(n);
        b
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        // SAFETY: LOOP_CLR_FD takes no argument.
        unsafe { libc::ioctl(self.dev.as_raw_fd(), LOOP_CLR_FD) };
    }
}
