//! Layer unpacking against hostile archives (modelled on containerd's
//! TestBreakouts and moby's TestUntarInvalid* cases) and the ordinary
//! kinds of entries. Needs root (device nodes, owners, trusted xattrs).

use berth_image::tar::build::{header, seal, Tar};
use berth_image::unpack::unpack;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn require_root() {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        uid, 0,
        "these tests need root (mknod, chown, trusted.* xattrs)"
    );
}

struct Case {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    /// Outside the layer: must never change.
    victim: PathBuf,
}

fn case() -> Case {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("layer");
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("secret"), "host data\n").unwrap();
    std::fs::set_permissions(
        victim.join("secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    Case {
        _tmp: tmp,
        root,
        victim,
    }
}

impl Case {
    fn unpack(&self, data: Vec<u8>) -> berth_image::Result<()> {
        unpack(&self.root, &data[..], "test").map(|_| ())
    }
    fn victim_intact(&self) {
        let names: Vec<_> = std::fs::read_dir(&self.victim)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret"], "something was created outside the layer");
        let m = std::fs::symlink_metadata(self.victim.join("secret")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600, "the host file's mode changed");
        assert_eq!(m.nlink(), 1, "the host file was hard-linked");
        assert_eq!(
            std::fs::read_to_string(self.victim.join("secret")).unwrap(),
            "host data\n"
        );
    }
    fn v(&self) -> &str {
        self.victim.to_str().unwrap()
    }
    /// Where an absolute host path lands inside the layer.
    fn inside(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }
}

#[test]
fn dotdot_names_are_refused() {
    for name in ["../victim/x", "a/../../victim/x", "..", "./../x"] {
        let c = case();
        let mut t = Tar::default();
        t.file(name, b"pwned", 0o644);
        let e = c.unpack(t.end()).unwrap_err().to_string();
        assert!(e.contains(".."), "{name}: {e}");
        c.victim_intact();
    }
}

#[test]
fn absolute_names_stay_inside() {
    let c = case();
    let abs = format!("{}/secret", c.v());
    let mut t = Tar::default();
    t.file(&abs, b"pwned", 0o644);
    c.unpack(t.end()).unwrap();
    c.victim_intact();
    assert_eq!(std::fs::read(c.inside(&abs)).unwrap(), b"pwned");
}

#[test]
fn writes_through_planted_symlinks_stay_inside() {
    // x -> /victim (absolute) then x/secret; y -> ../../../victim then y/new;
    // a directory created through a symlinked parent (RUSTSEC-2021-0080).
    let c = case();
    let mut t = Tar::default();
    t.symlink("x", c.v())
        .file("x/secret", b"pwned", 0o644)
        .symlink("y", "../../../../../victim")
        .file("y/new", b"pwned", 0o644)
        .symlink("d", c.v())
        .dir("d/sub/", 0o755)
        .file("d/sub/f", b"pwned", 0o644);
    c.unpack(t.end()).unwrap();
    c.victim_intact();
    assert_eq!(
        std::fs::read(c.inside(&format!("{}/secret", c.v()))).unwrap(),
        b"pwned"
    );
    assert!(c.root.join("victim/new").exists());
    assert!(c.inside(&format!("{}/sub/f", c.v())).exists());
}

#[test]
fn hardlinks_only_to_entries_inside() {
    for target in [
        "../victim/secret".to_string(),
        "/../victim/secret".to_string(),
    ] {
        let c = case();
        let mut t = Tar::default();
        t.hardlink("h", &target);
        assert!(c.unpack(t.end()).is_err(), "{target}");
        c.victim_intact();
    }
    // An absolute host path, and one through a planted symlink: resolved
    // inside the layer, where nothing is there.
    let c = case();
    let mut t = Tar::default();
    t.hardlink("h", &format!("{}/secret", c.v()));
    let e = c.unpack(t.end()).unwrap_err().to_string();
    assert!(e.contains("not in the layer"), "{e}");
    c.victim_intact();
    let c = case();
    let mut t = Tar::default();
    t.symlink("l", c.v()).hardlink("h", "l/secret");
    assert!(c.unpack(t.end()).is_err());
    c.victim_intact();
    // A hard link to a symlink links the symlink itself.
    let c = case();
    let mut t = Tar::default();
    t.symlink("s", &format!("{}/secret", c.v()))
        .hardlink("h", "s");
    c.unpack(t.end()).unwrap();
    assert!(std::fs::symlink_metadata(c.root.join("h"))
        .unwrap()
        .file_type()
        .is_symlink());
    c.victim_intact();
}

#[test]
fn chmod_and_chown_never_follow_symlinks() {
    // CVE-2021-32760 / CVE-2026-33056: an entry replacing a symlink to a
    // host file must not change that file's mode or owner.
    let c = case();
    let victim_mode = std::fs::metadata(&c.victim).unwrap().mode() & 0o7777;
    assert_ne!(victim_mode, 0o777);
    let secret = format!("{}/secret", c.v());
    let mut t = Tar::default();
    t.symlink("s", &secret).file("s", b"mine", 0o4777);
    t.symlink("d", c.v()).dir("d", 0o777);
    let mut h = header(b"s2", b'2', 0, secret.as_bytes(), 0o777);
    // A symlink entry with an owner: lchown, never chown.
    h[108..116].copy_from_slice(b"0001750\0");
    seal(&mut h);
    t.raw(h, b"");
    c.unpack(t.end()).unwrap();
    c.victim_intact();
    assert_eq!(std::fs::metadata(c.victim.join("secret")).unwrap().uid(), 0);
    assert_eq!(
        std::fs::symlink_metadata(c.root.join("s2")).unwrap().uid(),
        1000
    );
    let m = std::fs::symlink_metadata(c.root.join("s")).unwrap();
    assert!(m.is_file());
    assert_eq!(m.mode() & 0o7777, 0o4777);
    assert!(std::fs::symlink_metadata(c.root.join("d"))
        .unwrap()
        .is_dir());
    assert_eq!(
        std::fs::metadata(&c.victim).unwrap().mode() & 0o7777,
        victim_mode,
        "the host directory's mode changed"
    );
}

#[test]
fn symlinks_named_dot_or_slash_are_refused() {
    for name in [".", "/", "./", "a/.."] {
        let c = case();
        let mut t = Tar::default();
        t.symlink(name, c.v()).file("secret", b"pwned", 0o644);
        assert!(c.unpack(t.end()).is_err(), "{name:?}");
        c.victim_intact();
    }
}

#[test]
fn whiteouts_become_overlay_whiteouts_and_stay_inside() {
    let c = case();
    let mut t = Tar::default();
    t.dir("etc/", 0o755)
        .file("etc/keep", b"k", 0o644)
        .file("etc/.wh.gone", b"", 0o644)
        .dir("opaque/", 0o755)
        .file("opaque/.wh..wh..opq", b"", 0o644)
        .file(".wh..wh.plnk", b"", 0o644);
    c.unpack(t.end()).unwrap();
    let m = std::fs::symlink_metadata(c.root.join("etc/gone")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &m.file_type()
    ));
    assert_eq!(m.rdev(), 0);
    assert!(!c.root.join("etc/.wh.gone").exists());
    assert!(!c.root.join("opaque/.wh..wh..opq").exists());
    assert_eq!(
        xattr(&c.root.join("opaque"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    // Hostile whiteouts.
    for name in [".wh...", ".wh..", ".wh.", "dne/../.wh.etc", "../.wh.victim"] {
        let c = case();
        let mut t = Tar::default();
        t.file(name, b"", 0o644);
        assert!(c.unpack(t.end()).is_err(), "{name:?}");
        c.victim_intact();
    }
    // A whiteout through a planted symlink deletes inside the layer only.
    let c = case();
    let mut t = Tar::default();
    t.symlink("v", c.v()).file("v/.wh.secret", b"", 0o644);
    c.unpack(t.end()).unwrap();
    c.victim_intact();
}

#[test]
fn overlay_xattrs_from_the_layer_are_dropped() {
    let c = case();
    let mut t = Tar::default();
    t.pax(&[
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
    ])
    .dir("d/", 0o755);
    c.unpack(t.end()).unwrap();
    assert_eq!(xattr(&c.root.join("d"), "trusted.overlay.redirect"), None);
    assert_eq!(xattr(&c.root.join("d"), "trusted.overlay.opaque"), None);
}

#[test]
fn every_kind_with_its_metadata() {
    let c = case();
    let long = format!("{}/file", "long-directory-name".repeat(12));
    let mut t = Tar::default();
    t.pax(&[
        ("path", long.as_bytes()),
        ("mtime", b"1600000000.5"),
        ("uid", b"100000"),
        ("gid", b"100001"),
    ])
    .file("short", b"long name data", 0o640);
    t.pax(&[(
        "SCHILY.xattr.security.capability",
        b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
    )])
    .file("bin/ping", b"ELF", 0o755);
    t.file("bin/su", b"ELF", 0o4755)
        .hardlink("bin/su2", "bin/su")
        .dir("tmp/", 0o1777);
    let mut h = header(b"dev/null", b'3', 0, b"", 0o666);
    h[329..337].copy_from_slice(b"0000001\0");
    h[337..345].copy_from_slice(b"0000003\0");
    seal(&mut h);
    t.raw(h, b"");
    let mut h = header(b"dev/loop0", b'4', 0, b"", 0o660);
    h[329..337].copy_from_slice(b"0000007\0");
    seal(&mut h);
    t.raw(h, b"");
    t.raw(header(b"run/fifo", b'6', 0, b"", 0o600), b"");
    c.unpack(t.end()).unwrap();
    let m = std::fs::metadata(c.root.join(&long)).unwrap();
    assert_eq!(
        std::fs::read(c.root.join(&long)).unwrap(),
        b"long name data"
    );
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (100000, 100001, 0o640)
    );
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_600_000_000, 500_000_000));
    assert!(xattr(&c.root.join("bin/ping"), "security.capability").is_some());
    let su = std::fs::metadata(c.root.join("bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755);
    assert_eq!(su.nlink(), 2);
    assert_eq!(
        std::fs::metadata(c.root.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    let null = std::fs::metadata(c.root.join("dev/null")).unwrap();
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert_eq!(
        std::fs::metadata(c.root.join("dev/loop0")).unwrap().rdev(),
        libc::makedev(7, 0)
    );
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &std::fs::metadata(c.root.join("run/fifo"))
            .unwrap()
            .file_type()
    ));
    // Directory mtimes are set after their contents.
    assert_eq!(
        std::fs::metadata(c.root.join("tmp")).unwrap().mtime(),
        1_700_000_000
    );
}

#[test]
fn truncated_and_garbage_layers_fail() {
    let mut t = Tar::default();
    t.file("a", &[1u8; 5000], 0o644);
    let full = t.end();
    for cut in [10, 512, 3000] {
        let c = case();
        assert!(c.unpack(full[..cut].to_vec()).is_err(), "cut at {cut}");
    }
    let c = case();
    assert!(c.unpack(vec![0x5a; 4096]).is_err());
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let cp = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let cn = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and buffer.
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| {
        buf.truncate(n as usize);
        buf
    })
}
