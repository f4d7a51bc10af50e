//! Pods: groups of containers that share namespaces (by default net, ipc
//! and uts; pid when asked) and one cgroup parent with pod-level limits,
//! as podman's pods.
//!
//! A pod is a record in the `pods` table (its request, [`PodSpec`], and
//! its phase) and, unless `--infra=false`, an *infra* container: a
//! container like any other, made from berth's own image
//! (`localhost/berth-infra:2`, a skeleton of empty directories and the
//! pause program's mount point, imported on first use; no registry), whose
//! process is `berth-init --pause` (bound in as `--init` binds it). Its
//! root is a read-only overlay without an upper layer
//! (`rootfs::mount_read_only`): nothing writes there, and a member that
//! shares the pod's PID namespace cannot write through `/proc/1/root`.
//! The infra holds the namespaces the members join (`container:INFRA` in
//! each member's spec) and carries the pod's
//! network request (networks, published ports, aliases, DNS), so the
//! networks code sets it up and tears it down unchanged: the pod's IP and
//! `-p` ports are the infra's. Members' cgroups go under the pod's
//! (`<parent>/pod-<id>`), which berth makes at create with the pod's
//! limits and removes with the pod.
//!
//! A pod verb is a loop over the engine's container operations in the
//! right order (the infra first on start, last on stop), with one error
//! per failing container. Crash safety: create records the pod (phase
//! `creating`) before it makes the cgroup and the infra, and rm marks it
//! `removing` first, both under the pod's flock; a pod found in either
//! phase with its lock free (its creator or remover died) is removed by
//! the next pod command ([`Engine::reconcile_pods`]).

use crate::error::{db, Error, Result};
use crate::records::{Record, Status};
use crate::specgen::{ContainerSpec, NamespaceMode, NetworkSpec};
use berth_db::rusqlite::{params, OptionalExtension};
use berth_db::{Cached, Db, Tables};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The pods' table, in the store's database beside the containers'.
pub const TABLES: Tables<'static> = Tables {
    schema: SCHEMA,
    legacy_file: "",
    tables: &["pods"],
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pods (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,         -- ns since the epoch
    config TEXT NOT NULL              -- PodState as JSON
);
";

/// A pod's infra started for a member's start, not yet seen running.
pub(crate) struct InfraStart {
    id: String,
    name: String,
    session: crate::session::Session,
}

/// The image of infra containers: berth's own, made on first use.
pub const INFRA_IMAGE: &str = "localhost/berth-infra:2";

/// The namespaces a pod can share.
pub const SHAREABLE: [&str; 4] = ["net", "ipc", "uts", "pid"];

/// What a pod is asked to be.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodSpec {
    /// The pod's host name (shared uts): default its name.
    pub hostname: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The kinds shared: some of [`SHAREABLE`].
    pub share: Vec<String>,
    /// An infra container holds the shared namespaces.
    pub infra: bool,
    /// Where the pod's cgroup goes (default `/berth`).
    pub cgroup_parent: Option<String>,
    /// Pod-level limits on its cgroup.
    pub cpus: Option<f64>,
    pub memory: Option<i64>,
    pub pids_limit: Option<i64>,
    /// The size of the pod's /dev/shm (shared ipc), in bytes (default
    /// 64 MiB).
    pub shm_size: Option<u64>,
    /// The infra's network namespace mode (private with `network.networks`
    /// for bridge networks, host, none).
    pub net: NamespaceMode,
    /// The pod's networks, published ports, aliases, DNS and hosts.
    pub network: NetworkSpec,
}

impl Default for PodSpec {
    fn default() -> Self {
        PodSpec {
            hostname: None,
            labels: BTreeMap::new(),
            share: vec!["net".into(), "ipc".into(), "uts".into()],
            infra: true,
            cgroup_parent: None,
            cpus: None,
            memory: None,
            pids_limit: None,
            shm_size: None,
            net: NamespaceMode::Private,
            network: NetworkSpec::default(),
        }
    }
}

impl PodSpec {
    /// Checks the request before anything is made.
    pub fn validate(&self) -> Result<()> {
        for s in &self.share {
            if !SHAREABLE.contains(&s.as_str()) {
                return Err(opt(
                    "--share",
                    format!("{s:?} is not a namespace a pod shares (net, ipc, uts, pid)"),
                ));
            }
        }
        if !self.infra {
            if let Some(s) = self.share.iter().find(|s| s.as_str() != "cgroup") {
                return Err(opt(
                    "--infra",
                    format!("a pod without an infra container cannot share namespaces (--share {s}): nothing would hold them; give --share \"\" or keep the infra"),
                ));
            }
            if !self.network.networks.is_empty()
                || !self.network.ports.is_empty()
                || self.hostname.is_some()
            {
                return Err(opt(
                    "--infra",
                    "--network, --publish and --hostname are the infra container's: a pod without one cannot have them",
                ));
            }
        }
        if !self.shares("uts") && self.hostname.is_some() {
            return Err(opt(
                "--hostname",
                "the pod's host name needs a shared uts namespace (--share uts)",
            ));
        }
        if let Some(size) = self.shm_size {
            if size == 0 {
                return Err(opt("--shm-size", "must be more than 0"));
            }
            if !self.shares("ipc") {
                return Err(opt(
                    "--shm-size",
                    "the pod's /dev/shm goes with a shared ipc namespace (--share ipc)",
                ));
            }
        }
        if !self.shares("net") && !self.network.ports.is_empty() {
            return Err(opt(
                "--publish",
                "published ports are the pod's network's: they need --share net",
            ));
        }
        if let Some(c) = self.cpus {
            if !(c > 0.0 && c.is_finite()) {
                return Err(opt("--cpus", format!("{c} is not a positive number")));
            }
        }
        if let Some(m) = self.memory {
            if m < 6 << 20 {
                return Err(opt("--memory", "the minimum is 6 MiB"));
            }
        }
        if let Some(p) = self.pids_limit {
            if p == 0 || p < -1 {
                return Err(opt(
                    "--pids-limit",
                    format!("{p} is not a limit (N > 0, or -1)"),
                ));
            }
        }
        Ok(())
    }

    pub fn shares(&self, kind: &str) -> bool {
        self.share.iter().any(|s| s == kind)
    }
}

/// `berth pod create`: a name (else one is made) and the spec.
#[derive(Clone, Debug, Default)]
pub struct PodCreate {
    pub name: Option<String>,
    pub spec: PodSpec,
}

/// Where a pod is in its making or unmaking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodPhase {
    /// Being made: the cgroup or infra may be missing.
    Creating,
    #[default]
    Ready,
    /// Being removed.
    Removing,
}

/// A stored pod.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodRecord {
    pub id: String,
    pub name: String,
    pub created: i64,
    pub spec: PodSpec,
    pub phase: PodPhase,
    /// The infra container's id, once made.
    pub infra_id: Option<String>,
}

impl PodRecord {
    /// The pod's cgroup (the members' cgroup parent).
    pub fn cgroup(&self) -> String {
        format!(
            "{}/pod-{}",
            self.spec.cgroup_parent.as_deref().unwrap_or("/berth"),
            self.id
        )
    }

    pub fn host_name(&self) -> String {
        self.spec
            .hostname
            .clone()
            .unwrap_or_else(|| self.name.clone())
    }
}

/// The pod's state as podman names it, from its containers'.
pub fn pod_status(all: &[Record]) -> &'static str {
    // A kube pod's init containers ran to their end before the others
    // started: they do not make a running pod Degraded (podman removes
    // its own once they are done).
    let is_init = |r: &Record| {
        r.spec
            .metadata
            .labels
            .get(crate::kube_dns::LABEL_KUBE_CONTAINER)
            .is_some_and(|c| c.starts_with("init:"))
    };
    let main: Vec<&Record> = all.iter().filter(|r| !is_init(r)).collect();
    let containers: Vec<&Record> = if main.is_empty() {
        all.iter().collect()
    } else {
        main
    };
    if containers.is_empty() {
        return "Created";
    }
    let running = |r: &Record| matches!(r.state.status, Status::Running | Status::Restarting);
    let n_running = containers.iter().filter(|r| running(r)).count();
    let n_paused = containers
        .iter()
        .filter(|r| running(r) && r.state.paused)
        .count();
    if n_paused == containers.len() {
        "Paused"
    } else if n_running == containers.len() {
        "Running"
    } else if n_running > 0 {
        "Degraded"
    } else if containers.iter().all(|r| r.state.status == Status::Created) {
        "Created"
    } else {
        "Exited"
    }
}

fn opt(option: &str, msg: impl Into<String>) -> Error {
    Error::Option {
        option: option.into(),
        msg: msg.into(),
    }
}

fn corrupt(e: serde_json::Error) -> Error {
    Error::Runtime(format!("pod record: not readable ({e}); remove the pod"))
}

/// The pods' table.
struct Pods(Db);

impl Pods {
    fn insert(&self, p: &PodRecord) -> Result<()> {
        let config = serde_json::to_string(p).map_err(corrupt)?;
        let r = self.0.conn().exec(
            "INSERT INTO pods (id, name, created, config) VALUES (?1, ?2, ?3, ?4)",
            params![p.id, p.name, p.created, config],
        );
        match r {
            Ok(_) => Ok(()),
            Err(berth_db::rusqlite::Error::SqliteFailure(e, _))
                if e.code == berth_db::rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::PodNameInUse(p.name.clone()))
            }
            Err(e) => Err(db("record the pod")(e)),
        }
    }

    fn update(&self, p: &PodRecord) -> Result<()> {
        let config = serde_json::to_string(p).map_err(corrupt)?;
        self.0
            .conn()
            .exec(
                "UPDATE pods SET config = ?2 WHERE id = ?1",
                params![p.id, config],
            )
            .map_err(db("record the pod"))?;
        Ok(())
    }

    fn remove(&self, id: &str) -> Result<()> {
        self.0
            .conn()
            .exec("DELETE FROM pods WHERE id = ?1", params![id])
            .map_err(db("remove the pod's record"))?;
        Ok(())
    }

    fn all(&self) -> Result<Vec<PodRecord>> {
        let conn = self.0.conn();
        let mut st = conn
            .prepare_cached("SELECT config FROM pods ORDER BY created")
            .map_err(db("list the pods"))?;
        let rows: Vec<String> = st
            .query_map([], |r| r.get(0))
            .map_err(db("list the pods"))?
            .collect::<berth_db::rusqlite::Result<_>>()
            .map_err(db("list the pods"))?;
        rows.iter()
            .map(|c| serde_json::from_str(c).map_err(corrupt))
            .collect()
    }

    /// By id, name or unique id prefix.
    fn find(&self, what: &str) -> Result<PodRecord> {
        if what.is_empty() {
            return Err(Error::NoSuchPod(String::new()));
        }
        let exact: Option<String> = self
            .0
            .conn()
            .row(
                "SELECT config FROM pods WHERE id = ?1 OR name = ?1",
                params![what],
                |r| r.get(0),
            )
            .optional()
            .map_err(db("find the pod"))?;
        if let Some(c) = exact {
            return serde_json::from_str(&c).map_err(corrupt);
        }
        if what.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found: Vec<PodRecord> = self
                .all()?
                .into_iter()
                .filter(|p| p.id.starts_with(what))
                .collect();
            if found.len() > 1 {
                return Err(Error::Conflict(format!(
                    "{what}: more than one pod id starts with this; give more digits"
                )));
            }
            if let Some(p) = found.pop() {
                return Ok(p);
            }
        }
        Err(Error::NoSuchPod(what.to_string()))
    }
}

/// What one pod verb did to each container: its name and the error, if
/// any.
#[derive(Debug, Default)]
pub struct PodReport {
    pub pod: String,
    pub errors: Vec<(String, Error)>,
}

impl PodReport {
    /// Ok when every container did it; else one error naming each
    /// failure.
    pub fn into_result(self, verb: &str) -> Result<String> {
        if self.errors.is_empty() {
            return Ok(self.pod);
        }
        let lines: Vec<String> = self
            .errors
            .iter()
            .map(|(c, e)| format!("container {c}: {e}"))
            .collect();
        Err(Error::PodFailed {
            pod: self.pod,
            verb: verb.into(),
            msg: lines.join("; "),
        })
    }
}

impl crate::Engine {
    fn pods(&self) -> Pods {
        Pods(self.images.db())
    }

    fn pod_lock(&self, id: &str) -> Result<crate::containers::Lock> {
        self.lock(&format!("pod-{id}"))
    }

    /// A pod by name, id or id prefix.
    pub fn pod(&self, what: &str) -> Result<PodRecord> {
        self.pods().find(what)
    }

    /// Every pod, reconciled first.
    pub fn pod_list(&self) -> Result<Vec<PodRecord>> {
        self.reconcile_pods();
        self.pods().all()
    }

    /// The pod's containers (the infra first, then the members oldest
    /// first), reconciled.
    pub fn pod_containers(&self, pod: &PodRecord) -> Result<Vec<Record>> {
        let mut out: Vec<Record> = Vec::new();
        for r in self.records.all()?.into_iter().rev() {
            if r.spec.pod.as_deref() == Some(&pod.id) {
                let r = self.refresh(r)?;
                if Some(&r.id) == pod.infra_id.as_ref() {
                    out.insert(0, r);
                } else {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// `berth pod create`: records the pod, makes its cgroup with its
    /// limits and its infra container (not started: the first member's
    /// start or `pod start` starts it).
    pub fn pod_create(&self, req: &PodCreate) -> Result<PodRecord> {
        self.reconcile_pods();
        req.spec.validate()?;
        if let Some(n) = &req.name {
            crate::specgen::check_pod_name(n)?;
        }
        let id = crate::paths::new_id()?;
        let name = req
            .name
            .clone()
            .unwrap_or_else(|| crate::paths::random_name(&id));
        let mut pod = PodRecord {
            id: id.clone(),
            name,
            created: crate::containers::now_nanos(),
            spec: req.spec.clone(),
            phase: PodPhase::Creating,
            infra_id: None,
        };
        // Held until the pod is ready: a reconcile elsewhere leaves it be.
        let _lock = self.pod_lock(&id)?;
        self.pods().insert(&pod)?;
        let made = self.make_pod_cgroup(&pod).and_then(|()| {
            if pod.spec.infra {
                let infra = self.create_infra(&pod)?;
                pod.infra_id = Some(infra.id);
            }
            pod.phase = PodPhase::Ready;
            self.pods().update(&pod)
        });
        if let Err(e) = made {
            if let Err(e2) = self.remove_pod_locked(&pod) {
                eprintln!(
                    "berth: warning: pod {}: undo a failed create: {e2}",
                    pod.name
                );
            }
            return Err(e);
        }
        Ok(pod)
    }

    /// The pod's cgroup on every hierarchy, with the pod's limits.
    fn make_pod_cgroup(&self, pod: &PodRecord) -> Result<()> {
        let mut m = self.pod_cgroup_manager(pod)?;
        let cg = |e: berth_cgroups::Error| {
            Error::Runtime(format!(
                "pod {}: make its cgroup {}: {e}",
                pod.name,
                pod.cgroup()
            ))
        };
        m.create().map_err(cg)?;
        let s = &pod.spec;
        let mut res = serde_json::json!({});
        if let Some(c) = s.cpus {
            res["cpu"] = serde_json::json!({"quota": (c * 100_000.0) as i64, "period": 100_000u64});
        }
        if let Some(mem) = s.memory {
            res["memory"] = serde_json::json!({"limit": mem});
        }
        if let Some(p) = s.pids_limit {
            res["pids"] = serde_json::json!({"limit": p});
        }
        let res: oci_spec::runtime::LinuxResources = serde_json::from_value(res)
            .map_err(|e| Error::Runtime(format!("pod {}: its limits: {e}", pod.name)))?;
        m.apply(&res).map_err(cg)
    }

    fn pod_cgroup_manager(&self, pod: &PodRecord) -> Result<berth_cgroups::Manager> {
        let cg = |e: berth_cgroups::Error| {
            Error::Runtime(format!(
                "pod {}: its cgroup {}: {e}",
                pod.name,
                pod.cgroup()
            ))
        };
        let layout = berth_cgroups::Layout::from_host().map_err(cg)?;
        let path =
            berth_cgroups::CgroupsPath::parse(Some(&pod.cgroup()), &pod.id, false).map_err(cg)?;
        berth_cgroups::Manager::new(&layout, &path).map_err(cg)
    }

    /// The infra image's id, importing it on first use: a layer of empty
    /// directories (the pause program is bound in at start).
    fn infra_image(&self) -> Result<berth_image::Digest> {
        if let Ok(id) = self.images.resolve_id(INFRA_IMAGE) {
            return Ok(id);
        }
        // One import at a time (pods made together, by threads of one
        // process or by several processes, each found no image): the
        // others find it made.
        let _lock = self.lock("infra-image")?;
        if let Ok(id) = self.images.resolve_id(INFRA_IMAGE) {
            return Ok(id);
        }
        let mut tar = berth_image::tar::Writer::new(Vec::new());
        // The directories, and the mount point of the pause program
        // (`spec::INIT_PATH`): the infra's root is mounted read-only.
        let init = crate::spec::INIT_PATH.trim_start_matches('/');
        for d in ["dev", "etc", "proc", "run", "sbin", "sys", "tmp", init] {
            let e = berth_image::tar::Entry {
                path: d.as_bytes().to_vec(),
                kind: if d == init {
                    berth_image::tar::Kind::File
                } else {
                    berth_image::tar::Kind::Dir
                },
                mode: if d == "tmp" { 0o1777 } else { 0o755 },
                uid: 0,
                gid: 0,
                size: 0,
                mtime: (0, 0),
                link: Vec::new(),
                dev_major: 0,
                dev_minor: 0,
                xattrs: Vec::new(),
            };
            tar.append(&e, &mut std::io::empty())
                .map_err(crate::error::io("make the infra image's layer"))?;
        }
        let data = tar
            .finish()
            .map_err(crate::error::io("make the infra image's layer"))?;
        let dir = self.images.tmp_dir();
        std::fs::create_dir_all(&dir)
            .map_err(crate::error::io(format!("create {}", dir.display())))?;
        let path = dir.join(format!("infra-{}.tar", std::process::id()));
        std::fs::write(&path, &data)
            .map_err(crate::error::io(format!("write {}", path.display())))?;
        let mut store = crate::containers::open_store(&self.paths.root)?;
        let r =
            berth_image::archive::import(&mut store, &path, Some(INFRA_IMAGE), &[], None, &|_| {});
        let _ = std::fs::remove_file(&path);
        Ok(r?)
    }

    /// The infra container of `pod` (created, not started).
    fn create_infra(&self, pod: &PodRecord) -> Result<Record> {
        let image = self.infra_image()?;
        let mut spec = ContainerSpec::default();
        spec.process.init = true;
        spec.process.entrypoint = Some(Vec::new());
        spec.process.args = vec!["--pause".into()];
        spec.process.stop_timeout = Some(10);
        spec.namespaces.net = pod.spec.net.clone();
        spec.network = pod.spec.network.clone();
        if pod.spec.shares("uts") {
            spec.network.hostname = Some(pod.host_name());
        }
        if !pod.spec.shares("net") {
            spec.namespaces.net = NamespaceMode::Private;
            spec.network = NetworkSpec::default();
        }
        spec.resources.cgroup_parent = Some(pod.cgroup());
        spec.storage.shm_size = pod.spec.shm_size;
        spec.logging.driver = crate::specgen::LogDriver::None;
        spec.pod = Some(pod.id.clone());
        let name = format!("{}-infra", &pod.id[..12]);
        self.create_in_pod(INFRA_IMAGE, &image, Some(&name), spec)
    }

    /// At a container's create: `spec.pod` (a name, id or `new:NAME`)
    /// becomes the pod's id, and the spec joins the pod's shared
    /// namespaces and cgroup.
    pub(crate) fn join_pod(&self, spec: &mut ContainerSpec) -> Result<()> {
        // `--pid/--ipc/--uts container:NAME`: NAME must exist (it must
        // run when this one starts).
        let ns = &spec.namespaces;
        for (flag, mode) in [("--pid", &ns.pid), ("--ipc", &ns.ipc), ("--uts", &ns.uts)] {
            if let NamespaceMode::Container(other) = mode {
                match self.records.find(other) {
                    Ok(_) => {}
                    Err(Error::NoSuchContainer(_)) => {
                        return Err(opt(
                            flag,
                            format!("container:{other}: no such container: {other}"),
                        ))
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let Some(what) = spec.pod.clone() else {
            return Ok(());
        };
        let pod = match what.strip_prefix("new:") {
            Some(name) => ready(self.pod_create(&PodCreate {
                name: Some(name.to_string()),
                spec: PodSpec::default(),
            })?)?,
            None => self.ready_pod(&what)?,
        };
        spec.pod = Some(pod.id.clone());
        if spec.resources.cgroup_parent.is_some() {
            return Err(opt(
                "--cgroup-parent",
                format!("a container of pod {} is in the pod's cgroup; set it with pod create --cgroup-parent", pod.name),
            ));
        }
        spec.resources.cgroup_parent = Some(pod.cgroup());
        if let Some(infra) = &pod.infra_id {
            let ns = &mut spec.namespaces;
            for (kind, mode) in [
                ("net", &mut ns.net),
                ("ipc", &mut ns.ipc),
                ("uts", &mut ns.uts),
                ("pid", &mut ns.pid),
            ] {
                if !pod.spec.shares(kind) {
                    continue;
                }
                if *mode != NamespaceMode::Private {
                    return Err(opt(
                        &format!("--{kind}"),
                        format!(
                            "pod {} shares its {kind} namespace: a member cannot have {mode}",
                            pod.name
                        ),
                    ));
                }
                *mode = NamespaceMode::Container(infra.clone());
            }
            // The pod's /dev/shm goes with its IPC namespace.
            if pod.spec.shares("ipc") && spec.storage.shm_size.is_some() {
                return Err(opt(
                    "--shm-size",
                    format!(
                        "pod {} shares its ipc namespace and its /dev/shm: set the size with pod create --shm-size",
                        pod.name
                    ),
                ));
            }
        }
        spec.validate()
    }

    /// The pod whose infra `rec` is.
    pub(crate) fn pod_of_infra(&self, rec: &Record) -> Option<PodRecord> {
        rec.spec
            .pod
            .as_ref()
            .and_then(|p| self.pods().find(p).ok())
            .filter(|p| p.infra_id.as_deref() == Some(rec.id.as_str()))
    }

    /// Whether a member's start in pod `what` (a name or id, or
    /// `new:NAME`) starts the pod's infra first: a monitor started ahead
    /// for it then saves that start its monitor's and runtime's start-up.
    /// A guess from the records (the start decides).
    pub fn pod_infra_down(&self, what: &str) -> bool {
        if what.starts_with("new:") {
            return true;
        }
        let Ok(pod) = self.pod(what) else {
            return false;
        };
        let Some(infra) = pod.infra_id else {
            return false;
        };
        self.records
            .find(&infra)
            .is_ok_and(|r| !matches!(r.state.status, Status::Running | Status::Restarting))
    }

    /// Before a pod member starts: its pod's infra, if not running. A pod
    /// that does not share its pid namespace has the others bound on
    /// files when its infra starts ([`crate::podns`]): the member joins
    /// those, so the infra is not waited for here but with the member
    /// ([`Engine::start_session`], through [`Engine::infra_started`]),
    /// and the two start side by side. A pod that shares it waits: the
    /// member joins the infra's process's.
    pub(crate) fn start_pod_infra(
        &self,
        rec: &Record,
        pre: Option<crate::containers::PreMonitor>,
    ) -> Result<Option<InfraStart>> {
        let Some(pod_id) = &rec.spec.pod else {
            return Ok(None);
        };
        let Ok(pod) = self.pods().find(pod_id) else {
            return Ok(None);
        };
        let Some(infra) = &pod.infra_id else {
            return Ok(None);
        };
        if infra == &rec.id {
            return Ok(None);
        }
        // Settled: an infra whose start was cut short (berth killed after
        // its monitor was told to go) is waited for, not taken as running
        // with no process.
        let r = self.settle(self.records.find(infra)?)?;
        if matches!(r.state.status, Status::Running | Status::Restarting) {
            return Ok(None);
        }
        if pod.spec.shares("pid") {
            return match self.start_session(infra, pre) {
                Ok(_) => Ok(None),
                // Another member's start won the race.
                Err(Error::Conflict(_)) => Ok(None),
                Err(e) => Err(e),
            };
        }
        match self.start_with(infra, pre) {
            Ok(session) => Ok(Some(InfraStart {
                id: r.id,
                name: r.name,
                session,
            })),
            Err(Error::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits until the infra a member's start started runs; one that
    /// failed is cleaned up (as [`Engine::start_session`] does) and fails
    /// the member's start too.
    pub(crate) fn infra_started(&self, infra: InfraStart) -> Result<()> {
        let InfraStart {
            id,
            name,
            mut session,
        } = infra;
        match session.wait_started()? {
            crate::session::Started::Pid(_) => Ok(()),
            crate::session::Started::Failed(msg) => {
                Err(self.start_failed(&mut session, &id, name, msg))
            }
        }
    }

    /// A start's pid, ipc and uts namespaces joined from another
    /// container (`container:NAME`, a pod's infra), and the name of a
    /// joined uts namespace; with another's network namespace, its
    /// /etc/hosts and /etc/resolv.conf.
    pub(crate) fn join_namespaces(
        &self,
        rec: &Record,
        host: &mut crate::spec::Resolved,
    ) -> Result<()> {
        let ns = &rec.spec.namespaces;
        for (kind, oci, mode) in [
            ("pid", "pid", &ns.pid),
            ("ipc", "ipc", &ns.ipc),
            ("uts", "uts", &ns.uts),
        ] {
            let NamespaceMode::Container(other) = mode else {
                continue;
            };
            // A pod infra's bound namespace: joined whether or not its
            // process runs yet.
            if let Some(path) = self.podns(other, kind) {
                host.joined.push((oci, path));
                if kind == "uts" {
                    let o = self.records.find(other)?;
                    host.hostname = self.hostname_of(&o);
                    self.share_etc_file(&o.id, "/etc/hostname", host);
                }
                if kind == "ipc" {
                    host.shm = self.podns(other, "shm");
                }
                continue;
            }
            let o = self.settle(self.records.find(other)?)?;
            if !matches!(o.state.status, Status::Running | Status::Restarting) || o.state.pid <= 0 {
                return Err(Error::Conflict(format!(
                    "--{kind} container:{other}: container {} is not running; start it first",
                    o.name
                )));
            }
            host.joined.push((
                oci,
                PathBuf::from(format!("/proc/{}/ns/{kind}", o.state.pid)),
            ));
            if kind == "ipc" {
                host.shm = Some(self.attach_joined_shm(&rec.id, &o.name, o.state.pid)?);
            }
            if kind == "uts" {
                host.hostname = self.hostname_of(&o);
                self.share_etc_file(&o.id, "/etc/hostname", host);
            }
        }
        if let NamespaceMode::Container(other) = &ns.net {
            if let Ok(o) = self.records.find(other) {
                for dest in ["/etc/hosts", "/etc/resolv.conf"] {
                    self.share_etc_file(&o.id, dest, host);
                }
            }
        }
        Ok(())
    }

    /// Where the container's generated file `name` (hostname, hosts,
    /// resolv.conf) is: its own, or (when it has none) that of the
    /// container whose namespace it joined and whose file it binds
    /// ([`Engine::share_etc_file`]).
    pub(crate) fn etc_file_path(&self, r: &Record, name: &str) -> PathBuf {
        let own = self.paths.run_dir(&r.id).join(name);
        let ns = &r.spec.namespaces;
        let from = if name == "hostname" { &ns.uts } else { &ns.net };
        match from {
            NamespaceMode::Container(other) if !own.exists() => self
                .records
                .find(other)
                .ok()
                .and_then(|o| self.etc_file_of(&o.id, name))
                .unwrap_or(own),
            _ => own,
        }
    }

    /// The generated file `name` of the container `id`, if it has one.
    fn etc_file_of(&self, id: &str, name: &str) -> Option<PathBuf> {
        Some(self.paths.run_dir(id).join(name)).filter(|p| p.exists())
    }

    /// Binds the generated file `dest` (/etc/hostname, /etc/hosts,
    /// /etc/resolv.conf) of the container `other`, whose namespace this
    /// start joins, instead of writing one of its own (Docker's
    /// `container:` modes, a pod's shared files as the kubelet's): a
    /// change to it is seen by both. Kept as it is when `other` has not
    /// written it (it never started).
    fn share_etc_file(&self, other: &str, dest: &str, host: &mut crate::spec::Resolved) {
        if let Some(p) = self.etc_file_of(other, dest.trim_start_matches("/etc/")) {
            if let Some(f) = host.files.iter_mut().find(|(d, _)| d == dest) {
                f.1 = p;
            }
        }
    }

    /// The host name a running container has.
    fn hostname_of(&self, r: &Record) -> String {
        std::fs::read_to_string(self.etc_file_path(r, "hostname"))
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                r.spec
                    .network
                    .hostname
                    .clone()
                    .unwrap_or_else(|| r.id[..12].to_string())
            })
    }

    /// Whether the pod is ready: every member (not the infra) ready, and
    /// at least one (`pod ps`'s `.Ready`).
    pub fn pod_ready(&self, pod: &PodRecord, containers: &[Record]) -> bool {
        let mut members = containers
            .iter()
            .filter(|r| Some(&r.id) != pod.infra_id.as_ref())
            .peekable();
        members.peek().is_some() && members.all(|r| self.readiness(r))
    }

    /// `berth pod start`: the infra first, then every member not running.
    pub fn pod_start(&self, what: &str) -> Result<PodReport> {
        let pod = self.ready_pod(what)?;
        let mut report = PodReport {
            pod: pod.id.clone(),
            ..Default::default()
        };
        for r in self.pod_containers(&pod)? {
            if matches!(r.state.status, Status::Running | Status::Restarting) {
                continue;
            }
            if let Err(e) = self.start_session(&r.id, None) {
                let infra = Some(&r.id) == pod.infra_id.as_ref();
                report.errors.push((r.name, e));
                if infra {
                    // Nothing joins a pod whose infra is down.
                    break;
                }
            }
        }
        // A pod of `kube play`: its Services' names if it is ready.
        if let Some(infra) = &pod.infra_id {
            self.kube_readiness_changed(infra);
        }
        Ok(report)
    }

    /// `berth pod stop`: the members (together), then the infra.
    pub fn pod_stop(&self, what: &str, timeout: Option<u32>) -> Result<PodReport> {
        let pod = self.ready_pod(what)?;
        let all = self.pod_containers(&pod)?;
        let (infra, members): (Vec<Record>, Vec<Record>) = all
            .into_iter()
            .partition(|r| Some(&r.id) == pod.infra_id.as_ref());
        let mut report = PodReport {
            pod: pod.id.clone(),
            ..Default::default()
        };
        let running = |r: &Record| matches!(r.state.status, Status::Running | Status::Restarting);
        for group in [members, infra] {
            let errs: Vec<(String, Error)> = std::thread::scope(|s| {
                let hs: Vec<_> = group
                    .iter()
                    .filter(|r| running(r))
                    .map(|r| (r.name.clone(), s.spawn(|| self.stop(&r.id, timeout))))
                    .collect();
                hs.into_iter()
                    .filter_map(|(n, h)| match h.join() {
                        Ok(Ok(_)) => None,
                        Ok(Err(e)) => Some((n, e)),
                        Err(_) => Some((n, Error::Runtime("stop: the thread panicked".into()))),
                    })
                    .collect()
            });
            report.errors.extend(errs);
        }
        Ok(report)
    }

    /// `berth pod restart`: stop, then start.
    pub fn pod_restart(&self, what: &str, timeout: Option<u32>) -> Result<PodReport> {
        let stopped = self.pod_stop(what, timeout)?;
        if !stopped.errors.is_empty() {
            return Ok(stopped);
        }
        self.pod_start(what)
    }

    /// `berth pod kill`: `signal` to every running container (members
    /// first, the infra last).
    pub fn pod_kill(&self, what: &str, signal: i32) -> Result<PodReport> {
        self.pod_each_running(what, true, |r| self.kill(&r.id, signal, true).map(|_| ()))
    }

    /// `berth pod pause`: freezes every running container.
    pub fn pod_pause(&self, what: &str) -> Result<PodReport> {
        self.pod_each_running(what, false, |r| {
            if r.state.paused {
                Ok(())
            } else {
                self.pause(&r.id).map(|_| ())
            }
        })
    }

    /// `berth pod unpause`: thaws every paused container.
    pub fn pod_unpause(&self, what: &str) -> Result<PodReport> {
        self.pod_each_running(what, false, |r| {
            if r.state.paused {
                self.unpause(&r.id).map(|_| ())
            } else {
                Ok(())
            }
        })
    }

    fn pod_each_running(
        &self,
        what: &str,
        infra_last: bool,
        f: impl Fn(&Record) -> Result<()>,
    ) -> Result<PodReport> {
        let pod = self.ready_pod(what)?;
        let mut all = self.pod_containers(&pod)?;
        if infra_last && !all.is_empty() && pod.infra_id.is_some() {
            let infra = all.remove(0);
            all.push(infra);
        }
        let mut report = PodReport {
            pod: pod.id.clone(),
            ..Default::default()
        };
        for r in all {
            if matches!(r.state.status, Status::Running | Status::Restarting) {
                if let Err(e) = f(&r) {
                    report.errors.push((r.name, e));
                }
            }
        }
        Ok(report)
    }

    fn ready_pod(&self, what: &str) -> Result<PodRecord> {
        self.reconcile_pods();
        ready(self.pod(what)?)
    }

    /// `berth pod rm`: a pod with running containers needs `force`; its
    /// members, infra, cgroup and record go (the network endpoint with
    /// the infra).
    pub fn pod_remove(&self, what: &str, force: bool) -> Result<PodRecord> {
        self.reconcile_pods();
        let pod = self.pod(what)?;
        let _lock = self.pod_lock(&pod.id)?;
        // Read again under the lock: another rm may have finished it.
        let mut pod = match self.pods().find(&pod.id) {
            Ok(p) => p,
            Err(Error::NoSuchPod(_)) => return Ok(pod),
            Err(e) => return Err(e),
        };
        if !force {
            let running: Vec<String> = self
                .pod_containers(&pod)?
                .into_iter()
                .filter(|r| matches!(r.state.status, Status::Running | Status::Restarting))
                .filter(|r| Some(&r.id) != pod.infra_id.as_ref())
                .map(|r| r.name)
                .collect();
            if !running.is_empty() {
                return Err(Error::PodRunning {
                    pod: pod.name.clone(),
                    containers: running,
                });
            }
        }
        pod.phase = PodPhase::Removing;
        self.pods().update(&pod)?;
        self.remove_pod_locked(&pod)?;
        Ok(pod)
    }

    /// Removes what there is of a pod (its lock held, phase not ready):
    /// members, then the infra, then the cgroup, then the record.
    fn remove_pod_locked(&self, pod: &PodRecord) -> Result<()> {
        let (infra, members): (Vec<Record>, Vec<Record>) = self
            .pod_containers(pod)?
            .into_iter()
            .partition(|r| Some(&r.id) == pod.infra_id.as_ref());
        let mut report = PodReport {
            pod: pod.name.clone(),
            ..Default::default()
        };
        // The members together (each waits for its monitor's end), then
        // the infra.
        for group in [members, infra] {
            let errs: Vec<(String, Error)> = std::thread::scope(|s| {
                let hs: Vec<_> = group
                    .iter()
                    .map(|r| (r.name.clone(), s.spawn(|| self.remove(&r.id, true, true))))
                    .collect();
                hs.into_iter()
                    .filter_map(|(n, h)| match h.join() {
                        Ok(Ok(_) | Err(Error::NoSuchContainer(_))) => None,
                        Ok(Err(e)) => Some((n, e)),
                        Err(_) => Some((n, Error::Runtime("rm: the thread panicked".into()))),
                    })
                    .collect()
            });
            report.errors.extend(errs);
        }
        // An infra container a kill -9 left with no record yet has none
        // to find: its id was never stored. Its name is the pod's.
        if let Ok(r) = self.records.find(&format!("{}-infra", &pod.id[..12])) {
            if let Err(e) = self.remove(&r.id, true, true) {
                report.errors.push((r.name, e));
            }
        }
        if report.errors.is_empty() {
            if let Ok(m) = self.pod_cgroup_manager(pod) {
                if let Err(e) = crate::containers::destroy_cgroup_retry(&m) {
                    report.errors.push((
                        "(cgroup)".into(),
                        Error::Runtime(format!("remove the cgroup {}: {e}", pod.cgroup())),
                    ));
                }
            }
        }
        report.into_result("rm")?;
        self.pods().remove(&pod.id)?;
        let _ = std::fs::remove_file(self.paths.lock(&format!("pod-{}", pod.id)));
        Ok(())
    }

    /// `berth pod prune`: removes every pod with no running container.
    pub fn pod_prune(&self) -> Result<Vec<PodRecord>> {
        let mut gone = Vec::new();
        for p in self.pod_list()? {
            let cs = self.pod_containers(&p)?;
            if cs
                .iter()
                .any(|r| matches!(r.state.status, Status::Running | Status::Restarting))
            {
                continue;
            }
            match self.pod_remove(&p.id, false) {
                Ok(p) => gone.push(p),
                Err(Error::PodRunning { .. } | Error::NoSuchPod(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(gone)
    }

    /// Finishes the pods a killed `pod create` or `pod rm` left (phase
    /// not ready, lock free): removes what there is of them. Errors are
    /// logged: the next pod command tries again.
    pub fn reconcile_pods(&self) {
        self.reconcile_pod_namespaces();
        let Ok(all) = self.pods().all() else {
            return;
        };
        for p in all {
            if p.phase == PodPhase::Ready {
                continue;
            }
            let Some(_lock) = self.try_lock(&format!("pod-{}", p.id)) else {
                continue;
            };
            // Read again under the lock.
            match self.pods().find(&p.id) {
                Ok(p) if p.phase != PodPhase::Ready => {
                    if let Err(e) = self.remove_pod_locked(&p) {
                        eprintln!("berth: warning: pod {}: finish its removal: {e}", p.name);
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether `rec` is the infra container of a pod that is not being
    /// removed (it goes with its pod only).
    pub(crate) fn infra_of_live_pod(&self, rec: &Record) -> Option<String> {
        let pod = self.pods().find(rec.spec.pod.as_deref()?).ok()?;
        (pod.infra_id.as_deref() == Some(&rec.id) && pod.phase == PodPhase::Ready)
            .then_some(pod.name)
    }

    /// `berth pod inspect`: podman's fields.
    pub fn pod_inspect(&self, what: &str) -> Result<PodInspect> {
        self.reconcile_pods();
        let pod = self.pod(what)?;
        let cs = self.pod_containers(&pod)?;
        let infra = cs.iter().find(|r| Some(&r.id) == pod.infra_id.as_ref());
        let mut shared = pod.spec.share.clone();
        shared.sort();
        Ok(PodInspect {
            id: pod.id.clone(),
            name: pod.name.clone(),
            created: crate::logs::rfc3339_nano(pod.created),
            state: pod_status(&cs).into(),
            hostname: if pod.spec.shares("uts") {
                pod.host_name()
            } else {
                String::new()
            },
            labels: pod.spec.labels.clone(),
            create_cgroup: true,
            cgroup_parent: pod
                .spec
                .cgroup_parent
                .clone()
                .unwrap_or_else(|| "/berth".into()),
            cgroup_path: pod.cgroup(),
            create_infra: pod.spec.infra,
            infra_container_id: pod.infra_id.clone().unwrap_or_default(),
            infra_config: pod.spec.infra.then(|| InfraConfig {
                port_bindings: {
                    let mut m: BTreeMap<String, Vec<HostPort>> = BTreeMap::new();
                    for p in &pod.spec.network.ports {
                        m.entry(format!("{}/{}", p.container_port, p.proto))
                            .or_default()
                            .push(HostPort {
                                host_ip: p.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                                host_port: if p.host_port == 0 {
                                    String::new()
                                } else {
                                    p.host_port.to_string()
                                },
                            });
                    }
                    m
                },
                networks: pod
                    .spec
                    .network
                    .networks
                    .iter()
                    .map(|a| a.network.clone())
                    .collect(),
                host_network: pod.spec.net.is_host(),
                network_mode: if pod.spec.network.networks.is_empty() {
                    pod.spec.net.to_string()
                } else {
                    "bridge".into()
                },
                pid_ns: if pod.spec.shares("pid") {
                    "pod".into()
                } else {
                    "private".into()
                },
            }),
            cpu_period: pod.spec.cpus.map(|_| 100_000),
            cpu_quota: pod.spec.cpus.map(|c| (c * 100_000.0) as i64),
            memory_limit: pod.spec.memory.unwrap_or(0),
            pids_limit: pod.spec.pids_limit.unwrap_or(0),
            shared_namespaces: shared,
            num_containers: cs.len(),
            containers: cs
                .iter()
                .map(|r| PodContainer {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    state: if r.state.paused {
                        "paused".into()
                    } else {
                        r.state.status.name().into()
                    },
                    ready: self.readiness(r),
                })
                .collect(),
            infra_ip: infra.map(|_| String::new()).unwrap_or_default(),
        })
        .map(|mut i| {
            if let Some(r) = infra {
                if let Ok(c) = self.inspect_container(&r.id) {
                    i.infra_ip = serde_json::to_value(&c)
                        .ok()
                        .and_then(|v| {
                            v["NetworkSettings"]["Networks"]
                                .as_object()
                                .and_then(|o| o.values().next().cloned())
                        })
                        .and_then(|n| n["IPAddress"].as_str().map(str::to_string))
                        .unwrap_or_default();
                }
            }
            i
        })
    }

    /// `berth pod top`: `ps` in each running container of the pod (not
    /// the infra), each row led by the container's name.
    pub fn pod_top(&self, what: &str, ps_args: &[String]) -> Result<crate::control::TopResponse> {
        let pod = self.ready_pod(what)?;
        let mut titles: Vec<String> = Vec::new();
        let mut processes = Vec::new();
        for r in self.pod_containers(&pod)? {
            if Some(&r.id) == pod.infra_id.as_ref()
                || !matches!(r.state.status, Status::Running | Status::Restarting)
            {
                continue;
            }
            let t = self.top_ps(&r.id, ps_args)?;
            if titles.is_empty() {
                titles.push("CONTAINER".into());
                titles.extend(t.titles.iter().cloned());
            }
            for mut p in t.processes {
                p.insert(0, r.name.clone());
                processes.push(p);
            }
        }
        if titles.is_empty() {
            return Err(Error::Conflict(format!(
                "pod {} has no running container",
                pod.name
            )));
        }
        Ok(crate::control::TopResponse { titles, processes })
    }
}

/// `berth pod inspect`'s document, with podman's field names.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PodInspect {
    pub id: String,
    pub name: String,
    pub created: String,
    pub state: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub create_cgroup: bool,
    pub cgroup_parent: String,
    pub cgroup_path: String,
    pub create_infra: bool,
    #[serde(rename = "InfraContainerID")]
    pub infra_container_id: String,
    pub infra_config: Option<InfraConfig>,
    #[serde(rename = "CPUPeriod", skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<u64>,
    #[serde(rename = "CPUQuota", skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    pub memory_limit: i64,
    pub pids_limit: i64,
    pub shared_namespaces: Vec<String>,
    pub num_containers: usize,
    pub containers: Vec<PodContainer>,
    /// The pod's address on its first network (berth's addition).
    #[serde(rename = "InfraIPAddress")]
    pub infra_ip: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InfraConfig {
    /// `PORT/PROTO` to the host ports published for it.
    pub port_bindings: BTreeMap<String, Vec<HostPort>>,
    pub networks: Vec<String>,
    pub host_network: bool,
    pub network_mode: String,
    #[serde(rename = "PidNS")]
    pub pid_ns: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostPort {
    pub host_ip: String,
    pub host_port: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PodContainer {
    pub id: String,
    pub name: String,
    pub state: String,
    /// Running, its startup probe passed, its readiness probe passing
    /// (berth's addition).
    pub ready: bool,
}

/// The pod, unless a create or rm of it is under way.
fn ready(pod: PodRecord) -> Result<PodRecord> {
    if pod.phase != PodPhase::Ready {
        return Err(Error::Conflict(format!(
            "pod {} is being {}",
            pod.name,
            if pod.phase == PodPhase::Creating {
                "created"
            } else {
                "removed"
            }
        )));
    }
    Ok(pod)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_share_net_ipc_uts_with_an_infra() {
        let s = PodSpec::default();
        assert!(s.infra && s.shares("net") && s.shares("ipc") && s.shares("uts"));
        assert!(!s.shares("pid"));
        s.validate().unwrap();
    }

    #[test]
    fn refuses_what_cannot_be() {
        let bad = |s: PodSpec, needle: &str| {
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        };
        bad(
            PodSpec {
                share: vec!["mnt".into()],
                ..Default::default()
            },
            "--share",
        );
        bad(
            PodSpec {
                infra: false,
                ..Default::default()
            },
            "nothing would hold them",
        );
        bad(
            PodSpec {
                share: vec!["net".into()],
                hostname: Some("x".into()),
                ..Default::default()
            },
            "shared uts",
        );
        bad(
            PodSpec {
                cpus: Some(0.0),
                ..Default::default()
            },
            "--cpus",
        );
        bad(
            PodSpec {
                pids_limit: Some(0),
                ..Default::default()
            },
            "--pids-limit",
        );
        PodSpec {
            infra: false,
            share: vec![],
            ..Default::default()
        }
        .validate()
        .unwrap();
    }

    fn rec(status: Status, paused: bool) -> Record {
        Record {
            id: "a".repeat(64),
            name: "x".into(),
            image: String::new(),
            image_id: String::new(),
            created: 0,
            spec: ContainerSpec::default(),
            state: crate::records::RunState {
                status,
                paused,
                ..Default::default()
            },
        }
    }

    #[test]
    fn status_as_podman_names_it() {
        use Status::*;
        assert_eq!(pod_status(&[]), "Created");
        assert_eq!(
            pod_status(&[rec(Running, false), rec(Running, false)]),
            "Running"
        );
        assert_eq!(
            pod_status(&[rec(Running, false), rec(Exited, false)]),
            "Degraded"
        );
        assert_eq!(pod_status(&[rec(Running, true)]), "Paused");
        let mut init = rec(Exited, false);
        init.spec.metadata.labels.insert(
            crate::kube_dns::LABEL_KUBE_CONTAINER.into(),
            "init:setup".into(),
        );
        assert_eq!(pod_status(&[init.clone(), rec(Running, false)]), "Running");
        assert_eq!(pod_status(&[init]), "Exited");
        assert_eq!(
            pod_status(&[rec(Exited, false), rec(Created, false)]),
            "Exited"
        );
        assert_eq!(pod_status(&[rec(Created, false)]), "Created");
    }
}
