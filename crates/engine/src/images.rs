//! The images service: what the CLI's image verbs and (later) the REST
//! API's image endpoints call. Pull (with its progress events and the pull
//! policy of `run`/`create`, [`Engine::image_for`]), push, save, load,
//! import, tag, remove, list, history, inspect and registry logins, over
//! the image store (berth-image), with the store's events recorded for
//! `berth events`. Callers print; nothing here does.
//!
//! Errors are the store's ([`StoreError`]): its kinds (a bad reference, an
//! unknown image, a registry refusing) are what a caller chooses its exit
//! code or HTTP status by.

use crate::containers::Engine;
use berth_image::pull::PullOptions;
use berth_image::registry::{self, Client, Options};
use berth_image::store::Store;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub use berth_image::archive::{Format as ArchiveFormat, Loaded};
pub use berth_image::manifest::Platform;
/// What a pull (or a load, an import) reports as it goes.
pub use berth_image::pull::{Event as PullEvent, Pulled};
pub use berth_image::push::PushEvent;
pub use berth_image::store::{Collected, ImageRow};
pub use berth_image::Error as StoreError;
pub use berth_image::{Digest, Reference};

pub type Result<T> = std::result::Result<T, StoreError>;

/// The biggest image config read (inspect, history).
const MAX_CONFIG: u64 = berth_image::pull::MAX_CONFIG;

/// When `run`/`create` pull their image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    /// Pull when the image is not in the store (or is for another
    /// platform than the one asked for).
    Missing,
    /// Pull every time (the store keeps the layers it has).
    Always,
    /// Never pull: fail if the image is not in the store.
    Never,
    /// Pull when the registry has another image under the name than the
    /// store (a pull that finds everything stored fetches the manifest
    /// only); if the registry cannot be asked, the stored image is used.
    Newer,
}

/// Why [`Engine::image_for`] pulls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullReason {
    /// The policy is always.
    Always,
    /// The image is not in the store.
    NotFoundLocally,
    /// The stored image is for `have`, not `want`: it is pulled for `want`.
    OtherPlatform { have: String, want: String },
    /// The policy is newer: the registry may have another image.
    Newer,
}

/// What [`Engine::image_for`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageChoice {
    /// Use this stored image.
    Stored(Digest),
    /// Pull the image (the caller does: it shows progress and handles
    /// interrupts). `fallback`: the stored image to use instead if the
    /// registry cannot be reached ([`registry_unreachable`]).
    Pull {
        reason: PullReason,
        fallback: Option<Digest>,
    },
}

/// Whether a pull failed only because the registry could not be reached
/// (which a `newer` pull survives with the stored image).
pub fn registry_unreachable(e: &StoreError) -> bool {
    matches!(e, StoreError::Network { .. })
}

/// Why [`Engine::image_for`] has no image.
#[derive(Debug, thiserror::Error)]
pub enum ImageForError {
    /// The pull policy `never` and no image in the store.
    #[error("image {image:?} is not in the store and the pull policy is never")]
    NotPresent { image: String },
    /// The pull policy `never` and a stored image of another platform.
    #[error("image {image:?} in the store is for {have}, not for the platform {want}, and the pull policy is never")]
    WrongPlatform {
        image: String,
        have: String,
        want: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An image id or its prefix (`sha256:` optional), which a pull refuses.
fn looks_like_id(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Engine {
    /// The pull policy of `run`/`create` for the image `image`: the stored
    /// image to use, or a pull and why, for `platform` (os/arch[/variant])
    /// if given (a stored image of another platform is not used).
    pub fn image_for(
        &self,
        image: &str,
        policy: PullPolicy,
        platform: Option<&str>,
    ) -> std::result::Result<ImageChoice, ImageForError> {
        // A bad platform or reference is an error before any lookup.
        let platform = platform.map(Platform::parse).transpose()?;
        let with_platform = platform.is_some();
        decide(image, policy, platform, |i| {
            let id = self.images.resolve_id(i)?;
            // The indexed lookup alone on every run; the image's row (a
            // listing of the store) only when a platform is asked for.
            if !with_platform {
                return Ok((id, String::new()));
            }
            let row = self.images.resolve(i)?;
            Ok((id, format!("{}/{}", row.os, row.architecture)))
        })
    }
}

/// [`Engine::image_for`] with the store's lookup (`stored`: the id and
/// os/arch of a stored image) given.
fn decide(
    image: &str,
    policy: PullPolicy,
    platform: Option<Platform>,
    stored: impl FnOnce(&str) -> Result<(Digest, String)>,
) -> std::result::Result<ImageChoice, ImageForError> {
    let pull = |reason| {
        Ok(ImageChoice::Pull {
            reason,
            fallback: None,
        })
    };
    if policy == PullPolicy::Always {
        return pull(PullReason::Always);
    }
    match stored(image) {
        Ok((id, have)) => {
            if let Some(want) = platform {
                if have != format!("{}/{}", want.os, want.architecture) {
                    if policy == PullPolicy::Never {
                        return Err(ImageForError::WrongPlatform {
                            image: image.to_string(),
                            have,
                            want: want.to_string(),
                        });
                    }
                    return pull(PullReason::OtherPlatform {
                        have,
                        want: want.to_string(),
                    });
                }
            }
            if policy != PullPolicy::Newer || looks_like_id(image) {
                return Ok(ImageChoice::Stored(id));
            }
            Ok(ImageChoice::Pull {
                reason: PullReason::Newer,
                fallback: Some(id),
            })
        }
        Err(StoreError::UnknownImage(_)) if policy != PullPolicy::Never => {
            if !looks_like_id(image) {
                Reference::parse(image)?;
            }
            pull(PullReason::NotFoundLocally)
        }
        Err(StoreError::UnknownImage(_)) => Err(ImageForError::NotPresent {
            image: image.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// What to pull and how. Its `Debug` hides the credentials' password.
#[derive(Clone)]
pub struct PullRequest {
    /// NAME[:TAG][@DIGEST], or a short-name alias of registries.conf.
    pub image: String,
    /// os/arch[/variant] (default: this host's).
    pub platform: Option<String>,
    /// Verify the registry's TLS certificate; false also allows plain HTTP.
    pub tls_verify: bool,
    /// USER:PASSWORD (otherwise from Docker's or Podman's auth files).
    pub creds: Option<String>,
    /// Layers downloaded at once.
    pub parallel: usize,
}

impl std::fmt::Debug for PullRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // USER:PASSWORD shows as USER:<hidden>.
        let creds = self
            .creds
            .as_ref()
            .map(|c| format!("{}:<hidden>", c.split_once(':').map_or("", |(u, _)| u)));
        f.debug_struct("PullRequest")
            .field("image", &self.image)
            .field("platform", &self.platform)
            .field("tls_verify", &self.tls_verify)
            .field("creds", &creds)
            .field("parallel", &self.parallel)
            .finish()
    }
}

/// A pull, checked and resolved, ready to run ([`Images::pull`]).
pub struct Pull {
    /// What is pulled.
    pub reference: Reference,
    /// The registries.conf alias the name resolved through, and its file.
    pub alias: Option<(String, PathBuf)>,
    opts: PullOptions,
}

/// `USER:PASSWORD`, for `option`.
fn credentials(c: &str, option: &str) -> Result<(String, String)> {
    let (u, p) = c
        .split_once(':')
        .ok_or_else(|| StoreError::Usage(format!("{option}: expected USER:PASSWORD")))?;
    Ok((u.to_string(), p.to_string()))
}

impl Pull {
    /// Reads registries.conf and checks the request, before any network.
    pub fn prepare(req: &PullRequest) -> Result<Pull> {
        let registries = berth_image::registries::Registries::load()?;
        let (reference, alias) = match registries.alias(&req.image) {
            Some((full, file)) => {
                let file = file.to_path_buf();
                (Reference::parse(&full)?, Some((full, file)))
            }
            None => (Reference::parse(&req.image)?, None),
        };
        let mut opts = PullOptions {
            parallel: req.parallel.max(1),
            registries,
            foreign_urls: std::env::var("BERTH_ALLOW_FOREIGN_URLS")
                .map(|v| v.split(',').map(|p| p.trim().to_string()).collect())
                .unwrap_or_default(),
            ..Default::default()
        };
        if let Some(p) = &req.platform {
            opts.platform = Platform::parse(p)?;
        }
        opts.registry.insecure = !req.tls_verify;
        if let Some(c) = &req.creds {
            opts.registry.credentials = Some(credentials(c, "--creds")?);
        }
        Ok(Pull {
            reference,
            alias,
            opts,
        })
    }
}

/// Pulls running in this process are told to stop: each layer stream
/// unwinds and removes what it put in the store's tmp/; one stuck in a
/// read of a stalled registry has its files removed after `unwind`. For a
/// signal handler's thread (the process ends after).
pub fn cancel_pulls(unwind: std::time::Duration) {
    berth_image::pull::cancel();
    let t = std::time::Instant::now();
    while berth_image::pull::storing() && t.elapsed() < unwind {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    berth_image::pull::remove_unfinished();
}

/// Whether [`cancel_pulls`] was called.
pub fn pulls_cancelled() -> bool {
    berth_image::pull::cancelled()
}

/// A file spooled into the store's tmp/ (an archive from a stream needs
/// random access), removed when dropped.
pub struct Spool(PathBuf);

impl Spool {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One step of an image's history, newest last.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HistoryStep {
    /// RFC 3339, as the image says.
    pub created: String,
    pub created_by: String,
    /// The size of its layer (0 for a step without one).
    pub size: u64,
    pub comment: String,
}

/// What removing one name or id did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removed {
    /// A name was removed; the image has others.
    Untagged,
    /// The images removed (with all their names).
    Deleted(Vec<Digest>),
}

/// An image `prune` removed: its id and the names it had.
pub type PrunedImage = (Digest, Vec<String>);

/// The image store, with the engine's tables (image events are recorded
/// there).
pub struct Images {
    store: Store,
}

impl Images {
    pub fn open(root: &Path) -> Result<Images> {
        Ok(Images {
            store: Store::open_with(root, &[crate::records::TABLES])?,
        })
    }

    fn event(&self, action: &str, id: &str, name: &str) {
        crate::events::record_image_event(&self.store, action, id, name);
    }

    /// Runs a prepared pull, reporting progress to `report`.
    pub fn pull(&mut self, p: &Pull, report: &(dyn Fn(PullEvent) + Sync)) -> Result<Pulled> {
        let pulled = berth_image::pull::pull(&mut self.store, &p.reference, &p.opts, report)?;
        let r = p.reference.to_string();
        self.event("pull", &r, &r);
        Ok(pulled)
    }

    /// Pushes the local image `image` (name or id) as `dest` (default:
    /// its own name). Returns the manifest digest.
    pub fn push(
        &self,
        image: &str,
        dest: Option<&str>,
        tls_verify: bool,
        creds: Option<&str>,
        report: &dyn Fn(PushEvent),
    ) -> Result<Digest> {
        let dest = Reference::parse(dest.unwrap_or(image))?;
        let opts = Options {
            insecure: !tls_verify,
            credentials: creds.map(|c| credentials(c, "--creds")).transpose()?,
        };
        berth_image::push::push(&self.store, image, &dest, &opts, &|e| report(e))
    }

    /// Writes `images` as an archive of `format` to `out`.
    pub fn save(&self, images: &[String], format: ArchiveFormat, out: impl Write) -> Result<()> {
        berth_image::archive::save(&self.store, images, format, out)
    }

    /// Writes `images` as an OCI image layout directory.
    pub fn save_dir(&self, images: &[String], dir: &Path) -> Result<()> {
        berth_image::archive::save_dir(&self.store, images, dir)
    }

    /// Copies `from` into a file of the store's tmp/ (`what` names it).
    /// The file is this call's alone (made exclusively, 0600), so
    /// concurrent spools of one process (an API server's) never share one.
    pub fn spool(&self, what: &str, from: &mut dyn Read) -> Result<Spool> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let (f, path) = loop {
            let path = self.store.tmp_dir().join(format!(
                "{what}-{}-{}.tar",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(f) => break (f, path),
                // Left by an earlier process of the same pid.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(cause) => {
                    return Err(StoreError::Io {
                        op: format!("create {}", path.display()),
                        cause,
                    })
                }
            }
        };
        let io = |op: &str| {
            let op = format!("{op} {}", path.display());
            move |cause| StoreError::Io { op, cause }
        };
        let mut f = f;
        let spool = Spool(path.clone());
        std::io::copy(from, &mut f).map_err(io("write"))?;
        Ok(spool)
    }

    /// Loads every image of a docker-archive or oci-archive file, or of an
    /// OCI layout directory.
    pub fn load(
        &mut self,
        path: &Path,
        report: &(dyn Fn(PullEvent) + Sync),
    ) -> Result<Vec<Loaded>> {
        let loaded = berth_image::archive::load(&mut self.store, path, report)?;
        for l in &loaded {
            let id = l.id.to_string();
            self.event("load", &id, l.names.first().unwrap_or(&id));
        }
        Ok(loaded)
    }

    /// Makes an image of one layer from a root filesystem tarball, named
    /// `name` if given, its config made by `changes` (`--change`, checked
    /// before the tarball is read) and its history commented `message`.
    pub fn import(
        &mut self,
        path: &Path,
        name: Option<&str>,
        changes: &[String],
        message: Option<&str>,
        report: &(dyn Fn(PullEvent) + Sync),
    ) -> Result<Digest> {
        let changes = berth_image::commit::parse_changes(changes)?;
        let id =
            berth_image::archive::import(&mut self.store, path, name, &changes, message, report)?;
        let i = id.to_string();
        let named = name
            .and_then(|n| Reference::parse(n).ok())
            .map(|r| r.to_string());
        self.event("import", &i, named.as_deref().unwrap_or(&i));
        Ok(id)
    }

    /// Gives the image `source` (name or id) the name `target`.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let img = self.store.resolve(source)?;
        let t = Reference::parse(target)?;
        if t.digest.is_some() {
            return Err(StoreError::Usage(format!(
                "{target}: a tag cannot name a digest"
            )));
        }
        self.store.tag(&img.id, &t.to_string())?;
        self.event("tag", &img.id.to_string(), &t.to_string());
        Ok(())
    }

    /// The images that `filters` (KEY=VALUE, as `images --filter`) keep.
    pub fn list(&self, filters: &[String]) -> crate::Result<Vec<ImageRow>> {
        let filter = crate::imagelist::ImageFilter::parse(filters)?;
        crate::imagelist::filter_images(&self.store, self.store.images()?, &filter)
    }

    /// Removes the name `what`, or (an id, or with `force`) the image
    /// with all its names; the image's layers stay until [`Images::gc`].
    pub fn remove(&mut self, what: &str, force: bool) -> Result<Removed> {
        let before = self.store.resolve(what).ok();
        let ids = self.store.remove(what, force)?;
        if ids.is_empty() {
            let id = before.map(|b| b.id.to_string()).unwrap_or_default();
            self.event("untag", &id, what);
            return Ok(Removed::Untagged);
        }
        if let Some(b) = &before {
            for n in b.names.iter().filter(|n| !n.contains('@')) {
                self.event("untag", &b.id.to_string(), n);
            }
        }
        for id in &ids {
            self.event("delete", &id.to_string(), "");
        }
        Ok(Removed::Deleted(ids))
    }

    /// Removes the layers and blobs no image uses: how many of each and
    /// their bytes.
    pub fn gc(&mut self) -> Result<Collected> {
        self.store.gc()
    }

    /// Removes the images without a name, then what no image uses: the
    /// images removed, and the layers and blobs that went with them.
    pub fn prune(&mut self) -> Result<(Vec<Digest>, Collected)> {
        let dangling = self.store.dangling()?;
        for id in &dangling {
            self.store.remove_by_id(id)?;
            self.event("delete", &id.to_string(), "");
        }
        Ok((dangling, self.store.gc()?))
    }

    /// Removes the images that no container or build holds and that
    /// `pick` chooses (`image prune`, `-a` and Docker's filters), then the
    /// layers and blobs no image uses: each image removed with its names,
    /// and the layers and blobs that went (their bytes are Docker's
    /// `SpaceReclaimed`).
    pub fn prune_unused(
        &mut self,
        pick: &dyn Fn(&ImageRow) -> bool,
    ) -> Result<(Vec<PrunedImage>, Collected)> {
        let held = self.store.held()?;
        let mut gone = Vec::new();
        for img in self.store.images()? {
            if held.contains(&img.id.to_string()) || !pick(&img) {
                continue;
            }
            self.store.remove_by_id(&img.id)?;
            let id = img.id.to_string();
            for n in img.names.iter().filter(|n| !n.contains('@')) {
                self.event("untag", &id, n);
            }
            self.event("delete", &id, "");
            gone.push((img.id, img.names));
        }
        Ok((gone, self.store.gc()?))
    }

    fn config(&self, img: &ImageRow) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.store.read_blob(&img.id, MAX_CONFIG)?).map_err(|e| {
            StoreError::Protocol {
                what: format!("image {}", img.id),
                msg: format!("its stored config is not JSON: {e}"),
            }
        })
    }

    /// How the image `name` was built, oldest step first.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryStep>> {
        let img = self.store.resolve(name)?;
        let cfg = self.config(&img)?;
        let mut sizes = Vec::new();
        for c in &self.store.image_layers(&img.id)? {
            sizes.push(self.store.layer_blob(c)?.2);
        }
        let mut sizes = sizes.into_iter();
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        let steps = cfg["history"].as_array().cloned().unwrap_or_default();
        Ok(steps
            .iter()
            .map(|h| {
                let empty = h["empty_layer"].as_bool().unwrap_or(false);
                HistoryStep {
                    created: text(&h["created"]),
                    created_by: text(&h["created_by"]),
                    size: if empty { 0 } else { sizes.next().unwrap_or(0) },
                    comment: text(&h["comment"]),
                }
            })
            .collect())
    }

    /// The image `name` as Docker's `image inspect` shows it.
    pub fn inspect(&self, name: &str) -> Result<serde_json::Value> {
        let img = self.store.resolve(name)?;
        let cfg = self.config(&img)?;
        let layers: Vec<Digest> = self.store.image_layers(&img.id)?;
        Ok(serde_json::json!({
            "Id": img.id.to_string(),
            "RepoTags": img.names.iter().filter(|n| !n.contains('@')).collect::<Vec<_>>(),
            "RepoDigests": img.names.iter().filter(|n| n.contains('@')).collect::<Vec<_>>(),
            "Created": cfg.get("created"),
            "Author": cfg.get("author"),
            "Architecture": cfg.get("architecture"),
            "Variant": cfg.get("variant"),
            "Os": cfg.get("os"),
            "Size": img.size,
            "Config": cfg.get("config"),
            "RootFS": {
                "Type": "layers",
                "Layers": cfg.pointer("/rootfs/diff_ids"),
            },
            "GraphDriver": {
                "Name": "overlay",
                "Data": {
                    "LowerDir": layers.iter().rev().map(|c| self.store.layer_dir(c).display().to_string()).collect::<Vec<_>>().join(":"),
                }
            },
            "History": cfg.get("history"),
        }))
    }
}

/// The registry of a login: the host[:port] of a full reference or URL
/// (Docker Hub's other names are docker.io).
pub fn registry_name(r: &str) -> Result<String> {
    let r = r
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = r.split('/').next().unwrap_or(r);
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    };
    if host.is_empty() {
        return Err(StoreError::Usage("no registry given".into()));
    }
    Ok(host.to_string())
}

/// Checks the credentials with `registry`, then stores them (Podman's
/// auth file): returns the file.
pub fn login(registry: &str, user: &str, password: &str, tls_verify: bool) -> Result<PathBuf> {
    // The registry must accept them before they are stored.
    check_login(registry, user, password, tls_verify)?;
    registry::save_credentials(registry, user, password)
}

/// Checks the credentials with `registry` (its `/v2/` answering them),
/// storing nothing: what the Docker API's `/auth` does (the client keeps
/// them).
pub fn check_login(registry: &str, user: &str, password: &str, tls_verify: bool) -> Result<()> {
    let opts = Options {
        insecure: !tls_verify,
        credentials: Some((user.to_string(), password.to_string())),
    };
    Client::for_registry(registry, &opts).ping()
}

/// The text at an http(s) `url` (`kube play URL`): redirects followed,
/// at most `max` bytes, UTF-8.
pub fn fetch_text(url: &str, max: u64) -> Result<String> {
    let mut body = Vec::new();
    berth_image::fetch::fetch(url, &mut body, max, None)?;
    String::from_utf8(body).map_err(|_| StoreError::Usage(format!("{url}: not UTF-8 text")))
}

/// Forgets the credentials of `registry`: false if there were none.
pub fn logout(registry: &str) -> Result<bool> {
    registry::remove_credentials(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pull request in a log line shows the user, not the password.
    #[test]
    fn pull_request_debug_hides_the_password() {
        let r = PullRequest {
            image: "busybox".into(),
            platform: None,
            tls_verify: true,
            creds: Some("alice:s3cret:with-colon".into()),
            parallel: 3,
        };
        let d = format!("{r:?}");
        assert!(!d.contains("s3cret"), "{d}");
        assert!(d.contains("alice:<hidden>"), "{d}");
    }

    fn choose(
        image: &str,
        policy: PullPolicy,
        platform: Option<&str>,
        stored: Option<&str>,
    ) -> std::result::Result<ImageChoice, String> {
        let id = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let platform = platform.map(|p| Platform::parse(p).unwrap());
        decide(image, policy, platform, |i| match stored {
            Some(p) => Ok((id.clone(), p.to_string())),
            None => Err(StoreError::UnknownImage(i.to_string())),
        })
        .map_err(|e| e.to_string())
    }

    fn stored() -> ImageChoice {
        ImageChoice::Stored(Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap())
    }

    fn pulls(reason: PullReason) -> ImageChoice {
        ImageChoice::Pull {
            reason,
            fallback: None,
        }
    }

    #[test]
    fn the_pull_policy_decides_from_what_is_stored() {
        use PullPolicy::*;
        let amd = Some("linux/amd64");
        for p in [Missing, Never, Newer] {
            assert_ne!(
                choose("busybox", p, None, amd),
                Ok(pulls(PullReason::Always))
            );
        }
        assert_eq!(
            choose("busybox", Always, None, amd),
            Ok(pulls(PullReason::Always))
        );
        assert_eq!(choose("busybox", Missing, None, amd), Ok(stored()));
        assert_eq!(choose("busybox", Never, None, amd), Ok(stored()));
        assert_eq!(
            choose("busybox", Missing, None, None),
            Ok(pulls(PullReason::NotFoundLocally))
        );
        assert_eq!(
            choose("busybox", Newer, None, None),
            Ok(pulls(PullReason::NotFoundLocally))
        );
        let e = choose("busybox", Never, None, None).unwrap_err();
        assert!(e.contains("not in the store") && e.contains("never"), "{e}");
        // Newer asks the registry, keeping the stored image to fall back on.
        let Ok(ImageChoice::Pull { reason, fallback }) = choose("busybox", Newer, None, amd) else {
            panic!("newer pulls");
        };
        assert_eq!((reason, fallback.is_some()), (PullReason::Newer, true));
        // An id is never pulled.
        assert_eq!(choose("sha256:aaaa", Newer, None, amd), Ok(stored()));
        assert!(choose("aaaa", Missing, None, None).is_ok());
    }

    #[test]
    fn a_stored_image_of_another_platform_is_not_used() {
        use PullPolicy::*;
        let arm = Some("linux/arm64");
        assert_eq!(
            choose("busybox", Missing, Some("linux/amd64"), arm),
            Ok(pulls(PullReason::OtherPlatform {
                have: "linux/arm64".into(),
                want: "linux/amd64".into()
            }))
        );
        assert_eq!(
            choose("busybox", Missing, Some("linux/arm64"), arm),
            Ok(stored())
        );
        let e = choose("busybox", Never, Some("linux/amd64"), arm).unwrap_err();
        assert!(
            e.contains("is for linux/arm64, not for the platform linux/amd64"),
            "{e}"
        );
        // A bad reference is refused before a pull.
        assert!(choose("Bad Name", Missing, None, None).is_err());
    }

    #[test]
    fn registry_names_are_hosts() {
        assert_eq!(registry_name("quay.io").unwrap(), "quay.io");
        assert_eq!(
            registry_name("https://127.0.0.1:5000/v2/").unwrap(),
            "127.0.0.1:5000"
        );
        assert_eq!(
            registry_name("index.docker.io/library/x").unwrap(),
            "docker.io"
        );
        assert!(registry_name("https://").is_err());
    }

    #[test]
    fn ids_are_not_references() {
        assert!(looks_like_id("sha256:abcd"));
        assert!(looks_like_id("0123abcd"));
        assert!(!looks_like_id("abc"));
        assert!(!looks_like_id("busybox"));
    }

    #[test]
    fn credentials_need_a_colon() {
        assert_eq!(
            credentials("u:p:q", "--creds").unwrap(),
            ("u".to_string(), "p:q".to_string())
        );
        let e = credentials("u", "--creds").unwrap_err();
        assert!(
            e.to_string().contains("--creds: expected USER:PASSWORD"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod spool_tests {
    use super::*;

    #[test]
    fn spools_of_one_process_never_share_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let images = Images::open(dir.path()).unwrap();
        let a = images.spool("load", &mut &b"first"[..]).unwrap();
        let b = images.spool("load", &mut &b"second"[..]).unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(std::fs::read(a.path()).unwrap(), b"first");
        let kept = b.path().to_path_buf();
        drop(a);
        assert_eq!(std::fs::read(&kept).unwrap(), b"second");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
