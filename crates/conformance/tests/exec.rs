//! `exec` as runc's callers use it: a new process in every namespace and
//! the cgroup of a running container, with the container's security
//! context unless told otherwise; its exit code; runc's flags; `--process`;
//! terminals; `--detach` with `--pid-file`; the container's seccomp profile;
//! and clear errors for containers that are stopped or paused.

mod common;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;

fn ns_of(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn exec_joins_namespaces_and_cgroup_with_the_containers_context() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.add_namespace(oci_spec::runtime::LinuxNamespaceType::Cgroup, None);
    let init = rt.start_detached(&b).to_string();
    // A detached exec, so that its namespaces can be read from outside.
    let pid = rt.exec_detached(&b, &["sleep", "50"]).to_string();
    for kind in ["mnt", "pid", "net", "ipc", "uts", "cgroup"] {
        assert_eq!(ns_of(&pid, kind), ns_of(&init, kind), "{kind} namespace");
    }
    let cg = |p: &str| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(cg(&pid), cg(&init), "same cgroups as the init");
    // The container's own context, as the checker sees it.
    let r = rt.exec(&["exec", &b.id, "/checker"]).ok().json();
    assert!(
        r["pid"].as_i64().unwrap() > 1,
        "a pid of the container's namespace: {r}"
    );
    // runc spec's capabilities: AUDIT_WRITE, KILL, NET_BIND_SERVICE.
    assert_eq!(r["cap_bnd"], "0000000020000420", "{r}");
    assert_eq!(r["cap_eff"], "0000000020000420", "{r}");
    assert_eq!(r["no_new_privs"], "1");
    assert_eq!(r["cwd"], "/");
    assert_eq!(r["uid"], 0);
    // CVE-2024-21626 for exec: none of the runtime's fds (state lock, init
    // pidfd, cgroup directory, channel) reaches the process.
    let fds: Vec<&String> = r["fds"].as_object().unwrap().keys().collect();
    assert_eq!(fds, ["0", "1", "2"], "leaked fds: {}", r["fds"]);
    rt.exec(&["delete", "--force", &b.id]).ok();
}

#[test]
fn exit_codes_and_signals() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    rt.start_detached(&b);
    assert_eq!(rt.exec(&["exec", &b.id, "sh", "-c", "exit 7"]).code, 7);
    assert_eq!(
        rt.exec(&["exec", &b.id, "sh", "-c", "kill -KILL $$"]).code,
        128 + 9
    );
    let o = rt.exec(&["exec", &b.id, "/no/such/program"]);
    assert_ne!(o.code, 0);
    if is_berth() {
        assert!(o.stderr.contains("/no/such/program"), "{}", o.stderr);
    }
}

#[test]
fn flags_change_the_process() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    rt.start_detached(&b);
    let o = rt
        .exec(&[
            "exec",
            "--cwd",
            "/tmp",
            "-e",
            "FOO=bar",
            "-e",
            "PATH=/bin",
            "-u",
            "1000:1001",
            "-g",
            "2000",
            "--cap",
            "CAP_NET_ADMIN",
            &b.id,
            "sh",
            "-c",
            "pwd; echo $FOO; id; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status",
        ])
        .ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "/tmp");
    assert_eq!(lines[1], "bar");
    assert_eq!(lines[2], "uid=1000 gid=1001 groups=2000");
    // A non-root user keeps no effective capabilities (no ambient ones).
    assert_eq!(lines[3], "CapEff:\t0000000000000000");
    // --cap added NET_ADMIN to the bounding set: a root exec has it.
    let o = rt
        .exec(&[
            "exec",
            "--cap",
            "CAP_NET_ADMIN",
            &b.id,
            "grep",
            "CapBnd",
            "/proc/self/status",
        ])
        .ok();
    let bnd = u64::from_str_radix(o.stdout.trim().trim_start_matches("CapBnd:\t"), 16).unwrap();
    assert_ne!(bnd & (1 << 12), 0, "CAP_NET_ADMIN (12): {}", o.stdout);
    // --no-new-privs on a container process that had it off.
    let mut b2 = Bundle::new(&["sleep", "100"]);
    b2.process().set_no_new_privileges(Some(false));
    rt.start_detached(&b2);
    let nnp = |extra: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[b2.id.as_str(), "grep", "NoNewPrivs", "/proc/self/status"]);
        rt.exec(&args).ok().stdout
    };
    assert_eq!(nnp(&[]), "NoNewPrivs:\t0\n");
    assert_eq!(nnp(&["--no-new-privs"]), "NoNewPrivs:\t1\n");
}

#[test]
fn process_json_replaces_the_process() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    rt.start_detached(&b);
    let process = json!({
        "terminal": false,
        "user": {"uid": 33, "gid": 33},
        "args": ["sh", "-c", "id -u; echo $ONLY; exit 3"],
        "env": ["ONLY=this", "PATH=/bin"],
        "cwd": "/bin",
        "noNewPrivileges": true
    });
    let file = b.path().join("process.json");
    std::fs::write(&file, process.to_string()).unwrap();
    let o = rt.exec(&["exec", "--process", file.to_str().unwrap(), &b.id]);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert_eq!(o.stdout, "33\nthis\n");
    // A malformed one names the field.
    std::fs::write(
        &file,
        r#"{"args": ["true"], "cwd": "/", "user": {"uid": "x"}}"#,
    )
    .unwrap();
    let o = rt.exec(&["exec", "--process", file.to_str().unwrap(), &b.id]);
    assert_ne!(o.code, 0);
    if is_berth() {
        assert!(o.stderr.contains("user.uid"), "{}", o.stderr);
    }
}

#[test]
fn tty_through_the_console_socket() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    rt.start_detached(&b);
    let sock_path = b.path().join("exec-console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let mut child = rt
        .cmd()
        .args([
            "exec",
            "-t",
            "--console-socket",
            sock_path.to_str().unwrap(),
            &b.id,
            "sh",
            "-c",
            "tty; read line; echo got:$line; exit 4",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let mut master = std::fs::File::from(recv_fd(&conn));
    drop(conn);
    master.write_all(b"hello\n").unwrap();
    let status = child.wait().unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert_eq!(status.code(), Some(4), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("got:hello"), "{text}");
}

#[test]
fn preserve_fds_and_seccomp() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.linux().set_seccomp(Some(
        serde_json::from_value(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
        }))
        .unwrap(),
    ));
    rt.start_detached(&b);
    let o = rt.exec(&["exec", &b.id, "sh", "-c", "mkdir /tmp/x; echo $?"]);
    assert_eq!(o.stdout, "1\n", "the container's seccomp profile applies");
    assert!(
        o.stderr.contains("Function not implemented"),
        "{}",
        o.stderr
    );
    let passed = b.path().join("passed-fd");
    std::fs::write(&passed, "x").unwrap();
    let f = std::fs::File::open(&passed).unwrap();
    let mut cmd = rt.cmd();
    cmd.args([
        "exec",
        "--preserve-fds",
        "1",
        &b.id,
        "readlink",
        "/proc/self/fd/3",
    ]);
    pass_as_fd3(&mut cmd, &f);
    let o = Out::from_output(cmd.output().unwrap()).ok();
    assert_eq!(o.stdout.trim(), passed.display().to_string());
}

#[test]
fn exec_into_a_user_namespace() {
    let rt = Runtime::new();
    let b = userns_bundle(&["sleep", "100"]);
    let init = rt.start_detached(&b).to_string();
    let o = rt
        .exec(&["exec", &b.id, "sh", "-c", "id -u; cat /proc/self/uid_map"])
        .ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "0", "root of the container's user namespace");
    assert!(
        lines[1].split_whitespace().eq(["0", "100000", "65536"]),
        "{}",
        o.stdout
    );
    let pid = rt.exec_detached(&b, &["sleep", "30"]).to_string();
    assert_eq!(ns_of(&pid, "user"), ns_of(&init, "user"));
    // In the container's cgroups, every hierarchy: on v1 it moved itself
    // in before joining the user namespace, where the host's cgroup files
    // are no longer its to write.
    let cg = |p: &str| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(cg(&pid), cg(&init), "same cgroups as the init");
}

#[test]
fn exec_into_stopped_and_paused_containers_fails() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let init = rt.start_detached(&b);
    // Paused: frozen through the cgroup freezer (v1) or cgroup.freeze (v2).
    let (file, frozen, thawed) = if cgroup_v2() {
        (b.cgroup_dir("").join("cgroup.freeze"), "1", "0")
    } else {
        (
            b.cgroup_dir("freezer").join("freezer.state"),
            "FROZEN",
            "THAWED",
        )
    };
    std::fs::write(&file, frozen).unwrap();
    let o = rt.exec(&["exec", &b.id, "true"]);
    std::fs::write(&file, thawed).unwrap();
    assert_ne!(o.code, 0, "exec into a paused container");
    if is_berth() {
        assert!(o.stderr.contains("paused"), "{}", o.stderr);
    }
    // Stopped.
    // SAFETY: plain syscall.
    unsafe { libc::kill(init, libc::SIGKILL) };
    rt.wait_status(&b.id, "stopped");
    let o = rt.exec(&["exec", &b.id, "true"]);
    assert_ne!(o.code, 0, "exec into a stopped container");
    if is_berth() {
        assert!(o.stderr.contains("stopped"), "{}", o.stderr);
    }
}
