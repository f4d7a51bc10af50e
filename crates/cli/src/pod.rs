//! `berth pod`: groups of containers sharing namespaces and a cgroup
//! (create, ps, inspect, start, stop, restart, kill, pause, unpause, rm,
//! prune, top, stats, logs), through the engine's pod service
//! (`berth_engine::pods`).

use crate::containers::{open, ExitCode};
use anyhow::{bail, Context, Result};
use berth_engine::logs::{self, LogRequest, Stream};
use berth_engine::pods::{pod_status, PodCreate, PodRecord, PodReport, PodSpec};
use berth_engine::specgen::docker::{to_spec, CreateFlags};
use berth_engine::template::views::labels_text;
use berth_engine::Engine;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum PodCmd {
    /// Create a pod (containers sharing a network, IPC, host name and cgroup).
    ///
    /// Containers run in it with `--pod NAME` share its network (one IP;
    /// they talk over localhost), IPC (shared memory) and host name, and
    /// its cgroup with the pod's limits.
    ///
    /// An infra container (berth-init --pause, from berth's own image;
    /// no pull) holds the shared namespaces and the pod's network and
    /// published ports.
    ///
    /// Examples:
    ///   berth pod create --name web -p 8080:80 --network bridge
    ///   berth run -d --pod web nginx
    ///   berth run -d --pod web busybox wget -qO- http://127.0.0.1
    ///   berth pod create --name batch --share net,ipc,uts,pid --memory 512m --cpus 1.5
    #[command(verbatim_doc_comment)]
    Create(Box<CreateArgs>),
    /// List pods.
    #[command(alias = "ls", alias = "list")]
    Ps(PsArgs),
    /// Show pods' details as JSON (podman's fields).
    Inspect {
        /// A Go template run on each pod ('{{.InfraContainerID}}').
        #[arg(short = 'f', long, value_name = "FORMAT", value_parser = crate::format::parse)]
        format: Option<crate::format::Format>,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Start pods: the infra container first, then every container.
    Start {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Stop pods: their containers (SIGTERM, then SIGKILL after the
    /// timeout), the infra container last.
    Stop {
        /// Seconds to wait before SIGKILL (default: each container's).
        #[arg(short = 't', long = "time", alias = "timeout")]
        time: Option<u32>,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Stop, then start pods.
    Restart {
        /// Seconds to wait before SIGKILL.
        #[arg(short = 't', long = "time", alias = "timeout")]
        time: Option<u32>,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Send a signal to every running container of pods.
    Kill {
        /// The signal (name or number).
        #[arg(short = 's', long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Freeze every container of pods.
    Pause {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Thaw the containers of paused pods.
    Unpause {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Remove pods with their containers, cgroup and network endpoint.
    #[command(alias = "remove")]
    Rm {
        /// Also pods with running containers (they are killed).
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Remove every pod with no running container.
    Prune {
        /// Do not ask for confirmation (accepted; berth does not ask).
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Show the processes of a pod's containers (as `berth top`).
    Top {
        pod: String,
        /// ps options (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_options: Vec<String>,
    },
    /// Resource use of a pod's containers (as `berth stats`).
    Stats {
        /// Print one sample and exit.
        #[arg(long)]
        no_stream: bool,
        /// Output: table, json, or a Go template.
        #[arg(long, value_name = "FORMAT", value_parser = crate::format::parse, default_value = "table")]
        format: crate::format::Format,
        pod: String,
    },
    /// The logs of every container of a pod, each line led by the
    /// container's name.
    Logs {
        /// Follow every container's log until they all end.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only entries after this time (RFC 3339, a Unix time, or a
        /// duration such as 10m).
        #[arg(long)]
        since: Option<String>,
        /// The last N lines of each container ("all": every line).
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// Show each entry's time.
        #[arg(short = 't', long)]
        timestamps: bool,
        /// Only this container of the pod.
        #[arg(short = 'c', long)]
        container: Option<String>,
        pod: String,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The pod's name (default: a generated one).
    #[arg(short = 'n', long)]
    name: Option<String>,
    /// The pod's host name (its containers' with a shared uts; default:
    /// the pod's name).
    #[arg(long)]
    hostname: Option<String>,
    /// Set a label (KEY=VALUE).
    #[arg(short = 'l', long)]
    label: Vec<String>,
    /// The namespaces the pod's containers share, comma-separated: net,
    /// ipc, uts (the default), pid; "" for none. A leading + adds to the
    /// default (+pid).
    #[arg(long, value_name = "KINDS")]
    share: Option<String>,
    /// An infra container holds the shared namespaces (default true);
    /// --infra=false needs --share "".
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    infra: bool,
    /// The pod's network: bridge (the default for root), a network's
    /// name (repeat for several), none or host.
    #[arg(long = "network", alias = "net", value_name = "NETWORK")]
    network: Vec<String>,
    /// Publish a port of the pod on the host:
    /// [IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|udp|sctp].
    #[arg(short = 'p', long = "publish", value_name = "PORTS")]
    publish: Vec<String>,
    /// Another name for the pod on its user-defined networks.
    #[arg(long = "network-alias", value_name = "ALIAS")]
    network_alias: Vec<String>,
    /// The pod's IPv4 address on its (single user-defined) network.
    #[arg(long = "ip", value_name = "IPV4")]
    ip: Option<String>,
    /// A DNS server for the pod's containers.
    #[arg(long)]
    dns: Vec<String>,
    /// Add a line to the pod's /etc/hosts: NAME:IP.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_host: Vec<String>,
    /// The pod's cgroup goes under this one (default /berth).
    #[arg(long = "cgroup-parent", value_name = "PATH")]
    cgroup_parent: Option<String>,
    /// The CPUs the pod's containers may use together (1.5: one and a
    /// half).
    #[arg(long)]
    cpus: Option<f64>,
    /// The memory the pod's containers may use together (512m, 2g).
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// The most processes the pod's containers may run together (-1: no
    /// limit).
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    /// The size of the pod's /dev/shm, which its containers share with
    /// its ipc namespace (64m by default; 1g, 512k, bytes).
    #[arg(long = "shm-size", value_name = "SIZE")]
    shm_size: Option<String>,
    /// Write the pod's id to this file.
    #[arg(long = "pod-id-file", value_name = "FILE")]
    pod_id_file: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Only the ids.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Keep pods matching KEY=VALUE: name (substring), id (prefix), label
    /// (KEY or KEY=VALUE), status (created, running, degraded, paused,
    /// exited).
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Full ids.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Add a column with the containers' names.
    #[arg(long = "ctr-names")]
    ctr_names: bool,
    /// Add a column with the containers' ids.
    #[arg(long = "ctr-ids")]
    ctr_ids: bool,
    /// Output: table, json, or a Go template ('{{.Name}}'; 'table ...'
    /// for a table): .ID .Name .Status .Created .CreatedAt .InfraID
    /// .NumContainers .Labels .Cgroup .ContainerNames .ContainerIds
    /// .Ready (every member ready: running, its probes passing).
    #[arg(long, value_name = "FORMAT", value_parser = crate::format::parse, default_value = "table")]
    format: crate::format::Format,
}

/// A pod in `pod ps`, with podman's field names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PodRow {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    status: String,
    created: String,
    created_at: String,
    #[serde(rename = "InfraID")]
    infra_id: String,
    num_containers: usize,
    labels: String,
    cgroup: String,
    container_names: String,
    container_ids: String,
    /// Every member ready (berth's addition).
    ready: bool,
}

const HEADERS: &[(&str, &str)] = &[
    ("ID", "POD ID"),
    ("NumContainers", "# OF CONTAINERS"),
    ("InfraID", "INFRA ID"),
    ("ContainerNames", "NAMES"),
    ("ContainerIds", "IDS"),
];

fn pod_spec(a: &CreateArgs) -> Result<PodSpec> {
    let mut s = PodSpec {
        hostname: a.hostname.clone(),
        infra: a.infra,
        cgroup_parent: a
            .cgroup_parent
            .as_deref()
            .map(berth_engine::specgen::docker::parse_cgroup_parent)
            .transpose()?,
        cpus: a.cpus,
        pids_limit: a.pids_limit,
        memory: a
            .memory
            .as_deref()
            .map(|m| berth_engine::specgen::parse_size(m, "--memory").map(|v| v as i64))
            .transpose()?,
        shm_size: a
            .shm_size
            .as_deref()
            .map(|m| berth_engine::specgen::parse_size(m, "--shm-size"))
            .transpose()?,
        ..PodSpec::default()
    };
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            bail!("--label {l:?}: expected KEY=VALUE");
        }
        s.labels.insert(k.into(), v.into());
    }
    if let Some(share) = &a.share {
        let (add, list) = match share.strip_prefix('+') {
            Some(l) => (true, l),
            None => (false, share.as_str()),
        };
        if !add {
            s.share.clear();
        }
        for k in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if !s.share.iter().any(|x| x == k) {
                s.share.push(k.into());
            }
        }
    } else if !a.infra {
        // podman: without an infra, nothing is shared by default.
        s.share.clear();
    }
    // The pod's network request is parsed as a container's would be.
    let flags = CreateFlags {
        network: a.network.clone(),
        publish: a.publish.clone(),
        network_alias: a.network_alias.clone(),
        ip: a.ip.clone(),
        dns: a.dns.clone(),
        add_host: a.add_host.clone(),
        ..CreateFlags::default()
    };
    if a.infra || !a.network.is_empty() || !a.publish.is_empty() {
        let (c, _) = to_spec(&flags, &[])?;
        s.net = c.namespaces.net;
        s.network = c.network;
    }
    if !a.infra {
        s.network = Default::default();
    }
    Ok(s)
}

fn report(r: PodReport, verb: &str) -> Result<()> {
    let id = r.into_result(verb)?;
    println!("{id}");
    Ok(())
}

/// Runs `f` on each of `pods`, printing each id done and each error;
/// exits 1 if any failed (after trying all).
fn each(
    pods: &[String],
    verb: &str,
    f: impl Fn(&str) -> berth_engine::Result<PodReport>,
) -> Result<()> {
    let mut failed = false;
    for p in pods {
        if let Err(e) = f(p)
            .map_err(anyhow::Error::from)
            .and_then(|r| report(r, verb))
        {
            crate::output::print_error(&e);
            failed = true;
        }
    }
    if failed {
        return Err(ExitCode(1).into());
    }
    Ok(())
}

fn keep(
    engine: &Engine,
    p: &PodRecord,
    status: &str,
    filters: &[(String, String)],
) -> Result<bool> {
    let _ = engine;
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in filters {
        if !matches!(k.as_str(), "name" | "id" | "label" | "status") {
            bail!("pod ps --filter: unknown key {k:?} (name, id, label, status)");
        }
        by_key.entry(k.as_str()).or_default().push(v.as_str());
    }
    Ok(by_key.iter().all(|(k, vals)| {
        vals.iter().any(|v| match *k {
            "name" => p.name.contains(v),
            "id" => p.id.starts_with(v),
            "label" => match v.split_once('=') {
                Some((lk, lv)) => p.spec.labels.get(lk).is_some_and(|x| x == lv),
                None => p.spec.labels.contains_key(*v),
            },
            _ => status.eq_ignore_ascii_case(v),
        })
    }))
}

pub fn pod(root: &Path, run_root: &Path, c: PodCmd) -> Result<()> {
    let engine = open(root, run_root)?;
    match c {
        PodCmd::Create(a) => {
            let req = PodCreate {
                name: a.name.clone(),
                spec: pod_spec(&a)?,
            };
            if let Some(f) = &a.pod_id_file {
                if f.exists() {
                    bail!("--pod-id-file: {} exists (remove it first)", f.display());
                }
            }
            let p = engine.pod_create(&req)?;
            if let Some(f) = &a.pod_id_file {
                std::fs::write(f, &p.id)
                    .with_context(|| format!("--pod-id-file: write {}", f.display()))?;
            }
            println!("{}", p.id);
        }
        PodCmd::Ps(a) => ps(&engine, a)?,
        PodCmd::Inspect { format, pods } => {
            crate::manage::inspect_each(&pods, format.as_ref(), |p| engine.pod_inspect(p))?
        }
        PodCmd::Start { pods } => each(&pods, "start", |p| engine.pod_start(p))?,
        PodCmd::Stop { time, pods } => each(&pods, "stop", |p| engine.pod_stop(p, time))?,
        PodCmd::Restart { time, pods } => each(&pods, "restart", |p| engine.pod_restart(p, time))?,
        PodCmd::Kill { signal, pods } => {
            let sig = berth_engine::specgen::parse_signal(&signal)?;
            each(&pods, "kill", |p| engine.pod_kill(p, sig))?
        }
        PodCmd::Pause { pods } => each(&pods, "pause", |p| engine.pod_pause(p))?,
        PodCmd::Unpause { pods } => each(&pods, "unpause", |p| engine.pod_unpause(p))?,
        PodCmd::Rm { force, pods } => {
            crate::manage::remove_each(&pods, |p| engine.pod_remove(p, force).map(|p| p.id))?
        }
        PodCmd::Prune { force: _ } => {
            for p in engine.pod_prune()? {
                println!("{}", p.id);
            }
        }
        PodCmd::Top { pod, ps_options } => {
            let t = engine.pod_top(&pod, &ps_options)?;
            let head: Vec<&str> = t.titles.iter().map(String::as_str).collect();
            crate::manage::table(&head, &t.processes)?;
        }
        PodCmd::Stats {
            no_stream,
            format,
            pod,
        } => {
            let p = engine.pod(&pod)?;
            let containers: Vec<String> = engine
                .pod_containers(&p)?
                .into_iter()
                .filter(|r| Some(&r.id) != p.infra_id.as_ref())
                .map(|r| r.id)
                .collect();
            if containers.is_empty() {
                bail!("pod {}: it has no containers but its infra", p.name);
            }
            drop(engine);
            crate::manage::stats(
                root,
                run_root,
                crate::manage::StatsArgs {
                    no_stream,
                    all: true,
                    format,
                    containers,
                },
            )?;
        }
        PodCmd::Logs {
            follow,
            since,
            tail,
            timestamps,
            container,
            pod,
        } => {
            let req = LogRequest {
                since: since
                    .as_deref()
                    .map(|s| logs::parse_time(s, "--since").map_err(|e| anyhow::anyhow!("{e}")))
                    .transpose()?,
                tail: match tail.as_str() {
                    "all" | "-1" => None,
                    n => Some(
                        n.parse()
                            .with_context(|| format!("--tail: {n:?} is not a number or \"all\""))?,
                    ),
                },
                follow,
                ..LogRequest::default()
            };
            pod_logs(&engine, &pod, container.as_deref(), &req, timestamps)?;
        }
    }
    Ok(())
}

fn ps(engine: &Engine, a: PsArgs) -> Result<()> {
    let filters: Vec<(String, String)> = a
        .filter
        .iter()
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let short = |id: &str| {
        if a.no_trunc {
            id.to_string()
        } else {
            id[..12.min(id.len())].to_string()
        }
    };
    let mut rows = Vec::new();
    let mut docs = Vec::new();
    for p in engine.pod_list()? {
        let cs = engine.pod_containers(&p)?;
        let status = pod_status(&cs);
        if !keep(engine, &p, status, &filters)? {
            continue;
        }
        let ready = engine.pod_ready(&p, &cs);
        let names: Vec<String> = cs.iter().map(|r| r.name.clone()).collect();
        let ids: Vec<String> = cs.iter().map(|r| short(&r.id)).collect();
        docs.push(serde_json::json!({
            "Id": p.id, "Name": p.name, "Status": status, "Ready": ready,
            "Created": berth_engine::logs::rfc3339_nano(p.created),
            "InfraId": p.infra_id.clone().unwrap_or_default(),
            "Cgroup": p.cgroup(), "Labels": p.spec.labels,
            "Networks": p.spec.network.networks.iter().map(|n| n.network.clone()).collect::<Vec<_>>(),
            "Containers": cs.iter().map(|r| serde_json::json!({
                "Id": r.id, "Names": r.name,
                "Status": if r.state.paused { "paused" } else { r.state.status.name() },
            })).collect::<Vec<_>>(),
        }));
        rows.push(PodRow {
            id: short(&p.id),
            name: p.name.clone(),
            status: status.into(),
            created: berth_engine::query::ago(p.created),
            created_at: crate::format::go_time(p.created),
            infra_id: p.infra_id.as_deref().map(short).unwrap_or_default(),
            num_containers: cs.len(),
            labels: labels_text(&p.spec.labels),
            cgroup: p.cgroup(),
            container_names: names.join(","),
            container_ids: ids.join(","),
            ready,
        });
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r.id);
        }
        return Ok(());
    }
    match &a.format {
        crate::format::Format::Template { table, template } => {
            crate::format::rows(template, *table, &rows, HEADERS)?
        }
        crate::format::Format::Json => println!("{}", serde_json::to_string_pretty(&docs)?),
        crate::format::Format::Table => {
            let mut head = vec!["POD ID", "NAME", "STATUS", "CREATED", "INFRA ID"];
            if a.ctr_names {
                head.push("NAMES");
            }
            if a.ctr_ids {
                head.push("IDS");
            }
            head.push("# OF CONTAINERS");
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut v = vec![
                        r.id.clone(),
                        r.name.clone(),
                        r.status.clone(),
                        r.created.clone(),
                        r.infra_id.clone(),
                    ];
                    if a.ctr_names {
                        v.push(r.container_names.clone());
                    }
                    if a.ctr_ids {
                        v.push(r.container_ids.clone());
                    }
                    v.push(r.num_containers.to_string());
                    v
                })
                .collect();
            crate::manage::table(&head, &table)?;
        }
    }
    Ok(())
}

/// Every member's log (not the infra's), each line led by `NAME `: one
/// container after another, or with `follow` one reader per container
/// until all end.
fn pod_logs(
    engine: &Engine,
    pod: &str,
    only: Option<&str>,
    req: &LogRequest,
    timestamps: bool,
) -> Result<()> {
    let p = engine.pod(pod)?;
    let mut members: Vec<_> = engine
        .pod_containers(&p)?
        .into_iter()
        .filter(|r| Some(&r.id) != p.infra_id.as_ref())
        .collect();
    if let Some(c) = only {
        let want = engine.get(c)?;
        members.retain(|r| r.id == want.id);
        if members.is_empty() {
            bail!("container {c} is not in pod {}", p.name);
        }
    }
    let out = std::sync::Mutex::new(());
    let print = |name: &str, e: &logs::Entry| -> bool {
        let mut buf = Vec::with_capacity(e.text.len() + name.len() + 40);
        buf.extend_from_slice(name.as_bytes());
        buf.push(b' ');
        if timestamps {
            buf.extend_from_slice(logs::rfc3339_nano(e.time).as_bytes());
            buf.push(b' ');
        }
        buf.extend_from_slice(&e.text);
        let _held = out.lock();
        match e.stream {
            Stream::Stdout => {
                let mut o = std::io::stdout().lock();
                o.write_all(&buf).and_then(|_| o.flush()).is_ok()
            }
            Stream::Stderr => std::io::stderr().write_all(&buf).is_ok(),
        }
    };
    if !req.follow {
        // One container after another: each one's lines together.
        for r in &members {
            engine.logs(&r.id, req, &mut |e| print(&r.name, e))?;
        }
        return Ok(());
    }
    let errors: Vec<anyhow::Error> = std::thread::scope(|s| {
        let hs: Vec<_> = members
            .iter()
            .map(|r| {
                let print = &print;
                s.spawn(move || {
                    engine
                        .logs(&r.id, req, &mut |e| print(&r.name, e))
                        .map_err(anyhow::Error::from)
                })
            })
            .collect();
        hs.into_iter()
            .filter_map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a log reader panicked")))
                    .err()
            })
            .collect()
    });
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    Ok(())
}
