//! One pod template to the engine's specs.

use crate::types::*;
use crate::{invalid, Data, Error, Result, ServicePlan, LABEL_CONTAINER, LABEL_POD};
use berth_engine::health::{Handler, ProbeSpec};
use berth_engine::network::ports::{PortMapping, Proto};
use berth_engine::pods::PodSpec as EnginePod;
use berth_engine::specgen::{
    ContainerSpec, Mount, MountType, NamespaceMode, NetworkAttachment, RestartPolicy, SeccompPolicy,
};

/// Where a relative `localhostProfile` is found: the kubelet's default
/// seccomp root (podman's `--seccomp-profile-root` default too).
pub const SECCOMP_ROOT: &str = "/var/lib/kubelet/seccomp";
use serde::Serialize;
use std::collections::BTreeMap;

/// When the image is pulled (`imagePullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Pull {
    Always,
    IfNotPresent,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum ProbeAction {
    Exec(Vec<String>),
    Http {
        scheme: String,
        host: Option<String>,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        host: Option<String>,
        port: u16,
    },
    Grpc {
        port: u16,
        service: Option<String>,
    },
}

/// A probe as the monitor runs it (seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ProbePlan {
    pub kind: ProbeKind,
    pub action: ProbeAction,
    pub initial_delay: u32,
    pub period: u32,
    pub timeout: u32,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe's own terminationGracePeriodSeconds (liveness and
    /// startup): the grace period when its failure stops the container.
    #[serde(default)]
    pub termination_grace: Option<u32>,
}

/// One container of a pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerPlan {
    /// The engine's container name: `<pod>-<container>`.
    pub name: String,
    pub image: String,
    pub pull: Pull,
    pub spec: ContainerSpec,
    pub probes: Vec<ProbePlan>,
    /// `runAsNonRoot` without a `runAsUser`: the image's user is checked
    /// at create.
    pub run_as_non_root: bool,
    /// seccompProfile Localhost: the profile file (absolute), read at
    /// play into the spec's seccomp policy.
    pub seccomp_file: Option<String>,
}

/// One file of a configMap or secret volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileData {
    /// Relative, clean (no `..`, not absolute).
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A volume made for one pod (emptyDir, configMap, secret, downwardAPI):
/// a named volume with the pod's label, filled with `files`, shared by the
/// pod's containers; `options` are the local driver's (`type: tmpfs` for
/// a Memory emptyDir).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileVolume {
    pub name: String,
    pub files: Vec<FileData>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// A downwardAPI volume: its files may hold the fields known once the
    /// pod is made ([`PodFields::fill_file`]); no other volume's are
    /// touched.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pod_fields: bool,
    /// An emptyDir's directory: its mode and group (the kubelet's: 0777,
    /// group-owned by the pod's fsGroup with the setgid bit when it has
    /// one). None: the volume's default (root's, 0755).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<DirOwner>,
}

/// The mode and group of a volume's directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DirOwner {
    pub mode: u32,
    pub gid: Option<u32>,
}

/// One pod to make.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodPlan {
    pub name: String,
    pub spec: EnginePod,
    /// Run in order, each to a zero exit, before the containers start.
    pub init_containers: Vec<ContainerPlan>,
    pub containers: Vec<ContainerPlan>,
    pub volumes: Vec<FileVolume>,
    /// hostPath volumes with their `type` (checked, or made, at play).
    pub host_paths: Vec<(String, String)>,
    /// PersistentVolumeClaims the pod mounts (named volumes).
    pub claims: Vec<String>,
}

pub(crate) struct PodInput<'a> {
    pub doc: &'a str,
    pub base: &'a str,
    pub name: &'a str,
    pub labels: BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
    pub spec: &'a PodSpec,
    pub data: &'a Data,
    pub services: &'a [&'a ServicePlan],
    pub publish: bool,
    pub network: &'a str,
    pub warnings: &'a mut Vec<String>,
}

pub(crate) fn proto(doc: &str, path: &str, p: &Option<String>) -> Result<Proto> {
    match p.as_deref() {
        None | Some("TCP") => Ok(Proto::Tcp),
        Some("UDP") => Ok(Proto::Udp),
        Some("SCTP") => Ok(Proto::Sctp),
        Some(o) => Err(invalid(doc, path, format!("{o:?} is not TCP, UDP or SCTP"))),
    }
}

/// A memory quantity in bytes (`64Mi`, `1G`, `1e6`, `128974848`).
pub fn parse_memory(q: &Quantity) -> Option<i64> {
    let s = match q {
        Quantity::Int(n) => return (*n >= 0).then_some(*n),
        Quantity::Float(f) => {
            return (f.is_finite() && *f >= 0.0 && *f < 9e18).then_some(*f as i64)
        }
        Quantity::String(s) => s.trim(),
    };
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("m", 1e-3),
    ];
    let (num, mul) = SUFFIXES
        .iter()
        .find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n, *m)))
        .unwrap_or((s, 1.0));
    let v: f64 = num.parse().ok()?;
    let b = v * mul;
    (b.is_finite() && (0.0..9e18).contains(&b)).then_some(b.ceil() as i64)
}

/// A CPU quantity in cores (`500m`, `2`, `0.5`).
pub fn parse_cpu(q: &Quantity) -> Option<f64> {
    let v = match q {
        Quantity::Int(n) => *n as f64,
        Quantity::Float(f) => *f,
        Quantity::String(s) => match s.trim().strip_suffix('m') {
            Some(m) => m.parse::<f64>().ok()? / 1000.0,
            None => s.trim().parse().ok()?,
        },
    };
    (v.is_finite() && (0.0..=1e6).contains(&v)).then_some(v)
}

/// Kubernetes' `$(VAR)`: replaced by VAR's value when VAR is known,
/// left as is otherwise; `$$` is one `$`.
pub fn expand_vars(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(j) if vars.contains_key(&inner[..j]) => {
                    out.push_str(&vars[&inner[..j]]);
                    rest = &inner[j + 1..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn clean_rel(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|c| !c.is_empty() && c != ".." && c != ".")
        && !p.contains('\0')
}

fn mode_of(doc: &str, path: &str, m: Option<IntOrString>, default: u32) -> Result<u32> {
    let m = match m {
        None => None,
        Some(IntOrString::Int(n)) => Some(n),
        // YAML 1.1's octal (`0644`, `0o644`), which YAML 1.2 reads as a
        // string.
        Some(IntOrString::String(s)) => {
            let digits = s
                .strip_prefix("0o")
                .or_else(|| s.strip_prefix('0'))
                .unwrap_or(&s);
            Some(
                i64::from_str_radix(digits, 8)
                    .map_err(|_| invalid(doc, path, format!("{s:?} is not a file mode")))?,
            )
        }
    };
    match m {
        None => Ok(default),
        Some(m) if (0..=0o777).contains(&m) => Ok(m as u32),
        Some(m) => Err(invalid(
            doc,
            path,
            format!("{m} is not a file mode (0 to 0777)"),
        )),
    }
}

struct Vol {
    /// How a mount of it is made: a named volume, a host path, a tmpfs.
    kind: MountType,
    source: String,
    size: Option<u64>,
    read_only: bool,
}

pub(crate) fn pod(inp: PodInput) -> Result<PodPlan> {
    let PodInput {
        doc,
        base,
        name,
        labels,
        annotations,
        spec,
        data,
        services,
        publish,
        network,
        warnings,
    } = inp;
    let inv = |path: String, msg: String| -> Error { invalid(doc, path, msg) };
    if spec.containers.is_empty() {
        return Err(inv(
            format!("{base}.containers"),
            "empty: a pod needs at least one container".into(),
        ));
    }
    let host_net = spec.host_network == Some(true);
    let mut pod = EnginePod {
        labels: labels.clone(),
        ..EnginePod::default()
    };
    if spec.host_ipc == Some(true) {
        pod.share.retain(|s| s != "ipc");
    }
    if spec.share_process_namespace == Some(true) {
        pod.share.push("pid".into());
    }
    if host_net {
        pod.net = NamespaceMode::Host;
        pod.share.retain(|s| s != "uts");
    } else {
        match network {
            "" | "none" => {}
            "host" => {
                pod.net = NamespaceMode::Host;
                pod.share.retain(|s| s != "uts");
            }
            n => {
                let mut aliases: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
                if let Some(sd) = &spec.subdomain {
                    aliases.push(sd.clone());
                }
                pod.network.networks.push(NetworkAttachment {
                    network: n.to_string(),
                    aliases,
                    ..Default::default()
                });
            }
        }
    }
    if pod.shares("uts") {
        pod.hostname = Some(spec.hostname.clone().unwrap_or_else(|| name.to_string()));
    }
    if let Some(h) = &spec.hostname {
        if !crate::is_dns_name(h, 63) {
            return Err(inv(
                format!("{base}.hostname"),
                format!("{h:?} is not a DNS label"),
            ));
        }
    }

    // Volumes.
    let mut vols: BTreeMap<String, Vol> = BTreeMap::new();
    let mut plan_vols = Vec::new();
    let mut host_paths = Vec::new();
    let mut claims = Vec::new();
    // The pod's fsGroup: the group of its emptyDirs.
    let fs_group = match spec.security_context.as_ref().and_then(|s| s.fs_group) {
        Some(g) if (0..=u32::MAX as i64).contains(&g) => Some(g as u32),
        Some(g) => {
            return Err(inv(
                format!("{base}.securityContext.fsGroup"),
                format!("{g} is not an id"),
            ))
        }
        None => None,
    };
    for (i, v) in spec.volumes.iter().enumerate() {
        let at = format!("{base}.volumes[{i}]");
        if !crate::is_dns_name(&v.name, 63) {
            return Err(inv(
                format!("{at}.name"),
                format!("{:?} is not a DNS label", v.name),
            ));
        }
        if vols.contains_key(&v.name) {
            return Err(inv(
                format!("{at}.name"),
                format!("{:?} is named twice", v.name),
            ));
        }
        let sources = [
            v.empty_dir.is_some(),
            v.host_path.is_some(),
            v.config_map.is_some(),
            v.secret.is_some(),
            v.persistent_volume_claim.is_some(),
            v.downward_api.is_some(),
        ];
        if sources.iter().filter(|x| **x).count() != 1 {
            return Err(inv(
                at,
                "needs exactly one of emptyDir, hostPath, configMap, secret, persistentVolumeClaim, downwardAPI"
                    .into(),
            ));
        }
        let own = format!("{name}-{}", v.name);
        let vol = if let Some(e) = &v.empty_dir {
            let size = match &e.size_limit {
                Some(q) => Some(crate::parse_memory(q).ok_or_else(|| {
                    inv(
                        format!("{at}.emptyDir.sizeLimit"),
                        "not a quantity like 64Mi".into(),
                    )
                })? as u64),
                None => None,
            };
            match e.medium.as_deref() {
                // One tmpfs for the pod, shared by its containers and kept
                // across their restarts, as the kubelet's.
                Some("Memory") => {
                    let mut options: BTreeMap<String, String> =
                        [("type".to_string(), "tmpfs".to_string())].into();
                    // tmpfs takes size=0 as no limit: 0 is no sizeLimit.
                    let mut o = Vec::new();
                    if let Some(n) = size.filter(|n| *n > 0) {
                        o.push(format!("size={n}"));
                    }
                    // tmpfs's root is 1777; with an fsGroup, the kubelet
                    // gives it the group and the setgid bit.
                    if let Some(g) = fs_group {
                        o.push(format!("mode=3777,gid={g}"));
                    }
                    if !o.is_empty() {
                        options.insert("o".into(), o.join(","));
                    }
                    plan_vols.push(crate::FileVolume {
                        name: own.clone(),
                        files: Vec::new(),
                        options,
                        pod_fields: false,
                        dir: None,
                    });
                    Vol {
                        kind: MountType::Volume,
                        source: own,
                        size: None,
                        read_only: false,
                    }
                }
                None | Some("") => {
                    if size.is_some() {
                        warnings.push(format!("{doc}: {at}.emptyDir.sizeLimit: not enforced on a disk-backed emptyDir (medium: Memory is)"));
                    }
                    // As the kubelet's: anyone may write in it (a
                    // container that is not root's too).
                    plan_vols.push(crate::FileVolume {
                        name: own.clone(),
                        files: Vec::new(),
                        dir: Some(crate::DirOwner {
                            mode: if fs_group.is_some() { 0o2777 } else { 0o777 },
                            gid: fs_group,
                        }),
                        ..Default::default()
                    });
                    Vol {
                        kind: MountType::Volume,
                        source: own,
                        size: None,
                        read_only: false,
                    }
                }
                Some(m) => {
                    return Err(inv(
                        format!("{at}.emptyDir.medium"),
                        format!("{m:?} is not \"\" or Memory"),
                    ))
                }
            }
        } else if let Some(h) = &v.host_path {
            if !h.path.starts_with('/') {
                return Err(inv(
                    format!("{at}.hostPath.path"),
                    format!("{:?} is not absolute", h.path),
                ));
            }
            let t = h.kind.clone().unwrap_or_default();
            if !matches!(
                t.as_str(),
                "" | "DirectoryOrCreate"
                    | "Directory"
                    | "FileOrCreate"
                    | "File"
                    | "Socket"
                    | "CharDevice"
                    | "BlockDevice"
            ) {
                return Err(inv(
                    format!("{at}.hostPath.type"),
                    format!("{t:?} is not a hostPath type"),
                ));
            }
            host_paths.push((h.path.clone(), t));
            Vol {
                kind: MountType::Bind,
                source: h.path.clone(),
                size: None,
                read_only: false,
            }
        } else if let Some(c) = v.config_map.as_ref().or(v.secret.as_ref()) {
            let secret = v.secret.is_some();
            let (field, src_name, store) = if secret {
                ("secret", c.secret_name.clone(), &data.secrets)
            } else {
                ("configMap", c.name.clone(), &data.config_maps)
            };
            let src_name = src_name.ok_or_else(|| {
                inv(
                    format!(
                        "{at}.{field}.{}",
                        if secret { "secretName" } else { "name" }
                    ),
                    "missing".into(),
                )
            })?;
            let default_mode = mode_of(
                doc,
                &format!("{at}.{field}.defaultMode"),
                c.default_mode.clone(),
                0o644,
            )?;
            let mut files = Vec::new();
            match store.get(&src_name) {
                None if c.optional == Some(true) => {}
                None => {
                    return Err(inv(
                        format!("{at}.{field}"),
                        format!(
                            "{} {src_name:?} is not in the manifest (or a --configmap file)",
                            if secret { "Secret" } else { "ConfigMap" }
                        ),
                    ))
                }
                Some(kv) if c.items.is_empty() => {
                    for (k, d) in kv {
                        files.push(FileData {
                            path: k.clone(),
                            data: d.clone(),
                            mode: default_mode,
                        });
                    }
                }
                Some(kv) => {
                    for (j, it) in c.items.iter().enumerate() {
                        let iat = format!("{at}.{field}.items[{j}]");
                        let d = kv.get(&it.key).ok_or_else(|| {
                            inv(
                                format!("{iat}.key"),
                                format!("{:?} is not a key of {src_name}", it.key),
                            )
                        })?;
                        if !clean_rel(&it.path) {
                            return Err(inv(
                                format!("{iat}.path"),
                                format!("{:?} is not a relative path without '..'", it.path),
                            ));
                        }
                        let mode =
                            mode_of(doc, &format!("{iat}.mode"), it.mode.clone(), default_mode)?;
                        files.push(FileData {
                            path: it.path.clone(),
                            data: d.clone(),
                            mode,
                        });
                    }
                }
            }
            for f in &files {
                if !clean_rel(&f.path) {
                    return Err(inv(
                        format!("{at}.{field}"),
                        format!("key {:?} is not a file name", f.path),
                    ));
                }
            }
            plan_vols.push(crate::FileVolume {
                name: own.clone(),
                files,
                ..Default::default()
            });
            Vol {
                kind: MountType::Volume,
                source: own,
                size: None,
                read_only: true,
            }
        } else if let Some(d) = &v.downward_api {
            let default_mode = mode_of(
                doc,
                &format!("{at}.downwardAPI.defaultMode"),
                d.default_mode.clone(),
                0o644,
            )?;
            let mut files = Vec::new();
            for (j, it) in d.items.iter().enumerate() {
                let iat = format!("{at}.downwardAPI.items[{j}]");
                if !clean_rel(&it.path) {
                    return Err(inv(
                        format!("{iat}.path"),
                        format!("{:?} is not a relative path without '..'", it.path),
                    ));
                }
                let data = match (&it.field_ref, &it.resource_field_ref) {
                    (Some(f), None) => downward_file(&f.field_path, name, &labels, annotations)
                        .ok_or_else(|| {
                            inv(
                                format!("{iat}.fieldRef.fieldPath"),
                                format!("{:?} is not metadata.name, metadata.namespace, metadata.uid, metadata.labels, metadata.annotations or one label or annotation", f.field_path),
                            )
                        })?,
                    (None, Some(r)) => {
                        let rat = format!("{iat}.resourceFieldRef");
                        // A volume's file names its container.
                        let cname = r.container_name.as_deref().ok_or_else(|| {
                            inv(format!("{rat}.containerName"), "missing (a volume's file names its container)".into())
                        })?;
                        let target = spec
                            .containers
                            .iter()
                            .chain(&spec.init_containers)
                            .find(|x| x.name == cname)
                            .ok_or_else(|| {
                                inv(
                                    format!("{rat}.containerName"),
                                    format!("{cname:?} is no container of this pod"),
                                )
                            })?;
                        match resource_text(r, target) {
                            Ok(Some(v)) => v.into_bytes(),
                            // Unset: the kubelet writes the node's
                            // capacity; berth writes nothing and says so.
                            Ok(None) => {
                                warnings.push(format!("{doc}: {rat}: {} is not set on container {cname}: the file is empty", r.resource));
                                Vec::new()
                            }
                            Err(msg) => return Err(inv(format!("{rat}.resource"), msg)),
                        }
                    }
                    _ => {
                        return Err(inv(
                            iat,
                            "needs exactly one of fieldRef, resourceFieldRef".into(),
                        ))
                    }
                };
                let mode = mode_of(doc, &format!("{iat}.mode"), it.mode.clone(), default_mode)?;
                files.push(FileData {
                    path: it.path.clone(),
                    data,
                    mode,
                });
            }
            plan_vols.push(crate::FileVolume {
                name: own.clone(),
                files,
                pod_fields: true,
                ..Default::default()
            });
            Vol {
                kind: MountType::Volume,
                source: own,
                size: None,
                read_only: true,
            }
        } else if let Some(p) = &v.persistent_volume_claim {
            if !crate::is_dns_subdomain(&p.claim_name, 253) {
                return Err(inv(
                    format!("{at}.persistentVolumeClaim.claimName"),
                    format!("{:?} is not a volume name", p.claim_name),
                ));
            }
            claims.push(p.claim_name.clone());
            Vol {
                kind: MountType::Volume,
                source: p.claim_name.clone(),
                size: None,
                read_only: p.read_only == Some(true),
            }
        } else {
            unreachable_vol()
        };
        vols.insert(v.name.clone(), vol);
    }

    let restart = match spec.restart_policy.as_deref() {
        None | Some("Always") => RestartPolicy::Always,
        Some("OnFailure") => RestartPolicy::OnFailure(0),
        Some(_) => RestartPolicy::No,
    };
    let mut ctx = Ctx {
        doc,
        base,
        pod_name: name,
        labels: &labels,
        annotations: annotations.clone(),
        spec,
        data,
        vols: &vols,
        warnings,
        restart,
    };
    let mut names = std::collections::BTreeSet::new();
    let mut init_containers = Vec::new();
    for (i, c) in spec.init_containers.iter().enumerate() {
        let at = format!("{base}.initContainers[{i}]");
        if !names.insert(c.name.clone()) {
            return Err(inv(
                format!("{at}.name"),
                format!("{:?} is the name of another container", c.name),
            ));
        }
        init_containers.push(ctx.container(&at, c, true)?);
    }
    let mut containers = Vec::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let at = format!("{base}.containers[{i}]");
        if !names.insert(c.name.clone()) {
            return Err(inv(
                format!("{at}.name"),
                format!("{:?} is the name of another container", c.name),
            ));
        }
        let cp = ctx.container(&at, c, false)?;
        // hostPort: published by the pod.
        for (j, p) in c.ports.iter().enumerate() {
            if let Some(hp) = p.host_port {
                let pat = format!("{at}.ports[{j}]");
                let host_port = port_number(doc, &format!("{pat}.hostPort"), hp)?;
                let host_ip = match &p.host_ip {
                    Some(ip) => Some(ip.parse().map_err(|_| {
                        inv(
                            format!("{pat}.hostIP"),
                            format!("{ip:?} is not an IP address"),
                        )
                    })?),
                    None => None,
                };
                if !host_net && publish {
                    pod.network.ports.push(PortMapping {
                        host_ip,
                        host_port,
                        container_port: p.container_port as u16,
                        proto: proto(doc, &format!("{pat}.protocol"), &p.protocol)?,
                    });
                }
            }
        }
        containers.push(cp);
    }
    // NodePort and LoadBalancer services: their ports published by the
    // first pod.
    if publish && !host_net && !matches!(network, "" | "none" | "host") {
        for s in services.iter().filter(|s| s.kind != "ClusterIP") {
            for p in &s.ports {
                let target = match &p.target {
                    IntOrString::Int(n) => *n as u16,
                    IntOrString::String(n) => match spec
                        .containers
                        .iter()
                        .flat_map(|c| &c.ports)
                        .find(|cp| cp.name.as_deref() == Some(n.as_str()))
                    {
                        Some(cp) => cp.container_port as u16,
                        None => {
                            ctx.warnings.push(format!("Service {}: targetPort {n:?} names no port of pod {name}: not published", s.name));
                            continue;
                        }
                    },
                };
                pod.network.ports.push(PortMapping {
                    host_ip: None,
                    host_port: p.node_port.unwrap_or(0),
                    container_port: target,
                    proto: p.proto,
                });
            }
        }
    }
    // What `kube generate` needs and the records do not hold.
    let psc = spec.security_context.clone().unwrap_or_default();
    let source = crate::PodSource {
        annotations: annotations.clone(),
        fs_group: psc.fs_group,
        supplemental_groups: psc.supplemental_groups.clone(),
        run_as_non_root: psc.run_as_non_root,
        volumes: spec.volumes.clone(),
    };
    if source != crate::PodSource::default() {
        if let Ok(json) = serde_json::to_string(&source) {
            pod.labels.insert(crate::LABEL_SOURCE.into(), json);
        }
    }
    pod.validate()
        .map_err(|e| inv(base.to_string(), e.to_string()))?;
    Ok(PodPlan {
        name: name.to_string(),
        spec: pod,
        init_containers,
        containers,
        volumes: plan_vols,
        host_paths,
        claims,
    })
}

fn unreachable_vol() -> Vol {
    // The count of sources was checked above: one is set.
    Vol {
        kind: MountType::Tmpfs,
        source: String::new(),
        size: None,
        read_only: false,
    }
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

struct Ctx<'a> {
    doc: &'a str,
    base: &'a str,
    pod_name: &'a str,
    labels: &'a BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    spec: &'a PodSpec,
    data: &'a Data,
    vols: &'a BTreeMap<String, Vol>,
    warnings: &'a mut Vec<String>,
    restart: RestartPolicy,
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('=') && !s.contains('\0')
}

impl Ctx<'_> {
    fn inv(&self, path: String, msg: impl Into<String>) -> Error {
        invalid(self.doc, path, msg)
    }

    fn key_ref(&self, at: &str, r: &KeyRef, secret: bool) -> Result<Option<String>> {
        let store = if secret {
            &self.data.secrets
        } else {
            &self.data.config_maps
        };
        let what = if secret { "Secret" } else { "ConfigMap" };
        match store.get(&r.name).and_then(|kv| kv.get(&r.key)) {
            Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
            None if r.optional == Some(true) => Ok(None),
            None => Err(self.inv(
                at.to_string(),
                format!(
                    "{what} {:?} has no key {:?} in the manifest (or a --configmap file)",
                    r.name, r.key
                ),
            )),
        }
    }

    fn field_ref(&mut self, at: &str, f: &FieldRef) -> Result<Option<String>> {
        let p = f.field_path.as_str();
        let label = |prefix: &str, m: &BTreeMap<String, String>| -> Option<Option<String>> {
            let k = p.strip_prefix(prefix)?.strip_suffix("']")?;
            Some(Some(m.get(k).cloned().unwrap_or_default()))
        };
        if let Some(v) = label("metadata.labels['", self.labels) {
            return Ok(v);
        }
        if let Some(v) = label("metadata.annotations['", &self.annotations) {
            return Ok(v);
        }
        Ok(Some(match p {
            "metadata.name" => self.pod_name.to_string(),
            "metadata.namespace" => "default".into(),
            "spec.nodeName" => "localhost".into(),
            "spec.serviceAccountName" => "default".into(),
            // Known once the pod is made: filled in then (`fill_pod_fields`).
            "metadata.uid" | "status.podIP" | "status.podIPs" | "status.hostIP"
            | "status.hostIPs" => field_placeholder(p),
            _ => return Err(self.inv(format!("{at}.fieldPath"), format!("{p:?} is not a field berth fills (metadata.name, metadata.namespace, metadata.uid, metadata.labels['K'], metadata.annotations['K'], spec.nodeName, spec.serviceAccountName, status.podIP(s), status.hostIP(s))"))),
        }))
    }

    fn resource_ref(
        &mut self,
        at: &str,
        r: &ResourceFieldRef,
        c: &Container,
    ) -> Result<Option<String>> {
        let target = match &r.container_name {
            Some(n) => self
                .spec
                .containers
                .iter()
                .chain(&self.spec.init_containers)
                .find(|x| &x.name == n)
                .ok_or_else(|| {
                    self.inv(
                        format!("{at}.containerName"),
                        format!("{n:?} is no container of this pod"),
                    )
                })?,
            None => c,
        };
        match resource_text(r, target) {
            Ok(Some(v)) => Ok(Some(v)),
            Ok(None) => {
                self.warnings.push(format!(
                    "{}: {at}: {} is not set on the container: the variable is not set",
                    self.doc, r.resource
                ));
                Ok(None)
            }
            Err(msg) => Err(self.inv(format!("{at}.resource"), msg)),
        }
    }

    fn container(&mut self, at: &str, c: &Container, init: bool) -> Result<ContainerPlan> {
        if !crate::is_dns_name(&c.name, 63) {
            return Err(self.inv(
                format!("{at}.name"),
                format!("{:?} is not a DNS label", c.name),
            ));
        }
        let image = c
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| self.inv(format!("{at}.image"), "missing"))?;
        let mut s = ContainerSpec::default();
        // Env, in order: envFrom, then env (which wins); $(VAR) in a value
        // sees the ones before it.
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut set = |vars: &mut BTreeMap<String, String>, k: String, v: String| {
            if !vars.contains_key(&k) {
                order.push(k.clone());
            }
            vars.insert(k, v);
        };
        for (i, e) in c.env_from.iter().enumerate() {
            let eat = format!("{at}.envFrom[{i}]");
            let (r, secret) = match (&e.config_map_ref, &e.secret_ref) {
                (Some(r), None) => (r, false),
                (None, Some(r)) => (r, true),
                _ => return Err(self.inv(eat, "needs exactly one of configMapRef and secretRef")),
            };
            let store = if secret {
                &self.data.secrets
            } else {
                &self.data.config_maps
            };
            match store.get(&r.name) {
                Some(kv) => {
                    for (k, v) in kv {
                        let k = format!("{}{k}", e.prefix.clone().unwrap_or_default());
                        if is_env_name(&k) {
                            set(&mut vars, k, String::from_utf8_lossy(v).into_owned());
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => {
                    return Err(self.inv(
                        format!(
                            "{eat}.{}",
                            if secret { "secretRef" } else { "configMapRef" }
                        ),
                        format!(
                            "{:?} is not in the manifest (or a --configmap file)",
                            r.name
                        ),
                    ))
                }
            }
        }
        for (i, e) in c.env.iter().enumerate() {
            let eat = format!("{at}.env[{i}]");
            if !is_env_name(&e.name) {
                return Err(self.inv(
                    format!("{eat}.name"),
                    format!("{:?} is not a variable name", e.name),
                ));
            }
            let v = match (&e.value, &e.value_from) {
                (v, None) => Some(expand_vars(v.as_deref().unwrap_or(""), &vars)),
                (None, Some(f)) => {
                    let fat = format!("{eat}.valueFrom");
                    match (&f.field_ref, &f.resource_field_ref, &f.config_map_key_ref, &f.secret_key_ref) {
                        (Some(r), None, None, None) => self.field_ref(&format!("{fat}.fieldRef"), r)?,
                        (None, Some(r), None, None) => self.resource_ref(&format!("{fat}.resourceFieldRef"), r, c)?,
                        (None, None, Some(r), None) => self.key_ref(&format!("{fat}.configMapKeyRef"), r, false)?,
                        (None, None, None, Some(r)) => self.key_ref(&format!("{fat}.secretKeyRef"), r, true)?,
                        _ => return Err(self.inv(fat, "needs exactly one of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef")),
                    }
                }
                (Some(_), Some(_)) => {
                    return Err(self.inv(eat, "value and valueFrom are both given"))
                }
            };
            if let Some(v) = v {
                set(&mut vars, e.name.clone(), v);
            }
        }
        s.process.env = order.iter().map(|k| format!("{k}={}", vars[k])).collect();
        if let Some(cmd) = &c.command {
            s.process.entrypoint = Some(cmd.iter().map(|a| expand_vars(a, &vars)).collect());
        }
        if let Some(args) = &c.args {
            s.process.args = args.iter().map(|a| expand_vars(a, &vars)).collect();
        } else if c.command.is_some() {
            // command without args: the image's CMD is not used.
            s.process.args = Vec::new();
        }
        if let Some(w) = &c.working_dir {
            if !w.starts_with('/') {
                return Err(self.inv(format!("{at}.workingDir"), format!("{w:?} is not absolute")));
            }
            s.process.workdir = Some(w.clone());
        }
        s.process.tty = c.tty == Some(true);
        s.process.stdin = c.stdin == Some(true);
        if let Some(g) = self.spec.termination_grace_period_seconds {
            if !(0..=86400).contains(&g) {
                return Err(self.inv(
                    format!("{}.terminationGracePeriodSeconds", self.base),
                    format!("{g} is not in 0..=86400"),
                ));
            }
            s.process.stop_timeout = Some(g as u32);
        }
        // Ports: checked (hostPort is the pod's).
        for (j, p) in c.ports.iter().enumerate() {
            let pat = format!("{at}.ports[{j}]");
            port_number(self.doc, &format!("{pat}.containerPort"), p.container_port)?;
            proto(self.doc, &format!("{pat}.protocol"), &p.protocol)?;
            if let Some(hp) = p.host_port {
                port_number(self.doc, &format!("{pat}.hostPort"), hp)?;
            }
        }
        // Resources.
        if let Some(r) = &c.resources {
            for (sect, map) in [("limits", &r.limits), ("requests", &r.requests)] {
                for (k, q) in map {
                    let rat = format!("{at}.resources.{sect}.{k}");
                    match k.as_str() {
                        "cpu" => {
                            let v = parse_cpu(q).filter(|v| *v > 0.0).ok_or_else(|| {
                                self.inv(rat, "not a CPU quantity like 500m or 2")
                            })?;
                            if sect == "limits" {
                                s.resources.cpus = Some(v);
                            } else {
                                // cgroup v1 shares: 1024 a core, at least 2.
                                s.resources.cpu_shares = Some(((v * 1024.0) as u64).max(2));
                            }
                        }
                        "memory" => {
                            let v = parse_memory(q)
                                .filter(|v| *v > 0)
                                .ok_or_else(|| self.inv(rat, "not a memory quantity like 64Mi"))?;
                            if sect == "limits" {
                                s.resources.memory = Some(v);
                            } else {
                                s.resources.memory_reservation = Some(v);
                            }
                        }
                        "ephemeral-storage" | "hugepages-2Mi" | "hugepages-1Gi" => {
                            self.warnings
                                .push(format!("{}: {rat}: not enforced by berth", self.doc));
                        }
                        _ => self
                            .warnings
                            .push(format!("{}: {rat}: unknown resource, ignored", self.doc)),
                    }
                }
            }
            if let (Some(l), Some(q)) = (s.resources.memory, s.resources.memory_reservation) {
                if q > l {
                    return Err(self.inv(
                        format!("{at}.resources.requests.memory"),
                        "more than limits.memory",
                    ));
                }
            }
        }
        // Mounts.
        for (j, m) in c.volume_mounts.iter().enumerate() {
            let mat = format!("{at}.volumeMounts[{j}]");
            let v = self.vols.get(&m.name).ok_or_else(|| {
                self.inv(
                    format!("{mat}.name"),
                    format!("{:?} is not a volume of this pod", m.name),
                )
            })?;
            if !m.mount_path.starts_with('/') {
                return Err(self.inv(
                    format!("{mat}.mountPath"),
                    format!("{:?} is not absolute", m.mount_path),
                ));
            }
            let source = v.source.clone();
            // Resolved inside the volume and pinned by the engine at each
            // start (a container's symlink never leads it out).
            let mut sub_path = None;
            let expr = m
                .sub_path_expr
                .as_deref()
                .filter(|p| !p.is_empty())
                .map(|e| expand_vars(e, &vars));
            if m.sub_path.as_deref().is_some_and(|p| !p.is_empty()) && expr.is_some() {
                return Err(self.inv(
                    format!("{mat}.subPathExpr"),
                    "subPath and subPathExpr are both given",
                ));
            }
            if let Some(sp) = m
                .sub_path
                .as_deref()
                .filter(|p| !p.is_empty())
                .or(expr.as_deref())
            {
                if !clean_rel(sp) {
                    let field = if expr.is_some() {
                        "subPathExpr"
                    } else {
                        "subPath"
                    };
                    return Err(self.inv(
                        format!("{mat}.{field}"),
                        format!("{sp:?} is not a relative path without '..'"),
                    ));
                }
                if v.kind == MountType::Tmpfs {
                    return Err(self.inv(format!("{mat}.subPath"), "not on this volume"));
                }
                sub_path = Some(sp.to_string());
            }
            let propagation = match m.mount_propagation.as_deref() {
                None | Some("None") => None,
                Some("HostToContainer") => Some("rslave".to_string()),
                Some("Bidirectional") => Some("rshared".to_string()),
                Some(o) => {
                    return Err(self.inv(
                        format!("{mat}.mountPropagation"),
                        format!("{o:?} is not None, HostToContainer or Bidirectional"),
                    ))
                }
            };
            s.storage.mounts.push(Mount {
                kind: v.kind.clone(),
                source,
                destination: m.mount_path.clone(),
                readonly: v.read_only || m.read_only == Some(true),
                size: v.size,
                propagation: if v.kind == MountType::Bind {
                    propagation
                } else {
                    None
                },
                // A volume made for the pod is not filled from the image.
                nocopy: v.kind == MountType::Volume,
                sub_path,
                ..Default::default()
            });
        }
        // Security.
        let psc = self.spec.security_context.clone().unwrap_or_default();
        let sc = c.security_context.clone().unwrap_or_default();
        let uid = sc.run_as_user.or(psc.run_as_user);
        let gid = sc.run_as_group.or(psc.run_as_group);
        let non_root = sc.run_as_non_root.or(psc.run_as_non_root) == Some(true);
        for (v, p) in [(uid, "runAsUser"), (gid, "runAsGroup")] {
            if let Some(v) = v {
                if !(0..=u32::MAX as i64).contains(&v) {
                    return Err(self.inv(
                        format!("{at}.securityContext.{p}"),
                        format!("{v} is not an id"),
                    ));
                }
            }
        }
        if non_root && uid == Some(0) {
            return Err(self.inv(
                format!("{at}.securityContext.runAsNonRoot"),
                "true with runAsUser 0",
            ));
        }
        s.process.user = match (uid, gid) {
            (Some(u), Some(g)) => Some(format!("{u}:{g}")),
            (Some(u), None) => Some(u.to_string()),
            (None, Some(g)) => {
                self.warnings.push(format!("{}: {at}: runAsGroup without runAsUser: the image's user runs with group {g} added", self.doc));
                s.process.groups.push(g.to_string());
                None
            }
            (None, None) => None,
        };
        if let Some(fg) = psc.fs_group {
            s.process.groups.push(fg.to_string());
        }
        s.process
            .groups
            .extend(psc.supplemental_groups.iter().map(|g| g.to_string()));
        s.security.privileged = sc.privileged == Some(true);
        s.storage.read_only = sc.read_only_root_filesystem == Some(true);
        s.security.no_new_privileges = sc.allow_privilege_escalation == Some(false);
        if let Some(caps) = &sc.capabilities {
            s.security.cap_add = caps.add.clone();
            s.security.cap_drop = caps.drop.clone();
        }
        // The container's seccompProfile wins over the pod's.
        let mut seccomp_file = None;
        let profile = match (&sc.seccomp_profile, &psc.seccomp_profile) {
            (Some(p), _) => Some((p, format!("{at}.securityContext.seccompProfile"))),
            (None, Some(p)) => Some((p, format!("{}.securityContext.seccompProfile", self.base))),
            (None, None) => None,
        };
        if let Some((p, pat)) = profile {
            match (p.kind.as_str(), &p.localhost_profile) {
                ("RuntimeDefault", None) => s.security.seccomp = SeccompPolicy::Default,
                ("Unconfined", None) => s.security.seccomp = SeccompPolicy::Unconfined,
                ("Localhost", Some(f)) => {
                    let clean = !f.is_empty() && f.split('/').all(|c| c != "..");
                    if !clean {
                        return Err(self.inv(
                            format!("{pat}.localhostProfile"),
                            format!("{f:?} is not a path without '..'"),
                        ));
                    }
                    seccomp_file = Some(if f.starts_with('/') {
                        f.clone()
                    } else {
                        format!("{SECCOMP_ROOT}/{f}")
                    });
                }
                ("Localhost", None) => {
                    return Err(self.inv(
                        format!("{pat}.localhostProfile"),
                        "missing (type Localhost needs it)",
                    ))
                }
                ("RuntimeDefault" | "Unconfined", Some(_)) => {
                    return Err(
                        self.inv(format!("{pat}.localhostProfile"), "only for type Localhost")
                    )
                }
                (o, _) => {
                    return Err(self.inv(
                        format!("{pat}.type"),
                        format!("{o:?} is not RuntimeDefault, Unconfined or Localhost"),
                    ))
                }
            }
        }
        match sc.proc_mount.as_deref() {
            None | Some("Default") => {}
            Some("Unmasked") => s.security.unmask = true,
            Some(o) => {
                return Err(self.inv(
                    format!("{at}.securityContext.procMount"),
                    format!("{o:?} is not Default or Unmasked"),
                ))
            }
        }
        if self.spec.host_pid == Some(true) {
            s.namespaces.pid = NamespaceMode::Host;
        }
        if self.spec.host_ipc == Some(true) {
            s.namespaces.ipc = NamespaceMode::Host;
        }
        // Restart: an init container runs once (the pod's policy is its
        // own only when it is OnFailure).
        s.lifecycle.restart = if init {
            RestartPolicy::No
        } else {
            self.restart
        };
        let mut labels = self.labels.clone();
        labels.insert(
            LABEL_CONTAINER.into(),
            if init {
                format!("init:{}", c.name)
            } else {
                c.name.clone()
            },
        );
        labels.insert(LABEL_POD.into(), self.pod_name.to_string());
        if !c.ports.is_empty() {
            if let Ok(json) = serde_json::to_string(&c.ports) {
                labels.insert(crate::LABEL_PORTS.into(), json);
            }
        }
        if non_root {
            labels.insert(crate::LABEL_NON_ROOT.into(), "true".into());
        }
        s.metadata.labels = labels;
        let pull = match c.image_pull_policy.as_deref() {
            Some("Always") => Pull::Always,
            Some("IfNotPresent") => Pull::IfNotPresent,
            Some("Never") => Pull::Never,
            None => {
                let last = image.rsplit('/').next().unwrap_or(&image);
                if image.contains('@') || last.contains(':') && !last.ends_with(":latest") {
                    Pull::IfNotPresent
                } else {
                    Pull::Always
                }
            }
            Some(o) => {
                return Err(self.inv(
                    format!("{at}.imagePullPolicy"),
                    format!("{o:?} is not Always, IfNotPresent or Never"),
                ))
            }
        };
        let mut probes = Vec::new();
        for (kind, p, field) in [
            (ProbeKind::Liveness, &c.liveness_probe, "livenessProbe"),
            (ProbeKind::Readiness, &c.readiness_probe, "readinessProbe"),
            (ProbeKind::Startup, &c.startup_probe, "startupProbe"),
        ] {
            if let Some(p) = p {
                if init {
                    return Err(
                        self.inv(format!("{at}.{field}"), "an init container has no probes")
                    );
                }
                probes.push(self.probe(&format!("{at}.{field}"), kind, p, c)?);
            }
        }
        // The monitor runs them (the engine's health checks).
        s.health.probes = probes.iter().map(probe_spec).collect();
        if let Some(lc) = &c.lifecycle {
            if init {
                return Err(self.inv(
                    format!("{at}.lifecycle"),
                    "an init container has no lifecycle hooks",
                ));
            }
            // Bounded by the grace period (the kubelet's bound for
            // preStop; berth's for postStart too, which the kubelet
            // leaves unbounded).
            let grace = self.spec.termination_grace_period_seconds.unwrap_or(30);
            for (kind, h, field) in [
                ("post-start", &lc.post_start, "postStart"),
                ("pre-stop", &lc.pre_stop, "preStop"),
            ] {
                if let Some(h) = h {
                    s.health.hooks.push(self.hook(
                        &format!("{at}.lifecycle.{field}"),
                        kind,
                        h,
                        c,
                        grace,
                    )?);
                }
            }
        }
        s.validate()
            .map_err(|e| self.inv(at.to_string(), e.to_string()))?;
        Ok(ContainerPlan {
            name: format!("{}-{}", self.pod_name, c.name),
            image,
            pull,
            spec: s,
            probes,
            run_as_non_root: non_root && uid.is_none(),
            seccomp_file,
        })
    }

    /// A lifecycle hook as the monitor runs it: its handler checked as a
    /// probe's is, bounded by the grace period `grace` (s).
    fn hook(
        &self,
        at: &str,
        kind: &str,
        h: &LifecycleHandler,
        c: &Container,
        grace: i64,
    ) -> Result<ProbeSpec> {
        if let Some(sl) = &h.sleep {
            // Kubernetes 1.29's sleep action: the monitor waits (bounded
            // by the hook's timeout, the grace period).
            if h.exec.is_some() || h.http_get.is_some() || h.tcp_socket.is_some() {
                return Err(self.inv(
                    at.to_string(),
                    "needs exactly one of exec, httpGet, tcpSocket, sleep",
                ));
            }
            if !(0..=86400).contains(&sl.seconds) {
                return Err(self.inv(
                    format!("{at}.sleep.seconds"),
                    format!("{} is not in 0..=86400", sl.seconds),
                ));
            }
            return Ok(ProbeSpec {
                kind: kind.into(),
                handler: Handler::Sleep {
                    seconds: sl.seconds as u64,
                },
                failure_threshold: 1,
                timeout_ms: grace.clamp(1, 86400) as u64 * 1000,
                ..ProbeSpec::default()
            });
        }
        let p = Probe {
            exec: h.exec.clone(),
            http_get: h.http_get.clone(),
            tcp_socket: h.tcp_socket.clone(),
            ..Probe::default()
        };
        let mut spec = probe_spec(&self.probe(at, ProbeKind::Liveness, &p, c)?);
        spec.kind = kind.into();
        spec.failure_threshold = 1;
        spec.timeout_ms = grace.clamp(1, 86400) as u64 * 1000;
        Ok(spec)
    }

    fn probe(&self, at: &str, kind: ProbeKind, p: &Probe, c: &Container) -> Result<ProbePlan> {
        let port = |pat: String, v: &Option<IntOrString>| -> Result<u16> {
            match v {
                Some(IntOrString::Int(n)) => port_number(self.doc, &pat, *n),
                Some(IntOrString::String(name)) => c
                    .ports
                    .iter()
                    .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                    .map(|cp| cp.container_port as u16)
                    .ok_or_else(|| {
                        self.inv(pat, format!("{name:?} names no port of the container"))
                    }),
                None => Err(self.inv(pat, "missing")),
            }
        };
        let actions = [
            p.exec.is_some(),
            p.http_get.is_some(),
            p.tcp_socket.is_some(),
            p.grpc.is_some(),
        ];
        if actions.iter().filter(|x| **x).count() != 1 {
            return Err(self.inv(
                at.to_string(),
                "needs exactly one of exec, httpGet, tcpSocket, grpc",
            ));
        }
        let action = if let Some(e) = &p.exec {
            if e.command.is_empty() {
                return Err(self.inv(format!("{at}.exec.command"), "empty"));
            }
            ProbeAction::Exec(e.command.clone())
        } else if let Some(h) = &p.http_get {
            let scheme = h.scheme.clone().unwrap_or_else(|| "HTTP".into());
            if !matches!(scheme.as_str(), "HTTP" | "HTTPS") {
                return Err(self.inv(
                    format!("{at}.httpGet.scheme"),
                    format!("{scheme:?} is not HTTP or HTTPS"),
                ));
            }
            ProbeAction::Http {
                scheme,
                host: h.host.clone(),
                port: port(format!("{at}.httpGet.port"), &h.port)?,
                path: h.path.clone().unwrap_or_else(|| "/".into()),
                headers: h
                    .http_headers
                    .iter()
                    .map(|x| (x.name.clone(), x.value.clone()))
                    .collect(),
            }
        } else if let Some(t) = &p.tcp_socket {
            ProbeAction::Tcp {
                host: t.host.clone(),
                port: port(format!("{at}.tcpSocket.port"), &t.port)?,
            }
        } else if let Some(g) = &p.grpc {
            ProbeAction::Grpc {
                port: port_number(self.doc, &format!("{at}.grpc.port"), g.port)?,
                service: g.service.clone(),
            }
        } else {
            return Err(self.inv(at.to_string(), "no action"));
        };
        let num = |field: &str, v: Option<i64>, default: u32, min: u32| -> Result<u32> {
            match v {
                None => Ok(default),
                Some(n) if n >= min as i64 && n <= 86400 => Ok(n as u32),
                Some(n) => Err(self.inv(
                    format!("{at}.{field}"),
                    format!("{n} is not in {min}..=86400"),
                )),
            }
        };
        let success = num("successThreshold", p.success_threshold, 1, 1)?;
        let termination_grace = match p.termination_grace_period_seconds {
            None => None,
            Some(_) if kind == ProbeKind::Readiness => {
                return Err(self.inv(
                    format!("{at}.terminationGracePeriodSeconds"),
                    "must not be set for readiness probes",
                ))
            }
            Some(g) => Some(num("terminationGracePeriodSeconds", Some(g), 0, 1)?),
        };
        if success != 1 && kind != ProbeKind::Readiness {
            return Err(self.inv(
                format!("{at}.successThreshold"),
                "must be 1 for liveness and startup probes",
            ));
        }
        Ok(ProbePlan {
            kind,
            action,
            initial_delay: num("initialDelaySeconds", p.initial_delay_seconds, 0, 0)?,
            period: num("periodSeconds", p.period_seconds, 10, 1)?,
            timeout: num("timeoutSeconds", p.timeout_seconds, 1, 1)?,
            success_threshold: success,
            failure_threshold: num("failureThreshold", p.failure_threshold, 3, 1)?,
            termination_grace,
        })
    }
}

/// A checked probe as the engine's health spec holds it (the monitor runs
/// it; milliseconds).
fn probe_spec(p: &ProbePlan) -> ProbeSpec {
    let handler = match &p.action {
        ProbeAction::Exec(command) => Handler::Exec {
            command: command.clone(),
        },
        ProbeAction::Http {
            scheme,
            host,
            port,
            path,
            headers,
        } => Handler::HttpGet {
            host: host.clone().unwrap_or_default(),
            port: *port,
            path: path.clone(),
            scheme: scheme.clone(),
            headers: headers.clone(),
        },
        ProbeAction::Tcp { host, port } => Handler::TcpSocket {
            host: host.clone().unwrap_or_default(),
            port: *port,
        },
        ProbeAction::Grpc { port, service } => Handler::Grpc {
            port: *port,
            service: service.clone().unwrap_or_default(),
        },
    };
    ProbeSpec {
        kind: match p.kind {
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Startup => "startup",
        }
        .into(),
        handler,
        initial_delay_ms: u64::from(p.initial_delay) * 1000,
        period_ms: u64::from(p.period) * 1000,
        timeout_ms: u64::from(p.timeout) * 1000,
        success_threshold: p.success_threshold,
        failure_threshold: p.failure_threshold,
        termination_grace_s: p.termination_grace,
    }
}

/// Stands for a pod field known only once the pod is made (its uid, its
/// and its host's addresses) in an env value (and where `$(VAR)` carries
/// it: command and args), until [`fill_pod_fields`] replaces it.
fn field_placeholder(path: &str) -> String {
    format!("\u{1}kube-field:{path}\u{1}")
}

/// The pod fields known once the pod is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFields {
    /// metadata.uid.
    pub uid: String,
    /// status.podIPs, the first being status.podIP (none: no network).
    pub pod_ips: Vec<String>,
    /// status.hostIPs, the first being status.hostIP.
    pub host_ips: Vec<String>,
}

impl PodFields {
    /// The placeholders of the fields and their values (Kubernetes' plural
    /// fields are comma-separated).
    fn pairs(&self) -> [(String, String); 5] {
        let first = |v: &[String]| v.first().cloned().unwrap_or_default();
        [
            (field_placeholder("metadata.uid"), self.uid.clone()),
            (field_placeholder("status.podIPs"), self.pod_ips.join(",")),
            (field_placeholder("status.podIP"), first(&self.pod_ips)),
            (field_placeholder("status.hostIPs"), self.host_ips.join(",")),
            (field_placeholder("status.hostIP"), first(&self.host_ips)),
        ]
    }

    /// `data` (a downwardAPI volume's file) with the placeholders filled.
    pub fn fill_file(&self, data: &[u8]) -> Vec<u8> {
        match std::str::from_utf8(data) {
            Ok(s) if s.contains('\u{1}') => {
                let mut s = s.to_string();
                for (k, v) in &self.pairs() {
                    s = s.replace(k.as_str(), v);
                }
                s.into_bytes()
            }
            _ => data.to_vec(),
        }
    }
}

/// Replaces the placeholders of `spec`'s env, entrypoint and args with
/// `f`'s values.
pub fn fill_pod_fields(spec: &mut ContainerSpec, f: &PodFields) {
    let pairs = f.pairs();
    let fill = |s: &mut String| {
        if s.contains('\u{1}') {
            for (k, v) in &pairs {
                *s = s.replace(k.as_str(), v);
            }
        }
    };
    spec.process.env.iter_mut().for_each(fill);
    if let Some(e) = spec.process.entrypoint.as_mut() {
        e.iter_mut().for_each(fill);
    }
    spec.process.args.iter_mut().for_each(fill);
}

/// A resourceFieldRef's value (limits or requests of cpu or memory, in
/// units of its divisor, rounded up as the kubelet does); None when the
/// container does not set it; Err: what is wrong with `resource`.
fn resource_text(
    r: &ResourceFieldRef,
    target: &Container,
) -> std::result::Result<Option<String>, String> {
    let (section, what) = r.resource.split_once('.').unwrap_or(("", ""));
    let res = target.resources.clone().unwrap_or_default();
    let map = match section {
        "limits" => &res.limits,
        "requests" => &res.requests,
        _ => {
            return Err(format!(
                "{:?} is not limits.cpu, limits.memory, requests.cpu or requests.memory",
                r.resource
            ))
        }
    };
    if !matches!(what, "cpu" | "memory") {
        return Err(format!("{:?} is not cpu or memory", r.resource));
    }
    let Some(q) = map.get(what) else {
        return Ok(None);
    };
    Ok(Some(if what == "cpu" {
        let d = r.divisor.as_ref().and_then(parse_cpu).unwrap_or(1.0);
        let v = parse_cpu(q).unwrap_or(0.0);
        format!("{}", (v / d.max(1e-9)).ceil() as i64)
    } else {
        let d = r
            .divisor
            .as_ref()
            .and_then(parse_memory)
            .unwrap_or(1)
            .max(1);
        let v = parse_memory(q).unwrap_or(0);
        // Rounded up, without overflow (both are at most i64::MAX).
        format!("{}", v / d + i64::from(v % d != 0))
    }))
}

/// A downwardAPI volume's file: the pod's name, namespace, uid (a
/// placeholder [`PodFields::fill_file`] fills once the pod is made), one
/// label or annotation, or all of them as the kubelet writes them
/// (`key="value"` lines, sorted, the value quoted as Go's `%q`).
fn downward_file(
    path: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Option<Vec<u8>> {
    let all = |m: &BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| format!("{k}={}", go_quote(v)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let one = |prefix: &str, m: &BTreeMap<String, String>| {
        let k = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(m.get(k).cloned().unwrap_or_default())
    };
    let text = match path {
        "metadata.name" => name.to_string(),
        "metadata.uid" => field_placeholder("metadata.uid"),
        "metadata.namespace" => "default".into(),
        "metadata.labels" => all(labels),
        "metadata.annotations" => all(annotations),
        _ => one("metadata.labels['", labels)
            .or_else(|| one("metadata.annotations['", annotations))?,
    };
    Some(text.into_bytes())
}

/// Go's `%q` of a string (what the kubelet writes for label values).
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
