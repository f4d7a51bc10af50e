//! rename, top, stats, cp, diff, volumes and system commands.

use crate::containers::{open, ExitCode};
use crate::views::Format;
use anyhow::{bail, Context, Result};
use berth_engine::template::views::{labels_text, StatsRow, VolumeRow};
use clap::{Args, Subcommand};
use serde_json::json;
use std::io::Write;
use std::path::Path;

pub fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < U.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", U[i])
    }
}

pub(crate) fn table(head: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| crate::escape::cell(c).into_owned())
                .collect()
        })
        .collect();
    let rows = &rows[..];
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let fmt = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(w[i] - c.chars().count() + 3));
            }
        }
        s
    };
    writeln!(out, "{}", fmt(head.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", fmt(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

pub fn rename(root: &Path, run_root: &Path, container: &str, name: &str) -> Result<()> {
    open(root, run_root)?.rename(container, name)?;
    Ok(())
}

/// `top CONTAINER PS_OPTIONS`: the host's ps, kept to the container's
/// processes.
pub fn top_ps(root: &Path, run_root: &Path, container: &str, ps: &[String]) -> Result<()> {
    let t = open(root, run_root)?.top_ps(container, ps)?;
    let head: Vec<&str> = t.titles.iter().map(String::as_str).collect();
    table(&head, &t.processes)
}

/// Asks `question` on the terminal unless `force`; without a terminal to
/// ask on, refuses (as Docker does) unless `force`.
pub fn confirm(what: &str, question: &str, force: bool) -> Result<bool> {
    use std::io::IsTerminal;
    if force {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("{what}: there is no terminal to ask for confirmation on; give -f to go ahead without asking");
    }
    eprint!("{question}\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .with_context(|| format!("{what}: read the answer"))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// `container prune`.
pub fn container_prune(root: &Path, run_root: &Path, force: bool) -> Result<()> {
    if !confirm(
        "container prune",
        "WARNING! This will remove all stopped containers.",
        force,
    )? {
        return Ok(());
    }
    let ids = open(root, run_root)?.prune_containers()?;
    if !ids.is_empty() {
        println!("Deleted Containers:");
        for (id, _) in &ids {
            println!("{id}");
        }
    }
    Ok(())
}

pub fn top(root: &Path, run_root: &Path, container: &str) -> Result<()> {
    let engine = open(root, run_root)?;
    let (_, pids) = engine.pids(container)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut rows = Vec::new();
    for pid in pids {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ppid = f.get(1).copied().unwrap_or("0").to_string();
        let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let secs = ticks / hz;
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|v| v.split_whitespace().next().map(str::to_string))
            })
            .unwrap_or_default();
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .trim_end_matches('\0')
                    .replace('\0', " ")
            })
            .unwrap_or_default();
        rows.push(vec![
            uid,
            pid.to_string(),
            ppid,
            format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
            cmd,
        ]);
    }
    table(&["UID", "PID", "PPID", "TIME", "CMD"], &rows)
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print one sample and exit.
    #[arg(long)]
    pub no_stream: bool,
    /// Show every container (default: running ones).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Output: table, json, or a Go template ('{{.Name}}: {{.CPUPerc}}';
    /// 'table ...' for a table): .Container .Name .ID .CPUPerc .MemUsage
    /// .MemPerc .NetIO .BlockIO .PIDs.
    #[arg(long, value_name = "FORMAT", value_parser = crate::format::parse, default_value = "table")]
    pub format: crate::format::Format,
    /// The containers (default: all running ones).
    pub containers: Vec<String>,
}

pub fn stats(root: &Path, run_root: &Path, a: StatsArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    loop {
        let recs = engine.stats_targets(&a.containers, a.all)?;
        let stats = engine.stats(&recs, std::time::Duration::from_millis(500));
        let mut rows = Vec::new();
        let mut docs = Vec::new();
        let mut views = Vec::new();
        for (i, s) in stats.iter().enumerate() {
            docs.push(json!({
                "ID": s.id, "Name": s.name, "CPUPerc": s.cpu_percent, "MemUsage": s.mem_used,
                "MemLimit": s.mem_limit, "MemPerc": s.mem_percent, "BlockRead": s.block_read,
                "BlockWrite": s.block_write, "PIDs": s.pids,
            }));
            rows.push(vec![
                s.id[..12.min(s.id.len())].to_string(),
                s.name.clone(),
                format!("{:.2}%", s.cpu_percent),
                format!("{} / {}", human(s.mem_used), human(s.mem_limit)),
                format!("{:.2}%", s.mem_percent),
                format!("{} / {}", human(s.block_read), human(s.block_write)),
                s.pids.to_string(),
            ]);
            let row: &Vec<String> = &rows[i];
            views.push(StatsRow {
                container: a.containers.get(i).unwrap_or(&row[0]).clone(),
                name: s.name.clone(),
                id: row[0].clone(),
                cpu_perc: row[2].clone(),
                mem_usage: row[3].clone(),
                mem_perc: row[4].clone(),
                net_io: "--".into(),
                block_io: row[5].clone(),
                pids: row[6].clone(),
            });
        }
        if let crate::format::Format::Template { table, template } = &a.format {
            if !a.no_stream {
                print!("\x1b[2J\x1b[H");
            }
            crate::format::rows(template, *table, &views, StatsRow::HEADERS)?;
        } else if matches!(a.format, crate::format::Format::Json) {
            println!("{}", serde_json::to_string_pretty(&docs)?);
        } else {
            if !a.no_stream {
                // Clear the screen between samples, as docker stats does.
                print!("\x1b[2J\x1b[H");
            }
            table(
                &[
                    "CONTAINER ID",
                    "NAME",
                    "CPU %",
                    "MEM USAGE / LIMIT",
                    "MEM %",
                    "BLOCK I/O",
                    "PIDS",
                ],
                &rows,
            )?;
        }
        if a.no_stream {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Keep owners (uid/gid) when copying into the container.
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// CONTAINER:PATH, a host path, or - to read a tar stream from
    /// standard input (extracted into the directory CONTAINER:PATH).
    pub src: String,
    /// CONTAINER:PATH, a host path, or - to write CONTAINER:PATH to
    /// standard output as a tar stream.
    pub dest: String,
}

fn split_ctr(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    s.split_once(':')
}

pub fn cp(root: &Path, run_root: &Path, a: CpArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    match (split_ctr(&a.src), split_ctr(&a.dest)) {
        (Some((c, p)), None) if a.dest == "-" => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
            engine.copy_out_tar(c, p, &mut out)?;
            out.flush()
                .map_err(|e| anyhow::anyhow!("cp: write the tar stream to standard output: {e}"))?;
            Ok(())
        }
        (Some((c, p)), None) => Ok(engine.copy_out(c, p, Path::new(&a.dest))?),
        (None, Some((c, p))) if a.src == "-" => {
            let mut input = std::io::BufReader::with_capacity(256 * 1024, std::io::stdin().lock());
            Ok(engine.copy_in_tar(c, &mut input, p, a.archive)?)
        }
        (None, Some((c, p))) => Ok(engine.copy_in(c, Path::new(&a.src), p, a.archive)?),
        (Some(_), Some(_)) => {
            bail!("cp: copying between containers is not supported; copy through the host")
        }
        (None, None) => bail!("cp: one side must be CONTAINER:PATH"),
    }
}

pub fn diff(root: &Path, run_root: &Path, container: &str) -> Result<()> {
    let engine = open(root, run_root)?;
    for (k, p) in engine.diff(container)? {
        println!("{k} {p}");
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum VolumeCmd {
    /// Create a volume (a random name if none is given).
    ///
    /// A plain volume is a directory in berth's store. With the local
    /// driver's options it is a mount of its own, made when a container
    /// first uses it and kept until the volume is removed:
    ///
    ///   berth volume create --opt type=tmpfs --opt o=size=64m,uid=1000 scratch
    ///
    ///   berth volume create --opt type=none --opt o=bind --opt device=/srv/data data
    ///
    ///   berth volume create --opt type=ext4 --opt device=/dev/vdb1 disk
    #[command(verbatim_doc_comment)]
    Create {
        name: Option<String>,
        /// The volume driver: local (the only one).
        #[arg(short = 'd', long, default_value = "local")]
        driver: String,
        /// A driver option (KEY=VALUE): type (tmpfs, none, or a filesystem
        /// type), device (what to mount; a host path for o=bind) and o
        /// (mount options: size=64m, uid=1000, mode=1777, ro, bind, ...).
        #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
        opt: Vec<String>,
        /// Set a label (KEY=VALUE).
        #[arg(short = 'l', long = "label")]
        label: Vec<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Output: table, json, or a Go template ('{{.Name}}'; 'table
        /// ...' for a table): .Name .Driver .Scope .Mountpoint .Labels,
        /// .Label "KEY".
        #[arg(long, value_name = "FORMAT", value_parser = crate::format::parse, default_value = "table")]
        format: crate::format::Format,
    },
    /// Show volumes' details.
    Inspect {
        /// A Go template run on each volume ('{{.Mountpoint}}').
        #[arg(short = 'f', long, value_name = "FORMAT", value_parser = crate::format::parse)]
        format: Option<crate::format::Format>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes no container uses.
    Rm {
        /// Accepted for scripts: a volume in use is never removed.
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused anonymous volumes (with --all, named ones too).
    Prune {
        #[arg(short = 'a', long)]
        all: bool,
        /// Accepted for scripts (docker's): berth does not ask.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

/// `inspect` of several objects, Docker's way: the documents of those
/// found (as JSON, or each through `-f`'s template), an error line for
/// each one not found, and exit status 1 if any was not.
pub(crate) fn inspect_each<T: serde::Serialize>(
    names: &[String],
    format: Option<&crate::format::Format>,
    get: impl Fn(&str) -> berth_engine::Result<T>,
) -> Result<()> {
    let mut docs = Vec::new();
    let mut failed = false;
    for n in names {
        match get(n) {
            Ok(v) => docs.push(serde_json::to_value(v)?),
            Err(e) => {
                crate::output::print_error(&e.into());
                failed = true;
            }
        }
    }
    match format {
        Some(crate::format::Format::Template { template, .. }) => {
            crate::format::each(template, &docs)?
        }
        _ => println!("{}", serde_json::to_string_pretty(&docs)?),
    }
    if failed {
        return Err(ExitCode(1).into());
    }
    Ok(())
}

/// `rm` of several objects: each name printed once removed, an error line
/// for each that is not, and exit status 1 if any was not.
pub(crate) fn remove_each<T>(
    names: &[String],
    remove: impl Fn(&str) -> berth_engine::Result<T>,
) -> Result<()> {
    let mut failed = false;
    for n in names {
        match remove(n) {
            Ok(_) => println!("{n}"),
            Err(e) => {
                crate::output::print_error(&e.into());
                failed = true;
            }
        }
    }
    if failed {
        return Err(ExitCode(1).into());
    }
    Ok(())
}

pub fn volume(root: &Path, run_root: &Path, c: VolumeCmd) -> Result<()> {
    let engine = open(root, run_root)?;
    match c {
        VolumeCmd::Create {
            name,
            driver,
            opt,
            label,
        } => {
            if driver != "local" {
                bail!("volume create: driver {driver:?}: berth has the local driver only");
            }
            let mut opts = std::collections::BTreeMap::new();
            for o in &opt {
                let Some((k, v)) = o.split_once('=') else {
                    bail!("volume create: --opt {o:?}: use KEY=VALUE");
                };
                opts.insert(k.to_string(), v.to_string());
            }
            let name = match name {
                Some(n) => n,
                None => berth_engine::paths::new_id()?,
            };
            let labels = label
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            engine.create_volume_with(&name, labels, false, &opts)?;
            println!("{name}");
        }
        VolumeCmd::Ls { quiet, format } => {
            let list = engine.volume_list()?;
            if quiet {
                for (v, _, _) in &list {
                    println!("{}", v.name);
                }
            } else if let crate::format::Format::Template { table, template } = &format {
                let rows: Vec<VolumeRow> = list
                    .iter()
                    .map(|(v, _, p)| VolumeRow {
                        name: v.name.clone(),
                        driver: "local".into(),
                        scope: "local".into(),
                        mountpoint: p.display().to_string(),
                        labels: labels_text(&v.labels),
                    })
                    .collect();
                crate::format::rows(template, *table, &rows, VolumeRow::HEADERS)?;
            } else if matches!(format, crate::format::Format::Json) {
                let docs: Vec<_> = list
                    .iter()
                    .map(|(v, users, p)| json!({"Name": v.name, "Driver": "local", "Mountpoint": p, "Labels": v.labels, "Anonymous": v.anonymous, "InUse": users}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&docs)?);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|(v, _, _)| vec!["local".to_string(), v.name.clone()])
                    .collect();
                table(&["DRIVER", "VOLUME NAME"], &rows)?;
            }
        }
        VolumeCmd::Inspect { names, format } => {
            inspect_each(&names, format.as_ref(), |n| engine.inspect_volume(n))?
        }
        VolumeCmd::Rm { force: _, names } => remove_each(&names, |n| engine.remove_volume(n))?,
        VolumeCmd::Prune { all, force: _ } => {
            for (v, _) in engine.prune_volumes(all)? {
                println!("{v}");
            }
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum SystemCmd {
    /// Remove stopped containers, dangling images, unused layers and blobs.
    Prune {
        /// Remove every image no container uses, not only dangling ones.
        #[arg(short = 'a', long)]
        all: bool,
        /// Remove unused anonymous volumes too.
        #[arg(long)]
        volumes: bool,
        /// Do not ask for confirmation (needed without a terminal).
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Start what a reboot stopped: containers with --restart always, and
    /// unless-stopped ones that were not stopped with `berth stop` or
    /// `berth kill` (as Docker's daemon does when it starts).
    ///
    /// berth has no daemon: run this once at boot, as the unit in
    /// contrib/systemd/berth-boot.service does.
    Boot,
    /// Show disk use by images, containers and volumes.
    Df {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Serve Docker's Engine API (for the docker CLI, compose, SDKs) on a
    /// unix socket, or on TCP with TLS and client certificates:
    /// berth system service [--time SECONDS] [unix:///PATH | tcp://ADDR:PORT --tls...].
    Service(crate::service::ServiceArgs),
}

pub fn system(root: &Path, run_root: &Path, c: SystemCmd) -> Result<()> {
    let c = match c {
        SystemCmd::Service(a) => return crate::service::run(root, run_root, a),
        c => c,
    };
    let mut engine = open(root, run_root)?;
    match c {
        SystemCmd::Service(_) => {}
        SystemCmd::Boot => {
            let names: Vec<String> = engine
                .boot_candidates()
                .context("system boot: list the containers")?
                .into_iter()
                .map(|r| r.name)
                .collect();
            crate::containers::start_each(&engine, &names)?;
        }
        SystemCmd::Prune {
            all,
            volumes,
            force,
        } => {
            let images = if all {
                "all images without at least one container associated to them"
            } else {
                "all dangling images"
            };
            let vols = if volumes {
                "\n  - all anonymous volumes not used by at least one container"
            } else {
                ""
            };
            let question = format!("WARNING! This will remove:\n  - all stopped containers{vols}\n  - {images}\n  - all unused layers and blobs");
            if !confirm("system prune", &question, force)? {
                return Ok(());
            }
            let r = engine.prune(all, volumes).context("system prune")?;
            for c in &r.containers {
                println!("Deleted container: {c}");
            }
            for i in &r.images {
                println!("Deleted image: {i}");
            }
            for v in &r.volumes {
                println!("Deleted volume: {v}");
            }
            eprintln!(
                "Removed {} containers, {} images, {} volumes, {} layers, {} blobs",
                r.containers.len(),
                r.images.len(),
                r.volumes.len(),
                r.layers,
                r.blobs
            );
        }
        SystemCmd::Df { format } => {
            let rows = engine.df()?;
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.kind.to_string(),
                            r.total.to_string(),
                            r.active.to_string(),
                            human(r.size),
                            human(r.reclaimable),
                        ]
                    })
                    .collect();
                table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &t)?;
            }
        }
    }
    Ok(())
}
