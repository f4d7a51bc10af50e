//! The container's OCI spec: a pure function of the image config, the
//! resolved user, the container's [`ContainerSpec`] and what the engine
//! resolved on the host for it ([`Resolved`]), with defaults equivalent to
//! Docker's (capabilities, seccomp profile, masked and read-only paths,
//! /dev/shm, device rules, namespaces). The engine does the I/O around it
//! (mounting the rootfs, resolving the user, preparing /etc files).

use crate::error::{option, Error, Result};
use crate::specgen::ContainerSpec;
use crate::user::User;
use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// What berth reads of an image's config (`config` in the OCI image config).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    /// Paths the image declares as volumes (the engine makes anonymous ones).
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// EXPOSE: `80/tcp` and the like (`-P` publishes them).
    pub exposed_ports: Vec<String>,
}

impl ImageConfig {
    /// From the image config JSON (Docker's and OCI's field names).
    pub fn from_json(config: &[u8]) -> Result<ImageConfig> {
        let v: Value = serde_json::from_slice(config).map_err(|e| Error::Image {
            field: "config".into(),
            msg: format!("not JSON: {e}"),
        })?;
        let c = &v["config"];
        let list = |k: &str| -> Result<Option<Vec<String>>> {
            match &c[k] {
                Value::Null => Ok(None),
                Value::Array(a) => a
                    .iter()
                    .map(|s| {
                        s.as_str().map(str::to_string).ok_or_else(|| Error::Image {
                            field: k.into(),
                            msg: "not a list of strings".into(),
                        })
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Some),
                _ => Err(Error::Image {
                    field: k.into(),
                    msg: "not a list of strings".into(),
                }),
            }
        };
        let string = |k: &str| c[k].as_str().filter(|s| !s.is_empty()).map(str::to_string);
        Ok(ImageConfig {
            entrypoint: list("Entrypoint")?,
            cmd: list("Cmd")?,
            env: list("Env")?.unwrap_or_default(),
            working_dir: string("WorkingDir"),
            user: string("User"),
            stop_signal: string("StopSignal"),
            volumes: c["Volumes"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            labels: c["Labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
            exposed_ports: c["ExposedPorts"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        })
    }
}

/// Docker's default capability set.
pub const DEFAULT_CAPS: [&str; 14] = berth_sys::caps::DOCKER_DEFAULT;

/// Every capability up to CAP_CHECKPOINT_RESTORE (Linux 5.9): the one
/// table, shared with the runtime.
pub const ALL_CAPS: [&str; 41] = berth_sys::caps::NAMES;

/// Docker's masked paths and read-only paths.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where `--init` puts berth's init in the container.
pub const INIT_PATH: &str = "/sbin/berth-init";

#[derive(Clone, Debug, Default)]
pub enum Seccomp {
    /// A containers-common/Docker profile (its JSON), converted for the
    /// container's capabilities on a kernel of this version.
    Default {
        profile: Vec<u8>,
        kernel: (u32, u32),
    },
    /// `--security-opt seccomp=unconfined`.
    #[default]
    Unconfined,
    /// `--security-opt seccomp=FILE` (a profile in the same format).
    File {
        profile: Vec<u8>,
        kernel: (u32, u32),
    },
    /// The OCI `linux.seccomp` object, converted already, as JSON text (the
    /// engine keeps conversions: see `Engine::convert_seccomp`);
    /// [`generate_json`] copies it into the spec as it is.
    Converted(Box<serde_json::value::RawValue>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum MountKind {
    /// A host path (a bind mount or a named volume's directory), with its
    /// propagation (`rprivate` when `None`).
    Bind {
        source: PathBuf,
        propagation: Option<String>,
        /// berth's own volume (not a host path the user named): with a
        /// user namespace it is idmapped, so its files are the
        /// container's. A host path is not: container root must not own
        /// the host's root-owned files (nor make setuid-root ones there).
        volume: bool,
    },
    /// `flags`: `exec`, `suid`, `dev` or their `no` forms, over the default
    /// `noexec,nosuid,nodev` (Docker's and Podman's).
    Tmpfs {
        size: Option<u64>,
        mode: Option<u32>,
        flags: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct MountSpec {
    pub destination: String,
    pub kind: MountKind,
    pub readonly: bool,
}

/// A host device node given to the container (`--device`, and every host
/// device under `--privileged`), as found on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    /// Where it appears in the container.
    pub path: String,
    /// The node on the host (with a user namespace it is bound from there).
    pub host: String,
    /// `c` (character) or `b` (block).
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The device cgroup access: some of r, w, m.
    pub access: String,
}

/// Block I/O weights and limits, by device number (looked up from the
/// paths the user gave when the container starts).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlockIo {
    /// (major, minor, weight).
    pub weight_devices: Vec<(i64, i64, u64)>,
    /// (major, minor, bytes or operations per second).
    pub read_bps: Vec<(i64, i64, u64)>,
    pub write_bps: Vec<(i64, i64, u64)>,
    pub read_iops: Vec<(i64, i64, u64)>,
    pub write_iops: Vec<(i64, i64, u64)>,
}

/// What the engine found on the host for one start of a container: the
/// paths, numbers and files its spec's values resolve to. The rest of the
/// OCI spec comes from the [`ContainerSpec`] itself.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// The container's host name (the spec's, the host's, or the short id).
    pub hostname: String,
    pub seccomp: Seccomp,
    /// The spec's mounts (and the image's anonymous volumes) with their
    /// host paths.
    pub mounts: Vec<MountSpec>,
    /// The devices found for the spec's (and every host device when
    /// privileged).
    pub devices: Vec<Device>,
    /// The block I/O limits by device number.
    pub block_io: BlockIo,
    /// `--init`: the host path of berth's init.
    pub init: Option<PathBuf>,
    pub rootfs: PathBuf,
    pub cgroups_path: String,
    /// Whether the host's cgroups are v2 (the default cgroup namespace).
    pub cgroup_v2: bool,
    /// Files the engine prepared (/etc/hosts, /etc/hostname,
    /// /etc/resolv.conf): (destination, host path).
    pub files: Vec<(String, PathBuf)>,
    /// The capabilities berth itself may pass on (its bounding set, bit N
    /// for capability N); None: all. `--privileged` and `--cap-add ALL`
    /// give what is there; a named `--cap-add` beyond it is an error.
    pub cap_bound: Option<u64>,
    /// The default RLIMIT_NOFILE (soft and hard) when no --ulimit sets it:
    /// 0 means Docker's 1048576. The engine lowers it to its own hard limit
    /// when it may not raise limits (no CAP_SYS_RESOURCE).
    pub nofile: u64,

    /// The edits of the spec's CDI devices, resolved from the CDI spec
    /// files for this start.
    pub cdi: crate::cdi::Edits,

    /// The network namespace to join (bridge networks, `container:NAME`,
    /// `ns:PATH`); None: one of its own (or the host's).
    pub netns: Option<PathBuf>,
    /// The pid, ipc and uts namespaces joined by path (`container:NAME`,
    /// a pod's infra container): (OCI type, path).
    pub joined: Vec<(&'static str, PathBuf)>,
    /// The /dev/shm of the IPC namespace joined (a pod's, bound on the
    /// host beside its namespaces): bound instead of a tmpfs of its own, so
    /// that POSIX shared memory is shared with the namespace's System V
    /// objects, as Docker and Podman share it.
    pub shm: Option<PathBuf>,
}

/// Cleans an absolute container path; refuses relative ones and `..`.
fn container_path(p: &str, what: &str) -> Result<String> {
    if !p.starts_with('/') {
        return Err(option(what, format!("{p:?} is not an absolute path")));
    }
    let mut out = PathBuf::from("/");
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                return Err(option(what, format!("{p:?} contains '..'")));
            }
            _ => {}
        }
    }
    Ok(out.to_string_lossy().into_owned())
}

fn cap_name(c: &str, what: &str) -> Result<String> {
    let up = c.to_ascii_uppercase();
    let name = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(option(what, format!("unknown capability {c:?}")))
    }
}

/// The container's capability set (bounding, effective and permitted).
pub fn container_capabilities(cs: &ContainerSpec, h: &Resolved) -> Result<Vec<String>> {
    within_bound(
        capabilities(
            cs.security.privileged,
            &cs.security.cap_add,
            &cs.security.cap_drop,
        )?,
        cs,
        h,
    )
}

/// The OCI `linux.seccomp` object a containers-common profile gives for
/// these capabilities on this kernel and architecture.
pub fn seccomp_object(
    profile: &[u8],
    caps: &[String],
    kernel: (u32, u32),
) -> Result<serde_json::Value> {
    let s = berth_seccomp::profile::for_container(
        profile,
        berth_seccomp::profile::native_arch(),
        caps,
        kernel,
    )?;
    serde_json::to_value(s).map_err(|e| option("seccomp", e.to_string()))
}

/// Keeps the capabilities inside `h.cap_bound`.
fn within_bound(caps: Vec<String>, cs: &ContainerSpec, h: &Resolved) -> Result<Vec<String>> {
    let Some(bound) = h.cap_bound else {
        return Ok(caps);
    };
    let wanted_by_name = |c: &str| {
        !cs.security.privileged
            && !cs
                .security
                .cap_add
                .iter()
                .any(|a| a.eq_ignore_ascii_case("all"))
            && cs
                .security
                .cap_add
                .iter()
                .any(|a| cap_name(a, "--cap-add").is_ok_and(|n| n == c))
    };
    let mut out = Vec::with_capacity(caps.len());
    for c in caps {
        let bit = ALL_CAPS.iter().position(|x| *x == c).unwrap_or(0);
        if bound & (1u64 << bit) != 0 {
            out.push(c);
        } else if wanted_by_name(&c) {
            return Err(option(
                "--cap-add",
                format!("{c} is not available here: berth's own bounding set lacks it"),
            ));
        }
    }
    Ok(out)
}

/// Docker's rules: --cap-drop ALL empties the set, --cap-add ALL fills
/// it (minus what is dropped by name); otherwise drops, then adds.
pub fn capabilities(privileged: bool, add: &[String], drop: &[String]) -> Result<Vec<String>> {
    if privileged {
        return Ok(ALL_CAPS.iter().map(|s| s.to_string()).collect());
    }
    let all = |v: &[String]| v.iter().any(|c| c.eq_ignore_ascii_case("all"));
    let drops: Vec<String> = drop
        .iter()
        .filter(|c| !c.eq_ignore_ascii_case("all"))
        .map(|c| cap_name(c, "--cap-drop"))
        .collect::<Result<_>>()?;
    let adds: Vec<String> = add
        .iter()
        .filter(|c| !c.eq_ignore_ascii_case("all"))
        .map(|c| cap_name(c, "--cap-add"))
        .collect::<Result<_>>()?;
    // As moby's TweakCapabilities: ALL in --cap-add starts from every
    // capability, ALL in --cap-drop from none; named drops, then adds.
    let mut caps: Vec<String> = if all(add) {
        ALL_CAPS.iter().map(|s| s.to_string()).collect()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    if all(drop) {
        caps.clear();
    } else {
        caps.retain(|c| !drops.contains(c));
    }
    for a in adds {
        if !caps.contains(&a) {
            caps.push(a);
        }
    }
    Ok(caps)
}

fn env_key(kv: &str) -> &str {
    kv.split_once('=').map_or(kv, |(k, _)| k)
}

/// The container's environment: the image's, then the options' (a key
/// given again replaces the earlier value), then PATH, HOSTNAME, HOME and
/// TERM where missing.
pub fn environment(
    image: &[String],
    cs: &ContainerSpec,
    h: &Resolved,
    user: &User,
) -> Result<Vec<String>> {
    // Linear in the number of variables: a key given again empties its
    // earlier slot (found by the index) instead of searching the list.
    let mut slots: Vec<Option<&str>> = Vec::with_capacity(image.len() + cs.process.env.len());
    let mut index: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(slots.capacity());
    for (kv, what) in image
        .iter()
        .map(|kv| (kv, "image Env"))
        .chain(cs.process.env.iter().map(|kv| (kv, "--env")))
    {
        let k = env_key(kv);
        if k.is_empty() || kv.contains('\0') {
            return Err(option(what, format!("invalid variable {kv:?}")));
        }
        if !kv.contains('=') {
            return Err(option(what, format!("{kv:?} has no value (KEY=VALUE)")));
        }
        if let Some(old) = index.insert(k, slots.len()) {
            slots[old] = None;
        }
        slots.push(Some(kv));
    }
    let has = |k: &str| index.contains_key(k);
    let mut env: Vec<String> = Vec::with_capacity(index.len() + 4);
    if !has("PATH") {
        env.push(DEFAULT_PATH.to_string());
    }
    env.extend(slots.into_iter().flatten().map(str::to_string));
    if !has("HOSTNAME") && !h.hostname.is_empty() {
        env.push(format!("HOSTNAME={}", h.hostname));
    }
    if !has("HOME") {
        env.push(format!("HOME={}", user.home));
    }
    if cs.process.tty && !has("TERM") {
        env.push("TERM=xterm".into());
    }
    Ok(env)
}

/// The command: --entrypoint replaces the image's and drops its Cmd;
/// arguments replace the Cmd.
pub fn command(image: &ImageConfig, cs: &ContainerSpec, h: &Resolved) -> Result<Vec<String>> {
    let (entrypoint, cmd) = match &cs.process.entrypoint {
        Some(e) => (e.clone(), cs.process.args.clone()),
        None => (
            image.entrypoint.clone().unwrap_or_default(),
            if cs.process.args.is_empty() {
                image.cmd.clone().unwrap_or_default()
            } else {
                cs.process.args.clone()
            },
        ),
    };
    let mut args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(option(
            "command",
            "the image has no Entrypoint or Cmd: give a command after the image name",
        ));
    }
    if h.init.is_some() {
        let mut with_init = vec![INIT_PATH.to_string(), "--".to_string()];
        with_init.append(&mut args);
        args = with_init;
    }
    Ok(args)
}

/// The spec's `linux.resources` for `cs` without devices (what `update`
/// gives the runtime): the values as [`ContainerSpec::validate`] passed
/// them, the block I/O ones by the device numbers in `h`.
pub fn resources(cs: &ContainerSpec, h: &Resolved) -> Value {
    let o = &cs.resources;
    let mut r = json!({});
    if let Some(m) = o.memory {
        r["memory"] = json!({"limit": m});
    }
    match (o.memory, o.memory_swap) {
        (Some(_), Some(s)) => r["memory"]["swap"] = json!(s),
        // Docker: as much swap as memory.
        (Some(m), None) => r["memory"]["swap"] = json!(m.saturating_mul(2)),
        _ => {}
    }
    if let Some(res) = o.memory_reservation {
        r["memory"]["reservation"] = json!(res);
    }
    if let Some(sw) = o.memory_swappiness {
        r["memory"]["swappiness"] = json!(sw);
    }
    if o.oom_kill_disable {
        r["memory"]["disableOOMKiller"] = json!(true);
    }
    let b = &h.block_io;
    let mut bio = json!({});
    if let Some(w) = o.blkio_weight {
        bio["weight"] = json!(w);
    }
    let list = |v: &[(i64, i64, u64)], key: &str| {
        v.iter()
            .map(|(ma, mi, n)| json!({"major": ma, "minor": mi, key: n}))
            .collect::<Vec<_>>()
    };
    for (field, v, key) in [
        ("weightDevice", &b.weight_devices, "weight"),
        ("throttleReadBpsDevice", &b.read_bps, "rate"),
        ("throttleWriteBpsDevice", &b.write_bps, "rate"),
        ("throttleReadIOPSDevice", &b.read_iops, "rate"),
        ("throttleWriteIOPSDevice", &b.write_iops, "rate"),
    ] {
        if !v.is_empty() {
            bio[field] = json!(list(v, key));
        }
    }
    if bio.as_object().is_some_and(|m| !m.is_empty()) {
        r["blockIO"] = bio;
    }
    let mut cpu = json!({});
    if let Some(c) = o.cpus {
        cpu["period"] = json!(100_000u64);
        cpu["quota"] = json!((c * 100_000.0).round() as i64);
    }
    if let Some(p) = o.cpu_period {
        cpu["period"] = json!(p);
    }
    if let Some(q) = o.cpu_quota {
        cpu["quota"] = json!(q);
    }
    if let Some(s) = o.cpu_shares {
        cpu["shares"] = json!(s);
    }
    if let Some(c) = &o.cpuset_cpus {
        cpu["cpus"] = json!(c);
    }
    if let Some(m) = &o.cpuset_mems {
        cpu["mems"] = json!(m);
    }
    if cpu.as_object().is_some_and(|m| !m.is_empty()) {
        r["cpu"] = cpu;
    }
    if let Some(p) = o.pids_limit {
        r["pids"] = json!({"limit": p});
    }
    r
}

/// Docker's device rules for an unprivileged container.
fn device_rules(privileged: bool) -> Value {
    if privileged {
        return json!([{"allow": true, "access": "rwm"}]);
    }
    let c = |major: i64, minor: Option<i64>, access: &str| {
        let mut v = json!({"allow": true, "type": "c", "major": major, "access": access});
        if let Some(m) = minor {
            v["minor"] = json!(m);
        }
        v
    };
    json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "access": "m"},
        {"allow": true, "type": "b", "access": "m"},
        c(1, Some(3), "rwm"),   // null
        c(1, Some(5), "rwm"),   // zero
        c(1, Some(7), "rwm"),   // full
        c(1, Some(8), "rwm"),   // random
        c(1, Some(9), "rwm"),   // urandom
        c(5, Some(0), "rwm"),   // tty
        c(5, Some(1), "rwm"),   // console
        c(5, Some(2), "rwm"),   // ptmx
        c(136, None, "rwm"),    // pts
        c(10, Some(200), "rwm") // tun
    ])
}

pub(crate) fn rlimit_name(n: &str) -> Result<String> {
    const KNOWN: [&str; 16] = [
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
        "as",
    ];
    let n = n.to_ascii_lowercase();
    if KNOWN.contains(&n.as_str()) {
        Ok(format!("RLIMIT_{}", n.to_ascii_uppercase()))
    } else {
        Err(option("resources.ulimits", format!("unknown limit {n:?}")))
    }
}

/// The spec. Pure: the same inputs give the same spec.
pub fn generate(
    image: &ImageConfig,
    user: &User,
    cs: &ContainerSpec,
    h: &Resolved,
) -> Result<Spec> {
    let (mut spec, converted) = build(image, user, cs, h)?;
    if let Some(raw) = converted {
        spec["linux"]["seccomp"] = serde_json::from_str(raw.get())
            .map_err(|e| option("seccomp", format!("a converted profile: {e}")))?;
    }
    serde_json::from_value(spec).map_err(|e| option("spec", format!("internal: {e}")))
}

/// Checks the options as [`generate`] does, without making the spec.
pub fn check(image: &ImageConfig, user: &User, cs: &ContainerSpec, h: &Resolved) -> Result<()> {
    build(image, user, cs, h).map(|_| ())
}

/// [`generate`]'s spec as JSON text, what a bundle's `config.json` holds:
/// written from the JSON the spec is built as, with a converted seccomp
/// profile copied in as it is, rather than through oci-spec's types (its
/// hundreds of syscall names parsed, copied and written again at every
/// start).
pub fn generate_json(
    image: &ImageConfig,
    user: &User,
    cs: &ContainerSpec,
    h: &Resolved,
) -> Result<Vec<u8>> {
    let (mut spec, converted) = build(image, user, cs, h)?;
    let ser = |e: serde_json::Error| option("spec", format!("internal: {e}"));
    let Some(raw) = converted else {
        return serde_json::to_vec(&spec).map_err(ser);
    };
    #[derive(serde::Serialize)]
    struct WithSeccomp<'a> {
        #[serde(flatten)]
        rest: &'a serde_json::Map<String, Value>,
        seccomp: &'a serde_json::value::RawValue,
    }
    #[derive(serde::Serialize)]
    struct Top<'a> {
        #[serde(flatten)]
        rest: &'a serde_json::Map<String, Value>,
        linux: WithSeccomp<'a>,
    }
    let Some(top) = spec.as_object_mut() else {
        return Err(option("spec", "internal: not an object"));
    };
    let Some(Value::Object(linux)) = top.remove("linux") else {
        return Err(option("spec", "internal: no linux object"));
    };
    serde_json::to_vec(&Top {
        rest: top,
        linux: WithSeccomp {
            rest: &linux,
            seccomp: raw,
        },
    })
    .map_err(ser)
}

/// Whether the container has a cgroup namespace of its own: as its spec
/// says, else Docker's default (its own on cgroup v2, the host's on v1).
pub fn own_cgroup_namespace(cs: &ContainerSpec, h: &Resolved) -> bool {
    match &cs.namespaces.cgroup {
        Some(m) => !m.is_host(),
        None => h.cgroup_v2,
    }
}

/// The spec's annotations, less those berth sets itself (an image's
/// stop signal is the record's business, not the runtime's).
fn annotations(cs: &ContainerSpec) -> BTreeMap<&str, &str> {
    cs.metadata
        .annotations
        .iter()
        .filter(|(k, v)| !v.is_empty() && *k != "org.opencontainers.image.stopSignal")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The spec as JSON, with the converted seccomp profile left out (and
/// returned) when the options hold one.
fn build<'a>(
    image: &ImageConfig,
    user: &User,
    cs: &'a ContainerSpec,
    h: &'a Resolved,
) -> Result<(Value, Option<&'a serde_json::value::RawValue>)> {
    cs.validate()?;
    let args = command(image, cs, h)?;
    let mut env = environment(&image.env, cs, h, user)?;
    cdi_env(&mut env, &h.cdi)?;
    let cwd = match cs
        .process
        .workdir
        .as_deref()
        .or(image.working_dir.as_deref())
    {
        Some(w) if w.starts_with('/') => container_path(w, "--workdir")?,
        // Docker takes a relative WorkingDir from / .
        Some(w) => container_path(&format!("/{w}"), "--workdir")?,
        None => "/".into(),
    };
    let caps = container_capabilities(cs, h)?;
    let nofile = if h.nofile == 0 {
        1_048_576u64
    } else {
        h.nofile
    };
    let mut rlimits = vec![json!({"type": "RLIMIT_NOFILE", "soft": nofile, "hard": nofile})];
    for u in &cs.resources.ulimits {
        let t = rlimit_name(&u.name)?;
        rlimits.retain(|r| r["type"] != t.as_str());
        rlimits.push(json!({"type": t, "soft": u.soft, "hard": u.hard}));
    }
    if h.hostname.len() > 64 || h.hostname.contains(['/', '\0', ' ']) {
        return Err(option(
            "--hostname",
            format!("{:?} is not a host name", h.hostname),
        ));
    }

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if cs.security.privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", if cs.security.privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
    ];
    // A joined IPC namespace's /dev/shm with it, as Docker binds it: the
    // host's, or another container's (`Resolved::shm`).
    let joined_shm = if cs.namespaces.ipc.is_host() {
        Some(Path::new("/dev/shm"))
    } else {
        h.shm.as_deref()
    };
    if let Some(shm) = joined_shm {
        mounts.push(json!({"destination": "/dev/shm", "type": "bind", "source": shm, "options": ["rbind", "nosuid", "noexec", "nodev", "rprivate"]}));
    } else {
        let shm = cs.storage.shm_size.unwrap_or(64 << 20);
        mounts.push(json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}));
    }
    let mut seen: Vec<String> = Vec::new();
    // The root's propagation follows the binds' (as Docker's): a shared
    // bind needs a shared root to reach the host, a slave one a slave root.
    let mut root_propagation: Option<&str> = None;
    for (dest, host) in &h.files {
        let d = container_path(dest, "files")?;
        mounts.push(json!({"destination": d, "type": "bind", "source": host, "options": ["rbind", "rprivate"]}));
    }
    for m in &h.mounts {
        let d = container_path(&m.destination, "--volume/--mount")?;
        if d == "/" {
            return Err(option(
                "--volume/--mount",
                "cannot mount over the container's /",
            ));
        }
        if seen.contains(&d) {
            return Err(option("--volume/--mount", format!("{d} is mounted twice")));
        }
        seen.push(d.clone());
        // A user mount replaces a default one at the same place (e.g. /dev/shm).
        mounts.retain(|x| x["destination"] != d.as_str());
        let ro = if m.readonly { "ro" } else { "rw" };
        mounts.push(match &m.kind {
            MountKind::Bind {
                source,
                propagation,
                volume,
            } => {
                if !source.is_absolute() {
                    return Err(option("--volume/--mount", format!("{} is not an absolute host path", source.display())));
                }
                let p = propagation.as_deref().unwrap_or("rprivate");
                match p {
                    "shared" | "rshared" => root_propagation = Some("shared"),
                    "slave" | "rslave" if root_propagation.is_none() => root_propagation = Some("rslave"),
                    "private" | "rprivate" | "slave" | "rslave" => {}
                    _ => return Err(option("--volume/--mount", format!("{d}: propagation {p:?} is not one of private, rprivate, shared, rshared, slave, rslave"))),
                }
                if cs.namespaces.user_maps.is_some() && *volume {
                    // The container's maps on its volume: the files show
                    // as the container's same ids, as the root's do.
                    json!({"destination": d, "type": "bind", "source": source, "options": ["rbind", p, ro, "idmap"]})
                } else {
                    json!({"destination": d, "type": "bind", "source": source, "options": ["rbind", p, ro]})
                }
            }
            MountKind::Tmpfs { size, mode, flags } => {
                let mut opts: Vec<String> = ["noexec", "nosuid", "nodev"]
                    .into_iter()
                    .filter(|f| !flags.iter().any(|g| g.trim_start_matches("no") == &f[2..]))
                    .map(String::from)
                    .collect();
                for f in flags {
                    // Checked by validate; the resolved mount again, as
                    // the option text goes to mount(2).
                    if !matches!(f.as_str(), "exec" | "noexec" | "suid" | "nosuid" | "dev" | "nodev") {
                        return Err(option("--tmpfs", format!("{d}: unknown flag {f:?}")));
                    }
                    opts.push(f.clone());
                }
                opts.push(ro.to_string());
                if let Some(s) = size {
                    opts.push(format!("size={s}"));
                }
                opts.push(format!("mode={:o}", mode.unwrap_or(0o1777)));
                json!({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": opts})
            }
        });
    }
    if let Some(init) = &h.init {
        mounts.push(json!({"destination": INIT_PATH, "type": "bind", "source": init, "options": ["rbind", "ro", "rprivate"]}));
    }
    cdi_mounts(&mut mounts, &h.cdi)?;

    let own = [
        ("pid", !cs.namespaces.pid.is_host()),
        ("ipc", !cs.namespaces.ipc.is_host()),
        ("uts", !cs.namespaces.uts.is_host()),
        ("mount", true),
        ("cgroup", own_cgroup_namespace(cs, h)),
        ("network", !cs.namespaces.net.is_host()),
    ];
    let mut namespaces: Vec<Value> = own
        .iter()
        .filter(|(_, own)| *own)
        .map(|(ns, _)| match (&h.netns, *ns) {
            (Some(p), "network") => json!({"type": ns, "path": p}),
            _ => match h.joined.iter().find(|(t, _)| t == ns) {
                Some((_, p)) => json!({"type": ns, "path": p}),
                None => json!({"type": ns}),
            },
        })
        .collect();
    let user_maps = cs
        .namespaces
        .user_maps
        .as_ref()
        .map(|u| u.oci())
        .transpose()?;
    if user_maps.is_some() {
        namespaces.push(json!({"type": "user"}));
    }
    let mut resources = resources(cs, h);
    let mut rules = device_rules(cs.security.privileged);
    let mut devices = Vec::new();
    for d in &h.devices {
        let path = container_path(&d.path, "--device")?;
        if !matches!(d.kind, 'c' | 'b') {
            return Err(option(
                "--device",
                format!("{path}: not a character or block device"),
            ));
        }
        if !crate::specgen::is_device_access(&d.access) {
            return Err(option(
                "--device",
                format!("{path}: {:?} is not an access mode", d.access),
            ));
        }
        devices.retain(|x: &Value| x["path"] != path.as_str());
        if user_maps.is_some() {
            // No mknod in a user namespace: the node is bound, from its
            // host path (as podman does; the runtime would bind the host's
            // node at the container's path).
            device_bind(&mut mounts, &path, &d.host);
        } else {
            devices.push(json!({"path": path, "type": d.kind.to_string(), "major": d.major, "minor": d.minor, "fileMode": d.mode, "uid": d.uid, "gid": d.gid}));
        }
        if !cs.security.privileged {
            if let Some(r) = rules.as_array_mut() {
                r.push(json!({"allow": true, "type": d.kind.to_string(), "major": d.major, "minor": d.minor, "access": d.access}));
            }
        }
    }
    if !cs.security.privileged {
        if let Some(r) = rules.as_array_mut() {
            for d in &cs.resources.device_cgroup_rules {
                let mut v = json!({"allow": true, "access": d.access});
                if d.kind != 'a' {
                    v["type"] = json!(d.kind.to_string());
                }
                if let Some(m) = d.major {
                    v["major"] = json!(m);
                }
                if let Some(m) = d.minor {
                    v["minor"] = json!(m);
                }
                r.push(v);
            }
        }
    }
    let binds = user_maps.is_some().then_some(&mut mounts);
    cdi_devices(&mut devices, binds, &mut rules, cs, user, &h.cdi)?;
    resources["devices"] = rules;
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": h.cgroups_path,
    });
    if !devices.is_empty() {
        linux["devices"] = json!(devices);
    }
    if let Some((uids, gids)) = user_maps {
        linux["uidMappings"] = json!(uids);
        linux["gidMappings"] = json!(gids);
    }
    if !cs.security.sysctls.is_empty() {
        linux["sysctl"] = json!(cs.security.sysctls);
    }
    if let Some(p) = root_propagation {
        linux["rootfsPropagation"] = json!(p);
    }
    if !cs.security.privileged && !cs.security.unmask {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    let mut converted = None;
    let seccomp = match (&h.seccomp, cs.security.privileged) {
        (_, true) | (Seccomp::Unconfined, _) => None,
        (Seccomp::Converted(raw), _) => {
            converted = Some(&**raw);
            None
        }
        (Seccomp::Default { profile, kernel }, _) | (Seccomp::File { profile, kernel }, _) => {
            Some(seccomp_object(profile, &caps, *kernel)?)
        }
    };
    if let Some(s) = seccomp {
        linux["seccomp"] = s;
    }
    // 1.0.2: the version every runtime berth drives accepts (crun before
    // 1.9 refuses any ociVersion without "1.0" in it; runc and berth-runtime
    // take any 1.x). The fields of later versions are read all the same.
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": cs.process.tty,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": rlimits,
            "noNewPrivileges": cs.security.no_new_privileges,
        },
        "root": {"path": h.rootfs, "readonly": cs.storage.read_only},
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations(cs),
    });
    if let Some(adj) = cs.resources.oom_score_adj {
        spec["process"]["oomScoreAdj"] = json!(adj);
    }
    cdi_process(&mut spec, &h.cdi)?;
    // The host's UTS namespace: its name stays the host's; a joined one
    // keeps its owner's name.
    if !cs.namespaces.uts.is_host() && !h.joined.iter().any(|(t, _)| *t == "uts") {
        spec["hostname"] = json!(h.hostname);
        if let Some(d) = &cs.network.domainname {
            spec["domainname"] = json!(d);
        }
    }
    Ok((spec, converted))
}

// ---- CDI devices' edits (`Resolved::cdi`), as the CDI library makes them. ----

/// The CDI edits' variables: a key already set is replaced.
fn cdi_env(env: &mut Vec<String>, e: &crate::cdi::Edits) -> Result<()> {
    for kv in &e.env {
        let k = env_key(kv);
        if k.is_empty() || !kv.contains('=') || kv.contains('\0') {
            return Err(option("CDI env", format!("{kv:?} is not KEY=VALUE")));
        }
        env.retain(|x| env_key(x) != k);
        env.push(kv.clone());
    }
    Ok(())
}

/// The CDI edits' mounts: one replaces a mount at its destination, then
/// every mount is ordered by the depth of its destination (stable), as the
/// CDI library orders them, so a parent is mounted before its children.
fn cdi_mounts(mounts: &mut Vec<Value>, e: &crate::cdi::Edits) -> Result<()> {
    if e.mounts.is_empty() {
        return Ok(());
    }
    for m in &e.mounts {
        let d = container_path(&m.container_path, "CDI mount")?;
        if d == "/" || !m.host_path.starts_with('/') || m.host_path.contains('\0') {
            return Err(option(
                "CDI mount",
                format!(
                    "{} on {}: needs an absolute host path and a container path below /",
                    m.host_path, m.container_path
                ),
            ));
        }
        let mut options = m.options.clone();
        let kind = if m.kind.is_empty() { "bind" } else { &m.kind };
        if kind == "bind" && !options.iter().any(|o| o == "bind" || o == "rbind") {
            options.push("rbind".into());
        }
        mounts.retain(|x| x["destination"] != d.as_str());
        mounts.push(
            json!({"destination": d, "type": kind, "source": m.host_path, "options": options}),
        );
    }
    let depth = |m: &Value| {
        m["destination"]
            .as_str()
            .map_or(0, |d| d.split('/').filter(|c| !c.is_empty()).count())
    };
    mounts.sort_by_key(depth);
    Ok(())
}

/// A device node bound from `host` at `path` (a container with a user
/// namespace, where nodes cannot be made).
fn device_bind(mounts: &mut Vec<Value>, path: &str, host: &str) {
    mounts.retain(|m| m["destination"] != path);
    mounts.push(json!({"destination": path, "type": "bind", "source": host,
        "options": ["bind", "nosuid", "noexec", "rprivate"]}));
}

/// The CDI edits' device nodes (owned by the container's user where the
/// spec gives no owner) and their device cgroup rules. With `binds` (a
/// user namespace) character and block nodes are bound from their host
/// paths into those mounts instead.
fn cdi_devices(
    devices: &mut Vec<Value>,
    binds: Option<&mut Vec<Value>>,
    rules: &mut Value,
    cs: &ContainerSpec,
    user: &User,
    e: &crate::cdi::Edits,
) -> Result<()> {
    let mut binds = binds;
    for n in &e.device_nodes {
        let path = container_path(&n.path, "CDI device node")?;
        if !matches!(n.kind, 'c' | 'b' | 'p') {
            return Err(option(
                "CDI device node",
                format!("{path}: type {:?} is not c, b or p", n.kind),
            ));
        }
        if !n.access.is_empty() && !crate::specgen::is_device_access(&n.access) {
            return Err(option(
                "CDI device node",
                format!("{path}: {:?} is not an access mode", n.access),
            ));
        }
        devices.retain(|x: &Value| x["path"] != path.as_str());
        match binds.as_deref_mut() {
            Some(mounts) if n.kind != 'p' => device_bind(mounts, &path, &n.host_path),
            _ => {
                let mut d = json!({"path": path, "type": n.kind.to_string(), "major": n.major, "minor": n.minor,
                    "uid": n.uid.unwrap_or(user.uid), "gid": n.gid.unwrap_or(user.gid)});
                if let Some(m) = n.file_mode {
                    d["fileMode"] = json!(m);
                }
                devices.push(d);
            }
        }
        if !cs.security.privileged && n.kind != 'p' && !n.access.is_empty() {
            if let Some(r) = rules.as_array_mut() {
                r.push(json!({"allow": true, "type": n.kind.to_string(), "major": n.major, "minor": n.minor, "access": n.access}));
            }
        }
    }
    Ok(())
}

/// The CDI edits' hooks and additional groups.
fn cdi_process(spec: &mut Value, e: &crate::cdi::Edits) -> Result<()> {
    use crate::cdi::HookStage as S;
    for h in &e.hooks {
        if !h.path.starts_with('/') || h.path.contains('\0') {
            return Err(option(
                "CDI hook",
                format!("{:?} is not an absolute path", h.path),
            ));
        }
        let stage = match h.stage {
            S::Prestart => "prestart",
            S::CreateRuntime => "createRuntime",
            S::CreateContainer => "createContainer",
            S::StartContainer => "startContainer",
            S::Poststart => "poststart",
            S::Poststop => "poststop",
        };
        let mut v = json!({"path": h.path});
        if !h.args.is_empty() {
            v["args"] = json!(h.args);
        }
        if !h.env.is_empty() {
            v["env"] = json!(h.env);
        }
        if let Some(t) = h.timeout {
            v["timeout"] = json!(t);
        }
        match spec["hooks"][stage].as_array_mut() {
            Some(a) => a.push(v),
            None => spec["hooks"][stage] = json!([v]),
        }
    }
    if let Some(gids) = spec["process"]["user"]["additionalGids"].as_array_mut() {
        for g in &e.additional_gids {
            if !gids.iter().any(|x| x == g) {
                gids.push(json!(g));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
