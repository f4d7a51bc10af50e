//! Kubernetes YAML to a plan of pods: pure translation, no I/O.
//!
//! [`parse`] reads a multi-document manifest (`---` between objects) into
//! typed objects ([`types`]), with one warning per unknown field or kind
//! (named by its path) and one error, naming the path, for an invalid
//! object. [`plan`] turns the objects into a [`Plan`]: workloads (Pod,
//! Deployment, ReplicaSet, DaemonSet, Job), each a pod template that
//! [`Workload::pod`] makes into a [`PodPlan`] (the engine's
//! [`berth_engine::pods::PodSpec`] and one
//! [`berth_engine::specgen::ContainerSpec`] per container, with the
//! ConfigMap and Secret data resolved into env and files), the named
//! volumes of PersistentVolumeClaims, and Services. The engine
//! (`crates/engine/src/kube.rs`) makes, finds and removes the objects.
//!
//! YAML is read with `yaml_serde`, the crate the engine reads CDI specs
//! with (crates/engine/src/cdi.rs says why it over serde_yaml_ng,
//! serde_norway, yaml-rust2 and saphyr): no new dependency.

mod translate;
pub mod types;

pub use translate::{
    expand_vars, fill_pod_fields, parse_cpu, parse_memory, ContainerPlan, DirOwner, FileData,
    FileVolume, PodFields, PodPlan, ProbeAction, ProbeKind, ProbePlan, Pull,
};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use types::*;

/// Labels berth puts on what `kube play` makes.
pub const LABEL_KIND: &str = "io.berth.kube.kind";
pub const LABEL_NAME: &str = "io.berth.kube.name";
pub const LABEL_HASH: &str = "io.berth.kube.template-hash";
/// On a pod's containers: the container's name in the manifest (`init:`
/// before it for an init container).
pub const LABEL_CONTAINER: &str = "io.berth.kube.container";
/// On the volumes made for one pod (emptyDir, configMap, secret): the pod.
pub const LABEL_POD: &str = "io.berth.kube.pod";
/// On a PersistentVolumeClaim's volume.
pub const LABEL_CLAIM: &str = "io.berth.kube.claim";
/// On a pod: what `kube generate` needs of the manifest that the records
/// do not hold (JSON of [`PodSource`]).
pub const LABEL_SOURCE: &str = "io.berth.kube.source";
/// On a container: its `ports` as the manifest has them (JSON).
pub const LABEL_PORTS: &str = "io.berth.kube.ports";
/// On a container: `runAsNonRoot` (its own or its pod's) is true.
pub const LABEL_NON_ROOT: &str = "io.berth.kube.run-as-non-root";

/// What a pod's manifest held that its records do not: its annotations,
/// its securityContext's groups and runAsNonRoot, and its volumes (their
/// kinds and parameters: a configMap's name, items and defaultMode, a
/// hostPath's type...), for `kube generate`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSource {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supplemental_groups: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

/// A manifest that cannot be read: one line naming the document and the
/// path of the bad field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{doc}: {path}: {msg}")]
    Invalid {
        doc: String,
        path: String,
        msg: String,
    },
    #[error("{doc}: not valid YAML: {msg}")]
    Yaml { doc: String, msg: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// One object of a manifest.
#[derive(Debug, Clone)]
pub enum Doc {
    Pod(Object<PodSpec>),
    Deployment(Object<DeploymentSpec>),
    ReplicaSet(Object<SetSpec>),
    DaemonSet(Object<SetSpec>),
    Job(Object<JobSpec>),
    ConfigMap(DataObject),
    Secret(DataObject),
    Claim(Object<PvcSpec>),
    Service(Object<ServiceSpec>),
}

/// The objects of a manifest, each with the name of its document for
/// messages, and the warnings.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub docs: Vec<(String, Doc)>,
    pub warnings: Vec<String>,
}

/// serde_ignored's path as the error paths read:
/// `spec.containers[0].foo`.
fn path_text(p: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match p {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", path_text(parent)),
        P::Map { parent, key } => {
            let head = path_text(parent);
            if head.is_empty() {
                key.clone()
            } else {
                format!("{head}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            path_text(parent)
        }
    }
}

fn typed<T: DeserializeOwned>(
    doc: &str,
    v: yaml_serde::Value,
    warnings: &mut Vec<String>,
) -> Result<T> {
    let mut unknown = Vec::new();
    let mut note = |p: serde_ignored::Path| unknown.push(path_text(&p));
    let de = serde_ignored::Deserializer::new(v, &mut note);
    let r: std::result::Result<T, _> = serde_path_to_error::deserialize(de);
    let t = r.map_err(|e| Error::Invalid {
        doc: doc.to_string(),
        path: e.path().to_string(),
        msg: e.inner().to_string(),
    })?;
    for u in unknown {
        warnings.push(format!("{doc}: {u}: unknown or unsupported field, ignored"));
    }
    Ok(t)
}

/// Reads every document of `text`. `source` names the file in messages.
pub fn parse(source: &str, text: &str) -> Result<Manifest> {
    let mut m = Manifest::default();
    for (i, de) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let at = format!("{source}: document {}", i + 1);
        let v = yaml_serde::Value::deserialize(de).map_err(|e| Error::Yaml {
            doc: at.clone(),
            msg: e.to_string(),
        })?;
        if v.is_null() {
            continue;
        }
        let head: TypeMeta = yaml_serde::from_value(v.clone()).map_err(|e| Error::Invalid {
            doc: at.clone(),
            path: "kind".into(),
            msg: format!("{e} (a Kubernetes object is a map with apiVersion and kind)"),
        })?;
        let Some(kind) = head.kind.clone() else {
            return Err(Error::Invalid {
                doc: at,
                path: "kind".into(),
                msg: "missing: every object needs a kind".into(),
            });
        };
        let name = v
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_string();
        let doc = format!("{at} ({kind} {name})");
        if let (Some(v), Some(want)) = (head.api_version.as_deref(), api_version_of(&kind)) {
            if v != want {
                return Err(Error::Invalid {
                    doc,
                    path: "apiVersion".into(),
                    msg: format!("{v:?} does not serve kind {kind}: it is {want}"),
                });
            }
        }
        let w = &mut m.warnings;
        let d = match kind.as_str() {
            "Pod" => Doc::Pod(typed(&doc, v, w)?),
            "Deployment" => Doc::Deployment(typed(&doc, v, w)?),
            "ReplicaSet" => Doc::ReplicaSet(typed(&doc, v, w)?),
            "DaemonSet" => Doc::DaemonSet(typed(&doc, v, w)?),
            "Job" => Doc::Job(typed(&doc, v, w)?),
            "ConfigMap" => Doc::ConfigMap(typed(&doc, v, w)?),
            "Secret" => Doc::Secret(typed(&doc, v, w)?),
            "PersistentVolumeClaim" => Doc::Claim(typed(&doc, v, w)?),
            "Service" => Doc::Service(typed(&doc, v, w)?),
            other => {
                m.warnings.push(format!(
                    "{doc}: kind: {other} is not a kind berth plays (Pod, Deployment, ReplicaSet, DaemonSet, Job, ConfigMap, Secret, PersistentVolumeClaim, Service), skipped"
                ));
                continue;
            }
        };
        let meta_name = match &d {
            Doc::ConfigMap(o) | Doc::Secret(o) => o.metadata.name.clone(),
            Doc::Pod(o) => o.metadata.name.clone(),
            Doc::Deployment(o) => o.metadata.name.clone(),
            Doc::ReplicaSet(o) | Doc::DaemonSet(o) => o.metadata.name.clone(),
            Doc::Job(o) => o.metadata.name.clone(),
            Doc::Claim(o) => o.metadata.name.clone(),
            Doc::Service(o) => o.metadata.name.clone(),
        };
        // Kubernetes' rules: a Service's name is a DNS label (it is a
        // host name); the others' are DNS subdomains (dots too). A
        // workload's are at most 63 in berth: they name its pods (a
        // Deployment's are cut to fit, as Kubernetes cuts them), a Pod's
        // the pod, its host name and its containers (`<pod>-<container>`).
        let (label, max) = match &d {
            Doc::Service(_) => (true, 63),
            Doc::ConfigMap(_) | Doc::Secret(_) | Doc::Claim(_) => (false, 253),
            _ => (false, 63),
        };
        match meta_name {
            Some(n) if label && is_dns_name(&n, max) => {}
            Some(n) if !label && is_dns_subdomain(&n, max) => {}
            Some(n) if label => {
                return Err(Error::Invalid {
                    doc,
                    path: "metadata.name".into(),
                    msg: format!("{n:?} is not a DNS label: lower case letters, digits and '-', at most {max}, starting and ending with a letter or digit"),
                })
            }
            Some(n) => {
                return Err(Error::Invalid {
                    doc,
                    path: "metadata.name".into(),
                    msg: format!("{n:?} is not a DNS subdomain: lower case letters, digits, '-' and '.', at most {max}{}, each part between dots starting and ending with a letter or digit", if max < 253 { " in berth" } else { "" }),
                })
            }
            None => {
                return Err(Error::Invalid {
                    doc,
                    path: "metadata.name".into(),
                    msg: "missing: berth names what it makes after it".into(),
                })
            }
        }
        // One object of a kind per name, as in a cluster: a second Pod
        // `web` would fail only after the first was made.
        if let Some((first, _)) = m
            .docs
            .iter()
            .find(|(_, o)| o.kind_name() == kind && o.name() == name)
        {
            return Err(Error::Invalid {
                doc,
                path: "metadata.name".into(),
                msg: format!("{name:?}: {first} has this name already"),
            });
        }
        m.docs.push((doc, d));
    }
    Ok(m)
}

/// The apiVersion that serves `kind` (among the kinds berth plays).
fn api_version_of(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Pod" | "ConfigMap" | "Secret" | "PersistentVolumeClaim" | "Service" => "v1",
        "Deployment" | "ReplicaSet" | "DaemonSet" => "apps/v1",
        "Job" => "batch/v1",
        _ => return None,
    })
}

impl Doc {
    /// The object's kind as written (`PersistentVolumeClaim`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Doc::Pod(_) => "Pod",
            Doc::Deployment(_) => "Deployment",
            Doc::ReplicaSet(_) => "ReplicaSet",
            Doc::DaemonSet(_) => "DaemonSet",
            Doc::Job(_) => "Job",
            Doc::ConfigMap(_) => "ConfigMap",
            Doc::Secret(_) => "Secret",
            Doc::Claim(_) => "PersistentVolumeClaim",
            Doc::Service(_) => "Service",
        }
    }

    /// The object's metadata.name ("" when missing).
    pub fn name(&self) -> &str {
        let n = match self {
            Doc::ConfigMap(o) | Doc::Secret(o) => &o.metadata.name,
            Doc::Pod(o) => &o.metadata.name,
            Doc::Deployment(o) => &o.metadata.name,
            Doc::ReplicaSet(o) | Doc::DaemonSet(o) => &o.metadata.name,
            Doc::Job(o) => &o.metadata.name,
            Doc::Claim(o) => &o.metadata.name,
            Doc::Service(o) => &o.metadata.name,
        };
        n.as_deref().unwrap_or("")
    }
}

/// A DNS-1123 label of at most `max` bytes.
pub fn is_dns_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain of at most `max` bytes: DNS labels joined by
/// dots.
pub fn is_dns_subdomain(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.split('.').all(|l| is_dns_name(l, 63))
}

/// `base` followed by 5 random characters as a name of at most 63 (a
/// host name): `base` is cut to 58, as Kubernetes' generateName does.
pub fn generated_name(base: &str, suffix: &str) -> String {
    let mut cut = base.len().min(58);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &base[..cut])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Kind {
    Pod,
    Deployment,
    ReplicaSet,
    DaemonSet,
    Job,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::Job => "Job",
        }
    }
}

/// A Deployment's rolling update: at most `max_surge` pods above the
/// replicas, at most `max_unavailable` ready pods below, while old pods
/// are replaced (percentages resolved as Kubernetes does: maxSurge
/// rounded up, maxUnavailable down; both 0 after rounding: maxUnavailable
/// 1). `recreate` (strategy Recreate): every old pod goes before a new one
/// is made. `progress_deadline_s`: the longest play waits for the rollout
/// to make progress (a pod made, ready or removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollout {
    pub max_surge: u32,
    pub max_unavailable: u32,
    pub recreate: bool,
    pub progress_deadline_s: u64,
}

/// Kubernetes' default `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_S: u64 = 600;

impl Default for Rollout {
    fn default() -> Rollout {
        Rollout {
            max_surge: 1,
            max_unavailable: 0,
            recreate: false,
            progress_deadline_s: DEFAULT_PROGRESS_DEADLINE_S,
        }
    }
}

/// The workloads of a manifest by kind and name, as written: all that
/// `kube down` needs (no reference is resolved, so a file whose
/// ConfigMaps are gone or were given by `--configmap` goes down too).
pub fn objects(m: &Manifest) -> Vec<(Kind, String)> {
    m.docs
        .iter()
        .filter_map(|(_, d)| {
            let k = match d {
                Doc::Pod(_) => Kind::Pod,
                Doc::Deployment(_) => Kind::Deployment,
                Doc::ReplicaSet(_) => Kind::ReplicaSet,
                Doc::DaemonSet(_) => Kind::DaemonSet,
                Doc::Job(_) => Kind::Job,
                _ => return None,
            };
            Some((k, d.name().to_string()))
        })
        .collect()
}

/// A Job's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobPlan {
    pub completions: u32,
    pub parallelism: u32,
    pub backoff_limit: u32,
    pub active_deadline_seconds: Option<u64>,
    /// restartPolicy OnFailure: a failed container is restarted in its
    /// pod, each restart a retry counted against `backoff_limit`.
    pub on_failure: bool,
}

/// ConfigMaps and Secrets by name: key to bytes.
#[derive(Debug, Clone, Default)]
pub struct Data {
    pub config_maps: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

/// What a pod's network is: a bridge network's name (`none`, `host`).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--network`: the network pods are put on; empty: none.
    pub network: String,
}

/// One workload: a pod template and how many pods of it.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: Kind,
    pub name: String,
    /// The document, for messages.
    pub doc: String,
    /// The pods wanted (a Job: its parallelism, at most what is left).
    pub replicas: u32,
    pub selector: BTreeMap<String, String>,
    pub rollout: Rollout,
    pub job: Option<JobPlan>,
    /// The hash of everything a pod is made from (template, the data it
    /// uses, its network and service names): pods with another hash are
    /// out of date. Kubernetes' alphabet, 10 characters at most.
    pub template_hash: String,
    template: PodTemplate,
    /// Where the template's pod spec is in the document.
    base: String,
    data: Arc<Data>,
    services: Arc<Vec<ServicePlan>>,
    options: Arc<Options>,
}

/// A Service: its name resolves to the pods it selects (a network alias
/// on each); NodePort ports are published by the first pod.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    pub name: String,
    pub kind: String,
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<ServicePortPlan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServicePortPlan {
    pub port: u16,
    /// A number, or a container port's name.
    pub target: IntOrString,
    pub node_port: Option<u16>,
    pub proto: berth_engine::network::ports::Proto,
}

/// A PersistentVolumeClaim: a named volume.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimPlan {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Everything a manifest asks for.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub workloads: Vec<Workload>,
    pub claims: Vec<ClaimPlan>,
    pub services: Vec<ServicePlan>,
    pub warnings: Vec<String>,
}

fn invalid(doc: &str, path: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Invalid {
        doc: doc.to_string(),
        path: path.into(),
        msg: msg.into(),
    }
}

fn count(doc: &str, path: &str, v: Option<i64>, default: u32, max: u32) -> Result<u32> {
    match v {
        None => Ok(default),
        Some(n) if n >= 0 && n <= max as i64 => Ok(n as u32),
        Some(n) => Err(invalid(doc, path, format!("{n} is not in 0..={max}"))),
    }
}

/// `25%` of `of` (rounded up or down), or a number.
fn int_or_percent(
    doc: &str,
    path: &str,
    v: &Option<IntOrString>,
    default: &str,
    of: u32,
    up: bool,
) -> Result<u32> {
    let v = v.clone().unwrap_or(IntOrString::String(default.into()));
    match v {
        IntOrString::Int(n) if (0..=10_000).contains(&n) => Ok(n as u32),
        IntOrString::String(s) => {
            let p = s
                .strip_suffix('%')
                .and_then(|p| p.parse::<u64>().ok())
                .filter(|p| *p <= 100)
                .ok_or_else(|| {
                    invalid(
                        doc,
                        path,
                        format!("{s:?} is not a number or a percentage like 25%"),
                    )
                })?;
            let x = p * of as u64;
            Ok(if up { x.div_ceil(100) } else { x / 100 } as u32)
        }
        IntOrString::Int(n) => Err(invalid(doc, path, format!("{n} is not in 0..=10000"))),
    }
}

/// FNV-1a 32 of `data` in Kubernetes' safe alphabet (no vowels, no
/// look-alikes), as its pod-template-hash reads.
pub fn safe_hash(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    let mut out = String::new();
    let mut n = h;
    loop {
        out.push(ALPHABET[(n % 27) as usize] as char);
        n /= 27;
        if n == 0 || out.len() == 10 {
            break;
        }
    }
    out
}

/// Standard base64 with padding (a Secret's `data`).
pub fn encode_base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A Secret's `data` value: standard base64 (padding optional, as the
/// apiserver's decoder takes it; line breaks and spaces ignored).
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(&clean)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean))
        .ok()
}

fn selector_of(
    doc: &str,
    path: &str,
    sel: &Option<LabelSelector>,
    template: &PodTemplate,
    required: bool,
) -> Result<BTreeMap<String, String>> {
    let Some(sel) = sel else {
        if required {
            return Err(invalid(
                doc,
                path,
                "missing: a selector matching spec.template.metadata.labels is required",
            ));
        }
        return Ok(template.metadata.labels.clone());
    };
    if !sel.match_expressions.is_empty() {
        return Err(invalid(
            doc,
            format!("{path}.matchExpressions"),
            "not supported by berth: use matchLabels",
        ));
    }
    if sel.match_labels.is_empty() {
        return Err(invalid(
            doc,
            format!("{path}.matchLabels"),
            "empty: it would select every pod",
        ));
    }
    for (k, v) in &sel.match_labels {
        if template.metadata.labels.get(k) != Some(v) {
            return Err(invalid(
                doc,
                format!("{path}.matchLabels.{k}"),
                format!("{k}={v} does not match spec.template.metadata.labels: the Deployment would not select its own pods"),
            ));
        }
    }
    Ok(sel.match_labels.clone())
}

/// Turns a parsed manifest into what to make.
pub fn plan(m: &Manifest, options: &Options) -> Result<Plan> {
    let mut plan = Plan {
        warnings: m.warnings.clone(),
        ..Default::default()
    };
    let mut data = Data::default();
    for (doc, d) in &m.docs {
        match d {
            Doc::ConfigMap(o) | Doc::Secret(o) => {
                let secret = matches!(d, Doc::Secret(_));
                let mut kv = BTreeMap::new();
                for (k, v) in &o.data {
                    let bytes = if secret {
                        decode_base64(v).ok_or_else(|| invalid(doc, format!("data.{k}"), "not base64: a Secret's data is base64 (plain text goes in stringData)"))?
                    } else {
                        v.clone().into_bytes()
                    };
                    kv.insert(k.clone(), bytes);
                }
                for (k, v) in &o.binary_data {
                    kv.insert(
                        k.clone(),
                        decode_base64(v)
                            .ok_or_else(|| invalid(doc, format!("binaryData.{k}"), "not base64"))?,
                    );
                }
                for (k, v) in &o.string_data {
                    kv.insert(k.clone(), v.clone().into_bytes());
                }
                let name = o.metadata.name.clone().unwrap_or_default();
                if secret {
                    data.secrets.insert(name, kv);
                } else {
                    data.config_maps.insert(name, kv);
                }
            }
            Doc::Claim(o) => {
                for (i, m) in o.spec.access_modes.iter().enumerate() {
                    if !matches!(
                        m.as_str(),
                        "ReadWriteOnce" | "ReadOnlyMany" | "ReadWriteMany" | "ReadWriteOncePod"
                    ) {
                        return Err(invalid(
                            doc,
                            format!("spec.accessModes[{i}]"),
                            format!("{m:?} is not ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod"),
                        ));
                    }
                }
                if let Some(r) = &o.spec.resources {
                    for (which, m) in [("requests", &r.requests), ("limits", &r.limits)] {
                        if m.get("storage").is_some_and(|q| parse_memory(q).is_none()) {
                            return Err(invalid(
                                doc,
                                format!("spec.resources.{which}.storage"),
                                "not a quantity like 1Gi",
                            ));
                        }
                    }
                }
                let name = o.metadata.name.clone().unwrap_or_default();
                let mut labels = o.metadata.labels.clone();
                labels.insert(LABEL_CLAIM.into(), name.clone());
                plan.claims.push(ClaimPlan { name, labels });
            }
            Doc::Service(o) => {
                let s = &o.spec;
                let kind = s.kind.clone().unwrap_or_else(|| "ClusterIP".into());
                if !matches!(kind.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
                    return Err(invalid(
                        doc,
                        "spec.type",
                        format!("{kind:?} is not ClusterIP, NodePort or LoadBalancer"),
                    ));
                }
                let mut ports = Vec::new();
                for (i, p) in s.ports.iter().enumerate() {
                    let at = format!("spec.ports[{i}]");
                    let port = port_number(doc, &format!("{at}.port"), p.port)?;
                    let node_port = match p.node_port {
                        Some(n) => Some(port_number(doc, &format!("{at}.nodePort"), n)?),
                        None if kind != "ClusterIP" => Some(port),
                        None => None,
                    };
                    ports.push(ServicePortPlan {
                        port,
                        target: p
                            .target_port
                            .clone()
                            .unwrap_or(IntOrString::Int(port as i64)),
                        node_port,
                        proto: translate::proto(doc, &format!("{at}.protocol"), &p.protocol)?,
                    });
                }
                plan.services.push(ServicePlan {
                    name: o.metadata.name.clone().unwrap_or_default(),
                    kind,
                    selector: s.selector.clone(),
                    ports,
                });
            }
            _ => {}
        }
    }
    let data = Arc::new(data);
    let services = Arc::new(plan.services.clone());
    let options = Arc::new(options.clone());
    for (doc, d) in &m.docs {
        let (kind, meta, template, base, replicas, selector, rollout, job) = match d {
            Doc::Pod(o) => (
                Kind::Pod,
                &o.metadata,
                PodTemplate {
                    metadata: o.metadata.clone(),
                    spec: o.spec.clone(),
                },
                "spec",
                1,
                o.metadata.labels.clone(),
                None,
                None,
            ),
            Doc::Deployment(o) => {
                let s = &o.spec;
                let replicas = count(doc, "spec.replicas", s.replicas, 1, 1000)?;
                let selector = selector_of(doc, "spec.selector", &s.selector, &s.template, true)?;
                let progress_deadline_s = match s.progress_deadline_seconds {
                    None => DEFAULT_PROGRESS_DEADLINE_S,
                    Some(n) if n > 0 => n as u64,
                    Some(n) => {
                        return Err(invalid(
                            doc,
                            "spec.progressDeadlineSeconds",
                            format!("{n} is not positive"),
                        ))
                    }
                };
                let rollout = match s.strategy.as_ref().and_then(|s| s.kind.as_deref()) {
                    Some("Recreate") => {
                        if s.strategy
                            .as_ref()
                            .is_some_and(|s| s.rolling_update.is_some())
                        {
                            return Err(invalid(
                                doc,
                                "spec.strategy.rollingUpdate",
                                "may not be given when strategy.type is Recreate",
                            ));
                        }
                        Rollout {
                            max_surge: 0,
                            max_unavailable: replicas,
                            recreate: true,
                            progress_deadline_s,
                        }
                    }
                    None | Some("RollingUpdate") => {
                        let ru = s
                            .strategy
                            .as_ref()
                            .and_then(|s| s.rolling_update.clone())
                            .unwrap_or_default();
                        let at = "spec.strategy.rollingUpdate";
                        // Kubernetes refuses both written as 0 (0 or 0%);
                        // both 0 only after rounding is maxUnavailable 1.
                        let zero = |v: &Option<IntOrString>| match v {
                            Some(IntOrString::Int(0)) => true,
                            Some(IntOrString::String(s)) => s.trim_end_matches('%') == "0",
                            _ => false,
                        };
                        if zero(&ru.max_surge) && zero(&ru.max_unavailable) {
                            return Err(invalid(
                                doc,
                                at,
                                "maxSurge and maxUnavailable are both 0: no update could proceed",
                            ));
                        }
                        let surge = int_or_percent(
                            doc,
                            &format!("{at}.maxSurge"),
                            &ru.max_surge,
                            "25%",
                            replicas,
                            true,
                        )?;
                        let unavail = int_or_percent(
                            doc,
                            &format!("{at}.maxUnavailable"),
                            &ru.max_unavailable,
                            "25%",
                            replicas,
                            false,
                        )?;
                        Rollout {
                            max_surge: surge,
                            max_unavailable: if surge == 0 && unavail == 0 {
                                1
                            } else {
                                unavail
                            },
                            recreate: false,
                            progress_deadline_s,
                        }
                    }
                    Some(other) => {
                        return Err(invalid(
                            doc,
                            "spec.strategy.type",
                            format!("{other:?} is not RollingUpdate or Recreate"),
                        ))
                    }
                };
                (
                    Kind::Deployment,
                    &o.metadata,
                    s.template.clone(),
                    "spec.template.spec",
                    replicas,
                    selector,
                    Some(rollout),
                    None,
                )
            }
            Doc::ReplicaSet(o) | Doc::DaemonSet(o) => {
                let s = &o.spec;
                let rs = matches!(d, Doc::ReplicaSet(_));
                let replicas = if rs {
                    count(doc, "spec.replicas", s.replicas, 1, 1000)?
                } else {
                    1
                };
                if !rs && s.replicas.is_some() {
                    return Err(invalid(
                        doc,
                        "spec.replicas",
                        "a DaemonSet has no replicas: one pod per node (berth's host)",
                    ));
                }
                let selector = selector_of(doc, "spec.selector", &s.selector, &s.template, true)?;
                (
                    if rs {
                        Kind::ReplicaSet
                    } else {
                        Kind::DaemonSet
                    },
                    &o.metadata,
                    s.template.clone(),
                    "spec.template.spec",
                    replicas,
                    selector,
                    None,
                    None,
                )
            }
            Doc::Job(o) => {
                let s = &o.spec;
                let completions = count(doc, "spec.completions", s.completions, 1, 1000)?;
                let parallelism = count(doc, "spec.parallelism", s.parallelism, 1, 1000)?;
                let backoff_limit = count(doc, "spec.backoffLimit", s.backoff_limit, 6, 1000)?;
                let active = match s.active_deadline_seconds {
                    None => None,
                    Some(n) if n > 0 => Some(n as u64),
                    Some(n) => {
                        return Err(invalid(
                            doc,
                            "spec.activeDeadlineSeconds",
                            format!("{n} is not positive"),
                        ))
                    }
                };
                if let Some(m) = s.completion_mode.as_deref().filter(|m| *m != "NonIndexed") {
                    return Err(invalid(
                        doc,
                        "spec.completionMode",
                        format!("{m:?}: berth runs NonIndexed jobs only"),
                    ));
                }
                let on_failure = match s.template.spec.restart_policy.as_deref() {
                    Some("Never") => false,
                    Some("OnFailure") => true,
                    Some(other) => {
                        return Err(invalid(
                            doc,
                            "spec.template.spec.restartPolicy",
                            format!("{other:?}: a Job's pods need Never or OnFailure"),
                        ))
                    }
                    None => {
                        return Err(invalid(
                            doc,
                            "spec.template.spec.restartPolicy",
                            "missing: a Job's pods need Never or OnFailure",
                        ))
                    }
                };
                let selector = if s.manual_selector == Some(true) {
                    selector_of(doc, "spec.selector", &s.selector, &s.template, true)?
                } else {
                    s.template.metadata.labels.clone()
                };
                (
                    Kind::Job,
                    &o.metadata,
                    s.template.clone(),
                    "spec.template.spec",
                    parallelism.min(completions),
                    selector,
                    None,
                    Some(JobPlan {
                        completions,
                        parallelism,
                        backoff_limit,
                        active_deadline_seconds: active,
                        on_failure,
                    }),
                )
            }
            _ => continue,
        };
        if kind != Kind::Job {
            if let Some(p) = template.spec.restart_policy.as_deref() {
                let ok = if kind == Kind::Pod {
                    matches!(p, "Always" | "OnFailure" | "Never")
                } else {
                    p == "Always"
                };
                if !ok {
                    return Err(invalid(
                        doc,
                        format!("{base}.restartPolicy"),
                        format!(
                            "{p:?} is not allowed here (a {}: {})",
                            kind.as_str(),
                            if kind == Kind::Pod {
                                "Always, OnFailure or Never"
                            } else {
                                "Always"
                            }
                        ),
                    ));
                }
            }
        }
        let name = meta.name.clone().unwrap_or_default();
        let mut w = Workload {
            kind,
            name,
            doc: doc.clone(),
            replicas,
            selector,
            rollout: rollout.unwrap_or_default(),
            job,
            template_hash: String::new(),
            template,
            base: base.into(),
            data: data.clone(),
            services: services.clone(),
            options: options.clone(),
        };
        // Validated (every error names its path) and hashed once, with a
        // fixed name.
        let mut probe = w.pod_at("x", 0, &mut plan.warnings)?;
        // Less the labels kept for `kube generate`: they repeat what the
        // rest says, and the hash of a template stays what it was before
        // they were kept (an upgrade rolls no pod).
        probe.spec.labels.remove(LABEL_SOURCE);
        for c in probe
            .init_containers
            .iter_mut()
            .chain(probe.containers.iter_mut())
        {
            c.spec.metadata.labels.remove(LABEL_PORTS);
            c.spec.metadata.labels.remove(LABEL_NON_ROOT);
        }
        let mut json = serde_json::to_vec(&probe).unwrap_or_default();
        // The template's annotations too (`kubectl rollout restart`
        // changes only kubectl.kubernetes.io/restartedAt): any change to
        // the template rolls the pods, as in Kubernetes. Left out when
        // there are none, so that the hash of a template without stays
        // what it was.
        let notes = &w.template.metadata.annotations;
        if !notes.is_empty() {
            json.extend(serde_json::to_vec(notes).unwrap_or_default());
        }
        w.template_hash = safe_hash(&json);
        plan.workloads.push(w);
    }
    for s in &plan.services {
        if s.selector.is_empty() {
            plan.warnings.push(format!(
                "Service {}: no selector: it names no pods berth makes",
                s.name
            ));
        }
    }
    if !plan.services.is_empty() && matches!(options.network.as_str(), "" | "none" | "host") {
        plan.warnings.push(format!("Services: the pods are on network {:?}: service names resolve only on a bridge network (--network NAME)", options.network));
    }
    Ok(plan)
}

fn port_number(doc: &str, path: &str, n: i64) -> Result<u16> {
    if (1..=65535).contains(&n) {
        Ok(n as u16)
    } else {
        Err(invalid(
            doc,
            path,
            format!("{n} is not a port (1 to 65535)"),
        ))
    }
}

impl Workload {
    /// The images its containers (init containers first) name, as
    /// written, each once.
    pub fn images(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let spec = &self.template.spec;
        for c in spec.init_containers.iter().chain(&spec.containers) {
            if let Some(i) = c.image.as_deref().filter(|i| !i.is_empty()) {
                if !out.iter().any(|o| o == i) {
                    out.push(i.to_string());
                }
            }
        }
        out
    }

    /// The pod named `name`, the `index`-th of the workload (index 0
    /// publishes the NodePort services' ports).
    pub fn pod(&self, name: &str, index: u32) -> Result<PodPlan> {
        self.pod_at(name, index, &mut Vec::new())
    }

    fn pod_at(&self, name: &str, index: u32, warnings: &mut Vec<String>) -> Result<PodPlan> {
        let mut labels = self.template.metadata.labels.clone();
        labels.insert(LABEL_KIND.into(), self.kind.as_str().into());
        labels.insert(LABEL_NAME.into(), self.name.clone());
        let services: Vec<&ServicePlan> = self
            .services
            .iter()
            .filter(|s| {
                !s.selector.is_empty() && s.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .collect();
        translate::pod(translate::PodInput {
            doc: &self.doc,
            base: &self.base,
            name,
            labels,
            annotations: &self.template.metadata.annotations,
            spec: &self.template.spec,
            data: &self.data,
            services: &services,
            publish: index == 0,
            network: &self.options.network,
            warnings,
        })
    }

    /// The prefix of the workload's pod names (Kubernetes' names:
    /// `<deployment>-<template hash>-`, `<set or job>-`).
    pub fn pod_prefix(&self) -> String {
        match self.kind {
            Kind::Pod => self.name.clone(),
            Kind::Deployment => format!("{}-{}-", self.name, self.template_hash),
            _ => format!("{}-", self.name),
        }
    }

    /// Services this workload's pods answer for.
    pub fn template(&self) -> &PodTemplate {
        &self.template
    }
}

#[cfg(test)]
mod tests;
