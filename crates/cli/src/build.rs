//! `berth build` (also `berth image build`) and `berth builder prune`:
//! thin shells over [`berth_engine::Engine::build`].

use anyhow::{Context, Result};
use berth_engine::build::{
    default_dockerfile, BuildHost, BuildOptions, DockerfileSource, ImageFormat, LayerCompression,
    NamedContext, Squash, StdinContext,
};
use berth_engine::images::{self, ImageChoice, PullPolicy as P};
use berth_engine::Engine;
use clap::Args;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name the image NAME[:TAG] (repeatable).
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tag: Vec<String>,
    /// The Dockerfile: a path (default CONTEXT/Dockerfile, else
    /// CONTEXT/Containerfile), or - for standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<String>,
    /// Build the stage of this name and the stages it needs (default: the last).
    #[arg(long)]
    pub target: Option<String>,
    /// A build arg, KEY=VALUE (KEY alone: from this environment).
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_arg: Vec<String>,
    /// Run every step again (the cache is neither read nor trusted).
    #[arg(long)]
    pub no_cache: bool,
    /// Pull base images: missing (the default), always (also bare --pull) or never.
    #[arg(long, num_args = 0..=1, default_missing_value = "always", value_name = "POLICY")]
    pub pull: Option<String>,
    /// A label on the image, KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// The RUN steps' network: none, host or default (the engine's default
    /// for containers, as `berth run`: $BERTH_DEFAULT_NETWORK, else bridge).
    #[arg(long)]
    pub network: Option<String>,
    /// Write the image id to this file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// Progress output: auto, plain or tty (all print plain lines).
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Set the times of the config, history and files to this Unix time
    /// (default: $SOURCE_DATE_EPOCH if set).
    #[arg(long, value_name = "SECONDS")]
    pub timestamp: Option<i64>,
    /// A secret for `RUN --mount=type=secret,id=ID`: id=ID,src=FILE or
    /// id=ID,env=VAR (never stored in the image or its history).
    #[arg(long, value_name = "id=ID,src=FILE|env=VAR")]
    pub secret: Vec<String>,
    /// An ssh-agent forwarded to `RUN --mount=type=ssh,id=ID`: `default`
    /// (or ID) for $SSH_AUTH_SOCK, or ID=SOCKET for an agent's socket.
    #[arg(long, value_name = "default|ID[=SOCKET]")]
    pub ssh: Vec<String>,
    /// A named context for `FROM NAME`, `COPY --from=NAME` and
    /// `RUN --mount=from=NAME`: a directory, or docker-image://REF.
    #[arg(long = "build-context", value_name = "NAME=DIR|docker-image://REF")]
    pub build_context: Vec<String>,
    /// The image format: oci or docker.
    #[arg(long, default_value = "oci")]
    pub format: String,
    /// How new layers are compressed: gzip or zstd.
    #[arg(long, default_value = "gzip")]
    pub compression: String,
    /// The target platform, OS/ARCH[/VARIANT] (comma-separated for
    /// several): only this machine's is built (linux/amd64 here, in any of
    /// its spellings); it also sets TARGETPLATFORM and its parts.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Squash the layers the build made into one, on top of the target
    /// stage's base image (the history keeps its steps, marked empty).
    #[arg(long, conflicts_with = "squash_all")]
    pub squash: bool,
    /// Squash every layer, the base image's too, into one (podman).
    #[arg(long)]
    pub squash_all: bool,
    /// The build context: a directory, or - (standard input: a tarball of the context,
    /// plain or gzip, or a Dockerfile alone, no context).
    pub context: String,
}

struct Host<'a> {
    engine: &'a Engine,
    root: &'a Path,
    policy: P,
    quiet: bool,
}

impl BuildHost for Host<'_> {
    fn base_image(&self, name: &str) -> Result<images::Digest, String> {
        let choice = self
            .engine
            .image_for(name, self.policy, None)
            .map_err(|e| match e {
                images::ImageForError::NotPresent { .. } => format!(
                    "image {name:?} is not in the store and --pull=never was given; pull it first (`berth pull {name}`)"
                ),
                e => format!("image {name:?}: {e}"),
            })?;
        match choice {
            ImageChoice::Stored(id) => Ok(id),
            ImageChoice::Pull { fallback, .. } => {
                let pulled = crate::images::pull_image(
                    self.root,
                    &crate::images::PullArgs {
                        image: name.to_string(),
                        quiet: self.quiet,
                        platform: None,
                        tls_verify: true,
                        creds: None,
                        parallel: 3,
                    },
                );
                match (pulled, fallback) {
                    (Ok(id), _) => Ok(id),
                    (Err(_), Some(id)) => Ok(id),
                    (Err(e), None) => Err(format!("pull {name}: {}", crate::output::text(&e))),
                }
            }
        }
    }

    fn progress(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    fn output(&self, _stage: &str, data: &[u8]) {
        if !self.quiet {
            let _ = std::io::stderr().write_all(data);
        }
    }
}

fn kv(flag: &str, s: &str, from_env: bool) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        None if from_env && !s.is_empty() => {
            Ok((s.to_string(), std::env::var(s).unwrap_or_default()))
        }
        _ => anyhow::bail!("{flag} {s:?}: expected KEY=VALUE"),
    }
}

pub fn build(root: &Path, run_root: &Path, a: BuildArgs) -> Result<()> {
    let policy = match a.pull.as_deref() {
        None | Some("missing") => P::Missing,
        Some("always") | Some("true") => P::Always,
        Some("never") | Some("false") => P::Never,
        Some(p) => anyhow::bail!("--pull={p}: expected always, missing or never"),
    };
    if !matches!(a.progress.as_str(), "auto" | "plain" | "tty") {
        anyhow::bail!("--progress={}: expected auto, plain or tty", a.progress);
    }
    let network = match a.network.as_deref() {
        None => None,
        Some(n @ ("none" | "host" | "default")) => Some(n.to_string()),
        Some(n) => anyhow::bail!("--network={n}: expected none, host or default"),
    };
    let mut build_args = BTreeMap::new();
    for b in &a.build_arg {
        let (k, v) = kv("--build-arg", b, true)?;
        build_args.insert(k, v);
    }
    let labels = a
        .label
        .iter()
        .map(|l| kv("--label", l, false))
        .collect::<Result<Vec<_>>>()?;
    let timestamp = match a.timestamp {
        Some(t) => Some(t),
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(s) if !s.is_empty() => Some(s.parse::<i64>().with_context(|| {
                format!("SOURCE_DATE_EPOCH={s:?}: expected a number of seconds")
            })?),
            _ => None,
        },
    };
    let mut secrets = berth_engine::build::Secrets::default();
    for s in &a.secret {
        let (mut id, mut src, mut env) = (None, None, None);
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(v.to_string()),
                Some(("env", v)) => env = Some(v.to_string()),
                Some(("type", "file" | "env")) => {}
                _ => anyhow::bail!("--secret {s:?}: expected id=ID,src=FILE or id=ID,env=VAR"),
            }
        }
        let id = id
            .or_else(|| env.clone())
            .ok_or_else(|| anyhow::anyhow!("--secret {s:?}: needs id=ID"))?;
        let data = match (src, env) {
            (Some(f), _) => {
                std::fs::read(&f).with_context(|| format!("--secret id={id}: read {f}"))?
            }
            (None, Some(v)) => std::env::var(&v)
                .with_context(|| format!("--secret id={id}: environment variable {v} is not set"))?
                .into_bytes(),
            (None, None) => std::env::var(&id)
                .with_context(|| format!("--secret id={id}: give src=FILE or env=VAR"))?
                .into_bytes(),
        };
        secrets.0.insert(id, data);
    }
    let ssh = ssh_agents(&a.ssh)?;
    let read_stdin = || -> Result<String> {
        let mut s = String::new();
        std::io::stdin()
            .take(64 << 20)
            .read_to_string(&mut s)
            .context("read the Dockerfile from standard input")?;
        Ok(s)
    };
    let engine = crate::containers::open(root, run_root)?;
    // A context tarball on standard input, unpacked for the build's time.
    let mut unpacked = None;
    let (context, dockerfile) = if a.context == "-" {
        let mut head = Vec::with_capacity(512);
        std::io::stdin()
            .take(512)
            .read_to_end(&mut head)
            .context("read the build context from standard input")?;
        let kind = StdinContext::sniff(&head);
        if kind == StdinContext::Dockerfile {
            if a.file.is_some() {
                anyhow::bail!(
                    "-f cannot be given with a Dockerfile on standard input (the context -)"
                );
            }
            let mut rest = String::new();
            (&head[..])
                .chain(std::io::stdin())
                .take(64 << 20)
                .read_to_string(&mut rest)
                .context("read the Dockerfile from standard input")?;
            (None, DockerfileSource::Text(rest))
        } else {
            let mut input = (&head[..]).chain(std::io::stdin().lock());
            let ctx = engine.unpack_context(&mut input, kind == StdinContext::Gzip)?;
            let dir = ctx.path().to_path_buf();
            unpacked = Some(ctx);
            let df = match a.file.as_deref() {
                Some("-") => anyhow::bail!(
                    "-f -: standard input holds the build context (a tarball); give the Dockerfile's path in it"
                ),
                Some(f) => DockerfileSource::Path(f.to_string()),
                None => DockerfileSource::Path(default_dockerfile(&dir).into()),
            };
            (Some(dir), df)
        }
    } else {
        let ctx = PathBuf::from(&a.context);
        if !ctx.is_dir() {
            anyhow::bail!(
                "build context {}: not a directory (give a directory, or - for a Dockerfile on standard input)",
                ctx.display()
            );
        }
        let df = match a.file.as_deref() {
            Some("-") => DockerfileSource::Text(read_stdin()?),
            Some(f) => DockerfileSource::Path(f.to_string()),
            None => DockerfileSource::Path(default_dockerfile(&ctx).into()),
        };
        (Some(ctx), df)
    };
    let opts = BuildOptions {
        context,
        dockerfile,
        tags: a.tag.clone(),
        target: a.target.clone(),
        build_args,
        no_cache: a.no_cache,
        labels,
        network,
        timestamp,
        format: ImageFormat::parse(&a.format)?,
        compression: LayerCompression::parse(&a.compression)?,
        secrets,
        ssh,
        contexts: named_contexts(&a.build_context)?,
        platform: a.platform.clone(),
        squash: match (a.squash, a.squash_all) {
            (_, true) => Squash::All,
            (true, false) => Squash::New,
            (false, false) => Squash::No,
        },
    };
    let host = Host {
        engine: &engine,
        root,
        policy,
        quiet: a.quiet,
    };
    let built = engine.build(&opts, &host);
    drop(unpacked);
    let built = built?;
    if let Some(p) = &a.iidfile {
        std::fs::write(p, built.id.to_string())
            .with_context(|| format!("--iidfile {}: write", p.display()))?;
    }
    if !a.quiet {
        eprintln!(
            "{} steps run, {} from the cache, {} containers",
            built.ran, built.cached, built.containers
        );
        for t in &a.tag {
            eprintln!("Successfully tagged {t}");
        }
    }
    println!("{}", built.id);
    Ok(())
}

/// `--ssh` values: id to an ssh-agent socket (`default` or `ID`:
/// $SSH_AUTH_SOCK; `ID=SOCKET[,...]`: the first path). A key file is
/// refused: berth forwards an agent, it does not run one.
fn ssh_agents(values: &[String]) -> Result<BTreeMap<String, PathBuf>> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = BTreeMap::new();
    for v in values {
        let (id, path) = match v.split_once('=') {
            Some((id, paths)) => (id, paths.split(',').next().unwrap_or("").to_string()),
            None => (
                v.as_str(),
                std::env::var("SSH_AUTH_SOCK").map_err(|_| {
                    anyhow::anyhow!(
                        "--ssh {v}: SSH_AUTH_SOCK is not set (start ssh-agent, or give {v}=SOCKET)"
                    )
                })?,
            ),
        };
        if id.is_empty() || path.is_empty() {
            anyhow::bail!("--ssh {v:?}: expected default, ID or ID=SOCKET");
        }
        let meta = std::fs::metadata(&path).with_context(|| format!("--ssh {v}: {path}"))?;
        if !meta.file_type().is_socket() {
            anyhow::bail!(
                "--ssh {v}: {path} is not an agent's socket (berth forwards an ssh-agent: load a key into one with ssh-add, then give its socket)"
            );
        }
        out.insert(id.to_string(), PathBuf::from(path));
    }
    Ok(out)
}

/// Builds the directory `dir` (its Containerfile, else Dockerfile) as
/// `tag` with `berth build`'s defaults, progress on stderr: `kube play
/// --build`.
pub fn build_dir(engine: &Engine, root: &Path, dir: &Path, tag: &str) -> Result<images::Digest> {
    let opts = BuildOptions {
        context: Some(dir.to_path_buf()),
        dockerfile: DockerfileSource::Path(default_dockerfile(dir).into()),
        tags: vec![tag.to_string()],
        target: None,
        build_args: BTreeMap::new(),
        no_cache: false,
        labels: Vec::new(),
        network: None,
        timestamp: None,
        format: ImageFormat::Oci,
        compression: LayerCompression::Gzip,
        secrets: Default::default(),
        ssh: BTreeMap::new(),
        contexts: BTreeMap::new(),
        platform: None,
        squash: Squash::No,
    };
    let host = Host {
        engine,
        root,
        policy: P::Missing,
        quiet: false,
    };
    Ok(engine.build(&opts, &host)?.id)
}

/// `--build-context NAME=DIR|docker-image://REF` (container-image:// as
/// podman writes it).
fn named_contexts(args: &[String]) -> Result<BTreeMap<String, NamedContext>> {
    let mut out = BTreeMap::new();
    for a in args {
        let Some((name, v)) = a
            .split_once('=')
            .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        else {
            anyhow::bail!("--build-context {a}: expected NAME=DIR or NAME=docker-image://REF");
        };
        let image = v
            .strip_prefix("docker-image://")
            .or_else(|| v.strip_prefix("container-image://"));
        let c = match image {
            Some(r) => NamedContext::Image(r.to_string()),
            None if v.contains("://") => anyhow::bail!(
                "--build-context {a}: only directories and docker-image:// references are supported"
            ),
            None => {
                let d = PathBuf::from(v);
                if !d.is_dir() {
                    anyhow::bail!("--build-context {a}: {v} is not a directory");
                }
                NamedContext::Dir(d)
            }
        };
        if out.insert(name.to_string(), c).is_some() {
            anyhow::bail!("--build-context {name}: given twice");
        }
    }
    Ok(out)
}

#[derive(clap::Subcommand, Debug)]
#[command(defer = true)]
pub enum BuilderCmd {
    /// Remove the build cache (and RUN --mount=type=cache directories).
    Prune {
        /// Do not ask (accepted for Docker's command line; berth never asks).
        #[arg(short, long)]
        force: bool,
        /// Remove all of it (accepted for Docker's command line: all is removed).
        #[arg(short, long)]
        all: bool,
    },
}

pub fn builder(root: &Path, run_root: &Path, c: BuilderCmd) -> Result<()> {
    match c {
        BuilderCmd::Prune { .. } => {
            let engine = crate::containers::open(root, run_root)?;
            let n = engine.builder_prune()?.0.len();
            println!("Removed {n} build cache entries (their images go with `berth image prune`)");
            Ok(())
        }
    }
}
