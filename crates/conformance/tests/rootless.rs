//! Rootless: an unprivileged user runs containers. The config comes from
//! `spec --rootless` (or adds subordinate ids), the state lives under
//! `$XDG_RUNTIME_DIR`, `--rootless` is `auto`, and without a delegated
//! cgroup the container runs without one (and says so), while limits that
//! could then not be enforced are refused.

mod common;
use common::*;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// An unprivileged id with no passwd entry: the kernel needs none, and
/// neither does a single-id rootless container.
const UID: u32 = 23456;

fn chown_r(path: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .args(["-R", &format!("{uid}:{gid}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "chown -R {}", path.display());
}

/// A directory the user owns, for XDG_RUNTIME_DIR.
fn user_dir(uid: u32, gid: u32) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("berth-xdg")
        .tempdir()
        .unwrap();
    chown_r(d.path(), uid, gid);
    d
}

/// The runtime as `uid:gid` (no supplementary groups), without --root,
/// in `cwd`; the container's stdio go to files in `cwd`.
fn as_user(uid: u32, gid: u32, xdg: &Path, args: &[&str], cwd: &Path) -> Out {
    as_user_in(uid, gid, xdg, args, cwd, &[])
}

/// [`as_user`], started in the cgroups whose `cgroup.procs` files are given
/// (the process moves itself there while still root, then drops to the
/// user, as a login manager places a session in its delegated cgroup).
fn as_user_in(
    uid: u32,
    gid: u32,
    xdg: &Path,
    args: &[&str],
    cwd: &Path,
    cgroup_procs: &[std::path::PathBuf],
) -> Out {
    let out = std::fs::File::create(cwd.join("stdout.log")).unwrap();
    let err = std::fs::File::create(cwd.join("stderr.log")).unwrap();
    let procs: Vec<std::ffi::CString> = cgroup_procs
        .iter()
        .map(|p| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap())
        .collect();
    let mut cmd = Command::new(runtime_bin());
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls on memory prepared beforehand.
    unsafe {
        cmd.pre_exec(move || {
            for p in &procs {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let status = cmd
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("XDG_RUNTIME_DIR", xdg)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .expect("spawn the runtime as the user");
    Out {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(cwd.join("stdout.log")).unwrap(),
        stderr: std::fs::read_to_string(cwd.join("stderr.log")).unwrap(),
    }
}

/// A bundle whose config is what `spec --rootless` writes for the user,
/// running `args`, owned by the user.
fn rootless_bundle(uid: u32, gid: u32, xdg: &Path, args: &[&str]) -> Bundle {
    let mut b = Bundle::new(args);
    let gen = tempfile::tempdir().unwrap();
    chown_r(gen.path(), uid, gid);
    as_user(
        uid,
        gid,
        xdg,
        &[
            "spec",
            "--rootless",
            "--bundle",
            gen.path().to_str().unwrap(),
        ],
        gen.path(),
    )
    .ok();
    let mut spec: oci_spec::runtime::Spec =
        serde_json::from_slice(&std::fs::read(gen.path().join("config.json")).unwrap()).unwrap();
    let mut p = spec.process().clone().unwrap();
    p.set_terminal(Some(false));
    p.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    spec.set_process(Some(p));
    b.spec = spec;
    b.write();
    chown_r(b.path(), uid, gid);
    b
}

fn wait_stopped(uid: u32, gid: u32, xdg: &Path, b: &Bundle) {
    let t0 = std::time::Instant::now();
    loop {
        let o = as_user(uid, gid, xdg, &["state", &b.id], b.path());
        if o.code == 0 && o.json()["status"] == "stopped" {
            return;
        }
        assert!(t0.elapsed().as_secs() < 60, "never stopped: {}", o.stdout);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

#[test]
fn rootless_container_from_spec_rootless() {
    // What the container prints is checked by the next test; this one
    // follows the state and the log through create, start and delete.
    let xdg = user_dir(UID, UID);
    let b = rootless_bundle(UID, UID, xdg.path(), &["true"]);
    let log = xdg.path().join("runtime.log");
    let log_s = log.to_str().unwrap();
    // No --root and no --rootless: auto, from the effective uid.
    as_user(
        UID,
        UID,
        xdg.path(),
        &["--log", log_s, "create", &b.id],
        b.path(),
    )
    .ok();
    let state = xdg
        .path()
        .join("berth-runtime")
        .join(&b.id)
        .join("state.json");
    assert!(
        state.exists(),
        "no state under $XDG_RUNTIME_DIR/berth-runtime"
    );
    // The state is the user's.
    let meta = std::fs::metadata(&state).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), UID);
    as_user(UID, UID, xdg.path(), &["start", &b.id], b.path()).ok();
    wait_stopped(UID, UID, xdg.path(), &b);
    as_user(UID, UID, xdg.path(), &["delete", &b.id], b.path()).ok();
    assert!(!state.exists(), "delete left the state");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("rootless: no cgroup delegated to this user"),
        "the log does not say that cgroups were skipped: {log}"
    );
}

#[test]
fn rootless_run_maps_root_to_the_user() {
    let xdg = user_dir(UID, UID);
    let b = rootless_bundle(
        UID,
        UID,
        xdg.path(),
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map /proc/self/gid_map",
        ],
    );
    let o = as_user(UID, UID, xdg.path(), &["run", &b.id], b.path()).ok();
    let uid = UID.to_string();
    assert_eq!(
        words(&o.stdout),
        ["0", "0", &uid, "1", "0", &uid, "1"],
        "{}",
        o.stdout
    );
    assert!(
        !xdg.path().join("berth-runtime").join(&b.id).exists(),
        "run left its state"
    );
}

#[test]
fn rootless_limits_need_a_delegated_cgroup() {
    let xdg = user_dir(UID, UID);
    let mut b = rootless_bundle(UID, UID, xdg.path(), &["true"]);
    b.linux().set_resources(Some(
        serde_json::from_value(serde_json::json!({"memory": {"limit": 67108864}})).unwrap(),
    ));
    b.write();
    let o = as_user(UID, UID, xdg.path(), &["run", &b.id], b.path());
    assert_ne!(o.code, 0, "ran with a memory limit nobody enforces");
    assert!(o.stderr.contains("linux.resources.memory"), "{}", o.stderr);
    assert!(o.stderr.contains("delegated"), "{}", o.stderr);
    assert!(!xdg.path().join("berth-runtime").join(&b.id).exists());
}

/// The user's entry in /etc/subuid or /etc/subgid: (start, count).
fn subordinate(file: &str, user: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == user).then_some(())?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

/// A real user with subordinate ids (created if missing, with useradd as
/// Debian configures it: 65536 subordinate ids).
fn user_with_subordinate_ids() -> (u32, u32, (u32, u32), (u32, u32)) {
    const USER: &str = "berth-rootless";
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, USER])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            })
    };
    if id("-u").is_none() {
        let st = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin", USER])
            .status()
            .expect("useradd (package passwd) is needed to make the test user");
        assert!(st.success(), "useradd {USER}");
    }
    let (uid, gid) = (id("-u").unwrap(), id("-g").unwrap());
    let sub_u = subordinate("/etc/subuid", USER).expect(
        "useradd gave berth-rootless no /etc/subuid entry (SUB_UID_COUNT in /etc/login.defs)",
    );
    let sub_g = subordinate("/etc/subgid", USER).expect("no /etc/subgid entry for berth-rootless");
    (uid, gid, sub_u, sub_g)
}

/// More than the user's own id: newuidmap and newgidmap (package uidmap)
/// map the subordinate ids, and supplementary groups stay usable.
#[test]
fn rootless_subordinate_ids_through_newuidmap() {
    assert!(
        Path::new("/usr/bin/newuidmap").exists(),
        "newuidmap is missing: apt-get install uidmap"
    );
    let (uid, gid, (su, sn), (sg, gn)) = user_with_subordinate_ids();
    let xdg = user_dir(uid, gid);
    let mut b = rootless_bundle(
        uid,
        gid,
        xdg.path(),
        &[
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map /proc/self/setgroups",
        ],
    );
    let n = sn.min(gn).min(65536);
    b.linux().set_uid_mappings(Some(
        serde_json::from_value(serde_json::json!([
            {"containerID": 0, "hostID": uid, "size": 1},
            {"containerID": 1, "hostID": su, "size": n}
        ]))
        .unwrap(),
    ));
    b.linux().set_gid_mappings(Some(
        serde_json::from_value(serde_json::json!([
            {"containerID": 0, "hostID": gid, "size": 1},
            {"containerID": 1, "hostID": sg, "size": n}
        ]))
        .unwrap(),
    ));
    let mut p = b.spec.process().clone().unwrap();
    p.set_user(serde_json::from_value(serde_json::json!({"uid": 1000, "gid": 1000})).unwrap());
    b.spec.set_process(Some(p));
    b.write();
    chown_r(b.path(), uid, gid);
    let o = as_user(uid, gid, xdg.path(), &["run", &b.id], b.path()).ok();
    let (uid, su, n) = (uid.to_string(), su.to_string(), n.to_string());
    assert_eq!(
        words(&o.stdout),
        ["1000", "1000", "0", &uid, "1", "1", &su, &n, "allow"],
        "{}",
        o.stdout
    );
}

/// A cgroup subtree delegated to a user in every hierarchy the host has
/// mounted (v1 controllers, the v2 or hybrid unified tree), as systemd's
/// `Delegate=yes` would: the subtree's directory and files belong to the
/// user, and the user's shell runs in `<subtree>/runner`. Removed on drop.
struct Delegated {
    name: String,
    /// (mountpoint, is cgroup2)
    mounts: Vec<(std::path::PathBuf, bool)>,
}

impl Delegated {
    fn new(uid: u32, gid: u32) -> Delegated {
        let name = unique_id("berth-deleg");
        let mut mounts = Vec::new();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let fstype = post.split(' ').next().unwrap_or("");
            if fstype != "cgroup" && fstype != "cgroup2" {
                continue;
            }
            let mp = std::path::PathBuf::from(pre.split(' ').nth(4).unwrap());
            mounts.push((mp, fstype == "cgroup2"));
        }
        assert!(!mounts.is_empty(), "no cgroup hierarchy is mounted");
        let d = Delegated { name, mounts };
        for (mp, v2) in &d.mounts {
            let top = mp.join(&d.name);
            std::fs::create_dir(&top).unwrap();
            if *v2 {
                // Controllers for the subtree are enabled by the delegator
                // (only where the host's v2 tree has them: on a hybrid host
                // it tracks processes only); the runner is a leaf, because a
                // v2 cgroup with controllers for its children holds no
                // processes itself.
                for dir in [mp.as_path(), top.as_path()] {
                    let have = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap();
                    let enable: Vec<String> = have
                        .split_whitespace()
                        .filter(|c| ["memory", "pids"].contains(c))
                        .map(|c| format!("+{c}"))
                        .collect();
                    if !enable.is_empty() {
                        std::fs::write(dir.join("cgroup.subtree_control"), enable.join(" "))
                            .unwrap();
                    }
                }
                std::fs::create_dir(top.join("runner")).unwrap();
            }
            chown_r(&top, uid, gid);
        }
        d
    }

    /// The runner's cgroup.procs in the v2 tree (moving a process between
    /// v2 cgroups needs write access to their common ancestor, so the
    /// runtime must start inside the subtree).
    fn runner_procs(&self) -> Vec<std::path::PathBuf> {
        self.mounts
            .iter()
            .filter(|(_, v2)| *v2)
            .map(|(mp, _)| mp.join(&self.name).join("runner/cgroup.procs"))
            .collect()
    }

    fn dir(&self, controller_file: &str) -> std::path::PathBuf {
        // The hierarchy with this file: v1 `memory`, or the v2 tree.
        for (mp, v2) in &self.mounts {
            let d = mp.join(&self.name).join("ctr");
            if d.join(controller_file).exists() || (!v2 && mp.ends_with(controller_file)) {
                return d;
            }
        }
        panic!("no delegated cgroup has {controller_file}")
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        for (mp, _) in &self.mounts {
            let top = mp.join(&self.name);
            let _ = std::fs::remove_dir(top.join("ctr"));
            let _ = std::fs::remove_dir(top.join("runner"));
            let _ = std::fs::remove_dir(&top);
        }
    }
}

/// With a delegated cgroup, a rootless container is created in it and its
/// limits are applied (v1 here, v2 in the VM).
#[test]
fn rootless_uses_a_delegated_cgroup() {
    require_root();
    let xdg = user_dir(UID, UID);
    let deleg = Delegated::new(UID, UID);
    let mut b = rootless_bundle(UID, UID, xdg.path(), &["sleep", "30"]);
    b.linux()
        .set_cgroups_path(Some(format!("/{}/ctr", deleg.name).into()));
    b.linux().set_resources(Some(
        serde_json::from_value(serde_json::json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 42}
        }))
        .unwrap(),
    ));
    b.write();
    chown_r(b.path(), UID, UID);
    let procs = deleg.runner_procs();
    let log = xdg.path().join("runtime.log");
    let log_s = log.to_str().unwrap();
    let user = |args: &[&str]| as_user_in(UID, UID, xdg.path(), args, b.path(), &procs);
    user(&["--log", log_s, "create", &b.id]).ok();
    let state = user(&["state", &b.id]).ok().json();
    let pid = state["pid"].as_i64().unwrap();
    let (mem_file, mem_want) = if cgroup_v2() {
        ("memory.max", "67108864")
    } else {
        ("memory.limit_in_bytes", "67108864")
    };
    let mem = deleg.dir(if cgroup_v2() { mem_file } else { "memory" });
    assert_eq!(
        std::fs::read_to_string(mem.join(mem_file)).unwrap().trim(),
        mem_want
    );
    let pids = deleg.dir(if cgroup_v2() { "pids.max" } else { "pids" });
    assert_eq!(
        std::fs::read_to_string(pids.join("pids.max"))
            .unwrap()
            .trim(),
        "42"
    );
    let members = std::fs::read_to_string(mem.join("cgroup.procs")).unwrap();
    assert!(
        words(&members).contains(&pid.to_string().as_str()),
        "the init ({pid}) is not in {}: {members}",
        mem.display()
    );
    user(&["kill", &b.id, "KILL"]).ok();
    wait_stopped(UID, UID, xdg.path(), &b);
    user(&["delete", &b.id]).ok();
    for (mp, _) in &deleg.mounts {
        let ctr = mp.join(&deleg.name).join("ctr");
        assert!(!ctr.exists(), "delete left {}", ctr.display());
    }
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        !log.contains("no cgroup delegated"),
        "the runtime did not use the delegated cgroup: {log}"
    );
}
