//! Health checks and probes, end to end: `--health-*`, the image's
//! HEALTHCHECK, `--probe`, run by the container's monitor; `healthcheck
//! run`, `ps` and `inspect`. Intervals are short (200 ms) to keep these
//! lean; containers get only a loopback (`--network none`).

mod common;
use common::*;
use std::time::{Duration, Instant};

const APPLETS: [&str; 15] = [
    "sh", "test", "rm", "touch", "sleep", "httpd", "true", "false", "yes", "head", "echo", "cat",
    "mkdir", "ps", "mv",
];

fn image(env: &Env) -> &'static str {
    let mut t = busybox_rootfs(&APPLETS);
    t.dir("www/", 0o755).file("www/index.html", b"hi\n", 0o644);
    import_image(env, t.end(), "hc:latest")
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn inspect(env: &Env, id: &str, format: &str) -> String {
    env.berth(&["inspect", "-f", format, id])
        .ok()
        .stdout
        .trim()
        .to_string()
}

fn health(env: &Env, id: &str) -> serde_json::Value {
    let out = env.berth(&["inspect", id]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["State"]["Health"].clone()
}

fn status(env: &Env, id: &str) -> String {
    health(env, id)["Status"].as_str().unwrap_or("").to_string()
}

fn run(env: &Env, args: &[&str]) -> String {
    let mut a = vec!["run", "-d", "--network", "none"];
    a.extend_from_slice(args);
    env.berth(&a).ok().stdout.trim().to_string()
}

fn ps_status(env: &Env, id: &str) -> String {
    env.berth(&[
        "ps",
        "-a",
        "--filter",
        &format!("id={id}"),
        "--format",
        "{{.Status}}",
    ])
    .ok()
    .stdout
    .trim()
    .to_string()
}

#[test]
fn an_exec_check_turns_healthy_then_unhealthy_with_its_log() {
    let env = Env::new();
    let img = image(&env);
    let id = run(
        &env,
        &[
            "--health-cmd",
            "test -e /tmp/ok && echo fine",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            img,
            "sh",
            "-c",
            "touch /tmp/ok; exec sleep 1000",
        ],
    );
    // Before the first check (200 ms): starting.
    let first = ps_status(&env, &id);
    assert!(
        first.ends_with("(health: starting)") || first.ends_with("(healthy)"),
        "{first}"
    );
    wait_for("healthy", || status(&env, &id) == "healthy");
    let h = health(&env, &id);
    assert_eq!(h["FailingStreak"], 0);
    let log = h["Log"].as_array().unwrap();
    assert_eq!(log.last().unwrap()["ExitCode"], 0);
    assert_eq!(log.last().unwrap()["Output"], "fine\n");
    assert!(ps_status(&env, &id).ends_with("(healthy)"));
    let hc = inspect(&env, &id, "{{json .Config.Healthcheck}}");
    let hc: serde_json::Value = serde_json::from_str(&hc).unwrap();
    assert_eq!(hc["Test"][0], "CMD-SHELL");
    assert_eq!(hc["Interval"], 200_000_000u64);
    assert_eq!(hc["Retries"], 2);
    let listed = |h: &str| {
        env.berth(&["ps", "-q", "--no-trunc", "--filter", &format!("health={h}")])
            .ok()
            .stdout
    };
    assert!(listed("healthy").contains(&id));
    assert!(!listed("unhealthy").contains(&id));
    let r = env.berth(&["healthcheck", "run", &id]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);

    env.berth(&["exec", &id, "rm", "/tmp/ok"]).ok();
    wait_for("unhealthy", || status(&env, &id) == "unhealthy");
    let h = health(&env, &id);
    assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h}");
    let log = h["Log"].as_array().unwrap();
    assert!(log.len() <= 5);
    assert_eq!(log.last().unwrap()["ExitCode"], 1);
    assert!(log.last().unwrap()["Start"]
        .as_str()
        .unwrap()
        .starts_with("20"));
    assert!(ps_status(&env, &id).ends_with("(unhealthy)"));
    assert!(listed("unhealthy").contains(&id));
    let r = env.berth(&["healthcheck", "run", &id]);
    assert_eq!((r.code, r.stdout.trim()), (1, "unhealthy"), "{}", r.stderr);
    // Each change of status is an event, recorded by the monitor.
    wait_for("the health_status events", || {
        let events = env
            .berth(&["events", "--since", "0", "--until", "0s"])
            .ok()
            .stdout;
        events.contains("health_status: healthy") && events.contains("health_status: unhealthy")
    });
    // Nothing else happens to it (--health-on-failure none).
    assert_eq!(inspect(&env, &id, "{{.State.Status}}"), "running");

    // A container without a check.
    let plain = run(&env, &[img, "sleep", "1000"]);
    let r = env.berth(&["healthcheck", "run", &plain]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("has no defined healthcheck"),
        "{}",
        r.stderr
    );
    assert!(health(&env, &plain).is_null());
    assert!(!ps_status(&env, &plain).contains("health"));
}

#[test]
fn the_start_period_and_the_timeout() {
    let env = Env::new();
    let img = image(&env);
    let started = Instant::now();
    let id = run(
        &env,
        &[
            "--health-cmd",
            "sleep 30",
            "--health-timeout",
            "300ms",
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
            "--health-start-period",
            "2s",
            "--health-start-interval",
            "100ms",
            img,
            "sleep",
            "1000",
        ],
    );
    // Checks fail (time out) in the start period without counting.
    wait_for("a timed-out check", || {
        health(&env, &id)["Log"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    });
    let h = health(&env, &id);
    if started.elapsed() < Duration::from_millis(1800) {
        assert_eq!(h["Status"], "starting", "{h}");
        assert_eq!(h["FailingStreak"], 0, "{h}");
    }
    let e = &h["Log"][0];
    assert_eq!(e["ExitCode"], -1);
    assert!(
        e["Output"].as_str().unwrap().contains("exceeded timeout"),
        "{e}"
    );
    wait_for("unhealthy after the start period", || {
        status(&env, &id) == "unhealthy"
    });
    assert!(started.elapsed() >= Duration::from_secs(2));
    // The timed-out checks were killed: no `sleep 30` left in the container.
    let ps = env.berth(&["exec", &id, "ps", "-o", "args"]).ok().stdout;
    assert!(!ps.contains("sleep 30"), "{ps}");
}

#[test]
fn on_failure_restart_and_kill() {
    let env = Env::new();
    let img = image(&env);
    let flags = [
        "--health-cmd",
        "false",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
    ];
    // Restarted as podman does (RestartWithTimeout): its stop signal
    // first, which it traps and records.
    let out = tempfile::tempdir().unwrap();
    let vol = format!("{}:/out", out.path().display());
    let mut a = flags.to_vec();
    a.extend([
        "--health-on-failure",
        "restart",
        "--stop-timeout",
        "5",
        "-v",
        &vol,
        img,
        "sh",
        "-c",
        "trap 'echo term >> /out/restart; exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    let restarted = run(&env, &a);
    let mut a = flags.to_vec();
    a.extend(["--health-on-failure", "kill", img, "sleep", "1000"]);
    let killed = run(&env, &a);
    // Stopped (its stop signal handled), and not restarted by its policy.
    let mut a = flags.to_vec();
    a.extend([
        "--health-on-failure",
        "stop",
        "--restart",
        "always",
        img,
        "sh",
        "-c",
        "trap 'exit 3' TERM; while :; do sleep 0.1; done",
    ]);
    let stopped = run(&env, &a);
    wait_for("a restart", || {
        inspect(&env, &restarted, "{{.RestartCount}}")
            .parse::<u32>()
            .is_ok_and(|n| n >= 1)
    });
    wait_for("the kill", || {
        inspect(&env, &killed, "{{.State.Status}}") == "exited"
    });
    assert_eq!(inspect(&env, &killed, "{{.State.ExitCode}}"), "137");
    wait_for("the stop", || {
        inspect(&env, &stopped, "{{.State.Status}}") == "exited"
    });
    assert_eq!(inspect(&env, &stopped, "{{.State.ExitCode}}"), "3");
    assert_eq!(inspect(&env, &stopped, "{{.RestartCount}}"), "0");
    // Through `berth stop` (its event), run by the monitor.
    wait_for("the stop event", || {
        env.berth(&["events", "--since", "0", "--until", "0s"])
            .ok()
            .stdout
            .lines()
            .any(|l| l.contains(" container stop ") && l.contains(&stopped))
    });
    // Restarted although its policy is no; it runs again.
    assert_eq!(
        inspect(&env, &restarted, "{{.HostConfig.RestartPolicy.Name}}"),
        "no"
    );
    wait_for("running again", || {
        inspect(&env, &restarted, "{{.State.Status}}") == "running"
    });
    assert!(
        std::fs::read_to_string(out.path().join("restart"))
            .unwrap_or_default()
            .starts_with("term\n"),
        "the restart sent its stop signal first (not SIGKILL)"
    );
}

/// Waits up to `secs` for `f`.
fn wait_long(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A failed liveness probe stops the container as the kubelet does, not
/// with an immediate SIGKILL: its stop signal first (a process that traps
/// it writes a file and exits), and its restart policy restarts it (the
/// stop is not taken as a user's). One that ignores its stop signal is
/// SIGKILLed once the grace period is over: the probe's own (2 s), else
/// the stop timeout (the pod's terminationGracePeriodSeconds, 3 s), not
/// 30 s.
#[test]
fn a_failed_liveness_probe_sends_the_stop_signal_then_sigkill_at_the_grace() {
    let env = Env::new();
    let img = image(&env);
    let out = tempfile::tempdir().unwrap();
    let vol = format!("{}:/out", out.path().display());
    let liveness = "kind=liveness,period=200ms,failure=1,exec=test -e /tmp/ok";
    // Its probe fails after a second, on the first run only.
    let trapper = run(
        &env,
        &[
            "-v",
            &vol,
            // It exits 0 on SIGTERM: restarted all the same (the kubelet
            // restarts a container its liveness probe stopped).
            "--restart",
            "on-failure",
            "--probe",
            liveness,
            img,
            "sh",
            "-c",
            "trap 'echo term >> /out/term; exit 0' TERM; touch /tmp/ok; \
             if [ ! -e /out/once ]; then touch /out/once; sleep 1; rm /tmp/ok; fi; \
             while :; do sleep 0.1; done",
        ],
    );
    let ignoring = "trap '' TERM; touch /tmp/ok; sleep 1; rm /tmp/ok; while :; do sleep 0.1; done";
    // (exec= is last: it takes the rest.)
    let own_grace = liveness.replace("failure=1,", "failure=1,grace=2s,");
    let own = run(&env, &["--probe", &own_grace, img, "sh", "-c", ignoring]);
    let pods = run(
        &env,
        &[
            "--stop-timeout",
            "3",
            "--probe",
            liveness,
            img,
            "sh",
            "-c",
            ignoring,
        ],
    );
    // From the failure (the status turns unhealthy) to the exit.
    let mut failed: [Option<Instant>; 2] = [None, None];
    let mut took: [Option<Duration>; 2] = [None, None];
    wait_long("the SIGKILLs", 40, || {
        for (i, id) in [&own, &pods].into_iter().enumerate() {
            if took[i].is_some() {
                continue;
            }
            let state = inspect(&env, id, "{{.State.Status}}");
            if failed[i].is_none() && status(&env, id) == "unhealthy" {
                failed[i] = Some(Instant::now());
            }
            if state == "exited" {
                took[i] = Some(failed[i].map_or(Duration::ZERO, |t| t.elapsed()));
            }
        }
        took.iter().all(Option::is_some)
    });
    let (own_took, pods_took) = (took[0].unwrap(), took[1].unwrap());
    eprintln!("SIGKILL {own_took:?} (probe grace 2 s), {pods_took:?} (stop timeout 3 s) after the failure");
    assert!(
        own_took >= Duration::from_millis(1500) && own_took < Duration::from_secs(6),
        "SIGKILL {own_took:?} after the failure, not at the probe's 2 s grace"
    );
    assert!(
        pods_took >= Duration::from_millis(2500) && pods_took < Duration::from_secs(7),
        "SIGKILL {pods_took:?} after the failure, not at the stop timeout's 3 s"
    );
    for id in [&own, &pods] {
        assert_eq!(inspect(&env, id, "{{.State.ExitCode}}"), "137");
    }
    // The trapping one got SIGTERM, exited 0, and was restarted by its
    // policy (10 s: Kubernetes' back-off) as a user's stop would not be.
    wait_long("the liveness restart", 40, || {
        inspect(&env, &trapper, "{{.RestartCount}}") == "1"
    });
    assert_eq!(
        std::fs::read_to_string(out.path().join("term")).unwrap_or_default(),
        "term\n",
        "the container got its stop signal, not an immediate SIGKILL"
    );
    wait_long("running again", 20, || {
        inspect(&env, &trapper, "{{.State.Status}}") == "running"
    });
    env.berth(&["rm", "-f", &trapper]).ok();
}

/// Pushes busybox with a HEALTHCHECK in its config; its name.
fn image_with_healthcheck() -> String {
    let reg = registry();
    let layer = busybox_rootfs(&APPLETS).end();
    let diff = berth_image::Digest::of(&layer);
    let blob = compress(&layer, &Comp::None);
    let ld = reg.push_blob("t/hc", &blob);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sleep", "1000"], "Env": ["PATH=/bin"],
            "Healthcheck": {"Test": ["CMD-SHELL", "echo from-image"], "Interval": 200_000_000u64, "Retries": 4}},
        "rootfs": {"type": "layers", "diff_ids": [diff.to_string()]}
    });
    let cb = serde_json::to_vec(&config).unwrap();
    let cd = reg.push_blob("t/hc", &cb);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cb.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld.to_string(), "size": blob.len()}]
    });
    reg.push_manifest(
        "t/hc",
        "v1",
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    format!("{}/t/hc:v1", reg.addr)
}

#[test]
fn the_images_healthcheck_is_inherited_and_no_healthcheck_turns_it_off() {
    let env = Env::new();
    let img = image_with_healthcheck();
    env.berth(&["pull", &img]).ok();
    let inherited = run(&env, &[&img]);
    // The container's flag wins, the image fills in the rest.
    let mixed = run(&env, &["--health-retries", "7", &img]);
    let off = run(&env, &["--no-healthcheck", &img]);
    wait_for("healthy from the image's check", || {
        status(&env, &inherited) == "healthy"
    });
    assert_eq!(health(&env, &inherited)["Log"][0]["Output"], "from-image\n");
    let hc = |id: &str| -> serde_json::Value {
        serde_json::from_str(&inspect(&env, id, "{{json .Config.Healthcheck}}")).unwrap()
    };
    assert_eq!(hc(&inherited)["Retries"], 4);
    assert_eq!(hc(&mixed)["Retries"], 7);
    assert_eq!(hc(&mixed)["Test"][1], "echo from-image");
    assert_eq!(hc(&off)["Test"], serde_json::json!(["NONE"]));
    std::thread::sleep(Duration::from_millis(500));
    assert!(health(&env, &off).is_null());
    assert!(!ps_status(&env, &off).contains("health"));
    let r = env.berth(&["healthcheck", "run", &off]);
    assert!(
        r.stderr.contains("has no defined healthcheck"),
        "{}",
        r.stderr
    );
}

#[test]
fn http_and_tcp_probes_reach_the_containers_loopback() {
    let env = Env::new();
    let img = image(&env);
    let id = run(
        &env,
        &[
            "--probe",
            "kind=readiness,http=8080/index.html,header=X-Probe: yes,period=200ms",
            "--probe",
            "kind=liveness,tcp=8080,period=200ms,failure=2",
            img,
            "httpd",
            "-f",
            "-p",
            "8080",
            "-h",
            "/www",
        ],
    );
    wait_for("ready", || inspect(&env, &id, "{{.State.Ready}}") == "true");
    // The liveness probe (the primary one after no Docker check) passes.
    wait_for("healthy", || status(&env, &id) == "healthy");
    let out = health(&env, &id)["Log"][0]["Output"].clone();
    assert_eq!(out, "", "a tcp probe has no output: {out}");

    // A readiness probe on a closed port: not ready, never killed.
    let closed = run(
        &env,
        &[
            "--probe",
            "kind=readiness,http=8081,period=200ms,failure=1",
            img,
            "httpd",
            "-f",
            "-p",
            "8080",
        ],
    );
    wait_for("a failed readiness check", || {
        status(&env, &closed) == "unhealthy"
    });
    assert_eq!(inspect(&env, &closed, "{{.State.Ready}}"), "false");
    let log = health(&env, &closed)["Log"][0]["Output"].clone();
    assert!(log.as_str().unwrap().contains("refused"), "{log}");
    // An HTTP error status fails too.
    let missing = run(
        &env,
        &[
            "--probe",
            "kind=readiness,http=8080/nope,period=200ms,failure=1",
            img,
            "httpd",
            "-f",
            "-p",
            "8080",
            "-h",
            "/www",
        ],
    );
    wait_for("a 404", || status(&env, &missing) == "unhealthy");
    let log = health(&env, &missing)["Log"][0]["Output"].clone();
    assert!(log.as_str().unwrap().contains("404"), "{log}");
    assert_eq!(inspect(&env, &closed, "{{.State.Status}}"), "running");

    // A liveness probe that fails stops the container (`sleep` as pid 1
    // ignores SIGTERM: SIGKILL at the 2 s grace).
    let dead = run(
        &env,
        &[
            "--probe",
            "kind=liveness,tcp=9999,period=200ms,failure=2,grace=2s",
            img,
            "sleep",
            "1000",
        ],
    );
    wait_for("the liveness kill", || {
        inspect(&env, &dead, "{{.State.Status}}") == "exited"
    });
    assert_eq!(inspect(&env, &dead, "{{.State.ExitCode}}"), "137");

    // With a restart policy, it restarts with Kubernetes' back-off (10 s
    // first), not Docker's (100 ms).
    let looping = run(
        &env,
        &[
            "--restart",
            "always",
            "--probe",
            "kind=liveness,tcp=9999,period=200ms,failure=1,grace=2s",
            img,
            "sleep",
            "1000",
        ],
    );
    wait_for("the liveness kill", || {
        inspect(&env, &looping, "{{.State.Status}}") == "restarting"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(inspect(&env, &looping, "{{.State.Status}}"), "restarting");
    assert_eq!(inspect(&env, &looping, "{{.RestartCount}}"), "0");
}

#[test]
fn a_check_printing_megabytes_stays_bounded() {
    let env = Env::new();
    let img = image(&env);
    let id = run(
        &env,
        &[
            "--health-cmd",
            "yes | head -c 5000000; exit 0",
            "--health-interval",
            "200ms",
            img,
            "sleep",
            "1000",
        ],
    );
    let endless = run(
        &env,
        &[
            "--health-cmd",
            "yes",
            "--health-interval",
            "200ms",
            "--health-timeout",
            "500ms",
            "--health-retries",
            "1",
            img,
            "sleep",
            "1000",
        ],
    );
    wait_for("healthy", || status(&env, &id) == "healthy");
    let out = health(&env, &id)["Log"][0]["Output"]
        .as_str()
        .unwrap()
        .len();
    assert_eq!(out, 4096);
    wait_for("the endless check timed out", || {
        status(&env, &endless) == "unhealthy"
    });
    let h = health(&env, &endless);
    assert_eq!(h["Log"][0]["ExitCode"], -1);
    // The monitors stay small: the output is read and dropped past 4 KiB.
    let run_dir = env.run_root.path().join("containers");
    let state = std::fs::read_dir(&run_dir)
        .unwrap()
        .filter_map(|d| std::fs::read_to_string(d.unwrap().path().join("state")).ok())
        .collect::<Vec<_>>();
    for s in state {
        let pid: i32 = s
            .lines()
            .find_map(|l| l.strip_prefix("monitor_pid="))
            .unwrap()
            .parse()
            .unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        // The peak: a check's output held whole would show here.
        let rss: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .unwrap()
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .parse()
            .unwrap();
        assert!(
            rss < 6 * 1024,
            "the monitor {pid} peaked at {rss} kB resident"
        );
    }
}

/// How often process `pid` has slept and woken.
fn wakeups(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_startup_probe_holds_the_others_back_and_the_monitor_idles() {
    let env = Env::new();
    let img = image(&env);
    let id = run(
        &env,
        &[
            "--probe",
            "kind=startup,period=200ms,failure=1000,exec=test -e /tmp/up",
            "--probe",
            "kind=liveness,tcp=1,period=200ms,failure=2,grace=2s",
            img,
            "sleep",
            "1000",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let monitor: i32 = inspect(&env, &id, "{{.State.Pid}}").parse().unwrap();
    let monitor = std::fs::read_to_string(format!("/proc/{monitor}/stat"))
        .unwrap()
        .split(' ')
        .nth(3)
        .unwrap()
        .parse::<i32>()
        .unwrap();
    let before = wakeups(monitor);
    std::thread::sleep(Duration::from_millis(1500));
    let woke = wakeups(monitor) - before;
    // The liveness probe waits (it would have killed the container by now).
    assert_eq!(inspect(&env, &id, "{{.State.Status}}"), "running");
    assert_eq!(inspect(&env, &id, "{{.State.Ready}}"), "false");
    // A waiting probe is no reason to wake: no busy loop (a wake-up a
    // millisecond before the fix; a few dozen for the startup checks now).
    assert!(woke < 300, "the monitor woke {woke} times in 1.5 s");
    env.berth(&["exec", &id, "touch", "/tmp/up"]).ok();
    wait_for("the liveness kill after the startup", || {
        inspect(&env, &id, "{{.State.Status}}") == "exited"
    });
    assert_eq!(inspect(&env, &id, "{{.State.ExitCode}}"), "137");
}

/// An image whose /usr is the host's, mounted read-only at run
/// (`HOST_USR`): the host's openssl and python3 (with Debian's
/// python3-grpcio) serve HTTPS and gRPC inside the container.
fn host_usr_image(env: &Env) -> &'static str {
    let mut t = busybox_rootfs(&APPLETS);
    t.dir("usr/", 0o755)
        .symlink("lib", "usr/lib")
        .symlink("lib64", "usr/lib64")
        .dir("srv/", 0o755);
    import_image(env, t.end(), "hostusr:latest")
}

const HOST_USR: [&str; 2] = ["-v", "/usr:/usr:ro"];

/// A self-signed certificate and key (openssl's CLI) in a temporary
/// directory, for the HTTPS servers of these tests.
fn self_signed() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        std::path::Path::new("/usr/bin/openssl").exists(),
        "/usr/bin/openssl is needed: apt-get install openssl"
    );
    let o = std::process::Command::new("/usr/bin/openssl")
        .current_dir(dir.path())
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-days",
            "2",
            "-subj",
            "/CN=probe",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "openssl req: {o:?}");
    for f in ["k.pem", "c.pem"] {
        std::fs::set_permissions(
            dir.path().join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

/// Waits for the health status `want`; on a timeout, fails with the
/// health log and the container's output.
fn wait_status(env: &Env, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(env, id) != want {
        if Instant::now() >= deadline {
            let logs = env.berth(&["logs", id]);
            panic!(
                "timed out waiting for {want}: {}\nlogs: {}{}",
                health(env, id),
                logs.stdout,
                logs.stderr
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Python's HTTP server (files of the current directory, 404 for a
/// missing one) behind TLS with the self-signed certificate; it prints the
/// X-Probe header of each request.
const HTTPS_SERVER: &str = r#"
import http.server, ssl, sys
class H(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        print("X-Probe=" + str(self.headers.get("X-Probe")), flush=True)
        super().do_GET()
s = http.server.HTTPServer(("127.0.0.1", 8443), H)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
c.load_cert_chain("/certs/c.pem", "/certs/k.pem")
s.socket = c.wrap_socket(s.socket, server_side=True)
s.serve_forever()
"#;

fn last_output(env: &Env, id: &str) -> String {
    let h = health(env, id);
    h["Log"]
        .as_array()
        .and_then(|l| l.last())
        .map(|e| e["Output"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// The monitor of a running container: its init's parent (the monitor is
/// the child subreaper that the init is re-parented to).
fn monitor_pid(env: &Env, id: &str) -> i32 {
    let pid = inspect(env, id, "{{.State.Pid}}");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The children of `ppid` whose command line starts with the berth
/// binary's `container probe`, with their states (R, S, Z...).
fn probe_helpers(ppid: i32) -> Vec<(i32, char)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        if f.get(1).and_then(|p| p.parse::<i32>().ok()) != Some(ppid) {
            continue;
        }
        let comm = &stat[stat.find('(').unwrap() + 1..close];
        if comm == "berth" {
            v.push((pid, f[0].chars().next().unwrap()));
        }
    }
    v
}

/// Kubernetes' httpGet with scheme HTTPS: the monitor hands the connected
/// socket to its helper (`berth container probe https`), which does not
/// verify the self-signed certificate; 200 passes, 404 fails, with the
/// status line in the log. The monitor itself links no TLS.
#[test]
fn an_https_probe_passes_on_200_and_fails_on_404() {
    let env = Env::new();
    let img = host_usr_image(&env);
    let certs = self_signed();
    std::fs::write(certs.path().join("server.py"), HTTPS_SERVER).unwrap();
    let vol = format!("{}:/certs:ro", certs.path().display());
    let mut a = HOST_USR.to_vec();
    a.extend([
        "-v",
        &vol,
        "--probe",
        "kind=readiness,https=8443/ok,header=X-Probe: yes,period=200ms,failure=1,timeout=3s",
        img,
        "sh",
        "-c",
        "echo fine > /srv/ok; cd /srv; exec /usr/bin/python3 /certs/server.py",
    ]);
    let id = run(&env, &a);
    wait_status(&env, &id, "healthy");
    let out = last_output(&env, &id);
    assert!(out.starts_with("HTTP/1.0 200"), "{out:?}");
    env.berth(&["exec", &id, "rm", "/srv/ok"]).ok();
    wait_status(&env, &id, "unhealthy");
    let out = last_output(&env, &id);
    assert!(out.contains(" 404"), "{out:?}");
    let h = health(&env, &id);
    let failed = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(failed["ExitCode"], 1, "{h}");
    let logs = env.berth(&["logs", &id]).ok().stdout;
    assert!(logs.lines().any(|l| l == "X-Probe=yes"), "{logs}");
    // The helper is reaped after each check: none is left a zombie.
    let m = monitor_pid(&env, &id);
    assert!(
        probe_helpers(m).iter().all(|(_, st)| *st != 'Z'),
        "{:?}",
        probe_helpers(m)
    );
    env.berth(&["rm", "-f", &id]).ok();
}

/// An HTTPS probe on a server that never answers is killed at its
/// timeout (the monitor SIGKILLs and reaps its helper), and one on a
/// plain-HTTP server fails its TLS handshake.
#[test]
fn an_https_probe_times_out_and_fails_on_plain_http() {
    let env = Env::new();
    let img = image(&env);
    let usr_img = host_usr_image(&env);
    let silent = run(
        &env,
        &[
            HOST_USR[0],
            HOST_USR[1],
            "--probe",
            "kind=readiness,https=8443/,period=200ms,timeout=400ms,failure=1",
            usr_img,
            "sh",
            "-c",
            // Listens, never accepts: the kernel completes the handshakes.
            "exec /usr/bin/python3 -c 'import socket, time; s = socket.socket(); s.bind((\"127.0.0.1\", 8443)); s.listen(128); time.sleep(1000)'",
        ],
    );
    let plain = run(
        &env,
        &[
            "--probe",
            "kind=readiness,https=8080/index.html,period=200ms,failure=1",
            img,
            "httpd",
            "-f",
            "-p",
            "8080",
            "-h",
            "/www",
        ],
    );
    wait_for("the timeout", || {
        last_output(&env, &silent).contains("exceeded timeout")
    });
    assert_eq!(status(&env, &silent), "unhealthy");
    wait_status(&env, &plain, "unhealthy");
    let out = last_output(&env, &plain);
    assert!(out.contains("https://127.0.0.1:8080/index.html"), "{out:?}");
    // Several checks have timed out by now: their helpers were killed and
    // reaped, at most the current one runs.
    let m = monitor_pid(&env, &silent);
    std::thread::sleep(Duration::from_millis(1500));
    let helpers = probe_helpers(m);
    assert!(
        helpers.len() <= 1 && helpers.iter().all(|(_, st)| *st != 'Z'),
        "{helpers:?}"
    );
    env.berth(&["rm", "-f", &silent, &plain]).ok();
}

/// A gRPC health server (Debian's python3-grpcio: a real HTTP/2 gRPC
/// stack) whose answer per service is the file /tmp/grpc/SERVICE
/// (SERVING or NOT_SERVING); an unknown service is NOT_FOUND, as
/// grpc's own health servicer answers. The messages are encoded by hand
/// (two fields); grpcio is given raw bytes.
const GRPC_SERVER: &str = r#"
import grpc, os, sys
from concurrent import futures
def check(req, ctx):
    service = req[2:2 + req[1]].decode() if req else ""
    try:
        st = open("/tmp/grpc/" + (service or "_")).read().strip()
    except FileNotFoundError:
        ctx.abort(grpc.StatusCode.NOT_FOUND, "unknown service " + service)
    return bytes([0x08, {"SERVING": 1, "NOT_SERVING": 2}[st]])
h = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
    "Check": grpc.unary_unary_rpc_method_handler(check)})
s = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
s.add_generic_rpc_handlers((h,))
s.add_insecure_port("127.0.0.1:50051")
s.start()
print("serving", flush=True)
s.wait_for_termination()
"#;

fn require_grpcio() {
    let o = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import grpc"])
        .output()
        .expect("/usr/bin/python3 is needed");
    assert!(
        o.status.success(),
        "python3-grpcio is needed (apt-get install python3-grpcio): {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Kubernetes' grpc probe: grpc.health.v1.Health/Check over HTTP/2 with
/// the probe's service; SERVING passes, NOT_SERVING and an error
/// (NOT_FOUND) fail, with the kubelet's messages.
#[test]
fn a_grpc_probe_follows_the_services_serving_status() {
    require_grpcio();
    let env = Env::new();
    let img = host_usr_image(&env);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.py"), GRPC_SERVER).unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let vol = format!("{}:/app:ro", dir.path().display());
    let mut a = HOST_USR.to_vec();
    a.extend([
        "-v",
        &vol,
        "--probe",
        "kind=readiness,grpc=50051,service=db,period=200ms,failure=1,timeout=3s",
        img,
        "sh",
        "-c",
        "mkdir -p /tmp/grpc && echo SERVING > /tmp/grpc/db && exec /usr/bin/python3 /app/server.py",
    ]);
    let id = run(&env, &a);
    wait_status(&env, &id, "healthy");
    assert_eq!(last_output(&env, &id).trim(), "service healthy");
    env.berth(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo NOT_SERVING > /tmp/grpc/n && mv /tmp/grpc/n /tmp/grpc/db",
    ])
    .ok();
    wait_status(&env, &id, "unhealthy");
    let out = last_output(&env, &id);
    assert_eq!(
        out.trim(),
        r#"service unhealthy (responded with "NOT_SERVING")"#
    );
    env.berth(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo SERVING > /tmp/grpc/n && mv /tmp/grpc/n /tmp/grpc/db",
    ])
    .ok();
    wait_status(&env, &id, "healthy");
    env.berth(&["exec", &id, "rm", "/tmp/grpc/db"]).ok();
    wait_status(&env, &id, "unhealthy");
    let out = last_output(&env, &id);
    assert!(
        out.contains("code = 5") && out.contains("unknown service db"),
        "{out:?}"
    );
    env.berth(&["rm", "-f", &id]).ok();
}

/// A stopped container keeps its health log and failing streak in
/// `inspect` (its monitor keeps them at the end), with the status
/// unhealthy (Docker's rule); started again, its log goes on.
#[test]
fn a_stopped_container_keeps_its_health_log() {
    let env = Env::new();
    let img = image(&env);
    let id = run(
        &env,
        &[
            "--health-cmd",
            "echo ran",
            "--health-interval",
            "200ms",
            img,
            "sleep",
            "1000",
        ],
    );
    wait_status(&env, &id, "healthy");
    env.berth(&["stop", "-t", "0", &id]).ok();
    assert_eq!(inspect(&env, &id, "{{.State.Status}}"), "exited");
    let h = health(&env, &id);
    assert_eq!(h["Status"], "unhealthy", "{h}");
    let log = h["Log"].as_array().unwrap().clone();
    assert!(!log.is_empty(), "{h}");
    assert_eq!(log.last().unwrap()["ExitCode"], 0, "{h}");
    assert_eq!(log.last().unwrap()["Output"], "ran\n", "{h}");
    // ps shows no health for a stopped container (Docker's).
    assert!(!ps_status(&env, &id).contains("health"));
    env.berth(&["start", &id]).ok();
    wait_for("a check of the new run", || {
        health(&env, &id)["Log"]
            .as_array()
            .and_then(|l| l.last().cloned())
            .is_some_and(|e| e["Start"] != log.last().unwrap()["Start"])
    });
    // The entries of the first run are still there.
    let again = health(&env, &id);
    let first_start = &log.last().unwrap()["Start"];
    assert!(
        again["Log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| &e["Start"] == first_start),
        "{again}"
    );
    env.berth(&["rm", "-f", &id]).ok();
}
