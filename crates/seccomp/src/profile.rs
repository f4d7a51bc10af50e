//! Seccomp profiles in the format Docker, Podman and containers-common
//! ship (`/usr/share/containers/seccomp.json`): rules that apply only to
//! some architectures, capabilities or kernels, and an `archMap` of
//! sub-architectures. [`for_container`] turns one into the OCI
//! `linux.seccomp` object for a given architecture, capability set and
//! kernel, the way Docker and Podman do when they write a container's
//! config, so that the engine (and the benchmarks) can use the profile
//! people already rely on without berth carrying a copy of it.

use crate::{invalid, Error};
use oci_spec::runtime::LinuxSeccomp;
use serde_json::{json, Value};

/// berth's built-in default profile, used where no profile file is
/// installed (a machine without containers-common): the rules of
/// containers-common's default profile (Podman's, itself derived from
/// Docker's; Apache-2.0), normalised (names sorted, comments dropped), so
/// that a container is confined the same with or without that package.
/// `tests::the_built_in_default_is_containers_commons` compares the two
/// where the package is installed.
pub const DEFAULT_PROFILE: &[u8] = include_bytes!("default.json");

/// The version of [`for_container`]'s output: bumped whenever the same
/// inputs would convert differently, so that conversions kept by the
/// engine are made again.
pub const CONVERSION: &str = "1";

/// Go's architecture name (what profiles use in `includes.arches`) for
/// this build's target, and its libseccomp name.
pub fn native_arch() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
        "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
        "x86" => ("386", "SCMP_ARCH_X86"),
        "arm" => ("arm", "SCMP_ARCH_ARM"),
        "powerpc64" => ("ppc64le", "SCMP_ARCH_PPC64LE"),
        "s390x" => ("s390x", "SCMP_ARCH_S390X"),
        "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
        other => (other, "SCMP_ARCH_NATIVE"),
    }
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn kernel_at_least(have: (u32, u32), want: &str) -> Result<bool, Error> {
    let mut it = want.split('.').map(|p| p.parse::<u32>());
    match (it.next(), it.next()) {
        (Some(Ok(maj)), Some(Ok(min))) => Ok(have >= (maj, min)),
        _ => Err(invalid(
            "includes.minKernel",
            format!("{want:?} is not MAJOR.MINOR"),
        )),
    }
}

/// The OCI seccomp object for a container on `arch` (Go's name, with its
/// libseccomp name) with capabilities `caps` (bounding set), on kernel
/// `kernel` (major, minor). A rule is kept when every capability it
/// includes is held, none it excludes is, the architecture matches, and
/// the kernel is at least its `minKernel`.
pub fn for_container(
    profile: &[u8],
    arch: (&str, &str),
    caps: &[String],
    kernel: (u32, u32),
) -> Result<LinuxSeccomp, Error> {
    let p: Value = serde_json::from_slice(profile)
        .map_err(|e| invalid("seccomp profile", format!("not JSON: {e}")))?;
    let default = p["defaultAction"]
        .as_str()
        .ok_or_else(|| invalid("seccomp profile", "no defaultAction"))?;
    let mut arches = vec![arch.1.to_string()];
    for m in p["archMap"].as_array().into_iter().flatten() {
        if m["architecture"].as_str() == Some(arch.1) {
            arches.extend(strs(&m["subArchitectures"]).into_iter().map(str::to_string));
        }
    }
    let has = |c: &str| caps.iter().any(|h| h == c);
    let mut rules = Vec::new();
    for (i, r) in p["syscalls"].as_array().into_iter().flatten().enumerate() {
        let (inc, exc) = (&r["includes"], &r["excludes"]);
        let inc_arches = strs(&inc["arches"]);
        if !inc_arches.is_empty() && !inc_arches.contains(&arch.0) {
            continue;
        }
        if strs(&exc["arches"]).contains(&arch.0) {
            continue;
        }
        if !strs(&inc["caps"]).iter().all(|c| has(c)) {
            continue;
        }
        if strs(&exc["caps"]).iter().any(|c| has(c)) {
            continue;
        }
        if let Some(min) = inc["minKernel"].as_str().filter(|m| !m.is_empty()) {
            if !kernel_at_least(kernel, min)? {
                continue;
            }
        }
        let names: Vec<&str> = match r["names"].as_array() {
            Some(_) => strs(&r["names"]),
            None => r["name"].as_str().into_iter().collect(),
        };
        if names.is_empty() {
            return Err(invalid(format!("syscalls[{i}]"), "a rule without names"));
        }
        let mut rule = json!({"names": names, "action": r["action"]});
        if let Some(args) = r["args"].as_array().filter(|a| !a.is_empty()) {
            rule["args"] = Value::Array(
                args.iter()
                    .map(|a| {
                        let mut o =
                            json!({"index": a["index"], "value": a["value"], "op": a["op"]});
                        if let Some(v2) = a.get("valueTwo").filter(|v| !v.is_null()) {
                            o["valueTwo"] = v2.clone();
                        }
                        o
                    })
                    .collect(),
            );
        }
        if let Some(e) = r.get("errnoRet").filter(|v| !v.is_null()) {
            rule["errnoRet"] = e.clone();
        }
        rules.push(rule);
    }
    let mut out = json!({"defaultAction": default, "architectures": arches, "syscalls": rules});
    if let Some(e) = p.get("defaultErrnoRet").filter(|v| !v.is_null()) {
        out["defaultErrnoRet"] = e.clone();
    }
    serde_json::from_value(out).map_err(|e| invalid("seccomp profile", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
            {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm"]}},
            {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]},
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["landlock_create_ruleset"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.13"}}
        ]
    }"#;

    fn names(s: &LinuxSeccomp) -> Vec<String> {
        s.syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names().clone())
            .collect()
    }

    #[test]
    fn rules_follow_arch_caps_and_kernel() {
        let docker_caps = vec!["CAP_CHOWN".to_string(), "CAP_NET_RAW".to_string()];
        let s = for_container(
            PROFILE.as_bytes(),
            ("amd64", "SCMP_ARCH_X86_64"),
            &docker_caps,
            (6, 1),
        )
        .unwrap();
        assert_eq!(
            names(&s),
            [
                "read",
                "write",
                "arch_prctl",
                "clone",
                "clone3",
                "landlock_create_ruleset"
            ]
        );
        assert_eq!(s.architectures().as_ref().unwrap().len(), 3);
        assert_eq!(s.default_errno_ret(), Some(38));
        let clone = &s.syscalls().as_ref().unwrap()[2];
        assert_eq!(clone.args().as_ref().unwrap()[0].value(), 2114060288);
        // With CAP_SYS_ADMIN, on an old kernel, on arm.
        let admin = vec!["CAP_SYS_ADMIN".to_string()];
        let s =
            for_container(PROFILE.as_bytes(), ("arm", "SCMP_ARCH_ARM"), &admin, (5, 4)).unwrap();
        assert_eq!(names(&s), ["read", "write", "set_tls", "bpf"]);
        assert_eq!(s.architectures().as_ref().unwrap().len(), 1);
    }

    #[test]
    fn malformed_profiles_are_refused() {
        assert!(for_container(b"{", ("amd64", "SCMP_ARCH_X86_64"), &[], (6, 1)).is_err());
        assert!(for_container(b"{}", ("amd64", "SCMP_ARCH_X86_64"), &[], (6, 1)).is_err());
        let bad_kernel = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["x"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "new"}}]}"#;
        assert!(for_container(
            bad_kernel.as_bytes(),
            ("amd64", "SCMP_ARCH_X86_64"),
            &[],
            (6, 1)
        )
        .is_err());
        let bad_action = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["x"], "action": "SCMP_ACT_NONSENSE"}]}"#;
        assert!(for_container(
            bad_action.as_bytes(),
            ("amd64", "SCMP_ARCH_X86_64"),
            &[],
            (6, 1)
        )
        .is_err());
    }

    #[test]
    fn the_built_in_default_is_containers_commons() {
        const INSTALLED: &str = "/usr/share/containers/seccomp.json";
        let installed = std::fs::read(INSTALLED).unwrap_or_else(|e| {
            panic!("{INSTALLED}: {e} (apt-get install containers-common, which podman brings)")
        });
        let caps = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let docker_default = caps(&berth_sys::caps::DOCKER_DEFAULT);
        let more = caps(&[
            "CAP_SYS_ADMIN",
            "CAP_SYS_PTRACE",
            "CAP_DAC_READ_SEARCH",
            "CAP_SYS_TIME",
        ]);
        for arch in [
            ("amd64", "SCMP_ARCH_X86_64"),
            ("arm64", "SCMP_ARCH_AARCH64"),
            ("s390x", "SCMP_ARCH_S390X"),
        ] {
            for c in [&docker_default, &more, &Vec::new()] {
                for kernel in [(4, 19), (6, 1)] {
                    let ours = for_container(DEFAULT_PROFILE, arch, c, kernel).unwrap();
                    let theirs = for_container(&installed, arch, c, kernel).unwrap();
                    assert_eq!(
                        serde_json::to_value(&ours).unwrap(),
                        serde_json::to_value(&theirs).unwrap(),
                        "{arch:?} {c:?} {kernel:?}"
                    );
                }
            }
        }
    }
}
