//! `--user` and the image's `User`, resolved in the image's own
//! /etc/passwd and /etc/group: read through the rootfs with
//! openat2(RESOLVE_IN_ROOT), so a symlinked /etc/passwd cannot point at
//! the host's, and capped in size (CVE-2024-9676: a huge or endless file
//! must not exhaust the engine).

use crate::error::{option, Error, Result};
use berth_sys::fs::{self as sfs, Links};
use std::io::Read;
use std::os::fd::BorrowedFd;
use std::path::Path;

/// The largest passwd or group file read.
pub const MAX_DB: u64 = 4 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, as Docker sets them: the primary group first
    /// (so that a setgid program cannot shed it and slip past a file's
    /// group-deny permissions: CVE-2022-36109, CVE-2022-2989), then those
    /// of /etc/group that list the user, then `--group-add`'s.
    pub additional_gids: Vec<u32>,
    pub home: String,
}

impl Default for User {
    fn default() -> Self {
        User {
            uid: 0,
            gid: 0,
            additional_gids: vec![0],
            home: "/".into(),
        }
    }
}

/// Reads an /etc file of the image (None when it does not exist). Only a
/// regular file is read: a fifo or a device there is refused without
/// being opened (`berth_sys::fs::open_file_in_root`), so it cannot make
/// the engine wait or read a device.
pub fn read_db(root: BorrowedFd<'_>, path: &str) -> Result<Option<String>> {
    match sfs::open_file_in_root(root, Path::new(path), Links::InRoot) {
        Ok((file, _)) => {
            let mut s = Vec::new();
            file.take(MAX_DB + 1)
                .read_to_end(&mut s)
                .map_err(|e| Error::Io {
                    op: format!("read the image's {path}"),
                    cause: e,
                })?;
            if s.len() as u64 > MAX_DB {
                return Err(Error::Image {
                    field: path.into(),
                    msg: format!("larger than {MAX_DB} bytes; refused"),
                });
            }
            Ok(Some(String::from_utf8_lossy(&s).into_owned()))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(Error::Io {
            op: format!("open the image's {path}"),
            cause: e,
        }),
    }
}

/// Resolves `spec` (`name`, `uid`, `name:group`, `uid:gid`, or empty for
/// root) in the image whose root is `root`, with the `--group-add` groups
/// (names from the image's /etc/group, or numbers).
pub fn resolve_in(root: BorrowedFd<'_>, spec: &str, group_add: &[String]) -> Result<User> {
    let passwd = read_db(root, "/etc/passwd")?;
    let group = read_db(root, "/etc/group")?;
    resolve(spec, passwd.as_deref(), group.as_deref(), group_add)
}

fn numeric(s: &str) -> Option<u32> {
    s.parse::<u32>().ok().filter(|v| *v != u32::MAX)
}

/// The pure part of [`resolve_in`]: `passwd` and `group` are the files'
/// contents, if the image has them.
pub fn resolve(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
    group_add: &[String],
) -> Result<User> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let bad = |m: String| option("--user", m);
    let pw: Vec<Vec<&str>> = passwd
        .unwrap_or("")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let gr: Vec<Vec<&str>> = group
        .unwrap_or("")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    // No user means root, looked up like uid 0.
    let u = if u.is_empty() { "0" } else { u };
    let (uid, name, mut gid, home) = if let Some(uid) = numeric(u) {
        let entry = pw.iter().find(|f| numeric(f[2]) == Some(uid));
        (
            uid,
            entry.map(|f| f[0]),
            entry.and_then(|f| numeric(f[3])).unwrap_or(0),
            entry.map(|f| f[5]),
        )
    } else {
        let f = pw.iter().find(|f| f[0] == u).ok_or_else(|| {
            bad(format!(
                "no user {u:?} in the image's /etc/passwd (give a numeric uid instead)"
            ))
        })?;
        let uid = numeric(f[2]).ok_or_else(|| bad(format!("user {u:?} has an invalid uid")))?;
        (uid, Some(f[0]), numeric(f[3]).unwrap_or(0), Some(f[5]))
    };
    if let Some(g) = g {
        gid = if let Some(n) = numeric(g) {
            n
        } else {
            let f = gr.iter().find(|f| f[0] == g).ok_or_else(|| {
                bad(format!(
                    "no group {g:?} in the image's /etc/group (give a numeric gid instead)"
                ))
            })?;
            numeric(f[2]).ok_or_else(|| bad(format!("group {g:?} has an invalid gid")))?
        };
    }
    let mut additional_gids = vec![gid];
    if let Some(n) = name {
        additional_gids.extend(
            gr.iter()
                .filter(|f| f[3].split(',').any(|m| m == n))
                .filter_map(|f| numeric(f[2])),
        );
    }
    for g in group_add {
        additional_gids.push(match numeric(g) {
            Some(n) => n,
            None => gr
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| numeric(f[2]))
                .ok_or_else(|| {
                    option(
                        "--group-add",
                        format!(
                            "no group {g:?} in the image's /etc/group (give a numeric gid instead)"
                        ),
                    )
                })?,
        });
    }
    // Each once, in the order found.
    let mut seen = std::collections::HashSet::new();
    additional_gids.retain(|g| seen.insert(*g));
    Ok(User {
        uid,
        gid,
        additional_gids,
        home: home
            .filter(|h| h.starts_with('/'))
            .unwrap_or("/")
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\napp:x:1000:1000::/home/app:/bin/sh\n# comment\nbroken line\n";
    const GROUP: &str =
        "root:x:0:\nwheel:x:10:app,other\naudio:x:29:app\napp:x:1000:\nnogroup:x:65534:\n";

    #[test]
    fn names_ids_and_groups() {
        let r = |s| resolve(s, Some(PASSWD), Some(GROUP), &[]);
        let root = r("").unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        assert_eq!(root.additional_gids, [0]);
        assert_eq!(resolve("", None, None, &[]).unwrap(), User::default());
        let app = r("app").unwrap();
        assert_eq!(
            (app.uid, app.gid, app.home.as_str()),
            (1000, 1000, "/home/app")
        );
        // The primary group first (CVE-2022-36109), then the memberships.
        assert_eq!(app.additional_gids, [1000, 10, 29]);
        assert_eq!(r("1000").unwrap(), app);
        let w = r("app:wheel").unwrap();
        assert_eq!((w.gid, w.additional_gids.as_slice()), (10, &[10, 29][..]));
        assert_eq!(r("app:4242").unwrap().gid, 4242);
        // A uid the image does not know: allowed, group 0, home /.
        let u = r("4321").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4321, 0, "/"));
        assert!(r("ghost")
            .unwrap_err()
            .to_string()
            .contains("no user \"ghost\""));
        assert!(r("app:ghosts").is_err());
        assert!(r("4294967295").is_err(), "-1 as a uid");
        // No /etc/passwd at all: numeric ids still work.
        let n = resolve("5:6", None, None, &[]).unwrap();
        assert_eq!((n.gid, n.additional_gids.as_slice()), (6, &[6][..]));
    }

    #[test]
    fn group_add_takes_names_and_numbers() {
        let add = |u, g: &[&str]| {
            let g: Vec<String> = g.iter().map(|s| s.to_string()).collect();
            resolve(u, Some(PASSWD), Some(GROUP), &g)
        };
        assert_eq!(
            add("app", &["audio", "4242", "wheel", "nogroup"])
                .unwrap()
                .additional_gids,
            [1000, 10, 29, 4242, 65534]
        );
        assert_eq!(add("", &["app"]).unwrap().additional_gids, [0, 1000]);
        let e = add("", &["ghosts"]).unwrap_err().to_string();
        assert!(e.contains("--group-add") && e.contains("ghosts"), "{e}");
        assert!(add("", &["4294967295"]).is_err());
    }

    #[test]
    fn passwd_is_read_inside_the_root_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        // /etc/passwd is an absolute symlink: resolved inside the root,
        // where nothing is, never to the host's file.
        let host = tmp.path().join("host-passwd");
        std::fs::write(&host, "evil:x:0:0::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(&host, root.join("etc/passwd")).unwrap();
        let fd = sfs::open(&root, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        use std::os::fd::AsFd;
        assert!(resolve_in(fd.as_fd(), "evil", &[]).is_err());
        // A huge file is refused.
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        let f = std::fs::File::create(root.join("etc/passwd")).unwrap();
        f.set_len(MAX_DB + 10).unwrap();
        assert!(resolve_in(fd.as_fd(), "root", &[]).is_err());
    }

    #[test]
    fn a_fifo_or_device_as_passwd_is_refused_without_waiting() {
        use std::os::fd::AsFd;
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        berth_sys::fs::mkfifo(&t.path().join("etc/passwd"), 0o644).unwrap();
        // A symlink in the image to a fifo elsewhere in it: followed in
        // the root, then refused by type.
        berth_sys::fs::mkfifo(&t.path().join("fifo"), 0o644).unwrap();
        std::os::unix::fs::symlink("../fifo", t.path().join("etc/group")).unwrap();
        let fd = berth_sys::fs::open(t.path(), libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        // Opening a fifo for reading would block here for good.
        let (tx, rx) = std::sync::mpsc::channel();
        let raw = fd.try_clone().unwrap();
        std::thread::spawn(move || {
            let r = (
                read_db(raw.as_fd(), "/etc/passwd").map(|_| ()),
                read_db(raw.as_fd(), "/etc/group").map(|_| ()),
            );
            let _ = tx.send(format!("{r:?}"));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("reading a fifo /etc/passwd blocked");
        assert_eq!(
            got.matches("a fifo where a regular file").count(),
            2,
            "{got}"
        );
        let err = resolve_in(fd.as_fd(), "app", &[]).unwrap_err().to_string();
        assert!(err.contains("/etc/passwd") && err.contains("fifo"), "{err}");
    }
}
