//! `berth kube play/down/ls/status/generate` end to end: real pods from
//! Kubernetes YAML. The Service test runs berth inside a network
//! namespace it makes (as tests/network.rs does); the others use no
//! network (BERTH_DEFAULT_NETWORK=none, the Env's).

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/kube:1";

fn image_tar() -> Vec<u8> {
    busybox_rootfs(&[
        "sh", "sleep", "cat", "echo", "nslookup", "stat", "ls", "true", "false", "env", "grep",
        "wc", "sort", "hostname", "touch", "rm", "httpd", "mkdir",
    ])
    .end()
}

/// An Env with the test image, or berth in a network namespace of its own.
struct Kube {
    env: Env,
    netns: Option<(tempfile::TempDir, PathBuf)>,
    dir: tempfile::TempDir,
}

fn out(o: std::process::Output) -> Out {
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

impl Kube {
    fn new(netns: bool) -> Kube {
        let env = Env::new();
        let netns = netns.then(|| {
            let d = tempfile::Builder::new()
                .prefix("bkube")
                .tempdir_in("/run")
                .unwrap();
            let p = d.path().join("net");
            std::fs::write(&p, b"").unwrap();
            let o = out(Command::new("unshare")
                .arg(format!("--net={}", p.display()))
                .args(["ip", "link", "set", "lo", "up"])
                .output()
                .unwrap());
            assert_eq!(o.code, 0, "unshare: {}", o.stderr);
            (d, p)
        });
        let k = Kube {
            env,
            netns,
            dir: tempfile::tempdir().unwrap(),
        };
        let p = k.dir.path().join("rootfs.tar");
        std::fs::write(&p, image_tar()).unwrap();
        k.berth(&["import", p.to_str().unwrap(), IMAGE]).ok();
        k
    }

    fn cmd(&self) -> Command {
        match &self.netns {
            None => self.env.cmd(),
            Some((_, p)) => {
                let base = self.env.cmd();
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", p.display()))
                    .arg("--")
                    .arg(base.get_program());
                c.args(base.get_args());
                for (k, v) in base.get_envs() {
                    match v {
                        Some(v) => c.env(k, v),
                        None => c.env_remove(k),
                    };
                }
                c
            }
        }
    }

    fn berth(&self, args: &[&str]) -> Out {
        out(self.cmd().args(args).output().expect("run berth"))
    }

    /// Writes `yaml` to a file and returns its path.
    fn file(&self, name: &str, yaml: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, yaml).unwrap();
        p.display().to_string()
    }

    fn play(&self, file: &str, more: &[&str]) -> Out {
        let mut a = vec!["kube", "play", file];
        a.extend_from_slice(more);
        self.berth(&a)
    }

    /// Pod names with a label `key=value`.
    fn pods(&self, label: &str) -> Vec<String> {
        let o = self
            .berth(&["pod", "ps", "--format", "{{.Name}} {{.Labels}}"])
            .ok();
        let mut v: Vec<String> = o
            .stdout
            .lines()
            .filter(|l| l.contains(label))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    fn containers(&self) -> Vec<String> {
        let o = self.berth(&["ps", "-a", "--format", "{{.Names}}"]).ok();
        o.stdout.lines().map(str::to_string).collect()
    }
}

impl Drop for Kube {
    fn drop(&mut self) {
        for id in self
            .berth(&["pod", "ps", "-q", "--no-trunc"])
            .stdout
            .split_whitespace()
        {
            let _ = self.berth(&["pod", "rm", "-f", id]);
        }
        for id in self
            .berth(&["ps", "-aq", "--no-trunc"])
            .stdout
            .split_whitespace()
        {
            let _ = self.berth(&["rm", "-f", id]);
        }
        if self.netns.is_some() {
            let _ = self.berth(&["network", "prune", "-f"]);
        }
        if let Some((_, p)) = &self.netns {
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            // SAFETY: a valid C string; MNT_DETACH of our own bind mount.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const APP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  greeting: hello
  app.conf: "port=80\n"
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
data: {password: czNjcjN0}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: localhost/kube:1
        imagePullPolicy: Never
        command: [sh, -c, 'echo "$(GREETING) $(POD)"; exec sleep 1000']
        env:
        - {name: GREETING, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}
        - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: PW, valueFrom: {secretKeyRef: {name: sec, key: password}}}
        - {name: VERSION, value: "1"}
        volumeMounts: [{name: conf, mountPath: /etc/app}]
      volumes:
      - name: conf
        configMap:
          name: cfg
          defaultMode: 0440
          items: [{key: app.conf, path: app.conf}, {key: greeting, path: sub/greeting, mode: 0600}]
---
apiVersion: v1
kind: Service
metadata: {name: websvc}
spec: {selector: {app: web}, ports: [{port: 80}]}
"#;

const CLIENT: &str = r#"
kind: Pod
apiVersion: v1
metadata: {name: client}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: localhost/kube:1, imagePullPolicy: Never, command: [sleep, "1000"]}
"#;

/// A Deployment of 3 behind a Service, with a ConfigMap and a Secret:
/// names, env, files with modes, the service name resolving to the 3
/// pods from another pod, an idempotent replay, a pod removed by hand
/// made again, a rolling update, `kube ls`/`status`, and --down leaving
/// nothing.
#[test]
fn deployment_behind_a_service_replays_rolls_and_goes_down() {
    let k = Kube::new(true);
    k.berth(&["network", "create", "kn"]).ok();
    let f = k.file("app.yaml", APP);
    let o = k.play(&f, &["--network", "kn"]).ok();
    assert!(o.stderr.is_empty(), "warnings: {}", o.stderr);
    let pods = k.pods("io.berth.kube.name=web");
    assert_eq!(pods.len(), 3, "{pods:?}");
    for p in &pods {
        // <deployment>-<template hash>-<5 characters>
        let parts: Vec<&str> = p.split('-').collect();
        assert_eq!(
            (parts.len(), parts[0], parts[2].len()),
            (3, "web", 5),
            "{p}"
        );
    }
    let c = format!("{}-main", pods[0]);
    let logs = k.berth(&["logs", &c]).ok().stdout;
    assert_eq!(logs, format!("hello {}\n", pods[0]));
    let o = k
        .berth(&[
            "exec", &c, "sh", "-c",
            "echo $PW; stat -c '%a %n' /etc/app/app.conf /etc/app/sub/greeting; cat /etc/app/sub/greeting",
        ])
        .ok();
    assert_eq!(
        o.stdout,
        "s3cr3t\n440 /etc/app/app.conf\n600 /etc/app/sub/greeting\nhello"
    );
    // The service's name answers with the 3 pods' addresses.
    let cf = k.file("client.yaml", CLIENT);
    k.play(&cf, &["--network", "kn"]).ok();
    let o = k.berth(&["exec", "client-c", "nslookup", "websvc"]).ok();
    let mut want: Vec<String> = pods
        .iter()
        .map(|p| {
            let infra = k
                .berth(&["pod", "inspect", "-f", "{{.InfraContainerID}}", p])
                .ok()
                .stdout;
            k.berth(&[
                "inspect",
                "-f",
                "{{.NetworkSettings.Networks.kn.IPAddress}}",
                infra.trim(),
            ])
            .ok()
            .stdout
            .trim()
            .to_string()
        })
        .collect();
    want.sort();
    let mut got: Vec<String> = o
        .stdout
        .lines()
        .skip_while(|l| !l.contains("websvc"))
        .filter_map(|l| {
            l.strip_prefix("Address: ")
                .or_else(|| l.split_whitespace().nth(2))
        })
        .map(|a| a.trim().to_string())
        .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .collect();
    got.sort();
    got.dedup();
    assert_eq!(got, want, "{}", o.stdout);
    // Replay: nothing changes.
    let ids = k.berth(&["pod", "ps", "-q", "--no-trunc"]).ok().stdout;
    let o = k.play(&f, &["--network", "kn"]).ok();
    assert!(
        o.stdout.contains("Deployment/web unchanged"),
        "{}",
        o.stdout
    );
    assert_eq!(k.berth(&["pod", "ps", "-q", "--no-trunc"]).ok().stdout, ids);
    // A pod removed by hand is made again (one, not three).
    k.berth(&["pod", "rm", "-f", &pods[1]]).ok();
    k.play(&f, &["--network", "kn"]).ok();
    let again = k.pods("io.berth.kube.name=web");
    assert_eq!(again.len(), 3);
    assert_eq!(again.iter().filter(|p| !pods.contains(p)).count(), 1);
    let ls = k.berth(&["kube", "ls"]).ok().stdout;
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Deployment", "web", "3/3", "3"]),
        "{ls}"
    );
    // A changed template: a rolling update to 3 pods of the new hash.
    let f2 = k.file("app2.yaml", &APP.replace("value: \"1\"", "value: \"2\""));
    let o = k.play(&f2, &["--network", "kn"]).ok();
    assert_eq!(o.stdout.matches(" removed").count(), 3, "{}", o.stdout);
    let rolled = k.pods("io.berth.kube.name=web");
    assert_eq!(rolled.len(), 3);
    assert!(rolled.iter().all(|p| !again.contains(p)), "{rolled:?}");
    let hash: Vec<&str> = rolled
        .iter()
        .map(|p| p.split('-').nth(1).unwrap())
        .collect();
    assert!(hash.iter().all(|h| *h == hash[0]) && hash[0] != pods[0].split('-').nth(1).unwrap());
    let o = k
        .berth(&[
            "exec",
            &format!("{}-main", rolled[0]),
            "sh",
            "-c",
            "echo $VERSION",
        ])
        .ok();
    assert_eq!(o.stdout, "2\n");
    let st = k.berth(&["kube", "status", &f2]).ok().stdout;
    assert!(st.contains("3/3"), "{st}");
    // --down: no pod, container or volume of the file left.
    k.play(&f2, &["--down"]).ok();
    k.berth(&["kube", "down", &cf]).ok();
    assert!(k.berth(&["pod", "ps", "-q"]).ok().stdout.is_empty());
    assert!(k.containers().is_empty(), "{:?}", k.containers());
    let vols = k.berth(&["volume", "ls", "-q"]).ok().stdout;
    assert!(vols.trim().is_empty(), "{vols}");
}

/// Init containers run in order before the container; a Job runs to its
/// completions, parallelism at a time.
#[test]
fn job_with_init_containers_runs_to_its_completions() {
    let k = Kube::new(false);
    let f = k.file(
        "job.yaml",
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: count}
spec:
  completions: 3
  parallelism: 2
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      initContainers:
      - {name: one, image: localhost/kube:1, imagePullPolicy: Never, command: [sh, -c, "echo 1 >> /w/order"], volumeMounts: [{name: w, mountPath: /w}]}
      - {name: two, image: localhost/kube:1, imagePullPolicy: Never, command: [sh, -c, "echo 2 >> /w/order"], volumeMounts: [{name: w, mountPath: /w}]}
      containers:
      - {name: main, image: localhost/kube:1, imagePullPolicy: Never, command: [sh, -c, "echo main >> /w/order; cat /w/order"], volumeMounts: [{name: w, mountPath: /w}]}
      volumes: [{name: w, emptyDir: {}}]
"#,
    );
    let o = k.play(&f, &[]).ok();
    assert!(
        o.stdout.contains("Job/count complete (3/3 succeeded)"),
        "{}",
        o.stdout
    );
    let pods = k.pods("io.berth.kube.name=count");
    assert_eq!(pods.len(), 3, "{pods:?}");
    for p in &pods {
        let logs = k.berth(&["logs", &format!("{p}-main")]).ok().stdout;
        assert_eq!(logs, "1\n2\nmain\n", "{p}");
    }
    let st = k.berth(&["kube", "status", &f]).ok().stdout;
    assert!(st.contains("3/3"), "{st}");
    // Replayed: complete already, nothing made.
    let o = k.play(&f, &[]).ok();
    assert!(o.stdout.contains("complete"), "{}", o.stdout);
    assert_eq!(k.pods("io.berth.kube.name=count"), pods);
    // A failing Job with backoffLimit 0 fails play.
    let bad = k.file(
        "bad.yaml",
        &std::fs::read_to_string(&f)
            .unwrap()
            .replace("name: count", "name: fails")
            .replace("cat /w/order", "exit 3"),
    );
    let o = k.play(&bad, &[]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("Job/fails failed"), "{}", o.stderr);
    // activeDeadlineSeconds: the running pod killed, play fails.
    let slow = k.file(
        "slow.yaml",
        &std::fs::read_to_string(&f)
            .unwrap()
            .replace("name: count", "name: slow")
            .replace(
                "backoffLimit: 0",
                "backoffLimit: 0\n  activeDeadlineSeconds: 1",
            )
            .replace("cat /w/order", "exec sleep 100"),
    );
    let t = Instant::now();
    let o = k.play(&slow, &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("activeDeadlineSeconds 1 passed"),
        "{}",
        o.stderr
    );
    assert!(t.elapsed() < Duration::from_secs(30));
    let running = k.berth(&["ps", "--format", "{{.Names}}"]).ok().stdout;
    assert!(!running.contains("slow-"), "{running}");
    k.play(&f, &["--down"]).ok();
    k.play(&bad, &["--down"]).ok();
    k.play(&slow, &["--down"]).ok();
    assert!(k.containers().is_empty());
}

/// A Job with restartPolicy OnFailure: its container's restarts are its
/// retries; past backoffLimit the Job fails (play does not wait forever)
/// and its pod's container is stopped, not restarted again.
#[test]
fn an_on_failure_job_stops_at_its_backoff_limit() {
    let k = Kube::new(false);
    let f = k.file(
        "onf.yaml",
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: onf}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - {name: c, image: localhost/kube:1, imagePullPolicy: Never, command: [sh, -c, "echo try; exit 1"]}
"#,
    );
    let t = Instant::now();
    let mut child = k
        .cmd()
        .args(["kube", "play", &f])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if t.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kube play of an OnFailure Job still runs after 90 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let o = out(child.wait_with_output().unwrap());
    assert_ne!(code, Some(0), "{}", o.stdout);
    assert!(o.stderr.contains("Job/onf failed"), "{}", o.stderr);
    assert!(o.stderr.contains("backoffLimit 2"), "{}", o.stderr);
    let pods = k.pods("io.berth.kube.name=onf");
    assert_eq!(pods.len(), 1, "{pods:?}");
    let c = format!("{}-c", pods[0]);
    // Three runs (the first and backoffLimit retries; a fourth may have
    // begun before play saw the third fail), then no more.
    let runs = || k.berth(&["logs", &c]).ok().stdout.matches("try").count();
    let n = runs();
    assert!((3..=4).contains(&n), "{n} runs");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(runs(), n);
    let st = k
        .berth(&["inspect", "--format", "{{.State.Status}}", &c])
        .ok()
        .stdout;
    assert_eq!(st.trim(), "exited");
    k.play(&f, &["--down"]).ok();
    assert!(k.containers().is_empty());
}

/// Names Kubernetes takes are made: a one-character Pod, a ConfigMap with
/// a dot, a Deployment of 63 characters (its pod names cut to 63).
#[test]
fn kubernetes_names_are_made() {
    let k = Kube::new(false);
    let long = "d".repeat(63);
    let f = k.file(
        "names.yaml",
        &format!(
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: app.config}}
data: {{k: from-config}}
---
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  containers:
  - name: c
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sh, -c, 'echo $K; exec sleep 1000']
    env: [{{name: K, valueFrom: {{configMapKeyRef: {{name: app.config, key: k}}}}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {long}}}
spec:
  selector: {{matchLabels: {{app: long}}}}
  template:
    metadata: {{labels: {{app: long}}}}
    spec:
      containers:
      - {{name: c, image: localhost/kube:1, imagePullPolicy: Never, command: [sleep, "1000"]}}
"#
        ),
    );
    k.play(&f, &[]).ok();
    wait_for("the pod's output", 10, || {
        k.berth(&["logs", "p-c"]).stdout.contains("from-config")
    });
    let pods = k.pods(&format!("io.berth.kube.name={long}"));
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(pods[0].len(), 63, "{}", pods[0]);
    assert!(pods[0].starts_with(&long[..58]), "{}", pods[0]);
    k.play(&f, &["--down"]).ok();
    assert!(k.containers().is_empty());
}

/// A bad manifest: one error naming the path; nothing made. Unknown
/// fields and kinds: one warning each, naming them.
#[test]
fn bad_yaml_names_the_path_and_unknown_fields_warn() {
    let k = Kube::new(false);
    let f = k.file(
        "bad.yaml",
        r#"
kind: Deployment
metadata: {name: dd}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
      - {name: one, image: localhost/kube:1}
      - {name: two, image: localhost/kube:1, ports: [{containerPort: 70000}]}
"#,
    );
    let o = k.play(&f, &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("(Deployment dd): spec.template.spec.containers[1].ports[0].containerPort: 70000 is not a port"),
        "{}",
        o.stderr
    );
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    let f = k.file("syntax.yaml", "kind: Pod\nmetadata: {name: p\n");
    let o = k.play(&f, &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("document 1: not valid YAML"),
        "{}",
        o.stderr
    );
    let f = k.file(
        "unknown.yaml",
        r#"
kind: Pod
metadata: {name: pp}
spec:
  restartPolicy: Never
  containers: [{name: c, image: localhost/kube:1, imagePullPolicy: Never, command: ["true"], sparkle: yes}]
---
kind: Ingress
metadata: {name: i}
"#,
    );
    let o = k.play(&f, &["--start=false"]).ok();
    let warnings: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(warnings.len(), 2, "{}", o.stderr);
    assert!(
        warnings[0].contains("spec.containers[0].sparkle: unknown"),
        "{}",
        o.stderr
    );
    assert!(
        warnings[1].contains("kind: Ingress is not a kind berth plays"),
        "{}",
        o.stderr
    );
    k.play(&f, &["--down"]).ok();
    assert!(k.berth(&["pod", "ps", "-q"]).ok().stdout.is_empty());
    // Many unknown fields: a screenful of warnings, then how many more.
    let fields: Vec<String> = (0..30).map(|i| format!("x{i}: 1")).collect();
    let f = k.file(
        "many.yaml",
        &format!(
            "kind: Pod\nmetadata: {{name: many}}\nspec:\n  restartPolicy: Never\n  containers: [{{name: c, image: localhost/kube:1, imagePullPolicy: Never, command: [\"true\"], {}}}]\n",
            fields.join(", ")
        ),
    );
    let o = k.play(&f, &["--start=false"]).ok();
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 21, "{}", o.stderr);
    assert!(
        lines[20].ends_with("10 more warnings not shown"),
        "{}",
        o.stderr
    );
    k.play(&f, &["--down"]).ok();
    // A user's volume with the name a pod's volume would have is not
    // taken (nor emptied).
    k.berth(&["volume", "create", "mine-scratch"]).ok();
    let f = k.file(
        "clash.yaml",
        "kind: Pod\nmetadata: {name: mine}\nspec:\n  containers: [{name: c, image: localhost/kube:1, imagePullPolicy: Never, command: [\"true\"], volumeMounts: [{name: scratch, mountPath: /s}]}]\n  volumes: [{name: scratch, emptyDir: {}}]\n",
    );
    let o = k.play(&f, &["--start=false"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("volume mine-scratch exists and was not made by kube play"),
        "{}",
        o.stderr
    );
    k.berth(&["volume", "inspect", "mine-scratch"]).ok();
}

/// `kube generate` of a pod writes YAML that `kube play` makes the same
/// containers from.
#[test]
fn generate_round_trips_through_play() {
    let k = Kube::new(false);
    k.berth(&["pod", "create", "--name", "gen"]).ok();
    k.berth(&[
        "create",
        "--pod",
        "gen",
        "--name",
        "gen-app",
        "-e",
        "A=1",
        "-e",
        "B=x$y",
        "-w",
        "/tmp",
        "--memory",
        "64m",
        "--cap-add",
        "NET_ADMIN",
        IMAGE,
        "sleep",
        "1000",
    ])
    .ok();
    let yaml = k.berth(&["kube", "generate", "gen"]).ok().stdout;
    let inspect = |name: &str| {
        k.berth(&[
            "inspect",
            "-f",
            "{{.Config.Env}} {{.Config.WorkingDir}} {{.Config.Cmd}} {{.HostConfig.Memory}} {{.HostConfig.CapAdd}}",
            name,
        ])
        .ok()
        .stdout
    };
    let before = inspect("gen-app");
    k.berth(&["pod", "rm", "-f", "gen"]).ok();
    let f = k.file("gen.yaml", &yaml);
    k.play(&f, &["--start=false"]).ok();
    assert_eq!(inspect("gen-app"), before, "{yaml}");
    // And once more: what play made generates the same YAML.
    assert_eq!(k.berth(&["kube", "generate", "gen"]).ok().stdout, yaml);
    k.play(&f, &["--down"]).ok();
}

/// berth killed (-9) in the middle of a play: a replay converges to
/// whole pods, nothing half-made left.
#[test]
fn kill_during_play_then_replay_converges() {
    let k = Kube::new(false);
    let f = k.file(
        "d.yaml",
        r#"
kind: Deployment
metadata: {name: k9}
spec:
  replicas: 3
  selector: {matchLabels: {app: k9}}
  template:
    metadata: {labels: {app: k9}}
    spec:
      containers:
      - {name: a, image: localhost/kube:1, imagePullPolicy: Never, command: [sleep, "1000"]}
      - {name: b, image: localhost/kube:1, imagePullPolicy: Never, command: [sleep, "1000"]}
"#,
    );
    let mut child = k
        .cmd()
        .args(["kube", "play", &f])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the second pod's record exists (its containers may not).
    wait_for("a second pod", 60, || {
        k.pods("io.berth.kube.name=k9").len() >= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let o = k.play(&f, &[]).ok();
    let pods = k.pods("io.berth.kube.name=k9");
    assert_eq!(pods.len(), 3, "{}", o.stdout);
    let mut want: Vec<String> = pods
        .iter()
        .flat_map(|p| [format!("{p}-a"), format!("{p}-b")])
        .collect();
    want.sort();
    let mut got: Vec<String> = k
        .containers()
        .into_iter()
        .filter(|c| !c.ends_with("-infra"))
        .collect();
    got.sort();
    assert_eq!(got, want);
    let ls = k.berth(&["kube", "ls"]).ok().stdout;
    assert!(ls.contains("3/3"), "{ls}");
    k.play(&f, &["--down"]).ok();
    assert!(k.containers().is_empty());
    // Deterministically half-made: the second container's image is not
    // there yet, so the first play stops after the pod's first container;
    // the replay (same file, same hash) must not take that pod as whole.
    let half = k.file(
        "half.yaml",
        &std::fs::read_to_string(&f)
            .unwrap()
            .replace(
                "{name: b, image: localhost/kube:1",
                "{name: b, image: localhost/later:1",
            )
            .replace("replicas: 3", "replicas: 1"),
    );
    let o = k.play(&half, &[]);
    assert_ne!(o.code, 0);
    assert_eq!(
        k.containers()
            .iter()
            .filter(|c| !c.ends_with("-infra"))
            .count(),
        1
    );
    let p = k.dir.path().join("later.tar");
    std::fs::write(&p, image_tar()).unwrap();
    k.berth(&["import", p.to_str().unwrap(), "localhost/later:1"])
        .ok();
    k.play(&half, &[]).ok();
    let pods = k.pods("io.berth.kube.name=k9");
    assert_eq!(pods.len(), 1);
    let mut got: Vec<String> = k
        .containers()
        .into_iter()
        .filter(|c| !c.ends_with("-infra"))
        .collect();
    got.sort();
    assert_eq!(got, [format!("{}-a", pods[0]), format!("{}-b", pods[0])]);
    k.play(&half, &["--down"]).ok();
}

/// ReplicaSet, DaemonSet, a PersistentVolumeClaim's volume kept across
/// pods and `down`, envFrom a Secret given with --configmap, the manifest
/// from stdin, --start=false and --replace.
#[test]
fn replicaset_daemonset_claim_and_play_flags() {
    let k = Kube::new(false);
    let cm = k.file(
        "cm.yaml",
        "kind: Secret\napiVersion: v1\nmetadata: {name: creds}\nstringData: {USER_NAME: admin}\n",
    );
    let yaml = r#"
kind: PersistentVolumeClaim
apiVersion: v1
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
kind: ReplicaSet
apiVersion: apps/v1
metadata: {name: rs}
spec:
  replicas: 2
  selector: {matchLabels: {app: rs}}
  template:
    metadata: {labels: {app: rs}}
    spec:
      containers:
      - name: c
        image: localhost/kube:1
        imagePullPolicy: Never
        command: [sh, -c, 'echo $USER_NAME > /data/$(hostname); exec sleep 1000']
        envFrom: [{secretRef: {name: creds}}]
        volumeMounts: [{name: d, mountPath: /data}]
      volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
---
kind: DaemonSet
apiVersion: apps/v1
metadata: {name: ds}
spec:
  selector: {matchLabels: {app: ds}}
  template:
    metadata: {labels: {app: ds}}
    spec:
      containers: [{name: c, image: localhost/kube:1, imagePullPolicy: Never, command: [sleep, "1000"]}]
"#;
    let play = |more: &[&str]| {
        let mut c = k.cmd();
        c.args(["kube", "play", "-", "--configmap", &cm]).args(more);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut ch = c.spawn().unwrap();
        use std::io::Write;
        ch.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
        let o = out(ch.wait_with_output().unwrap());
        assert_eq!(o.code, 0, "{}", o.stderr);
        o
    };
    // Created, not started.
    play(&["--start=false"]);
    let rs = k.pods("io.berth.kube.name=rs");
    assert_eq!(rs.len(), 2);
    assert_eq!(k.pods("io.berth.kube.name=ds").len(), 1);
    let st = k.berth(&["ps", "--format", "{{.Names}}"]).ok().stdout;
    assert!(st.is_empty(), "{st}");
    // A replay starts them; both replicas write to the one claim.
    play(&[]);
    assert_eq!(k.pods("io.berth.kube.name=rs"), rs);
    let c = format!("{}-c", rs[0]);
    wait_for("both replicas' files", 10, || {
        k.berth(&["exec", &c, "sh", "-c", "cat /data/*"]).stdout == "admin\nadmin\n"
    });
    // --replace: new pods, the claim's data kept.
    play(&["--replace"]);
    let rs2 = k.pods("io.berth.kube.name=rs");
    assert_eq!(rs2.len(), 2);
    assert!(rs2.iter().all(|p| !rs.contains(p)));
    let o = k
        .berth(&[
            "exec",
            &format!("{}-c", rs2[0]),
            "sh",
            "-c",
            "ls /data | wc -l",
        ])
        .ok();
    assert!(o.stdout.trim().parse::<u32>().unwrap() >= 2, "{}", o.stdout);
    play(&["--down"]);
    assert!(k.berth(&["pod", "ps", "-q"]).ok().stdout.is_empty());
    let vols = k.berth(&["volume", "ls", "-q"]).ok().stdout;
    assert_eq!(vols.trim(), "data");
}

/// The READY column of `kube ls` for `kind name`: `ready/desired`.
fn ls_ready(k: &Kube, kind: &str, name: &str) -> String {
    let ls = k.berth(&["kube", "ls"]).ok().stdout;
    ls.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == kind && f[1] == name)
        .map(|f| f[2].to_string())
        .unwrap_or_else(|| panic!("no {kind}/{name} in kube ls: {ls}"))
}

/// A startupProbe holds the liveness probe back (with failureThreshold 1
/// it would kill the container at once); once started, the liveness
/// probe fails when the container deletes /tmp/ok, and the monitor
/// restarts it (Kubernetes' first back-off: 10 s): RestartCount 1.
/// Readiness (`kube ls`) waits for the startup probe. A downwardAPI
/// volume holds the pod's name, namespace and uid.
#[test]
fn startup_then_liveness_probe_restarts_the_container() {
    let k = Kube::new(false);
    let yaml = r#"
kind: Pod
apiVersion: v1
metadata: {name: live}
spec:
  restartPolicy: Always
  # `sleep` as pid 1 ignores SIGTERM: the liveness stop SIGKILLs it at 2 s.
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sh, -c, 'sleep 2; touch /tmp/ok /tmp/started; sleep 2; rm /tmp/ok; exec sleep 1000']
    startupProbe: {exec: {command: [cat, /tmp/started]}, periodSeconds: 1, failureThreshold: 30}
    livenessProbe: {exec: {command: [cat, /tmp/ok]}, periodSeconds: 1, failureThreshold: 1}
    volumeMounts: [{name: info, mountPath: /info}]
  volumes:
  - name: info
    downwardAPI:
      items:
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: ns, fieldRef: {fieldPath: metadata.namespace}}
      - {path: uid, fieldRef: {fieldPath: metadata.uid}}
"#;
    let f = k.file("live.yaml", yaml);
    k.play(&f, &[]).ok();
    let inspect = |field: &str| {
        k.berth(&["inspect", "-f", field, "live-c"])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    // Not ready (nor killed) before the startup probe passes.
    assert_eq!(ls_ready(&k, "Pod", "live"), "0/1");
    // A downwardAPI volume: the pod's name, namespace and uid as files.
    let o = k
        .berth(&[
            "exec",
            "live-c",
            "sh",
            "-c",
            "cat /info/name; echo; cat /info/ns",
        ])
        .ok();
    assert_eq!(o.stdout, "live\ndefault");
    // The uid file holds the pod's uid (the env's metadata.uid: its id's
    // first 128 bits as a UUID), not its name.
    let pod_id = k
        .berth(&["pod", "inspect", "-f", "{{.Id}}", "live"])
        .ok()
        .stdout;
    let uid = k.berth(&["exec", "live-c", "cat", "/info/uid"]).ok().stdout;
    assert_eq!(uid.len(), 36, "{uid:?}");
    assert_eq!(uid.replace('-', ""), pod_id.trim()[..32]);
    assert_eq!(inspect("{{.State.Ready}}"), "false");
    wait_for("the startup probe", 10, || {
        inspect("{{.State.Ready}}") == "true"
    });
    assert_eq!(ls_ready(&k, "Pod", "live"), "1/1");
    assert_eq!(inspect("{{.RestartCount}}"), "0");
    // /tmp/ok goes: the liveness probe stops it, the monitor restarts it.
    wait_for("the liveness restart", 30, || {
        inspect("{{.RestartCount}}") == "1"
    });
    k.play(&f, &["--down"]).ok();
}

/// A kube pod's container that keeps exiting is restarted after the
/// kubelet's back-off (10 s, doubling), not Docker's (100 ms, doubling):
/// a crash loop, with or without a liveness probe.
#[test]
fn a_crash_loop_in_a_kube_pod_backs_off_as_the_kubelet_does() {
    let k = Kube::new(false);
    let f = k.file(
        "loop.yaml",
        r#"
kind: Pod
apiVersion: v1
metadata: {name: loop}
spec:
  restartPolicy: Always
  containers:
  - {name: c, image: localhost/kube:1, imagePullPolicy: Never, command: [sh, -c, "echo done"]}
"#,
    );
    k.play(&f, &[]).ok();
    std::thread::sleep(Duration::from_secs(4));
    let o = k
        .berth(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}}",
            "loop-c",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "0 restarting", "{}", o.stdout);
    k.play(&f, &["--down"]).ok();
}

/// Only ready pods answer a Service's name: a pod whose readiness probe
/// fails is not in the answers; it is once the probe passes, and is
/// withdrawn again when it fails.
#[test]
fn readiness_gates_a_services_name() {
    let k = Kube::new(true);
    k.berth(&["network", "create", "kr"]).ok();
    let yaml = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: gated}
spec:
  replicas: 1
  selector: {matchLabels: {app: gated}}
  template:
    metadata: {labels: {app: gated}}
    spec:
      containers:
      - name: main
        image: localhost/kube:1
        imagePullPolicy: Never
        command: [sleep, "1000"]
        readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 1, failureThreshold: 1}
---
apiVersion: v1
kind: Service
metadata: {name: gsvc}
spec: {selector: {app: gated}, ports: [{port: 80}]}
"#;
    let f = k.file("gated.yaml", yaml);
    k.play(&f, &["--network", "kr"]).ok();
    let cf = k.file("client.yaml", CLIENT);
    k.play(&cf, &["--network", "kr"]).ok();
    let pod = k.pods("io.berth.kube.name=gated").pop().unwrap();
    let infra = k
        .berth(&["pod", "inspect", "-f", "{{.InfraContainerID}}", &pod])
        .ok()
        .stdout;
    let ip = k
        .berth(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.kr.IPAddress}}",
            infra.trim(),
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip:?}");
    let answers = || {
        let o = k.berth(&["exec", "client-c", "nslookup", "gsvc"]);
        o.stdout.contains(&format!("Address: {ip}")) || o.stdout.contains(&format!(" {ip}"))
    };
    let pod_ready = || {
        let ps = k
            .berth(&[
                "pod",
                "ps",
                "--filter",
                &format!("name={pod}"),
                "--format",
                "{{.Ready}}",
            ])
            .ok()
            .stdout;
        let per = k
            .berth(&[
                "pod",
                "inspect",
                "-f",
                "{{range .Containers}}{{.Name}}={{.Ready}} {{end}}",
                &pod,
            ])
            .ok()
            .stdout;
        (
            ps.trim().to_string(),
            per.contains(&format!("{pod}-main=true")),
        )
    };
    // Running, not ready: not answered.
    assert_eq!(ls_ready(&k, "ReplicaSet", "gated"), "0/1");
    assert_eq!(pod_ready(), ("false".to_string(), false));
    assert!(!answers());
    // The probe passes: answered.
    k.berth(&["exec", &format!("{pod}-main"), "touch", "/tmp/ready"])
        .ok();
    wait_for("the service's name to answer", 10, answers);
    assert_eq!(ls_ready(&k, "ReplicaSet", "gated"), "1/1");
    assert_eq!(pod_ready(), ("true".to_string(), true));
    // It fails again: withdrawn.
    k.berth(&["exec", &format!("{pod}-main"), "rm", "/tmp/ready"])
        .ok();
    wait_for("the service's name to be withdrawn", 10, || !answers());
    assert_eq!(ls_ready(&k, "ReplicaSet", "gated"), "0/1");
    k.play(&f, &["--down"]).ok();
    k.berth(&["kube", "down", &cf]).ok();
}

/// lifecycle: postStart (exec) runs once the container has started;
/// preStop runs before the stop signal (exec: it writes before the
/// TERM trap does; httpGet: the server in the container logs the
/// request), within terminationGracePeriodSeconds; a failed postStart
/// kills the container (restartPolicy Never: it stays exited).
#[test]
fn lifecycle_hooks_run_around_start_and_stop() {
    let k = Kube::new(false);
    let out = k.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let yaml = format!(
        r#"
kind: Pod
apiVersion: v1
metadata: {{name: hooks}}
spec:
  terminationGracePeriodSeconds: 3
  volumes: [{{name: out, hostPath: {{path: {out}, type: Directory}}}}]
  containers:
  - name: app
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sh, -c, 'trap "echo term >> /out/order; exit 0" TERM; while :; do sleep 0.1; done']
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, 'echo poststart > /out/post']}}}}
      preStop: {{exec: {{command: [sh, -c, 'sleep 0.5; echo prestop >> /out/order']}}}}
  - name: web
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /www && echo hi > /www/bye && exec httpd -f -vv -p 8080 -h /www']
    lifecycle:
      preStop: {{httpGet: {{port: 8080, path: /bye}}}}
"#,
        out = out.display()
    );
    let f = k.file("hooks.yaml", &yaml);
    k.play(&f, &[]).ok();
    wait_for("the postStart hook", 20, || {
        std::fs::read_to_string(out.join("post")).is_ok_and(|t| t == "poststart\n")
    });
    // httpd is listening before it is stopped.
    wait_for("httpd listening on 8080 (1F90)", 20, || {
        k.berth(&[
            "exec",
            "hooks-web",
            "cat",
            "/proc/net/tcp",
            "/proc/net/tcp6",
        ])
        .stdout
        .lines()
        .any(|l| l.contains(":1F90 ") && l.split_whitespace().nth(3) == Some("0A"))
    });
    k.berth(&["pod", "stop", "hooks"]).ok();
    assert_eq!(
        std::fs::read_to_string(out.join("order")).unwrap(),
        "prestop\nterm\n",
        "the preStop hook runs before the stop signal"
    );
    let logs = k.berth(&["logs", "hooks-web"]).ok();
    assert!(
        format!("{}{}", logs.stdout, logs.stderr).contains("url:/bye"),
        "the preStop httpGet reached the server: {} {}",
        logs.stdout,
        logs.stderr
    );
    k.play(&f, &["--down"]).ok();

    // A failed postStart kills the container.
    let bad = k.file(
        "bad.yaml",
        r#"
kind: Pod
apiVersion: v1
metadata: {name: badhook}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sleep, "1000"]
    lifecycle: {postStart: {exec: {command: ["false"]}}}
"#,
    );
    k.play(&bad, &[]).ok();
    wait_for("the container killed by its failed postStart", 20, || {
        k.berth(&[
            "ps",
            "-a",
            "--filter",
            "name=badhook-c",
            "--format",
            "{{.Status}}",
        ])
        .ok()
        .stdout
        .starts_with("Exited (137)")
    });
    k.play(&bad, &["--down"]).ok();
}

/// env fieldRef of what is known once the pod is made: status.podIP(s)
/// (the infra's address on its network), status.hostIP (the source
/// address of the host's default route: here the test's netns's),
/// metadata.uid, spec.nodeName and spec.serviceAccountName, read inside
/// the pod, also through $(VAR) in args.
#[test]
fn env_field_refs_of_the_made_pod() {
    let k = Kube::new(true);
    let (_, ns) = k.netns.as_ref().unwrap();
    for cmd in [
        "ip link add kf0 type veth peer name kf1",
        "ip addr add 10.99.0.1/24 dev kf0",
        "ip link set kf1 up",
        "ip link set kf0 up",
        "ip route add default via 10.99.0.2",
    ] {
        let o = out(Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(cmd.split(' '))
            .output()
            .unwrap());
        assert_eq!(o.code, 0, "{cmd}: {}", o.stderr);
    }
    k.berth(&["network", "create", "kf"]).ok();
    let f = k.file(
        "fields.yaml",
        r#"
kind: Pod
apiVersion: v1
metadata: {name: fields}
spec:
  containers:
  - name: c
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sh, -c, 'echo "ip=$(POD_IP)" > /tmp/args; exec sleep 1000']
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: POD_IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
"#,
    );
    let o = k.play(&f, &["--network", "kf"]).ok();
    assert!(!o.stderr.contains("warning"), "{}", o.stderr);
    let infra = k
        .berth(&["pod", "inspect", "-f", "{{.InfraContainerID}}", "fields"])
        .ok()
        .stdout;
    let ip = k
        .berth(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.kf.IPAddress}}",
            infra.trim(),
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip:?}");
    let pod_id = k
        .berth(&["pod", "inspect", "-f", "{{.Id}}", "fields"])
        .ok()
        .stdout;
    let env = k.berth(&["exec", "fields-c", "env"]).ok().stdout;
    let var = |n: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{n}=")))
            .unwrap_or_else(|| panic!("{n} not in the env: {env}"))
            .to_string()
    };
    assert_eq!(var("POD_IP"), ip);
    assert!(var("POD_IPS").starts_with(&ip), "{env}");
    assert_eq!(var("HOST_IP"), "10.99.0.1");
    assert_eq!(var("UID").replace('-', ""), pod_id.trim()[..32]);
    assert_eq!(var("NODE"), "localhost");
    assert_eq!(var("SA"), "default");
    let args = k
        .berth(&["exec", "fields-c", "cat", "/tmp/args"])
        .ok()
        .stdout;
    assert_eq!(args.trim(), format!("ip={ip}"));
    k.play(&f, &["--down"]).ok();
}

/// securityContext.seccompProfile (pod-level, overridden per container:
/// RuntimeDefault, Unconfined, Localhost from a file) and procMount
/// (Default masks /proc paths, Unmasked does not), read inside the pod.
#[test]
fn seccomp_profiles_and_proc_mount() {
    let k = Kube::new(false);
    let profile = k.file(
        "no-mkdir.json",
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    );
    let f = k.file(
        "sec.yaml",
        &format!(
            r#"
kind: Pod
apiVersion: v1
metadata: {{name: sec}}
spec:
  securityContext: {{seccompProfile: {{type: Unconfined}}}}
  containers:
  - {{name: pod, image: localhost/kube:1, imagePullPolicy: Never, command: [sleep, "1000"]}}
  - name: rd
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sleep, "1000"]
    securityContext: {{seccompProfile: {{type: RuntimeDefault}}, procMount: Default}}
  - name: local
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sleep, "1000"]
    securityContext: {{seccompProfile: {{type: Localhost, localhostProfile: {profile}}}}}
  - name: unmasked
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sleep, "1000"]
    securityContext: {{procMount: Unmasked}}
"#
        ),
    );
    let o = k.play(&f, &[]).ok();
    assert!(!o.stderr.contains("warning"), "{}", o.stderr);
    let mode = |c: &str| {
        k.berth(&[
            "exec",
            &format!("sec-{c}"),
            "grep",
            "^Seccomp:",
            "/proc/self/status",
        ])
        .ok()
        .stdout
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
    };
    assert_eq!(mode("pod"), "0", "the pod's Unconfined");
    assert_eq!(mode("unmasked"), "0", "the pod's Unconfined");
    assert_eq!(mode("rd"), "2", "RuntimeDefault");
    assert_eq!(mode("local"), "2", "Localhost");
    let mk = k.berth(&["exec", "sec-local", "mkdir", "/tmp/x"]);
    assert_ne!(mk.code, 0, "the Localhost profile refuses mkdir");
    k.berth(&["exec", "sec-rd", "mkdir", "/tmp/x"]).ok();
    let masked = |c: &str| {
        k.berth(&["exec", &format!("sec-{c}"), "cat", "/proc/self/mounts"])
            .ok()
            .stdout
            .lines()
            .any(|l| l.split(' ').nth(1) == Some("/proc/keys"))
    };
    assert!(masked("rd"), "Default masks /proc/keys");
    assert!(!masked("unmasked"), "Unmasked does not");
    k.play(&f, &["--down"]).ok();
    // Errors name the path.
    let bad = k.file(
        "badsec.yaml",
        "kind: Pod\nmetadata: {name: bs}\nspec:\n  containers:\n  - {name: c, image: localhost/kube:1, securityContext: {seccompProfile: {type: Localhost}}}\n",
    );
    let o = k.play(&bad, &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("spec.containers[0].securityContext.seccompProfile.localhostProfile"),
        "{}",
        o.stderr
    );
}

/// A loopback HTTP server of the test's own: `path` answers `body`, any
/// other path 404. Serves until the test ends.
fn serve_once_per_request(path: &'static str, body: String) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut line = String::new();
            let _ = BufReader::new(&s).read_line(&mut line);
            let want = format!("GET {path} ");
            let answer = if line.starts_with(&want) {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            };
            let _ = s.write_all(answer.as_bytes());
        }
    });
    port
}

/// `kube play URL` and `kube down URL`: the manifest read over HTTP; a
/// missing one is one error naming the URL and the status.
#[test]
fn play_and_down_take_a_url() {
    let k = Kube::new(false);
    let yaml = format!(
        "kind: Pod\napiVersion: v1\nmetadata: {{name: fromurl}}\nspec:\n  containers: [{{name: c, image: {IMAGE}, imagePullPolicy: Never, command: [sleep, \"1000\"]}}]\n"
    );
    let port = serve_once_per_request("/m/pod.yaml", yaml);
    let url = format!("http://127.0.0.1:{port}/m/pod.yaml");
    k.play(&url, &[]).ok();
    let pods = k.berth(&["pod", "ps", "--format", "{{.Name}}"]).ok().stdout;
    assert!(pods.lines().any(|p| p == "fromurl"), "{pods}");
    k.berth(&["kube", "down", &url]).ok();
    let pods = k.berth(&["pod", "ps", "--format", "{{.Name}}"]).ok().stdout;
    assert!(!pods.contains("fromurl"), "{pods}");
    let missing = format!("http://127.0.0.1:{port}/nothing.yaml");
    let o = k.play(&missing, &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains(&missing) && o.stderr.contains("404"),
        "{}",
        o.stderr
    );
}

/// `kube play --build` (podman's rule): an image whose name's last
/// component is a directory of the working directory with a Dockerfile is
/// built when missing (always with --build, never with --build=false).
#[test]
fn play_builds_images_that_have_a_directory() {
    let k = Kube::new(false);
    let cwd = tempfile::tempdir().unwrap();
    let dir = cwd.path().join("built");
    std::fs::create_dir(&dir).unwrap();
    let dockerfile = |word: &str| {
        std::fs::write(
            dir.join("Dockerfile"),
            format!("FROM {IMAGE}\nRUN echo {word} > /b\n"),
        )
        .unwrap()
    };
    dockerfile("first");
    let yaml = k.file(
        "b.yaml",
        "kind: Pod\napiVersion: v1\nmetadata: {name: bp}\nspec:\n  containers: [{name: c, image: localhost/built:1, imagePullPolicy: Never, command: [sh, -c, 'cat /b; exec sleep 1000']}]\n",
    );
    let play = |more: &[&str]| {
        let mut c = k.cmd();
        c.current_dir(cwd.path())
            .args(["kube", "play", &yaml])
            .args(more);
        out(c.output().unwrap())
    };
    let id = || {
        k.berth(&["images", "-q", "--no-trunc", "localhost/built:1"])
            .ok()
            .stdout
    };
    // --build=false: nothing is built, and the image is missing.
    let o = play(&["--build=false"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("localhost/built:1"), "{}", o.stderr);
    // Missing: built, then run.
    play(&[]).ok();
    let first = id();
    assert!(first.starts_with("sha256:"), "{first}");
    wait_for("the pod's output", 10, || {
        k.berth(&["logs", "bp-c"]).stdout.contains("first")
    });
    // Present: not built again without --build, built again with it.
    dockerfile("second");
    play(&[]).ok();
    assert_eq!(id(), first);
    play(&["--build"]).ok();
    assert_ne!(id(), first);
}

/// A container that is not root's writes in the pod's emptyDirs: on disk
/// 0777 (with an fsGroup: the group's, setgid, so what is made in it is
/// the group's too), in memory 1777 (3777 and the group's with an
/// fsGroup), as the kubelet makes them.
#[test]
fn a_non_root_container_writes_in_its_empty_dirs() {
    let k = Kube::new(false);
    let yaml = |name: &str, fs_group: &str| {
        format!(
            r#"
kind: Pod
apiVersion: v1
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 1000{fs_group}}}
  containers:
  - name: c
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sh, -c, 'touch /e/x && touch /m/x && stat -c "%a %g" /e /e/x /m /m/x && echo done']
    volumeMounts: [{{name: e, mountPath: /e}}, {{name: m, mountPath: /m}}]
  volumes: [{{name: e, emptyDir: {{}}}}, {{name: m, emptyDir: {{medium: Memory}}}}]
"#
        )
    };
    let logs = |pod: &str| {
        let c = format!("{pod}-c");
        wait_for("the container's end", 30, || {
            k.berth(&["inspect", "--format", "{{.State.Status}}", &c])
                .stdout
                .trim()
                == "exited"
        });
        k.berth(&["logs", &c]).ok().stdout
    };
    let plain = k.file("plain.yaml", &yaml("plain", ""));
    k.play(&plain, &[]).ok();
    let l = logs("plain");
    assert!(l.ends_with("done\n"), "{l}");
    let lines: Vec<&str> = l.lines().collect();
    assert_eq!(lines[0], "777 0", "{l}");
    assert_eq!(lines[2], "1777 0", "{l}");
    let grouped = k.file("grouped.yaml", &yaml("grouped", ", fsGroup: 2000"));
    k.play(&grouped, &[]).ok();
    let l = logs("grouped");
    assert!(l.ends_with("done\n"), "{l}");
    let lines: Vec<&str> = l.lines().collect();
    assert_eq!(
        lines[..4],
        ["2777 2000", "644 2000", "3777 2000", "644 2000"],
        "{l}"
    );
    k.play(&plain, &["--down"]).ok();
    k.play(&grouped, &["--down"]).ok();
    assert!(k.containers().is_empty());
}

/// An `emptyDir: {medium: Memory}` is one tmpfs for the pod: what one
/// container writes the other reads, it is kept across a container's
/// restart, its sizeLimit is the tmpfs's, and `--down` unmounts it.
#[test]
fn a_memory_empty_dir_is_one_tmpfs_for_the_pod() {
    let k = Kube::new(false);
    let f = k.file(
        "mem.yaml",
        r#"
kind: Pod
apiVersion: v1
metadata: {name: mem}
spec:
  restartPolicy: Always
  containers:
  - name: writer
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sh, -c, 'echo posix > /dev/shm/p; echo from-writer > /shm/w; exec sleep 1000']
    volumeMounts: [{name: shm, mountPath: /shm}]
  - name: reader
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sleep, '1000']
    volumeMounts: [{name: shm, mountPath: /cache}]
  volumes:
  - name: shm
    emptyDir: {medium: Memory, sizeLimit: 1Mi}
"#,
    );
    k.play(&f, &[]).ok();
    let read = || {
        k.berth(&["exec", "mem-reader", "cat", "/cache/w"])
            .stdout
            .clone()
    };
    wait_for("the writer's file", 10, || read() == "from-writer\n");
    // The pod's containers share its IPC namespace and its /dev/shm (POSIX
    // shared memory), as the kubelet's pods do.
    let o = k.berth(&["exec", "mem-reader", "cat", "/dev/shm/p"]).ok();
    assert_eq!(o.stdout, "posix\n");
    let o = k
        .berth(&[
            "exec",
            "mem-reader",
            "grep",
            " /cache ",
            "/proc/self/mountinfo",
        ])
        .ok();
    assert!(o.stdout.contains(" tmpfs "), "{}", o.stdout);
    // Kept across the reader's restart.
    k.berth(&["exec", "mem-reader", "sh", "-c", "echo kept > /cache/r"])
        .ok();
    k.berth(&["restart", "mem-reader"]).ok();
    let o = k.berth(&["exec", "mem-reader", "cat", "/cache/r"]).ok();
    assert_eq!(o.stdout, "kept\n");
    // sizeLimit: 1Mi.
    let o = k.berth(&[
        "exec",
        "mem-reader",
        "dd",
        "if=/dev/zero",
        "of=/cache/big",
        "bs=1k",
        "count=2048",
    ]);
    assert_ne!(o.code, 0, "2 MiB went into a 1Mi emptyDir");
    let data = k.env.root.path().join("volumes/mem-shm/_data");
    let mounts = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(mounts().contains(&data.display().to_string()));
    // kube generate gives the emptyDir back.
    let o = k.berth(&["kube", "generate", "mem"]).ok();
    assert!(o.stdout.contains("medium: Memory"), "{}", o.stdout);
    assert!(o.stdout.contains("sizeLimit: 1Mi"), "{}", o.stdout);
    k.play(&f, &["--down"]).ok();
    assert!(
        !mounts().contains(&data.display().to_string()),
        "the tmpfs is left mounted after --down"
    );
    assert!(!data.exists());
}

/// subPath on every kind of volume: a file of a configMap, a directory of
/// an emptyDir, and one of a hostPath; a container that plants a symlink
/// where its neighbour's subPath is looked up leads it only inside the
/// volume, never to the host (CVE-2017-1002101: a hostPath subPath was a
/// joined path the runtime followed).
#[test]
fn sub_paths_stay_inside_their_volumes() {
    let k = Kube::new(false);
    let host = tempfile::tempdir().unwrap();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("host-secret"), "host\n").unwrap();
    // What a first pod's container left in the hostPath.
    std::os::unix::fs::symlink(secret.path(), host.path().join("evil")).unwrap();
    let f = k.file(
        "sub.yaml",
        &format!(
            r#"
kind: ConfigMap
apiVersion: v1
metadata: {{name: conf}}
data: {{app.conf: "key=value\n", other: "x"}}
---
kind: Pod
apiVersion: v1
metadata: {{name: sub}}
spec:
  containers:
  - name: c
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sleep, '1000']
    volumeMounts:
    - {{name: conf, mountPath: /etc/app.conf, subPath: app.conf}}
    - {{name: scratch, mountPath: /work, subPath: a/b}}
    - {{name: host, mountPath: /h, subPath: evil}}
  volumes:
  - {{name: conf, configMap: {{name: conf}}}}
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: host, hostPath: {{path: {host}}}}}
"#,
            host = host.path().display()
        ),
    );
    k.play(&f, &[]).ok();
    let o = k.berth(&["exec", "sub-c", "cat", "/etc/app.conf"]).ok();
    assert_eq!(o.stdout, "key=value\n");
    k.berth(&["exec", "sub-c", "touch", "/work/made"]).ok();
    let o = k.berth(&["exec", "sub-c", "ls", "-a", "/h"]).ok();
    assert!(
        !o.stdout.contains("host-secret"),
        "a planted symlink led the subPath to the host: {}",
        o.stdout
    );
    k.play(&f, &["--down"]).ok();
}

/// `kube generate` of what `kube play` made keeps its probes, hooks,
/// securityContext (seccompProfile, procMount, allowPrivilegeEscalation),
/// tty/stdin and subPaths; playing the generated YAML gives the same YAML.
#[test]
fn generate_keeps_probes_hooks_security_and_sub_paths() {
    let k = Kube::new(false);
    let host = tempfile::tempdir().unwrap();
    let f = k.file(
        "full.yaml",
        &format!(
            r#"
kind: Pod
apiVersion: v1
metadata: {{name: full}}
spec:
  containers:
  - name: app
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sleep, '1000']
    tty: true
    stdin: true
    securityContext:
      allowPrivilegeEscalation: false
      procMount: Unmasked
      seccompProfile: {{type: Unconfined}}
    livenessProbe: {{exec: {{command: [cat, /etc/hostname]}}, periodSeconds: 7, failureThreshold: 4}}
    readinessProbe:
      httpGet: {{path: /ready, port: 8080, httpHeaders: [{{name: X-A, value: b}}]}}
      initialDelaySeconds: 2
    startupProbe: {{tcpSocket: {{port: 9090}}, timeoutSeconds: 3}}
    lifecycle:
      postStart: {{exec: {{command: [touch, /tmp/started]}}}}
      preStop: {{httpGet: {{path: /bye, port: 8080}}}}
    volumeMounts: [{{name: h, mountPath: /h, subPath: a/b}}]
  volumes:
  - {{name: h, hostPath: {{path: {host}}}}}
"#,
            host = host.path().display()
        ),
    );
    k.play(&f, &["--start=false"]).ok();
    let yaml = k.berth(&["kube", "generate", "full"]).ok().stdout;
    for want in [
        "livenessProbe:",
        "periodSeconds: 7",
        "failureThreshold: 4",
        "readinessProbe:",
        "path: /ready",
        "name: X-A",
        "initialDelaySeconds: 2",
        "startupProbe:",
        "port: 9090",
        "timeoutSeconds: 3",
        "postStart:",
        "- /tmp/started",
        "preStop:",
        "path: /bye",
        "allowPrivilegeEscalation: false",
        "procMount: Unmasked",
        "type: Unconfined",
        "tty: true",
        "stdin: true",
        "subPath: a/b",
    ] {
        assert!(yaml.contains(want), "{want:?} is not in:\n{yaml}");
    }
    k.play(&f, &["--down"]).ok();
    let g = k.file("generated.yaml", &yaml);
    k.play(&g, &["--start=false"]).ok();
    assert_eq!(k.berth(&["kube", "generate", "full"]).ok().stdout, yaml);
    k.play(&g, &["--down"]).ok();
}

/// A failed liveness probe stops the container as the kubelet does: its
/// preStop hook runs first (it writes to a hostPath the test reads), then
/// the kill, and the restart policy restarts it. HTTPS and gRPC probes are
/// accepted (they ran no further here: tests/health.rs has servers).
#[test]
fn liveness_failure_runs_the_prestop_hook_before_the_kill() {
    let k = Kube::new(false);
    let out = k.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let yaml = format!(
        r#"
kind: Pod
apiVersion: v1
metadata: {{name: livehook}}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 5
  volumes: [{{name: out, hostPath: {{path: {out}, type: Directory}}}}]
  containers:
  - name: c
    image: localhost/kube:1
    imagePullPolicy: Never
    # The first run's liveness probe fails after a second; the next run's
    # does not.
    command: [sh, -c, 'touch /tmp/ok; if [ ! -e /out/once ]; then touch /out/once; sleep 1; rm /tmp/ok; fi; exec sleep 1000']
    volumeMounts: [{{name: out, mountPath: /out}}]
    livenessProbe: {{exec: {{command: [cat, /tmp/ok]}}, periodSeconds: 1, failureThreshold: 1}}
    readinessProbe: {{grpc: {{port: 50051, service: db}}, periodSeconds: 60}}
    startupProbe: {{httpGet: {{port: 8443, scheme: HTTPS}}, periodSeconds: 60, failureThreshold: 1000}}
    lifecycle:
      preStop: {{exec: {{command: [sh, -c, 'sleep 1; echo prestop >> /out/order']}}}}
"#,
        out = out.display()
    );
    // The startup probe (HTTPS, no server) would hold the liveness probe
    // back: this pod has it only to show that kube play takes it.
    let f = k.file("livehook.yaml", &yaml);
    let played = k.play(&f, &["--start=false"]);
    assert_eq!(played.code, 0, "{}", played.stderr);
    k.play(&f, &["--down"]).ok();
    let yaml = yaml
        .lines()
        .filter(|l| !l.contains("startupProbe") && !l.contains("readinessProbe"))
        .collect::<Vec<_>>()
        .join("\n");
    let f = k.file("livehook2.yaml", &yaml);
    k.play(&f, &[]).ok();
    let inspect = |field: &str| {
        k.berth(&["inspect", "-f", field, "livehook-c"])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    wait_for("the liveness restart", 30, || {
        inspect("{{.RestartCount}}") == "1"
    });
    assert_eq!(
        std::fs::read_to_string(out.join("order")).unwrap_or_default(),
        "prestop\n",
        "the preStop hook ran, and ended before the kill (a hook killed with its container writes nothing)"
    );
    k.play(&f, &["--down"]).ok();
}

/// A preStop sleep hook (Kubernetes 1.29's sleep action): `berth stop`
/// and `kube play --down` wait it out before the stop signal (the
/// container records the signal in a hostPath the test reads), and
/// `kube generate` writes it back with a probe's own grace period.
#[test]
fn a_prestop_sleep_delays_the_stop_signal_and_round_trips() {
    let k = Kube::new(false);
    let out = k.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let yaml = format!(
        r#"
kind: Pod
apiVersion: v1
metadata: {{name: sleepy}}
spec:
  terminationGracePeriodSeconds: 10
  volumes: [{{name: out, hostPath: {{path: {out}, type: Directory}}}}]
  containers:
  - name: c
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sh, -c, 'trap "touch /out/term; exit 0" TERM; while :; do echo tick; sleep 0.1; done']
    volumeMounts: [{{name: out, mountPath: /out}}]
    livenessProbe: {{exec: {{command: ["true"]}}, periodSeconds: 60, terminationGracePeriodSeconds: 5}}
    lifecycle:
      preStop: {{sleep: {{seconds: 2}}}}
"#,
        out = out.display()
    );
    let f = k.file("sleepy.yaml", &yaml);
    // Round trip first (nothing started).
    k.play(&f, &["--start=false"]).ok();
    let generated = k.berth(&["kube", "generate", "sleepy"]).ok().stdout;
    for want in [
        "preStop:",
        "sleep:",
        "seconds: 2",
        "terminationGracePeriodSeconds: 5",
    ] {
        assert!(generated.contains(want), "{want:?} is not in:\n{generated}");
    }
    k.play(&f, &["--down"]).ok();
    let g = k.file("sleepy-generated.yaml", &generated);
    k.play(&g, &["--start=false"]).ok();
    assert_eq!(
        k.berth(&["kube", "generate", "sleepy"]).ok().stdout,
        generated
    );
    k.play(&g, &["--down"]).ok();

    let term = out.join("term");
    let running = || {
        k.berth(&["inspect", "-f", "{{.State.Status}}", "sleepy-c"])
            .ok()
            .stdout
            .trim()
            == "running"
    };
    // Timed from another thread: the signal must not have come during
    // the sleep.
    let timed = |args: &[&str]| {
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                let t0 = Instant::now();
                let o = k.berth(args);
                (t0.elapsed(), o)
            });
            // The monitor keeps serving (its loop is not blocked): the
            // container's output still reaches the log during the sleep.
            let ticks = || {
                k.berth(&["logs", "sleepy-c"])
                    .ok()
                    .stdout
                    .matches("tick")
                    .count()
            };
            std::thread::sleep(Duration::from_millis(500));
            let before = ticks();
            std::thread::sleep(Duration::from_millis(700));
            assert!(
                ticks() > before,
                "{args:?}: the container's output stopped during the preStop sleep"
            );
            assert!(
                !term.exists(),
                "{args:?}: the stop signal came during the preStop sleep"
            );
            let (took, o) = t.join().unwrap();
            assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
            took
        })
    };
    k.play(&f, &[]).ok();
    wait_for("the container", 20, running);
    let took = timed(&["stop", "sleepy-c"]);
    eprintln!("berth stop with a 2 s preStop sleep: {took:?}");
    assert!(took >= Duration::from_secs(2), "berth stop took {took:?}");
    assert!(took < Duration::from_secs(8), "berth stop took {took:?}");
    assert!(
        term.exists(),
        "the container got its stop signal after the sleep"
    );
    std::fs::remove_file(&term).unwrap();
    k.berth(&["start", "sleepy-c"]).ok();
    wait_for("the container again", 20, running);
    let took = timed(&["kube", "play", "--down", &f]);
    eprintln!("kube play --down with a 2 s preStop sleep: {took:?}");
    assert!(
        took >= Duration::from_secs(2),
        "kube play --down took {took:?}"
    );
    assert!(
        term.exists(),
        "the container got its stop signal after the sleep"
    );
}

/// Every volume kind and the fields play takes from a pod's spec:
/// generate, down, play of the generated YAML gives pods whose containers
/// see the same files, env, groups and cpu shares, after their init
/// container ran; generating again gives the same YAML, and down of the
/// generated file leaves no volume behind.
#[test]
fn generate_round_trips_every_volume_kind_and_pod_field() {
    let k = Kube::new(false);
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("h"), "from-host\n").unwrap();
    let f = k.file(
        "web.yaml",
        &format!(
            r#"
kind: ConfigMap
apiVersion: v1
metadata: {{name: site}}
data: {{index.html: "<h1>hi</h1>\n", unused: "x"}}
---
kind: ConfigMap
apiVersion: v1
metadata: {{name: conf}}
data: {{app.conf: "key=value\n"}}
---
kind: Secret
apiVersion: v1
metadata: {{name: creds}}
data: {{password: czNjcjN0}}
---
kind: Pod
apiVersion: v1
metadata:
  name: web
  labels: {{app: web}}
  annotations: {{team: blue}}
spec:
  terminationGracePeriodSeconds: 7
  securityContext: {{fsGroup: 2000, supplementalGroups: [3000, 4000]}}
  initContainers:
  - name: init
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sh, -c, 'echo initialised > /work/init; grep ^Groups: /proc/self/status >> /work/init']
    securityContext: {{runAsGroup: 5000}}
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: app
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sleep, '1000']
    env: [{{name: A, value: "1"}}]
    ports: [{{containerPort: 8080, name: http}}]
    resources: {{requests: {{cpu: "2", memory: 32Mi}}, limits: {{memory: 64Mi}}}}
    securityContext: {{runAsUser: 1000, runAsNonRoot: true}}
    volumeMounts:
    - {{name: www, mountPath: /www}}
    - {{name: cfgvol, mountPath: /cfg/app.conf, subPath: app.conf}}
    - {{name: secvol, mountPath: /sec}}
    - {{name: dapi, mountPath: /dapi}}
    - {{name: work, mountPath: /work}}
    - {{name: mem, mountPath: /mem}}
    - {{name: host, mountPath: /host}}
  volumes:
  - {{name: www, configMap: {{name: site, items: [{{key: index.html, path: index.html}}], defaultMode: 0444}}}}
  - {{name: cfgvol, configMap: {{name: conf}}}}
  - {{name: secvol, secret: {{secretName: creds, defaultMode: 0444}}}}
  - name: dapi
    downwardAPI:
      items:
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: team, fieldRef: {{fieldPath: "metadata.annotations['team']"}}}}
  - {{name: work, emptyDir: {{}}}}
  - {{name: mem, emptyDir: {{medium: Memory}}}}
  - {{name: host, hostPath: {{path: {host}, type: Directory}}}}
"#,
            host = host.path().display()
        ),
    );
    // What the app container sees.
    let seen = || {
        let sh = |cmd: &str| k.berth(&["exec", "web-app", "sh", "-c", cmd]).ok().stdout;
        vec![
            sh("ls /www; cat /www/index.html"),
            sh("cat /cfg/app.conf"),
            sh("cat /sec/password"),
            sh("cat /dapi/name /dapi/team"),
            sh("cat /work/init"),
            sh("cat /host/h"),
            sh("env | grep -v ^HOSTNAME= | sort"),
            sh("grep ^Groups: /proc/self/status"),
            sh("cat /sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || cat /sys/fs/cgroup/cpu.weight"),
        ]
    };
    let volumes = || k.berth(&["volume", "ls", "-q"]).ok().stdout;
    k.play(&f, &[]).ok();
    let before = seen();
    assert_eq!(before[0], "index.html\n<h1>hi</h1>\n");
    assert_eq!(before[1], "key=value\n");
    assert_eq!(before[2], "s3cr3t");
    assert_eq!(before[3], "webblue");
    assert!(
        before[4].starts_with("initialised\nGroups:"),
        "{}",
        before[4]
    );
    for g in ["2000", "3000", "4000", "5000"] {
        assert!(
            before[4].contains(g),
            "the init container's groups: {}",
            before[4]
        );
    }
    assert!(before[6].contains("A=1\n"), "{}", before[6]);
    for g in ["2000", "3000", "4000"] {
        assert!(before[7].contains(g), "{}", before[7]);
    }
    assert!(
        ["2048\n", "79\n"].contains(&before[8].as_str()),
        "cpu shares: {}",
        before[8]
    );
    let yaml = k.berth(&["kube", "generate", "web"]).ok().stdout;
    for want in [
        "kind: ConfigMap",
        "name: site",
        "index.html: |",
        "kind: Secret",
        "password: czNjcjN0",
        "initContainers:",
        "team: blue",
        "containerPort: 8080",
        "name: http",
        "requests:",
        "cpu: 2000m",
        "runAsNonRoot: true",
        "runAsGroup: 5000",
        "fsGroup: 2000",
        "- 3000",
        "- 4000",
        "terminationGracePeriodSeconds: 7",
        "type: Directory",
        "downwardAPI:",
        "medium: Memory",
        "secretName: creds",
    ] {
        assert!(yaml.contains(want), "{want:?} is not in:\n{yaml}");
    }
    assert!(!yaml.contains("persistentVolumeClaim"), "{yaml}");
    k.play(&f, &["--down"]).ok();
    assert_eq!(volumes(), "", "volumes left by down");
    let g = k.file("web-generated.yaml", &yaml);
    k.play(&g, &[]).ok();
    assert_eq!(seen(), before, "{yaml}");
    assert_eq!(k.berth(&["kube", "generate", "web"]).ok().stdout, yaml);
    k.berth(&["kube", "down", &g]).ok();
    assert_eq!(volumes(), "", "volumes left by down of the generated YAML");
    assert!(k.pods("web").is_empty());
}

/// `kube down` needs only kinds and names: a file whose env refers to a
/// ConfigMap given by --configmap at play goes down without it (and
/// `kube down` takes --configmap too).
#[test]
fn down_resolves_no_references() {
    let k = Kube::new(false);
    let cm = k.file(
        "extcm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extcm}\ndata: {k: v}\n",
    );
    let f = k.file(
        "cc.yaml",
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: cc}
spec:
  selector: {matchLabels: {app: cc}}
  template:
    metadata: {labels: {app: cc}}
    spec:
      containers:
      - name: c
        image: localhost/kube:1
        imagePullPolicy: Never
        command: [sleep, "3600"]
        env: [{name: K, valueFrom: {configMapKeyRef: {name: extcm, key: k}}}]
"#,
    );
    for down in [
        vec!["kube", "down", f.as_str()],
        vec!["kube", "down", "--configmap", cm.as_str(), f.as_str()],
        vec!["kube", "play", "--down", f.as_str()],
    ] {
        k.berth(&["kube", "play", "--configmap", &cm, &f]).ok();
        assert_eq!(k.pods("io.berth.kube.name=cc").len(), 1);
        let o = k.berth(&down);
        assert_eq!(o.code, 0, "{down:?}: {}", o.stderr);
        assert!(k.pods("io.berth.kube.name=cc").is_empty(), "{down:?}");
    }
    assert!(k.containers().is_empty(), "{:?}", k.containers());
}

/// An unchanged replay changes nothing, even for a pod whose container
/// is in restart back-off (its monitor's): same pod, same restart count.
#[test]
fn an_unchanged_replay_leaves_a_restarting_pod_alone() {
    let k = Kube::new(false);
    let f = k.file(
        "lv.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: lv}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/kube:1
    imagePullPolicy: Never
    command: [sleep, "3600"]
    livenessProbe: {exec: {command: ["false"]}, periodSeconds: 1, failureThreshold: 1}
"#,
    );
    k.play(&f, &[]).ok();
    let id = k
        .berth(&["pod", "inspect", "-f", "{{.Id}}", "lv"])
        .ok()
        .stdout;
    wait_for("lv-c to restart", 30, || {
        k.berth(&["inspect", "-f", "{{.State.Status}}", "lv-c"])
            .ok()
            .stdout
            .trim()
            == "restarting"
    });
    let restarts = k
        .berth(&["inspect", "-f", "{{.RestartCount}}", "lv-c"])
        .ok()
        .stdout;
    let o = k.play(&f, &[]).ok();
    assert!(o.stderr.is_empty(), "{}", o.stderr);
    assert!(o.stdout.contains("Pod/lv unchanged"), "{}", o.stdout);
    assert_eq!(
        k.berth(&["pod", "inspect", "-f", "{{.Id}}", "lv"])
            .ok()
            .stdout,
        id
    );
    let after = k
        .berth(&["inspect", "-f", "{{.RestartCount}}", "lv-c"])
        .ok()
        .stdout;
    assert!(after.trim().parse::<u32>().unwrap() >= restarts.trim().parse::<u32>().unwrap());
    // A stopped pod is started again (not made anew).
    k.berth(&["pod", "stop", "-t", "0", "lv"]).ok();
    k.play(&f, &[]).ok();
    assert_eq!(
        k.berth(&["pod", "inspect", "-f", "{{.Id}}", "lv"])
            .ok()
            .stdout,
        id
    );
    let st = k
        .berth(&["inspect", "-f", "{{.State.Status}}", "lv-c"])
        .ok()
        .stdout;
    assert!(matches!(st.trim(), "running" | "restarting"), "{st}");
    k.play(&f, &["--down"]).ok();
}

/// A Deployment `roll` of `replicas`, maxSurge 1 and maxUnavailable 0,
/// whose container is ready `delay` seconds after it starts; `more`: more
/// of its spec.
fn roll_yaml(replicas: u32, delay: u32, more: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: roll}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: roll}}}}
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxUnavailable: 0, maxSurge: 1}}}}
{more}  template:
    metadata: {{labels: {{app: roll}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: localhost/kube:1
        imagePullPolicy: Never
        command: [sh, -c, "sleep {delay}; touch /tmp/ready; exec sleep 3600"]
        readinessProbe: {{exec: {{command: [cat, /tmp/ready]}}, periodSeconds: 1}}
"#
    )
}

/// The READY and PODS columns of `kube ls` for Deployment/roll.
fn roll_counts(k: &Kube) -> (usize, usize, usize) {
    let ls = k.berth(&["kube", "ls"]).ok().stdout;
    ls.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[0] == "Deployment" && f[1] == "roll")
        .map(|f| {
            let (r, w) = f[2].split_once('/').unwrap();
            (
                r.parse().unwrap(),
                w.parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .unwrap_or((0, 0, 0))
}

/// A rolling update with maxUnavailable 0 removes an old pod only once a
/// new one is ready: the ready pods never drop below the replicas, the
/// pods never exceed replicas + maxSurge, and play returns once the
/// rollout is done (every new pod ready), printing its progress. A new
/// template that never gets ready fails the play after
/// progressDeadlineSeconds, naming the Deployment, and the old pods stay.
#[test]
fn rolling_update_waits_for_readiness() {
    let k = Kube::new(false);
    let f = k.file("roll.yaml", &roll_yaml(2, 2, ""));
    let o = k.play(&f, &[]).ok();
    // Play waited for the rollout: both ready when it returns.
    assert_eq!(roll_counts(&k), (2, 2, 2), "{}", o.stdout);
    assert!(
        o.stdout.contains("Deployment/roll rolled out"),
        "{}",
        o.stdout
    );
    let first = k.pods("io.berth.kube.name=roll");
    let f2 = k.file("roll2.yaml", &roll_yaml(2, 3, ""));
    let start = Instant::now();
    let child = k
        .cmd()
        .args(["kube", "play", &f2])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut min_ready, mut max_pods) = (usize::MAX, 0);
    let pid = child.id();
    let alive = || {
        std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    while alive() {
        let (ready, _, pods) = roll_counts(&k);
        if pods > 0 {
            min_ready = min_ready.min(ready);
            max_pods = max_pods.max(pods);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = out(child.wait_with_output().unwrap());
    let took = start.elapsed();
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    // Two new pods one after the other, each ready 3 s after its start.
    assert!(took >= Duration::from_secs(6), "{took:?}: {}", o.stdout);
    assert!(min_ready >= 2, "ready dropped to {min_ready}: {}", o.stdout);
    assert!(max_pods <= 3, "{max_pods} pods at once: {}", o.stdout);
    assert!(
        o.stdout.contains("Deployment/roll: rollout:"),
        "{}",
        o.stdout
    );
    assert_eq!(o.stdout.matches(" removed").count(), 2, "{}", o.stdout);
    assert_eq!(roll_counts(&k), (2, 2, 2));
    let rolled = k.pods("io.berth.kube.name=roll");
    assert!(rolled.iter().all(|p| !first.contains(p)), "{rolled:?}");
    // Never ready: the play fails after the deadline, the old pods stay.
    let bad = k.file(
        "bad.yaml",
        &roll_yaml(2, 3, "  progressDeadlineSeconds: 3\n")
            .replace("cat, /tmp/ready", "cat, /nonexistent"),
    );
    let o = k.play(&bad, &[]);
    assert_ne!(o.code, 0, "{}", o.stdout);
    assert!(
        o.stderr.contains("Deployment/roll") && o.stderr.contains("progressDeadlineSeconds"),
        "{}",
        o.stderr
    );
    let now = k.pods("io.berth.kube.name=roll");
    assert!(rolled.iter().all(|p| now.contains(p)), "{now:?} {rolled:?}");
    assert_eq!(now.len(), 3, "{now:?}");
    // Recreate: the old pods go first, then the new ones are made.
    let re = k.file(
        "re.yaml",
        &roll_yaml(2, 1, "").replace(
            "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}",
            "{type: Recreate}",
        ),
    );
    let o = k.play(&re, &[]).ok();
    let removed = o.stdout.find(" removed").unwrap_or(usize::MAX);
    let lines: Vec<&str> = o.stdout.lines().collect();
    let made = lines
        .iter()
        .position(|l| l.starts_with("pod/") && !l.ends_with(" removed"));
    let last_removed = lines.iter().rposition(|l| l.ends_with(" removed"));
    assert!(removed != usize::MAX && made > last_removed, "{}", o.stdout);
    assert_eq!(roll_counts(&k), (2, 2, 2));
    k.play(&re, &["--down"]).ok();
}

/// Scaling is reported, and `kube ls` shows the replicas of the last
/// play.
#[test]
fn scaling_is_reported_and_listed() {
    let k = Kube::new(false);
    let f = k.file("s2.yaml", &roll_yaml(2, 0, ""));
    k.play(&f, &[]).ok();
    wait_for("kube ls (2, 2, 2)", 20, || roll_counts(&k) == (2, 2, 2));
    let o = k.play(&k.file("s1.yaml", &roll_yaml(1, 0, "")), &[]).ok();
    assert!(
        o.stdout.contains("Deployment/roll scaled 2 -> 1"),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("unchanged"), "{}", o.stdout);
    assert_eq!(o.stdout.matches(" removed").count(), 1, "{}", o.stdout);
    wait_for("kube ls (1, 1, 1)", 20, || roll_counts(&k) == (1, 1, 1));
    let o = k.play(&k.file("s3.yaml", &roll_yaml(3, 0, "")), &[]).ok();
    assert!(
        o.stdout.contains("Deployment/roll scaled 1 -> 3"),
        "{}",
        o.stdout
    );
    wait_for("kube ls (3, 3, 3)", 20, || roll_counts(&k) == (3, 3, 3));
    let o = k.play(&k.file("s3.yaml", &roll_yaml(3, 0, "")), &[]).ok();
    assert!(
        o.stdout.contains("Deployment/roll unchanged"),
        "{}",
        o.stdout
    );
    k.berth(&["kube", "down", &f]).ok();
    assert!(k.pods("io.berth.kube.name=roll").is_empty());
}

/// A new pod removed by hand during a rollout is made again by the
/// play that drives it (not waited for until the deadline).
#[test]
fn a_pod_removed_during_a_rollout_is_made_again() {
    let k = Kube::new(false);
    let f = k.file(
        "r1.yaml",
        &roll_yaml(1, 0, "  progressDeadlineSeconds: 10\n"),
    );
    k.play(&f, &[]).ok();
    let first = k.pods("io.berth.kube.name=roll");
    let f2 = k.file(
        "r2.yaml",
        &roll_yaml(1, 3, "  progressDeadlineSeconds: 10\n"),
    );
    let child = k
        .cmd()
        .args(["kube", "play", &f2])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut new = Vec::new();
    wait_for("a new pod", 30, || {
        new = k
            .pods("io.berth.kube.name=roll")
            .into_iter()
            .filter(|p| !first.contains(p))
            .collect();
        !new.is_empty()
    });
    k.berth(&["pod", "rm", "-f", &new[0]]).ok();
    let o = out(child.wait_with_output().unwrap());
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let now = k.pods("io.berth.kube.name=roll");
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(!first.contains(&now[0]) && now[0] != new[0], "{now:?}");
    assert_eq!(roll_counts(&k), (1, 1, 1));
    k.play(&f2, &["--down"]).ok();
}
