//! The idmapped root of a container with a user namespace
//! (`rootfs::mount_idmapped`), mounted for real in a temporary directory:
//! the image's files show the container's mapped ids, nothing in the layers
//! changes, copy-up keeps the mapped ids, and nothing stays mounted but the
//! overlay. Needs root (it fails, loudly, without).

use berth_engine::rootfs::{self, LayerMounts};
use berth_engine::userns::{IdMap, Userns};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const SHIFT: u32 = 100000;

fn require_root() {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "these tests mount overlays and must run as root");
}

fn userns() -> Userns {
    let m = vec![IdMap {
        container_id: 0,
        host_id: SHIFT,
        size: 65536,
    }];
    Userns {
        uids: m.clone(),
        gids: m,
    }
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

fn file(p: &Path, id: u32) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, "x").unwrap();
    std::os::unix::fs::chown(p, Some(id), Some(id)).unwrap();
}

/// Two image layers (bottom first) in `base`, as the store keeps them.
fn layers(base: &Path) -> Vec<PathBuf> {
    let (l0, l1) = (base.join("layers/0"), base.join("layers/1"));
    file(&l0.join("etc/passwd"), 0);
    file(&l0.join("home/u/own"), 1000);
    file(&l0.join("far"), 70000);
    file(&l1.join("etc/group"), 0);
    vec![l0, l1]
}

/// The mount points in /proc/self/mountinfo under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|p| p.starts_with(&d))
        .collect()
}

fn check(how: LayerMounts) {
    require_root();
    let base = tempfile::Builder::new()
        .prefix("berth-idroot")
        .tempdir()
        .unwrap();
    let b = base.path();
    let layers = layers(b);
    let (dir, target, empty) = (b.join("ctr"), b.join("rootfs"), b.join("empty"));
    rootfs::mount_idmapped(&layers, &dir, &target, &empty, false, &userns(), how)
        .unwrap_or_else(|e| panic!("{how:?}: {e}"));
    let result = std::panic::catch_unwind(|| {
        assert!(rootfs::is_mounted(&target));
        // The image's ids, as the container's: 0 is 100000, 1000 is 101000;
        // an id past the map shows as the overflow id.
        assert_eq!(owner(&target.join("etc/passwd")), (SHIFT, SHIFT));
        assert_eq!(owner(&target.join("etc/group")), (SHIFT, SHIFT));
        assert_eq!(
            owner(&target.join("home/u/own")),
            (SHIFT + 1000, SHIFT + 1000)
        );
        assert_eq!(owner(&target.join("far")), (65534, 65534));
        // The root directory is the container root's.
        assert_eq!(owner(&target), (SHIFT, SHIFT));
        // Copy-up keeps the mapped ids in the upper layer; the image
        // layer is unchanged.
        std::fs::write(target.join("etc/passwd"), "changed").unwrap();
        assert_eq!(owner(&dir.join("upper/etc/passwd")), (SHIFT, SHIFT));
        assert_eq!(owner(&layers[0].join("etc/passwd")), (0, 0));
        assert_eq!(
            std::fs::read_to_string(layers[0].join("etc/passwd")).unwrap(),
            "x"
        );
        // Only the overlay is mounted: no layer mount is left anywhere
        // under the container's directory or the store.
        assert_eq!(mounts_under(b), [target.to_string_lossy().into_owned()]);
        assert!(
            !dir.join("idmapped").exists(),
            "the staging directory was left"
        );
        // Mounting again is a no-op.
        rootfs::mount_idmapped(&layers, &dir, &target, &empty, false, &userns(), how).unwrap();
        assert_eq!(mounts_under(b).len(), 1);
    });
    rootfs::unmount(&target).unwrap();
    assert!(mounts_under(b).is_empty());
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn an_idmapped_root_shows_the_images_files_as_the_containers() {
    check(LayerMounts::Detached);
}

/// The way of kernels that take only attached layers (before 6.15),
/// tested here whatever the kernel.
#[test]
fn an_idmapped_root_from_attached_layers_leaves_no_layer_mounted() {
    check(LayerMounts::Attached);
}

/// A store on a filesystem that cannot be idmapped (ramfs) is refused,
/// saying so, and nothing is mounted: never a chown copy.
/// A layer that a mount killed before it detached left attached under the
/// container's `idmapped` directory (with the overlay up) is detached at
/// the next mount, which finds the overlay mounted and does no more.
#[test]
fn a_layer_left_attached_by_a_killed_mount_is_detached_at_the_next_mount() {
    require_root();
    let base = tempfile::Builder::new()
        .prefix("berth-idroot")
        .tempdir()
        .unwrap();
    let b = base.path();
    let layers = layers(b);
    let (dir, target, empty) = (b.join("ctr"), b.join("rootfs"), b.join("empty"));
    let how = LayerMounts::Attached;
    rootfs::mount_idmapped(&layers, &dir, &target, &empty, false, &userns(), how).unwrap();
    let at = dir.join("idmapped/0");
    std::fs::create_dir_all(&at).unwrap();
    let (src, dst) = (
        berth_sys::cstr(&layers[0]).unwrap(),
        berth_sys::cstr(&at).unwrap(),
    );
    berth_sys::mount::mount(Some(&src), &dst, None, libc::MS_BIND, None).unwrap();
    let r = rootfs::mount_idmapped(&layers, &dir, &target, &empty, false, &userns(), how);
    let left = mounts_under(b);
    let _ = berth_sys::mount::umount2(&dst, libc::MNT_DETACH);
    rootfs::unmount(&target).unwrap();
    r.unwrap();
    assert_eq!(left, [target.to_string_lossy().into_owned()]);
    assert!(!dir.join("idmapped").exists());
    assert!(layers[0].join("etc/passwd").exists());
}

#[test]
fn a_store_that_cannot_be_idmapped_is_refused_clearly() {
    require_root();
    let base = tempfile::Builder::new()
        .prefix("berth-idroot")
        .tempdir()
        .unwrap();
    let store = base.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let c = berth_sys::cstr(&store).unwrap();
    berth_sys::mount::mount(Some(c"ramfs"), &c, Some(c"ramfs"), 0, None).expect("mount a ramfs");
    let layers = layers(&store);
    let dir = base.path().join("ctr");
    let target = base.path().join("rootfs");
    let r = rootfs::mount_idmapped(
        &layers,
        &dir,
        &target,
        &base.path().join("empty"),
        false,
        &userns(),
        LayerMounts::Detached,
    );
    let left = mounts_under(base.path());
    let layer_owner = owner(&layers[0].join("etc/passwd"));
    berth_sys::mount::umount2(&c, libc::MNT_DETACH).unwrap();
    let e = r.expect_err("a ramfs layer was idmapped").to_string();
    assert!(
        e.contains("does not support idmapped mounts") && e.contains("--userns host"),
        "{e}"
    );
    assert_eq!(
        left,
        [store.to_string_lossy().into_owned()],
        "something stayed mounted"
    );
    assert_eq!(layer_owner, (0, 0));
}

/// A map without container root cannot own the root directory.
#[test]
fn a_map_without_root_is_refused() {
    require_root();
    let base = tempfile::Builder::new()
        .prefix("berth-idroot")
        .tempdir()
        .unwrap();
    let m = vec![IdMap {
        container_id: 1,
        host_id: SHIFT,
        size: 10,
    }];
    let u = Userns {
        uids: m.clone(),
        gids: m,
    };
    let b = base.path();
    let e = rootfs::mount_idmapped(
        &layers(b),
        &b.join("ctr"),
        &b.join("rootfs"),
        &b.join("empty"),
        false,
        &u,
        LayerMounts::Detached,
    )
    .expect_err("mounted")
    .to_string();
    assert!(e.contains("maps no container root"), "{e}");
    assert!(mounts_under(b).is_empty());
}

/// Unmounts a container root when dropped (a failed test leaves no mount).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = rootfs::unmount(&self.0);
    }
}

/// berth-runtime, built next to this test.
fn runtime_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("berth-runtime");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p berth-runtime-cli` before this test",
        p.display()
    );
    p
}

/// A real container in a user namespace on its idmapped root: root of the
/// container owns the image's files and writes its own, which land in the
/// upper layer as the host's 100000; the image layer is untouched.
#[test]
fn a_container_in_a_user_namespace_runs_on_its_idmapped_root() {
    require_root();
    let base = tempfile::Builder::new()
        .prefix("berth-idroot")
        .tempdir()
        .unwrap();
    let b = base.path();
    let layers = layers(b);
    let bin = layers[0].join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is needed");
    let (dir, target, empty) = (b.join("ctr"), b.join("rootfs"), b.join("empty"));
    rootfs::mount_idmapped(
        &layers,
        &dir,
        &target,
        &empty,
        false,
        &userns(),
        LayerMounts::Detached,
    )
    .unwrap();
    let mounted = Unmount(target.clone());
    let bundle = b.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let map = serde_json::json!([{"containerID": 0, "hostID": SHIFT, "size": 65536}]);
    let config = serde_json::json!({
        "ociVersion": "1.2.0",
        "process": {
            "args": ["/bin/busybox", "sh", "-c",
                "/bin/busybox stat -c %u:%g /etc/passwd /home/u/own / && echo hi > /etc/new && /bin/busybox id -u"],
            "cwd": "/", "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin"]
        },
        "root": {"path": target},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {
            "namespaces": [{"type": "user"}, {"type": "mount"}, {"type": "pid"},
                           {"type": "ipc"}, {"type": "uts"}, {"type": "network"}],
            "uidMappings": map, "gidMappings": map
        }
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let state = b.join("state");
    let id = format!("idroot-{}", std::process::id());
    let out = std::process::Command::new(runtime_bin())
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let upper_new = owner(&dir.join("upper/etc/new"));
    drop(mounted);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["0:0", "1000:1000", "0:0", "0"]
    );
    assert_eq!(upper_new, (SHIFT, SHIFT));
    assert_eq!(owner(&layers[0].join("etc/passwd")), (0, 0));
}
