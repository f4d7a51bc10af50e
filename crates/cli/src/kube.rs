//! `berth kube play/down/ls/status/generate`: Kubernetes YAML run as pods.
//!
//! berth-kube translates the manifest into a plan (pure); this file
//! converges the engine's pods to it, one workload at a time under the
//! workload's lock. Each pod carries labels naming its workload and the
//! hash of everything it was made from; a replay finds the pods by those
//! labels, so an unchanged file changes nothing, a missing or half-made
//! pod (a kill -9 during play) is made again, and pods of another hash
//! are replaced by a rolling update. There is no controller process:
//! what keeps a pod's containers running is each container's monitor
//! (restartPolicy), and play itself drives a Job to its completions.

use crate::containers::open;
use anyhow::{bail, Context, Result};
use berth_engine::kube::VolumeFile;
use berth_engine::pods::{PodCreate, PodRecord};
use berth_engine::records::{Record, Status};
use berth_engine::Engine;
use berth_kube::{
    Kind, PodPlan, Pull, Workload, LABEL_CONTAINER, LABEL_HASH, LABEL_KIND, LABEL_NAME, LABEL_POD,
};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// On a pod: the replicas its workload wants (for `kube ls`).
const LABEL_REPLICAS: &str = "io.berth.kube.replicas";

#[derive(Subcommand)]
#[command(defer = true)]
pub enum KubeCmd {
    /// Create pods, volumes and services from Kubernetes YAML (or bring
    /// them up to date: replaying an unchanged file changes nothing).
    Play(PlayArgs),
    /// Remove what `kube play FILE` made (PersistentVolumeClaims' volumes
    /// are kept).
    Down {
        /// The YAML file, an http(s) URL, or - for standard input.
        file: PathBuf,
        /// Accepted as `kube play` takes it; not needed (down reads only
        /// each object's kind and name).
        #[arg(long = "configmap")]
        configmap: Vec<PathBuf>,
    },
    /// The workloads `kube play` made: desired and ready pods.
    #[command(alias = "list")]
    Ls,
    /// Desired and ready pods of the workloads of FILE.
    Status {
        file: PathBuf,
        #[arg(long)]
        network: Option<String>,
        #[arg(long = "configmap")]
        configmap: Vec<PathBuf>,
    },
    /// Write a Pod manifest (YAML that `kube play` and Kubernetes accept)
    /// for a container or a pod.
    Generate {
        /// A container or pod name or id.
        what: String,
    },
}

#[derive(Args)]
pub struct PlayArgs {
    /// The YAML file, an http(s) URL, or - for standard input.
    pub file: PathBuf,
    /// Remove what the file made instead (as `kube down`).
    #[arg(long)]
    pub down: bool,
    /// Remove and make again every pod of the file, even those up to date.
    #[arg(long)]
    pub replace: bool,
    /// Start the pods (false: create them only).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub start: bool,
    /// The network the pods are put on (default: as for `berth run`).
    #[arg(long)]
    pub network: Option<String>,
    /// A YAML file of ConfigMaps (and Secrets) the manifest refers to.
    #[arg(long = "configmap")]
    pub configmap: Vec<PathBuf>,
    /// Build the images that have a directory of their own (the image
    /// name's last path component, in the working directory, holding a
    /// Containerfile or Dockerfile) as podman does: without the flag, only
    /// those missing from the store; with --build, all of them;
    /// --build=false, none.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub build: Option<bool>,
}

/// The largest manifest read from a URL.
const MAX_REMOTE_MANIFEST: u64 = 16 << 20;

fn read(file: &Path) -> Result<(String, String)> {
    if let Some(url) = file
        .to_str()
        .filter(|f| f.starts_with("http://") || f.starts_with("https://"))
    {
        let s = berth_engine::images::fetch_text(url, MAX_REMOTE_MANIFEST)
            .with_context(|| format!("kube: read the manifest {url}"))?;
        return Ok((url.to_string(), s));
    }
    if file == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("kube: read the manifest from standard input")?;
        return Ok(("-".into(), s));
    }
    let s = std::fs::read_to_string(file)
        .with_context(|| format!("kube: read the manifest {}", file.display()))?;
    Ok((file.display().to_string(), s))
}

/// The plan of FILE with the --configmap files' objects added.
fn load(
    file: &Path,
    network: Option<&str>,
    configmaps: &[PathBuf],
    warn: bool,
) -> Result<berth_kube::Plan> {
    let (name, text) = read(file)?;
    let mut m = berth_kube::parse(&name, &text)?;
    for c in configmaps {
        let (cname, ctext) = read(c)?;
        let cm = berth_kube::parse(&cname, &ctext)?;
        m.warnings.extend(cm.warnings);
        for (doc, d) in cm.docs {
            match d {
                berth_kube::Doc::ConfigMap(_) | berth_kube::Doc::Secret(_) => m.docs.insert(0, (doc, d)),
                _ => bail!("--configmap {cname}: {doc}: only ConfigMaps and Secrets are read from a --configmap file"),
            }
        }
    }
    let network = network
        .map(str::to_string)
        .unwrap_or_else(berth_engine::specgen::default_network);
    let plan = berth_kube::plan(&m, &berth_kube::Options { network })?;
    if warn {
        // A file full of unknown fields says so in a screenful, not in
        // one line each.
        for w in plan.warnings.iter().take(WARNINGS_SHOWN) {
            eprintln!("WARNING: {w}");
        }
        if plan.warnings.len() > WARNINGS_SHOWN {
            eprintln!(
                "WARNING: {name}: {} more warnings not shown",
                plan.warnings.len() - WARNINGS_SHOWN
            );
        }
    }
    Ok(plan)
}

/// The workloads of FILE by kind and name, nothing resolved: what
/// `kube down` removes (a ConfigMap the file refers to may be gone, or
/// have been given by --configmap).
fn objects(file: &Path) -> Result<Vec<(Kind, String)>> {
    let (name, text) = read(file)?;
    Ok(berth_kube::objects(&berth_kube::parse(&name, &text)?))
}

pub fn kube(root: &Path, run_root: &Path, c: KubeCmd) -> Result<()> {
    match c {
        KubeCmd::Play(a) => {
            if a.down {
                let objects = objects(&a.file)?;
                return down(&open(root, run_root)?, &objects);
            }
            let plan = load(&a.file, a.network.as_deref(), &a.configmap, true)?;
            let engine = open(root, run_root)?;
            build_images(root, &engine, &plan, a.build)?;
            play(root, &engine, &plan, &a)
        }
        KubeCmd::Down { file, configmap: _ } => {
            let objects = objects(&file)?;
            down(&open(root, run_root)?, &objects)
        }
        KubeCmd::Ls => ls(&open(root, run_root)?, None),
        KubeCmd::Status {
            file,
            network,
            configmap,
        } => {
            let plan = load(&file, network.as_deref(), &configmap, false)?;
            ls(&open(root, run_root)?, Some(&plan))
        }
        KubeCmd::Generate { what } => generate(&open(root, run_root)?, &what),
    }
}

fn random_suffix() -> Result<String> {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut b = [0u8; 5];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").context("open /dev/urandom")?,
        &mut b,
    )
    .context("read /dev/urandom")?;
    Ok(b.iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect())
}

/// The pods of a workload.
fn pods_of(engine: &Engine, kind: &str, name: &str) -> Result<Vec<PodRecord>> {
    Ok(engine
        .pod_list()?
        .into_iter()
        .filter(|p| {
            p.spec.labels.get(LABEL_KIND).map(String::as_str) == Some(kind)
                && p.spec.labels.get(LABEL_NAME).map(String::as_str) == Some(name)
        })
        .collect())
}

/// A pod's members other than its infra.
fn members(engine: &Engine, pod: &PodRecord) -> Result<Vec<Record>> {
    Ok(engine
        .pod_containers(pod)?
        .into_iter()
        .filter(|r| Some(&r.id) != pod.infra_id.as_ref())
        .collect())
}

fn is_init(r: &Record) -> bool {
    r.spec
        .metadata
        .labels
        .get(LABEL_CONTAINER)
        .is_some_and(|c| c.starts_with("init:"))
}

/// Ready: every (non-init) container ready (running, its startup probe
/// passed and its readiness probe passing; the monitor's health file).
fn ready(engine: &Engine, pod: &PodRecord) -> bool {
    members(engine, pod).is_ok_and(|m| {
        let app: Vec<&Record> = m.iter().filter(|r| !is_init(r)).collect();
        !app.is_empty() && app.iter().all(|r| engine.readiness(r))
    })
}

/// Removes a pod made by play and the volumes made for it. Its
/// containers with a preStop hook are stopped first (the hook, then the
/// stop signal, within terminationGracePeriodSeconds, as Kubernetes
/// deletes a pod); the others are killed with the pod, as podman's
/// `kube down` does.
fn remove_pod(engine: &Engine, pod: &PodRecord) -> Result<()> {
    let hooked: Vec<Record> = members(engine, pod)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.state.status == Status::Running && r.spec.health.pre_stop().is_some())
        .collect();
    std::thread::scope(|s| {
        for r in &hooked {
            s.spawn(|| {
                if let Err(e) = engine.stop(&r.id, None) {
                    eprintln!("berth: warning: kube: stop container {}: {e}", r.name);
                }
            });
        }
    });
    engine
        .pod_remove(&pod.id, true)
        .with_context(|| format!("kube: remove pod {}", pod.name))?;
    for v in engine.records.volumes()? {
        if v.labels.get(LABEL_POD) == Some(&pod.name) {
            engine
                .remove_volume(&v.name)
                .with_context(|| format!("kube: remove volume {} of pod {}", v.name, pod.name))?;
        }
    }
    Ok(())
}

/// Removes the volumes made for pods of a workload that are gone (a pod
/// removed by hand, or by a play killed half-way).
fn remove_orphan_volumes(engine: &Engine, kind: &str, name: &str) -> Result<()> {
    let live: Vec<String> = pods_of(engine, kind, name)?
        .into_iter()
        .map(|p| p.name)
        .collect();
    for v in engine.records.volumes()? {
        let l = &v.labels;
        if l.get(LABEL_KIND).map(String::as_str) == Some(kind)
            && l.get(LABEL_NAME).map(String::as_str) == Some(name)
            && l.get(LABEL_POD).is_some_and(|p| !live.contains(p))
        {
            engine
                .remove_volume(&v.name)
                .with_context(|| format!("kube: remove volume {} of a removed pod", v.name))?;
        }
    }
    Ok(())
}

/// The directory `kube play` builds `image` from (podman's rule): the
/// image name's last path component, without tag or digest, under the
/// working directory, if it holds a Containerfile or a Dockerfile.
fn build_dir(image: &str) -> Option<PathBuf> {
    let name = image.split('@').next().unwrap_or(image);
    let name = name.rsplit('/').next().unwrap_or(name);
    let name = name.split(':').next().unwrap_or(name);
    if name.is_empty() || name == "." || name == ".." {
        return None;
    }
    let dir = PathBuf::from(name);
    ["Containerfile", "Dockerfile"]
        .iter()
        .any(|f| dir.join(f).is_file())
        .then_some(dir)
}

/// `kube play --build`: builds the plan's images that have a build
/// directory, when asked (`Some(true)`) or when missing from the store
/// (`None`).
fn build_images(
    root: &Path,
    engine: &Engine,
    plan: &berth_kube::Plan,
    build: Option<bool>,
) -> Result<()> {
    if build == Some(false) {
        return Ok(());
    }
    let mut done: Vec<String> = Vec::new();
    for image in plan.workloads.iter().flat_map(|w| w.images()) {
        if done.contains(&image) {
            continue;
        }
        done.push(image.clone());
        let Some(dir) = build_dir(&image) else {
            continue;
        };
        let present = matches!(
            engine.image_for(&image, berth_engine::images::PullPolicy::Never, None),
            Ok(berth_engine::images::ImageChoice::Stored(_))
        );
        if present && build.is_none() {
            continue;
        }
        eprintln!("kube: building {image} from {}", dir.display());
        crate::build::build_dir(engine, root, &dir, &image)
            .with_context(|| format!("kube: build {image} from {}", dir.display()))?;
    }
    Ok(())
}

fn image_id(
    root: &Path,
    engine: &Engine,
    image: &str,
    pull: Pull,
) -> Result<berth_engine::images::Digest> {
    use berth_engine::images::{ImageChoice, PullPolicy as P};
    let policy = match pull {
        Pull::Always => P::Always,
        Pull::IfNotPresent => P::Missing,
        Pull::Never => P::Never,
    };
    let choice = engine.image_for(image, policy, None).map_err(|e| match e {
        berth_engine::images::ImageForError::Store(e) => anyhow::Error::from(e),
        _ => anyhow::anyhow!(
            "image {image:?} is not in the store and imagePullPolicy is Never; pull it first (`berth pull {image}`)"
        ),
    })?;
    match choice {
        ImageChoice::Stored(id) => Ok(id),
        ImageChoice::Pull { fallback, .. } => {
            let pulled = crate::images::pull_image(
                root,
                &crate::images::PullArgs {
                    image: image.to_string(),
                    quiet: true,
                    platform: None,
                    tls_verify: true,
                    creds: None,
                    parallel: 3,
                },
            );
            match (pulled, fallback) {
                (Err(_), Some(id)) => Ok(id),
                (p, _) => p,
            }
        }
    }
}

/// Checks (or makes) a hostPath volume's path per its type.
fn host_path(path: &str, kind: &str) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let p = Path::new(path);
    let meta = std::fs::metadata(p);
    let ok = match kind {
        "" => return Ok(()),
        "DirectoryOrCreate" => {
            return std::fs::create_dir_all(p)
                .with_context(|| format!("kube: hostPath {path}: create the directory"))
        }
        "FileOrCreate" => {
            return std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map(|_| ())
                .with_context(|| format!("kube: hostPath {path}: create the file"))
        }
        "Directory" => meta.as_ref().is_ok_and(|m| m.is_dir()),
        "File" => meta.as_ref().is_ok_and(|m| m.is_file()),
        "Socket" => meta.as_ref().is_ok_and(|m| m.file_type().is_socket()),
        "CharDevice" => meta.as_ref().is_ok_and(|m| m.file_type().is_char_device()),
        "BlockDevice" => meta.as_ref().is_ok_and(|m| m.file_type().is_block_device()),
        _ => false,
    };
    if !ok {
        bail!("kube: hostPath {path}: not a {kind} on this host");
    }
    Ok(())
}

/// A pod's `metadata.uid`: its id's first 128 bits as a UUID.
fn kube_uid(id: &str) -> String {
    let h = |a: usize, b: usize| id.get(a..b).unwrap_or("0");
    format!(
        "{}-{}-{}-{}-{}",
        h(0, 8),
        h(8, 12),
        h(12, 16),
        h(16, 20),
        h(20, 32)
    )
}

/// Makes one pod of `w` (and starts it when `start`).
fn make_pod(
    root: &Path,
    engine: &Engine,
    w: &Workload,
    index: u32,
    start: bool,
) -> Result<PodRecord> {
    let name = match w.kind {
        Kind::Pod => w.name.clone(),
        _ => berth_kube::generated_name(&w.pod_prefix(), &random_suffix()?),
    };
    let plan: PodPlan = w.pod(&name, index)?;
    for c in &plan.claims {
        if engine.records.volume(c).is_err() {
            let labels = [(berth_kube::LABEL_CLAIM.to_string(), c.clone())].into();
            engine.create_volume(c, labels, false)?;
        }
    }
    for (p, t) in &plan.host_paths {
        host_path(p, t)?;
    }
    let mut spec = plan.spec.clone();
    spec.labels
        .insert(LABEL_HASH.into(), w.template_hash.clone());
    spec.labels
        .insert(LABEL_REPLICAS.into(), w.replicas.to_string());
    if let Some(j) = &w.job {
        spec.labels
            .insert(LABEL_REPLICAS.into(), j.completions.to_string());
    }
    let pod = engine
        .pod_create(&PodCreate {
            name: Some(name.clone()),
            spec,
        })
        .with_context(|| format!("kube: {}: create pod {name}", w.doc))?;
    // What the env and the downwardAPI files may take from the pod once
    // it is made.
    let fields = berth_kube::PodFields {
        uid: kube_uid(&pod.id),
        pod_ips: engine
            .kube_pod_ips(&pod)
            .iter()
            .map(|a| a.to_string())
            .collect(),
        host_ips: berth_engine::kube::host_ips()
            .iter()
            .map(|a| a.to_string())
            .collect(),
    };
    let vol_labels: BTreeMap<String, String> = [
        (LABEL_POD.to_string(), name.clone()),
        (LABEL_KIND.to_string(), w.kind.as_str().to_string()),
        (LABEL_NAME.to_string(), w.name.clone()),
    ]
    .into();
    for v in &plan.volumes {
        let data: Vec<Vec<u8>> = v
            .files
            .iter()
            .map(|f| match v.pod_fields {
                true => fields.fill_file(&f.data),
                false => f.data.clone(),
            })
            .collect();
        let files: Vec<VolumeFile> = v
            .files
            .iter()
            .zip(&data)
            .map(|(f, data)| VolumeFile {
                path: &f.path,
                data,
                mode: f.mode,
            })
            .collect();
        engine
            .kube_fill_volume(
                &v.name,
                vol_labels.clone(),
                &v.options,
                v.dir.map(|d| (d.mode, d.gid)),
                &files,
            )
            .with_context(|| format!("kube: pod {name}: volume {}", v.name))?;
    }
    let make = |c: &berth_kube::ContainerPlan| -> Result<Record> {
        let id = image_id(root, engine, &c.image, c.pull)?;
        let mut spec = c.spec.clone();
        berth_kube::fill_pod_fields(&mut spec, &fields);
        if let Some(f) = &c.seccomp_file {
            let profile = std::fs::read_to_string(f).with_context(|| {
                format!("kube: container {}: read its seccomp profile {f}", c.name)
            })?;
            spec.security.seccomp = berth_engine::specgen::SeccompPolicy::Profile { profile };
        }
        spec.pod = Some(pod.id.clone());
        if c.run_as_non_root {
            let user = engine.image_config(&id)?.user.unwrap_or_default();
            let u = user.split(':').next().unwrap_or("");
            if u.is_empty() || u == "0" || u == "root" {
                bail!("kube: container {}: runAsNonRoot is true but image {} runs as root (set runAsUser)", c.name, c.image);
            }
        }
        Ok(engine.create(&c.image, &id, Some(&c.name), spec)?)
    };
    for c in &plan.init_containers {
        let r = make(c)?;
        if start {
            engine
                .start_session(&r.id, None)
                .with_context(|| format!("kube: pod {name}: start init container {}", c.name))?;
            let code = engine.wait(&r.id)?;
            if code != 0 {
                bail!("kube: pod {name}: init container {} exited with {code}: the pod's containers are not started (see `berth logs {}`)", c.name, c.name);
            }
        }
    }
    let mut made = Vec::new();
    for c in &plan.containers {
        made.push(make(c)?);
    }
    if start {
        for r in &made {
            engine
                .start_session(&r.id, None)
                .with_context(|| format!("kube: pod {name}: start container {}", r.name))?;
        }
        // Its Services' names, if its containers are ready already.
        if let Some(r) = made.first() {
            engine.kube_readiness_changed(&r.id);
        }
    }
    Ok(pod)
}

/// `n` pods of `w` made together (the first publishes the host ports
/// when `publish`), each a thread: a pod's time is mostly waits on its
/// runtime and monitor (a first pod's import of the infra image is the
/// engine's, under its lock).
fn make_pods(
    root: &Path,
    engine: &Engine,
    w: &Workload,
    n: usize,
    publish: bool,
    start: bool,
) -> Vec<Result<PodRecord>> {
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let index = if publish && i == 0 { 0 } else { 1 };
                s.spawn(move || make_pod(root, engine, w, index, start))
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(anyhow::anyhow!("kube: {}: a pod's thread panicked", w.doc))
                })
            })
            .collect()
    })
}

/// Whether a pod is whole: every container of its plan is there (a play
/// killed half-way leaves one that is not).
fn whole(engine: &Engine, w: &Workload, pod: &PodRecord) -> bool {
    let Ok(plan) = w.pod(&pod.name, 1) else {
        return false;
    };
    let want = plan.init_containers.len() + plan.containers.len();
    members(engine, pod).is_ok_and(|m| m.len() == want)
}

fn play(root: &Path, engine: &Engine, plan: &berth_kube::Plan, a: &PlayArgs) -> Result<()> {
    for c in &plan.claims {
        if engine.records.volume(&c.name).is_err() {
            engine.create_volume(&c.name, c.labels.clone(), false)?;
            println!("volume/{}", c.name);
        }
    }
    let mut failed = Vec::new();
    for w in &plan.workloads {
        let object = format!("{}/{}", w.kind.as_str(), w.name);
        let _lock = engine.kube_lock(&object)?;
        remove_orphan_volumes(engine, w.kind.as_str(), &w.name)?;
        let r = if w.kind == Kind::Job {
            job(root, engine, w, a)
        } else {
            converge(root, engine, w, a)
        };
        if let Err(e) = r {
            eprintln!("Error: {object}: {}", crate::output::text(&e));
            failed.push(object);
        }
    }
    if !failed.is_empty() {
        bail!(
            "kube play: {} failed (replay the file to retry)",
            failed.join(", ")
        );
    }
    Ok(())
}

/// Whether a pod's containers need starting again: one of them (not an
/// init container) is neither running nor restarting, that is has no
/// live monitor (`pod stop`, a reboot). A container in restart back-off
/// is its monitor's: left alone.
fn stopped(engine: &Engine, pod: &PodRecord) -> bool {
    members(engine, pod).map_or(true, |m| {
        m.iter()
            .filter(|r| !is_init(r))
            .any(|r| !matches!(r.state.status, Status::Running | Status::Restarting))
    })
}

/// Starts the containers of a pod that are stopped (not running and not
/// restarting: a container whose monitor is alive is left to it).
fn start_stopped(engine: &Engine, pod: &PodRecord) -> Result<()> {
    for r in members(engine, pod)?.iter().filter(|r| !is_init(r)) {
        if matches!(r.state.status, Status::Running | Status::Restarting) {
            continue;
        }
        if let Err(e) = engine.start_session(&r.id, None) {
            // Its monitor came back meanwhile (a restart): its own.
            let live = engine
                .get(&r.id)
                .is_ok_and(|r| matches!(r.state.status, Status::Running | Status::Restarting));
            if !live {
                return Err(e.into());
            }
        }
        engine.kube_readiness_changed(&r.id);
    }
    Ok(())
}

/// How long a rolling update waits between looks at its pods.
const ROLLOUT_POLL: Duration = Duration::from_millis(200);

/// The warnings of a manifest printed at most (then how many more).
const WARNINGS_SHOWN: usize = 20;

/// Pods of a workload other than Job to what it wants: extra pods
/// removed (unready ones first), stopped ones started, missing ones made,
/// and pods of another hash replaced as Kubernetes' Deployment
/// controller does: at most `replicas + maxSurge` pods, never fewer than
/// `replicas - maxUnavailable` ready (an old pod goes once a new one is
/// ready), unready old pods first; Recreate: every old pod first. Play is
/// the controller while it runs: it waits for the new pods to be ready
/// (a Deployment: all of them, as `kubectl rollout status` does), failing
/// when nothing progressed for `progressDeadlineSeconds`.
fn converge(root: &Path, engine: &Engine, w: &Workload, a: &PlayArgs) -> Result<()> {
    let object = format!("{}/{}", w.kind.as_str(), w.name);
    let want = w.replicas as usize;
    let before = engine.kube_desired(&object);
    let (mut current, mut old): (Vec<PodRecord>, Vec<PodRecord>) = (Vec::new(), Vec::new());
    let mut label_before = None;
    for p in pods_of(engine, w.kind.as_str(), &w.name)? {
        label_before = label_before.or_else(|| {
            p.spec
                .labels
                .get(LABEL_REPLICAS)
                .and_then(|n| n.parse::<u32>().ok())
        });
        if a.replace || !whole(engine, w, &p) {
            remove_pod(engine, &p)?;
        } else if p.spec.labels.get(LABEL_HASH) == Some(&w.template_hash) {
            current.push(p);
        } else {
            old.push(p);
        }
    }
    let before = before.or(label_before);
    engine.kube_set_desired(&object, w.replicas)?;
    let mut changed = false;
    if let Some(b) = before.filter(|b| *b != w.replicas && w.kind != Kind::Pod) {
        println!("{object} scaled {b} -> {}", w.replicas);
        changed = true;
    }
    // Scaled down: the extra pods of the current template go, the ones
    // not ready first (as Kubernetes picks them).
    if current.len() > want {
        current.sort_by_key(|p| ready(engine, p));
        let extra: Vec<PodRecord> = current.drain(..current.len() - want).collect();
        for p in extra {
            remove_pod(engine, &p)?;
            println!("pod/{} removed", p.name);
            changed = true;
        }
    }
    if a.start {
        // Pods that are there but stopped (`pod stop`, a reboot): their
        // containers started again. One that cannot be started (a play
        // killed while it started the pod's infra) is made anew below.
        let mut kept = Vec::new();
        for p in current {
            if stopped(engine, &p) {
                if let Err(e) = start_stopped(engine, &p) {
                    eprintln!(
                        "WARNING: pod {}: start it again: {}; making it anew",
                        p.name,
                        crate::output::text(&e)
                    );
                    remove_pod(engine, &p)?;
                    continue;
                }
            }
            kept.push(p);
        }
        current = kept;
    }
    // A workload that publishes host ports cannot run two generations at
    // once, nor can a Pod (one name): the old pods go first.
    let publishes = w
        .pod("x", 0)
        .is_ok_and(|p| !p.spec.network.ports.is_empty());
    let r = w.rollout;
    let (surge, unavail) = if w.kind == Kind::Pod || publishes || r.recreate {
        (0, (r.max_unavailable as usize).max(1))
    } else {
        (r.max_surge as usize, r.max_unavailable as usize)
    };
    // Without starting, no pod gets ready: old pods go at once.
    let gate = a.start;
    // A Deployment's play that made pods ends with its rollout (every
    // new pod ready); an unchanged replay does not wait.
    let wait_all = a.start && w.kind == Kind::Deployment;
    let deadline = Duration::from_secs(r.progress_deadline_s);
    let mut last_progress = Instant::now();
    let mut seen = (usize::MAX, usize::MAX, usize::MAX);
    let mut rolled = false;
    loop {
        // A pod removed meanwhile (by hand) is no longer counted: the
        // loop makes another.
        if rolled {
            let live: Vec<String> = pods_of(engine, w.kind.as_str(), &w.name)?
                .into_iter()
                .map(|p| p.id)
                .collect();
            current.retain(|p| live.contains(&p.id));
            old.retain(|p| live.contains(&p.id));
        }
        let new_ready = if gate {
            current.iter().filter(|p| ready(engine, p)).count()
        } else {
            current.len()
        };
        let old_ready: Vec<bool> = old.iter().map(|p| gate && ready(engine, p)).collect();
        let state = (current.len(), new_ready, old.len());
        if state != seen {
            if seen.0 != usize::MAX {
                last_progress = Instant::now();
            }
            seen = state;
            if rolled && (current.len() < want || new_ready < want || !old.is_empty()) {
                println!(
                    "{object}: rollout: {} of {want} new pods made, {new_ready} ready; {} old left",
                    current.len(),
                    old.len()
                );
            }
        }
        if current.len() >= want && old.is_empty() && (!wait_all || !rolled || new_ready >= want) {
            break;
        }
        if last_progress.elapsed() > deadline {
            bail!(
                "kube: the rollout made no progress in {}s (progressDeadlineSeconds): {} of {want} new pods ready, {} old pods left; the pods are left as they are",
                r.progress_deadline_s,
                new_ready,
                old.len()
            );
        }
        // Old pods that may go now. Kubernetes: all pods - the minimum
        // available - the new pods not ready yet, unready old pods
        // first, then ready ones while the ready stay at least
        // replicas - maxUnavailable.
        let min_avail = want.saturating_sub(unavail);
        let total = current.len() + old.len();
        let mut go: Vec<usize> = Vec::new();
        if r.recreate || !gate {
            go.extend(0..old.len());
        } else {
            let mut budget = total
                .saturating_sub(min_avail)
                .saturating_sub(current.len() - new_ready);
            for (i, _) in old_ready.iter().enumerate().filter(|(_, r)| !**r) {
                if budget == 0 {
                    break;
                }
                go.push(i);
                budget -= 1;
            }
            let available = new_ready + old_ready.iter().filter(|r| **r).count();
            let mut spare = available.saturating_sub(min_avail).min(budget);
            for (i, _) in old_ready.iter().enumerate().filter(|(_, r)| **r) {
                if spare == 0 {
                    break;
                }
                go.push(i);
                spare -= 1;
            }
        }
        go.sort_unstable();
        for i in go.into_iter().rev() {
            let p = old.remove(i);
            remove_pod(engine, &p)?;
            println!("pod/{} removed", p.name);
            changed = true;
            rolled = true;
        }
        // New pods: up to replicas + maxSurge in all (Recreate: once the
        // old ones are gone).
        let room = if r.recreate && !old.is_empty() {
            0
        } else {
            want.saturating_sub(current.len())
                .min((want + surge).saturating_sub(current.len() + old.len()))
        };
        if room > 0 {
            // The host ports (hostPort, NodePort) are the first pod's: the
            // one made while no pod of the workload holds them.
            let held = current
                .iter()
                .chain(&old)
                .any(|p| !p.spec.network.ports.is_empty());
            for p in make_pods(root, engine, w, room, !held, a.start) {
                let p = p?;
                println!("pod/{}", p.name);
                current.push(p);
            }
            changed = true;
            rolled = true;
            continue;
        }
        std::thread::sleep(ROLLOUT_POLL);
    }
    if rolled && wait_all {
        println!("{object} rolled out ({want}/{want} ready)");
    }
    if !changed {
        println!("{object} unchanged");
    }
    Ok(())
}

/// The failed runs of a pod's containers (init containers too) that
/// their monitors restarted or will restart: a Job's retries under
/// restartPolicy OnFailure, which Kubernetes counts against
/// backoffLimit as it counts failed pods under Never. A container waiting
/// for its restart, or ended with a non-zero code, counts its last run.
fn failed_runs(engine: &Engine, pod: &PodRecord) -> u32 {
    members(engine, pod).map_or(0, |m| {
        m.iter()
            .map(|r| {
                let failing = match r.state.status {
                    Status::Restarting => true,
                    Status::Exited => r.state.exit_code != 0,
                    _ => false,
                };
                r.state.restarts.saturating_add(u32::from(failing))
            })
            .fold(0u32, u32::saturating_add)
    })
}

fn pod_outcome(engine: &Engine, pod: &PodRecord) -> Option<bool> {
    let m = members(engine, pod).ok()?;
    let app: Vec<&Record> = m.iter().filter(|r| !is_init(r)).collect();
    if app.is_empty() {
        return Some(false);
    }
    if app.iter().any(|r| {
        matches!(
            r.state.status,
            Status::Running | Status::Restarting | Status::Created
        )
    }) {
        return None;
    }
    Some(app.iter().all(|r| r.state.exit_code == 0))
}

/// A Job: play runs it to `completions` successful pods, `parallelism`
/// at a time, at most `backoffLimit` failures, within
/// `activeDeadlineSeconds` (from its first pod). berth has no controller:
/// play is the Job's for as long as it runs; a replay after an
/// interruption goes on from the pods there are.
fn job(root: &Path, engine: &Engine, w: &Workload, a: &PlayArgs) -> Result<()> {
    let object = format!("Job/{}", w.name);
    let Some(j) = w.job else { return Ok(()) };
    if a.replace {
        for p in pods_of(engine, "Job", &w.name)? {
            remove_pod(engine, &p)?;
        }
    }
    let first = pods_of(engine, "Job", &w.name)?
        .iter()
        .map(|p| p.created)
        .min();
    let started = match first {
        Some(ns) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64);
            let age = now.saturating_sub(ns).max(0) as u64;
            Instant::now()
                .checked_sub(Duration::from_nanos(age))
                .unwrap_or_else(Instant::now)
        }
        None => Instant::now(),
    };
    loop {
        let pods = pods_of(engine, "Job", &w.name)?;
        let mut running = Vec::new();
        let (mut ok, mut failed) = (0u32, 0u32);
        for p in &pods {
            if !whole(engine, w, p) {
                remove_pod(engine, p)?;
                continue;
            }
            let outcome = pod_outcome(engine, p);
            match outcome {
                Some(true) => ok += 1,
                Some(false) => failed += 1,
                None => running.push(p),
            }
            // OnFailure: a pod's containers are retried in place, each
            // failed run a retry (those of a pod that failed in the end
            // beyond the one counted above).
            if j.on_failure && outcome != Some(true) {
                let runs = failed_runs(engine, p);
                failed += runs.saturating_sub(u32::from(outcome == Some(false)));
            }
        }
        if ok >= j.completions {
            println!("{object} complete ({ok}/{} succeeded)", j.completions);
            return Ok(());
        }
        if failed > j.backoff_limit {
            for p in running {
                let _ = engine.pod_kill(&p.id, libc::SIGKILL);
            }
            bail!(
                "kube: {object} failed (BackoffLimitExceeded): {failed} {} failed, more than backoffLimit {}",
                if j.on_failure { "runs" } else { "pods" },
                j.backoff_limit
            );
        }
        if let Some(d) = j.active_deadline_seconds {
            if started.elapsed() > Duration::from_secs(d) {
                for p in running {
                    let _ = engine.pod_kill(&p.id, libc::SIGKILL);
                }
                bail!("kube: {object} failed: activeDeadlineSeconds {d} passed");
            }
        }
        if !a.start {
            if pods.is_empty() {
                let p = make_pod(root, engine, w, 0, false)?;
                println!("pod/{}", p.name);
            }
            return Ok(());
        }
        let left = j.completions - ok;
        let room = (j.parallelism as usize)
            .min(left as usize)
            .saturating_sub(running.len());
        for p in make_pods(root, engine, w, room, false, true) {
            println!("pod/{}", p?.name);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn down(engine: &Engine, objects: &[(Kind, String)]) -> Result<()> {
    let mut errors = 0;
    for (kind, name) in objects {
        let object = format!("{}/{name}", kind.as_str());
        let _lock = engine.kube_lock(&object)?;
        let pods = pods_of(engine, kind.as_str(), name)?;
        // Together: each removal is mostly waits on monitors.
        let done: Vec<(String, Result<()>)> = std::thread::scope(|s| {
            let hs: Vec<_> = pods
                .iter()
                .map(|p| (p.name.clone(), s.spawn(|| remove_pod(engine, p))))
                .collect();
            hs.into_iter()
                .map(|(n, h)| {
                    let r = h.join().unwrap_or_else(|_| {
                        Err(anyhow::anyhow!("kube down: pod {n}: the thread panicked"))
                    });
                    (n, r)
                })
                .collect()
        });
        for (n, r) in done {
            match r {
                Ok(()) => println!("pod/{n} removed"),
                Err(e) => {
                    eprintln!("Error: {}", crate::output::text(&e));
                    errors += 1;
                }
            }
        }
        if let Err(e) = remove_orphan_volumes(engine, kind.as_str(), name) {
            eprintln!("Error: {}", crate::output::text(&e));
            errors += 1;
        }
        if errors == 0 {
            if let Err(e) = engine.kube_forget(&object) {
                eprintln!(
                    "Error: {object}: {}",
                    crate::output::text(&anyhow::Error::from(e))
                );
                errors += 1;
            }
        }
    }
    if errors > 0 {
        bail!("kube down: {errors} pods could not be removed");
    }
    Ok(())
}

fn ls(engine: &Engine, plan: Option<&berth_kube::Plan>) -> Result<()> {
    let mut rows: BTreeMap<(String, String), (String, usize, usize)> = BTreeMap::new();
    if let Some(plan) = plan {
        for w in &plan.workloads {
            let want = w.job.map_or(w.replicas, |j| j.completions);
            rows.insert(
                (w.kind.as_str().into(), w.name.clone()),
                (want.to_string(), 0, 0),
            );
        }
    }
    for p in engine.pod_list()? {
        let (Some(k), Some(n)) = (p.spec.labels.get(LABEL_KIND), p.spec.labels.get(LABEL_NAME))
        else {
            continue;
        };
        let key = (k.clone(), n.clone());
        if plan.is_some() && !rows.contains_key(&key) {
            continue;
        }
        let e = rows.entry(key).or_insert_with(|| {
            // What the last play wanted (its record), else what the pod
            // was made for (a pod made before plays kept a record).
            let want = engine
                .kube_desired(&format!("{k}/{n}"))
                .map(|n| n.to_string())
                .or_else(|| p.spec.labels.get(LABEL_REPLICAS).cloned())
                .unwrap_or_default();
            (want, 0, 0)
        });
        e.2 += 1;
        let ok = if k == "Job" {
            pod_outcome(engine, &p) == Some(true)
        } else {
            ready(engine, &p)
        };
        if ok {
            e.1 += 1;
        }
    }
    let body: Vec<Vec<String>> = rows
        .into_iter()
        .map(|((k, n), (want, ready, pods))| {
            vec![k, n, format!("{ready}/{want}"), pods.to_string()]
        })
        .collect();
    crate::manage::table(&["KIND", "NAME", "READY", "PODS"], &body)?;
    Ok(())
}

/// A probe or hook of a container's spec as Kubernetes spells it (only
/// what differs from Kubernetes' defaults).
fn kube_probe(p: &berth_engine::health::ProbeSpec) -> berth_kube::types::Probe {
    use berth_engine::health::Handler;
    use berth_kube::types as t;
    let d = berth_engine::health::ProbeSpec::default();
    let secs = |ms: u64, def: u64| (ms != def).then_some((ms / 1000) as i64);
    let host = |h: &str| (!h.is_empty()).then(|| h.to_string());
    let mut out = t::Probe {
        initial_delay_seconds: secs(p.initial_delay_ms, d.initial_delay_ms),
        period_seconds: secs(p.period_ms, d.period_ms),
        timeout_seconds: secs(p.timeout_ms, d.timeout_ms),
        success_threshold: (p.success_threshold != d.success_threshold)
            .then_some(p.success_threshold as i64),
        failure_threshold: (p.failure_threshold != d.failure_threshold)
            .then_some(p.failure_threshold as i64),
        termination_grace_period_seconds: p.termination_grace_s.map(i64::from),
        ..Default::default()
    };
    match &p.handler {
        Handler::Exec { command } => {
            out.exec = Some(t::ExecAction {
                command: command.clone(),
            })
        }
        Handler::HttpGet {
            host: h,
            port,
            path,
            scheme,
            headers,
        } => {
            out.http_get = Some(t::HttpGetAction {
                path: (!path.is_empty()).then(|| path.clone()),
                port: Some(t::IntOrString::Int(i64::from(*port))),
                host: host(h),
                scheme: (!scheme.is_empty() && scheme != "HTTP").then(|| scheme.clone()),
                http_headers: headers
                    .iter()
                    .map(|(name, value)| t::HttpHeader {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            })
        }
        Handler::TcpSocket { host: h, port } => {
            out.tcp_socket = Some(t::TcpSocketAction {
                port: Some(t::IntOrString::Int(i64::from(*port))),
                host: host(h),
            })
        }
        Handler::Grpc { port, service } => {
            out.grpc = Some(t::GrpcAction {
                port: i64::from(*port),
                service: (!service.is_empty()).then(|| service.clone()),
            })
        }
        // A hook's only: written by the hook's caller.
        Handler::Sleep { .. } => {}
    }
    out
}

/// The volume a mount of a container generates: the one of the pod's
/// manifest it was made from (kube play's: recorded on the pod), else
/// one of the mount's kind.
fn gen_volume(
    engine: &Engine,
    pod_name: &str,
    source: &berth_kube::PodSource,
    m: &berth_engine::specgen::Mount,
    fallback: String,
) -> berth_kube::types::Volume {
    use berth_engine::specgen::MountType;
    use berth_kube::types as t;
    let recorded = source.volumes.iter().find(|v| match m.kind {
        MountType::Bind => v.host_path.as_ref().is_some_and(|h| h.path == m.source),
        MountType::Volume => match &v.persistent_volume_claim {
            Some(p) => p.claim_name == m.source,
            None => v.host_path.is_none() && format!("{pod_name}-{}", v.name) == m.source,
        },
        MountType::Tmpfs => false,
    });
    if let Some(v) = recorded {
        return v.clone();
    }
    match m.kind {
        MountType::Bind => t::Volume {
            name: fallback,
            host_path: Some(t::HostPath {
                path: m.source.clone(),
                kind: None,
            }),
            ..Default::default()
        },
        // A tmpfs volume (`volume create --opt type=tmpfs`) is a Memory
        // emptyDir.
        MountType::Volume => match engine
            .inspect_volume(&m.source)
            .ok()
            .and_then(|v| v.options)
            .filter(|o| o.get("type").map(String::as_str) == Some("tmpfs"))
        {
            Some(o) => t::Volume {
                name: fallback,
                empty_dir: Some(t::EmptyDir {
                    medium: Some("Memory".into()),
                    size_limit: o.get("o").and_then(|o| {
                        o.split(',')
                            .find_map(|p| p.strip_prefix("size="))
                            .map(|q| t::Quantity::String(q.to_string()))
                    }),
                }),
                ..Default::default()
            },
            None => t::Volume {
                name: fallback,
                persistent_volume_claim: Some(t::PvcVolume {
                    claim_name: m.source.clone(),
                    read_only: None,
                }),
                ..Default::default()
            },
        },
        MountType::Tmpfs => t::Volume {
            name: fallback,
            empty_dir: Some(t::EmptyDir {
                medium: Some("Memory".into()),
                size_limit: m.size.map(|b| t::Quantity::Int(b as i64)),
            }),
            ..Default::default()
        },
    }
}

/// The keys of the ConfigMap or Secret a configMap or secret volume was
/// filled from, read back from the files kube play wrote in it (`dir`):
/// its items' paths, or every file at its top.
fn volume_keys(dir: &Path, d: &berth_kube::types::DataVolume) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    if !d.items.is_empty() {
        for it in &d.items {
            let p = dir.join(&it.path);
            if p.is_file() {
                let data = std::fs::read(&p)
                    .with_context(|| format!("kube generate: read {}", p.display()))?;
                out.insert(it.key.clone(), data);
            }
        }
        return Ok(out);
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for e in entries.flatten() {
        let p = e.path();
        if let (true, Some(k)) = (
            e.file_type().is_ok_and(|t| t.is_file()),
            e.file_name().to_str(),
        ) {
            let data = std::fs::read(&p)
                .with_context(|| format!("kube generate: read {}", p.display()))?;
            out.insert(k.to_string(), data);
        }
    }
    Ok(out)
}

/// A ConfigMap or Secret document of `keys`: a ConfigMap's UTF-8 values in
/// `data`, the others in `binaryData`; a Secret's in `data`, base64.
fn data_doc(kind: &str, name: &str, keys: &BTreeMap<String, Vec<u8>>) -> serde_json::Value {
    let mut data = serde_json::Map::new();
    let mut binary = serde_json::Map::new();
    for (k, v) in keys {
        match (kind, std::str::from_utf8(v)) {
            ("ConfigMap", Ok(text)) => {
                data.insert(k.clone(), text.into());
            }
            ("ConfigMap", Err(_)) => {
                binary.insert(k.clone(), berth_kube::encode_base64(v).into());
            }
            _ => {
                data.insert(k.clone(), berth_kube::encode_base64(v).into());
            }
        }
    }
    let mut doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": name},
    });
    if !data.is_empty() {
        doc["data"] = data.into();
    }
    if !binary.is_empty() {
        doc["binaryData"] = binary.into();
    }
    doc
}

/// A Pod manifest for a container or a pod, after the ConfigMaps and
/// Secrets its configMap and secret volumes were filled from (so that
/// the output plays on its own).
fn generate(engine: &Engine, what: &str) -> Result<()> {
    use berth_kube::types as t;
    let (name, recs, pod) = match engine.pod(what) {
        Ok(p) => (p.name.clone(), members(engine, &p)?, Some(p)),
        Err(_) => {
            let r = engine
                .get(what)
                .with_context(|| format!("kube generate: {what:?} is no pod or container"))?;
            (r.name.clone(), vec![r], None)
        }
    };
    let mut spec = t::PodSpec::default();
    let mut labels = BTreeMap::new();
    let mut source = berth_kube::PodSource::default();
    if let Some(p) = &pod {
        labels = p
            .spec
            .labels
            .iter()
            .filter(|(k, _)| !k.starts_with("io.berth.kube."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        spec.hostname = p.spec.hostname.clone().filter(|h| h != &p.name);
        if let Some(j) = p.spec.labels.get(berth_kube::LABEL_SOURCE) {
            source = serde_json::from_str(j).with_context(|| {
                format!(
                    "kube generate: pod {name}: its label {} is not valid",
                    berth_kube::LABEL_SOURCE
                )
            })?;
        }
    }
    let dns = |s: &str| -> String {
        let s: String = s
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        s.trim_matches('-').chars().take(63).collect()
    };
    // The pod's volumes: those of its manifest first, in its order.
    spec.volumes = source.volumes.clone();
    let pod_groups: Vec<String> = source
        .fs_group
        .iter()
        .chain(&source.supplemental_groups)
        .map(|g| g.to_string())
        .collect();
    if source.fs_group.is_some()
        || !source.supplemental_groups.is_empty()
        || source.run_as_non_root.is_some()
    {
        spec.security_context = Some(t::PodSecurityContext {
            fs_group: source.fs_group,
            supplemental_groups: source.supplemental_groups.clone(),
            run_as_non_root: source.run_as_non_root,
            ..Default::default()
        });
    }
    // ConfigMaps and Secrets by (kind, name): their keys.
    let mut data_docs: BTreeMap<(&str, String), BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for r in &recs {
        let init = is_init(r);
        let s = &r.spec;
        let cname = match r.spec.metadata.labels.get(LABEL_CONTAINER) {
            Some(c) => c.strip_prefix("init:").unwrap_or(c).to_string(),
            None => r
                .name
                .strip_prefix(&format!("{name}-"))
                .map(dns)
                .unwrap_or_else(|| dns(&r.name)),
        };
        let mut c = t::Container {
            name: cname,
            image: Some(r.image.clone()),
            command: s.process.entrypoint.clone(),
            args: (!s.process.args.is_empty()).then(|| s.process.args.clone()),
            working_dir: s.process.workdir.clone(),
            image_pull_policy: Some("IfNotPresent".into()),
            ..Default::default()
        };
        for e in &s.process.env {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            c.env.push(t::EnvVar {
                name: k.into(),
                value: Some(v.replace('$', "$$")),
                value_from: None,
            });
        }
        // Its ports as the manifest had them (those without a hostPort
        // too); the pod's published ports are added below.
        if let Some(j) = s.metadata.labels.get(berth_kube::LABEL_PORTS) {
            c.ports = serde_json::from_str(j).with_context(|| {
                format!(
                    "kube generate: container {}: its label {} is not valid",
                    r.name,
                    berth_kube::LABEL_PORTS
                )
            })?;
        }
        let mut res = t::Resources::default();
        if let Some(m) = s.resources.memory {
            res.limits.insert("memory".into(), t::Quantity::Int(m));
        }
        if let Some(cpus) = s.resources.cpus {
            res.limits.insert(
                "cpu".into(),
                t::Quantity::String(format!("{}m", (cpus * 1000.0).round() as i64)),
            );
        }
        // requests.cpu from the cgroup shares play gave it (1024 a core).
        if let Some(shares) = s.resources.cpu_shares {
            res.requests.insert(
                "cpu".into(),
                t::Quantity::String(format!(
                    "{}m",
                    (shares as f64 * 1000.0 / 1024.0).round() as i64
                )),
            );
        }
        if let Some(m) = s.resources.memory_reservation {
            res.requests.insert("memory".into(), t::Quantity::Int(m));
        }
        if res != t::Resources::default() {
            c.resources = Some(res);
        }
        let mut sc = t::SecurityContext::default();
        if s.security.privileged {
            sc.privileged = Some(true);
        }
        if s.storage.read_only {
            sc.read_only_root_filesystem = Some(true);
        }
        if !s.security.cap_add.is_empty() || !s.security.cap_drop.is_empty() {
            sc.capabilities = Some(t::Capabilities {
                add: s.security.cap_add.clone(),
                drop: s.security.cap_drop.clone(),
            });
        }
        if let Some(u) = &s.process.user {
            let (uid, gid) = u.split_once(':').unwrap_or((u, ""));
            sc.run_as_user = uid.parse().ok();
            sc.run_as_group = gid.parse().ok();
        } else if pod
            .as_ref()
            .is_some_and(|p| p.spec.labels.contains_key(LABEL_KIND))
            && s.process.groups.len() > pod_groups.len()
        {
            // runAsGroup without runAsUser: play adds the group first.
            sc.run_as_group = s.process.groups.first().and_then(|g| g.parse().ok());
        }
        // runAsNonRoot: the container's when it differs from its pod's.
        let non_root = s
            .metadata
            .labels
            .get(berth_kube::LABEL_NON_ROOT)
            .map(String::as_str)
            == Some("true");
        if non_root != (source.run_as_non_root == Some(true)) {
            sc.run_as_non_root = Some(non_root);
        }
        if s.security.no_new_privileges {
            sc.allow_privilege_escalation = Some(false);
        }
        // A profile's text is kept, not its file: Unconfined only.
        if !s.security.privileged
            && s.security.seccomp == berth_engine::specgen::SeccompPolicy::Unconfined
        {
            sc.seccomp_profile = Some(t::SeccompProfile {
                kind: "Unconfined".into(),
                localhost_profile: None,
            });
        }
        if s.security.unmask {
            sc.proc_mount = Some("Unmasked".into());
        }
        if sc != t::SecurityContext::default() {
            c.security_context = Some(sc);
        }
        if s.process.tty {
            c.tty = Some(true);
        }
        if s.process.stdin {
            c.stdin = Some(true);
        }
        // Probes and hooks as kube play took them; a Docker health check
        // as a liveness probe that runs its command (podman's way).
        for p in &s.health.probes {
            let probe = Some(kube_probe(p));
            match p.kind.as_str() {
                "readiness" => c.readiness_probe = probe,
                "startup" => c.startup_probe = probe,
                _ => c.liveness_probe = probe,
            }
        }
        if let Some(h) = &s.health.check {
            if let (Some(cmd), None) = (h.command(), &c.liveness_probe) {
                let secs = |ns: u64| (ns > 0).then(|| (ns / 1_000_000_000).max(1) as i64);
                c.liveness_probe = Some(t::Probe {
                    exec: Some(t::ExecAction { command: cmd }),
                    initial_delay_seconds: secs(h.start_period),
                    period_seconds: secs(h.interval),
                    timeout_seconds: secs(h.timeout),
                    failure_threshold: (h.retries > 0).then_some(h.retries as i64),
                    ..Default::default()
                });
            }
        }
        let mut lifecycle = t::Lifecycle::default();
        for h in &s.health.hooks {
            let p = kube_probe(h);
            let handler = Some(t::LifecycleHandler {
                exec: p.exec,
                http_get: p.http_get,
                tcp_socket: p.tcp_socket,
                sleep: match h.handler {
                    berth_engine::health::Handler::Sleep { seconds } => Some(t::SleepAction {
                        seconds: seconds.min(i64::MAX as u64) as i64,
                    }),
                    _ => None,
                },
            });
            match h.kind.as_str() {
                "post-start" => lifecycle.post_start = handler,
                "pre-stop" => lifecycle.pre_stop = handler,
                _ => {}
            }
        }
        if lifecycle != t::Lifecycle::default() {
            c.lifecycle = Some(lifecycle);
        }
        for (i, m) in s.storage.mounts.iter().enumerate() {
            let mut vol = gen_volume(engine, &name, &source, m, format!("{}-v{i}", c.name));
            // One volume for every mount of it (an emptyDir is shared).
            match spec.volumes.iter().find(|v| {
                v.name == vol.name
                    || t::Volume {
                        name: vol.name.clone(),
                        ..(*v).clone()
                    } == vol
            }) {
                Some(v) => vol.name = v.name.clone(),
                None => spec.volumes.push(vol.clone()),
            }
            for (kind, d) in [("ConfigMap", &vol.config_map), ("Secret", &vol.secret)] {
                let Some(d) = d else { continue };
                let Some(dname) = d.name.clone().or(d.secret_name.clone()) else {
                    continue;
                };
                let keys = volume_keys(&engine.paths.volume_data(&m.source), d)?;
                // An optional one that was missing: none.
                if d.optional == Some(true) && keys.is_empty() {
                    continue;
                }
                data_docs.entry((kind, dname)).or_default().extend(keys);
            }
            c.volume_mounts.push(t::VolumeMount {
                name: vol.name,
                mount_path: m.destination.clone(),
                read_only: m.readonly.then_some(true),
                sub_path: m.sub_path.clone(),
                ..Default::default()
            });
        }
        if let Some(g) = s.process.stop_timeout {
            spec.termination_grace_period_seconds = Some(i64::from(g));
        }
        if init {
            spec.init_containers.push(c);
            continue;
        }
        spec.restart_policy = Some(
            match s.lifecycle.restart {
                berth_engine::specgen::RestartPolicy::Always
                | berth_engine::specgen::RestartPolicy::UnlessStopped => "Always",
                berth_engine::specgen::RestartPolicy::OnFailure(_) => "OnFailure",
                berth_engine::specgen::RestartPolicy::No => "Never",
            }
            .into(),
        );
        spec.containers.push(c);
    }
    if spec.containers.is_empty() {
        bail!("kube generate: {what}: no containers to describe");
    }
    // The published ports no container names (a container's made by
    // `berth run -p`, a NodePort Service's): the first container's.
    let published = match &pod {
        Some(p) => p.spec.network.ports.clone(),
        None => recs
            .first()
            .map(|r| r.spec.network.ports.clone())
            .unwrap_or_default(),
    };
    for p in published {
        let named = spec.containers.iter().flat_map(|c| &c.ports).any(|cp| {
            cp.container_port == i64::from(p.container_port)
                && cp.host_port == Some(i64::from(p.host_port))
        });
        if !named {
            spec.containers[0].ports.push(t::ContainerPort {
                container_port: p.container_port as i64,
                host_port: (p.host_port != 0).then_some(p.host_port as i64),
                host_ip: p.host_ip.map(|i| i.to_string()),
                protocol: Some(p.proto.as_str().to_ascii_uppercase()),
                name: None,
            });
        }
    }
    let mut doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": dns(&name)},
        "spec": spec,
    });
    if !labels.is_empty() {
        doc["metadata"]["labels"] = serde_json::to_value(&labels)?;
    }
    if !source.annotations.is_empty() {
        doc["metadata"]["annotations"] = serde_json::to_value(&source.annotations)?;
    }
    let mut docs: Vec<serde_json::Value> = data_docs
        .iter()
        .map(|((kind, n), keys)| data_doc(kind, n, keys))
        .collect();
    docs.push(doc);
    let mut text = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&yaml_serde::to_string(d).context("kube generate: write YAML")?);
    }
    print!("{text}");
    Ok(())
}
