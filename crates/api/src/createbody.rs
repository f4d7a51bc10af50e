//! A create request's body (Docker's container config with its
//! `HostConfig`) mapped onto the flags `berth create` takes
//! ([`CreateFlags`]), so the API's containers get the CLI's specs. Pure: no
//! I/O, fuzzed (fuzz target `api`). A field berth does not support is an
//! error naming it when it is set to anything but its zero value.

use berth_engine::specgen::docker::CreateFlags;
use serde_json::{Map, Value};

/// What a create request asks for.
#[derive(Debug, Default)]
pub struct CreateBody {
    pub image: String,
    pub flags: CreateFlags,
    pub command: Vec<String>,
}

/// Fields that change nothing in berth's spec (the client's own business,
/// or build-time only), whatever their value.
const IGNORED: &[&str] = &[
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "StdinOnce",
    "ArgsEscaped",
    "Platform",
    "OnBuild",
    "Shell",
    "HostConfig.ContainerIDFile",
    "HostConfig.ConsoleSize",
    "HostConfig.Isolation",
    "HostConfig.VolumeDriver",
    "HostConfig.KernelMemory",
    "HostConfig.KernelMemoryTCP",
];

/// Whether `v` is a field's zero value (null, false, 0, "", and arrays
/// and objects of those).
pub fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().all(is_zero),
        Value::Object(o) => o.values().all(is_zero),
    }
}

type R<T> = Result<T, String>;

fn strs(v: &Value, field: &str) -> R<Vec<String>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .ok_or_else(|| format!("{field}: expected strings"))
            })
            .collect(),
        _ => Err(format!("{field}: expected a list of strings")),
    }
}

fn string(v: &Value, field: &str) -> R<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(format!("{field}: expected a string")),
    }
}

fn boolean(v: &Value, field: &str) -> R<bool> {
    match v {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        _ => Err(format!("{field}: expected a boolean")),
    }
}

fn int(v: &Value, field: &str) -> R<Option<i64>> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{field}: expected an integer")),
        _ => Err(format!("{field}: expected an integer")),
    }
}

fn map(v: &Value, field: &str) -> R<Vec<(String, Value)>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Object(o) => Ok(o.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        _ => Err(format!("{field}: expected an object")),
    }
}

fn str_map(v: &Value, field: &str) -> R<Vec<(String, String)>> {
    map(v, field)?
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(format!("{field}.{k}: expected a string")),
        })
        .collect()
}

fn list(v: &Value, field: &str) -> R<Vec<Map<String, Value>>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_object()
                    .cloned()
                    .ok_or_else(|| format!("{field}: expected a list of objects"))
            })
            .collect(),
        _ => Err(format!("{field}: expected a list")),
    }
}

fn get<'a>(o: &'a Map<String, Value>, k: &str) -> &'a Value {
    o.get(k).unwrap_or(&Value::Null)
}

/// Parses a create request's body.
/// `Healthcheck` (`{"Test", "Interval", "Timeout", "Retries",
/// "StartPeriod", "StartInterval"}`, durations in ns, 0 for the default)
/// onto the `--health-*` flags; `["NONE"]` is `--no-healthcheck`, an
/// empty or absent Test keeps the image's.
fn healthcheck(v: &Value, f: &mut CreateFlags) -> R<()> {
    for (k, x) in map(v, "Healthcheck")? {
        let field = format!("Healthcheck.{k}");
        let dur = |x: &Value| -> R<Option<String>> {
            Ok(int(x, &field)?.filter(|n| *n > 0).map(|n| format!("{n}ns")))
        };
        match k.as_str() {
            "Test" => {
                let t = strs(&x, &field)?;
                match t.first().map(String::as_str) {
                    None => {}
                    Some("NONE") => f.no_healthcheck = true,
                    Some("CMD" | "CMD-SHELL") => {
                        f.health_cmd =
                            Some(serde_json::to_string(&t).map_err(|e| format!("{field}: {e}"))?)
                    }
                    Some(o) => return Err(format!("{field}: {o:?} is not NONE, CMD or CMD-SHELL")),
                }
            }
            "Interval" => f.health_interval = dur(&x)?,
            "Timeout" => f.health_timeout = dur(&x)?,
            "StartPeriod" => f.health_start_period = dur(&x)?,
            "StartInterval" => f.health_start_interval = dur(&x)?,
            "Retries" => {
                f.health_retries = int(&x, &field)?
                    .filter(|n| *n > 0)
                    .map(|n| u32::try_from(n).map_err(|_| format!("{field}: too large")))
                    .transpose()?
            }
            _ if is_zero(&x) => {}
            _ => return Err(format!("not supported by berth: {field}")),
        }
    }
    Ok(())
}

pub fn parse(body: &[u8]) -> R<CreateBody> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    from_value(&v)
}

pub fn from_value(v: &Value) -> R<CreateBody> {
    let top = v
        .as_object()
        .ok_or("the body is not a JSON object (a container config)")?;
    let empty = Map::new();
    let hc = match top.get("HostConfig") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => return Err("HostConfig: expected an object".into()),
    };
    let mut out = CreateBody::default();
    let f = &mut out.flags;
    let mut unsupported = Vec::new();
    let mut command = Vec::new();
    for (k, val) in top {
        let field = k.as_str();
        match field {
            "Image" => out.image = string(val, field)?.unwrap_or_default(),
            "Hostname" => f.hostname = string(val, field)?,
            "Domainname" => f.domainname = string(val, field)?,
            "User" => f.user = string(val, field)?,
            "WorkingDir" => f.workdir = string(val, field)?,
            "Tty" => f.tty = boolean(val, field)?,
            "OpenStdin" => f.interactive = boolean(val, field)?,
            "StopSignal" => f.stop_signal = string(val, field)?,
            "StopTimeout" => {
                f.stop_timeout = int(val, field)?
                    .filter(|t| *t >= 0)
                    .map(|t| u32::try_from(t).map_err(|_| format!("{field}: too large")))
                    .transpose()?
            }
            "MacAddress" => f.mac_address = string(val, field)?,
            "NetworkDisabled" => {
                if boolean(val, field)? {
                    f.network = vec!["none".into()];
                }
            }
            // The client resolved `-e KEY` already: an entry without a
            // value is never taken from the service's environment.
            "Env" => {
                f.env = strs(val, field)?
                    .into_iter()
                    .filter(|e| e.contains('='))
                    .collect()
            }
            "Cmd" => command = strs(val, field)?,
            "Labels" => {
                f.label = str_map(val, field)?
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect()
            }
            "Volumes" => f
                .volume
                .extend(map(val, field)?.into_iter().map(|(d, _)| d)),
            "ExposedPorts" => f.expose = map(val, field)?.into_iter().map(|(p, _)| p).collect(),
            "Healthcheck" if !val.is_null() => healthcheck(val, f)?,
            "Entrypoint" | "HostConfig" | "NetworkingConfig" => {}
            _ if IGNORED.contains(&field) => {}
            _ if is_zero(val) => {}
            _ => unsupported.push(field.to_string()),
        }
    }
    // Entrypoint: its first word replaces the image's, the rest go
    // before the command (Docker runs ENTRYPOINT + CMD).
    let ep = strs(get(top, "Entrypoint"), "Entrypoint")?;
    match ep.split_first() {
        None if get(top, "Entrypoint").is_array() => f.entrypoint = Some(String::new()),
        None => {}
        Some((first, rest)) => {
            f.entrypoint = Some(first.clone());
            out.command.extend(rest.iter().cloned());
        }
    }
    out.command.extend(command);
    for (k, val) in hc {
        let field = format!("HostConfig.{k}");
        let fl = field.as_str();
        match k.as_str() {
            "Binds" => f.volume.extend(strs(val, fl)?),
            "NetworkMode" => match string(val, fl)?.as_deref() {
                None | Some("default") => {}
                Some(n) => f.network.push(n.to_string()),
            },
            "PortBindings" => {
                for (port, binds) in map(val, fl)? {
                    f.expose.retain(|p| p != &port);
                    let binds = list(&binds, fl)?;
                    if binds.is_empty() {
                        f.publish.push(port.clone());
                    }
                    for b in binds {
                        let ip = string(get(&b, "HostIp"), fl)?.unwrap_or_default();
                        let hp = string(get(&b, "HostPort"), fl)?.unwrap_or_default();
                        let ip = if ip.contains(':') {
                            format!("[{ip}]")
                        } else {
                            ip
                        };
                        f.publish.push(match (ip.is_empty(), hp.is_empty()) {
                            (true, true) => port.clone(),
                            (true, false) => format!("{hp}:{port}"),
                            (false, _) => format!("{ip}:{hp}:{port}"),
                        });
                    }
                }
            }
            "PublishAllPorts" => f.publish_all = boolean(val, fl)?,
            "RestartPolicy" => {
                let o = val.as_object().cloned().unwrap_or_default();
                let name = string(get(&o, "Name"), fl)?.unwrap_or_default();
                let n = int(get(&o, "MaximumRetryCount"), fl)?.unwrap_or(0);
                f.restart = match name.as_str() {
                    "" | "no" => None,
                    "on-failure" if n > 0 => Some(format!("on-failure:{n}")),
                    other => Some(other.to_string()),
                };
            }
            "AutoRemove" => f.rm = boolean(val, fl)?,
            "VolumesFrom" => f.volumes_from = strs(val, fl)?,
            "CapAdd" => f.cap_add = strs(val, fl)?,
            "CapDrop" => f.cap_drop = strs(val, fl)?,
            "CgroupnsMode" => f.cgroupns = string(val, fl)?,
            "Dns" => f.dns = strs(val, fl)?,
            "DnsOptions" => f.dns_option = strs(val, fl)?,
            "DnsSearch" => f.dns_search = strs(val, fl)?,
            "ExtraHosts" => f.add_host = strs(val, fl)?,
            "GroupAdd" => f.group_add = strs(val, fl)?,
            "IpcMode" => f.ipc = string(val, fl)?.filter(|m| m != "private" && m != "shareable"),
            "PidMode" => f.pid = string(val, fl)?,
            "UTSMode" => f.uts = string(val, fl)?,
            "UsernsMode" => f.userns = string(val, fl)?,
            "Privileged" => f.privileged = boolean(val, fl)?,
            "ReadonlyRootfs" => f.read_only = boolean(val, fl)?,
            "SecurityOpt" => f.security_opt = strs(val, fl)?,
            "OomScoreAdj" => {
                f.oom_score_adj = int(val, fl)?
                    .filter(|n| *n != 0)
                    .map(|n| i32::try_from(n).map_err(|_| format!("{fl}: out of range")))
                    .transpose()?
            }
            "Tmpfs" => {
                for (d, o) in str_map(val, fl)? {
                    f.tmpfs
                        .push(if o.is_empty() { d } else { format!("{d}:{o}") });
                }
            }
            "ShmSize" => f.shm_size = int(val, fl)?.filter(|n| *n > 0).map(|n| n.to_string()),
            "Sysctls" => {
                f.sysctl = str_map(val, fl)?
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect()
            }
            "Runtime" => f.runtime = string(val, fl)?,
            "Init" => f.init = boolean(val, fl)?,
            "Memory" => f.memory = int(val, fl)?.filter(|n| *n > 0).map(|n| n.to_string()),
            "MemorySwap" => {
                f.memory_swap = int(val, fl)?.filter(|n| *n != 0).map(|n| n.to_string())
            }
            "MemoryReservation" => {
                f.memory_reservation = int(val, fl)?.filter(|n| *n > 0).map(|n| n.to_string())
            }
            "MemorySwappiness" => {
                f.memory_swappiness = int(val, fl)?.filter(|n| *n >= 0).map(|n| n as u64)
            }
            "OomKillDisable" => f.oom_kill_disable = boolean(val, fl)?,
            "NanoCpus" => f.cpus = int(val, fl)?.filter(|n| *n > 0).map(|n| n as f64 / 1e9),
            "CpuShares" => f.cpu_shares = int(val, fl)?.filter(|n| *n > 0).map(|n| n as u64),
            "CpuPeriod" => f.cpu_period = int(val, fl)?.filter(|n| *n > 0).map(|n| n as u64),
            "CpuQuota" => f.cpu_quota = int(val, fl)?.filter(|n| *n != 0),
            "CpusetCpus" => f.cpuset_cpus = string(val, fl)?,
            "CpusetMems" => f.cpuset_mems = string(val, fl)?,
            "PidsLimit" => f.pids_limit = int(val, fl)?.filter(|n| *n != 0),
            "CgroupParent" => f.cgroup_parent = string(val, fl)?,
            "BlkioWeight" => {
                f.blkio_weight = int(val, fl)?
                    .filter(|n| *n > 0)
                    .map(|n| u16::try_from(n).map_err(|_| format!("{fl}: out of range")))
                    .transpose()?
            }
            "BlkioWeightDevice" => {
                for d in list(val, fl)? {
                    let p = string(get(&d, "Path"), fl)?.unwrap_or_default();
                    let w = int(get(&d, "Weight"), fl)?.unwrap_or(0);
                    f.blkio_weight_device.push(format!("{p}:{w}"));
                }
            }
            "BlkioDeviceReadBps"
            | "BlkioDeviceWriteBps"
            | "BlkioDeviceReadIOps"
            | "BlkioDeviceWriteIOps" => {
                let mut v = Vec::new();
                for d in list(val, fl)? {
                    let p = string(get(&d, "Path"), fl)?.unwrap_or_default();
                    let r = int(get(&d, "Rate"), fl)?.unwrap_or(0);
                    v.push(format!("{p}:{r}"));
                }
                match k.as_str() {
                    "BlkioDeviceReadBps" => f.device_read_bps = v,
                    "BlkioDeviceWriteBps" => f.device_write_bps = v,
                    "BlkioDeviceReadIOps" => f.device_read_iops = v,
                    _ => f.device_write_iops = v,
                }
            }
            "Devices" => {
                for d in list(val, fl)? {
                    let h = string(get(&d, "PathOnHost"), fl)?.unwrap_or_default();
                    let c = string(get(&d, "PathInContainer"), fl)?.unwrap_or_else(|| h.clone());
                    let p =
                        string(get(&d, "CgroupPermissions"), fl)?.unwrap_or_else(|| "rwm".into());
                    f.device.push(format!("{h}:{c}:{p}"));
                }
            }
            "DeviceCgroupRules" => f.device_cgroup_rule = strs(val, fl)?,
            "Ulimits" => {
                for u in list(val, fl)? {
                    let n = string(get(&u, "Name"), fl)?.unwrap_or_default();
                    let s = int(get(&u, "Soft"), fl)?.unwrap_or(0);
                    let h = int(get(&u, "Hard"), fl)?.unwrap_or(s);
                    f.ulimit.push(format!("{n}={s}:{h}"));
                }
            }
            "LogConfig" => {
                let o = val.as_object().cloned().unwrap_or_default();
                f.log_driver = string(get(&o, "Type"), fl)?;
                f.log_opt = str_map(get(&o, "Config"), fl)?
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
            }
            "Mounts" => {
                for m in list(val, fl)? {
                    f.mount.push(mount(&m, fl)?);
                }
            }
            "Annotations" => {
                f.annotation = str_map(val, fl)?
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect()
            }
            _ if IGNORED.contains(&fl) => {}
            _ if is_zero(val) => {}
            _ => unsupported.push(field.clone()),
        }
    }
    // NetworkingConfig: the endpoints of the networks named (aliases and
    // a static address on a single network).
    if let Some(eps) = top
        .get("NetworkingConfig")
        .and_then(|n| n.get("EndpointsConfig"))
    {
        for (net, ep) in map(eps, "NetworkingConfig.EndpointsConfig")? {
            let fl = format!("NetworkingConfig.EndpointsConfig.{net}");
            // "default": the client's name for no network asked for.
            if net != "default" && !f.network.contains(&net) {
                f.network.push(net.clone());
            }
            let o = ep.as_object().cloned().unwrap_or_default();
            for (k, v) in &o {
                match k.as_str() {
                    "Aliases" => f.network_alias.extend(strs(v, &fl)?),
                    "IPAMConfig" => {
                        let ipam = v.as_object().cloned().unwrap_or_default();
                        f.ip = string(get(&ipam, "IPv4Address"), &fl)?;
                        f.ip6 = string(get(&ipam, "IPv6Address"), &fl)?;
                    }
                    "MacAddress" => {
                        if let Some(m) = string(v, &fl)? {
                            f.mac_address = Some(m);
                        }
                    }
                    // Filled in by the engine, never asked for.
                    "NetworkID"
                    | "EndpointID"
                    | "Gateway"
                    | "IPAddress"
                    | "IPPrefixLen"
                    | "IPv6Gateway"
                    | "GlobalIPv6Address"
                    | "GlobalIPv6PrefixLen"
                    | "DriverOpts"
                    | "Links"
                        if is_zero(v) => {}
                    _ if is_zero(v) => {}
                    _ => unsupported.push(format!("{fl}.{k}")),
                }
            }
        }
    }
    if !unsupported.is_empty() {
        return Err(format!(
            "not supported by berth: {} (remove them or leave them unset)",
            unsupported.join(", ")
        ));
    }
    if out.image.is_empty() {
        return Err("Image: a container needs an image".into());
    }
    drop_covered_volumes(&mut out.flags);
    // dockerd's default log driver (berth's CLI defaults to podman's
    // k8s-file): the Docker SDKs read a `run`'s output back only from
    // json-file or journald containers.
    if out.flags.log_driver.as_deref().is_none_or(str::is_empty) {
        out.flags.log_driver = Some("json-file".into());
    }
    Ok(out)
}

/// `Config.Volumes` declares anonymous volumes; a path that a bind or
/// mount of `HostConfig` also covers is that one's (as dockerd; compose
/// sends both for a named volume).
fn drop_covered_volumes(f: &mut CreateFlags) {
    let mut targets: Vec<String> = f
        .volume
        .iter()
        .filter_map(|v| {
            let mut p = v.split(':');
            let (_, dst) = (p.next()?, p.next()?);
            Some(dst.to_string())
        })
        .collect();
    targets.extend(f.mount.iter().filter_map(|m| {
        m.split(',').find_map(|kv| {
            kv.strip_prefix("target=")
                .or_else(|| kv.strip_prefix("destination="))
                .or_else(|| kv.strip_prefix("dst="))
                .map(String::from)
        })
    }));
    let norm = |p: &str| p.trim_end_matches('/').to_string();
    let targets: Vec<String> = targets.iter().map(|t| norm(t)).collect();
    f.volume
        .retain(|v| v.contains(':') || !targets.contains(&norm(v)));
}

/// A `HostConfig.Mounts` entry as `--mount`'s string.
fn mount(m: &Map<String, Value>, fl: &str) -> R<String> {
    let ty = string(get(m, "Type"), fl)?.unwrap_or_else(|| "volume".into());
    let target = string(get(m, "Target"), fl)?.ok_or(format!("{fl}: a mount needs a Target"))?;
    let mut parts = vec![format!("type={ty}")];
    if let Some(s) = string(get(m, "Source"), fl)? {
        parts.push(format!("source={s}"));
    }
    parts.push(format!("target={target}"));
    if boolean(get(m, "ReadOnly"), fl)? {
        parts.push("readonly".into());
    }
    for (k, v) in m {
        match k.as_str() {
            "Type" | "Source" | "Target" | "ReadOnly" | "Consistency" => {}
            "BindOptions" => {
                let o = v.as_object().cloned().unwrap_or_default();
                if let Some(p) = string(get(&o, "Propagation"), fl)? {
                    parts.push(format!("bind-propagation={p}"));
                }
            }
            "VolumeOptions" => {
                let o = v.as_object().cloned().unwrap_or_default();
                for (vk, vv) in &o {
                    let at = format!("{fl}.VolumeOptions.{vk}");
                    match vk.as_str() {
                        "NoCopy" => {
                            if boolean(vv, &at)? {
                                parts.push("volume-nocopy".into());
                            }
                        }
                        // API 1.45's (compose's `volume: subpath:`): only
                        // that part of the volume, never the whole of it.
                        "Subpath" => {
                            if let Some(p) = string(vv, &at)? {
                                parts.push(format!("volume-subpath={p}"));
                            }
                        }
                        _ if is_zero(vv) => {}
                        _ => return Err(format!("{at}: not supported by berth")),
                    }
                }
            }
            "TmpfsOptions" => {
                let o = v.as_object().cloned().unwrap_or_default();
                if let Some(s) = int(get(&o, "SizeBytes"), fl)?.filter(|s| *s > 0) {
                    parts.push(format!("tmpfs-size={s}"));
                }
                if let Some(m) = int(get(&o, "Mode"), fl)?.filter(|s| *s > 0) {
                    parts.push(format!("tmpfs-mode={m:o}"));
                }
            }
            _ if is_zero(v) => {}
            _ => return Err(format!("{fl}.{k}: not supported by berth")),
        }
    }
    for p in &parts {
        if p.contains(',') {
            return Err(format!("{fl}: a comma in {p:?} is not supported"));
        }
    }
    Ok(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_run_body_maps_onto_the_clis_flags() {
        let b = parse(
            br#"{"Image":"busybox","Cmd":["sh","-c","echo hi"],"Env":["A=1","FROM_CLIENT"],
            "Tty":false,"OpenStdin":true,"Labels":{"k":"v"},"ExposedPorts":{"80/tcp":{},"53/udp":{}},
            "Entrypoint":null,"Volumes":{"/data":{}},"AttachStdout":true,"StopTimeout":5,
            "HostConfig":{"Binds":["/srv:/srv:ro"],"NetworkMode":"default",
              "PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"},{"HostIp":"::1","HostPort":"8081"}]},
              "RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"AutoRemove":true,
              "Memory":268435456,"NanoCpus":1500000000,"MemorySwappiness":-1,"ConsoleSize":[0,0],
              "LogConfig":{"Type":"","Config":{}},"Tmpfs":{"/run":"size=1m"},"KernelMemory":0,
              "Mounts":[{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1024,"Mode":448}}]}}"#,
        )
        .unwrap();
        let f = &b.flags;
        assert_eq!(b.image, "busybox");
        assert_eq!(b.command, ["sh", "-c", "echo hi"]);
        assert_eq!(f.env, ["A=1"]);
        assert!(f.interactive && !f.tty && f.rm);
        assert_eq!(f.label, ["k=v"]);
        assert_eq!(f.expose, ["53/udp"]);
        assert_eq!(f.publish, ["8080:80/tcp", "[::1]:8081:80/tcp"]);
        assert_eq!(f.volume, ["/data", "/srv:/srv:ro"]);
        assert_eq!(f.restart.as_deref(), Some("on-failure:3"));
        assert_eq!(f.memory.as_deref(), Some("268435456"));
        assert_eq!(f.cpus, Some(1.5));
        assert_eq!(f.memory_swappiness, None);
        assert_eq!(f.stop_timeout, Some(5));
        assert_eq!(f.tmpfs, ["/run:size=1m"]);
        assert_eq!(
            f.mount,
            ["type=tmpfs,target=/t,tmpfs-size=1024,tmpfs-mode=700"]
        );
        assert!(f.network.is_empty());
    }

    #[test]
    fn the_log_driver_is_dockers_unless_asked() {
        // Regression: the Python SDK's `containers.run()` returned None
        // for a k8s-file container instead of its output.
        for body in [
            &br#"{"Image":"i"}"#[..],
            br#"{"Image":"i","HostConfig":{"LogConfig":{"Type":"","Config":{}}}}"#,
        ] {
            let b = parse(body).unwrap();
            assert_eq!(b.flags.log_driver.as_deref(), Some("json-file"));
        }
        let b = parse(br#"{"Image":"i","HostConfig":{"LogConfig":{"Type":"k8s-file"}}}"#).unwrap();
        assert_eq!(b.flags.log_driver.as_deref(), Some("k8s-file"));
    }

    #[test]
    fn entrypoint_words_go_before_the_command() {
        let b = parse(br#"{"Image":"i","Entrypoint":["/bin/sh","-c"],"Cmd":["true"]}"#).unwrap();
        assert_eq!(b.flags.entrypoint.as_deref(), Some("/bin/sh"));
        assert_eq!(b.command, ["-c", "true"]);
        let b = parse(br#"{"Image":"i","Entrypoint":[]}"#).unwrap();
        assert_eq!(b.flags.entrypoint.as_deref(), Some(""));
    }

    #[test]
    fn set_fields_berth_lacks_are_named_and_zero_ones_pass() {
        let e = parse(br#"{"Image":"i","HostConfig":{"Links":["a:b"],"CpuRealtimeRuntime":0}}"#)
            .unwrap_err();
        assert!(e.contains("HostConfig.Links"), "{e}");
        assert!(!e.contains("CpuRealtimeRuntime"), "{e}");
        assert!(parse(br#"{"Image":"i","Healthcheck":null,"HostConfig":{"Links":null}}"#).is_ok());
    }

    #[test]
    fn a_declared_volume_a_bind_covers_is_the_binds() {
        let b = parse(br#"{"Image":"i","Volumes":{"/data":{},"/anon":{}},"HostConfig":{"Binds":["pr_db:/data:rw"],"Mounts":[{"Type":"volume","Source":"v","Target":"/m/"}]}}"#).unwrap();
        assert_eq!(b.flags.volume, ["/anon", "pr_db:/data:rw"]);
        let b = parse(br#"{"Image":"i","Volumes":{"/m":{}},"HostConfig":{"Mounts":[{"Type":"volume","Source":"v","Target":"/m"}]}}"#).unwrap();
        assert!(b.flags.volume.is_empty(), "{:?}", b.flags.volume);
    }

    #[test]
    fn a_healthcheck_maps_onto_the_health_flags() {
        let b = parse(br#"{"Image":"i","Healthcheck":{"Test":["CMD","wget","-q","x"],"Interval":1000000000,"Timeout":0,"Retries":5,"StartPeriod":0}}"#).unwrap();
        let f = &b.flags;
        assert_eq!(f.health_cmd.as_deref(), Some(r#"["CMD","wget","-q","x"]"#));
        assert_eq!(f.health_interval.as_deref(), Some("1000000000ns"));
        assert_eq!(
            (f.health_timeout.as_deref(), f.health_retries),
            (None, Some(5))
        );
        assert!(berth_engine::specgen::docker::to_spec(&b.flags, &b.command).is_ok());
        let b = parse(br#"{"Image":"i","Healthcheck":{"Test":["NONE"]}}"#).unwrap();
        assert!(b.flags.no_healthcheck);
        assert!(parse(br#"{"Image":"i","Healthcheck":{"Test":["BOGUS"]}}"#).is_err());
        assert!(parse(br#"{"Image":"i","Healthcheck":{"Retries":"x"}}"#).is_err());
    }

    #[test]
    fn wrong_types_and_bad_json_are_errors() {
        assert!(parse(b"{").unwrap_err().contains("invalid JSON"));
        assert!(parse(b"[]").is_err());
        assert!(parse(br#"{"Image":"i","Cmd":[1]}"#).is_err());
        assert!(parse(br#"{"Image":"i","HostConfig":{"Memory":"1g"}}"#).is_err());
        assert!(parse(br#"{"Image":"i","HostConfig":[]}"#).is_err());
        assert!(parse(br#"{"Cmd":["true"]}"#).unwrap_err().contains("Image"));
    }

    #[test]
    fn networking_config_names_networks_and_aliases() {
        let b = parse(br#"{"Image":"i","HostConfig":{"NetworkMode":"app"},"NetworkingConfig":{"EndpointsConfig":{"app":{"Aliases":["db"],"IPAMConfig":{"IPv4Address":"10.1.0.5"}}}}}"#).unwrap();
        assert_eq!(b.flags.network, ["app"]);
        assert_eq!(b.flags.network_alias, ["db"]);
        assert_eq!(b.flags.ip.as_deref(), Some("10.1.0.5"));
        // What docker 20.10 sends for a plain `docker run`.
        let b = parse(br#"{"Image":"i","HostConfig":{"NetworkMode":"default"},"NetworkingConfig":{"EndpointsConfig":{"default":{}}}}"#).unwrap();
        assert!(b.flags.network.is_empty(), "{:?}", b.flags.network);
    }
}
