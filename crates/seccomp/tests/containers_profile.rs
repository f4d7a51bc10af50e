//! The profile Docker and Podman use by default (containers-common's
//! /usr/share/containers/seccomp.json, installed with podman), converted
//! for Docker's capability set on this machine and compiled.

use berth_seccomp::profile::{for_container, native_arch};

const PROFILE: &str = "/usr/share/containers/seccomp.json";
const DOCKER_CAPS: [&str; 14] = berth_sys::caps::DOCKER_DEFAULT;

#[test]
fn the_containers_default_profile_converts_and_compiles() {
    let data = std::fs::read(PROFILE).unwrap_or_else(|e| {
        panic!("{PROFILE}: {e} (apt-get install podman, which brings containers-common)")
    });
    let caps: Vec<String> = DOCKER_CAPS.iter().map(|s| s.to_string()).collect();
    let s = for_container(&data, native_arch(), &caps, (6, 1)).unwrap();
    let names: Vec<String> = s
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|r| r.names().clone())
        .collect();
    assert!(names.len() > 300, "{} names", names.len());
    assert!(names.iter().any(|n| n == "read"));
    // bpf is allowed only to CAP_SYS_ADMIN holders: for Docker's set the
    // only rule naming it is the ERRNO one.
    let bpf_actions = |s: &oci_spec::runtime::LinuxSeccomp| -> Vec<String> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names().iter().any(|n| n == "bpf"))
            .map(|r| format!("{:?}", r.action()))
            .collect()
    };
    assert_eq!(bpf_actions(&s), ["ScmpActErrno"]);
    let f = berth_seccomp::compile(&s).unwrap();
    assert!(f.program.len() > 100);
    let mut more = caps.clone();
    more.push("CAP_SYS_ADMIN".into());
    let s = for_container(&data, native_arch(), &more, (6, 1)).unwrap();
    assert_eq!(bpf_actions(&s), ["ScmpActAllow"]);
}
