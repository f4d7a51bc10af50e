//! `berth run` and the container commands, end to end: the `berth` binary
//! makes real containers (with berth-runtime, and with runc) from images
//! imported here or pulled from the local registry.

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const APPLETS: [&str; 27] = [
    "ln", "sh", "echo", "cat", "true", "false", "sleep", "id", "hostname", "pwd", "ls", "env",
    "head", "tr", "wc", "touch", "mkdir", "ps", "stat", "grep", "yes", "dd", "seq", "kill", "rm",
    "readlink", "printf",
];

fn busybox_tar() -> Vec<u8> {
    let bb =
        std::fs::read(BUSYBOX).expect("busybox-static is needed: apt-get install busybox-static");
    let mut t = berth_image::tar::build::Tar::default();
    t.dir("bin/", 0o755).file("bin/busybox", &bb, 0o755);
    for a in APPLETS {
        t.symlink(&format!("bin/{a}"), "busybox");
    }
    t.dir("etc/", 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
            0o644,
        )
        .file("etc/group", b"root:x:0:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app\n", 0o644)
        .dir("tmp/", 0o1777)
        .dir("data/", 0o755)
        .file("data/seed", b"from the image\n", 0o644);
    t.end()
}

/// Imports the busybox image as `bb:latest` into `env`'s store.
fn image(env: &Env) -> &'static str {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bb.tar");
    std::fs::write(&p, busybox_tar()).unwrap();
    env.berth(&["import", p.to_str().unwrap(), "bb:latest"])
        .ok();
    for helper in ["berth-monitor", "berth-runtime", "berth-init"] {
        let exe = Path::new(env!("CARGO_BIN_EXE_berth")).with_file_name(helper);
        assert!(
            exe.exists(),
            "{} is missing: build the workspace first (cargo build --workspace)",
            exe.display()
        );
    }
    "bb:latest"
}

fn ps_json(env: &Env) -> serde_json::Value {
    serde_json::from_str(&env.berth(&["ps", "-a", "--format", "json"]).ok().stdout).unwrap()
}

fn inspect(env: &Env, c: &str) -> serde_json::Value {
    let o = env.berth(&["inspect", c]).ok();
    serde_json::from_str::<serde_json::Value>(&o.stdout).unwrap()[0].clone()
}

/// Mounts that name the store or the run root (an overlay names both: it
/// counts once).
fn leaked_mounts(env: &Env) -> usize {
    let (a, b) = (
        env.root.path().to_string_lossy().into_owned(),
        env.run_root.path().to_string_lossy().into_owned(),
    );
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&a) || l.contains(&b))
        .count()
}

fn mounts_under(p: &Path) -> usize {
    let want = p.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&want))
        .count()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a detached `sleep 30` from `img`; its id.
fn sleeper(env: &Env, img: &str) -> String {
    env.berth(&["run", "-d", img, "sleep", "30"])
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn mount_points_come_from_the_images_init_layer_not_each_container() {
    let env = Env::new();
    let img = image(&env);
    let inits = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(env.layers_dir())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".init"))
            .collect()
    };
    let id = sleeper(&env, img);
    // The image lacks /proc, /sys, /dev and /etc/hosts: the runtime found
    // them in the init layer, made once for the image, and made none in the
    // container's own upper layer.
    let upper = env.root.path().join("containers").join(&id).join("upper");
    for p in [
        "proc",
        "sys",
        "dev",
        "etc",
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
    ] {
        assert!(!upper.join(p).exists(), "{p} in the upper layer");
    }
    assert_eq!(inits().len(), 1, "{:?}", inits());
    // What the container sees: its files mounted there, the image's /etc
    // (merged, with its attributes) around them.
    let o = env
        .berth(&[
            "exec",
            &id,
            "sh",
            "-c",
            "cat /etc/hosts /etc/passwd; stat -c %a /etc /; ls /proc/self/status",
        ])
        .ok();
    assert!(
        o.stdout.contains("localhost") && o.stdout.contains("root:x:0:0"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("755\n755\n/proc/self/status"),
        "{}",
        o.stdout
    );
    // A second container uses the same init layer.
    env.berth(&["run", "--rm", img, "true"]).ok();
    assert_eq!(inits().len(), 1);
    env.berth(&["rm", "-f", &id]).ok();
    // Gone with the image's layers.
    env.berth(&["rmi", img]).ok();
    assert!(inits().is_empty(), "{:?}", inits());
}

/// Processes started for `env` (their environment names its store).
fn processes_of(env: &Env) -> Vec<String> {
    let mark = format!(
        "CONTAINERS_REGISTRIES_CONF={}",
        env.root.path().join("no-registries.conf").display()
    );
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(environ) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if environ.split(|&b| b == 0).any(|v| v == mark.as_bytes()) {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            found.push(String::from_utf8_lossy(&cmd).replace('\0', " "));
        }
    }
    found
}

#[test]
fn run_starts_its_monitor_and_runtime_ahead_and_a_failed_run_leaves_no_process() {
    let env = Env::new();
    let img = image(&env);
    let id = sleeper(&env, img);
    // The container's parent is its monitor, the one `run` started ahead,
    // which handed the runtime it started its command line.
    let pid = inspect(&env, &id)["State"]["Pid"].as_i64().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i32 = stat
        .rsplit(") ")
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("berth-monitor --pre "), "{cmdline}");
    // The monitor started away from the client's CPU; it, and the
    // container, may use every CPU berth may.
    let cpus = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .unwrap()
            .to_string()
    };
    let ours = cpus("self");
    assert_eq!(cpus(&ppid.to_string()), ours);
    assert_eq!(cpus(&pid.to_string()), ours);
    let log = env
        .run_root
        .path()
        .join("containers")
        .join(&id)
        .join("monitor.log");
    let log = std::fs::read_to_string(log).unwrap_or_default();
    assert!(!log.contains("started ahead"), "{log}");
    // (What the check below looks for is there while it runs.)
    let running = processes_of(&env);
    assert!(
        running.iter().any(|c| c.contains("berth-monitor --pre")),
        "{running:?}"
    );
    env.berth(&["rm", "-f", &id]).ok();

    // A run that fails before the start: the monitor and the runtime
    // started for it end with it.
    let o = env.berth(&["run", "--pull", "never", "no/such:image", "true"]);
    assert_eq!(o.code, 125, "{}", o.stderr);
    wait_for("the processes started ahead to end", || {
        processes_of(&env).is_empty()
    });
}

#[test]
fn run_prints_output_returns_the_exit_code_and_rm_leaves_nothing() {
    let env = Env::new();
    let img = image(&env);
    let o = env.berth(&[
        "run",
        "--rm",
        img,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert_eq!(o.stdout, "out\n");
    assert!(o.stderr.contains("err"), "{}", o.stderr);
    assert_eq!(ps_json(&env).as_array().unwrap().len(), 0);
    assert_eq!(leaked_mounts(&env), 0, "an overlay outlived --rm");
    let left: Vec<_> = std::fs::read_dir(env.root.path().join("containers"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "container directories left: {left:?}");
    let runs: Vec<_> = std::fs::read_dir(env.run_root.path().join("containers"))
        .unwrap()
        .collect();
    assert!(runs.is_empty(), "run directories left: {runs:?}");
    // The runtime has deleted it (its state, hence its cgroup) before run
    // returned.
    let runtime_states: Vec<_> = std::fs::read_dir(env.run_root.path().join("runtime"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('@'))
        .collect();
    assert!(
        runtime_states.is_empty(),
        "runtime state left: {runtime_states:?}"
    );
    // Its directories went to the trash (one per filesystem), which the
    // monitor empties once run has returned.
    let deadline = Instant::now() + Duration::from_secs(10);
    for trash in [env.root.path(), env.run_root.path()].map(|r| r.join("trash")) {
        while std::fs::read_dir(&trash).is_ok_and(|mut d| d.next().is_some()) {
            assert!(
                Instant::now() < deadline,
                "{} was not emptied",
                trash.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Its cgroups are gone too (the monitor deletes berth-runtime's
    // containers in-process; this checks it did before run returned). The
    // hostname is the id's first 12 characters; the cgroup is /berth/<id>.
    let short = env.berth(&["run", "--rm", img, "hostname"]).ok().stdout;
    let short = short.trim();
    assert_eq!(short.len(), 12, "{short:?}");
    for parent in ["/sys/fs/cgroup/memory/berth", "/sys/fs/cgroup/berth"] {
        if let Ok(d) = std::fs::read_dir(parent) {
            for e in d {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                assert!(!n.starts_with(short), "cgroup {parent}/{n} outlived --rm");
            }
        }
    }
    // The image is no longer held: it can be removed.
    env.berth(&["rmi", img]).ok();
}

/// `--pull newer`: the registry is asked every time; a tag that moved is
/// pulled, an unchanged one costs the manifest only, and a registry that
/// cannot be reached leaves the stored image in use (with a warning).
#[test]
fn run_pull_newer_follows_a_moved_tag_and_survives_an_unreachable_registry() {
    let env = Env::new();
    let reg = &registry().addr;
    let first = push_image("t/newer", "v1", &[busybox_tar()], Comp::Gzip, "amd64");
    let name = format!("{reg}/t/newer:v1");
    let id = |env: &Env| {
        env.berth(&["image", "inspect", "-f", "{{.Id}}", &name])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let o = env
        .berth(&["run", "--rm", "--pull", "newer", &name, "true"])
        .ok();
    assert!(o.stderr.contains("Unable to find image"), "{}", o.stderr);
    assert_eq!(id(&env), first.config.to_string());
    // The tag moves: the next run gets the new image.
    let second = push_image(
        "t/newer",
        "v1",
        &[busybox_tar(), top_layer()],
        Comp::Gzip,
        "amd64",
    );
    assert_ne!(first.config, second.config);
    let o = env
        .berth(&["run", "--rm", "--pull", "newer", &name, "cat", "/hello"])
        .ok();
    assert!(o.stderr.contains("Pulling"), "{}", o.stderr);
    assert_eq!(o.stdout, "hello from the top layer\n");
    assert_eq!(id(&env), second.config.to_string());
    // --pull missing does not ask.
    let o = env.berth(&["run", "--rm", &name, "true"]).ok();
    assert!(!o.stderr.contains("Pulling"), "{}", o.stderr);
    // A registry nobody listens on: the stored image is used.
    let gone = "127.0.0.1:9/t/newer:v1";
    env.berth(&["tag", &name, gone]).ok();
    let o = env.berth(&["run", "--rm", "--pull", "newer", gone, "cat", "/hello"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "hello from the top layer\n");
    assert!(
        o.stderr.contains("cannot ask the registry") && o.stderr.contains("using the stored image"),
        "{}",
        o.stderr
    );
    // --pull always fails there.
    let o = env.berth(&["run", "--rm", "--pull", "always", gone, "true"]);
    assert_eq!(o.code, 125, "{}", o.stderr);
}

#[test]
fn run_pulls_from_the_registry_as_pull_says() {
    let env = Env::new();
    let reg = &registry().addr;
    push_image("t/run", "v1", &[busybox_tar()], Comp::Gzip, "amd64");
    let name = format!("{reg}/t/run:v1");
    let o = env.berth(&["run", "--rm", "--pull", "never", &name, "true"]);
    assert_eq!(o.code, 125);
    assert!(o.stderr.contains("--pull=never"), "{}", o.stderr);
    assert_eq!(o.stderr.trim().lines().count(), 1, "one line: {}", o.stderr);
    let o = env.berth(&["run", "--rm", &name, "cat", "/data/seed"]).ok();
    assert_eq!(o.stdout, "from the image\n");
    assert!(o.stderr.contains("Unable to find image"), "{}", o.stderr);
    // In the store now: no pull.
    let o = env
        .berth(&["run", "--rm", "--pull", "never", &name, "true"])
        .ok();
    assert!(!o.stderr.contains("Pulling"), "{}", o.stderr);
    let o = env
        .berth(&["run", "--rm", "--pull", "always", &name, "true"])
        .ok();
    assert!(o.stderr.contains("Pulling"), "{}", o.stderr);
    let o = env.berth(&["run", "--rm", &format!("{reg}/t/absent:v1"), "true"]);
    assert_eq!(o.code, 125);
    assert_eq!(
        ps_json(&env).as_array().unwrap().len(),
        0,
        "nothing half-created"
    );
}

#[test]
fn detached_containers_stop_start_restart_and_remove() {
    let env = Env::new();
    let img = image(&env);
    let script = "trap 'echo got TERM; exit 0' TERM; echo started; while true; do sleep 0.1; done";
    let id = env
        .berth(&["run", "-d", "--name", "web", img, "sh", "-c", script])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    let ps = env.berth(&["ps"]).ok().stdout;
    assert!(ps.contains("web") && ps.contains("Up"), "{ps}");
    assert_eq!(env.berth(&["ps", "-q"]).ok().stdout.trim(), &id[..12]);
    let j = ps_json(&env);
    assert_eq!(j[0]["State"], "running");
    assert_eq!(j[0]["Names"][0], "web");
    wait_for("the first log line", || {
        env.berth(&["logs", "web"]).stdout.contains("started")
    });
    let i = inspect(&env, "web");
    assert_eq!(i["State"]["Running"], true);
    let pid = i["State"]["Pid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(i["GraphDriver"]["Name"], "overlay");
    assert_eq!(
        mounts_under(&env.run_root.path().join("rootfs").join(&id)),
        1
    );

    // rm without --force refuses.
    let o = env.berth(&["rm", "web"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("is running") && o.stderr.contains("--force"),
        "{}",
        o.stderr
    );

    let t = Instant::now();
    env.berth(&["stop", "web"]).ok();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop waited for the timeout"
    );
    let i = inspect(&env, "web");
    assert_eq!(i["State"]["Status"], "exited");
    assert_eq!(i["State"]["ExitCode"], 0);
    assert!(env.berth(&["logs", "web"]).stdout.contains("got TERM"));
    assert_eq!(
        mounts_under(&env.run_root.path().join("rootfs").join(&id)),
        0
    );
    let o = env.berth(&["stop", "web"]);
    assert_eq!(
        o.code, 0,
        "stopping a stopped container is fine: {}",
        o.stderr
    );

    env.berth(&["start", "web"]).ok();
    assert_eq!(inspect(&env, "web")["State"]["Status"], "running");
    env.berth(&["restart", "-t", "1", "web"]).ok();
    assert_eq!(inspect(&env, "web")["State"]["Status"], "running");
    let o = env.berth(&["kill", "-s", "KILL", "web"]).ok();
    assert_eq!(o.stdout.trim(), "web");
    assert_eq!(env.berth(&["wait", "web"]).ok().stdout.trim(), "137");
    assert_eq!(inspect(&env, "web")["State"]["ExitCode"], 137);
    let o = env.berth(&["kill", "web"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("not running"), "{}", o.stderr);

    env.berth(&["start", "web"]).ok();
    env.berth(&["rm", "-f", "web"]).ok();
    assert_eq!(ps_json(&env).as_array().unwrap().len(), 0);
    assert_eq!(leaked_mounts(&env), 0);
    let o = env.berth(&["inspect", "web"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("no such container"), "{}", o.stderr);
}

#[test]
fn stop_kills_what_ignores_the_stop_signal_after_the_timeout() {
    let env = Env::new();
    let img = image(&env);
    // sh as pid 1 ignores SIGTERM (no handler): stop must SIGKILL it.
    env.berth(&["run", "-d", "--name", "stubborn", img, "sleep", "100"])
        .ok();
    let t = Instant::now();
    env.berth(&["stop", "-t", "1", "stubborn"]).ok();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(inspect(&env, "stubborn")["State"]["ExitCode"], 137);
    // --stop-signal is used.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "--stop-signal",
        "USR1",
        img,
        "sh",
        "-c",
        "trap 'exit 7' USR1; while true; do sleep 0.1; done",
    ])
    .ok();
    env.berth(&["stop", "usr1"]).ok();
    assert_eq!(inspect(&env, "usr1")["State"]["ExitCode"], 7);
}

#[test]
fn logs_keep_streams_apart_and_honour_tail_since_and_timestamps() {
    let env = Env::new();
    let img = image(&env);
    for driver in ["k8s-file", "json-file"] {
        let name = format!("logs-{driver}");
        env.berth(&[
            "run",
            "--name",
            &name,
            "--log-driver",
            driver,
            img,
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; printf partial",
        ])
        .ok();
        let o = env.berth(&["logs", &name]).ok();
        assert_eq!(
            o.stdout, "out1\nout2\nout3\nout4\nout5\npartial",
            "{driver}"
        );
        assert_eq!(o.stderr, "err1\nerr2\nerr3\nerr4\nerr5\n", "{driver}");
        let o = env.berth(&["logs", "--tail", "2", &name]).ok();
        // The last two lines overall (stdout and stderr interleave in time).
        assert_eq!(
            o.stdout.lines().count() + o.stderr.lines().count(),
            2,
            "{driver}"
        );
        let o = env.berth(&["logs", "-t", "--tail", "1", &name]).ok();
        let line = format!("{}{}", o.stdout, o.stderr);
        assert!(line.starts_with("20") && line.contains("Z "), "{line}");
        let o = env
            .berth(&["logs", "--since", "2099-01-01T00:00:00Z", &name])
            .ok();
        assert_eq!(o.stdout, "");
        let o = env.berth(&["logs", "--until", "1h", &name]).ok();
        assert_eq!(o.stdout, "", "nothing is older than an hour");
        let o = env.berth(&["logs", "--since", "1h", &name]).ok();
        assert!(o.stdout.contains("out5"));
    }
    let o = env.berth(&["logs", "--since", "yesterday-ish", "logs-k8s-file"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("--since"), "{}", o.stderr);
}

#[test]
fn logs_rotate_by_size_and_follow_ends_with_the_container() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "--name",
        "rot",
        "--log-opt",
        "max-size=4k",
        "--log-opt",
        "max-file=3",
        img,
        "sh",
        "-c",
        "seq 1 3000",
    ])
    .ok();
    let dir = env
        .root
        .path()
        .join("containers")
        .join(inspect(&env, "rot")["Id"].as_str().unwrap());
    assert!(dir.join("ctr.log.1").exists() && dir.join("ctr.log.2").exists());
    assert!(
        !dir.join("ctr.log.3").exists(),
        "max-file=3 keeps three files"
    );
    for f in ["ctr.log", "ctr.log.1", "ctr.log.2"] {
        let len = std::fs::metadata(dir.join(f)).unwrap().len();
        assert!(len < 4096 + 200, "{f}: {len} bytes");
    }
    let o = env.berth(&["logs", "rot"]).ok();
    assert!(o.stdout.ends_with("2999\n3000\n"));
    assert!(
        !o.stdout.starts_with("1\n"),
        "the oldest lines were rotated away"
    );

    env.berth(&[
        "run",
        "-d",
        "--name",
        "fo",
        img,
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; sleep 0.3; done",
    ])
    .ok();
    let t = Instant::now();
    let o = env.berth(&["logs", "-f", "fo"]).ok();
    assert_eq!(o.stdout, "line1\nline2\nline3\n");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn logs_follow_delivers_lines_while_the_container_runs() {
    // `logs -f` wakes on the log's growth (inotify) and on the monitor's
    // end (pidfd): a line reaches the reader while the container is still
    // running, and the reader ends when the container is stopped.
    use std::io::BufRead;
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "-d",
        "--name",
        "live",
        img,
        "sh",
        "-c",
        "echo first; exec sleep 1000",
    ])
    .ok();
    let mut child = env
        .cmd()
        .args(["logs", "-f", "live"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    assert_eq!(inspect(&env, "live")["State"]["Running"], true);
    env.berth(&["kill", "live"]).ok();
    let t = Instant::now();
    line.clear();
    assert_eq!(out.read_line(&mut line).unwrap(), 0, "{line}");
    assert!(child.wait().unwrap().success());
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "logs -f went on after the container ended"
    );
}

#[test]
fn restart_policies_restart_with_back_off_and_stop_ends_them() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        img,
        "sh",
        "-c",
        "echo run; exit 3",
    ])
    .ok();
    wait_for("two restarts", || {
        let i = inspect(&env, "flaky");
        i["State"]["Status"] == "exited" && i["RestartCount"] == 2
    });
    assert_eq!(inspect(&env, "flaky")["State"]["ExitCode"], 3);
    assert_eq!(env.berth(&["logs", "flaky"]).ok().stdout, "run\nrun\nrun\n");
    // always: restarts after a clean exit, until stopped.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        img,
        "sh",
        "-c",
        "sleep 0.2",
    ])
    .ok();
    wait_for("a restart", || {
        inspect(&env, "always")["RestartCount"].as_u64() >= Some(1)
    });
    env.berth(&["stop", "-t", "1", "always"]).ok();
    let n = inspect(&env, "always")["RestartCount"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let i = inspect(&env, "always");
    assert_eq!(i["State"]["Status"], "exited");
    assert_eq!(
        i["RestartCount"].as_u64().unwrap(),
        n,
        "restarted after stop"
    );
    let o = env.berth(&["run", "--rm", "--restart", "always", img, "true"]);
    assert_eq!(o.code, 125);
    let o = env.berth(&["run", "--restart", "sometimes", img, "true"]);
    assert_eq!(o.code, 125);
    assert!(o.stderr.contains("--restart"), "{}", o.stderr);
}

#[test]
fn ps_is_right_after_the_monitor_is_killed_and_after_run_is_wiped() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&["run", "-d", "--name", "orphan", img, "sleep", "100"])
        .ok();
    let i = inspect(&env, "orphan");
    let id = i["Id"].as_str().unwrap().to_string();
    let state = std::fs::read_to_string(
        env.run_root
            .path()
            .join("containers")
            .join(&id)
            .join("state"),
    )
    .unwrap();
    let mpid: i32 = state
        .lines()
        .find_map(|l| l.strip_prefix("monitor_pid="))
        .unwrap()
        .parse()
        .unwrap();
    // The monitor names the init by pid and start time (field 22 of
    // /proc/PID/stat): what tells, once the monitor is gone, that the
    // container still runs (a reused pid has another start time).
    let field = |k: &str| {
        state
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in the monitor's state: {state}"))
            .to_string()
    };
    let init = field("pid=");
    let stat = std::fs::read_to_string(format!("/proc/{init}/stat")).unwrap();
    let start = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(19);
    assert_eq!(Some(field("starttime=").as_str()), start, "{state}");
    // SAFETY: kill has no memory effects.
    assert_eq!(unsafe { libc::kill(mpid, libc::SIGKILL) }, 0);
    wait_for("the monitor to go", || {
        !Path::new(&format!("/proc/{mpid}/comm")).exists()
            || std::fs::read_to_string(format!("/proc/{mpid}/stat"))
                .map_or(true, |s| s.contains(") Z "))
    });
    let i = inspect(&env, "orphan");
    assert_eq!(
        i["State"]["Status"], "running",
        "the container outlives its monitor"
    );
    assert!(
        i["State"]["Error"].as_str().unwrap().contains("monitor"),
        "{i}"
    );
    env.berth(&["stop", "-t", "1", "orphan"]).ok();
    let i = inspect(&env, "orphan");
    assert_eq!(i["State"]["Status"], "exited");
    assert_eq!(i["State"]["ExitCode"], 137, "stop's SIGKILL ended it");
    assert_eq!(
        mounts_under(&env.run_root.path().join("rootfs").join(&id)),
        0
    );

    // A reboot: every process gone and /run empty.
    env.berth(&["run", "-d", "--name", "rebooted", img, "sleep", "100"])
        .ok();
    let i = inspect(&env, "rebooted");
    let id = i["Id"].as_str().unwrap().to_string();
    let pid = i["State"]["Pid"].as_i64().unwrap() as i32;
    let state = std::fs::read_to_string(
        env.run_root
            .path()
            .join("containers")
            .join(&id)
            .join("state"),
    )
    .unwrap();
    let mpid: i32 = state
        .lines()
        .find_map(|l| l.strip_prefix("monitor_pid="))
        .unwrap()
        .parse()
        .unwrap();
    // SAFETY: kill has no memory effects.
    unsafe {
        libc::kill(mpid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
    wait_for("the container to die", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    std::fs::remove_dir_all(env.run_root.path().join("containers")).unwrap();
    std::fs::remove_dir_all(env.run_root.path().join("runtime")).unwrap();
    let j = ps_json(&env);
    let r = j
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Names"][0] == "rebooted")
        .unwrap();
    assert_eq!(r["State"], "exited");
    assert_eq!(
        mounts_under(&env.run_root.path().join("rootfs").join(&id)),
        0,
        "the overlay is unmounted"
    );
    // And it starts again.
    env.berth(&["start", "rebooted"]).ok();
    assert_eq!(inspect(&env, "rebooted")["State"]["Status"], "running");
    env.berth(&["rm", "-f", "rebooted", "orphan"]).ok();
}

/// Host pids whose command line is exactly `args`.
fn pids_running(args: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = args
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            (std::fs::read(e.path().join("cmdline")).ok()? == want).then_some(pid)
        })
        .collect()
}

#[test]
fn exec_it_detaches_with_the_detach_keys_and_the_process_goes_on() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&["run", "-d", "--name", "dk", img, "sleep", "300"])
        .ok();
    for (keys, typed, tag) in [
        (None, &b"one\n\x10\x11"[..], "4711"),
        (Some("ctrl-a,x"), &b"two\n\x10\x01x"[..], "4712"),
    ] {
        let script = format!("read line; echo \"$line\" > /tmp/got-{tag}; exec sleep {tag}");
        let mut args = vec!["exec", "-it"];
        if let Some(k) = keys {
            args.extend(["--detach-keys", k]);
        }
        args.extend(["dk", "sh", "-c", &script]);
        let (code, _, err) = berth_piped(&env, &args, typed);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("Detached"), "{err}");
        wait_for("the detached process to run on", || {
            !pids_running(&["sleep", tag]).is_empty()
        });
        let got = env
            .berth(&["exec", "dk", "cat", &format!("/tmp/got-{tag}")])
            .ok()
            .stdout;
        // What was typed before the keys went through; a ctrl-p that did
        // not begin the custom keys went through too.
        assert_eq!(
            got.trim_end_matches('\n').trim_end_matches('\x10'),
            if tag == "4711" { "one" } else { "two" }
        );
        // Its terminal is kept by a helper, which ends with the process.
        assert!(
            processes_of(&env).iter().any(|p| p.contains("--drain")),
            "{:?}",
            processes_of(&env)
        );
        for pid in pids_running(&["sleep", tag]) {
            // SAFETY: kill has no memory effects.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        wait_for("the terminal's keeper to end", || {
            !processes_of(&env).iter().any(|p| p.contains("--drain"))
        });
    }
    // Without the keys, the session ends with the process, as before.
    let (code, _, err) = berth_piped(
        &env,
        &["exec", "-it", "dk", "sh", "-c", "read l; exit 7"],
        b"x\n",
    );
    assert_eq!(code, 7, "{err}");
    assert!(!err.contains("Detached"));
    let o = env.berth(&["exec", "-it", "--detach-keys", "ctrl-1", "dk", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("detach-keys"), "{}", o.stderr);
    env.berth(&["rm", "-f", "dk"]).ok();
}

/// What a power cut does to a running container: its monitor and its
/// processes killed, no cleanup.
fn crash(env: &Env, name: &str) {
    let i = inspect(env, name);
    let id = i["Id"].as_str().unwrap().to_string();
    let pid = i["State"]["Pid"].as_i64().unwrap() as i32;
    let state = std::fs::read_to_string(
        env.run_root
            .path()
            .join("containers")
            .join(&id)
            .join("state"),
    )
    .unwrap();
    let mpid: i32 = state
        .lines()
        .find_map(|l| l.strip_prefix("monitor_pid="))
        .unwrap()
        .parse()
        .unwrap();
    // SAFETY: kill has no memory effects.
    unsafe {
        libc::kill(mpid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
    wait_for("the container to die", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    });
}

#[test]
fn system_boot_brings_back_what_the_restart_policies_say_after_a_reboot() {
    let env = Env::new();
    let img = image(&env);
    for (name, policy) in [
        ("always", "always"),
        ("always-stopped", "always"),
        ("unless", "unless-stopped"),
        ("unless-stopped", "unless-stopped"),
        ("on-failure", "on-failure:3"),
        ("plain", "no"),
    ] {
        env.berth(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            policy,
            img,
            "sleep",
            "1000",
        ])
        .ok();
    }
    let ids: Vec<String> = env
        .berth(&["ps", "-aq", "--no-trunc"])
        .ok()
        .stdout
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(ids.len(), 6);
    // Stopped by hand before the reboot.
    env.berth(&["stop", "-t", "0", "always-stopped", "unless-stopped"])
        .ok();
    // The reboot: every process gone, /run empty.
    for name in ["always", "unless", "on-failure", "plain"] {
        crash(&env, name);
    }
    std::fs::remove_dir_all(env.run_root.path().join("containers")).unwrap();
    std::fs::remove_dir_all(env.run_root.path().join("runtime")).unwrap();
    let names = |args: &[&str]| {
        let mut v: Vec<String> = env
            .berth(&[&["ps", "-a", "--format", "json"][..], args].concat())
            .ok()
            .stdout
            .parse::<serde_json::Value>()
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["Names"][0].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    // Filters: one key's values are alternatives, keys all apply.
    assert_eq!(
        names(&["--filter", "restart-policy=unless-stopped"]),
        ["unless", "unless-stopped"]
    );
    assert_eq!(
        names(&[
            "--filter",
            "restart-policy=always",
            "--filter",
            "restart-policy=no"
        ]),
        ["always", "always-stopped", "plain"]
    );
    assert_eq!(
        names(&[
            "--filter",
            "restart-policy=always",
            "--filter",
            "name=stopped"
        ]),
        ["always-stopped"]
    );
    assert!(
        names(&["--filter", "status=running"]).is_empty(),
        "nothing runs after the reboot"
    );
    // Docker's daemon at start: always (even if stopped by hand), and
    // unless-stopped unless stopped by hand.
    let o = env.berth(&["system", "boot"]).ok();
    let mut started: Vec<&str> = o.stdout.lines().collect();
    started.sort();
    assert_eq!(started, ["always", "always-stopped", "unless"]);
    assert_eq!(
        names(&["--filter", "status=running"]),
        ["always", "always-stopped", "unless"]
    );
    // Once is enough: a second run starts nothing.
    assert_eq!(env.berth(&["system", "boot"]).ok().stdout, "");
    // start --all with a filter.
    let o = env
        .berth(&["start", "--all", "--filter", "restart-policy=on-failure"])
        .ok();
    assert_eq!(o.stdout, "on-failure\n");
    assert_eq!(
        names(&["--filter", "status=running"]),
        ["always", "always-stopped", "on-failure", "unless"]
    );
    assert_ne!(
        env.berth(&["start", "--all", "--filter", "restart-policy=sometimes"])
            .code,
        0
    );
    // A start by hand forgets the stop by hand.
    env.berth(&["start", "unless-stopped"]).ok();
    crash(&env, "unless-stopped");
    assert_eq!(
        env.berth(&["system", "boot"]).ok().stdout,
        "unless-stopped\n"
    );
    let all: Vec<String> = names(&[]);
    let mut rm = vec!["rm", "-f"];
    rm.extend(all.iter().map(String::as_str));
    env.berth(&rm).ok();
    assert_eq!(leaked_mounts(&env), 0);
    // "plain" never ran again: its runtime forgot it with /run, and its
    // cgroup (which a real reboot takes too) went with its removal.
    for id in ids {
        assert_eq!(
            common::cgroup_dirs(&id),
            Vec::<std::path::PathBuf>::new(),
            "{id}"
        );
    }
}

#[test]
fn names_bad_values_and_missing_images_fail_in_one_line_and_leave_nothing() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&["create", "--name", "taken", img, "true"]).ok();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "--name", "taken", img, "true"],
            "already in use",
        ),
        (vec!["run", "--name", "bad/name", img, "true"], "--name"),
        (vec!["run", "--memory", "lots", img, "true"], "--memory"),
        (vec!["run", "--memory", "1k", img, "true"], "--memory"),
        (vec!["run", "--cpus=-1", img, "true"], "--cpus"),
        (
            vec!["run", "--network", "none", "-p", "80", img, "true"],
            "bridge networks only",
        ),
        (vec!["run", "--ulimit", "nofile", img, "true"], "--ulimit"),
        (
            vec!["run", "--cap-add", "CAP_BOGUS", img, "true"],
            "unknown capability",
        ),
        (
            vec!["run", "-v", "relative:/x:bogus", img, "true"],
            "--volume",
        ),
        (
            vec!["run", "-v", "/no/such/host/dir:/x", img, "true"],
            "does not exist",
        ),
        (
            vec!["run", "--pull", "never", "nosuchimage", "true"],
            "not in the store",
        ),
        (
            vec!["run", "--runtime", "/no/such/runtime", img, "true"],
            "no such program",
        ),
    ];
    for (args, want) in cases {
        let o = env.berth(&args);
        assert_eq!(o.code, 125, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(want), "{args:?}: {}", o.stderr);
        assert_eq!(
            o.stderr.trim().lines().count(),
            1,
            "{args:?}: one line: {}",
            o.stderr
        );
    }
    // Only the one created on purpose exists.
    assert_eq!(ps_json(&env).as_array().unwrap().len(), 1);
    // A start that fails while the bundle is written (the user is not in
    // the image), after its monitor was started: one line, the monitor
    // gone, the container left created, nothing mounted.
    let o = env.berth(&["run", "--rm", "-u", "nosuchuser", img, "true"]);
    assert_eq!(o.code, 125, "{}", o.stderr);
    assert!(o.stderr.contains("nosuchuser"), "{}", o.stderr);
    assert_eq!(o.stderr.trim().lines().count(), 1, "{}", o.stderr);
    env.berth(&[
        "create",
        "--name",
        "nouser",
        "-u",
        "nosuchuser",
        img,
        "true",
    ])
    .ok();
    let o = env.berth(&["start", "nouser"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("nosuchuser"), "{}", o.stderr);
    let monitors = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("berth-monitor") && c.contains(&*env.run_root.path().to_string_lossy())
            })
        })
        .count();
    assert_eq!(monitors, 0, "a monitor outlived a failed start");
    assert_eq!(inspect(&env, "nouser")["State"]["Status"], "created");
    assert_eq!(leaked_mounts(&env), 0);
    env.berth(&["rm", "nouser"]).ok();
    // A command that is not there: 127; not executable: 126.
    let o = env.berth(&["run", "--rm", img, "/no/such/cmd"]);
    assert_eq!(o.code, 127, "{}", o.stderr);
    let o = env.berth(&["run", "--rm", img, "/etc/passwd"]);
    assert_eq!(o.code, 126, "{}", o.stderr);
    assert_eq!(ps_json(&env).as_array().unwrap().len(), 1);
    assert_eq!(leaked_mounts(&env), 0);
    // Bad flag names are clap's (exit 2).
    assert_eq!(env.berth(&["run", "--no-such-flag", img]).code, 2);
    let o = env.berth(&["start", "nosuch"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("no such container"), "{}", o.stderr);
}

#[test]
fn seccomp_conversions_are_kept_and_a_damaged_one_is_made_again() {
    let env = Env::new();
    let img = image(&env);
    let filtered = |extra: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&[img, "grep", "^Seccomp:", "/proc/self/status"]);
        let o = env.berth(&a).ok();
        assert!(o.stdout.contains('2'), "not filtered: {}", o.stdout);
    };
    let cache = env.run_root.path().join("cache");
    let kept = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(&cache)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    filtered(&[]);
    filtered(&[]);
    let one = kept();
    assert_eq!(one.len(), 1, "{one:?}");
    // Other capabilities: another conversion.
    filtered(&["--cap-add", "SYS_ADMIN"]);
    assert_eq!(kept().len(), 2);
    // A damaged one is converted again, and the container still filtered.
    std::fs::write(&one[0], b"{not json").unwrap();
    filtered(&[]);
    let text = std::fs::read(&one[0]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
    // unconfined and --privileged convert nothing.
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            img,
            "grep",
            "^Seccomp:",
            "/proc/self/status",
        ])
        .ok();
    assert!(o.stdout.contains('0'), "{}", o.stdout);
    assert_eq!(kept().len(), 2);
}

#[test]
fn parallel_runs_all_work() {
    let env = Env::new();
    let img = image(&env);
    let env = &env;
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                s.spawn(move || {
                    let o = env.berth(&[
                        "run",
                        "--rm",
                        "--name",
                        &format!("p{i}"),
                        img,
                        "echo",
                        &format!("hi{i}"),
                    ]);
                    assert_eq!(o.code, 0, "{}", o.stderr);
                    assert_eq!(o.stdout, format!("hi{i}\n"));
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    assert_eq!(ps_json(env).as_array().unwrap().len(), 0);
    assert_eq!(leaked_mounts(env), 0);
}

#[test]
fn process_options_reach_the_container() {
    let env = Env::new();
    let img = image(&env);
    let run = |args: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        env.berth(&a).ok().stdout
    };
    // Supplementary groups, as Docker sets them: the primary group (so a
    // setgid program cannot shed it and get past a file's group-deny
    // bits: CVE-2022-36109), those of the image's /etc/group that list the
    // user, then --group-add's.
    assert_eq!(
        run(&["-u", "app", img, "id"]),
        "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)\n"
    );
    assert_eq!(
        run(&[
            "-u",
            "app",
            "--group-add",
            "nogroup",
            "--group-add",
            "4242",
            img,
            "grep",
            "^Groups",
            "/proc/self/status"
        ]),
        "Groups:\t1000 2000 4242 65534 \n"
    );
    // Root too: its groups and home come from the image.
    assert_eq!(
        run(&[img, "sh", "-c", "id; echo $HOME"]),
        "uid=0(root) gid=0(root) groups=0(root)\n/root\n"
    );
    let o = env.berth(&["run", "--rm", "--group-add", "ghosts", img, "true"]);
    assert_eq!(o.code, 125);
    assert!(
        o.stderr.contains("--group-add") && o.stderr.contains("ghosts"),
        "{}",
        o.stderr
    );
    assert_eq!(run(&["-u", "nobody:app", img, "id", "-u"]), "65534\n");
    assert_eq!(run(&["-w", "/tmp/new", img, "pwd"]), "/tmp/new\n");
    assert_eq!(run(&["--hostname", "box", img, "hostname"]), "box\n");
    // --dns, --dns-search, --dns-option replace the host's lines of their
    // kind; --domainname.
    let resolv = run(&[
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "a.example",
        "--dns-option",
        "ndots:2",
        img,
        "cat",
        "/etc/resolv.conf",
    ]);
    let of_kind = |k: &str| -> Vec<&str> { resolv.lines().filter(|l| l.starts_with(k)).collect() };
    assert_eq!(of_kind("nameserver"), ["nameserver 10.0.0.53"], "{resolv}");
    assert_eq!(of_kind("search"), ["search a.example"], "{resolv}");
    assert_eq!(of_kind("options"), ["options ndots:2"], "{resolv}");
    assert_eq!(
        run(&[
            "--domainname",
            "corp.example",
            img,
            "cat",
            "/proc/sys/kernel/domainname"
        ]),
        "corp.example\n"
    );
    for (flag, value) in [
        ("--dns", "not-an-ip"),
        ("--dns-search", "a\nnameserver 6.6.6.6"),
    ] {
        let o = env.berth(&["run", "--rm", flag, value, img, "true"]);
        assert_eq!(o.code, 125, "{}", o.stderr);
        assert!(o.stderr.contains(flag), "{}", o.stderr);
    }
    // --network none: only loopback; host: the host's interfaces and name.
    assert_eq!(run(&[img, "ls", "/sys/class/net"]), "lo\n");
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(run(&["--network", "host", img, "hostname"]), host_name);
    let host_ifaces = std::fs::read_dir("/sys/class/net").unwrap().count();
    assert_eq!(
        run(&["--network", "host", img, "ls", "/sys/class/net"])
            .lines()
            .count(),
        host_ifaces
    );
    let ef = env.root.path().join("env.list");
    std::fs::write(&ef, "# comment\nFROM_FILE=yes\n").unwrap();
    let out = run(&["-e", "A=1", "--env-file", ef.to_str().unwrap(), img, "env"]);
    assert!(
        out.contains("A=1\n") && out.contains("FROM_FILE=yes\n") && out.contains("PATH="),
        "{out}"
    );
    assert_eq!(
        run(&["--entrypoint", "echo", img, "via", "entrypoint"]),
        "via entrypoint\n"
    );
    // --init: berth-init is pid 1 and the command its child.
    let out = run(&["--init", img, "sh", "-c", "readlink /proc/1/exe; echo $$"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].ends_with("berth-init"), "{out}");
    assert_ne!(lines[1], "1");
    // -i: stdin reaches the container and its end ends it.
    let mut c = env.cmd();
    c.args(["run", "--rm", "-i", img, "wc", "-c"]);
    let out = run_with_stdin(c, b"twelve bytes");
    assert_eq!(out.trim(), "12");
    // -t: a terminal, even when berth's own stdin is not one.
    let out = run(&["-t", img, "sh", "-c", "readlink /proc/self/fd/0; echo x"]);
    assert!(out.starts_with("/dev/pts/0\r\n"), "{out:?}");
}

/// `--cgroupns host|private` (Docker's default: private on cgroup v2, the
/// host's on v1) and `--annotation` (into the runtime's OCI spec and
/// inspect): the two flags added by the spec, its parser and the OCI
/// function alone.
#[test]
fn cgroupns_and_annotations_reach_the_container() {
    let env = Env::new();
    let img = image(&env);
    let ns_of = |args: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[img, "readlink", "/proc/self/ns/cgroup"]);
        env.berth(&a).ok().stdout.trim().to_string()
    };
    let host = std::fs::read_link("/proc/self/ns/cgroup")
        .unwrap()
        .display()
        .to_string();
    assert_eq!(ns_of(&["--cgroupns", "host"]), host);
    let private = ns_of(&["--cgroupns", "private"]);
    assert!(
        private.starts_with("cgroup:[") && private != host,
        "{private}"
    );
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let default = ns_of(&[]);
    assert_eq!(default == host, !v2, "default {default}, the host's {host}");
    // Its own: its cgroup is the root of what it sees.
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--cgroupns",
            "private",
            img,
            "cat",
            "/proc/self/cgroup",
        ])
        .ok();
    assert!(o.stdout.lines().all(|l| l.ends_with(":/")), "{}", o.stdout);
    for bad in ["bogus", "container:x", ""] {
        let o = env.berth(&["run", "--rm", "--cgroupns", bad, img, "true"]);
        assert_eq!(o.code, 125, "{bad}: {}", o.stderr);
        assert!(o.stderr.contains("--cgroupns"), "{bad}: {}", o.stderr);
    }

    let id = env
        .berth(&[
            "run",
            "-d",
            "--cgroupns",
            "host",
            "--annotation",
            "com.example.team=storage",
            "--annotation",
            "com.example.empty",
            img,
            "sleep",
            "30",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let bundle = env
        .run_root
        .path()
        .join("containers")
        .join(&id)
        .join("config.json");
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(spec["annotations"]["com.example.team"], "storage");
    let i = inspect(&env, &id);
    assert_eq!(
        i["HostConfig"]["Annotations"]["com.example.team"],
        "storage"
    );
    assert_eq!(i["HostConfig"]["Annotations"]["com.example.empty"], "");
    assert_eq!(i["HostConfig"]["CgroupnsMode"], "host");
    env.berth(&["rm", "-f", &id]).ok();
    let o = env.berth(&["run", "--rm", "--annotation", "=v", img, "true"]);
    assert_eq!(o.code, 125, "{}", o.stderr);
    assert!(o.stderr.contains("--annotation"), "{}", o.stderr);
}

#[test]
fn devices_namespaces_shm_sysctls_and_hosts_reach_the_container() {
    let env = Env::new();
    let img = image(&env);
    let run = |args: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        env.berth(&a).ok().stdout
    };
    let refused = |args: &[&str], says: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        let o = env.berth(&a);
        assert_eq!(o.code, 125, "{args:?}: {}", o.stderr);
        for s in says {
            assert!(o.stderr.contains(s), "{args:?}: no {s:?} in {}", o.stderr);
        }
    };

    // --device: the node where asked, with just the access asked for (the
    // runtime must not widen a read-only device to rwm).
    let dev = LoopDevice::attach();
    let rw = "dd if=/dev/xvdb bs=4 count=1 2>/dev/null; echo; \
              echo B | dd of=/dev/xvdb 2>/dev/null && echo wrote || echo write-denied";
    let ro = format!("{}:/dev/xvdb:r", dev.path);
    assert_eq!(
        run(&["--device", &ro, img, "sh", "-c", rw]),
        "AAAA\nwrite-denied\n"
    );
    assert_eq!(dev.head(2), b"AA", "a read-only device was written");
    let all = format!("{}:/dev/xvdb", dev.path);
    assert_eq!(
        run(&["--device", &all, img, "sh", "-c", rw]),
        "AAAA\nwrote\n"
    );
    assert_eq!(dev.head(2), b"B\n");
    // Without --device the container has no such node; --privileged has
    // the host's devices.
    let probe = format!("test -b {} && echo there || echo absent", dev.path);
    assert_eq!(run(&[img, "sh", "-c", &probe]), "absent\n");
    assert_eq!(run(&["--privileged", img, "sh", "-c", &probe]), "there\n");
    // --device-cgroup-rule: a device by number, its node from a volume (as
    // for devices that come and go). The image's root is nodev: a node
    // made there opens for nothing, whatever the rules.
    let nodes = env.root.path().join("nodes");
    std::fs::create_dir(&nodes).unwrap();
    let made = std::process::Command::new("mknod")
        .arg(nodes.join("d"))
        .args(["b", &dev.major.to_string(), &dev.minor.to_string()])
        .status()
        .unwrap();
    assert!(made.success());
    let vol = format!("{}:/devs", nodes.display());
    let by_rule = rw.replace("/dev/xvdb", "/devs/d");
    let rule = format!("b {}:{} r", dev.major, dev.minor);
    assert_eq!(
        run(&[
            "--device-cgroup-rule",
            &rule,
            "-v",
            &vol,
            img,
            "sh",
            "-c",
            &by_rule
        ]),
        // The device holds what the rw run above wrote.
        "B\nAA\nwrite-denied\n"
    );
    assert_eq!(
        run(&["-v", &vol, img, "sh", "-c", &by_rule]),
        "\nwrite-denied\n"
    );
    let in_root = format!(
        "mknod /tmp/d b {} {} && {}",
        dev.major,
        dev.minor,
        rw.replace("/dev/xvdb", "/tmp/d")
    );
    assert_eq!(
        run(&["--device-cgroup-rule", &rule, img, "sh", "-c", &in_root]),
        "\nwrite-denied\n"
    );
    refused(
        &["--device-cgroup-rule", "b 7:0 rx", img, "true"],
        &["--device-cgroup-rule"],
    );
    refused(
        &["--device", "/etc/passwd", img, "true"],
        &["--device", "/etc/passwd", "not a device"],
    );
    refused(
        &["--device", "/dev/null:/dev/x:rx", img, "true"],
        &["--device", "access"],
    );

    // --shm-size (64 MiB by default, as Docker's).
    let shm = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend_from_slice(&[img, "grep", " /dev/shm ", "/proc/mounts"]);
        run(&a)
    };
    assert!(shm(&[]).contains("size=65536k"), "{}", shm(&[]));
    assert!(shm(&["--shm-size", "1m"]).contains("size=1024k"));
    refused(&["--shm-size", "0", img, "true"], &["--shm-size"]);

    // --sysctl: namespaced ones, in the container's namespaces only.
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    assert_eq!(
        run(&[
            "--sysctl",
            "kernel.shmmax=123456",
            "--sysctl",
            "net/ipv4/ip_forward=1",
            img,
            "cat",
            "/proc/sys/kernel/shmmax",
            "/proc/sys/net/ipv4/ip_forward"
        ]),
        "123456\n1\n"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
    refused(
        &["--sysctl", "kernel.panic=1", img, "true"],
        &["--sysctl", "kernel.panic"],
    );
    refused(
        &["--sysctl", "vm.swappiness=1", img, "true"],
        &["vm.swappiness"],
    );
    refused(
        &[
            "--network",
            "host",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            img,
            "true",
        ],
        &["net.ipv4.ip_forward", "host"],
    );
    refused(
        &["--ipc", "host", "--sysctl", "kernel.shmmax=1", img, "true"],
        &["kernel.shmmax", "host"],
    );

    // --pid, --ipc, --uts host: the host's namespaces (and its /dev/shm and
    // name); by default the container's own.
    let links = "for n in pid ipc uts; do readlink /proc/self/ns/$n; done";
    let ours: String = ["pid", "ipc", "uts"]
        .iter()
        .map(|n| {
            format!(
                "{}\n",
                std::fs::read_link(format!("/proc/self/ns/{n}"))
                    .unwrap()
                    .display()
            )
        })
        .collect();
    let own = run(&[img, "sh", "-c", links]);
    assert!(
        own.lines().zip(ours.lines()).all(|(a, b)| a != b),
        "{own} vs {ours}"
    );
    assert_eq!(
        run(&["--pid", "host", "--ipc", "host", "--uts", "host", img, "sh", "-c", links]),
        ours
    );
    assert_eq!(
        run(&["--pid", "host", img, "cat", "/proc/1/comm"]),
        std::fs::read_to_string("/proc/1/comm").unwrap()
    );
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(run(&["--uts", "host", img, "hostname"]), host_name);
    let marker = format!("/dev/shm/berth-test-{}", std::process::id());
    std::fs::write(&marker, "host").unwrap();
    let seen = run(&["--ipc", "host", img, "cat", &marker]);
    let private = run(&[
        img,
        "sh",
        "-c",
        &format!("cat {marker} 2>/dev/null || echo private"),
    ]);
    std::fs::remove_file(&marker).unwrap();
    assert_eq!((seen.as_str(), private.as_str()), ("host", "private\n"));
    refused(
        &["--uts", "host", "--hostname", "box", img, "true"],
        &["--hostname", "--uts"],
    );
    refused(&["--pid", "container:web", img, "true"], &["--pid"]);
    // Docker's joinable IPC mode: every berth container's can be joined.
    assert_eq!(run(&["--ipc", "shareable", img, "echo", "ok"]), "ok\n");
    refused(
        &["--pid", "shareable", img, "true"],
        &["--pid", "shareable"],
    );

    // --add-host: lines of /etc/hosts.
    let hosts = run(&[
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "v6:[fd00::2]",
        img,
        "cat",
        "/etc/hosts",
    ]);
    assert!(
        hosts.contains("10.1.2.3\tdb\n") && hosts.contains("fd00::2\tv6\n"),
        "{hosts}"
    );
    refused(&["--add-host", "db", img, "true"], &["--add-host"]);
    refused(
        &["--add-host", "db:10.1.2", img, "true"],
        &["--add-host", "10.1.2"],
    );

    // --cidfile, and inspect shows it all.
    let cid = env.root.path().join("cid");
    let cid_s = cid.to_str().unwrap();
    let labels = env.root.path().join("labels");
    std::fs::write(&labels, "# team labels\nteam=db\n\ntier=back\n").unwrap();
    let made = env.berth(&[
        "create",
        "--label-file",
        labels.to_str().unwrap(),
        "--label",
        "tier=front",
        "--cidfile",
        cid_s,
        "--device",
        &ro,
        "--pid",
        "host",
        "--ipc",
        "host",
        "--sysctl",
        "kernel.hostname=x",
        "--add-host",
        "db:10.1.2.3",
        img,
        "true",
    ]);
    let id = made.ok().stdout.trim().to_string();
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id);
    let again = env.berth(&["create", "--cidfile", cid_s, img, "true"]);
    assert_eq!(again.code, 125);
    assert!(
        again.stderr.contains("--cidfile") && again.stderr.contains("exists"),
        "{}",
        again.stderr
    );
    assert_eq!(
        ps_json(&env).as_array().unwrap().len(),
        1,
        "the refused create made a container"
    );
    let h = &inspect(&env, &id)["HostConfig"];
    assert_eq!(h["Devices"][0]["PathOnHost"], dev.path.as_str());
    assert_eq!(h["Devices"][0]["PathInContainer"], "/dev/xvdb");
    assert_eq!(h["Devices"][0]["CgroupPermissions"], "r");
    assert_eq!(
        (&h["PidMode"], &h["IpcMode"], &h["UTSMode"]),
        (&"host".into(), &"host".into(), &"".into())
    );
    assert_eq!(h["Sysctls"]["kernel.hostname"], "x");
    assert_eq!(h["ExtraHosts"][0], "db:10.1.2.3");
    assert_eq!(h["ShmSize"], 0);
    let l = &inspect(&env, &id)["Config"]["Labels"];
    assert_eq!(
        (&l["team"], &l["tier"]),
        (&"db".into(), &"front".into()),
        "--label wins"
    );
    env.berth(&["rm", &id]).ok();
    assert_eq!(ps_json(&env).as_array().unwrap().len(), 0);
}

fn run_with_stdin(mut c: std::process::Command, input: &[u8]) -> String {
    use std::io::Write;
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn volumes_binds_and_tmpfs_mount_where_asked() {
    let env = Env::new();
    let img = image(&env);
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), "host file\n").unwrap();
    let hv = format!("{}:/h", host.path().display());
    let o = env
        .berth(&[
            "run",
            "--rm",
            "-v",
            &hv,
            img,
            "sh",
            "-c",
            "cat /h/f; echo new > /h/g",
        ])
        .ok();
    assert_eq!(o.stdout, "host file\n");
    assert_eq!(
        std::fs::read_to_string(host.path().join("g")).unwrap(),
        "new\n"
    );
    let ro = format!("{}:/h:ro,z", host.path().display());
    let o = env.berth(&["run", "--rm", "-v", &ro, img, "touch", "/h/x"]);
    assert_ne!(o.code, 0);
    assert!(!host.path().join("x").exists());
    // A named volume persists across containers.
    env.berth(&[
        "run",
        "--rm",
        "-v",
        "vol1:/v",
        img,
        "sh",
        "-c",
        "echo kept > /v/k",
    ])
    .ok();
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=vol1,target=/w",
            img,
            "cat",
            "/w/k",
        ])
        .ok();
    assert_eq!(o.stdout, "kept\n");
    // tmpfs, and a read-only root.
    let o = env.berth(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch:size=1m",
        img,
        "sh",
        "-c",
        "echo t > /scratch/t && cat /scratch/t; touch /rootfile",
    ]);
    assert_eq!(o.stdout, "t\n");
    assert_ne!(o.code, 0, "the root is read-only");
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--mount",
            "type=tmpfs,target=/m,tmpfs-mode=700",
            img,
            "stat",
            "-c",
            "%a",
            "/m",
        ])
        .ok();
    assert_eq!(o.stdout, "700\n");
}

#[test]
fn resource_limits_apply_and_the_oom_kill_is_reported() {
    let env = Env::new();
    let img = image(&env);
    let v1 = Path::new("/sys/fs/cgroup/memory").is_dir();
    let limit_file = if v1 {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    } else {
        "/sys/fs/cgroup/memory.max"
    };
    let o = env
        .berth(&["run", "--rm", "--memory", "64m", img, "cat", limit_file])
        .ok();
    assert_eq!(o.stdout.trim(), (64u64 << 20).to_string());
    let pids_file = if v1 {
        "/sys/fs/cgroup/pids/pids.max"
    } else {
        "/sys/fs/cgroup/pids.max"
    };
    let o = env
        .berth(&["run", "--rm", "--pids-limit", "42", img, "cat", pids_file])
        .ok();
    assert_eq!(o.stdout.trim(), "42");
    // A shell variable of 64 MiB in a 16 MiB container.
    let o = env.berth(&[
        "run",
        "--name",
        "oom",
        "--memory",
        "16m",
        "--memory-swap",
        "16m",
        img,
        "sh",
        "-c",
        "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(o.code, 137, "{} {}", o.stdout, o.stderr);
    assert!(o.stderr.contains("OOM"), "{}", o.stderr);
    assert_eq!(inspect(&env, "oom")["State"]["OOMKilled"], true);
    // --ulimit.
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=512:1024",
            img,
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn",
        ])
        .ok();
    assert_eq!(o.stdout, "512\n1024\n");
    // The soft limit, the CFS period and quota, the OOM score.
    let (soft, cfs) = if v1 {
        (
            "/sys/fs/cgroup/memory/memory.soft_limit_in_bytes",
            "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us",
        )
    } else {
        ("/sys/fs/cgroup/memory.low", "cat /sys/fs/cgroup/cpu.max")
    };
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--memory-reservation",
            "32m",
            "--cpu-period",
            "50000",
            "--cpu-quota",
            "25000",
            "--oom-score-adj",
            "300",
            img,
            "sh",
            "-c",
            &format!("cat {soft}; {cfs}; cat /proc/self/oom_score_adj"),
        ])
        .ok();
    let want_cfs = if v1 { "25000\n50000" } else { "25000 50000" };
    assert_eq!(o.stdout, format!("{}\n{want_cfs}\n300\n", 32u64 << 20));
    for (flags, says) in [
        (&["--cpus", "1", "--cpu-quota", "50000"][..], "--cpus"),
        (
            &["--memory", "16m", "--memory-reservation", "32m"][..],
            "--memory-reservation",
        ),
        (&["--oom-score-adj", "-1001"][..], "--oom-score-adj"),
        (&["--cgroup-parent", "../escape"][..], "--cgroup-parent"),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&[img, "true"]);
        let o = env.berth(&a);
        assert_eq!(o.code, 125, "{flags:?}: {}", o.stderr);
        assert!(o.stderr.contains(says), "{flags:?}: {}", o.stderr);
    }
    // Block I/O limits (a loop device: a real one no container has), the
    // swappiness, the OOM killer off.
    let dev = LoopDevice::attach();
    let numbers = format!("{}:{}", dev.major, dev.minor);
    let (io, want_io) = if v1 {
        (
            "cat /sys/fs/cgroup/blkio/blkio.throttle.write_bps_device /sys/fs/cgroup/blkio/blkio.throttle.read_iops_device",
            format!("{numbers} 1048576\n{numbers} 100\n"),
        )
    } else {
        (
            "cat /sys/fs/cgroup/io.max",
            format!("{numbers} rbps=max wbps=1048576 riops=100 wiops=max\n"),
        )
    };
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--device-write-bps",
            &format!("{}:1mb", dev.path),
            "--device-read-iops",
            &format!("{}:100", dev.path),
            img,
            "sh",
            "-c",
            io,
        ])
        .ok();
    assert_eq!(o.stdout, want_io);
    let o = env.berth(&[
        "run",
        "--rm",
        "--device-read-bps",
        "/dev/null:1mb",
        img,
        "true",
    ]);
    assert_eq!(o.code, 125, "{}", o.stderr);
    assert!(
        o.stderr.contains("--device-read-bps") && o.stderr.contains("/dev/null"),
        "{}",
        o.stderr
    );
    if v1 {
        let o = env
            .berth(&[
                "run",
                "--rm",
                "--memory",
                "64m",
                "--memory-swappiness",
                "10",
                "--oom-kill-disable",
                img,
                "sh",
                "-c",
                "cat /sys/fs/cgroup/memory/memory.swappiness; grep oom_kill_disable /sys/fs/cgroup/memory/memory.oom_control",
            ])
            .ok();
        assert_eq!(o.stdout, "10\noom_kill_disable 1\n");
    } else {
        let o = env
            .berth(&["run", "--rm", "--memory-swappiness", "10", img, "true"])
            .ok();
        assert!(
            o.stderr.contains("--memory-swappiness is ignored"),
            "{}",
            o.stderr
        );
        // --blkio-weight: io.weight (io.cost), scaled as runc does (300
        // of 10-1000 is 2930 of 1-10000), or io.bfq.weight as is.
        let o = env
            .berth(&[
                "run",
                "--rm",
                "--blkio-weight",
                "300",
                img,
                "sh",
                "-c",
                "cat /sys/fs/cgroup/io.bfq.weight 2>/dev/null || cat /sys/fs/cgroup/io.weight",
            ])
            .ok();
        assert!(
            o.stdout.starts_with("default 2930\n") || o.stdout.starts_with("default 300\n"),
            "{}",
            o.stdout
        );
        // --blkio-weight-device: v2 weighs a device only under bfq or
        // io.cost (else the kernel refuses the write and the container
        // could not start): kept where it can, else dropped with a warning.
        let o = env
            .berth(&[
                "run",
                "--rm",
                "--blkio-weight-device",
                &format!("{}:200", dev.path),
                img,
                "sh",
                "-c",
                "cat /sys/fs/cgroup/io.bfq.weight 2>/dev/null || cat /sys/fs/cgroup/io.weight",
            ])
            .ok();
        assert!(
            o.stdout.contains(&format!("{numbers} "))
                || (o.stderr.contains("--blkio-weight-device") && o.stderr.contains("is ignored")),
            "{} {}",
            o.stdout,
            o.stderr
        );
    }
    // --cgroup-parent: the container's cgroup goes under it.
    let parent = format!("berth-test-parent-{}", std::process::id());
    let id = env
        .berth(&[
            "run",
            "-d",
            "--cgroup-parent",
            &format!("/{parent}"),
            img,
            "sleep",
            "100",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let pid = inspect(&env, &id)["State"]["Pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!("/{parent}/{id}");
    assert!(
        cg.lines()
            .filter(|l| l.contains("pids"))
            .all(|l| l.ends_with(&want)),
        "{cg}"
    );
    assert!(cg.contains(&want), "{cg}");
    env.berth(&["rm", "-f", &id]).ok();
    // The parent is the user's to keep or remove (as in Docker): ours go.
    for c in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(c.path().join(&parent));
    }
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&parent));
}

#[test]
fn runc_runs_the_same_containers() {
    let env = Env::new();
    let img = image(&env);
    assert!(
        Path::new("/usr/sbin/runc").exists() || Path::new("/usr/bin/runc").exists(),
        "runc is missing: apt-get install runc"
    );
    let o = env.berth(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        img,
        "sh",
        "-c",
        "echo via runc; exit 5",
    ]);
    assert_eq!(o.code, 5, "{}", o.stderr);
    assert_eq!(o.stdout, "via runc\n");
    // runc's own `delete` ran (the monitor deletes only berth-runtime's
    // containers in-process): nothing is left in runc's state root.
    let runc_root = env.run_root.path().join("runtime/runc");
    let left: Vec<_> = std::fs::read_dir(&runc_root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "runc state left: {left:?}");
    env.berth(&[
        "run",
        "-d",
        "--name",
        "rc",
        "--runtime",
        "runc",
        img,
        "sleep",
        "100",
    ])
    .ok();
    assert_eq!(inspect(&env, "rc")["State"]["Status"], "running");
    assert_eq!(inspect(&env, "rc")["HostConfig"]["Runtime"], "runc");
    env.berth(&["stop", "-t", "1", "rc"]).ok();
    assert_eq!(inspect(&env, "rc")["State"]["ExitCode"], 137);
    env.berth(&["rm", "rc"]).ok();
    assert_eq!(leaked_mounts(&env), 0);
}

#[test]
fn exec_runs_in_the_container_with_its_options() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "-d",
        "--name",
        "ex",
        "-e",
        "FROM_RUN=1",
        "--group-add",
        "4242",
        img,
        "sleep",
        "100",
    ])
    .ok();
    let o = env.berth(&[
        "exec",
        "ex",
        "sh",
        "-c",
        "echo $FROM_RUN; cat /proc/1/cmdline | tr '\\0' ' '; exit 4",
    ]);
    assert_eq!(o.code, 4, "{}", o.stderr);
    assert_eq!(o.stdout, "1\nsleep 100 ");
    let o = env
        .berth(&[
            "exec",
            "-u",
            "app",
            "-w",
            "/tmp",
            "-e",
            "X=2",
            "ex",
            "sh",
            "-c",
            "id -u; pwd; echo $X $HOME; id -G",
        ])
        .ok();
    // The container's --group-add holds for another user too.
    assert_eq!(o.stdout, "1000\n/tmp\n2 /home/app\n1000 2000 4242\n");
    let mut c = env.cmd();
    c.args(["exec", "-i", "ex", "wc", "-c"]);
    assert_eq!(run_with_stdin(c, b"12345").trim(), "5");
    let o = env
        .berth(&["exec", "-t", "ex", "readlink", "/proc/self/fd/0"])
        .ok();
    assert!(o.stdout.starts_with("/dev/pts/"), "{:?}", o.stdout);
    env.berth(&["exec", "-d", "ex", "sh", "-c", "echo detached > /tmp/d"])
        .ok();
    wait_for("the detached exec", || {
        env.berth(&["exec", "ex", "cat", "/tmp/d"]).stdout == "detached\n"
    });
    let o = env.berth(&["exec", "ex", "/no/such/cmd"]);
    assert_ne!(o.code, 0);
    env.berth(&["stop", "-t", "0", "ex"]).ok();
    let o = env.berth(&["exec", "ex", "true"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("not running"), "{}", o.stderr);
}

#[test]
fn attach_follows_output_and_ends_with_the_container() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "-d",
        "--name",
        "at",
        img,
        "sh",
        "-c",
        "sleep 0.5; for i in 1 2 3; do echo a$i; echo e$i >&2; sleep 0.1; done; exit 6",
    ])
    .ok();
    let o = env.berth(&["attach", "at"]);
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert!(o.stdout.contains("a3\n"), "{:?}", o.stdout);
    assert!(o.stderr.contains("e3\n"), "{:?}", o.stderr);
    assert_eq!(inspect(&env, "at")["State"]["Status"], "exited");
    let o = env.berth(&["attach", "at"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("not running"), "{}", o.stderr);
    // -i containers take stdin from an attached client.
    env.berth(&[
        "run",
        "-d",
        "-i",
        "--name",
        "cat",
        img,
        "sh",
        "-c",
        "read line; echo got $line",
    ])
    .ok();
    let mut c = env.cmd();
    c.args(["attach", "cat"]);
    let out = run_with_stdin_code(c, b"hello\n");
    assert_eq!(out, "got hello\n");
}

fn run_with_stdin_code(mut c: std::process::Command, input: &[u8]) -> String {
    use std::io::Write;
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    let o = child.wait_with_output().unwrap();
    drop(stdin);
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn cp_copies_both_ways_and_never_follows_a_container_symlink_out() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "-d",
        "--name",
        "cpc",
        img,
        "sh",
        "-c",
        "mkdir -p /out/sub && echo one > /out/sub/f && ln -s /etc/passwd /out/link && sleep 100",
    ])
    .ok();
    wait_for("the files", || {
        env.berth(&["exec", "cpc", "cat", "/out/sub/f"]).stdout == "one\n"
    });
    let host = tempfile::tempdir().unwrap();
    // Out: a directory into an existing directory.
    env.berth(&["cp", "cpc:/out", host.path().to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(host.path().join("out/sub/f")).unwrap(),
        "one\n"
    );
    assert_eq!(
        std::fs::read_link(host.path().join("out/link")).unwrap(),
        Path::new("/etc/passwd"),
        "symlinks are copied as symlinks"
    );
    // In: a file to a new name, and a directory into a directory.
    std::fs::write(host.path().join("h.txt"), "host\n").unwrap();
    env.berth(&[
        "cp",
        host.path().join("h.txt").to_str().unwrap(),
        "cpc:/tmp/renamed.txt",
    ])
    .ok();
    assert_eq!(
        env.berth(&["exec", "cpc", "cat", "/tmp/renamed.txt"])
            .ok()
            .stdout,
        "host\n"
    );
    std::fs::create_dir(host.path().join("tree")).unwrap();
    std::fs::write(host.path().join("tree/x"), "x\n").unwrap();
    env.berth(&["cp", host.path().join("tree").to_str().unwrap(), "cpc:/tmp"])
        .ok();
    assert_eq!(
        env.berth(&["exec", "cpc", "cat", "/tmp/tree/x"])
            .ok()
            .stdout,
        "x\n"
    );
    assert_eq!(
        env.berth(&["exec", "cpc", "stat", "-c", "%u", "/tmp/tree/x"])
            .ok()
            .stdout,
        "0\n"
    );

    // The attack (CVE-2018-15664 class): a container path that is a symlink
    // to the host's / (or anything outside) must resolve inside the root.
    let victim = tempfile::tempdir().unwrap();
    let vpath = victim.path().to_str().unwrap().to_string();
    env.berth(&["exec", "cpc", "ln", "-s", &vpath, "/escape"])
        .ok();
    env.berth(&["exec", "cpc", "ln", "-s", "../../../../../../..", "/up"])
        .ok();
    std::fs::write(host.path().join("evil"), "evil\n").unwrap();
    let evil = host.path().join("evil");
    for dest in [
        "cpc:/escape/",
        "cpc:/escape/evil",
        "cpc:/up/escape/evil",
        &format!("cpc:/up{vpath}/evil"),
    ] {
        let _ = env.berth(&["cp", evil.to_str().unwrap(), dest]);
        assert!(
            !victim.path().join("evil").exists(),
            "cp {dest} wrote outside the container"
        );
    }
    // Reading: /up/etc/shadow is the container's, not the host's.
    let got = host.path().join("got");
    let _ = env.berth(&["cp", "cpc:/up/etc/passwd", got.to_str().unwrap()]);
    let text = std::fs::read_to_string(&got).unwrap_or_default();
    assert!(
        !text.contains("daemon:") || text.contains("app:x:1000"),
        "read the host's /etc/passwd: {text}"
    );
    // A symlink placed where a directory is copied: replaced, not followed.
    env.berth(&["exec", "cpc", "ln", "-s", &vpath, "/tmp/tree2"])
        .ok();
    std::fs::create_dir(host.path().join("tree2")).unwrap();
    std::fs::write(host.path().join("tree2/y"), "y\n").unwrap();
    let _ = env.berth(&[
        "cp",
        host.path().join("tree2").to_str().unwrap(),
        "cpc:/tmp/",
    ]);
    assert!(
        !victim.path().join("y").exists(),
        "followed a symlink while copying a tree"
    );
    // A stopped container's files can be copied too.
    env.berth(&["stop", "-t", "0", "cpc"]).ok();
    let stopped = host.path().join("stopped");
    env.berth(&["cp", "cpc:/tmp/renamed.txt", stopped.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&stopped).unwrap(), "host\n");
    assert_eq!(
        leaked_mounts(&env),
        0,
        "cp of a stopped container leaves no mount"
    );
}

/// `berth ARGS` with `input` on its standard input: (exit code, stdout,
/// stderr).
fn berth_piped(env: &Env, args: &[&str], input: &[u8]) -> (i32, Vec<u8>, String) {
    use std::io::Write;
    let mut c = env.cmd();
    c.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (
        o.status.code().unwrap_or(-1),
        o.stdout,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn cp_streams_tar_both_ways_and_a_hostile_stream_stays_in_the_container() {
    use berth_image::tar::build::{header, Tar};
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "-d",
        "--name",
        "tc",
        img,
        "sh",
        "-c",
        "mkdir -p /out/sub && echo one > /out/sub/f && ln /out/sub/f /out/hard && ln -s /etc/passwd /out/link && sleep 100",
    ])
    .ok();
    wait_for("the files", || {
        env.berth(&["exec", "tc", "cat", "/out/hard"]).stdout == "one\n"
    });
    // Out: GNU tar reads the stream; links stay links.
    let (code, tar, err) = berth_piped(&env, &["cp", "tc:/out", "-"], b"");
    assert_eq!(code, 0, "{err}");
    let host = tempfile::tempdir().unwrap();
    let x = std::process::Command::new("tar")
        .args(["-x", "-C"])
        .arg(host.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&tar)?;
            c.wait()
        })
        .expect("GNU tar is needed for this test");
    assert!(x.success());
    let out = host.path().join("out");
    assert_eq!(std::fs::read_to_string(out.join("sub/f")).unwrap(), "one\n");
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        Path::new("/etc/passwd")
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(out.join("hard")).unwrap().ino(),
        std::fs::metadata(out.join("sub/f")).unwrap().ino(),
        "a hard link stays one"
    );

    // In: a stream with a long name, modes, owners, links.
    let long = format!("d/{}", "n".repeat(140));
    let mut t = Tar::default();
    t.dir("d/", 0o750)
        .pax(&[("path", long.as_bytes())])
        .file(&long, b"long\n", 0o640)
        .symlink("d/l", "/etc/passwd")
        .pax(&[("linkpath", long.as_bytes())])
        .hardlink("d/h", &long);
    let mut owned = header(b"d/owned", b'0', 3, b"", 0o4755);
    owned[108..116].copy_from_slice(b"0001750\0");
    berth_image::tar::build::seal(&mut owned);
    t.raw(owned, b"abc");
    let stream = t.end();
    let (code, _, err) = berth_piped(&env, &["cp", "-", "tc:/tmp"], &stream);
    assert_eq!(code, 0, "{err}");
    let sh = |cmd: &str| env.berth(&["exec", "tc", "sh", "-c", cmd]).ok().stdout;
    assert_eq!(sh(&format!("cat /tmp/{long} /tmp/d/h")), "long\nlong\n");
    assert_eq!(
        sh("readlink /tmp/d/l; stat -c '%a %u' /tmp/d /tmp/d/owned"),
        "/etc/passwd\n750 0\n4755 0\n"
    );
    // -a keeps the archive's owners.
    let (code, _, err) = berth_piped(&env, &["cp", "-a", "-", "tc:/tmp"], &stream);
    assert_eq!(code, 0, "{err}");
    assert_eq!(sh("stat -c '%u %a' /tmp/d/owned"), "1000 4755\n");

    // Hostile streams. The container plants a symlink to the host's
    // directory where the stream goes, and one to /.
    let victim = tempfile::tempdir().unwrap();
    let vpath = victim.path().to_str().unwrap().to_string();
    sh(&format!(
        "ln -s {vpath} /tmp/esc && ln -s / /tmp/root && mkdir /tmp/in"
    ));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            Tar::default()
                .file("../../../../../../../../{V}/dotdot", b"x", 0o644)
                .end(),
        ),
        (
            "through a link",
            Tar::default().file("esc/through", b"x", 0o644).end(),
        ),
        (
            "link then file",
            Tar::default()
                .symlink("sneak", "{V}")
                .file("sneak/via", b"x", 0o644)
                .end(),
        ),
        (
            "hard link out",
            Tar::default()
                .hardlink("hl", "../../../../../../etc/passwd")
                .end(),
        ),
    ];
    for (what, data) in cases {
        let data = String::from_utf8_lossy(&data)
            .replace("{V}", &vpath)
            .into_bytes();
        let _ = berth_piped(&env, &["cp", "-", "tc:/tmp/in"], &data);
        let _ = berth_piped(&env, &["cp", "-", "tc:/tmp/esc"], &data);
        assert_eq!(
            std::fs::read_dir(victim.path()).unwrap().count(),
            0,
            "{what}: wrote outside the container"
        );
    }
    sh("mkdir /tmp/in2");
    // "..": refused with a clear error, nothing written.
    let (code, _, err) = berth_piped(
        &env,
        &["cp", "-", "tc:/tmp/in2"],
        &Tar::default().file("../up", b"x", 0o644).end(),
    );
    assert_ne!(code, 0);
    assert!(err.contains("'..'"), "{err}");
    // A device node: refused.
    let (code, _, err) = berth_piped(
        &env,
        &["cp", "-", "tc:/tmp/in2"],
        &Tar::default()
            .raw(header(b"null", b'3', 0, b"", 0o666), b"")
            .end(),
    );
    assert_ne!(code, 0);
    assert!(err.contains("device nodes"), "{err}");
    assert_eq!(
        sh("ls /tmp/in2 | wc -l").trim(),
        "0",
        "nothing written for the refused streams"
    );
    // The destination must be a directory.
    let (code, _, err) = berth_piped(&env, &["cp", "-", "tc:/tmp/d/owned"], &stream);
    assert_ne!(code, 0);
    assert!(err.contains("must be an existing directory"), "{err}");
    // A garbage stream is an error, not a hang.
    let (code, _, err) = berth_piped(&env, &["cp", "-", "tc:/tmp/in"], &[7u8; 700]);
    assert_ne!(code, 0, "{err}");
    env.berth(&["rm", "-f", "tc"]).ok();
    assert_eq!(leaked_mounts(&env), 0);
}

#[test]
fn diff_rename_top_stats_volumes_and_system() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "-d",
        "--name",
        "d1",
        "-v",
        "named:/v",
        img,
        "sh",
        "-c",
        "echo n > /tmp/new; rm /bin/ls; echo v > /v/f; sleep 100",
    ])
    .ok();
    wait_for("the changes", || {
        env.berth(&["diff", "d1"]).stdout.contains("/tmp/new")
    });
    let d = env.berth(&["diff", "d1"]).ok().stdout;
    assert!(
        d.contains("A /tmp/new\n") && d.contains("D /bin/ls\n") && d.contains("C /tmp\n"),
        "{d}"
    );
    assert!(
        !d.contains("/proc") && !d.contains("/etc/hosts") && !d.contains("/v"),
        "mount points are not changes: {d}"
    );
    env.berth(&["rename", "d1", "d2"]).ok();
    assert_eq!(inspect(&env, "d2")["Name"], "/d2");
    let o = env.berth(&["rename", "d2", "bad/name"]);
    assert_ne!(o.code, 0);
    let top = env.berth(&["top", "d2"]).ok().stdout;
    assert!(top.contains("sleep 100"), "{top}");
    let s: serde_json::Value = serde_json::from_str(
        &env.berth(&["stats", "--no-stream", "--format", "json", "d2"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert!(s[0]["MemUsage"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s[0]["PIDs"], 1);
    env.berth(&[
        "run",
        "-d",
        "--name",
        "busy",
        img,
        "sh",
        "-c",
        "yes > /dev/null",
    ])
    .ok();
    std::thread::sleep(Duration::from_millis(300));
    let s: serde_json::Value = serde_json::from_str(
        &env.berth(&["stats", "--no-stream", "--format", "json", "busy"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert!(
        s[0]["CPUPerc"].as_f64().unwrap() > 1.0,
        "a busy loop uses CPU: {s}"
    );
    env.berth(&["rm", "-f", "busy"]).ok();
    // Volumes: in use cannot go; the data lives on after the container.
    let o = env.berth(&["volume", "rm", "named"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("in use"), "{}", o.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&env.berth(&["volume", "inspect", "named"]).ok().stdout).unwrap();
    let mp = v[0]["Mountpoint"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(Path::new(&mp).join("f")).unwrap(),
        "v\n"
    );
    env.berth(&["volume", "create", "-l", "k=v", "spare"]).ok();
    let ls = env.berth(&["volume", "ls", "-q"]).ok().stdout;
    assert_eq!(ls, "named\nspare\n");
    let df = env.berth(&["system", "df"]).ok().stdout;
    assert!(
        df.contains("Images") && df.contains("Containers") && df.contains("Local Volumes"),
        "{df}"
    );
    env.berth(&["rm", "-f", "d2"]).ok();
    // An image VOLUME gets an anonymous volume, removed with rm -v.
    env.berth(&[
        "run",
        "--name",
        "anon",
        "-v",
        "/scratch",
        img,
        "sh",
        "-c",
        "echo a > /scratch/a",
    ])
    .ok();
    assert_eq!(
        env.berth(&["volume", "ls", "-q"])
            .ok()
            .stdout
            .lines()
            .count(),
        3
    );
    env.berth(&["rm", "-v", "anon"]).ok();
    assert_eq!(
        env.berth(&["volume", "ls", "-q"]).ok().stdout,
        "named\nspare\n"
    );
    env.berth(&["create", "--name", "stopped", img, "true"])
        .ok();
    let o = env.berth(&["system", "prune", "-f", "--volumes"]).ok();
    assert!(o.stdout.contains("Deleted container"), "{}", o.stdout);
    assert_eq!(ps_json(&env).as_array().unwrap().len(), 0);
    env.berth(&["volume", "prune", "--all"]).ok();
    assert_eq!(env.berth(&["volume", "ls", "-q"]).ok().stdout, "");
    env.berth(&["system", "prune", "-a", "-f"]).ok();
    assert_eq!(
        env.images_json().as_array().unwrap().len(),
        0,
        "unused images go with -a"
    );
    assert_eq!(leaked_mounts(&env), 0);
}

#[test]
fn a_new_volume_gets_the_image_content_at_its_path() {
    let env = Env::new();
    let img = image(&env);
    // The image has /data/seed: a new named volume there starts with it.
    let o = env
        .berth(&[
            "run",
            "--rm",
            "-v",
            "seeded:/data",
            img,
            "cat",
            "/data/seed",
        ])
        .ok();
    assert_eq!(o.stdout, "from the image\n");
    // Not again once the volume has content of its own.
    env.berth(&[
        "run",
        "--rm",
        "-v",
        "seeded:/data",
        img,
        "sh",
        "-c",
        "rm /data/seed; echo mine > /data/own",
    ])
    .ok();
    let o = env
        .berth(&["run", "--rm", "-v", "seeded:/data", img, "ls", "/data"])
        .ok();
    assert_eq!(o.stdout, "own\n");
    // nocopy: a new volume stays empty, with either syntax.
    for (flag, arg) in [
        ("-v", "bare:/data:nocopy"),
        ("--mount", "type=volume,src=bare2,dst=/data,volume-nocopy"),
    ] {
        let o = env
            .berth(&["run", "--rm", flag, arg, img, "ls", "-A", "/data"])
            .ok();
        assert_eq!(o.stdout, "", "{arg}");
    }
    // Bind mounts are never seeded.
    let host = tempfile::tempdir().unwrap();
    let b = format!("{}:/data", host.path().display());
    env.berth(&["run", "--rm", "-v", &b, img, "true"]).ok();
    assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0);
}

/// Whether `path` is a mount point in this (the host's) mount namespace.
fn host_mount_at(path: &Path) -> bool {
    let want = path.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want))
}

fn umount(path: &Path) {
    let st = std::process::Command::new("umount")
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "umount {}", path.display());
}

#[test]
fn bind_propagation_reaches_the_host_only_when_asked() {
    let env = Env::new();
    let img = image(&env);
    let host = tempfile::tempdir().unwrap();
    let src = host.path().canonicalize().unwrap();
    std::fs::create_dir(src.join("sub")).unwrap();
    // The source is a mount of the test's own, private whatever the host's
    // mounts are (systemd makes / shared), and unmounted (with all under
    // it) however the test ends.
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .args(["-R", "-l"])
                .arg(&self.0)
                .status();
        }
    }
    let mount = |args: &[&str]| {
        let st = std::process::Command::new("mount")
            .args(args)
            .arg(&src)
            .args(if args[0] == "--bind" {
                vec![&src]
            } else {
                vec![]
            })
            .status()
            .unwrap();
        assert!(st.success(), "mount {args:?} {}", src.display());
    };
    mount(&["--bind"]);
    let _unmount = Unmount(src.clone());
    mount(&["--make-private"]);
    let inner = |prop: &str| {
        let v = format!("{}:/d{prop}", src.display());
        env.berth(&[
            "run",
            "--rm",
            "--privileged",
            "-v",
            &v,
            img,
            "busybox",
            "mount",
            "-t",
            "tmpfs",
            "inner",
            "/d/sub",
        ])
    };
    // The source is on a private mount: rshared is refused, and says how.
    let o = inner(":rshared");
    assert_eq!(o.code, 125, "{}", o.stderr);
    assert!(
        o.stderr.contains("not shared") && o.stderr.contains("--make-rshared"),
        "{}",
        o.stderr
    );
    assert!(
        ps_json(&env).as_array().unwrap().is_empty(),
        "nothing half-created"
    );
    // Made shared.
    mount(&["--make-shared"]);
    let sub = src.join("sub");
    // By default (rprivate) the container's mount stays in the container.
    inner("").ok();
    assert!(!host_mount_at(&sub));
    inner(":rslave").ok();
    assert!(!host_mount_at(&sub));
    // inspect shows each bind's propagation.
    let v = format!("{}:/d:rshared", src.display());
    env.berth(&[
        "create", "--name", "prop", "-v", &v, "-v", "/tmp:/t", img, "true",
    ])
    .ok();
    let m = inspect(&env, "prop")["Mounts"].clone();
    let props: Vec<_> = m
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Propagation"].as_str().unwrap())
        .collect();
    assert_eq!(props, ["rshared", "rprivate"]);
    env.berth(&["rm", "prop"]).ok();
    // rshared: it reaches the host.
    inner(":rshared").ok();
    let reached = host_mount_at(&sub);
    if reached {
        umount(&sub);
    }
    assert!(reached, "a mount under an rshared bind reaches the host");
    assert_eq!(leaked_mounts(&env), 0);
}

#[test]
fn tmpfs_is_noexec_nosuid_nodev_unless_told() {
    let env = Env::new();
    let img = image(&env);
    let opts = |arg: &str| {
        let o = env
            .berth(&[
                "run",
                "--rm",
                "--tmpfs",
                arg,
                img,
                "grep",
                " /t ",
                "/proc/mounts",
            ])
            .ok();
        o.stdout
    };
    let d = opts("/t");
    assert!(
        d.contains("nosuid") && d.contains("nodev") && d.contains("noexec"),
        "{d}"
    );
    let e = opts("/t:exec,size=1m");
    assert!(!e.contains("noexec") && e.contains("nosuid"), "{e}");
    // A program copied there runs only with exec.
    let run = |arg: &str| {
        env.berth(&[
            "run",
            "--rm",
            "--tmpfs",
            arg,
            img,
            "sh",
            "-c",
            "busybox cp /bin/busybox /t/true && /t/true",
        ])
        .code
    };
    assert_ne!(run("/t"), 0);
    assert_eq!(run("/t:exec"), 0);
}

fn attach_socket(env: &Env, name: &str) -> std::os::unix::net::UnixStream {
    let id = inspect(env, name)["Id"].as_str().unwrap().to_string();
    let p = env
        .run_root
        .path()
        .join("containers")
        .join(id)
        .join("attach.sock");
    std::os::unix::net::UnixStream::connect(p).unwrap()
}

#[test]
fn a_client_that_does_not_read_never_blocks_the_container() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "-d",
        "--name",
        "chatty",
        "--log-driver",
        "none",
        img,
        "sh",
        "-c",
        "sleep 0.5; head -c 20000000 /dev/zero; echo done >&2",
    ])
    .ok();
    // Attached, and never reading.
    let _sock = attach_socket(&env, "chatty");
    let t = Instant::now();
    wait_for("the container to finish writing", || {
        inspect(&env, "chatty")["State"]["Status"] == "exited"
    });
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "the container waited for its reader"
    );
    let i = inspect(&env, "chatty");
    assert_eq!(i["State"]["ExitCode"], 0);
    let dropped = i["State"]["AttachBytesDropped"].as_u64().unwrap();
    assert!(dropped > 10_000_000, "dropped {dropped} bytes of 20 MB");
}

#[test]
fn detach_keys_detach_a_terminal_client_and_the_container_runs_on() {
    use berth_monitor_proto::frame;
    use std::io::{Read, Write};
    let env = Env::new();
    let img = image(&env);
    for (keys, seq) in [(None, vec![16u8, 17]), (Some("ctrl-a,x"), vec![1u8, b'x'])] {
        let mut args = vec!["run", "-d", "-it", "--name", "tty"];
        if let Some(k) = keys {
            args.extend(["--detach-keys", k]);
        }
        args.extend([img, "sh"]);
        env.berth(&args).ok();
        let mut s = attach_socket(&env, "tty");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut dec = frame::Decoder::default();
        let mut buf = [0u8; 4096];
        let mut out = Vec::new();
        // Reads frames until `until` says stop; true if DETACHED came.
        let mut read = |s: &mut std::os::unix::net::UnixStream,
                        out: &mut Vec<u8>,
                        until: &dyn Fn(&[u8]) -> bool| loop {
            if let Some((k, p)) = dec.next_frame().unwrap() {
                if k == frame::DETACHED {
                    return true;
                }
                out.extend(p);
                if until(out) {
                    return false;
                }
                continue;
            }
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                return false;
            }
            dec.feed(&buf[..n]);
        };
        s.write_all(&frame::encode(frame::STDIN, b"echo h''i\n"))
            .unwrap();
        let early = read(&mut s, &mut out, &|o| {
            String::from_utf8_lossy(o).contains("hi")
        });
        assert!(!early, "detached too early");
        // The first key alone is held back; the whole sequence detaches.
        s.write_all(&frame::encode(frame::STDIN, &seq[..1]))
            .unwrap();
        s.write_all(&frame::encode(frame::STDIN, &seq[1..]))
            .unwrap();
        let detached = read(&mut s, &mut out, &|_| false);
        assert!(
            detached,
            "no DETACHED frame; output: {}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(inspect(&env, "tty")["State"]["Status"], "running");
        env.berth(&["rm", "-f", "tty"]).ok();
    }
}

#[test]
fn kill_9_at_any_point_leaves_a_store_that_ps_rm_and_prune_make_clean() {
    let env = Env::new();
    let img = image(&env);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut rand = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for i in 0..24 {
        let mut c = env.cmd();
        match i % 3 {
            0 => c.args(["run", "--rm", img, "sh", "-c", "echo x"]),
            1 => c.args(["run", "-d", "--name", &format!("k{i}"), img, "sleep", "100"]),
            _ => c.args(["create", img, "true"]),
        };
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rand(60_000)));
        let _ = child.kill();
        let _ = child.wait();
        if i % 3 == 1 && rand(2) == 0 {
            // And an rm killed half-way.
            let mut rm = env.cmd();
            rm.args(["rm", "-f", &format!("k{i}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            let mut r = rm.spawn().unwrap();
            std::thread::sleep(Duration::from_micros(rand(30_000)));
            let _ = r.kill();
            let _ = r.wait();
        }
    }
    // Whatever state that left, the commands work on it and clean it up.
    let ids = env.berth(&["ps", "-aq", "--no-trunc"]).ok().stdout;
    let all_ids: Vec<String> = ids.split_whitespace().map(String::from).collect();
    for id in ids.split_whitespace() {
        let o = env.berth(&["rm", "-f", id]);
        // A monitor may remove an orphaned --rm container meanwhile.
        assert!(
            o.code == 0 || o.stderr.contains("no such container"),
            "{}",
            o.stderr
        );
    }
    env.berth(&["system", "prune", "-f"]).ok();
    assert_eq!(ps_json(&env).as_array().unwrap().len(), 0);
    let left = || -> Vec<std::path::PathBuf> {
        ["containers", "rootfs"]
            .iter()
            .flat_map(|d| std::fs::read_dir(env.run_root.path().join(d)).unwrap())
            .map(|e| e.unwrap().path())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !left().is_empty() {
        assert!(
            Instant::now() < deadline,
            "left after the monitors should have finished: {:?} (mounts: {})",
            left(),
            leaked_mounts(&env)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    env.berth(&["system", "prune", "-f"]).ok();
    assert_eq!(leaked_mounts(&env), 0);
    for d in [
        env.root.path().join("containers"),
        env.root.path().join("trash"),
        env.run_root.path().join("trash"),
        env.run_root.path().join("rootfs"),
    ] {
        let left: Vec<_> = std::fs::read_dir(&d)
            .map(|d| d.collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "{} holds {left:?}; mounts: {}; ps: {}",
            d.display(),
            mounts_under(&d),
            env.berth(&["ps", "-a"]).stdout
        );
    }
    // Nor any cgroup, whatever the runtime had made when it was killed.
    for id in &all_ids {
        assert_eq!(
            common::cgroup_dirs(id),
            Vec::<std::path::PathBuf>::new(),
            "{id}"
        );
    }
    // No container holds the image any more.
    env.berth(&["rmi", img]).ok();
}

#[test]
fn security_and_cpu_options_reach_the_container() {
    let env = Env::new();
    let img = image(&env);
    let status = |args: &[&str], field: &str| -> String {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend([img, "grep", field, "/proc/self/status"]);
        let out = env.berth(&a).ok().stdout;
        out.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    // Docker's 14 capabilities by default; none with --cap-drop ALL; one
    // more with --cap-add; all with --privileged.
    assert_eq!(status(&[], "CapEff"), "00000000a80425fb");
    assert_eq!(status(&["--cap-drop", "ALL"], "CapEff"), "0000000000000000");
    assert_eq!(
        status(&["--cap-drop", "ALL", "--cap-add", "net_admin"], "CapEff"),
        "0000000000001000"
    );
    // --privileged: every capability berth itself has (this VM lacks
    // CAP_SYS_RESOURCE in its bounding set).
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    let bound = ours
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(status(&["--privileged"], "CapEff"), bound);
    // seccomp: filtered by default, not when unconfined or privileged.
    assert_eq!(status(&[], "Seccomp:"), "2");
    assert_eq!(
        status(&["--security-opt", "seccomp=unconfined"], "Seccomp:"),
        "0"
    );
    assert_eq!(status(&["--privileged"], "Seccomp:"), "0");
    assert_eq!(status(&[], "NoNewPrivs"), "0");
    assert_eq!(
        status(&["--security-opt", "no-new-privileges"], "NoNewPrivs"),
        "1"
    );
    // A profile of our own: everything allowed but mkdir.
    let prof = env.root.path().join("profile.json");
    std::fs::write(&prof, r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#).unwrap();
    let o = env.berth(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", prof.display()),
        img,
        "mkdir",
        "/tmp/x",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("not permitted"), "{}", o.stderr);
    let o = env.berth(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=/no/such/profile.json",
        img,
        "true",
    ]);
    assert_eq!(o.code, 125);
    // CPU limits in the container's cgroup.
    let v1 = Path::new("/sys/fs/cgroup/cpu").is_dir();
    let (quota, shares, cpus) = if v1 {
        (
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
            "/sys/fs/cgroup/cpu/cpu.shares",
            "/sys/fs/cgroup/cpuset/cpuset.cpus",
        )
    } else {
        (
            "/sys/fs/cgroup/cpu.max",
            "/sys/fs/cgroup/cpu.weight",
            "/sys/fs/cgroup/cpuset.cpus",
        )
    };
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            img,
            "cat",
            quota,
            shares,
            cpus,
        ])
        .ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    if v1 {
        assert_eq!(lines, ["50000", "512", "0"]);
    } else {
        // 512 shares are weight 20 (runc's and crun's conversion).
        assert_eq!(lines, ["50000 100000", "20", "0"]);
    }
    // Labels, stop timeout and log driver show in inspect.
    env.berth(&[
        "create",
        "--name",
        "lab",
        "--label",
        "tier=web",
        "--stop-timeout",
        "3",
        "--log-driver",
        "none",
        img,
        "true",
    ])
    .ok();
    let i = inspect(&env, "lab");
    assert_eq!(i["Config"]["Labels"]["tier"], "web");
    assert_eq!(i["Config"]["StopTimeout"], 3);
    assert_eq!(i["HostConfig"]["LogConfig"]["Type"], "none");
    assert_eq!(
        env.berth(&["ps", "-a", "-q", "--filter", "label=tier=web"])
            .ok()
            .stdout
            .trim(),
        &i["Id"].as_str().unwrap()[..12]
    );
    env.berth(&["start", "-a", "lab"]).ok();
    let o = env.berth(&["logs", "lab"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("--log-driver none"), "{}", o.stderr);
}

/// Starts `berth run` (extra args, then the busybox image and a shell that
/// exits 42 on SIGTERM) and waits until the container is ready for it.
fn signalled_run(env: &Env, img: &str, extra: &[&str]) -> std::process::Child {
    use std::io::BufRead;
    let mut c = env
        .cmd()
        .arg("run")
        .args(extra)
        .args([
            img,
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(c.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    c
}

/// Waits for `c` for 20 s at most (killed and failed after that).
fn exited(mut c: std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!("berth did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_passes_signals_on_to_the_container_unless_told_not_to() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new();
    let img = image(&env);
    // As Docker's sig-proxy: SIGTERM to berth reaches the container, whose
    // exit code berth then exits with.
    let c = signalled_run(&env, img, &["--rm"]);
    // SAFETY: plain syscall on our child.
    assert_eq!(unsafe { libc::kill(c.id() as i32, libc::SIGTERM) }, 0);
    assert_eq!(exited(c).code(), Some(42));
    assert!(ps_json(&env).as_array().unwrap().is_empty());
    assert_eq!(leaked_mounts(&env), 0);

    // --sig-proxy=false: berth itself is ended; the container runs on.
    let c = signalled_run(&env, img, &["--name", "kept", "--sig-proxy=false"]);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(c.id() as i32, libc::SIGTERM) }, 0);
    assert_eq!(exited(c).signal(), Some(libc::SIGTERM));
    assert_eq!(inspect(&env, "kept")["State"]["Running"], true);
    env.berth(&["rm", "-f", "kept"]).ok();
}

/// The directory of `pid`'s cgroup that holds the freezer: the cgroup2 one
/// on v2, the freezer hierarchy's on v1; and the file that says whether
/// it is frozen, with the text it then holds.
fn freezer_of(pid: i32) -> (std::path::PathBuf, &'static str, &'static str) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, c, p) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        if v2 && c.is_empty() {
            return (
                Path::new("/sys/fs/cgroup").join(p.trim_start_matches('/')),
                "cgroup.events",
                "frozen 1",
            );
        }
        if !v2 && c.split(',').any(|x| x == "freezer") {
            return (
                Path::new("/sys/fs/cgroup/freezer").join(p.trim_start_matches('/')),
                "freezer.state",
                "FROZEN",
            );
        }
    }
    panic!("no freezer cgroup for pid {pid} in {text}");
}

/// berth has no `pause` verb yet: a container paused through its runtime
/// (`berth-runtime pause`, as an orchestrator would) is frozen in its
/// cgroup, `stats` and `top` still read it, `exec` is refused, it runs on
/// after `resume`, and `stop` ends it while paused (frozen tasks die of
/// SIGKILL only once thawed on v1).
#[test]
fn a_container_paused_by_its_runtime_reads_stats_resumes_and_stops() {
    let env = Env::new();
    let img = image(&env);
    let id = env
        .berth(&["run", "-d", "--name", "paused", img, "sleep", "1000"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let runtime = Path::new(env!("CARGO_BIN_EXE_berth")).with_file_name("berth-runtime");
    let runtime_root = env.run_root.path().join("runtime/berth-runtime");
    let rt = |verb: &str| {
        let o = std::process::Command::new(&runtime)
            .arg("--root")
            .arg(&runtime_root)
            .args([verb, &id])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "berth-runtime {verb}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let pid = inspect(&env, "paused")["State"]["Pid"].as_i64().unwrap() as i32;
    let (dir, file, frozen) = freezer_of(pid);
    let is_frozen = || {
        std::fs::read_to_string(dir.join(file))
            .unwrap()
            .lines()
            .any(|l| l.trim() == frozen)
    };
    rt("pause");
    wait_for("the freeze", is_frozen);
    assert!(rt("state").contains("\"paused\""));
    let s: serde_json::Value = serde_json::from_str(
        &env.berth(&["stats", "--no-stream", "--format", "json", "paused"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(s[0]["PIDs"], 1, "{s}");
    assert!(s[0]["MemUsage"].as_u64().unwrap() > 0, "{s}");
    let top = env.berth(&["top", "paused"]).ok().stdout;
    assert!(top.contains("sleep 1000"), "{top}");
    let o = env.berth(&["exec", "paused", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("paused"), "{}", o.stderr);
    rt("resume");
    wait_for("the thaw", || !is_frozen());
    assert_eq!(
        env.berth(&["exec", "paused", "echo", "on"]).ok().stdout,
        "on\n"
    );
    rt("pause");
    wait_for("the second freeze", is_frozen);
    let t = Instant::now();
    env.berth(&["stop", "-t", "1", "paused"]).ok();
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "stop of a paused container took {:?}",
        t.elapsed()
    );
    let st = &inspect(&env, "paused")["State"];
    assert_eq!(st["Status"], "exited", "{st}");
    assert_eq!(st["ExitCode"], 137, "{st}");
    assert!(!dir.exists(), "the cgroup {} is left", dir.display());
}

/// A container that makes cgroups of its own inside its cgroup (systemd
/// does, in a `--privileged` container with a writable /sys/fs/cgroup) and
/// moves its processes there: its end removes them with its cgroup, and
/// `rm` works, as with runc (which removes the tree children first).
#[test]
fn sub_cgroups_a_container_made_go_with_it() {
    let env = Env::new();
    let img = image(&env);
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    // In the container, /sys/fs/cgroup is its own cgroup (a cgroup
    // namespace): on v2 the cgroup2 mount, on v1 one mount per hierarchy.
    let base = if v2 {
        "/sys/fs/cgroup"
    } else {
        "/sys/fs/cgroup/pids"
    };
    let script = format!(
        "mkdir -p {base}/init.scope {base}/system.slice/deep && echo $$ > {base}/init.scope/cgroup.procs && \
         sh -c 'echo $$ > {base}/system.slice/deep/cgroup.procs; exec sleep 1000' & \
         while ! grep -q . {base}/system.slice/deep/cgroup.procs; do sleep 0.1; done; echo made"
    );
    let host_dir = |id: &str| {
        if v2 {
            Path::new("/sys/fs/cgroup/berth").join(id)
        } else {
            Path::new("/sys/fs/cgroup/pids/berth").join(id)
        }
    };
    // A container that ends by itself.
    let o = env.berth(&[
        "run",
        "--privileged",
        "--name",
        "sub1",
        img,
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "made\n");
    let id = inspect(&env, "sub1")["Id"].as_str().unwrap().to_string();
    assert!(
        !host_dir(&id).exists(),
        "the cgroup {} is left",
        host_dir(&id).display()
    );
    env.berth(&["rm", "sub1"]).ok();
    // A running one removed with rm -f.
    let id = env
        .berth(&[
            "run",
            "-d",
            "--privileged",
            img,
            "sh",
            "-c",
            &format!("{script}; sleep 1000"),
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    wait_for("the sub-cgroups", || {
        host_dir(&id).join("system.slice/deep").exists()
    });
    env.berth(&["rm", "-f", &id]).ok();
    assert!(
        !host_dir(&id).exists(),
        "the cgroup {} is left",
        host_dir(&id).display()
    );
}

/// An image layer a process killed while mounting an idmapped root left
/// attached in a container's directory (`idmapped/0`) is detached by
/// `rm`, and by `system prune` in an orphaned directory or the trash:
/// never emptied with the container's directory (its files are the
/// image's, shared by every container of it).
#[test]
fn a_layer_left_attached_in_a_containers_directory_survives_rm_and_prune() {
    let env = Env::new();
    let img = image(&env);
    let layer = std::fs::read_dir(env.layers_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir() && !p.to_string_lossy().ends_with(".init"))
        .expect("the image's layer");
    let count = |p: &Path| {
        let o = std::process::Command::new("find").arg(p).output().unwrap();
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    let files = count(&layer);
    assert!(
        files > 10 && layer.join("bin/busybox").exists(),
        "{}",
        layer.display()
    );
    let attach = |dir: &Path| {
        let at = dir.join("idmapped/0");
        std::fs::create_dir_all(&at).unwrap();
        let st = std::process::Command::new("mount")
            .arg("--bind")
            .arg(&layer)
            .arg(&at)
            .status()
            .unwrap();
        assert!(st.success(), "bind {} on {}", layer.display(), at.display());
    };
    let mounted = |dir: &Path| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&dir.to_string_lossy().into_owned())
    };
    let id = env
        .berth(&["create", img, "true"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let dir = env.root.path().join("containers").join(&id);
    attach(&dir);
    env.berth(&["rm", &id]).ok();
    assert_eq!(count(&layer), files, "rm deleted the layer's files");
    assert!(!dir.exists() && !mounted(&dir));
    // Orphaned (no record) and in the trash: `system prune`.
    let (orphan, trashed) = (
        env.root.path().join("containers").join("a".repeat(64)),
        env.root.path().join("trash").join("b".repeat(64)),
    );
    attach(&orphan);
    attach(&trashed);
    let o = env.berth(&["system", "prune", "-f"]);
    let left: Vec<_> = [&orphan, &trashed]
        .into_iter()
        .filter(|d| mounted(d))
        .collect();
    for d in &left {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(d.join("idmapped/0"))
            .status();
    }
    assert_eq!(count(&layer), files, "prune deleted the layer's files");
    assert!(left.is_empty(), "left mounted: {left:?}");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!orphan.exists() && !trashed.exists());
}

/// The local driver's options (`volume create --opt`): a tmpfs volume is
/// mounted at its first use, shared by its containers, kept across them
/// with its files, its size enforced, shown by inspect, and unmounted by
/// its removal; a bind volume shows a host directory; bad options are
/// refused naming the option.
#[test]
fn volume_options_make_tmpfs_and_bind_volumes() {
    let env = Env::new();
    let img = image(&env);
    let mounts = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let data = env.root.path().join("volumes/scratch/_data");
    let data_s = data.display().to_string();
    env.berth(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "o=size=1m,mode=1777",
        "scratch",
    ])
    .ok();
    assert!(!mounts().contains(&data_s), "mounted before its first use");
    let o = env
        .berth(&[
            "volume",
            "inspect",
            "-f",
            "{{.Options.type}} {{.Options.device}} {{.Options.o}}",
            "scratch",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "tmpfs tmpfs size=1m,mode=1777");
    // Two containers share it; a file outlives the one that wrote it.
    let a = env
        .berth(&["run", "-d", "-v", "scratch:/s", img, "sleep", "100"])
        .ok()
        .stdout;
    env.berth(&["exec", a.trim(), "sh", "-c", "echo shared > /s/f"])
        .ok();
    let o = env
        .berth(&[
            "run",
            "--rm",
            "-v",
            "scratch:/t",
            img,
            "sh",
            "-c",
            "cat /t/f; grep ' /t ' /proc/self/mountinfo",
        ])
        .ok();
    assert!(o.stdout.starts_with("shared\n"), "{}", o.stdout);
    assert!(o.stdout.contains(" tmpfs "), "{}", o.stdout);
    env.berth(&["rm", "-f", a.trim()]).ok();
    let o = env
        .berth(&["run", "--rm", "-v", "scratch:/s", img, "cat", "/s/f"])
        .ok();
    assert_eq!(o.stdout, "shared\n");
    assert_eq!(mounts().matches(&data_s).count(), 1, "one mount, shared");
    // The size is the tmpfs's.
    let o = env.berth(&[
        "run",
        "--rm",
        "-v",
        "scratch:/s",
        img,
        "sh",
        "-c",
        "dd if=/dev/zero of=/s/big bs=1k count=2048",
    ]);
    assert_ne!(o.code, 0, "2 MiB went into a 1 MiB tmpfs");
    // Asking for other options of it is a conflict; the same is not.
    let o = env.berth(&["volume", "create", "--opt", "type=tmpfs", "scratch"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("other options"), "{}", o.stderr);
    env.berth(&["volume", "rm", "scratch"]).ok();
    assert!(!mounts().contains(&data_s), "left mounted after rm");
    assert!(!data.exists());

    // A bind volume: a host directory, read-only when o says so.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("h"), "from host\n").unwrap();
    let dev = format!("device={}", host.path().display());
    env.berth(&[
        "volume",
        "create",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        &dev,
        "hostdir",
    ])
    .ok();
    let o = env
        .berth(&[
            "run",
            "--rm",
            "-v",
            "hostdir:/h",
            img,
            "sh",
            "-c",
            "cat /h/h; echo back > /h/b",
        ])
        .ok();
    assert_eq!(o.stdout, "from host\n");
    assert_eq!(
        std::fs::read_to_string(host.path().join("b")).unwrap(),
        "back\n"
    );
    env.berth(&[
        "volume",
        "create",
        "--opt",
        "type=none",
        "--opt",
        "o=bind,ro",
        "--opt",
        &dev,
        "hostro",
    ])
    .ok();
    let o = env.berth(&["run", "--rm", "-v", "hostro:/h", img, "touch", "/h/x"]);
    assert_ne!(o.code, 0, "o=ro bind was writable");
    assert!(!host.path().join("x").exists());
    env.berth(&["volume", "rm", "hostdir", "hostro"]).ok();
    assert_eq!(
        std::fs::read_to_string(host.path().join("h")).unwrap(),
        "from host\n",
        "removing a bind volume touched the host directory"
    );
    assert!(!mounts().contains(&host.path().display().to_string()));

    for (opts, says) in [
        (
            &["--opt", "type=tmpfs", "--opt", "size=1m"][..],
            "invalid option key",
        ),
        (&["--opt", "device=/srv"][..], "missing type"),
        (
            &["--opt", "type=none", "--opt", "device=/srv"][..],
            "o=bind",
        ),
        (
            &[
                "--opt",
                "type=none",
                "--opt",
                "o=bind",
                "--opt",
                "device=srv",
            ][..],
            "absolute",
        ),
        (&["--opt", "type"][..], "KEY=VALUE"),
        (&["--driver", "nfs"][..], "local driver only"),
    ] {
        let mut args = vec!["volume", "create"];
        args.extend_from_slice(opts);
        args.push("bad");
        let o = env.berth(&args);
        assert_ne!(o.code, 0, "{opts:?}");
        assert!(o.stderr.contains(says), "{opts:?}: {}", o.stderr);
    }
    assert_ne!(env.berth(&["volume", "inspect", "bad"]).code, 0);
}

/// `--mount volume-subpath=`: only that directory (made when missing) or
/// file of the volume is mounted, it is never filled from the image, and
/// a symlink another container plants at the subpath resolves inside the
/// volume, never to the host (CVE-2017-1002101's class). The pinned
/// subpaths are detached with the container.
#[test]
fn volume_subpaths_stay_inside_their_volume() {
    let env = Env::new();
    let img = image(&env);
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("host-secret"), "host\n").unwrap();
    let secret_s = secret.path().display().to_string();
    env.berth(&["volume", "create", "sp"]).ok();
    env.berth(&[
        "run",
        "--rm",
        "-v",
        "sp:/v",
        img,
        "sh",
        "-c",
        "echo one > /v/file; mkdir -p /v/d/e; echo deep > /v/d/e/x",
    ])
    .ok();
    let m = |sub: &str, dst: &str| format!("type=volume,src=sp,dst={dst},volume-subpath={sub}");
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--mount",
            &m("d/e", "/etc/deep"),
            img,
            "ls",
            "/etc/deep",
        ])
        .ok();
    assert_eq!(o.stdout, "x\n", "an image directory was copied up into it");
    let o = env
        .berth(&["run", "--rm", "--mount", &m("file", "/f"), img, "cat", "/f"])
        .ok();
    assert_eq!(o.stdout, "one\n");
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--mount",
            &m("new/dir", "/n"),
            img,
            "sh",
            "-c",
            "touch /n/made",
        ])
        .ok();
    assert_eq!(o.code, 0);
    assert!(env
        .root
        .path()
        .join("volumes/sp/_data/new/dir/made")
        .exists());
    // A container plants symlinks at the names others mount.
    let plant = format!(
        "ln -s {secret_s} /v/abs; ln -s ../../../../../../../../{secret_s} /v/rel; ln -s / /v/root"
    );
    env.berth(&["run", "--rm", "-v", "sp:/v", img, "sh", "-c", &plant])
        .ok();
    for sub in ["abs", "rel", "root"] {
        let o = env.berth(&[
            "run",
            "--rm",
            "--mount",
            &m(sub, "/s"),
            img,
            "ls",
            "-a",
            "/s",
        ]);
        assert_eq!(o.code, 0, "{sub}: {}", o.stderr);
        assert!(
            !o.stdout.contains("host-secret"),
            "{sub} led to the host: {}",
            o.stdout
        );
        if sub == "root" {
            // "/" is the volume's own root.
            assert!(o.stdout.contains("file"), "{}", o.stdout);
        }
    }
    // A file subpath that another container makes a directory: the pin
    // follows (a file point was left behind, and the pin failed with
    // ENOTDIR); the container's own file mount point at /f is then the
    // runtime's refusal, as runc's.
    env.berth(&[
        "create",
        "--name",
        "swap",
        "--mount",
        &m("file", "/f"),
        img,
        "ls",
        "/f",
    ])
    .ok();
    let o = env.berth(&["start", "-a", "swap"]).ok();
    assert_eq!(o.stdout, "/f\n");
    env.berth(&[
        "run",
        "--rm",
        "-v",
        "sp:/v",
        img,
        "sh",
        "-c",
        "rm /v/file; mkdir /v/file; touch /v/file/in",
    ])
    .ok();
    let o = env.berth(&["start", "-a", "swap"]);
    assert!(!o.stderr.contains("pin subpath"), "{}", o.stderr);
    assert!(o.stderr.contains("(/f)"), "{}", o.stderr);
    // Mounted elsewhere, the directory is what it pins.
    let o = env
        .berth(&["run", "--rm", "--mount", &m("file", "/g"), img, "ls", "/g"])
        .ok();
    assert_eq!(o.stdout, "in\n");
    env.berth(&["rm", "swap"]).ok();
    // A running container's pinned subpath goes with it.
    let id = env
        .berth(&["run", "-d", "--mount", &m("d", "/d"), img, "sleep", "100"])
        .ok()
        .stdout;
    let pins = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(id.trim()) && l.contains("subpaths"))
            .count()
    };
    assert_eq!(pins(), 1);
    env.berth(&["rm", "-f", id.trim()]).ok();
    assert_eq!(pins(), 0, "a pinned subpath outlived its container");
    for (spec, says) in [
        ("type=volume,src=sp,dst=/s,volume-subpath=../x", "'..'"),
        ("type=volume,src=sp,dst=/s,volume-subpath=/abs", "relative"),
        (
            "type=bind,src=/tmp,dst=/s,volume-subpath=x",
            "type=volume only",
        ),
        ("type=volume,dst=/s,volume-subpath=x", "named volume"),
    ] {
        let o = env.berth(&["run", "--rm", "--mount", spec, img, "true"]);
        assert_ne!(o.code, 0, "{spec}");
        assert!(o.stderr.contains(says), "{spec}: {}", o.stderr);
    }
}
