//! A container with a user namespace whose `root.path` is absolute and
//! crosses a directory its root cannot search (as an engine's 0700 run
//! root: berth's rootfs mount points live under one): the runtime enters
//! the rootfs as the host's root around the clone, and the container
//! starts there (runc needs the path searchable by the mapped root).

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn a_user_namespace_reaches_an_absolute_rootfs_under_a_private_directory() {
    let rt = Runtime::new();
    let mut b = userns_bundle(&["sh", "-c", "id -u; cat /proc/self/uid_map; echo hi > /w"]);
    // The bundle (the rootfs's parent) is root's alone, and the rootfs is
    // named by its absolute path, not from the bundle.
    std::fs::set_permissions(b.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let abs = b.rootfs();
    let mut root = b.spec.root().clone().unwrap();
    root.set_path(abs.clone());
    b.spec.set_root(Some(root));
    let o = rt.run(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "0", "{}", o.stdout);
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    assert_eq!(std::fs::read_to_string(abs.join("w")).unwrap(), "hi\n");
}

/// The bundle of the test above: the rootfs named by its absolute path,
/// its parent (the bundle) root's alone.
fn private_parent_bundle(args: &[&str]) -> Bundle {
    let mut b = userns_bundle(args);
    std::fs::set_permissions(b.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut root = b.spec.root().clone().unwrap();
    root.set_path(b.rootfs());
    b.spec.set_root(Some(root));
    b
}

/// Unmounts the test's bind of the rootfs onto itself.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Review M1a: with rootfsPropagation shared the mount holding the rootfs
/// is made private for pivot_root; when the rootfs is a mount (berth's
/// overlay) that went by its path, which the container's root cannot walk.
#[test]
fn a_shared_rootfs_propagation_works_for_a_rootfs_mount_under_a_private_directory() {
    let rt = Runtime::new();
    let mut b = private_parent_bundle(&["sh", "-c", "echo hi > /w"]);
    let rootfs = b.rootfs();
    let status = std::process::Command::new("mount")
        .args(["--bind"])
        .arg(&rootfs)
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(status.success(), "bind-mount the rootfs onto itself");
    let _guard = Unmount(rootfs.clone());
    let status = std::process::Command::new("mount")
        .arg("--make-private")
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(status.success(), "make the rootfs bind private");
    b.linux().set_rootfs_propagation(Some("shared".into()));
    let o = rt.run(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(std::fs::read_to_string(rootfs.join("w")).unwrap(), "hi\n");
}

/// Review M1b: createContainer hooks run in the container's root, entered
/// through its fd, not its path (which crosses the 0700 bundle).
#[test]
fn create_container_hooks_run_in_a_rootfs_under_a_private_directory() {
    let rt = Runtime::new();
    let mut b = private_parent_bundle(&["true"]);
    let hooks = serde_json::json!({
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "pwd > hook.pwd"]}]
    });
    b.spec
        .set_hooks(Some(serde_json::from_value(hooks).unwrap()));
    let o = rt.run(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let rootfs = b.rootfs().canonicalize().unwrap();
    let pwd = std::fs::read_to_string(rootfs.join("hook.pwd")).unwrap();
    assert_eq!(pwd.trim(), rootfs.to_str().unwrap());
}

/// Review L1: the runtime's working directory (here the bundle), held to
/// come back to after the clone, is not left open in the container's init
/// (it waits for `start` before its exec).
#[test]
fn the_init_does_not_hold_the_runtimes_working_directory() {
    let rt = Runtime::new();
    let b = private_parent_bundle(&["true"]);
    b.write();
    let log = |n: &str| std::fs::File::create(b.path().join(n)).unwrap();
    let status = rt
        .cmd()
        .current_dir(b.path())
        .args(["create", "--bundle", b.path().to_str().unwrap(), &b.id])
        .stdout(log("stdout.log"))
        .stderr(log("stderr.log"))
        .status()
        .unwrap();
    let stderr = std::fs::read_to_string(b.path().join("stderr.log")).unwrap_or_default();
    assert!(status.success(), "create: {stderr}");
    let pid = rt.state(&b.id)["pid"].as_i64().unwrap();
    let links: Vec<std::path::PathBuf> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .collect();
    rt.exec(&["delete", "-f", &b.id]);
    assert!(!links.is_empty(), "no fds read from the init {pid}");
    let bundle = b.path().canonicalize().unwrap();
    assert!(
        !links.contains(&bundle),
        "the init holds the bundle open: {links:?}"
    );
}

/// Review M2: in a user namespace devices are bound from the host's node
/// at the container's path; one that is another device is refused, naming
/// it, rather than bound silently (/dev/kmsg is 1:11, not 1:5).
#[test]
fn a_user_namespace_refuses_a_host_node_that_is_another_device() {
    let rt = Runtime::new();
    let mut b = userns_bundle(&["true"]);
    let dev = serde_json::json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 5}]);
    b.linux()
        .set_devices(Some(serde_json::from_value(dev).unwrap()));
    let o = rt.run(&b);
    assert_ne!(o.code, 0, "a mismatched device was bound: {}", o.stdout);
    assert!(
        o.stderr.contains("/dev/kmsg") && o.stderr.contains("1:11") && o.stderr.contains("1:5"),
        "{}",
        o.stderr
    );
    // The right numbers are bound.
    let mut b = userns_bundle(&["sh", "-c", "stat -c '%t:%T' /dev/kmsg"]);
    let dev = serde_json::json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]);
    b.linux()
        .set_devices(Some(serde_json::from_value(dev).unwrap()));
    let o = rt.run(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "1:b");
}
