//! `/volumes`: list, create, inspect, remove.

use crate::error::{ApiError, ApiResult};
use crate::http::{self, Query, Resp};
use crate::server::Shared;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) fn doc(v: &berth_engine::inspect::VolumeInspect) -> serde_json::Value {
    serde_json::json!({
        "Name": v.name,
        "Driver": v.driver,
        "Mountpoint": v.mountpoint,
        "CreatedAt": v.created_at,
        "Labels": v.labels,
        "Scope": v.scope,
        "Options": v.options.clone().unwrap_or_default(),
    })
}

pub async fn list(s: &Arc<Shared>, q: &Query) -> ApiResult<Resp> {
    let filters = q.filters()?;
    let mut names = None;
    let mut dangling = None;
    for f in &filters {
        match f.split_once('=') {
            Some(("name", n)) => names.get_or_insert_with(Vec::new).push(n.to_string()),
            Some(("dangling", d)) => dangling = Some(matches!(d, "1" | "true")),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter {f:?}: berth's volume list takes name and dangling"
                )))
            }
        }
    }
    let vols = s
        .engine(move |e| {
            let mut out = Vec::new();
            for (v, users, _) in e.volume_list()? {
                if names
                    .as_ref()
                    .is_some_and(|n: &Vec<String>| !n.iter().any(|n| v.name.contains(n.as_str())))
                {
                    continue;
                }
                if dangling.is_some_and(|d| d != (users == 0)) {
                    continue;
                }
                out.push(doc(&e.inspect_volume(&v.name)?));
            }
            Ok(out)
        })
        .await?;
    Ok(http::json(
        &serde_json::json!({ "Volumes": vols, "Warnings": [] }),
    ))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateRequest {
    name: String,
    driver: String,
    driver_opts: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

pub async fn create(s: &Arc<Shared>, req: Request<Incoming>) -> ApiResult<Resp> {
    let r: CreateRequest = http::read_json(req.into_body()).await?;
    if !r.driver.is_empty() && r.driver != "local" {
        return Err(ApiError::bad_request(format!(
            "volume driver {:?} is not supported: berth has the local driver only",
            r.driver
        )));
    }
    let name = if r.name.is_empty() {
        let mut b = [0u8; 32];
        random(&mut b);
        b.iter().map(|c| format!("{c:02x}")).collect()
    } else {
        r.name
    };
    let v = s
        .engine(move |e| {
            // The local driver's options (type, device, o), as
            // `berth volume create --opt`.
            e.create_volume_with(&name, r.labels, false, &r.driver_opts)?;
            Ok(doc(&e.inspect_volume(&name)?))
        })
        .await?;
    Ok(http::json_status(StatusCode::CREATED, &v))
}

pub async fn inspect(s: &Arc<Shared>, name: &str) -> ApiResult<Resp> {
    let name = name.to_string();
    let v = s
        .engine(move |e| Ok(doc(&e.inspect_volume(&name)?)))
        .await?;
    Ok(http::json(&v))
}

pub async fn remove(s: &Arc<Shared>, name: &str, _q: &Query) -> ApiResult<Resp> {
    let name = name.to_string();
    s.engine(move |e| Ok(e.remove_volume(&name)?)).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// Random bytes from the kernel.
pub fn random(b: &mut [u8]) {
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let _ = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
}

/// `POST /volumes/prune`: unused volumes; under API 1.41 (what this
/// serves) named ones too, as dockerd of that version; `all=false` in
/// the filters keeps named ones (1.42's default).
pub async fn prune(s: &Arc<Shared>, q: &Query) -> ApiResult<Resp> {
    let mut all = true;
    for f in q.filters()? {
        match f.as_str() {
            "all=true" | "all=1" => all = true,
            "all=false" | "all=0" => all = false,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter {f:?}: berth's volume prune takes all"
                )))
            }
        }
    }
    let gone = s.engine(move |e| Ok(e.prune_volumes(all)?)).await?;
    // Docker's: the sum of the removed volumes' sizes.
    let reclaimed: u64 = gone.iter().map(|(_, b)| b).sum();
    let names: Vec<&String> = gone.iter().map(|(n, _)| n).collect();
    Ok(http::json(
        &serde_json::json!({ "VolumesDeleted": names, "SpaceReclaimed": reclaimed }),
    ))
}
