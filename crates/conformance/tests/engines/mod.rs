//! The real callers of a runtime, started by the test with private paths:
//! containerd (driven with `ctr`), dockerd (on its own containerd) and podman.
//! Each engine drives a runtime binary given per container, so the same
//! scenario runs with berth-runtime and with runc side by side.
//!
//! Nothing here touches the host's engines: every daemon has its own root,
//! state, socket and cgroup parent under a temp dir, and everything it made
//! (containers, shims, mounts, cgroups, runtime state) is removed when the
//! lane ends, also when it fails. A missing binary fails the test loudly.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CONTAINERD: &str = "/usr/bin/containerd";
pub const CTR: &str = "/usr/bin/ctr";
pub const DOCKERD: &str = "/usr/sbin/dockerd";
pub const DOCKER: &str = "/usr/bin/docker";
pub const PODMAN: &str = "/usr/bin/podman";
pub const RUNC: &str = "/usr/sbin/runc";
pub const SCRIPT: &str = "/usr/bin/script";

/// The image's name in every engine; `:user` is the same image whose config
/// says `User: 1000` (ctr run has no --user flag).
pub const IMAGE: &str = "docker.io/library/berth-callers:latest";
pub const IMAGE_USER: &str = "docker.io/library/berth-callers:user";

/// `/etc/passwd` of the test image: uid 1000 has a home, uid 2000 has no entry.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000:u:/home/u:/bin/sh\n";
const GROUP: &str = "root:x:0:\nu:x:1000:\n";

pub fn require_bin(p: &str, package: &str) {
    assert!(
        Path::new(p).exists(),
        "{p} is missing: apt-get install {package} (the callers lane drives the real engines)"
    );
}

/// What a command did: its exit code (128+N when killed by signal N) and its
/// output as text.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    /// "rc=N stdout=... stderr=..." for an error message.
    pub fn show(&self) -> String {
        format!(
            "rc={} stdout={:?} stderr={:?}",
            self.code,
            self.out.trim(),
            self.err.trim()
        )
    }
}

fn code_of(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

/// Runs `cmd` to the end with stdin from /dev/null, killing it after
/// `limit` (a hung engine fails the scenario, never the whole run).
pub fn run_cmd(cmd: &mut Command, limit: Duration) -> Out {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for a command") {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{desc} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        code: code_of(status),
        out: String::from_utf8_lossy(&t_out.join().unwrap()).into_owned(),
        err: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
    }
}

pub fn run60(cmd: &mut Command) -> Out {
    run_cmd(cmd, Duration::from_secs(60))
}

/// A temp dir under /tmp with a short name (unix socket paths are short).
pub fn short_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("make a temp dir under /tmp")
}

/// Writes the test image as a docker-archive tarball (the format `docker
/// save` writes, which `docker load`, `podman load` and `ctr images import`
/// all read): one layer of busybox-static with a passwd and a group file,
/// tagged `berth-callers:latest` and, with `User: 1000`, `berth-callers:user`.
pub fn build_image(dir: &Path) -> PathBuf {
    require_bin(crate::common::BUSYBOX, "busybox-static");
    let rootfs = dir.join("image-rootfs");
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "home/u"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(crate::common::BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    let list = run60(Command::new(crate::common::BUSYBOX).arg("--list"));
    assert!(list.ok(), "busybox --list: {}", list.show());
    for a in list
        .out
        .lines()
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    std::fs::write(rootfs.join("etc/passwd"), PASSWD).unwrap();
    std::fs::write(rootfs.join("etc/group"), GROUP).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::chown(rootfs.join("home/u"), Some(1000), Some(1000)).unwrap();

    let arch = dir.join("image");
    std::fs::create_dir_all(&arch).unwrap();
    let layer = arch.join("layer.tar");
    let t = run60(
        Command::new("tar")
            .arg("--sort=name")
            .arg("--numeric-owner")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&layer)
            .arg("."),
    );
    assert!(t.ok(), "tar the test image's layer: {}", t.show());
    let diff_id = sha256(&layer);
    let mut manifest = Vec::new();
    for (tag, user) in [("berth-callers:latest", ""), ("berth-callers:user", "1000")] {
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["sh"],
                "User": user,
            },
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
            "history": [{"created_by": "berth callers test"}],
        });
        let body = serde_json::to_vec(&config).unwrap();
        let p = arch.join("config.json.tmp");
        std::fs::write(&p, &body).unwrap();
        let name = format!("{}.json", sha256(&p));
        std::fs::rename(&p, arch.join(&name)).unwrap();
        manifest.push(serde_json::json!({
            "Config": name, "RepoTags": [tag], "Layers": ["layer.tar"],
        }));
    }
    std::fs::write(
        arch.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let tarball = dir.join("berth-callers.tar");
    let t = run60(
        Command::new("tar")
            .arg("-C")
            .arg(&arch)
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
    );
    assert!(t.ok(), "tar the test image: {}", t.show());
    tarball
}

fn sha256(p: &Path) -> String {
    let o = run60(Command::new("sha256sum").arg(p));
    assert!(o.ok(), "sha256sum {}: {}", p.display(), o.show());
    o.out.split_whitespace().next().unwrap().to_string()
}

/// A daemon the test started: stopped by its pid (SIGTERM, then SIGKILL
/// after 15 s) when dropped.
pub struct Daemon {
    pub name: &'static str,
    pub child: Child,
}

impl Daemon {
    pub fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Daemon {
        let f = std::fs::File::create(log).unwrap();
        if let Some(dir) = log.parent() {
            cmd.current_dir(dir);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Daemon { name, child }
    }

    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory effects; the pid is our own child, not
        // yet reaped (try_wait above), so it cannot have been reused.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGTERM within 15 s: SIGKILL", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `check` until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if check() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills, by pid, the processes whose command line names `dir` (the shims
/// and conmons our daemons started, should any outlive them).
pub fn kill_processes_under(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            eprintln!("callers cleanup: SIGKILL leftover process {pid}");
            // SAFETY: kill has no memory effects.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// Unmounts (lazily, deepest first) every mount at or under `dir`.
pub fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for p in points {
        let c = std::ffi::CString::new(p.clone()).unwrap();
        // SAFETY: c is a valid NUL-terminated path for the call's duration.
        let r = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        if r != 0 {
            eprintln!(
                "callers cleanup: umount {p}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Removes the cgroup `rel` (a path under each hierarchy's root) and every
/// cgroup below it, in every mounted hierarchy.
pub fn remove_cgroups(rel: &str) {
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    roots.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    for root in roots {
        let p = root.join(rel.trim_start_matches('/'));
        if p.is_dir() {
            rmdir_tree(&p);
        }
    }
}

fn rmdir_tree(p: &Path) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    // The kernel's cgroup files vanish with the directory.
    if let Err(e) = std::fs::remove_dir(p) {
        eprintln!("callers cleanup: rmdir {}: {e}", p.display());
    }
}
