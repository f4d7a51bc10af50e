//! `pull`: manifest (through an index to this platform), config, then the
//! layers in parallel, each streamed in one pass from the network through
//! the blob file and the digest check into the decompressor and the
//! unpacker, never held in memory.

use crate::digest::{Digest, HashingReader, TeeReader};
use crate::error::{Error, Result};
use crate::manifest::{self, Compression, Descriptor, Document, Platform};
use crate::reference::Reference;
use crate::registry::{self, Client, Options};
use crate::store::{remove_tree, Store};
use berth_sys::fs as sfs;
use std::io::{BufReader, Read};
use std::os::fd::AsFd;
use std::sync::Mutex;

/// Image configs larger than this are refused.
pub const MAX_CONFIG: u64 = 8 << 20;

/// Set by [`cancel`]: every layer stream of this process fails at its next
/// read, so each pull or load unwinds and removes its temporary files.
static CANCELLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stops the pulls and loads of this process (for a signal: async-safe).
pub fn cancel() {
    CANCELLED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether [`cancel`] was called.
pub fn cancelled() -> bool {
    CANCELLED.load(std::sync::atomic::Ordering::SeqCst)
}

/// The temporary files of the layers this process is storing.
static ACTIVE: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());

/// Whether any layer is being stored by this process.
pub fn storing() -> bool {
    !ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
}

/// After [`cancel`], for a process about to exit whose layer streams are
/// stuck in a read (a stalled registry): removes their temporary files.
pub fn remove_unfinished() {
    for p in ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = std::fs::remove_file(p);
        let _ = remove_tree(p);
    }
}

/// Removes a layer's temporary blob and directory unless they were
/// published (moved away): every way out of [`store_layer`] but success.
struct TmpFiles<'a> {
    layer: &'a std::path::Path,
    blob: &'a std::path::Path,
}

impl<'a> TmpFiles<'a> {
    fn new(layer: &'a std::path::Path, blob: &'a std::path::Path) -> TmpFiles<'a> {
        let mut a = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        a.push(layer.to_path_buf());
        a.push(blob.to_path_buf());
        TmpFiles { layer, blob }
    }
}

impl Drop for TmpFiles<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.blob);
        let _ = remove_tree(self.layer);
        ACTIVE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| p != self.layer && p != self.blob);
    }
}

/// What a pull reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// The manifest was resolved: the layers to get.
    Resolved {
        image: Digest,
        layers: Vec<(Digest, u64)>,
    },
    /// A layer was already in the store.
    Exists { layer: Digest },
    /// Bytes of a layer downloaded so far.
    Progress {
        layer: Digest,
        done: u64,
        total: u64,
    },
    /// A layer is unpacked and stored.
    Done { layer: Digest },
}

pub struct PullOptions {
    pub platform: Platform,
    pub registry: Options,
    /// Layers downloaded at once.
    pub parallel: usize,
    /// registries.conf: locations, mirrors, insecure and blocked registries.
    pub registries: crate::registries::Registries,
    /// URL prefixes foreign layers may be fetched from (`urls` of a
    /// nondistributable layer); none by default: such a layer is fetched
    /// from the registry by its digest, as Docker does.
    pub foreign_urls: Vec<String>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            registry: Options::default(),
            parallel: 3,
            registries: crate::registries::Registries::default(),
            foreign_urls: Vec::new(),
        }
    }
}

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub id: Digest,
    pub manifest: Digest,
    pub reference: String,
}

pub fn pull(
    store: &mut Store,
    r: &Reference,
    opts: &PullOptions,
    report: &(dyn Fn(Event) + Sync),
) -> Result<Pulled> {
    let image = r.to_string();
    // Mirrors first, then the registry (registries.conf); a mirror that
    // fails or lacks the image is skipped.
    let endpoints = opts.registries.endpoints(r)?;
    let mut found = None;
    let mut last_err = None;
    for ep in &endpoints {
        let mut ropts = opts.registry.clone();
        ropts.insecure |= ep.insecure;
        if ropts.credentials.is_none() {
            ropts.credentials = registry::credentials_for(&ep.reference.registry);
        }
        let client = Client::new(&ep.reference, &ropts);
        match client.manifest(&ep.reference.manifest_ref(), &image) {
            Ok(m) => {
                found = Some((client, m));
                break;
            }
            Err(e @ (Error::NotFound(_) | Error::Network { .. })) if ep.mirror => {
                tracing::info!("{image}: mirror {} skipped: {e}", ep.reference.registry);
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    let Some((client, (mut body, mut ctype, mut mdigest))) = found else {
        return Err(last_err.unwrap_or_else(|| Error::NotFound(image.clone())));
    };
    let mut doc = manifest::parse(&body, &ctype, &image)?;
    if let Document::Index(idx) = &doc {
        let chosen = manifest::select(idx, &opts.platform, &image)?;
        let (b, c, d) = client.manifest(&chosen.digest.to_string(), &image)?;
        if c != chosen.media_type && !chosen.media_type.is_empty() && !c.is_empty() {
            return Err(Error::Protocol {
                what: image,
                msg: format!(
                    "the index says {} but the manifest was served as {c}",
                    chosen.media_type
                ),
            });
        }
        doc = manifest::parse(&b, &c, &image)?;
        if matches!(doc, Document::Index(_)) {
            return Err(Error::Protocol {
                what: image,
                msg: "an index that points to another index; refused".into(),
            });
        }
        (body, ctype, mdigest) = (b, c, d);
    }
    let Document::Manifest { config, layers } = doc else {
        unreachable!("indexes were resolved above")
    };
    if config.size as u64 > MAX_CONFIG {
        return Err(Error::Protocol {
            what: image,
            msg: format!(
                "the image config is {} bytes; refused (limit {MAX_CONFIG})",
                config.size
            ),
        });
    }
    let cfg_bytes = if store.has_blob(&config.digest) {
        store.read_blob(&config.digest, MAX_CONFIG)?
    } else {
        client.blob_bytes(&config.digest, MAX_CONFIG, &format!("{image} config"))?
    };
    let cfg = manifest::parse_config(&cfg_bytes, &image)?;
    if cfg.os != opts.platform.os || cfg.architecture != opts.platform.architecture {
        return Err(Error::Platform {
            image,
            want: opts.platform.to_string(),
            have: format!("{}/{}", cfg.os, cfg.architecture),
        });
    }
    if cfg.rootfs.diff_ids.len() != layers.len() {
        return Err(Error::Protocol {
            what: image,
            msg: format!(
                "the manifest lists {} layers but the config {} diff IDs",
                layers.len(),
                cfg.rootfs.diff_ids.len()
            ),
        });
    }
    let chains = manifest::chain_ids(&cfg.rootfs.diff_ids);
    report(Event::Resolved {
        image: config.digest.clone(),
        layers: layers
            .iter()
            .map(|l| (l.digest.clone(), l.size as u64))
            .collect(),
    });

    // No lock that GC waits for while the layers download: what this
    // pull will reference is marked instead.
    let marked: Vec<&Digest> = chains
        .iter()
        .chain(layers.iter().map(|l| &l.digest))
        .chain([&config.digest, &mdigest])
        .collect();
    let _mark = store.mark_pull(&marked)?;
    store.clean_tmp();
    let jobs: Vec<(usize, &Descriptor)> = layers.iter().enumerate().collect();
    let next = Mutex::new(0usize);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let st: &Store = store;
    std::thread::scope(|s| {
        for _ in 0..opts.parallel.max(1).min(jobs.len().max(1)) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                    if *n >= jobs.len()
                        || failure.lock().unwrap_or_else(|p| p.into_inner()).is_some()
                    {
                        return;
                    }
                    *n += 1;
                    *n - 1
                };
                let (idx, desc) = jobs[i];
                let r = get_layer(
                    st,
                    &client,
                    &opts.foreign_urls,
                    desc,
                    &cfg.rootfs.diff_ids[idx],
                    &chains[idx],
                    report,
                );
                if let Err(e) = r {
                    failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                    return;
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let _commit = store.pull_lock()?;
    store.put_blob(&config.digest, &cfg_bytes)?;
    store.put_blob(&mdigest, &body)?;
    let mut names = Vec::new();
    if r.tag.is_some() {
        let mut tagged = r.clone();
        tagged.digest = None;
        names.push(tagged.to_string());
    }
    names.push(format!("{}@{}", r.name(), mdigest));
    store.add_image(
        &config.digest,
        &mdigest,
        &ctype,
        cfg.created.as_deref(),
        &cfg.os,
        &cfg.architecture,
        &chains,
        &names,
    )?;
    Ok(Pulled {
        id: config.digest,
        manifest: mdigest,
        reference: r.to_string(),
    })
}

/// Reports download progress at most every 256 KiB.
struct Counting<'a, R> {
    inner: R,
    done: u64,
    last: u64,
    total: u64,
    layer: &'a Digest,
    report: &'a (dyn Fn(Event) + Sync),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if cancelled() {
            return Err(std::io::Error::other("interrupted"));
        }
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done > self.total {
            // More than the descriptor promised: never fill the disk for a
            // blob whose digest cannot match anyway.
            return Err(std::io::Error::other(format!(
                "the blob is larger than the {} bytes its descriptor gives; refused",
                self.total
            )));
        }
        if self.done - self.last >= 256 * 1024 || (n == 0 && self.done != self.last) {
            self.last = self.done;
            (self.report)(Event::Progress {
                layer: self.layer.clone(),
                done: self.done,
                total: self.total,
            });
        }
        Ok(n)
    }
}

#[allow(clippy::too_many_arguments)]
fn get_layer(
    store: &Store,
    client: &Client,
    foreign_urls: &[String],
    desc: &Descriptor,
    diff_id: &Digest,
    chain: &Digest,
    report: &(dyn Fn(Event) + Sync),
) -> Result<()> {
    let _lock = store.layer_lock(chain)?;
    if store.has_layer(chain)? && store.has_blob(&desc.digest) {
        report(Event::Exists {
            layer: desc.digest.clone(),
        });
        return Ok(());
    }
    let compression = manifest::compression(&desc.media_type)?;
    let what = format!("layer {}", desc.digest);
    // Leftovers of a killed pull of this layer are removed by
    // store_layer: ours to remove, we hold its lock.
    // Foreign layers are fetched from their URLs without credentials
    // (CVE-2020-15157), and only from URLs allowed (none by default: a
    // manifest could make berth fetch from the host's loopback or a cloud
    // metadata address); otherwise from the registry.
    let urls: Vec<&String> =
        if desc.media_type.contains("foreign") || desc.media_type.contains("nondistributable") {
            desc.urls
                .iter()
                .filter(|u| foreign_url_allowed(u, foreign_urls))
                .collect()
        } else {
            Vec::new()
        };
    let source: Box<dyn Read + Send> = if !urls.is_empty() {
        foreign(&urls, &what)?
    } else {
        match client.blob(&desc.digest, &what) {
            Err(e) if !desc.urls.is_empty() => {
                return Err(Error::Network {
                    registry: client.registry().to_string(),
                    msg: format!(
                        "{what} is a foreign layer (at {}): berth fetches foreign URLs only from the prefixes in $BERTH_ALLOW_FOREIGN_URLS, and the registry does not have it: {e}",
                        desc.urls.join(", ")
                    ),
                })
            }
            b => Box::new(b?),
        }
    };
    store_layer(
        store,
        source,
        desc,
        compression,
        diff_id,
        chain,
        report,
        client.registry(),
    )
}

/// The layer pipeline, for any source of the (compressed) blob: the blob
/// file, both digests and the unpacked directory, published by rename
/// once verified and synced. The caller holds the layer's lock. When the
/// layer is already unpacked (from a blob compressed differently), only
/// the blob is stored, still checked against both digests: the unpacked
/// directory, which containers may be using, is never replaced.
#[allow(clippy::too_many_arguments)]
pub(crate) fn store_layer(
    store: &Store,
    source: Box<dyn Read + Send + '_>,
    desc: &Descriptor,
    compression: Compression,
    diff_id: &Digest,
    chain: &Digest,
    report: &(dyn Fn(Event) + Sync),
    origin: &str,
) -> Result<()> {
    let what = format!("layer {}", desc.digest);
    let blob_only = store.has_layer(chain)?;
    let tmp_layer = store.tmp_dir().join(format!("layer-{}", chain.hex()));
    let tmp_blob = store.tmp_dir().join(format!("blob-{}", chain.hex()));
    remove_tree(&tmp_layer)?;
    let _ = std::fs::remove_file(&tmp_blob);
    let _tmp = TmpFiles::new(&tmp_layer, &tmp_blob);
    std::fs::create_dir(&tmp_layer).map_err(|e| Error::Io {
        op: format!("create {}", tmp_layer.display()),
        cause: e,
    })?;
    let blob_file = std::fs::File::create(&tmp_blob).map_err(|e| Error::Io {
        op: format!("create {}", tmp_blob.display()),
        cause: e,
    })?;
    let counting = Counting {
        inner: source,
        done: 0,
        last: 0,
        total: desc.size.max(0) as u64,
        layer: &desc.digest,
        report,
    };
    let mut tee = TeeReader::new(
        counting,
        std::io::BufWriter::with_capacity(1 << 20, blob_file),
    );
    let stats = {
        let decompressed: Box<dyn Read> = match compression {
            Compression::None => Box::new(&mut tee),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                BufReader::with_capacity(1 << 17, &mut tee),
            )),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(&mut tee).map_err(
                |e| Error::Layer {
                    layer: desc.digest.to_string(),
                    msg: format!("zstd: {e}"),
                },
            )?),
        };
        let hashing = HashingReader::new(decompressed);
        let (stats, rest) = if blob_only {
            (crate::unpack::Stats::default(), hashing)
        } else {
            crate::unpack::unpack(&tmp_layer, hashing, &desc.digest.to_string())?
        };
        let (got_diff, diff_size) = rest.finish().map_err(|e| Error::Layer {
            layer: desc.digest.to_string(),
            msg: format!("decompress: {e}"),
        })?;
        if &got_diff != diff_id {
            return Err(Error::DigestMismatch {
                what: format!("{what} (uncompressed)"),
                want: diff_id.to_string(),
                got: got_diff.to_string(),
            });
        }
        (stats, diff_size)
    };
    let (stats, diff_size) = stats;
    let (got, size, writer) = tee.finish().map_err(|e| Error::Network {
        registry: origin.to_string(),
        msg: format!("{what}: {e}"),
    })?;
    if got != desc.digest {
        return Err(Error::DigestMismatch {
            what,
            want: desc.digest.to_string(),
            got: got.to_string(),
        });
    }
    let file = writer.into_inner().map_err(|e| Error::Io {
        op: format!("write {}", tmp_blob.display()),
        cause: e.into_error(),
    })?;
    file.sync_all().map_err(|e| Error::Io {
        op: "sync the layer blob".into(),
        cause: e,
    })?;
    std::fs::rename(&tmp_blob, store.blob_path(&desc.digest)).map_err(|e| Error::Io {
        op: "store the layer blob".into(),
        cause: e,
    })?;
    if blob_only {
        remove_tree(&tmp_layer)?;
    } else {
        // The unpacked files reach the disk before the layer is published.
        let dirfd = sfs::open(&tmp_layer, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(|e| {
            Error::Io {
                op: "open the unpacked layer".into(),
                cause: e,
            }
        })?;
        // A small layer file by file, a large one with one syncfs.
        let sync = |e| Error::Io {
            op: "sync the unpacked layer".into(),
            cause: e,
        };
        if !sfs::sync_tree(dirfd.as_fd(), crate::layer::SYNC_FILES_MAX).map_err(sync)? {
            sfs::syncfs(dirfd.as_fd()).map_err(sync)?;
        }
        let dest = store.layer_dir(chain);
        remove_tree(&dest)?;
        std::fs::rename(&tmp_layer, &dest).map_err(|e| Error::Io {
            op: format!("move the layer into {}", dest.display()),
            cause: e,
        })?;
        store.add_layer(&crate::store::LayerRecord {
            chain,
            diff_id,
            blob: &desc.digest,
            media_type: &desc.media_type,
            compressed_size: size,
            size: stats.bytes,
            diff_size,
        })?;
    }
    report(Event::Done {
        layer: desc.digest.clone(),
    });
    Ok(())
}

/// Whether a foreign layer's `url` may be fetched: http(s), under one of
/// the `allowed` prefixes, and not on a loopback, link-local or
/// unspecified address unless the prefix names that host itself.
pub fn foreign_url_allowed(url: &str, allowed: &[String]) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let Some(prefix) = allowed
        .iter()
        .find(|p| !p.is_empty() && url.starts_with(p.as_str()))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false; // user info: not for a layer URL
    }
    let host = authority
        .strip_prefix('[')
        .and_then(|a| a.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| authority.rsplit_once(':').map_or(authority, |(h, _)| h));
    let named = prefix
        .strip_prefix("https://")
        .or_else(|| prefix.strip_prefix("http://"))
        .is_some_and(|p| p.split('/').next() == Some(authority));
    if named && host.parse::<std::net::IpAddr>().is_ok() {
        return true; // an address the configuration names itself
    }
    let port = if url.starts_with("https://") { 443 } else { 80 };
    let Ok(addrs) = std::net::ToSocketAddrs::to_socket_addrs(&(host, port)) else {
        return false;
    };
    let mut any = false;
    for a in addrs {
        any = true;
        let bad =
            |v4: std::net::Ipv4Addr| v4.is_loopback() || v4.is_link_local() || v4.is_unspecified();
        let refused = match a.ip() {
            std::net::IpAddr::V4(ip) => bad(ip),
            std::net::IpAddr::V6(ip) => {
                ip.is_loopback()
                    || ip.is_unspecified()
                    || (ip.segments()[0] & 0xffc0) == 0xfe80
                    || ip.to_ipv4_mapped().is_some_and(bad)
            }
        };
        if refused {
            return false;
        }
    }
    any
}

/// A foreign layer from its own URLs (allowed ones), with no registry
/// credentials and no redirects (which could lead anywhere).
fn foreign(urls: &[&String], what: &str) -> Result<Box<dyn Read + Send>> {
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout_connect(std::time::Duration::from_secs(30))
        .timeout_read(registry::stall_timeout())
        .build();
    let mut last = String::from("no http(s) URL");
    for u in urls {
        match agent.get(u).call() {
            Ok(r) => return Ok(Box::new(r.into_reader())),
            Err(e) => last = e.to_string(),
        }
    }
    Err(Error::Network {
        registry: "foreign layer".into(),
        msg: format!("{what}: {last}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_urls_only_from_allowed_prefixes_and_never_loopback_by_default() {
        let allow = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!foreign_url_allowed("http://93.184.215.14/x", &[]));
        assert!(foreign_url_allowed(
            "http://93.184.215.14/x",
            &allow(&["http://93.184.215.14/"])
        ));
        assert!(!foreign_url_allowed(
            "http://93.184.215.15/x",
            &allow(&["http://93.184.215.14/"])
        ));
        assert!(!foreign_url_allowed(
            "ftp://93.184.215.14/x",
            &allow(&["ftp://"])
        ));
        // A prefix that allows any host does not allow loopback, link-local
        // (cloud metadata) or unspecified addresses.
        for u in [
            "http://127.0.0.1/x",
            "http://localhost:8080/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/x",
            "http://[fe80::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://0.0.0.0/x",
            "http://user@93.184.215.14/x",
        ] {
            assert!(!foreign_url_allowed(u, &allow(&["http://"])), "{u}");
        }
        // Unless the configuration names that address itself.
        assert!(foreign_url_allowed(
            "http://127.0.0.1:5000/x",
            &allow(&["http://127.0.0.1:5000/"])
        ));
    }
}
