//! Project rules that a test can check: docs/ARCHITECTURE.md names files
//! that exist, and crate dependencies only point down the layers (read from
//! `cargo metadata`, so renamed and transitive dependencies count).

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

/// Which workspace crates each crate may depend on directly (HOUSE.md
/// layers), dev-dependencies included.
const ALLOWED: &[(&str, &[&str])] = &[
    ("berth-sys", &[]),
    ("berth-cgroups", &["berth-sys"]),
    ("berth-seccomp", &["berth-sys"]),
    (
        "berth-runtime",
        &["berth-sys", "berth-cgroups", "berth-seccomp"],
    ),
    ("berth-runtime-cli", &["berth-runtime"]),
    // The database (SQLite handle, schemas, migrations): below the image
    // store and the engine, which both keep tables in it.
    ("berth-db", &["berth-sys"]),
    ("berth-image", &["berth-sys", "berth-db"]),
    // The DNS responder (and the file format the engine writes for it):
    // standalone.
    ("berth-dns", &["berth-sys"]),
    // Bridges, veths, netns, nftables, IPAM (its tables in berth-db), and
    // the responder's file format.
    ("berth-network", &["berth-sys", "berth-db", "berth-dns"]),
    // The formats the engine and the monitor share; no runtime.
    ("berth-monitor-proto", &["berth-sys"]),
    // cgroups: the host's layout (to start a runtime's cgroup wait early);
    // seccomp: the engine turns containers-common profiles into specs;
    // monitor-proto: the formats it shares with the monitor (the monitor
    // itself is a separate process, started as a program).
    (
        "berth-engine",
        &[
            "berth-sys",
            "berth-cgroups",
            "berth-seccomp",
            "berth-image",
            "berth-db",
            "berth-monitor-proto",
            "berth-network",
            "berth-dns",
            // `berth build` runs the Dockerfile language's graph (pure).
            "berth-build",
        ],
    ),
    // Linked: the engine only (cli_goes_through_the_engine); the image
    // library and the monitor's protocol are its tests' dev-dependencies.
    (
        "berth-cli",
        &[
            "berth-image",
            "berth-engine",
            "berth-monitor-proto",
            "berth-api",
            "berth-kube",
        ],
    ),
    // The Docker API service: HTTP handlers over the engine (tokio and
    // hyper live here only).
    ("berth-api", &["berth-engine"]),
    // sys: the signal reset between fork and exec, shared with the monitor.
    ("berth-init", &["berth-sys"]),
    // runtime: the monitor deletes berth-runtime's containers through its
    // library (a process start less at every exit); cgroups: the host's
    // hierarchies, to leave its caller's cgroup (found without reading
    // mountinfo where they are at their usual places).
    (
        "berth-monitor",
        &[
            "berth-sys",
            "berth-cgroups",
            "berth-runtime",
            "berth-monitor-proto",
        ],
    ),
    ("berth-conformance", &[]),
    // The Dockerfile language (parser, expansion, .dockerignore, stage
    // graph): pure, no workspace crate.
    ("berth-build", &[]),
    // Kubernetes YAML to specs, pure: the engine's spec types, no I/O.
    ("berth-kube", &["berth-engine"]),
];

/// Crates that must not link berth-runtime, directly or through any other
/// crate: the engine runs a runtime as a program (the runc command line),
/// and the `berth` binary is built from berth-cli.
const NO_RUNTIME: &[&str] = &["berth-engine", "berth-cli", "berth-monitor-proto"];

/// The workspace's crates and their dependency edges, from `cargo metadata`.
struct Graph {
    /// Package id -> package name, for every package in the resolve.
    names: std::collections::HashMap<String, String>,
    /// Names of the workspace's own packages.
    members: Vec<String>,
    /// Binary name -> the name of the workspace package that builds it.
    bins: std::collections::HashMap<String, String>,
    /// Package id -> (dependency id, whether it is linked: a normal or
    /// build dependency, not only a dev-dependency).
    edges: std::collections::HashMap<String, Vec<(String, bool)>>,
}

impl Graph {
    fn load() -> Graph {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--locked"])
            .current_dir(workspace())
            .output()
            .expect("run cargo metadata");
        assert!(
            out.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
        let str_of = |v: &serde_json::Value| v.as_str().expect("a string").to_string();
        let names = meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| (str_of(&p["id"]), str_of(&p["name"])))
            .collect::<std::collections::HashMap<_, _>>();
        let members: Vec<String> = meta["workspace_members"]
            .as_array()
            .expect("workspace_members")
            .iter()
            .map(|id| names[&str_of(id)].clone())
            .collect();
        let mut bins = std::collections::HashMap::new();
        for p in meta["packages"].as_array().expect("packages") {
            let name = str_of(&p["name"]);
            if !members.contains(&name) {
                continue;
            }
            for t in p["targets"].as_array().expect("targets") {
                if t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
                {
                    bins.insert(str_of(&t["name"]), name.clone());
                }
            }
        }
        let mut edges = std::collections::HashMap::new();
        for node in meta["resolve"]["nodes"].as_array().expect("resolve") {
            let deps = node["deps"]
                .as_array()
                .expect("deps")
                .iter()
                .map(|d| {
                    // `kind` is null for a normal dependency.
                    let linked = d["dep_kinds"]
                        .as_array()
                        .expect("dep_kinds")
                        .iter()
                        .any(|k| k["kind"].as_str() != Some("dev"));
                    (str_of(&d["pkg"]), linked)
                })
                .collect();
            edges.insert(str_of(&node["id"]), deps);
        }
        Graph {
            names,
            members,
            bins,
            edges,
        }
    }

    fn id(&self, name: &str) -> &str {
        let ids: Vec<&String> = self
            .names
            .iter()
            .filter(|(_, n)| *n == name)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids.len(), 1, "one package named {name} in the workspace");
        ids[0]
    }

    /// The names of the packages `name` depends on directly (any kind).
    fn direct(&self, name: &str) -> Vec<&str> {
        self.edges[self.id(name)]
            .iter()
            .map(|(id, _)| self.names[id].as_str())
            .collect()
    }

    /// The chain of packages through which `name` links each package:
    /// normal and build dependencies, transitively (not dev-dependencies).
    /// Maps a linked package's name to the path that reaches it.
    fn linked(&self, name: &str) -> std::collections::BTreeMap<&str, Vec<&str>> {
        let mut seen = std::collections::BTreeMap::new();
        let start = self.id(name);
        let mut todo = vec![(start, vec![self.names[start].as_str()])];
        while let Some((id, path)) = todo.pop() {
            for (dep, linked) in &self.edges[id] {
                let dep_name = self.names[dep].as_str();
                if *linked && !seen.contains_key(dep_name) {
                    let mut p = path.clone();
                    p.push(dep_name);
                    seen.insert(dep_name, p.clone());
                    todo.push((dep, p));
                }
            }
        }
        seen
    }
}

#[test]
fn dependencies_point_down() {
    let graph = Graph::load();
    for (krate, allowed) in ALLOWED {
        for dep in graph.direct(krate) {
            // A crate may name itself (a dev-dependency enabling its
            // test-only features).
            if graph.members.iter().any(|m| m == dep) && dep != *krate {
                assert!(
                    allowed.contains(&dep),
                    "{krate} depends on {dep}, which its layer may not use"
                );
            }
        }
    }
    // Every workspace member is covered.
    for member in &graph.members {
        assert!(
            ALLOWED.iter().any(|(k, _)| k == member),
            "a new crate needs its row in ALLOWED: {member}"
        );
    }
    assert_eq!(
        graph.members.len(),
        ALLOWED.len(),
        "ALLOWED names a crate that is gone"
    );
}

#[test]
fn engine_and_cli_do_not_link_the_runtime() {
    let graph = Graph::load();
    assert_eq!(
        graph.bins.get("berth").map(String::as_str),
        Some("berth-cli"),
        "the berth binary is built by berth-cli (NO_RUNTIME names the package)"
    );
    for krate in NO_RUNTIME {
        let linked = graph.linked(krate);
        for bad in ["berth-runtime", "berth-monitor"] {
            if let Some(path) = linked.get(bad) {
                panic!(
                    "{krate} links {bad} ({}): the engine runs the runtime and \
                     the monitor as programs",
                    path.join(" -> ")
                );
            }
        }
    }
    // The protocol crate stays at the bottom: of the workspace, sys only.
    let proto: Vec<&str> = graph
        .linked("berth-monitor-proto")
        .into_keys()
        .filter(|n| graph.members.iter().any(|m| m == n))
        .collect();
    assert_eq!(
        proto,
        ["berth-sys"],
        "berth-monitor-proto may link only berth-sys"
    );
}

#[test]
fn the_database_is_berth_db_s_alone() {
    // The image store does not own the database: SQLite is linked through
    // berth-db only, and the others use it as berth-db re-exports it (one
    // SQLite, one place that opens, migrates and locks the file).
    let graph = Graph::load();
    for member in &graph.members {
        for dep in graph.direct(member) {
            if matches!(dep, "rusqlite" | "libsqlite3-sys") {
                assert_eq!(
                    member, "berth-db",
                    "{member} depends on {dep}: use berth_db::rusqlite"
                );
            }
        }
    }
    assert!(graph.direct("berth-db").contains(&"rusqlite"));
    for user in ["berth-image", "berth-engine"] {
        assert!(
            graph.direct(user).contains(&"berth-db"),
            "{user} keeps its tables in berth-db"
        );
    }
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

/// The CLI is clap, the terminal and tables over the engine: it links no
/// workspace crate but berth-engine (the image store, the registry client
/// and the monitor's protocol only through the engine's API), as the REST
/// API will, and berth-kube, the pure YAML-to-spec translation of the
/// shells' layer (`kube play` hands its specs to the engine).
#[test]
fn cli_goes_through_the_engine() {
    let graph = Graph::load();
    let cli = graph.id("berth-cli");
    let mut linked: Vec<&str> = graph.edges[cli]
        .iter()
        .filter(|(_, linked)| *linked)
        .map(|(id, _)| graph.names[id].as_str())
        .filter(|n| graph.members.iter().any(|m| m == n))
        .collect();
    linked.sort();
    assert_eq!(
        linked,
        ["berth-api", "berth-engine", "berth-kube"],
        "berth-cli links workspace crates other than the engine (and the shells over it: the API service, the YAML translation)"
    );
}

/// The async runtime and the HTTP stack live in the API crate only: no
/// other workspace crate names them (the engine and the CLI stay
/// synchronous; `berth system service` starts tokio inside berth-api).
#[test]
fn tokio_lives_in_the_api_crate_only() {
    let graph = Graph::load();
    for member in &graph.members {
        if member == "berth-api" {
            continue;
        }
        for dep in graph.direct(member) {
            assert!(
                !matches!(dep, "tokio" | "hyper" | "hyper-util"),
                "{member} depends on {dep}: the async runtime belongs in berth-api"
            );
        }
    }
}

/// The end-to-end tests never put a container on berth's default bridge
/// network in the host's own namespace (that makes the bridge `berth0`
/// and `table inet berth` there): every berth command a test builds by
/// hand, besides `Env::cmd`, says `BERTH_DEFAULT_NETWORK` (none, or
/// removed in a namespace of the test's own as `World::berth_cmd` does)
/// before it runs. usage.rs's long run root test once did not, and left
/// both behind on the host.
#[test]
fn e2e_tests_keep_containers_off_the_host_network() {
    let root = workspace();
    let mut files = Vec::new();
    for dir in ["crates/cli/tests", "crates/cli/tests/common"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "rs") {
                files.push(e.path());
            }
        }
    }
    assert!(files.len() > 10, "no e2e test files found");
    let needle = "env!(\"CARGO_BIN_EXE_berth\")";
    let mut bad = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (at, _) in text.match_indices(needle) {
            let rest = &text[at + needle.len()..];
            // A sibling binary's path (berth-runtime, a helper), not a
            // berth command.
            if rest.starts_with(").with_file_name") {
                continue;
            }
            // The command as built, up to where it runs (at most 40 lines).
            let end = [".output()", ".spawn()", ".status()"]
                .iter()
                .filter_map(|s| rest.find(s))
                .min()
                .unwrap_or(rest.len());
            let window: String = rest[..end].lines().take(40).collect::<Vec<_>>().join("\n");
            if !window.contains("BERTH_DEFAULT_NETWORK") {
                let line = text[..at].lines().count();
                bad.push(format!("{}:{line}", f.display()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "berth commands without BERTH_DEFAULT_NETWORK (set it to none, as Env::cmd does): {bad:?}"
    );
}
