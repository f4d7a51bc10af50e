//! `/_ping`, `/version`, `/info`.

use crate::error::ApiResult;
use crate::http::{self, Resp};
use crate::server::Shared;
use hyper::{header::HeaderValue, Method, StatusCode};
use std::sync::Arc;

/// `GET|HEAD /_ping`: "OK", with the API version in the headers (what a
/// client negotiates its version down to).
pub fn ping(m: &Method) -> Resp {
    let mut r = if m == Method::HEAD {
        http::empty(StatusCode::OK)
    } else {
        http::text(StatusCode::OK, "OK")
    };
    let h = r.headers_mut();
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    r
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The `/version` document.
pub fn version_doc() -> serde_json::Value {
    let v = berth_engine::info::version();
    serde_json::json!({
        "Platform": { "Name": "berth" },
        "Components": [{
            "Name": "Engine",
            "Version": v.version,
            "Details": {
                "ApiVersion": crate::API_VERSION,
                "MinAPIVersion": crate::MIN_API_VERSION,
                "GitCommit": v.git_commit,
                "Os": "linux",
                "Arch": go_arch(),
                "KernelVersion": kernel(),
            }
        }],
        "Version": v.version,
        "ApiVersion": crate::API_VERSION,
        "MinAPIVersion": crate::MIN_API_VERSION,
        "GitCommit": v.git_commit,
        "GoVersion": v.rust_version,
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel(),
        "BuildTime": "",
    })
}

pub async fn version(_s: &Arc<Shared>) -> ApiResult<Resp> {
    Ok(http::json(&version_doc()))
}

pub async fn info(s: &Arc<Shared>) -> ApiResult<Resp> {
    let i = s.engine(|e| Ok(e.info()?)).await?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    Ok(http::json(&serde_json::json!({
        "ID": "",
        "Containers": i.containers,
        "ContainersRunning": i.containers_running,
        "ContainersPaused": i.containers_paused,
        "ContainersStopped": i.containers_stopped,
        "Images": i.images,
        "Driver": i.storage_driver,
        "DriverStatus": [],
        "Plugins": { "Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file", "k8s-file", "none"] },
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": berth_engine::logs::rfc3339_nano(now_nanos()),
        "LoggingDriver": "k8s-file",
        "CgroupDriver": i.cgroup_driver,
        "CgroupVersion": i.cgroup_version.trim_start_matches('v'),
        "NEventsListener": 0,
        "KernelVersion": i.kernel_version,
        "OperatingSystem": i.operating_system,
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": i.architecture,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": { "IndexConfigs": {}, "InsecureRegistryCIDRs": [], "Mirrors": [] },
        "NCPU": i.ncpu,
        "MemTotal": i.mem_total,
        "DockerRootDir": i.root,
        "Name": host,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": i.version,
        "Runtimes": { i.default_runtime.clone(): { "path": i.default_runtime } },
        "DefaultRuntime": i.default_runtime,
        "Swarm": { "LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": null },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "berth-init",
        "SecurityOptions": ["name=seccomp,profile=default"],
        "Warnings": [],
    })))
}

pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// `GET /system/df`: images (with how many containers use each),
/// containers (with their sizes), volumes (with their users), no build
/// cache (berth keeps none apart from its layers), and the layers' size,
/// from the engine's `df`, list and ps; the CLI sums them.
pub async fn df(s: &Arc<Shared>) -> ApiResult<Resp> {
    let s2 = s.clone();
    let images =
        Shared::blocking(move || Ok(berth_engine::images::Images::open(&s2.root)?.list(&[])?))
            .await?;
    let v = s
        .engine(move |e| {
            let layers: u64 = e
                .df()?
                .iter()
                .filter(|r| r.kind == "Images")
                .map(|r| r.size)
                .sum();
            let recs = e.list()?;
            let containers: Vec<serde_json::Value> = recs
                .iter()
                .map(|r| {
                    let p = e.ps_entry(r, true);
                    serde_json::json!({
                        "Id": p.id,
                        "Names": [format!("/{}", r.name)],
                        "Image": p.image,
                        "ImageID": p.image_id,
                        "Command": berth_engine::query::quoted_command(&p.command, true).trim_matches('"'),
                        "Created": p.created,
                        "State": p.state,
                        "Status": p.status,
                        "SizeRw": p.size_rw.unwrap_or(0),
                        "SizeRootFs": p.size_root_fs.unwrap_or(0),
                        "Labels": p.labels,
                        "Mounts": [],
                    })
                })
                .collect();
            let imgs: Vec<serde_json::Value> = images
                .iter()
                .map(|i| {
                    let id = i.id.to_string();
                    let users = recs.iter().filter(|r| r.image_id == id).count();
                    let tags: Vec<&String> = i.names.iter().filter(|n| !n.contains('@')).collect();
                    serde_json::json!({
                        "Id": id,
                        "ParentId": "",
                        "RepoTags": tags,
                        "RepoDigests": i.names.iter().filter(|n| n.contains('@')).collect::<Vec<_>>(),
                        "Created": 0,
                        "Size": i.size,
                        "VirtualSize": i.size,
                        "SharedSize": 0,
                        "Labels": {},
                        "Containers": users,
                    })
                })
                .collect();
            let mut vols = Vec::new();
            for (v, users, _) in e.volume_list()? {
                let mut d = crate::volumes::doc(&e.inspect_volume(&v.name)?);
                d["UsageData"] = serde_json::json!({"Size": -1, "RefCount": users});
                vols.push(d);
            }
            Ok(serde_json::json!({
                "LayersSize": layers,
                "Images": imgs,
                "Containers": containers,
                "Volumes": vols,
                "BuildCache": [],
            }))
        })
        .await?;
    Ok(http::json(&v))
}
