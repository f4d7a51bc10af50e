//! Test fixtures: a real registry (Debian's docker-registry, the CNCF
//! distribution registry) on loopback, started per test binary, and
//! images built here from busybox and synthetic layers, pushed through the
//! registry's HTTP API (not through berth).

#![allow(dead_code)]

#[path = "../../../conformance/tests/common/loopdev.rs"]
mod loopdev;
pub mod proxy;
pub mod world;
#[allow(unused_imports)]
pub use loopdev::LoopDevice;

use berth_image::tar::build::Tar;
use berth_image::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

pub const BUSYBOX: &str = "/bin/busybox";
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub fn require_root() {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        uid, 0,
        "these tests need root (the store unpacks device nodes and owners)"
    );
}

/// The directories of container `id`'s cgroup (`/berth/ID` in each
/// hierarchy) that exist: after the container is gone, none should.
#[allow(dead_code)]
pub fn cgroup_dirs(id: &str) -> Vec<std::path::PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mi.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fs = post.split_whitespace().next()?;
            (fs == "cgroup" || fs == "cgroup2").then(|| pre.split_whitespace().nth(4))?
        })
        .map(|m| Path::new(m).join("berth").join(id))
        .filter(|p| p.exists())
        .collect()
}

pub struct Registry {
    pub addr: String,
    _child: Child,
    _dir: tempfile::TempDir,
}

/// The registry for this test binary (started once; it dies with us).
pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: apt-get install docker-registry"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\nvalidation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        // A watchdog shell stops the registry when this test process is
        // gone (PR_SET_PDEATHSIG would fire when the spawning *thread*
        // ends, and test threads end early), then removes its directory:
        // the registry lives in a static, which is never dropped.
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "{REGISTRY_BIN} serve \"$1\" >/dev/null 2>&1 & r=$!; \
                 while kill -0 {} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.5; done; \
                 kill $r 2>/dev/null; wait $r; rm -rf \"$2\"",
                std::process::id()
            ))
            .arg("sh")
            .arg(&cfg)
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("start docker-registry");
        let t0 = std::time::Instant::now();
        loop {
            if ureq::get(&format!("http://{addr}/v2/")).call().is_ok() {
                break;
            }
            assert!(t0.elapsed().as_secs() < 20, "the registry did not come up on {addr}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Registry { addr, _child: child, _dir: dir }
    })
}

impl Registry {
    pub fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let d = Digest::of(data);
        let r = ureq::post(&format!("http://{}/v2/{repo}/blobs/uploads/", self.addr))
            .call()
            .expect("start a blob upload");
        let loc = r.header("location").unwrap().to_string();
        let url = if loc.starts_with("http") {
            loc
        } else {
            format!("http://{}{loc}", self.addr)
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        ureq::put(&format!("{url}{sep}digest={d}"))
            .set("Content-Type", "application/octet-stream")
            .send_bytes(data)
            .expect("upload a blob");
        d
    }

    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Digest {
        ureq::put(&format!(
            "http://{}/v2/{repo}/manifests/{reference}",
            self.addr
        ))
        .set("Content-Type", media_type)
        .send_bytes(body)
        .unwrap_or_else(|e| panic!("push manifest {repo}:{reference}: {e}"));
        Digest::of(body)
    }
}

pub enum Comp {
    Gzip,
    Zstd,
    None,
}

pub fn compress(tar: &[u8], c: &Comp) -> Vec<u8> {
    match c {
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        Comp::Zstd => zstd::encode_all(tar, 1).unwrap(),
        Comp::None => tar.to_vec(),
    }
}

fn layer_type(c: &Comp) -> &'static str {
    match c {
        Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        Comp::None => "application/vnd.oci.image.layer.v1.tar",
    }
}

/// Layer 1: busybox with a few applets, /etc/passwd, /etc/motd, /old/.
pub fn base_layer() -> Vec<u8> {
    let bb = std::fs::read(BUSYBOX).expect("busybox-static");
    let mut t = Tar::default();
    t.dir("bin/", 0o755)
        .file("bin/busybox", &bb, 0o755)
        .symlink("bin/sh", "busybox")
        .symlink("bin/true", "busybox")
        .symlink("bin/cat", "busybox")
        .dir("etc/", 0o755)
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .file("etc/motd", b"base\n", 0o644)
        .dir("old/", 0o755)
        .file("old/a", b"a", 0o644);
    t.end()
}

/// Layer 2: deletes /etc/motd, makes /old opaque, adds a file.
pub fn top_layer() -> Vec<u8> {
    let mut t = Tar::default();
    t.dir("etc/", 0o755)
        .file("etc/.wh.motd", b"", 0o644)
        .dir("old/", 0o755)
        .file("old/.wh..wh..opq", b"", 0o644)
        .file("old/b", b"b", 0o644)
        .file("hello", b"hello from the top layer\n", 0o644);
    t.end()
}

pub struct Pushed {
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
    pub diff_ids: Vec<Digest>,
}

/// Pushes an image of `layers` (uncompressed tars) as `repo:tag`.
pub fn push_image(repo: &str, tag: &str, layers: &[Vec<u8>], comp: Comp, arch: &str) -> Pushed {
    let reg = registry();
    let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::of(l)).collect();
    let blobs: Vec<Vec<u8>> = layers.iter().map(|l| compress(l, &comp)).collect();
    let layer_digests: Vec<Digest> = blobs.iter().map(|b| reg.push_blob(repo, b)).collect();
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": "2026-11-23T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        "history": [{"created_by": "berth test fixture"}]
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_d = reg.push_blob(repo, &config_bytes);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d.to_string(), "size": config_bytes.len()},
        "layers": blobs.iter().zip(&layer_digests).map(|(b, d)| serde_json::json!({
            "mediaType": layer_type(&comp), "digest": d.to_string(), "size": b.len()
        })).collect::<Vec<_>>()
    });
    let body = serde_json::to_vec(&manifest).unwrap();
    let md = reg.push_manifest(
        repo,
        tag,
        "application/vnd.oci.image.manifest.v1+json",
        &body,
    );
    Pushed {
        manifest: md,
        config: config_d,
        layers: layer_digests,
        diff_ids,
    }
}

/// A store directory (and a run directory, on /run's tmpfs, short enough
/// for socket paths) for one test. Dropping it removes every container
/// the test left, so no overlay mount outlives the test.
pub struct Env {
    pub root: tempfile::TempDir,
    pub run_root: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        let ids = self.berth(&["ps", "-aq", "--no-trunc"]).stdout;
        for id in ids.split_whitespace() {
            let _ = self.berth(&["rm", "-f", "-v", id]);
        }
        // Volumes that are mounts of their own (--opt type=tmpfs) are
        // unmounted before the store goes.
        let _ = self.berth(&["volume", "prune", "-a"]);
    }
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "berth failed: {}", self.stderr);
        self
    }
}

impl Env {
    pub fn new() -> Env {
        require_root();
        Env {
            root: tempfile::Builder::new()
                .prefix("berth-store")
                .tempdir()
                .unwrap(),
            run_root: tempfile::Builder::new()
                .prefix("bt")
                .tempdir_in("/run")
                .unwrap(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.arg("--root").arg(self.root.path());
        c.arg("--run-root").arg(self.run_root.path());
        c.env_remove("BERTH_ROOT");
        c.env_remove("BERTH_RUN_ROOT");
        // Containers get only a loopback unless a test asks for a network:
        // bridges and nftables rules are made only by the network tests,
        // inside network namespaces of their own (tests/network.rs).
        c.env("BERTH_DEFAULT_NETWORK", "none");
        // This machine's registries.conf (aliases, mirrors) stays out of
        // the tests; those that test it give their own.
        c.env(
            "CONTAINERS_REGISTRIES_CONF",
            self.root.path().join("no-registries.conf"),
        );
        c
    }

    pub fn berth(&self, args: &[&str]) -> Out {
        let o: Output = self.cmd().args(args).output().expect("run berth");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn layers_dir(&self) -> PathBuf {
        self.root.path().join("layers")
    }

    pub fn images_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.berth(&["images", "--format", "json"]).ok().stdout).unwrap()
    }
}

/// A busybox root filesystem with `applets` linked to it, root in
/// /etc/passwd and /etc/group, and /tmp: callers add their own files before
/// `end()`, and import it with [`import_image`].
pub fn busybox_rootfs(applets: &[&str]) -> Tar {
    let bb =
        std::fs::read(BUSYBOX).expect("busybox-static is needed: apt-get install busybox-static");
    let mut t = Tar::default();
    t.dir("bin/", 0o755).file("bin/busybox", &bb, 0o755);
    for a in applets {
        t.symlink(&format!("bin/{a}"), "busybox");
    }
    t.dir("etc/", 0o755)
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .file("etc/group", b"root:x:0:\n", 0o644)
        .dir("tmp/", 0o1777);
    t
}

/// Imports the root filesystem tarball `tar` as the image `name` into
/// `env`'s store, offline (`berth import`), and returns `name`.
pub fn import_image<'a>(env: &Env, tar: Vec<u8>, name: &'a str) -> &'a str {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rootfs.tar");
    std::fs::write(&p, tar).unwrap();
    env.berth(&["import", p.to_str().unwrap(), name]).ok();
    name
}

/// Starts `berth system service --time 0 unix://SOCK` from `berth` (a
/// berth command for the test's store, in whatever namespaces it runs)
/// and waits (10 s at most) until the socket answers.
pub fn start_api_service(mut berth: Command, sock: &Path) -> Child {
    let child = berth
        .args(["system", "service", "--time", "0"])
        .arg(format!("unix://{}", sock.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start berth system service");
    let t = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(sock).is_err() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "the service did not listen on {}",
            sock.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}
