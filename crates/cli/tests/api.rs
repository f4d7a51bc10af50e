//! `berth system service`: Docker's Engine API driven by real clients
//! (Debian's docker CLI 20.10, a docker CLI 28.x where the machine has
//! one, the Python Docker SDK) and by raw HTTP for the error cases. Each
//! test starts its own service on a socket in its Env's run root; dockerd
//! is never started.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const DOCKER: &str = "/usr/bin/docker";
const DOCKER_NEW: &str = "/usr/local/bin/docker";

/// A service on a private socket, stopped (and waited for) on drop.
struct Service {
    child: Child,
    sock: PathBuf,
    /// DOCKER_CONFIG: the clients' config stays out of the host's.
    config: tempfile::TempDir,
}

impl Service {
    fn start(env: &Env) -> Service {
        let sock = env.run_root.path().join("docker.sock");
        let child = common::start_api_service(env.cmd(), &sock);
        Service {
            child,
            sock,
            config: tempfile::tempdir().unwrap(),
        }
    }

    /// The service inside `w`'s host network namespace.
    fn start_in(w: &common::world::World) -> Service {
        let sock = w.env.run_root.path().join("docker.sock");
        let child = common::start_api_service(w.berth_cmd(), &sock);
        Service {
            child,
            sock,
            config: tempfile::tempdir().unwrap(),
        }
    }

    fn docker_with(&self, bin: &str, args: &[&str], stdin: Option<&[u8]>) -> Out {
        self.docker_as(self.config.path(), bin, args, stdin)
    }

    /// The docker CLI with the client config in `config`.
    fn docker_as(&self, config: &Path, bin: &str, args: &[&str], stdin: Option<&[u8]>) -> Out {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing (apt-get install docker.io)"
        );
        let mut c = Command::new(bin);
        c.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut ch = c.spawn().expect("run docker");
        let mut i = ch.stdin.take().unwrap();
        if let Some(d) = stdin {
            i.write_all(d).unwrap();
        }
        drop(i);
        let o: Output = ch.wait_with_output().unwrap();
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn docker(&self, args: &[&str]) -> Out {
        self.docker_with(DOCKER, args, None)
    }

    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        http(&self.sock, method, path, body)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// One request on a fresh connection to `sock`: status and body.
fn http(sock: &Path, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    http_with(sock, method, path, &[], body)
}

/// One request with extra header lines (`Name: value`).
fn http_with(
    sock: &Path,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> (u16, String) {
    {
        let mut s = UnixStream::connect(sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        let _ = s.write_all(body);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP answer to {method} {path}: {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (status, body)
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

fn image(env: &Env) -> &'static str {
    let mut t = busybox_rootfs(&["sh", "echo", "cat", "sleep", "true", "pwd"]);
    import_image(env, t.end(), "api/bb:1")
}

/// The docker CLI's everyday commands: run -d and run --rm (attached,
/// its exit code and stdin), ps, logs, inspect, stop, rm, images, volumes,
/// pull from a registry; what they show is what berth's CLI shows.
#[test]
fn docker_cli_drives_berth() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);

    // run -d, then the same container seen by both.
    let id = ok(svc.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-e",
        "A=1",
        "-l",
        "k=v",
        img,
        "sh",
        "-c",
        "echo out; echo err >&2; echo $A; sleep 100",
    ]))
    .stdout
    .trim()
    .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let berth_ps = env.berth(&["ps", "-q", "--no-trunc"]).ok().stdout;
    assert!(berth_ps.contains(&id), "{berth_ps}");
    let ps = ok(svc.docker(&[
        "ps",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Names}} {{.Labels}}",
    ]))
    .stdout;
    assert!(ps.contains(&format!("{id} web k=v")), "{ps}");
    let t = Instant::now();
    loop {
        let logs = svc.docker(&["logs", "web"]);
        if logs.stdout == "out\n1\n" && logs.stderr == "err\n" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "logs: {:?} {:?}",
            logs.stdout,
            logs.stderr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ours: serde_json::Value =
        serde_json::from_str(&ok(svc.docker(&["inspect", "web"])).stdout).unwrap();
    let berths: serde_json::Value =
        serde_json::from_str(&env.berth(&["inspect", "web"]).ok().stdout).unwrap();
    assert_eq!(ours[0]["Id"], berths[0]["Id"]);
    assert_eq!(ours[0]["Name"], "/web");
    assert_eq!(ours[0]["State"]["Running"], true);
    assert_eq!(ours[0]["Config"]["Labels"]["k"], "v");

    // --ipc container:web (HostConfig.IpcMode): web's /dev/shm is shared
    // both ways; Docker's `shareable` is accepted.
    let o = ok(svc.docker(&[
        "run",
        "--rm",
        "--ipc",
        "container:web",
        img,
        "sh",
        "-c",
        "echo joined > /dev/shm/j; cat /dev/shm/w 2>/dev/null; true",
    ]));
    assert_eq!(o.stdout, "");
    let o = ok(svc.docker(&["exec", "web", "cat", "/dev/shm/j"]));
    assert_eq!(o.stdout, "joined\n");
    ok(svc.docker(&["exec", "web", "sh", "-c", "echo web > /dev/shm/w"]));
    let o = ok(svc.docker(&[
        "run",
        "--rm",
        "--ipc",
        "container:web",
        img,
        "cat",
        "/dev/shm/w",
    ]));
    assert_eq!(o.stdout, "web\n");
    ok(svc.docker(&["run", "--rm", "--ipc", "shareable", img, "true"]));

    // exec: output, exit code, stdin, a missing command, detached.
    let o = svc.docker(&["exec", "web", "sh", "-c", "echo in; echo e >&2; exit 5"]);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (5, "in\n", "e\n")
    );
    let o = svc.docker_with(DOCKER, &["exec", "-i", "web", "cat"], Some(b"to exec\n"));
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "to exec\n"),
        "{}",
        o.stderr
    );
    assert_eq!(svc.docker(&["exec", "web", "nosuchcmd"]).code, 127);
    ok(svc.docker(&["exec", "-d", "web", "sh", "-c", "echo bg > /tmp/f"]));
    let t = Instant::now();
    while env.berth(&["exec", "web", "cat", "/tmp/f"]).stdout != "bg\n" {
        assert!(t.elapsed() < Duration::from_secs(10), "exec -d did not run");
        std::thread::sleep(Duration::from_millis(50));
    }

    // exec -t: a terminal, and the exit code.
    let o = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{DOCKER} exec -t web sh -c 'test -t 1 && echo isatty; exit 7'"
        ))
        .arg("/dev/null")
        .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env("DOCKER_CONFIG", svc.config.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(7),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("isatty"), "{out}");

    // top, pause, unpause, rename.
    let top = ok(svc.docker(&["top", "web"])).stdout;
    assert!(top.contains("PID") && top.contains("sleep 100"), "{top}");
    ok(svc.docker(&["pause", "web"]));
    let st = ok(svc.docker(&["inspect", "-f", "{{.State.Status}}", "web"])).stdout;
    assert_eq!(st.trim(), "paused");
    ok(svc.docker(&["unpause", "web"]));
    ok(svc.docker(&["rename", "web", "web2"]));
    assert!(env
        .berth(&["ps", "--format", "{{.Names}}"])
        .ok()
        .stdout
        .contains("web2"));
    ok(svc.docker(&["rename", "web2", "web"]));

    // A second container of the name: Docker's 409 and message.
    let dup = svc.docker(&["run", "-d", "--name", "web", img, "true"]);
    assert_ne!(dup.code, 0);
    assert!(
        dup.stderr
            .contains("The container name \"/web\" is already in use"),
        "{}",
        dup.stderr
    );
    // A running container is not removed without -f.
    let rm = svc.docker(&["rm", "web"]);
    assert!(
        rm.code != 0 && rm.stderr.contains("cannot remove a running container"),
        "{}",
        rm.stderr
    );
    ok(svc.docker(&["stop", "-t", "1", "web"]));
    let st = ok(svc.docker(&["inspect", "-f", "{{.State.Status}}", "web"])).stdout;
    assert_eq!(st.trim(), "exited");
    ok(svc.docker(&["rm", "web"]));
    assert!(!env
        .berth(&["ps", "-aq", "--no-trunc"])
        .ok()
        .stdout
        .contains(&id));

    // Unknown containers: Docker's words.
    let o = svc.docker(&["stop", "nosuch"]);
    assert!(
        o.code != 0 && o.stderr.contains("No such container: nosuch"),
        "{}",
        o.stderr
    );

    // Attached runs: output, exit code, stdin, --rm.
    let o = svc.docker(&[
        "run",
        "--rm",
        img,
        "sh",
        "-c",
        "echo hello; echo oops >&2; exit 3",
    ]);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (3, "hello\n", "oops\n")
    );
    let o = svc.docker_with(
        DOCKER,
        &["run", "--rm", "-i", img, "cat"],
        Some(b"piped in\n"),
    );
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "piped in\n"),
        "{}",
        o.stderr
    );
    assert_eq!(
        env.berth(&["ps", "-aq"]).ok().stdout,
        "",
        "--rm containers are gone"
    );

    // -t: the container gets a terminal (the client's is script(1)'s pty).
    let o = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{DOCKER} run --rm -t {img} sh -c 'test -t 1 && echo isatty'"
        ))
        .arg("/dev/null")
        .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env("DOCKER_CONFIG", svc.config.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("isatty"),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // -it: typed input reaches the container through its terminal, and
    // its exit code is the CLI's.
    let mut ch = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{DOCKER} run --rm -it {img} sh -c 'read x; echo got-$x; test -t 0 && echo in-tty; exit 6'"
        ))
        .arg("/dev/null")
        .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env("DOCKER_CONFIG", svc.config.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ch.stdin.as_mut().unwrap().write_all(b"abc\n").unwrap();
    let o = ch.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.code() == Some(6) && out.contains("got-abc") && out.contains("in-tty"),
        "{:?} {out} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );

    // Resources and options reach the spec as `berth run`'s flags do.
    let o = ok(svc.docker(&[
        "run",
        "--rm",
        "-w",
        "/tmp",
        "-e",
        "FOO=bar",
        "--memory",
        "64m",
        img,
        "sh",
        "-c",
        "echo $FOO; pwd",
    ]));
    assert_eq!(o.stdout, "bar\n/tmp\n");
    let o = svc.docker(&["run", "--rm", "--link", "a:b", img, "true"]);
    assert!(
        o.code != 0 && o.stderr.contains("HostConfig.Links"),
        "{}",
        o.stderr
    );

    // Volumes.
    ok(svc.docker(&["volume", "create", "data"]));
    ok(svc.docker(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        img,
        "sh",
        "-c",
        "echo kept > /data/f",
    ]));
    let o = ok(svc.docker(&["run", "--rm", "-v", "data:/data", img, "cat", "/data/f"]));
    assert_eq!(o.stdout, "kept\n");
    assert_eq!(ok(svc.docker(&["volume", "ls", "-q"])).stdout, "data\n");
    ok(svc.docker(&["volume", "rm", "data"]));
    assert_eq!(env.berth(&["volume", "ls", "-q"]).ok().stdout, "");

    // Networks (recorded only: no bridge is made without a container).
    ok(svc.docker(&["network", "create", "apinet"]));
    let ls = ok(svc.docker(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"])).stdout;
    assert!(ls.contains("apinet bridge"), "{ls}");
    assert!(env.berth(&["network", "ls"]).ok().stdout.contains("apinet"));
    let o = svc.docker(&["network", "rm", "bridge"]);
    assert!(
        o.code != 0 && o.stderr.contains("pre-defined network"),
        "{}",
        o.stderr
    );
    ok(svc.docker(&["network", "rm", "apinet"]));
    assert!(!env.berth(&["network", "ls"]).ok().stdout.contains("apinet"));

    // Images: list, history, save (loaded back by berth), and a pull from
    // the test registry.
    let imgs = ok(svc.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])).stdout;
    assert!(imgs.contains("api/bb:1"), "{imgs}");
    let h = ok(svc.docker(&["history", img])).stdout;
    assert!(h.contains("berth import"), "{h}");
    let saved = env.root.path().join("saved.tar");
    ok(svc.docker(&["save", "-o", saved.to_str().unwrap(), img]));
    let loaded = Env::new();
    let o = loaded.berth(&["load", "-i", saved.to_str().unwrap()]).ok();
    assert!(o.stdout.contains("api/bb:1"), "{}", o.stdout);
    let o = svc.docker(&["save", "no/such:1"]);
    assert!(
        o.code != 0 && o.stderr.contains("No such image"),
        "{}",
        o.stderr
    );
    let reg = registry();
    push_image("t/api", "v1", &[base_layer()], Comp::Gzip, "amd64");
    let name = format!("{}/t/api:v1", reg.addr);
    let o = ok(svc.docker(&["pull", &name]));
    assert!(o.stdout.contains("Downloaded newer image"), "{}", o.stdout);
    assert!(env.berth(&["images"]).ok().stdout.contains("t/api"));
    let o = svc.docker(&["pull", &format!("{}/t/nosuch:v1", reg.addr)]);
    assert!(o.code != 0, "{}", o.stdout);
    let o = ok(svc.docker(&["run", "--rm", &name, "cat", "/etc/motd"]));
    assert_eq!(o.stdout, "base\n");
    // push: as another name, then pulled back from the registry.
    let pushed = format!("{}/t/pushed:v2", reg.addr);
    ok(svc.docker(&["tag", &name, &pushed]));
    let o = ok(svc.docker(&["push", &pushed])).stdout;
    assert!(o.contains("v2: digest: sha256:"), "{o}");
    ok(svc.docker(&["rmi", &pushed]));
    let o = ok(svc.docker(&["pull", &pushed])).stdout;
    assert!(o.contains("Downloaded newer image"), "{o}");
    ok(svc.docker(&["rmi", &pushed]));
    let o = svc.docker(&["push", &format!("{}/t/notlocal:v1", reg.addr)]);
    assert!(
        o.code != 0 && o.stderr.contains("no such image in the local store"),
        "{}",
        o.stderr
    );
    ok(svc.docker(&["rmi", &name]));

    // The monitors the service started and that ended are reaped: no
    // zombie children are left.
    let zombies = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|st| {
                // pid (comm) state ppid ...
                let rest = st.rsplit_once(')').map_or("", |(_, r)| r);
                let mut f = rest.split_whitespace();
                f.next() == Some("Z") && f.next() == Some(svc.pid().to_string().as_str())
            })
            .collect::<Vec<_>>()
    };
    let t = Instant::now();
    while !zombies().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the service leaves zombie children: {:?}",
            zombies()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The current CLI negotiates the version down and does the same.
    if Path::new(DOCKER_NEW).exists() {
        let o = svc.docker_with(DOCKER_NEW, &["run", "--rm", img, "echo", "from 28"], None);
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (0, "from 28\n"),
            "{}",
            o.stderr
        );
        let v = ok(svc.docker_with(
            DOCKER_NEW,
            &["version", "--format", "{{.Server.APIVersion}}"],
            None,
        ));
        assert_eq!(v.stdout.trim(), "1.41");
    }
}

/// Bad requests get Docker's statuses and bodies, cost bounded memory, and
/// never take the service down; a client leaving a followed log leaves
/// nothing behind.
#[test]
fn api_errors_and_bad_input() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);

    let (st, body) = svc.http("GET", "/_ping", b"");
    assert_eq!((st, body.as_str()), (200, "OK"));
    let (st, body) = svc.http("GET", "/v1.41/containers/nosuch/json", b"");
    assert_eq!(st, 404);
    assert_eq!(body, r#"{"message":"No such container: nosuch"}"#);
    let (st, body) = svc.http("POST", "/v1.41/containers/create", b"{\"Image\": ");
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("invalid JSON"), "{body}");
    let (st, body) = svc.http(
        "POST",
        "/v1.41/containers/create",
        br#"{"Image":"api/bb:1","Cmd":"true","HostConfig":{"Memory":"lots"}}"#,
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("HostConfig.Memory"), "{body}");
    let (st, body) = svc.http(
        "POST",
        "/v1.41/containers/create",
        br#"{"Image":"no/such:image"}"#,
    );
    assert_eq!(st, 404, "{body}");
    assert!(body.contains("No such image"), "{body}");
    let (st, _) = svc.http(
        "POST",
        "/v1.41/containers/create?name=one",
        br#"{"Image":"api/bb:1","Cmd":["true"]}"#,
    );
    assert_eq!(st, 201);
    let (st, body) = svc.http(
        "POST",
        "/v1.41/containers/create?name=one",
        br#"{"Image":"api/bb:1","Cmd":["true"]}"#,
    );
    assert_eq!(st, 409, "{body}");
    let (st, body) = svc.http("GET", "/v9.99/info", b"");
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("too new"), "{body}");
    let (st, _) = svc.http("GET", "/v1.41/no/such/endpoint", b"");
    assert_eq!(st, 404);

    // A body over the cap: 413, not read whole.
    let big = vec![b' '; 2 << 20];
    let (st, body) = svc.http("POST", "/v1.41/containers/create", &big);
    assert_eq!(st, 413, "{body}");

    // A client that never finishes its headers does not hold others up.
    let mut slow = UnixStream::connect(&svc.sock).unwrap();
    slow.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let (st, _) = svc.http("GET", "/_ping", b"");
    assert_eq!(st, 200);
    drop(slow);

    // Following logs, then leaving: the service's reader of the log stops
    // (no fd of the service is left on the container's log or watching it).
    let id = ok(svc.docker(&[
        "run",
        "-d",
        img,
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.1; done",
    ]))
    .stdout
    .trim()
    .to_string();
    let following = || {
        std::fs::read_dir(format!("/proc/{}/fd", svc.pid()))
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter(|l| {
                let l = l.to_string_lossy();
                l.contains(&id) || l.contains("inotify") || l.contains("pidfd")
            })
            .count()
    };
    // `docker run -d` asked for a wait and left: that wait is over too (it
    // held a thread and the monitor's pidfd until the container's end).
    let t = Instant::now();
    while following() > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the wait of a client that left went on"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    {
        let mut s = UnixStream::connect(&svc.sock).unwrap();
        write!(
            s,
            "GET /v1.41/containers/{id}/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .unwrap();
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("tick") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        // Past the lines already written, the follow watches the log.
        let t = Instant::now();
        while following() == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the follow never watched the log"
            );
            let _ = s.read(&mut buf);
        }
    }
    let t = Instant::now();
    while following() > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the follow went on after its client left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(svc.docker(&["rm", "-f", &id]));

    // Still serving after all of it.
    let (st, _) = svc.http("HEAD", "/_ping", b"");
    assert_eq!(st, 200);
}

/// The Python Docker SDK's scripted round.
#[test]
fn python_sdk_round() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="unix://{sock}", version="auto")
assert c.ping()
ctr = c.containers.run("{img}", ["sh", "-c", "echo sdk"], detach=True, name="py", labels={{"from": "sdk"}})
assert ctr.wait()["StatusCode"] == 0
assert ctr.logs() == b"sdk\n", ctr.logs()
assert [x.name for x in c.containers.list(all=True, filters={{"label": "from=sdk"}})] == ["py"]
ctr.remove()
try:
    c.containers.get("py")
    raise SystemExit("removed container still found")
except docker.errors.NotFound:
    pass
assert any("api/bb:1" in t for i in c.images.list() for t in i.tags)
print("sdk ok")
"#,
        sock = svc.sock.display()
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("sdk ok"),
        "python SDK failed (pip install docker): {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `--time`: the service exits once idle that long (removing its socket);
/// under socket activation it serves the socket systemd hands it (here
/// systemd-socket-activate, which execs it on the first connection) and
/// leaves that socket alone.
#[test]
fn service_idles_out_and_takes_an_activated_socket() {
    let env = Env::new();
    let sock = env.run_root.path().join("idle.sock");
    let mut child = env
        .cmd()
        .args(["system", "service", "--time", "1"])
        .arg(format!("unix://{}", sock.display()))
        .spawn()
        .unwrap();
    let t = Instant::now();
    while UnixStream::connect(&sock).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the service did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(http(&sock, "GET", "/_ping", b"").0, 200);
    let t = Instant::now();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the service did not exit when idle"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(st.success(), "{st:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "it exited before its idle time"
    );
    assert!(!sock.exists(), "the service removes the socket it made");

    let activate = "/usr/bin/systemd-socket-activate";
    assert!(
        Path::new(activate).exists(),
        "{activate} is missing (package systemd)"
    );
    let asock = env.run_root.path().join("activated.sock");
    let mut child = Command::new(activate)
        .arg("-l")
        .arg(&asock)
        .arg(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(env.root.path())
        .arg("--run-root")
        .arg(env.run_root.path())
        .args([
            "system",
            "service",
            "--time",
            "1",
            "unix:///nonexistent/not-used.sock",
        ])
        .env("BERTH_DEFAULT_NETWORK", "none")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !asock.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no activation socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (st, body) = http(&asock, "GET", "/v1.41/version", b"");
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"ApiVersion\":\"1.41\""), "{body}");
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the activated service did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        asock.exists(),
        "the activated socket is systemd's: left in place"
    );
}

/// Threads of `pid` in a sleep call: the events follower's poll.
fn sleeping_threads(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            let s = std::fs::read_to_string(t.path().join("syscall")).unwrap_or_default();
            let nr: i64 = s
                .split(' ')
                .next()
                .unwrap_or("")
                .trim()
                .parse()
                .unwrap_or(-1);
            nr == libc::SYS_clock_nanosleep || nr == libc::SYS_nanosleep
        })
        .count()
}

/// `docker events`: past events between since and until, filtered, in
/// Docker's shape; a follower sees new events, and a client that leaves
/// frees the service's follower at once.
#[test]
fn docker_events() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    // Follow, filtered to one container, from now on.
    let mut follow = Command::new(DOCKER)
        .args([
            "events",
            "--format",
            "{{json .}}",
            "--filter",
            "container=ev",
        ])
        .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env("DOCKER_CONFIG", svc.config.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while sleeping_threads(svc.pid()) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no events follower in the service"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(svc.docker(&["run", "--name", "other", img, "true"]));
    ok(svc.docker(&["run", "--name", "ev", "-l", "k=v", img, "true"]));
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let mut lines = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut seen = Vec::new();
    while !seen.contains(&"die".to_string()) {
        let mut l = String::new();
        use std::io::BufRead;
        assert!(
            lines.read_line(&mut l).unwrap() > 0,
            "events ended: {seen:?}"
        );
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["Actor"]["Attributes"]["name"], "ev", "{l}");
        assert_eq!(v["Actor"]["Attributes"]["k"], "v", "{l}");
        assert_eq!(v["Type"], "container", "{l}");
        seen.push(v["Action"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["create", "start", "die"]);

    // The client leaves while no event comes: the follower ends within
    // its poll (before, it slept on until the next event).
    // SAFETY: kill on the pid of the child this test started.
    unsafe { libc::kill(follow.id() as i32, libc::SIGKILL) };
    let _ = follow.wait();
    let t = Instant::now();
    while sleeping_threads(svc.pid()) > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "the events follower outlived its client"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Past events between since and until (this waits for until), by
    // filters and by type.
    let o = ok(svc.docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "event=create",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]))
    .stdout;
    assert_eq!(o, "container create other\ncontainer create ev\n");
    let o = ok(svc.docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "container=other",
        "--filter",
        "event=die",
        "--format",
        "{{.Actor.Attributes.exitCode}}",
    ]))
    .stdout;
    assert_eq!(o, "0\n");
    let (st, body) = svc.http(
        "GET",
        "/v1.41/events?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D",
        b"",
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("not a filter of events"), "{body}");
}

/// `docker cp` both ways (archive PUT, HEAD, GET), for a running and a
/// stopped container; what was copied in is what the container and
/// berth's own cp see.
#[test]
fn docker_cp_both_ways() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    std::fs::write(h.join("f.txt"), "one\n").unwrap();
    std::fs::create_dir(h.join("d")).unwrap();
    std::fs::write(h.join("d/inner"), "two\n").unwrap();
    let hs = |p: &str| h.join(p).display().to_string();

    ok(svc.docker(&["run", "-d", "--name", "cp", img, "sleep", "100"]));
    // Into an existing directory, and to a new name.
    ok(svc.docker(&["cp", &hs("f.txt"), "cp:/tmp/"]));
    ok(svc.docker(&["cp", &hs("d"), "cp:/tmp/d2"]));
    let o = ok(svc.docker(&["exec", "cp", "cat", "/tmp/f.txt", "/tmp/d2/inner"])).stdout;
    assert_eq!(o, "one\ntwo\n");
    // Out: a directory, a file to a new name, with both CLIs.
    ok(svc.docker(&["cp", "cp:/tmp/d2", &hs("out")]));
    assert_eq!(
        std::fs::read_to_string(h.join("out/inner")).unwrap(),
        "two\n"
    );
    ok(svc.docker(&["cp", "cp:/tmp/f.txt", &hs("g.txt")]));
    assert_eq!(std::fs::read_to_string(h.join("g.txt")).unwrap(), "one\n");
    if Path::new(DOCKER_NEW).exists() {
        ok(svc.docker_with(DOCKER_NEW, &["cp", "cp:/tmp/f.txt", &hs("n.txt")], None));
        assert_eq!(std::fs::read_to_string(h.join("n.txt")).unwrap(), "one\n");
    }
    // HEAD: the stat header, as Docker encodes it.
    let mut s = UnixStream::connect(&svc.sock).unwrap();
    write!(
        s,
        "HEAD /v1.41/containers/cp/archive?path=/tmp/d2 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = String::new();
    s.read_to_string(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-docker-container-path-stat: "),
        "{head}"
    );
    // A missing path: Docker's 404 and words.
    let o = svc.docker(&["cp", "cp:/nope", &hs("x")]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("No such container:path: cp:/nope"),
        "{}",
        o.stderr
    );
    let (st, _) = svc.http("GET", "/v1.41/containers/nosuch/archive?path=/", b"");
    assert_eq!(st, 404);
    let (st, _) = svc.http("GET", "/v1.41/containers/cp/archive", b"");
    assert_eq!(st, 400);

    // What it changed, its filesystem, new limits (applied at once).
    let diff = ok(svc.docker(&["diff", "cp"])).stdout;
    assert!(
        diff.contains("A /tmp/f.txt\n") && diff.contains("C /tmp\n"),
        "{diff}"
    );
    let tar = ok(svc.docker(&["export", "-o", &hs("fs.tar"), "cp"]));
    drop(tar);
    let list = Command::new("tar")
        .arg("tf")
        .arg(h.join("fs.tar"))
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.lines()
            .any(|l| l.trim_start_matches("./") == "tmp/d2/inner"),
        "{list}"
    );
    assert!(
        list.lines().any(|l| l.trim_start_matches("./") == "bin/sh"),
        "{list}"
    );
    ok(svc.docker(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "50",
        "cp",
    ]));
    let o = ok(svc.docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
        "cp",
    ]))
    .stdout;
    assert_eq!(o.trim(), "67108864 50");
    let o = env
        .berth(&["inspect", "-f", "{{.HostConfig.Memory}}", "cp"])
        .ok()
        .stdout;
    assert_eq!(o.trim(), "67108864");
    let o = svc.docker(&["update", "--kernel-memory", "8m", "cp"]);
    assert!(
        o.code != 0 && o.stderr.contains("KernelMemory"),
        "{}",
        o.stderr
    );

    // A stopped container: copied in, seen by berth's cp.
    ok(svc.docker(&["stop", "-t", "0", "cp"]));
    ok(svc.docker(&["cp", &hs("f.txt"), "cp:/f3"]));
    env.berth(&["cp", "cp:/f3", &hs("b.txt")]).ok();
    assert_eq!(std::fs::read_to_string(h.join("b.txt")).unwrap(), "one\n");
    ok(svc.docker(&["rm", "cp"]));

    // save, remove, load: the image is back under its name.
    ok(svc.docker(&["tag", img, "saved:1"]));
    ok(svc.docker(&["save", "-o", &hs("saved.tar"), "saved:1"]));
    ok(svc.docker(&["rmi", "saved:1"]));
    let o = ok(svc.docker(&["load", "-i", &hs("saved.tar")])).stdout;
    assert!(o.contains("Loaded image: saved:1"), "{o}");
    let o = ok(svc.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])).stdout;
    assert!(o.lines().any(|l| l == "saved:1"), "{o}");
    let o = svc.docker_with(DOCKER, &["load"], Some(b"not a tarball"));
    assert_ne!(o.code, 0, "{}", o.stdout);
}

/// `docker stats`: one-shot and streamed documents in Docker's schema,
/// read by the docker CLI as it reads dockerd's.
#[test]
fn docker_stats() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);
    ok(svc.docker(&["run", "-d", "--name", "st", img, "sleep", "100"]));
    let o = ok(svc.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemUsage}}",
        "st",
    ]))
    .stdout;
    let f: Vec<&str> = o.split_whitespace().collect();
    assert_eq!(f[..2], ["st", "1"], "{o}");
    assert!(f[2] != "0B", "no memory use read: {o}");
    let (st, body) = svc.http(
        "GET",
        "/v1.41/containers/st/stats?stream=false&one-shot=true",
        b"",
    );
    assert_eq!(st, 200, "{body}");
    // Chunked, as dockerd's: the document is the line that is JSON.
    let doc = body.lines().find(|l| l.starts_with('{')).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(doc).unwrap();
    assert_eq!(v["name"], "/st");
    assert_eq!(v["pids_stats"]["current"], 1);
    assert!(
        v["cpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert!(v["memory_stats"]["usage"].as_u64().unwrap() > 0, "{v}");
    // Streamed: a document a second, each with the previous as precpu.
    let mut s = UnixStream::connect(&svc.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /v1.41/containers/st/stats HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let docs_in = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| l.starts_with('{') && l.trim_end().ends_with('}'))
            .count()
    };
    while docs_in(&got) < 2 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    // (A chunk size of digits alone is JSON too: documents are objects.)
    let docs: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .filter(|v| v.is_object())
        .collect();
    assert!(docs.len() >= 2, "{text}");
    assert_eq!(docs[1]["preread"], docs[0]["read"], "{text}");
    drop(s);
    let (st, _) = svc.http("GET", "/v1.41/containers/nosuch/stats?stream=false", b"");
    assert_eq!(st, 404);
    ok(svc.docker(&["rm", "-f", "st"]));
}

/// Networks (connect, disconnect, prune), volume and image prune, in a
/// network namespace of the test's own.
#[test]
fn docker_networks_and_prunes() {
    let w = common::world::World::new();
    let svc = Service::start_in(&w);
    let img = w.image;
    ok(svc.docker(&["network", "create", "n1"]));
    // As dockerd: no option the creator did not give (compose compares).
    let o = ok(svc.docker(&["network", "inspect", "-f", "{{json .Options}}", "n1"])).stdout;
    assert_eq!(o.trim(), "{}");
    // A bridge name the creator chose is shown, even one that looks like
    // berth's own choice.
    ok(svc.docker(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.name=berth77",
        "n0",
    ]));
    let o = ok(svc.docker(&["network", "inspect", "-f", "{{json .Options}}", "n0"])).stdout;
    assert_eq!(o.trim(), r#"{"com.docker.network.bridge.name":"berth77"}"#);
    ok(svc.docker(&["network", "rm", "n0"]));
    ok(svc.docker(&["run", "-d", "--name", "ca", img, "sleep", "100"]));
    ok(svc.docker(&["network", "connect", "--alias", "web", "n1", "ca"]));
    let nets = |c: &str| {
        ok(svc.docker(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            c,
        ]))
        .stdout
    };
    assert!(nets("ca").contains("n1 "), "{}", nets("ca"));
    let berth_view = w
        .berth(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "ca"])
        .ok()
        .stdout;
    assert!(berth_view.contains("\"n1\""), "{berth_view}");
    // Connected at once: the interface is in the running container.
    let ip = ok(svc.docker(&["exec", "ca", "ip", "-o", "addr"])).stdout;
    assert_eq!(ip.matches(" inet ").count(), 3, "{ip}");
    // docker ps: .Networks from the list's NetworkSettings, and the
    // network= filter.
    let o = ok(svc.docker(&[
        "ps",
        "--filter",
        "network=n1",
        "--format",
        "{{.Names}} {{.Networks}}",
    ]));
    let mut line: Vec<&str> = o
        .stdout
        .split([' ', ',', '\n'])
        .filter(|s| !s.is_empty())
        .collect();
    line.sort();
    assert_eq!(line, ["bridge", "ca", "n1"], "{}", o.stdout);
    // In use: not pruned.
    ok(svc.docker(&["network", "prune", "-f"]));
    assert!(
        !ok(svc.docker(&["network", "ls", "-q", "--filter", "name=n1"]))
            .stdout
            .trim()
            .is_empty()
    );
    ok(svc.docker(&["network", "disconnect", "n1", "ca"]));
    assert!(!nets("ca").contains("n1 "), "{}", nets("ca"));
    let o = ok(svc.docker(&["network", "prune", "-f"])).stdout;
    assert!(o.contains("n1"), "{o}");
    assert!(!w.berth(&["network", "ls"]).ok().stdout.contains("n1"));
    let o = svc.docker(&["network", "connect", "nosuch", "ca"]);
    assert_ne!(o.code, 0);
    // Docker's prune filters: until, label, label!.
    ok(svc.docker(&["network", "create", "--label", "env=t", "n2"]));
    ok(svc.docker(&["network", "create", "n3"]));
    let o = ok(svc.docker(&["network", "prune", "-f", "--filter", "until=24h"])).stdout;
    assert!(!o.contains("n2") && !o.contains("n3"), "{o}");
    let o = ok(svc.docker(&["network", "prune", "-f", "--filter", "label=env=t"])).stdout;
    assert!(o.contains("n2") && !o.contains("n3"), "{o}");
    let o = ok(svc.docker(&["network", "prune", "-f", "--filter", "label!=env"])).stdout;
    assert!(o.contains("n3"), "{o}");
    let (st, body) = svc.http(
        "POST",
        "/v1.41/networks/prune?filters=%7B%22dangling%22%3A%5B%22true%22%5D%7D",
        b"",
    );
    assert_eq!(st, 400, "{body}");

    // Volumes: an unused one goes (API 1.41: named too), a used one stays.
    ok(svc.docker(&["volume", "create", "idle"]));
    ok(svc.docker(&[
        "run",
        "-d",
        "--name",
        "cb",
        "-v",
        "busy:/data",
        img,
        "sleep",
        "100",
    ]));
    let o = ok(svc.docker(&["volume", "prune", "-f"])).stdout;
    assert!(o.contains("idle") && !o.contains("busy"), "{o}");
    assert_eq!(w.berth(&["volume", "ls", "-q"]).ok().stdout, "busy\n");

    // system df: what the CLI sums from the lists.
    let o = ok(svc.docker(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ]))
    .stdout;
    assert_eq!(
        o,
        "Images 1 1\nContainers 2 2\nLocal Volumes 1 1\nBuild Cache 0 0\n"
    );

    // Images: one without a name goes.
    ok(svc.docker(&["tag", img, "spare:1"]));
    let (st, body) = svc.http("POST", "/v1.41/images/prune", b"");
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"ImagesDeleted\":[]"), "{body}");
    // -a: every image no container uses; this one is used (by its tag too).
    let o = ok(svc.docker(&["image", "prune", "-a", "-f"])).stdout;
    assert!(!o.contains("deleted"), "{o}");
    assert!(ok(svc.docker(&["images"])).stdout.contains("spare"));

    // run -p, a bind -v and --network with the docker CLI: the published
    // port answers from outside the host namespace, with the bound file.
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "bound\n").unwrap();
    ok(svc.docker(&["network", "create", "n2"]));
    ok(svc.docker(&[
        "run",
        "-d",
        "--name",
        "pub",
        "--network",
        "n2",
        "-p",
        "8081:80",
        "-v",
        &format!("{}:/www:ro", www.path().display()),
        img,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]));
    let url = format!("http://{}:8081/", common::world::HOST4);
    let t = Instant::now();
    let body = loop {
        if let Some(b) = w.fetch_from("outside", &url) {
            break b;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{url} never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(body, "bound\n");
    let port = ok(svc.docker(&["port", "pub", "80"])).stdout;
    assert!(port.contains("0.0.0.0:8081"), "{port}");
    let nets = ok(svc.docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}",
        "pub",
    ]))
    .stdout;
    assert_eq!(nets.trim(), "n2");
    ok(svc.docker(&["rm", "-f", "pub"]));
    assert!(w.fetch_from("outside", &url).is_none());
    ok(svc.docker(&["network", "rm", "n2"]));

    // logs -f: the output as it comes, ended by the container's exit.
    ok(svc.docker(&[
        "run",
        "-d",
        "--name",
        "lf",
        img,
        "sh",
        "-c",
        "echo a; sleep 1; echo b",
    ]));
    let o = ok(svc.docker(&["logs", "-f", "lf"]));
    assert_eq!(o.stdout, "a\nb\n");
    ok(svc.docker(&["rm", "lf"]));
}

/// `docker build` (the classic builder's API, `POST /build`) with both
/// docker CLIs and the Python SDK: tags, build args, labels, -f, -q, a
/// failing RUN's exit code, and options berth's builder has no
/// equivalent of refused by name; the image is the one berth's CLI sees.
#[test]
fn docker_build_through_the_api() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    std::fs::write(
        c.join("Dockerfile"),
        format!(
            "FROM {img}\nARG X=default\nLABEL from=dockerfile\nCOPY f.txt /f.txt\nRUN echo \"x=$X\" > /x && cat /f.txt\nCMD [\"cat\", \"/x\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(c.join("f.txt"), "from the context\n").unwrap();
    std::fs::write(
        c.join("Other.df"),
        format!("FROM {img}\nRUN echo other > /o\n"),
    )
    .unwrap();
    std::fs::write(c.join("Fail.df"), format!("FROM {img}\nRUN exit 3\n")).unwrap();
    let cs = c.to_str().unwrap();

    let o = ok(svc.docker(&[
        "build",
        "-t",
        "built:1",
        "-t",
        "built:2",
        "--build-arg",
        "X=given",
        "--label",
        "l=v",
        cs,
    ]));
    assert!(
        o.stdout.contains("from the context") && o.stdout.contains("Successfully tagged built:1"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("Successfully built "), "{}", o.stdout);
    let o = ok(svc.docker(&["run", "--rm", "built:2"]));
    assert_eq!(o.stdout, "x=given\n");
    let o = ok(svc.docker(&[
        "inspect",
        "-f",
        "{{.Config.Labels.l}} {{.Config.Labels.from}}",
        "built:1",
    ]));
    assert_eq!(o.stdout.trim(), "v dockerfile");
    // The same image for berth's CLI.
    let ours = ok(svc.docker(&["images", "-q", "--no-trunc", "built:1"])).stdout;
    let berths = env
        .berth(&[
            "images",
            "-q",
            "--no-trunc",
            "--filter",
            "reference=built:1",
        ])
        .ok()
        .stdout;
    // (docker lists an id once per tag.)
    assert_eq!(ours.lines().next(), berths.lines().next());
    assert!(ours.trim().starts_with("sha256:"), "{ours}");

    // -q with another Dockerfile: the id alone, on stdout.
    let o = ok(svc.docker(&["build", "-q", "-f", &format!("{cs}/Other.df"), cs]));
    let id = o.stdout.trim();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "{:?} {}",
        o.stdout,
        o.stderr
    );
    let o = ok(svc.docker(&["run", "--rm", id, "cat", "/o"]));
    assert_eq!(o.stdout, "other\n");

    // A failing RUN: its exit code is the CLI's, the step is named.
    let o = svc.docker(&["build", "-f", &format!("{cs}/Fail.df"), cs]);
    assert_eq!(o.code, 3, "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("exited with code 3"), "{}", o.stderr);
    // An unsupported option: refused by name, nothing built.
    let o = svc.docker(&["build", "--memory", "64m", cs]);
    assert!(
        o.code != 0 && o.stderr.contains("memory=67108864"),
        "{}",
        o.stderr
    );
    // Not a tarball: a 400.
    let (st, body) = svc.http("POST", "/v1.41/build", b"FROM scratch\n");
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("not a tar"), "{body}");

    // The current CLI, with the classic builder.
    if Path::new(DOCKER_NEW).exists() {
        let mut cmd = Command::new(DOCKER_NEW);
        cmd.args(["build", "-t", "new:1", cs])
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
            .env("DOCKER_CONFIG", svc.config.path());
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let o = ok(svc.docker(&["run", "--rm", "new:1"]));
        assert_eq!(o.stdout, "x=default\n");
        // Without DOCKER_BUILDKIT: the service announces builder 1 in
        // /_ping, so the CLI takes the classic builder itself.
        let o = svc.docker_with(DOCKER_NEW, &["build", "-q", "-t", "new:2", cs], None);
        assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
        assert!(o.stdout.trim().starts_with("sha256:"), "{}", o.stdout);
    }

    // The Python SDK's images.build (it reads the id from the stream).
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="unix://{sock}", version="auto")
img, logs = c.images.build(path="{cs}", tag="py:1", buildargs={{"X": "py"}})
assert "py:1" in img.tags, img.tags
ctr = c.containers.run("py:1", detach=True)
assert ctr.wait()["StatusCode"] == 0
assert ctr.logs() == b"x=py\n", ctr.logs()
ctr.remove()
try:
    c.images.build(path="{cs}", dockerfile="Fail.df")
    raise SystemExit("a failing build succeeded")
except docker.errors.BuildError as e:
    assert "exited with code 3" in str(e), str(e)
print("sdk build ok")
"#,
        sock = svc.sock.display()
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("sdk build ok"),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A docker-registry that wants Basic credentials (htpasswd: testuser,
/// testpass), on loopback, stopped when dropped.
struct AuthRegistry {
    addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl AuthRegistry {
    fn start() -> AuthRegistry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: apt-get install docker-registry"
        );
        let dir = tempfile::tempdir().unwrap();
        // bcrypt (cost 4) of "testpass".
        std::fs::write(
            dir.path().join("htpasswd"),
            "testuser:$2b$04$s4Jk6es1YfM3a8bYi.sPH.bJK9WWcza2ZaaGQYPyBjUK/10.Sn71S\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\nauth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                dir.path().join("data").display(),
                dir.path().join("htpasswd").display()
            ),
        )
        .unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let t = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the registry did not come up on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        AuthRegistry {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that goes away mid-build cancels the build, as with dockerd:
/// no step starts after it left and nothing is tagged.
#[test]
fn a_build_whose_client_left_is_cancelled() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {img}\nRUN echo started; sleep 2\nRUN touch /second\n"),
    )
    .unwrap();
    let mut cli = Command::new(DOCKER)
        .args(["build", "-t", "gone:1", ctx.path().to_str().unwrap()])
        .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env("DOCKER_CONFIG", svc.config.path())
        .env("DOCKER_BUILDKIT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run docker build");
    // Once the first RUN has started, the client is killed.
    let mut out = std::io::BufReader::new(cli.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("started") {
        let mut l = String::new();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut l).unwrap() > 0,
            "the build ended before its first RUN: {seen}"
        );
        seen.push_str(&l);
    }
    cli.kill().unwrap();
    cli.wait().unwrap();
    drop(out);
    // Long past the time the build would have taken.
    std::thread::sleep(Duration::from_secs(5));
    let imgs = env.berth(&["images", "--format", "json"]).ok().stdout;
    assert!(
        !imgs.contains("gone:1"),
        "a cancelled build was tagged: {imgs}"
    );
    // The service is still there for the next client.
    assert_eq!(svc.http("GET", "/_ping", b"").0, 200);
}

/// `docker login` (`POST /auth`): the credentials are checked with a real
/// registry that wants them (a wrong password is Docker's 401, and the
/// client stores nothing); once logged in, the CLI's stored credentials
/// push to it.
#[test]
fn docker_login_checks_with_the_registry() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);
    let reg = AuthRegistry::start();
    let cfg = svc.config.path().join("config.json");

    let o = svc.docker_with(
        DOCKER,
        &["login", &reg.addr, "-u", "testuser", "--password-stdin"],
        Some(b"wrong\n"),
    );
    assert_ne!(o.code, 0, "{}", o.stdout);
    assert!(
        o.stderr.contains("401 Unauthorized"),
        "{}\n{}",
        o.stdout,
        o.stderr
    );
    let stored = std::fs::read_to_string(&cfg).unwrap_or_default();
    assert!(!stored.contains(&reg.addr), "{stored}");
    // Without credentials, a push is refused by the registry.
    let name = format!("{}/t/auth:1", reg.addr);
    ok(svc.docker(&["tag", img, &name]));
    let o = svc.docker(&["push", &name]);
    assert_ne!(o.code, 0, "{}", o.stdout);

    let o = ok(svc.docker_with(
        DOCKER,
        &["login", &reg.addr, "-u", "testuser", "--password-stdin"],
        Some(b"testpass\n"),
    ));
    assert!(o.stdout.contains("Login Succeeded"), "{}", o.stdout);
    let stored = std::fs::read_to_string(&cfg).unwrap();
    assert!(stored.contains(&reg.addr), "{stored}");
    // The service stored nothing of its own (dockerd's behaviour).
    assert!(
        !env.root.path().join("auth.json").exists(),
        "the service stored credentials"
    );
    let o = ok(svc.docker(&["push", &name])).stdout;
    assert!(o.contains("1: digest: sha256:"), "{o}");
    if Path::new(DOCKER_NEW).exists() {
        let o = ok(svc.docker_with(
            DOCKER_NEW,
            &["login", &reg.addr, "-u", "testuser", "--password-stdin"],
            Some(b"testpass\n"),
        ));
        assert!(o.stdout.contains("Login Succeeded"), "{}", o.stdout);
    }
    // Raw: Docker's answers.
    let body = format!(
        r#"{{"username":"testuser","password":"testpass","serveraddress":"{}"}}"#,
        reg.addr
    );
    let (st, b) = svc.http("POST", "/v1.41/auth", body.as_bytes());
    assert_eq!(st, 200, "{b}");
    assert!(b.contains(r#""Status":"Login Succeeded""#), "{b}");
    let body = body.replace("testpass", "nope");
    let (st, b) = svc.http("POST", "/v1.41/auth", body.as_bytes());
    assert_eq!(st, 401, "{b}");
    assert!(b.contains("\"message\""), "{b}");
    let (st, b) = svc.http("POST", "/v1.41/auth", b"{\"username\": 5}");
    assert_eq!(st, 400, "{b}");
}

/// `docker run -d --rm` then `docker wait`: the container's monitor
/// removes it as it ends, and the wait still answers its exit code (from
/// its `die` event), as dockerd does; `condition=removed` answers once
/// the record is gone (after the monitor's end, not by polling).
#[test]
fn a_wait_outlives_an_rm_containers_record() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);
    let id = ok(svc.docker(&["run", "-d", "--rm", img, "sh", "-c", "sleep 1; exit 3"]))
        .stdout
        .trim()
        .to_string();
    let o = ok(svc.docker(&["wait", &id]));
    assert_eq!(o.stdout.trim(), "3", "{}", o.stderr);
    let id = ok(svc.docker(&["run", "-d", "--rm", img, "sh", "-c", "sleep 1; exit 4"]))
        .stdout
        .trim()
        .to_string();
    let (st, b) = svc.http(
        "POST",
        &format!("/v1.41/containers/{id}/wait?condition=removed"),
        b"",
    );
    assert_eq!(st, 200, "{b}");
    assert!(b.contains("\"StatusCode\":4"), "{b}");
    assert!(env.berth(&["ps", "-aq"]).ok().stdout.is_empty());
    // Never there: still Docker's 404.
    let (st, b) = svc.http("POST", "/v1.41/containers/nope/wait", b"");
    assert_eq!(st, 404, "{b}");
}

/// Sends `req` on a new connection to `sock`, waits `pause` without
/// reading (the server has long written what it would), then reads once:
/// what that one read returned, and the rest of the stream.
fn first_read_then_rest(sock: &Path, req: &str, pause: Duration) -> (Vec<u8>, Vec<u8>) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    std::thread::sleep(pause);
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf).unwrap();
    buf.truncate(n);
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    (buf, rest)
}

/// A hijacked stream's first bytes never arrive in the same read as the
/// 101 head, however late the client reads it: the Python SDK reads the
/// head through a buffer and the stream from the socket beneath it, so
/// bytes read with the head are lost to it (an attach's log replay, a
/// quick exec's output). Checked with a client that reads late (this
/// fails when the service writes the stream without waiting for the head
/// to be read), then with the SDK itself, 20 times each.
#[test]
fn hijacked_streams_begin_after_the_head_is_read() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);
    ok(svc.docker(&[
        "run",
        "-d",
        "--name",
        "talk",
        img,
        "sh",
        "-c",
        "echo one; echo err1 >&2; sleep 100",
    ]));
    let t = Instant::now();
    while !env.berth(&["logs", "talk"]).stdout.contains("one") {
        assert!(t.elapsed() < Duration::from_secs(10), "no output");
        std::thread::sleep(Duration::from_millis(50));
    }
    let hijack = |path: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // attach with logs=1: the replay.
    let req = hijack(
        "/v1.41/containers/talk/attach?logs=1&stream=0&stdout=1&stderr=1",
        "",
    );
    let (first, rest) = first_read_then_rest(&svc.sock, &req, Duration::from_millis(300));
    let head = String::from_utf8_lossy(&first);
    assert!(
        head.starts_with("HTTP/1.1 101") && head.ends_with("\r\n\r\n"),
        "the first read held more than the 101 head: {head:?}"
    );
    assert_eq!(rest, b"\x01\0\0\0\0\0\0\x04one\n\x02\0\0\0\0\0\0\x05err1\n");
    // exec start: the command's output.
    let (st, b) = svc.http(
        "POST",
        "/v1.41/containers/talk/exec",
        br#"{"Cmd":["echo","hi"],"AttachStdout":true,"AttachStderr":true}"#,
    );
    assert_eq!(st, 201, "{b}");
    let exec = b.split('"').nth(3).unwrap().to_string();
    let req = hijack(
        &format!("/v1.41/exec/{exec}/start"),
        r#"{"Detach":false,"Tty":false}"#,
    );
    let (first, rest) = first_read_then_rest(&svc.sock, &req, Duration::from_millis(500));
    let head = String::from_utf8_lossy(&first);
    assert!(
        head.starts_with("HTTP/1.1 101") && head.ends_with("\r\n\r\n"),
        "the first read held more than the 101 head: {head:?}"
    );
    assert_eq!(rest, b"\x01\0\0\0\0\0\0\x03hi\n");
    // The client that never reads the head still gets its stream, once
    // the wait for it is over.
    let mut s = UnixStream::connect(&svc.sock).unwrap();
    s.write_all(hijack("/v1.41/containers/talk/attach?logs=1&stream=0&stdout=1", "").as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    assert!(all.ends_with(b"\x01\0\0\0\0\0\0\x04one\n"), "{all:?}");

    // The SDK, 20 times each.
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="unix://{sock}", version="auto")
ctr = c.containers.get("talk")
for i in range(20):
    got = ctr.attach(stdout=True, stderr=True, logs=True, stream=False)
    assert got == b"one\nerr1\n", (i, got)
    r = ctr.exec_run(["echo", "hi"])
    assert r.output == b"hi\n", (i, r.output)
print("hijacks ok")
"#,
        sock = svc.sock.display()
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("hijacks ok"),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    ok(svc.docker(&["rm", "-f", "talk"]));
}

/// `n` bytes that do not compress (a layer's archive is as big as its
/// file).
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The number a JSON answer gives for `key`.
fn number(body: &str, key: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key} in {body}"))
}

/// The prunes answer the bytes they freed, as Docker computes them:
/// containers the sum of their SizeRw (what `ps -s` showed just before),
/// volumes their data, images the layers (and, in berth, the blobs) that
/// went with them and not those another image still uses, the build
/// cache its entries; the docker CLI prints them.
#[test]
fn prunes_report_the_space_they_reclaim() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);
    let big = tempfile::tempdir().unwrap();
    let file = big.path().join("big");
    std::fs::write(&file, noise(300_000)).unwrap();

    // Containers: what each wrote, as `ps -s` shows it.
    for name in ["p1", "p2"] {
        ok(svc.docker(&["create", "--name", name, img, "true"]));
    }
    ok(svc.docker(&["cp", file.to_str().unwrap(), "p1:/big"]));
    let (st, list) = svc.http("GET", "/v1.41/containers/json?all=1&size=1", b"");
    assert_eq!(st, 200, "{list}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    let shown: u64 = rows.iter().map(|r| r["SizeRw"].as_u64().unwrap()).sum();
    assert!(shown >= 300_000, "{list}");
    let (st, body) = svc.http("POST", "/v1.41/containers/prune", b"");
    assert_eq!(st, 200, "{body}");
    assert_eq!(number(&body, "SpaceReclaimed"), shown, "{body}");
    ok(svc.docker(&["create", "--name", "p3", img, "true"]));
    ok(svc.docker(&["cp", file.to_str().unwrap(), "p3:/big"]));
    let o = ok(svc.docker(&["container", "prune", "-f"])).stdout;
    assert!(o.contains("Total reclaimed space: 30"), "{o}");

    // Volumes: their data.
    ok(svc.docker(&["volume", "create", "full"]));
    ok(svc.docker(&["volume", "create", "empty"]));
    let mp = ok(svc.docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", "full"])).stdout;
    std::fs::write(Path::new(mp.trim()).join("data"), noise(200_000)).unwrap();
    let (st, body) = svc.http("POST", "/v1.41/volumes/prune", b"");
    assert_eq!(st, 200, "{body}");
    let freed = number(&body, "SpaceReclaimed");
    assert!((200_000..300_000).contains(&freed), "{body}");

    // Images: a dangling image's own layer (its file data and its
    // archive), not the base layer it shares with api/bb:1.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("big"), noise(500_000)).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {img}\nCOPY big /big\n"),
    )
    .unwrap();
    let cs = ctx.path().to_str().unwrap();
    let id = ok(svc.docker(&["build", "-q", cs])).stdout;
    assert!(id.trim().starts_with("sha256:"), "{id}");
    // The build cache: its entries.
    let (st, body) = svc.http("POST", "/v1.41/build/prune", b"");
    assert_eq!(st, 200, "{body}");
    assert!(number(&body, "SpaceReclaimed") > 0, "{body}");
    assert!(body.contains("\"CachesDeleted\":[\""), "{body}");
    let (st, body) = svc.http("POST", "/v1.41/build/prune?keep-storage=1000", b"");
    assert_eq!(st, 400, "{body}");
    let (st, body) = svc.http("POST", "/v1.41/images/prune", b"");
    assert_eq!(st, 200, "{body}");
    assert!(body.contains(id.trim()), "{body}");
    let freed = number(&body, "SpaceReclaimed");
    assert!((1_000_000..1_100_000).contains(&freed), "{body}");
    // Nothing left to free: 0.
    let (_, body) = svc.http("POST", "/v1.41/images/prune", b"");
    assert_eq!(number(&body, "SpaceReclaimed"), 0, "{body}");
    // The CLIs' own prunes of the build cache, and the whole system.
    ok(svc.docker(&["build", "-q", cs]));
    let o = ok(svc.docker(&["builder", "prune", "-f"])).stdout;
    assert!(o.contains("Total reclaimed space"), "{o}");
    ok(svc.docker(&["create", "--name", "p4", img, "true"]));
    let o = ok(svc.docker(&["system", "prune", "-f"])).stdout;
    assert!(o.contains("Total reclaimed space: 1."), "{o}");
    assert!(env.berth(&["ps", "-aq"]).ok().stdout.is_empty());
}

/// A base image in a registry that wants credentials: `docker build`
/// sends the client's logins in X-Registry-Config and the build's pull of
/// its base uses them (a client without a login for it fails); `docker
/// pull` sends X-Registry-Auth and the pull uses it; the Python SDK's
/// `login` then `images.build` too. The service stores none of them and
/// prints none of them.
#[test]
fn a_build_pulls_its_private_base_with_the_clients_login() {
    let env = Env::new();
    let img = image(&env);
    let reg = AuthRegistry::start();
    let sock = env.run_root.path().join("docker.sock");
    // The service's stderr is kept, to look for the password in it.
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = {
        let mut c = env.cmd();
        c.args(["system", "service", "--time", "0"])
            .arg(format!("unix://{}", sock.display()))
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap());
        c.spawn().expect("start berth system service")
    };
    let t = Instant::now();
    while UnixStream::connect(&sock).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the service did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let svc = Service {
        child,
        sock,
        config: tempfile::tempdir().unwrap(),
    };
    // A client with no login at all.
    let nobody = tempfile::tempdir().unwrap();
    let stranger = |args: &[&str]| svc.docker_as(nobody.path(), DOCKER, args, None);
    let base = format!("{}/t/base:1", reg.addr);
    ok(svc.docker_with(
        DOCKER,
        &["login", &reg.addr, "-u", "testuser", "--password-stdin"],
        Some(b"testpass\n"),
    ));
    ok(svc.docker(&["tag", img, &base]));
    ok(svc.docker(&["push", &base]));
    ok(svc.docker(&["rmi", &base]));

    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {base}\nRUN echo built > /b\nCMD [\"cat\", \"/b\"]\n"),
    )
    .unwrap();
    let cs = ctx.path().to_str().unwrap();
    // Without a login for the registry: refused by it.
    let o = stranger(&["build", "-t", "priv:0", cs]);
    assert_ne!(o.code, 0, "{}", o.stdout);
    assert!(
        o.stderr.contains(&base) || o.stdout.contains(&base),
        "{}\n{}",
        o.stdout,
        o.stderr
    );
    let o = stranger(&["pull", &base]);
    assert_ne!(o.code, 0, "{}", o.stdout);
    // With it: the base is pulled with the client's credentials.
    let o = ok(svc.docker(&["build", "-t", "priv:1", cs]));
    assert!(
        o.stdout.contains(&format!("Pulling {base}")),
        "{}",
        o.stdout
    );
    assert_eq!(ok(svc.docker(&["run", "--rm", "priv:1"])).stdout, "built\n");
    // docker pull: X-Registry-Auth.
    ok(svc.docker(&["rmi", &base]));
    ok(svc.docker(&["pull", &base]));
    ok(svc.docker(&["rmi", &base]));
    if Path::new(DOCKER_NEW).exists() {
        let o = svc.docker_with(DOCKER_NEW, &["pull", &base], None);
        assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
        ok(svc.docker(&["rmi", &base]));
    }

    // The Python SDK: login (kept in the client), then a build.
    let empty = tempfile::tempdir().unwrap();
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="unix://{sock}", version="auto")
try:
    c.images.build(path="{cs}", tag="priv:2")
    raise SystemExit("a build without a login pulled the private base")
except docker.errors.BuildError as e:
    pass
c.login(username="testuser", password="testpass", registry="{reg}")
img, logs = c.images.build(path="{cs}", tag="priv:2")
assert "priv:2" in img.tags, img.tags
print("sdk private build ok")
"#,
        sock = svc.sock.display(),
        reg = reg.addr,
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .env("DOCKER_CONFIG", empty.path())
        .output()
        .unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("sdk private build ok"),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // A header that is not base64 of a JSON object: Docker's 400, naming
    // the header and repeating none of it.
    let (st, b) = http_with(
        &svc.sock,
        "POST",
        "/v1.41/build",
        &["X-Registry-Config: c2VjcmV0cGFzcw"],
        b"",
    );
    assert_eq!(st, 400, "{b}");
    assert!(
        b.contains("X-Registry-Config") && !b.contains("secretpass"),
        "{b}"
    );

    // Nothing stored, nothing printed.
    assert!(
        !env.root.path().join("auth.json").exists(),
        "the service stored credentials"
    );
    drop(svc);
    let printed = std::fs::read_to_string(log.path()).unwrap();
    assert!(!printed.contains("testpass"), "{printed}");
}

/// `image prune -a` with Docker's filters (dangling=false, until, label,
/// label!), and `attach` with logs=1 (the output so far, then the live
/// output when stream=1), through the docker CLI and the Python SDK.
#[test]
fn image_prune_all_and_attach_with_logs() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);
    // Two extra images, labelled apart; the base one stays in use.
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    std::fs::write(
        c.join("A.df"),
        format!("FROM {img}\nLABEL keep=yes\nRUN echo a > /a\n"),
    )
    .unwrap();
    std::fs::write(
        c.join("B.df"),
        format!("FROM {img}\nLABEL keep=no\nRUN echo b > /b\n"),
    )
    .unwrap();
    let cs = c.to_str().unwrap();
    ok(svc.docker(&["build", "-q", "-t", "pa:1", "-f", &format!("{cs}/A.df"), cs]));
    ok(svc.docker(&["build", "-q", "-t", "pb:1", "-f", &format!("{cs}/B.df"), cs]));
    ok(svc.docker(&["run", "-d", "--name", "user", img, "sleep", "100"]));
    let names = |e: &Env| {
        let mut v: Vec<String> = e
            .berth(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .ok()
            .stdout
            .lines()
            .map(|l| {
                l.trim_start_matches("docker.io/library/")
                    .trim_start_matches("docker.io/")
                    .to_string()
            })
            .collect();
        v.sort();
        v
    };
    // Made before an hour ago: none.
    let o = ok(svc.docker(&["image", "prune", "-a", "-f", "--filter", "until=1h"])).stdout;
    assert!(!o.contains("deleted"), "{o}");
    // Not labelled keep=yes: pb goes, pa and the used image stay.
    let o = ok(svc.docker(&["image", "prune", "-a", "-f", "--filter", "label!=keep=yes"])).stdout;
    assert!(
        o.contains("untagged: ") && o.contains("pb:1") && o.contains("deleted: sha256:"),
        "{o}"
    );
    assert_eq!(names(&env), ["api/bb:1", "pa:1"]);
    // Everything unused: pa goes, the image the container uses stays.
    let o = ok(svc.docker(&["image", "prune", "-a", "-f"])).stdout;
    assert!(o.contains("untagged: ") && o.contains("pa:1"), "{o}");
    assert_eq!(names(&env), ["api/bb:1"]);
    let (st, b) = svc.http(
        "POST",
        "/v1.41/images/prune?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D",
        b"",
    );
    assert_eq!(st, 400, "{b}");

    // attach with logs=1: stream=0 gives the output so far and ends;
    // stream=1 then goes on with the live output.
    ok(svc.docker(&[
        "run",
        "-d",
        "--name",
        "talk",
        img,
        "sh",
        "-c",
        "echo one; echo err1 >&2; sleep 3; echo two; sleep 100",
    ]));
    let t = Instant::now();
    while !env.berth(&["logs", "talk"]).stdout.contains("one") {
        assert!(t.elapsed() < Duration::from_secs(10), "no output");
        std::thread::sleep(Duration::from_millis(50));
    }
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="unix://{sock}", version="auto")
ctr = c.containers.get("talk")
got = ctr.attach(stdout=True, stderr=True, logs=True, stream=False)
assert got == b"one\nerr1\n", got
got = ctr.attach(stdout=True, stderr=False, logs=True, stream=False)
assert got == b"one\n", got
out = b""
for chunk in ctr.attach(stdout=True, stderr=False, logs=True, stream=True):
    out += chunk
    if b"two" in out:
        break
assert out == b"one\ntwo\n", out
print("attach ok")
"#,
        sock = svc.sock.display()
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("attach ok"),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    ok(svc.docker(&["rm", "-f", "talk", "user"]));
}

/// Volumes with the local driver's options through the API (`docker
/// volume create --opt`), shown in inspect's Options; a mount's
/// VolumeOptions.Subpath mounts only that part of the volume, and a
/// VolumeOptions field berth does not take is refused, not ignored.
#[test]
fn volume_driver_options_and_subpaths() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);
    ok(svc.docker(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "o=size=1m",
        "tv",
    ]));
    let o = ok(svc.docker(&["volume", "inspect", "-f", "{{json .Options}}", "tv"])).stdout;
    assert_eq!(
        o.trim(),
        r#"{"device":"tmpfs","o":"size=1m","type":"tmpfs"}"#
    );
    let o = svc.docker(&["volume", "create", "--opt", "size=1m", "bad"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("invalid option key"), "{}", o.stderr);
    ok(svc.docker(&[
        "run",
        "--rm",
        "-v",
        "tv:/t",
        img,
        "sh",
        "-c",
        "mkdir -p /t/sub; echo part > /t/sub/f; echo top > /t/top",
    ]));
    let body = format!(
        r#"{{"Image":"{img}","Cmd":["sh","-c","cat /s/f; test -e /s/top || echo only"],"HostConfig":{{"Mounts":[{{"Type":"volume","Source":"tv","Target":"/s","VolumeOptions":{{"NoCopy":false,"Subpath":"sub"}}}}]}}}}"#
    );
    let (st, resp) = svc.http("POST", "/v1.41/containers/create?name=sp", body.as_bytes());
    assert_eq!(st, 201, "{resp}");
    ok(svc.docker(&["start", "-a", "sp"]));
    let o = ok(svc.docker(&["logs", "sp"])).stdout;
    assert_eq!(o, "part\nonly\n", "the whole volume was mounted");
    let bad = body.replace(r#""Subpath":"sub""#, r#""DriverConfig":{"Name":"x"}"#);
    let (st, resp) = svc.http("POST", "/v1.41/containers/create?name=dc", bad.as_bytes());
    assert_eq!(st, 400, "{resp}");
    assert!(resp.contains("VolumeOptions.DriverConfig"), "{resp}");
    ok(svc.docker(&["rm", "sp"]));
    ok(svc.docker(&["volume", "rm", "tv"]));
}

/// A `docker cp` whose last bytes (past the tar's end-of-archive blocks)
/// come late: the service reads them before it answers, instead of
/// answering and closing under the client ("write: broken pipe" from the
/// docker CLI, seen in CI).
#[test]
fn an_archive_put_reads_the_whole_body_before_answering() {
    let env = Env::new();
    let img = image(&env);
    let svc = Service::start(&env);
    ok(svc.docker(&["run", "-d", "--name", "late", img, "sleep", "100"]));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "late\n").unwrap();
    let tar = Command::new("tar")
        .args(["-cf", "-", "-C"])
        .arg(dir.path())
        .arg("f")
        .output()
        .unwrap();
    assert!(tar.status.success());
    // GNU tar pads to 10 KiB; the extra 64 KiB of zeros is what a client
    // may still be sending when the tar reader has seen the end.
    let body = [&tar.stdout[..], &vec![0u8; 64 << 10][..]].concat();
    let cut = tar.stdout.len().min(2048);
    let mut s = UnixStream::connect(&svc.sock).unwrap();
    write!(
        s,
        "PUT /v1.41/containers/late/archive?path=/tmp HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body[..cut]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(&body[cut..])
        .expect("the service closed the connection before the body was read");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let o = ok(svc.docker(&["exec", "late", "cat", "/tmp/f"])).stdout;
    assert_eq!(o, "late\n");
    ok(svc.docker(&["rm", "-f", "late"]));
}
