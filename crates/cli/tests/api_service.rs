//! `berth system service` as a listener: TCP is served only with TLS and
//! client certificates (Docker's `--tlsverify` model), driven by the docker
//! CLI; clients without a certificate the CA signed are refused. The
//! certificates are made by the openssl CLI in a temporary directory.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DOCKER: &str = "/usr/bin/docker";
const DOCKER_NEW: &str = "/usr/local/bin/docker";
const OPENSSL: &str = "/usr/bin/openssl";

/// Runs openssl with `args` in `dir`; fails the test loudly if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    assert!(
        Path::new(OPENSSL).exists(),
        "{OPENSSL} is missing (apt-get install openssl)"
    );
    let o = Command::new(OPENSSL)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA (`NAME-ca.pem`, `NAME-ca-key.pem`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-keyout",
            &format!("{name}-ca-key.pem"),
            "-out",
            &format!("{name}-ca.pem"),
        ],
    );
}

/// A key and a certificate `NAME-key.pem`, `NAME-cert.pem` signed by `ca`,
/// with the given extensions.
fn make_cert(dir: &Path, ca: &str, name: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca-key.pem"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}-cert.pem"),
        ],
    );
}

/// The certificates of one test: the service's CA signs the server's and
/// the client's; another CA signs a stranger's.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_ca(d, "berth");
        make_ca(d, "other");
        make_cert(
            d,
            "berth",
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        make_cert(d, "berth", "client", "extendedKeyUsage=clientAuth\n");
        make_cert(d, "other", "stranger", "extendedKeyUsage=clientAuth\n");
        Certs { dir }
    }

    fn path(&self, f: &str) -> String {
        self.dir.path().join(f).display().to_string()
    }
}

/// A free port on loopback (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TLS service on 127.0.0.1, stopped (and waited for) on drop.
struct Service {
    child: Child,
    port: u16,
    config: tempfile::TempDir,
}

impl Service {
    fn start(env: &Env, certs: &Certs) -> Service {
        let port = free_port();
        let child = env
            .cmd()
            .args(["system", "service", "--time", "0", "--tlsverify"])
            .args(["--tlscacert", &certs.path("berth-ca.pem")])
            .args(["--tlscert", &certs.path("server-cert.pem")])
            .args(["--tlskey", &certs.path("server-key.pem")])
            .arg(format!("tcp://127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start berth system service");
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the service did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Service {
            child,
            port,
            config: tempfile::tempdir().unwrap(),
        }
    }

    /// The docker CLI `bin` with `tls` (its TLS flags) and `args`.
    fn docker(&self, bin: &str, tls: &[String], args: &[&str]) -> Out {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing (apt-get install docker.io)"
        );
        let o = Command::new(bin)
            .args(tls)
            .arg("-H")
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env("DOCKER_CONFIG", self.config.path())
            .stdin(Stdio::null())
            .output()
            .expect("run docker");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: kill on the pid of the child this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn ok(o: Out) -> Out {
    assert_eq!(o.code, 0, "docker failed: {}\n{}", o.stderr, o.stdout);
    o
}

fn tls_flags(certs: &Certs, who: Option<&str>) -> Vec<String> {
    let mut v = vec!["--tlscacert".to_string(), certs.path("berth-ca.pem")];
    match who {
        Some(w) => v.extend([
            "--tlsverify".to_string(),
            "--tlscert".to_string(),
            certs.path(&format!("{w}-cert.pem")),
            "--tlskey".to_string(),
            certs.path(&format!("{w}-key.pem")),
        ]),
        // TLS, the server verified, but no client certificate.
        None => v.push("--tls".to_string()),
    }
    v
}

/// `tcp://` without the TLS files is refused with one line naming them,
/// and bad TLS files are named before anything listens.
#[test]
fn tcp_without_tls_is_refused() {
    let env = Env::new();
    let port = free_port();
    let o = env.berth(&["system", "service", &format!("tcp://127.0.0.1:{port}")]);
    assert_ne!(o.code, 0, "tcp without TLS was served");
    let err = o.stderr.trim();
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(
        err.contains("TLS") && err.contains("--tlscacert") && err.contains("--tlskey"),
        "{err}"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens on {port}"
    );

    let certs = Certs::new();
    // The server's certificate with `key` as its key.
    let with_key = |key: &str| {
        env.berth(&[
            "system",
            "service",
            "--tlscacert",
            &certs.path("berth-ca.pem"),
            "--tlscert",
            &certs.path("server-cert.pem"),
            "--tlskey",
            &certs.path(key),
            &format!("tcp://127.0.0.1:{port}"),
        ])
    };
    // The CA given as the key: told, and nothing bound.
    let o = with_key("berth-ca.pem");
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("--tlskey") && o.stderr.contains("berth-ca.pem"),
        "{}",
        o.stderr
    );
    // A key that is not the certificate's.
    let o = with_key("client-key.pem");
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("--tlscert/--tlskey"), "{}", o.stderr);
    // TLS flags with a unix socket are a mistake, said as one.
    let sock = env.run_root.path().join("d.sock");
    let o = env.berth(&[
        "system",
        "service",
        "--tlscacert",
        &certs.path("berth-ca.pem"),
        &format!("unix://{}", sock.display()),
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("tcp:// only"), "{}", o.stderr);
    assert!(!sock.exists());
}

/// The docker CLIs with `--tlsverify` and a client certificate drive the
/// service over TCP (a hijacked `run --rm` included); a client without a
/// certificate, or with one from another CA, and plain HTTP are refused.
#[test]
fn tcp_with_tls_serves_clients_the_ca_signed() {
    let env = Env::new();
    let mut t = busybox_rootfs(&["sh", "echo", "cat", "sleep", "true"]);
    let img = import_image(&env, t.end(), "apisvc/bb:1");
    let certs = Certs::new();
    let svc = Service::start(&env, &certs);
    let client = tls_flags(&certs, Some("client"));

    for bin in [DOCKER, DOCKER_NEW] {
        if bin == DOCKER_NEW && !Path::new(bin).exists() {
            continue;
        }
        let v = ok(svc.docker(
            bin,
            &client,
            &["version", "--format", "{{.Server.APIVersion}}"],
        ));
        assert_eq!(v.stdout.trim(), "1.41", "{bin}");
        // Attached, through the hijacked connection over TLS.
        let o = svc.docker(
            bin,
            &client,
            &["run", "--rm", img, "sh", "-c", "echo hi-over-tls; exit 3"],
        );
        assert_eq!(o.code, 3, "{bin}: {}", o.stderr);
        assert_eq!(o.stdout, "hi-over-tls\n", "{bin}");
    }
    let id = ok(svc.docker(
        DOCKER,
        &client,
        &["run", "-d", "--name", "tls-one", img, "sleep", "60"],
    ))
    .stdout
    .trim()
    .to_string();
    let ps = ok(svc.docker(
        DOCKER,
        &client,
        &["ps", "--no-trunc", "--format", "{{.ID}} {{.Names}}"],
    ));
    assert_eq!(ps.stdout.trim(), format!("{id} tls-one"));
    let st = ok(svc.docker(
        DOCKER,
        &client,
        &["inspect", "--format", "{{.State.Status}}", "tls-one"],
    ));
    assert_eq!(st.stdout.trim(), "running");
    // berth's own CLI sees the same container.
    let mine = env.berth(&["ps", "-q", "--no-trunc"]).ok();
    assert_eq!(mine.stdout.trim(), id);
    ok(svc.docker(DOCKER, &client, &["rm", "-f", "tls-one"]));

    // No client certificate: the handshake fails, nothing is served.
    let o = svc.docker(DOCKER, &tls_flags(&certs, None), &["ps"]);
    assert_ne!(
        o.code, 0,
        "served without a client certificate: {}",
        o.stdout
    );
    let o = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            &certs.path("berth-ca.pem"),
        ])
        .arg(format!("https://127.0.0.1:{}/_ping", svc.port))
        .output()
        .expect("run curl");
    assert!(
        !o.status.success(),
        "curl without a certificate got {:?}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(o.stdout.is_empty());
    // A certificate from another CA.
    let o = svc.docker(DOCKER, &tls_flags(&certs, Some("stranger")), &["ps"]);
    assert_ne!(o.code, 0, "served a stranger: {}", o.stdout);
    // Plain HTTP gets no HTTP answer.
    let mut s = TcpStream::connect(("127.0.0.1", svc.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP answered: {:?}",
        String::from_utf8_lossy(&got)
    );
    // And the service still serves the right client after all that.
    let o = ok(svc.docker(DOCKER, &client, &["ps", "-aq"]));
    assert_eq!(o.stdout.trim(), "");
}

/// One GET on a fresh connection to the unix socket `sock`: the body.
fn get_unix(sock: &Path, path: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "GET {path}: {out}");
    out.split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string()
}

/// The service keeps an engine per worker thread; a store removed and
/// made again under it is opened anew, not read from the old database.
#[test]
fn a_store_made_again_under_the_service_is_seen() {
    let env = Env::new();
    let mut t = busybox_rootfs(&["true"]);
    let img = import_image(&env, t.end(), "apisvc/bb:1");
    let sock = env.run_root.path().join("d.sock");
    let child = env
        .cmd()
        .args(["system", "service", "--time", "0"])
        .arg(format!("unix://{}", sock.display()))
        .stdout(Stdio::null())
        .spawn()
        .expect("start berth system service");
    // Stopped however the test ends.
    let _svc = Stop(child);
    let t0 = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the service did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    env.berth(&["create", "--name", "old-one", img, "true"])
        .ok();
    // Every worker thread the service may use has seen the old store.
    for _ in 0..20 {
        assert!(get_unix(&sock, "/v1.41/containers/json?all=1").contains("old-one"));
    }
    // The store goes (a created container has nothing mounted) and an
    // empty one is made in its place.
    std::fs::remove_dir_all(env.root.path()).unwrap();
    std::fs::create_dir(env.root.path()).unwrap();
    env.berth(&["ps", "-a"]).ok();
    for _ in 0..20 {
        let list = get_unix(&sock, "/v1.41/containers/json?all=1");
        assert_eq!(list.trim(), "[]", "the old store is still read");
    }
}

/// A service stopped (and waited for) on drop.
struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        // SAFETY: kill on the pid of the child this test started.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}
