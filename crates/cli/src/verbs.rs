//! pause, unpause, update, port, events, info, version: thin shells over
//! the engine's `control`, `events` and `info`.

use crate::containers::open;
use anyhow::{bail, Result};
use berth_engine::control::UpdateRequest;
use berth_engine::events::{EventFilter, EventsRequest};
use berth_engine::specgen as ccfg;
use clap::Args;
use std::io::Write;
use std::path::Path;

/// Prints `v` as `--format` asks: `json` is one compact JSON document (a
/// line). The one place the CLI renders `--format` of the commands here
/// (Go templates are to be added here too).
pub fn print_formatted<T: serde::Serialize>(format: &str, v: &T) -> Result<()> {
    match format {
        "json" | "{{json .}}" => {
            let line = serde_json::to_string(v)?;
            writeln!(std::io::stdout().lock(), "{line}")?;
            Ok(())
        }
        other => bail!("--format {other:?}: only json is supported for now"),
    }
}

#[derive(Args, Debug)]
pub struct ContainersArgs {
    /// Containers, by name or id.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn pause(root: &Path, run_root: &Path, a: ContainersArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    crate::containers::each(&a.containers, |c| Ok(engine.pause(c).map(drop)?))
}

pub fn unpause(root: &Path, run_root: &Path, a: ContainersArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    crate::containers::each(&a.containers, |c| Ok(engine.unpause(c).map(drop)?))
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Memory limit (such as 512m).
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory plus swap (-1: unlimited swap).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long, value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs (such as 1.5); replaces --cpu-period/--cpu-quota.
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<u64>,
    /// The CFS period, microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// The CFS quota, microseconds (-1: none).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPUs the container may use (0-3, 0,1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Most processes (-1 or 0: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block I/O weight (10-1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// Restart policy (no, on-failure[:N], always, unless-stopped); a
    /// running container's monitor applies it from its next start.
    #[arg(long)]
    pub restart: Option<String>,
    /// Containers, by name or id.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

fn size(v: &Option<String>, flag: &str) -> Result<Option<i64>> {
    Ok(match v.as_deref() {
        None => None,
        Some("-1") => Some(-1),
        Some(s) => Some(ccfg::parse_size(s, flag)? as i64),
    })
}

pub fn update(root: &Path, run_root: &Path, a: UpdateArgs) -> Result<()> {
    let req = UpdateRequest {
        memory: size(&a.memory, "--memory")?,
        memory_swap: size(&a.memory_swap, "--memory-swap")?,
        memory_reservation: size(&a.memory_reservation, "--memory-reservation")?,
        cpus: a.cpus,
        cpu_shares: a.cpu_shares,
        cpu_period: a.cpu_period,
        cpu_quota: a.cpu_quota,
        cpuset_cpus: a.cpuset_cpus,
        cpuset_mems: a.cpuset_mems,
        pids_limit: a.pids_limit,
        blkio_weight: a.blkio_weight,
        restart: a.restart,
    };
    let engine = open(root, run_root)?;
    crate::containers::each(&a.containers, |c| Ok(engine.update(c, &req).map(drop)?))
}

#[derive(Args, Debug)]
pub struct PortArgs {
    /// The container, by name or id.
    pub container: String,
    /// Only this port: PORT[/PROTO].
    pub port: Option<String>,
}

pub fn port(root: &Path, run_root: &Path, a: PortArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    let ports = engine.ports(&a.container)?;
    let want = a.port.as_ref().map(|p| {
        if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut out = std::io::stdout().lock();
    let mut found = false;
    for p in &ports {
        // Docker's: `[::]:8080` for an IPv6 address.
        let ip = if p.host_ip.contains(':') {
            format!("[{}]", p.host_ip)
        } else {
            p.host_ip.clone()
        };
        match &want {
            Some(w) if *w != p.container_port => {}
            Some(_) => writeln!(out, "{ip}:{}", p.host_port)?,
            None => writeln!(out, "{} -> {ip}:{}", p.container_port, p.host_port)?,
        }
        found |= want.as_ref().is_none_or(|w| *w == p.container_port);
    }
    if let (Some(w), false) = (&want, found) {
        bail!("no public port {w:?} published for {}", a.container);
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// container=, event=, type=, image=, volume=, label=KEY[=VALUE]
    /// (repeat a key for either value).
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Events from this time on: Unix seconds, 2006-01-02T15:04:05[Z],
    /// or a duration ago (10m).
    #[arg(long)]
    pub since: Option<String>,
    /// Stop at this time (same formats); without it, follow new events.
    #[arg(long)]
    pub until: Option<String>,
    /// json: one object a line, in Docker's shape.
    #[arg(long)]
    pub format: Option<String>,
}

pub fn events(root: &Path, run_root: &Path, a: EventsArgs) -> Result<()> {
    let now = berth_engine::logs::now_nanos();
    let time = |s: &Option<String>, flag: &str| {
        s.as_deref()
            .map(|s| berth_engine::events::parse_time(s, now, flag))
            .transpose()
    };
    let req = EventsRequest {
        since: time(&a.since, "--since")?,
        until: time(&a.until, "--until")?,
        filter: EventFilter::parse(&a.filter)?,
    };
    let engine = open(root, run_root)?;
    let format = a.format;
    engine.events(&req, |e| {
        let r = match &format {
            Some(f) => print_formatted(f, e).map_err(std::io::Error::other),
            None => {
                let attrs: Vec<String> = e
                    .actor
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "{} {} {} {} ({})",
                    berth_engine::logs::rfc3339_nano(e.time_nano),
                    e.kind,
                    e.action,
                    e.actor.id,
                    attrs.join(", ")
                )
                .and_then(|()| out.flush())
            }
        };
        if let Err(e) = &r {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("berth: events: {e}");
            }
        }
        r
    })?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct FormatArgs {
    /// json: one JSON object.
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.3}{}", U[i])
}

pub fn info(root: &Path, run_root: &Path, a: FormatArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    let i = engine.info()?;
    if let Some(f) = &a.format {
        return print_formatted(f, &i);
    }
    let runtime = if i.runtime_version.is_empty() {
        format!("{} (not usable: {})", i.default_runtime, i.runtime_error)
    } else {
        format!("{} ({})", i.default_runtime, i.runtime_version)
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "berth version: {}\n\
         Containers: {}\n Running: {}\n Paused: {}\n Stopped: {}\n\
         Images: {}\n\
         Storage Driver: {}\n\
         Root: {}\n\
         Run Root: {}\n\
         Cgroup Driver: {}\n\
         Cgroup Version: {}\n\
         Default Runtime: {}\n\
         Kernel Version: {}\n\
         Operating System: {}\n\
         Architecture: {}\n\
         CPUs: {}\n\
         Total Memory: {}",
        i.version,
        i.containers,
        i.containers_running,
        i.containers_paused,
        i.containers_stopped,
        i.images,
        i.storage_driver,
        i.root,
        i.run_root,
        i.cgroup_driver,
        i.cgroup_version,
        runtime,
        i.kernel_version,
        i.operating_system,
        i.architecture,
        i.ncpu,
        bytes(i.mem_total)
    )?;
    Ok(())
}

pub fn version(a: FormatArgs) -> Result<()> {
    let v = berth_engine::info::version();
    if let Some(f) = &a.format {
        // One program: the client and the engine are the same build.
        return print_formatted(f, &serde_json::json!({"Client": v, "Engine": v}));
    }
    let commit = if v.git_commit.is_empty() {
        "unknown"
    } else {
        &v.git_commit
    };
    let block = format!(
        " Version:      {}\n Rust version: {}\n Git commit:   {}\n OS/Arch:      {}/{}",
        v.version, v.rust_version, commit, v.os, v.arch
    );
    println!("Client:\n{block}\n\nEngine (in-process, no daemon):\n{block}");
    Ok(())
}
