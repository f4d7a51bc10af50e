//! Which cgroup hierarchies the host has mounted, and where this process
//! sits in each: read from /proc/self/cgroup, with the mounts at their
//! usual places under /sys/fs/cgroup (checked by statfs), else from
//! /proc/self/mountinfo. mountinfo grows with every mount on the host (an
//! overlay root per container, with its long options): about 1 ms to
//! read with 100 containers, on every container start, where the usual
//! places cost a statfs per hierarchy.

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

/// The v1 controllers (and `name=` of a named hierarchy) in a
/// comma-separated list: a v1 mount's options, or /proc/self/cgroup's
/// second field.
fn v1_controllers_in(list: &str) -> Vec<String> {
    list.split(',')
        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
        .map(str::to_string)
        .collect()
}

/// Where hosts mount their cgroup hierarchies.
const USUAL: &str = "/sys/fs/cgroup";

impl Layout {
    /// Reads this machine's layout.
    pub fn from_host() -> Result<Layout> {
        let cg = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(crate::io_err("read", Path::new("/proc/self/cgroup")))?;
        if let Some(layout) = Layout::at_usual_places(&cg, Path::new(USUAL), &|p| {
            berth_sys::fs::open(p, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
                .and_then(|fd| berth_sys::fs::fs_magic(std::os::fd::AsFd::as_fd(&fd)))
                .ok()
        }) {
            return Ok(layout);
        }
        let mi = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(crate::io_err("read", Path::new("/proc/self/mountinfo")))?;
        let layout = Layout::parse(&mi, &cg);
        if layout.hierarchies.is_empty() {
            return Err(Error::NoCgroups);
        }
        Ok(layout)
    }

    /// The layout when every hierarchy of /proc/self/cgroup is mounted,
    /// whole, at its usual place under `base`: v1 ones at `base/NAME`
    /// (`cpu,cpuacct`, `systemd` for `name=systemd`), cgroup2 at `base` or
    /// `base/unified`. `fs_magic` gives the filesystem type of a directory
    /// (None: not there). A mount is taken as the hierarchy's whole tree
    /// when this process's own cgroup is under it at its full path. None
    /// when anything is otherwise (another place, a bind of a subtree as
    /// in a container without a cgroup namespace): mountinfo then tells.
    ///
    /// One exception: beside v1 hierarchies, cgroup2 anywhere else than
    /// `base/unified` is taken as not mounted, as runc takes it (its hybrid
    /// mode looks there only). Its line is in /proc/self/cgroup whether or
    /// not it is mounted, so a host of v1 hierarchies only (systemd's
    /// legacy mode) would otherwise read mountinfo at every command.
    pub fn at_usual_places(
        proc_cgroup: &str,
        base: &Path,
        fs_magic: &dyn Fn(&Path) -> Option<i64>,
    ) -> Option<Layout> {
        const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
        let under = |mountpoint: &Path, own: &str| -> Option<()> {
            let mut dir = mountpoint.to_path_buf();
            for c in Path::new(own).components() {
                match c {
                    Component::Normal(n) => dir.push(n),
                    Component::RootDir => {}
                    _ => return None,
                }
            }
            fs_magic(&dir).map(|_| ())
        };
        let mut hierarchies = Vec::new();
        let mut v2_unplaced = false;
        for line in proc_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_id), Some(ctrls), Some(own)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (mountpoint, kind) = if ctrls.is_empty() {
                let v2 = berth_sys::fs::CGROUP2_SUPER_MAGIC;
                let Some(at) = [base.to_path_buf(), base.join("unified")]
                    .into_iter()
                    .find(|p| fs_magic(p) == Some(v2))
                else {
                    v2_unplaced = true;
                    continue;
                };
                (at, HierarchyKind::V2)
            } else {
                let controllers = v1_controllers_in(ctrls);
                if controllers.is_empty() {
                    continue;
                }
                let name = ctrls.strip_prefix("name=").unwrap_or(ctrls);
                if name.contains('/') || name.starts_with('.') {
                    return None;
                }
                let at = base.join(name);
                if fs_magic(&at) != Some(CGROUP_SUPER_MAGIC) {
                    return None;
                }
                (at, HierarchyKind::V1 { controllers })
            };
            under(&mountpoint, own)?;
            if hierarchies.iter().any(|h: &Hierarchy| h.kind == kind) {
                return None;
            }
            hierarchies.push(Hierarchy {
                mountpoint,
                mount_root: "/".into(),
                own: own.to_string(),
                kind,
            });
        }
        let v1 = hierarchies
            .iter()
            .any(|h| matches!(h.kind, HierarchyKind::V1 { .. }));
        if v2_unplaced && !v1 {
            return None;
        }
        (!hierarchies.is_empty()).then_some(Layout { hierarchies })
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
                    let controllers = v1_controllers_in(post[2]);
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

    /// A fake filesystem for `at_usual_places`: directories and their
    /// filesystem types.
    fn fake<'a>(dirs: &'a [(&'a str, i64)]) -> impl Fn(&Path) -> Option<i64> + 'a {
        move |p| {
            dirs.iter()
                .find(|(d, _)| Path::new(d) == p)
                .map(|(_, m)| *m)
        }
    }
    const CG1: i64 = 0x0027_e0eb;
    const CG2: i64 = berth_sys::fs::CGROUP2_SUPER_MAGIC;
    const TMPFS: i64 = 0x0102_1994;

    #[test]
    fn the_usual_places_give_what_mountinfo_gives() {
        let fs = [
            ("/sys/fs/cgroup", TMPFS),
            ("/sys/fs/cgroup/cpu", CG1),
            ("/sys/fs/cgroup/memory", CG1),
            ("/sys/fs/cgroup/memory/sup", CG1),
            ("/sys/fs/cgroup/memory/sup/abc", CG1),
            ("/sys/fs/cgroup/systemd", CG1),
            ("/sys/fs/cgroup/unified", CG2),
        ];
        let f = fake(&fs);
        let fast = Layout::at_usual_places(HYBRID_CG, Path::new("/sys/fs/cgroup"), &f).unwrap();
        let mut slow = Layout::parse(HYBRID_MI, HYBRID_CG).hierarchies;
        let mut fast = fast.hierarchies;
        for l in [&mut slow, &mut fast] {
            l.sort_by(|a, b| a.mountpoint.cmp(&b.mountpoint));
        }
        assert_eq!(fast, slow);
        // cgroup2 alone, at the base.
        let fs = [("/sys/fs/cgroup", CG2), ("/sys/fs/cgroup/user.slice", CG2)];
        let l =
            Layout::at_usual_places("0::/user.slice\n", Path::new("/sys/fs/cgroup"), &fake(&fs))
                .unwrap();
        assert_eq!(l.version(), Version::V2);
        assert_eq!(l.hierarchies[0].mountpoint, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(l.hierarchies[0].own, "/user.slice");
    }

    #[test]
    fn anything_unusual_is_left_to_mountinfo() {
        let base = Path::new("/sys/fs/cgroup");
        let hybrid = [
            ("/sys/fs/cgroup", TMPFS),
            ("/sys/fs/cgroup/cpu", CG1),
            ("/sys/fs/cgroup/memory", CG1),
            ("/sys/fs/cgroup/memory/sup/abc", CG1),
            ("/sys/fs/cgroup/systemd", CG1),
            ("/sys/fs/cgroup/unified", CG2),
        ];
        for (what, cg, drop) in [
            // The own cgroup is not under the mount: a bind of a subtree.
            (
                "own cgroup missing",
                HYBRID_CG,
                "/sys/fs/cgroup/memory/sup/abc",
            ),
            // A hierarchy mounted elsewhere (or not at all).
            ("v1 elsewhere", HYBRID_CG, "/sys/fs/cgroup/systemd"),
            // A name that is not a plain directory name.
            ("odd name", "3:name=../x:/\n", "none"),
        ] {
            let fs: Vec<(&str, i64)> = hybrid.iter().copied().filter(|(d, _)| *d != drop).collect();
            assert_eq!(
                Layout::at_usual_places(cg, base, &fake(&fs)),
                None,
                "{what}"
            );
        }
        // A tmpfs where a v1 hierarchy should be.
        let fs: Vec<(&str, i64)> = hybrid
            .iter()
            .map(|(d, m)| {
                (
                    *d,
                    if *d == "/sys/fs/cgroup/cpu" {
                        TMPFS
                    } else {
                        *m
                    },
                )
            })
            .collect();
        assert_eq!(Layout::at_usual_places(HYBRID_CG, base, &fake(&fs)), None);
        assert_eq!(Layout::at_usual_places("", base, &fake(&hybrid)), None);
        // cgroup2 alone, at neither usual place.
        assert_eq!(
            Layout::at_usual_places("0::/\n", base, &fake(&[("/sys/fs/cgroup", TMPFS)])),
            None
        );
    }

    /// v1 hierarchies with cgroup2 not mounted (systemd's legacy mode, or
    /// unmounted as the benches do for crun): its /proc/self/cgroup line
    /// is no reason to read mountinfo, whose layout has no cgroup2 either.
    #[test]
    fn v1_hierarchies_without_a_mounted_cgroup2_need_no_mountinfo() {
        let base = Path::new("/sys/fs/cgroup");
        let legacy = [
            ("/sys/fs/cgroup", TMPFS),
            ("/sys/fs/cgroup/cpu", CG1),
            ("/sys/fs/cgroup/memory", CG1),
            ("/sys/fs/cgroup/memory/sup/abc", CG1),
            ("/sys/fs/cgroup/systemd", CG1),
            // An empty directory where hybrid hosts mount it.
            ("/sys/fs/cgroup/unified", TMPFS),
        ];
        let mi: String = HYBRID_MI
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut slow = Layout::parse(&mi, HYBRID_CG).hierarchies;
        let mut fast = Layout::at_usual_places(HYBRID_CG, base, &fake(&legacy))
            .unwrap()
            .hierarchies;
        for l in [&mut slow, &mut fast] {
            l.sort_by(|a, b| a.mountpoint.cmp(&b.mountpoint));
        }
        assert_eq!(fast, slow);
        assert!(fast.iter().all(|h| h.kind != HierarchyKind::V2), "{fast:?}");
    }

    /// On this machine (whose hierarchies are at the usual places), the
    /// fast way finds what mountinfo says.
    #[test]
    fn from_host_agrees_with_mountinfo_here() {
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        assert!(
            Path::new("/sys/fs/cgroup").exists(),
            "this test needs the host's cgroups mounted at /sys/fs/cgroup"
        );
        let mut slow = Layout::parse(&mi, &cg).hierarchies;
        let mut fast = Layout::from_host().unwrap().hierarchies;
        for l in [&mut slow, &mut fast] {
            l.sort_by(|a, b| a.mountpoint.cmp(&b.mountpoint));
        }
        assert_eq!(fast, slow);
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
