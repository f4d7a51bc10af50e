//! Idmapped bind mounts (config.md "mounts": `uidMappings`/`gidMappings`,
//! options `idmap` and `ridmap`, as runc 1.2 and crun implement them): the
//! files of a bind source show the ids its mapping gives them, without a
//! chown; the mappings' errors are refused before anything is made.
//!
//! A mount's mapping reads like a user namespace's: the ids in
//! `containerID..` on the source's filesystem show as `hostID..` through
//! the mount (then, inside a container with a user namespace, as what its
//! own maps make of those).

mod common;
use common::*;
use oci_spec::runtime::Mount;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The container's maps in [`userns_bundle`]: 0..65536 is 100000.. on the host.
const SHIFT: u32 = 100000;

fn map(container: u32, host: u32, size: u32) -> serde_json::Value {
    json!([{"containerID": container, "hostID": host, "size": size}])
}

fn bind(dest: &str, source: &Path, opts: &[&str], maps: Option<serde_json::Value>) -> Mount {
    let mut m = json!({
        "destination": dest, "type": "bind",
        "source": source.to_str().unwrap(), "options": opts
    });
    if let Some(maps) = maps {
        m["uidMappings"] = maps.clone();
        m["gidMappings"] = maps;
    }
    serde_json::from_value(m).unwrap()
}

/// A directory on the host holding `files`, each a file owned by its ids.
fn source(files: &[(&str, u32)]) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("berth-idmap")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    for (name, id) in files {
        let p = d.path().join(name);
        std::fs::write(&p, name).unwrap();
        std::os::unix::fs::chown(&p, Some(*id), Some(*id)).unwrap();
    }
    d
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// A tmpfs mounted on the host for the length of a test.
struct HostTmpfs(std::path::PathBuf);

impl HostTmpfs {
    fn at(p: &Path) -> HostTmpfs {
        std::fs::create_dir_all(p).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0777", "berth-idmap-test"])
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success(), "mount a tmpfs on {}", p.display());
        HostTmpfs(p.to_path_buf())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// runc's idmap.bats: in a container whose root is host uid 100000, the
/// source's files owned by 0 and 1 show as 0 and 1 through the idmapped
/// mount (and as nobody through a plain bind of the same directory); what
/// the container's root creates there is owned by 0 on the disk.
#[test]
fn an_idmapped_bind_shows_the_files_own_ids_in_a_user_namespace() {
    let rt = Runtime::new();
    let src = source(&[("a", 0), ("b", 1), ("far", 2 * SHIFT)]);
    let mut b = userns_bundle(&[
        "sh",
        "-c",
        "stat -c %n=%u:%g /i/a /i/b /i/far /plain/a && touch /i/new && echo done",
    ]);
    b.add_mount(bind(
        "/i",
        src.path(),
        &["bind", "idmap"],
        Some(map(0, SHIFT, 65536)),
    ));
    b.add_mount(bind("/plain", src.path(), &["bind"], None));
    let o = rt.run(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        [
            "/i/a=0:0",
            "/i/b=1:1",
            // Outside the mount's mapping: no id in the container.
            "/i/far=65534:65534",
            "/plain/a=65534:65534",
            "done"
        ]
    );
    assert_eq!(owner(&src.path().join("new")), (0, 0));
}

/// Without a user namespace: files owned by host ids 100000+N show as N
/// through a mount mapping 100000.. to 0.., and root's new files land on
/// the disk as 100000.
#[test]
fn an_idmapped_bind_shifts_host_ids_without_a_user_namespace() {
    let rt = Runtime::new();
    let src = source(&[("seven", SHIFT + 7), ("root", SHIFT), ("low", 5)]);
    // The kernel lets nobody write to a directory whose owner the mount
    // cannot map: this one must be in the mapping.
    std::os::unix::fs::chown(src.path(), Some(SHIFT), Some(SHIFT)).unwrap();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "stat -c %n=%u:%g /m/seven /m/root /m/low && touch /m/new && echo done",
    ]);
    b.add_mount(bind(
        "/m",
        src.path(),
        &["rbind", "idmap"],
        Some(map(SHIFT, 0, 65536)),
    ));
    let o = rt.run(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        ["/m/seven=7:7", "/m/root=0:0", "/m/low=65534:65534", "done"]
    );
    assert_eq!(owner(&src.path().join("new")), (SHIFT, SHIFT));
    // The source itself is untouched.
    assert_eq!(owner(&src.path().join("seven")), (SHIFT + 7, SHIFT + 7));
}

/// `idmap` without mappings takes the container's user namespace maps
/// (runtime-spec 1.2, #1224), and several mounts with the same maps work.
#[test]
fn idmap_without_mappings_takes_the_containers() {
    let rt = Runtime::new();
    let src = source(&[("a", 0), ("b", 3)]);
    let mut b = userns_bundle(&["stat", "-c", "%n=%u:%g", "/x/a", "/y/b"]);
    b.add_mount(bind("/x", src.path(), &["bind", "idmap"], None));
    b.add_mount(bind(
        "/y",
        src.path(),
        &["bind", "ro", "idmap"],
        Some(json!([])),
    ));
    let o = rt.run(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        ["/x/a=0:0", "/y/b=3:3"]
    );
}

/// `ridmap` idmaps the submounts of an rbind too; `idmap` the top mount
/// only, whose submounts then show their raw ids (nobody, in a user
/// namespace).
#[test]
fn ridmap_reaches_submounts_and_idmap_does_not() {
    let rt = Runtime::new();
    let src = source(&[("top", 0)]);
    let _sub = HostTmpfs::at(&src.path().join("sub"));
    std::fs::write(src.path().join("sub/f"), "f").unwrap();
    let mut b = userns_bundle(&[
        "stat", "-c", "%n=%u:%g", "/r/top", "/r/sub/f", "/n/top", "/n/sub/f",
    ]);
    b.add_mount(bind("/r", src.path(), &["rbind", "ridmap"], None));
    b.add_mount(bind("/n", src.path(), &["rbind", "idmap"], None));
    let o = rt.run(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        [
            "/r/top=0:0",
            "/r/sub/f=0:0",
            "/n/top=0:0",
            "/n/sub/f=65534:65534"
        ]
    );
}

/// A filesystem that cannot be idmapped (sysfs) is refused, saying so,
/// and nothing is left behind.
#[test]
fn a_filesystem_without_idmap_support_is_refused_clearly() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.add_mount(bind(
        "/k",
        Path::new("/sys/kernel"),
        &["bind", "idmap"],
        Some(map(0, SHIFT, 65536)),
    ));
    let o = rt.run(&b);
    assert_ne!(o.code, 0, "sysfs was idmapped: {}", o.stdout);
    if is_berth() {
        assert!(
            o.stderr.contains("mounts[")
                && o.stderr.contains("/sys/kernel")
                && o.stderr.contains("does not support idmapped mounts"),
            "{}",
            o.stderr
        );
    }
    assert_ne!(rt.exec(&["state", &b.id]).code, 0, "a container was left");
}

/// Mappings the kernel would refuse, or that make no sense for a mount,
/// are refused before anything is made, naming the field.
#[test]
fn hostile_idmap_mappings_are_refused() {
    let rt = Runtime::new();
    let src = source(&[("a", 0)]);
    let s = src.path().to_str().unwrap();
    let ok = map(0, SHIFT, 65536);
    let cases = [
        (
            json!({"destination": "/m", "source": s, "options": ["bind", "idmap"], "uidMappings": ok,
                   "gidMappings": map(0, SHIFT, 0)}),
            "mounts[7].gidMappings: [0]: size must be greater than zero",
        ),
        (
            json!({"destination": "/m", "source": s, "options": ["bind", "idmap"], "gidMappings": ok,
                   "uidMappings": [{"containerID": 0, "hostID": 0, "size": 100},
                                   {"containerID": 1000, "hostID": 50, "size": 1}]}),
            "mounts[7].uidMappings: [1]: its outside ids overlap those of [0]",
        ),
        (
            json!({"destination": "/m", "source": s, "options": ["bind", "idmap"], "gidMappings": ok,
                   "uidMappings": map(4294967000, 0, 1000)}),
            "go past id 4294967294",
        ),
        (
            json!({"destination": "/m", "source": s, "options": ["bind", "idmap"], "uidMappings": ok}),
            "mounts[7].gidMappings: is needed with uidMappings",
        ),
        (
            json!({"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
                   "uidMappings": ok, "gidMappings": ok}),
            "mounts[7]: an idmapped mount (idmap, ridmap, uidMappings) must be a bind mount",
        ),
        (
            // The container's maps, and it has no user namespace.
            json!({"destination": "/m", "source": s, "options": ["bind", "ridmap"]}),
            "mounts[7].options: idmap without uidMappings and gidMappings",
        ),
    ];
    for (m, want) in cases {
        let mut b = Bundle::new(&["true"]);
        assert_eq!(b.spec.mounts().as_ref().map(Vec::len), Some(7));
        b.add_mount(serde_json::from_value(m.clone()).unwrap());
        let o = rt.run(&b);
        assert_ne!(o.code, 0, "{m} was accepted");
        if is_berth() {
            assert!(o.stderr.contains(want), "{m}: {}", o.stderr);
        }
        assert_ne!(rt.exec(&["state", &b.id]).code, 0, "a container was left");
    }
}

/// Each distinct pair of mappings among a container's idmapped mounts costs
/// a user namespace of its own: 64 are made, more are refused (berth's
/// limit) naming it; mounts sharing mappings share one.
#[test]
fn distinct_idmap_mappings_are_capped() {
    let rt = Runtime::new();
    let src = source(&[("a", 0)]);
    for (n, shared) in [(64u32, false), (65, false), (200, true)] {
        let mut b = Bundle::new(&["cat", "/m0/a"]);
        for i in 0..n {
            let maps = map(0, SHIFT + if shared { 0 } else { i }, 1);
            b.add_mount(bind(&format!("/m{i}"), src.path(), &["bind"], Some(maps)));
        }
        let o = rt.run(&b);
        if n == 65 && is_berth() {
            assert_ne!(o.code, 0, "65 distinct mappings were accepted");
            assert!(
                o.stderr
                    .contains("more than 64 distinct uidMappings/gidMappings"),
                "{}",
                o.stderr
            );
            assert_ne!(rt.exec(&["state", &b.id]).code, 0, "a container was left");
        } else if n != 65 {
            assert_eq!(o.code, 0, "{n} mounts (shared {shared}): {}", o.stderr);
            assert_eq!(o.stdout, "a");
        }
    }
}

/// `features` says idmapped mounts work, and they do (the tests above).
#[test]
fn features_report_idmap_enabled() {
    let rt = Runtime::new();
    let f = rt.exec(&["features"]).ok().json();
    assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    let opts = f["mountOptions"].as_array().unwrap();
    for o in ["idmap", "ridmap"] {
        assert!(opts.contains(&o.into()), "{o} missing from {opts:?}");
    }
}

/// A rootless runtime cannot make idmapped mounts (the kernel wants
/// privilege over the source's filesystem): refused, saying why, as runc
/// refuses them for rootless containers.
#[test]
fn a_rootless_runtime_refuses_idmapped_mounts_clearly() {
    use std::os::unix::process::CommandExt;
    const UID: u32 = 23457;
    let rt_root = tempfile::Builder::new()
        .prefix("berth-idmap-root")
        .tempdir()
        .unwrap();
    std::os::unix::fs::chown(rt_root.path(), Some(UID), Some(UID)).unwrap();
    let src = source(&[("a", UID)]);
    let mut b = Bundle::new(&["true"]);
    b.add_namespace(oci_spec::runtime::LinuxNamespaceType::User, None);
    let own = map(0, UID, 1);
    b.linux()
        .set_uid_mappings(Some(serde_json::from_value(own.clone()).unwrap()));
    b.linux()
        .set_gid_mappings(Some(serde_json::from_value(own.clone()).unwrap()));
    // No cgroup: a user has none delegated here.
    b.linux().set_resources(None);
    b.linux().set_cgroups_path(None);
    b.add_mount(bind("/m", src.path(), &["bind", "idmap"], Some(own)));
    b.write();
    let st = std::process::Command::new("chown")
        .args(["-R", &format!("{UID}:{UID}")])
        .arg(b.path())
        .status()
        .unwrap();
    assert!(st.success());
    let mut cmd = std::process::Command::new(runtime_bin());
    cmd.arg("--root")
        .arg(rt_root.path())
        .args(["run", "--bundle", b.path().to_str().unwrap(), &b.id])
        .current_dir(b.path())
        .env("XDG_RUNTIME_DIR", rt_root.path())
        .stdin(std::process::Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(UID) != 0
                || libc::setuid(UID) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let o = Out::from_output(cmd.output().unwrap());
    assert_ne!(o.code, 0, "a rootless runtime made an idmapped mount");
    if is_berth() {
        assert!(
            o.stderr
                .contains("mounts[7] (/m): idmapped mounts need a runtime running as root"),
            "{}",
            o.stderr
        );
    }
}

/// What the host mounted inside an rbind's source stays locked to it, idmapped
/// or not: root of the container (with CAP_SYS_ADMIN in its user namespace)
/// cannot unmount it to see what it covers. Also for a source under a 0700
/// directory of root's, which the container's root may not traverse: the
/// runtime opens the source in the init's mount namespace and the init
/// clones that (a tree cloned on the host side has no locked submounts).
#[test]
fn an_idmapped_rbinds_submounts_stay_locked() {
    let rt = Runtime::new();
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root");
    let reachable = source(&[("top", 0)]);
    let hidden_parent = tempfile::Builder::new()
        .prefix("berth-idmap-0700")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        hidden_parent.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let hidden = hidden_parent.path().join("src");
    std::fs::create_dir(&hidden).unwrap();
    std::fs::set_permissions(&hidden, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut subs = Vec::new();
    for src in [reachable.path(), hidden.as_path()] {
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/hidden"), "under the mount").unwrap();
        subs.push(HostTmpfs::at(&src.join("sub")));
        std::fs::write(src.join("sub/f"), "f").unwrap();
        for opts in [
            &["rbind", "ridmap"][..],
            &["rbind", "idmap"][..],
            &["rbind"][..],
        ] {
            let mut b = userns_bundle(&[
                "sh",
                "-c",
                "umount /r/sub 2>/dev/null && echo unmounted; umount -l /r/sub 2>/dev/null && echo detached; ls /r/sub",
            ]);
            b.add_mount(bind("/r", src, opts, None));
            let admin = json!(["CAP_SYS_ADMIN"]);
            b.process().set_capabilities(Some(
                serde_json::from_value(
                    json!({"bounding": admin, "effective": admin, "permitted": admin}),
                )
                .unwrap(),
            ));
            let o = rt.run(&b);
            let at = src.display();
            assert_eq!(o.code, 0, "{at} {opts:?}: {}", o.stderr);
            assert_eq!(
                o.stdout.trim(),
                "f",
                "{at} {opts:?}: the host's submount could be removed"
            );
        }
    }
}
