//! Read-only container commands: ps, inspect, logs.

use crate::containers::{open, ExitCode};
use anyhow::{bail, Context, Result};
use berth_engine::logs::{self, Entry, LogRequest, Stream};
// The image digests inspect_json parses are the engine's re-export (the
// CLI does not link the image store itself).
use berth_engine::images as berth_image;
use berth_engine::records::{Record, Status};
use berth_engine::specgen::{DeviceRate, NamespaceMode, RestartPolicy, SeccompPolicy};
use berth_engine::template::views::{labels_text, PsRow};
use berth_engine::Engine;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show every container (default: running ones).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Print only ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Filter: status=, name=, id=, label=KEY[=VALUE], ancestor=IMAGE, exited=CODE.
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Output: table (for people), json (for scripts), or a Go template
    /// ('{{.Names}}\t{{.Status}}'; 'table {{.ID}}\t{{.Image}}' for a
    /// table): .ID .Image .Command .CreatedAt .RunningFor .Ports .State
    /// .Status .Size .Names .Labels .Mounts .Networks, .Label "KEY".
    #[arg(long, value_name = "FORMAT", value_parser = crate::format::parse, default_value = "table")]
    pub format: crate::format::Format,
    /// Do not shorten ids and commands.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only the N newest containers (all states).
    #[arg(short = 'n', long = "last")]
    pub last: Option<usize>,
    /// Only the newest container (all states).
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Show each container's size: what it wrote (and with its image's).
    #[arg(short = 's', long)]
    pub size: bool,
}

pub fn ago(nanos: i64) -> String {
    let now = logs::now_nanos();
    let s = ((now - nanos) / 1_000_000_000).max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

fn status_text(r: &Record) -> String {
    match r.state.status {
        Status::Created => "Created".into(),
        Status::Running if r.state.paused => format!("Up {} (Paused)", ago(r.state.started)),
        Status::Running => format!("Up {}", ago(r.state.started)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.state.exit_code,
            ago(r.state.finished)
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            ago(r.state.finished)
        ),
        Status::Removing => "Removal In Progress".into(),
    }
}

/// Docker's state name: "paused" for a paused running container.
fn status_name(r: &Record) -> &'static str {
    if r.state.status == Status::Running && r.state.paused {
        "paused"
    } else {
        r.state.status.name()
    }
}

fn command_of(engine: &Engine, r: &Record) -> Vec<String> {
    engine
        .command(r)
        .unwrap_or_else(|_| r.spec.process.args.clone())
}

fn shell_join(args: &[String]) -> String {
    args.join(" ")
}

fn matches(engine: &Engine, r: &Record, f: &str) -> Result<bool> {
    let (k, v) = f
        .split_once('=')
        .with_context(|| format!("--filter {f:?}: expected KEY=VALUE"))?;
    Ok(match k {
        "status" => status_name(r) == v,
        "name" => r.name.contains(v),
        "id" => r.id.starts_with(v),
        "label" => match v.split_once('=') {
            Some((lk, lv)) => r.spec.metadata.labels.get(lk).is_some_and(|x| x == lv),
            None => r.spec.metadata.labels.contains_key(v),
        },
        "ancestor" => {
            r.image == v
                || r.image_id
                    .strip_prefix("sha256:")
                    .unwrap_or(&r.image_id)
                    .starts_with(v.strip_prefix("sha256:").unwrap_or(v))
                || engine
                    .images
                    .resolve(v)
                    .is_ok_and(|i| i.id.to_string() == r.image_id)
        }
        "exited" => r.state.status == Status::Exited && v.parse() == Ok(r.state.exit_code),
        "restart-policy" => {
            let policy = r.spec.lifecycle.restart.name();
            match v {
                "no" => matches!(policy, "" | "no"),
                "always" | "unless-stopped" | "on-failure" => policy == v,
                _ => bail!("--filter restart-policy={v}: expected no, always, unless-stopped or on-failure"),
            }
        }
        _ => bail!(
            "--filter: unknown key {k:?} (status, name, id, label, ancestor, exited, restart-policy)"
        ),
    })
}

/// The records `filters` keep, as Docker filters: values of one key are
/// alternatives, different keys must all match.
pub fn filtered(engine: &Engine, list: Vec<Record>, filters: &[String]) -> Result<Vec<Record>> {
    let mut keys: Vec<&str> = Vec::new();
    for f in filters {
        let k = f.split_once('=').map_or(f.as_str(), |(k, _)| k);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut keep = Vec::new();
    'records: for r in list {
        for k in &keys {
            let mut any = false;
            for f in filters
                .iter()
                .filter(|f| f.split_once('=').map_or(f.as_str(), |(k, _)| k) == *k)
            {
                any |= matches(engine, &r, f)?;
            }
            if !any {
                continue 'records;
            }
        }
        keep.push(r);
    }
    Ok(keep)
}

fn short_id(r: &Record, no_trunc: bool) -> String {
    if no_trunc {
        r.id.clone()
    } else {
        r.id[..12.min(r.id.len())].to_string()
    }
}

/// The command as `ps` shows it: quoted, shortened to 20 characters.
fn ps_command(engine: &Engine, r: &Record, no_trunc: bool) -> String {
    let mut cmd = shell_join(&command_of(engine, r));
    if !no_trunc && cmd.chars().count() > 20 {
        cmd = cmd.chars().take(19).collect::<String>() + "…";
    }
    format!("\"{cmd}\"")
}

/// A container as `ps --format` templates see it.
fn ps_row(engine: &Engine, r: &Record, no_trunc: bool) -> PsRow {
    let mounts: Vec<String> = engine
        .mounts(r)
        .into_iter()
        .map(|m| if m.name.is_empty() { m.source } else { m.name })
        .collect();
    PsRow {
        id: short_id(r, no_trunc),
        image: r.image.clone(),
        command: ps_command(engine, r, no_trunc),
        created_at: crate::format::go_time(r.created),
        running_for: format!("{} ago", ago(r.created)),
        state: r.state.status.name().to_string(),
        status: status_text(r),
        names: r.name.clone(),
        labels: labels_text(&r.spec.metadata.labels),
        mounts: mounts.join(","),
        ..PsRow::default()
    }
}

pub fn ps(root: &Path, run_root: &Path, a: PsArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    let mut list = engine.list()?;
    let all = a.all || a.last.is_some() || a.latest || !a.filter.is_empty();
    if !all {
        list.retain(|r| matches!(r.state.status, Status::Running | Status::Restarting));
    }
    list = filtered(&engine, list, &a.filter)?;
    if a.latest {
        list.truncate(1);
    }
    if let Some(n) = a.last {
        list.truncate(n);
    }
    if a.quiet {
        for r in &list {
            println!("{}", if a.no_trunc { &r.id[..] } else { &r.id[..12] });
        }
        return Ok(());
    }
    let sizes: Vec<Option<berth_engine::control::ContainerSize>> = list
        .iter()
        .map(|r| a.size.then(|| engine.container_size(r)))
        .collect();
    if let crate::format::Format::Template { table, template } = &a.format {
        let rows: Vec<PsRow> = list
            .iter()
            .map(|r| ps_row(&engine, r, a.no_trunc))
            .collect();
        return crate::format::rows(template, *table, &rows, PsRow::HEADERS);
    }
    if matches!(a.format, crate::format::Format::Json) {
        let v: Vec<Value> = list
            .iter()
            .zip(&sizes)
            .map(|(r, size)| {
                let mut v = json!({
                    "Id": r.id,
                    "Names": [r.name],
                    "Image": r.image,
                    "ImageID": r.image_id,
                    "Command": command_of(&engine, r),
                    "Created": r.created / 1_000_000_000,
                    "CreatedAt": logs::rfc3339_nano(r.created),
                    "State": status_name(r),
                    "Status": status_text(r),
                    "ExitCode": r.state.exit_code,
                    "Pid": r.state.pid,
                    "StartedAt": r.state.started / 1_000_000_000,
                    "Restarts": r.state.restarts,
                    "Labels": r.spec.metadata.labels,
                });
                if let Some(s) = size {
                    v["SizeRw"] = json!(s.rw);
                    v["SizeRootFs"] = json!(s.root_fs);
                }
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .zip(&sizes)
        .map(|(r, size)| {
            let mut row = vec![
                short_id(r, a.no_trunc),
                r.image.clone(),
                ps_command(&engine, r, a.no_trunc),
                format!("{} ago", ago(r.created)),
                status_text(r),
                String::new(),
                r.name.clone(),
            ];
            if let Some(s) = size {
                row.push(format!(
                    "{} (virtual {})",
                    crate::manage::human(s.rw),
                    crate::manage::human(s.root_fs)
                ));
            }
            row.into_iter().map(crate::escape::owned).collect()
        })
        .collect();
    let mut head = vec![
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];
    if a.size {
        head.push("SIZE");
    }
    let mut w = vec![0; head.len()];
    for (i, h) in head.iter().enumerate() {
        w[i] = h.chars().count();
    }
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(w[i] - c.chars().count() + 3));
            }
        }
        s
    };
    writeln!(out, "{}", line(head.clone()))?;
    for r in &rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn time_or_null(n: i64) -> Value {
    if n > 0 {
        json!(logs::rfc3339_nano(n))
    } else {
        json!("0001-01-01T00:00:00Z")
    }
}

/// Docker's `inspect` document for a container.
pub fn inspect_json(engine: &Engine, r: &Record) -> Value {
    let cmd = command_of(engine, r);
    let image = berth_image::Digest::parse(&r.image_id)
        .ok()
        .and_then(|d| engine.image_config(&d).ok())
        .unwrap_or_default();
    let dir = engine.paths.container(&r.id);
    let layers: Vec<String> = berth_image::Digest::parse(&r.image_id)
        .ok()
        .and_then(|d| engine.images.image_layers(&d).ok())
        .unwrap_or_default()
        .iter()
        .rev()
        .map(|c| engine.images.layer_dir(c).display().to_string())
        .collect();
    let st = &r.state;
    let c = &r.spec;
    let p = &c.process;
    let res = &c.resources;
    let ns = &c.namespaces;
    let own = |m: &NamespaceMode| match m {
        NamespaceMode::Private => String::new(),
        m => m.to_string(),
    };
    let mounts: Vec<Value> = engine
        .mounts(r)
        .into_iter()
        .map(|m| {
            json!({"Type": m.kind, "Name": m.name, "Source": m.source, "Destination": m.destination, "RW": m.rw, "Mode": if m.rw {"rw"} else {"ro"}, "Propagation": m.propagation})
        })
        .collect();
    let log_path = dir.join("ctr.log");
    let mut v = json!({
        "Id": r.id,
        "Created": logs::rfc3339_nano(r.created),
        "Path": cmd.first().cloned().unwrap_or_default(),
        "Args": cmd.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": status_name(r),
            "Running": matches!(st.status, Status::Running | Status::Restarting),
            "Paused": st.status == Status::Running && st.paused,
            "Restarting": st.status == Status::Restarting,
            "OOMKilled": st.oom_killed,
            "Dead": false,
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": time_or_null(st.started),
            "FinishedAt": time_or_null(st.finished),
            // berth's own: output lost rather than making the container wait.
            "LogBytesDropped": st.log_dropped,
            "AttachBytesDropped": st.attach_dropped,
        },
        "Image": r.image_id,
        "ResolvConfPath": engine.paths.run_dir(&r.id).join("resolv.conf"),
        "HostnamePath": engine.paths.run_dir(&r.id).join("hostname"),
        "HostsPath": engine.paths.run_dir(&r.id).join("hosts"),
        "LogPath": log_path,
        "Name": format!("/{}", r.name),
        "RestartCount": st.restarts,
        "Driver": "overlay",
        "Platform": "linux",
        "Mounts": mounts,
        "Config": {
            "Hostname": c.network.hostname.clone().unwrap_or_else(|| r.id[..12].to_string()),
            "User": p.user.clone().or(image.user.clone()).unwrap_or_default(),
            "Tty": p.tty,
            "OpenStdin": p.stdin,
            "StdinOnce": p.stdin,
            "Env": p.env,
            "Cmd": if p.args.is_empty() { image.cmd.clone() } else { Some(p.args.clone()) },
            "Image": r.image,
            "WorkingDir": p.workdir.clone().or(image.working_dir.clone()).unwrap_or_default(),
            "Entrypoint": p.entrypoint.clone().or(image.entrypoint.clone()),
            "Labels": c.metadata.labels,
            "StopSignal": p.stop_signal.clone().or(image.stop_signal.clone()).unwrap_or_else(|| "SIGTERM".into()),
            "StopTimeout": p.stop_timeout.unwrap_or(10),
        },
        "HostConfig": {
            "NetworkMode": if ns.net.is_host() { "host" } else { "none" },
            "RestartPolicy": {
                "Name": c.lifecycle.restart.name(),
                "MaximumRetryCount": match c.lifecycle.restart { RestartPolicy::OnFailure(n) => n, _ => 0 },
            },
            "AutoRemove": c.lifecycle.auto_remove,
            "Privileged": c.security.privileged,
            "ReadonlyRootfs": c.storage.read_only,
            "CapAdd": c.security.cap_add,
            "CapDrop": c.security.cap_drop,
            "GroupAdd": p.groups,
            "SecurityOpt": (c.security.seccomp == SeccompPolicy::Unconfined).then_some(vec!["seccomp=unconfined"]).unwrap_or_default(),
            "Memory": res.memory.unwrap_or(0),
            "MemorySwap": res.memory_swap.unwrap_or(0),
            "NanoCpus": res.cpus.map_or(0, |x| (x * 1e9) as i64),
            "CpuShares": res.cpu_shares.unwrap_or(0),
            "CpusetCpus": res.cpuset_cpus.clone().unwrap_or_default(),
            "PidsLimit": res.pids_limit,
            "Ulimits": res.ulimits.iter().map(|u| json!({"Name": u.name, "Soft": u.soft, "Hard": u.hard})).collect::<Vec<_>>(),
            "Init": p.init,
            "Runtime": c.runtime,
            "LogConfig": {"Type": c.logging.driver.name(), "Config": {"max-size": c.logging.max_size.to_string(), "max-file": c.logging.max_files.to_string()}},
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": layers.join(":"),
                "UpperDir": dir.join("upper"),
                "WorkDir": dir.join("work"),
                "MergedDir": engine.paths.rootfs(&r.id),
            }
        },
    });
    // Apart: one json! of it all is past the macro's recursion limit.
    let rates = |v: &[DeviceRate]| -> Vec<Value> {
        v.iter()
            .map(|d| json!({"Path": d.path, "Rate": d.value}))
            .collect()
    };
    let host = json!({
        "Devices": res.devices.iter().map(|d| json!({"PathOnHost": d.host, "PathInContainer": d.container, "CgroupPermissions": d.access})).collect::<Vec<_>>(),
        "PidMode": own(&ns.pid),
        "IpcMode": ns.ipc.to_string(),
        "UTSMode": own(&ns.uts),
        "CgroupnsMode": match &ns.cgroup {
            Some(m) => m.to_string(),
            None if berth_engine::specgen::docker::host_cgroup_v2() => "private".into(),
            None => "host".into(),
        },
        "Annotations": c.metadata.annotations,
        "ShmSize": if ns.ipc.is_host() { 0 } else { c.storage.shm_size.unwrap_or(64 << 20) },
        "Sysctls": c.security.sysctls,
        "ExtraHosts": c.network.extra_hosts.iter().map(|h| format!("{}:{}", h.name, h.address)).collect::<Vec<_>>(),
        "MemoryReservation": res.memory_reservation.unwrap_or(0),
        "CpuPeriod": res.cpu_period.unwrap_or(0),
        "CpuQuota": res.cpu_quota.unwrap_or(0),
        "CpusetMems": res.cpuset_mems.clone().unwrap_or_default(),
        "OomScoreAdj": res.oom_score_adj.unwrap_or(0),
        "DeviceCgroupRules": res.device_cgroup_rules,
        "CgroupParent": res.cgroup_parent.clone().unwrap_or_default(),
        "MemorySwappiness": res.memory_swappiness,
        "Dns": c.network.dns,
        "DnsSearch": c.network.dns_search,
        "DnsOptions": c.network.dns_options,
        "OomKillDisable": res.oom_kill_disable,
        "BlkioWeight": res.blkio_weight.unwrap_or(0),
        "BlkioWeightDevice": res.blkio_weight_devices.iter().map(|d| json!({"Path": d.path, "Weight": d.value})).collect::<Vec<_>>(),
        "BlkioDeviceReadBps": rates(&res.device_read_bps),
        "BlkioDeviceWriteBps": rates(&res.device_write_bps),
        "BlkioDeviceReadIOps": rates(&res.device_read_iops),
        "BlkioDeviceWriteIOps": rates(&res.device_write_iops),
    });
    if let (Some(hc), Value::Object(more)) = (v["HostConfig"].as_object_mut(), host) {
        hc.extend(more);
    }
    v["Config"]["Domainname"] = json!(c.network.domainname.clone().unwrap_or_default());
    v
}

// Logs.

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Keep printing new output until the container stops.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only output after this time: RFC 3339, Unix seconds, or a duration ago (10m, 1h30m).
    #[arg(long)]
    pub since: Option<String>,
    /// Only output before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only the last N lines ("all" for everything).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Prefix each line with its time.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// The container (name or id).
    pub container: String,
}

/// Writes one entry to our stdout or stderr, as its stream was; false
/// when the reader is gone.
fn print_entry(e: &Entry, timestamps: bool) -> bool {
    let mut buf = Vec::with_capacity(e.text.len() + 40);
    if timestamps {
        buf.extend_from_slice(logs::rfc3339_nano(e.time).as_bytes());
        buf.push(b' ');
    }
    buf.extend_from_slice(&e.text);
    let ok = match e.stream {
        Stream::Stdout => {
            let mut o = std::io::stdout().lock();
            o.write_all(&buf).and_then(|_| o.flush())
        }
        Stream::Stderr => std::io::stderr().write_all(&buf),
    };
    ok.is_ok()
}

pub fn logs(root: &Path, run_root: &Path, a: LogsArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    // A bad time exits 1, as it always has (not 2, as other bad options).
    let time = |s: &Option<String>, flag| {
        s.as_deref()
            .map(|s| logs::parse_time(s, flag).map_err(|e| anyhow::anyhow!("{e}")))
            .transpose()
    };
    let req = LogRequest {
        since: time(&a.since, "--since")?,
        until: time(&a.until, "--until")?,
        tail: match a.tail.as_str() {
            "all" | "-1" => None,
            n => Some(
                n.parse()
                    .with_context(|| format!("--tail: {n:?} is not a number or \"all\""))?,
            ),
        },
        follow: a.follow,
        ..LogRequest::default()
    };
    engine.logs(&a.container, &req, &mut |e| print_entry(e, a.timestamps))?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A Go template run on each object ('{{.State.Pid}}',
    /// '{{json .Config}}', '{{range .Mounts}}{{.Source}} {{end}}');
    /// json or nothing: the whole JSON.
    #[arg(short = 'f', long, value_name = "FORMAT", value_parser = crate::format::parse)]
    pub format: Option<crate::format::Format>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn inspect(root: &Path, run_root: &Path, a: InspectArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    let mut out = Vec::new();
    let mut failed = false;
    for c in &a.containers {
        match engine.get(c) {
            Ok(r) => out.push(inspect_json(&engine, &r)),
            Err(e) => {
                crate::output::print_error(&e.into());
                failed = true;
            }
        }
    }
    match &a.format {
        Some(crate::format::Format::Template { template, .. }) => {
            crate::format::each(template, &out)?
        }
        _ => println!("{}", serde_json::to_string_pretty(&out)?),
    }
    if failed {
        return Err(ExitCode(1).into());
    }
    Ok(())
}
