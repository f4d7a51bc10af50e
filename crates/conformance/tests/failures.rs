//! Bad input and cleanup: every malformed or unsupported config gets one
//! error line naming the field, and a failed create leaves nothing behind:
//! no state directory, cgroup, process or mount. Plus regression tests for
//! the escape classes that live in create.

mod common;
use common::*;
use serde_json::json;

/// Asserts that nothing of a failed container `id` in bundle `b` remains.
fn assert_no_leftovers(rt: &Runtime, b: &Bundle) {
    assert!(
        !rt.root.path().join(&b.id).exists(),
        "state directory of {} left behind",
        b.id
    );
    for c in [
        "memory", "cpu", "pids", "cpuset", "freezer", "devices", "blkio", "systemd", "unified",
    ] {
        let d = if c == "unified" {
            std::path::PathBuf::from(format!("/sys/fs/cgroup/unified/berth-test/{}", b.id))
        } else {
            b.cgroup_dir(c)
        };
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    let bundle = b.path().to_str().unwrap();
    assert!(
        processes_mentioning(&b.id).is_empty(),
        "processes left: {:?}",
        processes_mentioning(&b.id)
    );
    assert!(
        host_mounts_mentioning(bundle).is_empty(),
        "mounts left: {:?}",
        host_mounts_mentioning(bundle)
    );
}

/// Replaces the namespace of type `typ`: joined at `path`, or (None) the
/// container shares the runtime's.
fn set_ns(v: &mut serde_json::Value, typ: &str, path: Option<&str>) {
    let list = v["linux"]["namespaces"].as_array_mut().unwrap();
    list.retain(|n| n["type"] != typ);
    if let Some(p) = path {
        list.push(json!({"type": typ, "path": p}));
    }
}

#[test]
fn bad_configs_name_the_field_and_leave_nothing() {
    let rt = Runtime::new();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "linux.namespaces[0].type",
            Box::new(|v| v["linux"]["namespaces"][0]["type"] = "bogus".into()),
        ),
        (
            "process.args",
            Box::new(|v| v["process"]["args"] = json!([])),
        ),
        ("ociVersion", Box::new(|v| v["ociVersion"] = "9.0.0".into())),
        (
            "process.user.uid",
            Box::new(|v| v["process"]["user"]["uid"] = "root".into()),
        ),
        (
            "linux.sysctl.kernel.panic",
            Box::new(|v| v["linux"]["sysctl"] = json!({"kernel.panic": "1"})),
        ),
        (
            "linux.uidMappings",
            Box::new(|v| {
                v["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "user"}))
            }),
        ),
        (
            "mounts[0]",
            Box::new(|v| v["mounts"][0]["type"] = "tmpfs".into()),
        ), // tmpfs at /proc
        (
            "root.path",
            Box::new(|v| v["root"]["path"] = "no-such-rootfs".into()),
        ),
        (
            // A name no kernel has is an error (a typo must not silently
            // weaken or strengthen the container); a real capability newer
            // than this kernel is skipped with a warning, as runc and crun do.
            "process.capabilities.bounding",
            Box::new(|v| {
                v["process"]["capabilities"]["bounding"] = json!(["CAP_CHOWN", "CAP_BOGUS"])
            }),
        ),
        (
            "linux.resources.unified",
            Box::new(|v| v["linux"]["resources"]["unified"] = json!({"../memory.max": "1"})),
        ),
        (
            "linux.namespaces",
            Box::new(|v| {
                v["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "network", "path": "/proc/1/ns/net"}))
            }),
        ),
        (
            "linux.namespaces (network path)",
            Box::new(|v| set_ns(v, "network", Some("/proc/self/ns/ipc"))),
        ),
        (
            "linux.namespaces (network path)",
            Box::new(|v| set_ns(v, "network", Some("/dev/null"))),
        ),
        (
            "hostname",
            Box::new(|v| {
                set_ns(v, "uts", None);
                v["hostname"] = "box".into();
            }),
        ),
        (
            "linux.timeOffsets",
            Box::new(|v| v["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 1}})),
        ),
        (
            "linux.uidMappings",
            Box::new(|v| {
                let m = json!([{"containerID": 0, "hostID": 100000, "size": 1}]);
                v["linux"]["uidMappings"] = m.clone();
                v["linux"]["gidMappings"] = m;
            }),
        ),
        (
            "linux.sysctl.net.ipv4.ip_forward",
            Box::new(|v| {
                set_ns(v, "network", None);
                v["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
            }),
        ),
        (
            "linux.sysctl.kernel.shmmax",
            Box::new(|v| {
                set_ns(v, "ipc", None);
                v["linux"]["sysctl"] = json!({"kernel.shmmax": "1000000"});
            }),
        ),
        (
            "linux.seccomp.listenerPath",
            Box::new(|v| {
                v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})
            }),
        ),
        (
            "linux.seccomp.syscalls[0].args[0].index",
            Box::new(|v| {
                v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                  "args": [{"index": 7, "value": 0, "op": "SCMP_CMP_EQ"}]}]})
            }),
        ),
        (
            "linux.seccomp.defaultAction",
            Box::new(|v| v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_BOGUS"})),
        ),
        (
            "process.apparmorProfile",
            Box::new(|v| v["process"]["apparmorProfile"] = "docker-default".into()),
        ),
    ];
    let mut accepted = Vec::new();
    for (field, edit) in cases {
        let mut b = Bundle::new(&["true"]);
        b.id = unique_id("bad");
        let mut v = serde_json::to_value(&b.spec).unwrap();
        edit(&mut v);
        b.write_json(&v);
        let o = rt.exec_files(
            &["create", "--bundle", b.path().to_str().unwrap(), &b.id],
            b.path(),
        );
        if o.code == 0 {
            // Go on: one run lists every config the runtime wrongly accepts.
            accepted.push(field);
            let _ = rt.exec(&["delete", "--force", &b.id]);
            continue;
        }
        if is_berth() {
            assert!(
                o.stderr.contains(field),
                "{field}: error does not name it: {}",
                o.stderr
            );
            assert_eq!(
                o.stderr.trim().lines().count(),
                1,
                "{field}: not one line: {}",
                o.stderr
            );
            assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
        }
        assert_no_leftovers(&rt, &b);
    }
    assert!(accepted.is_empty(), "accepted bad configs: {accepted:?}");
}

#[test]
fn failures_inside_the_container_leave_nothing() {
    let rt = Runtime::new();
    type Edit = Box<dyn Fn(&mut Bundle)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "missing program",
            Box::new(|b| b.set_args(&["/no/such/program"])),
        ),
        (
            "bind source missing",
            Box::new(|b| {
                b.add_mount(serde_json::from_value(json!({"destination": "/x", "type": "bind", "source": "/no/such/dir", "options": ["bind"]})).unwrap());
            }),
        ),
        (
            "bad tmpfs option",
            Box::new(|b| {
                b.add_mount(serde_json::from_value(json!({"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=banana"]})).unwrap());
            }),
        ),
        (
            "unmapped user namespace root",
            Box::new(|b| {
                b.add_namespace(oci_spec::runtime::LinuxNamespaceType::User, None);
                let m = json!([{"containerID": 1, "hostID": 100000, "size": 10}]);
                b.linux()
                    .set_uid_mappings(Some(serde_json::from_value(m.clone()).unwrap()));
                b.linux()
                    .set_gid_mappings(Some(serde_json::from_value(m).unwrap()));
            }),
        ),
        (
            "impossible memory limit",
            Box::new(|b| {
                b.linux().set_resources(Some(
                    serde_json::from_value(json!({"memory": {"limit": 4096}})).unwrap(),
                ));
            }),
        ),
    ];
    for (what, edit) in cases {
        let mut b = Bundle::new(&["true"]);
        edit(&mut b);
        let o = rt.create(&b);
        assert_ne!(o.code, 0, "{what}: create succeeded");
        if is_berth() {
            assert!(
                !o.stderr.trim().is_empty() && !o.stderr.contains("panicked"),
                "{what}: {}",
                o.stderr
            );
        }
        assert_no_leftovers(&rt, &b);
    }
}

/// A runtime root holding a state directory for a bundle's id, as a
/// create left it, with no container behind it; the test writes its
/// state.json.
fn state_dir_of_nothing() -> (Runtime, Bundle, std::path::PathBuf) {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let dir = rt.root.path().join(&b.id);
    std::fs::create_dir_all(&dir).unwrap();
    (rt, b, dir)
}

#[test]
fn killed_create_is_cleaned_by_delete() {
    if !is_berth() {
        return;
    }
    // A create killed half-way leaves a "creating" record whose lock is
    // free: it reads as stopped, and delete removes it.
    let (rt, b, dir) = state_dir_of_nothing();
    let rec = json!({"ociVersion": "1.2.1", "id": b.id, "status": "creating", "pid": 0, "pidStart": 0,
        "bundle": b.path(), "rootfs": b.rootfs(), "created": "", "owner": "root"});
    std::fs::write(dir.join("state.json"), rec.to_string()).unwrap();
    assert_eq!(rt.status(&b.id), "stopped");
    rt.exec(&["delete", &b.id]).ok();
    assert!(!dir.exists());
}

#[test]
fn corrupt_state_is_named_and_delete_force_removes_it() {
    if !is_berth() {
        return;
    }
    // State files are replaced by rename but not fsynced (they live until
    // the next boot, normally on tmpfs): on a disk-backed root, a power
    // loss can leave one empty or cut. That must not wedge the id.
    let (rt, b, dir) = state_dir_of_nothing();
    for cut in ["", "{\"ociVersion\": \"1.2.1\", \"id\": "] {
        std::fs::write(dir.join("state.json"), cut).unwrap();
        let o = rt.exec(&["delete", &b.id]);
        assert_ne!(o.code, 0, "delete of a corrupt state succeeded");
        assert!(
            o.stderr.contains("corrupt") && o.stderr.contains("delete --force"),
            "{}",
            o.stderr
        );
        assert_eq!(o.stderr.trim().lines().count(), 1, "{}", o.stderr);
        assert!(dir.exists());
        let listed = rt.exec(&["list", "--format", "json"]).ok();
        assert!(!listed.stdout.contains(&b.id), "{}", listed.stdout);
    }
    rt.exec(&["delete", "--force", &b.id]).ok();
    assert!(!dir.exists(), "delete --force left the state directory");
}

#[test]
fn image_dev_symlink_is_not_followed() {
    // CVE-2026-41579 class: an image whose /dev is a symlink to a host path
    // must not make the runtime create device nodes there.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let target = tempfile::tempdir().unwrap();
    std::fs::remove_dir(b.rootfs().join("dev")).unwrap();
    std::os::unix::fs::symlink(target.path(), b.rootfs().join("dev")).unwrap();
    // No /dev mount: devices would be created through the link.
    b.remove_mounts(|d| d.starts_with("/dev"));
    let o = rt.run(&b);
    assert_ne!(o.code, 0, "ran with a symlinked /dev");
    assert_eq!(
        std::fs::read_dir(target.path()).unwrap().count(),
        0,
        "created files through the /dev symlink"
    );
    assert_no_leftovers(&rt, &b);
}

#[test]
fn mount_destination_symlink_stays_in_the_rootfs() {
    // CVE-2021-30465 class: a mount destination that is a symlink to an
    // absolute host path is resolved inside the rootfs.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let host = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("evil")).unwrap();
    b.add_mount(
        serde_json::from_value(
            json!({"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"}),
        )
        .unwrap(),
    );
    rt.run(&b).ok();
    assert!(
        !host.path().join("x").exists(),
        "the mount point was created on the host"
    );
    assert!(b
        .rootfs()
        .join(host.path().strip_prefix("/").unwrap())
        .join("x")
        .exists());
}

#[test]
fn cwd_through_a_leaked_fd_is_refused() {
    // CVE-2024-21626: process.cwd of /proc/self/fd/N must not land outside.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["pwd"]);
    b.process().set_cwd("/proc/self/fd/7".into());
    let o = rt.run(&b);
    assert_ne!(o.code, 0, "ran with a cwd through an fd: {}", o.stdout);
}

#[test]
fn masking_refuses_a_fake_dev_null() {
    // CVE-2025-31133: /dev/null replaced (here by a config device of
    // another kind) must not be used to mask paths.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.linux().set_devices(Some(
        serde_json::from_value(json!([{"path": "/dev/null", "type": "c", "major": 1, "minor": 5}]))
            .unwrap(),
    ));
    let o = rt.run(&b);
    assert_ne!(o.code, 0, "masked paths with a /dev/null that is /dev/zero");
}

/// CVE-2019-5736: a process exec'd into a container as `#!/proc/self/exe`
/// makes the runtime's exec child execute the runtime binary again, now
/// dumpable, inside the container. A container process opens its
/// /proc/<pid>/exe and, once the runtime has exited, writes through that
/// fd. The runtime must execute from a copy the container cannot write (a
/// read-only overlay or a sealed memfd), so the binary on the host stays
/// as it was. The attack runs against a copy of the runtime, so that a
/// failure does not destroy the one under test.
#[test]
fn runtime_binary_cannot_be_overwritten_through_proc_exe() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let rt = Runtime::new();
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("berth-runtime");
    std::fs::copy(&rt.bin, &bin).unwrap();
    // Another test thread's fork may briefly hold the copy open for
    // writing (ETXTBSY) until its child execs.
    for _ in 0..100 {
        match std::process::Command::new(&bin).arg("--version").output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            _ => break,
        }
    }
    let before = std::fs::read(&bin).unwrap();
    let script = r#"
i=0; pid=
while [ $i -lt 1000 ] && [ -z "$pid" ]; do
  for p in /proc/[0-9]*; do
    case "$(readlink $p/exe 2>/dev/null)" in *berth-runtime*) pid=${p#/proc/};; esac
  done
  i=$((i+1)); sleep 0.01
done
[ -n "$pid" ] || { echo NOT-FOUND; exit 0; }
echo FOUND $pid
{
  echo OPENED
  kill -9 $pid
  i=0
  while [ $i -lt 40 ]; do
    if (echo PWNED > /proc/self/fd/3) 2>/dev/null; then echo WROTE; break; fi
    i=$((i+1)); sleep 0.05
  done
} 3< /proc/$pid/exe || echo NOT-OPENED
echo END
"#;
    let b = Bundle::new(&["sh", "-c", script]);
    std::fs::write(b.rootfs().join("evil"), "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(
        b.rootfs().join("evil"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    rt.start_detached(&b);
    // The victim's usage error goes into a full pipe: it blocks there, so
    // the attacker has all the time it needs.
    let mut fds = [0; 2];
    // SAFETY: fds is an array of two ints, as pipe2 requires.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert_eq!(r, 0, "pipe2");
    // SAFETY: pipe2 returned two fresh fds that nothing else owns.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let chunk = [0u8; 4096];
    // SAFETY: writes from a live buffer to an fd we own.
    while unsafe { libc::write(wr.as_raw_fd(), chunk.as_ptr().cast(), chunk.len()) } > 0 {}
    // SAFETY: clears O_NONBLOCK on an fd we own.
    unsafe { libc::fcntl(wr.as_raw_fd(), libc::F_SETFL, 0) };
    // Only the exec runs from the copy: the victim is its child.
    let status = std::process::Command::new(&bin)
        .arg("--root")
        .arg(rt.root.path())
        .args(["exec", "-d", &b.id, "/evil"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(wr))
        .status()
        .unwrap();
    // The attack takes a few seconds when it fails (it keeps trying).
    let t0 = std::time::Instant::now();
    while rt.state(&b.id)["status"] != "stopped" {
        assert!(t0.elapsed().as_secs() < 120, "the attack never finished");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(rd);
    let out = std::fs::read_to_string(b.path().join("stdout.log")).unwrap();
    rt.exec(&["delete", "--force", &b.id]).ok();
    assert!(status.success(), "exec -d /evil failed: {out}");
    assert!(
        out.contains("FOUND"),
        "the attack never saw the runtime binary run in the container: {out}"
    );
    assert!(out.contains("END"), "the attack did not finish: {out}");
    assert!(
        std::fs::read(&bin).unwrap() == before,
        "the runtime binary on the host was overwritten from the container: {out}"
    );
    assert!(!out.contains("WROTE"), "{out}");
}

/// AppArmor: where the host has it enabled, the profile is applied at the
/// container's execve (a missing profile is the kernel's error, named by
/// the field); where it does not, any profile is refused rather than run
/// unconfined. The same for `exec --apparmor`.
#[test]
fn apparmor_profile_is_applied_or_refused() {
    let enabled = std::path::Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|b| b.starts_with(b"Y"));
    let rt = Runtime::new();
    let mut b = Bundle::new(&["cat", "/proc/self/attr/current"]);
    b.process()
        .set_apparmor_profile(Some("berth-test-no-such-profile".into()));
    let o = rt.run(&b);
    assert_ne!(o.code, 0, "ran with a profile that does not exist");
    assert!(o.stderr.contains("process.apparmorProfile"), "{}", o.stderr);
    if !enabled {
        assert!(o.stderr.contains("AppArmor is not enabled"), "{}", o.stderr);
    }
    assert_no_leftovers(&rt, &b);
    let mut b = Bundle::new(&["cat", "/proc/self/attr/current"]);
    b.process().set_apparmor_profile(Some("unconfined".into()));
    let o = rt.run(&b);
    if enabled {
        assert_eq!(o.ok().stdout.trim(), "unconfined");
    } else {
        assert_ne!(o.code, 0);
        assert!(o.stderr.contains("AppArmor is not enabled"), "{}", o.stderr);
    }
    let b = Bundle::new(&["sleep", "100"]);
    rt.start_detached(&b);
    let o = rt.exec(&[
        "exec",
        "--apparmor",
        "berth-test-no-such-profile",
        &b.id,
        "true",
    ]);
    assert_ne!(o.code, 0, "exec ran with a profile that does not exist");
    assert!(o.stderr.contains("apparmorProfile"), "{}", o.stderr);
    rt.exec(&["delete", "--force", &b.id]).ok();
}

/// Mount helpers for the attacker in the procfs redirect test.
fn mount_bind(src: &std::path::Path, dst: &std::path::Path, flags: libc::c_ulong) {
    let c = |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let (s, d) = (c(src), c(dst));
    // SAFETY: valid NUL-terminated paths; no data argument.
    let rc = unsafe {
        libc::mount(
            s.as_ptr(),
            d.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | flags,
            std::ptr::null(),
        )
    };
    assert_eq!(
        rc,
        0,
        "bind {} on {}: {}",
        src.display(),
        dst.display(),
        std::io::Error::last_os_error()
    );
}

/// Unmounts everything at and under `path` on the host, even if the test
/// fails half way.
struct UnmountOnDrop(std::path::PathBuf);

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        // MNT_DETACH takes the whole subtree (busybox umount has no -R).
        let d = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(d.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Makes the mount at `path` shared.
fn make_shared(path: &std::path::Path) {
    let d = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path; only the propagation changes.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            d.as_ptr(),
            std::ptr::null(),
            libc::MS_SHARED,
            std::ptr::null(),
        )
    };
    assert_eq!(
        rc,
        0,
        "make {} shared: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// CVE-2025-52881 (and CVE-2019-19921): the image's /proc is a symlink
/// into a volume that another container (the attacker, here the host)
/// shares, where a fake /proc waits: files that stand for
/// /proc/sys/kernel/domainname and /proc/self/attr/exec. A runtime that
/// mounted procfs through the symlink could have it covered or swapped by
/// the attacker and later write sysctls and LSM labels into the
/// attacker's files. berth refuses procfs on anything but an ordinary
/// directory, and nothing is written to the fake tree.
#[test]
fn procfs_through_a_symlink_into_a_shared_volume_is_refused() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let shared = b.path().join("shared");
    for d in ["proc/sys/kernel", "proc/self/attr"] {
        std::fs::create_dir_all(shared.join(d)).unwrap();
    }
    std::fs::write(shared.join("proc/sys/kernel/domainname"), "untouched\n").unwrap();
    std::fs::write(shared.join("proc/self/attr/exec"), "untouched\n").unwrap();
    mount_bind(&shared, &shared, 0);
    let _unmount = UnmountOnDrop(shared.clone());
    make_shared(&shared);
    let rootfs = b.rootfs();
    let _ = std::fs::remove_dir(rootfs.join("proc"));
    std::os::unix::fs::symlink("mnt/proc", rootfs.join("proc")).unwrap();
    b.add_mount(
        serde_json::from_value(json!({
            "destination": "/mnt", "type": "bind",
            "source": shared.to_str().unwrap(), "options": ["rbind", "rshared"]
        }))
        .unwrap(),
    );
    b.linux().set_sysctl(Some(
        [("kernel.domainname".to_string(), "berth-52881".to_string())].into(),
    ));
    b.write();
    let o = rt.create(&b);
    assert_ne!(o.code, 0, "procfs was mounted through a symlink");
    assert!(
        o.stderr.contains("ordinary directory") && o.stderr.contains("/proc"),
        "{}",
        o.stderr
    );
    for f in ["proc/sys/kernel/domainname", "proc/self/attr/exec"] {
        assert_eq!(
            std::fs::read_to_string(shared.join(f)).unwrap(),
            "untouched\n",
            "{f}"
        );
    }
    drop(_unmount);
    assert_no_leftovers(&rt, &b);
}

/// rootfsPropagation "shared" with a rootfs that is itself a shared mount
/// point (a volume, a containerd snapshot): pivot_root needs it private in
/// the container, as runc makes it, so create works and the container's
/// mounts do not appear on the host.
#[test]
fn shared_rootfs_propagation_on_a_shared_mount_point() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let rootfs = b.rootfs();
    mount_bind(&rootfs, &rootfs, 0);
    let _unmount = UnmountOnDrop(rootfs.clone());
    make_shared(&rootfs);
    b.linux().set_rootfs_propagation(Some("shared".into()));
    b.write();
    rt.create(&b).ok();
    let proc_dir = rootfs.join("proc");
    assert!(
        host_mounts_mentioning(proc_dir.to_str().unwrap()).is_empty(),
        "the container's /proc propagated to the host: {:?}",
        host_mounts_mentioning(proc_dir.to_str().unwrap())
    );
    rt.exec(&["delete", "--force", &b.id]).ok();
}

/// A bind with `rshared` (Kubernetes' Bidirectional mount propagation,
/// `-v SRC:DST:rshared`) on a shared host mount: what the container mounts
/// under it reaches the host; with `rslave` it does not. The runtime must
/// not make the container's own mounts slaves when it detaches the old
/// root after pivot_root.
#[test]
fn rshared_binds_send_mounts_to_the_host_and_rslave_ones_do_not() {
    require_root();
    let rt = Runtime::new();
    for (mode, reaches) in [("rslave", false), ("rshared", true)] {
        let mut b = Bundle::new(&["sh", "-c", "mount -t tmpfs inner /mnt/sub"]);
        let shared = b.path().join("shared");
        std::fs::create_dir_all(shared.join("sub")).unwrap();
        mount_bind(&shared, &shared, 0);
        let _unmount = UnmountOnDrop(shared.clone());
        make_shared(&shared);
        b.add_mount(
            serde_json::from_value(json!({
                "destination": "/mnt", "type": "bind",
                "source": shared.to_str().unwrap(), "options": ["rbind", mode]
            }))
            .unwrap(),
        );
        b.linux()
            .set_rootfs_propagation(Some(if reaches { "shared" } else { "rslave" }.into()));
        let caps: oci_spec::runtime::LinuxCapabilities = serde_json::from_value(json!({
            "bounding": ["CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"], "permitted": ["CAP_SYS_ADMIN"]
        }))
        .unwrap();
        b.process().set_capabilities(Some(caps));
        b.write();
        rt.run(&b).ok();
        let sub = shared.join("sub");
        let seen = host_mounts_mentioning(&format!(" {} ", sub.display()));
        assert_eq!(!seen.is_empty(), reaches, "{mode}: {seen:?}");
        // The container's own /proc never reaches the host.
        let proc_dir = b.rootfs().join("proc");
        assert!(
            host_mounts_mentioning(proc_dir.to_str().unwrap()).is_empty(),
            "{mode}"
        );
        drop(_unmount);
        assert_no_leftovers(&rt, &b);
    }
}

/// CVE-2025-52881 at exec: the running container (with CAP_SYS_ADMIN)
/// covers its /proc with a tmpfs holding the files where a runtime would
/// write the new process's LSM label (`/proc/thread-self/attr/apparmor/exec`,
/// `attr/exec`, the same under `self`). A runtime that entered the mount
/// namespace and then wrote the label by path would write it into these
/// files and start the process unconfined. berth writes through the host's
/// procfs, opened before it enters the container: where AppArmor is enabled
/// (the VM lane) the exec applies its label and the fake files stay empty;
/// where it is not, the label is refused and they stay empty too.
#[test]
fn exec_label_is_not_written_into_a_fake_proc() {
    let enabled = std::path::Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|b| b.starts_with(b"Y"));
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "mount -t tmpfs fake /proc && for d in self thread-self; do \
         mkdir -p /proc/$d/attr/apparmor && : >/proc/$d/attr/exec && \
         : >/proc/$d/attr/apparmor/exec; done && touch /ready && sleep 100",
    ]);
    let caps: oci_spec::runtime::LinuxCapabilities = serde_json::from_value(json!({
        "bounding": ["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"],
        "effective": ["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"],
        "permitted": ["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"]
    }))
    .unwrap();
    b.process().set_capabilities(Some(caps));
    rt.start_detached(&b);
    let ready = b.rootfs().join("ready");
    let t0 = std::time::Instant::now();
    while !ready.exists() {
        assert!(
            t0.elapsed().as_secs() < 30,
            "the container never set up its fake /proc"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = rt.exec(&["exec", "--apparmor", "unconfined", &b.id, "true"]);
    if enabled {
        o.ok();
    } else {
        assert_ne!(o.code, 0, "exec --apparmor ran without AppArmor");
        assert!(o.stderr.contains("AppArmor is not enabled"), "{}", o.stderr);
    }
    // The fake tree is still there, and empty.
    let o = rt
        .exec(&[
            "exec",
            &b.id,
            "sh",
            "-c",
            "cat /proc/self/attr/exec /proc/self/attr/apparmor/exec \
             /proc/thread-self/attr/exec /proc/thread-self/attr/apparmor/exec && echo intact",
        ])
        .ok();
    assert_eq!(o.stdout, "intact\n", "the label went into the fake /proc");
    rt.exec(&["delete", "--force", &b.id]).ok();
}
