//! Manifests, indexes and image configs: parsed only after their digest
//! was checked, with the media type and shape cross-checked
//! (CVE-2021-41190: a document that could be read as both an index and a
//! manifest is refused).

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::registry::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl Descriptor {
    /// The `org.opencontainers.image.ref.name` annotation (an OCI
    /// layout's name for the image).
    pub fn annotations_ref(&self) -> Option<String> {
        self.annotations
            .as_ref()?
            .get("org.opencontainers.image.ref.name")
            .cloned()
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || {
            Error::Usage(format!("--platform {s:?}: expected os/arch[/variant], such as linux/amd64 or linux/arm64/v8"))
        };
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        match parts[..] {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: Some(v.into()),
            }),
            _ => Err(bad()),
        }
    }

    /// This machine's platform, in Go's names.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: (arch == "arm64").then(|| "v8".to_string()),
        }
    }

    fn matches(&self, p: &Platform) -> bool {
        if self.os != p.os || self.architecture != p.architecture {
            return false;
        }
        // arm64's only variant is v8; an absent variant matches it.
        let norm = |v: &Option<String>| match (self.architecture.as_str(), v.as_deref()) {
            ("arm64", None) => Some("v8".to_string()),
            (_, v) => v.map(str::to_string),
        };
        match (norm(&self.variant), norm(&p.variant)) {
            (Some(w), Some(h)) => w == h,
            (Some(_), None) => false,
            (None, _) => true,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// What a manifest request returned.
pub enum Document {
    Index(Vec<Descriptor>),
    Manifest {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

/// Parses a manifest or index whose digest was already checked.
pub fn parse(body: &[u8], content_type: &str, what: &str) -> Result<Document> {
    let bad = |msg: String| Error::Protocol {
        what: what.to_string(),
        msg,
    };
    let raw: Raw =
        serde_json::from_slice(body).map_err(|e| bad(format!("not a valid manifest: {e}")))?;
    if raw.schema_version != Some(2) {
        return Err(bad(format!(
            "schemaVersion {:?} is not supported (only schema 2 and OCI manifests)",
            raw.schema_version
        )));
    }
    let mt = raw.media_type.as_deref().unwrap_or("");
    if !mt.is_empty()
        && !content_type.is_empty()
        && mt != content_type
        && content_type != "application/json"
    {
        return Err(bad(format!(
            "the document says {mt:?} but was served as {content_type:?}"
        )));
    }
    let effective = if mt.is_empty() { content_type } else { mt };
    let is_index = raw.manifests.is_some();
    let is_manifest = raw.config.is_some() || raw.layers.is_some();
    if is_index && is_manifest {
        return Err(bad(
            "the document is both an index and a manifest; refused (CVE-2021-41190)".into(),
        ));
    }
    match (effective, is_index) {
        (OCI_INDEX | DOCKER_LIST, true) | ("", true) => {
            Ok(Document::Index(raw.manifests.unwrap_or_default()))
        }
        (OCI_MANIFEST | DOCKER_MANIFEST, false) | ("", false) => {
            let config = raw
                .config
                .ok_or_else(|| bad("a manifest without a config".into()))?;
            let layers = raw.layers.unwrap_or_default();
            for d in std::iter::once(&config).chain(&layers) {
                if d.size < 0 {
                    return Err(bad(format!("{} has a negative size", d.digest)));
                }
            }
            Ok(Document::Manifest { config, layers })
        }
        (t, _) => Err(bad(format!("unsupported or inconsistent media type {t:?}"))),
    }
}

/// Picks the manifest for `want` from an index.
pub fn select(index: &[Descriptor], want: &Platform, image: &str) -> Result<Descriptor> {
    index
        .iter()
        .filter(|d| matches!(d.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST | ""))
        .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
        .cloned()
        .ok_or_else(|| Error::Platform {
            image: image.to_string(),
            want: want.to_string(),
            have: index
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The parts of an image config berth reads itself; the bytes are kept
/// as they came for `inspect` and for spec generation.
#[derive(Debug, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    pub rootfs: RootFs,
}

#[derive(Debug, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub typ: String,
    pub diff_ids: Vec<Digest>,
}

pub fn parse_config(body: &[u8], what: &str) -> Result<Config> {
    let c: Config = serde_json::from_slice(body).map_err(|e| Error::Protocol {
        what: what.to_string(),
        msg: format!("not a valid image config: {e}"),
    })?;
    if c.rootfs.typ != "layers" {
        return Err(Error::Protocol {
            what: what.to_string(),
            msg: format!("rootfs type {:?} (expected \"layers\")", c.rootfs.typ),
        });
    }
    Ok(c)
}

/// Chain IDs: the first is the first diff ID, then
/// sha256(parent chain ID + " " + diff ID), as the OCI image spec says.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(p) => Digest::of(format!("{p} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression of a layer, from its media type.
pub fn compression(media_type: &str) -> Result<Compression> {
    Ok(match media_type {
        // The last: moby's uncompressed layer (schema2's
        // MediaTypeUncompressedLayer), what berth writes for an
        // uncompressed layer in the docker format.
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Compression::None,
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Compression::Zstd,
        other => {
            return Err(Error::Protocol {
                what: "layer".into(),
                msg: format!("unsupported layer media type {other:?}"),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_type_berth_writes_is_one_it_reads() {
        // Regression: an image built or committed in the docker format
        // over an uncompressed (imported) layer could not be read back.
        for t in [
            "application/vnd.docker.image.rootfs.diff.tar",
            "application/vnd.oci.image.layer.v1.tar",
        ] {
            assert!(matches!(compression(t), Ok(Compression::None)), "{t}");
        }
        assert!(matches!(
            compression("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Ok(Compression::Gzip)
        ));
        assert!(compression("application/vnd.docker.image.rootfs.diff.tar.zstd").is_err());
    }

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn refuses_ambiguous_documents() {
        let both = format!(
            r#"{{"schemaVersion":2,"manifests":[],"config":{{"digest":"{D}","size":1}},"layers":[]}}"#
        );
        assert!(parse(both.as_bytes(), OCI_INDEX, "x").is_err());
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{D}","size":1}},"layers":[]}}"#
        );
        assert!(
            parse(m.as_bytes(), OCI_INDEX, "x").is_err(),
            "type mismatch"
        );
        assert!(matches!(
            parse(m.as_bytes(), OCI_MANIFEST, "x").unwrap(),
            Document::Manifest { .. }
        ));
        let bad_digest =
            r#"{"schemaVersion":2,"config":{"digest":"sha256:../../x","size":1},"layers":[]}"#;
        assert!(parse(bad_digest.as_bytes(), OCI_MANIFEST, "x").is_err());
        let v1 = r#"{"schemaVersion":1}"#;
        assert!(parse(v1.as_bytes(), "", "x").is_err());
    }

    #[test]
    fn platforms() {
        let idx: Vec<Descriptor> = serde_json::from_str(&format!(
            r#"[{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
               {{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":2,"platform":{{"os":"linux","architecture":"amd64"}}}}]"#
        ))
        .unwrap();
        assert_eq!(
            select(&idx, &Platform::parse("linux/amd64").unwrap(), "i")
                .unwrap()
                .size,
            2
        );
        assert_eq!(
            select(&idx, &Platform::parse("linux/arm64").unwrap(), "i")
                .unwrap()
                .size,
            1
        );
        let e = select(&idx, &Platform::parse("linux/s390x").unwrap(), "i")
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux/arm64/v8, linux/amd64"), "{e}");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/amd64/v1/x").is_err());
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::of(format!("{a} {b}").as_bytes()));
    }
}
