//! The verbs of issue 21 item 7: pause/unpause, update, port, events,
//! info, version, `container` subcommands, `top` with ps options, prune
//! confirmation. End to end through the `berth` binary, as root.

mod common;
use common::*;
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const APPLETS: [&str; 6] = ["sh", "cat", "true", "sleep", "echo", "ps"];

/// Imports a busybox image as `bb:latest` into `env`'s store.
fn image(env: &Env) -> &'static str {
    let mut t = busybox_rootfs(&APPLETS);
    import_image(env, t.end(), "bb:latest")
}

/// A container counting on its output every 50 ms.
const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done";

fn log_lines(env: &Env, name: &str) -> usize {
    env.berth(&["logs", name]).ok().stdout.lines().count()
}

fn inspect(env: &Env, name: &str) -> Value {
    let o = env.berth(&["inspect", name]).ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    v[0].clone()
}

/// Unix time in ns, for --since.
fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// The events since `t0` (ns) up to now, as JSON objects.
fn events(env: &Env, t0: i64, filters: &[&str]) -> Vec<Value> {
    let since = format!("{}.{:09}", t0 / 1_000_000_000, t0 % 1_000_000_000);
    let until = format!("{}", now_ns() / 1_000_000_000 + 1);
    let mut args = vec![
        "events", "--since", &since, "--until", &until, "--format", "json",
    ];
    for f in filters {
        args.push("--filter");
        args.push(f);
    }
    let o = env.berth(&args).ok();
    o.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn actions(ev: &[Value]) -> Vec<String> {
    ev.iter()
        .map(|e| e["Action"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn pause_freezes_a_container_and_unpause_thaws_it() {
    let env = Env::new();
    let img = image(&env);
    for runtime in ["berth-runtime", "runc"] {
        let name = format!("p-{runtime}");
        env.berth(&[
            "run",
            "-d",
            "--runtime",
            runtime,
            "--name",
            &name,
            img,
            "sh",
            "-c",
            COUNTER,
        ])
        .ok();
        std::thread::sleep(Duration::from_millis(300));
        env.berth(&["pause", &name]).ok();
        let st = &inspect(&env, &name)["State"];
        assert_eq!(st["Status"], "paused", "{runtime}: {st}");
        assert_eq!(st["Paused"], true);
        assert_eq!(st["Running"], true);
        let ps = env
            .berth(&["ps", "--filter", "status=paused", "--format", "json"])
            .ok();
        assert!(ps.stdout.contains(&name), "{runtime}: {}", ps.stdout);
        let table = env.berth(&["ps"]).ok().stdout;
        assert!(table.contains("(Paused)"), "{table}");
        // Frozen: no more output.
        let n = log_lines(&env, &name);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(log_lines(&env, &name), n, "{runtime}: output while paused");
        let o = env.berth(&["exec", &name, "true"]);
        assert_ne!(o.code, 0);
        assert!(o.stderr.contains("paused"), "{}", o.stderr);
        let o = env.berth(&["pause", &name]);
        assert!(
            o.code != 0 && o.stderr.contains("already paused"),
            "{}",
            o.stderr
        );
        env.berth(&["unpause", &name]).ok();
        assert_eq!(inspect(&env, &name)["State"]["Status"], "running");
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            log_lines(&env, &name) > n,
            "{runtime}: no output after unpause"
        );
        let o = env.berth(&["unpause", &name]);
        assert!(
            o.code != 0 && o.stderr.contains("not paused"),
            "{}",
            o.stderr
        );
        env.berth(&["rm", "-f", &name]).ok();
    }
    let o = env.berth(&["pause", "no-such"]);
    assert!(
        o.code != 0 && o.stderr.contains("no such container"),
        "{}",
        o.stderr
    );
}

#[test]
fn stop_kill_and_rm_force_work_on_a_paused_container() {
    let env = Env::new();
    let img = image(&env);
    for (name, verb) in [("ss", "stop"), ("kk", "kill"), ("rr", "rm")] {
        // A TERM handler: the stop signal reaches a paused container (it
        // is thawed after the signal, as Docker does), not only the KILL.
        let trap = "trap 'exit 42' TERM; while :; do sleep 0.1; done";
        env.berth(&["run", "-d", "--name", name, img, "sh", "-c", trap])
            .ok();
        std::thread::sleep(Duration::from_millis(300));
        env.berth(&["pause", name]).ok();
        let t = Instant::now();
        match verb {
            "stop" => env.berth(&["stop", "-t", "8", name]).ok(),
            "kill" => env.berth(&["kill", name]).ok(),
            _ => env.berth(&["rm", "-f", name]).ok(),
        };
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{verb} took {:?}",
            t.elapsed()
        );
        if verb == "rm" {
            let all = env.berth(&["ps", "-a"]).ok().stdout;
            assert!(!all.contains(" rr\n"), "{all}");
            continue;
        }
        env.berth(&["wait", name]).ok();
        let st = &inspect(&env, name)["State"];
        assert_eq!(st["Status"], "exited", "{verb}: {st}");
        assert_eq!(st["Paused"], false, "{verb}: {st}");
        let code = if verb == "stop" { 42 } else { 137 };
        assert_eq!(st["ExitCode"], code, "{verb}: {st}");
        assert!(
            t.elapsed() < Duration::from_secs(6),
            "{verb} waited for the KILL"
        );
        // It starts again, not paused.
        env.berth(&["start", name]).ok();
        assert_eq!(inspect(&env, name)["State"]["Status"], "running");
        env.berth(&["rm", "-f", name]).ok();
    }
}

#[test]
fn update_changes_a_running_containers_limits_and_its_record() {
    let env = Env::new();
    let img = image(&env);
    let v1 = Path::new("/sys/fs/cgroup/memory").is_dir();
    let (mem, pids) = if v1 {
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/pids/pids.max",
        )
    } else {
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max")
    };
    env.berth(&[
        "run",
        "-d",
        "--name",
        "uu",
        "-m",
        "64m",
        "--pids-limit",
        "20",
        img,
        "sleep",
        "1000",
    ])
    .ok();
    let read = |f: &str| {
        env.berth(&["exec", "uu", "cat", f])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(read(mem), (64u64 << 20).to_string());
    let o = env
        .berth(&[
            "update",
            "-m",
            "128m",
            "--memory-swap",
            "256m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "--restart",
            "on-failure:3",
            "uu",
        ])
        .ok();
    assert_eq!(o.stdout, "uu\n");
    assert_eq!(read(mem), (128u64 << 20).to_string());
    assert_eq!(read(pids), "50");
    let h = &inspect(&env, "uu")["HostConfig"];
    assert_eq!(h["Memory"], 128u64 << 20, "{h}");
    assert_eq!(h["NanoCpus"], 500_000_000u64, "{h}");
    assert_eq!(h["PidsLimit"], 50, "{h}");
    assert_eq!(h["RestartPolicy"]["Name"], "on-failure", "{h}");
    // A restart keeps them.
    env.berth(&["restart", "-t", "1", "uu"]).ok();
    assert_eq!(read(mem), (128u64 << 20).to_string());
    assert_eq!(read(pids), "50");
    // Checked as create checks; the record is unchanged after a refusal.
    let o = env.berth(&["update", "-m", "1m", "uu"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("--memory"), "{}", o.stderr);
    let o = env.berth(&["update", "uu"]);
    assert!(
        o.code != 0 && o.stderr.contains("nothing to change"),
        "{}",
        o.stderr
    );
    assert_eq!(inspect(&env, "uu")["HostConfig"]["Memory"], 128u64 << 20);
    // A stopped container: the record alone, used at the next start.
    env.berth(&["stop", "-t", "1", "uu"]).ok();
    env.berth(&["update", "-m", "96m", "uu"]).ok();
    env.berth(&["start", "uu"]).ok();
    assert_eq!(read(mem), (96u64 << 20).to_string());
}

#[test]
fn events_tell_a_containers_life_once_in_dockers_shape() {
    let env = Env::new();
    let img = image(&env);
    let t0 = now_ns();
    // A foreground run records its end itself; a detached one's monitor
    // does (or the next command that finds it ended).
    env.berth(&[
        "run",
        "--name",
        "fg",
        "--label",
        "tier=front",
        img,
        "sh",
        "-c",
        "exit 3",
    ]);
    env.berth(&["run", "-d", "--name", "bg", img, "sh", "-c", "exit 7"])
        .ok();
    env.berth(&["wait", "bg"]).ok();
    for _ in 0..3 {
        env.berth(&["ps", "-a"]).ok();
    }
    env.berth(&["rename", "fg", "fg2"]).ok();
    env.berth(&["rm", "fg2", "bg"]).ok();
    env.berth(&["volume", "create", "ev-vol"]).ok();
    env.berth(&["volume", "rm", "ev-vol"]).ok();

    let fg = events(&env, t0, &["container=fg"]);
    assert_eq!(actions(&fg), ["create", "start", "die"], "{fg:?}");
    let die = &fg[2];
    assert_eq!(die["status"], "die");
    assert_eq!(die["Type"], "container");
    assert_eq!(die["from"], "bb:latest");
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "3");
    assert_eq!(die["Actor"]["Attributes"]["tier"], "front");
    assert_eq!(die["scope"], "local");
    assert_eq!(die["id"], die["Actor"]["ID"]);
    let ns = die["timeNano"].as_i64().unwrap();
    assert!(ns >= t0, "{die}");
    assert_eq!(die["time"].as_i64().unwrap(), ns / 1_000_000_000);
    let fg2 = events(&env, t0, &["container=fg2"]);
    assert_eq!(actions(&fg2), ["rename", "destroy"], "{fg2:?}");
    assert_eq!(fg2[0]["Actor"]["Attributes"]["oldName"], "fg");

    let bg = events(&env, t0, &["container=bg", "event=die"]);
    assert_eq!(bg.len(), 1, "one die: {bg:?}");
    assert_eq!(bg[0]["Actor"]["Attributes"]["exitCode"], "7");

    let labelled = events(&env, t0, &["label=tier=front", "event=create"]);
    assert_eq!(labelled.len(), 1, "{labelled:?}");
    let vols = events(&env, t0, &["type=volume"]);
    assert_eq!(actions(&vols), ["create", "destroy"], "{vols:?}");
    assert_eq!(vols[0]["Actor"]["ID"], "ev-vol");
    assert!(vols[0].get("status").is_none());
    // --until before the run: nothing.
    let o = env
        .berth(&[
            "events", "--since", "1000", "--until", "2000", "--format", "json",
        ])
        .ok();
    assert_eq!(o.stdout, "");
    // The human form: time, type, action, id, attributes.
    let since = format!("{}", t0 / 1_000_000_000);
    let until = format!("{}", now_ns() / 1_000_000_000 + 1);
    let o = env
        .berth(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "-f",
            "event=die",
        ])
        .ok();
    assert!(
        o.stdout
            .lines()
            .any(|l| l.contains(" container die ") && l.contains("exitCode=3")),
        "{}",
        o.stdout
    );
    let o = env.berth(&["events", "--since", "yesterday"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    let o = env.berth(&["events", "--filter", "colour=red"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
}

#[test]
fn events_exec_and_pause_are_recorded() {
    let env = Env::new();
    let img = image(&env);
    let t0 = now_ns();
    env.berth(&["run", "-d", "--name", "xx", img, "sleep", "1000"])
        .ok();
    let o = env.berth(&["exec", "xx", "sh", "-c", "exit 4"]);
    assert_eq!(o.code, 4);
    env.berth(&["pause", "xx"]).ok();
    env.berth(&["unpause", "xx"]).ok();
    env.berth(&["kill", "xx"]).ok();
    env.berth(&["wait", "xx"]).ok();
    let ev = events(&env, t0, &["container=xx"]);
    let a = actions(&ev);
    assert_eq!(
        a,
        [
            "create",
            "start",
            "exec_create: sh -c exit 4",
            "exec_start: sh -c exit 4",
            "exec_die",
            "pause",
            "unpause",
            "kill",
            "die"
        ],
        "{ev:?}"
    );
    assert_eq!(ev[4]["Actor"]["Attributes"]["exitCode"], "4");
    assert_eq!(ev[7]["Actor"]["Attributes"]["signal"], "9");
    let only = events(&env, t0, &["event=exec_start"]);
    assert_eq!(only.len(), 1, "{only:?}");
}

#[test]
fn events_without_until_follow_new_ones() {
    let env = Env::new();
    let img = image(&env);
    let mut child = env
        .cmd()
        .args(["events", "--format", "json", "--filter", "event=create"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Past events are not shown without --since.
    env.berth(&["create", "--name", "before", img, "true"]).ok();
    std::thread::sleep(Duration::from_millis(300));
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines() {
            if tx.send(l.unwrap()).is_err() {
                return;
            }
        }
    });
    // `before` may or may not have been made before the follower looked:
    // skip it, then the next one must come.
    env.berth(&["create", "--name", "after", img, "true"]).ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = None;
    while let Ok(l) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let v: Value = serde_json::from_str(&l).unwrap();
        if v["Actor"]["Attributes"]["name"] == "after" {
            got = Some(v);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let v = got.expect("the follower printed no create event for `after` within 10 s");
    assert_eq!(v["Action"], "create");
}

#[test]
fn info_and_version_say_what_a_bug_report_needs() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&["run", "-d", "--name", "aa", img, "sleep", "1000"])
        .ok();
    env.berth(&["run", "-d", "--name", "bb", img, "sleep", "1000"])
        .ok();
    env.berth(&["pause", "bb"]).ok();
    env.berth(&["create", "--name", "cc", img, "true"]).ok();
    let o = env.berth(&["info", "--format", "json"]).ok();
    let i: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(i["Containers"], 3, "{i}");
    assert_eq!(i["ContainersRunning"], 1, "{i}");
    assert_eq!(i["ContainersPaused"], 1, "{i}");
    assert_eq!(i["ContainersStopped"], 1, "{i}");
    assert_eq!(i["Images"], 1, "{i}");
    assert_eq!(i["StorageDriver"], "overlay");
    assert_eq!(i["DefaultRuntime"], "berth-runtime");
    assert!(
        i["RuntimeVersion"]
            .as_str()
            .unwrap()
            .contains("berth-runtime"),
        "{i}"
    );
    assert_eq!(i["Root"], env.root.path().to_str().unwrap());
    let v2 = !Path::new("/sys/fs/cgroup/memory").is_dir();
    assert_eq!(
        i["CgroupVersion"].as_str().unwrap().starts_with('2'),
        v2,
        "{i}"
    );
    assert!(i["NCPU"].as_u64().unwrap() >= 1 && i["MemTotal"].as_u64().unwrap() > 0);
    assert!(!i["KernelVersion"].as_str().unwrap().is_empty());
    let o = env.berth(&["info"]).ok();
    assert!(
        o.stdout.contains("Paused: 1") && o.stdout.contains("Cgroup Version:"),
        "{}",
        o.stdout
    );
    let o = env.berth(&["version", "--format", "json"]).ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["Client"]["Version"], env!("CARGO_PKG_VERSION"));
    assert!(
        v["Engine"]["RustVersion"]
            .as_str()
            .unwrap()
            .starts_with("rustc "),
        "{v}"
    );
    assert_eq!(v["Client"]["Os"], "linux");
    let o = env.berth(&["version"]).ok();
    assert!(o.stdout.contains("Rust version:"), "{}", o.stdout);
    let o = env.berth(&["info", "--format", "{{.Nope"]);
    assert_ne!(o.code, 0);
}

#[test]
fn container_subcommands_are_the_verbs() {
    let env = Env::new();
    let img = image(&env);
    let o = env
        .berth(&["container", "run", "--rm", img, "echo", "hi"])
        .ok();
    assert_eq!(o.stdout, "hi\n");
    env.berth(&["container", "create", "--name", "c1", img, "sleep", "1000"])
        .ok();
    env.berth(&["container", "start", "c1"]).ok();
    env.berth(&["container", "pause", "c1"]).ok();
    env.berth(&["container", "unpause", "c1"]).ok();
    env.berth(&["container", "update", "--pids-limit", "30", "c1"])
        .ok();
    let o = env.berth(&["container", "port", "c1"]).ok();
    assert_eq!(o.stdout, "");
    let o = env.berth(&["container", "top", "c1"]).ok();
    assert!(o.stdout.contains("sleep 1000"), "{}", o.stdout);
    let o = env.berth(&["container", "exec", "c1", "echo", "in"]).ok();
    assert_eq!(o.stdout, "in\n");
    env.berth(&["container", "rename", "c1", "c2"]).ok();
    let o = env.berth(&["container", "ls", "--format", "json"]).ok();
    assert!(o.stdout.contains("\"c2\""), "{}", o.stdout);
    env.berth(&["container", "kill", "c2"]).ok();
    env.berth(&["container", "wait", "c2"]).ok();
    env.berth(&["container", "logs", "c2"]).ok();
    env.berth(&["container", "diff", "c2"]).ok();
    env.berth(&["container", "inspect", "c2"]).ok();
    // prune asks; without a terminal it refuses unless -f.
    let o = env.berth(&["container", "prune"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("-f"), "{}", o.stderr);
    assert!(env.berth(&["ps", "-a"]).ok().stdout.contains("c2"));
    let o = env.berth(&["container", "prune", "-f"]).ok();
    assert!(o.stdout.starts_with("Deleted Containers:"), "{}", o.stdout);
    assert!(!env.berth(&["ps", "-a"]).ok().stdout.contains("c2"));
}

#[test]
fn port_lists_nothing_for_a_container_without_networks() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&["create", "--name", "pp", img, "true"]).ok();
    let o = env.berth(&["port", "pp"]).ok();
    assert_eq!(o.stdout, "");
    let o = env.berth(&["port", "pp", "80"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("80/tcp"), "{}", o.stderr);
    let o = env.berth(&["port", "nope"]);
    assert!(
        o.code != 0 && o.stderr.contains("no such container"),
        "{}",
        o.stderr
    );
    let o = env.berth(&["port", "--help"]).ok();
    assert!(o.stdout.contains("published ports"), "{}", o.stdout);
}

#[test]
fn top_takes_ps_options() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&["run", "-d", "--name", "tt", img, "sleep", "1001"])
        .ok();
    let o = env.berth(&["top", "tt", "-eo", "pid,args"]).ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines[0].starts_with("PID") && lines[0].contains("COMMAND"),
        "{}",
        o.stdout
    );
    // Only the container's process, not the host's.
    assert_eq!(lines.len(), 2, "{}", o.stdout);
    assert!(lines[1].contains("sleep 1001"), "{}", o.stdout);
    let o = env.berth(&["top", "tt", "-o", "args"]);
    assert_ne!(o.code, 0, "no PID column: {}", o.stdout);
}

#[test]
fn system_prune_asks_and_refuses_without_a_terminal() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&["create", "--name", "old", img, "true"]).ok();
    let o = env.berth(&["system", "prune"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("no terminal") && o.stderr.contains("-f"),
        "{}",
        o.stderr
    );
    assert!(env.berth(&["ps", "-a"]).ok().stdout.contains("old"));
    env.berth(&["system", "prune", "-f"]).ok();
    assert!(!env.berth(&["ps", "-a"]).ok().stdout.contains("old"));
}

#[test]
fn images_filter_and_all() {
    let env = Env::new();
    let img = image(&env);
    std::thread::sleep(Duration::from_millis(1100));
    env.berth(&["tag", img, "other:v2"]).ok();
    // A second image, later, and an untagged (dangling) one.
    let dir = tempfile::tempdir().unwrap();
    let mut t = berth_image::tar::build::Tar::default();
    t.file("hello", b"hi\n", 0o644);
    let p = dir.path().join("h.tar");
    std::fs::write(&p, t.end()).unwrap();
    env.berth(&["import", p.to_str().unwrap(), "hello:1"]).ok();
    std::thread::sleep(Duration::from_millis(1100));
    let mut t = berth_image::tar::build::Tar::default();
    t.file("none", b"x\n", 0o644);
    std::fs::write(&p, t.end()).unwrap();
    env.berth(&["import", p.to_str().unwrap()]).ok();
    let names = |f: &[&str]| {
        let mut args = vec!["images", "--format", "json"];
        for x in f {
            args.push("--filter");
            args.push(x);
        }
        let v: Value = serde_json::from_str(&env.berth(&args).ok().stdout).unwrap();
        let mut n: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let names: Vec<&str> = i["Names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap())
                    .collect();
                if names.is_empty() {
                    "<none>".to_string()
                } else {
                    names.join(",")
                }
            })
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&[]).len(), 3);
    assert_eq!(names(&["dangling=true"]), ["<none>"]);
    assert_eq!(names(&["dangling=false"]).len(), 2);
    assert_eq!(names(&["reference=hello*"]), ["docker.io/library/hello:1"]);
    assert_eq!(names(&["reference=hel?o"]), ["docker.io/library/hello:1"]);
    // The image has two tags: the filter keeps the one it matches (as
    // dockerd: `images -q other:v2` lists the id once).
    assert_eq!(
        names(&["reference=other:v2"]),
        ["docker.io/library/other:v2"]
    );
    assert_eq!(
        names(&[]).iter().filter(|n| n.contains("other:v2")).count(),
        1
    );
    assert!(
        names(&[]).iter().any(|n| n.contains(',')),
        "{:?}",
        names(&[])
    );
    assert_eq!(names(&["reference=nope*"]), Vec::<String>::new());
    // `images REPOSITORY[:TAG]`, as docker's.
    let q = |a: &[&str]| env.berth(&[&["images", "-q"][..], a].concat()).ok().stdout;
    assert_eq!(q(&["other"]).lines().count(), 1);
    assert_eq!(q(&["other:v2"]), q(&["other"]));
    assert_ne!(q(&["hello:1"]), q(&["other"]));
    assert_eq!(q(&["nope"]), "");
    assert_eq!(names(&["since=hello:1"]), ["<none>"]);
    assert_eq!(names(&["before=hello:1"]).len(), 1);
    assert!(names(&["before=hello:1"])[0].contains("bb:latest"));
    assert_eq!(names(&["label=maintainer"]), Vec::<String>::new());
    let all = env.berth(&["images", "-a", "-q"]).ok();
    assert_eq!(all.stdout.lines().count(), 3);
    let o = env.berth(&["images", "--filter", "colour=red"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
}

#[test]
fn ps_size_shows_what_a_container_wrote() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&[
        "run",
        "--name",
        "sz",
        img,
        "sh",
        "-c",
        "echo 0123456789 > /tmp/f",
    ])
    .ok();
    let o = env.berth(&["ps", "-a", "-s", "--format", "json"]).ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let rw = v[0]["SizeRw"].as_u64().unwrap();
    let root = v[0]["SizeRootFs"].as_u64().unwrap();
    assert!(rw >= 11, "{v}");
    assert!(root > rw + 100_000, "the image's busybox counts: {v}");
    let o = env.berth(&["ps", "-a", "--size"]).ok();
    assert!(
        o.stdout.lines().next().unwrap().ends_with("SIZE"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("(virtual "), "{}", o.stdout);
    let o = env.berth(&["ps", "-a", "--format", "json"]).ok();
    assert!(!o.stdout.contains("SizeRw"));
}

#[test]
fn login_without_a_terminal_says_what_to_give() {
    let env = Env::new();
    let o = env.berth(&["login", "127.0.0.1:9"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("-u") && o.stderr.contains("no terminal"),
        "{}",
        o.stderr
    );
    let o = env.berth(&["login", "127.0.0.1:9", "-u", "me"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("--password-stdin"), "{}", o.stderr);
}

#[test]
fn image_events_tag_untag_delete_and_pull() {
    let env = Env::new();
    let t0 = now_ns();
    let img = image(&env);
    env.berth(&["tag", img, "ev:1"]).ok();
    env.berth(&["rmi", "ev:1"]).ok();
    env.berth(&["rmi", img]).ok();
    let pushed = push_image("ev/pulled", "v1", &[base_layer()], Comp::Gzip, "amd64");
    let r = format!("{}/ev/pulled:v1", registry().addr);
    env.berth(&["pull", &r]).ok();
    let _ = pushed;
    let ev = events(&env, t0, &["type=image"]);
    assert_eq!(
        actions(&ev),
        ["import", "tag", "untag", "untag", "delete", "pull"],
        "{ev:?}"
    );
    let ev = &ev[1..];
    assert_eq!(
        ev[0]["Actor"]["Attributes"]["name"],
        "docker.io/library/ev:1"
    );
    assert_eq!(ev[1]["Actor"]["Attributes"]["name"], "ev:1");
    assert_eq!(ev[0]["id"], ev[3]["id"]);
    assert_eq!(ev[4]["Actor"]["ID"], r);
    let tags = events(&env, t0, &["type=image", "event=tag", "image=ev:1"]);
    assert_eq!(tags.len(), 1, "{tags:?}");
}

#[test]
fn image_events_import_load_and_prune() {
    let env = Env::new();
    let t0 = now_ns();
    let img = image(&env);
    let id = inspect_image_id(&env, img);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bb.tar");
    env.berth(&["save", "-o", file.to_str().unwrap(), img]).ok();
    // An image without a name: what image prune deletes.
    let env2 = Env::new();
    env2.berth(&["load", "-i", file.to_str().unwrap()]).ok();
    env2.berth(&["rmi", img]).ok();
    env2.berth(&["load", "-i", file.to_str().unwrap()]).ok();
    env2.berth(&["tag", img, "other:1"]).ok();
    env2.berth(&["rmi", img, "other:1"]).ok();
    let ev = events(&env, t0, &["type=image"]);
    assert_eq!(actions(&ev), ["import"], "{ev:?}");
    assert_eq!(ev[0]["id"], id.as_str());
    assert_eq!(
        ev[0]["Actor"]["Attributes"]["name"],
        "docker.io/library/bb:latest"
    );
    let ev = events(&env2, t0, &["type=image", "event=load"]);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[0]["id"], id.as_str());

    // A dangling image: one without a name left (imported without one).
    let mut t = busybox_rootfs(&["true"]);
    let p = dir.path().join("rootfs.tar");
    std::fs::write(&p, t.end()).unwrap();
    let o = env.berth(&["import", p.to_str().unwrap()]).ok();
    let dangling = o.stdout.trim().to_string();
    let t1 = now_ns();
    env.berth(&["image", "prune"]).ok();
    let ev = events(&env, t1, &["type=image"]);
    assert_eq!(actions(&ev), ["delete"], "{ev:?}");
    assert_eq!(ev[0]["id"], dangling.as_str());
}

fn inspect_image_id(env: &Env, name: &str) -> String {
    let o = env.berth(&["image", "inspect", "-f", "{{.Id}}", name]).ok();
    o.stdout.trim().to_string()
}

#[test]
fn events_of_restarts_by_policy_and_of_prunes() {
    let env = Env::new();
    let img = image(&env);
    let t0 = now_ns();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "rr",
        "--restart",
        "on-failure:2",
        img,
        "sh",
        "-c",
        "exit 5",
    ])
    .ok();
    // Docker's wait returns at the end for good, after the restarts.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = inspect(&env, "rr");
        if st["State"]["Status"] == "exited" {
            assert_eq!(st["RestartCount"], 2, "{st}");
            break;
        }
        assert!(Instant::now() < deadline, "rr never ended: {st}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ev = events(&env, t0, &["container=rr"]);
    assert_eq!(
        actions(&ev),
        ["create", "start", "die", "start", "die", "start", "die"],
        "{ev:?}"
    );
    assert_eq!(ev[6]["Actor"]["Attributes"]["exitCode"], "5");
    // Prunes record what they remove.
    env.berth(&["volume", "create", "pv"]).ok();
    env.berth(&["container", "prune", "-f"]).ok();
    env.berth(&["volume", "prune", "-a"]).ok();
    let ev = events(&env, t0, &["container=rr", "event=destroy"]);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let ev = events(&env, t0, &["volume=pv"]);
    assert_eq!(actions(&ev), ["create", "destroy"], "{ev:?}");
}

#[test]
fn ps_filters_before_since_volume_and_wrong_ones() {
    let env = Env::new();
    let img = image(&env);
    for (n, extra) in [("f1", None), ("f2", Some("fv:/data")), ("f3", None)] {
        let mut args = vec!["create", "--name", n];
        if let Some(v) = extra {
            args.extend(["-v", v]);
        }
        args.extend([img, "true"]);
        env.berth(&args).ok();
    }
    let names = |f: &[&str]| -> Vec<String> {
        let mut args = vec!["ps", "-a", "--format", "{{.Names}}"];
        for x in f {
            args.extend(["--filter", x]);
        }
        let mut v: Vec<String> = env
            .berth(&args)
            .ok()
            .stdout
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&["before=f3"]), ["f1", "f2"]);
    assert_eq!(names(&["since=f1"]), ["f2", "f3"]);
    assert_eq!(names(&["since=f1", "before=f3"]), ["f2"]);
    assert_eq!(names(&["volume=fv"]), ["f2"]);
    assert_eq!(names(&["volume=/data"]), ["f2"]);
    assert_eq!(names(&["status=created", "name=f1"]), ["f1"]);
    // A filter without containers still looks at its key and value.
    for bad in ["colour=red", "status=sleeping", "exited=x", "before=nosuch"] {
        let o = env.berth(&["ps", "--filter", bad]);
        assert_ne!(o.code, 0, "{bad}");
        assert!(
            o.stderr.contains("--filter") || o.stderr.contains("nosuch"),
            "{bad}: {}",
            o.stderr
        );
    }
    env.berth(&["rm", "f1", "f2", "f3"]).ok();
}

#[test]
fn a_detached_exec_records_its_end() {
    let env = Env::new();
    let img = image(&env);
    env.berth(&["run", "-d", "--name", "dx", img, "sleep", "1000"])
        .ok();
    let t0 = now_ns();
    let started = Instant::now();
    env.berth(&["exec", "-d", "dx", "sh", "-c", "sleep 0.5; exit 6"])
        .ok();
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "exec -d waited for the process"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let die = loop {
        let ev = events(&env, t0, &["container=dx", "event=exec_die"]);
        if let Some(e) = ev.first() {
            assert_eq!(ev.len(), 1, "{ev:?}");
            break e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no exec_die for the detached exec"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "6");
    let start = events(&env, t0, &["container=dx", "event=exec_start"]);
    assert_eq!(
        start[0]["Actor"]["Attributes"]["execID"],
        die["Actor"]["Attributes"]["execID"]
    );
    // One that cannot start: Docker's code, and its end recorded too.
    let t1 = now_ns();
    let o = env.berth(&["exec", "-d", "dx", "/no/such/cmd"]);
    assert_eq!(o.code, 127, "{}", o.stderr);
    assert!(o.stderr.contains("/no/such/cmd"), "{}", o.stderr);
    let ev = events(&env, t1, &["container=dx", "event=exec_die"]);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["Actor"]["Attributes"]["exitCode"], "127");
    env.berth(&["rm", "-f", "dx"]).ok();
}
