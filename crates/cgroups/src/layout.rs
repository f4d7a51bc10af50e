//! Which cgroup hierarchies the host has mounted, and where this process
//! sits in each: read from /proc/self/mountinfo and /proc/self/cgroup.

use crate::{CgroupsPath, Error, Result, Version};
use std::path::{Component, Path, PathBuf};

const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HierarchyKind {
    V1 { controllers: Vec<String> },
    V2,
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// The path inside the hierarchy that is mounted (usually `/`).
    pub mount_root: String,
    /// This process's cgroup in the hierarchy, from /proc/self/cgroup.
    pub own: String,
    pub kind: HierarchyKind,
}

/// Every hierarchy the host has mounted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    pub hierarchies: Vec<Hierarchy>,
}

impl Layout {
    /// Reads this machine's layout.
    pub fn from_host() -> Result<Layout> {
        let mi = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(crate::io_err("read", Path::new("/proc/self/mountinfo")))?;
        let cg = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(crate::io_err("read", Path::new("/proc/self/cgroup")))?;
        let layout = Layout::parse(&mi, &cg);
        if layout.hierarchies.is_empty() {
            return Err(Error::NoCgroups);
        }
        Ok(layout)
    }

    /// Builds a layout from the text of mountinfo and /proc/self/cgroup.
    pub fn parse(mountinfo: &str, proc_cgroup: &str) -> Layout {
        let mut own_v1: Vec<(Vec<String>, String)> = Vec::new();
        let mut own_v2 = String::from("/");
        for line in proc_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if ctrls.is_empty() {
                own_v2 = path.to_string();
            } else {
                own_v1.push((
                    ctrls.split(',').map(str::to_string).collect(),
                    path.to_string(),
                ));
            }
        }
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            let mount_root = berth_sys::fs::unescape_mountinfo(pre[3]);
            let mountpoint = PathBuf::from(berth_sys::fs::unescape_mountinfo(pre[4]));
            let kind = match post[0] {
                "cgroup2" => HierarchyKind::V2,
                "cgroup" => {
                    let controllers: Vec<String> = post[2]
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                        .map(str::to_string)
                        .collect();
                    if controllers.is_empty() {
                        continue;
                    }
                    HierarchyKind::V1 { controllers }
                }
                _ => continue,
            };
            // The same hierarchy may be mounted twice (bind mounts); keep one.
            if hierarchies.iter().any(|h| h.kind == kind) {
                continue;
            }
            let own = match &kind {
                HierarchyKind::V2 => own_v2.clone(),
                HierarchyKind::V1 { controllers } => own_v1
                    .iter()
                    .find(|(c, _)| c.iter().any(|x| controllers.contains(x)))
                    .map(|(_, p)| p.clone())
                    .unwrap_or_else(|| "/".to_string()),
            };
            hierarchies.push(Hierarchy {
                mountpoint,
                mount_root,
                own,
                kind,
            });
        }
        Layout { hierarchies }
    }

    pub fn version(&self) -> Version {
        let v1 = self
            .hierarchies
            .iter()
            .any(|h| matches!(h.kind, HierarchyKind::V1 { .. }));
        let v2 = self.hierarchies.iter().any(|h| h.kind == HierarchyKind::V2);
        match (v1, v2) {
            (true, true) => Version::Hybrid,
            (true, false) => Version::V1,
            _ => Version::V2,
        }
    }

    /// The `cgroup.procs` file of this process's own cgroup in its first v1
    /// hierarchy, or `None` on a host with cgroup v2 alone.
    ///
    /// Moving a task between cgroups takes the kernel's
    /// `cgroup_threadgroup_rwsem` for writing. When no move happened lately,
    /// that first waits for an RCU grace period (8-25 ms on a 2-core VM);
    /// for about one grace period after a move, further moves skip the wait.
    /// Writing `0` here moves the writer into the cgroup it is already in:
    /// nothing changes, but the wait starts. Started early and in the
    /// background, it runs while a runtime prepares a container, and the
    /// container's own moves, later, find it over. On cgroup v2,
    /// `clone3(CLONE_INTO_CGROUP)` places processes without that lock.
    pub fn warm_up_target(&self) -> Option<PathBuf> {
        if self.version() == Version::V2 {
            return None;
        }
        let h = self
            .hierarchies
            .iter()
            .find(|h| matches!(h.kind, HierarchyKind::V1 { .. }))?;
        let dir = h.dir_for(&CgroupsPath::Absolute(h.own.clone())).ok()?;
        Some(dir.join("cgroup.procs"))
    }

    /// The controllers available to containers, by name.
    pub fn v1_controllers(&self) -> Vec<&str> {
        self.hierarchies
            .iter()
            .filter_map(|h| match &h.kind {
                HierarchyKind::V1 { controllers } => Some(controllers.iter().map(String::as_str)),
                HierarchyKind::V2 => None,
            })
            .flatten()
            .collect()
    }
}

impl Hierarchy {
    /// The directory of a container with this cgroupsPath in this hierarchy.
    pub fn dir_for(&self, path: &CgroupsPath) -> Result<PathBuf> {
        let inner = match path {
            CgroupsPath::Absolute(p) => strip_mount_root(p, &self.mount_root),
            CgroupsPath::Relative(p) => {
                let base = strip_mount_root(&self.own, &self.mount_root);
                format!("{}/{}", base.trim_end_matches('/'), p)
            }
        };
        let mut dir = self.mountpoint.clone();
        for c in Path::new(&inner).components() {
            match c {
                Component::Normal(n) => dir.push(n),
                Component::RootDir | Component::CurDir => {}
                _ => return Err(Error::BadPath(inner.clone(), "must not contain '..'")),
            }
        }
        Ok(dir)
    }
}

fn strip_mount_root(p: &str, root: &str) -> String {
    if root == "/" {
        return p.to_string();
    }
    match p.strip_prefix(root) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            format!("/{}", rest.trim_start_matches('/'))
        }
        _ => p.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MI: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
27 26 0:25 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
28 26 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
29 26 0:27 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
30 26 0:28 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
31 26 0:29 / /sys/fs/cgroup/cpu\\040x rw,relatime - cgroup cgroup rw,cpu
";
    const HYBRID_CG: &str = "4:memory:/sup/abc\n1:cpu:/\n9:name=systemd:/\n0::/\n";

    #[test]
    fn parses_hybrid() {
        let l = Layout::parse(HYBRID_MI, HYBRID_CG);
        assert_eq!(l.version(), Version::Hybrid);
        assert_eq!(
            l.hierarchies.len(),
            4,
            "duplicate cpu mount is ignored: {l:?}"
        );
        let mem = &l.hierarchies[1];
        assert_eq!(mem.own, "/sup/abc");
        assert_eq!(
            mem.dir_for(&CgroupsPath::Absolute("/a/b".into())).unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/a/b")
        );
        assert_eq!(
            mem.dir_for(&CgroupsPath::Relative("c".into())).unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/sup/abc/c")
        );
        assert_eq!(l.v1_controllers(), vec!["cpu", "memory", "name=systemd"]);
    }

    #[test]
    fn warm_up_target_is_the_own_cgroup_of_a_v1_hierarchy() {
        let l = Layout::parse(HYBRID_MI, HYBRID_CG);
        assert_eq!(
            l.warm_up_target(),
            Some(PathBuf::from("/sys/fs/cgroup/cpu/cgroup.procs"))
        );
        let mi = "27 26 0:25 /sup /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let l = Layout::parse(mi, "4:memory:/sup/abc\n");
        assert_eq!(
            l.warm_up_target(),
            Some(PathBuf::from("/sys/fs/cgroup/memory/abc/cgroup.procs"))
        );
        let v2 = "30 26 0:28 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(Layout::parse(v2, "0::/x\n").warm_up_target(), None);
    }

    #[test]
    fn parses_pure_v2() {
        let mi = "30 26 0:28 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n";
        let l = Layout::parse(mi, "0::/user.slice\n");
        assert_eq!(l.version(), Version::V2);
        assert_eq!(
            l.hierarchies[0]
                .dir_for(&CgroupsPath::Relative("x".into()))
                .unwrap(),
            PathBuf::from("/sys/fs/cgroup/user.slice/x")
        );
    }

    #[test]
    fn refuses_dotdot() {
        let l = Layout::parse(HYBRID_MI, HYBRID_CG);
        assert!(l.hierarchies[0]
            .dir_for(&CgroupsPath::Absolute("/a/../../etc".into()))
            .is_err());
    }

    #[test]
    fn mount_root_is_stripped() {
        let mi = "30 26 0:28 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let l = Layout::parse(mi, "0::/kubepods/pod1\n");
        assert_eq!(
            l.hierarchies[0]
                .dir_for(&CgroupsPath::Relative("c".into()))
                .unwrap(),
            PathBuf::from("/sys/fs/cgroup/pod1/c")
        );
    }
}
