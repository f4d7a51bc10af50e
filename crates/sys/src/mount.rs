//! Mounts: the classic mount(2) and the fd-based API (open_tree, move_mount,
//! mount_setattr) that lets us act on exactly the object we resolved.

use crate::{cvt, EMPTY};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

const FSOPEN_CLOEXEC: u32 = 1;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSMOUNT_CLOEXEC: u32 = 1;

pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
pub const MOUNT_ATTR__ATIME: u64 = 0x0000_0070;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0000_0000;
pub const MOUNT_ATTR_NOATIME: u64 = 0x0000_0010;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x0000_0020;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x0000_0080;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

pub const OPEN_TREE_CLONE: u32 = 1;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

/// `struct mount_attr` from <linux/mount.h>.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

/// Classic `mount(2)`.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: u64,
    data: Option<&CStr>,
) -> io::Result<()> {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is NULL or a valid C string.
    cvt(unsafe {
        libc::mount(
            p(source),
            target.as_ptr(),
            p(fstype),
            flags as libc::c_ulong,
            p(data).cast(),
        )
    })?;
    Ok(())
}

/// `umount2(2)`.
pub fn umount2(target: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: valid C string.
    cvt(unsafe { libc::umount2(target.as_ptr(), flags) })?;
    Ok(())
}

/// `open_tree(fd, "", flags | AT_EMPTY_PATH)`: with `OPEN_TREE_CLONE`, a
/// detached copy of the mount at `fd` (a bind mount not yet attached).
pub fn open_tree(fd: BorrowedFd<'_>, flags: u32) -> io::Result<OwnedFd> {
    let flags = flags | libc::AT_EMPTY_PATH as u32 | libc::O_CLOEXEC as u32;
    // SAFETY: empty C string with AT_EMPTY_PATH acts on the fd.
    let ret =
        cvt(unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), EMPTY.as_ptr(), flags) })?;
    // SAFETY: new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// `move_mount(from, "", to, "", F_EMPTY_PATH | T_EMPTY_PATH)`: attaches the
/// mount `from` on top of the object `to` refers to.
pub fn move_mount(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: empty C strings with the EMPTY_PATH flags act on the fds.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            EMPTY.as_ptr(),
            to.as_raw_fd(),
            EMPTY.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], attr)`.
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: valid mount_attr of the size we pass, empty path on an fd.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

/// A read-only overlay of the directories `lower` (top first, at least
/// two), mounted detached: it is in no mount tree, reached only through the
/// returned fd, and gone when that fd and what was opened through it are
/// closed (a process killed with it open leaves nothing behind). The layers
/// are named through our fds, so no path needs escaping.
pub fn detached_overlay(lower: &[BorrowedFd<'_>]) -> io::Result<OwnedFd> {
    let names: Vec<String> = lower
        .iter()
        .map(|fd| format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .collect();
    let lower =
        CString::new(names.join(":")).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // xino would only add kernel log lines when the layers are on
    // different filesystems; it does not matter here.
    new_mount(
        c"overlay",
        &[(c"lowerdir", &lower, true), (c"xino", c"off", false)],
    )
}

/// A detached mount of a new `fstype` filesystem with string options
/// (key, value, whether the kernel must know it): fsopen, fsconfig,
/// fsmount. Read-only, no devices, no set-id.
fn new_mount(fstype: &CStr, opts: &[(&CStr, &CStr, bool)]) -> io::Result<OwnedFd> {
    // SAFETY: a valid C string and flags.
    let fs = cvt(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: a new fd we own.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    for (k, v, required) in opts {
        // SAFETY: valid fs context fd and C strings.
        let r = cvt(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        });
        if *required {
            r?;
        }
    }
    // SAFETY: valid fs context fd; no key or value for CMD_CREATE.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID;
    // SAFETY: a created fs context fd; the attributes are MOUNT_ATTR_* bits.
    let m =
        cvt(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })?;
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(m as RawFd) })
}

/// Makes the detached mount `tree` (from `open_tree(OPEN_TREE_CLONE)` or
/// `fsmount`, never yet attached) idmapped with the maps of the user
/// namespace `userns` (an nsfs fd), on its submounts too if `recursive`.
/// EINVAL: a filesystem in it does not support idmapped mounts (or the
/// mount was attached already); EPERM: `userns` is the initial one, or we
/// lack privilege over it or over the filesystem.
pub fn set_idmap(tree: BorrowedFd<'_>, userns: BorrowedFd<'_>, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        userns_fd: userns.as_raw_fd() as u64,
        ..Default::default()
    };
    mount_setattr(tree, recursive, &attr)
}

/// Whether the kernel has `mount_setattr` (Linux 5.12), which idmapped
/// mounts need: asked with an fd that cannot be valid (EBADF when the call
/// exists, ENOSYS when it does not).
pub fn has_mount_setattr() -> bool {
    let attr = MountAttr::default();
    // SAFETY: a valid mount_attr of the size we pass; fd -1 is refused
    // before anything is looked up.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            EMPTY.as_ptr(),
            libc::AT_EMPTY_PATH as u32,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    !(r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS))
}
