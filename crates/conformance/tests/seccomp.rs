//! config-linux.md, seccomp: every action, argument conditions, several
//! architectures, filter flags, the default errno, unknown syscall names,
//! loading without no_new_privs for an unprivileged user, and
//! SCMP_ACT_NOTIFY with a listener that receives the notify fd and answers
//! the container's syscalls.

mod common;
use common::*;
use serde_json::json;
use std::os::fd::{AsRawFd, OwnedFd};

fn set_seccomp(b: &mut Bundle, v: serde_json::Value) {
    b.linux()
        .set_seccomp(Some(serde_json::from_value(v).expect("seccomp JSON")));
}

#[test]
fn actions_and_errno() {
    let rt = Runtime::new();
    // Subshells: an applet killed by the filter takes only its subshell.
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/self/status; \
         mkdir /tmp/a; echo mkdir=$?; rmdir /tmp; echo rmdir=$?; \
         (sync); echo sync=$?; (truncate -s 0 /tmp/t); echo truncate=$?; \
         (ln /checker /tmp/l); echo link=$?; chmod 600 /checker; echo chmod=$?",
    ]);
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["rmdir", "unlinkat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["truncate", "ftruncate"], "action": "SCMP_ACT_TRAP"},
                {"names": ["link", "linkat"], "action": "SCMP_ACT_KILL"},
                {"names": ["chmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_LOG"},
                {"names": ["not_a_syscall_of_any_kernel"], "action": "SCMP_ACT_ERRNO"}
            ]
        }),
    );
    let o = rt.run(&b).ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "Seccomp:\t2",
            "mkdir=1",
            "rmdir=1",
            "sync=159",
            "truncate=159",
            "link=159",
            "chmod=0"
        ],
        "stderr: {}",
        o.stderr
    );
    assert!(
        o.stderr.contains("Function not implemented"),
        "errnoRet 38 is ENOSYS: {}",
        o.stderr
    );
    assert!(
        o.stderr.contains("Operation not permitted"),
        "ERRNO without errnoRet is EPERM: {}",
        o.stderr
    );
}

#[test]
fn argument_conditions() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "touch /tmp/f; chmod 700 /tmp/f; echo m700=$?; chmod 4755 /tmp/f; echo suid=$?; \
         chmod 755 /tmp/f; echo m755=$?; kill -0 1; echo kill0=$?; kill -USR1 1; echo usr1=$?",
    ]);
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                // Exactly 0700.
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
                {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
                // No set-uid bit: mode & 04000 == 04000 is refused.
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 0o4000, "valueTwo": 0o4000, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 2, "value": 0o4000, "valueTwo": 0o4000, "op": "SCMP_CMP_MASKED_EQ"}]},
                // Both conditions: pid 1 and SIGUSR1.
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}
            ]
        }),
    );
    let o = rt.run(&b).ok();
    assert_eq!(
        o.stdout, "m700=1\nsuid=1\nm755=0\nkill0=0\nusr1=1\n",
        "stderr: {}",
        o.stderr
    );
}

/// An allowlist like Docker's: the default is an errno, every syscall but
/// mkdir is allowed.
#[test]
fn default_errno_with_an_allowlist() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "mkdir /tmp/a; echo mkdir=$?; echo still-alive"]);
    let names: Vec<String> = (0..600)
        .filter_map(|n| libseccomp::ScmpSyscall::from(n).get_name().ok())
        .filter(|n| n != "mkdir" && n != "mkdirat")
        .collect();
    assert!(names.len() > 300);
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
        }),
    );
    let o = rt.run(&b).ok();
    assert_eq!(o.stdout, "mkdir=1\nstill-alive\n");
    assert!(
        o.stderr.contains("Function not implemented"),
        "{}",
        o.stderr
    );
}

/// Without no_new_privs an unprivileged process may not load a filter:
/// the runtime loads it while it still holds CAP_SYS_ADMIN, before it
/// becomes the user. With no_new_privs it loads it last.
#[test]
fn filter_applies_to_an_unprivileged_user() {
    let rt = Runtime::new();
    for nnp in [false, true] {
        let mut b = Bundle::new(&["sh", "-c", "id -u; mkdir /tmp/a; echo mkdir=$?"]);
        std::fs::set_permissions(
            b.rootfs().join("tmp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        let p = b.process();
        let mut user = p.user().clone();
        user.set_uid(1000);
        user.set_gid(1000);
        p.set_user(user);
        p.set_no_new_privileges(Some(nnp));
        set_seccomp(
            &mut b,
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
            }),
        );
        let o = rt.run(&b).ok();
        assert_eq!(o.stdout, "1000\nmkdir=1\n", "nnp={nnp}: {}", o.stderr);
        assert!(
            o.stderr.contains("Function not implemented"),
            "nnp={nnp}: {}",
            o.stderr
        );
    }
}

// struct seccomp_notif / seccomp_notif_resp (linux/seccomp.h).
#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const NOTIF_SEND: libc::c_ulong = 0xc018_2101;

/// Receives the listener message: the container process state as JSON and
/// the notify fd.
fn accept_listener(sock: &std::os::unix::net::UnixListener) -> (serde_json::Value, OwnedFd) {
    let (conn, _) = sock.accept().expect("the runtime connects to listenerPath");
    let (data, fd) = recv_with_fd(&conn);
    assert!(!data.is_empty(), "the listener message is empty");
    let v = serde_json::from_slice(&data).expect("listener message is JSON");
    (v, fd)
}

#[test]
fn notify_sends_the_fd_to_the_listener() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "mkdir /tmp/n; echo mkdir=$?; mkdir /tmp/m && echo second=$?",
    ]);
    let path = b.path().join("listener.sock");
    let sock = std::os::unix::net::UnixListener::bind(&path).unwrap();
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": path,
            "listenerMetadata": "berth-test-metadata",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    let id = b.id.clone();
    // The supervisor: refuses the first mkdir with ENOMSG, lets the second
    // one go on (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
    let supervisor = std::thread::spawn(move || {
        let (state, fd) = accept_listener(&sock);
        let mut seen = 0;
        while seen < 2 {
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, 10_000) } <= 0 || pfd.revents & libc::POLLIN == 0 {
                break;
            }
            let mut n = Notif::default();
            // SAFETY: n is a zeroed seccomp_notif, as the kernel requires.
            if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV, &mut n) } != 0 {
                break;
            }
            let resp = NotifResp {
                id: n.id,
                val: 0,
                error: if seen == 0 { -libc::ENOMSG } else { 0 },
                flags: if seen == 0 { 0 } else { 1 }, // CONTINUE
            };
            // SAFETY: resp is a valid seccomp_notif_resp.
            unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND, &resp) };
            seen += 1;
        }
        (state, seen)
    });
    let o = rt.run(&b);
    let (state, seen) = supervisor.join().unwrap();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "mkdir=1\nsecond=0\n", "{}", o.stderr);
    assert!(
        o.stderr.contains("No message of desired type"),
        "{}",
        o.stderr
    );
    assert_eq!(seen, 2);
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "berth-test-metadata");
    assert_eq!(state["state"]["id"], id);
    assert!(state["pid"].as_i64().unwrap() > 0);
}
