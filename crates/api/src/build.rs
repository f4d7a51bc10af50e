//! `POST /build`: what `DOCKER_BUILDKIT=0 docker build`, docker-compose
//! and the SDKs send. The body is the context tarball (plain or gzip),
//! unpacked as `berth build -` unpacks one (hostile names cleaned, inside
//! a directory of its own); the build is berth's builder
//! ([`berth_engine::Engine::build`]); its progress goes out as Docker's
//! JSON lines: `{"stream": ...}` for steps and RUN output, `{"aux":
//! {"ID": ...}}` and `Successfully built/tagged` at the end (the SDKs and
//! docker-compose read the id from those), `{"errorDetail": ...,
//! "error": ...}` for a failure (with the RUN step's exit code, which the
//! docker CLI exits with).
//!
//! `X-Registry-Config` (the client's logins, by registry) gives the
//! credentials of the base images' pulls; they live in the build's
//! [`Host`] for the request only (never stored or logged; a registry the
//! client has no login for is pulled with the store's own login files,
//! as any pull).
//!
//! Options berth's builder has no equivalent of are refused with a 400
//! naming them, unless they are at their default (the docker CLI sends
//! every one of them on each build): resource limits, extra hosts,
//! security options, isolation, a remote context, BuildKit
//! (`version=2`). Ignored, as harmless: `rm`/`forcerm` (berth removes its
//! step containers always), `cachefrom` (a hint), `session`, `buildid`.

use crate::error::{ApiError, ApiResult};
use crate::http::{self, Query, Resp};
use crate::server::Shared;
use berth_engine::build::{
    BuildError, BuildHost, BuildOptions, DockerfileSource, ImageFormat, LayerCompression, Squash,
    StdinContext,
};
use berth_engine::images::{
    Digest, ImageChoice, ImageForError, Images, Platform, Pull, PullPolicy, Reference,
};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::Request;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a build's output waits for a client that does not read
/// before it is dropped (the build goes on).
const OUTPUT_STALL: Duration = Duration::from_secs(60);

/// What `/build`'s query asks for, checked.
#[derive(Debug, PartialEq)]
pub struct BuildQuery {
    pub tags: Vec<String>,
    pub dockerfile: String,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub labels: Vec<(String, String)>,
    pub no_cache: bool,
    pub pull: bool,
    pub quiet: bool,
    pub network: Option<String>,
    /// `squash=1`: the build's layers in one, on the base's (Docker's
    /// experimental --squash).
    pub squash: bool,
    /// `platform`: this host's platform, checked here and by the builder.
    pub platform: Option<String>,
}

/// Every value of `name` in the raw query string (`t` may be given
/// several times).
fn all(raw: Option<&str>, name: &str) -> Vec<String> {
    raw.unwrap_or("")
        .split('&')
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (http::unescape(k) == name).then(|| http::unescape(v))
        })
        .collect()
}

/// A JSON object of strings in a query parameter (`buildargs`,
/// `labels`); null values are left out (a build arg the client names
/// without a value: the Dockerfile's default applies).
fn string_map(q: &Query, k: &str) -> ApiResult<BTreeMap<String, String>> {
    let Some(raw) = q.get(k).filter(|v| !v.is_empty() && *v != "null") else {
        return Ok(BTreeMap::new());
    };
    let bad = |why: &str| ApiError::bad_request(format!("build: {k}={raw:?}: {why}"));
    let v: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| bad(&format!("not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("expected a JSON object of strings"))?;
    let mut out = BTreeMap::new();
    for (name, val) in obj {
        match val {
            serde_json::Value::String(s) => {
                out.insert(name.clone(), s.clone());
            }
            serde_json::Value::Null => {}
            _ => return Err(bad(&format!("the value of {name:?} is not a string"))),
        }
    }
    Ok(out)
}

/// Checks `/build`'s query (`raw`: the query string, for the repeated
/// `t` and `extrahosts`).
pub fn parse_query(raw: Option<&str>) -> ApiResult<BuildQuery> {
    let q = Query::parse(raw);
    let unsupported = |what: &str, how: &str| {
        ApiError::bad_request(format!(
            "build: {what} is not supported by berth's builder{how}"
        ))
    };
    if q.get("version").is_some_and(|v| v == "2") {
        return Err(unsupported(
            "BuildKit (version=2)",
            "; use the classic builder's API (DOCKER_BUILDKIT=0 docker build)",
        ));
    }
    if q.get("remote").is_some_and(|v| !v.is_empty()) {
        return Err(unsupported(
            "a remote context (remote=)",
            "; send the context as the request body (clone the repository and build its directory)",
        ));
    }
    // Numbers the docker CLI always sends, as 0 when not asked for.
    for k in [
        "cpushares",
        "cpuquota",
        "cpuperiod",
        "memory",
        "memswap",
        "shmsize",
    ] {
        match q.get(k) {
            None | Some("") | Some("0") => {}
            Some("-1") if k == "memswap" => {}
            Some(v) => {
                return Err(unsupported(
                    &format!("{k}={v}"),
                    "; RUN steps take the engine's defaults",
                ))
            }
        }
    }
    for k in ["cpusetcpus", "cpusetmems", "cgroupparent", "outputs"] {
        if let Some(v) = q.get(k).filter(|v| !v.is_empty() && *v != "null") {
            return Err(unsupported(&format!("{k}={v}"), ""));
        }
    }
    for k in ["extrahosts", "securityopt"] {
        if let Some(v) = all(raw, k).into_iter().find(|v| !v.is_empty()) {
            return Err(unsupported(&format!("{k}={v}"), ""));
        }
    }
    if let Some(u) = q
        .get("ulimits")
        .filter(|v| !matches!(*v, "" | "null" | "[]"))
    {
        return Err(unsupported(&format!("ulimits={u}"), ""));
    }
    if let Some(i) = q.get("isolation").filter(|v| !matches!(*v, "" | "default")) {
        return Err(unsupported(&format!("isolation={i}"), ""));
    }
    let platform = q
        .get("platform")
        .filter(|p| !p.is_empty())
        .map(String::from);
    if let Some(p) = platform.as_deref() {
        let host = Platform::host();
        let native = format!("{}/{}", host.os, host.architecture);
        let p = p.to_ascii_lowercase();
        let same = Platform::parse(&p)
            .is_ok_and(|w| w.os == host.os && w.architecture == host.architecture);
        if !same && p != host.os {
            return Err(unsupported(
                &format!("platform={p}"),
                &format!(" (it builds for this host's {native} only)"),
            ));
        }
    }
    let network = match q.get("networkmode").unwrap_or("") {
        "" | "default" | "bridge" => None,
        n @ ("host" | "none") => Some(n.to_string()),
        n => {
            return Err(unsupported(
                &format!("networkmode={n}"),
                " (RUN steps take default, bridge, host or none)",
            ))
        }
    };
    let tags: Vec<String> = all(raw, "t")
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect();
    for t in &tags {
        Reference::parse(t)
            .map_err(|e| ApiError::bad_request(format!("invalid tag {t:?}: {e}")))?;
    }
    let dockerfile = match q.get("dockerfile").filter(|d| !d.is_empty()) {
        // Inside the context always (never a path of the service's host).
        Some(d) => d.trim_start_matches('/').to_string(),
        None => "Dockerfile".to_string(),
    };
    if dockerfile.is_empty() {
        return Err(ApiError::bad_request(
            "build: dockerfile= names no file in the context",
        ));
    }
    let labels = string_map(&q, "labels")?.into_iter().collect();
    Ok(BuildQuery {
        tags,
        dockerfile,
        target: q.get("target").filter(|t| !t.is_empty()).map(String::from),
        build_args: string_map(&q, "buildargs")?,
        labels,
        no_cache: q.flag("nocache"),
        pull: q.flag("pull"),
        quiet: q.flag("q"),
        network,
        squash: q.flag("squash"),
        platform,
    })
}

/// One of Docker's JSON lines.
fn line(v: serde_json::Value) -> Bytes {
    let mut b = v.to_string().into_bytes();
    b.extend_from_slice(b"\r\n");
    Bytes::from(b)
}

/// The build's side of the stream: progress and RUN output as `stream`
/// lines (none when quiet), base images pulled by the query's policy.
struct Host {
    root: std::path::PathBuf,
    run_root: std::path::PathBuf,
    tx: mpsc::Sender<Bytes>,
    quiet: bool,
    pull: bool,
    /// The client's logins (X-Registry-Config), for the pulls.
    logins: crate::auth::RegistryConfig,
    /// The client stopped reading: output is dropped from then on.
    gone: AtomicBool,
}

impl Host {
    fn send(&self, b: Bytes) {
        if !self.gone.load(Ordering::Relaxed) && !http::send_within(&self.tx, b, OUTPUT_STALL) {
            self.gone.store(true, Ordering::Relaxed);
        }
    }

    fn stream(&self, text: &str) {
        if !self.quiet {
            self.send(line(serde_json::json!({ "stream": text })));
        }
    }
}

impl BuildHost for Host {
    fn base_image(&self, name: &str) -> Result<Digest, String> {
        let policy = if self.pull {
            PullPolicy::Always
        } else {
            PullPolicy::Missing
        };
        let engine = berth_engine::Engine::open(&self.root, &self.run_root)
            .map_err(|e| format!("image {name:?}: {e}"))?;
        let fallback = match engine.image_for(name, policy, None) {
            Ok(ImageChoice::Stored(id)) => return Ok(id),
            Ok(ImageChoice::Pull { fallback, .. }) => fallback,
            Err(ImageForError::NotPresent { .. }) => None,
            Err(e) => return Err(format!("image {name:?}: {e}")),
        };
        self.stream(&format!("Pulling {name}\n"));
        let mut req = berth_engine::images::PullRequest {
            image: name.to_string(),
            platform: None,
            tls_verify: !crate::images::loopback_registry(name),
            creds: None,
            parallel: 3,
        };
        // The registry is known once the name is resolved (a short name
        // may be an alias of registries.conf): then the client's login
        // for it, if it gave one.
        let pulled = Pull::prepare(&req).and_then(|p| {
            let login = self
                .logins
                .login_for(&p.reference.registry)
                .map_err(berth_engine::images::StoreError::Usage)?;
            let p = match login {
                Some(l) => {
                    req.creds = Some(l.creds().to_string());
                    Pull::prepare(&req)?
                }
                None => p,
            };
            Images::open(&self.root)?.pull(&p, &|_| {}).map(|p| p.id)
        });
        match (pulled, fallback) {
            (Ok(id), _) => Ok(id),
            (Err(_), Some(id)) => Ok(id),
            (Err(e), None) => Err(format!("pull {name}: {e}")),
        }
    }

    fn progress(&self, l: &str) {
        self.stream(&format!("{l}\n"));
    }

    fn output(&self, _stage: &str, data: &[u8]) {
        self.stream(&String::from_utf8_lossy(data));
    }

    /// The client went away (hyper dropped the response body, or it
    /// stopped reading): dockerd cancels the build then, and so do we.
    fn cancelled(&self) -> bool {
        self.gone.load(Ordering::Relaxed) || self.tx.is_closed()
    }
}

/// Docker's error line; a RUN step's exit code as its `code`.
fn error_line(e: &BuildError) -> Bytes {
    let msg = e.to_string();
    let mut detail = serde_json::json!({ "message": msg });
    if let BuildError::RunFailed { code, .. } = e {
        detail["code"] = serde_json::json!(code);
    }
    line(serde_json::json!({ "errorDetail": detail, "error": msg }))
}

/// `POST /build`.
pub async fn build(s: &Arc<Shared>, req: Request<Incoming>) -> ApiResult<Resp> {
    let bq = parse_query(req.uri().query())?;
    let logins = crate::auth::RegistryConfig::parse(
        req.headers()
            .get("X-Registry-Config")
            .and_then(|h| h.to_str().ok()),
    )?;
    // The context: read and unpacked before the answer (a broken tarball
    // is a 400).
    let (mut input, feed) = crate::archive::body_reader(req.into_body());
    let s2 = s.clone();
    let dockerfile = bq.dockerfile.clone();
    let unpacked = s
        .engine(move |e| {
            let mut head = Vec::with_capacity(512);
            (&mut input)
                .take(512)
                .read_to_end(&mut head)
                .map_err(|e| ApiError::bad_request(format!("build: read the context: {e}")))?;
            if head.is_empty() {
                return Err(ApiError::bad_request(
                    "build: the request body holds no build context (a tarball of it is expected)",
                ));
            }
            let kind = StdinContext::sniff(&head);
            if kind == StdinContext::Dockerfile {
                return Err(ApiError::bad_request(
                    "build: the request body is not a tar or gzip-compressed tar of the build context",
                ));
            }
            let mut all = (&head[..]).chain(input);
            let ctx = e
                .unpack_context(&mut all, kind == StdinContext::Gzip)
                .map_err(|e| ApiError::bad_request(format!("build: the context tarball: {e}")));
            let _ = &s2;
            Ok((ctx, all.into_inner().1))
        })
        .await;
    let unpacked = match unpacked {
        Ok((ctx, input)) => {
            // The client's last bytes (past the tar's end) are read
            // before the answer.
            crate::archive::drain(input).await;
            ctx
        }
        Err(e) => Err(e),
    };
    feed.abort();
    let unpacked = unpacked?;
    let dir = unpacked.path().to_path_buf();
    // `dockerfile` is "Dockerfile" unless the client named one.
    let dockerfile = if dockerfile == "Dockerfile" {
        berth_engine::build::default_dockerfile(&dir).to_string()
    } else {
        dockerfile
    };
    let opts = BuildOptions {
        context: Some(dir),
        dockerfile: DockerfileSource::Path(dockerfile),
        tags: bq.tags.clone(),
        target: bq.target.clone(),
        build_args: bq.build_args.clone(),
        no_cache: bq.no_cache,
        labels: bq.labels.clone(),
        network: bq.network.clone(),
        timestamp: None,
        format: ImageFormat::Oci,
        compression: LayerCompression::Gzip,
        secrets: Default::default(),
        ssh: Default::default(),
        contexts: BTreeMap::new(),
        platform: bq.platform.clone(),
        squash: if bq.squash { Squash::New } else { Squash::No },
    };
    let (resp, tx) = http::stream("application/json");
    let s2 = s.clone();
    tokio::task::spawn_blocking(move || {
        let host = Host {
            root: s2.root.clone(),
            run_root: s2.run_root.clone(),
            tx: tx.clone(),
            quiet: bq.quiet,
            pull: bq.pull,
            logins,
            gone: AtomicBool::new(false),
        };
        let built = berth_engine::Engine::open(&s2.root, &s2.run_root)
            .map_err(BuildError::from)
            .and_then(|e| e.build(&opts, &host));
        drop(unpacked);
        let out = match built {
            Ok(b) => {
                let id = b.id.to_string();
                let short = id
                    .strip_prefix("sha256:")
                    .unwrap_or(&id)
                    .get(..12)
                    .unwrap_or(&id)
                    .to_string();
                if bq.quiet {
                    vec![line(serde_json::json!({ "stream": format!("{id}\n") }))]
                } else {
                    let mut v = vec![
                        line(serde_json::json!({ "aux": { "ID": id } })),
                        line(serde_json::json!({
                            "stream": format!("Successfully built {short}\n")
                        })),
                    ];
                    for t in &bq.tags {
                        v.push(line(
                            serde_json::json!({ "stream": format!("Successfully tagged {t}\n") }),
                        ));
                    }
                    v
                }
            }
            Err(e) => vec![error_line(&e)],
        };
        for b in out {
            host.send(b);
        }
    });
    Ok(resp)
}

/// `POST /build/prune` (`docker builder prune`, and the last step of
/// `docker system prune`): berth's build cache, all of it (its entries
/// have no shared or internal kinds to keep apart, so `all` changes
/// nothing), its entries' names and the bytes freed. Filters and
/// `keep-storage`, which would keep some, are refused by name.
pub async fn prune(s: &Arc<Shared>, q: &Query) -> ApiResult<Resp> {
    if let Some(f) = q.filters()?.first() {
        return Err(ApiError::bad_request(format!(
            "build cache prune: the filter {f:?} is not supported by berth's builder (its whole cache is pruned)"
        )));
    }
    if let Some(k) = q.int::<i64>("keep-storage")?.filter(|k| *k > 0) {
        return Err(ApiError::bad_request(format!(
            "build cache prune: keep-storage={k} is not supported by berth's builder (its whole cache is pruned)"
        )));
    }
    let (gone, bytes) = s.engine(|e| Ok(e.builder_prune()?)).await?;
    Ok(http::json(
        &serde_json::json!({ "CachesDeleted": gone, "SpaceReclaimed": bytes }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_docker_cli_sends_is_accepted() {
        // docker 20.10's `build -t a -t b:2 --build-arg X=1 --label l=v .`
        let q = "buildargs=%7B%22X%22%3A%221%22%2C%22Y%22%3Anull%7D&cachefrom=%5B%5D&cgroupparent=&cpuperiod=0&cpuquota=0&cpusetcpus=&cpusetmems=&cpushares=0&dockerfile=Dockerfile&labels=%7B%22l%22%3A%22v%22%7D&memory=0&memswap=0&networkmode=default&rm=1&shmsize=0&t=a&t=b%3A2&target=&ulimits=null&version=1";
        let b = parse_query(Some(q)).unwrap();
        assert_eq!(b.tags, ["a", "b:2"]);
        assert_eq!(b.dockerfile, "Dockerfile");
        assert_eq!(
            b.build_args,
            BTreeMap::from([("X".to_string(), "1".to_string())])
        );
        assert_eq!(b.labels, [("l".to_string(), "v".to_string())]);
        assert_eq!(
            (b.target, b.network, b.quiet, b.pull),
            (None, None, false, false)
        );
        let b = parse_query(Some(
            "q=1&pull=1&nocache=1&networkmode=host&dockerfile=/sub/Df&target=t",
        ))
        .unwrap();
        assert!(b.quiet && b.pull && b.no_cache);
        assert_eq!(b.network.as_deref(), Some("host"));
        assert_eq!(b.dockerfile, "sub/Df");
        assert_eq!(b.target.as_deref(), Some("t"));
        // Never a path of the service's host.
        let b = parse_query(Some("dockerfile=%2F%2Fetc%2Fpasswd")).unwrap();
        assert_eq!(b.dockerfile, "etc/passwd");
    }

    #[test]
    fn what_berth_cannot_do_is_refused_by_name() {
        for (q, word) in [
            ("version=2", "BuildKit"),
            ("memory=1000", "memory=1000"),
            ("extrahosts=a%3A1.2.3.4", "extrahosts"),
            ("networkmode=mynet", "networkmode=mynet"),
            ("remote=https%3A%2F%2Fexample.com%2Fr.git", "remote"),
            ("platform=linux%2Fs390x", "platform=linux/s390x"),
            ("buildargs=%5B1%5D", "buildargs"),
            ("labels=%7B%22a%22%3A1%7D", "labels"),
            ("t=UPPER%3A1", "invalid tag"),
            ("ulimits=%5B%7B%22Name%22%3A%22nofile%22%7D%5D", "ulimits"),
        ] {
            let e = parse_query(Some(q)).unwrap_err();
            assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST);
            assert!(e.message.contains(word), "{q}: {}", e.message);
        }
    }
}
