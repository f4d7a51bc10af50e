//! Routes a request to its handler: the `/vN.NN` prefix checked and
//! stripped, then method and path.

use crate::error::{ApiError, ApiResult};
use crate::http::{self, Query, Resp};
use crate::server::Shared;
use crate::{
    archive, auth, build, container_fs, containers, events, exec, images, networks, stats, system,
    volumes,
};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use std::sync::Arc;

/// The API version a path asks for (`/v1.41/...`), and the rest of it.
pub fn split_version(path: &str) -> ApiResult<(Option<(u32, u32)>, &str)> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((None, path));
    };
    let (v, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let parsed = v
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    let Some(ver) = parsed else {
        // Not a version: a path that happens to start with /v.
        return Ok((None, path));
    };
    let max = parse_ver(crate::API_VERSION);
    let min = parse_ver(crate::MIN_API_VERSION);
    if ver > max {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too new. Maximum supported API version is {}",
            crate::API_VERSION
        )));
    }
    if ver < min {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
            crate::MIN_API_VERSION
        )));
    }
    Ok((Some(ver), tail))
}

fn parse_ver(s: &str) -> (u32, u32) {
    let (a, b) = s.split_once('.').unwrap_or(("1", "0"));
    (a.parse().unwrap_or(1), b.parse().unwrap_or(0))
}

pub async fn route(s: Arc<Shared>, req: Request<Incoming>) -> Resp {
    let mut r = match dispatch(s, req).await {
        Ok(r) => r,
        Err(e) => http::error(&e),
    };
    let h = r.headers_mut();
    h.insert(
        "Api-Version",
        hyper::header::HeaderValue::from_static(crate::API_VERSION),
    );
    h.insert("Ostype", hyper::header::HeaderValue::from_static("linux"));
    h.insert(
        hyper::header::SERVER,
        hyper::header::HeaderValue::from_static("berth (linux)"),
    );
    r
}

/// A request header's value, if it is text.
fn header<'r>(req: &'r Request<Incoming>, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|h| h.to_str().ok())
}

async fn dispatch(s: Arc<Shared>, req: Request<Incoming>) -> ApiResult<Resp> {
    let path = req.uri().path().to_string();
    let (_, path) = split_version(&path)?;
    let q = Query::parse(req.uri().query());
    let m = req.method().clone();
    let parts: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(http::unescape)
        .collect();
    let p: Vec<&str> = parts.iter().map(String::as_str).collect();
    use Method as M;
    match (&m, p.as_slice()) {
        (&M::GET | &M::HEAD, ["_ping"]) => Ok(system::ping(&m)),
        (&M::GET, ["version"]) => system::version(&s).await,
        (&M::GET, ["info"]) => system::info(&s).await,
        (&M::GET, ["system", "df"]) => system::df(&s).await,
        (&M::GET, ["events"]) => events::events(&s, &q).await,

        (&M::POST, ["containers", "create"]) => containers::create(&s, &q, req).await,
        (&M::GET, ["containers", "json"]) => containers::list(&s, &q).await,
        (&M::GET, ["containers", id, "json"]) => containers::inspect(&s, id).await,
        (&M::POST, ["containers", id, "start"]) => containers::start(&s, id).await,
        (&M::POST, ["containers", id, "stop"]) => containers::stop(&s, id, &q).await,
        (&M::POST, ["containers", id, "restart"]) => containers::restart(&s, id, &q).await,
        (&M::POST, ["containers", id, "kill"]) => containers::kill(&s, id, &q).await,
        (&M::POST, ["containers", id, "wait"]) => containers::wait(&s, id, &q).await,
        (&M::DELETE, ["containers", id]) => containers::remove(&s, id, &q).await,
        (&M::GET, ["containers", id, "logs"]) => containers::logs(&s, id, &q).await,
        (&M::POST, ["containers", id, "attach"]) => containers::attach(&s, id, &q, req).await,
        (&M::POST, ["containers", id, "resize"]) => containers::resize(&s, id, &q).await,
        (&M::POST, ["containers", "prune"]) => containers::prune(&s, &q).await,
        (&M::POST, ["containers", id, "rename"]) => containers::rename(&s, id, &q).await,
        (&M::POST, ["containers", id, "pause"]) => containers::pause(&s, id, true).await,
        (&M::POST, ["containers", id, "unpause"]) => containers::pause(&s, id, false).await,
        (&M::GET, ["containers", id, "archive"]) => archive::get(&s, id, &q, false).await,
        (&M::HEAD, ["containers", id, "archive"]) => archive::get(&s, id, &q, true).await,
        (&M::PUT, ["containers", id, "archive"]) => archive::put(&s, id, &q, req).await,
        (&M::GET, ["containers", id, "stats"]) => stats::stats(&s, id, &q).await,
        (&M::GET, ["containers", id, "export"]) => container_fs::export(&s, id).await,
        (&M::GET, ["containers", id, "changes"]) => container_fs::changes(&s, id).await,
        (&M::POST, ["containers", id, "update"]) => container_fs::update(&s, id, req).await,
        (&M::GET, ["containers", id, "top"]) => containers::top(&s, id, &q).await,
        (&M::POST, ["containers", id, "exec"]) => exec::create(&s, id, req).await,
        (&M::POST, ["exec", id, "start"]) => exec::start(&s, id, req).await,
        (&M::GET, ["exec", id, "json"]) => exec::inspect(id).await,
        (&M::POST, ["exec", id, "resize"]) => exec::resize(id, &q).await,

        (&M::GET, ["images", "json"]) => images::list(&s, &q).await,
        (&M::POST, ["images", "create"]) => {
            images::create(&s, &q, header(&req, "X-Registry-Auth")).await
        }
        (&M::POST, ["images", name @ .., "tag"]) if !name.is_empty() => {
            images::tag(&s, &name.join("/"), &q).await
        }
        (&M::POST, ["images", name @ .., "push"]) if !name.is_empty() => {
            images::push(&s, &name.join("/"), &q, header(&req, "X-Registry-Auth")).await
        }
        (&M::GET, ["images", "get"]) => {
            let names = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .filter_map(|p| p.strip_prefix("names="))
                .map(http::unescape)
                .collect();
            images::save(&s, names).await
        }
        (&M::GET, ["images", name @ .., "get"]) if !name.is_empty() => {
            images::save(&s, vec![name.join("/")]).await
        }
        (&M::GET, ["images", name @ .., "history"]) if !name.is_empty() => {
            images::history(&s, &name.join("/")).await
        }
        (&M::GET, ["images", name @ .., "json"]) if !name.is_empty() => {
            images::inspect(&s, &name.join("/")).await
        }
        (&M::DELETE, ["images", name @ ..]) if !name.is_empty() => {
            images::remove(&s, &name.join("/"), &q).await
        }

        (&M::POST, ["auth"]) => auth::auth(&s, req).await,
        (&M::POST, ["build"]) => build::build(&s, req).await,
        (&M::POST, ["build", "prune"]) => build::prune(&s, &q).await,
        (&M::POST, ["images", "load"]) => images::load(&s, &q, req).await,
        (&M::POST, ["images", "prune"]) => images::prune(&s, &q).await,
        (&M::POST, ["networks", "prune"]) => networks::prune(&s, &q).await,
        (&M::POST, ["networks", name, "connect"]) => networks::connect(&s, name, req, true).await,
        (&M::POST, ["networks", name, "disconnect"]) => {
            networks::connect(&s, name, req, false).await
        }
        (&M::POST, ["volumes", "prune"]) => volumes::prune(&s, &q).await,
        (&M::GET, ["networks"]) => networks::list(&s, &q).await,
        (&M::POST, ["networks", "create"]) => networks::create(&s, req).await,
        (&M::GET, ["networks", name]) => networks::inspect(&s, name).await,
        (&M::DELETE, ["networks", name]) => networks::remove(&s, name).await,
        (&M::GET, ["volumes"]) => volumes::list(&s, &q).await,
        (&M::POST, ["volumes", "create"]) => volumes::create(&s, req).await,
        (&M::GET, ["volumes", name]) => volumes::inspect(&s, name).await,
        (&M::DELETE, ["volumes", name]) => volumes::remove(&s, name, &q).await,
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("page not found: {m} {path} is not served by berth's API"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_checked_and_stripped() {
        assert_eq!(
            split_version("/v1.41/containers/json").unwrap(),
            (Some((1, 41)), "/containers/json")
        );
        assert_eq!(split_version("/v1.24/_ping").unwrap().1, "/_ping");
        assert_eq!(split_version("/_ping").unwrap(), (None, "/_ping"));
        assert_eq!(split_version("/volumes").unwrap(), (None, "/volumes"));
        let e = split_version("/v1.45/info").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("too new"), "{}", e.message);
        assert!(split_version("/v1.12/info")
            .unwrap_err()
            .message
            .contains("too old"));
    }
}
