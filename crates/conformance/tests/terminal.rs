//! process.terminal with --console-socket (the pty master arrives by
//! SCM_RIGHTS and is the container's controlling terminal), and systemd
//! socket activation (LISTEN_FDS).

mod common;
use common::*;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

/// Receives one fd sent with SCM_RIGHTS.
fn recv_fd(sock: &std::os::unix::net::UnixStream) -> OwnedFd {
    let mut data = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain data; the buffers outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: valid socket and msghdr.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    // SAFETY: we read the first control message the kernel wrote.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        assert!(
            !c.is_null() && (*c).cmsg_type == libc::SCM_RIGHTS,
            "no fd received"
        );
        OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()))
    }
}

#[test]
fn console_socket_receives_the_pty() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "tty; stat -c %t:%T /dev/console; read line; echo got:$line; exit 5",
    ]);
    b.process().set_terminal(Some(true));
    b.write();
    let sock_path = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let pidfile = b.path().join("pid");
    let o = rt.exec_files(
        &[
            "create",
            "--bundle",
            b.path().to_str().unwrap(),
            "--console-socket",
            sock_path.to_str().unwrap(),
            "--pid-file",
            pidfile.to_str().unwrap(),
            &b.id,
        ],
        b.path(),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (conn, _) = listener.accept().unwrap();
    let master = recv_fd(&conn);
    rt.exec(&["start", &b.id]).ok();
    let mut m = std::fs::File::from(master);
    m.write_all(b"hello\n").unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // Read until the slave side closes (EIO) or we have what we need.
    while let Ok(n) = m.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&out).contains("got:hello") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("/dev/pts/0"), "tty: {text}");
    assert!(
        text.contains("88:0") || text.contains("136:0"),
        "/dev/console is not the pty: {text}"
    );
    assert!(text.contains("got:hello"), "{text}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    rt.wait_status(&b.id, "stopped");
    let _ = pid;
    rt.exec(&["delete", &b.id]).ok();
}

#[test]
fn terminal_without_console_socket_is_refused_by_create() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.process().set_terminal(Some(true));
    assert_ne!(rt.create(&b).code, 0);
    assert!(rt.exec(&["list", "-q"]).ok().stdout.trim().is_empty());
}

#[test]
fn listen_fds_are_passed_on() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo $LISTEN_FDS $LISTEN_PID; readlink /proc/self/fd/3",
    ]);
    b.id = unique_id("lfd");
    b.write();
    let passed = b.path().join("passed-fd");
    std::fs::write(&passed, "x").unwrap();
    let f = std::fs::File::open(&passed).unwrap();
    let mut cmd = rt.cmd();
    cmd.args(["run", "--bundle", b.path().to_str().unwrap(), &b.id])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", std::process::id().to_string());
    pass_as_fd3(&mut cmd, &f);
    let o = Out::from_output(cmd.output().unwrap()).ok();
    assert_eq!(o.stdout, format!("1 1\n{}\n", passed.display()));
}
