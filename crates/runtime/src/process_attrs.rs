//! Per-process attributes of the container's process: capabilities, user
//! and groups, rlimits, personality, I/O priority, scheduler, and finding
//! the program to exec. Each is a named step called by init in order.

use crate::error::{config, Context, Error, Result};
use berth_sys::process as sp;
use oci_spec::runtime::{
    Capabilities, IOPriorityClass, LinuxCapabilities, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, PosixRlimit, PosixRlimitType, Process, Scheduler,
};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Capability names by number, as in <linux/capability.h> (one table,
/// in berth-sys, shared with the engine).
pub const CAPS: &[&str] = &berth_sys::caps::NAMES;

/// The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CAPS.len() as u32 - 1)
}

/// A capability set as a bit mask. Capabilities newer than this kernel are
/// left out, as runc and crun do: a config written for a newer kernel still
/// runs, with the capabilities this kernel can give.
pub fn cap_mask(set: Option<&Capabilities>, last: u32) -> u64 {
    let mut mask = 0u64;
    for cap in set.into_iter().flatten() {
        let name = serde_json::to_value(cap).ok();
        let name = name.as_ref().and_then(|v| v.as_str()).unwrap_or_default();
        if let Some(n) = CAPS.iter().position(|c| *c == name) {
            if n as u32 <= last {
                mask |= 1 << n;
            } else {
                tracing::warn!("capability {name} is not known to this kernel; skipping it");
            }
        }
    }
    mask
}

/// The five sets of a process, as masks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CapMasks {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl CapMasks {
    pub fn from_spec(caps: Option<&LinuxCapabilities>) -> CapMasks {
        let last = last_cap();
        let Some(c) = caps else {
            return CapMasks::default();
        };
        CapMasks {
            bounding: cap_mask(c.bounding().as_ref(), last),
            effective: cap_mask(c.effective().as_ref(), last),
            permitted: cap_mask(c.permitted().as_ref(), last),
            inheritable: cap_mask(c.inheritable().as_ref(), last),
            ambient: cap_mask(c.ambient().as_ref(), last),
        }
    }
}

/// Drops every capability not in the bounding set. Needs CAP_SETPCAP, so it
/// runs before the user switch.
pub fn drop_bounding(bounding: u64) -> Result<()> {
    for cap in 0..=last_cap() {
        if bounding & (1 << cap) == 0 {
            sp::prctl(libc::PR_CAPBSET_DROP, u64::from(cap), 0, 0, 0).with_ctx(|| {
                format!(
                    "drop {} from the bounding set",
                    CAPS.get(cap as usize).unwrap_or(&"capability")
                )
            })?;
        }
    }
    Ok(())
}

/// Switches to the container's user and sets the other four capability
/// sets exactly as the spec gives them. Inheritable is never more than the
/// spec says (CVE-2022-29162); ambient is raised only for what it lists.
///
/// `keep` names capabilities to hold in the effective and permitted sets
/// on top of the spec's until the execve(2): CAP_SYS_ADMIN, so that the
/// seccomp filter of a process without no_new_privs can be loaded after
/// every step of the runtime's own (see `init::setup_and_exec`). execve
/// recomputes both sets from the bounding, inheritable and ambient sets
/// (which are exactly the spec's), so nothing held here reaches the program.
pub fn switch_user(
    process: &Process,
    caps: &CapMasks,
    setgroups_allowed: bool,
    keep: u64,
) -> Result<()> {
    let user = process.user();
    // Keep the permitted set across the uid change; we lower it next.
    sp::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0).ctx("set PR_SET_KEEPCAPS")?;
    let groups: Vec<u32> = user.additional_gids().clone().unwrap_or_default();
    if setgroups_allowed {
        sp::setgroups(&groups).ctx("set supplementary groups (process.user.additionalGids)")?;
    } else if !groups.is_empty() {
        return Err(config(
            "process.user.additionalGids",
            "cannot be set: setgroups is denied in this user namespace",
        ));
    }
    sp::setresgid(user.gid())
        .with_ctx(|| format!("set gid to {} (process.user.gid)", user.gid()))?;
    sp::setresuid(user.uid())
        .with_ctx(|| format!("set uid to {} (process.user.uid)", user.uid()))?;
    sp::capset(sp::CapSets {
        effective: caps.effective | keep,
        permitted: caps.permitted | keep,
        inheritable: caps.inheritable,
    })
    .ctx("set capabilities (process.capabilities)")?;
    sp::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0).ctx("clear PR_SET_KEEPCAPS")?;
    sp::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as u64,
        0,
        0,
        0,
    )
    .ctx("clear ambient capabilities")?;
    // Only what the spec itself has in permitted and inheritable: `keep`
    // is in our permitted set now, and the kernel would let it be raised.
    let ambient = caps.ambient & caps.permitted & caps.inheritable;
    for cap in 0..64u64 {
        if caps.ambient & (1 << cap) != 0 && ambient & (1 << cap) == 0 {
            tracing::debug!(
                "cannot raise ambient capability {}: not in the permitted and inheritable sets",
                CAPS.get(cap as usize).unwrap_or(&"?")
            );
            continue;
        }
        if ambient & (1 << cap) != 0 {
            // The kernel refuses ambient caps not in permitted and inheritable.
            // `runc spec` itself writes such configs (ambient without
            // inheritable), so this is skipped with a debug line, as runc
            // does, rather than warned about on every container.
            if let Err(e) = sp::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as u64,
                cap,
                0,
                0,
            ) {
                tracing::debug!(
                    "cannot raise ambient capability {}: {e}",
                    CAPS.get(cap as usize).unwrap_or(&"?")
                );
            }
        }
    }
    Ok(())
}

/// Node numbers of `linux.memoryPolicy.nodes` ("0-3,5") as a bit mask in
/// 64-bit words. Nodes are limited to 4096, far beyond any machine.
pub fn memory_policy_nodes(s: &str) -> std::result::Result<Vec<u64>, String> {
    let mut words: Vec<u64> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |t: &str| {
            t.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n < 4096)
                .ok_or_else(|| format!("{t:?} is not a node number (0-4095)"))
        };
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if a > b {
            return Err(format!("{part:?}: the range is backwards"));
        }
        for n in a..=b {
            let w = (n / 64) as usize;
            if words.len() <= w {
                words.resize(w + 1, 0);
            }
            words[w] |= 1 << (n % 64);
        }
    }
    Ok(words)
}

/// The `set_mempolicy(2)` mode word and node mask of `linux.memoryPolicy`,
/// checked as runc checks it.
pub fn memory_policy(
    mp: &oci_spec::runtime::LinuxMemoryPolicy,
) -> std::result::Result<(i32, Vec<u64>), String> {
    use oci_spec::runtime::{MemoryPolicyFlagType as F, MemoryPolicyModeType as M};
    let (mode, needs_nodes) = match mp.mode() {
        M::MpolDefault => (0, Some(false)),
        M::MpolPreferred => (1, None),
        M::MpolBind => (2, Some(true)),
        M::MpolInterleave => (3, Some(true)),
        M::MpolLocal => (4, Some(false)),
        M::MpolPreferredMany => (5, Some(true)),
        M::MpolWeightedInterleave => (6, Some(true)),
    };
    let nodes = memory_policy_nodes(mp.nodes().as_deref().unwrap_or_default())
        .map_err(|e| format!("nodes: {e}"))?;
    match needs_nodes {
        Some(true) if nodes.is_empty() => {
            return Err(format!("mode {} needs nodes", mp.mode()));
        }
        Some(false) if !nodes.is_empty() => {
            return Err(format!("mode {} takes no nodes", mp.mode()));
        }
        _ => {}
    }
    let mut flags = 0;
    for f in mp.flags().iter().flatten() {
        flags |= match f {
            F::MpolFNumaBalancing => 1 << 13,
            F::MpolFRelativeNodes => 1 << 14,
            F::MpolFStaticNodes => 1 << 15,
        };
    }
    if flags & (3 << 14) == 3 << 14 {
        return Err("MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other".into());
    }
    Ok((mode | flags, nodes))
}

/// Applies `linux.memoryPolicy` to the container's init (its children and
/// the program inherit it across fork and execve).
pub fn set_memory_policy(mp: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<()> {
    let (mode, nodes) = memory_policy(mp).map_err(|m| config("linux.memoryPolicy", m))?;
    sp::set_mempolicy(mode, &nodes).ctx("set linux.memoryPolicy (set_mempolicy)")
}

/// The bit of CAP_SYS_ADMIN in a capability mask.
pub const CAP_SYS_ADMIN: u64 = 1 << 21;

/// Reads the container's /etc/passwd (we are inside its root) without
/// following it into anything but a regular file: an image may make it a
/// fifo or a device to hang or confuse us. At most 4 MiB are read.
fn read_passwd() -> Option<String> {
    use std::io::Read;
    let fd = berth_sys::fs::open(
        Path::new("/etc/passwd"),
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
    )
    .ok()?;
    let st = berth_sys::fs::fstat(std::os::fd::AsFd::as_fd(&fd)).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(4 << 20)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The home directory of `uid` in a passwd(5) text; `/` when the user has
/// no entry or an empty one (runc's rule).
pub fn home_in_passwd(passwd: Option<&str>, uid: u32) -> String {
    passwd
        .into_iter()
        .flat_map(str::lines)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
        })
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

/// Adds `HOME` from the container's /etc/passwd when `env` has none, as
/// runc does (docker and ctr rely on it). Called inside the container's
/// root, before the user switch (the file may not be readable to the user).
pub fn add_home(env: &mut Vec<String>, uid: u32) {
    if env.iter().any(|e| e.starts_with("HOME=")) {
        return;
    }
    let passwd = read_passwd();
    env.push(format!("HOME={}", home_in_passwd(passwd.as_deref(), uid)));
}

/// Whether `st` is the null device (character device 1:3).
pub(crate) fn is_dev_null(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3)
}

/// Stdio that is /dev/null is replaced by the container's own /dev/null,
/// opened read-write (runc's reOpenDevNull): a caller's /dev/null is often
/// open read-only for stdin, and programs that write to fd 0 or reopen it
/// expect the usual device. Runs after pivot_root; the node is checked to
/// be the null device.
pub fn reopen_dev_null() -> Result<()> {
    let mut null = None;
    for fd in 0..3 {
        // SAFETY: fd 0-2 may or may not be open; fstat only reads.
        let Ok(st) = berth_sys::fs::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
        else {
            continue;
        };
        if !is_dev_null(&st) {
            continue;
        }
        if null.is_none() {
            let f = berth_sys::fs::open(Path::new("/dev/null"), libc::O_RDWR | libc::O_NOFOLLOW, 0)
                .ctx("open the container's /dev/null")?;
            let fst = berth_sys::fs::fstat(std::os::fd::AsFd::as_fd(&f))
                .ctx("stat the container's /dev/null")?;
            if !is_dev_null(&fst) {
                return Err(Error::Usage(
                    "/dev/null in the container is not the null device (1:3); refusing to give it as stdio".into(),
                ));
            }
            null = Some(f);
        }
        if let Some(n) = &null {
            berth_sys::fs::dup2(std::os::fd::AsRawFd::as_raw_fd(n), fd)
                .ctx("reopen stdio on the container's /dev/null")?;
        }
    }
    Ok(())
}

/// Gives the process's stdio to its user (runc's fixStdioPermissions), so
/// that a non-root process can reopen /dev/stdout or its terminal: the
/// owner becomes `uid`. Only what cannot be a host file is given: anonymous
/// pipes and sockets, and the terminal the runtime made in the container
/// (`own_tty`: then the stdio is that pty; a devpts mounted with gid=5
/// keeps its tty group, one owned by group 0 gets `gid`). A caller's
/// regular file, device or terminal stays the caller's: `berth exec -u
/// 1000 c sh < /root/file` must not give a host file to uid 1000. What we
/// may not change (an id unmapped in our user namespace, a read-only
/// filesystem) is left alone.
pub fn give_stdio(uid: u32, gid: u32, own_tty: bool) -> Result<()> {
    const PIPEFS_MAGIC: i64 = 0x5049_5045;
    const SOCKFS_MAGIC: i64 = 0x534F_434B;
    for fd in 0..3 {
        // SAFETY: fd 0-2 may or may not be open; fstat and fchown act on
        // the fd only.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let Ok(st) = berth_sys::fs::fstat(b) else {
            continue;
        };
        let fmt = st.st_mode & libc::S_IFMT;
        let ours = if own_tty {
            fmt == libc::S_IFCHR && !is_dev_null(&st)
        } else {
            matches!(fmt, libc::S_IFIFO | libc::S_IFSOCK)
                && berth_sys::fs::fs_magic(b).is_ok_and(|m| m == PIPEFS_MAGIC || m == SOCKFS_MAGIC)
        };
        if !ours {
            continue;
        }
        let new_gid = if own_tty && st.st_gid == 0 {
            gid
        } else {
            u32::MAX
        };
        if st.st_uid == uid && new_gid == u32::MAX {
            continue;
        }
        match berth_sys::fs::fchown_fd(b, uid, new_gid) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM) | Some(libc::EROFS) | Some(libc::EINVAL)
                ) => {}
            Err(e) => return Err(e).with_ctx(|| format!("give stdio fd {fd} to uid {uid}")),
        }
    }
    Ok(())
}

/// chdir to process.cwd before the user switch, while we still may enter
/// any directory (runc does the same); `Ok(true)` when that was refused and
/// must be tried again as the user (a directory only the user may enter).
pub fn cwd_before_user(cwd: &Path) -> Result<bool> {
    match berth_sys::fs::chdir(cwd) {
        Ok(()) => Ok(false),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => Ok(true),
        Err(e) => Err(e).with_ctx(|| format!("chdir to {} (process.cwd)", cwd.display())),
    }
}

fn rlimit_resource(t: PosixRlimitType) -> u32 {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn set_rlimits(limits: &[PosixRlimit]) -> Result<()> {
    for (i, r) in limits.iter().enumerate() {
        sp::setrlimit(rlimit_resource(r.typ()), r.soft(), r.hard())
            .with_ctx(|| format!("set process.rlimits[{i}] ({:?})", r.typ()))?;
    }
    Ok(())
}

const PERSONALITY_FLAGS: &[(&str, u64)] = &[
    ("UNAME26", 0x002_0000),
    ("ADDR_NO_RANDOMIZE", 0x004_0000),
    ("FDPIC_FUNCPTRS", 0x008_0000),
    ("MMAP_PAGE_ZERO", 0x010_0000),
    ("ADDR_COMPAT_LAYOUT", 0x020_0000),
    ("READ_IMPLIES_EXEC", 0x040_0000),
    ("ADDR_LIMIT_32BIT", 0x080_0000),
    ("SHORT_INODE", 0x100_0000),
    ("WHOLE_SECONDS", 0x200_0000),
    ("STICKY_TIMEOUTS", 0x400_0000),
    ("ADDR_LIMIT_3GB", 0x800_0000),
];

/// The personality(2) value for `linux.personality`.
pub fn personality_value(p: &LinuxPersonality) -> Result<u64> {
    let mut v = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    for (i, f) in p.flags().iter().flatten().enumerate() {
        let bits = PERSONALITY_FLAGS
            .iter()
            .find(|(n, _)| n == f)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                config(
                    format!("linux.personality.flags[{i}]"),
                    format!("{f:?} is not a personality flag"),
                )
            })?;
        v |= bits;
    }
    Ok(v)
}

pub fn set_io_priority(class: IOPriorityClass, level: i64) -> Result<()> {
    let c = match class {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    sp::ioprio_set_self(c, level as u32).ctx("set process.ioPriority")
}

pub fn set_scheduler(s: &Scheduler) -> Result<()> {
    use LinuxSchedulerPolicy::*;
    let policy = match *s.policy() {
        SchedOther => 0,
        SchedFifo => 1,
        SchedRr => 2,
        SchedBatch => 3,
        SchedIso => 4,
        SchedIdle => 5,
        SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    sp::sched_setattr_self(sp::SchedAttr {
        sched_policy: policy,
        sched_flags: flags,
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: s.priority().unwrap_or(0) as u32,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
        ..Default::default()
    })
    .ctx("set process.scheduler")
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Finds `name` as execvp(3) would, in the container's `PATH` (from
/// process.env), checking that the result is an executable regular file.
pub fn find_executable(name: &str, env: &[String]) -> Result<CString> {
    let is_exec = |p: &Path| -> bool {
        let Ok(c) = berth_sys::cstr(p) else {
            return false;
        };
        // SAFETY: valid C string; access(2) has no other preconditions.
        let ok = unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0;
        ok && p.metadata().is_ok_and(|m| m.is_file())
    };
    let not_found = || Error::Usage(format!("exec {name:?}: executable file not found in $PATH"));
    if name.contains('/') {
        let p = Path::new(name);
        if !p.exists() {
            return Err(Error::Usage(format!(
                "exec {name:?}: no such file or directory"
            )));
        }
        if !is_exec(p) {
            return Err(Error::Usage(format!(
                "exec {name:?}: permission denied (not an executable file)"
            )));
        }
        return berth_sys::cstr(p).ctx("exec");
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand: PathBuf = Path::new(dir).join(name);
        if is_exec(&cand) {
            return berth_sys::cstr(&cand).ctx("exec");
        }
    }
    Err(not_found())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Capability;

    #[test]
    fn cap_numbers() {
        let set: Capabilities = [
            Capability::Chown,
            Capability::SysAdmin,
            Capability::NetBindService,
        ]
        .into();
        assert_eq!(cap_mask(Some(&set), 40), 1 | (1 << 21) | (1 << 10));
        let set: Capabilities = [Capability::CheckpointRestore].into();
        assert_eq!(
            cap_mask(Some(&set), 39),
            0,
            "newer than the kernel: skipped"
        );
        assert_eq!(CAPS.len(), 41);
    }

    #[test]
    fn memory_policies() {
        assert_eq!(memory_policy_nodes("0-2,5").unwrap(), vec![0b100111]);
        assert_eq!(memory_policy_nodes("64").unwrap(), vec![0, 1]);
        assert!(memory_policy_nodes("3-1").is_err());
        assert!(memory_policy_nodes("x").is_err());
        assert!(memory_policy_nodes("99999").is_err());
        let mp =
            |j: &str| -> oci_spec::runtime::LinuxMemoryPolicy { serde_json::from_str(j).unwrap() };
        assert_eq!(
            memory_policy(&mp(r#"{"mode":"MPOL_BIND","nodes":"0"}"#)).unwrap(),
            (2, vec![1])
        );
        assert_eq!(
            memory_policy(&mp(
                r#"{"mode":"MPOL_INTERLEAVE","nodes":"0","flags":["MPOL_F_STATIC_NODES"]}"#
            ))
            .unwrap(),
            (3 | 1 << 15, vec![1])
        );
        assert!(memory_policy(&mp(r#"{"mode":"MPOL_BIND"}"#)).is_err());
        assert!(memory_policy(&mp(r#"{"mode":"MPOL_DEFAULT","nodes":"0"}"#)).is_err());
        assert!(memory_policy(&mp(
            r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES","MPOL_F_RELATIVE_NODES"]}"#
        ))
        .is_err());
    }

    #[test]
    fn home_comes_from_passwd_or_is_slash() {
        let pw = "root:x:0:0:root:/root:/bin/sh\nbad line\nu:x:1000:1000::/home/u:/bin/sh\nn:x:7:7:::/bin/sh\n";
        assert_eq!(home_in_passwd(Some(pw), 0), "/root");
        assert_eq!(home_in_passwd(Some(pw), 1000), "/home/u");
        assert_eq!(home_in_passwd(Some(pw), 7), "/", "an empty home is /");
        assert_eq!(home_in_passwd(Some(pw), 42), "/", "no entry");
        assert_eq!(home_in_passwd(None, 0), "/", "no file");
        let mut env = vec!["HOME=/x".to_string()];
        add_home(&mut env, 0);
        assert_eq!(env, ["HOME=/x"], "a given HOME is kept");
    }

    #[test]
    fn personality() {
        let p: LinuxPersonality =
            serde_json::from_str(r#"{"domain":"LINUX32","flags":["ADDR_NO_RANDOMIZE"]}"#).unwrap();
        assert_eq!(personality_value(&p).unwrap(), 0x0008 | 0x0004_0000);
    }

    #[test]
    fn finds_in_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        let p = find_executable("sh", &env).unwrap();
        assert!(p.to_str().unwrap().ends_with("/sh"));
        assert!(find_executable("no-such-program-berth", &env).is_err());
        assert!(find_executable("/etc/passwd", &env).is_err());
    }
}
