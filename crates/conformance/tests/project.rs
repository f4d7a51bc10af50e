//! Project rules that a test can check: docs/ARCHITECTURE.md names files
//! that exist, and crate dependencies only point down the layers.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

#[test]
fn architecture_doc_names_existing_files() {
    let root = workspace();
    let doc =
        std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md");
    let mut named = 0;
    for part in doc.split('`').skip(1).step_by(2) {
        let path = part.split(&[':', ' '][..]).next().unwrap_or_default();
        if path.starts_with("crates/") || path.starts_with("scripts/") || path.starts_with("bench/")
        {
            named += 1;
            assert!(
                root.join(path).exists(),
                "docs/ARCHITECTURE.md names {path}, which does not exist"
            );
        }
    }
    assert!(
        named >= 10,
        "the walk-through should point at the code ({named} paths found)"
    );
}

/// Which workspace crates each crate may depend on (HOUSE.md layers).
const ALLOWED: &[(&str, &[&str])] = &[
    ("berth-sys", &[]),
    ("berth-cgroups", &["berth-sys"]),
    ("berth-seccomp", &[]),
    (
        "berth-runtime",
        &["berth-sys", "berth-cgroups", "berth-seccomp"],
    ),
    ("berth-runtime-cli", &["berth-runtime"]),
    ("berth-image", &["berth-sys"]),
    // cgroups: the host's layout (to start a runtime's cgroup wait early);
    // seccomp: the engine turns containers-common profiles into specs;
    // monitor: the formats it shares with the monitor (the monitor itself
    // is a separate process, started as a program).
    (
        "berth-engine",
        &[
            "berth-sys",
            "berth-cgroups",
            "berth-seccomp",
            "berth-image",
            "berth-monitor",
        ],
    ),
    // Image commands call the image library directly (as podman's CLI
    // does); container commands go through crates/engine.
    (
        "berth-cli",
        &["berth-image", "berth-engine", "berth-monitor"],
    ),
    // sys: the signal reset between fork and exec, shared with the monitor.
    ("berth-init", &["berth-sys"]),
    // runtime: the monitor deletes berth-runtime's containers through its
    // library (a process start less at every exit).
    ("berth-monitor", &["berth-sys", "berth-runtime"]),
    ("berth-conformance", &[]),
];

#[test]
fn dependencies_point_down() {
    let root = workspace();
    for (krate, allowed) in ALLOWED {
        let dir = match *krate {
            "berth-sys" => "sys",
            "berth-cgroups" => "cgroups",
            "berth-seccomp" => "seccomp",
            "berth-runtime" => "runtime",
            "berth-runtime-cli" => "runtime-cli",
            "berth-image" => "image",
            "berth-engine" => "engine",
            "berth-init" => "init",
            "berth-monitor" => "monitor",
            "berth-cli" => "cli",
            _ => "conformance",
        };
        let manifest =
            std::fs::read_to_string(root.join("crates").join(dir).join("Cargo.toml")).unwrap();
        for line in manifest.lines() {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            // A crate may name itself (a dev-dependency enabling its
            // test-only features).
            if name.starts_with("berth-") && !line.starts_with("name") && name != *krate {
                assert!(
                    allowed.contains(&name),
                    "{krate} depends on {name}, which its layer may not use"
                );
            }
        }
    }
    // Every workspace member is covered.
    let ws = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members_list = ws
        .split("members = [")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or_default();
    let members = members_list.matches("\"crates/").count();
    assert_eq!(
        members,
        ALLOWED.len(),
        "a new crate needs its row in ALLOWED"
    );
}

#[test]
fn no_threads_in_the_runtime() {
    // The runtime forks with clone3: a thread anywhere would make that
    // unsafe. Nothing in its source may start one.
    let root = workspace();
    for dir in [
        "crates/runtime/src",
        "crates/runtime-cli/src",
        "crates/sys/src",
        "crates/cgroups/src",
    ] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap();
            for bad in ["thread::spawn", "thread::scope", "tokio", "rayon"] {
                assert!(!text.contains(bad), "{} uses {bad}", e.path().display());
            }
        }
    }
}
