//! Pods end to end: real containers sharing namespaces through an infra
//! container, a pod cgroup with limits, and (in network namespaces the
//! tests make, as tests/network.rs does) the pod's IP and published ports.
//! Also plain containers joining another's pid, ipc and uts namespaces.

mod common;

use common::world::{World, HOST4};
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const IMAGE: &str = "pods:1";

/// busybox, and util-linux's ipcmk with the libraries it loads (busybox
/// has no System V IPC applets).
fn image_tar() -> Vec<u8> {
    let mut t = busybox_rootfs(&[
        "sh", "sleep", "nc", "hostname", "ps", "cat", "echo", "readlink", "mkdir", "httpd", "grep",
        "true", "ip", "wget", "touch", "ls", "umount", "rmdir", "ln", "stat", "mount",
    ]);
    t.dir("usr/", 0o755).dir("usr/bin/", 0o755);
    t.dir("lib/", 0o755).dir("lib/x86_64-linux-gnu/", 0o755);
    t.dir("lib64/", 0o755);
    for (host, inside) in [
        ("/usr/bin/ipcmk", "usr/bin/ipcmk"),
        (
            "/lib/x86_64-linux-gnu/libc.so.6",
            "lib/x86_64-linux-gnu/libc.so.6",
        ),
        ("/lib64/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2"),
    ] {
        let data = std::fs::read(host)
            .unwrap_or_else(|e| panic!("{host}: {e} (util-linux and libc6 are needed)"));
        t.file(inside, &data, 0o755);
    }
    t.end()
}

fn env() -> Env {
    let e = Env::new();
    import_image(&e, image_tar(), IMAGE);
    e
}

/// Removes every pod and container of `e` (a failing test leaves nothing
/// running).
struct Cleanup<'a>(&'a Env);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for id in self
            .0
            .berth(&["pod", "ps", "-q", "--no-trunc"])
            .stdout
            .split_whitespace()
        {
            let _ = self.0.berth(&["pod", "rm", "-f", id]);
        }
        for id in self
            .0
            .berth(&["ps", "-aq", "--no-trunc"])
            .stdout
            .split_whitespace()
        {
            let _ = self.0.berth(&["rm", "-f", id]);
        }
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn inspect(e: &Env, what: &[&str], format: &str) -> String {
    let mut args = vec![];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-f", format]);
    e.berth(&args).ok().stdout.trim().to_string()
}

/// The pod's cgroup directories on this host (v1: one per hierarchy).
fn pod_cgroups(id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    let leaf = format!("berth/pod-{id}");
    if base.join("cgroup.controllers").exists() {
        out.push(base.join(&leaf));
    } else {
        for d in std::fs::read_dir(base).unwrap().flatten() {
            out.push(d.path().join(&leaf));
        }
    }
    out.into_iter().filter(|p| p.exists()).collect()
}

#[test]
fn members_share_localhost_ipc_and_the_host_name() {
    let e = env();
    let _c = Cleanup(&e);
    let id = e
        .berth(&["pod", "create", "--name", "pp", "--hostname", "podhost"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    // A server on localhost, and a System V shared memory segment.
    e.berth(&[
        "run",
        "-d",
        "--name",
        "server",
        "--pod",
        "pp",
        IMAGE,
        "sh",
        "-c",
        "ipcmk -M 4096 > /tmp/seg && nc -l -p 5555 -e echo hello-from-server; sleep 600",
    ])
    .ok();
    wait_for("the segment", || {
        e.berth(&["exec", "server", "cat", "/tmp/seg"])
            .stdout
            .contains("Shared memory id")
    });
    let seg = e.berth(&["exec", "server", "cat", "/tmp/seg"]).ok().stdout;
    let shmid = seg.split(':').nth(1).unwrap().trim().to_string();
    let o = e
        .berth(&[
            "run",
            "--rm",
            "--pod",
            "pp",
            IMAGE,
            "sh",
            "-c",
            "nc 127.0.0.1 5555 </dev/null; hostname; cat /proc/sysvipc/shm",
        ])
        .ok();
    assert!(o.stdout.contains("hello-from-server"), "{}", o.stdout);
    assert!(o.stdout.contains("\npodhost\n"), "{}", o.stdout);
    let seen = |out: &str| {
        out.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some(shmid.as_str()))
    };
    assert!(
        seen(&o.stdout),
        "segment {shmid} not in the member's /proc/sysvipc/shm: {}",
        o.stdout
    );
    // A container outside the pod sees neither.
    let out = e
        .berth(&[
            "run",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "hostname; cat /proc/sysvipc/shm",
        ])
        .ok();
    assert!(!out.stdout.contains("podhost"), "{}", out.stdout);
    assert!(!seen(&out.stdout), "{}", out.stdout);
    // Records carry the pod; ps filters by it; inspect shows it.
    assert_eq!(inspect(&e, &["inspect", "server"], "{{.Pod}}"), id);
    let ps = e
        .berth(&["ps", "-a", "--filter", "pod=pp", "--format", "{{.Names}}"])
        .ok();
    let mut names: Vec<&str> = ps.stdout.lines().collect();
    names.sort();
    assert_eq!(
        names,
        vec![format!("{}-infra", &id[..12]).as_str(), "server"]
    );
    assert_eq!(
        inspect(
            &e,
            &["pod", "inspect", "pp"],
            "{{.State}} {{.NumContainers}} {{.Hostname}}"
        ),
        "Running 2 podhost"
    );
    let ps = e.berth(&["ps", "--pod"]).ok().stdout;
    let head = ps.lines().next().unwrap();
    assert!(
        head.contains(" POD ID ") && head.ends_with(" PODNAME"),
        "{ps}"
    );
    assert!(
        ps.lines()
            .any(|l| l.contains(" server ") && l.ends_with(&format!("{}   pp", &id[..12]))),
        "{ps}"
    );
    // pod top and logs: every member, by name.
    let top = e.berth(&["pod", "top", "pp"]).ok().stdout;
    assert!(
        top.lines()
            .any(|l| l.starts_with("server ") && l.contains("sleep") || l.contains("nc")),
        "{top}"
    );
    let logs = e.berth(&["pod", "logs", "pp"]).ok().stdout;
    assert!(logs.lines().all(|l| l.starts_with("server ")), "{logs}");
}

/// The namespace inode of `kind` of process `pid`.
fn ns_of(pid: &str, kind: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{}/ns/{kind}", pid.trim()))
        .unwrap()
        .ino()
}

/// The pod's namespaces bound under the run root's `podns` (and mounted).
fn podns_left(e: &Env) -> (Vec<PathBuf>, usize) {
    let root = e.run_root.path().join("podns");
    let files: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.flatten()
                .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
                .map(|f| f.path())
                .collect()
        })
        .unwrap_or_default();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&*root.to_string_lossy()))
        .count();
    (files, mounts)
}

/// The infra binds the namespaces its pod shares on files when it starts;
/// it and the members join those (the first member is set up while the
/// infra still starts). They go when the infra ends, and what a kill -9
/// of a start left goes with the next pod command.
#[test]
fn the_pods_namespaces_are_bound_joined_and_go_with_the_infra() {
    let e = env();
    let _c = Cleanup(&e);
    let id = e
        .berth(&["pod", "create", "--name", "nsp", "--hostname", "nshost"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let infra = format!("{}-infra", &id[..12]);
    e.berth(&[
        "run", "-d", "--name", "m1", "--pod", "nsp", IMAGE, "sleep", "600",
    ])
    .ok();
    let infra_id = inspect(&e, &["inspect", &infra], "{{.Id}}");
    let dir = e.run_root.path().join("podns").join(&infra_id);
    let ipid = inspect(&e, &["inspect", &infra], "{{.State.Pid}}");
    let mpid = inspect(&e, &["inspect", "m1"], "{{.State.Pid}}");
    for kind in ["net", "ipc", "uts"] {
        use std::os::unix::fs::MetadataExt;
        let bound = std::fs::metadata(dir.join(kind)).unwrap().ino();
        assert_eq!(ns_of(&ipid, kind), bound, "{kind}: the infra's");
        assert_eq!(ns_of(&mpid, kind), bound, "{kind}: the member's");
        assert_ne!(ns_of("self", kind), bound, "{kind}: the host's");
    }
    assert_eq!(
        e.berth(&["exec", "m1", "hostname"]).ok().stdout.trim(),
        "nshost"
    );
    // Stopped, the pod's namespaces go; started again, they are new (a
    // shared memory segment of before is not in them).
    let shm = || {
        e.berth(&["exec", "m1", "cat", "/proc/sysvipc/shm"])
            .ok()
            .stdout
    };
    e.berth(&["exec", "m1", "ipcmk", "-M", "4096"]).ok();
    assert_eq!(shm().lines().count(), 2, "{}", shm());
    e.berth(&["pod", "stop", "-t", "0", "nsp"]).ok();
    assert_eq!(podns_left(&e), (Vec::new(), 0));
    e.berth(&["pod", "start", "nsp"]).ok();
    let mpid = inspect(&e, &["inspect", "m1"], "{{.State.Pid}}");
    let ipid = inspect(&e, &["inspect", &infra], "{{.State.Pid}}");
    assert_eq!(shm().lines().count(), 1, "{}", shm());
    assert_eq!(ns_of(&mpid, "ipc"), ns_of(&ipid, "ipc"));
    assert_eq!(
        e.berth(&["exec", "m1", "hostname"]).ok().stdout.trim(),
        "nshost"
    );
    e.berth(&["pod", "rm", "-f", "nsp"]).ok();
    assert_eq!(podns_left(&e), (Vec::new(), 0));
    // kill -9 of first member starts at every point: the next pod
    // commands leave nothing bound.
    for i in 0..10u64 {
        let p = format!("k{i}");
        e.berth(&["pod", "create", "--name", &p]).ok();
        let mut c = e.cmd();
        c.args(["run", "-d", "--pod", &p, IMAGE, "sleep", "600"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(2 * i));
        let _ = child.kill();
        let _ = child.wait();
    }
    for i in 0..10u64 {
        e.berth(&["pod", "rm", "-f", &format!("k{i}")]).ok();
    }
    e.berth(&["pod", "ps"]).ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while podns_left(&e) != (Vec::new(), 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "left: {:?}",
            podns_left(&e)
        );
        std::thread::sleep(Duration::from_millis(50));
        e.berth(&["pod", "ps"]).ok();
    }
}

/// A pod's members share its /dev/shm (POSIX shared memory, sized by
/// `pod create --shm-size`) and its /etc/hostname, /etc/hosts and
/// /etc/resolv.conf (the infra's, as the kubelet shares a pod's): what
/// one writes, the others see. Stopped and started, the pod has a new
/// /dev/shm; removed, it leaves no mount.
#[test]
fn a_pods_members_share_its_dev_shm_and_its_etc_files() {
    let e = env();
    let _c = Cleanup(&e);
    let o = e.berth(&["pod", "create", "--name", "bad", "--shm-size", "0"]);
    assert!(
        o.stderr.contains("--shm-size: must be more than 0"),
        "{}",
        o.stderr
    );
    let o = e.berth(&[
        "pod",
        "create",
        "--name",
        "bad",
        "--share",
        "net",
        "--shm-size",
        "1m",
    ]);
    assert!(o.stderr.contains("--share ipc"), "{}", o.stderr);
    let id = e
        .berth(&["pod", "create", "--name", "shp", "--shm-size", "8m"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let infra = format!("{}-infra", &id[..12]);
    for m in ["m1", "m2"] {
        e.berth(&[
            "run", "-d", "--name", m, "--pod", "shp", IMAGE, "sleep", "600",
        ])
        .ok();
    }
    let o = e.berth(&[
        "run",
        "--rm",
        "--pod",
        "shp",
        "--shm-size",
        "1m",
        IMAGE,
        "true",
    ]);
    assert!(o.stderr.contains("pod create --shm-size"), "{}", o.stderr);
    e.berth(&["exec", "m1", "sh", "-c", "echo from-m1 > /dev/shm/x"])
        .ok();
    assert_eq!(
        e.berth(&["exec", "m2", "cat", "/dev/shm/x"]).ok().stdout,
        "from-m1\n"
    );
    // 8 MiB in 4 KiB blocks.
    assert_eq!(
        e.berth(&["exec", "m2", "stat", "-f", "-c", "%b %S", "/dev/shm"])
            .ok()
            .stdout,
        "2048 4096\n"
    );
    // The infra's files, bound in every member.
    let files = |what: &str| {
        ["{{.HostsPath}}", "{{.ResolvConfPath}}", "{{.HostnamePath}}"]
            .map(|f| inspect(&e, &["inspect", what], f))
    };
    let theirs = files(&infra);
    assert_eq!(files("m1"), theirs);
    assert_eq!(files("m2"), theirs);
    e.berth(&[
        "exec",
        "m1",
        "sh",
        "-c",
        "echo '10.9.9.9 added' >> /etc/hosts",
    ])
    .ok();
    assert!(
        e.berth(&["exec", "m2", "cat", "/etc/hosts"])
            .ok()
            .stdout
            .contains("10.9.9.9 added"),
        "m2 does not see m1's /etc/hosts line"
    );
    assert_eq!(
        e.berth(&["exec", "m2", "cat", "/etc/hostname"]).ok().stdout,
        "shp\n"
    );
    // A new /dev/shm after a stop and a start.
    e.berth(&["pod", "stop", "-t", "0", "shp"]).ok();
    assert_eq!(podns_left(&e), (Vec::new(), 0));
    e.berth(&["pod", "start", "shp"]).ok();
    let o = e.berth(&["exec", "m2", "ls", "/dev/shm"]).ok();
    assert_eq!(o.stdout, "", "the pod's old /dev/shm came back");
    e.berth(&["exec", "m2", "sh", "-c", "echo again > /dev/shm/y"])
        .ok();
    assert_eq!(
        e.berth(&["exec", "m1", "cat", "/dev/shm/y"]).ok().stdout,
        "again\n"
    );
    e.berth(&["pod", "rm", "-f", "shp"]).ok();
    assert_eq!(podns_left(&e), (Vec::new(), 0));
}

/// A pod whose processes cannot start (its cgroup allows one task, the
/// infra and the member start side by side): `run` fails in one line,
/// with the pod settled when it returns (the member does not run; the
/// infra runs or was cleaned up), and `pod rm` leaves no bound namespace
/// or cgroup.
#[test]
fn a_pod_whose_processes_cannot_start_fails_cleanly() {
    let e = env();
    let _c = Cleanup(&e);
    for i in 0..3 {
        let p = format!("lim{i}");
        let id = e
            .berth(&["pod", "create", "--name", &p, "--pids-limit", "1"])
            .ok()
            .stdout
            .trim()
            .to_string();
        let o = e.berth(&["run", "-d", "--pod", &p, IMAGE, "sleep", "600"]);
        assert_ne!(o.code, 0, "{}", o.stdout);
        assert_eq!(o.stderr.trim().lines().count(), 1, "{}", o.stderr);
        assert!(o.stderr.contains("start container"), "{}", o.stderr);
        let running = e
            .berth(&[
                "ps",
                "--filter",
                &format!("pod={p}"),
                "--filter",
                "status=running",
                "--format",
                "{{.Names}}",
            ])
            .ok()
            .stdout;
        assert!(
            running.lines().all(|n| n.ends_with("-infra")),
            "only the infra of pod {p} may run: {running}"
        );
        e.berth(&["pod", "rm", "-f", &p]).ok();
        assert_eq!(podns_left(&e), (Vec::new(), 0));
        assert!(pod_cgroups(&id).is_empty(), "{:?}", pod_cgroups(&id));
    }
}

#[test]
fn a_pod_sharing_pid_sees_each_others_processes() {
    let e = env();
    let _c = Cleanup(&e);
    e.berth(&["pod", "create", "--name", "pidpod", "--share", "+pid"])
        .ok();
    e.berth(&["run", "-d", "--pod", "pidpod", IMAGE, "sleep", "4242"])
        .ok();
    let ps = e
        .berth(&["run", "--rm", "--pod", "pidpod", IMAGE, "ps"])
        .ok()
        .stdout;
    assert!(ps.contains("sleep 4242"), "{ps}");
    // pid 1 is the infra's pause process.
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().next() == Some("1") && l.contains("--pause")),
        "{ps}"
    );
    // The infra's root is a read-only overlay without an upper layer: a
    // member that sees the pause process cannot write through its root,
    // and nothing was made for it in the store.
    let w = e
        .berth(&[
            "run",
            "--rm",
            "--pod",
            "pidpod",
            IMAGE,
            "sh",
            "-c",
            "echo x > /proc/1/root/tmp/f; echo rc=$?; ls /proc/1/root/sbin",
        ])
        .ok()
        .stdout;
    assert!(w.contains("rc=1") && w.contains("berth-init"), "{w}");
    let infra = inspect(&e, &["pod", "inspect", "pidpod"], "{{.InfraContainerID}}");
    let store = e.root.path().join("containers").join(&infra);
    assert!(store.is_dir(), "{}", store.display());
    assert!(!store.join("upper").exists() && !store.join("work").exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.contains(&format!("/rootfs/{infra} ")))
        .expect("the infra's root is mounted");
    assert!(
        line.contains(" ro,") && !line.contains("upperdir"),
        "{line}"
    );
    // Without pid shared, a member sees only its own.
    e.berth(&["pod", "create", "--name", "nopid"]).ok();
    e.berth(&["run", "-d", "--pod", "nopid", IMAGE, "sleep", "4343"])
        .ok();
    let ps = e
        .berth(&["run", "--rm", "--pod", "nopid", IMAGE, "ps"])
        .ok()
        .stdout;
    assert!(!ps.contains("sleep 4343"), "{ps}");
}

#[test]
fn pod_limits_are_a_cgroup_of_its_own_removed_with_the_pod() {
    let e = env();
    let _c = Cleanup(&e);
    let id = e
        .berth(&[
            "pod",
            "create",
            "--name",
            "limited",
            "--cpus",
            "1.5",
            "--memory",
            "64m",
            "--pids-limit",
            "77",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let dirs = pod_cgroups(&id);
    assert!(!dirs.is_empty(), "no cgroup made for pod {id}");
    let read = |file: &str| -> String {
        for d in &dirs {
            if let Ok(t) = std::fs::read_to_string(d.join(file)) {
                return t.trim().to_string();
            }
        }
        panic!("{file} not found under {dirs:?}")
    };
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(read("cpu.max"), "150000 100000");
        assert_eq!(read("memory.max"), "67108864");
    } else {
        assert_eq!(read("cpu.cfs_quota_us"), "150000");
        assert_eq!(read("memory.limit_in_bytes"), "67108864");
    }
    assert_eq!(read("pids.max"), "77");
    // A member's cgroup is under the pod's.
    e.berth(&[
        "run", "-d", "--name", "inlimits", "--pod", "limited", IMAGE, "sleep", "600",
    ])
    .ok();
    let pid = inspect(&e, &["inspect", "inlimits"], "{{.State.Pid}}");
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.contains(&format!("/berth/pod-{id}/")), "{cg}");
    // rm without -f is refused while a member runs; with -f nothing stays.
    let o = e.berth(&["pod", "rm", "limited"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("running containers (inlimits)"),
        "{}",
        o.stderr
    );
    e.berth(&["pod", "rm", "-f", "limited"]).ok();
    assert_eq!(e.berth(&["ps", "-aq"]).ok().stdout, "");
    assert_eq!(e.berth(&["pod", "ps", "-q"]).ok().stdout, "");
    assert!(pod_cgroups(&id).is_empty(), "{:?}", pod_cgroups(&id));
    let o = e.berth(&["pod", "inspect", "limited"]);
    assert!(o.stderr.contains("no such pod: limited"), "{}", o.stderr);
}

#[test]
fn pod_verbs_and_what_they_refuse() {
    let e = env();
    let _c = Cleanup(&e);
    e.berth(&["pod", "create", "--name", "verbs"]).ok();
    // A member gets the pod's network: its own is refused, in podman's words.
    let o = e.berth(&["run", "--pod", "verbs", "-p", "8080:80", IMAGE, "true"]);
    assert_eq!(o.code, 125, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("published or exposed ports must be defined when the pod is created"),
        "{}",
        o.stderr
    );
    let o = e.berth(&[
        "run",
        "--pod",
        "verbs",
        "--network",
        "bridge",
        IMAGE,
        "true",
    ]);
    assert!(
        o.stderr
            .contains("networks must be defined when the pod is created"),
        "{}",
        o.stderr
    );
    let o = e.berth(&["run", "--pod", "nosuchpod", IMAGE, "true"]);
    assert!(o.stderr.contains("no such pod: nosuchpod"), "{}", o.stderr);
    let o = e.berth(&["pod", "create", "--name", "verbs"]);
    assert!(
        o.stderr.contains("already in use by another pod"),
        "{}",
        o.stderr
    );
    let o = e.berth(&["pod", "create", "--infra=false", "--share", "net"]);
    assert!(o.stderr.contains("cannot share namespaces"), "{}", o.stderr);
    // --pod-id-file, written by pod create and read by run.
    let dir = tempfile::tempdir().unwrap();
    let idf = dir.path().join("pod.id");
    let idf = idf.to_str().unwrap();
    e.berth(&["pod", "create", "--name", "byfile", "--pod-id-file", idf])
        .ok();
    e.berth(&[
        "create",
        "--name",
        "mf",
        "--pod-id-file",
        idf,
        IMAGE,
        "true",
    ])
    .ok();
    assert_eq!(
        inspect(&e, &["pod", "inspect", "byfile"], "{{.NumContainers}}"),
        "2"
    );
    e.berth(&["pod", "rm", "byfile"]).ok();
    // `--pod new:NAME` makes the pod.
    e.berth(&[
        "create",
        "--name",
        "m1",
        "--pod",
        "new:fresh",
        IMAGE,
        "sleep",
        "600",
    ])
    .ok();
    assert_eq!(
        inspect(
            &e,
            &["pod", "inspect", "fresh"],
            "{{.State}} {{.NumContainers}}"
        ),
        "Created 2"
    );

    e.berth(&[
        "create", "--name", "m2", "--pod", "verbs", IMAGE, "sleep", "600",
    ])
    .ok();
    let infra = inspect(&e, &["pod", "inspect", "verbs"], "{{.InfraContainerID}}");
    // Starting a member starts the infra first.
    e.berth(&["start", "m2"]).ok();
    assert_eq!(
        inspect(&e, &["inspect", &infra], "{{.State.Status}}"),
        "running"
    );
    // The infra goes with its pod only.
    let o = e.berth(&["rm", "-f", &infra]);
    assert!(
        o.stderr.contains("infra container of pod verbs"),
        "{}",
        o.stderr
    );
    let status = |p: &str| inspect(&e, &["pod", "inspect", p], "{{.State}}");
    assert_eq!(status("verbs"), "Running");
    e.berth(&["pod", "pause", "verbs"]).ok();
    assert_eq!(status("verbs"), "Paused");
    e.berth(&["pod", "unpause", "verbs"]).ok();
    assert_eq!(status("verbs"), "Running");
    e.berth(&["pod", "stop", "-t", "1", "verbs"]).ok();
    assert_eq!(status("verbs"), "Exited");
    assert_eq!(
        inspect(&e, &["inspect", &infra], "{{.State.Status}}"),
        "exited"
    );
    e.berth(&["pod", "start", "verbs"]).ok();
    assert_eq!(status("verbs"), "Running");
    let st = e
        .berth(&["pod", "stats", "--no-stream", "verbs"])
        .ok()
        .stdout;
    assert!(st.lines().any(|l| l.contains(" m2 ")), "{st}");
    e.berth(&["pod", "restart", "-t", "1", "verbs"]).ok();
    assert_eq!(status("verbs"), "Running");
    e.berth(&["pod", "kill", "verbs"]).ok();
    wait_for("the pod's end", || status("verbs") == "Exited");
    // ps: table, json, template, filters.
    let t = e.berth(&["pod", "ps", "--ctr-names"]).ok().stdout;
    assert!(t.starts_with("POD ID"), "{t}");
    assert!(t.contains("m2"), "{t}");
    let j: serde_json::Value =
        serde_json::from_str(&e.berth(&["pod", "ps", "--format", "json"]).ok().stdout).unwrap();
    assert_eq!(j.as_array().unwrap().len(), 2, "{j}");
    let n = e
        .berth(&[
            "pod",
            "ps",
            "--filter",
            "name=fre",
            "--format",
            "{{.Name}} {{.Status}}",
        ])
        .ok();
    assert_eq!(n.stdout, "fresh Created\n");
    // prune takes the pods with nothing running.
    let pruned = e.berth(&["pod", "prune", "-f"]).ok().stdout;
    assert_eq!(pruned.lines().count(), 2, "{pruned}");
    assert_eq!(e.berth(&["ps", "-aq"]).ok().stdout, "");
}

#[test]
fn plain_containers_join_another_containers_pid_ipc_uts_and_network() {
    let e = env();
    let _c = Cleanup(&e);
    e.berth(&[
        "run",
        "-d",
        "--name",
        "owner",
        "--hostname",
        "ownerhost",
        IMAGE,
        "sh",
        "-c",
        "nc -l -p 7777 -e echo owner-answers; sleep 600",
    ])
    .ok();
    let pid = inspect(&e, &["inspect", "owner"], "{{.State.Pid}}");
    let ns = |kind: &str| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
    // POSIX shared memory goes with the IPC namespace: the owner's
    // /dev/shm is the joiner's (Docker's and Podman's --ipc container:).
    e.berth(&["exec", "owner", "sh", "-c", "echo owner-shm > /dev/shm/o"])
        .ok();
    let o = e
        .berth(&[
            "run",
            "--rm",
            "--pid",
            "container:owner",
            "--ipc",
            "container:owner",
            "--uts",
            "container:owner",
            "--network",
            "container:owner",
            IMAGE,
            "sh",
            "-c",
            "hostname; readlink /proc/self/ns/ipc; ps; nc 127.0.0.1 7777 </dev/null; cat /dev/shm/o; echo joiner-shm > /dev/shm/j",
        ])
        .ok();
    assert!(o.stdout.contains("owner-shm"), "{}", o.stdout);
    assert_eq!(
        e.berth(&["exec", "owner", "cat", "/dev/shm/j"]).ok().stdout,
        "joiner-shm\n"
    );
    // The joiner's hold on the owner's /dev/shm went with its run.
    let held = e.run_root.path().join("shm");
    assert_eq!(
        std::fs::read_dir(&held).map(|d| d.count()).unwrap_or(0),
        0,
        "{held:?}"
    );
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&*held.to_string_lossy()),
        "a mount is left on {held:?}"
    );
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "ownerhost", "{}", o.stdout);
    assert_eq!(lines[1], ns("ipc").to_str().unwrap(), "{}", o.stdout);
    assert!(
        o.stdout.contains("sleep 600") || o.stdout.contains("nc -l"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("owner-answers"), "{}", o.stdout);
    // The owner's name is unchanged by the joiner.
    assert_eq!(
        e.berth(&["exec", "owner", "hostname"]).ok().stdout,
        "ownerhost\n"
    );
    // Joining a stopped container is refused, naming it.
    e.berth(&["create", "--name", "stopped", IMAGE, "true"])
        .ok();
    let o = e.berth(&["run", "--rm", "--pid", "container:stopped", IMAGE, "true"]);
    assert!(
        o.stderr.contains("container stopped is not running"),
        "{}",
        o.stderr
    );
    let o = e.berth(&[
        "run",
        "--rm",
        "--uts",
        "container:owner",
        "--hostname",
        "x",
        IMAGE,
        "true",
    ]);
    assert!(o.stderr.contains("cannot be set with"), "{}", o.stderr);
    // A container that made its /dev/shm a link (to its /etc, here) is
    // refused as a donor: the link is never followed on the host's side.
    e.berth(&[
        "run",
        "-d",
        "--name",
        "evil",
        "--privileged",
        IMAGE,
        "sleep",
        "600",
    ])
    .ok();
    e.berth(&[
        "exec",
        "evil",
        "sh",
        "-c",
        "umount /dev/shm && rmdir /dev/shm && ln -s /etc /dev/shm",
    ])
    .ok();
    let o = e.berth(&["run", "--rm", "--ipc", "container:evil", IMAGE, "true"]);
    assert_ne!(o.code, 0, "{}", o.stdout);
    assert!(
        o.stderr
            .contains("--ipc container:evil: share its /dev/shm"),
        "{}",
        o.stderr
    );
    // Nor is one whose /dev/shm became a bind of something else (its
    // /etc, here: a privileged container could bind a host disk).
    e.berth(&[
        "run",
        "-d",
        "--name",
        "evil2",
        "--privileged",
        IMAGE,
        "sleep",
        "600",
    ])
    .ok();
    e.berth(&[
        "exec",
        "evil2",
        "sh",
        "-c",
        "umount /dev/shm && mount --bind /etc /dev/shm",
    ])
    .ok();
    let o = e.berth(&["run", "--rm", "--ipc", "container:evil2", IMAGE, "true"]);
    assert_ne!(o.code, 0, "{}", o.stdout);
    assert!(o.stderr.contains("is not a tmpfs"), "{}", o.stderr);
    let o = e.berth(&["run", "--rm", "--ipc", "container:nosuch", IMAGE, "true"]);
    assert_eq!(o.code, 125, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("--ipc: container:nosuch: no such container"),
        "{}",
        o.stderr
    );
}

#[test]
fn a_kill_9_during_pod_create_or_rm_is_cleaned_by_the_next_pod_command() {
    let e = env();
    let _c = Cleanup(&e);
    // This test's pods' cgroups go under a parent of its own, so that
    // what is left there is what it made.
    let parent = format!("/berth-podkill-{}", std::process::id());
    // The infra image is made once, first.
    e.berth(&[
        "pod",
        "create",
        "--name",
        "keeper",
        "--cgroup-parent",
        &parent,
    ])
    .ok();
    e.berth(&["run", "-d", "--pod", "keeper", IMAGE, "sleep", "600"])
        .ok();
    for i in 0..12u64 {
        let mut c = e.cmd();
        c.args([
            "pod",
            "create",
            "--name",
            &format!("k{i}"),
            "--memory",
            "64m",
        ])
        .args(["--cgroup-parent", &parent])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(4 * i));
        let _ = child.kill();
        let _ = child.wait();
    }
    for i in 0..12u64 {
        // Those that were made, removed with a kill -9 on the way.
        if e.berth(&["pod", "inspect", &format!("k{i}")]).code == 0 {
            let mut c = e.cmd();
            c.args(["pod", "rm", "-f", &format!("k{i}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            let mut child = c.spawn().unwrap();
            std::thread::sleep(Duration::from_millis(3 * i));
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    // The next pod command reconciles: every pod left is whole, and
    // nothing of another remains.
    let pods = e
        .berth(&[
            "pod",
            "ps",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Name}} {{.InfraID}}",
        ])
        .ok();
    let mut ids = Vec::new();
    for l in pods.stdout.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 3, "{l}");
        assert!(!f[2].is_empty(), "pod {} has no infra: {l}", f[1]);
        ids.push(f[0].to_string());
    }
    assert!(pods.stdout.contains(" keeper "), "{}", pods.stdout);
    let containers = e.berth(&["ps", "-a", "--format", "{{.Names}}"]).ok().stdout;
    for c in containers.lines() {
        if let Some(short) = c.strip_suffix("-infra") {
            assert!(
                ids.iter().any(|id| id.starts_with(short)),
                "infra {c} of no pod: {}",
                pods.stdout
            );
        }
    }
    let cgroups = || -> Vec<String> {
        let mut out = Vec::new();
        for d in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let Ok(rd) = std::fs::read_dir(d.path().join(parent.trim_start_matches('/'))) else {
                continue;
            };
            for p in rd.flatten() {
                let n = p.file_name().to_string_lossy().into_owned();
                if let Some(id) = n.strip_prefix("pod-") {
                    out.push(id.to_string());
                }
            }
        }
        out
    };
    for id in cgroups() {
        assert!(
            ids.contains(&id),
            "the cgroup of pod {id}, which is gone, remains"
        );
    }
    // Removing what is left leaves nothing at all.
    for id in &ids {
        e.berth(&["pod", "rm", "-f", id]).ok();
    }
    assert_eq!(e.berth(&["ps", "-aq"]).ok().stdout, "");
    assert!(cgroups().is_empty(), "{:?}", cgroups());
    for d in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(d.path().join(parent.trim_start_matches('/')));
    }
}

// ---- The pod's network, in namespaces of the test's own
// (common::world). ----

/// berth killed (-9) after the infra's monitor was told to go but before
/// it had started the infra: the infra is recorded running with no
/// process yet. The next member start waits for that monitor instead of
/// failing with "…-infra is not running; start it first". Made
/// deterministic by stopping the monitor (SIGSTOP) while it is starting.
#[test]
fn a_start_cut_short_after_go_is_waited_for_by_the_next_start() {
    let e = env();
    let _c = Cleanup(&e);
    e.berth(&["pod", "create", "--name", "cut"]).ok();
    e.berth(&[
        "create", "--pod", "cut", "--name", "mem", IMAGE, "sleep", "600",
    ])
    .ok();
    let infra = e
        .berth(&["pod", "inspect", "cut", "--format", "{{.InfraContainerID}}"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(infra.len(), 64, "infra id: {infra:?}");
    let state = e
        .run_root
        .path()
        .join("containers")
        .join(&infra)
        .join("state");
    let mut first = e.cmd().args(["start", "mem"]).spawn().unwrap();
    // The monitor writes "starting" once it has GO, before the runtime.
    let deadline = Instant::now() + Duration::from_secs(20);
    let monitor = loop {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        if text.contains("status=starting") {
            let pid: i32 = text
                .lines()
                .find_map(|l| l.strip_prefix("monitor_pid="))
                .expect("monitor_pid in the state")
                .parse()
                .unwrap();
            // SAFETY: plain kill(2) of the infra's monitor.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "the infra's monitor never wrote status=starting: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    first.kill().unwrap();
    first.wait().unwrap();
    // The record says running; the monitor has no process yet. It goes
    // on half a second after the second start began.
    let resume = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: plain kill(2) of the monitor stopped above.
        unsafe { libc::kill(monitor, libc::SIGCONT) };
    });
    let second = e.cmd().args(["start", "mem"]).output().unwrap();
    resume.join().unwrap();
    assert!(
        second.status.success(),
        "the second start failed: {}",
        String::from_utf8_lossy(&second.stderr)
    );
    let st = e
        .berth(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        .ok()
        .stdout;
    assert_eq!(st.matches(" Up").count(), 2, "{st}");
}

#[test]
fn the_pods_ip_and_published_port_are_the_pods_and_go_with_it() {
    let w = World::with_image(IMAGE, image_tar());
    let id = w
        .berth(&[
            "pod",
            "create",
            "--name",
            "web",
            "--network",
            "bridge",
            "-p",
            "8080:80",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    w.berth(&[
        "run",
        "-d",
        "--name",
        "httpd",
        "--pod",
        "web",
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /www && echo hello-pod > /www/index.html && exec httpd -f -p 80 -h /www",
    ])
    .ok();
    let ip = w
        .berth(&["pod", "inspect", "-f", "{{.InfraIPAddress}}", "web"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(
        ip.starts_with("10.") || ip.contains('.'),
        "pod address {ip:?}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&w.berth(&["pod", "inspect", "web"]).ok().stdout).unwrap();
    assert_eq!(
        doc[0]["InfraConfig"]["PortBindings"]["80/tcp"][0]["HostPort"], "8080",
        "{doc}"
    );
    assert_eq!(doc[0]["InfraConfig"]["Networks"][0], "bridge", "{doc}");
    // The member has the pod's address.
    let addrs = w
        .berth(&["exec", "httpd", "ip", "-o", "-4", "addr"])
        .ok()
        .stdout;
    assert!(addrs.contains(&format!("{ip}/")), "{addrs}");
    // From the outside, through the host's published port; from the
    // host, at the pod's address.
    let mut body = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while body.is_none() && Instant::now() < deadline {
        body = w.fetch_from("outside", &format!("http://{HOST4}:8080/"));
        if body.is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(body.as_deref(), Some("hello-pod\n"));
    assert_eq!(
        w.fetch_from("host", &format!("http://{ip}:80/")).as_deref(),
        Some("hello-pod\n")
    );
    // Another member reaches it over localhost.
    let o = w
        .berth(&[
            "run",
            "--rm",
            "--pod",
            "web",
            IMAGE,
            "wget",
            "-qO-",
            "http://127.0.0.1/",
        ])
        .ok();
    assert_eq!(o.stdout, "hello-pod\n");
    assert_eq!(w.veths().len(), 1, "{:?}", w.veths());
    // rm -f: no container, netns, veth, port, cgroup or record remains.
    w.berth(&["pod", "rm", "-f", "web"]).ok();
    assert_eq!(w.berth(&["ps", "-aq"]).ok().stdout, "");
    assert_eq!(w.berth(&["pod", "ps", "-q"]).ok().stdout, "");
    assert!(w.netns_files().is_empty(), "{:?}", w.netns_files());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !w.veths().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(w.veths().is_empty(), "{:?}", w.veths());
    assert!(w
        .fetch_from("outside", &format!("http://{HOST4}:8080/"))
        .is_none());
    assert!(pod_cgroups(&id).is_empty(), "{:?}", pod_cgroups(&id));
    let rules = w.in_ns("host", &["nft", "list", "ruleset"]).stdout;
    assert!(!rules.contains(" 8080 "), "{rules}");
}

#[test]
fn pod_logs_prefix_each_member_and_follow_them_all() {
    let e = env();
    let _c = Cleanup(&e);
    e.berth(&["pod", "create", "--name", "chatty"]).ok();
    for n in ["la", "lb"] {
        e.berth(&[
            "run",
            "-d",
            "--name",
            n,
            "--pod",
            "chatty",
            IMAGE,
            "sh",
            "-c",
            &format!("echo one-{n}; sleep 1; echo two-{n}"),
        ])
        .ok();
    }
    // -f follows every member until all have ended.
    let t0 = Instant::now();
    let o = e.berth(&["pod", "logs", "-f", "chatty"]).ok();
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "did not follow: {}",
        o.stdout
    );
    for n in ["la", "lb"] {
        for w in ["one", "two"] {
            assert!(o.stdout.contains(&format!("{n} {w}-{n}\n")), "{}", o.stdout);
        }
    }
    assert_eq!(o.stdout.lines().count(), 4, "{}", o.stdout);
    let o = e.berth(&["pod", "logs", "--tail", "1", "chatty"]).ok();
    assert_eq!(o.stdout, "la two-la\nlb two-lb\n");
    let o = e.berth(&["pod", "logs", "-c", "lb", "chatty"]).ok();
    assert_eq!(o.stdout, "lb one-lb\nlb two-lb\n");
}
