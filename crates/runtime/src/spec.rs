//! `spec`: the default config.json, as `runc spec` writes it.

use oci_spec::runtime::{
    LinuxIdMappingBuilder, LinuxNamespaceType, ProcessBuilder, RootBuilder, Spec, UserBuilder,
};

/// A config for a rootfs in `./rootfs` that runs `sh` on a terminal. With
/// `rootless`, the container gets a user namespace mapping root to the
/// caller's uid and gid, and no network namespace or cgroup limits.
pub fn default_spec(rootless: bool) -> Spec {
    let mut spec = Spec::default();
    spec.set_version(crate::config::OCI_VERSION.to_string());
    spec.set_root(
        RootBuilder::default()
            .path("rootfs")
            .readonly(true)
            .build()
            .ok(),
    );
    let mut process = spec
        .process()
        .clone()
        .unwrap_or_else(|| ProcessBuilder::default().build().unwrap_or_default());
    process.set_terminal(Some(true));
    process.set_args(Some(vec!["sh".to_string()]));
    process.set_user(
        UserBuilder::default()
            .uid(0u32)
            .gid(0u32)
            .build()
            .unwrap_or_default(),
    );
    spec.set_process(Some(process));
    spec.set_hostname(Some("berth".to_string()));
    // As runc's: deny every device but the container's own (the runtime
    // adds allow rules for the default devices and linux.devices).
    if let Some(mut linux) = spec.linux().clone() {
        let mut res = linux.resources().clone().unwrap_or_default();
        res.set_devices(Some(vec![deny_all_devices()]));
        linux.set_resources(Some(res));
        spec.set_linux(Some(linux));
    }
    if rootless {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut linux = spec.linux().clone().unwrap_or_default();
        let mut ns = linux.namespaces().clone().unwrap_or_default();
        ns.retain(|n| n.typ() != LinuxNamespaceType::Network);
        ns.push(
            oci_spec::runtime::LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()
                .unwrap_or_default(),
        );
        linux.set_namespaces(Some(ns));
        let map = |host: u32| {
            vec![LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host)
                .size(1u32)
                .build()
                .unwrap_or_default()]
        };
        linux.set_uid_mappings(Some(map(uid)));
        linux.set_gid_mappings(Some(map(gid)));
        linux.set_resources(None);
        spec.set_linux(Some(linux));
        if let Some(mounts) = spec.mounts().clone() {
            // A user namespace cannot mount sysfs without its own network
            // namespace, nor set gid= on devpts for an unmapped group.
            let mounts = mounts
                .into_iter()
                .map(|mut m| {
                    if let Some(opts) = m.options().clone() {
                        m.set_options(Some(
                            opts.into_iter()
                                .filter(|o| !o.starts_with("gid="))
                                .collect(),
                        ));
                    }
                    if m.destination().as_os_str() == "/sys" {
                        m.set_typ(Some("none".into()));
                        m.set_source(Some("/sys".into()));
                        m.set_options(Some(vec![
                            "rbind".into(),
                            "nosuid".into(),
                            "noexec".into(),
                            "nodev".into(),
                            "ro".into(),
                        ]));
                    }
                    m
                })
                .collect();
            spec.set_mounts(Some(mounts));
        }
    }
    spec
}

fn deny_all_devices() -> oci_spec::runtime::LinuxDeviceCgroup {
    let mut d = oci_spec::runtime::LinuxDeviceCgroup::default();
    d.set_allow(false);
    d.set_typ(None);
    d.set_major(None);
    d.set_minor(None);
    d.set_access(Some("rwm".to_string()));
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_valid() {
        for rootless in [false, true] {
            let s = default_spec(rootless);
            crate::config::validate(&s).unwrap();
        }
    }

    #[test]
    fn default_spec_denies_devices_like_runc() {
        let s = default_spec(false);
        let devices = s
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.devices().clone())
            .unwrap();
        assert_eq!(devices, vec![deny_all_devices()]);
        let v = serde_json::to_value(&devices[0]).unwrap();
        assert_eq!(v, serde_json::json!({"allow": false, "access": "rwm"}));
    }
}
