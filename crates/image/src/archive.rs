//! `save` and `load`: images as docker-archive (`docker save`'s format:
//! manifest.json, the config, uncompressed layer tars) and oci-archive (a
//! tar of an OCI image layout), interchangeable with docker, podman and
//! skopeo.

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::manifest::{self, Compression, Descriptor, Document, Platform};
use crate::pull::{store_layer, Event, MAX_CONFIG};
use crate::registry::{DOCKER_LIST, DOCKER_MANIFEST, MAX_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::store::Store;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    DockerArchive,
    OciArchive,
}

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Where `save` puts files: a tar stream or an OCI layout directory.
pub trait Sink {
    fn file(&mut self, name: &str, size: u64, data: &mut dyn Read) -> io::Result<()>;
    fn bytes(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.file(name, data.len() as u64, &mut &data[..])
    }
}

/// An OCI image layout directory (`oci:DIR`).
pub struct DirSink(pub std::path::PathBuf);

impl Sink for DirSink {
    fn file(&mut self, name: &str, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let p = self.0.join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = p.with_extension("berth-partial");
        let mut f = File::create(&tmp)?;
        let n = io::copy(&mut data.take(size), &mut f)?;
        if n != size {
            return Err(io::Error::other(format!(
                "{name}: {n} bytes instead of {size}"
            )));
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &p)
    }
}

/// A minimal tar writer for archives berth writes itself (plain files).
pub struct TarWriter<W: Write> {
    out: W,
}

impl<W: Write> Sink for TarWriter<W> {
    /// Writes `name` with exactly `size` bytes from `data`.
    fn file(&mut self, name: &str, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let mut h = [0u8; 512];
        let n = name.as_bytes();
        if n.len() > 100 {
            return Err(io::Error::other(format!(
                "archive member name too long: {name}"
            )));
        }
        h[..n.len()].copy_from_slice(n);
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        if size < 0o77777777777 {
            octal(&mut h[124..136], size);
        } else {
            // GNU base-256 for 8 GiB and more.
            h[124] = 0x80;
            for (i, b) in size.to_be_bytes().iter().enumerate() {
                h[128 + i] = *b;
            }
        }
        octal(&mut h[136..148], 0);
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.out.write_all(&h)?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::other(format!(
                "{name}: {copied} bytes instead of {size}"
            )));
        }
        let pad = (512 - size % 512) % 512;
        self.out.write_all(&vec![0u8; pad as usize])
    }
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter { out }
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 1024])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn octal(f: &mut [u8], v: u64) {
    let s = format!("{:0w$o}\0", v, w = f.len() - 1);
    f.copy_from_slice(s.as_bytes());
}

/// Writes the images (names or ids) to `out` in `format`.
pub fn save(store: &Store, images: &[String], format: Format, out: impl Write) -> Result<()> {
    let mut tw = TarWriter::new(out);
    save_into(store, images, format, &mut tw)?;
    tw.finish().map_err(|e| Error::Io {
        op: "write the archive".into(),
        cause: e,
    })?;
    Ok(())
}

/// Writes the images as an OCI image layout directory (`oci:DIR`).
pub fn save_dir(store: &Store, images: &[String], dir: &Path) -> Result<()> {
    save_into(
        store,
        images,
        Format::OciArchive,
        &mut DirSink(dir.to_path_buf()),
    )
}

fn save_into(store: &Store, images: &[String], format: Format, tw: &mut dyn Sink) -> Result<()> {
    let io_err = |e: io::Error| Error::Io {
        op: "write the archive".into(),
        cause: e,
    };
    let mut docker_manifest = Vec::new();
    let mut oci_index = Vec::new();
    let mut written: std::collections::HashSet<String> = Default::default();
    for name in images {
        let img = store.resolve(name)?;
        let tags: Vec<String> = if img.names.iter().any(|n| n == name)
            || crate::Reference::parse(name).is_ok_and(|r| img.names.contains(&r.to_string()))
        {
            vec![crate::Reference::parse(name)
                .map(|r| r.to_string())
                .unwrap_or(name.clone())]
        } else {
            img.names
                .iter()
                .filter(|n| !n.contains('@'))
                .cloned()
                .collect()
        };
        let chains = store.image_layers(&img.id)?;
        let config = store.read_blob(&img.id, MAX_CONFIG)?;
        match format {
            Format::DockerArchive => {
                let cfg_name = format!("{}.json", img.id.hex());
                if written.insert(cfg_name.clone()) {
                    tw.bytes(&cfg_name, &config).map_err(io_err)?;
                }
                let mut layers = Vec::new();
                let cfg = manifest::parse_config(&config, name)?;
                for (chain, diff) in chains.iter().zip(&cfg.rootfs.diff_ids) {
                    let (blob, mt, diff_size) = store.layer_blob(chain)?;
                    let lname = format!("{}.tar", diff.hex());
                    if written.insert(lname.clone()) {
                        let f = File::open(store.blob_path(&blob)).map_err(|e| Error::Io {
                            op: format!("open layer blob {blob}"),
                            cause: e,
                        })?;
                        let mut r: Box<dyn Read> = match manifest::compression(&mt)? {
                            Compression::None => Box::new(f),
                            Compression::Gzip => {
                                Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(f)))
                            }
                            Compression::Zstd => {
                                Box::new(zstd::stream::read::Decoder::new(f).map_err(|e| {
                                    Error::Io {
                                        op: "zstd".into(),
                                        cause: e,
                                    }
                                })?)
                            }
                        };
                        tw.file(&lname, diff_size, &mut r).map_err(io_err)?;
                    }
                    layers.push(lname);
                }
                docker_manifest.push(serde_json::json!({
                    "Config": cfg_name,
                    "RepoTags": tags.iter().map(|t| docker_tag(t)).collect::<Vec<_>>(),
                    "Layers": layers,
                }));
            }
            Format::OciArchive => {
                let mbody = store.read_blob(&img.manifest_digest, MAX_MANIFEST)?;
                let mtype = store.manifest_type(&img.id)?;
                let Document::Manifest {
                    config: cdesc,
                    layers,
                } = manifest::parse(&mbody, &mtype, name)?
                else {
                    return Err(Error::Protocol {
                        what: name.clone(),
                        msg: "stored manifest is an index".into(),
                    });
                };
                for d in std::iter::once(&cdesc).chain(&layers) {
                    let bname = format!("blobs/sha256/{}", d.digest.hex());
                    if written.insert(bname.clone()) {
                        let p = store.blob_path(&d.digest);
                        let len = std::fs::metadata(&p)
                            .map_err(|e| Error::Io {
                                op: format!("blob {}", d.digest),
                                cause: e,
                            })?
                            .len();
                        let mut f = File::open(&p).map_err(|e| Error::Io {
                            op: format!("open blob {}", d.digest),
                            cause: e,
                        })?;
                        tw.file(&bname, len, &mut f).map_err(io_err)?;
                    }
                }
                let bname = format!("blobs/sha256/{}", img.manifest_digest.hex());
                if written.insert(bname.clone()) {
                    tw.bytes(&bname, &mbody).map_err(io_err)?;
                }
                let refs: Vec<Option<String>> = if tags.is_empty() {
                    vec![None]
                } else {
                    tags.iter().cloned().map(Some).collect()
                };
                for t in refs {
                    let mut d = serde_json::json!({
                        "mediaType": mtype,
                        "digest": img.manifest_digest.to_string(),
                        "size": mbody.len(),
                        "platform": {"os": img.os, "architecture": img.architecture},
                    });
                    if let Some(t) = t {
                        d["annotations"] = serde_json::json!({ REF_NAME: t });
                    }
                    oci_index.push(d);
                }
            }
        }
    }
    match format {
        Format::DockerArchive => {
            let m =
                serde_json::to_vec(&docker_manifest).map_err(|e| Error::Usage(e.to_string()))?;
            tw.bytes("manifest.json", &m).map_err(io_err)?;
        }
        Format::OciArchive => {
            tw.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
                .map_err(io_err)?;
            let idx = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": oci_index});
            tw.bytes(
                "index.json",
                &serde_json::to_vec(&idx).map_err(|e| Error::Usage(e.to_string()))?,
            )
            .map_err(io_err)?;
        }
    }
    Ok(())
}

/// docker-archive tags drop the docker.io/library/ prefix, as docker does.
fn docker_tag(t: &str) -> String {
    t.strip_prefix("docker.io/library/")
        .or_else(|| t.strip_prefix("docker.io/"))
        .unwrap_or(t)
        .to_string()
}

/// The members of an archive (name -> data offset, size), or an OCI
/// layout directory.
struct Index {
    file: Option<File>,
    members: HashMap<String, (u64, u64)>,
    dir: Option<std::path::PathBuf>,
}

struct Counting<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Index {
    fn build(path: &Path) -> Result<Index> {
        if path.is_dir() {
            return Ok(Index {
                file: None,
                members: HashMap::new(),
                dir: Some(path.to_path_buf()),
            });
        }
        let f = File::open(path).map_err(|e| Error::Io {
            op: format!("open {}", path.display()),
            cause: e,
        })?;
        let dup = f.try_clone().map_err(|e| Error::Io {
            op: "dup".into(),
            cause: e,
        })?;
        let mut r = crate::tar::Reader::new(Counting {
            inner: io::BufReader::with_capacity(64 * 1024, dup),
            pos: 0,
        });
        let mut members = HashMap::new();
        while let Some(e) = r.next_entry()? {
            if e.kind != crate::tar::Kind::File {
                continue;
            }
            let name = String::from_utf8_lossy(&e.path)
                .trim_start_matches("./")
                .to_string();
            // The reader stops right after the header: the data starts here.
            members.insert(name, (r.get_ref().pos, e.size));
        }
        Ok(Index {
            file: Some(f),
            members,
            dir: None,
        })
    }

    fn has(&self, name: &str) -> bool {
        match &self.dir {
            Some(d) => d.join(name).is_file(),
            None => self.members.contains_key(name),
        }
    }

    fn open(&self, name: &str) -> Result<(io::Take<File>, u64)> {
        if let Some(d) = &self.dir {
            // Names come from the layout's own index or from validated
            // digests; a name that climbs out is refused all the same.
            if name.split('/').any(|c| c == ".." || c.is_empty()) {
                return Err(Error::Usage(format!(
                    "{name}: not a name inside the layout"
                )));
            }
            let p = d.join(name);
            let f = File::open(&p).map_err(|e| Error::Io {
                op: format!("open {}", p.display()),
                cause: e,
            })?;
            let size = f
                .metadata()
                .map_err(|e| Error::Io {
                    op: format!("stat {}", p.display()),
                    cause: e,
                })?
                .len();
            return Ok((f.take(size), size));
        }
        let (off, size) = *self
            .members
            .get(name)
            .ok_or_else(|| Error::Usage(format!("the archive has no {name}")))?;
        let mut f = self
            .file
            .as_ref()
            .ok_or_else(|| Error::Usage("no archive".into()))?
            .try_clone()
            .map_err(|e| Error::Io {
                op: "dup".into(),
                cause: e,
            })?;
        f.seek(SeekFrom::Start(off)).map_err(|e| Error::Io {
            op: format!("seek to {name}"),
            cause: e,
        })?;
        Ok((f.take(size), size))
    }

    fn read(&self, name: &str, cap: u64) -> Result<Vec<u8>> {
        let (r, size) = self.open(name)?;
        if size > cap {
            return Err(Error::Usage(format!(
                "{name} in the archive is {size} bytes; refused (limit {cap})"
            )));
        }
        let mut v = Vec::new();
        r.take(cap).read_to_end(&mut v).map_err(|e| Error::Io {
            op: format!("read {name}"),
            cause: e,
        })?;
        Ok(v)
    }
}

/// What `load` stored.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: Digest,
    pub names: Vec<String>,
}

/// Loads every image of a docker-archive or oci-archive file, or of an
/// OCI layout directory.
pub fn load(
    store: &mut Store,
    path: &Path,
    report: &(dyn Fn(Event) + Sync),
) -> Result<Vec<Loaded>> {
    let idx = Index::build(path)?;
    let _pull = store.pull_lock()?;
    store.clean_tmp();
    if idx.has("index.json") && idx.has("oci-layout") {
        load_oci(store, &idx, report)
    } else if idx.has("manifest.json") {
        load_docker(store, &idx, report)
    } else {
        Err(Error::Usage(format!(
            "{}: neither a docker-archive (manifest.json) nor an oci-archive (oci-layout, index.json)",
            path.display()
        )))
    }
}

fn sniff(head: &[u8]) -> (Compression, &'static str) {
    if head.starts_with(&[0x1f, 0x8b]) {
        (
            Compression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        (
            Compression::Zstd,
            "application/vnd.oci.image.layer.v1.tar+zstd",
        )
    } else {
        (Compression::None, "application/vnd.oci.image.layer.v1.tar")
    }
}

fn load_docker(
    store: &mut Store,
    idx: &Index,
    report: &(dyn Fn(Event) + Sync),
) -> Result<Vec<Loaded>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        layers: Vec<String>,
    }
    let entries: Vec<Entry> = serde_json::from_slice(&idx.read("manifest.json", MAX_MANIFEST)?)
        .map_err(|e| Error::Usage(format!("manifest.json of the archive: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let config = idx.read(e.config.trim_start_matches("./"), MAX_CONFIG)?;
        let cid = Digest::of(&config);
        let cfg = manifest::parse_config(&config, &e.config)?;
        if cfg.rootfs.diff_ids.len() != e.layers.len() {
            return Err(Error::Usage(format!(
                "{}: {} layers but {} diff IDs",
                e.config,
                e.layers.len(),
                cfg.rootfs.diff_ids.len()
            )));
        }
        let chains = manifest::chain_ids(&cfg.rootfs.diff_ids);
        let mut descs = Vec::new();
        for ((lname, diff), chain) in e.layers.iter().zip(&cfg.rootfs.diff_ids).zip(&chains) {
            let lname = lname.trim_start_matches("./");
            let (mut r, size) = idx.open(lname)?;
            let mut head = [0u8; 4];
            let n = r.read(&mut head).map_err(|e| Error::Io {
                op: format!("read {lname}"),
                cause: e,
            })?;
            let (comp, mt) = sniff(&head[..n]);
            // The blob's digest: the whole member, hashed first (layers in
            // a docker-archive carry no digest of their own).
            let (mut r2, _) = idx.open(lname)?;
            let hashed = HashingReader::new(&mut r2);
            let (blob_digest, _) = hashed.finish().map_err(|e| Error::Io {
                op: format!("read {lname}"),
                cause: e,
            })?;
            let desc = Descriptor {
                media_type: mt.to_string(),
                digest: blob_digest,
                size: size as i64,
                urls: vec![],
                platform: None,
                annotations: None,
            };
            let _lock = store.layer_lock(chain)?;
            if store.has_layer(chain)? && store.has_blob(&desc.digest) {
                report(Event::Exists {
                    layer: desc.digest.clone(),
                });
            } else {
                let (src, _) = idx.open(lname)?;
                store_layer(
                    store,
                    Box::new(src),
                    &desc,
                    comp,
                    diff,
                    chain,
                    report,
                    "archive",
                )?;
            }
            descs.push(desc);
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cid.to_string(), "size": config.len()},
            "layers": descs.iter().map(|d| serde_json::json!({"mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size})).collect::<Vec<_>>(),
        });
        let mbody = serde_json::to_vec(&manifest).map_err(|e| Error::Usage(e.to_string()))?;
        let md = Digest::of(&mbody);
        store.put_blob(&cid, &config)?;
        store.put_blob(&md, &mbody)?;
        let names: Vec<String> = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .filter_map(|t| crate::Reference::parse(t).ok().map(|r| r.to_string()))
            .collect();
        store.add_image(
            &cid,
            &md,
            OCI_MANIFEST,
            cfg.created.as_deref(),
            &cfg.os,
            &cfg.architecture,
            &chains,
            &names,
        )?;
        out.push(Loaded { id: cid, names });
    }
    Ok(out)
}

fn load_oci(
    store: &mut Store,
    idx: &Index,
    report: &(dyn Fn(Event) + Sync),
) -> Result<Vec<Loaded>> {
    let blob = |d: &Digest, cap: u64| -> Result<Vec<u8>> {
        let b = idx.read(&format!("blobs/sha256/{}", d.hex()), cap)?;
        if Digest::of(&b) != *d {
            return Err(Error::DigestMismatch {
                what: format!("blob {d} in the archive"),
                want: d.to_string(),
                got: Digest::of(&b).to_string(),
            });
        }
        Ok(b)
    };
    let index_body = idx.read("index.json", MAX_MANIFEST)?;
    let Document::Index(entries) = manifest::parse(&index_body, OCI_INDEX, "index.json")? else {
        return Err(Error::Usage(
            "index.json of the archive is not an index".into(),
        ));
    };
    let mut out = Vec::new();
    for top in entries {
        let name = top.annotations_ref();
        let mut desc = top.clone();
        if matches!(desc.media_type.as_str(), OCI_INDEX | DOCKER_LIST) {
            let body = blob(&desc.digest, MAX_MANIFEST)?;
            let Document::Index(inner) = manifest::parse(&body, &desc.media_type, "index")? else {
                return Err(Error::Usage("a nested index is not an index".into()));
            };
            desc = manifest::select(&inner, &Platform::host(), "archive")?;
        }
        let mbody = blob(&desc.digest, MAX_MANIFEST)?;
        let mtype = if desc.media_type.is_empty() {
            OCI_MANIFEST.to_string()
        } else {
            desc.media_type.clone()
        };
        if !matches!(mtype.as_str(), OCI_MANIFEST | DOCKER_MANIFEST) {
            return Err(Error::Usage(format!(
                "unsupported manifest type {mtype} in the archive"
            )));
        }
        let Document::Manifest { config, layers } = manifest::parse(&mbody, &mtype, "manifest")?
        else {
            return Err(Error::Usage("not a manifest".into()));
        };
        let cbody = blob(&config.digest, MAX_CONFIG)?;
        let cfg = manifest::parse_config(&cbody, "config")?;
        if cfg.rootfs.diff_ids.len() != layers.len() {
            return Err(Error::Usage(
                "the manifest and the config disagree on the layers".into(),
            ));
        }
        let chains = manifest::chain_ids(&cfg.rootfs.diff_ids);
        for ((l, diff), chain) in layers.iter().zip(&cfg.rootfs.diff_ids).zip(&chains) {
            let comp = manifest::compression(&l.media_type)?;
            let _lock = store.layer_lock(chain)?;
            if store.has_layer(chain)? && store.has_blob(&l.digest) {
                report(Event::Exists {
                    layer: l.digest.clone(),
                });
                continue;
            }
            let (src, _) = idx.open(&format!("blobs/sha256/{}", l.digest.hex()))?;
            store_layer(
                store,
                Box::new(src),
                l,
                comp,
                diff,
                chain,
                report,
                "archive",
            )?;
        }
        store.put_blob(&config.digest, &cbody)?;
        store.put_blob(&desc.digest, &mbody)?;
        let names: Vec<String> = name
            .and_then(|n| crate::Reference::parse(&n).ok())
            .map(|r| r.to_string())
            .into_iter()
            .collect();
        store.add_image(
            &config.digest,
            &desc.digest,
            &mtype,
            cfg.created.as_deref(),
            &cfg.os,
            &cfg.architecture,
            &chains,
            &names,
        )?;
        out.push(Loaded {
            id: config.digest,
            names,
        });
    }
    Ok(out)
}

/// `import`: a root filesystem tarball (plain, gzip or zstd) as a one-layer
/// image, named `name` if given, its config made by `changes` (`--change`)
/// and its history entry commented `message`. Returns the image id.
pub fn import(
    store: &mut Store,
    path: &Path,
    name: Option<&str>,
    changes: &[crate::commit::Change],
    message: Option<&str>,
    report: &(dyn Fn(Event) + Sync),
) -> Result<Digest> {
    let open = || {
        File::open(path).map_err(|e| Error::Io {
            op: format!("open {}", path.display()),
            cause: e,
        })
    };
    let mut head = [0u8; 4];
    let n = open()?.read(&mut head).map_err(|e| Error::Io {
        op: format!("read {}", path.display()),
        cause: e,
    })?;
    let (comp, mt) = sniff(&head[..n]);
    // First pass: both digests (a tarball carries neither).
    let mut outer = HashingReader::new(open()?);
    let inner: Box<dyn Read> = match comp {
        Compression::None => Box::new(&mut outer),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(
            &mut outer,
        ))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(&mut outer).map_err(
            |e| Error::Io {
                op: "zstd".into(),
                cause: e,
            },
        )?),
    };
    let (diff_id, _) = HashingReader::new(inner)
        .finish()
        .map_err(|e| Error::Usage(format!("{}: not a readable tarball ({e})", path.display())))?;
    let (blob, size) = outer.finish().map_err(|e| Error::Io {
        op: format!("read {}", path.display()),
        cause: e,
    })?;
    let desc = Descriptor {
        media_type: mt.to_string(),
        digest: blob,
        size: size as i64,
        urls: vec![],
        platform: None,
        annotations: None,
    };
    let chain = diff_id.clone();
    let _pull = store.pull_lock()?;
    {
        let _lock = store.layer_lock(&chain)?;
        if store.has_layer(&chain)? && store.has_blob(&desc.digest) {
            report(Event::Exists {
                layer: desc.digest.clone(),
            });
        } else {
            store_layer(
                store,
                Box::new(open()?),
                &desc,
                comp,
                &diff_id,
                &chain,
                report,
                "import",
            )?;
        }
    }
    let host = Platform::host();
    let now = rfc3339_now();
    let mut cfg = serde_json::Map::new();
    crate::commit::apply_changes(&mut cfg, changes);
    let mut history = serde_json::json!({"created": now, "created_by": format!("berth import {}", path.display())});
    if let Some(m) = message {
        history["comment"] = serde_json::json!(m);
    }
    let config = serde_json::json!({
        "architecture": host.architecture,
        "os": host.os,
        "created": now,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [history],
    });
    let cbody = serde_json::to_vec(&config).map_err(|e| Error::Usage(e.to_string()))?;
    let cid = Digest::of(&cbody);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cid.to_string(), "size": cbody.len()},
        "layers": [{"mediaType": desc.media_type, "digest": desc.digest.to_string(), "size": desc.size}],
    });
    let mbody = serde_json::to_vec(&manifest).map_err(|e| Error::Usage(e.to_string()))?;
    let md = Digest::of(&mbody);
    store.put_blob(&cid, &cbody)?;
    store.put_blob(&md, &mbody)?;
    let names: Vec<String> = match name {
        Some(n) => vec![crate::Reference::parse(n)?.to_string()],
        None => vec![],
    };
    store.add_image(
        &cid,
        &md,
        OCI_MANIFEST,
        Some(&now),
        &host.os,
        &host.architecture,
        &[chain],
        &names,
    )?;
    Ok(cid)
}

/// The current UTC time as RFC 3339 (`2026-11-23T03:04:05Z`).
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    rfc3339(secs)
}

pub fn rfc3339(secs: i64) -> String {
    berth_sys::time::rfc3339(secs, None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_400_645), "2026-11-23T02:24:05Z");
    }
}
