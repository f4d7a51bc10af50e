//! Read-only container commands: ps, inspect, logs (clap and printing;
//! the models and filters are the engine's `query` and `inspect`).

use crate::containers::{open, ExitCode};
use anyhow::{Context, Result};
use berth_engine::logs::{self, Entry, LogRequest, Stream};
use berth_engine::query::{self, PsFilter, PsQuery};
use berth_engine::records::Record;
use berth_engine::template::views::PsRow;
use berth_engine::Engine;
use clap::{Args, ValueEnum};
use serde_json::Value;
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
    /// Filter: status=, name=, id=, label=KEY[=VALUE], ancestor=IMAGE, exited=CODE, pod=POD, health=starting|healthy|unhealthy|none.
    /// Stopped containers need -a, except with a status= filter (as Docker's).
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
    /// Show the id and name of each container's pod (POD ID, PODNAME).
    #[arg(short = 'p', long)]
    pub pod: bool,
}

/// The records `filters` (Docker's `KEY=VALUE` strings) keep.
pub fn filtered(engine: &Engine, filters: &[String]) -> Result<Vec<Record>> {
    Ok(engine.list_filtered(&PsFilter::parse(filters)?)?)
}

pub fn ps(root: &Path, run_root: &Path, a: PsArgs) -> Result<()> {
    let engine = open(root, run_root)?;
    let list = engine.ps(&PsQuery {
        all: a.all,
        last: a.last,
        latest: a.latest,
        filter: PsFilter::parse(&a.filter)?,
    })?;
    if a.quiet {
        for r in &list {
            println!("{}", query::short_id(r, a.no_trunc));
        }
        return Ok(());
    }
    if let crate::format::Format::Template { table, template } = &a.format {
        let rows: Vec<PsRow> = list.iter().map(|r| engine.ps_row(r, a.no_trunc)).collect();
        return crate::format::rows(template, *table, &rows, PsRow::HEADERS);
    }
    if matches!(a.format, crate::format::Format::Json) {
        // Through a Value: its keys in order, as before.
        let v: Vec<Value> = list
            .iter()
            .map(|r| serde_json::to_value(engine.ps_entry(r, a.size)))
            .collect::<Result<_, _>>()?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let sizes: Vec<Option<berth_engine::control::ContainerSize>> = list
        .iter()
        .map(|r| a.size.then(|| engine.container_size(r)))
        .collect();
    let rows: Vec<Vec<String>> = list
        .iter()
        .zip(&sizes)
        .map(|(r, size)| {
            let mut row = vec![
                query::short_id(r, a.no_trunc),
                r.image.clone(),
                query::quoted_command(&engine.command_or_spec(r), a.no_trunc),
                format!("{} ago", query::ago(r.created)),
                engine.status_with_health(r),
                engine
                    .published(&r.id)
                    .iter()
                    .map(|p| p.display())
                    .collect::<Vec<_>>()
                    .join(", "),
                r.name.clone(),
            ];
            if a.pod {
                let pod = r.spec.pod.as_deref().and_then(|p| engine.pod(p).ok());
                row.push(
                    pod.as_ref()
                        .map(|p| p.id[..12].to_string())
                        .unwrap_or_default(),
                );
                row.push(pod.map(|p| p.name).unwrap_or_default());
            }
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
    if a.pod {
        head.extend(["POD ID", "PODNAME"]);
    }
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
        // Through a Value: its keys in order, as templates see them.
        match engine.inspect_container(c) {
            Ok(doc) => out.push(serde_json::to_value(doc)?),
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
