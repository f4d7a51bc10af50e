//! User namespaces for `berth run --userns` (pure but for reading the
//! subordinate id files): the modes, Docker's and Podman's flag syntax for
//! them, the uid and gid maps they come to, and their checks.
//!
//! - `host` (the default): no user namespace; container root is host root.
//! - `auto[:size=N]`: container ids `0..N` (65536 by default) map to a
//!   range of subordinate ids no other container uses, from the
//!   `containers` entries of /etc/subuid and /etc/subgid when root runs
//!   berth (as Podman does), else from the user's own entries.
//! - `keep-id[:uid=U,gid=G]` (not for root): the user's own uid and gid
//!   are `U` and `G` in the container (their own ids by default); the
//!   container's other ids, root first, map to the user's subordinate ids.
//! - `--uidmap C:H:N` / `--gidmap C:H:N` (repeatable; a uid map alone is
//!   the gid map too, as in Podman): the maps as given.
//!
//! The container's root filesystem is then an overlay of idmapped image
//! layers ([`crate::rootfs::mount_idmapped`]): nothing is chowned.

use crate::error::{Error, Result};
use berth_sys::userns::{check_map, IdRange};
use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Container ids in an `auto` namespace unless `size=` says otherwise
/// (Podman's and Docker's usual 65536: every 16-bit id).
pub const AUTO_SIZE: u32 = 65536;

/// The subordinate id entry root's containers take, as Podman's.
pub const ROOT_SUBID_OWNER: &str = "containers";

/// One range of a uid or gid map, named as in OCI's `linux.uidMappings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

impl IdMap {
    fn range(&self) -> IdRange {
        IdRange {
            inner: self.container_id,
            outer: self.host_id,
            size: self.size,
        }
    }
}

/// The kernel's view of a map, for the system calls.
pub fn ranges(map: &[IdMap]) -> Vec<IdRange> {
    map.iter().map(IdMap::range).collect()
}

/// How a container's user namespace is chosen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum UsernsMode {
    /// No user namespace.
    #[default]
    Host,
    /// A free range of subordinate ids, `size` of them.
    Auto { size: Option<u32> },
    /// The (non-root) user's ids kept, as `uid`/`gid` inside.
    KeepId { uid: Option<u32>, gid: Option<u32> },
    /// Maps given with `--uidmap`/`--gidmap`.
    Maps { uids: Vec<IdMap>, gids: Vec<IdMap> },
}

/// A container's user namespace: its maps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Userns {
    pub uids: Vec<IdMap>,
    pub gids: Vec<IdMap>,
}

impl Userns {
    /// The host uid and gid of container root (`None`: root is unmapped).
    pub fn root(&self) -> Option<(u32, u32)> {
        let host = |m: &[IdMap]| m.iter().find(|r| r.container_id == 0).map(|r| r.host_id);
        Some((host(&self.uids)?, host(&self.gids)?))
    }

    /// The maps as the OCI config's `linux.uidMappings` and
    /// `linux.gidMappings`.
    pub fn oci(&self) -> Result<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)> {
        let conv = |m: &[IdMap]| {
            m.iter()
                .map(|r| {
                    LinuxIdMappingBuilder::default()
                        .container_id(r.container_id)
                        .host_id(r.host_id)
                        .size(r.size)
                        .build()
                        .map_err(|e| Error::Runtime(format!("an OCI id mapping: {e}")))
                })
                .collect::<Result<Vec<_>>>()
        };
        Ok((conv(&self.uids)?, conv(&self.gids)?))
    }

    /// The kernel's checks, before anything is made: see
    /// [`berth_sys::userns::check_map`]. The error names where the maps
    /// came from (`from`), for the user to fix that.
    pub fn check(&self, from: MapsFrom<'_>) -> Result<()> {
        for (flag, file, m) in [
            ("--uidmap", "/etc/subuid", &self.uids),
            ("--gidmap", "/etc/subgid", &self.gids),
        ] {
            check_map(&ranges(m)).map_err(|msg| match from {
                MapsFrom::Flags => opt(flag, msg),
                MapsFrom::Subids { mode, owner } => opt(
                    "--userns",
                    format!("{mode}: the map made from the entries for {owner:?} in {file} is one the kernel refuses: {msg}; correct those entries"),
                ),
            })?;
        }
        Ok(())
    }
}

/// Where a user namespace's maps came from, as its errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapsFrom<'a> {
    /// `--uidmap`/`--gidmap`.
    Flags,
    /// `--userns` `mode` (auto, keep-id), from the subordinate id entries
    /// of `owner` in /etc/subuid and /etc/subgid.
    Subids { mode: &'a str, owner: &'a str },
}

fn opt(option: &str, msg: impl Into<String>) -> Error {
    Error::Option {
        option: option.into(),
        msg: msg.into(),
    }
}

fn number(option: &str, what: &str, s: &str) -> Result<u32> {
    s.trim().parse().map_err(|_| {
        opt(
            option,
            format!("{what} {s:?} is not a number from 0 to 4294967295"),
        )
    })
}

/// `--userns VALUE` with the `--uidmap`/`--gidmap` values given.
pub fn parse(userns: Option<&str>, uidmap: &[String], gidmap: &[String]) -> Result<UsernsMode> {
    if !uidmap.is_empty() || !gidmap.is_empty() {
        if userns.is_some_and(|u| !u.is_empty()) {
            return Err(opt(
                "--userns",
                "cannot be given with --uidmap or --gidmap, which choose the maps themselves",
            ));
        }
        if uidmap.is_empty() {
            return Err(opt("--gidmap", "needs --uidmap too"));
        }
        let uids = uidmap
            .iter()
            .map(|s| parse_map("--uidmap", s))
            .collect::<Result<Vec<_>>>()?;
        let gids = if gidmap.is_empty() {
            uids.clone()
        } else {
            gidmap
                .iter()
                .map(|s| parse_map("--gidmap", s))
                .collect::<Result<Vec<_>>>()?
        };
        let u = Userns { uids, gids };
        u.check(MapsFrom::Flags)?;
        return Ok(UsernsMode::Maps {
            uids: u.uids,
            gids: u.gids,
        });
    }
    let Some(v) = userns.filter(|v| !v.is_empty()) else {
        return Ok(UsernsMode::Host);
    };
    let (mode, args) = v.split_once(':').unwrap_or((v, ""));
    let args = || {
        args.split(',').filter(|a| !a.is_empty()).map(|a| {
            a.split_once('=')
                .ok_or_else(|| opt("--userns", format!("{mode} option {a:?} is not KEY=VALUE")))
        })
    };
    match mode {
        "host" if v == "host" => Ok(UsernsMode::Host),
        "auto" => {
            let mut size = None;
            for a in args() {
                match a? {
                    ("size", n) => {
                        let n = number("--userns", "auto size", n)?;
                        if n == 0 {
                            return Err(opt("--userns", "auto size must be greater than zero"));
                        }
                        size = Some(n);
                    }
                    (k, _) => {
                        return Err(opt(
                            "--userns",
                            format!("auto takes size=N, not {k:?}"),
                        ))
                    }
                }
            }
            Ok(UsernsMode::Auto { size })
        }
        "keep-id" => {
            let (mut uid, mut gid) = (None, None);
            for a in args() {
                match a? {
                    ("uid", n) => uid = Some(number("--userns", "keep-id uid", n)?),
                    ("gid", n) => gid = Some(number("--userns", "keep-id gid", n)?),
                    (k, _) => {
                        return Err(opt(
                            "--userns",
                            format!("keep-id takes uid=N and gid=N, not {k:?}"),
                        ))
                    }
                }
            }
            Ok(UsernsMode::KeepId { uid, gid })
        }
        _ => Err(opt(
            "--userns",
            format!("{v:?} is not a mode berth knows: host, auto[:size=N], keep-id[:uid=N,gid=N] (or --uidmap/--gidmap)"),
        )),
    }
}

/// `CONTAINER:HOST:SIZE`, as Docker's and Podman's `--uidmap`.
pub fn parse_map(option: &str, s: &str) -> Result<IdMap> {
    let parts: Vec<&str> = s.split(':').collect();
    let [c, h, n] = parts.as_slice() else {
        return Err(opt(
            option,
            format!("{s:?} is not CONTAINER_ID:HOST_ID:SIZE (e.g. 0:100000:65536)"),
        ));
    };
    Ok(IdMap {
        container_id: number(option, "container id", c)?,
        host_id: number(option, "host id", h)?,
        size: number(option, "size", n)?,
    })
}

/// One line of /etc/subuid or /etc/subgid: `owner:start:count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubIds {
    pub owner: String,
    pub start: u32,
    pub count: u32,
}

/// The text of the subordinate id file `path` (`what` names it in
/// errors), refused unless it is a regular file owned by root and writable
/// by no one else: its ranges decide which host ids a container's root is.
pub fn read_subid_file(path: &Path, what: &str) -> Result<String> {
    use std::io::Read;
    use std::os::fd::AsFd;
    let fd = berth_sys::fs::open(path, libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0)
        .map_err(crate::error::io(format!(
            "open the subordinate id file {what}"
        )))?;
    let st = berth_sys::fs::fstat(fd.as_fd()).map_err(crate::error::io(format!(
        "stat the subordinate id file {what}"
    )))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_uid != 0 || st.st_mode & 0o022 != 0 {
        return Err(opt(
            "--userns",
            format!(
                "the subordinate id file {what} is not a regular file owned by root and writable by root only (owner {}, mode {:o}): refusing its ranges; fix its owner and mode (chown root:root, chmod go-w)",
                st.st_uid,
                st.st_mode & 0o7777
            ),
        ));
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut text)
        .map_err(crate::error::io(format!(
            "read the subordinate id file {what}"
        )))?;
    Ok(text)
}

/// The entries of a subuid/subgid file. Lines that are not
/// `owner:start:count` (comments, blanks, garbage) are skipped, as shadow's
/// tools skip them.
pub fn parse_subids(text: &str) -> Vec<SubIds> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let mut f = l.split(':');
            let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
            if f.next().is_some() || owner.is_empty() {
                return None;
            }
            let (start, count) = (start.parse().ok()?, count.parse().ok()?);
            // A range past the last id the kernel maps is unusable.
            (count > 0 && u64::from(start) + u64::from(count) <= u64::from(u32::MAX)).then(|| {
                SubIds {
                    owner: owner.to_string(),
                    start,
                    count,
                }
            })
        })
        .collect()
}

/// What computing a container's maps needs to know of the host.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// The uid and gid running berth.
    pub uid: u32,
    pub gid: u32,
    /// Its user name, if it has one.
    pub user: Option<String>,
    /// /etc/subuid and /etc/subgid, parsed.
    pub subuid: Vec<SubIds>,
    pub subgid: Vec<SubIds>,
    /// The user namespaces of the other containers (for `auto`).
    pub in_use: Vec<Userns>,
}

impl Host {
    /// The running user's view of the host: its ids and name, and the
    /// subordinate id files (missing ones count as empty).
    pub fn read(in_use: Vec<Userns>) -> Result<Host> {
        let read = |p: &str| match read_subid_file(Path::new(p), p) {
            Ok(t) => Ok(parse_subids(&t)),
            Err(Error::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        };
        // SAFETY: getuid and getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let user = std::fs::read_to_string("/etc/passwd").ok().and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        });
        Ok(Host {
            uid,
            gid,
            user,
            subuid: read("/etc/subuid")?,
            subgid: read("/etc/subgid")?,
            in_use,
        })
    }

    /// The subordinate ranges of the owner the mode draws from: root's
    /// containers take `containers`'; a user, its name's or its uid's.
    fn owner(&self) -> String {
        if self.uid == 0 {
            ROOT_SUBID_OWNER.to_string()
        } else {
            self.user.clone().unwrap_or_else(|| self.uid.to_string())
        }
    }

    fn subids<'a>(&self, list: &'a [SubIds]) -> Vec<&'a SubIds> {
        let (owner, uid) = (self.owner(), self.uid.to_string());
        list.iter()
            .filter(|s| s.owner == owner || (self.uid != 0 && s.owner == uid))
            .collect()
    }
}

/// The engine-wide lock that `auto` ranges are chosen under
/// ([`crate::containers::Engine::userns_lock`]): an exclusive flock,
/// released when dropped (or when the process dies).
pub struct UsernsLock(#[allow(dead_code)] std::os::fd::OwnedFd);

impl UsernsLock {
    /// Takes the lock on `file` (made if missing), waiting for it.
    pub fn acquire(file: &Path) -> Result<UsernsLock> {
        use std::os::fd::AsFd;
        let fd = berth_sys::fs::open(file, libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC, 0o600)
            .map_err(crate::error::io(format!(
            "open the user namespace lock {}",
            file.display()
        )))?;
        berth_sys::fs::flock(fd.as_fd(), true, false).map_err(crate::error::io(format!(
            "lock {} (to choose a free range of subordinate ids)",
            file.display()
        )))?;
        Ok(UsernsLock(fd))
    }
}

impl crate::containers::Engine {
    /// The lock for choosing a container's user namespace: held from
    /// reading the other containers' maps (for [`Host::read`]) through
    /// [`compute`] until the new container's record, with its maps, is
    /// stored, so that two `create`s with `--userns auto` cannot both
    /// find the same range free.
    pub fn userns_lock(&self) -> Result<UsernsLock> {
        UsernsLock::acquire(&self.paths.run_root.join("locks").join("userns"))
    }
}

/// The container's user namespace for `mode` on `host` (`None`: the
/// host's). Errors say what to change: the flag, or the subordinate id
/// files.
///
/// `_held`: the caller holds the engine's user namespace lock, taken
/// before it read `host.in_use` and kept until the container's record is
/// stored (see [`crate::containers::Engine::userns_lock`]); `auto` picks a
/// range free of `host.in_use`, which is only true under it.
pub fn compute(mode: &UsernsMode, host: &Host, _held: &UsernsLock) -> Result<Option<Userns>> {
    let owner = host.owner();
    let (u, from) = match mode {
        UsernsMode::Host => return Ok(None),
        UsernsMode::Maps { uids, gids } => {
            let u = Userns {
                uids: uids.clone(),
                gids: gids.clone(),
            };
            if host.uid != 0 {
                within_subids(&u, host)?;
            }
            (u, MapsFrom::Flags)
        }
        UsernsMode::Auto { size } => {
            let size = size.unwrap_or(AUTO_SIZE);
            let pick = |file: &str, list: &[SubIds], used: &dyn Fn(&Userns) -> &[IdMap]| {
                // Host id 0 is the host's root: never a container's.
                if let Some(s) = host
                    .subids(list)
                    .iter()
                    .find(|s| s.start == 0 && s.count > 0)
                {
                    return Err(opt(
                        "--userns",
                        format!("auto: {file} gives {:?} a range that starts at host id 0 (the host's root; line {}:0:{}), which berth never maps into a container: start it above 0", s.owner, s.owner, s.count),
                    ));
                }
                let taken: Vec<IdMap> = host.in_use.iter().flat_map(|u| used(u).to_vec()).collect();
                free_range(&host.subids(list), &taken, size).ok_or_else(|| {
                    auto_error(file, &host.owner(), size, host.subids(list).is_empty())
                })
            };
            let uid = pick("/etc/subuid", &host.subuid, &|u| &u.uids)?;
            let gid = pick("/etc/subgid", &host.subgid, &|u| &u.gids)?;
            let u = Userns {
                uids: vec![IdMap {
                    container_id: 0,
                    host_id: uid,
                    size,
                }],
                gids: vec![IdMap {
                    container_id: 0,
                    host_id: gid,
                    size,
                }],
            };
            let from = MapsFrom::Subids {
                mode: "auto",
                owner: &owner,
            };
            (u, from)
        }
        UsernsMode::KeepId { uid, gid } => {
            if host.uid == 0 {
                return Err(opt(
                    "--userns",
                    "keep-id keeps the ids of the user running berth, and that is root: use --userns auto, or --uidmap/--gidmap",
                ));
            }
            let u = Userns {
                uids: keep_id(
                    host.uid,
                    uid.unwrap_or(host.uid),
                    &host.subids(&host.subuid),
                )
                .map_err(|m| opt("--userns", format!("keep-id: /etc/subuid: {owner}: {m}")))?,
                gids: keep_id(
                    host.gid,
                    gid.unwrap_or(host.gid),
                    &host.subids(&host.subgid),
                )
                .map_err(|m| opt("--userns", format!("keep-id: /etc/subgid: {owner}: {m}")))?,
            };
            let from = MapsFrom::Subids {
                mode: "keep-id",
                owner: &owner,
            };
            (u, from)
        }
    };
    u.check(from)?;
    Ok(Some(u))
}

fn auto_error(file: &str, owner: &str, size: u32, none: bool) -> Error {
    if none {
        opt(
            "--userns",
            format!("auto needs subordinate ids for {owner:?} in {file} (e.g. a line {owner}:2147483647:2147483648); add them, or use --uidmap/--gidmap"),
        )
    } else {
        opt(
            "--userns",
            format!("auto: no {size} ids of {owner:?} in {file} are free of other containers' ranges; add a range there, remove containers, or ask for fewer (auto:size=N)"),
        )
    }
}

/// The lowest start of `size` ids inside one of `subids` that overlaps no
/// host range of `taken`, never including host id 0 (the caller refuses a
/// subordinate range holding it). `taken` is the ranges of this berth
/// root's containers only: other engines' (or other berth roots') users of
/// the same subordinate ids are not seen, so keep their ranges apart in the
/// files (or with BERTH_SUBUID_FILE/BERTH_SUBGID_FILE).
fn free_range(subids: &[&SubIds], taken: &[IdMap], size: u32) -> Option<u32> {
    let end = |s: u32, n: u32| u64::from(s) + u64::from(n);
    for s in subids {
        if s.count < size {
            continue;
        }
        let mut start = s.start.max(1);
        loop {
            if end(start, size) > end(s.start, s.count) {
                break;
            }
            // The taken range this candidate runs into, if any: jump past it.
            match taken
                .iter()
                .filter(|t| {
                    end(t.host_id, t.size) > u64::from(start)
                        && end(start, size) > u64::from(t.host_id)
                })
                .map(|t| end(t.host_id, t.size))
                .max()
            {
                None => return Some(start),
                Some(past) => match u32::try_from(past) {
                    Ok(p) => start = p,
                    Err(_) => break,
                },
            }
        }
    }
    None
}

/// keep-id's map for one kind of id: `own` (the user's host id) is
/// `inside` in the container; the container's other ids, from 0 up and
/// skipping `inside`, are the subordinate ranges in order.
fn keep_id(own: u32, inside: u32, subids: &[&SubIds]) -> std::result::Result<Vec<IdMap>, String> {
    let total: u64 = subids.iter().map(|s| u64::from(s.count)).sum();
    if total == 0 {
        return Err("no subordinate ids: the user needs a range there (usermod --add-subuids/--add-subgids)".into());
    }
    if u64::from(inside) > total {
        return Err(format!(
            "{inside} inside needs at least {inside} subordinate ids below it, and there are {total}"
        ));
    }
    let mut map = vec![IdMap {
        container_id: inside,
        host_id: own,
        size: 1,
    }];
    // Container ids handed out so far, below and then above `inside`.
    let mut next: u64 = 0;
    for s in subids {
        let (mut host, mut left) = (s.start, s.count);
        while left > 0 {
            // A run stops at `inside` (kept for the user's own id) and at
            // the last id the kernel maps.
            let stop = if next < u64::from(inside) {
                u64::from(inside)
            } else {
                u64::from(u32::MAX)
            };
            if next == u64::from(inside) {
                next += 1;
                continue;
            }
            let n = (stop - next).min(u64::from(left));
            if n == 0 {
                break;
            }
            let n = n as u32;
            map.push(IdMap {
                container_id: next as u32,
                host_id: host,
                size: n,
            });
            next += u64::from(n);
            host += n;
            left -= n;
        }
    }
    map.sort_by_key(|m| m.container_id);
    Ok(map)
}

/// A user's own maps must stay within its own ids and subordinate ranges:
/// newuidmap would refuse the rest later, less clearly.
fn within_subids(u: &Userns, host: &Host) -> Result<()> {
    for (option, file, maps, own, list) in [
        ("--uidmap", "/etc/subuid", &u.uids, host.uid, &host.subuid),
        ("--gidmap", "/etc/subgid", &u.gids, host.gid, &host.subgid),
    ] {
        let subids = host.subids(list);
        for (i, m) in maps.iter().enumerate() {
            let end = u64::from(m.host_id) + u64::from(m.size);
            let own_only = m.host_id == own && m.size == 1;
            let inside = subids
                .iter()
                .any(|s| m.host_id >= s.start && end <= u64::from(s.start) + u64::from(s.count));
            if !own_only && !inside {
                return Err(opt(
                    option,
                    format!(
                        "[{i}]: host ids {}..{end} are neither this user's own nor delegated to {:?} in {file}",
                        m.host_id,
                        host.owner()
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(c: u32, h: u32, n: u32) -> IdMap {
        IdMap {
            container_id: c,
            host_id: h,
            size: n,
        }
    }

    fn msg(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(v) => panic!("accepted: {v:?}"),
        }
    }

    /// The lock [`compute`] wants held, on a file of its own (no test
    /// waits for another) in a directory that goes with it.
    struct Held {
        lock: UsernsLock,
        _dir: tempfile::TempDir,
    }

    impl std::ops::Deref for Held {
        type Target = UsernsLock;
        fn deref(&self) -> &UsernsLock {
            &self.lock
        }
    }

    fn held() -> Held {
        let d = tempfile::tempdir().unwrap();
        let lock = UsernsLock::acquire(&d.path().join("lock")).unwrap();
        Held { lock, _dir: d }
    }

    fn root_host(subids: &str) -> Host {
        Host {
            uid: 0,
            gid: 0,
            user: Some("root".into()),
            subuid: parse_subids(subids),
            subgid: parse_subids(subids),
            in_use: Vec::new(),
        }
    }

    #[test]
    fn modes_parse() {
        assert_eq!(parse(None, &[], &[]).unwrap(), UsernsMode::Host);
        assert_eq!(parse(Some(""), &[], &[]).unwrap(), UsernsMode::Host);
        assert_eq!(parse(Some("host"), &[], &[]).unwrap(), UsernsMode::Host);
        assert_eq!(
            parse(Some("auto"), &[], &[]).unwrap(),
            UsernsMode::Auto { size: None }
        );
        assert_eq!(
            parse(Some("auto:size=1024"), &[], &[]).unwrap(),
            UsernsMode::Auto { size: Some(1024) }
        );
        assert_eq!(
            parse(Some("keep-id:uid=1000,gid=100"), &[], &[]).unwrap(),
            UsernsMode::KeepId {
                uid: Some(1000),
                gid: Some(100)
            }
        );
        assert_eq!(
            parse(Some("keep-id"), &[], &[]).unwrap(),
            UsernsMode::KeepId {
                uid: None,
                gid: None
            }
        );
    }

    #[test]
    fn bad_modes_say_what_is_accepted() {
        assert!(msg(parse(Some("private"), &[], &[])).contains("host, auto[:size=N], keep-id"));
        assert!(msg(parse(Some("host:x"), &[], &[])).contains("not a mode"));
        assert!(msg(parse(Some("auto:size=0"), &[], &[])).contains("greater than zero"));
        assert!(msg(parse(Some("auto:size=-1"), &[], &[])).contains("not a number"));
        assert!(msg(parse(Some("auto:uid=1"), &[], &[])).contains("auto takes size=N"));
        assert!(msg(parse(Some("keep-id:uid"), &[], &[])).contains("not KEY=VALUE"));
        assert!(msg(parse(Some("keep-id:size=1"), &[], &[])).contains("keep-id takes uid"));
    }

    #[test]
    fn uidmap_and_gidmap_flags() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse(None, &s(&["0:100000:65536"]), &[]).unwrap(),
            UsernsMode::Maps {
                uids: vec![m(0, 100000, 65536)],
                gids: vec![m(0, 100000, 65536)]
            },
            "a uid map alone is the gid map too"
        );
        assert_eq!(
            parse(None, &s(&["0:1000:1", "1:100000:999"]), &s(&["0:2000:10"])).unwrap(),
            UsernsMode::Maps {
                uids: vec![m(0, 1000, 1), m(1, 100000, 999)],
                gids: vec![m(0, 2000, 10)]
            }
        );
        let e = msg(parse(Some("auto"), &s(&["0:1:1"]), &[]));
        assert!(
            e.starts_with("--userns: cannot be given with --uidmap"),
            "{e}"
        );
        assert!(msg(parse(None, &[], &s(&["0:1:1"]))).contains("needs --uidmap too"));
        assert!(msg(parse(None, &s(&["0:1"]), &[])).contains("CONTAINER_ID:HOST_ID:SIZE"));
        assert!(msg(parse(None, &s(&["0:x:1"]), &[])).contains("host id \"x\""));
        // What the kernel would refuse: an empty range, overlaps, overflow.
        assert!(msg(parse(None, &s(&["0:1000:0"]), &[]))
            .contains("[0]: size must be greater than zero"));
        let e = msg(parse(None, &s(&["0:1000:10", "5:5000:10"]), &[]));
        assert_eq!(e, "--uidmap: [1]: its inside ids overlap those of [0]");
        let e = msg(parse(
            None,
            &s(&["0:1000:10"]),
            &s(&["0:1000:10", "10:1005:1"]),
        ));
        assert_eq!(e, "--gidmap: [1]: its outside ids overlap those of [0]");
        assert!(msg(parse(None, &s(&["0:4294967290:10"]), &[])).contains("past id 4294967294"));
    }

    #[test]
    fn subid_files_parse_and_skip_garbage() {
        let t = "# comment\ncontainers:2147483647:2147483648\n\nalice:100000:65536\nbad line\nbob:x:1\nzero:5:0\nhuge:4294967295:2\n1000:300000:10\n";
        assert_eq!(
            parse_subids(t),
            vec![
                SubIds {
                    owner: "containers".into(),
                    start: 2147483647,
                    count: 2147483648
                },
                SubIds {
                    owner: "alice".into(),
                    start: 100000,
                    count: 65536
                },
                SubIds {
                    owner: "1000".into(),
                    start: 300000,
                    count: 10
                },
            ]
        );
    }

    #[test]
    fn host_mode_has_no_user_namespace() {
        assert_eq!(
            compute(&UsernsMode::Host, &root_host(""), &held()).unwrap(),
            None
        );
    }

    #[test]
    fn auto_for_root_takes_a_free_range_of_containers() {
        let mut host = root_host("root:1:5\ncontainers:100000:200000\n");
        let auto = UsernsMode::Auto { size: None };
        let first = compute(&auto, &host, &held()).unwrap().unwrap();
        assert_eq!(first.uids, vec![m(0, 100000, 65536)]);
        assert_eq!(first.gids, vec![m(0, 100000, 65536)]);
        assert_eq!(first.root(), Some((100000, 100000)));
        host.in_use.push(first);
        let second = compute(&auto, &host, &held()).unwrap().unwrap();
        assert_eq!(second.uids, vec![m(0, 165536, 65536)]);
        host.in_use.push(second);
        // 68928 ids are left, split by a small range at 240000.
        host.in_use.push(Userns {
            uids: vec![m(0, 240000, 10)],
            gids: vec![m(0, 240000, 10)],
        });
        let e = msg(compute(&auto, &host, &held()));
        assert!(
            e.contains("no 65536 ids of \"containers\" in /etc/subuid are free"),
            "{e}"
        );
        let small = compute(&UsernsMode::Auto { size: Some(1000) }, &host, &held())
            .unwrap()
            .unwrap();
        assert_eq!(small.uids, vec![m(0, 231072, 1000)]);
        let big = UsernsMode::Auto { size: Some(59990) };
        assert_eq!(
            compute(&big, &host, &held()).unwrap().unwrap().uids,
            vec![m(0, 240010, 59990)]
        );
    }

    #[test]
    fn a_subid_file_writable_by_others_or_not_roots_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("subuid");
        std::fs::write(&p, "containers:100000:65536\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = read_subid_file(&p, "the test's subuid")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the subordinate id file the test's subuid is not a regular file owned by root and writable by root only"),
            "{e}"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        // SAFETY: getuid cannot fail.
        if unsafe { libc::getuid() } == 0 {
            assert_eq!(
                read_subid_file(&p, "subuid").unwrap(),
                "containers:100000:65536\n"
            );
            std::os::unix::fs::chown(&p, Some(1000), None).unwrap();
        }
        // Not root's (a user's file, or given away above).
        assert!(read_subid_file(&p, "subuid")
            .unwrap_err()
            .to_string()
            .contains("owner "));
        // Never through a symlink.
        let l = dir.path().join("link");
        std::os::unix::fs::symlink("/etc/passwd", &l).unwrap();
        assert!(read_subid_file(&l, "link").is_err());
        assert!(read_subid_file(Path::new("/etc/passwd"), "passwd").is_ok());
    }

    #[test]
    fn auto_refuses_a_subordinate_range_holding_host_id_0() {
        let e = msg(compute(
            &UsernsMode::Auto { size: None },
            &root_host("containers:0:200000\n"),
            &held(),
        ));
        assert!(
            e.contains("/etc/subuid gives \"containers\" a range that starts at host id 0"),
            "{e}"
        );
        // The search itself never starts a range at 0.
        let s = SubIds {
            owner: "containers".into(),
            start: 0,
            count: 10,
        };
        assert_eq!(free_range(&[&s], &[], 5), Some(1));
        assert_eq!(free_range(&[&s], &[], 10), None);
    }

    #[test]
    fn auto_without_subordinate_ids_says_how_to_add_them() {
        let e = msg(compute(
            &UsernsMode::Auto { size: None },
            &root_host("alice:1:100000"),
            &held(),
        ));
        assert!(
            e.contains("auto needs subordinate ids for \"containers\" in /etc/subuid"),
            "{e}"
        );
        // A user draws from its own entries (by name or uid), never root's.
        let mut user = root_host("containers:100000:65536\n1000:300000:65536\n");
        (user.uid, user.gid, user.user) = (1000, 1000, Some("alice".into()));
        let u = compute(&UsernsMode::Auto { size: None }, &user, &held())
            .unwrap()
            .unwrap();
        assert_eq!(u.uids, vec![m(0, 300000, 65536)]);
    }

    #[test]
    fn keep_id_keeps_the_users_ids_and_maps_the_rest_to_its_subordinate_ones() {
        let mut user = root_host("alice:100000:65536\n");
        (user.uid, user.gid, user.user) = (1000, 1000, Some("alice".into()));
        let u = compute(
            &UsernsMode::KeepId {
                uid: None,
                gid: None,
            },
            &user,
            &held(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            u.uids,
            vec![m(0, 100000, 1000), m(1000, 1000, 1), m(1001, 101000, 64536)]
        );
        assert_eq!(u.root(), Some((100000, 100000)));
        let u = compute(
            &UsernsMode::KeepId {
                uid: Some(0),
                gid: Some(5),
            },
            &user,
            &held(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(u.uids, vec![m(0, 1000, 1), m(1, 100000, 65536)]);
        assert_eq!(
            u.gids,
            vec![m(0, 100000, 5), m(5, 1000, 1), m(6, 100005, 65531)]
        );
        let e = msg(compute(
            &UsernsMode::KeepId {
                uid: None,
                gid: None,
            },
            &root_host("containers:1:100000"),
            &held(),
        ));
        assert!(e.contains("that is root"), "{e}");
        user.subuid.clear();
        let e = msg(compute(
            &UsernsMode::KeepId {
                uid: None,
                gid: None,
            },
            &user,
            &held(),
        ));
        assert!(e.contains("/etc/subuid: alice: no subordinate ids"), "{e}");
    }

    /// Two choosers of a range take turns: the second waits for the
    /// first's lock to go.
    #[test]
    fn the_userns_lock_is_held_by_one_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("userns");
        let first = UsernsLock::acquire(&file).unwrap();
        let got = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (f, g) = (file.clone(), got.clone());
        let t = std::thread::spawn(move || {
            let _second = UsernsLock::acquire(&f).unwrap();
            g.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            !got.load(std::sync::atomic::Ordering::SeqCst),
            "taken while held"
        );
        drop(first);
        t.join().unwrap();
        assert!(got.load(std::sync::atomic::Ordering::SeqCst));
    }

    /// A map the kernel would refuse names where it came from: the flag,
    /// or for keep-id and auto the subordinate id entries it was made from
    /// (never --uidmap, which was not given).
    #[test]
    fn a_refused_map_names_where_it_came_from() {
        let mut user = root_host("alice:100000:65536\nalice:100000:65536\n");
        (user.uid, user.gid, user.user) = (1000, 1000, Some("alice".into()));
        let keep = UsernsMode::KeepId {
            uid: None,
            gid: None,
        };
        let e = msg(compute(&keep, &user, &held()));
        assert!(
            e.starts_with("--userns: keep-id: the map made from the entries for \"alice\" in /etc/subuid is one the kernel refuses: [")
                && e.contains("outside ids overlap"),
            "{e}"
        );
        let maps = UsernsMode::Maps {
            uids: vec![m(0, 100000, 10), m(5, 200000, 10)],
            gids: vec![m(0, 100000, 10)],
        };
        let e = msg(compute(&maps, &root_host(""), &held()));
        assert!(
            e.starts_with("--uidmap: [1]: its inside ids overlap"),
            "{e}"
        );
    }

    #[test]
    fn a_users_explicit_maps_stay_within_its_ids() {
        let mut user = root_host("alice:100000:65536\n");
        (user.uid, user.gid, user.user) = (1000, 1000, Some("alice".into()));
        let ok = UsernsMode::Maps {
            uids: vec![m(0, 1000, 1), m(1, 100000, 65536)],
            gids: vec![m(0, 100000, 65536)],
        };
        assert!(compute(&ok, &user, &held()).is_ok());
        let bad = UsernsMode::Maps {
            uids: vec![m(0, 0, 1)],
            gids: vec![m(0, 100000, 65536)],
        };
        let e = msg(compute(&bad, &user, &held()));
        assert!(
            e.starts_with("--uidmap: [0]: host ids 0..1 are neither"),
            "{e}"
        );
        // Root may map anything the kernel takes.
        assert!(compute(&bad, &root_host(""), &held()).is_ok());
    }

    #[test]
    fn maps_serialise_as_oci_mappings() {
        let v = serde_json::to_value(m(0, 100000, 65536)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"containerID": 0, "hostID": 100000, "size": 65536})
        );
        let o: oci_spec::runtime::LinuxIdMapping = serde_json::from_value(v).unwrap();
        assert_eq!(o.host_id(), 100000);
        let u = Userns {
            uids: vec![m(0, 100000, 65536)],
            gids: vec![m(0, 200000, 10), m(10, 5, 1)],
        };
        let (uids, gids) = u.oci().unwrap();
        assert_eq!(uids, vec![o]);
        assert_eq!(
            serde_json::to_value(&gids).unwrap(),
            serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 10},
                               {"containerID": 10, "hostID": 5, "size": 1}])
        );
        let mode: UsernsMode =
            serde_json::from_value(serde_json::json!({"mode": "auto", "size": null})).unwrap();
        assert_eq!(mode, UsernsMode::Auto { size: None });
    }
}
