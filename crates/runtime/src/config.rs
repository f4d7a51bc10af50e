//! Loading and validating config.json. Pure: no side effects, so every rule
//! here is unit-tested and fuzzed. Every error names the field.

use crate::error::{config, Error, Result};
use crate::mounts;
use oci_spec::runtime::{LinuxNamespaceType, LinuxSchedulerPolicy, Spec};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

/// The newest runtime-spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.1";
/// The oldest config version accepted.
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// Largest config.json we read: real ones are a few KiB to a few hundred.
const MAX_CONFIG: u64 = 16 << 20;

/// Reads and parses `bundle/config.json`.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let file = std::fs::File::open(&path).map_err(|e| Error::Io {
        op: format!("open {} (is --bundle right?)", path.display()),
        cause: e,
    })?;
    use std::io::Read;
    let mut data = Vec::new();
    file.take(MAX_CONFIG + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::Io {
            op: format!("read {}", path.display()),
            cause: e,
        })?;
    if data.len() as u64 > MAX_CONFIG {
        return Err(config(
            "(file)",
            format!("larger than {} MiB", MAX_CONFIG >> 20),
        ));
    }
    parse(&data)
}

/// Parses config.json bytes; errors carry the JSON path of the bad field.
pub fn parse(data: &[u8]) -> Result<Spec> {
    // Plain serde first: tracking the path costs a third of a millisecond
    // on a config with a seccomp profile, and is only needed to say where
    // a bad config is bad (the same deserializer, so the same verdict).
    {
        use serde::Deserialize;
        let de = &mut serde_json::Deserializer::from_slice(data);
        if let Ok(spec) = Spec::deserialize(de) {
            return Ok(spec);
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." || field == "?" {
            "(document)".to_string()
        } else {
            field
        };
        config(field, e.into_inner().to_string())
    })
}

/// The namespace set of a config, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// Kinds to create, as `CLONE_NEW*` flags.
    pub new: i32,
    /// Kinds to join: (flag, path).
    pub join: Vec<(i32, PathBuf)>,
}

impl Namespaces {
    pub fn has_new(&self, flag: i32) -> bool {
        self.new & flag != 0
    }
    pub fn has(&self, flag: i32) -> bool {
        self.has_new(flag) || self.join.iter().any(|(f, _)| *f == flag)
    }
}

pub fn ns_flag(t: LinuxNamespaceType) -> i32 {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => berth_sys::process::CLONE_NEWTIME as i32,
    }
}

pub fn ns_name(flag: i32) -> &'static str {
    match flag {
        libc::CLONE_NEWNS => "mount",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "network",
        _ => "time",
    }
}

/// The namespaces of a validated spec.
pub fn namespaces(spec: &Spec) -> Namespaces {
    let mut ns = Namespaces::default();
    if let Some(list) = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()) {
        for n in list {
            let flag = ns_flag(n.typ());
            match n.path() {
                Some(p) if !p.as_os_str().is_empty() => ns.join.push((flag, p.clone())),
                _ => ns.new |= flag,
            }
        }
    }
    ns
}

fn is_abs_clean(p: &Path) -> bool {
    p.is_absolute() && !p.components().any(|c| matches!(c, Component::ParentDir))
}

/// Lexically cleans a container path: makes it absolute and resolves `.`
/// and `..` without leaving `/`.
pub fn clean_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Checks everything that can be checked before touching the system.
pub fn validate(spec: &Spec) -> Result<()> {
    validate_version(spec.version())?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| config("root", "is required"))?;
    if root.path().as_os_str().is_empty() {
        return Err(config("root.path", "is required"));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| config("process", "is required"))?;
    validate_process(process)?;

    let ns = validate_namespaces(spec)?;
    if !ns.has(libc::CLONE_NEWNS) {
        return Err(config(
            "linux.namespaces",
            "a mount namespace is required: berth-runtime never changes the host's mounts",
        ));
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !ns.has(libc::CLONE_NEWUTS) {
        return Err(config(
            "hostname",
            "needs a uts namespace of the container's own",
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !ns.has(libc::CLONE_NEWUTS) {
        return Err(config(
            "domainname",
            "needs a uts namespace of the container's own",
        ));
    }
    for (field, v) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        if let Some(h) = v {
            if h.len() > 64 || h.contains('\0') {
                return Err(config(field, "must be at most 64 bytes without NUL"));
            }
        }
    }

    if let Some(mounts) = spec.mounts() {
        for (i, m) in mounts.iter().enumerate() {
            mounts::validate(i, m)?;
            let o = mounts::parse_options(m.options().as_deref().unwrap_or_default())
                .unwrap_or_default();
            if mounts::idmap_of(m, &o).is_some_and(|idm| idm.maps.is_none())
                && !ns.has(libc::CLONE_NEWUSER)
            {
                return Err(config(
                    format!("mounts[{i}].options"),
                    "idmap without uidMappings and gidMappings uses the maps of the container's user namespace, and the container has none: give the mount its mappings, or the container a user namespace",
                ));
            }
        }
    }
    if let Some(hooks) = spec.hooks() {
        let lists = [
            ("hooks.prestart", hooks.prestart()),
            ("hooks.createRuntime", hooks.create_runtime()),
            ("hooks.createContainer", hooks.create_container()),
            ("hooks.startContainer", hooks.start_container()),
            ("hooks.poststart", hooks.poststart()),
            ("hooks.poststop", hooks.poststop()),
        ];
        for (name, list) in lists {
            for (i, h) in list.iter().flatten().enumerate() {
                if !h.path().is_absolute() {
                    return Err(config(
                        format!("{name}[{i}].path"),
                        "must be an absolute path",
                    ));
                }
                if h.timeout().is_some_and(|t| t <= 0) {
                    return Err(config(
                        format!("{name}[{i}].timeout"),
                        "must be greater than zero",
                    ));
                }
            }
        }
    }
    if let Some(linux) = spec.linux() {
        validate_linux(linux, &ns)?;
    }
    Ok(())
}

/// The `process` object's own rules (also for `exec --process`).
pub fn validate_process(process: &oci_spec::runtime::Process) -> Result<()> {
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => return Err(config("process.args", "must name the program to run")),
    }
    if !process.cwd().is_absolute() {
        return Err(config(
            "process.cwd",
            format!("{:?} must be an absolute path", process.cwd()),
        ));
    }
    if let Some(env) = process.env() {
        for (i, e) in env.iter().enumerate() {
            if !e.contains('=') || e.starts_with('=') || e.contains('\0') {
                return Err(config(
                    format!("process.env[{i}]"),
                    format!("{e:?} is not KEY=value"),
                ));
            }
        }
    }
    if let Some(rl) = process.rlimits() {
        let mut seen = HashSet::new();
        for (i, r) in rl.iter().enumerate() {
            if !seen.insert(format!("{:?}", r.typ())) {
                return Err(config(
                    format!("process.rlimits[{i}].type"),
                    format!("{:?} is given twice", r.typ()),
                ));
            }
            if r.soft() > r.hard() {
                return Err(config(
                    format!("process.rlimits[{i}]"),
                    "soft limit is above the hard limit",
                ));
            }
        }
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(config(
                "process.oomScoreAdj",
                format!("{adj} is outside -1000..1000"),
            ));
        }
    }
    if let Some(io) = process.io_priority() {
        if !(0..=7).contains(&io.priority()) {
            return Err(config(
                "process.ioPriority.priority",
                format!("{} is outside 0..7", io.priority()),
            ));
        }
    }
    if let Some(s) = process.scheduler() {
        validate_scheduler(s)?;
    }
    crate::lsm::validate(&crate::lsm::Host::detect, Some(process), None)?;
    if process.exec_cpu_affinity().is_some() {
        return Err(config(
            "process.execCPUAffinity",
            "not supported by this version of berth-runtime",
        ));
    }
    Ok(())
}

fn validate_version(v: &str) -> Result<()> {
    let mut parts = v.split('.');
    let major = parts.next().and_then(|m| m.parse::<u32>().ok());
    let minor = parts.next().and_then(|m| m.parse::<u32>().ok());
    match (major, minor) {
        (Some(1), Some(minor)) if minor <= 2 => Ok(()),
        (Some(1), Some(_)) => Ok(()), // newer minor versions are compatible by the spec's rules
        _ => Err(config(
            "ociVersion",
            format!("{v:?} is not supported (need 1.x, from {OCI_VERSION_MIN} to {OCI_VERSION})"),
        )),
    }
}

fn validate_scheduler(s: &oci_spec::runtime::Scheduler) -> Result<()> {
    use LinuxSchedulerPolicy::*;
    let p = *s.policy();
    if s.nice().is_some_and(|n| !(-20..=19).contains(&n)) {
        return Err(config("process.scheduler.nice", "must be in -20..19"));
    }
    let rt = matches!(p, SchedFifo | SchedRr);
    if let Some(prio) = *s.priority() {
        if rt && !(1..=99).contains(&prio) {
            return Err(config(
                "process.scheduler.priority",
                "must be in 1..99 for SCHED_FIFO and SCHED_RR",
            ));
        }
        if !rt && prio != 0 {
            return Err(config(
                "process.scheduler.priority",
                "must be 0 unless the policy is SCHED_FIFO or SCHED_RR",
            ));
        }
    } else if rt {
        return Err(config(
            "process.scheduler.priority",
            "is required for SCHED_FIFO and SCHED_RR",
        ));
    }
    let dl = [*s.runtime(), *s.deadline(), *s.period()];
    if p == SchedDeadline {
        if dl.iter().any(Option::is_none) {
            return Err(config(
                "process.scheduler",
                "SCHED_DEADLINE needs runtime, deadline and period",
            ));
        }
    } else if dl.iter().any(Option::is_some) {
        return Err(config(
            "process.scheduler",
            "runtime, deadline and period apply only to SCHED_DEADLINE",
        ));
    }
    if p == SchedIso {
        return Err(config(
            "process.scheduler.policy",
            "SCHED_ISO is not implemented by Linux",
        ));
    }
    Ok(())
}

fn validate_namespaces(spec: &Spec) -> Result<Namespaces> {
    let list = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    let mut seen = 0;
    for (i, n) in list.into_iter().flatten().enumerate() {
        let flag = ns_flag(n.typ());
        if seen & flag != 0 {
            return Err(config(
                format!("linux.namespaces[{i}]"),
                format!("{} namespace listed twice", ns_name(flag)),
            ));
        }
        seen |= flag;
        if let Some(p) = n.path() {
            if !p.as_os_str().is_empty() && !p.is_absolute() {
                return Err(config(
                    format!("linux.namespaces[{i}].path"),
                    "must be an absolute path",
                ));
            }
        }
    }
    Ok(namespaces(spec))
}

const ROOTFS_PROPAGATION: &[&str] = &[
    "shared",
    "slave",
    "private",
    "unbindable",
    "rshared",
    "rslave",
    "rprivate",
    "runbindable",
];

fn validate_linux(linux: &oci_spec::runtime::Linux, ns: &Namespaces) -> Result<()> {
    let userns = ns.has(libc::CLONE_NEWUSER);
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if has_maps && !userns {
        return Err(config(
            "linux.uidMappings",
            "id mappings need a user namespace",
        ));
    }
    if ns.has_new(libc::CLONE_NEWUSER) {
        for (field, maps) in [
            ("linux.uidMappings", linux.uid_mappings()),
            ("linux.gidMappings", linux.gid_mappings()),
        ] {
            let maps = maps.as_deref().unwrap_or_default();
            if maps.is_empty() {
                return Err(config(
                    field,
                    "a new user namespace needs at least one mapping",
                ));
            }
            if maps.len() > 340 {
                return Err(config(field, "the kernel accepts at most 340 mappings"));
            }
            for (i, m) in maps.iter().enumerate() {
                if m.size() == 0 {
                    return Err(config(
                        format!("{field}[{i}].size"),
                        "must be greater than zero",
                    ));
                }
            }
        }
    } else if has_maps && ns.join.iter().any(|(f, _)| *f == libc::CLONE_NEWUSER) {
        return Err(config(
            "linux.uidMappings",
            "cannot be set when joining an existing user namespace",
        ));
    }
    if let Some(offsets) = linux.time_offsets() {
        if !offsets.is_empty() {
            if !ns.has_new(berth_sys::process::CLONE_NEWTIME as i32) {
                return Err(config(
                    "linux.timeOffsets",
                    "need a new time namespace (not a joined one)",
                ));
            }
            for k in offsets.keys() {
                if k != "monotonic" && k != "boottime" {
                    return Err(config(
                        format!("linux.timeOffsets.{k}"),
                        "only monotonic and boottime clocks have offsets",
                    ));
                }
            }
        }
    }
    if let Some(sysctl) = linux.sysctl() {
        for (k, v) in sysctl {
            validate_sysctl(k, v, ns)?;
        }
    }
    if let Some(p) = linux.rootfs_propagation() {
        if !p.is_empty() && !ROOTFS_PROPAGATION.contains(&p.as_str()) {
            return Err(config(
                "linux.rootfsPropagation",
                format!("{p:?} is not one of {}", ROOTFS_PROPAGATION.join(", ")),
            ));
        }
    }
    for (field, list) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        for (i, p) in list.iter().flatten().enumerate() {
            if !is_abs_clean(Path::new(p)) {
                return Err(config(
                    format!("{field}[{i}]"),
                    format!("{p:?} must be an absolute path without '..'"),
                ));
            }
        }
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !is_abs_clean(d.path()) || d.path() == Path::new("/") {
            return Err(config(
                format!("linux.devices[{i}].path"),
                "must be an absolute path without '..'",
            ));
        }
        if d.file_mode().is_some_and(|m| m & !0o7777 != 0) {
            return Err(config(
                format!("linux.devices[{i}].fileMode"),
                "has bits beyond the permission bits",
            ));
        }
        if d.major() < 0 || d.minor() < 0 || d.major() > 0xfff || d.minor() > 0xfffff {
            return Err(config(
                format!("linux.devices[{i}]"),
                "major and minor are out of range",
            ));
        }
    }
    if let Some(sc) = linux.seccomp() {
        berth_seccomp::validate(sc).map_err(seccomp_err)?;
    }
    crate::lsm::validate(
        &crate::lsm::Host::detect,
        None,
        linux.mount_label().as_deref(),
    )?;
    if linux.intel_rdt().is_some() {
        return Err(config("linux.intelRdt", "not supported by berth-runtime"));
    }
    if let Some(mp) = linux.memory_policy() {
        crate::process_attrs::memory_policy(mp).map_err(|m| config("linux.memoryPolicy", m))?;
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(config(
            "linux.netDevices",
            "not supported by this version of berth-runtime",
        ));
    }
    if let Some(p) = linux.personality() {
        crate::process_attrs::personality_value(p)?;
    }
    if let Some(cg) = linux.cgroups_path() {
        let s = cg.to_string_lossy();
        if s.split('/').any(|c| c == "..") {
            return Err(config("linux.cgroupsPath", "must not contain '..'"));
        }
    }
    Ok(())
}

/// Compiles a container's seccomp profile through the cache under the
/// state root ('@' cannot start a container id, so it never collides).
pub(crate) fn compile_seccomp(
    root: &Path,
    sc: &oci_spec::runtime::LinuxSeccomp,
) -> Result<berth_seccomp::Filter> {
    berth_seccomp::compile_cached(sc, &root.join("@cache").join("seccomp")).map_err(seccomp_err)
}

/// A seccomp profile error as a config error naming its field.
pub(crate) fn seccomp_err(e: berth_seccomp::Error) -> Error {
    match e {
        berth_seccomp::Error::Invalid { field, msg } => config(field, msg),
        other => config("linux.seccomp", other.to_string()),
    }
}

/// The runtime-spec's rules for which sysctls a container may set: only
/// namespaced ones, and only when it has that namespace of its own.
fn validate_sysctl(key: &str, value: &str, ns: &Namespaces) -> Result<()> {
    let field = || format!("linux.sysctl.{key}");
    if !berth_sys::sysctl::valid_name(key) || value.contains('\0') {
        return Err(config(field(), "is not a valid sysctl name"));
    }
    let Some(needs) = berth_sys::sysctl::namespace_of(key) else {
        return Err(config(
            field(),
            "is not namespaced: a container may not change it for the whole host",
        ));
    };
    let what = berth_sys::sysctl::namespace_name(needs);
    if !ns.has(needs) {
        return Err(config(
            field(),
            format!("needs a {what} namespace of the container's own"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}]}
        })
    }

    fn check(v: serde_json::Value) -> Result<()> {
        validate(&parse(v.to_string().as_bytes())?)
    }

    fn field_of(r: Result<()>) -> String {
        match r {
            Err(Error::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn base_is_valid() {
        check(base()).unwrap();
    }

    #[test]
    fn parse_errors_name_the_field() {
        let mut v = base();
        v["linux"]["namespaces"][1]["type"] = "bogus".into();
        assert_eq!(field_of(check(v)), "linux.namespaces[1].type");
        let mut v = base();
        v["process"]["user"]["uid"] = "root".into();
        assert_eq!(field_of(check(v)), "process.user.uid");
        match parse(b"{not json") {
            Err(Error::Config { field, .. }) => assert_eq!(field, "(document)"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn rules() {
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("ociVersion", Box::new(|v| v["ociVersion"] = "2.0.0".into())),
            (
                "root",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("root");
                }),
            ),
            (
                "process.args",
                Box::new(|v| v["process"]["args"] = serde_json::json!([])),
            ),
            (
                "process.cwd",
                Box::new(|v| v["process"]["cwd"] = "relative".into()),
            ),
            (
                "process.env[0]",
                Box::new(|v| v["process"]["env"] = serde_json::json!(["NOEQUALS"])),
            ),
            (
                "linux.namespaces[1]",
                Box::new(|v| v["linux"]["namespaces"][1]["type"] = "pid".into()),
            ),
            (
                "linux.namespaces",
                Box::new(|v| v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}])),
            ),
            (
                "hostname",
                Box::new(|v| {
                    v["hostname"] = "h".into();
                    v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}]);
                }),
            ),
            (
                "linux.sysctl.kernel.panic",
                Box::new(|v| v["linux"]["sysctl"] = serde_json::json!({"kernel.panic": "1"})),
            ),
            (
                "linux.sysctl.net.ipv4.ip_forward",
                Box::new(|v| {
                    v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
                    v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}]);
                }),
            ),
            (
                "linux.uidMappings",
                Box::new(|v| {
                    v["linux"]["namespaces"]
                        .as_array_mut()
                        .unwrap()
                        .push(serde_json::json!({"type": "user"}))
                }),
            ),
            (
                "process.rlimits[1].type",
                Box::new(
                    |v| v["process"]["rlimits"] = serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}, {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}]),
                ),
            ),
            (
                "process.rlimits[0]",
                Box::new(|v| {
                    v["process"]["rlimits"] =
                        serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 3, "hard": 2}])
                }),
            ),
            (
                "process.oomScoreAdj",
                Box::new(|v| v["process"]["oomScoreAdj"] = 5000.into()),
            ),
            (
                "linux.rootfsPropagation",
                Box::new(|v| v["linux"]["rootfsPropagation"] = "sideways".into()),
            ),
            (
                "linux.maskedPaths[0]",
                Box::new(|v| v["linux"]["maskedPaths"] = serde_json::json!(["/proc/../etc"])),
            ),
            (
                "mounts[0].destination",
                Box::new(|v| {
                    v["mounts"] = serde_json::json!([{"destination": "/", "type": "tmpfs", "source": "tmpfs"}])
                }),
            ),
            (
                "mounts[0].options[1]",
                Box::new(
                    |v| v["mounts"] = serde_json::json!([{"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind", ""]}]),
                ),
            ),
            (
                // idmap with the container's maps, and it has no userns.
                "mounts[0].options",
                Box::new(
                    |v| v["mounts"] = serde_json::json!([{"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]}]),
                ),
            ),
            (
                "mounts[0]",
                Box::new(
                    |v| v["mounts"] = serde_json::json!([{"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}]),
                ),
            ),
            (
                "hooks.prestart[0].path",
                Box::new(|v| v["hooks"] = serde_json::json!({"prestart": [{"path": "rel"}]})),
            ),
            (
                "hooks.poststop[0].timeout",
                Box::new(|v| {
                    v["hooks"] =
                        serde_json::json!({"poststop": [{"path": "/bin/true", "timeout": 0}]})
                }),
            ),
            (
                // Refused on any host: whether one with AppArmor would
                // take "docker-default" is lsm.rs's tests' business.
                "process.apparmorProfile",
                Box::new(|v| v["process"]["apparmorProfile"] = "docker\"default".into()),
            ),
            (
                "linux.timeOffsets",
                Box::new(|v| {
                    v["linux"]["timeOffsets"] = serde_json::json!({"monotonic": {"secs": 1}})
                }),
            ),
            (
                "process.scheduler.priority",
                Box::new(|v| {
                    v["process"]["scheduler"] = serde_json::json!({"policy": "SCHED_FIFO"})
                }),
            ),
            (
                "linux.devices[0].path",
                Box::new(|v| {
                    v["linux"]["devices"] =
                        serde_json::json!([{"path": "dev/x", "type": "c", "major": 1, "minor": 3}])
                }),
            ),
            (
                "linux.personality.flags[0]",
                Box::new(|v| {
                    v["linux"]["personality"] =
                        serde_json::json!({"domain": "LINUX", "flags": ["NOPE"]})
                }),
            ),
            (
                "linux.cgroupsPath",
                Box::new(|v| v["linux"]["cgroupsPath"] = "/a/../../b".into()),
            ),
        ];
        for (want, f) in cases {
            let mut v = base();
            f(&mut v);
            assert_eq!(field_of(check(v)), want);
        }
    }

    #[test]
    fn namespaced_sysctls_are_allowed() {
        let mut v = base();
        v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "10"});
        check(v).unwrap();
    }

    #[test]
    fn clean_paths() {
        assert_eq!(
            clean_path(Path::new("/a/../../b/./c")),
            PathBuf::from("/b/c")
        );
        assert_eq!(clean_path(Path::new("rel/x")), PathBuf::from("/rel/x"));
    }
}
