//! OCI mount options: parsing (pure) and the per-mount validation rules.

use crate::config::clean_path;
use crate::error::{config, Result};
use berth_sys::mount::*;
use oci_spec::runtime::{LinuxIdMapping, Mount};
use std::path::Path;

/// What a mount's option list asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// `MS_*` flags for mount(2).
    pub flags: u64,
    /// `MOUNT_ATTR_*` to set and clear on this mount only (bind mounts).
    pub attr: MountAttr,
    /// `MOUNT_ATTR_*` to set and clear on the whole tree (the `r*` options).
    pub rec_attr: MountAttr,
    /// Propagation changes, in order (`MS_SHARED` etc, with `MS_REC`).
    pub propagation: Vec<u64>,
    pub bind: bool,
    pub rbind: bool,
    pub tmpcopyup: bool,
    /// `idmap` (`Some(false)`) or `ridmap` (`Some(true)`, the submounts of
    /// an `rbind` too): an idmapped bind mount.
    pub idmap: Option<bool>,
    /// Filesystem-specific options, passed as mount(2) data.
    pub data: Vec<String>,
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.bind || self.rbind
    }
    pub fn data_string(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }
}

const MS_RDONLY: u64 = libc::MS_RDONLY;
const MS_NOSUID: u64 = libc::MS_NOSUID;
const MS_NODEV: u64 = libc::MS_NODEV;
const MS_NOEXEC: u64 = libc::MS_NOEXEC;
const MS_NOSYMFOLLOW: u64 = 256;

/// Every option name this runtime understands (for `features`).
pub const KNOWN_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

fn set(a: &mut MountAttr, bits: u64) {
    a.attr_set |= bits;
    a.attr_clr &= !bits;
}
fn clr(a: &mut MountAttr, bits: u64) {
    a.attr_clr |= bits;
    a.attr_set &= !bits;
}
fn atime(a: &mut MountAttr, mode: u64) {
    a.attr_clr |= MOUNT_ATTR__ATIME;
    a.attr_set = (a.attr_set & !MOUNT_ATTR__ATIME) | mode;
}

/// Parses an OCI option list. Unknown options are filesystem data.
pub fn parse_options(opts: &[String]) -> std::result::Result<MountOptions, String> {
    let mut o = MountOptions::default();
    for (i, opt) in opts.iter().enumerate() {
        let err = |m: &str| Err(format!("[{i}]\u{0}{m}"));
        let (flag_on, flag_off): (u64, u64) = match opt.as_str() {
            "defaults" => (0, 0),
            "ro" => {
                set(&mut o.attr, MOUNT_ATTR_RDONLY);
                (MS_RDONLY, 0)
            }
            "rw" => {
                clr(&mut o.attr, MOUNT_ATTR_RDONLY);
                (0, MS_RDONLY)
            }
            "nosuid" => {
                set(&mut o.attr, MOUNT_ATTR_NOSUID);
                (MS_NOSUID, 0)
            }
            "suid" => {
                clr(&mut o.attr, MOUNT_ATTR_NOSUID);
                (0, MS_NOSUID)
            }
            "nodev" => {
                set(&mut o.attr, MOUNT_ATTR_NODEV);
                (MS_NODEV, 0)
            }
            "dev" => {
                clr(&mut o.attr, MOUNT_ATTR_NODEV);
                (0, MS_NODEV)
            }
            "noexec" => {
                set(&mut o.attr, MOUNT_ATTR_NOEXEC);
                (MS_NOEXEC, 0)
            }
            "exec" => {
                clr(&mut o.attr, MOUNT_ATTR_NOEXEC);
                (0, MS_NOEXEC)
            }
            "nosymfollow" => {
                set(&mut o.attr, MOUNT_ATTR_NOSYMFOLLOW);
                (MS_NOSYMFOLLOW, 0)
            }
            "symfollow" => {
                clr(&mut o.attr, MOUNT_ATTR_NOSYMFOLLOW);
                (0, MS_NOSYMFOLLOW)
            }
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "noatime" => {
                atime(&mut o.attr, MOUNT_ATTR_NOATIME);
                (libc::MS_NOATIME, libc::MS_RELATIME | libc::MS_STRICTATIME)
            }
            "atime" => {
                atime(&mut o.attr, MOUNT_ATTR_RELATIME);
                (0, libc::MS_NOATIME)
            }
            "relatime" => {
                atime(&mut o.attr, MOUNT_ATTR_RELATIME);
                (libc::MS_RELATIME, libc::MS_NOATIME | libc::MS_STRICTATIME)
            }
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => {
                atime(&mut o.attr, MOUNT_ATTR_STRICTATIME);
                (libc::MS_STRICTATIME, libc::MS_NOATIME | libc::MS_RELATIME)
            }
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "nodiratime" => {
                set(&mut o.attr, MOUNT_ATTR_NODIRATIME);
                (libc::MS_NODIRATIME, 0)
            }
            "diratime" => {
                clr(&mut o.attr, MOUNT_ATTR_NODIRATIME);
                (0, libc::MS_NODIRATIME)
            }
            "bind" => {
                o.bind = true;
                (0, 0)
            }
            "rbind" => {
                o.rbind = true;
                (0, 0)
            }
            "private" => {
                o.propagation.push(libc::MS_PRIVATE);
                (0, 0)
            }
            "rprivate" => {
                o.propagation.push(libc::MS_PRIVATE | libc::MS_REC);
                (0, 0)
            }
            "shared" => {
                o.propagation.push(libc::MS_SHARED);
                (0, 0)
            }
            "rshared" => {
                o.propagation.push(libc::MS_SHARED | libc::MS_REC);
                (0, 0)
            }
            "slave" => {
                o.propagation.push(libc::MS_SLAVE);
                (0, 0)
            }
            "rslave" => {
                o.propagation.push(libc::MS_SLAVE | libc::MS_REC);
                (0, 0)
            }
            "unbindable" => {
                o.propagation.push(libc::MS_UNBINDABLE);
                (0, 0)
            }
            "runbindable" => {
                o.propagation.push(libc::MS_UNBINDABLE | libc::MS_REC);
                (0, 0)
            }
            "rro" => {
                set(&mut o.rec_attr, MOUNT_ATTR_RDONLY);
                (0, 0)
            }
            "rrw" => {
                clr(&mut o.rec_attr, MOUNT_ATTR_RDONLY);
                (0, 0)
            }
            "rnosuid" => {
                set(&mut o.rec_attr, MOUNT_ATTR_NOSUID);
                (0, 0)
            }
            "rsuid" => {
                clr(&mut o.rec_attr, MOUNT_ATTR_NOSUID);
                (0, 0)
            }
            "rnodev" => {
                set(&mut o.rec_attr, MOUNT_ATTR_NODEV);
                (0, 0)
            }
            "rdev" => {
                clr(&mut o.rec_attr, MOUNT_ATTR_NODEV);
                (0, 0)
            }
            "rnoexec" => {
                set(&mut o.rec_attr, MOUNT_ATTR_NOEXEC);
                (0, 0)
            }
            "rexec" => {
                clr(&mut o.rec_attr, MOUNT_ATTR_NOEXEC);
                (0, 0)
            }
            "rnosymfollow" => {
                set(&mut o.rec_attr, MOUNT_ATTR_NOSYMFOLLOW);
                (0, 0)
            }
            "rsymfollow" => {
                clr(&mut o.rec_attr, MOUNT_ATTR_NOSYMFOLLOW);
                (0, 0)
            }
            "rnodiratime" => {
                set(&mut o.rec_attr, MOUNT_ATTR_NODIRATIME);
                (0, 0)
            }
            "rdiratime" => {
                clr(&mut o.rec_attr, MOUNT_ATTR_NODIRATIME);
                (0, 0)
            }
            "rnoatime" => {
                atime(&mut o.rec_attr, MOUNT_ATTR_NOATIME);
                (0, 0)
            }
            "ratime" | "rrelatime" => {
                atime(&mut o.rec_attr, MOUNT_ATTR_RELATIME);
                (0, 0)
            }
            "rstrictatime" => {
                atime(&mut o.rec_attr, MOUNT_ATTR_STRICTATIME);
                (0, 0)
            }
            "rnorelatime" | "rnostrictatime" => {
                o.rec_attr.attr_clr |= MOUNT_ATTR__ATIME;
                (0, 0)
            }
            "tmpcopyup" => {
                o.tmpcopyup = true;
                (0, 0)
            }
            "idmap" => {
                o.idmap = Some(false);
                (0, 0)
            }
            "ridmap" => {
                o.idmap = Some(true);
                (0, 0)
            }
            "" => return err("empty option"),
            other if other.contains('\0') => return err("contains a NUL byte"),
            other => {
                o.data.push(other.to_string());
                (0, 0)
            }
        };
        o.flags = (o.flags | flag_on) & !flag_off;
    }
    Ok(o)
}

/// What an idmapped mount asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idmap<'a> {
    /// `ridmap`: the submounts of an `rbind` are idmapped too.
    pub recursive: bool,
    /// The mount's own `uidMappings` and `gidMappings` (`containerID` is
    /// the id on the filesystem, `hostID` the id the mount shows); `None`:
    /// the container's user namespace's maps.
    pub maps: Option<(&'a [LinuxIdMapping], &'a [LinuxIdMapping])>,
}

impl Idmap<'_> {
    /// The maps' own rules: both given or neither, each one a map the
    /// kernel takes. Errors name the field.
    fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        let Some((uids, gids)) = self.maps else {
            return Ok(());
        };
        for (field, map, other) in [
            ("uidMappings", uids, "gidMappings"),
            ("gidMappings", gids, "uidMappings"),
        ] {
            if map.is_empty() {
                return Err((
                    field,
                    format!("is needed with {other}: give both, or neither to use the container's user namespace maps"),
                ));
            }
            berth_sys::userns::check_map(&ranges(map)).map_err(|e| (field, e))?;
        }
        Ok(())
    }
}

/// OCI id mappings as the kernel's map lines.
pub fn ranges(maps: &[LinuxIdMapping]) -> Vec<berth_sys::userns::IdRange> {
    maps.iter()
        .map(|m| berth_sys::userns::IdRange {
            inner: m.container_id(),
            outer: m.host_id(),
            size: m.size(),
        })
        .collect()
}

/// Whether a mount is idmapped, and how: asked by `idmap`/`ridmap` or by
/// giving mappings (runc takes mappings without the option as `idmap`).
/// Empty mapping lists count as none (runtime-spec 1.2).
pub fn idmap_of<'a>(m: &'a Mount, o: &MountOptions) -> Option<Idmap<'a>> {
    let uids = m.uid_mappings().as_deref().unwrap_or_default();
    let gids = m.gid_mappings().as_deref().unwrap_or_default();
    let has_maps = !uids.is_empty() || !gids.is_empty();
    if o.idmap.is_none() && !has_maps {
        return None;
    }
    Some(Idmap {
        recursive: o.idmap == Some(true),
        maps: has_maps.then_some((uids, gids)),
    })
}

/// Paths under /proc that may be mounted over (lxcfs does this), as runc allows.
const PROC_OVERRIDES: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// The type of a mount, defaulting to "bind" for bind options.
pub fn mount_type(m: &Mount, o: &MountOptions) -> String {
    match m.typ().as_deref() {
        Some(t) if !t.is_empty() && t != "none" => t.to_string(),
        _ if o.is_bind() => "bind".into(),
        Some(t) if !t.is_empty() => t.to_string(),
        _ => "none".into(),
    }
}

/// Checks one mount entry.
pub fn validate(i: usize, m: &Mount) -> Result<()> {
    let dest = m.destination();
    if dest.as_os_str().is_empty() {
        return Err(config(format!("mounts[{i}].destination"), "is required"));
    }
    let clean = clean_path(dest);
    if clean == Path::new("/") {
        return Err(config(
            format!("mounts[{i}].destination"),
            "cannot mount over the container's root",
        ));
    }
    let o = parse_options(m.options().as_deref().unwrap_or_default()).map_err(|e| {
        let (idx, msg) = e.split_once('\0').unwrap_or(("", e.as_str()));
        config(format!("mounts[{i}].options{idx}"), msg.to_string())
    })?;
    let typ = mount_type(m, &o);
    if let Some(idm) = idmap_of(m, &o) {
        if !(typ == "bind" || o.is_bind()) {
            return Err(config(
                format!("mounts[{i}]"),
                format!("an idmapped mount (idmap, ridmap, uidMappings) must be a bind mount, not {typ}"),
            ));
        }
        idm.check()
            .map_err(|(f, msg)| config(format!("mounts[{i}].{f}"), msg))?;
    }
    if (typ == "bind" || o.is_bind())
        && m.source().as_ref().is_none_or(|s| s.as_os_str().is_empty())
    {
        return Err(config(
            format!("mounts[{i}].source"),
            "a bind mount needs a source",
        ));
    }
    // CVE-2019-16884 class: nothing but a real procfs at /proc, and only a
    // few well-known files over parts of it.
    if clean == Path::new("/proc") {
        if typ != "proc" {
            return Err(config(
                format!("mounts[{i}]"),
                format!("only procfs may be mounted at /proc, not {typ}"),
            ));
        }
    } else if clean.starts_with("/proc") && !PROC_OVERRIDES.iter().any(|p| clean == Path::new(p)) {
        return Err(config(
            format!("mounts[{i}]"),
            format!(
                "{} is under /proc and is not a path that may be mounted over",
                clean.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse_options(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_and_data() {
        let o = p(&["nosuid", "noexec", "nodev", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MS_NOSUID | MS_NOEXEC | MS_NODEV);
        assert_eq!(o.data_string().as_deref(), Some("mode=755,size=65536k"));
        assert!(!o.is_bind());
    }

    #[test]
    fn later_options_win() {
        let o = p(&["ro", "rw"]);
        assert_eq!(o.flags & MS_RDONLY, 0);
        assert_eq!(o.attr.attr_clr & MOUNT_ATTR_RDONLY, MOUNT_ATTR_RDONLY);
        assert_eq!(o.attr.attr_set & MOUNT_ATTR_RDONLY, 0);
    }

    #[test]
    fn recursive_options() {
        let o = p(&["rbind", "rro", "rnosuid", "rprivate"]);
        assert!(o.rbind);
        assert_eq!(o.rec_attr.attr_set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID);
        assert_eq!(o.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
    }

    #[test]
    fn atime_modes() {
        let o = p(&["noatime"]);
        assert_eq!(o.attr.attr_clr & MOUNT_ATTR__ATIME, MOUNT_ATTR__ATIME);
        assert_eq!(o.attr.attr_set, MOUNT_ATTR_NOATIME);
        assert_eq!(o.flags, libc::MS_NOATIME);
    }

    #[test]
    fn every_known_option_parses() {
        for k in KNOWN_OPTIONS {
            let o = p(&[k]);
            assert!(o.data.is_empty(), "{k} fell through to data");
        }
    }

    #[test]
    fn bad_options() {
        assert!(parse_options(&["".into()]).is_err());
        assert!(parse_options(&["a\0b".into()]).is_err());
    }

    fn mount(v: serde_json::Value) -> Mount {
        serde_json::from_value(v).unwrap()
    }

    fn field(r: Result<()>) -> String {
        match r {
            Err(crate::error::Error::Config { field, msg }) => format!("{field}: {msg}"),
            other => panic!("not a config error: {other:?}"),
        }
    }

    #[test]
    fn idmap_options() {
        assert_eq!(p(&["rbind", "idmap"]).idmap, Some(false));
        assert_eq!(p(&["rbind", "ridmap"]).idmap, Some(true));
        assert_eq!(p(&["ridmap", "idmap"]).idmap, Some(false));
        assert_eq!(p(&["rbind"]).idmap, None);
        let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        let m = mount(
            serde_json::json!({"destination": "/x", "source": "/tmp", "options": ["rbind"], "uidMappings": map, "gidMappings": map}),
        );
        let o = p(&["rbind"]);
        let idm = idmap_of(&m, &o).expect("mappings alone make an idmapped mount");
        assert!(!idm.recursive);
        assert_eq!(idm.maps.map(|(u, g)| (u.len(), g.len())), Some((1, 1)));
        let m = mount(
            serde_json::json!({"destination": "/x", "source": "/tmp", "options": ["rbind", "ridmap"], "uidMappings": []}),
        );
        let idm = idmap_of(&m, &p(&["rbind", "ridmap"])).unwrap();
        assert!(idm.recursive);
        assert_eq!(idm.maps, None, "empty mappings are the container's");
        assert!(validate(0, &m).is_ok());
    }

    #[test]
    fn hostile_idmapped_mounts_are_refused_naming_the_field() {
        let ok = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        let cases = [
            (
                serde_json::json!({"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}),
                "mounts[3]: an idmapped mount (idmap, ridmap, uidMappings) must be a bind mount, not tmpfs",
            ),
            (
                serde_json::json!({"destination": "/x", "source": "/tmp", "options": ["bind"], "uidMappings": ok}),
                "mounts[3].gidMappings: is needed with uidMappings",
            ),
            (
                serde_json::json!({"destination": "/x", "source": "/tmp", "options": ["bind", "idmap"], "uidMappings": ok,
                    "gidMappings": [{"containerID": 0, "hostID": 1, "size": 0}]}),
                "mounts[3].gidMappings: [0]: size must be greater than zero",
            ),
            (
                serde_json::json!({"destination": "/x", "source": "/tmp", "options": ["bind", "idmap"], "gidMappings": ok,
                    "uidMappings": [{"containerID": 0, "hostID": 4294967295u32, "size": 2}]}),
                "mounts[3].uidMappings: [0]: 2 ids from 0 (inside) or 4294967295 (outside) go past",
            ),
            (
                serde_json::json!({"destination": "/x", "source": "/tmp", "options": ["bind", "idmap"], "gidMappings": ok,
                    "uidMappings": [{"containerID": 0, "hostID": 0, "size": 10}, {"containerID": 5, "hostID": 50, "size": 1}]}),
                "mounts[3].uidMappings: [1]: its inside ids overlap those of [0]",
            ),
        ];
        for (m, want) in cases {
            let got = field(validate(3, &mount(m)));
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
        }
    }
}
