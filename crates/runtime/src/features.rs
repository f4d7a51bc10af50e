//! `features`: what this runtime supports, in the runtime-spec's
//! features.md schema. Engines read it to decide what to put in
//! config.json, so it must say only what truly works.

use crate::config::{OCI_VERSION, OCI_VERSION_MIN};
use crate::mounts::KNOWN_OPTIONS;
use crate::process_attrs::CAPS;
use serde_json::{json, Value};

pub fn features() -> Value {
    let sc = berth_seccomp::features();
    json!({
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": KNOWN_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": CAPS,
            "cgroup": {
                "v1": true,
                "v2": true,
                "systemd": false,
                "systemdUser": false,
                "rdma": true
            },
            "seccomp": {
                "enabled": true,
                "actions": sc.actions,
                "operators": sc.operators,
                "archs": sc.archs,
                "knownFlags": sc.known_flags,
                "supportedFlags": sc.supported_flags
            },
            "apparmor": { "enabled": true },
            "selinux": { "enabled": true },
            "intelRdt": { "enabled": false },
            // Idmapped bind mounts (idmap, ridmap, uidMappings): the kernel
            // has mount_setattr. Whether a given filesystem takes them is
            // known only when one is made (refused then, clearly).
            "mountExtensions": { "idmap": { "enabled": berth_sys::mount::has_mount_setattr() } }
        },
        "annotations": {
            "io.github.berth.runtime.version": env!("CARGO_PKG_VERSION")
        },
        "potentiallyUnsafeConfigAnnotations": []
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_as_oci_features() {
        let v = super::features();
        let f: oci_spec::runtime::Features = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(f.oci_version_max(), super::OCI_VERSION);
        let idmap = &v["linux"]["mountExtensions"]["idmap"]["enabled"];
        assert_eq!(idmap, berth_sys::mount::has_mount_setattr());
        let opts = v["mountOptions"].as_array().unwrap();
        assert!(opts.contains(&"idmap".into()) && opts.contains(&"ridmap".into()));
    }
}
