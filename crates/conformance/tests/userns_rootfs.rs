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
