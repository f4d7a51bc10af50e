//! New images from a layer berth wrote itself (`commit`, `import`): the
//! `--change` instructions Docker accepts applied to an image config, and
//! the config, manifest and image recorded on top of a base image's layers.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::NewLayer;
use crate::manifest::{self, Document};
use crate::pull::MAX_CONFIG;
use crate::registry::{DOCKER_MANIFEST, MAX_MANIFEST, OCI_MANIFEST};
use crate::store::Store;
use serde_json::{json, Map, Value};

/// The instructions `--change` takes (Docker's set for commit and import).
pub const CHANGE_INSTRUCTIONS: [&str; 10] = [
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "USER",
    "VOLUME",
    "WORKDIR",
    "STOPSIGNAL",
];

/// The manifest and config format of a new image (`--format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageFormat {
    #[default]
    Oci,
    Docker,
}

impl ImageFormat {
    pub fn parse(s: &str) -> Result<ImageFormat> {
        match s {
            "oci" => Ok(ImageFormat::Oci),
            "docker" => Ok(ImageFormat::Docker),
            _ => Err(Error::Usage(format!(
                "--format {s:?}: expected oci or docker"
            ))),
        }
    }
}

/// One parsed `--change`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Env(Vec<(String, String)>),
    Expose(Vec<String>),
    Label(Vec<(String, String)>),
    Onbuild(String),
    User(String),
    Volume(Vec<String>),
    Workdir(String),
    StopSignal(String),
}

fn bad(change: &str, msg: impl std::fmt::Display) -> Error {
    Error::Usage(format!("--change {change:?}: {msg}"))
}

/// Words as a Dockerfile's shell-less forms split them: on blanks, with
/// "double" and 'single' quotes and backslash escapes.
fn words(s: &str, change: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            c if c.is_whitespace() => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            '\\' => {
                has = true;
                if let Some(n) = it.next() {
                    cur.push(n);
                }
            }
            '"' | '\'' => {
                has = true;
                let q = c;
                loop {
                    match it.next() {
                        None => return Err(bad(change, format!("unterminated {q} quote"))),
                        Some(c) if c == q => break,
                        Some('\\') if q == '"' => {
                            if let Some(n) = it.next() {
                                cur.push(n);
                            }
                        }
                        Some(c) => cur.push(c),
                    }
                }
            }
            c => {
                has = true;
                cur.push(c);
            }
        }
    }
    if has {
        out.push(cur);
    }
    Ok(out)
}

/// KEY=VALUE pairs (or, for ENV and LABEL with a single pair, `KEY VALUE`).
fn pairs(rest: &str, change: &str) -> Result<Vec<(String, String)>> {
    let w = words(rest, change)?;
    if w.is_empty() {
        return Err(bad(change, "needs KEY=VALUE"));
    }
    if !w[0].contains('=') {
        // The old form: `ENV KEY the value`.
        let mut sp = rest.trim().splitn(2, char::is_whitespace);
        let k = sp.next().unwrap_or_default().to_string();
        let v = sp.next().map(str::trim).unwrap_or_default();
        if v.is_empty() {
            return Err(bad(change, "needs KEY=VALUE or KEY VALUE"));
        }
        let v = words(v, change)?.join(" ");
        return Ok(vec![(k, v)]);
    }
    w.into_iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(change, format!("{kv:?} is not KEY=VALUE")))?;
            if k.is_empty() {
                return Err(bad(change, "an empty key"));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The exec form (a JSON array of strings) or the shell form (`sh -c`).
fn command(rest: &str, change: &str) -> Result<Vec<String>> {
    let t = rest.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return Ok(v);
        }
    }
    if t.is_empty() {
        return Err(bad(change, "needs a command"));
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), t.to_string()])
}

impl Change {
    /// Parses one `--change` value (`INSTRUCTION ARGUMENTS`).
    pub fn parse(s: &str) -> Result<Change> {
        let t = s.trim_start();
        let (word, rest) = match t.find(char::is_whitespace) {
            Some(i) => (&t[..i], t[i..].trim()),
            None => (t, ""),
        };
        let up = word.to_ascii_uppercase();
        if !CHANGE_INSTRUCTIONS.contains(&up.as_str()) {
            return Err(bad(
                s,
                format!(
                    "{} is not an instruction --change takes (it takes {})",
                    if word.is_empty() {
                        "an empty instruction"
                    } else {
                        word
                    },
                    CHANGE_INSTRUCTIONS.join(", ")
                ),
            ));
        }
        let need = |what: &str| -> Result<String> {
            if rest.is_empty() {
                return Err(bad(s, format!("{up} needs {what}")));
            }
            Ok(words(rest, s)?.join(" "))
        };
        Ok(match up.as_str() {
            "CMD" => Change::Cmd(command(rest, s)?),
            "ENTRYPOINT" => Change::Entrypoint(command(rest, s)?),
            "ENV" => Change::Env(pairs(rest, s)?),
            "LABEL" => Change::Label(pairs(rest, s)?),
            "EXPOSE" => {
                let mut ports = Vec::new();
                for p in words(rest, s)? {
                    let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                        return Err(bad(s, format!("{p}: the protocol is tcp, udp or sctp")));
                    }
                    let (lo, hi) = num.split_once('-').unwrap_or((num, num));
                    let port = |x: &str| {
                        x.parse::<u16>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| bad(s, format!("{p}: not a port (1-65535)")))
                    };
                    let (lo, hi) = (port(lo)?, port(hi)?);
                    if hi < lo {
                        return Err(bad(s, format!("{p}: an empty range")));
                    }
                    for n in lo..=hi {
                        ports.push(format!("{n}/{proto}"));
                    }
                }
                if ports.is_empty() {
                    return Err(bad(s, "EXPOSE needs a port"));
                }
                Change::Expose(ports)
            }
            "ONBUILD" => {
                if rest.is_empty() {
                    return Err(bad(s, "ONBUILD needs an instruction"));
                }
                let inner = rest.split_whitespace().next().unwrap_or("");
                if matches!(
                    inner.to_ascii_uppercase().as_str(),
                    "ONBUILD" | "FROM" | "MAINTAINER"
                ) {
                    return Err(bad(s, format!("ONBUILD {inner} is not allowed")));
                }
                Change::Onbuild(rest.to_string())
            }
            "USER" => Change::User(need("a user")?),
            "WORKDIR" => Change::Workdir(need("a directory")?),
            "STOPSIGNAL" => Change::StopSignal(need("a signal")?),
            "VOLUME" => {
                let t = rest.trim();
                let v = if t.starts_with('[') {
                    serde_json::from_str::<Vec<String>>(t)
                        .map_err(|e| bad(s, format!("not a JSON list of paths: {e}")))?
                } else {
                    words(rest, s)?
                };
                if v.is_empty() || v.iter().any(|p| p.is_empty()) {
                    return Err(bad(s, "VOLUME needs a path"));
                }
                Change::Volume(v)
            }
            _ => unreachable!("checked against CHANGE_INSTRUCTIONS"),
        })
    }
}

/// Parses every `--change` (all are checked before anything is done).
pub fn parse_changes(changes: &[String]) -> Result<Vec<Change>> {
    changes.iter().map(|c| Change::parse(c)).collect()
}

/// Applies `changes` to the `config` object of an image config (Docker's
/// field names), as Docker's commit does: ENTRYPOINT clears a CMD no
/// earlier change set; WORKDIR is relative to the one before it.
pub fn apply_changes(config: &mut Map<String, Value>, changes: &[Change]) {
    let mut cmd_set = false;
    let obj = |config: &mut Map<String, Value>, k: &str| -> Map<String, Value> {
        match config.get(k) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        }
    };
    for c in changes {
        match c {
            Change::Cmd(v) => {
                config.insert("Cmd".into(), json!(v));
                cmd_set = true;
            }
            Change::Entrypoint(v) => {
                config.insert("Entrypoint".into(), json!(v));
                if !cmd_set {
                    config.insert("Cmd".into(), Value::Null);
                }
            }
            Change::Env(kvs) => {
                let mut env: Vec<String> = config
                    .get("Env")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                for (k, v) in kvs {
                    let kv = format!("{k}={v}");
                    match env
                        .iter_mut()
                        .find(|e| e.split_once('=').map_or(e.as_str(), |x| x.0) == k)
                    {
                        Some(e) => *e = kv,
                        None => env.push(kv),
                    }
                }
                config.insert("Env".into(), json!(env));
            }
            Change::Label(kvs) => {
                let mut m = obj(config, "Labels");
                for (k, v) in kvs {
                    m.insert(k.clone(), json!(v));
                }
                config.insert("Labels".into(), Value::Object(m));
            }
            Change::Expose(ports) => {
                let mut m = obj(config, "ExposedPorts");
                for p in ports {
                    m.insert(p.clone(), json!({}));
                }
                config.insert("ExposedPorts".into(), Value::Object(m));
            }
            Change::Volume(paths) => {
                let mut m = obj(config, "Volumes");
                for p in paths {
                    m.insert(p.clone(), json!({}));
                }
                config.insert("Volumes".into(), Value::Object(m));
            }
            Change::Onbuild(i) => {
                let mut v = config
                    .get("OnBuild")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                v.push(json!(i));
                config.insert("OnBuild".into(), Value::Array(v));
            }
            Change::User(u) => {
                config.insert("User".into(), json!(u));
            }
            Change::StopSignal(s) => {
                config.insert("StopSignal".into(), json!(s));
            }
            Change::Workdir(w) => {
                let base = config
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .unwrap_or("/")
                    .to_string();
                let joined = if w.starts_with('/') {
                    w.clone()
                } else {
                    format!("{}/{w}", base.trim_end_matches('/'))
                };
                config.insert("WorkingDir".into(), json!(clean_path(&joined)));
            }
        }
    }
}

/// `/a/./b/../c/` -> `/a/c`.
fn clean_path(p: &str) -> String {
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

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// A layer media type in `format`'s vocabulary.
fn layer_type(mt: &str, format: ImageFormat) -> Result<String> {
    let comp = manifest::compression(mt)?;
    use crate::manifest::Compression as C;
    Ok(match (format, comp) {
        (ImageFormat::Oci, C::None) => "application/vnd.oci.image.layer.v1.tar",
        (ImageFormat::Oci, C::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
        (ImageFormat::Oci, C::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
        (ImageFormat::Docker, C::None) => "application/vnd.docker.image.rootfs.diff.tar",
        (ImageFormat::Docker, C::Gzip) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        (ImageFormat::Docker, C::Zstd) => {
            return Err(Error::Usage(
                "the docker format has no zstd layers: use --format oci, or gzip".into(),
            ))
        }
    }
    .to_string())
}

/// Records a new image: the layers of `base` (if any), then `layer`
/// (stored under `chain` by [`crate::layer::store_new_layer`]), with the
/// image config `config` (whose `rootfs.diff_ids` get the new layer's diff
/// id appended), named `name` if given (else dangling). The caller holds
/// [`Store::pull_lock`]. Returns the image id.
pub fn record_image(
    store: &mut Store,
    base: Option<&Digest>,
    config: Value,
    layer: &NewLayer,
    chain: &Digest,
    format: ImageFormat,
    name: Option<&str>,
) -> Result<Digest> {
    record_image_with(store, base, config, Some((layer, chain)), format, name)
}

/// [`record_image`] with the new layer optional: without one, the image
/// has `base`'s layers and the new `config` (a build's stage that ends on
/// instructions that only change the config, as ENV or CMD).
pub fn record_image_with(
    store: &mut Store,
    base: Option<&Digest>,
    mut config: Value,
    layer: Option<(&NewLayer, &Digest)>,
    format: ImageFormat,
    name: Option<&str>,
) -> Result<Digest> {
    let names: Vec<String> = match name {
        Some(n) => {
            let r = crate::Reference::parse(n)?;
            if r.digest.is_some() {
                return Err(Error::Usage(format!(
                    "{n}: a new image cannot be named by a digest; give NAME[:TAG]"
                )));
            }
            vec![r.to_string()]
        }
        None => vec![],
    };
    let (mut chains, mut descs) = (Vec::new(), Vec::new());
    if let Some(b) = base {
        let img = store.resolve(&b.to_string())?;
        chains = store.image_layers(&img.id)?;
        let mtype = store.manifest_type(&img.id)?;
        let body = store.read_blob(&img.manifest_digest, MAX_MANIFEST)?;
        let Document::Manifest { layers, .. } = manifest::parse(&body, &mtype, &b.to_string())?
        else {
            return Err(Error::Protocol {
                what: b.to_string(),
                msg: "stored manifest is an index".into(),
            });
        };
        descs = layers;
    }
    let base_layers = descs.len();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len);
    if diff_ids != base_layers {
        return Err(Error::Usage(format!(
            "the base image's config lists {diff_ids} layers but its manifest {base_layers}"
        )));
    }
    if !config["rootfs"].is_object() {
        config["rootfs"] = json!({"type": "layers", "diff_ids": []});
    }
    if let Some((layer, chain)) = layer {
        descs.push(layer.desc.clone());
        chains.push(chain.clone());
        match config["rootfs"]["diff_ids"].as_array_mut() {
            Some(a) => a.push(json!(layer.diff_id.to_string())),
            None => config["rootfs"]["diff_ids"] = json!([layer.diff_id.to_string()]),
        }
    }
    let cbody = serde_json::to_vec(&config).map_err(|e| Error::Usage(e.to_string()))?;
    let cid = Digest::of(&cbody);
    let (mtype, ctype) = match format {
        ImageFormat::Oci => (OCI_MANIFEST, OCI_CONFIG),
        ImageFormat::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG),
    };
    let layers = descs
        .iter()
        .map(|d| {
            Ok(json!({
                "mediaType": layer_type(&d.media_type, format)?,
                "digest": d.digest.to_string(),
                "size": d.size,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let m = json!({
        "schemaVersion": 2,
        "mediaType": mtype,
        "config": {"mediaType": ctype, "digest": cid.to_string(), "size": cbody.len()},
        "layers": layers,
    });
    let mbody = serde_json::to_vec(&m).map_err(|e| Error::Usage(e.to_string()))?;
    let md = Digest::of(&mbody);
    store.put_blobs(&[(&cid, &cbody), (&md, &mbody)])?;
    let s = |k: &str| config[k].as_str().unwrap_or_default().to_string();
    let created = config["created"].as_str().map(str::to_string);
    store.add_image(
        &cid,
        &md,
        mtype,
        created.as_deref(),
        &s("os"),
        &s("architecture"),
        &chains,
        &names,
    )?;
    Ok(cid)
}

/// The config document of a stored image.
pub fn image_config(store: &Store, id: &Digest) -> Result<Value> {
    let raw = store.read_blob(id, MAX_CONFIG)?;
    serde_json::from_slice(&raw).map_err(|e| Error::Protocol {
        what: format!("image config {id}"),
        msg: format!("not JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(start: Value, changes: &[&str]) -> Value {
        let cs: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        let parsed = parse_changes(&cs).unwrap();
        let mut m = start.as_object().cloned().unwrap();
        apply_changes(&mut m, &parsed);
        Value::Object(m)
    }

    #[test]
    fn changes_as_docker_applies_them() {
        let c = applied(
            json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/srv"}),
            &[
                "ENV A=2 B=\"two words\"",
                "env C the rest of it",
                "EXPOSE 80 53/udp 8000-8001",
                "LABEL a=b \"c d\"=e",
                "WORKDIR app/../www",
                "USER 1000:1000",
                "VOLUME [\"/data\", \"/logs\"]",
                "STOPSIGNAL SIGINT",
                "ONBUILD RUN echo hi",
                "ENTRYPOINT [\"/bin/app\", \"-v\"]",
            ],
        );
        assert_eq!(
            c["Env"],
            json!(["PATH=/bin", "A=2", "B=two words", "C=the rest of it"])
        );
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
        );
        assert_eq!(c["Labels"], json!({"a": "b", "c d": "e"}));
        assert_eq!(c["WorkingDir"], "/srv/www");
        assert_eq!(c["User"], "1000:1000");
        assert_eq!(c["Volumes"], json!({"/data": {}, "/logs": {}}));
        assert_eq!(c["StopSignal"], "SIGINT");
        assert_eq!(c["OnBuild"], json!(["RUN echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/app", "-v"]));
        // ENTRYPOINT without a CMD before it clears the image's CMD.
        assert_eq!(c["Cmd"], Value::Null);
        let c = applied(json!({}), &["CMD [\"a\"]", "ENTRYPOINT e f"]);
        assert_eq!(c["Cmd"], json!(["a"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "e f"]));
        let c = applied(json!({}), &["cmd echo \"$HOME\""]);
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo \"$HOME\""]));
    }

    #[test]
    fn changes_outside_dockers_set_are_refused_by_name() {
        for (c, what) in [
            ("RUN rm -rf /", "RUN"),
            ("FROM scratch", "FROM"),
            ("COPY a b", "COPY"),
            ("", "an empty instruction"),
            ("EXPOSE 0", "not a port"),
            ("EXPOSE 80/xyz", "tcp, udp or sctp"),
            ("ENV", "KEY=VALUE"),
            ("ENV A", "KEY=VALUE"),
            ("LABEL =x", "empty key"),
            ("USER", "USER needs"),
            ("ONBUILD FROM x", "ONBUILD FROM"),
            ("LABEL a=\"unterminated", "unterminated"),
        ] {
            let e = parse_changes(&[c.to_string()]).unwrap_err().to_string();
            assert!(e.contains(what), "{c:?}: {e}");
        }
    }
}
