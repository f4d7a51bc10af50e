//! `/images`: list, inspect, create (pull, with Docker's JSON progress
//! stream), tag, remove.

use crate::error::{ApiError, ApiResult};
use crate::http::{self, Query, Resp};
use crate::server::Shared;
use berth_engine::images::{Images, Pull, PullEvent, PullRequest, Removed};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use std::sync::Arc;

/// A stored name as Docker shows it (its familiar form): Docker Hub's
/// `docker.io/library/` and `docker.io/` left off.
pub fn familiar(n: &str) -> &str {
    n.strip_prefix("docker.io/library/")
        .or_else(|| n.strip_prefix("docker.io/"))
        .unwrap_or(n)
}

/// Docker's shape of an image inspect: familiar names.
fn familiar_names(mut v: serde_json::Value) -> serde_json::Value {
    for k in ["RepoTags", "RepoDigests"] {
        if let Some(a) = v.get_mut(k).and_then(|a| a.as_array_mut()) {
            for n in a.iter_mut() {
                if let Some(f) = n.as_str().map(|s| familiar(s).to_string()) {
                    *n = serde_json::Value::String(f);
                }
            }
        }
    }
    v
}

fn open(s: &Shared) -> ApiResult<Images> {
    Ok(Images::open(&s.root)?)
}

/// Seconds since the epoch of an RFC 3339 time (0 if none).
fn unix(t: Option<&str>) -> i64 {
    t.and_then(berth_engine::logs::parse_rfc3339)
        .map_or(0, |n| n / 1_000_000_000)
}

pub async fn list(s: &Arc<Shared>, q: &Query) -> ApiResult<Resp> {
    let mut filters = q.filters()?;
    // `filter` (API < 1.41): a reference pattern.
    if let Some(f) = q.get("filter").filter(|f| !f.is_empty()) {
        filters.push(format!("reference={f}"));
    }
    // `all` (intermediate images too): berth stores none.
    let s2 = s.clone();
    let rows = Shared::blocking(move || Ok(open(&s2)?.list(&filters)?)).await?;
    let out: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let tags: Vec<&str> = r
                .names
                .iter()
                .filter(|n| !n.contains('@'))
                .map(|n| familiar(n))
                .collect();
            let digests: Vec<&str> = r
                .names
                .iter()
                .filter(|n| n.contains('@'))
                .map(|n| familiar(n))
                .collect();
            serde_json::json!({
                "Id": r.id.to_string(),
                "ParentId": "",
                "RepoTags": if tags.is_empty() { vec![] } else { tags },
                "RepoDigests": digests,
                "Created": unix(r.created.as_deref()),
                "Size": r.size,
                "VirtualSize": r.size,
                "SharedSize": -1,
                "Labels": {},
                "Containers": -1,
            })
        })
        .collect();
    Ok(http::json(&out))
}

pub async fn inspect(s: &Arc<Shared>, name: &str) -> ApiResult<Resp> {
    let (s2, n) = (s.clone(), name.to_string());
    let v = Shared::blocking(move || {
        open(&s2)?.inspect(&n).map_err(|e| match e {
            berth_engine::images::StoreError::UnknownImage(_) => {
                ApiError::not_found(format!("No such image: {n}"))
            }
            e => e.into(),
        })
    })
    .await?;
    Ok(http::json(&familiar_names(v)))
}

pub async fn tag(s: &Arc<Shared>, name: &str, q: &Query) -> ApiResult<Resp> {
    let repo = q
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("tag: the repo parameter is required"))?;
    let target = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    let (s2, n) = (s.clone(), name.to_string());
    Shared::blocking(move || Ok(open(&s2)?.tag(&n, &target)?)).await?;
    Ok(http::empty(StatusCode::CREATED))
}

pub async fn remove(s: &Arc<Shared>, name: &str, q: &Query) -> ApiResult<Resp> {
    let force = q.flag("force");
    let (s2, n) = (s.clone(), name.to_string());
    let out = Shared::blocking(move || {
        // An image a container uses is kept (Docker: 409).
        let e = berth_engine::Engine::open(&s2.root, &s2.run_root)?;
        let mut imgs = open(&s2)?;
        let inspect = imgs.inspect(&n).map_err(|e| match e {
            berth_engine::images::StoreError::UnknownImage(_) => {
                ApiError::not_found(format!("No such image: {n}"))
            }
            e => e.into(),
        })?;
        let id = inspect["Id"].as_str().unwrap_or_default().to_string();
        if !force {
            if let Some(c) = e.list()?.iter().find(|c| c.image_id == id) {
                let tags = inspect["RepoTags"].as_array().map_or(0, |a| a.len());
                let untag_only = tags > 1 && !n.starts_with("sha256:") && !id.contains(&n);
                if !untag_only {
                    return Err(ApiError::conflict(format!(
                        "conflict: unable to remove repository reference {n:?} (must force) - container {} is using its referenced image {}",
                        &c.id[..12.min(c.id.len())],
                        id.trim_start_matches("sha256:").get(..12).unwrap_or(&id)
                    )));
                }
            }
        }
        Ok(match imgs.remove(&n, force)? {
            Removed::Untagged => vec![serde_json::json!({ "Untagged": n })],
            Removed::Deleted(ids) => {
                let mut v: Vec<serde_json::Value> = inspect["RepoTags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| serde_json::json!({ "Untagged": t.as_str().map(familiar) }))
                    .collect();
                v.extend(ids.iter().map(|i| serde_json::json!({ "Deleted": i.to_string() })));
                v
            }
        })
    })
    .await?;
    Ok(http::json(&out))
}

/// Whether Docker would reach the registry of `image` over plain HTTP
/// (a loopback registry, as dockerd's default insecure range).
pub(crate) fn loopback_registry(image: &str) -> bool {
    let Some((host, _)) = image.split_once('/') else {
        return false;
    };
    let h = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    h == "localhost" || h.starts_with("127.") || h == "[::1]"
}

fn short(d: &berth_engine::images::Digest) -> String {
    let s = d.to_string();
    let hex = s.split_once(':').map_or(s.as_str(), |(_, h)| h);
    hex.get(..12).unwrap_or(hex).to_string()
}

fn line(v: serde_json::Value) -> Bytes {
    let mut b = v.to_string().into_bytes();
    b.push(b'\r');
    b.push(b'\n');
    Bytes::from(b)
}

/// `POST /images/create?fromImage=NAME&tag=TAG`: a pull, its progress as
/// Docker's JSON lines; a failure after the stream began is an `error`
/// line, as Docker's. `auth`: the X-Registry-Auth header (the client's
/// login for the image's registry).
pub async fn create(s: &Arc<Shared>, q: &Query, auth: Option<&str>) -> ApiResult<Resp> {
    let login = registry_auth(auth)?;
    if q.get("fromSrc").is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::bad_request(
            "images/create with fromSrc (import) is not supported by berth's API yet; use `berth import`",
        ));
    }
    let from = q
        .get("fromImage")
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ApiError::bad_request("images/create: fromImage is required"))?;
    let image = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.contains(':') => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None if from.contains('@') || from.rsplit('/').next().is_some_and(|l| l.contains(':')) => {
            from.to_string()
        }
        None => format!("{from}:latest"),
    };
    let platform = q
        .get("platform")
        .filter(|p| !p.is_empty())
        .map(String::from);
    // Errors before any layer (a bad name, registries.conf) are statuses.
    let req = PullRequest {
        image: image.clone(),
        platform,
        tls_verify: !loopback_registry(&image),
        creds: login.map(|l| l.creds().to_string()),
        parallel: 3,
    };
    let p = Shared::blocking(move || Ok(Pull::prepare(&req)?)).await?;
    let (resp, tx) = http::stream("application/json");
    let s2 = s.clone();
    let tag = image
        .rsplit_once(':')
        .map_or("latest", |(_, t)| t)
        .to_string();
    tokio::task::spawn_blocking(move || {
        let _ = tx.blocking_send(line(serde_json::json!({
            "status": format!("Pulling from {}", p.reference.repository),
            "id": tag,
        })));
        let res = open(&s2).and_then(|mut imgs| {
            let report = |e: PullEvent| {
                let v = match e {
                    PullEvent::Resolved { .. } => return,
                    PullEvent::Exists { layer } => serde_json::json!({
                        "status": "Already exists", "progressDetail": {}, "id": short(&layer)
                    }),
                    PullEvent::Progress { layer, done, total } => serde_json::json!({
                        "status": "Downloading",
                        "progressDetail": { "current": done, "total": total },
                        "id": short(&layer)
                    }),
                    PullEvent::Done { layer } => serde_json::json!({
                        "status": "Pull complete", "progressDetail": {}, "id": short(&layer)
                    }),
                };
                // Progress is lossy: a slow client never holds the pull.
                let _ = tx.try_send(line(v));
            };
            Ok(imgs.pull(&p, &report)?)
        });
        let last = match res {
            Ok(pulled) => vec![
                serde_json::json!({ "status": format!("Digest: {}", pulled.manifest) }),
                serde_json::json!({ "status": format!("Status: Downloaded newer image for {}", p.reference) }),
            ],
            Err(e) => vec![serde_json::json!({
                "errorDetail": { "message": e.message },
                "error": e.message,
            })],
        };
        for v in last {
            let _ = tx.blocking_send(line(v));
        }
    });
    Ok(resp)
}

/// `GET /images/{name}/history`: newest step first, as Docker's.
pub async fn history(s: &Arc<Shared>, name: &str) -> ApiResult<Resp> {
    let (s2, n) = (s.clone(), name.to_string());
    let (steps, id) = Shared::blocking(move || {
        let imgs = open(&s2)?;
        let id = imgs.inspect(&n).map_err(|e| match e {
            berth_engine::images::StoreError::UnknownImage(_) => {
                ApiError::not_found(format!("No such image: {n}"))
            }
            e => e.into(),
        })?["Id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok((imgs.history(&n)?, id))
    })
    .await?;
    let last = steps.len().saturating_sub(1);
    let out: Vec<serde_json::Value> = steps
        .iter()
        .enumerate()
        .rev()
        .map(|(i, h)| {
            serde_json::json!({
                "Id": if i == last { id.as_str() } else { "<missing>" },
                "Created": unix(Some(&h.created)),
                "CreatedBy": h.created_by,
                "Tags": null,
                "Size": h.size,
                "Comment": h.comment,
            })
        })
        .collect();
    Ok(http::json(&out))
}

/// `GET /images/{name}/get` and `GET /images/get?names=...`: a
/// docker-archive tarball (`docker save`), streamed.
pub async fn save(s: &Arc<Shared>, names: Vec<String>) -> ApiResult<Resp> {
    if names.is_empty() {
        return Err(ApiError::bad_request("images/get: name at least one image"));
    }
    // Unknown names are a 404 before the stream begins.
    let (s2, n2) = (s.clone(), names.clone());
    Shared::blocking(move || {
        let imgs = open(&s2)?;
        for n in &n2 {
            imgs.inspect(n).map_err(|e| match e {
                berth_engine::images::StoreError::UnknownImage(_) => {
                    ApiError::not_found(format!("No such image: {n}"))
                }
                e => e.into(),
            })?;
        }
        Ok(())
    })
    .await?;
    let (resp, tx) = http::stream("application/x-tar");
    let s2 = s.clone();
    tokio::task::spawn_blocking(move || {
        let w = crate::containers::FrameWriter {
            tx,
            stream: 1,
            mux: false,
        };
        let r = open(&s2).and_then(|imgs| {
            Ok(imgs.save(
                &names,
                berth_engine::images::ArchiveFormat::DockerArchive,
                w,
            )?)
        });
        // A failure mid-stream ends the tarball short: the client's tar
        // reader fails on it.
        if let Err(e) = r {
            tracing::warn!("API image save: {e}");
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_plain_http() {
        assert!(loopback_registry("127.0.0.1:5000/test/app:1"));
        assert!(loopback_registry("localhost:5000/app"));
        assert!(!loopback_registry("quay.io/app"));
        assert!(!loopback_registry("busybox"));
        assert!(!loopback_registry("library/busybox:latest"));
    }

    #[test]
    fn names_are_shown_in_their_familiar_form() {
        assert_eq!(familiar("docker.io/library/py:1"), "py:1");
        assert_eq!(familiar("docker.io/api/bb:1"), "api/bb:1");
        assert_eq!(familiar("127.0.0.1:5000/t/a:1"), "127.0.0.1:5000/t/a:1");
        let v = familiar_names(serde_json::json!({
            "RepoTags": ["docker.io/library/a:1"],
            "RepoDigests": ["docker.io/library/a@sha256:00"],
        }));
        assert_eq!(v["RepoTags"][0], "a:1");
        assert_eq!(v["RepoDigests"][0], "a@sha256:00");
    }

    #[test]
    fn until_is_the_engines_with_a_400_for_a_bad_value() {
        // The parsing itself is tested with the engine's (prune.rs).
        let now = 1_700_000_000_000_000_000;
        assert_eq!(until_nanos("24h", now).unwrap(), now - 86_400_000_000_000);
        assert!(until_nanos("yesterday", now).is_err());
    }

    #[test]
    fn label_filters_all_must_hold_none_may() {
        let l = serde_json::json!({ "a": "1", "b": "2" });
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(labels_pass(&l, &v(&["a", "b=2"]), &[]));
        assert!(!labels_pass(&l, &v(&["a=2"]), &[]));
        assert!(!labels_pass(&l, &[], &v(&["b"])));
        assert!(labels_pass(&l, &[], &v(&["b=3", "c"])));
        assert!(labels_pass(&serde_json::Value::Null, &[], &v(&["c"])));
    }
}

/// Docker's `until` of a prune (the engine's [`berth_engine::prune::until_nanos`]):
/// nanoseconds since the epoch, or a 400 naming the value.
pub fn until_nanos(v: &str, now_ns: i64) -> ApiResult<i64> {
    berth_engine::prune::until_nanos(v, now_ns).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid until filter {v:?}: expected a duration (24h), Unix seconds or a date (2006-01-02T15:04:05Z)"
        ))
    })
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Whether `labels` (an image's Config.Labels) pass Docker's `label=K`,
/// `label=K=V` (all must hold) and `label!=K`, `label!=K=V` (none may).
fn labels_pass(labels: &serde_json::Value, want: &[String], not: &[String]) -> bool {
    let f = berth_engine::prune::PruneFilter {
        until: None,
        label: want.to_vec(),
        not_label: not.to_vec(),
    };
    f.labels_pass(|k| labels.get(k).and_then(|x| x.as_str()))
}

/// `POST /images/prune`: images without a name (Docker's `dangling=true`,
/// the CLI's default), or with `dangling=false` (`image prune -a`) every
/// image no container or build uses; narrowed by `until` (made before)
/// and `label`/`label!`; then the layers and blobs no image uses.
pub async fn prune(s: &Arc<Shared>, q: &Query) -> ApiResult<Resp> {
    let mut dangling_only = true;
    let mut until = None;
    let (mut want, mut not) = (Vec::new(), Vec::new());
    for f in q.filters()? {
        let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
        match k {
            "dangling" => {
                dangling_only = match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "invalid filter 'dangling={v}': expected true or false"
                        )))
                    }
                }
            }
            "until" => until = Some(until_nanos(v, now_nanos())?),
            "label" => want.push(v.to_string()),
            "label!" => not.push(v.to_string()),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter '{k}': image prune takes dangling, until, label and label!"
                )))
            }
        }
    }
    let s2 = s.clone();
    let gone = Shared::blocking(move || {
        let mut imgs = open(&s2)?;
        // Labels are in each image's config: read first, for those asked.
        let mut chosen = std::collections::HashSet::new();
        for row in imgs.list(&[])? {
            let tagged = row.names.iter().any(|n| !n.contains('@'));
            if dangling_only && tagged {
                continue;
            }
            if let Some(u) = until {
                let made = row
                    .created
                    .as_deref()
                    .and_then(berth_engine::logs::parse_rfc3339);
                if made.is_none_or(|m| m >= u) {
                    continue;
                }
            }
            if !want.is_empty() || !not.is_empty() {
                let cfg = imgs.inspect(&row.id.to_string())?;
                if !labels_pass(&cfg["Config"]["Labels"], &want, &not) {
                    continue;
                }
            }
            chosen.insert(row.id.to_string());
        }
        Ok(imgs.prune_unused(&|r| chosen.contains(&r.id.to_string()))?)
    })
    .await?;
    let (gone, collected) = gone;
    let mut deleted = Vec::new();
    for (id, names) in &gone {
        for n in names.iter().filter(|n| !n.contains('@')) {
            deleted.push(serde_json::json!({ "Untagged": familiar(n) }));
        }
        deleted.push(serde_json::json!({ "Deleted": id.to_string() }));
    }
    // Docker's: the bytes of the layers that went with the images (not
    // those another image still uses); berth's also frees the layers'
    // archives, configs and manifests, and counts them.
    Ok(http::json(&serde_json::json!({
        "ImagesDeleted": deleted,
        "SpaceReclaimed": collected.bytes,
    })))
}

/// `POST /images/load`: the body, a `docker save` (or OCI) tarball,
/// spooled to the store's tmp/ as it comes, then loaded; Docker's JSON
/// lines (`{"stream": "Loaded image: NAME\n"}`), or errors as statuses
/// (nothing is streamed before the load is done).
pub async fn load(s: &Arc<Shared>, _q: &Query, req: Request<Incoming>) -> ApiResult<Resp> {
    // `quiet` hides progress, of which berth sends none: the names
    // loaded are shown either way (as dockerd's).
    let (mut input, feed) = crate::archive::body_reader(req.into_body());
    let s2 = s.clone();
    let r = Shared::blocking(move || {
        let mut imgs = open(&s2)?;
        let spool = imgs.spool("load", &mut input)?;
        Ok(imgs.load(spool.path(), &|_| {})?)
    })
    .await;
    feed.abort();
    let loaded = r?;
    let mut out = Vec::new();
    for l in &loaded {
        let text = match l.names.first() {
            Some(n) => format!("Loaded image: {}\n", familiar(n)),
            None => format!("Loaded image ID: {}\n", l.id),
        };
        out.extend_from_slice(&line(serde_json::json!({ "stream": text })));
    }
    let mut r = hyper::Response::new(http::ApiBody::Full(Some(Bytes::from(out))));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// Base64 in either of Go's alphabets, padded or not (X-Registry-Auth is
/// URL-safe base64 from the docker CLI, standard from some SDKs).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim().trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The login of an X-Registry-Auth header (None for none: the store's
/// login files are used then). A token alone is refused: berth's
/// registry client logs in with a username and password only.
pub fn registry_auth(h: Option<&str>) -> ApiResult<Option<crate::auth::Login>> {
    let Some(h) = h.filter(|h| !h.trim().is_empty()) else {
        return Ok(None);
    };
    let bad = || ApiError::bad_request("X-Registry-Auth is not base64 of a JSON object");
    let raw = base64_decode(h).ok_or_else(bad)?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if !v.is_object() {
        return Err(bad());
    }
    match crate::auth::given(&v) {
        crate::auth::Given::Login(l) => Ok(Some(l)),
        crate::auth::Given::Nothing => Ok(None),
        crate::auth::Given::Token => Err(ApiError::bad_request(
            "X-Registry-Auth: identity and registry tokens are not supported by berth's API; log in with a username and password",
        )),
    }
}

/// `POST /images/{name}/push?tag=TAG`: Docker's JSON lines (the
/// repository, each layer pushed or already there, the digest, and the
/// `aux` record); a failure after the stream began is an `error` line.
pub async fn push(s: &Arc<Shared>, name: &str, q: &Query, auth: Option<&str>) -> ApiResult<Resp> {
    let creds = registry_auth(auth)?;
    let tag = q.get("tag").filter(|t| !t.is_empty()).map(String::from);
    let image = match &tag {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let tls_verify = !loopback_registry(&image);
    // Unknown image: a status, before the stream.
    let (s2, i2) = (s.clone(), image.clone());
    Shared::blocking(move || Ok(open(&s2)?.inspect(&i2).map(|_| ())?)).await?;
    let (resp, tx) = http::stream("application/json");
    let s2 = s.clone();
    tokio::task::spawn_blocking(move || {
        let repo = image
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map_or(image.as_str(), |(r, _)| r);
        let _ = tx.blocking_send(line(serde_json::json!({
            "status": format!("The push refers to repository [{repo}]"),
        })));
        let res = open(&s2).and_then(|imgs| {
            let report = |e: berth_engine::images::PushEvent| {
                let v = match e {
                    berth_engine::images::PushEvent::Exists(d) => serde_json::json!({
                        "status": "Layer already exists", "progressDetail": {}, "id": short(&d)
                    }),
                    berth_engine::images::PushEvent::Pushed(d, _) => serde_json::json!({
                        "status": "Pushed", "progressDetail": {}, "id": short(&d)
                    }),
                };
                let _ = tx.try_send(line(v));
            };
            Ok(imgs.push(
                &image,
                None,
                tls_verify,
                creds.as_ref().map(|c| c.creds()),
                &report,
            )?)
        });
        let shown_tag = tag.unwrap_or_else(|| "latest".into());
        let last = match res {
            Ok(d) => vec![
                serde_json::json!({ "status": format!("{shown_tag}: digest: {d}") }),
                serde_json::json!({
                    "progressDetail": {},
                    "aux": { "Tag": shown_tag, "Digest": d.to_string() },
                }),
            ],
            Err(e) => vec![serde_json::json!({
                "errorDetail": { "message": e.message },
                "error": e.message,
            })],
        };
        for v in last {
            let _ = tx.blocking_send(line(v));
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod push_tests {
    use super::*;

    #[test]
    fn registry_auth_headers_in_both_alphabets() {
        // {"username":"u?","password":"p>"} in URL-safe and standard base64.
        let json = br#"{"username":"u?","password":"p>"}"#;
        let std_b64 = "eyJ1c2VybmFtZSI6InU/IiwicGFzc3dvcmQiOiJwPiJ9";
        assert_eq!(base64_decode(std_b64).unwrap(), json);
        assert_eq!(
            base64_decode(&std_b64.replace('/', "_").replace('+', "-")).unwrap(),
            json
        );
        assert_eq!(
            registry_auth(Some(std_b64)).unwrap().unwrap().creds(),
            "u?:p>"
        );
        // {"identitytoken":"t"}: refused, not sent without credentials.
        assert!(registry_auth(Some("eyJpZGVudGl0eXRva2VuIjoidCJ9")).is_err());
        assert_eq!(registry_auth(Some("e30=")).unwrap(), None);
        assert_eq!(registry_auth(None).unwrap(), None);
        assert!(registry_auth(Some("!!")).is_err());
        assert!(registry_auth(Some("WzFd")).is_err());
    }
}
