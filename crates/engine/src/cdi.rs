//! CDI, the Container Device Interface (github.com/cncf-tags/
//! container-device-interface, SPEC.md): how GPUs and other vendor devices
//! reach containers. A vendor's tool (`nvidia-ctk cdi generate`) writes a
//! spec file, JSON or YAML, into `/etc/cdi` (static) or `/var/run/cdi`
//! (generated at boot); a user names a device by its qualified name
//! `vendor.com/class=name` (`--device nvidia.com/gpu=0`), and the engine
//! applies the edits the spec gives for it: environment, device nodes,
//! mounts, hooks, additional groups.
//!
//! This module loads the spec files of a list of directories (a parameter,
//! so that tests use temporary ones; [`DEFAULT_DIRS`] otherwise; a device
//! of a later directory replaces one of the same name in an earlier one,
//! two of one directory conflict), validates them (a hostile or broken
//! file is an error naming the file and the field, never a panic, and
//! does not hide the devices of other files), and resolves requested names
//! (and `=all`) into [`Edits`], plain serde types the container spec
//! takes. Spec versions 0.3.0 to 1.1.0 are read; `intelRdt` is ignored
//! (with a note in the edits) and `netDevices` refused when requested.
//! [`gpus`] maps Docker's `--gpus` values onto NVIDIA's CDI names.
//!
//! YAML is read by `yaml_serde`, the YAML organization's maintained fork
//! of serde_yaml (archived in 2024): the same serde model and errors with
//! field paths as JSON, a bounded recursion depth and alias expansion (no
//! "billion laughs"), MSRV below ours, and only small dependencies
//! (libyaml-rs, indexmap). serde_yaml_ng and serde_norway are the same
//! code with fewer releases since; serde-saphyr needs a newer Rust; saphyr
//! and yaml-rust2 have no serde layer and expand aliases without bound.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where spec files are looked for, in order of precedence (later wins).
pub const DEFAULT_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

/// The variable that replaces [`DEFAULT_DIRS`]: directories separated by
/// colons, later ones taking precedence (for tests, and hosts that keep
/// their specs elsewhere).
pub const DIRS_ENV: &str = "BERTH_CDI_SPEC_DIRS";

/// The directories the engine reads: [`DIRS_ENV`]'s when set (empty
/// entries skipped), else [`DEFAULT_DIRS`].
pub fn spec_dirs() -> Vec<PathBuf> {
    match std::env::var_os(DIRS_ENV) {
        Some(v) => std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => DEFAULT_DIRS.iter().map(PathBuf::from).collect(),
    }
}

/// The largest spec file read (nvidia-ctk's for 8 GPUs with MIG devices
/// is about 100 KiB).
pub const MAX_SPEC_BYTES: u64 = 4 << 20;
/// The most spec files read from one directory.
pub const MAX_SPEC_FILES: usize = 256;
/// The most devices one spec file may define.
pub const MAX_DEVICES: usize = 4096;

/// The spec versions this module reads, oldest first.
const VERSIONS: [&str; 8] = [
    "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0",
];

/// What went wrong, naming the file and field, or the device.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CDI spec {}: {msg}", file.display())]
    Spec { file: PathBuf, msg: String },
    #[error("CDI spec {}: {field}: {msg}", file.display())]
    Field {
        file: PathBuf,
        field: String,
        msg: String,
    },
    #[error("CDI spec directory {}: {msg}", dir.display())]
    Dir { dir: PathBuf, msg: String },
    /// A name that is not `vendor.com/class=name`.
    #[error("invalid CDI device name {name:?}: {msg}")]
    Name { name: String, msg: String },
    #[error("CDI device {name} not found: {msg}")]
    Unknown { name: String, msg: String },
    /// Two spec files of one directory define the device.
    #[error("CDI device {name} is defined by both {} and {}; remove one", a.display(), b.display())]
    Conflict {
        name: String,
        a: PathBuf,
        b: PathBuf,
    },
    /// A device node of the spec that the host does not have (or that is
    /// not a device node), or an edit berth cannot make.
    #[error("CDI device {name}: {msg}")]
    Device { name: String, msg: String },
    /// A `--gpus` value berth cannot read or map.
    #[error("--gpus {value:?}: {msg}")]
    Gpus { value: String, msg: String },
}

pub type Result<T> = std::result::Result<T, Error>;

// ---- The files, as the spec defines them (unknown fields refused). ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SpecFile {
    cdi_version: String,
    kind: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    devices: Vec<DeviceFile>,
    #[serde(default)]
    container_edits: EditsFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeviceFile {
    name: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    container_edits: EditsFile,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EditsFile {
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    device_nodes: Vec<DeviceNodeFile>,
    #[serde(default)]
    net_devices: Vec<NetDeviceFile>,
    #[serde(default)]
    hooks: Vec<HookFile>,
    #[serde(default)]
    mounts: Vec<MountFile>,
    #[serde(default)]
    intel_rdt: Option<IntelRdtFile>,
    #[serde(default)]
    additional_gids: Vec<u32>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeviceNodeFile {
    path: String,
    #[serde(default)]
    host_path: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    major: i64,
    #[serde(default)]
    minor: i64,
    #[serde(default)]
    file_mode: Option<u32>,
    #[serde(default)]
    permissions: String,
    #[serde(default)]
    uid: Option<u32>,
    #[serde(default)]
    gid: Option<u32>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NetDeviceFile {
    host_interface_name: String,
    name: String,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HookFile {
    hook_name: String,
    path: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    timeout: Option<i64>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MountFile {
    host_path: String,
    container_path: String,
    #[serde(default)]
    options: Vec<String>,
    #[serde(default, rename = "type")]
    kind: String,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // read to validate the file; berth ignores it
struct IntelRdtFile {
    #[serde(default, rename = "closID")]
    clos_id: String,
    #[serde(default)]
    l3_cache_schema: String,
    #[serde(default)]
    mem_bw_schema: String,
    #[serde(default)]
    schemata: Option<Vec<String>>,
    #[serde(default)]
    enable_monitoring: bool,
}

// ---- What a resolved request gives the container spec. ----

/// The edits the requested devices make to a container, in the order the
/// specs give them (a spec's own edits before its devices').
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edits {
    /// The requested devices, qualified (`all` expanded where the spec
    /// has no device of that name).
    pub devices: Vec<String>,
    /// `NAME=value`, appended to the container's environment.
    pub env: Vec<String>,
    /// Device nodes (one per container path: a later one replaces).
    pub device_nodes: Vec<DeviceNode>,
    /// Mounts (one per container path: a later one replaces).
    pub mounts: Vec<Mount>,
    pub hooks: Vec<Hook>,
    /// Supplementary groups for the container's process (0 left out).
    pub additional_gids: Vec<u32>,
    /// What berth read and ignored (for a warning), e.g. `intelRdt`.
    pub notes: Vec<String>,
}

/// A device node to create in the container, with its cgroup access.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// Where it appears in the container (absolute).
    pub path: String,
    /// The node on the host it stands for (absolute).
    pub host_path: String,
    /// `c` (character), `b` (block) or `p` (fifo).
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    /// Permission bits (from the spec, else the host node's).
    pub file_mode: Option<u32>,
    /// Owner in the container (none: the container process's user).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The device cgroup access: some of r, w, m (empty: none; for
    /// `c` and `b` nodes only).
    pub access: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    /// The filesystem type (empty: a bind mount, as the options say).
    #[serde(rename = "type")]
    pub kind: String,
    pub options: Vec<String>,
}

/// When an OCI hook runs (the runtime spec's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HookStage {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookStage {
    fn parse(s: &str) -> Option<HookStage> {
        Some(match s {
            "prestart" => HookStage::Prestart,
            "createRuntime" => HookStage::CreateRuntime,
            "createContainer" => HookStage::CreateContainer,
            "startContainer" => HookStage::StartContainer,
            "poststart" => HookStage::Poststart,
            "poststop" => HookStage::Poststop,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub stage: HookStage,
    pub path: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Seconds (none: no limit).
    pub timeout: Option<u32>,
}

// ---- Names. ----

/// Splits a qualified device name `vendor.com/class=name`, validating each
/// part as the CDI parser does (`name` may also be `all`).
pub fn parse_qualified(name: &str) -> Result<(&str, &str, &str)> {
    let bad = |msg: String| Error::Name {
        name: name.to_string(),
        msg,
    };
    let (kind, dev) = name
        .split_once('=')
        .ok_or_else(|| bad("expected vendor.com/class=name".into()))?;
    let (vendor, class) = split_kind(kind).map_err(bad)?;
    check_device_name(dev).map_err(bad)?;
    Ok((vendor, class, dev))
}

/// Whether `--device` names a CDI device rather than a host path.
pub fn is_qualified(name: &str) -> bool {
    !name.starts_with('/') && parse_qualified(name).is_ok()
}

/// `vendor/class`, each part checked.
fn split_kind(kind: &str) -> std::result::Result<(&str, &str), String> {
    let (vendor, class) = kind
        .split_once('/')
        .ok_or_else(|| format!("kind {kind:?} is not vendor/class"))?;
    check_vendor_or_class("vendor", vendor, 253)?;
    check_vendor_or_class("class", class, 63)?;
    Ok((vendor, class))
}

/// A letter first, letters, digits, `_`, `-`, `.` between, a letter or
/// digit last; at most `max` bytes.
fn check_vendor_or_class(what: &str, s: &str, max: usize) -> std::result::Result<(), String> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(format!("empty {what}"));
    }
    if b.len() > max {
        return Err(format!("{what} longer than {max} characters"));
    }
    if !b[0].is_ascii_alphabetic() {
        return Err(format!("{what} {s:?} must start with a letter"));
    }
    if !b[b.len() - 1].is_ascii_alphanumeric() {
        return Err(format!("{what} {s:?} must end with a letter or digit"));
    }
    if let Some(c) = b
        .iter()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')))
    {
        return Err(format!(
            "{what} {s:?} has {:?} (letters, digits, _ - . only)",
            *c as char
        ));
    }
    Ok(())
}

/// A device name: a letter or digit first and last, letters, digits,
/// `_`, `-`, `.`, `:` between; at most 253 bytes.
fn check_device_name(s: &str) -> std::result::Result<(), String> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err("empty device name".into());
    }
    if b.len() > 253 {
        return Err("device name longer than 253 characters".into());
    }
    if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return Err(format!(
            "device name {s:?} must start and end with a letter or digit"
        ));
    }
    if let Some(c) = b
        .iter()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':')))
    {
        return Err(format!(
            "device name {s:?} has {:?} (letters, digits, _ - . : only)",
            *c as char
        ));
    }
    Ok(())
}

// ---- One spec file. ----

/// A validated spec file.
struct Spec {
    path: PathBuf,
    vendor: String,
    class: String,
    edits: EditsFile,
    /// Device name -> its own edits.
    devices: BTreeMap<String, EditsFile>,
}

/// Reads and validates one spec file (`.json`, or YAML otherwise).
fn load_spec(path: &Path) -> Result<Spec> {
    let spec_err = |msg: String| Error::Spec {
        file: path.to_path_buf(),
        msg,
    };
    // Non-blocking: a fifo named *.json must not hang the engine; only a
    // regular file is read, and only up to the bound.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| spec_err(format!("open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| spec_err(format!("stat: {e}")))?;
    if !meta.is_file() {
        return Err(spec_err("not a regular file".into()));
    }
    let mut data = Vec::new();
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| spec_err(format!("read: {e}")))?;
    if data.len() as u64 > MAX_SPEC_BYTES {
        return Err(spec_err(format!(
            "larger than {} MiB",
            MAX_SPEC_BYTES >> 20
        )));
    }
    let raw: SpecFile = if path.extension().is_some_and(|e| e == "json") {
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&data)).map_err(
            |e| {
                let field = e.path().to_string();
                Error::Field {
                    file: path.to_path_buf(),
                    field,
                    msg: e.into_inner().to_string(),
                }
            },
        )?
    } else {
        // yaml_serde's message names the field path and the line.
        yaml_serde::from_slice(&data).map_err(|e| spec_err(e.to_string()))?
    };
    validate(path, raw)
}

/// The checks of one parsed file; an error names the field.
fn validate(path: &Path, raw: SpecFile) -> Result<Spec> {
    let field = |field: String, msg: String| Error::Field {
        file: path.to_path_buf(),
        field,
        msg,
    };
    let version = raw
        .cdi_version
        .strip_prefix('v')
        .unwrap_or(&raw.cdi_version);
    let Some(have) = VERSIONS.iter().position(|v| *v == version) else {
        return Err(field(
            "cdiVersion".into(),
            format!(
                "{:?} is not a CDI version berth reads ({} to {})",
                raw.cdi_version,
                VERSIONS[0],
                VERSIONS[VERSIONS.len() - 1]
            ),
        ));
    };
    let (vendor, class) = split_kind(&raw.kind).map_err(|m| field("kind".into(), m))?;
    let (vendor, class) = (vendor.to_string(), class.to_string());
    if let Some((need, why)) = required_version(&raw) {
        let need_at = VERSIONS.iter().position(|v| *v == need).unwrap_or(0);
        if need_at > have {
            return Err(field(
                "cdiVersion".into(),
                format!("{why} needs CDI {need} or later, the file says {version}"),
            ));
        }
    }
    check_edits(&raw.container_edits, "containerEdits").map_err(|(f, m)| field(f, m))?;
    if raw.devices.is_empty() {
        return Err(field("devices".into(), "no devices".into()));
    }
    if raw.devices.len() > MAX_DEVICES {
        return Err(field(
            "devices".into(),
            format!("more than {MAX_DEVICES} devices"),
        ));
    }
    let mut devices = BTreeMap::new();
    for (i, d) in raw.devices.into_iter().enumerate() {
        let at = format!("devices[{i}]");
        check_device_name(&d.name).map_err(|m| field(format!("{at}.name"), m))?;
        check_edits(&d.container_edits, &format!("{at}.containerEdits"))
            .map_err(|(f, m)| field(f, m))?;
        if devices.insert(d.name.clone(), d.container_edits).is_some() {
            return Err(field(
                format!("{at}.name"),
                format!("device {:?} is defined twice", d.name),
            ));
        }
    }
    Ok(Spec {
        path: path.to_path_buf(),
        vendor,
        class,
        edits: raw.container_edits,
        devices,
    })
}

/// The version a file's fields need (as the CDI library's
/// `MinimumRequiredVersion`), and the field that needs it.
fn required_version(raw: &SpecFile) -> Option<(&'static str, &'static str)> {
    let all_edits = || {
        std::iter::once(&raw.container_edits).chain(raw.devices.iter().map(|d| &d.container_edits))
    };
    if all_edits().any(|e| {
        !e.net_devices.is_empty()
            || e.intel_rdt
                .as_ref()
                .is_some_and(|r| r.schemata.is_some() || r.enable_monitoring)
    }) {
        return Some(("1.1.0", "netDevices or intelRdt.schemata/enableMonitoring"));
    }
    if all_edits().any(|e| e.intel_rdt.is_some() || !e.additional_gids.is_empty()) {
        return Some(("0.7.0", "intelRdt or additionalGids"));
    }
    if !raw.annotations.is_empty() || raw.devices.iter().any(|d| !d.annotations.is_empty()) {
        return Some(("0.6.0", "annotations"));
    }
    if raw
        .kind
        .split_once('/')
        .is_some_and(|(_, c)| c.contains('.'))
    {
        return Some(("0.6.0", "a dot in the class of kind"));
    }
    if raw
        .devices
        .iter()
        .any(|d| d.name.as_bytes().first().is_some_and(u8::is_ascii_digit))
        || all_edits().any(|e| e.device_nodes.iter().any(|n| !n.host_path.is_empty()))
    {
        return Some((
            "0.5.0",
            "a device name starting with a digit or deviceNodes.hostPath",
        ));
    }
    if all_edits().any(|e| e.mounts.iter().any(|m| !m.kind.is_empty())) {
        return Some(("0.4.0", "mounts.type"));
    }
    None
}

/// An absolute path without NUL or `..` components.
fn check_path(p: &str) -> std::result::Result<(), String> {
    if p.contains('\0') {
        return Err("has a NUL byte".into());
    }
    if !p.starts_with('/') {
        return Err(format!("{p:?} is not an absolute path"));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(format!("{p:?} has a '..' component"));
    }
    Ok(())
}

fn check_env(env: &[String], at: &str) -> std::result::Result<(), (String, String)> {
    for (i, v) in env.iter().enumerate() {
        let f = || format!("{at}[{i}]");
        if v.contains('\0') {
            return Err((f(), "has a NUL byte".into()));
        }
        if v.find('=').is_none_or(|n| n == 0) {
            return Err((f(), format!("{v:?} is not NAME=value")));
        }
    }
    Ok(())
}

fn check_strings(list: &[String], at: &str) -> std::result::Result<(), (String, String)> {
    match list.iter().position(|s| s.contains('\0')) {
        Some(i) => Err((format!("{at}[{i}]"), "has a NUL byte".into())),
        None => Ok(()),
    }
}

/// The checks of one `containerEdits`; the error is (field, message).
fn check_edits(e: &EditsFile, at: &str) -> std::result::Result<(), (String, String)> {
    check_env(&e.env, &format!("{at}.env"))?;
    for (i, n) in e.device_nodes.iter().enumerate() {
        let f = |name: &str| format!("{at}.deviceNodes[{i}].{name}");
        check_path(&n.path).map_err(|m| (f("path"), m))?;
        if !n.host_path.is_empty() {
            check_path(&n.host_path).map_err(|m| (f("hostPath"), m))?;
        }
        if !matches!(n.kind.as_str(), "" | "b" | "c" | "u" | "p") {
            return Err((f("type"), format!("{:?} is not b, c, u or p", n.kind)));
        }
        if !(0..=i64::from(u32::MAX)).contains(&n.major) {
            return Err((f("major"), format!("{} is out of range", n.major)));
        }
        if !(0..=i64::from(u32::MAX)).contains(&n.minor) {
            return Err((f("minor"), format!("{} is out of range", n.minor)));
        }
        if n.file_mode.is_some_and(|m| m & !0o7777 != 0) {
            return Err((f("fileMode"), "has bits other than permissions".into()));
        }
        if !(n.permissions.is_empty()
            || n.permissions == "none"
            || n.permissions
                .bytes()
                .all(|c| matches!(c, b'r' | b'w' | b'm')))
        {
            return Err((
                f("permissions"),
                format!("{:?} is not some of r, w, m (or none)", n.permissions),
            ));
        }
    }
    for (i, m) in e.mounts.iter().enumerate() {
        let f = |name: &str| format!("{at}.mounts[{i}].{name}");
        check_path(&m.host_path).map_err(|msg| (f("hostPath"), msg))?;
        check_path(&m.container_path).map_err(|msg| (f("containerPath"), msg))?;
        check_strings(&m.options, &f("options"))?;
        if m.kind.contains('\0') {
            return Err((f("type"), "has a NUL byte".into()));
        }
    }
    for (i, h) in e.hooks.iter().enumerate() {
        let f = |name: &str| format!("{at}.hooks[{i}].{name}");
        if HookStage::parse(&h.hook_name).is_none() {
            return Err((
                f("hookName"),
                format!(
                    "{:?} is not an OCI hook (prestart, createRuntime, createContainer, startContainer, poststart, poststop)",
                    h.hook_name
                ),
            ));
        }
        check_path(&h.path).map_err(|m| (f("path"), m))?;
        check_strings(&h.args, &f("args"))?;
        check_env(&h.env, &f("env"))?;
        if h.timeout.is_some_and(|t| t <= 0 || t > i64::from(u32::MAX)) {
            return Err((f("timeout"), "must be a positive number of seconds".into()));
        }
    }
    for (i, d) in e.net_devices.iter().enumerate() {
        if d.host_interface_name.is_empty() || d.name.is_empty() {
            return Err((
                format!("{at}.netDevices[{i}]"),
                "empty interface name".into(),
            ));
        }
    }
    if let Some(r) = &e.intel_rdt {
        let c = &r.clos_id;
        if c != "/" && (c.len() >= 4096 || c == "." || c == ".." || c.contains(['/', '\n', '\0'])) {
            return Err((format!("{at}.intelRdt.closID"), format!("{c:?} is invalid")));
        }
    }
    Ok(())
}

// ---- The registry of the directories' devices. ----

/// The devices of the spec files in a list of directories.
pub struct Registry {
    dirs: Vec<PathBuf>,
    specs: Vec<Spec>,
    /// Qualified name -> (index in `specs`, directory's precedence).
    devices: BTreeMap<String, (usize, usize)>,
    /// Devices two files of one directory define.
    conflicts: BTreeMap<String, (PathBuf, PathBuf)>,
    /// Files (and directories) that could not be read.
    errors: Vec<Error>,
}

impl Registry {
    /// Reads the spec files (`*.json` and `*.yaml`, as the CDI library
    /// does; in name order) of `dirs`, later directories taking
    /// precedence. Missing
    /// directories are skipped; files that fail are set aside
    /// ([`Registry::errors`]) and the others still count.
    pub fn load<P: AsRef<Path>>(dirs: &[P]) -> Registry {
        let mut r = Registry {
            dirs: dirs.iter().map(|d| d.as_ref().to_path_buf()).collect(),
            specs: Vec::new(),
            devices: BTreeMap::new(),
            conflicts: BTreeMap::new(),
            errors: Vec::new(),
        };
        for (prio, dir) in r.dirs.clone().iter().enumerate() {
            let entries = match std::fs::read_dir(dir) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    r.errors.push(Error::Dir {
                        dir: dir.clone(),
                        msg: format!("read: {e}"),
                    });
                    continue;
                }
            };
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "yaml"))
                .collect();
            files.sort();
            if files.len() > MAX_SPEC_FILES {
                r.errors.push(Error::Dir {
                    dir: dir.clone(),
                    msg: format!(
                        "more than {MAX_SPEC_FILES} spec files; only the first {MAX_SPEC_FILES} by name are read"
                    ),
                });
                files.truncate(MAX_SPEC_FILES);
            }
            for path in files {
                // A directory named like a spec is not one.
                if path.is_dir() {
                    continue;
                }
                match load_spec(&path) {
                    Ok(spec) => r.add(spec, prio),
                    Err(e) => r.errors.push(e),
                }
            }
        }
        for name in r.conflicts.keys() {
            r.devices.remove(name);
        }
        r
    }

    fn add(&mut self, spec: Spec, prio: usize) {
        let idx = self.specs.len();
        for dev in spec.devices.keys() {
            let name = format!("{}/{}={dev}", spec.vendor, spec.class);
            match self.devices.get(&name) {
                Some(&(other, p)) if p == prio => {
                    self.conflicts
                        .insert(name, (self.specs[other].path.clone(), spec.path.clone()));
                }
                // Of an earlier directory, or none: this one wins (and
                // settles a conflict there).
                _ => {
                    self.conflicts.remove(&name);
                    self.devices.insert(name, (idx, prio));
                }
            }
        }
        self.specs.push(spec);
    }

    /// The files and directories that could not be read, each error
    /// naming one (for a warning: the others' devices are usable).
    pub fn errors(&self) -> &[Error] {
        &self.errors
    }

    /// The qualified names of the usable devices, sorted.
    pub fn devices(&self) -> Vec<String> {
        self.devices.keys().cloned().collect()
    }

    /// The edits for `names` (qualified: `vendor.com/class=name`, or
    /// `=all`), the host's device nodes looked up where the spec leaves
    /// out their type or numbers.
    pub fn resolve<S: AsRef<str>>(&self, names: &[S]) -> Result<Edits> {
        let mut wanted: Vec<String> = Vec::new();
        for n in names {
            for q in self.expand(n.as_ref())? {
                if !wanted.contains(&q) {
                    wanted.push(q);
                }
            }
        }
        let mut out = Edits::default();
        let mut specs_done = BTreeSet::new();
        for name in &wanted {
            // `expand` gave only names of `devices`, of their specs.
            let dev = name.rsplit_once('=').map_or("", |(_, d)| d);
            let found = self.devices.get(name).and_then(|&(idx, _)| {
                let spec = self.specs.get(idx)?;
                Some((idx, spec, spec.devices.get(dev)?))
            });
            let Some((idx, spec, edits)) = found else {
                return Err(Error::Unknown {
                    name: name.clone(),
                    msg: "not in the loaded specs".into(),
                });
            };
            if specs_done.insert(idx) {
                apply(&mut out, &spec.edits, name)?;
            }
            apply(&mut out, edits, name)?;
        }
        out.devices = wanted;
        Ok(out)
    }

    /// The qualified names `name` stands for: itself, or for `=all`
    /// without a device of that name, every device of the kind.
    fn expand(&self, name: &str) -> Result<Vec<String>> {
        let (vendor, class, dev) = parse_qualified(name)?;
        if self.devices.contains_key(name) {
            return Ok(vec![name.to_string()]);
        }
        if let Some((a, b)) = self.conflicts.get(name) {
            return Err(Error::Conflict {
                name: name.into(),
                a: a.clone(),
                b: b.clone(),
            });
        }
        let prefix = format!("{vendor}/{class}=");
        let of_kind: Vec<String> = self
            .devices
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        if dev == "all" && !of_kind.is_empty() {
            return Ok(of_kind);
        }
        Err(Error::Unknown {
            name: name.into(),
            msg: self.not_found(&of_kind, &format!("{vendor}/{class}")),
        })
    }

    /// Why a name was not found: what the kind has, where berth looked,
    /// and the files it could not read.
    fn not_found(&self, of_kind: &[String], kind: &str) -> String {
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        let mut msg = if of_kind.is_empty() {
            format!(
                "no CDI spec in {} provides {kind} devices; the vendor's tool writes one (for NVIDIA GPUs: `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`)",
                dirs.join(", ")
            )
        } else {
            let mut list: Vec<&str> = of_kind.iter().map(String::as_str).take(16).collect();
            if of_kind.len() > 16 {
                list.push("...");
            }
            format!("the CDI specs provide {}", list.join(", "))
        };
        if !self.errors.is_empty() {
            let errs: Vec<String> = self.errors.iter().take(4).map(|e| e.to_string()).collect();
            msg.push_str(&format!(
                "; {} spec file(s) could not be read: {}",
                self.errors.len(),
                errs.join("; ")
            ));
        }
        msg
    }
}

/// Adds `e`'s edits (for device `name`) to `out`.
fn apply(out: &mut Edits, e: &EditsFile, name: &str) -> Result<()> {
    let dev_err = |msg: String| Error::Device {
        name: name.into(),
        msg,
    };
    out.env.extend(e.env.iter().cloned());
    for n in &e.device_nodes {
        let node = device_node(n).map_err(dev_err)?;
        out.device_nodes.retain(|d| d.path != node.path);
        out.device_nodes.push(node);
    }
    for m in &e.mounts {
        out.mounts.retain(|x| x.container_path != m.container_path);
        out.mounts.push(Mount {
            host_path: m.host_path.clone(),
            container_path: m.container_path.clone(),
            kind: m.kind.clone(),
            options: m.options.clone(),
        });
    }
    for h in &e.hooks {
        out.hooks.push(Hook {
            // Checked when the file was loaded.
            stage: HookStage::parse(&h.hook_name).unwrap_or(HookStage::CreateContainer),
            path: h.path.clone(),
            args: h.args.clone(),
            env: h.env.clone(),
            timeout: h.timeout.and_then(|t| u32::try_from(t).ok()),
        });
    }
    for g in e.additional_gids.iter().filter(|g| **g != 0) {
        if !out.additional_gids.contains(g) {
            out.additional_gids.push(*g);
        }
    }
    if e.intel_rdt.is_some() {
        let note = format!("{name}: intelRdt (resctrl) ignored: berth does not set it");
        if !out.notes.contains(&note) {
            out.notes.push(note);
        }
    }
    if !e.net_devices.is_empty() {
        return Err(dev_err(
            "netDevices: berth cannot move host network interfaces into containers".into(),
        ));
    }
    Ok(())
}

/// A spec's device node completed from the host node where the spec
/// leaves out its type or numbers (as the CDI library does: lstat of the
/// host path; a node the spec fully describes need not exist yet).
fn device_node(n: &DeviceNodeFile) -> std::result::Result<DeviceNode, String> {
    let host_path = if n.host_path.is_empty() {
        n.path.clone()
    } else {
        n.host_path.clone()
    };
    let kind = match n.kind.as_str() {
        "u" => "c",
        k => k,
    };
    let complete = !kind.is_empty() && (n.major != 0 || kind == "p");
    let host = std::fs::symlink_metadata(&host_path).map(|m| {
        let t = m.file_type();
        let k = if t.is_block_device() {
            Some('b')
        } else if t.is_char_device() {
            Some('c')
        } else if t.is_fifo() {
            Some('p')
        } else {
            None
        };
        (k, m.rdev(), m.mode() & 0o7777)
    });
    let (kind, major, minor, file_mode) = match host {
        Ok((Some(hk), rdev, mode)) => {
            let file_mode = n.file_mode.or(Some(mode));
            if complete {
                (
                    kind.chars().next().unwrap_or(hk),
                    n.major as u64,
                    n.minor as u64,
                    file_mode,
                )
            } else {
                if !kind.is_empty() && !kind.starts_with(hk) {
                    return Err(format!(
                        "device node {}: the spec says type {kind}, the host's {host_path} is {hk}",
                        n.path
                    ));
                }
                let (major, minor) = if n.major != 0 {
                    (n.major as u64, n.minor as u64)
                } else {
                    (dev_major(rdev), dev_minor(rdev))
                };
                (hk, major, minor, file_mode)
            }
        }
        _ if complete => (
            kind.chars().next().unwrap_or('c'),
            n.major as u64,
            n.minor as u64,
            n.file_mode,
        ),
        Ok((None, ..)) => {
            return Err(format!(
                "device node {}: the host's {host_path} is not a device node",
                n.path
            ))
        }
        Err(e) => {
            return Err(format!(
                "device node {}: the host's {host_path}: {e} (is the driver loaded?)",
                n.path
            ))
        }
    };
    let access = if kind == 'p' {
        String::new()
    } else {
        match n.permissions.as_str() {
            "" => "rwm".to_string(),
            "none" => String::new(),
            p => p.to_string(),
        }
    };
    Ok(DeviceNode {
        path: n.path.clone(),
        host_path,
        kind,
        major,
        minor,
        file_mode,
        uid: n.uid,
        gid: n.gid,
        access,
    })
}

/// glibc's `gnu_dev_major`.
fn dev_major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// glibc's `gnu_dev_minor`.
fn dev_minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}

// ---- Docker's --gpus. ----

/// The CDI kind NVIDIA's GPUs have (`nvidia-ctk cdi generate`).
pub const NVIDIA_GPU_KIND: &str = "nvidia.com/gpu";

/// The CDI devices a `--gpus` value asks for: `all`, a count (`2`,
/// `count=2`: the GPUs indexed 0 and 1), `device=0,1` or
/// `"device=GPU-<uuid>"` (quoted as Docker's CSV syntax, or not), with
/// `driver=nvidia` and `capabilities=...` accepted (the spec file decides
/// what a container gets). Every name is checked against `registry`.
pub fn gpus(value: &str, registry: &Registry) -> Result<Vec<String>> {
    let bad = |msg: String| Error::Gpus {
        value: value.into(),
        msg,
    };
    let names = gpu_names(value).map_err(bad)?;
    if !registry
        .devices
        .keys()
        .any(|k| k.starts_with(&format!("{NVIDIA_GPU_KIND}=")))
    {
        return Err(bad(registry.not_found(&[], NVIDIA_GPU_KIND)));
    }
    for n in &names {
        registry.expand(n)?;
    }
    Ok(names)
}

/// The names of [`gpus`], before they are looked up.
fn gpu_names(value: &str) -> std::result::Result<Vec<String>, String> {
    let fields = csv_fields(value)?;
    let mut devices: Vec<String> = Vec::new();
    let mut count: Option<Option<u32>> = None; // Some(None): all
                                               // The list a bare field continues (`device=0,1` and
                                               // `capabilities=compute,utility` unquoted): "device" or "capabilities".
    let mut list = "";
    for f in &fields {
        let f = f.trim();
        match f.split_once('=') {
            None if list == "device" => devices.push(f.to_string()),
            None if list == "capabilities" => {}
            None if f == "all" => count = Some(None),
            None => match f.parse::<u32>() {
                Ok(n) => count = Some(Some(n)),
                Err(_) => {
                    return Err(format!(
                    "{f:?} is not all, a count, or key=value (count, device, driver, capabilities)"
                ))
                }
            },
            Some((k, v)) => {
                list = "";
                match k.trim() {
                    "count" if v == "all" || v == "-1" => count = Some(None),
                    "count" => {
                        count = Some(Some(v.parse().map_err(|_| {
                            format!("count={v}: not a number (or all)")
                        })?))
                    }
                    "device" | "devices" => {
                        list = "device";
                        devices.extend(v.split(',').map(|s| s.trim().to_string()));
                    }
                    "driver" if v == "nvidia" || v.is_empty() => {}
                    "driver" => {
                        return Err(format!(
                            "driver {v:?}: only nvidia GPUs map onto CDI here; name other devices with --device vendor.com/class=name"
                        ))
                    }
                    // What a container gets is the CDI spec's to say.
                    "capabilities" => list = "capabilities",
                    "options" => {}
                    _ => return Err(format!("unknown option {k:?}")),
                }
            }
        }
    }
    if count.is_some() && !devices.is_empty() {
        return Err("a count and devices together".into());
    }
    let names: Vec<String> = match count {
        Some(None) => vec!["all".into()],
        Some(Some(0)) => return Err("a count of 0 GPUs".into()),
        Some(Some(n)) => (0..n).map(|i| i.to_string()).collect(),
        None if devices.is_empty() => return Err("no GPUs named".into()),
        None => devices,
    };
    names
        .into_iter()
        .filter(|d| !d.is_empty())
        .map(|d| {
            check_device_name(&d)?;
            Ok(format!("{NVIDIA_GPU_KIND}={d}"))
        })
        .collect()
}

/// Docker's CSV reading of `--gpus`: commas split, double quotes group
/// (`"device=0,1",capabilities=utility`), `""` is a quote.
fn csv_fields(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    out.push(cur);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As `nvidia-ctk cdi generate` writes it for one GPU (abridged: its
    /// libraries are many more mounts of the same form). The nodes of the
    /// test host's /dev stand in where the host is looked up.
    const NVIDIA_YAML: &str = r#"---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: /dev/null
- name: GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: /dev/null
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: /dev/null
containerEdits:
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  deviceNodes:
  - path: /dev/nvidiactl
    type: c
    major: 195
    minor: 255
  - path: /dev/nvidia-uvm
    hostPath: /dev/zero
  hooks:
  - hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
    args:
    - nvidia-cdi-hook
    - create-symlinks
    - --link
    - libcuda.so.1::/usr/lib/x86_64-linux-gnu/libcuda.so
  - hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
    args:
    - nvidia-cdi-hook
    - update-ldcache
    - --folder
    - /usr/lib/x86_64-linux-gnu
  mounts:
  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    options:
    - ro
    - nosuid
    - nodev
    - bind
  - hostPath: /usr/bin/nvidia-smi
    containerPath: /usr/bin/nvidia-smi
    options: [ro, nosuid, nodev, bind]
"#;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    fn json(vendor_class: &str, devices: &[&str], env: &str) -> String {
        let devs: Vec<String> = devices
            .iter()
            .map(|d| format!(r#"{{"name": "{d}", "containerEdits": {{"env": ["{env}_{d}=1"]}}}}"#))
            .collect();
        format!(
            r#"{{"cdiVersion": "0.6.0", "kind": "{vendor_class}", "devices": [{}], "containerEdits": {{"env": ["{env}=1"]}}}}"#,
            devs.join(",")
        )
    }

    #[test]
    fn an_nvidia_ctk_yaml_spec_resolves() {
        let d = dir_with(&[("nvidia.yaml", NVIDIA_YAML)]);
        let r = Registry::load(&[d.path()]);
        assert!(r.errors().is_empty(), "{:?}", r.errors());
        assert_eq!(r.devices().len(), 3);
        let e = r.resolve(&["nvidia.com/gpu=0"]).unwrap();
        assert_eq!(e.devices, ["nvidia.com/gpu=0"]);
        assert_eq!(e.env, ["NVIDIA_VISIBLE_DEVICES=void"]);
        let paths: Vec<&str> = e.device_nodes.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(paths, ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia0"]);
        // Given in full: taken as it is, not looked up.
        assert_eq!(
            (
                e.device_nodes[0].kind,
                e.device_nodes[0].major,
                e.device_nodes[0].minor
            ),
            ('c', 195, 255)
        );
        assert_eq!(e.device_nodes[0].access, "rwm");
        // Looked up on the host: /dev/zero is 1:5, /dev/null 1:3.
        let uvm = &e.device_nodes[1];
        assert_eq!((uvm.kind, uvm.major, uvm.minor), ('c', 1, 5));
        assert_eq!(uvm.host_path, "/dev/zero");
        assert!(uvm.file_mode.is_some());
        let gpu = &e.device_nodes[2];
        assert_eq!((gpu.kind, gpu.major, gpu.minor), ('c', 1, 3));
        assert_eq!(e.hooks.len(), 2);
        assert_eq!(e.hooks[0].stage, HookStage::CreateContainer);
        assert_eq!(e.hooks[1].args[1], "update-ldcache");
        assert_eq!(e.mounts.len(), 2);
        assert_eq!(e.mounts[1].options, ["ro", "nosuid", "nodev", "bind"]);
        assert!(e.notes.is_empty());

        // Two GPUs: the spec's own edits once, one node per path.
        let e = r
            .resolve(&[
                "nvidia.com/gpu=0",
                "nvidia.com/gpu=GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c",
            ])
            .unwrap();
        assert_eq!(e.env.len(), 1);
        assert_eq!(e.hooks.len(), 2);
        assert_eq!(e.device_nodes.len(), 3);
        // The output is plain serde, for the container spec.
        let back: Edits = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn a_json_spec_with_every_edit_resolves() {
        let spec = r#"{
          "cdiVersion": "0.7.0",
          "kind": "vendor.example.com/fpga",
          "annotations": {"owner": "test"},
          "devices": [{
            "name": "card0",
            "annotations": {"slot": "1"},
            "containerEdits": {
              "env": ["FPGA=card0"],
              "deviceNodes": [{"path": "/dev/fpga0", "type": "b", "major": 250, "minor": 1,
                               "fileMode": 432, "permissions": "rw", "uid": 1000, "gid": 1000},
                              {"path": "/dev/fpga-fifo", "type": "p"}],
              "mounts": [{"hostPath": "/opt/fpga", "containerPath": "/opt/fpga", "type": "none",
                          "options": ["rbind", "ro"]}],
              "hooks": [{"hookName": "poststop", "path": "/usr/bin/fpga-reset",
                         "args": ["fpga-reset", "0"], "env": ["A=b"], "timeout": 5}],
              "additionalGids": [0, 44, 44],
              "intelRdt": {"closID": "fpga"}
            }
          }]
        }"#;
        let d = dir_with(&[("fpga.json", spec)]);
        let r = Registry::load(&[d.path()]);
        assert!(r.errors().is_empty(), "{:?}", r.errors());
        let e = r.resolve(&["vendor.example.com/fpga=card0"]).unwrap();
        assert_eq!(e.env, ["FPGA=card0"]);
        let n = &e.device_nodes[0];
        assert_eq!(
            (
                n.kind,
                n.major,
                n.minor,
                n.file_mode,
                n.uid,
                n.access.as_str()
            ),
            ('b', 250, 1, Some(0o660), Some(1000), "rw")
        );
        assert_eq!(n.host_path, "/dev/fpga0");
        assert_eq!(
            (e.device_nodes[1].kind, e.device_nodes[1].access.as_str()),
            ('p', "")
        );
        assert_eq!(e.mounts[0].kind, "none");
        assert_eq!(e.hooks[0].stage, HookStage::Poststop);
        assert_eq!(e.hooks[0].timeout, Some(5));
        assert_eq!(e.additional_gids, [44], "0 left out, once each");
        assert_eq!(e.notes.len(), 1);
        assert!(e.notes[0].contains("intelRdt"), "{:?}", e.notes);
    }

    #[test]
    fn later_directories_win_and_one_directory_conflicts() {
        let etc = dir_with(&[
            ("a.json", &json("acme.com/dev", &["x", "y"], "ETC")),
            ("b.yaml", &json("acme.com/other", &["z"], "B")),
        ]);
        let run = dir_with(&[("a.json", &json("acme.com/dev", &["x"], "RUN"))]);
        let r = Registry::load(&[etc.path(), run.path()]);
        assert!(r.errors().is_empty(), "{:?}", r.errors());
        let e = r.resolve(&["acme.com/dev=x"]).unwrap();
        assert_eq!(e.env, ["RUN=1", "RUN_x=1"]);
        // y is only in the earlier directory: still there.
        let e = r.resolve(&["acme.com/dev=y"]).unwrap();
        assert_eq!(e.env, ["ETC=1", "ETC_y=1"]);
        // Reversed precedence.
        let r = Registry::load(&[run.path(), etc.path()]);
        assert_eq!(r.resolve(&["acme.com/dev=x"]).unwrap().env[0], "ETC=1");

        // Two files of one directory: the device is unusable, both named.
        let both = dir_with(&[
            ("a.json", &json("acme.com/dev", &["x", "w"], "A")),
            ("b.json", &json("acme.com/dev", &["x"], "B")),
        ]);
        let r = Registry::load(&[both.path()]);
        let e = r.resolve(&["acme.com/dev=x"]).unwrap_err().to_string();
        assert!(e.contains("a.json") && e.contains("b.json"), "{e}");
        assert!(r.resolve(&["acme.com/dev=w"]).is_ok());
        // A later directory settles it.
        let r = Registry::load(&[both.path(), run.path()]);
        assert_eq!(r.resolve(&["acme.com/dev=x"]).unwrap().env[0], "RUN=1");
    }

    #[test]
    fn all_is_the_spec_s_device_or_every_device_of_the_kind() {
        let d = dir_with(&[
            ("nvidia.yaml", NVIDIA_YAML),
            ("acme.json", &json("acme.com/dev", &["b", "a"], "ACME")),
        ]);
        let r = Registry::load(&[d.path()]);
        // nvidia-ctk writes a device named all: it is used as it is.
        let e = r.resolve(&["nvidia.com/gpu=all"]).unwrap();
        assert_eq!(e.devices, ["nvidia.com/gpu=all"]);
        // Otherwise all is every device of the kind, in name order.
        let e = r.resolve(&["acme.com/dev=all", "acme.com/dev=a"]).unwrap();
        assert_eq!(e.devices, ["acme.com/dev=a", "acme.com/dev=b"]);
        assert_eq!(e.env, ["ACME=1", "ACME_a=1", "ACME_b=1"]);
        let e = r.resolve(&["other.com/dev=all"]).unwrap_err().to_string();
        assert!(e.contains("no CDI spec"), "{e}");
    }

    #[test]
    fn a_missing_device_says_what_there_is_and_what_failed() {
        let d = dir_with(&[
            ("nvidia.yaml", NVIDIA_YAML),
            (
                "broken.json",
                "{\"cdiVersion\": \"0.6.0\", \"kind\": \"x.com/y\"",
            ),
        ]);
        let r = Registry::load(&[d.path(), Path::new("/nonexistent-berth-cdi")]);
        assert_eq!(r.errors().len(), 1);
        let e = r.resolve(&["nvidia.com/gpu=7"]).unwrap_err();
        assert!(matches!(e, Error::Unknown { .. }));
        let e = e.to_string();
        assert!(e.contains("nvidia.com/gpu=7 not found"), "{e}");
        assert!(e.contains("nvidia.com/gpu=0"), "{e}");
        assert!(e.contains("broken.json"), "{e}");
        let e = r.resolve(&["intel.com/gpu=0"]).unwrap_err().to_string();
        assert!(
            e.contains("no CDI spec in") && e.contains("/nonexistent-berth-cdi"),
            "{e}"
        );
        // Not a qualified name at all.
        let e = r.resolve(&["gpu0"]).unwrap_err();
        assert!(matches!(e, Error::Name { .. }), "{e}");
    }

    #[test]
    fn a_host_node_that_is_missing_or_not_a_device_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let plain = d.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let spec = format!(
            "cdiVersion: 0.5.0\nkind: acme.com/dev\ndevices:\n- name: gone\n  containerEdits:\n    deviceNodes:\n    - path: /dev/acme0\n      hostPath: {}/nope\n- name: file\n  containerEdits:\n    deviceNodes:\n    - path: /dev/acme1\n      hostPath: {}\n- name: typed\n  containerEdits:\n    deviceNodes:\n    - path: /dev/acme2\n      hostPath: /dev/null\n      type: b\n",
            d.path().display(),
            plain.display()
        );
        let specs = dir_with(&[("acme.yaml", &spec)]);
        let r = Registry::load(&[specs.path()]);
        assert!(r.errors().is_empty(), "{:?}", r.errors());
        let e = r.resolve(&["acme.com/dev=gone"]).unwrap_err().to_string();
        assert!(e.contains("acme.com/dev=gone") && e.contains("nope"), "{e}");
        let e = r.resolve(&["acme.com/dev=file"]).unwrap_err().to_string();
        assert!(e.contains("not a device node"), "{e}");
        let e = r.resolve(&["acme.com/dev=typed"]).unwrap_err().to_string();
        assert!(e.contains("type b"), "{e}");
    }

    /// Each hostile or broken file: the error names the file and, where
    /// there is one, the field.
    #[test]
    fn hostile_spec_files_are_errors_naming_file_and_field() {
        let node = |path: &str| {
            format!(
                r#"{{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "devices": [{{"name": "d", "containerEdits": {{"deviceNodes": [{{"path": {path}, "type": "c", "major": 1}}]}}}}]}}"#
            )
        };
        let cases: Vec<(&str, String, &str)> = vec![
            ("nul.json", node(r#""/dev/a\u0000b""#), "devices[0].containerEdits.deviceNodes[0].path: has a NUL"),
            ("relative.json", node(r#""dev/a""#), "deviceNodes[0].path: \"dev/a\" is not an absolute path"),
            ("dotdot.json", node(r#""/dev/../etc/shadow""#), "'..'"),
            ("unknown-field.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "devices": [{"name": "d", "containerEdits": {"evil": 1}}]}"#.into(), "devices[0].containerEdits.evil"),
            ("kind.json", r#"{"cdiVersion": "0.5.0", "kind": "acme", "devices": [{"name": "d"}]}"#.into(), "kind: kind \"acme\" is not vendor/class"),
            ("kind2.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev/x", "devices": [{"name": "d"}]}"#.into(), "kind: class \"dev/x\""),
            ("name.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "devices": [{"name": "-d"}]}"#.into(), "devices[0].name"),
            ("dup.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "devices": [{"name": "d"}, {"name": "d"}]}"#.into(), "devices[1].name: device \"d\" is defined twice"),
            ("none.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "devices": []}"#.into(), "devices: no devices"),
            ("version.json", r#"{"cdiVersion": "9.0.0", "kind": "acme.com/dev", "devices": [{"name": "d"}]}"#.into(), "cdiVersion: \"9.0.0\""),
            ("too-new.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "devices": [{"name": "d", "containerEdits": {"additionalGids": [5]}}]}"#.into(), "needs CDI 0.7.0"),
            ("env.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "containerEdits": {"env": ["=x"]}, "devices": [{"name": "d"}]}"#.into(), "containerEdits.env[0]"),
            ("hook.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "devices": [{"name": "d", "containerEdits": {"hooks": [{"hookName": "whenever", "path": "/x"}]}}]}"#.into(), "hooks[0].hookName"),
            ("hook-path.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "devices": [{"name": "d", "containerEdits": {"hooks": [{"hookName": "poststop", "path": "x"}]}}]}"#.into(), "hooks[0].path"),
            ("timeout.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "devices": [{"name": "d", "containerEdits": {"hooks": [{"hookName": "poststop", "path": "/x", "timeout": 0}]}}]}"#.into(), "hooks[0].timeout"),
            ("mount.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "devices": [{"name": "d", "containerEdits": {"mounts": [{"hostPath": "/x", "containerPath": "y"}]}}]}"#.into(), "mounts[0].containerPath"),
            ("perm.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "devices": [{"name": "d", "containerEdits": {"deviceNodes": [{"path": "/dev/x", "permissions": "rwx"}]}}]}"#.into(), "deviceNodes[0].permissions"),
            ("major.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "devices": [{"name": "d", "containerEdits": {"deviceNodes": [{"path": "/dev/x", "major": -1}]}}]}"#.into(), "deviceNodes[0].major"),
            ("type.json", r#"{"cdiVersion": "0.5.0", "kind": "acme.com/dev", "devices": [{"name": "d", "containerEdits": {"deviceNodes": [{"path": "/dev/x", "type": 7}]}}]}"#.into(), "deviceNodes[0].type"),
            ("garbage.json", "\u{0}\u{1}not json".into(), "garbage.json"),
            ("garbage.yaml", "{[: -".into(), "garbage.yaml"),
            ("yaml-field.yaml", "cdiVersion: 0.5.0\nkind: acme.com/dev\ndevices:\n- name: d\n  containerEdits:\n    deviceNodes:\n    - path: 5\n      nope: 1\n".into(), "devices[0].containerEdits.deviceNodes[0]"),
            ("nul.yaml", "cdiVersion: 0.5.0\nkind: acme.com/dev\ndevices:\n- name: d\n  containerEdits:\n    env: [\"A=\\0\"]\n".into(), "devices[0].containerEdits.env[0]: has a NUL"),
        ];
        let d = tempfile::tempdir().unwrap();
        for (name, text, _) in &cases {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        let r = Registry::load(&[d.path()]);
        assert!(r.devices().is_empty(), "{:?}", r.devices());
        let errors: Vec<String> = r.errors().iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), cases.len(), "{errors:#?}");
        for (name, _, want) in &cases {
            let e = errors
                .iter()
                .find(|e| e.contains(&format!("/{name}:")))
                .unwrap_or_else(|| panic!("no error for {name}: {errors:#?}"));
            assert!(e.contains(want), "{name}: {e}");
        }
    }

    #[test]
    fn huge_deep_aliased_and_special_files_are_refused_without_hanging() {
        let d = tempfile::tempdir().unwrap();
        // Larger than the bound (and growing it would not be read).
        let mut big = String::from("{\"cdiVersion\": \"0.5.0\", \"kind\": \"a.com/b\", \"x\": \"");
        big.push_str(&"a".repeat(MAX_SPEC_BYTES as usize));
        big.push_str("\"}");
        std::fs::write(d.path().join("big.json"), big).unwrap();
        // Nesting past the parsers' recursion limits.
        std::fs::write(
            d.path().join("deep.json"),
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        )
        .unwrap();
        std::fs::write(
            d.path().join("deep.yaml"),
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        )
        .unwrap();
        // A billion laughs: aliases that expand exponentially.
        let mut bomb =
            String::from("a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
        for i in 1..12 {
            let p = (b'a' + i - 1) as char;
            let c = (b'a' + i) as char;
            bomb.push_str(&format!(
                "{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
            ));
        }
        bomb.push_str("cdiVersion: 0.5.0\nkind: acme.com/dev\ndevices: [{name: d, containerEdits: {env: *l}}]\n");
        std::fs::write(d.path().join("bomb.yaml"), bomb).unwrap();
        // A fifo (would block a reader) and a directory named like specs.
        let fifo = std::ffi::CString::new(
            d.path()
                .join("fifo.json")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        std::fs::create_dir(d.path().join("dir.json")).unwrap();
        // A link to a device that never ends.
        std::os::unix::fs::symlink("/dev/zero", d.path().join("zero.yaml")).unwrap();

        let start = std::time::Instant::now();
        let r = Registry::load(&[d.path()]);
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        let errors: Vec<String> = r.errors().iter().map(|e| e.to_string()).collect();
        let find = |name: &str| {
            errors
                .iter()
                .find(|e| e.contains(&format!("/{name}:")))
                .unwrap_or_else(|| panic!("no error for {name}: {errors:#?}"))
                .clone()
        };
        assert!(find("big.json").contains("larger than"), "{errors:?}");
        // Refused at the first level that is not the spec's shape (the
        // parsers bound their recursion too).
        find("deep.json");
        find("deep.yaml");
        // Refused before it expands (an unknown field first here; the
        // parser bounds alias expansion too).
        find("bomb.yaml");
        assert!(find("fifo.json").contains("not a regular file"));
        assert!(find("zero.yaml").contains("not a regular file"));
        assert_eq!(errors.len(), 6, "{errors:#?}");
    }

    #[test]
    fn too_many_files_are_an_error_naming_the_directory() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..=MAX_SPEC_FILES {
            std::fs::write(
                d.path().join(format!("s{i:04}.json")),
                json(&format!("acme.com/c{i}"), &["d"], "E"),
            )
            .unwrap();
        }
        let r = Registry::load(&[d.path()]);
        assert_eq!(r.errors().len(), 1);
        let e = r.errors()[0].to_string();
        assert!(
            e.contains(&d.path().display().to_string()) && e.contains("more than 256"),
            "{e}"
        );
        assert_eq!(r.devices().len(), MAX_SPEC_FILES);
    }

    #[test]
    fn qualified_names() {
        assert_eq!(
            parse_qualified("nvidia.com/gpu=0").unwrap(),
            ("nvidia.com", "gpu", "0")
        );
        assert!(is_qualified("vendor.com/class=GPU-4cf8:1"));
        assert!(is_qualified("foo.bar.baz/foo-bar123.B_az=x"));
        for bad in [
            "/dev/nvidia0",
            "gpu",
            "vendor.com/class",
            "vendor.com/=x",
            "/class=x",
            "vendor.com/class/x=y",
            "vendor.com/class=",
            "vendor.com/class=-x",
            "1vendor.com/class=x",
            "vendor.com/class=x y",
            "vendor.com/class=x\0",
        ] {
            assert!(!is_qualified(bad), "{bad}");
        }
    }

    #[test]
    fn gpus_values_map_onto_nvidia_cdi_names() {
        let n = |v: &str| gpu_names(v);
        assert_eq!(n("all").unwrap(), ["nvidia.com/gpu=all"]);
        assert_eq!(n("count=all").unwrap(), ["nvidia.com/gpu=all"]);
        assert_eq!(n("2").unwrap(), ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
        assert_eq!(
            n("count=1,capabilities=utility").unwrap(),
            ["nvidia.com/gpu=0"]
        );
        assert_eq!(
            n("device=0,1").unwrap(),
            ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
        );
        assert_eq!(
            n("\"device=0,2\",capabilities=compute,utility,driver=nvidia").unwrap(),
            ["nvidia.com/gpu=0", "nvidia.com/gpu=2"]
        );
        assert_eq!(
            n("\"device=GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c\"").unwrap(),
            ["nvidia.com/gpu=GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c"]
        );
        for bad in [
            "",
            "0",
            "two",
            "count=x",
            "driver=amd",
            "device=0,count=1",
            "\"device=0",
            "device=a b",
            "bogus=1",
        ] {
            assert!(n(bad).is_err(), "{bad:?}");
        }

        // Checked against the specs there are.
        let d = dir_with(&[("nvidia.yaml", NVIDIA_YAML)]);
        let r = Registry::load(&[d.path()]);
        assert_eq!(gpus("all", &r).unwrap(), ["nvidia.com/gpu=all"]);
        assert_eq!(gpus("1", &r).unwrap(), ["nvidia.com/gpu=0"]);
        let e = gpus("2", &r).unwrap_err().to_string();
        assert!(e.contains("nvidia.com/gpu=1 not found"), "{e}");
        let e = gpus("garbage", &r).unwrap_err().to_string();
        assert!(e.starts_with("--gpus \"garbage\""), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = gpus("all", &Registry::load(&[empty.path()]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no CDI spec") && e.contains("nvidia-ctk cdi generate"),
            "{e}"
        );
    }
}
