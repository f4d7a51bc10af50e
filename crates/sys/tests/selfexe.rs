//! `selfexe::protected_binary` (privileged: it mounts an overlay): a program
//! started from it runs from a read-only filesystem, so neither the fd nor
//! the running process's `/proc/PID/exe` can be opened for writing
//! (CVE-2019-5736), and `protection()` in that process would say so.

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;

#[test]
fn a_program_started_from_a_protected_binary_cannot_be_written() {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(uid, 0, "this test mounts an overlay: run it as root");
    let bin_dir = tempfile::tempdir().unwrap();
    let dummy = tempfile::tempdir().unwrap();
    let prog = bin_dir.path().join("prog");
    std::fs::copy("/bin/busybox", &prog).expect("busybox-static is installed by scripts/test.sh");
    let before = std::fs::read(&prog).unwrap();
    let dummy_fd = berth_sys::fs::open(
        dummy.path(),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )
    .unwrap();
    let fd = berth_sys::selfexe::protected_binary(&prog, dummy_fd.as_fd()).unwrap();

    // SAFETY: statvfs is plain data; zeroed is a valid initial value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and out-pointer.
    assert_eq!(unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) }, 0);
    assert_ne!(
        st.f_flag & libc::ST_RDONLY,
        0,
        "the overlay is not read-only"
    );

    let via = format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd());
    let e = std::fs::OpenOptions::new()
        .write(true)
        .open(&via)
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");

    // busybox picks its applet by argv[0].
    let mut child = std::process::Command::new(&via)
        .arg0("busybox")
        .args(["sleep", "5"])
        .spawn()
        .expect("run the program through the fd");
    let exe = format!("/proc/{}/exe", child.id());
    // It runs (has an exe) from the overlay.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the program ended early"
    );
    let e = std::fs::OpenOptions::new()
        .write(true)
        .open(&exe)
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        std::process::Command::new(&via)
            .arg0("busybox")
            .arg("true")
            .status()
            .unwrap()
            .code(),
        Some(0)
    );
    assert_eq!(std::fs::read(&prog).unwrap(), before);
}

/// A symbolic link to the binary (an installation's `/usr/local/bin/X ->
/// /opt/...`): what is protected is the binary it names, not the writable
/// file the link leads to out of the overlay of its own directory (which
/// made a runtime started from it re-execute itself, losing a command
/// line handed over later).
#[test]
fn a_symbolic_link_to_the_binary_is_protected_too() {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(uid, 0, "this test mounts an overlay: run it as root");
    let bin_dir = tempfile::tempdir().unwrap();
    let link_dir = tempfile::tempdir().unwrap();
    let dummy = tempfile::tempdir().unwrap();
    let prog = bin_dir.path().join("prog");
    std::fs::copy("/bin/busybox", &prog).expect("busybox-static is installed by scripts/test.sh");
    // An absolute link and a relative one, each in another directory.
    let abs = link_dir.path().join("abs");
    std::os::unix::fs::symlink(&prog, &abs).unwrap();
    let rel = link_dir.path().join("rel");
    let up = std::path::Path::new("..")
        .join(bin_dir.path().file_name().unwrap())
        .join("prog");
    std::os::unix::fs::symlink(&up, &rel).unwrap();
    assert!(rel.is_file(), "{} -> {}", rel.display(), up.display());
    let dummy_fd = berth_sys::fs::open(
        dummy.path(),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )
    .unwrap();
    for link in [&abs, &rel] {
        let fd = berth_sys::selfexe::protected_binary(link, dummy_fd.as_fd())
            .unwrap_or_else(|e| panic!("{}: {e}", link.display()));
        // SAFETY: statvfs is plain data; zeroed is a valid initial value.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid fd and out-pointer.
        assert_eq!(unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) }, 0);
        assert_ne!(
            st.f_flag & libc::ST_RDONLY,
            0,
            "{}: the fd is the writable file the link leads to",
            link.display()
        );
        let via = format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd());
        let e = std::fs::OpenOptions::new()
            .write(true)
            .open(&via)
            .unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EROFS),
            "{}: {e}",
            link.display()
        );
    }
}
