//! Docker's `create`/`run` flags, parsed into a [`ContainerSpec`]: the
//! flags themselves ([`CreateFlags`], a clap `Args` with the `clap`
//! feature, so the CLI flattens it and a new flag is added here only),
//! [`to_spec`], and the parsers for the option syntaxes Docker users know
//! (`-v`, `--mount`, `--tmpfs`, `--ulimit`, sizes, signals). The REST API
//! will parse Docker's syntax with the same functions.

use super::*;
use crate::error::{io, option, Error, Result};
use std::path::{Path, PathBuf};

/// The propagation modes a bind mount may ask for.
pub const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// The OCI runtime a container uses unless told otherwise: berth's own.
pub const DEFAULT_RUNTIME: &str = "berth-runtime";

/// A container's log is capped by default (Docker's json-file is not, so
/// a container that writes without pause fills its disk): rotated at
/// 10 MiB, three files kept, 30 MiB at most. `--log-opt max-size=0`
/// lifts the cap.
pub const DEFAULT_LOG_MAX_SIZE: u64 = 10 << 20;
/// See [`DEFAULT_LOG_MAX_SIZE`].
pub const DEFAULT_LOG_MAX_FILES: u32 = 3;

/// `512m`, `1g`, `100k`, `1024` (bytes), as Docker reads `--memory`.
pub fn parse_size(s: &str, what: &str) -> Result<u64> {
    berth_sys::size::parse(s).map_err(|e| option(what, format!("{s:?} {e}")))
}

/// A signal by name (`TERM`, `SIGTERM`, `sigkill`) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    berth_sys::signal::parse(s).map_err(|e| option("signal", e))
}

/// Docker's rules for the source of `-v SOURCE:DEST`: an absolute path is
/// a bind mount, anything else names a volume.
pub fn is_volume_name(s: &str) -> bool {
    !s.is_empty()
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn mode_opts(m: &mut Mount, opts: &str, what: &str) -> Result<()> {
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" | "readonly" => m.readonly = true,
            "rw" => m.readonly = false,
            "nocopy" => m.nocopy = true,
            "copy" => m.nocopy = false,
            _ if PROPAGATIONS.contains(&o) => {
                if m.propagation.is_some() {
                    return Err(option(what, format!("{o:?}: only one propagation mode")));
                }
                m.propagation = Some(o.to_string());
            }
            // SELinux relabelling and macOS consistency modes are accepted
            // (Docker users put them in scripts); there are no SELinux
            // labels to set here, and a bind is always consistent.
            "z" | "Z" | "consistent" | "cached" | "delegated" => {}
            _ => return Err(option(what, format!("unknown option {o:?}"))),
        }
    }
    if m.propagation.is_some() && m.kind != MountType::Bind {
        return Err(option(
            what,
            "a propagation mode applies to bind mounts (a host path) only",
        ));
    }
    Ok(())
}

/// `-v`: `/host:/dest[:opts]`, `volume:/dest[:opts]` or `/dest` (an
/// anonymous volume).
pub fn parse_volume(s: &str) -> Result<Mount> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut m = Mount::default();
    let (src, dst, opts) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => {
            return Err(option(
                "--volume",
                format!("{s:?} is not SOURCE:DESTINATION[:OPTIONS]"),
            ))
        }
    };
    if parts.len() > 1 && src.is_empty() {
        return Err(option(
            "--volume",
            format!("{s:?}: the source is empty (give a host path or a volume name, or only the destination for an anonymous volume)"),
        ));
    }
    if !dst.starts_with('/') {
        return Err(option(
            "--volume",
            format!("{s:?}: the destination {dst:?} is not an absolute path"),
        ));
    }
    m.destination = dst.into();
    if src.is_empty() {
        m.kind = MountType::Volume;
    } else if src.starts_with('/') {
        m.kind = MountType::Bind;
        m.source = src.into();
    } else if is_volume_name(src) {
        m.kind = MountType::Volume;
        m.source = src.into();
    } else {
        return Err(option(
            "--volume",
            format!("{src:?} is neither an absolute host path nor a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"),
        ));
    }
    mode_opts(&mut m, opts, "--volume")?;
    Ok(m)
}

/// `--mount type=bind|volume|tmpfs,source=..,target=..,readonly,...`.
pub fn parse_mount(s: &str) -> Result<Mount> {
    let mut m = Mount::default();
    let mut kind = None;
    for kv in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => {
                kind = Some(match v {
                    "bind" => MountType::Bind,
                    "volume" => MountType::Volume,
                    "tmpfs" => MountType::Tmpfs,
                    _ => {
                        return Err(option(
                            "--mount",
                            format!("type {v:?} is not bind, volume or tmpfs"),
                        ))
                    }
                })
            }
            "source" | "src" => m.source = v.into(),
            "target" | "destination" | "dst" => m.destination = v.into(),
            "readonly" | "ro" => {
                m.readonly = matches!(v, "" | "true" | "1");
            }
            "tmpfs-size" => m.size = Some(parse_size(v, "--mount tmpfs-size")?),
            "tmpfs-mode" => {
                m.mode = Some(u32::from_str_radix(v, 8).map_err(|_| {
                    option("--mount", format!("tmpfs-mode {v:?} is not an octal mode"))
                })?)
            }
            "bind-propagation" if PROPAGATIONS.contains(&v) => m.propagation = Some(v.into()),
            "bind-propagation" => {
                return Err(option(
                    "--mount",
                    format!(
                        "bind-propagation {v:?} is not one of {}",
                        PROPAGATIONS.join(", ")
                    ),
                ))
            }
            "volume-nocopy" => m.nocopy = matches!(v, "" | "true" | "1"),
            "volume-subpath" => m.sub_path = Some(v.into()),
            "consistency" | "relabel" => {}
            _ => return Err(option("--mount", format!("unknown key {k:?} in {s:?}"))),
        }
    }
    m.kind = kind.ok_or_else(|| option("--mount", format!("{s:?} has no type=")))?;
    if !m.destination.starts_with('/') {
        return Err(option(
            "--mount",
            format!("{s:?}: target must be an absolute path"),
        ));
    }
    match m.kind {
        MountType::Bind if !m.source.starts_with('/') => {
            return Err(option(
                "--mount",
                format!("{s:?}: a bind mount needs an absolute source"),
            ))
        }
        MountType::Volume if !m.source.is_empty() && !is_volume_name(&m.source) => {
            return Err(option(
                "--mount",
                format!("{s:?}: {:?} is not a volume name", m.source),
            ))
        }
        MountType::Tmpfs if !m.source.is_empty() => {
            return Err(option("--mount", format!("{s:?}: tmpfs takes no source")))
        }
        MountType::Bind | MountType::Tmpfs if m.sub_path.is_some() => {
            return Err(option(
                "--mount",
                format!("{s:?}: volume-subpath applies to type=volume only"),
            ))
        }
        MountType::Volume if m.source.is_empty() && m.sub_path.is_some() => {
            return Err(option(
                "--mount",
                format!("{s:?}: volume-subpath needs a named volume (source=)"),
            ))
        }
        MountType::Volume | MountType::Tmpfs if m.propagation.is_some() => {
            return Err(option(
                "--mount",
                format!("{s:?}: bind-propagation applies to type=bind only"),
            ))
        }
        _ => {}
    }
    Ok(m)
}

/// `--tmpfs /path[:size=64m,mode=1777,ro]`.
pub fn parse_tmpfs(s: &str) -> Result<Mount> {
    let (dst, opts) = s.split_once(':').unwrap_or((s, ""));
    if !dst.starts_with('/') {
        return Err(option(
            "--tmpfs",
            format!("{dst:?} is not an absolute path"),
        ));
    }
    let mut m = Mount {
        kind: MountType::Tmpfs,
        destination: dst.into(),
        ..Mount::default()
    };
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let (k, v) = o.split_once('=').unwrap_or((o, ""));
        match k {
            "size" => m.size = Some(parse_size(v, "--tmpfs size")?),
            "mode" => {
                m.mode =
                    Some(u32::from_str_radix(v, 8).map_err(|_| {
                        option("--tmpfs", format!("mode {v:?} is not an octal mode"))
                    })?)
            }
            "ro" => m.readonly = true,
            "rw" => m.readonly = false,
            "nosuid" | "nodev" | "noexec" | "exec" | "suid" | "dev" => {
                m.flags
                    .retain(|f| f.trim_start_matches("no") != k.trim_start_matches("no"));
                m.flags.push(k.into());
            }
            _ => return Err(option("--tmpfs", format!("unknown option {o:?}"))),
        }
    }
    Ok(m)
}

/// Whether `s` is a device access mode: one or more of r, w, m, each once.
pub fn is_device_access(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 3
        && s.bytes().all(|b| matches!(b, b'r' | b'w' | b'm'))
        && s.bytes()
            .enumerate()
            .all(|(i, b)| !s.as_bytes()[..i].contains(&b))
}

/// `--device /dev/fuse`, `/dev/sdb:/dev/xvdb`, `/dev/sdb:r`,
/// `/dev/sdb:/dev/xvdb:rw` (Docker's syntax: a second field that is an
/// access mode is one).
pub fn parse_device(s: &str) -> Result<DeviceMapping> {
    let bad = |m: String| option("--device", m);
    let parts: Vec<&str> = s.split(':').collect();
    let (host, container, access) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, a] if is_device_access(a) => (*h, *h, *a),
        [h, c] => (*h, *c, "rwm"),
        [h, c, a] => (*h, *c, *a),
        _ => return Err(bad(format!("{s:?} is not HOST[:CONTAINER][:PERMS]"))),
    };
    if !host.starts_with('/') {
        return Err(bad(format!("{host:?} is not an absolute host path")));
    }
    let container = if container.is_empty() {
        host
    } else {
        container
    };
    if !container.starts_with('/') || container.split('/').any(|c| c == "..") {
        return Err(bad(format!(
            "{container:?} is not an absolute path in the container"
        )));
    }
    if !is_device_access(access) {
        return Err(bad(format!(
            "{access:?} is not an access mode (some of r, w and m, such as rw)"
        )));
    }
    Ok(DeviceMapping {
        host: host.into(),
        container: container.into(),
        access: access.into(),
    })
}

/// `--device-cgroup-rule 'c 1:3 rwm'`.
pub fn parse_device_rule(s: &str) -> Result<DeviceRule> {
    let bad = || {
        option(
            "--device-cgroup-rule",
            format!("{s:?} is not TYPE MAJOR:MINOR ACCESS (such as 'c 1:3 rwm' or 'b 8:* r')"),
        )
    };
    let f: Vec<&str> = s.split_whitespace().collect();
    let [kind, nums, access] = f.as_slice() else {
        return Err(bad());
    };
    let kind = match *kind {
        "a" | "b" | "c" => kind.chars().next().unwrap_or('a'),
        _ => return Err(bad()),
    };
    let (major, minor) = nums.split_once(':').ok_or_else(bad)?;
    let num = |n: &str| -> Result<Option<i64>> {
        match n {
            "*" => Ok(None),
            n if !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()) => {
                n.parse().map(Some).map_err(|_| bad())
            }
            _ => Err(bad()),
        }
    };
    if !is_device_access(access) {
        return Err(bad());
    }
    Ok(DeviceRule {
        kind,
        major: num(major)?,
        minor: num(minor)?,
        access: access.to_string(),
    })
}

/// `--cgroup-parent`: a cgroupfs path (`/services/web` or `services`),
/// returned absolute and without a trailing slash. systemd slices
/// (`name.slice`) are taken as a plain directory name.
pub fn parse_cgroup_parent(s: &str) -> Result<String> {
    let parts: Vec<&str> = s.split('/').filter(|p| !p.is_empty()).collect();
    let ok = !parts.is_empty()
        && parts.iter().all(|p| {
            *p != "."
                && *p != ".."
                && p.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b':')
                })
        });
    if !ok {
        return Err(option(
            "--cgroup-parent",
            format!("{s:?} is not a cgroup path (such as /services or services/web)"),
        ));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// `--device-read-bps /dev/sda:10mb`, `--device-write-iops /dev/sda:100`,
/// `--blkio-weight-device /dev/sda:200`: the device path and the number
/// (a size with a unit when `size`).
pub fn parse_device_rate(s: &str, flag: &str, size: bool) -> Result<DeviceRate> {
    let (path, v) = s
        .rsplit_once(':')
        .ok_or_else(|| option(flag, format!("{s:?} is not DEVICE:VALUE")))?;
    if !path.starts_with('/') {
        return Err(option(
            flag,
            format!("{path:?} is not an absolute device path"),
        ));
    }
    let n = if size {
        parse_size(v, flag)?
    } else {
        v.parse()
            .map_err(|_| option(flag, format!("{v:?} is not a whole number")))?
    };
    Ok(DeviceRate {
        path: path.to_string(),
        value: n,
    })
}

/// Checks the DNS flags: addresses for `--dns`, names for `--dns-search`
/// (`.` for none), single words for `--dns-option`; nothing that could
/// add a line to resolv.conf.
pub fn check_dns(dns: &[String], search: &[String], options: &[String]) -> Result<()> {
    for d in dns {
        d.parse::<std::net::IpAddr>()
            .map_err(|_| option("network.dns", format!("{d:?} is not an IP address")))?;
    }
    for s in search {
        let ok = s == "."
            || (!s.is_empty()
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
        if !ok {
            return Err(option(
                "network.dns_search",
                format!("{s:?} is not a domain name"),
            ));
        }
    }
    for o in options {
        if o.is_empty() || o.len() > 64 || !o.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(option(
                "network.dns_options",
                format!("{o:?} is not a resolver option (such as ndots:2)"),
            ));
        }
    }
    Ok(())
}

/// The container's /etc/resolv.conf from the host's, as Docker makes it:
/// `--dns`, `--dns-search` and `--dns-option` replace the host's lines of
/// their kind (a search of `.` leaves none); and a container with a network
/// of its own drops the host's loopback name servers, which it cannot reach.
pub fn resolv_conf(
    host: &str,
    dns: &[String],
    search: &[String],
    options: &[String],
    own_network: bool,
) -> String {
    let mut out = String::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        let keep = match words.next() {
            Some("nameserver") => {
                dns.is_empty()
                    && !(own_network
                        && words
                            .next()
                            .and_then(|a| a.split('%').next()?.parse::<std::net::IpAddr>().ok())
                            .is_some_and(|a| a.is_loopback()))
            }
            Some("search") | Some("domain") => search.is_empty(),
            Some("options") => options.is_empty(),
            _ => true,
        };
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    for d in dns {
        out.push_str(&format!("nameserver {d}\n"));
    }
    let search: Vec<&str> = search
        .iter()
        .map(String::as_str)
        .filter(|s| *s != ".")
        .collect();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// `--sysctl net.ipv4.ip_forward=1` (also `net/ipv4/ip_forward=1`): the
/// key in dotted form and the value. Whether the key may be set at all is
/// checked when the spec is made.
pub fn parse_sysctl(s: &str) -> Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| option("--sysctl", format!("{s:?} is not KEY=VALUE")))?;
    let k = k.trim().replace('/', ".");
    if k.is_empty() {
        return Err(option("--sysctl", format!("{s:?} has no key")));
    }
    Ok((k, v.to_string()))
}

/// A pod's member has the pod's network: the flags that would give it
/// one of its own are refused, in podman's words.
fn pod_member_flags(f: &CreateFlags) -> Result<()> {
    const SHARED: &str = "network cannot be configured when it is shared with a pod";
    if f.pod.as_deref().is_some_and(str::is_empty) {
        return Err(option("--pod", "needs a pod's name or id, or new:NAME"));
    }
    if !f.network.is_empty() {
        return Err(option(
            "--network",
            format!("networks must be defined when the pod is created: {SHARED}"),
        ));
    }
    if !f.publish.is_empty() || f.publish_all {
        return Err(option(
            "--publish",
            format!("published or exposed ports must be defined when the pod is created: {SHARED}"),
        ));
    }
    if let Some(flag) = endpoint_flag(f) {
        return Err(option(
            flag,
            format!("must be given when the pod is created: {SHARED}"),
        ));
    }
    Ok(())
}

/// The first of the flags that describe an endpoint on a bridge network
/// (`--ip`, `--ip6`, `--mac-address`, `--network-alias`) given.
fn endpoint_flag(f: &CreateFlags) -> Option<&'static str> {
    [
        ("--ip", f.ip.is_some()),
        ("--ip6", f.ip6.is_some()),
        ("--mac-address", f.mac_address.is_some()),
        ("--network-alias", !f.network_alias.is_empty()),
    ]
    .into_iter()
    .find_map(|(flag, set)| set.then_some(flag))
}

/// `--network` (several), `--ip`, `--ip6`, `--mac-address`,
/// `--network-alias`, `-p`, `-P`, `--expose` into the spec, as Docker
/// takes them.
fn network_flags(
    f: &CreateFlags,
    net: &mut NamespaceMode,
    n: &mut super::NetworkSpec,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let given: Vec<String> = if f.network.is_empty() {
        vec![super::default_network()]
    } else {
        // Docker's `default` is the default bridge (on Linux).
        f.network
            .iter()
            .map(|v| {
                if v == "default" {
                    berth_network::model::DEFAULT_NETWORK.to_string()
                } else {
                    v.clone()
                }
            })
            .collect()
    };
    let special = |v: &str| {
        matches!(v, "none" | "host" | "private")
            || v.starts_with("container:")
            || v.starts_with("ns:")
            || v.starts_with("pod:")
    };
    if given.len() > 1 && given.iter().any(|v| special(v)) {
        return Err(option(
            "--network",
            format!(
                "{} cannot be combined with other networks",
                given.iter().find(|v| special(v)).map_or("", |v| v.as_str())
            ),
        ));
    }
    let first = given[0].as_str();
    if special(first) {
        *net = NamespaceMode::parse(first).ok_or_else(|| {
            option(
                "--network",
                format!("{first:?} is not none, host, container:NAME, ns:PATH or a network's name"),
            )
        })?;
        if let NamespaceMode::Pod(_) = net {
            return Err(option(
                "--network",
                "pod: networks come with pods; use --pod",
            ));
        }
        if let Some(flag) = endpoint_flag(f) {
            return Err(option(
                flag,
                format!("needs a bridge network, not --network {first}"),
            ));
        }
        // The joined container's /etc/hostname, /etc/hosts and
        // /etc/resolv.conf are this one's: Docker's refusals, in its words.
        if first.starts_with("container:") {
            for (flag, given, what) in [
                ("--hostname", f.hostname.is_some(), "hostname"),
                ("--dns", !f.dns.is_empty(), "dns"),
                (
                    "--add-host",
                    !f.add_host.is_empty(),
                    "custom host-to-IP mapping",
                ),
                ("--expose", !f.expose.is_empty(), "port exposing"),
            ] {
                if given {
                    return Err(option(
                        flag,
                        format!("conflicting options: {what} and the network mode ({first})"),
                    ));
                }
            }
        }
    } else {
        *net = NamespaceMode::Private;
        let default_bridge = first == berth_network::model::DEFAULT_NETWORK;
        for (i, name) in given.iter().enumerate() {
            let mut a = super::NetworkAttachment {
                network: name.clone(),
                ..Default::default()
            };
            if i == 0 {
                let user_defined = !default_bridge || given.len() > 1;
                let needs_user = |flag: &str| {
                    option(flag, "is supported on user-defined networks only (not the default bridge), as in Docker")
                };
                if let Some(v) = &f.ip {
                    if !user_defined {
                        return Err(needs_user("--ip"));
                    }
                    a.ipv4 =
                        Some(v.parse().map_err(|_| {
                            option("--ip", format!("{v:?} is not an IPv4 address"))
                        })?);
                }
                if let Some(v) = &f.ip6 {
                    if !user_defined {
                        return Err(needs_user("--ip6"));
                    }
                    a.ipv6 =
                        Some(v.parse().map_err(|_| {
                            option("--ip6", format!("{v:?} is not an IPv6 address"))
                        })?);
                }
                if let Some(m) = &f.mac_address {
                    if super::parse_mac(m).is_none() {
                        return Err(option(
                            "--mac-address",
                            format!("{m:?} is not a unicast MAC address (like 02:42:ac:11:00:02)"),
                        ));
                    }
                    a.mac = Some(m.to_ascii_lowercase());
                }
                if !f.network_alias.is_empty() && default_bridge {
                    return Err(needs_user("--network-alias"));
                }
            }
            if name != berth_network::model::DEFAULT_NETWORK {
                a.aliases = f.network_alias.clone();
            }
            n.networks.push(a);
        }
        if n.networks.len() > 1 && (f.ip.is_some() || f.ip6.is_some()) {
            return Err(option(
                "--ip",
                "applies to one network: give a single --network",
            ));
        }
    }
    for p in &f.publish {
        n.ports.extend(
            berth_network::ports::parse_publish(p)
                .map_err(|e| option("--publish", e.to_string()))?,
        );
    }
    n.publish_all = f.publish_all;
    for e in &f.expose {
        for (port, proto) in
            berth_network::ports::parse_expose(e).map_err(|x| option("--expose", x.to_string()))?
        {
            n.expose.push(format!("{port}/{proto}"));
        }
    }
    if (!n.ports.is_empty() || n.publish_all) && *net == NamespaceMode::Host {
        // Docker's warning, and its choice: the host's ports are the
        // container's own.
        warnings.push("Published ports are discarded when using host network mode".into());
        n.ports.clear();
        n.publish_all = false;
    }
    if (!n.ports.is_empty() || n.publish_all) && n.networks.is_empty() {
        return Err(option(
            "--publish",
            format!("ports are published on bridge networks only, not with --network {first}"),
        ));
    }
    Ok(())
}

/// `--add-host NAME:host-gateway`: the gateway of the container's first
/// network, resolved at each start.
pub const HOST_GATEWAY: &str = "host-gateway";

/// `--add-host NAME:IP` (Docker's syntax; `NAME=IP` too, as Podman, and an
/// IPv6 address may be in brackets). Returns (name, address).
pub fn parse_add_host(s: &str) -> Result<(String, String)> {
    let bad = |m: String| option("--add-host", m);
    let (name, addr) = s
        .split_once(['=', ':'])
        .ok_or_else(|| bad(format!("{s:?} is not NAME:IP")))?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let valid_name = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !valid_name {
        return Err(bad(format!("{name:?} is not a host name")));
    }
    if addr == HOST_GATEWAY {
        return Ok((name.to_string(), HOST_GATEWAY.to_string()));
    }
    let ip: std::net::IpAddr = addr
        .parse()
        .map_err(|_| bad(format!("{addr:?} (for {name}) is not an IP address")))?;
    Ok((name.to_string(), ip.to_string()))
}

/// `--ulimit nofile=1024:2048` or `nproc=512`.
pub fn parse_ulimit(s: &str) -> Result<Ulimit> {
    let (name, vals) = s
        .split_once('=')
        .ok_or_else(|| option("--ulimit", format!("{s:?} is not NAME=SOFT[:HARD]")))?;
    let num = |v: &str| -> Result<u64> {
        if v == "-1" || v == "unlimited" {
            return Ok(u64::MAX);
        }
        v.parse()
            .map_err(|_| option("--ulimit", format!("{s:?}: {v:?} is not a number")))
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(vals)?, num(vals)?),
    };
    Ok(Ulimit {
        name: name.into(),
        soft,
        hard,
    })
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, `min` to 128 bytes.
fn name_ok(name: &str, min: usize) -> bool {
    name.len() >= min.max(1)
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Docker's container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_name(name: &str) -> Result<()> {
    if name_ok(name, 2) {
        Ok(())
    } else {
        Err(option(
            "--name",
            format!("{name:?} is not a valid name: use [a-zA-Z0-9][a-zA-Z0-9_.-]+"),
        ))
    }
}

/// A pod's name: podman's rule, `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (one
/// character is a name: a Kubernetes Pod `p`), at most 128 bytes. Its
/// containers' names (`<pod>-<container>`) are containers' names.
pub fn check_pod_name(name: &str) -> Result<()> {
    if name_ok(name, 1) {
        Ok(())
    } else {
        Err(option(
            "--name",
            format!("{name:?} is not a valid pod name: use [a-zA-Z0-9][a-zA-Z0-9_.-]*"),
        ))
    }
}

// `berth create`/`run`'s flags that make the spec, in Docker's syntax
// (strings as typed; `to_spec` parses them). The CLI flattens this into
// its own arguments (the image, the command, the name, pulling). A plain
// comment, not a doc comment: clap would make it the description of the
// commands that flatten it (their arguments are deferred, so it would
// come last and win).
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct CreateFlags {
    /// Set an environment variable (KEY=VALUE, or KEY to take it from here).
    #[cfg_attr(
        feature = "clap",
        arg(short = 'e', long = "env", value_name = "KEY=VALUE")
    )]
    pub env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines, # comments).
    #[cfg_attr(feature = "clap", arg(long = "env-file", value_name = "FILE"))]
    pub env_file: Vec<PathBuf>,
    /// The working directory in the container.
    #[cfg_attr(feature = "clap", arg(short = 'w', long = "workdir"))]
    pub workdir: Option<String>,
    /// Run as USER[:GROUP] (names from the image's /etc files, or numbers).
    #[cfg_attr(feature = "clap", arg(short = 'u', long))]
    pub user: Option<String>,
    /// Add a supplementary group (a name from the image's /etc/group, or a gid).
    #[cfg_attr(feature = "clap", arg(long = "group-add", value_name = "GROUP"))]
    pub group_add: Vec<String>,
    /// Replace the image's ENTRYPOINT ("" clears it).
    #[cfg_attr(feature = "clap", arg(long))]
    pub entrypoint: Option<String>,
    /// The container's host name (default: its short id).
    #[cfg_attr(feature = "clap", arg(short = 'h', long))]
    pub hostname: Option<String>,
    /// Keep stdin open (pipe input into the container).
    #[cfg_attr(feature = "clap", arg(short = 'i', long))]
    pub interactive: bool,
    /// Give the container a terminal.
    #[cfg_attr(feature = "clap", arg(short = 't', long))]
    pub tty: bool,
    /// Mount a volume: /host:/dest, NAME:/dest, or /dest (anonymous).
    ///
    /// OPTS, comma-separated: ro or rw; for a host path a propagation mode
    /// (rprivate by default; rshared sends mounts made under it back to
    /// the host, which needs a shared host mount; rslave, shared, slave,
    /// private); for a volume nocopy (a new volume is not filled with what
    /// the image has at DEST). z and Z are accepted and do nothing.
    #[cfg_attr(
        feature = "clap",
        arg(short = 'v', long = "volume", value_name = "SRC:DEST[:OPTS]")
    )]
    pub volume: Vec<String>,
    /// Mount: type=bind|volume|tmpfs,source=..,target=..[,readonly].
    ///
    /// Also bind-propagation=MODE (bind), volume-nocopy and
    /// volume-subpath=PATH (volume: only that directory of it),
    /// tmpfs-size=SIZE and tmpfs-mode=OCTAL (tmpfs).
    #[cfg_attr(feature = "clap", arg(long = "mount", value_name = "SPEC"))]
    pub mount: Vec<String>,
    /// Mount a tmpfs: /dest[:size=64m,mode=1777,ro,exec,suid,dev].
    ///
    /// noexec, nosuid and nodev unless exec, suid or dev is given.
    #[cfg_attr(feature = "clap", arg(long = "tmpfs", value_name = "DEST[:OPTS]"))]
    pub tmpfs: Vec<String>,
    /// Mount the image's root read-only.
    #[cfg_attr(feature = "clap", arg(long))]
    pub read_only: bool,
    /// Give the container a host device: HOST[:CONTAINER][:PERMS], or a
    /// CDI device by name (vendor.com/class=name, from the CDI spec files).
    ///
    /// PERMS is some of r (read), w (write) and m (mknod); rwm by default.
    /// A directory gives every device node under it.
    #[cfg_attr(
        feature = "clap",
        arg(long = "device", value_name = "HOST[:CONTAINER][:PERMS]")
    )]
    pub device: Vec<String>,
    /// Size of /dev/shm (such as 256m; default 64m).
    #[cfg_attr(feature = "clap", arg(long = "shm-size", value_name = "SIZE"))]
    pub shm_size: Option<String>,
    /// Set a namespaced kernel parameter (such as net.ipv4.ip_forward=1).
    ///
    /// Only parameters of the container's own namespaces: kernel.msg*,
    /// kernel.sem, kernel.shm*, fs.mqueue.* (not with --ipc host), net.*
    /// (not with --network host), kernel.hostname and kernel.domainname
    /// (not with --uts host).
    #[cfg_attr(feature = "clap", arg(long = "sysctl", value_name = "KEY=VALUE"))]
    pub sysctl: Vec<String>,
    /// A name server for the container's /etc/resolv.conf (instead of
    /// the host's).
    #[cfg_attr(feature = "clap", arg(long = "dns", value_name = "IP"))]
    pub dns: Vec<String>,
    /// A search domain for /etc/resolv.conf ("." for none).
    #[cfg_attr(feature = "clap", arg(long = "dns-search", value_name = "DOMAIN"))]
    pub dns_search: Vec<String>,
    /// A resolver option for /etc/resolv.conf (such as ndots:2).
    #[cfg_attr(
        feature = "clap",
        arg(long = "dns-option", alias = "dns-opt", value_name = "OPTION")
    )]
    pub dns_option: Vec<String>,
    /// The container's NIS domain name.
    #[cfg_attr(feature = "clap", arg(long, value_name = "NAME"))]
    pub domainname: Option<String>,
    /// Add a line to /etc/hosts: NAME:IP.
    #[cfg_attr(feature = "clap", arg(long = "add-host", value_name = "NAME:IP"))]
    pub add_host: Vec<String>,
    /// PID namespace: private (default), host (sees every host process) or
    /// container:NAME (another running container's: each sees the other's
    /// processes).
    #[cfg_attr(feature = "clap", arg(long = "pid", value_name = "MODE"))]
    pub pid: Option<String>,
    /// IPC namespace: private (default), host (shares the host's
    /// System V IPC, POSIX message queues and /dev/shm) or container:NAME
    /// (another running container's System V IPC and message queues).
    #[cfg_attr(feature = "clap", arg(long = "ipc", value_name = "MODE"))]
    pub ipc: Option<String>,
    /// UTS namespace: private (default), host (the host's name, which
    /// the container cannot change) or container:NAME (another running
    /// container's name).
    #[cfg_attr(feature = "clap", arg(long = "uts", value_name = "MODE"))]
    pub uts: Option<String>,
    /// Cgroup namespace: private (its own: /sys/fs/cgroup shows its own
    /// cgroup at the root) or host (the host's); Docker's default, private
    /// on cgroup v2 and host on v1.
    #[cfg_attr(feature = "clap", arg(long = "cgroupns", value_name = "MODE"))]
    pub cgroupns: Option<String>,
    /// User namespace: host (default: none), auto[:size=N] (a free range
    /// of the `containers` subordinate ids), keep-id[:uid=N,gid=N] (not
    /// for root).
    #[cfg_attr(feature = "clap", arg(long = "userns", value_name = "MODE"))]
    pub userns: Option<String>,
    /// A user namespace with this uid map, CONTAINER_ID:HOST_ID:SIZE
    /// (repeatable; also the gid map unless --gidmap is given).
    #[cfg_attr(feature = "clap", arg(long = "uidmap", value_name = "C:H:N"))]
    pub uidmap: Vec<String>,
    /// The user namespace's gid map, CONTAINER_ID:HOST_ID:SIZE (repeatable;
    /// needs --uidmap).
    #[cfg_attr(feature = "clap", arg(long = "gidmap", value_name = "C:H:N"))]
    pub gidmap: Vec<String>,
    /// Set an OCI annotation on the container (KEY=VALUE): in its OCI
    /// spec, for the runtime and hooks, and in inspect.
    #[cfg_attr(feature = "clap", arg(long = "annotation", value_name = "KEY=VALUE"))]
    pub annotation: Vec<String>,
    /// Memory limit (such as 512m or 1g).
    #[cfg_attr(feature = "clap", arg(short = 'm', long))]
    pub memory: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap).
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub memory_swap: Option<String>,
    /// CPUs the container may use (such as 1.5).
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub cpus: Option<f64>,
    /// Relative CPU weight (2-262144; default 1024).
    #[cfg_attr(feature = "clap", arg(short = 'c', long))]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on (such as 0-2,4).
    #[cfg_attr(feature = "clap", arg(long))]
    pub cpuset_cpus: Option<String>,
    /// The most processes the container may have (-1: no limit).
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub pids_limit: Option<i64>,
    /// Memory soft limit (such as 256m): reclaimed down to it first when
    /// the host runs short.
    #[cfg_attr(feature = "clap", arg(long, value_name = "SIZE"))]
    pub memory_reservation: Option<String>,
    /// CFS scheduler period in microseconds (1000-1000000; with --cpu-quota).
    #[cfg_attr(feature = "clap", arg(long, value_name = "USECS"))]
    pub cpu_period: Option<u64>,
    /// CPU time per period in microseconds (-1: no limit).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "USECS", allow_hyphen_values = true)
    )]
    pub cpu_quota: Option<i64>,
    /// Memory nodes the container may use (such as 0-1).
    #[cfg_attr(feature = "clap", arg(long, value_name = "NODES"))]
    pub cpuset_mems: Option<String>,
    /// The processes' OOM score adjustment (-1000 to 1000; higher is
    /// killed first).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "N", allow_hyphen_values = true)
    )]
    pub oom_score_adj: Option<i32>,
    /// Allow devices by number: 'TYPE MAJOR:MINOR ACCESS' (such as
    /// 'c 189:* rwm'), for devices that come and go (the nodes come from a
    /// volume or mknod).
    #[cfg_attr(
        feature = "clap",
        arg(long = "device-cgroup-rule", value_name = "RULE")
    )]
    pub device_cgroup_rule: Vec<String>,
    /// The cgroup to put the container's under (default /berth).
    #[cfg_attr(feature = "clap", arg(long, value_name = "PATH"))]
    pub cgroup_parent: Option<String>,
    /// How readily the kernel swaps the container's memory out (0-100;
    /// cgroup v1 only: ignored with a warning on v2, as in Docker).
    #[cfg_attr(feature = "clap", arg(long, value_name = "0-100"))]
    pub memory_swappiness: Option<u64>,
    /// Do not OOM-kill the container's processes: they wait for memory
    /// instead (cgroup v1 only; use with --memory).
    #[cfg_attr(feature = "clap", arg(long))]
    pub oom_kill_disable: bool,
    /// Block I/O weight, relative to other containers (10-1000; needs
    /// the bfq scheduler on the disk).
    #[cfg_attr(feature = "clap", arg(long, value_name = "WEIGHT"))]
    pub blkio_weight: Option<u16>,
    /// Block I/O weight for one device: DEVICE:WEIGHT.
    #[cfg_attr(
        feature = "clap",
        arg(long = "blkio-weight-device", value_name = "DEVICE:WEIGHT")
    )]
    pub blkio_weight_device: Vec<String>,
    /// Limit reads from a device: DEVICE:RATE (such as /dev/sda:10mb).
    #[cfg_attr(
        feature = "clap",
        arg(long = "device-read-bps", value_name = "DEVICE:RATE")
    )]
    pub device_read_bps: Vec<String>,
    /// Limit writes to a device: DEVICE:RATE (bytes per second).
    #[cfg_attr(
        feature = "clap",
        arg(long = "device-write-bps", value_name = "DEVICE:RATE")
    )]
    pub device_write_bps: Vec<String>,
    /// Limit read operations on a device: DEVICE:N (per second).
    #[cfg_attr(
        feature = "clap",
        arg(long = "device-read-iops", value_name = "DEVICE:N")
    )]
    pub device_read_iops: Vec<String>,
    /// Limit write operations on a device: DEVICE:N (per second).
    #[cfg_attr(
        feature = "clap",
        arg(long = "device-write-iops", value_name = "DEVICE:N")
    )]
    pub device_write_iops: Vec<String>,
    /// A resource limit: NAME=SOFT[:HARD] (such as nofile=1024:2048).
    #[cfg_attr(
        feature = "clap",
        arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")
    )]
    pub ulimit: Vec<String>,
    /// Add a capability (or ALL).
    #[cfg_attr(feature = "clap", arg(long = "cap-add", value_name = "CAP"))]
    pub cap_add: Vec<String>,
    /// Drop a capability (or ALL).
    #[cfg_attr(feature = "clap", arg(long = "cap-drop", value_name = "CAP"))]
    pub cap_drop: Vec<String>,
    /// Give the container every capability and device, no seccomp filter.
    #[cfg_attr(feature = "clap", arg(long))]
    pub privileged: bool,
    /// seccomp=FILE|unconfined, no-new-privileges[:true].
    #[cfg_attr(feature = "clap", arg(long = "security-opt", value_name = "OPT"))]
    pub security_opt: Vec<String>,
    /// Run berth-init as the container's pid 1 (reaps zombies, forwards signals).
    #[cfg_attr(feature = "clap", arg(long))]
    pub init: bool,
    /// Restart policy: no, on-failure[:N], always, unless-stopped.
    #[cfg_attr(feature = "clap", arg(long, default_value = "no"))]
    pub restart: Option<String>,
    /// The signal `stop` sends (default: the image's, else SIGTERM).
    #[cfg_attr(feature = "clap", arg(long))]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10).
    #[cfg_attr(feature = "clap", arg(long))]
    pub stop_timeout: Option<u32>,
    /// Set a label (KEY=VALUE).
    #[cfg_attr(
        feature = "clap",
        arg(short = 'l', long = "label", value_name = "KEY=VALUE")
    )]
    pub label: Vec<String>,
    /// Read labels from a file (KEY=VALUE lines, # comments).
    #[cfg_attr(feature = "clap", arg(long = "label-file", value_name = "FILE"))]
    pub label_file: Vec<PathBuf>,
    /// Connect to a network: bridge (the default for root), a network's
    /// name (repeat for several), none (only a loopback), host,
    /// container:NAME (another container's) or ns:PATH.
    #[cfg_attr(
        feature = "clap",
        arg(long = "network", alias = "net", value_name = "NETWORK")
    )]
    pub network: Vec<String>,
    /// The container's IPv4 address on its (single user-defined) network.
    #[cfg_attr(feature = "clap", arg(long = "ip", value_name = "IPV4"))]
    pub ip: Option<String>,
    /// The container's IPv6 address on its (single user-defined) network.
    #[cfg_attr(feature = "clap", arg(long = "ip6", value_name = "IPV6"))]
    pub ip6: Option<String>,
    /// The container's MAC address (like 02:42:ac:11:00:02).
    #[cfg_attr(feature = "clap", arg(long = "mac-address", value_name = "MAC"))]
    pub mac_address: Option<String>,
    /// Another name for the container on its user-defined networks.
    #[cfg_attr(
        feature = "clap",
        arg(long = "network-alias", alias = "net-alias", value_name = "ALIAS")
    )]
    pub network_alias: Vec<String>,
    /// Publish a container's port on the host:
    /// [IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|udp|sctp]
    /// (no host port: one chosen at start).
    #[cfg_attr(
        feature = "clap",
        arg(short = 'p', long = "publish", value_name = "PORTS")
    )]
    pub publish: Vec<String>,
    /// Publish every exposed port (the image's EXPOSE and --expose) on
    /// host ports chosen at start.
    #[cfg_attr(feature = "clap", arg(short = 'P', long = "publish-all"))]
    pub publish_all: bool,
    /// Expose a port or a range (PORT[-END][/PROTO]) without publishing it.
    #[cfg_attr(feature = "clap", arg(long = "expose", value_name = "PORT"))]
    pub expose: Vec<String>,
    /// The OCI runtime: berth-runtime (default), runc, crun, or a path.
    #[cfg_attr(feature = "clap", arg(long, default_value = DEFAULT_RUNTIME))]
    pub runtime: Option<String>,
    /// Remove the container when it exits.
    #[cfg_attr(feature = "clap", arg(long))]
    pub rm: bool,
    /// json-file, k8s-file (default) or none.
    #[cfg_attr(feature = "clap", arg(long, default_value = "k8s-file"))]
    pub log_driver: Option<String>,
    /// Log options: max-size=SIZE (default 10m; 0 for no cap), max-file=N
    /// (default 3): the log is rotated at max-size and max-file files are
    /// kept, so it never takes more than 30 MB by default.
    #[cfg_attr(feature = "clap", arg(long = "log-opt", value_name = "KEY=VALUE"))]
    pub log_opt: Vec<String>,
    /// Keys that detach from the container (default ctrl-p,ctrl-q).
    #[cfg_attr(feature = "clap", arg(long))]
    pub detach_keys: Option<String>,

    /// GPUs by CDI (NVIDIA's spec): all, a count, or device=0,1 (indexes
    /// or UUIDs).
    #[cfg_attr(feature = "clap", arg(long = "gpus", value_name = "GPUS"))]
    pub gpus: Option<String>,
    /// Mount the volumes and bind mounts of a container: CONTAINER[:ro|:rw]
    /// (ro or rw for all of them; each keeps its own mode by default).
    #[cfg_attr(
        feature = "clap",
        arg(long = "volumes-from", value_name = "CONTAINER[:ro|:rw]")
    )]
    pub volumes_from: Vec<String>,
    /// Run in a pod: NAME (or id) of an existing one, or new:NAME to
    /// create it (with the defaults of `berth pod create`). The container
    /// joins the pod's shared namespaces (by default net, ipc and uts: one
    /// IP and localhost, shared memory, the pod's host name) and its
    /// cgroup; its network and published ports are the pod's.
    #[cfg_attr(feature = "clap", arg(long = "pod", value_name = "POD"))]
    pub pod: Option<String>,
    /// Run in the pod whose id is in FILE (as `pod create --pod-id-file`
    /// wrote it).
    #[cfg_attr(
        feature = "clap",
        arg(long = "pod-id-file", value_name = "FILE", conflicts_with = "pod")
    )]
    pub pod_id_file: Option<PathBuf>,

    /// The health check: a shell command (run with /bin/sh -c), or a JSON
    /// list (["CMD", "prog", "arg"] or ["CMD-SHELL", "command"]).
    #[cfg_attr(feature = "clap", arg(long = "health-cmd", value_name = "COMMAND"))]
    pub health_cmd: Option<String>,
    /// Time between checks (like 30s, 1m; default 30s).
    #[cfg_attr(
        feature = "clap",
        arg(long = "health-interval", value_name = "DURATION")
    )]
    pub health_interval: Option<String>,
    /// Time a check may take before it counts as failed (default 30s).
    #[cfg_attr(
        feature = "clap",
        arg(long = "health-timeout", value_name = "DURATION")
    )]
    pub health_timeout: Option<String>,
    /// Failures in a row that make the container unhealthy (default 3).
    #[cfg_attr(feature = "clap", arg(long = "health-retries", value_name = "N"))]
    pub health_retries: Option<u32>,
    /// Time to start up, during which failures do not count (default 0s).
    #[cfg_attr(
        feature = "clap",
        arg(long = "health-start-period", value_name = "DURATION")
    )]
    pub health_start_period: Option<String>,
    /// Time between checks during the start period (default 5s).
    #[cfg_attr(
        feature = "clap",
        arg(long = "health-start-interval", value_name = "DURATION")
    )]
    pub health_start_interval: Option<String>,
    /// What to do when the container turns unhealthy: none (default), kill,
    /// restart (whatever the restart policy) or stop.
    #[cfg_attr(
        feature = "clap",
        arg(long = "health-on-failure", value_name = "ACTION")
    )]
    pub health_on_failure: Option<String>,
    /// No health check, not even the image's HEALTHCHECK.
    #[cfg_attr(feature = "clap", arg(long = "no-healthcheck"))]
    pub no_healthcheck: bool,
    /// A Kubernetes-style probe the monitor runs (repeatable):
    /// kind=liveness|readiness|startup, then tcp=PORT, http=PORT[/PATH] or
    /// exec=COMMAND (last), and host=IP, header=NAME:VALUE,
    /// initial-delay=, period=, timeout=, success=N, failure=N; comma-separated.
    #[cfg_attr(feature = "clap", arg(long = "probe", value_name = "PROBE"))]
    pub probe: Vec<String>,
}

/// A spec's field as the Docker flag that sets it, for errors worded
/// as the user typed them (longest first: a field may prefix another).
const FLAGS: [(&str, &str); 40] = [
    ("resources.blkio_weight_devices", "--blkio-weight-device"),
    ("resources.device_cgroup_rules", "--device-cgroup-rule"),
    ("resources.memory_reservation", "--memory-reservation"),
    ("resources.memory_swappiness", "--memory-swappiness"),
    ("resources.device_write_iops", "--device-write-iops"),
    ("resources.device_read_iops", "--device-read-iops"),
    ("resources.device_write_bps", "--device-write-bps"),
    ("resources.device_read_bps", "--device-read-bps"),
    ("resources.oom_score_adj", "--oom-score-adj"),
    ("resources.cgroup_parent", "--cgroup-parent"),
    ("resources.blkio_weight", "--blkio-weight"),
    ("resources.memory_swap", "--memory-swap"),
    ("resources.cpuset_cpus", "--cpuset-cpus"),
    ("resources.cpuset_mems", "--cpuset-mems"),
    ("resources.pids_limit", "--pids-limit"),
    ("resources.cpu_period", "--cpu-period"),
    ("resources.cpu_shares", "--cpu-shares"),
    ("resources.cpu_quota", "--cpu-quota"),
    ("resources.ulimits", "--ulimit"),
    ("resources.devices", "--device"),
    ("resources.memory", "--memory"),
    ("resources.cpus", "--cpus"),
    ("process.detach_keys", "--detach-keys"),
    ("process.stop_signal", "--stop-signal"),
    ("process.workdir", "--workdir"),
    ("process.env", "--env"),
    ("storage.mounts", "--volume/--mount"),
    ("storage.shm_size", "--shm-size"),
    ("security.seccomp", "--security-opt seccomp"),
    ("security.sysctls", "--sysctl"),
    ("namespaces.cgroup", "--cgroupns"),
    ("namespaces.net", "--network"),
    ("namespaces.pid", "--pid"),
    ("namespaces.ipc", "--ipc"),
    ("namespaces.uts", "--uts"),
    ("network.dns_options", "--dns-option"),
    ("network.dns_search", "--dns-search"),
    ("network.extra_hosts", "--add-host"),
    ("network.domainname", "--domainname"),
    ("network.hostname", "--hostname"),
];

/// The rest of [`FLAGS`] (kept apart to keep the table's length exact).
const MORE_FLAGS: [(&str, &str); 6] = [
    ("network.dns", "--dns"),
    ("lifecycle.restart", "--restart"),
    ("lifecycle.auto_remove", "--rm"),
    ("logging.max_files", "--log-opt max-file"),
    ("metadata", "--label/--annotation"),
    ("runtime", "--runtime"),
];

/// The user namespace's fields (before [`FLAGS`]: `namespaces.user` is a
/// prefix of `namespaces.user_maps`).
const USERNS_FLAGS: [(&str, &str); 2] = [
    ("namespaces.user_maps", "--userns"),
    ("namespaces.user", "--userns"),
];

/// The fields of CDI devices and `--volumes-from`.
const DEVICE_FLAGS: [(&str, &str); 2] = [
    ("resources.cdi_devices", "--device"),
    ("storage.volumes_from", "--volumes-from"),
];

/// `--volumes-from CONTAINER[:ro|:rw]`: the container, and Some(true) for
/// read-only, Some(false) for read-write, None to keep each mount's mode.
pub fn parse_volumes_from(s: &str) -> Result<(&str, Option<bool>)> {
    let (name, mode) = match s.rsplit_once(':') {
        Some((n, "ro")) => (n, Some(true)),
        Some((n, "rw")) => (n, Some(false)),
        Some((_, m)) => {
            return Err(option(
                "--volumes-from",
                format!("{s:?}: mode {m:?} is not ro or rw"),
            ))
        }
        None => (s, None),
    };
    if name.is_empty() || !clean_text(name) || name.contains(':') {
        return Err(option(
            "--volumes-from",
            format!("{s:?} is not CONTAINER[:ro|:rw]"),
        ));
    }
    Ok((name, mode))
}

/// `e` worded with flags instead of the spec's field names (what
/// [`ContainerSpec::validate`] names).
pub fn reword(e: Error) -> Error {
    let Error::Option { option, msg } = e else {
        return e;
    };
    let swap = |mut s: String| {
        for (field, flag) in USERNS_FLAGS
            .iter()
            .chain(&FLAGS)
            .chain(&MORE_FLAGS)
            .chain(&DEVICE_FLAGS)
        {
            if s.contains(field) {
                s = s.replace(field, flag);
            }
        }
        s
    };
    Error::Option {
        option: swap(option),
        msg: swap(msg),
    }
}

/// `--env-file`: KEY=VALUE lines, # comments.
pub fn env_file(p: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(p).map_err(io(format!("--env-file {}", p.display())))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        out.push(env_entry(l)?);
    }
    Ok(out)
}

/// `-e KEY=VALUE`, or `-e KEY`: this process's value (skipped if unset),
/// as Docker.
pub fn env_entry(e: &str) -> Result<String> {
    if e.is_empty() || e.starts_with('=') {
        return Err(option("--env", format!("{e:?} has no variable name")));
    }
    if e.contains('=') {
        return Ok(e.to_string());
    }
    Ok(match std::env::var(e) {
        Ok(v) => format!("{e}={v}"),
        Err(_) => String::new(),
    })
}

/// KEY=VALUE lines of `--label-file`/`--annotation`-style lists into `map`.
fn key_values(items: &[String], flag: &str, map: &mut BTreeMap<String, String>) -> Result<()> {
    for l in items {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            return Err(option(flag, format!("{l:?} has no key")));
        }
        map.insert(k.to_string(), v.to_string());
    }
    Ok(())
}

fn size_i64(v: Option<&str>, flag: &str) -> Result<Option<i64>> {
    v.map(|m| {
        let n = parse_size(m, flag)?;
        i64::try_from(n).map_err(|_| option(flag, format!("{m:?} is too large")))
    })
    .transpose()
}

/// A namespace flag: host, private or container:NAME (a pod's members
/// get theirs from `--pod`).
fn namespace_flag(v: Option<&str>, flag: &str) -> Result<NamespaceMode> {
    let v = v.unwrap_or("");
    let bad = || {
        option(
            flag,
            format!("{v:?} is not host, private or container:NAME"),
        )
    };
    match NamespaceMode::parse(v) {
        _ if v == "none" => Err(bad()),
        // Docker's IPC mode that others may join: every berth container's
        // /dev/shm and IPC namespace can be joined (as Podman's).
        _ if v == "shareable" && flag == "--ipc" => Ok(NamespaceMode::Private),
        Some(NamespaceMode::Pod(_)) => Err(option(
            flag,
            format!("{v}: a pod's namespaces are joined with --pod NAME"),
        )),
        Some(NamespaceMode::Path(_)) => Err(bad()),
        Some(m) => Ok(m),
        None => Err(bad()),
    }
}

/// Whether the host's cgroups are v2 (what some flags depend on, as in
/// Docker).
pub fn host_cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The spec `f` and `command` ask for, checked ([`ContainerSpec::validate`],
/// worded with the flags), with the warnings to show the user (options
/// this host ignores, as Docker does). Reads the files the flags name
/// (`--env-file`, `--label-file`, a seccomp profile).
pub fn to_spec(f: &CreateFlags, command: &[String]) -> Result<(ContainerSpec, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut s = ContainerSpec::default();
    let p = &mut s.process;
    p.args = command.to_vec();
    if let Some(e) = &f.entrypoint {
        p.entrypoint = Some(if e.is_empty() {
            Vec::new()
        } else {
            vec![e.clone()]
        });
    }
    for file in &f.env_file {
        p.env.extend(env_file(file)?);
    }
    for e in &f.env {
        p.env.push(env_entry(e)?);
    }
    p.env.retain(|e| !e.is_empty());
    p.workdir = f.workdir.clone();
    p.user = f.user.clone();
    p.groups = f.group_add.clone();
    p.tty = f.tty;
    p.stdin = f.interactive;
    p.init = f.init;
    p.stop_signal = f.stop_signal.clone();
    p.stop_timeout = f.stop_timeout;
    if let Some(k) = &f.detach_keys {
        berth_monitor_proto::config::parse_detach_keys(k)
            .map_err(|e| option("--detach-keys", e))?;
        p.detach_keys = Some(k.clone());
    }

    let n = &mut s.network;
    n.dns = f.dns.clone();
    n.dns_search = f.dns_search.clone();
    n.dns_options = f.dns_option.clone();
    n.domainname = f.domainname.clone();
    n.hostname = f.hostname.clone();
    for h in &f.add_host {
        let (name, address) = parse_add_host(h)?;
        n.extra_hosts.push(HostEntry { name, address });
    }

    let sec = &mut s.security;
    sec.privileged = f.privileged;
    sec.cap_add = f.cap_add.clone();
    sec.cap_drop = f.cap_drop.clone();
    for o in &f.security_opt {
        let (k, v) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match k {
            "seccomp" if v == "unconfined" => sec.seccomp = SeccompPolicy::Unconfined,
            "seccomp" if !v.is_empty() => {
                sec.seccomp = SeccompPolicy::Profile {
                    profile: std::fs::read_to_string(v)
                        .map_err(io(format!("--security-opt seccomp: read {v}")))?,
                }
            }
            "no-new-privileges" if matches!(v, "" | "true") => sec.no_new_privileges = true,
            "no-new-privileges" if v == "false" => sec.no_new_privileges = false,
            "label" | "apparmor" if v == "disable" || v == "unconfined" => {}
            _ => return Err(option("--security-opt", format!("unknown option {o:?} (berth knows seccomp=FILE|unconfined and no-new-privileges)"))),
        }
    }
    for kv in &f.sysctl {
        let (k, v) = parse_sysctl(kv)?;
        sec.sysctls.insert(k, v);
    }

    let r = &mut s.resources;
    r.memory = size_i64(f.memory.as_deref(), "--memory")?;
    r.memory_swap = match f.memory_swap.as_deref() {
        Some("-1") => Some(-1),
        m => size_i64(m, "--memory-swap")?,
    };
    r.memory_reservation = size_i64(f.memory_reservation.as_deref(), "--memory-reservation")?;
    r.cpus = f.cpus;
    r.cpu_shares = f.cpu_shares;
    r.cpuset_cpus = f.cpuset_cpus.clone();
    r.pids_limit = f.pids_limit;
    r.cpu_period = f.cpu_period;
    r.cpu_quota = f.cpu_quota;
    r.cpuset_mems = f.cpuset_mems.clone();
    r.oom_score_adj = f.oom_score_adj;
    for rule in &f.device_cgroup_rule {
        r.device_cgroup_rules.push(parse_device_rule(rule)?);
    }
    // What cgroup v2 does not have: dropped with a warning, as Docker does,
    // so the same command lines work on both.
    let v2 = host_cgroup_v2();
    if f.memory_swappiness.is_some() && v2 {
        warnings.push(
            "cgroup v2 has no per-container swappiness: --memory-swappiness is ignored".into(),
        );
    } else {
        r.memory_swappiness = f.memory_swappiness;
    }
    if f.oom_kill_disable && v2 {
        warnings
            .push("cgroup v2 cannot turn the OOM killer off: --oom-kill-disable is ignored".into());
    } else {
        r.oom_kill_disable = f.oom_kill_disable;
        if f.oom_kill_disable && f.memory.is_none() {
            warnings.push("--oom-kill-disable without --memory: a runaway container can take all of the host's memory".into());
        }
    }
    r.blkio_weight = f.blkio_weight.filter(|w| *w != 0);
    let rates = |v: &[String], flag: &str, size: bool| -> Result<Vec<DeviceRate>> {
        v.iter().map(|d| parse_device_rate(d, flag, size)).collect()
    };
    r.blkio_weight_devices = rates(&f.blkio_weight_device, "--blkio-weight-device", false)?;
    if v2 {
        let mut kept = Vec::new();
        for d in std::mem::take(&mut r.blkio_weight_devices) {
            if crate::devices::v2_weighs_device(&d.path, "--blkio-weight-device")? {
                kept.push(d);
            } else {
                warnings.push(format!("{0} has neither the bfq scheduler nor io.cost, so cgroup v2 cannot weigh its I/O: --blkio-weight-device {0} is ignored", d.path));
            }
        }
        r.blkio_weight_devices = kept;
    }
    r.device_read_bps = rates(&f.device_read_bps, "--device-read-bps", true)?;
    r.device_write_bps = rates(&f.device_write_bps, "--device-write-bps", true)?;
    r.device_read_iops = rates(&f.device_read_iops, "--device-read-iops", false)?;
    r.device_write_iops = rates(&f.device_write_iops, "--device-write-iops", false)?;
    r.cgroup_parent = f
        .cgroup_parent
        .as_deref()
        .map(parse_cgroup_parent)
        .transpose()?;
    for u in &f.ulimit {
        r.ulimits.push(parse_ulimit(u)?);
    }
    for d in &f.device {
        if !d.starts_with('/') && d.contains('=') {
            crate::cdi::parse_qualified(d)?;
            r.cdi_devices.push(d.clone());
        } else {
            r.devices.push(parse_device(d)?);
        }
    }
    if let Some(g) = &f.gpus {
        let registry = crate::cdi::Registry::load(&crate::cdi::spec_dirs());
        for n in crate::cdi::gpus(g, &registry)? {
            if !r.cdi_devices.contains(&n) {
                r.cdi_devices.push(n);
            }
        }
    }
    if !r.cdi_devices.is_empty() {
        // What the user should know of the CDI specs: files left out, and
        // edits berth ignores. (A name that does not resolve fails at
        // create, whichever front end made the spec.)
        let registry = crate::cdi::Registry::load(&crate::cdi::spec_dirs());
        for e in registry.errors() {
            warnings.push(format!("{e}; its devices are left out"));
        }
        if let Ok(edits) = registry.resolve(&r.cdi_devices) {
            warnings.extend(edits.notes);
        }
    }

    let st = &mut s.storage;
    st.read_only = f.read_only;
    for v in &f.volume {
        st.mounts.push(parse_volume(v)?);
    }
    for m in &f.mount {
        st.mounts.push(parse_mount(m)?);
    }
    for t in &f.tmpfs {
        st.mounts.push(parse_tmpfs(t)?);
    }
    for m in &st.mounts {
        if m.kind == MountType::Bind && !Path::new(&m.source).exists() {
            return Err(option(
                "--volume",
                format!(
                    "the host path {} does not exist (Docker would create it; berth asks you to)",
                    m.source
                ),
            ));
        }
    }
    for v in &f.volumes_from {
        parse_volumes_from(v)?;
        st.volumes_from.push(v.clone());
    }
    st.shm_size = f
        .shm_size
        .as_deref()
        .map(|v| parse_size(v, "--shm-size"))
        .transpose()?;

    let ns = &mut s.namespaces;
    ns.pid = namespace_flag(f.pid.as_deref(), "--pid")?;
    ns.ipc = namespace_flag(f.ipc.as_deref(), "--ipc")?;
    ns.uts = namespace_flag(f.uts.as_deref(), "--uts")?;
    ns.cgroup = match f.cgroupns.as_deref() {
        None => None,
        Some("host") => Some(NamespaceMode::Host),
        Some("private") => Some(NamespaceMode::Private),
        Some(v) => {
            return Err(option(
                "--cgroupns",
                format!("{v:?} is not host or private"),
            ))
        }
    };
    ns.user = crate::userns::parse(f.userns.as_deref(), &f.uidmap, &f.gidmap)?;
    let pod = match (&f.pod, &f.pod_id_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(file)) => {
            let id = std::fs::read_to_string(file)
                .map_err(io(format!("--pod-id-file: read {}", file.display())))?
                .trim()
                .to_string();
            if id.is_empty() {
                return Err(option(
                    "--pod-id-file",
                    format!("{} holds no pod id", file.display()),
                ));
            }
            Some(id)
        }
        (None, None) => None,
    };
    match &pod {
        Some(pod) => {
            pod_member_flags(f)?;
            s.pod = Some(pod.clone());
        }
        None => network_flags(f, &mut ns.net, &mut s.network, &mut warnings)?,
    }

    let restart = f.restart.as_deref().unwrap_or("no");
    s.lifecycle.restart = RestartPolicy::parse(restart).ok_or_else(|| {
        option(
            "--restart",
            format!("{restart:?} is not no, on-failure[:N], always or unless-stopped"),
        )
    })?;
    s.lifecycle.auto_remove = f.rm;
    s.health = crate::health::from_flags(&crate::health::HealthFlags {
        cmd: f.health_cmd.as_deref(),
        interval: f.health_interval.as_deref(),
        timeout: f.health_timeout.as_deref(),
        retries: f.health_retries,
        start_period: f.health_start_period.as_deref(),
        start_interval: f.health_start_interval.as_deref(),
        on_failure: f.health_on_failure.as_deref(),
        none: f.no_healthcheck,
        probes: &f.probe,
    })?;
    if s.lifecycle.restart != RestartPolicy::No && f.rm {
        return Err(option(
            "--restart",
            "a restart policy cannot be used with --rm",
        ));
    }

    let driver = f.log_driver.as_deref().unwrap_or("k8s-file");
    s.logging.driver = LogDriver::parse(driver).ok_or_else(|| {
        option(
            "--log-driver",
            format!("{driver:?} is not json-file, k8s-file or none"),
        )
    })?;
    for o in &f.log_opt {
        match o.split_once('=') {
            Some(("max-size", v)) => s.logging.max_size = parse_size(v, "--log-opt max-size")?,
            Some(("max-file", v)) => {
                s.logging.max_files = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| option("--log-opt max-file", "a number of at least 1"))?
            }
            _ => {
                return Err(option(
                    "--log-opt",
                    format!("unknown option {o:?} (max-size=SIZE, max-file=N)"),
                ))
            }
        }
    }

    let mut labels = Vec::new();
    for file in &f.label_file {
        let text = std::fs::read_to_string(file)
            .map_err(io(format!("--label-file {}: read", file.display())))?;
        labels.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    labels.extend(f.label.iter().cloned());
    key_values(&labels, "--label", &mut s.metadata.labels)?;
    key_values(&f.annotation, "--annotation", &mut s.metadata.annotations)?;
    s.runtime = f
        .runtime
        .clone()
        .unwrap_or_else(|| DEFAULT_RUNTIME.to_string());
    s.validate().map_err(reword)?;
    Ok((s, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512m", "x").unwrap(), 512 << 20);
        assert_eq!(parse_size("1g", "x").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5k", "x").unwrap(), 1536);
        assert_eq!(parse_size("100", "x").unwrap(), 100);
        assert_eq!(parse_size("64MB", "x").unwrap(), 64 << 20);
        assert!(parse_size("lots", "x").is_err());
        assert!(parse_size("-1m", "x").is_err());
        assert!(parse_size("99999999999t", "x").is_err());
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("sigkill").unwrap(), 9);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert_eq!(parse_signal("RTMIN+2").unwrap(), 36);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn volumes() {
        let m = parse_volume("/srv/data:/data:ro,z").unwrap();
        assert_eq!(
            (
                m.kind,
                m.source.as_str(),
                m.destination.as_str(),
                m.readonly
            ),
            (MountType::Bind, "/srv/data", "/data", true)
        );
        let m = parse_volume("cache:/var/cache").unwrap();
        assert_eq!((m.kind, m.source.as_str()), (MountType::Volume, "cache"));
        let m = parse_volume("/scratch").unwrap();
        assert_eq!((m.kind, m.source.as_str()), (MountType::Volume, ""));
        assert!(parse_volume("rel/path:/x").is_err());
        assert!(parse_volume("/a:b").is_err());
        assert!(parse_volume("/a:/b:bogus").is_err());
        assert!(parse_volume("/a:/b:c:d").is_err());
        // An empty source is not an anonymous volume (only `-v /dst` is).
        assert!(parse_volume(":/mnt").is_err());
        assert!(parse_volume(":/mnt:ro").is_err());
        assert_eq!(parse_volume("/mnt").unwrap().kind, MountType::Volume);
    }

    #[test]
    fn propagation_and_nocopy() {
        let m = parse_volume("/srv:/srv:rshared,ro").unwrap();
        assert_eq!(
            (m.propagation.as_deref(), m.readonly),
            (Some("rshared"), true)
        );
        assert_eq!(parse_volume("/srv:/srv").unwrap().propagation, None);
        assert!(parse_volume("/srv:/srv:shared,slave").is_err());
        // Named and anonymous volumes have no propagation of their own.
        assert!(parse_volume("cache:/c:rshared").is_err());
        assert!(parse_volume("cache:/c:nocopy").unwrap().nocopy);
        assert!(!parse_volume("cache:/c").unwrap().nocopy);
        let m = parse_mount("type=bind,src=/h,dst=/c,bind-propagation=rslave").unwrap();
        assert_eq!(m.propagation.as_deref(), Some("rslave"));
        assert!(parse_mount("type=bind,src=/h,dst=/c,bind-propagation=sideways").is_err());
        assert!(parse_mount("type=volume,src=v,dst=/c,bind-propagation=shared").is_err());
        assert!(
            parse_mount("type=volume,src=v,dst=/c,volume-nocopy")
                .unwrap()
                .nocopy
        );
        assert!(
            parse_mount("type=volume,src=v,dst=/c,volume-nocopy=true")
                .unwrap()
                .nocopy
        );
        assert!(
            !parse_mount("type=volume,src=v,dst=/c,volume-nocopy=false")
                .unwrap()
                .nocopy
        );
        // tmpfs flags: the last of a pair counts.
        let t = parse_tmpfs("/t:exec,nosuid,noexec,dev").unwrap();
        assert_eq!(t.flags, ["nosuid", "noexec", "dev"]);
    }

    #[test]
    fn mounts() {
        let m = parse_mount("type=bind,source=/h,target=/c,readonly").unwrap();
        assert_eq!((m.kind, m.readonly), (MountType::Bind, true));
        let m = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=700").unwrap();
        assert_eq!((m.size, m.mode), (Some(1 << 20), Some(0o700)));
        let m = parse_mount("type=volume,src=v1,dst=/v").unwrap();
        assert_eq!(m.source, "v1");
        assert!(parse_mount("source=/h,target=/c").is_err());
        assert!(parse_mount("type=bind,source=h,target=/c").is_err());
        assert!(parse_mount("type=tmpfs,source=x,target=/c").is_err());
        assert!(parse_mount("type=bind,source=/h,target=c").is_err());
        assert!(parse_mount("type=nfs,target=/c").is_err());
        let t = parse_tmpfs("/run:size=64m,mode=1777").unwrap();
        assert_eq!((t.size, t.mode), (Some(64 << 20), Some(0o1777)));
        assert!(parse_tmpfs("run").is_err());
        assert!(parse_tmpfs("/run:bogus").is_err());
    }

    #[test]
    fn ulimits_and_names() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (1024, 2048));
        assert_eq!(parse_ulimit("nproc=-1").unwrap().hard, u64::MAX);
        assert!(parse_ulimit("nofile").is_err());
        check_name("web-1.a_b").unwrap();
        assert!(check_name("-x").is_err());
        assert!(check_name("a").is_err());
        assert!(check_name("a/b").is_err());
        check_pod_name("p").unwrap();
        check_pod_name("web-1.a_b").unwrap();
        assert!(check_pod_name("").is_err());
        assert!(check_pod_name("-p").is_err());
        assert!(check_pod_name(&"p".repeat(129)).is_err());
    }

    #[test]
    fn devices() {
        let d = |s| {
            parse_device(s)
                .ok()
                .map(|d| (d.host, d.container, d.access))
        };
        let t = |h: &str, c: &str, a: &str| Some((h.into(), c.into(), a.into()));
        assert_eq!(d("/dev/fuse"), t("/dev/fuse", "/dev/fuse", "rwm"));
        assert_eq!(d("/dev/sdb:/dev/xvdb"), t("/dev/sdb", "/dev/xvdb", "rwm"));
        assert_eq!(d("/dev/sdb:r"), t("/dev/sdb", "/dev/sdb", "r"));
        assert_eq!(d("/dev/sdb:/dev/x:rw"), t("/dev/sdb", "/dev/x", "rw"));
        assert_eq!(d("/dev/sdb::mr"), t("/dev/sdb", "/dev/sdb", "mr"));
        for bad in [
            "dev/fuse",
            "/dev/a:b",
            "/dev/a:/dev/../etc/x",
            "/dev/a:/dev/b:rx",
            "/dev/a:/dev/b:rr",
            "/dev/a:/dev/b:",
            "/a:/b:r:w",
            "",
        ] {
            assert!(parse_device(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn device_rules_and_cgroup_parents() {
        let r = parse_device_rule("c 1:3 rwm").unwrap();
        assert_eq!(
            (r.kind, r.major, r.minor, r.access.as_str()),
            ('c', Some(1), Some(3), "rwm")
        );
        let r = parse_device_rule("b  8:*  r").unwrap();
        assert_eq!((r.kind, r.major, r.minor), ('b', Some(8), None));
        let r = parse_device_rule("a *:* m").unwrap();
        assert_eq!((r.kind, r.major, r.minor), ('a', None, None));
        for bad in [
            "",
            "c 1:3",
            "x 1:3 r",
            "c 1-3 r",
            "c 1:3 rx",
            "c -1:3 r",
            "c 99999999999:1 r",
            "c 1:3 r extra",
            "c 1:3 r\nc *:* rwm",
        ] {
            assert!(parse_device_rule(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_cgroup_parent("/services/").unwrap(), "/services");
        assert_eq!(parse_cgroup_parent("a/b").unwrap(), "/a/b");
        assert_eq!(parse_cgroup_parent("web.slice").unwrap(), "/web.slice");
        for bad in ["", "/", "../x", "a/../../x", "a b", "a\nb"] {
            assert!(parse_cgroup_parent(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn device_rates() {
        let r = |s: &str, size| {
            parse_device_rate(s, "--x", size)
                .ok()
                .map(|d| (d.path, d.value))
        };
        assert_eq!(
            r("/dev/sda:10mb", true),
            Some(("/dev/sda".into(), 10 << 20))
        );
        assert_eq!(
            r("/dev/disk/by-id/a:b:100", false),
            Some(("/dev/disk/by-id/a:b".into(), 100))
        );
        assert_eq!(r("/dev/sda:1k", true), Some(("/dev/sda".into(), 1024)));
        for bad in [
            "/dev/sda",
            "sda:10",
            "/dev/sda:",
            "/dev/sda:-1",
            "/dev/sda:1.5",
        ] {
            assert_eq!(r(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn resolv_conf_like_docker() {
        let host = "# from the host\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nsearch corp.example\noptions edns0\n";
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Nothing asked: the host's, less what loopback cannot reach.
        assert_eq!(
            resolv_conf(host, &[], &[], &[], true),
            "# from the host\nnameserver 10.0.0.1\nsearch corp.example\noptions edns0\n"
        );
        assert_eq!(resolv_conf(host, &[], &[], &[], false), host);
        assert_eq!(
            resolv_conf(host, &v(&["1.1.1.1", "fd00::53"]), &v(&["a.example", "b.example"]), &v(&["ndots:2", "rotate"]), true),
            "# from the host\nnameserver 1.1.1.1\nnameserver fd00::53\nsearch a.example b.example\noptions ndots:2 rotate\n"
        );
        assert_eq!(
            resolv_conf(host, &[], &v(&["."]), &[], false),
            "# from the host\nnameserver 127.0.0.53\nnameserver 10.0.0.1\noptions edns0\n"
        );
        assert!(check_dns(
            &v(&["10.0.0.1", "::1"]),
            &v(&["a.example", "."]),
            &v(&["ndots:2"])
        )
        .is_ok());
        assert!(check_dns(&v(&["10.0.0"]), &[], &[]).is_err());
        assert!(check_dns(&[], &v(&["a b"]), &[]).is_err());
        assert!(check_dns(&[], &v(&["a\nnameserver 6.6.6.6"]), &[]).is_err());
        assert!(check_dns(&[], &[], &v(&["ndots:2\nnameserver 6.6.6.6"])).is_err());
        assert!(check_dns(&[], &[], &v(&[""])).is_err());
    }

    #[test]
    fn sysctls_and_hosts() {
        let kv = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(
            parse_sysctl("net.ipv4.ip_forward=1").ok(),
            kv("net.ipv4.ip_forward", "1")
        );
        assert_eq!(
            parse_sysctl("kernel/msgmax=8192").ok(),
            kv("kernel.msgmax", "8192")
        );
        assert_eq!(
            parse_sysctl("kernel.domainname=a=b").ok(),
            kv("kernel.domainname", "a=b")
        );
        assert!(parse_sysctl("kernel.msgmax").is_err());
        assert!(parse_sysctl("=1").is_err());
        assert_eq!(parse_add_host("db:10.0.0.2").ok(), kv("db", "10.0.0.2"));
        assert_eq!(parse_add_host("db=10.0.0.2").ok(), kv("db", "10.0.0.2"));
        assert_eq!(parse_add_host("v6:::1").ok(), kv("v6", "::1"));
        assert_eq!(parse_add_host("v6:[fd00::2]").ok(), kv("v6", "fd00::2"));
        assert_eq!(parse_add_host("v6=fd00::2").ok(), kv("v6", "fd00::2"));
        // Resolved at start to the first network's gateway.
        assert_eq!(
            parse_add_host("gw:host-gateway").ok(),
            kv("gw", "host-gateway")
        );
        for bad in [
            "db",
            "db:",
            ":10.0.0.1",
            "db:10.0.0",
            "a b:10.0.0.1",
            "x\n10.0.0.1 evil:10.0.0.1",
        ] {
            assert!(parse_add_host(bad).is_err(), "{bad}");
        }
    }
}
