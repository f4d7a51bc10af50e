//! `push`: an image from the store to a registry, byte for byte: the
//! stored compressed layers, config and manifest go up unchanged, so the
//! pushed image has the same digests as the one pulled.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{self, Document};
use crate::reference::Reference;
use crate::registry::{self, Body, Client, Options, MAX_MANIFEST};
use crate::store::Store;

#[derive(Debug, Clone)]
pub enum PushEvent {
    /// The registry had the blob already.
    Exists(Digest),
    Pushed(Digest, u64),
}

/// Pushes the local image `image` (name or id) as `dest`. Returns the
/// manifest digest.
pub fn push(
    store: &Store,
    image: &str,
    dest: &Reference,
    opts: &Options,
    report: &dyn Fn(PushEvent),
) -> Result<Digest> {
    let img = store.resolve(image)?;
    let body = store.read_blob(&img.manifest_digest, MAX_MANIFEST)?;
    let mtype = store.manifest_type(&img.id)?;
    let Document::Manifest { config, layers } = manifest::parse(&body, &mtype, image)? else {
        return Err(Error::Protocol {
            what: image.to_string(),
            msg: "the stored manifest is an index".into(),
        });
    };
    let mut ropts = opts.clone();
    if ropts.credentials.is_none() {
        ropts.credentials = registry::credentials_for(&dest.registry);
    }
    let client = Client::new(dest, &ropts);
    for d in layers.iter().chain(std::iter::once(&config)) {
        if d.media_type.contains("foreign") || d.media_type.contains("nondistributable") {
            // Not ours to distribute: the manifest keeps its URLs.
            continue;
        }
        if client.has_blob(&d.digest)? {
            report(PushEvent::Exists(d.digest.clone()));
            continue;
        }
        let path = store.blob_path(&d.digest);
        let len = std::fs::metadata(&path)
            .map_err(|e| Error::Io {
                op: format!(
                    "blob {} of {image} (pulled before berth kept blobs? pull it again)",
                    d.digest
                ),
                cause: e,
            })?
            .len();
        client.upload_blob(&d.digest, Body::File(&path, len))?;
        report(PushEvent::Pushed(d.digest.clone(), len));
    }
    let reference = dest
        .tag
        .clone()
        .unwrap_or_else(|| img.manifest_digest.to_string());
    if let Some(want) = &dest.digest {
        if *want != img.manifest_digest {
            return Err(Error::Usage(format!(
                "{dest}: the image's manifest is {}, not {want}",
                img.manifest_digest
            )));
        }
    }
    client.put_manifest(&reference, &mtype, &body)?;
    Ok(img.manifest_digest)
}
