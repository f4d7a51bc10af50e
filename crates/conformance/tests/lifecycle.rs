//! runtime.md: the lifecycle, the state operation, kill, delete, ids, and
//! the runc command-line contract around them.

mod common;
use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn run_returns_the_exit_code() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "exit 7"]);
    assert_eq!(rt.run(&b).code, 7);
    // Without a pid namespace of its own (pid 1 of a namespace ignores
    // signals it sent itself), the process can kill itself.
    b.id = unique_id("sig");
    b.remove_namespace(oci_spec::runtime::LinuxNamespaceType::Pid);
    b.set_args(&["sh", "-c", "kill -KILL $$"]);
    assert_eq!(rt.run(&b).code, 128 + 9, "killed by SIGKILL: 128+9");
    b.id = unique_id("ok");
    b.set_args(&["true"]);
    assert_eq!(rt.run(&b).code, 0);
    assert!(
        rt.exec(&["list", "-q"]).ok().stdout.trim().is_empty(),
        "run deletes the container"
    );
}

#[test]
fn stdio_passes_through() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "echo out; echo err >&2"]);
    let o = rt.run(&b).ok();
    assert_eq!(o.stdout, "out\n");
    assert!(o.stderr.contains("err\n"), "{}", o.stderr);
}

#[test]
fn create_start_state_delete() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "echo started > /tmp/started; sleep 1"]);
    let pidfile = b.path().join("pid");
    b.write();
    rt.exec_files(
        &[
            "create",
            "--bundle",
            b.path().to_str().unwrap(),
            "--pid-file",
            pidfile.to_str().unwrap(),
            &b.id,
        ],
        b.path(),
    )
    .ok();
    let st = rt.state(&b.id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], b.id.as_str());
    assert_eq!(st["bundle"], b.path().to_str().unwrap());
    assert!(st["ociVersion"].as_str().unwrap().starts_with("1."));
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );
    // Created: the user's program has not run yet.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        !b.rootfs().join("tmp/started").exists(),
        "the process ran before start"
    );
    rt.exec(&["start", &b.id]).ok();
    assert_eq!(rt.status(&b.id), "running");
    rt.wait_status(&b.id, "stopped");
    assert!(b.rootfs().join("tmp/started").exists());
    assert_eq!(
        rt.exec(&["start", &b.id]).code,
        1,
        "a stopped container cannot be started"
    );
    rt.exec(&["delete", &b.id]).ok();
    assert_ne!(
        rt.exec(&["state", &b.id]).code,
        0,
        "state of a deleted container is an error"
    );
}

#[test]
fn options_may_follow_the_id() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    b.write();
    rt.exec_files(
        &["create", &b.id, "--bundle", b.path().to_str().unwrap()],
        b.path(),
    )
    .ok();
    assert_eq!(rt.status(&b.id), "created");
    rt.exec(&["delete", &b.id]).ok();
}

#[test]
fn kill_and_delete_in_every_state() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    rt.create(&b).ok();
    // A created container may be deleted (its init only waits).
    rt.exec(&["delete", &b.id]).ok();

    let mut b = Bundle::new(&["sleep", "100"]);
    rt.create(&b).ok();
    rt.exec(&["start", &b.id]).ok();
    let d = rt.exec(&["delete", &b.id]);
    assert_ne!(d.code, 0, "delete of a running container must fail");
    assert_eq!(rt.status(&b.id), "running", "a failed delete has no effect");
    rt.exec(&["kill", &b.id, "KILL"]).ok();
    rt.wait_status(&b.id, "stopped");
    assert_ne!(
        rt.exec(&["kill", &b.id, "TERM"]).code,
        0,
        "kill of a stopped container must fail"
    );
    rt.exec(&["delete", &b.id]).ok();

    // Signal by number, and delete --force of a running container.
    b.id = unique_id("k");
    rt.create(&b).ok();
    rt.exec(&["start", &b.id]).ok();
    rt.exec(&["kill", &b.id, "9"]).ok();
    rt.wait_status(&b.id, "stopped");
    rt.exec(&["delete", &b.id]).ok();
    b.id = unique_id("f");
    rt.create(&b).ok();
    rt.exec(&["start", &b.id]).ok();
    rt.exec(&["delete", "--force", &b.id]).ok();
    assert_ne!(rt.exec(&["state", &b.id]).code, 0);
}

#[test]
fn kill_all_signals_every_process() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    rt.create(&b).ok();
    rt.exec(&["start", &b.id]).ok();
    std::thread::sleep(std::time::Duration::from_millis(200));
    rt.exec(&["kill", "--all", &b.id, "KILL"]).ok();
    rt.wait_status(&b.id, "stopped");
    rt.exec(&["delete", &b.id]).ok();
}

#[test]
fn state_is_stopped_when_the_process_is_gone() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    rt.create(&b).ok();
    rt.exec(&["start", &b.id]).ok();
    let pid = rt.state(&b.id)["pid"].as_i64().unwrap() as i32;
    // Killed behind the runtime's back.
    // SAFETY: plain kill(2) of the container's process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    rt.wait_status(&b.id, "stopped");
    rt.exec(&["delete", &b.id]).ok();
}

#[test]
fn state_survives_pid_reuse() {
    if !is_berth() {
        return; // edits berth's own state file
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    rt.create(&b).ok();
    rt.exec(&["start", &b.id]).ok();
    // Point the record at a live process that is not the container (our
    // own pid, as after pid reuse): with a different start time it must
    // read as stopped, and kill must not signal it.
    let path = rt.root.path().join(&b.id).join("state.json");
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let real = rec["pid"].clone();
    rec["pid"] = std::process::id().into();
    std::fs::write(&path, rec.to_string()).unwrap();
    assert_eq!(rt.status(&b.id), "stopped");
    assert_ne!(rt.exec(&["kill", &b.id, "TERM"]).code, 0);
    rec["pid"] = real;
    std::fs::write(&path, rec.to_string()).unwrap();
    rt.exec(&["delete", "--force", &b.id]).ok();
}

#[test]
fn ids_are_validated_and_unique() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.write();
    for bad in ["../escape", "a/b", "..", ""] {
        let o = rt.exec_files(
            &["create", "--bundle", b.path().to_str().unwrap(), bad],
            b.path(),
        );
        assert_ne!(o.code, 0, "id {bad:?} accepted");
    }
    assert!(!rt.root.path().parent().unwrap().join("escape").exists());
    rt.create(&b).ok();
    let dup = rt.create(&b);
    assert_ne!(dup.code, 0, "duplicate id accepted");
    assert_eq!(
        rt.status(&b.id),
        "created",
        "the first container is untouched"
    );
    rt.exec(&["delete", &b.id]).ok();
    b.id = "x".repeat(2000);
    assert_ne!(rt.create(&b).code, 0, "an over-long id accepted");
}

#[test]
fn parallel_creates_do_not_interfere() {
    let rt = Runtime::new();
    let bundles: Vec<Bundle> = (0..8).map(|_| Bundle::new(&["sleep", "100"])).collect();
    for b in &bundles {
        b.write();
    }
    std::thread::scope(|s| {
        for b in &bundles {
            let rt = &rt;
            s.spawn(move || {
                rt.exec_files(
                    &["create", "--bundle", b.path().to_str().unwrap(), &b.id],
                    b.path(),
                )
                .ok();
            });
        }
    });
    let list = rt.exec(&["list", "--format", "json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 8);
    std::thread::scope(|s| {
        for b in &bundles {
            let rt = &rt;
            s.spawn(move || {
                rt.exec(&["delete", "--force", &b.id]).ok();
            });
        }
    });
    assert!(rt.exec(&["list", "-q"]).ok().stdout.trim().is_empty());
}

#[test]
fn list_formats() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    rt.create(&b).ok();
    let table = rt.exec(&["list"]).ok().stdout;
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&b.id) && table.contains("created"));
    assert_eq!(rt.exec(&["list", "-q"]).ok().stdout.trim(), b.id);
    let j = rt.exec(&["list", "--format", "json"]).ok().json();
    assert_eq!(j[0]["id"], b.id.as_str());
    assert_eq!(j[0]["status"], "created");
    rt.exec(&["delete", &b.id]).ok();
}

#[test]
fn version_and_features() {
    let rt = Runtime::new();
    let v = rt.exec(&["--version"]).ok().stdout;
    let lines: Vec<&str> = v.lines().collect();
    assert!(lines[0].contains(" version "), "{v}");
    assert!(lines.iter().any(|l| l.starts_with("spec: 1.")), "{v}");
    let f = rt.exec(&["features"]).ok().json();
    assert!(f["ociVersionMax"].as_str().unwrap().starts_with("1."));
    let ns = f["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n == "user") && ns.iter().any(|n| n == "time"));
    assert!(f["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == "rro"));
    let sc = &f["linux"]["seccomp"];
    if is_berth() {
        assert_eq!(sc["enabled"], true);
        for (key, want) in [
            ("actions", "SCMP_ACT_NOTIFY"),
            ("operators", "SCMP_CMP_MASKED_EQ"),
            ("archs", "SCMP_ARCH_X86_64"),
            ("knownFlags", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"),
            ("supportedFlags", "SECCOMP_FILTER_FLAG_LOG"),
        ] {
            assert!(
                sc[key].as_array().unwrap().iter().any(|a| a == want),
                "features.linux.seccomp.{key} lacks {want}: {sc}"
            );
        }
    }
}

#[test]
fn spec_writes_a_valid_config() {
    let rt = Runtime::new();
    let d = tempfile::tempdir().unwrap();
    rt.exec(&["spec", "--bundle", d.path().to_str().unwrap()])
        .ok();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["args"][0], "sh");
    assert_ne!(
        rt.exec(&["spec", "--bundle", d.path().to_str().unwrap()])
            .code,
        0,
        "must not overwrite"
    );
}

#[test]
fn log_json_records_the_error() {
    if !is_berth() {
        return; // runc's message differs; the format is what containerd parses
    }
    let rt = Runtime::new();
    let log = rt.root.path().join("log.json");
    let o = Out::from_output(
        rt.cmd()
            .args([
                "--log",
                log.to_str().unwrap(),
                "--log-format",
                "json",
                "state",
                "nope",
            ])
            .output()
            .unwrap(),
    );
    assert_ne!(o.code, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains("nope"), "{last}");
    assert!(last["time"].as_str().unwrap().ends_with('Z'));
}

/// A foreground `run` waits for its container without holding the state
/// lock: `state`, `kill` and `delete --force` from another shell work while
/// it waits (regression: `kill` used to block until the container ended).
#[test]
fn commands_work_while_run_waits() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "60"]);
    b.write();
    let spawn = || {
        rt.cmd()
            .args(["run", "--bundle", b.path().to_str().unwrap(), &b.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn run")
    };
    let wait = |child: &mut std::process::Child| -> i32 {
        for _ in 0..1000 {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code().expect("run exits, not killed");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        panic!("run did not return within 10 s");
    };
    let mut child = spawn();
    rt.wait_status(&b.id, "running");
    let kill = rt
        .cmd()
        .args(["kill", &b.id, "KILL"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let out = kill.wait_with_output().unwrap();
    assert!(out.status.success(), "kill: {:?}", out);
    assert!(started.elapsed() < Duration::from_secs(5), "kill blocked");
    assert_eq!(wait(&mut child), 128 + 9, "run reports SIGKILL as 137");
    assert!(rt.exec(&["list", "-q"]).ok().stdout.trim().is_empty());

    // delete --force from elsewhere: run returns and does not fail on the
    // container that is gone.
    let mut child = spawn();
    rt.wait_status(&b.id, "running");
    rt.exec(&["delete", "--force", &b.id]).ok();
    assert_eq!(wait(&mut child), 128 + 9);
    assert!(rt.exec(&["list", "-q"]).ok().stdout.trim().is_empty());
}

/// pause/resume through the cgroup freezer; `state` says paused; kill and
/// delete --force work on a paused container.
#[test]
fn pause_resume_and_kill_or_delete_when_paused() {
    let rt = Runtime::new();
    let frozen = |b: &Bundle| {
        if cgroup_v2() {
            std::fs::read_to_string(b.cgroup_dir("").join("cgroup.events"))
                .unwrap()
                .contains("frozen 1")
        } else {
            std::fs::read_to_string(b.cgroup_dir("freezer").join("freezer.state")).unwrap()
                == "FROZEN\n"
        }
    };
    let b = Bundle::new(&[
        "sh",
        "-c",
        "while true; do echo tick >> /tmp/ticks; sleep 0.05; done",
    ]);
    rt.start_detached(&b);
    rt.exec(&["pause", &b.id]).ok();
    assert_eq!(rt.status(&b.id), "paused");
    assert!(frozen(&b));
    let ticks = || {
        std::fs::read_to_string(b.rootfs().join("tmp/ticks"))
            .unwrap_or_default()
            .len()
    };
    let before = ticks();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ticks(), before, "a paused container does not run");
    assert_ne!(
        rt.exec(&["pause", &b.id]).code,
        0,
        "pausing twice is an error"
    );
    rt.exec(&["resume", &b.id]).ok();
    assert_eq!(rt.status(&b.id), "running");
    assert!(!frozen(&b));
    std::thread::sleep(Duration::from_millis(300));
    assert!(ticks() > before, "a resumed container runs again");
    assert_ne!(
        rt.exec(&["resume", &b.id]).code,
        0,
        "resuming a running container is an error"
    );

    // kill -KILL of a paused container.
    rt.exec(&["pause", &b.id]).ok();
    rt.exec(&["kill", &b.id, "KILL"]).ok();
    rt.wait_status(&b.id, "stopped");
    rt.exec(&["delete", &b.id]).ok();

    // delete --force of a paused container leaves nothing.
    let mut b2 = Bundle::new(&["sleep", "100"]);
    b2.id = unique_id("paused");
    rt.start_detached(&b2);
    rt.exec(&["pause", &b2.id]).ok();
    rt.exec(&["delete", "--force", &b2.id]).ok();
    assert!(rt.exec(&["list", "-q"]).ok().stdout.trim().is_empty());
    assert!(!b2.cgroup_dir("freezer").exists(), "cgroup left behind");
}

/// ps: the container's processes (the init and an exec'd one), as JSON pids
/// or as the host's ps output filtered to them.
#[test]
fn ps_lists_the_containers_processes() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let init = rt.start_detached(&b) as i64;
    let exec_pid = rt.exec_detached(&b, &["sleep", "77"]) as i64;
    let json = rt.exec(&["ps", "--format", "json", &b.id]).ok().json();
    let mut want = vec![init, exec_pid];
    want.sort();
    assert_eq!(json, serde_json::json!(want));
    let table = rt.exec(&["ps", &b.id, "-o", "pid,args"]).ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("PID"), "{table}");
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        table.contains("sleep 100") && table.contains("sleep 77"),
        "{table}"
    );
    rt.exec(&["kill", &b.id, "KILL"]).ok();
    rt.wait_status(&b.id, "stopped");
    assert_eq!(
        rt.exec(&["ps", "--format", "json", &b.id]).ok().json(),
        serde_json::json!([])
    );
}

/// update: flags and --resources JSON reach the cgroup; a request with any
/// unsupported or malformed part changes nothing.
#[test]
fn update_changes_the_limits() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    rt.start_detached(&b);
    let read = |c: &str, f: &str| {
        std::fs::read_to_string(b.cgroup_dir(c).join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    let (mem, pids) = if cgroup_v2() {
        (("memory", "memory.max"), ("pids", "pids.max"))
    } else {
        (("memory", "memory.limit_in_bytes"), ("pids", "pids.max"))
    };
    rt.exec(&["update", "--memory", "64m", "--pids-limit", "20", &b.id])
        .ok();
    assert_eq!(read(mem.0, mem.1), "67108864");
    assert_eq!(read(pids.0, pids.1), "20");
    let file = b.path().join("res.json");
    std::fs::write(
        &file,
        r#"{"pids": {"limit": 33}, "memory": {"limit": 134217728}}"#,
    )
    .unwrap();
    rt.exec(&["update", "--resources", file.to_str().unwrap(), &b.id])
        .ok();
    assert_eq!(read(pids.0, pids.1), "33");
    assert_eq!(read(mem.0, mem.1), "134217728");
    // Malformed: nothing applied.
    std::fs::write(
        &file,
        r#"{"pids": {"limit": 44}, "memory": {"limit": "lots"}}"#,
    )
    .unwrap();
    let o = rt.exec(&["update", "--resources", file.to_str().unwrap(), &b.id]);
    assert_ne!(o.code, 0);
    assert_eq!(read(pids.0, pids.1), "33");
    if is_berth() {
        assert!(o.stderr.contains("memory.limit"), "{}", o.stderr);
        // One refused part (a bad unified key): nothing is applied.
        std::fs::write(
            &file,
            r#"{"pids": {"limit": 55}, "unified": {"../x": "1"}}"#,
        )
        .unwrap();
        let o = rt.exec(&["update", "--resources", file.to_str().unwrap(), &b.id]);
        assert_ne!(o.code, 0);
        assert!(o.stderr.contains("linux.resources.unified"), "{}", o.stderr);
        assert_eq!(read(pids.0, pids.1), "33", "nothing applied");
    }
    rt.exec(&["delete", "--force", &b.id]).ok();
    assert_ne!(
        rt.exec(&["update", "--pids-limit", "5", &b.id]).code,
        0,
        "gone"
    );
}

/// memory.checkBeforeUpdate: a limit below what the container already uses
/// is refused (and nothing changes); one above it is applied.
#[test]
fn update_checks_a_memory_limit_against_usage() {
    let rt = Runtime::new();
    // 8 MiB of tmpfs pages are charged to the container and cannot be
    // reclaimed without swap.
    let b = Bundle::new(&[
        "sh",
        "-c",
        "head -c 8388608 /dev/zero > /dev/shm/fill && touch /tmp/ready; sleep 100",
    ]);
    rt.start_detached(&b);
    let ready = b.path().join("rootfs/tmp/ready");
    let t0 = std::time::Instant::now();
    while !ready.exists() {
        assert!(
            t0.elapsed().as_secs() < 60,
            "the container never filled /dev/shm"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let limit_file = if cgroup_v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let read = || {
        std::fs::read_to_string(b.cgroup_dir("memory").join(limit_file))
            .unwrap()
            .trim()
            .to_string()
    };
    let before = read();
    let file = b.path().join("res.json");
    let update = |limit: u64| {
        std::fs::write(
            &file,
            serde_json::json!({"memory": {"limit": limit, "checkBeforeUpdate": true}}).to_string(),
        )
        .unwrap();
        rt.exec(&["update", "--resources", file.to_str().unwrap(), &b.id])
    };
    let o = update(4 << 20);
    assert_ne!(o.code, 0, "a limit below the usage was applied");
    if is_berth() {
        assert!(o.stderr.contains("below the current usage"), "{}", o.stderr);
    }
    assert_eq!(read(), before, "the refused limit changed something");
    update(64 << 20).ok();
    assert_eq!(read(), "67108864");
    rt.exec(&["delete", "--force", &b.id]).ok();
}

/// events: --stats prints runc's schema once; the stream reports an OOM
/// kill of a process that outgrew the memory limit.
#[test]
fn events_stats_and_oom() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    let limit = 32u64 << 20;
    b.linux().set_resources(Some(
        serde_json::from_value(serde_json::json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": limit, "swap": limit},
            "pids": {"limit": 50}
        }))
        .unwrap(),
    ));
    rt.start_detached(&b);
    let ev = rt.exec(&["events", "--stats", &b.id]).ok().json();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], b.id.as_str());
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], limit, "{ev}");
    assert!(
        ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{ev}"
    );
    assert_eq!(ev["data"]["pids"]["limit"], 50);
    assert!(ev["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{ev}");
    assert!(
        ev["data"]["cpu"]["usage"]["total"].as_u64().is_some(),
        "{ev}"
    );

    let stream = rt
        .cmd()
        .args(["events", "--interval", "30s", &b.id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // 64 MiB of buffer in a 32 MiB cgroup: the OOM killer ends it.
    let o = rt.exec(&[
        "exec",
        &b.id,
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(o.code, 128 + 9, "killed by the OOM killer: {}", o.stderr);
    std::thread::sleep(Duration::from_millis(300));
    rt.exec(&["kill", &b.id, "KILL"]).ok();
    // The stream ends with the container; a watchdog turns a hang into a
    // failure.
    let pid = stream.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(20));
        if !done2.load(std::sync::atomic::Ordering::SeqCst) {
            // SAFETY: plain syscall on our own, not yet reaped, child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let out = stream.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        out.status.success(),
        "events did not end with the container: {:?}",
        out.status
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().any(|e| e["type"] == "stats"), "{text}");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "oom" && e["id"] == b.id.as_str()),
        "no oom event: {text}"
    );
}
