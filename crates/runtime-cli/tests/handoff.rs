//! berth-runtime started ahead of its command line (`berth_runtime::handoff`),
//! as berth's monitor starts it: what it is handed runs with the handed
//! stdio; a closed socket ends it quietly; anything malformed is an error.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Command, Stdio};

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");
const ENV: &str = "BERTH_RUNTIME_HANDOFF_FD";

/// berth-runtime started with the handoff variable naming its end of a
/// fresh socket pair; our end.
fn started_ahead() -> (std::process::Child, OwnedFd) {
    let (ours, theirs) = seqpacket_pair();
    // SAFETY: F_SETFD on an fd we own: the runtime inherits it.
    let r = unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_SETFD, 0) };
    assert_eq!(r, 0);
    let child = Command::new(RUNTIME)
        .env(ENV, theirs.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(theirs);
    (child, ours)
}

fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: a valid two-element out array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: two new fds owned by us.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

#[test]
fn the_handed_command_line_runs_with_the_handed_stdio() {
    let (child, sock) = started_ahead();
    let (mut out_r, out_w) = pipe();
    let null = std::fs::File::open("/dev/null").unwrap();
    send_fds(
        &sock,
        b"--version\0",
        &[null.as_raw_fd(), out_w.as_raw_fd(), out_w.as_raw_fd()],
    );
    drop(out_w);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    // Nothing on the stdout it was started with: all on the handed one.
    assert!(o.stdout.is_empty(), "{o:?}");
    let mut text = String::new();
    out_r.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("berth-runtime version"), "{text:?}");
}

#[test]
fn a_closed_socket_ends_it_quietly() {
    let (child, sock) = started_ahead();
    drop(sock);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{o:?}");
}

#[test]
fn a_malformed_hand_over_is_an_error() {
    // No fds.
    let (child, sock) = started_ahead();
    send_fds(&sock, b"--version\0", &[]);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(ENV) && err.contains("malformed"), "{err}");
    assert!(o.stdout.is_empty(), "{o:?}");

    // Arguments not ended by a NUL.
    let (child, sock) = started_ahead();
    let null = std::fs::File::open("/dev/null").unwrap();
    let n = null.as_raw_fd();
    send_fds(&sock, b"--version", &[n, n, n]);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(o.stdout.is_empty(), "{o:?}");
}

/// A runtime started ahead from a binary that is not protected (here the
/// build's own, writable) re-executes itself from a protected copy before
/// it creates anything (CVE-2019-5736): the copy must run the handed
/// command line, not the started one (its name alone, which printed the
/// usage: every `berth run` failed with "the runtime failed (exit status
/// 2)" when berth-runtime was reached through a symbolic link).
#[test]
fn a_handed_command_survives_the_runtimes_re_execution() {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(uid, 0, "run as root (the runtime's create path)");
    let root = std::env::temp_dir().join(format!("berth-handoff-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let bundle = root.join("no-such-bundle");
    let (child, sock) = started_ahead();
    let (mut err_r, err_w) = pipe();
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut args = Vec::new();
    for a in [
        "--root".as_ref(),
        root.as_os_str(),
        "run".as_ref(),
        "--bundle".as_ref(),
        bundle.as_os_str(),
        "handoff-reexec".as_ref(),
    ] {
        args.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(a));
        args.push(0);
    }
    send_fds(
        &sock,
        &args,
        &[null.as_raw_fd(), null.as_raw_fd(), err_w.as_raw_fd()],
    );
    drop(err_w);
    let o = child.wait_with_output().unwrap();
    let mut text = String::new();
    err_r.read_to_string(&mut text).unwrap();
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(o.status.code(), Some(1), "{o:?} {text}");
    assert!(
        text.contains("bundle") && text.contains("no-such-bundle"),
        "not the handed command's error: {text:?}"
    );
}

#[test]
fn the_variable_must_name_a_socket() {
    for bad in ["1", "x", "99999"] {
        let o = Command::new(RUNTIME)
            .arg("--version")
            .env(ENV, bad)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{bad}: {o:?}");
        assert!(o.stdout.is_empty(), "{bad}: {o:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(ENV),
            "{bad}: {o:?}"
        );
    }
    // An open fd that is not a socket.
    let f = std::fs::File::open("/dev/null").unwrap();
    let mut c = Command::new(RUNTIME);
    c.arg("--version").env(ENV, f.as_raw_fd().to_string());
    // SAFETY: F_SETFD on an fd we own: the runtime inherits it.
    assert_eq!(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFD, 0) }, 0);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a socket"),
        "{o:?}"
    );
}

/// A SOCK_SEQPACKET pair (close-on-exec), as the monitor makes.
fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: a valid two-element out array.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0);
    // SAFETY: two new fds owned by us.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// One message with `fds` attached (SCM_RIGHTS), as the monitor sends it
/// (or not quite: the tests send malformed ones too).
fn send_fds(sock: &OwnedFd, data: &[u8], fds: &[RawFd]) {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain data; the fields used are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds) as u32;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        // SAFETY: a pure size computation.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(bytes) } as usize;
        // SAFETY: the control buffer (64 bytes) holds the header and up to
        // 8 fds; the tests pass at most 3.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast(), fds.len());
        }
    }
    // SAFETY: msg describes valid buffers for the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    assert_eq!(
        n,
        data.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}
