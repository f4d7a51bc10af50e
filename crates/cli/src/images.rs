//! Image commands.

use crate::progress::Progress;
use anyhow::{Context, Result};
use berth_engine::images::{self, Images, Pull, PullRequest, PushEvent, Removed};
use clap::{Args, Subcommand, ValueEnum};
use std::path::Path;

#[derive(Args)]
#[command(after_help = "Examples:
  berth pull alpine                              # docker.io/library/alpine:latest
  berth pull quay.io/podman/stable:v5
  berth pull --platform linux/arm64 busybox
  berth pull 127.0.0.1:5000/team/app@sha256:<digest>
Registries on this machine (localhost, 127.0.0.0/8, ::1) are reached over plain HTTP, as in Docker;
registries.conf (containers-registries.conf(5)) maps prefixes, mirrors, insecure registries and aliases.")]
pub struct PullArgs {
    /// The image: NAME[:TAG][@DIGEST] (`busybox` is docker.io/library/busybox:latest).
    pub image: String,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// The platform to pull from a multi-platform image (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Verify the registry's TLS certificate; false also allows plain HTTP
    /// (loopback registries always may use HTTP, as in Docker).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Credentials as USER:PASSWORD (otherwise from Docker's or Podman's
    /// auth files).
    #[arg(long)]
    pub creds: Option<String>,
    /// Layers downloaded at once.
    #[arg(long, default_value_t = 3)]
    pub parallel: usize,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum ArchiveFormat {
    /// `docker save`'s format (uncompressed layers), also podman's default.
    DockerArchive,
    /// A tar of an OCI image layout (blobs as stored: same digests).
    OciArchive,
    /// An OCI image layout directory (-o names the directory).
    OciDir,
}

#[derive(Args)]
pub struct SaveArgs {
    /// Images, by name or id.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Write to this file (default: standard output, if it is not a terminal).
    #[arg(short, long)]
    pub output: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value_t = ArchiveFormat::DockerArchive)]
    pub format: ArchiveFormat,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from this file or OCI layout directory (default: standard input).
    #[arg(short, long)]
    pub input: Option<std::path::PathBuf>,
    /// Print only the loaded image ids.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct PushArgs {
    /// The local image, by name or id.
    pub image: String,
    /// Where to push it (default: the image's own name).
    pub destination: Option<String>,
    /// Print only the manifest digest.
    #[arg(short, long)]
    pub quiet: bool,
    /// Verify the registry's TLS certificate; false also allows plain HTTP.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Credentials as USER:PASSWORD (otherwise from the auth files).
    #[arg(long)]
    pub creds: Option<String>,
}

#[derive(Args)]
pub struct ListArgs {
    /// Only image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format: a table for people, json for scripts, or a Go
    /// template ('{{.Repository}}:{{.Tag}}'; 'table ...' for a table):
    /// .ID .Repository .Tag .Digest .CreatedSince .CreatedAt .Size.
    #[arg(long, value_name = "FORMAT", value_parser = crate::format::parse, default_value = "table")]
    pub format: crate::format::Format,
    /// Show full ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Every image (berth keeps no intermediate images: the same list).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Filter: dangling=true|false, label=KEY[=VALUE], reference=PATTERN,
    /// before=IMAGE, since=IMAGE.
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Only the images of this repository (any tag), or of REPOSITORY:TAG
    /// (as --filter reference=).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

#[derive(Args)]
pub struct RmiArgs {
    /// Images, by name or (short) id.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Remove the image with all its names.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Subcommand)]
#[command(defer = true)]
pub enum ImageCmd {
    /// Download an image (same as `berth pull`).
    Pull(PullArgs),
    /// List images (same as `berth images`).
    Ls(ListArgs),
    /// Remove images (same as `berth rmi`).
    Rm(RmiArgs),
    /// Show an image's details as JSON (Docker's field names).
    Inspect {
        /// A Go template run on each image ('{{.Id}}', '{{json .Config}}').
        #[arg(short = 'f', long, value_name = "FORMAT", value_parser = crate::format::parse)]
        format: Option<crate::format::Format>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove images without a name, then unused layers and blobs.
    Prune {
        /// Do not ask for confirmation (accepted, as docker's and podman's;
        /// berth does not ask).
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Build an image from a Dockerfile (same as `berth build`).
    Build(Box<crate::build::BuildArgs>),
    /// Show how an image was built, newest step first.
    History {
        image: String,
        /// Show full commands.
        #[arg(long)]
        no_trunc: bool,
    },
}

fn open(root: &Path) -> Result<Images> {
    Ok(Images::open(root)?)
}

pub fn pull(root: &Path, a: PullArgs) -> Result<()> {
    let id = pull_image(root, &a)?;
    println!("{id}");
    Ok(())
}

/// Pulls, with progress on stderr; returns the image id.
pub fn pull_image(root: &Path, a: &PullArgs) -> Result<images::Digest> {
    let p = Pull::prepare(&PullRequest {
        image: a.image.clone(),
        platform: a.platform.clone(),
        tls_verify: a.tls_verify,
        creds: a.creds.clone(),
        parallel: a.parallel,
    })?;
    let r = &p.reference;
    if let (Some((full, file)), false) = (&p.alias, a.quiet) {
        eprintln!(
            "Resolved {:?} as an alias ({full}) from {}",
            a.image,
            file.display()
        );
    }
    let mut store = open(root)?;
    let interrupt = crate::interrupt::Guard::new();
    let progress = Progress::new(a.quiet);
    if !a.quiet {
        eprintln!("Pulling {r}");
    }
    let res = store.pull(&p, &|e| progress.event(e));
    progress.finish();
    if interrupt.interrupted() {
        eprintln!("berth: pull of {r} interrupted; nothing of it was kept");
        return Err(crate::containers::ExitCode(130).into());
    }
    drop(interrupt);
    let p = res?;
    if !a.quiet {
        eprintln!("Digest: {}", p.manifest);
    }
    Ok(p.id)
}

pub fn push(root: &Path, a: PushArgs) -> Result<()> {
    let store = open(root)?;
    if !a.quiet {
        let dest = images::Reference::parse(a.destination.as_deref().unwrap_or(&a.image))?;
        eprintln!("Pushing {dest}");
    }
    let quiet = a.quiet;
    let d = store.push(
        &a.image,
        a.destination.as_deref(),
        a.tls_verify,
        a.creds.as_deref(),
        &|e| {
            if quiet {
                return;
            }
            match e {
                PushEvent::Exists(d) => eprintln!("{}: already exists", d.short()),
                PushEvent::Pushed(d, n) => eprintln!("{}: pushed ({})", d.short(), human(n)),
            }
        },
    )?;
    if !quiet {
        eprintln!("Digest: {d}");
    }
    println!("{d}");
    Ok(())
}

pub fn save(root: &Path, a: SaveArgs) -> Result<()> {
    use images::ArchiveFormat as Format;
    use std::io::IsTerminal;
    let store = open(root)?;
    let format = match a.format {
        ArchiveFormat::DockerArchive => Format::DockerArchive,
        ArchiveFormat::OciArchive => Format::OciArchive,
        ArchiveFormat::OciDir => {
            let dir = a
                .output
                .as_ref()
                .context("berth save --format oci-dir: give the directory with -o DIR")?;
            store.save_dir(&a.images, dir)?;
            return Ok(());
        }
    };
    match &a.output {
        Some(p) => {
            // Written next to the target and renamed: no half archive.
            let tmp = p.with_extension("berth-partial");
            let f =
                std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            let w = std::io::BufWriter::with_capacity(1 << 20, f);
            if let Err(e) = store.save(&a.images, format, w) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
            std::fs::rename(&tmp, p).with_context(|| format!("rename to {}", p.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                anyhow::bail!("berth save: refusing to write an archive to a terminal; use -o FILE or redirect stdout");
            }
            let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            store.save(&a.images, format, out)?;
        }
    }
    Ok(())
}

pub fn load(root: &Path, a: LoadArgs) -> Result<()> {
    let mut store = open(root)?;
    let spool;
    let path = match &a.input {
        Some(p) => p.as_path(),
        None => {
            // An archive needs random access: spool stdin first.
            spool = store
                .spool("load", &mut std::io::stdin().lock())
                .context("read the archive from stdin")?;
            spool.path()
        }
    };
    let interrupt = crate::interrupt::Guard::new();
    let progress = Progress::new(a.quiet);
    let loaded = store.load(path, &|e| progress.event(e));
    progress.finish();
    if interrupt.interrupted() {
        eprintln!(
            "berth: load of {} interrupted; nothing of it was kept",
            path.display()
        );
        return Err(crate::containers::ExitCode(130).into());
    }
    drop(interrupt);
    for l in loaded? {
        if a.quiet || l.names.is_empty() {
            println!("{}", l.id);
        } else {
            for n in &l.names {
                println!("Loaded image: {n}");
            }
        }
    }
    Ok(())
}

pub fn tag(root: &Path, source: &str, target: &str) -> Result<()> {
    Ok(open(root)?.tag(source, target)?)
}

fn ago(t: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let d = (now - t).max(0);
    match d {
        0..=59 => format!("{d} seconds ago"),
        60..=3599 => format!("{} minutes ago", d / 60),
        3600..=86399 => format!("{} hours ago", d / 3600),
        _ => format!("{} days ago", d / 86400),
    }
}

/// Sizes as Docker prints them: three significant digits, decimal units
/// (`234MB`, `5.29MB`, `12.5kB`).
fn human(b: u64) -> String {
    let mut v = b as f64;
    let mut i = 0;
    const U: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    while v >= 999.5 && i < 4 {
        v /= 1000.0;
        i += 1;
    }
    let s = if v >= 99.95 {
        format!("{v:.0}")
    } else if v >= 9.995 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    s + U[i]
}

pub fn list(root: &Path, a: ListArgs) -> Result<()> {
    use berth_engine::template::views::ImageRow;
    let mut filters = a.filter.clone();
    if let Some(r) = &a.repository {
        filters.push(format!("reference={r}"));
    }
    let images = open(root)?.list(&filters)?;
    if a.quiet {
        for i in &images {
            println!(
                "{}",
                if a.no_trunc {
                    i.id.to_string()
                } else {
                    i.id.short().to_string()
                }
            );
        }
        return Ok(());
    }
    if let crate::format::Format::Template { table, template } = &a.format {
        let mut rows = Vec::new();
        for i in &images {
            let id = if a.no_trunc {
                i.id.to_string()
            } else {
                i.id.short().to_string()
            };
            let created = i
                .created
                .as_deref()
                .and_then(berth_engine::logs::parse_rfc3339);
            let since = created.map_or_else(|| ago(i.pulled), |n| ago(n / 1_000_000_000));
            let created_at = created.map_or_else(String::new, crate::format::go_time);
            let mut names: Vec<(&str, &str)> = i
                .names
                .iter()
                .filter(|n| !n.contains('@'))
                .map(|t| t.rsplit_once(':').unwrap_or((t.as_str(), "<none>")))
                .collect();
            if names.is_empty() {
                names.push(("<none>", "<none>"));
            }
            for (repo, tag) in names {
                rows.push(ImageRow {
                    id: id.clone(),
                    repository: repo.to_string(),
                    tag: tag.to_string(),
                    digest: i.manifest_digest.to_string(),
                    created_since: since.clone(),
                    created_at: created_at.clone(),
                    size: human(i.size),
                });
            }
        }
        return crate::format::rows(template, *table, &rows, ImageRow::HEADERS);
    }
    if matches!(a.format, crate::format::Format::Json) {
        let v: Vec<serde_json::Value> = images
            .iter()
            .map(|i| {
                serde_json::json!({
                    "Id": i.id.to_string(),
                    "Names": i.names.iter().filter(|n| !n.contains('@')).collect::<Vec<_>>(),
                    "Digests": i.names.iter().filter(|n| n.contains('@')).collect::<Vec<_>>(),
                    "Digest": i.manifest_digest.to_string(),
                    "Created": i.created,
                    "Size": i.size,
                    "Os": i.os,
                    "Architecture": i.architecture,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    for i in &images {
        let id = if a.no_trunc {
            i.id.to_string()
        } else {
            i.id.short().to_string()
        };
        let tags: Vec<&String> = i.names.iter().filter(|n| !n.contains('@')).collect();
        let created = i.created.clone().map_or_else(
            || ago(i.pulled),
            |c| c.chars().take(19).collect::<String>().replace('T', " "),
        );
        if tags.is_empty() {
            rows.push(["<none>".into(), "<none>".into(), id, created, human(i.size)]);
            continue;
        }
        for t in tags {
            let (repo, tag) = t.rsplit_once(':').unwrap_or((t.as_str(), "<none>"));
            rows.push([
                repo.to_string(),
                tag.to_string(),
                id.clone(),
                created.clone(),
                human(i.size),
            ]);
        }
    }
    let rows: Vec<[String; 5]> = rows
        .into_iter()
        .map(|r| r.map(crate::escape::owned))
        .collect();
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c < 4 {
                    format!("{v:<w$}", w = widths[c])
                } else {
                    v.clone()
                }
            })
            .collect();
        println!("{}", line.join("   "));
    }
    Ok(())
}

pub fn rmi(root: &Path, a: RmiArgs) -> Result<()> {
    let mut store = open(root)?;
    let mut failed = None;
    for i in &a.images {
        match store.remove(i, a.force) {
            Ok(Removed::Untagged) => println!("Untagged: {i}"),
            Ok(Removed::Deleted(ids)) => {
                for id in ids {
                    println!("Deleted: {id}");
                }
            }
            Err(e) => {
                let code = e.exit_code();
                crate::output::print_error(&e.into());
                failed = Some(code);
            }
        }
    }
    // Layers and blobs no image uses any more.
    store.gc()?;
    // Each error was printed already: only the exit code is left.
    match failed {
        Some(code) => Err(crate::containers::ExitCode(code).into()),
        None => Ok(()),
    }
}

pub fn image(root: &Path, c: ImageCmd) -> Result<()> {
    match c {
        ImageCmd::Pull(a) => pull(root, a),
        ImageCmd::Ls(a) => list(root, a),
        ImageCmd::Rm(a) => rmi(root, a),
        ImageCmd::Inspect { images, format } => inspect(root, &images, format.as_ref()),
        ImageCmd::History { image, no_trunc } => history(root, &image, no_trunc),
        ImageCmd::Build(_) => anyhow::bail!("berth image build is dispatched by main"),
        ImageCmd::Prune { force: _ } => {
            let (dangling, gc) = open(root)?.prune()?;
            for id in &dangling {
                println!("Deleted: {id}");
            }
            eprintln!(
                "Removed {} images, {} layers, {} blobs",
                dangling.len(),
                gc.layers,
                gc.blobs
            );
            Ok(())
        }
    }
}

fn history(root: &Path, name: &str, no_trunc: bool) -> Result<()> {
    let mut rows = Vec::new();
    for h in open(root)?.history(name)? {
        let mut by = h.created_by.replace('\n', " ");
        if !no_trunc && by.chars().count() > 60 {
            by = by.chars().take(57).collect::<String>() + "...";
        }
        rows.push([
            h.created
                .chars()
                .take(19)
                .collect::<String>()
                .replace('T', " "),
            by,
            human(h.size),
            h.comment,
        ]);
    }
    rows.reverse();
    let rows: Vec<[String; 4]> = rows
        .into_iter()
        .map(|r| r.map(crate::escape::owned))
        .collect();
    let head = [
        "CREATED".to_string(),
        "CREATED BY".into(),
        "SIZE".into(),
        "COMMENT".into(),
    ];
    let all: Vec<&[String; 4]> = std::iter::once(&head).chain(rows.iter()).collect();
    let w: Vec<usize> = (0..4)
        .map(|c| all.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in all {
        println!(
            "{:<w0$}   {:<w1$}   {:<w2$}   {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2]
        );
    }
    Ok(())
}

pub fn import(
    root: &Path,
    file: &str,
    name: Option<&str>,
    changes: &[String],
    message: Option<&str>,
) -> Result<()> {
    let mut store = open(root)?;
    let spool;
    let path = if file == "-" {
        spool = store
            .spool("import", &mut std::io::stdin().lock())
            .context("read the tarball from stdin")?;
        spool.path()
    } else {
        Path::new(file)
    };
    let progress = Progress::new(true);
    let id = store.import(path, name, changes, message, &|e| progress.event(e))?;
    println!("{id}");
    Ok(())
}

fn inspect(root: &Path, names: &[String], format: Option<&crate::format::Format>) -> Result<()> {
    let store = open(root)?;
    let mut out = Vec::new();
    for n in names {
        out.push(store.inspect(n)?);
    }
    if let Some(crate::format::Format::Template { template, .. }) = format {
        return crate::format::each(template, &out);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_like_docker() {
        assert_eq!(super::human(234_170_000), "234MB");
        assert_eq!(super::human(5_290_000), "5.29MB");
        assert_eq!(super::human(12_500), "12.5kB");
        assert_eq!(super::human(999), "999B");
        assert_eq!(super::human(1_000_000), "1MB");
        assert_eq!(super::human(0), "0B");
    }
}
