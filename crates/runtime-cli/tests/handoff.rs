//! berth-runtime started ahead of its command line (`berth_runtime::handoff`),
//! as berth's monitor starts it: what it is handed runs with the handed
//! stdio; a closed socket ends it quietly; anything malformed is an error.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Command, Stdio};

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");
const ENV: &str = "BERTH_RUNTIME_HANDOFF_FD";

/// berth-runtime started with the handoff variable naming its end of a
/// fresh socket pair; our end.
fn started_ahead() -> (std::process::Child, OwnedFd) {
    let (ours, theirs) = berth_sys::socket::seqpacket_pair().unwrap();
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
        use std::os::fd::FromRawFd;
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
    berth_sys::socket::send_fds(
        sock.as_fd(),
        b"--version\0",
        &[null.as_raw_fd(), out_w.as_raw_fd(), out_w.as_raw_fd()],
    )
    .unwrap();
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
    berth_sys::socket::send_fds(sock.as_fd(), b"--version\0", &[]).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(ENV) && err.contains("malformed"), "{err}");
    assert!(o.stdout.is_empty(), "{o:?}");

    // Arguments not ended by a NUL.
    let (child, sock) = started_ahead();
    let null = std::fs::File::open("/dev/null").unwrap();
    let n = null.as_raw_fd();
    berth_sys::socket::send_fds(sock.as_fd(), b"--version", &[n, n, n]).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(o.stdout.is_empty(), "{o:?}");
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
