//! Pseudo-terminals: created inside the container (from its own devpts),
//! and relayed by `run` when it has no console socket to hand them to.

use crate::error::{Context, Error, Result};
use berth_sys::fs::{self as sfs, Links};
use berth_sys::mount as smount;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Opens /dev/ptmx of the container and its peer (TIOCGPTPEER: no path
/// lookup of /dev/pts/N that the container could race).
pub fn open_pty_in_container() -> Result<(OwnedFd, OwnedFd)> {
    let master = sfs::open(Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY, 0)
        .ctx("open /dev/ptmx")?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to an int.
    berth_sys::cvt(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })
        .ctx("unlock the pty")?;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd.
    let slave = berth_sys::cvt(unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })
    .ctx("open the pty peer")?;
    // SAFETY: new fd owned by us.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

/// The terminal of a process with `process.terminal`: a pty made inside
/// the container, its master sent to `console` (the console socket), its
/// peer returned for the caller to make its stdio ([`take_as_stdio`]).
pub fn open_for_process(
    console: Option<&OwnedFd>,
    process: &oci_spec::runtime::Process,
) -> Result<OwnedFd> {
    let sock = console.ok_or_else(|| {
        Error::Usage("process.terminal is set but there is no --console-socket".into())
    })?;
    let (master, slave) = open_pty_in_container()?;
    if let Some(size) = process.console_size() {
        set_size(slave.as_fd(), size.height() as u16, size.width() as u16)?;
    }
    berth_sys::socket::send(sock.as_fd(), b"/dev/ptmx", Some(master.as_raw_fd()))
        .ctx("send the pty master to the console socket")?;
    Ok(slave)
}

/// `slave` as the controlling terminal and stdio of the caller, which
/// leads a session of its own already (setsid).
pub fn take_as_stdio(slave: BorrowedFd<'_>) -> Result<()> {
    make_controlling(slave)?;
    for fd in 0..3 {
        sfs::dup2(slave.as_raw_fd(), fd).ctx("make the pty our stdio")?;
    }
    Ok(())
}

pub fn set_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ takes a pointer to a winsize.
    berth_sys::cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) })
        .ctx("set the terminal size")?;
    Ok(())
}

pub fn get_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    // SAFETY: winsize is plain data filled by TIOCGWINSZ.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ takes a pointer to a winsize.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some((ws.ws_row, ws.ws_col))
}

pub fn make_controlling(fd: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument.
    berth_sys::cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) })
        .ctx("make the pty the controlling terminal")?;
    Ok(())
}

/// Binds the pty on /dev/console by fd (CVE-2025-52565: no path that the
/// container could swap for a symlink between check and mount).
pub fn bind_console(slave: BorrowedFd<'_>) -> Result<()> {
    let root = sfs::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0).ctx("open /")?;
    let target = sfs::mkfile_in_root(root.as_fd(), Path::new("/dev/console"), Links::Refuse)
        .ctx("create /dev/console")?;
    let st = sfs::fstat(target.as_fd()).ctx("stat /dev/console")?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG && st.st_mode & libc::S_IFMT != libc::S_IFCHR {
        return Err(Error::Usage(
            "/dev/console is neither a file nor a device; refusing to bind the console on it"
                .into(),
        ));
    }
    let tree = smount::open_tree(slave, smount::OPEN_TREE_CLONE).ctx("clone the pty mount")?;
    smount::move_mount(tree.as_fd(), target.as_fd()).ctx("bind the pty on /dev/console")
}

/// Terminal raw mode for the foreground relay; restores on drop.
pub struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    pub fn enter(fd: BorrowedFd<'_>) -> Option<RawMode> {
        // SAFETY: termios is plain data filled by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and out pointer.
        if unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) } != 0 {
            return None;
        }
        let saved = t;
        // SAFETY: t is a valid termios.
        unsafe { libc::cfmakeraw(&mut t) };
        // SAFETY: valid fd and termios.
        unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, &t) };
        Some(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the attributes we saved on the same fd.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}
