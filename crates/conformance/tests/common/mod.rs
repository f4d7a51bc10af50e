//! Test support: bundles built from oci-spec types on a busybox rootfs with
//! the checker inside, and a runtime driven as a caller drives it: through
//! its command line. Set BERTH_TEST_RUNTIME=/usr/sbin/runc to run the same
//! suite against runc.
//!
//! These tests need root, busybox-static and a cgroup hierarchy. When a
//! precondition is missing they fail, loudly; they never skip.
#![allow(dead_code)]

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub const BUSYBOX: &str = "/bin/busybox";

/// True on a cgroup v2 host (the unified hierarchy at /sys/fs/cgroup), as in
/// the VM lane (scripts/vm-v2.sh); false on a v1 or hybrid host.
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

pub fn require_root() {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the conformance suite makes real containers and must run as root"
    );
}

/// The runtime under test.
pub fn runtime_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_TEST_RUNTIME") {
        return PathBuf::from(p);
    }
    // target/<triple>/debug/deps/<test> -> target/<triple>/debug/berth-runtime
    let exe = std::env::current_exe().expect("current_exe");
    let p = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("berth-runtime");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        p.display()
    );
    p
}

pub fn is_berth() -> bool {
    runtime_bin()
        .file_name()
        .is_some_and(|n| n == "berth-runtime")
}

pub fn checker_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth-checker"))
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique container id for this test process.
pub fn unique_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub spec: Spec,
    pub id: String,
}

const APPLETS: &[&str] = &[
    "sh", "true", "false", "cat", "ls", "id", "hostname", "mount", "sleep", "echo", "ps", "stat",
    "touch", "mkdir", "grep", "test", "readlink", "head", "wc", "kill", "env", "pwd", "umask",
    "ulimit", "rm", "dd",
];

impl Bundle {
    /// A bundle whose container runs `args` without a terminal, with the
    /// runtime-spec's default config (as `runc spec`), its cgroup under
    /// /berth-test/<id>.
    pub fn new(args: &[&str]) -> Bundle {
        require_root();
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} is missing: apt-get install busybox-static"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-bundle")
            .tempdir()
            .expect("tempdir");
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        std::fs::copy(checker_bin(), rootfs.join("checker")).unwrap();
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        let id = unique_id("c");
        let mut spec = Spec::default();
        let mut process = spec.process().clone().unwrap();
        process.set_terminal(Some(false));
        // As `runc spec` writes it today: no inheritable capabilities
        // (oci-spec's default still lists some, from before CVE-2022-29162).
        if let Some(mut caps) = process.capabilities().clone() {
            caps.set_inheritable(None);
            process.set_capabilities(Some(caps));
        }
        process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        spec.set_process(Some(process));
        let mut root = spec.root().clone().unwrap();
        root.set_path(PathBuf::from("rootfs"));
        root.set_readonly(Some(false));
        spec.set_root(Some(root));
        let mut linux = spec.linux().clone().unwrap();
        linux.set_cgroups_path(Some(PathBuf::from(format!("/berth-test/{id}"))));
        // As `runc spec`: every device denied but the container's own.
        linux.set_resources(Some(
            serde_json::from_value(
                serde_json::json!({"devices": [{"allow": false, "access": "rwm"}]}),
            )
            .unwrap(),
        ));
        spec.set_linux(Some(linux));
        Bundle { dir, spec, id }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn linux(&mut self) -> &mut oci_spec::runtime::Linux {
        self.spec.linux_mut().as_mut().unwrap()
    }

    pub fn process(&mut self) -> &mut oci_spec::runtime::Process {
        self.spec.process_mut().as_mut().unwrap()
    }

    pub fn set_args(&mut self, args: &[&str]) {
        self.process()
            .set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    }

    /// Appends a mount to the config's list.
    pub fn add_mount(&mut self, m: oci_spec::runtime::Mount) {
        let mut ms = self.spec.mounts().clone().unwrap_or_default();
        ms.push(m);
        self.spec.set_mounts(Some(ms));
    }

    /// Drops the config's mounts whose destination `drop` matches.
    pub fn remove_mounts(&mut self, drop: impl Fn(&Path) -> bool) {
        let mut ms = self.spec.mounts().clone().unwrap_or_default();
        ms.retain(|m| !drop(m.destination()));
        self.spec.set_mounts(Some(ms));
    }

    pub fn add_namespace(&mut self, t: LinuxNamespaceType, path: Option<&str>) {
        let mut ns = self.linux().namespaces().clone().unwrap_or_default();
        ns.retain(|n| n.typ() != t);
        let mut n = LinuxNamespace::default();
        n.set_typ(t);
        n.set_path(path.map(PathBuf::from));
        ns.push(n);
        self.linux().set_namespaces(Some(ns));
    }

    pub fn remove_namespace(&mut self, t: LinuxNamespaceType) {
        let mut ns = self.linux().namespaces().clone().unwrap_or_default();
        ns.retain(|n| n.typ() != t);
        self.linux().set_namespaces(Some(ns));
    }

    pub fn write(&self) {
        self.write_json(&serde_json::to_value(&self.spec).unwrap());
    }

    pub fn write_json(&self, v: &serde_json::Value) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(v).unwrap(),
        )
        .unwrap();
    }

    /// The host directory of this container's cgroup in one v1 hierarchy.
    /// The container's cgroup directory for `controller` (on cgroup v2 the
    /// one directory, whatever the controller).
    pub fn cgroup_dir(&self, controller: &str) -> PathBuf {
        if cgroup_v2() {
            PathBuf::from(format!("/sys/fs/cgroup/berth-test/{}", self.id))
        } else {
            PathBuf::from(format!(
                "/sys/fs/cgroup/{controller}/berth-test/{}",
                self.id
            ))
        }
    }
}

pub struct Runtime {
    pub bin: PathBuf,
    pub root: tempfile::TempDir,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn from_output(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&o.status).unwrap_or(0)
            }),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn ok(self) -> Out {
        assert_eq!(
            self.code, 0,
            "command failed: stdout={} stderr={}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?} (stderr {:?})",
                self.stdout, self.stderr
            )
        })
    }
}

impl Runtime {
    pub fn new() -> Runtime {
        require_root();
        Runtime {
            bin: runtime_bin(),
            root: tempfile::Builder::new()
                .prefix("berth-root")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path());
        c.stdin(Stdio::null());
        c
    }

    pub fn exec(&self, args: &[&str]) -> Out {
        Out::from_output(self.cmd().args(args).output().expect("spawn runtime"))
    }

    /// Runs a command whose container outlives it (create, run -d): the
    /// container inherits stdout and stderr, so they go to files in the
    /// bundle rather than to pipes that would stay open.
    pub fn exec_files(&self, args: &[&str], dir: &Path) -> Out {
        let out = std::fs::File::create(dir.join("stdout.log")).unwrap();
        let err = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let status = self
            .cmd()
            .args(args)
            .stdout(out)
            .stderr(err)
            .status()
            .expect("spawn runtime");
        Out {
            code: status.code().unwrap_or(128),
            stdout: std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default(),
            stderr: std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default(),
        }
    }

    pub fn create(&self, b: &Bundle) -> Out {
        b.write();
        self.exec_files(
            &["create", "--bundle", b.path().to_str().unwrap(), &b.id],
            b.path(),
        )
    }

    /// `run` in the foreground: create, start, wait, delete.
    pub fn run(&self, b: &Bundle) -> Out {
        b.write();
        self.exec(&["run", "--bundle", b.path().to_str().unwrap(), &b.id])
    }

    /// `run -d`: writes the bundle, starts its container in the
    /// background and returns the init's host pid.
    pub fn start_detached(&self, b: &Bundle) -> i32 {
        b.write();
        self.exec_files(
            &["run", "-d", "--bundle", b.path().to_str().unwrap(), &b.id],
            b.path(),
        )
        .ok();
        self.state(&b.id)["pid"].as_i64().unwrap() as i32
    }

    /// `exec -d --pid-file`: starts `cmd` in the container in the
    /// background and returns its host pid.
    pub fn exec_detached(&self, b: &Bundle, cmd: &[&str]) -> i32 {
        let pidfile = b.path().join("exec.pid");
        let mut args = vec!["exec", "-d", "--pid-file", pidfile.to_str().unwrap(), &b.id];
        args.extend_from_slice(cmd);
        self.exec_files(&args, b.path()).ok();
        std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Runs the checker in a container with this bundle and parses its report.
    pub fn check(&self, b: &mut Bundle) -> serde_json::Value {
        b.set_args(&["/checker"]);
        self.run(b).ok().json()
    }

    pub fn state(&self, id: &str) -> serde_json::Value {
        self.exec(&["state", id]).ok().json()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Waits until the container exists and reaches `want` (up to 5 s).
    pub fn wait_status(&self, id: &str, want: &str) {
        let mut last = String::new();
        for _ in 0..500 {
            let o = self.exec(&["state", id]);
            if o.code == 0 {
                last = o.json()["status"].as_str().unwrap_or_default().to_string();
                if last == want {
                    return;
                }
            } else {
                last = o.stderr;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {id} never became {want}: {last}");
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Leave nothing behind even when a test fails half-way.
        if let Ok(rd) = std::fs::read_dir(self.root.path()) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.cmd().args(["delete", "--force", &id]).output();
            }
        }
    }
}

/// The host's inode of one of our namespaces, as /proc shows it.
pub fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

/// Mounts in the host's mount table whose source or target mention `s`.
pub fn host_mounts_mentioning(s: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(s))
        .map(str::to_string)
        .collect()
}

/// Processes whose command line mentions `s`.
pub fn processes_mentioning(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() || name == std::process::id().to_string() {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(s) {
                out.push(format!("{name}: {cmd}"));
            }
        }
    }
    out
}

/// Makes `file` the child's fd 3 (inherited across exec), as a caller of
/// `--preserve-fds` or socket activation does.
pub fn pass_as_fd3(cmd: &mut Command, file: &std::fs::File) {
    let raw = std::os::fd::AsRawFd::as_raw_fd(file);
    // SAFETY: dup2 and fcntl in the forked child before exec are
    // async-signal-safe; dup2(3, 3) would keep FD_CLOEXEC, hence the fcntl.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Receives one fd sent with SCM_RIGHTS.
pub fn recv_fd(sock: &std::os::unix::net::UnixStream) -> std::os::fd::OwnedFd {
    recv_with_fd(sock).1
}

/// Receives one message and the fd sent with it (SCM_RIGHTS, required).
pub fn recv_with_fd(sock: &std::os::unix::net::UnixStream) -> (Vec<u8>, std::os::fd::OwnedFd) {
    let mut data = vec![0u8; 64 * 1024];
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
    let n = unsafe {
        libc::recvmsg(
            std::os::fd::AsRawFd::as_raw_fd(sock),
            &mut msg,
            libc::MSG_CMSG_CLOEXEC,
        )
    };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    data.truncate(n as usize);
    // SAFETY: we read the first control message the kernel wrote.
    let fd = unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        assert!(
            !c.is_null() && (*c).cmsg_type == libc::SCM_RIGHTS,
            "no fd received"
        );
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(std::ptr::read_unaligned(
            libc::CMSG_DATA(c).cast::<i32>(),
        ))
    };
    (data, fd)
}

/// A bundle with a user namespace mapping 0..65536 to 100000.. and a
/// rootfs owned by the mapped root.
pub fn userns_bundle(args: &[&str]) -> Bundle {
    let mut b = Bundle::new(args);
    b.add_namespace(LinuxNamespaceType::User, None);
    let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.linux()
        .set_uid_mappings(Some(serde_json::from_value(map.clone()).unwrap()));
    b.linux()
        .set_gid_mappings(Some(serde_json::from_value(map).unwrap()));
    chown_rootfs(&b, 100000);
    // sysfs needs a network namespace owned by the user namespace: we have one.
    b
}

/// Gives the bundle's rootfs to `id` (uid and gid): usable by a user
/// namespace's mapped root.
pub fn chown_rootfs(b: &Bundle, id: u32) {
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{id}:{id}")])
        .arg(b.rootfs())
        .status()
        .unwrap();
    assert!(status.success());
}

#[path = "loopdev.rs"]
mod loopdev;
#[allow(unused_imports)]
pub use loopdev::LoopDevice;
