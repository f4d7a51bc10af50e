//! Health checks and probes: the typed configuration a container's spec
//! holds ([`HealthSpec`]: Docker's HEALTHCHECK and `--health-*` flags, and
//! Kubernetes-style [`ProbeSpec`]s), turned into the monitor's probes at
//! start ([`monitor_probes`]); the results the monitor writes to the run
//! directory's `health` file, read back for `inspect`, `ps` and
//! [`Engine::readiness`]; and `berth healthcheck run` ([`Engine::run_healthcheck`]).
//!
//! The checks themselves run in the container's monitor
//! (crates/monitor/src/health.rs): no daemon, no systemd timer.

use crate::containers::Engine;
use crate::error::{io, option, Error, Result};
use crate::images::Digest;
use crate::records::{Record, Status as RecStatus};
use berth_monitor_proto::health::{self as mh, Health, OnFailure, Probe, ProbeKind};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// Docker's `Config.Healthcheck`, field for field (durations in ns; 0
/// inherits the image's value, then Docker's default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `["CMD", args...]`, `["CMD-SHELL", command]`, `["NONE"]` (off), or
    /// empty (inherit the image's).
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub retries: u32,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// Docker's defaults.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 3;

impl HealthConfig {
    /// Docker's precedence: what the container sets wins, field by field;
    /// the rest comes from the image.
    pub fn inherit(&mut self, image: &HealthConfig) {
        if self.test.is_empty() {
            self.test = image.test.clone();
        }
        for (mine, theirs) in [
            (&mut self.interval, image.interval),
            (&mut self.timeout, image.timeout),
            (&mut self.start_period, image.start_period),
            (&mut self.start_interval, image.start_interval),
        ] {
            if *mine == 0 {
                *mine = theirs;
            }
        }
        if self.retries == 0 {
            self.retries = image.retries;
        }
    }

    /// The command the check runs; `None` when there is no check.
    pub fn command(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((k, rest)) if k == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            Some((k, [cmd])) if k == "CMD-SHELL" => {
                Some(vec!["/bin/sh".into(), "-c".into(), cmd.clone()])
            }
            _ => None,
        }
    }

    fn validate(&self) -> Result<()> {
        match self.test.first().map(String::as_str) {
            None | Some("NONE") => {}
            Some("CMD") if self.test.len() > 1 => {}
            Some("CMD-SHELL") if self.test.len() == 2 => {}
            _ => {
                return Err(option(
                    "--health-cmd",
                    format!(
                        "{:?} is not [\"CMD\", ARGS...], [\"CMD-SHELL\", COMMAND] or [\"NONE\"]",
                        self.test
                    ),
                ))
            }
        }
        Ok(())
    }
}

/// How a [`ProbeSpec`] checks (Kubernetes' probe handlers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Handler {
    Exec {
        command: Vec<String>,
    },
    HttpGet {
        /// An IP address in the container's network; empty: 127.0.0.1.
        #[serde(default)]
        host: String,
        port: u16,
        #[serde(default)]
        path: String,
        /// HTTP or HTTPS (empty: HTTP). HTTPS does not verify the
        /// server's certificate (neither does the kubelet).
        #[serde(default)]
        scheme: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    TcpSocket {
        #[serde(default)]
        host: String,
        port: u16,
    },
    /// `grpc.health.v1.Health/Check` over HTTP/2 without TLS (the
    /// kubelet's): SERVING passes, any other answer or error fails.
    Grpc {
        port: u16,
        #[serde(default)]
        service: String,
    },
    /// Kubernetes' sleep action, for lifecycle hooks only: the monitor
    /// waits this long (a timer of its event loop; nothing runs).
    Sleep {
        seconds: u64,
    },
}

/// A Kubernetes-style probe (`kube play` maps a container's
/// livenessProbe, readinessProbe and startupProbe to these).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProbeSpec {
    /// liveness, readiness, startup (or docker-health).
    pub kind: String,
    pub handler: Handler,
    pub initial_delay_ms: u64,
    pub period_ms: u64,
    pub timeout_ms: u64,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// Kubernetes' probe-level terminationGracePeriodSeconds: the grace
    /// period when this probe's failure stops the container (None: the
    /// container's stop timeout, else 30 s; see [`probe_grace`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_grace_s: Option<u32>,
}

impl Default for ProbeSpec {
    /// Kubernetes' defaults.
    fn default() -> Self {
        ProbeSpec {
            kind: "liveness".into(),
            handler: Handler::TcpSocket {
                host: String::new(),
                port: 0,
            },
            initial_delay_ms: 0,
            period_ms: 10_000,
            timeout_ms: 1_000,
            success_threshold: 1,
            failure_threshold: 3,
            termination_grace_s: None,
        }
    }
}

/// A container's health checks, as its spec stores them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthSpec {
    /// Docker's check: from the flags, completed from the image's at create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<HealthConfig>,
    /// `--health-on-failure`: none, kill, restart, stop.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub on_failure: String,
    /// Kubernetes-style probes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeSpec>,
    /// Kubernetes' lifecycle hooks: kind `post-start` or `pre-stop`, each
    /// at most once (the thresholds and period are not used; the timeout
    /// bounds the hook).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<ProbeSpec>,
}

impl HealthSpec {
    pub fn is_empty(&self) -> bool {
        self.check.is_none()
            && self.on_failure.is_empty()
            && self.probes.is_empty()
            && self.hooks.is_empty()
    }

    /// The preStop hook, if any.
    pub fn pre_stop(&self) -> Option<&ProbeSpec> {
        self.hooks.iter().find(|h| h.kind == "pre-stop")
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(c) = &self.check {
            c.validate()?;
        }
        if !self.on_failure.is_empty() && OnFailure::parse(&self.on_failure).is_none() {
            return Err(option(
                "--health-on-failure",
                format!("{:?} is not none, kill, restart or stop", self.on_failure),
            ));
        }
        for h in &self.hooks {
            if !ProbeKind::parse(&h.kind).is_some_and(ProbeKind::is_hook) {
                return Err(option(
                    "lifecycle hook",
                    format!("unknown kind {:?} (post-start, pre-stop)", h.kind),
                ));
            }
            if self.hooks.iter().filter(|o| o.kind == h.kind).count() > 1 {
                return Err(option(
                    "lifecycle hook",
                    format!("{} is given twice", h.kind),
                ));
            }
        }
        for p in self.probes.iter().chain(&self.hooks) {
            let what = format!("{} probe", p.kind);
            let hook = self.hooks.iter().any(|h| std::ptr::eq(h, p));
            if ProbeKind::parse(&p.kind).is_none_or(|k| k.is_hook() != hook) {
                return Err(option(
                    "probe",
                    format!("unknown kind {:?} (liveness, readiness, startup)", p.kind),
                ));
            }
            if p.period_ms == 0 || p.timeout_ms == 0 {
                return Err(option(&what, "the period and timeout must be above zero"));
            }
            match &p.handler {
                Handler::Sleep { .. } if !hook => {
                    return Err(option(&what, "sleep is a lifecycle hook's action only"))
                }
                Handler::Exec { command } if command.is_empty() => {
                    return Err(option(&what, "exec: the command is empty"))
                }
                Handler::HttpGet { scheme, .. }
                    if !scheme.is_empty()
                        && !scheme.eq_ignore_ascii_case("http")
                        && !scheme.eq_ignore_ascii_case("https") =>
                {
                    return Err(option(
                        &what,
                        format!("httpGet scheme {scheme:?} is not HTTP or HTTPS"),
                    ))
                }
                Handler::HttpGet { host, .. } | Handler::TcpSocket { host, .. }
                    if !host.is_empty() && host.parse::<std::net::IpAddr>().is_err() =>
                {
                    return Err(option(&what, format!("host {host:?} is not an IP address")))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A Go duration (`1m30s`, `200ms`, `2h`, `1.5s`) as Docker's flags take
/// it; a bare `0` is zero.
pub fn parse_duration(s: &str, flag: &str) -> Result<Duration> {
    let bad = || {
        option(
            flag,
            format!("{s:?} is not a duration (like 30s, 1m30s, 500ms)"),
        )
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[u..];
        total += value * unit;
    }
    if !(0.0..1e10).contains(&total) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// `--health-cmd`: a JSON list (`["CMD", "curl", "-f", "..."]`; without
/// CMD or CMD-SHELL first, CMD is meant) or a shell command (CMD-SHELL).
pub fn parse_health_cmd(s: &str) -> Result<Vec<String>> {
    if s.trim_start().starts_with('[') {
        let v: Vec<String> = serde_json::from_str(s).map_err(|e| {
            option(
                "--health-cmd",
                format!("{s:?} is not a JSON list of strings: {e}"),
            )
        })?;
        return Ok(match v.first().map(String::as_str) {
            None => return Err(option("--health-cmd", "the list is empty")),
            Some("CMD" | "CMD-SHELL" | "NONE") => v,
            Some(_) => std::iter::once("CMD".to_string()).chain(v).collect(),
        });
    }
    if s.trim().is_empty() {
        return Err(option("--health-cmd", "the command is empty"));
    }
    Ok(vec!["CMD-SHELL".into(), s.into()])
}

/// `--probe`: a Kubernetes-style probe in one line, comma-separated
/// `KEY=VALUE`s: `kind=liveness|readiness|startup` (default liveness), one
/// of `tcp=PORT`, `http=PORT[/PATH]`, `https=PORT[/PATH]`, `grpc=PORT`
/// (with `service=NAME`), `exec=COMMAND` (run with /bin/sh -c; last, it
/// may hold commas), and `host=IP`, `header=NAME:VALUE`, `initial-delay=`,
/// `period=`, `timeout=`, `grace=` (durations; grace: the probe's
/// terminationGracePeriodSeconds, whole seconds), `success=N`, `failure=N`.
pub fn parse_probe(s: &str) -> Result<ProbeSpec> {
    let bad = |why: String| option("--probe", format!("{s:?}: {why}"));
    let mut p = ProbeSpec::default();
    let (mut host, mut headers, mut service) = (String::new(), Vec::new(), String::new());
    let mut handler: Option<Handler> = None;
    let mut rest = s;
    while !rest.is_empty() {
        let (item, tail) = if rest.starts_with("exec=") {
            (rest, "")
        } else {
            rest.split_once(',').unwrap_or((rest, ""))
        };
        rest = tail;
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| bad(format!("{item:?} is not KEY=VALUE")))?;
        let ms = |v: &str| -> Result<u64> {
            Ok(parse_duration(v, &format!("--probe {k}"))?.as_millis() as u64)
        };
        let num = |v: &str| -> Result<u32> {
            v.parse()
                .map_err(|_| bad(format!("{k}={v:?} is not a number")))
        };
        let port = |v: &str| -> Result<u16> {
            v.parse()
                .map_err(|_| bad(format!("{k}={v:?} is not a port")))
        };
        match k {
            "kind" => p.kind = v.to_string(),
            "tcp" => {
                handler = Some(Handler::TcpSocket {
                    host: String::new(),
                    port: port(v)?,
                })
            }
            "http" | "https" => {
                let (pt, path) = match v.find('/') {
                    Some(i) => (&v[..i], &v[i..]),
                    None => (v, "/"),
                };
                handler = Some(Handler::HttpGet {
                    host: String::new(),
                    port: port(pt)?,
                    path: path.to_string(),
                    scheme: k.to_ascii_uppercase(),
                    headers: Vec::new(),
                })
            }
            "grpc" => {
                handler = Some(Handler::Grpc {
                    port: port(v)?,
                    service: String::new(),
                })
            }
            "service" => service = v.to_string(),
            "exec" => {
                handler = Some(Handler::Exec {
                    command: vec!["/bin/sh".into(), "-c".into(), v.to_string()],
                })
            }
            "host" => host = v.to_string(),
            "header" => {
                let (n, x) = v
                    .split_once(':')
                    .ok_or_else(|| bad(format!("header={v:?} is not NAME:VALUE")))?;
                headers.push((n.trim().to_string(), x.trim().to_string()));
            }
            "initial-delay" => p.initial_delay_ms = ms(v)?,
            "period" => p.period_ms = ms(v)?,
            "timeout" => p.timeout_ms = ms(v)?,
            "grace" => {
                let d = parse_duration(v, "--probe grace")?;
                if d.subsec_nanos() != 0 || d.is_zero() || d.as_secs() > 86400 {
                    return Err(bad(format!(
                        "grace={v:?} is not whole seconds in 1..=86400"
                    )));
                }
                p.termination_grace_s = Some(d.as_secs() as u32);
            }
            "success" => p.success_threshold = num(v)?,
            "failure" => p.failure_threshold = num(v)?,
            _ => return Err(bad(format!("unknown key {k:?}"))),
        }
    }
    if !service.is_empty() && !matches!(handler, Some(Handler::Grpc { .. })) {
        return Err(bad("service= goes with grpc=PORT".into()));
    }
    p.handler = match handler {
        Some(Handler::TcpSocket { port, .. }) => Handler::TcpSocket { host, port },
        Some(Handler::HttpGet {
            port, path, scheme, ..
        }) => Handler::HttpGet {
            host,
            port,
            path,
            scheme,
            headers,
        },
        Some(Handler::Grpc { port, .. }) => Handler::Grpc { port, service },
        Some(h) => h,
        None => {
            return Err(bad(
                "give tcp=PORT, http=PORT[/PATH], https=PORT[/PATH], grpc=PORT or exec=COMMAND"
                    .into(),
            ))
        }
    };
    Ok(p)
}

/// The flags' values, before the image is known.
#[derive(Clone, Debug, Default)]
pub struct HealthFlags<'a> {
    pub cmd: Option<&'a str>,
    pub interval: Option<&'a str>,
    pub timeout: Option<&'a str>,
    pub retries: Option<u32>,
    pub start_period: Option<&'a str>,
    pub start_interval: Option<&'a str>,
    pub on_failure: Option<&'a str>,
    pub none: bool,
    /// `--probe` values.
    pub probes: &'a [String],
}

/// The `--health-*` flags as a [`HealthSpec`].
pub fn from_flags(f: &HealthFlags) -> Result<HealthSpec> {
    let mut s = HealthSpec::default();
    let ns = |v: Option<&str>, flag: &str| -> Result<u64> {
        Ok(match v {
            Some(v) => parse_duration(v, flag)?.as_nanos() as u64,
            None => 0,
        })
    };
    let c = HealthConfig {
        test: match (f.none, f.cmd) {
            (true, Some(_)) => {
                return Err(option(
                    "--no-healthcheck",
                    "conflicts with --health-cmd (give one of them)",
                ))
            }
            (true, None) => vec!["NONE".into()],
            (false, Some(c)) => parse_health_cmd(c)?,
            (false, None) => Vec::new(),
        },
        interval: ns(f.interval, "--health-interval")?,
        timeout: ns(f.timeout, "--health-timeout")?,
        start_period: ns(f.start_period, "--health-start-period")?,
        start_interval: ns(f.start_interval, "--health-start-interval")?,
        retries: f.retries.unwrap_or(0),
    };
    if c != HealthConfig::default() {
        s.check = Some(c);
    }
    if let Some(o) = f.on_failure {
        s.on_failure = o.to_string();
    }
    for p in f.probes {
        s.probes.push(parse_probe(p)?);
    }
    s.validate()?;
    Ok(s)
}

/// The image config's `Config.Healthcheck`, if any.
pub fn image_healthcheck(config: &[u8]) -> Option<HealthConfig> {
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    let h = v.get("config")?.get("Healthcheck")?;
    serde_json::from_value(h.clone()).ok()
}

/// Docker's precedence at create: the container's check completed from
/// the image's; the image's alone when the container sets none.
pub fn inherit_image(spec: &mut HealthSpec, image: Option<HealthConfig>) {
    let Some(image) = image else {
        return;
    };
    match &mut spec.check {
        Some(c) => c.inherit(&image),
        None => spec.check = Some(image),
    }
}

fn dur_or(ns: u64, d: Duration) -> Duration {
    if ns == 0 {
        d
    } else {
        Duration::from_nanos(ns)
    }
}

/// The process file of exec probe `i` in the run directory.
fn process_file(run_dir: &Path, i: usize) -> String {
    run_dir
        .join(format!("probe-{i}.json"))
        .to_string_lossy()
        .into_owned()
}

/// The exec commands of the probes, in the monitor's order.
fn exec_commands(s: &HealthSpec) -> Vec<Option<Vec<String>>> {
    let mut v = Vec::new();
    if let Some(cmd) = s.check.as_ref().and_then(HealthConfig::command) {
        v.push(Some(cmd));
    }
    for p in s.probes.iter().chain(&s.hooks) {
        v.push(match &p.handler {
            Handler::Exec { command } => Some(command.clone()),
            _ => None,
        });
    }
    v
}

/// The kubelet's default grace period, when neither the probe nor the
/// pod sets one.
pub const KUBE_DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Docker's default stop timeout.
pub const DOCKER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The grace period when probe `p`'s failure stops the container (the
/// kubelet's choice): the probe's own terminationGracePeriodSeconds, else
/// the container's stop timeout (kube play stores the pod's
/// terminationGracePeriodSeconds there), else 30 s.
pub fn probe_grace(p: &ProbeSpec, stop_timeout: Option<u32>) -> Duration {
    p.termination_grace_s
        .or(stop_timeout)
        .map_or(KUBE_DEFAULT_GRACE, |s| Duration::from_secs(u64::from(s)))
}

/// The monitor's probes for a container whose stop timeout (seconds, as
/// its spec holds it) is `stop_timeout`.
pub fn monitor_probes(s: &HealthSpec, run_dir: &Path, stop_timeout: Option<u32>) -> Vec<Probe> {
    let mut out = Vec::new();
    if let Some(c) = &s.check {
        if let Some(args) = c.command() {
            out.push(Probe {
                kind: ProbeKind::DockerHealth,
                action: mh::Action::Exec {
                    args,
                    process: process_file(run_dir, 0),
                },
                initial_delay: Duration::ZERO,
                period: dur_or(c.interval, DEFAULT_INTERVAL),
                timeout: dur_or(c.timeout, DEFAULT_TIMEOUT),
                success_threshold: 1,
                failure_threshold: if c.retries == 0 {
                    DEFAULT_RETRIES
                } else {
                    c.retries
                },
                start_period: Duration::from_nanos(c.start_period),
                start_interval: dur_or(c.start_interval, DEFAULT_START_INTERVAL),
                on_failure: OnFailure::parse(&s.on_failure).unwrap_or_default(),
                // `--health-on-failure restart`: podman's
                // RestartWithTimeout(StopTimeout).
                grace: stop_timeout
                    .map_or(DOCKER_STOP_TIMEOUT, |t| Duration::from_secs(u64::from(t))),
            });
        }
    }
    for p in s.probes.iter().chain(&s.hooks) {
        let i = out.len();
        let action = match &p.handler {
            Handler::Exec { command } => mh::Action::Exec {
                args: command.clone(),
                process: process_file(run_dir, i),
            },
            Handler::HttpGet {
                host,
                port,
                path,
                headers,
                scheme,
            } => {
                let path = if path.is_empty() {
                    "/".into()
                } else {
                    path.clone()
                };
                if scheme.eq_ignore_ascii_case("https") {
                    let mut args = vec!["https".to_string(), "--path".into(), path];
                    for (k, v) in headers {
                        args.extend(["--header".into(), format!("{k}:{v}")]);
                    }
                    mh::Action::Helper {
                        host: host.clone(),
                        port: *port,
                        args,
                    }
                } else {
                    mh::Action::Http {
                        host: host.clone(),
                        port: *port,
                        path,
                        headers: headers.clone(),
                    }
                }
            }
            Handler::TcpSocket { host, port } => mh::Action::Tcp {
                host: host.clone(),
                port: *port,
            },
            Handler::Grpc { port, service } => mh::Action::Helper {
                host: String::new(),
                port: *port,
                args: vec!["grpc".into(), "--service".into(), service.clone()],
            },
            Handler::Sleep { seconds } => mh::Action::Sleep(Duration::from_secs(*seconds)),
        };
        out.push(Probe {
            kind: ProbeKind::parse(&p.kind).unwrap_or(ProbeKind::Liveness),
            action,
            initial_delay: Duration::from_millis(p.initial_delay_ms),
            period: Duration::from_millis(p.period_ms.max(1)),
            timeout: Duration::from_millis(p.timeout_ms.max(1)),
            success_threshold: p.success_threshold.max(1),
            failure_threshold: p.failure_threshold.max(1),
            start_period: Duration::ZERO,
            start_interval: Duration::ZERO,
            on_failure: OnFailure::None,
            grace: probe_grace(p, stop_timeout),
        });
    }
    out
}

/// Writes the process file of each exec probe: the container's process
/// (user, environment, capabilities, rlimits, seccomp) with the probe's
/// command, as `berth exec` makes one. Called once config.json is written.
pub fn write_process_files(rec: &Record, run_dir: &Path) -> Result<()> {
    let cmds = exec_commands(&rec.spec.health);
    if cmds.iter().all(Option::is_none) {
        return Ok(());
    }
    let raw = std::fs::read(run_dir.join("config.json"))
        .map_err(io(format!("read the spec of container {}", rec.name)))?;
    let spec: serde_json::Value = serde_json::from_slice(&raw)
        .map_err(|e| Error::Runtime(format!("container {}: config.json: {e}", rec.name)))?;
    for (i, cmd) in cmds.iter().enumerate() {
        let Some(cmd) = cmd else { continue };
        let mut p = spec["process"].clone();
        p["args"] = serde_json::json!(cmd);
        p["terminal"] = serde_json::json!(false);
        if let Some(o) = p.as_object_mut() {
            o.remove("consoleSize");
        }
        let file = process_file(run_dir, i);
        berth_sys::fs::replace_file(
            Path::new(&file),
            &serde_json::to_vec(&p).unwrap_or_default(),
            0o600,
        )
        .map_err(io(format!("write the health check's process file {file}")))?;
    }
    Ok(())
}

/// What the monitor runs, with the new status appended, when the health
/// status changes: `berth container health-event ID`.
pub fn event_command(berth: &Path, paths: &crate::paths::Paths, id: &str) -> Vec<String> {
    vec![
        berth.to_string_lossy().into_owned(),
        "--root".into(),
        paths.root.to_string_lossy().into_owned(),
        "--run-root".into(),
        paths.run_root.to_string_lossy().into_owned(),
        "container".into(),
        "health-event".into(),
        id.to_string(),
    ]
}

/// The probe helper's command (`berth container probe`, by the absolute
/// path of this berth binary) when a probe needs it (HTTPS, gRPC); empty
/// otherwise, so the monitor's config of other containers does not grow.
pub fn probe_helper(s: &HealthSpec, berth: &Path) -> Vec<String> {
    let needs = s.probes.iter().chain(&s.hooks).any(|p| match &p.handler {
        Handler::HttpGet { scheme, .. } => scheme.eq_ignore_ascii_case("https"),
        Handler::Grpc { .. } => true,
        _ => false,
    });
    if !needs {
        return Vec::new();
    }
    vec![
        berth.to_string_lossy().into_owned(),
        "container".into(),
        "probe".into(),
    ]
}

/// What the monitor runs for `--health-on-failure stop`: `berth stop ID`
/// (the container's stop signal and timeout); empty otherwise.
pub fn stop_command(
    spec: &crate::specgen::ContainerSpec,
    berth: &Path,
    paths: &crate::paths::Paths,
    id: &str,
) -> Vec<String> {
    if spec.health.on_failure != "stop" {
        return Vec::new();
    }
    let mut c = event_command(berth, paths, id);
    c.truncate(5);
    c.extend(["stop".to_string(), id.to_string()]);
    c
}

/// Docker's `State.Health`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthInspect {
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthLogInspect>,
}

/// One of `State.Health.Log`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthLogInspect {
    /// RFC 3339 with ns.
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// Whether a container has a check the monitor runs.
pub fn has_checks(s: &HealthSpec) -> bool {
    s.check.as_ref().and_then(HealthConfig::command).is_some() || !s.probes.is_empty()
}

impl Engine {
    /// The monitor's health file of a running container; for a stopped
    /// one, the copy its monitor kept at the end, with the log and failing
    /// streak it had and the status `unhealthy` (Docker's rule: a check
    /// that no longer runs does not vouch for the container; podman 4
    /// shows the last status instead). `None` when the container has no
    /// checks, or has not run since they were set.
    pub fn health(&self, r: &Record) -> Option<Health> {
        if !has_checks(&r.spec.health) {
            return None;
        }
        if !matches!(r.state.status, RecStatus::Running | RecStatus::Restarting) {
            let t = std::fs::read_to_string(self.paths.container(&r.id).join("health")).ok()?;
            let mut h = Health::parse(&t).ok()?;
            h.status = mh::Status::Unhealthy;
            h.ready = false;
            return Some(h);
        }
        match std::fs::read_to_string(self.paths.run_dir(&r.id).join("health")) {
            Ok(t) => Health::parse(&t).ok(),
            // Not written yet: the container is starting.
            Err(_) => Some(Health::default()),
        }
    }

    /// The health status's name: `none` without a check or when the
    /// container does not run.
    pub fn health_status_name(&self, r: &Record) -> &'static str {
        self.health(r).map_or("none", |h| h.status.name())
    }

    /// `ps`'s STATUS, with Docker's health suffix: `Up 2 minutes
    /// (healthy)`, `(unhealthy)`, `(health: starting)`.
    pub fn status_with_health(&self, r: &Record) -> String {
        let text = crate::query::status_text(r);
        match self
            .health(r)
            .filter(|_| r.state.status == RecStatus::Running)
        {
            Some(h) if h.status == mh::Status::Starting => format!("{text} (health: starting)"),
            Some(h) => format!("{text} ({})", h.status.name()),
            None => text,
        }
    }

    /// `State.Health` for inspect.
    pub fn health_inspect(&self, r: &Record) -> Option<HealthInspect> {
        let h = self.health(r)?;
        Some(HealthInspect {
            status: h.status.name().into(),
            failing_streak: h.failing_streak,
            log: h
                .log
                .iter()
                .map(|e| HealthLogInspect {
                    start: crate::logs::rfc3339_nano(e.start),
                    end: crate::logs::rfc3339_nano(e.end),
                    exit_code: e.exit_code,
                    output: e.output.clone(),
                })
                .collect(),
        })
    }

    /// Whether the container is ready (its readiness probe passes; without
    /// one, it runs and its startup probe, if any, has passed). For `kube`
    /// and Services.
    pub fn readiness(&self, r: &Record) -> bool {
        if r.state.status != RecStatus::Running {
            return false;
        }
        if r.spec.health.probes.is_empty() {
            return true;
        }
        self.health(r).is_some_and(|h| h.ready)
    }

    /// `berth healthcheck run`: asks the container's monitor to run its
    /// check now and waits for the status it ends with (`healthy`,
    /// `unhealthy`, `starting`).
    pub fn run_healthcheck(&self, what: &str) -> Result<String> {
        let rec = self.get(what)?;
        if !has_checks(&rec.spec.health) {
            return Err(Error::Conflict(format!(
                "container {} has no defined healthcheck",
                rec.name
            )));
        }
        if rec.state.status != RecStatus::Running {
            return Err(Error::NotRunning {
                container: rec.name,
                op: crate::error::Operation::Exec,
            });
        }
        let (rec, mut session) = self.attach(&rec.id)?;
        // The status may change with this check: the monitor records that.
        session.send(berth_monitor_proto::frame::HEALTH_RUN, b"")?;
        loop {
            match session.next_frame()? {
                Some((berth_monitor_proto::frame::HEALTH, p)) => {
                    let s = String::from_utf8_lossy(&p).into_owned();
                    if s == "none" {
                        return Err(Error::Conflict(format!(
                            "container {} has no running healthcheck (is it restarting?)",
                            rec.name
                        )));
                    }
                    return Ok(s);
                }
                Some(_) => {}
                None => {
                    return Err(Error::Runtime(format!(
                        "container {}: its monitor went away before the check ended",
                        rec.name
                    )))
                }
            }
        }
    }

    /// Records the `health_status: STATUS` event of container `id` (the
    /// monitor runs `berth container health-event` at each change).
    /// `ready`/`not-ready` (the readiness changed): a pod's Service names
    /// follow it (`Engine::kube_readiness_changed`).
    pub fn record_health_event(&self, id: &str, status: &str) -> Result<()> {
        if status == "ready" || status == "not-ready" {
            self.kube_readiness_changed(id);
            return Ok(());
        }
        if mh::Status::parse(status).is_none() {
            return Err(option(
                "health-event",
                format!("{status:?} is not starting, healthy, unhealthy, ready or not-ready"),
            ));
        }
        let rec = self
            .records
            .get(id)?
            .ok_or_else(|| Error::NoSuchContainer(id.to_string()))?;
        self.container_event(&rec, &format!("health_status: {status}"), &[]);
        Ok(())
    }

    /// The image's HEALTHCHECK of a stored image.
    pub fn image_healthcheck(&self, id: &Digest) -> Option<HealthConfig> {
        let raw = self
            .images
            .read_blob(id, berth_image::pull::MAX_CONFIG)
            .ok()?;
        image_healthcheck(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_writes_them() {
        let d = |s| parse_duration(s, "--x").unwrap();
        assert_eq!(d("200ms"), Duration::from_millis(200));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("0"), Duration::ZERO);
        for bad in ["", "5", "1x", "s", "-1s"] {
            assert!(parse_duration(bad, "--x").is_err(), "{bad}");
        }
    }

    #[test]
    fn probe_flag() {
        let p =
            parse_probe("kind=readiness,http=8080/ready?x=1,header=X-A: b,period=200ms,failure=2")
                .unwrap();
        assert_eq!(p.kind, "readiness");
        assert_eq!(
            (p.period_ms, p.failure_threshold, p.timeout_ms),
            (200, 2, 1000)
        );
        assert!(
            matches!(&p.handler, Handler::HttpGet { port: 8080, path, headers, .. }
            if path == "/ready?x=1" && headers == &[("X-A".to_string(), "b".to_string())])
        );
        let g = parse_probe("kind=readiness,grpc=50051,service=db").unwrap();
        assert!(matches!(&g.handler, Handler::Grpc { port: 50051, service } if service == "db"));
        let h = parse_probe("https=8443/ok").unwrap();
        assert!(
            matches!(&h.handler, Handler::HttpGet { port: 8443, path, scheme, .. } if path == "/ok" && scheme == "HTTPS")
        );
        assert!(parse_probe("tcp=1,service=db").is_err());
        assert_eq!(
            parse_probe("tcp=1,grace=2s").unwrap().termination_grace_s,
            Some(2)
        );
        assert!(parse_probe("tcp=1,grace=1500ms").is_err());
        assert!(parse_probe("tcp=1,grace=0").is_err());
        let e = parse_probe("period=1s,exec=test -e /a, b").unwrap();
        assert!(matches!(&e.handler, Handler::Exec { command } if command[2] == "test -e /a, b"));
        for bad in [
            "",
            "tcp=x",
            "kind=liveness",
            "tcp=1,colour=red",
            "tcp=1,period=5",
        ] {
            assert!(parse_probe(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn health_cmd_forms() {
        assert_eq!(
            parse_health_cmd("curl -f x").unwrap(),
            ["CMD-SHELL", "curl -f x"]
        );
        assert_eq!(
            parse_health_cmd(r#"["ls", "/"]"#).unwrap(),
            ["CMD", "ls", "/"]
        );
        assert_eq!(
            parse_health_cmd(r#"["CMD-SHELL", "true"]"#).unwrap(),
            ["CMD-SHELL", "true"]
        );
        assert!(parse_health_cmd("[nope").is_err());
        assert!(parse_health_cmd(" ").is_err());
    }

    #[test]
    fn the_containers_fields_win_the_images_fill_in() {
        let image = HealthConfig {
            test: vec!["CMD".into(), "img".into()],
            interval: 5,
            timeout: 6,
            retries: 7,
            ..Default::default()
        };
        let mut s = from_flags(&HealthFlags {
            interval: Some("1s"),
            ..Default::default()
        })
        .unwrap();
        inherit_image(&mut s, Some(image.clone()));
        let c = s.check.clone().unwrap();
        assert_eq!(c.test, ["CMD", "img"]);
        assert_eq!((c.interval, c.timeout, c.retries), (1_000_000_000, 6, 7));
        let mut off = from_flags(&HealthFlags {
            none: true,
            ..Default::default()
        })
        .unwrap();
        inherit_image(&mut off, Some(image.clone()));
        assert!(!has_checks(&off), "--no-healthcheck wins over the image");
        let mut plain = HealthSpec::default();
        inherit_image(&mut plain, Some(image));
        assert_eq!(monitor_probes(&plain, Path::new("/r"), None).len(), 1);
        assert!(from_flags(&HealthFlags {
            none: true,
            cmd: Some("true"),
            ..Default::default()
        })
        .is_err());
        assert!(from_flags(&HealthFlags {
            on_failure: Some("explode"),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn a_failed_probes_grace_is_its_own_then_the_pods_then_30s() {
        let mut p = ProbeSpec::default();
        // Neither the probe nor the pod: the kubelet's 30 s.
        assert_eq!(probe_grace(&p, None), Duration::from_secs(30));
        // The pod's terminationGracePeriodSeconds (the stop timeout).
        assert_eq!(probe_grace(&p, Some(7)), Duration::from_secs(7));
        assert_eq!(probe_grace(&p, Some(0)), Duration::ZERO);
        // The probe's own wins.
        p.termination_grace_s = Some(2);
        assert_eq!(probe_grace(&p, Some(7)), Duration::from_secs(2));
        assert_eq!(probe_grace(&p, None), Duration::from_secs(2));
        // Carried into the monitor's probe.
        let s = HealthSpec {
            probes: vec![p.clone()],
            ..Default::default()
        };
        assert_eq!(
            monitor_probes(&s, Path::new("/r"), Some(9))[0].grace,
            Duration::from_secs(2)
        );
        // Docker's check with --health-on-failure restart: the stop
        // timeout, else Docker's 10 s.
        let d = from_flags(&HealthFlags {
            cmd: Some("true"),
            on_failure: Some("restart"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            monitor_probes(&d, Path::new("/r"), None)[0].grace,
            Duration::from_secs(10)
        );
        assert_eq!(
            monitor_probes(&d, Path::new("/r"), Some(4))[0].grace,
            Duration::from_secs(4)
        );
    }

    #[test]
    fn sleep_is_a_hooks_action_only() {
        let sleep = ProbeSpec {
            kind: "pre-stop".into(),
            handler: Handler::Sleep { seconds: 3 },
            ..Default::default()
        };
        let mut s = HealthSpec {
            hooks: vec![sleep.clone()],
            ..Default::default()
        };
        s.validate().unwrap();
        assert_eq!(
            monitor_probes(&s, Path::new("/r"), None)[0].action,
            mh::Action::Sleep(Duration::from_secs(3))
        );
        assert_eq!(exec_commands(&s), [None]);
        s.hooks.clear();
        s.probes.push(ProbeSpec {
            kind: "liveness".into(),
            ..sleep
        });
        assert!(s.validate().is_err());
    }

    #[test]
    fn probes_map_to_the_monitors() {
        let s = HealthSpec {
            check: None,
            on_failure: String::new(),
            probes: vec![
                ProbeSpec {
                    kind: "readiness".into(),
                    handler: Handler::HttpGet {
                        host: String::new(),
                        port: 80,
                        path: String::new(),
                        scheme: "HTTP".into(),
                        headers: vec![("X".into(), "y".into())],
                    },
                    ..Default::default()
                },
                ProbeSpec {
                    kind: "liveness".into(),
                    handler: Handler::Exec {
                        command: vec!["true".into()],
                    },
                    ..Default::default()
                },
            ],
            hooks: vec![ProbeSpec {
                kind: "pre-stop".into(),
                handler: Handler::Exec {
                    command: vec!["bye".into()],
                },
                ..Default::default()
            }],
        };
        s.validate().unwrap();
        let m = monitor_probes(&s, Path::new("/r"), None);
        // Hooks follow the probes; exec ones get their process file.
        assert_eq!(m[2].kind, ProbeKind::PreStop);
        assert!(
            matches!(&m[2].action, mh::Action::Exec { process, .. } if process == "/r/probe-2.json")
        );
        assert_eq!(exec_commands(&s)[2], Some(vec!["bye".to_string()]));
        let mut twice = s.clone();
        twice.hooks.push(twice.hooks[0].clone());
        assert!(twice.validate().is_err());
        let mut misplaced = s.clone();
        misplaced.probes[0].kind = "pre-stop".into();
        assert!(misplaced.validate().is_err());
        assert_eq!(m[0].kind, ProbeKind::Readiness);
        assert!(matches!(&m[0].action, mh::Action::Http { path, .. } if path == "/"));
        assert!(
            matches!(&m[1].action, mh::Action::Exec { process, .. } if process == "/r/probe-1.json")
        );
        assert!(probe_helper(&s, Path::new("/b")).is_empty());
        let mut grpc = s.clone();
        grpc.probes[0].handler = Handler::Grpc {
            port: 1,
            service: "db".into(),
        };
        grpc.validate().unwrap();
        assert!(
            matches!(&monitor_probes(&grpc, Path::new("/r"), None)[0].action,
            mh::Action::Helper { port: 1, args, .. } if args == &["grpc", "--service", "db"])
        );
        assert_eq!(
            probe_helper(&grpc, Path::new("/b")),
            ["/b", "container", "probe"]
        );
        let mut https = s.clone();
        https.probes[0].handler = Handler::HttpGet {
            host: String::new(),
            port: 443,
            path: "/x".into(),
            scheme: "HTTPS".into(),
            headers: vec![("A".into(), "b c".into())],
        };
        https.validate().unwrap();
        assert!(
            matches!(&monitor_probes(&https, Path::new("/r"), None)[0].action,
            mh::Action::Helper { port: 443, args, .. }
            if args == &["https", "--path", "/x", "--header", "A:b c"])
        );
        // Exec probes keep their process files' numbers.
        assert!(
            matches!(&monitor_probes(&https, Path::new("/r"), None)[1].action, mh::Action::Exec { process, .. } if process == "/r/probe-1.json")
        );
        let mut ftp = s;
        ftp.probes[0].handler = Handler::HttpGet {
            host: String::new(),
            port: 21,
            path: "/".into(),
            scheme: "FTP".into(),
            headers: Vec::new(),
        };
        assert!(ftp.validate().is_err());
    }
}
