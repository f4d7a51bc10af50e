//! process.terminal with --console-socket (the pty master arrives by
//! SCM_RIGHTS and is the container's controlling terminal), and systemd
//! socket activation (LISTEN_FDS).

mod common;
use common::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;

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

/// CVE-2025-52565: an image whose /dev/console is a symlink (here to a
/// file elsewhere in the rootfs, and through it to an absolute path) must
/// not get the pty bound on the symlink's target.
#[test]
fn console_symlink_is_not_followed() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "cat /proc/self/mountinfo"]);
    b.process().set_terminal(Some(true));
    // No tmpfs on /dev: the image's /dev, with its symlink, is what the
    // runtime finds (devpts stays, for the pty).
    b.remove_mounts(|d| d == std::path::Path::new("/dev"));
    std::fs::write(b.rootfs().join("target"), "image file\n").unwrap();
    std::os::unix::fs::symlink("/target", b.rootfs().join("dev/console")).unwrap();
    let o = rt.run(&b);
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("target")).unwrap(),
        "image file\n"
    );
    if o.code == 0 {
        assert!(
            !o.stdout.lines().any(|l| l.contains(" /target ")),
            "the pty was bound on the symlink's target: {}",
            o.stdout
        );
    } else {
        assert!(o.stderr.contains("/dev/console"), "{}", o.stderr);
    }
}
