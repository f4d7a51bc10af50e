//! The engine's side of `--userns` ([`crate::userns`] holds the modes and
//! the maps' arithmetic): the subordinate id files as this host has them,
//! the maps a container gets at create, and a volume's copy-up for a
//! container with a user namespace.
//!
//! The subordinate id files are /etc/subuid and /etc/subgid; the
//! environment variables [`SUBUID_ENV`] and [`SUBGID_ENV`] name others
//! (for tests, or a host that keeps berth's ranges apart).

use crate::error::{option, Error, Result};
use crate::userns::{compute, parse_subids, read_subid_file, Host, Userns, UsernsLock, UsernsMode};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// Names the file read instead of /etc/subuid.
pub const SUBUID_ENV: &str = "BERTH_SUBUID_FILE";
/// Names the file read instead of /etc/subgid.
pub const SUBGID_ENV: &str = "BERTH_SUBGID_FILE";

/// The host as [`Host::read`] sees it, with the subordinate id files the
/// environment names instead of /etc's.
pub fn host(in_use: Vec<Userns>) -> Result<Host> {
    let mut h = Host::read(in_use)?;
    for (var, list) in [(SUBUID_ENV, &mut h.subuid), (SUBGID_ENV, &mut h.subgid)] {
        if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            let p = Path::new(&p);
            let text = read_subid_file(p, &format!("{} ({var})", p.display()))?;
            *list = parse_subids(&text);
        }
    }
    Ok(h)
}

/// The maps `mode` comes to on this host, none of `in_use` taken by an
/// `auto` range (None: no user namespace), under the engine's user
/// namespace lock (`held`, see [`compute`]). A kernel without idmapped
/// mounts, which the container's root needs, is an error here, at create.
pub fn pick(mode: &UsernsMode, in_use: Vec<Userns>, held: &UsernsLock) -> Result<Option<Userns>> {
    if *mode == UsernsMode::Host {
        return Ok(None);
    }
    if !berth_sys::mount::has_mount_setattr() {
        return Err(option(
            "--userns",
            "a user namespace needs idmapped mounts for the container's root (mount_setattr, Linux 5.12 or later), and this kernel has none: use --userns host",
        ));
    }
    compute(mode, &host(in_use)?, held).map_err(|e| match e {
        // The files read, named as the user gave them.
        Error::Option { option, mut msg } => {
            for (var, file) in [(SUBUID_ENV, "/etc/subuid"), (SUBGID_ENV, "/etc/subgid")] {
                if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
                    msg = msg.replace(file, &format!("{} ({var})", Path::new(&p).display()));
                }
            }
            Error::Option { option, msg }
        }
        e => e,
    })
}

/// Docker's volume copy-up ([`crate::files::copy_up`]) for a container
/// with the user namespace `u`, whose root shows the image's files with
/// the host ids of the container's: each copied entry is given back the
/// container's own id (host id `H` of the range that maps container id `C`
/// is `C` again), as the volume's idmapped mount in the container shows it,
/// before the copy is put in place ([`crate::files::copy_up_with`]: an
/// error or a kill leaves the volume empty, to be copied again, or the
/// copy complete with its final ids). (Kept as copied, the volume's mount
/// would map them a second time, past the range.) Writing the copy through
/// an idmapped mount of the volume instead is refused by the kernel: the
/// engine's own ids are not in the container's maps. Only a volume empty
/// before the copy is touched.
pub fn copy_up(rootfs: &Path, dest: &str, volume_data: &Path, u: &Userns) -> Result<()> {
    let fix = |fd: BorrowedFd<'_>| {
        let st = berth_sys::fs::fstat(fd)?;
        unshift(fd, &st, u, 0).map_err(|e| {
            std::io::Error::new(e.kind(), format!("give the copy the container's ids: {e}"))
        })
    };
    crate::files::copy_up_with(rootfs, dest, volume_data, Some(&fix))
}

/// The container id that host id `id` is in `map` (as is if none).
fn container_id(map: &[crate::userns::IdMap], id: u32) -> u32 {
    map.iter()
        .find(|r| id >= r.host_id && u64::from(id) < u64::from(r.host_id) + u64::from(r.size))
        .map_or(id, |r| r.container_id + (id - r.host_id))
}

/// Gives `fd` (stat `st`) and, for a directory, everything under it the
/// container ids of its host ids. Entries are opened one name at a time,
/// never through a link ([`berth_sys::fs::open_entry`]); the modes are set
/// again (a chown clears set-id bits).
fn unshift(fd: BorrowedFd<'_>, st: &libc::stat, u: &Userns, depth: u32) -> std::io::Result<()> {
    const MAX_DEPTH: u32 = 256;
    let (uid, gid) = (
        container_id(&u.uids, st.st_uid),
        container_id(&u.gids, st.st_gid),
    );
    if (uid, gid) != (st.st_uid, st.st_gid) {
        berth_sys::fs::fchown_fd(fd, uid, gid)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            let _ = berth_sys::fs::fchmod_fd(fd, st.st_mode & 0o7777);
        }
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Ok(());
    }
    if depth > MAX_DEPTH {
        return Err(std::io::Error::other(format!(
            "more than {MAX_DEPTH} directories deep"
        )));
    }
    for n in berth_sys::fs::read_dir_fd(fd)? {
        let (child, cst) = berth_sys::fs::open_entry(fd, Path::new(&n))?;
        unshift(child.as_fd(), &cst, u, depth + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::userns::IdMap;
    use std::os::unix::fs::MetadataExt;

    /// Review M3: the copy-up's entries have the container's ids once in
    /// place (the volume's directory too). Needs root (chown).
    #[test]
    fn copy_up_gives_the_copy_the_container_ids() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("data/sub")).unwrap();
        std::fs::write(root.join("data/sub/f"), "f").unwrap();
        for (p, id) in [
            ("data", 100000),
            ("data/sub", 100005),
            ("data/sub/f", 100007),
        ] {
            std::os::unix::fs::chown(root.join(p), Some(id), Some(id + 1))
                .expect("chown (the test needs root)");
        }
        let vol = t.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        let map = vec![IdMap {
            container_id: 0,
            host_id: 100000,
            size: 65536,
        }];
        let u = Userns {
            uids: map.clone(),
            gids: map,
        };
        copy_up(&root, "/data", &vol, &u).unwrap();
        let ids = |p: &Path| {
            let m = std::fs::symlink_metadata(p).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(ids(&vol), (0, 1));
        assert_eq!(ids(&vol.join("sub")), (5, 6));
        assert_eq!(ids(&vol.join("sub/f")), (7, 8));
        assert_eq!(std::fs::read_dir(&vol).unwrap().count(), 1);
    }
}
