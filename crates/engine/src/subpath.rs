//! Subpaths of volumes and bind sources (`--mount volume-subpath=`,
//! Kubernetes' `subPath`), pinned so that a container cannot redirect
//! them.
//!
//! A volume's content is the containers' to change: one of them can put a
//! symlink where another's subpath is looked up (CVE-2017-1002101 in the
//! kubelet). So the subpath is resolved here by fd inside its source
//! (`RESOLVE_IN_ROOT`: a symlink on the way resolves inside the volume,
//! never out of it), made a directory when missing, and the result is
//! bind-mounted through its fd onto a point in the container's own
//! directory (`<container>/subpaths/N`), which no container can reach. The
//! runtime binds that point: it is the pinned inode whatever happens to the
//! names in the volume afterwards, also at the monitor's restarts.
//!
//! The points are detached before the next start makes them again and
//! before the container's directory is removed (a kill -9 in between
//! leaves them for those two to find).

use crate::error::{io, Error, Result};
use berth_sys::fs::{self as sfs, Links};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

const DIR: &str = "subpaths";

/// Detaches and removes every point of `container_dir` (nothing there: a
/// no-op).
pub fn detach(container_dir: &Path) {
    crate::rootfs::detach_staged(&container_dir.join(DIR));
}

/// Resolves `sub` inside `base` (made a directory when missing), pins it
/// on `container_dir`/subpaths/`index` and returns that point.
pub fn stage(container_dir: &Path, index: usize, base: &Path, sub: &str) -> Result<PathBuf> {
    let what = || format!("subpath {sub:?} of {}", base.display());
    let base_fd = sfs::open(base, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
        .map_err(io(format!("open {}", base.display())))?;
    let rel = Path::new(sub);
    let target = match sfs::open_in_root(
        base_fd.as_fd(),
        rel,
        libc::O_PATH | libc::O_CLOEXEC,
        Links::InRoot,
    ) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            sfs::mkdir_all_in_root(base_fd.as_fd(), rel, Links::InRoot)
                .map_err(io(format!("create {}", what())))?
        }
        Err(e) => return Err(io(format!("open {}", what()))(e)),
    };
    let st = sfs::fstat(target.as_fd()).map_err(io(format!("stat {}", what())))?;
    let is_dir = sfs::file_type(&st) == libc::S_IFDIR;
    if !is_dir && sfs::file_type(&st) != libc::S_IFREG {
        return Err(Error::Runtime(format!(
            "{}: a {}, not a directory or a file: only those are mounted",
            what(),
            sfs::type_name(&st)
        )));
    }
    let dir = container_dir.join(DIR);
    sfs::create_private_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
    let point = dir.join(index.to_string());
    if is_dir {
        match std::fs::create_dir(&point) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(io(format!("create {}", point.display()))(e))
            }
            _ => {}
        }
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&point)
            .map_err(io(format!("create {}", point.display())))?;
    }
    let point_fd = sfs::open(&point, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0)
        .map_err(io(format!("open {}", point.display())))?;
    berth_sys::mount::mount(
        Some(&berth_sys::fd_path(target.as_raw_fd())),
        &berth_sys::fd_path(point_fd.as_raw_fd()),
        None,
        libc::MS_BIND,
        None,
    )
    .map_err(io(format!("pin {}", what())))?;
    Ok(point)
}
