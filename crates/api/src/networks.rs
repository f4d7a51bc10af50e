//! `/networks`: list, inspect, create, remove (bridge networks, recorded
//! by the engine; their bridges are made when a container first starts on
//! them).

use crate::error::{ApiError, ApiResult};
use crate::http::{self, Query, Resp};
use crate::server::Shared;
use berth_engine::network::model::CreateRequest as NetCreate;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn list(s: &Arc<Shared>, q: &Query) -> ApiResult<Resp> {
    let filters = q.filters()?;
    let mut names = Vec::new();
    for f in &filters {
        match f.split_once('=') {
            Some(("name", n)) => names.push(n.to_string()),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter {f:?}: berth's network list takes name"
                )))
            }
        }
    }
    let out = s
        .engine(move |e| {
            let mut out = Vec::new();
            for n in e.network_list()? {
                if !names.is_empty() && !names.iter().any(|x| n.name.contains(x.as_str())) {
                    continue;
                }
                out.push(docker_view(e, &n)?);
            }
            Ok(out)
        })
        .await?;
    Ok(http::json(&out))
}

pub async fn inspect(s: &Arc<Shared>, name: &str) -> ApiResult<Resp> {
    let name = name.to_string();
    let v = s
        .engine(move |e| Ok(docker_view(e, &e.network(&name)?)?))
        .await?;
    Ok(http::json(&v))
}

/// A network's document as dockerd shows it: the Options hold what the
/// creator gave (docker-compose compares them with its project's and would
/// otherwise ask for the network to be made again), so a bridge name berth
/// chose itself is left out, except on the default network (dockerd shows
/// `docker0` there).
fn docker_view(
    e: &berth_engine::Engine,
    n: &berth_engine::network::model::Network,
) -> berth_engine::Result<serde_json::Value> {
    let mut v = serde_json::to_value(e.inspect_network(&n.id)?).unwrap_or_default();
    let key = berth_engine::network::model::OPT_BRIDGE_NAME;
    if n.name != berth_engine::network::model::DEFAULT_NETWORK && !n.options.contains_key(key) {
        if let Some(o) = v.get_mut("Options").and_then(|o| o.as_object_mut()) {
            o.remove(key);
        }
    }
    Ok(v)
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: String,
    config: Vec<IpamConfig>,
    options: BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: String,
    gateway: String,
    #[serde(rename = "IPRange")]
    ip_range: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
    internal: bool,
    attachable: bool,
    ingress: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    options: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    check_duplicate: bool,
}

pub async fn create(s: &Arc<Shared>, req: Request<Incoming>) -> ApiResult<Resp> {
    let b: CreateBody = http::read_json(req.into_body()).await?;
    if b.name.is_empty() {
        return Err(ApiError::bad_request("network create: Name is required"));
    }
    if b.ingress {
        return Err(ApiError::bad_request(
            "Ingress networks are not supported by berth",
        ));
    }
    let _ = (b.attachable, b.check_duplicate);
    let ipam = b.ipam.unwrap_or_default();
    if !ipam.driver.is_empty() && ipam.driver != "default" {
        return Err(ApiError::bad_request(format!(
            "IPAM driver {:?} is not supported: berth has the default one",
            ipam.driver
        )));
    }
    if !ipam.options.is_empty() {
        return Err(ApiError::bad_request(
            "IPAM.Options are not supported by berth",
        ));
    }
    let req = NetCreate {
        name: b.name,
        driver: Some(b.driver).filter(|d| !d.is_empty()),
        subnets: ipam
            .config
            .iter()
            .map(|c| c.subnet.clone())
            .filter(|x| !x.is_empty())
            .collect(),
        gateways: ipam
            .config
            .iter()
            .map(|c| c.gateway.clone())
            .filter(|x| !x.is_empty())
            .collect(),
        ip_ranges: ipam
            .config
            .iter()
            .map(|c| c.ip_range.clone())
            .filter(|x| !x.is_empty())
            .collect(),
        ipv6: b.enable_ipv6,
        internal: b.internal,
        disable_dns: false,
        labels: b.labels,
        options: b.options,
    };
    let id = s.engine(move |e| Ok(e.network_create(&req)?.id)).await?;
    Ok(http::json_status(
        StatusCode::CREATED,
        &serde_json::json!({ "Id": id, "Warning": "" }),
    ))
}

pub async fn remove(s: &Arc<Shared>, name: &str) -> ApiResult<Resp> {
    let name = name.to_string();
    s.engine(move |e| {
        e.network_remove(&name)?;
        Ok(())
    })
    .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// The body of connect and disconnect.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct ConnectBody {
    #[serde(rename = "Container")]
    container: String,
    #[serde(rename = "EndpointConfig")]
    endpoint: Option<EndpointBody>,
    #[serde(rename = "Force")]
    _force: bool,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct EndpointBody {
    #[serde(rename = "Aliases")]
    aliases: Option<Vec<String>>,
    #[serde(rename = "IPAMConfig")]
    ipam: Option<IpamBody>,
    #[serde(rename = "MacAddress")]
    mac: String,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct IpamBody {
    #[serde(rename = "IPv4Address")]
    ipv4: String,
    #[serde(rename = "IPv6Address")]
    ipv6: String,
}

fn want_of(b: &ConnectBody) -> ApiResult<berth_engine::network::ipam::Want> {
    let mut w = berth_engine::network::ipam::Want::default();
    if let Some(ep) = &b.endpoint {
        w.aliases = ep.aliases.clone().unwrap_or_default();
        if !ep.mac.is_empty() {
            w.mac = Some(ep.mac.clone());
        }
        if let Some(ip) = &ep.ipam {
            if !ip.ipv4.is_empty() {
                w.ipv4 = Some(ip.ipv4.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid IPv4 address {:?}", ip.ipv4))
                })?);
            }
            if !ip.ipv6.is_empty() {
                w.ipv6 = Some(ip.ipv6.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid IPv6 address {:?}", ip.ipv6))
                })?);
            }
        }
    }
    Ok(w)
}

/// `POST /networks/{id}/connect` and `/disconnect`.
pub async fn connect(
    s: &Arc<Shared>,
    name: &str,
    req: Request<Incoming>,
    on: bool,
) -> ApiResult<Resp> {
    let b: ConnectBody = http::read_json(req.into_body()).await?;
    if b.container.is_empty() {
        return Err(ApiError::bad_request("Container is required"));
    }
    let want = want_of(&b)?;
    let name = name.to_string();
    s.engine(move |e| {
        if on {
            Ok(e.network_connect(&b.container, &name, &want)?)
        } else {
            Ok(e.network_disconnect(&b.container, &name)?)
        }
    })
    .await?;
    Ok(http::empty(StatusCode::OK))
}

/// `POST /networks/prune`: the networks no container uses, narrowed by
/// Docker's filters (`until`, `label`, `label!`).
pub async fn prune(s: &Arc<Shared>, q: &Query) -> ApiResult<Resp> {
    let filters = q.filters()?;
    let gone = s
        .engine(move |e| {
            let f = berth_engine::prune::PruneFilter::parse(
                &filters,
                "network prune",
                berth_engine::logs::now_nanos(),
            )?;
            Ok(e.network_prune(&f)?)
        })
        .await?;
    let names: Vec<String> = gone.into_iter().map(|n| n.name).collect();
    Ok(http::json(&serde_json::json!({ "NetworksDeleted": names })))
}
