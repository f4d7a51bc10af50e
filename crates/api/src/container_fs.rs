//! `/containers/{id}/export`, `/changes` and `/update`: a container's
//! filesystem as a tar stream, what it changed in its image, and new
//! resource limits (the engine's `export`, `diff` and `update`).

use crate::containers::FrameWriter;
use crate::error::{ApiError, ApiResult};
use crate::http::{self, Resp};
use crate::server::Shared;
use berth_engine::control::UpdateRequest;
use hyper::body::Incoming;
use hyper::Request;
use serde_json::{Map, Value};
use std::sync::Arc;

/// GET export: the whole filesystem, streamed.
pub async fn export(s: &Arc<Shared>, id: &str) -> ApiResult<Resp> {
    let id = id.to_string();
    let rec = s.engine(move |e| Ok(e.get(&id)?)).await?;
    let (resp, tx) = http::stream("application/x-tar");
    let s = s.clone();
    tokio::spawn(async move {
        let r = s
            .engine(move |e| {
                let mut w = std::io::BufWriter::with_capacity(
                    64 << 10,
                    FrameWriter {
                        tx,
                        stream: 0,
                        mux: false,
                    },
                );
                e.export(&rec.id, &mut w)?;
                std::io::Write::flush(&mut w)
                    .map_err(|e| ApiError::internal(format!("export of {}: {e}", rec.name)))
            })
            .await;
        if let Err(e) = r {
            // The client sees a cut tar stream.
            tracing::warn!("API export: {}", e.message);
        }
    });
    Ok(resp)
}

/// GET changes: `[{"Path", "Kind"}]`, Kind 0 changed, 1 added, 2 deleted.
pub async fn changes(s: &Arc<Shared>, id: &str) -> ApiResult<Resp> {
    let id = id.to_string();
    let d = s.engine(move |e| Ok(e.diff(&id)?)).await?;
    let v: Vec<Value> = d
        .into_iter()
        .map(|(k, p)| {
            let kind = match k {
                'A' => 1,
                'D' => 2,
                _ => 0,
            };
            serde_json::json!({"Path": p, "Kind": kind})
        })
        .collect();
    Ok(http::json(&v))
}

/// Whether a field of an update body asks nothing: Docker's clients send
/// the whole `UpdateConfig`, zeros for what is not changed.
fn unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(unset),
    }
}

/// An update body as the engine's request; a field berth cannot change
/// is refused by name, not ignored.
pub fn update_request(body: &Map<String, Value>) -> Result<UpdateRequest, String> {
    let mut r = UpdateRequest::default();
    let int = |k: &str, v: &Value| {
        v.as_i64()
            .ok_or_else(|| format!("{k}: {v} is not an integer"))
    };
    for (k, v) in body {
        if unset(v) && k != "PidsLimit" {
            continue;
        }
        match k.as_str() {
            "Memory" => r.memory = Some(int(k, v)?),
            "MemorySwap" => r.memory_swap = Some(int(k, v)?),
            "MemoryReservation" => r.memory_reservation = Some(int(k, v)?),
            "NanoCpus" | "NanoCPUs" => r.cpus = Some(int(k, v)? as f64 / 1e9),
            "CpuShares" => {
                r.cpu_shares =
                    Some(u64::try_from(int(k, v)?).map_err(|_| format!("{k}: {v} is negative"))?)
            }
            "CpuPeriod" => {
                r.cpu_period =
                    Some(u64::try_from(int(k, v)?).map_err(|_| format!("{k}: {v} is negative"))?)
            }
            "CpuQuota" => r.cpu_quota = Some(int(k, v)?),
            "CpusetCpus" => r.cpuset_cpus = v.as_str().map(String::from),
            "CpusetMems" => r.cpuset_mems = v.as_str().map(String::from),
            "PidsLimit" if v.is_null() => {}
            "PidsLimit" => r.pids_limit = Some(int(k, v)?),
            "BlkioWeight" => {
                r.blkio_weight = Some(
                    u16::try_from(int(k, v)?).map_err(|_| format!("{k}: {v} is out of range"))?,
                )
            }
            "RestartPolicy" => {
                let name = v.get("Name").and_then(Value::as_str).unwrap_or("");
                let n = v
                    .get("MaximumRetryCount")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                r.restart = Some(match (name, n) {
                    ("on-failure", n) if n > 0 => format!("on-failure:{n}"),
                    ("", _) => return Err("RestartPolicy: a Name is required".into()),
                    (name, _) => name.to_string(),
                });
            }
            _ => return Err(format!("berth cannot update {k} of a container")),
        }
    }
    Ok(r)
}

/// POST update: `{"Warnings": []}`.
pub async fn update(s: &Arc<Shared>, id: &str, req: Request<Incoming>) -> ApiResult<Resp> {
    let body: Map<String, Value> = http::read_json(req.into_body()).await?;
    let r = update_request(&body).map_err(ApiError::bad_request)?;
    let id = id.to_string();
    s.engine(move |e| Ok(e.update(&id, &r)?)).await?;
    Ok(http::json(&serde_json::json!({"Warnings": []})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_body_as_the_cli_sends_it() {
        // Docker's CLI sends every field, zeros for the unchanged.
        let b: Map<String, Value> = serde_json::from_str(
            r#"{"BlkioWeight":0,"CpuShares":0,"Memory":67108864,"NanoCpus":1500000000,
                "CpusetCpus":"","KernelMemory":0,"Devices":null,"PidsLimit":null,
                "RestartPolicy":{"Name":"","MaximumRetryCount":0}}"#,
        )
        .unwrap();
        let r = update_request(&b).unwrap();
        assert_eq!(r.memory, Some(67108864));
        assert_eq!(r.cpus, Some(1.5));
        assert!(r.restart.is_none() && r.pids_limit.is_none() && r.cpu_shares.is_none());
        let b: Map<String, Value> = serde_json::from_str(
            r#"{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"PidsLimit":50}"#,
        )
        .unwrap();
        let r = update_request(&b).unwrap();
        assert_eq!(r.restart.as_deref(), Some("on-failure:3"));
        assert_eq!(r.pids_limit, Some(50));
        // What berth cannot change is refused by name; bad types too.
        let e = update_request(&serde_json::from_str(r#"{"KernelMemory":1024}"#).unwrap());
        assert!(e.unwrap_err().contains("KernelMemory"));
        assert!(update_request(&serde_json::from_str(r#"{"Memory":"x"}"#).unwrap()).is_err());
        assert!(update_request(&serde_json::from_str(r#"{"CpuShares":-1}"#).unwrap()).is_err());
    }
}
