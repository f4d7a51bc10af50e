//! What real callers (containerd's shim, dockerd, podman, CRI) rely on
//! beyond the runtime-spec: the behaviour of runc that they were written
//! against. Each test here is a regression test of a bug a real caller hit
//! (issue 19); `callers.rs` drives the real engines.

mod common;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};

/// A bundle whose process is a non-root user with the capabilities Docker
/// gives one (no CAP_DAC_OVERRIDE), and an /etc/passwd naming its home.
fn user_bundle(args: &[&str]) -> Bundle {
    let mut b = Bundle::new(args);
    std::fs::write(
        b.rootfs().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000:u:/home/u:/bin/sh\n",
    )
    .unwrap();
    let caps = json!(["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"]);
    let p = b.process();
    p.set_user(serde_json::from_value(json!({"uid": 1000, "gid": 1000})).unwrap());
    p.set_capabilities(Some(
        serde_json::from_value(json!({
            "bounding": caps, "effective": caps, "permitted": caps
        }))
        .unwrap(),
    ));
    b
}

/// Waits until the container has stopped and returns what its process
/// wrote to the stdout the caller of `create` gave it.
fn stdout_when_stopped(rt: &Runtime, b: &Bundle) -> String {
    rt.wait_status(&b.id, "stopped");
    std::fs::read_to_string(b.path().join("stdout.log")).unwrap()
}

/// Issue 19.1: `create` + `start` with a non-root user that lacks
/// CAP_DAC_OVERRIDE (docker -u 1000, podman -u 1000, ctr with a user):
/// the init could not open exec.fifo once it had become the user.
#[test]
fn a_non_root_user_without_dac_override_starts_through_create_and_start() {
    let rt = Runtime::new();
    let mut b = user_bundle(&["/checker"]);
    // A working directory only root may enter: entered before the user
    // switch, as runc does.
    std::fs::create_dir(b.rootfs().join("secret")).unwrap();
    std::fs::set_permissions(
        b.rootfs().join("secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    b.process().set_cwd("/secret".into());
    let o = rt.create(&b);
    assert_eq!(o.code, 0, "create: {}", o.stderr);
    let o = rt.exec(&["start", &b.id]);
    assert_eq!(o.code, 0, "start: {}", o.stderr);
    let r: serde_json::Value = serde_json::from_str(stdout_when_stopped(&rt, &b).trim()).unwrap();
    assert_eq!(r["uid"], 1000);
    assert_eq!(r["cwd"], "/secret");
    let env: Vec<&str> = r["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"HOME=/home/u"),
        "HOME from /etc/passwd: {env:?}"
    );
    // The caller's stdout here is a host file of root's: it stays root's
    // (runc would give it to the user, and with it the host file).
    assert_eq!(r["stdio_owners"][1][0], 0, "{r}");
    rt.exec(&["delete", &b.id]).ok();
    // Pipes are given to the user, as runc gives them, so that the process
    // may reopen /dev/stdout.
    let mut b = user_bundle(&["/checker"]);
    let r = rt.check(&mut b);
    assert_eq!(r["stdio_owners"][1][0], 1000, "{r}");
    assert_eq!(r["stdio_owners"][2][0], 1000, "{r}");
}

/// Issue 19.1: an init that dies between `create` and `start` is reported
/// by `start` (and in its --log) with runc's words and level, not as a
/// container that merely "is stopped".
#[test]
fn start_reports_an_init_that_died_after_create() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let o = rt.create(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let pid = rt.state(&b.id)["pid"].as_i64().unwrap() as i32;
    // SAFETY: plain kill of the container's init, our own child's child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    rt.wait_status(&b.id, "stopped");
    let log = b.path().join("start.log");
    let o = Out::from_output(
        rt.cmd()
            .args(["--log", log.to_str().unwrap(), "--log-format", "json"])
            .args(["start", &b.id])
            .output()
            .unwrap(),
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("error"), "runc's word: {}", o.stderr);
    assert!(
        o.stderr
            .contains("cannot start a container that has stopped"),
        "runc's wording: {}",
        o.stderr
    );
    let last = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error", "{last}");
    assert!(line["msg"].as_str().unwrap().contains("stopped"), "{last}");
    rt.exec(&["delete", &b.id]).ok();
}

/// Issue 19.2, 19.3 and 20.4: HOME from /etc/passwd; a session of its
/// own; default signal dispositions and an empty mask whatever the caller
/// ignored or blocked; a /dev/null stdin reopened read-write; `lo` up in a
/// new network namespace; no /dev/core without a /proc/kcore. For run,
/// create + start, and exec.
#[test]
fn the_process_starts_as_under_runc() {
    let rt = Runtime::new();
    let check = |r: &serde_json::Value, what: &str| {
        assert_eq!(r["sid"], r["pid"], "{what}: a session leader: {r}");
        assert_eq!(r["pgid"], r["pid"], "{what}: {r}");
        assert_eq!(
            r["sig_ign"], "0000000000000000",
            "{what}: nothing ignored: {r}"
        );
        assert_eq!(
            r["sig_blk"], "0000000000000000",
            "{what}: nothing blocked: {r}"
        );
        if what != "exec" {
            // runc reopens a /dev/null stdio for the init only.
            assert_eq!(r["stdin_access"], libc::O_RDWR, "{what}: /dev/null rw: {r}");
        }
        assert_eq!(r["lo_up"], true, "{what}: {r}");
        assert_eq!(
            r["dev_core"],
            std::path::Path::new("/proc/kcore").exists(),
            "{what}: {r}"
        );
        let env: Vec<&str> = r["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(env.contains(&"HOME=/root"), "{what}: {env:?}");
    };
    // The caller ignores SIGINT and SIGHUP and blocks SIGUSR1; Rust's
    // runtime (berth-runtime's too) ignores SIGPIPE.
    let hostile = |c: &mut Command| {
        // SAFETY: signal and sigprocmask are async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(c, || {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR1);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
    };
    // The checker is a Rust program, whose runtime ignores SIGPIPE itself:
    // busybox reads the dispositions first, then execs the checker.
    let probe = [
        "sh",
        "-c",
        "grep -E '^Sig(Ign|Blk)' /proc/self/status; exec /checker",
    ];
    let parse = |out: &str| -> serde_json::Value {
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        let mut r: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        for l in &lines[..2] {
            if let Some((k, v)) = l.split_once(':') {
                let key = if k == "SigIgn" { "sig_ign" } else { "sig_blk" };
                r[key] = v.trim().into();
            }
        }
        r
    };
    let b = Bundle::new(&probe);
    b.write();
    let mut c = rt.cmd();
    c.args(["run", "--bundle", b.path().to_str().unwrap(), &b.id]);
    hostile(&mut c);
    let o = Out::from_output(c.output().unwrap()).ok();
    check(&parse(&o.stdout), "run");

    let b = Bundle::new(&probe);
    b.write();
    let mut c = rt.cmd();
    c.args(["create", "--bundle", b.path().to_str().unwrap(), &b.id])
        .stdout(std::fs::File::create(b.path().join("stdout.log")).unwrap())
        .stderr(Stdio::inherit());
    hostile(&mut c);
    assert!(c.status().unwrap().success());
    rt.exec(&["start", &b.id]).ok();
    check(&parse(&stdout_when_stopped(&rt, &b)), "create+start");
    rt.exec(&["delete", &b.id]).ok();

    let mut b = Bundle::new(&["sleep", "30"]);
    rt.start_detached(&b);
    let mut c = rt.cmd();
    c.args(["exec", &b.id]).args(probe);
    hostile(&mut c);
    let o = Out::from_output(c.output().unwrap()).ok();
    check(&parse(&o.stdout), "exec");
    b.set_args(&["true"]);
    rt.exec(&["delete", "--force", &b.id]).ok();
}

/// Issue 19.4: creates that join another container's namespaces (every
/// Kubernetes container joins its pod's) ran a stage process whose init
/// could speak before the stage had told the runtime its pid: about one
/// create in 400 under load failed with "unexpected message Ready from the
/// stage process". 1000 creates, 16 at a time, on a machine loaded with
/// 16 busy threads.
#[test]
fn concurrent_creates_that_join_namespaces_never_race() {
    let rt = std::sync::Arc::new(Runtime::new());
    let sandbox = Bundle::new(&["sleep", "300"]);
    let pid = rt.start_detached(&sandbox);
    // Load on every core, as a busy node has.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let burners: Vec<_> = (0..16)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                x
            })
        })
        .collect();
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let rt = rt.clone();
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                // The cgroup v2 lane runs under an emulated CPU: fewer there.
                let n = if cgroup_v2() { 3 } else { 63 };
                for i in 0..n {
                    let mut b = Bundle::new(&["true"]);
                    b.id = format!("{}-j{w}-{i}", b.id);
                    for (t, name) in [
                        (oci_spec::runtime::LinuxNamespaceType::Network, "net"),
                        (oci_spec::runtime::LinuxNamespaceType::Ipc, "ipc"),
                        (oci_spec::runtime::LinuxNamespaceType::Uts, "uts"),
                    ] {
                        b.remove_namespace(t);
                        b.add_namespace(t, Some(&format!("/proc/{pid}/ns/{name}")));
                    }
                    let o = rt.create(&b);
                    if o.code != 0 {
                        failures.push(o.stderr);
                        continue;
                    }
                    rt.exec(&["delete", "--force", &b.id]).ok();
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in burners {
        b.join().unwrap();
    }
    rt.exec(&["delete", "--force", &sandbox.id]).ok();
    assert!(
        failures.is_empty(),
        "{} of 1000 creates failed: {failures:?}",
        failures.len()
    );
}

/// Issue 19.5: what callers parse. containerd's shim takes a kill error
/// as "already gone" only with runc's words; exec failures end with 255;
/// signal 0 probes; a process.json without `user`; --ignore-paused; the
/// JSON of list and ps.
#[test]
fn errors_and_output_in_runcs_words() {
    let rt = Runtime::new();
    let o = rt.exec(&["list", "--format", "json"]).ok();
    assert_eq!(o.stdout.trim(), "null", "runc prints null for none");
    let o = rt.exec(&["kill", "no-such-container", "KILL"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("does not exist"), "{}", o.stderr);
    let o = rt.exec(&["state", "no-such-container"]);
    assert!(o.stderr.contains("does not exist"), "{}", o.stderr);

    let b = Bundle::new(&["sleep", "30"]);
    let pid = rt.start_detached(&b);
    rt.exec(&["kill", &b.id, "0"]).ok();
    let o = rt.exec(&["ps", "--format", "json", &b.id]).ok();
    assert_eq!(o.json(), json!([pid]));
    let l = rt.exec(&["list", "--format", "json"]).ok().json();
    let keys: Vec<&str> = l[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
    ] {
        assert!(keys.contains(&k), "list json lacks {k}: {l}");
    }
    // A process.json without `user` runs as root, as runc takes it.
    let p = b.path().join("p.json");
    std::fs::write(&p, r#"{"args":["id","-u"],"cwd":"/"}"#).unwrap();
    let o = rt.exec(&["exec", "-p", p.to_str().unwrap(), &b.id]).ok();
    assert_eq!(o.stdout.trim(), "0");
    let o = rt.exec(&["exec", &b.id, "/no/such/program"]);
    assert_eq!(
        o.code, 255,
        "runc's exit status for a failed exec: {}",
        o.stderr
    );
    assert!(o.stderr.contains("error"), "{}", o.stderr);

    rt.exec(&["pause", &b.id]).ok();
    let o = rt.exec(&["exec", &b.id, "true"]);
    assert_eq!(o.code, 255);
    assert!(
        o.stderr.contains("cannot exec in a paused container"),
        "{}",
        o.stderr
    );
    // With --ignore-paused the exec waits for the resume, as runc's.
    let child = rt
        .cmd()
        .args(["exec", "--ignore-paused", &b.id, "echo", "ok"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    rt.exec(&["resume", &b.id]).ok();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    let o = rt.exec(&["resume", &b.id]);
    assert!(o.stderr.contains("container not paused"), "{}", o.stderr);

    rt.exec(&["kill", &b.id, "KILL"]).ok();
    rt.wait_status(&b.id, "stopped");
    for args in [
        vec!["kill", &b.id, "TERM"],
        vec!["kill", &b.id, "0"],
        vec!["pause", &b.id],
    ] {
        let o = rt.exec(&args);
        assert_eq!(o.code, 1);
        assert!(
            o.stderr.contains("container not running"),
            "containerd matches this text: {}",
            o.stderr
        );
    }
    let o = rt.exec(&["exec", &b.id, "true"]);
    assert_eq!(o.code, 255);
    assert!(
        o.stderr.contains("cannot exec in a stopped container"),
        "{}",
        o.stderr
    );
    let o = rt.exec(&["start", &b.id]);
    assert!(
        o.stderr
            .contains("cannot start a container that has stopped"),
        "{}",
        o.stderr
    );
    rt.exec(&["delete", &b.id]).ok();
}

/// A seccomp profile that allows what a static program needs to start
/// and print, and nothing the runtime itself uses (close_range, getcwd,
/// capset, setresuid, prctl, chdir, umask, sendmsg, openat, ...).
fn minimal_profile() -> serde_json::Value {
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{
            "names": [
                "execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list",
                "rseq", "mmap", "munmap", "mprotect", "mremap", "madvise", "write",
                "exit", "exit_group", "rt_sigprocmask", "rt_sigaction", "sigaltstack",
                "poll", "getrandom", "prlimit64", "sched_getaffinity", "futex",
                "readlink", "newfstatat", "fstat", "read", "lseek", "clock_gettime"
            ],
            "action": "SCMP_ACT_ALLOW"
        }]
    })
}

/// Issue 19.6: the filter binds the container's program, not the
/// runtime: with an allowlist that lacks every call of the runtime's own
/// setup, the container starts, with no_new_privs on and off, for run,
/// create + start and exec; and a syscall newer than every one the profile
/// names answers ENOSYS (glibc falls back only on that), one it predates
/// the default errno.
#[test]
fn seccomp_binds_only_the_program() {
    let rt = Runtime::new();
    // The newest call of the profile is rseq (334 on x86_64); 400 is in
    // the kernel's unassigned range (335 is uretprobe since Linux 6.11).
    let probe = |out: &str| -> Vec<String> { out.lines().map(str::to_string).collect() };
    for nnp in [false, true] {
        let mut b = Bundle::new(&["/checker", "syscall", "400"]);
        b.process().set_no_new_privileges(Some(nnp));
        b.linux()
            .set_seccomp(Some(serde_json::from_value(minimal_profile()).unwrap()));
        let o = rt.run(&b);
        assert_eq!(o.code, 0, "run, nnp={nnp}: {}", o.stderr);
        assert_eq!(
            probe(&o.stdout),
            ["errno=38"],
            "newer than the profile: ENOSYS"
        );
        b.set_args(&["/checker", "syscall", "333"]);
        let o = rt.run(&b);
        assert_eq!(
            probe(&o.stdout),
            ["errno=1"],
            "older: the default errno (EPERM)"
        );

        b.set_args(&["/checker", "syscall", "400"]);
        let o = rt.create(&b);
        assert_eq!(o.code, 0, "create, nnp={nnp}: {}", o.stderr);
        let o = rt.exec(&["start", &b.id]);
        assert_eq!(o.code, 0, "start, nnp={nnp}: {}", o.stderr);
        assert_eq!(stdout_when_stopped(&rt, &b).trim(), "errno=38");
        rt.exec(&["delete", &b.id]).ok();
    }
    // exec into a container with the profile: its setup runs unfiltered too.
    let mut b = Bundle::new(&["/bin/sleep", "30"]);
    let mut profile = minimal_profile();
    profile["syscalls"][0]["names"]
        .as_array_mut()
        .unwrap()
        .extend([json!("nanosleep"), json!("clock_nanosleep")]);
    b.linux()
        .set_seccomp(Some(serde_json::from_value(profile).unwrap()));
    rt.start_detached(&b);
    let o = rt.exec(&["exec", &b.id, "/checker", "syscall", "400"]);
    assert_eq!(o.code, 0, "exec: {}", o.stderr);
    assert_eq!(o.stdout.trim(), "errno=38");
    rt.exec(&["delete", "--force", &b.id]).ok();
}

/// Issue 19.7: hooks. Without an env of their own they inherit (the
/// runtime's environment; for startContainer hooks, the container
/// process's); createContainer hooks run in the container's root.
#[test]
fn hooks_inherit_the_environment_and_run_where_runc_runs_them() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let out = b.path().join("hooks.out");
    let o = out.to_str().unwrap();
    b.process()
        .set_env(Some(vec!["PATH=/bin".into(), "FROM_PROCESS=yes".into()]));
    // createContainer and startContainer hooks run in the container's
    // mount namespace: their program and output file must be inside it.
    let hooks = json!({
        "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", format!("echo prestart:$BERTH_HOOK_MARK >> {o}")]}],
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", format!("echo createRuntime:$BERTH_HOOK_MARK >> {o}")]}],
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo createContainer:$(pwd) >> tmp/hooks.out"]}],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer:$FROM_PROCESS >> /tmp/hooks.out"]}],
        "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", format!("echo poststart:$BERTH_HOOK_MARK >> {o}")], "env": ["BERTH_HOOK_MARK=own"]}]
    });
    b.spec
        .set_hooks(Some(serde_json::from_value(hooks).unwrap()));
    b.write();
    let o = Out::from_output(
        rt.cmd()
            .env("BERTH_HOOK_MARK", "inherited")
            .args(["run", "--bundle", b.path().to_str().unwrap(), &b.id])
            .output()
            .unwrap(),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let host = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        host.lines().collect::<Vec<_>>(),
        [
            "prestart:inherited",
            "createRuntime:inherited",
            "poststart:own"
        ]
    );
    let inside = std::fs::read_to_string(b.rootfs().join("tmp/hooks.out")).unwrap();
    assert_eq!(
        inside.lines().collect::<Vec<_>>(),
        [
            format!(
                "createContainer:{}",
                b.rootfs().canonicalize().unwrap().display()
            ),
            "startContainer:yes".to_string()
        ]
    );
}

fn console_run(rt: &Runtime, b: &mut Bundle, exec: Option<&str>) -> String {
    let sock_path = b.path().join(format!("console-{}.sock", exec.is_some()));
    let listener = UnixListener::bind(&sock_path).unwrap();
    let sock = sock_path.to_str().unwrap().to_string();
    let child = match exec {
        None => {
            b.process().set_terminal(Some(true));
            b.write();
            rt.cmd()
                .args(["run", "-d", "--console-socket", &sock, "--bundle"])
                .arg(b.path())
                .arg(&b.id)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        }
        Some(id) => rt
            .cmd()
            .args([
                "exec",
                "-t",
                "-d",
                "--console-socket",
                &sock,
                id,
                "/checker",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    };
    let (conn, _) = listener.accept().unwrap();
    let mut m = std::fs::File::from(recv_fd(&conn));
    assert!(child.wait_with_output().unwrap().status.success());
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = m.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.ends_with(b"}\r\n") {
            break;
        }
    }
    let _ = m.flush();
    String::from_utf8_lossy(&out).trim().to_string()
}

/// Issue 19.7: the terminal belongs to the process's user (run and exec),
/// and the personality applies to exec'd processes too.
#[test]
fn terminal_owner_and_personality_for_run_and_exec() {
    let rt = Runtime::new();
    let mut b = user_bundle(&["/checker"]);
    b.linux().set_personality(Some(
        serde_json::from_value(json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]})).unwrap(),
    ));
    let text = console_run(&rt, &mut b, None);
    let r: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    // devpts is mounted with gid=5 (tty): the owner is the user, the group stays tty.
    assert_eq!(r["stdio_owners"][0], json!([1000, 5]), "{r}");
    assert_eq!(r["personality"], 0x0004_0000, "{r}");
    rt.exec(&["delete", "--force", &b.id]).ok();

    let mut b = user_bundle(&["sleep", "30"]);
    b.linux().set_personality(Some(
        serde_json::from_value(json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]})).unwrap(),
    ));
    rt.start_detached(&b);
    let id = b.id.clone();
    let text = console_run(&rt, &mut b, Some(&id));
    let r: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(r["stdio_owners"][0], json!([1000, 5]), "{r}");
    assert_eq!(r["personality"], 0x0004_0000, "exec'd: {r}");
    rt.exec(&["delete", "--force", &b.id]).ok();
}

/// Issue 19.7: configs runc runs and berth refused or broke: a read-only
/// /dev still gets its submounts and nodes; rootfsPropagation unbindable;
/// linux.memoryPolicy; a cgroup that already exists frozen is refused at
/// once instead of hanging the create.
#[test]
fn configs_runc_accepts_run_here_too() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "test -c /dev/null && test -d /dev/pts && test -d /dev/shm && echo ok; \
         touch /dev/x 2>/dev/null && echo writable; \
         grep -qE ' / [^ ]+ unbindable ' /proc/self/mountinfo && echo unbindable",
    ]);
    let mounts = b.spec.mounts().clone().unwrap();
    let mounts: Vec<_> = mounts
        .into_iter()
        .map(|mut m| {
            if m.destination() == std::path::Path::new("/dev") {
                let mut o = m.options().clone().unwrap_or_default();
                o.push("ro".into());
                m.set_options(Some(o));
            }
            m
        })
        .collect();
    b.spec.set_mounts(Some(mounts));
    b.linux().set_rootfs_propagation(Some("unbindable".into()));
    let o = rt.run(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        ["ok", "unbindable"],
        "{}",
        o.stderr
    );

    let mut b = Bundle::new(&["/checker"]);
    b.linux().set_memory_policy(Some(
        serde_json::from_value(json!({"mode": "MPOL_BIND", "nodes": "0"})).unwrap(),
    ));
    assert_eq!(rt.check(&mut b)["mempolicy"], 2, "MPOL_BIND");
    let mut b = Bundle::new(&["true"]);
    b.linux().set_memory_policy(Some(
        serde_json::from_value(json!({"mode": "MPOL_BIND"})).unwrap(),
    ));
    let o = rt.run(&b);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("linux.memoryPolicy"), "{}", o.stderr);

    // A frozen cgroup: made and frozen before the create.
    let b = Bundle::new(&["true"]);
    let freezer = if cgroup_v2() {
        b.cgroup_dir("")
    } else {
        b.cgroup_dir("freezer")
    };
    std::fs::create_dir_all(&freezer).unwrap();
    let (file, val) = if cgroup_v2() {
        ("cgroup.freeze", "1")
    } else {
        ("freezer.state", "FROZEN")
    };
    std::fs::write(freezer.join(file), val).unwrap();
    let t0 = std::time::Instant::now();
    let o = rt.run(&b);
    let took = t0.elapsed();
    let _ = std::fs::remove_dir(&freezer);
    let _ = std::fs::remove_dir(freezer.parent().unwrap());
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("frozen"), "{}", o.stderr);
    // Seconds even under the emulated CPU of the cgroup v2 lane; a hang
    // would be forever.
    assert!(took.as_secs() < 30, "refused at once, not hung: {took:?}");
}

/// Issue 19.7: `update --memory -1` lifts the swap limit with it (cgroup
/// v1 keeps memsw at least the memory limit, so the old swap limit would
/// refuse it), and a CFS period the kernel refuses under the old quota is
/// written after the new quota.
#[test]
fn update_lifts_swap_with_memory_and_orders_cpu_writes() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "30"]);
    let swap = !cgroup_v2()
        && std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    let mut res = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "memory": {"limit": 64 << 20},
        "cpu": {"period": 100000, "quota": 200000}
    });
    if swap {
        res["memory"]["swap"] = json!(128 << 20);
    }
    b.linux()
        .set_resources(Some(serde_json::from_value(res).unwrap()));
    rt.start_detached(&b);
    let o = rt.exec(&["update", "--memory", "-1", &b.id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = rt.exec(&[
        "update",
        "--cpu-period",
        "10000",
        "--cpu-quota",
        "5000",
        &b.id,
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    if !cgroup_v2() {
        let mem = b.cgroup_dir("memory");
        let read = |f: &str| {
            std::fs::read_to_string(mem.join(f))
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap()
        };
        assert!(read("memory.limit_in_bytes") > 1 << 50, "unlimited");
        if swap {
            assert!(
                read("memory.memsw.limit_in_bytes") > 1 << 50,
                "swap unlimited too"
            );
        }
        let cpu = b.cgroup_dir("cpu");
        let read = |f: &str| {
            std::fs::read_to_string(cpu.join(f))
                .unwrap()
                .trim()
                .to_string()
        };
        assert_eq!(read("cpu.cfs_period_us"), "10000");
        assert_eq!(read("cpu.cfs_quota_us"), "5000");
    } else {
        let d = b.cgroup_dir("");
        assert_eq!(
            std::fs::read_to_string(d.join("memory.max"))
                .unwrap()
                .trim(),
            "max"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("cpu.max")).unwrap().trim(),
            "5000 10000"
        );
    }
    rt.exec(&["delete", "--force", &b.id]).ok();
}

/// A directory `data` inside a 0700 directory of root's: a user
/// namespace's root may not reach it on the host.
fn behind_a_private_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let host = tempfile::Builder::new()
        .prefix("berth-private")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        host.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let data = host.path().join("data");
    std::fs::create_dir(&data).unwrap();
    (host, data)
}

/// Issue 19.7: a bind source the user namespace's root may not reach on
/// the host (below a directory only the host's root may enter) is cloned
/// by the runtime with its own privileges before the user namespace, as
/// runc opens it; read-only stays read-only.
#[test]
fn bind_sources_are_opened_before_the_user_namespace() {
    let rt = Runtime::new();
    let (_host, data) = behind_a_private_dir();
    std::fs::write(data.join("f"), "secret-but-shared\n").unwrap();
    let mut b = userns_bundle(&[
        "sh",
        "-c",
        "cat /mnt/f; touch /mnt/g 2>/dev/null || echo ro",
    ]);
    b.add_mount(
        serde_json::from_value(json!({
            "destination": "/mnt", "type": "bind",
            "source": data.to_str().unwrap(), "options": ["rbind", "ro"]
        }))
        .unwrap(),
    );
    let o = rt.run(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        ["secret-but-shared", "ro"]
    );
}

/// The CAP_SYS_ADMIN held past the user switch to load a seccomp filter
/// without no_new_privs must not become an ambient capability: the spec
/// lists it in bounding, inheritable and ambient but not in permitted, so
/// the kernel must never be asked to raise it.
#[test]
fn the_capability_held_for_seccomp_never_reaches_the_program() {
    let rt = Runtime::new();
    let mut b = user_bundle(&["/checker"]);
    let with = json!(["CAP_SYS_ADMIN", "CAP_KILL"]);
    let without = json!(["CAP_KILL"]);
    b.process().set_capabilities(Some(
        serde_json::from_value(json!({
            "bounding": with, "inheritable": with, "ambient": with,
            "permitted": without, "effective": without
        }))
        .unwrap(),
    ));
    b.process().set_no_new_privileges(Some(false));
    b.linux().set_seccomp(Some(
        serde_json::from_value(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["sync"], "action": "SCMP_ACT_ERRNO"}]
        }))
        .unwrap(),
    ));
    let r = rt.check(&mut b);
    let admin = 1u64 << 21;
    for set in ["cap_amb", "cap_eff", "cap_prm"] {
        let v = u64::from_str_radix(r[set].as_str().unwrap(), 16).unwrap();
        assert_eq!(v & admin, 0, "{set} has CAP_SYS_ADMIN: {r}");
    }
    assert_eq!(r["seccomp"], "2", "{r}");
}

/// A bind source cloned by the runtime (one the user namespace's root may
/// not reach) is a slave like the others: a mount made under it in the
/// container does not reach the host even when the host's source is on a
/// shared mount.
#[test]
fn a_bind_cloned_by_the_runtime_sends_nothing_back_to_the_host() {
    let rt = Runtime::new();
    let (_host, data) = behind_a_private_dir();
    std::fs::create_dir(data.join("sub")).unwrap();
    let d = data.to_str().unwrap();
    let sh = |c: &str| {
        let st = Command::new("sh").arg("-c").arg(c).status().unwrap();
        assert!(st.success(), "{c}");
    };
    // A shared mount of the test's own, removed at the end.
    sh(&format!("mount --bind {d} {d} && mount --make-shared {d}"));
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").args(["-R", &self.0]).status();
        }
    }
    let _u = Unmount(d.to_string());
    let mut b = userns_bundle(&["sh", "-c", "mount -t tmpfs t /mnt/sub && echo mounted"]);
    b.add_mount(
        serde_json::from_value(json!({
            "destination": "/mnt", "type": "bind", "source": d, "options": ["rbind"]
        }))
        .unwrap(),
    );
    let admin = json!(["CAP_SYS_ADMIN"]);
    b.process().set_capabilities(Some(
        serde_json::from_value(json!({
            "bounding": admin, "effective": admin, "permitted": admin
        }))
        .unwrap(),
    ));
    let o = rt.run(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "mounted");
    assert!(
        host_mounts_mentioning(&format!("{d}/sub")).is_empty(),
        "the container's mount reached the host: {:?}",
        host_mounts_mentioning(&format!("{d}/sub"))
    );
}
