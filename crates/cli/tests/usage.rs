//! The CLI as people use it (issue 20, section 4): signals in containers,
//! exec, output into closed pipes, bad input, the runtimes runc and crun,
//! the monitors' cgroup. End to end through the `berth` binary, as root.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const APPLETS: [&str; 12] = [
    "sh", "echo", "cat", "true", "sleep", "grep", "yes", "head", "env", "pwd", "ls", "stty",
];

/// Imports a busybox image as `bb:latest` into `env`'s store.
fn image(env: &Env) -> &'static str {
    let mut t = busybox_rootfs(&APPLETS);
    t.file("etc/notexec", b"#!/bin/sh\necho no\n", 0o644);
    import_image(env, t.end(), "bb:latest")
}

/// SigIgn and SigBlk of /proc/self/status as printed by `grep`.
fn sig_masks(out: &str) -> (u64, u64) {
    let field = |name: &str| {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {out:?}"));
        u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
    };
    (field("SigIgn:"), field("SigBlk:"))
}

const STATUS: [&str; 4] = ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"];
/// Signals 1-31 (glibc keeps 32 and 33 for itself).
const STANDARD: u64 = 0x7fff_ffff;

#[test]
fn containers_start_with_default_signal_dispositions_and_no_blocked_signal() {
    let env = Env::new();
    let img = image(&env);
    for extra in [
        &["--runtime", "runc"][..],
        &["--init"],
        &["--init", "--runtime", "runc"],
        &[],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.push(img);
        args.extend_from_slice(&STATUS);
        let o = env.berth(&args).ok();
        let (ign, blk) = sig_masks(&o.stdout);
        assert_eq!(blk, 0, "blocked signals with {extra:?}: {}", o.stdout);
        if extra.is_empty() {
            // berth-runtime resets every signal, glibc's own two too.
            assert_eq!(ign, 0, "ignored signals: {}", o.stdout);
        } else {
            assert_eq!(
                ign & STANDARD,
                0,
                "ignored signals with {extra:?}: {}",
                o.stdout
            );
        }
    }
    for runtime in ["runc", "berth-runtime"] {
        let id = env
            .berth(&["run", "-d", "--runtime", runtime, img, "sleep", "60"])
            .ok()
            .stdout
            .trim()
            .to_string();
        let mut args = vec!["exec", id.as_str()];
        args.extend_from_slice(&STATUS);
        let o = env.berth(&args).ok();
        let (ign, blk) = sig_masks(&o.stdout);
        assert_eq!(blk, 0, "blocked signals in exec ({runtime}): {}", o.stdout);
        // runc leaves glibc's signal 32 as the caller's (see the note on
        // `reset_signals`); berth-runtime resets all.
        let want = if runtime == "runc" {
            STANDARD
        } else {
            u64::MAX
        };
        assert_eq!(
            ign & want,
            0,
            "ignored signals in exec ({runtime}): {}",
            o.stdout
        );
        env.berth(&["rm", "-f", &id]).ok();
    }
}

#[test]
fn stop_signal_sigint_stops_a_container_without_waiting_for_sigkill() {
    let env = Env::new();
    let img = image(&env);
    // A shell cannot trap a signal that was ignored when it started (POSIX);
    // under --init, `sleep` is not pid 1 and dies of SIGINT (130).
    let trap = ["sh", "-c", "trap 'exit 7' INT; sleep 60 & wait"];
    let cases: [(&str, &[&str], &[&str], &str); 4] = [
        ("berth-runtime", &[], &trap, "7"),
        ("runc", &[], &trap, "7"),
        ("berth-runtime", &["--init"], &["sleep", "60"], "130"),
        ("runc", &["--init"], &["sleep", "60"], "130"),
    ];
    for (runtime, extra, cmd, want) in cases {
        let mut args = vec!["run", "-d", "--runtime", runtime, "--stop-signal", "SIGINT"];
        args.extend_from_slice(extra);
        args.push(img);
        args.extend_from_slice(cmd);
        let id = env.berth(&args).ok().stdout.trim().to_string();
        // The shell has set its trap once `sleep` runs.
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        env.berth(&["stop", "-t", "20", &id]).ok();
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "SIGINT did not stop {cmd:?} under {runtime} {extra:?}: stop took {:?}",
            t.elapsed()
        );
        let code = env.berth(&["wait", &id]).ok().stdout;
        assert_eq!(
            code.trim(),
            want,
            "exit code of {cmd:?} under {runtime} {extra:?}"
        );
        env.berth(&["rm", &id]).ok();
    }
}

/// Runs `berth args` with stdout a pipe nobody reads.
fn into_closed_pipe(env: &Env, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut fds = [0; 2];
    // SAFETY: a valid two-element out array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    use std::os::fd::FromRawFd;
    // SAFETY: two new fds owned by us; the reading end is closed at once.
    let (r, w) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    drop(r);
    let o = env
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(w)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (o.status, String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_as_sigpipe_does() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new();
    let img = image(&env);
    let id = env
        .berth(&["create", "--name", "quiet", img, "true"])
        .ok()
        .stdout;
    assert!(!id.trim().is_empty());
    for args in [
        &["completion", "bash"][..],
        &["inspect", "quiet"],
        &["image", "inspect", img],
        &["images"],
        &["ps", "-a"],
        &["volume", "ls"],
        &["system", "df"],
    ] {
        let (st, err) = into_closed_pipe(&env, args);
        assert_eq!(
            st.signal(),
            Some(libc::SIGPIPE),
            "berth {args:?} into a closed pipe: {st:?}, stderr {err:?}"
        );
        assert_eq!(err, "", "berth {args:?} printed to stderr");
    }
}

#[test]
fn errors_are_printed_once_and_do_not_repeat_their_cause() {
    let env = Env::new();
    let missing = env.root.path().join("no-such-file");
    let missing = missing.to_str().unwrap();
    for (args, code) in [
        (&["import", missing, "x:1"][..], 1),
        (&["load", "-i", missing], 1),
        (&["rmi", "no-such-image"], 3),
        (&["start", "no-such-container"], 125),
        (&["rm", "no-such-container"], 1),
    ] {
        let o = env.berth(args);
        assert_eq!(o.code, code, "berth {args:?}: {}", o.stderr);
        assert_eq!(
            o.stderr.lines().count(),
            1,
            "berth {args:?} printed {:?}",
            o.stderr
        );
        let os = o.stderr.matches("(os error").count();
        assert!(os <= 1, "berth {args:?} repeats its cause: {:?}", o.stderr);
        assert!(o.stderr.starts_with("berth: "), "{:?}", o.stderr);
    }
}

/// The engine's errors are typed; the CLI adds what to type next and
/// chooses the exit code from the kind (README, "Exit codes").
#[test]
fn engine_errors_get_berths_advice_and_exit_code_by_kind() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&["create", "--name", "web", img, "sleep", "60"])
        .ok();
    env.berth(&["volume", "create", "data"]).ok();
    for (args, code, says) in [
        (&["inspect", "nosuch"][..], 1, "no such container: nosuch (see `berth ps -a`)"),
        (&["start", "nosuch"], 125, "no such container: nosuch (see `berth ps -a`)"),
        (&["volume", "rm", "nosuch"], 1, "no such volume: nosuch (see `berth volume ls`)"),
        (
            &["exec", "web", "true"],
            1,
            "container web is not running: start it first (`berth start web`)",
        ),
        (
            &["attach", "web"],
            1,
            "container web is not running: start it first (`berth start -a web`)",
        ),
        (
            &["create", "--name", "web", img, "true"],
            125,
            "the name \"web\" is already in use by another container; remove it (`berth rm web`) or choose another --name",
        ),
    ] {
        let o = env.berth(args);
        assert_eq!(o.code, code, "berth {args:?}: {}", o.stderr);
        assert_eq!(o.stderr, format!("berth: {says}\n"), "berth {args:?}");
    }
    env.berth(&["start", "web"]).ok();
    let o = env.berth(&["rm", "web"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert_eq!(
        o.stderr,
        "berth: container web is running: stop it first (`berth stop web`) or remove it with --force\n"
    );
    env.berth(&["rm", "-f", "web"]).ok();
}

#[test]
fn bad_input_is_refused_by_berth_with_125_before_anything_runs() {
    let env = Env::new();
    let img = image(&env);
    for (args, says) in [
        (&["-v", ":/mnt"][..], "--volume"),
        (&["-v", ":/mnt:ro"], "--volume"),
        (&["-w", "relative/dir"], "--workdir"),
        (&["--cpus", "-1"], "--cpus"),
        (&["--cpus=-1"], "--cpus"),
        (
            &["--platform", "linux/s390x", "--pull", "never"],
            "linux/s390x",
        ),
        (&["--platform", "linux"], "--platform"),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[img, "echo", "ran"]);
        let o = env.berth(&a);
        assert_eq!(o.code, 125, "berth {a:?}: {}", o.stderr);
        assert!(!o.stdout.contains("ran"), "berth {a:?} ran the container");
        assert!(o.stderr.contains(says), "berth {a:?}: {}", o.stderr);
    }
    // A bad reference is refused as one, before any lookup or pull.
    let o = env.berth(&["run", "--rm", "UPPER/case", "true"]);
    assert_eq!(o.code, 125, "{}", o.stderr);
    assert!(
        !o.stderr.contains("Unable to find"),
        "looked the bad reference up: {}",
        o.stderr
    );
    assert!(o.stderr.contains("invalid image reference"), "{}", o.stderr);
    // What the help offers parses: -1 for --memory-swap and --pids-limit,
    // with a space; a matching --platform uses the local image.
    let host = match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        other => panic!("no Go name for {other} here: add it"),
    };
    for args in [
        &["-m", "64m", "--memory-swap", "-1"][..],
        &["--pids-limit", "-1"],
        &["--platform", host],
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[img, "echo", "ran"]);
        let o = env.berth(&a).ok();
        assert_eq!(o.stdout, "ran\n", "berth {a:?}");
    }
}

/// `crun` to give `--runtime`: Debian's crun 1.8 refuses a hybrid cgroup
/// layout (cgroup2 mounted beside v1) unless the cgroup2 mount is out of
/// its sight, so on such a host a wrapper runs it in a mount namespace of
/// its own without /sys/fs/cgroup/unified. `dir` holds the wrapper.
fn crun(dir: &Path) -> String {
    assert!(
        Path::new("/usr/bin/crun").exists(),
        "crun is needed: apt-get install crun"
    );
    let hybrid = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup/unified"));
    if !hybrid {
        return "crun".into();
    }
    let w = dir.join("crun");
    std::fs::write(
        &w,
        "#!/bin/sh\nexec unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec /usr/bin/crun \"$@\"' crun \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&w, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    w.to_str().unwrap().to_string()
}

#[test]
fn runc_and_crun_run_exec_and_stop_containers() {
    let env = Env::new();
    let img = image(&env);
    let dir = tempfile::tempdir().unwrap();
    for runtime in ["runc".to_string(), crun(dir.path())] {
        let o = env
            .berth(&["run", "--rm", "--runtime", &runtime, img, "echo", "hi"])
            .ok();
        assert_eq!(o.stdout, "hi\n", "--runtime {runtime}");
        let mut args = vec!["run", "--rm", "--runtime", &runtime, img];
        args.extend_from_slice(&STATUS);
        let o = env.berth(&args).ok();
        let (ign, blk) = sig_masks(&o.stdout);
        assert_eq!(
            (ign & STANDARD, blk),
            (0, 0),
            "--runtime {runtime}: {}",
            o.stdout
        );
        let id = env
            .berth(&["run", "-d", "--runtime", &runtime, img, "sleep", "60"])
            .ok()
            .stdout
            .trim()
            .to_string();
        let o = env.berth(&["exec", &id, "echo", "in"]).ok();
        assert_eq!(o.stdout, "in\n", "exec under {runtime}");
        env.berth(&["stop", "-t", "1", &id]).ok();
        env.berth(&["rm", &id]).ok();
    }
}

#[test]
fn run_confines_with_the_built_in_seccomp_profile_where_none_is_installed() {
    let env = Env::new();
    let img = image(&env);
    // berth in a mount namespace of its own where the profile files are
    // hidden under empty tmpfs mounts (a machine without containers-common).
    let mut hide = String::new();
    for d in ["/usr/share/containers", "/etc/containers", "/etc/berth"] {
        if Path::new(d).is_dir() {
            hide.push_str(&format!("mount -t tmpfs none {d} && "));
        }
    }
    let script =
        format!("{hide} ! ls /usr/share/containers/seccomp.json 2>/dev/null && exec \"$@\"");
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"]);
    let berth = env.cmd();
    c.arg(berth.get_program());
    c.args(berth.get_args());
    for (k, v) in berth.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.args(["run", "--rm", img, "grep", "^Seccomp", "/proc/self/status"]);
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "berth run without a profile file: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("Seccomp:\t2"), "not confined: {out}");
}

/// A pseudo-terminal pair: (master, slave), the slave `rows` x `cols`.
fn pty(rows: u16, cols: u16) -> (std::fs::File, std::fs::File) {
    let (mut m, mut s) = (0, 0);
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid out pointers and a valid winsize; no name buffer.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    use std::os::fd::FromRawFd;
    // SAFETY: two new fds owned by us.
    unsafe { (std::fs::File::from_raw_fd(m), std::fs::File::from_raw_fd(s)) }
}

/// What a reader thread reads from `m`, in pieces.
fn reader(m: &std::fs::File) -> std::sync::mpsc::Receiver<Vec<u8>> {
    use std::io::Read;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut m = m.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = m.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    rx
}

/// Takes pieces from `rx` until the text since the last call contains
/// `want` (or 20 seconds pass); that text.
fn read_until(rx: &std::sync::mpsc::Receiver<Vec<u8>>, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(b) => seen.extend(b),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn exec_follows_the_terminal_size_gives_126_127_and_reads_env_files() {
    use std::io::Write;
    let env = Env::new();
    let img = image(&env);
    let id = env
        .berth(&["run", "-d", img, "sleep", "60"])
        .ok()
        .stdout
        .trim()
        .to_string();
    // Not found, not executable: Docker's codes, as `run` gives.
    let o = env.berth(&["exec", &id, "no-such-command"]);
    assert_eq!(o.code, 127, "{}", o.stderr);
    let o = env.berth(&["exec", &id, "/etc/notexec"]);
    assert_eq!(o.code, 126, "{}", o.stderr);
    let o = env.berth(&["run", "--rm", img, "/etc/notexec"]);
    assert_eq!(o.code, 126, "run: {}", o.stderr);
    // The process's own code is passed on as it is.
    assert_eq!(env.berth(&["exec", &id, "sh", "-c", "exit 3"]).code, 3);
    // --env-file, then -e over it.
    let f = env.root.path().join("env.list");
    std::fs::write(&f, "# comment\nA=from-file\nB=also\n").unwrap();
    let o = env
        .berth(&[
            "exec",
            "--env-file",
            f.to_str().unwrap(),
            "-e",
            "B=flag",
            &id,
            "sh",
            "-c",
            "echo $A $B",
        ])
        .ok();
    assert_eq!(o.stdout, "from-file flag\n");
    // A terminal: its size at the start, then after a resize.
    let (mut m, s) = pty(20, 50);
    let mut child = env
        .cmd()
        .args([
            "exec",
            "-it",
            &id,
            "sh",
            "-c",
            "stty size; read x; stty size",
        ])
        .stdin(s.try_clone().unwrap())
        .stdout(s.try_clone().unwrap())
        .stderr(s)
        .spawn()
        .unwrap();
    let rx = reader(&m);
    let first = read_until(&rx, "20 50");
    assert!(first.contains("20 50"), "the size at the start: {first:?}");
    let ws = libc::winsize {
        ws_row: 33,
        ws_col: 77,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    use std::os::fd::AsRawFd;
    // SAFETY: TIOCSWINSZ reads one valid winsize.
    let r = unsafe { libc::ioctl(m.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0);
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGWINCH) };
    std::thread::sleep(Duration::from_millis(500));
    m.write_all(b"\r").unwrap();
    let second = read_until(&rx, "33 77");
    assert!(
        second.contains("33 77"),
        "the size after a resize: {second:?}"
    );
    assert!(child.wait().unwrap().success());
    // With a terminal too, a command that is not there is 127: the runtime
    // fails after it has handed the terminal over.
    let (_m, s) = pty(20, 50);
    let st = env
        .cmd()
        .args(["exec", "-it", &id, "no-such-command"])
        .stdin(s.try_clone().unwrap())
        .stdout(s.try_clone().unwrap())
        .stderr(s)
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(127));
    env.berth(&["rm", "-f", &id]).ok();
}

#[test]
fn a_long_run_root_runs_and_execs_with_a_terminal() {
    let env = Env::new();
    let img = image(&env);
    // 150 bytes: a socket path under it does not fit in sun_path (108).
    let long = env
        .run_root
        .path()
        .join("r".repeat(150 - env.run_root.path().as_os_str().len() - 1));
    std::fs::create_dir(&long).unwrap();
    let berth = |args: &[&str]| {
        // Env::cmd's settings but the run root: without
        // BERTH_DEFAULT_NETWORK=none these containers were put on the
        // default bridge network, whose bridge `berth0` and `table inet
        // berth` were then made in the host's own namespace.
        let o = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(env.root.path())
            .arg("--run-root")
            .arg(&long)
            .env_remove("BERTH_ROOT")
            .env_remove("BERTH_RUN_ROOT")
            .env("BERTH_DEFAULT_NETWORK", "none")
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                env.root.path().join("no-registries.conf"),
            )
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = berth(&["run", "--rm", "-t", img, "echo", "hi"]);
    assert_eq!((code, out.trim()), (Some(0), "hi"), "{err}");
    let (code, id, err) = berth(&["run", "-d", img, "sleep", "60"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = berth(&["exec", "-it", id.trim(), "echo", "in"]);
    assert_eq!((code, out.trim()), (Some(0), "in"), "{err}");
    let (code, _, err) = berth(&["rm", "-f", id.trim()]);
    assert_eq!(code, Some(0), "{err}");
}

/// A cgroup of the test's own (in the pids hierarchy on cgroup v1, else in
/// the unified one), removed when dropped.
struct TestCgroup(std::path::PathBuf);

impl TestCgroup {
    fn new() -> TestCgroup {
        let base = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
            .into_iter()
            .map(Path::new)
            .find(|b| b.join("cgroup.procs").exists())
            .expect("no pids or unified cgroup hierarchy mounted under /sys/fs/cgroup");
        let dir = base.join(format!("berth-test-caller-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        TestCgroup(dir)
    }

    fn procs(&self) -> Vec<i32> {
        std::fs::read_to_string(self.0.join("cgroup.procs"))
            .unwrap()
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for p in self.procs() {
            // SAFETY: plain syscall.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.0).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_detached_container_outlives_the_cgroup_of_whoever_ran_berth() {
    let env = Env::new();
    let img = image(&env);
    let caller = TestCgroup::new();
    // `berth run -d` from a shell moved into the caller's cgroup first (as
    // a login session's or a unit's process would be).
    let berth = env.cmd();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("echo $$ > \"$0\" && exec \"$@\"")
        .arg(caller.0.join("cgroup.procs"))
        .arg(berth.get_program())
        .args(berth.get_args());
    for (k, v) in berth.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let o = c.args(["run", "-d", img, "sleep", "60"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    // The end of the session: everything in the caller's cgroup is killed.
    let left = caller.procs();
    for p in &left {
        // SAFETY: plain syscall.
        unsafe { libc::kill(*p, libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        left.is_empty(),
        "berth left processes in its caller's cgroup: {left:?}"
    );
    // The container still runs, under its monitor.
    let o = env.berth(&["exec", &id, "echo", "alive"]).ok();
    assert_eq!(o.stdout, "alive\n");
    let status = || {
        let o = env.berth(&["inspect", &id]).ok();
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        v[0]["State"]["Status"].as_str().unwrap().to_string()
    };
    assert_eq!(status(), "running");
    env.berth(&["stop", "-t", "1", &id]).ok();
    assert_eq!(status(), "exited");
}

#[test]
fn a_local_image_of_another_platform_is_pulled_for_the_one_asked() {
    let env = Env::new();
    let reg = registry();
    push_image("t/plat", "latest", &[base_layer()], Comp::Gzip, "arm64");
    let r = format!("{}/t/plat:latest", reg.addr);
    env.berth(&["pull", "-q", "--platform", "linux/arm64", &r])
        .ok();
    // The store has it for arm64 only: amd64 is pulled for, and the
    // registry has no amd64 image, so nothing runs.
    let o = env.berth(&["run", "--rm", "--platform", "linux/amd64", &r, "true"]);
    assert_eq!(o.code, 125, "{}", o.stderr);
    assert!(o.stderr.contains("pulling it"), "{}", o.stderr);
    assert!(o.stderr.contains("linux/amd64"), "{}", o.stderr);
}
