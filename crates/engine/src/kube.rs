//! What `berth kube play` needs of the engine beyond containers and pods
//! (the translation is berth-kube's, the order of operations the CLI's):
//! volumes made for one pod and filled with a ConfigMap's or Secret's
//! files, and the lock that serializes plays of one object.

use crate::containers::Lock;
use crate::error::{io, option, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// A file to put in a volume: a clean relative path, its bytes, its mode.
pub struct VolumeFile<'a> {
    pub path: &'a str,
    pub data: &'a [u8],
    pub mode: u32,
}

fn clean_rel(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\0')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// An object's name as a file name (`Deployment/web`: `Deployment_web`).
fn object_key(object: &str) -> String {
    object
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl crate::Engine {
    /// The lock of one manifest object (`Deployment/web`): plays of it
    /// take turns.
    pub fn kube_lock(&self, object: &str) -> Result<Lock> {
        self.lock(&format!("kube-{}", object_key(object)))
    }

    /// Where the replicas the last play of `object` wanted are kept:
    /// `<root>/kube/Kind_name` (persistent, as the pods are), a decimal
    /// number.
    fn kube_desired_path(&self, object: &str) -> std::path::PathBuf {
        self.paths.root.join("kube").join(object_key(object))
    }

    /// The replicas the last play of `object` wanted (`kube ls`), if a
    /// play recorded them.
    pub fn kube_desired(&self, object: &str) -> Option<u32> {
        std::fs::read_to_string(self.kube_desired_path(object))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Records the replicas a play of `object` wants (under its
    /// `kube_lock`): written to a new file renamed over the old one.
    pub fn kube_set_desired(&self, object: &str, n: u32) -> Result<()> {
        if self.kube_desired(object) == Some(n) {
            return Ok(());
        }
        let p = self.kube_desired_path(object);
        let dir = self.paths.root.join("kube");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io(format!("create {}", dir.display())))?;
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, format!("{n}\n")).map_err(io(format!("write {}", tmp.display())))?;
        std::fs::rename(&tmp, &p).map_err(io(format!("rename {}", p.display())))
    }

    /// Forgets what `kube_set_desired` recorded (`kube down`).
    pub fn kube_forget(&self, object: &str) -> Result<()> {
        let p = self.kube_desired_path(object);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(format!("remove {}", p.display()))(e))
            }
            _ => Ok(()),
        }
    }

    /// Makes the volume `name` anew (what a previous pod of the name left
    /// in it is removed: no container has used the new one yet, so its
    /// directory holds nothing a container planted) and writes `files`.
    /// An existing volume of the name must carry `labels` (made for the
    /// same pod). `options` are the local driver's (a tmpfs volume).
    /// `dir_owner`: the mode and group of the volume's directory (an emptyDir's,
    /// as the kubelet makes it), else the volume's default.
    pub fn kube_fill_volume(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        options: &BTreeMap<String, String>,
        dir_owner: Option<(u32, Option<u32>)>,
        files: &[VolumeFile],
    ) -> Result<()> {
        if let Ok(v) = self.records.volume(name) {
            // Only a volume made for a pod of this name is made anew: a
            // user's volume of the name is left alone.
            if !labels.iter().all(|(k, x)| v.labels.get(k) == Some(x)) {
                return Err(crate::Error::Conflict(format!(
                    "volume {name} exists and was not made by kube play for this pod: remove or rename it"
                )));
            }
            self.remove_volume(name)?;
        }
        let dir = self.paths.volume(name);
        crate::volume_opts::unmount(name, &dir)?;
        if dir.exists() {
            berth_image::remove_all(&dir)?;
        }
        self.create_volume_with(name, labels, false, options)?;
        let data = self.paths.volume_data(name);
        if let Some((mode, gid)) = dir_owner {
            // berth's own directory, just made: no container has seen it.
            if gid.is_some() {
                std::os::unix::fs::chown(&data, None, gid)
                    .map_err(io(format!("volume {name}: chown {}", data.display())))?;
            }
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(io(format!("volume {name}: chmod {}", data.display())))?;
        }
        for f in files {
            if !clean_rel(f.path) {
                return Err(option(
                    "volume",
                    format!(
                        "volume {name}: {:?} is not a relative path without '..'",
                        f.path
                    ),
                ));
            }
            let path = data.join(f.path);
            if let Some(parent) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(io(format!("volume {name}: create {}", parent.display())))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(io(format!("volume {name}: create {}", path.display())))?;
            file.write_all(f.data)
                .map_err(io(format!("volume {name}: write {}", path.display())))?;
            file.set_permissions(std::fs::Permissions::from_mode(f.mode & 0o777))
                .map_err(io(format!("volume {name}: chmod {}", path.display())))?;
        }
        Ok(())
    }
}

impl crate::Engine {
    /// A pod's addresses for `status.podIP(s)`: its infra's on the
    /// networks it joined (IPv4 first, in interface order), the host's for
    /// a pod on the host's network, none without a network.
    pub fn kube_pod_ips(&self, pod: &crate::pods::PodRecord) -> Vec<std::net::IpAddr> {
        if pod.spec.net == crate::specgen::NamespaceMode::Host {
            return host_ips();
        }
        let Some(infra) = &pod.infra_id else {
            return Vec::new();
        };
        let eps = self.network_store().endpoints_of(infra).unwrap_or_default();
        let mut v4: Vec<std::net::IpAddr> = Vec::new();
        let mut v6 = Vec::new();
        let mut eps = eps;
        eps.sort_by(|a, b| a.interface.cmp(&b.interface));
        for e in eps {
            v4.extend(e.ipv4.map(std::net::IpAddr::V4));
            v6.extend(e.ipv6.map(std::net::IpAddr::V6));
        }
        v4.extend(v6);
        v4
    }
}

/// The host's addresses for `status.hostIP(s)`: the source address of its
/// default routes (found by connecting a UDP socket, which sends nothing);
/// none without a default route. IPv4 first.
pub fn host_ips() -> Vec<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
    let mut out = Vec::new();
    for (bind, to) in [
        (
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        ),
        (
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        ),
    ] {
        let local = UdpSocket::bind((bind, 0))
            .and_then(|s| s.connect((to, 9)).and_then(|()| s.local_addr()));
        if let Ok(a) = local {
            if !a.ip().is_unspecified() && !a.ip().is_loopback() {
                out.push(a.ip());
            }
        }
    }
    out
}
