//! docker-compose 1.29 (Debian's `docker-compose`) driving berth through
//! `berth system service`: a web service and a database-like service on a
//! user network with a named volume, depends_on (healthy), published
//! ports, environment and a healthcheck; up, traffic to the published
//! port, ps, logs, exec, scale, down -v, and nothing left behind. The
//! engine and its API service run in network namespaces the test makes
//! ([`common::world::World`]).

mod common;

use common::world::{World, HOST4};
use common::Out;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const COMPOSE: &str = "/usr/bin/docker-compose";

/// The API service in the world's host namespace, stopped on drop.
struct Service {
    child: Child,
    sock: PathBuf,
}

impl Service {
    fn start(w: &World) -> Service {
        let sock = w.env.run_root.path().join("docker.sock");
        let child = common::start_api_service(w.berth_cmd(), &sock);
        Service { child, sock }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: kill on the pid of the child this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

const PROJECT: &str = "
services:
  db:
    image: net:1
    command: [\"sh\", \"-c\", \"mkdir -p /data/www && echo db=$$DB_NAME > /data/www/index.html && echo db ready && exec httpd -f -p 5432 -h /data/www\"]
    environment:
      DB_NAME: appdb
    volumes:
      - dbdata:/data
    networks: [backend]
    healthcheck:
      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:5432/\"]
      interval: 1s
      timeout: 2s
      retries: 20
  web:
    image: net:1
    command: [\"sh\", \"-c\", \"mkdir -p /www && echo \\\"web $$GREETING $$(wget -q -O- http://db:5432/)\\\" > /www/index.html && exec httpd -f -p 80 -h /www\"]
    environment:
      - GREETING=hi
    ports:
      - \"8080:80\"
    networks: [backend]
    depends_on:
      db:
        condition: service_healthy
  worker:
    image: net:1
    command: [\"sleep\", \"1000\"]
    networks: [backend]
networks:
  backend: {}
volumes:
  dbdata: {}
";

fn compose(svc: &Service, dir: &Path, args: &[&str]) -> Out {
    assert!(
        Path::new(COMPOSE).exists(),
        "{COMPOSE} is missing (apt-get install docker-compose)"
    );
    let o = Command::new(COMPOSE)
        .args(["-p", "bt"])
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env("DOCKER_CONFIG", dir.join(".docker"))
        .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run docker-compose");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn ok(o: Out) -> Out {
    assert_eq!(
        o.code, 0,
        "docker-compose failed: {}\n{}",
        o.stderr, o.stdout
    );
    o
}

/// The names of berth's containers (sorted).
fn berth_names(w: &World) -> Vec<String> {
    let mut v: Vec<String> = w
        .berth(&["ps", "-a", "--format", "{{.Names}}"])
        .ok()
        .stdout
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn docker_compose_brings_a_project_up_and_down() {
    let w = World::new();
    let svc = Service::start(&w);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("docker-compose.yml"), PROJECT).unwrap();

    ok(compose(&svc, d, &["up", "-d"]));
    assert_eq!(berth_names(&w), ["bt_db_1", "bt_web_1", "bt_worker_1"]);
    // depends_on waited for db's health: web read db over the network,
    // by its service name; the published port answers from outside.
    let url = format!("http://{HOST4}:8080/");
    let t = Instant::now();
    let body = loop {
        if let Some(b) = w.fetch_from("outside", &url) {
            break b;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{url} never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(body, "web hi db=appdb\n");
    let health = w
        .berth(&["inspect", "-f", "{{.State.Health.Status}}", "bt_db_1"])
        .ok()
        .stdout;
    assert_eq!(health.trim(), "healthy");

    // ps: what compose shows is what berth shows.
    let ps = ok(compose(&svc, d, &["ps"])).stdout;
    for n in ["bt_db_1", "bt_web_1", "bt_worker_1"] {
        let line = ps
            .lines()
            .find(|l| l.starts_with(n))
            .unwrap_or_else(|| panic!("{n} missing from compose ps: {ps}"));
        assert!(line.contains("Up"), "{line}");
    }
    assert!(ps.contains("0.0.0.0:8080->80/tcp"), "{ps}");
    let berth_ports = w
        .berth(&["ps", "--filter", "name=bt_web_1", "--format", "{{.Ports}}"])
        .ok()
        .stdout;
    assert!(berth_ports.contains("8080->80/tcp"), "{berth_ports}");
    let q = ok(compose(&svc, d, &["ps", "-q"])).stdout;
    let mut ids: Vec<&str> = q.lines().collect();
    ids.sort();
    let berth_ids = w.berth(&["ps", "-q", "--no-trunc"]).ok().stdout;
    let mut b: Vec<&str> = berth_ids.lines().collect();
    b.sort();
    assert_eq!(ids, b);

    // The user network, the named volume, the environment: as berth sees them.
    let nets = w.berth(&["network", "ls"]).ok().stdout;
    assert!(nets.contains("bt_backend"), "{nets}");
    let vols = w.berth(&["volume", "ls", "-q"]).ok().stdout;
    assert_eq!(vols, "bt_dbdata\n");
    let env = w
        .berth(&["exec", "bt_web_1", "sh", "-c", "echo $GREETING"])
        .ok()
        .stdout;
    assert_eq!(env, "hi\n");

    // logs (as berth's own) and exec.
    let o = ok(compose(&svc, d, &["logs", "--no-color", "db"])).stdout;
    assert!(
        o.lines()
            .any(|l| l.starts_with("db_1") && l.ends_with("| db ready")),
        "{o}"
    );
    assert_eq!(w.berth(&["logs", "bt_db_1"]).ok().stdout, "db ready\n");
    let o = ok(compose(
        &svc,
        d,
        &["exec", "-T", "db", "cat", "/data/www/index.html"],
    ));
    assert_eq!(o.stdout, "db=appdb\n");
    let o = compose(&svc, d, &["exec", "-T", "db", "sh", "-c", "exit 4"]);
    assert_eq!(o.code, 4, "{}", o.stderr);
    ok(compose(
        &svc,
        d,
        &["exec", "-T", "worker", "sh", "-c", "echo out; echo err >&2"],
    ));

    // scale: three workers, then one.
    ok(compose(&svc, d, &["up", "-d", "--scale", "worker=3"]));
    let names = berth_names(&w);
    assert_eq!(
        names,
        [
            "bt_db_1",
            "bt_web_1",
            "bt_worker_1",
            "bt_worker_2",
            "bt_worker_3"
        ]
    );
    let ps = ok(compose(&svc, d, &["ps", "worker"])).stdout;
    assert_eq!(ps.matches("bt_worker_").count(), 3, "{ps}");
    ok(compose(
        &svc,
        d,
        &["up", "-d", "-t", "1", "--scale", "worker=1"],
    ));
    assert_eq!(berth_names(&w), ["bt_db_1", "bt_web_1", "bt_worker_1"]);

    // down -v: containers, the network, the volume and the port are gone.
    ok(compose(&svc, d, &["down", "-v", "-t", "1"]));
    assert_eq!(berth_names(&w), Vec::<String>::new());
    assert!(!w.berth(&["network", "ls"]).ok().stdout.contains("bt_"));
    assert_eq!(w.berth(&["volume", "ls", "-q"]).ok().stdout, "");
    assert!(w.fetch_from("outside", &url).is_none());
    assert!(
        !w.ruleset().contains("8080"),
        "a published port's rules are left: {}",
        w.ruleset()
    );
    assert_eq!(w.veths_settled(0), Vec::<String>::new());
}
