//! The container spec: everything a container was asked to be, typed and
//! grouped by concern, as each container's record stores it and as every
//! front end (the CLI's Docker flags in [`docker`], later the REST API and
//! Kubernetes YAML) produces it. [`ContainerSpec::validate`] holds every
//! check of the values, so a spec from any front end is checked alike; its
//! errors name the field (`resources.memory: ...`), and [`docker`] words
//! them with the flag the user typed.
//!
//! Adding a `docker run` option: a field here (and its check in
//! `validate`), its flag in [`docker::CreateFlags`] and `to_spec`, and its
//! effect in `spec::build` (the OCI spec).
//!
//! Serialised with snake_case names; enums as Docker writes them
//! (`"host"`, `"container:ID"`, `"on-failure:3"`, `"c 1:3 rwm"`). A
//! request's unknown field is an error ([`ContainerSpec::from_request`]: a
//! typo must not pass silently); a stored record's is dropped (a record a
//! later berth wrote stays readable), and a record of the old flat format
//! is told apart by its missing groups (see `legacy`).

pub mod docker;
mod legacy;

use crate::error::{option, Error, Result};
use crate::userns::{Userns, UsernsMode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub use docker::{
    check_name, check_pod_name, is_device_access, is_volume_name, parse_signal, parse_size,
    resolv_conf, DEFAULT_LOG_MAX_FILES, DEFAULT_LOG_MAX_SIZE, DEFAULT_RUNTIME, PROPAGATIONS,
};
pub(crate) use legacy::from_stored;

/// A container's spec, grouped as podman's specgen groups it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerSpec {
    pub process: ProcessSpec,
    pub storage: StorageSpec,
    pub security: SecuritySpec,
    pub resources: ResourceSpec,
    pub namespaces: NamespaceSpec,
    pub network: NetworkSpec,
    pub lifecycle: LifecycleSpec,
    pub logging: LogSpec,
    pub metadata: Metadata,
    /// The OCI runtime: berth-runtime, runc, crun, or a path.
    pub runtime: String,
    /// The pod the container belongs to: as the caller names it (name or
    /// id) until create, which records the pod's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Health checks and probes (`crate::health`).
    #[serde(skip_serializing_if = "crate::health::HealthSpec::is_empty")]
    pub health: crate::health::HealthSpec,
}

impl Default for ContainerSpec {
    fn default() -> Self {
        ContainerSpec {
            process: ProcessSpec::default(),
            storage: StorageSpec::default(),
            security: SecuritySpec::default(),
            resources: ResourceSpec::default(),
            namespaces: NamespaceSpec::default(),
            network: NetworkSpec::default(),
            lifecycle: LifecycleSpec::default(),
            logging: LogSpec::default(),
            metadata: Metadata::default(),
            runtime: DEFAULT_RUNTIME.into(),
            pod: None,
            health: Default::default(),
        }
    }
}

/// The container's process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessSpec {
    /// The command after the image name (empty: the image's Cmd).
    pub args: Vec<String>,
    /// Replaces the image's ENTRYPOINT (an empty list clears it).
    pub entrypoint: Option<Vec<String>>,
    /// KEY=VALUE, over the image's.
    pub env: Vec<String>,
    /// An absolute path in the container.
    pub workdir: Option<String>,
    /// USER[:GROUP], names from the image's /etc files or numbers.
    pub user: Option<String>,
    /// More supplementary groups (names or gids).
    pub groups: Vec<String>,
    pub tty: bool,
    /// Keep stdin open.
    pub stdin: bool,
    /// berth-init as pid 1.
    pub init: bool,
    /// The signal `stop` sends (a name or number).
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL.
    pub stop_timeout: Option<u32>,
    /// Keys that detach an attached client (default ctrl-p,ctrl-q).
    pub detach_keys: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    #[default]
    Bind,
    Volume,
    Tmpfs,
}

/// One mount the user asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mount {
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
    /// A bind mount's propagation (one of [`PROPAGATIONS`]); `rprivate`
    /// when not given.
    pub propagation: Option<String>,
    /// A volume that is still empty is not filled from the image.
    pub nocopy: bool,
    /// tmpfs flags (`exec`, `suid`, `dev` and their `no` forms), on top
    /// of the default `noexec,nosuid,nodev`.
    pub flags: Vec<String>,
    /// Only this directory or file of the volume or bind source is mounted
    /// (`--mount volume-subpath=`, Kubernetes' `subPath`): a clean
    /// relative path, resolved inside the source (its symlinks never lead
    /// out of it) and made a directory when missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
}

/// The container's file systems.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageSpec {
    /// Binds, volumes and tmpfs mounts, in the order given.
    pub mounts: Vec<Mount>,
    /// The image's root mounted read-only.
    pub read_only: bool,
    /// Size of /dev/shm, bytes (default 64 MiB).
    pub shm_size: Option<u64>,

    /// `--volumes-from`: the containers (`NAME[:ro|:rw]`) whose volume and
    /// bind mounts were copied into `mounts` at create (kept for inspect).
    pub volumes_from: Vec<String>,
}

/// The seccomp filter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum SeccompPolicy {
    /// The installed profile (or berth's, the same rules as
    /// containers-common's).
    #[default]
    Default,
    Unconfined,
    /// A profile in Docker's format (its JSON text, read at create).
    Profile {
        profile: String,
    },
}

/// What the container may do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecuritySpec {
    /// Every capability and device, no seccomp filter, /sys writable.
    pub privileged: bool,
    /// Capabilities (or ALL) over Docker's default set.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub seccomp: SeccompPolicy,
    pub no_new_privileges: bool,
    /// Namespaced kernel parameters (dotted keys).
    pub sysctls: BTreeMap<String, String>,
    /// No masked or read-only /proc and /sys paths (Kubernetes'
    /// `procMount: Unmasked`, podman's `unmask=ALL`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unmask: bool,
}

/// `--device HOST[:CONTAINER][:PERMS]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceMapping {
    /// A device node, or a directory of them, on the host.
    pub host: String,
    /// Where it appears in the container (default: the host path).
    pub container: String,
    /// Some of r (read), w (write), m (mknod).
    pub access: String,
}

/// A per-device number: a block I/O weight or rate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceRate {
    /// The device's path on the host.
    pub path: String,
    pub value: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ulimit {
    pub name: String,
    /// u64::MAX: unlimited.
    pub soft: u64,
    pub hard: u64,
}

/// A device cgroup rule, `TYPE MAJOR:MINOR ACCESS` (`c 1:3 rwm`, `b 8:* r`,
/// `a *:* m`), as the kernel's devices.allow takes it; serialised so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceRule {
    /// a, b or c.
    pub kind: char,
    /// None: `*`, any.
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

impl TryFrom<String> for DeviceRule {
    type Error = Error;
    fn try_from(s: String) -> Result<DeviceRule> {
        docker::parse_device_rule(&s)
    }
}

impl From<DeviceRule> for String {
    fn from(r: DeviceRule) -> String {
        r.to_string()
    }
}

/// Limits and weights (the cgroup's), and the devices given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceSpec {
    /// Bytes (at least 6 MiB).
    pub memory: Option<i64>,
    /// Bytes of memory plus swap; -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    /// The soft limit, bytes.
    pub memory_reservation: Option<i64>,
    /// 0-100 (cgroup v1 only).
    pub memory_swappiness: Option<u64>,
    /// cgroup v1 only.
    pub oom_kill_disable: bool,
    /// -1000..1000.
    pub oom_score_adj: Option<i32>,
    pub cpus: Option<f64>,
    /// 2-262144.
    pub cpu_shares: Option<u64>,
    /// The CFS period and quota, microseconds (exclusive with `cpus`).
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    /// CPU list such as 0-2,4.
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// -1: no limit.
    pub pids_limit: Option<i64>,
    /// 10-1000.
    pub blkio_weight: Option<u16>,
    pub blkio_weight_devices: Vec<DeviceRate>,
    /// Bytes per second.
    pub device_read_bps: Vec<DeviceRate>,
    pub device_write_bps: Vec<DeviceRate>,
    /// Operations per second.
    pub device_read_iops: Vec<DeviceRate>,
    pub device_write_iops: Vec<DeviceRate>,
    pub ulimits: Vec<Ulimit>,
    /// Host devices given to the container.
    pub devices: Vec<DeviceMapping>,
    /// More device-cgroup allow rules.
    pub device_cgroup_rules: Vec<DeviceRule>,
    /// The cgroup the container's goes under (default /berth), absolute.
    pub cgroup_parent: Option<String>,

    /// CDI devices by qualified name (`vendor.com/class=name`, or
    /// `=all`), resolved from the CDI spec files at create and again at
    /// every start.
    pub cdi_devices: Vec<String>,
}

/// Whose namespace of a kind the container is in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NamespaceMode {
    /// One of its own (for the network: with only a loopback, Docker's
    /// `none`).
    #[default]
    Private,
    /// The host's.
    Host,
    /// Another container's (`container:NAME`).
    Container(String),
    /// Its pod's (`pod:NAME`).
    Pod(String),
    /// The namespace at a path (`ns:/proc/PID/ns/net`, a bind-mounted one).
    Path(std::path::PathBuf),
}

impl NamespaceMode {
    pub fn is_host(&self) -> bool {
        *self == NamespaceMode::Host
    }

    /// Docker's syntax; `none` and `""` are private.
    pub fn parse(s: &str) -> Option<NamespaceMode> {
        Some(match s {
            "" | "private" | "none" => NamespaceMode::Private,
            "host" => NamespaceMode::Host,
            _ => match s.split_once(':')? {
                ("container", c) if !c.is_empty() => NamespaceMode::Container(c.into()),
                ("pod", p) if !p.is_empty() => NamespaceMode::Pod(p.into()),
                ("ns" | "path", p) if p.starts_with('/') => NamespaceMode::Path(p.into()),
                _ => return None,
            },
        })
    }
}

impl fmt::Display for NamespaceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamespaceMode::Private => f.write_str("private"),
            NamespaceMode::Host => f.write_str("host"),
            NamespaceMode::Container(c) => write!(f, "container:{c}"),
            NamespaceMode::Pod(p) => write!(f, "pod:{p}"),
            NamespaceMode::Path(p) => write!(f, "ns:{}", p.display()),
        }
    }
}

impl Serialize for NamespaceMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NamespaceMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NamespaceMode::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{s:?} is not private, host, container:ID, pod:NAME or ns:PATH"
            ))
        })
    }
}

/// The container's namespaces (it always has a mount namespace of its
/// own).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamespaceSpec {
    pub pid: NamespaceMode,
    pub ipc: NamespaceMode,
    pub uts: NamespaceMode,
    /// Private: only a loopback (`--network none`).
    pub net: NamespaceMode,
    /// None: the host's default, Docker's: private on cgroup v2, the
    /// host's on v1.
    pub cgroup: Option<NamespaceMode>,
    /// `--userns`/`--uidmap`/`--gidmap`: how the user namespace is chosen
    /// (host: none).
    #[serde(skip_serializing_if = "is_host_userns")]
    pub user: UsernsMode,
    /// The maps `user` came to, chosen once at create (an `auto` range
    /// stays the container's across restarts); None with `user` host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_maps: Option<Userns>,
}

fn is_host_userns(m: &UsernsMode) -> bool {
    *m == UsernsMode::Host
}

/// A user namespace mode as `--userns` takes it (what inspect's
/// `HostConfig.UsernsMode` and `ps` show): `host`, `auto[:size=N]`,
/// `keep-id[:uid=N,gid=N]`, or `uidmap=C:H:N;...,gidmap=...` for maps given
/// with `--uidmap`/`--gidmap`.
pub fn userns_text(m: &UsernsMode) -> String {
    let kv = |pairs: &[(&str, Option<u32>)]| {
        pairs
            .iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(",")
    };
    let with = |mode: &str, args: String| {
        if args.is_empty() {
            mode.to_string()
        } else {
            format!("{mode}:{args}")
        }
    };
    let maps = |m: &[crate::userns::IdMap]| {
        m.iter()
            .map(|r| format!("{}:{}:{}", r.container_id, r.host_id, r.size))
            .collect::<Vec<_>>()
            .join(";")
    };
    match m {
        UsernsMode::Host => "host".into(),
        UsernsMode::Auto { size } => with("auto", kv(&[("size", *size)])),
        UsernsMode::KeepId { uid, gid } => with("keep-id", kv(&[("uid", *uid), ("gid", *gid)])),
        UsernsMode::Maps { uids, gids } => format!("uidmap={},gidmap={}", maps(uids), maps(gids)),
    }
}

/// An /etc/hosts line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostEntry {
    pub name: String,
    pub address: String,
}

/// The container's names and resolver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkSpec {
    /// Default: the short id (the host's with its network or UTS
    /// namespace).
    pub hostname: Option<String>,
    /// The NIS domain name.
    pub domainname: Option<String>,
    /// /etc/resolv.conf: name servers, search domains (`.` for none) and
    /// options instead of the host's.
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// More /etc/hosts lines (an address of `host-gateway`: the gateway
    /// of the container's first network, resolved at each start).
    pub extra_hosts: Vec<HostEntry>,
    /// The bridge networks the container is on, in order (the first gives
    /// the default route), with `namespaces.net` private; none: only a
    /// loopback (`--network none`).
    pub networks: Vec<NetworkAttachment>,
    /// `-p`: host ports forwarded to the container's (a host port of 0 is
    /// chosen at each start).
    pub ports: Vec<berth_network::ports::PortMapping>,
    /// `-P`: every exposed port (the image's and `--expose`) on a host
    /// port chosen at start.
    pub publish_all: bool,
    /// `--expose`: more exposed ports, as `80/tcp`.
    pub expose: Vec<String>,
    /// `networks` is empty because `network disconnect` took the last one
    /// (not `--network none`): `network connect` may add one again, as
    /// Docker lets a bridge-mode container be reconnected (docker-compose
    /// disconnects and connects every new container).
    pub disconnected: bool,
}

/// A container's place on one network, as asked for (the addresses it
/// got are the network store's endpoints).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkAttachment {
    /// The network's name (as given: resolved at create and each start).
    pub network: String,
    /// `--ip`, `--ip6`: the addresses it must have.
    pub ipv4: Option<std::net::Ipv4Addr>,
    pub ipv6: Option<std::net::Ipv6Addr>,
    /// `--mac-address`: `02:42:ac:11:00:02`.
    pub mac: Option<String>,
    /// `--network-alias`: more names the network's DNS gives it.
    pub aliases: Vec<String>,
}

/// The network a container is put on when `--network` is not given:
/// `$BERTH_DEFAULT_NETWORK` (bridge, none, host or a network's name: what
/// containers.conf's `netns` and Docker's daemon `bridge` setting do),
/// else Docker's `bridge` for root and `none` for other users (a bridge
/// network needs root; rootless networking is not there yet).
pub fn default_network() -> String {
    match std::env::var("BERTH_DEFAULT_NETWORK") {
        Ok(v) if !v.is_empty() => v,
        // SAFETY: geteuid has no preconditions and cannot fail.
        _ if unsafe { libc::geteuid() } != 0 => "none".into(),
        _ => berth_network::model::DEFAULT_NETWORK.into(),
    }
}

/// A MAC address as `--mac-address` takes it: six hex pairs with `:`,
/// unicast.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    if parts.next().is_some() || out[0] & 1 == 1 {
        return None;
    }
    Some(out)
}

/// When the container is restarted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RestartPolicy {
    #[default]
    No,
    /// On a non-zero exit, at most this many times (0: no limit).
    OnFailure(u32),
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    /// Docker's syntax: no, on-failure[:N], always, unless-stopped.
    pub fn parse(s: &str) -> Option<RestartPolicy> {
        use berth_monitor_proto::config::Restart as R;
        Some(match R::parse(s)? {
            R::No => RestartPolicy::No,
            R::OnFailure(n) => RestartPolicy::OnFailure(n),
            R::Always => RestartPolicy::Always,
            R::UnlessStopped => RestartPolicy::UnlessStopped,
        })
    }

    /// The monitor's.
    pub fn to_monitor(self) -> berth_monitor_proto::config::Restart {
        use berth_monitor_proto::config::Restart as R;
        match self {
            RestartPolicy::No => R::No,
            RestartPolicy::OnFailure(n) => R::OnFailure(n),
            RestartPolicy::Always => R::Always,
            RestartPolicy::UnlessStopped => R::UnlessStopped,
        }
    }

    /// Docker's name without the count (`on-failure`), as ps filters take.
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure(_) => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_monitor().name())
    }
}

impl TryFrom<String> for RestartPolicy {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        RestartPolicy::parse(&s)
            .ok_or_else(|| format!("{s:?} is not no, on-failure[:N], always or unless-stopped"))
    }
}

impl From<RestartPolicy> for String {
    fn from(r: RestartPolicy) -> String {
        r.to_string()
    }
}

/// Restart and removal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LifecycleSpec {
    pub restart: RestartPolicy,
    /// Removed when it exits (`--rm`).
    pub auto_remove: bool,
    /// Its writable layer is mounted `volatile`, as a `--rm` container's
    /// is: unmounting it does not sync the whole filesystem it is on (an
    /// overlay's unmount syncs its upper filesystem, however much other
    /// dirty data that holds). A build's RUN step, whose changes the build
    /// syncs itself once as it stores them as a layer.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub volatile_rootfs: bool,
}

/// Where the output goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum LogDriver {
    /// Docker's: one JSON object per line.
    JsonFile,
    /// The CRI format Kubernetes and podman use.
    #[default]
    K8sFile,
    None,
}

impl LogDriver {
    pub fn parse(s: &str) -> Option<LogDriver> {
        use berth_monitor_proto::config::LogDriver as L;
        Some(match L::parse(s)? {
            L::JsonFile => LogDriver::JsonFile,
            L::K8sFile => LogDriver::K8sFile,
            L::None => LogDriver::None,
        })
    }

    pub fn to_monitor(self) -> berth_monitor_proto::config::LogDriver {
        use berth_monitor_proto::config::LogDriver as L;
        match self {
            LogDriver::JsonFile => L::JsonFile,
            LogDriver::K8sFile => L::K8sFile,
            LogDriver::None => L::None,
        }
    }

    pub fn name(self) -> &'static str {
        self.to_monitor().name()
    }
}

impl TryFrom<String> for LogDriver {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        LogDriver::parse(&s).ok_or_else(|| format!("{s:?} is not json-file, k8s-file or none"))
    }
}

impl From<LogDriver> for String {
    fn from(l: LogDriver) -> String {
        l.name().to_string()
    }
}

/// The container's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogSpec {
    pub driver: LogDriver,
    /// Rotated at this size, bytes (0: no cap).
    pub max_size: u64,
    /// Files kept (at least 1).
    pub max_files: u32,
}

impl Default for LogSpec {
    fn default() -> Self {
        LogSpec {
            driver: LogDriver::K8sFile,
            max_size: DEFAULT_LOG_MAX_SIZE,
            max_files: DEFAULT_LOG_MAX_FILES,
        }
    }
}

/// Labels (berth's and the user's) and annotations (the OCI spec's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The most log files a container keeps (`logging.max_files`): each `logs`
/// and each rotation walks them all.
pub const MAX_LOG_FILES: u32 = 1000;

fn err(field: &str, msg: impl Into<String>) -> Error {
    option(field, msg)
}

fn cpu_list_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 1024
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b',' || b == b'-')
}

fn clean_text(s: &str) -> bool {
    !s.contains(['\0', '\n'])
}

impl ContainerSpec {
    /// A spec sent by a client (the REST API, a file), as JSON: an unknown
    /// field is an error naming it (a misspelt option must not be dropped
    /// silently), as is a value of the wrong type; then [`validate`].
    ///
    /// [`validate`]: ContainerSpec::validate
    pub fn from_request(json: &[u8]) -> Result<ContainerSpec> {
        let mut unknown = None;
        let de = &mut serde_json::Deserializer::from_slice(json);
        let spec: ContainerSpec = serde_ignored::deserialize(de, |path| {
            unknown.get_or_insert_with(|| path.to_string());
        })
        .map_err(|e| err("spec", format!("not a container spec: {e}")))?;
        if let Some(field) = unknown {
            return Err(err(&field, "no such field"));
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Every check of the values (none looks at the host): what a front end
    /// hands the engine must pass it. The first failure, naming its field.
    pub fn validate(&self) -> Result<()> {
        self.check_process()?;
        self.check_storage()?;
        self.check_security()?;
        self.check_resources()?;
        self.check_namespaces()?;
        self.check_network()?;
        self.health.validate()?;
        if self.lifecycle.restart != RestartPolicy::No && self.lifecycle.auto_remove {
            return Err(err(
                "lifecycle.restart",
                "a restart policy cannot be used with lifecycle.auto_remove",
            ));
        }
        if self.logging.max_files == 0 || self.logging.max_files > MAX_LOG_FILES {
            return Err(err(
                "logging.max_files",
                format!("must be 1 to {MAX_LOG_FILES}"),
            ));
        }
        for (k, v) in self
            .metadata
            .labels
            .iter()
            .chain(&self.metadata.annotations)
        {
            if k.is_empty() || !clean_text(k) || k.contains('=') || v.contains('\0') {
                return Err(err(
                    "metadata",
                    format!("{k:?}: a key must be non-empty, without '=', NUL or a newline"),
                ));
            }
        }
        if self.runtime.is_empty() || !clean_text(&self.runtime) {
            return Err(err(
                "runtime",
                format!("{:?} is not a runtime name or path", self.runtime),
            ));
        }
        Ok(())
    }

    fn check_process(&self) -> Result<()> {
        let p = &self.process;
        if let Some(w) = p.workdir.as_deref().filter(|w| w.contains('\0')) {
            return Err(err("process.workdir", format!("{w:?} holds a NUL byte")));
        }
        if let Some(w) = p.workdir.as_deref().filter(|w| !w.starts_with('/')) {
            return Err(err(
                "process.workdir",
                format!("{w:?} is not an absolute path (the working directory in the container, such as /app)"),
            ));
        }
        for e in &p.env {
            if e.is_empty() || e.starts_with('=') || !e.contains('=') || e.contains('\0') {
                return Err(err("process.env", format!("{e:?} is not KEY=VALUE")));
            }
        }
        let words = p
            .args
            .iter()
            .chain(p.entrypoint.iter().flatten())
            .chain(p.user.iter())
            .chain(&p.groups);
        if let Some(w) = words.into_iter().find(|w| w.contains('\0')) {
            return Err(err("process", format!("{w:?} holds a NUL byte")));
        }
        if let Some(s) = &p.stop_signal {
            parse_signal(s).map_err(|_| {
                err(
                    "process.stop_signal",
                    format!("{s:?} is not a signal name or number"),
                )
            })?;
        }
        if let Some(k) = &p.detach_keys {
            berth_monitor_proto::config::parse_detach_keys(k)
                .map_err(|e| err("process.detach_keys", e))?;
        }
        Ok(())
    }

    fn check_storage(&self) -> Result<()> {
        let s = &self.storage;
        let f = "storage.mounts";
        for m in &s.mounts {
            let d = &m.destination;
            if !d.starts_with('/') || d.split('/').any(|c| c == "..") || !clean_text(d) {
                return Err(err(
                    f,
                    format!("{d:?}: the destination is not an absolute path"),
                ));
            }
            match m.kind {
                MountType::Bind if !m.source.starts_with('/') || !clean_text(&m.source) => {
                    return Err(err(
                        f,
                        format!("{d}: a bind mount needs an absolute source"),
                    ))
                }
                MountType::Volume if !m.source.is_empty() && !is_volume_name(&m.source) => {
                    return Err(err(f, format!("{d}: {:?} is not a volume name", m.source)))
                }
                MountType::Tmpfs if !m.source.is_empty() => {
                    return Err(err(f, format!("{d}: tmpfs takes no source")))
                }
                _ => {}
            }
            if let Some(sp) = &m.sub_path {
                if m.kind == MountType::Tmpfs {
                    return Err(err(f, format!("{d}: a tmpfs mount takes no subpath")));
                }
                if sp.is_empty()
                    || sp.starts_with('/')
                    || sp.split('/').any(|c| c == "..")
                    || !clean_text(sp)
                {
                    return Err(err(
                        f,
                        format!("{d}: subpath {sp:?} is not a relative path without '..'"),
                    ));
                }
            }
            if let Some(p) = &m.propagation {
                if m.kind != MountType::Bind {
                    return Err(err(
                        f,
                        format!(
                            "{d}: a propagation mode applies to bind mounts (a host path) only"
                        ),
                    ));
                }
                if !PROPAGATIONS.contains(&p.as_str()) {
                    return Err(err(
                        f,
                        format!(
                            "{d}: propagation {p:?} is not one of {}",
                            PROPAGATIONS.join(", ")
                        ),
                    ));
                }
            }
            if m.kind != MountType::Tmpfs
                && (m.size.is_some() || m.mode.is_some() || !m.flags.is_empty())
            {
                return Err(err(
                    f,
                    format!("{d}: size, mode and flags are for tmpfs mounts"),
                ));
            }
            if m.mode.is_some_and(|m| m > 0o7777) {
                return Err(err(f, format!("{d}: the mode is not a file mode")));
            }
            if let Some(x) = m.flags.iter().find(|x| {
                !matches!(
                    x.as_str(),
                    "exec" | "noexec" | "suid" | "nosuid" | "dev" | "nodev"
                )
            }) {
                return Err(err(f, format!("{d}: unknown tmpfs flag {x:?}")));
            }
        }
        if s.shm_size == Some(0) {
            return Err(err("storage.shm_size", "must be more than 0"));
        }
        for v in &s.volumes_from {
            docker::parse_volumes_from(v).map_err(|_| {
                err(
                    "storage.volumes_from",
                    format!("{v:?} is not CONTAINER[:ro|:rw]"),
                )
            })?;
        }
        Ok(())
    }

    fn check_security(&self) -> Result<()> {
        let s = &self.security;
        crate::spec::capabilities(s.privileged, &s.cap_add, &s.cap_drop)?;
        if let SeccompPolicy::Profile { profile } = &s.seccomp {
            if profile.trim().is_empty() {
                return Err(err("security.seccomp", "the profile is empty"));
            }
        }
        for (k, v) in &s.sysctls {
            if !berth_sys::sysctl::valid_name(k) || berth_sys::sysctl::namespace_of(k).is_none() {
                return Err(err(
                    "security.sysctls",
                    format!("{k}: not a namespaced sysctl; a container may not change it for the whole host"),
                ));
            }
            if v.contains('\0') {
                return Err(err(
                    "security.sysctls",
                    format!("{k}: the value holds a NUL byte"),
                ));
            }
        }
        Ok(())
    }

    fn check_resources(&self) -> Result<()> {
        let r = &self.resources;
        const MIN: i64 = 6 * 1024 * 1024;
        if r.memory.is_some_and(|m| m < MIN) {
            return Err(err("resources.memory", "the minimum is 6MB"));
        }
        match (r.memory, r.memory_swap) {
            (_, Some(-1)) | (_, None) => {}
            (Some(m), Some(s)) if s < m => {
                return Err(err(
                    "resources.memory_swap",
                    "must be at least resources.memory (or -1 for unlimited)",
                ))
            }
            (Some(_), Some(_)) => {}
            (None, Some(_)) => {
                return Err(err(
                    "resources.memory_swap",
                    "needs resources.memory as well",
                ))
            }
        }
        if let Some(res) = r.memory_reservation {
            if res < MIN {
                return Err(err("resources.memory_reservation", "the minimum is 6MB"));
            }
            if r.memory.is_some_and(|m| m < res) {
                return Err(err(
                    "resources.memory_reservation",
                    "must not be more than resources.memory (it is the soft limit under the hard one)",
                ));
            }
        }
        if r.memory_swappiness.is_some_and(|s| s > 100) {
            return Err(err(
                "resources.memory_swappiness",
                "must be between 0 and 100",
            ));
        }
        if r.oom_score_adj
            .is_some_and(|a| !(-1000..=1000).contains(&a))
        {
            return Err(err(
                "resources.oom_score_adj",
                "must be between -1000 and 1000",
            ));
        }
        let weight_ok = |w: u64| (10..=1000).contains(&w);
        if r.blkio_weight.is_some_and(|w| !weight_ok(w.into())) {
            return Err(err("resources.blkio_weight", "must be between 10 and 1000"));
        }
        if let Some(d) = r.blkio_weight_devices.iter().find(|d| !weight_ok(d.value)) {
            return Err(err(
                "resources.blkio_weight_devices",
                format!("{}: a weight must be between 10 and 1000", d.path),
            ));
        }
        for (f, v) in [
            ("resources.blkio_weight_devices", &r.blkio_weight_devices),
            ("resources.device_read_bps", &r.device_read_bps),
            ("resources.device_write_bps", &r.device_write_bps),
            ("resources.device_read_iops", &r.device_read_iops),
            ("resources.device_write_iops", &r.device_write_iops),
        ] {
            if let Some(d) = v
                .iter()
                .find(|d| !d.path.starts_with('/') || !clean_text(&d.path))
            {
                return Err(err(
                    f,
                    format!("{:?} is not an absolute device path", d.path),
                ));
            }
        }
        if let Some(c) = r.cpus {
            if !(c > 0.0 && c.is_finite() && c <= 1e6) {
                return Err(err("resources.cpus", "must be a positive number"));
            }
            if r.cpu_period.is_some() || r.cpu_quota.is_some() {
                return Err(err(
                    "resources.cpus",
                    "give either resources.cpus or resources.cpu_period/resources.cpu_quota, not both",
                ));
            }
        }
        if r.cpu_period
            .is_some_and(|p| !(1000..=1_000_000).contains(&p))
        {
            return Err(err(
                "resources.cpu_period",
                "must be between 1000 and 1000000 microseconds (1 ms to 1 s)",
            ));
        }
        if r.cpu_quota.is_some_and(|q| q != -1 && q < 1000) {
            return Err(err(
                "resources.cpu_quota",
                "must be at least 1000 microseconds (1 ms), or -1 for no limit",
            ));
        }
        if r.cpu_shares.is_some_and(|s| !(2..=262_144).contains(&s)) {
            return Err(err("resources.cpu_shares", "must be between 2 and 262144"));
        }
        if let Some(c) = r.cpuset_cpus.as_deref().filter(|c| !cpu_list_ok(c)) {
            return Err(err(
                "resources.cpuset_cpus",
                format!("{c:?} is not a CPU list such as 0-2,4"),
            ));
        }
        if let Some(m) = r.cpuset_mems.as_deref().filter(|m| !cpu_list_ok(m)) {
            return Err(err(
                "resources.cpuset_mems",
                format!("{m:?} is not a list of memory nodes such as 0-1"),
            ));
        }
        if r.pids_limit.is_some_and(|p| p == 0 || p < -1) {
            return Err(err(
                "resources.pids_limit",
                "must be positive, or -1 for unlimited",
            ));
        }
        for u in &r.ulimits {
            crate::spec::rlimit_name(&u.name)?;
            if u.soft > u.hard {
                return Err(err(
                    "resources.ulimits",
                    format!("{}: the soft limit is above the hard one", u.name),
                ));
            }
        }
        for d in &r.devices {
            let ok = d.host.starts_with('/')
                && d.container.starts_with('/')
                && !d.container.split('/').any(|c| c == "..")
                && clean_text(&d.host)
                && clean_text(&d.container);
            if !ok {
                return Err(err(
                    "resources.devices",
                    format!(
                        "{}:{}: both paths must be absolute, the container's without ..",
                        d.host, d.container
                    ),
                ));
            }
            if !is_device_access(&d.access) {
                return Err(err(
                    "resources.devices",
                    format!(
                        "{:?} is not an access mode (some of r, w and m, such as rw)",
                        d.access
                    ),
                ));
            }
        }
        for d in &r.device_cgroup_rules {
            // Built by code rather than parsed: checked again.
            docker::parse_device_rule(&d.to_string()).map_err(|_| {
                err(
                    "resources.device_cgroup_rules",
                    format!("{d} is not a rule"),
                )
            })?;
        }
        if let Some(p) = &r.cgroup_parent {
            if docker::parse_cgroup_parent(p).ok().as_deref() != Some(p.as_str()) {
                return Err(err(
                    "resources.cgroup_parent",
                    format!("{p:?} is not an absolute cgroup path (such as /services/web)"),
                ));
            }
        }
        for d in &r.cdi_devices {
            crate::cdi::parse_qualified(d)
                .map_err(|e| err("resources.cdi_devices", e.to_string()))?;
        }
        Ok(())
    }

    /// A user namespace: maps the kernel takes, recorded only with a mode
    /// that asks for them, and the host's namespaces it cannot mount for
    /// (/proc, /sys and /dev/mqueue are mounted in the container's user
    /// namespace, which must own their namespaces).
    fn check_userns(&self) -> Result<()> {
        let n = &self.namespaces;
        if let UsernsMode::Maps { uids, gids } = &n.user {
            let u = Userns {
                uids: uids.clone(),
                gids: gids.clone(),
            };
            u.check(crate::userns::MapsFrom::Flags)?;
            if u.root().is_none() {
                return Err(err(
                    "namespaces.user",
                    "--uidmap and --gidmap must map container id 0: the container's root owns its root filesystem",
                ));
            }
        }
        match (&n.user, &n.user_maps) {
            (UsernsMode::Host, None) => return Ok(()),
            (UsernsMode::Host, Some(_)) => {
                return Err(err(
                    "namespaces.user_maps",
                    "maps are set but namespaces.user is host: give a mode, or no maps",
                ))
            }
            (_, Some(u)) => {
                for (what, m) in [("uid", &u.uids), ("gid", &u.gids)] {
                    berth_sys::userns::check_map(&crate::userns::ranges(m))
                        .map_err(|e| err("namespaces.user_maps", format!("the {what} map: {e}")))?;
                }
                if u.root().is_none() {
                    return Err(err(
                        "namespaces.user_maps",
                        "must map container id 0: the container's root owns its root filesystem",
                    ));
                }
            }
            (_, None) => {}
        }
        for (field, shared) in [
            ("namespaces.pid", n.pid.is_host()),
            ("namespaces.net", n.net.is_host()),
            ("namespaces.ipc", n.ipc.is_host()),
        ] {
            if shared {
                return Err(err(
                    field,
                    format!("host cannot be used with a user namespace (--userns {}): its /proc, /sys or /dev/mqueue cannot be mounted from inside one; drop one of the two", userns_text(&n.user)),
                ));
            }
        }
        Ok(())
    }

    fn check_namespaces(&self) -> Result<()> {
        let n = &self.namespaces;
        let modes = [
            ("namespaces.pid", Some(&n.pid)),
            ("namespaces.ipc", Some(&n.ipc)),
            ("namespaces.uts", Some(&n.uts)),
            ("namespaces.net", Some(&n.net)),
            ("namespaces.cgroup", n.cgroup.as_ref()),
        ];
        for (field, mode) in modes {
            match mode {
                None | Some(NamespaceMode::Private) | Some(NamespaceMode::Host) => {}
                // Another container's network namespace, or one at a path.
                Some(NamespaceMode::Container(_) | NamespaceMode::Path(_))
                    if field == "namespaces.net" => {}
                // Another container's pid, ipc or uts namespace.
                Some(NamespaceMode::Container(_)) if field != "namespaces.cgroup" => {}
                Some(m) => {
                    return Err(err(
                        field,
                        format!("{m}: not a mode of this namespace; use host, private or container:NAME (a pod's members join its infra container's through --pod)"),
                    ))
                }
            }
        }
        self.check_userns()?;
        let uts_host = n.uts.is_host();
        if uts_host && self.network.domainname.is_some() {
            return Err(err(
                "network.domainname",
                "cannot be set with namespaces.uts host: the container has the host's",
            ));
        }
        if uts_host && self.network.hostname.is_some() {
            return Err(err(
                "network.hostname",
                "cannot be set with namespaces.uts host: the container has the host's name",
            ));
        }
        if let NamespaceMode::Container(c) = &n.uts {
            if self.network.hostname.is_some() || self.network.domainname.is_some() {
                return Err(err(
                    "network.hostname",
                    format!("cannot be set with namespaces.uts container:{c}: the container has {c}'s name (a pod's: set it with pod create --hostname)"),
                ));
            }
        }
        // A sysctl changes the namespace it belongs to: the container's
        // own only.
        for k in self.security.sysctls.keys() {
            let Some(ns) = berth_sys::sysctl::namespace_of(k) else {
                continue;
            };
            let name = berth_sys::sysctl::namespace_name(ns);
            let shared = match name {
                "ipc" => n.ipc != NamespaceMode::Private,
                "uts" => n.uts != NamespaceMode::Private,
                "network" => n.net != NamespaceMode::Private,
                _ => false,
            };
            if shared {
                return Err(err(
                    "security.sysctls",
                    format!("{k}: the container shares the host's {name} namespace, so this would change the host's"),
                ));
            }
        }
        Ok(())
    }

    fn check_network(&self) -> Result<()> {
        let n = &self.network;
        docker::check_dns(&n.dns, &n.dns_search, &n.dns_options)?;
        if let Some(h) = &n.hostname {
            if h.is_empty()
                || h.len() > 64
                || h.contains(['/', ' '])
                || h.contains(char::is_control)
            {
                return Err(err("network.hostname", format!("{h:?} is not a host name")));
            }
        }
        if let Some(d) = &n.domainname {
            if d.is_empty()
                || d.len() > 64
                || d.contains(['/', ' '])
                || d.contains(char::is_control)
            {
                return Err(err(
                    "network.domainname",
                    format!("{d:?} is not a domain name"),
                ));
            }
        }
        let bridged = !n.networks.is_empty();
        if bridged && self.namespaces.net != NamespaceMode::Private {
            return Err(err(
                "network.networks",
                format!(
                    "a container on bridge networks has a network namespace of its own, not namespaces.net {}",
                    self.namespaces.net
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for a in &n.networks {
            if a.network.is_empty() || a.network.len() > 253 || a.network.contains(char::is_control)
            {
                return Err(err(
                    "network.networks",
                    format!("{:?} is not a network name", a.network),
                ));
            }
            if !seen.insert(a.network.as_str()) {
                return Err(err(
                    "network.networks",
                    format!("{} is given twice", a.network),
                ));
            }
            if let Some(m) = &a.mac {
                if parse_mac(m).is_none() {
                    return Err(err(
                        "network.networks.mac",
                        format!("{m:?} is not a unicast MAC address (like 02:42:ac:11:00:02)"),
                    ));
                }
            }
            for al in &a.aliases {
                if al.is_empty()
                    || al.len() > 253
                    || !al
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                {
                    return Err(err(
                        "network.networks.aliases",
                        format!("{al:?} is not a DNS name"),
                    ));
                }
            }
        }
        if !bridged && (!n.ports.is_empty() || n.publish_all) {
            return Err(err(
                "network.ports",
                format!(
                    "ports are published on bridge networks only, not with namespaces.net {}",
                    if self.namespaces.net == NamespaceMode::Private {
                        "none".to_string()
                    } else {
                        self.namespaces.net.to_string()
                    }
                ),
            ));
        }
        for p in &n.ports {
            if p.container_port == 0 {
                return Err(err("network.ports", "container port 0 is not a port"));
            }
        }
        for e in &n.expose {
            berth_network::ports::parse_expose(e)
                .map_err(|x| err("network.expose", x.to_string()))?;
        }
        for h in &n.extra_hosts {
            if h.address == docker::HOST_GATEWAY {
                if !bridged {
                    return Err(err(
                        "network.extra_hosts",
                        format!(
                            "{}:host-gateway needs a bridge network (the gateway's address)",
                            h.name
                        ),
                    ));
                }
                continue;
            }
            docker::parse_add_host(&format!("{}:{}", h.name, h.address))
                .map_err(|e| err("network.extra_hosts", e.to_string()))?;
            // As written into /etc/hosts: the address itself, no brackets.
            if h.address.parse::<std::net::IpAddr>().is_err() {
                return Err(err(
                    "network.extra_hosts",
                    format!("{:?} (for {}) is not an IP address", h.address, h.name),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
