//! Which sysctls a namespace holds: the ones a container may set for itself
//! without changing them for the whole host.

/// The namespace (`CLONE_NEWIPC`, `CLONE_NEWNET` or `CLONE_NEWUTS`) that
/// holds the sysctl `key` (dotted, or with slashes as under
/// /proc/sys), or None for one the host shares with every container.
pub fn namespace_of(key: &str) -> Option<libc::c_int> {
    let k = key.replace('/', ".");
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
        Some(libc::CLONE_NEWIPC)
    } else if k.starts_with("net.") {
        Some(libc::CLONE_NEWNET)
    } else if k == "kernel.hostname" || k == "kernel.domainname" {
        Some(libc::CLONE_NEWUTS)
    } else {
        None
    }
}

/// The name of a namespace [`namespace_of`] returns, for messages.
pub fn namespace_name(ns: libc::c_int) -> &'static str {
    match ns {
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWNET => "network",
        libc::CLONE_NEWUTS => "uts",
        _ => "other",
    }
}

/// Whether `key` could be a sysctl name at all (no empty parts, no `..`,
/// nothing that would leave /proc/sys).
pub fn valid_name(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(['.', '/'])
        && !key.ends_with(['.', '/'])
        && !key.contains("..")
        && !key.contains("//")
        && !key.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_or_not() {
        assert_eq!(namespace_of("kernel.shmmax"), Some(libc::CLONE_NEWIPC));
        assert_eq!(namespace_of("fs/mqueue/msg_max"), Some(libc::CLONE_NEWIPC));
        assert_eq!(
            namespace_of("net.ipv4.ip_forward"),
            Some(libc::CLONE_NEWNET)
        );
        assert_eq!(namespace_of("kernel.domainname"), Some(libc::CLONE_NEWUTS));
        assert_eq!(namespace_of("kernel.panic"), None);
        assert_eq!(namespace_of("vm.overcommit_memory"), None);
        assert_eq!(namespace_of("kernel.shmmax.x"), None);
        assert!(valid_name("net.core.somaxconn"));
        for bad in ["", ".a", "a..b", "a.", "/a", "a//b", "a\0b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
