//! A client for the OCI distribution API: manifests and blobs, anonymous,
//! bearer-token and Basic authentication, retries with backoff, and blob
//! downloads that resume with Range after a broken connection.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::{is_loopback, Reference};
use base64::Engine as _;
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Every manifest type berth reads, as the Accept list (without them, a
/// registry may answer with another type, or convert to schema 1).
pub const MANIFEST_TYPES: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];
/// Manifests and indexes larger than this are refused (CVE-2023-25153).
pub const MAX_MANIFEST: u64 = 4 << 20;
const ATTEMPTS: u32 = 4;
/// The repository of a registry-only client (`login`): asks for no scope.
const LOGIN_REPOSITORY: &str = "berth-login";

/// How to reach a registry.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Plain HTTP (also the default for loopback registries, as Docker).
    pub insecure: bool,
    /// user, password (from --creds or an auth file).
    pub credentials: Option<(String, String)>,
}

/// A request body that can be sent again on a retry.
#[derive(Clone, Copy)]
pub enum Body<'a> {
    None,
    Bytes(&'a [u8]),
    /// A file and its length.
    File(&'a std::path::Path, u64),
}

#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    registry: String,
    repository: String,
    creds: Option<(String, String)>,
    /// The Authorization header that worked, shared by download threads.
    auth: Arc<Mutex<Option<String>>>,
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

pub(crate) fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let k = k.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let mut val = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => val.push(c),
                }
            }
            (val, &q[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(k, v);
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

impl Client {
    pub fn new(r: &Reference, opts: &Options) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(stall_timeout())
            // Redirects are followed by hand: credentials never go to
            // another host (blob CDNs, foreign URLs).
            .redirects(0)
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build();
        let scheme = if opts.insecure || is_loopback(&r.registry) {
            "http"
        } else {
            "https"
        };
        Client {
            agent,
            base: format!("{scheme}://{}", r.api_host()),
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            creds: opts.credentials.clone(),
            auth: Arc::new(Mutex::new(None)),
        }
    }

    /// A client for the registry itself (no repository), for `login`.
    pub fn for_registry(registry: &str, opts: &Options) -> Client {
        let r = Reference {
            registry: registry.to_string(),
            repository: LOGIN_REPOSITORY.to_string(),
            tag: None,
            digest: None,
        };
        Client::new(&r, opts)
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    fn net(&self, e: impl std::fmt::Display) -> Error {
        Error::Network {
            registry: self.registry.clone(),
            msg: e.to_string(),
        }
    }

    /// Gets a token (or Basic header) for a 401 challenge.
    fn authenticate(&self, challenge: &str, what: &str) -> Result<()> {
        let unauthorized = |msg: String| Error::Unauthorized {
            registry: self.registry.clone(),
            what: what.to_string(),
            msg,
        };
        let c = parse_challenge(challenge)
            .ok_or_else(|| unauthorized(format!("unparsable challenge {challenge:?}")))?;
        let header = match c.scheme.as_str() {
            "basic" => {
                let (u, p) = self.creds.as_ref().ok_or_else(|| {
                    unauthorized("the registry wants a user name and password".into())
                })?;
                basic(u, p)
            }
            "bearer" => {
                let realm = c
                    .params
                    .get("realm")
                    .ok_or_else(|| unauthorized("bearer challenge without a realm".into()))?;
                if !(realm.starts_with("https://") || realm.starts_with("http://")) {
                    return Err(unauthorized(format!(
                        "token realm {realm:?} is not an http(s) URL"
                    )));
                }
                let scope = c.params.get("scope").cloned().or_else(|| {
                    (self.repository != LOGIN_REPOSITORY)
                        .then(|| format!("repository:{}:pull", self.repository))
                });
                let mut req = self.agent.get(realm);
                if let Some(scope) = &scope {
                    req = req.query("scope", scope);
                }
                if let Some(s) = c.params.get("service") {
                    req = req.query("service", s);
                }
                if let Some((u, p)) = &self.creds {
                    req = req.set("Authorization", &basic(u, p));
                }
                let resp = match req.call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(code, r)) => {
                        return Err(unauthorized(format!(
                            "the token service answered {code} {}",
                            r.status_text()
                        )))
                    }
                    Err(e) => return Err(self.net(format!("token request: {e}"))),
                };
                let mut body = Vec::new();
                resp.into_reader()
                    .take(1 << 20)
                    .read_to_end(&mut body)
                    .map_err(|e| self.net(format!("token response: {e}")))?;
                #[derive(serde::Deserialize)]
                struct Tok {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let t: Tok = serde_json::from_slice(&body)
                    .map_err(|e| unauthorized(format!("token response is not JSON: {e}")))?;
                let tok = t
                    .token
                    .or(t.access_token)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| unauthorized("the token service sent no token".into()))?;
                format!("Bearer {tok}")
            }
            other => return Err(unauthorized(format!("unsupported auth scheme {other:?}"))),
        };
        *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = Some(header);
        Ok(())
    }

    /// GET `path` (under /v2/<repository>/) with retries, authentication
    /// and same-host redirects. `range` asks for the bytes from an offset.
    fn get(
        &self,
        path: &str,
        accept: &[&str],
        range: Option<u64>,
        what: &str,
    ) -> Result<ureq::Response> {
        let mut headers = Vec::new();
        if !accept.is_empty() {
            headers.push(("Accept", accept.join(", ")));
        }
        if let Some(off) = range.filter(|o| *o > 0) {
            headers.push(("Range", format!("bytes={off}-")));
        }
        let url = format!("{}/v2/{}/{}", self.base, self.repository, path);
        self.call("GET", url, &headers, Body::None, what)
    }

    /// One request with retries (network errors, 429, 5xx, with backoff),
    /// authentication on a 401 (once per call), and, for GET and HEAD,
    /// redirects; credentials go only to the registry's own host.
    fn call(
        &self,
        method: &str,
        url: String,
        headers: &[(&str, String)],
        body: Body<'_>,
        what: &str,
    ) -> Result<ureq::Response> {
        let mut url = url;
        let mut authed_retry = false;
        let mut redirects = 0;
        let mut attempt = 0;
        let mut same_host = true;
        loop {
            let mut req = self.agent.request(method, &url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if same_host {
                if let Some(h) = self.auth.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                    req = req.set("Authorization", &h);
                }
            }
            let sent = match body {
                Body::None => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::File(p, len) => match std::fs::File::open(p) {
                    Ok(f) => req.set("Content-Length", &len.to_string()).send(f),
                    Err(e) => {
                        return Err(Error::Io {
                            op: format!("open {}", p.display()),
                            cause: e,
                        })
                    }
                },
            };
            match sent {
                Ok(r) if (300..400).contains(&r.status()) && matches!(method, "GET" | "HEAD") => {
                    redirects += 1;
                    if redirects > 5 {
                        return Err(self.net(format!("{what}: too many redirects")));
                    }
                    let loc = r
                        .header("location")
                        .ok_or_else(|| self.net(format!("{what}: redirect without a Location")))?;
                    let next = if loc.starts_with("http://") || loc.starts_with("https://") {
                        loc.to_string()
                    } else if loc.starts_with('/') {
                        format!("{}{loc}", self.base)
                    } else {
                        return Err(self.net(format!("{what}: unsupported redirect {loc:?}")));
                    };
                    same_host = next.starts_with(&format!("{}/", self.base));
                    url = next;
                    continue;
                }
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(401, r)) if same_host && !authed_retry => {
                    let ch = r.header("www-authenticate").unwrap_or("").to_string();
                    self.authenticate(&ch, what)?;
                    authed_retry = true;
                }
                Err(ureq::Error::Status(code @ (401 | 403), r)) => {
                    return Err(Error::Unauthorized {
                        registry: self.registry.clone(),
                        what: what.to_string(),
                        msg: format!("{code} {}", r.status_text()),
                    })
                }
                Err(ureq::Error::Status(404, _)) => return Err(Error::NotFound(what.to_string())),
                Err(ureq::Error::Status(code, r)) if code == 429 || code >= 500 => {
                    attempt += 1;
                    if attempt >= ATTEMPTS {
                        return Err(self.net(format!("{what}: {code} {}", r.status_text())));
                    }
                    backoff(attempt);
                }
                Err(ureq::Error::Status(code, r)) => {
                    let status = r.status_text().to_string();
                    let mut detail = String::new();
                    let _ = r.into_reader().take(4096).read_to_string(&mut detail);
                    return Err(Error::Protocol {
                        what: what.to_string(),
                        msg: format!("the registry answered {code} {status} {}", detail.trim()),
                    });
                }
                Err(e) => {
                    attempt += 1;
                    if attempt >= ATTEMPTS {
                        return Err(self.net(format!("{what}: {e}")));
                    }
                    backoff(attempt);
                }
            }
        }
    }

    /// `GET /v2/`: checks that the registry answers and that the
    /// credentials (if any) are accepted (`berth login`).
    pub fn ping(&self) -> Result<()> {
        self.call(
            "GET",
            format!("{}/v2/", self.base),
            &[],
            Body::None,
            &self.registry.clone(),
        )
        .map(drop)
    }

    /// True when the repository already has the blob.
    pub fn has_blob(&self, d: &Digest) -> Result<bool> {
        let url = format!("{}/v2/{}/blobs/{d}", self.base, self.repository);
        match self.call("HEAD", url, &[], Body::None, &format!("blob {d}")) {
            Ok(r) => Ok(r.status() == 200),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads a blob in one PUT (POST for an upload URL, then PUT with
    /// the digest), from memory or a file.
    pub fn upload_blob(&self, d: &Digest, body: Body<'_>) -> Result<()> {
        let what = format!("upload blob {d}");
        let url = format!("{}/v2/{}/blobs/uploads/", self.base, self.repository);
        let r = self.call(
            "POST",
            url,
            &[("Content-Length", "0".into())],
            Body::Bytes(b""),
            &what,
        )?;
        if r.status() != 202 {
            return Err(Error::Protocol {
                what,
                msg: format!("starting an upload answered {}", r.status()),
            });
        }
        let loc = r.header("location").ok_or_else(|| Error::Protocol {
            what: what.clone(),
            msg: "no Location for the upload".into(),
        })?;
        let mut put = if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else if loc.starts_with('/') {
            format!("{}{loc}", self.base)
        } else {
            return Err(Error::Protocol {
                what,
                msg: format!("unusable upload Location {loc:?}"),
            });
        };
        if !put.starts_with(&format!("{}/", self.base)) {
            return Err(Error::Protocol {
                what,
                msg: "the upload URL is on another host; refused (credentials would go there)"
                    .into(),
            });
        }
        put.push(if put.contains('?') { '&' } else { '?' });
        put.push_str(&format!("digest={d}"));
        self.call(
            "PUT",
            put,
            &[("Content-Type", "application/octet-stream".into())],
            body,
            &what,
        )?;
        Ok(())
    }

    /// Puts a manifest or index under a tag or digest.
    pub fn put_manifest(&self, reference: &str, media_type: &str, body: &[u8]) -> Result<()> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repository);
        self.call(
            "PUT",
            url,
            &[("Content-Type", media_type.to_string())],
            Body::Bytes(body),
            &format!("push manifest {}:{reference}", self.repository),
        )
        .map(drop)
    }

    /// A manifest or index: its bytes (at most [`MAX_MANIFEST`]), media
    /// type and the digest of exactly those bytes (checked against the
    /// reference when it is a digest).
    pub fn manifest(&self, reference: &str, what: &str) -> Result<(Vec<u8>, String, Digest)> {
        let resp = self.get(
            &format!("manifests/{reference}"),
            &MANIFEST_TYPES,
            None,
            what,
        )?;
        let ctype = resp
            .header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let body = read_capped(resp.into_reader(), MAX_MANIFEST, what).map_err(|e| match e {
            Error::Io { op, cause } => self.net(format!("{op}: {cause}")),
            e => e,
        })?;
        let digest = Digest::of(&body);
        if reference.starts_with("sha256:") && digest.to_string() != reference {
            return Err(Error::DigestMismatch {
                what: what.to_string(),
                want: reference.to_string(),
                got: digest.to_string(),
            });
        }
        Ok((body, ctype, digest))
    }

    /// A small blob (a config), read whole, size-capped and verified.
    pub fn blob_bytes(&self, d: &Digest, cap: u64, what: &str) -> Result<Vec<u8>> {
        let resp = self.get(&format!("blobs/{d}"), &[], None, what)?;
        let body = read_capped(resp.into_reader(), cap, what)?;
        let got = Digest::of(&body);
        if &got != d {
            return Err(Error::DigestMismatch {
                what: what.to_string(),
                want: d.to_string(),
                got: got.to_string(),
            });
        }
        Ok(body)
    }

    /// A blob as a stream that reconnects (with Range) when the
    /// connection breaks. The caller verifies the digest.
    pub fn blob(&self, d: &Digest, what: &str) -> Result<BlobReader> {
        let resp = self.get(&format!("blobs/{d}"), &[], None, what)?;
        Ok(BlobReader {
            client: self.clone(),
            digest: d.clone(),
            what: what.to_string(),
            inner: Some(resp.into_reader()),
            offset: 0,
            resumes: 0,
            window_start: std::time::Instant::now(),
            window_bytes: 0,
            stall: stall_timeout(),
            stalled: false,
        })
    }
}

/// A download that gets less than [`MIN_PROGRESS`] bytes in this time
/// (60 s, or `BERTH_PULL_STALL_TIMEOUT` seconds) has stalled, or trickles:
/// it is resumed, and after [`ATTEMPTS`] such, fails. Also the read
/// timeout of every request.
pub fn stall_timeout() -> Duration {
    std::env::var("BERTH_PULL_STALL_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(60), |s| {
            Duration::from_secs_f64(s.min(86400.0))
        })
}

/// See [`stall_timeout`].
const MIN_PROGRESS: u64 = 1024;

fn backoff(attempt: u32) {
    std::thread::sleep(Duration::from_millis(250 << attempt.min(6)));
}

fn read_capped(r: impl Read, cap: u64, what: &str) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    r.take(cap + 1)
        .read_to_end(&mut body)
        .map_err(|e| Error::Io {
            op: format!("read {what}"),
            cause: e,
        })?;
    if body.len() as u64 > cap {
        return Err(Error::Protocol {
            what: what.to_string(),
            msg: format!("larger than {cap} bytes; refused"),
        });
    }
    Ok(body)
}

/// A blob download that resumes where it broke.
pub struct BlobReader {
    client: Client,
    digest: Digest,
    what: String,
    inner: Option<Box<dyn Read + Send + Sync + 'static>>,
    offset: u64,
    resumes: u32,
    /// Stall detection: bytes since `window_start`, the window's length,
    /// and whether the connection was dropped for too few.
    window_start: std::time::Instant,
    window_bytes: u64,
    stall: Duration,
    stalled: bool,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let r = match self.inner.as_mut() {
                Some(inner) => inner.read(buf),
                None if self.stalled => Err(io::Error::other(format!(
                    "no progress: at most {MIN_PROGRESS} bytes in {:?} (BERTH_PULL_STALL_TIMEOUT sets the time)",
                    self.stall
                ))),
                None => Err(io::Error::other("reconnecting")),
            };
            let r = match r {
                Ok(n) => {
                    self.window_bytes += n as u64;
                    if self.window_start.elapsed() < self.stall || n == 0 {
                        Ok(n)
                    } else if self.window_bytes > MIN_PROGRESS {
                        self.window_start = std::time::Instant::now();
                        self.window_bytes = 0;
                        Ok(n)
                    } else {
                        // Stalled or a trickle: what came is kept, the
                        // rest resumed from the next read on.
                        self.offset += n as u64;
                        self.inner = None;
                        self.stalled = true;
                        return Ok(n);
                    }
                }
                Err(e) => Err(e),
            };
            match r {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.resumes += 1;
                    if self.resumes > ATTEMPTS {
                        return Err(io::Error::other(format!(
                            "{}: download failed after {} retries: {e}",
                            self.what, ATTEMPTS
                        )));
                    }
                    tracing::info!(
                        "{}: connection broke at byte {} ({e}); resuming",
                        self.what,
                        self.offset
                    );
                    backoff(self.resumes);
                    self.inner = None;
                    self.stalled = false;
                    self.window_start = std::time::Instant::now();
                    self.window_bytes = 0;
                    let resp = self
                        .client
                        .get(
                            &format!("blobs/{}", self.digest),
                            &[],
                            Some(self.offset),
                            &self.what,
                        )
                        .map_err(io::Error::other)?;
                    let full = resp.status() == 200;
                    let mut reader = resp.into_reader();
                    if full {
                        // The registry ignored Range: skip what we have.
                        let skipped =
                            io::copy(&mut (&mut reader).take(self.offset), &mut io::sink())?;
                        if skipped != self.offset {
                            return Err(io::Error::other(format!(
                                "{}: the blob is shorter on retry",
                                self.what
                            )));
                        }
                    }
                    self.inner = Some(reader);
                }
            }
        }
    }
}

/// Where `berth login` writes: $REGISTRY_AUTH_FILE, else
/// $XDG_RUNTIME_DIR/containers/auth.json (as Podman), else
/// ~/.config/containers/auth.json.
pub fn auth_file() -> std::path::PathBuf {
    if let Ok(f) = std::env::var("REGISTRY_AUTH_FILE") {
        return f.into();
    }
    if let Ok(d) = std::env::var("XDG_RUNTIME_DIR") {
        if std::path::Path::new(&d).is_dir() {
            return std::path::Path::new(&d).join("containers/auth.json");
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    std::path::Path::new(&home).join(".config/containers/auth.json")
}

fn edit_auth_file(
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) -> bool,
) -> Result<(bool, std::path::PathBuf)> {
    let f = auth_file();
    let mut v: serde_json::Value = match std::fs::read(&f) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            Error::Usage(format!(
                "{}: not valid JSON ({e}); fix or remove it",
                f.display()
            ))
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => {
            return Err(Error::Io {
                op: format!("read {}", f.display()),
                cause: e,
            })
        }
    };
    if !v.is_object() {
        return Err(Error::Usage(format!(
            "{}: not a JSON object; fix or remove it",
            f.display()
        )));
    }
    if !v["auths"].is_object() {
        v["auths"] = serde_json::json!({});
    }
    let changed = match v["auths"].as_object_mut() {
        Some(m) => edit(m),
        None => false,
    };
    if changed {
        if let Some(dir) = f.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                op: format!("create {}", dir.display()),
                cause: e,
            })?;
        }
        let data = serde_json::to_vec_pretty(&v).map_err(|e| Error::Usage(e.to_string()))?;
        berth_sys::fs::write_atomic(&f, &data, 0o600).map_err(|e| Error::Io {
            op: format!("write {}", f.display()),
            cause: e,
        })?;
    }
    Ok((changed, f))
}

/// Stores credentials for `registry` in [`auth_file`] (mode 0600).
pub fn save_credentials(registry: &str, user: &str, pass: &str) -> Result<std::path::PathBuf> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    edit_auth_file(|m| {
        m.insert(registry.to_string(), serde_json::json!({ "auth": auth }));
        true
    })
    .map(|(_, f)| f)
}

/// Removes the credentials for `registry`; false when there were none.
pub fn remove_credentials(registry: &str) -> Result<bool> {
    edit_auth_file(|m| m.remove(registry).is_some()).map(|(c, _)| c)
}

/// Credentials for `registry` from the auth files Docker and Podman
/// write: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
/// ~/.config/containers/auth.json, $DOCKER_CONFIG/config.json or
/// ~/.docker/config.json (the first that has an entry wins).
pub fn credentials_for(registry: &str) -> Option<(String, String)> {
    let mut files = Vec::new();
    if let Ok(f) = std::env::var("REGISTRY_AUTH_FILE") {
        files.push(std::path::PathBuf::from(f));
    }
    if let Ok(d) = std::env::var("XDG_RUNTIME_DIR") {
        files.push(std::path::Path::new(&d).join("containers/auth.json"));
    }
    if let Ok(h) = std::env::var("HOME") {
        files.push(std::path::Path::new(&h).join(".config/containers/auth.json"));
    }
    match std::env::var("DOCKER_CONFIG") {
        Ok(d) => files.push(std::path::Path::new(&d).join("config.json")),
        Err(_) => {
            if let Ok(h) = std::env::var("HOME") {
                files.push(std::path::Path::new(&h).join(".docker/config.json"));
            }
        }
    }
    let keys: Vec<String> = if registry == crate::reference::DOCKER_HUB {
        vec![
            "docker.io".into(),
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "registry-1.docker.io".into(),
        ]
    } else {
        vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ]
    };
    for f in files {
        let Ok(text) = std::fs::read(&f) else {
            continue;
        };
        if text.len() > 1 << 20 {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
            tracing::warn!("{}: not valid JSON; ignored", f.display());
            continue;
        };
        for k in &keys {
            let Some(auth) = v["auths"][k.as_str()]["auth"].as_str() else {
                continue;
            };
            let Ok(dec) = base64::engine::general_purpose::STANDARD.decode(auth) else {
                continue;
            };
            let dec = String::from_utf8_lossy(&dec).into_owned();
            if let Some((u, p)) = dec.split_once(':') {
                return Some((u.to_string(), p.to_string()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["scope"], "repository:library/busybox:pull");
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
        let c = parse_challenge(r#"Bearer realm="a\"b", service=x"#).unwrap();
        assert_eq!(c.params["realm"], "a\"b");
        assert_eq!(c.params["service"], "x");
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
    }
}
