//! [`World`]: the engine in network namespaces a test makes (network and
//! pod tests).

use super::*;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub const HOST4: &str = "192.0.2.1";
pub const OUTSIDE4: &str = "192.0.2.2";
pub const HOST6: &str = "2001:db8:1::1";

/// The engine in a network namespace "host" of the test's own, with a
/// second one, "outside", behind a veth pair (the world beyond the host:
/// 192.0.2.2, 2001:db8:1::2), so that no test touches the machine's
/// interfaces or rules.
pub struct World {
    pub env: Env,
    dir: tempfile::TempDir,
    /// A busybox image in the store ([`World::new`]'s, or the caller's).
    pub image: &'static str,
}

pub fn run(cmd: &mut Command) -> Out {
    let o = cmd.output().expect("run a command");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn sh(args: &[&str]) {
    let o = run(Command::new(args[0]).args(&args[1..]));
    assert_eq!(o.code, 0, "{args:?}: {}{}", o.stdout, o.stderr);
}

impl World {
    /// With the image `net:1`: busybox with the applets network tests use.
    pub fn new() -> World {
        let tar = busybox_rootfs(&[
            "sh", "httpd", "wget", "nslookup", "nc", "ip", "cat", "echo", "mkdir", "sleep",
            "hostname", "true", "grep", "timeout",
        ])
        .end();
        World::with_image("net:1", tar)
    }

    /// With `image` imported from the root filesystem tarball `tar`.
    pub fn with_image(image: &'static str, tar: Vec<u8>) -> World {
        let env = Env::new();
        let dir = tempfile::Builder::new()
            .prefix("bnet")
            .tempdir_in("/run")
            .unwrap();
        let w = World { env, dir, image };
        for ns in ["host", "outside"] {
            let p = w.ns(ns);
            std::fs::write(&p, b"").unwrap();
            sh(&["unshare", &format!("--net={}", p.display()), "true"]);
        }
        let h = format!("--net={}", w.ns("host").display());
        let o = format!("--net={}", w.ns("outside").display());
        let outside = w.ns("outside");
        sh(&["nsenter", &h, "ip", "link", "set", "lo", "up"]);
        sh(&["nsenter", &o, "ip", "link", "set", "lo", "up"]);
        sh(&[
            "nsenter",
            &h,
            "ip",
            "link",
            "add",
            "uplink",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            outside.to_str().unwrap(),
        ]);
        sh(&[
            "nsenter",
            &h,
            "ip",
            "addr",
            "add",
            &format!("{HOST4}/24"),
            "dev",
            "uplink",
        ]);
        sh(&[
            "nsenter",
            &h,
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{HOST6}/64"),
            "dev",
            "uplink",
            "nodad",
        ]);
        sh(&["nsenter", &h, "ip", "link", "set", "uplink", "up"]);
        sh(&[
            "nsenter",
            &o,
            "ip",
            "addr",
            "add",
            &format!("{OUTSIDE4}/24"),
            "dev",
            "eth0",
        ]);
        sh(&[
            "nsenter",
            &o,
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:1::2/64",
            "dev",
            "eth0",
            "nodad",
        ]);
        sh(&["nsenter", &o, "ip", "link", "set", "eth0", "up"]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rootfs.tar");
        std::fs::write(&p, tar).unwrap();
        w.berth(&["import", p.to_str().unwrap(), w.image]).ok();
        w
    }

    pub fn ns(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// berth, in the host namespace, with the host's default network.
    pub fn berth(&self, args: &[&str]) -> Out {
        run(self.berth_cmd().args(args))
    }

    /// The command [`World::berth`] runs, without arguments.
    pub fn berth_cmd(&self) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.ns("host").display()))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(self.env.root.path())
            .arg("--run-root")
            .arg(self.env.run_root.path())
            .env_remove("BERTH_ROOT")
            .env_remove("BERTH_RUN_ROOT")
            .env_remove("BERTH_DEFAULT_NETWORK")
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.env.root.path().join("no-registries.conf"),
            );
        c
    }

    /// A command in namespace `ns` ("host" or "outside").
    pub fn in_ns(&self, ns: &str, args: &[&str]) -> Out {
        run(Command::new("nsenter")
            .arg(format!("--net={}", self.ns(ns).display()))
            .arg("--")
            .args(args))
    }

    /// Whether a program in namespace `ns` can bind TCP `addr` (the
    /// error's errno if not).
    pub fn bind_in(&self, ns: &str, addr: &str) -> Result<(), i32> {
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        let f = std::fs::File::open(self.ns(ns)).unwrap();
        std::thread::spawn(move || {
            // SAFETY: a valid namespace fd; only this thread changes
            // namespace.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            std::net::TcpListener::bind(addr)
                .map(drop)
                .map_err(|e| e.raw_os_error().unwrap_or(0))
        })
        .join()
        .unwrap()
    }

    /// An HTTP GET of `url` (http://HOST[:PORT]/) from namespace `ns`: the
    /// body, or None. (The host's static busybox wget cannot resolve with
    /// the host's NSS, so the test speaks HTTP itself.)
    pub fn fetch_from(&self, ns: &str, url: &str) -> Option<String> {
        let hostport = url
            .strip_prefix("http://")?
            .trim_end_matches('/')
            .to_string();
        let addr: std::net::SocketAddr =
            if hostport.contains("]:") || !hostport.starts_with('[') && hostport.contains(':') {
                hostport.parse().ok()?
            } else {
                format!("{}:80", hostport).parse().ok()?
            };
        let f = std::fs::File::open(self.ns(ns)).unwrap();
        std::thread::spawn(move || {
            // SAFETY: a valid namespace fd; only this thread changes
            // namespace.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
            write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            let (head, body) = out.split_once("\r\n\r\n")?;
            head.starts_with("HTTP/1.0 200")
                .then(|| body.to_string())
                .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_string()))
        })
        .join()
        .unwrap()
    }

    /// A container on `networks` (and `more` flags) serving `hello-NAME`
    /// over HTTP on port 80; returns once it answers.
    pub fn web(&self, name: &str, more: &[&str]) {
        let script = format!(
            "mkdir -p /www && echo hello-{name} > /www/index.html && exec httpd -f -p 80 -h /www"
        );
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(more);
        args.extend_from_slice(&[self.image, "sh", "-c", &script]);
        self.berth(&args).ok();
        let ip = self.ip(name);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.fetch_from("host", &format!("http://{ip}/")).is_none() {
            assert!(Instant::now() < deadline, "{name} does not answer on {ip}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn ip(&self, name: &str) -> String {
        let o = self
            .berth(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", name])
            .ok();
        o.stdout.trim().to_string()
    }

    /// A command in a new container, removed after: its output, or the
    /// error.
    pub fn in_container(&self, flags: &[&str], cmd: &str) -> Out {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[self.image, "sh", "-c", cmd]);
        self.berth(&args)
    }

    /// berth's nft table in the host namespace ("" when there is none).
    pub fn ruleset(&self) -> String {
        self.in_ns("host", &["nft", "list", "ruleset"]).stdout
    }

    /// The host ends of veth pairs in the host namespace.
    pub fn veths(&self) -> Vec<String> {
        let o = self.in_ns("host", &["ip", "-o", "link", "show", "type", "veth"]);
        o.stdout
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| n != "uplink")
            .collect()
    }

    /// The host ends once the kernel is done removing those of unbound
    /// namespaces (it does so after berth returns, asynchronously): the
    /// list when it has `want` of them, or as it is after 5 s.
    pub fn veths_settled(&self, want: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let v = self.veths();
            if v.len() == want || Instant::now() >= deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the run root has a non-empty directory `dir`.
    pub fn run_root_has(&self, dir: &str) -> bool {
        std::fs::read_dir(self.env.run_root.path().join(dir))
            .is_ok_and(|mut rd| rd.next().is_some())
    }

    pub fn netns_files(&self) -> Vec<String> {
        std::fs::read_dir(self.env.run_root.path().join("netns"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Removed through berth in their namespace (the Env's own cleanup
        // then finds nothing).
        let pods = self.berth(&["pod", "ps", "-q", "--no-trunc"]).stdout;
        for id in pods.split_whitespace() {
            let _ = self.berth(&["pod", "rm", "-f", id]);
        }
        let ids = self.berth(&["ps", "-aq", "--no-trunc"]).stdout;
        for id in ids.split_whitespace() {
            let _ = self.berth(&["rm", "-f", "-v", id]);
        }
        let _ = self.berth(&["network", "prune", "-f"]);
        for ns in ["host", "outside"] {
            let p = self.ns(ns);
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            // SAFETY: a valid C string; MNT_DETACH of our own bind mount.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}
