//! `berth run --userns` (and `--uidmap`/`--gidmap`) end to end: real
//! containers in user namespaces on their idmapped roots. The subordinate
//! id ranges come from files of the test's own, named by
//! BERTH_SUBUID_FILE/BERTH_SUBGID_FILE: the host's /etc/subuid is never
//! read or changed.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The start of the test's `containers` range (131072 ids: two `auto`
/// containers of 65536).
const BASE: u32 = 300_000;

const APPLETS: [&str; 10] = [
    "sh", "cat", "id", "stat", "echo", "ls", "touch", "mkdir", "head", "sleep",
];

/// An Env with an image and subordinate id files of its own.
struct Ns {
    env: Env,
    subids: tempfile::TempDir,
}

impl Ns {
    fn new(range: &str) -> Ns {
        let env = Env::new();
        let subids = tempfile::tempdir().unwrap();
        for f in ["subuid", "subgid"] {
            std::fs::write(subids.path().join(f), range).unwrap();
        }
        import_image(&env, busybox_rootfs(&APPLETS).end(), "ns");
        Ns { env, subids }
    }

    fn berth(&self, args: &[&str]) -> Out {
        let o = self
            .env
            .cmd()
            .env("BERTH_SUBUID_FILE", self.subids.path().join("subuid"))
            .env("BERTH_SUBGID_FILE", self.subids.path().join("subgid"))
            .args(args)
            .output()
            .expect("run berth");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn id(&self, name: &str) -> String {
        self.berth(&["inspect", "-f", "{{.Id}}", name])
            .ok()
            .stdout
            .trim()
            .to_string()
    }

    fn upper(&self, name: &str) -> PathBuf {
        self.env
            .root
            .path()
            .join("containers")
            .join(self.id(name))
            .join("upper")
    }

    fn volume(&self, name: &str) -> PathBuf {
        self.env
            .root
            .path()
            .join("volumes")
            .join(name)
            .join("_data")
    }
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// The first range of a /proc/PID/uid_map text, as numbers.
fn first_map(text: &str) -> Vec<u64> {
    text.lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn userns_auto_is_root_inside_on_a_mapped_range_and_keeps_it_across_restarts() {
    let ns = Ns::new(&format!("containers:{BASE}:131072\n"));
    let script = "id -u; id -g; cat /proc/self/uid_map; cat /proc/self/gid_map; \
                  stat -c %u:%g /etc/passwd /bin/busybox /; echo hi > /written; \
                  cat /etc/hosts > /dev/null && echo hosts-ok; \
                  touch /dev/shm/x && echo shm-ok; \
                  ls /sys/kernel > /dev/null && echo sys-ok; \
                  ls /sys/fs/cgroup > /dev/null && echo cgroup-ok";
    let out = ns
        .berth(&[
            "run", "--name", "ua", "--userns", "auto", "ns", "sh", "-c", script,
        ])
        .ok()
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], ["0", "0"], "{out}");
    assert_eq!(first_map(lines[2]), [0, BASE as u64, 65536], "{out}");
    assert_eq!(first_map(lines[3]), [0, BASE as u64, 65536], "{out}");
    // The image's files are root's inside (its layers are idmapped, not
    // chowned), and so is the container's /.
    assert_eq!(&lines[4..7], ["0:0", "0:0", "0:0"], "{out}");
    assert_eq!(
        &lines[7..],
        ["hosts-ok", "shm-ok", "sys-ok", "cgroup-ok"],
        "{out}"
    );
    // inspect shows the mode and the maps (podman's IDMappings).
    let o = ns
        .berth(&[
            "inspect",
            "-f",
            "{{.HostConfig.UsernsMode}} {{json .HostConfig.IDMappings}}",
            "ua",
        ])
        .ok()
        .stdout;
    assert_eq!(
        o,
        format!("auto {{\"GidMap\":[\"0:{BASE}:65536\"],\"UidMap\":[\"0:{BASE}:65536\"]}}\n")
    );
    // On the host, what the container wrote is the range's root's.
    let upper = ns.upper("ua");
    assert_eq!(owner(&upper.join("written")), (BASE, BASE));
    // The maps are the record's: a restart keeps them.
    ns.berth(&["start", "ua"]).ok();
    ns.berth(&["wait", "ua"]).ok();
    let again = ns.berth(&["logs", "ua"]).ok().stdout;
    let maps: Vec<&str> = again
        .lines()
        .filter(|l| l.trim_start().starts_with('0') && l.split_whitespace().count() == 3)
        .collect();
    assert!(maps.len() >= 4, "{again}");
    for m in maps {
        assert_eq!(first_map(m), [0, BASE as u64, 65536], "{again}");
    }
}

#[test]
fn userns_auto_gives_each_container_a_range_no_other_has() {
    let ns = Ns::new(&format!("containers:{BASE}:131072\n"));
    ns.berth(&["create", "--name", "one", "--userns", "auto", "ns", "true"])
        .ok();
    let out = ns
        .berth(&[
            "run",
            "--rm",
            "--userns",
            "auto",
            "ns",
            "cat",
            "/proc/self/uid_map",
        ])
        .ok()
        .stdout;
    assert_eq!(first_map(&out), [0, BASE as u64 + 65536, 65536], "{out}");
    // The range is full now: a third is refused, saying where ids come from.
    ns.berth(&["create", "--name", "two", "--userns", "auto", "ns", "true"])
        .ok();
    let e = ns.berth(&[
        "create", "--name", "three", "--userns", "auto", "ns", "true",
    ]);
    assert_ne!(e.code, 0, "a third auto container in a range of two");
    assert!(e.stderr.contains("free"), "{}", e.stderr);
    // Removing one frees its range for the next.
    ns.berth(&["rm", "one"]).ok();
    let out = ns
        .berth(&[
            "run",
            "--rm",
            "--userns",
            "auto:size=1000",
            "ns",
            "cat",
            "/proc/self/uid_map",
        ])
        .ok()
        .stdout;
    assert_eq!(first_map(&out), [0, BASE as u64, 1000], "{out}");
}

#[test]
fn userns_volumes_are_the_containers_and_host_binds_are_not_idmapped() {
    let ns = Ns::new(&format!("containers:{BASE}:65536\n"));
    let bind = tempfile::tempdir().unwrap();
    std::fs::write(bind.path().join("host-file"), "h").unwrap();
    // Writable by the container's root, which is an unprivileged host id.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bind.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let b = format!("{}:/bind", bind.path().display());
    let script = "echo v > /data/f; stat -c %u:%g /data/f /data; \
                  stat -c %u:%g /bind/host-file; echo b > /bind/new";
    let out = ns
        .berth(&[
            "run",
            "--rm",
            "--userns",
            "auto",
            "-v",
            "vol:/data",
            "-v",
            &b,
            "ns",
            "sh",
            "-c",
            script,
        ])
        .ok()
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    // The volume is idmapped: its files are the container's root's. A host
    // path is not (as with Docker's userns-remap and podman without
    // `:idmap`): the host root's file is nobody's inside...
    assert_eq!(lines, ["0:0", "0:0", "65534:65534"], "{out}");
    // The volume's files are the host's root's: no container's range
    // is written into it.
    assert_eq!(owner(&ns.volume("vol").join("f")), (0, 0));
    // ...and what the container's root writes there is its host id's, not
    // host root's (it cannot plant root-owned or setuid-root files).
    assert_eq!(owner(&bind.path().join("new")), (BASE, BASE));
    // A named volume mounted where the image has files gets them (copy-up)
    // with the image's ids, not the container's host ones.
    let out = ns
        .berth(&[
            "run",
            "--rm",
            "--userns",
            "auto",
            "-v",
            "copied:/etc",
            "ns",
            "stat",
            "-c",
            "%u:%g",
            "/etc/passwd",
        ])
        .ok()
        .stdout;
    assert_eq!(out.trim(), "0:0");
    assert_eq!(owner(&ns.volume("copied").join("passwd")), (0, 0));
}

#[test]
fn userns_host_and_no_flag_have_no_user_namespace() {
    let ns = Ns::new(&format!("containers:{BASE}:65536\n"));
    for args in [&["--userns", "host"][..], &[]] {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["ns", "cat", "/proc/self/uid_map"]);
        let out = ns.berth(&a).ok().stdout;
        assert_eq!(first_map(&out), [0, 0, 4294967295], "{args:?}: {out}");
    }
}

#[test]
fn userns_uidmap_gives_the_maps_as_typed() {
    let ns = Ns::new("");
    let out = ns
        .berth(&[
            "run",
            "--rm",
            "--uidmap",
            "0:400000:5000",
            "--gidmap",
            "0:410000:5000",
            "ns",
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; stat -c %u:%g /etc/passwd",
        ])
        .ok()
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(first_map(lines[0]), [0, 400000, 5000], "{out}");
    assert_eq!(first_map(lines[1]), [0, 410000, 5000], "{out}");
    assert_eq!(lines[2], "0:0", "{out}");
}

#[test]
fn userns_bad_modes_and_maps_are_clear_errors_at_create() {
    let ns = Ns::new("");
    for (args, says) in [
        (&["--uidmap", "0:100000"][..], "--uidmap"),
        (&["--uidmap", "0:100000:0"][..], "--uidmap"),
        (&["--uidmap", "1:100000:10"][..], "id 0"),
        (&["--gidmap", "0:100000:10"][..], "--uidmap too"),
        (&["--userns", "sideways"][..], "host, auto"),
        (&["--userns", "auto:size=x"][..], "auto size"),
        (&["--userns", "auto"][..], "subuid"),
        (
            &["--userns", "auto", "--uidmap", "0:100000:10"][..],
            "cannot be given with --uidmap",
        ),
        (
            &["--uidmap", "0:100000:10", "--network", "host"][..],
            "--network",
        ),
        (&["--uidmap", "0:100000:10", "--pid", "host"][..], "--pid"),
    ] {
        let mut a = vec!["create"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["ns", "true"]);
        let o = ns.berth(&a);
        assert_ne!(o.code, 0, "{args:?} was taken");
        assert!(o.stderr.contains(says), "{args:?}: {}", o.stderr);
    }
    assert_eq!(ns.berth(&["ps", "-aq"]).ok().stdout, "", "nothing recorded");
}

/// Review M2: with a user namespace a device given at another path is
/// bound from its host path (the runtime cannot make nodes there, and
/// bound the host's node at the container's path: the wrong one, or none).
#[test]
fn userns_device_at_another_path_is_the_host_paths_node() {
    let ns = Ns::new(&format!("containers:{BASE}:131072\n"));
    let out = ns
        .berth(&[
            "run",
            "--rm",
            "--userns",
            "auto",
            "--device",
            "/dev/zero:/dev/berth-zero",
            "ns",
            "sh",
            "-c",
            "stat -c %t:%T /dev/berth-zero",
        ])
        .ok()
        .stdout;
    assert_eq!(out.lines().next(), Some("1:5"), "{out}");
}

/// Review L4: a subordinate id file others may write is refused, named.
#[test]
fn userns_refuses_a_subid_file_others_may_write() {
    use std::os::unix::fs::PermissionsExt;
    let ns = Ns::new(&format!("containers:{BASE}:131072\n"));
    let f = ns.subids.path().join("subuid");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = ns.berth(&["create", "--userns", "auto", "ns", "true"]);
    assert_ne!(o.code, 0, "a world-writable {} was used", f.display());
    assert!(
        o.stderr.contains(&f.display().to_string()) && o.stderr.contains("writable"),
        "{}",
        o.stderr
    );
}
