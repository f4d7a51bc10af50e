//! The cgroup v2 device program, loaded into the real kernel and attached
//! to a real cgroup2 directory: the verifier accepts it, and a process in
//! the cgroup can use exactly the devices the rules allow. Runs on a v2 host
//! and on a hybrid one (its unified mount); needs root.

use berth_cgroups::{HierarchyKind, Layout};
use std::process::Command;

fn rule(allow: bool, typ: &str, major: i64, minor: i64, access: &str) -> serde_json::Value {
    serde_json::json!({"allow": allow, "type": typ, "major": major, "minor": minor, "access": access})
}

#[test]
fn device_program_enforces_the_rules() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root");
    let layout = Layout::from_host().expect("read the host's cgroup layout");
    let v2 = layout
        .hierarchies
        .iter()
        .find(|h| h.kind == HierarchyKind::V2)
        .expect("this test needs a cgroup2 mount (v2 or hybrid host)");
    let dir = v2
        .mountpoint
        .join(format!("berth-devtest-{}", std::process::id()));
    std::fs::create_dir(&dir).expect("create a test cgroup");
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            for _ in 0..50 {
                if std::fs::remove_dir(&self.0).is_ok() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
    let _rm = Rm(dir.clone());

    let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
        serde_json::from_value(serde_json::json!([
            {"allow": false, "access": "rwm"},
            rule(true, "c", 1, 3, "rwm"),  // /dev/null
            rule(true, "c", 1, 5, "r"),    // /dev/zero, read only
        ]))
        .unwrap();
    berth_cgroups::set_device_program(&dir, &rules).expect("load and attach");
    // Attach twice (an update): the first program must be gone, or its
    // rules would still apply alongside.
    berth_cgroups::set_device_program(&dir, &rules).expect("replace");
    let fd = berth_sys::fs::open(&dir, libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
    let attached =
        berth_sys::bpf::prog_query(std::os::fd::AsFd::as_fd(&fd), berth_sys::bpf::CGROUP_DEVICE)
            .unwrap();
    assert_eq!(attached.len(), 1, "the replaced program is detached");
    let tmp = tempfile::tempdir().unwrap();
    let script = format!(
        "echo $$ > {}/cgroup.procs || exit 99; \
         echo x > /dev/null && echo null-write-ok; \
         head -c 1 /dev/zero >/dev/null && echo zero-read-ok; \
         echo x > /dev/zero 2>/dev/null || echo zero-write-denied; \
         head -c 1 /dev/urandom >/dev/null 2>&1 || echo urandom-denied;          mknod {tmp}/null c 1 3 && echo mknod-null-ok;          mknod {tmp}/zero c 1 5 2>/dev/null || echo mknod-zero-denied",
        dir.display(),
        tmp = tmp.path().display()
    );
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "null-write-ok\nzero-read-ok\nzero-write-denied\nurandom-denied\nmknod-null-ok\nmknod-zero-denied\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
