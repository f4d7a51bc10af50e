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

/// Capability names by number, as in <linux/capability.h>.
pub const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

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
pub fn switch_user(process: &Process, caps: &CapMasks, setgroups_allowed: bool) -> Result<()> {
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
        effective: caps.effective,
        permitted: caps.permitted,
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
    for cap in 0..64u64 {
        if caps.ambient & (1 << cap) != 0 {
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
