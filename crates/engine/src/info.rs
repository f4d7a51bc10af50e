//! `info` and `version`: what to paste into a bug report.

use crate::containers::Engine;
use crate::records::Status;
use crate::Result;
use serde::{Deserialize, Serialize};

/// The versions of one component (berth's CLI or engine).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComponentVersion {
    pub version: String,
    /// The compiler that built it (`rustc 1.xx.y (...)`).
    pub rust_version: String,
    /// Empty when not built from a git checkout.
    pub git_commit: String,
    pub os: String,
    pub arch: String,
}

/// This build of berth (the engine is linked into every berth program).
pub fn version() -> ComponentVersion {
    ComponentVersion {
        version: env!("CARGO_PKG_VERSION").into(),
        rust_version: env!("BERTH_RUSTC_VERSION").into(),
        git_commit: env!("BERTH_GIT_COMMIT").into(),
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
    }
}

/// `berth info`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Info {
    pub version: String,
    pub root: String,
    pub run_root: String,
    pub storage_driver: String,
    /// "1", "2", or "1 (hybrid)" (v1 controllers with a cgroup2 mount).
    pub cgroup_version: String,
    pub cgroup_driver: String,
    pub default_runtime: String,
    /// The default runtime's `--version` first line (empty when it is not
    /// found; `runtime_error` then says why).
    pub runtime_version: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub runtime_error: String,
    pub kernel_version: String,
    pub operating_system: String,
    pub architecture: String,
    #[serde(rename = "NCPU")]
    pub ncpu: usize,
    /// Bytes.
    pub mem_total: u64,
    pub containers: usize,
    pub containers_running: usize,
    pub containers_paused: usize,
    pub containers_stopped: usize,
    pub images: usize,
}

impl Engine {
    /// The host, the store and the containers, as `berth info` shows them.
    pub fn info(&self) -> Result<Info> {
        let list = self.list()?;
        let running = |p: bool| {
            list.iter()
                .filter(|r| {
                    matches!(r.state.status, Status::Running | Status::Restarting)
                        && r.state.paused == p
                })
                .count()
        };
        let (containers_running, containers_paused) = (running(false), running(true));
        let images = self.images.images()?.len();
        let cgroup_version = match berth_cgroups::Layout::from_host().map(|l| l.version()) {
            Ok(berth_cgroups::Version::V1) => "1",
            Ok(berth_cgroups::Version::V2) => "2",
            Ok(berth_cgroups::Version::Hybrid) => "1 (hybrid)",
            Err(_) => "unknown",
        };
        let rt = crate::specgen::DEFAULT_RUNTIME;
        let (runtime_version, runtime_error) = match self.oci.version(rt) {
            Ok(v) => (v, String::new()),
            Err(e) => (String::new(), e.to_string()),
        };
        Ok(Info {
            version: env!("CARGO_PKG_VERSION").into(),
            root: self.paths.root.display().to_string(),
            run_root: self.paths.run_root.display().to_string(),
            storage_driver: "overlay".into(),
            cgroup_version: cgroup_version.into(),
            cgroup_driver: "cgroupfs".into(),
            default_runtime: rt.into(),
            runtime_version,
            runtime_error,
            kernel_version: kernel_release(),
            operating_system: os_name(),
            architecture: std::env::consts::ARCH.into(),
            ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_total: mem_total(),
            containers: list.len(),
            containers_running,
            containers_paused,
            containers_stopped: list.len() - containers_running - containers_paused,
            images,
        })
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// PRETTY_NAME of /etc/os-release.
fn os_name() -> String {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    pretty_name(&text).unwrap_or_else(|| std::env::consts::OS.into())
}

fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        let v = l.strip_prefix("PRETTY_NAME=")?;
        Some(v.trim().trim_matches('"').to_string())
    })
}

/// MemTotal of /proc/meminfo, in bytes.
fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let kb = l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
                kb.trim().parse::<u64>().ok()
            })
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_os_is_its_pretty_name() {
        let t = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(
            super::pretty_name(t).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(super::pretty_name("ID=x\n"), None);
        let v = super::version();
        assert!(v.rust_version.starts_with("rustc "), "{v:?}");
        assert!(!v.version.is_empty());
    }
}
