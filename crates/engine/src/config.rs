//! What `berth create`/`run` were asked for, as stored in the container's
//! record, and the parsers for the option syntaxes Docker users know
//! (`-v`, `--mount`, `--tmpfs`, `--ulimit`, sizes, signals).

use crate::error::{option, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The OCI runtime a container uses unless told otherwise: berth's own.
pub const DEFAULT_RUNTIME: &str = "berth-runtime";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    #[default]
    Bind,
    Volume,
    Tmpfs,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountConfig {
    #[serde(rename = "type")]
    pub kind: MountType,
    /// Host path (bind), volume name (empty: an anonymous volume), or empty.
    pub source: String,
    pub destination: String,
    pub readonly: bool,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    /// tmpfs mode.
    pub mode: Option<u32>,
    /// A bind mount's propagation (`rshared`, `slave`, ...); `rprivate`
    /// when not given.
    pub propagation: Option<String>,
    /// A volume that is still empty is not filled from the image.
    pub nocopy: bool,
    /// tmpfs flags given (`exec`, `suid`, `dev` and their `no` forms), on
    /// top of the default `noexec,nosuid,nodev`.
    pub flags: Vec<String>,
}

/// The propagation modes a bind mount may ask for.
pub const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// `--device HOST[:CONTAINER][:PERMS]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceConfig {
    /// A device node, or a directory of them, on the host.
    pub host: String,
    /// Where it appears in the container (default: the host path).
    pub container: String,
    /// What the container may do with it: some of r (read), w (write),
    /// m (mknod).
    pub access: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UlimitConfig {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerConfig {
    /// The command after the image name.
    pub args: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `--group-add`: more supplementary groups (names or gids).
    pub group_add: Vec<String>,
    pub hostname: Option<String>,
    pub tty: bool,
    /// `-i`: keep stdin open.
    pub interactive: bool,
    pub read_only: bool,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--security-opt seccomp=unconfined`.
    pub seccomp_unconfined: bool,
    /// `--security-opt seccomp=FILE`: the profile, read at create time.
    pub seccomp_profile: Option<String>,
    pub no_new_privileges: bool,
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<i64>,
    /// `--memory-reservation`: the soft limit, bytes.
    pub memory_reservation: Option<i64>,
    /// `--cpu-period` and `--cpu-quota`, microseconds (the CFS scheduler's).
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    /// `--cpuset-mems`: the memory nodes.
    pub cpuset_mems: Option<String>,
    /// `--oom-score-adj` (-1000..1000).
    pub oom_score_adj: Option<i32>,
    /// `--device-cgroup-rule`: "TYPE MAJOR:MINOR ACCESS" rules allowed.
    pub device_cgroup_rules: Vec<String>,
    /// `--cgroup-parent`: the cgroup the container's goes under
    /// (default /berth).
    pub cgroup_parent: Option<String>,
    /// `--dns`, `--dns-search`, `--dns-option`: what the container's
    /// /etc/resolv.conf says instead of the host's.
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `--domainname`: the NIS domain name.
    pub domainname: Option<String>,
    /// `--memory-swappiness` (0-100; cgroup v1 only).
    pub memory_swappiness: Option<u64>,
    /// `--oom-kill-disable` (cgroup v1 only).
    pub oom_kill_disable: bool,
    /// `--blkio-weight` (10-1000).
    pub blkio_weight: Option<u16>,
    /// `--blkio-weight-device DEVICE:WEIGHT`.
    pub blkio_weight_devices: Vec<(String, u64)>,
    /// `--device-read-bps` and the others: (device path, bytes or
    /// operations per second).
    pub device_read_bps: Vec<(String, u64)>,
    pub device_write_bps: Vec<(String, u64)>,
    pub device_read_iops: Vec<(String, u64)>,
    pub device_write_iops: Vec<(String, u64)>,
    pub ulimits: Vec<UlimitConfig>,
    pub mounts: Vec<MountConfig>,
    /// `--device`: host devices given to the container.
    pub devices: Vec<DeviceConfig>,
    /// "none" or "host".
    pub network: String,
    /// `--pid`, `--ipc`, `--uts`: "" (the container's own) or "host".
    pub pid: String,
    pub ipc: String,
    pub uts: String,
    /// `--shm-size`, bytes.
    pub shm_size: Option<u64>,
    /// `--sysctl KEY=VALUE`.
    pub sysctls: BTreeMap<String, String>,
    /// `--add-host NAME:IP`: extra /etc/hosts lines, as (name, address).
    pub extra_hosts: Vec<(String, String)>,
    pub init: bool,
    /// Docker's syntax: no, on-failure[:N], always, unless-stopped.
    pub restart: String,
    pub stop_signal: Option<String>,
    /// Seconds.
    pub stop_timeout: Option<u32>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// berth-runtime, runc, crun, or a path.
    pub runtime: String,
    pub log_driver: String,
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// `--rm`.
    pub auto_remove: bool,
    pub detach_keys: Option<String>,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            args: Vec::new(),
            entrypoint: None,
            env: Vec::new(),
            workdir: None,
            user: None,
            group_add: Vec::new(),
            hostname: None,
            tty: false,
            interactive: false,
            read_only: false,
            privileged: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            seccomp_unconfined: false,
            seccomp_profile: None,
            no_new_privileges: false,
            memory: None,
            memory_swap: None,
            cpus: None,
            cpu_shares: None,
            cpuset_cpus: None,
            pids_limit: None,
            memory_reservation: None,
            cpu_period: None,
            cpu_quota: None,
            cpuset_mems: None,
            oom_score_adj: None,
            device_cgroup_rules: Vec::new(),
            cgroup_parent: None,
            dns: Vec::new(),
            dns_search: Vec::new(),
            dns_options: Vec::new(),
            domainname: None,
            memory_swappiness: None,
            oom_kill_disable: false,
            blkio_weight: None,
            blkio_weight_devices: Vec::new(),
            device_read_bps: Vec::new(),
            device_write_bps: Vec::new(),
            device_read_iops: Vec::new(),
            device_write_iops: Vec::new(),
            ulimits: Vec::new(),
            mounts: Vec::new(),
            devices: Vec::new(),
            network: "none".into(),
            pid: String::new(),
            ipc: String::new(),
            uts: String::new(),
            shm_size: None,
            sysctls: BTreeMap::new(),
            extra_hosts: Vec::new(),
            init: false,
            restart: "no".into(),
            stop_signal: None,
            stop_timeout: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            runtime: DEFAULT_RUNTIME.into(),
            log_driver: "k8s-file".into(),
            log_max_size: DEFAULT_LOG_MAX_SIZE,
            log_max_files: DEFAULT_LOG_MAX_FILES,
            auto_remove: false,
            detach_keys: None,
        }
    }
}

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

fn mode_opts(m: &mut MountConfig, opts: &str, what: &str) -> Result<()> {
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
pub fn parse_volume(s: &str) -> Result<MountConfig> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut m = MountConfig::default();
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
pub fn parse_mount(s: &str) -> Result<MountConfig> {
    let mut m = MountConfig::default();
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
pub fn parse_tmpfs(s: &str) -> Result<MountConfig> {
    let (dst, opts) = s.split_once(':').unwrap_or((s, ""));
    if !dst.starts_with('/') {
        return Err(option(
            "--tmpfs",
            format!("{dst:?} is not an absolute path"),
        ));
    }
    let mut m = MountConfig {
        kind: MountType::Tmpfs,
        destination: dst.into(),
        ..MountConfig::default()
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
pub fn parse_device(s: &str) -> Result<DeviceConfig> {
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
    Ok(DeviceConfig {
        host: host.into(),
        container: container.into(),
        access: access.into(),
    })
}

/// A device cgroup rule, `TYPE MAJOR:MINOR ACCESS` (`c 1:3 rwm`, `b 8:* r`,
/// `a *:* m`), as the kernel's devices.allow takes it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceRule {
    /// a, b or c.
    pub kind: char,
    /// None: `*`, any.
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
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
pub fn parse_device_rate(s: &str, flag: &str, size: bool) -> Result<(String, u64)> {
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
    Ok((path.to_string(), n))
}

/// Checks the DNS flags: addresses for `--dns`, names for `--dns-search`
/// (`.` for none), single words for `--dns-option`; nothing that could
/// add a line to resolv.conf.
pub fn check_dns(dns: &[String], search: &[String], options: &[String]) -> Result<()> {
    for d in dns {
        d.parse::<std::net::IpAddr>()
            .map_err(|_| option("--dns", format!("{d:?} is not an IP address")))?;
    }
    for s in search {
        let ok = s == "."
            || (!s.is_empty()
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
        if !ok {
            return Err(option(
                "--dns-search",
                format!("{s:?} is not a domain name"),
            ));
        }
    }
    for o in options {
        if o.is_empty() || o.len() > 64 || !o.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(option(
                "--dns-option",
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
    if addr == "host-gateway" {
        return Err(bad(
            "host-gateway needs a bridge network, which berth does not have yet: give the address"
                .into(),
        ));
    }
    let ip: std::net::IpAddr = addr
        .parse()
        .map_err(|_| bad(format!("{addr:?} (for {name}) is not an IP address")))?;
    Ok((name.to_string(), ip.to_string()))
}

/// `--ulimit nofile=1024:2048` or `nproc=512`.
pub fn parse_ulimit(s: &str) -> Result<UlimitConfig> {
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
    Ok(UlimitConfig {
        name: name.into(),
        soft,
        hard,
    })
}

/// Docker's container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.len() >= 2
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(option(
            "--name",
            format!("{name:?} is not a valid name: use [a-zA-Z0-9][a-zA-Z0-9_.-]+"),
        ))
    }
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
        let r = |s: &str, size| parse_device_rate(s, "--x", size).ok();
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
        for bad in [
            "db",
            "db:",
            ":10.0.0.1",
            "db:10.0.0",
            "db:host-gateway",
            "a b:10.0.0.1",
            "x\n10.0.0.1 evil:10.0.0.1",
        ] {
            assert!(parse_add_host(bad).is_err(), "{bad}");
        }
    }
}
