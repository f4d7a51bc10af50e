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
    let out = std::fs::File::create(cwd.join("stdout.log")).unwrap();
    let err = std::fs::File::create(cwd.join("stderr.log")).unwrap();
    let status = Command::new(runtime_bin())
        .uid(uid)
        .gid(gid)
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
