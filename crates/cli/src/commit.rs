//! `berth commit` and `berth export` (also `berth container commit|export`):
//! thin shells over [`berth_engine::Engine::commit`] and
//! [`berth_engine::Engine::export`].

use anyhow::{Context, Result};
use berth_engine::commit::{CommitOptions, ImageFormat};
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// The author (as `"Name <email>"`).
    #[arg(short, long)]
    pub author: Option<String>,
    /// A comment for the image's history.
    #[arg(short, long)]
    pub message: Option<String>,
    /// A Dockerfile instruction for the image's config: CMD, ENTRYPOINT,
    /// ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR or STOPSIGNAL
    /// (repeatable).
    #[arg(short, long = "change")]
    pub change: Vec<String>,
    /// Pause the container while its changes are read (--pause=false not to).
    #[arg(short, long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub pause: bool,
    /// The image format: oci, or docker (which also records the container's config).
    #[arg(short, long, default_value = "oci")]
    pub format: String,
    /// Print only the image id (without sha256:).
    #[arg(short, long)]
    pub quiet: bool,
    /// The container, by name or id.
    pub container: String,
    /// The new image's name, NAME[:TAG] (none: an untagged image).
    pub image: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to this file (default: standard output, if it is not a terminal).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// The container, by name or id.
    pub container: String,
}

pub fn commit(root: &Path, run_root: &Path, a: CommitArgs) -> Result<()> {
    let engine = crate::containers::open(root, run_root)?;
    let opts = CommitOptions {
        name: a.image,
        author: a.author,
        message: a.message,
        changes: a.change,
        pause: a.pause,
        format: ImageFormat::parse(&a.format)?,
        compression: Default::default(),
    };
    let c = engine.commit(&a.container, &opts)?;
    if a.quiet {
        println!("{}", c.id.hex());
    } else {
        println!("{}", c.id);
    }
    Ok(())
}

pub fn export(root: &Path, run_root: &Path, a: ExportArgs) -> Result<()> {
    let engine = crate::containers::open(root, run_root)?;
    match &a.output {
        Some(p) => {
            // Written next to the target and renamed: no half archive.
            let tmp = p.with_extension("berth-partial");
            let f =
                std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            let r = engine
                .export(&a.container, &mut w)
                .map_err(anyhow::Error::from)
                .and_then(|_| {
                    let f = w.into_inner().map_err(|e| e.into_error())?;
                    f.sync_all()?;
                    Ok(())
                });
            if let Err(e) = r {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.context(format!("export {} to {}", a.container, p.display())));
            }
            std::fs::rename(&tmp, p).with_context(|| format!("rename to {}", p.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                anyhow::bail!("berth export: refusing to write a tar to a terminal; use -o FILE or redirect stdout");
            }
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            engine.export(&a.container, &mut out)?;
            std::io::Write::flush(&mut out).context("write the tar to stdout")?;
        }
    }
    Ok(())
}
