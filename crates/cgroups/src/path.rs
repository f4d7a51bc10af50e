//! `linux.cgroupsPath`: absolute, relative, or systemd's `slice:prefix:name`.

use crate::{Error, Result};

/// Where the container's cgroup goes, relative to each hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupsPath {
    /// From the hierarchy's root.
    Absolute(String),
    /// From the runtime's own cgroup (runc and crun do the same).
    Relative(String),
}

impl CgroupsPath {
    /// Interprets the config value. Without one, the container goes to
    /// `/<id>`; with `--systemd-cgroup`, to the scope systemd would make.
    pub fn parse(value: Option<&str>, id: &str, systemd: bool) -> Result<CgroupsPath> {
        if systemd {
            let v = value
                .filter(|v| !v.is_empty())
                .map_or_else(|| format!("system.slice:berth:{id}"), str::to_string);
            return Ok(CgroupsPath::Absolute(systemd_to_path(&v)?));
        }
        match value {
            None | Some("") => Ok(CgroupsPath::Absolute(format!("/{id}"))),
            Some(v) if v.contains('\0') => Err(Error::BadPath(v.into(), "contains a NUL byte")),
            Some(v) if v.starts_with('/') => Ok(CgroupsPath::Absolute(v.to_string())),
            Some(v) => Ok(CgroupsPath::Relative(v.to_string())),
        }
    }
}

/// Converts systemd's `slice:prefix:name` to the cgroupfs path systemd would
/// create: `a-b.slice` nests as `/a.slice/a-b.slice`, the unit is
/// `prefix-name.scope` (or `name` itself when it is a slice).
pub fn systemd_to_path(value: &str) -> Result<String> {
    let parts: Vec<&str> = value.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(Error::BadPath(
            value.into(),
            "expected slice:prefix:name with --systemd-cgroup",
        ));
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut path = expand_slice(slice).map_err(|m| Error::BadPath(value.into(), m))?;
    if name.ends_with(".slice") {
        path.push('/');
        path.push_str(name);
    } else if prefix.is_empty() {
        path.push_str(&format!("/{name}.scope"));
    } else {
        path.push_str(&format!("/{prefix}-{name}.scope"));
    }
    if path.contains("..") {
        return Err(Error::BadPath(value.into(), "must not contain '..'"));
    }
    Ok(path)
}

fn expand_slice(slice: &str) -> std::result::Result<String, &'static str> {
    let base = slice
        .strip_suffix(".slice")
        .ok_or("the slice must end in .slice")?;
    if base == "-" {
        return Ok(String::new());
    }
    if base.contains('/') || base.starts_with('-') || base.ends_with('-') || base.contains("--") {
        return Err("invalid slice name");
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for comp in base.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(comp);
        path.push_str(&format!("/{prefix}.slice"));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_paths() {
        assert_eq!(
            systemd_to_path("system.slice:docker:abc").unwrap(),
            "/system.slice/docker-abc.scope"
        );
        assert_eq!(
            systemd_to_path("kubepods-burstable.slice:cri-containerd:x").unwrap(),
            "/kubepods.slice/kubepods-burstable.slice/cri-containerd-x.scope"
        );
        assert_eq!(systemd_to_path("-.slice::n.slice").unwrap(), "/n.slice");
        assert!(systemd_to_path("a:b").is_err());
        assert!(systemd_to_path("bad:b:c").is_err());
    }

    #[test]
    fn plain_paths() {
        assert_eq!(
            CgroupsPath::parse(None, "c1", false).unwrap(),
            CgroupsPath::Absolute("/c1".into())
        );
        assert_eq!(
            CgroupsPath::parse(Some("a/b"), "c1", false).unwrap(),
            CgroupsPath::Relative("a/b".into())
        );
        assert_eq!(
            CgroupsPath::parse(None, "c1", true).unwrap(),
            CgroupsPath::Absolute("/system.slice/berth-c1.scope".into())
        );
    }
}
