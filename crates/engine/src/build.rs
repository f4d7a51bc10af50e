//! `berth build`: a Dockerfile's stages run to images in the store.
//!
//! The Dockerfile is parsed and its stage graph made by `berth-build`
//! (pure); this module runs it. The stages the target needs run on
//! threads, each as soon as the stages it uses are built. In a stage:
//!
//! - RUN: a berth container of the stage's image (created and started as
//!   `berth run` does: the same runtime, monitor and security defaults,
//!   the build's network), its overlay upper directory then a layer
//!   ([`berth_image::layer::store_new_layer`]) and the layer a new image.
//! - COPY/ADD: the stage's layers mounted as an overlay on a fresh upper
//!   directory (no container), the sources copied in by fd
//!   ([`crate::build_copy`]), the upper directory a layer.
//! - the other instructions change the config only (with a history
//!   entry marked `empty_layer`, as BuildKit writes it).
//!
//! The cache: each step has a key, the SHA-256 of its parent's key (the
//! base image's id first), the instruction as expanded, the build args it
//! uses and, for COPY/ADD, what it reads (paths, modes, owners, sizes,
//! contents; not times). A step that makes a layer, and each stage's end,
//! record key -> image id under `<root>/build/cache`; a step whose key is
//! recorded, with its image still stored, is not run again.

use crate::build_copy::{self as bc, Attrs, SourceTree};
use crate::containers::Engine;
use crate::images::Digest;
use crate::session::{Outcome, Streams};
use crate::specgen::docker::{to_spec, CreateFlags};
use berth_build::expand::expand_instruction;
use berth_build::graph::{Base, Graph, Platform, Source, StageId, StageScope};
use berth_build::ignore::{self, Ignore};
use berth_build::parse::{self, CommandForm, CopyArgs, Instruction, Kind, MountType, SourceItem};
use berth_image::commit as ic;
pub use berth_image::commit::ImageFormat;
pub use berth_image::layer::LayerCompression;
use berth_image::layer::{self, TarOptions};
use berth_sys::fs::{self as sfs, Links};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What went wrong in a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile (or an option) is wrong: names the file, line and
    /// column where it can.
    #[error("{0}")]
    Invalid(String),
    /// A step failed: `Dockerfile:LINE: INSTRUCTION: what`.
    #[error("{file}:{line}: {step}: {msg}")]
    Step {
        file: String,
        line: u32,
        step: String,
        msg: String,
    },
    /// A RUN step exited with a non-zero code.
    #[error("{file}:{line}: {step}: the command exited with code {code}{tail}")]
    RunFailed {
        file: String,
        line: u32,
        step: String,
        code: i32,
        tail: String,
    },
    /// [`BuildHost::cancelled`] said so between two steps.
    #[error("the build was cancelled: its client went away")]
    Cancelled,
    #[error(transparent)]
    Engine(#[from] crate::Error),
    #[error(transparent)]
    Store(#[from] berth_image::Error),
}

type BResult<T> = std::result::Result<T, BuildError>;

/// The Dockerfile of the context directory `dir` when none is named:
/// `Dockerfile`, or `Containerfile` when only that one is there (podman's
/// and buildah's rule).
pub fn default_dockerfile(dir: &Path) -> &'static str {
    if !dir.join("Dockerfile").exists() && dir.join("Containerfile").exists() {
        "Containerfile"
    } else {
        "Dockerfile"
    }
}

/// Where the Dockerfile comes from.
#[derive(Clone, Debug)]
pub enum DockerfileSource {
    /// A path: relative to the context (read inside it), or absolute.
    Path(String),
    /// Its text (`-f -`), named `Dockerfile` in messages.
    Text(String),
}

/// `berth build`'s options.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The context directory (None: no context, a Dockerfile from stdin).
    pub context: Option<PathBuf>,
    pub dockerfile: DockerfileSource,
    /// NAME[:TAG] of the result.
    pub tags: Vec<String>,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub no_cache: bool,
    /// `--label`, set on the result.
    pub labels: Vec<(String, String)>,
    /// The RUN steps' network: none, host or default (None: the engine's
    /// default for containers, as `berth run`).
    pub network: Option<String>,
    /// Times in the config and history (`--timestamp`/`SOURCE_DATE_EPOCH`).
    pub timestamp: Option<i64>,
    pub format: ImageFormat,
    pub compression: LayerCompression,
    /// `--secret`: id to contents, for `RUN --mount=type=secret`.
    pub secrets: Secrets,
    /// `--ssh`: id to an ssh-agent's socket on the host, bound into
    /// `RUN --mount=type=ssh,id=ID` steps (`SSH_AUTH_SOCK` names it).
    pub ssh: BTreeMap<String, PathBuf>,
    /// `--build-context NAME=DIR|docker-image://REF`: what `FROM NAME`,
    /// `COPY --from=NAME` and `RUN --mount=from=NAME` take (for a name
    /// that is not a stage's).
    pub contexts: BTreeMap<String, NamedContext>,
    /// `--platform`: platforms, comma-separated; each must be this
    /// machine's (berth does not emulate).
    pub platform: Option<String>,
    /// `--squash`/`--squash-all`.
    pub squash: Squash,
}

/// What `--squash` makes of the target's layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Squash {
    /// A layer per step (the default).
    #[default]
    No,
    /// `--squash`: the layers the build made squashed into one on top of
    /// the target stage's base image (Docker's and podman's --squash).
    New,
    /// `--squash-all`: every layer, the base's too, in one (podman).
    All,
}

/// A `--build-context`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedContext {
    /// A directory, read as the build context is (by fd, inside it; its
    /// content keys the cache; no ignore file applies).
    Dir(PathBuf),
    /// An image reference, used as `FROM REF` would.
    Image(String),
}

/// Where `COPY --from` or a mount's `from=` reads.
enum FromSrc {
    /// The build context.
    Context,
    /// A `--build-context` directory, by name.
    Named(String),
    /// A stage's image or an image (None: a stage FROM scratch), with a
    /// name for messages.
    Image(Option<Digest>, String),
}

impl FromSrc {
    /// Read from a directory (whose content keys the cache).
    fn is_dir(&self) -> bool {
        !matches!(self, FromSrc::Image(..))
    }
}

/// Secrets by id; never printed, keyed, written to a layer or history.
#[derive(Clone, Default)]
pub struct Secrets(pub BTreeMap<String, Vec<u8>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({:?})", self.0.keys().collect::<Vec<_>>())
    }
}

/// What a build made.
#[derive(Clone, Debug)]
pub struct Built {
    pub id: Digest,
    /// Steps run and steps taken from the cache.
    pub ran: usize,
    pub cached: usize,
    /// Containers started (RUN steps run).
    pub containers: usize,
}

/// What the caller provides: the base images (pulled by its policy) and
/// where progress goes.
pub trait BuildHost: Sync {
    /// The stored image to build FROM `name` (pulling it if the policy
    /// says so).
    fn base_image(&self, name: &str) -> Result<Digest, String>;
    /// One line of progress.
    fn progress(&self, line: &str);
    /// Output of a RUN step.
    fn output(&self, stage: &str, data: &[u8]);
    /// The build is no longer wanted (an API client went away): no step
    /// starts after this says so, and nothing is tagged.
    fn cancelled(&self) -> bool {
        false
    }
}

/// The result of a stage: its image (None: empty scratch) and config,
/// and the image it started FROM (None: scratch).
#[derive(Clone)]
struct StageResult {
    image: Option<Digest>,
    config: Value,
    base: Option<Digest>,
}

struct Ctx<'a> {
    engine: &'a Engine,
    host: &'a dyn BuildHost,
    opts: &'a BuildOptions,
    graph: Graph,
    file: String,
    context: Option<OwnedFd>,
    ignore: Ignore,
    /// The build's scratch directory (`<root>/build/run-<id>`).
    work: PathBuf,
    counter: std::sync::atomic::AtomicUsize,
    stats: Mutex<(usize, usize, usize)>,
    /// The cache mounts this build uses, each locked shared until the
    /// build ends (`builder prune` skips them).
    cache_locks: Mutex<Vec<OwnedFd>>,
}

/// How a step's upper directory becomes its layer ([`Ctx::layer_image`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upper {
    Take,
    Copy,
}

fn hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn rfc3339(ts: Option<i64>) -> String {
    match ts {
        None => berth_image::archive::rfc3339_now(),
        Some(t) => {
            // Civil from days (Howard Hinnant's algorithm).
            let days = t.div_euclid(86400);
            let secs = t.rem_euclid(86400);
            let z = days + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z - era * 146_097;
            let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
            let y = yoe + era * 400;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let d = doy - (153 * mp + 2) / 5 + 1;
            let m = if mp < 10 { mp + 3 } else { mp - 9 };
            let y = if m <= 2 { y + 1 } else { y };
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
                secs / 3600,
                secs % 3600 / 60,
                secs % 60
            )
        }
    }
}

/// The PATH of a base image that sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The largest file `ADD URL` downloads.
const MAX_DOWNLOAD: u64 = 8 << 30;

/// The cache directory.
fn cache_dir(root: &Path) -> PathBuf {
    root.join("build").join("cache")
}

/// Where `RUN --mount=type=cache` directories are kept.
fn cache_mounts_dir(root: &Path) -> PathBuf {
    root.join("build").join("mounts")
}

/// What a build's standard input holds, told by its first bytes (up to
/// 512: a tar header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StdinContext {
    /// A tarball of the context.
    Tar,
    /// A gzip-compressed tarball of the context.
    Gzip,
    /// A Dockerfile alone (no context).
    Dockerfile,
}

impl StdinContext {
    pub fn sniff(head: &[u8]) -> StdinContext {
        if head.starts_with(&[0x1f, 0x8b]) {
            StdinContext::Gzip
        } else if head.get(257..262) == Some(b"ustar") {
            StdinContext::Tar
        } else {
            StdinContext::Dockerfile
        }
    }
}

/// A build context unpacked from a tarball (`berth build - < ctx.tar`):
/// a directory under the berth root, removed when dropped (and by the next
/// build if this process is killed first).
pub struct UnpackedContext {
    dir: PathBuf,
}

impl UnpackedContext {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for UnpackedContext {
    fn drop(&mut self) {
        let _ = berth_image::remove_all(&self.dir);
    }
}

impl Engine {
    /// Unpacks the context tarball `input` (gzip-compressed if `gzip`) into
    /// a directory of its own. The tarball is hostile: it is unpacked as a
    /// layer is (names cleaned, nothing written outside the directory,
    /// the free space checked).
    pub fn unpack_context(&self, input: &mut dyn Read, gzip: bool) -> BResult<UnpackedContext> {
        let base = self.paths.root.join("build");
        std::fs::create_dir_all(&base)
            .map_err(|e| BuildError::Invalid(format!("create {}: {e}", base.display())))?;
        // Named as a build's work directory, so that a build killed before
        // it removed this finds it removed by the next one.
        let dir = base.join(format!(
            "run-{}-{}",
            std::process::id(),
            crate::paths::new_id()?
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| BuildError::Invalid(format!("create {}: {e}", dir.display())))?;
        let ctx = UnpackedContext { dir };
        let what = "the build context from standard input";
        let input: Box<dyn Read + '_> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
                input,
            )))
        } else {
            Box::new(input)
        };
        berth_image::unpack::unpack(&ctx.dir, input, what)?;
        Ok(ctx)
    }

    /// Builds `opts` (see the module).
    pub fn build(&self, opts: &BuildOptions, host: &dyn BuildHost) -> BResult<Built> {
        let context = match &opts.context {
            Some(c) => Some(
                sfs::open(c, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0).map_err(
                    |e| BuildError::Invalid(format!("build context {}: open: {e}", c.display())),
                )?,
            ),
            None => None,
        };
        let (file, text) = match &opts.dockerfile {
            DockerfileSource::Text(t) => ("Dockerfile".to_string(), t.clone()),
            DockerfileSource::Path(p) => {
                let text = if Path::new(p).is_absolute() || context.is_none() {
                    std::fs::read(p)
                        .map_err(|e| BuildError::Invalid(format!("Dockerfile {p}: read: {e}")))?
                } else {
                    read_in(context.as_ref().map(AsFd::as_fd), p, parse_limit())
                        .map_err(|e| BuildError::Invalid(format!("Dockerfile {p}: read: {e}")))?
                        .ok_or_else(|| {
                            BuildError::Invalid(format!(
                                "Dockerfile {p}: not found in the build context; give its path with -f"
                            ))
                        })?
                };
                let text = String::from_utf8(text)
                    .map_err(|_| BuildError::Invalid(format!("Dockerfile {p}: not UTF-8 text")))?;
                let name = Path::new(p)
                    .file_name()
                    .map_or(p.clone(), |n| n.to_string_lossy().into_owned());
                (name, text)
            }
        };
        let df =
            parse::parse(&file, text.as_bytes()).map_err(|e| BuildError::Invalid(e.to_string()))?;
        let native = Platform::native();
        for p in opts.platform.iter().flat_map(|p| p.split(',')) {
            Platform::require(p, &native)
                .map_err(|m| BuildError::Invalid(format!("--platform: {m}")))?;
        }
        let graph = Graph::new(&file, &df, &opts.build_args, &native)
            .map_err(|e| BuildError::Invalid(e.to_string()))?;
        for a in &graph.unused_build_args {
            host.progress(&format!(
                "[Warning] one or more build args were not consumed: {a}"
            ));
        }
        let plan = graph
            .plan(opts.target.as_deref())
            .map_err(|m| BuildError::Invalid(format!("--target: {m}")))?;
        let df_name = match &opts.dockerfile {
            DockerfileSource::Path(p) => p.clone(),
            DockerfileSource::Text(_) => "Dockerfile".into(),
        };
        let ignore = match &context {
            Some(c) => ignore::load(&df_name, |name| {
                read_in(Some(c.as_fd()), name, berth_build::limits::MAX_IGNORE_FILE)
                    .ok()
                    .flatten()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            })
            .map_err(|e| BuildError::Invalid(e.to_string()))?,
            None => Ignore::default(),
        };
        for t in &opts.tags {
            berth_image::Reference::parse(t)
                .map_err(|e| BuildError::Invalid(format!("-t {t}: {e}")))?;
        }
        clean_stale_runs(&self.paths.root.join("build"));
        // What a killed build left in the store's tmp/ (a step's layer
        // being taken in, its blob).
        self.images.clean_tmp();
        self.remove_stale_step_containers();
        let work = self.paths.root.join("build").join(format!(
            "run-{}-{}",
            std::process::id(),
            crate::paths::new_id()?
        ));
        std::fs::create_dir_all(&work)
            .map_err(|e| BuildError::Invalid(format!("create {}: {e}", work.display())))?;
        let cx = Ctx {
            engine: self,
            host,
            opts,
            graph,
            file,
            context,
            ignore,
            work: work.clone(),
            counter: Default::default(),
            stats: Mutex::new((0, 0, 0)),
            cache_locks: Mutex::new(Vec::new()),
        };
        let result = cx.run_plan(&plan);
        let _ = berth_image::remove_all(&work);
        let id = result.and_then(|done| {
            let target = done
                .get(&plan.target)
                .cloned()
                .ok_or_else(|| BuildError::Invalid("the target stage was not built".into()))?;
            cx.finish(target)
        });
        let prefix = cx.hold_prefix();
        for h in self.images.holders().unwrap_or_default() {
            if h.starts_with(&prefix) {
                let _ = self.images.release(&h);
            }
        }
        let id = id?;
        let (ran, cached, containers) = *cx.stats.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Built {
            id,
            ran,
            cached,
            containers,
        })
    }

    /// The build cache for `system df`: its entries and cache mounts
    /// (count) and the bytes they take (not the images the entries name:
    /// those are counted as images).
    pub fn build_cache_usage(&self) -> (usize, u64) {
        let (cache, mounts) = (
            cache_dir(&self.paths.root),
            cache_mounts_dir(&self.paths.root),
        );
        let count = |d: &Path| std::fs::read_dir(d).map(|d| d.count()).unwrap_or(0);
        (
            count(&cache) + count(&mounts),
            crate::system::disk_usage(&cache) + crate::system::disk_usage(&mounts),
        )
    }

    /// `berth builder prune`: forgets the build cache and the cache mounts
    /// no running build uses (each is removed under its exclusive lock; a
    /// build holds the ones it uses locked shared, see [`lock_cache_mount`]).
    /// Returns the names of the cache entries that went and the bytes
    /// freed (the entries and the cache mounts removed, measured as
    /// `system df` measures them). The images the entries named stay
    /// until `image prune` (they are dangling unless tagged).
    pub fn builder_prune(&self) -> crate::Result<(Vec<String>, u64)> {
        let dir = cache_dir(&self.paths.root);
        let n: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let mut bytes = crate::system::disk_usage(&dir);
        berth_image::remove_all(&dir)?;
        let mounts = cache_mounts_dir(&self.paths.root);
        for e in std::fs::read_dir(&mounts).into_iter().flatten().flatten() {
            let p = e.path();
            let fd = match sfs::open(
                &p,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0,
            ) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                // Not a directory: not a cache mount, nothing locks it.
                Err(_) => {
                    berth_image::remove_all(&p)?;
                    continue;
                }
            };
            let locked = sfs::flock(fd.as_fd(), true, true).map_err(|e| crate::Error::Io {
                op: format!("lock the cache mount {}", p.display()),
                cause: e,
            })?;
            if locked {
                bytes += crate::system::disk_usage(&p);
                berth_image::remove_all(&p)?;
            }
        }
        // Gone when empty (a build makes it again, see lock_cache_mount).
        let _ = std::fs::remove_dir(&mounts);
        Ok((n, bytes))
    }
}

/// The label on a RUN step's container: its build's work directory's
/// name (`run-PID-ID`), by which the container of a killed build is found.
const STEP_LABEL: &str = "berth.build.run";

/// The holders of a build's images: `build:run-PID-ID:STAGE`.
const HOLD_PREFIX: &str = "build:";

/// Whether the work directory named `name` (`run-PID-ID`) is of a build
/// whose process is gone.
fn run_is_stale(name: &str) -> bool {
    name.strip_prefix("run-")
        .and_then(|r| r.split('-').next())
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

impl Engine {
    /// Removes the RUN steps' containers of builds killed (-9) mid-step
    /// (still running, or exited).
    fn remove_stale_step_containers(&self) {
        let Ok(list) = self.list() else {
            return;
        };
        for c in list {
            if c.spec
                .metadata
                .labels
                .get(STEP_LABEL)
                .is_some_and(|r| run_is_stale(r))
            {
                let _ = self.remove(&c.id, true, true);
            }
        }
        for h in self.images.holders().unwrap_or_default() {
            let run = h
                .strip_prefix(HOLD_PREFIX)
                .and_then(|r| r.split(':').next());
            if run.is_some_and(run_is_stale) {
                let _ = self.images.release(&h);
            }
        }
    }
}

/// Removes what builds killed (-9) left: their directories `run-PID-ID`
/// whose process is gone, with any overlay still mounted there.
fn clean_stale_runs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("run-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(steps) = std::fs::read_dir(e.path()) {
            for s in steps.flatten() {
                let _ = crate::rootfs::unmount(&s.path().join("root"));
            }
        }
        let _ = berth_image::remove_all(&e.path());
    }
}

/// Makes the cache mount directory `dir` if it is missing and locks it
/// shared for as long as the returned fd is open (a kill -9 of the build
/// ends the lock with it). `builder prune` removes a directory only under
/// its exclusive lock, so the directory locked is checked to be still the
/// one at `dir` (else made again).
fn lock_cache_mount(dir: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..100 {
        std::fs::create_dir_all(dir)?;
        let fd = match sfs::open(
            dir,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            r => r?,
        };
        sfs::flock(fd.as_fd(), false, false)?;
        let held = sfs::fstat(fd.as_fd())?;
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.dev() == held.st_dev && m.ino() == held.st_ino => return Ok(fd),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "removed again and again while this build made it (a prune running in a loop?)",
    ))
}

fn parse_limit() -> usize {
    berth_build::limits::MAX_DOCKERFILE
}

/// Reads `name` inside the directory `root` (by fd, never leaving it), at
/// most `limit` bytes; None if it does not exist.
fn read_in(
    root: Option<std::os::fd::BorrowedFd<'_>>,
    name: &str,
    limit: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let Some(root) = root else {
        return Ok(None);
    };
    match sfs::open_in_root(
        root,
        Path::new(name),
        libc::O_RDONLY | libc::O_CLOEXEC,
        Links::InRoot,
    ) {
        Ok(fd) => {
            let mut out = Vec::new();
            std::fs::File::from(fd)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)?;
            if out.len() > limit {
                return Err(std::io::Error::other(format!("larger than {limit} bytes")));
            }
            Ok(Some(out))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A stage being built.
struct StageRun {
    name: String,
    image: Option<Digest>,
    /// The image config document (an object), its `config` kept in `cfg`.
    config: Value,
    cfg: Map<String, Value>,
    key: String,
    scope: StageScope,
    /// CMD set in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
    /// Whether the image holds the config (no config-only step since).
    image_current: bool,
}

impl StageRun {
    /// Takes an image's config document (an object: [`Ctx::base_config`]).
    fn set_doc(&mut self, doc: Value) {
        self.cfg = doc["config"].as_object().cloned().unwrap_or_default();
        self.config = doc;
    }
    /// The config document with the config made so far.
    fn doc(&self) -> Value {
        let mut d = self.config.clone();
        d["config"] = Value::Object(self.cfg.clone());
        d
    }
    fn workdir(&self) -> String {
        self.cfg
            .get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string()
    }
    fn shell(&self) -> Vec<String> {
        self.cfg
            .get("Shell")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .filter(|v: &Vec<String>| !v.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }
}

fn env_pairs(config: &Value) -> Vec<(String, String)> {
    config["config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (kv.to_string(), String::new()),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `/a/./b/../c/` -> `/a/c`.
fn clean_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn join_workdir(workdir: &str, p: &str) -> String {
    if p.starts_with('/') {
        clean_abs(p)
    } else {
        clean_abs(&format!("{workdir}/{p}"))
    }
}

impl Ctx<'_> {
    fn next_dir(&self, what: &str) -> PathBuf {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.work.join(format!("{what}-{n}"))
    }

    fn count(&self, ran: bool, container: bool) {
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if ran {
            s.0 += 1;
        } else {
            s.1 += 1;
        }
        if container {
            s.2 += 1;
        }
    }

    /// Runs the plan's stages, each on its own thread as soon as the
    /// stages it needs are done.
    fn run_plan(&self, plan: &berth_build::graph::Plan) -> BResult<HashMap<StageId, StageResult>> {
        let done: Mutex<HashMap<StageId, StageResult>> = Mutex::new(HashMap::new());
        let failed: Mutex<Option<BuildError>> = Mutex::new(None);
        let (tx, rx) = std::sync::mpsc::channel::<StageId>();
        std::thread::scope(|scope| {
            let mut started: HashSet<StageId> = HashSet::new();
            let mut finished: HashSet<StageId> = HashSet::new();
            let mut running = 0usize;
            loop {
                if failed.lock().map(|f| f.is_none()).unwrap_or(false) {
                    for s in plan.ready(&finished) {
                        if started.insert(s) {
                            running += 1;
                            let tx = tx.clone();
                            let (done, failed) = (&done, &failed);
                            scope.spawn(move || {
                                let deps = done.lock().map(|d| d.clone()).unwrap_or_default();
                                match self.run_stage(s, &deps) {
                                    Ok(r) => {
                                        if let Ok(mut d) = done.lock() {
                                            d.insert(s, r);
                                        }
                                    }
                                    Err(e) => {
                                        if let Ok(mut f) = failed.lock() {
                                            f.get_or_insert(e);
                                        }
                                    }
                                }
                                let _ = tx.send(s);
                            });
                        }
                    }
                }
                if running == 0 {
                    break;
                }
                match rx.recv() {
                    Ok(s) => {
                        running -= 1;
                        if done.lock().map(|d| d.contains_key(&s)).unwrap_or(false) {
                            finished.insert(s);
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        Ok(done.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    /// Stops the build here if its host no longer wants it.
    fn cancel_point(&self) -> BResult<()> {
        if self.host.cancelled() {
            return Err(BuildError::Cancelled);
        }
        Ok(())
    }

    fn step_err(&self, ins: &Instruction, msg: impl Into<String>) -> BuildError {
        BuildError::Step {
            file: self.file.clone(),
            line: ins.pos.line,
            step: ins.kind.name().to_string(),
            msg: msg.into(),
        }
    }

    fn cache_get(&self, key: &str) -> Option<Digest> {
        if self.opts.no_cache {
            return None;
        }
        let text = std::fs::read_to_string(cache_dir(&self.engine.paths.root).join(key)).ok()?;
        let id = Digest::parse(text.trim()).ok()?;
        self.engine.images.resolve_id(&id.to_string()).ok()
    }

    /// [`Ctx::cache_get`] for a step that makes a layer: the image found
    /// must also have its top layer compressed as this build compresses
    /// (an image id names a config, which does not say how the layers
    /// are compressed: a build with the other `--compression` that gave
    /// the same config recorded the image with its own layers).
    fn cache_get_layer(&self, key: &str) -> Option<Digest> {
        let id = self.cache_get(key)?;
        let img = self.engine.images.resolve(&id.to_string()).ok()?;
        let m: Value = serde_json::from_slice(
            &self
                .engine
                .images
                .read_blob(&img.manifest_digest, 4 << 20)
                .ok()?,
        )
        .ok()?;
        let top = m["layers"].as_array()?.last()?["mediaType"].as_str()?;
        let zstd = top.contains("zstd");
        (zstd == (self.opts.compression == LayerCompression::Zstd)).then_some(id)
    }

    fn cache_put(&self, key: &str, id: &Digest) {
        let dir = cache_dir(&self.engine.paths.root);
        let _ = std::fs::create_dir_all(&dir);
        // Not synced: a hint, checked when read (an entry lost or cut by a
        // power loss reruns its step; one naming a missing image is a
        // miss), so a step does not pay two fsyncs for it.
        let _ = sfs::replace_file(&dir.join(key), id.to_string().as_bytes(), 0o600);
    }

    /// The image's config, or a fresh one for scratch.
    fn base_config(&self, image: Option<&Digest>) -> BResult<Value> {
        match image {
            Some(id) => {
                let mut c = ic::image_config(&self.engine.images, id)?;
                let Some(o) = c.as_object_mut() else {
                    return Err(BuildError::Invalid(format!(
                        "image {id}: its config is not a JSON object; rebuild or pull it again"
                    )));
                };
                o.remove("container");
                o.remove("container_config");
                if o.get("config").is_some_and(|v| !v.is_object()) {
                    o.insert("config".into(), json!({}));
                }
                if o.get("history").is_some_and(|v| !v.is_array()) {
                    o.remove("history");
                }
                Ok(c)
            }
            None => {
                let p = Platform::native();
                let mut c = json!({
                    "architecture": p.arch,
                    "os": p.os,
                    "config": {},
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "history": [],
                });
                if !p.variant.is_empty() {
                    c["variant"] = json!(p.variant);
                }
                Ok(c)
            }
        }
    }

    fn run_stage(&self, id: StageId, deps: &HashMap<StageId, StageResult>) -> BResult<StageResult> {
        let stage = &self.graph.stages[id.0];
        let name = stage
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", id.0));
        let from_ins = Instruction {
            pos: stage.pos,
            end_line: stage.pos.line,
            original: String::new(),
            kind: Kind::From(stage.from.clone()),
        };
        let (image, config) = match &stage.base {
            Base::Scratch => (None, self.base_config(None)?),
            Base::Stage(s) => {
                let r = deps
                    .get(s)
                    .ok_or_else(|| self.step_err(&from_ins, "its base stage was not built"))?;
                (r.image.clone(), r.config.clone())
            }
            Base::Image(i) => {
                self.host.progress(&format!("[{name}] FROM {i}"));
                let i = match self.opts.contexts.get(i) {
                    Some(NamedContext::Image(r)) => r,
                    Some(NamedContext::Dir(d)) => {
                        return Err(self.step_err(
                            &from_ins,
                            format!(
                                "build context {i} is a directory ({}): FROM takes an image (give {i}=docker-image://REF)",
                                d.display()
                            ),
                        ))
                    }
                    None => i,
                };
                let d = self
                    .host
                    .base_image(i)
                    .map_err(|m| self.step_err(&from_ins, m))?;
                (Some(d.clone()), self.base_config(Some(&d))?)
            }
        };
        let mut config = config;
        // A base without PATH gets the default one, as BuildKit and
        // buildah give it (in the image's config too).
        if !env_pairs(&config).iter().any(|(k, _)| k == "PATH") {
            let mut env = config["config"]["Env"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            env.push(json!(format!("PATH={DEFAULT_PATH}")));
            if !config["config"].is_object() {
                config["config"] = json!({});
            }
            config["config"]["Env"] = Value::Array(env);
        }
        let key = {
            let mut h = Sha256::new();
            h.update(b"from\0");
            match &image {
                Some(d) => h.update(d.to_string()),
                None => h.update(b"scratch"),
            }
            // The config given by a stage base (which may differ from its
            // image's when it ended on config-only steps).
            h.update(serde_json::to_vec(&config["config"]).unwrap_or_default());
            // The layers a step makes are compressed as --compression says
            // and recorded in --format's manifest: a build with another
            // one must not take them.
            h.update(format!("\0{:?}\0{:?}", self.opts.compression, self.opts.format).as_bytes());
            hex(h)
        };
        let base = image.clone();
        let mut st = StageRun {
            name: name.clone(),
            scope: StageScope::new(env_pairs(&config)),
            image,
            cfg: config["config"].as_object().cloned().unwrap_or_default(),
            config,
            key,
            cmd_set: false,
            image_current: true,
        };
        // The base image's ONBUILD triggers run first, as Docker runs
        // them, and are not passed on.
        let triggers: Vec<String> = st
            .cfg
            .remove("OnBuild")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        for t in &triggers {
            let df = parse::parse("ONBUILD", t.as_bytes()).map_err(|e| {
                self.step_err(
                    &from_ins,
                    format!("the base image's ONBUILD trigger {t:?}: {e}"),
                )
            })?;
            for ins in &df.instructions {
                if matches!(ins.kind, Kind::From(_) | Kind::Onbuild(_)) {
                    return Err(self.step_err(
                        &from_ins,
                        format!("the base image's ONBUILD trigger {t:?}: {} is not allowed in a trigger", ins.kind.name()),
                    ));
                }
                self.cancel_point()?;
                self.step(&mut st, id, ins, deps)?;
                self.hold(&st.name, st.image.as_ref());
            }
        }
        for ins in &stage.instructions {
            self.cancel_point()?;
            self.step(&mut st, id, ins, deps)?;
            self.hold(&st.name, st.image.as_ref());
        }
        // The stage's end: an image holding the config.
        if !st.image_current || st.image.is_none() {
            let mut h = Sha256::new();
            h.update(st.key.as_bytes());
            h.update(b"\0end");
            let key = hex(h);
            let id = match self.cache_get(&key) {
                Some(id) => id,
                None => {
                    let mut store = crate::containers::open_store(&self.engine.paths.root)?;
                    let _pull = store.pull_lock()?;
                    let id = ic::record_image_with(
                        &mut store,
                        st.image.as_ref(),
                        st.doc(),
                        None,
                        self.opts.format,
                        None,
                    )?;
                    self.cache_put(&key, &id);
                    id
                }
            };
            st.image = Some(id);
        }
        self.hold(&st.name, st.image.as_ref());
        Ok(StageResult {
            config: st.doc(),
            image: st.image,
            base,
        })
    }

    /// One instruction of a stage.
    fn step(
        &self,
        st: &mut StageRun,
        stage: StageId,
        ins: &Instruction,
        deps: &HashMap<StageId, StageResult>,
    ) -> BResult<()> {
        let lookup = |k: &str| st.scope.lookup(k);
        let x = expand_instruction(ins, self.graph.escape, &lookup)
            .map_err(|e| self.step_err(ins, e.0))?;
        let kind = x.instruction.kind.clone();
        st.scope.apply(&self.graph, &x.instruction);
        let now = rfc3339(self.opts.timestamp);
        let mut h = Sha256::new();
        h.update(st.key.as_bytes());
        h.update(b"\0");
        h.update(format!("{kind:?}").as_bytes());
        let created_by = match &kind {
            Kind::Run(_) | Kind::Copy(_) | Kind::Add(_) => format!("{} # buildkit", ins.original),
            _ => ins.original.clone(),
        };
        let history = |empty: bool| {
            let mut e = json!({"created": now, "created_by": created_by, "comment": "buildkit.dockerfile.v0"});
            if empty {
                e["empty_layer"] = json!(true);
            }
            e
        };
        match &kind {
            Kind::Run(run) => {
                let env = st.scope.run_env(&self.graph);
                for (k, v) in st.scope.args_for_key(None) {
                    h.update(format!("\0arg {k}={v:?}").as_bytes());
                }
                for (k, v) in &env {
                    h.update(format!("\0env {k}={v}").as_bytes());
                }
                h.update(format!("\0net {:?}", self.opts.network).as_bytes());
                h.update(format!("\0user {:?}", st.cfg.get("User")).as_bytes());
                h.update(format!("\0wd {}", st.workdir()).as_bytes());
                // Bind mounts: the content of what they bind from the
                // context (a stage's or image's id names its own).
                let mut binds = Vec::new();
                for m in run.mounts.iter().filter(|m| m.kind == MountType::Bind) {
                    let from = self.source_of(stage, m.from.as_ref(), deps, ins)?;
                    match &from {
                        FromSrc::Image(d, _) => h.update(format!("\0bind-from {d:?}").as_bytes()),
                        FromSrc::Named(n) => h.update(format!("\0bind-from {n:?}").as_bytes()),
                        FromSrc::Context => {}
                    }
                    let root = self.source_root(&from, ins)?;
                    let src = m.source.clone().unwrap_or_else(|| ".".into());
                    let chosen = self
                        .tree(&root, &from)
                        .choose(&src)
                        .map_err(|e| self.step_err(ins, format!("--mount=type=bind: {e}")))?;
                    if from.is_dir() {
                        let tree = self.tree(&root, &from);
                        for c in &chosen {
                            tree.hash(c, &mut h).map_err(|e| self.step_err(ins, e))?;
                        }
                    }
                    binds.push((m, from, root, chosen));
                }
                let key = hex(h);
                st.key = key.clone();
                self.host
                    .progress(&format!("[{}] {}", st.name, ins.original));
                if let Some(img) = self.cache_get_layer(&key) {
                    self.host.progress(&format!("[{}] CACHED", st.name));
                    self.count(false, false);
                    st.set_doc(self.base_config(Some(&img))?);
                    st.image = Some(img);
                    st.image_current = true;
                    return Ok(());
                }
                let argv = run_argv(st, run);
                let mut c = st.doc();
                push_history(&mut c, history(false));
                c["created"] = json!(now);
                let mut bound = Vec::new();
                let mut scratch = Vec::new();
                for (m, from, root, chosen) in &binds {
                    let (mount, dir) =
                        self.bind_mount(st, ins, m, &self.tree(root, from), chosen)?;
                    bound.push(mount);
                    scratch.push(dir);
                }
                drop(binds);
                let img = self.run_container(st, ins, run, argv, env, c, bound);
                for d in scratch {
                    let _ = berth_image::remove_all(&d);
                }
                let img = img?;
                self.count(true, true);
                self.cache_put(&key, &img);
                st.set_doc(self.base_config(Some(&img))?);
                st.image = Some(img);
                st.image_current = true;
            }
            Kind::Copy(c) | Kind::Add(c) => {
                let add = matches!(kind, Kind::Add(_));
                for (k, v) in st.scope.args_for_key(Some(&x.used)) {
                    h.update(format!("\0arg {k}={v:?}").as_bytes());
                }
                h.update(format!("\0wd {}", st.workdir()).as_bytes());
                let is_url = |p: &str| p.starts_with("http://") || p.starts_with("https://");
                let urls: Vec<&str> = c
                    .sources
                    .iter()
                    .filter_map(|s| match s {
                        SourceItem::Path(p) if add && is_url(p) => Some(p.as_str()),
                        _ => None,
                    })
                    .collect();
                if !urls.is_empty() {
                    return self.add_urls(
                        st,
                        stage,
                        deps,
                        ins,
                        c,
                        &urls,
                        h,
                        now.clone(),
                        history(false),
                    );
                }
                if c.checksum.is_some() {
                    return Err(self.step_err(ins, "--checksum is for ADD of an http(s) URL"));
                }
                self.host
                    .progress(&format!("[{}] {}", st.name, ins.original));
                let from = self.copy_from(stage, c, deps, ins)?;
                match &from {
                    FromSrc::Image(d, _) => h.update(format!("\0from {d:?}").as_bytes()),
                    FromSrc::Named(n) => h.update(format!("\0from-context {n:?}").as_bytes()),
                    FromSrc::Context => {}
                }
                // The content: from the context, each source chosen and
                // hashed; from a stage or an image, its id (which names
                // its content) with the sources as written is the key, and
                // the image is mounted only when the step runs.
                let mut pre = None;
                if from.is_dir() {
                    let root = self.source_root(&from, ins)?;
                    let chosen = self.choose_all(&self.tree(&root, &from), c, ins, Some(&mut h))?;
                    pre = Some((root, chosen));
                }
                let key = hex(h);
                st.key = key.clone();
                if let Some(img) = self.cache_get_layer(&key) {
                    self.host.progress(&format!("[{}] CACHED", st.name));
                    self.count(false, false);
                    st.set_doc(self.base_config(Some(&img))?);
                    st.image = Some(img);
                    st.image_current = true;
                    return Ok(());
                }
                let mut cfg = st.doc();
                push_history(&mut cfg, history(false));
                cfg["created"] = json!(now);
                let (root, chosen) = match pre {
                    Some(x) => x,
                    None => {
                        let root = self.source_root(&from, ins)?;
                        let chosen = self.choose_all(&self.tree(&root, &from), c, ins, None)?;
                        (root, chosen)
                    }
                };
                let tree = self.tree(&root, &from);
                let group = CopyGroup {
                    tree: &tree,
                    chosen: &chosen,
                    // ADD unpacks local archives, not those of a stage or image.
                    unpack: add && from.is_dir(),
                };
                let img = self.copy_step(st, ins, c, &[group], !from.is_dir(), cfg)?;
                self.count(true, false);
                self.cache_put(&key, &img);
                st.set_doc(self.base_config(Some(&img))?);
                st.image = Some(img);
                st.image_current = true;
            }
            Kind::Arg(_) => {
                // Keyed by the values (a changed build arg changes the
                // steps after it that use it, through their own keys).
                st.key = hex(h);
            }
            Kind::From(_) => {}
            Kind::Workdir(_) => {
                // The directory is made if the image lacks it, owned by
                // the USER, as BuildKit and buildah make it: a layer.
                apply_config(st, &kind, ins, &self.graph);
                h.update(format!("\0user {:?}", st.cfg.get("User")).as_bytes());
                let key = hex(h);
                st.key = key.clone();
                if let Some(img) = self.cache_get_layer(&key) {
                    self.count(false, false);
                    let cfg = st.cfg.clone();
                    st.set_doc(self.base_config(Some(&img))?);
                    st.cfg = cfg;
                    st.image = Some(img);
                    st.image_current = false;
                    return Ok(());
                }
                let mut cfg = st.doc();
                push_history(&mut cfg, history(false));
                cfg["created"] = json!(now);
                match self.workdir_layer(st, ins, cfg)? {
                    Some(img) => {
                        self.count(true, false);
                        self.cache_put(&key, &img);
                        st.set_doc(self.base_config(Some(&img))?);
                        st.image = Some(img);
                        st.image_current = true;
                    }
                    None => {
                        push_history(&mut st.config, history(true));
                        st.config["created"] = json!(now);
                        st.image_current = false;
                    }
                }
            }
            _ => {
                apply_config(st, &kind, ins, &self.graph);
                push_history(&mut st.config, history(true));
                st.config["created"] = json!(now);
                st.key = hex(h);
                st.image_current = false;
            }
        }
        Ok(())
    }

    /// WORKDIR's directory made in a new layer, or None when the image
    /// has it.
    fn workdir_layer(
        &self,
        st: &StageRun,
        ins: &Instruction,
        config: Value,
    ) -> BResult<Option<Digest>> {
        let wd = st.workdir();
        let ov = self.mount(st.image.as_ref(), "workdir")?;
        let made = (|| -> BResult<bool> {
            let root = ov.fd();
            let exists = |q: &str| {
                sfs::open_in_root(
                    root,
                    Path::new(q),
                    libc::O_PATH | libc::O_CLOEXEC,
                    Links::InRoot,
                )
                .is_ok()
            };
            if exists(&wd) {
                return Ok(false);
            }
            let owner = match st.cfg.get("User").and_then(Value::as_str) {
                Some(u) if !u.is_empty() => {
                    let u = crate::user::resolve_in(root, u, &[])
                        .map_err(|e| self.step_err(ins, format!("USER: {e}")))?;
                    Some((u.uid, u.gid))
                }
                _ => None,
            };
            let mut made = Vec::new();
            let mut q = String::new();
            for c in wd.split('/').filter(|c| !c.is_empty()) {
                q = format!("{q}/{c}");
                if !exists(&q) {
                    made.push(q.clone());
                }
            }
            sfs::mkdir_all_in_root(root, Path::new(&wd), Links::InRoot)
                .map_err(|e| self.step_err(ins, format!("create {wd}: {e}")))?;
            if let Some((u, g)) = owner {
                for m in made {
                    sfs::open_in_root(
                        root,
                        Path::new(&m),
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                        Links::InRoot,
                    )
                    .and_then(|d| sfs::fchown_fd(d.as_fd(), u, g))
                    .map_err(|e| self.step_err(ins, format!("chown {m}: {e}")))?;
                }
            }
            Ok(true)
        })();
        let upper = ov.dir.join("upper");
        let unmounted = ov.unmount();
        let made = made?;
        unmounted?;
        if !made {
            return Ok(None);
        }
        Ok(Some(self.layer_image(
            st.image.as_ref(),
            &upper,
            config,
            None,
            Upper::Take,
        )?))
    }

    /// The tree sources are chosen from.
    fn tree<'a>(&'a self, root: &'a SrcRoot, from: &FromSrc) -> SourceTree<'a> {
        SourceTree {
            root: root.fd(),
            ignore: match from {
                FromSrc::Context => Some(&self.ignore),
                _ => None,
            },
            what: match from {
                FromSrc::Image(_, w) => w.clone(),
                FromSrc::Named(n) => format!("the build context {n}"),
                FromSrc::Context => "the build context".into(),
            },
        }
    }

    /// The sources of a COPY/ADD chosen in `tree`, hashed into `h` if given.
    fn choose_all(
        &self,
        tree: &SourceTree<'_>,
        c: &CopyArgs,
        ins: &Instruction,
        mut h: Option<&mut Sha256>,
    ) -> BResult<Vec<bc::Chosen>> {
        let mut chosen = Vec::new();
        for s in &c.sources {
            let SourceItem::Path(p) = s else {
                continue;
            };
            for g in tree.choose(p).map_err(|m| self.step_err(ins, m))? {
                if let Some(h) = h.as_deref_mut() {
                    tree.hash(&g, h).map_err(|m| self.step_err(ins, m))?;
                }
                chosen.push(g);
            }
        }
        Ok(chosen)
    }

    /// `ADD URL... DEST`: each URL downloaded (every build: its content
    /// keys the cache; checked against `--checksum` if given) into a
    /// scratch directory, mode 0600 as Docker gives it, and copied from
    /// there as COPY copies (never unpacked).
    #[allow(clippy::too_many_arguments)]
    fn add_urls(
        &self,
        st: &mut StageRun,
        stage: StageId,
        deps: &HashMap<StageId, StageResult>,
        ins: &Instruction,
        c: &CopyArgs,
        urls: &[&str],
        mut h: Sha256,
        now: String,
        hist: Value,
    ) -> BResult<()> {
        if c.from.is_some() {
            return Err(self.step_err(
                ins,
                "ADD of a URL takes no --from (a URL is not read from a stage or image)",
            ));
        }
        let checksum = match &c.checksum {
            Some(_) if urls.len() > 1 => {
                return Err(self.step_err(ins, "--checksum takes one URL"));
            }
            Some(cs) => Some(Digest::parse(cs).map_err(|e| {
                self.step_err(ins, format!("--checksum={cs}: {e} (give sha256:HEX)"))
            })?),
            None => None,
        };
        self.host
            .progress(&format!("[{}] {}", st.name, ins.original));
        let dir = self.next_dir("url");
        let result = (|| -> BResult<()> {
            sfs::create_private_dir_all(&dir)
                .map_err(|e| self.step_err(ins, format!("create {}: {e}", dir.display())))?;
            let mut names = Vec::new();
            for url in urls {
                let path = url.split(['?', '#']).next().unwrap_or_default();
                let name = path
                    .splitn(4, '/')
                    .nth(3)
                    .and_then(|p| p.rsplit('/').find(|c| !c.is_empty()))
                    .filter(|n| *n != "." && *n != "..")
                    .unwrap_or("download")
                    .to_string();
                if names.contains(&name) {
                    return Err(
                        self.step_err(ins, format!("{url}: a second download named {name:?}"))
                    );
                }
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(dir.join(&name))
                    .map_err(|e| self.step_err(ins, format!("{url}: create: {e}")))?;
                let got = berth_image::fetch::fetch(url, &mut f, MAX_DOWNLOAD, checksum.as_ref())
                    .map_err(|e| self.step_err(ins, e.to_string()))?;
                h.update(format!("\0url {url} {}", got.digest).as_bytes());
                names.push(name);
            }
            // The other sources: from the context, chosen and hashed as
            // COPY's are (its ignore file applies).
            let mut local = None;
            if urls.len()
                < c.sources
                    .iter()
                    .filter(|s| matches!(s, SourceItem::Path(_)))
                    .count()
            {
                let mut rest = c.clone();
                rest.sources
                    .retain(|s| !matches!(s, SourceItem::Path(p) if urls.contains(&p.as_str())));
                let from = self.source_of(stage, None, deps, ins)?;
                let root = self.source_root(&from, ins)?;
                let chosen = self.choose_all(&self.tree(&root, &from), &rest, ins, Some(&mut h))?;
                local = Some((root, chosen));
            }
            let key = hex(h);
            st.key = key.clone();
            if let Some(img) = self.cache_get_layer(&key) {
                self.host.progress(&format!("[{}] CACHED", st.name));
                self.count(false, false);
                st.set_doc(self.base_config(Some(&img))?);
                st.image = Some(img);
                st.image_current = true;
                return Ok(());
            }
            let root = SrcRoot::Context(
                sfs::open(&dir, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
                    .map_err(|e| self.step_err(ins, format!("open {}: {e}", dir.display())))?,
            );
            let tree = SourceTree {
                root: root.fd(),
                ignore: None,
                what: "the download".into(),
            };
            let mut chosen = Vec::new();
            for n in &names {
                chosen.extend(tree.choose(n).map_err(|m| self.step_err(ins, m))?);
            }
            let mut cfg = st.doc();
            push_history(&mut cfg, hist);
            cfg["created"] = json!(now);
            let mut groups = vec![CopyGroup {
                tree: &tree,
                chosen: &chosen,
                unpack: false,
            }];
            let local_tree = local
                .as_ref()
                .map(|(root, _)| self.tree(root, &FromSrc::Context));
            if let (Some((_, chosen)), Some(tree)) = (&local, &local_tree) {
                groups.push(CopyGroup {
                    tree,
                    chosen,
                    unpack: true,
                });
            }
            let img = self.copy_step(st, ins, c, &groups, false, cfg)?;
            self.count(true, false);
            self.cache_put(&key, &img);
            st.set_doc(self.base_config(Some(&img))?);
            st.image = Some(img);
            st.image_current = true;
            Ok(())
        })();
        let _ = berth_image::remove_all(&dir);
        result
    }

    /// `COPY --from`: the stage's image id or the image, with a name for
    /// messages; None: the context.
    fn copy_from(
        &self,
        stage: StageId,
        c: &CopyArgs,
        deps: &HashMap<StageId, StageResult>,
        ins: &Instruction,
    ) -> BResult<FromSrc> {
        self.source_of(stage, c.from.as_ref(), deps, ins)
    }

    /// A `from=` (of COPY or of a RUN mount): the stage's image id or the
    /// image, with a name for messages; None: the context.
    fn source_of(
        &self,
        stage: StageId,
        from: Option<&String>,
        deps: &HashMap<StageId, StageResult>,
        ins: &Instruction,
    ) -> BResult<FromSrc> {
        let Some(f) = from else {
            if self.context.is_none() {
                return Err(self.step_err(
                    ins,
                    "no build context (the Dockerfile came from stdin): give a context directory",
                ));
            }
            return Ok(FromSrc::Context);
        };
        match self
            .graph
            .source(stage, f, true)
            .map_err(|m| self.step_err(ins, m))?
        {
            Source::Stage(s) => {
                let r = deps
                    .get(&s)
                    .ok_or_else(|| self.step_err(ins, format!("stage {f}: not built")))?;
                Ok(FromSrc::Image(r.image.clone(), format!("stage {f}")))
            }
            Source::Image(i) => match self.opts.contexts.get(&i) {
                Some(NamedContext::Dir(_)) => Ok(FromSrc::Named(i)),
                Some(NamedContext::Image(r)) => {
                    let d = self.host.base_image(r).map_err(|m| self.step_err(ins, m))?;
                    Ok(FromSrc::Image(Some(d), format!("image {r} (context {i})")))
                }
                None => {
                    let d = self
                        .host
                        .base_image(&i)
                        .map_err(|m| self.step_err(ins, m))?;
                    Ok(FromSrc::Image(Some(d), format!("image {i}")))
                }
            },
        }
    }

    /// The root sources are read from: the context, or an image's layers
    /// mounted read-only.
    fn source_root(&self, from: &FromSrc, ins: &Instruction) -> BResult<SrcRoot> {
        match from {
            FromSrc::Named(n) => {
                let Some(NamedContext::Dir(d)) = self.opts.contexts.get(n) else {
                    return Err(self.step_err(ins, format!("build context {n}: not a directory")));
                };
                let fd = sfs::open(d, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
                    .map_err(|e| {
                        self.step_err(
                            ins,
                            format!("build context {n} ({}): open: {e}", d.display()),
                        )
                    })?;
                Ok(SrcRoot::Context(fd))
            }
            FromSrc::Context => {
                let fd = self
                    .context
                    .as_ref()
                    .ok_or_else(|| self.step_err(ins, "no build context"))?;
                Ok(SrcRoot::Context(
                    fd.try_clone()
                        .map_err(|e| self.step_err(ins, format!("dup: {e}")))?,
                ))
            }
            FromSrc::Image(img, _) => {
                let m = self.mount(img.as_ref(), "src")?;
                Ok(SrcRoot::Mounted(m))
            }
        }
    }

    /// The image's layers mounted as an overlay on a fresh upper dir.
    fn mount(&self, image: Option<&Digest>, what: &str) -> BResult<Overlay> {
        let dir = self.next_dir(what);
        for d in ["upper", "work", "root"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| {
                BuildError::Invalid(format!("create {}: {e}", dir.join(d).display()))
            })?;
        }
        let layers: Vec<PathBuf> = match image {
            Some(i) => self
                .engine
                .images
                .image_layers(i)?
                .iter()
                .map(|c| self.engine.images.layer_dir(c))
                .collect(),
            None => vec![],
        };
        let empty = self.engine.paths.root.join("empty");
        let _ = std::fs::create_dir_all(&empty);
        let target = dir.join("root");
        crate::rootfs::mount(&layers, &dir, &target, &empty, true)?;
        let root = sfs::open(
            &target,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        )
        .map_err(|e| BuildError::Invalid(format!("open {}: {e}", target.display())));
        let root = match root {
            Ok(r) => r,
            Err(e) => {
                let _ = crate::rootfs::unmount(&target);
                return Err(e);
            }
        };
        Ok(Overlay {
            root,
            dir,
            keep: false,
        })
    }

    /// The new image: `dir`'s upper directory as a layer over `base`.
    /// `Take`: the directory (no longer mounted, its own inodes, needed by
    /// no one after) becomes the stored layer ([`layer::adopt_layer`]);
    /// `Copy`: it is read and unpacked into the store (a squash's tree
    /// shares its inodes with stored layers).
    fn layer_image(
        &self,
        base: Option<&Digest>,
        upper: &Path,
        config: Value,
        id_maps: Option<layer::IdMaps>,
        how: Upper,
    ) -> BResult<Digest> {
        let parent: Vec<Digest> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().and_then(|s| Digest::parse(s).ok()))
                    .collect()
            })
            .unwrap_or_default();
        let mut store = crate::containers::open_store(&self.engine.paths.root)?;
        let _pull = store.pull_lock()?;
        let opts = TarOptions {
            overlay: true,
            clamp_mtime: self.opts.timestamp,
            id_maps,
        };
        let (new, chain) = match how {
            Upper::Take => {
                layer::adopt_layer(&store, upper, &opts, self.opts.compression, &parent)?
            }
            Upper::Copy => {
                let fd = sfs::open(
                    upper,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    0,
                )
                .map_err(|e| BuildError::Invalid(format!("open {}: {e}", upper.display())))?;
                layer::store_new_layer(&store, fd.as_fd(), &opts, self.opts.compression, &parent)?
            }
        };
        Ok(ic::record_image_with(
            &mut store,
            base,
            config,
            Some((&new, &chain)),
            self.opts.format,
            None,
        )?)
    }

    /// A RUN step's container, run to its end and made an image.
    #[allow(clippy::too_many_arguments)]
    fn run_container(
        &self,
        st: &StageRun,
        ins: &Instruction,
        run: &parse::Run,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        config: Value,
        binds: Vec<crate::specgen::Mount>,
    ) -> BResult<Digest> {
        let image = st.image.clone().ok_or_else(|| {
            self.step_err(
                ins,
                "a stage FROM scratch has no shell or programs to run: COPY them in first",
            )
        })?;
        let mut flags = CreateFlags {
            entrypoint: Some(String::new()),
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            workdir: Some(st.workdir()),
            user: st
                .cfg
                .get("User")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
                .map(str::to_string),
            log_driver: Some("none".into()),
            ..Default::default()
        };
        let net = match run.network {
            Some(parse::NetworkMode::None) => Some("none".to_string()),
            Some(parse::NetworkMode::Host) => Some("host".to_string()),
            _ => self.opts.network.clone().filter(|n| n != "default"),
        };
        if let Some(n) = net {
            flags.network = vec![n];
        }
        // The first forwarded agent is SSH_AUTH_SOCK, as BuildKit sets it.
        if let Some(m) = run
            .mounts
            .iter()
            .find(|m| m.kind == MountType::Ssh && self.opts.ssh.contains_key(&ssh_id(m)))
        {
            flags
                .env
                .push(format!("SSH_AUTH_SOCK={}", ssh_target(st, m)));
        }
        let (mut spec, _) = to_spec(&flags, &argv)?;
        // The layer's commit syncs the step's changes: the overlay's
        // unmount need not sync the whole filesystem under it as well.
        spec.lifecycle.volatile_rootfs = true;
        let mut targets = Vec::new();
        for m in run.mounts.iter().filter(|m| m.kind != MountType::Bind) {
            if let Some(mount) = self.run_mount(st, ins, m)? {
                targets.push(mount.destination.clone());
                spec.storage.mounts.push(mount);
            }
        }
        for mount in binds {
            targets.push(mount.destination.clone());
            spec.storage.mounts.push(mount);
        }
        if let Some(n) = self.work.file_name() {
            spec.metadata
                .labels
                .insert(STEP_LABEL.into(), n.to_string_lossy().into_owned());
        }
        let rec = self.engine.create(&image.to_string(), &image, None, spec)?;
        let result = (|| -> BResult<Digest> {
            let (s, _) = self.engine.start_session(&rec.id, None)?;
            let input = s.input()?;
            let mut out = Tail::new(self.host, &st.name);
            let mut err = Tail::new(self.host, &st.name);
            let outcome = self.engine.run_session(
                &rec,
                s,
                input,
                Streams {
                    stdin: None,
                    stdout: &mut out,
                    stderr: &mut err,
                },
                true,
            )?;
            match outcome {
                Outcome::Exited { code: 0, .. } => {}
                Outcome::Exited { code, .. } => {
                    let mut tail = String::new();
                    let lines = out.lines_with(&err);
                    if !lines.is_empty() {
                        tail = format!("; its last lines of output:\n{}", lines.join("\n"));
                    }
                    return Err(BuildError::RunFailed {
                        file: self.file.clone(),
                        line: ins.pos.line,
                        step: ins.original.clone(),
                        code,
                        tail,
                    });
                }
                other => {
                    return Err(self.step_err(ins, format!("the container ended: {other:?}")));
                }
            }
            let rec = self.engine.get(&rec.id)?;
            let upper = self.engine.paths.container(&rec.id).join("upper");
            let maps = rec.spec.namespaces.user_maps.as_ref().map(|u| {
                let m = |v: &[crate::userns::IdMap]| {
                    v.iter()
                        .map(|r| (r.container_id, r.host_id, r.size))
                        .collect()
                };
                layer::IdMaps {
                    uids: m(&u.uids),
                    gids: m(&u.gids),
                }
            });
            // The mount points the runtime made for RUN's mounts are not
            // part of the step's changes (BuildKit removes them too).
            self.remove_stubs(&image, &upper, &targets)
                .map_err(|e| self.step_err(ins, format!("remove mount points: {e}")))?;
            // Taken as the layer only once its overlay is gone (the
            // foreground run unmounts it as the container ends; a lazy
            // unmount may leave it busy: then it is read, not taken).
            let rootfs = self.engine.paths.rootfs(&rec.id);
            let _ = crate::rootfs::unmount(&rootfs);
            let how = if crate::rootfs::is_mounted(&rootfs) {
                Upper::Copy
            } else {
                Upper::Take
            };
            let new = self.layer_image(Some(&image), &upper, config, maps, how)?;
            // Held before the container (which holds its base) goes.
            self.hold(&st.name, Some(&new));
            Ok(new)
        })();
        let _ = self.engine.remove(&rec.id, true, true);
        result
    }

    /// A `RUN --mount=type=bind`: what it binds (from the context, a stage
    /// or an image) copied into a scratch directory of the step, bound
    /// read-only unless `rw` (whose writes are then dropped with the
    /// scratch copy, as BuildKit drops them). The copy reads the source
    /// by fd, inside its root, as COPY does (the context's ignore
    /// patterns apply). Returns the mount and the directory to remove.
    fn bind_mount(
        &self,
        st: &StageRun,
        ins: &Instruction,
        m: &parse::Mount,
        tree: &SourceTree<'_>,
        chosen: &[bc::Chosen],
    ) -> BResult<(crate::specgen::Mount, PathBuf)> {
        let target = join_workdir(&st.workdir(), m.target.as_deref().unwrap_or("."));
        if target == "/" {
            return Err(self.step_err(ins, "--mount=type=bind: give a target= other than /"));
        }
        let [c] = chosen else {
            return Err(self.step_err(
                ins,
                "--mount=type=bind: source= must name one file or directory",
            ));
        };
        let dir = self.next_dir("bind");
        sfs::create_private_dir_all(&dir)
            .map_err(|e| self.step_err(ins, format!("create {}: {e}", dir.display())))?;
        let fd = sfs::open(
            &dir,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        )
        .map_err(|e| self.step_err(ins, format!("open {}: {e}", dir.display())))?;
        let attrs = Attrs {
            keep_owner: true,
            ..Default::default()
        };
        let is_dir = sfs::file_type(&c.stat) == libc::S_IFDIR;
        let name = (!is_dir).then(|| PathBuf::from("file"));
        bc::copy_chosen(tree, c, fd.as_fd(), name.as_deref(), &attrs)
            .map_err(|e| self.step_err(ins, format!("--mount=type=bind: {e}")))?;
        if is_dir {
            // The bound directory is the source's own: its owner and mode.
            sfs::fchown_fd(fd.as_fd(), c.stat.st_uid, c.stat.st_gid)
                .and_then(|()| sfs::fchmod(fd.as_fd(), c.stat.st_mode & 0o7777))
                .map_err(|e| self.step_err(ins, format!("--mount=type=bind: {e}")))?;
        }
        let source = if is_dir {
            dir.clone()
        } else {
            dir.join("file")
        };
        Ok((
            crate::specgen::Mount {
                kind: crate::specgen::MountType::Bind,
                source: source.to_string_lossy().into_owned(),
                destination: target,
                readonly: m.read_only,
                ..Default::default()
            },
            dir,
        ))
    }

    /// A `RUN --mount` as a container mount: a cache directory kept
    /// under the berth root (by id, else target), or a tmpfs.
    fn run_mount(
        &self,
        st: &StageRun,
        ins: &Instruction,
        m: &parse::Mount,
    ) -> BResult<Option<crate::specgen::Mount>> {
        if m.kind == MountType::Ssh {
            let id = ssh_id(m);
            let Some(sock) = self.opts.ssh.get(&id) else {
                if m.required {
                    return Err(self.step_err(
                        ins,
                        format!("ssh agent {id:?} is required: give it with --ssh {id}[=SOCKET]"),
                    ));
                }
                return Ok(None);
            };
            // The host's agent socket itself, bound read-only (connecting
            // needs no write to the mount; the container cannot chmod or
            // replace it). Like a secret, never in the layer: its mount
            // point is removed with the step's others.
            return Ok(Some(crate::specgen::Mount {
                kind: crate::specgen::MountType::Bind,
                source: sock.to_string_lossy().into_owned(),
                destination: ssh_target(st, m),
                readonly: true,
                ..Default::default()
            }));
        }
        if m.kind == MountType::Secret {
            let id = m
                .id
                .clone()
                .or_else(|| {
                    m.target
                        .as_deref()
                        .and_then(|t| t.rsplit('/').next())
                        .map(str::to_string)
                })
                .ok_or_else(|| self.step_err(ins, "--mount=type=secret needs id= or target="))?;
            let target = m
                .target
                .as_deref()
                .map(|t| join_workdir(&st.workdir(), t))
                .unwrap_or_else(|| format!("/run/secrets/{id}"));
            let Some(data) = self.opts.secrets.0.get(&id) else {
                if m.required {
                    return Err(self.step_err(
                        ins,
                        format!(
                            "secret {id:?} is required: give it with --secret id={id},src=FILE"
                        ),
                    ));
                }
                return Ok(None);
            };
            // In a directory only root reads, bound read-only; never in
            // the upper directory, the layer or the history.
            let dir = self.next_dir("secret");
            let file = dir.join("secret");
            sfs::create_private_dir_all(&dir)
                .and_then(|_| {
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(m.mode.unwrap_or(0o400))
                        .open(&file)?;
                    f.write_all(data)
                })
                .map_err(|e| self.step_err(ins, format!("secret {id:?}: write: {e}")))?;
            if m.uid.is_some() || m.gid.is_some() {
                std::os::unix::fs::chown(&file, m.uid, m.gid)
                    .map_err(|e| self.step_err(ins, format!("secret {id:?}: chown: {e}")))?;
            }
            return Ok(Some(crate::specgen::Mount {
                kind: crate::specgen::MountType::Bind,
                source: file.to_string_lossy().into_owned(),
                destination: target,
                readonly: true,
                ..Default::default()
            }));
        }
        let target = m
            .target
            .as_deref()
            .map(|t| join_workdir(&st.workdir(), t))
            .ok_or_else(|| self.step_err(ins, "--mount needs target="))?;
        match m.kind {
            MountType::Cache => {
                let id = m.id.clone().unwrap_or_else(|| target.clone());
                let mut h = Sha256::new();
                h.update(id.as_bytes());
                let dir = cache_mounts_dir(&self.engine.paths.root).join(hex(h));
                let lock = lock_cache_mount(&dir).map_err(|e| {
                    self.step_err(ins, format!("cache mount {id:?} ({}): {e}", dir.display()))
                })?;
                self.cache_locks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(lock);
                Ok(Some(crate::specgen::Mount {
                    kind: crate::specgen::MountType::Bind,
                    source: dir.to_string_lossy().into_owned(),
                    destination: target,
                    ..Default::default()
                }))
            }
            MountType::Tmpfs => Ok(Some(crate::specgen::Mount {
                kind: crate::specgen::MountType::Tmpfs,
                destination: target,
                ..Default::default()
            })),
            other => Err(self.step_err(
                ins,
                format!(
                    "--mount=type={}: not supported by berth yet (bind, cache, tmpfs, secret and ssh are)",
                    other.as_str()
                ),
            )),
        }
    }

    /// Removes from a RUN's upper directory the mount points the runtime
    /// made for `targets` (and the directories it made for them): entries
    /// the image's layers do not have, empty. Walked by fd, nothing
    /// followed (the container wrote that tree).
    fn remove_stubs(
        &self,
        image: &Digest,
        upper: &Path,
        targets: &[String],
    ) -> std::io::Result<()> {
        let layers: Vec<PathBuf> = self
            .engine
            .images
            .image_layers(image)
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .iter()
            .map(|c| self.engine.images.layer_dir(c))
            .collect();
        let in_image = |p: &str| {
            layers.iter().any(|l| {
                sfs::open(l, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
                    .and_then(|fd| {
                        sfs::open_in_root(
                            fd.as_fd(),
                            Path::new(p),
                            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                            Links::Refuse,
                        )
                    })
                    .is_ok()
            })
        };
        let root = sfs::open(upper, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)?;
        for t in targets {
            let mut p = clean_abs(t);
            while p != "/" && !in_image(&p) {
                let (parent, name) = p.rsplit_once('/').unwrap_or(("", &p));
                let parent = if parent.is_empty() { "/" } else { parent };
                let Ok(dir) = sfs::open_in_root(
                    root.as_fd(),
                    Path::new(parent),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    Links::Refuse,
                ) else {
                    break;
                };
                match sfs::stat_entry(dir.as_fd(), Path::new(name)) {
                    Ok(st) if sfs::file_type(&st) == libc::S_IFDIR => {
                        // Only an empty one: rmdir refuses the others.
                        if sfs::unlinkat(dir.as_fd(), Path::new(name), libc::AT_REMOVEDIR).is_err()
                        {
                            break;
                        }
                    }
                    Ok(st) if sfs::file_type(&st) == libc::S_IFREG && st.st_size == 0 => {
                        sfs::unlinkat(dir.as_fd(), Path::new(name), 0)?;
                    }
                    _ => break,
                }
                p = parent.to_string();
            }
        }
        Ok(())
    }

    /// COPY/ADD: the sources written into the stage's root mounted on a
    /// fresh upper directory, which becomes the layer.
    #[allow(clippy::too_many_arguments)]
    fn copy_step(
        &self,
        st: &StageRun,
        ins: &Instruction,
        c: &CopyArgs,
        groups: &[CopyGroup<'_>],
        from_image: bool,
        config: Value,
    ) -> BResult<Digest> {
        let ov = self.mount(st.image.as_ref(), "copy")?;
        let result = (|| -> BResult<()> {
            let root = ov.fd();
            let mut attrs = Attrs {
                keep_owner: from_image,
                ..Default::default()
            };
            if let Some(o) = &c.chown {
                let u = crate::user::resolve_in(root, o, &[])
                    .map_err(|e| self.step_err(ins, format!("--chown={o}: {e}")))?;
                attrs.owner = Some((u.uid, u.gid));
            }
            if let Some(m) = &c.chmod {
                let mode = u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        self.step_err(ins, format!("--chmod={m}: expected an octal mode"))
                    })?;
                attrs.mode = Some(mode);
            }
            let dest = join_workdir(&st.workdir(), &c.dest);
            let n_sources = groups.iter().map(|g| g.chosen.len()).sum::<usize>()
                + c.sources
                    .iter()
                    .filter(|s| matches!(s, SourceItem::Heredoc(_)))
                    .count();
            let any_dir = groups
                .iter()
                .flat_map(|g| g.chosen)
                .any(|x| sfs::file_type(&x.stat) == libc::S_IFDIR);
            let dest_is_dir_in_root = sfs::open_in_root(
                root,
                Path::new(&dest),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                Links::InRoot,
            )
            .is_ok();
            let as_dir = c.dest.ends_with('/')
                || c.dest == "."
                || n_sources > 1
                || any_dir
                || dest_is_dir_in_root;
            // Directories made for the destination are owned by --chown's
            // user, as BuildKit and buildah make them.
            let mk = |p: &str| {
                let exists = |q: &str| {
                    sfs::open_in_root(
                        root,
                        Path::new(q),
                        libc::O_PATH | libc::O_CLOEXEC,
                        Links::InRoot,
                    )
                    .is_ok()
                };
                let mut made = Vec::new();
                let mut q = String::new();
                for c in p.split('/').filter(|c| !c.is_empty()) {
                    q = format!("{q}/{c}");
                    if !exists(&q) {
                        made.push(q.clone());
                    }
                }
                let fd = sfs::mkdir_all_in_root(root, Path::new(p), Links::InRoot)
                    .and_then(|fd| sfs::reopen(fd.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY))
                    .map_err(|e| self.step_err(ins, format!("create {p}: {e}")))?;
                if let Some((u, g)) = attrs.owner {
                    for m in made {
                        sfs::open_in_root(
                            root,
                            Path::new(&m),
                            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                            Links::InRoot,
                        )
                        .and_then(|d| sfs::fchown_fd(d.as_fd(), u, g))
                        .map_err(|e| self.step_err(ins, format!("chown {m}: {e}")))?;
                    }
                }
                Ok::<_, BuildError>(fd)
            };
            let (dir, single) = if as_dir {
                (mk(&dest)?, None)
            } else {
                let (parent, name) = dest.rsplit_once('/').unwrap_or(("", &dest));
                let parent = if parent.is_empty() { "/" } else { parent };
                (mk(parent)?, Some(PathBuf::from(name)))
            };
            for s in &c.sources {
                let SourceItem::Heredoc(hd) = s else {
                    continue;
                };
                let name = single.clone().unwrap_or_else(|| PathBuf::from(&hd.name));
                let _ = sfs::unlinkat(dir.as_fd(), &name, 0);
                let mut f = sfs::create_file_at(dir.as_fd(), &name, 0o644)
                    .map_err(|e| self.step_err(ins, format!("write {}: {e}", name.display())))?;
                f.write_all(hd.content.as_bytes())
                    .map_err(|e| self.step_err(ins, format!("write {}: {e}", name.display())))?;
                let (u, g) = attrs.owner.unwrap_or((0, 0));
                let _ = sfs::fchown_fd(f.as_fd(), u, g);
                let _ = sfs::fchmod_fd(f.as_fd(), attrs.mode.unwrap_or(0o644));
            }
            for (tree, x, unpack) in groups
                .iter()
                .flat_map(|g| g.chosen.iter().map(move |x| (g.tree, x, g.unpack)))
            {
                if unpack && sfs::file_type(&x.stat) == libc::S_IFREG {
                    if let Some(gz) = sniff(tree, x) {
                        let d = match &single {
                            // `ADD a.tar /dst`: into /dst, a directory.
                            Some(n) => sfs::mkdir_all_in_root(dir.as_fd(), n, Links::InRoot)
                                .and_then(|fd| {
                                    sfs::reopen(fd.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY)
                                })
                                .map_err(|e| self.step_err(ins, format!("create {dest}: {e}")))?,
                            None => dir
                                .try_clone()
                                .map_err(|e| self.step_err(ins, e.to_string()))?,
                        };
                        bc::unpack_archive(tree, x, gz, d.as_fd())
                            .map_err(|m| self.step_err(ins, m))?;
                        continue;
                    }
                }
                let name = match &single {
                    Some(n) => Some(n.clone()),
                    None if sfs::file_type(&x.stat) == libc::S_IFDIR => None,
                    None => Some(
                        x.rel
                            .file_name()
                            .map(PathBuf::from)
                            .unwrap_or_else(|| PathBuf::from(".")),
                    ),
                };
                bc::copy_chosen(tree, x, dir.as_fd(), name.as_deref(), &attrs)
                    .map_err(|m| self.step_err(ins, m))?;
            }
            Ok(())
        })();
        let upper = ov.dir.join("upper");
        let unmounted = ov.unmount();
        result?;
        unmounted?;
        self.layer_image(st.image.as_ref(), &upper, config, None, Upper::Take)
    }

    /// Holds the image a stage is at (`image prune` keeps it) until the
    /// build ends; a hold per stage, moved at each step.
    fn hold(&self, stage: &str, image: Option<&Digest>) {
        if let Some(i) = image {
            let _ = self
                .engine
                .images
                .hold(i, &format!("{}{stage}", self.hold_prefix()));
        }
    }

    /// `build:run-PID-ID:`, the holders of this build's images.
    fn hold_prefix(&self) -> String {
        let run = self
            .work
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{HOLD_PREFIX}{run}:")
    }

    /// The target's image, squashed if asked, with `--label`s and the tags.
    fn finish(&self, target: StageResult) -> BResult<Digest> {
        let mut id = target
            .image
            .clone()
            .ok_or_else(|| BuildError::Invalid("the target stage made no image".into()))?;
        let mut config = target.config.clone();
        if self.opts.squash != Squash::No {
            let base = match self.opts.squash {
                Squash::All => None,
                _ => target.base.clone(),
            };
            id = self.squash(&id, base.as_ref())?;
            config = self.base_config(Some(&id))?;
        }
        if !self.opts.labels.is_empty() {
            let mut c = config;
            let mut l = c["config"]["Labels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (k, v) in &self.opts.labels {
                l.insert(k.clone(), json!(v));
            }
            c["config"]["Labels"] = Value::Object(l);
            // Keyed too: a rebuild with the same labels gives the same id.
            let mut h = Sha256::new();
            h.update(format!("labels\0{id}\0{:?}", self.opts.labels).as_bytes());
            let key = hex(h);
            id = match self.cache_get(&key) {
                Some(cached) => cached,
                None => {
                    let mut store = crate::containers::open_store(&self.engine.paths.root)?;
                    let _pull = store.pull_lock()?;
                    let new = ic::record_image_with(
                        &mut store,
                        Some(&id),
                        c,
                        None,
                        self.opts.format,
                        None,
                    )?;
                    self.cache_put(&key, &new);
                    new
                }
            };
        }
        self.cancel_point()?;
        for t in &self.opts.tags {
            let r = berth_image::Reference::parse(t)
                .map_err(|e| BuildError::Invalid(format!("-t {t}: {e}")))?;
            self.engine.images.tag(&id, &r.to_string())?;
        }
        Ok(id)
    }
}

impl Ctx<'_> {
    /// `image`'s layers above `base`'s (all of them: None) squashed into
    /// one layer on top of `base`, as Docker's `--squash` does: the
    /// history keeps the build's entries, marked empty, and ends with a
    /// "merge IMAGE to BASE" entry; the config is the image's. Keyed by
    /// the image, the base and the compression.
    fn squash(&self, image: &Digest, base: Option<&Digest>) -> BResult<Digest> {
        let images = &self.engine.images;
        let all = images.image_layers(image)?;
        let below = match base {
            Some(b) => images.image_layers(b)?,
            None => Vec::new(),
        };
        if !all.starts_with(&below) {
            return Err(BuildError::Invalid(format!(
                "--squash: image {image} is not built on its base image's layers; build again with --no-cache"
            )));
        }
        let new = &all[below.len()..];
        let base_name = base.map_or("scratch".to_string(), Digest::to_string);
        let mut h = Sha256::new();
        h.update(format!("squash\0{image}\0{base_name}\0{:?}", self.opts.compression).as_bytes());
        let key = hex(h);
        if let Some(id) = self.cache_get_layer(&key) {
            self.host
                .progress(&format!("[squash] {} layers: CACHED", new.len()));
            return Ok(id);
        }
        self.host.progress(&format!(
            "[squash] {} layers of {image} into one on {base_name}",
            new.len()
        ));
        let mut c = self.base_config(Some(image))?;
        let (base_history, base_diffs) = match base {
            Some(b) => {
                let bc = self.base_config(Some(b))?;
                (
                    bc["history"].as_array().map_or(0, Vec::len),
                    bc["rootfs"]["diff_ids"].clone(),
                )
            }
            None => (0, json!([])),
        };
        if let Some(hist) = c["history"].as_array_mut() {
            for e in hist.iter_mut().skip(base_history) {
                e["empty_layer"] = json!(true);
            }
        }
        let now = rfc3339(self.opts.timestamp);
        push_history(
            &mut c,
            json!({"created": now, "comment": format!("merge {image} to {base_name}")}),
        );
        c["created"] = json!(now);
        c["rootfs"]["diff_ids"] = base_diffs;
        let dir = self.next_dir("squash");
        let upper = dir.join("upper");
        let made = (|| -> std::io::Result<()> {
            sfs::create_private_dir_all(&upper)?;
            let dst = sfs::open(
                &upper,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0,
            )?;
            for chain in new {
                let src = sfs::open(
                    &images.layer_dir(chain),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    0,
                )?;
                merge_layer(src.as_fd(), dst.as_fd(), 0)?;
            }
            Ok(())
        })();
        let result = made
            .map_err(|e| BuildError::Invalid(format!("--squash: merge the layers of {image}: {e}")))
            .and_then(|()| self.layer_image(base, &upper, c, None, Upper::Copy));
        let _ = berth_image::remove_all(&dir);
        let id = result?;
        self.hold("squash", Some(&id));
        self.cache_put(&key, &id);
        Ok(id)
    }
}

const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

/// How deep `merge_layer` recurses (a directory fd open per level).
const MAX_MERGE_DEPTH: usize = 4096;

/// Applies the layer directory `src` (in overlayfs's form: whiteouts as
/// 0:0 character devices, opaque directories marked by an xattr) onto
/// `dst`, an upper directory of the layers below, so that `dst` then
/// holds both as one layer: what `src` has replaces what `dst` had at its
/// path (a whiteout too); a directory of `src` merges into `dst`'s unless
/// it is opaque or replaces a non-directory (then it is made opaque, so
/// the lower layers' directory stays hidden). Non-directories are hard
/// links to the stored layer's inodes (never changed: data, owner, mode,
/// times, xattrs and hard links within the layer come with them);
/// directories are made, with the owner, mode, xattrs and times of the
/// topmost layer's.
fn merge_layer(
    src: std::os::fd::BorrowedFd<'_>,
    dst: std::os::fd::BorrowedFd<'_>,
    depth: usize,
) -> std::io::Result<()> {
    if depth > MAX_MERGE_DEPTH {
        return Err(std::io::Error::other(format!(
            "directories nested deeper than {MAX_MERGE_DEPTH}"
        )));
    }
    let mut names = sfs::read_dir_fd(src)?;
    names.sort();
    for n in names {
        let name = Path::new(&n);
        let (fd, st) = sfs::open_entry(src, name)?;
        let had = match sfs::stat_entry(dst, name) {
            Ok(s) => Some(sfs::file_type(&s)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
            Err(e) => return Err(e),
        };
        if sfs::file_type(&st) != libc::S_IFDIR {
            if had.is_some() {
                remove_entry(dst, name)?;
            }
            sfs::link_fd(fd.as_fd(), dst, name)?;
            continue;
        }
        let xattrs = layer::read_xattrs(fd.as_fd(), false)?;
        let opaque = xattrs.iter().any(|(k, v)| k == OPAQUE_XATTR && v == b"y");
        let replace = opaque || had.is_some_and(|t| t != libc::S_IFDIR);
        if replace && had.is_some() {
            remove_entry(dst, name)?;
        }
        let d = if had == Some(libc::S_IFDIR) && !replace {
            sfs::open_dir_entry(dst, name)?
        } else {
            sfs::mkdir_open_at(dst, name, 0o700)?
        };
        merge_layer(fd.as_fd(), d.as_fd(), depth + 1)?;
        for (k, v) in &xattrs {
            if !k.starts_with(b"trusted.overlay.") {
                sfs::set_xattr_fd(d.as_fd(), k, v, false)?;
            }
        }
        if replace {
            sfs::set_xattr_fd(d.as_fd(), OPAQUE_XATTR, b"y", false)?;
        }
        sfs::fchown_fd(d.as_fd(), st.st_uid, st.st_gid)?;
        sfs::fchmod_fd(d.as_fd(), st.st_mode & 0o7777)?;
        sfs::set_times_fd(
            d.as_fd(),
            (st.st_atime, st.st_atime_nsec),
            (st.st_mtime, st.st_mtime_nsec),
        )?;
    }
    Ok(())
}

/// Removes `dir`/`name`, a directory with what it holds.
fn remove_entry(dir: std::os::fd::BorrowedFd<'_>, name: &Path) -> std::io::Result<()> {
    match sfs::unlinkat(dir, name, 0) {
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
            let p = PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&dir)
            ))
            .join(name);
            berth_image::remove_all(&p).map_err(|e| std::io::Error::other(e.to_string()))
        }
        r => r,
    }
}

/// Whether a chosen file is an archive ADD unpacks (Some(gzip)).
fn sniff(tree: &SourceTree<'_>, x: &bc::Chosen) -> Option<bool> {
    use std::io::Read;
    let fd = sfs::open_in_root(
        tree.root,
        &x.rel,
        libc::O_RDONLY | libc::O_CLOEXEC,
        Links::InRoot,
    )
    .ok()?;
    let mut head = vec![0u8; 512];
    let mut f = std::fs::File::from(fd);
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    bc::archive_kind(&head[..n])
}

/// A `RUN --mount=type=ssh`'s agent id (`default` unless `id=`).
fn ssh_id(m: &parse::Mount) -> String {
    m.id.clone().unwrap_or_else(|| "default".into())
}

/// Where a `RUN --mount=type=ssh` puts the agent's socket: `target=`, or
/// BuildKit's `/run/buildkit/ssh_agent.0`.
fn ssh_target(st: &StageRun, m: &parse::Mount) -> String {
    m.target
        .as_deref()
        .map(|t| join_workdir(&st.workdir(), t))
        .unwrap_or_else(|| "/run/buildkit/ssh_agent.0".into())
}

fn push_history(c: &mut Value, e: Value) {
    match c["history"].as_array_mut() {
        Some(a) => a.push(e),
        None => c["history"] = json!([e]),
    }
}

/// The argv of a RUN: the exec form as is; the shell form (with its
/// heredocs) through the stage's SHELL. `RUN <<EOF` alone runs the
/// heredoc's body as the script, as BuildKit does.
fn run_argv(st: &StageRun, run: &parse::Run) -> Vec<String> {
    match &run.command {
        CommandForm::Exec(v) => v.clone(),
        CommandForm::Shell(s) => {
            let mut argv = st.shell();
            let only_heredoc = run.heredocs.len() == 1 && {
                let t = s.trim();
                t.starts_with("<<") && !t.contains(char::is_whitespace)
            };
            if only_heredoc {
                argv.push(run.heredocs[0].content.clone());
                return argv;
            }
            let mut script = s.clone();
            for h in &run.heredocs {
                script.push('\n');
                script.push_str(&h.content);
                script.push_str(&h.name);
            }
            argv.push(script);
            argv
        }
    }
}

fn command_value(st: &StageRun, c: &CommandForm) -> Value {
    match c {
        CommandForm::Exec(v) => json!(v),
        CommandForm::Shell(s) => {
            let mut v = st.shell();
            v.push(s.clone());
            json!(v)
        }
    }
}

/// A config-only instruction applied as docker build applies it.
fn apply_config(st: &mut StageRun, kind: &Kind, ins: &Instruction, _g: &Graph) {
    match kind {
        Kind::Env(kvs) => {
            let changes = vec![ic::Change::Env(
                kvs.iter()
                    .map(|kv| (kv.key.clone(), kv.value.clone()))
                    .collect(),
            )];
            ic::apply_changes(&mut st.cfg, &changes);
        }
        Kind::Label(kvs) => {
            let changes = vec![ic::Change::Label(
                kvs.iter()
                    .map(|kv| (kv.key.clone(), kv.value.clone()))
                    .collect(),
            )];
            ic::apply_changes(&mut st.cfg, &changes);
        }
        Kind::Workdir(w) => {
            let wd = join_workdir(&st.workdir(), w);
            st.cfg.insert("WorkingDir".into(), json!(wd));
        }
        Kind::User(u) => {
            st.cfg.insert("User".into(), json!(u));
        }
        Kind::Expose(ports) => {
            let ports: Vec<String> = ports
                .iter()
                .map(|p| {
                    if p.contains('/') {
                        p.to_ascii_lowercase()
                    } else {
                        format!("{p}/tcp")
                    }
                })
                .collect();
            ic::apply_changes(&mut st.cfg, &[ic::Change::Expose(ports)]);
        }
        Kind::Volume(v) => {
            ic::apply_changes(&mut st.cfg, &[ic::Change::Volume(v.clone())]);
        }
        Kind::StopSignal(s) => {
            st.cfg.insert("StopSignal".into(), json!(s));
        }
        Kind::Shell(v) => {
            st.cfg.insert("Shell".into(), json!(v));
        }
        Kind::Cmd(c) => {
            let v = command_value(st, c);
            st.cfg.insert("Cmd".into(), v);
            st.cmd_set = true;
        }
        Kind::Entrypoint(c) => {
            let v = command_value(st, c);
            st.cfg.insert("Entrypoint".into(), v);
            if !st.cmd_set {
                st.cfg.insert("Cmd".into(), Value::Null);
            }
        }
        Kind::Healthcheck(h) => {
            if h.test.first().map(String::as_str) == Some("NONE") {
                st.cfg
                    .insert("Healthcheck".into(), json!({"Test": ["NONE"]}));
            } else {
                let mut o = json!({"Test": h.test});
                let ns = |d: std::time::Duration| d.as_nanos() as u64;
                for (k, d) in [
                    ("Interval", h.interval),
                    ("Timeout", h.timeout),
                    ("StartPeriod", h.start_period),
                    ("StartInterval", h.start_interval),
                ] {
                    if !d.is_zero() {
                        o[k] = json!(ns(d));
                    }
                }
                if h.retries != 0 {
                    o["Retries"] = json!(h.retries);
                }
                st.cfg.insert("Healthcheck".into(), o);
            }
        }
        Kind::Onbuild(o) => {
            ic::apply_changes(&mut st.cfg, &[ic::Change::Onbuild(o.expression.clone())]);
        }
        Kind::Maintainer(m) => {
            st.config["author"] = json!(m);
        }
        _ => {
            let _ = ins;
        }
    }
}

/// Sources of a COPY/ADD chosen in one tree; `unpack`: local archives
/// are unpacked (ADD from the context).
struct CopyGroup<'a> {
    tree: &'a SourceTree<'a>,
    chosen: &'a [bc::Chosen],
    unpack: bool,
}

/// Where COPY reads from.
enum SrcRoot {
    Context(OwnedFd),
    Mounted(Overlay),
}

impl SrcRoot {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            SrcRoot::Context(f) => f.as_fd(),
            SrcRoot::Mounted(o) => o.fd(),
        }
    }
}

/// An overlay mounted for a step, unmounted (and its directory removed)
/// when dropped.
struct Overlay {
    root: OwnedFd,
    dir: PathBuf,
    keep: bool,
}

impl Overlay {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Unmounts, keeping the directory (its upper is read next; the
    /// build's directory goes at its end).
    fn unmount(self) -> BResult<()> {
        let mut this = self;
        // Closed first: an fd on the overlay keeps it busy.
        this.root = match sfs::open(Path::new("/"), libc::O_PATH | libc::O_CLOEXEC, 0) {
            Ok(f) => f,
            Err(e) => return Err(BuildError::Invalid(format!("open /: {e}"))),
        };
        this.keep = true;
        crate::rootfs::unmount(&this.dir.join("root")).map_err(BuildError::from)
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let _ = crate::rootfs::unmount(&self.dir.join("root"));
        let _ = berth_image::remove_all(&self.dir);
    }
}

/// A RUN's output: passed on, the last lines kept for a failure's message.
struct Tail<'a> {
    host: &'a dyn BuildHost,
    stage: String,
    last: std::collections::VecDeque<String>,
    partial: Vec<u8>,
}

const TAIL_LINES: usize = 10;

impl<'a> Tail<'a> {
    fn new(host: &'a dyn BuildHost, stage: &str) -> Tail<'a> {
        Tail {
            host,
            stage: stage.to_string(),
            last: Default::default(),
            partial: Vec::new(),
        }
    }

    fn lines_with(&mut self, other: &Tail<'_>) -> Vec<String> {
        let mut v: Vec<String> = self.last.iter().cloned().collect();
        v.extend(other.last.iter().cloned());
        if !self.partial.is_empty() {
            v.push(String::from_utf8_lossy(&self.partial).into_owned());
        }
        if !other.partial.is_empty() {
            v.push(String::from_utf8_lossy(&other.partial).into_owned());
        }
        let skip = v.len().saturating_sub(TAIL_LINES);
        v.into_iter().skip(skip).collect()
    }
}

impl Write for Tail<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.host.output(&self.stage, buf);
        for &b in buf {
            if b == b'\n' {
                let l = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                self.last.push_back(l);
                if self.last.len() > TAIL_LINES {
                    self.last.pop_front();
                }
            } else if self.partial.len() < 4096 {
                self.partial.push(b);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_dockerfile_is_containerfile_only_alone() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(default_dockerfile(d.path()), "Dockerfile");
        std::fs::write(d.path().join("Containerfile"), "FROM scratch\n").unwrap();
        assert_eq!(default_dockerfile(d.path()), "Containerfile");
        std::fs::write(d.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        assert_eq!(default_dockerfile(d.path()), "Dockerfile");
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Some(1_700_000_000)), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn workdirs_join_as_docker_joins_them() {
        assert_eq!(join_workdir("/", "app"), "/app");
        assert_eq!(join_workdir("/app", "../x/./y"), "/x/y");
        assert_eq!(join_workdir("/app", "/abs"), "/abs");
    }
}
